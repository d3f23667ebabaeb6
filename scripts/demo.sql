-- demo.sql: a partner order feed through stage, end to end.
-- Run by scripts/demo.sh (`make demo`) against a throwaway cluster.

\set ON_ERROR_STOP 1
\set QUIET 1
\pset null '(null)'

\echo
\echo '== 1. The clean target table the business reads'
CREATE EXTENSION stage;

CREATE TABLE public.orders (
	order_id		bigint PRIMARY KEY,
	customer_email	text NOT NULL,
	phone			text,
	amount			numeric(12,2) NOT NULL,
	currency		char(3) NOT NULL,
	ordered_at		timestamptz NOT NULL,
	card_number		text
);
\d public.orders

\echo
\echo '== 2. A pipeline into it, with its contract: rules and masks'
SELECT stage.create_pipeline('orders', 'public.orders', key => '{order_id}') AS landing_table;

-- each call returns the new contract version; the result is shown below
\o /dev/null

SELECT stage.add_rule('orders', 'customer_email', 'not_null',
		rule_name => 'email_required') AS contract_version;
SELECT stage.add_rule('orders', 'customer_email', 'regex',
		'{"pattern": "^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", "flags": "i"}',
		rule_name => 'email_format') AS contract_version;
SELECT stage.add_rule('orders', 'amount', 'range', '{"min": 0, "max": 100000}',
		rule_name => 'amount_range') AS contract_version;
SELECT stage.add_rule('orders', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}',
		rule_name => 'currency_known') AS contract_version;
SELECT stage.add_rule('orders', 'phone', 'regex', '{"pattern": "^\\+?[0-9][0-9 ()-]{6,19}$"}',
		rule_name => 'phone_format') AS contract_version;

SELECT stage.add_mask('orders', 'customer_email', 'email') AS contract_version;
SELECT stage.add_mask('orders', 'card_number', 'card') AS contract_version;
SELECT stage.add_mask('orders', 'phone', 'partial',
		'{"keep_start": 0, "keep_end": 4, "fill": "*"}') AS contract_version;

\o

SELECT pipeline, target, landing, key, on_duplicate, contract_version, rules, masks
  FROM stage.pipelines;

SELECT r.name AS rule_name, r."column", r.kind, r.args, r.severity
  FROM jsonb_to_recordset(stage.contract('orders') -> 'rules')
	   AS r(name text, "column" text, kind text, args jsonb, severity text);

SELECT m."column", m.method, m.args
  FROM jsonb_to_recordset(stage.contract('orders') -> 'masks')
	   AS m("column" text, method text, args jsonb);

\echo
\echo '== 3. Two partners land 5000 orders (every column is text: nothing is refused at the door)'
\echo '   about 6% are bad: malformed or missing e-mails, negative or non-numeric amounts,'
\echo '   unknown currencies, impossible dates, missing amounts, bad phone numbers;'
\echo '   partner-b then re-sends 30 orders it had already sent.'

CREATE TEMPORARY VIEW demo_feed AS
SELECT i,
	   (100000 + i)::text AS order_id,
	   CASE
		 WHEN i % 100 = 7 THEN 'customer' || i || '.example.com'          -- no @
		 WHEN i % 100 = 71 THEN NULL                                       -- missing
		 ELSE (ARRAY['maria', 'li', 'sam', 'olga', 'kwame', 'ana', 'john', 'aiko'])[i % 8 + 1]
			  || '.' || (ARRAY['garcia', 'chen', 'smith', 'petrova', 'mensah', 'silva'])[i % 6 + 1]
			  || i || '@' || (ARRAY['example.com', 'mail.example.org', 'shop.example.net'])[i % 3 + 1]
	   END AS customer_email,
	   CASE
		 WHEN i % 500 = 123 THEN 'call after 6pm'
		 ELSE '+1 415 555 ' || lpad((i * 37 % 10000)::text, 4, '0')
	   END AS phone,
	   CASE
		 WHEN i % 100 = 19 THEN '-' || round(((i * 7919) % 49900 + 100) / 100.0, 2)
		 WHEN i % 100 = 57 THEN 'abc'
		 WHEN i % 250 = 90 THEN NULL
		 ELSE round(((i * 7919) % 49900 + 100) / 100.0, 2)::text
	   END AS amount,
	   CASE
		 WHEN i % 100 = 31 THEN 'XYZ'
		 ELSE (ARRAY['USD', 'EUR', 'GBP'])[i % 3 + 1]
	   END AS currency,
	   CASE
		 WHEN i % 100 = 43 THEN '2024-13-45 10:00:00+00'
		 ELSE to_char(timestamptz '2024-06-01 00:00:00+00' + i * interval '7 minutes',
					  'YYYY-MM-DD"T"HH24:MI:SS"Z"')
	   END AS ordered_at,
	   '4000 1234 5678 ' || lpad((i * 13 % 10000)::text, 4, '0') AS card_number,
	   i % 100 IN (7, 19, 31, 43, 57, 71) OR i % 250 = 90 OR i % 500 = 123 AS bad
  FROM generate_series(1, 5000) AS i;

