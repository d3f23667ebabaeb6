
# Copyright (c) the stage authors
#
# 001_kill_mover.pl: SIGKILL the mover in the middle of its batches, under
# load, and check the promise afterwards: every committed landing row ends in
# exactly one of the target, stage.quarantine_log and stage.duplicate_log --
# never both, never lost, never twice.
#
# A pgbench producer lands rows (about 5% of them bad in one way or another,
# and some duplicate keys) while, round after round, a psql session starts
# stage.run_batch('orders', 5000), the test waits until that backend is
# active in it, sleeps a random few milliseconds and kills it with SIGKILL.
# The postmaster then resets every backend and runs crash recovery (the
# producer dies with it and is restarted).  A kill counts as a hit when the
# backend was active in run_batch when it was killed and no batch of that
# backend was committed.  Some rounds first commit a smaller batch, so that
# kills also land in a window that is already half processed.
#
# Run by scripts/test.sh (suite tap) as
#   TESTDIR=<tree> PG_REGRESS=<pgxs>/src/test/regress/pg_regress \
#   TEMP_CONFIG=<tree>/test/stage.conf PGPORT=54335 \
#   prove -I <pgxs>/src/test/perl -I test test/t/001_kill_mover.pl
# as the postgres user, with the PostgreSQL 15 bin directory first in PATH.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $min_hits = 10;      # what the test must achieve
my $want_hits = 16;     # what it aims for, for a margin
my $max_rounds = 80;
my $round_budget = 75;  # seconds for the kill rounds

my $node = PostgreSQL::Test::Cluster->new('kill_mover');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage'
restart_after_crash = on
log_statement = none
max_connections = 40
});
$node->start;

$node->safe_psql('postgres',
	'CREATE EXTENSION stage; CREATE ROLE shop_owner; CREATE ROLE producer LOGIN');
$node->safe_psql('postgres', StageTest::orders_sql());

# ------------------------------------------------------------ the producer
#
# 20 rows a transaction, about 5% of them bad in one way or another (see
# StageTest::write_producer), 3% of the keys from a small range, so
# duplicates are certain, within and across batches.  Bounded: at most 250
# transactions (5000 rows) a second, for at most 150 seconds; in practice
# it is stopped long before.
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 20);

my $producer = StageTest::producer($script, $node->connstr('postgres'),
	qw(-c 4 -j 2 -R 250 -T 150));

# ---------------------------------------------------------- kill rounds

$producer->start;

my ($rounds, $kills, $hits, $committed_first) = (0, 0, 0, 0);
my $t0 = time;

