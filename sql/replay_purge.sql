--
-- replay_purge: stage.replay runs quarantined rows through the current
-- contract again, from the raw row their quarantine record keeps: each
-- goes to the target (once), back to quarantine with its new reasons, or
-- to duplicates, recorded as a batch of kind 'replay'; dry_run only
-- reports.  stage.purge applies retention to landing: it drops the
-- ranges (partitions) of the landing table finished for longer than the
-- pipeline's retention, never one with a pending row; stage.set_retention
-- sets it.
--
-- Lines marked "FIXED" assert the correct behaviour of something that was
-- once broken; they guard against its return.
--
-- Every object of this file is prefixed rp_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE VIEW rp_reasons AS
SELECT q.pipeline, q.landing_id, r.ordinality AS n, r.value->>'rule' AS rule,
	   r.value->>'message' AS message, (r.value->>'contract_version')::int AS version
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r;

CREATE VIEW rp_batches AS
SELECT pipeline, row_number() OVER (PARTITION BY pipeline ORDER BY batch_id) AS batch,
	   kind, status, contract_version, rows_in, rows_clean, rows_quarantined, rows_duplicate
  FROM stage.batches;

-- what a pipeline holds, to compare before and after
CREATE FUNCTION rp_state(p text, OUT target bigint, OUT quarantined bigint,
						 OUT duplicates bigint, OUT batches bigint)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('SELECT count(*) FROM %s', (SELECT x.target FROM stage.pipelines x
												WHERE x.pipeline = p)) INTO target;
	SELECT count(*) INTO quarantined FROM stage.quarantine q WHERE q.pipeline = p;
	SELECT count(*) INTO duplicates FROM stage.duplicate_log d
	  JOIN stage.pipeline x USING (pipeline_id) WHERE x.name = p;
	SELECT count(*) INTO batches FROM stage.batches b WHERE b.pipeline = p;
END
$$;

----------------------------------------------------------------------------
-- 1. A batch with quarantined rows
----------------------------------------------------------------------------
-- _stage_id: the mover records each target row's landing id (lineage)
CREATE TABLE rp_orders (id integer PRIMARY KEY, qty integer, currency text, _stage_id bigint);
SELECT stage.create_pipeline('rp_orders', 'rp_orders', key => '{id}');
SELECT stage.add_rule('rp_orders', 'qty', 'range', '{"min": 1, "max": 10}');
SELECT stage.add_rule('rp_orders', 'currency', 'enum', '{"values": ["EUR", "USD"]}');
INSERT INTO stage_landing.rp_orders (id, qty, currency) VALUES
	('1', '5', 'EUR'),
	('2', '50', 'EUR'),		-- qty too high
	('3', '0', 'GBP'),		-- qty too low and currency unknown
	('4', '20', 'GBP'),		-- both fail
	('5', 'x', 'USD'),		-- not an integer
	('6', '30', 'USD');		-- qty too high
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('rp_orders');
SELECT landing_id, n, rule, version FROM rp_reasons
 WHERE pipeline = 'rp_orders' ORDER BY landing_id, n;
SELECT batch_id AS first_batch FROM stage.batches WHERE pipeline = 'rp_orders' \gset

----------------------------------------------------------------------------
-- 2. dry_run: what a replay would do under the current contract; nothing
--    is written
----------------------------------------------------------------------------
CREATE TEMP TABLE rp_before AS SELECT * FROM rp_state('rp_orders');
SELECT landing_id, outcome, reasons->0->>'rule' AS first_reason
  FROM stage.replay('rp_orders', dry_run => true);
SELECT (SELECT b FROM rp_before b) = rp_state('rp_orders') AS nothing_written;

-- the fix: quantities up to 100 are fine
SELECT stage.drop_rule('rp_orders', 'qty_range');
SELECT stage.add_rule('rp_orders', 'qty', 'range', '{"min": 1, "max": 100}');
SELECT landing_id, outcome, reasons->0->>'rule' AS first_reason
  FROM stage.replay('rp_orders', dry_run => true);
