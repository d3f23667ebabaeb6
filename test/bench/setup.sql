/*
 * setup.sql: the untimed part of the benchmark, run once: schema, tables,
 * the generated data, the landing tables of the hand-written variants and
 * (b)'s checks.  Included by bench.sql; see there for the variables.
 */
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
	batch		integer,
	repeat		integer NOT NULL
);
INSERT INTO bench.conf VALUES
	('^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$',
	 gen_random_bytes(32), :rows, :c_rows, :batch, :repeat);

/* one row per timed variant and round */
CREATE TABLE bench.result (
	round		integer NOT NULL,
	variant		text NOT NULL,
	what		text NOT NULL,
	rows_in		bigint NOT NULL,		/* landing rows read */
	rows_clean	bigint NOT NULL,		/* rows in the target afterwards */
	rows_rejected bigint NOT NULL,		/* rows in the reject table / quarantine */
	seconds		numeric NOT NULL,		/* measured */
	scaled_seconds numeric NOT NULL,	/* scaled to :rows landing rows */
	PRIMARY KEY (round, variant)
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
CREATE TABLE bench.orders_b2 (LIKE bench.orders INCLUDING ALL);
CREATE TABLE bench.orders_d (LIKE bench.orders INCLUDING ALL);

/* landing tables of the hand-written variants: the shape of stage's */
CREATE TABLE bench.landing (
	_stage_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	_stage_txid	xid8 NOT NULL DEFAULT pg_current_xact_id(),
	_stage_source text DEFAULT nullif(current_setting('application_name'), ''),
	_stage_received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	order_id	text,
	email		text,
	phone		text,
	amount		text,
	currency	text,
	ordered_at	text,
	card		text,
	note		text
);
CREATE INDEX ON bench.landing (_stage_txid, _stage_id);
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
CREATE TABLE bench.reject_b2 (LIKE bench.reject INCLUDING ALL);
CREATE TABLE bench.reject_c (LIKE bench.reject INCLUDING ALL);

\if :with_stage
/* the hand-written variants hash with stage's key, so outputs can be compared
   (the default secret is made on its first use: use it once) */
SELECT length(stage.hmac('first use')) AS default_secret_ready;
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
\echo '== loading the landing tables of (a), (b) and (c)'
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
VACUUM ANALYZE bench.landing_a, bench.landing_b, bench.landing_c;

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
