--
-- transforms: the transform stage of a contract.  add_transform /
-- drop_transform / add_landing_column, the contract document, the order
-- of the stages in a batch (sources, chains, lookups, expressions, then
-- type checks, rules, masks), failures quarantined with kind transform,
-- per-transform counts, stage.preview, stage.trace's columns, replay after
-- a transform is added, and the jsonb format's paths.
--
-- Every object of this file is prefixed tf_; the file drops what it creates.
--
\set SHOW_CONTEXT never
\set VERBOSITY default

CREATE SCHEMA tf_ref;
CREATE TABLE tf_ref.currency (code text PRIMARY KEY, iso text NOT NULL);
INSERT INTO tf_ref.currency VALUES ('euro', 'EUR'), ('dollar', 'USD'), ('pound', 'GBP');
CREATE TABLE tf_orders (
	id			integer PRIMARY KEY,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL CHECK (amount >= 0),
	currency	char(3) NOT NULL,
	ordered_on	date,
	paid		boolean,
	total		numeric,
	note		text,
	_stage_id	bigint
);
SELECT stage.create_pipeline('tf_orders', 'tf_orders', key => '{id}');

-- a partner's own name for the e-mail column: a landing column of its own
SELECT stage.add_landing_column('tf_orders', 'email_address');
SELECT stage.add_landing_column('tf_orders', 'email_address');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_landing_column('tf_orders', '_stage_x');
SELECT stage.add_landing_column('tf_orders', NULL);

-- the contract's transforms; names default to column_method
SELECT stage.add_transform('tf_orders', 'email', 'coalesce', '{"columns": ["email", "email_address"]}');
SELECT stage.add_transform('tf_orders', 'email', 'squish');
SELECT stage.add_transform('tf_orders', 'email', 'lower');
SELECT stage.add_transform('tf_orders', 'amount', 'nullif', '{"values": ["", "N/A", "-"]}');
SELECT stage.add_transform('tf_orders', 'amount', 'number', '{"decimal": ",", "group": ".", "currency": true}');
SELECT stage.add_transform('tf_orders', 'currency', 'lower');
SELECT stage.add_transform('tf_orders', 'currency', 'trim');
SELECT stage.add_transform('tf_orders', 'currency', 'lookup',
						   '{"table": "tf_ref.currency", "key": "code", "value": "iso", "on_missing": "reject"}');
SELECT stage.add_transform('tf_orders', 'ordered_on', 'date', '{"format": "Mon DD YYYY"}');
SELECT stage.add_transform('tf_orders', 'paid', 'map', '{"values": {"Y": "true", "N": "false"}, "else": "null"}');
SELECT stage.add_transform('tf_orders', 'total', 'expression', '{"sql": "amount * 1.2"}');
SELECT stage.add_transform('tf_orders', 'note', 'default', '{"value": "(none)"}');
SELECT stage.add_rule('tf_orders', 'email', 'format', '{"format": "email"}');
SELECT stage.add_mask('tf_orders', 'email', 'email');

