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
	   p.created_at, p.lanes, p.target_changed_at, p.history_retention,
	   p.max_backlog, p.max_backlog_age, p.on_backlog, p.backlog_wait,
	   COALESCE(p.partition_interval,
				LEAST(GREATEST(p.retention OPERATOR(pg_catalog./) 4, '10 seconds'::interval), '1 day'::interval))
		 AS partition_interval
  FROM stage.pipeline p
 WHERE stage._may_see(p.owner);

/*
 * stage.batches lists the newest batches first: read in that order from
 * the batch key, "the last 100 batches" reads 100 rows, not the history
 * (the view is a security barrier, so the caller's ORDER BY and LIMIT
 * cannot reach inside it; its own order can).
 */
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
 WHERE stage._may_see(p.owner)
 ORDER BY b.batch_id DESC;

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
 *
 * Plain views over stage.quarantine_log, so that a caller's conditions on
 * the pipeline, landing_id or status reach its indexes: the masked columns
 * (reasons, row_data, and value and message taken from the reasons) are
 * computed per row in the target list, so only the rows a query returns
 * are masked (a count or a LIMIT masks no other row).  rule_name, kind and
 * column_name come from the stored reasons: masking never changes them.
 * stage.quarantine is ordered newest first (ties by landing_id), the way
 * the work queue is read: with the pipeline's open items read in that
 * order from an index, "the newest 100" reads 100 rows.
 */
CREATE VIEW stage.quarantine_all WITH (security_barrier) AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons)
		 OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'value' AS value,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons)
		 OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'message' AS message,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons) AS reasons,
	   stage._quarantine_row_data(q.pipeline_id, q.landing_id, q.contract_version, q.row_data) AS row_data,
	   q.source, q.role::pg_catalog.name AS role, q.received_at, q.quarantined_at,
	   q.status, q.successor_id, q.closed_at, q.closed_by, q.note
  FROM stage.pipeline p
  JOIN stage.quarantine_log q ON q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
 WHERE stage._may_see(p.owner);

CREATE VIEW stage.quarantine WITH (security_barrier) AS
SELECT p.name AS pipeline, q.batch_id, q.landing_id, q.contract_version,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'rule' AS rule_name,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'kind' AS kind,
	   q.reasons OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'column' AS column_name,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons)
		 OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'value' AS value,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons)
		 OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) 'message' AS message,
	   stage._quarantine_reasons(q.pipeline_id, q.landing_id, q.contract_version, q.reasons) AS reasons,
	   stage._quarantine_row_data(q.pipeline_id, q.landing_id, q.contract_version, q.row_data) AS row_data,
	   q.source, q.role::pg_catalog.name AS role, q.received_at, q.quarantined_at,
	   q.status, q.successor_id, q.closed_at, q.closed_by, q.note
  FROM stage.pipeline p
  JOIN stage.quarantine_log q ON q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
 WHERE q.status OPERATOR(pg_catalog.=) 'open' AND stage._may_see(p.owner)
 ORDER BY q.quarantined_at DESC, q.landing_id;

/* rule, kind and column of each reason: never masked, read as stored */
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
  JOIN stage.quarantine_log q ON q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
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
 * The q-quantile (seconds) of a histogram's rows, its counts per bucket of
 * stage._latency_bounds() and a last +Inf: linear within the bucket it
 * falls in, as Prometheus's histogram_quantile; the upper bound of the
 * last finite bucket when it falls in +Inf.  NULL without rows.
 */
CREATE FUNCTION stage._quantile(buckets numeric[], q double precision)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bounds double precision[] := stage._latency_bounds();
	total numeric := 0;
	cum numeric := 0;
	rank double precision;
	lo double precision := 0;
	i integer;
BEGIN
	IF buckets IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT pg_catalog.sum(x) INTO total FROM pg_catalog.unnest(buckets) x;
	IF total IS NULL OR total OPERATOR(pg_catalog.=) 0 THEN
		RETURN NULL;
	END IF;
	rank := q OPERATOR(pg_catalog.*) total;
	FOR i IN 1 .. pg_catalog.array_length(buckets, 1) LOOP
		IF (cum OPERATOR(pg_catalog.+) buckets[i]) OPERATOR(pg_catalog.>=) rank AND buckets[i] OPERATOR(pg_catalog.>) 0 THEN
			IF i OPERATOR(pg_catalog.>) pg_catalog.array_length(bounds, 1) THEN
				RETURN bounds[pg_catalog.array_length(bounds, 1)];
			END IF;
			RETURN lo OPERATOR(pg_catalog.+) ((bounds[i] OPERATOR(pg_catalog.-) lo)
				OPERATOR(pg_catalog.*) ((rank OPERATOR(pg_catalog.-) cum) OPERATOR(pg_catalog./) buckets[i])::double precision);
		END IF;
		cum := cum OPERATOR(pg_catalog.+) buckets[i];
		IF i OPERATOR(pg_catalog.<=) pg_catalog.array_length(bounds, 1) THEN
			lo := bounds[i];
		END IF;
	END LOOP;
	RETURN bounds[pg_catalog.array_length(bounds, 1)];
