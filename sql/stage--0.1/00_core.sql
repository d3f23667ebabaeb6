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
