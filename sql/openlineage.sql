--
-- openlineage: the lineage outbox.  Each finished batch writes a START and
-- a COMPLETE, FAIL or ABORT run event in its own transaction; readers take
-- them after a cursor, in commit order.  The OpenLineage JSON schemas are
-- not on this machine: the spec's required fields and types are checked by
-- hand (ol_problems below), facet by facet, for every event of this test.
--
SET client_min_messages = warning;
CREATE TABLE ol_orders (id int PRIMARY KEY, amount numeric, email text, note text, _stage_id bigint);
SELECT stage.create_pipeline('ol', 'ol_orders', key => '{id}');
SELECT stage.add_rule('ol', 'amount', 'range', '{"min": 0}');
SELECT stage.add_rule('ol', 'amount', 'not_null', severity => 'warn');
SELECT stage.add_transform('ol', 'email', 'trim');
SELECT stage.add_transform('ol', 'email', 'lower');
SELECT stage.add_mask('ol', 'email', 'email');
SELECT stage.add_transform('ol', 'note', 'from', '{"column": "email"}');

-- the reader's starting point: a snapshot is a cursor (everything visible
-- in it has been seen), so this one skips the events of earlier tests
SELECT pg_current_snapshot()::text AS c0 \gset

INSERT INTO stage_landing.ol (id, amount, email) VALUES ('1', '5', ' A@B.com'), ('2', '-1', 'x@y.z'), ('3', NULL, NULL);
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('ol');

