
# Copyright (c) the stage authors
#
# 016_transforms_adversarial.pl: the transform stage (docs/transforms.md)
# against hostile owners, hostile input and the roles around a pipeline: a
# hostile owner (mal), a victim owner (vic), a producer (feed), an analyst
# (ana, member of stage_analyst), a stranger with nothing but PUBLIC's
# rights (str), the owner of reference data (refown) and the worker role
# (wrk, a member of mal and vic).  Each part is named after what it holds
# against:
#
#   owner code      an expression transform whose function tries to escalate
#                   (roles, SET ROLE, ALTER SYSTEM, another owner's tables,
#                   stage's catalog, COPY TO PROGRAM), to change settings
#                   and to re-enter its pipeline, in a batch a superuser
#                   runs: nothing escalates, no setting outlives the batch,
#                   the rows that make it raise are quarantined as kind
#                   transform; uncaught, the escalation fails the batch whole
#   lookups         tables the owner cannot read, views and other relations,
#                   duplicate, NULL and huge keys and values, triggers and
#                   rules on the table, row-level security (the owner's view,
#                   not the caller's), a table dropped, revoked or turned
#                   into a view after the transform was added
#   read paths      stage.preview for owners and superusers only; check_row
#                   for producers and analysts without lookups and
#                   expressions, masked columns as "[masked]"
#   stage.transform the worst arguments from a role without privileges:
#                   every call returns or fails with an SQLSTATE, quickly
#   masking         transforms that fail on masked columns: values masked,
#                   messages withheld, nothing in the server log
#   landing columns add_landing_column with hostile names; the producers'
#                   privileges on them
#   worker          an expression that sleeps past stage.worker_batch_timeout
#
# Found while writing this file, fixed, and checked at its end ("fixed"):
# a regex_replace transform (and stage.regex_replace with flag g) could not
# be cancelled while it replaced (one global substitution of a value of
# many matches ran for as long as the value was long); the messages of the
# date and timestamp transforms quoted fields of the value ("day 30 out of
# range for 1985-02"), which analysts read for masked columns;
# add_landing_column accepted 63 multibyte characters and created a column
# of a shorter name; grant_producer and add_landing_column quoted a role
# name twice (%I of regrole::text), so a role whose name needs quotes could
# not be made a producer.
#
# The server logs no statements (log_statement = none), so what the log
# holds is what the server and stage emitted; markers that must not reach
# the log are assembled by the server ('QZ' || 'MAPRAW'), never written
# whole into a statement (a failed statement is logged).
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use Time::HiRes qw(usleep time);

my $t_start = time;
my $node = PostgreSQL::Test::Cluster->new('transforms_adversarial');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
stage.naptime = '100ms'
lc_messages = 'C'
log_min_messages = warning
log_statement = none
max_connections = 40
});
$node->start;
# as_role, safe_as, sqlstate_as, su, server_ok: StageTest's, on this node and database tfa
StageTest::adversary($node, 'tfa');

# ------------------------------------------------------------ helpers

sub landing
{
	my ($pipeline, %o) = @_;
	return su("SELECT landing FROM stage.pipeline WHERE name = '$pipeline'", %o);
}

# target rows, quarantined rows and landing rows of a pipeline
sub placed
{
	my ($pipeline, $target, %o) = @_;
	return su(
		qq{SELECT (SELECT count(*) FROM $target) || ' '
			|| (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = '$pipeline')
			|| ' ' || (SELECT count(*) FROM } . landing($pipeline, %o) . q{)}, %o);
}

# ------------------------------------------------------------ setup

$node->safe_psql(
	'postgres', q{
CREATE ROLE mal LOGIN;
CREATE ROLE vic LOGIN;
CREATE ROLE feed LOGIN;
CREATE ROLE ana LOGIN;
CREATE ROLE str LOGIN;
CREATE ROLE refown NOLOGIN;
CREATE ROLE wrk LOGIN;
CREATE DATABASE tfa;
CREATE DATABASE wdb;
});
for my $db ('tfa', 'wdb')
{
	su(
		q{
CREATE EXTENSION stage;
SELECT * FROM stage.create_roles();
GRANT stage_analyst TO ana;
CREATE SCHEMA mal AUTHORIZATION mal;
CREATE SCHEMA vic AUTHORIZATION vic;
CREATE SCHEMA ref AUTHORIZATION refown;
GRANT USAGE ON SCHEMA ref TO mal;
}, db => $db);
}

# a pipeline of vic's, for attacks across owners
su(
	q{
CREATE TABLE vic.base (id integer PRIMARY KEY, v text);
CREATE TABLE vic.secret (s text);
INSERT INTO vic.secret VALUES ('untouched');
ALTER TABLE vic.base OWNER TO vic;
ALTER TABLE vic.secret OWNER TO vic;
});
safe_as('vic', q{SELECT stage.create_pipeline('vbase', 'vic.base', key => '{id}')});

# ============================================== 1. owner code (expression)

# Each attempt of the hostile function, caught and recorded in mal.tried
# with the SQLSTATE it got (or 'ok'), current_user and session_user.  The
# records of a call whose rows were rolled back (bisection) go with them;
# every call that returned left its records.
my $pwned = $node->basedir . '/qz_pwned';
my @attempts = (
	[ 'create a superuser role', q{CREATE ROLE qz_evil SUPERUSER LOGIN}, '42501' ],
	[ 'SET ROLE to another owner', q{SET ROLE vic}, '42501' ],
	[ 'SET SESSION AUTHORIZATION', q{SET SESSION AUTHORIZATION vic}, '42501' ],
	[ 'ALTER SYSTEM', q{ALTER SYSTEM SET work_mem = '1GB'}, '25001' ],
	[ 'ALTER SYSTEM (dynamic SQL)', q{EXECUTE 'ALTER SYSTEM SET work_mem = ''1GB'''}, '25001' ],
	[ 'write a table of another owner', q{UPDATE vic.secret SET s = 'owned'}, '42501' ],
	[ 'write stage\'s catalog', q{UPDATE stage.pipeline SET enabled = false}, '42501' ],
	[ 'make itself superuser', q{ALTER ROLE mal SUPERUSER}, '42501' ],
	[ 'grant itself pg_execute_server_program', q{GRANT pg_execute_server_program TO mal}, '42501' ],
	[ 'grant itself the victim owner', q{GRANT vic TO mal}, '42501' ],
	[ 'COPY TO PROGRAM', qq{COPY (SELECT 1) TO PROGRAM 'touch $pwned'}, '42501' ],
	[ 'read a server file', q{PERFORM pg_catalog.pg_read_file('postgresql.conf')}, '42501' ],
	[ 'create a temporary table', q{CREATE TEMP TABLE qz_t (i integer)}, '42501' ],
	[ 're-enter: run_batch', q{PERFORM stage.run_batch('mhx')}, '55006' ],
	[ 're-enter: add_transform', q{PERFORM stage.add_transform('mhx', 'v', 'trim')}, '55006' ],
	[ 're-enter: drop_transform', q{PERFORM stage.drop_transform('mhx', 'w_expression')}, '55006' ],
	[ 're-enter: preview', q{PERFORM stage.preview('mhx', '{"id": "1"}')}, '55006' ],
	[ 're-enter: check_row', q{PERFORM stage.check_row('mhx', '{"id": "1"}')}, '55006' ],
	[ 're-enter: replay', q{PERFORM stage.replay('mhx')}, '55006' ],
	[ 'run another owner\'s pipeline', q{PERFORM stage.run_batch('vbase')}, '42501' ],
	[ 'change another owner\'s contract', q{PERFORM stage.add_transform('vbase', 'v', 'trim')}, '42501' ],
	[ 'SET search_path', q{SET search_path = mal, public}, 'ok' ],
	[ 'set_config stage.batch_size, work_mem, DateStyle, regex limit',
		q{PERFORM pg_catalog.set_config('stage.batch_size', '7', false),
		pg_catalog.set_config('work_mem', '77MB', false),
		pg_catalog.set_config('DateStyle', 'SQL, DMY', false),
		pg_catalog.set_config('stage.regex_match_limit', '1000', true)}, 'ok' ]);
my $hostile_body = join(
	"\n",
	map {
		my ($what, $stmt) = @$_;
		"\tBEGIN\n\t\t$stmt;\n\t\ts := 'ok';\n\tEXCEPTION WHEN OTHERS THEN\n\t\ts := SQLSTATE;\n\tEND;\n"
		  . "\tINSERT INTO mal.tried VALUES (\$w\$$what\$w\$, s, current_user, session_user,"
		  . " pg_catalog.current_setting('stage.batch_size'));"
	} @attempts);

