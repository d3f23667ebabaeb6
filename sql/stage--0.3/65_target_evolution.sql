/* ------------------------------------------- the landing follows the target */

/*
 * The target's columns a landing table mirrors (as landing.c mirrors
 * them: no generated, always-identity or lineage columns), by attribute
 * number: what stage.pipeline.target_columns remembers, so that a later
 * ALTER TABLE tells a renamed column (same number, new name) from a
 * dropped and an added one.
 */
CREATE FUNCTION stage._target_columns(target regclass)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'attnum', a.attnum, 'name', a.attname,
				'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum),
			'[]'::jsonb)
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) target AND a.attnum OPERATOR(pg_catalog.>) 0
	   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
	   AND a.attidentity OPERATOR(pg_catalog.<>) 'a'
	   AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_batch', '_stage_node']::name[])
$$;

/*
 * Bring one pipeline in step with its target after an ALTER TABLE of it:
 *   a column added    the landing table gets it (text; INSERT for whoever
 *                     may land rows), a new contract version;
 *   a column renamed  the landing column, the key and the rules, masks and
 *                     transforms on it are renamed with it, a new version;
 *   a column retyped  its rules and masks are checked against the new type
 *                     (the change is refused if one no longer applies), a
 *                     new version;
 *   a column dropped  refused while the key, a rule, a mask or a transform
 *                     names it; else the landing column stays (for replay;
 *                     values producers still send there are counted as
 *                     drift by the batches), a new version.
 * Raises to refuse the ALTER TABLE; returns what changed.
 */
CREATE FUNCTION stage._follow_target(pipeline_id integer)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	was jsonb;
	now_cols jsonb;
	c record;
	changes text[] := '{}';
	v integer;
	landing_has boolean;
BEGIN
	SELECT * INTO p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _follow_target.pipeline_id FOR UPDATE;
	now_cols := stage._target_columns(p.target);
	was := COALESCE(p.target_columns, now_cols);
	IF was OPERATOR(pg_catalog.=) now_cols THEN
		RETURN changes;
	END IF;
	FOR c IN
		SELECT o.value OPERATOR(pg_catalog.->>) 'name' AS old_name,
			   n.value OPERATOR(pg_catalog.->>) 'name' AS new_name,
			   o.value OPERATOR(pg_catalog.->>) 'type' AS old_type,
			   n.value OPERATOR(pg_catalog.->>) 'type' AS new_type
		  FROM pg_catalog.jsonb_array_elements(was) o
		  FULL JOIN pg_catalog.jsonb_array_elements(now_cols) n
			ON (o.value OPERATOR(pg_catalog.->) 'attnum') OPERATOR(pg_catalog.=) (n.value OPERATOR(pg_catalog.->) 'attnum')
		 ORDER BY COALESCE((n.value OPERATOR(pg_catalog.->>) 'attnum')::integer,
						   (o.value OPERATOR(pg_catalog.->>) 'attnum')::integer)
	LOOP
		IF c.old_name IS NULL THEN
			/* added */
			IF p.format OPERATOR(pg_catalog.=) 'columns' THEN
				landing_has := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
										WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
										  AND a.attname OPERATOR(pg_catalog.=) c.new_name
										  AND NOT a.attisdropped);
				IF NOT landing_has THEN
					PERFORM stage._add_landing_column(p.landing, c.new_name);
				END IF;
			END IF;
			changes := changes OPERATOR(pg_catalog.||) pg_catalog.format('column %s added', c.new_name);
		ELSIF c.new_name IS NULL THEN
			/* dropped: refused while the contract names it */
			IF c.old_name OPERATOR(pg_catalog.=) ANY (p.key)
			   OR EXISTS (SELECT 1 FROM stage.rule r
						   WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND r.column_name OPERATOR(pg_catalog.=) c.old_name)
			   OR EXISTS (SELECT 1 FROM stage.mask m
						   WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND m.column_name OPERATOR(pg_catalog.=) c.old_name)
			   OR EXISTS (SELECT 1 FROM stage.transform t
						   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
							 AND t.column_name OPERATOR(pg_catalog.=) c.old_name) THEN
				RAISE EXCEPTION 'column "%" of % is named by the contract of pipeline "%"',
					c.old_name, p.target, p.name
					USING ERRCODE = 'dependent_objects_still_exist',
						  DETAIL = 'Its key, a rule, a mask or a transform applies to the column.',
						  HINT = 'Drop them first (stage.drop_rule, stage.drop_mask, stage.drop_transform; see stage.contract()), then the column.';
			END IF;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s dropped (its landing column stays)', c.old_name);
		ELSIF c.old_name OPERATOR(pg_catalog.<>) c.new_name THEN
			/* renamed: everything that names it follows */
			IF EXISTS (SELECT 1 FROM stage.transform t
						WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND t.column_name OPERATOR(pg_catalog.<>) c.old_name
						  AND t.args::text OPERATOR(pg_catalog.~~)
							  ('%' OPERATOR(pg_catalog.||) pg_catalog.to_jsonb(c.old_name)::text OPERATOR(pg_catalog.||) '%')) THEN
				RAISE EXCEPTION 'column "%" of % is read by a transform of pipeline "%"',
					c.old_name, p.target, p.name
					USING ERRCODE = 'dependent_objects_still_exist',
						  HINT = 'Drop or change the transform that reads it (stage.drop_transform, stage.alter_transform), then rename the column.';
			END IF;
			IF p.format OPERATOR(pg_catalog.=) 'columns'
			   AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
							WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
							  AND a.attname OPERATOR(pg_catalog.=) c.old_name AND NOT a.attisdropped)
			   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
								WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
								  AND a.attname OPERATOR(pg_catalog.=) c.new_name AND NOT a.attisdropped) THEN
				EXECUTE pg_catalog.format('ALTER TABLE %s RENAME COLUMN %I TO %I',
										  p.landing, c.old_name, c.new_name);
			END IF;
			UPDATE stage.rule r SET column_name = c.new_name
			 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND r.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.mask m SET column_name = c.new_name
			 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND m.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.transform t SET column_name = c.new_name
			 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND t.column_name OPERATOR(pg_catalog.=) c.old_name;
			UPDATE stage.pipeline x
			   SET key = pg_catalog.array_replace(x.key, c.old_name, c.new_name)
			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s renamed to %s', c.old_name, c.new_name);
		ELSIF c.old_type OPERATOR(pg_catalog.<>) c.new_type THEN
			/* retyped: its rules and masks must still apply (the validators raise) */
			PERFORM stage._validate_rule(p.target, r.column_name, r.kind, r.args, p.owner)
			   FROM stage.rule r
			  WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND r.column_name OPERATOR(pg_catalog.=) c.new_name;
			PERFORM stage._validate_mask(p.target, m.column_name, m.method, m.args, p.owner)
			   FROM stage.mask m
			  WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND m.column_name OPERATOR(pg_catalog.=) c.new_name;
			changes := changes OPERATOR(pg_catalog.||)
				pg_catalog.format('column %s retyped from %s to %s', c.new_name, c.old_type, c.new_type);
		END IF;
	END LOOP;
	UPDATE stage.pipeline x SET target_columns = now_cols, target_changed_at = pg_catalog.now()
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	IF pg_catalog.cardinality(changes) OPERATOR(pg_catalog.>) 0 THEN
		/* recorded as the caller's, the role that altered the table */
		PERFORM stage._new_version(p.pipeline_id);
	END IF;
	RETURN changes;
