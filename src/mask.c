/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  Masking primitives (C), their contract form (StageMask: parse,
 *	  validate against a column, prepare per batch, apply per value), the
 *	  named secrets they use, and their SQL wrappers.
 *
 * Methods: hash, pseudonym (pseudonym.c), partial, email, phone, card,
 * redact, redact_pii, null, constant, generalize, noise and tokenize
 * (vault.c).
 *
 * Rules every method keeps:
 *	- it works on characters, not bytes: a multibyte character is kept or
 *	  replaced whole, never split;
 *	- mask_apply never raises because of a value, and never returns the
 *	  value it could not read: a number or date it cannot parse becomes a
 *	  fixed text ("[not a number]", "[not an ISO date]") that a typed target
 *	  column then refuses, so the row is quarantined with a message that
 *	  holds no trace of the original;
 *	- NULL stays NULL (the mover never calls mask_apply on NULL).
 *
 * Secrets (the keys of hash, pseudonym and tokenize) are read from
 * stage.secret with the privileges of that table's owner, for callers a
 * superuser allowed to use them (stage.grant_secret); they live only in the
 * memory of the compiled contract (absorbed into HMAC states) and never
 * appear in a message: errors name the secret, never its bytes.
 *
 *-------------------------------------------------------------------------
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "stage.h"
#include "guard.h"

/* ----------------------------------------------------------------
 *		primitives
 * ---------------------------------------------------------------- */

/*
 * Memory for a masked value: a mask may make a value longer (a fill of four
 * bytes per digit), and a value of a gigabyte would then not fit a text.
 */
static char *
mask_alloc(Size size)
{
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the masked value would be longer than a text value can be"),
				 errhint("Use a one-byte fill character, or a mask that does not lengthen the value.")));
	return palloc(size);
}

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
	char	   *out = mask_alloc((Size) len + (fill_each ? (Size) nchars * fill_len : fill_len) + 1);
	char	   *o = out;
	int			i;
	const char *p = s;

	if (keep_start < 0)
		keep_start = 0;
	if (keep_end < 0)
		keep_end = 0;
	if ((int64) nchars <= (int64) keep_start + keep_end)
	{
		keep_start = 0;
		keep_end = 0;
	}
	for (i = 0; i < nchars; i++)
	{
		int			l = pg_mblen(p);

		CHECK_FOR_INTERRUPTS();
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
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] == '@')
		{
			at = s + i;
			break;
		}
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
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
	}
	for (i = 0; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
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
 * +1 (555) 010-0123 -> +* (***) ***-0123: every digit but the last keep is
 * replaced by fill (one character), everything else (+, spaces,
 * parentheses, hyphens, an extension's letters) is kept.  A number with
 * keep digits or fewer is hidden whole.
 */
char *
mask_phone(const char *s, int len, int keep, const char *fill)
{
	int			ndigits = 0;
	int			seen = 0;
	int			fill_len = strlen(fill);
	int			i;
	char	   *out;
	char	   *o;

	for (i = 0; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
	}
	out = o = mask_alloc((Size) len + (Size) ndigits * fill_len + 1);
	for (i = 0; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] >= '0' && s[i] <= '9')
		{
			seen++;
			if (seen > ndigits - keep && ndigits > keep)
				*o++ = s[i];
			else
			{
				memcpy(o, fill, fill_len);
				o += fill_len;
			}
		}
		else
			*o++ = s[i];		/* bytes of multibyte characters copied whole */
	}
	*o = '\0';
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
		CHECK_FOR_INTERRUPTS();
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

static const char mask_hexd[] = "0123456789abcdef";

/* HMAC-SHA256 of s under key, as lower-case hex */
char *
mask_hmac_hex(const HmacKey *key, const char *s, int len)
{
	uint8		digest[SHA256_DIGEST];
	char	   *hex = palloc(SHA256_DIGEST * 2 + 1);
	int			i;

	hmac_sha256(key, (const uint8 *) s, len, digest);
	for (i = 0; i < SHA256_DIGEST; i++)
	{
		hex[2 * i] = mask_hexd[digest[i] >> 4];
		hex[2 * i + 1] = mask_hexd[digest[i] & 0xF];
	}
	hex[SHA256_DIGEST * 2] = '\0';
	return hex;
}

/* standard base64 (RFC 4648, with padding), as pgcrypto's encode() */
static char *
mask_base64(const uint8 *src, int len)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char	   *out = palloc(((len + 2) / 3) * 4 + 1);
	char	   *o = out;
	int			i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];

		*o++ = b64[(v >> 18) & 63];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len)
	{
		uint32		v = src[i] << 16;

		if (i + 1 < len)
			v |= src[i + 1] << 8;
		*o++ = b64[(v >> 18) & 63];
		*o++ = b64[(v >> 12) & 63];
		*o++ = (i + 1 < len) ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* the hash mask: HMAC-SHA256, hex (64 chars) or base64 (44), cut to length */
char *
mask_hash(const HmacKey *key, const char *s, int len, bool base64, int length)
{
	char	   *h;

	if (base64)
	{
		uint8		digest[SHA256_DIGEST];

		hmac_sha256(key, (const uint8 *) s, len, digest);
		h = mask_base64(digest, SHA256_DIGEST);
	}
	else
		h = mask_hmac_hex(key, s, len);
	if (length > 0 && length < (int) strlen(h))
		h[length] = '\0';
	return h;
}

/*
 * The redact mask: every match of the pattern replaced.  When the pattern
 * hits its match limit on a value, or PCRE2 fails otherwise, the whole value
 * is replaced: redaction fails closed.
 */
char *
mask_redact(RxEntry *rx, const char *s, int len, const char *repl)
{
	int			status;
	char	   *out = rx_replace_all(rx, s, len, repl, &status);

	return out ? out : pstrdup(repl);
}

/*
 * The redact_pii mask: every span pii_scan finds replaced by repl, or by
 * "[kind]" ("[email]", "[card]", ...) when repl is NULL.
 */
char *
mask_redact_pii(const char *s, int len, int kinds, const char *repl)
{
	PiiHit		local[32];
	PiiHit	   *hits = local;
	int			n = pii_scan(s, len, kinds, local, lengthof(local));
	StringInfoData out;
	int			pos = 0;
	int			i;

	if (n == 0)
		return pnstrdup(s, len);
	if (n > lengthof(local))
	{
		hits = palloc(sizeof(PiiHit) * n);
		n = pii_scan(s, len, kinds, hits, n);
	}
	initStringInfo(&out);
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		appendBinaryStringInfo(&out, s + pos, hits[i].start - pos);
		if (repl)
			appendStringInfoString(&out, repl);
		else
			appendStringInfo(&out, "[%s]", pii_kind_name(hits[i].kind));
		pos = hits[i].start + hits[i].len;
	}
	appendBinaryStringInfo(&out, s + pos, len - pos);
	return out.data;
}