su(
	q{
CREATE TABLE mal.hx (id integer PRIMARY KEY, v text, w text, _stage_id bigint);
CREATE TABLE mal.tried (what text, state text, cu name, su name, batch_size text);
ALTER TABLE mal.hx OWNER TO mal;
ALTER TABLE mal.tried OWNER TO mal;
});
safe_as(
	'mal', qq{
CREATE FUNCTION mal.hostile(v text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE
	s text;
BEGIN
$hostile_body
	IF v = 'boom' THEN
		RAISE EXCEPTION 'hostile refuses %', v;
	END IF;
	IF v = 'zero' THEN
		RETURN (1 / 0)::text;
	END IF;
	RETURN pg_catalog.upper(v);
END \$f\$;
SELECT stage.create_pipeline('mhx', 'mal.hx', key => '{id}');
SELECT stage.add_transform('mhx', 'w', 'expression', '{"sql": "mal.hostile(v)"}');
});

{
	my $l = landing('mhx');
	my $show = q{SELECT concat_ws(' / ', current_user, session_user, current_setting('search_path'),
		current_setting('stage.batch_size'), current_setting('work_mem'), current_setting('DateStyle'),
		current_setting('stage.regex_match_limit'), current_setting('role'))};
	su(qq{INSERT INTO $l (id, v) VALUES ('1', 'a'), ('2', 'boom'), ('3', 'c'), ('4', 'zero'), ('5', 'boom')});
	# as pg_cron or an operator would: a superuser's session, settings of its own
	my ($ret, $out, $err) = $node->psql(
		'tfa', qq{
SET work_mem = '5MB';
$show;
SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined || ' ' || status FROM stage.run_batch('mhx');
$show;
SELECT stage.preview('mhx', '{"id": "7", "v": "x"}')->'transformed'->'w'->>'value';
$show;
SELECT jsonb_array_length(stage.check_row('mhx', '{"id": "7", "v": "boom"}'));
$show;
SELECT string_agg(outcome, ',') FROM stage.replay('mhx');
$show;
});
	is($ret, 0, 'owner code: a superuser runs the batch of a hostile expression transform, then preview, check_row and replay')
	  or diag($err);
	my ($before, $result, $after, $pv, $pv_after, $cr, $cr_after, $rp, $rp_after) = split /\n/, $out;
	is($result // '', '5 2 3 done',
		'owner code: the batch is done: the 3 rows that made the expression raise are quarantined, 2 written');
	is($after, $before,
		'owner code: current_user, session_user, search_path, stage.batch_size, work_mem, DateStyle, regex limit and role of the superuser\'s session are as before the batch');
	is(($pv // '') . ' ' . ($cr // '') . ' ' . ($rp // ''), 'X 1 quarantine,quarantine,quarantine',
		'owner code: control: preview, check_row and replay by the superuser ran the hostile expression');
	is(join(' | ', $pv_after // '', $cr_after // '', $rp_after // ''), join(' | ', $before, $before, $before),
		'owner code: nor do the settings changed by the expression outlive preview, check_row or replay');
	like($before // '', qr{^postgres / postgres / "\$user", public / 10000 / 5MB / }, 'owner code: control: the settings read before');

	is(su(q{SELECT string_agg(id || '=' || w, ',' ORDER BY id) FROM mal.hx}),
		'1=A,3=C', 'owner code: the clean rows are written with the expression\'s values');
	is( su(
			q{SELECT string_agg(q.landing_id || ' ' || (r->>'kind') || ' ' || (r->>'rule') || ' ' || (r->>'column') || ' ' || (r->>'sqlstate'), ', ' ORDER BY q.landing_id)
			  FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id), jsonb_array_elements(q.reasons) r
			 WHERE p.name = 'mhx'}),
		'2 transform w_expression w P0001, 4 transform w_expression w 22012, 5 transform w_expression w P0001',
		'owner code: each row that made the expression raise is quarantined with kind transform, the transform\'s name and the SQLSTATE');

	my %got = map { my ($w, $s) = split /\|/; ($w => $s) }
	  split /\n/, su(q{SELECT what, string_agg(DISTINCT state, ',') FROM mal.tried GROUP BY what});
	ok(scalar(keys %got) == scalar(@attempts), 'owner code: control: the function recorded every attempt')
	  or diag(explain \%got);
	for my $a (@attempts)
	{
		my ($what, undef, $want) = @$a;
		is($got{$what} // 'not recorded', $want, "owner code: inside the batch: $what gets " . ($want eq 'ok' ? 'through (discarded after)' : $want));
	}
	is(su(q{SELECT string_agg(DISTINCT cu || ' ' || su, ',') FROM mal.tried}),
		'mal postgres', 'owner code: the function always ran as the owner (current_user mal), the superuser only the session user');
	is(su(q{SELECT string_agg(DISTINCT batch_size, ',') FROM mal.tried WHERE what ~ '^set_config'}),
		'7', 'owner code: control: set_config did change stage.batch_size inside the batch');

	is( su(
			qq{SELECT concat_ws(' ',
			(SELECT count(*) FROM pg_roles WHERE rolname LIKE 'qz%'),
			(SELECT rolsuper FROM pg_roles WHERE rolname = 'mal'),
			pg_has_role('mal', 'pg_execute_server_program', 'MEMBER'),
			pg_has_role('mal', 'vic', 'MEMBER'),
			has_table_privilege('mal', 'vic.secret', 'UPDATE'),
			(SELECT s FROM vic.secret),
			(SELECT count(*) FROM stage.pipeline WHERE NOT enabled),
			(SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem'))}),
		'0 f f f f untouched 0 0',
		'owner code: nothing escalated: no role made, mal no superuser nor member of anything, vic\'s table and stage\'s catalog untouched, no ALTER SYSTEM'
	);
	ok(!-e $pwned, 'owner code: COPY TO PROGRAM ran no program');
	is(su(q{SELECT count(*) FROM stage.transform t JOIN stage.pipeline p USING (pipeline_id) WHERE p.name IN ('mhx', 'vbase')}),
		'1', 'owner code: neither contract was changed from inside the batch');
	server_ok('owner code');
}

# uncaught: the escalation fails the whole batch (not a row's fault), and
# a refused re-entry too (class 55)
su(
	q{
CREATE TABLE mal.grab (id integer PRIMARY KEY, v text, w text);
CREATE TABLE mal.reent (id integer PRIMARY KEY, v text, w text);
ALTER TABLE mal.grab OWNER TO mal;
ALTER TABLE mal.reent OWNER TO mal;
});
safe_as(
	'mal', q{
CREATE FUNCTION mal.grab(v text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	CREATE ROLE qz_grab SUPERUSER LOGIN;
	RETURN v;
END $f$;
CREATE FUNCTION mal.reenter(v text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM stage.run_batch('mreent');
	RETURN v;
END $f$;
SELECT stage.create_pipeline('mgrab', 'mal.grab', key => '{id}');
SELECT stage.add_transform('mgrab', 'w', 'expression', '{"sql": "mal.grab(v)"}');
SELECT stage.create_pipeline('mreent', 'mal.reent', key => '{id}');
SELECT stage.add_transform('mreent', 'w', 'expression', '{"sql": "mal.reenter(v)"}');
});
for my $c ([ 'mgrab', 'mal.grab', '42501', 'an uncaught CREATE ROLE' ],
	[ 'mreent', 'mal.reent', '55006', 'an uncaught re-entry' ])
{
	my ($p, $target, $state, $what) = @$c;
	my $l = landing($p);
	su(qq{INSERT INTO $l (id, v) VALUES ('1', 'a'), ('2', 'b')});
	is(sqlstate_as('postgres', qq{SELECT * FROM stage.run_batch('$p')}), $state,
		"owner code: $what in the expression fails the superuser's batch whole ($state)");
	is(placed($p, $target), '0 0 2', "owner code: $what: nothing written, nothing quarantined, the landing rows wait");
}
is(su(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'qz%'}), '0', 'owner code: the uncaught CREATE ROLE made no role');

# ======================================================== 2. lookups

su(
	q{
CREATE TABLE ref.hidden (code text, name text);
CREATE TABLE ref.revoked (code text, name text);
CREATE VIEW ref.v AS SELECT 'a'::text AS code, 'A'::text AS name;
CREATE TABLE vic.ref (code text, name text);
GRANT SELECT ON ref.revoked, ref.v TO mal;
ALTER TABLE ref.hidden OWNER TO refown;
ALTER TABLE ref.revoked OWNER TO refown;
ALTER VIEW ref.v OWNER TO refown;
ALTER TABLE vic.ref OWNER TO vic;
CREATE TABLE mal.lk (id integer PRIMARY KEY, c text, _stage_id bigint);
ALTER TABLE mal.lk OWNER TO mal;
CREATE FOREIGN DATA WRAPPER qz_fdw;
CREATE SERVER qz_srv FOREIGN DATA WRAPPER qz_fdw;
CREATE FOREIGN TABLE ref.f (code text, name text) SERVER qz_srv;
GRANT SELECT ON ref.f TO mal;
});
safe_as(
	'mal', q{
CREATE TABLE mal.dup (code text, name text);
INSERT INTO mal.dup VALUES ('a', 'A1'), ('a', 'A2'), (NULL, 'NULLKEY'), ('b', repeat('x', 1000000)),
	('n', NULL), ('', 'EMPTY');
CREATE VIEW mal.v AS SELECT * FROM mal.dup;
CREATE UNLOGGED TABLE mal.u (code text, name text);
CREATE MATERIALIZED VIEW mal.mv AS SELECT * FROM mal.dup;
CREATE SEQUENCE mal.seq;
CREATE TABLE mal.fired (what text);
CREATE FUNCTION mal.fire() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO mal.fired VALUES (TG_OP || ' ' || TG_LEVEL);
	RETURN NULL;
END $f$;
CREATE TRIGGER f_row AFTER INSERT OR UPDATE OR DELETE ON mal.dup FOR EACH ROW EXECUTE FUNCTION mal.fire();
CREATE TRIGGER f_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mal.dup FOR EACH STATEMENT EXECUTE FUNCTION mal.fire();
CREATE RULE r_upd AS ON UPDATE TO mal.dup DO ALSO INSERT INTO mal.fired VALUES ('rule');
SELECT stage.create_pipeline('mlk', 'mal.lk', key => '{id}');
});

{
	my @refused = (
		[ 'ref.hidden', '42501', 'a table the owner may not read (schema usable)' ],
		[ 'vic.ref', '42501', 'a table in a schema the owner may not use' ],
		[ 'pg_catalog.pg_authid', '42501', 'pg_authid' ],
		[ 'stage.secret', '42501', 'stage\'s secrets' ],
		[ 'stage.token_vault', '42501', 'stage\'s token vault' ],
		[ 'ref.v', '42809', 'a view (readable)' ],
		[ 'mal.v', '42809', 'a view of its own' ],
		[ 'mal.u', '42809', 'an unlogged table' ],
		[ 'mal.seq', '42809', 'a sequence' ],
		[ 'ref.f', '42809', 'a foreign table (readable)' ],
		[ 'pg_temp.qz_tmp', '42809', 'a temporary table' ],
		[ 'dup', '22023', 'a table without its schema' ],
		[ 'mal.dup; DROP TABLE mal.dup', '22023', 'an injection in the table name' ],
		[ 'mal.nope', '42P01', 'a table that does not exist' ]);
	for my $r (@refused)
	{
		my ($table, $state, $what) = @$r;
		my ($got, $err) = sqlstate_as('mal',
			qq{CREATE TEMP TABLE qz_tmp (code text, name text);
			SELECT stage.add_transform('mlk', 'c', 'lookup', '{"table": "$table", "key": "code", "value": "name"}')});
		is($got, $state, "lookups: add_transform refuses $what ($state)");
	}
	is( sqlstate_as(
			'mal',
			q{SELECT stage.add_transform('mlk', 'c', 'lookup', '{"table": "mal.dup", "key": "code\"; DROP TABLE mal.dup; --", "value": "name"}')}
		),
		'42703',
		'lookups: add_transform refuses an injection in the key column (42703)');
	is(sqlstate_as('postgres', q{SELECT stage.add_transform('mlk', 'c', 'lookup', '{"table": "ref.hidden", "key": "code", "value": "name"}')}),
		'42501', 'lookups: a superuser adding the lookup for mal is refused all the same: the owner\'s rights count (42501)');
	is(sqlstate_as('mal', q{SELECT stage.add_transform('mlk', 'c', 'lookup', '{"table": "mal.mv", "key": "code", "value": "name"}', transform_name => 'mv')}),
		'no error', 'lookups: control: a materialized view of its own is accepted');
	safe_as('mal', q{SELECT stage.drop_transform('mlk', 'mv')});
	is(su(q{SELECT count(*) FROM mal.dup}), '6', 'lookups: the lookup table is still there');

	# duplicate keys (one of them, no duplicate rows), NULL keys (never
	# match), NULL and 1 MB values, the empty string as a key
	safe_as('mal', q{SELECT stage.add_transform('mlk', 'c', 'lookup', '{"table": "mal.dup", "key": "code", "value": "name", "on_missing": "reject"}')});
	my $l = landing('mlk');
	su(qq{INSERT INTO $l (id, c) VALUES ('1', 'a'), ('2', 'b'), ('3', 'n'), ('4', 'zz'), ('5', NULL), ('6', '')});
	is(su(q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined || ' ' || status FROM stage.run_batch('mlk')}),
		'6 5 1 done', 'lookups: duplicate, NULL, empty and huge keys and values: the batch is done, the key not in the table quarantined');
	is( su(
			q{SELECT string_agg(id || '=' || CASE WHEN c IS NULL THEN 'null' WHEN length(c) > 10 THEN 'x*' || length(c) ELSE c END, ',' ORDER BY id) FROM mal.lk}
		),
		(su(q{SELECT count(*) FROM mal.lk WHERE id = 1 AND c = 'A2'}) eq '1' ? '1=A2' : '1=A1')
		  . ',2=x*1000000,3=null,5=null,6=EMPTY',
		'lookups: a duplicate key gives one of its values, a NULL value NULL, a 1 MB value whole; a NULL landing value stays NULL (a NULL key matches nothing)'
	);
	is( su(
			q{SELECT q.landing_id || ' ' || (q.reasons->0->>'kind') || ' ' || (q.reasons->0->>'sqlstate')
			  FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'mlk'}),
		'4 transform 23503', 'lookups: the value not in the table is quarantined as kind transform (23503)');
	is(su(q{SELECT count(*) FROM mal.fired}), '0',
		'lookups: the lookup only reads: no trigger or rule of the lookup table fired');
}

# row-level security: the batch sees what the owner sees, never what the
# superuser who runs it would see; a policy's function is the owner's code
su(
	q{
CREATE TABLE ref.rls (code text, name text, for_mal boolean);
INSERT INTO ref.rls VALUES ('p', 'PUBLICVAL', true), ('s', 'QZHIDDEN', false);
ALTER TABLE ref.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY for_mal ON ref.rls FOR SELECT TO mal USING (for_mal);
GRANT SELECT ON ref.rls TO mal;
ALTER TABLE ref.rls OWNER TO refown;
CREATE TABLE mal.rt (id integer PRIMARY KEY, c text, d text);
ALTER TABLE mal.rt OWNER TO mal;
});
safe_as(
	'mal', q{
CREATE TABLE mal.spied (cu name, su name, search_path text);
CREATE TABLE mal.rlsf (code text, name text, who name);
INSERT INTO mal.rlsf VALUES ('k', 'for mal', 'mal'), ('k2', 'for the superuser', 'postgres');
CREATE FUNCTION mal.spy(who name) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO mal.spied VALUES (current_user, session_user, pg_catalog.current_setting('search_path'));
	PERFORM pg_catalog.set_config('search_path', 'mal, pg_catalog', false);
	RETURN who = current_user;
END $f$;
ALTER TABLE mal.rlsf ENABLE ROW LEVEL SECURITY;
ALTER TABLE mal.rlsf FORCE ROW LEVEL SECURITY;
CREATE POLICY mine ON mal.rlsf USING (mal.spy(who));
SELECT stage.create_pipeline('mrls', 'mal.rt', key => '{id}');
SELECT stage.add_transform('mrls', 'c', 'lookup', '{"table": "ref.rls", "key": "code", "value": "name"}');
SELECT stage.add_transform('mrls', 'd', 'lookup', '{"table": "mal.rlsf", "key": "code", "value": "name"}');
});
{
	my $l = landing('mrls');
	su(qq{INSERT INTO $l (id, c, d) VALUES ('1', 'p', 'k'), ('2', 's', 'k2')});
	my $out = su(q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('mrls');
		SELECT current_setting('search_path')});
	is($out, "2 2\n\"\$user\", public", 'row-level security: the superuser runs the batch; its search_path is as before');
	is(su(q{SELECT string_agg(id || ' ' || c || ' ' || d, ', ' ORDER BY id) FROM mal.rt}),
		'1 PUBLICVAL for mal, 2 s k2',
		'row-level security: the lookups saw what the owner\'s policies let the owner see (rows hidden from mal are missing: the values kept)'
	);
	is(su(q{SELECT name FROM ref.rls WHERE code = 's'}), 'QZHIDDEN',
		'row-level security: control: the superuser itself reads the hidden row');
	is(su(q{SELECT count(*) > 0 AND bool_and(cu = 'mal' AND su = 'postgres') FROM mal.spied}),
		't', 'row-level security: the policy\'s function ran as the owner');
}

# a lookup table dropped, revoked or turned into a view after the transform
# was added: the batch fails, writes nothing, and leaves the rows waiting
su(
	q{
CREATE TABLE mal.gt (id integer PRIMARY KEY, c text, _stage_id bigint);
CREATE TABLE mal.rvt (id integer PRIMARY KEY, c text);
CREATE TABLE mal.cvt (id integer PRIMARY KEY, c text);
ALTER TABLE mal.gt OWNER TO mal;
ALTER TABLE mal.rvt OWNER TO mal;
ALTER TABLE mal.cvt OWNER TO mal;
INSERT INTO ref.revoked VALUES ('a', 'A');
});
safe_as(
	'mal', q{
CREATE TABLE mal.gone (code text PRIMARY KEY, name text);
INSERT INTO mal.gone VALUES ('a', 'A');
CREATE TABLE mal.conv (code text, name text);
SELECT stage.create_pipeline('mgone', 'mal.gt', key => '{id}');
SELECT stage.add_transform('mgone', 'c', 'lookup', '{"table": "mal.gone", "key": "code", "value": "name"}');
SELECT stage.create_pipeline('mrev', 'mal.rvt', key => '{id}');
SELECT stage.add_transform('mrev', 'c', 'lookup', '{"table": "ref.revoked", "key": "code", "value": "name"}');
SELECT stage.create_pipeline('mconv', 'mal.cvt', key => '{id}');
SELECT stage.add_transform('mconv', 'c', 'lookup', '{"table": "mal.conv", "key": "code", "value": "name"}');
});
{
	my $l = landing('mgone');
	su(qq{INSERT INTO $l (id, c) VALUES ('1', 'a'), ('2', 'b')});
	safe_as('mal', q{DROP TABLE mal.gone});
	is(sqlstate_as('postgres', q{SELECT * FROM stage.run_batch('mgone')}), '42P01',
		'lookups: a lookup table dropped after the transform was added fails the batch (42P01)');
	is(placed('mgone', 'mal.gt'), '0 0 2', 'lookups: dropped table: nothing written or quarantined, the landing rows wait');
	is(su(q{SELECT stage.backlog('mgone')}), '2', 'lookups: dropped table: both rows are still in the backlog');

	# the same with the program compiled and cached in the session before
	# the table goes: the statement fails at execution
	safe_as('mal', q{CREATE TABLE mal.gone (code text PRIMARY KEY, name text); INSERT INTO mal.gone VALUES ('a', 'A');});
	my ($ret, $out, $err) = $node->psql(
		'tfa', qq{\\set VERBOSITY verbose
SELECT rows_in || ' ' || status FROM stage.run_batch('mgone');
INSERT INTO $l (id, c) VALUES ('3', 'a');
SET SESSION AUTHORIZATION mal;
DROP TABLE mal.gone;
RESET SESSION AUTHORIZATION;
SELECT rows_in FROM stage.run_batch('mgone');
SELECT 'after';
}, on_error_stop => 0);
	is($out, "2 done\nafter", 'lookups: control: with the table back the waiting rows move; the session lives on after the next batch fails');
	like($err, qr/ERROR:\s+42P01:/, 'lookups: the table dropped under a program cached in the session fails that batch (42P01)');
	is(placed('mgone', 'mal.gt'), '2 0 3', 'lookups: only the rows of the batch before the drop are written; the third waits');
	safe_as('mal', q{CREATE TABLE mal.gone (code text PRIMARY KEY, name text); INSERT INTO mal.gone VALUES ('a', 'A2');});
	is(su(q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('mgone'); SELECT string_agg(id || '=' || c, ',' ORDER BY id) FROM mal.gt}),
		"1 1\n1=A,2=b,3=A2", 'lookups: once the table is restored, the waiting row is taken with the new table\'s value');

	$l = landing('mrev');
	su(qq{INSERT INTO $l (id, c) VALUES ('1', 'a')});
	su(q{REVOKE SELECT ON ref.revoked FROM mal});
	is(sqlstate_as('postgres', q{SELECT * FROM stage.run_batch('mrev')}), '42501',
		'lookups: SELECT revoked from the owner after the transform was added: the superuser\'s batch fails (42501)');
	is(placed('mrev', 'mal.rvt'), '0 0 1', 'lookups: revoked: nothing written or quarantined, the row waits');

	$l = landing('mconv');
	su(qq{INSERT INTO $l (id, c) VALUES ('1', 'a')});
	safe_as('mal', q{CREATE RULE "_RETURN" AS ON SELECT TO mal.conv DO INSTEAD SELECT 'a'::text AS code, current_user::text AS name});
	is(su(q{SELECT relkind FROM pg_class WHERE oid = 'mal.conv'::regclass}), 'v', 'lookups: control: the owner turned its lookup table into a view');
	is(sqlstate_as('postgres', q{SELECT * FROM stage.run_batch('mconv')}), '42809',
		'lookups: a lookup table turned into a view is refused when the batch compiles the contract (42809)');
	is(placed('mconv', 'mal.cvt'), '0 0 1', 'lookups: view: nothing written or quarantined, the row waits');
	server_ok('lookups');
}

# ======================================= 3. read paths: preview, check_row

su(
	q{
CREATE TABLE vic.p (id integer PRIMARY KEY, email text, code text, note text, _stage_id bigint);
CREATE TABLE vic.codes (k text PRIMARY KEY, v text);
INSERT INTO vic.codes VALUES ('in', 'INVAL');
ALTER TABLE vic.p OWNER TO vic;
ALTER TABLE vic.codes OWNER TO vic;
});
safe_as(
	'vic', q{
CREATE FUNCTION vic.annotate(n text) RETURNS text LANGUAGE sql AS $$SELECT 'noted ' || n$$;
SELECT stage.create_pipeline('vp', 'vic.p', key => '{id}');
SELECT stage.add_transform('vp', 'email', 'lower');
SELECT stage.add_transform('vp', 'code', 'lookup', '{"table": "vic.codes", "key": "k", "value": "v", "on_missing": "reject"}');
SELECT stage.add_transform('vp', 'note', 'expression', '{"sql": "vic.annotate(note)"}');
SELECT stage.add_rule('vp', 'email', 'format', '{"format": "email"}');
SELECT stage.add_mask('vp', 'email', 'email');
SELECT stage.add_mask('vp', 'note', 'constant', '{"value": "[hidden]"}');
SELECT stage.grant_producer('vp', 'feed');
});
{
	my $row = q{jsonb_build_object('id', '9', 'email', 'QZ' || 'PREVIEW@Example.com', 'code', 'in', 'note', 'QZ' || 'NOTE')};
	for my $r ([ 'feed', 'a producer' ], [ 'ana', 'an analyst' ], [ 'str', 'a role with PUBLIC\'s rights only' ],
		[ 'mal', 'another pipeline owner' ])
	{
		my ($role, $who) = @$r;
		my ($state, $err) = sqlstate_as($role, "SELECT stage.preview('vp', $row)");
		is($state, '42501', "read paths: stage.preview by $who fails with 42501");
		unlike($err, qr/QZ|preview\@|INVAL|noted/i, "read paths: stage.preview by $who: the refusal quotes no value");
	}
	my ($state, $err) = sqlstate_as('str', "SELECT stage.preview('qz_nope', $row)");
	unlike($err, qr/QZPREVIEW|QZNOTE/i, "read paths: preview of a pipeline that does not exist quotes no value ($state)");
	for my $r ([ 'postgres', 'a superuser' ], [ 'vic', 'the owner' ])
	{
		my ($role, $who) = @$r;
		my $p = safe_as($role, "SELECT stage.preview('vp', $row)");
		like($p, qr/"email": \{"value": "qzpreview\@example\.com", "landed": "QZPREVIEW\@Example\.com"\}/,
			"read paths: stage.preview by $who shows the transformed value unmasked");
		like($p, qr/"code": \{"value": "INVAL"/, "read paths: stage.preview by $who ran the lookup");
		like($p, qr/"note": \{"value": "noted QZNOTE"/, "read paths: stage.preview by $who ran the expression");
	}

	# check_row: producers and analysts get no lookup or expression, and no
	# form of a masked value
	my $in = q{SELECT stage.check_row('vp', jsonb_build_object('id', '9', 'email', 'QZ' || 'CHECK', 'code', 'in', 'note', 'QZ' || 'NOTE'))};
	my $out = q{SELECT stage.check_row('vp', jsonb_build_object('id', '9', 'email', 'QZ' || 'CHECK', 'code', 'out', 'note', 'QZ' || 'NOTE'))};
	for my $r ([ 'feed', 'a producer' ], [ 'ana', 'an analyst' ])
	{
		my ($role, $who) = @$r;
		my ($ret, $o1, $e1) = as_role($role, $in);
		my ($ret2, $o2, $e2) = as_role($role, $out);
		is($ret + $ret2, 0, "read paths: check_row by $who runs");
		like($e1, qr/NOTICE:  check_row left out: transform code_lookup \(lookup\), transform note_expression \(expression\)/,
			"read paths: check_row by $who leaves the lookup and the expression out, in a NOTICE naming them");
		is($o1, $o2, "read paths: check_row by $who answers the same for a code in and not in the owner's table");
		like($o1, qr/"rule": "email_format", "value": "\[masked\]"/, "read paths: check_row by $who shows the masked column as [masked]");
		unlike($o1 . $o2, qr/QZ|qzcheck|q\*\*\*|noted|INVAL|hidden/i,
			"read paths: check_row by $who shows no form of a masked or transformed value");
	}
	my $vin = safe_as('vic', $in);
	my $vout = safe_as('vic', $out);
	isnt($vin, $vout, 'read paths: control: for the owner the lookup tells the two codes apart');
	like($vout, qr/"rule": "code_lookup"/, 'read paths: control: the owner\'s check_row ran the lookup');
	unlike($vin . $vout, qr/QZCHECK|qzcheck/i, 'read paths: the owner\'s check_row shows the masked column as [masked] too');
	is(sqlstate_as('str', $in), '42501', 'read paths: check_row by a stranger fails with 42501');
	is(sqlstate_as('str', q{SELECT * FROM stage.trace('vp', 1)}), '42501',
		'read paths: stage.trace (which runs the transforms) is refused to a stranger (42501)');
	is(sqlstate_as('ana', q{SELECT * FROM stage.trace('vp', 1)}), '42501',
		'read paths: stage.trace is refused to an analyst (42501)');
}

# ============================== 4. stage.transform with the worst arguments

{
	# every call through one function in one session of the stranger: its
	# SQLSTATE (or ok) and how long it took
	my @cases = (
		# [name, expression, expected result (regex on "ok:..." or the SQLSTATE), limit in seconds]
		[ '100 MB trim', q{SELECT length(stage.transform(v, 'trim')) FROM big}, qr/^ok:104857600$/ ],
		[ '100 MB upper', q{SELECT length(stage.transform(v, 'upper')) FROM big}, qr/^ok:104857600$/ ],
		[ '100 MB replace to more than 1 GB', q{SELECT length(stage.transform(v, 'replace', '{"from": "a", "to": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')) FROM big}, qr/^54000$/ ],
		[ '100 MB number', q{SELECT length(stage.transform(v, 'number')) FROM big}, qr/^22P02$/ ],
		[ '100 MB map (not in it, reject)', q{SELECT length(stage.transform(v, 'map', '{"values": {"a": "b"}, "else": "reject"}')) FROM big}, qr/^22023$/ ],
		[ 'catastrophic backtracking ^(a+)+$', q{SELECT stage.transform(repeat('a', 5000) || 'b', 'regex_replace', '{"pattern": "^(a+)+$", "replacement": "x"}')}, qr/^54000$/, 5 ],
		[ 'catastrophic backtracking (\w+\s?)*$', q{SELECT stage.transform(repeat('word ', 2000) || '!', 'regex_replace', '{"pattern": "^(\\\\w+\\\\s?)*$", "replacement": "x"}')}, qr/^54000$/, 5 ],
		[ 'nested lookahead', q{SELECT stage.transform(repeat('a', 100000), 'regex_replace', '{"pattern": "(?:a|b)*?(?=c)", "replacement": "x"}')}, qr/^54000$/, 5 ],
		[ 'a 1 MB pattern', q{SELECT length(stage.transform('abc', 'regex_replace', jsonb_build_object('pattern', repeat('(a|b)', 200000), 'replacement', 'x')))}, qr/^(ok:\d+|2201B|54000)$/, 5 ],
		[ 'an invalid pattern', q{SELECT stage.transform('abc', 'regex_replace', '{"pattern": "(", "replacement": "x"}')}, qr/^2201B$/ ],
		[ 'an unknown flag', q{SELECT stage.transform('abc', 'regex_replace', '{"pattern": "a", "replacement": "x", "flags": "e"}')}, qr/^22023$/ ],
		[ 'normalize: a million combining marks', q{SELECT length(stage.transform('a' || repeat(U&'\0301', 1000000), 'normalize'))}, qr/^54000$/ ],
		[ 'normalize NFKC: 100000 letters with 30 marks each', q{SELECT length(stage.transform(repeat('a' || repeat(U&'\0301', 30), 100000), 'normalize', '{"form": "NFKC"}'))}, qr/^ok:3000000$/ ],
		[ 'date: 5000 year fields', q{SELECT stage.transform('2024-01-31', 'date', jsonb_build_object('format', repeat('YYYY', 5000)))}, qr/^22023$/ ],
		[ 'date: 5000 day names', q{SELECT stage.transform('2024-01-31', 'date', jsonb_build_object('format', 'YYYY-MM-DD' || repeat(' Dy', 5000)))}, qr/^22023$/ ],
		[ 'date: 100000 literals', q{SELECT stage.transform(repeat('-', 100000) || '2024-01-31', 'date', jsonb_build_object('format', repeat('-', 100000) || 'YYYY-MM-DD'))}, qr/^ok:2024-01-31$/ ],
		[ 'date: 100000 quoted literals', q{SELECT stage.transform(repeat('x', 100000) || '2024-01-31', 'date', jsonb_build_object('format', repeat('"x"', 100000) || 'YYYY-MM-DD'))}, qr/^ok:2024-01-31$/ ],
		[ 'date: 50000 FM', q{SELECT stage.transform('2024-01-31', 'date', jsonb_build_object('format', 'YYYY-MM-DD' || repeat('FM', 50000)))}, qr/^ok:2024-01-31$/ ],
		[ 'date: 10 million digits', q{SELECT stage.transform(repeat('9', 10000000), 'date', '{"format": "YYYY-MM-DD"}')}, qr/^22007$/ ],
		[ 'timestamp: 10 million digits', q{SELECT stage.transform(repeat('9', 10000000), 'timestamp', '{"format": "YYYY-MM-DD HH24:MI:SS.US TZ"}')}, qr/^22007$/ ],
		[ 'date: an unclosed quote', q{SELECT stage.transform('2024-01-31', 'date', '{"format": "YYYY-MM-DD\""}')}, qr/^22023$/ ],
		[ 'timestamp: a named time zone', q{SELECT stage.transform('2024-01-31', 'timestamp', '{"format": "YYYY-MM-DD", "time_zone": "Europe/Paris"}')}, qr/^22023$/ ],
		[ 'number: a million digits', q{SELECT length(stage.transform(repeat('1', 1000000), 'number'))}, qr/^ok:1000000$/ ],
		[ 'number: a million grouped digits', q{SELECT length(stage.transform('1' || repeat(',234', 333333), 'number'))}, qr/^ok:1000000$/ ],
		[ 'number: a million digits each side, currency', q{SELECT length(stage.transform('$' || repeat('1', 1000000) || '.' || repeat('5', 1000000), 'number', '{"currency": true}'))}, qr/^ok:2000001$/ ],
		[ 'number: an exponent', q{SELECT stage.transform('1e5', 'number')}, qr/^22P02$/ ],
		[ 'map: 100000 entries, a hit', q{SELECT stage.transform('k77777', 'map', (SELECT jsonb_build_object('values', jsonb_object_agg('k' || g, 'v' || g)) FROM generate_series(1, 100000) g))}, qr/^ok:v77777$/ ],
		[ 'map: 100000 entries, a miss (reject)', q{SELECT stage.transform('k0', 'map', (SELECT jsonb_build_object('else', 'reject', 'values', jsonb_object_agg('k' || g, 'v' || g)) FROM generate_series(1, 100000) g))}, qr/^22023$/ ],
		[ 'map: a 50 MB value in it', q{SELECT length(stage.transform('x', 'map', jsonb_build_object('values', jsonb_build_object('x', repeat('y', 50000000)))))}, qr/^ok:50000000$/ ],
		[ 'nullif: 100000 values', q{SELECT stage.transform('n99999', 'nullif', (SELECT jsonb_build_object('values', jsonb_agg('n' || g)) FROM generate_series(1, 100000) g))}, qr/^ok:<null>$/ ],
		[ 'boolean: 100000 words', q{SELECT stage.transform('t5', 'boolean', (SELECT jsonb_build_object('true', jsonb_agg('t' || g)) FROM generate_series(1, 100000) g))}, qr/^ok:true$/ ],
		[ 'args nested 5000 deep', q{SELECT stage.transform('x', 'map', ('{"values": {"x": ' || repeat('{"a": ', 5000) || '1' || repeat('}', 5000) || '}}')::jsonb)}, qr/^22023$/ ],
		[ 'args: an array nested 5000 deep', q{SELECT stage.transform('x', 'nullif', ('{"values": [' || repeat('[', 5000) || repeat(']', 5000) || ']}')::jsonb)}, qr/^22023$/ ],
		[ 'args nested 200000 deep', q{SELECT stage.transform('x', 'map', ('{"values": ' || repeat('[', 200000) || repeat(']', 200000) || '}')::jsonb)}, qr/^54001$/ ],
		[ 'args: a 1 MB unknown key', q{SELECT stage.transform('x', 'trim', jsonb_build_object(repeat('k', 1000000), 1))}, qr/^22023$/ ],
		[ 'a 100 kB method name', q{SELECT stage.transform('x', repeat('m', 100000))}, qr/^22023$/ ],
		[ 'NULL method', q{SELECT stage.transform('x', NULL)}, qr/^22004$/ ],
		[ 'NULL method and args', q{SELECT stage.transform(NULL, NULL, NULL)}, qr/^22004$/ ],
		[ 'NULL args', q{SELECT stage.transform(' x ', 'trim', NULL)}, qr/^ok:x$/ ],
		[ 'NULL args where one is needed', q{SELECT stage.transform(NULL, 'default', NULL)}, qr/^22023$/ ],
		[ 'args an array', q{SELECT stage.transform('x', 'map', '[1]')}, qr/^22023$/ ],
		[ 'args a string', q{SELECT stage.transform('x', 'map', '"values"')}, qr/^22023$/ ],
		[ 'args a number', q{SELECT stage.transform('x', 'trim', '5')}, qr/^22023$/ ],
		[ 'args JSON null', q{SELECT stage.transform('x', 'trim', 'null')}, qr/^22023$/ ],
		[ 'map values an array', q{SELECT stage.transform('x', 'map', '{"values": ["x"]}')}, qr/^22023$/ ],
		[ 'map value an object', q{SELECT stage.transform('x', 'map', '{"values": {"x": {"a": 1}}}')}, qr/^22023$/ ],
		[ 'nullif values numbers', q{SELECT stage.transform('x', 'nullif', '{"values": [1, 2]}')}, qr/^22023$/ ],
		[ 'trim chars a number', q{SELECT stage.transform('x', 'trim', '{"chars": 5}')}, qr/^22023$/ ],
		[ 'default value an object', q{SELECT stage.transform('x', 'default', '{"value": {"a": 1}}')}, qr/^22023$/ ],
		[ 'boolean words a string', q{SELECT stage.transform('x', 'boolean', '{"true": "yes"}')}, qr/^22023$/ ],
		[ 'lookup outside a batch', q{SELECT stage.transform('x', 'lookup', '{"table": "vic.codes", "key": "k", "value": "v"}')}, qr/^22023$/ ],
		[ 'expression outside a batch', q{SELECT stage.transform('x', 'expression', '{"sql": "pg_sleep(10)"}')}, qr/^22023$/ ],
	);
	my $sql = q{\set VERBOSITY terse
CREATE TEMP TABLE big AS SELECT repeat('a', 104857600) AS v;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	t0 timestamptz := clock_timestamp();
	r text;
BEGIN
	BEGIN
		EXECUTE q INTO r;
		r := 'ok:' || COALESCE(left(r, 40), '<null>');
	EXCEPTION WHEN OTHERS THEN
		r := SQLSTATE;
	END;
	RETURN r || '|' || round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3);
END $f$;
};
	for my $c (@cases)
	{
		$sql .= "SELECT pg_temp.try(\$qz\$$c->[1]\$qz\$);\n";
	}
	$sql .= "SELECT 'still here';\n";
	my $t0 = time;
	my ($ret, $out, $err) = as_role('str', $sql, on_error_stop => 1);
	my $took = time - $t0;
	is($ret, 0, 'stage.transform: a role without privileges makes ' . scalar(@cases) . ' calls with the worst arguments in one session')
	  or diag($err);
	my @lines = split /\n/, $out;
	is($lines[-1] // '', 'still here', 'stage.transform: the session answers after all of them');
	for my $i (0 .. $#cases)
	{
		my ($name, undef, $want, $limit) = @{ $cases[$i] };
		my ($res, $secs) = split /\|/, ($lines[$i] // '');
		like($res // 'no answer', $want, "stage.transform: $name: " . ($res // 'no answer'));
		cmp_ok($secs // 999, '<', $limit, "stage.transform: $name fails fast (" . ($secs // '?') . " s < $limit s)")
		  if $limit;
	}
	note sprintf('the %d calls took %.1f s', scalar(@cases), $took);
	server_ok('stage.transform');
}

# =============================================== 5. masked columns

su(
	q{
CREATE TABLE vic.m (id integer PRIMARY KEY, code text, born date, tag text, _stage_id bigint);
ALTER TABLE vic.m OWNER TO vic;
});
safe_as(
	'vic', q{
CREATE FUNCTION vic.strict_tag(t text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	IF t <> 'ok' THEN
		RAISE EXCEPTION 'bad tag %', t;
	END IF;
	RETURN t;
END $f$;
SELECT stage.create_pipeline('vm', 'vic.m', key => '{id}');
SELECT stage.add_transform('vm', 'code', 'map', '{"values": {"A": "alpha"}, "else": "reject"}');
SELECT stage.add_transform('vm', 'born', 'date', '{"format": "YYYY-MM-DD"}');
SELECT stage.add_transform('vm', 'tag', 'expression', '{"sql": "vic.strict_tag(tag)"}');
SELECT stage.add_mask('vm', 'code', 'constant', '{"value": "[hidden]"}');
SELECT stage.add_mask('vm', 'born', 'null');
SELECT stage.add_mask('vm', 'tag', 'constant', '{"value": "[hidden]"}');
SELECT stage.grant_producer('vm', 'feed');
});
{
	my $l = landing('vm');
	# the markers are assembled by the server: no statement holds them
	safe_as('feed', qq{INSERT INTO $l (id, code, born, tag) VALUES
		('1', 'QZ' || 'MAPRAW', '2000-01-01', 'ok'),
		('2', 'A', 'QZ' || 'DATERAW', 'ok'),
		('3', 'A', '2000-01-01', 'QZ' || 'EXPRRAW'),
		('4', 'A', '2000-01-01', 'ok')});
	is(safe_as('vic', q{SELECT rows_in || ' ' || rows_clean || ' ' || rows_quarantined FROM stage.run_batch('vm')}),
		'4 1 3', 'masking: the map, the date and the expression fail on masked columns: three rows quarantined');
	my $q = safe_as('ana', q{SELECT string_agg(q::text, E'\n' ORDER BY landing_id) FROM stage.quarantine q WHERE pipeline = 'vm'});
	my %reason = map { my ($id, $v, $m) = split /\|/; ($id => [ $v, $m ]) }
	  split /\n/, safe_as('ana', q{SELECT landing_id, COALESCE(reasons->0->>'value', 'null'), reasons->0->>'message'
		FROM stage.quarantine WHERE pipeline = 'vm' ORDER BY landing_id});
	is(join(',', sort keys %reason), '1,2,3', 'masking: control: ana reads the three rows');
	is($reason{1}[0], '[hidden]', 'masking: the map\'s reason shows ana the masked value');
	like($reason{1}[1], qr/^transform map failed: the value could not be transformed \(the column is masked: the details are withheld\)$/, 'masking: the map\'s message is withheld from ana');
	is($reason{2}[0], 'null', 'masking: the date\'s reason shows ana the masked value (the null mask)');
	like($reason{2}[1], qr/^transform date failed: the value could not be transformed \(the column is masked: the details are withheld\)$/, 'masking: the date\'s message is withheld too (dates quote fields of the value)');
	is($reason{3}[0], '[hidden]', 'masking: the expression\'s reason shows ana the masked value');
	like($reason{3}[1], qr/P0001.*withheld/, 'masking: the expression\'s message (which quotes the value) is withheld from ana');
	unlike($q, qr/QZ|MAPRAW|DATERAW|EXPRRAW/i, 'masking: no part of ana\'s quarantine holds a raw value');
	my $dlq = safe_as('ana', q{SELECT string_agg(d::text, E'\n') FROM stage.dlq_summary d WHERE pipeline = 'vm'});
	unlike($dlq, qr/QZ/i, 'masking: nor does the DLQ summary');
	unlike(safe_as('vic', q{SELECT string_agg(q::text, E'\n') FROM stage.quarantine q WHERE pipeline = 'vm'}), qr/QZ/i,
		'masking: nor the owner\'s masked view');
	my $raw = safe_as('vic', q{SELECT string_agg(q::text, E'\n') FROM stage.quarantine_raw('vm') q});
	like($raw, qr/QZMAPRAW.*QZDATERAW.*QZEXPRRAW/s, 'masking: control: the owner reads the raw rows with quarantine_raw');
	like($raw, qr/bad tag QZEXPRRAW/, 'masking: control: the owner reads the expression\'s own message');

	# a replay by the owner, and check_row by everyone, show nothing more
	my $rp = safe_as('vic', q{SELECT string_agg(outcome, ',') FROM stage.replay('vm', dry_run => true)});
	is($rp, 'quarantine,quarantine,quarantine', 'masking: control: a dry-run replay quarantines them again');
	for my $role ('feed', 'ana')
	{
		my $c = safe_as($role, q{SELECT stage.check_row('vm', jsonb_build_object('id', '9', 'code', 'QZ' || 'MAPCHECK', 'born', 'QZ' || 'DATECHECK'))});
		like($c, qr/"rule": "code_map", "value": "\[masked\]"/, "masking: check_row by $role reports the map on the masked column as [masked]");
		unlike($c, qr/QZ/i, "masking: check_row by $role quotes no part of the value");
	}
	my $log = slurp_file($node->logfile);
	like($log, qr/STATEMENT:  SELECT stage\.preview\('vp', .*'QZ' \|\| 'PREVIEW/,
		'masking: control: the log holds the statements that failed (the markers in two parts)');
	unlike($log, qr/QZ(MAPRAW|DATERAW|EXPRRAW|PREVIEW|NOTE|CHECK|MAPCHECK|DATECHECK)/i,
		'masking: the server log holds none of the raw values (map, date, expression, preview, check_row)');
}

# ============================================ 6. add_landing_column

su(
	q{
CREATE TABLE vic.lc (id integer PRIMARY KEY, v text, _stage_id bigint);
ALTER TABLE vic.lc OWNER TO vic;
CREATE TABLE vic.j (id integer PRIMARY KEY, v text);
ALTER TABLE vic.j OWNER TO vic;
});
safe_as(
	'vic', q{
SELECT stage.create_pipeline('vlc', 'vic.lc', key => '{id}');
SELECT stage.grant_producer('vlc', 'feed');
SELECT stage.create_pipeline('vj', 'vic.j', key => '{id}', format => 'jsonb');
});
{
	my $lt = landing('vlc');
	my $relacl = su(qq{SELECT relacl::text FROM pg_class WHERE oid = '$lt'::regclass});
	my $ncols = su(qq{SELECT count(*) FROM pg_attribute WHERE attrelid = '$lt'::regclass AND attnum > 0 AND NOT attisdropped});
	my @made = (
		[ q{x"; DROP TABLE vic.lc; --}, 'a double quote and an injection' ],
		[ q{y'); DROP TABLE vic.lc; --}, 'a single quote and an injection' ],
		[ 'x' x 63, '63 characters' ],
		[ 'Ünïcödé ☃ 名前', 'Unicode' ],
		[ ' ', 'a space' ],
		[ 'ID', 'a name that differs from a column in case' ],
		[ '$1', 'a parameter symbol' ],
		[ '_STAGE_id', '_STAGE_ in upper case' ]);
	for my $m (@made)
	{
		my ($name, $what) = @$m;
		(my $lit = $name) =~ s/'/''/g;
		is(sqlstate_as('vic', qq{SELECT stage.add_landing_column('vlc', '$lit')}), 'no error',
			"landing columns: a name with $what is accepted");
		is(su(qq{SELECT count(*) FROM pg_attribute WHERE attrelid = '$lt'::regclass AND attname = '$lit' AND NOT attisdropped}),
			'1', "landing columns: the column with $what is made with exactly that name");
		is( su(
				qq{SELECT has_column_privilege('feed', '$lt'::regclass, '$lit', 'INSERT') || ' '
				|| has_column_privilege('feed', '$lt'::regclass, '$lit', 'SELECT,UPDATE,REFERENCES') || ' '
				|| has_column_privilege('ana', '$lt'::regclass, '$lit', 'INSERT,SELECT,UPDATE,REFERENCES') || ' '
				|| has_column_privilege('str', '$lt'::regclass, '$lit', 'INSERT,SELECT,UPDATE,REFERENCES')}),
			'true false false false',
			"landing columns: the producer may INSERT into the column with $what, and nothing else; the analyst and the stranger nothing");
	}
	is( su(
			qq{SELECT string_agg(DISTINCT x.grantee::regrole::text || ' ' || x.privilege_type, ',')
			  FROM pg_attribute a, aclexplode(a.attacl) x
			 WHERE a.attrelid = '$lt'::regclass AND a.attnum > 0 AND NOT a.attisdropped}),
		'feed INSERT,vic INSERT',
		'landing columns: the only column privileges of the landing table are INSERT for the producer and the owner');
	is(su(qq{SELECT relacl::text FROM pg_class WHERE oid = '$lt'::regclass}), $relacl,
		'landing columns: the table\'s own privileges are unchanged');
	is(su(q{SELECT count(*) FROM pg_class WHERE oid = 'vic.lc'::regclass}), '1', 'landing columns: the target table is still there');

	my @refused = (
		[ 'x' x 64, '42602', '64 characters' ],
		[ '', '42602', 'an empty name' ],
		[ "tab\there", '42602', 'a control character' ],
		[ '_stage_id', '42602', 'a name of stage\'s own columns' ],
		[ '_stage_evil', '42602', 'the prefix _stage_' ],
		[ 'id', '42701', 'a name of an existing column' ],
		[ q{x"; DROP TABLE vic.lc; --}, '42701', 'the injection again' ],
		[ 'ctid', '42701', 'a system column\'s name' ],
		[ 'tableoid', '42701', 'another system column\'s name' ]);
	for my $r (@refused)
	{
		my ($name, $state, $what) = @$r;
		(my $lit = $name) =~ s/'/''/g;
		is(sqlstate_as('vic', qq{SELECT stage.add_landing_column('vlc', E'$lit')}), $state,
			"landing columns: $what is refused ($state)");
	}
	is(sqlstate_as('vic', q{SELECT stage.add_landing_column('vlc', NULL)}), '42602', 'landing columns: NULL is refused (42602)');
	is(sqlstate_as('vic', q{SELECT stage.add_landing_column('vj', 'x')}), '42809',
		'landing columns: a pipeline of jsonb payloads is refused (42809)');
	for my $role ('mal', 'feed', 'ana', 'str')
	{
		is(sqlstate_as($role, q{SELECT stage.add_landing_column('vlc', 'qz_intruder')}), '42501',
			"landing columns: $role may not add one (42501)");
	}
	is(su(qq{SELECT count(*) FROM pg_attribute WHERE attrelid = '$lt'::regclass AND attnum > 0 AND NOT attisdropped}),
		$ncols + scalar(@made), 'landing columns: the refused calls added nothing');

	# end to end: the producer fills the hostile column, a transform reads it
	safe_as('vic', q{SELECT stage.add_transform('vlc', 'v', 'from', '{"column": "x\"; DROP TABLE vic.lc; --"}')});
	safe_as('feed', qq{INSERT INTO $lt (id, "x""; DROP TABLE vic.lc; --") VALUES ('1', 'through')});
	is(sqlstate_as('feed', qq{SELECT "x""; DROP TABLE vic.lc; --" FROM $lt}), '42501',
		'landing columns: the producer cannot read what it landed in the column (42501)');
	is(safe_as('vic', q{SELECT rows_in || ' ' || rows_clean FROM stage.run_batch('vlc'); SELECT v FROM vic.lc WHERE id = 1}),
		"1 1\nthrough", 'landing columns: a transform from the hostile column moves its value to the target');
}

# ============================================ 7. worker: owner code sleeps

su(
	q{
CREATE TABLE mal.slow (id integer PRIMARY KEY, v text, w text);
ALTER TABLE mal.slow OWNER TO mal;
CREATE TABLE vic.fast (id integer PRIMARY KEY, v text);
ALTER TABLE vic.fast OWNER TO vic;
}, db => 'wdb');
safe_as(
	'mal', q{
CREATE FUNCTION mal.nap(v text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM pg_catalog.set_config('statement_timeout', '0', false);
	IF v = 'slow' THEN
		PERFORM pg_catalog.pg_sleep(60);
	END IF;
	RETURN v;
END $f$;
SELECT stage.create_pipeline('wslow', 'mal.slow', key => '{id}');
SELECT stage.add_transform('wslow', 'w', 'expression', '{"sql": "mal.nap(v)"}');
}, db => 'wdb');
safe_as('vic', q{SELECT stage.create_pipeline('wfast', 'vic.fast', key => '{id}')}, db => 'wdb');
{
	$node->safe_psql(
		'postgres', q{
GRANT mal, vic TO wrk;
ALTER SYSTEM SET stage.worker_batch_timeout = 1000;
ALTER SYSTEM SET stage.databases = 'wdb';
ALTER SYSTEM SET stage.worker_role = 'wrk';
SELECT pg_reload_conf();
});
	ok($node->poll_query_until('wdb', q{SELECT count(*) = 1 FROM stage.workers WHERE pid IS NOT NULL}),
		'worker: the worker serves the database');
	my $pid = su(q{SELECT pid FROM stage.workers WHERE pid IS NOT NULL}, db => 'wdb');
	my $t0 = time;
	su(q{INSERT INTO stage_landing.wslow (id, v) VALUES ('1', 'slow'), ('2', 'quick')}, db => 'wdb');
	su(q{INSERT INTO stage_landing.wfast (id, v) VALUES ('1', 'x')}, db => 'wdb');
	my $failed = $node->poll_query_until('wdb',
		q{SELECT count(*) > 0 FROM stage.batches WHERE pipeline = 'wslow' AND status = 'failed'});
	my $took = time - $t0;
	ok($failed, 'worker: the batch whose expression sleeps fails');
	cmp_ok($took, '<', 15, sprintf('worker: it failed after %.1f s, well before the 60 s sleep (stage.worker_batch_timeout 1 s, the owner\'s statement_timeout 0 notwithstanding)', $took));
	is(su(q{SELECT string_agg(DISTINCT sqlstate || ' ' || run_by, ',') FROM stage.batches WHERE pipeline = 'wslow'}, db => 'wdb'),
		'57014 wrk', 'worker: the worker\'s batch was cancelled (57014)');
	is(su(q{SELECT count(*) FROM mal.slow}, db => 'wdb'), '0', 'worker: nothing of the cancelled batch is written');
	ok($node->poll_query_until('wdb', q{SELECT count(*) = 1 FROM vic.fast}), 'worker: another owner\'s pipeline moves meanwhile');
	is(su(q{SELECT pid FROM stage.workers WHERE pid IS NOT NULL}, db => 'wdb'), $pid, 'worker: the same worker goes on');
	su(q{SELECT stage.pause('wslow')}, db => 'wdb');
	$node->safe_psql('postgres', q{ALTER SYSTEM RESET stage.databases; SELECT pg_reload_conf();});
}

# ------------------------------------------------------------------ fixed
{
	# regex_replace goes match by match, and can be cancelled between them
	for my $call (
		q{SELECT length(stage.transform(repeat(repeat('a', 18) || 'b', 20000), 'regex_replace', '{"pattern": "(a+)+c|b", "replacement": "x"}'))},
		q{SELECT length(stage.regex_replace(repeat(repeat('a', 18) || 'b', 20000), '(a+)+c|b', 'x', 'g'))})
	{
		my $t0 = time;
		my $st = sqlstate_as('str', "SET statement_timeout = '1s';\n$call");
		my $took = time - $t0;
		is($st, '57014', 'fixed: a replacement over 20,000 costly matches is cancelled by statement_timeout');
		cmp_ok($took, '<', 6, sprintf('fixed: ... %.1f s after it started (1 s timeout)', $took));
	}
	is(su(q{SELECT stage.transform('a1b22c333', 'regex_replace', '{"pattern": "[0-9]+", "replacement": "<$0>"}')}),
		'a<1>b<22>c<333>', 'fixed: every match is still replaced, groups expanded');
	is(su(q{SELECT stage.regex_replace('abc', 'x*', '-', 'g')}), '-a-b-c-', 'fixed: empty matches as before');

	# a failing date on a masked column: no part of the value in the message
	su(q{
CREATE TABLE public.fx (id int PRIMARY KEY, born date);
SELECT stage.create_pipeline('fx', 'public.fx', key => '{id}');
SELECT stage.add_transform('fx', 'born', 'date', '{"format": "YYYY-MM-DD"}');
SELECT stage.add_mask('fx', 'born', 'null');
INSERT INTO stage_landing.fx (id, born) VALUES ('1', '1985-02-30'), ('2', '1985-13-01');
SELECT stage.run_batch('fx');});
	my $seen = safe_as('ana', q{SELECT reasons::text FROM stage.quarantine WHERE pipeline = 'fx'});
	unlike($seen, qr/1985|out of range|02-30|13/, 'fixed: a failing date on a masked column shows an analyst no part of the value');
	like($seen, qr/details are withheld.*details are withheld/s, 'fixed: ... the messages say they are withheld');

	# landing column names: 63 bytes, not characters
	is(sqlstate_as('postgres', q{SELECT stage.add_landing_column('fx', repeat('é', 63))}), '42602',
		'fixed: a landing column name of 63 two-byte characters is refused (longer than 63 bytes)');
	is(sqlstate_as('postgres', q{SELECT stage.add_landing_column('fx', repeat('é', 31))}), 'no error',
		'fixed: ... one of 62 bytes is taken');
	is(su(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'stage_landing.fx'::regclass AND attname = repeat('é', 31)}),
		'1', 'fixed: ... under its whole name');

	# role names that need quotes
	su(q{CREATE ROLE "Feed Two" LOGIN; SELECT stage.grant_producer('fx', '"Feed Two"');
		 SELECT stage.add_landing_column('fx', 'ref2');});
	safe_as(q{'Feed Two'}, q{INSERT INTO stage_landing.fx (id, ref2) VALUES ('3', 'x')});
	is(su(q{SELECT ref2 FROM stage_landing.fx WHERE id = '3'}), 'x',
		'fixed: a producer whose role name needs quotes is granted, and gets the columns added later');
	is(sqlstate_as('postgres', q{SELECT stage.revoke_producer('fx', '"Feed Two"')}), 'no error',
		'fixed: ... and revoked');
	su(q{SELECT stage.drop_pipeline('fx', force => true); DROP TABLE public.fx; DROP ROLE "Feed Two";});
}

server_ok('the end');
note sprintf('run time %.1f s', time - $t_start);
$node->stop;
done_testing();
