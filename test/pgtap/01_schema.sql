-- 01_schema.sql: the objects of the stage extension and their security
-- properties (DESIGN.md §4 and §7).
--
-- Run by scripts/test.sh (pg_prove, one fresh database per file, created from
-- a template that already has the extensions pgtap and stage), or by hand:
--   createdb tap_x && psql -d tap_x -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION stage'
--   pg_prove -d tap_x test/pgtap/01_schema.sql
-- This file creates no extension itself and leaves nothing behind.
BEGIN;
SELECT plan(116);

-- ------------------------------------------------------------ schemas (2)
SELECT has_schema('stage', 'schema stage exists');
SELECT has_schema('stage_landing', 'schema stage_landing exists');

-- ------------------------------------------------------ catalog tables (9)
SELECT has_table('stage', 'pipeline', 'table stage.pipeline exists');
SELECT has_table('stage', 'rule', 'table stage.rule exists');
SELECT has_table('stage', 'mask', 'table stage.mask exists');
SELECT has_table('stage', 'contract_history', 'table stage.contract_history exists');
SELECT has_table('stage', 'batch', 'table stage.batch exists');
SELECT has_table('stage', 'batch_rule_stat', 'table stage.batch_rule_stat exists');
SELECT has_table('stage', 'quarantine_log', 'table stage.quarantine_log exists');
SELECT has_table('stage', 'duplicate_log', 'table stage.duplicate_log exists');
SELECT has_table('stage', 'secret', 'table stage.secret exists');

-- --------------------------------------------------------------- views (7)
SELECT has_view('stage', 'pipelines', 'view stage.pipelines exists');
SELECT has_view('stage', 'batches', 'view stage.batches exists');
SELECT has_view('stage', 'quarantine', 'view stage.quarantine exists');
SELECT has_view('stage', 'quarantine_all', 'view stage.quarantine_all exists');
SELECT has_view('stage', 'rule_stats', 'view stage.rule_stats exists');
SELECT has_view('stage', 'dlq_summary', 'view stage.dlq_summary exists');
SELECT has_view('stage', 'lineage', 'view stage.lineage exists');

-- ------------------------------------------- API functions, exact args (26)
SELECT has_function('stage', 'create_pipeline', ARRAY['text', 'regclass', 'text[]', 'text', 'text'],
	'stage.create_pipeline(text, regclass, text[], text, text) exists');
SELECT has_function('stage', 'drop_pipeline', ARRAY['text', 'boolean'], 'stage.drop_pipeline(text, boolean) exists');
SELECT has_function('stage', 'pause', ARRAY['text'], 'stage.pause(text) exists');
SELECT has_function('stage', 'resume', ARRAY['text'], 'stage.resume(text) exists');
SELECT has_function('stage', 'add_rule', ARRAY['text', 'text', 'text', 'jsonb', 'text', 'text'],
	'stage.add_rule(text, text, text, jsonb, text, text) exists');
SELECT has_function('stage', 'drop_rule', ARRAY['text', 'text'], 'stage.drop_rule(text, text) exists');
SELECT has_function('stage', 'add_mask', ARRAY['text', 'text', 'text', 'jsonb'],
	'stage.add_mask(text, text, text, jsonb) exists');
SELECT has_function('stage', 'drop_mask', ARRAY['text', 'text'], 'stage.drop_mask(text, text) exists');
SELECT has_function('stage', 'alter_rule', ARRAY['text', 'text', 'jsonb', 'text'],
	'stage.alter_rule(text, text, jsonb, text) exists');
SELECT has_function('stage', 'alter_mask', ARRAY['text', 'text', 'text', 'jsonb'],
	'stage.alter_mask(text, text, text, jsonb) exists');
SELECT has_function('stage', 'alter_transform', ARRAY['text', 'text', 'jsonb'],
	'stage.alter_transform(text, text, jsonb) exists');
SELECT has_function('stage', 'contract', ARRAY['text'], 'stage.contract(text) exists');
SELECT has_function('stage', 'contract_diff', ARRAY['text', 'jsonb'], 'stage.contract_diff(text, jsonb) exists');
SELECT has_function('stage', 'repair', ARRAY['text', 'bigint[]', 'jsonb', 'text', 'boolean'],
	'stage.repair(text, bigint[], jsonb, text, boolean) exists');
