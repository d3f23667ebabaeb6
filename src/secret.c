/*-------------------------------------------------------------------------
 *
 * secret.c
 *	  Named secrets: the keys of the hash, pseudonym, noise and tokenize
 *	  masks and of stage.hmac, kept in stage.secret.  Read for a role
 *	  allowed to use them, absorbed into HMAC keys; the key bytes of an
 *	  imported secret decoded (stage._decode_key), fresh ones generated
 *	  (stage._random_key).
 *
 * Secrets are read from stage.secret with the privileges of that table's
 * owner (guard.c), for roles a superuser allowed to use them
 * (stage.grant_secret).  They live only in the memory of whoever asked
 * (absorbed into HMAC states, the raw bytes wiped) and never appear in a
 * message: errors name the secret, never its bytes.
 *
 * Touches stage.secret only (reads it; creates the "default" secret on
 * first use), through SPI, as the catalog owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "guard.h"
#include "secret.h"
#include "sha256.h"

/*
 * Read a named secret as the catalog owner, for a role allowed to use it:
 * a superuser, or a member of a role the secret was granted to
 * (stage.grant_secret).  The role is the one the key is used for: the
 * pipeline's owner for its masks (whoever runs or reads the pipeline),
 * the caller for the SQL masking functions.  Without that check any table
 * owner could build a pipeline whose hash mask computes HMACs under
 * someone else's key: a guessing oracle for their hashed columns.  The
 * key is returned in CurrentMemoryContext.  The secret's name may appear
 * in an error; its bytes never do.  With missing_ok, a missing or
 * forbidden secret returns NULL instead of raising.
 */
static uint8 *
secret_read(const char *name, Oid role, int *keylen, bool missing_ok)
{
	GuardSwitch gs;
	MemoryContext caller = CurrentMemoryContext;
	uint8	   *volatile key = NULL;
	volatile bool found = false;
	volatile bool allowed = false;
	Datum		arg = CStringGetTextDatum(name);
	Oid			argtype = TEXTOID;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT key, users::pg_catalog.oid[] FROM stage.secret WHERE name OPERATOR(pg_catalog.=) $1",
								  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read stage.secret");

		/*
		 * The secret named "default" is made, with a random key, the first
		 * time it is asked for.  It is not made by the install script: a
		 * restored dump brings back the old one, whose hashes must stay
		 * joinable, and must not meet a fresh one.
		 */
		if (SPI_processed == 0 && strcmp(name, "default") == 0)
		{
			if (SPI_execute("INSERT INTO stage.secret (name, key)"
							" VALUES ('default', stage._random_key(32))"
							" ON CONFLICT (name) DO NOTHING", false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not create the default secret");
			if (SPI_execute_with_args("SELECT key, users::pg_catalog.oid[] FROM stage.secret WHERE name OPERATOR(pg_catalog.=) $1",
									  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read stage.secret");
		}
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull);
			ArrayType  *users = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 2, &isnull));
			Datum	   *elems;
			int			nusers;
			int			i;

			found = true;
			allowed = superuser_arg(role);
			deconstruct_array(users, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
							  &elems, NULL, &nusers);
			for (i = 0; i < nusers && !allowed; i++)
				allowed = is_member_of_role(role, DatumGetObjectId(elems[i]));
			if (allowed)
			{
				bytea	   *b = DatumGetByteaPP(d);
				MemoryContext old = MemoryContextSwitchTo(caller);

				*keylen = VARSIZE_ANY_EXHDR(b);
				key = palloc(*keylen);
				memcpy(key, VARDATA_ANY(b), *keylen);
				MemoryContextSwitchTo(old);
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();

	if (key == NULL && missing_ok)
		return NULL;
	if (found && !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for secret \"%s\"", name),
				 errdetail("Role %s may not use it.", GetUserNameFromId(role, false)),
				 errhint("A superuser grants its use with SELECT stage.grant_secret('%s', role).", name)));
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"%s\" does not exist", name),
				 errhint("Create it with SELECT stage.create_secret('%s').", name)));
	return key;
}

