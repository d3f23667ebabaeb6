/* ---------------------------------------------------------- contracts */

/*
 * The checks of one rule against a pipeline's target and key, as add_rule
 * and set_contract make them, without storing it: taken holds the rule
 * names already in use.  Returns the rule's name.  stage.contract_diff
 * runs it too, so what it reports as refused is what set_contract refuses.
 */
CREATE FUNCTION stage._check_rule(p stage.pipeline, column_name text, kind text,
								  args jsonb, severity text, rule_name text, taken text[])
RETURNS text
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
	IF rname OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'rule "%" already exists in pipeline "%"', rname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another rule_name, or drop the rule first with stage.drop_rule().';
	END IF;
	RETURN rname;
END
$$;

/* validate one rule against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_rule(p stage.pipeline, column_name text, kind text,
								   args jsonb, severity text, rule_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rname text;
BEGIN
	rname := stage._check_rule(p, column_name, kind, args, severity, rule_name,
							   ARRAY(SELECT r.rule_name FROM stage.rule r
									  WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
	INSERT INTO stage.rule (pipeline_id, rule_name, column_name, kind, args, severity, position)
	VALUES (p.pipeline_id, rname, column_name, kind, COALESCE(args, '{}'), severity,
			(SELECT COALESCE(pg_catalog.max(r.position), 0) OPERATOR(pg_catalog.+) 1
			   FROM stage.rule r WHERE r.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
END
$$;

/*
 * The checks of one mask against a pipeline's target and key, without
 * storing it; taken: the columns masked so far by the same document (NULL
 * when the mask replaces the column's mask, as add_mask does).
 */
