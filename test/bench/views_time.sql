-- views_time.sql: the catalog views read with a long history
-- (BENCH_SCENARIO=views, after scrape_setup.sql: 100,000 batches and
-- 1,000,000 open quarantine items of one pipeline).  Each query is run once
-- to warm up, then five times; the median and the worst in ms.  Two
-- baselines in the same run: the same question asked of the raw tables
-- (no masking, no visibility), and, for the quarantine, the view as it was
-- before (every item of the pipeline masked by stage._quarantine, a
-- temporary copy of the old definition).  Read as a member of
-- stage_analyst, not as a superuser.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
VACUUM ANALYZE stage.quarantine_log;
VACUUM ANALYZE stage.batch;
SELECT stage.create_roles();
DROP ROLE IF EXISTS bench_analyst;
CREATE ROLE bench_analyst IN ROLE stage_analyst;
-- the view before: every item of each pipeline through stage._quarantine
CREATE TEMPORARY VIEW quarantine_before AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons -> 0 ->> 'rule' AS rule_name, q.reasons -> 0 ->> 'value' AS value,
	   q.reasons, q.row_data, q.quarantined_at, q.status
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 WHERE stage._may_see(p.owner) AND q.status = 'open';
CREATE TEMPORARY TABLE t (what text, variant text, ms double precision);
GRANT SELECT ON quarantine_before TO bench_analyst;
GRANT INSERT ON t TO bench_analyst;
SELECT pipeline_id AS pid FROM stage.pipeline WHERE name = 'sc_orders' \gset
SET ROLE bench_analyst;
DO $$
DECLARE
	q record;
	t0 timestamptz;
	i integer;
	d text;
BEGIN
	FOR q IN SELECT * FROM (VALUES
		('quarantine: newest 100', 'view',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM stage.quarantine WHERE pipeline = ''sc_orders'' ORDER BY quarantined_at DESC LIMIT 100) x'),
		('quarantine: newest 100', 'before',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM pg_temp.quarantine_before WHERE pipeline = ''sc_orders'' ORDER BY quarantined_at DESC LIMIT 100) x'),
		('quarantine: one landing_id', 'view',
		 'SELECT length(string_agg(x::text, '''')) FROM stage.quarantine x WHERE pipeline = ''sc_orders'' AND landing_id = 424242'),
		('quarantine: one landing_id', 'before',
		 'SELECT length(string_agg(x::text, '''')) FROM pg_temp.quarantine_before x WHERE pipeline = ''sc_orders'' AND landing_id = 424242'),
		('quarantine: count', 'view',
		 'SELECT count(*)::text FROM stage.quarantine WHERE pipeline = ''sc_orders'''),
		('quarantine: count', 'before',
		 'SELECT count(*)::text FROM pg_temp.quarantine_before WHERE pipeline = ''sc_orders'''),
		('quarantine: by rule', 'view',
		 'SELECT string_agg(r || n, '','') FROM (SELECT rule_name, count(*) FROM stage.quarantine WHERE pipeline = ''sc_orders'' GROUP BY 1) x(r, n)'),
		('quarantine: by rule', 'before',
		 'SELECT string_agg(r || n, '','') FROM (SELECT rule_name, count(*) FROM pg_temp.quarantine_before WHERE pipeline = ''sc_orders'' GROUP BY 1) x(r, n)'),
		('dlq_summary', 'view',
		 'SELECT length(string_agg(x::text, '''')) FROM stage.dlq_summary x WHERE pipeline = ''sc_orders'''),
		('batches: newest 100', 'view',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM stage.batches WHERE pipeline = ''sc_orders'' ORDER BY batch_id DESC LIMIT 100) x'),
		('batches: count', 'view',
		 'SELECT count(*)::text FROM stage.batches WHERE pipeline = ''sc_orders'''),
		('health', 'view',
		 'SELECT length(string_agg(x::text, '''')) FROM stage.health x')) AS v(what, variant, sql)
	LOOP
		EXECUTE q.sql INTO d;
		FOR i IN 1 .. 5 LOOP
			t0 := clock_timestamp();
			EXECUTE q.sql INTO d;
			INSERT INTO pg_temp.t VALUES (q.what, q.variant, EXTRACT(epoch FROM clock_timestamp() - t0) * 1000);
		END LOOP;
	END LOOP;
END
$$;
RESET ROLE;
-- the raw baselines, as the superuser (the tables are the catalog owner's)
DO $$
DECLARE
	q record;
	t0 timestamptz;
	i integer;
	d text;
	pid integer := (SELECT pipeline_id FROM stage.pipeline WHERE name = 'sc_orders');
BEGIN
	FOR q IN SELECT * FROM (VALUES
		('quarantine: newest 100',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM stage.quarantine_log WHERE pipeline_id = $1 AND status = ''open'' ORDER BY quarantined_at DESC LIMIT 100) x'),
		('quarantine: one landing_id',
		 'SELECT length(string_agg(x::text, '''')) FROM stage.quarantine_log x WHERE pipeline_id = $1 AND landing_id = 424242 AND status = ''open'''),
		('quarantine: count',
		 'SELECT count(*)::text FROM stage.quarantine_log WHERE pipeline_id = $1 AND status = ''open'''),
		('quarantine: by rule',
		 'SELECT string_agg(r || n, '','') FROM (SELECT reasons -> 0 ->> ''rule'', count(*) FROM stage.quarantine_log WHERE pipeline_id = $1 AND status = ''open'' GROUP BY 1) x(r, n)'),
		('dlq_summary',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT r.value ->> ''rule'', date_trunc(''day'', q.quarantined_at), count(*), count(DISTINCT q.landing_id) FROM stage.quarantine_log q, jsonb_array_elements(q.reasons) r WHERE q.pipeline_id = $1 GROUP BY 1, 2) x'),
		('batches: newest 100',
		 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM stage.batch WHERE pipeline_id = $1 ORDER BY batch_id DESC LIMIT 100) x'),
		('batches: count',
		 'SELECT count(*)::text FROM stage.batch WHERE pipeline_id = $1')) AS v(what, sql)
	LOOP
		EXECUTE q.sql INTO d USING pid;
		FOR i IN 1 .. 5 LOOP
			t0 := clock_timestamp();
			EXECUTE q.sql INTO d USING pid;
			INSERT INTO pg_temp.t VALUES (q.what, 'raw table', EXTRACT(epoch FROM clock_timestamp() - t0) * 1000);
		END LOOP;
	END LOOP;
END
$$;
WITH m AS (
	SELECT what, variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS median, max(ms) AS worst
	  FROM t GROUP BY 1, 2)
SELECT v.what, round(v.median::numeric, 1) AS view_ms, round(v.worst::numeric, 1) AS view_max_ms,
	   round(b.median::numeric, 1) AS before_ms,
	   round(r.median::numeric, 1) AS raw_ms,
	   round((v.median / NULLIF(r.median, 0))::numeric, 2) AS of_raw,
	   round((b.median / NULLIF(v.median, 0))::numeric, 0) AS speedup
  FROM m v
  LEFT JOIN m b ON b.what = v.what AND b.variant = 'before'
  LEFT JOIN m r ON r.what = v.what AND r.variant = 'raw table'
 WHERE v.variant = 'view'
 ORDER BY v.what;
