
# Copyright (c) the stage authors
#
# 017_lifecycle_adversarial.pl: the quarantine's lifecycle
# (docs/quarantine.md: stage.repair, stage.repair_where, stage.dismiss,
# stage.replay, supersession, stage.trace and the views of the items)
# against hostile owners, hostile input and the roles around a pipeline: a
# hostile owner (mal), a victim owner (vic), a producer (feed), an analyst
# (ana, member of stage_analyst), a stranger with nothing but PUBLIC's
# rights (str).  Each part is named after what it holds against:
#
#   owner code      repair_where expressions calling functions of a hostile
#                   owner, in a superuser's call: escalation (SET ROLE,
#                   set_config('role'), SET SESSION AUTHORIZATION, ALTER
#                   SYSTEM in a function, another owner's table read by a
#                   SECURITY INVOKER function, COPY TO PROGRAM, pg_read_file,
#                   lo_import, dblink, grants, stage's catalog), settings
#                   meant to outlive the call (search_path,
#                   statement_timeout, work_mem), re-entry into the same
#                   pipeline (run_batch, repair, repair_where, dismiss,
#                   replay, preview, check_row: 55006) and changes to another
#                   owner's (42501); uncaught, the escalation or the
#                   re-entry fails the whole call and nothing lands
#   roles           producer, analyst, stranger and another owner can
#                   repair, repair_where, dismiss, replay or trace nothing
#                   of a pipeline; analysts read statuses and notes but no
#                   raw value of a masked column, also when the owner's
#                   corrections carry one and the copy fails on it
#   forgery         a producer writes no _stage_ column, no catalog row, no
#                   internal function; it closes an item only by re-sending
#                   the key (a later landing row that moves clean): not
#                   with an earlier row, a row the target refuses, a NULL
#                   key; trace follows the real chain
#   arguments       NULLs, empty arrays, 100,000 ids, ids of another
#                   pipeline, a 10 MB correction, _stage_ columns,
#                   non-object and deeply nested JSON, a jsonb pipeline, a
#                   1 MB note, 100 KB and hostile repair_where expressions:
#                   every call returns or fails with an SQLSTATE, quickly
#   worker          repairs, repair_wheres, dismissals and replays while the
#                   background worker moves a producer's stream: the books
#                   balance and every item's status agrees with where its
#                   successor went
#
# Found while writing this file, fixed, and checked ("fixed: ..."):
# stage.dismiss took a note of tabs and newlines only (btrim trimmed spaces
# alone); a repair_where expression with a set-returning function gave an
# item no value (the call then failed with a misleading 22004) or several
# (one of them taken silently): refused now with 22023; an open item that a
# replay quarantined again lost its pending repair copy and its note (its
# record was replaced), so the copy superseded it at best (by key) and, in
# a pipeline without a key, never closed it.
#
# An item dismissed while its repair copy was pending stayed dismissed, and
# the copy, a landing row of its own, loaded all the same: dismissal of such
# an item is now refused (55000) until a batch has moved the copy.
#
# The server logs no statements (log_statement = none); markers that must
# not be seen are assembled by the server ('QZ' || 'SSN'), never written
# whole into a statement.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StageTest;

my $t_start = time;
my $node = PostgreSQL::Test::Cluster->new('lifecycle_adversarial');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage'
stage.naptime = '100ms'
lc_messages = 'C'
log_min_messages = warning
log_statement = none
max_connections = 40
});
$node->start;
# as_role, safe_as, sqlstate_as, su, server_ok: StageTest's, on this node and database lca
StageTest::adversary($node, 'lca');
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# ------------------------------------------------------------ helpers

# status of the items of a pipeline: "landing_id:status[:successor]" by id
sub items
{
	my ($pipeline, %o) = @_;
	return su(
		qq{SELECT string_agg(landing_id || ':' || status || COALESCE(':' || successor_id, ''), ' ' ORDER BY landing_id)
			 FROM stage.quarantine_all WHERE pipeline = '$pipeline'}, %o);
}

# ------------------------------------------------------------ setup

$node->safe_psql(
	'postgres', q{
CREATE ROLE mal LOGIN;
CREATE ROLE vic LOGIN;
CREATE ROLE feed LOGIN;
CREATE ROLE ana LOGIN;
CREATE ROLE str LOGIN;
CREATE DATABASE lca;
});
su(
	q{
CREATE EXTENSION stage;
SELECT * FROM stage.create_roles();
GRANT stage_analyst TO ana;
CREATE SCHEMA mal AUTHORIZATION mal;
CREATE SCHEMA vic AUTHORIZATION vic;
CREATE TABLE vic.secret (s text);
INSERT INTO vic.secret VALUES ('untouched');
ALTER TABLE vic.secret OWNER TO vic;
CREATE TABLE mal.q (id integer PRIMARY KEY, cur text, memo text, _stage_id bigint);
CREATE TABLE mal.tried (what text, state text, cu name, su name);
ALTER TABLE mal.q OWNER TO mal;
ALTER TABLE mal.tried OWNER TO mal;
CREATE TABLE vic.q (id integer PRIMARY KEY, ssn text, cur text CHECK (cur <> 'ZZZ'), _stage_id bigint);
ALTER TABLE vic.q OWNER TO vic;
});
safe_as(
	'vic', q{
SELECT stage.create_pipeline('vq', 'vic.q', key => '{id}');
SELECT stage.add_rule('vq', 'cur', 'enum', '{"values": ["EUR", "USD", "ZZZ"]}');
SELECT stage.add_rule('vq', 'ssn', 'regex', '{"pattern": "^[0-9]{3}-[0-9]{2}-[0-9]{4}$"}');
SELECT stage.add_mask('vq', 'ssn', 'constant', '{"value": "[hidden]"}');
SELECT stage.grant_producer('vq', 'feed');
});
safe_as(
	'mal', q{
SELECT stage.create_pipeline('mq', 'mal.q', key => '{id}');
SELECT stage.add_rule('mq', 'cur', 'enum', '{"values": ["EUR", "USD"]}');
SELECT stage.grant_producer('mq', 'feed');
});
safe_as('feed', q{
INSERT INTO stage_landing.vq (id, ssn, cur) VALUES
	('1', '123-45-6789', 'XXX'), ('2', '123-45-6789', 'YYY'), ('3', '123-45-6789', 'EUR');
INSERT INTO stage_landing.mq (id, cur, memo)
SELECT g::text, CASE WHEN g % 2 = 0 THEN 'EUR' ELSE 'bad' END, 'm' || g FROM generate_series(1, 30) g;
});
is(safe_as('vic', q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined FROM stage.run_batch('vq')}),
	'3 1 2', 'setup: vq quarantines two rows');
