/*-------------------------------------------------------------------------
 *
 * typecheck.c
 *	  Cheap C pre-checks of a text value against a target column type.
 *
 * PostgreSQL 15 has no soft input errors, so calling a type's input
 * function on a bad value raises an ERROR that only a subtransaction can
 * catch.  tc_precheck answers "certainly valid" for the common shapes of the
 * common types, so the mover calls no input function for them at all; every
 * other value ("not sure") goes through the real input function inside a
 * subtransaction, which is the authority and supplies the exact SQLSTATE and
 * message.  A pre-check must therefore never say "valid" for a value the
 * input function would reject; saying "not sure" is always safe.
 *
 * Touches nothing: no catalog access after tc_classify, no allocation,
 * no error; safe on any input.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/lsyscache.h"

#include "typecheck.h"

/* the pre-check class of a type (TC_OTHER: its input function decides) */
TypeClass
tc_classify(Oid typid, int32 typmod)
{
	switch (typid)
	{
		case TEXTOID:
			return TC_TEXT;
		case VARCHAROID:
		case BPCHAROID:
			return typmod < 0 ? TC_TEXT : TC_VARCHAR;
		case INT2OID:
			return TC_INT2;
		case INT4OID:
			return TC_INT4;
		case INT8OID:
			return TC_INT8;
		case NUMERICOID:
			return TC_NUMERIC;
		case FLOAT4OID:
		case FLOAT8OID:
			return TC_FLOAT;
		case BOOLOID:
			return TC_BOOL;
		case DATEOID:
			return TC_DATE;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return TC_TIMESTAMP;
		case UUIDOID:
			return TC_UUID;
		default:
			return TC_OTHER;
	}
}

static bool
tc_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [sign]digits, no spaces, within [min, max] */
static bool
tc_int(const char *s, int64 min, int64 max)
{
	bool		neg = false;
	uint64		v = 0;
	int			n = 0;

	if (*s == '-' || *s == '+')
		neg = (*s++ == '-');
	for (; tc_digit(*s); s++, n++)
	{
		if (n >= 18)
			return false;		/* long: let int8in decide */
		v = v * 10 + (*s - '0');
	}
	if (n == 0 || *s != '\0')
		return false;
	if (neg)
		return -(int64) v >= min;
	return (int64) v <= max;
}

/*
 * [sign] digits [. digits] [e [sign] digits], within numeric(p,s) when the
 * typmod says so.  Values that would round up into one more integer digit
 * are left to numeric_in.
 */
static bool
tc_numeric(const char *s, int32 typmod, bool is_float)
{
	int			intdigits = 0;
	int			fracdigits = 0;
	int			ndigits = 0;
	bool		lead_zero_skip = true;

	if (*s == '-' || *s == '+')
		s++;
	for (; tc_digit(*s); s++)
	{
		ndigits++;
		if (*s == '0' && lead_zero_skip)
			continue;
		lead_zero_skip = false;
		intdigits++;
	}
	if (*s == '.')
	{
		s++;
		for (; tc_digit(*s); s++)
			fracdigits++;
	}
	if (ndigits + fracdigits == 0)
		return false;
	if (*s == 'e' || *s == 'E')
		return false;			/* exponents: let the input function decide */
	if (*s != '\0')
		return false;
	/*
	 * A float of at most 15 integer and 15 fraction digits is in range of
	 * real and double precision; anything longer (0.000...1 underflows a
	 * real) is left to the input function.
	 */
	if (is_float)
		return intdigits <= 15 && fracdigits <= 15;
	if (intdigits > 1000 || fracdigits > 16383)
		return false;			/* numeric_in's limits are near: let it decide */
	if (typmod >= (int32) VARHDRSZ)
	{
		int			precision = ((typmod - VARHDRSZ) >> 16) & 0xffff;
		int			scale = (typmod - VARHDRSZ) & 0xffff;

		/* PG 15 allows negative scales; leave those to numeric_in */
		if (scale > precision)
			return false;
		if (intdigits > precision - scale)
			return false;
		if (intdigits == precision - scale && fracdigits > scale)
			return false;		/* may round up to one digit more */
	}
	return true;
}

