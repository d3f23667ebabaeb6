/*
 * stage--0.2--0.3.sql: update an installation of 0.2 to 0.3.
 *
 * Built from sql/stage--0.2--0.3/ (this prologue and the epilogue) around
 * the function, view and trigger definitions of the 0.3 pieces
 * (sql/stage--0.3/05 to 90, with CREATE turned into CREATE OR REPLACE,
 * which in an extension script only ever replaces the extension's own
 * objects).  The test "update" checks that an updated 0.2 and a fresh 0.3
 * have the same objects and privileges (pg_dump --schema-only compared).
 *
 * What changes: the history tables name the staging node their rows belong
 * to (stage.node_name), a target may have a _stage_node lineage column,
 * and a node publishes its targets and history for a warehouse
 * (stage.publish, stage.publish_history; docs/scale-out.md).
 */

\echo Use "ALTER EXTENSION stage UPDATE TO '0.3'" to load this file. \quit

/* the default of the node columns below (replaced by 05_gate.sql, as it is) */
CREATE FUNCTION stage.node_name() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_node_name_sql';

/*
 * The node column of the history tables.  The rows already there get the
 * node's present name as the column's missing value (no table is
 * rewritten: a quarantine or duplicate log may be large); new rows get
 * stage.node_name() as a fresh 0.3 gives them.
 */
DO $$
DECLARE
	t regclass;
BEGIN
	FOREACH t IN ARRAY ARRAY['stage.pipeline', 'stage.batch', 'stage.batch_rule_stat',
							 'stage.batch_transform_stat', 'stage.quarantine_log',
							 'stage.duplicate_log']::regclass[]
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN node text NOT NULL DEFAULT %L',
								  t, stage.node_name());
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN node SET DEFAULT stage.node_name()', t);
	END LOOP;
END
$$;

/*
 * Backpressure (as 10_catalog.sql makes the columns; stage.set_backpressure).
 * The defaults are set after the rows are filled, so that no stored
 * missing value tells an updated table from a fresh one.
 */
ALTER TABLE stage.pipeline
	ADD COLUMN max_backlog bigint CHECK (max_backlog OPERATOR(pg_catalog.>) 0),
	ADD COLUMN max_backlog_age interval CHECK (max_backlog_age OPERATOR(pg_catalog.>) '0'::interval),
	ADD COLUMN on_backlog text
		CHECK (on_backlog OPERATOR(pg_catalog.=) ANY (ARRAY['reject', 'wait'])),
	ADD COLUMN backlog_wait interval
		CHECK (backlog_wait OPERATOR(pg_catalog.>=) '0'::interval);
UPDATE stage.pipeline SET on_backlog = 'reject', backlog_wait = '10 seconds';
ALTER TABLE stage.pipeline
	ALTER COLUMN on_backlog SET DEFAULT 'reject', ALTER COLUMN on_backlog SET NOT NULL,
	ALTER COLUMN backlog_wait SET DEFAULT '10 seconds', ALTER COLUMN backlog_wait SET NOT NULL;

/* the replica identities with the node of the tables whose rows are updated */
CREATE UNIQUE INDEX pipeline_node_key ON stage.pipeline (pipeline_id, node);
ALTER TABLE stage.pipeline REPLICA IDENTITY USING INDEX pipeline_node_key;
CREATE UNIQUE INDEX batch_node_key ON stage.batch (batch_id, node);
ALTER TABLE stage.batch REPLICA IDENTITY USING INDEX batch_node_key;
CREATE UNIQUE INDEX quarantine_log_node_key ON stage.quarantine_log (pipeline_id, landing_id, node);
ALTER TABLE stage.quarantine_log REPLICA IDENTITY USING INDEX quarantine_log_node_key;

/* the rows' handoff latency as a histogram */
ALTER TABLE stage.batch ADD COLUMN latency_buckets bigint[];
ALTER TABLE stage.batch ADD COLUMN latency_sum_ms double precision;
CREATE INDEX ON stage.batch (finished_at);
CREATE INDEX ON stage.quarantine_log (pipeline_id, quarantined_at) WHERE status OPERATOR(pg_catalog.=) 'open';

