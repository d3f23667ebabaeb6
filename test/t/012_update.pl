# The updates 0.1 -> 0.2 -> 0.3 (ALTER EXTENSION stage UPDATE): an updated
# installation has the same objects and privileges as a fresh one, from 0.1
# (both steps) and from 0.2, and a pipeline made under 0.1 goes on working
# under 0.2's rules and then 0.3's.
#
# Compared: pg_dump --schema-only --binary-upgrade of the databases.  In
# binary-upgrade mode pg_dump lists every member of the extension (functions,
# tables, views, triggers, privileges, initial privileges) instead of one
# CREATE EXTENSION line; object ids, relfrozenxid values and the id list of
# the extension's configuration tables differ between any two databases and
# are taken out before comparing.  So is the stored missing value of the
# node columns 0.3 adds: the update gives rows already there the node's
# name without rewriting the tables (a fresh table has no rows to give it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('update');
$node->init;
$node->start;

sub version_of
{
	my ($db) = @_;
	return $node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'stage'});
}

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE updated');
$node->safe_psql('postgres', 'CREATE DATABASE updated2');
$node->safe_psql('fresh', 'CREATE EXTENSION stage');
is(version_of('fresh'), '0.3', 'a fresh install is 0.3');
$node->safe_psql('updated', q{CREATE EXTENSION stage VERSION '0.1'});
is(version_of('updated'), '0.1', 'version 0.1 installs');
$node->safe_psql('updated', q{ALTER EXTENSION stage UPDATE TO '0.2'});
is(version_of('updated'), '0.2', 'and updates to 0.2');
$node->safe_psql('updated', q{ALTER EXTENSION stage UPDATE});
is(version_of('updated'), '0.3', 'and then to 0.3');
$node->safe_psql('updated2', q{CREATE EXTENSION stage VERSION '0.2'});
$node->safe_psql('updated2', q{ALTER EXTENSION stage UPDATE});
is(version_of('updated2'), '0.3', 'version 0.2 updates to 0.3');

