/*
 * fresh_main.sql: the fresh-file scenario (BENCH_SCENARIO=fresh in
 * scripts/bench.sh): fresh.sql at :rows and, with :growth, at ten times
 * as many, then the memory of one run_batch of 10,000, 100,000 and
 * 1,000,000 rows, and of one row holding a value of 100 MB.  See docs/performance.md, "A fresh file".
 */
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
\o /dev/null
\ir fb.sql
\o

\echo '== a fresh file of' :rows 'rows'
\set tag small
\ir fresh.sql
\if :growth
SELECT :rows * 10 AS rows10 \gset
\echo '== a fresh file of' :rows10 'rows'
\set tag large
\set rows :rows10
\ir fresh.sql
SELECT round((SELECT sum(seconds) FROM fb.result WHERE tag = 'large' AND what IN ('copy_landing', 'move'))
			 / (SELECT sum(seconds) FROM fb.result WHERE tag = 'small' AND what IN ('copy_landing', 'move')), 2)
	   AS "10x rows: time ratio (copy + move)",
	   round((SELECT seconds FROM fb.result WHERE tag = 'large' AND what = 'copy_target')
			 / (SELECT seconds FROM fb.result WHERE tag = 'small' AND what = 'copy_target'), 2)
	   AS "10x rows: time ratio (copy of the clean rows)";
\endif

\if :memory
\echo '== memory of one run_batch (a fresh backend each)'
\o /dev/null
CREATE TABLE fb.mem_t (id bigint PRIMARY KEY, email text NOT NULL, amount numeric(12,2) NOT NULL,
					   currency char(3) NOT NULL, ordered_at timestamptz NOT NULL, note text);
SELECT stage.create_pipeline('mem', 'fb.mem_t', key => '{id}');
SELECT stage.add_rule('mem', 'amount', 'range', '{"min": 0, "max": 100000}');
SELECT stage.add_mask('mem', 'email', 'email');
INSERT INTO stage_landing.mem (id, email, amount, currency, ordered_at, note)
SELECT g, 'user' || g || '@example.com', (g % 1000)::text, 'EUR', '2024-01-01 00:00:00+00',
	   CASE WHEN g % 20 = 0 THEN 'bad' ELSE 'note ' || g END
  FROM generate_series(1, 1110000) g;
CREATE TABLE fb.mem_result (max_rows int, rows_in bigint, vmhwm_kb bigint, shmem_kb bigint);
\o
\c
SET client_min_messages = warning;
SELECT rows_in AS r FROM stage.run_batch('mem', 10000) \gset
INSERT INTO fb.mem_result SELECT 10000, :r, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s*(\d+)')::bigint, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'RssShmem:\s*(\d+)')::bigint;
\c
SET client_min_messages = warning;
SELECT rows_in AS r FROM stage.run_batch('mem', 100000) \gset
INSERT INTO fb.mem_result SELECT 100000, :r, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s*(\d+)')::bigint, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'RssShmem:\s*(\d+)')::bigint;
\c
SET client_min_messages = warning;
SELECT rows_in AS r FROM stage.run_batch('mem', 1000000) \gset
INSERT INTO fb.mem_result SELECT 1000000, :r, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s*(\d+)')::bigint, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'RssShmem:\s*(\d+)')::bigint;
/* one row holding a value of 100 MB */
\o /dev/null
CREATE TABLE fb.big_t (id bigint PRIMARY KEY, note text);
SELECT stage.create_pipeline('big', 'fb.big_t', key => '{id}');
INSERT INTO stage_landing.big (id, note) SELECT 1, repeat(md5('x'), 100 * 1024 * 1024 / 32);
\o
\c
SET client_min_messages = warning;
SELECT rows_in AS r FROM stage.run_batch('big') \gset
INSERT INTO fb.mem_result SELECT -1, :r, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s*(\d+)')::bigint, substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'RssShmem:\s*(\d+)')::bigint;
/* shared buffers a backend touched stay mapped: the peak of its own memory
   is the peak resident size less the shared memory resident at the end
   (max_rows -1: the row of 100 MB) */
SELECT max_rows, rows_in, round(vmhwm_kb / 1024.0) AS peak_rss_mb,
	   round(shmem_kb / 1024.0) AS shared_mb, round((vmhwm_kb - shmem_kb) / 1024.0) AS own_peak_mb
  FROM fb.mem_result ORDER BY max_rows;
\endif
\echo '== done'
