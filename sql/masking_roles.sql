--
-- masking_roles: who sees what.  stage.create_roles() makes the group roles
-- stage_producer and stage_analyst; producers only land rows; analysts read
-- the quarantine and health views with masked columns masked (with the
-- column's current mask, at once after it changes) and are refused raw
-- values, secrets and the vault (42501); only the pipeline owner or a
-- superuser reads raw quarantine values.
--
-- Roles: mr_owner, mr_producer, mr_analyst, mr_stranger (and the group
-- roles stage_producer, stage_analyst).  Other objects are prefixed mr_.
-- The file drops what it creates.
--
\set SHOW_CONTEXT never

-- leftovers of an interrupted earlier run (roles outlive the database)
SET client_min_messages = warning;
DROP ROLE IF EXISTS mr_owner;
DROP ROLE IF EXISTS mr_producer;
DROP ROLE IF EXISTS mr_analyst;
DROP ROLE IF EXISTS mr_stranger;
DROP ROLE IF EXISTS stage_producer;
DROP ROLE IF EXISTS stage_analyst;
RESET client_min_messages;

----------------------------------------------------------------------------
-- 1. The roles, made by a helper (not by CREATE EXTENSION)
----------------------------------------------------------------------------
SELECT count(*) AS roles_before FROM pg_roles WHERE rolname IN ('stage_producer', 'stage_analyst');
SELECT * FROM stage.create_roles();
-- again: nothing new, the grants are made again
SELECT * FROM stage.create_roles();
SELECT rolname, rolcanlogin, rolsuper, rolinherit FROM pg_roles
 WHERE rolname IN ('stage_producer', 'stage_analyst') ORDER BY rolname;
SELECT c.relname, has_table_privilege('stage_analyst', c.oid, 'SELECT') AS analyst_reads
  FROM pg_class c
 WHERE c.relnamespace = 'stage'::regnamespace
   AND c.relname IN ('quarantine', 'dlq_summary', 'health', 'pipelines', 'batches', 'quarantine_log',
					 'secret', 'token_vault')
 ORDER BY c.relname;

CREATE ROLE mr_owner NOLOGIN;
CREATE ROLE mr_producer NOLOGIN IN ROLE stage_producer;
CREATE ROLE mr_analyst NOLOGIN IN ROLE stage_analyst;
CREATE ROLE mr_stranger NOLOGIN;
-- create_roles is for superusers
SET ROLE mr_owner;
SELECT * FROM stage.create_roles();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

----------------------------------------------------------------------------
-- 2. The owner's pipeline, a producer's rows
----------------------------------------------------------------------------
SELECT lo_from_bytea(0, '\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff') AS lo \gset
SELECT stage.import_secret('mr_key', :lo);
SELECT stage.grant_secret('mr_key', 'mr_owner');
CREATE TABLE mr_customers (id integer PRIMARY KEY, email text, name text, card text,
						   age integer CHECK (age > 0));
ALTER TABLE mr_customers OWNER TO mr_owner;

SET ROLE mr_owner;
SELECT stage.create_pipeline('mr_customers', 'mr_customers', key => '{id}');
SELECT stage.add_mask('mr_customers', 'email', 'email');
SELECT stage.add_mask('mr_customers', 'name', 'pseudonym', '{"secret": "mr_key"}');
SELECT stage.add_mask('mr_customers', 'card', 'tokenize', '{"secret": "mr_key"}');
SELECT stage.grant_producer('mr_customers', 'stage_producer');
RESET ROLE;

SET ROLE mr_producer;
INSERT INTO stage_landing.mr_customers (id, email, name, card, age) VALUES
	('1', 'alice@example.com', 'Alice Smith', '4111 1111 1111 1111', '30'),
	('2', 'bob@example.org', 'Bob Jones', '5500 0000 0000 0004', '-1'),
	('3', 'zoe@example.org', 'Zoë Ångström', '4111 1111 1111 1111', 'old');
-- a producer lands rows and reads nothing
SELECT * FROM stage_landing.mr_customers;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS producer_sees FROM stage.quarantine;
SELECT raw_data FROM stage.quarantine_log;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.quarantine_raw('mr_customers');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.run_batch('mr_customers');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

SET ROLE mr_owner;
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('mr_customers');
-- the owner reads its quarantine, masked, and its raw rows
SELECT landing_id, row_data->>'email' AS email, row_data->>'name' AS name
  FROM stage.quarantine WHERE pipeline = 'mr_customers' ORDER BY landing_id;
SELECT landing_id, raw_data->>'email' AS email FROM stage.quarantine_raw('mr_customers')
 ORDER BY landing_id;
-- the catalog table itself is closed, to owners too: raw rows only through quarantine_raw
SELECT landing_id, raw_data->>'name' AS name FROM stage.quarantine_log ORDER BY landing_id;
\echo :LAST_ERROR_SQLSTATE
-- detokenize takes an EXECUTE grant, and the token's secret
SELECT stage.detokenize(row_data->>'card') FROM stage.quarantine WHERE landing_id = 3;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION stage.detokenize(text) TO mr_owner, mr_analyst;
SET ROLE mr_owner;
SELECT stage.detokenize(row_data->>'card') AS owner_detokenizes
  FROM stage.quarantine WHERE pipeline = 'mr_customers' AND landing_id = 3;
RESET ROLE;

----------------------------------------------------------------------------
-- 3. The analyst: masked quarantine and health, nothing raw
----------------------------------------------------------------------------
SET ROLE mr_analyst;
SELECT landing_id, rule_name, row_data->>'email' AS email, row_data->>'name' AS name,
	   row_data->>'card' ~ '^tok_' AS card_tokenized
  FROM stage.quarantine WHERE pipeline = 'mr_customers' ORDER BY landing_id;
SELECT rule_name, failures FROM stage.dlq_summary WHERE pipeline = 'mr_customers' ORDER BY rule_name;
SELECT pipeline, rules, masks FROM stage.pipelines WHERE pipeline = 'mr_customers';
SELECT count(*) AS batches FROM stage.batches WHERE pipeline = 'mr_customers';
-- every denial
SELECT raw_data FROM stage.quarantine_log;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM stage.quarantine_log;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.quarantine_raw('mr_customers');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage_landing.mr_customers;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM mr_customers;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.secret;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.token_vault;
\echo :LAST_ERROR_SQLSTATE
SELECT stage.detokenize(row_data->>'card') FROM stage.quarantine WHERE landing_id = 3;
\echo :LAST_ERROR_SQLSTATE
SELECT stage.hmac('alice@example.com', 'mr_key');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.pseudonymize('Alice Smith', 'mr_key');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.tokenize('4111 1111 1111 1111', 'mr_key');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.mask('Alice Smith', 'pseudonym', '{"secret": "mr_key"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lo_from_bytea(0, '\x00112233445566778899aabbccddeeff') AS lo \gset
SELECT stage.import_secret('mr_mine', :lo);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mr_customers', 'email', 'null');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT lo_unlink(:lo);

----------------------------------------------------------------------------
-- 4. A mask change shows at once, to an analyst too
----------------------------------------------------------------------------
SET ROLE mr_owner;
SELECT stage.add_mask('mr_customers', 'email', 'hash', '{"secret": "mr_key", "length": 16}');
SET ROLE mr_analyst;
SELECT landing_id, row_data->>'email' AS email FROM stage.quarantine
 WHERE pipeline = 'mr_customers' ORDER BY landing_id;
RESET ROLE;
-- (checked as superuser: the analyst can compute neither side)
SELECT bool_and(q.row_data->>'email' = left(stage.mask_hash(r.raw_data->>'email', 'mr_key'), 16)) AS is_the_new_hash
  FROM stage.quarantine q JOIN stage.quarantine_raw('mr_customers') r USING (landing_id);
-- and a dropped mask shows the value as the target now gets it
SET ROLE mr_owner;
SELECT stage.drop_mask('mr_customers', 'email');
SET ROLE mr_analyst;
SELECT landing_id, row_data->>'email' AS email FROM stage.quarantine
 WHERE pipeline = 'mr_customers' ORDER BY landing_id;
-- leaving stage_analyst, the quarantine is out of sight
RESET ROLE;
REVOKE stage_analyst FROM mr_analyst;
SET ROLE mr_analyst;
SELECT count(*) AS after_revoke FROM stage.quarantine;
RESET ROLE;

----------------------------------------------------------------------------
-- 5. Anyone else sees no quarantine row at all
----------------------------------------------------------------------------
SELECT pipeline_id AS mr_pid FROM stage.pipeline WHERE name = 'mr_customers' \gset
SET ROLE mr_stranger;
SELECT count(*) AS stranger_sees FROM stage.quarantine;
SELECT count(*) AS stranger_summary FROM stage.dlq_summary;
SELECT stage._quarantine_count(:mr_pid) IS NULL AS no_count;
SELECT * FROM stage.quarantine_raw('mr_customers');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

SET ROLE mr_owner;
SELECT stage.drop_pipeline('mr_customers', force => true);
RESET ROLE;
-- no role but the catalog owner ever holds a right on the raw rows
SELECT has_column_privilege('mr_owner', 'stage.quarantine_log', 'raw_data', 'SELECT') AS owner_raw_after_drop;
DROP TABLE mr_customers;
SELECT stage.drop_secret('mr_key', drop_tokens => true);
REVOKE EXECUTE ON FUNCTION stage.detokenize(text) FROM mr_owner, mr_analyst;
DROP ROLE mr_owner;
DROP ROLE mr_producer;
DROP ROLE mr_analyst;
DROP ROLE mr_stranger;
DROP OWNED BY stage_producer, stage_analyst;
DROP ROLE stage_producer;
DROP ROLE stage_analyst;
