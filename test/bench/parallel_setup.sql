/*
 * parallel_setup.sql: the parallel scenario (BENCH_SCENARIO=parallel in
 * scripts/bench.sh).  For each of :repeat rounds, four pipelines with the
 * contract of the fresh-file scenario, each with :rows landed rows (5% bad,
 * keys all distinct):
 *   one_R      moved by one mover (the reference)
 *   two_R      stage.set_lanes(2), moved by two movers at once
 *   pa_R, pb_R two pipelines moved at once, one mover each
 * bench.sh times the drains (fb.drain: run_batch until nothing is left,
 * a transaction per batch, as a worker does), round by round, and
 * parallel_report.sql gives the medians and ratios.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\o /dev/null
CREATE EXTENSION stage;
CREATE SCHEMA fb;
CREATE PROCEDURE fb.drain(p text) LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	LOOP
		SELECT status INTO st FROM stage.run_batch(p);
		COMMIT;
		/* empty: nothing left; busy: another mover holds every lane left */
		EXIT WHEN st <> 'done';
	END LOOP;
END $$;
CREATE FUNCTION fb.make(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE fb.%I (id bigint PRIMARY KEY, email text NOT NULL, amount numeric(12,2) NOT NULL,
					currency char(3) NOT NULL, ordered_at timestamptz NOT NULL, note text)', 't_' || name);
	PERFORM stage.create_pipeline(name, format('fb.%I', 't_' || name)::regclass, key => '{id}');
	PERFORM stage.add_rule(name, 'amount', 'range', '{"min": 0, "max": 100000}');
	PERFORM stage.add_rule(name, 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
	PERFORM stage.add_rule(name, 'email', 'format', '{"format": "email"}');
	PERFORM stage.add_mask(name, 'email', 'email');
END $$;
CREATE TABLE fb.timing (round int, what text, seconds numeric);
SELECT fb.make(n || '_' || r)
  FROM unnest(ARRAY['one', 'two', 'pa', 'pb']) n, generate_series(1, :repeat) r;
SELECT stage.set_lanes('two_' || r, 2) FROM generate_series(1, :repeat) r;
CREATE TABLE fb.src AS
SELECT g AS id,
	   'user' || g || '@example.com' AS email,
	   CASE WHEN g % 60 = 0 THEN 'n/a' ELSE (g % 100000)::text || '.' || lpad((g % 100)::text, 2, '0') END AS amount,
	   CASE WHEN g % 60 = 20 THEN 'EURO' ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + g % 3] END AS currency,
	   CASE WHEN g % 60 = 40 THEN '2024-02-30 10:00:00+00'
			ELSE to_char(timestamp '2024-01-01' + (g % 31536000) * interval '1 second',
						 'YYYY-MM-DD HH24:MI:SS') || '+00' END AS ordered_at,
	   'note ' || g AS note
  FROM generate_series(1, :rows) g;
DO $$
DECLARE
	p text;
BEGIN
	FOR p IN SELECT pipeline FROM stage.pipelines LOOP
		EXECUTE format('INSERT INTO stage_landing.%I (id, email, amount, currency, ordered_at, note)
						SELECT * FROM fb.src', p);
	END LOOP;
END $$;
VACUUM ANALYZE;
CHECKPOINT;
\o
