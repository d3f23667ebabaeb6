/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  Masking primitives: one value in, its masked form out.  partial,
 *	  email, card, phone, hash (HMAC-SHA256, hex or base64), redact (a
 *	  PCRE2 pattern), redact_pii, generalize (dates to a unit, numbers to a
 *	  bucket) and noise.  The pseudonym is in pseudonym.c, tokens in
 *	  vault.c; the contract form of a mask (StageMask) in mask_contract.c,
 *	  the SQL functions in mask_sql.c.
 *
 * Rules every primitive keeps:
 *	- it works on characters, not bytes: a multibyte character is kept or
 *	  replaced whole, never split;
 *	- it never raises because of a value, and never returns the value it
 *	  could not read: a number or date it cannot parse becomes a fixed text
 *	  ("[not a number]", "[not an ISO date]") that a typed target column
 *	  then refuses, so the row is quarantined with a message that holds no
 *	  trace of the original;
 *	- the result is palloc'd in CurrentMemoryContext.
 *
 * Touches no catalog and no SPI; keys come already absorbed (HmacKey), so
 * no secret is read here.
 *
 *-------------------------------------------------------------------------
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "postgres.h"

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "mask.h"
#include "pii.h"
#include "regex.h"
#include "sha256.h"
#include "typecheck.h"

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
