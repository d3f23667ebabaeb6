
/* ------------------------------------------------------- C entry points */

/* validate a rule or mask on a target column, compiled as the pipeline's owner */
CREATE FUNCTION stage._validate_rule(target regclass, column_name text, kind text, args jsonb,
									 owner regrole)
RETURNS void LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_validate_rule';

CREATE FUNCTION stage._validate_mask(target regclass, column_name text, method text, args jsonb,
									 owner regrole)
RETURNS void LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_validate_mask';

CREATE FUNCTION stage._validate_transform(pipeline_id integer, column_name text, method text,
										  args jsonb, owner regrole)
RETURNS void LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_validate_transform';

CREATE FUNCTION stage._landing_ddl(pipeline_id integer, drop boolean)
RETURNS regclass LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_landing_ddl';

CREATE FUNCTION stage._landing_guard() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_landing_guard';

CREATE FUNCTION stage._wake() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_wake';

CREATE FUNCTION stage._random_key(len integer DEFAULT 32) RETURNS bytea
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_random_key';

/*
 * The upper snapshot of a new batch window: the current snapshot, but with
 * the calling transaction itself counted as not yet committed.  Without
 * this, whether a batch takes rows its own transaction landed would depend
 * on what other transactions happened to finish (the snapshot's xmax); with
 * it, such rows always wait for a window opened after their commit.
 */
CREATE FUNCTION stage._window_snapshot()
RETURNS pg_snapshot
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s pg_snapshot := pg_catalog.pg_current_snapshot();
	own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
BEGIN
	IF own IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(own, s) THEN
		RETURN s;
	END IF;
	RETURN (LEAST(pg_catalog.pg_snapshot_xmin(s), own)::text
			OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.pg_snapshot_xmax(s)::text
			OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
			(SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x)
			   FROM (SELECT pg_catalog.pg_snapshot_xip(s) AS x UNION SELECT own) AS u)
		   )::pg_snapshot;
END
$$;

/*
 * The lane of a landing row (src/lane.c): its key's landing text hashed,
 * or without a key its id, modulo the number of lanes.
 */
CREATE FUNCTION stage._lane(lanes integer, key text[], id bigint)
RETURNS integer
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_lane';

/* SQL for the key of landing row l, as stage._lane takes it */
CREATE FUNCTION stage._lane_key_sql(p stage.pipeline)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN p.key IS NULL OR pg_catalog.cardinality(p.key) OPERATOR(pg_catalog.=) 0
			THEN 'NULL::pg_catalog.text[]'
			WHEN p.format OPERATOR(pg_catalog.=) 'jsonb'
			THEN 'ARRAY[' OPERATOR(pg_catalog.||)
				 (SELECT pg_catalog.string_agg(pg_catalog.format('l.payload OPERATOR(pg_catalog.->>) %L', k), ', '
											   ORDER BY n)
					FROM pg_catalog.unnest(p.key) WITH ORDINALITY AS u(k, n))
				 OPERATOR(pg_catalog.||) ']::pg_catalog.text[]'
			ELSE 'ARRAY[' OPERATOR(pg_catalog.||)
				 (SELECT pg_catalog.string_agg(pg_catalog.format('l.%I', k), ', ' ORDER BY n)
					FROM pg_catalog.unnest(p.key) WITH ORDINALITY AS u(k, n))
				 OPERATOR(pg_catalog.||) ']::pg_catalog.text[]'
	   END
$$;

/* ------------------------------------------------------------ helpers */

/*
 * A pipeline by name, for a caller who may see it; for_write: who may
 * change it (a member of its owner role), and not while this session is
 * inside one of its batches.  The gate's caller, not the catalog owner
 * this runs as, is the one checked.
 */
CREATE FUNCTION stage._pipeline(name text, for_write boolean DEFAULT false)
RETURNS stage.pipeline
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
BEGIN
	IF $1 IS NULL THEN
		RAISE EXCEPTION 'pipeline name must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'See SELECT pipeline FROM stage.pipelines for the pipelines of this database.';
	END IF;
	SELECT * INTO p FROM stage.pipeline WHERE pipeline.name OPERATOR(pg_catalog.=) $1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', $1
			USING ERRCODE = 'undefined_object',
				  HINT = 'See SELECT pipeline FROM stage.pipelines for the pipelines of this database.';
	END IF;
	IF for_write AND NOT stage._owns(p.owner) THEN
		RAISE EXCEPTION 'permission denied for pipeline "%"', $1
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = pg_catalog.format('Only members of role %s and superusers may change it.', p.owner),
				  HINT = 'Ask the pipeline owner to make the change.';
	END IF;
	IF NOT stage._may_see(p.owner) THEN
		RAISE EXCEPTION 'permission denied for pipeline "%"', $1
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = pg_catalog.format('Its contract and history are for members of role %s, of stage_analyst and superusers.', p.owner),
				  HINT = 'Ask the pipeline owner, or a superuser for membership in stage_analyst.';
	END IF;
	IF for_write THEN
		/* no change from code that runs inside the pipeline's own batch */
		PERFORM stage._check_idle(p.pipeline_id, p.name);
	END IF;
	RETURN p;
