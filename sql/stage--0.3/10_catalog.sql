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
	target_changed_at timestamptz,
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
	/* backpressure (stage.set_backpressure): producers refused or held above these (NULL: no limit) */
	max_backlog		bigint CHECK (max_backlog OPERATOR(pg_catalog.>) 0),
	max_backlog_age	interval CHECK (max_backlog_age OPERATOR(pg_catalog.>) '0'::interval),
	on_backlog		text NOT NULL DEFAULT 'reject'
		CHECK (on_backlog OPERATOR(pg_catalog.=) ANY (ARRAY['reject', 'wait'])),
	backlog_wait	interval NOT NULL DEFAULT '10 seconds'
		CHECK (backlog_wait OPERATOR(pg_catalog.>=) '0'::interval),
	/*
	 * batches, their statistics, duplicates, lineage events and closed
	 * quarantine items older than this leave by stage.purge() (42_retention.sql)
	 */
	history_retention interval NOT NULL DEFAULT '30 days'
		CHECK (history_retention OPERATOR(pg_catalog.>=) '0'::interval),
	/* how long one landing partition lasts (41_partitions.sql); NULL: a quarter of the retention, 10 s to 1 day */
	partition_interval interval
		CHECK (partition_interval OPERATOR(pg_catalog.>=) '1 second'::interval
			   AND partition_interval OPERATOR(pg_catalog.<=) '7 days'::interval)
);
COMMENT ON TABLE stage.pipeline IS 'one row per pipeline: target, landing table, policies and the open snapshot window';
/*
 * The replica identity of a table whose rows are updated, with the node:
 * a warehouse that subscribes to several nodes keys their rows by node and
 * id, and logical replication finds an updated row by the publisher's
 * replica identity (85_publish.sql).
 */
CREATE UNIQUE INDEX pipeline_node_key ON stage.pipeline (pipeline_id, node);
ALTER TABLE stage.pipeline REPLICA IDENTITY USING INDEX pipeline_node_key;

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
	lanes			integer,
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
	/*
	 * the handoff latency of every row of the batch, as the counts of a
	 * histogram (per bucket of stage._latency_bounds(), the last one +Inf)
	 * and their sum in milliseconds
	 */
	latency_buckets	bigint[],
	latency_sum_ms	double precision
);
CREATE INDEX ON stage.batch (pipeline_id, batch_id);
/* the batches of the last hour, for stage.health */
CREATE INDEX ON stage.batch (finished_at);
/* a pipeline's oldest batches, for history retention (stage._purge_history) */
CREATE INDEX ON stage.batch (pipeline_id, finished_at);
/* the replica identity, with the node (see stage.pipeline) */
CREATE UNIQUE INDEX batch_node_key ON stage.batch (batch_id, node);
ALTER TABLE stage.batch REPLICA IDENTITY USING INDEX batch_node_key;

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
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
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
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
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
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
	PRIMARY KEY (pipeline_id, landing_id)
);
CREATE INDEX ON stage.quarantine_log (batch_id);
/* the replica identity, with the node (see stage.pipeline) */
CREATE UNIQUE INDEX quarantine_log_node_key ON stage.quarantine_log (pipeline_id, landing_id, node);
ALTER TABLE stage.quarantine_log REPLICA IDENTITY USING INDEX quarantine_log_node_key;
/* open items: the DLQ's size, supersession by key, repairs pending */
CREATE INDEX ON stage.quarantine_log (pipeline_id, key) WHERE status OPERATOR(pg_catalog.=) 'open';
/* the oldest open item of a pipeline, in one probe */
CREATE INDEX ON stage.quarantine_log (pipeline_id, quarantined_at) WHERE status OPERATOR(pg_catalog.=) 'open';
/* the open items newest first, as stage.quarantine is ordered (its LIMIT reads only what it shows) */
CREATE INDEX quarantine_log_open_newest ON stage.quarantine_log (quarantined_at DESC, landing_id, pipeline_id)
	WHERE status OPERATOR(pg_catalog.=) 'open';
CREATE INDEX ON stage.quarantine_log (pipeline_id, successor_id)
	WHERE status OPERATOR(pg_catalog.=) 'open' AND successor_id IS NOT NULL;
/* a pipeline's items closed longest ago, for history retention (stage._purge_history) */
CREATE INDEX ON stage.quarantine_log (pipeline_id, closed_at) WHERE status OPERATOR(pg_catalog.<>) 'open';

