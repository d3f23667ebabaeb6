
# Copyright (c) the stage authors
#
# 019_scale_out.pl: two staging nodes fan in to a warehouse by logical
# replication (docs/scale-out.md), through crashes of either side.
#
# Nodes "a" and "b" each stage the "orders" pipeline of StageTest (rules, a
# key with on_duplicate 'skip', an e-mail mask, the lineage columns
# _stage_id and _stage_node) with their background worker on and a pgbench
# producer landing rows; each publishes its target (stage.publish) and its
# history (stage.publish_history).  The warehouse has stage_warehouse and
# the target keyed by (_stage_node, order_id), and one subscription per
# node.  Under the load:
#   - node a's worker is SIGKILLed in the middle of a batch: the node
#     resets, recovers, its walsender is gone with it, and the warehouse's
#     apply worker for a reconnects;
#   - the warehouse is stopped in immediate mode while it applies (it is
#     behind the nodes when it stops) and started again.
# Then the producers stop, both nodes drain, the warehouse catches up, and:
#   - each node keeps its promise (StageTest::check_accounting);
#   - the warehouse holds exactly the union of the nodes' clean rows: the
#     same rows, compared by node, key, _stage_id and every value, none
#     missing, none twice;
#   - its quarantine, batches and duplicate log are the union of the
#     nodes' (compared row by row, status included);
#   - no raw value of the masked column exists anywhere on the warehouse:
#     rows with planted markers in the e-mail were landed on both nodes
#     (some clean, some quarantined), are found raw in the nodes' landing
#     tables, and appear neither in a dump of the warehouse nor in its log.
#
# Run by scripts/test.sh (suite tap).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $tmp = PostgreSQL::Test::Utils::tempdir;

# ------------------------------------------------------------- the nodes

my %node;
for my $name ('a', 'b')
{
	my $n = PostgreSQL::Test::Cluster->new("node_$name");
	$n->init(allows_streaming => 'logical');
	$n->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'stage'
stage.node_name = '$name'
stage.naptime = '100ms'
restart_after_crash = on
max_connections = 40
log_min_messages = warning
});
	$n->start;
	$n->safe_psql('postgres', StageTest::shop_sql());
	$n->safe_psql('shop', 'CREATE EXTENSION stage; ' . StageTest::orders_sql() . q{
ALTER TABLE public.orders ADD COLUMN _stage_node text;
SET ROLE shop_owner;
SELECT stage.publish('orders');
RESET ROLE;
SELECT stage.publish_history();
});
	StageTest::serve_database($n, 'shop');
	$node{$name} = $n;
}
is( $node{a}->safe_psql(
		'shop', q{SELECT string_agg(tablename || ':' || array_length(attnames, 1), ' ' ORDER BY tablename)
				   FROM pg_publication_tables WHERE pubname = 'stage_orders'}),
	'orders:9', 'a node publishes its target, every column');
is( $node{a}->safe_psql(
		'shop', q{SELECT count(*) FROM pg_publication_tables
				   WHERE pubname = 'stage_history'
					 AND (schemaname <> 'stage' OR 'raw_data' = ANY (attnames)
						  OR (tablename = 'quarantine_log' AND 'key' = ANY (attnames))
						  OR 'raw_payload' = ANY (attnames) OR 'raw_reasons' = ANY (attnames)
						  OR 'error' = ANY (attnames))}),
	'0', 'and its history, without landing tables or raw columns');

# --------------------------------------------------------- the warehouse

my $wh = PostgreSQL::Test::Cluster->new('warehouse');
$wh->init;
$wh->append_conf(
	'postgresql.conf', q{
wal_retrieve_retry_interval = '200ms'
log_min_messages = warning
});
$wh->start;
$wh->safe_psql('postgres', 'CREATE DATABASE wh');
$wh->safe_psql(
	'wh', q{
CREATE EXTENSION stage_warehouse;
CREATE TABLE public.orders (
	order_id	bigint NOT NULL,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	qty			integer NOT NULL,
	code		text,
	_stage_id	bigint NOT NULL,
	_stage_batch bigint,
	_stage_node	text NOT NULL,
	PRIMARY KEY (_stage_node, order_id),
	UNIQUE (_stage_node, _stage_id)
);
});
for my $name ('a', 'b')
{
	my $conn = $node{$name}->connstr('shop') =~ s/'/''/gr;
	$wh->safe_psql('wh',
		qq{CREATE SUBSCRIPTION from_$name CONNECTION '$conn' PUBLICATION stage_history, stage_orders});
}

# --------------------------------------------------------- the producers

