/* -------------------------------------------------- landing partitions */

/*
 * A landing table is partitioned by ranges of _stage_txid (the catalog of
 * its ranges is stage.landing_partition).  Batches read landing in
 * (_stage_txid, _stage_id) order, so the ranges are also the reading
 * order: a batch walks them one after the other.  A range is finished
 * when no transaction that could land a row in it is still running and
 * every row in it was taken by a closed window; it leaves whole, by DROP
 * TABLE, once finished for longer than the pipeline's retention: a purge
 * costs the same whatever the rows, and leaves nothing for VACUUM.
 *
 * Ranges are made ahead: one range beyond the one the cluster's
 * transactions are in, as wide as the transaction ids the cluster uses in
 * a partition interval (a quarter of the retention, between 10 seconds and
 * a day), measured.  The last range is open-ended: should nobody run the
 * maintenance (stage.purge, the worker) for longer than a range lasts, rows
 * go on landing there, and the next maintenance cuts it at the present
 * transaction id (which reads that partition once, under a lock).
 *
 * These functions run as the catalog owner (the gates, landing.c); they
 * take the landing table's ACCESS EXCLUSIVE lock for their DDL, waiting at
 * most 200 ms for it (producers queue behind a waiting lock), and try again
 * at the next pass when a batch or a long COPY holds it.
 */

/*
 * How long one range of a pipeline's landing lasts: its partition_interval
 * (stage.set_retention), else a quarter of the retention, 10 s to 1 day.
 */
CREATE FUNCTION stage._partition_interval(retention interval, partition_interval interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE(partition_interval,
				LEAST(GREATEST(retention OPERATOR(pg_catalog./) 4, '10 seconds'::interval), '1 day'::interval))
$$;

/*
 * The transaction ids a new range of the pipeline spans: the rate at which
 * the cluster used them since the pipeline's oldest range was made, times
 * the partition interval; at least 100 (1,000 before there is a rate).
 */
CREATE FUNCTION stage._partition_width(pipeline_id integer)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next bigint := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint;
	since timestamptz;
	since_xid bigint;
	span double precision;
	secs double precision;
BEGIN
	SELECT lp.created_at, lp.created_xid::text::bigint INTO since, since_xid
	  FROM stage.landing_partition lp
	 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) _partition_width.pipeline_id
	 ORDER BY lp.created_at LIMIT 1;
	SELECT EXTRACT(epoch FROM stage._partition_interval(p.retention, p.partition_interval)) INTO span
	  FROM stage.pipeline p WHERE p.pipeline_id OPERATOR(pg_catalog.=) _partition_width.pipeline_id;
	secs := EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) since);
	IF since IS NULL OR secs OPERATOR(pg_catalog.<) 1 THEN
		RETURN 1000;
	END IF;
	RETURN LEAST(GREATEST(100, pg_catalog.ceil((next OPERATOR(pg_catalog.-) since_xid)
												 OPERATOR(pg_catalog./) secs OPERATOR(pg_catalog.*) span)),
				 1000000000000)::bigint;
END
$$;

/* xid8 arithmetic (the type has none): x + n */
CREATE FUNCTION stage._xid_plus(x xid8, n bigint)
RETURNS xid8
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ((x::text::numeric) OPERATOR(pg_catalog.+) n)::text::xid8
$$;

/* make the range [lo, hi) (NULL: unbounded) of the pipeline's landing table */
CREATE FUNCTION stage._landing_partition_add(pipeline_id integer, lo xid8, hi xid8)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	no bigint := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('stage.landing_partition', 'part_no'));
	part text;
BEGIN
	SELECT * INTO STRICT p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _landing_partition_add.pipeline_id;
	/* '$' is not allowed in pipeline names: no partition takes a landing table's name */
	part := pg_catalog.format('%s$%s', pg_catalog.left(p.name, 40), no);
	EXECUTE pg_catalog.format('CREATE TABLE stage_landing.%I PARTITION OF %s FOR VALUES FROM (%s) TO (%s)',
							  part, p.landing,
							  COALESCE(pg_catalog.quote_literal(lo::text), 'MINVALUE'),
							  COALESCE(pg_catalog.quote_literal(hi::text), 'MAXVALUE'));
	/*
	 * The txid check, NOT VALID, on each partition (not on the parent: a
	 * partition gets a parent's check as valid, and pg_dump would then
	 * restore it before the rows, which fail it).
	 */
	EXECUTE pg_catalog.format('ALTER TABLE stage_landing.%I ADD CONSTRAINT stage_txid_is_own'
							  ' CHECK (_stage_txid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()) NOT VALID',
							  part);
	/* the landing table's owner (the catalog owner), whoever runs this */
	EXECUTE pg_catalog.format('ALTER TABLE stage_landing.%I OWNER TO %I', part,
							  (SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c
								WHERE c.oid OPERATOR(pg_catalog.=) p.landing));
	INSERT INTO stage.landing_partition (pipeline_id, part_no, partition, lo, hi, created_xid)
	OVERRIDING SYSTEM VALUE
	VALUES (p.pipeline_id, no, pg_catalog.format('stage_landing.%I', part)::regclass, lo, hi,
			pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()));
	RETURN pg_catalog.format('stage_landing.%I', part)::regclass;
