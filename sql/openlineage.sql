--
-- openlineage: batches as OpenLineage run events (the lineage outbox),
-- read after a cursor.
--
CREATE TABLE ol_orders (id int PRIMARY KEY, amount numeric);
SELECT stage.create_pipeline('ol', 'ol_orders', key => '{id}');
SELECT stage.add_rule('ol', 'amount', 'range', '{"min": 0}');
SELECT stage.add_rule('ol', 'amount', 'not_null', severity => 'warn');
INSERT INTO stage_landing.ol (id, amount) VALUES ('1', '5'), ('2', '-1'), ('3', NULL);
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('ol');

-- the cursor: events after the last batch id a shipper has sent; here,
-- the batch just before this pipeline's: one event, this pipeline's batch
SELECT count(*) AS events, bool_and(event->'job'->>'name' = 'ol') AS all_ol
  FROM stage.openlineage_events(
		(SELECT min(batch_id) - 1 FROM stage.batches WHERE pipeline = 'ol'));

-- the shape of an event: run, job with the contract version, the landing
-- table as input with one assertion per rule, target and quarantine as
-- outputs with their row counts
SELECT e.event->>'eventType' AS type,
	   e.event->'job'->>'name' AS job,
	   e.event->'job'->'facets'->'stage_contract'->>'version' AS contract_version,
	   e.event->'inputs'->0->>'name' AS input,
	   e.event->'outputs'->0->>'name' AS output,
	   e.event->'outputs'->0->'outputFacets'->'outputStatistics'->>'rowCount' AS clean,
	   e.event->'outputs'->1->>'name' AS quarantine,
	   e.event->'outputs'->1->'outputFacets'->'outputStatistics'->>'rowCount' AS quarantined,
	   e.event->'run'->'facets'->'stage_batch'->>'rows_in' AS rows_in,
	   e.event->>'eventTime' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS iso_time,
	   (e.event->'run'->>'runId')::uuid IS NOT NULL AS run_id_is_uuid
  FROM stage.openlineage_events() e
 WHERE e.event->'job'->>'name' = 'ol';
SELECT a->>'assertion' AS assertion, a->>'column' AS column_name, a->>'success' AS success
  FROM stage.openlineage_events() e,
	   jsonb_array_elements(e.event->'inputs'->0->'inputFacets'->'dataQualityAssertions'->'assertions') a
 WHERE e.event->'job'->>'name' = 'ol'
 ORDER BY 1;

-- the run id is stable: the same batch gives the same event
SELECT count(DISTINCT e.event->'run'->>'runId') = 1 AS stable_run_id
  FROM (SELECT * FROM stage.openlineage_events() UNION ALL SELECT * FROM stage.openlineage_events()) e
 WHERE e.event->'job'->>'name' = 'ol';
-- the producer names the installed version of stage
SELECT e.event->>'producer' = 'urn:stage:' || x.extversion AS producer_is_installed_version
  FROM stage.openlineage_events() e, pg_extension x
 WHERE x.extname = 'stage' AND e.event->'job'->>'name' = 'ol';
-- max_events bounds a read; a cursor past the last batch reads nothing
SELECT count(*) AS at_most_one FROM stage.openlineage_events(0, 1);
SELECT count(*) AS none FROM stage.openlineage_events((SELECT max(batch_id) FROM stage.batches));

SELECT stage.drop_pipeline('ol', force => true);
DROP TABLE ol_orders;
