
/* ---------------------------------------------------- end of the update */

/*
 * The counters start from the history the update finds: the batches and
 * rows of the batches kept, the quarantine's items by status.  (The
 * handoff latency histogram starts empty: 0.2 kept percentiles only.)
 */
INSERT INTO stage.counter (pipeline_id, metric, labels, value)
SELECT x.pipeline_id, x.metric, x.labels, pg_catalog.sum(x.value)
  FROM (
	SELECT b.pipeline_id, 'stage_batches_total' AS metric,
		   pg_catalog.jsonb_build_object('kind', b.kind, 'status', b.status) AS labels, 1::double precision AS value
	  FROM stage.batch b
	UNION ALL
	SELECT b.pipeline_id, 'stage_rows_total', pg_catalog.jsonb_build_object('outcome', o.outcome), o.n
	  FROM stage.batch b
	 CROSS JOIN LATERAL (VALUES ('taken', b.rows_in), ('clean', b.rows_clean),
								('quarantined', b.rows_quarantined), ('duplicate', b.rows_duplicate),
								('warned', b.rows_warned), ('drift', b.rows_drift)) AS o(outcome, n)
	 WHERE b.kind OPERATOR(pg_catalog.=) 'batch' AND b.status OPERATOR(pg_catalog.=) 'done'
	UNION ALL
	SELECT q.pipeline_id, 'stage_dlq_items', pg_catalog.jsonb_build_object('status', q.status), 1
	  FROM stage.quarantine_log q
	UNION ALL
	SELECT b.pipeline_id, 'stage_last_batch_timestamp_seconds', '{}'::jsonb,
		   pg_catalog.max(EXTRACT(epoch FROM b.finished_at))::double precision
	  FROM stage.batch b GROUP BY b.pipeline_id) x
 GROUP BY x.pipeline_id, x.metric, x.labels
HAVING pg_catalog.sum(x.value) OPERATOR(pg_catalog.<>) 0;

/*
 * Landing tables become partitioned by ranges of _stage_txid
 * (41_partitions.sql).  Each one is renamed to its first partition, which
 * holds every row landed so far: a partitioned table of the old name with
 * the same columns takes its place (identity continuing where the old one
 * was, defaults, the txid check, indexes, triggers, privileges, owner),
 * and the old table is attached to it as the range from the lowest id to
 * a range beyond the next transaction id (ATTACH reads its rows once to
 * check them), with the open end after it.  The pipeline's landing points
 * at the new table.  A partition keeps its own column numbers if the old
 * table had dropped columns: the batches map them by name.
 */
DO $$
DECLARE
	p stage.pipeline;
	old regclass;
	owner_name text;
	seq text;
	last bigint;
	called boolean;
	no bigint;
	part text;
	cut xid8;
	g record;
	new regclass;