# the schema of a database as pg_dump --binary-upgrade shows it, without
# what differs between any two databases
sub schema_of
{
	my ($db) = @_;
	my ($out, $err);
	my $ok = IPC::Run::run(
		[ 'pg_dump', '--schema-only', '--binary-upgrade', '-d', $node->connstr($db) ],
		'>', \$out, '2>', \$err);
	die "pg_dump $db failed: $err" unless $ok;
	my @lines;
	for my $l (split /\n/, $out)
	{
		next if $l =~ /^\\(un)?restrict /;
		next if $l =~ /binary_upgrade_set_next_/;
		next if $l =~ /binary_upgrade_set_missing_value\('stage\.[a-z_]+'::pg_catalog\.regclass, *'node', */;
		next if $l =~ /^-- / || $l eq '';
		$l =~ s/relfrozenxid = '\d+'/relfrozenxid = 'X'/;
		$l =~ s/WHERE oid = '\d+'/WHERE oid = 'X'/;
		$l =~ s/(binary_upgrade_create_empty_extension\('stage', 'pg_catalog', false, '0\.3', )'\{[\d,]*\}'/$1'{X}'/;
		push @lines, $l;
	}
	return join("\n", @lines);
}

# the first line at which two schemas differ, or ''
sub first_difference
{
	my ($x, $y) = @_;
	my @fl = split /\n/, $x;
	my @ul = split /\n/, $y;
	for my $i (0 .. ($#fl > $#ul ? $#fl : $#ul))
	{
		my ($a, $b) = ($fl[$i] // '<none>', $ul[$i] // '<none>');
		return "first difference at line $i:\n  fresh:   $a\n  updated: $b\n" if $a ne $b;
	}
	return '';
}

my $fresh = schema_of('fresh');
# the comparison must see the extension's members, not one CREATE EXTENSION
like($fresh, qr/CREATE FUNCTION stage\._do_add_rule\(/, 'the dump lists the extension\'s functions');
like($fresh, qr/CREATE TABLE stage\.quarantine_log/, 'and its tables');
like($fresh, qr/binary_upgrade_set_record_init_privs/, 'and their initial privileges');
like($fresh, qr/CREATE FUNCTION stage\._do_publish\(/, 'and 0.3\'s new ones');
my @fl = split /\n/, $fresh;
cmp_ok(scalar(@fl), '>', 1000, 'the schema is compared in full (' . scalar(@fl) . ' lines)');
is(first_difference($fresh, schema_of('updated')), '',
	'a 0.1 updated twice and a fresh 0.3 have the same objects and privileges');
is(first_difference($fresh, schema_of('updated2')), '',
	'an updated 0.2 and a fresh 0.3 have the same objects and privileges');

# ----------------------------------------- a pipeline made under 0.1
# The 0.2 library refuses to run 0.1's SQL (it asks for the update), so the
# state 0.1 left is written as 0.1 wrote it: catalog rows, a landing table
# of the owner's with a trigger of its own, owner privileges by row-level
# security, a quarantined row whose message quotes a value.
$node->safe_psql('postgres', 'CREATE DATABASE data');
$node->safe_psql('data', q{
	CREATE ROLE up_owner;
	CREATE ROLE up_analyst;
	CREATE EXTENSION stage VERSION '0.1';
	-- 0.1's own triggers on its catalog need 0.1's library: not fired here
	SET session_replication_role = replica;
	CREATE TABLE public.t (id int PRIMARY KEY, email text, note text CHECK (note <> 'bad'),
						   _stage_id bigint);
	ALTER TABLE public.t OWNER TO up_owner;
	INSERT INTO stage.pipeline (name, target, format, key, owner)
	VALUES ('p', 'public.t', 'columns', '{id}', 'up_owner');
	CREATE TABLE stage_landing.p (
		_stage_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		_stage_txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
		_stage_source text,
		_stage_received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
		id text, email text, note text);
	CREATE INDEX ON stage_landing.p (_stage_txid, _stage_id);
	CREATE TRIGGER stage_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON stage_landing.p
		FOR EACH STATEMENT EXECUTE FUNCTION stage._landing_guard();
	ALTER TABLE stage_landing.p OWNER TO up_owner;
	UPDATE stage.pipeline SET landing = 'stage_landing.p';
	INSERT INTO stage.contract_history (pipeline_id, version, contract, created_by)
	SELECT pipeline_id, 1, '{}', 'up_owner' FROM stage.pipeline;
	-- a trigger the owner hung on its landing table (0.1 let it)
	CREATE FUNCTION public.owner_hook() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
	CREATE TRIGGER owner_hook AFTER INSERT ON stage_landing.p
		FOR EACH STATEMENT EXECUTE FUNCTION public.owner_hook();
	-- the landing row quarantined below, and a producer the owner granted
	-- the whole table (0.1 let it)
	INSERT INTO stage_landing.p (id, email, note) VALUES ('1', 'zq@old.example', 'bad');
	CREATE ROLE up_producer;
	GRANT INSERT ON stage_landing.p TO up_producer;
	INSERT INTO stage.batch (pipeline_id, contract_version, status, started_at)
	SELECT pipeline_id, 1, 'done', now() FROM stage.pipeline;
	INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id, contract_version,
									  row_data, raw_data, reasons)
	SELECT pipeline_id, 1, 1, 1, '{"id": "1", "email": "zq@old.example", "note": "bad"}',
		   '{"id": "1", "email": "zq@old.example", "note": "bad"}',
		   '[{"rule": "t_note_check", "kind": "target", "column": null, "value": null,
			  "sqlstate": "23514", "severity": "reject", "contract_version": 1,
			  "message": "new row for relation \"t\" violates check constraint \"t_note_check\": Failing row contains (1, zq@old.example, bad, 1)."}]'
	  FROM stage.pipeline;
});
# that row was taken by the batch above: the window starts after it
$node->safe_psql('data', q{
	SET session_replication_role = replica;
	UPDATE stage.pipeline SET win_lo = pg_current_snapshot();
});
my ($ret, $stdout, $stderr) = $node->psql('data', q{ALTER EXTENSION stage UPDATE TO '0.2'});
is($ret, 0, 'the update of a database with a pipeline succeeds');
like($stderr, qr/dropping trigger "owner_hook" of landing table stage_landing\.p/,
	'the owner\'s own trigger on the landing table goes, with a warning');
is($node->safe_psql('data', q{
	SELECT (SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid::regclass::text)
			  FROM pg_index WHERE indrelid = 'stage_landing.p'::regclass)
		   || ' | ' || pg_get_expr(d.adbin, d.adrelid)
	  FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
	 WHERE d.adrelid = 'stage_landing.p'::regclass AND a.attname = '_stage_received_at'}),
	'CREATE INDEX p__stage_id_idx ON stage_landing.p USING brin (_stage_id) WITH (autosummarize=\'on\'); '
	. 'CREATE INDEX p__stage_txid__stage_id_idx ON stage_landing.p USING btree (_stage_txid, _stage_id)'
	. ' | statement_timestamp()',
	'the landing table is made as lean as 0.2 creates them: BRIN on the id, no btree key, a stable received time');
is($node->safe_psql('data', q{
	SELECT c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'stage.pipeline'::regclass)
	  FROM pg_class c WHERE c.oid = 'stage_landing.p'::regclass}),
	't', 'the landing table belongs to the catalog owner');
is($node->safe_psql('data', q{
	SELECT has_table_privilege('up_owner', 'stage_landing.p', 'SELECT')
		   AND has_column_privilege('up_owner', 'stage_landing.p', 'email', 'INSERT')
		   AND NOT has_table_privilege('up_owner', 'stage_landing.p', 'DELETE')}),
	't', 'the owner keeps SELECT and INSERT on it, nothing more');
is($node->safe_psql('data', q{SELECT count(*) FROM pg_policies WHERE schemaname = 'stage'}),
	'0', 'no row-level security policy is left');
is($node->safe_psql('data', q{
	SELECT has_table_privilege('up_owner', 'stage.mask', 'INSERT')
		OR has_table_privilege('up_owner', 'stage.quarantine_log', 'SELECT')
		OR has_column_privilege('up_owner', 'stage.quarantine_log', 'raw_data', 'SELECT')}),
	'f', 'the owner holds no privilege on the catalog');

# every landing row records the role that landed it; rows landed under 0.1
# carry a placeholder, and nobody may set the column
is($node->safe_psql('data', q{
	SELECT format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || pg_get_expr(d.adbin, d.adrelid)
	  FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE a.attrelid = 'stage_landing.p'::regclass AND a.attname = '_stage_role'}),
	'text true CURRENT_USER', 'the landing table gains _stage_role as 0.2 creates it');
is($node->safe_psql('data', q{SELECT _stage_role FROM stage_landing.p WHERE _stage_id = 1}),
	'unknown (landed before 0.2)', 'a row landed under 0.1 names no role');
is($node->safe_psql('data', q{
	SELECT count(*) FROM pg_attribute a
	 WHERE a.attrelid = 'stage_landing.p'::regclass AND a.attname = '_stage_role'
	   AND a.atthasmissing}),
	'0', 'no stored missing value (the rows were rewritten)');
is($node->safe_psql('data', q{
	SELECT has_column_privilege('up_owner', 'stage_landing.p', '_stage_role', 'INSERT')
		   || ' ' || has_column_privilege('up_producer', 'stage_landing.p', '_stage_role', 'INSERT')
		   || ' ' || has_column_privilege('up_producer', 'stage_landing.p', 'email', 'INSERT')
		   || ' ' || has_table_privilege('up_producer', 'stage_landing.p', 'INSERT')}),
	'false false true false',
	'neither the owner nor a producer granted the whole table under 0.1 may set it');
is($node->safe_psql('data', q{
	SET ROLE up_producer;
	INSERT INTO stage_landing.p (id, email, note) VALUES ('2', 'ok@new.example', 'fine');
	RESET ROLE;
	SELECT _stage_role FROM stage_landing.p WHERE _stage_id = 2}),
	'up_producer', 'a row landed under 0.2 names its role');

# the library is 0.3's: it refuses to run 0.2's SQL, and asks for the update
my ($r2, $o2, $e2) = $node->psql('data', q{SET ROLE up_owner; SELECT stage.add_mask('p', 'email', 'email')});
like($e2, qr/the SQL objects of extension "stage" are older than its library.*\n.*HINT:  Run ALTER EXTENSION stage UPDATE/,
	'0.3\'s library refuses to run 0.2\'s SQL, and says what to do');
$node->safe_psql('data', q{ALTER DATABASE data SET stage.node_name = 'edge-1'});
$node->safe_psql('data', q{ALTER EXTENSION stage UPDATE});
is(version_of('data'), '0.3', 'the database with the pipeline updates on to 0.3');
# the landing table becomes partitioned: the old table, with every row, is
# its first range; the new one has the old one's columns, privileges and
# triggers, and its ids go on from the old ones
is($node->safe_psql('data', q{
	SELECT c.relkind::text || ' ' || (SELECT count(*) FROM stage_landing.p)
		   || ' ' || (SELECT string_agg(COALESCE(lo::text, 'MIN') || '-' || COALESCE(hi::text, 'MAX')
										|| '/' || (SELECT count(*) FROM pg_inherits i WHERE i.inhrelid = lp.partition),
										',' ORDER BY lo NULLS FIRST) ~ '^MIN-\d+/1,\d+-MAX/1$'
		   FROM stage.landing_partition lp)
		   || ' ' || (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
					   WHERE tgrelid = 'stage_landing.p'::regclass)
		   || ' ' || (SELECT count(*) FROM pg_depend d
					   WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
						 AND d.objid IN (SELECT oid FROM pg_class WHERE relnamespace = 'stage_landing'::regnamespace))
	  FROM pg_class c WHERE c.oid = 'stage_landing.p'::regclass}),
	'p 2 true stage_append_only,stage_wake 0',
	'the landing table is partitioned, its rows in the first range, its triggers on the new table');
is($node->safe_psql('data', q{
	SELECT (SELECT count(*) FROM stage.landing_partition lp
			  JOIN pg_class c ON c.oid = lp.partition
			 WHERE NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner)
			   AND NOT EXISTS (SELECT 1 FROM pg_attribute a, aclexplode(a.attacl) x
								WHERE a.attrelid = c.oid AND x.grantee <> c.relowner)
			   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
			   AND c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'stage.pipeline'::regclass))
		   || ' ' || has_table_privilege('up_owner', 'stage_landing.p', 'SELECT')
		   || ' ' || has_column_privilege('up_producer', 'stage_landing.p', 'email', 'INSERT')
		   || ' ' || has_column_privilege('up_producer', 'stage_landing.p', '_stage_role', 'INSERT')
		   || ' ' || has_table_privilege('up_owner', 'stage_landing.p', 'DELETE')}),
	'2 true true false false',
	'its privileges moved to the new table; the partitions belong to the catalog owner and grant nothing');
