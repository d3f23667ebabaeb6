/*
 * stage--0.1--0.2.sql: update an installation of 0.1 to 0.2.
 *
 * Built from sql/stage--0.1--0.2/ (this prologue and the epilogue) around
 * the function and view definitions of the 0.2 pieces (sql/stage--0.2/05
 * to 90, with CREATE turned into CREATE OR REPLACE, which in an extension
 * script only ever replaces the extension's own objects).  The test
 * "update" checks that an updated 0.1 and a fresh 0.2 have the same
 * objects and privileges (pg_dump --schema-only compared).
 *
 * What changes: the catalog belongs to the catalog owner alone (no
 * privileges, no row-level security policies for anyone else), the API
 * runs through gates, landing tables belong to the catalog owner, schema
 * stage becomes a member of the extension, which itself moves to
 * pg_catalog (as a fresh 0.2 is installed), quarantine reasons record
 * whose text their message is.
 */

\echo Use "ALTER EXTENSION stage UPDATE TO '0.2'" to load this file. \quit

/* -------------------------------------------- the extension's schema */

/*
 * 0.1 was installed into schema stage, created by CREATE EXTENSION and not
 * a member of the extension.  0.2 creates both schemas itself and lives in
 * pg_catalog: move the extension there and make stage a member, as a
 * fresh install has it.
 */
UPDATE pg_catalog.pg_extension SET extnamespace = 'pg_catalog'::pg_catalog.regnamespace
 WHERE extname OPERATOR(pg_catalog.=) 'stage';
DELETE FROM pg_catalog.pg_depend
 WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
   AND objid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
									  WHERE e.extname OPERATOR(pg_catalog.=) 'stage')
   AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
   AND refobjid OPERATOR(pg_catalog.=) 'stage'::pg_catalog.regnamespace
   AND deptype OPERATOR(pg_catalog.=) 'n';
ALTER EXTENSION stage ADD SCHEMA stage;

/* ----------------------------------------------- what 0.2 no longer has */

/* owners wrote the catalog under row-level security: no more */
DROP POLICY read_all ON stage.pipeline;
DROP POLICY owner_insert ON stage.pipeline;
DROP POLICY owner_update ON stage.pipeline;
DROP POLICY owner_delete ON stage.pipeline;
DROP POLICY owner_write ON stage.rule;
DROP POLICY read_all ON stage.rule;
DROP POLICY owner_write ON stage.mask;
DROP POLICY read_all ON stage.mask;
DROP POLICY owner_write ON stage.contract_history;
DROP POLICY read_all ON stage.contract_history;
DROP POLICY owner_write ON stage.batch;
DROP POLICY read_all ON stage.batch;
DROP POLICY owner_write ON stage.quarantine_log;
DROP POLICY owner_write ON stage.duplicate_log;
DROP POLICY owner_write ON stage.batch_rule_stat;
DROP POLICY read_all ON stage.batch_rule_stat;
DROP FUNCTION stage._owns(integer);

/* raw quarantine rows were granted to owner roles; now read through a function */
DROP TRIGGER raw_access ON stage.pipeline;
DROP FUNCTION stage._raw_access();

/* recreated below with their functions */
DROP TRIGGER mask_check ON stage.mask;
DROP TRIGGER secret_check ON stage.secret;

/* the validators now take the owner they compile for */
DROP FUNCTION stage._validate_rule(regclass, text, text, jsonb);
DROP FUNCTION stage._validate_mask(regclass, text, text, jsonb);

/* trace also shows what the transforms make of the row's values */
DROP FUNCTION stage.trace(text, bigint);

/* drop_pipeline refuses to lose unmoved rows and open items, unless forced */
DROP FUNCTION stage.drop_pipeline(text);

/* quarantine items have a status: the views over them are made anew */
DROP VIEW stage.health;
DROP VIEW stage.dlq_summary;
DROP VIEW stage.quarantine;
DROP FUNCTION stage._quarantine(integer);

/* withheld server messages are kept for the owners */
ALTER TABLE stage.quarantine_log ADD COLUMN raw_reasons jsonb;
COMMENT ON COLUMN stage.quarantine_log.raw_reasons IS NULL;

/* quarantine items have a lifecycle (open until repaired, replayed, superseded or dismissed) */
ALTER TABLE stage.quarantine_log ADD COLUMN key text,
	ADD COLUMN status text
		CHECK (status OPERATOR(pg_catalog.=) ANY
			   (ARRAY['open', 'repaired', 'replayed', 'superseded', 'dismissed'])),
	ADD COLUMN successor_id bigint,
	ADD COLUMN closed_at timestamptz,
	ADD COLUMN closed_by text,
	ADD COLUMN closed_batch_id bigint,
	ADD COLUMN note text;
