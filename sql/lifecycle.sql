-- Quarantine as a work queue: every item has a status (open, repaired,
-- replayed, superseded, dismissed); repair, dismiss, supersession by key,
-- replay; trace follows the chain; health and dlq_summary count by status;
-- the books balance at each step.
CREATE ROLE lc_owner;
CREATE ROLE lc_other;
CREATE ROLE lc_analyst;
SELECT role_name FROM stage.create_roles() WHERE role_name = 'stage_analyst';
GRANT stage_analyst TO lc_analyst;
CREATE TABLE lc_orders (order_id int PRIMARY KEY, email text, amount numeric(10,2) NOT NULL,
						currency char(3));
ALTER TABLE lc_orders OWNER TO lc_owner;
SET ROLE lc_owner;
SELECT stage.create_pipeline('lc', 'lc_orders', key => '{order_id}');
SELECT stage.add_rule('lc', 'currency', 'enum', '{"values": ["EUR", "USD"]}');
SELECT stage.add_mask('lc', 'email', 'email');
RESET ROLE;

-- the books: every landing row in exactly one place, or still pending; a
-- quarantine item counts unless it was replayed (its row is then in the
-- target or the duplicate log), whatever else its status
CREATE FUNCTION lc_books() RETURNS TABLE(landing bigint, target bigint, quarantine bigint,
										 duplicate bigint, pending bigint, balanced boolean)
LANGUAGE sql SECURITY DEFINER AS $$
	SELECT l.n, t.n, q.n, d.n, b.n, l.n = t.n + q.n + d.n + b.n
	  FROM (SELECT count(*) AS n FROM stage_landing.lc) l,
		   (SELECT stage.backlog('lc') AS n) b,
		   (SELECT count(*) AS n FROM lc_orders) t,
		   (SELECT count(*) AS n FROM stage.quarantine_all
			 WHERE pipeline = 'lc' AND status <> 'replayed') q,
		   (SELECT count(*) AS n FROM stage.duplicate_log d
			  JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'lc') d
$$;

-- a messy partner feed: a bad amount, two bad currencies, a test order
INSERT INTO stage_landing.lc (order_id, email, amount, currency, _stage_source) VALUES
	('1', 'ana@example.com', '10', 'EUR', 'partner'),
	('2', 'bo@example.com', '1O.00', 'EUR', 'partner'),
	('3', 'cy@example.com', '5', 'GBP', 'partner'),
	('4', 'dee@example.com', '7', 'XXX', 'partner'),
	('5', 'eve@example.com', '8', 'USD', 'partner'),
	('6', 'fay@example.com', '9', 'JPY', 'partner');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lc');
-- batches are numbered from the pipeline's first, whatever ran before
SELECT max(batch_id) - 1 AS b0 FROM stage.batches \gset
SELECT landing_id, rule_name, kind, value, status FROM stage.quarantine
 WHERE pipeline = 'lc' ORDER BY landing_id;
SELECT * FROM lc_books();

-- who may do what: analysts see statuses and masked values, only owners act
SET ROLE lc_analyst;
SELECT landing_id, status, row_data->>'email' AS email FROM stage.quarantine
 WHERE pipeline = 'lc' ORDER BY landing_id;
SELECT * FROM stage.repair('lc', ARRAY[2], '{"amount": "10.00"}', 'fix');
SELECT stage.dismiss('lc', ARRAY[4], 'no');
RESET ROLE;
SET ROLE lc_other;
SELECT stage.dismiss('lc', ARRAY[4], 'no');
SELECT count(*) FROM stage.quarantine WHERE pipeline = 'lc';
RESET ROLE;

SET ROLE lc_owner;
-- repair: wrong arguments
SELECT * FROM stage.repair('lc', ARRAY[2], NULL, 'x');
SELECT * FROM stage.repair('lc', ARRAY[2], '[1]', 'x');
SELECT * FROM stage.repair('lc', ARRAY[2], '{}', 'x');
SELECT * FROM stage.repair('lc', ARRAY[2], '{"nope": "1"}', 'x');
SELECT * FROM stage.repair('lc', ARRAY[2], '{"amount": {"a": 1}}', 'x');
-- a dry run shows what would load, and lands nothing
SELECT * FROM stage.repair('lc', ARRAY[2, 3], '{"amount": "10.00"}', 'typo', dry_run => true);
SELECT count(*) AS landing_rows FROM stage_landing.lc;
-- the repair lands a corrected copy; the item waits for it to move
SELECT * FROM stage.repair('lc', ARRAY[2], '{"amount": 10.5}', 'typo in the amount, confirmed by the partner');
SELECT order_id, email, amount, currency, _stage_source FROM stage_landing.lc WHERE _stage_id = 7;
SELECT landing_id, status, successor_id, note FROM stage.quarantine_all
 WHERE pipeline = 'lc' AND landing_id = 2;