is($node->safe_psql('data', q{
	BEGIN;
	SET LOCAL ROLE up_producer;
	INSERT INTO stage_landing.p (id, email, note) VALUES ('9', 'z9@new.example', 'fine');
	RESET ROLE;
	SELECT string_agg(_stage_id::text, ',' ORDER BY _stage_id) FROM stage_landing.p;
	ROLLBACK}),
	'1,2,3', 'a producer lands on, and ids go on from the old table\'s');
is($node->safe_psql('data', q{
	SELECT (SELECT string_agg(labels->>'status' || ':' || value, ',' ORDER BY labels->>'status')
			  FROM stage.metric_counters WHERE metric = 'stage_dlq_items')
		   || ' ' || (SELECT string_agg(status || ':' || n, ',' ORDER BY status)
						FROM (SELECT status, count(*) AS n FROM stage.quarantine_log GROUP BY status) q)
		   || ' ' || (SELECT value FROM stage.metric_counters
					   WHERE metric = 'stage_batches_total' AND labels->>'status' = 'done')}),
	'open:1 open:1 1', 'the counters start from the history the update found (items by status, batches)');

# at work on the old pipeline: a mask, rows, a batch
$node->safe_psql('data', q{
	SET ROLE up_owner;
	SELECT stage.add_mask('p', 'email', 'email');
	INSERT INTO stage_landing.p (id, email, note) VALUES ('2', 'ok@new.example', 'fine'),
		('3', 'zq3@new.example', 'bad');
	RESET ROLE;
	SELECT stage.create_roles();
	GRANT stage_analyst TO up_analyst;
});
is($node->safe_psql('data', q{SET ROLE up_owner; SELECT rows_clean || ' ' || rows_quarantined FROM stage.run_batch('p')}),
	'1 1', 'a batch of the old pipeline runs under 0.3');
