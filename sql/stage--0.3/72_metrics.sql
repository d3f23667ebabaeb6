/* ------------------------------------------------ Prometheus metrics */

/*
 * Counters in the Prometheus idiom (docs/observability.md): running
 * totals in stage.counter, added to in the transaction that finishes a
 * batch or changes a quarantine item, by triggers on stage.batch and
 * stage.quarantine_log, so that every path (mover, replay, failure record,
 * repair, dismiss, purge) counts and nothing is counted twice.  A scrape
 * reads the table; its cost does not grow with the history.
 *
 * Metrics (labels besides pipeline):
 *   stage_rows_total{outcome}            landing rows taken by done batches:
 *                                        outcome taken, clean, quarantined,
 *                                        duplicate, warned (clean rows with a
 *                                        warning), drift
 *   stage_replayed_rows_total{outcome}   rows of replays: taken, clean,
 *                                        quarantined, duplicate
 *   stage_batches_total{kind,status}     finished batches: kind batch or
 *                                        replay, status done, held, failed
 *   stage_rule_failures_total{rule,severity}  values a rule failed in done batches
 *   stage_quarantined_total{rule,kind}   the reasons of the rows quarantined
 *                                        (rules, type checks, the target's
 *                                        constraints, transforms: a row with
 *                                        two reasons counts for each)
 *   stage_transform_applied_total{transform}, ..._changed_total,
 *   ..._nulled_total, ..._failed_total   the transforms' counts
 *   stage_dlq_closed_total{how}          quarantine items closed: repaired,
 *                                        replayed, superseded, dismissed
 *   stage_handoff_latency_seconds        histogram: every row, landing to
 *                                        target, of done batches
 *   stage_batch_duration_seconds         histogram: every finished batch
 *   stage_history_purged_total{table}    history rows retention deleted
 *   stage_landing_purged_rows_total      landing rows retention dropped (partitions)
 *                                        (42_retention.sql)
 *   stage_backpressure_rejections_total, _waits_total, _wait_seconds_total
 *                                        producer statements refused or held
 *                                        by backpressure: in shared memory,
 *                                        not stage.counter (a refused
 *                                        statement's transaction aborts), so
 *                                        from zero when the server starts
 * and gauges kept the same way: stage_dlq_items{status} (items kept, by
 * status), stage_last_batch_timestamp_seconds.
 */

/* the upper bounds of the histograms' buckets, seconds (+Inf after the last) */
CREATE FUNCTION stage._latency_bounds()
RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '{0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300,900,1800,3600}'::double precision[] $$;

/*
 * The shard a transaction adds to: the lane of the batch it runs (movers
 * of a pipeline's lanes run at once; its other batches take turns), or,
 * outside a batch (stage.dismiss, stage.repair, stage.purge), one of
 * sixteen by backend.
 */
CREATE FUNCTION stage._shard(batch_id bigint)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE((SELECT COALESCE(b.lane, 0) FROM stage.batch b
				  WHERE b.batch_id OPERATOR(pg_catalog.=) _shard.batch_id),
				1000 OPERATOR(pg_catalog.+) pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.%) 16)
$$;

