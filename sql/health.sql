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

-- stage.metrics(): the same figures in Prometheus text format
SELECT line FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line LIKE '%pipeline="hl"%'
   AND line !~ 'latency|oldest_open_age'
 ORDER BY line;
SELECT count(*) AS latency_lines
  FROM regexp_split_to_table(stage.metrics(), E'\n') AS line
 WHERE line ~ '^stage_handoff_latency_p(50|95)_seconds\{pipeline="hl"\} [0-9.e-]+$';
-- every family comes with its HELP and TYPE lines, once, before its samples
WITH lines AS (
	SELECT line, n FROM regexp_split_to_table(stage.metrics(), E'\n') WITH ORDINALITY AS l(line, n)
), samples AS (
	SELECT DISTINCT substring(line FROM '^([a-z_0-9]+)[{ ]') AS family, min(n) OVER (PARTITION BY substring(line FROM '^([a-z_0-9]+)[{ ]')) AS first
	  FROM lines WHERE line !~ '^#' AND line <> ''
)
SELECT count(*) AS families,
	   bool_and((SELECT count(*) FROM lines l WHERE l.line = '# TYPE ' || s.family || ' gauge' AND l.n < s.first) = 1) AS each_typed,
	   bool_and((SELECT count(*) FROM lines l WHERE l.line LIKE '# HELP ' || s.family || ' %' AND l.n < s.first) = 1) AS each_helped
  FROM samples s;

SELECT stage.drop_pipeline('hl', force => true);
DROP TABLE hl_orders;
