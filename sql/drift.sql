--
-- drift: schema drift of the jsonb landing format.  A payload drifts when
-- it has keys that are not target columns, lacks a key of a NOT NULL
-- column, or gives a value of another JSON type than its column takes
-- (number for numeric columns, boolean for boolean, anything for json and
-- jsonb, string for the rest; a JSON null never drifts).  Drifting rows are
-- counted in stage.batches.rows_drift; the pipeline's drift policy decides
-- what else happens: ignore (count only), quarantine (the drifting rows),
-- hold (the whole batch).  A payload that is not a JSON object maps to
-- nothing and is always quarantined.
--
-- Held batches are announced by a WARNING that names the batch id, which
-- depends on the other suites: client_min_messages hides it here.
--
-- Every object of this file is prefixed dr_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE VIEW dr_reasons AS
SELECT q.pipeline, q.landing_id, r.ordinality AS n, r.value->>'rule' AS rule,
	   r.value->>'kind' AS kind, r.value->>'column' AS col, r.value->>'value' AS value,
	   r.value->>'sqlstate' AS sqlstate, r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r;

CREATE VIEW dr_batches AS
SELECT pipeline, row_number() OVER (PARTITION BY pipeline ORDER BY batch_id) AS batch,
	   status, contract_version, rows_in, rows_clean, rows_quarantined, rows_drift,
	   regexp_replace(error, 'batch \d+', 'batch N') AS error
  FROM stage.batches;

CREATE TABLE dr_events (
	id		integer NOT NULL,
	qty		integer,
	ok		boolean,
	note	text,
	day		date,
	meta	jsonb
);
SELECT stage.create_pipeline('dr_events', 'dr_events', format => 'jsonb');
-- the default policy is ignore
SELECT stage.contract('dr_events')->>'drift' AS drift;

-- the same payloads are sent under each policy
CREATE TABLE dr_payloads (n integer PRIMARY KEY, payload jsonb, what text);
INSERT INTO dr_payloads VALUES
	(1, '{"id": 1, "qty": 2, "ok": true, "note": "a", "day": "2024-01-01", "meta": {"x": 1}}',
		'the target''s shape'),
	(2, '{"id": 2}', 'nullable keys may be absent'),
	(3, '{"id": 3, "qty": null, "ok": null, "note": null}', 'a JSON null never drifts'),
	(4, '{"id": 4, "meta": [1, "two", null]}', 'json and jsonb columns take any type'),
	(5, '{"id": 5, "qty": "3"}', 'type change: a string for a number'),
	(6, '{"id": 6, "ok": "yes", "note": 7}', 'two type changes'),
	(7, '{"id": 7, "colour": "red", "size": 2}', 'two unknown keys'),
	(8, '{"qty": 8}', 'the key of a NOT NULL column is missing'),
	(9, '{"id": 9, "day": 20240101}', 'a number for a date');

CREATE FUNCTION dr_send(base integer) RETURNS void LANGUAGE sql AS $$
	INSERT INTO stage_landing.dr_events (payload)
	SELECT CASE WHEN p.payload ? 'id'
				THEN jsonb_set(p.payload, '{id}', to_jsonb((p.payload->>'id')::int + base))
				ELSE p.payload END
	  FROM dr_payloads p ORDER BY p.n
$$;

----------------------------------------------------------------------------
-- 1. ignore: drift is counted, rows move as far as their values allow
----------------------------------------------------------------------------
SELECT dr_send(0);
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_events');
SELECT batch, status, rows_in, rows_clean, rows_quarantined, rows_drift
  FROM dr_batches WHERE pipeline = 'dr_events';
-- the drifting values still convert ("3" is an integer, "yes" a boolean,
-- 20240101 a date): they move; a missing id is refused by the target's
-- NOT NULL
SELECT * FROM dr_events ORDER BY id;
SELECT landing_id, rule, kind, col, sqlstate FROM dr_reasons
 WHERE pipeline = 'dr_events' ORDER BY landing_id, n;

----------------------------------------------------------------------------
-- 2. quarantine: each drifting row is quarantined, one reason per issue
----------------------------------------------------------------------------
SELECT stage.set_contract('dr_events', '{"drift": "quarantine"}');
SELECT dr_send(100);
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_events');
SELECT batch, status, rows_in, rows_clean, rows_quarantined, rows_drift
  FROM dr_batches WHERE pipeline = 'dr_events';
