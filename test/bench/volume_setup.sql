/*
 * volume_setup.sql: the volume scenario (BENCH_SCENARIO=volume, driven by
 * test/bench/volume_run.sh): one pipeline whose landing table fills with
 * finished rows while run_batch is timed at marks, then a purge.  Only the
 * SQL API and the landing table's columns are used, never its physical
 * layout, so the scenario runs the same on a plain or a partitioned
 * landing table.
 *
 *   vol.land(lo, hi)    lands rows lo..hi, a transaction per 1,000,000
 *   vol.move(mark, timed, max_rows)
 *                       run_batch until the landing table is drained, a
 *                       transaction a batch; timed: recorded in vol.mark
 *                       with the sizes after it
 *   vol.sizes()         landing (every partition), target and history sizes
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION stage;
CREATE SCHEMA vol;

/* a typical event: six columns, about 100 bytes of text a row */
CREATE TABLE vol.orders (
	order_id	bigint PRIMARY KEY,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	ordered_at	timestamptz NOT NULL,
	note		text,
	_stage_id	bigint,
	_stage_batch bigint
);
SELECT stage.create_pipeline('vol', 'vol.orders', key => '{order_id}', on_duplicate => 'skip');
SELECT stage.add_rule('vol', 'amount', 'range', '{"min": 0, "max": 100000}');
SELECT stage.add_rule('vol', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
/*
 * The retention stays 7 days (finished rows stay); landing partitions of
 * 10 seconds of the cluster's transactions, so that the first purge rows
 * fill whole partitions of their own.  stage.purge() runs as the worker
 * runs it, every 10 s (here: after each landed million, and every 10 s of
 * a move): it marks the finished partitions and makes the ones ahead.
 */
SELECT stage.set_retention('vol', partition_interval => '10 seconds');

/* rows lo..hi; 4% bad: every 50th amount negative, every 50th currency unknown */
CREATE PROCEDURE vol.land(lo bigint, hi bigint) LANGUAGE plpgsql AS $$
DECLARE
	a bigint := lo;
	b bigint;
BEGIN
	WHILE a <= hi LOOP
		b := LEAST(hi, a + 999999);
		INSERT INTO stage_landing.vol (order_id, email, amount, currency, ordered_at, note)
		SELECT g::text,
			   'customer' || g || '@example.com',
			   CASE WHEN g % 50 = 0 THEN '-1.00' ELSE ((g % 1000000) / 100.0)::numeric(12,2)::text END,
			   CASE WHEN g % 50 = 25 THEN 'XYZ' ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + g % 3] END,
			   (timestamptz '2026-01-01' + g * interval '1 second')::text,
			   'order note ' || md5(g::text)
		  FROM generate_series(a, b) g;
		COMMIT;
		PERFORM stage.purge('vol');
		COMMIT;
		a := b + 1;
	END LOOP;
END $$;

CREATE TABLE vol.mark (
	mark			bigint PRIMARY KEY,	-- finished landing rows after the timed move
	rows_in			bigint NOT NULL,
	batches			bigint NOT NULL,
	seconds			double precision NOT NULL,
	landing_rows	bigint,
	landing_bytes	bigint,
	target_bytes	bigint,
	batch_bytes		bigint,
	rule_stat_bytes	bigint,
	quarantine_bytes bigint,
	duplicate_bytes	bigint,
	lineage_bytes	bigint,
	counter_bytes	bigint,		-- stage.counter and stage.hourly
	quarantine_items bigint,
	batch_rows		bigint
);

/* the last landing id of a partition (its index, from the end) */
CREATE FUNCTION vol.last_id(part regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	r bigint;
BEGIN
	EXECUTE format('SELECT _stage_id FROM %s ORDER BY _stage_txid DESC, _stage_id DESC LIMIT 1', part) INTO r;
	RETURN COALESCE(r, 0);
END $$;

/* the landing table with all its partitions (pg_partition_tree gives a plain table itself) */
CREATE FUNCTION vol.landing_bytes(t regclass) RETURNS bigint LANGUAGE sql AS $$
	SELECT COALESCE((SELECT sum(pg_total_relation_size(relid))::bigint
					   FROM pg_partition_tree(t) WHERE isleaf), pg_total_relation_size(t))
$$;

CREATE FUNCTION vol.sizes(OUT landing_rows bigint, OUT landing_bytes bigint, OUT target_bytes bigint,
						  OUT batch_bytes bigint, OUT rule_stat_bytes bigint,
						  OUT quarantine_bytes bigint, OUT duplicate_bytes bigint,
						  OUT lineage_bytes bigint, OUT counter_bytes bigint,
						  OUT quarantine_items bigint, OUT batch_rows bigint)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM stage_landing.vol),
		   vol.landing_bytes('stage_landing.vol'),
		   pg_total_relation_size('vol.orders'),
		   pg_total_relation_size('stage.batch'),
		   pg_total_relation_size('stage.batch_rule_stat'),
		   pg_total_relation_size('stage.quarantine_log'),
		   pg_total_relation_size('stage.duplicate_log'),
		   pg_total_relation_size('stage.lineage_event'),
		   pg_total_relation_size('stage.counter') + pg_total_relation_size('stage.hourly'),
		   (SELECT count(*) FROM stage.quarantine_log),
		   (SELECT count(*) FROM stage.batch)
$$;

CREATE PROCEDURE vol.move(mark bigint, timed boolean, max_rows integer) LANGUAGE plpgsql AS $$
DECLARE
	r record;
	t0 timestamptz := clock_timestamp();
	s double precision;
	n bigint := 0;
	nb bigint := 0;
	maintained timestamptz := clock_timestamp();
BEGIN
	LOOP
		SELECT * INTO r FROM stage.run_batch('vol', max_rows);
		COMMIT;
		/* retention's round, as the worker runs it (part of the time measured) */
		IF clock_timestamp() - maintained > interval '10 seconds' THEN
			PERFORM stage.purge('vol');
			COMMIT;
			maintained := clock_timestamp();
		END IF;
		EXIT WHEN r.status IS DISTINCT FROM 'done' OR r.rows_in = 0;
		n := n + r.rows_in;
		nb := nb + 1;
	END LOOP;
	s := extract(epoch FROM clock_timestamp() - t0);
	IF r.status NOT IN ('done', 'empty') THEN
		RAISE EXCEPTION 'run_batch ended with status % after % rows', r.status, n;
	END IF;
	IF timed THEN
		INSERT INTO vol.mark
		SELECT mark, n, nb, s, z.* FROM vol.sizes() z;
	END IF;
END $$;

/* the purge and its baseline */
CREATE TABLE vol.purge (
	what		text PRIMARY KEY,
	rows		bigint,
	seconds		double precision,
	bytes_before bigint,
	bytes_after	bigint
);
