/* ------------------------------------------------- OpenLineage outbox */

/*
 * Batches as OpenLineage run events (spec 2-0-2), kept in an outbox,
 * stage.lineage_event, written in the transaction that finishes a batch
 * and read after a cursor in commit order (docs/functions.md).
 *
 * Writing: a batch row of stage.batch is updated once in its life, when
 * it finishes (mover_advance, mover_hold, a replay, stage._record_failure:
 * see stage._count_batch).  The trigger lineage_batch then writes the
 * batch's two events, START (eventTime: when it started) and its end:
 * COMPLETE (done), FAIL (failed) or ABORT (held: the pieces' writes were
 * undone and the pipeline paused by policy, the run stopped before it
 * finished rather than broke).  A batch whose transaction aborts leaves
 * neither, as it leaves no batch row; one written twice is refused by the
 * key (batch_id, event_type).
 *
 * Reading: each event row carries the id of the transaction that wrote it
 * (txid).  A cursor is what the reader has seen: the snapshot of its last
 * read (every event whose transaction had ended by then), and, when a
 * read stopped inside a window, the next snapshot and the (txid,
 * event_id) reached in it.  The next read returns the events visible now
 * and not in the cursor's snapshot: a slow batch that committed after a
 * later one is still in the next window, never behind the cursor.
 *
 * Mapping: a batch is a run (runId: a name-based UUID, version 3, of
 * stage://<node>/batch/<batch_id>), the pipeline is the job (its replays
 * the job <pipeline>.replay), the landing table (a replay: the
 * quarantine) is the input, the target and the quarantine are the
 * outputs.  Facets are the spec's where one fits; stage_batch, the
 * batch's own counts, is stage's, described by
 * contrib/openlineage/StageBatchRunFacet.json.
 */

/* a name-based UUID, version 3 (RFC 4122: MD5, the URL namespace), of a name */
CREATE FUNCTION stage._ol_uuid(name text)
RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.encode(
		pg_catalog.set_byte(pg_catalog.set_byte(h, 6, (pg_catalog.get_byte(h, 6) OPERATOR(pg_catalog.&) 15) OPERATOR(pg_catalog.|) 48),
							8, (pg_catalog.get_byte(h, 8) OPERATOR(pg_catalog.&) 63) OPERATOR(pg_catalog.|) 128),
		'hex')::uuid
  FROM (SELECT pg_catalog.decode(pg_catalog.md5(
			'\x6ba7b8119dad11d180b400c04fd430c8'::bytea OPERATOR(pg_catalog.||) pg_catalog.convert_to(name, 'UTF8')),
			'hex') AS h) x
$$;

/* a time as OpenLineage writes it: ISO 8601, UTC, microseconds */
CREATE FUNCTION stage._ol_time(t timestamptz)
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.to_char(pg_catalog.timezone('UTC', t), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

/* a facet: the base facet's _producer and _schemaURL, then its own fields */
CREATE FUNCTION stage._ol_facet(producer text, schema_url text, fields jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.jsonb_build_object('_producer', producer, '_schemaURL', schema_url)
	   OPERATOR(pg_catalog.||) COALESCE(fields, '{}')
$$;

/* a table as an OpenLineage dataset name: database.schema.table (NULL: no such table) */
CREATE FUNCTION stage._ol_name(rel regclass)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.current_database() OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) n.nspname::text
	   OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) rel
$$;

/* the schema facet's fields of a table: its columns, in order, with their types */
CREATE FUNCTION stage._ol_fields(rel regclass)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'name', a.attname::text, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod))
			ORDER BY a.attnum), '[]')
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
$$;

/*
 * The columnLineage facet of a pipeline's target (1-2-0): for each target
 * column the landing fields it is made of (itself, or what a from, concat
 * or coalesce transform reads; the payload for the jsonb format; in a
 * replay, the landed row's copy in the quarantine), and a lookup's table;
 * each with the transforms of the column's chain and its mask (masking:
 * true, transformationType MASKED).  The dataset-level entries are the
 * rows the batch filters out: the fields of the columns that reject rules
 * check, and the key's (duplicates).  Expressions are named, not parsed:
 * the other columns an expression reads are not listed.
 */