/*
 * Is s a finite decimal number numeric_in accepts without raising: spaces,
 * sign, digits with at most one point, an optional exponent of at most
 * four digits, spaces?  Anything else (NaN, Infinity, 1e999999, text) is
 * "not a number" for the masks, which must never raise on a value.
 */
static bool
mask_is_number(const char *s)
{
	const char *p = s;
	int			digits = 0;
	int			expdigits = 0;

	if (strlen(s) > 1000)
		return false;
	while (*p == ' ')
		p++;
	if (*p == '+' || *p == '-')
		p++;
	while (*p >= '0' && *p <= '9')
		p++, digits++;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
			p++, digits++;
	}
	if (digits == 0)
		return false;
	if (*p == 'e' || *p == 'E')
	{
		p++;
		if (*p == '+' || *p == '-')
			p++;
		while (*p >= '0' && *p <= '9')
			p++, expdigits++;
		if (expdigits == 0 || expdigits > 4)
			return false;
	}
	while (*p == ' ')
		p++;
	return *p == '\0';
}

/*
 * Generalize an ISO 8601 date or timestamp to the start of its year, month,
 * day or hour, keeping its zone offset as written ("2024-03-17 13:45:12+02"
 * to the day is "2024-03-17 00:00:00+02").  A date generalized to the hour
 * is itself.  infinity and -infinity stay what they are.  Anything else is
 * "[not an ISO date]".  s must be NUL-terminated.
 */
char *
mask_generalize_time(const char *s, MaskUnit unit)
{
	const char *p = s;
	const char *time = NULL;
	const char *zone = "";
	int			tlen = 0;
	char		date[11];

	while (*p == ' ')
		p++;
	if (strcmp(p, "infinity") == 0 || strcmp(p, "-infinity") == 0)
		return pstrdup(p);
	if (tc_isodate(p) != 10)
		return pstrdup(MASK_NOT_A_DATE);
	memcpy(date, p, 10);
	date[10] = '\0';
	if (p[10] == ' ' || p[10] == 'T')
	{
		time = p + 11;
		tlen = tc_isotime(time);
		if (tlen == 0 || !tc_isozone(time + tlen))
			return pstrdup(MASK_NOT_A_DATE);
		zone = time + tlen;
	}
	else if (p[10] != '\0')
		return pstrdup(MASK_NOT_A_DATE);

	switch (unit)
	{
		case UNIT_YEAR:
			memcpy(date + 5, "01-01", 5);
			break;
		case UNIT_MONTH:
			memcpy(date + 8, "01", 2);
			break;
		case UNIT_DAY:
		case UNIT_HOUR:
		case UNIT_NONE:
			break;
	}
	if (time == NULL)
		return pstrdup(date);
	if (unit == UNIT_HOUR)
		return psprintf("%s %.2s:00:00%s", date, time, zone);
	return psprintf("%s 00:00:00%s", date, zone);
}

/*
 * Generalize a number to its bucket of the given width: the bucket's lower
 * bound (floor(v / width) * width), or the label "[lo,hi)".
 */
