/*
 * scaleout_report.sql: what the scale-out scenario measured
 * (test/bench/scaleout_run.sh), run by psql on the warehouse with
 * :rows, :lag_seconds, :rate and :cores.
 *
 * Throughput: part (a), one node alone, from the start of its landing to
 * the end of its last batch; part (b), two nodes and the warehouse, from
 * the start of the landing to the arrival of the last row on the
 * warehouse (by then both nodes were drained and the warehouse's count
 * equalled the sum of the nodes' targets).
 *
 * Lag, per clean row of the lag part: landing commit on the node
 * (commit timestamp of the landing row) -> target commit on the node
 * (commit timestamp of the target row) -> visible on the warehouse.  The
 * warehouse's commit timestamps are no help here: an apply worker's
 * commit carries the origin's commit time.  A row is visible when its
 * apply transaction commits; taken here as the arrived_at (a subscriber
 * default, clock_timestamp() at apply) of the last target row applied in
 * the same warehouse transaction: a lower bound, short of the visibility
 * by the rest of that transaction (the node's history rows of the batch)
 * and its commit, well under a millisecond for batches of this size.
 */
\set ON_ERROR_STOP 1
\pset footer off

\echo
\echo == throughput: (a) one node alone, (b) two nodes feeding the warehouse
SELECT p.part,
	   CASE p.part WHEN 'a' THEN 'one node, nothing subscribed'
				   ELSE 'two nodes, until the warehouse has every clean row' END AS what,
	   sum(p.rows_landed) FILTER (WHERE p.node <> 'warehouse') AS rows,
	   sum(p.rows_clean) FILTER (WHERE p.node <> 'warehouse') AS clean,
	   round(extract(epoch FROM max(p.done_at) - min(p.started_at))::numeric, 2) AS seconds,
	   round(sum(p.rows_landed) FILTER (WHERE p.node <> 'warehouse')
			 / extract(epoch FROM max(p.done_at) - min(p.started_at))) AS rows_per_s
  FROM bench.part p GROUP BY p.part ORDER BY p.part;

SELECT round((b.r / a.r)::numeric, 2) AS "ratio (b)/(a)"
  FROM (SELECT sum(rows_landed) / extract(epoch FROM max(done_at) - min(started_at)) AS r
		  FROM bench.part WHERE part = 'a') a,
	   (SELECT sum(rows_landed) FILTER (WHERE node <> 'warehouse')
			   / extract(epoch FROM max(done_at) - min(started_at)) AS r
		  FROM bench.part WHERE part = 'b') b;
\echo :cores cores run all three servers, the producers and the workers: the ratio says what the
\echo replication costs on a shared machine, not what a second machine would add.

\echo
\echo == throughput: each node and the warehouse, seconds from the start of the part
SELECT p.part, p.node, p.rows_landed AS rows, p.rows_clean AS clean,
	   round(extract(epoch FROM p.landed_at - p.started_at)::numeric, 2) AS landed_s,
	   round(extract(epoch FROM p.done_at - p.started_at)::numeric, 2) AS done_s,
	   round(p.wal_bytes / 1e6, 1) AS wal_mb,
	   round(p.wal_bytes / NULLIF(COALESCE(p.rows_landed, p.rows_clean), 0)) AS wal_bytes_per_row
  FROM bench.part p ORDER BY p.part, p.node = 'warehouse', p.node;
SELECT round(extract(epoch FROM w.done_at - n.done_at)::numeric, 2) AS "(b) warehouse behind the last node drained, s"
  FROM (SELECT max(done_at) AS done_at FROM bench.part WHERE part = 'b' AND node <> 'warehouse') n,
	   (SELECT done_at FROM bench.part WHERE part = 'b' AND node = 'warehouse') w;

\echo
\echo == the machine during each part: share of all cores busy, by this benchmark and by other work
SELECT part, round(seconds, 1) AS seconds,
	   round(100.0 * busy_ticks / (seconds * hz * cores), 1) AS busy_pct,
	   round(100.0 * ours_ticks / (seconds * hz * cores), 1) AS benchmark_pct,
	   round(100.0 * GREATEST(busy_ticks - ours_ticks, 0) / (seconds * hz * cores), 1) AS other_work_pct,
	   loadavg AS load_at_end
  FROM bench.cpu ORDER BY part;

