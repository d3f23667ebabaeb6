# StageTest: what the crash and worker TAP tests share (test/t/0*.pl), in
# the order a test uses it: the setup, the load, the worker and the crash,
# the drain, the accounts.
#
# the setup
#   shop_sql()              the roles and the database "shop" of the worker
#                           tests: shop_owner owns the pipelines,
#                           stage_worker (a member of shop_owner) is the
#                           worker role, producer lands rows; run in
#                           "postgres"
#   serve_database($node, $db)
#                           the background worker for $db, as stage_worker
#                           (ALTER SYSTEM and a reload)
#   orders_sql()            the "orders" target, pipeline and contract used
#                           under load: a CHECK, NOT NULL, a key with
#                           on_duplicate 'skip', range/enum/regex rules, an
#                           email mask, granted to the role "producer";
#                           run in the test database as a superuser, with
#                           the roles shop_owner and producer existing
#   orders_quarantined($node, $db)
#                           the quarantined rows of "orders" by what caught
#                           them: (a rule, the target's CHECK or NOT NULL,
#                           a type check)
# the load
#   write_producer($dir, $rows)
#                           a pgbench script landing $rows rows a transaction
#                           into stage_landing.orders, about 5% of them bad
#                           in every way the contract and the target catch,
#                           3% of the keys from a small range (duplicates);
#                           returns the script's path
#   producer($script, $connstr, @pgbench_options)
#                           a pgbench run of $script, not yet started: its
#                           start, stop (SIGTERM, then SIGKILL), running and
#                           finish (waits; returns pgbench's output)
# the worker and the crash
#   worker_pid($node, $db, $old)
#                           a connected worker of $db other than pid $old;
#                           '' if none or the server does not answer
#   wait_worker($node, $db, $old, $t0, $limit)
#                           waits up to $limit seconds from $t0 for one;
#                           returns (pid or '', seconds since $t0)
#   hold_backlog($node, $db, $pipeline, $rows)
#                           pauses the pipeline until $rows rows wait, then
#                           resumes it: the next batches are long
#   catch_batch($node, $db, $pipeline, $second_chunk)
#                           finds the worker in a batch of $pipeline that
#                           holds a transaction id (with $second_chunk, one
#                           that continues a window whose first chunk is
#                           committed); returns (pid, xid, monitor session)
#                           or () after 10 s
#   xact_status($node, $db, $xid)
#                           pg_xact_status of $xid, or 'never logged'
#   killed_by_sigkill($node, $log_offset)
#                           waits up to 5 s for the postmaster to log a
#                           death by signal 9 after $log_offset; true if so
#   wait_recovered($node, $db, $log_offset)
#                           waits until the server has recovered from that
#                           crash and answers again
# the drain
#   run_all_until_empty($node, $db, $max)
#                           calls stage.run_all() until it moves nothing, at
#                           most $max times; returns what the last call moved
#   wait_drained($node, $db, @pipelines)
#                           waits until the committed batches of these
#                           pipelines took every one of their landing rows
# the accounts (the promise: every landing row of a pipeline is in exactly
# one of its target, stage.quarantine_log (items not replayed: a replayed
# row is in the target or the duplicate log) and stage.duplicate_log, nothing
# placed comes from elsewhere, and the committed batches took each landing
# row once)
#   unplaced_count($node, $db, $pipeline, $target, $lo, $hi)
#                           landing rows with $lo < id <= $hi in none of the
#                           three places
#   wait_placed($node, $db, $pipeline, $target, $lo, $hi, $limit)
#                           waits up to $limit seconds until none is left;
#                           returns (how many are left, seconds waited)
#   accounting_faults($node, $db, $pipeline, $target, %options)
#                           what holds at every moment, also while rows wait
#                           or a batch runs, checked in one snapshot: the
#                           committed batches took exactly the placed rows,
#                           no landing id is placed twice, none is invented;
#                           '' when all holds, else what failed
#   check_accounting($node, $db, $pipeline, $target, %options)
#                           the whole promise once everything is moved, as
#                           tests on one snapshot; returns the counts
#                           (landing, target, quarantined, duplicate,
#                           overwritten)
#   Options of both:
#     overwrites => [key columns]
#                           on_duplicate 'update': a version of a key that a
#                           later batch overwrote has left the target and is
#                           in no log.  It is counted as overwritten (not
#                           lost) when the target holds its key (compared as
#                           text) from a landing row later in (_stage_txid,
#                           _stage_id) order; the batches took it all the
#                           same (placed + overwritten = taken)
#   The target must have the lineage column _stage_id.
# roles against a node
#   adversary($node, $db)  as_role, safe_as, sqlstate_as, su, server_ok for
#                           the calling test file (see below)
# the report
#   time_summary(@seconds)  'min .. s, median .. s, max .. s' (or 'none')
package StageTest;

