/*-------------------------------------------------------------------------
 *
 * fuzz_mask.c
 *	  libFuzzer harness of the masking primitives of src/mask.c:
 *	  mask_partial, mask_email, mask_card, mask_phone, luhn_valid,
 *	  mask_hmac_hex, mask_hash and mask_generalize_time.  (mask_redact_pii
 *	  is in fuzz_pii.c; mask_noise and mask_generalize_number need the
 *	  backend's numeric code and are not fuzzed here.)
 *
 * Input: [op] [arg bytes...] text...
 *	  op % 8: 0 partial (keep_start, keep_end, fill), 1 email, 2 card,
 *			  3 phone (keep, fill), 4 luhn_valid, 5 mask_hmac_hex (key),
 *			  6 mask_hash (key, encoding, length), 7 mask_generalize_time
 *			  (unit)
 *	  keep_start/keep_end: mostly 0..19, sometimes an extreme int4 as the
 *	  SQL function stage.mask_partial may pass (it refuses only negatives);
 *	  phone: keep 0..10 and a one-character fill, as both callers enforce.
 *
 * Every result is compared with the documented output computed here
 * independently (HMACs with OpenSSL's one-shot HMAC()), and must be a
 * palloc'd, valid UTF-8 string.
 *
 *-------------------------------------------------------------------------
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "fuzz_common.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char *const partial_fills[8] = {
	"*", "X", "\xe2\x80\xa2", "", "[hidden]", "\xf0\x9f\x98\x80", "**", "\xc3\xa9"
};

static const char *const phone_fills[4] = {
	"*", "X", "\xe2\x80\xa2", "\xf0\x9f\x98\x80"
};

/* byte length of each character of s[0..len), in order */
static int *
char_lengths(const char *s, int len, int *nchars)
{
	int		   *lens = malloc(sizeof(int) * (len + 1));
	int			n = 0;
	int			i = 0;

	while (i < len)
	{
		int			l = pg_encoding_verifymbchar(PG_UTF8, s + i, len - i);

		if (l <= 0)
			fuzz_die("harness: the text is not valid UTF-8 at %d", i);
		lens[n++] = l;
		i += l;
	}
	*nchars = n;
	return lens;
}

static void
expect_equal(const char *what, const char *got, const char *want, const char *in, int inlen)
{
	FUZZ_CHECK(what, strcmp(got, want) == 0, "input %s: got %s, expected %s",
			   fuzz_show(in, inlen), fuzz_show(got, strlen(got)),
			   fuzz_show(want, strlen(want)));
}

/* ---- partial ---- */

static void
op_partial(FuzzBytes *b, const FuzzText *t)
{
	int			keep_start = fb_int(b);
	int			keep_end = fb_int(b);
	const char *fill = partial_fills[fb_byte(b) & 7];
	int			fill_len = strlen(fill);
	int			nchars;
	int		   *lens = char_lengths(t->s, t->len, &nchars);
	int64		ks = Max(keep_start, 0);
	int64		ke = Max(keep_end, 0);
	bool		fill_each;
	char	   *want = malloc((size_t) t->len + (size_t) (nchars + 1) * fill_len + 1);
	size_t		o = 0;
	int			pos = 0;
	int			i;
	int			fill_chars;
	char	   *out;

	{
		int		   *fl = char_lengths(fill, fill_len, &fill_chars);

		free(fl);
	}
	fill_each = (fill_chars == 1);
	/* known finding: keep_start + keep_end overflows int in mask_partial */
	if (fuzz_skip("partial-keep-overflow") && keep_start > 0 && keep_end > 0 &&
		(int64) keep_start + keep_end > PG_INT32_MAX)
		keep_end = 0, ke = 0;
	if (nchars <= ks + ke)
		ks = ke = 0;
	for (i = 0; i < nchars; i++)
	{
		if (i < ks || i >= nchars - ke)
		{
			memcpy(want + o, t->s + pos, lens[i]);
			o += lens[i];
		}
		else if (fill_each || i == ks)
		{
			memcpy(want + o, fill, fill_len);
			o += fill_len;
		}
		pos += lens[i];
	}
	want[o] = '\0';

	out = mask_partial(t->s, t->len, keep_start, keep_end, fill);
	fuzz_check_result("mask_partial", out, t->s, t->len);
	FUZZ_CHECK("partial-exact", strcmp(out, want) == 0,
			   "mask_partial(%s, keep_start %d, keep_end %d, fill %s) = %s, expected %s",
			   fuzz_show(t->s, t->len), keep_start, keep_end, fuzz_show(fill, fill_len),
			   fuzz_show(out, strlen(out)), fuzz_show(want, o));
	free(want);
	free(lens);
}

/* ---- email ---- */

