# 020_plproxy_routing.pl: producers land rows through a PL/Proxy router that
# sends each row to the staging node owning its key; a key always lands on
# the same node, so each node resolves its duplicates alone and correctly.
#
# Three clusters: two staging nodes with stage (the same target, pipeline
# and contract on both: "orders", key order_id, on_duplicate 'skip', a range
# and a regex rule, an e-mail mask) and a router without stage, with the
# plproxy extension.  On each node the plain SQL function
# land_order(order_id, email, amount) inserts one row into
# stage_landing.orders with the caller's rights (no SECURITY DEFINER) and
# returns the node's number.  On the router the PL/Proxy function of the
# same name, on the SQL/MED cluster "staging" (p0 = node 0, p1 = node 1),
# runs it on partition hashtext(order_id) & 1.  The role "producer" calls
# the router; PL/Proxy connects to the node as that role, so the node's
# landing rows are landed by "producer" with its own grants.
#
# 305 rows go through the router: 150 keys with 1 to 3 rows each, in an
# order that scatters a key's rows, some rows bad (a rule, a type check),
# and 5 keys that are no bigint.  After stage.run_all on both nodes, with
# the expected values computed here from what was sent and from hashtext on
# the router:
#   1. no key has landing rows on both nodes;
#   2. every key landed on the node hashtext(key) & 1 selects, exactly as
#      many times as it was sent (and land_order said so for each call);
#   3. on each node the books balance (StageTest::check_accounting and the
#      "books balance" query of docs/views.md, with exact counts), and the
#      quarantined rows of a key that a later row loaded are superseded on
#      that node, the others open;
#   4. the two targets together hold one row per distinct valid key, its
#      first valid row, and the duplicates recorded on both nodes number
#      valid rows - distinct valid keys;
#   5. no target holds a raw e-mail: each holds the masked one.
# Then what PL/Proxy does at the edges: a NULL key fails in the router
# ("Hash function returned NULL", SQLSTATE XX000) and lands nothing; the
# rows a router statement landed before an error stay landed, and so does a
# row landed in a router transaction that rolls back (PL/Proxy runs each
# remote call in autocommit).  Finally keys are sent again:
#   6. each lands on the node it landed on before; a key already in the
#      target is a duplicate there (the target keeps its first row), a key
#      whose rows were all bad now loads and supersedes them; 1 to 5 hold
#      again.
#
# Run by scripts/test.sh (suite tap); see 001_kill_mover.pl for the
# environment.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;

# ------------------------------------------------------------ the clusters

my @nodes;
foreach my $i (0, 1)
{
	my $node = PostgreSQL::Test::Cluster->new("staging$i");
	$node->init;
	$node->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'stage'
shared_buffers = '16MB'
log_min_messages = warning
});
	$node->start;
	$node->safe_psql('postgres', StageTest::shop_sql());
	$node->safe_psql(
		'shop', qq{
CREATE EXTENSION stage;
CREATE TABLE public.orders (
	order_id	bigint PRIMARY KEY,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	_stage_id	bigint,
	_stage_batch bigint
);
ALTER TABLE public.orders OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.create_pipeline('orders', 'public.orders', key => '{order_id}',
							 on_duplicate => 'skip');
SELECT stage.add_rule('orders', 'amount', 'range', '{"min": 0, "max": 10000}');
SELECT stage.add_rule('orders', 'email', 'regex', '{"pattern": "^[^@ ]+\@[^@ ]+\$"}');
SELECT stage.add_mask('orders', 'email', 'email');
SELECT stage.grant_producer('orders', 'producer');
RESET ROLE;
-- runs with the caller's rights: the producer's INSERT on the landing
-- columns is all it needs (it cannot read _stage_id back: a producer has no
-- SELECT on the landing table, so the function returns the node's number)
CREATE FUNCTION public.land_order(order_id text, email text, amount text)
RETURNS bigint LANGUAGE sql AS \$\$
	INSERT INTO stage_landing.orders (order_id, email, amount) VALUES (\$1, \$2, \$3);
	SELECT ${i}::bigint;
\$\$;
REVOKE EXECUTE ON FUNCTION public.land_order(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.land_order(text, text, text) TO producer;
});
	push @nodes, $node;
}

# the router: no stage, only PL/Proxy; the staging nodes through their
# unix sockets, application_name labels the rows (_stage_source)
my $router = PostgreSQL::Test::Cluster->new('router');
$router->init;
# TEMP_CONFIG preloads stage in every test node: not in this one
$router->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = ''
shared_buffers = '16MB'
});
$router->start;
my @parts = map {
	sprintf(q{p%d 'host=%s port=%d dbname=shop application_name=router'},
		$_, $nodes[$_]->host, $nodes[$_]->port)
} (0, 1);
$router->safe_psql(
	'postgres', qq{
CREATE EXTENSION plproxy;
CREATE ROLE producer LOGIN;
CREATE SERVER staging FOREIGN DATA WRAPPER plproxy OPTIONS ($parts[0], $parts[1]);
CREATE USER MAPPING FOR producer SERVER staging;
GRANT USAGE ON FOREIGN SERVER staging TO producer;
CREATE FUNCTION public.land_order(order_id text, email text, amount text)
RETURNS bigint LANGUAGE plproxy AS \$\$
	CLUSTER 'staging';
	RUN ON hashtext(order_id);
\$\$;
REVOKE EXECUTE ON FUNCTION public.land_order(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.land_order(text, text, text) TO producer;
});
is($router->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'stage'}),
	'0', 'the router has no stage');