SELECT has_function('stage', 'repair_where', ARRAY['text', 'text', 'jsonb', 'text', 'boolean'],
	'stage.repair_where(text, text, jsonb, text, boolean) exists');
SELECT has_function('stage', 'dismiss', ARRAY['text', 'bigint[]', 'text'],
	'stage.dismiss(text, bigint[], text) exists');
SELECT has_function('stage', 'create_secret', ARRAY['text', 'bytea'], 'stage.create_secret(text, bytea) exists');
SELECT has_function('stage', 'run_batch', ARRAY['text', 'integer'], 'stage.run_batch(text, integer) exists');
SELECT has_function('stage', 'run_all', ARRAY[]::name[], 'stage.run_all() exists');
SELECT has_function('stage', 'trace', ARRAY['text', 'bigint'], 'stage.trace(text, bigint) exists');
SELECT has_function('stage', 'follow_target', ARRAY['regclass'], 'stage.follow_target(regclass) exists');
SELECT has_function('stage', 'regex_match', ARRAY['text', 'text', 'text'],
	'stage.regex_match(text, text, text) exists');
SELECT has_function('stage', 'hmac', ARRAY['text', 'text'], 'stage.hmac(text, text) exists');
SELECT has_function('stage', 'mask_email', ARRAY['text'], 'stage.mask_email(text) exists');
SELECT has_function('stage', 'mask_partial', ARRAY['text', 'integer', 'integer', 'text'],
	'stage.mask_partial(text, integer, integer, text) exists');
SELECT has_function('stage', 'mask_card', ARRAY['text'], 'stage.mask_card(text) exists');
SELECT has_function('stage', 'luhn_valid', ARRAY['text'], 'stage.luhn_valid(text) exists');
SELECT has_function('stage', 'set_contract', ARRAY['text', 'jsonb'], 'stage.set_contract(text, jsonb) exists');
SELECT has_function('stage', 'check_row', ARRAY['text', 'jsonb'], 'stage.check_row(text, jsonb) exists');
SELECT has_function('stage', 'grant_producer', ARRAY['text', 'regrole'],
	'stage.grant_producer(text, regrole) exists');
SELECT has_function('stage', 'revoke_producer', ARRAY['text', 'regrole'],
	'stage.revoke_producer(text, regrole) exists');

-- ---------------------------------------------------- return types (6)
SELECT function_returns('stage', 'create_pipeline', ARRAY['text', 'regclass', 'text[]', 'text', 'text'],
	'regclass', 'create_pipeline returns the landing table as regclass');
SELECT function_returns('stage', 'add_rule', ARRAY['text', 'text', 'text', 'jsonb', 'text', 'text'],
	'integer', 'add_rule returns the new contract version');
SELECT function_returns('stage', 'contract', ARRAY['text'], 'jsonb', 'contract returns jsonb');
SELECT function_returns('stage', 'run_batch', ARRAY['text', 'integer'], 'setof record',
	'run_batch returns a table');
SELECT function_returns('stage', 'run_all', ARRAY[]::name[], 'bigint', 'run_all returns bigint');
SELECT function_returns('stage', 'luhn_valid', ARRAY['text'], 'boolean', 'luhn_valid returns boolean');

-- ---------------------------------------------------------- volatility (12)
SELECT volatility_is('stage', 'mask_email', ARRAY['text'], 'immutable', 'mask_email is IMMUTABLE');
SELECT volatility_is('stage', 'mask_partial', ARRAY['text', 'integer', 'integer', 'text'], 'immutable',
	'mask_partial is IMMUTABLE');
SELECT volatility_is('stage', 'mask_card', ARRAY['text'], 'immutable', 'mask_card is IMMUTABLE');
SELECT volatility_is('stage', 'luhn_valid', ARRAY['text'], 'immutable', 'luhn_valid is IMMUTABLE');
SELECT volatility_is('stage', 'regex_match', ARRAY['text', 'text', 'text'], 'immutable',
	'regex_match is IMMUTABLE');
