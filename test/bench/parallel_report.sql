/*
 * parallel_report.sql: checks and ratios of the parallel scenario;
 * bench.sh passes the wall times (seconds) as :t_one, :t_two, :t_pair.
 */
\set ON_ERROR_STOP 1
\pset footer off
SELECT p.pipeline, p.lanes,
	   (SELECT count(*) FROM stage.batches b WHERE b.pipeline = p.pipeline) AS batches,
	   (SELECT count(DISTINCT b.backend_pid) FROM stage.batches b WHERE b.pipeline = p.pipeline) AS movers,
	   (SELECT sum(b.rows_in) FROM stage.batches b WHERE b.pipeline = p.pipeline) AS rows_in,
	   (SELECT sum(b.rows_clean) FROM stage.batches b WHERE b.pipeline = p.pipeline) AS clean,
	   (SELECT sum(b.rows_quarantined) FROM stage.batches b WHERE b.pipeline = p.pipeline) AS quarantined,
	   stage.backlog(p.pipeline) AS backlog
  FROM stage.pipelines p ORDER BY p.pipeline;
SELECT round(:t_one::numeric, 2) AS "one pipeline, one mover (s)",
	   round(:t_two::numeric, 2) AS "one pipeline, two lanes, two movers (s)",
	   round(:t_one::numeric / :t_two::numeric, 2) AS "speed-up of two lanes",
	   round(:t_pair::numeric, 2) AS "two pipelines, a mover each (s)",
	   round(2 * :t_one::numeric / :t_pair::numeric, 2) AS "speed-up of two pipelines";
