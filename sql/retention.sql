--
-- retention: history retention.  stage.purge deletes a pipeline's batches
-- (with their rule and transform statistics, duplicate records and
-- lineage events) and its closed quarantine items older than the
-- pipeline's history_retention (never less than its landing retention);
-- open items never expire, nor the batch an open item refers to, nor the
-- pipeline's newest batch.  stage.set_retention sets both policies.  The
-- _total counters do not move; stage.hourly.history_purged and
-- stage_history_purged_total count what went.
--
-- Ages are faked by a superuser with session_replication_role = replica,
-- so that the counting triggers (which count a batch when its row is
-- updated) do not fire.
--
-- Every object of this file is prefixed rt_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE ROLE rt_owner;
CREATE ROLE rt_other;
CREATE TABLE rt_orders (id integer PRIMARY KEY, qty integer, note text);
ALTER TABLE rt_orders OWNER TO rt_owner;

-- what a pipeline's history holds, table by table
CREATE FUNCTION rt_history(p text)
RETURNS TABLE(batches bigint, rule_stats bigint, transform_stats bigint, duplicates bigint,
			  lineage_events bigint, open_items bigint, closed_items bigint)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM stage.batch b WHERE b.pipeline_id = x.pipeline_id),
		   (SELECT count(*) FROM stage.batch_rule_stat s
			 WHERE s.batch_id IN (SELECT b.batch_id FROM stage.batch b WHERE b.pipeline_id = x.pipeline_id)),
		   (SELECT count(*) FROM stage.batch_transform_stat s
			 WHERE s.batch_id IN (SELECT b.batch_id FROM stage.batch b WHERE b.pipeline_id = x.pipeline_id)),
		   (SELECT count(*) FROM stage.duplicate_log d WHERE d.pipeline_id = x.pipeline_id),
		   (SELECT count(*) FROM stage.lineage_event e WHERE e.pipeline_id = x.pipeline_id),
		   (SELECT count(*) FROM stage.quarantine_log q WHERE q.pipeline_id = x.pipeline_id AND q.status = 'open'),
		   (SELECT count(*) FROM stage.quarantine_log q WHERE q.pipeline_id = x.pipeline_id AND q.status <> 'open')
	  FROM stage.pipeline x WHERE x.name = p
$$;

----------------------------------------------------------------------------
-- 1. The policy: defaults, stage.set_retention and its refusals
----------------------------------------------------------------------------
SET ROLE rt_owner;
SELECT stage.create_pipeline('rt_orders', 'rt_orders', key => '{id}');
SELECT retention, history_retention FROM stage.pipelines WHERE pipeline = 'rt_orders';
-- the two-argument call of 0.2 still sets the landing retention only
SELECT stage.set_retention('rt_orders', '10 days');
SELECT retention, history_retention FROM stage.pipelines WHERE pipeline = 'rt_orders';
-- the history's alone, by name
SELECT stage.set_retention('rt_orders', history_retention => '60 days');
SELECT retention, history_retention FROM stage.pipelines WHERE pipeline = 'rt_orders';
-- both
SELECT stage.set_retention('rt_orders', '7 days', '30 days');
SELECT retention, history_retention FROM stage.pipelines WHERE pipeline = 'rt_orders';

-- refused: nothing to set, a negative interval, an unknown pipeline
SELECT stage.set_retention('rt_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rt_orders', NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rt_orders', '-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rt_orders', history_retention => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rt_nope', history_retention => '1 day');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- and the table refuses a negative one, whoever writes it
\set VERBOSITY terse
UPDATE stage.pipeline SET history_retention = '-1 day' WHERE name = 'rt_orders';
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE

