--
-- masks: the SQL-callable masking primitives, and masks in a contract: the
-- target receives masked values only, and quarantine never shows the raw
-- value of a masked column.
--
-- Every object of this file is prefixed mk_; the file drops what it creates.
--
\set SHOW_CONTEXT never

----------------------------------------------------------------------------
-- 1. Primitives
----------------------------------------------------------------------------

-- mask_email keeps the first character and the domain (after the last @);
-- a value that is not an email keeps its first character only.
SELECT v, stage.mask_email(v)
  FROM unnest(ARRAY['alice.smith@example.com', 'a@b.c', 'Zoë@example.com',
					'ö@x.de', 'x@y@z.com', '@example.com', 'noatsign', 'ö']) v;
-- an empty string is no email either: nothing of it is kept
SELECT stage.mask_email('') AS empty;
SELECT stage.mask_email(NULL) IS NULL AS strict;

-- mask_partial works on characters, not bytes: multibyte characters are
-- kept or replaced whole.  Defaults: keep 1 at the start, 0 at the end,
-- fill '*'.  A one-character fill replaces each hidden character; a longer
-- fill is inserted once.
SELECT v, stage.mask_partial(v) AS dflt,
	   stage.mask_partial(v, 2, 2) AS keep_2_2,
	   stage.mask_partial(v, 1, 1, '#') AS hash_fill,
	   stage.mask_partial(v, 0, 4, '[hidden]') AS long_fill
  FROM unnest(ARRAY['Zoë Ångström', '日本語テキスト', 'abcdef']) v;
-- empty strings stay empty
SELECT stage.mask_partial('') = '' AS empty_stays_empty,
	   stage.mask_partial('', 3, 3, '#') = '' AS empty_with_args;
-- when keep_start + keep_end covers the value, nothing would be hidden: the
-- value is hidden whole instead, so short values never leak
SELECT v, stage.mask_partial(v, 10, 10) AS keep_more_than_len,
	   stage.mask_partial(v, 1, 1) AS keep_1_1
  FROM unnest(ARRAY['ab', 'Zoë', 'Ø']) v;
-- negative keeps are refused
SELECT stage.mask_partial('abc', -1, 0);

-- mask_card replaces every digit but the last four and keeps separators;
-- four digits or fewer are hidden whole.
SELECT v, stage.mask_card(v)
  FROM unnest(ARRAY['4111 1111 1111 1111', '5500-0000-0000-0004', '4111111111111111',
					'12345', '1234', '', 'no digits']) v;

-- luhn_valid: the Luhn checksum over 12 to 19 digits, spaces and hyphens
-- allowed as separators.
SELECT v, stage.luhn_valid(v)
  FROM unnest(ARRAY['4111 1111 1111 1111', '4111-1111-1111-1111', '4111111111111112',
					'5500 0000 0000 0004', '4111.1111.1111.1111', '79927398713',
					'4111 1111 1111 111a', '']) v;

-- hmac: HMAC-SHA256 under a named secret, as hex; compare with pgcrypto.
CREATE EXTENSION pgcrypto;
SELECT stage.create_secret('mk_test', '\x000102030405060708090a0b0c0d0e0f'::bytea);
SELECT v, stage.hmac(v, 'mk_test')
		  = encode(hmac(convert_to(v, 'UTF8'), '\x000102030405060708090a0b0c0d0e0f'::bytea,
						'sha256'), 'hex') AS same_as_pgcrypto
  FROM unnest(ARRAY['a', '', 'Zoë Ångström', repeat('x', 1000)]) v;
-- a known value, so the output format is pinned too
SELECT stage.hmac('alice@example.com', 'mk_test');
-- deterministic (joinable), different per secret
SELECT stage.hmac('x', 'mk_test') = stage.hmac('x', 'mk_test') AS deterministic,
	   stage.hmac('x', 'mk_test') <> stage.hmac('x') AS differs_from_default,
	   length(stage.hmac('x')) AS default_len;
-- unknown secrets are named in the error (never a key)
SELECT stage.hmac('x', 'mk_nope');
-- a key shorter than 16 bytes is refused, and the refusal never shows the
-- key's bytes (secrets never appear in errors or logs)
DO $$
DECLARE
	msg text;
	detail text;
BEGIN
	PERFORM stage.create_secret('mk_short', '\x0a0b0c'::bytea);
	RAISE NOTICE 'accepted';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'refused; key bytes in the error: %',
		strpos(coalesce(msg, '') || coalesce(detail, ''), '0a0b0c') > 0;
END
$$;
-- a secret is never replaced in place
SELECT stage.create_secret('mk_test', '\x0f0e0d0c0b0a09080706050403020100'::bytea);

----------------------------------------------------------------------------
-- 2. Masks in a contract
----------------------------------------------------------------------------
CREATE TABLE mk_people (
	id		integer PRIMARY KEY,
	email	text,
	name	text,
	card	varchar(25),
	ssn		text,
	phone	text,
	score	integer CHECK (score >= 0),
	code	text UNIQUE
);
SELECT stage.create_pipeline('mk_people', 'mk_people', key => '{id}');
-- each returns a new contract version
SELECT stage.add_mask('mk_people', 'email', 'email');
SELECT stage.add_mask('mk_people', 'name', 'partial', '{"keep_start": 1, "keep_end": 1}');
SELECT stage.add_mask('mk_people', 'card', 'card');
SELECT stage.add_mask('mk_people', 'ssn', 'hash', '{"secret": "mk_test"}');
SELECT stage.add_mask('mk_people', 'phone', 'null');
SELECT stage.add_mask('mk_people', 'code', 'hash', '{"secret": "mk_test", "length": 16}');
-- rules see the raw value; the quarantine shows it masked
SELECT stage.add_rule('mk_people', 'email', 'regex', '{"pattern": "^[^@]+@[^@]+\\.[a-z]+$"}');
SELECT stage.contract('mk_people')->'masks';