END
$$;

/* the first ranges of a new landing table: one from the lowest id to a range ahead, and the open end */
CREATE FUNCTION stage._landing_partitions_init(pipeline_id integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cut xid8 := stage._xid_plus(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
								stage._partition_width(pipeline_id));
BEGIN
	PERFORM stage._landing_partition_add(pipeline_id, NULL, cut);
	PERFORM stage._landing_partition_add(pipeline_id, cut, NULL);
END
$$;

/*
 * How many rows a range held, for the records of a purge: the planner's
 * count when autovacuum has analysed it, else from its first and last ids.
 */
CREATE FUNCTION stage._partition_rows(part regclass)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	est real;
	first_id bigint;
	last_id bigint;
BEGIN
	SELECT c.reltuples INTO est FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) part;
	IF est OPERATOR(pg_catalog.>=) 0 THEN
		RETURN est::bigint;
	END IF;
	EXECUTE pg_catalog.format(
		'SELECT (SELECT l._stage_id FROM %1$s l ORDER BY l._stage_txid, l._stage_id LIMIT 1),
				(SELECT l._stage_id FROM %1$s l ORDER BY l._stage_txid DESC, l._stage_id DESC LIMIT 1)', part)
	INTO first_id, last_id;
	IF first_id IS NULL THEN
		RETURN 0;
	END IF;
	RETURN GREATEST(last_id OPERATOR(pg_catalog.-) first_id OPERATOR(pg_catalog.+) 1, 1);
END
$$;

/*
 * The maintenance of a pipeline's landing table: mark the ranges now
 * finished, drop those finished longer than the retention ago, and make
 * the range ahead.  Returns the number of rows dropped (as
 * stage._partition_rows counts them).  Runs as the catalog owner.
 */
CREATE FUNCTION stage._purge_landing(pipeline_id integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	snap pg_snapshot := pg_catalog.pg_current_snapshot();
	next xid8 := pg_catalog.pg_snapshot_xmax(snap);
	lo_xmin xid8;
	r stage.landing_partition;
	tail stage.landing_partition;
	top xid8;
	w bigint;
	cut xid8;
	busy boolean;
	n bigint := 0;
	rows bigint;
	saved text := pg_catalog.current_setting('lock_timeout');
BEGIN
	SELECT * INTO p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _purge_landing.pipeline_id;
	IF NOT FOUND OR p.landing IS NULL
	   OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		RETURN 0;
	END IF;
	/* not from inside a batch of the pipeline (owner code it runs): 55006 */
	PERFORM stage._check_idle(p.pipeline_id, p.name);
	/* one maintenance of a pipeline at a time (the worker and a pg_cron purge) */
	IF NOT pg_catalog.pg_try_advisory_xact_lock(1937006949, p.pipeline_id) THEN
		RETURN 0;
	END IF;
	lo_xmin := pg_catalog.pg_snapshot_xmin(p.win_lo);

	/*
	 * Finished: no running transaction is below the range's end (none can
	 * still land a row in it), and every row of it is visible in the
	 * window's lower snapshot, so taken by a closed window.  In order: a
	 * range is looked at once the one before it is finished.
	 */
	FOR r IN SELECT * FROM stage.landing_partition lp
			  WHERE lp.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND lp.finished_at IS NULL
			  ORDER BY lp.lo NULLS FIRST
	LOOP
		EXIT WHEN r.hi IS NULL OR r.hi OPERATOR(pg_catalog.>) pg_catalog.pg_snapshot_xmin(snap);
		IF r.hi OPERATOR(pg_catalog.>) lo_xmin THEN
			EXECUTE pg_catalog.format(
				'SELECT EXISTS (SELECT 1 FROM %s l
								 WHERE l._stage_txid OPERATOR(pg_catalog.>=) $1
								   AND NOT pg_catalog.pg_visible_in_snapshot(l._stage_txid, $2))',
				r.partition)
			INTO busy USING lo_xmin, p.win_lo;
			EXIT WHEN busy;
		END IF;
		UPDATE stage.landing_partition lp SET finished_at = pg_catalog.now()
		 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) r.pipeline_id AND lp.part_no OPERATOR(pg_catalog.=) r.part_no;
	END LOOP;

	/* the DDL below waits that long for the landing table's lock, then gives up until the next pass */
	PERFORM pg_catalog.set_config('lock_timeout', '200ms', true);

	/* finished longer than the retention ago: the whole range goes */
	FOR r IN SELECT * FROM stage.landing_partition lp
			  WHERE lp.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				AND lp.finished_at OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.retention)
			  ORDER BY lp.lo NULLS FIRST
	LOOP
		BEGIN
			rows := stage._partition_rows(r.partition);
			EXECUTE pg_catalog.format('DROP TABLE %s', r.partition);
			DELETE FROM stage.landing_partition lp
			 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) r.pipeline_id AND lp.part_no OPERATOR(pg_catalog.=) r.part_no;
			n := n OPERATOR(pg_catalog.+) rows;
		EXCEPTION WHEN lock_not_available THEN
			/* a batch or a long COPY holds the landing table: next pass */
			EXIT;
		END;
	END LOOP;

	/*
	 * The range ahead: the ranges must reach a width beyond the next
	 * transaction id.  The open end is replaced by a range and a new open
	 * end; if rows landed in it, it is cut a width beyond the next
	 * transaction id instead (ATTACH reads its rows to check them).
	 */
	SELECT max(lp.hi) INTO top FROM stage.landing_partition lp
	 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id;
	w := stage._partition_width(p.pipeline_id);
	IF top IS NULL OR top OPERATOR(pg_catalog.<) stage._xid_plus(next, w) THEN
		BEGIN
			EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p.landing);
			SELECT * INTO STRICT tail FROM stage.landing_partition lp
			 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND lp.hi IS NULL;
			cut := stage._xid_plus(GREATEST(COALESCE(top, next), next), w);
			EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s)', tail.partition) INTO busy;
			IF busy THEN
				EXECUTE pg_catalog.format('ALTER TABLE %s DETACH PARTITION %s', p.landing, tail.partition);
				EXECUTE pg_catalog.format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%L)',
										  p.landing, tail.partition,
										  COALESCE(pg_catalog.quote_literal(tail.lo::text), 'MINVALUE'), cut::text);
				UPDATE stage.landing_partition lp SET hi = cut
				 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) tail.pipeline_id
				   AND lp.part_no OPERATOR(pg_catalog.=) tail.part_no;
			ELSE
				EXECUTE pg_catalog.format('DROP TABLE %s', tail.partition);
				DELETE FROM stage.landing_partition lp
				 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) tail.pipeline_id
				   AND lp.part_no OPERATOR(pg_catalog.=) tail.part_no;
				PERFORM stage._landing_partition_add(p.pipeline_id, tail.lo, cut);
			END IF;
			PERFORM stage._landing_partition_add(p.pipeline_id, cut, NULL);
		EXCEPTION WHEN lock_not_available THEN
			NULL;
		END;
	END IF;
	PERFORM pg_catalog.set_config('lock_timeout', saved, true);
	/* counted: stage_landing_purged_rows_total, stage.hourly.rows_purged */
	IF n OPERATOR(pg_catalog.>) 0 THEN
		PERFORM stage._count(p.pipeline_id, pg_catalog.jsonb_build_array(
			pg_catalog.jsonb_build_array('stage_landing_purged_rows_total', '{}'::jsonb, n)), stage._shard(NULL));
		INSERT INTO stage.hourly AS h (pipeline_id, hour, rows_purged, shard)
		VALUES (p.pipeline_id, pg_catalog.date_trunc('hour', pg_catalog.now()), n, stage._shard(NULL))
		ON CONFLICT ON CONSTRAINT hourly_pkey
		DO UPDATE SET rows_purged = h.rows_purged OPERATOR(pg_catalog.+) EXCLUDED.rows_purged;
	END IF;
	RETURN n;