/* (no default while the column is added: the table as a fresh install has it, no stored missing value) */
UPDATE stage.quarantine_log SET status = 'open';
ALTER TABLE stage.quarantine_log ALTER COLUMN status SET DEFAULT 'open',
	ALTER COLUMN status SET NOT NULL;
CREATE INDEX ON stage.quarantine_log (pipeline_id, key) WHERE status OPERATOR(pg_catalog.=) 'open';
CREATE INDEX ON stage.quarantine_log (pipeline_id, successor_id)
	WHERE status OPERATOR(pg_catalog.=) 'open' AND successor_id IS NOT NULL;
/* who landed the row (items quarantined under 0.1: NULL, not known) */
ALTER TABLE stage.quarantine_log ADD COLUMN role text;

/* one window worked by several movers at once, each its lane of keys */
ALTER TABLE stage.pipeline ADD COLUMN lanes integer;
/* set, not defaulted in the ADD: a fresh table has no "missing value" either */
UPDATE stage.pipeline SET lanes = 1;
ALTER TABLE stage.pipeline ALTER COLUMN lanes SET DEFAULT 1,
	ALTER COLUMN lanes SET NOT NULL,
	ADD CONSTRAINT pipeline_lanes_check
		CHECK (lanes OPERATOR(pg_catalog.>=) 1 AND lanes OPERATOR(pg_catalog.<=) 64);
ALTER TABLE stage.pipeline ADD COLUMN win_lanes integer;
/* the landing follows the target: the columns it last followed (filled in the epilogue) */
ALTER TABLE stage.pipeline ADD COLUMN target_columns jsonb;
ALTER TABLE stage.pipeline ADD COLUMN target_changed_at timestamptz;
ALTER TABLE stage.batch ADD COLUMN lane integer;
ALTER TABLE stage.batch ADD COLUMN lanes integer;
CREATE TABLE stage.lane (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	lane			integer NOT NULL,
	cur_txid		xid8,
	cur_id			bigint,
	done			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (pipeline_id, lane)
);
SELECT pg_catalog.pg_extension_config_dump('stage.lane', '');
REVOKE ALL ON stage.lane FROM PUBLIC;
ALTER TABLE stage.lane ENABLE ROW LEVEL SECURITY;

/*
 * Landing rows record the role that inserted them (_stage_role, from its
 * default only: no producer may set it).  Rows landed under 0.1 carry no
 * such record: they get the placeholder 'unknown (landed before 0.2)', not
 * a role, so that nobody is named for rows they may not have landed.  The
 * column is added without a default and filled by the rewrite of ALTER
 * COLUMN TYPE (no stored missing value; the append-only guard, a trigger,
 * is not involved), then given its default and NOT NULL, as a fresh landing
 * table has it (at the end of the columns instead of after
 * _stage_received_at).
 */
DO $$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT x.landing FROM stage.pipeline x
			  WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c
							 WHERE c.oid OPERATOR(pg_catalog.=) x.landing)
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN _stage_role pg_catalog.text', p.landing);
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN _stage_role TYPE pg_catalog.text USING %L::pg_catalog.text,'
								  ' ALTER COLUMN _stage_role SET DEFAULT CURRENT_USER,'
								  ' ALTER COLUMN _stage_role SET NOT NULL',
								  p.landing, 'unknown (landed before 0.2)');
	END LOOP;
END
$$;

/* the transform stage */
CREATE TABLE stage.transform (
	pipeline_id		integer NOT NULL REFERENCES stage.pipeline ON DELETE CASCADE,
	transform_name	text NOT NULL,
	column_name		text NOT NULL,
	method			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	position		integer NOT NULL,
	PRIMARY KEY (pipeline_id, transform_name)
);
CREATE TABLE stage.batch_transform_stat (
	batch_id		bigint NOT NULL,
	transform_name	text NOT NULL,
	column_name		text NOT NULL,
	method			text NOT NULL,
	applied			bigint NOT NULL,
	changed			bigint NOT NULL,
	nulled			bigint NOT NULL,
	failed			bigint NOT NULL,
	PRIMARY KEY (batch_id, transform_name)
);
SELECT pg_catalog.pg_extension_config_dump('stage.transform', '');
SELECT pg_catalog.pg_extension_config_dump('stage.batch_transform_stat', '');
REVOKE ALL ON stage.transform, stage.batch_transform_stat FROM PUBLIC;
ALTER TABLE stage.transform ENABLE ROW LEVEL SECURITY;
ALTER TABLE stage.batch_transform_stat ENABLE ROW LEVEL SECURITY;
