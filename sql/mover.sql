--
-- mover: stage.run_batch and stage.run_all.  Every committed landing row
-- ends in exactly one of target, quarantine or duplicate; batches are
-- exactly-once, chunked by max_rows, and rows the target itself rejects are
-- quarantined one by one while the rest moves.
--
-- Every object of this file is prefixed mv_; the file drops what it creates.
--
\set SHOW_CONTEXT never

-- The accounting identity of a pipeline: every landing row is counted once
-- as clean (sum of the batches' rows_clean), quarantined (a row in
-- stage.quarantine_log) or duplicate (a row in stage.duplicate_log), and no
-- landing row is both quarantined and a duplicate.
CREATE FUNCTION mv_accounting(pname text)
RETURNS TABLE (landing bigint, clean bigint, quarantined bigint, duplicate bigint,
			   balanced boolean, in_two_places bigint)
LANGUAGE plpgsql AS $$
DECLARE
	p stage.pipeline;
BEGIN
	SELECT * INTO p FROM stage.pipeline x WHERE x.name = pname;
	EXECUTE format('SELECT count(*) FROM %s', p.landing) INTO landing;
	SELECT coalesce(sum(b.rows_clean), 0) INTO clean
	  FROM stage.batch b WHERE b.pipeline_id = p.pipeline_id;
	SELECT count(*) INTO quarantined
	  FROM stage.quarantine_log q WHERE q.pipeline_id = p.pipeline_id;
	SELECT count(*) INTO duplicate
	  FROM stage.duplicate_log d WHERE d.pipeline_id = p.pipeline_id;
	SELECT count(*) INTO in_two_places
	  FROM stage.quarantine_log q JOIN stage.duplicate_log d USING (pipeline_id, landing_id)
	 WHERE q.pipeline_id = p.pipeline_id;
	balanced := landing = clean + quarantined + duplicate;
	RETURN NEXT;
END
$$;

----------------------------------------------------------------------------
-- 1. Counts and exactly-once
----------------------------------------------------------------------------
CREATE TABLE mv_basic (id integer, amount numeric(6,2));
SELECT stage.create_pipeline('mv_basic', 'mv_basic');
INSERT INTO stage_landing.mv_basic (id, amount)
VALUES ('1', '1.50'), ('2', 'oops'), ('3', NULL), ('4', '1e2');

-- nothing has run yet: no batch
SELECT count(*) AS batches FROM stage.batches WHERE pipeline = 'mv_basic';
SELECT batch_id IS NOT NULL AS has_batch, rows_in, rows_clean, rows_quarantined,
	   rows_duplicate, status
  FROM stage.run_batch('mv_basic');
SELECT * FROM mv_basic ORDER BY id;

-- running again moves nothing: the rows were taken exactly once
SELECT batch_id IS NULL AS no_batch, rows_in, status FROM stage.run_batch('mv_basic');
SELECT count(*) AS target_rows FROM mv_basic;

-- rows inserted after a batch go into the next one
INSERT INTO stage_landing.mv_basic (id, amount) VALUES ('5', '5'), ('6', '6');
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_basic');
SELECT id FROM mv_basic WHERE id >= 5 ORDER BY id;

-- a batch whose transaction rolls back never happened: the same rows are
-- taken again, and land once
INSERT INTO stage_landing.mv_basic (id, amount) VALUES ('7', '7');
BEGIN;
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_basic');
ROLLBACK;
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_basic');
SELECT count(*) AS sevens FROM mv_basic WHERE id = 7;

-- rows of a transaction that has not committed are not taken; they go in
-- a later batch once committed
BEGIN;
INSERT INTO stage_landing.mv_basic (id, amount) VALUES ('8', '8');
SELECT rows_in, status FROM stage.run_batch('mv_basic');
COMMIT;
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_basic');

-- stage.batches has one row per batch, with its counts and the last landing
-- id it took
SELECT status, rows_in, rows_clean, rows_quarantined, rows_duplicate, to_id,
	   error IS NULL AS no_error
  FROM stage.batches WHERE pipeline = 'mv_basic' ORDER BY batch_id;
SELECT * FROM mv_accounting('mv_basic');

----------------------------------------------------------------------------
-- 2. max_rows: a window is processed in chunks; each chunk is a batch
----------------------------------------------------------------------------
CREATE TABLE mv_chunks (id integer PRIMARY KEY, v text);
SELECT stage.create_pipeline('mv_chunks', 'mv_chunks', key => '{id}');
INSERT INTO stage_landing.mv_chunks (id, v) SELECT g::text, 'v' || g FROM generate_series(1, 10) g;
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
SELECT window_open FROM stage.pipelines WHERE pipeline = 'mv_chunks';
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
-- a row committed while the window is open waits for the next window
INSERT INTO stage_landing.mv_chunks (id, v) VALUES ('11', 'late');
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
SELECT window_open FROM stage.pipelines WHERE pipeline = 'mv_chunks';
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
SELECT rows_in, rows_clean, status FROM stage.run_batch('mv_chunks', 3);
-- four chunks of the first window (3, 3, 3, 1), then the late row's window
SELECT rows_in, to_id FROM stage.batches
 WHERE pipeline = 'mv_chunks' ORDER BY batch_id;
