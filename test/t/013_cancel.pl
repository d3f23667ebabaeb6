# A batch over a 100 MB value answers pg_cancel_backend within a second:
# every loop over a value's bytes checks for interrupts (the PII scanner of
# a no_pii rule and of the redact_pii mask, here on "DE89 " repeated: an
# IBAN prefix at every word).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION stage;
	CREATE TABLE notes (id int PRIMARY KEY, note text);
	SELECT stage.create_pipeline('notes', 'notes', key => '{id}');
	SELECT stage.add_rule('notes', 'note', 'no_pii');
	SELECT stage.add_mask('notes', 'note', 'redact_pii');
	INSERT INTO stage_landing.notes (id, note) VALUES ('1', repeat('DE89 ', 20000000));
});
is($node->safe_psql('postgres', q{SELECT octet_length(note) FROM stage_landing.notes}),
	'100000000', 'a 100 MB value has landed');

# the batch, in a session of its own
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
	  '-c', q{SET application_name = 'cancel_me'; SELECT status FROM stage.run_batch('notes')} ],
	'>', \$out, '2>', \$err);

my $pid;
for (1 .. 600)
{
	$pid = $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity
		 WHERE application_name = 'cancel_me' AND state = 'active'
		   AND now() - query_start > interval '1 second'});
	last if $pid ne '';
	usleep(100_000);
}
ok($pid ne '', 'the batch is busy with the value for more than a second');

my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $gone = 0;
while (time - $t0 < 30)
{
	$gone = $node->safe_psql('postgres', qq{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid AND state = 'active'}) eq 't';
	last if $gone;
	usleep(20_000);
}
my $took = time - $t0;
$h->finish;
ok($gone, 'the batch stopped');
cmp_ok($took, '<=', 1.0, sprintf('it answered the cancel in %.3f s (at most 1 s)', $took));
like($err, qr/canceling statement due to user request/, 'with the cancel error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM stage.batch}), '0',
	'the cancelled batch left nothing behind');

$node->stop;
done_testing();
