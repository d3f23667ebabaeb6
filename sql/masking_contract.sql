--
-- masking_contract: masks in a contract.  add_mask checks every method's
-- arguments and the column it masks (type, length, NOT NULL) with a clear
-- error; the mover masks before writing, so the target never holds a raw
-- value of a masked column; quarantine shows masked columns masked with
-- their current mask, also right after the mask changed.
--
-- Every object of this file is prefixed mc_; the file drops what it creates.
--
\set SHOW_CONTEXT never
SET datestyle = ISO;
SET timezone = 'UTC';
SELECT lo_from_bytea(0, '\x0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0') AS lo \gset
SELECT stage.import_secret('mc_key', :lo);

CREATE TABLE mc_people (
	id		integer PRIMARY KEY,
	email	text,
	name	text,
	phone	varchar(20),
	born	date,
	seen	timestamptz,
	salary	numeric(10,2),
	age		integer CHECK (age < 150),
	note	text,
	card	varchar(40),
	code	varchar(16),
	status	text NOT NULL DEFAULT 'new'
);
SELECT stage.create_pipeline('mc_people', 'mc_people', key => '{id}');

----------------------------------------------------------------------------
-- 1. Bad arguments and unsuitable columns are refused when declared
----------------------------------------------------------------------------
SELECT stage.add_mask('mc_people', 'email', 'hash', '{"secret": "mc_key", "encoding": "base32"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'email', 'hash', '{"secret": 7}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'email', 'pseudonym', '{"secret": "mc_key", "domain": "drop"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'email', 'pseudonym', '{"secret": "mc_missing"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'phone', 'phone', '{"keep": 11}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'note', 'redact', '{"pattern": "[a-"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'note', 'redact_pii', '{"kinds": "email"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'note', 'redact_pii', '{"kinds": ["email", "dna"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'age', 'constant', '{"value": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'salary', 'noise', '{"ratio": "10%"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'born', 'generalize', '{"unit": "decade"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'card', 'tokenize', '{"prefix": "a-very-long-prefix-indeed"}');
\echo :LAST_ERROR_SQLSTATE
-- the column: text-writing masks need text, others a type they can write
SELECT stage.add_mask('mc_people', 'age', 'pseudonym', '{"secret": "mc_key"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'born', 'generalize', '{"unit": "hour"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'born', 'noise', '{"ratio": 0.1}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'salary', 'generalize', '{"unit": "year"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'age', 'generalize', '{"bucket": 2.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'age', 'generalize', '{"bucket": 10, "format": "range"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'age', 'constant', '{"value": "old"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'status', 'null');
\echo :LAST_ERROR_SQLSTATE
-- fixed-length outputs must fit varchar(n)
SELECT stage.add_mask('mc_people', 'code', 'hash', '{"secret": "mc_key"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('mc_people', 'code', 'tokenize', '{"secret": "mc_key"}');
\echo :LAST_ERROR_SQLSTATE
-- set_contract goes through the same checks
SELECT stage.set_contract('mc_people', '{"key": ["id"], "masks": [{"column": "age", "method": "noise", "args": {"ratio": 2}}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.contract('mc_people')->'masks' AS masks_after_refusals;

----------------------------------------------------------------------------
-- 2. Every method in one contract
----------------------------------------------------------------------------
SELECT stage.add_mask('mc_people', 'email', 'pseudonym', '{"secret": "mc_key"}');
SELECT stage.add_mask('mc_people', 'name', 'pseudonym', '{"secret": "mc_key"}');
SELECT stage.add_mask('mc_people', 'phone', 'phone');
SELECT stage.add_mask('mc_people', 'born', 'generalize', '{"unit": "year"}');
SELECT stage.add_mask('mc_people', 'seen', 'generalize', '{"unit": "hour"}');
SELECT stage.add_mask('mc_people', 'salary', 'noise', '{"ratio": 0.1, "seed": 7}');
SELECT stage.add_mask('mc_people', 'age', 'generalize', '{"bucket": 10}');
SELECT stage.add_mask('mc_people', 'note', 'redact_pii');
SELECT stage.add_mask('mc_people', 'card', 'tokenize', '{"secret": "mc_key"}');
SELECT stage.add_mask('mc_people', 'code', 'hash', '{"secret": "mc_key", "length": 16}');
-- rules see raw values
SELECT stage.add_rule('mc_people', 'email', 'format', '{"format": "email"}');

INSERT INTO stage_landing.mc_people (id, email, name, phone, born, seen, salary, age, note, card, code, status) VALUES
	('1', 'alice@example.com', 'Alice Smith', '+1 (555) 010-0100', '1980-05-17',
	 '2024-03-17 13:45:12+00', '52000.00', '44', 'mail alice@example.com', '4111 1111 1111 1111', 'A-1', 'new'),
	('2', 'zoe@example.org', 'Zoë Ångström', '+33 1 23 45 67 89', '1991-12-01',
	 '2024-03-17 23:59:59+00', '61000.50', '33', 'aucune', '5500 0000 0000 0004', 'B-2', 'new'),
	-- fails the email rule
	('3', 'bob@example', 'Bob Jones', '555-010-0101', '1975-01-31',
	 '2024-03-18 00:00:00+00', '100.00', '51', 'ok', '4111 1111 1111 1111', 'C-3', 'new'),
	-- fails the target's CHECK on age: the failing row in the message is masked
	('4', 'carol@example.com', 'Carol King', '555-010-0102', '1960-02-29',
	 '2024-03-18 08:00:00+00', '70000.00', '200', 'ok', '378282246310005', 'D-4', 'new'),
	-- not a date, not a number: type checks, messages without the values
	('5', 'dave@example.com', 'Dave Brown', '555-010-0103', 'sometime in 1990',
	 '2024-03-18 08:00:00+00', 'lots', '20', 'ok', NULL, 'E-5', 'new'),
	-- NULLs stay NULL, empty strings are masked like any value
	('6', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'new'),
	('7', 'erin@example.com', '', '', NULL, NULL, NULL, NULL, '', '', '', 'new');

SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('mc_people');
SELECT id, email, name, phone, born, seen, salary, age, note, code, card ~ '^tok_' AS card_tokenized
  FROM mc_people ORDER BY id;
-- tokens: one per distinct value, the same in target and quarantine
SELECT count(DISTINCT card) AS distinct_tokens, count(card) AS tokens FROM mc_people;
SELECT (SELECT card FROM mc_people WHERE id = 1) = (SELECT row_data->>'card' FROM stage.quarantine
	WHERE pipeline = 'mc_people' AND landing_id = 3) AS same_card_same_token;
SELECT bool_and(stage.detokenize(p.card) = l.card) AS detokenizes_to_landing
  FROM mc_people p JOIN stage_landing.mc_people l ON l.id = p.id::text WHERE p.card IS NOT NULL;
-- no raw value of a masked column in its row of the target (empty strings
-- aside; redact_pii keeps the text around what it redacts, so note is left out)
SELECT count(*) AS raw_values_in_target
  FROM stage_landing.mc_people l JOIN mc_people p ON p.id = l.id::integer
 WHERE strpos(p::text, NULLIF(l.email, '')) > 0 OR strpos(p::text, NULLIF(l.name, '')) > 0
	OR strpos(p::text, NULLIF(l.phone, '')) > 0 OR strpos(p::text, NULLIF(l.card, '')) > 0
	OR strpos(p::text, NULLIF(l.code, '')) > 0 OR strpos(p::text, NULLIF(l.born, '')) > 0;

-- quarantine: row_data, values and messages masked
SELECT landing_id, jsonb_pretty(row_data - 'card') AS row_data FROM stage.quarantine
 WHERE pipeline = 'mc_people' ORDER BY landing_id;
-- (tokens are random: shown as <token>)
SELECT landing_id, r->>'rule' AS rule, r->>'value' AS value, r->>'sqlstate' AS sqlstate,
	   regexp_replace(r->>'message', 'tok_[a-z0-9]{24}', '<token>', 'g') AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE pipeline = 'mc_people' ORDER BY landing_id, rule;

----------------------------------------------------------------------------
-- 3. Quarantine follows the current masks at once
----------------------------------------------------------------------------
-- the name mask becomes partial, code loses its mask, email gains a
-- stronger one: rows quarantined before show the new masking now
SELECT stage.add_mask('mc_people', 'name', 'partial', '{"keep_start": 2}');
SELECT stage.drop_mask('mc_people', 'code');
SELECT stage.add_mask('mc_people', 'email', 'null');
SELECT landing_id, row_data->>'name' AS name, row_data->>'code' AS code,
	   row_data->>'email' AS email, row_data->>'phone' AS phone
  FROM stage.quarantine WHERE pipeline = 'mc_people' ORDER BY landing_id;
-- the failing row in the CHECK message follows too
SELECT landing_id, regexp_replace(message, 'tok_[a-z0-9]{24}', '<token>', 'g') AS message
  FROM stage.quarantine WHERE pipeline = 'mc_people' AND rule_name = 'mc_people_age_check';
-- the rows as they landed, for the owner only
SELECT landing_id, raw_data->>'name' AS name, raw_data->>'code' AS code
  FROM stage.quarantine_raw('mc_people') ORDER BY landing_id;
SELECT rule_name, failures FROM stage.dlq_summary WHERE pipeline = 'mc_people' ORDER BY rule_name;
SELECT stage._quarantine_count(pipeline_id) AS dlq_size FROM stage.pipeline WHERE name = 'mc_people';
SELECT * FROM stage.quarantine_raw('mc_nope');

-- a secret in use cannot be dropped
SELECT stage.drop_secret('mc_key');

SELECT stage.drop_pipeline('mc_people', force => true);
DROP TABLE mc_people;
SELECT stage.drop_secret('mc_key', drop_tokens => true);
