--
-- severity: "reject" quarantines a row, "warn" counts it and lets it pass;
-- max_reject_ratio holds a whole batch for a person: nothing of it moves,
-- the batch is recorded as held with the reason and its rule counts, and
-- the pipeline is paused until the contract changes (a fix) or
-- stage.resume() is called; then the same rows are taken again.
--
-- Held batches are announced by a WARNING that names the batch id, which
-- depends on the other suites: client_min_messages hides it here, and batch
-- ids are shown as N.
--
-- Every object of this file is prefixed sv_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE VIEW sv_reasons AS
SELECT q.pipeline, q.landing_id, r.ordinality AS n, r.value->>'rule' AS rule,
	   r.value->>'severity' AS severity, r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r;

-- the batches of a pipeline, oldest first, numbered from 1
CREATE VIEW sv_batches AS
SELECT pipeline, row_number() OVER (PARTITION BY pipeline ORDER BY batch_id) AS batch,
	   kind, status, contract_version, rows_in, rows_clean, rows_quarantined,
	   rows_warned, regexp_replace(error, 'batch \d+', 'batch N') AS error
  FROM stage.batches;

----------------------------------------------------------------------------
-- 1. warn and reject
----------------------------------------------------------------------------
CREATE TABLE sv_orders (id integer, qty integer, note text, email text);
SELECT stage.create_pipeline('sv_orders', 'sv_orders');
SELECT stage.add_rule('sv_orders', 'qty', 'range', '{"min": 1}');
SELECT stage.add_rule('sv_orders', 'note', 'length', '{"max": 10}', severity => 'warn');
SELECT stage.add_rule('sv_orders', 'email', 'format', '{"format": "email"}', severity => 'warn');
SELECT r->>'name' AS rule, r->>'severity' AS severity
  FROM jsonb_array_elements(stage.contract('sv_orders')->'rules') r;

INSERT INTO stage_landing.sv_orders (id, qty, note, email) VALUES
	('1', '1', 'short', 'a@b.co'),					-- clean
	('2', '2', 'a rather long note', 'a@b.co'),		-- one warning: moves
	('3', '3', 'a rather long note', 'nobody'),		-- two warnings: moves, counted once
	('4', '0', 'a rather long note', 'a@b.co'),		-- rejected (and would warn)
	('5', '0', 'short', 'nobody');					-- rejected
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_orders');
SELECT id, qty, note, email FROM sv_orders ORDER BY id;
-- the reasons of a quarantined row are its rejections; warnings are
-- counted, not stored
SELECT landing_id, n, rule, severity, message
  FROM sv_reasons WHERE pipeline = 'sv_orders' ORDER BY landing_id, n;
-- rows_warned: clean rows with at least one warning
SELECT batch, status, rows_in, rows_clean, rows_quarantined, rows_warned
  FROM sv_batches WHERE pipeline = 'sv_orders';
-- rule_stats: each rule's severity, values checked, values failing
SELECT rule_name, kind, severity, checked, failed
  FROM stage.rule_stats WHERE pipeline = 'sv_orders' AND kind <> 'type'
 ORDER BY rule_name;

-- a severity is reject or warn
SELECT stage.add_rule('sv_orders', 'qty', 'not_null', severity => 'error');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('sv_orders', 'qty', 'not_null', severity => NULL);
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- 2. max_reject_ratio: above it, the batch is held
----------------------------------------------------------------------------
CREATE TABLE sv_items (id integer, qty integer, note text);
SELECT stage.create_pipeline('sv_items', 'sv_items');
SELECT stage.set_contract('sv_items', '{
	"max_reject_ratio": 0.25,
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}},
			  {"column": "note", "kind": "length", "args": {"max": 3}, "severity": "warn"}]}');
SELECT pipeline, max_reject_ratio FROM stage.pipelines WHERE pipeline = 'sv_items';

-- 2 of 4 rows fail (50% > 25%); warnings do not count
INSERT INTO stage_landing.sv_items (id, qty, note) VALUES
	('1', '1', 'ok'), ('2', '0', 'long'), ('3', '0', 'x'), ('4', '5', 'long');
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('sv_items');
RESET client_min_messages;

-- nothing moved: no target rows, no quarantine rows
SELECT count(*) AS target_rows FROM sv_items;
SELECT count(*) AS quarantined FROM stage.quarantine WHERE pipeline = 'sv_items';
-- the batch is recorded as held, with the reason
SELECT batch, status, contract_version, rows_in, rows_clean, rows_quarantined, error
  FROM sv_batches WHERE pipeline = 'sv_items';