-- not the owner: neither the policy nor a purge
SET ROLE rt_other;
SELECT stage.set_retention('rt_orders', history_retention => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.purge('rt_orders');
\echo :LAST_ERROR_SQLSTATE
-- a purge of every pipeline the caller owns: none of this one
SELECT stage.purge() AS purged;
RESET ROLE;
SELECT retention, history_retention FROM stage.pipelines WHERE pipeline = 'rt_orders';

----------------------------------------------------------------------------
-- 2. History: five batches, with rule and transform statistics, duplicates,
--    lineage events, a closed item and an open one
----------------------------------------------------------------------------
SET ROLE rt_owner;
SELECT stage.add_rule('rt_orders', 'qty', 'range', '{"min": 1}');
SELECT stage.add_transform('rt_orders', 'note', 'lower');
-- batch 1: a clean row and one quarantined (dismissed below: closed)
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('1', '1', 'A'), ('2', '0', 'B');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('rt_orders');
-- batch 2: a row quarantined and left open
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('3', '0', 'C');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('rt_orders');
-- batch 3: two duplicates of key 1
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('1', '1', 'D'), ('1', '1', 'E');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('rt_orders');
-- batch 4: a clean row
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('4', '4', 'F');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('rt_orders');
-- batch 5, the newest: a clean row
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('5', '5', 'G');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('rt_orders');
SELECT stage.dismiss('rt_orders', ARRAY[2]::bigint[], 'a test row');
RESET ROLE;
SELECT * FROM rt_history('rt_orders');

-- the batches by number (1 to 5), for what follows
CREATE TABLE rt_batch AS
SELECT row_number() OVER (ORDER BY b.batch_id) AS n, b.batch_id
  FROM stage.batch b JOIN stage.pipeline x USING (pipeline_id) WHERE x.name = 'rt_orders';

-- the counters and the hour's purged rows before any purge
CREATE TABLE rt_counters_before AS
SELECT metric, labels, value FROM stage.metric_counters WHERE pipeline = 'rt_orders';
SELECT count(*) > 10 AS counters_kept FROM rt_counters_before;

-- ages: batches 1, 2, 3 and 5 finished 40 days ago, batch 4 two days ago;
-- the closed item was closed and the open one quarantined 40 days ago
SET session_replication_role = replica;
UPDATE stage.batch b
   SET started_at = now() - CASE r.n WHEN 4 THEN interval '2 days' ELSE interval '40 days' END,
	   finished_at = now() - CASE r.n WHEN 4 THEN interval '2 days' ELSE interval '40 days' END
  FROM rt_batch r WHERE r.batch_id = b.batch_id;
UPDATE stage.lineage_event e SET created_at = b.finished_at
  FROM stage.batch b WHERE b.batch_id = e.batch_id AND b.batch_id IN (SELECT batch_id FROM rt_batch);
UPDATE stage.quarantine_log q
   SET quarantined_at = now() - interval '41 days',
	   closed_at = CASE WHEN q.status <> 'open' THEN now() - interval '40 days' END
 WHERE q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'rt_orders');
RESET session_replication_role;

----------------------------------------------------------------------------
-- 3. A purge under the default policy (30 days)
----------------------------------------------------------------------------
-- batches 1 and 3 go with their statistics, duplicates and events, and so
-- does the closed item; batch 2 stays (its item is open), batch 4 is
-- younger than 30 days, batch 5 is the newest
SET ROLE rt_owner;
SELECT stage.purge('rt_orders') >= 0 AS purged;
RESET ROLE;
SELECT * FROM rt_history('rt_orders');
SELECT r.n FROM rt_batch r JOIN stage.batch b USING (batch_id) ORDER BY r.n;
SELECT r.n, e.event_type FROM rt_batch r JOIN stage.lineage_event e USING (batch_id) ORDER BY 1, 2;
-- the open item is still there, and still in its batch
SELECT q.landing_id, q.status, r.n AS batch FROM stage.quarantine_log q JOIN rt_batch r USING (batch_id)
 WHERE q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'rt_orders');
-- and stage.trace still places it
SELECT outcome, status FROM stage.trace('rt_orders', 3);

-- the _total counters did not move; the purge is counted by table
SELECT c.metric, c.labels, b.value AS before, c.value AS after
  FROM stage.metric_counters c FULL JOIN rt_counters_before b USING (metric, labels)
 WHERE c.pipeline = 'rt_orders' AND c.value IS DISTINCT FROM b.value
 ORDER BY 1, 2;
