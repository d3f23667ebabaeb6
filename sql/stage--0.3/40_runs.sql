/* --------------------------------------------------------------- runs */

CREATE FUNCTION stage.run_batch(pipeline text, max_rows integer DEFAULT NULL)
RETURNS TABLE(batch_id bigint, rows_in bigint, rows_clean bigint,
			  rows_quarantined bigint, rows_duplicate bigint, status text)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_run_batch';
COMMENT ON FUNCTION stage.run_batch(text, integer) IS
	'moves the next chunk of committed landing rows to the target or to quarantine, exactly once';

CREATE FUNCTION stage.run_all()
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.run_all() IS 'runs batches for every enabled pipeline the caller owns until none has pending rows; returns rows processed';
CREATE FUNCTION stage._do_run_all()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint := 0;
	p record;
	r record;
	msg text;
	state text;
BEGIN
	/* held pipelines whose contract changed since are taken again */
	FOR p IN SELECT x.pipeline_id, x.name FROM stage.pipeline x
			  WHERE (x.enabled OR x.held_version OPERATOR(pg_catalog.<>) x.contract_version)
				AND (x.retry_at IS NULL OR x.retry_at OPERATOR(pg_catalog.<=) pg_catalog.now())
				AND stage._owns(x.owner)
			  ORDER BY x.pipeline_id
	LOOP
		LOOP
			/* one failing pipeline must not stop the others */
			BEGIN
				SELECT * INTO r FROM stage.run_batch(p.name);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
				/* back off and, after stage.max_failures, pause: as the worker does */
				IF stage._record_failure(p.pipeline_id, msg, state,
						COALESCE(pg_catalog.current_setting('stage.max_failures', true), '5')::integer,
						stage._caller()::text) THEN
					/* the text may quote a masked value: owners read it in stage.batches */
					msg := stage._withheld(state);
				END IF;
				RAISE WARNING 'stage: batch of pipeline "%" failed: %', p.name, msg
					USING ERRCODE = state;
				EXIT;
			END;
			EXIT WHEN r.batch_id IS NULL OR r.rows_in OPERATOR(pg_catalog.=) 0;
			IF r.status OPERATOR(pg_catalog.=) 'done' THEN
				n := n OPERATOR(pg_catalog.+) r.rows_in;
				/* a success ends a series of failures */
				UPDATE stage.pipeline x SET failures = 0, retry_at = NULL
				 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				   AND x.failures OPERATOR(pg_catalog.>) 0;
			END IF;
			EXIT WHEN r.status OPERATOR(pg_catalog.<>) 'done';
		END LOOP;
	END LOOP;
	RETURN n;
END
$$;

/*
 * A failed batch, recorded in the caller's (sub)transaction by run_all and
 * in a fresh one by the worker: a batch row with the error, one more
 * failure, a back-off of 2^failures seconds (at most 5 minutes) and, after
 * max_failures in a row, a pause with the reason.  Returns whether the
 * pipeline masks columns: then the error's text may quote a masked value
 * and is not repeated where others see it (reason.c).
 */
CREATE FUNCTION stage._record_failure(pipeline_id integer, message text, sqlstate text,
									  max_failures integer, run_by name)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	failed_batch bigint;
BEGIN
	/* inserted, then finished: the update counts it (stage._count_batch) */
	WITH b AS (
		INSERT INTO stage.batch (pipeline_id, contract_version, status, started_at, error, sqlstate,
								 run_by)
		SELECT x.pipeline_id, x.contract_version, 'failed', pg_catalog.clock_timestamp(),
			   _record_failure.message, _record_failure.sqlstate, _record_failure.run_by
		  FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id
		RETURNING batch_id)
	SELECT b.batch_id INTO failed_batch FROM b;
	UPDATE stage.batch x SET finished_at = pg_catalog.clock_timestamp()
	 WHERE x.batch_id OPERATOR(pg_catalog.=) failed_batch;
	UPDATE stage.pipeline x
	   SET failures = x.failures OPERATOR(pg_catalog.+) 1,
		   retry_at = pg_catalog.now() OPERATOR(pg_catalog.+)
			   pg_catalog.make_interval(secs => LEAST(300, 2 OPERATOR(pg_catalog.^) x.failures)),
		   enabled = (x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.<) max_failures),
		   paused_reason = CASE
			   WHEN x.failures OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) max_failures
			   THEN pg_catalog.format('paused after %s consecutive failed batches; last: %s (SQLSTATE %s)',
									  x.failures OPERATOR(pg_catalog.+) 1, message, sqlstate)
			   ELSE x.paused_reason END
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id;
	RETURN EXISTS (SELECT 1 FROM stage.mask m
					WHERE m.pipeline_id OPERATOR(pg_catalog.=) _record_failure.pipeline_id);