CREATE FUNCTION stage._check_mask(p stage.pipeline, column_name text, method text, args jsonb,
								  taken text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF column_name OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'column "%" has two masks in the contract', column_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A column takes one mask.';
	END IF;
	IF column_name OPERATOR(pg_catalog.=) ANY (p.key) THEN
		RAISE EXCEPTION 'column "%" is part of the key of pipeline "%" and cannot be masked', column_name, p.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Key values must reach the target unchanged to detect duplicates; mask another column or change the key.';
	END IF;
	PERFORM stage._validate_mask(p.target, column_name, method, COALESCE(args, '{}'), p.owner);
END
$$;

/* validate one mask against a pipeline's target and key, and store it */
CREATE FUNCTION stage._insert_mask(p stage.pipeline, column_name text, method text, args jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM stage._check_mask(p, column_name, method, args, NULL);
	/* one mask per column: a new mask replaces the old one */
	DELETE FROM stage.mask m
	 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND m.column_name OPERATOR(pg_catalog.=) _insert_mask.column_name;
	INSERT INTO stage.mask (pipeline_id, column_name, method, args)
	VALUES (p.pipeline_id, column_name, method, COALESCE(args, '{}'));
END
$$;

/*
 * The checks of one transform against a pipeline's target and landing,
 * without storing it; taken: the transform names already in use.  Returns
 * the transform's name.
 */
CREATE FUNCTION stage._check_transform(p stage.pipeline, column_name text, method text,
									   args jsonb, transform_name text, taken text[])
RETURNS text
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
	IF tname OPERATOR(pg_catalog.=) ANY (taken) THEN
		RAISE EXCEPTION 'transform "%" already exists in pipeline "%"', tname, p.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass another transform_name, or drop the transform first with stage.drop_transform().';
	END IF;
	RETURN tname;
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
	tname text;
BEGIN
	tname := stage._check_transform(p, column_name, method, args, transform_name,
									ARRAY(SELECT t.transform_name FROM stage.transform t
										   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
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
	PERFORM stage._add_landing_column(p.landing, column_name);
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
 * A contract document checked for its shape (an object, known fields,
 * arrays where arrays belong, known fields in each transform, rule and
 * mask) and returned with every default spelled out, as contract() shows
 * it.  set_contract and contract_diff both read a document through it.
 */
CREATE FUNCTION stage._contract_doc(contract jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k text;
	doc jsonb;
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
	RETURN doc;
END
$$;

/*
 * The policies of a document from _contract_doc: key an array or null,
 * on_duplicate, max_reject_ratio and drift valid values.  The key's
 * columns and index are the target's business (stage._check_key).
 */
CREATE FUNCTION stage._check_policies(doc jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ratio double precision;
BEGIN
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) ALL (ARRAY['array', 'null']) THEN
		RAISE EXCEPTION 'contract field "key" must be an array of column names or null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM stage._check_on_duplicate(doc OPERATOR(pg_catalog.->>) 'on_duplicate');
	IF pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'max_reject_ratio') OPERATOR(pg_catalog.=) 'number' THEN
		ratio := (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision;
		IF ratio OPERATOR(pg_catalog.<) 0 OR ratio OPERATOR(pg_catalog.>) 1 THEN
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
END
$$;

/* the key of a document from _contract_doc (NULL: no key) */
CREATE FUNCTION stage._contract_key(doc jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'array'
			THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(doc OPERATOR(pg_catalog.->) 'key')) END
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
	r jsonb;
	doc jsonb := stage._contract_doc(contract);
	new_key text[];
BEGIN
	IF doc OPERATOR(pg_catalog.=) (stage._do_contract(pipeline) OPERATOR(pg_catalog.-) 'version') THEN
		RETURN p.contract_version;
	END IF;
	PERFORM stage._check_policies(doc);
	new_key := stage._contract_key(doc);
	PERFORM stage._check_key(p.target, new_key);

	UPDATE stage.pipeline x
	   SET key = new_key, on_duplicate = doc OPERATOR(pg_catalog.->>) 'on_duplicate',
		   max_reject_ratio = (doc OPERATOR(pg_catalog.->>) 'max_reject_ratio')::double precision,
		   drift = doc OPERATOR(pg_catalog.->>) 'drift'
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
		PERFORM stage._check_mask(p, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
								  r OPERATOR(pg_catalog.->) 'args',
								  ARRAY(SELECT m.column_name FROM stage.mask m
										 WHERE m.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id));
		INSERT INTO stage.mask (pipeline_id, column_name, method, args)
		VALUES (p.pipeline_id, r OPERATOR(pg_catalog.->>) 'column', r OPERATOR(pg_catalog.->>) 'method',
				COALESCE(r OPERATOR(pg_catalog.->) 'args', '{}'));
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

/*
 * Is a rule's new args no stricter than its old ones?  Only what is
 * simple to compare counts: range and length bounds that are JSON numbers
 * and only move outwards (or go), enum values that only grow.  Anything
 * else changed is taken as stricter.
 */
CREATE FUNCTION stage._rule_looser(kind text, old_args jsonb, new_args jsonb)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b text;
BEGIN
	IF kind OPERATOR(pg_catalog.=) ANY (ARRAY['range', 'length']) THEN
		IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(old_args OPERATOR(pg_catalog.||) new_args) AS k(k)
					WHERE k.k OPERATOR(pg_catalog.<>) ALL (ARRAY['min', 'max'])) THEN
			RETURN false;
		END IF;
		FOREACH b IN ARRAY ARRAY['min', 'max'] LOOP
			CONTINUE WHEN NOT new_args OPERATOR(pg_catalog.?) b;	/* no bound any more */
			IF NOT old_args OPERATOR(pg_catalog.?) b THEN
				RETURN false;
			END IF;
			CONTINUE WHEN (new_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.=) (old_args OPERATOR(pg_catalog.->) b);
			IF pg_catalog.jsonb_typeof(new_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.<>) 'number'
			   OR pg_catalog.jsonb_typeof(old_args OPERATOR(pg_catalog.->) b) OPERATOR(pg_catalog.<>) 'number' THEN
				RETURN false;
			END IF;
			IF b OPERATOR(pg_catalog.=) 'min' AND (new_args OPERATOR(pg_catalog.->>) b)::numeric
												   OPERATOR(pg_catalog.>) (old_args OPERATOR(pg_catalog.->>) b)::numeric THEN
				RETURN false;
			END IF;
			IF b OPERATOR(pg_catalog.=) 'max' AND (new_args OPERATOR(pg_catalog.->>) b)::numeric
												   OPERATOR(pg_catalog.<) (old_args OPERATOR(pg_catalog.->>) b)::numeric THEN
				RETURN false;
			END IF;
		END LOOP;
		RETURN true;
	ELSIF kind OPERATOR(pg_catalog.=) 'enum' THEN
		RETURN (new_args OPERATOR(pg_catalog.-) 'values') OPERATOR(pg_catalog.=) (old_args OPERATOR(pg_catalog.-) 'values')
		   AND pg_catalog.jsonb_typeof(new_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.=) 'array'
		   AND pg_catalog.jsonb_typeof(old_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.=) 'array'
		   AND (new_args OPERATOR(pg_catalog.->) 'values') OPERATOR(pg_catalog.@>) (old_args OPERATOR(pg_catalog.->) 'values');
	END IF;
	RETURN false;
END
$$;

/*
 * What a proposed contract changes, for a CI job to read before
 * set_contract: one row per difference with the current contract (key,
 * policies, transforms, rules, masks), one per part of the proposed
 * document (or, with NULL, of the current contract) that set_contract
 * would refuse against the target as it is now, and one per column the
 * target and the landing table no longer share.  breaking marks what
 * producers or the target's readers would feel (docs/functions.md has the
 * criteria).  A malformed document raises what set_contract raises.
 * Writes nothing: the parts are checked by the checks set_contract runs,
 * each in a subtransaction of its own; a caller who does not own the
 * pipeline (stage_analyst) has the parts the document adds or changes
 * compiled with their own rights, never the owner's.
 */
CREATE FUNCTION stage.contract_diff(pipeline text, contract jsonb DEFAULT NULL)
RETURNS TABLE(change text, object text, name text, column_name text, breaking boolean, detail text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_contract_diff(pipeline text, contract jsonb)
RETURNS TABLE(change text, object text, name text, column_name text, breaking boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
	cur jsonb := stage._do_contract(pipeline) OPERATOR(pg_catalog.-) 'version';
	doc jsonb;
	q stage.pipeline;
	owns boolean := stage._owns(p.owner);
	caller regrole := stage._caller();
	kind text;
	o jsonb;
	n jsonb;
	orank bigint;
	nrank bigint;
	e jsonb;
	parts text[];
	taken text[];
	nm text;
	col record;
	drift_rank CONSTANT jsonb := '{"ignore": 0, "quarantine": 1, "hold": 2}';
BEGIN
	IF contract IS NULL THEN
		doc := cur;
	ELSE
		doc := stage._contract_doc(contract);
		PERFORM stage._check_policies(doc);
	END IF;

	/* the key and the policies */
	name := NULL;
	column_name := NULL;
	IF (cur OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.<>) (doc OPERATOR(pg_catalog.->) 'key') THEN
		change := CASE WHEN (cur OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'null' THEN 'added'
					   WHEN (doc OPERATOR(pg_catalog.->) 'key') OPERATOR(pg_catalog.=) 'null' THEN 'removed'
					   ELSE 'changed' END;
		object := 'key';
		breaking := true;
		detail := pg_catalog.format('%s -> %s', cur OPERATOR(pg_catalog.->) 'key', doc OPERATOR(pg_catalog.->) 'key');
		RETURN NEXT;
	END IF;
	FOREACH kind IN ARRAY ARRAY['on_duplicate', 'max_reject_ratio', 'drift'] LOOP
		o := cur OPERATOR(pg_catalog.->) kind;
		n := doc OPERATOR(pg_catalog.->) kind;
		CONTINUE WHEN o OPERATOR(pg_catalog.=) n;
		change := 'changed';
		object := kind;
		IF kind OPERATOR(pg_catalog.=) 'on_duplicate' THEN
			/* rows that were skipped or updated would be quarantined */
			breaking := n OPERATOR(pg_catalog.=) '"quarantine"';
		ELSIF kind OPERATOR(pg_catalog.=) 'max_reject_ratio' THEN
			/* batches that passed would be held */
			breaking := pg_catalog.jsonb_typeof(n) OPERATOR(pg_catalog.=) 'number';
			IF breaking AND pg_catalog.jsonb_typeof(o) OPERATOR(pg_catalog.=) 'number' THEN
				breaking := (n OPERATOR(pg_catalog.#>>) '{}')::numeric OPERATOR(pg_catalog.<) (o OPERATOR(pg_catalog.#>>) '{}')::numeric;
			END IF;
		ELSE
			/* ignore, quarantine, hold: stricter in that order */
			breaking := (drift_rank OPERATOR(pg_catalog.->>) (n OPERATOR(pg_catalog.#>>) '{}'))::integer
						OPERATOR(pg_catalog.>) (drift_rank OPERATOR(pg_catalog.->>) (o OPERATOR(pg_catalog.#>>) '{}'))::integer;
		END IF;
		detail := pg_catalog.format('%s -> %s', o, n);
		RETURN NEXT;
	END LOOP;

	/*
	 * Transforms, rules and masks, matched by name (masks by column).  A
	 * move is a change of rank among the transforms or rules both documents
	 * have.
	 */
	FOREACH kind IN ARRAY ARRAY['transform', 'rule', 'mask'] LOOP
		FOR o, n, orank, nrank IN
			WITH a AS (SELECT x.e, x.i FROM pg_catalog.jsonb_array_elements(cur OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
										   WITH ORDINALITY AS x(e, i)),
				 b AS (SELECT x.e, x.i FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
										   WITH ORDINALITY AS x(e, i)),
				 j AS (SELECT a.e AS ae, a.i AS ai, b.e AS be, b.i AS bi
						 FROM a FULL JOIN b
						   ON (a.e OPERATOR(pg_catalog.->>) CASE kind WHEN 'mask' THEN 'column' ELSE 'name' END)
							  OPERATOR(pg_catalog.=) (b.e OPERATOR(pg_catalog.->>) CASE kind WHEN 'mask' THEN 'column' ELSE 'name' END))
			SELECT j.ae, j.be,
				   CASE WHEN j.ae IS NOT NULL AND j.be IS NOT NULL
						THEN pg_catalog.row_number() OVER (PARTITION BY j.ae IS NOT NULL AND j.be IS NOT NULL ORDER BY j.ai) END,
				   CASE WHEN j.ae IS NOT NULL AND j.be IS NOT NULL
						THEN pg_catalog.row_number() OVER (PARTITION BY j.ae IS NOT NULL AND j.be IS NOT NULL ORDER BY j.bi) END
			  FROM j
			 ORDER BY j.bi, j.ai
		LOOP
			object := kind;
			IF kind OPERATOR(pg_catalog.=) 'mask' THEN
				nrank := orank;		/* masks have no order */
			END IF;
			e := COALESCE(n, o);
			name := CASE WHEN kind OPERATOR(pg_catalog.<>) 'mask' THEN e OPERATOR(pg_catalog.->>) 'name' END;
			column_name := e OPERATOR(pg_catalog.->>) 'column';
			IF o IS NULL OR n IS NULL THEN
				change := CASE WHEN o IS NULL THEN 'added' ELSE 'removed' END;
				detail := CASE kind
					WHEN 'rule' THEN pg_catalog.format('%s %s, %s', e OPERATOR(pg_catalog.->>) 'kind', e OPERATOR(pg_catalog.->) 'args',
													   e OPERATOR(pg_catalog.->>) 'severity')
					ELSE pg_catalog.format('%s %s', e OPERATOR(pg_catalog.->>) 'method', e OPERATOR(pg_catalog.->) 'args') END;
				breaking := CASE kind
					WHEN 'transform' THEN true
					WHEN 'rule' THEN o IS NULL AND (n OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					ELSE n IS NULL END;
				RETURN NEXT;
				CONTINUE;
			END IF;
			parts := '{}';
			IF (o OPERATOR(pg_catalog.->) 'column') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'column') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('column %s -> %s', o OPERATOR(pg_catalog.->) 'column', n OPERATOR(pg_catalog.->) 'column');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'kind') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'kind') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('kind %s -> %s', o OPERATOR(pg_catalog.->>) 'kind', n OPERATOR(pg_catalog.->>) 'kind');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'method') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'method') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('method %s -> %s', o OPERATOR(pg_catalog.->>) 'method', n OPERATOR(pg_catalog.->>) 'method');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'args') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'args') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('args %s -> %s', o OPERATOR(pg_catalog.->) 'args', n OPERATOR(pg_catalog.->) 'args');
			END IF;
			IF (o OPERATOR(pg_catalog.->) 'severity') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'severity') THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('severity %s -> %s', o OPERATOR(pg_catalog.->>) 'severity', n OPERATOR(pg_catalog.->>) 'severity');
			END IF;
			IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.>) 0 THEN
				change := 'changed';
			ELSIF orank OPERATOR(pg_catalog.<>) nrank THEN
				change := 'moved';
			ELSE
				CONTINUE;
			END IF;
			IF orank OPERATOR(pg_catalog.<>) nrank THEN
				parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('position %s -> %s', orank, nrank);
			END IF;
			detail := pg_catalog.array_to_string(parts, '; ');
			breaking := CASE kind
				WHEN 'transform' THEN true
				WHEN 'mask' THEN change OPERATOR(pg_catalog.=) 'changed'
				ELSE (n OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					 AND ((o OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.<>) 'reject'
						  OR (o OPERATOR(pg_catalog.->) 'column') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'column')
						  OR (o OPERATOR(pg_catalog.->) 'kind') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'kind')
						  OR ((o OPERATOR(pg_catalog.->) 'args') OPERATOR(pg_catalog.<>) (n OPERATOR(pg_catalog.->) 'args')
							  AND NOT stage._rule_looser(n OPERATOR(pg_catalog.->>) 'kind', o OPERATOR(pg_catalog.->) 'args',
														 n OPERATOR(pg_catalog.->) 'args')))
				END;
			RETURN NEXT;
		END LOOP;
	END LOOP;

	/*
	 * What set_contract would refuse against the target as it is now: the
	 * key, then each transform, rule and mask in the document's order, by
	 * the same checks, each in a subtransaction that writes nothing.  A
	 * part the current contract already has compiles as the pipeline's
	 * owner, as it would in a batch; a new or changed one as the owner
	 * only when the caller owns the pipeline.
	 */
	change := 'refused';
	breaking := true;
	q := p;
	q.key := stage._contract_key(doc);
	BEGIN
		PERFORM stage._check_key(p.target, q.key);
	EXCEPTION WHEN OTHERS THEN
		object := 'key';
		name := NULL;
		column_name := NULL;
		detail := SQLERRM;
		RETURN NEXT;
	END;
	FOREACH kind IN ARRAY ARRAY['transform', 'rule', 'mask'] LOOP
		taken := '{}';
		FOR e IN SELECT x.e FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's'))
									WITH ORDINALITY AS x(e, i) ORDER BY x.i LOOP
			q.owner := CASE WHEN owns OR EXISTS (
								SELECT 1 FROM pg_catalog.jsonb_array_elements(cur OPERATOR(pg_catalog.->) (kind OPERATOR(pg_catalog.||) 's')) AS c(item)
								 WHERE c.item OPERATOR(pg_catalog.=) e)
							THEN p.owner ELSE caller END;
			BEGIN
				IF kind OPERATOR(pg_catalog.=) 'transform' THEN
					nm := stage._check_transform(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'method',
												 e OPERATOR(pg_catalog.->) 'args', e OPERATOR(pg_catalog.->>) 'name', taken);
				ELSIF kind OPERATOR(pg_catalog.=) 'rule' THEN
					nm := stage._check_rule(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'kind',
											e OPERATOR(pg_catalog.->) 'args', e OPERATOR(pg_catalog.->>) 'severity',
											e OPERATOR(pg_catalog.->>) 'name', taken);
				ELSE
					PERFORM stage._check_mask(q, e OPERATOR(pg_catalog.->>) 'column', e OPERATOR(pg_catalog.->>) 'method',
											  e OPERATOR(pg_catalog.->) 'args', taken);
					nm := e OPERATOR(pg_catalog.->>) 'column';
				END IF;
				taken := taken OPERATOR(pg_catalog.||) nm;
			EXCEPTION WHEN OTHERS THEN
				object := kind;
				name := CASE WHEN kind OPERATOR(pg_catalog.<>) 'mask' THEN e OPERATOR(pg_catalog.->>) 'name' END;
				column_name := e OPERATOR(pg_catalog.->>) 'column';
				detail := SQLERRM;
				RETURN NEXT;
			END;
		END LOOP;
	END LOOP;

	/* the target and the landing table (format columns: one text column per target column) */
	IF p.format OPERATOR(pg_catalog.<>) 'columns' THEN
		RETURN;
	END IF;
	change := 'not_in_landing';
	object := 'column';
	name := NULL;
	FOR col IN SELECT t.attname::text AS col,
					t.attnotnull AND NOT t.atthasdef AND t.attidentity OPERATOR(pg_catalog.=) '' AS required,
					(SELECT r.e OPERATOR(pg_catalog.->>) 'name'
					   FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'rules') AS r(e)
					  WHERE (r.e OPERATOR(pg_catalog.->>) 'column') OPERATOR(pg_catalog.=) t.attname::text
						AND (r.e OPERATOR(pg_catalog.->>) 'kind') OPERATOR(pg_catalog.=) 'not_null'
						AND (r.e OPERATOR(pg_catalog.->>) 'severity') OPERATOR(pg_catalog.=) 'reject'
					  LIMIT 1) AS not_null_rule
			   FROM pg_catalog.pg_attribute t
			  WHERE t.attrelid OPERATOR(pg_catalog.=) p.target AND t.attnum OPERATOR(pg_catalog.>) 0
				AND NOT t.attisdropped AND t.attgenerated OPERATOR(pg_catalog.=) ''
				AND t.attidentity OPERATOR(pg_catalog.<>) 'a'
				AND t.attname OPERATOR(pg_catalog.<>) ALL (ARRAY['_stage_id', '_stage_batch', '_stage_node']::name[])
				AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute l
								 WHERE l.attrelid OPERATOR(pg_catalog.=) p.landing
								   AND l.attname OPERATOR(pg_catalog.=) t.attname
								   AND l.attnum OPERATOR(pg_catalog.>) 0 AND NOT l.attisdropped)
			  ORDER BY t.attnum LOOP
		column_name := col.col;
		breaking := col.required OR col.not_null_rule IS NOT NULL;
		detail := CASE
			WHEN col.required THEN 'producers cannot send it, and it is NOT NULL without a default: the target refuses every row'
			WHEN col.not_null_rule IS NOT NULL THEN
				pg_catalog.format('producers cannot send it, and rule "%s" quarantines every row without it', col.not_null_rule)
			ELSE 'producers cannot send it: every row gets its default' END;
		RETURN NEXT;
	END LOOP;
	change := 'not_in_target';
	object := 'landing_column';
	breaking := false;
	detail := 'no target column and no transform reads it: what producers land in it is not moved';
	FOR col IN SELECT l.attname::text AS col
			   FROM pg_catalog.pg_attribute l
			  WHERE l.attrelid OPERATOR(pg_catalog.=) p.landing AND l.attnum OPERATOR(pg_catalog.>) 0
				AND NOT l.attisdropped AND l.attname::text OPERATOR(pg_catalog.!~~) '\_stage\_%'
				AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute t
								 WHERE t.attrelid OPERATOR(pg_catalog.=) p.target
								   AND t.attname OPERATOR(pg_catalog.=) l.attname
								   AND t.attnum OPERATOR(pg_catalog.>) 0 AND NOT t.attisdropped)
				AND NOT EXISTS (
					SELECT 1 FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'transforms') AS x(e)
					 WHERE (x.e OPERATOR(pg_catalog.->>) 'method') OPERATOR(pg_catalog.=) ANY (ARRAY['from', 'concat', 'coalesce'])
					   AND ((x.e OPERATOR(pg_catalog.#>>) '{args,column}') OPERATOR(pg_catalog.=) l.attname::text
							OR (pg_catalog.jsonb_typeof(x.e OPERATOR(pg_catalog.#>) '{args,columns}') OPERATOR(pg_catalog.=) 'array'
								AND (x.e OPERATOR(pg_catalog.#>) '{args,columns}') OPERATOR(pg_catalog.?) l.attname::text)))
			  ORDER BY l.attnum LOOP
		column_name := col.col;
		RETURN NEXT;
	END LOOP;
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
