/*
 * parallel_report.sql: checks and ratios of the parallel scenario.
 * bench.sh records the wall time of each drain in fb.timing (round, what:
 * one, two, pair); the speed-ups are of the medians, and per round.
 */
\set ON_ERROR_STOP 1
\pset footer off
SELECT regexp_replace(p.pipeline, '_[0-9]+$', '') AS pipelines, max(p.lanes) AS lanes,
	   count(DISTINCT p.pipeline) AS rounds,
	   sum((SELECT count(*) FROM stage.batches b WHERE b.pipeline = p.pipeline)) AS batches,
	   max((SELECT count(DISTINCT b.backend_pid) FROM stage.batches b WHERE b.pipeline = p.pipeline)) AS movers,
	   sum((SELECT sum(b.rows_in) FROM stage.batches b WHERE b.pipeline = p.pipeline)) AS rows_in,
	   sum((SELECT sum(b.rows_clean) FROM stage.batches b WHERE b.pipeline = p.pipeline)) AS clean,
	   sum((SELECT sum(b.rows_quarantined) FROM stage.batches b WHERE b.pipeline = p.pipeline)) AS quarantined,
	   sum(stage.backlog(p.pipeline)) AS backlog
  FROM stage.pipelines p GROUP BY 1 ORDER BY 1;
SELECT round, 
	   max(seconds) FILTER (WHERE what = 'one') AS one_s,
	   max(seconds) FILTER (WHERE what = 'two') AS two_lanes_s,
	   max(seconds) FILTER (WHERE what = 'pair') AS two_pipelines_s,
	   round(max(seconds) FILTER (WHERE what = 'one') / max(seconds) FILTER (WHERE what = 'two'), 2) AS lanes_speedup,
	   round(2 * max(seconds) FILTER (WHERE what = 'one') / max(seconds) FILTER (WHERE what = 'pair'), 2) AS pipelines_speedup
  FROM fb.timing GROUP BY round ORDER BY round;
WITH m AS (SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric AS s
			 FROM fb.timing GROUP BY what)
SELECT round((SELECT s FROM m WHERE what = 'one'), 2) AS "one pipeline, one mover (s, median)",
	   round((SELECT s FROM m WHERE what = 'two'), 2) AS "one pipeline, two lanes, two movers (s)",
	   round((SELECT s FROM m WHERE what = 'one') / (SELECT s FROM m WHERE what = 'two'), 2) AS "speed-up of two lanes",
	   round((SELECT s FROM m WHERE what = 'pair'), 2) AS "two pipelines, a mover each (s)",
	   round(2 * (SELECT s FROM m WHERE what = 'one') / (SELECT s FROM m WHERE what = 'pair'), 2) AS "speed-up of two pipelines";
