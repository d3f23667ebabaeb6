\set SHOW_CONTEXT never
-- The landing follows the target: ALTER TABLE of a pipeline's target adds,
-- renames and keeps landing columns in the same transaction, with a new
-- contract version; changes the contract forbids are refused.
CREATE ROLE ev_owner;
CREATE ROLE ev_feed LOGIN;
CREATE TABLE ev_orders (id int PRIMARY KEY, email text, amount numeric NOT NULL);
ALTER TABLE ev_orders OWNER TO ev_owner;
SET ROLE ev_owner;
SELECT stage.create_pipeline('ev', 'ev_orders', key => '{id}');
SELECT stage.grant_producer('ev', 'ev_feed');
SELECT stage.add_rule('ev', 'amount', 'range', '{"min": 0}');
SELECT stage.add_mask('ev', 'email', 'email');
SELECT contract_version, target_changed_at IS NULL AS never_changed FROM stage.pipelines WHERE pipeline = 'ev';

-- a column added: the landing table gets it, producers may fill it
ALTER TABLE ev_orders ADD COLUMN ordered_on date;
SELECT attname FROM pg_attribute WHERE attrelid = 'stage_landing.ev'::regclass
   AND attnum > 0 AND NOT attisdropped AND attname !~ '^_stage_' ORDER BY attnum;
SELECT contract_version, target_changed_at IS NOT NULL AS changed FROM stage.pipelines WHERE pipeline = 'ev';
RESET ROLE;
SET ROLE ev_feed;
INSERT INTO stage_landing.ev (id, email, amount, ordered_on) VALUES ('1', 'ana@example.com', '10', '2026-01-02');
RESET ROLE;
SET ROLE ev_owner;
SELECT rows_in, rows_clean FROM stage.run_batch('ev');
SELECT id, email, amount, ordered_on FROM ev_orders;

-- a column renamed: the landing column, the mask and the key follow
ALTER TABLE ev_orders RENAME COLUMN email TO customer_email;
ALTER TABLE ev_orders RENAME COLUMN id TO order_id;
SELECT stage.contract('ev') -> 'masks' AS masks, stage.contract('ev') -> 'key' AS key;
RESET ROLE;
SET ROLE ev_feed;
INSERT INTO stage_landing.ev (order_id, customer_email, amount) VALUES ('2', 'bo@example.com', '5');
RESET ROLE;
SET ROLE ev_owner;
SELECT rows_in, rows_clean FROM stage.run_batch('ev');
SELECT order_id, customer_email, amount FROM ev_orders ORDER BY 1;

-- a column the contract names cannot go, nor change to a type its rules
-- do not apply to; the ALTER TABLE is refused whole
ALTER TABLE ev_orders DROP COLUMN amount;
ALTER TABLE ev_orders ALTER COLUMN amount TYPE text;
ALTER TABLE ev_orders ALTER COLUMN amount TYPE integer USING amount::integer;
ALTER TABLE ev_orders DROP COLUMN order_id CASCADE;
SELECT attname FROM pg_attribute WHERE attrelid = 'ev_orders'::regclass
   AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

-- a column nobody names may go: its landing column stays (for replay), and
-- values producers still send there are counted as drift
ALTER TABLE ev_orders DROP COLUMN ordered_on;
SELECT attname FROM pg_attribute WHERE attrelid = 'stage_landing.ev'::regclass
   AND attnum > 0 AND NOT attisdropped AND attname !~ '^_stage_' ORDER BY attnum;
RESET ROLE;
SET ROLE ev_feed;
INSERT INTO stage_landing.ev (order_id, customer_email, amount, ordered_on)
VALUES ('3', 'cy@example.com', '7', '2026-01-03'), ('4', 'dee@example.com', '8', NULL);
RESET ROLE;
SET ROLE ev_owner;
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('ev');
SELECT rows_drift FROM stage.batches WHERE pipeline = 'ev' ORDER BY batch_id DESC LIMIT 1;

-- every change a contract version of its own, by the role that altered the table
SELECT contract_version FROM stage.pipelines WHERE pipeline = 'ev';
RESET ROLE;
SELECT h.version, h.created_by FROM stage.contract_history h
  JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'ev' ORDER BY h.version;

-- tables that are no target are not touched; a jsonb pipeline follows too
CREATE TABLE ev_other (x int);
ALTER TABLE ev_other ADD COLUMN y int;
CREATE TABLE ev_events (id int PRIMARY KEY, n int);
SELECT stage.create_pipeline('evj', 'ev_events', key => '{id}', format => 'jsonb');
SELECT stage.add_rule('evj', 'n', 'range', '{"min": 0}');
ALTER TABLE ev_events ADD COLUMN note text;
ALTER TABLE ev_events DROP COLUMN n;
INSERT INTO stage_landing.evj (payload) VALUES ('{"id": 1, "note": "x"}');
SELECT rows_clean FROM stage.run_batch('evj');
SELECT * FROM ev_events;

SELECT stage.drop_pipeline('evj');
SELECT stage.drop_pipeline('ev');
DROP TABLE ev_orders, ev_other, ev_events;
DROP ROLE ev_owner, ev_feed;
