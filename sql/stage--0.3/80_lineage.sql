/* ------------------------------------------------- OpenLineage outbox */

/*
 * Batches as OpenLineage run events, in batch order after a cursor: a
 * shipper (a small script, or a postgres_exporter-like poller) reads the
 * events after the last batch id it shipped, sends them, and keeps the new
 * cursor.  Nothing is deleted: the events are derived from stage.batch and
 * its rule statistics, so the outbox is as durable as the batch history.
 *
 * Mapping: a batch is a run (runId is a UUID derived from the database and
 * the batch id, stable across calls); the pipeline is the job, its
 * contract version the job's version facet; the landing table is the
 * input, the target and the quarantine are the outputs with their row
 * counts; each rule's result in the batch is a data-quality assertion on
 * the input.  Done batches are COMPLETE, failed ones FAIL, held ones ABORT.
 */
CREATE FUNCTION stage.openlineage_events(since_batch_id bigint DEFAULT 0,
										 max_events integer DEFAULT 1000)
RETURNS TABLE(batch_id bigint, event jsonb)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.openlineage_events(bigint, integer) IS
	'batches after a cursor as OpenLineage run events (the lineage outbox)';
CREATE FUNCTION stage._do_openlineage_events(since_batch_id bigint,
										 max_events integer)
RETURNS TABLE(batch_id bigint, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT b.batch_id,
		   pg_catalog.jsonb_build_object(
			'eventType', CASE b.status WHEN 'done' THEN 'COMPLETE'
									   WHEN 'failed' THEN 'FAIL' ELSE 'ABORT' END,
			'eventTime', pg_catalog.to_char(pg_catalog.timezone('UTC', b.finished_at),
											'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'producer', 'urn:stage:' OPERATOR(pg_catalog.||)
				(SELECT e.extversion FROM pg_catalog.pg_extension e
				  WHERE e.extname OPERATOR(pg_catalog.=) 'stage'),
			'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent',
			'run', pg_catalog.jsonb_build_object(
				'runId', (pg_catalog.md5(pg_catalog.current_database() OPERATOR(pg_catalog.||) '/'
										 OPERATOR(pg_catalog.||) b.batch_id::text))::uuid,
				'facets', pg_catalog.jsonb_build_object(
					'stage_batch', pg_catalog.jsonb_build_object(
						'kind', b.kind, 'status', b.status,
						'rows_in', b.rows_in, 'rows_clean', b.rows_clean,
						'rows_quarantined', b.rows_quarantined,
						'rows_duplicate', b.rows_duplicate, 'rows_warned', b.rows_warned,
						'started_at', b.started_at,
						'error', CASE WHEN b.error IS NULL OR stage._owns(p.owner)
										   OR NOT EXISTS (SELECT 1 FROM stage.mask m
														   WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
									  THEN b.error ELSE stage._withheld(b.sqlstate) END,
						'sqlstate', b.sqlstate))),
			'job', pg_catalog.jsonb_build_object(
				'namespace', 'stage://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
				'name', p.name,
				'facets', pg_catalog.jsonb_build_object(
					'stage_contract', pg_catalog.jsonb_build_object('version', b.contract_version))),
			'inputs', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
				'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
				'name', p.landing::text,
				'inputFacets', pg_catalog.jsonb_build_object(
					'dataQualityAssertions', pg_catalog.jsonb_build_object(
						'assertions', COALESCE((
							SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
									'assertion', s.rule_name, 'column', s.column_name,
									'success', s.failed OPERATOR(pg_catalog.=) 0)
									ORDER BY s.rule_name)
							  FROM stage.batch_rule_stat s
							 WHERE s.batch_id OPERATOR(pg_catalog.=) b.batch_id), '[]'))))),
			'outputs', pg_catalog.jsonb_build_array(
				pg_catalog.jsonb_build_object(
					'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
					'name', p.target::text,
					'outputFacets', pg_catalog.jsonb_build_object(
						'outputStatistics', pg_catalog.jsonb_build_object('rowCount', b.rows_clean))),
				pg_catalog.jsonb_build_object(
					'namespace', 'postgres://' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
					'name', 'stage.quarantine_log',
					'outputFacets', pg_catalog.jsonb_build_object(
						'outputStatistics', pg_catalog.jsonb_build_object('rowCount', b.rows_quarantined)))))
	  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
	 WHERE b.batch_id OPERATOR(pg_catalog.>) COALESCE(since_batch_id, 0)
	   AND stage._may_see(p.owner)
	 ORDER BY b.batch_id
	 LIMIT COALESCE(max_events, 1000);
END
$$;
