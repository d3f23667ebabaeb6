/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  Masking primitives (C), their contract form (StageMask) and their SQL
 *	  wrappers stage.mask_*, stage.hmac and stage.luhn_valid.
 *
 * Every primitive works on characters, not bytes: a multibyte character is
 * kept or replaced whole, never split.  Secrets (the keys of the hash mask)
 * are read from stage.secret with the privileges of that table's owner,
 * live only in the memory of the compiled contract, and never appear in a
 * message: errors name the secret, never its bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "stage.h"

/* ----------------------------------------------------------------
 *		primitives
 * ---------------------------------------------------------------- */

/* number of characters in s[0..len) */
static int
mask_nchars(const char *s, int len)
{
	return pg_mbstrlen_with_len(s, len);
}

/*
 * Keep the first keep_start and last keep_end characters, replace every
 * other character by fill (fill is repeated once per hidden character when
 * it is one character long, inserted once otherwise).  A value too short to
 * hide anything is hidden whole, so short values never leak.
 */
char *
mask_partial(const char *s, int len, int keep_start, int keep_end,
			 const char *fill)
{
	int			nchars = mask_nchars(s, len);
	int			fill_len = strlen(fill);
	bool		fill_each = (pg_mbstrlen(fill) == 1);
	char	   *out = palloc(len + (fill_each ? nchars * fill_len : fill_len) + 1);
	char	   *o = out;
	int			i;
	const char *p = s;

	if (keep_start < 0)
		keep_start = 0;
	if (keep_end < 0)
		keep_end = 0;
	if (nchars <= keep_start + keep_end)
	{
		keep_start = 0;
		keep_end = 0;
	}
	for (i = 0; i < nchars; i++)
	{
		int			l = pg_mblen(p);

		if (i < keep_start || i >= nchars - keep_end)
		{
			memcpy(o, p, l);
			o += l;
		}
		else if (fill_each || i == keep_start)
		{
			memcpy(o, fill, fill_len);
			o += fill_len;
		}
		p += l;
	}
	*o = '\0';
	return out;
}

/*
 * alice.smith@example.com -> a***@example.com; the domain is kept because
 * it is rarely personal and is what analysts group by.
 */
char *
mask_email(const char *s, int len)
{
	const char *at = NULL;
	int			i;
	int			first;
	char	   *out;
	char	   *o;

	for (i = len - 1; i >= 0; i--)
		if (s[i] == '@')
		{
			at = s + i;
			break;
		}
	first = (len > 0) ? pg_mblen(s) : 0;
	/* not an email (no @, or nothing before it): keep the first character */
	if (at == NULL || at == s)
		at = s + len;
	out = palloc(first + 3 + (len - (at - s)) + 1);
	memcpy(out, s, first);
	o = out + first;
	memcpy(o, "***", 3);
	o += 3;
	memcpy(o, at, len - (at - s));
	o += len - (at - s);
	*o = '\0';
	return out;
}

/*
 * 4111 1111 1111 1234 -> **** **** **** 1234: digits but the last four are
 * replaced, separators and everything else kept.
 */
char *
mask_card(const char *s, int len)
{
	int			ndigits = 0;
	int			seen = 0;
	int			i;
	char	   *out = palloc(len + 1);

	for (i = 0; i < len; i++)
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
	for (i = 0; i < len; i++)
	{
		if (s[i] >= '0' && s[i] <= '9')
		{
			seen++;
			out[i] = (seen > ndigits - 4 && ndigits > 4) ? s[i] : '*';
		}
		else
			out[i] = s[i];
	}
	out[len] = '\0';
	return out;
}

/*
 * Luhn check over the digits of s; spaces and hyphens are allowed as
 * separators, anything else fails.  12 to 19 digits, as card numbers have.
 */
