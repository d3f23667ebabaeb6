--
-- publish: a staging node names itself (stage.node_name) in its history
-- rows and in a target's _stage_node lineage column, and publishes its
-- targets (stage.publish) and history (stage.publish_history) for a
-- warehouse; nothing raw is published: no landing table, no raw column of
-- the quarantine, no target column filled from a masked column's raw value,
-- no published column losing its mask.
--
-- Every object of this file is prefixed pb_; the file drops what it creates.
--
\set SHOW_CONTEXT never

CREATE ROLE pb_owner;
CREATE ROLE pb_other;
CREATE ROLE pb_squatter;

-- ------------------------------------------------------ the node's name
-- unset: the system identifier and the database
SELECT stage.node_name() = (SELECT system_identifier::text FROM pg_control_system())
	   || '/' || current_database() AS unset_is_system_and_database;
SET stage.node_name = 'edge 1';
SET stage.node_name = 'edge-1.eu_west-0123456789-0123456789-0123456789-0123456789-012345';
SET stage.node_name = 'edge-1.eu_west';
SELECT stage.node_name();
-- a superuser setting: nobody else may make rows claim another node
SET ROLE pb_owner;
SET stage.node_name = 'spoofed';
SELECT stage.node_name();
RESET ROLE;

-- ---------------------------------------------- the _stage_node column
CREATE TABLE pb_bad (id integer PRIMARY KEY, _stage_node integer);
SELECT stage.create_pipeline('pb_bad', 'pb_bad', key => '{id}');
DROP TABLE pb_bad;

CREATE TABLE pb_orders (order_id integer PRIMARY KEY, email text, contact text,
						amount numeric, _stage_id bigint, _stage_node text);
ALTER TABLE pb_orders OWNER TO pb_owner;
SET ROLE pb_owner;
SELECT stage.create_pipeline('pb_orders', 'pb_orders', key => '{order_id}');
-- never a landing column, never transformed
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'stage_landing' AND table_name = 'pb_orders' AND column_name LIKE '\_stage\_%'
 ORDER BY column_name;
SELECT stage.add_transform('pb_orders', '_stage_node', 'trim');
SELECT stage.add_mask('pb_orders', 'email', 'email');
RESET ROLE;
INSERT INTO stage_landing.pb_orders (order_id, email, amount)
VALUES ('1', 'ann@example.org', '5'), ('2', 'bob@example.org', '-1'), ('x', 'cy@example.org', '1');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('pb_orders');
SELECT order_id, email, _stage_id, _stage_node FROM pb_orders ORDER BY order_id;
-- the history rows name the node
SELECT (SELECT node FROM stage.pipeline WHERE name = 'pb_orders') AS pipeline,
	   (SELECT string_agg(DISTINCT b.node, ',') FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'pb_orders') AS batches,
	   (SELECT string_agg(DISTINCT q.node, ',') FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
		 WHERE p.name = 'pb_orders') AS quarantine;

-- ----------------------------------------------------- stage.publish
-- argument errors
SELECT stage.publish(NULL);
SELECT stage.publish('pb_nope');
SET ROLE pb_other;
SELECT stage.publish('pb_orders');
RESET ROLE;
SET ROLE pb_owner;
SELECT stage.publish('pb_orders', columns => '{}');
SELECT stage.publish('pb_orders', columns => ARRAY['order_id', NULL]);
SELECT stage.publish('pb_orders', columns => ARRAY['order_id', '_stage_txid']);
-- the replica identity must be published (updates of the target would fail)
SELECT stage.publish('pb_orders', columns => ARRAY['email', 'amount']);
-- every column
SELECT stage.publish('pb_orders');
RESET ROLE;
SELECT pubname, pubowner = (SELECT relowner FROM pg_class WHERE oid = 'stage.pipeline'::regclass) AS stage_made,
	   pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
  FROM pg_publication WHERE pubname = 'stage_pb_orders';
SELECT schemaname, tablename, attnames FROM pg_publication_tables WHERE pubname = 'stage_pb_orders';