-- partner-a: a bulk load of its share
INSERT INTO stage_landing.orders
	(order_id, customer_email, phone, amount, currency, ordered_at, card_number, _stage_source)
SELECT order_id, customer_email, phone, amount, currency, ordered_at, card_number, 'partner-a'
  FROM demo_feed WHERE i % 3 <> 0 ORDER BY i;

-- partner-b: its share, then a retry of 30 orders it had already sent
INSERT INTO stage_landing.orders
	(order_id, customer_email, phone, amount, currency, ordered_at, card_number, _stage_source)
SELECT order_id, customer_email, phone, amount, currency, ordered_at, card_number, 'partner-b'
  FROM demo_feed WHERE i % 3 = 0 ORDER BY i;

INSERT INTO stage_landing.orders
	(order_id, customer_email, phone, amount, currency, ordered_at, card_number, _stage_source)
SELECT order_id, customer_email, phone, amount, currency, ordered_at, card_number, 'partner-b'
  FROM demo_feed WHERE i % 3 = 0 AND NOT bad ORDER BY i LIMIT 30;

SELECT _stage_source AS source, count(*) AS landed
  FROM stage_landing.orders GROUP BY 1 ORDER BY 1;

\echo
\echo '== 4. Move them: one batch of at most 1000 rows by hand ...'
SELECT * FROM stage.run_batch('orders', 1000);

\echo '   ... then everything still pending (what pg_cron or the background worker does)'
SELECT stage.run_all() AS rows_processed;

\echo
\echo '== 5. Every batch (stage.batches)'
SELECT batch_id, status, contract_version, rows_in, rows_clean, rows_quarantined,
	   rows_duplicate, from_id, to_id
  FROM stage.batches WHERE pipeline = 'orders' ORDER BY batch_id;

\echo
\echo '== 6. Why rows were quarantined (stage.dlq_summary)'
SELECT rule_name, kind, column_name, sum(rows) AS rows
  FROM stage.dlq_summary WHERE pipeline = 'orders'
 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1;

\echo
\echo '== 7. One quarantined row per reason (stage.quarantine; masked columns stay masked here too)'
SELECT DISTINCT ON (rule_name) landing_id, source, rule_name, column_name,
	   CASE WHEN length(message) > 60 THEN left(message, 57) || '...' ELSE message END AS message,
	   row_data ->> 'customer_email' AS customer_email, row_data ->> 'amount' AS amount
  FROM stage.quarantine WHERE pipeline = 'orders'
 ORDER BY rule_name, landing_id;

\echo
\echo '== 8. Clean rows: e-mail, card and phone were masked before the row was written'
SELECT order_id, customer_email, phone, amount, currency, ordered_at, card_number
  FROM public.orders ORDER BY order_id LIMIT 5;

\echo
\echo '== 9. Where did a landing row go? (stage.trace)'
SELECT l._stage_id AS landing_id, l.order_id, l._stage_source AS sent_by,
	   t.outcome, t.batch_id, t.contract_version
  FROM stage_landing.orders l
  CROSS JOIN LATERAL stage.trace('orders', l._stage_id) t
 WHERE l.order_id IN ('100001', '100003', '100007', '100043')
 ORDER BY l._stage_id;

\echo
\echo '== 10. Lineage: each batch is a run with its input, outputs and contract version (stage.lineage)'
SELECT batch_id, input, output, quarantine, contract_version,
	   rows_in, rows_clean, rows_quarantined, rows_duplicate
  FROM stage.lineage WHERE pipeline = 'orders' ORDER BY batch_id;

\echo
\echo '== 11. A third partner sends 300 orders its own way: "$1,234.50", " eur ", "  Maria.Garcia@Example.COM ",'
\echo '   "N/A" for an unknown amount.  With the contract as it is, most go to quarantine:'
INSERT INTO stage_landing.orders
	(order_id, customer_email, phone, amount, currency, ordered_at, card_number, _stage_source)
