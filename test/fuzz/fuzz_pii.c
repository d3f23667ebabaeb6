/*-------------------------------------------------------------------------
 *
 * fuzz_pii.c
 *	  libFuzzer harness of pii_scan (src/pii.c) and mask_redact_pii
 *	  (src/mask.c).
 *
 * Input: [kinds] [flags] text...
 *	  kinds	 the PII_* mask (every value 0..255 is tried)
 *	  flags	 bits 0-1: how many hits the first bounded call may store
 *			 bits 2-4: the replacement of mask_redact_pii (NULL: "[kind]")
 *
 * Checked for every input, beyond the sanitizers:
 *	  - pii_scan allocates nothing and returns the same count whatever
 *		maxhits is, storing a prefix of the same hits;
 *	  - spans are in order, inside the text, never overlap, start and end
 *		at character boundaries, and have a kind of the mask;
 *	  - each span passes its kind's validator (email_valid, luhn_valid,
 *		iban_valid, inet_pton), as pii.c promises;
 *	  - a text that is as a whole one valid email address is reported as
 *		one email span when emails are asked for ("email-whole");
 *	  - mask_redact_pii returns exactly the text with each span replaced.
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

#include <arpa/inet.h>

static const char *const replacements[8] = {
	NULL, "", "[redacted]", "\xe2\x96\x88", "@", "X", "-----BEGIN ", "$1"
};

static const int maxhits_choice[4] = {0, 1, 4, 64};

static bool
inet_ok(int af, const char *s, int len)
{
	char		buf[64];
	unsigned char addr[16];

	if (len <= 0 || len >= (int) sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(af, buf, addr) == 1;
}

static void
check_hits(const char *s, int len, int kinds, const PiiHit *hits, int n)
{
	int			prev_end = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		const PiiHit *h = &hits[i];
		const char *span = s + h->start;

		FUZZ_CHECK("pii-kind", h->kind != 0 && (h->kind & (h->kind - 1)) == 0 &&
				   (h->kind & kinds) == h->kind,
				   "hit %d has kind 0x%x, not one bit of the mask 0x%x; text %s",
				   i, h->kind, kinds, fuzz_show(s, len));
		FUZZ_CHECK("pii-bounds", h->start >= prev_end && h->len > 0 &&
				   h->start + h->len <= len,
				   "hit %d [%d, +%d) out of order, empty, overlapping or outside "
				   "[%d, %d); text %s", i, h->start, h->len, prev_end, len,
				   fuzz_show(s, len));
		FUZZ_CHECK("pii-char-boundary", fuzz_char_boundary(s, len, h->start) &&
				   fuzz_char_boundary(s, len, h->start + h->len),
				   "hit %d [%d, +%d) splits a multibyte character; text %s",
				   i, h->start, h->len, fuzz_show(s, len));
		switch (h->kind)
		{
			case PII_EMAIL:
				FUZZ_CHECK("pii-email-valid", email_valid(span, h->len),
						   "email span %s fails email_valid", fuzz_show(span, h->len));
				break;
			case PII_CARD:
				FUZZ_CHECK("pii-card-luhn", luhn_valid(span, h->len),
						   "card span %s fails luhn_valid", fuzz_show(span, h->len));
				break;
			case PII_IBAN:
				FUZZ_CHECK("pii-iban-valid", iban_valid(span, h->len),
						   "iban span %s fails iban_valid", fuzz_show(span, h->len));
				break;
			case PII_IPV4:
				FUZZ_CHECK("pii-ipv4-valid", inet_ok(AF_INET, span, h->len),
						   "ipv4 span %s fails inet_pton", fuzz_show(span, h->len));
				break;
			case PII_IPV6:
				FUZZ_CHECK("pii-ipv6-valid", inet_ok(AF_INET6, span, h->len),
						   "ipv6 span %s fails inet_pton", fuzz_show(span, h->len));
				break;
			case PII_SSN:
				FUZZ_CHECK("pii-ssn-shape", h->len == 11 && span[3] == '-' && span[6] == '-',
						   "ssn span %s is not AAA-GG-SSSS", fuzz_show(span, h->len));
				break;
			default:
				break;
		}
		prev_end = h->start + h->len;
	}
}

/* the text with each span replaced, built here independently */
static char *
expected_redaction(const char *s, int len, const PiiHit *hits, int n, const char *repl)
{
	size_t		cap = len + 1;
	char	   *out;
	size_t		o = 0;
	int			pos = 0;
	int			i;

	for (i = 0; i < n; i++)
		cap += repl ? strlen(repl) : strlen(pii_kind_name(hits[i].kind)) + 2;
	out = malloc(cap);
	for (i = 0; i < n; i++)
	{
		memcpy(out + o, s + pos, hits[i].start - pos);
		o += hits[i].start - pos;
		if (repl)
		{
			memcpy(out + o, repl, strlen(repl));
			o += strlen(repl);
		}
		else
			o += sprintf(out + o, "[%s]", pii_kind_name(hits[i].kind));
		pos = hits[i].start + hits[i].len;
	}
	memcpy(out + o, s + pos, len - pos);
	o += len - pos;
	out[o] = '\0';
	return out;
}

