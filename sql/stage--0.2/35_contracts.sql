/* ---------------------------------------------------------- contracts */

/* validate one rule against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_rule(p stage.pipeline, column_name text, kind text,
								   args jsonb, severity text, rule_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rname text := COALESCE(rule_name, column_name OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) kind);
BEGIN
	IF severity IS NULL OR severity OPERATOR(pg_catalog.<>) ALL (ARRAY['reject', 'warn']) THEN
		RAISE EXCEPTION 'invalid severity "%"', severity
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''reject'' (quarantine the row) or ''warn'' (count it, let the row pass).';
	END IF;
	PERFORM stage._validate_rule(p.target, column_name, kind, COALESCE(args, '{}'), p.owner);
	IF rname OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]{1,63}$' THEN
		RAISE EXCEPTION 'invalid rule name "%"', pg_catalog.left(rname, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A rule name is 1 to 63 characters, without control characters.';
	END IF;
	IF kind OPERATOR(pg_catalog.=) 'unique' AND NOT (column_name OPERATOR(pg_catalog.=) ANY (COALESCE(p.key, '{}'))) THEN
		RAISE EXCEPTION 'rule unique applies to the key of the pipeline, and "%" is not in it', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Declare the key with create_pipeline(key => ...) or set_contract(); duplicates are resolved by on_duplicate.';
	END IF;
	IF EXISTS (SELECT 1 FROM stage.rule r
				WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				  AND r.rule_name OPERATOR(pg_catalog.=) rname) THEN
		RAISE EXCEPTION 'rule "%" already exists in pipeline "%"', rname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another rule_name, or drop the rule first with stage.drop_rule().';
	END IF;
	INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, args, severity, position)
	VALUES (p.pipeline_id, rname, column_name, kind, COALESCE(args, '{}'), severity,
			(SELECT COALESCE(pg_catalog.max(r.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.rule r WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

/* validate one mask against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_mask(p stage.pipeline, column_name text, method text, args jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF column_name OPERATOR(pg_catalog.=) ANY (p.key) THEN
		RAISE EXCEPTION 'column "%" is part of the key of pipeline "%" and cannot be masked', column_name, p.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Key values must reach the target unchanged to detect duplicates; mask another column or change the key.';
	END IF;
	PERFORM stage._validate_mask(p.target, column_name, method, COALESCE(args, '{}'), p.owner);
	/* one mask per column: a new mask replaces the old one */
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _insert_mask.column_name;
	INSERT INTO stage.mask (pipeline_id, column_name, method, args)
	VALUES (p.pipeline_id, column_name, method, COALESCE(args, '{}'));
END
$$;

/* validate one transform against a pipeline's target and landing, and store it */
CREATE FUNCTION stage._insert_transform(p stage.pipeline, column_name text, method text,
										args jsonb, transform_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tname text := COALESCE(transform_name, column_name OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) method);
