/* stage--0.2.sql, built from the pieces in sql/stage--0.2/, in name order */

\echo Use "CREATE EXTENSION stage" to load this file. \quit

/*
 * Security model (docs/security.md):
 *  - the schemas are created here, so CREATE EXTENSION fails when either
 *    exists already: a schema made earlier by another role would be
 *    adopted, and that role could later replace or drop what is in it;
 *  - every table of the catalog belongs to the extension's owner (the
 *    "catalog owner") and nobody else holds any privilege on it;
 *  - the API functions that read or change the catalog are gates (C,
 *    'stage_api', guard.c): they note the caller, become the catalog owner
 *    and run stage._do_<name>, which checks what the caller may do with
 *    stage._owns() / stage._may_see();
 *  - every function runs with search_path = pg_catalog, pg_temp and
 *    schema-qualifies everything, operators included;
 *  - functions whose name starts with _ are internal: nobody but the
 *    catalog owner may execute them (90_privileges.sql checks it);
 *  - the views belong to the catalog owner and show each role the
 *    pipelines it may see (security_barrier).
 */

DO $$
BEGIN
	IF pg_catalog.to_regnamespace('stage') IS NOT NULL
	   OR pg_catalog.to_regnamespace('stage_landing') IS NOT NULL THEN
		RAISE EXCEPTION 'schema "stage" or "stage_landing" already exists'
			USING ERRCODE = 'duplicate_schema',
				  DETAIL = 'The extension creates both schemas and everything in them; an existing schema, and whatever its owner put in it, would stay under that role''s control.',
				  HINT = 'Find out who made the schema and why, drop or rename it, then run CREATE EXTENSION stage again.';
	END IF;
END
$$;
CREATE SCHEMA stage;
CREATE SCHEMA stage_landing;
GRANT USAGE ON SCHEMA stage TO PUBLIC;
GRANT USAGE ON SCHEMA stage_landing TO PUBLIC;
/* ----------------------------------------------------- the gate's helpers */

/* the role the API acts for (the gate's caller); internal */
CREATE FUNCTION stage._caller() RETURNS regrole
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_caller_sql';

/* may the caller act for pipelines of this owner? (member or superuser) */
CREATE FUNCTION stage._owns(owner regrole) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_owns_sql';

/* may the caller see the outcomes of pipelines of this owner? (also stage_analyst) */
CREATE FUNCTION stage._may_see(owner regrole) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_may_see_sql';

/* error if this session is inside a batch, replay or check of the pipeline */
CREATE FUNCTION stage._check_idle(pipeline_id integer, name text) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_check_idle';

/* the message shown in place of a server's that may quote a masked value */
CREATE FUNCTION stage._withheld(sqlstate text) RETURNS text
LANGUAGE c IMMUTABLE
AS 'MODULE_PATHNAME', 'stage_withheld';

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
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	/* movers that may work one window at once, each its lane of keys (stage.set_lanes) */
	lanes			integer NOT NULL DEFAULT 1
		CHECK (lanes OPERATOR(pg_catalog.>=) 1 AND lanes OPERATOR(pg_catalog.<=) 64),
	/* the lanes of the open window (NULL: one, its cursor in cur_txid and cur_id) */
	win_lanes		integer,
	/* the target's columns as the landing table last followed them, and when they changed */
	target_columns	jsonb,
	target_changed_at timestamptz
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

/* the transforms, in declaration order: source mappings, column chains, lookups, expressions */
CREATE TABLE stage.transform (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	transform_name	text NOT NULL,
	column_name		text NOT NULL,
	method			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	position		integer NOT NULL,
	PRIMARY KEY (pipeline_id, transform_name)
);

CREATE TABLE stage.contract_history (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	version			integer NOT NULL,
	contract		jsonb NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		name NOT NULL DEFAULT stage._caller()::text,
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
	run_by			name NOT NULL DEFAULT stage._caller()::text,
	/* the lane of a window worked in lanes, and their number (NULL: one) */
	lane			integer,
	lanes			integer
);
CREATE INDEX ON stage.batch (pipeline_id, batch_id);

/*
 * The progress of each lane of an open window worked in lanes (win_lanes
 * above one): the lane's cursor, and whether it has taken all its rows.
 * The rows live from the window's opening to its closing.
 */
CREATE TABLE stage.lane (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	lane			integer NOT NULL,
	cur_txid		xid8,
	cur_id			bigint,
	done			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (pipeline_id, lane)
);

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

/* per transform counters of a batch: values changed, NULLs produced, failures */
CREATE TABLE stage.batch_transform_stat (
	batch_id		bigint NOT NULL,
	transform_name	text NOT NULL,
	column_name		text NOT NULL,
	method			text NOT NULL,
	applied			bigint NOT NULL,
	changed			bigint NOT NULL,
	nulled			bigint NOT NULL,
	failed			bigint NOT NULL,
	PRIMARY KEY (batch_id, transform_name)
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
	/* the reasons with the server messages that were withheld (owner only) */
	raw_reasons		jsonb,
	/*
	 * The item's lifecycle: open until it is repaired (a corrected copy,
	 * successor_id, moved clean), replayed (the row itself moved, in batch
	 * closed_batch_id), superseded (a later row of its key, successor_id,
	 * moved clean) or dismissed (never to load).  key: the row's canonical
	 * key, when it has one, for supersession.
	 */
	key				text,
	status			text NOT NULL DEFAULT 'open'
		CHECK (status OPERATOR(pg_catalog.=) ANY
			   (ARRAY['open', 'repaired', 'replayed', 'superseded', 'dismissed'])),
	successor_id	bigint,
	closed_at		timestamptz,
	closed_by		text,
	closed_batch_id	bigint,
	note			text,
	/* the landing row's _stage_role: who landed it (NULL: quarantined before 0.2) */
	role			text,
	PRIMARY KEY (pipeline_id, landing_id)
);
CREATE INDEX ON stage.quarantine_log (batch_id);
/* open items: the DLQ's size, supersession by key, repairs pending */
CREATE INDEX ON stage.quarantine_log (pipeline_id, key) WHERE status OPERATOR(pg_catalog.=) 'open';
CREATE INDEX ON stage.quarantine_log (pipeline_id, successor_id)
	WHERE status OPERATOR(pg_catalog.=) 'open' AND successor_id IS NOT NULL;

/* one row per landing row resolved as a duplicate of an earlier key */
CREATE TABLE stage.duplicate_log (
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint NOT NULL,
	PRIMARY KEY (pipeline_id, landing_id)
);
CREATE INDEX ON stage.duplicate_log (batch_id);

/* keys for the hash, pseudonym, tokenize and keyed noise masks: catalog owner only */
CREATE TABLE stage.secret (
	name			text PRIMARY KEY,
	key				bytea NOT NULL CHECK (pg_catalog.length(key) OPERATOR(pg_catalog.>=) 16),
	/* roles that may use it in masks (superusers always may) */
	users			regrole[] NOT NULL DEFAULT '{}',
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);

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
COMMENT ON TABLE stage.token_vault IS 'tokens of the tokenize mask and the values behind them: extension owner only';

/*
 * User data and configuration: pg_dump keeps them (the catalog, history
 * and quarantine are the users' data too).
 */
