
# Copyright (c) the stage authors
#
# 004_worker_failures.pl: what the background worker does when batches fail,
# who it runs as, and what it runs.
#
#  - A pipeline whose target raises a non-row error (a trigger raising
#    SQLSTATE XX000) fails batch after batch: each failure is recorded in
#    stage.batches (status 'failed', error, SQLSTATE, run_by the worker
#    role), the pipeline backs off (failures, retry_at; 1 s, then 2 s), and
#    after stage.max_failures consecutive failures it is paused with the
#    reason; stage.resume clears it and the rows move.  Nothing of a failed
#    batch remains, and the other pipelines keep flowing meanwhile.
#  - A pipeline whose owner lost INSERT on the target fails with SQLSTATE
#    42501; once the grant is back, the next batch succeeds and the series
#    of failures is reset.
#  - The worker runs as stage.worker_role (an ordinary role), batches record
#    it in run_by, and a superuser as stage.worker_role is refused.
#  - The database owner is hostile: ALTER DATABASE ... SET search_path =
#    hostile, pg_catalog, public, with shadow functions and operators in
#    schema hostile (pg_catalog named after hostile, which is strictly
#    stronger than "hostile, public", where pg_catalog is implicitly
#    searched first).  The worker calls none of them, and the target's
#    trigger sees search_path pinned to pg_catalog, pg_temp.
#  - An insert into a landing table wakes the worker at its commit, even
#    with stage.naptime at one minute.
#  - stage.workers and pg_stat_activity show the worker.
#
#  - A pipeline whose owner the worker role is not a member of is left out,
#    and does not stop the others; removing the database from
#    stage.databases stops its worker.
#
#  - A pipeline with a large backlog does not hold up the others.
#
#  - A pipeline whose batch failed is not tried again in the same pass,
#    even when other pipelines keep the pass going: it waits for retry_at.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('worker_failures');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
stage.naptime = '100ms'
stage.max_failures = 3
log_min_messages = warning
});
$node->start;

# poll $sql every 10 ms until it returns $want; returns the seconds it took
# from $t0, or undef after $limit seconds
sub wait_for
{
	my ($sql, $want, $t0, $limit) = @_;
	while (time - $t0 < $limit)
	{
		return time - $t0 if $node->safe_psql('shop', $sql) eq $want;
		usleep(10_000);
	}
	return undef;
}

# ------------------------------------------------------------------ setup

$node->safe_psql(
	'postgres', q{
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE other_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT shop_owner TO stage_worker;
CREATE ROLE shop_dba LOGIN;
CREATE DATABASE shop OWNER shop_dba;
});

# the database owner (not a superuser) sets a trap for whoever connects
$node->safe_psql(
	'shop', q{
SET ROLE shop_dba;
CREATE SCHEMA hostile;
GRANT USAGE ON SCHEMA hostile TO PUBLIC;
CREATE TABLE hostile.calls (fn text, by_user name, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON hostile.calls TO PUBLIC;
CREATE FUNCTION hostile.pg_try_advisory_xact_lock(integer, integer) RETURNS boolean
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hostile.calls (fn, by_user) VALUES ('pg_try_advisory_xact_lock', current_user);
	RETURN false;
END $$;
CREATE FUNCTION hostile.now() RETURNS timestamptz
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hostile.calls (fn, by_user) VALUES ('now', current_user);
	RETURN '-infinity';
END $$;
CREATE FUNCTION hostile.statement_timestamp() RETURNS timestamptz
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hostile.calls (fn, by_user) VALUES ('statement_timestamp', current_user);
	RETURN '-infinity';
END $$;
CREATE FUNCTION hostile.int4eq(integer, integer) RETURNS boolean
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hostile.calls (fn, by_user) VALUES ('= integer', current_user);
	RETURN false;
END $$;
CREATE OPERATOR hostile.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.int4eq);
CREATE FUNCTION hostile.texteq(text, text) RETURNS boolean
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hostile.calls (fn, by_user) VALUES ('= text', current_user);
	RETURN false;
END $$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.texteq);
ALTER DATABASE shop SET search_path = hostile, pg_catalog, public;
});
# ... which this test's own sessions (postgres) step around
$node->safe_psql('postgres',
	q{ALTER ROLE postgres IN DATABASE shop SET search_path = "$user", public});

