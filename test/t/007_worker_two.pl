
# Copyright (c) the stage authors
#
# 007_worker_two.pl: two background workers share the pipelines of one
# database without ever processing the same rows twice.
#
# The launcher starts one worker for the database (stage.databases); a
# second one is started with stage.start_worker().  A pgbench producer lands
# about 5,000 rows/s spread over four pipelines (about 5% rejected by a
# rule, some duplicate keys).  Each worker takes a pipeline only when it
# can lock the pipeline's catalog row (FOR UPDATE SKIP LOCKED), so at any
# moment a pipeline without lanes is run by at most one of them (with
# lanes, see 015_lanes_workers.pl).
#
# Shown: both workers ran batches of several pipelines; the batches of one
# pipeline never overlap in time; the chunks of one snapshot window follow
# each other exactly (each starts where the previous one ended); and in the
# end every landing row of every pipeline is in exactly one of target,
# quarantine and duplicates.  Also: a worker started with
# stage.start_worker() is listed as such, is not restarted when it is
# terminated, counts against stage.max_workers, and only a superuser (or
# whoever is granted it) may start one.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use Time::HiRes qw(time);

my $load_seconds = 20;
my @pipelines = qw(p1 p2 p3 p4);

my $node = PostgreSQL::Test::Cluster->new('worker_two');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
max_connections = 40
stage.naptime = '100ms'
stage.max_workers = 2
# small chunks: windows are processed in several batches, by either worker
stage.batch_size = 50
log_min_messages = warning
});
$node->start;

$node->safe_psql('postgres', StageTest::shop_sql());
for my $p (@pipelines)
{
	$node->safe_psql(
		'shop', qq{
CREATE EXTENSION IF NOT EXISTS stage;
CREATE TABLE public.t_$p (id bigint PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
ALTER TABLE public.t_$p OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.create_pipeline('$p', 'public.t_$p', key => '{id}');
SELECT stage.add_rule('$p', 'v', 'enum', '{"values": ["ok"]}');
});
}
StageTest::serve_database($node, 'shop');
$node->poll_query_until('shop',
	q{SELECT count(*) = 1 FROM stage.workers WHERE state IN ('idle', 'running')})
  or die 'no worker';
my $w1 = $node->safe_psql('shop', 'SELECT pid FROM stage.workers');

# ------------------------------------------------------- the second worker

my ($rc, $out, $err) = $node->psql('shop', 'SET ROLE shop_owner; SELECT stage.start_worker()');
like($err, qr/permission denied for function start_worker/,
	'an ordinary role may not start a worker');
my $w2 = $node->safe_psql('shop', 'SELECT stage.start_worker()');
like($w2, qr/^\d+$/, 'stage.start_worker() starts a second worker and returns its pid');
$node->poll_query_until('shop',
	qq{SELECT count(*) = 1 FROM stage.workers WHERE pid = $w2 AND state IN ('idle', 'running')})
  or die 'the second worker does not start';
is( $node->safe_psql(
		'shop', q{SELECT string_agg(database || ' ' || started_by, ', ' ORDER BY started_by)
		  FROM stage.workers}),
	'shop stage.databases, shop stage.start_worker()',
	'stage.workers lists both, and who started them');
($rc, $out, $err) = $node->psql('shop', 'SELECT stage.start_worker()');
like($err, qr/all 2 stage worker slots are in use/,
	'a worker beyond stage.max_workers is refused');

# ------------------------------------------------------------ the load

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = "$tmp/produce.sql";
open my $fh, '>', $script or die "could not write $script: $!";
print $fh "BEGIN;\n";
for my $p (@pipelines)
{
	print $fh qq{INSERT INTO stage_landing.$p (id, v)
SELECT CASE WHEN random() < 0.03 THEN floor(random() * 500)
			ELSE floor(random() * 1000000000) END::bigint::text,
	   CASE WHEN random() < 0.05 THEN 'bad' ELSE 'ok' END
  FROM generate_series(1, 13);
};
}
print $fh "END;\n";
close $fh;

my $t0 = time;
my $prod_out = StageTest::producer($script, $node->connstr('shop'),
	qw(-c 2 -j 2 -R 100 -T), $load_seconds)->start->finish;
note sprintf('producer ran %.1f s: %s', time - $t0,
	join(' ', grep { /^(number of transactions actually|tps)/ } split /\n/, $prod_out));

StageTest::wait_drained($node, 'shop', @pipelines);

# ------------------------------------------------------------ the proof

StageTest::check_accounting($node, 'shop', $_, "public.t_$_") for @pipelines;

my $by_worker = $node->safe_psql(
	'shop', qq{
	SELECT string_agg(w, ', ' ORDER BY w) FROM (
		SELECT CASE backend_pid WHEN $w1 THEN 'configured' WHEN $w2 THEN 'started' ELSE 'other' END
			   || ': ' || count(*) || ' batches of ' || count(DISTINCT pipeline_id) || ' pipelines' AS w
		  FROM stage.batch WHERE status = 'done' GROUP BY backend_pid) x});
note "batches by worker: $by_worker";
my ($n1, $p1, $n2, $p2) = split /\|/,
  $node->safe_psql(
	'shop', qq{
	SELECT count(*) FILTER (WHERE backend_pid = $w1), count(DISTINCT pipeline_id) FILTER (WHERE backend_pid = $w1),
		   count(*) FILTER (WHERE backend_pid = $w2), count(DISTINCT pipeline_id) FILTER (WHERE backend_pid = $w2)
	  FROM stage.batch WHERE status = 'done'});
ok($n1 > 0 && $n2 > 0, "both workers ran batches ($by_worker)");
ok($p1 >= 2 && $p2 >= 2, 'each worker ran batches of several pipelines');
is( $node->safe_psql(
		'shop', qq{SELECT count(*) FROM stage.batch WHERE backend_pid NOT IN ($w1, $w2)}),
	'0', 'only the two workers ran batches');

is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM (
		SELECT started_at, lag(finished_at) OVER (PARTITION BY pipeline_id ORDER BY started_at) AS prev_end
		  FROM stage.batch WHERE status = 'done') x
	 WHERE started_at < prev_end}),
	'0',
	'the batches of one pipeline never overlap in time, whichever worker ran them');