INSERT INTO stage_landing.mk_people (id, email, name, card, ssn, phone, score, code) VALUES
	('1', 'alice@example.com', 'Alice', '4111 1111 1111 1111', '123-45-6789', '+1 555 0100', '5', 'A-1'),
	('2', 'zoe@example.org', 'Zoë Ångström', '5500-0000-0000-0004', '987-65-4321', '+1 555 0101', '6', 'B-2'),
	-- fails the email rule
	('3', 'bob@example', 'Bob', '4111111111111111', '111-22-3333', '+1 555 0102', '7', 'C-3'),
	-- fails the target's CHECK: its message lists the row, masked
	('4', 'carol@example.com', 'Carol', '4111111111111111', '222-33-4444', '+1 555 0103', '-1', 'D-4'),
	-- fails the target's UNIQUE on code: the key in the message is masked
	('5', 'dave@example.com', 'Dave', '4111111111111111', '333-44-5555', '+1 555 0104', '1', 'A-1'),
	-- fails a type check on an unmasked column
	('x', 'erin@example.com', 'Erin', '4111111111111111', '444-55-6666', '+1 555 0105', '1', 'E-5'),
	-- NULLs stay NULL under every mask
	('7', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	-- empty strings are masked like any other value (and fail the email rule)
	('9', '', '', '', '', '', '0', '');

SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('mk_people');

-- the target holds masked values only
SELECT id, email, name, card, ssn, phone, score, code FROM mk_people ORDER BY id;
SELECT bool_and(p.ssn = stage.hmac(l.ssn, 'mk_test')) AS ssn_is_hmac,
	   bool_and(p.code = left(stage.hmac(l.code, 'mk_test'), 16)) AS code_is_hmac_prefix
  FROM mk_people p JOIN stage_landing.mk_people l ON l.id = p.id::text;
-- no raw value of a masked column appears anywhere in the target (empty
-- strings aside: they are in everything)
SELECT count(*) AS raw_values_in_target
  FROM stage_landing.mk_people l, mk_people p
 WHERE p::text LIKE '%' || NULLIF(l.email, '') || '%' OR p::text LIKE '%' || NULLIF(l.name, '') || '%'
	OR p::text LIKE '%' || NULLIF(l.card, '') || '%' OR p::text LIKE '%' || NULLIF(l.ssn, '') || '%'
	OR p::text LIKE '%' || NULLIF(l.phone, '') || '%' OR p::text LIKE '%' || NULLIF(l.code, '') || '%';

-- quarantine: row_data and reasons show masked values for masked columns,
-- and server messages about the row are masked too
SELECT landing_id, jsonb_pretty(row_data) AS row_data FROM stage.quarantine
 WHERE pipeline = 'mk_people' ORDER BY landing_id;
SELECT landing_id, r->>'rule' AS rule, r->>'kind' AS kind, r->>'column' AS col,
	   r->>'value' AS value, r->>'sqlstate' AS sqlstate, r->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE pipeline = 'mk_people' ORDER BY landing_id;
SELECT count(*) AS raw_values_in_quarantine
  FROM stage.quarantine q JOIN stage_landing.mk_people l ON l._stage_id = q.landing_id
 WHERE q.pipeline = 'mk_people'
   AND (strpos(q.row_data::text || q.reasons::text, NULLIF(l.email, '')) > 0
		OR strpos(q.row_data::text || q.reasons::text, NULLIF(l.name, '')) > 0
		OR strpos(q.row_data::text || q.reasons::text, NULLIF(l.card, '')) > 0
		OR strpos(q.row_data::text || q.reasons::text, NULLIF(l.ssn, '')) > 0
		OR strpos(q.row_data::text || q.reasons::text, NULLIF(l.phone, '')) > 0
		OR strpos(q.row_data::text || q.reasons::text, NULLIF(l.code, '')) > 0);

-- one mask per column: a new mask replaces the old one (a new version);
-- drop_mask removes it (another version), and later rows arrive unmasked
SELECT stage.add_mask('mk_people', 'name', 'partial', '{"keep_start": 0, "fill": "?"}');
SELECT m->>'method' AS method, m->'args' AS args
  FROM jsonb_array_elements(stage.contract('mk_people')->'masks') m WHERE m->>'column' = 'name';
SELECT stage.drop_mask('mk_people', 'phone');
INSERT INTO stage_landing.mk_people (id, email, name, phone, code)
VALUES ('8', 'frank@example.com', 'Frank', '+1 555 0107', 'F-6');
SELECT rows_in, rows_clean, status FROM stage.run_batch('mk_people');
SELECT id, email, name, phone FROM mk_people WHERE id = 8;
SELECT stage.drop_mask('mk_people', 'phone');

----------------------------------------------------------------------------
-- 3. Key columns cannot be masked: the key must reach the target unchanged
--    for duplicates to be recognised.
----------------------------------------------------------------------------
SELECT stage.add_mask('mk_people', 'id', 'null');
SELECT stage.contract('mk_people')->'masks' @> '[{"column": "id"}]' AS id_masked;

SELECT stage.drop_pipeline('mk_people', force => true);
DROP TABLE mk_people;
DELETE FROM stage.secret WHERE name = 'mk_test';
DROP EXTENSION pgcrypto;
