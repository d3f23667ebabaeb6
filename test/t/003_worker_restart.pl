
# Copyright (c) the stage authors
#
# 003_worker_restart.pl: the whole server is stopped in immediate mode while
# the background worker is in a batch, 10 times, and started again; then the
# worker is terminated with pg_terminate_backend in the middle of batches,
# and the launcher itself is terminated.  All under a producer load (pgbench,
# 5,000 rows/s, about 5% bad rows and some duplicate keys), with the worker
# doing all the moving.
#
# After every stop or termination: the batch that was running committed
# nothing, a new worker serves the database within $restart_bound seconds,
# every landing row committed before the event is moved (nothing lost), and
# the committed batches account for every placed row exactly once.  At the
# end: landing = target + quarantine + duplicates, and no landing id is in
# two places.
#
# The launcher replaces a worker that lived ten seconds or more at once, and
# one that died sooner after a delay that doubles each time (1 s, 2 s, ...
# up to 60 s): the first three terminations hit workers that have run for
# ten seconds, the last two hit their young successors.
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

my $want_stops = 10;      # immediate stops that must hit a running batch
my $max_rounds = 20;
my $terminations = 5;     # pg_terminate_backend of the worker
my $old_enough = 3;       # of which the first ones hit a worker that ran 10 s
my $at_once = 2;          # seconds: "replaced at once"
my $restart_bound = 10;   # seconds until a new worker serves
my $catchup_bound = 20;   # seconds to move what had landed before

my $node = PostgreSQL::Test::Cluster->new('worker_restart');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
max_connections = 40
stage.naptime = '100ms'
stage.batch_size = 5000
log_min_messages = warning
});
$node->start;

$node->safe_psql('postgres', StageTest::shop_sql());
$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
} . StageTest::orders_sql() . q{
});
StageTest::serve_database($node, 'shop');

# ------------------------------------------------------------ helpers

# the producer: 50 rows a transaction, 100 transactions a second
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 50);
my $producer = StageTest::producer($script, $node->connstr('shop') . ' user=producer',
	qw(-c 2 -j 2 -R 100 -T 300));

my $checked_to = 0;    # landing ids up to here were all placed

# wait until every landing row with an id up to $max_id is placed; returns
# the seconds it took, or undef
sub catch_up
{
	my ($max_id) = @_;
	my ($left, $took) = StageTest::wait_placed($node, 'shop', 'orders', 'public.orders',
		$checked_to, $max_id, $catchup_bound);
	return undef if $left ne '0';
	$checked_to = $max_id;
	return $took;
}

# pause the pipeline until 7,000 rows wait, then resume it, and catch the
# worker in the long batch that follows (in its second chunk when asked);
# returns (pid, xid, monitor session) or () if it was not caught
sub catch_long_batch
{
	my ($second_chunk) = @_;
	StageTest::hold_backlog($node, 'shop', 'orders', 7000);
	my @caught = StageTest::catch_batch($node, 'shop', 'orders', $second_chunk);
	usleep(int(rand($second_chunk ? 40_000 : 150_000))) if @caught;
	return @caught;
}

# did transaction $xid commit?  Returns (committed, its status)
sub xact_committed
{
	my ($xid) = @_;
	my $status = StageTest::xact_status($node, 'shop', $xid);
	return ($status eq 'committed', $status);
}

my ($first_pid) = StageTest::wait_worker($node, 'shop', 0, time, 30);
isnt($first_pid, '', 'the launcher starts a worker for the database');

# ---------------------------------------------- (b) immediate stops

my ($rounds, $stops, $hits) = (0, 0, 0);
my (@back_after_stop, @back_after_start, @catchup);
my ($bad_restart, $bad_catchup, $bad_accounts) = (0, 0, 0);
my $worker = $first_pid;

