-- 02_privileges.sql: who may do what to a pipeline (DESIGN.md §7).
--
--   tap_owner     owns the target table, nothing else; creates the pipeline
--   tap_producer  INSERT on the landing table's data columns (stage.grant_producer)
--   tap_analyst   no grants at first, then member of stage_analyst
--   tap_stranger  no grants at all
--
-- The model (0.2, docs/security.md): only the catalog owner (the superuser
-- that ran CREATE EXTENSION) holds any privilege on stage's tables; the API
-- checks the caller and writes; the views show each role the pipelines it
-- may see; landing tables belong to the catalog owner too.
--
-- Everything, roles included, is created inside the transaction and rolled
-- back.  Run by scripts/test.sh (pg_prove, one fresh database per file with
-- the extensions pgtap and stage already installed) or by hand against any
-- database that has both extensions.
--
-- The mover only takes rows whose inserting transaction has committed, so
-- inside this single transaction run_batch sees no rows; the quarantined row
-- that the read tests need is written directly by the superuser (the
-- catalog owner), as the mover would have written it.
BEGIN;
SELECT plan(121);

SET LOCAL client_min_messages = warning;
CREATE ROLE tap_owner NOLOGIN;
CREATE ROLE tap_producer NOLOGIN;
CREATE ROLE tap_analyst NOLOGIN;
CREATE ROLE tap_stranger NOLOGIN;
-- the owner's application schema: nobody else has USAGE on it
CREATE SCHEMA tap_app AUTHORIZATION tap_owner;
CREATE SCHEMA tap_stranger_s AUTHORIZATION tap_stranger;

-- the rows of a query as text, or its error: for assertions on queries that
-- may be refused (a raised error would abort the whole file)
CREATE FUNCTION pg_temp.rows_or_error(q text) RETURNS text
LANGUAGE plpgsql AS $f$
DECLARE
	r text;
BEGIN
	EXECUTE 'SELECT pg_catalog.string_agg(x::text, '' '' ORDER BY x::text) FROM (' || q || ') x' INTO r;
	RETURN COALESCE(r, '(no rows)');
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END
$f$;

-- ids the unprivileged roles refer to (they cannot resolve tap_app.* names)
CREATE TEMP TABLE tap_ids (target oid, pipeline_id integer, card_hmac text);
GRANT SELECT ON tap_ids TO PUBLIC;

-- ================================================================ owner
SET ROLE tap_owner;
CREATE TABLE tap_app.orders (
	order_id	integer PRIMARY KEY,
	email		text,
	amount		numeric,
	card		text
);
SELECT 'tap_app.orders'::regclass::oid AS tap_orders_oid \gset

SELECT is(stage.create_pipeline('tap_orders', 'tap_app.orders', key => '{order_id}')::text,
		  'stage_landing.tap_orders',
		  'owner: the owner of the target, with no other privilege, creates a pipeline');
SELECT is((SELECT relowner FROM pg_catalog.pg_class
			WHERE oid = 'stage_landing.tap_orders'::regclass),
		  (SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'stage.pipeline'::regclass),
		  'owner: the landing table belongs to the catalog owner, not to the pipeline owner');
SELECT is((SELECT owner::text FROM stage.pipelines WHERE pipeline = 'tap_orders'),
		  'tap_owner', 'owner: the pipeline is recorded as owned by tap_owner');
SELECT is(stage.add_rule('tap_orders', 'amount', 'range', '{"min": 0, "max": 1000}'), 2,
		  'owner: add_rule works and returns contract version 2');
SELECT is(stage.add_mask('tap_orders', 'email', 'email'), 3,
		  'owner: add_mask works and returns contract version 3');
SELECT is(stage.add_rule('tap_orders', 'card', 'length', '{"min": 12, "max": 19}'), 4,
		  'owner: a rule on the card column -> version 4');
SELECT throws_ok($$SELECT stage.add_mask('tap_orders', 'card', 'hash')$$,
	'42501', 'permission denied for secret "default"',
	'owner: cannot use a secret it was not granted in a hash mask');
RESET ROLE;
SELECT lives_ok($$SELECT stage.grant_secret('default', 'tap_owner')$$,
	'superuser: grants the use of the default secret to tap_owner');
