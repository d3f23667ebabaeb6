/*-------------------------------------------------------------------------
 *
 * tf_time.c
 *	  The date and timestamp transforms: a format in a subset of
 *	  to_timestamp's patterns, compiled once, then matched against values
 *	  and printed as the ISO text date_in and timestamp_in accept.
 *
 * PostgreSQL's own to_timestamp raises an ERROR on a value that does not
 * fit, which would abort a batch; this parser reports instead.  It is
 * stricter than to_timestamp: literal text must match as written (letters
 * without regard to case), a space in the format matches one or more
 * white space characters, a letter that is no pattern is refused when
 * the format is compiled (quote literal words: "T"), and every field is
 * range-checked, the day against its month (2024-02-30 fails).
 *
 * Patterns (keywords in any case):
 *	  YYYY (4 digits) YY (2 digits: 00-69 is 20xx, 70-99 19xx)
 *	  MM DD HH24 HH12 HH MI SS (1 or 2 digits) MS (1-3) US (1-6) fractions
 *	  Mon Month (English month names) Dy Day (day names, accepted, ignored)
 *	  AM PM A.M. P.M. (either in the value, any case; needs HH12)
 *	  TZH (sign and 1-2 digits) TZM (2 digits) TZ (Z, UTC, GMT, +HH,
 *	  +HHMM or +HH:MM); FM is accepted and ignored.
 * Offsets may reach 15:59, as in PostgreSQL.
 *
 * Pure C on bytes (formats and values in any server encoding: only ASCII
 * is ever matched as a pattern); the work per value is linear in its
 * length.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "tf_text.h"
#include "tf_time.h"

typedef enum TimeTok
{
	TT_LITERAL,
	TT_SPACE,
	TT_YYYY,
	TT_YY,
	TT_MM,
	TT_MON,
	TT_MONTH,
	TT_DD,
	TT_DY,
	TT_DAY,
	TT_HH24,
	TT_HH12,
	TT_MI,
	TT_SS,
	TT_MS,
	TT_US,
	TT_AMPM,
	TT_TZH,
	TT_TZM,
	TT_TZ,
	TT_FM,
	TT_COUNT
} TimeTok;

struct TfTimeItem
{
	TimeTok		tok;
	char	   *lit;			/* TT_LITERAL */
	int			litlen;
	int			litcap;
};

/* longer keywords before their prefixes */
static const struct
{
	const char *name;
	TimeTok		tok;
}			time_keywords[] =
{
	{"YYYY", TT_YYYY}, {"YY", TT_YY},
	{"MONTH", TT_MONTH}, {"MON", TT_MON}, {"MM", TT_MM}, {"MI", TT_MI}, {"MS", TT_MS},
	{"DAY", TT_DAY}, {"DD", TT_DD}, {"DY", TT_DY},
	{"HH24", TT_HH24}, {"HH12", TT_HH12}, {"HH", TT_HH12},
	{"SS", TT_SS}, {"US", TT_US},
	{"A.M.", TT_AMPM}, {"P.M.", TT_AMPM}, {"AM", TT_AMPM}, {"PM", TT_AMPM},
	{"TZH", TT_TZH}, {"TZM", TT_TZM}, {"TZ", TT_TZ},
	{"FM", TT_FM}
};

/* digits of the numeric fields: at least, at most; and their names */
static const struct
{
	int			min;
	int			max;
	const char *name;
}			time_digits[TT_COUNT] =
{
	[TT_YYYY] = {4, 4, "YYYY"},
	[TT_YY] = {2, 2, "YY"},
	[TT_MM] = {1, 2, "MM"},
	[TT_DD] = {1, 2, "DD"},
	[TT_HH24] = {1, 2, "HH24"},
	[TT_HH12] = {1, 2, "HH12"},
	[TT_MI] = {1, 2, "MI"},
	[TT_SS] = {1, 2, "SS"},
	[TT_MS] = {1, 3, "MS"},
	[TT_US] = {1, 6, "US"},
	[TT_TZM] = {2, 2, "TZM"},
};

static const char *const month_names[12] = {
	"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december"
};

static const char *const day_names[7] = {
	"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"
};