-- keyed by a secret that can be created later: not immutable
SELECT volatility_is('stage', 'hmac', ARRAY['text', 'text'], 'stable', 'hmac is STABLE');
SELECT volatility_is('stage', 'contract', ARRAY['text'], 'stable', 'contract is STABLE');
SELECT volatility_is('stage', 'run_batch', ARRAY['text', 'integer'], 'volatile', 'run_batch is VOLATILE');
SELECT volatility_is('stage', 'run_all', ARRAY[]::name[], 'volatile', 'run_all is VOLATILE');
SELECT volatility_is('stage', 'create_pipeline', ARRAY['text', 'regclass', 'text[]', 'text', 'text'],
	'volatile', 'create_pipeline is VOLATILE');
SELECT volatility_is('stage', 'add_rule', ARRAY['text', 'text', 'text', 'jsonb', 'text', 'text'],
	'volatile', 'add_rule is VOLATILE');
SELECT volatility_is('stage', 'drop_pipeline', ARRAY['text', 'boolean'], 'volatile', 'drop_pipeline is VOLATILE');

-- ------------------------------------------------------- primary keys (9)
SELECT col_is_pk('stage', 'pipeline', ARRAY['pipeline_id'], 'stage.pipeline PK is (pipeline_id)');
SELECT col_is_pk('stage', 'rule', ARRAY['pipeline_id', 'rule_name'], 'stage.rule PK is (pipeline_id, rule_name)');
SELECT col_is_pk('stage', 'mask', ARRAY['pipeline_id', 'column_name'],
	'stage.mask PK is (pipeline_id, column_name): one mask per column');
SELECT col_is_pk('stage', 'contract_history', ARRAY['pipeline_id', 'version'],
	'stage.contract_history PK is (pipeline_id, version)');
SELECT col_is_pk('stage', 'batch', ARRAY['batch_id'], 'stage.batch PK is (batch_id)');
SELECT col_is_pk('stage', 'batch_rule_stat', ARRAY['batch_id', 'rule_name'],
	'stage.batch_rule_stat PK is (batch_id, rule_name)');
SELECT col_is_pk('stage', 'quarantine_log', ARRAY['pipeline_id', 'landing_id'],
	'stage.quarantine_log PK is (pipeline_id, landing_id): a landing row is quarantined at most once');
SELECT col_is_pk('stage', 'duplicate_log', ARRAY['pipeline_id', 'landing_id'],
	'stage.duplicate_log PK is (pipeline_id, landing_id)');
SELECT col_is_pk('stage', 'secret', ARRAY['name'], 'stage.secret PK is (name)');

-- ------------------------------------------------ key column types (12)
SELECT col_is_unique('stage', 'pipeline', ARRAY['name'], 'pipeline names are unique');
SELECT col_type_is('stage', 'pipeline', 'target', 'regclass', 'pipeline.target is regclass (resolved to an OID)');
SELECT col_type_is('stage', 'pipeline', 'landing', 'regclass', 'pipeline.landing is regclass');
SELECT col_type_is('stage', 'pipeline', 'owner', 'regrole', 'pipeline.owner is regrole');
SELECT col_type_is('stage', 'pipeline', 'key', 'text[]', 'pipeline.key is text[]');
SELECT col_type_is('stage', 'pipeline', 'win_lo', 'pg_snapshot', 'pipeline.win_lo is pg_snapshot');
SELECT col_type_is('stage', 'rule', 'args', 'jsonb', 'rule.args is jsonb');
SELECT col_type_is('stage', 'batch', 'batch_id', 'bigint', 'batch.batch_id is bigint');
SELECT col_type_is('stage', 'batch', 'from_txid', 'xid8', 'batch.from_txid is xid8');
SELECT col_type_is('stage', 'quarantine_log', 'row_data', 'jsonb', 'quarantine_log.row_data is jsonb');
SELECT col_type_is('stage', 'quarantine_log', 'reasons', 'jsonb', 'quarantine_log.reasons is jsonb');
SELECT col_type_is('stage', 'secret', 'key', 'bytea', 'secret.key is bytea');

