
# Copyright (c) the stage authors
#
# 022_prometheus.pl: the scrape path of contrib/ end to end.  A cluster with
# stage, the "orders" pipeline of StageTest (rules, an e-mail mask, a key)
# with a transform, rows from two sources with bad ones of every kind, a
# few batches, a replay and a dismissed item, and a second pipeline whose
# batch is held; a login role in stage_analyst.  Debian's
# prometheus-postgres-exporter reads the metrics as that role with
# contrib/prometheus/queries.yaml, and Debian's prometheus scrapes it every
# second with contrib/prometheus/stage-alerts.yml loaded, both on loopback.
# Through Prometheus's HTTP API:
#   - every series of every family exists with the value the database
#     holds (stage.metric_counters and stage.metric_gauges() as the
#     analyst; and from the batches, rule statistics, quarantine and
#     landing tables themselves);
#   - counters never go backwards, after another batch and after
#     stage.purge() (values compared, and resets() over the whole run);
#   - every expression of every panel of contrib/grafana/stage.json
#     evaluates (dashboard variables substituted), and so does every rule
#     of the alert file, whose rules Prometheus evaluates without error; the
#     held pipeline's alert is pending;
#   - promtool check rules and promtool test rules pass.
# The exporter and Prometheus are stopped at the end, also on failure.
#
# Run by scripts/test.sh (suite tap).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use StageTest;
use IPC::Run;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(usleep time);

my $t_start = time;
my $root = $ENV{TESTDIR} || '.';
my $contrib = "$root/contrib";
my $tmp = PostgreSQL::Test::Utils::tempdir;

for my $tool ('prometheus', 'promtool', 'prometheus-postgres-exporter')
{
	plan skip_all => "$tool is not installed (scripts/deps.sh installs it)"
	  unless grep { -x "$_/$tool" } split /:/, "$ENV{PATH}:/usr/bin:/usr/sbin";
}

# --------------------------------------------------------- the database

my $node = PostgreSQL::Test::Cluster->new('prom');
$node->init;
$node->append_conf('postgresql.conf', "log_min_messages = warning\n");
$node->start;
$node->safe_psql('postgres', StageTest::shop_sql() . q{
CREATE ROLE watcher LOGIN;
});
$node->safe_psql('shop', 'CREATE EXTENSION stage; ' . StageTest::orders_sql() . q{
SELECT count(*) FROM stage.create_roles();
GRANT stage_analyst TO watcher;
CREATE TABLE public.refunds (refund_id integer PRIMARY KEY, amount numeric(10,2));
ALTER TABLE public.refunds OWNER TO shop_owner;
SET ROLE shop_owner;
SELECT stage.add_transform('orders', 'currency', 'upper');
SELECT stage.create_pipeline('refunds', 'public.refunds', key => '{refund_id}');
SELECT stage.set_contract('refunds', '{"key": ["refund_id"], "max_reject_ratio": 0.1,
  "rules": [{"column": "amount", "kind": "range", "args": {"min": 0}}]}');
SELECT stage.grant_producer('refunds', 'producer');
RESET ROLE;
});