SELECT pg_catalog.pg_extension_config_dump('stage.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('stage.rule', '');
SELECT pg_catalog.pg_extension_config_dump('stage.mask', '');
SELECT pg_catalog.pg_extension_config_dump('stage.contract_history', '');
/* batch history and the quarantine are the users' data too */
SELECT pg_catalog.pg_extension_config_dump('stage.batch', '');
SELECT pg_catalog.pg_extension_config_dump('stage.batch_rule_stat', '');
SELECT pg_catalog.pg_extension_config_dump('stage.quarantine_log', '');
SELECT pg_catalog.pg_extension_config_dump('stage.duplicate_log', '');
SELECT pg_catalog.pg_extension_config_dump('stage.secret', '');
SELECT pg_catalog.pg_extension_config_dump('stage.token_vault', '');
SELECT pg_catalog.pg_extension_config_dump('stage.lane', '');
SELECT pg_catalog.pg_extension_config_dump('stage.transform', '');
SELECT pg_catalog.pg_extension_config_dump('stage.batch_transform_stat', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.pipeline', 'pipeline_id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.batch', 'batch_id'), '');

/*
 * Only the catalog owner reads or writes these tables: the API (gates,
 * guard.c) and the views are the way in.  Nothing a pipeline owner could
 * write here by hand (a mask under someone else's secret, a batch with a
 * chosen id, a statistic) is possible.
 */
REVOKE ALL ON stage.pipeline, stage.rule, stage.mask, stage.contract_history,
	stage.batch, stage.batch_rule_stat, stage.quarantine_log, stage.duplicate_log,
	stage.secret, stage.token_vault, stage.lane, stage.transform, stage.batch_transform_stat
	FROM PUBLIC;
/* and should one be granted by mistake, no row shows: no policy allows any */
ALTER TABLE stage.pipeline ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.rule ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.mask ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.contract_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.batch ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.batch_rule_stat ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.quarantine_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.duplicate_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.token_vault ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.lane ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.transform ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.batch_transform_stat ENABLE ROW LEVEL SECURITY;

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
/* ---------------------------------------------------------- contracts */

/*
 * The checks of one rule against a pipeline's target and key, as add_rule
 * and set_contract make them, without storing it: taken holds the rule
 * names already in use.  Returns the rule's name.  stage.contract_diff
 * runs it too, so what it reports as refused is what set_contract refuses.
 */
CREATE FUNCTION stage._check_rule(p stage.pipeline, column_name text, kind text,
								  args jsonb, severity text, rule_name text, taken text[])
RETURNS text
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
	PERFORM stage._validate_rule(p.target, column_name, kind, COALESCE(args, '{}'), p.owner);
	IF rname OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]{1,63}$' THEN
		RAISE EXCEPTION 'invalid rule name "%"', pg_catalog.left(rname, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A rule name is 1 to 63 characters, without control characters.';
	END IF;
	IF kind OPERATOR(pg_catalog.=) 'unique' AND NOT (column_name OPERATOR(pg_catalog.=) ANY (COALESCE(p.key, '{}'))) THEN
		RAISE EXCEPTION 'rule unique applies to the key of the pipeline, and "%" is not in it', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Declare the key with create_pipeline(key => ...) or set_contract(); duplicates are resolved by on_duplicate.';
	END IF;
	IF rname OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'rule "%" already exists in pipeline "%"', rname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another rule_name, or drop the rule first with stage.drop_rule().';
	END IF;
	RETURN rname;
END
$$;

/* validate one rule against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_rule(p stage.pipeline, column_name text, kind text,
								   args jsonb, severity text, rule_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rname text;
BEGIN
	rname := stage._check_rule(p, column_name, kind, args, severity, rule_name,
							   ARRAY(SELECT r.rule_name FROM stage.rule r
									  WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
	INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, args, severity, position)
	VALUES (p.pipeline_id, rname, column_name, kind, COALESCE(args, '{}'), severity,
			(SELECT COALESCE(pg_catalog.max(r.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.rule r WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

/*
 * The checks of one mask against a pipeline's target and key, without
 * storing it; taken: the columns masked so far by the same document (NULL
 * when the mask replaces the column's mask, as add_mask does).
 */
CREATE FUNCTION stage._check_mask(p stage.pipeline, column_name text, method text, args jsonb,
								  taken text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF column_name OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'column "%" has two masks in the contract', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A column takes one mask.';
	END IF;
	IF column_name OPERATOR(pg_catalog.=) ANY (p.key) THEN
		RAISE EXCEPTION 'column "%" is part of the key of pipeline "%" and cannot be masked', column_name, p.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Key values must reach the target unchanged to detect duplicates; mask another column or change the key.';
	END IF;
	PERFORM stage._validate_mask(p.target, column_name, method, COALESCE(args, '{}'), p.owner);
END
$$;

/* validate one mask against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_mask(p stage.pipeline, column_name text, method text, args jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM stage._check_mask(p, column_name, method, args, NULL);
	/* one mask per column: a new mask replaces the old one */
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _insert_mask.column_name;
	INSERT INTO stage.mask (pipeline_id, column_name, method, args)
	VALUES (p.pipeline_id, column_name, method, COALESCE(args, '{}'));
END
$$;

/*
 * The checks of one transform against a pipeline's target and landing,
 * without storing it; taken: the transform names already in use.  Returns
 * the transform's name.
 */
CREATE FUNCTION stage._check_transform(p stage.pipeline, column_name text, method text,
									   args jsonb, transform_name text, taken text[])
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tname text := COALESCE(transform_name, column_name OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) method);
BEGIN
	PERFORM stage._validate_transform(p.pipeline_id, column_name, method, COALESCE(args, '{}'), p.owner);
	IF tname OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]{1,63}$' THEN
		RAISE EXCEPTION 'invalid transform name "%"', pg_catalog.left(tname, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A transform name is 1 to 63 characters, without control characters.';
	END IF;
	IF tname OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'transform "%" already exists in pipeline "%"', tname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another transform_name, or drop the transform first with stage.drop_transform().';
	END IF;
	RETURN tname;
END
$$;

/* validate one transform against a pipeline's target and landing, and store it */
CREATE FUNCTION stage._insert_transform(p stage.pipeline, column_name text, method text,
										args jsonb, transform_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tname text;
BEGIN
	tname := stage._check_transform(p, column_name, method, args, transform_name,
									ARRAY(SELECT t.transform_name FROM stage.transform t
										   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
	INSERT INTO stage.transform (pipeline_id, transform_name, column_name, method, args, position)
	VALUES (p.pipeline_id, tname, column_name, method, COALESCE(args, '{}'),
			(SELECT COALESCE(pg_catalog.max(t.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.transform t WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

CREATE FUNCTION stage.add_transform(pipeline text, column_name text, method text,
									args jsonb DEFAULT '{}', transform_name text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_transform(pipeline text, column_name text, method text,
										args jsonb, transform_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_transform(p, column_name, method, args, transform_name);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_transform(pipeline text, transform_name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_transform(pipeline text, transform_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) _do_drop_transform.transform_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'transform "%" does not exist in pipeline "%"', transform_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its transforms.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a transform's args in place: same name, column, method and
 * position, checked exactly as add_transform checks it, in one new
 * contract version (none when the args are the ones it has).
 */
CREATE FUNCTION stage.alter_transform(pipeline text, transform_name text, args jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_transform(pipeline text, transform_name text, args jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.transform;
BEGIN
	SELECT * INTO old FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) _do_alter_transform.transform_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'transform "%" does not exist in pipeline "%"', transform_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its transforms.';
	END IF;
	IF args IS NULL THEN
		RAISE EXCEPTION 'nothing to change in transform "%"', transform_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the new args; to change the method, drop the transform and add another.';
	END IF;
	DELETE FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) old.transform_name;
	PERFORM stage._insert_transform(p, old.column_name, old.method, args, old.transform_name);
	UPDATE stage.transform t SET position = old.position
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) old.transform_name;
	IF COALESCE(args, '{}') OPERATOR(pg_catalog.=) old.args THEN
		RETURN p.contract_version;
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * A landing column that is no target column: a source for the transforms
 * from, concat and coalesce (a partner's "email_address" for the target's
 * "email").  Text, like every landing column; whoever may insert into the
 * landing table (its owner, its producers) may fill it.
 */
CREATE FUNCTION stage.add_landing_column(pipeline text, column_name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_landing_column(pipeline text, column_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF p.format OPERATOR(pg_catalog.<>) 'columns' THEN
		RAISE EXCEPTION 'pipeline "%" lands jsonb payloads: it has no landing columns to add', pipeline
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Read nested or differently named keys with the transform from {"path": ...}.';
	END IF;
	/* 63 bytes, the longest name PostgreSQL keeps whole */
	IF column_name IS NULL OR column_name OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]+$'
	   OR pg_catalog.octet_length(column_name) OPERATOR(pg_catalog.>) 63
	   OR column_name OPERATOR(pg_catalog.~~) '\_stage\_%' THEN
		RAISE EXCEPTION 'invalid landing column name "%"', pg_catalog.left(column_name, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A landing column name is 1 to 63 bytes, without control characters, and does not start with _stage_.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
				WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
				  AND a.attname OPERATOR(pg_catalog.=) column_name AND NOT a.attisdropped) THEN
		RAISE EXCEPTION 'landing table % already has a column "%"', p.landing, column_name
			USING ERRCODE = 'duplicate_column';
	END IF;
	PERFORM stage._add_landing_column(p.landing, column_name);
END
$$;

CREATE FUNCTION stage.add_rule(pipeline text, column_name text, kind text,
							   args jsonb DEFAULT '{}', severity text DEFAULT 'reject',
							   rule_name text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_rule(pipeline text, column_name text, kind text,
							   args jsonb, severity text,
							   rule_name text)
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
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_rule(pipeline text, rule_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) _do_drop_rule.rule_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist in pipeline "%"', rule_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its rules.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a rule's args, severity or both in place: same name, column,
 * kind and position, checked exactly as add_rule checks it, in one new
 * contract version (none when nothing differs).  NULL keeps what the
 * rule has.
 */
CREATE FUNCTION stage.alter_rule(pipeline text, rule_name text, args jsonb DEFAULT NULL,
								 severity text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_rule(pipeline text, rule_name text, args jsonb,
									 severity text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.rule;
	new_args jsonb;
	new_severity text;
BEGIN
	SELECT * INTO old FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) _do_alter_rule.rule_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist in pipeline "%"', rule_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its rules.';
	END IF;
	IF args IS NULL AND severity IS NULL THEN
		RAISE EXCEPTION 'nothing to change in rule "%"', rule_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass args, severity or both; to change the column or kind, drop the rule and add another.';
	END IF;
	new_args := COALESCE(args, old.args);
	new_severity := COALESCE(severity, old.severity);
	DELETE FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) old.rule_name;
	PERFORM stage._insert_rule(p, old.column_name, old.kind, new_args, new_severity, old.rule_name);
	UPDATE stage.rule r SET position = old.position
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) old.rule_name;
	IF new_args OPERATOR(pg_catalog.=) old.args AND new_severity OPERATOR(pg_catalog.=) old.severity THEN
		RETURN p.contract_version;
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.add_mask(pipeline text, column_name text, method text,
							   args jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_mask(pipeline text, column_name text, method text,
							   args jsonb)
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
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_mask(pipeline text, column_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _do_drop_mask.column_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of pipeline "%" has no mask', column_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its masks.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a column's mask in place: its method, its args or both, checked
 * exactly as add_mask checks it, in one new contract version (none when
 * nothing differs).  NULL keeps what the mask has: a new method with its
 * own args takes both.
 */
CREATE FUNCTION stage.alter_mask(pipeline text, column_name text, method text DEFAULT NULL,
								 args jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_mask(pipeline text, column_name text, method text,
									 args jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.mask;
	new_method text;
	new_args jsonb;
BEGIN
	SELECT * INTO old FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _do_alter_mask.column_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of pipeline "%" has no mask', column_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its masks; add one with stage.add_mask().';
	END IF;
	IF method IS NULL AND args IS NULL THEN
		RAISE EXCEPTION 'nothing to change in the mask of column "%"', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass method, args or both.';
	END IF;
	new_method := COALESCE(method, old.method);
	new_args := COALESCE(args, old.args);
	/* _insert_mask replaces the column's mask */
	PERFORM stage._insert_mask(p, old.column_name, new_method, new_args);
	IF new_method OPERATOR(pg_catalog.=) old.method AND new_args OPERATOR(pg_catalog.=) old.args THEN
		RETURN p.contract_version;
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
 * A contract document checked for its shape (an object, known fields,
 * arrays where arrays belong, known fields in each transform, rule and
 * mask) and returned with every default spelled out, as contract() shows
 * it.  set_contract and contract_diff both read a document through it.
 */
CREATE FUNCTION stage._contract_doc(contract jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k text;
	doc jsonb;
BEGIN
	IF contract IS NULL OR pg_catalog.jsonb_typeof(contract) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'a contract must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'See SELECT stage.contract(pipeline) for the format.';
	END IF;
	FOR k IN SELECT pg_catalog.jsonb_object_keys(contract) LOOP
		IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['version', 'key', 'on_duplicate', 'max_reject_ratio', 'drift', 'transforms', 'rules', 'masks']) THEN
			RAISE EXCEPTION 'unknown contract field "%"', k
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Fields are key, on_duplicate, max_reject_ratio, drift, transforms, rules and masks (version is ignored).';
		END IF;
	END LOOP;
	FOREACH k IN ARRAY ARRAY['transforms', 'rules', 'masks'] LOOP
		IF contract OPERATOR(pg_catalog.?) k
		   AND pg_catalog.jsonb_typeof(contract OPERATOR(pg_catalog.->) k) OPERATOR(pg_catalog.<>) 'array' THEN
			RAISE EXCEPTION 'contract field "%" must be an array', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	/* a misspelt field inside a transform, rule or mask must not be silently dropped */
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'transforms', 'transform',
								ARRAY['name', 'column', 'method', 'args']);
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'rules', 'rule',
								ARRAY['name', 'column', 'kind', 'args', 'severity']);
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'masks', 'mask',
								ARRAY['column', 'method', 'args']);

	doc := pg_catalog.jsonb_build_object(
		'key', COALESCE(contract OPERATOR(pg_catalog.->) 'key', 'null'),
		'on_duplicate', COALESCE(contract OPERATOR(pg_catalog.->) 'on_duplicate', '"skip"'),
		'max_reject_ratio', COALESCE(contract OPERATOR(pg_catalog.->) 'max_reject_ratio', 'null'),
		'drift', COALESCE(contract OPERATOR(pg_catalog.->) 'drift', '"ignore"'),
		'transforms', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'name', COALESCE(e OPERATOR(pg_catalog.->>) 'name',
									 (e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.||) '_'
									 OPERATOR(pg_catalog.||) (e OPERATOR(pg_catalog.->>) 'method')),
					'column', e OPERATOR(pg_catalog.->) 'column',
					'method', e OPERATOR(pg_catalog.->) 'method',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}')) ORDER BY o)
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'transforms') WITH ORDINALITY AS x(e, o)), '[]'),
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
	RETURN doc;
END
$$;

/*
 * The policies of a document from _contract_doc: key an array or null,
 * on_duplicate, max_reject_ratio and drift valid values.  The key's
 * columns and index are the target's business (stage._check_key).
 */
CREATE FUNCTION stage._check_policies(doc jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ratio double precision;
BEGIN
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) ALL (ARRAY['array', 'null']) THEN
		RAISE EXCEPTION 'contract field "key" must be an array of column names or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM stage._check_on_duplicate(doc OPERATOR(pg_catalog.->>) 'on_duplicate');
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.=) 'number' THEN
		ratio := (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision;
		IF ratio OPERATOR(pg_catalog.<) 0 OR ratio OPERATOR(pg_catalog.>) 1 THEN
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
END
$$;

/* the key of a document from _contract_doc (NULL: no key) */
CREATE FUNCTION stage._contract_key(doc jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'array'
			THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(doc OPERATOR(pg_catalog.->) 'key')) END
$$;

/*
 * Replace the whole contract (key, policies, transforms, rules, masks) in one version.
 * Missing keys take their defaults; a document equal to the current
 * contract changes nothing and returns the current version, so
 * set_contract(p, contract(p)) is a no-op.  Any invalid part refuses the
 * whole document and leaves the contract as it was.
 */
CREATE FUNCTION stage.set_contract(pipeline text, contract jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_contract(pipeline text, contract jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	r jsonb;
	doc jsonb := stage._contract_doc(contract);
	new_key text[];
BEGIN
	IF doc OPERATOR(pg_catalog.=) (stage._do_contract(pipeline) OPERATOR(pg_catalog.-) 'version') THEN
		RETURN p.contract_version;
	END IF;
	PERFORM stage._check_policies(doc);
	new_key := stage._contract_key(doc);
	PERFORM stage._check_key(p.target, new_key);

	UPDATE stage.pipeline x
	   SET key = new_key, on_duplicate = doc OPERATOR(pg_catalog.->>) 'on_duplicate',
		   max_reject_ratio = (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision,
		   drift = doc OPERATOR(pg_catalog.->>) 'drift'
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	RETURNING * INTO p;
	DELETE FROM stage.transform x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.rule x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.mask x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'transforms') AS x(e) LOOP
		PERFORM stage._insert_transform(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
										r OPERATOR(pg_catalog.->) 'args', r OPERATOR(pg_catalog.->>) 'name');
	END LOOP;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'rules') AS x(e) LOOP
		PERFORM stage._insert_rule(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'kind',
								   r OPERATOR(pg_catalog.->) 'args', r OPERATOR(pg_catalog.->>) 'severity',
								   r OPERATOR(pg_catalog.->>) 'name');
	END LOOP;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'masks') AS x(e) LOOP
		PERFORM stage._check_mask(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
								  r OPERATOR(pg_catalog.->) 'args',
								  ARRAY(SELECT m.column_name FROM stage.mask m
										 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
		INSERT INTO stage.mask (pipeline_id, column_name, method, args)
		VALUES (p.pipeline_id, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
				COALESCE(r OPERATOR(pg_catalog.->) 'args', '{}'));
	END LOOP;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/* the whole contract of a pipeline as one jsonb document */
CREATE FUNCTION stage.contract(pipeline text)
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_contract(pipeline text)
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
		'transforms', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'name', t.transform_name, 'column', t.column_name,
						'method', t.method, 'args', t.args)
					ORDER BY t.position)
			  FROM stage.transform t
			 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'),
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

/*
 * Is a rule's new args no stricter than its old ones?  Only what is
 * simple to compare counts: range and length bounds that are JSON numbers
 * and only move outwards (or go), enum values that only grow.  Anything
 * else changed is taken as stricter.
 */
CREATE FUNCTION stage._rule_looser(kind text, old_args jsonb, new_args jsonb)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b text;
BEGIN
	IF kind OPERATOR(pg_catalog.=) ANY (ARRAY['range', 'length']) THEN
		IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(old_args OPERATOR(pg_catalog.||) new_args) AS k(k)
					WHERE k.k OPERATOR(pg_catalog.<>) ALL (ARRAY['min', 'max'])) THEN
			RETURN false;
		END IF;
		FOREACH b IN ARRAY ARRAY['min', 'max'] LOOP
			CONTINUE WHEN NOT new_args OPERATOR(pg_catalog.?) b;	/* no bound any more */
			IF NOT old_args OPERATOR(pg_catalog.?) b THEN
				RETURN false;
			END IF;
			CONTINUE WHEN (new_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.=) (old_args OPERATOR(pg_catalog.->) b);
			IF pg_catalog.jsonb_typeof(new_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.<>) 'number'
			   OR pg_catalog.jsonb_typeof(old_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.<>) 'number' THEN
				RETURN false;
			END IF;
			IF b OPERATOR(pg_catalog.=) 'min' AND (new_args OPERATOR(pg_catalog.->>) b)::numeric
												   OPERATOR(pg_catalog.>) (old_args OPERATOR(pg_catalog.->>) b)::numeric THEN
				RETURN false;
			END IF;
			IF b OPERATOR(pg_catalog.=) 'max' AND (new_args OPERATOR(pg_catalog.->>) b)::numeric
												   OPERATOR(pg_catalog.<) (old_args OPERATOR(pg_catalog.->>) b)::numeric THEN
				RETURN false;
			END IF;
		END LOOP;
		RETURN true;
	ELSIF kind OPERATOR(pg_catalog.=) 'enum' THEN
		RETURN (new_args OPERATOR(pg_catalog.-) 'values') OPERATOR(pg_catalog.=) (old_args OPERATOR(pg_catalog.-) 'values')
		   AND pg_catalog.jsonb_typeof(new_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.=) 'array'
		   AND pg_catalog.jsonb_typeof(old_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.=) 'array'
		   AND (new_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.@>) (old_args OPERATOR(pg_catalog.->) 'values');
	END IF;
	RETURN false;
END
$$;

/*
 * What a proposed contract changes, for a CI job to read before
 * set_contract: one row per difference with the current contract (key,
 * policies, transforms, rules, masks), one per part of the proposed
 * document (or, with NULL, of the current contract) that set_contract
 * would refuse against the target as it is now, and one per column the
 * target and the landing table no longer share.  breaking marks what
 * producers or the target's readers would feel (docs/functions.md has the
 * criteria).  A malformed document raises what set_contract raises.
 * Writes nothing: the parts are checked by the checks set_contract runs,
 * each in a subtransaction of its own; a caller who does not own the
 * pipeline (stage_analyst) has the parts the document adds or changes
 * compiled with their own rights, never the owner's.
 */
CREATE FUNCTION stage.contract_diff(pipeline text, contract jsonb DEFAULT NULL)
RETURNS TABLE(change text, object text, name text, column_name text, breaking boolean, detail text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_contract_diff(pipeline text, contract jsonb)
RETURNS TABLE(change text, object text, name text, column_name text, breaking boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
	cur jsonb := stage._do_contract(pipeline) OPERATOR(pg_catalog.-) 'version';
	doc jsonb;
	q stage.pipeline;
	owns boolean := stage._owns(p.owner);
	caller regrole := stage._caller();
	kind text;
	o jsonb;
	n jsonb;
	orank bigint;
	nrank bigint;
	e jsonb;
	parts text[];
	taken text[];
	nm text;
	col record;
	drift_rank CONSTANT jsonb := '{"ignore": 0, "quarantine": 1, "hold": 2}';
BEGIN
	IF contract IS NULL THEN
		doc := cur;
	ELSE
		doc := stage._contract_doc(contract);
		PERFORM stage._check_policies(doc);
	END IF;

	/* the key and the policies */
	name := NULL;
	column_name := NULL;
	IF (cur OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) (doc OPERATOR(pg_catalog.->) 'key') THEN
		change := CASE WHEN (cur OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'null' THEN 'added'
					   WHEN (doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'null' THEN 'removed'
					   ELSE 'changed' END;
		object := 'key';
		breaking := true;
		detail := pg_catalog.format('%s -> %s', cur OPERATOR(pg_catalog.->) 'key', doc OPERATOR(pg_catalog.->) 'key');
		RETURN NEXT;
	END IF;
	FOREACH kind IN ARRAY ARRAY['on_duplicate', 'max_reject_ratio', 'drift'] LOOP
		o := cur OPERATOR(pg_catalog.->) kind;
		n := doc OPERATOR(pg_catalog.->) kind;
		CONTINUE WHEN o OPERATOR(pg_catalog.=) n;
		change := 'changed';
		object := kind;
		IF kind OPERATOR(pg_catalog.=) 'on_duplicate' THEN
			/* rows that were skipped or updated would be quarantined */
			breaking := n OPERATOR(pg_catalog.=) '"quarantine"';
		ELSIF kind OPERATOR(pg_catalog.=) 'max_reject_ratio' THEN
			/* batches that passed would be held */
			breaking := pg_catalog.jsonb_typeof(n) OPERATOR(pg_catalog.=) 'number';
			IF breaking AND pg_catalog.jsonb_typeof(o) OPERATOR(pg_catalog.=) 'number' THEN
				breaking := (n OPERATOR(pg_catalog.#>>) '{}')::numeric OPERATOR(pg_catalog.<) (o OPERATOR(pg_catalog.#>>) '{}')::numeric;
			END IF;
		ELSE
			/* ignore, quarantine, hold: stricter in that order */
			breaking := (drift_rank OPERATOR(pg_catalog.->>) (n OPERATOR(pg_catalog.#>>) '{}'))::integer
						OPERATOR(pg_catalog.>) (drift_rank OPERATOR(pg_catalog.->>) (o OPERATOR(pg_catalog.#>>) '{}'))::integer;
		END IF;
		detail := pg_catalog.format('%s -> %s', o, n);
		RETURN NEXT;
	END LOOP;

	/*
	 * Transforms, rules and masks, matched by name (masks by column).  A
	 * move is a change of rank among the transforms or rules both documents
	 * have.
	 */
	FOREACH kind IN ARRAY ARRAY['transform', 'rule', 'mask'] LOOP
		FOR o, n, orank, nrank IN
			WITH a AS (SELECT x.e, x.i FROM pg_catalog.jsonb_array_elements(cur OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
										   WITH ORDINALITY AS x(e, i)),
				 b AS (SELECT x.e, x.i FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
										   WITH ORDINALITY AS x(e, i)),
				 j AS (SELECT a.e AS ae, a.i AS ai, b.e AS be, b.i AS bi
						 FROM a FULL JOIN b
						   ON (a.e OPERATOR(pg_catalog.->>) CASE kind WHEN 'mask' THEN 'column' ELSE 'name' END)
							  OPERATOR(pg_catalog.=) (b.e OPERATOR(pg_catalog.->>) CASE kind WHEN 'mask' THEN 'column' ELSE 'name' END))
			SELECT j.ae, j.be,
				   CASE WHEN j.ae IS NOT NULL AND j.be IS NOT NULL
						THEN pg_catalog.row_number() OVER (PARTITION BY j.ae IS NOT NULL AND j.be IS NOT NULL ORDER BY j.ai) END,
				   CASE WHEN j.ae IS NOT NULL AND j.be IS NOT NULL
						THEN pg_catalog.row_number() OVER (PARTITION BY j.ae IS NOT NULL AND j.be IS NOT NULL ORDER BY j.bi) END
			  FROM j
			 ORDER BY j.bi, j.ai
		LOOP
			object := kind;
			IF kind OPERATOR(pg_catalog.=) 'mask' THEN
				nrank := orank;		/* masks have no order */
			END IF;
			e := COALESCE(n, o);
			name := CASE WHEN kind OPERATOR(pg_catalog.<>) 'mask' THEN e OPERATOR(pg_catalog.->>) 'name' END;
			column_name := e OPERATOR(pg_catalog.->>) 'column';
			IF o IS NULL OR n IS NULL THEN
				change := CASE WHEN o IS NULL THEN 'added' ELSE 'removed' END;
				detail := CASE kind
					WHEN 'rule' THEN pg_catalog.format('%s %s, %s', e OPERATOR(pg_catalog.->>) 'kind', e OPERATOR(pg_catalog.->) 'args',
													   e OPERATOR(pg_catalog.->>) 'severity')
					ELSE pg_catalog.format('%s %s', e OPERATOR(pg_catalog.->>) 'method', e OPERATOR(pg_catalog.->) 'args') END;
				breaking := CASE kind
					WHEN 'transform' THEN true
					WHEN 'rule' THEN o IS NULL AND (n OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					ELSE n IS NULL END;
				RETURN NEXT;
				CONTINUE;
			END IF;
			parts := '{}';
			IF (o OPERATOR(pg_catalog.->) 'column') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'column') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('column %s -> %s', o OPERATOR(pg_catalog.->) 'column', n OPERATOR(pg_catalog.->) 'column');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'kind') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'kind') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('kind %s -> %s', o OPERATOR(pg_catalog.->>) 'kind', n OPERATOR(pg_catalog.->>) 'kind');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'method') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'method') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('method %s -> %s', o OPERATOR(pg_catalog.->>) 'method', n OPERATOR(pg_catalog.->>) 'method');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'args') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'args') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('args %s -> %s', o OPERATOR(pg_catalog.->) 'args', n OPERATOR(pg_catalog.->) 'args');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'severity') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'severity') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('severity %s -> %s', o OPERATOR(pg_catalog.->>) 'severity', n OPERATOR(pg_catalog.->>) 'severity');
			END IF;
			IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.>) 0 THEN
				change := 'changed';
			ELSIF orank OPERATOR(pg_catalog.<>) nrank THEN
				change := 'moved';
			ELSE
				CONTINUE;
			END IF;
			IF orank OPERATOR(pg_catalog.<>) nrank THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('position %s -> %s', orank, nrank);
			END IF;
			detail := pg_catalog.array_to_string(parts, '; ');
			breaking := CASE kind
				WHEN 'transform' THEN true
				WHEN 'mask' THEN change OPERATOR(pg_catalog.=) 'changed'
				ELSE (n OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					 AND ((o OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.<>) 'reject'
						  OR (o OPERATOR(pg_catalog.->) 'column') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'column')
						  OR (o OPERATOR(pg_catalog.->) 'kind') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'kind')
						  OR ((o OPERATOR(pg_catalog.->) 'args') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'args')
							  AND NOT stage._rule_looser(n OPERATOR(pg_catalog.->>) 'kind', o OPERATOR(pg_catalog.->) 'args',
														 n OPERATOR(pg_catalog.->) 'args')))
				END;
			RETURN NEXT;
		END LOOP;
	END LOOP;

	/*
	 * What set_contract would refuse against the target as it is now: the
	 * key, then each transform, rule and mask in the document's order, by
	 * the same checks, each in a subtransaction that writes nothing.  A
	 * part the current contract already has compiles as the pipeline's
	 * owner, as it would in a batch; a new or changed one as the owner
	 * only when the caller owns the pipeline.
	 */
	change := 'refused';
	breaking := true;
	q := p;
	q.key := stage._contract_key(doc);
	BEGIN
		PERFORM stage._check_key(p.target, q.key);
	EXCEPTION WHEN OTHERS THEN
		object := 'key';
		name := NULL;
		column_name := NULL;
		detail := SQLERRM;
		RETURN NEXT;
	END;
	FOREACH kind IN ARRAY ARRAY['transform', 'rule', 'mask'] LOOP
		taken := '{}';
		FOR e IN SELECT x.e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
									WITH ORDINALITY AS x(e, i) ORDER BY x.i LOOP
			q.owner := CASE WHEN owns OR EXISTS (
								SELECT 1 FROM pg_catalog.jsonb_array_elements(cur OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's')) AS c(item)
								 WHERE c.item OPERATOR(pg_catalog.=) e)
							THEN p.owner ELSE caller END;
			BEGIN
				IF kind OPERATOR(pg_catalog.=) 'transform' THEN
					nm := stage._check_transform(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'method',
												 e OPERATOR(pg_catalog.->) 'args', e OPERATOR(pg_catalog.->>) 'name', taken);
				ELSIF kind OPERATOR(pg_catalog.=) 'rule' THEN
					nm := stage._check_rule(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'kind',
											e OPERATOR(pg_catalog.->) 'args', e OPERATOR(pg_catalog.->>) 'severity',
											e OPERATOR(pg_catalog.->>) 'name', taken);
				ELSE
					PERFORM stage._check_mask(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'method',
											  e OPERATOR(pg_catalog.->) 'args', taken);
					nm := e OPERATOR(pg_catalog.->>) 'column';
				END IF;
				taken := taken OPERATOR(pg_catalog.||) nm;
			EXCEPTION WHEN OTHERS THEN
				object := kind;
				name := CASE WHEN kind OPERATOR(pg_catalog.<>) 'mask' THEN e OPERATOR(pg_catalog.->>) 'name' END;
				column_name := e OPERATOR(pg_catalog.->>) 'column';
				detail := SQLERRM;
				RETURN NEXT;
			END;
		END LOOP;
	END LOOP;

	/* the target and the landing table (format columns: one text column per target column) */
	IF p.format OPERATOR(pg_catalog.<>) 'columns' THEN
		RETURN;
	END IF;
	change := 'not_in_landing';
	object := 'column';
	name := NULL;
	FOR col IN SELECT t.attname::text AS col,
					t.attnotnull AND NOT t.atthasdef AND t.attidentity OPERATOR(pg_catalog.=) '' AS required,
					(SELECT r.e OPERATOR(pg_catalog.->>) 'name'
					   FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'rules') AS r(e)
					  WHERE (r.e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.=) t.attname::text
						AND (r.e OPERATOR(pg_catalog.->>) 'kind') OPERATOR(pg_catalog.=) 'not_null'
						AND (r.e OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					  LIMIT 1) AS not_null_rule
			   FROM pg_catalog.pg_attribute t
			  WHERE t.attrelid OPERATOR(pg_catalog.=) p.target AND t.attnum OPERATOR(pg_catalog.>) 0
				AND NOT t.attisdropped AND t.attgenerated OPERATOR(pg_catalog.=) ''
				AND t.attidentity OPERATOR(pg_catalog.<>) 'a'
				AND t.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_batch']::name[])
				AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute l
								 WHERE l.attrelid OPERATOR(pg_catalog.=) p.landing
								   AND l.attname OPERATOR(pg_catalog.=) t.attname
								   AND l.attnum OPERATOR(pg_catalog.>) 0 AND NOT l.attisdropped)
			  ORDER BY t.attnum LOOP
		column_name := col.col;
		breaking := col.required OR col.not_null_rule IS NOT NULL;
		detail := CASE
			WHEN col.required THEN 'producers cannot send it, and it is NOT NULL without a default: the target refuses every row'
			WHEN col.not_null_rule IS NOT NULL THEN
				pg_catalog.format('producers cannot send it, and rule "%s" quarantines every row without it', col.not_null_rule)
			ELSE 'producers cannot send it: every row gets its default' END;
		RETURN NEXT;
	END LOOP;
	change := 'not_in_target';
	object := 'landing_column';
	breaking := false;
	detail := 'no target column and no transform reads it: what producers land in it is not moved';
	FOR col IN SELECT l.attname::text AS col
			   FROM pg_catalog.pg_attribute l
			  WHERE l.attrelid OPERATOR(pg_catalog.=) p.landing AND l.attnum OPERATOR(pg_catalog.>) 0
				AND NOT l.attisdropped AND l.attname::text OPERATOR(pg_catalog.!~~) '\_stage\_%'
				AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute t
								 WHERE t.attrelid OPERATOR(pg_catalog.=) p.target
								   AND t.attname OPERATOR(pg_catalog.=) l.attname
								   AND t.attnum OPERATOR(pg_catalog.>) 0 AND NOT t.attisdropped)
				AND NOT EXISTS (
					SELECT 1 FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'transforms') AS x(e)
					 WHERE (x.e OPERATOR(pg_catalog.->>) 'method') OPERATOR(pg_catalog.=) ANY (ARRAY['from', 'concat', 'coalesce'])
					   AND ((x.e OPERATOR(pg_catalog.#>>) '{args,column}') OPERATOR(pg_catalog.=) l.attname::text
							OR (pg_catalog.jsonb_typeof(x.e OPERATOR(pg_catalog.#>) '{args,columns}') OPERATOR(pg_catalog.=) 'array'
								AND (x.e OPERATOR(pg_catalog.#>) '{args,columns}') OPERATOR(pg_catalog.?) l.attname::text)))
			  ORDER BY l.attnum LOOP
		column_name := col.col;
		RETURN NEXT;
	END LOOP;
END
$$;

CREATE FUNCTION stage.check_row(pipeline text, row_data jsonb)
RETURNS jsonb LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_check_row';
COMMENT ON FUNCTION stage.check_row(text, jsonb) IS
	'the failures of one candidate row under the current contract ([] when it passes); no side effects';

/* what a batch would make of one row under the current contract: owners only */
CREATE FUNCTION stage.preview(pipeline text, row_data jsonb)
RETURNS jsonb LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_preview';
COMMENT ON FUNCTION stage.preview(text, jsonb) IS
	'the row as a batch would write it (masked), the values its transforms changed, and its reasons; writes nothing';
/* --------------------------------------------------------- transforms */

/*
 * The per-value transform methods of a contract (docs/transforms.md) as
 * one SQL function: compiled once per call site (method and args cached),
 * applied to one value.  A value the method cannot transform raises the
 * error a batch would quarantine it for; the structural and set-wise
 * methods (from, concat, coalesce, lookup, expression) run only in a
 * batch.  STABLE, not IMMUTABLE: regex_replace obeys the stage.regex_*
 * limits and lower/upper follow the collation.  Pure computation on its
 * arguments, so executable by PUBLIC.
 */
CREATE FUNCTION stage.transform(value text, method text, args jsonb DEFAULT '{}')
RETURNS text LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_transform';
COMMENT ON FUNCTION stage.transform(text, text, jsonb) IS
	'one value through one transform method (trim, lower, upper, squish, normalize, replace, regex_replace, nullif, default, map, number, boolean, date, timestamp)';
/* --------------------------------------------------------------- runs */

CREATE FUNCTION stage.run_batch(pipeline text, max_rows integer DEFAULT NULL)
RETURNS TABLE(batch_id bigint, rows_in bigint, rows_clean bigint,
			  rows_quarantined bigint, rows_duplicate bigint, status text)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_run_batch';
COMMENT ON FUNCTION stage.run_batch(text, integer) IS
	'moves the next chunk of committed landing rows to the target or to quarantine, exactly once';

CREATE FUNCTION stage.run_all()
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.run_all() IS 'runs batches for every enabled pipeline the caller owns until none has pending rows; returns rows processed';
CREATE FUNCTION stage._do_run_all()
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
				AND stage._owns(x.owner)
			  ORDER BY x.pipeline_id
	LOOP
		LOOP
			/* one failing pipeline must not stop the others */
			BEGIN
				SELECT * INTO r FROM stage.run_batch(p.name);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
				/* back off and, after stage.max_failures, pause: as the worker does */
				IF stage._record_failure(p.pipeline_id, msg, state,
						COALESCE(pg_catalog.current_setting('stage.max_failures', true), '5')::integer,
						stage._caller()::text) THEN
					/* the text may quote a masked value: owners read it in stage.batches */
					msg := stage._withheld(state);
				END IF;
				RAISE WARNING 'stage: batch of pipeline "%" failed: %', p.name, msg
					USING ERRCODE = state;
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

/*
 * A failed batch, recorded in the caller's (sub)transaction by run_all and
 * in a fresh one by the worker: a batch row with the error, one more
 * failure, a back-off of 2^failures seconds (at most 5 minutes) and, after
 * max_failures in a row, a pause with the reason.  Returns whether the
 * pipeline masks columns: then the error's text may quote a masked value
 * and is not repeated where others see it (reason.c).
 */
CREATE FUNCTION stage._record_failure(pipeline_id integer, message text, sqlstate text,
									  max_failures integer, run_by name)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.batch (pipeline_id, contract_version, status, started_at, error, sqlstate,
							 run_by)
	SELECT x.pipeline_id, x.contract_version, 'failed', pg_catalog.clock_timestamp(),
		   _record_failure.message, _record_failure.sqlstate, _record_failure.run_by
	  FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id;
	UPDATE stage.pipeline x
	   SET failures = x.failures OPERATOR(pg_catalog.+) 1,
		   retry_at = pg_catalog.now() OPERATOR(pg_catalog.+)
			   pg_catalog.make_interval(secs => LEAST(300, 2 OPERATOR(pg_catalog.^) x.failures)),
		   enabled = (x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.<) max_failures),
		   paused_reason = CASE
			   WHEN x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) max_failures
			   THEN pg_catalog.format('paused after %s consecutive failed batches; last: %s (SQLSTATE %s)',
									  x.failures OPERATOR(pg_catalog.+) 1, message, sqlstate)
			   ELSE x.paused_reason END
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id;
	RETURN EXISTS (SELECT 1 FROM stage.mask m
					WHERE m.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id);
END
$$;

/*
 * Where a landing row went: target, quarantine or duplicate, with its
 * quarantine item's status; a row replayed out of quarantine adds the
 * replay batch, an item repaired or superseded adds the row that closed it
 * (landing_row), and so on down the chain; a row no batch has taken yet is
 * pending.  role: the role that landed the row (_stage_role; for a repair
 * copy, the role that repaired).  columns: what the current contract's
 * transforms make of the row's values (for each column they change,
 * {"landed", "value"}).
 */
CREATE FUNCTION stage.trace(pipeline text, landing_id bigint)
RETURNS TABLE(landing_row bigint, batch_id bigint, outcome text, status text, source text,
			  role name, received_at timestamptz, contract_version integer, target regclass,
			  columns jsonb, note text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_trace(pipeline text, landing_id bigint)
RETURNS TABLE(landing_row bigint, batch_id bigint, outcome text, status text, source text,
			  role name, received_at timestamptz, contract_version integer, target regclass,
			  columns jsonb, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	cur bigint := _do_trace.landing_id;
	steps integer := 0;
	l record;
	q record;
	cols jsonb;
	found_batch boolean;
	transforms boolean := EXISTS (SELECT 1 FROM stage.transform t
								   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id);
BEGIN
	/* a chain is as long as the repairs and supersessions made it; bounded all the same */
	WHILE cur IS NOT NULL AND steps OPERATOR(pg_catalog.<) 1000 LOOP
		steps := steps OPERATOR(pg_catalog.+) 1;
		EXECUTE pg_catalog.format(
			'SELECT l._stage_txid, l._stage_source, l._stage_role::pg_catalog.name AS role,
					l._stage_received_at, %s AS key,
					%s AS row_data FROM %s l
			  WHERE l._stage_id OPERATOR(pg_catalog.=) $1',
			stage._lane_key_sql(p),
			CASE WHEN p.format OPERATOR(pg_catalog.=) 'jsonb' THEN 'l.payload'
				 ELSE 'pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.-) ARRAY[''_stage_id'', ''_stage_txid'','
					  ' ''_stage_source'', ''_stage_received_at'', ''_stage_role'']' END,
			p.landing)
		INTO l USING cur;
		IF l IS NULL THEN
			RETURN;
		END IF;
		cols := NULL;
		IF transforms AND pg_catalog.jsonb_typeof(l.row_data) OPERATOR(pg_catalog.=) 'object' THEN
			cols := stage.preview(pipeline, l.row_data) OPERATOR(pg_catalog.->) 'transformed';
		END IF;
		q := NULL;
		SELECT x.status, x.successor_id, x.closed_batch_id, x.note INTO q
		  FROM stage.quarantine_log x
		 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND x.landing_id OPERATOR(pg_catalog.=) cur;
		found_batch := false;
		FOR landing_row, batch_id, outcome, status, source, role, received_at, contract_version,
			target, columns, note IN
			SELECT cur, b.batch_id,
				   CASE WHEN q.status IS NOT NULL THEN 'quarantine'
						WHEN EXISTS (SELECT 1 FROM stage.duplicate_log d
									  WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
										AND d.landing_id OPERATOR(pg_catalog.=) cur) THEN 'duplicate'
						ELSE 'target' END,
				   q.status, l._stage_source, l.role, l._stage_received_at, b.contract_version, p.target,
				   COALESCE(cols, '{}'), q.note
			  FROM stage.batch b
			 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND b.status OPERATOR(pg_catalog.=) 'done' AND b.kind OPERATOR(pg_catalog.=) 'batch'
			   AND pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_hi)
			   AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_lo)
			   AND ROW(l._stage_txid, cur) OPERATOR(pg_catalog.>) ROW(b.from_txid, b.from_id)
			   AND ROW(l._stage_txid, cur) OPERATOR(pg_catalog.<=) ROW(b.to_txid, b.to_id)
			   /* a window worked in lanes: the batch of the row's lane */
			   AND (b.lane IS NULL
					OR b.lane OPERATOR(pg_catalog.=) stage._lane(b.lanes, l.key, cur))
		LOOP
			found_batch := true;
			RETURN NEXT;
		END LOOP;
		IF NOT found_batch THEN
			/* landed, not yet taken by a batch */
			RETURN QUERY SELECT cur, NULL::bigint, 'pending'::text, NULL::text, l._stage_source,
								l.role, l._stage_received_at, NULL::integer, p.target,
								COALESCE(cols, '{}'), NULL::text;
			RETURN;
		END IF;
		IF q.status OPERATOR(pg_catalog.=) 'replayed' THEN
			/* the row itself left quarantine in a replay */
			RETURN QUERY
			SELECT cur, b.batch_id,
				   CASE WHEN EXISTS (SELECT 1 FROM stage.duplicate_log d
									  WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
										AND d.landing_id OPERATOR(pg_catalog.=) cur) THEN 'duplicate'
						ELSE 'target' END,
				   NULL::text, l._stage_source, l.role, l._stage_received_at, b.contract_version, p.target,
				   COALESCE(cols, '{}'), NULL::text
			  FROM stage.batch b
			 WHERE b.batch_id OPERATOR(pg_catalog.=) q.closed_batch_id;
			RETURN;
		END IF;
		/* a repair copy (pending or loaded) or the row that superseded it */
		cur := CASE WHEN q.status OPERATOR(pg_catalog.=) ANY (ARRAY['open', 'repaired', 'superseded'])
					THEN q.successor_id END;
	END LOOP;
END
$$;

/*
 * Who landed what: the landing rows of a pipeline by source and role
 * (_stage_role, set by its default only), with their count and first and
 * last arrival.  A scan of the landing table.  For the roles that may see
 * the pipeline's outcomes (owners, stage_analyst), as stage.trace and the
 * views are; stage.sources shows it for every pipeline the caller may see.
 */
CREATE FUNCTION stage.landing_sources(pipeline text)
RETURNS TABLE(source text, role name, rows bigint, first_received_at timestamptz,
			  last_received_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_landing_sources(pipeline text)
RETURNS TABLE(source text, role name, rows bigint, first_received_at timestamptz,
			  last_received_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
BEGIN
	IF NOT stage._may_see(p.owner) THEN
		RAISE EXCEPTION 'permission denied for pipeline "%"', pipeline
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'stage.landing_sources is for the pipeline''s owners and members of stage_analyst.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT l._stage_source, l._stage_role::pg_catalog.name, pg_catalog.count(*),
				pg_catalog.min(l._stage_received_at), pg_catalog.max(l._stage_received_at)
		   FROM %s l GROUP BY 1, 2 ORDER BY 1, 2', p.landing);
END
$$;

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
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_replay(pipeline text, ids bigint[],
							 batch_id bigint, rule_name text,
							 dry_run boolean)
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
	   AND q.status OPERATOR(pg_catalog.=) 'open'
	   AND (_do_replay.ids IS NULL OR q.landing_id OPERATOR(pg_catalog.=) ANY (_do_replay.ids))
	   AND (_do_replay.batch_id IS NULL OR q.batch_id OPERATOR(pg_catalog.=) _do_replay.batch_id)
	   AND (_do_replay.rule_name IS NULL
			OR q.reasons OPERATOR(pg_catalog.@>)
			   pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('rule', _do_replay.rule_name)));
	IF todo IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT * FROM stage._replay(pipeline, todo, COALESCE(dry_run, false));
END
$$;

/* ------------------------------------------ the quarantine's lifecycle */

/*
 * Repair bad data without touching landing: each open item's row as it
 * landed, with the corrections (column -> value) applied, lands again as a
 * new landing row (same source); the item keeps it as its successor and is
 * repaired when that copy moves clean (the next batch).  Returns per item
 * the copy's landing id and what the current contract says of it (the
 * target's own constraints aside); dry_run lands nothing.
 */
CREATE FUNCTION stage.repair(pipeline text, landing_ids bigint[], corrections jsonb,
							 note text DEFAULT NULL, dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_repair(pipeline text, landing_ids bigint[], corrections jsonb,
								 note text, dry_run boolean)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	landing_cols text[];
	bad text;
	fix jsonb;
	q record;
	fixed jsonb;
	copy_id bigint;
	why jsonb;
BEGIN
	IF landing_ids IS NULL OR corrections IS NULL THEN
		RAISE EXCEPTION 'landing_ids and corrections must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'For example stage.repair(''orders'', ARRAY[17], ''{"amount": "19.90"}'', ''typo fixed with the partner'').';
	END IF;
	IF pg_catalog.jsonb_typeof(corrections) OPERATOR(pg_catalog.<>) 'object'
	   OR corrections OPERATOR(pg_catalog.=) '{}'::jsonb THEN
		RAISE EXCEPTION 'corrections must be a JSON object of column names and values'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''{"amount": "19.90", "currency": "EUR"}''; a JSON null makes the value NULL.';
	END IF;
	/* values as landing text: strings as they are, other scalars as their JSON text */
	SELECT pg_catalog.jsonb_object_agg(e.key,
			CASE pg_catalog.jsonb_typeof(e.value)
				 WHEN 'null' THEN 'null'::jsonb
				 WHEN 'string' THEN e.value
				 ELSE pg_catalog.to_jsonb(e.value #>> '{}') END)
	  INTO fix FROM pg_catalog.jsonb_each(corrections) e;
	IF p.format OPERATOR(pg_catalog.=) 'columns' THEN
		SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) INTO landing_cols
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing AND a.attnum OPERATOR(pg_catalog.>) 0
		   AND NOT a.attisdropped AND a.attname::text OPERATOR(pg_catalog.!~~) '\_stage\_%';
		SELECT k INTO bad FROM pg_catalog.jsonb_object_keys(fix) k
		 WHERE k OPERATOR(pg_catalog.<>) ALL (landing_cols) LIMIT 1;
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION 'column "%" is not a column of the landing table of pipeline "%"', bad, pipeline
				USING ERRCODE = 'undefined_column',
					  HINT = pg_catalog.format('Its columns are %s.', pg_catalog.array_to_string(landing_cols, ', '));
		END IF;
		SELECT e.key INTO bad FROM pg_catalog.jsonb_each(corrections) e
		 WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) ANY (ARRAY['object', 'array'])
		 LIMIT 1;
	ELSE
		fix := corrections;		/* a payload takes any JSON value */
	END IF;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'the correction of column "%" is not a scalar', bad
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A landing column holds text: give a string, a number, a boolean or null.';
	END IF;

	FOR q IN SELECT x.landing_id, x.source, x.raw_data, x.raw_payload
			   FROM stage.quarantine_log x
			  WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND x.landing_id OPERATOR(pg_catalog.=) ANY (_do_repair.landing_ids)
				AND x.status OPERATOR(pg_catalog.=) 'open'
			  ORDER BY x.landing_id
			  FOR UPDATE
	LOOP
		IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
			fixed := CASE WHEN pg_catalog.jsonb_typeof(q.raw_payload) OPERATOR(pg_catalog.=) 'object'
						  THEN q.raw_payload OPERATOR(pg_catalog.||) fix ELSE fix END;
		ELSE
			fixed := q.raw_data OPERATOR(pg_catalog.||) fix;
		END IF;
		why := stage.check_row(pipeline, fixed);
		copy_id := NULL;
		IF NOT COALESCE(dry_run, false) THEN
			IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
				EXECUTE pg_catalog.format(
					'INSERT INTO %s (payload, _stage_source, _stage_role) VALUES ($1, $2, $3) RETURNING _stage_id',
					p.landing)
				INTO copy_id USING fixed, q.source, stage._caller()::pg_catalog.text;
			ELSE
				EXECUTE pg_catalog.format(
					'INSERT INTO %1$s (%2$s, _stage_source, _stage_role)
					 SELECT %3$s, $2, $3 FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) r
					 RETURNING _stage_id',
					p.landing,
					(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(landing_cols) c),
					(SELECT pg_catalog.string_agg('r.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c), ', ')
					   FROM pg_catalog.unnest(landing_cols) c))
				INTO copy_id USING fixed, q.source, stage._caller()::pg_catalog.text;
			END IF;
			UPDATE stage.quarantine_log x
			   SET successor_id = copy_id,
				   note = COALESCE(_do_repair.note, x.note)
			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND x.landing_id OPERATOR(pg_catalog.=) q.landing_id;
		END IF;
		RETURN QUERY SELECT q.landing_id, copy_id,
							CASE WHEN why OPERATOR(pg_catalog.=) '[]'::jsonb THEN 'clean'
								 ELSE 'quarantine' END,
							why;
	END LOOP;
END
$$;

CREATE FUNCTION stage._repair_values(pipeline text, ids bigint[], expr text)
RETURNS TABLE(landing_id bigint, value text)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_repair_values';

/*
 * Bulk repair: the open items failing a rule, each corrected by SQL
 * expressions over its row as it landed (fix: column -> expression, the
 * row's columns as text), evaluated as the pipeline owner with the
 * isolation of expression rules; then as stage.repair.
 */
CREATE FUNCTION stage.repair_where(pipeline text, rule_name text, fix jsonb,
								   note text DEFAULT NULL, dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_repair_where(pipeline text, rule_name text, fix jsonb,
									   note text, dry_run boolean)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	ids bigint[];
	f record;
	v record;
	acc jsonb := '{}';
	id bigint;
BEGIN
	IF rule_name IS NULL OR fix IS NULL THEN
		RAISE EXCEPTION 'rule_name and fix must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'For example stage.repair_where(''orders'', ''amount_type'', ''{"amount": "replace(amount, ,, .)"}'', ''decimal commas'').';
	END IF;
	IF pg_catalog.jsonb_typeof(fix) OPERATOR(pg_catalog.<>) 'object' OR fix OPERATOR(pg_catalog.=) '{}'::jsonb
	   OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(fix) e
				   WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.<>) 'string') THEN
		RAISE EXCEPTION 'fix must be a JSON object of column names and SQL expressions'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Each expression reads the row''s columns as text, e.g. {"amount": "replace(amount, '','', ''.'')"}.';
	END IF;
	IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
		RAISE EXCEPTION 'repair_where needs a pipeline of format columns'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Correct the payloads of a jsonb pipeline with stage.repair.';
	END IF;
	SELECT pg_catalog.array_agg(q.landing_id ORDER BY q.landing_id) INTO ids
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.status OPERATOR(pg_catalog.=) 'open'
	   AND q.reasons OPERATOR(pg_catalog.@>)
		   pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('rule', _do_repair_where.rule_name));
	IF ids IS NULL THEN
		RETURN;
	END IF;
	FOR f IN SELECT e.key, e.value FROM pg_catalog.jsonb_each_text(fix) e ORDER BY e.key LOOP
		FOR v IN SELECT * FROM stage._repair_values(pipeline, ids, f.value) LOOP
			acc := acc OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(v.landing_id::text,
				COALESCE(acc OPERATOR(pg_catalog.->) v.landing_id::text, '{}'::jsonb)
				OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(f.key, v.value));
		END LOOP;
	END LOOP;
	FOREACH id IN ARRAY ids LOOP
		RETURN QUERY SELECT * FROM stage._do_repair(pipeline, ARRAY[id],
			acc OPERATOR(pg_catalog.->) id::text, note, dry_run);
	END LOOP;
END
$$;

/* close open items for good: rows that should never load; returns how many */
CREATE FUNCTION stage.dismiss(pipeline text, landing_ids bigint[], note text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_dismiss(pipeline text, landing_ids bigint[], note text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	n bigint;
	pending record;
BEGIN
	IF landing_ids IS NULL OR note IS NULL OR pg_catalog.btrim(note, E' \t\n\r\f\v') OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'landing_ids and a note must be given'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Say why the rows must never load, for example stage.dismiss(''orders'', ARRAY[17], ''test order from the partner'').';
	END IF;
	/* a repair copy still on its way would load all the same: not while it is pending */
	SELECT q.landing_id, q.successor_id INTO pending
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) ANY (_do_dismiss.landing_ids)
	   AND q.status OPERATOR(pg_catalog.=) 'open' AND q.successor_id IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log c
					    WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND c.landing_id OPERATOR(pg_catalog.=) q.successor_id)
	   AND NOT EXISTS (SELECT 1 FROM stage.duplicate_log d
					    WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND d.landing_id OPERATOR(pg_catalog.=) q.successor_id)
	 ORDER BY q.landing_id LIMIT 1;
	IF pending.landing_id IS NOT NULL THEN
		RAISE EXCEPTION 'item % of pipeline "%" has a repair copy that has not moved yet (landing row %)',
			pending.landing_id, pipeline, pending.successor_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Run a batch first (stage.run_batch): the copy then repairs the item or is quarantined itself; dismiss what is still open after that.';
	END IF;
	UPDATE stage.quarantine_log q
	   SET status = 'dismissed', closed_at = pg_catalog.now(),
		   closed_by = stage._caller()::text, note = _do_dismiss.note
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) ANY (_do_dismiss.landing_ids)
	   AND q.status OPERATOR(pg_catalog.=) 'open';
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n OPERATOR(pg_catalog.<) (SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i) THEN
		RAISE NOTICE 'landing ids that are no open quarantine item of pipeline "%", left as they are: % of %',
			pipeline,
			(SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i) OPERATOR(pg_catalog.-) n,
			(SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i);
	END IF;
	RETURN n;
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
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_purge(pipeline text)
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
			  WHERE (_do_purge.pipeline IS NULL OR x.name OPERATOR(pg_catalog.=) _do_purge.pipeline)
				AND stage._owns(x.owner)
			  ORDER BY x.pipeline_id
	LOOP
		n := n OPERATOR(pg_catalog.+) stage._purge_landing(p.pipeline_id);
		/* closed quarantine items go after the same retention; open ones never expire */
		DELETE FROM stage.quarantine_log q
		 USING stage.pipeline x
		 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND q.pipeline_id OPERATOR(pg_catalog.=) x.pipeline_id
		   AND q.status OPERATOR(pg_catalog.<>) 'open'
		   AND q.closed_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) x.retention);
	END LOOP;
	RETURN n;
END
$$;

CREATE FUNCTION stage.set_retention(pipeline text, retention interval)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_retention(pipeline text, retention interval)
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
	UPDATE stage.pipeline x SET retention = _do_set_retention.retention
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

/* how many movers may work one window of the pipeline at once */
CREATE FUNCTION stage.set_lanes(pipeline text, lanes integer)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_lanes(pipeline text, lanes integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF lanes IS NULL OR lanes OPERATOR(pg_catalog.<) 1 OR lanes OPERATOR(pg_catalog.>) 64 THEN
		RAISE EXCEPTION 'lanes must be between 1 and 64'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'One lane per mover that should work the pipeline at once, for example stage.set_lanes(''orders'', 2).';
	END IF;
	/* the open window keeps its lanes; the next one has these */
	UPDATE stage.pipeline x SET lanes = _do_set_lanes.lanes
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

/* rows of a pipeline's landing table not yet taken by a batch */
CREATE FUNCTION stage.backlog(pipeline text)
RETURNS bigint
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_backlog(pipeline text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	n bigint;
BEGIN
	IF p.win_hi IS NOT NULL AND p.win_lanes OPERATOR(pg_catalog.>) 1 THEN
		/* a window worked in lanes: a row is taken when its lane has passed it */
		EXECUTE pg_catalog.format(
			'SELECT pg_catalog.count(*) FROM %s l
			  WHERE l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)
				AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $1)
				AND (NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2)
					 OR NOT EXISTS (
						SELECT 1 FROM stage.lane x
						 WHERE x.pipeline_id OPERATOR(pg_catalog.=) $3
						   AND x.lane OPERATOR(pg_catalog.=) stage._lane($4, %s, l._stage_id)
						   AND (x.done OR ROW(l._stage_txid, l._stage_id)
										  OPERATOR(pg_catalog.<=) ROW(x.cur_txid, x.cur_id))))',
			p.landing, stage._lane_key_sql(p))
		INTO n USING p.win_lo, p.win_hi, p.pipeline_id, p.win_lanes;
		RETURN n;
	END IF;
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
/* ------------------------------------------------ checks as functions */

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

CREATE FUNCTION stage.luhn_valid(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_luhn_valid';


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

CREATE FUNCTION stage._quarantine(pipeline_id integer)
RETURNS TABLE(landing_id bigint, batch_id bigint, contract_version integer, source text,
			  received_at timestamptz, row_data jsonb, reasons jsonb,
			  quarantined_at timestamptz, status text, successor_id bigint,
			  closed_at timestamptz, closed_by text, note text, role text)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_rows';
COMMENT ON FUNCTION stage._quarantine(integer) IS
	'a pipeline''s quarantine items (every status) for its owner and stage_analyst members, masked with the current masks';

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
/* ------------------------------------------- the landing follows the target */

/*
 * The target's columns a landing table mirrors (as landing.c mirrors
 * them: no generated, always-identity or lineage columns), by attribute
 * number: what stage.pipeline.target_columns remembers, so that a later
 * ALTER TABLE tells a renamed column (same number, new name) from a
 * dropped and an added one.
 */
CREATE FUNCTION stage._target_columns(target regclass)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'attnum', a.attnum, 'name', a.attname,
				'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum),
			'[]'::jsonb)
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) target AND a.attnum OPERATOR(pg_catalog.>) 0
	   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
	   AND a.attidentity OPERATOR(pg_catalog.<>) 'a'
	   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_batch']::name[])
$$;

/*
 * Bring one pipeline in step with its target after an ALTER TABLE of it:
 *   a column added    the landing table gets it (text; INSERT for whoever
 *                     may land rows), a new contract version;
 *   a column renamed  the landing column, the key and the rules, masks and
 *                     transforms on it are renamed with it, a new version;
 *   a column retyped  its rules and masks are checked against the new type
 *                     (the change is refused if one no longer applies), a
 *                     new version;
 *   a column dropped  refused while the key, a rule, a mask or a transform
 *                     names it; else the landing column stays (for replay;
 *                     values producers still send there are counted as
 *                     drift by the batches), a new version.
 * Raises to refuse the ALTER TABLE; returns what changed.
 */
CREATE FUNCTION stage._follow_target(pipeline_id integer)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	was jsonb;
	now_cols jsonb;
	c record;
	changes text[] := '{}';
	v integer;
	landing_has boolean;
BEGIN
	SELECT * INTO p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _follow_target.pipeline_id FOR UPDATE;
	now_cols := stage._target_columns(p.target);
	was := COALESCE(p.target_columns, now_cols);
	IF was OPERATOR(pg_catalog.=) now_cols THEN
		RETURN changes;
	END IF;
	FOR c IN
		SELECT o.value OPERATOR(pg_catalog.->>) 'name' AS old_name,
			   n.value OPERATOR(pg_catalog.->>) 'name' AS new_name,
			   o.value OPERATOR(pg_catalog.->>) 'type' AS old_type,
			   n.value OPERATOR(pg_catalog.->>) 'type' AS new_type
		  FROM pg_catalog.jsonb_array_elements(was) o
		  FULL JOIN pg_catalog.jsonb_array_elements(now_cols) n
			ON (o.value OPERATOR(pg_catalog.->) 'attnum') OPERATOR(pg_catalog.=) (n.value OPERATOR(pg_catalog.->) 'attnum')
		 ORDER BY COALESCE((n.value OPERATOR(pg_catalog.->>) 'attnum')::integer,
						   (o.value OPERATOR(pg_catalog.->>) 'attnum')::integer)
	LOOP
		IF c.old_name IS NULL THEN
			/* added */
			IF p.format OPERATOR(pg_catalog.=) 'columns' THEN
				landing_has := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
										WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
										  AND a.attname OPERATOR(pg_catalog.=) c.new_name
										  AND NOT a.attisdropped);
				IF NOT landing_has THEN
					PERFORM stage._add_landing_column(p.landing, c.new_name);
				END IF;
			END IF;
			changes := changes OPERATOR(pg_catalog.||) pg_catalog.format('column %s added', c.new_name);
		ELSIF c.new_name IS NULL THEN
			/* dropped: refused while the contract names it */
			IF c.old_name OPERATOR(pg_catalog.=) ANY (p.key)
			   OR EXISTS (SELECT 1 FROM stage.rule r
						   WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND r.column_name OPERATOR(pg_catalog.=) c.old_name)
			   OR EXISTS (SELECT 1 FROM stage.mask m
						   WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND m.column_name OPERATOR(pg_catalog.=) c.old_name)
			   OR EXISTS (SELECT 1 FROM stage.transform t
						   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND t.column_name OPERATOR(pg_catalog.=) c.old_name) THEN
				RAISE EXCEPTION 'column "%" of % is named by the contract of pipeline "%"',
					c.old_name, p.target, p.name
					USING ERRCODE = 'dependent_objects_still_exist',
						  DETAIL = 'Its key, a rule, a mask or a transform applies to the column.',
						  HINT = 'Drop them first (stage.drop_rule, stage.drop_mask, stage.drop_transform; see stage.contract()), then the column.';
			END IF;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s dropped (its landing column stays)', c.old_name);
		ELSIF c.old_name OPERATOR(pg_catalog.<>) c.new_name THEN
			/* renamed: everything that names it follows */
			IF EXISTS (SELECT 1 FROM stage.transform t
						WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND t.column_name OPERATOR(pg_catalog.<>) c.old_name
						  AND t.args::text OPERATOR(pg_catalog.~~)
							  ('%' OPERATOR(pg_catalog.||) pg_catalog.to_jsonb(c.old_name)::text OPERATOR(pg_catalog.||) '%')) THEN
				RAISE EXCEPTION 'column "%" of % is read by a transform of pipeline "%"',
					c.old_name, p.target, p.name
					USING ERRCODE = 'dependent_objects_still_exist',
						  HINT = 'Drop or change the transform that reads it (stage.drop_transform, stage.alter_transform), then rename the column.';
			END IF;
			IF p.format OPERATOR(pg_catalog.=) 'columns'
			   AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
							WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
							  AND a.attname OPERATOR(pg_catalog.=) c.old_name AND NOT a.attisdropped)
			   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
								WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
								  AND a.attname OPERATOR(pg_catalog.=) c.new_name AND NOT a.attisdropped) THEN
				EXECUTE pg_catalog.format('ALTER TABLE %s RENAME COLUMN %I TO %I',
										  p.landing, c.old_name, c.new_name);
			END IF;
			UPDATE stage.rule r SET column_name = c.new_name
			 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND r.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.mask m SET column_name = c.new_name
			 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND m.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.transform t SET column_name = c.new_name
			 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND t.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.pipeline x
			   SET key = pg_catalog.array_replace(x.key, c.old_name, c.new_name)
			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s renamed to %s', c.old_name, c.new_name);
		ELSIF c.old_type OPERATOR(pg_catalog.<>) c.new_type THEN
			/* retyped: its rules and masks must still apply (the validators raise) */
			PERFORM stage._validate_rule(p.target, r.column_name, r.kind, r.args, p.owner)
			   FROM stage.rule r
			  WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND r.column_name OPERATOR(pg_catalog.=) c.new_name;
			PERFORM stage._validate_mask(p.target, m.column_name, m.method, m.args, p.owner)
			   FROM stage.mask m
			  WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND m.column_name OPERATOR(pg_catalog.=) c.new_name;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s retyped from %s to %s', c.new_name, c.old_type, c.new_type);
		END IF;
	END LOOP;
	UPDATE stage.pipeline x SET target_columns = now_cols, target_changed_at = pg_catalog.now()
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	IF pg_catalog.cardinality(changes) OPERATOR(pg_catalog.>) 0 THEN
		/* recorded as the caller's, the role that altered the table */
		PERFORM stage._new_version(p.pipeline_id);
	END IF;
	RETURN changes;
END
$$;

/*
 * Bring the pipelines of a target table in step with it now (the event
 * trigger below does after every ALTER TABLE); for a member of the
 * table's owner role.  Returns what changed, one line per change.
 */
CREATE FUNCTION stage.follow_target(target regclass)
RETURNS text[]
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_follow_target(target regclass)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	x record;
	changes text[] := '{}';
BEGIN
	IF target IS NULL THEN
		RAISE EXCEPTION 'target must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM stage.pipeline p WHERE p.target OPERATOR(pg_catalog.=) _do_follow_target.target) THEN
		RETURN changes;
	END IF;
	IF NOT pg_catalog.pg_has_role(stage._caller(),
			(SELECT c.relowner FROM pg_catalog.pg_class c
			  WHERE c.oid OPERATOR(pg_catalog.=) _do_follow_target.target), 'MEMBER') THEN
		RAISE EXCEPTION 'must be owner of table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'The owner of a target table (or a superuser) brings its pipelines in step with it.';
	END IF;
	FOR x IN SELECT p.pipeline_id, p.name FROM stage.pipeline p
			  WHERE p.target OPERATOR(pg_catalog.=) _do_follow_target.target
			  ORDER BY p.pipeline_id
	LOOP
		changes := changes OPERATOR(pg_catalog.||)
			(SELECT pg_catalog.array_agg(pg_catalog.format('pipeline "%s": %s', x.name, c))
			   FROM pg_catalog.unnest(stage._follow_target(x.pipeline_id)) c);
	END LOOP;
	RETURN COALESCE(changes, '{}');
END
$$;

/*
 * The event trigger: after an ALTER TABLE, the pipelines of the altered
 * table follow it (stage.follow_target, as the role that altered it), in
 * the same transaction; a change their contracts forbid is refused with
 * the ALTER TABLE.  A table that is no target costs a lookup.
 */
CREATE FUNCTION stage._on_alter_table()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	changes text[];
BEGIN
	FOR t IN SELECT DISTINCT d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d
			  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
				AND NOT d.in_extension
	LOOP
		changes := stage.follow_target(t.objid::pg_catalog.regclass);
		IF pg_catalog.cardinality(changes) OPERATOR(pg_catalog.>) 0 THEN
			RAISE NOTICE '%', pg_catalog.array_to_string(changes, '; ');
		END IF;
	END LOOP;
END
$$;
CREATE EVENT TRIGGER stage_follow_target ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION stage._on_alter_table();
/* -------------------------------------------------------------- views */

/*
 * Every view belongs to the catalog owner, reads the catalog with its
 * rights and shows each role the pipelines whose outcomes it may see
 * (stage._may_see: members of the owner role, superusers, stage_analyst).
 * security_barrier: a caller's own conditions (a function that prints its
 * arguments, say) are applied after that filter, never to hidden rows.
 *
 * Error texts (a failed batch, the reason a pipeline was paused) come from
 * the server or the owner's code and may quote a value: where the
 * pipeline masks columns, only its owners see them, others see the
 * condition (stage._withheld).
 */

CREATE VIEW stage.pipelines WITH (security_barrier) AS
SELECT p.name AS pipeline, p.target, p.landing, p.format, p.key, p.on_duplicate,
	   p.enabled,
	   CASE WHEN stage._owns(p.owner) OR p.paused_reason IS NULL
				 OR p.paused_reason OPERATOR(pg_catalog.!~~) 'paused after % consecutive failed batches; last: %'
				 OR NOT EXISTS (SELECT 1 FROM stage.mask m
								 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
			THEN p.paused_reason
			ELSE pg_catalog.split_part(p.paused_reason, '; last: ', 1)
				 OPERATOR(pg_catalog.||) '; the last error is withheld: the pipeline masks columns'
	   END AS paused_reason,
	   p.failures, p.retry_at, p.max_reject_ratio, p.retention,
	   p.contract_version, p.owner,
	   (SELECT pg_catalog.count(*) FROM stage.rule r
		 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS rules,
	   (SELECT pg_catalog.count(*) FROM stage.mask m
		 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS masks,
	   p.win_hi IS NOT NULL AS window_open,
	   p.created_at, p.lanes, p.target_changed_at
  FROM stage.pipeline p
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.batches WITH (security_barrier) AS
SELECT b.batch_id, p.name AS pipeline, b.kind, b.contract_version, b.status,
	   b.rows_in, b.rows_clean, b.rows_quarantined, b.rows_duplicate, b.rows_warned,
	   b.rows_drift, b.latency_p50_ms, b.latency_p95_ms, b.latency_p99_ms, b.latency_max_ms,
	   b.started_at, b.finished_at,
	   b.finished_at OPERATOR(pg_catalog.-) b.started_at AS duration,
	   CASE WHEN b.error IS NULL OR stage._owns(p.owner)
				 OR NOT EXISTS (SELECT 1 FROM stage.mask m
								 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
			THEN b.error ELSE stage._withheld(b.sqlstate) END AS error,
	   b.sqlstate, b.backend_pid, b.run_by,
	   b.win_lo, b.win_hi, b.from_id, b.to_id, b.lane
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.rule_stats WITH (security_barrier) AS
SELECT p.name AS pipeline, s.batch_id, s.rule_name, s.column_name, s.kind, s.severity,
	   s.checked, s.failed
  FROM stage.batch_rule_stat s
  JOIN stage.batch b USING (batch_id)
  JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

/* per transform and batch: values it was applied to, changed, made NULL, failed on */
CREATE VIEW stage.transform_stats WITH (security_barrier) AS
SELECT p.name AS pipeline, s.batch_id, s.transform_name, s.column_name, s.method,
	   s.applied, s.changed, s.nulled, s.failed
  FROM stage.batch_transform_stat s
  JOIN stage.batch b USING (batch_id)
  JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

/* lineage: each batch as a run, with its input, outputs and job version */
CREATE VIEW stage.lineage WITH (security_barrier) AS
SELECT p.name AS pipeline, b.batch_id, b.contract_version, p.landing AS input,
	   p.target AS output, 'stage.quarantine_log'::regclass AS quarantine,
	   b.first_id AS first_landing_id, b.to_id AS last_landing_id,
	   b.win_lo, b.win_hi, b.rows_in, b.rows_clean, b.rows_quarantined,
	   b.rows_duplicate, b.started_at, b.finished_at
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
 WHERE b.status OPERATOR(pg_catalog.=) 'done' AND stage._may_see(p.owner);

GRANT SELECT ON stage.pipelines, stage.batches, stage.rule_stats, stage.transform_stats,
	stage.lineage TO PUBLIC;

/*
 * The quarantine and its daily summary, for owners (their pipelines),
 * stage_analyst members (every pipeline) and superusers; masked columns
 * show masked with their current mask, also on rows quarantined before it
 * was set.  stage.quarantine shows the open items, the work still to do;
 * stage.quarantine_all every item whatever its status.
 */
CREATE VIEW stage.quarantine_all WITH (security_barrier) AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'value' AS value,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'message' AS message,
	   q.reasons, q.row_data, q.source, q.role::pg_catalog.name AS role, q.received_at, q.quarantined_at,
	   q.status, q.successor_id, q.closed_at, q.closed_by, q.note
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.quarantine WITH (security_barrier) AS
SELECT x.* FROM stage.quarantine_all x
  JOIN stage.pipeline p ON p.name OPERATOR(pg_catalog.=) x.pipeline
 WHERE x.status OPERATOR(pg_catalog.=) 'open' AND stage._may_see(p.owner);

CREATE VIEW stage.dlq_summary WITH (security_barrier) AS
SELECT p.name AS pipeline, r.value OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   r.value OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   r.value OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   pg_catalog.date_trunc('day', q.quarantined_at) AS day,
	   pg_catalog.count(*) AS failures,
	   pg_catalog.count(DISTINCT q.landing_id) AS rows,
	   pg_catalog.count(DISTINCT q.landing_id) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS open_rows,
	   pg_catalog.count(DISTINCT q.landing_id) FILTER (WHERE q.status OPERATOR(pg_catalog.<>) 'open') AS closed_rows
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(q.reasons) r
 WHERE stage._may_see(p.owner)
 GROUP BY 1, 2, 3, 4, 5;

GRANT SELECT ON stage.quarantine_all, stage.quarantine, stage.dlq_summary TO PUBLIC;

/*
 * Who lands what, per pipeline: source and role of its landing rows, with
 * their count and first and last arrival (stage.landing_sources, a scan
 * of each landing table shown).
 */
CREATE VIEW stage.sources WITH (security_barrier) AS
SELECT p.name AS pipeline, s.source, s.role, s.rows, s.first_received_at, s.last_received_at
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage.landing_sources(p.name) s
 WHERE stage._may_see(p.owner);

GRANT SELECT ON stage.sources TO PUBLIC;


/*
 * The staging SLIs per pipeline, over the last hour of batches (and the
 * whole quarantine for the DLQ): what a dashboard or an alert reads.
 * Rates are fractions of the rows the batches took.  Runs as the invoker:
 * row-level security shows each role the batches it may see.
 */
CREATE VIEW stage.health WITH (security_barrier) AS
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
	/* the items by status; open ones by age; repairs closed in the last day */
	SELECT q.pipeline_id, pg_catalog.count(*) AS size,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS open,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open'
			   AND q.quarantined_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval)) AS growth_24h,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'repaired') AS repaired,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'replayed') AS replayed,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'superseded') AS superseded,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'dismissed') AS dismissed,
		   pg_catalog.now() OPERATOR(pg_catalog.-)
			 pg_catalog.min(q.quarantined_at) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS oldest_open_age,
		   pg_catalog.avg(q.closed_at OPERATOR(pg_catalog.-) q.quarantined_at)
			 FILTER (WHERE q.status OPERATOR(pg_catalog.<>) ALL (ARRAY['open', 'dismissed'])
					   AND q.closed_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval))
			 AS mean_time_to_repair
	  FROM stage.quarantine_log q
	 GROUP BY q.pipeline_id
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
	   pp.last_batch_at,
	   COALESCE(d.open, 0) AS dlq_open,
	   d.oldest_open_age AS dlq_oldest_open_age,
	   d.mean_time_to_repair,
	   COALESCE(d.repaired, 0) AS dlq_repaired,
	   COALESCE(d.replayed, 0) AS dlq_replayed,
	   COALESCE(d.superseded, 0) AS dlq_superseded,
	   COALESCE(d.dismissed, 0) AS dlq_dismissed
  FROM stage.pipeline p
  LEFT JOIN per_pipeline pp USING (pipeline_id)
  LEFT JOIN type_failures tf USING (pipeline_id)
  LEFT JOIN dlq d USING (pipeline_id)
 WHERE stage._may_see(p.owner);
GRANT SELECT ON stage.health TO PUBLIC;


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
		(12, 'stage_dlq_size', 'Quarantine items kept, whatever their status.'),
		(13, 'stage_dlq_growth_24h', 'Items quarantined in the last 24 hours and still open.'),
		(14, 'stage_pipeline_enabled', '1 when the pipeline runs, 0 when paused or held.'),
		(15, 'stage_dlq_open', 'Open quarantine items: rows still to repair, replay or dismiss.'),
		(16, 'stage_dlq_oldest_open_age_seconds', 'Age of the oldest open quarantine item.')
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
				WHEN 15 THEN h.dlq_open::text
				WHEN 16 THEN COALESCE(EXTRACT(epoch FROM h.dlq_oldest_open_age), 0)::text
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

/*
 * The workers of the cluster: anyone may see that they run; which
 * pipeline and batch each is on, and how its last batch failed, only
 * those who may see that pipeline (stage._workers decides).
 */
CREATE VIEW stage.workers WITH (security_barrier) AS
SELECT w.pid, w.database, w.state, w.pipeline, w.batch_id, w.last_error,
	   w.batches, w.rows, w.started_at, w.last_batch_at,
	   CASE WHEN w.dynamic THEN 'stage.start_worker()' ELSE 'stage.databases' END AS started_by
  FROM stage._workers() w;
GRANT SELECT ON stage.workers TO PUBLIC;
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
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.openlineage_events(bigint, integer) IS
	'batches after a cursor as OpenLineage run events (the lineage outbox)';
CREATE FUNCTION stage._do_openlineage_events(since_batch_id bigint,
										 max_events integer)
RETURNS TABLE(batch_id bigint, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT b.batch_id,
		   pg_catalog.jsonb_build_object(
			'eventType', CASE b.status WHEN 'done' THEN 'COMPLETE'
									   WHEN 'failed' THEN 'FAIL' ELSE 'ABORT' END,
			'eventTime', pg_catalog.to_char(pg_catalog.timezone('UTC', b.finished_at),
											'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'producer', 'urn:stage:' OPERATOR(pg_catalog.||)
				(SELECT e.extversion FROM pg_catalog.pg_extension e
				  WHERE e.extname OPERATOR(pg_catalog.=) 'stage'),
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
						'started_at', b.started_at,
						'error', CASE WHEN b.error IS NULL OR stage._owns(p.owner)
										   OR NOT EXISTS (SELECT 1 FROM stage.mask m
														   WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
									  THEN b.error ELSE stage._withheld(b.sqlstate) END,
						'sqlstate', b.sqlstate))),
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
	   AND stage._may_see(p.owner)
	 ORDER BY b.batch_id
	 LIMIT COALESCE(max_events, 1000);
END
$$;
/* -------------------------------------------------------- privileges */

/*
 * Internal functions (name starting with _) are for the catalog owner
 * only: the gates run them as that role.  Those the views call in the
 * caller's name stay executable; each decides what the caller may see:
 * _may_see, _owns, _withheld, _quarantine, _quarantine_count, _workers.
 */
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace OPERATOR(pg_catalog.=) 'stage'::regnamespace
				AND p.proname OPERATOR(pg_catalog.~~) '\_%'
				AND p.proname OPERATOR(pg_catalog.<>) ALL (ARRAY['_may_see', '_owns', '_withheld',
						'_quarantine', '_quarantine_count', '_workers'])
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$$;