/* add to counters: (metric, labels, value) rows, in one statement, locks in one order */
CREATE FUNCTION stage._count(pipeline_id integer, deltas jsonb, shard integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.counter AS c (pipeline_id, metric, labels, value, shard)
	SELECT _count.pipeline_id, d OPERATOR(pg_catalog.->>) 0, d OPERATOR(pg_catalog.->) 1,
		   pg_catalog.sum((d OPERATOR(pg_catalog.->>) 2)::double precision), _count.shard
	  FROM pg_catalog.jsonb_array_elements(deltas) d
	 WHERE (d OPERATOR(pg_catalog.->>) 2)::double precision OPERATOR(pg_catalog.<>) 0
	 GROUP BY 1, 2, 3
	 ORDER BY 2, 3
	ON CONFLICT ON CONSTRAINT counter_pkey
	DO UPDATE SET value = c.value OPERATOR(pg_catalog.+) EXCLUDED.value;
END
$$;

/*
 * A batch finished.  A batch row is updated once in its life, when it
 * finishes: the mover's last statement of a batch (mover_advance) or of a
 * hold (mover_hold), a replay's (replay.c), a failure's record
 * (stage._record_failure inserts it, then finishes it the same way).
 * Inserts alone never count: a restore that inserts batch rows adds
 * nothing.  A new UPDATE of stage.batch elsewhere would count twice.
 */
CREATE FUNCTION stage._count_batch()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b stage.batch := NEW;
	d jsonb := '[]';
	dur double precision;
	bounds double precision[] := stage._latency_bounds();
	i integer;
	done boolean;
BEGIN
	done := b.status OPERATOR(pg_catalog.=) 'done';
	dur := GREATEST(EXTRACT(epoch FROM b.finished_at OPERATOR(pg_catalog.-) b.started_at)::double precision, 0);
	d := d OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
		pg_catalog.jsonb_build_array('stage_batches_total',
			pg_catalog.jsonb_build_object('kind', b.kind, 'status', b.status), 1),
		pg_catalog.jsonb_build_array('stage_batch_duration_seconds_sum', '{}'::jsonb, dur),
		pg_catalog.jsonb_build_array('stage_batch_duration_seconds_count', '{}'::jsonb, 1),
		pg_catalog.jsonb_build_array('stage_batch_duration_seconds_bucket',
			pg_catalog.jsonb_build_object('le', COALESCE((SELECT pg_catalog.min(x) FROM pg_catalog.unnest(bounds) x
														   WHERE x OPERATOR(pg_catalog.>=) dur)::text, '+Inf')), 1));
	IF done AND b.kind OPERATOR(pg_catalog.=) 'batch' THEN
		d := d OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "taken"}'::jsonb, b.rows_in),
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "clean"}'::jsonb, b.rows_clean),
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "quarantined"}'::jsonb, b.rows_quarantined),
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "duplicate"}'::jsonb, b.rows_duplicate),
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "warned"}'::jsonb, b.rows_warned),
			pg_catalog.jsonb_build_array('stage_rows_total', '{"outcome": "drift"}'::jsonb, b.rows_drift),
			pg_catalog.jsonb_build_array('stage_handoff_latency_seconds_sum', '{}'::jsonb,
				COALESCE(b.latency_sum_ms, 0) OPERATOR(pg_catalog./) 1000),
			pg_catalog.jsonb_build_array('stage_handoff_latency_seconds_count', '{}'::jsonb,
				COALESCE((SELECT pg_catalog.sum(x) FROM pg_catalog.unnest(b.latency_buckets) x), 0)));
		FOR i IN 1 .. COALESCE(pg_catalog.array_length(b.latency_buckets, 1), 0) LOOP
			d := d OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_array(
				'stage_handoff_latency_seconds_bucket',
				pg_catalog.jsonb_build_object('le', COALESCE(bounds[i]::text, '+Inf')), b.latency_buckets[i]));
		END LOOP;
	ELSIF done THEN
		d := d OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
			pg_catalog.jsonb_build_array('stage_replayed_rows_total', '{"outcome": "taken"}'::jsonb, b.rows_in),
			pg_catalog.jsonb_build_array('stage_replayed_rows_total', '{"outcome": "clean"}'::jsonb, b.rows_clean),
			pg_catalog.jsonb_build_array('stage_replayed_rows_total', '{"outcome": "quarantined"}'::jsonb, b.rows_quarantined),
			pg_catalog.jsonb_build_array('stage_replayed_rows_total', '{"outcome": "duplicate"}'::jsonb, b.rows_duplicate));
	END IF;
	IF done THEN
		SELECT d OPERATOR(pg_catalog.||) COALESCE(pg_catalog.jsonb_agg(x), '[]') INTO d FROM (
			SELECT pg_catalog.jsonb_build_array('stage_rule_failures_total',
					   pg_catalog.jsonb_build_object('rule', s.rule_name, 'severity', s.severity), s.failed) AS x
			  FROM stage.batch_rule_stat s WHERE s.batch_id OPERATOR(pg_catalog.=) b.batch_id

			UNION ALL
			SELECT pg_catalog.jsonb_build_array('stage_transform_' OPERATOR(pg_catalog.||) k.k OPERATOR(pg_catalog.||) '_total',
					   pg_catalog.jsonb_build_object('transform', t.transform_name),
					   CASE k.k WHEN 'applied' THEN t.applied WHEN 'changed' THEN t.changed
								WHEN 'nulled' THEN t.nulled ELSE t.failed END)
			  FROM stage.batch_transform_stat t,
				   (VALUES ('applied'), ('changed'), ('nulled'), ('failed')) AS k(k)
			 WHERE t.batch_id OPERATOR(pg_catalog.=) b.batch_id) y;
	END IF;
	PERFORM stage._count(b.pipeline_id, d, COALESCE(b.lane, 0));
	/* the last batch, a gauge: the later of the two */
	INSERT INTO stage.counter AS c (pipeline_id, metric, labels, value, shard)
	VALUES (b.pipeline_id, 'stage_last_batch_timestamp_seconds', '{}', EXTRACT(epoch FROM b.finished_at),
			COALESCE(b.lane, 0))
	ON CONFLICT ON CONSTRAINT counter_pkey
	DO UPDATE SET value = GREATEST(c.value, EXCLUDED.value);
	/* the hour's rows and batches */
	INSERT INTO stage.hourly AS h (pipeline_id, hour, rows_in, rows_clean, rows_quarantined,
								   rows_duplicate, batches, failed_batches, shard)
	VALUES (b.pipeline_id, pg_catalog.date_trunc('hour', b.finished_at),
			CASE WHEN done AND b.kind OPERATOR(pg_catalog.=) 'batch' THEN b.rows_in ELSE 0 END,
			CASE WHEN done AND b.kind OPERATOR(pg_catalog.=) 'batch' THEN b.rows_clean ELSE 0 END,
			CASE WHEN done AND b.kind OPERATOR(pg_catalog.=) 'batch' THEN b.rows_quarantined ELSE 0 END,
			CASE WHEN done AND b.kind OPERATOR(pg_catalog.=) 'batch' THEN b.rows_duplicate ELSE 0 END,
			CASE WHEN b.kind OPERATOR(pg_catalog.=) 'batch' THEN 1 ELSE 0 END,
			CASE WHEN b.kind OPERATOR(pg_catalog.=) 'batch' AND b.status OPERATOR(pg_catalog.=) 'failed' THEN 1 ELSE 0 END,
			COALESCE(b.lane, 0))
	ON CONFLICT ON CONSTRAINT hourly_pkey
	DO UPDATE SET rows_in = h.rows_in OPERATOR(pg_catalog.+) EXCLUDED.rows_in,
				  rows_clean = h.rows_clean OPERATOR(pg_catalog.+) EXCLUDED.rows_clean,
				  rows_quarantined = h.rows_quarantined OPERATOR(pg_catalog.+) EXCLUDED.rows_quarantined,
				  rows_duplicate = h.rows_duplicate OPERATOR(pg_catalog.+) EXCLUDED.rows_duplicate,
				  batches = h.batches OPERATOR(pg_catalog.+) EXCLUDED.batches,
				  failed_batches = h.failed_batches OPERATOR(pg_catalog.+) EXCLUDED.failed_batches;
	RETURN NULL;
