/*
 * scaleout_node.sql: a staging node of the scale-out scenario
 * (BENCH_SCENARIO=scaleout in scripts/bench.sh, test/bench/scaleout_run.sh).
 * Run by psql as postgres in the node's database, on both nodes alike,
 * before the worker is configured; stage.node_name is set in the node's
 * postgresql.conf.
 *
 * Two pipelines of the same contract, each into its own target:
 *   orders       published (stage.publish), moved on both nodes and
 *                replicated to the warehouse: part (b) and the lag part
 *   orders_solo  not published: part (a), one node alone, run before the
 *                warehouse subscribes
 * The contract: key order_id with on_duplicate 'skip', range, enum and
 * regex rules, the target's CHECK and NOT NULLs, an e-mail mask, and the
 * lineage columns _stage_id and _stage_node (filled by the mover).
 * Then the node's history is published too (stage.publish_history).
 *
 * bench.land(pipeline, lo, hi) lands the rows lo..hi of the benchmark's
 * partner data, 10,000 rows a transaction, as the producer does.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE ROLE orders_owner NOLOGIN;
CREATE ROLE stage_worker LOGIN;
GRANT orders_owner TO stage_worker;
CREATE ROLE producer LOGIN;

CREATE EXTENSION stage;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO producer;

CREATE PROCEDURE bench.make(t text) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE public.%I (
		order_id	bigint PRIMARY KEY,
		email		text NOT NULL,
		amount		numeric(12,2) NOT NULL,
		currency	char(3) NOT NULL,
		qty			integer NOT NULL CHECK (qty <> 13),
		code		text,
		ordered_at	timestamptz NOT NULL,
		_stage_id	bigint,
		_stage_node	text
	)', t);
	EXECUTE format('ALTER TABLE public.%I OWNER TO orders_owner', t);
	SET LOCAL ROLE orders_owner;
	PERFORM stage.create_pipeline(t, format('public.%I', t)::regclass, key => '{order_id}',
								  on_duplicate => 'skip');
	PERFORM stage.add_rule(t, 'amount', 'range', '{"min": 0, "max": 10000}');
	PERFORM stage.add_rule(t, 'currency', 'enum', '{"values": ["USD", "EUR", "GBP"]}');
	PERFORM stage.add_rule(t, 'code', 'regex', '{"pattern": "^[A-Z]{2}-[0-9]{4}$"}');
	PERFORM stage.add_mask(t, 'email', 'email');
	PERFORM stage.grant_producer(t, 'producer');
	RESET ROLE;
END $$;
CALL bench.make('orders');
CALL bench.make('orders_solo');

/*
 * Rows lo..hi, keys all distinct (the row number), about 5% bad: an
 * amount out of range, an unknown currency, a code that does not match
 * (one in 60 each), and qty 13 that the target's CHECK refuses (one in 600).
 */
CREATE PROCEDURE bench.land(pipeline text, lo bigint, hi bigint, chunk integer DEFAULT 10000)
LANGUAGE plpgsql AS $$
DECLARE
	s bigint := lo;
BEGIN
	WHILE s <= hi LOOP
		EXECUTE format($f$
			INSERT INTO stage_landing.%I (order_id, email, amount, currency, qty, code, ordered_at)
			SELECT g::text,
				   'user' || g || '@example.com',
				   CASE WHEN g %% 60 = 0 THEN '-5' ELSE ((g %% 100000) / 10.0)::text END,
				   CASE WHEN g %% 60 = 20 THEN 'XYZ' ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + g %% 3] END,
				   CASE WHEN g %% 600 = 300 THEN '13' ELSE (1 + g %% 10)::text END,
				   CASE WHEN g %% 60 = 40 THEN 'bad' ELSE 'AB-' || lpad((g %% 10000)::text, 4, '0') END,
				   to_char(timestamp '2024-01-01' + (g %% 31536000) * interval '1 second',
						   'YYYY-MM-DD HH24:MI:SS') || '+00'
			  FROM generate_series($1, $2) g$f$, pipeline)
		USING s, LEAST(s + chunk - 1, hi);
		COMMIT;
		s := s + chunk;
	END LOOP;
END $$;

-- rows taken by committed batches of a pipeline (drained: = its landing rows)
CREATE FUNCTION bench.moved(pipeline text) RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT COALESCE(sum(b.rows_in), 0)::bigint
	  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
	 WHERE p.name = pipeline AND b.status = 'done'
$$;

SELECT stage.publish('orders');
SELECT stage.publish_history();
