--
-- pipelines: creating, inspecting, pausing and dropping pipelines, and the
-- shape and guard of their landing tables.
--
-- Every object of this file is prefixed pl_; the file drops what it creates.
--
\set SHOW_CONTEXT never

-- A target with the column kinds a landing table must treat specially:
-- an identity ALWAYS column and a generated column never come from landing.
CREATE TABLE pl_orders (
	order_id	integer PRIMARY KEY,
	email		text,
	amount		numeric(10,2),
	note		varchar(20),
	created		date,
	row_no		integer GENERATED ALWAYS AS IDENTITY,
	doubled		integer GENERATED ALWAYS AS (order_id * 2) STORED
);

-- 'columns' format (the default): create_pipeline returns the landing table.
SELECT stage.create_pipeline('pl_orders', 'pl_orders', key => '{order_id}');

-- The landing table has the four metadata columns, then one text column per
-- target column that can come from landing (no row_no, no doubled), the
-- (_stage_txid, _stage_id) index batches are read by, and the append-only
-- guard trigger.
\d stage_landing.pl_orders

-- 'jsonb' format: one payload column instead of the target's columns.
CREATE TABLE pl_events (event_id bigint, kind text, at timestamptz);
SELECT stage.create_pipeline('pl_events', 'pl_events', format => 'jsonb',
							 on_duplicate => 'update');
\d stage_landing.pl_events

-- stage.pipelines shows both, with their policies and an empty contract at
-- version 1; the owner is the creator (the owner of the target table).
SELECT pipeline, target, landing, format, key, on_duplicate, enabled,
	   paused_reason, contract_version, owner = current_user::regrole AS owner_is_me,
	   rules, masks, window_open
  FROM stage.pipelines
 WHERE pipeline IN ('pl_orders', 'pl_events')
 ORDER BY pipeline;

-- The first contract version is recorded in the history as well.
SELECT p.name, h.version, h.contract->'version' AS contract_version, h.contract->'key' AS key,
	   h.contract->'on_duplicate' AS on_duplicate, h.contract->'rules' AS rules,
	   h.contract->'masks' AS masks
  FROM stage.contract_history h JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name IN ('pl_orders', 'pl_events')
 ORDER BY p.name, h.version;

-- Metadata defaults: _stage_id counts from 1, _stage_txid is the inserting
-- transaction, _stage_source defaults to application_name (or is set by the
-- producer), and _stage_received_at is filled in.
BEGIN;
SET LOCAL application_name = 'pl_producer';
INSERT INTO stage_landing.pl_orders (order_id, email, amount, note, created)
VALUES ('1', 'a@example.com', '10.50', 'first', '2024-01-01');
SELECT _stage_txid = pg_current_xact_id() AS txid_is_mine
  FROM stage_landing.pl_orders;
COMMIT;
INSERT INTO stage_landing.pl_orders (_stage_source, order_id, email)
VALUES ('explicit_source', '2', 'b@example.com');
SELECT _stage_id, _stage_source, _stage_received_at IS NOT NULL AS has_received_at,
	   order_id, email, amount, note, created
  FROM stage_landing.pl_orders ORDER BY _stage_id;
-- two producer transactions, two txids
SELECT count(DISTINCT _stage_txid) AS txids FROM stage_landing.pl_orders;

-- _stage_id is an identity ALWAYS column: producers cannot choose it, nor
-- can they back-date a row into an earlier batch window with _stage_txid.
INSERT INTO stage_landing.pl_orders (_stage_id, order_id) VALUES (99, '99');
-- (terse: the error's detail holds the time of receipt)
\set VERBOSITY terse
INSERT INTO stage_landing.pl_orders (_stage_txid, order_id) VALUES ('3', '99');
\set VERBOSITY default

-- The landing zone is append-only: UPDATE, DELETE and TRUNCATE all fail
-- with the guard's error, and the rows are still there.
UPDATE stage_landing.pl_orders SET email = 'changed@example.com';
DELETE FROM stage_landing.pl_orders WHERE order_id = '1';
TRUNCATE stage_landing.pl_orders;
SELECT count(*) AS landing_rows FROM stage_landing.pl_orders;

-- Pause: a paused pipeline's run_batch returns status 'paused', no batch,
-- and moves nothing (no window is opened either).
SELECT stage.pause('pl_orders');
SELECT enabled, replace(paused_reason, current_user, '<me>') AS paused_reason
  FROM stage.pipelines WHERE pipeline = 'pl_orders';
SELECT * FROM stage.run_batch('pl_orders');
SELECT count(*) AS target_rows FROM pl_orders;
SELECT window_open FROM stage.pipelines WHERE pipeline = 'pl_orders';
SELECT count(*) AS batches FROM stage.batches WHERE pipeline = 'pl_orders';

-- Resume: the same rows now move, and generated columns are computed by
-- the target as usual.
SELECT stage.resume('pl_orders');
SELECT enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'pl_orders';
SELECT batch_id IS NOT NULL AS has_batch, rows_in, rows_clean, rows_quarantined,
	   rows_duplicate, status
  FROM stage.run_batch('pl_orders');
SELECT * FROM pl_orders ORDER BY order_id;

-- A key needs a unique index on exactly the key columns (ON CONFLICT
-- relies on it): none, a wider one, or a partial one are refused.
CREATE TABLE pl_keys (a integer, b text, c text);
SELECT stage.create_pipeline('pl_keys', 'pl_keys', key => '{a}');
CREATE UNIQUE INDEX pl_keys_ab ON pl_keys (a, b);
SELECT stage.create_pipeline('pl_keys', 'pl_keys', key => '{a}');
CREATE UNIQUE INDEX pl_keys_c_partial ON pl_keys (c) WHERE c <> '';
SELECT stage.create_pipeline('pl_keys', 'pl_keys', key => '{c}');
-- the key's column order need not match the index's
SELECT stage.create_pipeline('pl_keys', 'pl_keys', key => '{b,a}');
SELECT key FROM stage.pipelines WHERE pipeline = 'pl_keys';

-- Target columns named _stage_* clash with landing metadata and are refused
-- (only the lineage columns _stage_id and _stage_batch are allowed).
CREATE TABLE pl_reserved (id integer, _stage_source text);
SELECT stage.create_pipeline('pl_reserved', 'pl_reserved');
SELECT count(*) FROM stage.pipelines WHERE pipeline = 'pl_reserved';

-- drop_pipeline removes the landing table and the catalog rows; the target
-- and its rows stay.
SELECT stage.drop_pipeline('pl_events');
SELECT to_regclass('stage_landing.pl_events') AS landing;
SELECT count(*) FROM stage.pipelines WHERE pipeline = 'pl_events';
-- no contract history is left behind for a pipeline that is gone
SELECT count(*) AS orphans FROM stage.contract_history
 WHERE pipeline_id NOT IN (SELECT pipeline_id FROM stage.pipeline);
SELECT stage.drop_pipeline('pl_orders');
SELECT stage.drop_pipeline('pl_keys');
SELECT to_regclass('stage_landing.pl_orders') AS landing;
SELECT count(*) AS target_rows FROM pl_orders;

-- A dropped pipeline's name can be used again.
SELECT stage.create_pipeline('pl_orders', 'pl_orders', key => '{order_id}');
SELECT count(*) AS landing_rows FROM stage_landing.pl_orders;
SELECT stage.drop_pipeline('pl_orders');

DROP TABLE pl_orders, pl_events, pl_keys, pl_reserved;
