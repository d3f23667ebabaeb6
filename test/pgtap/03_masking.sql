-- 03_masking.sql: the masking objects' schema and security properties
-- (docs/masking.md): functions, their volatility and who may execute them,
-- the token vault, the column privileges of quarantine_log, the checks on
-- stage.mask and stage.secret, and the roles made by stage.create_roles().
--
-- Everything is created inside the transaction and rolled back.
BEGIN;
SELECT plan(63);

-- ------------------------------------------------------------ functions (16)
SELECT has_function('stage', 'mask', ARRAY['text', 'text', 'jsonb'], 'stage.mask(value, method, args)');
SELECT has_function('stage', 'mask_hash', ARRAY['text', 'text', 'integer', 'text'], 'stage.mask_hash');
SELECT has_function('stage', 'pseudonymize', ARRAY['text', 'text', 'text', 'boolean'], 'stage.pseudonymize');
SELECT has_function('stage', 'mask_phone', ARRAY['text', 'integer', 'text'], 'stage.mask_phone');
SELECT has_function('stage', 'redact', ARRAY['text', 'text', 'text', 'text'], 'stage.redact');
SELECT has_function('stage', 'redact_pii', ARRAY['text', 'text[]', 'text'], 'stage.redact_pii');
SELECT has_function('stage', 'mask_generalize', ARRAY['text', 'text'], 'stage.mask_generalize(text, unit)');
SELECT has_function('stage', 'mask_generalize', ARRAY['numeric', 'numeric'], 'stage.mask_generalize(numeric, bucket)');
SELECT has_function('stage', 'mask_noise', ARRAY['numeric', 'double precision'], 'stage.mask_noise(value, ratio)');
SELECT has_function('stage', 'mask_noise', ARRAY['numeric', 'double precision', 'bigint'], 'stage.mask_noise seeded');
SELECT has_function('stage', 'tokenize', ARRAY['text', 'text'], 'stage.tokenize');
SELECT has_function('stage', 'detokenize', ARRAY['text'], 'stage.detokenize');
SELECT has_function('stage', 'import_secret', ARRAY['text', 'oid', 'text'], 'stage.import_secret');
SELECT has_function('stage', 'drop_secret', ARRAY['text', 'boolean'], 'stage.drop_secret');
SELECT has_function('stage', 'quarantine_raw', ARRAY['text'], 'stage.quarantine_raw');
SELECT has_function('stage', 'create_roles', ARRAY[]::name[], 'stage.create_roles');

-- ---------------------------------------------------------- volatility (14)
SELECT volatility_is('stage', 'mask_phone', ARRAY['text', 'integer', 'text'], 'immutable', 'mask_phone is IMMUTABLE');
SELECT volatility_is('stage', 'redact', ARRAY['text', 'text', 'text', 'text'], 'immutable', 'redact is IMMUTABLE');
SELECT volatility_is('stage', 'redact_pii', ARRAY['text', 'text[]', 'text'], 'immutable', 'redact_pii is IMMUTABLE');
SELECT volatility_is('stage', 'mask_generalize', ARRAY['text', 'text'], 'immutable', 'mask_generalize(text) is IMMUTABLE');
SELECT volatility_is('stage', 'mask_generalize', ARRAY['date', 'text'], 'immutable', 'mask_generalize(date) is IMMUTABLE');
SELECT volatility_is('stage', 'mask_generalize', ARRAY['timestamp with time zone', 'text'], 'stable',
	'mask_generalize(timestamptz) is STABLE (session time zone)');
SELECT volatility_is('stage', 'mask_noise', ARRAY['numeric', 'double precision'], 'volatile',
	'mask_noise without a seed is VOLATILE');
SELECT volatility_is('stage', 'mask_noise', ARRAY['numeric', 'double precision', 'bigint'], 'immutable',
	'mask_noise with a seed is IMMUTABLE');
SELECT volatility_is('stage', 'mask_noise', ARRAY['numeric', 'double precision', 'text'], 'stable',
	'mask_noise keyed by a secret is STABLE');
SELECT volatility_is('stage', 'mask_hash', ARRAY['text', 'text', 'integer', 'text'], 'stable',
	'mask_hash is STABLE (a secret can be dropped)');
SELECT volatility_is('stage', 'pseudonymize', ARRAY['text', 'text', 'text', 'boolean'], 'stable', 'pseudonymize is STABLE');
SELECT volatility_is('stage', 'tokenize', ARRAY['text', 'text'], 'volatile', 'tokenize is VOLATILE (writes the vault)');
SELECT volatility_is('stage', 'detokenize', ARRAY['text'], 'stable', 'detokenize is STABLE');
SELECT volatility_is('stage', 'mask', ARRAY['text', 'text', 'jsonb'], 'volatile', 'stage.mask is VOLATILE (any method)');

-- ------------------------------------------------- who may execute (12)
SELECT is(has_function_privilege('public', 'stage.mask_phone(text, integer, text)', 'EXECUTE'), true,
	'PUBLIC may execute mask_phone (no secret)');
SELECT is(has_function_privilege('public', 'stage.redact_pii(text, text[], text)', 'EXECUTE'), true,
	'PUBLIC may execute redact_pii');
