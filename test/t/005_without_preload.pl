# stage works without shared_preload_libraries: the SQL functions load the
# module on first use; only the background worker needs preloading, and
# asking for it says so clearly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
# TEMP_CONFIG may preload stage for every test node: undo it for this one
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), '',
	'the server does not preload stage');
$node->safe_psql('postgres', 'CREATE EXTENSION stage');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, email text, amount numeric(8,2));
	SELECT stage.create_pipeline('p', 't', key => '{id}');
	SELECT stage.add_rule('p', 'amount', 'range', '{"min": 0}');
	SELECT stage.add_mask('p', 'email', 'email');
	INSERT INTO stage_landing.p (id, email, amount)
	VALUES ('1', 'alice@example.com', '5'), ('2', 'bob@example.com', '-1'),
		   ('3', 'carol@example.com', 'x');
});
is($node->safe_psql('postgres',
		'SELECT rows_in || \'/\' || rows_clean || \'/\' || rows_quarantined FROM stage.run_batch(\'p\')'),
	'3/1/2', 'a batch moves and quarantines without preloading');
is($node->safe_psql('postgres', 'SELECT email FROM t'), 'a***@example.com',
	'masks apply');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stage.workers'), '0',
	'no workers are listed');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT stage.start_worker()');
isnt($ret, 0, 'start_worker fails without preloading');
like($err, qr/stage background workers are not available/,
	'and says why');
like($err, qr/shared_preload_libraries/, 'and what to do');
# a variable that needs preloading is simply not there
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'stage.max_workers'}),
	'0', 'stage.max_workers exists only when preloaded');
is($node->safe_psql('postgres', q{LOAD 'stage'; SHOW stage.batch_size}), '10000',
	'the other stage settings are defined once the library is loaded');

# backpressure holds without the shared counters: refused, counted nowhere
$node->safe_psql('postgres', q{SELECT stage.set_backpressure('p', max_backlog => 1)});
$node->safe_psql('postgres', q{INSERT INTO stage_landing.p (id, amount) VALUES ('4', '1'), ('5', '1')});
($ret, $out, $err) = $node->psql('postgres',
	q{INSERT INTO stage_landing.p (id, amount) VALUES ('6', '1')}, extra_params => ['-v', 'VERBOSITY=verbose']);
isnt($ret, 0, 'backpressure refuses an insert without preloading');
like($err, qr/53400: pipeline "p" is 2 rows behind/, 'with its SQLSTATE and message');
is($node->safe_psql('postgres', q{SELECT backpressure_rejections FROM stage.health WHERE pipeline = 'p'}),
	'0', 'and counts nothing: there is no shared memory');

$node->stop;
done_testing();
