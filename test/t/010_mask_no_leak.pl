
# Copyright (c) the stage authors
#
# 010_mask_no_leak.pl: raw values of masked columns, and the bytes of
# secrets, never reach a client message, a quarantine row, a target row or
# the server log.
#
# Data: landing rows carry a marker in every masked column, and each row
# fails in a different way that produces a message about the row: the
# target's CHECK (the failing row is printed), a UNIQUE violation on a
# masked column (the key is printed), a trigger that raises with the row,
# a type error on a masked column (the input is quoted), a rule on a masked
# column, an expression rule that fails on a masked value, check_row.  The
# server logs everything it can (log_min_messages = debug1, verbose error
# fields, log_min_error_statement = error), and the test searches the
# server log, every client output and every stored row for the marker.
#
# Secrets: a key is imported from a large object (psql \lo_import) while
# the session logs every statement (log_statement = all) and every nested
# plan (auto_explain): the key is in neither the log nor the client output.
# A positive control passes a key inline to create_secret and finds it in
# the log, proving the search would see a leak.
#
# Run by scripts/test.sh (suite tap) with PostgreSQL::Test::Cluster.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $marker = 'ZQXMARK';

my $node = PostgreSQL::Test::Cluster->new('mask_no_leak');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage'
log_min_messages = debug1
log_min_error_statement = error
log_error_verbosity = verbose
log_statement = none
lc_messages = 'C'
});
$node->start;

# everything a client saw, to be searched at the end
my $client = '';

sub run
{
	my ($sql, %opt) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, %opt);
	$client .= "$out\n$err\n";
	return ($ret, $out, $err);
}

# ----------------------------------------------------------- secrets

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $key = 'SECRETKEYBYTES-0123456789abcdef!';    # 32 bytes
my $keyhex = unpack('H*', $key);
open my $fh, '>:raw', "$tmp/key.bin" or die "could not write key file: $!";
print $fh $key;
close $fh;

$node->safe_psql('postgres', 'CREATE EXTENSION stage');
my ($ret, $out, $err) = run(
	qq{
SET log_statement = 'all';
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_verbose = on;
\\lo_import '$tmp/key.bin'
SELECT stage.import_secret('leak_key', :LASTOID);
SELECT count(*) FROM pg_largeobject_metadata;
});
is($ret, 0, 'the key is imported from a large object');
is($node->safe_psql('postgres', q{SELECT encode(key, 'hex') FROM stage.secret WHERE name = 'leak_key'}),
	$keyhex, 'the stored key is the file\'s bytes');
like($out, qr/^0$/m, 'the large object is gone after the import');