SELECT sum(history_purged) AS history_purged, sum(rows_purged) AS rows_purged_by_landing_purge
  FROM stage.hourly
 WHERE pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'rt_orders');
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line ~ '^stage_history_purged_total\{pipeline="rt_orders"' ORDER BY line;

-- a second purge finds nothing more
SELECT stage._purge_history(pipeline_id) AS deleted FROM stage.pipeline WHERE name = 'rt_orders';

----------------------------------------------------------------------------
-- 4. The landing retention is a floor: history goes no earlier than the
--    landing rows its batches took
----------------------------------------------------------------------------
-- history 0, landing 7 days: batch 4 (2 days old) stays
SET ROLE rt_owner;
SELECT stage.set_retention('rt_orders', history_retention => '0');
SELECT stage.purge('rt_orders') >= 0 AS purged;
RESET ROLE;
SELECT r.n FROM rt_batch r JOIN stage.batch b USING (batch_id) ORDER BY r.n;
-- landing 1 day as well: batch 4 goes; the open item's batch and the
-- newest stay, whatever their age
SET ROLE rt_owner;
SELECT stage.set_retention('rt_orders', '1 day');
SELECT stage.purge('rt_orders') >= 0 AS purged;
RESET ROLE;
SELECT r.n FROM rt_batch r JOIN stage.batch b USING (batch_id) ORDER BY r.n;
SELECT * FROM rt_history('rt_orders');

-- once the open item is dismissed and the dismissal is old, it goes, and
-- then its batch
SET ROLE rt_owner;
SELECT stage.dismiss('rt_orders', ARRAY[3]::bigint[], 'no longer wanted');
RESET ROLE;
SET session_replication_role = replica;
UPDATE stage.quarantine_log SET closed_at = now() - interval '2 days'
 WHERE pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'rt_orders');
RESET session_replication_role;
SET ROLE rt_owner;
SELECT stage.purge('rt_orders') >= 0 AS purged;
RESET ROLE;
SELECT r.n FROM rt_batch r JOIN stage.batch b USING (batch_id) ORDER BY r.n;
SELECT * FROM rt_history('rt_orders');
SELECT sum(history_purged) AS history_purged
  FROM stage.hourly
 WHERE pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'rt_orders');

----------------------------------------------------------------------------
-- 5. Slices: a call deletes at most max_rows batches, and stops before a
--    batch whose duplicates would pass max_rows rows
----------------------------------------------------------------------------
SET ROLE rt_owner;
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('1', '1', 'H'), ('1', '1', 'I'), ('1', '1', 'J');
SELECT rows_in, rows_duplicate FROM stage.run_batch('rt_orders');
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('6', '6', 'K');
SELECT rows_in, rows_duplicate FROM stage.run_batch('rt_orders');
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('7', '7', 'L');
SELECT rows_in, rows_duplicate FROM stage.run_batch('rt_orders');
INSERT INTO stage_landing.rt_orders (id, qty, note) VALUES ('8', '8', 'M');
SELECT rows_in, rows_duplicate FROM stage.run_batch('rt_orders');
RESET ROLE;
INSERT INTO rt_batch
SELECT 5 + row_number() OVER (ORDER BY b.batch_id), b.batch_id
  FROM stage.batch b JOIN stage.pipeline x USING (pipeline_id)
 WHERE x.name = 'rt_orders' AND b.batch_id > (SELECT max(batch_id) FROM rt_batch);
SET session_replication_role = replica;
UPDATE stage.batch b SET started_at = now() - interval '40 days' + r.n * interval '1 minute',
						 finished_at = now() - interval '40 days' + r.n * interval '1 minute'
  FROM rt_batch r WHERE r.batch_id = b.batch_id AND r.n >= 5;
