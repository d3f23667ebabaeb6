/* -------------------------------------------------------------- views */

/*
 * Every view belongs to the catalog owner, reads the catalog with its
 * rights and shows each role the pipelines whose outcomes it may see
 * (stage._may_see: members of the owner role, superusers, stage_analyst).
 * security_barrier: a caller's own conditions (a function that prints its
 * arguments, say) are applied after that filter, never to hidden rows.
 *
 * Error texts (a failed batch, the reason a pipeline was paused) come from
 * the server or the owner's code and may quote a value: where the
 * pipeline masks columns, only its owners see them, others see the
 * condition (stage._withheld).
 */

CREATE VIEW stage.pipelines WITH (security_barrier) AS
SELECT p.name AS pipeline, p.target, p.landing, p.format, p.key, p.on_duplicate,
	   p.enabled,
	   CASE WHEN stage._owns(p.owner) OR p.paused_reason IS NULL
				 OR p.paused_reason OPERATOR(pg_catalog.!~~) 'paused after % consecutive failed batches; last: %'
				 OR NOT EXISTS (SELECT 1 FROM stage.mask m
								 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
			THEN p.paused_reason
			ELSE pg_catalog.split_part(p.paused_reason, '; last: ', 1)
				 OPERATOR(pg_catalog.||) '; the last error is withheld: the pipeline masks columns'
	   END AS paused_reason,
	   p.failures, p.retry_at, p.max_reject_ratio, p.retention,
	   p.contract_version, p.owner,
	   (SELECT pg_catalog.count(*) FROM stage.rule r
		 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS rules,
	   (SELECT pg_catalog.count(*) FROM stage.mask m
		 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id) AS masks,
	   p.win_hi IS NOT NULL AS window_open,
	   p.created_at, p.lanes, p.target_changed_at
  FROM stage.pipeline p
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.batches WITH (security_barrier) AS
SELECT b.batch_id, p.name AS pipeline, b.kind, b.contract_version, b.status,
	   b.rows_in, b.rows_clean, b.rows_quarantined, b.rows_duplicate, b.rows_warned,
	   b.rows_drift, b.latency_p50_ms, b.latency_p95_ms, b.latency_p99_ms, b.latency_max_ms,
	   b.started_at, b.finished_at,
	   b.finished_at OPERATOR(pg_catalog.-) b.started_at AS duration,
	   CASE WHEN b.error IS NULL OR stage._owns(p.owner)
				 OR NOT EXISTS (SELECT 1 FROM stage.mask m
								 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
			THEN b.error ELSE stage._withheld(b.sqlstate) END AS error,
	   b.sqlstate, b.backend_pid, b.run_by,
	   b.win_lo, b.win_hi, b.from_id, b.to_id, b.lane
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.rule_stats WITH (security_barrier) AS
SELECT p.name AS pipeline, s.batch_id, s.rule_name, s.column_name, s.kind, s.severity,
	   s.checked, s.failed
  FROM stage.batch_rule_stat s
  JOIN stage.batch b USING (batch_id)
  JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

/* per transform and batch: values it was applied to, changed, made NULL, failed on */
CREATE VIEW stage.transform_stats WITH (security_barrier) AS
SELECT p.name AS pipeline, s.batch_id, s.transform_name, s.column_name, s.method,
	   s.applied, s.changed, s.nulled, s.failed
  FROM stage.batch_transform_stat s
  JOIN stage.batch b USING (batch_id)
  JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);

/* lineage: each batch as a run, with its input, outputs and job version */
CREATE VIEW stage.lineage WITH (security_barrier) AS
SELECT p.name AS pipeline, b.batch_id, b.contract_version, p.landing AS input,
	   p.target AS output, 'stage.quarantine_log'::regclass AS quarantine,
	   b.first_id AS first_landing_id, b.to_id AS last_landing_id,
	   b.win_lo, b.win_hi, b.rows_in, b.rows_clean, b.rows_quarantined,
	   b.rows_duplicate, b.started_at, b.finished_at
  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
 WHERE b.status OPERATOR(pg_catalog.=) 'done' AND stage._may_see(p.owner);

GRANT SELECT ON stage.pipelines, stage.batches, stage.rule_stats, stage.transform_stats,
	stage.lineage TO PUBLIC;

/*
 * The quarantine and its daily summary, for owners (their pipelines),
 * stage_analyst members (every pipeline) and superusers; masked columns
 * show masked with their current mask, also on rows quarantined before it
 * was set.  stage.quarantine shows the open items, the work still to do;
 * stage.quarantine_all every item whatever its status.
 */
CREATE VIEW stage.quarantine_all WITH (security_barrier) AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'value' AS value,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'message' AS message,
	   q.reasons, q.row_data, q.source, q.role::pg_catalog.name AS role, q.received_at, q.quarantined_at,
	   q.status, q.successor_id, q.closed_at, q.closed_by, q.note
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.quarantine WITH (security_barrier) AS
SELECT x.* FROM stage.quarantine_all x
  JOIN stage.pipeline p ON p.name OPERATOR(pg_catalog.=) x.pipeline
 WHERE x.status OPERATOR(pg_catalog.=) 'open' AND stage._may_see(p.owner);

CREATE VIEW stage.dlq_summary WITH (security_barrier) AS
SELECT p.name AS pipeline, r.value OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   r.value OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   r.value OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   pg_catalog.date_trunc('day', q.quarantined_at) AS day,
	   pg_catalog.count(*) AS failures,
	   pg_catalog.count(DISTINCT q.landing_id) AS rows,
	   pg_catalog.count(DISTINCT q.landing_id) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS open_rows,
	   pg_catalog.count(DISTINCT q.landing_id) FILTER (WHERE q.status OPERATOR(pg_catalog.<>) 'open') AS closed_rows
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage._quarantine(p.pipeline_id) q
 CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(q.reasons) r
 WHERE stage._may_see(p.owner)
 GROUP BY 1, 2, 3, 4, 5;

GRANT SELECT ON stage.quarantine_all, stage.quarantine, stage.dlq_summary TO PUBLIC;

/*
 * Who lands what, per pipeline: source and role of its landing rows, with
 * their count and first and last arrival (stage.landing_sources, a scan
 * of each landing table shown).
 */
CREATE VIEW stage.sources WITH (security_barrier) AS
SELECT p.name AS pipeline, s.source, s.role, s.rows, s.first_received_at, s.last_received_at
  FROM stage.pipeline p
 CROSS JOIN LATERAL stage.landing_sources(p.name) s
 WHERE stage._may_see(p.owner);

GRANT SELECT ON stage.sources TO PUBLIC;


/*
 * The staging SLIs per pipeline, over the last hour of batches (and the
 * whole quarantine for the DLQ): what a dashboard or an alert reads.
 * Rates are fractions of the rows the batches took.  Runs as the invoker:
 * row-level security shows each role the batches it may see.
 */
CREATE VIEW stage.health WITH (security_barrier) AS
WITH recent AS (
	SELECT b.*
	  FROM stage.batch b
	 WHERE b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)
), per_pipeline AS (
	SELECT r.pipeline_id,
		   pg_catalog.count(*) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch') AS batches,
		   pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'failed') AS failed_batches,
		   pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'held') AS held_batches,
		   pg_catalog.sum(r.rows_in) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
											 AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_in,
		   pg_catalog.sum(r.rows_clean) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
												AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_clean,
		   pg_catalog.sum(r.rows_quarantined) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
													  AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_quarantined,
		   pg_catalog.sum(r.rows_duplicate) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'batch'
													AND r.status OPERATOR(pg_catalog.=) 'done') AS rows_duplicate,
		   pg_catalog.sum(r.rows_drift) AS rows_drift,
		   pg_catalog.sum(r.rows_in) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'replay') AS replayed,
		   pg_catalog.sum(r.rows_clean) FILTER (WHERE r.kind OPERATOR(pg_catalog.=) 'replay') AS replayed_clean,
		   /* row-weighted: a fair summary of per-batch percentiles */
		   pg_catalog.sum(r.latency_p50_ms OPERATOR(pg_catalog.*) r.rows_in)
			 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(r.rows_in) FILTER (WHERE r.latency_p50_ms IS NOT NULL), 0) AS latency_p50_ms,
		   pg_catalog.max(r.latency_p95_ms) AS latency_p95_ms,
		   pg_catalog.sum(EXTRACT(epoch FROM r.finished_at OPERATOR(pg_catalog.-) r.started_at))
			 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(r.rows_in), 0) AS seconds_per_row,
		   pg_catalog.max(r.finished_at) AS last_batch_at
	  FROM recent r
	 GROUP BY r.pipeline_id
), type_failures AS (
	SELECT b.pipeline_id, pg_catalog.sum(s.failed) AS failed
	  FROM recent b JOIN stage.batch_rule_stat s USING (batch_id)
	 WHERE s.kind OPERATOR(pg_catalog.=) 'type' AND b.kind OPERATOR(pg_catalog.=) 'batch'
	 GROUP BY b.pipeline_id
), dlq AS (
	/* the items by status; open ones by age; repairs closed in the last day */
	SELECT q.pipeline_id, pg_catalog.count(*) AS size,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS open,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open'
			   AND q.quarantined_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval)) AS growth_24h,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'repaired') AS repaired,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'replayed') AS replayed,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'superseded') AS superseded,
		   pg_catalog.count(*) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'dismissed') AS dismissed,
		   pg_catalog.now() OPERATOR(pg_catalog.-)
			 pg_catalog.min(q.quarantined_at) FILTER (WHERE q.status OPERATOR(pg_catalog.=) 'open') AS oldest_open_age,
		   pg_catalog.avg(q.closed_at OPERATOR(pg_catalog.-) q.quarantined_at)
			 FILTER (WHERE q.status OPERATOR(pg_catalog.<>) ALL (ARRAY['open', 'dismissed'])
					   AND q.closed_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval))
			 AS mean_time_to_repair
	  FROM stage.quarantine_log q
	 GROUP BY q.pipeline_id
)
SELECT p.name AS pipeline, p.enabled, p.paused_reason,
	   COALESCE(pp.batches, 0) AS batches_1h,
	   COALESCE(pp.failed_batches, 0) AS failed_batches_1h,
	   COALESCE(pp.held_batches, 0) AS held_batches_1h,
	   COALESCE(pp.rows_in, 0) AS rows_1h,
	   /* ingest: batches that completed, of those attempted */
	   ((pp.batches OPERATOR(pg_catalog.-) pp.failed_batches)::double precision
		 OPERATOR(pg_catalog./) NULLIF(pp.batches, 0)) AS ingest_success_rate,
	   pp.rows_clean::double precision OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS validation_pass_rate,
	   pp.rows_duplicate::double precision OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS duplicate_rate,
	   (COALESCE(tf.failed, 0) OPERATOR(pg_catalog.+) COALESCE(pp.rows_drift, 0))::double precision
		 OPERATOR(pg_catalog./) NULLIF(pp.rows_in, 0) AS schema_violation_rate,
	   pp.replayed_clean::double precision OPERATOR(pg_catalog./) NULLIF(pp.replayed, 0) AS replay_success_rate,
	   pp.latency_p50_ms AS handoff_latency_p50_ms,
	   pp.latency_p95_ms AS handoff_latency_p95_ms,
	   (pp.seconds_per_row OPERATOR(pg_catalog.*) 1000000)::double precision AS microseconds_per_row,
	   COALESCE(d.size, 0) AS dlq_size,
	   COALESCE(d.growth_24h, 0) AS dlq_growth_24h,
	   p.retention,
	   pp.last_batch_at,
	   COALESCE(d.open, 0) AS dlq_open,
	   d.oldest_open_age AS dlq_oldest_open_age,
	   d.mean_time_to_repair,
	   COALESCE(d.repaired, 0) AS dlq_repaired,
	   COALESCE(d.replayed, 0) AS dlq_replayed,
	   COALESCE(d.superseded, 0) AS dlq_superseded,
	   COALESCE(d.dismissed, 0) AS dlq_dismissed
  FROM stage.pipeline p
  LEFT JOIN per_pipeline pp USING (pipeline_id)
  LEFT JOIN type_failures tf USING (pipeline_id)
  LEFT JOIN dlq d USING (pipeline_id)
 WHERE stage._may_see(p.owner);
