/* ------------------------------------------------- dropped tables */

/*
 * DROP TABLE of a pipeline's target (or of its landing table, which only
 * the catalog owner or a superuser can drop) would leave the pipeline
 * pointing at a table that is gone, and every batch failing.  The sql_drop
 * event trigger pauses such a pipeline with the reason instead; its landing
 * rows, quarantine and history stay, for the owner to look at and to drop
 * with stage.drop_pipeline (which refuses while rows are pending or items
 * open, unless forced).  stage.run_batch of the pipeline keeps failing
 * with 42P01 "the target table of pipeline ... no longer exists".
 *
 * An event trigger runs as whoever ran the DDL, and only the catalog owner
 * may write stage.pipeline: this function is SECURITY DEFINER, owned by
 * the catalog owner, with search_path pinned.  It takes no argument, can
 * only be called as an event trigger, and nobody else may execute it.  It
 * fires for every DROP in the database and must be cheap and never fail
 * unrelated DDL: it reads the dropped objects once, returns at once when
 * no permanent table is among them, and otherwise makes one UPDATE by oid.
 * Temporary tables are never targets (create_pipeline refuses them).
 */
CREATE FUNCTION stage._on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gone oid[];
	names text[];
BEGIN
	SELECT pg_catalog.array_agg(d.objid), pg_catalog.array_agg(d.object_identity)
	  INTO gone, names
	  FROM pg_catalog.pg_event_trigger_dropped_objects() d
	 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.objsubid OPERATOR(pg_catalog.=) 0
	   AND d.object_type OPERATOR(pg_catalog.=) 'table'
	   AND NOT d.is_temporary;
	IF gone IS NULL THEN
		RETURN;
	END IF;
	UPDATE stage.pipeline x
	   SET enabled = false,
		   retry_at = NULL,
		   paused_reason = CASE
			WHEN x.target::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (gone) THEN
				pg_catalog.format('the target table %s was dropped; the landing rows, quarantine and history are kept',
								  names[pg_catalog.array_position(gone, x.target::pg_catalog.oid)])
			ELSE
				pg_catalog.format('the landing table %s was dropped, with the rows it held',
								  names[pg_catalog.array_position(gone, x.landing::pg_catalog.oid)])
			END
	 WHERE x.target::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (gone)
		OR x.landing::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (gone);
END
$$;

CREATE EVENT TRIGGER stage_sql_drop ON sql_drop
	EXECUTE FUNCTION stage._on_sql_drop();