is(safe_as('mal', q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined FROM stage.run_batch('mq')}),
	'30 15 15', 'setup: mq quarantines fifteen rows');
my $vq_items = items('vq');
is($vq_items, '1:open 2:open', 'setup: vq has two open items');

# ============================================== 1. owner code (repair_where)

my $pwned = $node->basedir . '/qz_pwned';
my @attempts = (
	[ 'SET ROLE to another owner', q{SET ROLE vic}, qr/^42501$/ ],
	[ 'set_config role', q{PERFORM pg_catalog.set_config('role', 'vic', false)}, qr/^42501$/ ],
	[ 'SET SESSION AUTHORIZATION', q{SET SESSION AUTHORIZATION vic}, qr/^42501$/ ],
	[ 'ALTER SYSTEM in a function of the owner', q{PERFORM mal.alter_sys()}, qr/^(25001|42501)$/ ],
	[ 'read another owner\'s table through a SECURITY INVOKER function', q{PERFORM mal.peek()}, qr/^42501$/ ],
	[ 'write another owner\'s table', q{UPDATE vic.secret SET s = 'owned'}, qr/^42501$/ ],
	[ 'COPY TO PROGRAM through a function', q{PERFORM mal.run_program()}, qr/^42501$/ ],
	[ 'pg_read_file', q{PERFORM pg_catalog.pg_read_file('postgresql.conf')}, qr/^42501$/ ],
	[ 'lo_import of a server file', q{PERFORM pg_catalog.lo_import('/etc/passwd')}, qr/^42501$/ ],
	[ 'CREATE EXTENSION dblink', q{CREATE EXTENSION dblink}, qr/^(42501|58P01|0A000)$/ ],
	[ 'make itself superuser', q{ALTER ROLE mal SUPERUSER}, qr/^42501$/ ],
	[ 'grant itself the victim owner', q{GRANT vic TO mal}, qr/^42501$/ ],
	[ 'create a temporary table', q{CREATE TEMP TABLE qz_t (i integer)}, qr/^42501$/ ],
	[ 'write stage\'s catalog', q{UPDATE stage.quarantine_log SET status = 'dismissed'}, qr/^42501$/ ],
	[ 're-enter: run_batch', q{PERFORM stage.run_batch('mq')}, qr/^55006$/ ],
	[ 're-enter: repair', q{PERFORM stage.repair('mq', ARRAY[1::bigint], '{"cur": "EUR"}')}, qr/^55006$/ ],
	[ 're-enter: repair_where', q{PERFORM stage.repair_where('mq', 'cur_enum', '{"cur": "''EUR''"}')}, qr/^55006$/ ],
	[ 're-enter: dismiss', q{PERFORM stage.dismiss('mq', ARRAY[1::bigint], 'from inside')}, qr/^55006$/ ],
	[ 're-enter: replay', q{PERFORM stage.replay('mq')}, qr/^55006$/ ],
	[ 're-enter: preview', q{PERFORM stage.preview('mq', '{"id": "1"}')}, qr/^55006$/ ],
	[ 're-enter: check_row', q{PERFORM stage.check_row('mq', '{"id": "1"}')}, qr/^55006$/ ],
	[ 'dismiss another owner\'s items', q{PERFORM stage.dismiss('vq', ARRAY[1::bigint, 2], 'from mal')}, qr/^42501$/ ],
	[ 'repair another owner\'s items', q{PERFORM stage.repair('vq', ARRAY[1::bigint], '{"cur": "EUR"}')}, qr/^42501$/ ],
	[ 'set_config search_path, statement_timeout, work_mem, stage.batch_size',
		q{PERFORM pg_catalog.set_config('search_path', 'mal, public', false),
		pg_catalog.set_config('statement_timeout', '123s', false),
		pg_catalog.set_config('work_mem', '77MB', false),
		pg_catalog.set_config('stage.batch_size', '7', false)}, qr/^ok$/ ]);
my $hostile_body = join(
	"\n",
	map {
		my ($what, $stmt) = @$_;
		"\tBEGIN\n\t\t$stmt;\n\t\ts := 'ok';\n\tEXCEPTION WHEN OTHERS THEN\n\t\ts := SQLSTATE;\n\tEND;\n"
		  . "\tINSERT INTO mal.tried VALUES (\$w\$$what\$w\$, s, current_user, session_user);"
	} @attempts);