BEGIN
	PERFORM stage._validate_transform(p.pipeline_id, column_name, method, COALESCE(args, '{}'), p.owner);
	IF tname OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]{1,63}$' THEN
		RAISE EXCEPTION 'invalid transform name "%"', pg_catalog.left(tname, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A transform name is 1 to 63 characters, without control characters.';
	END IF;
	IF EXISTS (SELECT 1 FROM stage.transform t
				WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				  AND t.transform_name OPERATOR(pg_catalog.=) tname) THEN
		RAISE EXCEPTION 'transform "%" already exists in pipeline "%"', tname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another transform_name, or drop the transform first with stage.drop_transform().';
	END IF;
	INSERT INTO stage.transform (pipeline_id, transform_name, column_name, method, args, position)
	VALUES (p.pipeline_id, tname, column_name, method, COALESCE(args, '{}'),
			(SELECT COALESCE(pg_catalog.max(t.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.transform t WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

CREATE FUNCTION stage.add_transform(pipeline text, column_name text, method text,
									args jsonb DEFAULT '{}', transform_name text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_transform(pipeline text, column_name text, method text,
										args jsonb, transform_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_transform(p, column_name, method, args, transform_name);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_transform(pipeline text, transform_name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_transform(pipeline text, transform_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) _do_drop_transform.transform_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'transform "%" does not exist in pipeline "%"', transform_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its transforms.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a transform's args in place: same name, column, method and
 * position, checked exactly as add_transform checks it, in one new
 * contract version (none when the args are the ones it has).
 */
CREATE FUNCTION stage.alter_transform(pipeline text, transform_name text, args jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_transform(pipeline text, transform_name text, args jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.transform;
BEGIN
	SELECT * INTO old FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) _do_alter_transform.transform_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'transform "%" does not exist in pipeline "%"', transform_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its transforms.';
	END IF;
	IF args IS NULL THEN
		RAISE EXCEPTION 'nothing to change in transform "%"', transform_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the new args; to change the method, drop the transform and add another.';
	END IF;
	DELETE FROM stage.transform t
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) old.transform_name;
	PERFORM stage._insert_transform(p, old.column_name, old.method, args, old.transform_name);
	UPDATE stage.transform t SET position = old.position
	 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND t.transform_name OPERATOR(pg_catalog.=) old.transform_name;
	IF COALESCE(args, '{}') OPERATOR(pg_catalog.=) old.args THEN
		RETURN p.contract_version;
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * A landing column that is no target column: a source for the transforms
 * from, concat and coalesce (a partner's "email_address" for the target's
 * "email").  Text, like every landing column; whoever may insert into the
 * landing table (its owner, its producers) may fill it.
 */
CREATE FUNCTION stage.add_landing_column(pipeline text, column_name text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_landing_column(pipeline text, column_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	g record;
BEGIN
	IF p.format OPERATOR(pg_catalog.<>) 'columns' THEN
		RAISE EXCEPTION 'pipeline "%" lands jsonb payloads: it has no landing columns to add', pipeline
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Read nested or differently named keys with the transform from {"path": ...}.';
	END IF;
	/* 63 bytes, the longest name PostgreSQL keeps whole */
	IF column_name IS NULL OR column_name OPERATOR(pg_catalog.!~) '^[^[:cntrl:]]+$'
	   OR pg_catalog.octet_length(column_name) OPERATOR(pg_catalog.>) 63
	   OR column_name OPERATOR(pg_catalog.~~) '\_stage\_%' THEN
		RAISE EXCEPTION 'invalid landing column name "%"', pg_catalog.left(column_name, 63)
			USING ERRCODE = 'invalid_name',
				  HINT = 'A landing column name is 1 to 63 bytes, without control characters, and does not start with _stage_.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
				WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
				  AND a.attname OPERATOR(pg_catalog.=) column_name AND NOT a.attisdropped) THEN
		RAISE EXCEPTION 'landing table % already has a column "%"', p.landing, column_name
			USING ERRCODE = 'duplicate_column';
	END IF;
	EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN %I pg_catalog.text', p.landing, column_name);
	/* whoever may land rows may fill it: the roles that may insert _stage_source */
	FOR g IN SELECT DISTINCT x.grantee
			   FROM pg_catalog.pg_attribute a, pg_catalog.aclexplode(a.attacl) x
			  WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing
				AND a.attname OPERATOR(pg_catalog.=) '_stage_source'
				AND x.privilege_type OPERATOR(pg_catalog.=) 'INSERT'
				AND x.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		/* regrole's text is the role's name quoted as needed */
		EXECUTE pg_catalog.format('GRANT INSERT (%I) ON %s TO %s', column_name, p.landing,
								  g.grantee::regrole::text);
	END LOOP;
END
$$;

CREATE FUNCTION stage.add_rule(pipeline text, column_name text, kind text,
							   args jsonb DEFAULT '{}', severity text DEFAULT 'reject',
							   rule_name text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_rule(pipeline text, column_name text, kind text,
							   args jsonb, severity text,
							   rule_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_rule(p, column_name, kind, args, severity, rule_name);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_rule(pipeline text, rule_name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_rule(pipeline text, rule_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) _do_drop_rule.rule_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist in pipeline "%"', rule_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its rules.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a rule's args, severity or both in place: same name, column,
 * kind and position, checked exactly as add_rule checks it, in one new
 * contract version (none when nothing differs).  NULL keeps what the
 * rule has.
 */
CREATE FUNCTION stage.alter_rule(pipeline text, rule_name text, args jsonb DEFAULT NULL,
								 severity text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_rule(pipeline text, rule_name text, args jsonb,
									 severity text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.rule;
	new_args jsonb;
	new_severity text;
BEGIN
	SELECT * INTO old FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) _do_alter_rule.rule_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist in pipeline "%"', rule_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its rules.';
	END IF;
	IF args IS NULL AND severity IS NULL THEN
		RAISE EXCEPTION 'nothing to change in rule "%"', rule_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass args, severity or both; to change the column or kind, drop the rule and add another.';
	END IF;
	new_args := COALESCE(args, old.args);
	new_severity := COALESCE(severity, old.severity);
	DELETE FROM stage.rule r
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) old.rule_name;
	PERFORM stage._insert_rule(p, old.column_name, old.kind, new_args, new_severity, old.rule_name);
	UPDATE stage.rule r SET position = old.position
	 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND r.rule_name OPERATOR(pg_catalog.=) old.rule_name;
	IF new_args OPERATOR(pg_catalog.=) old.args AND new_severity OPERATOR(pg_catalog.=) old.severity THEN
		RETURN p.contract_version;
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.add_mask(pipeline text, column_name text, method text,
							   args jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_add_mask(pipeline text, column_name text, method text,
							   args jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	PERFORM stage._insert_mask(p, column_name, method, args);
	RETURN stage._new_version(p.pipeline_id);
END
$$;

CREATE FUNCTION stage.drop_mask(pipeline text, column_name text)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_drop_mask(pipeline text, column_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _do_drop_mask.column_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of pipeline "%" has no mask', column_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its masks.';
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/*
 * Change a column's mask in place: its method, its args or both, checked
 * exactly as add_mask checks it, in one new contract version (none when
 * nothing differs).  NULL keeps what the mask has: a new method with its
 * own args takes both.
 */
CREATE FUNCTION stage.alter_mask(pipeline text, column_name text, method text DEFAULT NULL,
								 args jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_alter_mask(pipeline text, column_name text, method text,
									 args jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	old stage.mask;
	new_method text;
	new_args jsonb;
BEGIN
	SELECT * INTO old FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _do_alter_mask.column_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of pipeline "%" has no mask', column_name, pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'See stage.contract(pipeline) for its masks; add one with stage.add_mask().';
	END IF;
	IF method IS NULL AND args IS NULL THEN
		RAISE EXCEPTION 'nothing to change in the mask of column "%"', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass method, args or both.';
	END IF;
	new_method := COALESCE(method, old.method);
	new_args := COALESCE(args, old.args);
	/* _insert_mask replaces the column's mask */
	PERFORM stage._insert_mask(p, old.column_name, new_method, new_args);
	IF new_method OPERATOR(pg_catalog.=) old.method AND new_args OPERATOR(pg_catalog.=) old.args THEN
		RETURN p.contract_version;
	END IF;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/* every element of items must be an object with only the allowed fields */
CREATE FUNCTION stage._check_fields(items jsonb, what text, allowed text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e jsonb;
	k text;
BEGIN
	FOR e IN SELECT x FROM pg_catalog.jsonb_array_elements(COALESCE(items, '[]')) AS a(x) LOOP
		IF pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'object' THEN
			RAISE EXCEPTION 'each % of a contract must be a JSON object', what
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOR k IN SELECT pg_catalog.jsonb_object_keys(e) LOOP
			IF k OPERATOR(pg_catalog.<>) ALL (allowed) THEN
				RAISE EXCEPTION 'unknown field "%" in a % of the contract', k, what
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = pg_catalog.format('A %s has %s.', what,
												   pg_catalog.array_to_string(allowed, ', '));
			END IF;
		END LOOP;
	END LOOP;
END
$$;

/*
 * Replace the whole contract (key, policies, transforms, rules, masks) in one version.
 * Missing keys take their defaults; a document equal to the current
 * contract changes nothing and returns the current version, so
 * set_contract(p, contract(p)) is a no-op.  Any invalid part refuses the
 * whole document and leaves the contract as it was.
 */
CREATE FUNCTION stage.set_contract(pipeline text, contract jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_contract(pipeline text, contract jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	k text;
	r jsonb;
	doc jsonb;
	new_key text[];
	new_ratio double precision;
BEGIN
	IF contract IS NULL OR pg_catalog.jsonb_typeof(contract) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'a contract must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'See SELECT stage.contract(pipeline) for the format.';
	END IF;
	FOR k IN SELECT pg_catalog.jsonb_object_keys(contract) LOOP
		IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['version', 'key', 'on_duplicate', 'max_reject_ratio', 'drift', 'transforms', 'rules', 'masks']) THEN
			RAISE EXCEPTION 'unknown contract field "%"', k
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Fields are key, on_duplicate, max_reject_ratio, drift, transforms, rules and masks (version is ignored).';
		END IF;
	END LOOP;
	FOREACH k IN ARRAY ARRAY['transforms', 'rules', 'masks'] LOOP
		IF contract OPERATOR(pg_catalog.?) k
		   AND pg_catalog.jsonb_typeof(contract OPERATOR(pg_catalog.->) k) OPERATOR(pg_catalog.<>) 'array' THEN
			RAISE EXCEPTION 'contract field "%" must be an array', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	/* a misspelt field inside a transform, rule or mask must not be silently dropped */
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'transforms', 'transform',
								ARRAY['name', 'column', 'method', 'args']);
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'rules', 'rule',
								ARRAY['name', 'column', 'kind', 'args', 'severity']);
	PERFORM stage._check_fields(contract OPERATOR(pg_catalog.->) 'masks', 'mask',
								ARRAY['column', 'method', 'args']);

	/* the document with every default spelled out, as contract() shows it */
	doc := pg_catalog.jsonb_build_object(
		'key', COALESCE(contract OPERATOR(pg_catalog.->) 'key', 'null'),
		'on_duplicate', COALESCE(contract OPERATOR(pg_catalog.->) 'on_duplicate', '"skip"'),
		'max_reject_ratio', COALESCE(contract OPERATOR(pg_catalog.->) 'max_reject_ratio', 'null'),
		'drift', COALESCE(contract OPERATOR(pg_catalog.->) 'drift', '"ignore"'),
		'transforms', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'name', COALESCE(e OPERATOR(pg_catalog.->>) 'name',
									 (e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.||) '_'
									 OPERATOR(pg_catalog.||) (e OPERATOR(pg_catalog.->>) 'method')),
					'column', e OPERATOR(pg_catalog.->) 'column',
					'method', e OPERATOR(pg_catalog.->) 'method',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}')) ORDER BY o)
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'transforms') WITH ORDINALITY AS x(e, o)), '[]'),
		'rules', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'name', COALESCE(e OPERATOR(pg_catalog.->>) 'name',
									 (e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.||) '_'
									 OPERATOR(pg_catalog.||) (e OPERATOR(pg_catalog.->>) 'kind')),
					'column', e OPERATOR(pg_catalog.->) 'column',
					'kind', e OPERATOR(pg_catalog.->) 'kind',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}'),
					'severity', COALESCE(e OPERATOR(pg_catalog.->) 'severity', '"reject"')) ORDER BY o)
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'rules') WITH ORDINALITY AS x(e, o)), '[]'),
		'masks', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'column', e OPERATOR(pg_catalog.->) 'column',
					'method', e OPERATOR(pg_catalog.->) 'method',
					'args', COALESCE(e OPERATOR(pg_catalog.->) 'args', '{}'))
					ORDER BY e OPERATOR(pg_catalog.->>) 'column')
			  FROM pg_catalog.jsonb_array_elements(contract OPERATOR(pg_catalog.->) 'masks') AS x(e)), '[]'));
	IF doc OPERATOR(pg_catalog.=) (stage._do_contract(pipeline) OPERATOR(pg_catalog.-) 'version') THEN
		RETURN p.contract_version;
	END IF;

	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'array' THEN
		new_key := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(doc OPERATOR(pg_catalog.->) 'key'));
	ELSIF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) 'null' THEN
		RAISE EXCEPTION 'contract field "key" must be an array of column names or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM stage._check_key(p.target, new_key);
	PERFORM stage._check_on_duplicate(doc OPERATOR(pg_catalog.->>) 'on_duplicate');
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.=) 'number' THEN
		new_ratio := (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision;
		IF new_ratio OPERATOR(pg_catalog.<) 0 OR new_ratio OPERATOR(pg_catalog.>) 1 THEN
			RAISE EXCEPTION 'max_reject_ratio must be between 0 and 1'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'It is the share of a batch''s rows that may be rejected, e.g. 0.05.';
		END IF;
	ELSIF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.<>) 'null' THEN
		RAISE EXCEPTION 'contract field "max_reject_ratio" must be a number or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	IF (doc OPERATOR(pg_catalog.->>) 'drift') IS NULL
	   OR (doc OPERATOR(pg_catalog.->>) 'drift') OPERATOR(pg_catalog.<>) ALL (ARRAY['ignore', 'quarantine', 'hold']) THEN
		RAISE EXCEPTION 'invalid drift policy %', doc OPERATOR(pg_catalog.->) 'drift'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use "ignore" (count only), "quarantine" (the drifting rows) or "hold" (the whole batch).';
	END IF;

	UPDATE stage.pipeline x
	   SET key = new_key, on_duplicate = doc OPERATOR(pg_catalog.->>) 'on_duplicate',
		   max_reject_ratio = new_ratio, drift = doc OPERATOR(pg_catalog.->>) 'drift'
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	RETURNING * INTO p;
	DELETE FROM stage.transform x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.rule x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	DELETE FROM stage.mask x WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'transforms') AS x(e) LOOP
		PERFORM stage._insert_transform(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
										r OPERATOR(pg_catalog.->) 'args', r OPERATOR(pg_catalog.->>) 'name');
	END LOOP;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'rules') AS x(e) LOOP
		PERFORM stage._insert_rule(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'kind',
								   r OPERATOR(pg_catalog.->) 'args', r OPERATOR(pg_catalog.->>) 'severity',
								   r OPERATOR(pg_catalog.->>) 'name');
	END LOOP;
	FOR r IN SELECT e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'masks') AS x(e) LOOP
		IF EXISTS (SELECT 1 FROM stage.mask m
					WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					  AND m.column_name OPERATOR(pg_catalog.=) (r OPERATOR(pg_catalog.->>) 'column')) THEN
			RAISE EXCEPTION 'column "%" has two masks in the contract', r OPERATOR(pg_catalog.->>) 'column'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'A column takes one mask.';
		END IF;
		PERFORM stage._insert_mask(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
								   r OPERATOR(pg_catalog.->) 'args');
	END LOOP;
	RETURN stage._new_version(p.pipeline_id);
