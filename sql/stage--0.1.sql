/* stage--0.1.sql, built from the pieces in sql/stage--0.1/: catalog, API and views */

\echo Use "CREATE EXTENSION stage" to load this file. \quit

/*
 * Security model (docs/security.md):
 *  - every function runs with search_path = pg_catalog, pg_temp and
 *    schema-qualifies the extension's own objects;
 *  - management functions are SECURITY INVOKER and check that the caller is
 *    a member of the pipeline's owner role (or a superuser); row-level
 *    security on the catalog tables enforces the same rule for direct writes;
 *  - the landing table is created by C code that switches to the extension
 *    owner only for that DDL, after checking the caller owns the target.
 */

CREATE SCHEMA stage_landing;
GRANT USAGE ON SCHEMA stage TO PUBLIC;
GRANT USAGE ON SCHEMA stage_landing TO PUBLIC;

/* ---------------------------------------------------------------- catalog */

CREATE TABLE stage.pipeline (
	pipeline_id		integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name			text NOT NULL UNIQUE
		CHECK (name OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]{0,62}$'),
	target			regclass NOT NULL,
	landing			regclass,
	format			text NOT NULL
		CHECK (format OPERATOR(pg_catalog.=) ANY (ARRAY['columns', 'jsonb'])),
	key				text[],
	on_duplicate	text NOT NULL DEFAULT 'skip'
		CHECK (on_duplicate OPERATOR(pg_catalog.=) ANY (ARRAY['skip', 'update', 'quarantine'])),
	enabled			boolean NOT NULL DEFAULT true,
	paused_reason	text,
	/* above this share of rejected rows a batch is held (NULL: never) */
	max_reject_ratio double precision
		CHECK (max_reject_ratio OPERATOR(pg_catalog.>=) 0 AND max_reject_ratio OPERATOR(pg_catalog.<=) 1),
	/* jsonb format: what to do with schema drift (unknown/missing keys, type changes) */
	drift			text NOT NULL DEFAULT 'ignore'
		CHECK (drift OPERATOR(pg_catalog.=) ANY (ARRAY['ignore', 'quarantine', 'hold'])),
	/* contract version that held a batch; a new version lifts the hold */
	held_version	integer,
	/* landing rows older than this leave by stage.purge(), once their batch is done */
	retention		interval NOT NULL DEFAULT '7 days'
		CHECK (retention OPERATOR(pg_catalog.>=) '0'::interval),
	/* consecutive failed batches (worker), and when to try again */
	failures		integer NOT NULL DEFAULT 0,
	retry_at		timestamptz,
	contract_version integer NOT NULL DEFAULT 1,
	owner			regrole NOT NULL,
	/* the snapshot window: rows visible in win_hi and not in win_lo */
	win_lo			pg_snapshot NOT NULL DEFAULT '1:1:',
	win_hi			pg_snapshot,
	/* progress inside an open window, in (_stage_txid, _stage_id) order */
	cur_txid		xid8,
	cur_id			bigint,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE stage.pipeline IS 'one row per pipeline: target, landing table, policies and the open snapshot window';

CREATE TABLE stage.rule (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	rule_name		text NOT NULL,
	column_name		text NOT NULL,
	kind			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	severity		text NOT NULL DEFAULT 'reject'
		CHECK (severity OPERATOR(pg_catalog.=) ANY (ARRAY['reject', 'warn'])),
	position		integer NOT NULL,
	PRIMARY KEY (pipeline_id, rule_name)
);

CREATE TABLE stage.mask (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	column_name		text NOT NULL,
	method			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (pipeline_id, column_name)
);

CREATE TABLE stage.contract_history (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	version			integer NOT NULL,
	contract		jsonb NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		name NOT NULL DEFAULT CURRENT_USER,
	PRIMARY KEY (pipeline_id, version)
);

CREATE TABLE stage.batch (
	batch_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	contract_version integer NOT NULL,
	status			text NOT NULL
		CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['done', 'held', 'failed'])),
	/* 'batch': a chunk of the landing window; 'replay': quarantined rows run again */
	kind			text NOT NULL DEFAULT 'batch'
		CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['batch', 'replay'])),
	/* the chunk (NULL for a batch that failed before it was taken) */
	win_lo			pg_snapshot,
	win_hi			pg_snapshot,
	from_txid		xid8,
	from_id			bigint,
	to_txid			xid8,
	to_id			bigint,
	first_id		bigint,			/* first and last landing id of the chunk */
	rows_in			bigint NOT NULL DEFAULT 0,
	rows_clean		bigint NOT NULL DEFAULT 0,
	rows_quarantined bigint NOT NULL DEFAULT 0,
	rows_duplicate	bigint NOT NULL DEFAULT 0,
	rows_warned		bigint NOT NULL DEFAULT 0,
	rows_drift		bigint NOT NULL DEFAULT 0,
	/* handoff latency of the rows, received -> moved, milliseconds */
	latency_p50_ms	double precision,
	latency_p95_ms	double precision,
	latency_p99_ms	double precision,
	latency_max_ms	double precision,
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	error			text,
	sqlstate		text,
	backend_pid		integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
	run_by			name NOT NULL DEFAULT CURRENT_USER
);
CREATE INDEX ON stage.batch (pipeline_id, batch_id);

/*
 * The outcome tables below are written by the mover in bulk, once per
 * landing row; they carry no foreign keys (a per-row RI check would cost
 * more than the row itself).  Their rows are only ever written together
 * with their batch, in one transaction, and stage.drop_pipeline deletes
 * them with the pipeline.
 */
CREATE TABLE stage.batch_rule_stat (
	batch_id		bigint NOT NULL,
	rule_name		text NOT NULL,
	column_name		text,
	kind			text NOT NULL,
	severity		text NOT NULL,
	checked			bigint NOT NULL,
	failed			bigint NOT NULL,
	PRIMARY KEY (batch_id, rule_name)
);

/* one row per quarantined landing row; the key makes "twice" impossible */
CREATE TABLE stage.quarantine_log (
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint NOT NULL,
	contract_version integer NOT NULL,
	source			text,
	received_at		timestamptz,
	row_data		jsonb NOT NULL,	/* masked where the column is masked */
	raw_data		jsonb NOT NULL,	/* as landed: owner only */
	raw_payload		jsonb,			/* jsonb format: the payload as landed (owner only) */
	reasons			jsonb NOT NULL,
	quarantined_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (pipeline_id, landing_id)
);
CREATE INDEX ON stage.quarantine_log (batch_id);

/* one row per landing row resolved as a duplicate of an earlier key */
CREATE TABLE stage.duplicate_log (
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint NOT NULL,
	PRIMARY KEY (pipeline_id, landing_id)
);
CREATE INDEX ON stage.duplicate_log (batch_id);

