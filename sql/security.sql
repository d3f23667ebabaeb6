--
-- security: stage never resolves a name through the caller's search_path
-- (an unprivileged role's look-alike functions and operators in public are
-- never called, even with public first in the path), and only a pipeline's
-- owner may change or run it, or read its rows.
--
-- Roles: evil, sec_owner, sec_other.  Other objects are prefixed sec_.  The
-- file drops what it creates.
--
\set SHOW_CONTEXT never

-- leftovers of an interrupted earlier run (roles outlive the database)
SET client_min_messages = warning;
DROP ROLE IF EXISTS evil;
DROP ROLE IF EXISTS sec_owner;
DROP ROLE IF EXISTS sec_other;
RESET client_min_messages;

----------------------------------------------------------------------------
-- 1. Shadow objects
----------------------------------------------------------------------------
-- An unprivileged role that may create objects in public, and a log every
-- shadow writes to when it is called.
CREATE ROLE evil NOLOGIN;
GRANT CREATE ON SCHEMA public TO evil;
CREATE TABLE public.evil_log (what text);
GRANT INSERT ON public.evil_log TO PUBLIC;

SET ROLE evil;
CREATE FUNCTION public.shadow_hit(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.evil_log VALUES (what);
	RAISE NOTICE 'shadow called: %', what;
END
$$;
-- functions named like ones stage's SQL uses, with the same or a closer
-- signature
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('unnest(anyarray)'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('unnest(text[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('unnest(bigint[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.pg_visible_in_snapshot(xid8, pg_snapshot) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_visible_in_snapshot'); RETURN pg_catalog.pg_visible_in_snapshot($1, $2); END $$;
CREATE FUNCTION public.pg_current_snapshot() RETURNS pg_snapshot LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_current_snapshot'); RETURN pg_catalog.pg_current_snapshot(); END $$;
CREATE FUNCTION public.pg_current_xact_id() RETURNS xid8 LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_current_xact_id'); RETURN pg_catalog.pg_current_xact_id(); END $$;
CREATE FUNCTION public.pg_snapshot_xmax(pg_snapshot) RETURNS xid8 LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_snapshot_xmax'); RETURN pg_catalog.pg_snapshot_xmax($1); END $$;
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('lower'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION public.format(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('format(text)'); RETURN pg_catalog.format($1); END $$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('format(text,text)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('current_setting'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION public.pg_has_role(name, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_has_role(name,text)'); RETURN true; END $$;
CREATE FUNCTION public.pg_has_role(oid, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_has_role(oid,text)'); RETURN true; END $$;
CREATE FUNCTION public.pg_has_role(regrole, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('pg_has_role(regrole,text)'); RETURN true; END $$;
-- operators: = and <> on text, = on integer and bigint, > and < on xid8,
-- || on text, ->> on jsonb
CREATE FUNCTION public.evil_texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('=(text,text)'); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE FUNCTION public.evil_textne(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('<>(text,text)'); RETURN pg_catalog.textne($1, $2); END $$;
CREATE FUNCTION public.evil_int4eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('=(integer,integer)'); RETURN pg_catalog.int4eq($1, $2); END $$;
CREATE FUNCTION public.evil_int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('=(bigint,bigint)'); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE FUNCTION public.evil_xid8gt(xid8, xid8) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('>(xid8,xid8)'); RETURN pg_catalog.xid8gt($1, $2); END $$;
CREATE FUNCTION public.evil_xid8lt(xid8, xid8) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('<(xid8,xid8)'); RETURN pg_catalog.xid8lt($1, $2); END $$;
CREATE FUNCTION public.evil_textcat(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('||(text,text)'); RETURN pg_catalog.textcat($1, $2); END $$;
CREATE FUNCTION public.evil_jsonb_get_text(jsonb, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.shadow_hit('->>(jsonb,text)'); RETURN pg_catalog.jsonb_object_field_text($1, $2); END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_texteq);
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_textne);
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.evil_int4eq);
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_int8eq);
CREATE OPERATOR public.> (LEFTARG = xid8, RIGHTARG = xid8, FUNCTION = public.evil_xid8gt);
CREATE OPERATOR public.< (LEFTARG = xid8, RIGHTARG = xid8, FUNCTION = public.evil_xid8lt);
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_textcat);
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.evil_jsonb_get_text);
RESET ROLE;

-- The target is created before the search_path turns hostile (its CHECK
-- is the test's own SQL, not stage's).
CREATE TABLE public.sec_orders (
	id		integer PRIMARY KEY,
	qty		integer CHECK (qty > 0),
	currency text,
	email	text,
	note	text,
	_stage_id bigint,
	_stage_batch bigint
);

CREATE TABLE public.sec_currencies (code text PRIMARY KEY);
INSERT INTO public.sec_currencies VALUES ('USD'), ('EUR'), ('JPY');

-- The hostile order: public before pg_catalog.  From here on the test's
-- own queries name pg_catalog's operators explicitly.
SET search_path = public, pg_catalog;

-- the trap is armed: unqualified SQL of the caller does reach the shadows
-- (this transaction is rolled back, so the log stays empty)
BEGIN;
SELECT lower('ARMED') AS armed, 'a' = 'a' AS eq;
ROLLBACK;

-- as superuser: define a pipeline, its rules and masks
SELECT stage.create_secret('sec_test', '\x000102030405060708090a0b0c0d0e0f'::bytea);
SELECT stage.create_pipeline('sec_orders', 'public.sec_orders', key => '{id}',
							 on_duplicate => 'quarantine');
SELECT stage.add_rule('sec_orders', 'qty', 'range', '{"min": 1, "max": 100}');
SELECT stage.add_rule('sec_orders', 'currency', 'enum', '{"values": ["USD", "EUR"]}');
SELECT stage.add_rule('sec_orders', 'email', 'regex', '{"pattern": "@", "flags": "i"}');
SELECT stage.add_rule('sec_orders', 'id', 'not_null');
-- the rule kinds that run SQL of their own: a set-wise lookup, and an
-- expression whose unqualified names must resolve in pg_catalog only
SELECT stage.add_rule('sec_orders', 'currency', 'reference',
					  '{"table": "public.sec_currencies", "column": "code"}');
SELECT stage.add_rule('sec_orders', 'qty', 'expression',
					  '{"sql": "qty <> 13 AND lower(currency) <> ''gbp'' AND format(''%s'', qty) <> ''99''"}',
					  rule_name => 'qty_expr');
SELECT stage.add_rule('sec_orders', 'note', 'regex', '{"pattern": "^ok$"}',
					  severity => 'warn', rule_name => 'note_ok');
SELECT stage.add_mask('sec_orders', 'email', 'hash', '{"secret": "sec_test"}');
SELECT stage.add_mask('sec_orders', 'note', 'partial', '{"keep_start": 1}');
SELECT stage.drop_rule('sec_orders', 'note_ok');
SELECT stage.pause('sec_orders');
SELECT stage.resume('sec_orders');

-- producers land rows
INSERT INTO stage_landing.sec_orders (_stage_source, id, qty, currency, email, note) VALUES
	('sec_feed', '1', '5', 'USD', 'a@x.org', 'ok'),
	('sec_feed', '2', '0', 'USD', 'b@x.org', 'ok'),			-- range
	('sec_feed', '3', '5', 'JPY', 'no-at', 'ok'),			-- enum, regex
	('sec_feed', '1', '6', 'EUR', 'c@x.org', 'ok'),			-- duplicate key
	('sec_feed', 'x', '5', 'EUR', 'd@x.org', 'ok'),			-- type
	('sec_feed', '6', '7', 'EUR', 'e@x.org', 'fine'),
	('sec_feed', '7', '13', 'EUR', 'f@x.org', 'ok'),			-- expression
	('sec_feed', '8', '8', 'CHF', 'g@x.org', 'ok');			-- enum, reference

-- run batches: run_batch in chunks, then run_all
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.run_batch('sec_orders', 4);
SELECT stage.run_all();
SELECT rows_in, status FROM stage.run_batch('sec_orders');

-- and read everything back through the API and the views
SELECT id, qty, currency, email OPERATOR(pg_catalog.=) stage.hmac('a@x.org', 'sec_test') AS email_hashed,
	   note, _stage_id
  FROM public.sec_orders ORDER BY id;
SELECT pipeline, format, key, on_duplicate, enabled, contract_version, rules, masks
  FROM stage.pipelines WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders';
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, status
  FROM stage.batches WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders' ORDER BY batch_id;
SELECT landing_id, rule_name, kind, column_name
  FROM stage.quarantine WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders' ORDER BY landing_id;
SELECT rule_name, kind, failures
  FROM stage.dlq_summary WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders' ORDER BY rule_name, kind;
SELECT rule_name, checked, failed
  FROM stage.rule_stats WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders'
 ORDER BY batch_id, rule_name;
SELECT rows_in, rows_clean FROM stage.lineage
 WHERE pipeline OPERATOR(pg_catalog.=) 'sec_orders' ORDER BY batch_id;
SELECT outcome, source, contract_version FROM stage.trace('sec_orders', 4);
SELECT jsonb_array_length(stage.contract('sec_orders')->'rules') AS rules,
	   stage.contract('sec_orders')->'masks' AS masks;
SELECT stage.mask_email('a@x.org'), stage.mask_partial('secret'), stage.mask_card('4111 1111'),
	   stage.luhn_valid('4111 1111 1111 1111'), stage.regex_match('abc', '^A', 'i');
SELECT stage.drop_pipeline('sec_orders', force => true);
RESET search_path;

-- no shadow was ever called
SELECT count(*) AS shadow_calls FROM public.evil_log;
SELECT * FROM public.evil_log;

----------------------------------------------------------------------------
-- 2. Only the owner changes, runs and reads a pipeline
----------------------------------------------------------------------------
CREATE ROLE sec_owner NOLOGIN;
CREATE ROLE sec_other NOLOGIN;
CREATE TABLE sec_owned (id integer PRIMARY KEY, v text);
ALTER TABLE sec_owned OWNER TO sec_owner;
CREATE TABLE sec_others_table (id integer);

-- the owner of the target creates and runs the pipeline, no superuser needed
SET ROLE sec_owner;
SELECT stage.create_pipeline('sec_owned', 'sec_owned', key => '{id}');
SELECT stage.add_rule('sec_owned', 'v', 'not_null');
INSERT INTO stage_landing.sec_owned (id, v) VALUES ('1', 'a'), ('2', NULL);
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('sec_owned');
SELECT owner FROM stage.pipelines WHERE pipeline = 'sec_owned';
-- the owner reads the quarantine and its summary (the views run with the
-- caller's rights; row-level security shows the owner its own rows)
SELECT count(*) AS my_quarantined_rows FROM stage.quarantine WHERE pipeline = 'sec_owned';
SELECT rule_name, failures FROM stage.dlq_summary WHERE pipeline = 'sec_owned';
RESET ROLE;

-- any other role may neither read the contract nor change or run it
SET ROLE sec_other;
SELECT stage.contract('sec_owned')->'version' AS version;
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_rule('sec_owned', 'v', 'regex', '{"pattern": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.run_batch('sec_owned');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.drop_rule('sec_owned', 'v_not_null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.add_mask('sec_owned', 'v', 'null');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.pause('sec_owned');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.drop_pipeline('sec_owned', force => true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stage.trace('sec_owned', 1);
\echo :LAST_ERROR_SQLSTATE
-- run_all runs only the caller's own pipelines
SELECT stage.run_all();
-- nor create a pipeline for a table it does not own
SELECT stage.create_pipeline('sec_theirs', 'sec_others_table');
\echo :LAST_ERROR_SQLSTATE
-- row values stay with the owner: quarantine and landing are not readable,
-- landing is not writable without a grant
SELECT count(*) AS visible_quarantined_rows FROM stage.quarantine_log;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM stage_landing.sec_owned;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO stage_landing.sec_owned (id, v) VALUES ('3', 'c');
\echo :LAST_ERROR_SQLSTATE
-- writing the catalog directly does not get around the owner check:
-- nobody but the catalog owner holds any privilege on it
UPDATE stage.pipeline SET enabled = false WHERE name = 'sec_owned';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM stage.rule;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, position)
SELECT pipeline_id, 'sneaky', 'v', 'not_null', 99 FROM stage.pipeline WHERE name = 'sec_owned';
\echo :LAST_ERROR_SQLSTATE
-- secrets and keyed hashes are not for everyone
SELECT * FROM stage.secret;
\echo :LAST_ERROR_SQLSTATE
SELECT stage.hmac('123-45-6789');
\echo :LAST_ERROR_SQLSTATE
SELECT stage.create_secret('sec_mine');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a producer: may insert into the landing table once granted, and nothing else
GRANT INSERT ON stage_landing.sec_owned TO sec_other;
SET ROLE sec_other;
INSERT INTO stage_landing.sec_owned (id, v) VALUES ('3', 'c');
SELECT count(*) FROM stage_landing.sec_owned;
\echo :LAST_ERROR_SQLSTATE
UPDATE stage_landing.sec_owned SET v = 'z';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- nothing of the above changed the pipeline; the producer's row moves when
-- the owner runs it
SELECT enabled, contract_version, rules FROM stage.pipelines WHERE pipeline = 'sec_owned';
SET ROLE sec_owner;
SELECT rows_in, rows_clean FROM stage.run_batch('sec_owned');
SELECT id, v FROM sec_owned ORDER BY id;
RESET ROLE;

SELECT stage.drop_pipeline('sec_owned', force => true);
DROP TABLE sec_owned, sec_others_table, public.sec_orders, public.sec_currencies, public.evil_log;
DELETE FROM stage.secret WHERE name = 'sec_test';
DROP OWNED BY evil;
DROP ROLE evil;
DROP ROLE sec_owner;
DROP ROLE sec_other;