SET ROLE tap_owner;
SELECT is(stage.add_mask('tap_orders', 'card', 'hash'), 5,
		  'owner: card is stored as a keyed hash -> version 5');
SELECT lives_ok($$SELECT stage.grant_producer('tap_orders', 'tap_producer')$$,
	'owner: grants the producer role INSERT on its landing table');
SELECT results_eq(
	$$SELECT a.attname::text COLLATE "default" FROM pg_catalog.pg_attribute a
	   WHERE a.attrelid = 'stage_landing.tap_orders'::regclass AND a.attnum > 0
		 AND pg_catalog.has_column_privilege('tap_producer', a.attrelid, a.attnum, 'INSERT')
	   ORDER BY a.attnum$$,
	ARRAY['_stage_source', 'order_id', 'email', 'amount', 'card'],
	'owner: the producer may insert the data columns and _stage_source, not _stage_id/_stage_txid/_stage_received_at');
RESET ROLE;

INSERT INTO tap_ids
SELECT 'tap_app.orders'::regclass::oid, pipeline_id, stage.hmac('1234')
  FROM stage.pipeline WHERE name = 'tap_orders';

-- what the mover would have written for a row failing amount_range (the
-- email is stored masked, as the mover stores masked columns)
INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id, contract_version,
								  source, row_data, raw_data, reasons)
SELECT pipeline_id, 1, 1, 3, 'tap',
	   pg_catalog.jsonb_build_object('order_id', '1', 'email', stage.mask_email('alice@example.com'),
									 'amount', '-5', 'card', NULL),
	   pg_catalog.jsonb_build_object('order_id', '1', 'email', 'alice@example.com',
									 'amount', '-5', 'card', NULL),
	   '[{"rule": "amount_range", "kind": "range", "column": "amount", "value": "-5", "message": "below min 0"}]'
  FROM tap_ids;
INSERT INTO stage.duplicate_log (pipeline_id, landing_id, batch_id)
SELECT pipeline_id, 2, 1 FROM tap_ids;

-- ============================================================= producer
SET ROLE tap_producer;
SELECT lives_ok(
	$$INSERT INTO stage_landing.tap_orders (order_id, email, amount, card)
	  VALUES ('1', 'alice@example.com', '-5', '4111111111111111'),
			 ('not a number', 'bob@example.com', '7', NULL)$$,
	'producer: may INSERT into its landing table, any text value');
SELECT throws_ok($$UPDATE stage_landing.tap_orders SET email = 'x'$$,
	'42501', 'permission denied for table tap_orders',
	'producer: cannot UPDATE the landing table (no privilege; the guard is not even reached)');
SELECT throws_ok($$DELETE FROM stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'producer: cannot DELETE from the landing table');
SELECT throws_ok($$TRUNCATE stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'producer: cannot TRUNCATE the landing table');
SELECT throws_ok($$SELECT * FROM stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'producer: cannot read the landing table (nor other producers'' rows in it)');
SELECT throws_ok(
	$$INSERT INTO stage_landing.tap_orders (_stage_txid, order_id) VALUES ('1', '3')$$,
	'42501', 'permission denied for table tap_orders',
	'producer: cannot forge the _stage_txid metadata column (not granted by grant_producer)');
