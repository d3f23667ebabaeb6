-- soak_report.sql: the soak test's report (scripts/soak.sh): the samples at
-- every :step minutes, the plateau check (the value at the end against the
-- value at half time, growth at most :tolerance), and the books (rows
-- landed = clean + quarantined + duplicate + pending).  psql variables:
-- seconds (producer run), step (minutes between report rows), tolerance,
-- landed (rows the producers committed, from pgbench).  The checks go to
-- soak.verdict.
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;

CREATE VIEW soak.csv AS
SELECT round((t_s / 60)::numeric, 2) AS minute,
	   round(landing_bytes / 1048576.0, 2) AS landing_mb,
	   landing_rows, landing_estimate,
	   round(history_bytes / 1048576.0, 2) AS history_mb,
	   round(batch_bytes / 1048576.0, 2) AS batch_mb,
	   round(rule_stat_bytes / 1048576.0, 2) AS rule_stat_mb,
	   round(quarantine_bytes / 1048576.0, 2) AS quarantine_mb,
	   round(duplicate_bytes / 1048576.0, 2) AS duplicate_mb,
	   round(lineage_bytes / 1048576.0, 2) AS lineage_mb,
	   round(counter_bytes / 1048576.0, 2) AS counter_hourly_mb,
	   round(p50_ms::numeric, 2) AS p50_ms,
	   round(p95_ms::numeric, 2) AS p95_ms,
	   backlog, purged, batches, quarantine_items
  FROM soak.sample ORDER BY t_s;

\echo
\echo '== every' :step 'minute(s) (MB; landing: every partition, with indexes; p95: stage.health, the last hour)'
SELECT DISTINCT ON (k) c.*
  FROM generate_series(0, (:seconds / 60) / :step) k,
	   soak.csv c
 ORDER BY k, abs(c.minute * 60 - k * :step * 60);

CREATE TABLE soak.verdict (check_name text, at_half text, at_end text, ok boolean);

/* the plateau: the sample at half time against the last sample of the producer run */
WITH h AS (SELECT * FROM soak.sample ORDER BY abs(t_s - :seconds / 2.0) LIMIT 1),
	 e AS (SELECT * FROM soak.sample WHERE t_s <= :seconds + 5 ORDER BY t_s DESC LIMIT 1)
INSERT INTO soak.verdict
SELECT format('landing MB at %s / %s min, growth <= %s', round((h.t_s / 60)::numeric, 1), round((e.t_s / 60)::numeric, 1), :tolerance),
	   round(h.landing_bytes / 1048576.0, 1)::text, round(e.landing_bytes / 1048576.0, 1)::text,
	   e.landing_bytes <= h.landing_bytes * (1 + :tolerance)
  FROM h, e
UNION ALL
SELECT format('history MB at %s / %s min, growth <= %s%s', round((h.t_s / 60)::numeric, 1), round((e.t_s / 60)::numeric, 1), :tolerance,
			  CASE WHEN c.history_retention THEN '' ELSE ' (not checked: no history retention in this build)' END),
	   round(h.history_bytes / 1048576.0, 1)::text, round(e.history_bytes / 1048576.0, 1)::text,
	   NOT c.history_retention OR e.history_bytes <= h.history_bytes * (1 + :tolerance)
  FROM h, e, soak.conf c
UNION ALL
SELECT 'handoff p95 ms (informational)', round(h.p95_ms::numeric, 1)::text, round(e.p95_ms::numeric, 1)::text, true
  FROM h, e;

/* the books, after the backlog drained */
CREATE TEMPORARY TABLE books AS
SELECT :landed::bigint AS landed,
	   (SELECT count(*) FROM public.events) AS clean,
	   (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'events' AND q.status = 'open') AS open_items,
	   (SELECT count(*) FROM stage.duplicate_log q JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'events') AS duplicate_log,
	   stage.backlog('events') AS pending,
	   (SELECT value FROM stage.metric_counters WHERE pipeline = 'events' AND metric = 'stage_rows_total' AND labels = '{"outcome": "taken"}')::bigint AS c_taken,
	   (SELECT value FROM stage.metric_counters WHERE pipeline = 'events' AND metric = 'stage_rows_total' AND labels = '{"outcome": "clean"}')::bigint AS c_clean,
	   (SELECT value FROM stage.metric_counters WHERE pipeline = 'events' AND metric = 'stage_rows_total' AND labels = '{"outcome": "quarantined"}')::bigint AS c_quarantined,
	   (SELECT value FROM stage.metric_counters WHERE pipeline = 'events' AND metric = 'stage_rows_total' AND labels = '{"outcome": "duplicate"}')::bigint AS c_duplicate,
	   (SELECT sum(value) FROM stage.metric_counters WHERE pipeline = 'events' AND metric = 'stage_dlq_closed_total')::bigint AS c_closed,
	   (SELECT dlq_open FROM stage.health WHERE pipeline = 'events') AS dlq_open;
\echo '== books (quarantined and duplicate rows from the counters: closed items and, with history retention, the duplicate log expire)'
\x on
SELECT * FROM books;
\x off
INSERT INTO soak.verdict
SELECT 'landed = clean (target rows) + quarantined + duplicate + pending', landed::text,
	   format('%s + %s + %s + %s', clean, c_quarantined, c_duplicate, pending),
	   landed = clean + c_quarantined + c_duplicate + pending
  FROM books
UNION ALL
SELECT 'counters: taken = landed - pending, clean = target rows, open items = quarantined - closed = dlq_open',
	   format('%s, %s, %s', landed - pending, clean, open_items),
	   format('%s, %s, %s, %s', c_taken, c_clean, c_quarantined - COALESCE(c_closed, 0), dlq_open),
	   c_taken = landed - pending AND c_clean = clean AND c_quarantined - COALESCE(c_closed, 0) = open_items
	   AND dlq_open = open_items
  FROM books;

\echo '== checks'
SELECT check_name, at_half AS "half / expected", at_end AS "end / found", CASE WHEN ok THEN 'ok' ELSE 'FAILED' END AS verdict
  FROM soak.verdict;
