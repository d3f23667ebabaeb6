/*
 * fresh.sql: a partner file of :rows rows, 5% of them bad in a numeric, a
 * char(3) and a timestamptz column, COPYed into a fresh landing table (never
 * analysed) in one transaction and moved at once, batch after batch, as the
 * worker does when the commit wakes it; against a plain COPY of the clean
 * rows into the target.  Run by scripts/bench.sh (BENCH_SCENARIO=fresh).
 *
 * psql variables: rows, dir (a directory the server can write), tag (a
 * suffix for the object names, so several sizes run in one database).
 *
 * Timed, each in its own transaction, on the same machine in the same run:
 *   copy_target   COPY of the clean rows into the target (the floor)
 *   copy_landing  COPY of every row into the pipeline's landing table
 *   move          stage.run_batch() until the window is empty, a transaction
 *                 per batch (stage.batch_size rows)
 * and the memory a backend needs for one run_batch of 10,000, 100,000 and
 * 1,000,000 rows (VmHWM of a fresh backend, shared buffers it touched
 * included).
 */
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET timezone = 'UTC';

\o /dev/null
CREATE SCHEMA IF NOT EXISTS fb;
CREATE TABLE IF NOT EXISTS fb.result (tag text, what text, seconds numeric, PRIMARY KEY (tag, what));
\set src 'fb.src_' :tag
\ir source.sql
\set full :dir '/full_' :tag '.csv'
\set clean :dir '/clean_' :tag '.csv'
COPY (SELECT id, email, amount, currency, ordered_at, note FROM fb.src_:tag ORDER BY id) TO :'full' (FORMAT csv);
COPY (SELECT id, email, amount, currency, ordered_at, note FROM fb.src_:tag
	   WHERE id % 60 NOT IN (0, 20, 40) ORDER BY id) TO :'clean' (FORMAT csv);

CREATE TABLE fb.t_copy_:tag (id bigint PRIMARY KEY, email text NOT NULL, amount numeric(12,2) NOT NULL,
							 currency char(3) NOT NULL, ordered_at timestamptz NOT NULL, note text);
CREATE TABLE fb.t_stage_:tag (LIKE fb.t_copy_:tag INCLUDING ALL);
SELECT stage.create_pipeline('fresh_' || :'tag', 'fb.t_stage_' || :'tag', key => '{id}');
SELECT stage.add_rule('fresh_' || :'tag', 'amount', 'range', '{"min": 0, "max": 100000}');
SELECT stage.add_rule('fresh_' || :'tag', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
SELECT stage.add_rule('fresh_' || :'tag', 'email', 'format', '{"format": "email"}');
SELECT stage.add_mask('fresh_' || :'tag', 'email', 'email');
CHECKPOINT;

/* the floor: COPY of the clean rows into the target */
SELECT clock_timestamp() AS t0 \gset
COPY fb.t_copy_:tag FROM :'clean' (FORMAT csv);
INSERT INTO fb.result VALUES (:'tag', 'copy_target', extract(epoch FROM clock_timestamp() - :'t0'));

/* every row into the fresh landing table, in one transaction */
SELECT clock_timestamp() AS t0 \gset
COPY stage_landing.fresh_:tag (id, email, amount, currency, ordered_at, note) FROM :'full' (FORMAT csv);
INSERT INTO fb.result VALUES (:'tag', 'copy_landing', extract(epoch FROM clock_timestamp() - :'t0'));

/* moved at once, a transaction per batch, as the worker does */
SELECT clock_timestamp() AS t0 \gset
CALL fb.drain('fresh_' || :'tag');
INSERT INTO fb.result VALUES (:'tag', 'move', extract(epoch FROM clock_timestamp() - :'t0'));
\o

SELECT :'tag' AS size,
	   (SELECT count(*) FROM fb.t_stage_:tag) AS clean,
	   (SELECT count(*) FROM fb.t_copy_:tag) AS clean_by_copy,
	   (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'fresh_' || :'tag') AS quarantined;
SELECT r.what, round(r.seconds, 2) AS seconds,
	   round(r.seconds / (SELECT seconds FROM fb.result WHERE tag = :'tag' AND what = 'copy_target'), 2) AS vs_copy_target
  FROM fb.result r WHERE r.tag = :'tag' ORDER BY r.what;
SELECT round(((SELECT seconds FROM fb.result WHERE tag = :'tag' AND what = 'copy_landing')
			  + (SELECT seconds FROM fb.result WHERE tag = :'tag' AND what = 'move'))
			 / (SELECT seconds FROM fb.result WHERE tag = :'tag' AND what = 'copy_target'), 2)
	   AS "copy + move / copy of the clean rows";