-- ----------------------------------------------- function hardening (3)
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text
		FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_language l ON l.oid = p.prolang
	   WHERE p.pronamespace = 'stage'::regnamespace
		 AND l.lanname <> 'c'
		 AND NOT COALESCE(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
	'every non-C function in schema stage pins search_path = pg_catalog, pg_temp');
-- guards the test above against an empty set (a renamed language, a moved schema)
SELECT cmp_ok(
	(SELECT count(*)::int FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
	  WHERE p.pronamespace = 'stage'::regnamespace AND l.lanname IN ('plpgsql', 'sql')),
	'>=', 14, 'the SQL-level API (at least 14 plpgsql/sql functions) is covered by that check');
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'stage'::regnamespace AND p.prosecdef
		 AND p.prorettype <> 'pg_catalog.event_trigger'::pg_catalog.regtype$$,
	'no function in schema stage is SECURITY DEFINER, but event trigger functions (they run as whoever ran the DDL)');
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'stage'::regnamespace
		 AND p.prorettype = 'pg_catalog.event_trigger'::pg_catalog.regtype
		 AND (pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
			  OR p.proowner <> (SELECT c.relowner FROM pg_catalog.pg_class c
								 WHERE c.oid = 'stage.pipeline'::regclass))$$,
	'event trigger functions belong to the catalog owner and are not executable by PUBLIC');

-- --------------------------------------------- extension properties (5)
SELECT is((SELECT extrelocatable FROM pg_catalog.pg_extension WHERE extname = 'stage'), false,
	'extension stage is not relocatable');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'stage'),
	'pg_catalog', 'extension stage lives in pg_catalog (its schemas are its own members)');
-- the install script creates both schemas: CREATE EXTENSION fails if either exists
SELECT set_eq(
	$$SELECT d.objid::regnamespace::text FROM pg_catalog.pg_depend d
	   WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.deptype = 'e'
		 AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'stage')$$,
	ARRAY['stage', 'stage_landing'],
	'schemas stage and stage_landing are members of the extension');
SELECT is((SELECT trusted FROM pg_catalog.pg_available_extension_versions
			WHERE name = 'stage' AND installed), false,
	'extension stage is not trusted (only superusers may install it)');
-- DESIGN §7: install scripts use neither CREATE OR REPLACE nor IF NOT EXISTS
-- (a pre-created object of the same name must make CREATE EXTENSION fail)
CREATE TEMP TABLE install_script AS
SELECT pg_catalog.pg_read_file((SELECT setting FROM pg_catalog.pg_config WHERE name = 'SHAREDIR')
		|| '/extension/stage--' || (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'stage')
		|| '.sql') AS body;
SELECT is_empty(
	$$SELECT m[1] FROM install_script,
			 pg_catalog.regexp_matches(body, '([^\n]*\mCREATE\s+OR\s+REPLACE\M[^\n]*)', 'gi') m$$,
	'the install script has no CREATE OR REPLACE');
