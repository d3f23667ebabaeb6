
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

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION stage;
CREATE TABLE public.orders (
	order_id	bigint PRIMARY KEY,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	qty			integer NOT NULL CHECK (qty <> 13),
	code		text,
	_stage_id	bigint,
	_stage_batch bigint
);
SELECT stage.create_pipeline('orders', 'public.orders', key => '{order_id}',
							 on_duplicate => 'skip');
SELECT stage.add_rule('orders', 'amount', 'range', '{"min": 0, "max": 10000}');
SELECT stage.add_rule('orders', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
SELECT stage.add_rule('orders', 'code', 'regex', '{"pattern": "^[A-Z]{2}-[0-9]{4}$"}');
SELECT stage.add_mask('orders', 'email', 'email');
});

# ------------------------------------------------------------ the producer
#
# 20 rows a transaction.  Bad rows (about 5%): amount out of range, unknown
# currency, code not matching the pattern (all three caught by rules); qty
# not an integer (type check); qty 13 and NULL email (caught by the target's
# CHECK and NOT NULL, isolated by bisection).  3% of the keys come from a
# small range, so duplicates are certain, within and across batches.
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 20);

my $producer;
my ($prod_out, $prod_err) = ('', '');

sub start_producer
{
	# bounded: at most 250 transactions (5000 rows) a second, for at most
	# 150 seconds; in practice it is stopped long before
	$producer = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '4', '-j', '2', '-R', '250',
			'-T', '150', '-f', $script, $node->connstr('postgres')
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

# ---------------------------------------------------------- kill rounds

start_producer();

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
	# between the check and the signal): only a death by signal 9 makes the
	# postmaster reset the server
	my $crashed = 0;
	foreach (1 .. 100)
	{
		if (slurp_file($node->logfile, $log_offset) =~ /terminated by signal 9/)
		{
			$crashed = 1;
			last;
		}
		usleep(50_000);
	}
	$mover->finish;
	if (!$crashed)
	{
		note "round $rounds: the backend exited before the signal reached it";
		next;
	}
	$kills++;

	# the mover's psql loses its connection; the postmaster resets all
	# backends (the producer's too) and runs crash recovery
	$node->wait_for_log(qr/database system is ready to accept connections/,
		$log_offset);
	$node->poll_query_until('postgres', 'SELECT 1', '1')
	  or die "server did not come back after killing $pid";

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

	stop_producer();
	start_producer();
}

stop_producer();

note "rounds: $rounds, kills: $kills, kills that hit a running batch: $hits, "
  . "rounds that committed a batch first: $committed_first";
cmp_ok($hits, '>=', $min_hits,
	"at least $min_hits SIGKILLs hit a running batch ($hits of $kills kills in $rounds rounds)");

# the server really crashed and recovered, once per kill
my $log = slurp_file($node->logfile);
my $resets = () = $log =~ /all server processes terminated; reinitializing/g;
is($resets, $kills, 'one crash recovery per kill');

# ----------------------------------------------------- drain and check

my $moved;
my $drains = 0;
do
{
	$moved = $node->safe_psql('postgres', 'SELECT stage.run_all()');
	$drains++;
} while ($moved > 0 && $drains < 100);
is($moved, '0', 'stage.run_all() drains the pipeline');
is( $node->safe_psql(
		'postgres', q{SELECT rows_in || ' ' || status FROM stage.run_batch('orders')}),
	'0 empty',
	'nothing left to move');

my $placed = q{
	WITH p AS (SELECT pipeline_id FROM stage.pipeline WHERE name = 'orders'),
	placed AS (
		SELECT t._stage_id AS landing_id, 'target' AS place FROM public.orders t
		UNION ALL
		SELECT q.landing_id, 'quarantine' FROM stage.quarantine_log q, p
		 WHERE q.pipeline_id = p.pipeline_id
		UNION ALL
		SELECT d.landing_id, 'duplicate' FROM stage.duplicate_log d, p
		 WHERE d.pipeline_id = p.pipeline_id)
};

my ($landing, $target, $quarantined, $duplicate) = split /\|/,
  $node->safe_psql(
	'postgres', q{
	SELECT (SELECT count(*) FROM stage_landing.orders),
		   (SELECT count(*) FROM public.orders),
		   (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
			 WHERE p.name = 'orders'),
		   (SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
			 WHERE p.name = 'orders')});
note "landing $landing = target $target + quarantine $quarantined + duplicate $duplicate";
cmp_ok($landing, '>', 20000, 'the producer landed a real load');
is($target + $quarantined + $duplicate,
	$landing, 'count(landing) = count(target) + count(quarantine) + count(duplicate)');

is( $node->safe_psql(
		'postgres', $placed . q{
	SELECT count(*) FROM (SELECT landing_id FROM placed GROUP BY landing_id
						  HAVING count(*) > 1) twice}),
	'0',
	'no landing id is in two of target, quarantine_log, duplicate_log');

is( $node->safe_psql(
		'postgres', $placed . q{
	SELECT count(*) FROM stage_landing.orders l
	 WHERE NOT EXISTS (SELECT 1 FROM placed WHERE placed.landing_id = l._stage_id)}),
	'0',
	'every landing id is in one of them (nothing lost)');

is( $node->safe_psql(
		'postgres', $placed . q{
	SELECT count(*) FROM placed
	 WHERE landing_id IS NULL
		OR NOT EXISTS (SELECT 1 FROM stage_landing.orders l WHERE l._stage_id = placed.landing_id)}),
	'0',
	'every moved row comes from a landing row (nothing invented)');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (SELECT _stage_id FROM public.orders GROUP BY _stage_id
						  HAVING count(*) > 1) twice}),
	'0',
	'no landing id twice in the target');

is( $node->safe_psql(
		'postgres', q{
	SELECT (SELECT sum(b.rows_in) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
			 WHERE p.name = 'orders' AND b.status = 'done')
		   = (SELECT count(*) FROM stage_landing.orders)}),
	't',
	'the committed batches together took every landing row once');

# the load exercised every outcome, and masking held through the crashes
my ($by_rule, $by_target, $by_type) = split /\|/,
  $node->safe_psql(
	'postgres', q{
	SELECT count(*) FILTER (WHERE reasons::text ~ '"kind": "(range|enum|regex)"'),
		   count(*) FILTER (WHERE reasons::text ~ '"sqlstate": "(23514|23502)"'),
		   count(*) FILTER (WHERE reasons::text ~ '"kind": "type"')
	  FROM stage.quarantine_log});
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
