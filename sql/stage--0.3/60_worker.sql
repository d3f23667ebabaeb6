
/* ---------------------------------------------------------- the worker */

CREATE FUNCTION stage.start_worker()
RETURNS integer LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_start_worker';
COMMENT ON FUNCTION stage.start_worker() IS
	'starts one more stage worker for the current database; returns its pid';
REVOKE ALL ON FUNCTION stage.start_worker() FROM PUBLIC;

CREATE FUNCTION stage._workers()
RETURNS TABLE(pid integer, database text, state text, pipeline text, batch_id bigint,
			  last_error text, batches bigint, rows bigint, started_at timestamptz,
			  last_batch_at timestamptz, dynamic boolean)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_workers';

