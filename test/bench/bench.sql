/*
 * bench.sql: batch throughput of stage.run_batch against hand-written
 * equivalents, on the same generated data in one run.  Run by
 * scripts/bench.sh (`make bench`) against a throwaway cluster; see
 * docs/performance.md, "Batch throughput", for the method and the results.
 *
 * psql variables (set by bench.sh):
 *   rows        landing rows to generate (about 5% of them bad)
 *   c_rows      rows the per-row loop (c) really processes; its time is
 *               scaled linearly to :rows
 *   batch       max_rows for stage.run_batch, or NULL for its default
 *   with_stage  1 = run variant (d); 0 = baselines only
 *
 * Variants, each into its own freshly truncated copy of the same target:
 *   (a) floor: cast + INSERT of the good rows only (no validation, no masks)
 *   (b) the same staging hand-written in set-based SQL: regex-guarded
 *       casts, rule checks and masks (pgcrypto HMAC), one INSERT for clean
 *       rows and one for rejects -- plus (b2), the same checks in one
 *       statement (a writable CTE) that validates each row only once
 *   (c) a PL/pgSQL loop, one BEGIN ... EXCEPTION block per row
 *   (d) stage.run_batch() looped until the landing table is drained
 * Generation and the copies into landing tables are not timed.
 */
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET timezone = 'UTC';
SET datestyle = 'ISO, MDY';

\echo '== setup'
\o /dev/null
CREATE EXTENSION pgcrypto;
\if :with_stage
CREATE EXTENSION stage;
\endif
CREATE SCHEMA bench;

/* the email rule, shared by (b), (c) and (d); valid in POSIX ARE and PCRE2 */
CREATE TABLE bench.conf (
	email_re	text NOT NULL,
	hmac_key	bytea NOT NULL,
	rows		bigint NOT NULL,
	c_rows		bigint NOT NULL,
	batch		integer
);
INSERT INTO bench.conf VALUES
	('^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$',
	 gen_random_bytes(32), :rows, :c_rows, :batch);

/* one row per timed variant */
CREATE TABLE bench.result (
	variant		text PRIMARY KEY,
	what		text NOT NULL,
	rows_in		bigint NOT NULL,		/* landing rows read */
	rows_clean	bigint NOT NULL,		/* rows in the target afterwards */
	rows_rejected bigint NOT NULL,		/* rows in the reject table / quarantine */
	seconds		numeric NOT NULL,		/* measured */
	scaled_seconds numeric NOT NULL		/* scaled to :rows landing rows */
);