static bool
time_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
time_letter(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ----------------------------------------------------------------
 *		compiling a format
 * ---------------------------------------------------------------- */

static TfTimeItem *
time_add(TfTimeFormat *f, int *cap, TimeTok tok)
{
	if (f->n == *cap)
	{
		*cap *= 2;
		f->items = repalloc(f->items, sizeof(TfTimeItem) * *cap);
	}
	f->items[f->n].tok = tok;
	f->items[f->n].lit = NULL;
	f->items[f->n].litlen = 0;
	f->items[f->n].litcap = 0;
	return &f->items[f->n++];
}

/* append bytes to the literal item at the end (a new one if needed) */
static void
time_add_literal(TfTimeFormat *f, int *cap, const char *s, int len)
{
	TfTimeItem *it;

	if (f->n > 0 && f->items[f->n - 1].tok == TT_LITERAL)
		it = &f->items[f->n - 1];
	else
	{
		it = time_add(f, cap, TT_LITERAL);
		it->litcap = 16;
		it->lit = palloc(it->litcap);
	}
	if (it->litlen + len + 1 > it->litcap)
	{
		while (it->litlen + len + 1 > it->litcap)
			it->litcap *= 2;
		it->lit = repalloc(it->lit, it->litcap);
	}
	memcpy(it->lit + it->litlen, s, len);
	it->litlen += len;
	it->lit[it->litlen] = '\0';
}

/* which fields a format holds, checked once compiled */
static char *
time_check(TfTimeFormat *f)
{
	int			count[TT_COUNT] = {0};
	int			i;

	for (i = 0; i < f->n; i++)
		count[f->items[i].tok]++;
	if (count[TT_YYYY] + count[TT_YY] != 1)
		return pstrdup(count[TT_YYYY] + count[TT_YY] == 0 ?
					   "the format has no year (YYYY or YY)" :
					   "the format has more than one year");
	if (count[TT_MM] + count[TT_MON] + count[TT_MONTH] != 1)
		return pstrdup(count[TT_MM] + count[TT_MON] + count[TT_MONTH] == 0 ?
					   "the format has no month (MM, Mon or Month)" :
					   "the format has more than one month");
	if (count[TT_DD] != 1)
		return pstrdup(count[TT_DD] == 0 ? "the format has no day (DD)" :
					   "the format has more than one day");
	if (count[TT_DY] + count[TT_DAY] > 1)
		return pstrdup("the format has more than one day name");
	if (count[TT_HH24] + count[TT_HH12] > 1)
		return pstrdup("the format has more than one hour");
	if (count[TT_MI] > 1 || count[TT_SS] > 1)
		return pstrdup("the format has more than one MI or SS");
	if (count[TT_MS] + count[TT_US] > 1)
		return pstrdup("the format has more than one fraction of a second (MS, US)");
	if (count[TT_AMPM] > 1)
		return pstrdup("the format has more than one AM/PM");
	if (count[TT_AMPM] == 1 && count[TT_HH12] == 0)
		return pstrdup("AM/PM needs a 12-hour clock hour (HH12 or HH)");
	if (count[TT_TZH] > 1 || count[TT_TZM] > 1 || count[TT_TZ] > 1 ||
		count[TT_TZ] + count[TT_TZH] > 1)
		return pstrdup("the format has more than one time zone offset");
	if (count[TT_TZM] == 1 && count[TT_TZH] == 0)
		return pstrdup("TZM needs TZH");
	f->has_time = count[TT_HH24] + count[TT_HH12] + count[TT_MI] + count[TT_SS] +
		count[TT_MS] + count[TT_US] > 0;
	f->has_offset = count[TT_TZH] + count[TT_TZ] > 0;
	return NULL;
}

char *
tf_time_compile(const char *format, TfTimeFormat *f)
{
	const char *p = format;
	const char *end = format + strlen(format);
	int			cap = 8;

	f->n = 0;
	f->items = palloc(sizeof(TfTimeItem) * cap);
	f->has_time = false;
	f->has_offset = false;
	while (p < end)
	{
		int			k;

		if (*p == '"')
		{
			/* quoted literal text; \" and \\ inside */
			p++;
			while (p < end && *p != '"')
			{
				int			l;

				if (*p == '\\' && p + 1 < end)
					p++;
				l = pg_mblen_range(p, end);
				time_add_literal(f, &cap, p, l);
				p += l;
			}
			if (p == end)
				return pstrdup("a quoted text in the format is not closed");
			p++;
			continue;
		}
		if (*p == '\\' && p + 1 < end)
		{
			int			l = pg_mblen_range(p + 1, end);

			time_add_literal(f, &cap, p + 1, l);
			p += 1 + l;
			continue;
		}
		if (*p == ' ' || *p == '\t')
		{
			if (f->n == 0 || f->items[f->n - 1].tok != TT_SPACE)
				time_add(f, &cap, TT_SPACE);
			p++;
			continue;
		}
		for (k = 0; k < lengthof(time_keywords); k++)
		{
			int			l = strlen(time_keywords[k].name);

			if (end - p >= l && pg_strncasecmp(p, time_keywords[k].name, l) == 0)
			{
				if (time_keywords[k].tok != TT_FM)
					time_add(f, &cap, time_keywords[k].tok);
				p += l;
				break;
			}
		}
		if (k < lengthof(time_keywords))
			continue;
		if (time_letter(*p))
			return psprintf("\"%.*s\" at character %d of the format is no pattern",
							(int) strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
							p, pg_mbstrlen_with_len(format, p - format) + 1);
		{
			int			l = pg_mblen_range(p, end);

			time_add_literal(f, &cap, p, l);
			p += l;
		}
	}
	return time_check(f);
}

/* ----------------------------------------------------------------
 *		parsing a value
 * ---------------------------------------------------------------- */

typedef struct TimeScan
{
	const char *s;				/* the value */
	const char *p;
	const char *end;
	char	  **message;
} TimeScan;

static int
time_fail(TimeScan *sc, int kind, const char *what)
{
	*sc->message = psprintf("%s at character %d", what,
							pg_mbstrlen_with_len(sc->s, sc->p - sc->s) + 1);
	return kind;
}

static void
time_skip_space(TimeScan *sc)
{
	int			l;

	while ((l = tf_space_len(sc->p, sc->end, false)) > 0)
		sc->p += l;
}

/* min..max digits; -1 if fewer than min; *ndigits: how many */
static int
time_number(TimeScan *sc, int min, int max, int *ndigits)
{
	int			v = 0;
	int			n = 0;

	while (n < max && sc->p < sc->end && time_digit(*sc->p))
	{
		v = v * 10 + (*sc->p++ - '0');
		n++;
	}
	*ndigits = n;
	return n < min ? -1 : v;
}

/* the index of the longest name (or 3-letter abbreviation) at p, or -1 */
static int
time_name(TimeScan *sc, const char *const *names, int n, bool abbrev)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		int			l = abbrev ? 3 : strlen(names[i]);

		if (sc->end - sc->p >= l && pg_strncasecmp(sc->p, names[i], l) == 0)
		{
			sc->p += l;
			return i;
		}
	}
	return -1;
}