bool
luhn_valid(const char *s, int len)
{
	int			digits[32];
	int			n = 0;
	int			i;
	int			sum = 0;

	for (i = 0; i < len; i++)
	{
		if (s[i] >= '0' && s[i] <= '9')
		{
			if (n >= 32)
				return false;
			digits[n++] = s[i] - '0';
		}
		else if (s[i] != ' ' && s[i] != '-')
			return false;
	}
	if (n < 12 || n > 19)
		return false;
	for (i = 0; i < n; i++)
	{
		int			d = digits[n - 1 - i];

		if (i % 2 == 1)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return sum % 10 == 0;
}

/* HMAC-SHA256 of s under key, as lower-case hex */
char *
mask_hmac_hex(const HmacKey *key, const char *s, int len)
{
	uint8		digest[SHA256_DIGEST];
	char	   *hex = palloc(SHA256_DIGEST * 2 + 1);
	int			i;
	static const char hexd[] = "0123456789abcdef";

	hmac_sha256(key, (const uint8 *) s, len, digest);
	for (i = 0; i < SHA256_DIGEST; i++)
	{
		hex[2 * i] = hexd[digest[i] >> 4];
		hex[2 * i + 1] = hexd[digest[i] & 0xF];
	}
	hex[SHA256_DIGEST * 2] = '\0';
	return hex;
}

/* ----------------------------------------------------------------
 *		secrets
 * ---------------------------------------------------------------- */

/*
 * Read a named secret with the privileges of stage.secret's owner, for a
 * caller allowed to use it: a superuser, or a member of a role the secret
 * was granted to (stage.grant_secret).  Without that check any table owner
 * could build a pipeline whose hash mask computes HMACs under someone
 * else's key: a guessing oracle for their hashed columns.  The key is
 * returned in CurrentMemoryContext.  The secret's name may appear in an
 * error; its bytes never do.
 */
uint8 *
secret_load(const char *name, int *keylen)
{
	Oid			nsp = get_namespace_oid("stage", false);
	Oid			relid = get_relname_relid("secret", nsp);
	HeapTuple	tup;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	MemoryContext caller = CurrentMemoryContext;
	uint8	   *key = NULL;
	bool		found = false;
	bool		allowed = false;
	Datum		arg = CStringGetTextDatum(name);
	Oid			argtype = TEXTOID;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT key, users::oid[] FROM stage.secret WHERE name OPERATOR(pg_catalog.=) $1",
								  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read stage.secret");
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
			allowed = superuser_arg(save_userid);
			deconstruct_array(users, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
							  &elems, NULL, &nusers);
			for (i = 0; i < nusers && !allowed; i++)
				allowed = is_member_of_role(save_userid, DatumGetObjectId(elems[i]));
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
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();

	if (found && !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for secret \"%s\"", name),
				 errhint("A superuser grants its use with SELECT stage.grant_secret('%s', role).", name)));
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"%s\" does not exist", name),
				 errhint("Create it with SELECT stage.create_secret('%s').", name)));
	return key;
}

/* ----------------------------------------------------------------
 *		contract form
 * ---------------------------------------------------------------- */

static const char *const mask_hash_keys[] = {"secret", "length", NULL};
static const char *const mask_partial_keys[] = {"keep_start", "keep_end", "fill", NULL};
static const char *const mask_no_keys[] = {NULL};

/*
 * Parse a mask method and its arguments into m (in CurrentMemoryContext).
 * The hash mask's key is loaded too, so a missing secret is refused when
 * the mask is added, not at move time.
 */
void
mask_parse(StageMask *m, const char *method, Jsonb *args)
{
	memset(m, 0, sizeof(StageMask));
	if (strcmp(method, "hash") == 0)
	{
		m->method = MASK_HASH;
		json_check_keys(args, "mask hash", mask_hash_keys);
		m->secret_name = json_get_string(args, "secret", "mask hash", "default");
		m->length = json_get_int(args, "length", "mask hash", 0, 0, 64);
	}
	else if (strcmp(method, "partial") == 0)
	{
		m->method = MASK_PARTIAL;
		json_check_keys(args, "mask partial", mask_partial_keys);
		m->keep_start = json_get_int(args, "keep_start", "mask partial", 1, 0, 1000);
		m->keep_end = json_get_int(args, "keep_end", "mask partial", 0, 0, 1000);
		m->fill = json_get_string(args, "fill", "mask partial", "*");
	}
	else if (strcmp(method, "email") == 0)
	{
		m->method = MASK_EMAIL;
		json_check_keys(args, "mask email", mask_no_keys);
	}
	else if (strcmp(method, "card") == 0)
	{
		m->method = MASK_CARD;
		json_check_keys(args, "mask card", mask_no_keys);
	}
	else if (strcmp(method, "null") == 0)
	{
		m->method = MASK_NULL;
		json_check_keys(args, "mask null", mask_no_keys);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown mask method \"%s\"", method),
				 errhint("Valid methods are hash, partial, email, card and null.")));
}