-- (plpgsql's IF [NOT] EXISTS (SELECT ...) is not DDL and is allowed)
SELECT is_empty(
	$$SELECT m[1] FROM install_script,
			 pg_catalog.regexp_matches(body, '([^\n]*\mIF\s+(NOT\s+)?EXISTS\s+[a-z_"][^\n]*)', 'gi') m$$,
	'the install script has no DDL IF [NOT] EXISTS');

-- ------------------------------------------------------------ views (2)
-- views read the catalog as their owner and filter per caller: a caller's
-- own conditions must not run before that filter
SELECT is_empty(
	$$SELECT c.relname::text FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'stage'::regnamespace AND c.relkind IN ('v', 'm')
		 AND (NOT COALESCE(c.reloptions @> ARRAY['security_barrier=true'], false)
			  OR COALESCE(c.reloptions @> ARRAY['security_invoker=true'], false))$$,
	'every view in schema stage is a security_barrier view that runs as its owner');
SELECT is_empty(
	$$SELECT c.relname::text FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'stage'::regnamespace AND c.relkind = 'v'
		 AND pg_catalog.pg_get_viewdef(c.oid) !~ 'stage._may_see'
		 AND c.relname <> 'workers'$$,
	'every view filters its rows with stage._may_see (stage.workers: stage._workers filters)');

-- ------------------------------------- the catalog: its owner alone (10)
SELECT is_empty(
	$$SELECT c.relname::text FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'stage'::regnamespace AND c.relkind IN ('r', 'p')
		 AND NOT c.relrowsecurity$$,
	'row-level security is on for every table of schema stage (no policy: nobody else sees a row)');
SELECT is_empty(
	$$SELECT p.tablename || '.' || p.policyname FROM pg_catalog.pg_policies p
	   WHERE p.schemaname = 'stage'$$,
	'no table of schema stage has a policy');
SELECT is_empty(
	$$SELECT c.relname || ' ' || x.privilege_type || ' to ' || x.grantee::regrole::text
		FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
	   WHERE c.relnamespace = 'stage'::regnamespace AND c.relkind IN ('r', 'p', 'S')
		 AND x.grantee <> c.relowner$$,
	'no role but the owner holds a privilege on a table or sequence of schema stage');
SELECT is_empty(
	$$SELECT c.relname || '.' || a.attname FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
	   WHERE c.relnamespace = 'stage'::regnamespace AND a.attacl IS NOT NULL$$,
	'no column of schema stage carries a privilege');
SELECT is(pg_catalog.has_table_privilege('public', 'stage.mask', 'INSERT'), false,
	'PUBLIC cannot write stage.mask (a mask under someone else''s secret)');
SELECT is(pg_catalog.has_table_privilege('public', 'stage.batch', 'INSERT'), false,
	'PUBLIC cannot write stage.batch (forged history)');
SELECT is(pg_catalog.has_table_privilege('public', 'stage.batch', 'SELECT'), false,
	'PUBLIC cannot read stage.batch (history through the views only)');
-- internal functions (name starting with _) are for the catalog owner, except
-- the few the views call in the caller's name, which check the caller, and
-- the pure helpers of the metrics views (they read nothing)
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'stage'::regnamespace AND p.proname LIKE '\_%'
		 AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
		 AND p.proname NOT IN ('_may_see', '_owns', '_withheld', '_quarantine',
							   '_quarantine_row_data', '_quarantine_reasons',
							   '_quarantine_count', '_workers', '_backpressure_counts',
							   '_retention_state_for', '_partition_rows_for',
							   '_latency_bounds', '_label', '_quantile')$$,
	'PUBLIC cannot execute any internal function but those the views call');
-- every gate has its implementation, and nothing else is a gate
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'stage'::regnamespace AND p.prosrc = 'stage_api'
		 AND pg_catalog.to_regprocedure('stage._do_' || p.proname || '(' ||
			 pg_catalog.oidvectortypes(p.proargtypes) || ')') IS NULL$$,
	'every gate (stage_api) has its stage._do_ implementation with the same arguments');
SELECT cmp_ok(
	(SELECT count(*)::int FROM pg_catalog.pg_proc p
	  WHERE p.pronamespace = 'stage'::regnamespace AND p.prosrc = 'stage_api'),
	'>=', 18, 'the API that reads or writes the catalog goes through gates (at least 18)');

-- ------------------------------------------------- default privileges (6)
SELECT is(pg_catalog.has_table_privilege('public', 'stage.secret', 'SELECT'), false,
	'PUBLIC cannot read stage.secret');
SELECT is(pg_catalog.has_function_privilege('public', 'stage.hmac(text, text)', 'EXECUTE'), false,
	'PUBLIC cannot execute stage.hmac (a guessing oracle against hashed columns)');
SELECT is(pg_catalog.has_function_privilege('public', 'stage.create_secret(text, bytea)', 'EXECUTE'), false,
	'PUBLIC cannot execute stage.create_secret');
SELECT is(pg_catalog.has_function_privilege('public', 'stage.mask_email(text)', 'EXECUTE'), true,
	'PUBLIC can execute stage.mask_email (no secret involved)');
SELECT is(pg_catalog.has_schema_privilege('public', 'stage', 'CREATE'), false,
	'PUBLIC cannot create objects in schema stage');
SELECT is(pg_catalog.has_schema_privilege('public', 'stage_landing', 'CREATE'), false,
	'PUBLIC cannot create objects in schema stage_landing');

SELECT * FROM finish();
ROLLBACK;