SELECT is(has_function_privilege('public', 'stage.scan_pii(text)', 'EXECUTE'), true,
	'PUBLIC may execute scan_pii');
SELECT is(has_function_privilege('public', 'stage.mask_hash(text, text, integer, text)', 'EXECUTE'), false,
	'PUBLIC may not execute mask_hash (a guessing oracle)');
SELECT is(has_function_privilege('public', 'stage.pseudonymize(text, text, text, boolean)', 'EXECUTE'), false,
	'PUBLIC may not execute pseudonymize');
SELECT is(has_function_privilege('public', 'stage.tokenize(text, text)', 'EXECUTE'), false,
	'PUBLIC may not execute tokenize');
SELECT is(has_function_privilege('public', 'stage.detokenize(text)', 'EXECUTE'), false,
	'PUBLIC may not execute detokenize');
SELECT is(has_function_privilege('public', 'stage.mask(text, text, jsonb)', 'EXECUTE'), false,
	'PUBLIC may not execute stage.mask (it can hash)');
SELECT is(has_function_privilege('public', 'stage.import_secret(text, oid, text)', 'EXECUTE'), false,
	'PUBLIC may not import secrets');
SELECT is(has_function_privilege('public', 'stage.drop_secret(text, boolean)', 'EXECUTE'), false,
	'PUBLIC may not drop secrets');
SELECT is(has_function_privilege('public', 'stage.create_roles()', 'EXECUTE'), false,
	'PUBLIC may not create the roles');
SELECT is(has_function_privilege('public', 'stage.quarantine_raw(text)', 'EXECUTE'), true,
	'PUBLIC may call quarantine_raw (it checks ownership itself)');

-- ------------------------------------------------------ data at rest (9)
SELECT has_table('stage', 'token_vault', 'the token vault exists');
SELECT col_is_pk('stage', 'token_vault', ARRAY['secret', 'digest'], 'one token per (secret, value digest)');
SELECT col_is_unique('stage', 'token_vault', ARRAY['token'], 'tokens are unique');
SELECT is(has_table_privilege('public', 'stage.token_vault', 'SELECT'), false, 'PUBLIC cannot read the vault');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'stage.token_vault'::regclass),
	'row-level security is on for the vault (no policy: owner only)');
SELECT is(has_column_privilege('public', 'stage.quarantine_log', 'raw_data', 'SELECT'), false,
	'PUBLIC cannot read quarantine_log.raw_data');
SELECT is(has_column_privilege('public', 'stage.quarantine_log', 'row_data', 'SELECT'), false,
	'PUBLIC may not read quarantine_log.row_data either (stage.quarantine shows each role what it may see)');
SELECT ok(EXISTS (SELECT 1 FROM pg_extension e, unnest(e.extconfig) c
				   WHERE e.extname = 'stage' AND c = 'stage.token_vault'::regclass),
	'the vault is dumped with the database (tokens stay reversible after a restore)');
SELECT is_empty($$SELECT 1 FROM stage.token_vault$$, 'the vault starts empty');

-- ------------------------------------------------------------ checks (6)
SELECT has_trigger('stage', 'mask', 'mask_check', 'stored masks are checked against their column');
SELECT has_trigger('stage', 'secret', 'secret_check', 'stored secrets are checked before the constraints');
SELECT hasnt_trigger('stage', 'pipeline', 'raw_access', 'no role is granted raw_data (owners read it through stage.quarantine_raw)');
SELECT is(has_function_privilege('public', 'stage._decode_key(bytea, text)', 'EXECUTE'), false,
	'PUBLIC may not call the key decoder');
SELECT is(has_function_privilege('public', 'stage.import_secret_file(text, text, text)', 'EXECUTE'), false,
	'PUBLIC may not import secrets from server files');
SELECT throws_ok($$INSERT INTO stage.secret (name, key) VALUES ('t_short', '\x00')$$,
	'22023', 'a secret key must be 16 to 1024 bytes long',
	'a short key is refused by the check, not by a constraint that would print it');

-- ------------------------------------------------------------- roles (6)
SELECT is((SELECT count(*)::int FROM pg_roles WHERE rolname IN ('stage_producer', 'stage_analyst')), 0,
	'CREATE EXTENSION creates no role');
SELECT results_eq($$SELECT role_name::text COLLATE "default", created FROM stage.create_roles() ORDER BY 1$$,
	$$VALUES ('stage_analyst', true), ('stage_producer', true)$$,
	'create_roles makes stage_producer and stage_analyst');
SELECT is((SELECT bool_and(NOT rolcanlogin AND NOT rolsuper) FROM pg_roles
			WHERE rolname IN ('stage_producer', 'stage_analyst')), true, 'both are NOLOGIN group roles');
SELECT is(has_table_privilege('stage_analyst', 'stage.quarantine', 'SELECT'), true,
	'stage_analyst reads stage.quarantine');
SELECT is(has_column_privilege('stage_analyst', 'stage.quarantine_log', 'raw_data', 'SELECT'), false,
	'stage_analyst cannot read raw_data');
SELECT is(has_table_privilege('stage_analyst', 'stage.secret', 'SELECT'), false,
	'stage_analyst cannot read secrets');

SELECT * FROM finish();
ROLLBACK;
