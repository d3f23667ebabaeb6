/*
 * round.sql: one timed round of every variant, on freshly truncated targets.
 * Included by bench.sql with :round = 1 and includes itself again until
 * :round = :repeat.
 */
\echo '== round' :round 'of' :repeat
\o /dev/null
\if :with_stage
/*
 * A fresh pipeline every round: its landing table is append-only and each
 * landing row moves exactly once.  Dropping it also drops its batches and
 * quarantine rows; the target stays (and is truncated below).
 */
SELECT stage.drop_pipeline('bench', force => true) FROM stage.pipeline WHERE name = 'bench';
/*
 * The stage contract: 8 rules (one regex) plus the implicit type check of
 * every column, 3 masks.
 */
SELECT stage.create_pipeline('bench', 'bench.orders_d', key => '{order_id}') AS landing \gset
SELECT stage.add_rule('bench', 'order_id', 'not_null', '{}', 'reject', 'order_id_required');
SELECT stage.add_rule('bench', 'email', 'not_null', '{}', 'reject', 'email_required');
SELECT stage.add_rule('bench', 'email', 'regex',
		jsonb_build_object('pattern', email_re, 'flags', 'i'), 'reject', 'email_format')
  FROM bench.conf;
SELECT stage.add_rule('bench', 'amount', 'not_null', '{}', 'reject', 'amount_required');
SELECT stage.add_rule('bench', 'amount', 'range', '{"min":0,"max":100000}', 'reject', 'amount_range');
SELECT stage.add_rule('bench', 'currency', 'not_null', '{}', 'reject', 'currency_required');
SELECT stage.add_rule('bench', 'currency', 'enum', '{"values":["USD","EUR","GBP"]}', 'reject', 'currency_known');
SELECT stage.add_rule('bench', 'ordered_at', 'not_null', '{}', 'reject', 'ordered_at_required');
SELECT stage.add_mask('bench', 'email', 'hash', '{"secret":"default"}');
SELECT stage.add_mask('bench', 'phone', 'partial', '{"keep_start":0,"keep_end":4,"fill":"*"}');
SELECT stage.add_mask('bench', 'card', 'card');
\o
SELECT :round = 1 AS first_round \gset
\if :first_round
SELECT stage.contract('bench') AS contract \gset
\echo 'stage contract:' :contract
\endif
\o /dev/null
INSERT INTO stage_landing.bench (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id, email, phone, amount, currency, ordered_at, card, note
  FROM bench.src ORDER BY id;
VACUUM ANALYZE stage_landing.bench;
\endif
TRUNCATE bench.orders_a, bench.orders_b, bench.orders_b2, bench.orders_c, bench.orders_d,
		 bench.reject_b, bench.reject_b2, bench.reject_c;
ANALYZE bench.orders_a, bench.orders_b, bench.orders_b2, bench.orders_c, bench.orders_d;
\o

/* ================================================================ timing */
\echo '== (a) floor: cast + insert of the good rows only'
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
INSERT INTO bench.orders_a (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id::bigint, email, phone, amount::numeric(12,2), currency::char(3),
	   ordered_at::timestamptz, card, note
  FROM bench.landing_a;
COMMIT;
INSERT INTO bench.result
SELECT :round, 'a', 'floor: INSERT ... SELECT casts, good rows only',
	   (SELECT count(*) FROM bench.landing_a), (SELECT count(*) FROM bench.orders_a), 0, s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t;

\echo '== (b) hand-written set-based SQL: one INSERT for clean rows, one for rejects'
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
INSERT INTO bench.orders_b (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT c.order_id::bigint, :mask_email, :mask_phone, c.amount::numeric(12,2),
	   c.currency::char(3), c.ordered_at::timestamptz, :mask_card, c.note
  FROM bench.landing_b_checked c
 WHERE c.reason IS NULL
ON CONFLICT (order_id) DO NOTHING;
INSERT INTO bench.reject_b (landing_id, reason, row_data)
SELECT c._stage_id, c.reason, to_jsonb(c) - 'reason'
  FROM bench.landing_b_checked c
 WHERE c.reason IS NOT NULL;
COMMIT;
INSERT INTO bench.result
SELECT :round, 'b', 'hand-written SQL, 2 INSERTs (validates every row twice)',
	   (SELECT count(*) FROM bench.landing_b), (SELECT count(*) FROM bench.orders_b),
	   (SELECT count(*) FROM bench.reject_b), s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t;

\echo '== (b2) hand-written set-based SQL: one statement, writable CTE'
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
WITH c AS MATERIALIZED (
	SELECT * FROM bench.landing_b_checked
), clean AS (
	INSERT INTO bench.orders_b2 (order_id, email, phone, amount, currency, ordered_at, card, note)
	SELECT c.order_id::bigint, :mask_email, :mask_phone, c.amount::numeric(12,2),
		   c.currency::char(3), c.ordered_at::timestamptz, :mask_card, c.note
	  FROM c
	 WHERE c.reason IS NULL
	ON CONFLICT (order_id) DO NOTHING
)
INSERT INTO bench.reject_b2 (landing_id, reason, row_data)
SELECT c._stage_id, c.reason, to_jsonb(c) - 'reason'
  FROM c
 WHERE c.reason IS NOT NULL;
INSERT INTO bench.result
SELECT :round, 'b2', 'hand-written SQL, 1 statement (writable CTE)',
	   (SELECT count(*) FROM bench.landing_b), (SELECT count(*) FROM bench.orders_b2),
	   (SELECT count(*) FROM bench.reject_b2), s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t;

\echo '== (c) PL/pgSQL loop, BEGIN ... EXCEPTION per row, on' :c_rows 'rows'
/*
 * What a per-row loader usually looks like: the explicit rules as IF ...
 * RAISE, the casts and the target's NOT NULL constraints as the type and
 * not-null checks, any error caught and logged with its SQLSTATE.
 */
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
DO $$
DECLARE
	r		bench.landing_c;
	re		text;
	k		bytea;
BEGIN
	SELECT email_re, hmac_key INTO re, k FROM bench.conf;
	FOR r IN SELECT * FROM bench.landing_c ORDER BY _stage_id LOOP
		BEGIN
			IF r.email !~* re THEN
				RAISE EXCEPTION 'email_format' USING ERRCODE = 'check_violation';
			END IF;
			IF r.amount::numeric < 0 OR r.amount::numeric > 100000 THEN
				RAISE EXCEPTION 'amount_range' USING ERRCODE = 'check_violation';
			END IF;
			IF r.currency NOT IN ('USD', 'EUR', 'GBP') THEN
				RAISE EXCEPTION 'currency_known' USING ERRCODE = 'check_violation';
			END IF;
			INSERT INTO bench.orders_c (order_id, email, phone, amount, currency, ordered_at, card, note)
			VALUES (r.order_id::bigint,
					encode(hmac(convert_to(r.email, 'UTF8'), k, 'sha256'), 'hex'),
					repeat('*', greatest(length(r.phone) - 4, 0)) || right(r.phone, 4),
					r.amount::numeric(12,2), r.currency::char(3), r.ordered_at::timestamptz,
					repeat('*', greatest(length(r.card) - 4, 0)) || right(r.card, 4),
					r.note)
			ON CONFLICT (order_id) DO NOTHING;
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO bench.reject_c (landing_id, reason, row_data)
			VALUES (r._stage_id, SQLSTATE || ': ' || SQLERRM, to_jsonb(r));
		END;
	END LOOP;
END
$$;
INSERT INTO bench.result
SELECT :round, 'c', CASE WHEN n = :rows THEN 'PL/pgSQL loop, EXCEPTION block per row'
				 ELSE format('PL/pgSQL loop, EXCEPTION block per row (ran %s rows, time scaled x%s)',
							 n, round(:rows::numeric / n, 2)) END,
	   n, (SELECT count(*) FROM bench.orders_c), (SELECT count(*) FROM bench.reject_c),
	   s, s * :rows / n
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s,
			   (SELECT count(*) FROM bench.landing_c) AS n) t;

\if :with_stage
/* one transaction per chunk, as the background worker runs it */
SELECT set_config('bench.batch', coalesce(batch::text, ''), false),
	   coalesce(batch::text, current_setting('stage.batch_size') || ' (the default, stage.batch_size)')
		 AS batch_label
  FROM bench.conf \gset
\echo '== (d) stage.run_batch() until the landing table is drained, batch size' :batch_label
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
DO $$
DECLARE
	r		record;
	n		bigint := 0;
	lim		bigint := (SELECT rows FROM bench.conf) + 100;
	bs		integer := nullif(current_setting('bench.batch'), '')::integer;
BEGIN
	LOOP
		SELECT * INTO r FROM stage.run_batch('bench', bs);
		EXIT WHEN r.batch_id IS NULL OR r.rows_in = 0;
		COMMIT;
		IF r.status <> 'done' THEN
			RAISE WARNING 'batch % ended with status %', r.batch_id, r.status;
			EXIT;
		END IF;
		n := n + 1;
		IF n > lim THEN
			RAISE WARNING 'run_batch did not drain the landing table after % calls', n;
			EXIT;
		END IF;
	END LOOP;
END
$$;
INSERT INTO bench.result
SELECT :round, 'd', format('stage.run_batch loop, %s batches, max_rows %s',
				   b.batches, :'batch_label'),
	   b.rows_in, (SELECT count(*) FROM bench.orders_d),
	   (SELECT count(*) FROM stage.quarantine_log q
		 WHERE q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench')),
	   s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t,
	   (SELECT count(*) AS batches, coalesce(sum(rows_in), 0) AS rows_in
		  FROM stage.batch
		 WHERE pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'bench')) b;
\endif

SELECT :round < :repeat AS more, :round + 1 AS next_round \gset
\if :more
\set round :next_round
\ir round.sql
\endif