my ($chunks, $breaks) = split /\|/,
  $node->safe_psql(
	'shop', q{
	SELECT count(*), count(*) FILTER (WHERE from_id <> prev_to_id OR from_txid <> prev_to_txid)
	  FROM (SELECT from_id, from_txid, win_hi::text AS hi,
				   lag(to_id) OVER w AS prev_to_id, lag(to_txid) OVER w AS prev_to_txid,
				   lag(win_hi::text) OVER w AS prev_hi
			  FROM stage.batch WHERE status = 'done'
			WINDOW w AS (PARTITION BY pipeline_id ORDER BY batch_id)) x
	 WHERE hi = prev_hi});
is($breaks, '0',
	'each chunk of a window starts exactly where the previous one ended, whichever worker ran it');
cmp_ok($chunks, '>', 0, "windows were processed in several chunks ($chunks continued one)");

# --------------------------------------------- a started worker, terminated

$node->safe_psql('shop', "SELECT pg_terminate_backend($w2)");
$node->poll_query_until('shop', qq{SELECT count(*) = 0 FROM stage.workers WHERE pid = $w2})
  or die 'the terminated worker is still listed';
# a negative check: the launcher (which looks every second) starts no
# replacement for a worker of stage.start_worker()
sleep 2;
is( $node->safe_psql('shop', q{SELECT string_agg(pid || ' ' || started_by, ',') FROM stage.workers}),
	"$w1 stage.databases",
	'a worker started by stage.start_worker() is not restarted; the configured one runs on');
my $w3 = $node->safe_psql('shop', 'SELECT stage.start_worker()');
like($w3, qr/^\d+$/, 'its slot is free for another');

$node->stop;
done_testing();