END
$$;

/*
 * Retention as stage.health shows it, for one pipeline (no check of the
 * caller: the views call it through stage._retention_state_for, which
 * checks that the caller may see the pipeline).
 *
 * oldest_landing_age: how long ago the first landing row still there (in
 * reading order) arrived.
 *
 * retention_compliance (M7): of the data past its policy, the share that
 * is gone.  Past its policy: landing ranges finished for longer than the
 * retention, history (batches, closed quarantine items, the duplicate log,
 * lineage events) older than the history retention, each given a grace of
 * two rounds of stage.retention_interval (at least a minute) to go.  Gone:
 * what retention removed over the last 24 hours (stage.hourly).  1 when
 * nothing is past its policy.
 */
CREATE FUNCTION stage._retention_state(pipeline_id integer,
									   OUT oldest_landing_age interval,
									   OUT retention_compliance double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p stage.pipeline;
	grace interval := GREATEST(2 OPERATOR(pg_catalog.*)
		COALESCE(NULLIF(pg_catalog.current_setting('stage.retention_interval', true), '')::interval, '10 s'::interval),
		'1 minute'::interval);
	overdue bigint := 0;
	gone bigint;
	part regclass;
	hcut timestamptz;
BEGIN
	SELECT * INTO STRICT p FROM stage.pipeline x
	 WHERE x.pipeline_id OPERATOR(pg_catalog.=) _retention_state.pipeline_id;
	/* as stage._purge_history: never before the landing retention */
	hcut := pg_catalog.now() OPERATOR(pg_catalog.-) GREATEST(p.history_retention, p.retention)
			OPERATOR(pg_catalog.-) grace;
	IF p.landing IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.landing) THEN
		EXECUTE pg_catalog.format('SELECT pg_catalog.now() OPERATOR(pg_catalog.-) l._stage_received_at FROM %s l'
								  ' ORDER BY l._stage_txid, l._stage_id LIMIT 1', p.landing)
		INTO oldest_landing_age;
	END IF;
	FOR part IN SELECT lp.partition FROM stage.landing_partition lp
				 WHERE lp.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
				   AND lp.finished_at OPERATOR(pg_catalog.<)
					   (pg_catalog.now() OPERATOR(pg_catalog.-) p.retention OPERATOR(pg_catalog.-) grace)
	LOOP
		overdue := overdue OPERATOR(pg_catalog.+) stage._partition_rows(part);
	END LOOP;
	overdue := overdue
		OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM stage.batch b
								 WHERE b.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
								   AND b.finished_at OPERATOR(pg_catalog.<) hcut
								   /* the newest batch stays (stage._purge_history) */
								   AND b.batch_id OPERATOR(pg_catalog.<) (SELECT pg_catalog.max(x.batch_id) FROM stage.batch x
																			 WHERE x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id)
								   AND NOT EXISTS (SELECT 1 FROM stage.quarantine_log q
													WHERE q.pipeline_id OPERATOR(pg_catalog.=) b.pipeline_id
													  AND q.batch_id OPERATOR(pg_catalog.=) b.batch_id
													  AND q.status OPERATOR(pg_catalog.=) 'open'))
		OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM stage.quarantine_log q
								 WHERE q.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
								   AND q.status OPERATOR(pg_catalog.<>) 'open'
								   AND q.closed_at OPERATOR(pg_catalog.<) hcut)
		OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM stage.duplicate_log d
								  JOIN stage.batch b ON b.batch_id OPERATOR(pg_catalog.=) d.batch_id
								 WHERE d.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
								   AND b.finished_at OPERATOR(pg_catalog.<) hcut)
		OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM stage.lineage_event e
								 WHERE e.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
								   AND e.created_at OPERATOR(pg_catalog.<) hcut);
	SELECT COALESCE(pg_catalog.sum(h.rows_purged OPERATOR(pg_catalog.+) h.history_purged), 0) INTO gone
	  FROM stage.hourly h
	 WHERE h.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id
	   AND h.hour OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('hour', pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval);
	retention_compliance := CASE WHEN overdue OPERATOR(pg_catalog.=) 0 THEN 1
								 ELSE gone::double precision OPERATOR(pg_catalog./) (gone OPERATOR(pg_catalog.+) overdue) END;