/* does the method produce text (so the column must hold text)? */
bool
mask_needs_text(const StageMask *m)
{
	return m->method != MASK_NULL;
}

/*
 * Load the hash mask's key, checking the current user may use the secret.
 * Done when a mask is declared (so a missing or forbidden secret is refused
 * then) and before a batch writes, never by stage.check_row, which shows no
 * masked values and so needs no key.
 */
void
mask_load_key(StageMask *m)
{
	int			keylen;
	uint8	   *key;

	if (m->method != MASK_HASH || m->key_loaded)
		return;
	key = secret_load(m->secret_name, &keylen);
	hmac_prepare(&m->hkey, key, keylen);
	explicit_bzero(key, keylen);
	pfree(key);
	m->key_loaded = true;
}

/* does the method need to see a batch's values before mask_apply? */
bool
mask_needs_batch(const StageMask *m)
{
	return m->method == MASK_HASH;
}

/*
 * Called by the mover once per batch with the column's non-null values
 * (quarantined rows included), before mask_apply is called on any of
 * them; for methods that resolve values set-wise, such as a vault lookup.
 */
void
mask_prepare(StageMask *m, const char **values, int n)
{
	if (m->method == MASK_HASH)
	{
		/* the key lives with the compiled contract, in its context */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(m));

		mask_load_key(m);
		MemoryContextSwitchTo(old);
	}
}

/* the masked form of value; NULL for the null mask */
char *
mask_apply(const StageMask *m, const char *value, int len)
{
	switch (m->method)
	{
		case MASK_HASH:
			{
				char	   *h;

				if (!m->key_loaded)
					elog(ERROR, "hash mask used before its key was loaded");
				h = mask_hmac_hex(&m->hkey, value, len);

				if (m->length > 0)
					h[m->length] = '\0';
				return h;
			}
		case MASK_PARTIAL:
			return mask_partial(value, len, m->keep_start, m->keep_end, m->fill);
		case MASK_EMAIL:
			return mask_email(value, len);
		case MASK_CARD:
			return mask_card(value, len);
		case MASK_NULL:
			return NULL;
	}
	return NULL;
}

/* ----------------------------------------------------------------
 *		SQL wrappers
 * ---------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(stage_mask_email);
Datum
stage_mask_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(mask_email(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

PG_FUNCTION_INFO_V1(stage_mask_partial);
Datum
stage_mask_partial(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int32		keep_start = PG_GETARG_INT32(1);
	int32		keep_end = PG_GETARG_INT32(2);
	char	   *fill = text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (keep_start < 0 || keep_end < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep_start and keep_end must not be negative")));
	PG_RETURN_TEXT_P(cstring_to_text(mask_partial(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
												  keep_start, keep_end, fill)));
}

PG_FUNCTION_INFO_V1(stage_mask_card);
Datum
stage_mask_card(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(mask_card(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

PG_FUNCTION_INFO_V1(stage_luhn_valid);
Datum
stage_luhn_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(luhn_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

typedef struct HmacCache
{
	char	   *name;
	HmacKey		key;
} HmacCache;

/* stage.hmac(value, secret name): HMAC-SHA256 hex under a named secret */
PG_FUNCTION_INFO_V1(stage_hmac);
Datum
stage_hmac(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	HmacCache  *c = (HmacCache *) fcinfo->flinfo->fn_extra;

	if (c == NULL || strcmp(c->name, name) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		int			keylen;
		uint8	   *key;

		c = palloc0(sizeof(HmacCache));
		c->name = pstrdup(name);
		key = secret_load(name, &keylen);
		hmac_prepare(&c->key, key, keylen);
		memset(key, 0, keylen);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = c;
	}
	PG_RETURN_TEXT_P(cstring_to_text(mask_hmac_hex(&c->key,
												   VARDATA_ANY(t),
												   VARSIZE_ANY_EXHDR(t))));
}

/* random bytes for new secrets */
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
