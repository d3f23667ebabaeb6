--
-- backpressure: a pipeline's limit on its backlog.  Above it a producer's
-- INSERT or COPY fails at once with SQLSTATE 53400, or waits up to
-- max_wait first; the refusals are counted (stage.health, the metrics);
-- the rows already landed are untouched.
--
-- Roles: bp_owner, bp_producer, bp_other.  Other objects are prefixed bp_.
-- A backend trusts a pipeline's backlog estimate for 100 ms: the
-- pg_sleep(0.15) calls below let it look again.
--
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS bp_owner;
DROP ROLE IF EXISTS bp_producer;
DROP ROLE IF EXISTS bp_other;
RESET client_min_messages;

CREATE ROLE bp_owner NOLOGIN;
CREATE ROLE bp_producer NOLOGIN;
CREATE ROLE bp_other NOLOGIN;
CREATE TABLE bp_orders (id integer PRIMARY KEY, v text);
ALTER TABLE bp_orders OWNER TO bp_owner;

-- run a statement; say 'ok' or its SQLSTATE and message (ages masked: they
-- are a matter of milliseconds)
CREATE FUNCTION bp_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	state text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
	RETURN state || ': ' || regexp_replace(msg, 'row \d\d:\d\d:\d\d old', 'row hh:mm:ss old');
END
$$;
GRANT EXECUTE ON FUNCTION bp_try(text) TO PUBLIC;

SET ROLE bp_owner;
SELECT stage.create_pipeline('bp', 'bp_orders', key => '{id}');
SELECT stage.grant_producer('bp', 'bp_producer');

----------------------------------------------------------------------------
-- 1. Arguments
----------------------------------------------------------------------------
SELECT stage.set_backpressure('bp', max_backlog => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_backpressure('bp', max_backlog_age => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_backpressure('bp', 5, on_backlog => 'block');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_backpressure('bp', 5, on_backlog => 'wait', max_wait => '10 minutes');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_backpressure('bp', 5, max_wait => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT stage.set_backpressure('no_such_pipeline', 5);
\echo :LAST_ERROR_SQLSTATE
-- no limit, no trigger: producers pay nothing
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'stage_landing.bp'::regclass
   AND tgname = 'stage_backpressure';
RESET ROLE;

----------------------------------------------------------------------------
-- 2. Only an owner sets it
----------------------------------------------------------------------------
SET ROLE bp_other;
SELECT stage.set_backpressure('bp', 5);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE bp_producer;
SELECT stage.set_backpressure('bp', 5);
\echo :LAST_ERROR_SQLSTATE
SELECT stage._backpressure_ddl(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

----------------------------------------------------------------------------
-- 3. Rows: refused at once above max_backlog
----------------------------------------------------------------------------
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp', max_backlog => 5);
SELECT max_backlog, max_backlog_age, on_backlog, backlog_wait FROM stage.pipelines WHERE pipeline = 'bp';
SELECT tgname, tgtype, tgenabled FROM pg_trigger WHERE tgrelid = 'stage_landing.bp'::regclass
   AND tgname = 'stage_backpressure';
RESET ROLE;

SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('1', 'a'), ('2', 'b'), ('3', 'c'), ('4', 'd')$$);
SELECT pg_sleep(0.15);
-- 4 pending, at most 5: passes
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('5', 'e'), ('6', 'f')$$);
SELECT pg_sleep(0.15);
-- 6 pending: refused, and again
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('7', 'g')$$);
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('7', 'g')$$);
-- COPY too, before its first row
\set VERBOSITY sqlstate
COPY stage_landing.bp (id, v) FROM STDIN;
8	h
\.
\set VERBOSITY default
-- what a producer reads (the age masked)
DO $$
BEGIN
	INSERT INTO stage_landing.bp (id, v) VALUES ('9', 'i');
EXCEPTION WHEN configuration_limit_exceeded THEN
	DECLARE
		d text;
		h text;
	BEGIN
		GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
		RAISE NOTICE 'detail: %', d;
		RAISE NOTICE 'hint: %', h;
	END;
END
$$;
RESET ROLE;

