/*
 * pgloader_report.sql: Debian's pgloader on the fresh scenario's file
 * (BENCH_PGLOADER in scripts/bench.sh), beside stage and COPY from the same
 * run.  :t is pgloader's wall time (seconds), :budget the time it was given.
 */
\set ON_ERROR_STOP 1
\pset footer off
\echo '== pgloader on the same file'
SELECT (SELECT count(*) FROM fb.src_small) AS file_rows,
	   (SELECT count(*) FROM fb.t_pgl) AS pgloader_loaded,
	   round(:t::numeric, 2) AS pgloader_s,
	   :t::numeric >= :budget AS stopped_at_budget,
	   (SELECT round(seconds, 2) FROM fb.result WHERE tag = 'small' AND what = 'copy_target') AS copy_clean_rows_s,
	   (SELECT round(sum(seconds), 2) FROM fb.result WHERE tag = 'small' AND what IN ('copy_landing', 'move'))
		   AS stage_copy_and_move_s;
