-- scaleout_produce.sql: one producer transaction of the scale-out lag part
-- (test/bench/scaleout_run.sh), run by pgbench against each node at a
-- fixed rate: :rows rows a transaction (pgbench -D rows=N), about 5% of
-- them bad (rules, type check, the target's CHECK) and 3% of the keys from
-- a small range, so duplicates occur (as test/bench/latency_produce.sql);
-- the keys stay clear of the throughput parts' (1 to BENCH_ROWS).
INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code, ordered_at)
SELECT CASE WHEN random() < 0.03 THEN 2000000000000 + floor(random() * 2000)
			ELSE 1000000000 + floor(random() * 1000000000000) END::bigint::text,
	   'user' || g || '@example.com',
	   CASE WHEN random() < 0.01 THEN '-5' ELSE round((random() * 1000)::numeric, 2)::text END,
	   CASE WHEN random() < 0.01 THEN 'XYZ'
			ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + floor(random() * 3)::int] END,
	   CASE WHEN random() < 0.005 THEN 'x' WHEN random() < 0.005 THEN '13'
			ELSE (1 + floor(random() * 10))::text END,
	   CASE WHEN random() < 0.01 THEN 'bad'
			ELSE 'AB-' || lpad(floor(random() * 10000)::text, 4, '0') END,
	   now()::text
  FROM generate_series(1, :rows) g;
