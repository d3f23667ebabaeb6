/*-------------------------------------------------------------------------
 *
 * fuzz_transform.c
 *	  libFuzzer harness of the pure parts of the transform methods
 *	  (src/tf_text.c, src/tf_number.c, src/tf_time.c): trim, squish,
 *	  replace, string sets, number, date/timestamp formats and values.
 *
 * Input: [op] [flags] text...
 *	  op % 7: 0 trim (white space), 1 trim (chars), 2 squish, 3 replace,
 *	  4 set look-up, 5 number, 6 date/timestamp.
 *	  Ops with several strings split the text at '|': chars|value,
 *	  from|to|value, word|word|...|value, format|value.
 *	  flags: bit 0 the text is UTF-8 (Unicode spaces, currency symbols);
 *	  number: bit 1 the decimal separator (. or ,), bits 2-3 the group
 *	  separator (none, the other of , and ., space, '), bit 4 currency;
 *	  set: bit 1 fold case.
 *
 * Each result is checked against a model written independently here:
 *	  trim-exact, squish-exact: the text decoded to code points, white
 *	  space by a table of code points;
 *	  replace-exact: a naive scan, one character at a time;
 *	  set-exact: a linear search;
 *	  number-shape ([-]digits[.digits]), number-digits (the digits of the
 *	  value, in order, and no others but a leading 0), number-roundtrip
 *	  (the result, printed back in the format with group separators, reads
 *	  as itself);
 *	  time-shape (YYYY-MM-DD[ HH:MI:SS[.f][+HH:MM]]) and time-valid (every
 *	  field in range, the day in its month, by our own calendar), and
 *	  time-roundtrip (the canonical text read back by an ISO format gives
 *	  the same text).
 * The results must be palloc'd, valid UTF-8 (result-palloc, result-utf8).
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

#include "tf_number.h"
#include "tf_text.h"
#include "tf_time.h"

/* ----------------------------------------------------------------
 *		models
 * ---------------------------------------------------------------- */

static bool
model_space(pg_wchar c, bool utf8)
{
	if (c == ' ' || (c >= '\t' && c <= '\r'))
		return true;
	if (!utf8)
		return false;
	return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
		c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 ||
		c == 0xFEFF;
}

/* code points of s[0..len) and where each starts (one more at len) */
static int
model_decode(const char *s, int len, pg_wchar *cp, int *at)
{
	int			n = 0;
	int			i = 0;

	while (i < len)
	{
		int			l = pg_utf_mblen((const unsigned char *) s + i);

		cp[n] = utf8_to_unicode((const unsigned char *) s + i);
		at[n++] = i;
		i += l;
	}
	at[n] = len;
	return n;
}

static bool
model_in(pg_wchar c, const pg_wchar *set, int nset)
{
	int			i;

	for (i = 0; i < nset; i++)
		if (set[i] == c)
			return true;
	return false;
}

static void
check_trim(const FuzzText *chars, const FuzzText *v, bool utf8)
{
	pg_wchar   *cp = malloc(sizeof(pg_wchar) * (v->len + 1));
	int		   *at = malloc(sizeof(int) * (v->len + 2));
	pg_wchar   *set = NULL;
	int		   *setat = NULL;
	int			nset = 0;
	int			n = model_decode(v->s, v->len, cp, at);
	int			a = 0;
	int			b = n;
	int			start;
	int			end;

	if (chars)
	{
		set = malloc(sizeof(pg_wchar) * (chars->len + 1));
		setat = malloc(sizeof(int) * (chars->len + 2));
		nset = model_decode(chars->s, chars->len, set, setat);
	}
#define TRIMMABLE(c) (chars ? model_in((c), set, nset) : model_space((c), utf8))
	while (a < n && TRIMMABLE(cp[a]))
		a++;
	while (b > a && TRIMMABLE(cp[b - 1]))
		b--;
	tf_trim(v->s, v->len, chars ? chars->s : NULL, chars ? chars->len : 0, utf8,
			&start, &end);
	FUZZ_CHECK("trim-exact", (a == b && start == end) || (start == at[a] && end == at[b]),
			   "tf_trim(%s, chars %s, utf8 %d) = [%d, %d), expected [%d, %d)",
			   fuzz_show(v->s, v->len), chars ? fuzz_show(chars->s, chars->len) : "(white space)",
			   utf8, start, end, at[a], at[b]);
	free(cp);
	free(at);
	free(set);
	free(setat);
}

