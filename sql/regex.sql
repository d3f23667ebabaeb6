--
-- regex: the PCRE2 functions stage.regex_match, stage.regex_replace and
-- stage.regex_extract (flags i m s x, and g for replace; groups; text in
-- characters), their errors, and the match limits: a catastrophic pattern
-- fails fast with an error in SQL and, as a rule, quarantines only the
-- row it was matched against.
--
-- Lines marked "FIXED" assert the correct behaviour of something that was
-- once broken; they guard against its return.
--
-- Every object of this file is prefixed rx_; the file drops what it creates.
--
\set SHOW_CONTEXT never

----------------------------------------------------------------------------
-- 1. regex_match and the flags
----------------------------------------------------------------------------
SELECT stage.regex_match('Hello', '^hello$') AS plain,
	   stage.regex_match('Hello', '^hello$', 'i') AS i;
-- m: ^ and $ at line breaks
SELECT stage.regex_match(E'first\nsecond', '^second$') AS plain,
	   stage.regex_match(E'first\nsecond', '^second$', 'm') AS m;
-- s: . matches a line break
SELECT stage.regex_match(E'a\nb', '^a.b$') AS plain,
	   stage.regex_match(E'a\nb', '^a.b$', 's') AS s;
-- x: white space and # comments in the pattern are ignored
SELECT stage.regex_match('abc', 'a b c  # letters', 'x') AS x,
	   stage.regex_match('abc', 'a b c') AS plain;
SELECT stage.regex_match(E'A\nb', '^a$.^B$', 'ims') AS ims;
-- characters, not bytes: \w, . and case folding know UTF-8
SELECT stage.regex_match('Ångström', '^\w+$') AS word,
	   stage.regex_match('日本語', '^.{3}$') AS three_chars,
	   stage.regex_match('ÅSA', '^åsa$', 'i') AS folded,
	   stage.regex_match('straße', '^stra.e$') AS eszett;
-- NULL in, NULL out
SELECT stage.regex_match(NULL, 'a') IS NULL AS null_value,
	   stage.regex_match('a', NULL) IS NULL AS null_pattern,
	   stage.regex_match('a', 'a', NULL) IS NULL AS null_flags;
-- over a column: one compiled pattern for every row
CREATE TABLE rx_words (w text);
INSERT INTO rx_words VALUES ('alpha'), ('Beta'), ('gamma1'), ('Δέλτα'), (NULL);
SELECT w, stage.regex_match(w, '^\p{L}+$') AS letters_only,
	   stage.regex_match(w, '^[a-z]', 'i') AS starts_latin
  FROM rx_words ORDER BY w;

----------------------------------------------------------------------------
-- 2. regex_replace: the first match, or every match with g; $1 and ${name}
----------------------------------------------------------------------------
SELECT stage.regex_replace('a-b-c', '-', '+') AS first,
	   stage.regex_replace('a-b-c', '-', '+', 'g') AS every;
SELECT stage.regex_replace('John Smith', '(\w+) (\w+)', '$2, $1') AS groups;
SELECT stage.regex_replace('2024-01-31', '(?<y>\d+)-(?<m>\d+)-(?<d>\d+)', '${d}.${m}.${y}')
	AS named_groups;
SELECT stage.regex_replace('ABC abc', 'b', 'x', 'gi') AS gi;
SELECT stage.regex_replace(E'one\ntwo', '^', '> ', 'gm') AS gm;
SELECT stage.regex_replace('costs 5', '(\d+)', '$$$1.00') AS dollar;
SELECT stage.regex_replace('no match here', 'z', 'x') AS unchanged;
SELECT stage.regex_replace('Ünïcödé', '[^a-z]', '?', 'g') AS per_character;
SELECT stage.regex_replace('Zoë Ångström', '(\w)\w*', '$1.', 'g') AS initials;
-- a group the pattern does not have
SELECT stage.regex_replace('a', 'a', '$2');
\echo :LAST_ERROR_SQLSTATE
-- g is a flag of replace only
SELECT stage.regex_match('a', 'a', 'g');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- 3. regex_extract: the first group of the first match, or the whole match
--    when the pattern has no group; NULL when nothing matches
----------------------------------------------------------------------------
SELECT stage.regex_extract('order 1234 of 2024', '\d+') AS whole,
	   stage.regex_extract('order 1234 of 2024', 'of (\d+)') AS grp,
	   stage.regex_extract('order 1234', '(\d)(\d)') AS first_group,
	   stage.regex_extract('no digits', '\d+') AS no_match;
SELECT stage.regex_extract('KEY=value', 'key=(\w+)', 'i') AS i,
	   stage.regex_extract('名前: 山田', '名前: (\S+)') AS multibyte;
-- FIXED: a group that did not take part in the match is NULL, not the whole
-- match ("b" here)
SELECT stage.regex_extract('ab', '(x)?b') AS unset_group;