CREATE FUNCTION stage._ol_column_lineage(p stage.pipeline, namespace text, source text,
										 replay boolean, producer text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH col AS (
	SELECT a.attname::text AS name, a.attnum
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) p.target AND a.attnum OPERATOR(pg_catalog.>) 0
	   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
	   AND a.attidentity OPERATOR(pg_catalog.<>) 'a'
	   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_batch', '_stage_node']::name[])),
/* the landing fields each column reads, before the replay's renaming */
src AS (
	SELECT c.name, f.field
	  FROM col c,
	  LATERAL (
		SELECT DISTINCT x.field
		  FROM stage.transform t,
		  LATERAL (
			SELECT t.args OPERATOR(pg_catalog.->>) 'column' AS field
			 WHERE t.method OPERATOR(pg_catalog.=) 'from' AND t.args OPERATOR(pg_catalog.?) 'column'
			UNION ALL
			SELECT 'payload' WHERE t.args OPERATOR(pg_catalog.?|) ARRAY['path', 'paths']
			UNION ALL
			SELECT pg_catalog.jsonb_array_elements_text(t.args OPERATOR(pg_catalog.->) 'columns')
			 WHERE t.method OPERATOR(pg_catalog.=) ANY (ARRAY['concat', 'coalesce'])
			   AND pg_catalog.jsonb_typeof(t.args OPERATOR(pg_catalog.->) 'columns') OPERATOR(pg_catalog.=) 'array') x
		 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND t.column_name OPERATOR(pg_catalog.=) c.name
		   AND t.method OPERATOR(pg_catalog.=) ANY (ARRAY['from', 'concat', 'coalesce'])
		UNION ALL
		SELECT CASE WHEN c.name OPERATOR(pg_catalog.=) '_stage_id' THEN '_stage_id'
					WHEN p.format OPERATOR(pg_catalog.=) 'jsonb' THEN 'payload' ELSE c.name END
		 WHERE NOT EXISTS (SELECT 1 FROM stage.transform t
							WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							  AND t.column_name OPERATOR(pg_catalog.=) c.name
							  AND t.method OPERATOR(pg_catalog.=) ANY (ARRAY['from', 'concat', 'coalesce']))) f),
field AS (
	SELECT s.name, CASE WHEN NOT replay THEN s.field
						WHEN p.format OPERATOR(pg_catalog.=) 'jsonb' AND s.field OPERATOR(pg_catalog.=) 'payload'
						THEN 'raw_payload' ELSE 'raw_data' END AS field
	  FROM src s
	 GROUP BY 1, 2),
/* what happens to a column's value on its way, and whether it is masked */
how AS (
	SELECT c.name, c.attnum,
		   (SELECT pg_catalog.array_agg(CASE t.method
					WHEN 'lookup' THEN 'lookup in ' OPERATOR(pg_catalog.||) (t.args OPERATOR(pg_catalog.->>) 'table')
					WHEN 'expression' THEN 'expression ' OPERATOR(pg_catalog.||) (t.args OPERATOR(pg_catalog.->>) 'sql')
					ELSE t.method END ORDER BY t.position)
			  FROM stage.transform t
			 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND t.column_name OPERATOR(pg_catalog.=) c.name
			   AND t.method OPERATOR(pg_catalog.<>) 'from') AS steps,
		   (SELECT m.method FROM stage.mask m
			 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND m.column_name OPERATOR(pg_catalog.=) c.name) AS mask
	  FROM col c),
said AS (
	SELECT h.name, h.attnum, h.mask IS NOT NULL AS masked,
		   h.steps IS NULL AND h.mask IS NULL AS identity,
		   COALESCE(pg_catalog.array_to_string(
				h.steps OPERATOR(pg_catalog.||) CASE WHEN h.mask IS NULL THEN '{}'::text[]
													 ELSE ARRAY['mask ' OPERATOR(pg_catalog.||) h.mask] END, ', '),
					'') AS steps
	  FROM how h),
tr AS (
	SELECT d.name, d.attnum, d.masked, d.identity,
		   CASE WHEN d.identity THEN 'identity' ELSE d.steps END AS description,
		   pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
				'type', 'DIRECT',
				'subtype', CASE WHEN d.identity THEN 'IDENTITY' ELSE 'TRANSFORMATION' END,
				'description', CASE WHEN d.identity THEN NULL ELSE d.steps END,
				'masking', d.masked)) AS transformation
	  FROM said d),
