/*-------------------------------------------------------------------------
 *
 * fuzz_pseudonym.c
 *	  libFuzzer harness of mask_pseudonym (src/pseudonym.c), for every
 *	  PseudoKind, with fixed keys.
 *
 * Input: [flags] text...
 *	  (flags & 7) % 5: the PseudoKind (auto, email, name, digits, text)
 *	  flags & 8: keep_domain
 *	  (flags >> 4) % 3: the key (empty, short, longer than a SHA-256 block)
 *
 * Checked beyond the sanitizers, from the documentation at the top of
 * pseudonym.c:
 *	  - the result is palloc'd, valid UTF-8, and the same on a second call;
 *	  - auto picks email for a valid address, digits for digits and
 *		" +-().,/" only, name for letters and name punctuation only, text
 *		otherwise; an explicit email kind on a non-address is text;
 *	  - email: 12 letters and digits (the first a letter) @ the kept
 *		domain, or @ 8 letters and digits .example; a valid address;
 *	  - digits: same length, every non-digit kept, digits stay digits, a
 *		run's leading zero stays zero and a leading non-zero digit stays
 *		non-zero; one digit changed gives another pseudonym ("digits never
 *		collide");
 *	  - text: a-z to a-z, A-Z to A-Z, digits to digits, a character of
 *		another script to one lower-case letter, the rest kept;
 *	  - name: separators (space, comma, tab) kept, every word a name of
 *		ASCII letters in the word's case, initials initials.
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool
is_sep(unsigned char c)
{
	return c == ' ' || c == ',' || c == '\t';
}

/* the kind mask_pseudonym should use, from its documentation */
static PseudoKind
effective_kind(const char *s, int len, PseudoKind kind)
{
	bool		letters = false;
	bool		digits = false;
	bool		name_only = true;
	bool		digits_only = true;
	int			i;

	if (kind == PSEUDO_EMAIL)
		return email_valid(s, len) ? PSEUDO_EMAIL : PSEUDO_TEXT;
	if (kind != PSEUDO_AUTO)
		return kind;
	if (email_valid(s, len))
		return PSEUDO_EMAIL;
	for (i = 0; i < len; i++)
	{
		unsigned char c = s[i];

		if (is_digit(c))
		{
			digits = true;
			name_only = false;
		}
		else if (is_letter(c))
		{
			letters = true;
			digits_only = false;
		}
		else
		{
			if (strchr(" +-().,/", c) == NULL)
				digits_only = false;
			if (!(is_sep(c) || c == '-' || c == '\'' || c == '.'))
				name_only = false;
		}
	}
	if (digits && digits_only)
		return PSEUDO_DIGITS;
	if (letters && name_only)
		return PSEUDO_NAME;
	return PSEUDO_TEXT;
}

static bool
label_ok(const char *p, int n)
{
	int			i;

	if (!(p[0] >= 'a' && p[0] <= 'z'))
		return false;
	for (i = 1; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || is_digit(p[i])))
			return false;
	return true;
}

static void
check_email(const char *s, int len, const char *out, bool keep_domain)
{
	int			olen = strlen(out);
	const char *dom = s + len;
	int			domlen;
	int			local;

	while (dom > s && dom[-1] != '@')
		dom--;
	domlen = s + len - dom;
	/* 12 characters, fewer when a kept domain would make it too long */
	local = keep_domain && 253 - domlen < 12 ? 253 - domlen : 12;
	FUZZ_CHECK("pseudo-email", local >= 1 && olen > local + 1 && out[local] == '@' &&
			   label_ok(out, local),
			   "email pseudonym %s of %s has no %d-character local part",
			   fuzz_show(out, olen), fuzz_show(s, len), local);
	if (keep_domain)
		FUZZ_CHECK("pseudo-email", strlen(out + local + 1) == (size_t) domlen &&
				   memcmp(out + local + 1, dom, domlen) == 0,
				   "email pseudonym %s of %s does not keep the domain",
				   fuzz_show(out, olen), fuzz_show(s, len));
	else
		FUZZ_CHECK("pseudo-email", olen == 13 + 8 + 8 && label_ok(out + 13, 8) &&
				   strcmp(out + 21, ".example") == 0,
				   "email pseudonym %s of %s is not under .example",
				   fuzz_show(out, olen), fuzz_show(s, len));
	/* a pseudonym of a valid address is a valid address */
	FUZZ_CHECK("pseudo-email-length", olen <= 254,
			   "email pseudonym %s (%d bytes) of the valid address %s (%d bytes) is longer "
			   "than the 254 bytes email_valid allows", fuzz_show(out, olen), olen,
			   fuzz_show(s, len), len);
	if (olen <= 254)
		FUZZ_CHECK("pseudo-email-valid", email_valid(out, olen),
				   "email pseudonym %s of %s is not a valid address",
				   fuzz_show(out, olen), fuzz_show(s, len));
}

