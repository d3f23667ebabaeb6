
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

$node->safe_psql(
	'postgres', q{
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT shop_owner TO stage_worker;
CREATE ROLE producer LOGIN;
CREATE DATABASE shop;
});
$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
} . StageTest::orders_sql() . q{
});

# the worker, configured once everything it needs exists
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET stage.databases = 'shop';
ALTER SYSTEM SET stage.worker_role = 'stage_worker';
SELECT pg_reload_conf();
});

# the pid of a worker that has connected, other than $old; '' if none
sub worker_pid
{
	my ($old) = @_;
	my $out = '';
	my $rc = $node->psql(
		'shop', qq{SELECT pid FROM stage.workers
			WHERE pid IS NOT NULL AND pid <> $old AND state IN ('idle', 'running')},
		stdout => \$out, stderr => \my $err);
	return $rc == 0 ? $out : '';
}

# wait for a worker other than $old; returns (pid, seconds since $t0)
sub wait_worker
{
	my ($old, $t0, $limit) = @_;
	while (time - $t0 < $limit)
	{
		my $pid = worker_pid($old);
		return ($pid, time - $t0) if $pid ne '';
		usleep(20_000);
	}
	return ('', time - $t0);
}

my ($first_pid) = wait_worker(0, time, 30);
isnt($first_pid, '', 'the launcher starts a worker for the database');
is( $node->safe_psql(
		'shop', qq{SELECT usename || ' ' || application_name || ' '
			   || (SELECT rolsuper FROM pg_roles WHERE rolname = usename)
		  FROM pg_stat_activity WHERE pid = $first_pid}),
	'stage_worker stage worker false',
	'the worker runs as the ordinary worker role, named "stage worker"');

# ------------------------------------------------------------ the producer
#
# 50 rows a transaction.  Bad rows (about 5%): amount out of range, unknown
# currency, code not matching the pattern (rules); qty not an integer (type
# check); qty 13 and NULL email (the target's CHECK and NOT NULL, isolated
# by bisection).  3% of the keys come from a small range: duplicates.
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 50);

my $producer;
my ($prod_out, $prod_err) = ('', '');

sub start_producer
{
	# bounded: 100 transactions (5,000 rows) a second for at most 300 s;
	# it dies with every crash and is started again
	$producer = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '2', '-j', '2', '-R', '100', '-T', '300',
			'-f', $script, $node->connstr('shop') . ' user=producer'
		],
		'>', \$prod_out, '2>', \$prod_err);
	return;
}

sub stop_producer
{
	return unless $producer;
	$producer->kill_kill(grace => 5);
	$producer = undef;
	return;
}

# ------------------------------------------------------------ the checks

my $placed = q{
	WITH p AS (SELECT pipeline_id FROM stage.pipeline WHERE name = 'orders'),
	placed AS MATERIALIZED (
		SELECT t._stage_id AS landing_id, 'target' AS place FROM public.orders t
		UNION ALL
		SELECT q.landing_id, 'quarantine' FROM stage.quarantine_log q, p
		 WHERE q.pipeline_id = p.pipeline_id
		UNION ALL
		SELECT d.landing_id, 'duplicate' FROM stage.duplicate_log d, p
		 WHERE d.pipeline_id = p.pipeline_id)
};

# in one snapshot: the committed batches took exactly the rows now placed,
# no landing id is placed twice, and every placed id is a landing row.
# Returns '' when all holds, else what failed.
sub check_accounts
{
	my $r = $node->safe_psql(
		'shop', $placed . q{
	SELECT concat_ws(' ',
		CASE WHEN (SELECT count(*) FROM placed)
				  <> (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b, p
					   WHERE b.pipeline_id = p.pipeline_id AND b.status = 'done')
			 THEN 'placed=' || (SELECT count(*) FROM placed) || ' batches took '
				  || (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b, p
					   WHERE b.pipeline_id = p.pipeline_id AND b.status = 'done') END,
		CASE WHEN EXISTS (SELECT 1 FROM placed GROUP BY landing_id HAVING count(*) > 1)
			 THEN 'twice=' || (SELECT count(*) FROM (SELECT 1 FROM placed GROUP BY landing_id
													 HAVING count(*) > 1) x) END,
		CASE WHEN EXISTS (SELECT 1 FROM placed
						   WHERE landing_id IS NULL
							  OR NOT EXISTS (SELECT 1 FROM stage_landing.orders l
											  WHERE l._stage_id = placed.landing_id))
			 THEN 'invented' END)});
	return $r;
}