/* the input fields of each column: its landing fields, and the value column of a lookup */
inputs AS (
	SELECT f.name, pg_catalog.jsonb_build_object('namespace', namespace, 'name', source, 'field', f.field,
			   'transformations', pg_catalog.jsonb_build_array(t.transformation)) AS input
	  FROM field f JOIN tr t USING (name)
	UNION ALL
	SELECT t.name, pg_catalog.jsonb_build_object('namespace', namespace,
			   'name', pg_catalog.current_database() OPERATOR(pg_catalog.||) '.'
					   OPERATOR(pg_catalog.||) (x.args OPERATOR(pg_catalog.->>) 'table'),
			   'field', x.args OPERATOR(pg_catalog.->>) 'value',
			   'transformations', pg_catalog.jsonb_build_array(t.transformation))
	  FROM tr t JOIN stage.transform x
		ON x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND x.column_name OPERATOR(pg_catalog.=) t.name
	   AND x.method OPERATOR(pg_catalog.=) 'lookup'),
/* the rows filtered out: by reject rules (on their columns' fields), by the key */
filters AS (
	SELECT f.field, pg_catalog.jsonb_build_object('type', 'INDIRECT', 'subtype', 'FILTER',
			   'description', 'rule ' OPERATOR(pg_catalog.||) r.rule_name OPERATOR(pg_catalog.||) ' ('
					OPERATOR(pg_catalog.||) r.kind OPERATOR(pg_catalog.||) ')') AS transformation,
		   r.position AS ord
	  FROM stage.rule r JOIN field f ON f.name OPERATOR(pg_catalog.=) r.column_name
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND r.severity OPERATOR(pg_catalog.=) 'reject'
	UNION ALL
	SELECT f.field, pg_catalog.jsonb_build_object('type', 'INDIRECT', 'subtype', 'FILTER',
			   'description', 'duplicate keys (on_duplicate ' OPERATOR(pg_catalog.||) p.on_duplicate
					OPERATOR(pg_catalog.||) ')'),
		   2147483647
	  FROM field f
	 WHERE f.name OPERATOR(pg_catalog.=) ANY (COALESCE(p.key, '{}'))),
dataset AS (
	SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('namespace', namespace, 'name', source,
			   'field', y.field, 'transformations', y.transformations) ORDER BY y.field) AS entries
	  FROM (SELECT x.field, pg_catalog.jsonb_agg(x.transformation ORDER BY x.ord) AS transformations
			  FROM (SELECT DISTINCT ON (fl.field, fl.transformation) fl.* FROM filters fl) x
			 GROUP BY x.field) y)
SELECT stage._ol_facet(producer,
		'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet',
		pg_catalog.jsonb_build_object(
			'fields', COALESCE((
				SELECT pg_catalog.jsonb_object_agg(t.name, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
						'inputFields', (SELECT pg_catalog.jsonb_agg(i.input ORDER BY i.input OPERATOR(pg_catalog.->>) 'name',
																	 i.input OPERATOR(pg_catalog.->>) 'field')
										  FROM inputs i WHERE i.name OPERATOR(pg_catalog.=) t.name),
						'transformationDescription', t.description,
						'transformationType', CASE WHEN t.masked THEN 'MASKED'
												   WHEN t.identity THEN 'IDENTITY' END)))
				  FROM tr t
				 WHERE EXISTS (SELECT 1 FROM inputs i WHERE i.name OPERATOR(pg_catalog.=) t.name)), '{}'),
			'dataset', COALESCE((SELECT d.entries FROM dataset d), '[]')))
$$;

/*
 * The two events of a finished batch, START and its end, as the trigger
 * writes them.  The end event adds what the batch did: the input's
 * dataQualityAssertions (each rule and type check of the batch: severity,
 * failures, and in properties the rule's kind and arguments, the values
 * checked, the failures expected (0) and found) and inputStatistics, the
 * outputs' outputStatistics (COMPLETE only: a held or failed batch wrote
 * nothing), and an errorMessage (FAIL: the error, which is the condition
 * only where the pipeline masks columns, as stage._withheld words it: the
 * lineage backend is no place for a masked value; ABORT: why it was held).
 */