my $log = slurp_file($node->logfile);
like($log, qr/import_secret\('leak_key'/, 'the import statement was logged');
like($log, qr/Query Text:.*INSERT INTO stage\.secret/s, 'and its nested plan was logged');
unlike($log, qr/SECRETKEYBYTES/, 'the key is not in the server log');
unlike($log, qr/$keyhex/i, 'nor its hex form');

# a hash mask under the imported key computes what pgcrypto computes
$node->safe_psql('postgres', 'CREATE EXTENSION pgcrypto');
is( $node->safe_psql(
		'postgres',
		qq{SELECT stage.mask_hash('x', 'leak_key') = encode(hmac('x', '\\x$keyhex'::bytea, 'sha256'), 'hex')}
	),
	't',
	'the hash under the imported key equals pgcrypto\'s hmac');

# positive control: a key written into a statement is logged (so the
# searches above would have seen a leak)
run(q{SET log_statement = 'all'; SELECT stage.create_secret('control_key', '\x434f4e54524f4c4b45592d30313233343536373839616263646566'::bytea);});
$log = slurp_file($node->logfile);
like($log, qr/434f4e54524f4c4b4559/,
	'control: an inline key is in the log, which is why import_secret exists');

# a short or malformed key is refused without showing it
open $fh, '>:raw', "$tmp/short.bin" or die;
print $fh 'SHORTKEYBYTES';
close $fh;
($ret, $out, $err) = run(
	qq{
\\lo_import '$tmp/short.bin'
SELECT stage.import_secret('short_key', :LASTOID);
});
like($err, qr/a secret key must be 16 to 1024 bytes long/, 'a short key is refused');
($ret, $out, $err) = run(
	qq{
\\lo_import '$tmp/short.bin'
SELECT stage.import_secret('short_key', :LASTOID, 'hex');
});
like($err, qr/the key is not valid hex/, 'a malformed key is refused');
unlike($client, qr/SHORTKEYBYTES/, 'no error shows the refused key');

# -------------------------------------------------------------- data

$node->safe_psql(
	'postgres', q{
CREATE TABLE leak_t (
	id		integer PRIMARY KEY,
	email	varchar(20),
	name	text,
	note	text,
	born	date,
	code	varchar(40),
	tag		text UNIQUE,
	score	integer CHECK (score >= 0)
);
CREATE FUNCTION leak_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 5 THEN
		RAISE EXCEPTION 'rejected row %', NEW::text;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER leak_guard BEFORE INSERT ON leak_t FOR EACH ROW EXECUTE FUNCTION leak_guard();
SELECT stage.create_pipeline('leak', 'leak_t', key => '{id}');
SELECT stage.add_mask('leak', 'email', 'email');
SELECT stage.add_mask('leak', 'name', 'hash', '{"secret": "leak_key", "length": 16}');
SELECT stage.add_mask('leak', 'note', 'redact_pii');
SELECT stage.add_mask('leak', 'born', 'generalize', '{"unit": "year"}');
SELECT stage.add_mask('leak', 'code', 'tokenize', '{"secret": "leak_key"}');
SELECT stage.add_mask('leak', 'tag', 'partial', '{"keep_start": 0, "keep_end": 1, "fill": "#"}');
SELECT stage.add_rule('leak', 'note', 'no_pii', '{"kinds": ["email"]}', severity => 'warn');
SELECT stage.add_rule('leak', 'name', 'regex', '{"pattern": "\\\\s"}');
SELECT stage.add_rule('leak', 'code', 'expression', '{"sql": "id <> 7 OR code::integer > 0"}',
					  rule_name => 'code_numeric');
});

# the producer's rows: COPY, so no statement holds them
my $copy = join("\n",
	# the e-mail is longer than varchar(20), its masked form fits: it moves
	"1\tzqxmark.alice\@example.com\tZQXMARK Alice\tmail zqxmark\@example.org\t1980-05-17\tZQXMARK-code-1\tZQXMARK-tag-1\t5",
	# the target's CHECK fails: the failing row is printed
	"2\tzqx\@example.com\tZQXMARK Bob\tok\t1975-01-01\tZQXMARK-code-2\tZQXMARK-tag-2\t-1",
	# a rule on a masked column
	"3\tzqx\@example.com\tZqxmark\tok\t1990-01-01\tZQXMARK-code-3\tZQXMARK-tag-3\t1",
	# a masked date that is not a date
	"4\tzqx\@example.com\tZQXMARK Dave\tok\tZQXMARK-born\tZQXMARK-code-4\tZQXMARK-tag-4\t1",
	# the trigger raises with the row
	"5\tzqx\@example.com\tZQXMARK Erin\tok\t2000-01-01\tZQXMARK-code-5\tZQXMARK-tag-5\t1",
	# 6 and 8 share a tag: the UNIQUE violation prints the key
	"6\tzqx\@example.com\tZQXMARK Frank\tok\t2001-01-01\tZQXMARK-code-6\tZQXMARK-tag-6\t1",
	# an expression fails on the masked column's value
	"7\tzqx\@example.com\tZQXMARK Gina\tok\t2002-01-01\tZQXMARK-code-7\tZQXMARK-tag-7\t1",
	"8\tzqx\@example.com\tZQXMARK Hugo\tok\t2003-01-01\tZQXMARK-code-8\tZQXMARK-tag-6\t1",
	"9\tzqx\@example.com\tZQXMARK Ivan\tok\t2004-01-01\tZQXMARK-code-9\tZQXMARK-tag-9\t1");
($ret, $out, $err) = run(
	"COPY stage_landing.leak (id, email, name, note, born, code, tag, score) FROM STDIN;\n$copy\n\\.\n");
is($ret, 0, 'the producer lands its rows');

# a second target without triggers: written directly, as COPY does
$node->safe_psql(
	'postgres', q{
CREATE TABLE leak_direct (id integer PRIMARY KEY, name varchar(16), score integer CHECK (score >= 0));
SELECT stage.create_pipeline('leak_direct', 'leak_direct', key => '{id}');
SELECT stage.add_mask('leak_direct', 'name', 'hash', '{"secret": "leak_key", "length": 16}');
});
($ret, $out, $err) = run(
	"COPY stage_landing.leak_direct (id, name, score) FROM STDIN;\n1\tZQXMARK One\t1\n2\tZQXMARK Two\t-2\n\\.\n");

# the batches, with every message the client can get
($ret, $out, $err) = run(
	q{\set VERBOSITY verbose
SET client_min_messages = debug1;
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('leak');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('leak_direct');});
is($ret, 0, 'the batches run');
like($out, qr/^9\|3\|6$/m, 'leak: three rows clean, six quarantined');
like($out, qr/^2\|1\|1$/m, 'leak_direct: one row clean, one quarantined');

# what each row became
my %reason = map { split /\|/, $_, 2 } split /\n/,
  $node->safe_psql('postgres',
	q{SELECT landing_id, string_agg(r->>'kind' || ':' || COALESCE(r->>'sqlstate', '-'), ',' ORDER BY r->>'kind')
		FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id), jsonb_array_elements(q.reasons) r
	   WHERE p.name = 'leak' GROUP BY landing_id});