-- counted; nothing landed before was touched, nothing refused landed
SELECT backpressure_rejections FROM stage.health WHERE pipeline = 'bp';
SELECT metric, value FROM stage.metric_counters
 WHERE pipeline = 'bp' AND metric LIKE 'stage_backpressure%' ORDER BY metric;
SELECT count(*) AS landed, min(id), max(id) FROM stage_landing.bp;
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') line
 WHERE line LIKE 'stage_backpressure%' ORDER BY line;
-- the one who may not see the pipeline sees no counts
SET ROLE bp_other;
SELECT count(*) AS visible_counts FROM stage._backpressure_counts();
RESET ROLE;

-- the mover catches up: the producer lands again
SET ROLE bp_owner;
SELECT rows_in, rows_clean FROM stage.run_batch('bp');
RESET ROLE;
SELECT pg_sleep(0.15);
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('7', 'g')$$);
RESET ROLE;

-- limit lifted: the trigger goes, inserts pass whatever the backlog
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp', max_backlog => 1);
RESET ROLE;
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('8', 'h')$$);
SELECT pg_sleep(0.15);
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('9', 'i')$$);
RESET ROLE;
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'stage_landing.bp'::regclass
   AND tgname = 'stage_backpressure';
RESET ROLE;
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) SELECT g::text, 'x' FROM generate_series(10, 19) g$$);
RESET ROLE;
SET ROLE bp_owner;
SELECT rows_in, rows_clean FROM stage.run_batch('bp');
RESET ROLE;

----------------------------------------------------------------------------
-- 4. Age: refused while the oldest pending row is older than max_backlog_age
----------------------------------------------------------------------------
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp', max_backlog_age => '1 hour');
RESET ROLE;
-- a row that waited two hours (only the catalog owner may set the time)
INSERT INTO stage_landing.bp (id, v, _stage_received_at) VALUES ('20', 'old', now() - interval '2 hours');
SELECT pg_sleep(0.15);
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('21', 'new')$$);
RESET ROLE;
SELECT backpressure_rejections FROM stage.health WHERE pipeline = 'bp';
SET ROLE bp_owner;
SELECT rows_in FROM stage.run_batch('bp');
RESET ROLE;
SELECT pg_sleep(0.15);
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('21', 'new')$$);
RESET ROLE;
SELECT backpressure_rejections FROM stage.health WHERE pipeline = 'bp';

----------------------------------------------------------------------------
-- 5. on_backlog 'wait': held up to max_wait, then refused the same way
----------------------------------------------------------------------------
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp', max_backlog => 1, on_backlog => 'wait', max_wait => '0.3 seconds');
RESET ROLE;
SET ROLE bp_producer;
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('22', 'a'), ('23', 'b')$$);
SELECT pg_sleep(0.15);
SELECT clock_timestamp() AS t0 \gset
SELECT bp_try($$INSERT INTO stage_landing.bp (id, v) VALUES ('24', 'c')$$);
SELECT clock_timestamp() - :'t0' >= interval '0.3 seconds' AS waited;
RESET ROLE;
SELECT backpressure_rejections FROM stage.health WHERE pipeline = 'bp';
SELECT rejections, waits, wait_seconds >= 0.3 AS waited_long_enough
  FROM stage._backpressure_counts() JOIN stage.pipeline USING (pipeline_id) WHERE name = 'bp';
-- a statement_timeout ends the wait like any other statement
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp', max_backlog => 1, on_backlog => 'wait', max_wait => '1 minute');
RESET ROLE;
SET ROLE bp_producer;
SET statement_timeout = '200ms';
INSERT INTO stage_landing.bp (id, v) VALUES ('24', 'c');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
RESET ROLE;

-- every landed row moves, exactly once
SET ROLE bp_owner;
SELECT stage.set_backpressure('bp');
SELECT rows_in, rows_clean FROM stage.run_batch('bp');
RESET ROLE;
SELECT (SELECT count(*) FROM stage_landing.bp) AS landed, (SELECT count(*) FROM bp_orders) AS moved;

SELECT stage.drop_pipeline('bp', force => true);
DROP FUNCTION bp_try(text);
DROP TABLE bp_orders;
DROP ROLE bp_owner;
DROP ROLE bp_producer;
DROP ROLE bp_other;