static bool
tc_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY-MM-DD, year 1..9999; returns chars consumed or 0 */
int
tc_isodate(const char *s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				m,
				d;

	if (!(tc_digit(s[0]) && tc_digit(s[1]) && tc_digit(s[2]) && tc_digit(s[3]) &&
		  s[4] == '-' && tc_digit(s[5]) && tc_digit(s[6]) && s[7] == '-' &&
		  tc_digit(s[8]) && tc_digit(s[9])))
		return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return 0;
	if (d > mdays[m - 1] + ((m == 2 && tc_leap(y)) ? 1 : 0))
		return 0;
	return 10;
}

/* HH:MM[:SS[.frac]] ; returns chars consumed or 0 */
int
tc_isotime(const char *s)
{
	int			h,
				mi,
				n = 5;

	if (!(tc_digit(s[0]) && tc_digit(s[1]) && s[2] == ':' &&
		  tc_digit(s[3]) && tc_digit(s[4])))
		return 0;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	mi = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || mi > 59)
		return 0;
	if (s[5] == ':')
	{
		if (!(tc_digit(s[6]) && tc_digit(s[7])) || (s[6] - '0') * 10 + (s[7] - '0') > 59)
			return 0;
		n = 8;
		if (s[8] == '.')
		{
			int			f = 0;

			n = 9;
			while (tc_digit(s[n]))
			{
				n++;
				f++;
			}
			if (f == 0 || f > 6)
				return 0;
		}
	}
	return n;
}

/* Z | +HH | +HH:MM | +HHMM */
bool
tc_isozone(const char *s)
{
	if (*s == '\0')
		return true;
	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0')
		return true;
	if (s[0] != '+' && s[0] != '-')
		return false;
	if (!(tc_digit(s[1]) && tc_digit(s[2])) || (s[1] - '0') * 10 + (s[2] - '0') > 15)
		return false;
	if (s[3] == '\0')
		return true;
	if (s[3] == ':')
		s++;
	return tc_digit(s[3]) && tc_digit(s[4]) && s[5] == '\0' &&
		(s[3] - '0') * 10 + (s[4] - '0') <= 59;
}

/* an ISO date, optionally followed by a time and a zone */
static bool
tc_timestamp(const char *s)
{
	int			n = tc_isodate(s);

	if (n == 0)
		return false;
	s += n;
	if (*s == '\0')
		return true;
	if (*s != ' ' && *s != 'T')
		return false;
	s++;
	n = tc_isotime(s);
	if (n == 0)
		return false;
	return tc_isozone(s + n);
}

static bool
tc_hex(char c)
{
	return tc_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 8-4-4-4-12 hex digits, either case, as uuid_in accepts them */
static bool
tc_uuid(const char *s)
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
		else if (!tc_hex(s[i]))
			return false;
	}
	return true;
}

/* a spelling of a boolean boolin certainly accepts */
static bool
tc_bool(const char *s)
{
	return pg_strcasecmp(s, "true") == 0 || pg_strcasecmp(s, "false") == 0 ||
		pg_strcasecmp(s, "t") == 0 || pg_strcasecmp(s, "f") == 0 ||
		pg_strcasecmp(s, "yes") == 0 || pg_strcasecmp(s, "no") == 0 ||
		strcmp(s, "1") == 0 || strcmp(s, "0") == 0;
}

/*
 * true: the input function certainly accepts s for this type and typmod.
 * false: not sure; ask the input function.
 */
bool
tc_precheck(TypeClass tc, int32 typmod, const char *s)
{
	switch (tc)
	{
		case TC_TEXT:
			return true;
		case TC_VARCHAR:
			return pg_mbstrlen(s) <= typmod - (int32) VARHDRSZ;
		case TC_INT2:
			return tc_int(s, PG_INT16_MIN, PG_INT16_MAX);
		case TC_INT4:
			return tc_int(s, PG_INT32_MIN, PG_INT32_MAX);
		case TC_INT8:
			return tc_int(s, PG_INT64_MIN, PG_INT64_MAX);
		case TC_NUMERIC:
			return tc_numeric(s, typmod, false);
		case TC_FLOAT:
			return tc_numeric(s, -1, true);
		case TC_BOOL:
			return tc_bool(s);
		case TC_DATE:
			return tc_isodate(s) == 10 && s[10] == '\0';
		case TC_TIMESTAMP:
			return tc_timestamp(s);
		case TC_UUID:
			return tc_uuid(s);
		case TC_OTHER:
			return false;
	}
	return false;
}