\echo
\echo == where the CPU of the benchmark went (sampled every second; % of all cores over the part)
SELECT u.place, u.what,
	   round(sum(u.cpu_seconds) FILTER (WHERE u.part = 'a'), 1) AS a_cpu_s,
	   round(100 * sum(u.cpu_seconds / (c.seconds * c.cores)) FILTER (WHERE u.part = 'a'), 1) AS a_pct,
	   round(sum(u.cpu_seconds) FILTER (WHERE u.part = 'b'), 1) AS b_cpu_s,
	   round(100 * sum(u.cpu_seconds / (c.seconds * c.cores)) FILTER (WHERE u.part = 'b'), 1) AS b_pct,
	   round(sum(u.cpu_seconds) FILTER (WHERE u.part = 'lag'), 1) AS lag_cpu_s,
	   round(100 * sum(u.cpu_seconds / (c.seconds * c.cores)) FILTER (WHERE u.part = 'lag'), 1) AS lag_pct
  FROM bench.cpu_use u JOIN bench.cpu c USING (part)
 GROUP BY ROLLUP ((u.place, u.what))
 ORDER BY u.place IS NULL, u.place DESC, sum(u.cpu_seconds) DESC;

-- the lag part, per clean row
CREATE TEMP TABLE lag AS
SELECT r.node, r.stage_id, r.received_at, r.landed_at, r.moved_at, w.visible_at,
	   extract(epoch FROM w.visible_at - r.landed_at) * 1000 AS total_ms,
	   extract(epoch FROM r.moved_at - r.landed_at) * 1000 AS handoff_ms,
	   extract(epoch FROM w.visible_at - r.moved_at) * 1000 AS replication_ms,
	   extract(epoch FROM w.visible_at - r.received_at) * 1000 AS received_ms
  FROM bench.lag_row r
  JOIN (SELECT o._stage_node, o._stage_id,
			   max(o.arrived_at) OVER (PARTITION BY o.xmin::text) AS visible_at
		  FROM public.orders o
		 WHERE o.arrived_at >= (SELECT min(started_at) FROM bench.lag_node)) w
	ON w._stage_node = r.node AND w._stage_id = r.stage_id;

\echo
\echo == lag part: the producers (pgbench)
\pset tuples_only on
SELECT line FROM bench.note WHERE section = 'producer' ORDER BY at;
\pset tuples_only off

\echo == lag part: rows per node
SELECT n.node, n.landed, n.clean, n.quarantined, n.duplicate,
	   n.landed - n.clean - n.quarantined - n.duplicate AS unplaced,
	   round(n.landed / NULLIF(extract(epoch FROM n.ended_at - n.started_at), 0)) AS rows_per_s,
	   (SELECT count(*) FROM lag l WHERE l.node = n.node) AS clean_on_warehouse,
	   n.batches, n.batch_rows_avg AS batch_rows, n.batch_p95_ms,
	   round(n.wal_bytes / 1e6, 1) AS wal_mb
  FROM bench.lag_node n ORDER BY n.node;

\echo
\echo == lag part: latency per clean row (ms), :rate rows/s a node for :lag_seconds s
SELECT x.what, count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY x.ms)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY x.ms)::numeric, 1) AS p95,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x.ms)::numeric, 1) AS p99,
	   round(max(x.ms)::numeric, 1) AS max
  FROM (SELECT 1 AS o, 'landing commit -> visible on the warehouse' AS what, total_ms AS ms FROM lag
		UNION ALL
		SELECT 2, '  of which landing commit -> target commit (node)', handoff_ms FROM lag
		UNION ALL
		SELECT 3, '  of which target commit -> visible on the warehouse', replication_ms FROM lag
		UNION ALL
		SELECT 4, 'received (INSERT) -> visible on the warehouse', received_ms FROM lag) x
 GROUP BY x.o, x.what ORDER BY x.o;

\echo
\echo == lag part: landing commit -> visible on the warehouse per node (ms)
SELECT node, count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p95,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p99,
	   round(max(total_ms)::numeric, 1) AS max,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY handoff_ms)::numeric, 1) AS handoff_p95,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY replication_ms)::numeric, 1) AS replication_p95
  FROM lag GROUP BY node ORDER BY node;