-- the spec's required fields and types, by hand: a row per problem
CREATE FUNCTION pg_temp.ol_problems(e jsonb) RETURNS SETOF text LANGUAGE sql AS $$
	WITH facet(place, name, f) AS (
		SELECT 'run', k, v FROM jsonb_each(e->'run'->'facets') AS x(k, v)
		UNION ALL SELECT 'job', k, v FROM jsonb_each(e->'job'->'facets') AS x(k, v)
		UNION ALL SELECT 'dataset', k, v FROM jsonb_array_elements(e->'inputs' || e->'outputs') d,
			jsonb_each(COALESCE(d->'facets', '{}')) AS x(k, v)
		UNION ALL SELECT 'input', k, v FROM jsonb_array_elements(e->'inputs') d,
			jsonb_each(COALESCE(d->'inputFacets', '{}')) AS x(k, v)
		UNION ALL SELECT 'output', k, v FROM jsonb_array_elements(e->'outputs') d,
			jsonb_each(COALESCE(d->'outputFacets', '{}')) AS x(k, v))
	SELECT 'event: ' || p FROM (VALUES
		(CASE WHEN e->>'eventType' NOT IN ('START', 'COMPLETE', 'FAIL', 'ABORT') THEN 'eventType' END),
		(CASE WHEN e->>'eventTime' !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' THEN 'eventTime' END),
		(CASE WHEN e->>'producer' !~ '^[a-z][a-z0-9+.-]*:' THEN 'producer is no URI' END),
		(CASE WHEN e->>'schemaURL' <> 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent' THEN 'schemaURL' END),
		(CASE WHEN e->'run'->>'runId' !~ '^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' THEN 'runId is no UUID v3' END),
		(CASE WHEN jsonb_typeof(e->'job'->'namespace') IS DISTINCT FROM 'string'
				OR jsonb_typeof(e->'job'->'name') IS DISTINCT FROM 'string' THEN 'job' END),
		(CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(e->'inputs' || e->'outputs') d
							WHERE jsonb_typeof(d->'namespace') IS DISTINCT FROM 'string'
							   OR jsonb_typeof(d->'name') IS DISTINCT FROM 'string') THEN 'dataset' END)) AS c(p)
	 WHERE p IS NOT NULL
	UNION ALL
	SELECT place || '.' || name || ': ' || p FROM facet, LATERAL (VALUES
		(CASE WHEN f->>'_producer' IS DISTINCT FROM e->>'producer' THEN '_producer' END),
		(CASE WHEN f->>'_schemaURL' !~ ('^(?:https://openlineage\.io/spec/facets/\d+-\d+-\d+/|urn:stage:openlineage:)'
										|| CASE name WHEN 'stage_batch' THEN 'StageBatchRunFacet:1-0-0#/\$defs/StageBatchRunFacet'
											ELSE '(\w+)\.json#/\$defs/\1' END || '$') THEN '_schemaURL' END),
		(CASE WHEN name NOT IN ('jobType', 'documentation', 'processing_engine', 'errorMessage', 'stage_batch', 'schema',
								'columnLineage', 'dataQualityAssertions', 'inputStatistics', 'outputStatistics')
			  THEN 'unknown facet' END),
		(CASE WHEN name = 'jobType' AND NOT (f->>'processingType' = 'BATCH' AND f->>'integration' = 'STAGE') THEN 'fields' END),
		(CASE WHEN name = 'documentation' AND jsonb_typeof(f->'description') IS DISTINCT FROM 'string' THEN 'description' END),
		(CASE WHEN name = 'processing_engine' AND jsonb_typeof(f->'version') IS DISTINCT FROM 'string' THEN 'version' END),
		(CASE WHEN name = 'errorMessage' AND (jsonb_typeof(f->'message') IS DISTINCT FROM 'string'
											 OR jsonb_typeof(f->'programmingLanguage') IS DISTINCT FROM 'string') THEN 'fields' END),
		(CASE WHEN name = 'stage_batch' AND NOT (f ?& '{batchId,kind,contractVersion,node}') THEN 'fields' END),
		(CASE WHEN name = 'schema' AND EXISTS (SELECT 1 FROM jsonb_array_elements(f->'fields') x
												WHERE jsonb_typeof(x->'name') IS DISTINCT FROM 'string'
												   OR jsonb_typeof(x->'type') IS DISTINCT FROM 'string') THEN 'fields' END),
		(CASE WHEN name IN ('inputStatistics', 'outputStatistics')
				   AND jsonb_typeof(f->'rowCount') IS DISTINCT FROM 'number' THEN 'rowCount' END),
		(CASE WHEN name = 'dataQualityAssertions' AND EXISTS (
				SELECT 1 FROM jsonb_array_elements(f->'assertions') a
				 WHERE jsonb_typeof(a->'assertion') IS DISTINCT FROM 'string'
					OR jsonb_typeof(a->'success') IS DISTINCT FROM 'boolean'
					OR jsonb_typeof(a->'failures') IS DISTINCT FROM 'number'
					OR a->>'severity' NOT IN ('error', 'warn')
					OR jsonb_typeof(a->'properties') IS DISTINCT FROM 'object'
					OR (a ? 'column' AND jsonb_typeof(a->'column') <> 'string')) THEN 'assertions' END),
		(CASE WHEN name = 'columnLineage' AND (jsonb_typeof(f->'fields') IS DISTINCT FROM 'object' OR EXISTS (
				SELECT 1 FROM (SELECT i FROM jsonb_each(f->'fields') AS c(k, v), jsonb_array_elements(v->'inputFields') i
							   UNION ALL SELECT jsonb_array_elements(f->'dataset')) x(i)
				 WHERE NOT (i ?& '{namespace,name,field}')
					OR EXISTS (SELECT 1 FROM jsonb_array_elements(i->'transformations') t
								WHERE t->>'type' NOT IN ('DIRECT', 'INDIRECT')))) THEN 'fields' END)) AS c(p)
	 WHERE p IS NOT NULL
$$;

-- the batch's two events, START and COMPLETE, one run, spec-valid
SELECT event->>'eventType' AS type, event->'job'->>'name' AS job,
	   event->'run'->>'runId' = first_value(event->'run'->>'runId') OVER () AS same_run,
	   (SELECT count(*) FROM pg_temp.ol_problems(event)) AS problems
  FROM stage.openlineage_events(:'c0')
 ORDER BY event_id;
-- START at the batch's start, the end at its finish; the run id is a
-- name-based UUID of the node and the batch
SELECT e.event->>'eventType' AS type,
	   e.event->>'eventTime' = to_char(timezone('UTC', CASE e.event->>'eventType' WHEN 'START' THEN b.started_at
																				 ELSE b.finished_at END),
									   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_time,
	   (e.event->'run'->>'runId')::uuid = stage._ol_uuid('stage://' || stage.node_name() || '/batch/' || b.batch_id) AS run_id,
	   e.event->'job'->>'namespace' = 'stage://' || stage.node_name() AS job_namespace,
	   e.event->'inputs'->0->>'namespace' = 'postgres://' || stage.node_name() AS dataset_namespace,
	   e.event->'inputs'->0->>'name' = current_database() || '.stage_landing.ol' AS input,
	   e.event->'outputs'->0->>'name' = current_database() || '.public.ol_orders' AS target,
	   e.event->'outputs'->1->>'name' = current_database() || '.stage.quarantine_log' AS quarantine,
	   e.event->>'producer' = 'urn:stage:' || x.extversion AS producer
  FROM stage.openlineage_events(:'c0') e JOIN stage.batches b USING (batch_id), pg_extension x
 WHERE x.extname = 'stage'
 ORDER BY e.event_id;
-- the UUID is RFC 4122's version 3 (MD5, URL namespace): Python's
-- uuid.uuid3(uuid.NAMESPACE_URL, 'http://www.example.com/') gives the same
SELECT stage._ol_uuid('http://www.example.com/') AS uuid3;

-- the facets of each event
SELECT e.event->>'eventType' AS type, w.place, string_agg(k, ', ' ORDER BY k) AS facets
  FROM stage.openlineage_events(:'c0') e,
	   LATERAL (VALUES ('run', e.event->'run'->'facets'), ('job', e.event->'job'->'facets'),
					   ('input', e.event->'inputs'->0->'facets'), ('input: inputFacets', e.event->'inputs'->0->'inputFacets'),
					   ('target', e.event->'outputs'->0->'facets'), ('target: outputFacets', e.event->'outputs'->0->'outputFacets'),
					   ('quarantine: outputFacets', e.event->'outputs'->1->'outputFacets')) AS w(place, f),
	   jsonb_object_keys(w.f) AS k
 GROUP BY e.event_id, 1, 2
 ORDER BY e.event_id, 2;
SELECT (e.event->'job'->'facets'->'jobType') - '{_producer,_schemaURL}'::text[] AS job_type,
	   e.event->'job'->'facets'->'documentation'->>'description' AS documentation,
	   e.event->'run'->'facets'->'processing_engine'->>'name' AS engine
  FROM stage.openlineage_events(:'c0') e
 WHERE e.event->>'eventType' = 'COMPLETE';
-- the batch's counts (stage's facet) and the outputs' row counts
SELECT k, v
  FROM stage.openlineage_events(:'c0') e,
	   jsonb_each(e.event->'run'->'facets'->'stage_batch') AS x(k, v)
 WHERE e.event->>'eventType' = 'COMPLETE'
   AND k NOT IN ('_producer', 'batchId', 'node', 'startedAt', 'finishedAt') AND k !~ '^latency'
 ORDER BY k;
SELECT o->>'name' ~ 'ol_orders$' AS target, o->'outputFacets'->'outputStatistics'->>'rowCount' AS row_count
  FROM stage.openlineage_events(:'c0') e, jsonb_array_elements(e.event->'outputs') o
 WHERE e.event->>'eventType' = 'COMPLETE';
SELECT e.event->'inputs'->0->'inputFacets'->'inputStatistics'->>'rowCount' AS rows_read,
	   jsonb_path_query_array(e.event, '$.inputs[0].facets.schema.fields[*].name') AS landing_columns
  FROM stage.openlineage_events(:'c0') e
 WHERE e.event->>'eventType' = 'COMPLETE';

-- each rule's (and type check's) result with its column, severity, the
-- failures expected and found, and the values checked
SELECT a->>'assertion' AS assertion, a->>'column' AS column_name, a->>'success' AS success,
	   a->>'severity' AS severity, a->>'failures' AS failures, a->'properties' AS properties
  FROM stage.openlineage_events(:'c0') e,
	   jsonb_array_elements(e.event->'inputs'->0->'inputFacets'->'dataQualityAssertions'->'assertions') a
 WHERE e.event->>'eventType' = 'COMPLETE'
 ORDER BY 1;