use strict;
use warnings;
use IPC::Run;
use Test::More;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Utils;

# ------------------------------------------------------------ the setup

sub shop_sql
{
	return q{
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT shop_owner TO stage_worker;
CREATE ROLE producer LOGIN;
CREATE DATABASE shop;
};
}

sub serve_database
{
	my ($node, $db) = @_;
	$node->safe_psql(
		'postgres', qq{
ALTER SYSTEM SET stage.databases = '$db';
ALTER SYSTEM SET stage.worker_role = 'stage_worker';
SELECT pg_reload_conf();
});
	return;
}

sub orders_sql
{
	return q{
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
CREATE INDEX ON public.orders (_stage_id);
ALTER TABLE public.orders OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.create_pipeline('orders', 'public.orders', key => '{order_id}',
							 on_duplicate => 'skip');
SELECT stage.add_rule('orders', 'amount', 'range', '{"min": 0, "max": 10000}');
SELECT stage.add_rule('orders', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
SELECT stage.add_rule('orders', 'code', 'regex', '{"pattern": "^[A-Z]{2}-[0-9]{4}$"}');
SELECT stage.add_mask('orders', 'email', 'email');
SELECT stage.grant_producer('orders', 'producer');
RESET ROLE;
};
}

sub orders_quarantined
{
	my ($node, $db) = @_;
	return split /\|/,
	  $node->safe_psql(
		$db, q{
	SELECT count(*) FILTER (WHERE q.reasons::text ~ '"kind": "(range|enum|regex)"'),
		   count(*) FILTER (WHERE q.reasons::text ~ '"sqlstate": "(23514|23502)"'),
		   count(*) FILTER (WHERE q.reasons::text ~ '"kind": "type"')
	  FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
	 WHERE p.name = 'orders'});
}

# ------------------------------------------------------------ the load

# Bad rows (about 5%): amount out of range, unknown currency, code not
# matching the pattern (rules); qty not an integer (type check); qty 13 and
# NULL email (the target's CHECK and NOT NULL, isolated by bisection).
sub write_producer
{
	my ($dir, $rows) = @_;
	my $script = "$dir/produce.sql";

	open my $fh, '>', $script or die "could not write $script: $!";
	print $fh qq{
INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code)
SELECT CASE WHEN random() < 0.03 THEN floor(random() * 2000)
			ELSE floor(random() * 1000000000) END::bigint::text,
	   CASE WHEN random() < 0.005 THEN NULL ELSE 'user' || g || '\@example.com' END,
	   CASE WHEN random() < 0.01 THEN '-5' ELSE round((random() * 1000)::numeric, 2)::text END,
	   CASE WHEN random() < 0.01 THEN 'XYZ'
			ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + floor(random() * 3)::int] END,
	   CASE WHEN random() < 0.005 THEN 'x' WHEN random() < 0.005 THEN '13'
			ELSE (1 + floor(random() * 10))::text END,
	   CASE WHEN random() < 0.01 THEN 'bad'
			ELSE 'AB-' || lpad(floor(random() * 10000)::text, 4, '0') END
  FROM generate_series(1, $rows) g;
};
	close $fh;
	return $script;
}

sub producer
{
	my ($script, $connstr, @options) = @_;
	return bless {
		cmd => [ 'pgbench', '-n', @options, '-f', $script, $connstr ],
		run => undef,
		out => '',
		err => ''
	}, 'StageTest::Producer';
}

sub StageTest::Producer::start
{
	my ($self) = @_;
	@$self{qw(out err)} = ('', '');
	$self->{run} = IPC::Run::start($self->{cmd}, '>', \$self->{out}, '2>', \$self->{err});
	return $self;
}

sub StageTest::Producer::stop
{
	my ($self) = @_;
	return unless $self->{run};
	$self->{run}->kill_kill(grace => 5);
	$self->{run} = undef;
	return;
}

sub StageTest::Producer::running
{
	my ($self) = @_;
	return $self->{run} && $self->{run}->pumpable;
}

sub StageTest::Producer::finish
{
	my ($self) = @_;
	$self->{run}->finish;
	$self->{run} = undef;
	return $self->{out};
}

