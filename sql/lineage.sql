--
-- lineage: every clean row can be traced to its batch, landing row, source
-- and contract version: the _stage_id/_stage_batch columns of the target,
-- stage.trace() for one landing row, and stage.lineage for each batch.
--
-- Every object of this file is prefixed ln_; the file drops what it creates.
--
\set SHOW_CONTEXT never

-- A target that asks for lineage: _stage_id (the landing row) and
-- _stage_batch (the batch) are filled by the mover, never taken from landing.
CREATE TABLE ln_orders (
	id				integer PRIMARY KEY,
	qty				integer CHECK (qty > 0),
	_stage_id		bigint,
	_stage_batch	bigint
);
SELECT stage.create_pipeline('ln_orders', 'ln_orders', key => '{id}');
-- the landing table has no columns for them
SELECT attname FROM pg_attribute
 WHERE attrelid = 'stage_landing.ln_orders'::regclass AND attnum > 0 AND attname LIKE '\_stage%'
 ORDER BY attnum;
SELECT stage.add_rule('ln_orders', 'qty', 'range', '{"max": 100}');

-- Producers label their rows with _stage_source (explicitly here; by
-- default it is the session's application_name).
INSERT INTO stage_landing.ln_orders (_stage_source, id, qty) VALUES
	('feed_a', '1', '1'),
	('feed_a', '2', '-1'),		-- rejected by the target's CHECK
	('feed_b', '1', '2');		-- duplicate of landing row 1
BEGIN;
SET LOCAL application_name = 'ln_app';
INSERT INTO stage_landing.ln_orders (id, qty) VALUES ('3', '3');
COMMIT;
INSERT INTO stage_landing.ln_orders (_stage_source, id, qty) VALUES
	('feed_c', '4', '4'),
	('feed_c', '5', '500');		-- breaks the range rule, but see below

-- two batches under contract version 2 (landing rows 1-2 and 3-5), then a
-- rule change, so landing row 6 (qty 500) is checked under version 3, which
-- has no range rule any more, and moves
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('ln_orders', 2);
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('ln_orders', 3);
SELECT stage.drop_rule('ln_orders', 'qty_range');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('ln_orders');
INSERT INTO stage_landing.ln_orders (_stage_source, id, qty) VALUES ('feed_d', '6', '600');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('ln_orders');

-- batches numbered from 1 for this file, whatever ids other files used
CREATE TEMP VIEW ln_batch_no AS
SELECT batch_id, row_number() OVER (ORDER BY batch_id) AS batch_no
  FROM stage.batches WHERE pipeline = 'ln_orders';

-- each target row carries its landing row and batch
SELECT o.id, o.qty, o._stage_id, n.batch_no
  FROM ln_orders o LEFT JOIN ln_batch_no n ON n.batch_id = o._stage_batch
 ORDER BY o.id;
SELECT bool_and(l.id::integer = o.id AND l.qty::integer = o.qty) AS landing_row_matches
  FROM ln_orders o JOIN stage_landing.ln_orders l ON l._stage_id = o._stage_id;

-- stage.trace: where one landing row went, in which batch, from which
-- source, under which contract version, into which target
SELECT l._stage_id AS landing_id, n.batch_no, t.outcome, t.source, t.contract_version,
	   t.target, t.received_at = l._stage_received_at AS received_at_ok
  FROM stage_landing.ln_orders l
  CROSS JOIN LATERAL stage.trace('ln_orders', l._stage_id) t
  LEFT JOIN ln_batch_no n ON n.batch_id = t.batch_id
 ORDER BY l._stage_id;
-- every landing row is traced to exactly one batch
SELECT l._stage_id AS landing_id, count(t.batch_id) AS batches
  FROM stage_landing.ln_orders l
  LEFT JOIN LATERAL stage.trace('ln_orders', l._stage_id) t ON true
 GROUP BY l._stage_id HAVING count(t.batch_id) <> 1;
-- trace agrees with the target's own lineage columns
SELECT bool_and(t.batch_id = o._stage_batch AND t.outcome = 'target') AS agrees
  FROM ln_orders o CROSS JOIN LATERAL stage.trace('ln_orders', o._stage_id) t;
-- a landing id that does not exist traces to nothing
SELECT count(*) FROM stage.trace('ln_orders', 999);
-- a row that has not been batched yet traces to nothing either
INSERT INTO stage_landing.ln_orders (_stage_source, id, qty) VALUES ('feed_e', '7', '7');
SELECT count(*) FROM stage.trace('ln_orders', 8);
SELECT rows_in FROM stage.run_batch('ln_orders');
SELECT outcome, source FROM stage.trace('ln_orders', 8);

-- stage.lineage: one row per finished batch, as a run with its input
-- (landing), outputs (target, quarantine), job version (contract version)
-- and the landing ids it covered
SELECT n.batch_no, g.pipeline, g.contract_version, g.input, g.output, g.quarantine,
	   g.last_landing_id, g.rows_in, g.rows_clean, g.rows_quarantined, g.rows_duplicate,
	   g.finished_at >= g.started_at AS timed
  FROM stage.lineage g JOIN ln_batch_no n USING (batch_id)
 WHERE g.pipeline = 'ln_orders' ORDER BY n.batch_no;
-- the per-batch counts of lineage agree with trace
SELECT n.batch_no, t.outcome, count(*)
  FROM stage_landing.ln_orders l
  CROSS JOIN LATERAL stage.trace('ln_orders', l._stage_id) t
  JOIN ln_batch_no n ON n.batch_id = t.batch_id
 GROUP BY 1, 2 ORDER BY 1, 2;

SELECT stage.drop_pipeline('ln_orders', force => true);
DROP VIEW ln_batch_no;
DROP TABLE ln_orders;
