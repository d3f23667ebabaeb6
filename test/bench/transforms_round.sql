/* transforms_round.sql: one round of transforms_bench.sql (d, e, f), repeated :repeat times */
\echo '== round' :round 'of' :repeat
\o /dev/null
SELECT bench.tf_pipeline('bench_d', 'bench.orders_d');
SELECT bench.tf_pipeline('bench_e', 'bench.orders_e');
SELECT bench.tf_pipeline('bench_f', 'bench.orders_f');
VACUUM ANALYZE stage_landing.bench_d, stage_landing.bench_e, stage_landing.bench_f;
\o
\set v d
\ir transforms_time.sql
\set v e
\ir transforms_time.sql
\set v f
\ir transforms_time.sql
SELECT :round < :repeat AS more, :round + 1 AS next_round \gset
\if :more
\set round :next_round
\ir transforms_round.sql
\endif