SELECT count(*), min(id), max(id) FROM mv_chunks;

-- stage.batch_size is the default chunk size
SET stage.batch_size = 2;
INSERT INTO stage_landing.mv_chunks (id, v) SELECT g::text, 'v' || g FROM generate_series(12, 14) g;
SELECT rows_in, status FROM stage.run_batch('mv_chunks');
SELECT rows_in, status FROM stage.run_batch('mv_chunks');
SELECT rows_in, status FROM stage.run_batch('mv_chunks');
RESET stage.batch_size;
SELECT * FROM mv_accounting('mv_chunks');

----------------------------------------------------------------------------
-- 3. Duplicate policies, within a batch and against rows already in the
--    target.  Keys compare as the key column's type: ' 2' and '02' are 2.
----------------------------------------------------------------------------
CREATE TABLE mv_skip (id integer PRIMARY KEY, v text);
INSERT INTO mv_skip VALUES (100, 'existing');
SELECT stage.create_pipeline('mv_skip', 'mv_skip', key => '{id}', on_duplicate => 'skip');
INSERT INTO stage_landing.mv_skip (id, v) VALUES
	('1', 'first'), ('1', 'second'), ('100', 'new'), ('2', 'a'), (' 2', 'b'), ('02', 'c');
-- skip: the first row of a key wins; later ones and keys already in the
-- target are counted as duplicates
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_skip');
SELECT * FROM mv_skip ORDER BY id;
SELECT landing_id FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
 WHERE p.name = 'mv_skip' ORDER BY 1;
-- and in a later batch, against the target
INSERT INTO stage_landing.mv_skip (id, v) VALUES ('2', 'again'), ('3', 'new');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_skip');
SELECT * FROM mv_skip ORDER BY id;
SELECT * FROM mv_accounting('mv_skip');

CREATE TABLE mv_update (id integer PRIMARY KEY, v text, n integer);
INSERT INTO mv_update VALUES (100, 'existing', 0);
SELECT stage.create_pipeline('mv_update', 'mv_update', key => '{id}', on_duplicate => 'update');
INSERT INTO stage_landing.mv_update (id, v, n) VALUES
	('1', 'first', '1'), ('1', 'second', '2'), ('100', 'changed', '3'), ('2', 'a', '4');
-- update: the last row of a key wins (earlier ones are duplicates) and a
-- key already in the target is updated in place
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_update');
SELECT * FROM mv_update ORDER BY id;
INSERT INTO stage_landing.mv_update (id, v, n) VALUES ('2', 'b', '5');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_update');
SELECT * FROM mv_update ORDER BY id;
SELECT * FROM mv_accounting('mv_update');

CREATE TABLE mv_quar (id integer PRIMARY KEY, v text);
INSERT INTO mv_quar VALUES (100, 'existing');
SELECT stage.create_pipeline('mv_quar', 'mv_quar', key => '{id}', on_duplicate => 'quarantine');
INSERT INTO stage_landing.mv_quar (id, v) VALUES
	('1', 'first'), ('1', 'second'), ('100', 'new'), ('2', 'a');
-- quarantine: later rows of a key and keys already in the target are
-- quarantined as unique violations (23505)
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_quar');
SELECT * FROM mv_quar ORDER BY id;
INSERT INTO stage_landing.mv_quar (id, v) VALUES ('3', 'b'), ('2', 'again');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_quar');
SELECT landing_id, rule_name, kind, column_name, reasons->0->>'sqlstate' AS sqlstate, message
  FROM stage.quarantine WHERE pipeline = 'mv_quar' ORDER BY landing_id;
SELECT * FROM mv_accounting('mv_quar');

-- a NULL key is never a duplicate: it is quarantined
INSERT INTO stage_landing.mv_quar (id, v) VALUES (NULL, 'no key');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('mv_quar');
SELECT rule_name, kind, column_name, reasons->0->>'sqlstate' AS sqlstate, message
  FROM stage.quarantine WHERE pipeline = 'mv_quar' AND landing_id = 7;

----------------------------------------------------------------------------
-- 4. The target's own constraints and triggers apply; a row they reject is
--    quarantined with the SQLSTATE and message, and the rest moves.
----------------------------------------------------------------------------
CREATE TABLE mv_customers (cust_id integer PRIMARY KEY);
INSERT INTO mv_customers VALUES (1), (2);
CREATE TABLE mv_orders (
	id		integer PRIMARY KEY,
	cust_id	integer REFERENCES mv_customers,
	qty		integer NOT NULL CHECK (qty > 0),
	code	text UNIQUE,
	note	text
);
CREATE FUNCTION mv_orders_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.note = 'boom' THEN
		RAISE EXCEPTION 'note may not be boom';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER mv_orders_check BEFORE INSERT ON mv_orders
	FOR EACH ROW EXECUTE FUNCTION mv_orders_check();