static void
check_digits(const char *s, int len, const char *out)
{
	int			i;

	FUZZ_CHECK("pseudo-digits", strlen(out) == (size_t) len,
			   "digits pseudonym %s of %s changes the length",
			   fuzz_show(out, strlen(out)), fuzz_show(s, len));
	for (i = 0; i < len; i++)
	{
		unsigned char c = s[i];
		unsigned char d = out[i];
		bool		ok;

		if (!is_digit(c))
			ok = (d == c);
		else if (i > 0 && is_digit(s[i - 1]))
			ok = is_digit(d);
		else if (c == '0')
			ok = (d == '0');
		else
			ok = (d >= '1' && d <= '9');
		FUZZ_CHECK("pseudo-digits", ok,
				   "digits pseudonym %s of %s: byte %d is 0x%02x for 0x%02x",
				   fuzz_show(out, len), fuzz_show(s, len), i, d, c);
	}
}

/*
 * "Digits never collide": the value with one digit changed (its class
 * kept: a run's leading zero stays zero, a leading non-zero digit
 * non-zero) gets another pseudonym.
 */
static void
check_digits_distinct(const HmacKey *key, const FuzzText *t, PseudoKind kind,
					  bool keep_domain, const char *out)
{
	char	   *s2 = malloc(t->len ? t->len : 1);
	char	   *out2;
	int			i;

	memcpy(s2, t->s, t->len);
	for (i = t->len - 1; i >= 0; i--)
	{
		bool		run_start = (i == 0 || !is_digit(s2[i - 1]));

		if (!is_digit(s2[i]) || (run_start && s2[i] == '0'))
			continue;
		if (run_start)
			s2[i] = s2[i] == '9' ? '1' : s2[i] + 1;
		else
			s2[i] = s2[i] == '9' ? '0' : s2[i] + 1;
		break;
	}
	if (i >= 0)
	{
		out2 = mask_pseudonym(key, s2, t->len, kind, keep_domain);
		FUZZ_CHECK("pseudo-digits-distinct", strcmp(out, out2) != 0,
				   "digits pseudonyms of %s and %s are both %s", fuzz_show(t->s, t->len),
				   fuzz_show(s2, t->len), fuzz_show(out, strlen(out)));
	}
	free(s2);
}

static void
check_text(const char *s, int len, const char *out)
{
	int			olen = strlen(out);
	int			i = 0;
	int			o = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		unsigned char d = o < olen ? out[o] : 0;
		bool		ok;
		int			l = 1;

		if (c >= 'a' && c <= 'z')
			ok = d >= 'a' && d <= 'z';
		else if (c >= 'A' && c <= 'Z')
			ok = d >= 'A' && d <= 'Z';
		else if (is_digit(c))
			ok = is_digit(d);
		else if (c >= 0x80)
		{
			l = pg_encoding_verifymbchar(PG_UTF8, s + i, len - i);
			ok = d >= 'a' && d <= 'z';
		}
		else
			ok = d == c;
		FUZZ_CHECK("pseudo-text", ok && l > 0,
				   "text pseudonym %s of %s: output byte %d (0x%02x) for input byte %d (0x%02x)",
				   fuzz_show(out, olen), fuzz_show(s, len), o, d, i, c);
		i += l;
		o++;
	}
	FUZZ_CHECK("pseudo-text", o == olen, "text pseudonym %s of %s has %d bytes, expected %d",
			   fuzz_show(out, olen), fuzz_show(s, len), olen, o);
}