/* the key of a named secret, for role; raises when missing or forbidden */
static uint8 *
secret_load(const char *name, Oid role, int *keylen)
{
	return secret_read(name, role, keylen, false);
}

/* the same, NULL when the secret is missing or the role may not use it */
uint8 *
secret_try_load(const char *name, Oid role, int *keylen)
{
	return secret_read(name, role, keylen, true);
}

/*
 * Absorb a named secret into k, for role; the key bytes are wiped at once.
 * With missing_ok, false (k untouched) when the secret is missing or role
 * may not use it; otherwise that raises.
 */
bool
secret_hmac_key(HmacKey *k, const char *name, Oid role, bool missing_ok)
{
	int			keylen;
	uint8	   *key = missing_ok ? secret_try_load(name, role, &keylen) :
		secret_load(name, role, &keylen);

	if (key == NULL)
		return false;
	hmac_prepare(k, key, keylen);
	explicit_bzero(key, keylen);
	pfree(key);
	return true;
}

/* stage._random_key(length): random bytes for new secrets */
PG_FUNCTION_INFO_V1(stage_random_key);
Datum
stage_random_key(PG_FUNCTION_ARGS)
{
	int32		len = PG_GETARG_INT32(0);
	bytea	   *b;

	if (len < 16 || len > 1024)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key length must be between 16 and 1024 bytes")));
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	if (!pg_strong_random(VARDATA(b), len))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random key")));
	PG_RETURN_BYTEA_P(b);
}

/* the value of a hex digit, -1 if c is none */
static int
secret_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* the value of a base64 digit (standard or URL alphabet), -1 if c is none */
static int
secret_b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* a key format error: it never shows any part of the key */
static void
secret_key_format_error(const char *format)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("the key is not valid %s", format),
			 errdetail("No part of the key is shown in this message."),
			 errhint("Formats are raw (the bytes as they are), hex and base64; surrounding white space is ignored for hex and base64.")));
}

/*
 * stage._decode_key(bytes, format): the key bytes of an imported secret.
 * raw: as is; hex and base64: decoded, white space (a trailing newline,
 * line breaks of a PEM-like file) ignored.  Errors never quote the input.
 */
PG_FUNCTION_INFO_V1(stage_decode_key);
Datum
stage_decode_key(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	char	   *format = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	bytea	   *out = palloc(VARHDRSZ + len);
	uint8	   *o = (uint8 *) VARDATA(out);
	int			n = 0;
	int			i;

	if (strcmp(format, "raw") == 0)
	{
		memcpy(o, s, len);
		n = len;
	}
	else if (strcmp(format, "hex") == 0)
	{
		int			hi = -1;

		for (i = 0; i < len; i++)
		{
			int			v;

			if (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
				continue;
			if ((v = secret_hexval(s[i])) < 0)
				secret_key_format_error("hex");
			if (hi < 0)
				hi = v;
			else
			{
				o[n++] = (hi << 4) | v;
				hi = -1;
			}
		}
		if (hi >= 0)
			secret_key_format_error("hex");
	}
	else if (strcmp(format, "base64") == 0)
	{
		uint32		acc = 0;
		int			bits = 0;
		bool		pad = false;

		for (i = 0; i < len; i++)
		{
			int			v;

			if (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
				continue;
			if (s[i] == '=')
			{
				pad = true;
				continue;
			}
			if (pad || (v = secret_b64val(s[i])) < 0)
				secret_key_format_error("base64");
			acc = (acc << 6) | v;
			bits += 6;
			if (bits >= 8)
			{
				bits -= 8;
				o[n++] = (acc >> bits) & 0xFF;
			}
		}
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown key format \"%s\"", format),
				 errhint("Formats are raw (the bytes as they are), hex and base64.")));
	if (n < 16 || n > 1024)
	{
		explicit_bzero(o, n);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a secret key must be 16 to 1024 bytes long, this one is %d", n),
				 errhint("Generate one with e.g. openssl rand 32 > key.bin, and import it with format 'raw'.")));
	}
	SET_VARSIZE(out, VARHDRSZ + n);
	PG_RETURN_BYTEA_P(out);
}