safe_as(
	'mal', qq{
CREATE FUNCTION mal.alter_sys() RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
	EXECUTE 'ALTER SYSTEM SET work_mem = ''1GB''';
END \$f\$;
CREATE FUNCTION mal.peek() RETURNS text LANGUAGE plpgsql SECURITY INVOKER AS \$f\$
BEGIN
	RETURN (SELECT s FROM vic.secret);
END \$f\$;
CREATE FUNCTION mal.run_program() RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
	COPY (SELECT 1) TO PROGRAM 'touch $pwned';
END \$f\$;
CREATE FUNCTION mal.hostile(v text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE
	s text;
BEGIN
$hostile_body
	RETURN 'EUR';
END \$f\$;
CREATE FUNCTION mal.grab(v text) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN
	CREATE ROLE qz_grab SUPERUSER LOGIN;
	RETURN 'EUR';
END \$f\$;
CREATE FUNCTION mal.reenter(v text) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM stage.run_batch('mq');
	RETURN 'EUR';
END \$f\$;
CREATE FUNCTION mal.undismiss(v text) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM stage.dismiss('mq', ARRAY[1::bigint, 3], 'from inside');
	RETURN 'EUR';
END \$f\$;
});

{
	my $landing_before = su(q{SELECT count(*) FROM stage_landing.mq});
	my $show = q{SELECT concat_ws(' / ', current_user, session_user, current_setting('search_path'),
		current_setting('statement_timeout'), current_setting('work_mem'), current_setting('stage.batch_size'),
		current_setting('role'))};
	my ($ret, $out, $err) = $node->psql(
		'lca', qq{
SET work_mem = '5MB';
$show;
SELECT string_agg(outcome, ',') FROM stage.repair_where('mq', 'cur_enum', '{"cur": "mal.hostile(cur)"}', 'hostile', dry_run => true);
$show;
SELECT count(*) FROM stage.repair_where('mq', 'cur_enum', '{"cur": "mal.hostile(cur)"}', 'hostile fix');
$show;
});
	is($ret, 0, 'owner code: a superuser runs repair_where with a hostile owner\'s expression, dry and real') or diag($err);
	my ($before, $dry, $after_dry, $real, $after) = split /\n/, $out;
	like($before // '', qr{^postgres / postgres / "\$user", public / 0 / 5MB / 10000 / none$}, 'owner code: control: the superuser\'s settings before');
	is($dry // '', join(',', ('clean') x 15), 'owner code: the dry run says the fifteen corrected copies would load');
	is($after_dry, $before, 'owner code: no setting made by the expression outlives the dry run');
	is($real // '', '15', 'owner code: the real repair_where repairs fifteen items');
	is($after, $before, 'owner code: no setting outlives the real call (search_path, statement_timeout, work_mem, stage.batch_size, role)');
	is(su(q{SELECT count(*) FROM stage_landing.mq}), $landing_before + 15, 'owner code: fifteen copies landed');

	my %got = map { my ($w, $s) = split /\|/; ($w => $s) }
	  split /\n/, su(q{SELECT what, string_agg(DISTINCT state, ',') FROM mal.tried GROUP BY what});
	is(scalar(keys %got), scalar(@attempts), 'owner code: control: the function recorded every attempt');
	for my $a (@attempts)
	{
		my ($what, undef, $want) = @$a;
		like($got{$what} // 'not recorded', $want, "owner code: inside repair_where: $what gets $want");
	}
	is(su(q{SELECT string_agg(DISTINCT cu || ' ' || su, ',') FROM mal.tried}), 'mal postgres',
		'owner code: the expression always ran as the owner, the superuser only the session user');
	is( su(
			q{SELECT concat_ws(' ',
			(SELECT count(*) FROM pg_roles WHERE rolname LIKE 'qz%'),
			(SELECT rolsuper FROM pg_roles WHERE rolname = 'mal'),
			pg_has_role('mal', 'vic', 'MEMBER'),
			(SELECT s FROM vic.secret),
			(SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem'),
			(SELECT count(*) FROM pg_extension WHERE extname = 'dblink'))}),
		'0 f f untouched 0 0', 'owner code: nothing escalated: no role, no superuser, no membership, vic\'s table, no ALTER SYSTEM, no dblink');
	ok(!-e $pwned, 'owner code: COPY TO PROGRAM ran no program');
	is(items('vq'), $vq_items, 'owner code: the other owner\'s items are untouched');
	is(su(q{SELECT count(*) FROM stage.quarantine_all WHERE pipeline = 'mq' AND status = 'dismissed'}), '0',
		'owner code: the re-entered dismiss closed nothing');

	# uncaught: the whole call fails and nothing lands
	safe_as('mal', q{INSERT INTO stage_landing.mq (id, cur) VALUES ('101', 'bad'), ('103', 'bad')});
	is(safe_as('mal', q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined FROM stage.run_batch('mq')}),
		'17 15 2', 'owner code: the next batch loads the fifteen copies (and quarantines two new rows)');
	my $l0 = su(q{SELECT count(*) FROM stage_landing.mq});
	my $i0 = items('mq');
	for my $c ([ 'mal.grab(cur)', '42501', 'an uncaught CREATE ROLE' ],
		[ 'mal.reenter(cur)', '55006', 'an uncaught re-entry (run_batch)' ],
		[ 'mal.undismiss(cur)', '55006', 'an uncaught re-entry (dismiss)' ])
	{
		my ($fn, $state, $what) = @$c;
		is(sqlstate_as('postgres', qq{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "$fn"}', 'x')}),
			$state, "owner code: $what fails the superuser's repair_where ($state)");
		is(sqlstate_as('mal', qq{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "$fn"}', 'x')}),
			$state, "owner code: ... and the owner's ($state)");
	}
	is(su(q{SELECT count(*) FROM stage_landing.mq}) . ' ' . items('mq'), "$l0 $i0",
		'owner code: the failed calls landed nothing and changed no item');
	is(su(q{SELECT count(*) FROM pg_roles WHERE rolname = 'qz_grab'}), '0', 'owner code: no role was made');
	is(safe_as('mal', q{SELECT count(*) FROM stage.repair_where('mq', 'cur_enum', '{"cur": "upper(''eur'')"}', 'plain')}),
		'2', 'owner code: after the failures, repair_where works again in the same pipeline');

	# the copies move: the items are repaired, trace follows them
	is(safe_as('postgres', q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('mq')}),
		'2 2', 'owner code: the next batch loads the two plain copies');
	is(su(q{SELECT count(*) FROM stage.quarantine_all WHERE pipeline = 'mq' AND status <> 'repaired'}), '0',
		'owner code: every item is repaired');
	is( su(
			q{SELECT count(*) FROM stage.quarantine_all q
			   WHERE pipeline = 'mq' AND NOT EXISTS (SELECT 1 FROM mal.q t WHERE t._stage_id = q.successor_id)}),
		'0', 'owner code: every repaired item\'s successor is in the target');
	is(su(q{SELECT string_agg(outcome || ':' || COALESCE(status, '-'), ',') FROM stage.trace('mq', 1)}),
		'quarantine:repaired,target:-', 'owner code: trace follows the item to its copy in the target');
	server_ok('owner code');
}

# ============================================== 2. roles

{
	for my $role ('mal', 'feed', 'ana', 'str')
	{
		is(sqlstate_as($role, q{SELECT * FROM stage.repair('vq', ARRAY[1::bigint], '{"cur": "EUR"}')}),
			'42501', "roles: $role may not repair vic's items (42501)");
		is(sqlstate_as($role, q{SELECT * FROM stage.repair('vq', ARRAY[1::bigint], '{"cur": "EUR"}', dry_run => true)}),
			'42501', "roles: $role may not even dry-run a repair (42501)");
		is(sqlstate_as($role, q{SELECT * FROM stage.repair_where('vq', 'cur_enum', '{"cur": "''EUR''"}', dry_run => true)}),
			'42501', "roles: $role may not repair_where (42501)");
		is(sqlstate_as($role, q{SELECT stage.dismiss('vq', ARRAY[1::bigint, 2], 'not mine')}),
			'42501', "roles: $role may not dismiss (42501)");
		is(sqlstate_as($role, q{SELECT * FROM stage.replay('vq')}), '42501', "roles: $role may not replay (42501)");
		is(sqlstate_as($role, q{SELECT * FROM stage.trace('vq', 1)}), '42501', "roles: $role may not trace (42501)");
	}
	is(items('vq'), $vq_items, 'roles: the refused calls changed nothing');

	# the owner repairs with a raw ssn (the markers made by the server); the
	# copy fails on the ssn rule and on the target's CHECK; analysts read the
	# items, masked
	safe_as('vic', q{SELECT * FROM stage.repair('vq', ARRAY[1::bigint], jsonb_build_object('ssn', 'QZ' || 'FIXSSN', 'cur', 'EUR'), 'partner said so')});
	safe_as('vic', q{SELECT * FROM stage.repair('vq', ARRAY[2::bigint], jsonb_build_object('ssn', '999-99-' || '9999', 'cur', 'ZZZ'), 'try two')});
	safe_as('feed', q{INSERT INTO stage_landing.vq (id, ssn, cur) VALUES ('7', 'QZ' || 'FEEDSSN', 'EUR')});
	is(safe_as('vic', q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined FROM stage.run_batch('vq')}),
		'3 0 3', 'roles: the two copies fail (the ssn rule, the target\'s CHECK) and so does the new row');
	is(items('vq'), '1:open:4 2:open:5 4:open 5:open 6:open', 'roles: the originals stay open with their copies as successors');
	safe_as('vic', q{SELECT stage.dismiss('vq', ARRAY[6::bigint], 'dismissed by vic')});
	for my $view ('stage.quarantine', 'stage.quarantine_all', 'stage.dlq_summary', 'stage.health', 'stage.pipelines', 'stage.batches')
	{
		my $seen = safe_as('ana', qq{SELECT string_agg(x::text, E'\\n') FROM $view x WHERE pipeline = 'vq'});
		isnt($seen, '', "roles: control: ana reads $view");
		unlike($seen, qr/QZ|999-99/i, "roles: ana's $view shows no raw ssn (of the landing row, the correction or the copy)");
	}
	my %col = map { my ($k, $v) = split /\|/, $_, 2; ($k => $v) } split /\n/, safe_as('ana', q{
		SELECT landing_id, concat_ws(' ', status, value, message, row_data->>'ssn', note, closed_by)
		  FROM stage.quarantine_all WHERE pipeline = 'vq' ORDER BY landing_id});
	like($col{4} // '', qr/^open \[hidden\] .*\[hidden\]$/, 'roles: the failing copy\'s value and row_data show [hidden]');
	like($col{5} // '', qr/withheld/, 'roles: the copy refused by the target\'s CHECK shows the message withheld');
	like($col{1} // '', qr/^open .* partner said so$/, 'roles: ana reads the owner\'s note (documented)');
	like($col{6} // '', qr/^dismissed .*dismissed by vic vic$/, 'roles: ana reads the dismissal, its note and who');
	my $raw = safe_as('vic', q{SELECT string_agg(q::text, E'\n') FROM stage.quarantine_raw('vq') q});
	like($raw, qr/QZFIXSSN.*QZFEEDSSN/s, 'roles: control: the owner reads the raw values with quarantine_raw');
	unlike(safe_as('vic', q{SELECT string_agg(x::text, E'\n') FROM stage.quarantine_all x WHERE pipeline = 'vq'}), qr/QZ/,
		'roles: the owner\'s masked view shows no raw ssn either');
	unlike(slurp_file($node->logfile), qr/QZ(FIXSSN|FEEDSSN)/, 'roles: the server log holds no raw ssn');
}

# ============================================== 3. forgery

{
	my $l = 'stage_landing.mq';
	for my $c ('_stage_id', '_stage_txid', '_stage_received_at')
	{
		is(sqlstate_as('feed', qq{INSERT INTO $l (id, cur, $c) VALUES ('201', 'EUR', DEFAULT)}),
			'42501', "forgery: the producer may not write $c (42501)");
	}
	is(sqlstate_as('feed', qq{UPDATE $l SET cur = 'EUR'}), '42501', 'forgery: the producer may not update landing rows');
	is(sqlstate_as('feed', qq{DELETE FROM $l}), '42501', 'forgery: nor delete them');
	is(sqlstate_as('feed', q{UPDATE stage.quarantine_log SET status = 'superseded'}), '42501', 'forgery: nor write quarantine_log');
	is(sqlstate_as('feed', q{INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id) VALUES (1, 1, 1)}),
		'42501', 'forgery: nor insert an item');
	for my $f (q{stage._do_dismiss('mq', ARRAY[1::bigint], 'x')}, q{stage._repair_values('mq', ARRAY[1::bigint], 'cur')},
		q{stage._replay('mq', ARRAY[1::bigint], false)}, q{stage._do_repair('mq', ARRAY[1::bigint], '{"cur": "EUR"}', NULL, false)})
	{
		is(sqlstate_as('feed', "SELECT * FROM $f"), '42501', "forgery: the producer may not call $f");
	}

	# supersession: items with keys 301..305, then what a producer may try
	safe_as('feed', qq{INSERT INTO $l (id, cur) VALUES ('301', 'bad'), ('302', 'bad'), ('303', 'bad'), ('304', 'bad'), (NULL, 'bad')});
	safe_as('mal', q{SELECT stage.run_batch('mq')});
	my %id = map { my ($k, $v) = split /\|/; ($k // 'null' => $v) } split /\n/,
	  su(qq{SELECT COALESCE(id, 'null'), _stage_id FROM $l WHERE id IN ('301', '302', '303', '304') OR id IS NULL});
	# an earlier landing row (held open in a transaction) moves clean after the item
	my $early = $node->background_psql('lca', connstr => $node->connstr('lca') . ' user=feed');
	$early->query_safe(qq{BEGIN; INSERT INTO $l (id, cur) VALUES ('305', 'EUR')});
	safe_as('feed', qq{INSERT INTO $l (id, cur) VALUES ('305', 'bad')});
	safe_as('mal', q{SELECT stage.run_batch('mq')});
	$early->query_safe('COMMIT');
	$early->quit;
	$id{305} = su(qq{SELECT max(_stage_id) FROM $l WHERE id = '305'});
	# the re-sends: 301 as 0301 (the same integer key), 302 bad again, 303
	# clean per the contract but refused by the target (a CHECK added), a
	# NULL key clean (no key: closes nothing)
	su(q{ALTER TABLE mal.q ADD CONSTRAINT memo_ok CHECK (memo IS DISTINCT FROM 'refused')});
	safe_as('feed', qq{INSERT INTO $l (id, cur, memo) VALUES ('0301', 'EUR', NULL), ('302', 'bad', NULL), ('303', 'EUR', 'refused'), (NULL, 'EUR', NULL)});
	my $res = safe_as('mal', q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('mq')});
	is($res, '5 2', 'forgery: the batch takes the early 305 and the four re-sends; 0301 and the early 305 load');
	my $st = su(qq{SELECT string_agg(l.id || ':' || q.status, ' ' ORDER BY l.id) FROM stage.quarantine_all q
		JOIN $l l ON l._stage_id = q.landing_id WHERE q.pipeline = 'mq' AND q.landing_id IN ($id{301}, $id{302}, $id{303}, $id{304}, $id{null}, $id{305})});
	is($st, '301:superseded 302:open 303:open 304:open 305:open',
		'forgery: only the later clean row of the same key supersedes (0301); a bad one, a refused one, a NULL key, an earlier row close nothing');
	is(su(qq{SELECT status FROM stage.quarantine_all WHERE pipeline = 'mq' AND landing_id = $id{null}}), 'open',
		'forgery: the NULL key\'s item stays open');
	is( su(
			qq{SELECT string_agg(landing_row || ':' || outcome || ':' || COALESCE(status, '-'), ',') FROM stage.trace('mq', $id{301})}),
		"$id{301}:quarantine:superseded," . su(qq{SELECT _stage_id FROM $l WHERE id = '0301'}) . ':target:-',
		'forgery: trace follows the superseded item to the re-sent row in the target');
	is(su(qq{SELECT t.id FROM mal.q t JOIN stage.quarantine_all q ON q.successor_id = t._stage_id WHERE q.landing_id = $id{301}}),
		'301', 'forgery: the successor in the target has the same key');
	su(q{ALTER TABLE mal.q DROP CONSTRAINT memo_ok});
}

# ============================================== 4. worst arguments

{
	my @calls = (
		# repair
		[ 'mal', q{SELECT * FROM stage.repair(NULL, ARRAY[1::bigint], '{"cur": "EUR"}')}, '22004', 'repair: NULL pipeline' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', NULL, '{"cur": "EUR"}')}, '22004', 'repair: NULL ids' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], NULL)}, '22004', 'repair: NULL corrections' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[NULL::bigint], '{"cur": "EUR"}')}, 'no error', 'repair: an array of NULL' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', '{}', '{"cur": "EUR"}')}, 'no error', 'repair: an empty array' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{}')}, '22023', 'repair: an empty object' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '[{"cur": "EUR"}]')}, '22023', 'repair: an array' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '"EUR"')}, '22023', 'repair: a string' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], 'null')}, '22023', 'repair: JSON null' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"_stage_id": "1"}')}, '42703', 'repair: _stage_id' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"_stage_source": "x"}')}, '42703', 'repair: _stage_source' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"_stage_txid": "1"}')}, '42703', 'repair: _stage_txid' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"ctid": "(0,1)"}')}, '42703', 'repair: a system column' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"cur": {"a": 1}}')}, '22023', 'repair: an object value' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"cur": [1, 2]}')}, '22023', 'repair: an array value' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], jsonb_build_object('cur', (repeat('[', 5000) || repeat(']', 5000))::jsonb))}, '22023', 'repair: a deeply nested value' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], (repeat('{"a": ', 20000) || '1' || repeat('}', 20000))::jsonb)}, qr/^(22023|42703|54001)$/, 'repair: deeply nested corrections' ],
		[ 'mal', q{SELECT * FROM stage.repair('mq', ARRAY[1::bigint], '{"cur": "EUR"}', dry_run => NULL)}, 'no error', 'repair: dry_run NULL' ],
		# repair_where
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', NULL, '{"cur": "cur"}')}, '22004', 'repair_where: NULL rule' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', NULL)}, '22004', 'repair_where: NULL fix' ],
		[ 'mal', q{SELECT * FROM stage.repair_where(NULL, 'cur_enum', '{"cur": "cur"}')}, '22004', 'repair_where: NULL pipeline' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '[]')}, '22023', 'repair_where: an array' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": 1}')}, '22023', 'repair_where: a number for an expression' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": null}')}, '22023', 'repair_where: a JSON null for an expression' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "upper(cur"}')}, '22023', 'repair_where: unbalanced parentheses' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "cur)"}')}, '22023', 'repair_where: a closing parenthesis' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "true) OR (true"}')}, '22023', 'repair_where: true) OR (true' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "''EUR'' -- ) x"}', dry_run => true)}, 'no error', 'repair_where: a -- comment (ends with its line)' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "cur /* unterminated"}')}, qr/^(22023|42601)$/, 'repair_where: an unterminated comment' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "cur */ ) x"}')}, qr/^(22023|42601)$/, 'repair_where: the end of a comment' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "1; DROP TABLE mal.q"}')}, qr/^(22023|42601)$/, 'repair_where: two statements' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "(SELECT s FROM vic.secret)"}')}, '22023', 'repair_where: a subquery' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "EXISTS (SELECT 1)"}')}, '22023', 'repair_where: EXISTS' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "count(*)"}')}, '22023', 'repair_where: an aggregate' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "$1"}')}, '22023', 'repair_where: a parameter' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "_stage_id::text"}')}, '22023', 'repair_where: a _stage_ column' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "ctid::text"}')}, '42703', 'repair_where: a system column' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "\"?ord\"::text"}')}, '42703', 'repair_where: the statement\'s own row number' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "u.cur"}')}, '22023', 'repair_where: a qualified column' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "nope"}')}, '42703', 'repair_where: an unknown column' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"_stage_id": "cur"}')}, '42703', 'repair_where: a fix for a _stage_ column' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "pg_sleep(0)::text || cur"}', dry_run => true)}, 'no error', 'repair_where: control: a function call' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', jsonb_build_object('cur', repeat('upper(', 20000) || 'cur' || repeat(')', 20000)), dry_run => true)}, qr/^(22023|42601|54001|no error)$/, 'repair_where: a 100 KB nested expression' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', jsonb_build_object('cur', '''' || repeat('x', 100000) || ''''), dry_run => true)}, 'no error', 'repair_where: a 100 KB literal' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'cur_enum', jsonb_build_object('cur', repeat('cur || ', 15000) || 'cur'), dry_run => true)}, qr/^(22023|54001|no error)$/, 'repair_where: a 100 KB chain of operators' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mq', 'no_such_rule', '{"cur": "cur"}')}, 'no error', 'repair_where: a rule without items' ],
		[ 'mal', q{SELECT * FROM stage.repair_where('mj', 'x', '{"v": "v"}')}, '0A000', 'repair_where: a jsonb pipeline' ],
		# dismiss
		[ 'mal', q{SELECT stage.dismiss('mq', NULL, 'x')}, '22004', 'dismiss: NULL ids' ],
		[ 'mal', q{SELECT stage.dismiss('mq', ARRAY[1::bigint], NULL)}, '22004', 'dismiss: NULL note' ],
		[ 'mal', q{SELECT stage.dismiss('mq', ARRAY[1::bigint], E' \t\n')}, '22004', 'dismiss: a blank note' ],
		[ 'mal', q{SELECT stage.dismiss(NULL, ARRAY[1::bigint], 'x')}, '22004', 'dismiss: NULL pipeline' ],
		[ 'mal', q{SELECT stage.dismiss('mq', '{}', 'x')}, 'no error', 'dismiss: an empty array' ],
		[ 'mal', q{SELECT stage.dismiss('mq', ARRAY[NULL::bigint], 'x')}, 'no error', 'dismiss: an array of NULL' ],
		[ 'mal', q{SELECT stage.dismiss('nope', ARRAY[1::bigint], 'x')}, '42704', 'dismiss: an unknown pipeline' ],
		[ 'mal', q{SELECT * FROM stage.repair('nope', ARRAY[1::bigint], '{"cur": "EUR"}')}, '42704', 'repair: an unknown pipeline' ]);

	su(q{CREATE TABLE mal.j (id integer PRIMARY KEY, v text)});
	su(q{ALTER TABLE mal.j OWNER TO mal});
	safe_as('mal', q{SELECT stage.create_pipeline('mj', 'mal.j', key => '{id}', format => 'jsonb');
		SELECT stage.add_rule('mj', 'v', 'enum', '{"values": ["ok"]}')});
	my $vic_before = items('vq');
	my $mq_before = items('mq');
	for my $c (@calls)
	{
		my ($role, $sql, $want, $what) = @$c;
		my $t0 = time;
		my $got = sqlstate_as($role, $sql);
		my $took = time - $t0;
		if (ref $want)
		{
			like($got, $want, "arguments: $what ($got)");
		}
		else
		{
			is($got, $want, "arguments: $what ($want)");
		}
		cmp_ok($took, '<', 5, sprintf('arguments: ... in %.2f s', $took)) if $took >= 5;
	}
	is(items('mq'), $mq_before, 'arguments: none of the calls above changed an item of mq');
	is(su(q{SELECT count(*) FROM mal.q}) > 0 ? 'there' : 'gone', 'there', 'arguments: mal.q is still there');

	# ids: 100,000, with the other pipeline's among them
	safe_as('feed', q{INSERT INTO stage_landing.mq (id, cur, memo) VALUES ('401', 'bad', 'big'), ('402', 'bad', NULL), ('403', 'bad', NULL)});
	safe_as('mal', q{SELECT stage.run_batch('mq')});
	my ($i401, $i402, $i403) = split /\n/, su(q{SELECT _stage_id FROM stage_landing.mq WHERE id IN ('401', '402', '403') ORDER BY id});
	my $t0 = time;
	my $n = safe_as('mal', qq{SELECT count(*) FROM stage.repair('mq', ARRAY(SELECT generate_series(1, 100000)::bigint), '{"cur": "EUR"}', dry_run => true)});
	my $took = time - $t0;
	is($n, su(q{SELECT count(*) FROM stage.quarantine WHERE pipeline = 'mq'}), 'arguments: a dry repair of 100,000 ids takes exactly the open items of mq');
	cmp_ok($took, '<', 10, sprintf('arguments: ... in %.1f s', $took));
	is(safe_as('mal', q{SELECT stage.dismiss('mq', ARRAY(SELECT generate_series(1, 100000)::bigint), 'all of them')}), $n,
		'arguments: a dismissal of 100,000 ids closes exactly the open items of mq');
	# that dismissed every open item of mq, but not vic's with the same ids
	is(items('vq'), $vic_before, 'arguments: 100,000 ids in mq\'s calls touched no item of vq (same landing ids)');
	is(su(q{SELECT count(*) FROM stage.quarantine WHERE pipeline = 'mq'}), '0', 'arguments: ... while every open item of mq was dismissed');

	# a 10 MB correction and a 1 MB note
	safe_as('feed', q{INSERT INTO stage_landing.mq (id, cur, memo) VALUES ('501', 'bad', NULL)});
	safe_as('mal', q{SELECT stage.run_batch('mq')});
	my $i501 = su(q{SELECT _stage_id FROM stage_landing.mq WHERE id = '501'});
	$t0 = time;
	is(safe_as('mal', qq{SELECT outcome FROM stage.repair('mq', ARRAY[${i501}::bigint], jsonb_build_object('cur', 'EUR', 'memo', repeat('m', 10 * 1024 * 1024)), repeat('n', 1024 * 1024))}),
		'clean', 'arguments: a 10 MB correction with a 1 MB note lands');
	is(safe_as('mal', q{SELECT rows_clean FROM stage.run_batch('mq')}), '1', 'arguments: ... and loads');
	cmp_ok(time - $t0, '<', 20, sprintf('arguments: ... in %.1f s', time - $t0));
	is(su(qq{SELECT length(memo) FROM mal.q WHERE id = 501}), 10 * 1024 * 1024, 'arguments: the 10 MB value is in the target whole');
	is(su(qq{SELECT status || ' ' || length(note) FROM stage.quarantine_all WHERE pipeline = 'mq' AND landing_id = $i501}),
		'repaired ' . (1024 * 1024), 'arguments: the item is repaired, with its 1 MB note');

	# a jsonb pipeline: corrections are payload keys; _stage_ keys stay in the payload
	safe_as('mal', q{INSERT INTO stage_landing.mj (payload) VALUES ('{"id": 1, "v": "bad"}'), ('{"id": 2, "v": "bad"}')});
	safe_as('mal', q{SELECT stage.run_batch('mj')});
	my ($j1, $j2) = split /\n/, su(q{SELECT _stage_id FROM stage_landing.mj ORDER BY _stage_id});
	my ($copy) = safe_as('mal', qq{SELECT repair_landing_id FROM stage.repair('mj', ARRAY[${j1}::bigint], '{"v": "ok", "_stage_id": 1, "_stage_source": "forged", "deep": {"a": [1, {"b": 2}]}}')});
	cmp_ok($copy, '>', $j2, 'arguments: the jsonb repair lands a copy under a new landing id');
	is(su(qq{SELECT (c.payload->>'_stage_id') || ' ' || (c._stage_source IS NOT DISTINCT FROM o._stage_source)
		FROM stage_landing.mj c, stage_landing.mj o WHERE c._stage_id = $copy AND o._stage_id = $j1}),
		'1 true', 'arguments: _stage_ keys of a jsonb correction stay in the payload (the source is the original\'s)');
	is(sqlstate_as('mal', q{SELECT * FROM stage.repair('mj', ARRAY[1::bigint], '[1]')}), '22023', 'arguments: a jsonb repair still wants an object');

	# a dismissal with a 1 MB note; the strangers' views
	safe_as('feed', q{INSERT INTO stage_landing.mq (id, cur) VALUES ('601', 'bad'), ('602', 'bad'), ('603', 'bad')});
	safe_as('mal', q{SELECT stage.run_batch('mq')});
	my ($i601, $i602, $i603) = split /\n/, su(q{SELECT _stage_id FROM stage_landing.mq WHERE id IN ('601', '602', '603') ORDER BY id});
	is(safe_as('mal', qq{SELECT stage.dismiss('mq', ARRAY[${i601}::bigint], repeat('d', 1024 * 1024))}), '1',
		'arguments: a dismissal with a 1 MB note');
	is(sqlstate_as('mal', qq{SELECT stage.dismiss('mq', ARRAY[${i602}::bigint], E' \\t\\n')}), '22004',
		'fixed: a note of white space only (tabs, newlines) is no note (22004)');
	is(safe_as('str', q{SELECT (SELECT count(*) FROM stage.quarantine_all) + (SELECT count(*) FROM stage.dlq_summary)
		+ (SELECT count(*) FROM stage.health)}), '0', 'arguments: a stranger sees no item, summary or health row');

	# an expression that makes no value, or two, for a row
	for my $e ([ 'generate_series(1, 0)::text', 'no value' ], [ 'generate_series(1, 2)::text', 'two values' ])
	{
		my ($expr, $what) = @$e;
		is(sqlstate_as('mal', qq{SELECT * FROM stage.repair_where('mq', 'cur_enum', '{"cur": "$expr"}', dry_run => true)}),
			'22023', "fixed: a set-returning expression that gives $what for an item is refused (22023)");
	}

	# a pending copy, then the item replayed (back to quarantine) or dismissed
	my ($c602, $c603) = split /\n/, safe_as('mal', qq{SELECT repair_landing_id FROM stage.repair('mq', ARRAY[${i602}::bigint, ${i603}], '{"cur": "EUR"}', 'copy') ORDER BY landing_id});
	is(safe_as('mal', qq{SELECT outcome FROM stage.replay('mq', ARRAY[${i603}::bigint])}), 'quarantine',
		'fixed: control: the replayed item goes back to quarantine');
	is(su(qq{SELECT concat_ws(' ', status, successor_id, note) FROM stage.quarantine_all WHERE pipeline = 'mq' AND landing_id = $i603}),
		"open $c603 copy", 'fixed: an item that a replay quarantines again keeps its pending repair copy and its note');
	is(sqlstate_as('mal', qq{SELECT stage.dismiss('mq', ARRAY[${i602}::bigint], 'never load this')}), '55000',
		'fixed: an item whose repair copy has not moved yet cannot be dismissed (the copy would load all the same)');
	is(safe_as('mal', q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('mq')}), '2 2', 'fixed: control: both copies load');
	is(su(qq{SELECT concat_ws(' ', status, successor_id, note) FROM stage.quarantine_all WHERE pipeline = 'mq' AND landing_id = $i603}),
		"repaired $c603 copy", 'fixed: ... and the replayed item is repaired by its copy');
	is(su(qq{SELECT concat_ws(' ', status, successor_id, note) FROM stage.quarantine_all WHERE pipeline = 'mq' AND landing_id = $i602}),
		"repaired $c602 copy", 'fixed: ... and the item that was not dismissed is repaired by its copy');

	server_ok('arguments');
}