# ------------------------------------------------ the worker and the crash

sub worker_pid
{
	my ($node, $db, $old) = @_;
	my $out = '';
	my $rc = $node->psql(
		$db, qq{SELECT pid FROM stage.workers
			WHERE pid IS NOT NULL AND pid <> $old AND state IN ('idle', 'running')},
		stdout => \$out, stderr => \my $err);
	return $rc == 0 ? $out : '';
}

sub wait_worker
{
	my ($node, $db, $old, $t0, $limit) = @_;
	while (time - $t0 < $limit)
	{
		my $pid = worker_pid($node, $db, $old);
		return ($pid, time - $t0) if $pid ne '';
		usleep(20_000);
	}
	return ('', time - $t0);
}

sub hold_backlog
{
	my ($node, $db, $pipeline, $rows) = @_;
	$node->safe_psql($db, qq{SELECT stage.pause('$pipeline')});
	$node->poll_query_until(
		$db, qq{
		SELECT (SELECT count(*) FROM stage_landing.$pipeline)
			   - (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
				   WHERE p.name = '$pipeline' AND b.status = 'done') >= $rows})
	  or die 'the producer does not produce';
	$node->safe_psql($db, qq{SELECT stage.resume('$pipeline')});
	return;
}

sub catch_batch
{
	my ($node, $db, $pipeline, $second_chunk) = @_;
	my $q = qq{SELECT pid || ' ' || backend_xid FROM pg_stat_activity
	WHERE backend_type = 'stage worker' AND state = 'active'
	  AND query LIKE 'stage: run_batch%' AND backend_xid IS NOT NULL};
	$q .= qq{ AND (SELECT win_hi IS NOT NULL AND cur_id IS NOT NULL
				   FROM stage.pipeline WHERE name = '$pipeline')}
	  if $second_chunk;
	my $mon = $node->background_psql($db);
	my $found = '';
	my $deadline = time + 10;
	while ($found eq '' && time < $deadline)
	{
		$found = $mon->query_safe($q);
		usleep(500) if $found eq '';
	}
	if ($found eq '')
	{
		$mon->quit;
		return ();
	}
	return (split(/ /, $found), $mon);
}

# An id whose WAL never reached disk may be handed out again after a crash,
# a committed one never (its commit record is flushed): any status but
# "committed", or none for an id not reused yet, means it committed nothing.
sub xact_status
{
	my ($node, $db, $xid) = @_;
	my $status = '';
	$node->psql($db, "SELECT pg_xact_status('$xid'::xid8)",
		stdout => \$status, stderr => \my $err);
	return $status eq '' ? 'never logged' : $status;
}

# A backend on its way out (its batch committed between a check and the
# signal) exits by itself: only a death by signal 9 makes the postmaster
# reset the server.
sub killed_by_sigkill
{
	my ($node, $log_offset) = @_;
	foreach (1 .. 100)
	{
		return 1
		  if slurp_file($node->logfile, $log_offset) =~ /terminated by signal 9/;
		usleep(50_000);
	}
	return 0;
}

sub wait_recovered
{
	my ($node, $db, $log_offset) = @_;
	$node->wait_for_log(qr/database system is ready to accept connections/,
		$log_offset);
	$node->poll_query_until($db, 'SELECT 1', '1')
	  or die 'the server did not come back after the crash';
	return;
}

# ------------------------------------------------------------ the drain

sub run_all_until_empty
{
	my ($node, $db, $max) = @_;
	my $moved;
	my $calls = 0;
	do
	{
		$moved = $node->safe_psql($db, 'SELECT stage.run_all()');
		$calls++;
	} while ($moved > 0 && $calls < $max);
	return $moved;
}

sub wait_drained
{
	my ($node, $db, @pipelines) = @_;
	my $landing = join(' + ', map { "(SELECT count(*) FROM stage_landing.$_)" } @pipelines);
	my $names = join(', ', map { "'$_'" } @pipelines);
	$node->poll_query_until(
		$db, qq{
		SELECT $landing
			   = (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
				   WHERE p.name IN ($names) AND b.status = 'done' AND b.kind = 'batch')})
	  or die "the backlog of @pipelines is not drained";
	return;
}

# ------------------------------------------------------------ the accounts