/* keys for the hash mask; readable by the extension owner only */
CREATE TABLE stage.secret (
	name			text PRIMARY KEY,
	key				bytea NOT NULL CHECK (pg_catalog.length(key) OPERATOR(pg_catalog.>=) 16),
	/* roles that may use it in masks (superusers always may) */
	users			regrole[] NOT NULL DEFAULT '{}',
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON stage.secret FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('stage.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('stage.rule', '');
SELECT pg_catalog.pg_extension_config_dump('stage.mask', '');
SELECT pg_catalog.pg_extension_config_dump('stage.contract_history', '');
SELECT pg_catalog.pg_extension_config_dump('stage.secret', '');
/* batch history and the quarantine are the users' data too */
SELECT pg_catalog.pg_extension_config_dump('stage.batch', '');
SELECT pg_catalog.pg_extension_config_dump('stage.batch_rule_stat', '');
SELECT pg_catalog.pg_extension_config_dump('stage.quarantine_log', '');
SELECT pg_catalog.pg_extension_config_dump('stage.duplicate_log', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.pipeline', 'pipeline_id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.batch', 'batch_id'), '');

/*
 * Catalog privileges: everyone may read contracts and batch history (they
 * hold no row values); writes are allowed to members of a pipeline's owner
 * role only, enforced by row-level security.  Superusers bypass RLS.
 */
GRANT SELECT ON stage.pipeline, stage.rule, stage.mask, stage.contract_history,
	stage.batch, stage.batch_rule_stat TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON stage.rule, stage.mask,
	stage.contract_history, stage.batch, stage.batch_rule_stat,
	stage.quarantine_log, stage.duplicate_log TO PUBLIC;
/*
 * A pipeline's identity (name, target, landing, owner) is fixed when it is
 * created: owners may change its policies and window, never point it at
 * another table.  The landing column is filled by stage._landing_ddl.
 */
GRANT INSERT (name, target, format, key, on_duplicate, owner), DELETE ON stage.pipeline TO PUBLIC;
GRANT UPDATE (key, on_duplicate, enabled, paused_reason, max_reject_ratio, drift, retention,
			  held_version, failures, retry_at, contract_version, win_lo, win_hi,
			  cur_txid, cur_id)
	ON stage.pipeline TO PUBLIC;
GRANT SELECT ON stage.duplicate_log TO PUBLIC;
/* raw_data (rows as landed): pipeline owner roles only, see 40_masking.sql */
GRANT SELECT (pipeline_id, landing_id, batch_id, contract_version, source, received_at,
			  row_data, reasons, quarantined_at) ON stage.quarantine_log TO PUBLIC;

ALTER TABLE stage.pipeline ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON stage.pipeline FOR SELECT USING (true);
/* the owner of a pipeline is the owner of its target table */
CREATE POLICY owner_insert ON stage.pipeline FOR INSERT
	WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER')
				AND owner OPERATOR(pg_catalog.=) (SELECT c.relowner FROM pg_catalog.pg_class c
												   WHERE c.oid OPERATOR(pg_catalog.=) target)::regrole);
CREATE POLICY owner_update ON stage.pipeline FOR UPDATE
	USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
	WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY owner_delete ON stage.pipeline FOR DELETE
	USING (pg_catalog.pg_has_role(owner, 'MEMBER'));

CREATE FUNCTION stage._owns(pipeline_id integer) RETURNS boolean
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.pg_has_role(p.owner, 'MEMBER')
	  FROM stage.pipeline p
	 WHERE p.pipeline_id OPERATOR(pg_catalog.=) $1
$$;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['rule', 'mask', 'contract_history', 'batch',
							 'quarantine_log', 'duplicate_log']
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE stage.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE pg_catalog.format(
			'CREATE POLICY owner_write ON stage.%I FOR ALL
			   USING (stage._owns(pipeline_id)) WITH CHECK (stage._owns(pipeline_id))', t);
	END LOOP;
	/* contract metadata and batch history are public; row values are not */
	FOREACH t IN ARRAY ARRAY['rule', 'mask', 'contract_history', 'batch']
	LOOP
		EXECUTE pg_catalog.format(
			'CREATE POLICY read_all ON stage.%I FOR SELECT USING (true)', t);
	END LOOP;
END
$$;
ALTER TABLE stage.batch_rule_stat ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON stage.batch_rule_stat FOR SELECT USING (true);
CREATE POLICY owner_write ON stage.batch_rule_stat FOR ALL
	USING (EXISTS (SELECT 1 FROM stage.batch b
				   WHERE b.batch_id OPERATOR(pg_catalog.=) batch_rule_stat.batch_id
					 AND stage._owns(b.pipeline_id)))
	WITH CHECK (EXISTS (SELECT 1 FROM stage.batch b
				   WHERE b.batch_id OPERATOR(pg_catalog.=) batch_rule_stat.batch_id
					 AND stage._owns(b.pipeline_id)));

/* ------------------------------------------------------- C entry points */

CREATE FUNCTION stage._validate_rule(target regclass, column_name text, kind text, args jsonb)
RETURNS void LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_validate_rule';

CREATE FUNCTION stage._validate_mask(target regclass, column_name text, method text, args jsonb)
RETURNS void LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_validate_mask';

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

CREATE FUNCTION stage.run_batch(pipeline text, max_rows integer DEFAULT NULL)
RETURNS TABLE(batch_id bigint, rows_in bigint, rows_clean bigint,
			  rows_quarantined bigint, rows_duplicate bigint, status text)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_run_batch';
COMMENT ON FUNCTION stage.run_batch(text, integer) IS
	'moves the next chunk of committed landing rows to the target or to quarantine, exactly once';

CREATE FUNCTION stage.regex_match(value text, pattern text, flags text DEFAULT '')
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_match';

CREATE FUNCTION stage.regex_replace(value text, pattern text, replacement text, flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_replace';

CREATE FUNCTION stage.regex_extract(value text, pattern text, flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_extract';

CREATE FUNCTION stage.is_email(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_is_email';

CREATE FUNCTION stage.iban_valid(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_iban_valid';

CREATE FUNCTION stage.scan_pii(value text)
RETURNS TABLE(kind text, start integer, length integer)
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_scan_pii';

CREATE FUNCTION stage.hmac(value text, secret text DEFAULT 'default')
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_hmac';
/* whoever can call it can test guesses against hashed columns */
REVOKE ALL ON FUNCTION stage.hmac(text, text) FROM PUBLIC;

CREATE FUNCTION stage.mask_email(value text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_email';

CREATE FUNCTION stage.mask_partial(value text, keep_start integer DEFAULT 1,
								   keep_end integer DEFAULT 0, fill text DEFAULT '*')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_partial';

CREATE FUNCTION stage.mask_card(value text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_card';

CREATE FUNCTION stage.luhn_valid(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_luhn_valid';

/*
 * The secret "default" is created with a random key on first use (see
 * secret_read in mask.c), not here: a restored dump brings back the old one.
 */

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

/* ------------------------------------------------------------ helpers */

CREATE FUNCTION stage._pipeline(name text, for_write boolean DEFAULT false)
RETURNS stage.pipeline
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
BEGIN
	SELECT * INTO p FROM stage.pipeline WHERE pipeline.name OPERATOR(pg_catalog.=) $1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', $1
			USING ERRCODE = 'undefined_object',
				  HINT = 'See SELECT pipeline FROM stage.pipelines for the pipelines of this database.';
	END IF;
	IF for_write AND NOT pg_catalog.pg_has_role(p.owner, 'MEMBER') THEN
		RAISE EXCEPTION 'permission denied for pipeline "%"', $1
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = pg_catalog.format('Only members of role %s and superusers may change it.', p.owner),
				  HINT = 'Ask the pipeline owner to make the change.';
	END IF;
	RETURN p;
END
$$;

/* the whole contract of a pipeline as one jsonb document */
CREATE FUNCTION stage.contract(pipeline text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
BEGIN
	RETURN pg_catalog.jsonb_build_object(
		'version', p.contract_version,
		'key', pg_catalog.to_jsonb(p.key),
		'on_duplicate', p.on_duplicate,
		'max_reject_ratio', p.max_reject_ratio,
		'drift', p.drift,
		'rules', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'name', r.rule_name, 'column', r.column_name,
						'kind', r.kind, 'args', r.args, 'severity', r.severity)
					ORDER BY r.position)
			  FROM stage.rule r
			 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'),
		'masks', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'column', m.column_name, 'method', m.method, 'args', m.args)
					ORDER BY m.column_name)
			  FROM stage.mask m
			 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'));
END
$$;

/* bump the contract version and record the new contract; returns it */
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
	INSERT INTO stage.contract_history (pipeline_id, version, contract)
	VALUES (_new_version.pipeline_id, v, stage.contract(n));
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

/* ---------------------------------------------------------- pipelines */

CREATE FUNCTION stage.create_pipeline(name text, target regclass, key text[] DEFAULT NULL,
									  format text DEFAULT 'columns',
									  on_duplicate text DEFAULT 'skip')
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
	IF EXISTS (SELECT 1 FROM stage.pipeline p WHERE p.name OPERATOR(pg_catalog.=) create_pipeline.name) THEN
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
	IF NOT pg_catalog.pg_has_role(relowner, 'MEMBER') THEN
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

	INSERT INTO stage.pipeline (name, target, format, key, on_duplicate, owner)
	VALUES (name, target, format, key, on_duplicate, relowner::regrole)
	RETURNING pipeline_id INTO pid;
	new_landing := stage._landing_ddl(pid, false);
	INSERT INTO stage.contract_history (pipeline_id, version, contract)
	VALUES (pid, 1, stage.contract(name));
	RETURN new_landing;
END
$$;

CREATE FUNCTION stage.drop_pipeline(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(name, true);
BEGIN
	PERFORM stage._landing_ddl(p.pipeline_id, true);
	DELETE FROM stage.quarantine_log x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.duplicate_log x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.batch_rule_stat x
	 WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (
		SELECT b.batch_id FROM stage.batch b
		 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id);
	DELETE FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

CREATE FUNCTION stage.pause(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(name, true);
BEGIN
	UPDATE stage.pipeline x SET enabled = false, paused_reason = 'paused by ' OPERATOR(pg_catalog.||) CURRENT_USER
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

CREATE FUNCTION stage.resume(name text)
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

/* ---------------------------------------------------------- contracts */

/* validate one rule against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_rule(p stage.pipeline, column_name text, kind text,
								   args jsonb, severity text, rule_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rname text := COALESCE(rule_name, column_name OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) kind);
BEGIN
	IF severity IS NULL OR severity OPERATOR(pg_catalog.<>) ALL (ARRAY['reject', 'warn']) THEN
		RAISE EXCEPTION 'invalid severity "%"', severity
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''reject'' (quarantine the row) or ''warn'' (count it, let the row pass).';
	END IF;
	PERFORM stage._validate_rule(p.target, column_name, kind, COALESCE(args, '{}'));
	IF kind OPERATOR(pg_catalog.=) 'unique' AND NOT (column_name OPERATOR(pg_catalog.=) ANY (COALESCE(p.key, '{}'))) THEN
		RAISE EXCEPTION 'rule unique applies to the key of the pipeline, and "%" is not in it', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Declare the key with create_pipeline(key => ...) or set_contract(); duplicates are resolved by on_duplicate.';
	END IF;
	IF EXISTS (SELECT 1 FROM stage.rule r
				WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				  AND r.rule_name OPERATOR(pg_catalog.=) rname) THEN
		RAISE EXCEPTION 'rule "%" already exists in pipeline "%"', rname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another rule_name, or drop the rule first with stage.drop_rule().';
	END IF;
	INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, args, severity, position)
	VALUES (p.pipeline_id, rname, column_name, kind, COALESCE(args, '{}'), severity,
			(SELECT COALESCE(pg_catalog.max(r.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.rule r WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

/* validate one mask against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_mask(p stage.pipeline, column_name text, method text, args jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF column_name OPERATOR(pg_catalog.=) ANY (p.key) THEN
		RAISE EXCEPTION 'column "%" is part of the key of pipeline "%" and cannot be masked', column_name, p.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Key values must reach the target unchanged to detect duplicates; mask another column or change the key.';
	END IF;
	PERFORM stage._validate_mask(p.target, column_name, method, COALESCE(args, '{}'));
	/* one mask per column: a new mask replaces the old one */
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _insert_mask.column_name;
	INSERT INTO stage.mask (pipeline_id, column_name, method, args)
	VALUES (p.pipeline_id, column_name, method, COALESCE(args, '{}'));
END
$$;

CREATE FUNCTION stage.add_rule(pipeline text, column_name text, kind text,
							   args jsonb DEFAULT '{}', severity text DEFAULT 'reject',
							   rule_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_rule(p, column_name, kind, args, severity, rule_name);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_rule(pipeline text, rule_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) drop_rule.rule_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist in pipeline "%"', rule_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its rules.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.add_mask(pipeline text, column_name text, method text,
							   args jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_mask(p, column_name, method, args);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_mask(pipeline text, column_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) drop_mask.column_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of pipeline "%" has no mask', column_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its masks.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/* every element of items must be an object with only the allowed fields */
CREATE FUNCTION stage._check_fields(items jsonb, what text, allowed text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e jsonb;
	k text;
BEGIN
	FOR e IN SELECT x FROM pg_catalog.jsonb_array_elements(COALESCE(items, '[]')) AS a(x) LOOP
		IF pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'object' THEN
			RAISE EXCEPTION 'each % of a contract must be a JSON object', what
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOR k IN SELECT pg_catalog.jsonb_object_keys(e) LOOP
			IF k OPERATOR(pg_catalog.<>) ALL (allowed) THEN
				RAISE EXCEPTION 'unknown field "%" in a % of the contract', k, what
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = pg_catalog.format('A %s has %s.', what,
												   pg_catalog.array_to_string(allowed, ', '));
			END IF;
		END LOOP;
	END LOOP;
END
$$;

/*
 * Replace the whole contract (key, policies, rules, masks) in one version.
 * Missing keys take their defaults; a document equal to the current
 * contract changes nothing and returns the current version, so
 * set_contract(p, contract(p)) is a no-op.  Any invalid part refuses the
 * whole document and leaves the contract as it was.
 */
CREATE FUNCTION stage.set_contract(pipeline text, contract jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	k text;
	r jsonb;
	doc jsonb;
	new_key text[];
	new_ratio double precision;
BEGIN
	IF contract IS NULL OR pg_catalog.jsonb_typeof(contract) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'a contract must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'See SELECT stage.contract(pipeline) for the format.';
	END IF;
	FOR k IN SELECT pg_catalog.jsonb_object_keys(contract) LOOP
		IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['version', 'key', 'on_duplicate', 'max_reject_ratio', 'drift', 'rules', 'masks']) THEN
			RAISE EXCEPTION 'unknown contract field "%"', k
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Fields are key, on_duplicate, max_reject_ratio, drift, rules and masks (version is ignored).';
		END IF;
	END LOOP;
	FOREACH k IN ARRAY ARRAY['rules', 'masks'] LOOP
		IF contract OPERATOR(pg_catalog.?) k
		   AND pg_catalog.jsonb_typeof(contract OPERATOR(pg_catalog.->) k) OPERATOR(pg_catalog.<>) 'array' THEN
			RAISE EXCEPTION 'contract field "%" must be an array', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	/* a misspelt field inside a rule or mask must not be silently dropped */
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'rules', 'rule',
								ARRAY['name', 'column', 'kind', 'args', 'severity']);
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'masks', 'mask',
								ARRAY['column', 'method', 'args']);

	/* the document with every default spelled out, as contract() shows it */
	doc := pg_catalog.jsonb_build_object(
		'key', COALESCE(contract OPERATOR(pg_catalog.->) 'key', 'null'),
		'on_duplicate', COALESCE(contract OPERATOR(pg_catalog.->) 'on_duplicate', '"skip"'),
		'max_reject_ratio', COALESCE(contract OPERATOR(pg_catalog.->) 'max_reject_ratio', 'null'),
		'drift', COALESCE(contract OPERATOR(pg_catalog.->) 'drift', '"ignore"'),
		'rules', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'name', COALESCE(e OPERATOR(pg_catalog.->>) 'name',
									 (e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.||) '_'
									 OPERATOR(pg_catalog.||) (e OPERATOR(pg_catalog.->>) 'kind')),
					'column', e OPERATOR(pg_catalog.->) 'column',
					'kind', e OPERATOR(pg_catalog.->) 'kind',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}'),
					'severity', COALESCE(e OPERATOR(pg_catalog.->) 'severity', '"reject"')) ORDER BY o)
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'rules') WITH ORDINALITY AS x(e, o)), '[]'),
		'masks', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'column', e OPERATOR(pg_catalog.->) 'column',
					'method', e OPERATOR(pg_catalog.->) 'method',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}'))
					ORDER BY e OPERATOR(pg_catalog.->>) 'column')
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'masks') AS x(e)), '[]'));
	IF doc OPERATOR(pg_catalog.=) (stage.contract(pipeline) OPERATOR(pg_catalog.-) 'version') THEN
		RETURN p.contract_version;
	END IF;

	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'array' THEN
		new_key := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(doc OPERATOR(pg_catalog.->) 'key'));
	ELSIF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) 'null' THEN
		RAISE EXCEPTION 'contract field "key" must be an array of column names or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM stage._check_key(p.target, new_key);
	PERFORM stage._check_on_duplicate(doc OPERATOR(pg_catalog.->>) 'on_duplicate');
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.=) 'number' THEN
		new_ratio := (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision;
		IF new_ratio OPERATOR(pg_catalog.<) 0 OR new_ratio OPERATOR(pg_catalog.>) 1 THEN
			RAISE EXCEPTION 'max_reject_ratio must be between 0 and 1'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'It is the share of a batch''s rows that may be rejected, e.g. 0.05.';
		END IF;
	ELSIF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.<>) 'null' THEN
		RAISE EXCEPTION 'contract field "max_reject_ratio" must be a number or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	IF (doc OPERATOR(pg_catalog.->>) 'drift') IS NULL
	   OR (doc OPERATOR(pg_catalog.->>) 'drift') OPERATOR(pg_catalog.<>) ALL (ARRAY['ignore', 'quarantine', 'hold']) THEN
		RAISE EXCEPTION 'invalid drift policy %', doc OPERATOR(pg_catalog.->) 'drift'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use "ignore" (count only), "quarantine" (the drifting rows) or "hold" (the whole batch).';
	END IF;

	UPDATE stage.pipeline x
	   SET key = new_key, on_duplicate = doc OPERATOR(pg_catalog.->>) 'on_duplicate',
		   max_reject_ratio = new_ratio, drift = doc OPERATOR(pg_catalog.->>) 'drift'
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	RETURNING * INTO p;
	DELETE FROM stage.rule x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.mask x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'rules') AS x(e) LOOP
		PERFORM stage._insert_rule(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'kind',
								   r OPERATOR(pg_catalog.->) 'args', r OPERATOR(pg_catalog.->>) 'severity',
								   r OPERATOR(pg_catalog.->>) 'name');
	END LOOP;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'masks') AS x(e) LOOP
		IF EXISTS (SELECT 1 FROM stage.mask m
					WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					  AND m.column_name OPERATOR(pg_catalog.=) (r OPERATOR(pg_catalog.->>) 'column')) THEN
			RAISE EXCEPTION 'column "%" has two masks in the contract', r OPERATOR(pg_catalog.->>) 'column'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'A column takes one mask.';
		END IF;
		PERFORM stage._insert_mask(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
								   r OPERATOR(pg_catalog.->) 'args');
	END LOOP;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.check_row(pipeline text, row_data jsonb)