# ============================================== 5. the worker

{
	$node->safe_psql('postgres', q{
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT shop_owner TO stage_worker;
CREATE ROLE producer LOGIN;
CREATE DATABASE shop;
});
	$node->safe_psql('shop', 'CREATE EXTENSION stage');
	$node->safe_psql('shop', StageTest::orders_sql());
	StageTest::serve_database($node, 'shop');
	$node->poll_query_until('shop', q{SELECT count(*) = 1 FROM stage.workers WHERE pid IS NOT NULL})
	  or die 'no worker';
	my $script = StageTest::write_producer($node->basedir, 100);
	my $prod = StageTest::producer($script, $node->connstr('shop') . ' user=producer', '-c', '2', '-R', '10', '-T', '20');
	$prod->start;
	my %did = (repair => 0, repair_where => 0, dismiss => 0, replay => 0);
	my @errors;
	my $t0 = time;
	while (time - $t0 < 18)
	{
		for my $op (
			[ 'repair', q{SELECT count(*) FROM stage.repair('orders', ARRAY(
				SELECT landing_id FROM stage.quarantine WHERE pipeline = 'orders' AND rule_name = 'currency_enum'
				 AND successor_id IS NULL ORDER BY random() LIMIT 5), '{"currency": "EUR"}', 'currency')} ],
			[ 'repair_where', q{SELECT count(*) FROM stage.repair_where('orders', 'amount_range', '{"amount": "abs(amount::numeric)::text"}', 'sign')} ],
			[ 'dismiss', q{SELECT stage.dismiss('orders', ARRAY(
				SELECT landing_id FROM stage.quarantine WHERE pipeline = 'orders' AND rule_name = 'code_regex'
				 AND successor_id IS NULL ORDER BY random() LIMIT 5), 'bad code')} ],
			[ 'replay', q{SELECT count(*) FROM stage.replay('orders', ARRAY(
				SELECT landing_id FROM stage.quarantine WHERE pipeline = 'orders' AND kind = 'type'
				 AND successor_id IS NULL ORDER BY random() LIMIT 3))} ])
		{
			my ($name, $sql) = @$op;
			my ($ret, $out, $err) = $node->psql('shop', $sql);
			if ($ret == 0) { $did{$name} += $out; }
			else { push @errors, "$name: $err"; }
		}
		usleep(100_000);
	}
	$prod->finish;
	is(join("\n", @errors), '', 'worker: repairs, repair_wheres, dismissals and replays beside the worker all succeed');
	cmp_ok($did{$_}, '>', 0, "worker: $_ closed or landed something ($did{$_})") for sort keys %did;
	# the last copies move, then the books
	StageTest::wait_drained($node, 'shop', 'orders');
	StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');
	my %bad = map { split /\|/ } split /\n/, $node->safe_psql(
		'shop', q{
	WITH q AS (SELECT q.* FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'orders')
	SELECT 'repaired without its successor in the target', count(*) FROM q
	 WHERE status = 'repaired' AND NOT EXISTS (SELECT 1 FROM public.orders t WHERE t._stage_id = q.successor_id)
	UNION ALL
	SELECT 'superseded by no later row of its key in the target', count(*) FROM q
	 WHERE status = 'superseded' AND NOT EXISTS (SELECT 1 FROM public.orders t
		WHERE t._stage_id = q.successor_id AND q.successor_id > q.landing_id
		  AND q.key = length(t.order_id::text) || ':' || t.order_id)
	UNION ALL
	SELECT 'open with its successor in the target', count(*) FROM q
	 WHERE status = 'open' AND EXISTS (SELECT 1 FROM public.orders t WHERE t._stage_id = q.successor_id)
	UNION ALL
	SELECT 'replayed but not in the target or the duplicates', count(*) FROM q
	 WHERE status = 'replayed' AND NOT EXISTS (SELECT 1 FROM public.orders t WHERE t._stage_id = q.landing_id)
	   AND NOT EXISTS (SELECT 1 FROM stage.duplicate_log d WHERE d.landing_id = q.landing_id AND d.pipeline_id = q.pipeline_id)
	UNION ALL
	SELECT 'closed without who and when', count(*) FROM q
	 WHERE status <> 'open' AND (closed_at IS NULL OR closed_by IS NULL)
	UNION ALL
	SELECT 'dismissed without the note', count(*) FROM q WHERE status = 'dismissed' AND note IS DISTINCT FROM 'bad code'});
	is($bad{$_}, '0', "worker: no item $_") for sort keys %bad;
	my $by = $node->safe_psql('shop', q{SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM (
		SELECT status, count(*) AS n FROM stage.quarantine_all WHERE pipeline = 'orders' GROUP BY status) s});
	note "orders items: $by";
	like($by, qr/repaired=\d+/, 'worker: control: items were repaired');
	$node->safe_psql('postgres', q{ALTER SYSTEM RESET stage.databases; SELECT pg_reload_conf();});
}

# ------------------------------------------------------------------ the end
server_ok('the end');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $started, 'the end: the server never restarted');
note sprintf('run time %.1f s', time - $t_start);
$node->stop;
done_testing();