SELECT landing_row, batch_id - :b0 AS batch, outcome, status FROM stage.trace('lc', 2);
-- the producer re-sends order 3 with a valid currency: it supersedes item 3
INSERT INTO stage_landing.lc (order_id, email, amount, currency, _stage_source)
VALUES ('3', 'cy@example.com', '5', 'EUR', 'partner');
-- order 4 was a test order: never to load
SELECT stage.dismiss('lc', ARRAY[4], NULL);
SELECT stage.dismiss('lc', ARRAY[4, 1, 999], 'test order of the partner');
SELECT * FROM lc_books();
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lc');
SELECT landing_id, status, successor_id, closed_by, note FROM stage.quarantine_all
 WHERE pipeline = 'lc' ORDER BY landing_id;
SELECT * FROM lc_books();
SELECT order_id, amount, currency FROM lc_orders ORDER BY order_id;
-- trace follows each chain to where the data went
SELECT landing_row, batch_id - :b0 AS batch, outcome, status, note FROM stage.trace('lc', 2);
SELECT landing_row, batch_id - :b0 AS batch, outcome, status FROM stage.trace('lc', 3);
SELECT landing_row, batch_id - :b0 AS batch, outcome, status, note FROM stage.trace('lc', 4);
-- a closed item is closed: no second repair, dismissal or replay
SELECT * FROM stage.repair('lc', ARRAY[2], '{"amount": "11"}', 'again');
SELECT stage.dismiss('lc', ARRAY[2], 'again');
SELECT * FROM stage.replay('lc', ARRAY[2, 3, 4]);

-- a superseding row must be later: an earlier clean row of the key does not
-- close a later bad one (order 1 is clean; a bad version arrives after it)
INSERT INTO stage_landing.lc (order_id, email, amount, currency) VALUES ('7', 'g@example.com', '1', 'CHF');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lc');
-- the rule was wrong for JPY and CHF: replay closes those items as replayed
SELECT stage.add_rule('lc', 'currency', 'enum', '{"values": ["EUR", "USD", "JPY", "CHF"]}',
					  rule_name => 'currency_enum2');
SELECT stage.drop_rule('lc', 'currency_enum');
SELECT landing_id, outcome FROM stage.replay('lc') ORDER BY landing_id;
SELECT landing_row, batch_id - :b0 AS batch, outcome, status FROM stage.trace('lc', 6);
SELECT * FROM lc_books();
-- a later bad row of a key already loaded stays open
INSERT INTO stage_landing.lc (order_id, email, amount, currency) VALUES ('5', 'e@example.com', 'bad', 'USD');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lc');
SELECT landing_id AS bad5 FROM stage.quarantine WHERE pipeline = 'lc' AND kind = 'type' \gset
SELECT landing_id = :bad5 AS the_new_bad_row, status FROM stage.quarantine WHERE pipeline = 'lc';
-- a repaired copy that fails again is quarantined on its own; the original
-- stays open with the copy as its successor, until a repair that loads
SELECT repair_landing_id AS copy5, outcome FROM stage.repair('lc', ARRAY[:bad5], '{"amount": "x2"}', 'first try') \gset
SELECT :'outcome' AS predicted;
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lc');
SELECT landing_id = :bad5 AS original, landing_id = :copy5 AS copy, status, successor_id = :copy5 AS copy_is_successor
  FROM stage.quarantine WHERE pipeline = 'lc' ORDER BY landing_id;
SELECT * FROM lc_books();
-- the second try loads: a duplicate of order 5, already in the target
-- (on_duplicate skip); the original stays open, the copy closes nothing
SELECT outcome FROM stage.repair('lc', ARRAY[:bad5], '{"amount": "2"}', 'second try');
SELECT rows_in, rows_clean, rows_duplicate FROM stage.run_batch('lc');
SELECT count(*) AS open_items FROM stage.quarantine WHERE pipeline = 'lc';
SELECT * FROM lc_books();
SELECT stage.dismiss('lc', ARRAY[:bad5, :copy5], 'order 5 is already loaded');
SELECT count(*) AS open_items FROM stage.quarantine WHERE pipeline = 'lc';
SELECT * FROM lc_books();
RESET ROLE;

-- health: open items, their age, the closed ones by status, time to repair
SELECT dlq_size, dlq_open, dlq_oldest_open_age IS NULL AS none_open,
	   mean_time_to_repair > interval '0' AS repaired_after_a_while,
	   dlq_repaired, dlq_replayed, dlq_superseded, dlq_dismissed
  FROM stage.health WHERE pipeline = 'lc';
SELECT rule_name, rows, open_rows, closed_rows FROM stage.dlq_summary
 WHERE pipeline = 'lc' ORDER BY rule_name;
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line ~ '^stage_dlq_(open|oldest_open_age_seconds)\{pipeline="lc"\}' ORDER BY line;

-- retention: closed items go with stage.purge, open ones never
SET ROLE lc_owner;
INSERT INTO stage_landing.lc (order_id, email, amount, currency) VALUES ('20', 'z@example.com', 'zz', 'EUR');
SELECT rows_quarantined FROM stage.run_batch('lc');
SELECT stage.set_retention('lc', '0 seconds', '0 seconds');
SELECT stage.purge('lc') >= 0 AS purged;
SELECT status, count(*) FROM stage.quarantine_all WHERE pipeline = 'lc' GROUP BY 1 ORDER BY 1;
RESET ROLE;