# the landing row l is in none of the three places
sub unplaced_sql
{
	my ($pipeline, $target) = @_;
	my $id = qq{(SELECT pipeline_id FROM stage.pipeline WHERE name = '$pipeline')};
	return qq{NOT EXISTS (SELECT 1 FROM $target t WHERE t._stage_id = l._stage_id)
	   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log q
						WHERE q.landing_id = l._stage_id AND q.pipeline_id = $id)
	   AND NOT EXISTS (SELECT 1 FROM stage.duplicate_log d
						WHERE d.landing_id = l._stage_id AND d.pipeline_id = $id)};
}

sub unplaced_count
{
	my ($node, $db, $pipeline, $target, $lo, $hi) = @_;
	return $node->safe_psql(
		$db, qq{
	SELECT count(*) FROM stage_landing.$pipeline l
	 WHERE l._stage_id > $lo AND l._stage_id <= $hi
	   AND } . unplaced_sql($pipeline, $target));
}

sub wait_placed
{
	my ($node, $db, $pipeline, $target, $lo, $hi, $limit) = @_;
	my $t0 = time;
	my $left;
	while (($left = unplaced_count($node, $db, $pipeline, $target, $lo, $hi)) ne '0'
		&& time - $t0 < $limit)
	{
		usleep(50_000);
	}
	return ($left, time - $t0);
}

# The accounts of a pipeline in one snapshot, a hash: landing, target,
# quarantined, duplicate (rows of each), overwritten (landing rows in no
# place whose key a later version holds in the target; 0 without the
# option), unplaced (landing rows in no place; with $placed_only and no
# overwrites not counted but 0, for accounting_faults, to which waiting
# rows are no fault), placed (rows of the three places), took (rows the
# committed batches took), twice (landing ids placed more than once),
# invented (placed rows of no landing row).
sub accounts
{
	my ($node, $db, $pipeline, $target, $placed_only, %options) = @_;
	my $overwritten = '0';
	my $unplaced = '0';
	$unplaced = '(SELECT count(*) FROM unplaced)'
	  unless $placed_only && !$options{overwrites};
	if ($options{overwrites})
	{
		$overwritten = qq{(SELECT count(*) FROM unplaced u WHERE EXISTS (
			SELECT 1 FROM $target t JOIN stage_landing.$pipeline v ON v._stage_id = t._stage_id
			 WHERE } . join(' AND ', map { "t.$_\::text = u.$_" } @{ $options{overwrites} }) . q{
			   AND ROW(v._stage_txid, v._stage_id) > ROW(u._stage_txid, u._stage_id)))};
	}
	my @names = qw(landing target quarantined duplicate overwritten unplaced placed took twice invented);
	my @values = split /\|/,
	  $node->safe_psql(
		$db, qq{
	WITH p AS (SELECT pipeline_id FROM stage.pipeline WHERE name = '$pipeline'),
	placed AS MATERIALIZED (
		SELECT t._stage_id AS landing_id FROM $target t
		UNION ALL
		SELECT q.landing_id FROM stage.quarantine_log q, p
		 WHERE q.pipeline_id = p.pipeline_id AND q.status <> 'replayed'
		UNION ALL
		SELECT d.landing_id FROM stage.duplicate_log d, p WHERE d.pipeline_id = p.pipeline_id),
	unplaced AS MATERIALIZED (
		SELECT l.* FROM stage_landing.$pipeline l WHERE } . unplaced_sql($pipeline, $target) . qq{)
	SELECT (SELECT count(*) FROM stage_landing.$pipeline),
		   (SELECT count(*) FROM $target),
		   (SELECT count(*) FROM stage.quarantine_log q, p
			 WHERE q.pipeline_id = p.pipeline_id AND q.status <> 'replayed'),
		   (SELECT count(*) FROM stage.duplicate_log d, p WHERE d.pipeline_id = p.pipeline_id),
		   $overwritten,
		   $unplaced,
		   (SELECT count(*) FROM placed),
		   (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b, p
			 WHERE b.pipeline_id = p.pipeline_id AND b.status = 'done' AND b.kind = 'batch'),
		   (SELECT count(*) FROM (SELECT landing_id FROM placed GROUP BY landing_id
								  HAVING count(*) > 1) x),
		   (SELECT count(*) FROM placed WHERE landing_id IS NULL)
		   + (SELECT count(*) FROM placed
			   WHERE landing_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stage_landing.$pipeline l
								  WHERE l._stage_id = placed.landing_id))});
	my %acc;
	@acc{@names} = @values;
	return \%acc;
}

