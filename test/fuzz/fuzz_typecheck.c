/*-------------------------------------------------------------------------
 *
 * fuzz_typecheck.c
 *	  libFuzzer harness of the type pre-checks (src/typecheck.c):
 *	  tc_precheck for every TypeClass, tc_isodate, tc_isotime, tc_isozone.
 *
 * Input: [class] [typmod bytes x2] text...
 *	  class % 12: the TypeClass
 *	  typmod: varchar: VARHDRSZ + 1..256; numeric: -1, or numeric(p,s) as
 *	  PostgreSQL 15 encodes it, p 1..40 or 1000, s -1..p+1 (negative and
 *	  larger-than-precision scales are legal in 15); other classes -1.
 *
 * The contract of tc_precheck (typecheck.c): "true: the input function
 * certainly accepts s for this type and typmod".  The mover then calls no
 * input function at all, so a wrong "true" sends a bad value to the
 * INSERT.  Each true answer is therefore checked here against a model of
 * the PostgreSQL 15 input function (int2in/int4in/int8in, numeric_in with
 * apply_typmod, float4in/float8in, boolin, date_in/timestamp_in in ISO
 * form, uuid_in, varchar/bpchar length), written independently of
 * typecheck.c.  The models follow the server's documented behaviour:
 * float4in/float8in refuse a non-zero value that underflows to zero
 * ("out of range"), numeric refuses more than 16383 digits after the point
 * (NUMERIC_DSCALE_MAX, "value overflows numeric format") and checks
 * numeric(p,s) after rounding to s.
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

#define NUMERIC_DSCALE_LIMIT 16383	/* NUMERIC_DSCALE_MAX */

static const char *
skip_ws(const char *p)
{
	while (*p && isspace((unsigned char) *p))
		p++;
	return p;
}

/* int2in/int4in/int8in (pg_strtoint16/32/64 of PostgreSQL 15) */
static bool
model_int(const char *s, int64 min, int64 max)
{
	const char *p = skip_ws(s);
	bool		neg = false;
	__int128	v = 0;
	int			n = 0;

	if (*p == '+' || *p == '-')
		neg = (*p++ == '-');
	while (*p >= '0' && *p <= '9')
	{
		v = v * 10 + (*p++ - '0');
		if (v > ((__int128) 1 << 64))
			return false;
		n++;
	}
	if (n == 0)
		return false;
	p = skip_ws(p);
	if (*p != '\0')
		return false;
	if (neg)
		v = -v;
	return v >= min && v <= max;
}

/*
 * numeric_in for plain decimal text (no exponent: tc_precheck never says
 * yes to one), then apply_typmod.
 */