END
$$;

/*
 * Where a landing row went: target, quarantine or duplicate, with its
 * quarantine item's status; a row replayed out of quarantine adds the
 * replay batch, an item repaired or superseded adds the row that closed it
 * (landing_row), and so on down the chain; a row no batch has taken yet is
 * pending.  role: the role that landed the row (_stage_role; for a repair
 * copy, the role that repaired).  columns: what the current contract's
 * transforms make of the row's values (for each column they change,
 * {"landed", "value"}).
 */
CREATE FUNCTION stage.trace(pipeline text, landing_id bigint)
RETURNS TABLE(landing_row bigint, batch_id bigint, outcome text, status text, source text,
			  role name, received_at timestamptz, contract_version integer, target regclass,
			  columns jsonb, note text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_trace(pipeline text, landing_id bigint)
RETURNS TABLE(landing_row bigint, batch_id bigint, outcome text, status text, source text,
			  role name, received_at timestamptz, contract_version integer, target regclass,
			  columns jsonb, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	cur bigint := _do_trace.landing_id;
	steps integer := 0;
	l record;
	q record;
	cols jsonb;
	found_batch boolean;
	transforms boolean := EXISTS (SELECT 1 FROM stage.transform t
								   WHERE t.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id);
BEGIN
	/* a chain is as long as the repairs and supersessions made it; bounded all the same */
	WHILE cur IS NOT NULL AND steps OPERATOR(pg_catalog.<) 1000 LOOP
		steps := steps OPERATOR(pg_catalog.+) 1;
		EXECUTE pg_catalog.format(
			'SELECT l._stage_txid, l._stage_source, l._stage_role::pg_catalog.name AS role,
					l._stage_received_at, %s AS key,
					%s AS row_data FROM %s l
			  WHERE l._stage_id OPERATOR(pg_catalog.=) $1',
			stage._lane_key_sql(p),
			CASE WHEN p.format OPERATOR(pg_catalog.=) 'jsonb' THEN 'l.payload'
				 ELSE 'pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.-) ARRAY[''_stage_id'', ''_stage_txid'','
					  ' ''_stage_source'', ''_stage_received_at'', ''_stage_role'']' END,
			p.landing)
		INTO l USING cur;
		IF l IS NULL THEN
			RETURN;
		END IF;
		cols := NULL;
		IF transforms AND pg_catalog.jsonb_typeof(l.row_data) OPERATOR(pg_catalog.=) 'object' THEN
			cols := stage.preview(pipeline, l.row_data) OPERATOR(pg_catalog.->) 'transformed';
		END IF;
		q := NULL;
		SELECT x.status, x.successor_id, x.closed_batch_id, x.note INTO q
		  FROM stage.quarantine_log x
		 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND x.landing_id OPERATOR(pg_catalog.=) cur;
		found_batch := false;
		FOR landing_row, batch_id, outcome, status, source, role, received_at, contract_version,
			target, columns, note IN
			SELECT cur, b.batch_id,
				   CASE WHEN q.status IS NOT NULL THEN 'quarantine'
						WHEN EXISTS (SELECT 1 FROM stage.duplicate_log d
									  WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
										AND d.landing_id OPERATOR(pg_catalog.=) cur) THEN 'duplicate'
						ELSE 'target' END,
				   q.status, l._stage_source, l.role, l._stage_received_at, b.contract_version, p.target,
				   COALESCE(cols, '{}'), q.note
			  FROM stage.batch b
			 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND b.status OPERATOR(pg_catalog.=) 'done' AND b.kind OPERATOR(pg_catalog.=) 'batch'
			   AND pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_hi)
			   AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, b.win_lo)
			   AND ROW(l._stage_txid, cur) OPERATOR(pg_catalog.>) ROW(b.from_txid, b.from_id)
			   AND ROW(l._stage_txid, cur) OPERATOR(pg_catalog.<=) ROW(b.to_txid, b.to_id)
			   /* a window worked in lanes: the batch of the row's lane */
			   AND (b.lane IS NULL
					OR b.lane OPERATOR(pg_catalog.=) stage._lane(b.lanes, l.key, cur))
		LOOP
			found_batch := true;
			RETURN NEXT;
		END LOOP;
		IF NOT found_batch THEN
			/* landed, not yet taken by a batch */
			RETURN QUERY SELECT cur, NULL::bigint, 'pending'::text, NULL::text, l._stage_source,
								l.role, l._stage_received_at, NULL::integer, p.target,
								COALESCE(cols, '{}'), NULL::text;
			RETURN;
		END IF;
		IF q.status OPERATOR(pg_catalog.=) 'replayed' THEN
			/* the row itself left quarantine in a replay */
			RETURN QUERY
			SELECT cur, b.batch_id,
				   CASE WHEN EXISTS (SELECT 1 FROM stage.duplicate_log d
									  WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
										AND d.landing_id OPERATOR(pg_catalog.=) cur) THEN 'duplicate'
						ELSE 'target' END,
				   NULL::text, l._stage_source, l.role, l._stage_received_at, b.contract_version, p.target,
				   COALESCE(cols, '{}'), NULL::text
			  FROM stage.batch b
			 WHERE b.batch_id OPERATOR(pg_catalog.=) q.closed_batch_id;
			RETURN;
		END IF;
		/* a repair copy (pending or loaded) or the row that superseded it */
		cur := CASE WHEN q.status OPERATOR(pg_catalog.=) ANY (ARRAY['open', 'repaired', 'superseded'])
					THEN q.successor_id END;
	END LOOP;