char *
mask_generalize_number(const char *s, Datum width, bool label)
{
	Datum		v;
	Datum		lo;

	if (!mask_is_number(s))
		return pstrdup(MASK_NOT_A_NUMBER);
	v = DirectFunctionCall3(numeric_in, CStringGetDatum(s),
							ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	lo = DirectFunctionCall1(numeric_floor, DirectFunctionCall2(numeric_div, v, width));
	lo = DirectFunctionCall2(numeric_mul, lo, width);
	if (!label)
		return DatumGetCString(DirectFunctionCall1(numeric_out, lo));
	return psprintf("[%s,%s)", DatumGetCString(DirectFunctionCall1(numeric_out, lo)),
					DatumGetCString(DirectFunctionCall1(numeric_out,
														DirectFunctionCall2(numeric_add, lo, width))));
}

/*
 * Relative noise: v * (1 + ratio * u), u uniform in [-1, 1), rounded to the
 * number of decimals v was written with (so integers stay integers).  u is
 * drawn from the backend's random generator, unless the mask is keyed (u
 * from HMAC(secret, value): the same value always gets the same noise,
 * nobody without the secret can compute it, and averaging repeated reads
 * gains nothing) or seeded (u from SHA-256(seed, value): repeatable, for
 * tests; anyone who reads the contract can recompute it).
 */
char *
mask_noise(const char *s, double ratio, const HmacKey *key, bool seeded, int64 seed)
{
	Datum		v;
	Datum		r;
	int32		scale;
	double		u;

	if (!mask_is_number(s))
		return pstrdup(MASK_NOT_A_NUMBER);
	v = DirectFunctionCall3(numeric_in, CStringGetDatum(s),
							ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	scale = DatumGetInt32(DirectFunctionCall1(numeric_scale, v));
	if (key != NULL || seeded)
	{
		static const char label[] = "stage.noise";
		uint8		d[SHA256_DIGEST];
		uint64		h = 0;
		int			i;

		if (key != NULL)
			hmac_sha256_2(key, (const uint8 *) label, sizeof(label),
						  (const uint8 *) s, strlen(s), d);
		else
		{
			/* SHA-256(seed as 8 little-endian bytes || value): the same everywhere */
			SHA256_CTX	ctx;
			uint8		le[8];

			for (i = 0; i < 8; i++)
				le[i] = (uint8) ((uint64) seed >> (8 * i));
			SHA256_Init(&ctx);
			SHA256_Update(&ctx, le, 8);
			SHA256_Update(&ctx, s, strlen(s));
			SHA256_Final(d, &ctx);
		}
		for (i = 0; i < 8; i++)
			h = (h << 8) | d[i];
		u = (h >> 11) * (1.0 / 9007199254740992.0);
	}
	else
		u = pg_prng_double(&pg_global_prng_state);
	r = DirectFunctionCall2(numeric_mul, v,
							DirectFunctionCall1(float8_numeric,
												Float8GetDatum(1.0 + ratio * (2.0 * u - 1.0))));
	r = DirectFunctionCall2(numeric_round, r, Int32GetDatum(scale));

	/*
	 * Noise smaller than half a unit of the value's scale rounds back to
	 * the value itself (5% of 1..9 always did): then the value moves by
	 * one unit the way the noise pointed, so a masked number is never the
	 * raw one (zero, which no ratio changes, excepted).
	 */
	if (DatumGetBool(DirectFunctionCall2(numeric_eq, r, v)) &&
		!DatumGetBool(DirectFunctionCall2(numeric_eq, v,
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
	{
		Datum		unit = DirectFunctionCall2(numeric_power,
											   DirectFunctionCall1(int4_numeric, Int32GetDatum(10)),
											   DirectFunctionCall1(int4_numeric, Int32GetDatum(-scale)));

		bool		positive = DatumGetBool(DirectFunctionCall2(numeric_gt, v,
																DirectFunctionCall1(int4_numeric,
																					Int32GetDatum(0))));
		bool		up = (u >= 0.5) == positive;

		r = DirectFunctionCall2(up ? numeric_add : numeric_sub, v, unit);
		r = DirectFunctionCall2(numeric_round, r, Int32GetDatum(scale));
	}
	return DatumGetCString(DirectFunctionCall1(numeric_out, r));
}

/* ----------------------------------------------------------------
 *		secrets
 * ---------------------------------------------------------------- */

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

uint8 *
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

/* absorb a named secret into k; the key bytes are wiped at once */
static bool
mask_key_from_secret(HmacKey *k, const char *name, Oid role, bool missing_ok)
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

/* ----------------------------------------------------------------
 *		contract form: arguments
 * ---------------------------------------------------------------- */

static const char *const mask_hash_keys[] = {"secret", "length", "encoding", NULL};
static const char *const mask_pseudonym_keys[] = {"secret", "kind", "domain", NULL};
static const char *const mask_partial_keys[] = {"keep_start", "keep_end", "fill", NULL};
static const char *const mask_phone_keys[] = {"keep", "fill", NULL};
static const char *const mask_redact_keys[] = {"pattern", "replacement", "flags", NULL};
static const char *const mask_redact_pii_keys[] = {"kinds", "replacement", NULL};
static const char *const mask_constant_keys[] = {"value", NULL};
static const char *const mask_generalize_keys[] = {"unit", "bucket", "format", NULL};
static const char *const mask_noise_keys[] = {"ratio", "seed", "secret", NULL};
static const char *const mask_tokenize_keys[] = {"secret", "prefix", NULL};
static const char *const mask_no_keys[] = {NULL};

#define MASK_METHODS "hash, pseudonym, partial, email, phone, card, redact, redact_pii, null, constant, generalize, noise and tokenize"

static void
mask_bad_arg(const char *method, const char *key, const char *problem,
			 const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("argument \"%s\" of mask %s %s", key, method, problem),
			 errhint("%s", hint)));
}

/* a string argument, or dflt when absent */
static char *
mask_arg_string(Jsonb *args, const char *method, const char *key,
				const char *dflt, const char *hint)
{
	JsonbValue	v;

	if (!json_get(args, key, &v))
		return dflt ? pstrdup(dflt) : NULL;
	if (v.type != jbvString)
		mask_bad_arg(method, key, "must be a string", hint);
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/*
 * Which of choices (NULL-terminated) a string argument's value is: its
 * index.  Anything else is refused as "is \"<value>\", <what>" with the
 * hint.
 */
static int
mask_choice(const char *method, const char *key, const char *value,
			const char *const *choices, const char *what, const char *hint)
{
	int			i;

	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;
	mask_bad_arg(method, key, psprintf("is \"%s\", %s", value, what), hint);
	return -1;					/* not reached */
}

static const char *const mask_encodings[] = {"hex", "base64", NULL};
static const char *const mask_pseudo_kinds[] = {"auto", "email", "name", "digits", "text", NULL};
static const char *const mask_domains[] = {"keep", "pseudonymize", NULL};
static const char *const mask_units[] = {"year", "month", "day", "hour", NULL};
static const char *const mask_formats[] = {"floor", "range", NULL};

/* an integer argument in [minval, maxval], or dflt when absent */
static int64
mask_arg_int(Jsonb *args, const char *method, const char *key, int64 dflt,
			 int64 minval, int64 maxval, const char *hint)
{
	JsonbValue	v;
	Datum		n;
	char	   *txt;

	if (!json_get(args, key, &v))
		return dflt;
	if (v.type != jbvNumeric)
		mask_bad_arg(method, key, "must be an integer", hint);
	n = NumericGetDatum(v.val.numeric);
	txt = DatumGetCString(DirectFunctionCall1(numeric_out, n));
	if (strchr(txt, '.') != NULL || strlen(txt) > 19)
		mask_bad_arg(method, key, "must be an integer", hint);
	{
		int64		i = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));

		if (i < minval || i > maxval)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"%s\" of mask %s must be between " INT64_FORMAT " and " INT64_FORMAT,
							key, method, minval, maxval),
					 errhint("%s", hint)));
		return i;
	}
}

/* a positive number argument as a Numeric datum, or 0 when absent */
static Datum
mask_arg_numeric(Jsonb *args, const char *method, const char *key, const char *hint)
{
	JsonbValue	v;
	Datum		zero;

	if (!json_get(args, key, &v))
		return (Datum) 0;
	if (v.type != jbvNumeric)
		mask_bad_arg(method, key, "must be a number", hint);
	zero = DirectFunctionCall3(numeric_in, CStringGetDatum("0"),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v.val.numeric),
										  zero)) <= 0)
		mask_bad_arg(method, key, "must be greater than zero", hint);
	return datumCopy(NumericGetDatum(v.val.numeric), false, -1);
}

/* a secret name: short, printable, no need to exist yet for parsing */
static char *
mask_arg_secret(Jsonb *args, const char *method)
{
	char	   *name = mask_arg_string(args, method, "secret", "default",
									   "Name a secret created with stage.create_secret(), e.g. {\"secret\": \"default\"}.");

	if (name[0] == '\0' || strlen(name) > 63)
		mask_bad_arg(method, "secret", "must be a name of 1 to 63 characters",
					 "Name a secret created with stage.create_secret().");
	return name;
}

/*
 * A redact replacement may refer to groups as $1, ${1} or ${name} and
 * write $$ for a dollar sign; anything else after a $ is refused now, so
 * the mask never meets a bad replacement while moving rows.
 */
static void
mask_check_replacement(const char *r)
{
	const char *p;

	for (p = r; *p; p++)
	{
		if (*p != '$')
			continue;
		p++;
		if (*p == '$' || (*p >= '0' && *p <= '9'))
		{
			while (p[1] >= '0' && p[1] <= '9')
				p++;
			continue;
		}
		if (*p == '{')
		{
			const char *close = strchr(p, '}');

			if (close != NULL && close > p + 1)
			{
				p = close;
				continue;
			}
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid replacement of mask redact: a \"$\" must be followed by a group number, {name} or another \"$\""),
				 errhint("Refer to groups as $1 or ${name}; write $$ for a dollar sign.")));
	}
}

/* ----------------------------------------------------------------
 *		contract form: parse, validate, prepare, apply
 * ---------------------------------------------------------------- */

/*
 * Parse a mask method and its arguments into m (in CurrentMemoryContext).
 * Everything that can be checked without the column is checked here, with
 * the argument named; mask_check_column checks the rest against the
 * column.  Keys are not loaded here (mask_load_key).
 */