/* an offset at p: Z, UTC, GMT, or a sign, HH and optionally [:]MM; bytes used */
static int
time_scan_offset(const char *p, const char *end, int *offset, bool *range_ok)
{
	const char *q = p;
	int			sign;
	int			h = 0;
	int			m = 0;
	int			nd = 0;

	*range_ok = true;
	*offset = 0;
	if (q < end && (*q == 'Z' || *q == 'z'))
		return 1;
	if (end - q >= 3 && (pg_strncasecmp(q, "UTC", 3) == 0 || pg_strncasecmp(q, "GMT", 3) == 0))
		return 3;
	if (q >= end || (*q != '+' && *q != '-'))
		return 0;
	sign = (*q++ == '-') ? -1 : 1;
	while (nd < 2 && q < end && time_digit(*q))
		h = h * 10 + (*q++ - '0'), nd++;
	if (nd == 0)
		return 0;
	if (nd == 2)
	{
		const char *r = q + ((q < end && *q == ':') ? 1 : 0);

		if (end - r >= 2 && time_digit(r[0]) && time_digit(r[1]))
		{
			m = (r[0] - '0') * 10 + (r[1] - '0');
			q = r + 2;
		}
	}
	*range_ok = (h <= 15 && m <= 59);
	*offset = sign * (h * 3600 + m * 60);
	return q - p;
}

