
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