is($node->safe_psql('data', q{SELECT email FROM public.t}), 'o***@new.example',
	'its clean row is masked');
is($node->safe_psql('data', q{
	SELECT string_agg(COALESCE(role, '-'), ',' ORDER BY landing_id) FROM stage.quarantine_log}),
	'-,up_owner', 'quarantine records who landed a row; items quarantined under 0.1 do not know');
my $seen = $node->safe_psql('data',
	q{SET ROLE up_analyst; SELECT string_agg(q::text, ' ') FROM stage.quarantine q});
unlike($seen, qr/zq\@old|zq3\@new/, 'an analyst sees neither the old nor the new raw address');
like($seen, qr/the server's message is withheld/,
	'the message quarantined under 0.1 is withheld now that the column is masked');
is($node->safe_psql('data', q{
	SET ROLE up_owner;
	SELECT count(*) FROM stage.quarantine_raw('p') WHERE raw_data->>'email' LIKE 'zq%'}),
	'2', 'the owner still reads both raw rows');

# ------------------------------------------------ the node's name
# the rows written before the update name the node (its name as the update
# found it), new ones too, and the updated pipeline is published like a
# fresh one
is($node->safe_psql('data', q{
	SELECT string_agg(DISTINCT node, ',') FROM (
		SELECT node FROM stage.pipeline UNION ALL SELECT node FROM stage.batch
		UNION ALL SELECT node FROM stage.quarantine_log) x}),
	'edge-1', 'the pipeline, its batches and its quarantine items name the node');