$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
CREATE TABLE public.good (id integer PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
CREATE TABLE public.flaky (id integer PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
CREATE TABLE public.locked (id integer PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
-- what the target's code sees when the worker writes
CREATE TABLE public.trigger_seen (search_path text, by_user name, session_user_name name);
CREATE FUNCTION public.good_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.trigger_seen
	VALUES (pg_catalog.current_setting('search_path'), current_user, session_user);
	RETURN NULL;
END $$;
CREATE TRIGGER good_seen AFTER INSERT ON public.good
	FOR EACH STATEMENT EXECUTE FUNCTION public.good_seen();
-- a target that is down: every insert fails with an internal error
CREATE FUNCTION public.flaky_down() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'flaky target is down' USING ERRCODE = 'XX000';
END $$;
CREATE TRIGGER flaky_down BEFORE INSERT ON public.flaky
	FOR EACH ROW EXECUTE FUNCTION public.flaky_down();
ALTER TABLE public.good OWNER TO shop_owner;
ALTER TABLE public.flaky OWNER TO shop_owner;
ALTER TABLE public.locked OWNER TO shop_owner;
ALTER TABLE public.trigger_seen OWNER TO shop_owner;
ALTER FUNCTION public.good_seen() OWNER TO shop_owner;
ALTER FUNCTION public.flaky_down() OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.create_pipeline('good', 'public.good', key => '{id}');
SELECT stage.create_pipeline('flaky', 'public.flaky', key => '{id}');
SELECT stage.create_pipeline('locked', 'public.locked', key => '{id}');
-- the owner lost its right to write the target
REVOKE INSERT ON public.locked FROM shop_owner;
RESET ROLE;
INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(1, 10) g;
INSERT INTO stage_landing.flaky (id, v) SELECT g, 'f' FROM generate_series(1, 5) g;
});

# the trap is armed: a plain session of the worker role falls into it
is( $node->safe_psql(
		'shop', q{
	SELECT current_setting('search_path') || ' | '
		   || pg_try_advisory_xact_lock(1, 1) || ' ' || (1 = 1) || ' ' || ('a' = 'a')
		   || ' ' || (now() = '-infinity')},
		connstr => $node->connstr('shop') . ' user=stage_worker'),
	'hostile, pg_catalog, public | false false false true',
	'a plain session of the worker role calls the hostile functions and operators');
$node->safe_psql('shop', 'TRUNCATE hostile.calls');

# ------------------------------------------------------------- the worker

my $t_enable = time;
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET stage.databases = 'shop';
ALTER SYSTEM SET stage.worker_role = 'stage_worker';
SELECT pg_reload_conf();
});

$node->poll_query_until('shop', 'SELECT count(*) = 10 FROM public.good')
  or die 'the worker does not move rows';
note sprintf('rows moved %.2f s after the worker was configured', time - $t_enable);

my $worker = $node->safe_psql('shop', 'SELECT pid FROM stage.workers');
like($worker, qr/^\d+$/, 'one worker serves the database');
is( $node->safe_psql(
		'shop', qq{SELECT usename || ' ' || (SELECT rolsuper FROM pg_roles WHERE rolname = usename)
			|| ' ' || application_name || ' ' || backend_type || ' ' || datname
		  FROM pg_stat_activity WHERE pid = $worker}),
	'stage_worker false stage worker stage worker shop',
	'pg_stat_activity: the worker connects as the ordinary worker role, named "stage worker"');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(DISTINCT run_by, ',') FROM stage.batches WHERE pipeline = 'good'}),
	'stage_worker', 'stage.batches.run_by shows the worker role');

# ---------------------------------------------------- the hostile database

is($node->safe_psql('shop', 'SELECT count(*) FROM hostile.calls'),
	'0', 'the worker called no function or operator of the hostile schema');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(DISTINCT search_path || ' ' || by_user || ' ' || session_user_name, ',')
		  FROM public.trigger_seen}),
	'pg_catalog, pg_temp shop_owner stage_worker',
	'the target trigger ran as the pipeline owner, in a worker session, with search_path pinned');

# --------------------------------------------- a pipeline that keeps failing

# three consecutive failures, 1 s then 2 s apart, then a pause
$node->poll_query_until('shop',
	q{SELECT NOT enabled FROM stage.pipelines WHERE pipeline = 'flaky'})
  or die 'the failing pipeline was not paused';
