-- soak_setup.sql: the soak test (scripts/soak.sh, `make soak`): the
-- handoff-latency benchmark's pipeline `events`, roles and producer
-- (latency_setup.sql, latency_produce.sql), a retention of :'retention'
-- (and the same history retention when stage.set_retention takes one),
-- and the sampler.  Only the SQL API and the landing table's columns are
-- used, never its physical layout.
\set ON_ERROR_STOP 1
\ir latency_setup.sql
SET client_min_messages = warning;

CREATE SCHEMA soak;
CREATE TABLE soak.conf AS
SELECT :'retention'::interval AS retention,
	   EXISTS (SELECT FROM pg_proc
				WHERE pronamespace = 'stage'::regnamespace AND proname = 'set_retention'
				  AND 'history_retention' = ANY (proargnames)) AS history_retention;

SELECT CASE WHEN history_retention
			THEN format('SELECT stage.set_retention(%L, %L, history_retention => %L)', 'events', retention, retention)
			ELSE format('SELECT stage.set_retention(%L, %L)', 'events', retention) END AS set_sql
  FROM soak.conf \gset
SET ROLE events_owner;
:set_sql \g
RESET ROLE;

/* the landing table with all its partitions (pg_partition_tree gives a plain table itself) */
CREATE FUNCTION soak.total_bytes(t regclass) RETURNS bigint LANGUAGE sql AS $$
	SELECT COALESCE((SELECT sum(pg_total_relation_size(relid))::bigint
					   FROM pg_partition_tree(t) WHERE isleaf), pg_total_relation_size(t))
$$;
CREATE FUNCTION soak.estimate(t regclass) RETURNS bigint LANGUAGE sql AS $$
	SELECT sum(GREATEST(c.reltuples, 0))::bigint
	  FROM pg_class c
	 WHERE c.oid IN (SELECT relid FROM pg_partition_tree(t) WHERE isleaf)
$$;

CREATE TABLE soak.sample (
	t_s				double precision NOT NULL,	-- seconds since the producers started
	landing_bytes	bigint,
	landing_rows	bigint,		-- count(*)
	landing_estimate bigint,	-- reltuples of every partition (autovacuum's estimate)
	batch_bytes		bigint,
	rule_stat_bytes	bigint,
	quarantine_bytes bigint,
	duplicate_bytes	bigint,
	lineage_bytes	bigint,
	counter_bytes	bigint,		-- stage.counter and stage.hourly
	history_bytes	bigint,		-- the six above
	p50_ms			double precision,	-- stage.health, the last hour's batches
	p95_ms			double precision,
	backlog			bigint,		-- stage.backlog
	purged			bigint,		-- rows this sample's stage.purge() took (NULL: not run by the harness)
	batches			bigint,		-- rows of stage.batch kept
	quarantine_items bigint		-- rows of stage.quarantine_log kept
);

/*
 * Samples every `every` seconds for `seconds` seconds after the start (the
 * first at 0), each in its own transaction; with purge, calls
 * stage.purge('events') before each sample, as a cron job would.
 */
CREATE PROCEDURE soak.run(t0 timestamptz, seconds integer, every integer, purge boolean,
						  dlq_age interval)
LANGUAGE plpgsql AS $$
DECLARE
	i integer := 0;
	n bigint;
	s soak.sample;
BEGIN
	LOOP
		n := NULL;
		IF purge THEN
			n := stage.purge('events');
			COMMIT;
		END IF;
		/*
		 * The on-call works the quarantine off: items older than dlq_age
		 * are dismissed (closed items then expire with the history).
		 * Without it, open items (which never expire) grow with the 4%
		 * bad rows, and so would history.
		 */
		IF dlq_age IS NOT NULL THEN
			PERFORM stage.dismiss('events',
				ARRAY(SELECT q.landing_id FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
					   WHERE p.name = 'events' AND q.status = 'open'
						 AND q.quarantined_at < clock_timestamp() - dlq_age),
				'soak: the on-call dismisses what is older than the retention');
			COMMIT;
		END IF;
		SELECT extract(epoch FROM clock_timestamp() - t0),
			   soak.total_bytes('stage_landing.events'),
			   (SELECT count(*) FROM stage_landing.events),
			   soak.estimate('stage_landing.events'),
			   pg_total_relation_size('stage.batch'),
			   pg_total_relation_size('stage.batch_rule_stat'),
			   pg_total_relation_size('stage.quarantine_log'),
			   pg_total_relation_size('stage.duplicate_log'),
			   pg_total_relation_size('stage.lineage_event'),
			   pg_total_relation_size('stage.counter') + pg_total_relation_size('stage.hourly'),
			   NULL, h.handoff_latency_p50_ms, h.handoff_latency_p95_ms,
			   stage.backlog('events'), n,
			   (SELECT count(*) FROM stage.batch), (SELECT count(*) FROM stage.quarantine_log)
		  INTO s
		  FROM stage.health h WHERE h.pipeline = 'events';
		s.history_bytes := s.batch_bytes + s.rule_stat_bytes + s.quarantine_bytes + s.duplicate_bytes
						   + s.lineage_bytes + s.counter_bytes;
		INSERT INTO soak.sample SELECT s.*;
		COMMIT;
		i := i + 1;
		EXIT WHEN i * every > seconds;
		PERFORM pg_sleep(GREATEST(0, extract(epoch FROM t0 + make_interval(secs => i * every) - clock_timestamp())));
	END LOOP;
END
$$;