END
$$;
CREATE TRIGGER count_batch AFTER UPDATE ON stage.batch
	FOR EACH ROW EXECUTE FUNCTION stage._count_batch();

/*
 * The quarantine's items: a gauge of the items kept by status, a counter
 * of the items closed each way, and per hour the open items and the time
 * the closed ones waited (the mean time to repair).  Statement triggers
 * (the mover writes a piece's items in one statement) reduce their
 * transition tables to rows (pipeline_id, status, delta, closed, waited):
 * an item kept with a status (delta +1 or -1), or closed (how, the
 * seconds it waited).
 */
CREATE FUNCTION stage._count_item_changes(changes jsonb, shard integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
BEGIN
	FOR p IN
		SELECT (c OPERATOR(pg_catalog.->>) 'pipeline_id')::integer AS pipeline_id,
			   pg_catalog.jsonb_agg(CASE WHEN c OPERATOR(pg_catalog.->>) 'closed' IS NULL
					THEN pg_catalog.jsonb_build_array('stage_dlq_items',
							pg_catalog.jsonb_build_object('status', c OPERATOR(pg_catalog.->>) 'status'),
							c OPERATOR(pg_catalog.->) 'delta')
					ELSE pg_catalog.jsonb_build_array('stage_dlq_closed_total',
							pg_catalog.jsonb_build_object('how', c OPERATOR(pg_catalog.->>) 'closed'),
							c OPERATOR(pg_catalog.->) 'delta') END) AS deltas,
			   pg_catalog.sum((c OPERATOR(pg_catalog.->>) 'delta')::bigint)
				 FILTER (WHERE c OPERATOR(pg_catalog.->>) 'closed' IS NOT NULL) AS closed,
			   pg_catalog.sum((c OPERATOR(pg_catalog.->>) 'delta')::bigint)
				 FILTER (WHERE c OPERATOR(pg_catalog.->>) 'closed' IN ('repaired', 'replayed', 'superseded')) AS repaired,
			   pg_catalog.sum((c OPERATOR(pg_catalog.->>) 'waited')::double precision)
				 FILTER (WHERE c OPERATOR(pg_catalog.->>) 'closed' IN ('repaired', 'replayed', 'superseded')) AS waited
		  FROM pg_catalog.jsonb_array_elements(changes) c
		 GROUP BY 1 ORDER BY 1
	LOOP
		PERFORM stage._count(p.pipeline_id, p.deltas, shard);
		IF COALESCE(p.closed, 0) OPERATOR(pg_catalog.>) 0 THEN
			INSERT INTO stage.hourly AS h (pipeline_id, hour, closed_all, closed_items, closed_seconds, shard)
			VALUES (p.pipeline_id, pg_catalog.date_trunc('hour', pg_catalog.now()),
					p.closed, COALESCE(p.repaired, 0), COALESCE(p.waited, 0), shard)
			ON CONFLICT ON CONSTRAINT hourly_pkey
			DO UPDATE SET closed_all = h.closed_all OPERATOR(pg_catalog.+) EXCLUDED.closed_all,
						  closed_items = h.closed_items OPERATOR(pg_catalog.+) EXCLUDED.closed_items,
						  closed_seconds = h.closed_seconds OPERATOR(pg_catalog.+) EXCLUDED.closed_seconds;
		END IF;
	END LOOP;
END
$$;

CREATE FUNCTION stage._count_items_inserted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	/* every rejecting reason of the new items: stage_quarantined_total{rule,kind} */
	PERFORM stage._count(x.pipeline_id, x.d, stage._shard((SELECT pg_catalog.max(n.batch_id) FROM new_items n)))
	   FROM (SELECT n.pipeline_id,
					pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array('stage_quarantined_total',
						pg_catalog.jsonb_build_object('rule', COALESCE(r OPERATOR(pg_catalog.->>) 'rule', '(none)'),
													  'kind', COALESCE(r OPERATOR(pg_catalog.->>) 'kind', '(none)')), 1)) AS d
			   FROM new_items n, pg_catalog.jsonb_array_elements(n.reasons) r
			  WHERE COALESCE(r OPERATOR(pg_catalog.->>) 'severity', 'reject') OPERATOR(pg_catalog.=) 'reject'
			  GROUP BY n.pipeline_id ORDER BY n.pipeline_id) x;
	PERFORM stage._count_item_changes(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
		'pipeline_id', x.pipeline_id, 'status', x.status, 'delta', x.n)),
		stage._shard((SELECT pg_catalog.max(n.batch_id) FROM new_items n)))
	  FROM (SELECT n.pipeline_id, n.status, pg_catalog.count(*) AS n
			  FROM new_items n GROUP BY 1, 2) x
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;
	RETURN NULL;
