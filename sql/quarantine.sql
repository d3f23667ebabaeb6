--
-- quarantine: what stage.quarantine, stage.dlq_summary and stage.batches
-- say about rejected rows — every quarantined row says why, actionably.
--
-- Every object of this file is prefixed qu_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE TABLE qu_orders (
	id		integer PRIMARY KEY,
	qty		integer CHECK (qty < 1000),
	currency text,
	sku		text,
	email	text
);
SELECT stage.create_pipeline('qu_orders', 'qu_orders', key => '{id}',
							 on_duplicate => 'quarantine');
SELECT stage.add_rule('qu_orders', 'qty', 'range', '{"min": 1}');
SELECT stage.add_rule('qu_orders', 'currency', 'enum', '{"values": ["USD", "EUR"]}');
SELECT stage.add_rule('qu_orders', 'sku', 'regex', '{"pattern": "^(a+)+$"}',
					  rule_name => 'sku_letters');
SELECT stage.add_rule('qu_orders', 'currency', 'not_null');
SELECT stage.add_rule('qu_orders', 'email', 'regex', '{"pattern": "@"}',
					  severity => 'warn', rule_name => 'email_has_at');
SELECT stage.add_mask('qu_orders', 'email', 'email');

-- a catastrophic pattern must not burn the CPU: with a small match limit it
-- fails fast, and the row is quarantined with kind regex_limit (54000)
SET stage.regex_match_limit = 1000;

INSERT INTO stage_landing.qu_orders (_stage_source, id, qty, currency, sku, email) VALUES
	('feed_a', '1', '5', 'USD', 'aaa', 'nobody'),			-- clean, with a warning
	('feed_a', '2', '0', 'JPY', 'aaa', 'b@x.org'),			-- two rules fail
	('feed_b', '3', 'lots', NULL, 'b', 'nope'),				-- type, not_null, regex
	('feed_b', '4', '5', 'EUR', repeat('a', 40) || 'b', 'c@x.org'),	-- regex limit
	('feed_b', '5', '5000', 'EUR', 'aa', 'd@x.org'),		-- the target's CHECK
	('feed_c', '1', '6', 'EUR', 'a', 'e@x.org'),			-- duplicate key in the batch
	('feed_c', NULL, '7', 'EUR', 'a', 'f@x.org');			-- NULL key
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('qu_orders');
RESET stage.regex_match_limit;

-- the view's columns
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'stage' AND table_name = 'quarantine' ORDER BY ordinal_position;

-- one row per quarantined landing row; rule_name, kind, column_name and
-- message are those of its first reason
SELECT pipeline, landing_id, contract_version, rule_name, kind, column_name, message,
	   jsonb_array_length(reasons) AS reasons, source
  FROM stage.quarantine WHERE pipeline = 'qu_orders' ORDER BY landing_id;

-- every reason carries rule, kind, column, value, sqlstate, message and the
-- contract version
SELECT bool_and(r ?& ARRAY['rule', 'kind', 'column', 'value', 'sqlstate', 'message',
						   'contract_version']) AS all_fields
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline = 'qu_orders';

-- a row failing several rules lists all of them: type checks first, then
-- rules in declaration order (a failed type check stands in for the rules
-- of its column); warnings are not reasons; the value of a masked column is
-- shown masked
SELECT q.landing_id, r.n, r.v->>'rule' AS rule, r.v->>'kind' AS kind,
	   r.v->>'column' AS col, r.v->>'value' AS value, r.v->>'sqlstate' AS sqlstate,
	   r.v->>'message' AS message, (r.v->>'contract_version')::int AS version
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) WITH ORDINALITY r(v, n)
 WHERE q.pipeline = 'qu_orders' ORDER BY q.landing_id, r.n;

-- row_data is the landing row as it arrived (masked columns masked), with
-- its source, receipt time, batch and landing id
SELECT landing_id, row_data, source, received_at IS NOT NULL AS has_received_at,
	   quarantined_at IS NOT NULL AS has_quarantined_at
  FROM stage.quarantine WHERE pipeline = 'qu_orders' ORDER BY landing_id;
SELECT count(*) AS quarantined_rows_of_other_batches
  FROM stage.quarantine q
 WHERE q.pipeline = 'qu_orders'
   AND q.batch_id <> (SELECT batch_id FROM stage.batches WHERE pipeline = 'qu_orders');
SELECT bool_and(q.received_at = l._stage_received_at) AS received_at_from_landing
  FROM stage.quarantine q JOIN stage_landing.qu_orders l ON l._stage_id = q.landing_id
 WHERE q.pipeline = 'qu_orders';