while ($hits < $want_hits
	&& $rounds < $max_rounds
	&& time - $t0 < $round_budget)
{
	$rounds++;

	# every third round, first commit a batch, so that the window is open
	# and half processed when the next one is killed
	if ($rounds % 3 == 0)
	{
		$node->safe_psql('postgres',
			q{SELECT status FROM stage.run_batch('orders', 1500)});
		$committed_first++;
	}

	# a full batch waiting, so that the batch runs long enough to be hit
	$node->poll_query_until(
		'postgres', q{
		SELECT (SELECT count(*) FROM stage_landing.orders)
			   - (SELECT COALESCE(sum(rows_in), 0) FROM stage.batch) >= 5000})
	  or die 'the producer does not produce';

	my $max_batch = $node->safe_psql('postgres',
		'SELECT COALESCE(max(batch_id), 0) FROM stage.batch');
	my $app = "stage_mover_$rounds";
	my $monitor = $node->background_psql('postgres');

	# the mover: one batch, in its own psql
	my ($m_out, $m_err) = ('', '');
	my $mover = IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') . " application_name=$app",
			'-c', q{SELECT rows_in, status FROM stage.run_batch('orders', 5000)}
		],
		'>', \$m_out, '2>', \$m_err);

	# wait until its backend is running the batch
	my $active_q = qq{SELECT pid FROM pg_stat_activity
		WHERE application_name = '$app' AND state = 'active'
		  AND query LIKE '%run_batch%'};
	my $pid = '';
	my $deadline = time + 20;
	while (time < $deadline)
	{
		$pid = $monitor->query_safe($active_q);
		last if $pid ne '';
		$mover->pump_nb;
		last unless $mover->pumpable;    # already done: too quick to catch
		usleep(1000);
	}
	if ($pid eq '')
	{
		$monitor->quit;
		$mover->finish;
		note "round $rounds: batch not caught running (output: $m_out)";
		next;
	}

	# somewhere in the batch: a batch of 5000 rows takes ~100-400 ms
	usleep(int(rand(200_000)));
	my $still = $monitor->query_safe(
		qq{SELECT count(*) FROM pg_stat_activity
			WHERE pid = $pid AND state = 'active' AND query LIKE '%run_batch%'});
	$monitor->quit;
	if ($still ne '1')
	{
		$mover->finish;
		note "round $rounds: batch finished before the kill (output: $m_out)";
		next;
	}

	my $log_offset = -s $node->logfile;
	if (!kill 'KILL', $pid)
	{
		$mover->finish;
		note "round $rounds: the backend had ended before the kill";
		next;
	}

	# the backend may still have been on its way out (its batch committed
	# between the check and the signal)
	my $crashed = StageTest::killed_by_sigkill($node, $log_offset);
	$mover->finish;
	if (!$crashed)
	{
		note "round $rounds: the backend exited before the signal reached it";
		next;
	}
	$kills++;

	# the mover's psql loses its connection; the postmaster resets all
	# backends (the producer's too) and runs crash recovery
	StageTest::wait_recovered($node, 'postgres', $log_offset);

	# a hit: the killed batch committed nothing
	my $committed = $node->safe_psql('postgres',
		"SELECT count(*) FROM stage.batch WHERE batch_id > $max_batch AND backend_pid = $pid"
	);
	if ($committed eq '0' && $m_out eq '')
	{
		$hits++;
		note "round $rounds: killed backend $pid in run_batch (hit $hits)";
	}
	else
	{
		note "round $rounds: killed backend $pid after its batch committed";
	}

	$producer->stop;
	$producer->start;
}

$producer->stop;

note "rounds: $rounds, kills: $kills, kills that hit a running batch: $hits, "
  . "rounds that committed a batch first: $committed_first";
cmp_ok($hits, '>=', $min_hits,
	"at least $min_hits SIGKILLs hit a running batch ($hits of $kills kills in $rounds rounds)");

# the server really crashed and recovered, once per kill
my $log = slurp_file($node->logfile);
my $resets = () = $log =~ /all server processes terminated; reinitializing/g;
is($resets, $kills, 'one crash recovery per kill');

# ----------------------------------------------------- drain and check

is(StageTest::run_all_until_empty($node, 'postgres', 100), '0', 'stage.run_all() drains the pipeline');
is( $node->safe_psql(
		'postgres', q{SELECT rows_in || ' ' || status FROM stage.run_batch('orders')}),
	'0 empty',
	'nothing left to move');

my ($landing, undef, undef, $duplicate) =
  StageTest::check_accounting($node, 'postgres', 'orders', 'public.orders');
cmp_ok($landing, '>', 20000, 'the producer landed a real load');

# the load exercised every outcome, and masking held through the crashes
my ($by_rule, $by_target, $by_type) = StageTest::orders_quarantined($node, 'postgres');
note "quarantined by rules $by_rule, by the target's constraints $by_target, by type $by_type";
ok($by_rule > 0 && $by_target > 0 && $by_type > 0,
	'rows were quarantined by rules, by type checks and by target constraints');
ok($duplicate > 0, 'duplicate keys were resolved as duplicates');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM public.orders WHERE email LIKE 'user%@example.com'}),
	'0',
	'no raw email reached the target');

$node->stop;
done_testing();
