
# Copyright (c) the stage authors
#
# 002_worker_sigkill.pl: the background worker is SIGKILLed in the middle of
# its batches, under a producer load, 20 times.  After every kill and at
# the end the promise must hold: every committed landing row ends in exactly
# one of the target, stage.quarantine_log and stage.duplicate_log -- never
# two, never lost, never twice -- and the worker is back, with a new pid,
# within a bounded time.
#
# The worker does all the moving: stage.databases names the test database,
# stage.worker_role is an ordinary role granted the pipeline owner role, and
# the test itself never calls run_batch.  A pgbench producer lands 50 rows a
# transaction at 100 transactions a second (5,000 rows/s), about 5% of them
# bad in one way or another and some with duplicate keys.
#
# A round finds the worker in a batch (pg_stat_activity: backend_type
# 'stage worker', state active, query 'stage: run_batch(...)', and a
# transaction id, which the batch gets when it locks the pipeline row),
# waits a random moment and sends SIGKILL.  The postmaster resets all
# backends and runs crash recovery; the launcher starts a new worker.  The
# kill is a hit when the batch's transaction did not commit (pg_xact_status
# afterwards), i.e. it was killed before its commit.  Rounds of three
# kinds alternate:
#   - steady: the worker keeps up with the producer (small batches);
#   - backlog: the pipeline is paused until 7,000 rows wait, then resumed,
#     so the worker runs long batches of stage.batch_size = 5,000 rows;
#   - second chunk: like backlog, but the kill waits until the worker has
#     committed the first chunk of the snapshot window, so the crash leaves a
#     window open and half processed, which the next worker must finish.
# After each round: the killed batch committed nothing, the worker came
# back within $restart_bound seconds, every landing row that existed at the
# crash is moved within $catchup_bound seconds (nothing lost), and the
# committed batches account for the placed rows exactly once.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $want_hits = 20;       # SIGKILLs that must hit a running batch
my $max_rounds = 45;
my $round_budget = 150;   # seconds for the kill rounds
my $restart_bound = 10;   # seconds from SIGKILL to a new worker serving
my $catchup_bound = 20;   # seconds to move what had landed before the crash

my $node = PostgreSQL::Test::Cluster->new('worker_sigkill');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
restart_after_crash = on
max_connections = 40
stage.naptime = '100ms'
stage.batch_size = 5000
log_min_messages = warning
});
$node->start;

# ------------------------------------------------------------- the pipeline

$node->safe_psql('postgres', StageTest::shop_sql());
$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
} . StageTest::orders_sql() . q{
});

# the worker, configured once everything it needs exists
StageTest::serve_database($node, 'shop');

my ($first_pid) = StageTest::wait_worker($node, 'shop', 0, time, 30);
isnt($first_pid, '', 'the launcher starts a worker for the database');
is( $node->safe_psql(
		'shop', qq{SELECT usename || ' ' || application_name || ' '
			   || (SELECT rolsuper FROM pg_roles WHERE rolname = usename)
		  FROM pg_stat_activity WHERE pid = $first_pid}),
	'stage_worker stage worker false',
	'the worker runs as the ordinary worker role, named "stage worker"');

# ------------------------------------------------------------ the producer
#
# 50 rows a transaction, about 5% of them bad in one way or another (see
# StageTest::write_producer), 3% of the keys from a small range: duplicates.
# Bounded: 100 transactions (5,000 rows) a second for at most 300 s; it
# dies with every crash and is started again.
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 50);
my $producer = StageTest::producer($script, $node->connstr('shop') . ' user=producer',
	qw(-c 2 -j 2 -R 100 -T 300));

# ----------------------------------------------------------- kill rounds

my ($rounds, $kills, $hits) = (0, 0, 0);
my %hits_by_kind = ('steady' => 0, 'backlog' => 0, 'second chunk' => 0);
my (@restart_times, @catchup_times);
my ($bad_restart, $bad_catchup, $bad_accounts, $bad_hits) = (0, 0, 0, 0);
my $worker = $first_pid;
my $checked_to = 0;    # landing ids up to here were all placed
my $t_rounds = time;

$producer->start;