bool
tf_time_offset(const char *s, int len, int *offset)
{
	bool		range_ok;

	return len > 0 && time_scan_offset(s, s + len, offset, &range_ok) == len && range_ok;
}

static int
time_days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool		leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return days[month - 1] + ((month == 2 && leap) ? 1 : 0);
}

int
tf_time_parse(const TfTimeFormat *f, const char *s, int len, TfTimeValue *v,
			  char **message)
{
	TimeScan	sc = {s, s, s + len, message};
	bool		pm = false;
	bool		twelve = false;
	bool		has_tzh = false;
	int			tz_sign = 1;
	int			tzh = 0;
	int			tzm = 0;
	int			i;

	memset(v, 0, sizeof(TfTimeValue));
	CHECK_FOR_INTERRUPTS();
	time_skip_space(&sc);
	for (i = 0; i < f->n; i++)
	{
		const TfTimeItem *it = &f->items[i];
		const char *at = sc.p;
		const char *after;
		int			nd;
		int			x;

		switch (it->tok)
		{
			case TT_LITERAL:
				if (sc.end - sc.p < it->litlen ||
					pg_strncasecmp(sc.p, it->lit, it->litlen) != 0)
				{
					char	   *what = psprintf("expected \"%s\"", it->lit);

					return time_fail(&sc, TF_TIME_FORMAT, what);
				}
				sc.p += it->litlen;
				break;
			case TT_SPACE:
				if (tf_space_len(sc.p, sc.end, false) == 0)
					return time_fail(&sc, TF_TIME_FORMAT, "expected white space");
				time_skip_space(&sc);
				break;
			case TT_MON:
			case TT_MONTH:
				x = time_name(&sc, month_names, 12, it->tok == TT_MON);
				if (x < 0)
					return time_fail(&sc, TF_TIME_FORMAT, it->tok == TT_MON ?
									 "expected a month abbreviation (Mon)" :
									 "expected a month name (Month)");
				v->month = x + 1;
				break;
			case TT_DY:
			case TT_DAY:
				if (time_name(&sc, day_names, 7, it->tok == TT_DY) < 0)
					return time_fail(&sc, TF_TIME_FORMAT, it->tok == TT_DY ?
									 "expected a day abbreviation (Dy)" :
									 "expected a day name (Day)");
				break;
			case TT_AMPM:
				if (sc.end - sc.p >= 4 && (pg_strncasecmp(sc.p, "a.m.", 4) == 0 ||
										   pg_strncasecmp(sc.p, "p.m.", 4) == 0))
					x = 4;
				else if (sc.end - sc.p >= 2 && (pg_strncasecmp(sc.p, "am", 2) == 0 ||
												pg_strncasecmp(sc.p, "pm", 2) == 0))
					x = 2;
				else
					return time_fail(&sc, TF_TIME_FORMAT, "expected AM or PM");
				pm = (*sc.p == 'p' || *sc.p == 'P');
				sc.p += x;
				break;
			case TT_TZH:
				if (sc.p >= sc.end || (*sc.p != '+' && *sc.p != '-'))
					return time_fail(&sc, TF_TIME_FORMAT, "expected a sign (+ or -) of TZH");
				tz_sign = (*sc.p++ == '-') ? -1 : 1;
				tzh = time_number(&sc, 1, 2, &nd);
				if (tzh < 0)
					return time_fail(&sc, TF_TIME_FORMAT, "expected the hours of TZH");
				if (tzh > 15)
				{
					sc.p = at;
					return time_fail(&sc, TF_TIME_RANGE, "time zone offset out of range");
				}
				v->has_offset = true;
				has_tzh = true;
				break;
			case TT_TZ:
				{
					bool		range_ok;
					int			l = time_scan_offset(sc.p, sc.end, &v->offset, &range_ok);

					if (l == 0)
						return time_fail(&sc, TF_TIME_FORMAT,
										 "expected a time zone offset (Z, UTC, +HH:MM)");
					if (!range_ok)
						return time_fail(&sc, TF_TIME_RANGE, "time zone offset out of range");
					sc.p += l;
					v->has_offset = true;
				}
				break;
			case TT_FM:
			case TT_COUNT:
				break;
			default:
				x = time_number(&sc, time_digits[it->tok].min, time_digits[it->tok].max, &nd);
				if (x < 0)
				{
					char	   *what = time_digits[it->tok].min == time_digits[it->tok].max ?
						psprintf("expected %d digits (%s)", time_digits[it->tok].min,
								 time_digits[it->tok].name) :
						psprintf("expected %d to %d digits (%s)", time_digits[it->tok].min,
								 time_digits[it->tok].max, time_digits[it->tok].name);

					return time_fail(&sc, TF_TIME_FORMAT, what);
				}
				after = sc.p;
				sc.p = at;		/* range errors point at the field */
				switch (it->tok)
				{
					case TT_YYYY:
						if (x < 1)
							return time_fail(&sc, TF_TIME_RANGE, "year 0 out of range");
						v->year = x;
						break;
					case TT_YY:
						v->year = x < 70 ? 2000 + x : 1900 + x;
						break;
					case TT_MM:
						if (x < 1 || x > 12)
							return time_fail(&sc, TF_TIME_RANGE, psprintf("month %d out of range", x));
						v->month = x;
						break;
					case TT_DD:
						v->day = x;
						break;
					case TT_HH24:
						if (x > 23)
							return time_fail(&sc, TF_TIME_RANGE, psprintf("hour %d out of range", x));
						v->hour = x;
						break;
					case TT_HH12:
						if (x < 1 || x > 12)
							return time_fail(&sc, TF_TIME_RANGE,
											 psprintf("hour %d out of range for a 12-hour clock", x));
						v->hour = x;
						twelve = true;
						break;
					case TT_MI:
						if (x > 59)
							return time_fail(&sc, TF_TIME_RANGE, psprintf("minute %d out of range", x));
						v->minute = x;
						break;
					case TT_SS:
						if (x > 59)
							return time_fail(&sc, TF_TIME_RANGE, psprintf("second %d out of range", x));
						v->second = x;
						break;
					case TT_MS:
						for (v->usec = x * 1000; nd < 3; nd++)
							v->usec *= 10;
						break;
					case TT_US:
						for (v->usec = x; nd < 6; nd++)
							v->usec *= 10;
						break;
					case TT_TZM:
						if (x > 59)
							return time_fail(&sc, TF_TIME_RANGE, "time zone offset out of range");
						tzm = x;
						break;
					default:
						break;
				}
				sc.p = after;
				break;
		}
	}
	time_skip_space(&sc);
	if (sc.p < sc.end)
		return time_fail(&sc, TF_TIME_FORMAT, "unexpected text after the format");
	if (v->day < 1 || v->day > time_days_in_month(v->year, v->month))
	{
		*message = psprintf("day %d out of range for %04d-%02d", v->day, v->year, v->month);
		return TF_TIME_RANGE;
	}
	if (twelve)
	{
		if (pm && v->hour < 12)
			v->hour += 12;
		else if (!pm && v->hour == 12)
			v->hour = 0;
	}
	if (has_tzh)
		v->offset = tz_sign * (tzh * 3600 + tzm * 60);
	return TF_TIME_OK;
}

/* ----------------------------------------------------------------
 *		canonical text
 * ---------------------------------------------------------------- */

char *
tf_time_date_text(const TfTimeValue *v)
{
	return psprintf("%04d-%02d-%02d", v->year, v->month, v->day);
}

char *
tf_time_timestamp_text(const TfTimeValue *v)
{
	char		frac[8] = "";
	char		zone[8] = "";

	if (v->usec > 0)
	{
		int			n;

		snprintf(frac, sizeof(frac), ".%06d", v->usec);
		for (n = strlen(frac); frac[n - 1] == '0'; n--)
			frac[n - 1] = '\0';
	}
	if (v->has_offset)
	{
		int			a = Abs(v->offset);

		snprintf(zone, sizeof(zone), "%c%02d:%02d", v->offset < 0 ? '-' : '+',
				 a / 3600, (a % 3600) / 60);
	}
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d%s%s", v->year, v->month, v->day,
					v->hour, v->minute, v->second, frac, zone);
}
