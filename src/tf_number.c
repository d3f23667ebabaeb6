/*-------------------------------------------------------------------------
 *
 * tf_number.c
 *	  The number transform: a formatted number ("$24,551", "1.234,50 €",
 *	  "(12.00)", "-1 234,5") to the plain decimal text numeric_in accepts
 *	  ("24551", "1234.50", "-12.00", "-1234.5").
 *
 * The digits are copied as given: no conversion to binary, so no
 * rounding and no length limit.  What a value may hold, in any order
 * around the digits and separated by white space: at most one sign (+, -,
 * U+2212, in front or behind), or parentheses around it all (negative);
 * with currency true, at most one currency mark: $, a code of three
 * capital letters (USD), one to three capitals and $ (US$, HK$), and in
 * UTF-8 £, ¥, ¤ and the Currency Symbols block U+20A0..U+20C0 (€, ₹, ...).
 * Group separators must stand between groups of three digits (the first
 * group one to three), and only in the integer part; exponents are refused
 * (a value like 1e5 is rarely a formatted amount, more often a mangled
 * one).  Pure C on bytes, like tf_text.c; one pass, so linear.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "tf_number.h"
#include "tf_text.h"

static bool
num_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
num_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
num_letter(char c)
{
	return num_upper(c) || (c >= 'a' && c <= 'z');
}

/* bytes of a sign at p (0: none); *minus says which */
static int
num_sign(const char *p, const char *end, bool utf8, bool *minus)
{
	const unsigned char *u = (const unsigned char *) p;

	if (p >= end)
		return 0;
	if (*p == '+' || *p == '-')
	{
		*minus = (*p == '-');
		return 1;
	}
	/* U+2212 MINUS SIGN */
	if (utf8 && end - p >= 3 && u[0] == 0xE2 && u[1] == 0x88 && u[2] == 0x92)
	{
		*minus = true;
		return 3;
	}
	return 0;
}

/* bytes of a currency mark at p (0: none) */
static int
num_currency(const char *p, const char *end, bool utf8)
{
	const unsigned char *u = (const unsigned char *) p;
	ptrdiff_t	n = end - p;
	int			k = 0;

	if (n <= 0)
		return 0;
	if (*p == '$')
		return 1;
	while (k < n && k < 4 && num_upper(p[k]))
		k++;
	if (k >= 1 && k <= 3 && k < n && p[k] == '$')
		return k + 1;			/* US$, C$, HK$ */
	if (k == 3 && (n == 3 || !num_letter(p[3])))
		return 3;				/* USD */
	if (!utf8)
		return 0;
	if (n >= 2 && u[0] == 0xC2 && u[1] >= 0xA3 && u[1] <= 0xA5)
		return 2;				/* £ ¤ ¥ */
	if (n >= 3 && u[0] == 0xE2 &&
		((u[1] == 0x82 && u[2] >= 0xA0) || (u[1] == 0x83 && u[2] <= 0x80)))
		return 3;				/* U+20A0..U+20C0 */
	return 0;
}

/* bytes of a group separator at p (0: none) */
static int
num_group(const TfNumberFormat *f, const char *p, const char *end)
{
	const unsigned char *u = (const unsigned char *) p;
	ptrdiff_t	n = end - p;

	if (f->group == 0 || n <= 0)
		return 0;
	if (*p == f->group)
		return 1;
	if (!f->utf8)
		return 0;
	/* the typographic forms: no-break spaces, right single quotation mark */
	if (f->group == ' ' && n >= 2 && u[0] == 0xC2 && u[1] == 0xA0)
		return 2;
	if (f->group == ' ' && n >= 3 && u[0] == 0xE2 && u[1] == 0x80 && u[2] == 0xAF)
		return 3;
	if (f->group == '\'' && n >= 3 && u[0] == 0xE2 && u[1] == 0x80 && u[2] == 0x99)
		return 3;
	return 0;
}

static bool
num_fail(char **message, const char *s, const char *at, const char *what)
{
	*message = psprintf("invalid number: %s at character %d", what,
						pg_mbstrlen_with_len(s, at - s) + 1);
	return false;
}

/*
 * The marks around the digits: white space, one sign, one currency mark,
 * an opening parenthesis (before) or the closing one (after).  Returns
 * false with *message set on a second sign or currency mark.
 */