SELECT (SELECT b FROM rp_before b) = rp_state('rp_orders') AS nothing_written;

----------------------------------------------------------------------------
-- 3. Filters: ids, rule_name, batch_id (they combine)
----------------------------------------------------------------------------
-- ids: only those rows
SELECT landing_id, outcome, reasons FROM stage.replay('rp_orders', ids => '{2}');
SELECT id, qty, currency FROM rp_orders ORDER BY id;
-- rule_name: rows with a reason from that rule (any of their reasons)
SELECT landing_id, outcome, reasons->0->>'rule' AS first_reason, reasons->0->>'message' AS message
  FROM stage.replay('rp_orders', rule_name => 'currency_enum');
-- rows 3 and 4 are quarantined again with the reasons of the new contract
-- version (row 3's qty 0 is still below the minimum), in the replay's batch
SELECT landing_id, n, rule, message, version FROM rp_reasons
 WHERE pipeline = 'rp_orders' ORDER BY landing_id, n;
-- batch_id: the rows still quarantined by that batch (5 and 6; rows 3 and
-- 4 now belong to the replay batch that quarantined them again)
SELECT landing_id, outcome FROM stage.replay('rp_orders', batch_id => :first_batch);
-- filters that match nothing replay nothing
SELECT count(*) FROM stage.replay('rp_orders', ids => '{1, 2, 99}');
SELECT count(*) FROM stage.replay('rp_orders', rule_name => 'no_such_rule');
SELECT count(*) FROM stage.replay('rp_orders', ids => '{3}', rule_name => 'qty_type');

----------------------------------------------------------------------------
-- 4. Exactly once: a row that moved is no longer in quarantine, so a
--    second replay does not move it again; every landing row is in exactly
--    one place
----------------------------------------------------------------------------
SELECT landing_id, outcome FROM stage.replay('rp_orders', ids => '{2, 6}');
SELECT id, qty, currency FROM rp_orders ORDER BY id;
SELECT l._stage_id AS landing_id,
	   (SELECT count(*) FROM rp_orders t WHERE t._stage_id = l._stage_id) AS in_target,
	   (SELECT count(*) FROM stage.quarantine q
		 WHERE q.pipeline = 'rp_orders' AND q.landing_id = l._stage_id) AS in_quarantine
  FROM stage_landing.rp_orders l ORDER BY 1;
-- each replay is a batch of kind replay, under the contract it ran with
SELECT batch, kind, status, contract_version, rows_in, rows_clean, rows_quarantined
  FROM rp_batches WHERE pipeline = 'rp_orders';

-- a replayed row whose key reached the target meanwhile is a duplicate
-- (on_duplicate skip); without rules, row 5's qty still fails its type
INSERT INTO rp_orders (id, qty, currency) VALUES (3, 1, 'GBP');
SELECT stage.set_contract('rp_orders', '{"key": ["id"], "rules": []}');
SELECT landing_id, outcome, reasons FROM stage.replay('rp_orders');
SELECT id, qty, currency, _stage_id AS landing_id FROM rp_orders ORDER BY id;
SELECT l._stage_id AS landing_id,
	   (SELECT count(*) FROM rp_orders t WHERE t._stage_id = l._stage_id) AS in_target,
	   (SELECT count(*) FROM stage.quarantine q
		 WHERE q.pipeline = 'rp_orders' AND q.landing_id = l._stage_id) AS in_quarantine,
	   (SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'rp_orders' AND d.landing_id = l._stage_id) AS duplicate
  FROM stage_landing.rp_orders l ORDER BY 1;
SELECT batch, kind, contract_version, rows_in, rows_clean, rows_quarantined, rows_duplicate
  FROM rp_batches WHERE pipeline = 'rp_orders' AND batch = 5;

-- replay is refused for an unknown pipeline
SELECT * FROM stage.replay('rp_nope');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- 5. Replay on the jsonb landing format
----------------------------------------------------------------------------
CREATE TABLE rp_events (id integer, qty integer);
SELECT stage.create_pipeline('rp_events', 'rp_events', format => 'jsonb');
SELECT stage.set_contract('rp_events', '{"drift": "quarantine",
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}}]}');
INSERT INTO stage_landing.rp_events (payload) VALUES
	('{"id": 1, "qty": 1}'),
	('{"id": 2, "qty": 0}'),					-- the rule
	('{"id": 3, "qty": 3, "extra": true}'),		-- drift: an unknown key
	('[1, 2, 3]'),								-- not an object
	('"hello"');								-- not an object
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('rp_events');
SELECT landing_id, rule FROM rp_reasons WHERE pipeline = 'rp_events' ORDER BY landing_id;
-- after a fix of the rule, only row 2 is fixed: the drift policy still
-- quarantines row 3, and a payload that is not an object never maps to a
-- row.  FIXED: replay skips the drift check, so rows 3, 4 and 5 would go to
-- the target (4 and 5 as rows of NULLs)
SELECT stage.set_contract('rp_events', '{"drift": "quarantine"}');
SELECT landing_id, outcome FROM stage.replay('rp_events', dry_run => true);