END
$$;


/* the two above for callers who may see the pipeline (src/landing.c): else NULL */
CREATE FUNCTION stage._retention_state_for(pipeline_id integer,
										   OUT oldest_landing_age interval,
										   OUT retention_compliance double precision)
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_retention_state_for';
CREATE FUNCTION stage._partition_rows_for(pipeline_id integer, part regclass)
RETURNS bigint
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_partition_rows_for';

/*
 * The ranges (partitions) of the landing tables, for the pipelines the
 * caller may see: their bounds, rows (an estimate: see
 * stage._partition_rows), size, and when they were finished and will be
 * dropped.
 */
CREATE VIEW stage.landing_partitions WITH (security_barrier) AS
SELECT p.name AS pipeline,
	   lp.partition,
	   lp.lo,
	   lp.hi,
	   stage._partition_rows_for(p.pipeline_id, lp.partition) AS rows,
	   pg_catalog.pg_total_relation_size(lp.partition) AS bytes,
	   lp.created_at,
	   lp.finished_at,
	   lp.finished_at OPERATOR(pg_catalog.+) p.retention AS drop_after
  FROM stage.landing_partition lp
  JOIN stage.pipeline p USING (pipeline_id)
 WHERE stage._may_see(p.owner);
GRANT SELECT ON stage.landing_partitions TO PUBLIC;
