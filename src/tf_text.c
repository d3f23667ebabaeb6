/*-------------------------------------------------------------------------
 *
 * tf_text.c
 *	  Pure text helpers of the transform methods: an output buffer that
 *	  refuses to outgrow a text value, white space, trim, squish, plain
 *	  replace (Knuth-Morris-Pratt, so linear for any pattern) and sorted
 *	  string sets.
 *
 * Everything here works on bytes in the database encoding and reads only
 * what it is given: no catalog, no GUC, no encoding look-up (callers say
 * whether the text is UTF-8), so the fuzz harness links this file alone.
 * Every server encoding keeps ASCII bytes for ASCII characters (no
 * multibyte character has a byte below 0x80 in EUC, UTF-8 or the LATIN
 * sets), so ASCII tests on single bytes are safe; anything that may match
 * a multibyte sequence walks character boundaries with pg_mblen_range.
 * Loops over the value check for interrupts; nothing raises an ERROR on
 * account of the value: a result too long for a text value is reported
 * to the caller (TfBuf.too_long, TF_REPLACE_TOO_LONG).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "tf_text.h"

/* ----------------------------------------------------------------
 *		output buffer
 * ---------------------------------------------------------------- */

void
tf_buf_init(TfBuf *b, Size hint)
{
	b->cap = Max(Min(hint, TF_MAX_TEXT) + 1, 16);
	b->data = palloc(b->cap);
	b->len = 0;
	b->too_long = false;
}