# landing rows with lo < id <= hi that are in none of the three places
sub unplaced_count
{
	my ($lo, $hi) = @_;
	return $node->safe_psql(
		'shop', qq{
	SELECT count(*) FROM stage_landing.orders l
	 WHERE l._stage_id > $lo AND l._stage_id <= $hi
	   AND NOT EXISTS (SELECT 1 FROM public.orders t WHERE t._stage_id = l._stage_id)
	   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log q
					    WHERE q.landing_id = l._stage_id
						  AND q.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'orders'))
	   AND NOT EXISTS (SELECT 1 FROM stage.duplicate_log d
					    WHERE d.landing_id = l._stage_id
						  AND d.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'orders'))});
}

# ----------------------------------------------------------- kill rounds

my $catch_q = q{SELECT pid || ' ' || backend_xid FROM pg_stat_activity
	WHERE backend_type = 'stage worker' AND state = 'active'
	  AND query LIKE 'stage: run_batch%' AND backend_xid IS NOT NULL};

my ($rounds, $kills, $hits) = (0, 0, 0);
my %hits_by_kind = ('steady' => 0, 'backlog' => 0, 'second chunk' => 0);
my (@restart_times, @catchup_times);
my ($bad_restart, $bad_catchup, $bad_accounts, $bad_hits) = (0, 0, 0, 0);
my $worker = $first_pid;
my $checked_to = 0;    # landing ids up to here were all placed
my $t_rounds = time;

start_producer();

while ($hits < $want_hits
	&& $rounds < $max_rounds
	&& time - $t_rounds < $round_budget)
{
	$rounds++;
	my $kind = ('steady', 'backlog', 'second chunk')[ $rounds % 3 ];

	if ($kind ne 'steady')
	{
		$node->safe_psql('shop', q{SELECT stage.pause('orders')});
		$node->poll_query_until('shop', q{
			SELECT (SELECT count(*) FROM stage_landing.orders)
				   - (SELECT COALESCE(sum(rows_in), 0) FROM stage.batch
					   WHERE status = 'done') >= 7000})
		  or die 'the producer does not produce';
	}
	my $max_batch = $node->safe_psql('shop',
		'SELECT COALESCE(max(batch_id), 0) FROM stage.batch');
	$node->safe_psql('shop', q{SELECT stage.resume('orders')})
	  if $kind ne 'steady';

	# catch the worker in a batch; for a second chunk, in a batch that
	# continues a window whose first chunk is committed
	my $mon = $node->background_psql('shop');
	my $q = $catch_q;
	$q .= q{ AND (SELECT win_hi IS NOT NULL AND cur_id IS NOT NULL
				   FROM stage.pipeline WHERE name = 'orders')}
	  if $kind eq 'second chunk';
	my $found = '';
	my $deadline = time + 10;
	while ($found eq '' && time < $deadline)
	{
		$found = $mon->query_safe($q);
		usleep(500) if $found eq '';
	}
	if ($found eq '')
	{
		$mon->quit;
		note "round $rounds ($kind): worker not caught in a batch";
		next;
	}
	my ($pid, $xid) = split / /, $found;

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
	my ($new, $took) = wait_worker($pid, $t_kill, 60);
	push @restart_times, $took;
	if ($new eq '' || $took > $restart_bound)
	{
		$bad_restart++;
		diag sprintf("round %d: worker back after %.2f s (pid '%s')", $rounds, $took, $new);
	}
	$worker = $new;
	stop_producer();

	# a hit: the batch's transaction did not commit.  Its id may have been
	# handed out again after recovery if none of its WAL reached disk, but
	# never when it committed (the commit record is flushed); so any status
	# but "committed" -- or no status, for an id not yet reused -- means the
	# killed batch committed nothing.
	my $status = '';
	$node->psql('shop', "SELECT pg_xact_status('$xid'::xid8)",
		stdout => \$status, stderr => \my $xerr);
	$status = 'never logged' if $status eq '';
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
	my $t_catch = time;
	my $left;
	while (($left = unplaced_count($checked_to, $max_id)) ne '0'
		&& time - $t_catch < $catchup_bound)
	{
		usleep(50_000);
	}
	push @catchup_times, time - $t_catch;
	if ($left ne '0')
	{
		$bad_catchup++;
		diag "round $rounds: $left landing rows up to id $max_id not moved after $catchup_bound s";
	}
	else
	{
		$checked_to = $max_id;
	}

	my $acc = check_accounts();
	if ($acc ne '')
	{
		$bad_accounts++;
		diag "round $rounds: accounts do not balance: $acc";
	}

	start_producer();
}