typedef struct NumMarks
{
	bool		sign;
	bool		minus;
	bool		currency;
	bool		open;
	bool		closed;
} NumMarks;

static bool
num_marks(const TfNumberFormat *f, const char *s, const char **pp,
		  const char *end, NumMarks *m, bool before, char **message)
{
	const char *p = *pp;

	for (;;)
	{
		int			l = tf_space_len(p, end, f->utf8);
		bool		minus;

		if (l > 0)
		{
			p += l;
			continue;
		}
		if (p < end && before && *p == '(' && !m->open)
		{
			m->open = true;
			p++;
			continue;
		}
		if (p < end && !before && *p == ')' && m->open && !m->closed)
		{
			m->closed = true;
			p++;
			continue;
		}
		if ((l = num_sign(p, end, f->utf8, &minus)) > 0)
		{
			if (m->sign)
				return num_fail(message, s, p, "a second sign");
			m->sign = true;
			m->minus = minus;
			p += l;
			continue;
		}
		if ((l = num_currency(p, end, f->utf8)) > 0)
		{
			if (!f->currency)
				return num_fail(message, s, p, "a currency mark (currency is false)");
			if (m->currency)
				return num_fail(message, s, p, "a second currency mark");
			m->currency = true;
			p += l;
			continue;
		}
		break;
	}
	*pp = p;
	return true;
}

bool
tf_number(const TfNumberFormat *f, const char *s, int len, char **out,
		  char **message)
{
	const char *end = s + len;
	const char *p = s;
	NumMarks	m = {0};
	char	   *buf;
	char	   *o;
	char	   *start;
	int			nint = 0;		/* integer digits */
	int			nfrac = 0;
	bool		frac = false;	/* after the decimal separator */
	int			groups = 0;		/* group separators seen */
	int			run = 0;		/* digits since the last separator */
	const char *run_start;

	*out = NULL;
	if (!num_marks(f, s, &p, end, &m, true, message))
		return false;
	if (p == end)
		return num_fail(message, s, p, "no digits");

	/* digits go to buf + 2: room for a minus and a zero in front */
	buf = palloc((Size) len + 3);
	o = buf + 2;
	run_start = p;
	while (p < end)
	{
		int			l;

		if ((nint & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (num_digit(*p))
		{
			*o++ = *p++;
			run++;
			if (frac)
				nfrac++;
			else
				nint++;
			continue;
		}
		if (*p == f->decimal && !frac)
		{
			if (groups > 0 && run != 3)
				return num_fail(message, s, run_start,
								"a digit group that is not three digits");
			*o++ = '.';
			p++;
			frac = true;
			run = 0;
			continue;
		}
		l = num_group(f, p, end);
		if (l > 0 && p + l < end && num_digit(p[l]))
		{
			if (frac)
				return num_fail(message, s, p, "a group separator in the fraction");
			if (run == 0 || run > 3 || (groups > 0 && run != 3))
				return num_fail(message, s, run_start,
								"a digit group that is not three digits");
			groups++;
			run = 0;
			p += l;
			run_start = p;
			continue;
		}
		break;
	}
	if (nint + nfrac == 0)
		return num_fail(message, s, p, "no digits");
	if (!frac && groups > 0 && run != 3)
		return num_fail(message, s, run_start,
						"a digit group that is not three digits");
	if (p < end && (*p == 'e' || *p == 'E'))
		return num_fail(message, s, p, "an exponent");
	if (!num_marks(f, s, &p, end, &m, false, message))
		return false;
	if (p < end)
		return num_fail(message, s, p, "an unexpected character");
	if (m.open && !m.closed)
		return num_fail(message, s, p, "a parenthesis not closed");
	if (m.open && m.sign)
		return num_fail(message, s, s, "a sign and parentheses");

	if (frac && nfrac == 0)
		o--;					/* "5." is 5 */
	*o = '\0';
	start = buf + 2;
	if (nint == 0)
		*--start = '0';			/* ".5" is 0.5 */
	if (m.minus || m.open)
		*--start = '-';
	if (start != buf)
		memmove(buf, start, o - start + 1);
	*out = buf;
	return true;
}