CREATE FUNCTION stage._ol_events(b stage.batch)
RETURNS TABLE(event_type text, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline;
	version text := (SELECT e.extversion FROM pg_catalog.pg_extension e
					  WHERE e.extname OPERATOR(pg_catalog.=) 'stage');
	producer text;
	ds_namespace text := 'postgres://' OPERATOR(pg_catalog.||) b.node;
	replay boolean := b.kind OPERATOR(pg_catalog.=) 'replay';
	end_type text := CASE b.status WHEN 'done' THEN 'COMPLETE' WHEN 'failed' THEN 'FAIL' ELSE 'ABORT' END;
	run_id uuid := stage._ol_uuid('stage://' OPERATOR(pg_catalog.||) b.node
								  OPERATOR(pg_catalog.||) '/batch/' OPERATOR(pg_catalog.||) b.batch_id::text);
	source_rel regclass;
	source text;
	target text;
	quarantine text := pg_catalog.current_database() OPERATOR(pg_catalog.||) '.stage.quarantine_log';
	job jsonb;
	run_facets jsonb;
	end_facets jsonb;
	input_facets jsonb;
	lineage jsonb;
	message text;
	base jsonb;
BEGIN
	SELECT * INTO p FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) b.pipeline_id;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	producer := 'urn:stage:' OPERATOR(pg_catalog.||) COALESCE(version, 'unknown');
	source_rel := CASE WHEN replay THEN 'stage.quarantine_log'::regclass ELSE p.landing END;
	source := stage._ol_name(source_rel);
	target := stage._ol_name(p.target);

	job := pg_catalog.jsonb_build_object(
		'namespace', 'stage://' OPERATOR(pg_catalog.||) b.node,
		'name', p.name OPERATOR(pg_catalog.||) CASE WHEN replay THEN '.replay' ELSE '' END,
		'facets', pg_catalog.jsonb_build_object(
			'jobType', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
				pg_catalog.jsonb_build_object('processingType', 'BATCH', 'integration', 'STAGE',
											  'jobType', CASE WHEN replay THEN 'REPLAY' ELSE 'BATCH' END)),
			'documentation', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/1-0-1/DocumentationJobFacet.json#/$defs/DocumentationJobFacet',
				pg_catalog.jsonb_build_object('description', CASE WHEN replay
					THEN pg_catalog.format('stage pipeline %s, replays: quarantined rows run again through its contract into %s',
										   p.name, COALESCE(target, p.target::text))
					ELSE pg_catalog.format('stage pipeline %s: rows landed in %s are checked against its contract and moved to %s; rows that fail go to stage.quarantine_log',
										   p.name, COALESCE(stage._ol_name(p.landing), 'its landing table'),
										   COALESCE(target, p.target::text)) END))));

	run_facets := pg_catalog.jsonb_build_object(
		'processing_engine', stage._ol_facet(producer,
			'https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet',
			pg_catalog.jsonb_build_object('name', 'PostgreSQL',
										  'version', pg_catalog.current_setting('server_version'),
										  'openlineageAdapterVersion', COALESCE(version, 'unknown'))));

	lineage := CASE WHEN source IS NOT NULL AND target IS NOT NULL
					THEN stage._ol_column_lineage(p, ds_namespace, source, replay, producer) END;

	/* what both events say of the batch's datasets */
	base := pg_catalog.jsonb_build_object(
		'inputs', CASE WHEN source IS NULL THEN '[]'::jsonb ELSE pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
			'namespace', ds_namespace, 'name', source,
			'facets', pg_catalog.jsonb_build_object('schema', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
				pg_catalog.jsonb_build_object('fields', stage._ol_fields(source_rel)))))) END,
		'outputs', (SELECT COALESCE(pg_catalog.jsonb_agg(o.ds ORDER BY o.n), '[]') FROM (
			SELECT 1 AS n, pg_catalog.jsonb_build_object('namespace', ds_namespace, 'name', target,
				'facets', pg_catalog.jsonb_build_object('schema', stage._ol_facet(producer,
						'https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
						pg_catalog.jsonb_build_object('fields', stage._ol_fields(p.target))))
					OPERATOR(pg_catalog.||) CASE WHEN lineage IS NULL THEN '{}'::jsonb
												 ELSE pg_catalog.jsonb_build_object('columnLineage', lineage) END) AS ds
			 WHERE target IS NOT NULL
			UNION ALL
			SELECT 2, pg_catalog.jsonb_build_object('namespace', ds_namespace, 'name', quarantine)) o));

	/* START: when the batch began */
	event_type := 'START';
	event := pg_catalog.jsonb_build_object(
		'eventType', 'START',
		'eventTime', stage._ol_time(b.started_at),
		'producer', producer,
		'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent',
		'run', pg_catalog.jsonb_build_object('runId', run_id,
			'facets', run_facets OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
				'stage_batch', stage._ol_facet(producer,
					'urn:stage:openlineage:StageBatchRunFacet:1-0-0#/$defs/StageBatchRunFacet',
					pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
						'batchId', b.batch_id, 'kind', b.kind, 'contractVersion', b.contract_version,
						'lane', b.lane, 'lanes', b.lanes, 'node', b.node))))),
		'job', job)
		OPERATOR(pg_catalog.||) base;
	RETURN NEXT;

	/* the end: what it did */
	IF b.status OPERATOR(pg_catalog.<>) 'done' THEN
		message := CASE
			WHEN b.status OPERATOR(pg_catalog.=) 'held' THEN b.error
			WHEN b.error IS NOT NULL AND EXISTS (SELECT 1 FROM stage.mask m
												  WHERE m.pipeline_id OPERATOR(pg_catalog.=) b.pipeline_id)
			THEN stage._withheld(b.sqlstate)
			ELSE b.error END;
	END IF;
	end_facets := run_facets OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
		'stage_batch', stage._ol_facet(producer,
			'urn:stage:openlineage:StageBatchRunFacet:1-0-0#/$defs/StageBatchRunFacet',
			pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
				'batchId', b.batch_id, 'kind', b.kind, 'contractVersion', b.contract_version,
				'lane', b.lane, 'lanes', b.lanes, 'node', b.node,
				'status', b.status,
				'rowsIn', b.rows_in, 'rowsClean', b.rows_clean, 'rowsQuarantined', b.rows_quarantined,
				'rowsDuplicate', b.rows_duplicate, 'rowsWarned', b.rows_warned, 'rowsDrift', b.rows_drift,
				'startedAt', stage._ol_time(b.started_at), 'finishedAt', stage._ol_time(b.finished_at),
				'latencyP50Ms', b.latency_p50_ms, 'latencyP95Ms', b.latency_p95_ms,
				'latencyP99Ms', b.latency_p99_ms, 'latencyMaxMs', b.latency_max_ms,
				'sqlstate', b.sqlstate))));
	IF b.status OPERATOR(pg_catalog.<>) 'done' THEN
		end_facets := end_facets OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
			'errorMessage', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
				pg_catalog.jsonb_build_object(
					'message', COALESCE(message, CASE WHEN b.sqlstate IS NOT NULL
													  THEN 'SQLSTATE ' OPERATOR(pg_catalog.||) b.sqlstate END,
										'batch ' OPERATOR(pg_catalog.||) b.status),
					'programmingLanguage', 'SQL')));
	END IF;

	/* the rules' results, and how many rows the batch read */
	SELECT pg_catalog.jsonb_build_object(
			'dataQualityAssertions', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet',
				pg_catalog.jsonb_build_object('assertions', COALESCE(pg_catalog.jsonb_agg(
					pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
						'assertion', s.rule_name,
						'success', s.failed OPERATOR(pg_catalog.=) 0,
						'column', s.column_name,
						'severity', CASE s.severity WHEN 'reject' THEN 'error' ELSE s.severity END,
						'failures', s.failed))
					OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('properties',
						pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
							'kind', s.kind,
							'args', (SELECT r.args FROM stage.rule r
									  WHERE r.pipeline_id OPERATOR(pg_catalog.=) b.pipeline_id
										AND r.rule_name OPERATOR(pg_catalog.=) s.rule_name
										AND r.args OPERATOR(pg_catalog.<>) '{}'),
							'checked', s.checked,
							'expectedFailures', 0,
							'actualFailures', s.failed)))
					ORDER BY s.rule_name), '[]'))))
	  INTO input_facets
	  FROM stage.batch_rule_stat s
	 WHERE s.batch_id OPERATOR(pg_catalog.=) b.batch_id
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;
	IF b.status OPERATOR(pg_catalog.<>) 'failed' THEN
		input_facets := COALESCE(input_facets, '{}') OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
			'inputStatistics', stage._ol_facet(producer,
				'https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet',
				pg_catalog.jsonb_build_object('rowCount', b.rows_in)));
	END IF;

	event_type := end_type;
	event := pg_catalog.jsonb_build_object(
		'eventType', end_type,
		'eventTime', stage._ol_time(b.finished_at),
		'producer', producer,
		'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent',
		'run', pg_catalog.jsonb_build_object('runId', run_id, 'facets', end_facets),
		'job', job,
		'inputs', (SELECT COALESCE(pg_catalog.jsonb_agg(
					CASE WHEN input_facets IS NULL THEN i
						 ELSE i OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('inputFacets', input_facets) END), '[]')
					 FROM pg_catalog.jsonb_array_elements(base OPERATOR(pg_catalog.->) 'inputs') AS x(i)),
		'outputs', (SELECT COALESCE(pg_catalog.jsonb_agg(
					CASE WHEN b.status OPERATOR(pg_catalog.<>) 'done' THEN o
						 ELSE o OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('outputFacets',
							pg_catalog.jsonb_build_object('outputStatistics', stage._ol_facet(producer,
								'https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet',
								pg_catalog.jsonb_build_object('rowCount',
									CASE WHEN o OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) quarantine
										 THEN b.rows_quarantined ELSE b.rows_clean END)))) END
					ORDER BY n), '[]')
					 FROM pg_catalog.jsonb_array_elements(base OPERATOR(pg_catalog.->) 'outputs') WITH ORDINALITY AS x(o, n)));
	RETURN NEXT;