static void
op_email(const FuzzText *t)
{
	const char *s = t->s;
	int			len = t->len;
	int			at = -1;
	int			first = 0;
	char	   *want = malloc(len + 8);
	size_t		o;
	int			i;
	char	   *out;

	for (i = len - 1; i >= 0; i--)
		if (s[i] == '@')
		{
			at = i;
			break;
		}
	if (len > 0)
		first = pg_encoding_verifymbchar(PG_UTF8, s, len);
	if (at <= 0)
		at = len;				/* no address: only the first character stays */
	memcpy(want, s, first);
	memcpy(want + first, "***", 3);
	o = first + 3;
	memcpy(want + o, s + at, len - at);
	o += len - at;
	want[o] = '\0';

	out = mask_email(s, len);
	fuzz_check_result("mask_email", out, s, len);
	expect_equal("email-exact", out, want, s, len);
	free(want);
}

/* ---- card ---- */

static void
op_card(const FuzzText *t)
{
	const char *s = t->s;
	int			len = t->len;
	int			ndigits = 0;
	int			seen = 0;
	char	   *want = malloc(len + 1);
	int			i;
	char	   *out;

	for (i = 0; i < len; i++)
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
	for (i = 0; i < len; i++)
	{
		want[i] = s[i];
		if (s[i] >= '0' && s[i] <= '9')
		{
			seen++;
			/* the last four stay, if there are more than four */
			if (!(ndigits > 4 && seen > ndigits - 4))
				want[i] = '*';
		}
	}
	want[len] = '\0';

	out = mask_card(s, len);
	fuzz_check_result("mask_card", out, s, len);
	expect_equal("card-exact", out, want, s, len);
	free(want);
}

/* ---- phone ---- */

static void
op_phone(FuzzBytes *b, const FuzzText *t)
{
	const char *s = t->s;
	int			len = t->len;
	int			keep = fb_byte(b) % 11;
	const char *fill = phone_fills[fb_byte(b) & 3];
	int			fill_len = strlen(fill);
	int			ndigits = 0;
	int			seen = 0;
	char	   *want;
	size_t		o = 0;
	int			i;
	char	   *out;

	for (i = 0; i < len; i++)
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
	want = malloc(len + (size_t) ndigits * fill_len + 1);
	for (i = 0; i < len; i++)
	{
		if (s[i] >= '0' && s[i] <= '9')
		{
			seen++;
			if (ndigits > keep && seen > ndigits - keep)
				want[o++] = s[i];
			else
			{
				memcpy(want + o, fill, fill_len);
				o += fill_len;
			}
		}
		else
			want[o++] = s[i];
	}
	want[o] = '\0';

	out = mask_phone(s, len, keep, fill);
	fuzz_check_result("mask_phone", out, s, len);
	expect_equal("phone-exact", out, want, s, len);
	free(want);
}

/* ---- luhn ---- */