static void
check_name(const char *s, int len, const char *out)
{
	int			olen = strlen(out);
	int			i = 0;
	int			o = 0;

	while (i < len)
	{
		int			start;
		int			chars = 0;
		int			ostart;
		bool		any_lower = false;
		bool		any_upper = false;
		bool		initial;
		int			k;

		if (is_sep(s[i]))
		{
			FUZZ_CHECK("pseudo-name", o < olen && out[o] == s[i],
					   "name pseudonym %s of %s: separator at %d not kept at %d",
					   fuzz_show(out, olen), fuzz_show(s, len), i, o);
			i++;
			o++;
			continue;
		}
		start = i;
		while (i < len && !is_sep(s[i]))
		{
			int			l = pg_encoding_verifymbchar(PG_UTF8, s + i, len - i);

			if (s[i] >= 'a' && s[i] <= 'z')
				any_lower = true;
			else if (s[i] >= 'A' && s[i] <= 'Z')
				any_upper = true;
			i += l > 0 ? l : 1;
			chars++;
		}
		ostart = o;
		while (o < olen && !is_sep(out[o]))
			o++;
		initial = chars == 1 || (chars == 2 && s[i - 1] == '.');
		if (initial)
		{
			bool		dot = s[i - 1] == '.';

			FUZZ_CHECK("pseudo-name", o - ostart == (dot ? 2 : 1) &&
					   out[ostart] >= 'A' && out[ostart] <= 'Z' &&
					   (!dot || out[ostart + 1] == '.'),
					   "name pseudonym %s of %s: the initial %s became %s",
					   fuzz_show(out, olen), fuzz_show(s, len),
					   fuzz_show(s + start, i - start), fuzz_show(out + ostart, o - ostart));
			continue;
		}
		FUZZ_CHECK("pseudo-name", o - ostart >= 2,
				   "name pseudonym %s of %s: the word %s became %s",
				   fuzz_show(out, olen), fuzz_show(s, len),
				   fuzz_show(s + start, i - start), fuzz_show(out + ostart, o - ostart));
		for (k = ostart; k < o; k++)
		{
			char		c = out[k];
			bool		upper_word = (i - start) > 1 && s[start] >= 'A' && s[start] <= 'Z' && !any_lower;
			bool		lower_word = s[start] >= 'a' && s[start] <= 'z' && !any_upper;
			bool		ok;

			if (upper_word)
				ok = c >= 'A' && c <= 'Z';
			else if (lower_word)
				ok = c >= 'a' && c <= 'z';
			else if (k == ostart)
				ok = c >= 'A' && c <= 'Z';
			else
				ok = c >= 'a' && c <= 'z';
			FUZZ_CHECK("pseudo-name", ok,
					   "name pseudonym %s of %s: the word %s became %s (case or letters)",
					   fuzz_show(out, olen), fuzz_show(s, len),
					   fuzz_show(s + start, i - start), fuzz_show(out + ostart, o - ostart));
		}
	}
	FUZZ_CHECK("pseudo-name", o == olen, "name pseudonym %s of %s has extra bytes",
			   fuzz_show(out, olen), fuzz_show(s, len));
}

static void
run(uint8 flags, const FuzzText *t)
{
	PseudoKind	kind = (PseudoKind) ((flags & 7) % 5);
	bool		keep_domain = (flags & 8) != 0;
	const HmacKey *key = &fuzz_keys[(flags >> 4) % 3];
	char	   *out;
	char	   *again;

	out = mask_pseudonym(key, t->s, t->len, kind, keep_domain);
	fuzz_check_result("mask_pseudonym", out, t->s, t->len);
	again = mask_pseudonym(key, t->s, t->len, kind, keep_domain);
	FUZZ_CHECK("pseudo-deterministic", strcmp(out, again) == 0,
			   "two pseudonyms of %s under one key: %s and %s", fuzz_show(t->s, t->len),
			   fuzz_show(out, strlen(out)), fuzz_show(again, strlen(again)));
	switch (effective_kind(t->s, t->len, kind))
	{
		case PSEUDO_EMAIL:
			check_email(t->s, t->len, out, keep_domain);
			break;
		case PSEUDO_DIGITS:
			check_digits(t->s, t->len, out);
			check_digits_distinct(key, t, kind, keep_domain, out);
			break;
		case PSEUDO_NAME:
			check_name(t->s, t->len, out);
			break;
		case PSEUDO_TEXT:
		case PSEUDO_AUTO:
			check_text(t->s, t->len, out);
			break;
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_keys_init();
	return 0;
}

#define PSEUDO_CASE(fname, kind) \
	static void fname(const FuzzText *t) \
	{ (void) mask_pseudonym(&fuzz_keys[1], t->s, t->len, kind, true); }
PSEUDO_CASE(t_auto, PSEUDO_AUTO)
PSEUDO_CASE(t_email, PSEUDO_EMAIL)
PSEUDO_CASE(t_name, PSEUDO_NAME)
PSEUDO_CASE(t_digits, PSEUDO_DIGITS)
PSEUDO_CASE(t_text, PSEUDO_TEXT)

static const FuzzTiming timing[] = {
	{"mask_pseudonym(auto)", t_auto},
	{"mask_pseudonym(email)", t_email},
	{"mask_pseudonym(name)", t_name},
	{"mask_pseudonym(digits)", t_digits},
	{"mask_pseudonym(text)", t_text},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzBytes	b = {data, size};
	FuzzText	t;
	uint8		flags;

	if (fuzz_timing_mode())
	{
		fuzz_timing("pseudonym", timing, lengthof(timing), data, size);
		return 0;
	}
	flags = fb_byte(&b);
	fuzz_text(&t, b.p, b.n);
	run(flags, &t);
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
