-- scrape_time.sql: each read five times after one warm-up, every column
-- computed (string_agg of the rows), the median and the worst in ms
\set ON_ERROR_STOP 1
CREATE TEMPORARY TABLE t (what text, ms double precision);
DO $$
DECLARE
	q record;
	t0 timestamptz;
	i integer;
	d text;
BEGIN
	FOR q IN SELECT * FROM (VALUES
		('metrics()', 'SELECT length(stage.metrics())'),
		('metric_counters', 'SELECT length(string_agg(x::text, '''')) FROM stage.metric_counters x'),
		('metric_histograms', 'SELECT length(string_agg(x::text, '''')) FROM stage.metric_histograms x'),
		('metric_gauges()', 'SELECT length(string_agg(x::text, '''')) FROM stage.metric_gauges() x'),
		('health', 'SELECT length(string_agg(x::text, '''')) FROM stage.health x'),
		('source_health', 'SELECT length(string_agg(x::text, '''')) FROM stage.source_health x'),
		('batches, last 100', 'SELECT length(string_agg(x::text, '''')) FROM (SELECT * FROM stage.batches ORDER BY batch_id DESC LIMIT 100) x'),
		-- the baseline: what a scrape read before counters, the quarantine recounted by status
		('baseline: recount the quarantine', 'SELECT length(string_agg(x::text, '''')) FROM (SELECT pipeline_id, status, count(*) FROM stage.quarantine_log GROUP BY 1, 2) x')) AS v(what, sql)
	LOOP
		EXECUTE q.sql INTO d;
		FOR i IN 1 .. 5 LOOP
			t0 := clock_timestamp();
			EXECUTE q.sql INTO d;
			INSERT INTO t VALUES (q.what, EXTRACT(epoch FROM clock_timestamp() - t0) * 1000);
		END LOOP;
	END LOOP;
END
$$;
SELECT what, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms,
	   round(max(ms)::numeric, 1) AS max_ms,
	   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)
			  / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM t
				  WHERE what = 'baseline: recount the quarantine'))::numeric, 4) AS of_baseline
  FROM t GROUP BY what ORDER BY what;