END
$$;

/* the whole contract of a pipeline as one jsonb document */
CREATE FUNCTION stage.contract(pipeline text)
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_contract(pipeline text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
BEGIN
	RETURN pg_catalog.jsonb_build_object(
		'version', p.contract_version,
		'key', pg_catalog.to_jsonb(p.key),
		'on_duplicate', p.on_duplicate,
		'max_reject_ratio', p.max_reject_ratio,
		'drift', p.drift,
		'transforms', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'name', t.transform_name, 'column', t.column_name,
						'method', t.method, 'args', t.args)
					ORDER BY t.position)
			  FROM stage.transform t
			 WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'),
		'rules', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'name', r.rule_name, 'column', r.column_name,
						'kind', r.kind, 'args', r.args, 'severity', r.severity)
					ORDER BY r.position)
			  FROM stage.rule r
			 WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'),
		'masks', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'column', m.column_name, 'method', m.method, 'args', m.args)
					ORDER BY m.column_name)
			  FROM stage.mask m
			 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id), '[]'));
END
$$;

CREATE FUNCTION stage.check_row(pipeline text, row_data jsonb)
RETURNS jsonb LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_check_row';
COMMENT ON FUNCTION stage.check_row(text, jsonb) IS
	'the failures of one candidate row under the current contract ([] when it passes); no side effects';

/* what a batch would make of one row under the current contract: owners only */
CREATE FUNCTION stage.preview(pipeline text, row_data jsonb)
RETURNS jsonb LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_preview';
COMMENT ON FUNCTION stage.preview(text, jsonb) IS
	'the row as a batch would write it (masked), the values its transforms changed, and its reasons; writes nothing';
