/*
 * scaleout_warehouse.sql: the warehouse of the scale-out scenario
 * (BENCH_SCENARIO=scaleout in scripts/bench.sh, test/bench/scaleout_run.sh).
 * Run by psql as postgres in the warehouse's database before it subscribes
 * to the nodes.
 *
 * stage_warehouse receives the nodes' history (publication stage_history);
 * public.orders receives the nodes' targets (publication stage_orders),
 * keyed by node and key: each node's keys are its own.  arrived_at is the
 * warehouse's: a subscriber-side default, evaluated when the apply worker
 * inserts the row.
 *
 * Schema bench holds what the script measures, for scaleout_report.sql.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE EXTENSION stage_warehouse;

CREATE TABLE public.orders (
	order_id	bigint NOT NULL,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	qty			integer NOT NULL,
	code		text,
	ordered_at	timestamptz NOT NULL,
	_stage_id	bigint,
	_stage_node	text NOT NULL,
	arrived_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (_stage_node, order_id)
);

CREATE SCHEMA bench;

-- the timed parts: one row a node and part, and one for the warehouse
CREATE TABLE bench.part (
	part		text NOT NULL,			-- a: one node alone, b: two nodes and the warehouse
	node		text NOT NULL,			-- a node's name, or 'warehouse'
	rows_landed	bigint,
	rows_clean	bigint,					-- node: its target's new rows; warehouse: rows arrived
	started_at	timestamptz NOT NULL,	-- the script's clock before the producers start
	landed_at	timestamptz,			-- the last landing commit
	done_at		timestamptz NOT NULL,	-- node: its last batch's end; warehouse: the last row's arrival
	wal_bytes	numeric,
	PRIMARY KEY (part, node)
);

-- the lag part, per node: what landed and where it went, and the producer
CREATE TABLE bench.lag_node (
	node		text PRIMARY KEY,
	landed		bigint,
	clean		bigint,
	quarantined	bigint,
	duplicate	bigint,
	started_at	timestamptz,
	ended_at	timestamptz,
	wal_bytes	numeric,
	batches		bigint,
	batch_rows_avg numeric,
	batch_p95_ms numeric,
	handoff_p95_ms_max numeric			-- max of stage.batch latency_p95_ms
);

-- the lag part, per clean row, from the node: received (statement time of
-- the producer's INSERT), landing commit and target commit
CREATE TABLE bench.lag_row (
	node		text NOT NULL,
	stage_id	bigint NOT NULL,
	received_at	timestamptz NOT NULL,
	landed_at	timestamptz NOT NULL,
	moved_at	timestamptz NOT NULL,
	PRIMARY KEY (node, stage_id)
);

-- every row of every node's target at the end (node, _stage_id)
CREATE TABLE bench.node_row (
	node		text NOT NULL,
	stage_id	bigint
);

-- the history, counted on each node at the end
CREATE TABLE bench.node_history (
	node		text NOT NULL,
	what		text NOT NULL,
	rows		bigint NOT NULL,
	PRIMARY KEY (node, what)
);

-- the CPU of each part: the machine's busy time and the benchmark's own
-- (clock ticks); the rest is other work on the shared machine
CREATE TABLE bench.cpu (
	part		text PRIMARY KEY,
	seconds		numeric NOT NULL,
	busy_ticks	bigint NOT NULL,
	ours_ticks	bigint NOT NULL,
	hz			integer NOT NULL,
	cores		integer NOT NULL,
	loadavg		text NOT NULL			-- at the part's end
);

-- the CPU of the benchmark's processes by what they are, sampled every second
CREATE TABLE bench.cpu_use (
	part		text NOT NULL,
	place		text NOT NULL,			-- nodes, warehouse, clients
	what		text NOT NULL,
	cpu_seconds	numeric NOT NULL
);

-- WAL and logical decoding figures, free text lines for the report
CREATE TABLE bench.note (
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	section		text NOT NULL,
	line		text NOT NULL
);
