
/* ------------------------------------------------- the catalog's rows */

/* the target's columns as the landing tables mirror them now */
UPDATE stage.pipeline SET target_columns = stage._target_columns(target);

/* who did it: the caller the gate noted, not the catalog owner */
ALTER TABLE stage.contract_history ALTER COLUMN created_by SET DEFAULT stage._caller()::text;
ALTER TABLE stage.batch ALTER COLUMN run_by SET DEFAULT stage._caller()::text;

/* nobody but the catalog owner holds a privilege on the catalog, columns included */
DO $$
DECLARE
	t regclass;
	g record;
BEGIN
	FOREACH t IN ARRAY ARRAY['stage.pipeline', 'stage.rule', 'stage.mask', 'stage.contract_history',
							 'stage.batch', 'stage.batch_rule_stat', 'stage.quarantine_log',
							 'stage.duplicate_log', 'stage.secret', 'stage.token_vault']::regclass[]
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', t);
		FOR g IN SELECT DISTINCT a.attname, x.grantee
				   FROM pg_catalog.pg_attribute a,
						pg_catalog.aclexplode(a.attacl) x
				  WHERE a.attrelid OPERATOR(pg_catalog.=) t AND a.attacl IS NOT NULL
		LOOP
			IF g.grantee OPERATOR(pg_catalog.=) 0 THEN
				EXECUTE pg_catalog.format('REVOKE ALL (%I) ON %s FROM PUBLIC', g.attname, t);
			ELSE
				EXECUTE pg_catalog.format('REVOKE ALL (%I) ON %s FROM %s', g.attname, t,
										  g.grantee::regrole::text);
			END IF;
		END LOOP;
		EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
	END LOOP;
END
$$;

/*
 * Landing tables belong to the catalog owner: owners keep SELECT and
 * INSERT, producers keep what they were granted.  Triggers and rules an
 * owner added to a landing table would run for every producer: they go,
 * with a warning that names them.
 */
DO $$
DECLARE
	p record;
	t record;
	cols text;
BEGIN
	FOR p IN SELECT x.landing, x.owner, x.format FROM stage.pipeline x
			  WHERE x.landing IS NOT NULL
	LOOP
		FOR t IN SELECT tg.tgname FROM pg_catalog.pg_trigger tg
				  WHERE tg.tgrelid OPERATOR(pg_catalog.=) p.landing AND NOT tg.tgisinternal
					AND tg.tgname OPERATOR(pg_catalog.<>) ALL (ARRAY['stage_append_only', 'stage_wake'])
		LOOP
			RAISE WARNING 'dropping trigger "%" of landing table %: landing tables belong to stage', t.tgname, p.landing;
			EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, p.landing);
		END LOOP;
		FOR t IN SELECT r.rulename FROM pg_catalog.pg_rewrite r
				  WHERE r.ev_class OPERATOR(pg_catalog.=) p.landing
					AND r.rulename OPERATOR(pg_catalog.<>) '_RETURN'
		LOOP
			RAISE WARNING 'dropping rule "%" of landing table %: landing tables belong to stage', t.rulename, p.landing;
			EXECUTE pg_catalog.format('DROP RULE %I ON %s', t.rulename, p.landing);
		END LOOP;
		EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %s', p.landing,
								  (SELECT c.relowner::regrole::text FROM pg_catalog.pg_class c
									WHERE c.oid OPERATOR(pg_catalog.=) 'stage.pipeline'::regclass));
		SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
		  INTO cols
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing AND a.attnum OPERATOR(pg_catalog.>) 0
		   AND NOT a.attisdropped
		   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_txid', '_stage_received_at',
															'_stage_role']);
		/*
		 * A table-wide INSERT (0.1 let owners grant one) would let its
		 * holder set _stage_role: it becomes INSERT on the columns a
		 * producer may set.
		 */
		FOR t IN SELECT DISTINCT x.grantee FROM pg_catalog.pg_class c,
					 pg_catalog.aclexplode(c.relacl) x
				  WHERE c.oid OPERATOR(pg_catalog.=) p.landing
					AND x.privilege_type OPERATOR(pg_catalog.=) 'INSERT'
					AND x.grantee OPERATOR(pg_catalog.<>) c.relowner
		LOOP
			IF t.grantee OPERATOR(pg_catalog.=) 0 THEN
				EXECUTE pg_catalog.format('REVOKE INSERT ON %s FROM PUBLIC', p.landing);
				EXECUTE pg_catalog.format('GRANT INSERT (%s) ON %s TO PUBLIC', cols, p.landing);
			ELSE
				EXECUTE pg_catalog.format('REVOKE INSERT ON %s FROM %s', p.landing, t.grantee::regrole::text);
				EXECUTE pg_catalog.format('GRANT INSERT (%s) ON %s TO %s', cols, p.landing,
										  t.grantee::regrole::text);
			END IF;
		END LOOP;
		EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %s', p.landing, p.owner::text);
		EXECUTE pg_catalog.format('GRANT INSERT (%s) ON %s TO %s', cols, p.landing, p.owner::text);
		/*
		 * A leaner landing table, as 0.2 creates them: the received time
		 * of the statement (a stable default keeps COPY's multi-row
		 * inserts), and a BRIN index on the id instead of a btree key.
		 */
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN _stage_received_at SET DEFAULT pg_catalog.statement_timestamp()',
								  p.landing);
		FOR t IN SELECT c.conname FROM pg_catalog.pg_constraint c
				  WHERE c.conrelid OPERATOR(pg_catalog.=) p.landing AND c.contype OPERATOR(pg_catalog.=) 'p'
		LOOP
			EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', p.landing, t.conname);
		END LOOP;
		EXECUTE pg_catalog.format('CREATE INDEX ON %s USING brin (_stage_id) WITH (autosummarize = on)', p.landing);
	END LOOP;
END
$$;

/* whose text a reason's message is: server messages are withheld where masks require */
UPDATE stage.quarantine_log q
   SET reasons = (SELECT pg_catalog.jsonb_agg(
						CASE WHEN r.v OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'type'
							 THEN r.v OPERATOR(pg_catalog.||) '{"origin": "input"}'::jsonb
							 WHEN r.v OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'target'
								  OR (r.v OPERATOR(pg_catalog.->>) 'message') OPERATOR(pg_catalog.~~) 'expression failed:%'
							 THEN r.v OPERATOR(pg_catalog.||) '{"origin": "server"}'::jsonb
							 ELSE r.v END ORDER BY r.n)
					FROM pg_catalog.jsonb_array_elements(q.reasons) WITH ORDINALITY AS r(v, n))
 WHERE pg_catalog.jsonb_typeof(q.reasons) OPERATOR(pg_catalog.=) 'array'
   AND pg_catalog.jsonb_array_length(q.reasons) OPERATOR(pg_catalog.>) 0;