END
$$;

/*
 * Bring the pipelines of a target table in step with it now (the event
 * trigger below does after every ALTER TABLE); for a member of the
 * table's owner role.  Returns what changed, one line per change.
 */
CREATE FUNCTION stage.follow_target(target regclass)
RETURNS text[]
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_follow_target(target regclass)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	x record;
	changes text[] := '{}';
BEGIN
	IF target IS NULL THEN
		RAISE EXCEPTION 'target must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM stage.pipeline p WHERE p.target OPERATOR(pg_catalog.=) _do_follow_target.target) THEN
		RETURN changes;
	END IF;
	IF NOT pg_catalog.pg_has_role(stage._caller(),
			(SELECT c.relowner FROM pg_catalog.pg_class c
			  WHERE c.oid OPERATOR(pg_catalog.=) _do_follow_target.target), 'MEMBER') THEN
		RAISE EXCEPTION 'must be owner of table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'The owner of a target table (or a superuser) brings its pipelines in step with it.';
	END IF;
	FOR x IN SELECT p.pipeline_id, p.name FROM stage.pipeline p
			  WHERE p.target OPERATOR(pg_catalog.=) _do_follow_target.target
			  ORDER BY p.pipeline_id
	LOOP
		changes := changes OPERATOR(pg_catalog.||)
			(SELECT pg_catalog.array_agg(pg_catalog.format('pipeline "%s": %s', x.name, c))
			   FROM pg_catalog.unnest(stage._follow_target(x.pipeline_id)) c);
	END LOOP;
	RETURN COALESCE(changes, '{}');
END
$$;

/*
 * The event trigger: after an ALTER TABLE, the pipelines of the altered
 * table follow it (stage.follow_target, as the role that altered it), in
 * the same transaction; a change their contracts forbid is refused with
 * the ALTER TABLE.  A table that is no target costs a lookup.
 */
CREATE FUNCTION stage._on_alter_table()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	changes text[];
BEGIN
	FOR t IN SELECT DISTINCT d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d
			  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
				AND NOT d.in_extension
	LOOP
		changes := stage.follow_target(t.objid::pg_catalog.regclass);
		IF pg_catalog.cardinality(changes) OPERATOR(pg_catalog.>) 0 THEN
			RAISE NOTICE '%', pg_catalog.array_to_string(changes, '; ');
		END IF;
	END LOOP;
END
$$;
CREATE EVENT TRIGGER stage_follow_target ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION stage._on_alter_table();