END
$$;

CREATE FUNCTION stage._count_items_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM stage._count_item_changes(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
		'pipeline_id', x.pipeline_id, 'status', x.status, 'delta', OPERATOR(pg_catalog.-) x.n)), stage._shard(NULL))
	  FROM (SELECT o.pipeline_id, o.status, pg_catalog.count(*) AS n
			  FROM old_items o GROUP BY 1, 2) x
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;
	RETURN NULL;
END
$$;

/*
 * (The transition tables are joined by hash: a nested loop, planned once
 * for a few items and kept by the plan cache, read the spilled tuplestore
 * once per item: a batch that superseded 10,000 items took 34 s.)
 */
CREATE FUNCTION stage._count_items_updated()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off
AS $$
BEGIN
	PERFORM stage._count_item_changes(pg_catalog.jsonb_agg(x.c),
		stage._shard((SELECT pg_catalog.max(n.closed_batch_id) FROM new_items n)))
	  FROM (
		SELECT pg_catalog.jsonb_build_object('pipeline_id', n.pipeline_id, 'status', n.status,
											 'delta', pg_catalog.count(*)) AS c
		  FROM new_items n JOIN old_items o USING (pipeline_id, landing_id)
		 WHERE o.status OPERATOR(pg_catalog.<>) n.status GROUP BY n.pipeline_id, n.status
		UNION ALL
		SELECT pg_catalog.jsonb_build_object('pipeline_id', o.pipeline_id, 'status', o.status,
											 'delta', OPERATOR(pg_catalog.-) pg_catalog.count(*))
		  FROM new_items n JOIN old_items o USING (pipeline_id, landing_id)
		 WHERE o.status OPERATOR(pg_catalog.<>) n.status GROUP BY o.pipeline_id, o.status
		UNION ALL
		SELECT pg_catalog.jsonb_build_object('pipeline_id', n.pipeline_id, 'closed', n.status,
					'delta', pg_catalog.count(*),
					'waited', pg_catalog.sum(EXTRACT(epoch FROM n.closed_at OPERATOR(pg_catalog.-) n.quarantined_at)))
		  FROM new_items n JOIN old_items o USING (pipeline_id, landing_id)
		 WHERE o.status OPERATOR(pg_catalog.=) 'open' AND n.status OPERATOR(pg_catalog.<>) 'open'
		 GROUP BY n.pipeline_id, n.status) x
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;
	RETURN NULL;
END
$$;

CREATE TRIGGER count_items_inserted AFTER INSERT ON stage.quarantine_log
	REFERENCING NEW TABLE AS new_items
	FOR EACH STATEMENT EXECUTE FUNCTION stage._count_items_inserted();
CREATE TRIGGER count_items_deleted AFTER DELETE ON stage.quarantine_log
	REFERENCING OLD TABLE AS old_items
	FOR EACH STATEMENT EXECUTE FUNCTION stage._count_items_deleted();
CREATE TRIGGER count_items_updated AFTER UPDATE ON stage.quarantine_log
	REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
	FOR EACH STATEMENT EXECUTE FUNCTION stage._count_items_updated();

/* ------------------------------------------------ what a scrape reads */


/*
 * The counters, one row per pipeline, metric and labels, for the pipelines
 * the reader may see (their owners, stage_analyst members, superusers):
 * the _total metrics above, and the gauge stage_dlq_items{status}
 * (histograms: stage.metric_histograms; the other gauges:
 * stage.metric_gauges).
 */
CREATE VIEW stage.metric_counters WITH (security_barrier) AS
SELECT p.name AS pipeline, c.metric, c.labels, pg_catalog.sum(c.value) AS value
  FROM stage.counter c JOIN stage.pipeline p USING (pipeline_id)
 WHERE (c.metric OPERATOR(pg_catalog.~~) '%\_total' OR c.metric OPERATOR(pg_catalog.=) 'stage_dlq_items')
   AND stage._may_see(p.owner)
 GROUP BY p.name, c.metric, c.labels
UNION ALL
/* backpressure, counted in shared memory since the server started: pipelines with a limit, or counts */
SELECT p.name, m.metric, '{}'::jsonb, m.value
  FROM stage.pipeline p
  LEFT JOIN stage._backpressure_counts() b USING (pipeline_id)
 CROSS JOIN LATERAL (VALUES
	('stage_backpressure_rejections_total', COALESCE(b.rejections, 0)::double precision),
	('stage_backpressure_waits_total', COALESCE(b.waits, 0)::double precision),
	('stage_backpressure_wait_seconds_total', COALESCE(b.wait_seconds, 0))) AS m(metric, value)
 WHERE (p.max_backlog IS NOT NULL OR p.max_backlog_age IS NOT NULL OR b.pipeline_id IS NOT NULL)
   AND stage._may_see(p.owner);