-- a column filled from the masked email's raw value may not join it ...
SET ROLE pb_owner;
SELECT stage.add_transform('pb_orders', 'contact', 'concat', '{"columns": ["email", "amount"]}');
-- ... nor be published once it is there: publish the other columns
SELECT stage.publish('pb_orders', columns => ARRAY['order_id', 'email', 'amount', '_stage_id', '_stage_node']);
SELECT stage.add_transform('pb_orders', 'contact', 'concat', '{"columns": ["email", "amount"]}');
SELECT stage.publish('pb_orders');
-- through another column, or named in an expression however it is spelled, it is raw all the same
SELECT stage.add_transform('pb_orders', 'amount', 'expression', '{"sql": "length(EMAIL)"}');
SELECT stage.add_transform('pb_orders', 'amount', 'expression', '{"sql": "length(U&\"\\0065mail\")"}');
RESET ROLE;
SELECT pipeline_id AS pb_id FROM stage.pipeline WHERE name = 'pb_orders' \gset
SELECT * FROM stage._raw_columns(:pb_id);
-- an internal function: the catalog owner's alone
SET ROLE pb_owner;
SELECT * FROM stage._raw_columns(:pb_id);
RESET ROLE;
SET ROLE pb_owner;
-- a published column keeps its mask
SELECT stage.drop_mask('pb_orders', 'email');
SELECT stage.alter_mask('pb_orders', 'email', 'redact', '{"pattern": "^[^@]+"}');
SELECT attnames FROM pg_publication_tables WHERE pubname = 'stage_pb_orders';
-- masked itself, the column is no longer raw
SELECT stage.add_mask('pb_orders', 'contact', 'redact', '{"pattern": "."}');
SELECT stage.publish('pb_orders');
SELECT attnames FROM pg_publication_tables WHERE pubname = 'stage_pb_orders';

-- --------------------------------- raw through what a masked column reads
RESET ROLE;
-- a jsonb pipeline: another column from the masked column's path
CREATE TABLE pb_json (id integer PRIMARY KEY, email text, contact text, note text);
SELECT stage.create_pipeline('pb_json', 'pb_json', format => 'jsonb', key => '{id}');
SELECT stage.add_transform('pb_json', 'email', 'from', '{"path": "customer.email"}');
SELECT stage.add_transform('pb_json', 'contact', 'from', '{"path": ["customer", "email"]}');
SELECT stage.add_transform('pb_json', 'note', 'from', '{"path": "customer.note"}');
SELECT stage.add_mask('pb_json', 'email', 'email');
SELECT stage.publish('pb_json');
SELECT stage.publish('pb_json', columns => ARRAY['id', 'email', 'note']);
-- a landing column that feeds the masked column and another one
CREATE TABLE pb_extra (id integer PRIMARY KEY, email text, contact text, phone text);
SELECT stage.create_pipeline('pb_extra', 'pb_extra', key => '{id}');
SELECT stage.add_landing_column('pb_extra', 'mail_in');
SELECT stage.add_transform('pb_extra', 'email', 'from', '{"column": "mail_in"}');
SELECT stage.add_transform('pb_extra', 'contact', 'coalesce', '{"columns": ["phone", "mail_in"]}');
SELECT stage.add_mask('pb_extra', 'email', 'email');
SELECT stage.publish('pb_extra');
SELECT pipeline_id AS pb_extra_id FROM stage.pipeline WHERE name = 'pb_extra' \gset
SELECT * FROM stage._raw_columns(:pb_extra_id);
SELECT stage.drop_pipeline(p) FROM unnest(ARRAY['pb_json', 'pb_extra']) p;
DROP TABLE pb_json, pb_extra;
SET ROLE pb_owner;

-- ----------------------------------------------- stage.publish_history
-- a superuser's decision
SELECT stage.publish_history();
RESET ROLE;
-- an item quarantined before one of the present masks shows the column unmasked as stored
SELECT q.landing_id, q.contract_version, q.row_data FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name = 'pb_orders';
SELECT stage.publish_history();
SELECT stage.dismiss('pb_orders', ARRAY[3]::bigint[], 'stored before the present masks');
SELECT stage.set_retention('pb_orders', '0', '0');
SELECT pg_sleep(0.01);
SELECT stage.purge();
SELECT stage.publish_history();
SELECT tablename, attnames FROM pg_publication_tables WHERE pubname = 'stage_history' ORDER BY tablename;
-- the history is published: every column of the target leaves with the quarantine
SET ROLE pb_owner;
SELECT stage.add_transform('pb_orders', 'amount', 'concat', '{"columns": ["email"]}');
RESET ROLE;