void
mask_parse(StageMask *m, const char *method, Jsonb *args)
{
	memset(m, 0, sizeof(StageMask));
	if (method == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("mask method must not be null"),
				 errhint("Valid methods are " MASK_METHODS ".")));
	if (strcmp(method, "hash") == 0)
	{
		char	   *enc;

		m->method = MASK_HASH;
		m->method_name = "hash";
		json_check_keys(args, "mask hash", mask_hash_keys);
		m->secret_name = mask_arg_secret(args, "hash");
		enc = mask_arg_string(args, "hash", "encoding", "hex",
							  "Use \"hex\" (64 characters) or \"base64\" (44 characters).");
		m->base64 = (mask_choice("hash", "encoding", enc, mask_encodings, "not hex or base64",
								 "Use \"hex\" (64 characters) or \"base64\" (44 characters).") == 1);
		m->length = mask_arg_int(args, "hash", "length", 0, 0, m->base64 ? 44 : 64,
								 m->base64 ?
								 "The length cuts the output: 0 (all 44 characters) or 11 to 44." :
								 "The length cuts the output: 0 (all 64 characters) or 16 to 64.");

		/*
		 * A cut hash of b bits collides about n^2 / 2^(b+1) times among n
		 * values: 8 hex characters (32 bits) gave 133 collisions in a
		 * million ids.  64 bits (16 hex, 11 base64 characters) keep a
		 * billion values apart with odds of about 97%.
		 */
		if (m->length > 0 && m->length < (m->base64 ? 11 : 16))
			mask_bad_arg("hash", "length", "is too short to keep hashes distinct",
						 m->base64 ?
						 "Use 0 (the whole hash) or at least 11 base64 characters (64 bits): shorter hashes of a million values collide." :
						 "Use 0 (the whole hash) or at least 16 hex characters (64 bits): 8 characters collide about 116 times in a million values.");
	}
	else if (strcmp(method, "pseudonym") == 0)
	{
		char	   *kind;
		char	   *domain;

		m->method = MASK_PSEUDONYM;
		m->method_name = "pseudonym";
		json_check_keys(args, "mask pseudonym", mask_pseudonym_keys);
		m->secret_name = mask_arg_secret(args, "pseudonym");
		kind = mask_arg_string(args, "pseudonym", "kind", "auto",
							   "Use auto, email, name, digits or text.");
		/* the choices are in the order of PseudoKind */
		m->pseudo_kind = (PseudoKind) mask_choice("pseudonym", "kind", kind, mask_pseudo_kinds,
												  "not a known kind",
												  "Use auto, email, name, digits or text.");
		domain = mask_arg_string(args, "pseudonym", "domain", "keep",
								 "Use \"keep\" (the e-mail's domain stays) or \"pseudonymize\" (a pseudonymous domain under .example).");
		m->keep_domain = (mask_choice("pseudonym", "domain", domain, mask_domains,
									  "not keep or pseudonymize",
									  "Use \"keep\" (the e-mail's domain stays) or \"pseudonymize\" (a pseudonymous domain under .example).") == 0);
	}
	else if (strcmp(method, "partial") == 0)
	{
		m->method = MASK_PARTIAL;
		m->method_name = "partial";
		json_check_keys(args, "mask partial", mask_partial_keys);
		m->keep_start = mask_arg_int(args, "partial", "keep_start", 1, 0, 1000,
									 "keep_start is how many characters stay visible at the start.");
		m->keep_end = mask_arg_int(args, "partial", "keep_end", 0, 0, 1000,
								   "keep_end is how many characters stay visible at the end.");
		m->fill = mask_arg_string(args, "partial", "fill", "*",
								  "fill replaces each hidden character (one character) or the hidden part (longer).");
		if (m->fill[0] == '\0')
			mask_bad_arg("partial", "fill", "must not be empty",
						 "An empty fill would hide that anything was hidden; use e.g. \"*\".");
	}
	else if (strcmp(method, "email") == 0)
	{
		m->method = MASK_EMAIL;
		m->method_name = "email";
		json_check_keys(args, "mask email", mask_no_keys);
	}
	else if (strcmp(method, "phone") == 0)
	{
		m->method = MASK_PHONE;
		m->method_name = "phone";
		json_check_keys(args, "mask phone", mask_phone_keys);
		m->keep_end = mask_arg_int(args, "phone", "keep", 4, 0, 10,
								   "keep is how many digits stay visible at the end (0 to 10).");
		m->fill = mask_arg_string(args, "phone", "fill", "*",
								  "fill is the one character each hidden digit becomes.");
		if (pg_mbstrlen(m->fill) != 1)
			mask_bad_arg("phone", "fill", "must be one character",
						 "fill is the one character each hidden digit becomes, e.g. \"*\" or \"X\".");
	}
	else if (strcmp(method, "card") == 0)
	{
		m->method = MASK_CARD;
		m->method_name = "card";
		json_check_keys(args, "mask card", mask_no_keys);
	}
	else if (strcmp(method, "redact") == 0)
	{
		char	   *pattern;
		char	   *flags;
		const char *f;

		m->method = MASK_REDACT;
		m->method_name = "redact";
		json_check_keys(args, "mask redact", mask_redact_keys);
		pattern = mask_arg_string(args, "redact", "pattern", NULL,
								  "Give the PCRE2 pattern of what to hide, e.g. {\"pattern\": \"\\\\d{4,}\"}.");
		if (pattern == NULL || pattern[0] == '\0')
			mask_bad_arg("redact", "pattern", "is required",
						 "Give the PCRE2 pattern of what to hide, e.g. {\"pattern\": \"\\\\d{4,}\"}.");
		flags = mask_arg_string(args, "redact", "flags", "",
								"Flags are i, m, s and x.");
		for (f = flags; *f; f++)
			if (strchr("imsx", *f) == NULL)
				mask_bad_arg("redact", "flags", psprintf("has unknown flag \"%c\"", *f),
							 "Flags are i (case-insensitive), m (multi-line), s (dot matches newline) and x (extended); every match is replaced.");
		m->replacement = mask_arg_string(args, "redact", "replacement", "[redacted]",
										 "The replacement is a string; $1 or ${name} insert a group.");
		mask_check_replacement(m->replacement);
		m->rx = rx_compile(pattern, flags);
	}
	else if (strcmp(method, "redact_pii") == 0)
	{
		JsonbValue	v;

		m->method = MASK_REDACT_PII;
		m->method_name = "redact_pii";
		json_check_keys(args, "mask redact_pii", mask_redact_pii_keys);
		m->pii_kinds = 0;
		if (json_get(args, "kinds", &v))
		{
			JsonbIterator *it;
			JsonbIteratorToken tok;
			JsonbValue	e;

			if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
				mask_bad_arg("redact_pii", "kinds", "must be an array",
							 psprintf("List PII kinds, e.g. {\"kinds\": [\"email\", \"phone\"]}; kinds are %s.",
									  pii_kind_list()));
			it = JsonbIteratorInit(v.val.binary.data);
			while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			{
				char	   *k;
				int			bit;

				if (tok != WJB_ELEM)
					continue;
				if (e.type != jbvString)
					mask_bad_arg("redact_pii", "kinds", "must hold strings",
								 psprintf("Kinds are %s.", pii_kind_list()));
				k = pnstrdup(e.val.string.val, e.val.string.len);
				bit = pii_kind_lookup(k);
				if (bit == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown PII kind \"%s\" in mask redact_pii", k),
							 errhint("Kinds are %s.", pii_kind_list())));
				m->pii_kinds |= bit;
			}
		}
		if (m->pii_kinds == 0)
			m->pii_kinds = PII_ALL;
		m->replacement = mask_arg_string(args, "redact_pii", "replacement", NULL,
										 "The replacement is a string; without one each span becomes [kind], e.g. [email].");
	}
	else if (strcmp(method, "null") == 0)
	{
		m->method = MASK_NULL;
		m->method_name = "null";
		json_check_keys(args, "mask null", mask_no_keys);
	}
	else if (strcmp(method, "constant") == 0)
	{
		JsonbValue	v;

		m->method = MASK_CONSTANT;
		m->method_name = "constant";
		json_check_keys(args, "mask constant", mask_constant_keys);
		if (!json_get(args, "value", &v))
			mask_bad_arg("constant", "value", "is required",
						 "Give the value every row gets, e.g. {\"value\": \"redacted\"} or {\"value\": 0}.");
		if (v.type == jbvString)
			m->value = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type == jbvNumeric)
			m->value = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvBool)
			m->value = pstrdup(v.val.boolean ? "true" : "false");
		else
			mask_bad_arg("constant", "value", "must be a string, a number or a boolean",
						 "Use the null mask to write NULL.");
	}
	else if (strcmp(method, "generalize") == 0)
	{
		char	   *unit;
		char	   *format;
		const char *hint = "Give {\"unit\": \"year\"|\"month\"|\"day\"|\"hour\"} for dates and timestamps, or {\"bucket\": width} for numbers.";

		m->method = MASK_GENERALIZE;
		m->method_name = "generalize";
		json_check_keys(args, "mask generalize", mask_generalize_keys);
		unit = mask_arg_string(args, "generalize", "unit", NULL, hint);
		m->bucket = mask_arg_numeric(args, "generalize", "bucket", hint);
		if ((unit == NULL) == (m->bucket == (Datum) 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mask generalize takes either \"unit\" or \"bucket\""),
					 errhint("%s", hint)));
		if (unit != NULL)		/* the choices follow UNIT_NONE in MaskUnit */
			m->unit = (MaskUnit) (UNIT_YEAR +
								  mask_choice("generalize", "unit", unit, mask_units,
											  "not a known unit",
											  "Units are year, month, day and hour."));
		format = mask_arg_string(args, "generalize", "format", "floor",
								 "Use \"floor\" (the bucket's lower bound, a number) or \"range\" (a label \"[lo,hi)\", for text columns).");
		m->range_label = (mask_choice("generalize", "format", format, mask_formats,
									  "not floor or range",
									  "Use \"floor\" (the bucket's lower bound, a number) or \"range\" (a label \"[lo,hi)\", for text columns).") == 1);
		if (m->range_label && unit != NULL)
			mask_bad_arg("generalize", "format", "applies to buckets only",
						 "Dates and timestamps are generalized to the start of their unit.");
	}
	else if (strcmp(method, "noise") == 0)
	{
		JsonbValue	v;
		const char *hint = "The ratio is the largest relative change, greater than 0 and at most 1: {\"ratio\": 0.1} moves values by up to 10%.";

		m->method = MASK_NOISE;
		m->method_name = "noise";
		json_check_keys(args, "mask noise", mask_noise_keys);
		if (!json_get(args, "ratio", &v))
			mask_bad_arg("noise", "ratio", "is required", hint);
		if (v.type != jbvNumeric)
			mask_bad_arg("noise", "ratio", "must be a number", hint);
		m->ratio = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													  NumericGetDatum(v.val.numeric)));
		if (!(m->ratio > 0 && m->ratio <= 1))
			mask_bad_arg("noise", "ratio", "must be greater than 0 and at most 1", hint);
		m->seeded = json_get(args, "seed", &v);
		if (m->seeded)
			m->seed = mask_arg_int(args, "noise", "seed", 0, PG_INT64_MIN, PG_INT64_MAX,
								   "The seed makes the noise a function of the value (repeatable, for tests); leave it out for fresh noise each time.");
		if (json_get(args, "secret", &v))
		{
			if (m->seeded)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("mask noise takes either \"seed\" or \"secret\""),
						 errhint("A secret makes the noise repeatable and not computable without it; a seed makes it repeatable for anyone.")));
			m->secret_name = mask_arg_secret(args, "noise");
		}
	}
	else if (strcmp(method, "tokenize") == 0)
	{
		const char *p;

		m->method = MASK_TOKENIZE;
		m->method_name = "tokenize";
		json_check_keys(args, "mask tokenize", mask_tokenize_keys);
		m->secret_name = mask_arg_secret(args, "tokenize");
		m->prefix = mask_arg_string(args, "tokenize", "prefix", "tok_",
									"The prefix is up to 16 letters, digits, _ or -.");
		if (strlen(m->prefix) > 16)
			mask_bad_arg("tokenize", "prefix", "is longer than 16 characters",
						 "The prefix is up to 16 letters, digits, _ or -.");
		for (p = m->prefix; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				mask_bad_arg("tokenize", "prefix", "may hold only letters, digits, _ and -",
							 "The prefix is up to 16 letters, digits, _ or -.");
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown mask method \"%s\"", method),
				 errhint("Valid methods are " MASK_METHODS ".")));
}