-- column lineage: each target column from its landing fields, with the
-- transforms of its chain and its mask; the rows filtered out by reject
-- rules and by the key
SELECT k AS target_column, v->>'transformationType' AS type, v->>'transformationDescription' AS description,
	   jsonb_path_query_array(v, '$.inputFields[*].field') AS landing_fields,
	   v->'inputFields'->0->'transformations' AS transformations
  FROM stage.openlineage_events(:'c0') e,
	   jsonb_each(e.event->'outputs'->0->'facets'->'columnLineage'->'fields') AS x(k, v)
 WHERE e.event->>'eventType' = 'COMPLETE'
 ORDER BY 1;
SELECT d->>'field' AS landing_field, d->'transformations' AS transformations
  FROM stage.openlineage_events(:'c0') e,
	   jsonb_array_elements(e.event->'outputs'->0->'facets'->'columnLineage'->'dataset') d
 WHERE e.event->>'eventType' = 'COMPLETE';

--
-- the cursor
--
-- every row carries the cursor to pass next: reading one event at a time,
-- each from the last row's cursor, gives what one read gives, in order
WITH RECURSIVE r(n, cur, id) AS (
	SELECT 0, :'c0'::text, NULL::bigint
	UNION ALL
	SELECT r.n + 1, e.cursor, e.event_id FROM r, LATERAL stage.openlineage_events(r.cur, 1) e WHERE r.n < 20)