SELECT (200000 + i)::text,
	   '  ' || initcap((ARRAY['maria', 'li', 'sam', 'olga'])[i % 4 + 1]) || '.'
			|| initcap((ARRAY['garcia', 'chen', 'smith'])[i % 3 + 1]) || i || '@Example.COM ',
	   '+44 20 7946 ' || lpad((i * 7 % 10000)::text, 4, '0'),
	   CASE WHEN i % 50 = 0 THEN 'N/A' ELSE '$' || to_char(1000 + i * 3.5, 'FM9,999.00') END,
	   (ARRAY[' eur ', 'usd', 'Gbp '])[i % 3 + 1],
	   to_char(timestamptz '2024-09-01 00:00:00+00' + i * interval '11 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
	   NULL, 'partner-c'
  FROM generate_series(1, 300) AS i;
SELECT stage.run_all() AS rows_processed;
SELECT rule_name, kind, column_name, sum(rows) AS rows
  FROM stage.dlq_summary WHERE pipeline = 'orders'
   AND rule_name IN ('amount_type', 'currency_known', 'currency_type', 'email_format')
 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1;

\echo
\echo '== 12. Transforms repair what can be repaired, declared in the contract and run in C in each batch'
\o /dev/null
SELECT stage.add_transform('orders', 'customer_email', 'squish');
SELECT stage.add_transform('orders', 'customer_email', 'lower');
SELECT stage.add_transform('orders', 'amount', 'nullif', '{"values": ["N/A", ""]}');
SELECT stage.add_transform('orders', 'amount', 'number', '{"decimal": ".", "group": ",", "currency": true}');
SELECT stage.add_transform('orders', 'currency', 'squish');
SELECT stage.add_transform('orders', 'currency', 'upper');
\o
SELECT t.name AS transform_name, t."column", t.method, t.args
  FROM jsonb_to_recordset(stage.contract('orders') -> 'transforms')
	   AS t(name text, "column" text, method text, args jsonb);
\echo '   one messy row, tried before it lands (stage.preview, for the owner):'
SELECT key AS column_name, value ->> 'landed' AS landed, value ->> 'value' AS transformed
  FROM jsonb_each(stage.preview('orders', '{"order_id": "299999", "customer_email": "  Li.Chen9@Example.COM ",
		"phone": "+44 20 7946 0000", "amount": "$1,234.50", "currency": " eur ",
		"ordered_at": "2024-09-02T10:00:00Z"}') -> 'transformed');
\echo '   partner-c''s quarantined rows replayed through the new contract:'
SELECT outcome, count(*) AS rows
  FROM stage.replay('orders', ids => (SELECT array_agg(landing_id) FROM stage.quarantine
									   WHERE pipeline = 'orders' AND source = 'partner-c'))
 GROUP BY 1 ORDER BY 1;
SELECT q.rule_name, q.kind, count(*) AS still_quarantined
  FROM stage.quarantine q WHERE q.pipeline = 'orders' AND q.source = 'partner-c'
 GROUP BY 1, 2;
SELECT transform_name, applied, changed, nulled, failed
  FROM stage.transform_stats WHERE pipeline = 'orders' ORDER BY transform_name;
SELECT order_id, customer_email, amount, currency
  FROM public.orders WHERE order_id > 200000 ORDER BY order_id LIMIT 3;

\echo
\echo '== 13. Quarantine is a work queue: each item ends repaired, superseded, replayed or dismissed'
\echo '   partner-a and partner-b confirm their negative amounts were refunds sent as orders: dismissed'
SELECT stage.dismiss('orders', (SELECT array_agg(landing_id) FROM stage.quarantine
								 WHERE pipeline = 'orders' AND rule_name = 'amount_range'),
					 'refunds sent as orders by mistake, confirmed by the partners') AS dismissed;
\echo '   partner-c sends the amounts it had as N/A: each correction lands as a copy of the row'
SELECT count(*) AS copies, count(*) FILTER (WHERE outcome = 'clean') AS predicted_clean
  FROM stage.repair('orders', (SELECT array_agg(landing_id) FROM stage.quarantine
								WHERE pipeline = 'orders' AND source = 'partner-c'),
					'{"amount": "99.00"}', 'amounts from the partner''s mail of 2 May');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('orders');
\echo '   one chain, from the row that failed to the copy that loaded (stage.trace):'
SELECT landing_row, batch_id, outcome, status, note
  FROM stage.trace('orders', (SELECT min(landing_id) FROM stage.quarantine_all
							   WHERE pipeline = 'orders' AND status = 'repaired'));
\echo '   the queue by status (stage.quarantine_all; stage.quarantine shows the open items):'
SELECT status, count(*) AS items FROM stage.quarantine_all WHERE pipeline = 'orders'
 GROUP BY 1 ORDER BY 1;
SELECT dlq_open, dlq_repaired, dlq_replayed, dlq_superseded, dlq_dismissed
  FROM stage.health WHERE pipeline = 'orders';

\echo
\echo '== 14. The books balance: every landing row is in exactly one place'
\echo '   (a quarantine item keeps its row unless the row itself was replayed into the target)'
SELECT landing, clean, quarantined, duplicates, pending,
	   landing = clean + quarantined + duplicates + pending AS balanced
  FROM (SELECT
		  (SELECT count(*) FROM stage_landing.orders) AS landing,
		  (SELECT count(*) FROM public.orders) AS clean,
		  (SELECT count(*) FROM stage.quarantine_all
			WHERE pipeline = 'orders' AND status <> 'replayed') AS quarantined,
		  (SELECT sum(rows_duplicate) FROM stage.batches WHERE pipeline = 'orders') AS duplicates,
		  stage.backlog('orders') AS pending
	   ) AS n;