static bool
model_numeric(const char *s, int32 typmod, const char **why)
{
	const char *p = skip_ws(s);
	const char *ip;
	const char *iend;
	int			ilen;
	int			ndig = 0;
	const char *fp = NULL;
	int			flen = 0;
	int			precision;
	int			scale;
	int			k;
	int			intdigits;
	bool		roundup;
	bool		all_nines = true;
	bool		all_zero = true;
	int			i;
	char	   *digits;

	if (*p == '+' || *p == '-')
		p++;
	ip = p;
	while (*p >= '0' && *p <= '9')
		p++, ndig++;
	iend = p;
	if (*p == '.')
	{
		fp = ++p;
		while (*p >= '0' && *p <= '9')
			p++, ndig++, flen++;
	}
	if (ndig == 0)
		return false;
	while (ip < iend && *ip == '0')
		ip++;					/* leading zeros of the integer part */
	ilen = iend - ip;
	if (*p == 'e' || *p == 'E')
		return true;			/* not modelled; tc_precheck never accepts it */
	p = skip_ws(p);
	if (*p != '\0')
		return false;

	if (typmod < (int32) VARHDRSZ)
	{
		if (flen > NUMERIC_DSCALE_LIMIT)
			*why = "precheck-numeric-dscale";	/* "value overflows numeric format" */
		return flen <= NUMERIC_DSCALE_LIMIT && ilen <= 131072;
	}

	precision = ((typmod - VARHDRSZ) >> 16) & 0xffff;
	scale = ((((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024);
	if (scale > precision)
		return true;			/* not modelled; tc_precheck never accepts it */

	/* the digits, integer then fraction; round at position k = ilen + scale */
	digits = malloc(ilen + flen + 1);
	memcpy(digits, ip, ilen);
	if (flen)
		memcpy(digits + ilen, fp, flen);
	k = ilen + scale;
	if (k < 0)
		intdigits = 0;			/* rounds to zero */
	else if (k >= ilen + flen)
	{
		for (i = 0; i < ilen + flen; i++)
			if (digits[i] != '0')
				all_zero = false;
		intdigits = all_zero ? 0 : ilen;
	}
	else
	{
		roundup = digits[k] >= '5';
		for (i = 0; i < k; i++)
		{
			if (digits[i] != '9')
				all_nines = false;
			if (digits[i] != '0')
				all_zero = false;
		}
		if (roundup && all_nines)
			intdigits = ilen + 1;	/* 9.96 -> 10.0 */
		else if (all_zero && !roundup)
			intdigits = 0;
		else
			intdigits = ilen;
	}
	free(digits);
	return intdigits <= precision - scale;
}

/* float4in and float8in: TC_FLOAT stands for both */
static bool
model_float(const char *s)
{
	const char *p = skip_ws(s);
	char	   *end;
	float		f;
	double		d;

	if (*p == '\0')
		return false;
	errno = 0;
	f = strtof(p, &end);
	if (end == p)
		return false;
	if (errno == ERANGE && (f == 0.0f || isinf(f)))
		return false;			/* "is out of range for type real" */
	if (*skip_ws(end) != '\0')
		return false;
	errno = 0;
	d = strtod(p, &end);
	if (errno == ERANGE && (d == 0.0 || isinf(d)))
		return false;			/* "is out of range for type double precision" */
	return true;
}

/* boolin: a prefix of true/false/yes/no, on/off, 1/0, case-insensitive, trimmed */
static bool
model_bool(const char *s)
{
	const char *p = skip_ws(s);
	size_t		n = strlen(p);
	static const char *const words[] = {"true", "false", "yes", "no"};
	int			i;

	while (n > 0 && isspace((unsigned char) p[n - 1]))
		n--;
	if (n == 0)
		return false;
	for (i = 0; i < 4; i++)
		if (n <= strlen(words[i]) && pg_strncasecmp(p, words[i], n) == 0)
			return true;
	if (n == 2 && pg_strncasecmp(p, "on", 2) == 0)
		return true;
	if (n >= 2 && n <= 3 && pg_strncasecmp(p, "off", n) == 0)
		return true;
	return n == 1 && (*p == '1' || *p == '0');
}

static bool
digits_at(const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/* the two-digit number at p (digits checked by the caller) */
static int
two(const char *p)
{
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* YYYY-MM-DD, a real day of year 1..9999 (round trip through timegm) */
static bool
model_date10(const char *p)
{
	struct tm	tm;
	struct tm	back;
	time_t		t;
	int			y,
				m,
				d;

	if (!(digits_at(p, 4) && p[4] == '-' && digits_at(p + 5, 2) && p[7] == '-' &&
		  digits_at(p + 8, 2)))
		return false;
	y = two(p) * 100 + two(p + 2);
	m = two(p + 5);
	d = two(p + 8);
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	t = timegm(&tm);
	gmtime_r(&t, &back);
	return back.tm_year == y - 1900 && back.tm_mon == m - 1 && back.tm_mday == d;
}

/* date [ (T|space) HH:MM[:SS[.f]] [Z|+-HH[[:]MM]] ] */
static bool
model_timestamp(const char *s)
{
	const char *p = s;

	if (!model_date10(p))
		return false;
	p += 10;
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != ' ')
		return false;
	p++;
	if (!(digits_at(p, 2) && p[2] == ':' && digits_at(p + 3, 2)))
		return false;
	if (two(p) > 23 || two(p + 3) > 59)
		return false;
	p += 5;
	if (*p == ':')
	{
		if (!digits_at(p + 1, 2) || two(p + 1) > 59)
			return false;
		p += 3;
		if (*p == '.')
		{
			p++;
			if (!digits_at(p, 1))
				return false;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == '\0' || ((*p == 'Z' || *p == 'z') && p[1] == '\0'))
		return true;
	if (*p != '+' && *p != '-')
		return false;
	p++;
	if (!digits_at(p, 2) || two(p) > 15)
		return false;
	p += 2;
	if (*p == ':')
		p++;
	if (*p == '\0' && p[-1] != ':')
		return true;
	return digits_at(p, 2) && two(p) <= 59 && p[2] == '\0';
}

static bool
model_uuid(const char *s)
{
	int			i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

static int32
pick_typmod(TypeClass tc, uint8 a, uint8 b)
{
	if (tc == TC_VARCHAR)
		return VARHDRSZ + 1 + a;
	if (tc == TC_NUMERIC && a != 0)
	{
		int			precision = (a & 0x80) ? 1000 : 1 + a % 40;
		int			scale = (int) (b % (precision + 3)) - 1;

		return ((precision << 16) | (scale & 0x7ff)) + VARHDRSZ;
	}
	return -1;
}

static const char *const tc_names[] = {
	"other", "text", "varchar", "int2", "int4", "int8", "numeric", "float",
	"bool", "date", "timestamp", "uuid"
};

static void
run(TypeClass tc, int32 typmod, const FuzzText *t)
{
	const char *s = t->cstr;
	bool		r = tc_precheck(tc, typmod, s);
	bool		model = true;
	const char *why = "precheck-sound";
	int			n;

	switch (tc)
	{
		case TC_OTHER:
			FUZZ_CHECK("precheck-other", !r, "tc_precheck(other) said yes to %s",
					   fuzz_show(s, t->len));
			break;
		case TC_TEXT:
			break;
		case TC_VARCHAR:
			{
				int			nchars = 0;
				int			i = 0;

				while (i < t->len)
				{
					i += pg_encoding_verifymbchar(PG_UTF8, s + i, t->len - i);
					nchars++;
				}
				model = nchars <= typmod - (int32) VARHDRSZ;
				FUZZ_CHECK("precheck-varchar-exact", r == model,
						   "tc_precheck(varchar(%d)) = %d for %d characters %s",
						   typmod - (int32) VARHDRSZ, r, nchars, fuzz_show(s, t->len));
			}
			break;
		case TC_INT2:
			model = model_int(s, PG_INT16_MIN, PG_INT16_MAX);
			break;
		case TC_INT4:
			model = model_int(s, PG_INT32_MIN, PG_INT32_MAX);
			break;
		case TC_INT8:
			model = model_int(s, PG_INT64_MIN, PG_INT64_MAX);
			break;
		case TC_NUMERIC:
			why = "precheck-numeric";
			model = model_numeric(s, typmod, &why);
			break;
		case TC_FLOAT:
			why = "precheck-float";
			model = model_float(s);
			break;
		case TC_BOOL:
			model = model_bool(s);
			break;
		case TC_DATE:
			model = model_date10(s) && s[10] == '\0';
			break;
		case TC_TIMESTAMP:
			model = model_timestamp(s);
			break;
		case TC_UUID:
			model = model_uuid(s);
			break;
	}
	if (r)
		FUZZ_CHECK(why, model,
				   "tc_precheck(%s, typmod %d) says the input function certainly accepts %s, "
				   "but PostgreSQL 15's input function refuses it",
				   tc_names[tc], typmod, fuzz_show(s, t->len));

	/* the pieces, on the same text */
	n = tc_isodate(s);
	FUZZ_CHECK("isodate", n == 0 || (n == 10 && model_date10(s)),
			   "tc_isodate(%s) = %d", fuzz_show(s, t->len), n);
	FUZZ_CHECK("isodate", n == 10 || !model_date10(s),
			   "tc_isodate(%s) = %d for a valid date", fuzz_show(s, t->len), n);
	n = tc_isotime(s);
	FUZZ_CHECK("isotime", n == 0 || n == 5 || n == 8 || (n >= 10 && n <= 15),
			   "tc_isotime(%s) = %d", fuzz_show(s, t->len), n);
	if (n > 0)
	{
		char		ts[64];

		snprintf(ts, sizeof(ts), "2000-01-01 %.*s", n, s);
		FUZZ_CHECK("isotime", model_timestamp(ts), "tc_isotime accepted %s",
				   fuzz_show(s, n));
	}
	if (tc_isozone(s) && t->len < 40)
	{
		char		ts[64];

		snprintf(ts, sizeof(ts), "2000-01-01 00:00%s", s);
		FUZZ_CHECK("isozone", model_timestamp(ts), "tc_isozone accepted %s",
				   fuzz_show(s, t->len));
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

#define TC_CASE(fname, tc, typmod) \
	static void fname(const FuzzText *t) { (void) tc_precheck(tc, typmod, t->cstr); }
TC_CASE(t_varchar, TC_VARCHAR, VARHDRSZ + 2000000)
TC_CASE(t_int8, TC_INT8, -1)
TC_CASE(t_numeric, TC_NUMERIC, -1)
TC_CASE(t_numeric_ps, TC_NUMERIC, ((12 << 16) | 2) + VARHDRSZ)
TC_CASE(t_float, TC_FLOAT, -1)
TC_CASE(t_bool, TC_BOOL, -1)
TC_CASE(t_date, TC_DATE, -1)
TC_CASE(t_timestamp, TC_TIMESTAMP, -1)
TC_CASE(t_uuid, TC_UUID, -1)

static void
t_pieces(const FuzzText *t)
{
	(void) tc_isodate(t->cstr);
	(void) tc_isotime(t->cstr);
	(void) tc_isozone(t->cstr);
}

static const FuzzTiming timing[] = {
	{"tc_precheck(varchar)", t_varchar},
	{"tc_precheck(int8)", t_int8},
	{"tc_precheck(numeric)", t_numeric},
	{"tc_precheck(numeric(12,2))", t_numeric_ps},
	{"tc_precheck(float)", t_float},
	{"tc_precheck(bool)", t_bool},
	{"tc_precheck(date)", t_date},
	{"tc_precheck(timestamp)", t_timestamp},
	{"tc_precheck(uuid)", t_uuid},
	{"tc_isodate+isotime+isozone", t_pieces},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzBytes	b = {data, size};
	FuzzText	t;
	TypeClass	tc;
	uint8		a;
	uint8		c;

	if (fuzz_timing_mode())
	{
		fuzz_timing("typecheck", timing, lengthof(timing), data, size);
		return 0;
	}
	tc = (TypeClass) (fb_byte(&b) % 12);
	a = fb_byte(&b);
	c = fb_byte(&b);
	fuzz_text(&t, b.p, b.n);
	run(tc, pick_typmod(tc, a, c), &t);
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