SELECT array_agg(id ORDER BY n) FILTER (WHERE id IS NOT NULL)
	   = (SELECT array_agg(event_id) FROM stage.openlineage_events(:'c0')) AS one_at_a_time,
	   count(id) AS events
  FROM r;
-- the last row's cursor has seen everything: nothing after it, nor after
-- a snapshot taken now
SELECT cursor AS c1 FROM stage.openlineage_events(:'c0') WITH ORDINALITY AS e(cursor, event_id, batch_id, event, n)
 ORDER BY n DESC LIMIT 1 \gset
SELECT count(*) AS after_last FROM stage.openlineage_events(:'c1');
SELECT count(*) AS after_now FROM stage.openlineage_events(pg_current_snapshot()::text);
-- a cursor inside a window (the START's) resumes right after its row
SELECT e.event->>'eventType' AS type
  FROM stage.openlineage_events((SELECT cursor FROM stage.openlineage_events(:'c0', 1))) e;

-- a second pipeline; its batch runs in the reader's transaction: the
-- reader's own events are not committed yet and are not returned, and the
-- cursor it gets counts its transaction as running, so after the commit
-- they come
CREATE TABLE ol_items (id int PRIMARY KEY, qty int);
SELECT stage.create_pipeline('ol_items', 'ol_items', key => '{id}');
INSERT INTO stage_landing.ol_items (id, qty) VALUES ('1', '2');
BEGIN;
SELECT rows_in FROM stage.run_batch('ol_items');
SELECT count(*) AS own_events FROM stage.openlineage_events(:'c1');
SELECT cursor AS c_own FROM stage.openlineage_events(:'c0') WITH ORDINALITY AS e(cursor, event_id, batch_id, event, n)
 ORDER BY n DESC LIMIT 1 \gset
COMMIT;
SELECT e.event->>'eventType' AS type, e.event->'job'->>'name' AS job FROM stage.openlineage_events(:'c_own') e;

-- a held batch is an ABORT: its writes were undone and the pipeline
-- paused (max_reject_ratio); why, in errorMessage; the rules' results,
-- the rows read, and no output statistics (nothing was written)
SELECT stage.set_contract('ol_items', stage.contract('ol_items')
	|| '{"max_reject_ratio": 0.1, "rules": [{"column": "qty", "kind": "range", "args": {"min": 0}}]}');
INSERT INTO stage_landing.ol_items (id, qty) VALUES ('2', '-1'), ('3', '-2');
SET client_min_messages = error;
SELECT rows_in, status FROM stage.run_batch('ol_items');
SET client_min_messages = warning;
SELECT e.event->>'eventType' AS type,
	   regexp_replace(e.event->'run'->'facets'->'errorMessage'->>'message', 'batch \d+', 'batch N') AS message,
	   e.event->'run'->'facets'->'errorMessage'->>'programmingLanguage' AS language,
	   e.event->'run'->'facets'->'stage_batch'->>'status' AS status,
	   e.event->'inputs'->0->'inputFacets'->'inputStatistics'->>'rowCount' AS rows_read,
	   jsonb_path_query_array(e.event, '$.inputs[0].inputFacets.dataQualityAssertions.assertions[*] ? (@.success == false).assertion') AS failed,
	   jsonb_path_exists(e.event, '$.outputs[*].outputFacets') AS output_statistics
  FROM stage.openlineage_events(:'c_own') e
 WHERE e.event->>'eventType' = 'ABORT'
 ORDER BY e.event_id;

-- a failed batch is a FAIL with an errorMessage; where the pipeline masks
-- columns, the message is the condition only (it may quote a masked value:
-- the lineage backend never sees it), and the SQLSTATE is in stage_batch
CREATE FUNCTION ol_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'refused %', NEW.email USING ERRCODE = '42000';
END $$;
CREATE TRIGGER ol_refuse BEFORE INSERT ON ol_orders FOR EACH ROW EXECUTE FUNCTION ol_refuse();
INSERT INTO stage_landing.ol (id, amount, email) VALUES ('4', '1', 'secret@example.com');
SELECT stage.run_all() IS NOT NULL AS ran;
SELECT e.event->>'eventType' AS type,
	   e.event->'run'->'facets'->'errorMessage'->>'message' AS message,
	   e.event->'run'->'facets'->'stage_batch'->>'sqlstate' AS sqlstate,
	   e.event::text ~ 'secret' AS quotes_the_value,
	   jsonb_path_exists(e.event, '$.outputs[*].outputFacets') AS output_statistics
  FROM stage.openlineage_events(:'c_own') e
 WHERE e.event->>'eventType' <> 'START' AND e.event->'job'->>'name' = 'ol'
 ORDER BY e.event_id;
DROP TRIGGER ol_refuse ON ol_orders;
SELECT stage.resume('ol');

-- a replay is a run of the job <pipeline>.replay, reading the quarantine
SELECT stage.drop_rule('ol', 'amount_range');
SELECT count(*) AS replayed FROM stage.replay('ol');
SELECT e.event->>'eventType' AS type, e.event->'job'->>'name' AS job,
	   e.event->'job'->'facets'->'jobType'->>'jobType' AS job_type,
	   e.event->'inputs'->0->>'name' = current_database() || '.stage.quarantine_log' AS reads_quarantine,
	   jsonb_path_query_array(e.event, '$.outputs[0].facets.columnLineage.fields.email.inputFields[*].field') AS email_from,
	   e.event->'outputs'->0->'outputFacets'->'outputStatistics'->>'rowCount' AS rows_clean
  FROM stage.openlineage_events(:'c_own') e
 WHERE e.event->'job'->>'name' = 'ol.replay'
 ORDER BY e.event_id;

-- every event of this test: a START and an end per batch, each once, and
-- nothing wrong with any
SELECT count(*) AS events, count(DISTINCT batch_id) AS batches,
	   count(*) FILTER (WHERE event->>'eventType' = 'START') AS starts,
	   count(DISTINCT (batch_id, event->>'eventType')) = count(*) AS each_once
  FROM stage.openlineage_events(:'c0');
SELECT DISTINCT p AS problem
  FROM stage.openlineage_events(:'c0') e, pg_temp.ol_problems(e.event) p;

-- a role that may not see the pipelines sees none of their events
CREATE ROLE ol_stranger;
SET ROLE ol_stranger;
SELECT count(*) AS stranger_sees FROM stage.openlineage_events(:'c0');
RESET ROLE;
DROP ROLE ol_stranger;

-- bad arguments
\set VERBOSITY terse
SELECT * FROM stage.openlineage_events('batch 12');
SELECT * FROM stage.openlineage_events('9999999999:9999999999:');
SELECT * FROM stage.openlineage_events(NULL, 0);
\set VERBOSITY default

-- a dropped pipeline's events go with it
SELECT stage.drop_pipeline('ol', force => true);
SELECT stage.drop_pipeline('ol_items', force => true);
SELECT count(*) AS left_over FROM stage.openlineage_events(:'c0');
DROP TABLE ol_orders, ol_items;
DROP FUNCTION ol_refuse();
RESET client_min_messages;