SELECT stage.create_pipeline('mv_orders', 'mv_orders', key => '{id}');
INSERT INTO stage_landing.mv_orders (id, cust_id, qty, code, note) VALUES
	('1', '1', '5', 'A', 'ok'),
	('2', '1', '0', 'B', 'ok'),		-- CHECK (qty > 0)
	('3', '1', NULL, 'C', 'ok'),	-- NOT NULL qty
	('4', '9', '1', 'D', 'ok'),		-- FK: no customer 9
	('5', '2', '1', 'A', 'ok'),		-- UNIQUE (code): A is taken by row 1
	('6', '2', '1', 'F', 'boom'),	-- the trigger raises
	('7', '2', '1', 'G', 'ok');
SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate FROM stage.run_batch('mv_orders');
SELECT * FROM mv_orders ORDER BY id;
SELECT landing_id, rule_name, kind, column_name, reasons->0->>'sqlstate' AS sqlstate, message
  FROM stage.quarantine WHERE pipeline = 'mv_orders' ORDER BY landing_id;
SELECT * FROM mv_accounting('mv_orders');

----------------------------------------------------------------------------
-- 5. jsonb landing: keys map to target columns by name; absent keys and
--    JSON nulls are NULL, nested values arrive as their JSON text
----------------------------------------------------------------------------
CREATE TABLE mv_docs (id integer, name text, tags text, amount numeric, active boolean);
SELECT stage.create_pipeline('mv_docs', 'mv_docs', format => 'jsonb');
INSERT INTO stage_landing.mv_docs (payload) VALUES
	('{"id": 1, "name": "a", "amount": 1.5, "active": true}'),
	('{"id": "2", "name": null, "active": "no"}'),
	('{"id": 3, "tags": ["x", "y"], "amount": "1e3"}'),
	('{"id": "four", "name": "bad id"}');
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('mv_docs');
SELECT * FROM mv_docs ORDER BY id;
SELECT landing_id, row_data, rule_name, message
  FROM stage.quarantine WHERE pipeline = 'mv_docs';

----------------------------------------------------------------------------
-- 6. run_all: batches every enabled pipeline until none has pending rows
--    and returns the number of landing rows processed; paused pipelines wait
----------------------------------------------------------------------------
INSERT INTO stage_landing.mv_basic (id, amount) VALUES ('20', '1'), ('21', '2'), ('22', 'x');
INSERT INTO stage_landing.mv_skip (id, v) VALUES ('20', 'a'), ('20', 'b');
INSERT INTO stage_landing.mv_docs (payload) VALUES ('{"id": 20}');
INSERT INTO stage_landing.mv_quar (id, v) VALUES ('20', 'paused');
SELECT stage.pause('mv_quar');
SET stage.batch_size = 2;
SELECT stage.run_all();
RESET stage.batch_size;
SELECT stage.run_all();
SELECT count(*) AS mv_basic_20s FROM mv_basic WHERE id >= 20;
SELECT count(*) AS mv_quar_20s FROM mv_quar WHERE id = 20;
SELECT stage.resume('mv_quar');
SELECT stage.run_all();
SELECT count(*) AS mv_quar_20s FROM mv_quar WHERE id = 20;

-- in the end, every pipeline balances: each landing row is in exactly one place
SELECT p.name, a.*
  FROM stage.pipeline p, mv_accounting(p.name) a
 WHERE p.name LIKE 'mv\_%' ORDER BY p.name;
-- and the batches' own counters agree with the outcome tables
SELECT p.name,
	   sum(b.rows_in) = sum(b.rows_clean + b.rows_quarantined + b.rows_duplicate) AS rows_in_adds_up,
	   sum(b.rows_quarantined) = (SELECT count(*) FROM stage.quarantine_log q
								   WHERE q.pipeline_id = p.pipeline_id) AS quarantined_agrees,
	   sum(b.rows_duplicate) = (SELECT count(*) FROM stage.duplicate_log d
								 WHERE d.pipeline_id = p.pipeline_id) AS duplicates_agree
  FROM stage.pipeline p JOIN stage.batch b USING (pipeline_id)
 WHERE p.name LIKE 'mv\_%' GROUP BY p.pipeline_id, p.name ORDER BY p.name;

DO $$
DECLARE
	n text;
BEGIN
	FOR n IN SELECT name FROM stage.pipeline WHERE name LIKE 'mv\_%' ORDER BY name LOOP
		PERFORM stage.drop_pipeline(n, force => true);
	END LOOP;
END
$$;
SELECT count(*) AS mv_pipelines_left FROM stage.pipelines WHERE pipeline LIKE 'mv\_%';
DROP TABLE mv_basic, mv_chunks, mv_skip, mv_update, mv_quar, mv_orders, mv_customers, mv_docs;
DROP FUNCTION mv_orders_check(), mv_accounting(text);
