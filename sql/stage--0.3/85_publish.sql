/* ------------------------------------------ publishing to a warehouse */

/*
 * A staging node fans in to a warehouse by PostgreSQL's logical
 * replication (docs/scale-out.md): stage.publish(pipeline) publishes a
 * pipeline's target, stage.publish_history() the node's batch, quarantine
 * and duplicate history.  What leaves the node is masked: landing tables,
 * stage.secret and stage.token_vault are never published; the history goes
 * without the raw columns of the quarantine (raw_data, raw_payload,
 * raw_reasons), the row's key (the raw value of its key columns) and the
 * batches' and pipelines' error texts (a server message may quote a value).
 * Both publish inserts and updates only: what a node deletes (retention,
 * purge, drop_pipeline) stays on the warehouse.
 *
 * A raw column.  A target column of a masked pipeline that a transform
 * fills from a masked column (from, concat, coalesce, or an expression that
 * names it), directly or through another such column, without a mask of its
 * own, holds a raw value of a masked column.  It may stay on the node, but
 * it is never published: publish refuses it, publish_history refuses a node
 * with one (the quarantine's row_data carries it), and once published a
 * pipeline's contract may not gain one.
 */

/* the target columns an expression reads (the parser's view of its names) */
CREATE FUNCTION stage._expression_columns(target regclass, sql text)
RETURNS text[]
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_expression_columns';

