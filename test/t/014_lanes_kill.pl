# 014_lanes_kill.pl: two movers work one pipeline with two lanes at once,
# and one of them is killed with SIGKILL in the middle of its batch, again
# and again, while a producer lands rows.
#
# Each round starts two movers (one batch each, in their own psql), waits
# until both backends are inside run_batch at the same time, sleeps a
# random few milliseconds and kills one of them.  The postmaster resets
# every backend (the other mover and the producer too) and recovers.  A
# round counts as a hit when both movers were running at the kill and the
# killed one committed nothing.  Then the pipeline is drained, and the
# promise checked: every landing row in exactly one of target, quarantine
# and duplicate log, and taken by exactly one committed batch, whose lane
# is the lane of the row's key (stage.trace finds exactly one batch).
# Then two movers drain what the kills left, and committed batches of the
# two lanes overlap in time: the lanes really ran side by side.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $min_hits = 8;
my $want_hits = 12;
my $max_rounds = 60;
my $round_budget = 70;    # seconds for the kill rounds

my $node = PostgreSQL::Test::Cluster->new('lanes_kill');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage'
restart_after_crash = on
log_statement = none
max_connections = 40
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION stage; CREATE ROLE shop_owner; CREATE ROLE producer LOGIN');
$node->safe_psql('postgres', StageTest::orders_sql());
$node->safe_psql('postgres', q{SELECT stage.set_lanes('orders', 2)});

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($tmp, 40);
my $producer = StageTest::producer($script, $node->connstr('postgres'),
	qw(-c 2 -j 2 -R 200 -T 150));

sub start_mover
{
	my ($app, $out) = @_;
	return IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') . " application_name=$app",
			'-c', q{SELECT rows_in, status FROM stage.run_batch('orders', 4000)}
		],
		'>', $out, '2>', \my $err);
}

$producer->start;

my ($rounds, $kills, $hits) = (0, 0, 0);
my $t0 = time;
while ($hits < $want_hits && $rounds < $max_rounds && time - $t0 < $round_budget)
{
	$rounds++;
	$node->poll_query_until(
		'postgres', q{
		SELECT (SELECT count(*) FROM stage_landing.orders)
			   - (SELECT COALESCE(sum(rows_in), 0) FROM stage.batch WHERE status = 'done') >= 8000})
	  or die 'the producer does not produce';
	# the window open in lanes, so both movers start at once
	$node->safe_psql('postgres', q{SELECT status FROM stage.run_batch('orders', 100)});

	my $max_batch = $node->safe_psql('postgres', 'SELECT COALESCE(max(batch_id), 0) FROM stage.batch');
	my $monitor = $node->background_psql('postgres');
	my ($out_a, $out_b) = ('', '');
	my $a = start_mover("lane_mover_a_$rounds", \$out_a);
	my $b = start_mover("lane_mover_b_$rounds", \$out_b);

	my $both_q = qq{SELECT string_agg(pid::text, ' ' ORDER BY application_name) FROM pg_stat_activity
		WHERE application_name IN ('lane_mover_a_$rounds', 'lane_mover_b_$rounds')
		  AND state = 'active' AND query LIKE '%run_batch%'
		  AND wait_event_type IS DISTINCT FROM 'Lock'};    # working, neither waits for the other
	my @pids;
	my $deadline = time + 20;
	while (time < $deadline)
	{
		@pids = split / /, $monitor->query_safe($both_q);
		last if @pids == 2;
		$_->pump_nb for ($a, $b);
		last unless $a->pumpable && $b->pumpable;
		usleep(1000);
	}
	if (@pids != 2)
	{
		$monitor->quit;
		$_->finish for ($a, $b);
		note "round $rounds: the two movers were not caught running together";
		next;
	}
	usleep(int(rand(60_000)));
	my $victim = $pids[$rounds % 2];
	my $still = $monitor->query_safe(
		qq{SELECT count(*) FROM pg_stat_activity
			WHERE pid IN ($pids[0], $pids[1]) AND state = 'active' AND query LIKE '%run_batch%'});
	$monitor->quit;
	if ($still ne '2')
	{
		$_->finish for ($a, $b);
		note "round $rounds: a mover finished before the kill";
		next;
	}
	my $log_offset = -s $node->logfile;
	kill 'KILL', $victim or do { $_->finish for ($a, $b); next; };
	my $crashed = StageTest::killed_by_sigkill($node, $log_offset);
	$_->finish for ($a, $b);
	next unless $crashed;
	$kills++;
	StageTest::wait_recovered($node, 'postgres', $log_offset);
	my $committed = $node->safe_psql('postgres',
		"SELECT count(*) FROM stage.batch WHERE batch_id > $max_batch AND backend_pid = $victim");
	if ($committed eq '0')
	{
		$hits++;
		note "round $rounds: killed mover $victim beside the other lane's (hit $hits)";
	}
	$producer->stop;
	$producer->start;
}
$producer->stop;

note "rounds: $rounds, kills: $kills, hits: $hits";
cmp_ok($hits, '>=', $min_hits,
	"at least $min_hits SIGKILLs hit a mover while the other lane's ran ($hits of $kills in $rounds rounds)");

# drain: two movers at once, then whatever is left
my @drains;
for my $i (1 .. 2)
{
	push @drains,
	  IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-c', q{DO $$DECLARE st text; BEGIN LOOP
				SELECT status INTO st FROM stage.run_batch('orders', 1000); COMMIT;
				EXIT WHEN st <> 'done'; END LOOP; END$$}
		],
		'>', \my $out, '2>', \my $err);
}
$_->finish for @drains;
StageTest::run_all_until_empty($node, 'postgres', 200);
is($node->safe_psql('postgres', q{SELECT stage.backlog('orders')}), '0', 'nothing left to move');

# (each round waited for 8,000 rows not yet taken, or died: the load is real)
StageTest::check_accounting($node, 'postgres', 'orders', 'public.orders');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
	 WHERE p.name = 'orders' AND b.status = 'done' AND b.lane IS NULL}),
	'0',
	'every batch worked a lane');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (SELECT _stage_id FROM stage_landing.orders ORDER BY random() LIMIT 2000) l
	 WHERE (SELECT count(*) FROM stage.trace('orders', l._stage_id) t
			 WHERE t.landing_row = l._stage_id AND t.batch_id IS NOT NULL) <> 1}),
	'0',
	'stage.trace finds exactly one batch for each of 2000 sampled landing rows');
cmp_ok(
	$node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM stage.batch x JOIN stage.batch y
	    ON x.pipeline_id = y.pipeline_id AND x.lane = 0 AND y.lane = 1
	   AND x.started_at < y.finished_at AND y.started_at < x.finished_at
	 WHERE x.status = 'done' AND y.status = 'done'}),
	'>', 0, 'committed batches of the two lanes ran side by side');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM public.orders WHERE email LIKE 'user%@example.com'}),
	'0',
	'no raw email reached the target');

$node->stop;
done_testing();