/* append n bytes; false (and too_long set) when the text would be too long */
bool
tf_buf_append(TfBuf *b, const char *s, Size n)
{
	if (b->too_long || n > TF_MAX_TEXT - b->len)
	{
		b->too_long = true;
		return false;
	}
	if (b->len + n + 1 > b->cap)
	{
		Size		cap = b->cap;

		while (cap < b->len + n + 1)
			cap = (cap > (TF_MAX_TEXT + 1) / 2) ? TF_MAX_TEXT + 1 : cap * 2;
		b->data = repalloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return true;
}

/* the text, NUL-terminated */
char *
tf_buf_finish(TfBuf *b)
{
	b->data[b->len] = '\0';
	return b->data;
}

/* ----------------------------------------------------------------
 *		white space
 * ---------------------------------------------------------------- */

/*
 * ASCII white space, and in UTF-8 the other Unicode White_Space characters
 * plus U+FEFF (the byte order mark, left at the start of many exports):
 * U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000.
 */
int
tf_space_len(const char *s, const char *end, bool utf8)
{
	const unsigned char *u = (const unsigned char *) s;
	ptrdiff_t	n = end - s;

	if (n <= 0)
		return 0;
	if (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r'))
		return 1;
	if (!utf8 || u[0] < 0xC2)
		return 0;
	if (u[0] == 0xC2 && n >= 2)
		return (u[1] == 0x85 || u[1] == 0xA0) ? 2 : 0;
	if (n < 3)
		return 0;
	if (u[0] == 0xE1)
		return (u[1] == 0x9A && u[2] == 0x80) ? 3 : 0;
	if (u[0] == 0xE2 && u[1] == 0x80)
		return (u[2] <= 0x8A || u[2] == 0xA8 || u[2] == 0xA9 || u[2] == 0xAF) ? 3 : 0;
	if (u[0] == 0xE2 && u[1] == 0x81)
		return (u[2] == 0x9F) ? 3 : 0;
	if (u[0] == 0xE3)
		return (u[1] == 0x80 && u[2] == 0x80) ? 3 : 0;
	if (u[0] == 0xEF)
		return (u[1] == 0xBB && u[2] == 0xBF) ? 3 : 0;
	return 0;
}

/* is the character c (l bytes) one of chars? */
static bool
tf_in_chars(const char *c, int l, const char *chars, int charslen)
{
	const char *p = chars;
	const char *end = chars + charslen;

	while (p < end)
	{
		int			cl = pg_mblen_range(p, end);

		if (cl == l && memcmp(p, c, l) == 0)
			return true;
		p += cl;
	}
	return false;
}

/* bytes of the trimmable character at p, 0 if it is kept */
static int
tf_trimmable(const char *p, const char *end, const char *chars, int charslen,
			 bool utf8)
{
	int			l;

	if (chars == NULL)
		return tf_space_len(p, end, utf8);
	l = pg_mblen_range(p, end);
	return tf_in_chars(p, l, chars, charslen) ? l : 0;
}

/*
 * The range left after removing leading and trailing characters that are
 * white space (chars NULL) or among chars.  One forward pass: the end is
 * the position after the last kept character, so no encoding needs to be
 * walked backwards.
 */
void
tf_trim(const char *s, int len, const char *chars, int charslen, bool utf8,
		int *start, int *end)
{
	const char *stop = s + len;
	const char *p = s;
	const char *last = NULL;	/* after the last kept character */
	const unsigned char *u = (const unsigned char *) s;

	/*
	 * White space, and the value starts and ends with ASCII that is not:
	 * nothing to trim (in a server encoding a byte below 0x80 is always a
	 * character of its own, so the last byte is the last character).
	 */
	if (chars == NULL && len > 0 && u[0] < 0x80 && u[len - 1] < 0x80 &&
		tf_space_len(s, stop, false) == 0 && tf_space_len(stop - 1, stop, false) == 0)
	{
		*start = 0;
		*end = len;
		return;
	}
	*start = len;
	while (p < stop)
	{
		int			l = tf_trimmable(p, stop, chars, charslen, utf8);

		CHECK_FOR_INTERRUPTS();
		if (l == 0)
		{
			l = pg_mblen_range(p, stop);
			if (last == NULL)
				*start = p - s;
			last = p + l;
		}
		p += l;
	}
	*end = last ? last - s : len;
}

/* trimmed, inner runs of white space one ASCII space */
char *
tf_squish(const char *s, int len, bool utf8, int *outlen)
{
	char	   *out = palloc((Size) len + 1);
	char	   *o = out;
	const char *stop = s + len;
	const char *p = s;
	bool		gap = false;

	while (p < stop)
	{
		int			l = tf_space_len(p, stop, utf8);

		CHECK_FOR_INTERRUPTS();
		if (l > 0)
		{
			gap = (o > out);	/* no space before the first kept character */
			p += l;
			continue;
		}
		if (gap)
			*o++ = ' ';
		gap = false;
		l = pg_mblen_range(p, stop);
		memcpy(o, p, l);
		o += l;
		p += l;
	}
	*o = '\0';
	*outlen = o - out;
	return out;
}

/* ----------------------------------------------------------------
 *		replace
 * ---------------------------------------------------------------- */

/* kmp[i]: length of the longest proper border of from[0..i] */
int *
tf_replace_prepare(const char *from, int fromlen)
{
	int		   *kmp = palloc(sizeof(int) * Max(fromlen, 1));
	int			k = 0;
	int			i;

	kmp[0] = 0;
	for (i = 1; i < fromlen; i++)
	{
		while (k > 0 && from[i] != from[k])
			k = kmp[k - 1];
		if (from[i] == from[k])
			k++;
		kmp[i] = k;
	}
	return kmp;
}

/*
 * Every occurrence of from (left to right, not overlapping) replaced by to.
 * A match counts only where a character starts: the scan keeps a cursor on
 * character boundaries, which never moves back, so the pass stays linear
 * in encodings that are not self-synchronizing (EUC).
 */
int
tf_replace(const char *s, int len, const char *from, int fromlen,
		   const int *kmp, const char *to, int tolen, char **out, Size *outlen)
{
	TfBuf		b;
	int			copied = 0;		/* s[0..copied) is in the output */
	int			boundary = 0;	/* a character starts here */
	int			k = 0;
	int			i;
	bool		any = false;

	*out = NULL;
	*outlen = 0;
	if (fromlen <= 0 || len < fromlen)
		return TF_REPLACE_NONE;
	for (i = 0; i < len; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		while (k > 0 && s[i] != from[k])
			k = kmp[k - 1];
		if (s[i] == from[k])
			k++;
		if (k < fromlen)
			continue;
		/* a match at m = i - fromlen + 1: at a character start? */
		{
			int			m = i - fromlen + 1;

			while (boundary < m)
				boundary += pg_mblen_range(s + boundary, s + len);
			if (boundary != m || m < copied)
			{
				k = kmp[k - 1];
				continue;
			}
			if (!any)
			{
				tf_buf_init(&b, (Size) len + (tolen > fromlen ? tolen - fromlen : 0));
				any = true;
			}
			if (!tf_buf_append(&b, s + copied, m - copied) ||
				!tf_buf_append(&b, to, tolen))
			{
				pfree(b.data);
				return TF_REPLACE_TOO_LONG;
			}
			copied = i + 1;
			boundary = copied;
			k = 0;
		}
	}
	if (!any)
		return TF_REPLACE_NONE;
	if (!tf_buf_append(&b, s + copied, len - copied))
	{
		pfree(b.data);
		return TF_REPLACE_TOO_LONG;
	}
	*outlen = b.len;
	*out = tf_buf_finish(&b);
	return TF_REPLACE_DONE;
}

/* ----------------------------------------------------------------
 *		string sets
 * ---------------------------------------------------------------- */

typedef struct TfSetItem
{
	char	   *s;				/* folded when the set folds */
	int			len;
	int			index;			/* position given to tf_set_build */
} TfSetItem;

/* by length, then bytes; ties keep the order given (first index wins) */
static int
tf_set_cmp(const void *a, const void *b)
{
	const TfSetItem *x = a;
	const TfSetItem *y = b;
	int			c;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	c = memcmp(x->s, y->s, x->len);
	if (c != 0)
		return c;
	return x->index < y->index ? -1 : (x->index > y->index);
}

static void
tf_fold(char *dst, const char *src, int len)
{
	int			i;

	for (i = 0; i < len; i++)
		dst[i] = pg_ascii_tolower((unsigned char) src[i]);
}

void
tf_set_build(TfSet *set, char **strs, int *lens, int n, bool fold)
{
	int			i;

	set->n = n;
	set->fold = fold;
	set->maxlen = 0;
	set->items = palloc(sizeof(TfSetItem) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		TfSetItem  *it = &set->items[i];

		it->len = lens[i];
		it->index = i;
		it->s = palloc(lens[i] + 1);
		if (fold)
			tf_fold(it->s, strs[i], lens[i]);
		else
			memcpy(it->s, strs[i], lens[i]);
		it->s[lens[i]] = '\0';
		set->maxlen = Max(set->maxlen, lens[i]);
	}
	qsort(set->items, n, sizeof(TfSetItem), tf_set_cmp);
}

/* the index s was added with (the first, among equal strings), or -1 */
int
tf_set_find(const TfSet *set, const char *s, int len)
{
	char		small[64];
	char	   *key = (char *) s;
	int			lo = 0;
	int			hi = set->n;
	int			found = -1;

	if (len > set->maxlen)
		return -1;
	if (set->fold)
	{
		key = (len <= (int) sizeof(small)) ? small : palloc(len);
		tf_fold(key, s, len);
	}
	/* the first item not below (len, key) */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		const TfSetItem *it = &set->items[mid];
		int			c = (it->len != len) ? (it->len < len ? -1 : 1) :
			memcmp(it->s, key, len);

		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < set->n && set->items[lo].len == len &&
		memcmp(set->items[lo].s, key, len) == 0)
		found = set->items[lo].index;
	if (key != s && key != small)
		pfree(key);
	return found;
}
