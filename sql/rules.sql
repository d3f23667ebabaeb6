--
-- rules: the implicit type check, the rule kinds (not_null, range, enum,
-- regex), NULL handling, severities, contract versions and rule statistics.
--
-- Every object of this file is prefixed ru_; the file drops what it creates.
--
\set SHOW_CONTEXT never

-- A reason list, one line per failure, for the quarantined rows of a pipeline.
CREATE VIEW ru_reasons AS
SELECT q.pipeline, q.landing_id, r.ordinality AS n, r.value->>'rule' AS rule,
	   r.value->>'kind' AS kind, r.value->>'column' AS col, r.value->>'value' AS value,
	   r.value->>'sqlstate' AS sqlstate, r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r;

----------------------------------------------------------------------------
-- 1. The implicit type check: every value must convert to its target
--    column's type; a value that does not sends its row to quarantine with
--    the input function's SQLSTATE and message.  No rule is declared here.
----------------------------------------------------------------------------
CREATE DOMAIN ru_positive AS integer CHECK (VALUE > 0);
CREATE TABLE ru_items (
	id			integer,
	qty			integer,
	price		numeric(6,2),
	ship_date	date,
	created_at	timestamp,
	code		varchar(5),
	active		boolean,
	token		uuid,
	stock		ru_positive
);
SELECT stage.create_pipeline('ru_items', 'ru_items');

