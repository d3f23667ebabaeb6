-- latency_produce.sql: one producer transaction of the handoff-latency
-- benchmark, run by pgbench (scripts/latency.sh) at a fixed rate.  :rows
-- rows a transaction (pgbench -D rows=N), about 5% of them bad (rules, type
-- check, target constraints) and 3% of the keys from a small range, so
-- duplicates occur.
INSERT INTO stage_landing.events (event_id, email, amount, currency, qty, code)
SELECT CASE WHEN random() < 0.03 THEN floor(random() * 2000)
			ELSE floor(random() * 1000000000000) END::bigint::text,
	   CASE WHEN random() < 0.005 THEN NULL ELSE 'user' || g || '@example.com' END,
	   CASE WHEN random() < 0.01 THEN '-5' ELSE round((random() * 1000)::numeric, 2)::text END,
	   CASE WHEN random() < 0.01 THEN 'XYZ'
			ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + floor(random() * 3)::int] END,
	   CASE WHEN random() < 0.005 THEN 'x' WHEN random() < 0.005 THEN '13'
			ELSE (1 + floor(random() * 10))::text END,
	   CASE WHEN random() < 0.01 THEN 'bad'
			ELSE 'AB-' || lpad(floor(random() * 10000)::text, 4, '0') END
  FROM generate_series(1, :rows) g;
