-- scrape_setup.sql: a pipeline with a long history, for the scrape
-- benchmark (BENCH_SCENARIO=scrape): :batches batches over seven days and
-- :items quarantine items (open).  Written in bulk with the counting
-- triggers off (one statement finishing 100,000 batches would update the
-- same counter rows 100,000 times in one transaction, which the mover
-- never does), then counted once from the history, as the update from
-- 0.2 does.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS stage;
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.sc_orders;
CREATE TABLE public.sc_orders (id bigint PRIMARY KEY, email text, amount numeric, _stage_id bigint);
SELECT stage.create_pipeline('sc_orders', 'public.sc_orders', key => '{id}');
SELECT stage.add_mask('sc_orders', 'email', 'email');
SELECT stage.add_rule('sc_orders', 'amount', 'range', '{"min": 0}');
SELECT pipeline_id AS pid FROM stage.pipeline WHERE name = 'sc_orders' \gset
SET session_replication_role = replica;
-- the batches: inserted, then finished
INSERT INTO stage.batch (pipeline_id, contract_version, status, started_at, finished_at, rows_in)
SELECT :pid, 3, 'done', now() - (g * interval '6 seconds') - interval '50 ms', now() - (g * interval '6 seconds'), 0
  FROM generate_series(1, :batches) g;
UPDATE stage.batch SET rows_in = 100, rows_clean = 90, rows_quarantined = 10,
	   latency_buckets = '{0,0,0,0,0,10,40,50,0,0,0,0,0,0,0,0,0,0,0,0}', latency_sum_ms = 9000,
	   finished_at = finished_at + interval '1 microsecond'
 WHERE pipeline_id = :pid;
-- the quarantine: open items, as a batch writes them
INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id, contract_version, source, received_at,
								  row_data, raw_data, reasons, quarantined_at, status)
SELECT :pid, g, (SELECT min(batch_id) FROM stage.batch WHERE pipeline_id = :pid) + g % :batches, 3, 'bench',
	   now() - (g * interval '0.5 seconds'),
	   jsonb_build_object('id', g::text, 'email', 'x***@example.com', 'amount', '-1'),
	   jsonb_build_object('id', g::text, 'email', 'x' || g || '@example.com', 'amount', '-1'),
	   '[{"rule": "amount_range", "kind": "range", "column": "amount", "value": "-1", "severity": "reject"}]',
	   now() - (g * interval '0.5 seconds'), 'open'
  FROM generate_series(1, :items) g;
RESET session_replication_role;
-- the counters, from the history
INSERT INTO stage.counter (pipeline_id, metric, labels, value)
SELECT x.pipeline_id, x.metric, x.labels, sum(x.value)
  FROM (SELECT b.pipeline_id, 'stage_batches_total' AS metric,
			   jsonb_build_object('kind', b.kind, 'status', b.status) AS labels, 1::double precision AS value
		  FROM stage.batch b
		UNION ALL
		SELECT b.pipeline_id, 'stage_rows_total', jsonb_build_object('outcome', o.outcome), o.n
		  FROM stage.batch b
		 CROSS JOIN LATERAL (VALUES ('taken', b.rows_in), ('clean', b.rows_clean),
									('quarantined', b.rows_quarantined)) AS o(outcome, n)
		UNION ALL
		SELECT b.pipeline_id, 'stage_handoff_latency_seconds_bucket',
			   jsonb_build_object('le', (stage._latency_bounds())[u.i]::text), u.v
		  FROM stage.batch b, unnest(b.latency_buckets) WITH ORDINALITY AS u(v, i)
		 WHERE u.i <= 19
		UNION ALL
		SELECT q.pipeline_id, 'stage_dlq_items', jsonb_build_object('status', q.status), 1
		  FROM stage.quarantine_log q) x
 GROUP BY 1, 2, 3;
INSERT INTO stage.hourly (pipeline_id, hour, rows_in, rows_clean, rows_quarantined, batches)
SELECT pipeline_id, date_trunc('hour', finished_at), sum(rows_in), sum(rows_clean), sum(rows_quarantined), count(*)
  FROM stage.batch GROUP BY 1, 2;
ANALYZE;
SELECT (SELECT count(*) FROM stage.batch) AS batches, (SELECT count(*) FROM stage.quarantine_log) AS items,
	   (SELECT count(*) FROM stage.counter) AS counter_rows;
