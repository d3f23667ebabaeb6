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
\ir fb.sql
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
\set src fb.src
\ir source.sql
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