$node->safe_psql('data', q{
	SET ROLE up_owner;
	INSERT INTO stage_landing.p (id, email, note) VALUES ('4', 'z4@new.example', 'bad');
	RESET ROLE;
	SELECT stage.run_batch('p')});
is($node->safe_psql('data', q{
	SELECT node FROM stage.batch ORDER BY batch_id DESC LIMIT 1}),
	'edge-1', 'a batch run after the update names it too');
my ($ret3, $out3, $err3) = $node->psql('data', q{SELECT stage.publish_history()});
like($err3, qr/quarantine items of pipeline "p" were stored before its present masks\n.*DETAIL:  Their stored rows \(1\) show column email/,
	'the history is not published while an item stored before the email mask exists');
$node->safe_psql('data', q{
	SELECT stage.dismiss('p', ARRAY[1]::bigint[], 'stored unmasked');
	SELECT stage.set_retention('p', '0', '0');
	SELECT stage.purge();
});
is($node->safe_psql('data', q{SELECT stage.publish_history()}), 'stage_history',
	'then it is');
is($node->safe_psql('data', q{
	SELECT (SELECT string_agg(tablename || '/' || array_length(attnames, 1), ',' ORDER BY tablename)
						FROM pg_publication_tables WHERE pubname = 'stage_history')}),
	'batch/30,batch_rule_stat/8,batch_transform_stat/9,duplicate_log/4,pipeline/13,quarantine_log/17',
	'the updated node publishes its history, without the raw columns');

$node->stop;
done_testing();
