/*
 * report.sql: the results of every round, their medians and the ratios, and
 * the checks that the variants agree.  Included by bench.sql.  Times are
 * medians over the rounds; a mismatch of any count is a WARNING.
 */
CREATE VIEW bench.summary AS
SELECT variant,
	   (array_agg(what ORDER BY round DESC))[1] AS what,
	   (array_agg(rows_in ORDER BY round DESC))[1] AS rows_in,
	   (array_agg(rows_clean ORDER BY round DESC))[1] AS rows_clean,
	   (array_agg(rows_rejected ORDER BY round DESC))[1] AS rows_rejected,
	   count(*) AS rounds,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric AS seconds,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY scaled_seconds)::numeric AS scaled_seconds,
	   min(scaled_seconds) AS min_seconds,
	   max(scaled_seconds) AS max_seconds
  FROM bench.result
 GROUP BY variant;

\echo
\echo '== results:' :rows 'landing rows,' :c_rows 'of them for (c);' :repeat 'round(s), median times'
SELECT variant, what, rows_in, rows_clean, rows_rejected,
	   round(seconds, 2) AS seconds,
	   round(scaled_seconds, 2) AS "seconds for all rows",
	   round(min_seconds, 2) AS "min", round(max_seconds, 2) AS "max",
	   round(:rows / scaled_seconds) AS "landing rows/s"
  FROM bench.summary ORDER BY variant;

SELECT round(d / a, 2) AS "d/a (target <= 2.0)",
	   round(b / d, 2) AS "b/d (target >= 5)",
	   round(b2 / d, 2) AS "b2/d",
	   round(c / d, 2) AS "c/d",
	   round(b / a, 2) AS "b/a",
	   round(b2 / a, 2) AS "b2/a",
	   round(c / a, 2) AS "c/a"
  FROM (SELECT max(scaled_seconds) FILTER (WHERE variant = 'a') AS a,
			   max(scaled_seconds) FILTER (WHERE variant = 'b') AS b,
			   max(scaled_seconds) FILTER (WHERE variant = 'b2') AS b2,
			   max(scaled_seconds) FILTER (WHERE variant = 'c') AS c,
			   max(scaled_seconds) FILTER (WHERE variant = 'd') AS d
		  FROM bench.summary) m;

SELECT :repeat > 1 AS several_rounds \gset
\if :several_rounds
\echo 'seconds (for all rows) per round:'
SELECT round,
	   round(max(scaled_seconds) FILTER (WHERE variant = 'a'), 2) AS a,
	   round(max(scaled_seconds) FILTER (WHERE variant = 'b'), 2) AS b,
	   round(max(scaled_seconds) FILTER (WHERE variant = 'b2'), 2) AS b2,
	   round(max(scaled_seconds) FILTER (WHERE variant = 'c'), 2) AS c,
	   round(max(scaled_seconds) FILTER (WHERE variant = 'd'), 2) AS d
  FROM bench.result GROUP BY round ORDER BY round;
\endif

\if :with_stage
\echo 'stage batches of the last round:'
SELECT status, count(*) AS batches, sum(rows_in) AS rows_in, sum(rows_clean) AS rows_clean,
	   sum(rows_quarantined) AS rows_quarantined, sum(rows_duplicate) AS rows_duplicate,
	   max(rows_in) AS max_batch_rows,
	   round(avg(extract(epoch FROM finished_at - started_at)) * 1000, 1) AS "avg ms/batch",
	   count(*) FILTER (WHERE backend_pid <> pg_backend_pid()) AS by_other_backends
  FROM stage.batch
 WHERE pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench')
 GROUP BY status;
\endif

\echo '== checks (counts of every round; contents of the last round)'
SELECT 'b' AS variant, reason, count(*) FROM bench.reject_b GROUP BY reason
 ORDER BY 1, 3 DESC, 2;
SELECT 'c' AS variant, split_part(reason, ':', 1) AS sqlstate, count(*) FROM bench.reject_c
 GROUP BY 2 ORDER BY 1, 3 DESC, 2;
\if :with_stage
SELECT 'd' AS variant, r->>'rule' AS rule_name, r->>'kind' AS kind,
	   r->>'column' AS column_name, count(*)
  FROM stage.quarantine_log q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench')
 GROUP BY 2, 3, 4 ORDER BY 5 DESC, 2, 3, 4;
\endif