/* one row per landing row resolved as a duplicate of an earlier key */
CREATE TABLE stage.duplicate_log (
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint NOT NULL,
	/* the staging node the row belongs to (stage.node_name): keeps the rows of several nodes apart on a warehouse */
	node			text NOT NULL DEFAULT stage.node_name(),
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
 * Prometheus counters (72_metrics.sql): per pipeline, metric and labels,
 * the running total since the pipeline was made, added to as batches
 * finish and quarantine items change, in the same transaction; a scrape
 * reads them as they are, never recounts.  A few rows are gauges of state
 * kept the same way (the quarantine's items by status, the last batch).
 * Not dumped: a restored database starts them again (as a restarted
 * exporter's would), the quarantine gauges from its restored items.
 * Movers working lanes of one pipeline at once each add to their own
 * shard of a counter (its lane), so that neither waits for the other's
 * commit; readers sum the shards.
 */
CREATE TABLE stage.counter (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	metric			text NOT NULL,
	labels			jsonb NOT NULL DEFAULT '{}',
	value			double precision NOT NULL DEFAULT 0,
	/* the lane of the batch that added (0: none; 1000 and up: outside batches) */
	shard			integer NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline_id, metric, labels, shard)
);

/*
 * Per pipeline and hour (and shard, as stage.counter): the rows batches
 * took and placed, the batches, the quarantine items closed and the time
 * the repaired ones waited: the volume baseline (the same hour on earlier
 * days), the DLQ's growth and the mean time to repair; and the rows
 * retention deleted that hour: history (stage._purge_history) and landing
 * rows (stage.purge).
 */
CREATE TABLE stage.hourly (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	hour			timestamptz NOT NULL,
	rows_in			bigint NOT NULL DEFAULT 0,
	rows_clean		bigint NOT NULL DEFAULT 0,
	rows_quarantined bigint NOT NULL DEFAULT 0,
	rows_duplicate	bigint NOT NULL DEFAULT 0,
	batches			bigint NOT NULL DEFAULT 0,
	failed_batches	bigint NOT NULL DEFAULT 0,
	closed_all		bigint NOT NULL DEFAULT 0,
	closed_items	bigint NOT NULL DEFAULT 0,
	closed_seconds	double precision NOT NULL DEFAULT 0,
	shard			integer NOT NULL DEFAULT 0,
	history_purged	bigint NOT NULL DEFAULT 0,
	rows_purged		bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline_id, hour, shard)
);

/*
 * The OpenLineage outbox (80_lineage.sql): a START and a COMPLETE, FAIL or
 * ABORT event per batch, written by a trigger in the transaction that
 * finishes the batch, so an event exists exactly when its batch
 * committed.  txid is that transaction's id: stage.openlineage_events
 * reads the events in commit order, as the mover reads landing windows
 * (rows visible in a newer snapshot and not in the reader's last one).
 * Not dumped: a cursor is a snapshot of this cluster's transactions, which
 * means nothing in a restored one (readers start again from NULL).
 */
CREATE TABLE stage.lineage_event (
	event_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	txid			xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	batch_id		bigint NOT NULL,
	event_type		text NOT NULL
		CHECK (event_type OPERATOR(pg_catalog.=) ANY (ARRAY['START', 'COMPLETE', 'FAIL', 'ABORT'])),
	event			jsonb NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	/* a batch finishes once: one event of each type */
	CONSTRAINT lineage_event_batch_type_key UNIQUE (batch_id, event_type)
);
/* the reading order: commit windows, then (txid, event_id) within one */
CREATE INDEX ON stage.lineage_event (txid, event_id);

/*
 * The partitions of the landing tables (41_partitions.sql).  A landing
 * table is partitioned by ranges of _stage_txid, the order batches read it
 * in: a range is finished once no transaction of it can still land a row
 * and every row of it was taken by a finished window, and leaves whole
 * (DROP TABLE) once finished for longer than the pipeline's retention.
 * The last range is open-ended (hi NULL): it only fills when the ranges
 * made ahead ran out (nobody ran stage.purge or the worker for long).
 * created_xid (the next transaction id when the range was made) and
 * created_at measure the rate at which the cluster uses transaction ids,
 * which sizes the ranges made later.
 */
CREATE TABLE stage.landing_partition (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	part_no			bigint GENERATED ALWAYS AS IDENTITY,
	partition		regclass NOT NULL,
	lo				xid8,			/* NULL: from the lowest */
	hi				xid8,			/* NULL: open-ended */
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_xid		xid8 NOT NULL,
	/* when every row of the range was seen finished; retention counts from there */
	finished_at		timestamptz,
	PRIMARY KEY (pipeline_id, part_no)
);

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
SELECT pg_catalog.pg_extension_config_dump('stage.landing_partition', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.landing_partition', 'part_no'), '');
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
	stage.secret, stage.token_vault, stage.lane, stage.transform, stage.batch_transform_stat,
	stage.counter, stage.hourly
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
ALTER TABLE stage.counter ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.hourly ENABLE ROW LEVEL SECURITY;
/* the OpenLineage outbox: catalog owner only, like the history it is made of */
REVOKE ALL ON stage.lineage_event FROM PUBLIC;
ALTER TABLE stage.lineage_event ENABLE ROW LEVEL SECURITY;
/* the landing partitions: catalog owner only */
REVOKE ALL ON stage.landing_partition FROM PUBLIC;
ALTER TABLE stage.landing_partition ENABLE ROW LEVEL SECURITY;