/*
 * The histograms, one row per pipeline, in the shape Prometheus (and
 * postgres_exporter's HISTOGRAM columns) want: the buckets' upper bounds
 * (without +Inf), the cumulative count of each, the sum and the count.
 */
CREATE VIEW stage.metric_histograms WITH (security_barrier) AS
SELECT p.name AS pipeline,
	   stage._latency_bounds() AS handoff_latency_seconds,
	   ARRAY(SELECT (pg_catalog.sum(COALESCE(b.n, 0)) OVER (ORDER BY b.i))::bigint
			   FROM (SELECT u.i, (SELECT pg_catalog.sum(c.value) FROM stage.counter c
								   WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
									 AND c.metric OPERATOR(pg_catalog.=) 'stage_handoff_latency_seconds_bucket'
									 AND c.labels OPERATOR(pg_catalog.=) pg_catalog.jsonb_build_object('le', u.le::text)) AS n
					   FROM pg_catalog.unnest(stage._latency_bounds()) WITH ORDINALITY AS u(le, i)) b
			  ORDER BY b.i) AS handoff_latency_seconds_bucket,
	   COALESCE((SELECT pg_catalog.sum(c.value) FROM stage.counter c
				  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					AND c.metric OPERATOR(pg_catalog.=) 'stage_handoff_latency_seconds_sum'), 0) AS handoff_latency_seconds_sum,
	   COALESCE((SELECT pg_catalog.sum(c.value) FROM stage.counter c
				  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					AND c.metric OPERATOR(pg_catalog.=) 'stage_handoff_latency_seconds_count'), 0)::bigint AS handoff_latency_seconds_count,
	   stage._latency_bounds() AS batch_duration_seconds,
	   ARRAY(SELECT (pg_catalog.sum(COALESCE(b.n, 0)) OVER (ORDER BY b.i))::bigint
			   FROM (SELECT u.i, (SELECT pg_catalog.sum(c.value) FROM stage.counter c
								   WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
									 AND c.metric OPERATOR(pg_catalog.=) 'stage_batch_duration_seconds_bucket'
									 AND c.labels OPERATOR(pg_catalog.=) pg_catalog.jsonb_build_object('le', u.le::text)) AS n
					   FROM pg_catalog.unnest(stage._latency_bounds()) WITH ORDINALITY AS u(le, i)) b
			  ORDER BY b.i) AS batch_duration_seconds_bucket,
	   COALESCE((SELECT pg_catalog.sum(c.value) FROM stage.counter c
				  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					AND c.metric OPERATOR(pg_catalog.=) 'stage_batch_duration_seconds_sum'), 0) AS batch_duration_seconds_sum,
	   COALESCE((SELECT pg_catalog.sum(c.value) FROM stage.counter c
				  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
					AND c.metric OPERATOR(pg_catalog.=) 'stage_batch_duration_seconds_count'), 0)::bigint AS batch_duration_seconds_count
  FROM stage.pipeline p
 WHERE stage._may_see(p.owner);

/*
 * A done batch's rows by source ({"source": [taken, clean, quarantined,
 * duplicate], ...}, from the mover) into stage_source_rows_total{source,
 * outcome}.  A pipeline tracks at most 50 sources: the rows of a source
 * first seen after that count as source "(other)".
 */
CREATE FUNCTION stage._count_sources(pipeline_id integer, batch_id bigint, counts jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tracked text[];
	d jsonb := '[]';
	e record;
	src text;
	i integer;
BEGIN
	SELECT pg_catalog.array_agg(DISTINCT c.labels OPERATOR(pg_catalog.->>) 'source') INTO tracked
	  FROM stage.counter c
	 WHERE c.pipeline_id OPERATOR(pg_catalog.=) _count_sources.pipeline_id
	   AND c.metric OPERATOR(pg_catalog.=) 'stage_source_rows_total';
	tracked := COALESCE(tracked, '{}');
	FOR e IN SELECT x.key, x.value FROM pg_catalog.jsonb_each(counts) x ORDER BY x.key LOOP
		src := e.key;
		IF src OPERATOR(pg_catalog.<>) ALL (tracked) THEN
			IF pg_catalog.cardinality(tracked) OPERATOR(pg_catalog.>=) 50 THEN
				src := '(other)';
			ELSE
				tracked := tracked OPERATOR(pg_catalog.||) src;
			END IF;
		END IF;
		FOR i IN 0 .. 3 LOOP
			d := d OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_array(
				'stage_source_rows_total',
				pg_catalog.jsonb_build_object('source', src,
					'outcome', (ARRAY['taken', 'clean', 'quarantined', 'duplicate'])[i OPERATOR(pg_catalog.+) 1]),
				e.value OPERATOR(pg_catalog.->) i));
		END LOOP;
	END LOOP;
	PERFORM stage._count(pipeline_id, d, stage._shard(batch_id));
END
$$;