sub accounting_faults
{
	my ($node, $db, $pipeline, $target, %options) = @_;
	my $acc = accounts($node, $db, $pipeline, $target, 1, %options);
	my @faults;
	push @faults, "placed=$acc->{placed} overwritten=$acc->{overwritten} batches took $acc->{took}"
	  if $acc->{placed} + $acc->{overwritten} != $acc->{took};
	push @faults, "twice=$acc->{twice}" if $acc->{twice};
	push @faults, "invented=$acc->{invented}" if $acc->{invented};
	return join(' ', @faults);
}

sub check_accounting
{
	my ($node, $db, $pipeline, $target, %options) = @_;
	my $acc = accounts($node, $db, $pipeline, $target, 0, %options);
	my $over = $options{overwrites} ? ' + overwritten' : '';
	note "$pipeline: landing $acc->{landing} = target $acc->{target} + quarantine $acc->{quarantined}"
	  . " + duplicate $acc->{duplicate}"
	  . ($options{overwrites} ? " + overwritten $acc->{overwritten}" : '');
	is($acc->{target} + $acc->{quarantined} + $acc->{duplicate} + $acc->{overwritten},
		$acc->{landing},
		"$pipeline: count(landing) = count(target) + count(quarantine) + count(duplicate)$over");
	is($acc->{twice}, '0', "$pipeline: no landing id is in two places, or twice in one");
	is($acc->{unplaced} - $acc->{overwritten},
		0,
		"$pipeline: every landing id is in one of them (nothing lost)"
		  . ($options{overwrites} ? ', or overwritten by a later version of its key' : ''));
	is($acc->{invented}, '0',
		"$pipeline: every placed row comes from a landing row (nothing invented)");
	is($acc->{took}, $acc->{landing},
		"$pipeline: the committed batches together took every landing row once");
	return @$acc{qw(landing target quarantined duplicate overwritten)};
}

# ----------------------------------------------- roles against a node

# StageTest::adversary($node, $db) gives the calling test file, for this
# node and default database:
#   as_role($role, $sql, db => ..., on_error_stop => ...)
#                           psql connected as $role (no SET ROLE):
#                           (ret, stdout, stderr)
#   safe_as($role, $sql, ...) as_role, dying on error; stdout
#   sqlstate_as($role, $sql, ...) the SQLSTATE of the first error ('no
#                           error' if none); in list context also the
#                           error text and stdout
#   su($sql, db => ...)     as the superuser
#   server_ok($what)        the server is up and no backend died of a signal
my ($adv_node, $adv_db);

sub adversary
{
	my $caller = caller;
	($adv_node, $adv_db) = @_;
	no strict 'refs';
	*{"${caller}::$_"} = \&{"StageTest::$_"} for qw(as_role safe_as sqlstate_as su server_ok);
	return;
}

sub as_role
{
	my ($role, $sql, %o) = @_;
	my $db = $o{db} // $adv_db;
	return $adv_node->psql(
		$db, $sql,
		connstr => $adv_node->connstr($db) . " user=$role",
		on_error_stop => $o{on_error_stop} // 1);
}

sub safe_as
{
	my ($role, $sql, %o) = @_;
	my ($ret, $out, $err) = as_role($role, $sql, %o);
	die "error running as $role: $err\nSQL: $sql" if $ret != 0;
	return $out;
}

sub sqlstate_as
{
	my ($role, $sql, %o) = @_;
	my ($ret, $out, $err) = as_role($role, "\\set VERBOSITY verbose\n$sql", %o);
	my $state = $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1
	  : $ret == 0 ? 'no error' : "psql exit $ret: $err";
	return wantarray ? ($state, $err, $out) : $state;
}

sub su
{
	my ($sql, %o) = @_;
	return $adv_node->safe_psql($o{db} // $adv_db, $sql);
}

sub server_ok
{
	my ($what) = @_;
	my $up = $adv_node->psql('postgres', 'SELECT 1') == 0;
	my $log = PostgreSQL::Test::Utils::slurp_file($adv_node->logfile);
	Test::More::ok($up && $log !~ /terminated by signal|server process .* was terminated/,
		"$what: the server is up and no backend was terminated by a signal");
	return;
}

# ------------------------------------------------------------ the report

sub time_summary
{
	my @t = sort { $a <=> $b } @_;
	return 'none' unless @t;
	return sprintf('min %.2f s, median %.2f s, max %.2f s',
		$t[0], $t[ $#t / 2 ], $t[-1]);
}

1;