\echo
\echo == lag part over the run, by 10 s of landing (ms)
SELECT (extract(epoch FROM landed_at - (SELECT min(landed_at) FROM lag))::int / 10) * 10 AS from_s,
	   count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms)::numeric, 1) AS p95,
	   round(max(total_ms)::numeric, 1) AS max,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY handoff_ms)::numeric, 1) AS handoff_p95,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY replication_ms)::numeric, 1) AS replication_p95
  FROM lag GROUP BY 1 ORDER BY 1;

\echo
\echo == correctness: every node target row on the warehouse once, by (_stage_node, _stage_id)
WITH w AS (
	SELECT _stage_node AS node, _stage_id AS stage_id, count(*) AS n
	  FROM public.orders GROUP BY 1, 2
)
SELECT node,
	   (SELECT count(*) FROM bench.node_row r WHERE r.node = x.node) AS node_rows,
	   (SELECT count(*) FROM public.orders o WHERE o._stage_node = x.node) AS warehouse_rows,
	   (SELECT count(*) FROM bench.node_row r
		 WHERE r.node = x.node AND NOT EXISTS (SELECT 1 FROM w WHERE w.node = r.node AND w.stage_id = r.stage_id)) AS missing,
	   (SELECT count(*) FROM w
		 WHERE w.node = x.node AND NOT EXISTS (SELECT 1 FROM bench.node_row r WHERE r.node = w.node AND r.stage_id = w.stage_id)) AS extra,
	   (SELECT count(*) FROM w WHERE w.node = x.node AND w.n > 1) AS twice,
	   (SELECT count(*) FROM bench.node_row r WHERE r.node = x.node AND r.stage_id IS NULL) AS no_lineage
  FROM (SELECT DISTINCT node FROM bench.node_row) x ORDER BY node;
SELECT CASE WHEN (SELECT count(*) FROM bench.node_row) = (SELECT count(*) FROM public.orders)
			 AND NOT EXISTS (SELECT node, stage_id FROM bench.node_row
							 EXCEPT SELECT _stage_node, _stage_id FROM public.orders)
			 AND NOT EXISTS (SELECT _stage_node, _stage_id FROM public.orders
							 EXCEPT SELECT node, stage_id FROM bench.node_row)
			 AND NOT EXISTS (SELECT 1 FROM public.orders GROUP BY _stage_node, _stage_id HAVING count(*) > 1)
			THEN 'ok: the warehouse holds the union of the node targets, each row once'
			ELSE 'MISMATCH' END AS target_rows;

\echo
\echo == correctness: the history, on each node and on the warehouse
SELECT h.node, h.what, h.rows AS on_node,
	   CASE h.what
		WHEN 'pipeline' THEN (SELECT count(*) FROM stage.pipeline x WHERE x.node = h.node)
		WHEN 'batch' THEN (SELECT count(*) FROM stage.batch x WHERE x.node = h.node)
		WHEN 'batch done' THEN (SELECT count(*) FROM stage.batch x WHERE x.node = h.node AND x.status = 'done')
		WHEN 'batch_rule_stat' THEN (SELECT count(*) FROM stage.batch_rule_stat x WHERE x.node = h.node)
		WHEN 'batch_transform_stat' THEN (SELECT count(*) FROM stage.batch_transform_stat x WHERE x.node = h.node)
		WHEN 'quarantine_log' THEN (SELECT count(*) FROM stage.quarantine_log x WHERE x.node = h.node)
		WHEN 'duplicate_log' THEN (SELECT count(*) FROM stage.duplicate_log x WHERE x.node = h.node)
	   END AS on_warehouse
  FROM bench.node_history h ORDER BY h.node, h.what;

\echo
\echo == logical decoding, apply, autovacuum
\pset tuples_only on
SELECT line FROM bench.note WHERE section = 'decoding' ORDER BY at;
\pset tuples_only off
\echo == what a batch of 50 rows reads on a node after the lag part (the worker stopped, the batch rolled back)
\pset tuples_only on
SELECT line FROM bench.note WHERE section = 'probe' ORDER BY at;
\pset tuples_only off
SELECT subname, apply_error_count, sync_error_count FROM pg_stat_subscription_stats ORDER BY subname;