/* when the last row of a pipeline's landing table arrived (NULL: none) */
CREATE FUNCTION stage._last_arrival(p stage.pipeline)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t timestamptz;
BEGIN
	IF p.landing IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
										 WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		RETURN NULL;
	END IF;
	/* the newest transaction's last row: one step down the landing index */
	EXECUTE pg_catalog.format('SELECT l._stage_received_at FROM %s l
								ORDER BY l._stage_txid DESC, l._stage_id DESC LIMIT 1', p.landing)
	   INTO t;
	RETURN t;
END
$$;

/*
 * The gauges of state, one row per pipeline the caller may see: paused
 * (1: not running, by a person, the worker's failures or a hold), held,
 * the backlog and its oldest row's age, the last arrival and the last
 * batch, the open quarantine items and the oldest one's age, and volume:
 * the rows batches took in the last complete hour, the mean of the same
 * hour on up to seven earlier days, and how far off it is (the difference
 * over the larger of the days' standard deviation and the square root of
 * their mean; NULL before three earlier days).  A gate: it reads the
 * landing tables as the catalog owner.
 */
CREATE FUNCTION stage.metric_gauges()
RETURNS TABLE(pipeline text, paused integer, held integer, backlog_rows bigint,
			  oldest_pending_age_seconds double precision, last_arrival_timestamp_seconds double precision,
			  last_batch_timestamp_seconds double precision, dlq_open bigint,
			  dlq_oldest_open_age_seconds double precision, rows_last_hour bigint,
			  rows_baseline_hour double precision, volume_anomaly_score double precision,
			  oldest_landing_age_seconds double precision, retention_compliance double precision)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_api';
COMMENT ON FUNCTION stage.metric_gauges() IS
	'the state of each pipeline as Prometheus gauges: backlog, freshness, open quarantine, volume, retention';
CREATE FUNCTION stage._do_metric_gauges()
RETURNS TABLE(pipeline text, paused integer, held integer, backlog_rows bigint,
			  oldest_pending_age_seconds double precision, last_arrival_timestamp_seconds double precision,
			  last_batch_timestamp_seconds double precision, dlq_open bigint,
			  dlq_oldest_open_age_seconds double precision, rows_last_hour bigint,
			  rows_baseline_hour double precision, volume_anomaly_score double precision,
			  oldest_landing_age_seconds double precision, retention_compliance double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p stage.pipeline;
	pend record;
	prev_hour timestamptz := pg_catalog.date_trunc('hour', pg_catalog.now()) OPERATOR(pg_catalog.-) '1 hour'::interval;
	base record;
BEGIN
	FOR p IN SELECT * FROM stage.pipeline x WHERE stage._may_see(x.owner) ORDER BY x.name LOOP
		pipeline := p.name;
		paused := CASE WHEN p.enabled THEN 0 ELSE 1 END;
		held := CASE WHEN p.held_version IS NULL THEN 0 ELSE 1 END;
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
			SELECT * INTO pend FROM stage._pending(p);
			backlog_rows := pend.pending_rows;
			oldest_pending_age_seconds := COALESCE(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) pend.oldest), 0);
		ELSE
			backlog_rows := NULL;
			oldest_pending_age_seconds := NULL;
		END IF;
		last_arrival_timestamp_seconds := GREATEST(EXTRACT(epoch FROM stage._last_arrival(p)),
			(SELECT pg_catalog.max(c.value) FROM stage.counter c
			  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND c.metric OPERATOR(pg_catalog.=) 'stage_last_arrival_timestamp_seconds'));
		last_batch_timestamp_seconds := (SELECT pg_catalog.max(c.value) FROM stage.counter c
										  WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
											AND c.metric OPERATOR(pg_catalog.=) 'stage_last_batch_timestamp_seconds');
		dlq_open := COALESCE((SELECT pg_catalog.sum(c.value) FROM stage.counter c
							   WHERE c.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
								 AND c.metric OPERATOR(pg_catalog.=) 'stage_dlq_items'
								 AND c.labels OPERATOR(pg_catalog.=) '{"status": "open"}'), 0)::bigint;
		dlq_oldest_open_age_seconds := COALESCE(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
			(SELECT q.quarantined_at FROM stage.quarantine_log q
			  WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND q.status OPERATOR(pg_catalog.=) 'open'
			  ORDER BY q.quarantined_at LIMIT 1)), 0);
		rows_last_hour := COALESCE((SELECT pg_catalog.sum(h.rows_in) FROM stage.hourly h
									 WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
									   AND h.hour OPERATOR(pg_catalog.=) prev_hour), 0);
		SELECT pg_catalog.avg(y.n)::double precision AS mean,
			   pg_catalog.stddev_samp(y.n)::double precision AS sd,
			   pg_catalog.count(*) AS days
		  INTO base
		  FROM (SELECT COALESCE((SELECT pg_catalog.sum(h.rows_in) FROM stage.hourly h
								  WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
									AND h.hour OPERATOR(pg_catalog.=) (prev_hour OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => d))), 0) AS n
				  FROM pg_catalog.generate_series(1, 7) d
		 WHERE prev_hour OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => d) OPERATOR(pg_catalog.>=)
			   pg_catalog.date_trunc('hour', p.created_at)) y;
		rows_baseline_hour := base.mean;
		volume_anomaly_score := CASE WHEN base.days OPERATOR(pg_catalog.>=) 3
			THEN (rows_last_hour OPERATOR(pg_catalog.-) base.mean) OPERATOR(pg_catalog./)
				 GREATEST(base.sd, pg_catalog.sqrt(GREATEST(base.mean, 1))) END;
		/* retention (41_partitions.sql); no landing row: NULL */
		SELECT EXTRACT(epoch FROM r.oldest_landing_age), r.retention_compliance
		  INTO oldest_landing_age_seconds, retention_compliance
		  FROM stage._retention_state(p.pipeline_id) r;
		RETURN NEXT;
	END LOOP;