while ($hits < $want_hits
	&& $rounds < $max_rounds
	&& time - $t_rounds < $round_budget)
{
	$rounds++;
	my $kind = ('steady', 'backlog', 'second chunk')[ $rounds % 3 ];

	my $max_batch = $node->safe_psql('shop',
		'SELECT COALESCE(max(batch_id), 0) FROM stage.batch');
	StageTest::hold_backlog($node, 'shop', 'orders', 7000) if $kind ne 'steady';

	# catch the worker in a batch; for a second chunk, in a batch that
	# continues a window whose first chunk is committed
	my ($pid, $xid, $mon) = StageTest::catch_batch($node, 'shop', 'orders', $kind eq 'second chunk');
	if (!defined $pid)
	{
		note "round $rounds ($kind): worker not caught in a batch";
		next;
	}

	# somewhere in the batch: a 5,000-row batch takes ~100-400 ms, a
	# 2,000-row second chunk less; a steady batch of a few dozen rows takes
	# a few ms and is killed at once (often just after its commit: a miss,
	# but a crash at a random moment of the worker's cycle all the same)
	usleep(int(rand({ 'steady' => 0, 'backlog' => 150_000, 'second chunk' => 40_000 }->{$kind})));
	my $log_offset = -s $node->logfile;
	my $t_kill = time;
	kill 'KILL', $pid or die "could not send SIGKILL to $pid: $!";
	$kills++;
	eval { $mon->quit; };

	$node->wait_for_log(qr/database system is ready to accept connections/,
		$log_offset);
	my ($new, $took) = StageTest::wait_worker($node, 'shop', $pid, $t_kill, 60);
	push @restart_times, $took;
	if ($new eq '' || $took > $restart_bound)
	{
		$bad_restart++;
		diag sprintf("round %d: worker back after %.2f s (pid '%s')", $rounds, $took, $new);
	}
	$worker = $new;
	$producer->stop;

	# a hit: the batch's transaction did not commit (any status but
	# "committed"; see StageTest::xact_status)
	my $status = StageTest::xact_status($node, 'shop', $xid);
	my $committed_by_pid = $node->safe_psql('shop',
		"SELECT count(*) FROM stage.batch WHERE batch_id > $max_batch AND xmin::text = '$xid' AND backend_pid = $pid"
	);
	if ($status ne 'committed')
	{
		$hits++;
		$hits_by_kind{$kind}++;
		$bad_hits++ if $committed_by_pid ne '0';
	}
	note sprintf(
		"round %d (%s): SIGKILL %s in transaction %s (%s), new worker %s after %.2f s",
		$rounds, $kind, $pid, $xid, $status eq 'committed' ? 'committed: a miss' : "$status: a hit",
		$new, $took);

	# nothing lost: what had landed before the crash is moved by the new
	# worker (all producer transactions died with the crash)
	my $max_id = $node->safe_psql('shop',
		'SELECT COALESCE(max(_stage_id), 0) FROM stage_landing.orders');
	my ($left, $took_catchup) = StageTest::wait_placed($node, 'shop', 'orders', 'public.orders',
		$checked_to, $max_id, $catchup_bound);
	push @catchup_times, $took_catchup;
	if ($left ne '0')
	{
		$bad_catchup++;
		diag "round $rounds: $left landing rows up to id $max_id not moved after $catchup_bound s";
	}
	else
	{
		$checked_to = $max_id;
	}

	my $acc = StageTest::accounting_faults($node, 'shop', 'orders', 'public.orders');
	if ($acc ne '')
	{
		$bad_accounts++;
		diag "round $rounds: accounts do not balance: $acc";
	}

	$producer->start;
}

$producer->stop;
note "rounds $rounds, kills $kills, hits $hits: "
  . join(', ', map { "$_ $hits_by_kind{$_}" } sort keys %hits_by_kind);
note 'worker back after SIGKILL: ' . StageTest::time_summary(@restart_times);
note 'rows landed before the crash moved after: ' . StageTest::time_summary(@catchup_times);

cmp_ok($hits, '>=', $want_hits,
	"$want_hits SIGKILLs hit the worker in a running batch ($hits of $kills kills in $rounds rounds)");
cmp_ok($hits_by_kind{'second chunk'}, '>=', 1,
	'some kills left a snapshot window open and half processed');
is($bad_hits, 0, 'no killed batch committed anything');
is($bad_restart, 0,
	"after every SIGKILL a new worker was serving within $restart_bound s ("
	  . StageTest::time_summary(@restart_times) . ')');
is($bad_catchup, 0,
	"after every crash the rows landed before it were moved within $catchup_bound s");
is($bad_accounts, 0,
	'after every crash the committed batches account for the placed rows exactly once');

my $log = slurp_file($node->logfile);
my $killed = () = $log =~ /background worker "stage worker" \(PID \d+\) was terminated by signal 9/g;
is($killed, $kills, 'the postmaster saw every worker SIGKILL');

# ----------------------------------------------------- drain and check

# the producer is stopped: the worker alone empties the backlog
my $t_drain = time;
StageTest::wait_drained($node, 'shop', 'orders');
note sprintf('worker drained the rest in %.2f s', time - $t_drain);
is($node->safe_psql('shop', q{SELECT rows_in || ' ' || status FROM stage.run_batch('orders')}),
	'0 empty', 'nothing left to move');

my ($landing, undef, undef, $duplicate) =
  StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');
cmp_ok($landing, '>', 50000, 'the producer landed a real load');

# the worker did all the moving, as the worker role, across many lives
my ($by_worker, $others, $pids) = split /\|/,
  $node->safe_psql(
	'shop', q{
	SELECT count(*) FILTER (WHERE run_by = 'stage_worker'),
		   count(*) FILTER (WHERE run_by <> 'stage_worker'),
		   count(DISTINCT backend_pid)
	  FROM stage.batch WHERE status = 'done' AND rows_in > 0});
is($others, '0', 'every batch was run by the worker role');
cmp_ok($pids, '>', $kills / 2, "batches were run by many successive workers ($pids pids)");

my ($by_rule, $by_target, $by_type) = StageTest::orders_quarantined($node, 'shop');
ok($by_rule > 0 && $by_target > 0 && $by_type > 0,
	"rows were quarantined by rules ($by_rule), target constraints ($by_target) and type checks ($by_type)");
ok($duplicate > 0, 'duplicate keys were resolved as duplicates');
is($node->safe_psql('shop', q{SELECT count(*) FROM public.orders WHERE email LIKE 'user%@example.com'}),
	'0', 'no raw email reached the target');

$node->stop;
done_testing();