RETURNS jsonb LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_check_row';
COMMENT ON FUNCTION stage.check_row(text, jsonb) IS
	'the failures of one candidate row under the current contract ([] when it passes); no side effects';

CREATE FUNCTION stage.create_secret(name text, key bytea DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF key IS NOT NULL AND pg_catalog.length(key) OPERATOR(pg_catalog.<) 16 THEN
		RAISE EXCEPTION 'a secret must be at least 16 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use 32 random bytes, or omit the key to have one generated.';
	END IF;
	INSERT INTO stage.secret (name, key)
	VALUES (name, COALESCE(key, stage._random_key(32)));
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place.';
END
$$;
REVOKE ALL ON FUNCTION stage.create_secret(text, bytea) FROM PUBLIC;

/* let members of a role use a secret in masks (and so compute its HMACs) */
CREATE FUNCTION stage.grant_secret(secret text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF secret OPERATOR(pg_catalog.=) 'default' THEN
		/* made on first use: this may be it */
		INSERT INTO stage.secret (name, key) VALUES ('default', stage._random_key(32))
		ON CONFLICT (name) DO NOTHING;
	END IF;
	UPDATE stage.secret s SET users = pg_catalog.array_append(pg_catalog.array_remove(s.users, role), role)
	 WHERE s.name OPERATOR(pg_catalog.=) secret;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', secret
			USING ERRCODE = 'undefined_object',
				  HINT = 'Create it with stage.create_secret().';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.grant_secret(text, regrole) FROM PUBLIC;

CREATE FUNCTION stage.revoke_secret(secret text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE stage.secret s SET users = pg_catalog.array_remove(s.users, role)
	 WHERE s.name OPERATOR(pg_catalog.=) secret;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', secret
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.revoke_secret(text, regrole) FROM PUBLIC;

/*
 * Let a role produce into a pipeline: INSERT (and so COPY) on the landing
 * table's data columns and _stage_source only.  The other metadata columns
 * keep their defaults: a producer cannot choose _stage_txid, which places
 * the row in a batch window, nor its id or arrival time.
 */
CREATE FUNCTION stage.grant_producer(pipeline text, role regrole)
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
	   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_txid', '_stage_received_at']);
	EXECUTE pg_catalog.format('GRANT INSERT (%s) ON %s TO %I', cols, p.landing, role);
END
$$;

CREATE FUNCTION stage.revoke_producer(pipeline text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %I', p.landing, role);
END
$$;

/* --------------------------------------------------------------- runs */

CREATE FUNCTION stage.run_all()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint := 0;
	p record;
	r record;
	msg text;
	state text;
BEGIN
	/* held pipelines whose contract changed since are taken again */
	FOR p IN SELECT x.pipeline_id, x.name FROM stage.pipeline x
			  WHERE (x.enabled OR x.held_version OPERATOR(pg_catalog.<>) x.contract_version)
				AND (x.retry_at IS NULL OR x.retry_at OPERATOR(pg_catalog.<=) pg_catalog.now())
				AND pg_catalog.pg_has_role(x.owner, 'MEMBER')
			  ORDER BY x.pipeline_id
	LOOP
		LOOP
			/* one failing pipeline must not stop the others */
			BEGIN
				SELECT * INTO r FROM stage.run_batch(p.name);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
				RAISE WARNING 'stage: batch of pipeline "%" failed: %', p.name, msg
					USING ERRCODE = state;
				INSERT INTO stage.batch (pipeline_id, contract_version, status, started_at, error, sqlstate)
				SELECT x.pipeline_id, x.contract_version, 'failed', pg_catalog.clock_timestamp(), msg, state
				  FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
				/* back off and, after stage.max_failures, pause: as the worker does */
				UPDATE stage.pipeline x
				   SET failures = x.failures OPERATOR(pg_catalog.+) 1,
					   retry_at = pg_catalog.now() OPERATOR(pg_catalog.+)
						   pg_catalog.make_interval(secs => LEAST(300, 2 OPERATOR(pg_catalog.^) x.failures)),
					   enabled = (x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.<)
								  COALESCE(pg_catalog.current_setting('stage.max_failures', true), '5')::integer),
					   paused_reason = CASE
						   WHEN x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=)
								COALESCE(pg_catalog.current_setting('stage.max_failures', true), '5')::integer
						   THEN pg_catalog.format('paused after %s consecutive failed batches; last: %s (SQLSTATE %s)',
												  x.failures OPERATOR(pg_catalog.+) 1, msg, state)
						   ELSE x.paused_reason END
				 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
				EXIT;
			END;
			EXIT WHEN r.batch_id IS NULL OR r.rows_in OPERATOR(pg_catalog.=) 0;
			IF r.status OPERATOR(pg_catalog.=) 'done' THEN
				n := n OPERATOR(pg_catalog.+) r.rows_in;
				/* a success ends a series of failures */
				UPDATE stage.pipeline x SET failures = 0, retry_at = NULL
				 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				   AND x.failures OPERATOR(pg_catalog.>) 0;
			END IF;
			EXIT WHEN r.status OPERATOR(pg_catalog.<>) 'done';
		END LOOP;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION stage.run_all() IS 'runs batches for every enabled pipeline the caller owns until none has pending rows; returns rows processed';

/* where a landing row went: target, quarantine or duplicate */
CREATE FUNCTION stage.trace(pipeline text, landing_id bigint)
RETURNS TABLE(batch_id bigint, outcome text, source text,
			  received_at timestamptz, contract_version integer, target regclass)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	l record;
BEGIN
	EXECUTE pg_catalog.format(
		'SELECT _stage_txid, _stage_source, _stage_received_at FROM %s
		  WHERE _stage_id OPERATOR(pg_catalog.=) $1', p.landing)
	INTO l USING trace.landing_id;
	IF l IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	SELECT b.batch_id,
		   CASE WHEN q.landing_id IS NOT NULL THEN 'quarantine'
				WHEN d.landing_id IS NOT NULL THEN 'duplicate'
				ELSE 'target' END,
		   l._stage_source, l._stage_received_at, b.contract_version, p.target
	  FROM stage.batch b
	  LEFT JOIN stage.quarantine_log q
		ON q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) trace.landing_id
	  LEFT JOIN stage.duplicate_log d
		ON d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND d.landing_id OPERATOR(pg_catalog.=) trace.landing_id
	 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND b.status OPERATOR(pg_catalog.=) 'done' AND b.kind OPERATOR(pg_catalog.=) 'batch'
	   AND pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_hi)
	   AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_lo)
	   AND ROW(l._stage_txid, trace.landing_id) OPERATOR(pg_catalog.>) ROW(b.from_txid, b.from_id)
	   AND ROW(l._stage_txid, trace.landing_id) OPERATOR(pg_catalog.<=) ROW(b.to_txid, b.to_id);