/* does the method produce text (so the column must hold text)? */
bool
mask_needs_text(const StageMask *m)
{
	switch (m->method)
	{
		case MASK_NULL:
		case MASK_CONSTANT:
		case MASK_GENERALIZE:
		case MASK_NOISE:
			return false;
		default:
			return true;
	}
}

/* does the method use a named secret? */
bool
mask_uses_secret(const StageMask *m)
{
	return m->method == MASK_HASH || m->method == MASK_PSEUDONYM ||
		m->method == MASK_TOKENIZE ||
		(m->method == MASK_NOISE && m->secret_name != NULL);
}

/* does the method need to see a batch's values before mask_apply? */
bool
mask_needs_batch(const StageMask *m)
{
	return mask_uses_secret(m);
}

/* is the output a function of the value (given the vault)? */
bool
mask_deterministic(const StageMask *m)
{
	return !(m->method == MASK_NOISE && !m->seeded && m->secret_name == NULL);
}

/* the length of the longest output, or -1 when it depends on the value */
static int
mask_fixed_length(const StageMask *m)
{
	switch (m->method)
	{
		case MASK_HASH:
			return m->length > 0 ? m->length : (m->base64 ? 44 : 64);
		case MASK_TOKENIZE:
			return strlen(m->prefix) + 24;
		default:
			return -1;
	}
}

