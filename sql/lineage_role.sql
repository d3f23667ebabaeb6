--
-- lineage_role: every landing row records the role that inserted it
-- (_stage_role, CURRENT_USER by default).  Producers and owners may insert
-- the data columns and _stage_source, never _stage_role; the mover ignores
-- it; stage.trace, stage.quarantine, stage.landing_sources and
-- stage.sources show it.
--
-- Every object of this file is prefixed lr_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE ROLE lr_owner;
CREATE ROLE lr_producer;
CREATE ROLE lr_other;
CREATE ROLE lr_stranger;
CREATE TABLE lr_orders (id integer PRIMARY KEY, qty integer CHECK (qty > 0), _stage_id bigint);
ALTER TABLE lr_orders OWNER TO lr_owner;
SELECT stage.create_pipeline('lr_orders', 'lr_orders', key => '{id}');
SELECT stage.grant_producer('lr_orders', 'lr_producer');
SELECT stage.grant_producer('lr_orders', 'lr_other');

-- the column: after the other metadata columns, text (a name would take 64
-- bytes in every row), never NULL
SELECT attnum, attname, atttypid::regtype, attnotnull,
	   pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'stage_landing.lr_orders'::regclass AND a.attnum > 0
   AND a.attname LIKE '\_stage%' ORDER BY attnum;
-- who may insert which columns: nobody but the catalog owner may set it
SELECT r AS role, array_agg(a.attname ORDER BY a.attnum) AS insertable
  FROM unnest(ARRAY['lr_owner', 'lr_producer']) r,
	   pg_attribute a
 WHERE a.attrelid = 'stage_landing.lr_orders'::regclass AND a.attnum > 0
   AND has_column_privilege(r, a.attrelid, a.attnum, 'INSERT')
 GROUP BY r ORDER BY r;

-- a producer cannot forge it, by INSERT or COPY
SET ROLE lr_producer;
INSERT INTO stage_landing.lr_orders (id, qty, _stage_role) VALUES ('9', '9', 'lr_other');
COPY stage_landing.lr_orders (id, qty, _stage_role) FROM stdin;
9	9	lr_other
\.
-- nor can the owner
SET ROLE lr_owner;
INSERT INTO stage_landing.lr_orders (id, qty, _stage_role) VALUES ('9', '9', 'lr_other');

-- what they land records who they are
SET ROLE lr_producer;
INSERT INTO stage_landing.lr_orders (_stage_source, id, qty) VALUES ('feed', '1', '1');
COPY stage_landing.lr_orders (_stage_source, id, qty) FROM stdin;
file	2	2
file	3	-3
\.
SET ROLE lr_other;
INSERT INTO stage_landing.lr_orders (_stage_source, id, qty) VALUES ('feed', '4', '4');
SET ROLE lr_owner;
INSERT INTO stage_landing.lr_orders (_stage_source, id, qty) VALUES ('manual', '5', '5');
RESET ROLE;
SELECT _stage_id, _stage_source, _stage_role FROM stage_landing.lr_orders ORDER BY _stage_id;

-- the mover ignores it: no drift, no extra column, every row accounted for
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('lr_orders');
SELECT id, qty, _stage_id FROM lr_orders ORDER BY id;
SELECT landing_id, row_data, source, role FROM stage.quarantine WHERE pipeline = 'lr_orders';
-- a replay that quarantines the row again keeps its role
SELECT landing_id, outcome FROM stage.replay('lr_orders', ARRAY[3::bigint]);
SELECT landing_id, source, role FROM stage.quarantine WHERE pipeline = 'lr_orders';

-- trace shows the role beside the source
SET ROLE lr_owner;
SELECT landing_row, outcome, source, role FROM stage.trace('lr_orders', 2);
SELECT landing_row, outcome, source, role FROM stage.trace('lr_orders', 3);

-- a repair copy records the role that repaired
SELECT landing_id, repair_landing_id, outcome
  FROM stage.repair('lr_orders', ARRAY[3::bigint], '{"qty": "3"}', 'sign fixed');
SELECT landing_row, outcome, status, source, role FROM stage.trace('lr_orders', 3);
RESET ROLE;

-- check_row takes the row as it landed, without metadata
SELECT stage.check_row('lr_orders', '{"id": "7", "qty": "7", "_stage_role": "lr_other"}');

-- who landed what
SET ROLE lr_owner;
SELECT source, role, rows FROM stage.landing_sources('lr_orders');
RESET ROLE;
SELECT pipeline, source, role, rows, first_received_at <= last_received_at AS ordered
  FROM stage.sources WHERE pipeline = 'lr_orders' ORDER BY source, role;
-- for those who may see the pipeline only
SET ROLE lr_stranger;
SELECT * FROM stage.landing_sources('lr_orders');
SELECT count(*) AS visible FROM stage.sources WHERE pipeline = 'lr_orders';
SET ROLE lr_producer;
SELECT count(*) AS visible FROM stage.sources WHERE pipeline = 'lr_orders';
RESET ROLE;

-- format jsonb: the same column, and the payload alone is the row
CREATE TABLE lr_events (id integer PRIMARY KEY, kind text);
ALTER TABLE lr_events OWNER TO lr_owner;
SELECT stage.create_pipeline('lr_events', 'lr_events', key => '{id}', format => 'jsonb');
SELECT stage.set_contract('lr_events', '{"drift": "quarantine"}') > 0 AS drift_quarantined;
SELECT stage.grant_producer('lr_events', 'lr_producer');
SET ROLE lr_producer;
INSERT INTO stage_landing.lr_events (payload) VALUES ('{"id": 1, "kind": "a"}');
INSERT INTO stage_landing.lr_events (payload, _stage_role) VALUES ('{"id": 2, "kind": "b"}', 'lr_owner');
RESET ROLE;
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('lr_events');
SELECT rows_drift FROM stage.batches WHERE pipeline = 'lr_events';
SELECT _stage_id, _stage_role, payload FROM stage_landing.lr_events ORDER BY _stage_id;

-- a target column named _stage_role is refused, like every _stage_ name
CREATE TABLE lr_bad (id integer, _stage_role name);
SELECT stage.create_pipeline('lr_bad', 'lr_bad');

SELECT stage.drop_pipeline('lr_orders', force => true);
SELECT stage.drop_pipeline('lr_events');
DROP TABLE lr_orders, lr_events, lr_bad;
DROP ROLE lr_owner, lr_producer, lr_other, lr_stranger;
