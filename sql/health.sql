--
-- health: the staging SLIs (stage.health), their Prometheus form
-- (stage.metrics()) and the backlog of a pipeline (stage.backlog()).
--
CREATE TABLE hl_orders (id int PRIMARY KEY, amount numeric, cur text);
SELECT stage.create_pipeline('hl', 'hl_orders', key => '{id}');
SELECT stage.add_rule('hl', 'cur', 'enum', '{"values": ["USD", "EUR"]}');

-- 10 rows: 6 clean, 2 failing the enum, 1 failing its type, 1 duplicate key
INSERT INTO stage_landing.hl (id, amount, cur) VALUES
	('1', '1', 'USD'), ('2', '2', 'USD'), ('3', '3', 'EUR'), ('4', '4', 'EUR'),
	('5', '5', 'USD'), ('6', '6', 'USD'), ('7', '7', 'XXX'), ('8', '8', 'YYY'),
	('9', 'nine', 'USD'), ('1', '1', 'USD');

-- before any batch: everything is backlog, the health row has no rates yet
SELECT stage.backlog('hl') AS backlog;
SELECT pipeline, batches_1h, rows_1h, validation_pass_rate, dlq_size
  FROM stage.health WHERE pipeline = 'hl';

SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('hl', 4);
-- a chunk of 4 was taken: 6 rows are still pending
SELECT stage.backlog('hl') AS backlog;
SELECT rows_in FROM stage.run_batch('hl');
SELECT stage.backlog('hl') AS backlog;

-- the rates over the last hour of batches: 6 of 10 clean, 1 of 10
-- duplicate, 1 type failure of 10; 3 rows in the DLQ
SELECT pipeline, enabled, batches_1h, failed_batches_1h, held_batches_1h, rows_1h,
	   ingest_success_rate, validation_pass_rate, duplicate_rate,
	   schema_violation_rate, replay_success_rate, dlq_size, dlq_growth_24h,
	   handoff_latency_p50_ms > 0 AS p50_measured,
	   handoff_latency_p95_ms >= handoff_latency_p50_ms AS p95_not_below_p50,
	   microseconds_per_row > 0 AS cost_measured
  FROM stage.health WHERE pipeline = 'hl';

-- every batch records its latency percentiles, in order
SELECT count(*) AS batches,
	   bool_and(latency_p50_ms <= latency_p95_ms AND latency_p95_ms <= latency_p99_ms
				AND latency_p99_ms <= latency_max_ms) AS percentiles_ordered
  FROM stage.batches WHERE pipeline = 'hl';

-- a replay after a contract fix counts toward replay_success_rate
SELECT stage.set_contract('hl', stage.contract('hl')
	|| '{"rules": [{"column": "cur", "kind": "enum", "args": {"values": ["USD", "EUR", "XXX"]}}]}') > 0 AS new_version;
SELECT landing_id, outcome FROM stage.replay('hl') ORDER BY landing_id;
SELECT replay_success_rate, dlq_size FROM stage.health WHERE pipeline = 'hl';

-- stage.metrics(): counters, histograms and gauges in Prometheus text format
-- (times, durations and ages vary from run to run: left out here)
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line LIKE '%pipeline="hl"%'
   AND line !~ 'latency|duration|timestamp|_age_'
 ORDER BY line;
-- the counters add up to the batches' own counts
SELECT (SELECT value FROM stage.metric_counters
		 WHERE pipeline = 'hl' AND metric = 'stage_rows_total' AND labels->>'outcome' = 'taken')
	   = (SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'hl' AND kind = 'batch' AND status = 'done') AS taken_adds_up,
	   (SELECT value FROM stage.metric_counters
		 WHERE pipeline = 'hl' AND metric = 'stage_rows_total' AND labels->>'outcome' = 'clean')
	   = (SELECT sum(rows_clean) FROM stage.batches WHERE pipeline = 'hl' AND kind = 'batch' AND status = 'done') AS clean_adds_up,
	   (SELECT handoff_latency_seconds_count FROM stage.metric_histograms WHERE pipeline = 'hl')
	   = (SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'hl' AND kind = 'batch' AND status = 'done') AS every_row_timed,
	   (SELECT handoff_latency_seconds_bucket[19] FROM stage.metric_histograms WHERE pipeline = 'hl')
	   <= (SELECT handoff_latency_seconds_count FROM stage.metric_histograms WHERE pipeline = 'hl') AS cumulative;
-- the handoff histogram: a bucket per bound and +Inf, a sum and a count
SELECT count(*) AS latency_lines
  FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line ~ '^stage_handoff_latency_seconds_(bucket|sum|count)\{pipeline="hl"(,le="[^"]+")?\} [0-9.e+-]+$';
-- every family comes with its HELP and TYPE lines, once, before its samples
WITH lines AS (
	SELECT line, n FROM regexp_split_to_table(stage.metrics(), E'\n') WITH ORDINALITY AS l(line, n)
), samples AS (
	SELECT DISTINCT f.family, min(l.n) OVER (PARTITION BY f.family) AS first
	  FROM lines l,
		   LATERAL (SELECT CASE WHEN l.line ~ '^stage_(handoff_latency|batch_duration)_seconds_(bucket|sum|count)'
								THEN regexp_replace(substring(l.line FROM '^([a-z_0-9]+)[{ ]'), '_(bucket|sum|count)$', '')
								ELSE substring(l.line FROM '^([a-z_0-9]+)[{ ]') END AS family) f
	 WHERE l.line !~ '^#' AND l.line <> ''
)
SELECT count(*) AS families,
	   bool_and((SELECT count(*) FROM lines l WHERE l.line ~ ('^# TYPE ' || s.family || ' (counter|gauge|histogram)$') AND l.n < s.first) = 1) AS each_typed,
	   bool_and((SELECT count(*) FROM lines l WHERE l.line LIKE '# HELP ' || s.family || ' %' AND l.n < s.first) = 1) AS each_helped,
	   bool_and(s.family ~ '_total$' = EXISTS (SELECT 1 FROM lines l WHERE l.line = '# TYPE ' || s.family || ' counter')) AS counters_end_in_total
  FROM samples s;

SELECT stage.drop_pipeline('hl', force => true);
DROP TABLE hl_orders;