static void
check_squish(const FuzzText *v, bool utf8)
{
	pg_wchar   *cp = malloc(sizeof(pg_wchar) * (v->len + 1));
	int		   *at = malloc(sizeof(int) * (v->len + 2));
	char	   *want = malloc(v->len + 1);
	int			n = model_decode(v->s, v->len, cp, at);
	int			w = 0;
	int			i;
	bool		gap = false;
	int			outlen;
	char	   *out;

	for (i = 0; i < n; i++)
	{
		if (model_space(cp[i], utf8))
		{
			gap = (w > 0);
			continue;
		}
		if (gap)
			want[w++] = ' ';
		gap = false;
		memcpy(want + w, v->s + at[i], at[i + 1] - at[i]);
		w += at[i + 1] - at[i];
	}
	out = tf_squish(v->s, v->len, utf8, &outlen);
	fuzz_check_result("tf_squish", out, v->s, v->len);
	FUZZ_CHECK("squish-exact", outlen == w && (int) strlen(out) == w && memcmp(out, want, w) == 0,
			   "tf_squish(%s, utf8 %d) = %s, expected %s", fuzz_show(v->s, v->len), utf8,
			   fuzz_show(out, outlen), fuzz_show(want, w));
	free(cp);
	free(at);
	free(want);
}

static void
check_replace(const FuzzText *from, const FuzzText *to, const FuzzText *v)
{
	char	   *want;
	size_t		w = 0;
	int			i = 0;
	bool		any = false;
	int		   *kmp;
	char	   *out;
	Size		outlen;
	int			r;

	if (from->len == 0)
		return;
	want = malloc((size_t) v->len + ((size_t) v->len / from->len + 1) * to->len + 1);
	while (i < v->len)
	{
		if (v->len - i >= from->len && memcmp(v->s + i, from->s, from->len) == 0)
		{
			memcpy(want + w, to->s, to->len);
			w += to->len;
			i += from->len;
			any = true;
		}
		else
		{
			int			l = pg_utf_mblen((const unsigned char *) v->s + i);

			memcpy(want + w, v->s + i, l);
			w += l;
			i += l;
		}
	}
	kmp = tf_replace_prepare(from->s, from->len);
	r = tf_replace(v->s, v->len, from->s, from->len, kmp, to->s, to->len, &out, &outlen);
	if (!any)
		FUZZ_CHECK("replace-exact", r == TF_REPLACE_NONE && out == NULL,
				   "tf_replace(%s, %s -> %s) replaced something (%d)", fuzz_show(v->s, v->len),
				   fuzz_show(from->s, from->len), fuzz_show(to->s, to->len), r);
	else
	{
		FUZZ_CHECK("replace-exact", r == TF_REPLACE_DONE && outlen == w &&
				   strlen(out) == w && memcmp(out, want, w) == 0,
				   "tf_replace(%s, %s -> %s) = %s, expected %s", fuzz_show(v->s, v->len),
				   fuzz_show(from->s, from->len), fuzz_show(to->s, to->len),
				   r == TF_REPLACE_DONE ? fuzz_show(out, outlen) : "(none)", fuzz_show(want, w));
		fuzz_check_result("tf_replace", out, v->s, v->len);
	}
	free(want);
}