-- ------------------------------------------- somebody else's publication
CREATE TABLE pb_squat (id integer PRIMARY KEY);
ALTER TABLE pb_squat OWNER TO pb_squatter;
SELECT format('GRANT CREATE ON DATABASE %I TO pb_squatter', current_database()) \gexec
SET ROLE pb_squatter;
CREATE PUBLICATION stage_pb_squat FOR TABLE pb_squat;
RESET ROLE;
SELECT stage.create_pipeline('pb_squat', 'pb_squat', key => '{id}');
SELECT stage.publish('pb_squat');
SELECT stage.unpublish('pb_squat');
SELECT stage.drop_pipeline('pb_squat');
SELECT pubname FROM pg_publication WHERE pubname = 'stage_pb_squat';
DROP PUBLICATION stage_pb_squat;
SELECT format('REVOKE CREATE ON DATABASE %I FROM pb_squatter', current_database()) \gexec

-- a pipeline that updates rows needs a replica identity to be published
CREATE TABLE pb_upd (id integer NOT NULL, v text, _stage_node text);
CREATE UNIQUE INDEX ON pb_upd (id);
SELECT stage.create_pipeline('pb_upd', 'pb_upd', key => '{id}', on_duplicate => 'update');
SELECT stage.publish('pb_upd');
ALTER TABLE pb_upd REPLICA IDENTITY USING INDEX pb_upd_id_idx;
SELECT stage.publish('pb_upd');
-- updates a warehouse keyed by node can find: the node in the replica identity
ALTER TABLE pb_upd ALTER COLUMN _stage_node SET NOT NULL;
CREATE UNIQUE INDEX pb_upd_node ON pb_upd (id, _stage_node);
ALTER TABLE pb_upd REPLICA IDENTITY USING INDEX pb_upd_node;
SELECT stage.publish('pb_upd');
SELECT stage.drop_pipeline('pb_upd');
DROP TABLE pb_upd;

-- a name stage cannot make a publication of
CREATE TABLE pb_long (id integer);
SELECT stage.create_pipeline('pb_long_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'pb_long');
SELECT stage.publish('pb_long_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
SELECT stage.drop_pipeline('pb_long_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
DROP TABLE pb_long;

-- ------------------------------------------- the node's name changed
SET stage.node_name = 'edge-2';
SET ROLE pb_owner;
SELECT stage.publish('pb_orders');
RESET ROLE;
SELECT stage.publish_history();
SET stage.node_name = 'edge-1.eu_west';

-- ----------------------------------------------------------- the end
SET ROLE pb_owner;
-- the target leaves the publication, which stays (subscriptions name it)
SELECT stage.unpublish('pb_orders'), stage.unpublish('pb_orders');
SELECT p.pubname, count(r.prrelid) AS tables FROM pg_publication p
  LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid
 WHERE p.pubname = 'stage_pb_orders' GROUP BY p.pubname;
SELECT stage.publish('pb_orders', columns => ARRAY['order_id', 'email', 'amount', '_stage_id', '_stage_node']);
RESET ROLE;
-- so does drop_pipeline
SELECT stage.drop_pipeline('pb_orders', force => true);
SELECT p.pubname, count(r.prrelid) AS tables FROM pg_publication p
  LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid
 WHERE p.pubname LIKE 'stage\_pb%' GROUP BY p.pubname ORDER BY p.pubname;
DROP PUBLICATION stage_pb_orders, stage_pb_upd, stage_pb_json;
DROP PUBLICATION stage_history;
DROP TABLE pb_orders, pb_squat;
DROP ROLE pb_owner;
DROP ROLE pb_other;
DROP ROLE pb_squatter;
RESET stage.node_name;
