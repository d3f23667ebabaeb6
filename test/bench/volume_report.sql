-- volume_report.sql: the volume scenario's report (test/bench/volume_run.sh):
-- run_batch time per 1M rows at each mark and its ratio to the first mark,
-- sizes at each mark, bytes per landing row, batch and quarantine item,
-- and the purge against a plain DELETE.
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;

CREATE VIEW vol.report AS
SELECT m.mark,
	   m.mark - m.rows_in AS finished_before,
	   m.rows_in,
	   m.batches,
	   round(m.seconds::numeric, 3) AS seconds,
	   round((m.seconds * 1e6 / m.rows_in)::numeric, 3) AS s_per_1m,
	   round(((m.seconds / m.rows_in) / (f.seconds / f.rows_in))::numeric, 3) AS ratio_to_first,
	   m.landing_rows,
	   round(m.landing_bytes / 1048576.0, 1) AS landing_mb,
	   round(m.landing_bytes::numeric / NULLIF(m.landing_rows, 0), 1) AS landing_bytes_per_row,
	   round(m.target_bytes / 1048576.0, 1) AS target_mb,
	   round(m.batch_bytes / 1048576.0, 2) AS batch_mb,
	   round(m.rule_stat_bytes / 1048576.0, 2) AS rule_stat_mb,
	   round(m.quarantine_bytes / 1048576.0, 2) AS quarantine_mb,
	   round(m.duplicate_bytes / 1048576.0, 2) AS duplicate_mb,
	   round(m.lineage_bytes / 1048576.0, 2) AS lineage_mb,
	   round(m.counter_bytes / 1048576.0, 2) AS counter_hourly_mb,
	   m.batch_rows AS batches_kept,
	   m.quarantine_items,
	   round((m.batch_bytes + m.rule_stat_bytes + m.lineage_bytes)::numeric / NULLIF(m.batch_rows, 0)) AS bytes_per_batch,
	   round(m.quarantine_bytes::numeric / NULLIF(m.quarantine_items, 0)) AS bytes_per_quarantine_item
  FROM vol.mark m,
	   (SELECT * FROM vol.mark ORDER BY mark LIMIT 1) f
 ORDER BY m.mark;

\echo
\echo '== run_batch time per 1M rows, by finished rows already in the landing table'
SELECT finished_before, rows_in, batches, seconds, s_per_1m, ratio_to_first FROM vol.report;

\echo '== sizes after each mark (MB; landing: every partition, with indexes)'
SELECT mark AS finished, landing_mb, landing_bytes_per_row AS "B/row", target_mb,
	   batch_mb, rule_stat_mb, quarantine_mb, duplicate_mb, lineage_mb, counter_hourly_mb,
	   batches_kept, quarantine_items, bytes_per_batch AS "B/batch", bytes_per_quarantine_item AS "B/item"
  FROM vol.report;

\echo '== growth from the first mark to the last, per unit (what capacity planning multiplies)'
SELECT round((l.landing_bytes - f.landing_bytes)::numeric / NULLIF(l.landing_rows - f.landing_rows, 0), 1)
		 AS landing_bytes_per_row,
	   round((l.target_bytes - f.target_bytes)::numeric / NULLIF(l.mark - f.mark, 0), 1) AS target_bytes_per_row,
	   round((l.batch_bytes + l.rule_stat_bytes + l.lineage_bytes + l.counter_bytes
			  - f.batch_bytes - f.rule_stat_bytes - f.lineage_bytes - f.counter_bytes)::numeric
			 / NULLIF(l.batch_rows - f.batch_rows, 0)) AS history_bytes_per_batch,
	   round((l.quarantine_bytes - f.quarantine_bytes)::numeric
			 / NULLIF(l.quarantine_items - f.quarantine_items, 0)) AS bytes_per_quarantine_item,
	   round((l.quarantine_items - f.quarantine_items)::numeric / NULLIF(l.mark - f.mark, 0), 4) AS reject_ratio,
	   round((l.mark - f.mark)::numeric / NULLIF(l.batch_rows - f.batch_rows, 0)) AS rows_per_batch
  FROM (SELECT * FROM vol.mark ORDER BY mark LIMIT 1) f, (SELECT * FROM vol.mark ORDER BY mark DESC LIMIT 1) l;

\echo '== purge of the rows older than the retention'
SELECT what, rows, round(seconds::numeric, 3) AS seconds,
	   round(bytes_before / 1048576.0, 1) AS mb_before, round(bytes_after / 1048576.0, 1) AS mb_after
  FROM vol.purge ORDER BY what;

\echo '== summary'
SELECT 'run_batch per 1M, last mark / first mark' AS measure,
	   (SELECT ratio_to_first FROM vol.report ORDER BY mark DESC LIMIT 1)::text AS value,
	   '<= 1.1' AS target,
	   CASE WHEN (SELECT ratio_to_first FROM vol.report ORDER BY mark DESC LIMIT 1) <= 1.1
			THEN 'met' ELSE 'NOT met' END AS verdict
UNION ALL
SELECT format('stage.purge of %s rows, s', rows), round(seconds::numeric, 3)::text, '<= 1 s',
	   CASE WHEN seconds <= 1 THEN 'met' ELSE 'NOT met' END
  FROM vol.purge WHERE what = 'stage.purge'
UNION ALL
SELECT 'stage.purge / plain DELETE',
	   round((p.seconds / d.seconds)::numeric, 3)::text, '', ''
  FROM vol.purge p, vol.purge d
 WHERE p.what = 'stage.purge' AND d.what = 'baseline: DELETE from a copy'
UNION ALL
SELECT format('rows purged (whole partitions, estimated) of the %s past the retention', d.rows),
	   p.rows::text, format('<= %s', d.rows),
	   CASE WHEN p.rows <= d.rows * 1.01 AND p.rows > 0 THEN 'ok' ELSE 'MISMATCH' END
  FROM vol.purge p, vol.purge d
 WHERE p.what = 'stage.purge' AND d.what = 'baseline: DELETE from a copy';
