# StageTest: what the crash and worker TAP tests share (test/t/0*.pl).
#
#   orders_sql()            the "orders" target, pipeline and contract used
#                           under load: a CHECK, NOT NULL, a key with
#                           on_duplicate 'skip', range/enum/regex rules, an
#                           email mask, granted to the role "producer";
#                           run in the test database as a superuser, with
#                           the roles shop_owner and producer existing
#   write_producer($dir, $rows)
#                           a pgbench script landing $rows rows a transaction
#                           into stage_landing.orders, about 5% of them bad
#                           in every way the contract and the target catch,
#                           3% of the keys from a small range (duplicates);
#                           returns the script's path
#   check_accounting($node, $db, $pipeline, $target)
#                           the promise, as tests: every landing row of the
#                           pipeline is in exactly one of target,
#                           quarantine_log and duplicate_log (on_duplicate
#                           skip or quarantine), nothing placed comes from
#                           elsewhere, and the committed batches together
#                           took every landing row once; returns the counts
#                           (landing, target, quarantined, duplicate)
package StageTest;

use strict;
use warnings;
use Test::More;

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

sub check_accounting
{
	my ($node, $db, $pipeline, $target) = @_;
	my $placed = qq{
	WITH p AS (SELECT pipeline_id FROM stage.pipeline WHERE name = '$pipeline'),
	placed AS (
		SELECT t._stage_id AS landing_id FROM $target t
		UNION ALL
		SELECT q.landing_id FROM stage.quarantine_log q, p WHERE q.pipeline_id = p.pipeline_id
		UNION ALL
		SELECT d.landing_id FROM stage.duplicate_log d, p WHERE d.pipeline_id = p.pipeline_id)
};
	my ($landing, $clean, $quarantined, $duplicate) = split /\|/,
	  $node->safe_psql(
		$db, qq{
		SELECT (SELECT count(*) FROM stage_landing.$pipeline),
			   (SELECT count(*) FROM $target),
			   (SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
				 WHERE p.name = '$pipeline'),
			   (SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
				 WHERE p.name = '$pipeline')});
	note "$pipeline: landing $landing = target $clean + quarantine $quarantined + duplicate $duplicate";
	is($clean + $quarantined + $duplicate, $landing,
		"$pipeline: count(landing) = count(target) + count(quarantine) + count(duplicate)");
	is( $node->safe_psql(
			$db, $placed . q{
		SELECT count(*) FROM (SELECT landing_id FROM placed GROUP BY landing_id
							  HAVING count(*) > 1) twice}),
		'0',
		"$pipeline: no landing id is in two places, or twice in one");
	is( $node->safe_psql(
			$db, $placed . qq{
		SELECT count(*) FROM stage_landing.$pipeline l
		 WHERE NOT EXISTS (SELECT 1 FROM placed WHERE placed.landing_id = l._stage_id)}),
		'0',
		"$pipeline: every landing id is in one of them (nothing lost)");
	is( $node->safe_psql(
			$db, $placed . qq{
		SELECT count(*) FROM placed
		 WHERE landing_id IS NULL
			OR NOT EXISTS (SELECT 1 FROM stage_landing.$pipeline l WHERE l._stage_id = placed.landing_id)}),
		'0',
		"$pipeline: every placed row comes from a landing row (nothing invented)");
	is( $node->safe_psql(
			$db, qq{
		SELECT (SELECT COALESCE(sum(b.rows_in), 0) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
				 WHERE p.name = '$pipeline' AND b.status = 'done' AND b.kind = 'batch')
			   = (SELECT count(*) FROM stage_landing.$pipeline)}),
		't',
		"$pipeline: the committed batches together took every landing row once");
	return ($landing, $clean, $quarantined, $duplicate);
}

1;

