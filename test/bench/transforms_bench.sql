/*
 * transforms_bench.sql: what the transform stage costs (BENCH_SCENARIO=
 * transforms in scripts/bench.sh).  The batch benchmark's data and
 * contract (setup.sql: 8 rules, 3 masks, about 5% bad rows), moved by
 * stage.run_batch three ways in each round, each into its own target:
 *   d  the contract as it is
 *   e  plus four transforms in C: trim (email), upper (currency),
 *      number (amount), nullif (note)
 *   f  plus one expression transform (note: left(note, 20))
 * The report gives each variant's median and e/d, f/d.  See
 * docs/performance.md, "Transforms".
 */
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET timezone = 'UTC';
SET datestyle = 'ISO, MDY';
\ir setup.sql
\o /dev/null
CREATE TABLE bench.orders_e (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.orders_f (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.tf_result (round int, variant text, seconds numeric, rows_in bigint,
							  clean bigint, quarantined bigint);
/* a pipeline with the batch benchmark's contract, landed with its data */
CREATE FUNCTION bench.tf_pipeline(pname text, target regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM stage.drop_pipeline(pname, force => true) FROM stage.pipeline p WHERE p.name = pname;
	EXECUTE format('TRUNCATE %s', target);
	PERFORM stage.create_pipeline(pname, target, key => '{order_id}');
	PERFORM stage.add_rule(pname, 'order_id', 'not_null', '{}', 'reject', 'order_id_required');
	PERFORM stage.add_rule(pname, 'email', 'not_null', '{}', 'reject', 'email_required');
	PERFORM stage.add_rule(pname, 'email', 'regex', jsonb_build_object('pattern', email_re, 'flags', 'i'),
						   'reject', 'email_format') FROM bench.conf;
	PERFORM stage.add_rule(pname, 'amount', 'not_null', '{}', 'reject', 'amount_required');
	PERFORM stage.add_rule(pname, 'amount', 'range', '{"min":0,"max":100000}', 'reject', 'amount_range');
	PERFORM stage.add_rule(pname, 'currency', 'not_null', '{}', 'reject', 'currency_required');
	PERFORM stage.add_rule(pname, 'currency', 'enum', '{"values":["USD","EUR","GBP"]}', 'reject', 'currency_known');
	PERFORM stage.add_rule(pname, 'ordered_at', 'not_null', '{}', 'reject', 'ordered_at_required');
	PERFORM stage.add_mask(pname, 'email', 'hash', '{"secret":"default"}');
	PERFORM stage.add_mask(pname, 'phone', 'partial', '{"keep_start":0,"keep_end":4,"fill":"*"}');
	PERFORM stage.add_mask(pname, 'card', 'card');
	IF pname = 'bench_e' THEN
		PERFORM stage.add_transform(pname, 'email', 'trim');
		PERFORM stage.add_transform(pname, 'currency', 'upper');
		PERFORM stage.add_transform(pname, 'amount', 'number', '{"decimal": ".", "group": ""}');
		PERFORM stage.add_transform(pname, 'note', 'nullif', '{"values": ["", "N/A"]}');
	ELSIF pname = 'bench_f' THEN
		PERFORM stage.add_transform(pname, 'note', 'expression', '{"sql": "left(note, 20)"}');
	END IF;
	EXECUTE format('INSERT INTO stage_landing.%I (order_id, email, phone, amount, currency, ordered_at, card, note)
					SELECT order_id, email, phone, amount, currency, ordered_at, card, note
					  FROM bench.src ORDER BY id', pname);
END $$;
/* run_batch until nothing is left, a transaction per batch */
CREATE PROCEDURE bench.tf_drain(name text) LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	LOOP
		SELECT status INTO st FROM stage.run_batch(name);
		COMMIT;
		EXIT WHEN st <> 'done';
	END LOOP;
END $$;
\o
\set round 1
\ir transforms_round.sql
\echo '== transforms: medians'
WITH m AS (SELECT variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric AS s,
				  min(seconds) AS lo, max(seconds) AS hi, max(rows_in) AS rows_in,
				  max(clean) AS clean, max(quarantined) AS quarantined
			 FROM bench.tf_result GROUP BY variant)
SELECT variant, round(s, 2) AS seconds, round(lo, 2) AS min, round(hi, 2) AS max,
	   rows_in, clean, quarantined,
	   round(s / (SELECT s FROM m WHERE variant = 'd'), 2) AS "x d"
  FROM m ORDER BY variant;
SELECT round, max(seconds) FILTER (WHERE variant = 'd') AS d, max(seconds) FILTER (WHERE variant = 'e') AS e,
	   max(seconds) FILTER (WHERE variant = 'f') AS f,
	   round(max(seconds) FILTER (WHERE variant = 'e') / max(seconds) FILTER (WHERE variant = 'd'), 2) AS "e/d",
	   round(max(seconds) FILTER (WHERE variant = 'f') / max(seconds) FILTER (WHERE variant = 'd'), 2) AS "f/d"
  FROM bench.tf_result GROUP BY round ORDER BY round;
SELECT pipeline, transform_name, sum(applied) AS applied, sum(changed) AS changed,
	   sum(nulled) AS nulled, sum(failed) AS failed
  FROM stage.transform_stats GROUP BY 1, 2 ORDER BY 1, 2;
\echo '== done'