END
$$;

/*
 * Rows by source (_stage_source), per pipeline, since the pipeline was
 * made: the SLIs of each producer (at most 50 sources a pipeline, then
 * "(other)").
 */
CREATE VIEW stage.source_health WITH (security_barrier) AS
SELECT p.name AS pipeline, c.labels OPERATOR(pg_catalog.->>) 'source' AS source,
	   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'taken')::bigint AS rows_taken,
	   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'clean')::bigint AS rows_clean,
	   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'quarantined')::bigint AS rows_quarantined,
	   pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'duplicate')::bigint AS rows_duplicate,
	   (pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'clean'))
		 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(c.value) FILTER (WHERE c.labels OPERATOR(pg_catalog.->>) 'outcome' OPERATOR(pg_catalog.=) 'taken'), 0)
		 AS validation_pass_rate
  FROM stage.counter c JOIN stage.pipeline p USING (pipeline_id)
 WHERE c.metric OPERATOR(pg_catalog.=) 'stage_source_rows_total' AND stage._may_see(p.owner)
 GROUP BY p.name, c.labels OPERATOR(pg_catalog.->>) 'source';

GRANT SELECT ON stage.metric_counters, stage.metric_histograms, stage.source_health TO PUBLIC;

/* a Prometheus label value: backslash, double quote and newline escaped */
CREATE FUNCTION stage._label(v text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(v, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n') $$;

/*
 * Every metric in the Prometheus text exposition format (version 0.0.4),
 * for a scrape proxy or a textfile collector: each family with its HELP
 * and TYPE lines, samples ordered by pipeline and labels, for the
 * pipelines the caller may see.  A gauge without a value (no backlog
 * table, no baseline yet) has no sample.
 */
CREATE FUNCTION stage.metrics()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	out text;
BEGIN
	WITH fam(n, name, type, help) AS (VALUES
		(1, 'stage_rows_total', 'counter', 'Landing rows taken by done batches, by outcome (taken = clean + quarantined + duplicate; warned rows are clean rows with a warning; drift counts drifting payloads).'),
		(2, 'stage_replayed_rows_total', 'counter', 'Rows run again by replays, by outcome.'),
		(3, 'stage_batches_total', 'counter', 'Finished batches, by kind (batch, replay) and status (done, held, failed).'),
		(4, 'stage_rule_failures_total', 'counter', 'Values a rule failed in done batches, by rule and severity.'),
		(5, 'stage_quarantined_total', 'counter', 'Reasons of the rows quarantined, by rule and kind (rule, type, target, transform, ...; a row with two reasons counts for each).'),
		(6, 'stage_transform_applied_total', 'counter', 'Values a transform ran on.'),
		(7, 'stage_transform_changed_total', 'counter', 'Values a transform changed.'),
		(8, 'stage_transform_nulled_total', 'counter', 'Values a transform made NULL.'),
		(9, 'stage_transform_failed_total', 'counter', 'Rows a transform sent to quarantine.'),
		(10, 'stage_dlq_closed_total', 'counter', 'Quarantine items closed, by how (repaired, replayed, superseded, dismissed).'),
		(11, 'stage_source_rows_total', 'counter', 'Landing rows of done batches by source (_stage_source) and outcome; at most 50 sources a pipeline, then (other).'),
		(12, 'stage_handoff_latency_seconds', 'histogram', 'Time from landing to the target, every row of done batches.'),
		(13, 'stage_batch_duration_seconds', 'histogram', 'Duration of finished batches.'),
		(14, 'stage_dlq_items', 'gauge', 'Quarantine items kept, by status.'),
		(15, 'stage_paused', 'gauge', '1 when the pipeline does not run (paused by a person, by failures or by a hold).'),
		(16, 'stage_held', 'gauge', '1 when a batch of the pipeline is held.'),
		(17, 'stage_backlog_rows', 'gauge', 'Landing rows not yet taken by a batch.'),
		(18, 'stage_oldest_pending_age_seconds', 'gauge', 'Age of the oldest landing row not yet taken (0: none).'),
		(19, 'stage_last_arrival_timestamp_seconds', 'gauge', 'When the newest landing row arrived (Unix time).'),
		(20, 'stage_last_batch_timestamp_seconds', 'gauge', 'When the last batch finished (Unix time).'),
		(21, 'stage_dlq_open', 'gauge', 'Open quarantine items: rows still to repair, replay or dismiss.'),
		(22, 'stage_dlq_oldest_open_age_seconds', 'gauge', 'Age of the oldest open quarantine item (0: none).'),
		(23, 'stage_rows_last_hour', 'gauge', 'Rows taken by batches in the last complete hour.'),
		(24, 'stage_rows_baseline_hour', 'gauge', 'Mean rows of the same hour on up to seven earlier days.'),
		(25, 'stage_volume_anomaly_score', 'gauge', 'How far the last hour''s rows are from the baseline, in standard deviations (see docs/observability.md).'),
		(26, 'stage_workers', 'gauge', 'Running stage background workers of the cluster.'),
		(27, 'stage_history_purged_total', 'counter', 'History rows deleted by retention (stage.purge), by table.'),
		(28, 'stage_landing_purged_rows_total', 'counter', 'Landing rows dropped by retention with their partitions (stage.purge; estimated per partition).'),
		(29, 'stage_backpressure_rejections_total', 'counter', 'Producer statements refused because the backlog was over the pipeline''s limit (since the server started).'),
		(30, 'stage_backpressure_waits_total', 'counter', 'Producer statements held by on_backlog wait, whether they then passed or were refused (since the server started).'),
		(31, 'stage_backpressure_wait_seconds_total', 'counter', 'Time producer statements were held by on_backlog wait (since the server started).'),
		(32, 'stage_oldest_landing_age_seconds', 'gauge', 'Age of the oldest landing row still kept, taken or not (retention).'),
		(33, 'stage_retention_compliance', 'gauge', 'Share of the data past its retention policy that is gone (1: nothing overdue).')
	), g AS (
		SELECT * FROM stage.metric_gauges()
	), samples(n, pipeline, ord, line) AS (
		SELECT f.n, c.pipeline, 0, pg_catalog.format('%s{pipeline="%s"%s} %s', c.metric, stage._label(c.pipeline),
				(SELECT pg_catalog.string_agg(pg_catalog.format(',%s="%s"', k.key, stage._label(k.value)), '' ORDER BY k.key)
				   FROM pg_catalog.jsonb_each_text(c.labels) k),
				c.value)
		  FROM stage.metric_counters c JOIN fam f ON f.name OPERATOR(pg_catalog.=) c.metric

		UNION ALL
		SELECT f.n, h.pipeline, x.ord, x.line
		  FROM stage.metric_histograms h
		 CROSS JOIN (VALUES (12, 'stage_handoff_latency_seconds'), (13, 'stage_batch_duration_seconds')) AS f(n, name)
		 CROSS JOIN LATERAL (
			SELECT b.i::integer AS ord,
				   pg_catalog.format('%s_bucket{pipeline="%s",le="%s"} %s', f.name, stage._label(h.pipeline), b.le,
					CASE f.n WHEN 12 THEN h.handoff_latency_seconds_bucket[b.i] ELSE h.batch_duration_seconds_bucket[b.i] END) AS line
			  FROM pg_catalog.unnest(stage._latency_bounds()) WITH ORDINALITY AS b(le, i)
			UNION ALL
			SELECT 100, pg_catalog.format('%s_bucket{pipeline="%s",le="+Inf"} %s', f.name, stage._label(h.pipeline),
					CASE f.n WHEN 12 THEN h.handoff_latency_seconds_count ELSE h.batch_duration_seconds_count END)
			UNION ALL
			SELECT 101, pg_catalog.format('%s_sum{pipeline="%s"} %s', f.name, stage._label(h.pipeline),
					CASE f.n WHEN 12 THEN h.handoff_latency_seconds_sum ELSE h.batch_duration_seconds_sum END)
			UNION ALL
			SELECT 102, pg_catalog.format('%s_count{pipeline="%s"} %s', f.name, stage._label(h.pipeline),
					CASE f.n WHEN 12 THEN h.handoff_latency_seconds_count ELSE h.batch_duration_seconds_count END)) x
		UNION ALL
		SELECT v.n, g.pipeline, 0, pg_catalog.format('%s{pipeline="%s"} %s', f.name, stage._label(g.pipeline), v.v)
		  FROM g CROSS JOIN LATERAL (VALUES
			(15, g.paused::double precision), (16, g.held), (17, g.backlog_rows),
			(18, g.oldest_pending_age_seconds), (19, g.last_arrival_timestamp_seconds),
			(20, g.last_batch_timestamp_seconds), (21, g.dlq_open), (22, g.dlq_oldest_open_age_seconds),
			(23, g.rows_last_hour), (24, g.rows_baseline_hour), (25, g.volume_anomaly_score),
			(32, g.oldest_landing_age_seconds), (33, g.retention_compliance)) AS v(n, v)
		  JOIN fam f ON f.n OPERATOR(pg_catalog.=) v.n
		 WHERE v.v IS NOT NULL
		UNION ALL
		SELECT 26, '', 0, 'stage_workers ' OPERATOR(pg_catalog.||) (SELECT pg_catalog.count(*) FROM stage.workers)::text
	)
	SELECT pg_catalog.string_agg(x.block, '' ORDER BY x.n) INTO out
	  FROM (SELECT f.n, pg_catalog.format(E'# HELP %s %s\n# TYPE %s %s\n', f.name, f.help, f.name, f.type)
					OPERATOR(pg_catalog.||)
					COALESCE((SELECT pg_catalog.string_agg(s.line OPERATOR(pg_catalog.||) E'\n', '' ORDER BY s.pipeline, s.ord, s.line)
								FROM samples s WHERE s.n OPERATOR(pg_catalog.=) f.n), '') AS block
			  FROM fam f) x;
	RETURN out;
END
$$;