static bool
mask_text_type(Oid base)
{
	return base == TEXTOID || base == VARCHAROID || base == BPCHAROID;
}

static bool
mask_number_type(Oid base)
{
	return base == INT2OID || base == INT4OID || base == INT8OID ||
		base == NUMERICOID || base == FLOAT4OID || base == FLOAT8OID;
}

static void
mask_type_error(const StageMask *m, const char *column, Oid typid,
				const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("mask %s cannot write column \"%s\" of type %s",
					m->method_name, column, format_type_be(typid)),
			 errhint("%s", hint)));
}

/*
 * Check a parsed mask against the column it masks (its type, typmod and
 * NOT NULL): what the mask writes must be something the column accepts,
 * or every row would end in quarantine.
 */
void
mask_check_column(const StageMask *m, const char *column, Oid typid,
				  int32 typmod, bool notnull)
{
	int32		basemod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &basemod);

	switch (m->method)
	{
		case MASK_NULL:
			if (notnull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("mask null cannot apply to column \"%s\": it is NOT NULL", column),
						 errhint("Use the constant mask to write a fixed value instead.")));
			return;
		case MASK_CONSTANT:
			{
				Oid			infunc;
				Oid			ioparam;

				/* the input function says whether the column takes it */
				getTypeInputInfo(typid, &infunc, &ioparam);
				(void) OidInputFunctionCall(infunc, m->value, ioparam, typmod);
				return;
			}
		case MASK_GENERALIZE:
			if (m->bucket == (Datum) 0)
			{
				if (base == DATEOID && m->unit == UNIT_HOUR)
					mask_type_error(m, column, typid,
									"A date has no hours: generalize it by day, month or year.");
				if (base != DATEOID && base != TIMESTAMPOID && base != TIMESTAMPTZOID &&
					!mask_text_type(base))
					mask_type_error(m, column, typid,
									"A unit generalizes dates and timestamps (or text holding them); use {\"bucket\": width} for numbers.");
				return;
			}
			if (m->range_label && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"The \"range\" format writes a label such as [10,20); use it on text columns, or the default \"floor\" format.");
			if (!mask_number_type(base) && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"A bucket generalizes numbers (or text holding them); use {\"unit\": ...} for dates and timestamps.");
			if ((base == INT2OID || base == INT4OID || base == INT8OID) &&
				strchr(DatumGetCString(DirectFunctionCall1(numeric_out, m->bucket)), '.'))
			{
				char	   *w = DatumGetCString(DirectFunctionCall1(numeric_out, m->bucket));
				char	   *dot = strchr(w, '.');

				/* 10.000 is integral too */
				while (*++dot == '0')
					;
				if (*dot != '\0')
					mask_type_error(m, column, typid,
									"The column holds integers: use a whole bucket width.");
			}
			return;
		case MASK_NOISE:
			if (!mask_number_type(base) && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"Noise applies to numbers (or text holding them).");
			return;
		default:
			if (!mask_text_type(base))
				mask_type_error(m, column, typid,
								"This mask writes text: mask text columns, or use null, constant, generalize or noise.");
			if ((base == VARCHAROID || base == BPCHAROID) && basemod > VARHDRSZ &&
				mask_fixed_length(m) > basemod - VARHDRSZ)
				ereport(ERROR,
						(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
						 errmsg("mask %s writes %d characters, but column \"%s\" is %s",
								m->method_name, mask_fixed_length(m), column,
								format_type_with_typemod(typid, typmod)),
						 errhint(m->method == MASK_HASH ?
								 "Set the hash's \"length\" or widen the column." :
								 "Use a shorter prefix or widen the column.")));
			return;
	}
}

/*
 * Load the secret of a hash, pseudonym or tokenize mask, checking the
 * current user may use it.  Done when a mask is declared (so a missing or
 * forbidden secret is refused then) and before a batch writes, never by
 * stage.check_row, which shows no masked values and so needs no key.
 */
void
mask_load_key(StageMask *m, Oid role)
{
	if (!mask_uses_secret(m) || m->key_loaded)
		return;
	m->key_loaded = mask_key_from_secret(&m->hkey, m->secret_name, role, false);
}

/* the same, false (not raising) when the secret is missing or forbidden */
bool
mask_try_load_key(StageMask *m, Oid role)
{
	if (!mask_uses_secret(m) || m->key_loaded)
		return m->key_loaded || !mask_uses_secret(m);
	m->key_loaded = mask_key_from_secret(&m->hkey, m->secret_name, role, true);
	return m->key_loaded;
}

/*
 * Called by the mover once per batch with the column's non-null values
 * (quarantined rows included), before mask_apply is called on any of
 * them: the key is loaded (once per compiled contract), and tokenize
 * resolves every value of the batch against the vault at once.
 */
void
mask_prepare(StageMask *m, const char **values, int n, Oid role)
{
	if (mask_uses_secret(m))
	{
		/* the key lives with the compiled contract, in its context */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(m));

		mask_load_key(m, role);
		MemoryContextSwitchTo(old);
	}
	if (m->method == MASK_TOKENIZE)
		vault_prepare(m, values, n, true);
}

/* the masked form of value (NUL-terminated, len bytes); NULL for null */
char *
mask_apply(const StageMask *m, const char *value, int len)
{
	switch (m->method)
	{
		case MASK_HASH:
			if (!m->key_loaded)
				elog(ERROR, "hash mask used before its key was loaded");
			return mask_hash(&m->hkey, value, len, m->base64, m->length);
		case MASK_PSEUDONYM:
			if (!m->key_loaded)
				elog(ERROR, "pseudonym mask used before its key was loaded");
			return mask_pseudonym(&m->hkey, value, len, m->pseudo_kind, m->keep_domain);
		case MASK_PARTIAL:
			return mask_partial(value, len, m->keep_start, m->keep_end, m->fill);
		case MASK_EMAIL:
			return mask_email(value, len);
		case MASK_PHONE:
			return mask_phone(value, len, m->keep_end, m->fill);
		case MASK_CARD:
			return mask_card(value, len);
		case MASK_REDACT:
			return mask_redact(m->rx, value, len, m->replacement);
		case MASK_REDACT_PII:
			return mask_redact_pii(value, len, m->pii_kinds, m->replacement);
		case MASK_NULL:
			return NULL;
		case MASK_CONSTANT:
			return pstrdup(m->value);
		case MASK_GENERALIZE:
			if (m->bucket != (Datum) 0)
				return mask_generalize_number(value, m->bucket, m->range_label);
			return mask_generalize_time(value, m->unit);
		case MASK_NOISE:
			if (m->secret_name != NULL && !m->key_loaded)
				elog(ERROR, "noise mask used before its key was loaded");
			return mask_noise(value, m->ratio, m->secret_name ? &m->hkey : NULL,
							  m->seeded, m->seed);
		case MASK_TOKENIZE:
			return vault_lookup(m, value, len);
	}
	return NULL;
}