static bool
my_luhn(const char *s, int len)
{
	int			n = 0;
	int			sum = 0;
	int			i;

	for (i = 0; i < len; i++)
		if (s[i] >= '0' && s[i] <= '9')
			n++;
		else if (s[i] != ' ' && s[i] != '-')
			return false;
	if (n < 12 || n > 19)
		return false;
	/* double every second digit from the right */
	for (i = len - 1, n = 0; i >= 0; i--)
	{
		int			d;

		if (s[i] < '0' || s[i] > '9')
			continue;
		d = s[i] - '0';
		if (n++ % 2 == 1)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	return sum % 10 == 0;
}

static void
op_luhn(const FuzzText *t)
{
	bool		got = luhn_valid(t->s, t->len);

	FUZZ_CHECK("luhn-exact", got == my_luhn(t->s, t->len),
			   "luhn_valid(%s) = %d", fuzz_show(t->s, t->len), got);
}

/* ---- hmac_hex and hash ---- */

static void
reference_hmac(int key, const char *s, int len, unsigned char *md)
{
	unsigned int mdlen = 0;

	if (HMAC(EVP_sha256(), fuzz_key_bytes[key], (int) strlen(fuzz_key_bytes[key]),
			 (const unsigned char *) s, len, md, &mdlen) == NULL || mdlen != 32)
		fuzz_die("harness: OpenSSL HMAC failed");
}

static void
to_hex(const unsigned char *md, char *hex)
{
	int			i;

	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	hex[64] = '\0';
}

static void
op_hmac_hex(FuzzBytes *b, const FuzzText *t)
{
	int			key = fb_byte(b) % 3;
	unsigned char md[32];
	char		want[65];
	char	   *out;

	reference_hmac(key, t->s, t->len, md);
	to_hex(md, want);
	out = mask_hmac_hex(&fuzz_keys[key], t->s, t->len);
	fuzz_check_result("mask_hmac_hex", out, t->s, t->len);
	expect_equal("hmac-hex-exact", out, want, t->s, t->len);
}

static void
op_hash(FuzzBytes *b, const FuzzText *t)
{
	int			key = fb_byte(b) % 3;
	uint8		flags = fb_byte(b);
	bool		base64 = flags & 1;
	int			length = (int) (flags >> 1) - 2;	/* -2 .. 125 */
	unsigned char md[32];
	char		want[80];
	char	   *out;

	reference_hmac(key, t->s, t->len, md);
	if (base64)
		EVP_EncodeBlock((unsigned char *) want, md, 32);
	else
		to_hex(md, want);
	if (length > 0 && length < (int) strlen(want))
		want[length] = '\0';
	out = mask_hash(&fuzz_keys[key], t->s, t->len, base64, length);
	fuzz_check_result("mask_hash", out, t->s, t->len);
	expect_equal("hash-exact", out, want, t->s, t->len);
}

/* ---- generalize_time ---- */

static void
op_generalize_time(FuzzBytes *b, const FuzzText *t)
{
	MaskUnit	unit = (MaskUnit) (fb_byte(b) % 5);
	const char *p = t->cstr;
	char		want[128];
	char	   *out;

	while (*p == ' ')
		p++;
	if (strcmp(p, "infinity") == 0 || strcmp(p, "-infinity") == 0)
		snprintf(want, sizeof(want), "%s", p);
	else if (!tc_precheck(TC_TIMESTAMP, -1, p))
		snprintf(want, sizeof(want), "%s", MASK_NOT_A_DATE);
	else
	{
		char		date[11];

		memcpy(date, p, 10);
		date[10] = '\0';
		if (unit == UNIT_YEAR)
			memcpy(date + 5, "01-01", 5);
		else if (unit == UNIT_MONTH)
			memcpy(date + 8, "01", 2);
		if (p[10] == '\0')
			snprintf(want, sizeof(want), "%s", date);
		else
		{
			const char *time = p + 11;
			int			tlen = tc_isotime(time);

			if (unit == UNIT_HOUR)
				snprintf(want, sizeof(want), "%s %.2s:00:00%s", date, time, time + tlen);
			else
				snprintf(want, sizeof(want), "%s 00:00:00%s", date, time + tlen);
		}
		/* what a typed column receives must be a valid date or timestamp */
		FUZZ_CHECK("generalize-typed", tc_precheck(TC_TIMESTAMP, -1, want),
				   "generalizing %s gives %s, not a valid timestamp",
				   fuzz_show(t->cstr, t->len), want);
	}
	out = mask_generalize_time(t->cstr, unit);
	fuzz_check_result("mask_generalize_time", out, t->cstr, t->len);
	expect_equal("generalize-exact", out, want, t->cstr, t->len);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_keys_init();
	return 0;
}

/* ---- timing cases ---- */

static void
t_partial(const FuzzText *t)
{
	(void) mask_partial(t->s, t->len, 1, 0, "*");
}

static void
t_partial_long_fill(const FuzzText *t)
{
	(void) mask_partial(t->s, t->len, 3, 3, "[hidden]");
}

static void
t_email(const FuzzText *t)
{
	(void) mask_email(t->s, t->len);
}

static void
t_card(const FuzzText *t)
{
	(void) mask_card(t->s, t->len);
}

static void
t_phone(const FuzzText *t)
{
	(void) mask_phone(t->s, t->len, 4, "*");
}

static void
t_luhn(const FuzzText *t)
{
	(void) luhn_valid(t->s, t->len);
}

static void
t_hmac(const FuzzText *t)
{
	(void) mask_hmac_hex(&fuzz_keys[1], t->s, t->len);
}

static void
t_hash(const FuzzText *t)
{
	(void) mask_hash(&fuzz_keys[2], t->s, t->len, true, 16);
}

static void
t_generalize(const FuzzText *t)
{
	(void) mask_generalize_time(t->cstr, UNIT_DAY);
}

static const FuzzTiming timing[] = {
	{"mask_partial(1,0,*)", t_partial},
	{"mask_partial(3,3,[hidden])", t_partial_long_fill},
	{"mask_email", t_email},
	{"mask_card", t_card},
	{"mask_phone(4,*)", t_phone},
	{"luhn_valid", t_luhn},
	{"mask_hmac_hex", t_hmac},
	{"mask_hash(base64,16)", t_hash},
	{"mask_generalize_time(day)", t_generalize},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzBytes	b = {data, size};
	FuzzText	t;
	int			op;
	uint8		args[4];
	FuzzBytes	a = {args, sizeof(args)};
	int			i;

	if (fuzz_timing_mode())
	{
		fuzz_timing("mask", timing, lengthof(timing), data, size);
		return 0;
	}
	/* op and four argument bytes, then the text */
	op = fb_byte(&b) % 8;
	for (i = 0; i < 4; i++)
		args[i] = fb_byte(&b);
	fuzz_text(&t, b.p, b.n);
	switch (op)
	{
		case 0:
			op_partial(&a, &t);
			break;
		case 1:
			op_email(&t);
			break;
		case 2:
			op_card(&t);
			break;
		case 3:
			op_phone(&a, &t);
			break;
		case 4:
			op_luhn(&t);
			break;
		case 5:
			op_hmac_hex(&a, &t);
			break;
		case 6:
			op_hash(&a, &t);
			break;
		case 7:
			op_generalize_time(&a, &t);
			break;
	}
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