RESET session_replication_role;
-- batches 5 to 8 are old, 9 is the newest; two rows a call: batch 5 goes
-- alone (batch 6 has three duplicates), then batch 6 alone (the first of a
-- slice always goes), then 7 and 8 (two batches)
SELECT stage._purge_history(pipeline_id, 2) AS deleted FROM stage.pipeline WHERE name = 'rt_orders';
SELECT string_agg(r.n::text, ' ' ORDER BY r.n) AS kept FROM rt_batch r JOIN stage.batch b USING (batch_id);
SELECT stage._purge_history(pipeline_id, 2) AS deleted FROM stage.pipeline WHERE name = 'rt_orders';
SELECT string_agg(r.n::text, ' ' ORDER BY r.n) AS kept FROM rt_batch r JOIN stage.batch b USING (batch_id);
SELECT stage._purge_history(pipeline_id, 2) AS deleted FROM stage.pipeline WHERE name = 'rt_orders';
SELECT string_agg(r.n::text, ' ' ORDER BY r.n) AS kept FROM rt_batch r JOIN stage.batch b USING (batch_id);
SELECT stage._purge_history(pipeline_id, 2) AS deleted FROM stage.pipeline WHERE name = 'rt_orders';
SELECT * FROM rt_history('rt_orders');

-- the function is internal: not for the pipeline's owner
SET ROLE rt_owner;
SELECT stage._purge_history(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- M7, retention compliance: batches past their history retention that a
-- purge has not removed yet count against it, once past the grace (two
-- rounds of stage.retention_interval, at least a minute); what retention
-- removed in the last 24 hours counts for it
SELECT stage.set_retention('rt_orders', history_retention => '1 day');
SET session_replication_role = replica;
UPDATE stage.batch b SET finished_at = now() - interval '3 days'
  FROM rt_batch r WHERE r.batch_id = b.batch_id AND r.n = 9;
RESET session_replication_role;
INSERT INTO stage_landing.rt_orders (id) VALUES ('100');
SELECT rows_in FROM stage.run_batch('rt_orders');
SELECT retention_compliance < 1 AS behind, retention_compliance > 0 AS some_removed
  FROM stage.health WHERE pipeline = 'rt_orders';
SELECT stage.purge('rt_orders') >= 0 AS purged;
SELECT retention_compliance FROM stage.health WHERE pipeline = 'rt_orders';
SELECT (SELECT value FROM stage.metric_counters
		 WHERE pipeline = 'rt_orders' AND metric = 'stage_history_purged_total'
		   AND labels = '{"table": "batch"}') > 0 AS counted;
-- and in the Prometheus text
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line LIKE 'stage_retention_compliance{pipeline="rt_orders"}%';
-- an analyst who may not see the pipeline reads no figure of it
SELECT pipeline_id AS rt_id FROM stage.pipeline WHERE name = 'rt_orders' \gset
SELECT oldest_landing_age IS NOT NULL AS has_age, retention_compliance FROM stage._retention_state_for(:rt_id);
SET ROLE rt_other;
SELECT * FROM stage._retention_state_for(:rt_id);
RESET ROLE;

-- partition_interval: how long a landing partition lasts (default: a
-- quarter of the retention, 10 s to 1 day); 0 goes back to the default
SELECT stage.set_retention('rt_orders', '8 hours');
SELECT partition_interval FROM stage.pipelines WHERE pipeline = 'rt_orders';
SELECT stage.set_retention('rt_orders', partition_interval => '15 minutes');
SELECT partition_interval FROM stage.pipelines WHERE pipeline = 'rt_orders';
SELECT stage.set_retention('rt_orders', partition_interval => '0');
SELECT partition_interval FROM stage.pipelines WHERE pipeline = 'rt_orders';
SELECT stage.set_retention('rt_orders', partition_interval => '10 days');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_retention('rt_orders', partition_interval => '10 ms');
\echo :LAST_ERROR_SQLSTATE

SELECT stage.drop_pipeline('rt_orders', force => true);
DROP TABLE rt_orders, rt_batch, rt_counters_before;
DROP FUNCTION rt_history(text);
DROP ROLE rt_owner, rt_other;
