/* ---------------------------------------------------------- pipelines */

CREATE FUNCTION stage.create_pipeline(name text, target regclass, key text[] DEFAULT NULL,
									  format text DEFAULT 'columns',
									  on_duplicate text DEFAULT 'skip')
RETURNS regclass
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_create_pipeline(name text, target regclass, key text[],
									  format text,
									  on_duplicate text)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	relkind "char";
	relowner oid;
	persistence "char";
	k text;
	pid integer;
	new_landing regclass;
BEGIN
	IF name IS NULL OR target IS NULL THEN
		RAISE EXCEPTION 'pipeline name and target must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_]{0,62}$' THEN
		RAISE EXCEPTION 'invalid pipeline name "%"', name
			USING ERRCODE = 'invalid_name',
				  HINT = 'Use lower-case letters, digits and underscores, starting with a letter (at most 63 characters).';
	END IF;
	IF EXISTS (SELECT 1 FROM stage.pipeline p WHERE p.name OPERATOR(pg_catalog.=) _do_create_pipeline.name) THEN
		RAISE EXCEPTION 'pipeline "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop it with stage.drop_pipeline() or choose another name.';
	END IF;
	SELECT c.relkind, c.relowner, c.relpersistence INTO relkind, relowner, persistence
	  FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) target;
	IF persistence OPERATOR(pg_catalog.=) 't' THEN
		RAISE EXCEPTION 'table % is temporary', target
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'A pipeline outlives sessions; its target must be a permanent table.';
	END IF;
	IF relkind IS NULL OR relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['r', 'p']::"char"[]) THEN
		RAISE EXCEPTION '"%" is not a table', target
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'The target of a pipeline must be an ordinary or partitioned table.';
	END IF;
	IF NOT pg_catalog.pg_has_role(stage._caller(), relowner, 'MEMBER') THEN
		RAISE EXCEPTION 'must be owner of table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only the owner of the target table (or a superuser) may create a pipeline for it.';
	END IF;
	IF format IS NULL OR format OPERATOR(pg_catalog.<>) ALL (ARRAY['columns', 'jsonb']) THEN
		RAISE EXCEPTION 'invalid landing format "%"', format
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''columns'' (one text column per target column) or ''jsonb'' (one payload column).';
	END IF;
	PERFORM stage._check_key(target, key);
	PERFORM stage._check_on_duplicate(on_duplicate);
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
				WHERE a.attrelid OPERATOR(pg_catalog.=) target AND NOT a.attisdropped
				  AND a.attname OPERATOR(pg_catalog.=) ANY (ARRAY['_stage_id', '_stage_batch'])
				  AND a.atttypid OPERATOR(pg_catalog.<>) 'pg_catalog.int8'::pg_catalog.regtype) THEN
		RAISE EXCEPTION 'lineage columns _stage_id and _stage_batch of % must be of type bigint', target
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'The mover fills them with the landing row id and the batch id.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
				WHERE a.attrelid OPERATOR(pg_catalog.=) target AND NOT a.attisdropped
				  AND a.attname OPERATOR(pg_catalog.=) '_stage_node'
				  AND a.atttypid OPERATOR(pg_catalog.<>) 'pg_catalog.text'::pg_catalog.regtype) THEN
		RAISE EXCEPTION 'lineage column _stage_node of % must be of type text', target
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'The mover fills it with the name of the staging node (stage.node_name()).';
	END IF;

	INSERT INTO stage.pipeline (name, target, format, key, on_duplicate, owner, target_columns)
	VALUES (name, target, format, key, on_duplicate, relowner::regrole, stage._target_columns(target))
	RETURNING pipeline_id INTO pid;
	new_landing := stage._landing_ddl(pid, false);
	INSERT INTO stage.contract_history (pipeline_id, version, contract)
	VALUES (pid, 1, stage._do_contract(name));
	RETURN new_landing;
END
$$;

/*
 * Dropping a pipeline deletes its landing rows, quarantine and history.
 * Rows no batch has moved yet and open quarantine items would be lost
 * without a trace: refused unless force, with the counts and the ways out.
 * A landing table already gone (dropped by a superuser) holds nothing.
 */
CREATE FUNCTION stage.drop_pipeline(name text, force boolean DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_pipeline(name text, force boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(name, true);
	pending bigint := 0;
	open_items bigint;
BEGIN
	IF NOT COALESCE(force, false) THEN
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
			/* producers still inserting finish first: their rows are counted, not dropped unseen */
			EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', p.landing);
			pending := stage._do_backlog(name);
		END IF;
		SELECT pg_catalog.count(*) INTO open_items FROM stage.quarantine_log x
		 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND x.status OPERATOR(pg_catalog.=) 'open';
		IF pending OPERATOR(pg_catalog.>) 0 OR open_items OPERATOR(pg_catalog.>) 0 THEN
			RAISE EXCEPTION 'pipeline "%" has % landing rows not yet moved and % open quarantine items',
				name, pending, open_items
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Dropping the pipeline would delete them with its landing table and quarantine.',
					  HINT = pg_catalog.format('Move the rows with stage.run_batch(%L), close the items with stage.repair, stage.dismiss or stage.replay, or drop it all the same with stage.drop_pipeline(%L, force => true).',
											   name, name);
		END IF;
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		PERFORM stage._landing_ddl(p.pipeline_id, true);
	END IF;
	DELETE FROM stage.quarantine_log x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.duplicate_log x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.batch_rule_stat x
	 WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (
		SELECT b.batch_id FROM stage.batch b
		 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id);
	DELETE FROM stage.batch_transform_stat x
	 WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (
		SELECT b.batch_id FROM stage.batch b
		 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id);
	DELETE FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	/* out of the publication stage.publish made for it (which stays: subscriptions name it) */
	PERFORM stage._unpublish_target(p);
END
$$;

CREATE FUNCTION stage.pause(name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_pause(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(name, true);
BEGIN
	UPDATE stage.pipeline x SET enabled = false, paused_reason = 'paused by ' OPERATOR(pg_catalog.||) stage._caller()::text
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

CREATE FUNCTION stage.resume(name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_resume(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(name, true);
BEGIN
	UPDATE stage.pipeline x SET enabled = true, paused_reason = NULL, held_version = NULL,
		   failures = 0, retry_at = NULL
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

/*
 * Let a role produce into a pipeline: INSERT (and so COPY) on the landing
 * table's data columns and _stage_source only.  The other metadata columns
 * keep their defaults: a producer cannot choose _stage_txid, which places
 * the row in a batch window, nor its id, arrival time or role.
 */
CREATE FUNCTION stage.grant_producer(pipeline text, role regrole)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_grant_producer(pipeline text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	cols text;
BEGIN
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
	  INTO cols
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing AND a.attnum OPERATOR(pg_catalog.>) 0
	   AND NOT a.attisdropped
	   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_txid', '_stage_received_at',
														'_stage_role']);
	EXECUTE pg_catalog.format('GRANT INSERT (%s) ON %s TO %s', cols, p.landing, role::text);
END
$$;

CREATE FUNCTION stage.revoke_producer(pipeline text, role regrole)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_revoke_producer(pipeline text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', p.landing, role::text);
END
$$;
