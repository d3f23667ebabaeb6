/*
 * stage_warehouse--0.3.sql: the warehouse end of stage's fan-in.
 *
 * Staging nodes publish their history (stage.publish_history()) and their
 * targets (stage.publish(pipeline)); a warehouse subscribes to every node
 * with CREATE SUBSCRIPTION (docs/scale-out.md).  Logical replication
 * applies a published table to the table of the same schema and name:
 * these are the tables the nodes' stage.pipeline, stage.batch,
 * stage.batch_rule_stat, stage.batch_transform_stat, stage.quarantine_log
 * and stage.duplicate_log arrive in.  Each row carries its node, part of
 * every key here: the nodes' ids are their own.
 *
 * Only the columns a node publishes exist here: a node whose publication
 * were changed by hand to send a raw column (raw_data, raw_payload,
 * raw_reasons, key, error) would stop at the first such row ("missing
 * replicated column") instead of storing it.  regclass and regrole values
 * arrive as text (the warehouse need not know the nodes' tables and roles).
 * applied_at is the warehouse's own: when the row arrived.
 *
 * Nothing deletes here: what a node deletes (retention, purge,
 * drop_pipeline) is not published, so the warehouse keeps the history.
 */

\echo Use "CREATE EXTENSION stage_warehouse" to load this file. \quit

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'stage') THEN
		RAISE EXCEPTION 'extension "stage" is installed in this database'
			USING ERRCODE = 'duplicate_object',
				  DETAIL = 'A warehouse receives the nodes'' history into tables of the same names as stage''s own.',
				  HINT = 'Create the warehouse in a database of its own.';
	END IF;
END
$$;

CREATE SCHEMA stage;

CREATE TABLE stage.pipeline (
	node			text NOT NULL,
	pipeline_id		integer NOT NULL,
	name			text NOT NULL,
	target			text,
	landing			text,
	format			text,
	key				text[],
	on_duplicate	text,
	enabled			boolean,
	contract_version integer,
	owner			text,
	created_at		timestamptz,
	lanes			integer,
	applied_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	PRIMARY KEY (node, pipeline_id)
);

CREATE TABLE stage.batch (
	node			text NOT NULL,
	batch_id		bigint NOT NULL,
	pipeline_id		integer NOT NULL,
	contract_version integer,
	status			text,
	kind			text,
	win_lo			pg_snapshot,
	win_hi			pg_snapshot,
	from_txid		xid8,
	from_id			bigint,
	to_txid			xid8,
	to_id			bigint,
	first_id		bigint,
	rows_in			bigint,
	rows_clean		bigint,
	rows_quarantined bigint,
	rows_duplicate	bigint,
	rows_warned		bigint,
	rows_drift		bigint,
	latency_p50_ms	double precision,
	latency_p95_ms	double precision,
	latency_p99_ms	double precision,
	latency_max_ms	double precision,
	started_at		timestamptz,
	finished_at		timestamptz,
	sqlstate		text,
	backend_pid		integer,
	run_by			text,
	lane			integer,
	lanes			integer,
	applied_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	PRIMARY KEY (node, batch_id)
);
CREATE INDEX ON stage.batch (node, pipeline_id, finished_at);
CREATE INDEX ON stage.batch (finished_at);

CREATE TABLE stage.batch_rule_stat (
	node			text NOT NULL,
	batch_id		bigint NOT NULL,
	rule_name		text NOT NULL,
	column_name		text,
	kind			text,
	severity		text,
	checked			bigint,
	failed			bigint,
	PRIMARY KEY (node, batch_id, rule_name)
);

CREATE TABLE stage.batch_transform_stat (
	node			text NOT NULL,
	batch_id		bigint NOT NULL,
	transform_name	text NOT NULL,
	column_name		text,
	method			text,
	applied			bigint,
	changed			bigint,
	nulled			bigint,
	failed			bigint,
	PRIMARY KEY (node, batch_id, transform_name)
);

CREATE TABLE stage.quarantine_log (
	node			text NOT NULL,
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint,
	contract_version integer,
	source			text,
	received_at		timestamptz,
	row_data		jsonb,
	reasons			jsonb,
	quarantined_at	timestamptz,
	status			text,
	successor_id	bigint,
	closed_at		timestamptz,
	closed_by		text,
	closed_batch_id	bigint,
	note			text,
	role			text,
	applied_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	PRIMARY KEY (node, pipeline_id, landing_id)
);
CREATE INDEX ON stage.quarantine_log (node, pipeline_id)
	WHERE status OPERATOR(pg_catalog.=) 'open';

CREATE TABLE stage.duplicate_log (
	node			text NOT NULL,
	pipeline_id		integer NOT NULL,
	landing_id		bigint NOT NULL,
	batch_id		bigint,
	PRIMARY KEY (node, pipeline_id, landing_id)
);

/* ------------------------------------------------------------- views */
/* (a view binds its operators when it is made: plain operators are safe here) */

/* every batch of every node */
CREATE VIEW stage.cluster_batches AS
SELECT b.node, p.name AS pipeline, b.batch_id, b.kind, b.status, b.contract_version,
	   b.rows_in, b.rows_clean, b.rows_quarantined, b.rows_duplicate, b.rows_warned,
	   b.latency_p50_ms, b.latency_p95_ms, b.started_at, b.finished_at, b.sqlstate,
	   b.lane, b.applied_at,
	   b.applied_at - b.finished_at AS replication_lag
  FROM stage.batch b
  LEFT JOIN stage.pipeline p ON p.node = b.node
						   AND p.pipeline_id = b.pipeline_id;

