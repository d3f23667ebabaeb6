
# Copyright (c) the stage authors
#
# 008_cron.pl: pg_cron (the real postgresql-15-cron package) schedules
# stage.run_all() and stage.run_batch(), first without the background
# worker, then together with it, under a producer load.
#
# Phase 1, no worker (stage.databases is empty): cron jobs move the rows.
#   - 'stage-run-all':   SELECT stage.run_all()                 every minute
#   - 'stage-orders':    SELECT * FROM stage.run_batch('orders') every minute
#   - 'stage-drain':     CALL public.stage_drain(30)            every minute
# pg_cron 1.4 (Debian 12) schedules by the minute at the finest;
# stage_drain is the recipe of docs/cron.md for sub-minute hand-offs with it:
# a procedure that calls stage.run_all() and commits, every 50 ms, for 30 s.
# With pg_cron 1.5 or later, which accepts schedules like '1 seconds', the
# test schedules stage.run_all() every second instead.  The jobs run as
# stage_cron, an ordinary role granted the pipeline owner role.
#
# Phase 2: the worker is configured (stage.databases, stage.worker_role =
# stage_worker) while the cron jobs still run, so cron and the worker move
# the same pipeline at the same time.
#
# Shown: rows move without the worker; then both ran batches concurrently;
# the batches of the pipeline never overlap in time; the chunks of a window
# follow each other exactly; and at the end the accounts balance
# (StageTest::check_accounting: landing = target + quarantine + duplicates,
# no landing id in two places nor twice in the target, none lost, none
# invented, each taken by one committed batch).
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.  Skipped when pg_cron is not installed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use Time::HiRes qw(usleep time);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => 'pg_cron is not installed (Debian: postgresql-15-cron)'
  unless -f "$sharedir/extension/pg_cron.control";

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage,pg_cron'
cron.database_name = 'shop'
cron.host = '@{[ $node->host ]}'
max_connections = 40
stage.naptime = '100ms'
log_min_messages = warning
});
$node->start;

$node->safe_psql(
	'postgres', StageTest::shop_sql() . q{
CREATE ROLE stage_cron LOGIN;
GRANT shop_owner TO stage_cron;
});
$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
CREATE EXTENSION pg_cron;
} . StageTest::orders_sql() . q{

-- docs/cron.md: sub-minute hand-offs with a minute-granular pg_cron
CREATE PROCEDURE public.stage_drain(seconds integer, pause_ms integer DEFAULT 50)
LANGUAGE plpgsql AS $$
DECLARE
	until timestamptz := clock_timestamp() + make_interval(secs => seconds);
BEGIN
	WHILE clock_timestamp() < until LOOP
		PERFORM stage.run_all();
		COMMIT;
		PERFORM pg_sleep(pause_ms / 1000.0);
	END LOOP;
END
$$;
});

is($node->safe_psql('shop', 'SELECT count(*) FROM stage.workers'),
	'0', 'no stage worker runs (stage.databases is empty)');

# ------------------------------------------------------------ the jobs

my ($rc, $out, $err) = $node->psql('shop',
	q{SELECT cron.schedule('probe', '1 seconds', 'SELECT 1')});
my $seconds = $rc == 0;
$node->safe_psql('shop', q{SELECT cron.unschedule('probe')}) if $seconds;
note $seconds
  ? 'pg_cron accepts second schedules: stage.run_all() every second'
  : "pg_cron schedules by the minute ($err): stage_drain loops within each minute";

$node->safe_psql(
	'shop', q{
	SELECT cron.schedule_in_database('stage-orders', '* * * * *',
		$$SELECT * FROM stage.run_batch('orders')$$, 'shop', 'stage_cron');
});
if ($seconds)
{
	$node->safe_psql(
		'shop', q{
	SELECT cron.schedule_in_database('stage-run-all', '1 seconds',
		'SELECT stage.run_all()', 'shop', 'stage_cron');
});
}
else
{
	$node->safe_psql(
		'shop', q{
	SELECT cron.schedule_in_database('stage-run-all', '* * * * *',
		'SELECT stage.run_all()', 'shop', 'stage_cron');
	SELECT cron.schedule_in_database('stage-drain', '* * * * *',
		'CALL public.stage_drain(30)', 'shop', 'stage_cron');
});
}

# ------------------------------------------------------------ the load

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 50);