stop_producer();

sub summary
{
	my @t = sort { $a <=> $b } @_;
	return 'none' unless @t;
	return sprintf('min %.2f s, median %.2f s, max %.2f s',
		$t[0], $t[ $#t / 2 ], $t[-1]);
}
note "rounds $rounds, kills $kills, hits $hits: "
  . join(', ', map { "$_ $hits_by_kind{$_}" } sort keys %hits_by_kind);
note 'worker back after SIGKILL: ' . summary(@restart_times);
note 'rows landed before the crash moved after: ' . summary(@catchup_times);

cmp_ok($hits, '>=', $want_hits,
	"$want_hits SIGKILLs hit the worker in a running batch ($hits of $kills kills in $rounds rounds)");
cmp_ok($hits_by_kind{'second chunk'}, '>=', 1,
	'some kills left a snapshot window open and half processed');
is($bad_hits, 0, 'no killed batch committed anything');
is($bad_restart, 0,
	"after every SIGKILL a new worker was serving within $restart_bound s ("
	  . summary(@restart_times) . ')');
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
$node->poll_query_until('shop', q{
	SELECT (SELECT count(*) FROM stage_landing.orders)
		   = (SELECT COALESCE(sum(rows_in), 0) FROM stage.batch WHERE status = 'done')})
  or die 'the worker does not drain the backlog';
note sprintf('worker drained the rest in %.2f s', time - $t_drain);
is($node->safe_psql('shop', q{SELECT rows_in || ' ' || status FROM stage.run_batch('orders')}),
	'0 empty', 'nothing left to move');

my ($landing, $target, $quarantined, $duplicate) = split /\|/,
  $node->safe_psql(
	'shop', q{
	SELECT (SELECT count(*) FROM stage_landing.orders),
		   (SELECT count(*) FROM public.orders),
		   (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
			 WHERE p.name = 'orders'),
		   (SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
			 WHERE p.name = 'orders')});
note "landing $landing = target $target + quarantine $quarantined + duplicate $duplicate";
cmp_ok($landing, '>', 50000, 'the producer landed a real load');
is($target + $quarantined + $duplicate,
	$landing, 'count(landing) = count(target) + count(quarantine) + count(duplicate)');
is(check_accounts(), '', 'the batches took every placed row once, none twice, none invented');
is(unplaced_count(0, '9223372036854775807'), '0',
	'every landing id is in one of target, quarantine, duplicates (nothing lost)');
is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM (SELECT _stage_id FROM public.orders GROUP BY _stage_id
						  HAVING count(*) > 1) twice}),
	'0',
	'no landing id twice in the target');

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

my ($by_rule, $by_target, $by_type) = split /\|/,
  $node->safe_psql(
	'shop', q{
	SELECT count(*) FILTER (WHERE reasons::text ~ '"kind": "(range|enum|regex)"'),
		   count(*) FILTER (WHERE reasons::text ~ '"sqlstate": "(23514|23502)"'),
		   count(*) FILTER (WHERE reasons::text ~ '"kind": "type"')
	  FROM stage.quarantine_log});
ok($by_rule > 0 && $by_target > 0 && $by_type > 0,
	"rows were quarantined by rules ($by_rule), target constraints ($by_target) and type checks ($by_type)");
ok($duplicate > 0, 'duplicate keys were resolved as duplicates');
is($node->safe_psql('shop', q{SELECT count(*) FROM public.orders WHERE email LIKE 'user%@example.com'}),
	'0', 'no raw email reached the target');

$node->stop;
done_testing();