END
$$;

/* a batch finished: its events into the outbox, in its transaction */
CREATE FUNCTION stage._lineage_batch()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.lineage_event (pipeline_id, batch_id, event_type, event)
	SELECT NEW.pipeline_id, NEW.batch_id, e.event_type, e.event
	  FROM stage._ol_events(NEW) e
	ON CONFLICT ON CONSTRAINT lineage_event_batch_type_key DO NOTHING;
	RETURN NULL;
END
$$;
CREATE TRIGGER lineage_batch AFTER UPDATE ON stage.batch
	FOR EACH ROW EXECUTE FUNCTION stage._lineage_batch();

/*
 * The outbox after a cursor.  A cursor is text: a snapshot
 * (xmin:xmax:xip,...) when the reader has seen every event visible in
 * it, or, when a read stopped inside a window, the window's two
 * snapshots and the (txid, event_id) of the last event returned, joined
 * by '|'.  Events come window by window (those visible in the window's
 * snapshot and not in the one before), in (txid, event_id) order inside
 * one; each row carries the cursor to pass next, so a reader that stops
 * after any row resumes right after it.  An event of a transaction still
 * running when a read took its snapshot is in a later window: delivered
 * after it commits, never skipped.  The caller's own transaction counts
 * as running (its events are not committed yet).  (The implementation's
 * argument is named after: PL/pgSQL refuses an argument and a result
 * column of the same name.)
 */