END
$$;

/* -------------------------------------------------------------- views */

CREATE VIEW stage.pipelines WITH (security_invoker = true) AS
SELECT p.name AS pipeline, p.target, p.landing, p.format, p.key, p.on_duplicate,
	   p.enabled, p.paused_reason, p.failures, p.retry_at, p.max_reject_ratio, p.retention,
	   p.contract_version, p.owner,
	   (SELECT pg_catalog.count(*) FROM stage.rule r
		 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS rules,
	   (SELECT pg_catalog.count(*) FROM stage.mask m
		 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS masks,
	   p.win_hi IS NOT NULL AS window_open,
	   p.created_at
  FROM stage.pipeline p;

CREATE VIEW stage.batches WITH (security_invoker = true) AS
SELECT b.batch_id, p.name AS pipeline, b.kind, b.contract_version, b.status,
	   b.rows_in, b.rows_clean, b.rows_quarantined, b.rows_duplicate, b.rows_warned,
	   b.rows_drift, b.latency_p50_ms, b.latency_p95_ms, b.latency_p99_ms, b.latency_max_ms,
	   b.started_at, b.finished_at,
	   b.finished_at OPERATOR(pg_catalog.-) b.started_at AS duration,
	   b.error, b.sqlstate, b.backend_pid, b.run_by,
	   b.win_lo, b.win_hi, b.from_id, b.to_id
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id);

/* stage.quarantine and stage.dlq_summary: 40_masking.sql (masked at read time) */

CREATE VIEW stage.rule_stats WITH (security_invoker = true) AS
SELECT p.name AS pipeline, s.batch_id, s.rule_name, s.column_name, s.kind, s.severity,
	   s.checked, s.failed
  FROM stage.batch_rule_stat s
  JOIN stage.batch b USING (batch_id)
  JOIN stage.pipeline p USING (pipeline_id);

/* lineage: each batch as a run, with its input, outputs and job version */
CREATE VIEW stage.lineage WITH (security_invoker = true) AS
SELECT p.name AS pipeline, b.batch_id, b.contract_version, p.landing AS input,
	   p.target AS output, 'stage.quarantine_log'::regclass AS quarantine,
	   b.first_id AS first_landing_id, b.to_id AS last_landing_id,
	   b.win_lo, b.win_hi, b.rows_in, b.rows_clean, b.rows_quarantined,
	   b.rows_duplicate, b.started_at, b.finished_at
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
 WHERE b.status OPERATOR(pg_catalog.=) 'done';

/* views run as the invoker: row-level security shows each role its own rows */
GRANT SELECT ON stage.pipelines, stage.batches, stage.rule_stats, stage.lineage TO PUBLIC;

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

/* ============================================================ masking */

/*
 * Masking and PII protection (docs/masking.md): the mask methods as SQL
 * functions, the checks behind stage.add_mask, secrets (import, drop), the
 * token vault, the quarantine as analysts see it, and the documented roles.
 *
 * Volatility is what each function truly is: pure text functions are
 * IMMUTABLE; functions keyed by a secret are STABLE (a secret can be
 * dropped, never changed in place); noise without a seed and tokenize are
 * VOLATILE.  Functions that use a secret are not executable by PUBLIC
 * (whoever computes them can test guesses against masked columns); they
 * also check the secret was granted to the caller (stage.grant_secret).
 */

/* ---------------------------------------------- mask method functions */

CREATE FUNCTION stage.mask(value text, method text, args jsonb DEFAULT '{}')
RETURNS text LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_mask';
COMMENT ON FUNCTION stage.mask(text, text, jsonb) IS
	'any mask method applied to one value, exactly as stage.add_mask applies it';
REVOKE ALL ON FUNCTION stage.mask(text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION stage.mask_hash(value text, secret text DEFAULT 'default',
								length integer DEFAULT 0, encoding text DEFAULT 'hex')
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_hash';
REVOKE ALL ON FUNCTION stage.mask_hash(text, text, integer, text) FROM PUBLIC;

CREATE FUNCTION stage.pseudonymize(value text, secret text DEFAULT 'default',
								   kind text DEFAULT 'auto', keep_domain boolean DEFAULT true)
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_pseudonymize';
REVOKE ALL ON FUNCTION stage.pseudonymize(text, text, text, boolean) FROM PUBLIC;

CREATE FUNCTION stage.mask_phone(value text, keep integer DEFAULT 4, fill text DEFAULT '*')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_phone';

CREATE FUNCTION stage.redact(value text, pattern text, replacement text DEFAULT '[redacted]',
							 flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_redact';

CREATE FUNCTION stage.redact_pii(value text, kinds text[] DEFAULT NULL,
								 replacement text DEFAULT NULL)
RETURNS text LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_redact_pii';

CREATE FUNCTION stage.mask_generalize(value text, unit text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_text';

CREATE FUNCTION stage.mask_generalize(value date, unit text)
RETURNS date LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_date';

CREATE FUNCTION stage.mask_generalize(value timestamp, unit text)
RETURNS timestamp LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_timestamp';

/* truncated in the session's time zone: STABLE */
CREATE FUNCTION stage.mask_generalize(value timestamptz, unit text)
RETURNS timestamptz LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_timestamptz';

CREATE FUNCTION stage.mask_generalize(value numeric, bucket numeric)
RETURNS numeric LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_numeric';

/* fresh noise on every call */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision)
RETURNS numeric LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_noise';

/* seeded: the same value always gets the same noise */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision, seed bigint)
RETURNS numeric LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_noise';

/* keyed: the same value always gets the same noise, unknown without the secret */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision, secret text)
RETURNS numeric LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_noise_keyed';
REVOKE ALL ON FUNCTION stage.mask_noise(numeric, double precision, text) FROM PUBLIC;

/* ------------------------------------------------------- token vault */

/*
 * The tokens of the tokenize mask: one per (secret, value), unique.  The
 * digest is HMAC-SHA256(secret, value); only the extension owner reads or
 * writes the table (C code switches to it for the batch's one INSERT and
 * one lookup).  Dumps include it: tokens in target tables stay reversible
 * after a restore, and the dump holds the raw values.
 */
CREATE TABLE stage.token_vault (
	secret			text NOT NULL,
	digest			bytea NOT NULL,
	token			text NOT NULL UNIQUE,
	value			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (secret, digest)
);
REVOKE ALL ON stage.token_vault FROM PUBLIC;
ALTER TABLE stage.token_vault ENABLE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('stage.token_vault', '');
COMMENT ON TABLE stage.token_vault IS 'tokens of the tokenize mask and the values behind them: extension owner only';

CREATE FUNCTION stage.tokenize(value text, secret text DEFAULT 'default')
RETURNS text LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_tokenize';
REVOKE ALL ON FUNCTION stage.tokenize(text, text) FROM PUBLIC;

CREATE FUNCTION stage.detokenize(token text)
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_detokenize';
COMMENT ON FUNCTION stage.detokenize(text) IS
	'the value behind a token: superusers and roles granted the token''s secret only';
REVOKE ALL ON FUNCTION stage.detokenize(text) FROM PUBLIC;

/* -------------------------------------------------- masks on columns */

/*
 * Every stored mask is checked against its column (type, length, NOT NULL)
 * however it is stored (add_mask, set_contract): a mask whose output the
 * column refuses would send every row to quarantine.
 */
CREATE FUNCTION stage._mask_check() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_mask_check';
CREATE TRIGGER mask_check BEFORE INSERT OR UPDATE ON stage.mask
	FOR EACH ROW EXECUTE FUNCTION stage._mask_check();

/* ----------------------------------------------------------- secrets */

/*
 * Checks on every write of stage.secret, before the table's own
 * constraints: a violated constraint would print the failing row, key
 * included, in the error and the server log.
 */
CREATE FUNCTION stage._secret_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.name IS NULL OR NEW.name OPERATOR(pg_catalog.!~) '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid secret name'
			USING ERRCODE = 'invalid_name',
				  HINT = 'A secret name is 1 to 63 letters, digits, _, . or -, starting with a letter or _.';
	END IF;
	IF NEW.key IS NULL OR pg_catalog.length(NEW.key) OPERATOR(pg_catalog.<) 16
	   OR pg_catalog.length(NEW.key) OPERATOR(pg_catalog.>) 1024 THEN
		RAISE EXCEPTION 'a secret key must be 16 to 1024 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'No part of the key is shown in this message.',
				  HINT = 'Omit the key for a random one of 32 bytes.';
	END IF;
	IF NEW.users IS NULL THEN
		NEW.users := '{}';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER secret_check BEFORE INSERT OR UPDATE ON stage.secret
	FOR EACH ROW EXECUTE FUNCTION stage._secret_check();

CREATE FUNCTION stage._decode_key(bytes bytea, format text)
RETURNS bytea LANGUAGE c IMMUTABLE STRICT
AS 'MODULE_PATHNAME', 'stage_decode_key';
REVOKE ALL ON FUNCTION stage._decode_key(bytea, text) FROM PUBLIC;

/*
 * Import a key without writing it into any statement: from a large object
 * the client created (psql: \lo_import key.bin, then
 * SELECT stage.import_secret('name', :LASTOID)).  The large object is
 * unlinked afterwards.  The key travels as large-object data, never as
 * statement text, so it is not in pg_stat_activity, the server log (also
 * with log_statement = all) or a plan.
 */
CREATE FUNCTION stage.import_secret(name text, key_object oid, format text DEFAULT 'raw')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.secret (name, key)
	VALUES (import_secret.name, stage._decode_key(pg_catalog.lo_get(key_object), format));
	PERFORM pg_catalog.lo_unlink(key_object);
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', import_secret.name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place (see docs/masking.md, rotation).';
END
$$;
REVOKE ALL ON FUNCTION stage.import_secret(text, oid, text) FROM PUBLIC;

/* the same from a file on the database server (superuser, or pg_read_server_files) */
CREATE FUNCTION stage.import_secret_file(name text, path text, format text DEFAULT 'raw')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.secret (name, key)
	VALUES (import_secret_file.name, stage._decode_key(pg_catalog.pg_read_binary_file(path), format));
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', import_secret_file.name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place (see docs/masking.md, rotation).';
END
$$;
REVOKE ALL ON FUNCTION stage.import_secret_file(text, text, text) FROM PUBLIC;

/*
 * Drop a secret no mask uses any more.  Its tokens are dropped too when
 * drop_tokens is set, which makes every token issued under it
 * irreversible for good (crypto-shredding); otherwise a secret with tokens
 * is kept.
 */
CREATE FUNCTION stage.drop_secret(name text, drop_tokens boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	users text;
	ntokens bigint;
BEGIN
	SELECT pg_catalog.string_agg(DISTINCT p.name, ', ') INTO users
	  FROM stage.mask m JOIN stage.pipeline p USING (pipeline_id)
	 WHERE (m.method OPERATOR(pg_catalog.=) ANY (ARRAY['hash', 'pseudonym', 'tokenize'])
			AND COALESCE(m.args OPERATOR(pg_catalog.->>) 'secret', 'default') OPERATOR(pg_catalog.=) drop_secret.name)
		OR (m.method OPERATOR(pg_catalog.=) 'noise'
			AND m.args OPERATOR(pg_catalog.->>) 'secret' OPERATOR(pg_catalog.=) drop_secret.name);
	IF users IS NOT NULL THEN
		RAISE EXCEPTION 'secret "%" is used by masks of pipeline %', drop_secret.name, users
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Change those masks first (stage.add_mask with another secret).';
	END IF;
	SELECT pg_catalog.count(*) INTO ntokens FROM stage.token_vault v
	 WHERE v.secret OPERATOR(pg_catalog.=) drop_secret.name;
	IF ntokens OPERATOR(pg_catalog.>) 0 AND NOT drop_tokens THEN
		RAISE EXCEPTION 'secret "%" has tokens in the vault (%)', drop_secret.name, ntokens
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Pass drop_tokens => true to drop them with it: its tokens can then never be reversed.';
	END IF;
	DELETE FROM stage.token_vault v WHERE v.secret OPERATOR(pg_catalog.=) drop_secret.name;
	DELETE FROM stage.secret s WHERE s.name OPERATOR(pg_catalog.=) drop_secret.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', drop_secret.name
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.drop_secret(text, boolean) FROM PUBLIC;

/* -------------------------------------------- quarantine, as shown */

/*
 * raw_data of stage.quarantine_log (rows as they landed) is not readable by
 * PUBLIC.  Each pipeline owner role is granted SELECT on it while it owns a
 * pipeline (row-level security still shows it its own pipelines' rows
 * only), so owners, replay and the worker running as the owner read raw
 * rows; an analyst, a producer or anyone else is refused (42501).
 */
CREATE FUNCTION stage._raw_access() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_raw_access';
CREATE TRIGGER raw_access AFTER INSERT OR DELETE ON stage.pipeline
	FOR EACH ROW EXECUTE FUNCTION stage._raw_access();

CREATE FUNCTION stage._quarantine(pipeline_id integer)
RETURNS TABLE(landing_id bigint, batch_id bigint, contract_version integer, source text,
			  received_at timestamptz, row_data jsonb, reasons jsonb,
			  quarantined_at timestamptz)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_rows';
COMMENT ON FUNCTION stage._quarantine(integer) IS
	'a pipeline''s quarantined rows for its owner and stage_analyst members, masked with the current masks';

CREATE FUNCTION stage.quarantine_raw(pipeline text)
RETURNS TABLE(landing_id bigint, batch_id bigint, contract_version integer, raw_data jsonb,
			  reasons jsonb, quarantined_at timestamptz)
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_raw';
COMMENT ON FUNCTION stage.quarantine_raw(text) IS
	'a pipeline''s quarantined rows as they landed: members of the owner role and superusers only';

CREATE FUNCTION stage._quarantine_count(pipeline_id integer, since timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_quarantine_count';
COMMENT ON FUNCTION stage._quarantine_count(integer, timestamptz) IS
	'how many rows of a pipeline are in quarantine, for those who may read it (else NULL)';

/*
 * The quarantine and its daily summary, for owners (their pipelines),
 * stage_analyst members (every pipeline) and superusers; masked columns
 * show masked with their current mask, also on rows quarantined before it
 * was set.
 */
CREATE VIEW stage.quarantine WITH (security_invoker = true) AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'message' AS message,
	   q.reasons, q.row_data, q.source, q.received_at, q.quarantined_at
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q;

CREATE VIEW stage.dlq_summary WITH (security_invoker = true) AS
SELECT p.name AS pipeline, r.value OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   r.value OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   r.value OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   pg_catalog.date_trunc('day', q.quarantined_at) AS day,
	   pg_catalog.count(*) AS failures,
	   pg_catalog.count(DISTINCT q.landing_id) AS rows
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(q.reasons) r
 GROUP BY 1, 2, 3, 4, 5;

GRANT SELECT ON stage.quarantine, stage.dlq_summary TO PUBLIC;

/* ------------------------------------------------------------- roles */

/*
 * Create (or check) the documented group roles, NOLOGIN:
 *   stage_producer  lands rows: give it a pipeline's landing table with
 *                   stage.grant_producer(pipeline, 'stage_producer');
 *   stage_analyst   reads the health views and the quarantine of every
 *                   pipeline, masked columns masked (stage.quarantine,
 *                   stage.dlq_summary, stage.health where it exists); never
 *                   raw values, secrets or the vault.
 * Grant them to login roles: GRANT stage_analyst TO alice.  Run again after
 * an upgrade that adds views; existing roles are kept (and checked).
 */
CREATE FUNCTION stage.create_roles()
RETURNS TABLE(role_name name, created boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r text;
	v text;
BEGIN
	FOREACH r IN ARRAY ARRAY['stage_producer', 'stage_analyst'] LOOP
		role_name := r;
		created := NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) r);
		IF created THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles x
					   WHERE x.rolname OPERATOR(pg_catalog.=) r
						 AND (x.rolsuper OR x.rolcanlogin OR x.rolcreaterole OR x.rolbypassrls)) THEN
			RAISE EXCEPTION 'role "%" exists and is not a plain group role', r
				USING ERRCODE = 'invalid_role_specification',
					  HINT = 'It must be NOLOGIN, without SUPERUSER, CREATEROLE or BYPASSRLS; drop or alter it first.';
		END IF;
		RETURN NEXT;
	END LOOP;
	GRANT USAGE ON SCHEMA stage TO stage_producer, stage_analyst;
	GRANT USAGE ON SCHEMA stage_landing TO stage_producer;
	FOREACH v IN ARRAY ARRAY['stage.pipelines', 'stage.batches', 'stage.rule_stats', 'stage.lineage',
							 'stage.quarantine', 'stage.dlq_summary', 'stage.health'] LOOP
		IF pg_catalog.to_regclass(v) IS NOT NULL THEN
			EXECUTE pg_catalog.format('GRANT SELECT ON %s TO stage_analyst', v);
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION stage.create_roles() FROM PUBLIC;
COMMENT ON FUNCTION stage.create_roles() IS
	'creates the group roles stage_producer and stage_analyst (NOLOGIN) and grants them what they need';

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

CREATE VIEW stage.workers WITH (security_invoker = true) AS
SELECT w.pid, w.database, w.state, w.pipeline, w.batch_id, w.last_error,
	   w.batches, w.rows, w.started_at, w.last_batch_at,
	   CASE WHEN w.dynamic THEN 'stage.start_worker()' ELSE 'stage.databases' END AS started_by
  FROM stage._workers() w;
GRANT SELECT ON stage.workers TO PUBLIC;

/* ------------------------------------------------------------ health */

/*
 * The staging SLIs per pipeline, over the last hour of batches (and the
 * whole quarantine for the DLQ): what a dashboard or an alert reads.
 * Rates are fractions of the rows the batches took.  Runs as the invoker:
 * row-level security shows each role the batches it may see.
 */
CREATE VIEW stage.health WITH (security_invoker = true) AS
WITH recent AS (
	SELECT b.*
	  FROM stage.batch b
	 WHERE b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)
), per_pipeline AS (
	SELECT r.pipeline_id,
		   pg_catalog.count(*) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch') AS batches,
		   pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'failed') AS failed_batches,
		   pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'held') AS held_batches,
		   pg_catalog.sum(r.rows_in) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
											 AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_in,
		   pg_catalog.sum(r.rows_clean) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
												AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_clean,
		   pg_catalog.sum(r.rows_quarantined) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
													  AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_quarantined,
		   pg_catalog.sum(r.rows_duplicate) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
													AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_duplicate,
		   pg_catalog.sum(r.rows_drift) AS rows_drift,
		   pg_catalog.sum(r.rows_in) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'replay') AS replayed,
		   pg_catalog.sum(r.rows_clean) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'replay') AS replayed_clean,
		   /* row-weighted: a fair summary of per-batch percentiles */
		   pg_catalog.sum(r.latency_p50_ms OPERATOR(pg_catalog.*) r.rows_in)
			 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(r.rows_in) FILTER (WHERE r.latency_p50_ms IS NOT NULL), 0) AS latency_p50_ms,
		   pg_catalog.max(r.latency_p95_ms) AS latency_p95_ms,
		   pg_catalog.sum(EXTRACT(epoch FROM r.finished_at OPERATOR(pg_catalog.-) r.started_at))
			 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(r.rows_in), 0) AS seconds_per_row,
		   pg_catalog.max(r.finished_at) AS last_batch_at
	  FROM recent r
	 GROUP BY r.pipeline_id
), type_failures AS (
	SELECT b.pipeline_id, pg_catalog.sum(s.failed) AS failed
	  FROM recent b JOIN stage.batch_rule_stat s USING (batch_id)
	 WHERE s.kind OPERATOR(pg_catalog.=) 'type' AND b.kind OPERATOR(pg_catalog.=) 'batch'
	 GROUP BY b.pipeline_id
), dlq AS (
	/* counted for whoever may read the quarantine, analysts included */
	SELECT x.pipeline_id, stage._quarantine_count(x.pipeline_id) AS size,
		   stage._quarantine_count(x.pipeline_id,
								   pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval) AS growth_24h
	  FROM stage.pipeline x
)
SELECT p.name AS pipeline, p.enabled, p.paused_reason,
	   COALESCE(pp.batches, 0) AS batches_1h,
	   COALESCE(pp.failed_batches, 0) AS failed_batches_1h,
	   COALESCE(pp.held_batches, 0) AS held_batches_1h,
	   COALESCE(pp.rows_in, 0) AS rows_1h,
	   /* ingest: batches that completed, of those attempted */
	   ((pp.batches OPERATOR(pg_catalog.-) pp.failed_batches)::double precision
		 OPERATOR(pg_catalog./) NULLIF(pp.batches, 0)) AS ingest_success_rate,
	   pp.rows_clean::double precision OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS validation_pass_rate,
	   pp.rows_duplicate::double precision OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS duplicate_rate,
	   (COALESCE(tf.failed, 0) OPERATOR(pg_catalog.+) COALESCE(pp.rows_drift, 0))::double precision
		 OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS schema_violation_rate,
	   pp.replayed_clean::double precision OPERATOR(pg_catalog./) NULLIF(pp.replayed, 0) AS replay_success_rate,
	   pp.latency_p50_ms AS handoff_latency_p50_ms,
	   pp.latency_p95_ms AS handoff_latency_p95_ms,
	   (pp.seconds_per_row OPERATOR(pg_catalog.*) 1000000)::double precision AS microseconds_per_row,
	   COALESCE(d.size, 0) AS dlq_size,
	   COALESCE(d.growth_24h, 0) AS dlq_growth_24h,
	   p.retention,
	   pp.last_batch_at
  FROM stage.pipeline p
  LEFT JOIN per_pipeline pp USING (pipeline_id)
  LEFT JOIN type_failures tf USING (pipeline_id)
  LEFT JOIN dlq d USING (pipeline_id);