END
$$;

/*
 * Who landed what: the landing rows of a pipeline by source and role
 * (_stage_role, set by its default only), with their count and first and
 * last arrival.  A scan of the landing table.  For the roles that may see
 * the pipeline's outcomes (owners, stage_analyst), as stage.trace and the
 * views are; stage.sources shows it for every pipeline the caller may see.
 */
CREATE FUNCTION stage.landing_sources(pipeline text)
RETURNS TABLE(source text, role name, rows bigint, first_received_at timestamptz,
			  last_received_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_landing_sources(pipeline text)
RETURNS TABLE(source text, role name, rows bigint, first_received_at timestamptz,
			  last_received_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline);
BEGIN
	IF NOT stage._may_see(p.owner) THEN
		RAISE EXCEPTION 'permission denied for pipeline "%"', pipeline
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'stage.landing_sources is for the pipeline''s owners and members of stage_analyst.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT l._stage_source, l._stage_role::pg_catalog.name, pg_catalog.count(*),
				pg_catalog.min(l._stage_received_at), pg_catalog.max(l._stage_received_at)
		   FROM %s l GROUP BY 1, 2 ORDER BY 1, 2', p.landing);
END
$$;

/* ------------------------------------------------- replay and retention */

CREATE FUNCTION stage._replay(pipeline text, ids bigint[], dry_run boolean)
RETURNS TABLE(landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_replay_rows';

/*
 * Run quarantined rows through the current contract again (after a fix):
 * all of a pipeline's, or those with the given landing ids, of a batch, or
 * failing a rule.  Returns one row per replayed landing row and where it
 * went; dry_run only reports.
 */
CREATE FUNCTION stage.replay(pipeline text, ids bigint[] DEFAULT NULL,
							 batch_id bigint DEFAULT NULL, rule_name text DEFAULT NULL,
							 dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_replay(pipeline text, ids bigint[],
							 batch_id bigint, rule_name text,
							 dry_run boolean)
RETURNS TABLE(landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	todo bigint[];
BEGIN
	SELECT pg_catalog.array_agg(q.landing_id ORDER BY q.landing_id) INTO todo
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.status OPERATOR(pg_catalog.=) 'open'
	   AND (_do_replay.ids IS NULL OR q.landing_id OPERATOR(pg_catalog.=) ANY (_do_replay.ids))
	   AND (_do_replay.batch_id IS NULL OR q.batch_id OPERATOR(pg_catalog.=) _do_replay.batch_id)
	   AND (_do_replay.rule_name IS NULL
			OR q.reasons OPERATOR(pg_catalog.@>)
			   pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('rule', _do_replay.rule_name)));
	IF todo IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT * FROM stage._replay(pipeline, todo, COALESCE(dry_run, false));
END
$$;

/* ------------------------------------------ the quarantine's lifecycle */

/*
 * Repair bad data without touching landing: each open item's row as it
 * landed, with the corrections (column -> value) applied, lands again as a
 * new landing row (same source); the item keeps it as its successor and is
 * repaired when that copy moves clean (the next batch).  Returns per item
 * the copy's landing id and what the current contract says of it (the
 * target's own constraints aside); dry_run lands nothing.
 */
CREATE FUNCTION stage.repair(pipeline text, landing_ids bigint[], corrections jsonb,
							 note text DEFAULT NULL, dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_repair(pipeline text, landing_ids bigint[], corrections jsonb,
								 note text, dry_run boolean)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	landing_cols text[];
	bad text;
	fix jsonb;
	q record;
	fixed jsonb;
	copy_id bigint;
	why jsonb;
BEGIN
	IF landing_ids IS NULL OR corrections IS NULL THEN
		RAISE EXCEPTION 'landing_ids and corrections must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'For example stage.repair(''orders'', ARRAY[17], ''{"amount": "19.90"}'', ''typo fixed with the partner'').';
	END IF;
	IF pg_catalog.jsonb_typeof(corrections) OPERATOR(pg_catalog.<>) 'object'
	   OR corrections OPERATOR(pg_catalog.=) '{}'::jsonb THEN
		RAISE EXCEPTION 'corrections must be a JSON object of column names and values'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''{"amount": "19.90", "currency": "EUR"}''; a JSON null makes the value NULL.';
	END IF;
	/* values as landing text: strings as they are, other scalars as their JSON text */
	SELECT pg_catalog.jsonb_object_agg(e.key,
			CASE pg_catalog.jsonb_typeof(e.value)
				 WHEN 'null' THEN 'null'::jsonb
				 WHEN 'string' THEN e.value
				 ELSE pg_catalog.to_jsonb(e.value #>> '{}') END)
	  INTO fix FROM pg_catalog.jsonb_each(corrections) e;
	IF p.format OPERATOR(pg_catalog.=) 'columns' THEN
		SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) INTO landing_cols
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid OPERATOR(pg_catalog.=) p.landing AND a.attnum OPERATOR(pg_catalog.>) 0
		   AND NOT a.attisdropped AND a.attname::text OPERATOR(pg_catalog.!~~) '\_stage\_%';
		SELECT k INTO bad FROM pg_catalog.jsonb_object_keys(fix) k
		 WHERE k OPERATOR(pg_catalog.<>) ALL (landing_cols) LIMIT 1;
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION 'column "%" is not a column of the landing table of pipeline "%"', bad, pipeline
				USING ERRCODE = 'undefined_column',
					  HINT = pg_catalog.format('Its columns are %s.', pg_catalog.array_to_string(landing_cols, ', '));
		END IF;
		SELECT e.key INTO bad FROM pg_catalog.jsonb_each(corrections) e
		 WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) ANY (ARRAY['object', 'array'])
		 LIMIT 1;
	ELSE
		fix := corrections;		/* a payload takes any JSON value */
	END IF;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'the correction of column "%" is not a scalar', bad
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A landing column holds text: give a string, a number, a boolean or null.';
	END IF;

	FOR q IN SELECT x.landing_id, x.source, x.raw_data, x.raw_payload
			   FROM stage.quarantine_log x
			  WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND x.landing_id OPERATOR(pg_catalog.=) ANY (_do_repair.landing_ids)
				AND x.status OPERATOR(pg_catalog.=) 'open'
			  ORDER BY x.landing_id
			  FOR UPDATE
	LOOP
		IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
			fixed := CASE WHEN pg_catalog.jsonb_typeof(q.raw_payload) OPERATOR(pg_catalog.=) 'object'
						  THEN q.raw_payload OPERATOR(pg_catalog.||) fix ELSE fix END;
		ELSE
			fixed := q.raw_data OPERATOR(pg_catalog.||) fix;
		END IF;
		why := stage.check_row(pipeline, fixed);
		copy_id := NULL;
		IF NOT COALESCE(dry_run, false) THEN
			IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
				EXECUTE pg_catalog.format(
					'INSERT INTO %s (payload, _stage_source, _stage_role) VALUES ($1, $2, $3) RETURNING _stage_id',
					p.landing)
				INTO copy_id USING fixed, q.source, stage._caller()::pg_catalog.text;
			ELSE
				EXECUTE pg_catalog.format(
					'INSERT INTO %1$s (%2$s, _stage_source, _stage_role)
					 SELECT %3$s, $2, $3 FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) r
					 RETURNING _stage_id',
					p.landing,
					(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(landing_cols) c),
					(SELECT pg_catalog.string_agg('r.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c), ', ')
					   FROM pg_catalog.unnest(landing_cols) c))
				INTO copy_id USING fixed, q.source, stage._caller()::pg_catalog.text;
			END IF;
			UPDATE stage.quarantine_log x
			   SET successor_id = copy_id,
				   note = COALESCE(_do_repair.note, x.note)
			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND x.landing_id OPERATOR(pg_catalog.=) q.landing_id;
		END IF;
		RETURN QUERY SELECT q.landing_id, copy_id,
							CASE WHEN why OPERATOR(pg_catalog.=) '[]'::jsonb THEN 'clean'
								 ELSE 'quarantine' END,
							why;
	END LOOP;
END
$$;

CREATE FUNCTION stage._repair_values(pipeline text, ids bigint[], expr text)
RETURNS TABLE(landing_id bigint, value text)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_repair_values';

/*
 * Bulk repair: the open items failing a rule, each corrected by SQL
 * expressions over its row as it landed (fix: column -> expression, the
 * row's columns as text), evaluated as the pipeline owner with the
 * isolation of expression rules; then as stage.repair.
 */
CREATE FUNCTION stage.repair_where(pipeline text, rule_name text, fix jsonb,
								   note text DEFAULT NULL, dry_run boolean DEFAULT false)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_repair_where(pipeline text, rule_name text, fix jsonb,
									   note text, dry_run boolean)
RETURNS TABLE(landing_id bigint, repair_landing_id bigint, outcome text, reasons jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	ids bigint[];
	f record;
	v record;
	acc jsonb := '{}';
	id bigint;
BEGIN
	IF rule_name IS NULL OR fix IS NULL THEN
		RAISE EXCEPTION 'rule_name and fix must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'For example stage.repair_where(''orders'', ''amount_type'', ''{"amount": "replace(amount, ,, .)"}'', ''decimal commas'').';
	END IF;
	IF pg_catalog.jsonb_typeof(fix) OPERATOR(pg_catalog.<>) 'object' OR fix OPERATOR(pg_catalog.=) '{}'::jsonb
	   OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(fix) e
				   WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.<>) 'string') THEN
		RAISE EXCEPTION 'fix must be a JSON object of column names and SQL expressions'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Each expression reads the row''s columns as text, e.g. {"amount": "replace(amount, '','', ''.'')"}.';
	END IF;
	IF p.format OPERATOR(pg_catalog.=) 'jsonb' THEN
		RAISE EXCEPTION 'repair_where needs a pipeline of format columns'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Correct the payloads of a jsonb pipeline with stage.repair.';
	END IF;
	SELECT pg_catalog.array_agg(q.landing_id ORDER BY q.landing_id) INTO ids
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.status OPERATOR(pg_catalog.=) 'open'
	   AND q.reasons OPERATOR(pg_catalog.@>)
		   pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('rule', _do_repair_where.rule_name));
	IF ids IS NULL THEN
		RETURN;
	END IF;
	FOR f IN SELECT e.key, e.value FROM pg_catalog.jsonb_each_text(fix) e ORDER BY e.key LOOP
		FOR v IN SELECT * FROM stage._repair_values(pipeline, ids, f.value) LOOP
			acc := acc OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(v.landing_id::text,
				COALESCE(acc OPERATOR(pg_catalog.->) v.landing_id::text, '{}'::jsonb)
				OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(f.key, v.value));
		END LOOP;
	END LOOP;
	FOREACH id IN ARRAY ids LOOP
		RETURN QUERY SELECT * FROM stage._do_repair(pipeline, ARRAY[id],
			acc OPERATOR(pg_catalog.->) id::text, note, dry_run);
	END LOOP;
END
$$;

/* close open items for good: rows that should never load; returns how many */
CREATE FUNCTION stage.dismiss(pipeline text, landing_ids bigint[], note text)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_dismiss(pipeline text, landing_ids bigint[], note text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
	n bigint;
	pending record;
BEGIN
	IF landing_ids IS NULL OR note IS NULL OR pg_catalog.btrim(note, E' \t\n\r\f\v') OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'landing_ids and a note must be given'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Say why the rows must never load, for example stage.dismiss(''orders'', ARRAY[17], ''test order from the partner'').';
	END IF;
	/* a repair copy still on its way would load all the same: not while it is pending */
	SELECT q.landing_id, q.successor_id INTO pending
	  FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) ANY (_do_dismiss.landing_ids)
	   AND q.status OPERATOR(pg_catalog.=) 'open' AND q.successor_id IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log c
					    WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND c.landing_id OPERATOR(pg_catalog.=) q.successor_id)
	   AND NOT EXISTS (SELECT 1 FROM stage.duplicate_log d
					    WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
						  AND d.landing_id OPERATOR(pg_catalog.=) q.successor_id)
	 ORDER BY q.landing_id LIMIT 1;
	IF pending.landing_id IS NOT NULL THEN
		RAISE EXCEPTION 'item % of pipeline "%" has a repair copy that has not moved yet (landing row %)',
			pending.landing_id, pipeline, pending.successor_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Run a batch first (stage.run_batch): the copy then repairs the item or is quarantined itself; dismiss what is still open after that.';
	END IF;
	UPDATE stage.quarantine_log q
	   SET status = 'dismissed', closed_at = pg_catalog.now(),
		   closed_by = stage._caller()::text, note = _do_dismiss.note
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) ANY (_do_dismiss.landing_ids)
	   AND q.status OPERATOR(pg_catalog.=) 'open';
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n OPERATOR(pg_catalog.<) (SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i) THEN
		RAISE NOTICE 'landing ids that are no open quarantine item of pipeline "%", left as they are: % of %',
			pipeline,
			(SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i) OPERATOR(pg_catalog.-) n,
			(SELECT pg_catalog.count(DISTINCT i) FROM pg_catalog.unnest(landing_ids) i);
	END IF;
	RETURN n;
