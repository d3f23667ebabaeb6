
# Copyright (c) the stage authors
#
# 018_target_evolution_load.pl: the landing follows the target under load.
# Two producers land orders (about 5% bad in every way the contract and the
# target catch) for 20 s while the database's worker moves them; meanwhile
# the target gains five columns by ALTER TABLE, one every few seconds, each
# followed by the pipeline in the ALTER's transaction (a landing column, a
# contract version).  Movers take the target's lock before the pipeline's
# row, in the order the ALTER's event trigger takes them, so nothing
# deadlocks: every ALTER succeeds, no batch fails, no row is lost
# (StageTest::check_accounting), and rows landed with a new column after it
# appeared carry its value to the target.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use Time::HiRes qw(time usleep);

my $load_seconds = 20;
my $node = PostgreSQL::Test::Cluster->new('target_evolution');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
max_connections = 40
stage.naptime = '100ms'
stage.max_workers = 2
stage.batch_size = 500
log_min_messages = warning
deadlock_timeout = '100ms'
});
$node->start;

$node->safe_psql('postgres', StageTest::shop_sql());
$node->safe_psql('shop', 'CREATE EXTENSION stage;' . StageTest::orders_sql());
StageTest::serve_database($node, 'shop');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $script = StageTest::write_producer($dir, 10);

my $t0 = time;
my $prod = StageTest::producer($script, $node->connstr('shop') . ' user=producer',
	qw(-c 2 -j 2 -R 60 -T), $load_seconds)->start;

# five columns, one every three seconds, as the table's owner
my @added;
for my $k (1 .. 5)
{
	usleep(3_000_000);
	my ($rc, $out, $err) = $node->psql('shop', qq{
SET ROLE shop_owner;
ALTER TABLE public.orders ADD COLUMN note$k text;
});
	push @added, "note$k" if $rc == 0;
	is($rc, 0, "ALTER TABLE ADD COLUMN note$k while producers and the worker run")
	  or diag($err);
	like($err, qr/pipeline "orders": column note$k added/, "the pipeline followed: note$k");
	# the producer role may fill the new landing column at once
	my ($rc2, undef, $err2) = $node->psql('shop', qq{
SET ROLE producer;
INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code, note$k)
VALUES ((2000000000 + $k)::text, 'n$k\@example.com', '1.00', 'EUR', '1', 'AB-0001', 'v$k');
});
	is($rc2, 0, "a producer lands a row with note$k") or diag($err2);
}
my $prod_out = $prod->finish;
note sprintf('producers ran %.1f s: %s', time - $t0,
	join(' ', grep { /^(number of transactions actually|tps)/ } split /\n/, $prod_out));
cmp_ok(scalar(split /\n/, $prod_out), '>', 0, 'the producers ran');
unlike($prod->{err} // '', qr/ERROR/, 'no producer transaction failed');

StageTest::wait_drained($node, 'shop', 'orders');
StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');

is($node->safe_psql('shop', q{SELECT count(*) FROM stage.batches WHERE status <> 'done'}),
	'0', 'no batch failed or was held');
is($node->safe_psql('shop', q{SELECT count(*) FROM stage.batches WHERE status = 'done'}) > 5 ? 1 : 0,
	1, 'the worker ran batches all along');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(attname, ' ' ORDER BY attnum) FROM pg_attribute
				   WHERE attrelid = 'stage_landing.orders'::regclass AND attname ~ '^note'}),
	'note1 note2 note3 note4 note5', 'the landing table has the five new columns');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(order_id - 2000000000 || '=' || coalesce(note1, '') || coalesce(note2, '')
									|| coalesce(note3, '') || coalesce(note4, '') || coalesce(note5, ''),
									' ' ORDER BY order_id)
				   FROM public.orders WHERE order_id > 2000000000}),
	'1=v1 2=v2 3=v3 4=v4 5=v5', 'each value landed in a new column reached the target');
is($node->safe_psql('shop', q{SELECT contract_version FROM stage.pipelines WHERE pipeline = 'orders'}),
	'10', 'each added column made a contract version (5 of the contract, 5 of the table)');
is($node->safe_psql('shop', q{SELECT target_changed_at IS NOT NULL FROM stage.pipelines WHERE pipeline = 'orders'}),
	't', 'stage.pipelines says when the target last changed');

$node->stop;
done_testing();