# 150 rows from two sources: amounts out of range, currencies the enum
# refuses once upper-cased, codes off the pattern, a qty that is no integer,
# qty 13 (the target's CHECK), keys landed twice (duplicates)
sub land_orders
{
	my ($from, $to) = @_;
	$node->safe_psql(
		'shop', qq{
SET ROLE producer;
INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code, _stage_source)
SELECT CASE WHEN g % 29 = 0 THEN (g - 1)::text ELSE g::text END,
	   'user' || g || '\@example.com',
	   CASE WHEN g % 10 = 0 THEN '-5' ELSE (g % 90 + 1)::text || '.50' END,
	   CASE WHEN g % 15 = 0 THEN 'xyz' WHEN g % 2 = 0 THEN 'eur' ELSE 'usd' END,
	   CASE WHEN g % 17 = 0 THEN 'x' WHEN g % 19 = 0 THEN '13' ELSE (g % 9 + 1)::text END,
	   CASE WHEN g % 23 = 0 THEN 'bad' ELSE 'AB-' || lpad(g::text, 4, '0') END,
	   CASE WHEN g % 3 = 0 THEN 'csv' ELSE 'web' END
  FROM generate_series($from, $to) g;
});
	return;
}
land_orders(1, 150);
my $sql_as_owner = sub { "SET ROLE shop_owner; $_[0]; RESET ROLE;" };
$node->safe_psql('shop', $sql_as_owner->(q{
SELECT count(*) FROM (SELECT * FROM stage.run_batch('orders', 60)
	UNION ALL SELECT * FROM stage.run_batch('orders', 60)
	UNION ALL SELECT * FROM stage.run_batch('orders', 60)) b}));
is( $node->safe_psql('shop', q{SELECT count(*) || ' ' || sum(rows_in) FROM stage.batches WHERE pipeline = 'orders'}),
	'3 150', 'three batches took the 150 rows of orders');
$node->safe_psql('shop', $sql_as_owner->(q{
SELECT count(*) FROM stage.replay('orders', rule_name => 'qty_type');
SELECT stage.dismiss('orders', ARRAY[(SELECT min(landing_id) FROM stage.quarantine
										WHERE pipeline = 'orders' AND status = 'open' AND rule_name = 'amount_range')],
					 'test data, never to load')}));
$node->safe_psql('shop', q{
SET ROLE producer;
INSERT INTO stage_landing.refunds (refund_id, amount) VALUES ('1', '5'), ('2', '-5');
});
$node->safe_psql('shop', $sql_as_owner->(q{SELECT count(*) FROM stage.run_batch('refunds')}));
is( $node->safe_psql('shop', q{SELECT status FROM stage.batches WHERE pipeline = 'refunds'}),
	'held', 'the batch of refunds is held (half its rows break max_reject_ratio)');
# rows that wait: the backlog of orders
land_orders(151, 157);
my ($q_open, $q_closed) = split /\|/, $node->safe_psql('shop', q{
SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status <> 'open')
  FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'orders'});
cmp_ok($q_open, '>', 10, "orders has open quarantine items ($q_open) and closed ones ($q_closed)");

# what the analyst reads: the exporter connects as this role
my $watcher = sub {
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('shop', $sql, stdout => \$out, stderr => \$err, extra_params => [ '-U', 'watcher' ]);
	return ($out, $err);
};
my ($hist, $hist_err) = $watcher->('SELECT * FROM stage.metric_histograms');
is($hist_err, '', 'a member of stage_analyst may read stage.metric_histograms');
my ($mtext, $merr) = $watcher->('SELECT stage.metrics()');
is($merr, '', 'and call stage.metrics()');
like($mtext, qr/stage_dlq_items\{pipeline="orders",status="open"\} \d+/, 'which has the quarantine\'s items by status');

# ------------------------------------------------- exporter, Prometheus

my @running;
END
{
	for my $h (@running)
	{
		eval { $h->kill_kill(grace => 3); };
	}
}

my $exporter_port = PostgreSQL::Test::Cluster::get_free_port();
my $prom_port = PostgreSQL::Test::Cluster::get_free_port();
my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->allow_nonref;

{
	local $ENV{DATA_SOURCE_NAME} =
	  'host=' . $node->host . ' port=' . $node->port . ' user=watcher dbname=shop sslmode=disable';
	push @running,
	  IPC::Run::start(
		[
			'prometheus-postgres-exporter', "--extend.query-path=$contrib/prometheus/queries.yaml",
			'--disable-default-metrics', '--disable-settings-metrics',
			'--no-collector.database', '--no-collector.bgwriter',
			"--web.listen-address=127.0.0.1:$exporter_port", '--log.level=warn'
		],
		'<', \undef, '>', "$tmp/exporter.log", '2>', "$tmp/exporter.err");
}