-- repair_where: the open items of a rule, corrected by expressions over
-- the row as it landed, run as the owner (a superuser's call included)
CREATE TABLE lc_rw (id int PRIMARY KEY, amount numeric NOT NULL, cur text);
ALTER TABLE lc_rw OWNER TO lc_owner;
SET ROLE lc_owner;
SELECT stage.create_pipeline('lcrw', 'lc_rw', key => '{id}');
INSERT INTO stage_landing.lcrw (id, amount, cur) VALUES
	('1', '1,50', 'eur'), ('2', '2,75', 'usd'), ('3', '3.00', 'chf'), ('4', 'abc', 'eur');
SELECT rows_quarantined FROM stage.run_batch('lcrw');
SELECT * FROM stage.repair_where('lcrw', 'amount_type',
	'{"amount": "replace(amount, '','', ''.'')", "cur": "upper(cur)"}', 'decimal commas',
	dry_run => true);
SELECT * FROM stage.repair_where('lcrw', 'amount_type', '{"amount": "(SELECT 1)"}');
SELECT * FROM stage.repair_where('lcrw', 'amount_type', '{"amount": "_stage_source"}');
SELECT * FROM stage.repair_where('lcrw', 'amount_type', '{"amount": "nope"}');
SELECT * FROM stage.repair_where('lcrw', 'amount_type', '{"amount": 1}');
SELECT * FROM stage.repair_where('lcrw', 'amount_type', '{"amount": "1/0"}');
SELECT * FROM stage.repair_where('lcrw', 'no_such_rule', '{"amount": "amount"}');
RESET ROLE;
-- the owner's code, whoever calls: a superuser's repair sees the owner
SELECT landing_id, reasons->0->>'value' AS would_be
  FROM stage.repair_where('lcrw', 'amount_type',
	'{"amount": "current_user"}', dry_run => true);
-- and may not change the session's settings or role
SELECT * FROM stage.repair_where('lcrw', 'amount_type',
	'{"amount": "set_config(''role'', ''postgres'', false)"}', dry_run => true);
SELECT current_user = session_user AS still_myself;
SET ROLE lc_owner;
SELECT landing_id, repair_landing_id IS NOT NULL AS landed, outcome
  FROM stage.repair_where('lcrw', 'amount_type', '{"amount": "replace(amount, '','', ''.'')"}',
						  'decimal commas');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lcrw');
SELECT landing_id, status, successor_id IS NOT NULL AS has_successor, note
  FROM stage.quarantine_all WHERE pipeline = 'lcrw' ORDER BY landing_id;
SELECT * FROM lc_rw ORDER BY id;
SELECT stage.drop_pipeline('lcrw', force => true);
RESET ROLE;
DROP TABLE lc_rw;

-- a replayed row the target rejects is quarantined again: its item stays
-- open, with the replay's reasons (not a second item)
CREATE TABLE lc_nn (id int PRIMARY KEY, amount numeric NOT NULL);
SELECT stage.create_pipeline('lcnn', 'lc_nn', key => '{id}');
INSERT INTO stage_landing.lcnn (id, amount) VALUES ('1', 'N/A'), ('2', '$5');
SELECT rows_quarantined FROM stage.run_batch('lcnn');
SELECT stage.add_transform('lcnn', 'amount', 'nullif', '{"values": ["N/A"]}');
SELECT stage.add_transform('lcnn', 'amount', 'number', '{"currency": true}');
SELECT landing_id, outcome, reasons->0->>'kind' AS kind FROM stage.replay('lcnn') ORDER BY 1;
SELECT landing_id, status, kind FROM stage.quarantine_all WHERE pipeline = 'lcnn' ORDER BY 1;
SELECT * FROM lc_nn;
SELECT stage.drop_pipeline('lcnn', force => true);
DROP TABLE lc_nn;

-- jsonb pipelines: corrections apply to the payload
CREATE TABLE lc_events (id int PRIMARY KEY, n int);
SELECT stage.create_pipeline('lcj', 'lc_events', key => '{id}', format => 'jsonb');
INSERT INTO stage_landing.lcj (payload) VALUES ('{"id": 1, "n": "x"}');
SELECT rows_quarantined FROM stage.run_batch('lcj');
SELECT repair_landing_id IS NOT NULL AS landed, outcome
  FROM stage.repair('lcj', ARRAY[1], '{"n": 5}', 'n was text');
SELECT rows_clean FROM stage.run_batch('lcj');
SELECT * FROM lc_events;
SELECT status FROM stage.quarantine_all WHERE pipeline = 'lcj';

SELECT stage.drop_pipeline('lcj');
SELECT stage.drop_pipeline('lc', force => true);
DROP TABLE lc_orders, lc_events;
DROP FUNCTION lc_books();
DROP ROLE lc_owner, lc_other, lc_analyst;
-- the group roles create_roles made above are cluster-wide: they go too
DROP OWNED BY stage_producer, stage_analyst;
DROP ROLE stage_producer, stage_analyst;