----------------------------------------------------------------------------
-- 4. Errors: a pattern that does not compile (2201B, with the offset), an
--    unknown flag (22023)
----------------------------------------------------------------------------
SELECT stage.regex_match('abc', '(');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_replace('abc', '[a-', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_extract('abc', 'a{2,1}');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_match('abc', 'a', 'q');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_replace('abc', 'a', 'b', 'gz');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_extract('abc', 'a', 'I');
\echo :LAST_ERROR_SQLSTATE

----------------------------------------------------------------------------
-- 5. Limits: nested quantifiers on a subject that almost matches take
--    exponential time; the match limit stops them with 54000
----------------------------------------------------------------------------
SHOW stage.regex_match_limit;
SHOW stage.regex_depth_limit;
-- a short subject is fine with the default limit
SELECT stage.regex_match(repeat('a', 12) || 'b', '^(a+)+$') AS short_subject;
-- a longer one fails fast, in all three functions
SELECT stage.regex_match(repeat('a', 40) || 'b', '^(a+)+$');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_replace(repeat('a', 40) || 'b', '^(a+)+$', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.regex_extract(repeat('a', 40) || 'b', '^(a+)+$');
\echo :LAST_ERROR_SQLSTATE
-- the limit is a setting: lower, the short subject fails too
SET stage.regex_match_limit = 1000;
SELECT stage.regex_match(repeat('a', 12) || 'b', '^(a+)+$');
\echo :LAST_ERROR_SQLSTATE
RESET stage.regex_match_limit;
SELECT stage.regex_match(repeat('a', 12) || 'b', '^(a+)+$') AS after_reset;
-- the settings have lower bounds
SET stage.regex_match_limit = 0;
\echo :LAST_ERROR_SQLSTATE
SET stage.regex_depth_limit = 10;
\echo :LAST_ERROR_SQLSTATE
-- FIXED: a linear pattern over a long value is not catastrophic and must
-- match within the default limits (it exhausts PCRE2's JIT stack, which
-- no setting can raise, and is reported as exceeding the match limit)
SELECT stage.regex_match(repeat('ab', 20000), '^(?:ab)*$') AS long_linear;
SELECT stage.regex_match(repeat('a', 5000), '^(a|b)*$') AS long_alternation;

----------------------------------------------------------------------------
-- 6. As a rule: the row that hits the limit is quarantined with kind
--    regex_limit and SQLSTATE 54000; the rest of the batch moves
----------------------------------------------------------------------------
CREATE TABLE rx_codes (id integer, code text);
SELECT stage.create_pipeline('rx_codes', 'rx_codes');
SELECT stage.add_rule('rx_codes', 'code', 'regex', '{"pattern": "^(a+)+$"}',
					  rule_name => 'code_as');
SELECT stage.add_rule('rx_codes', 'code', 'regex', '{"pattern": "^a", "flags": "i"}',
					  rule_name => 'code_starts_a');
INSERT INTO stage_landing.rx_codes (id, code) VALUES
	('1', 'aaa'),
	('2', repeat('a', 40) || 'b'),		-- the catastrophic case
	('3', 'Ab'),						-- no match: an ordinary failure
	('4', NULL),
	('5', 'a');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('rx_codes');
SELECT id, code FROM rx_codes ORDER BY id;
SELECT q.landing_id, r.value->>'rule' AS rule, r.value->>'kind' AS kind,
	   r.value->>'sqlstate' AS sqlstate, r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline = 'rx_codes' ORDER BY q.landing_id, r.value->>'rule';
SELECT rule_name, checked, failed FROM stage.rule_stats
 WHERE pipeline = 'rx_codes' AND kind = 'regex' ORDER BY rule_name;
-- with a higher limit the same value is an ordinary failure: the rule's
-- limit is the session's setting when the batch runs
SET stage.regex_match_limit = 100000000;
INSERT INTO stage_landing.rx_codes (id, code) VALUES ('6', repeat('a', 20) || 'b');
SELECT rows_in, rows_clean, rows_quarantined, status FROM stage.run_batch('rx_codes');
RESET stage.regex_match_limit;
SELECT q.landing_id, r.value->>'rule' AS rule, r.value->>'kind' AS kind,
	   r.value->>'message' AS message
  FROM stage.quarantine q, jsonb_array_elements(q.reasons) r
 WHERE q.pipeline = 'rx_codes' AND q.landing_id = 6;

-- a rule's pattern is checked when it is declared
SELECT stage.add_rule('rx_codes', 'code', 'regex', '{"pattern": "(a"}', rule_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('rx_codes', 'code', 'regex', '{"pattern": "a", "flags": "g"}', rule_name => 'x');
\echo :LAST_ERROR_SQLSTATE

SELECT stage.drop_pipeline('rx_codes', force => true);
DROP TABLE rx_codes, rx_words;
