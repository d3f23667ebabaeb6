
# Copyright (c) the stage authors
#
# 021_documented.pl: every user-visible object is documented.  The
# functions (those whose names do not start with an underscore) and views
# of schema stage, those of the warehouse extension stage_warehouse, and the
# GUCs stage.*, as an installation has them, must each be named in
# README.md or docs/*.md (as stage.<name>, in backquotes or a heading).  A
# new function, view or setting without its documentation fails here.
#
# Run by scripts/test.sh (suite tap).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('documented');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION stage');
$node->safe_psql('postgres', 'CREATE DATABASE wh');
$node->safe_psql('wh', 'CREATE EXTENSION stage_warehouse');

# the pages, read once
my $root = $ENV{TESTDIR} // '.';
my $docs = '';
for my $f ("$root/README.md", glob("$root/docs/*.md"))
{
	$docs .= slurp_file($f);
}
cmp_ok(length($docs), '>', 100_000, 'the documentation is read (' . length($docs) . ' characters)');

my $objects = q{
	SELECT DISTINCT 'function', p.proname FROM pg_proc p
	 WHERE p.pronamespace = 'stage'::regnamespace AND p.proname !~ '^_'
	UNION
	SELECT DISTINCT 'view', c.relname FROM pg_class c
	 WHERE c.relnamespace = 'stage'::regnamespace AND c.relkind = 'v'
	ORDER BY 1, 2};
my %seen;
for my $db ('postgres', 'wh')
{
	for my $line (split /\n/, $node->safe_psql($db, $objects))
	{
		my ($kind, $name) = split /\|/, $line;
		$seen{"$kind stage.$name"} = 1;
	}
}
for my $name (split /\n/, $node->safe_psql('postgres',
	q{SELECT name FROM pg_settings WHERE name LIKE 'stage.%' ORDER BY 1}))
{
	$seen{"setting $name"} = 1;
}
cmp_ok(scalar(keys %seen), '>', 80, 'functions, views and settings are listed (' . scalar(keys %seen) . ')');
ok($seen{'view stage.cluster_health'}, 'the warehouse\'s views among them');
ok($seen{'setting stage.node_name'}, 'and the settings');

my @missing;
for my $what (sort keys %seen)
{
	my (undef, $name) = split / /, $what;
	push @missing, $what unless $docs =~ /\Q$name\E\b/;
}
is(join(', ', @missing), '', 'every function, view and setting is named in the documentation');

$node->stop;
done_testing();