$producer->start;
while ($hits < $want_stops && $rounds < $max_rounds)
{
	$rounds++;
	my $second = $rounds % 2 == 0;
	my ($pid, $xid, $mon) = catch_long_batch($second);
	if (!defined $pid)
	{
		note "round $rounds: worker not caught in a batch";
		next;
	}
	my $t_stop = time;
	$node->stop('immediate');
	$stops++;
	eval { $mon->quit; };
	$producer->stop;
	$node->start;
	my $t_start = time;
	my ($new, $took) = StageTest::wait_worker($node, 'shop', 0, $t_start, 60);
	push @back_after_start, $took;
	push @back_after_stop, time - $t_stop;
	if ($new eq '' || $took > $restart_bound)
	{
		$bad_restart++;
		diag sprintf("round %d: worker back %.2f s after the start (pid '%s')", $rounds, $took, $new);
	}

	my ($committed, $status) = xact_committed($xid);
	$hits++ unless $committed;
	note sprintf(
		"round %d (%s): immediate stop while worker %s was in transaction %s (%s); "
		  . "new worker %s %.2f s after the start, %.2f s after the stop",
		$rounds, $second ? 'second chunk' : 'long batch', $pid, $xid,
		$committed ? 'committed: a miss' : "$status: a hit",
		$new, $took, time - $t_stop);

	my $max_id = $node->safe_psql('shop',
		'SELECT COALESCE(max(_stage_id), 0) FROM stage_landing.orders');
	my $c = catch_up($max_id);
	if (defined $c)
	{
		push @catchup, $c;
	}
	else
	{
		$bad_catchup++;
		diag "round $rounds: rows up to $max_id not all moved after $catchup_bound s";
	}
	my $acc = StageTest::accounting_faults($node, 'shop', 'orders', 'public.orders');
	if ($acc ne '')
	{
		$bad_accounts++;
		diag "round $rounds: accounts do not balance: $acc";
	}
	$worker = $new;
	$producer->start;
}

note "immediate stops: $stops in $rounds rounds, $hits in a running batch";
note 'worker serving after the start: ' . StageTest::time_summary(@back_after_start);
note 'worker serving after the stop: ' . StageTest::time_summary(@back_after_stop);
note 'rows landed before the stop moved after: ' . StageTest::time_summary(@catchup);
cmp_ok($hits, '>=', $want_stops,
	"$want_stops immediate stops hit the worker in a running batch ($hits of $stops)");
is($bad_restart, 0,
	"after every restart a worker was serving within $restart_bound s of the start ("
	  . StageTest::time_summary(@back_after_start) . ')');
is($bad_catchup, 0,
	"after every restart the rows landed before the stop were moved within $catchup_bound s");
is($bad_accounts, 0,
	'after every restart the committed batches account for the placed rows exactly once');

# --------------------------------------------- (c) pg_terminate_backend