END
$$;

/*
 * bump the contract version and record the new contract; returns it.  A
 * published pipeline may not gain a raw column (85_publish.sql).
 */
CREATE FUNCTION stage._new_version(pipeline_id integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v integer;
	n text;
BEGIN
	UPDATE stage.pipeline p SET contract_version = p.contract_version OPERATOR(pg_catalog.+) 1
	 WHERE p.pipeline_id OPERATOR(pg_catalog.=) _new_version.pipeline_id
	RETURNING p.contract_version, p.name INTO v, n;
	PERFORM stage._check_published(_new_version.pipeline_id);
	INSERT INTO stage.contract_history (pipeline_id, version, contract)
	VALUES (_new_version.pipeline_id, v, stage._do_contract(n));
	RETURN v;
END
$$;

/* the key must name target columns covered exactly by a unique index */
CREATE FUNCTION stage._check_key(target regclass, key text[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k text;
BEGIN
	IF key IS NULL THEN
		RETURN;
	END IF;
	IF pg_catalog.cardinality(key) OPERATOR(pg_catalog.=) 0 THEN
		RAISE EXCEPTION 'key must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass NULL for a pipeline without a key.';
	END IF;
	FOREACH k IN ARRAY key LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
						WHERE a.attrelid OPERATOR(pg_catalog.=) target
						  AND a.attname OPERATOR(pg_catalog.=) k
						  AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped) THEN
			RAISE EXCEPTION 'column "%" of key does not exist in table %', k, target
				USING ERRCODE = 'undefined_column',
					  HINT = 'The key names columns of the target table.';
		END IF;
	END LOOP;
	/* ON CONFLICT needs a unique index on exactly the key columns */
	IF NOT EXISTS (
		SELECT 1 FROM pg_catalog.pg_index i
		 WHERE i.indrelid OPERATOR(pg_catalog.=) target AND i.indisunique
		   AND i.indpred IS NULL AND i.indexprs IS NULL
		   AND (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname)
				  FROM pg_catalog.pg_attribute a
				 WHERE a.attrelid OPERATOR(pg_catalog.=) target
				   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]))
			   OPERATOR(pg_catalog.=)
			   (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest(key) x)) THEN
		RAISE EXCEPTION 'table % has no unique index on the key (%)', target,
			pg_catalog.array_to_string(key, ', ')
			USING ERRCODE = 'invalid_object_definition',
				  HINT = 'Create a primary key or unique index on exactly the key columns.';
	END IF;
END
$$;

CREATE FUNCTION stage._check_on_duplicate(on_duplicate text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF on_duplicate IS NULL OR on_duplicate OPERATOR(pg_catalog.<>) ALL (ARRAY['skip', 'update', 'quarantine']) THEN
		RAISE EXCEPTION 'invalid duplicate policy "%"', on_duplicate
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''skip'', ''update'' or ''quarantine''.';
	END IF;
END
$$;

/*
 * A text column added to a landing table, with INSERT on it for whoever
 * may land rows (the roles that may insert _stage_source)
 */
CREATE FUNCTION stage._add_landing_column(landing regclass, column_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	g record;
BEGIN
	EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN %I pg_catalog.text', landing, column_name);
	FOR g IN SELECT DISTINCT x.grantee
			   FROM pg_catalog.pg_attribute a, pg_catalog.aclexplode(a.attacl) x
			  WHERE a.attrelid OPERATOR(pg_catalog.=) landing
				AND a.attname OPERATOR(pg_catalog.=) '_stage_source'
				AND x.privilege_type OPERATOR(pg_catalog.=) 'INSERT'
				AND x.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		/* regrole's text is the role's name quoted as needed */
		EXECUTE pg_catalog.format('GRANT INSERT (%I) ON %s TO %s', column_name, landing,
								  g.grantee::regrole::text);
	END LOOP;
END
$$;