my $prom_yml = "$tmp/prometheus.yml";
open my $fh, '>', $prom_yml or die "could not write $prom_yml: $!";
print $fh <<"EOF";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $contrib/prometheus/stage-alerts.yml
scrape_configs:
  - job_name: stage
    static_configs:
      - targets: ['127.0.0.1:$exporter_port']
EOF
close $fh;
push @running,
  IPC::Run::start(
	[
		'prometheus', "--config.file=$prom_yml", "--storage.tsdb.path=$tmp/tsdb",
		"--web.listen-address=127.0.0.1:$prom_port", '--log.level=warn'
	],
	'<', \undef, '>', "$tmp/prometheus.log", '2>', "$tmp/prometheus.err");

my $prom = "http://127.0.0.1:$prom_port";

# an instant query: (status, result or error)
sub query
{
	my ($q) = @_;
	my $r = $http->get("$prom/api/v1/query?" . $http->www_form_urlencode({ query => $q }));
	my $body = eval { decode_json($r->{content}) };
	return ('http ' . $r->{status} . ': ' . $r->{content}, undef) unless $body;
	return ($body->{status}, $body->{status} eq 'success' ? $body->{data}{result} : $body->{error});
}

# one value of a query that must give one sample (undef if none)
sub value_of
{
	my ($q) = @_;
	my ($st, $res) = query($q);
	return undef unless $st eq 'success' && ref $res eq 'ARRAY' && @$res == 1;
	return $res->[0]{value}[1];
}

# every stage series now: "name{label=value,...}" (without job, instance
# and server) => value
sub snapshot
{
	my ($st, $res) = query('{__name__=~"stage_.+"}');
	die "query failed: $res" unless $st eq 'success';
	my %s;
	for my $r (@$res)
	{
		my %m = %{ $r->{metric} };
		my $name = delete $m{__name__};
		delete @m{qw(job instance server)};
		$s{ $name . '{' . join(',', map { "$_=$m{$_}" } sort keys %m) . '}' } = $r->{value}[1];
	}
	return \%s;
}

sub wait_for
{
	my ($what, $limit, $cond) = @_;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		my $ok = eval { $cond->() };
		return 1 if $ok;
		usleep(200_000);
	}
	diag("waited $limit s for $what");
	return 0;
}

my $taken = $node->safe_psql('shop',
	q{SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'orders' AND kind = 'batch' AND status = 'done'});
