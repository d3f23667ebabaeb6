--
-- target_drop: nothing is lost without being asked for.  drop_pipeline
-- refuses while landing rows are unmoved or quarantine items open (55000)
-- unless forced; DROP TABLE of a pipeline's target (or of its landing
-- table) pauses the pipeline with the reason and keeps the rest; unrelated
-- DDL is not disturbed.
--
-- Every object of this file is prefixed td_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE ROLE td_owner;
CREATE TABLE td_orders (id integer PRIMARY KEY, qty integer CHECK (qty > 0));
ALTER TABLE td_orders OWNER TO td_owner;
SELECT stage.create_pipeline('td_orders', 'td_orders', key => '{id}');

-- ------------------------------------------------ drop_pipeline refuses
-- a pipeline with nothing in it drops without force
CREATE TABLE td_empty (id integer);
SELECT stage.create_pipeline('td_empty', 'td_empty');
SELECT stage.drop_pipeline('td_empty');
SELECT to_regclass('stage_landing.td_empty') AS landing;

-- three rows landed, none moved: refused, with the count
INSERT INTO stage_landing.td_orders (id, qty) VALUES ('1', '1'), ('2', '-2'), ('3', 'x');
SET ROLE td_owner;
SELECT stage.drop_pipeline('td_orders');
RESET ROLE;
SELECT count(*) AS landing_rows FROM stage_landing.td_orders;

-- moved: one clean, two quarantined; the open items still refuse it
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('td_orders');
SELECT stage.drop_pipeline('td_orders');
SELECT stage.drop_pipeline('td_orders', force => NULL);	-- NULL is not force
-- one item closed, one still open
SELECT stage.dismiss('td_orders', ARRAY[2::bigint], 'no such quantity') AS dismissed;
SELECT stage.drop_pipeline('td_orders');

-- --------------------------------------------- DROP TABLE of the target
-- more rows land, then the owner drops the target
INSERT INTO stage_landing.td_orders (id, qty) VALUES ('4', '4');
SET ROLE td_owner;
DROP TABLE td_orders;
RESET ROLE;
SELECT pipeline, enabled, paused_reason, landing FROM stage.pipelines WHERE pipeline = 'td_orders';
-- the landing rows and the quarantine are kept
SELECT count(*) AS landing_rows FROM stage_landing.td_orders;
SELECT count(*) AS open_items FROM stage.quarantine WHERE pipeline = 'td_orders';
-- a batch says why it cannot run, paused or resumed
SELECT * FROM stage.run_batch('td_orders');
SELECT stage.resume('td_orders');
SELECT * FROM stage.run_batch('td_orders');
-- resumed, every batch would fail: paused again
SELECT stage.pause('td_orders');
-- drop_pipeline still refuses: one row pending, one item open
SELECT stage.drop_pipeline('td_orders');
SELECT stage.drop_pipeline('td_orders', force => true);
SELECT count(*) AS left_over FROM stage.pipeline WHERE name = 'td_orders';

-- ------------------------------------------------- unrelated DDL, cascades
CREATE TABLE td_a (id integer);
CREATE TABLE td_b (id integer);
SELECT stage.create_pipeline('td_a', 'td_a');
-- dropping tables that are no target changes nothing
CREATE TABLE td_plain (id integer);
DROP TABLE td_plain;
CREATE TEMP TABLE td_temp (id integer);
DROP TABLE td_temp;
ALTER TABLE td_a ADD COLUMN note text;
ALTER TABLE td_a DROP COLUMN note;
CREATE INDEX td_a_id ON td_a (id);
DROP INDEX td_a_id;
SELECT pipeline, enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'td_a';
-- several tables in one DROP, one of them a target
DROP TABLE td_b, td_a;
SELECT pipeline, enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'td_a';
SELECT stage.drop_pipeline('td_a');

-- DROP SCHEMA ... CASCADE with targets inside
CREATE SCHEMA td_s;
CREATE TABLE td_s.one (id integer);
CREATE TABLE td_s.two (id integer);
CREATE VIEW td_s.v AS SELECT * FROM td_s.one;
SELECT stage.create_pipeline('td_one', 'td_s.one');
SELECT stage.create_pipeline('td_two', 'td_s.two');
\set VERBOSITY terse
DROP SCHEMA td_s CASCADE;
\set VERBOSITY default
SELECT pipeline, enabled, paused_reason FROM stage.pipelines
 WHERE pipeline IN ('td_one', 'td_two') ORDER BY pipeline;
SELECT stage.drop_pipeline(p) FROM unnest(ARRAY['td_one', 'td_two']) p;

-- ----------------------------------------- the landing table dropped
-- (only the catalog owner or a superuser can)
CREATE TABLE td_kept (id integer);
SELECT stage.create_pipeline('td_kept', 'td_kept');
INSERT INTO stage_landing.td_kept (id) VALUES ('1');
DROP TABLE stage_landing.td_kept;
SELECT pipeline, enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'td_kept';
-- nothing is left to lose: it drops without force
SELECT stage.drop_pipeline('td_kept');

DROP TABLE td_kept;
DROP ROLE td_owner;