GRANT SELECT ON stage.health TO PUBLIC;


/*
 * The SLIs in Prometheus text exposition format, for postgres_exporter's
 * custom queries or a scrape proxy: one family per metric, each with its
 * HELP and TYPE lines, one sample per pipeline.
 */
CREATE FUNCTION stage.metrics()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	out text := '';
	fam record;
	h record;
	v text;
BEGIN
	FOR fam IN SELECT * FROM (VALUES
		(1, 'stage_rows_1h', 'Landing rows taken by batches in the last hour.'),
		(2, 'stage_rows_clean_1h', 'Rows moved to the target by batches in the last hour.'),
		(3, 'stage_rows_quarantined_1h', 'Rows quarantined by batches in the last hour (DLQ growth over the hour).'),
		(4, 'stage_batches_1h', 'Batches attempted in the last hour.'),
		(5, 'stage_batches_failed_1h', 'Batches that failed in the last hour.'),
		(6, 'stage_batches_held_1h', 'Batches held (max_reject_ratio or drift) in the last hour.'),
		(7, 'stage_validation_pass_rate', 'Share of the last hour''s rows that passed the contract.'),
		(8, 'stage_duplicate_rate', 'Share of the last hour''s rows resolved as duplicates.'),
		(9, 'stage_schema_violation_rate', 'Type failures and drifting payloads per row taken, last hour.'),
		(10, 'stage_handoff_latency_p50_seconds', 'Median time from landing to the target, last hour.'),
		(11, 'stage_handoff_latency_p95_seconds', '95th percentile time from landing to the target, last hour.'),
		(12, 'stage_dlq_size', 'Quarantine items kept, whatever their status.'),
		(13, 'stage_dlq_growth_24h', 'Items quarantined in the last 24 hours and still open.'),
		(14, 'stage_pipeline_enabled', '1 when the pipeline runs, 0 when paused or held.'),
		(15, 'stage_dlq_open', 'Open quarantine items: rows still to repair, replay or dismiss.'),
		(16, 'stage_dlq_oldest_open_age_seconds', 'Age of the oldest open quarantine item.')
	) AS f(n, name, help) ORDER BY n
	LOOP
		out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'# HELP %s %s\n# TYPE %s gauge\n',
															 fam.name, fam.help, fam.name);
		FOR h IN SELECT * FROM stage.health ORDER BY pipeline LOOP
			v := CASE fam.n
				WHEN 1 THEN h.rows_1h::text
				WHEN 2 THEN COALESCE((SELECT pg_catalog.sum(b.rows_clean) FROM stage.batches b
									   WHERE b.pipeline OPERATOR(pg_catalog.=) h.pipeline
										 AND b.kind OPERATOR(pg_catalog.=) 'batch'
										 AND b.status OPERATOR(pg_catalog.=) 'done'
										 AND b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)), 0)::text
				WHEN 3 THEN COALESCE((SELECT pg_catalog.sum(b.rows_quarantined) FROM stage.batches b
									   WHERE b.pipeline OPERATOR(pg_catalog.=) h.pipeline
										 AND b.kind OPERATOR(pg_catalog.=) 'batch'
										 AND b.status OPERATOR(pg_catalog.=) 'done'
										 AND b.finished_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)), 0)::text
				WHEN 4 THEN h.batches_1h::text
				WHEN 5 THEN h.failed_batches_1h::text
				WHEN 6 THEN h.held_batches_1h::text
				WHEN 7 THEN h.validation_pass_rate::text
				WHEN 8 THEN h.duplicate_rate::text
				WHEN 9 THEN h.schema_violation_rate::text
				WHEN 10 THEN (h.handoff_latency_p50_ms OPERATOR(pg_catalog./) 1000)::text
				WHEN 11 THEN (h.handoff_latency_p95_ms OPERATOR(pg_catalog./) 1000)::text
				WHEN 12 THEN h.dlq_size::text
				WHEN 13 THEN h.dlq_growth_24h::text
				WHEN 14 THEN CASE WHEN h.enabled THEN '1' ELSE '0' END
				WHEN 15 THEN h.dlq_open::text
				WHEN 16 THEN COALESCE(EXTRACT(epoch FROM h.dlq_oldest_open_age), 0)::text
			END;
			out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'%s{pipeline="%s"} %s\n', fam.name,
				pg_catalog.replace(pg_catalog.replace(h.pipeline, E'\\', E'\\\\'), '"', E'\\"'),
				COALESCE(v, 'NaN'));
		END LOOP;
	END LOOP;
	out := out OPERATOR(pg_catalog.||) E'# HELP stage_workers Running stage background workers.\n'
		OPERATOR(pg_catalog.||) E'# TYPE stage_workers gauge\n'
		OPERATOR(pg_catalog.||) 'stage_workers ' OPERATOR(pg_catalog.||)
		(SELECT pg_catalog.count(*) FROM stage.workers)::text OPERATOR(pg_catalog.||) E'\n';
	RETURN out;
END
$$;

/*
 * The workers of the cluster: anyone may see that they run; which
 * pipeline and batch each is on, and how its last batch failed, only
 * those who may see that pipeline (stage._workers decides).
 */
CREATE VIEW stage.workers WITH (security_barrier) AS
SELECT w.pid, w.database, w.state, w.pipeline, w.batch_id, w.last_error,
	   w.batches, w.rows, w.started_at, w.last_batch_at,
	   CASE WHEN w.dynamic THEN 'stage.start_worker()' ELSE 'stage.databases' END AS started_by
  FROM stage._workers() w;
GRANT SELECT ON stage.workers TO PUBLIC;