CREATE FUNCTION stage.openlineage_events(cursor text DEFAULT NULL, max_events integer DEFAULT 1000)
RETURNS TABLE(cursor text, event_id bigint, batch_id bigint, event jsonb)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.openlineage_events(text, integer) IS
	'OpenLineage run events of finished batches after a cursor, in commit order (the lineage outbox)';
CREATE FUNCTION stage._do_openlineage_events(after text, max_events integer)
RETURNS TABLE(cursor text, event_id bigint, batch_id bigint, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	snap constant text := '\d+:\d+:(?:\d+(?:,\d+)*)?';
	parts text[];
	lo pg_snapshot;
	hi pg_snapshot;
	at_txid xid8;
	at_id bigint;
	now_snap pg_snapshot := pg_catalog.pg_current_snapshot();
	own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
	n integer := COALESCE(max_events, 1000);
BEGIN
	IF n OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'max_events must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF after IS NULL THEN
		lo := '1:1:';
	ELSIF after OPERATOR(pg_catalog.~) ('^' OPERATOR(pg_catalog.||) snap OPERATOR(pg_catalog.||) '$') THEN
		lo := after::pg_snapshot;
	ELSE
		parts := pg_catalog.regexp_match(after, '^(' OPERATOR(pg_catalog.||) snap OPERATOR(pg_catalog.||) ')\|('
										 OPERATOR(pg_catalog.||) snap OPERATOR(pg_catalog.||) ')\|(\d+)\|(\d+)$');
		IF parts IS NULL THEN
			RAISE EXCEPTION 'invalid cursor "%"', pg_catalog.left(after, 200)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass a cursor a call of stage.openlineage_events returned, or NULL to read from the first event.';
		END IF;
		lo := parts[1]::pg_snapshot;
		hi := parts[2]::pg_snapshot;
		at_txid := parts[3]::xid8;
		at_id := parts[4]::bigint;
		IF pg_catalog.pg_snapshot_xmax(lo) OPERATOR(pg_catalog.>) pg_catalog.pg_snapshot_xmax(hi) THEN
			RAISE EXCEPTION 'invalid cursor "%"', pg_catalog.left(after, 200)
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Its first snapshot is newer than its second.',
					  HINT = 'Pass a cursor a call of stage.openlineage_events returned, or NULL to read from the first event.';
		END IF;
	END IF;
	IF pg_catalog.pg_snapshot_xmax(COALESCE(hi, lo)) OPERATOR(pg_catalog.>) pg_catalog.pg_snapshot_xmax(now_snap) THEN
		RAISE EXCEPTION 'cursor "%" is ahead of this server''s transactions', pg_catalog.left(after, 200)
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A cursor names transactions of the server that returned it.',
				  HINT = 'A cursor of another server (a restored copy, say) means nothing here: read from NULL again; the events are idempotent by runId and eventType.';
	END IF;
	/* the caller's transaction, when it has an id, is one still running */
	IF own IS NOT NULL AND pg_catalog.pg_visible_in_snapshot(own, now_snap) THEN
		now_snap := (SELECT pg_catalog.format('%s:%s:%s',
							   LEAST(pg_catalog.pg_snapshot_xmin(now_snap), own),
							   pg_catalog.pg_snapshot_xmax(now_snap),
							   pg_catalog.string_agg(x::text, ',' ORDER BY x))
					   FROM (SELECT pg_catalog.pg_snapshot_xip(now_snap) AS x UNION SELECT own) y)::pg_snapshot;
	END IF;

	RETURN QUERY
	WITH w AS (
		SELECT e.event_id, e.batch_id, e.event, e.txid,
			   CASE WHEN hi IS NOT NULL AND pg_catalog.pg_visible_in_snapshot(e.txid, hi) THEN 1 ELSE 2 END AS phase
		  FROM stage.lineage_event e JOIN stage.pipeline p USING (pipeline_id)
		 WHERE e.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(lo)
		   AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, lo)
		   AND (hi IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(e.txid, hi)
				OR e.txid OPERATOR(pg_catalog.>) at_txid
				OR (e.txid OPERATOR(pg_catalog.=) at_txid AND e.event_id OPERATOR(pg_catalog.>) at_id))
		   AND e.txid OPERATOR(pg_catalog.<>) COALESCE(own, '0'::xid8)
		   AND stage._may_see(p.owner)
		 ORDER BY 5, e.txid, e.event_id
		 LIMIT n OPERATOR(pg_catalog.+) 1),
	r AS (
		SELECT w.*, pg_catalog.row_number() OVER (ORDER BY w.phase, w.txid, w.event_id) AS i,
			   pg_catalog.lead(w.phase) OVER (ORDER BY w.phase, w.txid, w.event_id) AS next_phase,
			   pg_catalog.count(*) OVER () AS fetched
		  FROM w)
	SELECT CASE
			WHEN (r.next_phase IS NULL AND r.fetched OPERATOR(pg_catalog.<=) n)
				 OR r.next_phase OPERATOR(pg_catalog.<>) r.phase
			/* the last of its window: all of the window seen */
			THEN CASE r.phase WHEN 1 THEN hi ELSE now_snap END::text
			ELSE CASE r.phase WHEN 1 THEN lo ELSE COALESCE(hi, lo) END::text
				 OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||)
				 CASE r.phase WHEN 1 THEN hi ELSE now_snap END::text
				 OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) r.txid::text
				 OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) r.event_id::text
		   END,
		   r.event_id, r.batch_id, r.event
	  FROM r
	 WHERE r.i OPERATOR(pg_catalog.<=) n
	 ORDER BY r.i;
END
$$;