----------------------------------------------------------------------------
-- 6. Retention: a landing table is partitioned by ranges of transaction
--    ids; stage.purge drops a range whole once every row of it is finished
--    (taken by a closed batch window, no transaction left that could land
--    more) and has been so for longer than the pipeline's retention
----------------------------------------------------------------------------
CREATE TABLE rp_items (id integer, qty integer);
SELECT stage.create_pipeline('rp_items', 'rp_items');
-- partitions of a second of the cluster's transactions (the default, a
-- quarter of the retention, would make the ranges ahead a day's worth)
SELECT stage.set_retention('rp_items', partition_interval => '1 second');
SELECT retention FROM stage.pipelines WHERE pipeline = 'rp_items';
-- the ranges of the landing table in order: rows, finished, open-ended
CREATE FUNCTION rp_ranges() RETURNS TABLE (range bigint, rows bigint, finished boolean, open_ended boolean)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	range := 0;
	FOR r IN SELECT lp.* FROM stage.landing_partition lp JOIN stage.pipeline p USING (pipeline_id)
			  WHERE p.name = 'rp_items' ORDER BY lp.lo NULLS FIRST
	LOOP
		range := range + 1;
		EXECUTE format('SELECT count(*) FROM %s', r.partition) INTO rows;
		finished := r.finished_at IS NOT NULL;
		open_ended := r.hi IS NULL;
		RETURN NEXT;
	END LOOP;
END $$;
-- use transaction ids until the present one is past the range it was in
CREATE PROCEDURE rp_next_range() LANGUAGE plpgsql AS $$
DECLARE
	target xid8 := (SELECT min(lp.hi) FROM stage.landing_partition lp JOIN stage.pipeline p USING (pipeline_id)
					 WHERE p.name = 'rp_items' AND lp.hi > pg_current_xact_id());
BEGIN
	COMMIT;
	WHILE pg_current_xact_id() < target LOOP
		COMMIT;
	END LOOP;
END $$;
-- a new landing table: a range from the lowest id to a range ahead, and the open end
SELECT * FROM rp_ranges();
INSERT INTO stage_landing.rp_items (id, qty) VALUES ('1', '1'), ('2', 'x');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('rp_items');
-- the present transactions move on past the first range; a purge finds it
-- finished (and makes the range ahead), but 7 days have not passed
CALL rp_next_range();
SELECT stage.purge('rp_items') AS purged;
SELECT * FROM rp_ranges();
-- a row of the next range, pending: no batch has taken it yet
INSERT INTO stage_landing.rp_items (id, qty) VALUES ('4', '4');
-- retention 0: the finished range goes, with its two rows; the pending row stays
SELECT stage.set_retention('rp_items', '0');
SELECT retention FROM stage.pipelines WHERE pipeline = 'rp_items';
SELECT stage.purge('rp_items') AS purged;
SELECT _stage_id, id FROM stage_landing.rp_items ORDER BY 1;
-- a second purge finds nothing more
SELECT stage.purge('rp_items') AS purged;