GRANT SELECT ON stage.health TO PUBLIC;

/* rows of a pipeline's landing table not yet taken by a batch */
CREATE FUNCTION stage.backlog(pipeline text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	n bigint;
BEGIN
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*) FROM %s l
		  WHERE l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)
			AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $1)
			AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2)
				 OR ROW(l._stage_txid, l._stage_id) OPERATOR(pg_catalog.>) ROW($3, $4))',
		p.landing)
	INTO n USING p.win_lo, p.win_hi, p.cur_txid, p.cur_id;
	RETURN n;
END
$$;

/*
 * The SLIs in Prometheus text exposition format, for postgres_exporter's
 * custom queries or a scrape proxy: one family per metric, each with its
 * HELP and TYPE lines, one sample per pipeline.
 */
CREATE FUNCTION stage.metrics()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	out text := '';
	fam record;
	h record;
	v text;
BEGIN
	FOR fam IN SELECT * FROM (VALUES
		(1, 'stage_rows_1h', 'Landing rows taken by batches in the last hour.'),
		(2, 'stage_rows_clean_1h', 'Rows moved to the target by batches in the last hour.'),
		(3, 'stage_rows_quarantined_1h', 'Rows quarantined by batches in the last hour (DLQ growth over the hour).'),
		(4, 'stage_batches_1h', 'Batches attempted in the last hour.'),
		(5, 'stage_batches_failed_1h', 'Batches that failed in the last hour.'),
		(6, 'stage_batches_held_1h', 'Batches held (max_reject_ratio or drift) in the last hour.'),
		(7, 'stage_validation_pass_rate', 'Share of the last hour''s rows that passed the contract.'),
		(8, 'stage_duplicate_rate', 'Share of the last hour''s rows resolved as duplicates.'),
		(9, 'stage_schema_violation_rate', 'Type failures and drifting payloads per row taken, last hour.'),
		(10, 'stage_handoff_latency_p50_seconds', 'Median time from landing to the target, last hour.'),
		(11, 'stage_handoff_latency_p95_seconds', '95th percentile time from landing to the target, last hour.'),
		(12, 'stage_dlq_size', 'Rows in quarantine.'),
		(13, 'stage_dlq_growth_24h', 'Rows quarantined in the last 24 hours.'),
		(14, 'stage_pipeline_enabled', '1 when the pipeline runs, 0 when paused or held.')
	) AS f(n, name, help) ORDER BY n
	LOOP
		out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'# HELP %s %s\n# TYPE %s gauge\n',
															 fam.name, fam.help, fam.name);
		FOR h IN SELECT * FROM stage.health ORDER BY pipeline LOOP
			v := CASE fam.n
				WHEN 1 THEN h.rows_1h::text
				WHEN 2 THEN COALESCE((SELECT pg_catalog.sum(b.rows_clean) FROM stage.batches b
									   WHERE b.pipeline OPERATOR(pg_catalog.=) h.pipeline
										 AND b.kind OPERATOR(pg_catalog.=) 'batch'
										 AND b.status OPERATOR(pg_catalog.=) 'done'
										 AND b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)), 0)::text
				WHEN 3 THEN COALESCE((SELECT pg_catalog.sum(b.rows_quarantined) FROM stage.batches b
									   WHERE b.pipeline OPERATOR(pg_catalog.=) h.pipeline
										 AND b.kind OPERATOR(pg_catalog.=) 'batch'
										 AND b.status OPERATOR(pg_catalog.=) 'done'
										 AND b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)), 0)::text
				WHEN 4 THEN h.batches_1h::text
				WHEN 5 THEN h.failed_batches_1h::text
				WHEN 6 THEN h.held_batches_1h::text
				WHEN 7 THEN h.validation_pass_rate::text
				WHEN 8 THEN h.duplicate_rate::text
				WHEN 9 THEN h.schema_violation_rate::text
				WHEN 10 THEN (h.handoff_latency_p50_ms OPERATOR(pg_catalog./) 1000)::text
				WHEN 11 THEN (h.handoff_latency_p95_ms OPERATOR(pg_catalog./) 1000)::text
				WHEN 12 THEN h.dlq_size::text
				WHEN 13 THEN h.dlq_growth_24h::text
				WHEN 14 THEN CASE WHEN h.enabled THEN '1' ELSE '0' END
			END;
			out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'%s{pipeline="%s"} %s\n', fam.name,
				pg_catalog.replace(pg_catalog.replace(h.pipeline, E'\\', E'\\\\'), '"', E'\\"'),
				COALESCE(v, 'NaN'));
		END LOOP;
	END LOOP;
	out := out OPERATOR(pg_catalog.||) E'# HELP stage_workers Running stage background workers.\n'
		OPERATOR(pg_catalog.||) E'# TYPE stage_workers gauge\n'
		OPERATOR(pg_catalog.||) 'stage_workers ' OPERATOR(pg_catalog.||)
		(SELECT pg_catalog.count(*) FROM stage.workers)::text OPERATOR(pg_catalog.||) E'\n';
	RETURN out;