/*
 * BEFORE INSERT OR UPDATE trigger on stage.mask: check a mask against the
 * column it masks (mask_check_column), however it is stored (add_mask,
 * set_contract).  Rows whose pipeline or column cannot be resolved (a
 * restore that loads catalog rows before their pipeline) pass: add_mask
 * has checked those already.
 */
PG_FUNCTION_INFO_V1(stage_mask_check);
Datum
stage_mask_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int32		pipeline_id;
	char	   *column;
	char	   *method;
	Jsonb	   *args;
	Oid			target = InvalidOid;
	Oid			argtype = INT4OID;
	Datum		arg;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "stage_mask_check: must be a BEFORE ROW trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);
	pipeline_id = DatumGetInt32(heap_getattr(tup, SPI_fnumber(desc, "pipeline_id"), desc, &isnull));
	column = SPI_getvalue(tup, desc, SPI_fnumber(desc, "column_name"));
	method = SPI_getvalue(tup, desc, SPI_fnumber(desc, "method"));
	{
		Datum		a = heap_getattr(tup, SPI_fnumber(desc, "args"), desc, &isnull);

		args = isnull ? NULL : DatumGetJsonbP(a);
	}

	arg = Int32GetDatum(pipeline_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT target::pg_catalog.oid FROM stage.pipeline"
							  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read stage.pipeline");
	if (SPI_processed == 1)
		target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	if (OidIsValid(target) && column != NULL)
	{
		Relation	rel = try_relation_open(target, AccessShareLock);

		if (rel != NULL)
		{
			AttrNumber	attnum = attnameAttNum(rel, column, false);

			if (attnum > 0)
			{
				Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
				StageMask	m;

				mask_parse(&m, method, args);
				mask_check_column(&m, column, att->atttypid, att->atttypmod,
								  att->attnotnull);
			}
			relation_close(rel, AccessShareLock);
		}
	}
	return PointerGetDatum(tup);
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

/* stage.mask_phone(value, keep, fill) */
PG_FUNCTION_INFO_V1(stage_mask_phone);
Datum
stage_mask_phone(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int32		keep = PG_GETARG_INT32(1);
	char	   *fill = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (keep < 0 || keep > 10)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep must be between 0 and 10"),
				 errhint("keep is how many digits stay visible at the end.")));
	if (pg_mbstrlen(fill) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fill must be one character"),
				 errhint("fill is the one character each hidden digit becomes, e.g. '*'.")));
	PG_RETURN_TEXT_P(cstring_to_text(mask_phone(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
												keep, fill)));
}

PG_FUNCTION_INFO_V1(stage_luhn_valid);
Datum
stage_luhn_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(luhn_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/*
 * A StageMask parsed from SQL arguments, cached in fn_extra while the
 * arguments stay the same (a call per row over a column parses once).
 */
typedef struct MaskCache
{
	char	   *method;
	char	   *args;			/* jsonb as text: the cache key */
	StageMask	mask;
} MaskCache;

static StageMask *
mask_cached(FunctionCallInfo fcinfo, const char *method, Jsonb *args)
{
	MaskCache  *c = (MaskCache *) fcinfo->flinfo->fn_extra;
	char	   *argtext = args ? JsonbToCString(NULL, &args->root, VARSIZE(args)) : "";

	if (c == NULL || strcmp(c->method, method) != 0 || strcmp(c->args, argtext) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		/* a failed parse leaves no half-made entry behind */
		fcinfo->flinfo->fn_extra = NULL;
		c = palloc0(sizeof(MaskCache));
		c->method = pstrdup(method);
		c->args = pstrdup(argtext);
		mask_parse(&c->mask, method, args);
		mask_load_key(&c->mask, stage_caller());
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = c;
	}
	return &c->mask;
}

/* apply a cached mask to the text argument 0 */
static Datum
mask_call(FunctionCallInfo fcinfo, StageMask *m)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *v = text_to_cstring(t);
	char	   *out;

	if (m->method == MASK_TOKENIZE)
	{
		const char *vals[1] = {v};

		vault_prepare(m, vals, 1, true);
	}
	out = mask_apply(m, v, strlen(v));
	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* stage.mask(value, method, args): any method, exactly as add_mask applies it */
PG_FUNCTION_INFO_V1(stage_mask);
Datum
stage_mask(PG_FUNCTION_ARGS)
{
	return mask_call(fcinfo, mask_cached(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(1)),
										 PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)));
}

/* build a jsonb object from alternating key/value C strings (NULL: skip) */
static Jsonb *
mask_args(int n, const char **kv)
{
	StringInfoData s;
	int			i;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i + 1 < n; i += 2)
	{
		if (kv[i + 1] == NULL)
			continue;
		if (!first)
			appendStringInfoString(&s, ", ");
		first = false;
		escape_json(&s, kv[i]);
		appendStringInfoString(&s, ": ");
		/* numbers and arrays are passed already in JSON form, marked by '#' */
		if (kv[i + 1][0] == '#')
			appendStringInfoString(&s, kv[i + 1] + 1);
		else
			escape_json(&s, kv[i + 1]);
	}
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* stage.mask_hash(value, secret, length, encoding) */
PG_FUNCTION_INFO_V1(stage_mask_hash);
Datum
stage_mask_hash(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"length", psprintf("#%d", PG_GETARG_INT32(2)),
	"encoding", text_to_cstring(PG_GETARG_TEXT_PP(3))};

	return mask_call(fcinfo, mask_cached(fcinfo, "hash", mask_args(6, kv)));
}

/* stage.pseudonymize(value, secret, kind, keep_domain) */
PG_FUNCTION_INFO_V1(stage_pseudonymize);
Datum
stage_pseudonymize(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"kind", text_to_cstring(PG_GETARG_TEXT_PP(2)),
	"domain", PG_GETARG_BOOL(3) ? "keep" : "pseudonymize"};

	return mask_call(fcinfo, mask_cached(fcinfo, "pseudonym", mask_args(6, kv)));
}

/* stage.redact(value, pattern, replacement, flags) */
PG_FUNCTION_INFO_V1(stage_redact);
Datum
stage_redact(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"pattern", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"replacement", text_to_cstring(PG_GETARG_TEXT_PP(2)),
	"flags", text_to_cstring(PG_GETARG_TEXT_PP(3))};

	return mask_call(fcinfo, mask_cached(fcinfo, "redact", mask_args(6, kv)));
}

