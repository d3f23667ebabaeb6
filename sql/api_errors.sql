--
-- api_errors: every misuse of the API is refused with a clear error, an
-- errcode (shown after each error) and, where there is something to do
-- about it, a hint; and a refused call changes nothing.
--
-- Every object of this file is prefixed ae_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE TABLE ae_orders (id integer PRIMARY KEY, qty integer, name text, day date);
CREATE VIEW ae_view AS SELECT * FROM ae_orders;
CREATE SEQUENCE ae_seq;
SELECT stage.create_pipeline('ae_orders', 'ae_orders', key => '{id}');
SELECT stage.add_rule('ae_orders', 'qty', 'not_null');

-- the state every refused call below must leave alone
CREATE TEMP TABLE ae_before AS
SELECT (SELECT stage.contract('ae_orders')) AS contract,
	   (SELECT count(*) FROM stage.pipeline) AS pipelines,
	   (SELECT count(*) FROM stage.rule) AS rules,
	   (SELECT count(*) FROM stage.mask) AS masks,
	   (SELECT count(*) FROM stage.contract_history) AS versions,
	   (SELECT count(*) FROM stage.batch) AS batches,
	   (SELECT count(*) FROM pg_class WHERE relnamespace = 'stage_landing'::regnamespace) AS landing_rels;
SELECT contract->'version' AS version FROM ae_before;

----------------------------------------------------------------------------
-- unknown pipeline, column, rule
----------------------------------------------------------------------------
SELECT stage.add_rule('ae_nope', 'qty', 'not_null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_nope', 'name', 'null');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.run_batch('ae_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.contract('ae_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.drop_pipeline('ae_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.pause('ae_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.resume('ae_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.trace('ae_nope', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'nope', 'not_null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'nope', 'null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.drop_rule('ae_orders', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.drop_mask('ae_orders', 'name');
\echo :LAST_ERROR_SQLSTATE
-- a rule name is unique within its pipeline
SELECT stage.add_rule('ae_orders', 'qty', 'not_null');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- rule kinds and their arguments
----------------------------------------------------------------------------
SELECT stage.add_rule('ae_orders', 'qty', 'between');
\echo :LAST_ERROR_SQLSTATE
-- unknown argument keys
SELECT stage.add_rule('ae_orders', 'qty', 'range', '{"min": 1, "maxx": 2}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'qty', 'not_null', '{"strict": true}', rule_name => 'x');
\echo :LAST_ERROR_SQLSTATE
-- arguments must be an object
SELECT stage.add_rule('ae_orders', 'name', 'regex', '["a"]');
\echo :LAST_ERROR_SQLSTATE
-- enum without values, or with an empty list, or not a list
SELECT stage.add_rule('ae_orders', 'name', 'enum');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'enum', '{"values": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'enum', '{"values": "a"}');
\echo :LAST_ERROR_SQLSTATE
-- range: neither bound, min > max, a bound that is not of the column's
-- type, and a column that has no order range applies to
SELECT stage.add_rule('ae_orders', 'qty', 'range', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'qty', 'range', '{"min": 5, "max": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'day', 'range', '{"min": "2024-12-31", "max": "2024-01-01"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'qty', 'range', '{"min": "abc"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'day', 'range', '{"max": "2024-02-30"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'range', '{"min": "a"}');
\echo :LAST_ERROR_SQLSTATE
-- regex: no pattern, a pattern that is not a string, a pattern that does
-- not compile, an unknown flag
SELECT stage.add_rule('ae_orders', 'name', 'regex', '{"flags": "i"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'regex', '{"pattern": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'regex', '{"pattern": "([a-z]"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', 'regex', '{"pattern": "^a", "flags": "iq"}');
\echo :LAST_ERROR_SQLSTATE
-- severity
SELECT stage.add_rule('ae_orders', 'name', 'not_null', severity => 'fatal');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- masks
----------------------------------------------------------------------------
SELECT stage.add_mask('ae_orders', 'name', 'scramble');
\echo :LAST_ERROR_SQLSTATE
-- masks that write text need a text column
SELECT stage.add_mask('ae_orders', 'qty', 'email');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'day', 'partial');
\echo :LAST_ERROR_SQLSTATE
-- hash needs an existing secret; its length is 0 (all) to 64 hex digits
SELECT stage.add_mask('ae_orders', 'name', 'hash', '{"secret": "ae_no_such_secret"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'name', 'hash', '{"length": 65}');
\echo :LAST_ERROR_SQLSTATE
-- bad arguments
SELECT stage.add_mask('ae_orders', 'name', 'partial', '{"keep_start": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'name', 'partial', '{"keep_start": "2"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'name', 'email', '{"domain": "keep"}');
\echo :LAST_ERROR_SQLSTATE
-- key columns are never masked
SELECT stage.add_mask('ae_orders', 'id', 'null');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- create_pipeline
----------------------------------------------------------------------------
-- the target must be a table
SELECT stage.create_pipeline('ae_v', 'ae_view');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_s', 'ae_seq');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_x', 'ae_no_such_table');
\echo :LAST_ERROR_SQLSTATE
-- format and duplicate policy
SELECT stage.create_pipeline('ae_2', 'ae_orders', format => 'xml');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', 'ae_orders', key => '{id}', on_duplicate => 'merge');
\echo :LAST_ERROR_SQLSTATE
-- names: taken, or not a lower-case identifier of at most 63 characters
SELECT stage.create_pipeline('ae_orders', 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('Ae-Orders', 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('', 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('1ae', 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_' || repeat('x', 61), 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae; drop table ae_orders', 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
-- keys: empty, naming a column that does not exist, without a unique index
SELECT stage.create_pipeline('ae_2', 'ae_orders', key => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', 'ae_orders', key => '{nope}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', 'ae_orders', key => '{qty}');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- run_batch
----------------------------------------------------------------------------
SELECT * FROM stage.run_batch('ae_orders', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.run_batch('ae_orders', -5);
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- NULL arguments
----------------------------------------------------------------------------
SELECT stage.create_pipeline(NULL, 'ae_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', 'ae_orders', format => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_pipeline('ae_2', 'ae_orders', key => '{id}', on_duplicate => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', NULL, 'not_null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('ae_orders', 'name', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', NULL, 'null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('ae_orders', 'name', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.run_batch(NULL);
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- nothing changed: same contract, same version, same catalog
----------------------------------------------------------------------------
SELECT b.contract = stage.contract('ae_orders') AS same_contract,
	   stage.contract('ae_orders')->'version' AS version,
	   b.pipelines = (SELECT count(*) FROM stage.pipeline) AS same_pipelines,
	   b.rules = (SELECT count(*) FROM stage.rule) AS same_rules,
	   b.masks = (SELECT count(*) FROM stage.mask) AS same_masks,
	   b.versions = (SELECT count(*) FROM stage.contract_history) AS same_history,
	   b.batches = (SELECT count(*) FROM stage.batch) AS same_batches,
	   b.landing_rels = (SELECT count(*) FROM pg_class
						  WHERE relnamespace = 'stage_landing'::regnamespace) AS same_landing
  FROM ae_before b;
-- and the name that looked like SQL was only ever a name
SELECT to_regclass('ae_orders') IS NOT NULL AS ae_orders_still_there;

-- a NULL pipeline name is 22004 in every function that names a pipeline
SELECT stage.replay(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.pause(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.trace(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule(NULL, 'id', 'not_null');
\echo :LAST_ERROR_SQLSTATE

SELECT stage.drop_pipeline('ae_orders');
DROP VIEW ae_view;
DROP SEQUENCE ae_seq;
DROP TABLE ae_orders;
