--
-- alter: stage.alter_rule, stage.alter_mask and stage.alter_transform
-- change a rule, a mask or a transform in place (name and position kept),
-- checked exactly as add_rule, add_mask and add_transform check them, in
-- one new contract version; a batch after the change runs the new args.
--
-- Roles: al_owner, al_stranger.  Other objects are prefixed al_.  The file drops
-- what it creates.
--
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS al_stranger;
DROP ROLE IF EXISTS al_owner;
RESET client_min_messages;

-- the outcome of a call: its result, or the SQLSTATE, message and hint of its error
CREATE FUNCTION al_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	res text;
	hint text;
BEGIN
	EXECUTE sql INTO res;
	RETURN 'ok: ' || res;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || SQLERRM || COALESCE(' (hint: ' || NULLIF(hint, '') || ')', '');
END
$$;

-- the error of an add_ call and of the matching alter_ call, and whether they are the same
CREATE FUNCTION al_same(add_sql text, alter_sql text) RETURNS TABLE (same boolean, error text)
LANGUAGE sql AS $$
	SELECT al_try(add_sql) = al_try(alter_sql), al_try(alter_sql)
$$;

CREATE TABLE al_t (id integer PRIMARY KEY, qty integer, cur text, email text, note text);
CREATE ROLE al_owner NOLOGIN;
ALTER TABLE al_t OWNER TO al_owner;
SELECT stage.create_pipeline('al', 'al_t', key => ARRAY['id']);
SELECT stage.add_transform('al', 'note', 'default', '{"value": "(none)"}');
SELECT stage.add_transform('al', 'cur', 'upper');
SELECT stage.add_rule('al', 'qty', 'range', '{"min": 1, "max": 10}');
SELECT stage.add_rule('al', 'cur', 'enum', '{"values": ["EUR", "USD"]}');
SELECT stage.add_rule('al', 'email', 'format', '{"format": "email"}');
SELECT stage.add_mask('al', 'email', 'email');

-- the contract's parts in order, and its version
CREATE VIEW al_contract AS
SELECT 'transform' AS part, o AS pos, e->>'name' AS name, e->>'method' AS what, e->'args' AS args,
	   NULL AS severity
  FROM jsonb_array_elements(stage.contract('al')->'transforms') WITH ORDINALITY t(e, o)
UNION ALL
SELECT 'rule', o, e->>'name', e->>'kind', e->'args', e->>'severity'
  FROM jsonb_array_elements(stage.contract('al')->'rules') WITH ORDINALITY r(e, o)
UNION ALL
SELECT 'mask', o, e->>'column', e->>'method', e->'args', NULL
  FROM jsonb_array_elements(stage.contract('al')->'masks') WITH ORDINALITY m(e, o)
ORDER BY 1 DESC, 2;
SELECT * FROM al_contract;
SELECT (stage.contract('al')->>'version')::int AS version,
	   (SELECT count(*) FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'al') AS versions;

-- a batch under the contract as added
INSERT INTO stage_landing.al (id, qty, cur, email, note) VALUES
	('1', '0', 'eur', 'ann@example.com', NULL),
	('2', '20', 'gbp', 'bob@example.com', 'x');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('al');

----------------------------------------------------------------------------
-- 1. alter_rule
----------------------------------------------------------------------------
-- args only: one new version, the rule keeps its name and place
SELECT stage.alter_rule('al', 'qty_range', '{"min": 0, "max": 100}');
SELECT * FROM al_contract WHERE part = 'rule';
-- severity only
SELECT stage.alter_rule('al', 'cur_enum', severity => 'warn');
-- both
SELECT stage.alter_rule('al', 'cur_enum', '{"values": ["EUR", "USD", "GBP"]}', 'reject');
SELECT * FROM al_contract WHERE part = 'rule';
-- the same args and severity again: nothing changes, no new version
SELECT stage.alter_rule('al', 'qty_range', '{"min": 0, "max": 100}', 'reject');
SELECT (stage.contract('al')->>'version')::int AS version,
	   (SELECT count(*) FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'al') AS versions;
-- the contract history records each version with the new args
SELECT h.version, h.contract->'rules'->0->'args' AS qty_args, h.contract->'rules'->1->>'severity' AS cur_severity
  FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name = 'al' ORDER BY h.version DESC LIMIT 3;