is($reason{1}, undef, 'row 1: a raw e-mail too long for varchar(20) is not refused');
is($node->safe_psql('postgres', q{SELECT email FROM leak_t WHERE id = 1}), 'z***@example.com',
	'row 1: its masked form is what the target holds');
like($reason{2} // '', qr/target:23514/, 'row 2: the CHECK printed the failing row');
like($reason{3} // '', qr/regex/, 'row 3: a rule on a masked column');
like($reason{4} // '', qr/type:22007/, 'row 4: a masked date that is not a date');
like($reason{5} // '', qr/target:P0001/, 'row 5: the trigger raised with the row');
like(($reason{6} // '') . ($reason{8} // ''), qr/23505/, 'rows 6 and 8: the UNIQUE key on a masked column');
like($reason{7} // '', qr/expression/, 'row 7: an expression failed on a masked value');
# the server's messages are kept for the owners (raw_reasons), about the
# rows, with the masked values: the target never saw a raw one
my %message = map { split /\|/, $_, 2 } split /\n/,
  $node->safe_psql('postgres',
	q{SELECT landing_id, string_agg(r->>'message', ' / ')
		FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id),
			 jsonb_array_elements(COALESCE(q.raw_reasons, q.reasons)) r
	   WHERE p.name = 'leak' GROUP BY landing_id});
# what everyone else sees: the condition, not the server's text, since the
# pipeline masks columns
my %shown = map { split /\|/, $_, 2 } split /\n/,
  $node->safe_psql('postgres',
	q{SELECT landing_id, string_agg(r->>'message', ' / ')
		FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id), jsonb_array_elements(q.reasons) r
	   WHERE p.name = 'leak' GROUP BY landing_id});
like($shown{2} // '', qr/^check_violation \(SQLSTATE 23514\) on constraint "\w+"; the server's message is withheld/,
	'row 2: the reason shows the condition, the CHECK\'s text is withheld');
like($shown{4} // '', qr/^invalid_datetime_format \(SQLSTATE 22007\); the server's message is withheld: column "\w+" is masked/,
	'row 4: the input function\'s text about a masked column is withheld');
like($message{2} // '', qr/Failing row contains \(2, z\*\*\*\@example\.com, [0-9a-f]{16}, /,
	'row 2: the failing row shows the masked values');
like($message{5} // '', qr/rejected row \(5,z\*\*\*\@example\.com,[0-9a-f]{16},/,
	'row 5: the trigger saw the masked values only');
like(($message{6} // '') . ($message{8} // ''), qr/Key \(tag\)=\(#+6\) already exists/,
	'rows 6 and 8: the key in the message is masked');
# the type check ran on the value as landed: its text quotes it, and stays
# with the owners (stage.quarantine_raw), who may read raw values anyway
like($message{4} // '', qr/invalid input syntax for type date: "ZQXMARK-born"/,
	'row 4: the owners\' copy of the message is the server\'s own');

is($node->safe_psql('postgres',
		q{SELECT string_agg(r->>'sqlstate', ',') FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id),
			jsonb_array_elements(q.reasons) r WHERE p.name = 'leak_direct'}),
	'23514', 'leak_direct: the CHECK printed the failing row');

# a dry run of a row
run(q{SELECT stage.check_row('leak', '{"id": "9", "name": "ZQXMARK Zed", "code": "ZQXMARK-9", "born": "ZQXMARK"}')});

# everything a reader can see
run(q{SELECT * FROM leak_t});
run(q{SELECT * FROM leak_direct});
run(q{SELECT * FROM stage.quarantine});
run(q{SELECT row_data, reasons FROM stage.quarantine_log});
run(q{SELECT * FROM stage.dlq_summary});
run(q{SELECT * FROM stage.batches});
run(q{SELECT * FROM stage.rule_stats});

unlike($client, qr/$marker/i, 'no client output holds a raw value of a masked column');

$log = slurp_file($node->logfile);
unlike($log, qr/$marker/i, 'the server log holds no raw value of a masked column');
unlike($log, qr/SECRETKEYBYTES|$keyhex/i, 'nor the key');

# the raw values are kept, for the owner: the marker was there to be found
like($node->safe_psql('postgres', q{SELECT string_agg(raw_data::text, ' ') FROM stage.quarantine_log}),
	qr/ZQXMARK/, 'control: quarantine_log.raw_data holds the raw rows');

$node->stop;
done_testing();