/* history retention (42_retention.sql): the policy and the indexes its deletes follow */
/*
 * Added without a default, then filled and constrained: the pipelines
 * already there get the default as stored values, not as the column's
 * missing value (which a fresh install does not have; the table is small)
 */
ALTER TABLE stage.pipeline ADD COLUMN history_retention interval
	CHECK (history_retention OPERATOR(pg_catalog.>=) '0'::interval);
UPDATE stage.pipeline SET history_retention = '30 days';
ALTER TABLE stage.pipeline ALTER COLUMN history_retention SET DEFAULT '30 days';
ALTER TABLE stage.pipeline ALTER COLUMN history_retention SET NOT NULL;
/* the landing partitions' interval (NULL: from the retention) */
ALTER TABLE stage.pipeline ADD COLUMN partition_interval interval
	CHECK (partition_interval OPERATOR(pg_catalog.>=) '1 second'::interval
		   AND partition_interval OPERATOR(pg_catalog.<=) '7 days'::interval);
CREATE INDEX ON stage.batch (pipeline_id, finished_at);
CREATE INDEX ON stage.quarantine_log (pipeline_id, closed_at) WHERE status OPERATOR(pg_catalog.<>) 'open';
/* set_retention takes the history's too */
DROP FUNCTION stage.set_retention(text, interval);
DROP FUNCTION stage._do_set_retention(text, interval);

/* Prometheus counters and the hourly volume (as 10_catalog.sql makes them) */
CREATE TABLE stage.counter (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	metric			text NOT NULL,
	labels			jsonb NOT NULL DEFAULT '{}',
	value			double precision NOT NULL DEFAULT 0,
	/* the lane of the batch that added (0: none; 1000 and up: outside batches) */
	shard			integer NOT NULL DEFAULT 0,
	PRIMARY KEY (pipeline_id, metric, labels, shard)
);
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
REVOKE ALL ON stage.counter, stage.hourly FROM PUBLIC;
ALTER TABLE stage.counter ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.hourly ENABLE ROW LEVEL SECURITY;

/*
 * The OpenLineage outbox (as 10_catalog.sql makes it): events written as
 * batches finish, read in commit order with a snapshot cursor.  It starts
 * empty: the batches before the update have no events.  The reader of 0.2
 * (a batch id cursor, which skipped batches that committed late) goes.
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
	CONSTRAINT lineage_event_batch_type_key UNIQUE (batch_id, event_type)
);
CREATE INDEX ON stage.lineage_event (txid, event_id);
REVOKE ALL ON stage.lineage_event FROM PUBLIC;
ALTER TABLE stage.lineage_event ENABLE ROW LEVEL SECURITY;
DROP FUNCTION stage.openlineage_events(bigint, integer);
DROP FUNCTION stage._do_openlineage_events(bigint, integer);

/*
 * The partitions of the landing tables (as 10_catalog.sql makes them); the
 * landing tables already there become partitioned at the end of the
 * update (99_epilogue.sql).
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
SELECT pg_catalog.pg_extension_config_dump('stage.landing_partition', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('stage.landing_partition', 'part_no'), '');
REVOKE ALL ON stage.landing_partition FROM PUBLIC;
ALTER TABLE stage.landing_partition ENABLE ROW LEVEL SECURITY;
/* now plpgsql (41_partitions.sql): it drops landing partitions */
DROP FUNCTION stage._purge_landing(integer);
/* the open items newest first, for stage.quarantine (as 10_catalog.sql makes it) */
CREATE INDEX quarantine_log_open_newest ON stage.quarantine_log (quarantined_at DESC, landing_id, pipeline_id)
	WHERE status OPERATOR(pg_catalog.=) 'open';

/* the event triggers are made again by the pieces (no CREATE OR REPLACE for them) */
DROP EVENT TRIGGER stage_sql_drop;
DROP EVENT TRIGGER stage_follow_target;

/* ------------------------------------------- 0.3's functions and views */