-- a held batch is not finished: its range stays, even past it
SELECT stage.set_contract('rp_items', '{"max_reject_ratio": 0,
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}}]}');
INSERT INTO stage_landing.rp_items (id, qty) VALUES ('5', '0');
SET client_min_messages = error;
SELECT rows_in, status FROM stage.run_batch('rp_items');
RESET client_min_messages;
CALL rp_next_range();
SELECT stage.purge('rp_items') AS purged;
SELECT _stage_id, id FROM stage_landing.rp_items ORDER BY 1;
-- once the batch is done, the range goes; purge() without a name purges
-- every pipeline the caller owns
SELECT stage.set_contract('rp_items', '{}');
SELECT rows_in, rows_clean, status FROM stage.run_batch('rp_items');
SELECT stage.purge() >= 2 AS purged_all;
SELECT count(*) AS landing_rows FROM stage_landing.rp_items;
SELECT count(*) FILTER (WHERE open_ended) AS open_ends, count(*) FILTER (WHERE NOT open_ended) > 0 AS ranges_ahead,
       sum(rows) AS rows, sum(rows) FILTER (WHERE open_ended) AS rows_in_open_end FROM rp_ranges();

-- (how many ranges are ahead depends on the rate of transaction ids: one
-- open end, rows where they landed)
-- nobody applied retention for long: the cluster's transactions ran past
-- every range made ahead, and rows land in the open-ended one; the next
-- round cuts it a range beyond the present transaction (its rows stay, in
-- a range of their own) and makes a new open end
CALL rp_next_range();
CALL rp_next_range();
CALL rp_next_range();
INSERT INTO stage_landing.rp_items (id, qty) VALUES ('6', '6'), ('7', '7');
SELECT count(*) FILTER (WHERE open_ended) AS open_ends, count(*) FILTER (WHERE NOT open_ended) > 0 AS ranges_ahead,
       sum(rows) AS rows, sum(rows) FILTER (WHERE open_ended) AS rows_in_open_end FROM rp_ranges();
SELECT stage.purge('rp_items') AS purged;
SELECT count(*) FILTER (WHERE open_ended) AS open_ends, count(*) FILTER (WHERE NOT open_ended) > 0 AS ranges_ahead,
       sum(rows) AS rows, sum(rows) FILTER (WHERE open_ended) AS rows_in_open_end FROM rp_ranges();
SELECT rows_in, rows_clean, status FROM stage.run_batch('rp_items');
SELECT count(*) AS moved FROM rp_items WHERE id IN (6, 7);

-- the quarantined row's landing row is gone, but it can still be replayed
-- from the raw row its quarantine record keeps
SELECT landing_id, outcome, reasons->0->>'rule' AS rule
  FROM stage.replay('rp_items', dry_run => true);

-- landing stays append-only: only purge deletes
DELETE FROM stage_landing.rp_orders;
\echo :LAST_ERROR_SQLSTATE

-- refused: a negative or NULL retention, an unknown pipeline
SELECT stage.set_retention('rp_items', '-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rp_items', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rp_nope', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.purge('rp_nope');
\echo :LAST_ERROR_SQLSTATE
SELECT retention FROM stage.pipelines WHERE pipeline = 'rp_items';

SELECT stage.drop_pipeline(p, force => true) FROM unnest(ARRAY['rp_orders', 'rp_events', 'rp_items']) p;
DROP FUNCTION rp_state(text);
DROP FUNCTION rp_ranges();
DROP PROCEDURE rp_next_range();
DROP VIEW rp_reasons, rp_batches;
DROP TABLE rp_orders, rp_events, rp_items;