# ------------------------------------------------------------ the helpers

sub lit
{
	my ($s) = @_;
	return 'NULL' unless defined $s;
	$s =~ s/'/''/g;
	return "'$s'";
}

# psql on the router as the producer: (ret, stdout, stderr)
sub as_producer
{
	my ($sql) = @_;
	return $router->psql(
		'postgres', "\\set VERBOSITY verbose\n$sql",
		connstr => $router->connstr('postgres') . ' user=producer',
		on_error_stop => 1);
}

# every row sent through the router: key, email, amount, valid (what the
# contract accepts), node (what land_order answered)
my @sent;

# sends rows (hash refs with key, email, amount, valid) through the router
# in one statement, in their order; records the node each call answered
sub land
{
	my @rows = @_;
	my $base = scalar @sent;
	my $values = join(",\n",
		map { sprintf('(%d, %s, %s, %s)', $base + $_, lit($rows[$_]{key}),
				lit($rows[$_]{email}), lit($rows[$_]{amount})) } 0 .. $#rows);
	my ($ret, $out, $err) = as_producer(qq{
SELECT n, land_order(k, e, a) FROM (VALUES $values) AS v(n, k, e, a)});
	die "landing through the router failed: $err" if $ret != 0;
	my %node = map { split /\|/ } split /\n/, $out;
	foreach (0 .. $#rows)
	{
		$rows[$_]{node} = $node{ $base + $_ };
		record($rows[$_]);
	}
	return;
}

# a row landed, in landing order (seq): each call commits by itself on its
# node, so a node's landing order is the order of the calls
sub record
{
	my ($r) = @_;
	$r->{seq} = scalar @sent;
	push @sent, $r;
	return;
}

# the node hashtext(key) & 1 selects, computed on the router (PL/Proxy maps
# a hash to a partition by hash & (partitions - 1))
my %owner;

sub learn_owners
{
	my @new = grep { !exists $owner{$_} } map { $_->{key} } @sent;
	return unless @new;
	my $keys = join(', ', map { lit($_) } @new);
	my $out = $router->safe_psql('postgres',
		"SELECT k, hashtext(k) & 1 FROM unnest(ARRAY[$keys]::text[]) k");
	%owner = (%owner, map { split /\|/ } split /\n/, $out);
	return;
}

sub masked
{
	my ($email) = @_;
	$email =~ /^(.)[^@]*(@.*)$/ or die "not an e-mail: $email";
	return "$1***$2";
}

sub mover
{
	foreach my $node (@nodes)
	{
		is(StageTest::run_all_until_empty($node, 'shop', 10), '0',
			$node->name . ': stage.run_all moved everything');
	}
	return;
}

# pairs "a|b" of a query's rows, as a hash
sub rows_hash
{
	my ($node, $sql) = @_;
	return { map { split /\|/ } split /\n/, $node->safe_psql('shop', $sql) };
}

# assertions 1 to 5 against what was sent
sub check_nodes
{
	my ($phase) = @_;
	learn_owners();

	# what each node must hold: landing rows per key, the winning (first
	# valid) row per key, the quarantined and the duplicate rows; a
	# quarantined row whose key a later row loaded is superseded, the others
	# are open (a bad key, no bigint, is no key: never superseded)
	my (@landed, @winner, @bad, @dup, @superseded, %valid_keys, $valid_rows);
	foreach my $r (@sent)
	{
		my $o = $owner{ $r->{key} };
		$landed[$o]{ $r->{key} }++;
		if (!$r->{valid})
		{
			$bad[$o]++;
		}
		elsif ($winner[$o]{ $r->{key} })
		{
			$dup[$o]++;
		}
		else
		{
			$winner[$o]{ $r->{key} } = $r;
		}
		$valid_rows++ if $r->{valid};
		$valid_keys{ $r->{key} } = 1 if $r->{valid};
	}
	foreach my $r (grep { !$_->{valid} } @sent)
	{
		my $o = $owner{ $r->{key} };
		my $w = $winner[$o]{ $r->{key} };
		$superseded[$o]++ if $w && $w->{seq} > $r->{seq};
	}

	my @routed_wrong = grep { $_->{node} ne $owner{ $_->{key} } } @sent;
	is(scalar @routed_wrong, 0,
		"$phase: each of the " . scalar(@sent) . ' calls ran on the node hashtext(key) & 1 selects')
	  or diag explain [ @routed_wrong[ 0 .. ($#routed_wrong < 4 ? $#routed_wrong : 4) ] ];

	my (@landing, @target);
	foreach my $i (0, 1)
	{
		my $node = $nodes[$i];
		$landing[$i] = rows_hash($node,
			'SELECT order_id, count(*) FROM stage_landing.orders GROUP BY order_id');
		$target[$i] = rows_hash($node,
			q{SELECT order_id, amount || ' ' || email || ' ' || _stage_id FROM public.orders});
	}

	# 1. no key on both nodes
	my @both = grep { exists $landing[1]{$_} } keys %{ $landing[0] };
	is(scalar @both, 0, "$phase: no key has landing rows on both nodes")
	  or diag "on both nodes: @both";

	foreach my $i (0, 1)
	{
		my $node = $nodes[$i];
		my $name = $node->name;

		# 2. the node hashtext selects, each key as often as it was sent
		my @wrong = grep { $owner{$_} != $i } keys %{ $landing[$i] };
		is(scalar @wrong, 0, "$phase: $name holds only keys with hashtext(key) & 1 = $i")
		  or diag "wrong node: @wrong";
		is_deeply($landing[$i], $landed[$i] // {},
			"$phase: $name landed each of its " . scalar(keys %{ $landed[$i] // {} })
			  . ' keys exactly as many times as it was sent');
		is( $node->safe_psql(
				'shop', q{SELECT string_agg(DISTINCT _stage_role || ' ' || COALESCE(_stage_source, '(null)'), ', ')
					FROM stage_landing.orders}),
			'producer router',
			"$phase: $name: the rows were landed by the role producer, source router");

		# 3. the books balance
		my $rows = scalar(grep { $owner{ $_->{key} } == $i } @sent);
		my $clean = scalar(keys %{ $winner[$i] // {} });
		my ($landing, $tgt, $quarantined, $duplicate) =
		  StageTest::check_accounting($node, 'shop', 'orders', 'public.orders');
		is( "$landing $tgt $quarantined $duplicate",
			join(' ', $rows, $clean, $bad[$i] // 0, $dup[$i] // 0),
			"$phase: $name: landing = target + quarantined + duplicates, "
			  . 'each as computed from what was sent');
		# (the quarantined rows are the items of quarantine_all, open or
		# closed, but for a replayed one: that row is in the target)
		is( $node->safe_psql(
				'shop', q{
	SELECT (SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'orders' AND kind = 'batch' AND status = 'done'),
		   (SELECT count(*) FROM public.orders),
		   (SELECT count(*) FROM stage.quarantine_all WHERE pipeline = 'orders' AND status <> 'replayed'),
		   (SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'orders'),
		   stage.backlog('orders'),
		   (SELECT count(*) FROM stage_landing.orders)}),
			join('|', $rows, $clean, $bad[$i] // 0, $dup[$i] // 0, 0, $rows),
			"$phase: $name: the books balance (taken|target|quarantined|duplicates|backlog|landing)");
		my $sup = $superseded[$i] // 0;
		is( $node->safe_psql(
				'shop', q{
	SELECT string_agg(status || ' ' || n, ', ' ORDER BY status)
	  FROM (SELECT status, count(*) AS n FROM stage.quarantine_all WHERE pipeline = 'orders' GROUP BY 1) s}),
			join(', ', grep { !/ 0$/ } ('open ' . (($bad[$i] // 0) - $sup), "superseded $sup")),
			"$phase: $name: the quarantined rows whose key a later row loaded are superseded, the others open");
	}

	# 4. one row per distinct valid key over both targets, its first valid
	# row (amounts and e-mails are unique per row), with its masked e-mail
	my @in_both = grep { exists $target[1]{$_} } keys %{ $target[0] };
	is(scalar @in_both, 0, "$phase: no key is in both targets");
	my %union = (%{ $target[0] }, %{ $target[1] });
	my %got = map { my ($amount, $email) = split / /, $union{$_}; ($_ => "$amount $email") } keys %union;
	my %want;
	foreach my $i (0, 1)
	{
		foreach my $w (values %{ $winner[$i] // {} })
		{
			$want{ $w->{key} } = "$w->{amount} " . masked($w->{email});
		}
	}
	is(scalar(keys %union), scalar(keys %valid_keys),
		"$phase: the targets hold " . scalar(keys %valid_keys) . ' rows, one per distinct valid key');
	is_deeply(\%got, \%want,
		"$phase: each key's row is its first valid row, with the e-mail masked");
	my $dups = 0;
	$dups += $nodes[$_]->safe_psql('shop', 'SELECT count(*) FROM stage.duplicate_log') for (0, 1);
	is($dups, $valid_rows - scalar(keys %valid_keys),
		"$phase: duplicates on both nodes = valid rows - distinct valid keys ($dups)");

	# 5. no raw e-mail in a target
	my %raw = map { ($_->{email} // '') => 1 } @sent;
	my @leaked = grep { my (undef, $e) = split / /, $union{$_}; $raw{$e} } keys %union;
	is(scalar @leaked, 0, "$phase: no target holds a raw e-mail");
	return;
}

# ------------------------------------------------------------ the load

# 150 keys, key i sent 1 + i % 3 times: all first rows, then all second
# rows, then the third.  Bad rows: the first row of every 7th key (amount
# out of range), the last row of every 11th (amount no number: the type
# check), the second row of every 13th (e-mail without @: the regex rule).
# Keys whose rows are all bad are in no target.  5 keys are no bigint.
my @names = qw(ana bo cy dee eve fay);
my @domains = qw(example.com example.org mail.test);
my @load;
foreach my $j (1 .. 3)
{
	foreach my $i (1 .. 150)
	{
		my $copies = 1 + $i % 3;
		next if $j > $copies;
		my $local = "$names[$i % @names].$i.$j";
		my $r = {
			key => 100000 + 7 * $i,
			email => "$local\@$domains[($i + $j) % @domains]",
			amount => sprintf('%d.%02d', $i, $j),
			valid => 1
		};
		if ($i % 7 == 0 && $j == 1)
		{
			@$r{qw(amount valid)} = ('-5.00', 0);
		}
		elsif ($i % 11 == 0 && $j == $copies)
		{
			@$r{qw(amount valid)} = ('abc', 0);
		}
		elsif ($i % 13 == 0 && $j == 2)
		{
			@$r{qw(email valid)} = ($local, 0);
		}
		push @load, $r;
	}
}
push @load,
  map { { key => "X-$_", email => "zed.$_\@example.com", amount => "$_.00", valid => 0 } } 1 .. 5;
is(scalar @load, 305, '305 rows to send');

land(@load);
learn_owners();
my %per_node;
$per_node{ $owner{$_} }++ for keys %owner;
ok($per_node{0} && $per_node{1},
	"hashtext spreads the keys over both nodes ($per_node{0} and $per_node{1} keys)");

mover();
check_nodes('after the load');

# ------------------------------------------------------------ at the edges

sub landing_total
{
	return join(' ', map { $_->safe_psql('shop', 'SELECT count(*) FROM stage_landing.orders') } @nodes);
}

# a NULL key has no hash: PL/Proxy refuses the call, no node sees it
my $before = landing_total();
my ($ret, $out, $err) = as_producer(q{SELECT land_order(NULL, 'nul@example.com', '1.00')});
isnt($ret, 0, 'a NULL key: the router call fails');
like($err, qr/ERROR:  XX000: PL\/Proxy function public\.land_order\(3\): Hash function returned NULL/,
	'a NULL key: "Hash function returned NULL", SQLSTATE XX000');
is(landing_total(), $before, 'a NULL key: no row landed on either node');

# a statement fails at its NULL key after a row landed: that row stays
my $first = { key => '900001', email => 'gus.1@example.com', amount => '1.00', valid => 1 };
($ret, $out, $err) = as_producer(qq{
SELECT land_order(k, e, a) FROM (VALUES ('900001', 'gus.1\@example.com', '1.00'),
									  (NULL, 'nul\@example.com', '1.00')) AS v(k, e, a)});
like($err, qr/Hash function returned NULL/, 'a NULL key after a good one: the statement fails');
record($first);
learn_owners();
# what land_order answered went with the failed statement: the node is
# checked from the landing tables (check_nodes)
$first->{node} = $owner{900001};
is( $nodes[ $owner{900001} ]->safe_psql('shop',
		q{SELECT count(*) FROM stage_landing.orders WHERE order_id = '900001'}),
	'1', 'but the row it landed before stays landed (each remote call commits by itself)');

# nor does a router ROLLBACK take a landed row back
my $rolled = { key => '900002', email => 'hal.1@example.com', amount => '2.00', valid => 1 };
($ret, $out, $err) = as_producer(q{
BEGIN;
SELECT land_order('900002', 'hal.1@example.com', '2.00');
ROLLBACK;});
is($ret, 0, 'a router transaction lands a row and rolls back');
$rolled->{node} = $out;
record($rolled);
learn_owners();
is( $nodes[ $owner{900002} ]->safe_psql('shop',
		q{SELECT count(*) FROM stage_landing.orders WHERE order_id = '900002'}),
	'1', 'the row stays landed on its node');

# ------------------------------------------------------------ sent again

# keys sent again later: 4 that are in a target (2 a node), and the keys
# whose rows were all bad (none is in a target)
my %where = map { ($_->{key} => $_->{node}) } @sent;
my (%in_target, %all_bad);
foreach my $r (@sent)
{
	$in_target{ $r->{key} } = 1 if $r->{valid};
	$all_bad{ $r->{key} } //= 1;
	$all_bad{ $r->{key} } = 0 if $r->{valid};
}
my @again;
foreach my $i (0, 1)
{
	push @again, (sort grep { $where{$_} == $i && $in_target{$_} } keys %where)[ 0 .. 1 ];
}
my @revived = sort grep { $all_bad{$_} && /^\d+$/ } keys %all_bad;
cmp_ok(scalar @revived, '>', 0, scalar(@revived) . ' numeric keys had only bad rows');
my @resend = map {
	{ key => $_, email => "ivy.$_\@example.net", amount => '7.77', valid => 1 }
} (@again, @revived);
land(@resend);

# 6. the same node as before, a duplicate there if the key was loaded
my @moved = grep { $_->{node} ne $where{ $_->{key} } } @resend;
is(scalar @moved, 0, 'every key sent again landed on the node it landed on before');
mover();
foreach my $i (0, 1)
{
	my $again = rows_hash(
		$nodes[$i], q{
	SELECT l.order_id, CASE WHEN d.landing_id IS NOT NULL THEN 'duplicate'
							WHEN t._stage_id IS NOT NULL THEN 'target' ELSE 'elsewhere' END
	  FROM stage_landing.orders l
	  LEFT JOIN stage.duplicate_log d ON d.landing_id = l._stage_id
	  LEFT JOIN public.orders t ON t._stage_id = l._stage_id
	 WHERE l.email LIKE 'ivy.%'});
	my %want = map { ($_->{key} => ($in_target{ $_->{key} } ? 'duplicate' : 'target')) }
	  grep { $where{ $_->{key} } == $i } @resend;
	is_deeply($again, \%want,
		$nodes[$i]->name . ': the keys sent again are duplicates if they were loaded, else loaded');
}
check_nodes('after sending keys again');

$_->stop for (@nodes, $router);
done_testing();