static void
run(int kinds, int flags, const FuzzText *t)
{
	const char *s = t->s;
	int			len = t->len;
	uint64		calls = fuzz_alloc_calls;
	int			n;
	int			n2;
	int			m = maxhits_choice[flags & 3];
	const char *repl = replacements[(flags >> 2) & 7];
	PiiHit	   *hits;
	PiiHit		few[64];
	char	   *out;
	char	   *want;

	n = pii_scan(s, len, kinds, NULL, 0);
	FUZZ_CHECK("pii-count", n >= 0 && n <= len, "pii_scan returned %d for %d bytes", n, len);
	hits = malloc(sizeof(PiiHit) * Max(n, 1));
	n2 = pii_scan(s, len, kinds, hits, n);
	FUZZ_CHECK("pii-count", n2 == n, "pii_scan counted %d hits with maxhits 0, %d with %d; text %s",
			   n, n2, n, fuzz_show(s, len));
	n2 = pii_scan(s, len, kinds, few, m);
	FUZZ_CHECK("pii-count", n2 == n, "pii_scan counted %d hits with maxhits 0, %d with %d; text %s",
			   n, n2, m, fuzz_show(s, len));
	FUZZ_CHECK("pii-count", memcmp(few, hits, sizeof(PiiHit) * Min(m, n)) == 0,
			   "the first %d hits differ between maxhits %d and %d; text %s",
			   Min(m, n), m, n, fuzz_show(s, len));
	FUZZ_CHECK("pii-no-alloc", fuzz_alloc_calls == calls,
			   "pii_scan allocated memory (it promises not to)");
	check_hits(s, len, kinds, hits, n);

	/* a whole valid address is one email span */
	if ((kinds & PII_EMAIL) && email_valid(s, len))
		FUZZ_CHECK("email-whole", n == 1 && hits[0].kind == PII_EMAIL &&
				   hits[0].start == 0 && hits[0].len == len,
				   "the valid address %s is not reported as one email span with kinds 0x%x: "
				   "%d hits, the first %s [%d, +%d)", fuzz_show(s, len), kinds, n,
				   n > 0 ? pii_kind_name(hits[0].kind) : "-", n > 0 ? hits[0].start : 0,
				   n > 0 ? hits[0].len : 0);

	out = mask_redact_pii(s, len, kinds, repl);
	fuzz_check_result("mask_redact_pii", out, s, len);
	want = expected_redaction(s, len, hits, n, repl);
	FUZZ_CHECK("redact-pii-exact", strcmp(out, want) == 0,
			   "mask_redact_pii(kinds 0x%x, repl %s) of %s is %s, expected %s",
			   kinds, repl ? fuzz_show(repl, strlen(repl)) : "NULL", fuzz_show(s, len),
			   fuzz_show(out, strlen(out)), fuzz_show(want, strlen(want)));
	free(want);
	free(hits);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/* timing cases: every kind alone, all kinds, and the redaction */
#define SCAN_CASE(fname, mask) \
	static void fname(const FuzzText *t) { (void) pii_scan(t->s, t->len, mask, NULL, 0); }
SCAN_CASE(t_scan_all, PII_ALL)
SCAN_CASE(t_scan_email, PII_EMAIL)
SCAN_CASE(t_scan_card, PII_CARD)
SCAN_CASE(t_scan_iban, PII_IBAN)
SCAN_CASE(t_scan_phone, PII_PHONE)
SCAN_CASE(t_scan_ssn, PII_SSN)
SCAN_CASE(t_scan_ipv4, PII_IPV4)
SCAN_CASE(t_scan_ipv6, PII_IPV6)
SCAN_CASE(t_scan_credential, PII_CREDENTIAL)

static void
t_redact_all(const FuzzText *t)
{
	(void) mask_redact_pii(t->s, t->len, PII_ALL, NULL);
}

static const FuzzTiming timing[] = {
	{"pii_scan(all)", t_scan_all},
	{"pii_scan(email)", t_scan_email},
	{"pii_scan(card)", t_scan_card},
	{"pii_scan(iban)", t_scan_iban},
	{"pii_scan(phone)", t_scan_phone},
	{"pii_scan(ssn)", t_scan_ssn},
	{"pii_scan(ipv4)", t_scan_ipv4},
	{"pii_scan(ipv6)", t_scan_ipv6},
	{"pii_scan(credential)", t_scan_credential},
	{"mask_redact_pii(all)", t_redact_all},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzBytes	b = {data, size};
	FuzzText	t;
	int			kinds;
	int			flags;

	if (fuzz_timing_mode())
	{
		fuzz_timing("pii", timing, lengthof(timing), data, size);
		return 0;
	}
	kinds = fb_byte(&b);
	flags = fb_byte(&b);
	fuzz_text(&t, b.p, b.n);
	run(kinds, flags, &t);
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
