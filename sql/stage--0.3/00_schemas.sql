/* stage--0.3.sql, built from the pieces in sql/stage--0.3/, in name order */

\echo Use "CREATE EXTENSION stage" to load this file. \quit

/*
 * Security model (docs/security.md):
 *  - the schemas are created here, so CREATE EXTENSION fails when either
 *    exists already: a schema made earlier by another role would be
 *    adopted, and that role could later replace or drop what is in it;
 *  - every table of the catalog belongs to the extension's owner (the
 *    "catalog owner") and nobody else holds any privilege on it;
 *  - the API functions that read or change the catalog are gates (C,
 *    'stage_api', guard.c): they note the caller, become the catalog owner
 *    and run stage._do_<name>, which checks what the caller may do with
 *    stage._owns() / stage._may_see();
 *  - every function runs with search_path = pg_catalog, pg_temp and
 *    schema-qualifies everything, operators included;
 *  - functions whose name starts with _ are internal: nobody but the
 *    catalog owner may execute them (90_privileges.sql checks it);
 *  - the views belong to the catalog owner and show each role the
 *    pipelines it may see (security_barrier).
 */

DO $$
BEGIN
	IF pg_catalog.to_regnamespace('stage') IS NOT NULL
	   OR pg_catalog.to_regnamespace('stage_landing') IS NOT NULL THEN
		RAISE EXCEPTION 'schema "stage" or "stage_landing" already exists'
			USING ERRCODE = 'duplicate_schema',
				  DETAIL = 'The extension creates both schemas and everything in them; an existing schema, and whatever its owner put in it, would stay under that role''s control.',
				  HINT = 'Find out who made the schema and why, drop or rename it, then run CREATE EXTENSION stage again.';
	END IF;
END
$$;
CREATE SCHEMA stage;
CREATE SCHEMA stage_landing;
GRANT USAGE ON SCHEMA stage TO PUBLIC;
GRANT USAGE ON SCHEMA stage_landing TO PUBLIC;