my $producer = StageTest::producer($script, $node->connstr('shop') . ' user=producer',
	qw(-c 2 -j 2 -R 100 -T 200))->start;

# ------------------------------------------------ phase 1: cron alone

my $t0 = time;
$node->poll_query_until(
	'shop', q{
	SELECT count(*) >= 3 FROM stage.batch WHERE status = 'done' AND run_by = 'stage_cron'})
  or die 'the cron jobs move nothing';
note sprintf('first cron batches %.1f s after scheduling', time - $t0);
# let cron alone run a little longer
usleep(5_000_000) unless $seconds;

my ($cron_batches, $cron_rows, $others) = split /\|/,
  $node->safe_psql(
	'shop', q{
	SELECT count(*) FILTER (WHERE run_by = 'stage_cron'),
		   COALESCE(sum(rows_in) FILTER (WHERE run_by = 'stage_cron'), 0),
		   count(*) FILTER (WHERE run_by <> 'stage_cron')
	  FROM stage.batch WHERE status = 'done'});
cmp_ok($cron_rows, '>', 0,
	"without a worker, cron jobs moved $cron_rows rows in $cron_batches batches");
is($others, '0', 'every batch so far was run by the cron jobs');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stage worker'}),
	'0', 'and no stage worker exists');
$node->poll_query_until(
	'shop', q{
	SELECT count(DISTINCT j.jobname) = 2 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	 WHERE d.status = 'succeeded' AND j.jobname IN ('stage-run-all', 'stage-orders')})
  or die 'the cron jobs did not succeed';
pass('cron.job_run_details: stage.run_all() and stage.run_batch() jobs succeeded');

# ---------------------------------------- phase 2: cron and the worker

my $t_worker = $node->safe_psql('shop', 'SELECT clock_timestamp()');
StageTest::serve_database($node, 'shop');
$node->poll_query_until(
	'shop', qq{
	SELECT count(*) FILTER (WHERE run_by = 'stage_worker') >= 100
	   AND count(*) FILTER (WHERE run_by = 'stage_cron') >= 20
	  FROM stage.batch WHERE status = 'done' AND started_at > '$t_worker'})
  or die 'cron and the worker did not both run batches';
my $both = $node->safe_psql(
	'shop', qq{
	SELECT string_agg(run_by || ' ' || n || ' batches, ' || r || ' rows', '; ' ORDER BY run_by)
	  FROM (SELECT run_by, count(*) AS n, sum(rows_in) AS r FROM stage.batch
			 WHERE status = 'done' AND started_at > '$t_worker' GROUP BY run_by) x});
my $switches = $node->safe_psql(
	'shop', qq{
	SELECT count(*) FILTER (WHERE run_by <> prev) FROM (
		SELECT run_by, lag(run_by) OVER (ORDER BY batch_id) AS prev
		  FROM stage.batch WHERE status = 'done' AND started_at > '$t_worker') x});
cmp_ok($switches, '>=', 10,
	"cron and the worker moved the pipeline at the same time, taking turns $switches times ($both)");

# ------------------------------------------------------ drain and check

$producer->stop;
StageTest::wait_drained($node, 'shop', 'orders');

my ($landing) = StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');
cmp_ok($landing, '>', 20000, 'the producer landed a real load');
is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM (
		SELECT started_at, lag(finished_at) OVER (ORDER BY started_at) AS prev_end
		  FROM stage.batch WHERE status = 'done') x
	 WHERE started_at < prev_end}),
	'0',
	'no two batches overlapped in time, whether cron or the worker ran them');
is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM (
		SELECT from_id, from_txid, win_hi::text AS hi,
			   lag(to_id) OVER w AS prev_to_id, lag(to_txid) OVER w AS prev_to_txid,
			   lag(win_hi::text) OVER w AS prev_hi
		  FROM stage.batch WHERE status = 'done'
		WINDOW w AS (ORDER BY batch_id)) x
	 WHERE hi = prev_hi AND (from_id <> prev_to_id OR from_txid <> prev_to_txid)}),
	'0',
	'each chunk of a window starts exactly where the previous one ended');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM stage.batch WHERE status <> 'done'}),
	'0', 'no batch failed');
is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	 WHERE d.status = 'failed'}),
	'0', 'no cron job run failed');
is($node->safe_psql('shop', q{SELECT count(*) FROM public.orders WHERE email LIKE 'user%@example.com'}),
	'0', 'no raw email reached the target');

$node->stop;
done_testing();