static bool
model_eq(const char *a, int alen, const char *b, int blen, bool fold)
{
	int			i;

	if (alen != blen)
		return false;
	for (i = 0; i < alen; i++)
	{
		char		x = a[i];
		char		y = b[i];

		if (fold && x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (fold && y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

static void
check_set(FuzzText *parts, int nparts, bool fold)
{
	const FuzzText *v = &parts[nparts - 1];
	int			n = nparts - 1;
	char	  **strs = palloc(sizeof(char *) * Max(n, 1));
	int		   *lens = palloc(sizeof(int) * Max(n, 1));
	TfSet		set;
	int			want = -1;
	int			got;
	int			i;

	for (i = 0; i < n; i++)
	{
		strs[i] = parts[i].s;
		lens[i] = parts[i].len;
		if (want < 0 && model_eq(parts[i].s, parts[i].len, v->s, v->len, fold))
			want = i;
	}
	tf_set_build(&set, strs, lens, n, fold);
	got = tf_set_find(&set, v->s, v->len);
	FUZZ_CHECK("set-exact", got == want, "tf_set_find(%s, fold %d) among %d words = %d, expected %d",
			   fuzz_show(v->s, v->len), fold, n, got, want);
}

static bool
num_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void
check_number(const FuzzText *v, uint8 flags)
{
	static const char decimals[2] = {'.', ','};
	/* by flags bits 2-3, then the decimal separator: none, , or ., space, ' */
	static const char groups[4][2] = {{0, 0}, {',', '.'}, {' ', ' '}, {'\'', '\''}};
	TfNumberFormat f;
	char	   *out;
	char	   *msg;
	int			i;
	int			o;
	char	   *printed;
	int			p;
	int			nint;
	char	   *again;
	char	   *msg2;

	f.decimal = decimals[(flags >> 1) & 1];
	f.group = groups[(flags >> 2) & 3][(flags >> 1) & 1];
	f.currency = (flags >> 4) & 1;
	f.utf8 = flags & 1;
	if (!tf_number(&f, v->s, v->len, &out, &msg))
	{
		FUZZ_CHECK("number-message", msg != NULL && out == NULL,
				   "tf_number(%s) failed without a message", fuzz_show(v->s, v->len));
		return;
	}
	fuzz_check_result("tf_number", out, v->s, v->len);
	/* [-]digits[.digits] */
	i = (out[0] == '-');
	for (o = i; num_digit(out[o]); o++)
		;
	FUZZ_CHECK("number-shape", o > i && (out[o] == '\0' || (out[o] == '.' && num_digit(out[o + 1]))),
			   "tf_number(%s) = %s", fuzz_show(v->s, v->len), out);
	if (out[o] == '.')
		for (o++; num_digit(out[o]); o++)
			;
	FUZZ_CHECK("number-shape", out[o] == '\0', "tf_number(%s) = %s", fuzz_show(v->s, v->len), out);
	/* the digits of the value, in order (a 0 may lead) */
	{
		char	   *in_digits = palloc(v->len + 2);
		char	   *out_digits = palloc(strlen(out) + 1);
		int			ni = 0;
		int			no = 0;
		const char *d = out + (out[0] == '-');

		for (o = 0; o < v->len; o++)
			if (num_digit(v->s[o]))
				in_digits[ni++] = v->s[o];
		in_digits[ni] = '\0';
		for (o = 0; out[o]; o++)
			if (num_digit(out[o]))
				out_digits[no++] = out[o];
		out_digits[no] = '\0';
		FUZZ_CHECK("number-digits", strcmp(in_digits, out_digits) == 0 ||
				   (d[0] == '0' && d[1] == '.' && out_digits[0] == '0' &&
					strcmp(in_digits, out_digits + 1) == 0),
				   "tf_number(%s) = %s: digits %s, given %s", fuzz_show(v->s, v->len), out,
				   out_digits, in_digits);
	}
	/* print it back with the separators of the format, read it again */
	printed = palloc(strlen(out) * 2 + 4);
	p = 0;
	i = 0;
	if (out[0] == '-')
		printed[p++] = out[i++];
	for (nint = 0; num_digit(out[i + nint]); nint++)
		;
	for (o = 0; o < nint; o++)
	{
		if (f.group && o > 0 && (nint - o) % 3 == 0)
			printed[p++] = f.group;
		printed[p++] = out[i + o];
	}
	i += nint;
	if (out[i] == '.')
	{
		printed[p++] = f.decimal;
		for (i++; out[i]; i++)
			printed[p++] = out[i];
	}
	FUZZ_CHECK("number-roundtrip", tf_number(&f, printed, p, &again, &msg2) &&
			   strcmp(again, out) == 0,
			   "tf_number(%s) = %s, printed back as %s, read %s", fuzz_show(v->s, v->len), out,
			   fuzz_show(printed, p), again ? again : msg2);
}

/* every field of a canonical text in range, by our own calendar */
static void
check_time_text(const char *what, const char *out, bool date_only, const FuzzText *v)
{
	int			y, mo, d, h = 0, mi = 0, s = 0, n = 0, off_h = 0, off_m = 0;
	const char *p = out;
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool		leap;

	FUZZ_CHECK("time-shape", sscanf(p, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10,
			   "%s(%s) = %s", what, fuzz_show(v->s, v->len), out);
	p += n;
	if (!date_only)
	{
		FUZZ_CHECK("time-shape", sscanf(p, " %2d:%2d:%2d%n", &h, &mi, &s, &n) == 3 && n == 9,
				   "%s(%s) = %s", what, fuzz_show(v->s, v->len), out);
		p += n;
		if (*p == '.')
		{
			int			k = 0;

			for (p++; num_digit(*p); p++)
				k++;
			FUZZ_CHECK("time-shape", k >= 1 && k <= 6 && p[-1] != '0',
					   "%s(%s) = %s: fraction", what, fuzz_show(v->s, v->len), out);
		}
		if (*p == '+' || *p == '-')
		{
			FUZZ_CHECK("time-shape", sscanf(p + 1, "%2d:%2d%n", &off_h, &off_m, &n) == 2 && n == 5,
					   "%s(%s) = %s: offset", what, fuzz_show(v->s, v->len), out);
			p += 6;
		}
	}
	FUZZ_CHECK("time-shape", *p == '\0', "%s(%s) = %s: trailing text", what,
			   fuzz_show(v->s, v->len), out);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	FUZZ_CHECK("time-valid", y >= 1 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 &&
			   d <= mdays[mo - 1] + (mo == 2 && leap) && h <= 23 && mi <= 59 && s <= 59 &&
			   off_h <= 15 && off_m <= 59,
			   "%s(%s) = %s", what, fuzz_show(v->s, v->len), out);
}

static void
check_time(const FuzzText *format, const FuzzText *v)
{
	static const char *const iso[2] = {
		"YYYY-MM-DD HH24:MI:SS", "YYYY-MM-DD HH24:MI:SS.US"
	};
	TfTimeFormat f;
	TfTimeValue tv;
	char	   *why;
	char	   *date;
	char	   *ts;
	int			r;

	if (tf_time_compile(format->cstr, &f) != NULL)
		return;
	r = tf_time_parse(&f, v->s, v->len, &tv, &why);
	if (r != TF_TIME_OK)
	{
		FUZZ_CHECK("time-message", (r == TF_TIME_FORMAT || r == TF_TIME_RANGE) && why != NULL,
				   "tf_time_parse(%s) = %d without a message", fuzz_show(v->s, v->len), r);
		return;
	}
	date = tf_time_date_text(&tv);
	ts = tf_time_timestamp_text(&tv);
	fuzz_check_result("tf_time_date_text", date, v->s, v->len);
	fuzz_check_result("tf_time_timestamp_text", ts, v->s, v->len);
	check_time_text("tf_time_date_text", date, true, v);
	check_time_text("tf_time_timestamp_text", ts, false, v);
	/* the canonical text read back (without its offset) is itself */
	{
		TfTimeFormat back;
		TfTimeValue tv2;
		char	   *why2;
		char	   *ts2;
		int			k = (tv.usec != 0);

		tv.has_offset = false;
		ts = tf_time_timestamp_text(&tv);
		FUZZ_CHECK("time-roundtrip", tf_time_compile(iso[k], &back) == NULL &&
				   tf_time_parse(&back, ts, strlen(ts), &tv2, &why2) == TF_TIME_OK &&
				   strcmp((ts2 = tf_time_timestamp_text(&tv2)), ts) == 0,
				   "%s read back as %s", ts, ts2 ? ts2 : why2);
	}
}

/* ----------------------------------------------------------------
 *		the harness
 * ---------------------------------------------------------------- */

static void
set_part(FuzzText *part, const char *s, int len)
{
	part->len = len;
	part->s = malloc(len ? len : 1);
	memcpy(part->s, s, len);
	part->cstr = malloc(len + 1);
	memcpy(part->cstr, s, len);
	part->cstr[len] = '\0';
}

/* split t at '|' into at most max parts (the last takes the rest) */
static int
split(const FuzzText *t, FuzzText *parts, int max)
{
	int			n = 0;
	int			start = 0;
	int			i;

	for (i = 0; i < t->len && n < max - 1; i++)
	{
		if (t->s[i] != '|')
			continue;
		set_part(&parts[n++], t->s + start, i - start);
		start = i + 1;
	}
	set_part(&parts[n++], t->s + start, t->len - start);
	return n;
}

static void
free_parts(FuzzText *parts, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		fuzz_text_free(&parts[i]);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/* timing cases: the whole 1 MiB input as the value */
static void
t_trim(const FuzzText *t)
{
	int			a,
				b;

	tf_trim(t->s, t->len, NULL, 0, true, &a, &b);
}

static void
t_trim_chars(const FuzzText *t)
{
	int			a,
				b;

	tf_trim(t->s, t->len, " -.:@0", 6, true, &a, &b);
}

static void
t_squish(const FuzzText *t)
{
	int			n;

	(void) tf_squish(t->s, t->len, true, &n);
}

static void
t_replace(const FuzzText *t)
{
	static const char *const froms[] = {" ", "a", "aaaaaaaaaaaaaaaab", "4111 4111 4111 5", "\xc3\xa9"};
	int			i;

	for (i = 0; i < lengthof(froms); i++)
	{
		int			l = strlen(froms[i]);
		char	   *out;
		Size		outlen;

		(void) tf_replace(t->s, t->len, froms[i], l, tf_replace_prepare(froms[i], l),
						  "xy", 2, &out, &outlen);
	}
}

static void
t_number(const FuzzText *t)
{
	TfNumberFormat f = {'.', ',', true, true};
	TfNumberFormat g = {',', ' ', true, true};
	char	   *out;
	char	   *msg;

	(void) tf_number(&f, t->s, t->len, &out, &msg);
	(void) tf_number(&g, t->s, t->len, &out, &msg);
}

static void
t_time(const FuzzText *t)
{
	static const char *const formats[] = {
		"YYYY-MM-DD", "DD Mon YYYY HH12:MI:SS.US AM TZ", "Day, DD Month YYYY \"T\" HH24"
	};
	int			i;

	for (i = 0; i < lengthof(formats); i++)
	{
		TfTimeFormat f;
		TfTimeValue v;
		char	   *why;

		(void) tf_time_compile(formats[i], &f);
		(void) tf_time_parse(&f, t->s, t->len, &v, &why);
	}
}

static void
t_time_format(const FuzzText *t)
{
	TfTimeFormat f;

	(void) tf_time_compile(t->cstr, &f);
}

static void
t_set(const FuzzText *t)
{
	char	   *words[] = {"true", "yes", "N/A"};
	int			lens[] = {4, 3, 3};
	TfSet		set;

	tf_set_build(&set, words, lens, 3, true);
	(void) tf_set_find(&set, t->s, t->len);
}

static const FuzzTiming timing[] = {
	{"tf_trim", t_trim},
	{"tf_trim(chars)", t_trim_chars},
	{"tf_squish", t_squish},
	{"tf_replace", t_replace},
	{"tf_number", t_number},
	{"tf_time_parse", t_time},
	{"tf_time_compile", t_time_format},
	{"tf_set_find", t_set},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzBytes	b = {data, size};
	FuzzText	t;
	FuzzText	parts[16];
	int			n;
	int			op;
	uint8		flags;

	if (fuzz_timing_mode())
	{
		fuzz_timing("transform", timing, lengthof(timing), data, size);
		return 0;
	}
	op = fb_byte(&b) % 7;
	flags = fb_byte(&b);
	fuzz_text(&t, b.p, b.n);
	switch (op)
	{
		case 0:
			check_trim(NULL, &t, flags & 1);
			break;
		case 1:
			n = split(&t, parts, 2);
			if (n == 2)
				check_trim(&parts[0], &parts[1], flags & 1);
			free_parts(parts, n);
			break;
		case 2:
			check_squish(&t, flags & 1);
			break;
		case 3:
			n = split(&t, parts, 3);
			if (n == 3)
				check_replace(&parts[0], &parts[1], &parts[2]);
			free_parts(parts, n);
			break;
		case 4:
			n = split(&t, parts, lengthof(parts));
			if (n >= 1)
				check_set(parts, n, (flags >> 1) & 1);
			free_parts(parts, n);
			break;
		case 5:
			check_number(&t, flags);
			break;
		case 6:
			n = split(&t, parts, 2);
			if (n == 2)
				check_time(&parts[0], &parts[1]);
			free_parts(parts, n);
			break;
	}
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