/* stage.redact_pii(value, kinds text[], replacement): not strict */
PG_FUNCTION_INFO_V1(stage_redact_pii);
Datum
stage_redact_pii(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"kinds", NULL, "replacement", NULL};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;
		StringInfoData s;

		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		initStringInfo(&s);
		appendStringInfoString(&s, "#[");
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("PII kinds must not be null"),
						 errhint("Kinds are %s.", pii_kind_list())));
			if (i > 0)
				appendStringInfoString(&s, ", ");
			escape_json(&s, TextDatumGetCString(elems[i]));
		}
		appendStringInfoChar(&s, ']');
		kv[1] = s.data;
	}
	if (!PG_ARGISNULL(2))
		kv[3] = text_to_cstring(PG_GETARG_TEXT_PP(2));
	return mask_call(fcinfo, mask_cached(fcinfo, "redact_pii", mask_args(4, kv)));
}

/* stage.mask_generalize(value text, unit text): the mask's own algorithm */
PG_FUNCTION_INFO_V1(stage_mask_generalize_text);
Datum
stage_mask_generalize_text(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"unit", text_to_cstring(PG_GETARG_TEXT_PP(1))};

	return mask_call(fcinfo, mask_cached(fcinfo, "generalize", mask_args(2, kv)));
}

/* the unit argument of the typed generalize functions, checked */
static text *
mask_unit_arg(FunctionCallInfo fcinfo)
{
	char	   *unit = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (strcmp(unit, "year") != 0 && strcmp(unit, "month") != 0 &&
		strcmp(unit, "day") != 0 && strcmp(unit, "hour") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown generalize unit \"%s\"", unit),
				 errhint("Units are year, month, day and hour.")));
	return PG_GETARG_TEXT_PP(1);
}

/* stage.mask_generalize(date, unit) RETURNS date */
PG_FUNCTION_INFO_V1(stage_mask_generalize_date);
Datum
stage_mask_generalize_date(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);
	Datum		ts;

	if (strcmp(text_to_cstring(unit), "hour") == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	ts = DirectFunctionCall1(date_timestamp, PG_GETARG_DATUM(0));
	ts = DirectFunctionCall2(timestamp_trunc, PointerGetDatum(unit), ts);
	PG_RETURN_DATUM(DirectFunctionCall1(timestamp_date, ts));
}

/* stage.mask_generalize(timestamp, unit) RETURNS timestamp */
PG_FUNCTION_INFO_V1(stage_mask_generalize_timestamp);
Datum
stage_mask_generalize_timestamp(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);

	PG_RETURN_DATUM(DirectFunctionCall2(timestamp_trunc, PointerGetDatum(unit),
										PG_GETARG_DATUM(0)));
}

/* stage.mask_generalize(timestamptz, unit): in the session's time zone */
PG_FUNCTION_INFO_V1(stage_mask_generalize_timestamptz);
Datum
stage_mask_generalize_timestamptz(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);

	PG_RETURN_DATUM(DirectFunctionCall2(timestamptz_trunc, PointerGetDatum(unit),
										PG_GETARG_DATUM(0)));
}

/* stage.mask_generalize(numeric, bucket numeric) RETURNS numeric */
PG_FUNCTION_INFO_V1(stage_mask_generalize_numeric);
Datum
stage_mask_generalize_numeric(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"bucket", psprintf("#%s",
											DatumGetCString(DirectFunctionCall1(numeric_out,
																				PG_GETARG_DATUM(1))))};
	StageMask  *m;
	char	   *v;
	char	   *out;

	if (numeric_is_nan(PG_GETARG_NUMERIC(1)) || numeric_is_inf(PG_GETARG_NUMERIC(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bucket width must be a finite number greater than zero")));
	m = mask_cached(fcinfo, "generalize", mask_args(2, kv));
	v = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(0)));
	out = mask_apply(m, v, strlen(v));
	if (strcmp(out, MASK_NOT_A_NUMBER) == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));	/* NaN, Infinity: unchanged */
	PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(out),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* stage.mask_noise(numeric, ratio [, seed]) RETURNS numeric */
PG_FUNCTION_INFO_V1(stage_mask_noise);
Datum
stage_mask_noise(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"ratio", psprintf("#%.17g", PG_GETARG_FLOAT8(1)),
	"seed", PG_NARGS() > 2 ? psprintf("#" INT64_FORMAT, PG_GETARG_INT64(2)) : NULL};
	StageMask  *m;
	char	   *v;
	char	   *out;

	if (isnan(PG_GETARG_FLOAT8(1)) || isinf(PG_GETARG_FLOAT8(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"ratio\" of mask noise must be greater than 0 and at most 1")));
	m = mask_cached(fcinfo, "noise", mask_args(4, kv));
	v = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(0)));
	out = mask_apply(m, v, strlen(v));
	if (strcmp(out, MASK_NOT_A_NUMBER) == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));	/* NaN, Infinity: unchanged */
	PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(out),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* stage.mask_noise(numeric, ratio, secret text): keyed noise */
PG_FUNCTION_INFO_V1(stage_mask_noise_keyed);
Datum
stage_mask_noise_keyed(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"ratio", psprintf("#%.17g", PG_GETARG_FLOAT8(1)),
	"secret", text_to_cstring(PG_GETARG_TEXT_PP(2))};
	StageMask  *m;
	char	   *v;
	char	   *out;

	if (isnan(PG_GETARG_FLOAT8(1)) || isinf(PG_GETARG_FLOAT8(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"ratio\" of mask noise must be greater than 0 and at most 1")));
	m = mask_cached(fcinfo, "noise", mask_args(4, kv));
	v = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(0)));
	out = mask_apply(m, v, strlen(v));
	if (strcmp(out, MASK_NOT_A_NUMBER) == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));	/* NaN, Infinity: unchanged */
	PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(out),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
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

		fcinfo->flinfo->fn_extra = NULL;
		c = palloc0(sizeof(HmacCache));
		c->name = pstrdup(name);
		(void) mask_key_from_secret(&c->key, name, stage_caller(), false);
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

static int
mask_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
mask_b64val(char c)
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
mask_key_format_error(const char *format)
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
			if ((v = mask_hexval(s[i])) < 0)
				mask_key_format_error("hex");
			if (hi < 0)
				hi = v;
			else
			{
				o[n++] = (hi << 4) | v;
				hi = -1;
			}
		}
		if (hi >= 0)
			mask_key_format_error("hex");
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
			if (pad || (v = mask_b64val(s[i])) < 0)
				mask_key_format_error("base64");
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

/* stage.tokenize(value, secret): the value's token, created if need be */
PG_FUNCTION_INFO_V1(stage_tokenize);
Datum
stage_tokenize(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1))};

	return mask_call(fcinfo, mask_cached(fcinfo, "tokenize", mask_args(2, kv)));
}
