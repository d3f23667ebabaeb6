
/* ------------------------------------------------------------ health */

/*
 * The staging SLIs per pipeline, over the last hour of batches (and the
 * whole quarantine for the DLQ): what a dashboard or an alert reads.
 * Rates are fractions of the rows the batches took.  Runs as the invoker:
 * row-level security shows each role the batches it may see.
 */
CREATE VIEW stage.health WITH (security_invoker = true) AS
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
	/* counted for whoever may read the quarantine, analysts included */
	SELECT x.pipeline_id, stage._quarantine_count(x.pipeline_id) AS size,
		   stage._quarantine_count(x.pipeline_id,
								   pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval) AS growth_24h
	  FROM stage.pipeline x
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
	   pp.last_batch_at
  FROM stage.pipeline p
  LEFT JOIN per_pipeline pp USING (pipeline_id)
  LEFT JOIN type_failures tf USING (pipeline_id)
  LEFT JOIN dlq d USING (pipeline_id);
GRANT SELECT ON stage.health TO PUBLIC;

/* rows of a pipeline's landing table not yet taken by a batch */
CREATE FUNCTION stage.backlog(pipeline text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	n bigint;
BEGIN
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*) FROM %s l
		  WHERE l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)
			AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $1)
			AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2)
				 OR ROW(l._stage_txid, l._stage_id) OPERATOR(pg_catalog.>) ROW($3, $4))',
		p.landing)
	INTO n USING p.win_lo, p.win_hi, p.cur_txid, p.cur_id;
	RETURN n;
END
$$;

/*
 * The SLIs in Prometheus text exposition format, for postgres_exporter's
 * custom queries or a scrape proxy.
 */
CREATE FUNCTION stage.metrics()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	out text := '';
	h record;
	w record;
	lbl text;
BEGIN
	out := out OPERATOR(pg_catalog.||)
		'# HELP stage_rows_1h Landing rows taken by batches in the last hour, by outcome.' OPERATOR(pg_catalog.||) E'\n' OPERATOR(pg_catalog.||)
		'# TYPE stage_rows_1h gauge' OPERATOR(pg_catalog.||) E'\n';
	FOR h IN SELECT * FROM stage.health ORDER BY pipeline LOOP
		lbl := pg_catalog.format('pipeline="%s"', pg_catalog.replace(h.pipeline, '"', '\"'));
		out := out OPERATOR(pg_catalog.||) pg_catalog.format(
			E'stage_rows_1h{%s,outcome="in"} %s\n'
			'stage_batches_1h{%s,status="all"} %s\n'
			'stage_batches_1h{%s,status="failed"} %s\n'
			'stage_batches_1h{%s,status="held"} %s\n'
			'stage_validation_pass_rate{%s} %s\n'
			'stage_duplicate_rate{%s} %s\n'
			'stage_schema_violation_rate{%s} %s\n'
			'stage_handoff_latency_seconds{%s,quantile="0.5"} %s\n'
			'stage_handoff_latency_seconds{%s,quantile="0.95"} %s\n'
			'stage_dlq_size{%s} %s\n'
			'stage_dlq_growth_24h{%s} %s\n'
			'stage_pipeline_enabled{%s} %s\n',
			lbl, h.rows_1h, lbl, h.batches_1h, lbl, h.failed_batches_1h, lbl, h.held_batches_1h,
			lbl, COALESCE(h.validation_pass_rate::text, 'NaN'),
			lbl, COALESCE(h.duplicate_rate::text, 'NaN'),
			lbl, COALESCE(h.schema_violation_rate::text, 'NaN'),
			lbl, COALESCE((h.handoff_latency_p50_ms OPERATOR(pg_catalog./) 1000)::text, 'NaN'),
			lbl, COALESCE((h.handoff_latency_p95_ms OPERATOR(pg_catalog./) 1000)::text, 'NaN'),
			lbl, h.dlq_size, lbl, h.dlq_growth_24h,
			lbl, CASE WHEN h.enabled THEN 1 ELSE 0 END);
	END LOOP;
	FOR w IN SELECT pg_catalog.count(*) AS n FROM stage.workers LOOP
		out := out OPERATOR(pg_catalog.||) '# TYPE stage_workers gauge' OPERATOR(pg_catalog.||) E'\n'
			OPERATOR(pg_catalog.||) 'stage_workers ' OPERATOR(pg_catalog.||) w.n OPERATOR(pg_catalog.||) E'\n';
	END LOOP;
	RETURN out;
END
$$;
