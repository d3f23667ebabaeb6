--
-- masking: every mask method as a SQL function (the same C the mover runs),
-- on multibyte text, empty strings, NULLs and very long values; the hash
-- against pgcrypto; secrets imported without their bytes in any statement
-- or message; the token vault.
--
-- Every object of this file is prefixed mm_; the file drops what it creates.
--
\set SHOW_CONTEXT never
SET datestyle = ISO;
CREATE EXTENSION pgcrypto;

----------------------------------------------------------------------------
-- 1. Secrets
----------------------------------------------------------------------------
-- Imported from a large object: the key travels as large-object data, not
-- as statement text (psql: \lo_import key.bin, then :LASTOID).  Here the
-- large object is made server-side from a test key; import_secret unlinks it.
SELECT lo_from_bytea(0, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f') AS lo \gset
SELECT stage.import_secret('mm_key', :lo);
SELECT count(*) AS large_object_left FROM pg_largeobject_metadata WHERE oid = :lo;
-- hex and base64 files too (white space and a trailing newline ignored)
SELECT lo_from_bytea(0, convert_to(E'00112233 44556677\n8899aabbccddeeff\n', 'UTF8')) AS lo \gset
SELECT stage.import_secret('mm_hex', :lo, 'hex');
SELECT lo_from_bytea(0, convert_to(E'AAECAwQFBgcICQoLDA0ODw==\n', 'UTF8')) AS lo \gset
SELECT stage.import_secret('mm_b64', :lo, 'base64');
SELECT name, key FROM stage.secret WHERE name IN ('mm_hex', 'mm_b64') ORDER BY name;
-- from a file on the server (superusers, or pg_read_server_files)
SELECT current_setting('data_directory') || '/mm_key.hex' AS keyfile \gset
COPY (SELECT '0f0e0d0c0b0a09080706050403020100') TO :'keyfile';
SELECT stage.import_secret_file('mm_file', :'keyfile', 'hex');
SELECT key FROM stage.secret WHERE name = 'mm_file';

-- bad keys are refused without showing any part of them
SELECT lo_from_bytea(0, convert_to('00112233445566zz', 'UTF8')) AS lo \gset
SELECT stage.import_secret('mm_bad', :lo, 'hex');
SELECT stage.import_secret('mm_bad', :lo, 'base64');
SELECT stage.import_secret('mm_bad', :lo, 'pem');
SELECT lo_unlink(:lo);
SELECT lo_from_bytea(0, '\x0102030405') AS lo \gset
SELECT stage.import_secret('mm_bad', :lo);
SELECT lo_unlink(:lo);
-- whatever writes stage.secret: a short key, a bad name, no key
SELECT stage.create_secret('mm_short', '\xdeadbeef'::bytea);
INSERT INTO stage.secret (name, key) VALUES ('mm short', stage._random_key(16));
INSERT INTO stage.secret (name, key) VALUES ('mm_nokey', NULL);
-- a secret is never replaced in place
SELECT lo_from_bytea(0, '\x000102030405060708090a0b0c0d0e0f') AS lo \gset
SELECT stage.import_secret('mm_key', :lo);
SELECT lo_unlink(:lo);
SELECT count(*) AS bad_secrets FROM stage.secret WHERE name LIKE 'mm\_bad%' OR name LIKE 'mm_short' OR name LIKE 'mm_nokey';

----------------------------------------------------------------------------
-- 2. hash: HMAC-SHA256 under a named secret, hex or base64, optionally cut
----------------------------------------------------------------------------
-- equal to pgcrypto's hmac() on the same key, for every kind of input
SELECT left(v, 20) AS v, length(v) AS len,
	   stage.mask_hash(v, 'mm_key') = encode(hmac(convert_to(v, 'UTF8'),
			'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, 'sha256'), 'hex') AS hex_ok,
	   stage.mask_hash(v, 'mm_key', 0, 'base64') = encode(hmac(convert_to(v, 'UTF8'),
			'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, 'sha256'), 'base64') AS base64_ok
  FROM unnest(ARRAY['alice@example.com', '', 'Zoë Ångström', '日本語', repeat('x', 100000)]) v;
-- the secrets imported as hex and base64 are the bytes they spell
SELECT stage.mask_hash('x', 'mm_hex') = encode(hmac('x', '\x00112233445566778899aabbccddeeff'::bytea, 'sha256'), 'hex') AS hex_secret_ok,
	   stage.mask_hash('x', 'mm_b64') = encode(hmac('x', '\x000102030405060708090a0b0c0d0e0f'::bytea, 'sha256'), 'hex') AS base64_secret_ok;
-- pinned outputs: 64 hex, 44 base64, cut to length
SELECT stage.mask_hash('alice@example.com', 'mm_key') AS hex,
	   stage.mask_hash('alice@example.com', 'mm_key', 0, 'base64') AS base64,
	   stage.mask_hash('alice@example.com', 'mm_key', 16) AS hex16,
	   stage.mask_hash('alice@example.com', 'mm_key', 11, 'base64') AS b64_11;
-- the same through stage.mask, the form add_mask stores
SELECT stage.mask('alice@example.com', 'hash', '{"secret": "mm_key", "length": 16}') AS via_mask;
SELECT stage.mask_hash(NULL, 'mm_key') IS NULL AS strict;
SELECT stage.mask_hash('x', 'mm_key', 5);
SELECT stage.mask_hash('x', 'mm_key', 45, 'base64');
SELECT stage.mask_hash('x', 'mm_key', 0, 'base32');
SELECT stage.mask_hash('x', 'mm_nope');

----------------------------------------------------------------------------
-- 3. pseudonym: keyed, deterministic, format-preserving
----------------------------------------------------------------------------
-- auto picks the kind per value: email, name, digits, text
SELECT v, stage.pseudonymize(v, 'mm_key') AS pseudonym
  FROM unnest(ARRAY['alice@example.com', 'Bob.Jones@Example.ORG', 'Alice Smith', 'Zoë Ångström',
					'J. R. R. Tolkien', 'SMITH', 'mary-jane o''neil', '+1 (555) 010-0123',
					'0012345', 'AB-1234-x', 'Straße 12b', '日本語テキスト', '']) v;
-- emails stay valid emails; the domain is kept, or pseudonymous under .example
SELECT stage.pseudonymize('alice@example.com', 'mm_key', 'auto', false) AS domain_too,
	   stage.is_email(stage.pseudonymize('alice@example.com', 'mm_key')) AS kept_is_email,
	   stage.is_email(stage.pseudonymize('alice@example.com', 'mm_key', 'auto', false)) AS pseudo_is_email;
-- deterministic (joinable), different under another secret, different per value
SELECT stage.pseudonymize('Alice Smith', 'mm_key') = stage.pseudonymize('Alice Smith', 'mm_key') AS deterministic,
	   stage.pseudonymize('Alice Smith', 'mm_key') <> stage.pseudonymize('Alice Smith', 'mm_hex') AS per_secret,
	   stage.pseudonymize('4111', 'mm_key', 'digits') ~ '^[1-9][0-9]{3}$' AS digits_stay_digits;
-- a kind can be forced; an email kind on a non-email keeps its shape (text)
SELECT stage.pseudonymize('Alice Smith', 'mm_key', 'text') AS as_text,
	   stage.pseudonymize('not an email', 'mm_key', 'email') AS not_email,
	   stage.pseudonymize('A-17', 'mm_key', 'digits') AS digits_only;
-- digits and text keep every character's class and the length in characters
SELECT length(v) = length(p) AS same_length,
	   translate(v, '0123456789', '9999999999') = translate(p, '0123456789', '9999999999') AS digits_in_place
  FROM (SELECT v, stage.pseudonymize(v, 'mm_key', 'digits') AS p
		  FROM unnest(ARRAY['+44 20 7946 0958', '555-0100', repeat('1234567890', 10000)]) v) x;
SELECT length(stage.pseudonymize(repeat('Zoë ', 25000), 'mm_key', 'text')) AS long_text_chars;
SELECT stage.pseudonymize('x', 'mm_key', 'nickname');

----------------------------------------------------------------------------
-- 4. partial, email, phone, card
----------------------------------------------------------------------------
SELECT stage.mask('Zoë Ångström', 'partial', '{"keep_start": 2, "keep_end": 2}') AS partial,
	   stage.mask('Zoë Ångström', 'partial', '{}') AS partial_default,
	   stage.mask('Zoë@exämple.com', 'email', '{}') AS email;
-- phone: the last digits kept, every separator kept
SELECT v, stage.mask_phone(v) AS keep4, stage.mask_phone(v, 2, 'X') AS keep2
  FROM unnest(ARRAY['+1 (555) 010-0123', '+44 20 7946 0958', '０３-1234-5678', '123', '', 'no digits']) v;
SELECT stage.mask('+1 (555) 010-0123', 'phone', '{"keep": 0}') AS none_kept;
SELECT stage.mask_phone('555', 11);
SELECT stage.mask_phone('555', 4, '**');
SELECT stage.mask('x', 'phone', '{"keep": "4"}');
SELECT stage.mask('4111 1111 1111 1111', 'card', '{}') AS card,
	   length(stage.mask(repeat('4', 100000), 'card', '{}')) AS long_card;

----------------------------------------------------------------------------
-- 5. redact (PCRE2) and redact_pii
----------------------------------------------------------------------------
SELECT stage.redact('call 555-0100 or 555-0199 today', '\d{3}-\d{4}') AS every_match,
	   stage.redact('Ticket AB-12 for Zoë', '(?i)zoë', '<name>') AS multibyte,
	   stage.redact('key=abc123; user=bob', '(\w+)=\w+', '$1=***') AS groups,
	   stage.redact('no match', '\d+') AS unchanged,
	   stage.redact('', '\d+') AS empty,
	   stage.redact('', '.*') AS empty_matched;
SELECT stage.mask('Alice and ALICE', 'redact', '{"pattern": "alice", "flags": "i", "replacement": "[n]"}') AS flags;
-- a pattern that exhausts its match limit redacts the whole value (fails closed)
SET stage.regex_match_limit = 1000;
SELECT stage.redact(repeat('a', 30) || '!', '(a|aa)+$', '[x]') AS fails_closed;
RESET stage.regex_match_limit;
SELECT stage.redact('x', '(', '');
SELECT stage.mask('x', 'redact', '{"pattern": "x", "replacement": "$"}');
SELECT stage.mask('x', 'redact', '{"pattern": "x", "flags": "g"}');
SELECT stage.mask('x', 'redact', '{"replacement": "y"}');
-- redact_pii: every span scan_pii finds, as [kind] or one replacement
SELECT stage.redact_pii('Zoë: zoe@example.org, +44 20 7946 0958, card 4111-1111-1111-1111.') AS labelled,
	   stage.redact_pii('zoe@example.org / 10.0.0.1', ARRAY['email'], '***') AS one_kind;
SELECT stage.redact_pii(NULL) IS NULL AS null_stays_null, stage.redact_pii('') AS empty;
SELECT length(stage.redact_pii(repeat('mail a@b.org ', 10000))) AS long_value_chars;
SELECT stage.redact_pii('x', ARRAY['email', 'dna']);

----------------------------------------------------------------------------
-- 6. null, constant, generalize, noise
----------------------------------------------------------------------------
SELECT stage.mask('secret', 'null', '{}') IS NULL AS null_mask,
	   stage.mask('secret', 'constant', '{"value": "[hidden]"}') AS constant_text,
	   stage.mask('42', 'constant', '{"value": 0}') AS constant_number;
SELECT stage.mask('x', 'constant', '{}');
-- dates and timestamps to the start of their year, month, day or hour; the
-- zone offset as written is kept; what is not an ISO date says so
SELECT v, stage.mask_generalize(v, 'year') AS year, stage.mask_generalize(v, 'month') AS month,
	   stage.mask_generalize(v, 'day') AS day, stage.mask_generalize(v, 'hour') AS hour
  FROM unnest(ARRAY['2024-03-17', '2024-03-17 13:45:12', '2024-03-17T13:45:12.5+05:30',
					'infinity', '17/03/2024', '2024-02-30', '']) v;
SELECT stage.mask_generalize(date '2024-03-17', 'month') AS date_month,
	   stage.mask_generalize(date '2024-03-17', 'hour') AS date_hour,
	   stage.mask_generalize(timestamp '2024-03-17 13:45:12', 'hour') AS ts_hour;
SELECT stage.mask_generalize('2024-03-17', 'week');
-- numbers to the floor of their bucket, or a range label
SELECT v, stage.mask_generalize(v, 10) AS by_10, stage.mask_generalize(v, 0.5) AS by_half
  FROM unnest(ARRAY[37, 40, -7, 0, 123.456]::numeric[]) v;
SELECT stage.mask('37', 'generalize', '{"bucket": 10, "format": "range"}') AS label,
	   stage.mask('abc', 'generalize', '{"bucket": 10}') AS not_a_number,
	   stage.mask('1e400000', 'generalize', '{"bucket": 10}') AS too_big;
SELECT stage.mask('1', 'generalize', '{"bucket": 0}');
SELECT stage.mask('1', 'generalize', '{"unit": "year", "bucket": 5}');
SELECT stage.mask('1', 'generalize', '{}');
-- noise: within ratio, same decimals; seeded and keyed are repeatable
SELECT bool_and(n BETWEEN 90 AND 110) AS within_10pct, bool_and(n = round(n)) AS integers_stay_integers
  FROM (SELECT stage.mask_noise(100, 0.1) AS n FROM generate_series(1, 200)) x;
SELECT count(DISTINCT stage.mask_noise(100, 0.1)) > 1 AS unseeded_varies FROM generate_series(1, 50);
SELECT stage.mask_noise(52000.00, 0.1, 42) AS seeded, stage.mask_noise(52000.00, 0.1, 42) AS again,
	   stage.mask_noise(52000.00, 0.1, 43) AS other_seed;
SELECT stage.mask_noise(52000.00, 0.1, 'mm_key') = stage.mask_noise(52000.00, 0.1, 'mm_key') AS keyed_repeatable,
	   stage.mask_noise(52000.00, 0.1, 'mm_key') BETWEEN 46800 AND 57200 AS keyed_within;
SELECT stage.mask('-0.5', 'noise', '{"ratio": 0.2, "seed": 1}') AS negative,
	   stage.mask('0', 'noise', '{"ratio": 1, "seed": 1}') AS zero_stays_zero,
	   stage.mask('twelve', 'noise', '{"ratio": 0.1}') AS not_a_number;
SELECT stage.mask('1', 'noise', '{"ratio": 0}');
SELECT stage.mask('1', 'noise', '{"ratio": 1.5}');
SELECT stage.mask('1', 'noise', '{"ratio": 0.1, "seed": 1, "secret": "mm_key"}');

----------------------------------------------------------------------------
-- 7. tokenize: a random token per distinct value, reversible in the vault
----------------------------------------------------------------------------
SELECT stage.tokenize('4111 1111 1111 1111', 'mm_key') AS t1 \gset
SELECT :'t1' ~ '^tok_[a-z0-9]{24}$' AS shape,
	   stage.tokenize('4111 1111 1111 1111', 'mm_key') = :'t1' AS same_value_same_token,
	   stage.tokenize('4111 1111 1111 1112', 'mm_key') <> :'t1' AS other_value_other_token,
	   stage.tokenize('4111 1111 1111 1111', 'mm_hex') <> :'t1' AS other_secret_other_token,
	   stage.detokenize(:'t1') AS detokenized;
-- multibyte, empty and very long values go through whole (detokenize is
-- STABLE: it sees tokens made by earlier statements)
CREATE TEMP TABLE mm_tokens AS
SELECT v, stage.tokenize(v, 'mm_key') AS t
  FROM unnest(ARRAY['Zoë Ångström', '', repeat('日本', 50000)]) v;
SELECT length(v) AS chars, stage.detokenize(t) = v AS round_trip FROM mm_tokens;
DROP TABLE mm_tokens;
SELECT stage.mask('x', 'tokenize', '{"secret": "mm_key", "prefix": "card_"}') ~ '^card_[a-z0-9]{24}$' AS prefix;
SELECT stage.detokenize('tok_unknown') IS NULL AS unknown_token;
SELECT count(*) AS vault_rows, count(DISTINCT token) AS distinct_tokens FROM stage.token_vault
 WHERE secret LIKE 'mm\_%';
SELECT stage.mask('x', 'tokenize', '{"secret": "mm_key", "prefix": "tok en"}');

----------------------------------------------------------------------------
-- 8. Unknown methods and arguments name what is valid
----------------------------------------------------------------------------
SELECT stage.mask('x', 'scramble', '{}');
SELECT stage.mask('x', 'email', '{"keep": 1}');
SELECT stage.mask('x', 'hash', '[1]');

----------------------------------------------------------------------------
-- 9. Dropping a secret
----------------------------------------------------------------------------
-- a secret with tokens is kept unless its tokens go too (then they can
-- never be reversed)
SELECT stage.drop_secret('mm_hex');
SELECT stage.drop_secret('mm_hex', drop_tokens => true);
SELECT count(*) AS tokens_left FROM stage.token_vault WHERE secret = 'mm_hex';
SELECT stage.drop_secret('mm_nope');
SELECT stage.drop_secret('mm_key', drop_tokens => true);
SELECT stage.drop_secret('mm_b64');
SELECT stage.drop_secret('mm_file');
SELECT count(*) AS mm_secrets FROM stage.secret WHERE name LIKE 'mm\_%';
DROP EXTENSION pgcrypto;