# pgbench's script of StageTest (5% bad rows, 3% duplicate keys), and
# planted markers in the masked column, clean and quarantined (amount out
# of range), landed once on each node
my $script = StageTest::write_producer($tmp, 20);
my %producer;
sub start_producer
{
	my ($name, $seconds) = @_;
	$producer{$name} = StageTest::producer($script, $node{$name}->connstr('shop') . ' user=producer',
		qw(-c 2 -j 2 -R 40 -T), $seconds)->start;
	return;
}
sub plant_markers
{
	my ($name, $from) = @_;
	$node{$name}->safe_psql(
		'shop', qq{
SET ROLE producer;
INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code)
SELECT (900000000000 + g)::text, 'zqmark-$name-' || g || '\@leak.example',
	   CASE WHEN g % 2 = 0 THEN '-1' ELSE '10.00' END, 'EUR', '1', 'AB-0001'
  FROM generate_series($from, $from + 9) g;
});
	return;
}
start_producer($_, 12) for ('a', 'b');
plant_markers($_, 1) for ('a', 'b');

# the warehouse receives rows of both nodes
ok( $wh->poll_query_until(
		'wh', q{SELECT count(DISTINCT _stage_node) = 2 FROM public.orders}),
	'the warehouse receives the clean rows of both nodes');

# ------------------------------------------------- kill -9 of a node's batch

# a long batch (the pipeline paused until 2,000 rows wait) caught running
# and killed at once; a batch that committed just before the signal is a
# miss, and the round is tried again (each round crashes the node)
my ($hit, $rounds) = (0, 0);
while (!$hit && $rounds < 6)
{
	$rounds++;
	StageTest::hold_backlog($node{a}, 'shop', 'orders', 2000);
	my ($pid, $xid, $mon) = StageTest::catch_batch($node{a}, 'shop', 'orders', 0);
	next unless defined $pid;
	my $log_offset = -s $node{a}->logfile;
	kill 'KILL', $pid or die "could not send SIGKILL to $pid: $!";
	StageTest::killed_by_sigkill($node{a}, $log_offset) or die 'node a did not reset after the SIGKILL';
	eval { $mon->quit };
	StageTest::wait_recovered($node{a}, 'shop', $log_offset);
	$hit = StageTest::xact_status($node{a}, 'shop', $xid) ne 'committed';
	$producer{a}->stop;
	start_producer('a', 8);
}
ok($hit, "node a's worker is SIGKILLed in a batch that then committed nothing ($rounds rounds)");
plant_markers('a', 11);

# --------------------------------- the warehouse stopped while it applies

usleep(1_500_000);
my $behind = $node{b}->safe_psql(
	'shop', q{SELECT pg_current_wal_lsn() > confirmed_flush_lsn FROM pg_replication_slots
			   WHERE slot_name = 'from_b'});
$wh->stop('immediate');
is($behind, 't', 'node b had WAL the warehouse had not confirmed when it stopped (apply in flight)');
plant_markers('b', 11);
usleep(1_000_000);
$wh->start;

# -------------------------------------------------------------- the drain

$producer{$_}->finish for ('a', 'b');
plant_markers($_, 21) for ('a', 'b');
StageTest::wait_drained($node{$_}, 'shop', 'orders') for ('a', 'b');

# each node keeps its promise locally
my %acc;
for my $name ('a', 'b')
{
	my @acc = StageTest::check_accounting($node{$name}, 'shop', 'orders', 'public.orders');
	$acc{$name} = \@acc;
	cmp_ok($acc[0], '>', 1000, "node $name landed rows ($acc[0])");
}

# what each node holds, and what the warehouse holds of it, as a count and
# a digest per table: every row, every published column, in a stable order
my %tables = (
	target => [ 'public.orders', '_stage_node',
		'_stage_node, order_id, _stage_id, _stage_batch, email, amount, currency, qty, code', '_stage_id' ],
	quarantine => [ 'stage.quarantine_log', 'node',
		'node, pipeline_id, landing_id, batch_id, contract_version, source, row_data, reasons, status,'
		  . ' successor_id, closed_batch_id, role', 'pipeline_id, landing_id' ],
	batches => [ 'stage.batch', 'node',
		'node, batch_id, pipeline_id, status, kind, rows_in, rows_clean, rows_quarantined,'
		  . ' rows_duplicate, from_id, to_id', 'batch_id' ],
	duplicates => [ 'stage.duplicate_log', 'node', 'node, pipeline_id, landing_id, batch_id',
		'pipeline_id, landing_id' ],
	rule_stats => [ 'stage.batch_rule_stat', 'node', 'node, batch_id, rule_name, checked, failed',
		'batch_id, rule_name' ]);
