--
-- nested: a batch started from inside a batch (a target trigger calling
-- stage.run_batch) runs in memory of its own, and both keep exactly once,
-- also when the outer batch bisects around a rejected row and so runs the
-- trigger, and the inner batch, more than once.
--
CREATE TABLE ne_inner (id int PRIMARY KEY, v text);
SELECT stage.create_pipeline('ne_inner', 'ne_inner', key => '{id}');
INSERT INTO stage_landing.ne_inner (id, v) SELECT g::text, 'x' FROM generate_series(1, 50) g;

CREATE TABLE ne_outer (id int PRIMARY KEY, v text);
CREATE FUNCTION ne_outer_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 3 THEN
		PERFORM * FROM stage.run_batch('ne_inner');
	END IF;
	IF NEW.id = 5 THEN
		RAISE EXCEPTION 'row 5 refused';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER ne_outer_trg BEFORE INSERT ON ne_outer FOR EACH ROW EXECUTE FUNCTION ne_outer_trg();
SELECT stage.create_pipeline('ne_outer', 'ne_outer', key => '{id}');
INSERT INTO stage_landing.ne_outer (id, v) SELECT g::text, 'y' FROM generate_series(1, 20) g;

-- 19 rows move, row 5 is quarantined by the trigger's error
SELECT rows_in, rows_clean, rows_quarantined FROM stage.run_batch('ne_outer');
SELECT landing_id, reasons->0->>'sqlstate' AS sqlstate, reasons->0->>'message' AS message
  FROM stage.quarantine WHERE pipeline = 'ne_outer';
-- the inner pipeline was drained once: its rows are all there, once, and
-- its window holds nothing more
SELECT count(*) AS inner_rows, count(DISTINCT id) AS distinct_ids FROM ne_inner;
SELECT rows_in, status FROM stage.run_batch('ne_inner');
SELECT count(*) AS inner_batches_done FROM stage.batches
 WHERE pipeline = 'ne_inner' AND status = 'done';
-- a batch after the nested one reuses the backend's batch memory normally
INSERT INTO stage_landing.ne_outer (id, v) VALUES ('21', 'y');
SELECT rows_in, rows_clean FROM stage.run_batch('ne_outer');

SELECT stage.drop_pipeline('ne_outer', force => true);
SELECT stage.drop_pipeline('ne_inner');
DROP TABLE ne_outer, ne_inner;
DROP FUNCTION ne_outer_trg();