END
$$;

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
		   pg_catalog.sum(EXTRACT(epoch FROM r.finished_at OPERATOR(pg_catalog.-) r.started_at))
			 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(r.rows_in), 0) AS seconds_per_row,
		   pg_catalog.max(r.finished_at) AS last_batch_at
	  FROM recent r
	 GROUP BY r.pipeline_id
), latency AS (
	/* every row of the hour's done batches, in the buckets of the histogram */
	SELECT x.pipeline_id, pg_catalog.array_agg(x.n ORDER BY x.i) AS buckets
	  FROM (SELECT r.pipeline_id, u.i, pg_catalog.sum(u.v) AS n
			  FROM recent r, pg_catalog.unnest(r.latency_buckets) WITH ORDINALITY AS u(v, i)
			 WHERE r.status OPERATOR(pg_catalog.=) 'done' AND r.kind OPERATOR(pg_catalog.=) 'batch'
			 GROUP BY r.pipeline_id, u.i) x
	 GROUP BY x.pipeline_id
), per_row AS (
	/* time per row: each row weighs as its batch's time per row */
	SELECT y.pipeline_id,
		   pg_catalog.min(y.spr) FILTER (WHERE y.cum OPERATOR(pg_catalog.>=) (0.95 OPERATOR(pg_catalog.*) y.total)) AS p95
	  FROM (SELECT r.pipeline_id,
				   EXTRACT(epoch FROM r.finished_at OPERATOR(pg_catalog.-) r.started_at)
					 OPERATOR(pg_catalog./) r.rows_in AS spr,
				   pg_catalog.sum(r.rows_in) OVER (PARTITION BY r.pipeline_id ORDER BY
					 EXTRACT(epoch FROM r.finished_at OPERATOR(pg_catalog.-) r.started_at) OPERATOR(pg_catalog./) r.rows_in,
					 r.batch_id) AS cum,
				   pg_catalog.sum(r.rows_in) OVER (PARTITION BY r.pipeline_id) AS total
			  FROM recent r
			 WHERE r.status OPERATOR(pg_catalog.=) 'done' AND r.rows_in OPERATOR(pg_catalog.>) 0) y
	 GROUP BY y.pipeline_id
), type_failures AS (
	SELECT b.pipeline_id, pg_catalog.sum(s.failed) AS failed
	  FROM recent b JOIN stage.batch_rule_stat s USING (batch_id)
	 WHERE s.kind OPERATOR(pg_catalog.=) 'type' AND b.kind OPERATOR(pg_catalog.=) 'batch'
	 GROUP BY b.pipeline_id
), dlq AS (
	/* the items by status (kept as they change: stage.counter), repairs of the last day (stage.hourly) */
	SELECT c.pipeline_id,
		   pg_catalog.sum(c.value)::bigint AS size,
		   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'status' OPERATOR(pg_catalog.=) 'open')::bigint AS open,
		   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'status' OPERATOR(pg_catalog.=) 'repaired')::bigint AS repaired,
		   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'status' OPERATOR(pg_catalog.=) 'replayed')::bigint AS replayed,
		   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'status' OPERATOR(pg_catalog.=) 'superseded')::bigint AS superseded,
		   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'status' OPERATOR(pg_catalog.=) 'dismissed')::bigint AS dismissed
	  FROM stage.counter c
	 WHERE c.metric OPERATOR(pg_catalog.=) 'stage_dlq_items'
	 GROUP BY c.pipeline_id
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
	   stage._quantile(l.buckets, 0.5) OPERATOR(pg_catalog.*) 1000 AS handoff_latency_p50_ms,
	   stage._quantile(l.buckets, 0.95) OPERATOR(pg_catalog.*) 1000 AS handoff_latency_p95_ms,
	   (pp.seconds_per_row OPERATOR(pg_catalog.*) 1000000)::double precision AS microseconds_per_row,
	   COALESCE(d.size, 0) AS dlq_size,
	   /* the net change of the open items over 24 hours: quarantined less closed */
	   (SELECT COALESCE(pg_catalog.sum(h.rows_quarantined), 0) OPERATOR(pg_catalog.-) COALESCE(pg_catalog.sum(h.closed_all), 0)
		  FROM stage.hourly h
		 WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND h.hour OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('hour', pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval))::bigint
		 AS dlq_growth_24h,
	   p.retention,
	   pp.last_batch_at,
	   COALESCE(d.open, 0) AS dlq_open,
	   pg_catalog.now() OPERATOR(pg_catalog.-)
		 (SELECT q.quarantined_at FROM stage.quarantine_log q
		   WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND q.status OPERATOR(pg_catalog.=) 'open'
		   ORDER BY q.quarantined_at LIMIT 1) AS dlq_oldest_open_age,
	   (SELECT pg_catalog.make_interval(secs => pg_catalog.sum(h.closed_seconds) OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(h.closed_items), 0))
		  FROM stage.hourly h
		 WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND h.hour OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('hour', pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval))
		 AS mean_time_to_repair,
	   COALESCE(d.repaired, 0) AS dlq_repaired,
	   COALESCE(d.replayed, 0) AS dlq_replayed,
	   COALESCE(d.superseded, 0) AS dlq_superseded,
	   COALESCE(d.dismissed, 0) AS dlq_dismissed,
	   (pr.p95 OPERATOR(pg_catalog.*) 1000000)::double precision AS microseconds_per_row_p95,
	   /* producer statements refused by backpressure since the server started */
	   COALESCE(bp.rejections, 0) AS backpressure_rejections,
	   /* retention (41_partitions.sql): the oldest landing row's age, M7 */
	   rs.oldest_landing_age,
	   rs.retention_compliance
  FROM stage.pipeline p
  LEFT JOIN LATERAL stage._retention_state_for(p.pipeline_id) rs ON true
  LEFT JOIN stage._backpressure_counts() bp USING (pipeline_id)
  LEFT JOIN per_pipeline pp USING (pipeline_id)
  LEFT JOIN latency l USING (pipeline_id)
  LEFT JOIN per_row pr USING (pipeline_id)
  LEFT JOIN type_failures tf USING (pipeline_id)
  LEFT JOIN dlq d USING (pipeline_id)
 WHERE stage._may_see(p.owner);
GRANT SELECT ON stage.health TO PUBLIC;


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
