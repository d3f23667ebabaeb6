--
-- rule_messages: the message of a failed enum, range, length, format,
-- regex or reference rule names the value: quoted as the row shows it
-- (masked where the column is masked), only when it is at most 64 bytes
-- and needs no escaping; any other value is named by its length, never by
-- a prefix.
--
-- Every object of this file is prefixed rm_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE VIEW rm_reasons AS
SELECT q.pipeline, q.landing_id, r.ordinality AS n, r.value->>'rule' AS rule,
	   r.value->>'value' AS value, r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r;

CREATE TABLE rm_ref (code text PRIMARY KEY);
INSERT INTO rm_ref VALUES ('A1'), ('B2');
CREATE TABLE rm_t (id integer PRIMARY KEY, cur text, qty integer, name text,
				   email text, sku text, ref text);

----------------------------------------------------------------------------
-- 1. each kind names the value
----------------------------------------------------------------------------
SELECT stage.create_pipeline('rm_kinds', 'rm_t', key => ARRAY['id']);
SELECT stage.add_rule('rm_kinds', 'cur', 'enum', '{"values": ["EUR", "USD"]}');
SELECT stage.add_rule('rm_kinds', 'qty', 'range', '{"min": 1, "max": 10}');
SELECT stage.add_rule('rm_kinds', 'name', 'length', '{"min": 2, "max": 5}');
SELECT stage.add_rule('rm_kinds', 'email', 'format', '{"format": "email"}');
SELECT stage.add_rule('rm_kinds', 'sku', 'regex', '{"pattern": "^[a-z]+-[0-9]+$"}');
SELECT stage.add_rule('rm_kinds', 'ref', 'reference', '{"table": "public.rm_ref", "column": "code"}');

INSERT INTO stage_landing.rm_kinds (id, cur, qty, name, email, sku, ref) VALUES
	('1', 'EUR', '5', 'abc', 'a@example.com', 'ab-1', 'A1'),	-- clean
	('2', 'XYZ', '0', 'a', 'nobody', 'AB1', 'C3'),				-- every rule fails
	('3', 'Zoë', '11', 'abcdef', 'x@', 'ab-', 'b2'),			-- the other bounds
	-- 65 bytes (64 characters and one two-byte): named by length only
	('4', repeat('q', 63) || 'é', '5', repeat('n', 300), 'a@example.com', 'ab-1', 'A1'),
	-- exactly 64 bytes: quoted
	('5', repeat('w', 64), '5', 'abc', 'a@example.com', 'ab-1', 'A1'),
	-- a quote, a backslash, a control character: nothing to escape in a quoted value
	('6', 'a"b', '5', E'x\\y', E'tab\there@example', 'ab-1', 'A1');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('rm_kinds');
SELECT landing_id, n, rule, message
  FROM rm_reasons WHERE pipeline = 'rm_kinds' ORDER BY landing_id, n;
-- the reason's value field still carries the whole value
SELECT landing_id, rule, length(value) AS value_length
  FROM rm_reasons WHERE pipeline = 'rm_kinds' AND landing_id = 4 ORDER BY n;
-- no prefix of a long value is in any message
SELECT count(*) AS prefixes_quoted
  FROM rm_reasons WHERE pipeline = 'rm_kinds' AND (message LIKE '%qqqq%' OR message LIKE '%nnnn%');

----------------------------------------------------------------------------
-- 2. a masked column's message quotes the masked value, never the raw one
----------------------------------------------------------------------------
TRUNCATE rm_t;
SELECT stage.create_pipeline('rm_masked', 'rm_t', key => ARRAY['id']);
SELECT stage.add_rule('rm_masked', 'email', 'format', '{"format": "email"}');
SELECT stage.add_rule('rm_masked', 'name', 'enum', '{"values": ["ok"]}');
SELECT stage.add_rule('rm_masked', 'sku', 'regex', '{"pattern": "^[a-z]+-[0-9]+$"}');
SELECT stage.add_rule('rm_masked', 'cur', 'length', '{"max": 2}');
SELECT stage.add_mask('rm_masked', 'email', 'partial', '{"keep_start": 2}');
SELECT stage.add_mask('rm_masked', 'name', 'null');
SELECT stage.add_mask('rm_masked', 'cur', 'constant', '{"value": "[c]"}');
INSERT INTO stage_landing.rm_masked (id, cur, qty, name, email, sku, ref) VALUES
	('1', 'rawcurrency', '1', 'rawname', 'rawsecret', 'rawsku', NULL);
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('rm_masked');
SELECT landing_id, n, rule, value, message
  FROM rm_reasons WHERE pipeline = 'rm_masked' ORDER BY landing_id, n;
-- no raw value of a masked column anywhere in the reasons
SELECT count(*) AS raw_in_reasons
  FROM stage.quarantine q
 WHERE q.pipeline = 'rm_masked'
   AND (q.reasons::text LIKE '%rawsecret%' OR q.reasons::text LIKE '%rawname%'
		OR q.reasons::text LIKE '%rawcurrency%');
-- nor in the reasons as stored
SELECT count(*) AS raw_in_stored_reasons
  FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name = 'rm_masked'
   AND (q.reasons::text LIKE '%rawsecret%' OR q.reasons::text LIKE '%rawname%'
		OR q.reasons::text LIKE '%rawcurrency%');
-- stage.check_row shows no form of a masked value, in the message neither
SELECT r->>'rule' AS rule, r->>'value' AS value, r->>'message' AS message
  FROM jsonb_array_elements(stage.check_row('rm_masked',
		'{"id": "2", "email": "rawsecret", "name": "rawname", "cur": "rawcurrency"}')) r;

-- a mask added later masks the value quoted in the old messages too
SELECT stage.add_mask('rm_masked', 'sku', 'constant', '{"value": "[sku]"}');
SELECT landing_id, n, rule, value, message
  FROM rm_reasons WHERE pipeline = 'rm_masked' ORDER BY landing_id, n;
SELECT count(*) AS raw_in_reasons
  FROM stage.quarantine q
 WHERE q.pipeline = 'rm_masked' AND q.reasons::text LIKE '%rawsku%';

SELECT stage.drop_pipeline(p, force => true) FROM unnest(ARRAY['rm_kinds', 'rm_masked']) p;
DROP VIEW rm_reasons;
DROP TABLE rm_t, rm_ref;