-- refused: each with its SQLSTATE and a hint
SELECT stage.add_transform('tf_orders', 'nope', 'trim');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', '_stage_id', 'trim');
SELECT stage.add_transform('tf_orders', 'email', 'frobnicate');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', 'email', 'trim', '{"chars": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', 'email', 'from', '{"column": "nothere"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', 'email', 'from', '{"path": "customer.email"}');
SELECT stage.add_transform('tf_orders', 'currency', 'lookup', '{"table": "currency", "key": "code", "value": "iso"}');
SELECT stage.add_transform('tf_orders', 'currency', 'lookup', '{"table": "tf_ref.nope", "key": "code", "value": "iso"}');
SELECT stage.add_transform('tf_orders', 'currency', 'lookup', '{"table": "tf_ref.currency", "key": "nope", "value": "iso"}');
SELECT stage.add_transform('tf_orders', 'total', 'expression', '{"sql": "(SELECT 1)"}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', 'total', 'expression', '{"sql": "nope * 2"}');
SELECT stage.add_transform('tf_orders', 'total', 'expression', '{"sql": "amount) OR (true"}');
SELECT stage.add_transform('tf_orders', 'total', 'expression', '{"sql": "count(*)"}');
SELECT stage.add_transform('tf_orders', 'email', 'lower', transform_name => 'email_lower');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_transform('tf_orders', 'email', 'lower', transform_name => '');
SELECT stage.drop_transform('tf_orders', 'nope');
\echo :LAST_ERROR_SQLSTATE

-- the contract document lists them in declaration order and round-trips
SELECT t->>'name' AS name, t->>'column' AS column, t->>'method' AS method, t->'args' AS args
  FROM jsonb_array_elements(stage.contract('tf_orders')->'transforms') t;
SELECT stage.set_contract('tf_orders', stage.contract('tf_orders')) =
	   (stage.contract('tf_orders')->>'version')::int AS round_trip_is_a_no_op;
SELECT stage.set_contract('tf_orders', '{"transforms": [{"column": "email", "method": "trim", "bogus": 1}]}');

-- a messy partner file
INSERT INTO stage_landing.tf_orders (id, email, email_address, amount, currency, ordered_on, paid, note) VALUES
 ('1', '  Ana.Silva@Example.COM ', NULL, '1.234,50 €', ' Euro ', 'Jun 12 1998', 'Y', 'first'),
 ('2', NULL, 'BO@example.org', '€ 12', 'DOLLAR', 'Jan 02 2024', 'N', NULL),
 ('3', 'cy@example.net', NULL, 'N/A', 'pound', 'Jan 03 2024', '?', NULL),
 ('4', 'dd@example.net', NULL, '(5,00)', 'euro', 'Jan 04 2024', 'Y', NULL),
 ('5', 'ee@example.net', NULL, '7,00', 'yen', 'Jan 05 2024', 'Y', NULL),
 ('6', 'ff@example.net', NULL, '8,00', 'euro', 'Feb 30 2024', 'Y', NULL),
 ('7', 'not an email', NULL, '9,00', 'euro', 'Jan 07 2024', 'Y', NULL),
 ('8', 'hh@example.net', NULL, 'abc', 'euro', 'Jan 08 2024', 'Y', NULL);
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('tf_orders');

-- transformed and written: masks apply to the transformed value
SELECT id, email, amount, currency, ordered_on, paid, total, note FROM tf_orders ORDER BY id;

-- quarantined: the reason names the transform and shows the value it failed on
SELECT q.landing_id, r->>'kind' AS kind, r->>'rule' AS rule, r->>'column' AS column,
	   r->>'value' AS value, r->>'sqlstate' AS sqlstate, r->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline = 'tf_orders' ORDER BY q.landing_id, r->>'rule';
-- the raw row is kept as it landed, its own landing columns included
SELECT landing_id, raw_data->>'amount' AS amount, raw_data->>'currency' AS currency,
	   raw_data ? 'email_address' AS has_email_address
  FROM stage.quarantine_raw('tf_orders') ORDER BY landing_id;

-- counts per transform and batch
SELECT transform_name, column_name, method, applied, changed, nulled, failed
  FROM stage.transform_stats WHERE pipeline = 'tf_orders' ORDER BY transform_name;

-- preview: the row as it would be written, what the transforms changed, the reasons
SELECT jsonb_pretty(stage.preview('tf_orders',
	'{"id": "9", "email_address": " Zed@Example.ORG", "amount": "(1.000,00)",
	  "currency": "POUND", "ordered_on": "Dec 24 2025", "paid": "N"}'));
SELECT stage.preview('tf_orders', '{"id": "10", "amount": "x", "currency": "yen", "nope": 1}') -> 'reasons';
SELECT stage.preview('tf_orders', '[1]');

-- trace: where the row went, and what the current transforms make of its values
SELECT batch_id IS NOT NULL AS in_a_batch, outcome, columns->'amount' AS amount, columns->'currency' AS currency
  FROM stage.trace('tf_orders', 1);

-- replay: a currency the lookup lacked, once the reference table has it
INSERT INTO tf_ref.currency VALUES ('yen', 'JPY');
SELECT landing_id, outcome FROM stage.replay('tf_orders', ids => '{5}');
SELECT id, currency FROM tf_orders WHERE id = 5;
-- a value no transform handled yet: quarantined for its type, then a
-- transform added and the row replayed through the current contract
CREATE TABLE tf_prices (id integer PRIMARY KEY, amount numeric(12,2) NOT NULL);
SELECT stage.create_pipeline('tf_prices', 'tf_prices', key => '{id}');
INSERT INTO stage_landing.tf_prices (id, amount) VALUES ('1', '$24,551'), ('2', '13.5');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('tf_prices');
SELECT landing_id, reasons->0->>'rule' AS rule FROM stage.quarantine WHERE pipeline = 'tf_prices';
SELECT stage.add_transform('tf_prices', 'amount', 'number', '{"decimal": ".", "group": ",", "currency": true}');
SELECT landing_id, outcome FROM stage.replay('tf_prices', ids => '{1}');
SELECT id, amount FROM tf_prices ORDER BY id;
SELECT transform_name, applied, changed FROM stage.transform_stats WHERE pipeline = 'tf_prices';
SELECT stage.drop_transform('tf_prices', 'amount_number');
SELECT stage.contract('tf_prices')->'transforms' AS none_left;

-- jsonb format: nested paths and top-level keys
CREATE TABLE tf_events (id integer PRIMARY KEY, email text, kind text, _stage_id bigint);
SELECT stage.create_pipeline('tf_events', 'tf_events', key => '{id}', format => 'jsonb');
SELECT stage.add_transform('tf_events', 'email', 'from', '{"path": "customer.contact.email"}');
SELECT stage.add_transform('tf_events', 'kind', 'coalesce', '{"paths": ["type", "event.kind"]}');
SELECT stage.add_transform('tf_events', 'kind', 'upper');
SELECT stage.add_landing_column('tf_events', 'x');
INSERT INTO stage_landing.tf_events (payload) VALUES
 ('{"id": 1, "customer": {"contact": {"email": "a@example.com"}}, "type": "click"}'),
 ('{"id": 2, "customer": {"contact": {}}, "event": {"kind": "view"}}'),
 ('{"id": 3}');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('tf_events');
SELECT id, email, kind FROM tf_events ORDER BY id;

-- who may do what
CREATE ROLE tf_other;
SET ROLE tf_other;
SELECT stage.add_transform('tf_orders', 'email', 'trim');
SELECT stage.preview('tf_orders', '{"id": "1"}');
SELECT stage.add_landing_column('tf_orders', 'y');
SELECT count(*) AS rows_seen FROM stage.transform_stats WHERE pipeline = 'tf_orders';
RESET ROLE;
-- a producer granted before a landing column was added may fill it
CREATE ROLE tf_producer;
SELECT stage.grant_producer('tf_orders', 'tf_producer');
SELECT stage.add_landing_column('tf_orders', 'partner_ref');
SET ROLE tf_producer;
INSERT INTO stage_landing.tf_orders (id, partner_ref) VALUES ('20', 'P-20');
RESET ROLE;
SELECT id, partner_ref FROM stage_landing.tf_orders WHERE id = '20';

SELECT stage.drop_pipeline('tf_orders', force => true);
SELECT stage.drop_pipeline('tf_events');
SELECT stage.drop_pipeline('tf_prices');
DROP TABLE tf_orders, tf_events, tf_prices;
DROP SCHEMA tf_ref CASCADE;
DROP ROLE tf_other;
DROP ROLE tf_producer;
