/* transforms_time.sql: drain pipeline bench_:v once, timed, into bench.tf_result */
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL bench.tf_drain('bench_' || :'v');
INSERT INTO bench.tf_result
SELECT :round, :'v', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz),
	   (SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'bench_' || :'v'),
	   (SELECT sum(rows_clean) FROM stage.batches WHERE pipeline = 'bench_' || :'v'),
	   (SELECT sum(rows_quarantined) FROM stage.batches WHERE pipeline = 'bench_' || :'v');
