/* ------------------------------------------------------- backpressure */

/*
 * A pipeline's limit on its backlog (src/backpressure.c): while one is
 * set, the landing table has the statement trigger stage_backpressure,
 * which refuses (or holds, then refuses) a producer's INSERT or COPY while
 * the backlog is over it.  The refusals and waits are counted in shared
 * memory, since the server started (stage._backpressure_counts).
 */
CREATE FUNCTION stage._backpressure() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_backpressure';

/* the trigger made or dropped to match the pipeline's settings */
CREATE FUNCTION stage._backpressure_ddl(pipeline_id integer)
RETURNS void LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_backpressure_ddl';

/* refusals and waits per pipeline of this database the caller may see */
CREATE FUNCTION stage._backpressure_counts()
RETURNS TABLE(pipeline_id integer, rejections bigint, waits bigint, wait_seconds double precision)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_backpressure_counts';

CREATE FUNCTION stage.set_backpressure(pipeline text, max_backlog bigint DEFAULT NULL,
									   max_backlog_age interval DEFAULT NULL,
									   on_backlog text DEFAULT 'reject',
									   max_wait interval DEFAULT '10 seconds')
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.set_backpressure(text, bigint, interval, text, interval) IS
	'limits a pipeline''s backlog: above max_backlog rows or max_backlog_age, producer inserts are refused (or wait up to max_wait); both NULL: no limit';
CREATE FUNCTION stage._do_set_backpressure(pipeline text, max_backlog bigint,
										   max_backlog_age interval, on_backlog text,
										   max_wait interval)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF max_backlog IS NOT NULL AND max_backlog OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'max_backlog must be a positive number of rows'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_backpressure(''orders'', max_backlog => 1000000); NULL removes the limit.';
	END IF;
	IF max_backlog_age IS NOT NULL AND max_backlog_age OPERATOR(pg_catalog.<=) '0'::interval THEN
		RAISE EXCEPTION 'max_backlog_age must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_backpressure(''orders'', max_backlog_age => ''5 minutes''); NULL removes the limit.';
	END IF;
	IF on_backlog IS NULL OR on_backlog OPERATOR(pg_catalog.<>) ALL (ARRAY['reject', 'wait']) THEN
		RAISE EXCEPTION 'on_backlog must be ''reject'' or ''wait'', not %',
			COALESCE(pg_catalog.quote_literal(on_backlog), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = '''reject'' refuses the producer''s statement at once; ''wait'' holds it up to max_wait for the backlog to fall, then refuses it.';
	END IF;
	IF max_wait IS NULL OR max_wait OPERATOR(pg_catalog.<) '0'::interval
	   OR max_wait OPERATOR(pg_catalog.>) '5 minutes'::interval THEN
		RAISE EXCEPTION 'max_wait must be between 0 and 5 minutes'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A waiting statement holds its connection and transaction: keep it short, for example ''10 seconds''.';
	END IF;
	UPDATE stage.pipeline x
	   SET max_backlog = _do_set_backpressure.max_backlog,
		   max_backlog_age = _do_set_backpressure.max_backlog_age,
		   on_backlog = _do_set_backpressure.on_backlog,
		   backlog_wait = _do_set_backpressure.max_wait
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	PERFORM stage._backpressure_ddl(p.pipeline_id);
END
$$;
