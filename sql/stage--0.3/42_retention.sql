/* -------------------------------------------------- history retention */

/*
 * History retention: what stage.purge() deletes besides landing rows.  A
 * pipeline's history_retention (default 30 days, stage.set_retention)
 * says how long it keeps its finished batches with their rule and
 * transform statistics, duplicate records and OpenLineage events, and its
 * closed quarantine items.  Open quarantine items never expire: they are
 * work still to do (repair, replay or dismiss), not history.
 *
 * What stays, however old:
 *   - open quarantine items, and the batch each one refers to (batch_id:
 *     stage.trace places a quarantined row by its batch's window);
 *   - the newest batch of the pipeline (stage.batches and the lineage
 *     views keep "the last batch", whatever the policy);
 *   - anything younger than the landing retention (retention), when that
 *     is the longer one: a landing row is kept with the batch that took
 *     it and its outcome records, so that stage.trace never reports a
 *     moved row as pending or a quarantined one as clean.
 *
 * The duplicate log and the lineage events carry no time of their own
 * that matters: they go with their batch (by batch_id, the indexes those
 * tables have).  Lineage events are an outbox read with a cursor
 * (stage.openlineage_events) that stage does not see, so it cannot tell
 * what a shipper has read: events are kept as long as their batch, and a
 * shipper that reads less often than the history retention misses the
 * events purged in between (docs/operations.md).
 *
 * Cost: each DELETE is driven by an index on what it deletes (batches by
 * (pipeline_id, finished_at), closed items by the partial index on
 * (pipeline_id, closed_at), the rest by batch_id), so a call costs the
 * rows it deletes, not the history it keeps; the one exception is old
 * batches kept for their open items, which the scan steps over.  A call
 * deletes a slice: the oldest batches up to max_rows batches, fewer when
 * their duplicate records (rows_duplicate) would pass max_rows rows, and
 * up to max_rows closed items.  A backlog (the first purge after an
 * update, a scheduler that stopped) goes over several calls of
 * stage.purge, each a transaction of bounded size, rather than one that
 * locks and logs millions of rows at once.
 *
 * Counted: the rows deleted, per table, in stage_history_purged_total
 * {table} (stage.counter) and per hour in stage.hourly.history_purged.
 * The counting triggers of 72_metrics.sql fire on INSERT and UPDATE of
 * stage.batch only, so no _total counter moves; deleting closed items
 * lowers the gauge stage_dlq_items{status} of the closed statuses (items
 * kept) and nothing else.
 *
 * Runs as the catalog owner, called by stage._do_purge (through the gate,
 * which checked that the caller owns the pipeline).
 */
CREATE FUNCTION stage._purge_history(pipeline_id integer, max_rows integer DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	cutoff timestamptz;
	newest bigint;
	ids bigint[];
	n_batch bigint;
	n_rule bigint;
	n_transform bigint;
	n_duplicate bigint;
	n_lineage bigint;
	n_item bigint;
	total bigint;
	shard integer := stage._shard(NULL);
BEGIN
	SELECT * INTO p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _purge_history.pipeline_id;
	IF NOT FOUND OR max_rows IS NULL OR max_rows OPERATOR(pg_catalog.<) 1 THEN
		RETURN 0;
	END IF;
	cutoff := pg_catalog.now() OPERATOR(pg_catalog.-) GREATEST(p.history_retention, p.retention);
	SELECT pg_catalog.max(b.batch_id) INTO newest FROM stage.batch b
	 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;

	/*
	 * The oldest batches first, along the index (pipeline_id, finished_at);
	 * a slice ends before the batch whose duplicate records would pass
	 * max_rows (the first batch always goes).  Arrays, not joins: each
	 * DELETE below is then an index probe per batch, whatever the size of
	 * the tables.
	 */
	ids := ARRAY(
		SELECT b.batch_id FROM stage.batch b
		 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
		   AND b.finished_at OPERATOR(pg_catalog.<) cutoff
		   AND b.batch_id OPERATOR(pg_catalog.<>) newest
		   /* a probe of quarantine_log (batch_id) per batch, never a join of the tables */
		   AND (SELECT q.batch_id FROM stage.quarantine_log q
				 WHERE q.batch_id OPERATOR(pg_catalog.=) b.batch_id
				   AND q.status OPERATOR(pg_catalog.=) 'open'
				 LIMIT 1) IS NULL
		 ORDER BY b.pipeline_id, b.finished_at
		 LIMIT max_rows);
	ids := ARRAY(
		SELECT c.batch_id FROM (
			SELECT b.batch_id,
				   pg_catalog.row_number() OVER w AS i,
				   pg_catalog.sum(b.rows_duplicate) OVER w AS duplicates
			  FROM stage.batch b
			 WHERE b.batch_id OPERATOR(pg_catalog.=) ANY (ids)
			WINDOW w AS (ORDER BY b.finished_at, b.batch_id ROWS UNBOUNDED PRECEDING)) c
		 WHERE c.i OPERATOR(pg_catalog.=) 1 OR c.duplicates OPERATOR(pg_catalog.<=) max_rows);

	DELETE FROM stage.batch_rule_stat x WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n_rule = ROW_COUNT;
	DELETE FROM stage.batch_transform_stat x WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n_transform = ROW_COUNT;
	DELETE FROM stage.duplicate_log x WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n_duplicate = ROW_COUNT;
	DELETE FROM stage.lineage_event x WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n_lineage = ROW_COUNT;
	DELETE FROM stage.batch x WHERE x.batch_id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n_batch = ROW_COUNT;

	/* closed items, by when they were closed; never an open one */
	DELETE FROM stage.quarantine_log q
	 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND q.landing_id OPERATOR(pg_catalog.=) ANY (ARRAY(
			SELECT x.landing_id FROM stage.quarantine_log x
			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
			   AND x.status OPERATOR(pg_catalog.<>) 'open'
			   AND x.closed_at OPERATOR(pg_catalog.<) cutoff
			 ORDER BY x.closed_at
			 LIMIT max_rows))
	   AND q.status OPERATOR(pg_catalog.<>) 'open';
	GET DIAGNOSTICS n_item = ROW_COUNT;

	total := n_batch OPERATOR(pg_catalog.+) n_rule OPERATOR(pg_catalog.+) n_transform
			 OPERATOR(pg_catalog.+) n_duplicate OPERATOR(pg_catalog.+) n_lineage
			 OPERATOR(pg_catalog.+) n_item;
	IF total OPERATOR(pg_catalog.=) 0 THEN
		RETURN 0;
	END IF;
	PERFORM stage._count(p.pipeline_id, pg_catalog.jsonb_build_array(
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "batch"}'::jsonb, n_batch),
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "batch_rule_stat"}'::jsonb, n_rule),
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "batch_transform_stat"}'::jsonb, n_transform),
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "duplicate_log"}'::jsonb, n_duplicate),
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "lineage_event"}'::jsonb, n_lineage),
		pg_catalog.jsonb_build_array('stage_history_purged_total', '{"table": "quarantine_log"}'::jsonb, n_item)),
		shard);
	INSERT INTO stage.hourly AS h (pipeline_id, hour, history_purged, shard)
	VALUES (p.pipeline_id, pg_catalog.date_trunc('hour', pg_catalog.now()), total, shard)
	ON CONFLICT ON CONSTRAINT hourly_pkey
	DO UPDATE SET history_purged = h.history_purged OPERATOR(pg_catalog.+) EXCLUDED.history_purged;
	RETURN total;
END
$$;