INSERT INTO stage_landing.ru_items
	(id, qty, price, ship_date, created_at, code, active, token, stock) VALUES
	-- valid, including edge values: a leap day, 5 multibyte characters in
	-- varchar(5), a price that rounds to 2 decimals within numeric(6,2)
	('1', '7', '9999.99', '2024-02-29', '2024-01-01 10:00:00', 'ÅÄÖÆØ', 'yes',
	 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '1'),
	('2', ' 8 ', '12.345', '2024-12-31', '2024-06-30T23:59:59.5', 'abcde', 'f',
	 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2147483647'),
	-- one bad value each
	('3', 'ten', NULL, NULL, NULL, NULL, NULL, NULL, NULL),			-- not an integer
	('4', '2147483648', NULL, NULL, NULL, NULL, NULL, NULL, NULL),	-- integer out of range
	('5', NULL, '10000', NULL, NULL, NULL, NULL, NULL, NULL),		-- numeric(6,2) overflow
	('6', NULL, '9999.995', NULL, NULL, NULL, NULL, NULL, NULL),	-- rounds up to overflow
	('7', NULL, NULL, '2024-02-30', NULL, NULL, NULL, NULL, NULL),	-- no such date
	('8', NULL, NULL, '2023-02-29', NULL, NULL, NULL, NULL, NULL),	-- not a leap year
	('9', NULL, NULL, NULL, '2024-13-01', NULL, NULL, NULL, NULL),	-- no such month
	('10', NULL, NULL, NULL, NULL, 'abcdef', NULL, NULL, NULL),		-- varchar(5) too long
	('11', NULL, NULL, NULL, NULL, NULL, 'maybe', NULL, NULL),		-- not a boolean
	('12', NULL, NULL, NULL, NULL, NULL, NULL, 'not-a-uuid', NULL),	-- not a uuid
	('13', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0'),			-- domain CHECK fails
	-- NULLs pass the type check
	('14', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	-- several bad values: every one is reported, in column order
	('15', 'x', 'y', 'z', NULL, NULL, NULL, NULL, '-5');

SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('ru_items');

-- the clean rows, converted by the target's own types
SELECT * FROM ru_items ORDER BY id;

-- each quarantined row with its reasons: the rule is "<column>_type", the
-- kind "type", and the SQLSTATE and message are the input function's
SELECT landing_id, n, rule, kind, col, value, sqlstate, message
  FROM ru_reasons WHERE pipeline = 'ru_items' ORDER BY landing_id, n;

----------------------------------------------------------------------------
-- 2. Declared rules.  Every rule change returns the new contract version.
----------------------------------------------------------------------------
CREATE TABLE ru_orders (
	id			integer,
	qty			integer,
	price		numeric(8,2),
	ship_date	date,
	created_at	timestamp,
	paid_at		timestamptz,
	currency	text,
	sku			text,
	name		text,
	note		text
);
SELECT stage.create_pipeline('ru_orders', 'ru_orders');
SELECT stage.add_rule('ru_orders', 'id', 'not_null');
-- range on integers, min and max
SELECT stage.add_rule('ru_orders', 'qty', 'range', '{"min": 1, "max": 10}');
-- range on numeric, min only
SELECT stage.add_rule('ru_orders', 'price', 'range', '{"min": 0.5}');
-- range on dates
SELECT stage.add_rule('ru_orders', 'ship_date', 'range',
					  '{"min": "2024-01-01", "max": "2024-12-31"}');
-- range on timestamps, max only
SELECT stage.add_rule('ru_orders', 'created_at', 'range', '{"max": "2024-06-30 23:59:59"}');
-- range on timestamptz, min only (with an explicit offset)
SELECT stage.add_rule('ru_orders', 'paid_at', 'range', '{"min": "2024-01-01 00:00:00+00"}');
-- enum: exact, case-sensitive membership
SELECT stage.add_rule('ru_orders', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
-- regex with the case-insensitive flag
SELECT stage.add_rule('ru_orders', 'sku', 'regex',
					  '{"pattern": "^[a-z]{2}-\\d+$", "flags": "i"}');
-- regex on characters, not bytes: \w matches letters of any script
SELECT stage.add_rule('ru_orders', 'name', 'regex', '{"pattern": "^\\w+( \\w+)*$"}',
					  rule_name => 'name_words');
-- a warning rule: counted, the row passes
SELECT stage.add_rule('ru_orders', 'note', 'regex', '{"pattern": "^ok$"}',
					  severity => 'warn', rule_name => 'note_is_ok');

-- the contract: its version, and the rules in declaration order, names
-- defaulting to <column>_<kind>, the arguments as given
SELECT stage.contract('ru_orders')->'version' AS version;
SELECT jsonb_pretty(stage.contract('ru_orders')->'rules');

INSERT INTO stage_landing.ru_orders
	(id, qty, price, ship_date, created_at, paid_at, currency, sku, name, note) VALUES
	-- on every boundary: passes
	('1', '1', '0.50', '2024-01-01', '2024-06-30 23:59:59', '2024-01-01 00:00:00+00',
	 'USD', 'AB-12', 'Zoë Ångström', 'ok'),
	-- on the other boundaries: passes, but fails the warning rule
	('2', '10', '999999.99', '2024-12-31', '1900-01-01', '2024-01-01 01:00:00+01',
	 'EUR', 'xy-0', 'Łukasz', 'not ok'),
	-- all NULL: fails not_null only, NULL passes every other rule
	(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	-- id present, everything else NULL: passes every rule
	('4', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	-- just below every minimum / outside every set
	('5', '0', '0.49', '2023-12-31', '2024-07-01', '2023-12-31 23:59:59+00',
	 'usd', 'AB12', 'Zoë!', 'ok'),
	-- just above every maximum
	('6', '11', '-1', '2025-01-01', '2024-06-30 23:59:59.5', '2023-12-31 23:59:59-01',
	 'JPY', 'A-1', 'two  spaces', NULL),
	-- a value that fails its type check is not also checked by its rules
	('7', 'many', '1', '2024-05-05', NULL, NULL, 'GBP', 'zz-9', 'ok', NULL);

SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('ru_orders');
SELECT id, qty, price, ship_date, created_at, currency, sku, name, note
  FROM ru_orders ORDER BY id;

-- every failing rule of a row is listed, with rule name, kind, column,
-- value, message and the contract version it was checked against
SELECT landing_id, n, rule, kind, col, value, sqlstate, message
  FROM ru_reasons WHERE pipeline = 'ru_orders' ORDER BY landing_id, n;
SELECT DISTINCT landing_id, contract_version FROM stage.quarantine
 WHERE pipeline = 'ru_orders' ORDER BY 1;

-- warn: the row with the failing note moved, and is counted as warned
SELECT rows_in, rows_clean, rows_quarantined, rows_warned, contract_version
  FROM stage.batches WHERE pipeline = 'ru_orders';

-- rule_stats: per rule (and per column type check) how many values were
-- checked and how many failed; NULLs are not checked except by not_null
SELECT rule_name, column_name, kind, severity, checked, failed
  FROM stage.rule_stats WHERE pipeline = 'ru_orders'
 ORDER BY kind <> 'type', rule_name;

----------------------------------------------------------------------------
-- 3. Statistics belong to their batch: a second batch in the same session
--    reports only its own row (one row: id, qty, currency and note set).
----------------------------------------------------------------------------
INSERT INTO stage_landing.ru_orders (id, qty, currency, note) VALUES ('8', '5', 'USD', 'ok');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('ru_orders');
SELECT rule_name, checked, failed
  FROM stage.rule_stats s
 WHERE pipeline = 'ru_orders' AND kind <> 'type'
   AND batch_id = (SELECT max(batch_id) FROM stage.batches WHERE pipeline = 'ru_orders')
 ORDER BY rule_name;

----------------------------------------------------------------------------
-- 4. drop_rule: a new version without the rule; later batches use it.
----------------------------------------------------------------------------
SELECT stage.drop_rule('ru_orders', 'currency_enum');
SELECT r->>'name' AS rule FROM jsonb_array_elements(stage.contract('ru_orders')->'rules') r;
INSERT INTO stage_landing.ru_orders (id, currency) VALUES ('9', 'JPY');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('ru_orders');
SELECT id, currency FROM ru_orders WHERE id = 9;
-- batches record the contract version they ran with
SELECT rows_in, contract_version FROM stage.batches
 WHERE pipeline = 'ru_orders' ORDER BY batch_id;
-- one history entry per version, each holding the contract of that version
SELECT h.version, jsonb_array_length(h.contract->'rules') AS rules,
	   (h.contract->>'version')::int = h.version AS consistent
  FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name = 'ru_orders' ORDER BY h.version;

-- a rule name is unique within its pipeline
SELECT stage.add_rule('ru_orders', 'note', 'not_null', rule_name => 'note_is_ok');
SELECT stage.drop_rule('ru_orders', 'currency_enum');
SELECT contract_version FROM stage.pipelines WHERE pipeline = 'ru_orders';

SELECT stage.drop_pipeline('ru_items', force => true);
SELECT stage.drop_pipeline('ru_orders', force => true);
DROP VIEW ru_reasons;
DROP TABLE ru_items, ru_orders;
DROP DOMAIN ru_positive;