END
$$;

/* ------------------------------------------------- OpenLineage outbox */

/*
 * Batches as OpenLineage run events, in batch order after a cursor: a
 * shipper (a small script, or a postgres_exporter-like poller) reads the
 * events after the last batch id it shipped, sends them, and keeps the new
 * cursor.  Nothing is deleted: the events are derived from stage.batch and
 * its rule statistics, so the outbox is as durable as the batch history.
 *
 * Mapping: a batch is a run (runId is a UUID derived from the database and
 * the batch id, stable across calls); the pipeline is the job, its
 * contract version the job's version facet; the landing table is the
 * input, the target and the quarantine are the outputs with their row
 * counts; each rule's result in the batch is a data-quality assertion on
 * the input.  Done batches are COMPLETE, failed ones FAIL, held ones ABORT.
 */
CREATE FUNCTION stage.openlineage_events(since_batch_id bigint DEFAULT 0,
										 max_events integer DEFAULT 1000)
RETURNS TABLE(batch_id bigint, event jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT b.batch_id,
		   pg_catalog.jsonb_build_object(
			'eventType', CASE b.status WHEN 'done' THEN 'COMPLETE'
									   WHEN 'failed' THEN 'FAIL' ELSE 'ABORT' END,
			'eventTime', pg_catalog.to_char(pg_catalog.timezone('UTC', b.finished_at),
											'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'producer', 'urn:stage:0.1',
			'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent',
			'run', pg_catalog.jsonb_build_object(
				'runId', (pg_catalog.md5(pg_catalog.current_database() OPERATOR(pg_catalog.||) '/'
										 OPERATOR(pg_catalog.||) b.batch_id::text))::uuid,
				'facets', pg_catalog.jsonb_build_object(
					'stage_batch', pg_catalog.jsonb_build_object(
						'kind', b.kind, 'status', b.status,
						'rows_in', b.rows_in, 'rows_clean', b.rows_clean,
						'rows_quarantined', b.rows_quarantined,
						'rows_duplicate', b.rows_duplicate, 'rows_warned', b.rows_warned,
						'started_at', b.started_at, 'error', b.error, 'sqlstate', b.sqlstate))),
			'job', pg_catalog.jsonb_build_object(
				'namespace', 'stage://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
				'name', p.name,
				'facets', pg_catalog.jsonb_build_object(
					'stage_contract', pg_catalog.jsonb_build_object('version', b.contract_version))),
			'inputs', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
				'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
				'name', p.landing::text,
				'inputFacets', pg_catalog.jsonb_build_object(
					'dataQualityAssertions', pg_catalog.jsonb_build_object(
						'assertions', COALESCE((
							SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
									'assertion', s.rule_name, 'column', s.column_name,
									'success', s.failed OPERATOR(pg_catalog.=) 0)
									ORDER BY s.rule_name)
							  FROM stage.batch_rule_stat s
							 WHERE s.batch_id OPERATOR(pg_catalog.=) b.batch_id), '[]'))))),
			'outputs', pg_catalog.jsonb_build_array(
				pg_catalog.jsonb_build_object(
					'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
					'name', p.target::text,
					'outputFacets', pg_catalog.jsonb_build_object(
						'outputStatistics', pg_catalog.jsonb_build_object('rowCount', b.rows_clean))),
				pg_catalog.jsonb_build_object(
					'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
					'name', 'stage.quarantine_log',
					'outputFacets', pg_catalog.jsonb_build_object(
						'outputStatistics', pg_catalog.jsonb_build_object('rowCount', b.rows_quarantined)))))
	  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
	 WHERE b.batch_id OPERATOR(pg_catalog.>) COALESCE(since_batch_id, 0)
	 ORDER BY b.batch_id
	 LIMIT COALESCE(max_events, 1000)
$$;
COMMENT ON FUNCTION stage.openlineage_events(bigint, integer) IS
	'batches after a cursor as OpenLineage run events (the lineage outbox)';