sub count_sql
{
	my ($t, $name) = @_;
	my ($table, $nodecol) = @{ $tables{$t} };
	return "(SELECT count(*) FROM $table WHERE $nodecol = '$name')";
}
sub digest_sql
{
	my ($t, $name) = @_;
	my ($table, $nodecol, $cols, $order) = @{ $tables{$t} };
	return "SELECT count(*) || ' ' || md5(string_agg(concat_ws('|', $cols), ',' ORDER BY $order))"
	  . " FROM $table WHERE $nodecol = '$name'";
}

my (%want, @counts);
for my $name ('a', 'b')
{
	for my $t (sort keys %tables)
	{
		$want{$name}{$t} = $node{$name}->safe_psql('shop', digest_sql($t, $name));
		my ($n) = split / /, $want{$name}{$t};
		push @counts, count_sql($t, $name) . " = $n";
	}
}

# the warehouse has caught up when its counts are the nodes'
ok($wh->poll_query_until('wh', 'SELECT ' . join(' AND ', @counts)),
	'the warehouse catches up with both nodes');

for my $name ('a', 'b')
{
	for my $t (sort keys %tables)
	{
		is($wh->safe_psql('wh', digest_sql($t, $name)), $want{$name}{$t},
			"warehouse $t of node $name = the node's, row for row ($want{$name}{$t})");
	}
}
is( $wh->safe_psql('wh', q{SELECT count(*) FROM public.orders WHERE _stage_node NOT IN ('a', 'b')}),
	'0', 'the warehouse holds no clean row of a node other than a and b');
is( $wh->safe_psql(
		'wh', q{SELECT count(*) - count(DISTINCT (_stage_node, _stage_id)) FROM public.orders}),
	'0', 'no landing row of a node is in the warehouse twice');
is( $wh->safe_psql(
		'wh', q{SELECT string_agg(node || ':' || rows_1h || ':' || dlq_open, ' ' ORDER BY node)
				  FROM stage.cluster_health WHERE pipeline = 'orders'}),
	join(' ',
		map {
			$_ . ':' . $node{$_}->safe_psql('shop', q{SELECT rows_1h || ':' || dlq_open FROM stage.health})
		} ('a', 'b')),
	'stage.cluster_health on the warehouse agrees with each node\'s stage.health');
is( $wh->safe_psql(
		'wh', q{SELECT count(*) FROM stage.cluster_quarantine WHERE pipeline IS NULL}),
	'0', 'every quarantine item on the warehouse names its pipeline');

# ----------------------------------------------------------- no raw value

for my $name ('a', 'b')
{
	is( $node{$name}->safe_psql(
			'shop', q{SELECT count(*) FROM stage_landing.orders WHERE email LIKE 'zqmark-%'}),
		'30', "node $name landed its 30 markers raw");
}
is( $wh->safe_psql(
		'wh', q{SELECT count(*) FROM public.orders WHERE email LIKE 'z***@leak.example'}),
	'30', 'the clean markers reached the warehouse, masked');
is( $wh->safe_psql(
		'wh', q{SELECT count(*) FROM stage.cluster_quarantine
				 WHERE row_data->>'email' LIKE 'z***@leak.example' AND status = 'open'}),
	'30', 'the quarantined markers reached it too, masked');
my ($dump, $err) = ('', '');
IPC::Run::run([ 'pg_dump', '--data-only', '-d', $wh->connstr('wh') ], '>', \$dump, '2>', \$err)
  or die "pg_dump failed: $err";
cmp_ok(length($dump), '>', 100_000, 'the warehouse dump has the data (' . length($dump) . ' bytes)');
is(scalar(() = $dump =~ /zqmark/g), 0, 'no marker in a dump of the warehouse');
is(scalar(() = $dump =~ /user\d+\@example\.com/g), 0,
	'no raw e-mail of the producers either');
my ($ndump) = ('');
IPC::Run::run([ 'pg_dump', '--data-only', '-t', 'stage_landing.orders', '-t', 'stage_landing.orders$*', '-d', $node{a}->connstr('shop') ],
	'>', \$ndump, '2>', \$err)
  or die "pg_dump failed: $err";
is(scalar(() = $ndump =~ /zqmark-a-\d+\@leak/g), 30, 'the same search finds them in node a\'s landing table');
is(scalar(() = slurp_file($wh->logfile) =~ /zqmark/g), 0, 'no marker in the warehouse\'s log');
unlike(slurp_file($wh->logfile), qr/duplicate key value violates unique constraint/,
	'the warehouse never applied a row twice (no conflict after its crash)');

$node{$_}->stop for ('a', 'b');
$wh->stop;
done_testing();