/* every quarantine item of every node, whatever its status, masked as the node stored it */
CREATE VIEW stage.cluster_quarantine AS
SELECT q.node, p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons -> 0 ->> 'rule' AS rule_name,
	   q.reasons -> 0 ->> 'kind' AS kind,
	   q.reasons -> 0 ->> 'column' AS column_name,
	   q.reasons -> 0 ->> 'value' AS value,
	   q.reasons -> 0 ->> 'message' AS message,
	   q.reasons, q.row_data, q.source, q.role, q.received_at, q.quarantined_at,
	   q.status, q.successor_id, q.closed_at, q.closed_by, q.note
  FROM stage.quarantine_log q
  LEFT JOIN stage.pipeline p ON p.node = q.node
						   AND p.pipeline_id = q.pipeline_id;

/*
 * The staging SLIs per node and pipeline, over the batches that finished
 * in the last hour (as stage.health on a node), with how far the
 * warehouse is behind: the age of the node's last batch here, and how
 * long its rows took to arrive.
 */
CREATE VIEW stage.cluster_health AS
WITH recent AS (
	SELECT b.node, b.pipeline_id,
		   pg_catalog.count(*) FILTER (WHERE b.kind = 'batch') AS batches_1h,
		   pg_catalog.count(*) FILTER (WHERE b.kind = 'batch'
										 AND b.status = 'failed') AS failed_batches_1h,
		   pg_catalog.count(*) FILTER (WHERE b.kind = 'batch'
										 AND b.status = 'held') AS held_batches_1h,
		   pg_catalog.sum(b.rows_in) FILTER (WHERE b.kind = 'batch'
											   AND b.status = 'done') AS rows_1h,
		   pg_catalog.sum(b.rows_clean) FILTER (WHERE b.kind = 'batch'
												  AND b.status = 'done') AS clean_1h,
		   pg_catalog.sum(b.rows_duplicate) FILTER (WHERE b.kind = 'batch'
													  AND b.status = 'done') AS duplicate_1h,
		   pg_catalog.max(b.latency_p95_ms) AS handoff_latency_p95_ms,
		   pg_catalog.percentile_cont(0.95) WITHIN GROUP (ORDER BY pg_catalog.date_part('epoch',
				b.applied_at - b.finished_at)) AS replication_lag_p95_s
	  FROM stage.batch b
	 WHERE b.finished_at > pg_catalog.now() - '1 hour'::interval
	 GROUP BY b.node, b.pipeline_id
), dlq AS (
	SELECT q.node, q.pipeline_id, pg_catalog.count(*) AS dlq_open,
		   pg_catalog.now() - pg_catalog.min(q.quarantined_at) AS dlq_oldest_open_age
	  FROM stage.quarantine_log q
	 WHERE q.status = 'open'
	 GROUP BY q.node, q.pipeline_id
), last AS (
	SELECT DISTINCT ON (b.node, b.pipeline_id) b.node, b.pipeline_id, b.finished_at, b.applied_at
	  FROM stage.batch b
	 ORDER BY b.node, b.pipeline_id, b.finished_at DESC
)
SELECT p.node, p.name AS pipeline, p.enabled,
	   COALESCE(r.batches_1h, 0) AS batches_1h,
	   COALESCE(r.failed_batches_1h, 0) AS failed_batches_1h,
	   COALESCE(r.held_batches_1h, 0) AS held_batches_1h,
	   COALESCE(r.rows_1h, 0) AS rows_1h,
	   CASE WHEN r.batches_1h > 0
			THEN 1 - r.failed_batches_1h::double precision / r.batches_1h END
		   AS ingest_success_rate,
	   CASE WHEN r.rows_1h > 0
			THEN r.clean_1h::double precision / r.rows_1h END AS validation_pass_rate,
	   CASE WHEN r.rows_1h > 0
			THEN r.duplicate_1h::double precision / r.rows_1h END AS duplicate_rate,
	   r.handoff_latency_p95_ms,
	   COALESCE(d.dlq_open, 0) AS dlq_open,
	   d.dlq_oldest_open_age,
	   l.finished_at AS last_batch_at,
	   l.applied_at - l.finished_at AS last_replication_lag,
	   r.replication_lag_p95_s
  FROM stage.pipeline p
  LEFT JOIN recent r ON r.node = p.node AND r.pipeline_id = p.pipeline_id
  LEFT JOIN dlq d ON d.node = p.node AND d.pipeline_id = p.pipeline_id
  LEFT JOIN last l ON l.node = p.node AND l.pipeline_id = p.pipeline_id;

COMMENT ON VIEW stage.cluster_health IS 'the staging SLIs of every node and pipeline, over the last hour, and how far the warehouse is behind';
COMMENT ON VIEW stage.cluster_quarantine IS 'every quarantine item of every node, masked as the node stored it';
COMMENT ON VIEW stage.cluster_batches IS 'every batch of every node, with the time its record took to reach the warehouse';
