# 015_lanes_workers.pl: two background workers move one busy pipeline with
# two lanes side by side.
#
# stage.workers_per_database = 2 makes the launcher keep two workers in the
# database.  A pipeline with stage.set_lanes(2) gets 200,000 rows in one
# transaction (5% rejected by a rule, some keys landed twice, on_duplicate
# update).  Shown: both workers ran batches of the pipeline, of both lanes,
# at the same time; every landing row is taken by exactly one committed
# batch; each key's last version is in the target.  Then the setting goes
# back to 1 at a reload: one worker stops and the other goes on.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;

my $node = PostgreSQL::Test::Cluster->new('lanes_workers');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'stage'
stage.naptime = '100ms'
stage.max_workers = 4
stage.worker_role = 'stage_worker'
stage.workers_per_database = 2
log_min_messages = warning
});
$node->start;

$node->safe_psql('postgres', StageTest::shop_sql());
$node->safe_psql(
	'shop', q{
CREATE EXTENSION stage;
CREATE TABLE public.t (id bigint PRIMARY KEY, v text, _stage_id bigint, _stage_batch bigint);
ALTER TABLE public.t OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.create_pipeline('p', 'public.t', key => '{id}', on_duplicate => 'update');
SELECT stage.add_rule('p', 'v', 'regex', '{"pattern": "^v[0-9]+$"}');
SELECT stage.set_lanes('p', 2);
RESET ROLE;
INSERT INTO stage_landing.p (id, v)
SELECT (g % 190000)::text, CASE WHEN g % 20 = 0 THEN 'bad' ELSE 'v' || g END
  FROM generate_series(1, 200000) g;
});

$node->append_conf('postgresql.conf', "stage.databases = 'shop'");
$node->reload;
$node->poll_query_until('shop',
	q{SELECT count(*) FROM stage.workers WHERE database = 'shop' AND pid IS NOT NULL}, '2')
  or die 'the launcher did not start two workers';
$node->poll_query_until('shop', q{SELECT stage.backlog('p') = 0 AND NOT window_open FROM stage.pipelines}, 't')
  or die 'the workers did not drain the pipeline';

is( $node->safe_psql(
		'shop', q{SELECT count(DISTINCT backend_pid) || ' ' || count(DISTINCT lane) FROM stage.batches
				   WHERE pipeline = 'p' AND status = 'done'}),
	'2 2', 'two workers ran batches of both lanes');
cmp_ok(
	$node->safe_psql(
		'shop', q{
	SELECT count(*) FROM stage.batches x JOIN stage.batches y
	    ON x.pipeline = y.pipeline AND x.lane = 0 AND y.lane = 1 AND x.backend_pid <> y.backend_pid
	   AND x.started_at < y.finished_at AND y.started_at < x.finished_at
	 WHERE x.status = 'done' AND y.status = 'done'}),
	'>', 0, 'batches of the two lanes ran at the same time, in two workers');
# the versions of a key that a later batch overwrote have left the target
my ($landing, undef, undef, undef, $overwritten) =
  StageTest::check_accounting($node, 'shop', 'p', 'public.t', overwrites => ['id']);
is($landing, '200000', 'all 200,000 landing rows are accounted for');
cmp_ok($overwritten, '>', 0, "versions were overwritten by later batches ($overwritten)");
is( $node->safe_psql(
		'shop', q{
	SELECT count(*) FROM public.t t
	  JOIN (SELECT DISTINCT ON (id) id::bigint AS id, v FROM stage_landing.p
			 WHERE v <> 'bad' ORDER BY id, _stage_id DESC) l USING (id)
	 WHERE t.v <> l.v}),
	'0', 'every key holds its last good version');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM stage.quarantine WHERE pipeline = 'p'}),
	'10000', 'the bad rows are in quarantine');

# back to one worker at a reload
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "stage.workers_per_database = 1");
$node->reload;
$node->wait_for_log(qr/stage worker for database "shop" stops: stage.workers_per_database is 1/, $offset);
$node->poll_query_until('shop',
	q{SELECT count(*) FROM stage.workers WHERE database = 'shop' AND pid IS NOT NULL}, '1')
  or die 'the second worker did not stop';
$node->safe_psql('shop', q{INSERT INTO stage_landing.p (id, v) VALUES ('1', 'v999999')});
$node->poll_query_until('shop', q{SELECT v FROM public.t WHERE id = 1}, 'v999999')
  or die 'the remaining worker does not move rows';
pass('the remaining worker moves rows');

$node->stop;
done_testing();