my $resets_before = () = slurp_file($node->logfile) =~ /all server processes terminated/g;
my (@term_times, @term_status);
my (@term_ages);
for my $i (1 .. $terminations)
{
	# a worker that has run for ten seconds, or (the last ones) one that
	# was just started
	$node->poll_query_until('shop', q{
		SELECT clock_timestamp() - started_at > interval '10 s'
		  FROM stage.workers WHERE state IN ('idle', 'running')})
	  or die 'no worker'
	  if $i <= $old_enough;
	my ($pid, $xid, $mon) = catch_long_batch($i % 2 == 0);
	if (!defined $pid)
	{
		fail("termination $i: worker caught in a batch");
		next;
	}
	my $age = $node->safe_psql('shop',
		"SELECT round(extract(epoch FROM clock_timestamp() - started_at)::numeric, 1) FROM stage.workers WHERE pid = $pid");
	push @term_ages, $age;
	my $t0 = time;
	$mon->query_safe("SELECT pg_terminate_backend($pid)");
	$mon->quit;
	my ($new, $took) = StageTest::wait_worker($node, 'shop', $pid, $t0, 70);
	push @term_times, $took;
	my ($committed, $status) = xact_committed($xid);
	push @term_status, $status;
	note sprintf(
		"termination %d: worker %s, %s s old, in transaction %s (%s), new worker %s after %.2f s",
		$i, $pid, $age, $xid, $status, $new, $took);

	# the producer runs on: nothing else was disturbed
	my $max_id = $node->safe_psql('shop',
		'SELECT COALESCE(max(_stage_id), 0) FROM stage_landing.orders');
	ok(defined catch_up($max_id), "termination $i: rows keep moving afterwards");
	is(StageTest::accounting_faults($node, 'shop', 'orders', 'public.orders'),
		'', "termination $i: accounts balance");
}
my $times = join(', ',
	map { sprintf('%.2f s (worker %s s old)', $term_times[$_], $term_ages[$_]) } 0 .. $#term_times);
note "worker back after pg_terminate_backend: $times";
# a termination that arrives during the commit lets the batch commit whole
# (interrupts are held off there); the accounts above show it either way
my $rolled_back = grep { $_ eq 'aborted' } @term_status;
cmp_ok($rolled_back, '>=', 1,
	"terminations hit running batches, which were rolled back ($rolled_back of $terminations: @term_status)");
my $resets_after = () = slurp_file($node->logfile) =~ /all server processes terminated/g;
is($resets_after, $resets_before, 'pg_terminate_backend of the worker does not reset the server');
ok($producer->running, 'the producer kept running through the terminations');
is(scalar(grep { $_ > $at_once } @term_times[ 0 .. $old_enough - 1 ]),
	0, "a worker that ran ten seconds is replaced at once (within $at_once s)");
is(scalar(grep { $_ > $restart_bound } @term_times),
	0, "every terminated worker is back within $restart_bound s ($times)");

# ------------------------------------------- the launcher is terminated

# The launcher has no database connection, so it is not in pg_stat_activity
# and pg_terminate_backend cannot reach it: find it among the postmaster's
# children by its process title and send it SIGTERM, as a DBA would.
sub launcher_pid
{
	open my $pf, '<', $node->data_dir . '/postmaster.pid' or return '';
	my $postmaster = <$pf>;
	close $pf;
	chomp $postmaster;
	for my $dir (glob '/proc/[0-9]*')
	{
		my ($pid) = $dir =~ m{(\d+)$};
		open my $sf, '<', "$dir/stat" or next;
		my $stat = <$sf>;
		close $sf;
		next unless defined $stat && $stat =~ /\) \S (\d+) /;
		next unless $1 == $postmaster;
		open my $cf, '<', "$dir/cmdline" or next;
		my $cmd = <$cf> // '';
		close $cf;
		return $pid if $cmd =~ /stage launcher/;
	}
	return '';
}

my $launcher = launcher_pid();
isnt($launcher, '', 'a launcher runs');
is( $node->safe_psql('shop', "SELECT count(*) FROM pg_stat_activity WHERE pid = $launcher"),
	'0', 'the launcher is not in pg_stat_activity (no database connection)');
$worker = StageTest::worker_pid($node, 'shop', 0);
my $t_l = time;
kill 'TERM', $launcher or die "could not send SIGTERM to the launcher $launcher: $!";
my $new_launcher = '';
while (time - $t_l < 30)
{
	$new_launcher = launcher_pid();
	last if $new_launcher ne '' && $new_launcher ne $launcher;
	$new_launcher = '';
	usleep(100_000);
}
my $l_took = time - $t_l;
isnt($new_launcher, '', sprintf('the postmaster restarts the launcher (after %.2f s)', $l_took));
cmp_ok($l_took, '<=', $restart_bound, "the launcher is back within $restart_bound s");
# a negative check: give a confused new launcher a moment (it looks at
# stage.databases every second) to start a second worker
sleep 2;
is( $node->safe_psql('shop', 'SELECT pid FROM stage.workers'),
	$worker, 'the worker outlived its launcher, and the new launcher started no second one');
my $max_id = $node->safe_psql('shop',
	'SELECT COALESCE(max(_stage_id), 0) FROM stage_landing.orders');
ok(defined catch_up($max_id), 'rows keep moving');

# ----------------------------------------------------- drain and check

$producer->stop;
StageTest::wait_drained($node, 'shop', 'orders');

my ($landing) = StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');
cmp_ok($landing, '>', 50000, 'the producer landed a real load');
is( $node->safe_psql(
		'shop',
		q{SELECT count(*) FROM stage.batch WHERE status = 'done' AND run_by <> 'stage_worker'}),
	'0',
	'every batch was run by the worker role');

$node->stop;
done_testing();