SELECT id FROM dr_events WHERE id > 100 ORDER BY id;
SELECT landing_id, n, rule, kind, col, value, message FROM dr_reasons
 WHERE pipeline = 'dr_events' AND landing_id > 9 ORDER BY landing_id, n;

----------------------------------------------------------------------------
-- 3. hold: a batch with any drift is held; nothing of it moves
----------------------------------------------------------------------------
SELECT stage.set_contract('dr_events', '{"drift": "hold"}');
SELECT dr_send(200);
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_events');
RESET client_min_messages;
SELECT batch, status, contract_version, rows_in, rows_clean, rows_quarantined, rows_drift, error
  FROM dr_batches WHERE pipeline = 'dr_events' AND status = 'held';
SELECT count(*) AS moved FROM dr_events WHERE id > 200;
SELECT enabled FROM stage.pipelines WHERE pipeline = 'dr_events';
-- resume alone takes the same rows and holds them again
SELECT stage.resume('dr_events');
SET client_min_messages = error;
SELECT rows_in, status FROM stage.run_batch('dr_events');
RESET client_min_messages;
-- a contract change lifts the hold: under ignore the same rows move
SELECT stage.set_contract('dr_events', '{"drift": "ignore"}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_events');
-- back to hold: a batch without drift is not held
SELECT stage.set_contract('dr_events', '{"drift": "hold"}');
INSERT INTO stage_landing.dr_events (payload) VALUES ('{"id": 301, "qty": 1}'), ('{"id": 302}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_events');
SELECT batch, status, rows_in, rows_drift FROM dr_batches WHERE pipeline = 'dr_events';

----------------------------------------------------------------------------
-- 4. Payloads that are not JSON objects: quarantined under every policy
--    ("hold" holds them too: they drift)
----------------------------------------------------------------------------
CREATE TABLE dr_shapes (id integer, v text);
SELECT stage.create_pipeline('dr_shapes', 'dr_shapes', format => 'jsonb');
INSERT INTO stage_landing.dr_shapes (payload) VALUES
	('{"id": 1, "v": "object"}'), ('[1, 2]'), ('"a string"'), ('42'), ('true'), ('null'), (NULL);
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_shapes');
SELECT landing_id, rule, kind, col, sqlstate, message FROM dr_reasons
 WHERE pipeline = 'dr_shapes' ORDER BY landing_id;
SELECT batch, rows_in, rows_clean, rows_quarantined, rows_drift
  FROM dr_batches WHERE pipeline = 'dr_shapes';
SELECT stage.set_contract('dr_shapes', '{"drift": "quarantine"}');
INSERT INTO stage_landing.dr_shapes (payload) VALUES ('[{"id": 2}]'), ('{"id": 3}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_shapes');
SELECT stage.set_contract('dr_shapes', '{"drift": "hold"}');
INSERT INTO stage_landing.dr_shapes (payload) VALUES ('"x"'), ('{"id": 4}');
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('dr_shapes');
RESET client_min_messages;
SELECT id, v FROM dr_shapes ORDER BY id;

----------------------------------------------------------------------------
-- 5. The columns format has no drift: its landing table has the target's
--    columns; an unknown drift value is refused
----------------------------------------------------------------------------
CREATE TABLE dr_cols (id integer);
SELECT stage.create_pipeline('dr_cols', 'dr_cols');
SELECT stage.set_contract('dr_cols', '{"drift": "hold"}');
INSERT INTO stage_landing.dr_cols (id) VALUES ('1');
SELECT rows_in, rows_clean, status FROM stage.run_batch('dr_cols');
SELECT rows_drift FROM stage.batches WHERE pipeline = 'dr_cols';
SELECT stage.set_contract('dr_events', '{"drift": "warn"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.contract('dr_events')->>'drift' AS drift;

SELECT stage.drop_pipeline(p, force => true) FROM unnest(ARRAY['dr_events', 'dr_shapes', 'dr_cols']) p;
DROP FUNCTION dr_send(integer);
DROP VIEW dr_reasons, dr_batches;
DROP TABLE dr_events, dr_payloads, dr_shapes, dr_cols;
