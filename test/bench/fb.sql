/*
 * fb.sql: what the move scenarios of scripts/bench.sh share (fresh_main.sql,
 * parallel_setup.sql): the extension, the schema fb and fb.drain, what a
 * worker does with a pipeline: one batch a transaction until nothing is
 * left.  Included with \ir, output off.
 */
CREATE EXTENSION stage;
CREATE SCHEMA fb;
CREATE PROCEDURE fb.drain(p text) LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	LOOP
		SELECT status INTO st FROM stage.run_batch(p);
		COMMIT;
		/* empty: nothing left; busy: another mover holds every lane left */
		EXIT WHEN st <> 'done';
	END LOOP;
END $$;