BEGIN
	FOR p IN SELECT * FROM stage.pipeline x WHERE x.landing IS NOT NULL ORDER BY x.pipeline_id
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
						WHERE c.oid OPERATOR(pg_catalog.=) p.landing
						  AND c.relkind OPERATOR(pg_catalog.=) 'r') THEN
			CONTINUE;
		END IF;
		old := p.landing;
		SELECT pg_catalog.pg_get_userbyid(c.relowner) INTO owner_name
		  FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) old;
		seq := pg_catalog.pg_get_serial_sequence(old::text, '_stage_id');
		EXECUTE pg_catalog.format('SELECT last_value, is_called FROM %s', seq) INTO last, called;
		no := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('stage.landing_partition', 'part_no'));
		part := pg_catalog.format('%s$%s', pg_catalog.left(p.name, 40), no);
		EXECUTE pg_catalog.format('ALTER TABLE %s RENAME TO %I', old, part);
		EXECUTE pg_catalog.format('CREATE TABLE stage_landing.%I (LIKE stage_landing.%I INCLUDING DEFAULTS'
								  ' INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION)'
								  ' PARTITION BY RANGE (_stage_txid)', p.name, part);
		new := pg_catalog.format('stage_landing.%I', p.name)::regclass;
		EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', new, owner_name);
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN _stage_id RESTART WITH %s', new,
								  CASE WHEN called THEN last OPERATOR(pg_catalog.+) 1 ELSE last END);
		EXECUTE pg_catalog.format('ALTER TABLE stage_landing.%I ALTER COLUMN _stage_id DROP IDENTITY', part);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (_stage_txid, _stage_id)', new);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s USING brin (_stage_id) WITH (autosummarize = on)', new);
		/* (a landing table made under 0.1 may lack it) */
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
						WHERE k.conrelid OPERATOR(pg_catalog.=) old
						  AND k.conname OPERATOR(pg_catalog.=) 'stage_txid_is_own') THEN
			EXECUTE pg_catalog.format('ALTER TABLE stage_landing.%I ADD CONSTRAINT stage_txid_is_own'
									  ' CHECK (_stage_txid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()) NOT VALID',
									  part);
		END IF;
		/* the triggers and privileges move to the new table; the partition keeps none */
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS stage_append_only ON stage_landing.%I', part);
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS stage_wake ON stage_landing.%I', part);
		EXECUTE pg_catalog.format('CREATE TRIGGER stage_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s'
								  ' FOR EACH STATEMENT EXECUTE FUNCTION stage._landing_guard()', new);
		EXECUTE pg_catalog.format('CREATE TRIGGER stage_wake AFTER INSERT ON %s'
								  ' FOR EACH STATEMENT EXECUTE FUNCTION stage._wake()', new);
		FOR g IN SELECT pg_catalog.pg_get_userbyid(a.grantee) AS grantee, a.privilege_type AS priv, NULL::name AS col
				   FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
				  WHERE c.oid OPERATOR(pg_catalog.=) old AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
				 UNION ALL
				 SELECT pg_catalog.pg_get_userbyid(a.grantee), a.privilege_type, t.attname
				   FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a
				  WHERE t.attrelid OPERATOR(pg_catalog.=) old AND t.attacl IS NOT NULL AND NOT t.attisdropped
		LOOP
			IF g.col IS NULL THEN
				EXECUTE pg_catalog.format('GRANT %s ON %s TO %I', g.priv, new, g.grantee);
				EXECUTE pg_catalog.format('REVOKE %s ON stage_landing.%I FROM %I', g.priv, part, g.grantee);
			ELSE
				EXECUTE pg_catalog.format('GRANT %s (%I) ON %s TO %I', g.priv, g.col, new, g.grantee);
				EXECUTE pg_catalog.format('REVOKE %s (%I) ON stage_landing.%I FROM %I', g.priv, g.col, part, g.grantee);
			END IF;
		END LOOP;
		cut := stage._xid_plus(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
							   stage._partition_width(p.pipeline_id));
		EXECUTE pg_catalog.format('ALTER TABLE %s ATTACH PARTITION stage_landing.%I FOR VALUES FROM (MINVALUE) TO (%L)',
								  new, part, cut::text);
		UPDATE stage.pipeline x SET landing = new WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
		INSERT INTO stage.landing_partition (pipeline_id, part_no, partition, lo, hi, created_xid)
		OVERRIDING SYSTEM VALUE
		VALUES (p.pipeline_id, no, pg_catalog.format('stage_landing.%I', part)::regclass, NULL, cut,
				pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()));
		PERFORM stage._landing_partition_add(p.pipeline_id, cut, NULL);
		/* made by this script, they would be members of the extension: they are the pipeline's */
		FOR g IN SELECT d.objid::regclass AS rel FROM pg_catalog.pg_depend d
				  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
					AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
					AND d.deptype OPERATOR(pg_catalog.=) 'e'
					AND d.objid IN (SELECT c.oid FROM pg_catalog.pg_class c
									 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'stage_landing'::regnamespace)
		LOOP
			EXECUTE pg_catalog.format('ALTER EXTENSION stage DROP %s %s',
									  CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c
												  WHERE c.oid OPERATOR(pg_catalog.=) g.rel) OPERATOR(pg_catalog.=) 'S'
										   THEN 'SEQUENCE' ELSE 'TABLE' END, g.rel);
		END LOOP;
	END LOOP;
END
$$;