END
$$;

/*
 * Retention: delete landing rows older than their pipeline's retention
 * whose batch is finished, for one pipeline or every pipeline the caller
 * owns.  Returns the number of rows deleted.
 */
CREATE FUNCTION stage.purge(pipeline text DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_purge(pipeline text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint := 0;
	p record;
BEGIN
	IF pipeline IS NOT NULL THEN
		PERFORM stage._pipeline(pipeline, true);
	END IF;
	FOR p IN SELECT x.pipeline_id FROM stage.pipeline x
			  WHERE (_do_purge.pipeline IS NULL OR x.name OPERATOR(pg_catalog.=) _do_purge.pipeline)
				AND stage._owns(x.owner)
			  ORDER BY x.pipeline_id
	LOOP
		/* the newest arrival outlives the rows it was read from (stage_last_arrival_timestamp_seconds) */
		INSERT INTO stage.counter AS c (pipeline_id, metric, labels, value)
		SELECT x.pipeline_id, 'stage_last_arrival_timestamp_seconds', '{}',
			   EXTRACT(epoch FROM stage._last_arrival(x))
		  FROM stage.pipeline x
		 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND stage._last_arrival(x) IS NOT NULL
		ON CONFLICT ON CONSTRAINT counter_pkey
		DO UPDATE SET value = GREATEST(c.value, EXCLUDED.value);
		n := n OPERATOR(pg_catalog.+) stage._purge_landing(p.pipeline_id);
		/* batch history and closed quarantine items (a slice); open items never expire */
		PERFORM stage._purge_history(p.pipeline_id);
	END LOOP;
	RETURN n;
END
$$;

/*
 * The retention of a pipeline's landing rows (stage._purge_landing) and of
 * its history (stage._purge_history); NULL leaves one as it is.
 */
CREATE FUNCTION stage.set_retention(pipeline text, retention interval DEFAULT NULL,
									history_retention interval DEFAULT NULL,
									partition_interval interval DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_retention(pipeline text, retention interval,
										history_retention interval, partition_interval interval)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF retention IS NULL AND history_retention IS NULL AND partition_interval IS NULL THEN
		RAISE EXCEPTION 'retention, history_retention or partition_interval must be given'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'For example stage.set_retention(''orders'', ''7 days'') for landing rows, stage.set_retention(''orders'', history_retention => ''90 days'') for the history.';
	END IF;
	IF retention OPERATOR(pg_catalog.<) '0'::interval THEN
		RAISE EXCEPTION 'retention must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_retention(''orders'', ''30 days'').';
	END IF;
	IF history_retention OPERATOR(pg_catalog.<) '0'::interval THEN
		RAISE EXCEPTION 'history_retention must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_retention(''orders'', history_retention => ''90 days'').';
	END IF;
	IF partition_interval OPERATOR(pg_catalog.<>) '0'::interval
	   AND (partition_interval OPERATOR(pg_catalog.<) '1 second'::interval
			OR partition_interval OPERATOR(pg_catalog.>) '7 days'::interval) THEN
		RAISE EXCEPTION 'partition_interval must be between 1 second and 7 days, or 0 for a quarter of the retention'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example stage.set_retention(''orders'', partition_interval => ''1 hour'').';
	END IF;
	UPDATE stage.pipeline x
	   SET retention = COALESCE(_do_set_retention.retention, x.retention),
		   history_retention = COALESCE(_do_set_retention.history_retention, x.history_retention),
		   partition_interval = CASE WHEN _do_set_retention.partition_interval IS NULL THEN x.partition_interval
									 WHEN _do_set_retention.partition_interval OPERATOR(pg_catalog.=) '0'::interval THEN NULL
									 ELSE _do_set_retention.partition_interval END
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

/* how many movers may work one window of the pipeline at once */
CREATE FUNCTION stage.set_lanes(pipeline text, lanes integer)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_set_lanes(pipeline text, lanes integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline := stage._pipeline(pipeline, true);
BEGIN
	IF lanes IS NULL OR lanes OPERATOR(pg_catalog.<) 1 OR lanes OPERATOR(pg_catalog.>) 64 THEN
		RAISE EXCEPTION 'lanes must be between 1 and 64'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'One lane per mover that should work the pipeline at once, for example stage.set_lanes(''orders'', 2).';
	END IF;
	/* the open window keeps its lanes; the next one has these */
	UPDATE stage.pipeline x SET lanes = _do_set_lanes.lanes
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
END
$$;

/* rows of a pipeline's landing table not yet taken by a batch */
CREATE FUNCTION stage.backlog(pipeline text)
RETURNS bigint
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
CREATE FUNCTION stage._do_backlog(pipeline text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (SELECT x.pending_rows FROM stage._pending(stage._pipeline(pipeline, true)) x);
END
$$;

/*
 * A pipeline's landing rows not yet taken by a batch: how many, and when
 * the oldest of them arrived (NULL: none).  No check of the caller: for
 * the gates that made theirs.
 */
CREATE FUNCTION stage._pending(p stage.pipeline, OUT pending_rows bigint, OUT oldest timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF p.win_hi IS NOT NULL AND p.win_lanes OPERATOR(pg_catalog.>) 1 THEN
		/* a window worked in lanes: a row is taken when its lane has passed it */
		EXECUTE pg_catalog.format(
			'SELECT pg_catalog.count(*), pg_catalog.min(l._stage_received_at) FROM %s l
			  WHERE l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)
				AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $1)
				AND (NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2)
					 OR NOT EXISTS (
						SELECT 1 FROM stage.lane x
						 WHERE x.pipeline_id OPERATOR(pg_catalog.=) $3
						   AND x.lane OPERATOR(pg_catalog.=) stage._lane($4, %s, l._stage_id)
						   AND (x.done OR ROW(l._stage_txid, l._stage_id)
										  OPERATOR(pg_catalog.<=) ROW(x.cur_txid, x.cur_id))))',
			p.landing, stage._lane_key_sql(p))
		INTO pending_rows, oldest USING p.win_lo, p.win_hi, p.pipeline_id, p.win_lanes;
		RETURN;
	END IF;
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*), pg_catalog.min(l._stage_received_at) FROM %s l
		  WHERE l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($1)
			AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $1)
			AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2)
				 OR ROW(l._stage_txid, l._stage_id) OPERATOR(pg_catalog.>) ROW($3, $4))',
		p.landing)
	INTO pending_rows, oldest USING p.win_lo, p.win_hi, p.cur_txid, p.cur_id;
END
$$;