ok( wait_for(
		'the first scrape', 30,
		sub { (value_of('stage_rows_total{pipeline="orders",outcome="taken"}') // -1) == $taken }),
	'Prometheus scraped the exporter: stage_rows_total{pipeline="orders",outcome="taken"} = ' . $taken)
  or BAIL_OUT('no scrape; exporter: ' . slurp_file("$tmp/exporter.err") . ' prometheus: '
	  . slurp_file("$tmp/prometheus.err"));
usleep(1_200_000);    # a second scrape, for rates

is(value_of('up{job="stage"}'), '1', 'the exporter is up');
is(value_of('pg_up{job="stage"}'), '1', 'and connected to the database as the analyst');
is(value_of('pg_exporter_user_queries_load_error{job="stage"}'), '0', 'queries.yaml loaded');
is(value_of('max_over_time(pg_exporter_last_scrape_error{job="stage"}[1m])'),
	'0', 'every query of queries.yaml ran without error')
  or diag(slurp_file("$tmp/exporter.err"));

# ------------------------------------------- every series, as the database

# the volume gauges change at the hour: compare them away from it
my $into_hour = time % 3600;
usleep(1_000_000 * (3606 - $into_hour)) if $into_hour > 3597;
usleep(1_000_000 * (6 - $into_hour)) if $into_hour < 6;
my $snap = snapshot();
note('the exporter\'s last scrape took ' . value_of('pg_exporter_last_scrape_duration_seconds{job="stage"}') . ' s');

# the counters: every row of stage.metric_counters is a series with its
# value; the series it lacks are the zeros the exporter adds
my ($counters) = $watcher->(q{SELECT metric, pipeline, labels, value FROM stage.metric_counters ORDER BY 1, 2, 3});
my %want;
for my $line (split /\n/, $counters)
{
	my ($metric, $pipeline, $labels, $value) = split /\|/, $line;
	my %l = (%{ decode_json($labels) }, pipeline => $pipeline);
	$want{$metric}{ $metric . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}' } = $value;
}
my @families = qw(stage_rows_total stage_replayed_rows_total stage_batches_total stage_rule_failures_total
  stage_quarantined_total stage_transform_applied_total stage_transform_changed_total
  stage_transform_nulled_total stage_transform_failed_total stage_dlq_closed_total stage_source_rows_total);
for my $family (@families)
{
	my @bad;
	my $n = 0;
	for my $k (sort keys %{ $want{$family} || {} })
	{
		$n++;
		push @bad, "$k: db $want{$family}{$k}, prometheus " . ($snap->{$k} // 'none')
		  unless defined $snap->{$k} && $snap->{$k} == $want{$family}{$k};
	}
	for my $k (grep { /^\Q$family\E\{/ } sort keys %$snap)
	{
		push @bad, "$k: $snap->{$k} in prometheus, not in the database"
		  unless exists $want{$family}{$k} || $snap->{$k} == 0;
	}
	my @series = grep { /^\Q$family\E\{/ } keys %$snap;
	my $zeros = grep { $snap->{$_} == 0 } @series;
	ok(@series && !@bad,
		"$family: the database's $n counters, in " . scalar(@series) . " series ($zeros of them 0)")
	  or diag(join("\n", @bad) || 'no series');
}

# and from the tables themselves
sub db { return $node->safe_psql('shop', $_[0]); }
for my $o (qw(taken clean quarantined duplicate))
{
	my $col = $o eq 'taken' ? 'rows_in' : "rows_$o";
	my $n = db(qq{SELECT sum($col) FROM stage.batches WHERE pipeline = 'orders' AND kind = 'batch' AND status = 'done'});
	is($snap->{"stage_rows_total{outcome=$o,pipeline=orders}"}, $n, "stage_rows_total{outcome=\"$o\"} = $n, the batches' sum");
}
cmp_ok($snap->{'stage_rows_total{outcome=duplicate,pipeline=orders}'}, '>', 0, 'some rows were duplicates');
for my $b (split /\n/, db(q{SELECT pipeline || ' ' || kind || ' ' || status || ' ' || count(*) FROM stage.batches GROUP BY pipeline, kind, status ORDER BY 1}))
{
	my ($p, $kind, $status, $n) = split / /, $b;
	is($snap->{"stage_batches_total{kind=$kind,pipeline=$p,status=$status}"}, $n, "stage_batches_total $p $kind $status = $n");
}
is($snap->{'stage_replayed_rows_total{outcome=taken,pipeline=orders}'},
	db(q{SELECT sum(rows_in) FROM stage.batches WHERE pipeline = 'orders' AND kind = 'replay'}),
	'stage_replayed_rows_total{outcome="taken"} = the replay\'s rows');
for my $r (split /\n/, db(q{
SELECT s.rule_name || ' ' || s.severity || ' ' || sum(s.failed)
  FROM stage.batch_rule_stat s JOIN stage.batches b USING (batch_id)
 WHERE b.pipeline = 'orders' AND b.status = 'done' GROUP BY s.rule_name, s.severity HAVING sum(s.failed) > 0 ORDER BY 1}))
{
	my ($rule, $sev, $n) = split / /, $r;
	is($snap->{"stage_rule_failures_total{pipeline=orders,rule=$rule,severity=$sev}"}, $n,
		"stage_rule_failures_total{rule=\"$rule\"} = $n, from the rule statistics");
}
is($snap->{'stage_transform_applied_total{pipeline=orders,transform=currency_upper}'},
	db(q{SELECT sum(t.applied) FROM stage.batch_transform_stat t JOIN stage.batches b USING (batch_id)
		  WHERE b.pipeline = 'orders' AND b.status = 'done'}),
	'stage_transform_applied_total = the transform statistics\' sum');
is($snap->{'stage_dlq_closed_total{how=dismissed,pipeline=orders}'}, '1', 'one item dismissed');
for my $src ('csv', 'web')
{
	is($snap->{"stage_source_rows_total{outcome=taken,pipeline=orders,source=$src}"},
		db(qq{SELECT count(*) FROM stage_landing.orders WHERE _stage_source = '$src' AND _stage_id <= 150}),
		"stage_source_rows_total{source=\"$src\",outcome=\"taken\"} = its landed rows");
}

# the histograms
my $count = $snap->{'stage_handoff_latency_seconds_count{pipeline=orders}'};
is($count, $taken, "stage_handoff_latency_seconds_count = the rows taken ($taken)");
is($snap->{'stage_handoff_latency_seconds_bucket{le=+Inf,pipeline=orders}'}, $taken, 'and its +Inf bucket');
for my $h ('stage_handoff_latency_seconds', 'stage_batch_duration_seconds')
{
	my @b = map { [ /le=([^,}]+)/, $snap->{$_} ] } grep { /^${h}_bucket\{.*pipeline=orders\}/ } keys %$snap;
	@b = sort { ($a->[0] eq '+Inf' ? 1e99 : $a->[0]) <=> ($b->[0] eq '+Inf' ? 1e99 : $b->[0]) } @b;
	my @down = grep { $b[$_][1] < $b[ $_ - 1 ][1] } 1 .. $#b;
	is(scalar(@b) . ' ' . scalar(@down), '20 0', "$h: 20 buckets (1 ms .. 1 h, +Inf), cumulative");
}
is($snap->{'stage_batch_duration_seconds_count{pipeline=orders}'},
	db(q{SELECT count(*) FROM stage.batches WHERE pipeline = 'orders'}),
	'stage_batch_duration_seconds_count = the finished batches of orders');
my $dur = db(q{SELECT sum(extract(epoch FROM finished_at - started_at)) FROM stage.batches WHERE pipeline = 'orders'});
cmp_ok(abs($snap->{'stage_batch_duration_seconds_sum{pipeline=orders}'} - $dur), '<', 1e-3,
	"stage_batch_duration_seconds_sum = their durations ($dur s)");
my ($hist_row) = $watcher->(q{SELECT handoff_latency_seconds_sum FROM stage.metric_histograms WHERE pipeline = 'orders'});
cmp_ok(abs($snap->{'stage_handoff_latency_seconds_sum{pipeline=orders}'} - $hist_row), '<', 1e-6,
	"stage_handoff_latency_seconds_sum = stage.metric_histograms' ($hist_row s)");
my $p95 = value_of('histogram_quantile(0.95, sum by (le) (stage_handoff_latency_seconds_bucket{pipeline="orders"}))');
ok(defined $p95 && $p95 > 0 && $p95 <= 60, "the p95 handoff latency computes from the buckets ($p95 s)");

# the gauges, as stage.metric_gauges() gives them to the analyst
my ($gauges) = $watcher->(q{
SELECT pipeline, paused, held, backlog_rows, last_arrival_timestamp_seconds, last_batch_timestamp_seconds,
	   dlq_open, rows_last_hour, coalesce(rows_baseline_hour::text, 'NaN'), coalesce(volume_anomaly_score::text, 'NaN'),
	   oldest_pending_age_seconds, dlq_oldest_open_age_seconds
  FROM stage.metric_gauges() ORDER BY 1});
my @gauge_names = qw(paused held backlog_rows last_arrival_timestamp_seconds last_batch_timestamp_seconds
  dlq_open rows_last_hour rows_baseline_hour volume_anomaly_score);
for my $line (split /\n/, $gauges)
{
	my ($p, @v) = split /\|/, $line;
	my @bad;
	for my $i (0 .. $#gauge_names)
	{
		my $got = $snap->{"stage_$gauge_names[$i]\{pipeline=$p\}"};
		my $same = defined $got
		  && ($v[$i] eq 'NaN' ? $got eq 'NaN' : $got ne 'NaN' && abs($got - $v[$i]) <= 1e-6 * abs($v[$i]));
		push @bad, "stage_$gauge_names[$i]: db $v[$i], prometheus " . ($got // 'none') unless $same;
	}
	# ages grow between the scrape and now
	for my $g (['oldest_pending_age_seconds', $v[9]], ['dlq_oldest_open_age_seconds', $v[10]])
	{
		my $got = $snap->{"stage_$g->[0]\{pipeline=$p\}"};
		push @bad, "stage_$g->[0]: db $g->[1], prometheus " . ($got // 'none')
		  unless defined $got && $got <= $g->[1] && $got >= $g->[1] - 30;
	}
	ok(!@bad, "pipeline $p: the 11 gauges are stage.metric_gauges()'s") or diag(join("\n", @bad));
}
is( join(' ', map { $snap->{"stage_$_\{pipeline=refunds\}"} } qw(paused held backlog_rows)),
	'1 1 2', 'refunds: paused, held, its 2 rows wait');
is( join(' ', map { $snap->{"stage_$_\{pipeline=orders\}"} } qw(paused held backlog_rows dlq_open)),
	"0 0 7 $q_open", "orders: running, 7 rows wait, $q_open open quarantine items");
is($snap->{'stage_workers_running{}'}, '0', 'stage_workers_running: no worker in this cluster');

# --------------------------------------- counters never go backwards

sub not_below
{
	my ($before, $after, $what) = @_;
	my @back = map { "$_: $before->{$_} -> " . ($after->{$_} // 'gone') }
	  grep { /_total\{|_bucket\{|_count\{|_sum\{/ && !(defined $after->{$_} && $after->{$_} >= $before->{$_}) }
	  sort keys %$before;
	my $n = grep { /_total\{|_bucket\{|_count\{|_sum\{/ } keys %$before;
	ok(!@back, "no counter series went backwards or away $what ($n series)") or diag(join("\n", @back));
	return;
}

my $before = snapshot();
$node->safe_psql('shop', $sql_as_owner->(q{SELECT count(*) FROM stage.run_batch('orders')}));
my $taken2 = $taken + 7;
ok( wait_for(
		'the batch in Prometheus', 15,
		sub { (value_of('stage_rows_total{pipeline="orders",outcome="taken"}') // -1) == $taken2 }),
	"after another batch, stage_rows_total{outcome=\"taken\"} = $taken2");
my $after_batch = snapshot();
not_below($before, $after_batch, 'after a batch');
is( $after_batch->{'stage_handoff_latency_seconds_count{pipeline=orders}'}
	  - $before->{'stage_handoff_latency_seconds_count{pipeline=orders}'},
	7, 'the handoff histogram counted the batch\'s 7 rows');

my ($counters_before_purge) = $watcher->(q{SELECT * FROM stage.metric_counters WHERE metric LIKE '%\_total' AND metric NOT LIKE '%\_purged\_%' ORDER BY 1, 2, 3});
# landing partitions go whole, once the cluster's transactions are past them
# (partitions of a second of transactions: the ranges ahead stay short)
$node->safe_psql('shop', q{SELECT stage.set_retention('orders', partition_interval => '1 second')});
$node->safe_psql('shop', q{
	DO $$
	DECLARE
		t xid8 := (SELECT min(lp.hi) FROM stage.landing_partition lp JOIN stage.pipeline p USING (pipeline_id)
					WHERE p.name = 'orders' AND lp.hi > pg_current_xact_id());
	BEGIN
		WHILE pg_current_xact_id() < t LOOP COMMIT; END LOOP;
	END $$});
my $purged = db($sql_as_owner->(q{SELECT stage.set_retention('orders', '0'); SELECT stage.purge('orders')}));
$purged =~ s/.*\n//s;
cmp_ok($purged, '>=', 157, "stage.purge deleted the landing rows of orders ($purged)");
my $t_purge = time;
my ($counters_after_purge) = $watcher->(q{SELECT * FROM stage.metric_counters WHERE metric LIKE '%\_total' AND metric NOT LIKE '%\_purged\_%' ORDER BY 1, 2, 3});
is($counters_after_purge, $counters_before_purge, 'stage.metric_counters is the same after the purge (but for the purge\'s own)');
is(db(q{SELECT value FROM stage.metric_counters WHERE pipeline = 'orders' AND metric = 'stage_landing_purged_rows_total'}),
	$purged, 'stage_landing_purged_rows_total counts the rows the purge dropped');
# the counters live in a table: a restart leaves them as they are
$node->restart;
my ($counters_after_restart) = $watcher->(q{SELECT * FROM stage.metric_counters WHERE metric LIKE '%\_total' AND metric NOT LIKE '%\_purged\_%' ORDER BY 1, 2, 3});
is($counters_after_restart, $counters_before_purge, 'and after a restart of the server');
ok( wait_for(
		'a scrape after the purge', 15,
		sub { (value_of('timestamp(stage_rows_total{pipeline="orders",outcome="taken"})') // 0) > $t_purge + 1.1 }),
	'Prometheus scraped after the purge');
my $after_purge = snapshot();
not_below($after_batch, $after_purge, 'after stage.purge');
note('stage_last_arrival_timestamp_seconds of orders after the purge: '
	  . ($after_purge->{'stage_last_arrival_timestamp_seconds{pipeline=orders}'} // 'none'));
my $range = int(time - $t_start) + 5;
my %counter_names = map { /^([^{]+)\{/ ? ($1 => 1) : () } grep { /_total\{|_bucket\{|_count\{|_sum\{/ } keys %$after_purge;
my @resets;
for my $name (sort keys %counter_names)
{
	my ($st, $res) = query("resets(${name}[${range}s]) > 0");
	push @resets, $st eq 'success' ? map { "$name " . $json->canonical->encode($_->{metric}) } @$res : "$name: $res";
}
is(join("\n", @resets), '',
	'Prometheus saw no reset of the ' . scalar(keys %counter_names) . " counter metrics in the whole run (${range}s)");

# ------------------------------------------------- the dashboard's panels

my $dash = decode_json(slurp_file("$contrib/grafana/stage.json"));
is($dash->{schemaVersion}, 38, 'the dashboard has schemaVersion 38');
my %vars = map { $_->{name} => $_ } @{ $dash->{templating}{list} };
is( join(' ', map { "$_:$vars{$_}{type}" } sort keys %vars),
	'datasource:datasource pipeline:query', 'variables: the Prometheus data source and the pipeline');
is($vars{pipeline}{definition}, 'label_values(stage_rows_total, pipeline)', 'pipelines from stage_rows_total');
my @panels;
my $walk;
$walk = sub { for my $p (@_) { push @panels, $p; $walk->(@{ $p->{panels} || [] }); } };
$walk->(@{ $dash->{panels} });
my @rows = map { $_->{title} } grep { $_->{type} eq 'row' } @panels;
is(scalar(@rows), 3, 'three rows: ' . join('; ', @rows));
my ($targets, $with_data) = (0, 0);
for my $p (grep { $_->{type} ne 'row' } @panels)
{
	my @bad;
	for my $t (@{ $p->{targets} || [] })
	{
		$targets++;
		my $e = $t->{expr} // '';
		push @bad, "target $t->{refId}: no PromQL expression" if $e eq '';
		$e =~ s/\$\{pipeline(?::\w+)?\}|\$pipeline/orders/g;
		$e =~ s/\$__rate_interval/1m/g;
		$e =~ s/\$__interval/15s/g;
		$e =~ s/\$__range/1h/g;
		push @bad, "target $t->{refId}: an unknown variable in $e" if $e =~ /\$/;
		my ($st, $res) = query($e);
		push @bad, "target $t->{refId}: $st: " . ($res // '') . " in $e" unless $st eq 'success';
		$with_data++ if $st eq 'success' && ref $res eq 'ARRAY' && @$res;
	}
	ok(@{ $p->{targets} || [] } && !@bad, "panel \"$p->{title}\": every expression evaluates")
	  or diag(join("\n", @bad));
}
cmp_ok($with_data, '>=', $targets * 0.75, "$with_data of the $targets panel expressions return series");
my ($dlq_panel) = grep { $_->{title} eq 'Open quarantine items' } @panels;
is( value_of($dlq_panel->{targets}[0]{expr} =~ s/\$pipeline/orders/gr),
	db(q{SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
		  WHERE p.name = 'orders' AND q.status = 'open'}),
	'the panel "Open quarantine items" shows the open items of orders');

# --------------------------------------------------------- the alert rules

my @rules;
ok( wait_for(
		'every rule evaluated', 15,
		sub {
			my $r = decode_json($http->get("$prom/api/v1/rules")->{content});
			@rules = map { @{ $_->{rules} } } @{ $r->{data}{groups} };
			return @rules && !grep { $_->{health} eq 'unknown' } @rules;
		}),
	'Prometheus loaded and evaluated the ' . scalar(@rules) . ' rules of stage-alerts.yml');
my %seen;
for my $rule (@rules)
{
	my $name = $rule->{type} eq 'alerting' ? $rule->{name} . ' ' . ($rule->{labels}{long_window} // '') : $rule->{name};
	$name =~ s/ $//;
	next if $seen{$name}++;
	my ($st, $res) = query($rule->{query});
	ok($rule->{health} eq 'ok' && $st eq 'success', "rule $name: evaluated by Prometheus and evaluates here")
	  or diag("health $rule->{health}: " . ($rule->{lastError} // '') . "; query: $st " . ($res // ''));
}
ok( wait_for(
		'the held alert', 10,
		sub { value_of('count(ALERTS{alertname="StagePipelineHeld",pipeline="refunds",severity="page"})') }),
	'StagePipelineHeld is pending (or firing) for refunds');
is(value_of('count(ALERTS{alertname=~"StagePipeline.*",pipeline="orders"}) or vector(0)'),
	'0', 'and nothing about the running orders');
is(value_of('count(ALERTS{alertname="StagePipelinePaused",pipeline="refunds"}) or vector(0)'),
	'0', 'StagePipelinePaused leaves the held pipeline to StagePipelineHeld');

# ------------------------------------------------------------- promtool

for my $cmd (
	[ 'promtool', 'check', 'rules', "$contrib/prometheus/stage-alerts.yml" ],
	[ 'promtool', 'test', 'rules', "$contrib/prometheus/stage-alerts.test.yml" ],
	[ 'promtool', 'check', 'config', $prom_yml ])
{
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run($cmd, '<', \undef, '>', \$out, '2>', \$err);
	ok($ok && "$out$err" =~ /SUCCESS/, join(' ', @$cmd[ 0 .. 2 ]) . ' passes') or diag("$out$err");
}

note(sprintf('022_prometheus ran in %.1f s', time - $t_start));
$_->kill_kill(grace => 3) for @running;
@running = ();
$node->stop;
done_testing();