-- the pipeline is paused with the same reason
SELECT enabled, regexp_replace(paused_reason, 'batch \d+', 'batch N') AS paused_reason
  FROM stage.pipelines WHERE pipeline = 'sv_items';
-- and rule_stats has the counts a person needs to decide
SELECT rule_name, severity, checked, failed
  FROM stage.rule_stats WHERE pipeline = 'sv_items' ORDER BY kind = 'type', rule_name;

-- while held, runs take nothing: run_batch says paused, run_all skips it
SELECT rows_in, status FROM stage.run_batch('sv_items');
SELECT stage.run_all() AS rows_processed;
SELECT count(*) AS target_rows FROM sv_items;

-- a contract change is the fix: it lifts the hold, and the next run takes
-- the same rows again (2 of 4 is not above 50%)
SELECT stage.set_contract('sv_items', '{
	"max_reject_ratio": 0.5,
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}},
			  {"column": "note", "kind": "length", "args": {"max": 3}, "severity": "warn"}]}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_items');
SELECT enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'sv_items';
SELECT id, qty, note FROM sv_items ORDER BY id;
SELECT landing_id, rule FROM sv_reasons WHERE pipeline = 'sv_items' ORDER BY landing_id;
SELECT batch, status, contract_version, rows_in, rows_clean, rows_quarantined, rows_warned
  FROM sv_batches WHERE pipeline = 'sv_items';

-- the boundaries: 0 holds any rejection, 1 never holds, null means no limit
SELECT stage.set_contract('sv_items', '{"max_reject_ratio": 0,
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}}]}');
INSERT INTO stage_landing.sv_items (id, qty) VALUES ('5', '1'), ('6', '1'), ('7', '0');
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_items');
RESET client_min_messages;
SELECT stage.set_contract('sv_items', '{"max_reject_ratio": 1,
	"rules": [{"column": "qty", "kind": "range", "args": {"min": 1}}]}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_items');
INSERT INTO stage_landing.sv_items (id, qty) VALUES ('8', '0'), ('9', '0');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_items');
-- out of range: refused, the ratio stays
SELECT stage.set_contract('sv_items', '{"max_reject_ratio": 1.01}');
\echo :LAST_ERROR_SQLSTATE
SELECT max_reject_ratio FROM stage.pipelines WHERE pipeline = 'sv_items';

----------------------------------------------------------------------------
-- 3. stage.resume(): the fix was elsewhere (here: the referenced table
--    lacked a value); resume takes the same rows again
----------------------------------------------------------------------------
CREATE TABLE sv_currency (code text PRIMARY KEY);
INSERT INTO sv_currency VALUES ('EUR');
CREATE TABLE sv_pay (id integer, currency text);
SELECT stage.create_pipeline('sv_pay', 'sv_pay');
SELECT stage.set_contract('sv_pay', '{
	"max_reject_ratio": 0.1,
	"rules": [{"column": "currency", "kind": "reference",
			   "args": {"table": "public.sv_currency", "column": "code"}}]}');
INSERT INTO stage_landing.sv_pay (id, currency) VALUES
	('1', 'EUR'), ('2', 'USD'), ('3', 'USD'), ('4', 'GBP');
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_pay');
RESET client_min_messages;
SELECT enabled FROM stage.pipelines WHERE pipeline = 'sv_pay';

-- resume without a fix: the same rows are held again
SELECT stage.resume('sv_pay');
SET client_min_messages = error;
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_pay');
RESET client_min_messages;

-- the fix: the missing currencies; resume, and the same rows move
INSERT INTO sv_currency VALUES ('USD'), ('GBP');
SELECT stage.resume('sv_pay');
SELECT enabled, paused_reason FROM stage.pipelines WHERE pipeline = 'sv_pay';
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('sv_pay');
SELECT id, currency FROM sv_pay ORDER BY id;
-- three attempts at the same four rows, two held, the last done; a held
-- batch keeps its rule counts
SELECT batch, status, contract_version, rows_in, rows_clean, rows_quarantined
  FROM sv_batches WHERE pipeline = 'sv_pay';
SELECT b.batch, s.rule_name, s.checked, s.failed
  FROM stage.rule_stats s
  JOIN (SELECT batch_id, row_number() OVER (ORDER BY batch_id) AS batch
		  FROM stage.batches WHERE pipeline = 'sv_pay') b USING (batch_id)
 WHERE s.pipeline = 'sv_pay' AND s.kind = 'reference'
 ORDER BY b.batch;

SELECT stage.drop_pipeline(p, force => true) FROM unnest(ARRAY['sv_orders', 'sv_items', 'sv_pay']) p;
DROP VIEW sv_reasons, sv_batches;
DROP TABLE sv_orders, sv_items, sv_pay, sv_currency;