/* the target, one copy per variant */
CREATE TABLE bench.orders (
	order_id	bigint PRIMARY KEY,
	email		text NOT NULL,
	phone		text,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	ordered_at	timestamptz NOT NULL,
	card		text,
	note		text
);
CREATE TABLE bench.orders_a (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.orders_b (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.orders_c (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.orders_d (LIKE bench.orders INCLUDING ALL);

/* landing tables of the hand-written variants: the shape of stage's */
CREATE TABLE bench.landing (
	order_id	text,
	email		text,
	phone		text,
	amount		text,
	currency	text,
	ordered_at	text,
	card		text,
	note		text,
	_stage_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	_stage_txid	xid8 NOT NULL DEFAULT pg_current_xact_id(),
	_stage_source text DEFAULT current_setting('application_name'),
	_stage_received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench.landing_a (LIKE bench.landing INCLUDING ALL);
CREATE TABLE bench.landing_b (LIKE bench.landing INCLUDING ALL);
CREATE TABLE bench.landing_c (LIKE bench.landing INCLUDING ALL);

/* reject tables of the hand-written variants (stage writes stage.quarantine_log) */
CREATE TABLE bench.reject (
	landing_id	bigint PRIMARY KEY,
	reason		text NOT NULL,
	row_data	jsonb NOT NULL,
	rejected_at	timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench.reject_b (LIKE bench.reject INCLUDING ALL);
CREATE TABLE bench.reject_c (LIKE bench.reject INCLUDING ALL);

\if :with_stage
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
SELECT stage.contract('bench') AS contract \gset
\echo 'stage contract:' :contract
/* the hand-written variants hash with the same key, so outputs can be compared */
UPDATE bench.conf SET hmac_key = (SELECT key FROM stage.secret WHERE name = 'default');
\endif
\o

SELECT email_re FROM bench.conf \gset

/* ------------------------------------------------------------ generate */
\echo '== generating' :rows 'rows'
/*
 * Every 20th row is bad, in one of 7 ways (cycling); each bad row has exactly
 * one defect, all other values of it are good.  Deterministic apart from
 * random(), which setseed() fixes.
 */
SELECT setseed(0.4242) \gset
CREATE TABLE bench.src AS
SELECT g AS id, k.kind, k.sub,
	CASE WHEN k.kind = 'order_id_not_integer'
		   THEN (ARRAY['A-' || g, g || '.5', '', '1e6', '99999999999999999999'])[1 + k.sub % 5]
		 WHEN k.kind = 'null_required' AND k.sub % 5 = 4 THEN NULL
		 ELSE g::text END AS order_id,
	CASE WHEN k.kind = 'bad_email'
		   THEN (ARRAY['user' || g || '.example.com', 'user' || g || '@@example.com',
					   'user ' || g || '@example.com', 'user' || g || '@example',
					   '@example.com'])[1 + k.sub % 5]
		 WHEN k.kind = 'null_required' AND k.sub % 5 = 0 THEN NULL
		 ELSE (ARRAY['alice', 'Bob', 'carol.smith', 'dave_o', 'eve+news'])[1 + g % 5] || g || '@'
			  || (ARRAY['example.com', 'Mail.Example.org', 'corp.example.net'])[1 + (g / 5) % 3] END AS email,
	CASE WHEN g % 10 = 3 THEN NULL
		 ELSE '+1-555-' || lpad(floor(random() * 10000000)::int::text, 7, '0') END AS phone,
	CASE WHEN k.kind = 'amount_range'
		   THEN (ARRAY['-0.01', '-250.00', '100000.01', '2500000.00'])[1 + k.sub % 4]
		 WHEN k.kind = 'amount_not_numeric'
		   THEN (ARRAY['12,50', 'abc', '1.2.3', '', '$10.00', 'NaN'])[1 + k.sub % 6]
		 WHEN k.kind = 'null_required' AND k.sub % 5 = 1 THEN NULL
		 ELSE (floor(random() * 10000000) / 100)::numeric(12,2)::text END AS amount,
	CASE WHEN k.kind = 'currency_enum'
		   THEN (ARRAY['JPY', 'CHF', 'usd', 'EU'])[1 + k.sub % 4]
		 WHEN k.kind = 'null_required' AND k.sub % 5 = 2 THEN NULL
		 ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + floor(random() * 3)::int] END AS currency,
	CASE WHEN k.kind = 'timestamp_invalid'
		   THEN (ARRAY['not a date', '2024-13-01 10:00:00+00', '2023-02-29 12:00:00+00',
					   '2024-04-31 08:00:00+00', '31/12/2024 10:00', '2024-01-01 25:61:00+00',
					   ''])[1 + k.sub % 7]
		 WHEN k.kind = 'null_required' AND k.sub % 5 = 3 THEN NULL
		 ELSE to_char(timestamp '2024-01-01' + random() * interval '365 days',
					  'YYYY-MM-DD HH24:MI:SS') || '+00' END AS ordered_at,
	CASE WHEN g % 3 = 0 THEN NULL
		 ELSE '4' || lpad(floor(random() * 1e15)::bigint::text, 15, '0') END AS card,
	CASE WHEN g % 4 = 0 THEN NULL
		 ELSE 'note ' || md5(g::text) END AS note
  FROM generate_series(1, :rows) g
 CROSS JOIN LATERAL (
	SELECT CASE WHEN g % 20 = 0
				THEN (ARRAY['bad_email', 'amount_range', 'currency_enum', 'amount_not_numeric',
							'timestamp_invalid', 'null_required', 'order_id_not_integer'])[1 + (g / 20) % 7]
		   END AS kind,
		   (g / 140)::int AS sub) k;
ALTER TABLE bench.src ADD PRIMARY KEY (id);

SELECT coalesce(kind, '(good)') AS kind, count(*) AS rows
  FROM bench.src GROUP BY 1 ORDER BY 1;

/* ---------------------------------------------------- load the landings */
\echo '== loading landing tables (not timed)'
/* (a) lands only the good rows: the floor moves exactly the clean rows */
INSERT INTO bench.landing_a (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id, email, phone, amount, currency, ordered_at, card, note
  FROM bench.src WHERE kind IS NULL ORDER BY id;
INSERT INTO bench.landing_b (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id, email, phone, amount, currency, ordered_at, card, note
  FROM bench.src ORDER BY id;
/* (c) lands the first :c_rows rows; bad rows are spread evenly, so it is a fair sample */
INSERT INTO bench.landing_c (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id, email, phone, amount, currency, ordered_at, card, note
  FROM bench.src WHERE id <= :c_rows ORDER BY id;
\if :with_stage
INSERT INTO stage_landing.bench (order_id, email, phone, amount, currency, ordered_at, card, note)
SELECT order_id, email, phone, amount, currency, ordered_at, card, note
  FROM bench.src ORDER BY id;
\endif

VACUUM ANALYZE bench.landing_a, bench.landing_b, bench.landing_c;
\if :with_stage
VACUUM ANALYZE stage_landing.bench;
\endif
TRUNCATE bench.orders_a, bench.orders_b, bench.orders_c, bench.orders_d,
		 bench.reject_b, bench.reject_c;
ANALYZE bench.orders_a, bench.orders_b, bench.orders_c, bench.orders_d;

/* ---------------------------------------------------------------- (b)'s checks */
/*
 * The hand-written contract: the first failing check of each row, NULL for a
 * clean row.  PostgreSQL 15 has no pg_input_is_valid(), so every cast is
 * guarded by a regex (CASE evaluates its branches in order, so a cast runs
 * only after its guard passed).  A view, so (b) and (b2) run the same SQL.
 */
CREATE VIEW bench.landing_b_checked AS
SELECT l.*,
	CASE
	WHEN l.order_id IS NULL THEN 'order_id_required'
	WHEN l.order_id !~ '^\s*[+-]?[0-9]{1,18}\s*$' THEN 'order_id: invalid input for type bigint'
	WHEN l.email IS NULL THEN 'email_required'
	WHEN l.email !~* :'email_re' THEN 'email_format'
	WHEN l.amount IS NULL THEN 'amount_required'
	WHEN l.amount !~ '^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*$' THEN 'amount: invalid input for type numeric'
	WHEN l.amount::numeric < 0 OR l.amount::numeric > 100000 THEN 'amount_range'
	WHEN l.currency IS NULL THEN 'currency_required'
	WHEN length(l.currency) > 3 THEN 'currency: value too long for type character(3)'
	WHEN l.currency NOT IN ('USD', 'EUR', 'GBP') THEN 'currency_known'
	WHEN l.ordered_at IS NULL THEN 'ordered_at_required'
	WHEN l.ordered_at !~ '^\s*[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)?\s*$'
		THEN 'ordered_at: invalid input for type timestamp with time zone'
	WHEN substr(ltrim(l.ordered_at), 9, 2)::int >
		 extract(day FROM make_date(substr(ltrim(l.ordered_at), 1, 4)::int,
									substr(ltrim(l.ordered_at), 6, 2)::int, 1)
						  + interval '1 month - 1 day')
		THEN 'ordered_at: date/time field value out of range'
	END AS reason
  FROM bench.landing_b l;

/*
 * (b)'s masks, as SQL expressions over a landing row: HMAC-SHA256 hex of the
 * email with the pipeline's key; the phone with all but its last 4
 * characters starred; the card's last 4 digits.
 */
\set mask_email 'encode(hmac(convert_to(c.email, ''UTF8''), (SELECT hmac_key FROM bench.conf), ''sha256''), ''hex'')'
\set mask_phone 'repeat(''*'', greatest(length(c.phone) - 4, 0)) || right(c.phone, 4)'
\set mask_card 'repeat(''*'', greatest(length(c.card) - 4, 0)) || right(c.card, 4)'

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
SELECT 'a', 'floor: INSERT ... SELECT casts, good rows only',
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
SELECT 'b', 'hand-written SQL, 2 INSERTs (validates every row twice)',
	   (SELECT count(*) FROM bench.landing_b), (SELECT count(*) FROM bench.orders_b),
	   (SELECT count(*) FROM bench.reject_b), s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t;

\echo '== (b2) hand-written set-based SQL: one statement, writable CTE'
/* kept for comparison with (b); (b) keeps its tables, (b2) works on copies */
CREATE TABLE bench.orders_b2 (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.reject_b2 (LIKE bench.reject INCLUDING ALL);
ANALYZE bench.orders_b2;
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
SELECT 'b2', 'hand-written SQL, 1 statement (writable CTE)',
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
SELECT 'c', CASE WHEN n = :rows THEN 'PL/pgSQL loop, EXCEPTION block per row'
				 ELSE format('PL/pgSQL loop, EXCEPTION block per row (ran %s rows, time scaled x%s)',
							 n, round(:rows::numeric / n, 2)) END,
	   n, (SELECT count(*) FROM bench.orders_c), (SELECT count(*) FROM bench.reject_c),
	   s, s * :rows / n
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s,
			   (SELECT count(*) FROM bench.landing_c) AS n) t;

\if :with_stage
\echo '== (d) stage.run_batch() until the landing table is drained, batch size' :batch
/* one transaction per chunk, as the background worker runs it */
SELECT set_config('bench.batch', coalesce(batch::text, ''), false) FROM bench.conf \gset
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
SELECT 'd', format('stage.run_batch loop, %s batches of at most %s rows',
				   b.batches, b.max_rows_in),
	   b.rows_in, (SELECT count(*) FROM bench.orders_d),
	   (SELECT count(*) FROM stage.quarantine_log), s, s
  FROM (SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s) t,
	   (SELECT count(*) AS batches, coalesce(sum(rows_in), 0) AS rows_in,
			   max(rows_in) AS max_rows_in
		  FROM stage.batch) b;
\endif

/* ================================================================ report */
\echo
\echo '== results (' :rows 'landing rows;' :c_rows 'for (c))'
SELECT variant, what, rows_in, rows_clean, rows_rejected,
	   round(seconds, 2) AS seconds,
	   round(scaled_seconds, 2) AS "seconds (1x rows)",
	   round(:rows / scaled_seconds) AS "landing rows/s"
  FROM bench.result ORDER BY variant;

\if :with_stage
SELECT round(d.scaled_seconds / a.scaled_seconds, 2) AS "d/a (target <= 2.0)",
	   round(b.scaled_seconds / d.scaled_seconds, 2) AS "b/d (target >= 5)",
	   round(b2.scaled_seconds / d.scaled_seconds, 2) AS "b2/d",
	   round(c.scaled_seconds / d.scaled_seconds, 2) AS "c/d (c scaled)"
  FROM bench.result a, bench.result b, bench.result b2, bench.result c, bench.result d
 WHERE a.variant = 'a' AND b.variant = 'b' AND b2.variant = 'b2' AND c.variant = 'c'
   AND d.variant = 'd';
SELECT status, count(*) AS batches, sum(rows_in) AS rows_in, sum(rows_clean) AS rows_clean,
	   sum(rows_quarantined) AS rows_quarantined, sum(rows_duplicate) AS rows_duplicate,
	   max(rows_in) AS max_batch_rows,
	   count(*) FILTER (WHERE backend_pid <> pg_backend_pid()) AS by_other_backends
  FROM stage.batch GROUP BY status;
\else
SELECT round(b.scaled_seconds / a.scaled_seconds, 2) AS "b/a",
	   round(b2.scaled_seconds / a.scaled_seconds, 2) AS "b2/a",
	   round(c.scaled_seconds / a.scaled_seconds, 2) AS "c/a (c scaled)"
  FROM bench.result a, bench.result b, bench.result b2, bench.result c
 WHERE a.variant = 'a' AND b.variant = 'b' AND b2.variant = 'b2' AND c.variant = 'c';
\endif

\echo '== checks'
SELECT 'b' AS variant, reason, count(*) FROM bench.reject_b GROUP BY reason
 ORDER BY 1, 3 DESC, 2;
SELECT 'c' AS variant, split_part(reason, ':', 1) AS sqlstate, count(*) FROM bench.reject_c
 GROUP BY 2 ORDER BY 1, 3 DESC, 2;
\if :with_stage
SELECT 'd' AS variant, r->>'rule' AS rule_name, r->>'kind' AS kind,
	   r->>'column' AS column_name, count(*)
  FROM stage.quarantine_log q, jsonb_array_elements(q.reasons) r
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
	b_clean		bigint := (SELECT rows_clean FROM bench.result WHERE variant = 'b');
	d_clean		bigint := (SELECT rows_clean FROM bench.result WHERE variant = 'd');
	n			bigint;
BEGIN
	RAISE NOTICE 'expected clean rows: % (of % landing rows), % in the first % for (c)',
		good, (SELECT rows FROM bench.conf), good_c, (SELECT c_rows FROM bench.conf);
	FOR r IN SELECT * FROM bench.result ORDER BY variant LOOP
		IF r.rows_clean + r.rows_rejected <> r.rows_in THEN
			RAISE WARNING '(%) read % rows but moved % clean + % rejected',
				r.variant, r.rows_in, r.rows_clean, r.rows_rejected;
		END IF;
		n := CASE WHEN r.variant = 'c' THEN good_c ELSE good END;
		IF r.rows_clean <> n THEN
			RAISE WARNING '(%) produced % clean rows, expected %', r.variant, r.rows_clean, n;
		END IF;
	END LOOP;
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
		SELECT count(*) INTO n FROM stage.batch WHERE backend_pid <> pg_backend_pid();
		IF n > 0 THEN
			RAISE WARNING '% batches were run by another backend (the background worker?) during (d)', n;
		END IF;
		SELECT count(*) INTO n FROM stage.quarantine_log q JOIN bench.src s ON s.id = q.landing_id
		 WHERE s.kind IS NULL;
		IF n > 0 THEN
			RAISE WARNING '(d) quarantined % good rows', n;
		END IF;
		SELECT count(*) INTO n FROM bench.src s
		 WHERE s.kind IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log q WHERE q.landing_id = s.id);
		IF n > 0 THEN
			RAISE WARNING '(d) did not quarantine % bad rows', n;
		END IF;
	END IF;
END
$$;
\echo '== done'