-- a later batch under a new contract version records that version
SELECT stage.drop_rule('qu_orders', 'sku_letters');
INSERT INTO stage_landing.qu_orders (_stage_source, id, qty, currency, sku, email)
VALUES ('feed_d', '8', '-1', 'EUR', 'b', 'g@x.org');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('qu_orders');
SELECT landing_id, contract_version, rule_name, reasons->0->'contract_version' AS in_reason
  FROM stage.quarantine WHERE pipeline = 'qu_orders' ORDER BY landing_id DESC LIMIT 1;

-- dlq_summary: failures per pipeline, rule, kind, column and day; a row
-- that fails two rules counts once for each
SELECT rule_name, kind, column_name, failures, rows, day IS NOT NULL AS has_day
  FROM stage.dlq_summary WHERE pipeline = 'qu_orders' ORDER BY rule_name, kind;
SELECT sum(failures) AS failures,
	   (SELECT sum(jsonb_array_length(reasons)) FROM stage.quarantine
		 WHERE pipeline = 'qu_orders') AS reasons
  FROM stage.dlq_summary WHERE pipeline = 'qu_orders';

-- stage.batches: one row per batch, with its counts, contract version, who
-- ran it and when
SELECT contract_version, status, rows_in, rows_clean, rows_quarantined, rows_duplicate,
	   rows_warned, error, sqlstate,
	   finished_at >= started_at AS finished_after_start,
	   duration = finished_at - started_at AS duration_ok,
	   backend_pid = pg_backend_pid() AS my_backend, run_by = current_user AS run_by_me,
	   win_hi IS NOT NULL AS has_window
  FROM stage.batches WHERE pipeline = 'qu_orders' ORDER BY batch_id;
-- the quarantined rows of each batch are exactly its rows_quarantined
SELECT b.rows_quarantined,
	   (SELECT count(*) FROM stage.quarantine q
		 WHERE q.pipeline = b.pipeline AND q.batch_id = b.batch_id) AS in_quarantine
  FROM stage.batches b WHERE b.pipeline = 'qu_orders' ORDER BY b.batch_id;

-- quarantined rows stay in landing (nothing is deleted) and never reach the
-- target
SELECT count(*) AS landing_rows FROM stage_landing.qu_orders;
SELECT id FROM qu_orders ORDER BY id;

-- the quarantine views are plain views over the log: a lookup by pipeline
-- and landing_id reaches the key's index, and the newest open items are
-- read in order from an index, never sorted from the whole quarantine (with
-- sequential scans and sorts made dear, a view that lost either would show)
CREATE FUNCTION pg_temp.plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
	r text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		r := r || l || E'\n';
	END LOOP;
	RETURN r;
END
$$;
SET enable_seqscan = off;
SELECT pg_temp.plan($$SELECT * FROM stage.quarantine WHERE pipeline = 'qu_orders' AND landing_id = 2$$)
	   ~ 'Index Cond: [^\n]*landing_id = 2' AS lookup_by_index;
SET enable_sort = off;
SELECT pg_temp.plan($$SELECT * FROM stage.quarantine WHERE pipeline = 'qu_orders'
					  ORDER BY quarantined_at DESC LIMIT 10$$) ~ 'quarantine_log_open_newest' AS newest_by_index,
	   pg_temp.plan($$SELECT * FROM stage.quarantine WHERE pipeline = 'qu_orders'
					  ORDER BY quarantined_at DESC LIMIT 10$$) !~ 'Sort' AS newest_unsorted;
-- and stage.batches gives its newest batches from the batch key, unsorted
SELECT pg_temp.plan($$SELECT * FROM stage.batches WHERE pipeline = 'qu_orders'
					  ORDER BY batch_id DESC LIMIT 10$$) !~ 'Sort' AS newest_batches_unsorted;
RESET enable_seqscan;
RESET enable_sort;

-- drop_pipeline refuses while quarantine items are open (55000, with the
-- count); forced, it removes the pipeline's quarantine and batches
SELECT stage.drop_pipeline('qu_orders');
SELECT count(*) AS still_there FROM stage.pipelines WHERE pipeline = 'qu_orders';
SELECT stage.drop_pipeline('qu_orders', force => true);
SELECT count(*) FROM stage.quarantine WHERE pipeline = 'qu_orders';
SELECT count(*) AS orphan_quarantine_rows FROM stage.quarantine_log
 WHERE pipeline_id NOT IN (SELECT pipeline_id FROM stage.pipeline);
SELECT count(*) AS orphan_batches FROM stage.batch
 WHERE pipeline_id NOT IN (SELECT pipeline_id FROM stage.pipeline);
DROP TABLE qu_orders;
