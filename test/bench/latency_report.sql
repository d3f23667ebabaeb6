-- latency_report.sql: what the handoff-latency benchmark measured
-- (scripts/latency.sh).  Needs track_commit_timestamp = on.
--
-- Handoff latency of a landing row: from its arrival (_stage_received_at,
-- clock_timestamp() when the producer's INSERT wrote it) to the commit of
-- the transaction that put it in the target -- or in quarantine or the
-- duplicate log -- read from the commit timestamp of that row's xmin.  The
-- part the worker is responsible for starts at the producer's commit (the
-- commit timestamp of the landing row's xmin): reported too.

\set ON_ERROR_STOP 1
\pset footer off

CREATE TEMP TABLE h AS
SELECT l._stage_id, o.outcome, l._stage_received_at AS received_at,
	   extract(epoch FROM o.committed - l._stage_received_at) * 1000 AS ms,
	   extract(epoch FROM o.committed - pg_xact_commit_timestamp(l.xmin)) * 1000 AS ms_after_commit
  FROM stage_landing.events l
  JOIN (SELECT _stage_id AS id, 'target' AS outcome, pg_xact_commit_timestamp(xmin) AS committed
		  FROM public.events
		UNION ALL
		SELECT landing_id, 'quarantine', pg_xact_commit_timestamp(xmin) FROM stage.quarantine_log
		UNION ALL
		SELECT landing_id, 'duplicate', pg_xact_commit_timestamp(xmin) FROM stage.duplicate_log) o
	ON o.id = l._stage_id;

\echo
\echo == rows
SELECT (SELECT count(*) FROM stage_landing.events) AS landed,
	   count(*) FILTER (WHERE outcome = 'target') AS target,
	   count(*) FILTER (WHERE outcome = 'quarantine') AS quarantine,
	   count(*) FILTER (WHERE outcome = 'duplicate') AS duplicate,
	   (SELECT count(*) FROM stage_landing.events) - count(*) AS unplaced,
	   round(extract(epoch FROM max(received_at) - min(received_at))::numeric, 1) AS load_seconds,
	   round(count(*) / NULLIF(extract(epoch FROM max(received_at) - min(received_at)), 0)) AS rows_per_s
  FROM h;

\echo
\echo == handoff latency, received -> committed in the target (ms)
SELECT outcome, count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p99,
	   round(max(ms)::numeric, 1) AS max
  FROM (SELECT 'all' AS outcome, ms FROM h
		UNION ALL SELECT outcome, ms FROM h) x
 GROUP BY outcome ORDER BY outcome = 'all' DESC, outcome;

\echo
\echo == of which after the producer commits: landing row committed -> committed in the target (ms)
SELECT count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms_after_commit)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms_after_commit)::numeric, 1) AS p95,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms_after_commit)::numeric, 1) AS p99,
	   round(max(ms_after_commit)::numeric, 1) AS max
  FROM h;

\echo
\echo == handoff latency over the run, by 10 s of arrival (ms)
SELECT (extract(epoch FROM received_at - (SELECT min(received_at) FROM h))::int / 10) * 10 AS from_s,
	   count(*) AS rows,
	   round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50,
	   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p99,
	   round(max(ms)::numeric, 1) AS max
  FROM h GROUP BY 1 ORDER BY 1;

\echo
\echo == target: p95 <= 1000 ms
SELECT CASE WHEN percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) <= 1000
			THEN 'met' ELSE 'NOT met' END AS p95_within_1s
  FROM h;

\echo
\echo == batches
SELECT run_by, count(*) AS batches, status,
	   round(avg(rows_in)) AS avg_rows, max(rows_in) AS max_rows,
	   round((extract(epoch FROM percentile_cont(0.50) WITHIN GROUP (ORDER BY duration)) * 1000)::numeric, 1) AS p50_ms,
	   round((extract(epoch FROM percentile_cont(0.95) WITHIN GROUP (ORDER BY duration)) * 1000)::numeric, 1) AS p95_ms,
	   round((extract(epoch FROM max(duration)) * 1000)::numeric, 1) AS max_ms,
	   count(DISTINCT backend_pid) AS workers
  FROM stage.batches GROUP BY run_by, status ORDER BY run_by, status;

\echo
\echo == backlog (landing rows committed but not yet moved), sampled every second
SELECT max(backlog) AS max, round(avg(backlog)) AS avg,
	   percentile_disc(0.95) WITHIN GROUP (ORDER BY backlog) AS p95,
	   count(*) FILTER (WHERE backlog = 0) AS samples_at_0, count(*) AS samples
  FROM lat.backlog WHERE landed > 0;

\echo
\echo == backlog over time
SELECT round(extract(epoch FROM at - first_value(at) OVER (ORDER BY at))::numeric, 1) AS t_s,
	   landed - lag(landed, 1, 0::bigint) OVER (ORDER BY at) AS landed_in_s,
	   moved - lag(moved, 1, 0::bigint) OVER (ORDER BY at) AS moved_in_s,
	   backlog
  FROM lat.backlog ORDER BY at;