/* a dotted path, or an array of keys, as one array of keys (jsonb text) */
CREATE FUNCTION stage._path_key(path jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT 'path:' OPERATOR(pg_catalog.||) CASE pg_catalog.jsonb_typeof(path)
	WHEN 'array' THEN path::text
	ELSE pg_catalog.to_jsonb(pg_catalog.string_to_array(path OPERATOR(pg_catalog.#>>) '{}', '.'))::text END
$$;

/*
 * The target columns of a pipeline that hold raw values of its masked
 * columns, each with the masked column it comes from.  What a column is
 * filled from: its own landing column (a jsonb pipeline: the payload's key
 * of its name), or what its last structural transform reads (from, concat,
 * coalesce: landing columns or payload paths), or the target columns its
 * expression reads.  A column that is not masked holds raw values when it
 * reads the one input a masked column is a copy of, reads a masked column
 * (an expression), or reads such a column in turn.
 */
CREATE FUNCTION stage._raw_columns(pipeline_id integer)
RETURNS TABLE(column_name text, masked_column text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	masked text[];
	src jsonb := '{}';		/* column -> the inputs it is filled from */
	tainted jsonb := '{}';	/* input or 'tgt:'column -> the masked column behind it */
	raw jsonb := '{}';
	t record;
	c text;
	x text;
	changed boolean := true;
BEGIN
	SELECT * INTO p FROM stage.pipeline y WHERE y.pipeline_id OPERATOR(pg_catalog.=) _raw_columns.pipeline_id;
	SELECT pg_catalog.array_agg(m.column_name) INTO masked
	  FROM stage.mask m WHERE m.pipeline_id OPERATOR(pg_catalog.=) _raw_columns.pipeline_id;
	IF masked IS NULL THEN
		RETURN;
	END IF;
	/* the inputs of each target column */
	FOR c IN SELECT a.attname::text FROM pg_catalog.pg_attribute a
			  WHERE a.attrelid OPERATOR(pg_catalog.=) p.target AND a.attnum OPERATOR(pg_catalog.>) 0
				AND NOT a.attisdropped LOOP
		src := src OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(c, pg_catalog.jsonb_build_array(
			CASE WHEN p.format OPERATOR(pg_catalog.=) 'jsonb' THEN stage._path_key(pg_catalog.to_jsonb(ARRAY[c]))
				 ELSE 'col:' OPERATOR(pg_catalog.||) c END));
	END LOOP;
	FOR t IN SELECT y.column_name AS col, y.method, y.args FROM stage.transform y
			  WHERE y.pipeline_id OPERATOR(pg_catalog.=) _raw_columns.pipeline_id
				AND y.method OPERATOR(pg_catalog.=) ANY (ARRAY['from', 'concat', 'coalesce', 'expression'])
			  ORDER BY y.position LOOP
		/* the last structural transform (or expression) of a column says what fills it */
		src := src OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(t.col, (
			SELECT COALESCE(pg_catalog.jsonb_agg(DISTINCT i), '[]') FROM (
				SELECT 'col:' OPERATOR(pg_catalog.||) (t.args OPERATOR(pg_catalog.->>) 'column') AS i
				 WHERE t.method OPERATOR(pg_catalog.=) 'from' AND t.args OPERATOR(pg_catalog.?) 'column'
				UNION ALL
				SELECT stage._path_key(t.args OPERATOR(pg_catalog.->) 'path')
				 WHERE t.method OPERATOR(pg_catalog.=) 'from' AND t.args OPERATOR(pg_catalog.?) 'path'
				UNION ALL
				SELECT 'col:' OPERATOR(pg_catalog.||) e
				  FROM pg_catalog.jsonb_array_elements_text(CASE WHEN t.method OPERATOR(pg_catalog.<>) 'expression'
						AND pg_catalog.jsonb_typeof(t.args OPERATOR(pg_catalog.->) 'columns') OPERATOR(pg_catalog.=) 'array'
						THEN t.args OPERATOR(pg_catalog.->) 'columns' ELSE '[]' END) e
				UNION ALL
				SELECT stage._path_key(e)
				  FROM pg_catalog.jsonb_array_elements(CASE WHEN t.method OPERATOR(pg_catalog.<>) 'expression'
						AND pg_catalog.jsonb_typeof(t.args OPERATOR(pg_catalog.->) 'paths') OPERATOR(pg_catalog.=) 'array'
						THEN t.args OPERATOR(pg_catalog.->) 'paths' ELSE '[]' END) e
				UNION ALL
				SELECT 'tgt:' OPERATOR(pg_catalog.||) e
				  FROM pg_catalog.unnest(stage._transform_reads(p.target, t.method, t.args, masked)) e) z));
	END LOOP;
	/*
	 * The masked columns, and what a masked column is a copy of (its one
	 * input: a landing column or a payload path, possibly cleaned up by
	 * per-value transforms).  The inputs of a masked combination (a concat
	 * of a name and an address) are not masked values each.
	 */
	FOREACH c IN ARRAY masked LOOP
		tainted := tainted OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('tgt:' OPERATOR(pg_catalog.||) c, c);
		IF pg_catalog.jsonb_array_length(COALESCE(src OPERATOR(pg_catalog.->) c, '[]')) OPERATOR(pg_catalog.=) 1
		   AND (src OPERATOR(pg_catalog.->) c OPERATOR(pg_catalog.->>) 0) OPERATOR(pg_catalog.!~~) 'tgt:%' THEN
			tainted := tainted OPERATOR(pg_catalog.||)
				pg_catalog.jsonb_build_object(src OPERATOR(pg_catalog.->) c OPERATOR(pg_catalog.->>) 0, c);
		END IF;
	END LOOP;
	WHILE changed LOOP
		changed := false;
		FOR c IN SELECT k FROM pg_catalog.jsonb_object_keys(src) k ORDER BY k LOOP
			CONTINUE WHEN c OPERATOR(pg_catalog.=) ANY (masked) OR raw OPERATOR(pg_catalog.?) c;
			FOR x IN SELECT pg_catalog.jsonb_array_elements_text(src OPERATOR(pg_catalog.->) c) LOOP
				IF tainted OPERATOR(pg_catalog.?) x THEN
					raw := raw OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(c, tainted OPERATOR(pg_catalog.->>) x);
					tainted := tainted OPERATOR(pg_catalog.||)
						pg_catalog.jsonb_build_object('tgt:' OPERATOR(pg_catalog.||) c, tainted OPERATOR(pg_catalog.->>) x);
					changed := true;
					EXIT;
				END IF;
			END LOOP;
		END LOOP;
	END LOOP;
	RETURN QUERY SELECT e.key, e.value FROM pg_catalog.jsonb_each_text(raw) e ORDER BY e.key;
END
$$;

/* the target columns an expression transform reads (every masked one if it no longer parses) */
CREATE FUNCTION stage._transform_reads(target regclass, method text, args jsonb, masked text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF method OPERATOR(pg_catalog.<>) 'expression' THEN
		RETURN '{}';
	END IF;
	RETURN stage._expression_columns(target, args OPERATOR(pg_catalog.->>) 'sql');
EXCEPTION WHEN OTHERS THEN
	RETURN masked;
END
$$;

/* the publication of a pipeline's target: stage_<pipeline> */
CREATE FUNCTION stage._publication_name(pipeline text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'stage_' OPERATOR(pg_catalog.||) pipeline $$;

/*
 * The columns of a pipeline that leave the node: those the publications of
 * its target publish, and, when the history is published, every column
 * (the quarantine's row_data).  NULL: none.
 */
CREATE FUNCTION stage._published_columns(pipeline_id integer)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
						  WHERE t.schemaname OPERATOR(pg_catalog.=) 'stage'
							AND t.tablename OPERATOR(pg_catalog.=) 'quarantine_log'
							AND 'row_data'::name OPERATOR(pg_catalog.=) ANY (t.attnames))
			THEN (SELECT pg_catalog.array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
				   WHERE a.attrelid OPERATOR(pg_catalog.=) p.target AND a.attnum OPERATOR(pg_catalog.>) 0
					 AND NOT a.attisdropped)
			ELSE (SELECT pg_catalog.array_agg(DISTINCT x::text)
					FROM pg_catalog.pg_publication_tables t, pg_catalog.unnest(t.attnames) x
				   WHERE t.schemaname OPERATOR(pg_catalog.=) n.nspname
					 AND t.tablename OPERATOR(pg_catalog.=) c.relname) END
  FROM stage.pipeline p
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.target
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE p.pipeline_id OPERATOR(pg_catalog.=) _published_columns.pipeline_id
$$;

/* error if one of the columns cols (to be published) is a raw column */
CREATE FUNCTION stage._refuse_raw(pipeline_id integer, cols text[], history boolean)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	r record;
BEGIN
	SELECT * INTO p FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) _refuse_raw.pipeline_id;
	/* the first raw column among them, if any: why it may not leave, and what to do */
	FOR r IN SELECT c.column_name, c.masked_column FROM stage._raw_columns(p.pipeline_id) c
			  WHERE c.column_name OPERATOR(pg_catalog.=) ANY (cols) LOOP
		RAISE EXCEPTION 'column "%" of pipeline "%" holds raw values of its masked column "%"',
			r.column_name, p.name, r.masked_column
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = CASE WHEN history
							THEN 'Its quarantined rows would carry them to the warehouse with the node''s history.'
							ELSE 'A published column leaves the node; raw values of a masked column never do.' END,
				  HINT = pg_catalog.format(CASE WHEN history
							THEN 'Mask it too (stage.add_mask(%L, %L, ...)), or fill it from unmasked columns only.'
							ELSE 'Mask it too (stage.add_mask(%L, %L, ...)), or publish the other columns: stage.publish(%1$L, columns => ARRAY[...]).' END,
							p.name, r.column_name);
	END LOOP;
END
$$;

/*
 * A pipeline whose contract changes (stage._new_version calls this before
 * it records the new version): a published column may not become raw, nor
 * lose its mask.
 */
CREATE FUNCTION stage._check_published(pipeline_id integer)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cols text[] := stage._published_columns(pipeline_id);
	history boolean;
	c text;
BEGIN
	IF cols IS NULL THEN
		RETURN;
	END IF;
	history := EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
						WHERE t.schemaname OPERATOR(pg_catalog.=) 'stage'
						  AND t.tablename OPERATOR(pg_catalog.=) 'quarantine_log');
	PERFORM stage._refuse_raw(pipeline_id, cols, history);
	FOR c IN SELECT m OPERATOR(pg_catalog.->>) 'column'
			   FROM stage.contract_history h,
					pg_catalog.jsonb_array_elements(h.contract OPERATOR(pg_catalog.->) 'masks') m
			  WHERE h.pipeline_id OPERATOR(pg_catalog.=) _check_published.pipeline_id
				AND h.version OPERATOR(pg_catalog.=) (SELECT pg_catalog.max(x.version) FROM stage.contract_history x
													   WHERE x.pipeline_id OPERATOR(pg_catalog.=) _check_published.pipeline_id)
			 EXCEPT
			 SELECT m.column_name FROM stage.mask m
			  WHERE m.pipeline_id OPERATOR(pg_catalog.=) _check_published.pipeline_id
	LOOP
		IF c OPERATOR(pg_catalog.=) ANY (cols) THEN
			RAISE EXCEPTION 'column "%" is published: its mask stays', c
				USING ERRCODE = 'insufficient_privilege',
					  DETAIL = CASE WHEN history THEN 'The node''s history is published: the quarantine''s rows carry every column.'
									ELSE 'A published column leaves the node; raw values of a masked column never do.' END,
					  HINT = 'Replace the mask with another (stage.alter_mask), or stop publishing the column first (stage.publish with columns, or stage.unpublish).';
		END IF;
	END LOOP;
END
$$;

/* error unless the node's rows all carry the node's present name */
CREATE FUNCTION stage._check_node_name()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	other text;
BEGIN
	SELECT x.node INTO other FROM stage.pipeline x
	 WHERE x.node OPERATOR(pg_catalog.<>) stage.node_name() LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'this node is named "%", but its pipelines were made on node "%"',
			stage.node_name(), other
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'A warehouse tells nodes apart by the name their rows carry.',
				  HINT = pg_catalog.format('Set stage.node_name back to %L (postgresql.conf, or ALTER DATABASE ... SET), then reconnect.', other);
	END IF;
END
$$;

/* a publication of stage's making may be replaced; one of somebody else's not */
CREATE FUNCTION stage._own_publication(pubname text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	owner oid;
BEGIN
	SELECT x.pubowner INTO owner FROM pg_catalog.pg_publication x
	 WHERE x.pubname OPERATOR(pg_catalog.=) _own_publication.pubname;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	IF owner OPERATOR(pg_catalog.<>) (SELECT c.relowner FROM pg_catalog.pg_class c
									   WHERE c.oid OPERATOR(pg_catalog.=) 'stage.pipeline'::pg_catalog.regclass) THEN
		RAISE EXCEPTION 'publication "%" exists and was not made by stage', pubname
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop or rename it; stage names its publications stage_history and stage_<pipeline>.';
	END IF;
	RETURN true;
END
$$;

/*
 * Publish a pipeline's target (all its columns, or those named): a
 * publication stage_<pipeline> of inserts and updates.  The columns must
 * cover the target's replica identity, so that its updates can be
 * replicated (on_duplicate 'update'); without one, only inserts can, and a
 * pipeline that updates is refused.  Run again to change the columns or to
 * follow a changed target.  Returns the publication's name.
 */
CREATE FUNCTION stage.publish(pipeline text, columns text[] DEFAULT NULL)
RETURNS text
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.publish(text, text[]) IS
	'publish a pipeline''s target for a warehouse (logical replication); raw columns are refused';
CREATE FUNCTION stage._do_publish(pipeline text, columns text[])
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	pubname text := stage._publication_name(pipeline);
	all_cols text[];
	cols text[];
	ident text[];
	ri "char";
	c text;
	what text;
BEGIN
	PERFORM stage._check_node_name();
	IF pg_catalog.length(pubname) OPERATOR(pg_catalog.>) 63 THEN
		RAISE EXCEPTION 'publication name "%" is too long', pubname
			USING ERRCODE = 'name_too_long',
				  HINT = 'stage names the publication of a pipeline stage_<pipeline>: publish pipelines of at most 57 characters.';
	END IF;
	SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) INTO all_cols
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) p.target AND a.attnum OPERATOR(pg_catalog.>) 0
	   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) '';
	IF columns IS NULL THEN
		cols := all_cols;
	ELSE
		IF pg_catalog.cardinality(columns) OPERATOR(pg_catalog.=) 0 OR pg_catalog.array_position(columns, NULL) IS NOT NULL THEN
			RAISE EXCEPTION 'columns must name at least one column, and no NULL'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Leave columns out to publish every column of the target.';
		END IF;
		FOREACH c IN ARRAY columns LOOP
			IF c OPERATOR(pg_catalog.<>) ALL (all_cols) THEN
				RAISE EXCEPTION 'column "%" is not a column of %', c, p.target
					USING ERRCODE = 'undefined_column',
						  HINT = pg_catalog.format('A publication of pipeline %L publishes columns of its target: %s.',
												   pipeline, pg_catalog.array_to_string(all_cols, ', '));
			END IF;
		END LOOP;
		SELECT pg_catalog.array_agg(x ORDER BY pg_catalog.array_position(all_cols, x)) INTO cols
		  FROM (SELECT DISTINCT x FROM pg_catalog.unnest(columns) AS x) d;
	END IF;
	PERFORM stage._refuse_raw(p.pipeline_id, cols, false);

	/* the replica identity the columns must cover for updates */
	SELECT c2.relreplident INTO ri FROM pg_catalog.pg_class c2 WHERE c2.oid OPERATOR(pg_catalog.=) p.target;
	IF ri OPERATOR(pg_catalog.=) 'f' THEN
		ident := all_cols;
	ELSIF ri OPERATOR(pg_catalog.=) ANY (ARRAY['d', 'i']) THEN
		SELECT pg_catalog.array_agg(a.attname::text) INTO ident
		  FROM pg_catalog.pg_index i
		  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
									   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)
		 WHERE i.indrelid OPERATOR(pg_catalog.=) p.target
		   AND CASE WHEN ri OPERATOR(pg_catalog.=) 'd' THEN i.indisprimary ELSE i.indisreplident END;
	END IF;
	IF ident IS NULL THEN
		IF p.on_duplicate OPERATOR(pg_catalog.=) 'update' THEN
			RAISE EXCEPTION 'target % of pipeline "%" has no replica identity, and the pipeline updates rows', p.target, pipeline
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Updates of a published table without a replica identity fail, and a warehouse would miss them.',
					  HINT = 'Give the target a primary key (or ALTER TABLE ... REPLICA IDENTITY USING INDEX).';
		END IF;
		what := 'insert';
	ELSE
		FOREACH c IN ARRAY ident LOOP
			IF c OPERATOR(pg_catalog.<>) ALL (cols) THEN
				RAISE EXCEPTION 'column "%" of the replica identity of % is not published', c, p.target
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = 'Updates of the target would fail: a publication of updates must cover the replica identity.',
						  HINT = pg_catalog.format('Publish it too: columns => ARRAY[%s].',
												   pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_literal(x)
																					 FROM pg_catalog.unnest(cols || c) x), ', '));
			END IF;
		END LOOP;
		what := 'insert, update';
	END IF;

	IF NOT '_stage_node' OPERATOR(pg_catalog.=) ANY (cols) THEN
		RAISE NOTICE 'the rows of pipeline "%" carry no node name', pipeline
			USING HINT = 'On a warehouse fed by several nodes, their rows are told apart only by their keys; a _stage_node text column in the target names the node of each row.';
	ELSIF p.on_duplicate OPERATOR(pg_catalog.=) 'update'
		  AND NOT '_stage_node' OPERATOR(pg_catalog.=) ANY (COALESCE(ident, '{}')) THEN
		RAISE NOTICE 'the updates of pipeline "%" name no node in their replica identity', pipeline
			USING HINT = 'A warehouse that keys the rows of several nodes by (_stage_node, key) finds an updated row only if the target''s replica identity includes _stage_node: CREATE UNIQUE INDEX ON the target (key columns, _stage_node) and ALTER TABLE ... REPLICA IDENTITY USING INDEX it.';
	END IF;

	IF stage._own_publication(pubname) THEN
		EXECUTE pg_catalog.format('ALTER PUBLICATION %I SET TABLE %s (%s)', pubname, p.target,
			(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ') FROM pg_catalog.unnest(cols) x));
		EXECUTE pg_catalog.format('ALTER PUBLICATION %I SET (publish = %L, publish_via_partition_root = true)',
								  pubname, what);
	ELSE
		EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s (%s) WITH (publish = %L, publish_via_partition_root = true)',
			pubname, p.target,
			(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ') FROM pg_catalog.unnest(cols) x), what);
	END IF;
	RETURN pubname;
END
$$;

/*
 * Stop publishing a pipeline's target; false if it was not published.  The
 * target leaves the publication, which stays, empty: a subscription that
 * names a publication that is gone stops applying everything of its node.
 * Drop it (DROP PUBLICATION) once no subscription names it.
 */
CREATE FUNCTION stage.unpublish(pipeline text)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.unpublish(text) IS
	'take a pipeline''s target out of the publication stage.publish made for it';
CREATE FUNCTION stage._do_unpublish(pipeline text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF NOT stage._own_publication(stage._publication_name(pipeline)) THEN
		RETURN false;
	END IF;
	RETURN stage._unpublish_target(p);
END
$$;

/* the target out of its publication, if it is in it (drop_pipeline too) */
CREATE FUNCTION stage._unpublish_target(p stage.pipeline)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pub text := stage._publication_name(p.name);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r
					 JOIN pg_catalog.pg_publication x ON x.oid OPERATOR(pg_catalog.=) r.prpubid
					WHERE x.pubname OPERATOR(pg_catalog.=) pub
					  AND r.prrelid OPERATOR(pg_catalog.=) p.target
					  AND x.pubowner OPERATOR(pg_catalog.=) (SELECT c.relowner FROM pg_catalog.pg_class c
															  WHERE c.oid OPERATOR(pg_catalog.=) 'stage.pipeline'::pg_catalog.regclass)) THEN
		RETURN false;
	END IF;
	EXECUTE pg_catalog.format('ALTER PUBLICATION %I DROP TABLE %s', pub, p.target);
	RETURN true;
END
$$;

/*
 * Publish the node's history (stage_history): pipelines, batches, rule and
 * transform counts, quarantine (masked) and duplicates, inserts and
 * updates, without the raw and error columns.  Every pipeline of the node
 * is in it: a superuser's decision.  Returns the publication's name.
 */
CREATE FUNCTION stage.publish_history()
RETURNS text
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.publish_history() IS
	'publish the node''s batch, quarantine and duplicate history for a warehouse (superusers)';
CREATE FUNCTION stage._do_publish_history()
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	tables text := 'stage.pipeline (pipeline_id, name, target, landing, format, key, on_duplicate, enabled, '
		'contract_version, owner, created_at, lanes, node), '
		'stage.batch (batch_id, pipeline_id, contract_version, status, kind, win_lo, win_hi, from_txid, '
		'from_id, to_txid, to_id, first_id, rows_in, rows_clean, rows_quarantined, rows_duplicate, '
		'rows_warned, rows_drift, latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_max_ms, '
		'started_at, finished_at, sqlstate, backend_pid, run_by, lane, lanes, node), '
		'stage.batch_rule_stat, stage.batch_transform_stat, '
		'stage.quarantine_log (pipeline_id, landing_id, batch_id, contract_version, source, received_at, '
		'row_data, reasons, quarantined_at, status, successor_id, closed_at, closed_by, closed_batch_id, '
		'note, role, node), '
		'stage.duplicate_log';
BEGIN
	IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) stage._caller()) THEN
		RAISE EXCEPTION 'permission denied to publish the history of this node'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'The history of every pipeline of the node leaves it.',
				  HINT = 'A superuser runs stage.publish_history().';
	END IF;
	PERFORM stage._check_node_name();
	FOR p IN SELECT x.pipeline_id,
					(SELECT pg_catalog.array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
					  WHERE a.attrelid OPERATOR(pg_catalog.=) x.target AND a.attnum OPERATOR(pg_catalog.>) 0
						AND NOT a.attisdropped) AS all_cols
			   FROM stage.pipeline x ORDER BY x.pipeline_id LOOP
		PERFORM stage._refuse_raw(p.pipeline_id, p.all_cols, true);
	END LOOP;
	/*
	 * The stored row of an item quarantined before one of the pipeline's
	 * present masks shows that column as it was then (stage.quarantine
	 * masks it again at read time; a subscriber copies what is stored).
	 */
	FOR p IN SELECT x.name, pg_catalog.count(DISTINCT q.landing_id) AS items, pg_catalog.min(m.column_name) AS col
			   FROM stage.quarantine_log q
			   JOIN stage.pipeline x ON x.pipeline_id OPERATOR(pg_catalog.=) q.pipeline_id
			   JOIN stage.contract_history h ON h.pipeline_id OPERATOR(pg_catalog.=) q.pipeline_id
											AND h.version OPERATOR(pg_catalog.=) q.contract_version
			   JOIN stage.mask m ON m.pipeline_id OPERATOR(pg_catalog.=) q.pipeline_id
			  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(h.contract OPERATOR(pg_catalog.->) 'masks') k
								 WHERE k OPERATOR(pg_catalog.->>) 'column' OPERATOR(pg_catalog.=) m.column_name
								   AND k OPERATOR(pg_catalog.->>) 'method' OPERATOR(pg_catalog.=) m.method
								   AND k OPERATOR(pg_catalog.->) 'args' OPERATOR(pg_catalog.=) m.args)
			  GROUP BY x.name ORDER BY x.name LIMIT 1 LOOP
		RAISE EXCEPTION 'quarantine items of pipeline "%" were stored before its present masks', p.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('Their stored rows (%s) show column %I as it was masked then (or not at all); the warehouse would copy them so.', p.items, p.col),
				  HINT = 'Replay, repair or dismiss them; stage.purge() removes closed items older than the pipeline''s history retention (stage.set_retention).';
	END LOOP;
	IF stage._own_publication('stage_history') THEN
		EXECUTE 'ALTER PUBLICATION stage_history SET TABLE ' OPERATOR(pg_catalog.||) tables;
	ELSE
		EXECUTE 'CREATE PUBLICATION stage_history FOR TABLE ' OPERATOR(pg_catalog.||) tables
			OPERATOR(pg_catalog.||) ' WITH (publish = ''insert, update'')';
	END IF;
	RETURN 'stage_history';
END
$$;
