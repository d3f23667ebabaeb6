--
-- transform_methods: every per-value transform method through
-- stage.transform(value, method, args): what it does to values, NULL and
-- the empty string, multibyte text, 10 MB values and hostile input; every
-- argument error (22023 with a hint); the failures a batch would
-- quarantine (SQLSTATE and message); and the structural and set-wise
-- methods, which only a batch runs.
--
-- tf_try shows a failure on one line: SQLSTATE, message and hint.
--
\set SHOW_CONTEXT never
CREATE FUNCTION tf_try(value text, method text, args jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	hint text;
BEGIN
	RETURN stage.transform(value, method, args);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN 'ERROR ' || st || ': ' || msg || ' | ' || hint;
END
$$;

----------------------------------------------------------------------------
-- 1. trim and squish
----------------------------------------------------------------------------
SELECT '[' || stage.transform(E'  \t a  b \n ', 'trim') || ']' AS trim,
	   '[' || stage.transform(E'  \t a  b \n ', 'squish') || ']' AS squish;
-- Unicode white space and the byte order mark: no-break space, ideographic
-- space, U+FEFF, U+2003
SELECT '[' || stage.transform(U&'\FEFF\00A0 Zoë\3000 ', 'trim') || ']' AS trim,
	   '[' || stage.transform(U&'\00A0Zoë\2003\2003und  Ünal\3000', 'squish') || ']' AS squish;
-- chars: a set of characters, multibyte ones too
SELECT stage.transform('xx-yy-xx', 'trim', '{"chars": "x"}') AS x,
	   stage.transform('«Grüße»', 'trim', '{"chars": "«»"}') AS guillemets,
	   stage.transform('→→mid←', 'trim', '{"chars": "←→"}') AS arrows;
-- empty, all trimmed, NULL, unchanged
SELECT '[' || stage.transform('', 'trim') || ']' AS empty,
	   '[' || stage.transform('   ', 'trim') || ']' AS blank,
	   '[' || stage.transform('   ', 'squish') || ']' AS blank_squish,
	   stage.transform(NULL, 'trim') IS NULL AS null_stays,
	   stage.transform(NULL, 'squish') IS NULL AS null_squish,
	   stage.transform('as is', 'trim') AS unchanged;
SELECT tf_try('a', 'trim', '{"chars": ""}');
SELECT tf_try('a', 'trim', '{"chars": 5}');
SELECT tf_try('a', 'squish', '{"chars": " "}');

----------------------------------------------------------------------------
-- 2. lower and upper: by the collation of the call (the database's
-- default here is C: ASCII letters only; ICU's root locale maps all)
----------------------------------------------------------------------------
SELECT stage.transform('ÉCOLE Straße', 'lower') AS c_lower,
	   stage.transform('école straße', 'upper') AS c_upper;
SELECT stage.transform('ÉCOLE Straße ΣΟΦΙΑ' COLLATE "und-x-icu", 'lower') AS icu_lower,
	   stage.transform('école straße σοφία' COLLATE "und-x-icu", 'upper') AS icu_upper;
SELECT '[' || stage.transform('', 'lower') || ']' AS empty,
	   stage.transform(NULL, 'upper') IS NULL AS null_stays;
SELECT tf_try('A', 'lower', '{"locale": "tr"}');

----------------------------------------------------------------------------
-- 3. normalize (NFC, NFKC)
----------------------------------------------------------------------------
-- e + combining acute is é; fullwidth letters and the fi ligature under NFKC
SELECT stage.transform(U&'Cafe\0301', 'normalize') = U&'Caf\00E9' AS nfc_composes,
	   stage.transform('ＡＢＣ１２３ ﬁ', 'normalize', '{"form": "NFKC"}') AS nfkc,
	   stage.transform('ＡＢＣ ﬁ', 'normalize', '{"form": "NFC"}') AS nfc_keeps;
-- combining marks are put in canonical order: dot below (220) before acute (230)
SELECT stage.transform(U&'a\0301\0323', 'normalize') = U&'\1EA1\0301' AS reordered;
-- conjoining Hangul jamo compose into syllables
SELECT stage.transform(U&'\1112\1161\11AB\1100\1173\11AF', 'normalize') AS hangul;
-- the same as PostgreSQL's normalize() on a mix of scripts and forms
SELECT bool_and(stage.transform(s, 'normalize') = normalize(s, NFC)) AS nfc_agrees,
	   bool_and(stage.transform(s, 'normalize', '{"form": "NFKC"}') = normalize(s, NFKC)) AS nfkc_agrees
  FROM (VALUES (U&'Cafe\0301 na\0308ive'), (U&'\00C5ngstr\00F6m \212B'),
			   (U&'\0041\030A\0323 x\0301\0302\0300'), ('ﾊﾝｶｸ ｶﾀｶﾅ ＡＢＣ'),
			   (U&'\1100\1161\11A8 \AC00\11A8'), (U&'\0F73\0F75\0F81 tibetan'),
			   (U&'\FDFA \FB01\FB02 \2460 \33A1'), (U&'\0344\0340 greek \1F00\0345'),
			   ('plain ascii'), ('')) AS v(s);
-- unchanged text, empty, NULL
SELECT stage.transform('déjà vu', 'normalize') AS unchanged,
	   '[' || stage.transform('', 'normalize') || ']' AS empty,
	   stage.transform(NULL, 'normalize') IS NULL AS null_stays;
-- a base with more than 63 combining marks in a row (hostile, or "zalgo" text)
SELECT tf_try('a' || repeat(U&'\0301', 63), 'normalize') = normalize('a' || repeat(U&'\0301', 63), NFC) AS marks_63;
SELECT tf_try('ok ' || 'a' || repeat(U&'\0301\0323', 40), 'normalize');
SELECT tf_try('a', 'normalize', '{"form": "NFD"}');
SELECT tf_try('a', 'normalize', '{"form": ["NFC"]}');

----------------------------------------------------------------------------
-- 4. replace (plain text, every occurrence, left to right)
----------------------------------------------------------------------------
SELECT stage.transform('1,234,567', 'replace', '{"from": ",", "to": ""}') AS commas,
	   stage.transform('aaaa', 'replace', '{"from": "aa", "to": "b"}') AS left_to_right,
	   stage.transform('aaa', 'replace', '{"from": "aa", "to": "b"}') AS odd,
	   stage.transform('Grüße, Grüße', 'replace', '{"from": "ü", "to": "ue"}') AS multibyte,
	   stage.transform('n/a', 'replace', '{"from": "N/A", "to": "x"}') AS case_matters;
SELECT '[' || stage.transform('', 'replace', '{"from": "a", "to": "b"}') || ']' AS empty,
	   stage.transform(NULL, 'replace', '{"from": "a", "to": "b"}') IS NULL AS null_stays,
	   stage.transform('abababac', 'replace', '{"from": "ababac", "to": "X"}') AS overlap_prefix;
SELECT tf_try('a', 'replace', '{"from": "", "to": "b"}');
SELECT tf_try('a', 'replace', '{"from": "a"}');
SELECT tf_try('a', 'replace', '{"to": "a"}');
SELECT tf_try('a', 'replace', '{"from": "a", "to": null}');
SELECT tf_try('a', 'replace', '{"from": "a", "to": ["b"]}');

----------------------------------------------------------------------------
-- 5. regex_replace (PCRE2, every match; the regex rule's limits)
----------------------------------------------------------------------------
SELECT stage.transform('2024/01/31', 'regex_replace',
					   '{"pattern": "(\\d+)/(\\d+)/(\\d+)", "replacement": "$1-$2-$3"}') AS groups,
	   stage.transform('A-b-C', 'regex_replace', '{"pattern": "[abc]", "replacement": "x", "flags": "i"}') AS flag_i,
	   stage.transform('a1b22c333', 'regex_replace', '{"pattern": "\\d+", "replacement": "#", "flags": "g"}') AS g_accepted,
	   stage.transform('Zoë Ünal', 'regex_replace', '{"pattern": "\\w+", "replacement": "<${0}>"}') AS unicode_words,
	   stage.transform('cost: 5', 'regex_replace', '{"pattern": "\\d", "replacement": "$$"}') AS dollar;
SELECT '[' || stage.transform('', 'regex_replace', '{"pattern": "x", "replacement": "y"}') || ']' AS empty,
	   stage.transform(NULL, 'regex_replace', '{"pattern": "x", "replacement": "y"}') IS NULL AS null_stays,
	   stage.transform('none', 'regex_replace', '{"pattern": "x", "replacement": "y"}') AS no_match;
-- a catastrophic pattern hits the match limit: 54000, as the regex rule's regex_limit
SELECT tf_try(repeat('a', 40) || 'b', 'regex_replace', '{"pattern": "^(a+)+$", "replacement": "x"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "(", "replacement": "x"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "a", "replacement": "x", "flags": "q"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "a", "replacement": "$"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "a", "replacement": "${1"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "a"}');
SELECT tf_try('a', 'regex_replace', '{"pattern": "", "replacement": "x"}');

----------------------------------------------------------------------------
-- 6. nullif, default, map
----------------------------------------------------------------------------
SELECT v, stage.transform(v, 'nullif', '{"values": ["", "N/A", "-"]}') AS nullif
  FROM (VALUES (''), ('N/A'), ('n/a'), ('-'), (' - '), ('x'), (NULL)) AS t(v);
SELECT tf_try('a', 'nullif', '{"values": []}');
SELECT tf_try('a', 'nullif', '{"values": "N/A"}');
SELECT tf_try('a', 'nullif', '{"values": ["N/A", 1]}');
SELECT tf_try('a', 'nullif');

SELECT stage.transform(NULL, 'default', '{"value": "unknown"}') AS replaces_null,
	   '[' || stage.transform('', 'default', '{"value": "unknown"}') || ']' AS keeps_empty,
	   stage.transform('x', 'default', '{"value": "unknown"}') AS keeps_value,
	   stage.transform(NULL, 'default', '{"value": 0}') AS number;
SELECT tf_try(NULL, 'default');
SELECT tf_try(NULL, 'default', '{"value": {"a": 1}}');

SELECT v, stage.transform(v, 'map', '{"values": {"Y": "true", "N": "false", "?": null, "1": 1}}') AS keep,
	   stage.transform(v, 'map', '{"values": {"Y": "true", "N": "false"}, "else": "null"}') AS null_else,
	   tf_try(v, 'map', '{"values": {"Y": "true", "N": "false"}, "else": "reject"}') AS reject
  FROM (VALUES ('Y'), ('N'), ('?'), ('1'), ('y'), (''), ('Ünknown'), (NULL)) AS t(v);
-- the message quotes the value, at most 64 characters
SELECT tf_try(repeat('é', 100), 'map', '{"values": {"Y": "true"}, "else": "reject"}');
SELECT tf_try('a', 'map', '{"values": {}}');
SELECT tf_try('a', 'map', '{"values": ["Y"]}');
SELECT tf_try('a', 'map', '{"values": {"Y": ["true"]}}');
SELECT tf_try('a', 'map', '{"values": {"Y": "true"}, "else": "drop"}');

----------------------------------------------------------------------------
-- 7. number
----------------------------------------------------------------------------
SELECT v, tf_try(v, 'number', a) AS number
  FROM (VALUES ('24551', '{}'::jsonb), ('$24,551', '{"currency": true}'),
			   ('1.234,50 €', '{"decimal": ",", "group": ".", "currency": true}'),
			   ('(12.00)', '{}'), ('-1 234,5', '{"decimal": ",", "group": " "}'),
			   (U&'1\202F234\00A0567,89', '{"decimal": ",", "group": " "}'),
			   ('+7', '{}'), ('7-', '{}'), (' - 7 ', '{}'), (U&'\22127', '{}'),
			   ('1''234.50', '{"group": "''"}'), ('CHF 1''234.50', '{"group": "''", "currency": true}'),
			   ('USD 1,000,000.00', '{"currency": true}'), ('1,000.5 EUR', '{"currency": true}'),
			   ('US$12', '{"currency": true}'), ('-$5', '{"currency": true}'), ('$-5', '{"currency": true}'),
			   ('($1,234.5)', '{"currency": true}'), ('¥1,000', '{"currency": true}'),
			   ('£3.50', '{"currency": true}'), ('₹12,34,567', '{"currency": true}'),
			   ('.5', '{}'), ('5.', '{}'), ('007', '{}'), ('0,001', '{}'),
			   ('123456789012345678901234567890.123456789012345678901234567890', '{}'),
			   ('1234', '{"group": ""}'), ('1,234', '{"group": ""}'),
			   ('1,5', '{"decimal": ","}'), ('1.5', '{"decimal": ","}')) AS t(v, a);
-- failures: 22P02, with the character
SELECT v, tf_try(v, 'number', a) AS number
  FROM (VALUES ('', '{}'::jsonb), ('   ', '{}'), ('abc', '{}'), ('$5', '{}'),
			   ('1,23', '{}'), ('1,2345', '{}'), ('12,34,567', '{}'), ('1.234,5', '{}'),
			   ('1.5.3', '{}'), ('1e5', '{}'), ('--5', '{}'), ('-5-', '{}'),
			   ('(5', '{}'), ('-(5)', '{}'), ('5)', '{}'), ('$$5', '{"currency": true}'),
			   ('USD 5 EUR', '{"currency": true}'), ('5 usd', '{"currency": true}'),
			   ('1.000,5', '{"decimal": ",", "group": "."}') , ('1,000.5', '{"decimal": ",", "group": "."}'),
			   ('١٢٣', '{}'), ('12 345', '{}')) AS t(v, a);
SELECT stage.transform(NULL, 'number') IS NULL AS null_stays,
	   stage.transform('-1.234,50', 'number', '{"decimal": ",", "group": "."}')::numeric AS as_numeric;
SELECT tf_try('1', 'number', '{"decimal": ";"}');
SELECT tf_try('1', 'number', '{"decimal": ",", "group": ","}');
SELECT tf_try('1', 'number', '{"decimal": ","}') AS group_defaults_to_dot,
	   tf_try('1.5', 'number', '{"decimal": ","}') AS so_this_fails;
SELECT tf_try('1', 'number', '{"group": "_"}');
SELECT tf_try('1', 'number', '{"currency": "yes"}');
SELECT tf_try('1', 'number', '{"precision": 2}');

----------------------------------------------------------------------------
-- 8. boolean
----------------------------------------------------------------------------
SELECT v, tf_try(v, 'boolean') AS boolean
  FROM (VALUES ('true'), ('T'), ('Yes'), ('y'), ('1'), ('ON'), ('false'), ('F'), ('NO'),
			   ('n'), ('0'), ('Off'), (''), (' yes'), ('maybe'), (NULL)) AS t(v);
SELECT v, tf_try(v, 'boolean', '{"true": ["ja", "J", "oui", "sí"], "false": ["nein", "N", "non", "no"]}') AS custom
  FROM (VALUES ('JA'), ('j'), ('Oui'), ('sí'), ('nein'), ('NON'), ('yes'), ('SÍ')) AS t(v);
SELECT tf_try('x', 'boolean', '{"true": ["x"], "false": ["X"]}');
SELECT tf_try('x', 'boolean', '{"true": []}');
SELECT tf_try('x', 'boolean', '{"true": "yes"}');
SELECT tf_try('x', 'boolean', '{"yes": ["x"]}');

----------------------------------------------------------------------------
-- 9. date and timestamp
----------------------------------------------------------------------------
SELECT v, f, tf_try(v, 'date', jsonb_build_object('format', f)) AS date
  FROM (VALUES ('2024-01-31', 'YYYY-MM-DD'), ('31/01/2024', 'DD/MM/YYYY'), ('1/2/2024', 'DD/MM/YYYY'),
			   ('20240131', 'YYYYMMDD'), ('31.01.24', 'DD.MM.YY'), ('31.01.70', 'DD.MM.YY'),
			   ('Jan 5, 2024', 'Mon DD, YYYY'), ('5 SEPTEMBER 2024', 'DD Month YYYY'),
			   ('Wed, 31 Jan 2024', 'Dy, DD Mon YYYY'), ('Wednesday 31 january 2024', 'Day DD Month YYYY'),
			   ('  2024-01-31  ', 'YYYY-MM-DD'), ('2024-01-31 23:59:59', 'YYYY-MM-DD HH24:MI:SS'),
			   ('2024-02-29', 'YYYY-MM-DD'), ('2000-02-29', 'YYYY-MM-DD'), ('Y2024 D31 M01', '"Y"YYYY "D"DD "M"MM'),
			   ('2024-01-31', 'FMYYYY-FMMM-FMDD')) AS t(v, f);
-- failures: 22007 (does not match the format), 22008 (out of range)
SELECT v, f, tf_try(v, 'date', jsonb_build_object('format', f)) AS date
  FROM (VALUES ('2024-02-30', 'YYYY-MM-DD'), ('2023-02-29', 'YYYY-MM-DD'), ('1900-02-29', 'YYYY-MM-DD'),
			   ('2024-13-01', 'YYYY-MM-DD'), ('2024-00-10', 'YYYY-MM-DD'), ('2024-04-31', 'YYYY-MM-DD'),
			   ('0000-01-01', 'YYYY-MM-DD'), ('2024/01/31', 'YYYY-MM-DD'), ('24-01-31', 'YYYY-MM-DD'),
			   ('2024-01-31x', 'YYYY-MM-DD'), ('2024-1-', 'YYYY-MM-DD'), ('', 'YYYY-MM-DD'),
			   ('Foo 5, 2024', 'Mon DD, YYYY'), ('2024-01-31 25:00', 'YYYY-MM-DD HH24:MI'),
			   ('20240131', 'YYYY-MM-DD')) AS t(v, f);
SELECT v, f, tf_try(v, 'timestamp', jsonb_build_object('format', f)) AS "timestamp"
  FROM (VALUES ('2024-01-31 13:45:00', 'YYYY-MM-DD HH24:MI:SS'),
			   ('2024-01-31T13:45:07.123', 'YYYY-MM-DD"T"HH24:MI:SS.MS'),
			   ('2024-01-31T13:45:07.5Z', 'YYYY-MM-DD"T"HH24:MI:SS.USTZ'),
			   ('2024-01-31 13:45:07.000123 +05:30', 'YYYY-MM-DD HH24:MI:SS.US TZ'),
			   ('2024-01-31 13:45 -0800', 'YYYY-MM-DD HH24:MI TZ'),
			   ('2024-01-31 13:45 UTC', 'YYYY-MM-DD HH24:MI TZ'),
			   ('31/01/2024 1:45 PM', 'DD/MM/YYYY HH12:MI AM'),
			   ('31/01/2024 12:05 a.m.', 'DD/MM/YYYY HH:MI AM'),
			   ('31/01/2024 12:05 p.m.', 'DD/MM/YYYY HH:MI AM'),
			   ('31/01/2024 12:05', 'DD/MM/YYYY HH12:MI'),
			   ('2024-01-31 13:45:00+02', 'YYYY-MM-DD HH24:MI:SSTZH'),
			   ('2024-01-31 13:45:00 -03:30', 'YYYY-MM-DD HH24:MI:SS TZH:TZM'),
			   ('2024-01-31', 'YYYY-MM-DD'),
			   ('2024-01-31 13:45:60', 'YYYY-MM-DD HH24:MI:SS'),
			   ('2024-01-31 13:60', 'YYYY-MM-DD HH24:MI'),
			   ('2024-01-31 0:45 PM', 'YYYY-MM-DD HH12:MI AM'),
			   ('2024-01-31 13:45 +16:00', 'YYYY-MM-DD HH24:MI TZ'),
			   ('2024-01-31 13:45 02:00', 'YYYY-MM-DD HH24:MI TZ'),
			   ('2024-01-31 13:45 XM', 'YYYY-MM-DD HH12:MI AM')) AS t(v, f);
-- time_zone: for values without an offset of their own
SELECT tf_try('2024-01-31 13:45', 'timestamp', '{"format": "YYYY-MM-DD HH24:MI", "time_zone": "+01:00"}') AS plus_one,
	   tf_try('2024-01-31 13:45 -05', 'timestamp', '{"format": "YYYY-MM-DD HH24:MI TZH", "time_zone": "UTC"}') AS own_offset,
	   tf_try('2024-01-31 13:45', 'timestamp', '{"format": "YYYY-MM-DD HH24:MI", "time_zone": "Z"}') AS z;
-- what the target types make of the output
SELECT stage.transform('31/01/2024 1:45:07.25 PM', 'timestamp',
					   '{"format": "DD/MM/YYYY HH12:MI:SS.MS AM", "time_zone": "+02:00"}')::timestamptz AT TIME ZONE 'UTC' AS utc,
	   stage.transform('Jan 5, 2024', 'date', '{"format": "Mon DD, YYYY"}')::date AS date;
SELECT stage.transform(NULL, 'date', '{"format": "YYYY-MM-DD"}') IS NULL AS null_stays;
-- format errors
SELECT f, tf_try('x', 'timestamp', jsonb_build_object('format', f)) AS error
  FROM (VALUES ('YYYY-MM'), ('MM-DD'), ('YYYY-DD'), ('YYYY-MM-DD-YY'), ('YYYY-MM-DDTHH24:MI'),
			   ('YYYY-MM-DD HH24 HH12'), ('YYYY-MM-DD HH24:MI AM'), ('YYYY-MM-DD TZM'),
			   ('YYYY-MM-DD TZ TZH'), ('YYYY-MM-DD "T'), ('YYYY-MM-DD MS US'), ('YYYY-Mon-MM-DD')) AS t(f);
SELECT tf_try('x', 'date');
SELECT tf_try('x', 'date', '{"format": ""}');
SELECT tf_try('x', 'date', '{"format": "YYYY-MM-DD", "time_zone": "UTC"}');
SELECT tf_try('x', 'timestamp', '{"format": "YYYY-MM-DD", "time_zone": "Europe/Paris"}');
SELECT tf_try('x', 'timestamp', '{"format": "YYYY-MM-DD", "time_zone": "+16:00"}');

----------------------------------------------------------------------------
-- 10. the methods a batch runs: arguments checked, no value transformed
----------------------------------------------------------------------------
SELECT stage.transform('x', 'lookup', '{"table": "public.countries", "key": "code", "value": "name"}');
SELECT m, a, tf_try('x', m, a::jsonb) AS result
  FROM (VALUES ('from', '{"path": "customer.contact.email"}'), ('from', '{"path": ["a.b", "c"]}'),
			   ('from', '{"column": "email_address"}'), ('concat', '{"columns": ["first", "last"]}'),
			   ('coalesce', '{"columns": ["mobile", "phone"]}'), ('coalesce', '{"paths": ["a.b", ["c"]]}'),
			   ('lookup', '{"table": "\"My Schema\".countries", "key": "code", "value": "name", "on_missing": "reject"}'),
			   ('expression', '{"sql": "upper(name)"}')) AS t(m, a);
SELECT m, a, tf_try('x', m, a::jsonb) AS error
  FROM (VALUES ('from', '{}'), ('from', '{"path": "a", "column": "b"}'), ('from', '{"path": "a..b"}'),
			   ('from', '{"path": ""}'), ('from', '{"path": []}'), ('from', '{"path": [1]}'),
			   ('from', '{"column": ""}'), ('from', '{"column": "' || repeat('c', 64) || '"}'),
			   ('concat', '{}'), ('concat', '{"columns": []}'), ('concat', '{"columns": ["a", ""]}'),
			   ('concat', '{"columns": ["a"], "separator": 1}'),
			   ('coalesce', '{}'), ('coalesce', '{"columns": ["a"], "paths": ["b"]}'),
			   ('coalesce', '{"paths": []}'), ('coalesce', '{"paths": "a.b"}'),
			   ('lookup', '{"table": "countries", "key": "code", "value": "name"}'),
			   ('lookup', '{"table": "public.countries", "key": "code"}'),
			   ('lookup', '{"table": "a.b.c", "key": "code", "value": "name"}'),
			   ('lookup', '{"table": "public.countries", "key": "code", "value": "name", "on_missing": "drop"}'),
			   ('expression', '{}'), ('expression', '{"sql": ""}'), ('expression', '{"sql": "x", "safe": true}')) AS t(m, a);

----------------------------------------------------------------------------
-- 11. methods and arguments in general
----------------------------------------------------------------------------
SELECT stage.transform('x', 'titlecase');
SELECT stage.transform('x', NULL);
SELECT tf_try('x', 'trim', '["chars"]');
SELECT tf_try('x', 'trim', '"chars"');
SELECT tf_try('x', 'lower', '{"x": 1}');
-- NULL args are no args; JSON null is an absent argument
SELECT stage.transform(' x ', 'trim', NULL) AS null_args,
	   stage.transform(' x ', 'trim', '{"chars": null}') AS json_null;
-- one call site, a different method or argument per row: compiled per change
SELECT v, m, a, tf_try(v, m, a::jsonb) AS result
  FROM (VALUES (' a ', 'trim', '{}'), ('b', 'upper', '{}'), ('b', 'upper', '{}'),
			   ('c-c', 'replace', '{"from": "-", "to": "+"}'), ('c-c', 'replace', '{"from": "c", "to": "d"}'),
			   ('1,5', 'number', '{"decimal": ","}'), ('1.5', 'number', '{}')) AS t(v, m, a);
-- anyone may call it: pure computation on its arguments
SELECT has_function_privilege('public', 'stage.transform(text, text, jsonb)', 'EXECUTE') AS public_may_execute;

----------------------------------------------------------------------------
-- 12. large and hostile values (10 MB): linear time, nothing raised
----------------------------------------------------------------------------
CREATE TEMP TABLE tf_big AS
SELECT repeat(' a  b', 2000000) AS spaces,
	   repeat('1,234', 2000000) AS digits,
	   repeat('é', 5000000) AS accents,
	   repeat(U&'e\0301', 3333333) AS decomposed,
	   repeat('aa', 5000000) AS letters;
SELECT length(stage.transform(spaces, 'trim')) AS trim,
	   length(stage.transform(spaces, 'squish')) AS squish,
	   length(stage.transform(accents, 'upper')) AS upper,
	   length(stage.transform(spaces, 'replace', '{"from": " ", "to": "__"}')) AS replace,
	   length(stage.transform(letters, 'replace', '{"from": "aaaaaaaaab", "to": "x"}')) AS replace_no_match,
	   length(stage.transform(letters, 'regex_replace', '{"pattern": "a+", "replacement": "b"}')) AS regex
  FROM tf_big;
SELECT length(stage.transform(decomposed, 'normalize')) AS nfc_chars,
	   stage.transform(decomposed, 'normalize') = normalize(decomposed, NFC) AS nfc_agrees,
	   stage.transform(accents, 'normalize') = accents AS nfc_unchanged,
	   length(stage.transform(accents, 'normalize', '{"form": "NFKC"}')) AS nfkc_chars
  FROM tf_big;
SELECT length(stage.transform('-' || repeat('9', 10000000) || '.5', 'number')) AS long_number,
	   left(tf_try(digits, 'number'), 60) AS groups_of_five,
	   left(tf_try(repeat(' ', 10000000) || 'x', 'number'), 60) AS blank_run,
	   left(tf_try(letters, 'date', '{"format": "YYYY-MM-DD"}'), 60) AS not_a_date,
	   left(tf_try(repeat('9', 10000000), 'date', '{"format": "YYYYMMDD"}'), 60) AS digits_date,
	   left(tf_try(letters, 'boolean'), 60) AS not_a_boolean,
	   stage.transform(letters, 'map', '{"values": {"a": "b"}}') = letters AS map_keeps,
	   stage.transform(letters, 'nullif', '{"values": ["a"]}') = letters AS nullif_keeps
  FROM tf_big;
-- a replacement that would outgrow a text value fails instead of raising
SELECT left(tf_try(repeat('a', 10000000), 'replace', jsonb_build_object('from', 'a', 'to', repeat('b', 200))), 80) AS too_long;
DROP TABLE tf_big;
DROP FUNCTION tf_try(text, text, jsonb);