my $failed = $node->safe_psql(
	'shop', q{
	SELECT string_agg(status || ' ' || sqlstate || ' ' || run_by || ' ' || error, E'\n' ORDER BY batch_id)
	  FROM stage.batches WHERE pipeline = 'flaky'});
is( $failed,
	join("\n", ('failed XX000 stage_worker flaky target is down') x 3),
	'each failed batch is recorded with its error, SQLSTATE and the worker role');
my ($gap1, $gap2) = split /\n/,
  $node->safe_psql(
	'shop', q{
	SELECT round(extract(epoch FROM started_at - lag(started_at) OVER w), 2)
	  FROM stage.batches WHERE pipeline = 'flaky'
	WINDOW w AS (ORDER BY batch_id) ORDER BY batch_id OFFSET 1});
note "retries of the failing pipeline after $gap1 s and $gap2 s";
# the worker's rounds (each pipeline one batch per round, until no pipeline
# had rows) leave out a pipeline that failed: here the good pipeline's rows
# keep the pass going for more rounds
ok($gap1 >= 0.9 && $gap2 >= 1.9 && $gap2 > $gap1,
	"the pipeline backs off between failures (retried after $gap1 s, then $gap2 s)");
is( $node->safe_psql(
		'shop', q{SELECT enabled || ' ' || failures || ' ' || paused_reason
		  FROM stage.pipelines WHERE pipeline = 'flaky'}),
	'false 3 paused after 3 consecutive failed batches; last: flaky target is down (SQLSTATE XX000)',
	'after stage.max_failures failures the pipeline is paused with the reason');
is( $node->safe_psql(
		'shop', q{SELECT (SELECT count(*) FROM public.flaky) || ' '
			|| (SELECT count(*) FROM stage.quarantine WHERE pipeline = 'flaky')}),
	'0 0', 'a failed batch leaves nothing behind');
# stage.workers is for everyone who may see the pipeline: the condition,
# not the server's text (which owners read in stage.batches)
is($node->safe_psql('shop', "SELECT last_error FROM stage.workers WHERE pid = $worker"),
	'batch of pipeline "flaky" failed: internal_error (SQLSTATE XX000); see stage.batches',
	'stage.workers shows the last error');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM stage.batches WHERE pipeline = 'locked'}),
	'0', 'a pipeline without pending rows runs no batch');

# the other pipelines flow while one fails
$node->safe_psql('shop',
	q{INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(11, 20) g});
$node->poll_query_until('shop', 'SELECT count(*) = 20 FROM public.good')
  or die 'the good pipeline stopped';
pass('another pipeline flows while one is paused');

# the owner lost INSERT on the target: 42501; the grant back (within the
# first back-off second) ends the series
$node->safe_psql('shop',
	q{INSERT INTO stage_landing.locked (id, v) SELECT g, 'l' FROM generate_series(1, 3) g});
$node->poll_query_until('shop',
	q{SELECT count(*) >= 1 FROM stage.batches WHERE pipeline = 'locked' AND status = 'failed'})
  or die 'the locked pipeline did not fail';
like(
	$node->safe_psql(
		'shop', q{SELECT sqlstate || ' ' || error FROM stage.batches
		 WHERE pipeline = 'locked' ORDER BY batch_id LIMIT 1}),
	qr/^42501 permission denied for table locked$/,
	'a missing privilege fails the batch with SQLSTATE 42501');
$node->safe_psql('shop', 'GRANT INSERT ON public.locked TO shop_owner');
$node->poll_query_until('shop', 'SELECT count(*) = 3 FROM public.locked')
  or die 'the locked pipeline did not recover';
is( $node->safe_psql(
		'shop', q{SELECT enabled || ' ' || failures || ' ' || (retry_at IS NULL) || ' '
			|| (paused_reason IS NULL) FROM stage.pipelines WHERE pipeline = 'locked'}),
	'true 0 true true', 'a successful batch ends a series of failures');

# the fix and the resume
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM stage.batches WHERE pipeline = 'flaky'}),
	'3', 'a paused pipeline is not retried');
