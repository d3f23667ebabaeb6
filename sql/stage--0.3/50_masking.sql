/* ------------------------------------------------ checks as functions */

CREATE FUNCTION stage.regex_match(value text, pattern text, flags text DEFAULT '')
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_match';

CREATE FUNCTION stage.regex_replace(value text, pattern text, replacement text, flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_replace';

CREATE FUNCTION stage.regex_extract(value text, pattern text, flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_regex_extract';

CREATE FUNCTION stage.is_email(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_is_email';

CREATE FUNCTION stage.iban_valid(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_iban_valid';

CREATE FUNCTION stage.scan_pii(value text)
RETURNS TABLE(kind text, start integer, length integer)
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_scan_pii';

CREATE FUNCTION stage.luhn_valid(value text)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_luhn_valid';


/* ============================================================ masking */

/*
 * Masking and PII protection (docs/masking.md): the mask methods as SQL
 * functions, the checks behind stage.add_mask, secrets (import, drop), the
 * token vault, the quarantine as analysts see it, and the documented roles.
 *
 * Volatility is what each function truly is: pure text functions are
 * IMMUTABLE; functions keyed by a secret are STABLE (a secret can be
 * dropped, never changed in place); noise without a seed and tokenize are
 * VOLATILE.  Functions that use a secret are not executable by PUBLIC
 * (whoever computes them can test guesses against masked columns); they
 * also check the secret was granted to the caller (stage.grant_secret).
 */

/* ---------------------------------------------- mask method functions */

CREATE FUNCTION stage.hmac(value text, secret text DEFAULT 'default')
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_hmac';
/* whoever can call it can test guesses against hashed columns */
REVOKE ALL ON FUNCTION stage.hmac(text, text) FROM PUBLIC;

CREATE FUNCTION stage.mask_email(value text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_email';

CREATE FUNCTION stage.mask_partial(value text, keep_start integer DEFAULT 1,
								   keep_end integer DEFAULT 0, fill text DEFAULT '*')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_partial';

CREATE FUNCTION stage.mask_card(value text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_card';


CREATE FUNCTION stage.mask(value text, method text, args jsonb DEFAULT '{}')
RETURNS text LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_mask';
COMMENT ON FUNCTION stage.mask(text, text, jsonb) IS
	'any mask method applied to one value, exactly as stage.add_mask applies it';
REVOKE ALL ON FUNCTION stage.mask(text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION stage.mask_hash(value text, secret text DEFAULT 'default',
								length integer DEFAULT 0, encoding text DEFAULT 'hex')
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_hash';
REVOKE ALL ON FUNCTION stage.mask_hash(text, text, integer, text) FROM PUBLIC;

CREATE FUNCTION stage.pseudonymize(value text, secret text DEFAULT 'default',
								   kind text DEFAULT 'auto', keep_domain boolean DEFAULT true)
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_pseudonymize';
REVOKE ALL ON FUNCTION stage.pseudonymize(text, text, text, boolean) FROM PUBLIC;

CREATE FUNCTION stage.mask_phone(value text, keep integer DEFAULT 4, fill text DEFAULT '*')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_phone';

CREATE FUNCTION stage.redact(value text, pattern text, replacement text DEFAULT '[redacted]',
							 flags text DEFAULT '')
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_redact';

CREATE FUNCTION stage.redact_pii(value text, kinds text[] DEFAULT NULL,
								 replacement text DEFAULT NULL)
RETURNS text LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_redact_pii';

CREATE FUNCTION stage.mask_generalize(value text, unit text)
RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_text';

CREATE FUNCTION stage.mask_generalize(value date, unit text)
RETURNS date LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_date';

CREATE FUNCTION stage.mask_generalize(value timestamp, unit text)
RETURNS timestamp LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_timestamp';

/* truncated in the session's time zone: STABLE */
CREATE FUNCTION stage.mask_generalize(value timestamptz, unit text)
RETURNS timestamptz LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_timestamptz';

CREATE FUNCTION stage.mask_generalize(value numeric, bucket numeric)
RETURNS numeric LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_generalize_numeric';

/* fresh noise on every call */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision)
RETURNS numeric LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_noise';

/* seeded: the same value always gets the same noise */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision, seed bigint)
RETURNS numeric LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_mask_noise';

/* keyed: the same value always gets the same noise, unknown without the secret */
CREATE FUNCTION stage.mask_noise(value numeric, ratio double precision, secret text)
RETURNS numeric LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_mask_noise_keyed';
REVOKE ALL ON FUNCTION stage.mask_noise(numeric, double precision, text) FROM PUBLIC;

/* ------------------------------------------------------- token vault */


CREATE FUNCTION stage.tokenize(value text, secret text DEFAULT 'default')
RETURNS text LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_tokenize';
REVOKE ALL ON FUNCTION stage.tokenize(text, text) FROM PUBLIC;

CREATE FUNCTION stage.detokenize(token text)
RETURNS text LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_detokenize';
COMMENT ON FUNCTION stage.detokenize(text) IS
	'the value behind a token: superusers and roles granted the token''s secret only';
REVOKE ALL ON FUNCTION stage.detokenize(text) FROM PUBLIC;

/* -------------------------------------------------- masks on columns */

/*
 * Every stored mask is checked against its column (type, length, NOT NULL)
 * however it is stored (add_mask, set_contract): a mask whose output the
 * column refuses would send every row to quarantine.
 */
CREATE FUNCTION stage._mask_check() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', 'stage_mask_check';
CREATE TRIGGER mask_check BEFORE INSERT OR UPDATE ON stage.mask
	FOR EACH ROW EXECUTE FUNCTION stage._mask_check();

/* ----------------------------------------------------------- secrets */


CREATE FUNCTION stage.create_secret(name text, key bytea DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF key IS NOT NULL AND pg_catalog.length(key) OPERATOR(pg_catalog.<) 16 THEN
		RAISE EXCEPTION 'a secret must be at least 16 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use 32 random bytes, or omit the key to have one generated.';
	END IF;
	INSERT INTO stage.secret (name, key)
	VALUES (name, COALESCE(key, stage._random_key(32)));
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place.';
END
$$;
REVOKE ALL ON FUNCTION stage.create_secret(text, bytea) FROM PUBLIC;

/* let members of a role use a secret in masks (and so compute its HMACs) */
CREATE FUNCTION stage.grant_secret(secret text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF secret OPERATOR(pg_catalog.=) 'default' THEN
		/* made on first use: this may be it */
		INSERT INTO stage.secret (name, key) VALUES ('default', stage._random_key(32))
		ON CONFLICT (name) DO NOTHING;
	END IF;
	UPDATE stage.secret s SET users = pg_catalog.array_append(pg_catalog.array_remove(s.users, role), role)
	 WHERE s.name OPERATOR(pg_catalog.=) secret;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', secret
			USING ERRCODE = 'undefined_object',
				  HINT = 'Create it with stage.create_secret().';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.grant_secret(text, regrole) FROM PUBLIC;

CREATE FUNCTION stage.revoke_secret(secret text, role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE stage.secret s SET users = pg_catalog.array_remove(s.users, role)
	 WHERE s.name OPERATOR(pg_catalog.=) secret;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', secret
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.revoke_secret(text, regrole) FROM PUBLIC;


/*
 * Checks on every write of stage.secret, before the table's own
 * constraints: a violated constraint would print the failing row, key
 * included, in the error and the server log.
 */
CREATE FUNCTION stage._secret_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.name IS NULL OR NEW.name OPERATOR(pg_catalog.!~) '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid secret name'
			USING ERRCODE = 'invalid_name',
				  HINT = 'A secret name is 1 to 63 letters, digits, _, . or -, starting with a letter or _.';
	END IF;
	IF NEW.key IS NULL OR pg_catalog.length(NEW.key) OPERATOR(pg_catalog.<) 16
	   OR pg_catalog.length(NEW.key) OPERATOR(pg_catalog.>) 1024 THEN
		RAISE EXCEPTION 'a secret key must be 16 to 1024 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'No part of the key is shown in this message.',
				  HINT = 'Omit the key for a random one of 32 bytes.';
	END IF;
	IF NEW.users IS NULL THEN
		NEW.users := '{}';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER secret_check BEFORE INSERT OR UPDATE ON stage.secret
	FOR EACH ROW EXECUTE FUNCTION stage._secret_check();

CREATE FUNCTION stage._decode_key(bytes bytea, format text)
RETURNS bytea LANGUAGE c IMMUTABLE STRICT
AS 'MODULE_PATHNAME', 'stage_decode_key';
REVOKE ALL ON FUNCTION stage._decode_key(bytea, text) FROM PUBLIC;

/*
 * Import a key without writing it into any statement: from a large object
 * the client created (psql: \lo_import key.bin, then
 * SELECT stage.import_secret('name', :LASTOID)).  The large object is
 * unlinked afterwards.  The key travels as large-object data, never as
 * statement text, so it is not in pg_stat_activity, the server log (also
 * with log_statement = all) or a plan.
 */
CREATE FUNCTION stage.import_secret(name text, key_object oid, format text DEFAULT 'raw')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.secret (name, key)
	VALUES (import_secret.name, stage._decode_key(pg_catalog.lo_get(key_object), format));
	PERFORM pg_catalog.lo_unlink(key_object);
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', import_secret.name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place (see docs/masking.md, rotation).';
END
$$;
REVOKE ALL ON FUNCTION stage.import_secret(text, oid, text) FROM PUBLIC;

/* the same from a file on the database server (superuser, or pg_read_server_files) */
CREATE FUNCTION stage.import_secret_file(name text, path text, format text DEFAULT 'raw')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO stage.secret (name, key)
	VALUES (import_secret_file.name, stage._decode_key(pg_catalog.pg_read_binary_file(path), format));
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'secret "%" already exists', import_secret_file.name
		USING ERRCODE = 'duplicate_object',
			  HINT = 'Choose another name; a secret is never replaced in place (see docs/masking.md, rotation).';
END
$$;
REVOKE ALL ON FUNCTION stage.import_secret_file(text, text, text) FROM PUBLIC;

/*
 * Drop a secret no mask uses any more.  Its tokens are dropped too when
 * drop_tokens is set, which makes every token issued under it
 * irreversible for good (crypto-shredding); otherwise a secret with tokens
 * is kept.
 */
CREATE FUNCTION stage.drop_secret(name text, drop_tokens boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	users text;
	ntokens bigint;
BEGIN
	SELECT pg_catalog.string_agg(DISTINCT p.name, ', ') INTO users
	  FROM stage.mask m JOIN stage.pipeline p USING (pipeline_id)
	 WHERE (m.method OPERATOR(pg_catalog.=) ANY (ARRAY['hash', 'pseudonym', 'tokenize'])
			AND COALESCE(m.args OPERATOR(pg_catalog.->>) 'secret', 'default') OPERATOR(pg_catalog.=) drop_secret.name)
		OR (m.method OPERATOR(pg_catalog.=) 'noise'
			AND m.args OPERATOR(pg_catalog.->>) 'secret' OPERATOR(pg_catalog.=) drop_secret.name);
	IF users IS NOT NULL THEN
		RAISE EXCEPTION 'secret "%" is used by masks of pipeline %', drop_secret.name, users
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Change those masks first (stage.add_mask with another secret).';
	END IF;
	SELECT pg_catalog.count(*) INTO ntokens FROM stage.token_vault v
	 WHERE v.secret OPERATOR(pg_catalog.=) drop_secret.name;
	IF ntokens OPERATOR(pg_catalog.>) 0 AND NOT drop_tokens THEN
		RAISE EXCEPTION 'secret "%" has tokens in the vault (%)', drop_secret.name, ntokens
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Pass drop_tokens => true to drop them with it: its tokens can then never be reversed.';
	END IF;
	DELETE FROM stage.token_vault v WHERE v.secret OPERATOR(pg_catalog.=) drop_secret.name;
	DELETE FROM stage.secret s WHERE s.name OPERATOR(pg_catalog.=) drop_secret.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', drop_secret.name
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION stage.drop_secret(text, boolean) FROM PUBLIC;

/* -------------------------------------------- quarantine, as shown */

CREATE FUNCTION stage._quarantine(pipeline_id integer)
RETURNS TABLE(landing_id bigint, batch_id bigint, contract_version integer, source text,
			  received_at timestamptz, row_data jsonb, reasons jsonb,
			  quarantined_at timestamptz, status text, successor_id bigint,
			  closed_at timestamptz, closed_by text, note text, role text)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_rows';
COMMENT ON FUNCTION stage._quarantine(integer) IS
	'a pipeline''s quarantine items (every status) for its owner and stage_analyst members, masked with the current masks';

/*
 * The two masked columns of one quarantine row, for the views' target
 * lists: the stored value when the row's contract version masks as the
 * current masks do, else the row read by its key and masked again (the
 * value passed is then ignored); NULL for a pipeline the caller may not
 * see.  Per row, so only the rows a query returns are masked.
 */
CREATE FUNCTION stage._quarantine_row_data(pipeline_id integer, landing_id bigint,
										   contract_version integer, row_data jsonb)
RETURNS jsonb
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_row_data';
COMMENT ON FUNCTION stage._quarantine_row_data(integer, bigint, integer, jsonb) IS
	'a quarantine row''s row_data as the caller may see it: masked with the current masks';

CREATE FUNCTION stage._quarantine_reasons(pipeline_id integer, landing_id bigint,
										  contract_version integer, reasons jsonb)
RETURNS jsonb
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_reasons';
COMMENT ON FUNCTION stage._quarantine_reasons(integer, bigint, integer, jsonb) IS
	'a quarantine row''s reasons as the caller may see them: values and messages masked with the current masks';

CREATE FUNCTION stage.quarantine_raw(pipeline text)
RETURNS TABLE(landing_id bigint, batch_id bigint, contract_version integer, raw_data jsonb,
			  reasons jsonb, quarantined_at timestamptz)
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_quarantine_raw';
COMMENT ON FUNCTION stage.quarantine_raw(text) IS
	'a pipeline''s quarantined rows as they landed: members of the owner role and superusers only';

CREATE FUNCTION stage._quarantine_count(pipeline_id integer, since timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_quarantine_count';
COMMENT ON FUNCTION stage._quarantine_count(integer, timestamptz) IS
	'how many rows of a pipeline are in quarantine, for those who may read it (else NULL)';

/* ------------------------------------------------------------- roles */

/*
 * Create (or check) the documented group roles, NOLOGIN:
 *   stage_producer  lands rows: give it a pipeline's landing table with
 *                   stage.grant_producer(pipeline, 'stage_producer');
 *   stage_analyst   reads the health views and the quarantine of every
 *                   pipeline, masked columns masked (stage.quarantine,
 *                   stage.dlq_summary, stage.health where it exists); never
 *                   raw values, secrets or the vault.
 * Grant them to login roles: GRANT stage_analyst TO alice.  Run again after
 * an upgrade that adds views; existing roles are kept (and checked).
 */
CREATE FUNCTION stage.create_roles()
RETURNS TABLE(role_name name, created boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r text;
	v text;
BEGIN
	FOREACH r IN ARRAY ARRAY['stage_producer', 'stage_analyst'] LOOP
		role_name := r;
		created := NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) r);
		IF created THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles x
					   WHERE x.rolname OPERATOR(pg_catalog.=) r
						 AND (x.rolsuper OR x.rolcanlogin OR x.rolcreaterole OR x.rolbypassrls)) THEN
			RAISE EXCEPTION 'role "%" exists and is not a plain group role', r
				USING ERRCODE = 'invalid_role_specification',
					  HINT = 'It must be NOLOGIN, without SUPERUSER, CREATEROLE or BYPASSRLS; drop or alter it first.';
		END IF;
		RETURN NEXT;
	END LOOP;
	GRANT USAGE ON SCHEMA stage TO stage_producer, stage_analyst;
	GRANT USAGE ON SCHEMA stage_landing TO stage_producer;
	FOREACH v IN ARRAY ARRAY['stage.pipelines', 'stage.batches', 'stage.rule_stats', 'stage.lineage',
							 'stage.quarantine', 'stage.dlq_summary', 'stage.health'] LOOP
		IF pg_catalog.to_regclass(v) IS NOT NULL THEN
			EXECUTE pg_catalog.format('GRANT SELECT ON %s TO stage_analyst', v);
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION stage.create_roles() FROM PUBLIC;
COMMENT ON FUNCTION stage.create_roles() IS
	'creates the group roles stage_producer and stage_analyst (NOLOGIN) and grants them what they need';