/* every count that should agree, agreeing or not; mismatches are WARNINGs */
SET client_min_messages = notice;
DO $$
DECLARE
	good		bigint := (SELECT count(*) FROM bench.src WHERE kind IS NULL);
	good_c		bigint := (SELECT count(*) FROM bench.src
							WHERE kind IS NULL AND id <= (SELECT c_rows FROM bench.conf));
	r			bench.result;
	have_d		boolean := EXISTS (SELECT 1 FROM bench.result WHERE variant = 'd');
	last		integer := (SELECT max(round) FROM bench.result);
	b_clean		bigint := (SELECT rows_clean FROM bench.result WHERE variant = 'b' AND round = last);
	d_clean		bigint := (SELECT rows_clean FROM bench.result WHERE variant = 'd' AND round = last);
	n			bigint;
BEGIN
	RAISE NOTICE 'expected clean rows: % (of % landing rows), % in the first % for (c)',
		good, (SELECT rows FROM bench.conf), good_c, (SELECT c_rows FROM bench.conf);
	FOR r IN SELECT * FROM bench.result ORDER BY round, variant LOOP
		IF r.rows_clean + r.rows_rejected <> r.rows_in THEN
			RAISE WARNING 'round %: (%) read % rows but moved % clean + % rejected',
				r.round, r.variant, r.rows_in, r.rows_clean, r.rows_rejected;
		END IF;
		n := CASE WHEN r.variant = 'c' THEN good_c ELSE good END;
		IF r.rows_clean <> n THEN
			RAISE WARNING 'round %: (%) produced % clean rows, expected %',
				r.round, r.variant, r.rows_clean, n;
		END IF;
	END LOOP;
	/* the rest compares the tables the last round left */
	/* the hand-written variants reject exactly the generated bad rows */
	SELECT count(*) INTO n FROM bench.reject_b j JOIN bench.landing_b l ON l._stage_id = j.landing_id
	  JOIN bench.src s ON s.id = l._stage_id WHERE s.kind IS NULL;
	IF n > 0 THEN
		RAISE WARNING '(b) rejected % good rows', n;
	END IF;
	/* (b) and (b2) are the same SQL: same rows, same values */
	SELECT count(*) INTO n FROM ((TABLE bench.orders_b EXCEPT TABLE bench.orders_b2)
								 UNION ALL (TABLE bench.orders_b2 EXCEPT TABLE bench.orders_b)) x;
	IF n > 0 THEN
		RAISE WARNING '(b) and (b2) differ in % rows', n;
	END IF;
	IF have_d THEN
		RAISE NOTICE 'clean rows: (b) % / (d) %', b_clean, d_clean;
		IF b_clean <> d_clean THEN
			RAISE WARNING 'clean row counts differ: (b) % / (d) %', b_clean, d_clean;
		END IF;
		SELECT count(*) INTO n FROM ((SELECT order_id FROM bench.orders_b EXCEPT SELECT order_id FROM bench.orders_d)
									 UNION ALL (SELECT order_id FROM bench.orders_d EXCEPT SELECT order_id FROM bench.orders_b)) x;
		IF n > 0 THEN
			RAISE WARNING '(b) and (d) differ in % keys', n;
		END IF;
		/* informational: do the hand-written masks match stage's exactly? */
		RAISE NOTICE 'rows with equal values in (b) and (d): email % / phone % / card % / all columns % (of %)',
			(SELECT count(*) FROM bench.orders_b b JOIN bench.orders_d d USING (order_id) WHERE b.email = d.email),
			(SELECT count(*) FROM bench.orders_b b JOIN bench.orders_d d USING (order_id) WHERE b.phone IS NOT DISTINCT FROM d.phone),
			(SELECT count(*) FROM bench.orders_b b JOIN bench.orders_d d USING (order_id) WHERE b.card IS NOT DISTINCT FROM d.card),
			(SELECT count(*) FROM (TABLE bench.orders_b INTERSECT TABLE bench.orders_d) x),
			(SELECT count(*) FROM bench.orders_b b JOIN bench.orders_d d USING (order_id));
		SELECT count(*) INTO n FROM stage.batch WHERE backend_pid <> pg_backend_pid()
		   AND pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench');
		IF n > 0 THEN
			RAISE WARNING '% batches were run by another backend (the background worker?) during (d)', n;
		END IF;
		SELECT count(*) INTO n FROM stage.quarantine_log q JOIN bench.src s ON s.id = q.landing_id
		 WHERE s.kind IS NULL
		   AND q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench');
		IF n > 0 THEN
			RAISE WARNING '(d) quarantined % good rows', n;
		END IF;
		SELECT count(*) INTO n FROM bench.src s
		 WHERE s.kind IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log q
							WHERE q.landing_id = s.id
							  AND q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench'));
		IF n > 0 THEN
			RAISE WARNING '(d) did not quarantine % bad rows', n;
		END IF;
	END IF;
END
$$;
