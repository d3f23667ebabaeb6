# pg_dump and restore keep a pipeline whole: its contract, landing rows,
# batch history and quarantine come back, and batching goes on in the
# restored database without taking any landed row twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION stage;
	CREATE TABLE t (id int PRIMARY KEY, email text, amount numeric(8,2), _stage_id bigint);
	SELECT stage.create_pipeline('p', 't', key => '{id}');
	SELECT stage.add_rule('p', 'amount', 'range', '{"min": 0}');
	SELECT stage.add_mask('p', 'email', 'email');
	INSERT INTO stage_landing.p (id, email, amount)
	VALUES ('1', 'alice@example.com', '5'), ('2', 'bob@example.com', '-1');
	SELECT * FROM stage.run_batch('p');
	INSERT INTO stage_landing.p (id, email, amount)
	VALUES ('3', 'carol@example.com', '7');
});
# the default secret, made on first use, must come back with its key
my $hmac = $node->safe_psql('src', q{SELECT stage.hmac('alice@example.com')});
like($hmac, qr/^[0-9a-f]{64}$/, 'the default secret is made on first use');

my $dump = $node->basedir . '/src.dump';
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump of a database with a pipeline');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a new database');

is($node->safe_psql('dst', q{SELECT stage.contract('p')->>'version'}), '3',
	'the contract comes back at its version');
is($node->safe_psql('dst', q{SELECT stage.hmac('alice@example.com')}), $hmac,
	'the default secret comes back with its key: hashes stay joinable');
is($node->safe_psql('dst', q{SELECT count(*) FROM stage.batch}), '1',
	'the batch history comes back');
is($node->safe_psql('dst', q{SELECT landing_id FROM stage.quarantine_log}), '2',
	'the quarantine comes back');
is($node->safe_psql('dst', q{SELECT count(*) FROM stage_landing.p}), '3',
	'the landing rows come back');

# the window was dumped with the source's snapshots: the row that was
# pending must still be taken, once, and the moved ones not again
$node->safe_psql('dst', q{SELECT stage.run_all()});
is($node->safe_psql('dst', q{SELECT string_agg(_stage_id::text, ',' ORDER BY _stage_id) FROM t}),
	'1,3', 'batching goes on: the pending row moves, no row moves twice');
# after the restore: landing = target + quarantine + duplicates, and the
# batches before and after it took each landing row once
StageTest::check_accounting($node, 'dst', 'p', 't');

# a new pipeline in the restored database does not collide with the old ids
$node->safe_psql('dst', q{
	CREATE TABLE u (id int PRIMARY KEY);
	SELECT stage.create_pipeline('q', 'u', key => '{id}');
});
is($node->safe_psql('dst', q{SELECT count(DISTINCT pipeline_id) FROM stage.pipeline}), '2',
	'identity sequences come back too');

$node->stop;
done_testing();