SELECT throws_ok($$SELECT * FROM stage.run_batch('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'producer: cannot run batches of the pipeline');
SELECT throws_ok($$SELECT stage.add_rule('tap_orders', 'email', 'not_null')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'producer: cannot change the contract');
SELECT throws_ok($$SELECT count(*) FROM stage.quarantine_log$$,
	'42501', 'permission denied for table quarantine_log',
	'producer: cannot read the catalog''s quarantine');
SELECT is((SELECT count(*)::int FROM stage.batches), 0,
	'producer: sees no batch history (counts of its own batches would be an oracle)');
SELECT lives_ok($$SELECT stage.check_row('tap_orders', '{"order_id": "1", "amount": "5"}')$$,
	'producer: may check a row before sending it');
RESET ROLE;

-- ========================================================== owner again
SET ROLE tap_owner;
SELECT throws_ok($$UPDATE stage_landing.tap_orders SET email = 'x'$$,
	'42501', 'permission denied for table tap_orders',
	'owner: cannot UPDATE landing rows (no privilege)');
SELECT throws_ok($$DELETE FROM stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'owner: cannot DELETE landing rows');
SELECT throws_ok($$TRUNCATE stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'owner: cannot TRUNCATE the landing table');
SELECT throws_ok($$ALTER TABLE stage_landing.tap_orders RENAME TO tap_squat$$,
	'42501', 'must be owner of table tap_orders',
	'owner: cannot rename its landing table (a name a later pipeline needs)');
SELECT throws_ok($$CREATE INDEX tap_squat ON stage_landing.tap_orders (_stage_id)$$,
	'42501', 'must be owner of table tap_orders',
	'owner: cannot put an index (a name) into schema stage_landing');
RESET ROLE;
-- the catalog owner is refused too: landing is append-only
SELECT throws_ok($$UPDATE stage_landing.tap_orders SET email = 'x'$$,
	'55000', 'landing table "tap_orders" is append-only',
	'superuser: even the landing table''s owner cannot UPDATE landing rows (append-only guard)');
SELECT throws_ok($$DELETE FROM stage_landing.tap_orders$$,
	'55000', 'landing table "tap_orders" is append-only',
	'superuser: nor DELETE them');
SET ROLE tap_owner;
SELECT is((SELECT count(*)::int FROM stage_landing.tap_orders), 2,
	'owner: reads the producer''s landing rows');
-- the producer's rows are not committed yet: the window is empty
SELECT results_eq($$SELECT rows_in, status FROM stage.run_batch('tap_orders')$$,
	$$VALUES (0::bigint, 'empty'::text)$$,
	'owner: may run a batch (empty: the landing rows of this transaction are not committed)');
SELECT is(stage.run_all(), 0::bigint, 'owner: may call run_all');
SELECT results_eq(
	$$SELECT landing_id, row_data->>'email' FROM stage.quarantine WHERE pipeline = 'tap_orders'$$,
	$$VALUES (1::bigint, stage.mask_email('alice@example.com'))$$,
	'owner: reads the quarantine rows of its pipeline, masked');
SELECT results_eq(
	$$SELECT landing_id, raw_data->>'email' FROM stage.quarantine_raw('tap_orders')$$,
	$$VALUES (1::bigint, 'alice@example.com')$$,
	'owner: reads its raw quarantine rows through stage.quarantine_raw');
SELECT throws_ok($$SELECT count(*) FROM stage.duplicate_log$$,
	'42501', 'permission denied for table duplicate_log',
	'owner: the catalog tables themselves are closed to owners too');
SELECT throws_ok(
	$$INSERT INTO stage.mask (pipeline_id, column_name, method, args)
	  SELECT pipeline_id, 'email', 'tokenize', '{"secret": "other"}' FROM tap_ids$$,
	'42501', 'permission denied for table mask',
	'owner: cannot write a mask into the catalog (a secret it was not granted)');
SELECT throws_ok(
	$$INSERT INTO stage.batch (batch_id, pipeline_id, contract_version, status, started_at)
	  OVERRIDING SYSTEM VALUE SELECT 9223372036854775000, pipeline_id, 1, 'done', now() FROM tap_ids$$,
	'42501', 'permission denied for table batch',
	'owner: cannot forge a batch (a chosen id would move every OpenLineage cursor)');
SELECT lives_ok($$SELECT * FROM stage.trace('tap_orders', 1)$$,
	'owner: may trace a landing row');
SELECT lives_ok($$SELECT stage.pause('tap_orders')$$, 'owner: may pause');
SELECT is((SELECT enabled FROM stage.pipelines WHERE pipeline = 'tap_orders'), false,
	'owner: pause disabled the pipeline');
SELECT lives_ok($$SELECT stage.resume('tap_orders')$$, 'owner: may resume');
SELECT is((SELECT enabled FROM stage.pipelines WHERE pipeline = 'tap_orders'), true,
	'owner: resume enabled the pipeline');
SELECT is(pg_temp.rows_or_error($$SELECT landing_id, rule_name FROM stage.quarantine WHERE pipeline = 'tap_orders'$$),
	'(1,amount_range)',
	'owner: reads its quarantine through the stage.quarantine view');
SELECT is(pg_temp.rows_or_error($$SELECT rule_name, rows FROM stage.dlq_summary WHERE pipeline = 'tap_orders'$$),
	'(amount_range,1)',
	'owner: reads its dead-letter summary through stage.dlq_summary');

-- a DBA may well grant INSERT on the whole landing table instead of calling
-- stage.grant_producer; a producer must still not choose the landing
-- metadata: a row with an old _stage_txid falls before the pipeline's window
-- and never moves
RESET ROLE;
GRANT INSERT ON stage_landing.tap_orders TO tap_producer;
SET ROLE tap_producer;
DO $$
BEGIN
	INSERT INTO stage_landing.tap_orders (_stage_txid, _stage_source, order_id)
	VALUES ('1', 'some_other_producer', '3');
EXCEPTION WHEN OTHERS THEN
	NULL;	-- refusing the forged metadata is one acceptable fix
END
$$;
SET ROLE tap_owner;
SELECT is((SELECT count(*)::int FROM stage_landing.tap_orders
			WHERE _stage_txid <> pg_catalog.pg_current_xact_id()), 0,
	'producer: cannot choose _stage_txid, even with INSERT on the whole landing table');
RESET ROLE;

-- ============================================================= stranger
SET ROLE tap_stranger;
SELECT throws_ok($$SELECT stage.add_rule('tap_orders', 'email', 'not_null')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot add_rule to another role''s pipeline');
SELECT throws_ok($$SELECT stage.drop_rule('tap_orders', 'amount_range')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot drop_rule');
SELECT throws_ok($$SELECT stage.add_mask('tap_orders', 'card', 'card')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot add_mask');
SELECT throws_ok($$SELECT stage.drop_mask('tap_orders', 'email')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot drop_mask (would unmask a column)');
SELECT throws_ok($$SELECT stage.alter_rule('tap_orders', 'amount_range', '{"min": -1000000}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot alter_rule');
SELECT throws_ok($$SELECT stage.alter_mask('tap_orders', 'email', 'partial')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot alter_mask (would weaken a mask)');
SELECT throws_ok($$SELECT stage.alter_transform('tap_orders', 'email_trim', '{}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot alter_transform');
SELECT throws_ok($$SELECT * FROM stage.repair('tap_orders', ARRAY[1], '{"amount": "1"}', 'x')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot repair (would land rows)');
SELECT throws_ok($$SELECT * FROM stage.repair_where('tap_orders', 'amount_range', '{"amount": "amount"}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot repair_where (would run expressions as the owner)');
SELECT throws_ok($$SELECT stage.dismiss('tap_orders', ARRAY[1], 'x')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot dismiss (would hide failures)');
SELECT throws_ok($$SELECT stage.set_contract('tap_orders', '{"rules": [], "masks": []}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot set_contract (would drop every rule and mask)');
SELECT throws_ok('SELECT stage.follow_target(' || :tap_orders_oid || '::oid::regclass)',
	'42501', 'must be owner of table tap_app.orders',
	'stranger: cannot make a pipeline follow a table it does not own');
SELECT throws_ok($$SELECT stage.grant_producer('tap_orders', 'tap_stranger')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot grant itself INSERT on the landing table');
SELECT throws_ok($$SELECT stage.revoke_producer('tap_orders', 'tap_producer')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot revoke the producer');
SELECT throws_ok($$SELECT * FROM stage.run_batch('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot run_batch');
SELECT throws_ok($$SELECT stage.drop_pipeline('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot drop_pipeline');
SELECT throws_ok($$SELECT stage.pause('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot pause');
SELECT throws_ok($$SELECT stage.resume('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot resume');
SELECT throws_ok($$SELECT * FROM stage.trace('tap_orders', 1)$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: cannot trace (it reads landing metadata)');
SELECT throws_ok($$SELECT stage._landing_ddl((SELECT pipeline_id FROM tap_ids), true)$$,
	'42501', 'permission denied for function _landing_ddl',
	'stranger: cannot even call the internal C helper that drops landing tables');
SELECT throws_ok($$SELECT stage._do_drop_pipeline('tap_orders', true)$$,
	'42501', 'permission denied for function _do_drop_pipeline',
	'stranger: cannot call an implementation behind a gate');
SELECT throws_ok($$SELECT * FROM stage.secret$$,
	'42501', 'permission denied for table secret',
	'stranger: cannot read stage.secret');
SELECT throws_ok($$SELECT stage.hmac('alice@example.com')$$,
	'42501', 'permission denied for function hmac',
	'stranger: cannot execute stage.hmac');
SELECT throws_ok($$SELECT stage.create_secret('mine')$$,
	'42501', 'permission denied for function create_secret',
	'stranger: cannot execute stage.create_secret');
SELECT throws_ok($$SELECT count(*) FROM stage.quarantine_log$$,
	'42501', 'permission denied for table quarantine_log',
	'stranger: cannot read quarantine_log');
SELECT throws_ok($$SELECT count(*) FROM stage.duplicate_log$$,
	'42501', 'permission denied for table duplicate_log',
	'stranger: cannot read duplicate_log');
SELECT is((SELECT count(*)::int FROM stage.quarantine), 0,
	'stranger: the stage.quarantine view shows none of the owner''s rows');
SELECT throws_ok($$SELECT * FROM stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'stranger: cannot read the landing table');
SELECT throws_ok($$INSERT INTO stage_landing.tap_orders (order_id) VALUES ('9')$$,
	'42501', 'permission denied for table tap_orders',
	'stranger: cannot insert into the landing table');
-- direct writes to the catalog: refused, every one
SELECT throws_ok(
	$$UPDATE stage.pipeline SET target = 'stage.secret'::regclass WHERE name = 'tap_orders'$$,
	'42501', 'permission denied for table pipeline',
	'stranger: cannot repoint any pipeline at another table');
SELECT throws_ok(
	$$UPDATE stage.pipeline SET enabled = false WHERE name = 'tap_orders'$$,
	'42501', 'permission denied for table pipeline',
	'stranger: cannot UPDATE the owner''s stage.pipeline row');
SELECT throws_ok(
	$$DELETE FROM stage.pipeline WHERE name = 'tap_orders'$$,
	'42501', 'permission denied for table pipeline',
	'stranger: cannot DELETE the owner''s stage.pipeline row');
SELECT throws_ok(
	$$UPDATE stage.rule SET args = '{"min": -1000000, "max": 1000000}' WHERE rule_name = 'amount_range'$$,
	'42501', 'permission denied for table rule',
	'stranger: cannot UPDATE the owner''s rules');
SELECT throws_ok($$DELETE FROM stage.mask$$,
	'42501', 'permission denied for table mask',
	'stranger: cannot DELETE the owner''s masks');
SELECT throws_ok($$DELETE FROM stage.quarantine_log$$,
	'42501', 'permission denied for table quarantine_log',
	'stranger: cannot DELETE the owner''s quarantine');
SELECT throws_ok(
	$$INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, position)
	  SELECT pipeline_id, 'x', 'email', 'not_null', 99 FROM tap_ids$$,
	'42501', 'permission denied for table rule',
	'stranger: INSERT of a rule into the owner''s pipeline is refused');
SELECT throws_ok(
	$$INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id, contract_version, row_data, reasons)
	  SELECT pipeline_id, 99, 1, 1, '{}', '[]' FROM tap_ids$$,
	'42501', 'permission denied for table quarantine_log',
	'stranger: INSERT into the owner''s quarantine is refused');
SELECT throws_ok(
	$$INSERT INTO stage.pipeline (name, target, format, owner)
	  SELECT 'tap_impostor', target::regclass, 'columns', 'tap_owner' FROM tap_ids$$,
	'42501', 'permission denied for table pipeline',
	'stranger: cannot INSERT a pipeline row in the owner''s name');
SELECT throws_ok($$SELECT stage.contract('tap_orders')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: contracts are for owners and analysts (they name tables and expressions)');
SELECT throws_ok($$SELECT * FROM stage.contract_diff('tap_orders', '{}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: contract_diff is for owners and analysts');
SELECT throws_ok($$SELECT stage.check_row('tap_orders', '{"order_id": "9", "card": "1234"}')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'stranger: check_row is for owners, producers and analysts');
SELECT is((SELECT count(*)::int FROM stage.pipelines), 0,
	'stranger: the pipelines view shows none of the owner''s pipelines');
SELECT is((SELECT count(*)::int FROM stage.batches), 0,
	'stranger: the batches view shows none of the owner''s batches');

SELECT throws_ok(
	$$INSERT INTO stage.pipeline (name, target, format, owner)
	  SELECT 'tap_forged', target::regclass, 'columns', 'tap_stranger' FROM tap_ids$$,
	'42501', NULL,
	'stranger: cannot register a pipeline on a table it does not own by writing stage.pipeline');
-- check_row by the producer on a column with a hash mask: the failing value
-- is never shown in any form (its HMAC would be a guessing oracle)
SET ROLE tap_producer;
SELECT unalike(
	pg_temp.rows_or_error($$SELECT stage.check_row('tap_orders', '{"order_id": "9", "card": "1234"}')$$),
	'%' || (SELECT card_hmac FROM tap_ids) || '%',
	'producer: check_row does not reveal HMAC(default secret, guess) of a hashed column');
SET ROLE tap_stranger;

-- a pipeline of the stranger's own: a temporary table (TEMP is granted to
-- PUBLIC on every database by default) is refused as a target; a table in a
-- schema of its own is accepted, but not the use of a secret it was not
-- granted
CREATE TEMP TABLE tap_guess_tmp (id integer PRIMARY KEY, email text);
SELECT throws_ok($$SELECT stage.create_pipeline('tap_guess_tmp', 'pg_temp.tap_guess_tmp'::regclass, key => '{id}')$$,
	'42809', NULL,
	'stranger: a temporary table cannot be a target');
CREATE TABLE tap_stranger_s.tap_guess (id integer PRIMARY KEY, email text);
SELECT lives_ok($$SELECT stage.create_pipeline('tap_guess', 'tap_stranger_s.tap_guess'::regclass, key => '{id}')$$,
	'stranger: may create a pipeline on a table it owns');
SELECT throws_ok($$SELECT stage.add_mask('tap_guess', 'email', 'hash', '{"secret": "default"}')$$,
	'42501', NULL,
	'stranger: cannot use a secret (here ''default'') it has no right to, via a hash mask');
RESET ROLE;

-- ============================================================== analyst
SET ROLE tap_analyst;
SELECT is((SELECT count(*)::int FROM stage.pipelines WHERE pipeline = 'tap_orders'), 0,
	'analyst, not yet in stage_analyst: stage.pipelines shows nothing');
SELECT lives_ok($$SELECT * FROM stage.batches$$, 'analyst: may query stage.batches');
SELECT lives_ok($$SELECT * FROM stage.rule_stats$$, 'analyst: may query stage.rule_stats');
SELECT lives_ok($$SELECT * FROM stage.lineage$$, 'analyst: may query stage.lineage');
SELECT throws_ok($$SELECT count(*) FROM stage.quarantine_log$$,
	'42501', 'permission denied for table quarantine_log',
	'analyst: cannot read raw quarantine_log rows');
SELECT throws_ok($$SELECT * FROM stage_landing.tap_orders$$,
	'42501', 'permission denied for table tap_orders',
	'analyst: cannot read the landing table (raw values)');
SELECT throws_ok($$SELECT stage.hmac('alice@example.com')$$,
	'42501', 'permission denied for function hmac',
	'analyst: cannot execute stage.hmac');
RESET ROLE;

-- DESIGN §7: analysts read quarantine through masked views.  The closest a
-- DBA can get today is granting the view; row-level security then hides
-- every row from the analyst.
SELECT lives_ok($$SELECT stage.create_roles()$$,
	'superuser: creates the documented roles');
GRANT stage_analyst TO tap_analyst;
SET ROLE tap_analyst;
SELECT is(pg_temp.rows_or_error($$SELECT row_data->>'email' FROM stage.quarantine WHERE pipeline = 'tap_orders'$$),
	'(' || stage.mask_email('alice@example.com') || ')',
	'analyst: reads quarantine rows, with masked columns masked');
SELECT results_eq($$SELECT pipeline, owner::text FROM stage.pipelines WHERE pipeline = 'tap_orders'$$,
	$$VALUES ('tap_orders'::text, 'tap_owner'::text)$$,
	'analyst: reads stage.pipelines once in stage_analyst');
SELECT is(stage.contract('tap_orders')->>'version', '5',
	'analyst: reads contracts');
SELECT is((SELECT count(*)::int FROM stage.contract_diff('tap_orders')), 0,
	'analyst: may diff the current contract against the target');
SELECT throws_ok($$SELECT stage.add_rule('tap_orders', 'email', 'not_null')$$,
	'42501', 'permission denied for pipeline "tap_orders"',
	'analyst: cannot change them');
RESET ROLE;

-- ============================================================ superuser
SELECT is((SELECT count(*)::int FROM stage.quarantine_log
			WHERE pipeline_id = (SELECT pipeline_id FROM tap_ids)), 1,
	'superuser: sees the quarantine rows of every pipeline');
SELECT results_eq($$SELECT landing_id, rule_name FROM stage.quarantine WHERE pipeline = 'tap_orders'$$,
	$$VALUES (1::bigint, 'amount_range'::text)$$,
	'superuser: reads the stage.quarantine view');
SELECT is((SELECT count(*)::int FROM stage.secret WHERE name = 'default'), 1,
	'superuser: reads stage.secret');
SELECT is(pg_catalog.length(stage.hmac('alice@example.com')), 64,
	'superuser: may execute stage.hmac');
SELECT results_eq(
	$$SELECT enabled, target::text, contract_version FROM stage.pipeline WHERE name = 'tap_orders'$$,
	$$VALUES (true, 'tap_app.orders'::text, 5)$$,
	'superuser: the owner''s pipeline row is unchanged by the stranger''s UPDATE');
SELECT results_eq(
	$$SELECT rule_name, args FROM stage.rule WHERE pipeline_id = (SELECT pipeline_id FROM tap_ids)
	   ORDER BY rule_name$$,
	$$VALUES ('amount_range'::text, '{"min": 0, "max": 1000}'::jsonb),
			 ('card_length', '{"min": 12, "max": 19}')$$,
	'superuser: the owner''s rules are unchanged');
SELECT is((SELECT count(*)::int FROM stage.mask WHERE pipeline_id = (SELECT pipeline_id FROM tap_ids)), 2,
	'superuser: the owner''s masks are still there');
SELECT is((SELECT count(*)::int FROM stage.pipeline WHERE name = 'tap_impostor'), 0,
	'superuser: no pipeline was registered in the owner''s name');
SELECT results_eq($$SELECT rows_in, status FROM stage.run_batch('tap_orders')$$,
	$$VALUES (0::bigint, 'empty'::text)$$,
	'superuser: may run any pipeline''s batch');
SELECT is(stage.add_rule('tap_orders', 'email', 'not_null'), 6,
	'superuser: may change any pipeline''s contract');
SELECT has_table('stage_landing', 'tap_orders', 'superuser: the landing table survived the stranger');

-- ============================================================= teardown
SET ROLE tap_owner;
SELECT throws_ok($$SELECT stage.drop_pipeline('tap_orders')$$, '55000', NULL,
	'owner: drop_pipeline refuses while quarantine items are open');
SELECT lives_ok($$SELECT stage.drop_pipeline('tap_orders', force => true)$$, 'owner: may drop its pipeline (forced)');
RESET ROLE;
SELECT hasnt_table('stage_landing', 'tap_orders', 'drop_pipeline removed the landing table');
SELECT is((SELECT count(*)::int FROM stage.quarantine_log
			WHERE pipeline_id = (SELECT pipeline_id FROM tap_ids)), 0,
	'drop_pipeline removed the pipeline''s quarantine rows');

SELECT * FROM finish();
ROLLBACK;
