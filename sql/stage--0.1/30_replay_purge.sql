
/* ------------------------------------------------- replay and retention */

CREATE FUNCTION stage._replay(pipeline text, ids bigint[], dry_run boolean)
RETURNS TABLE(landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_replay_rows';

/*
 * Run quarantined rows through the current contract again (after a fix):
 * all of a pipeline's, or those with the given landing ids, of a batch, or
 * failing a rule.  Returns one row per replayed landing row and where it
 * went; dry_run only reports.
 */
CREATE FUNCTION stage.replay(pipeline text, ids bigint[] DEFAULT NULL,
							 batch_id bigint DEFAULT NULL, rule_name text DEFAULT NULL,
							 dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	todo bigint[];
BEGIN
	SELECT pg_catalog.array_agg(q.landing_id ORDER BY q.landing_id) INTO todo
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND (replay.ids IS NULL OR q.landing_id OPERATOR(pg_catalog.=) ANY (replay.ids))
	   AND (replay.batch_id IS NULL OR q.batch_id OPERATOR(pg_catalog.=) replay.batch_id)
	   AND (replay.rule_name IS NULL
			OR q.reasons OPERATOR(pg_catalog.@>)
			   pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('rule', replay.rule_name)));
	IF todo IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT * FROM stage._replay(pipeline, todo, COALESCE(dry_run, false));
END
$$;

CREATE FUNCTION stage._purge_landing(pipeline_id integer)
RETURNS bigint LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_purge_landing';

/*
 * Retention: delete landing rows older than their pipeline's retention
 * whose batch is finished, for one pipeline or every pipeline the caller
 * owns.  Returns the number of rows deleted.
 */
CREATE FUNCTION stage.purge(pipeline text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint := 0;
	p record;
BEGIN
	IF pipeline IS NOT NULL THEN
		PERFORM stage._pipeline(pipeline, true);
	END IF;
	FOR p IN SELECT x.pipeline_id FROM stage.pipeline x
			  WHERE (purge.pipeline IS NULL OR x.name OPERATOR(pg_catalog.=) purge.pipeline)
				AND pg_catalog.pg_has_role(x.owner, 'MEMBER')
			  ORDER BY x.pipeline_id
	LOOP
		n := n OPERATOR(pg_catalog.+) stage._purge_landing(p.pipeline_id);
	END LOOP;
	RETURN n;
END
$$;

CREATE FUNCTION stage.set_retention(pipeline text, retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF retention IS NULL OR retention OPERATOR(pg_catalog.<) '0'::interval THEN
		RAISE EXCEPTION 'retention must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_retention(''orders'', ''30 days'').';
	END IF;
	UPDATE stage.pipeline x SET retention = set_retention.retention
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;
