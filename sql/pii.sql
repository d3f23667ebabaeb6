--
-- pii: stage.scan_pii finds emails, Luhn-valid cards, mod-97-valid IBANs,
-- phone numbers, US SSNs, IPv4/IPv6 addresses and credential shapes in
-- free text, in one pass; what is not PII is not reported.  The no_pii rule
-- and the redact_pii mask use the same scanner.
--
-- Every object of this file is prefixed pi_; the file drops what it creates.
--
\set SHOW_CONTEXT never

----------------------------------------------------------------------------
-- 1. Each kind, found and validated
----------------------------------------------------------------------------
CREATE FUNCTION pi_scan(t text) RETURNS TABLE(kind text, found text)
LANGUAGE sql AS $$
	SELECT kind, substr(t, start, length) FROM stage.scan_pii(t)
$$;

SELECT * FROM pi_scan('write to alice.smith@example.com or bob@sub.example.co.uk.');
-- cards: 13..19 digits, spaces or hyphens, Luhn-checked
SELECT * FROM pi_scan('paid with 4111 1111 1111 1111, refund to 5500-0000-0000-0004 and 378282246310005');
SELECT * FROM pi_scan('order 4111 1111 1111 1112 and invoice 1234567890123');
-- IBANs: mod 97, grouped or not
SELECT * FROM pi_scan('IBAN DE89 3704 0044 0532 0130 00, GB82WEST12345698765432 ok');
SELECT * FROM pi_scan('not IBANs: DE89 3704 0044 0532 0130 02, XX00 1234');
-- phones: + and a country code, or North-American groupings
SELECT * FROM pi_scan('call +44 20 7946 0958, +1 (555) 010-0123, (555) 010-0199 or 555.010.0142');
SELECT * FROM pi_scan('not phones: 2024-03-17, 12:30:45, 1234567, +12 34, 555-010-0123-99');
-- US SSNs, hyphenated, never-issued numbers excluded
SELECT * FROM pi_scan('SSN 123-45-6789; not: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567');
-- IP addresses
SELECT * FROM pi_scan('from 192.168.0.1, 10.0.0.255 and 2001:db8::8a2e:370:7334, fe80::1%eth0, ::1.');
SELECT * FROM pi_scan('not IPs: 1.2.3.4.5, 256.1.1.1, 01.2.3.4, 12:30:45, a::b::c, std::vector');
-- credentials
SELECT kind, left(found, 12) AS starts FROM pi_scan(
	'aws AKIAIOSFODNN7EXAMPLE gh ghp_0123456789abcdefghijklmnopqrstuvwxyzAB '
	'slack xoxb-123456789012-abcdefghij stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc '
	'google AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe '
	'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk');
SELECT kind, length(found) FROM pi_scan(E'key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nbye');
SELECT * FROM pi_scan('not keys: AKIA123, ghp_short, sk_live_, eyJ.eyJ, xoxb-1');

----------------------------------------------------------------------------
-- 2. Positions count characters; multibyte text around PII; one pass
----------------------------------------------------------------------------
SELECT * FROM stage.scan_pii('Zoë Ångström <zoë@exämple.de>, 卡号4111111111111111。');
SELECT kind, start, length FROM stage.scan_pii('日本語 bob@example.org 日本語 10.1.2.3');
SELECT count(*) AS hits FROM stage.scan_pii(repeat('mail a@b.org, ip 10.0.0.1; ', 5000));
SELECT count(*) AS no_hits FROM stage.scan_pii(repeat('plain words and 12345 numbers ', 10000));
SELECT count(*) AS empty FROM stage.scan_pii('');
SELECT count(*) AS null_input FROM stage.scan_pii(NULL);
-- an email whose local part looks like a phone or a key is one email
SELECT * FROM pi_scan('sms 555-010-0123@txt.example.com');

----------------------------------------------------------------------------
-- 3. The no_pii rule: kinds by name (ip = ipv4 + ipv6), all by default
----------------------------------------------------------------------------
CREATE TABLE pi_notes (id integer PRIMARY KEY, note text, comment text);
SELECT stage.create_pipeline('pi_notes', 'pi_notes', key => '{id}');
SELECT stage.add_rule('pi_notes', 'note', 'no_pii');
SELECT stage.add_rule('pi_notes', 'comment', 'no_pii', '{"kinds": ["ip", "credential"]}');
-- the note is also redacted in the target
SELECT stage.add_mask('pi_notes', 'note', 'redact_pii');
INSERT INTO stage_landing.pi_notes (id, note, comment) VALUES
	('1', 'all fine', 'mail me: a@b.org'),
	('2', 'reach me at +1 (555) 010-0123', 'ok'),
	('3', 'fine', 'from 10.0.0.1'),
	('4', 'fine', 'token AKIAIOSFODNN7EXAMPLE');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('pi_notes');
SELECT id, note, comment FROM pi_notes ORDER BY id;
SELECT landing_id, rule_name, message, row_data->>'note' AS note
  FROM stage.quarantine WHERE pipeline = 'pi_notes' ORDER BY landing_id;

SELECT stage.drop_pipeline('pi_notes', force => true);
DROP TABLE pi_notes;
DROP FUNCTION pi_scan(text);