$node->safe_psql(
	'shop', q{
	DROP TRIGGER flaky_down ON public.flaky;
	SET ROLE shop_owner;
	SELECT stage.resume('flaky');
});
is( $node->safe_psql(
		'shop', q{SELECT enabled || ' ' || failures || ' ' || (retry_at IS NULL) || ' '
			|| (paused_reason IS NULL) FROM stage.pipelines WHERE pipeline = 'flaky'}),
	'true 0 true true', 'stage.resume clears the pause, the failures and the back-off');
$node->poll_query_until('shop', 'SELECT count(*) = 5 FROM public.flaky')
  or die 'the resumed pipeline does not move';
is( $node->safe_psql(
		'shop', q{SELECT status || ' ' || rows_in || ' ' || run_by FROM stage.batches
		 WHERE pipeline = 'flaky' ORDER BY batch_id DESC LIMIT 1}),
	'done 5 stage_worker', 'after the resume the worker moves the rows');
is($node->safe_psql('shop', 'SELECT count(*) FROM hostile.calls'),
	'0', 'through all of it, nothing of the hostile schema was called');

# ------------------------------------------------------ woken at the commit

$node->safe_psql('postgres',
	q{ALTER SYSTEM SET stage.naptime = '1min'; SELECT pg_reload_conf();});
# the worker has taken the new value when it naps for longer than the old
# one: pg_stat_activity.state_change moves at every pass it makes
my $napping = qq{SELECT wait_event = 'Extension' AND state = 'idle'
		AND clock_timestamp() - state_change > interval '1 s'
	  FROM pg_stat_activity WHERE pid = $worker};
$node->poll_query_until('shop', $napping)
  or die 'the worker does not nap';
my $t_ins = time;
$node->safe_psql('shop',
	q{INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(21, 30) g});
my $woke = wait_for('SELECT count(*) FROM public.good', '30', $t_ins, 30)
  // die 'rows not moved';
cmp_ok($woke, '<', 5,
	sprintf('an insert wakes the worker napping for a minute (moved after %.3f s)', $woke));

# not before the commit: an open transaction's rows are not woken for
my $open = $node->background_psql('shop');
$open->query_safe(
	q{BEGIN; INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(31, 40) g});
my $state_before = $node->safe_psql('shop',
	"SELECT state_change FROM pg_stat_activity WHERE pid = $worker");
$open->query_safe('SELECT pg_sleep(0.5)');
is( $node->safe_psql('shop', "SELECT state_change FROM pg_stat_activity WHERE pid = $worker"),
	$state_before, 'an uncommitted insert does not wake the worker');
$t_ins = time;
$open->query_safe('COMMIT');
$open->quit;
$woke = wait_for('SELECT count(*) FROM public.good', '40', $t_ins, 30)
  // die 'rows not moved';
cmp_ok($woke, '<', 5, sprintf('its commit does (moved after %.3f s)', $woke));
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET stage.naptime = '100ms'; SELECT pg_reload_conf();});

is( $node->safe_psql(
		'shop', qq{SELECT database || ' ' || (batches > 0) || ' ' || (rows >= 48) || ' '
			|| (started_at IS NOT NULL) || ' ' || (last_batch_at IS NOT NULL) || ' ' || started_by
		  FROM stage.workers WHERE pid = $worker}),
	'shop true true true true stage.databases',
	'stage.workers counts the batches and rows of the worker');

# --------------------------------------------------- a superuser is refused

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET stage.worker_role = 'postgres'; SELECT pg_reload_conf();});
# the running worker keeps the role it connected as; a new one reads the
# new value
$node->safe_psql('shop', "SELECT pg_terminate_backend($worker)");
$node->wait_for_log(qr/FATAL:  stage\.worker_role "postgres" is a superuser/, $log_offset);
pass('a worker that would connect as a superuser is refused');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stage worker'}),
	'0', 'no worker runs as a superuser');
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET stage.worker_role = 'stage_worker'; SELECT pg_reload_conf();});
my $t_fix = time;
$node->poll_query_until('shop',
	q{SELECT count(*) = 1 FROM stage.workers WHERE state IN ('idle', 'running')})
  or die 'no worker after restoring stage.worker_role';
note sprintf('worker back %.2f s after stage.worker_role was fixed', time - $t_fix);
$worker = $node->safe_psql('shop', 'SELECT pid FROM stage.workers');
$node->safe_psql('shop',
	q{INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(41, 50) g});
