-- latency_setup.sql: the pipeline and the sampler of the handoff-latency
-- benchmark (scripts/latency.sh).  Run by psql as postgres in the database
-- the worker serves, before the worker is configured.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE ROLE events_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT events_owner TO stage_worker;
CREATE ROLE producer LOGIN;

CREATE EXTENSION stage;

-- the same shape and contract as the crash tests' orders: three rules, a
-- type check, target constraints and an email mask
CREATE TABLE public.events (
	event_id	bigint PRIMARY KEY,
	email		text NOT NULL,
	amount		numeric(12,2) NOT NULL,
	currency	char(3) NOT NULL,
	qty			integer NOT NULL CHECK (qty <> 13),
	code		text,
	_stage_id	bigint,
	_stage_batch bigint
);
ALTER TABLE public.events OWNER TO events_owner;
SET ROLE events_owner;
SELECT stage.create_pipeline('events', 'public.events', key => '{event_id}',
							 on_duplicate => 'skip');
SELECT stage.add_rule('events', 'amount', 'range', '{"min": 0, "max": 10000}');
SELECT stage.add_rule('events', 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
SELECT stage.add_rule('events', 'code', 'regex', '{"pattern": "^[A-Z]{2}-[0-9]{4}$"}');
SELECT stage.add_mask('events', 'email', 'email');
SELECT stage.grant_producer('events', 'producer');
RESET ROLE;

-- the backlog, sampled every second: landing rows committed and visible,
-- rows taken by committed batches, and the difference
CREATE SCHEMA lat;
CREATE TABLE lat.backlog (
	at			timestamptz NOT NULL,
	landed		bigint NOT NULL,
	moved		bigint NOT NULL,
	backlog		bigint NOT NULL
);

-- samples once a second for at least min_seconds, then until the backlog has
-- been 0 three times in a row, at most max_seconds
CREATE PROCEDURE lat.sample(min_seconds integer, max_seconds integer)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	i integer := 0;
	zeros integer := 0;
	l bigint;
	m bigint;
BEGIN
	LOOP
		-- one statement, one snapshot: both counts see the same commits
		SELECT (SELECT count(*) FROM stage_landing.events),
			   (SELECT COALESCE(sum(rows_in), 0) FROM stage.batch WHERE status = 'done')
		  INTO l, m;
		INSERT INTO lat.backlog VALUES (clock_timestamp(), l, m, l - m);
		COMMIT;
		zeros := CASE WHEN l = m THEN zeros + 1 ELSE 0 END;
		i := i + 1;
		EXIT WHEN (i > min_seconds AND zeros >= 3) OR i > max_seconds;
		-- the next whole second after the start
		PERFORM pg_sleep(GREATEST(0, extract(epoch FROM t0 + make_interval(secs => i) - clock_timestamp())));
	END LOOP;
END
$$;