-- errors
SELECT stage.alter_rule('al', 'qty_range');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_rule('al', 'no_such_rule', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_rule('no_such_pipeline', 'qty_range', '{}');
\echo :LAST_ERROR_SQLSTATE
-- validated exactly as add_rule: the same errors for the same args
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'qty', 'range', '{"min": "x"}', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'qty_range', '{"min": "x"}')$$);
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'qty', 'range', '{"min": 5, "max": 1}', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'qty_range', '{"min": 5, "max": 1}')$$);
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'qty', 'range', '{"mn": 1}', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'qty_range', '{"mn": 1}')$$);
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'cur', 'enum', '{"values": []}', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'cur_enum', '{"values": []}')$$);
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'email', 'format', '{"format": "nope"}', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'email_format', '{"format": "nope"}')$$);
SELECT * FROM al_same($$SELECT stage.add_rule('al', 'qty', 'range', '{"min": 1}', 'fatal', rule_name => 'x')$$,
					  $$SELECT stage.alter_rule('al', 'qty_range', severity => 'fatal')$$);
-- a refused change leaves the rule and the version as they were
SELECT * FROM al_contract WHERE part = 'rule' AND name = 'qty_range';
SELECT (stage.contract('al')->>'version')::int AS version;

----------------------------------------------------------------------------
-- 2. alter_transform
----------------------------------------------------------------------------
SELECT stage.alter_transform('al', 'note_default', '{"value": "n/a"}');
SELECT * FROM al_contract WHERE part = 'transform';
SELECT stage.alter_transform('al', 'note_default', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_transform('al', 'no_such_transform', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM al_same($$SELECT stage.add_transform('al', 'note', 'default', '{"valu": 1}', 'x')$$,
					  $$SELECT stage.alter_transform('al', 'note_default', '{"valu": 1}')$$);
SELECT * FROM al_same($$SELECT stage.add_transform('al', 'cur', 'upper', '{"x": 1}', 'x')$$,
					  $$SELECT stage.alter_transform('al', 'cur_upper', '{"x": 1}')$$);
SELECT * FROM al_contract WHERE part = 'transform';

----------------------------------------------------------------------------
-- 3. alter_mask
----------------------------------------------------------------------------
SELECT stage.alter_mask('al', 'email', 'partial', '{"keep_start": 1}');
SELECT * FROM al_contract WHERE part = 'mask';
-- args only: the method is kept
SELECT stage.alter_mask('al', 'email', args => '{"keep_start": 2}');
SELECT * FROM al_contract WHERE part = 'mask';
SELECT stage.alter_mask('al', 'email');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_mask('al', 'cur', 'redact');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM al_same($$SELECT stage.add_mask('al', 'email', 'partial', '{"keep_start": -1}')$$,
					  $$SELECT stage.alter_mask('al', 'email', 'partial', '{"keep_start": -1}')$$);
SELECT * FROM al_same($$SELECT stage.add_mask('al', 'email', 'nope')$$,
					  $$SELECT stage.alter_mask('al', 'email', 'nope')$$);
-- a new method keeps the old args unless given its own
SELECT * FROM al_same($$SELECT stage.add_mask('al', 'email', 'email', '{"keep_start": 2}')$$,
					  $$SELECT stage.alter_mask('al', 'email', 'email')$$);
SELECT * FROM al_contract WHERE part = 'mask';

SELECT (stage.contract('al')->>'version')::int AS version,
	   (SELECT count(*) FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'al') AS versions;

----------------------------------------------------------------------------
-- 4. a batch after the changes runs the new args
----------------------------------------------------------------------------
INSERT INTO stage_landing.al (id, qty, cur, email, note) VALUES
	('3', '0', 'gbp', 'carl@example.com', NULL),		-- clean now: qty 0 and GBP allowed
	('4', '200', 'chf', 'dora@example.com', 'y');		-- still out of range and not in the list
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('al');
SELECT id, qty, cur, email, note FROM al_t ORDER BY id;
SELECT q.landing_id, r->>'rule' AS rule, r->>'message' AS message, (r->>'contract_version')::int AS version
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline = 'al' ORDER BY 1, 2;

----------------------------------------------------------------------------
-- 5. only the owner may alter
----------------------------------------------------------------------------
CREATE ROLE al_stranger NOLOGIN;
SET ROLE al_stranger;
SELECT stage.alter_rule('al', 'qty_range', '{"min": -1000}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_mask('al', 'email', 'constant', '{"value": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.alter_transform('al', 'note_default', '{"value": "x"}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT (stage.contract('al')->>'version')::int AS version;

SELECT stage.drop_pipeline('al', force => true);
DROP VIEW al_contract;
DROP FUNCTION al_same(text, text), al_try(text);
DROP TABLE al_t;
DROP ROLE al_stranger, al_owner;