$node->poll_query_until('shop', 'SELECT count(*) = 50 FROM public.good')
  or die 'rows not moved';
pass('the worker is back as the ordinary role');

# ----------------------------------- pipelines the worker role may not run

# A pipeline of an owner the worker role is not a member of is left out:
# the worker neither runs it nor lets it stop the pipelines after it, and
# does not fill the log with refusals.
$node->safe_psql(
	'shop', q{
	CREATE TABLE public.other (id integer PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
	ALTER TABLE public.other OWNER TO other_owner;
	CREATE TABLE public.late (id integer PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
	ALTER TABLE public.late OWNER TO shop_owner;
	SET ROLE other_owner;
	SELECT stage.create_pipeline('other', 'public.other', key => '{id}');
	SET ROLE shop_owner;
	SELECT stage.create_pipeline('late', 'public.late', key => '{id}');
	RESET ROLE;
	INSERT INTO stage_landing.other (id, v) VALUES (1, 'o');
});
$log_offset = -s $node->logfile;
my $t_late = time;
$node->safe_psql('shop', q{INSERT INTO stage_landing.late (id, v) VALUES (1, 'l')});
my $late = wait_for('SELECT count(*) FROM public.late', '1', $t_late, 10);
ok(defined $late,
	sprintf('a pipeline the worker role does not own does not stop the others (moved after %.2f s)',
		$late // 10));
# a negative check: the worker has had many wakes to try the other one
usleep(1_000_000);
my $refusals = () = slurp_file($node->logfile, $log_offset) =~ /permission denied for pipeline "other"/g;
is($refusals, 0, 'the worker does not try a pipeline it may not run');
is($node->safe_psql('shop', 'SELECT count(*) FROM public.other'),
	'0', 'its rows stay in landing');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM stage.batches WHERE pipeline = 'other'}),
	'0', 'and no failed batch is recorded for it');
# once the worker role is a member of that owner too, its rows flow
$node->safe_psql('shop', 'GRANT other_owner TO stage_worker');
$node->poll_query_until('shop', 'SELECT count(*) = 1 FROM public.other')
  or die 'the granted pipeline does not move';
pass('granting the owner role to the worker role lets its pipeline move');

# ------------------------------------------------------- the time budget

# stage.batch_time_budget: how long a worker runs batches before it looks
# at the other pipelines.  A pipeline with a large backlog must not hold up
# the others: the worker runs its batches in rounds over the pipelines.
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET stage.batch_time_budget = '200ms';
ALTER SYSTEM SET stage.batch_size = 2000;
SELECT pg_reload_conf();
});
$node->safe_psql('shop', q{
	SELECT stage.pause('good');
	INSERT INTO stage_landing.good (id, v) SELECT g, 'g' FROM generate_series(1001, 300000) g;
	SELECT stage.resume('good');
});
# the worker is in the good pipeline's backlog (pipeline 1) ...
$node->poll_query_until('shop', q{SELECT count(*) > 2000 FROM public.good})
  or die 'the backlog does not move';
# ... when rows land for the flaky one (pipeline 2)
my $t_fair = time;
$node->safe_psql('shop',
	q{INSERT INTO stage_landing.flaky (id, v) SELECT g, 'f' FROM generate_series(101, 110) g});
my $fair = wait_for('SELECT count(*) FROM public.flaky', '15', $t_fair, 60);
my $drained = wait_for('SELECT count(*) FROM public.good', '299050', $t_fair, 60);
note sprintf('the other pipeline moved after %.2f s; the backlog was drained after %.2f s',
	$fair // -1, $drained // -1);
ok(defined $fair && $fair < 2,
	sprintf('a pipeline is served within seconds while another works off a backlog (%.2f s)',
		$fair // -1));
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET stage.batch_time_budget; ALTER SYSTEM RESET stage.batch_size; SELECT pg_reload_conf();});

# ------------------------------------------------ leaving stage.databases

$node->safe_psql('postgres',
	q{ALTER SYSTEM SET stage.databases = ''; SELECT pg_reload_conf();});
my $gone = wait_for(
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stage worker'},
	'0', time, 10);
ok(defined $gone,
	sprintf('removing the database from stage.databases stops its worker at the reload (%.2f s)',
		$gone // 10));

$node->stop;
done_testing();
