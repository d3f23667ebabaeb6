/*-------------------------------------------------------------------------
 *
 * fuzz_format.c
 *	  libFuzzer harness of the format validators (src/format.c):
 *	  format_valid for every FormatKind, iban_valid, email_valid.
 *
 * Input: text... (no control bytes: every validator runs on every input)
 *
 * Checked beyond the sanitizers:
 *	  - the validators allocate nothing;
 *	  - format_valid(email|card|iban) agree with email_valid, luhn_valid,
 *		iban_valid;
 *	  - uuid and iso_date agree with the type pre-checks tc_precheck(uuid,
 *		date), and an iso_timestamp passes tc_precheck(timestamp): a value
 *		the format rule accepts must be one the typed column accepts;
 *	  - what each validator accepts has the documented shape (e164: '+',
 *		non-zero digit, 2..16 characters; email: one '@', at most 254
 *		bytes, a local part of 1..64; iban: 15..34 letters and digits
 *		after removing spaces; ipv4/ipv6: inet_pton accepts it).
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

#include <arpa/inet.h>

static const FormatKind kinds[] = {
	FMT_EMAIL, FMT_UUID, FMT_E164, FMT_CARD, FMT_IBAN, FMT_IPV4, FMT_IPV6,
	FMT_ISO_DATE, FMT_ISO_TIMESTAMP, FMT_URL
};

static void
check_email_shape(const char *s, int len)
{
	int			ats = 0;
	int			at = -1;
	int			i;

	for (i = 0; i < len; i++)
		if (s[i] == '@')
		{
			ats++;
			at = i;
		}
	FUZZ_CHECK("email-shape", ats == 1 && at >= 1 && at <= 64 && len <= 254 &&
			   s[len - 1] != '.' && s[at + 1] != '.' && s[0] != '.' && s[at - 1] != '.',
			   "email_valid accepted %s", fuzz_show(s, len));
}

static void
check_iban_shape(const char *s, int len)
{
	int			n = 0;
	int			i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ')
		{
			FUZZ_CHECK("iban-shape", (s[i] >= '0' && s[i] <= '9') ||
					   (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'),
					   "iban_valid accepted %s", fuzz_show(s, len));
			n++;
		}
	FUZZ_CHECK("iban-shape", n >= 15 && n <= 34, "iban_valid accepted %s (%d characters)",
			   fuzz_show(s, len), n);
}

static bool
inet_ok(int af, const char *s, int len)
{
	char	   *buf = malloc(len + 1);
	unsigned char addr[16];
	bool		ok;

	memcpy(buf, s, len);
	buf[len] = '\0';
	ok = inet_pton(af, buf, addr) == 1;
	free(buf);
	return ok;
}

static void
run(const FuzzText *t)
{
	const char *s = t->s;
	int			len = t->len;
	bool		r[lengthof(kinds)];
	uint64		calls = fuzz_alloc_calls;
	int			i;

	for (i = 0; i < lengthof(kinds); i++)
		r[i] = format_valid(kinds[i], s, len);
	FUZZ_CHECK("format-no-alloc", fuzz_alloc_calls == calls,
			   "a format validator allocated memory");

	FUZZ_CHECK("format-email", r[FMT_EMAIL] == email_valid(s, len),
			   "format_valid(email) != email_valid for %s", fuzz_show(s, len));
	FUZZ_CHECK("format-card", r[FMT_CARD] == luhn_valid(s, len),
			   "format_valid(card) != luhn_valid for %s", fuzz_show(s, len));
	FUZZ_CHECK("format-iban", r[FMT_IBAN] == iban_valid(s, len),
			   "format_valid(iban) != iban_valid for %s", fuzz_show(s, len));

	if (r[FMT_EMAIL])
		check_email_shape(s, len);
	if (r[FMT_IBAN])
		check_iban_shape(s, len);
	if (r[FMT_E164])
		FUZZ_CHECK("e164-shape", len >= 3 && len <= 16 && s[0] == '+' && s[1] >= '1' &&
				   s[1] <= '9' && strspn(t->cstr + 1, "0123456789") == (size_t) len - 1,
				   "e164 accepted %s", fuzz_show(s, len));
	if (r[FMT_IPV4])
		FUZZ_CHECK("ipv4-inet", inet_ok(AF_INET, s, len), "ipv4 accepted %s", fuzz_show(s, len));
	if (r[FMT_IPV6])
		FUZZ_CHECK("ipv6-inet", inet_ok(AF_INET6, s, len), "ipv6 accepted %s", fuzz_show(s, len));

	/* a format the rule accepts is a value the typed column accepts */
	FUZZ_CHECK("uuid-vs-typecheck", r[FMT_UUID] == tc_precheck(TC_UUID, -1, t->cstr),
			   "format uuid says %d, tc_precheck(uuid) the opposite, for %s",
			   r[FMT_UUID], fuzz_show(s, len));
	FUZZ_CHECK("date-vs-typecheck", r[FMT_ISO_DATE] == tc_precheck(TC_DATE, -1, t->cstr),
			   "format iso_date says %d, tc_precheck(date) the opposite, for %s",
			   r[FMT_ISO_DATE], fuzz_show(s, len));
	if (r[FMT_ISO_TIMESTAMP])
		FUZZ_CHECK("timestamp-vs-typecheck", tc_precheck(TC_TIMESTAMP, -1, t->cstr),
				   "format iso_timestamp accepts %s, tc_precheck(timestamp) does not",
				   fuzz_show(s, len));
	if (r[FMT_URL])
	{
		/* "no spaces or control characters anywhere" (format.c) */
		for (i = 0; i < len; i++)
			FUZZ_CHECK("url-shape", (unsigned char) s[i] > ' ' && s[i] != 0x7f,
					   "url accepted %s with byte 0x%02x at %d", fuzz_show(s, len),
					   (unsigned char) s[i], i);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

#define FMT_CASE(fname, kind) \
	static void fname(const FuzzText *t) { (void) format_valid(kind, t->s, t->len); }
FMT_CASE(t_email, FMT_EMAIL)
FMT_CASE(t_uuid, FMT_UUID)
FMT_CASE(t_e164, FMT_E164)
FMT_CASE(t_card, FMT_CARD)
FMT_CASE(t_iban, FMT_IBAN)
FMT_CASE(t_ipv4, FMT_IPV4)
FMT_CASE(t_ipv6, FMT_IPV6)
FMT_CASE(t_date, FMT_ISO_DATE)
FMT_CASE(t_timestamp, FMT_ISO_TIMESTAMP)
FMT_CASE(t_url, FMT_URL)

static const FuzzTiming timing[] = {
	{"format_valid(email)", t_email},
	{"format_valid(uuid)", t_uuid},
	{"format_valid(e164)", t_e164},
	{"format_valid(card)", t_card},
	{"format_valid(iban)", t_iban},
	{"format_valid(ipv4)", t_ipv4},
	{"format_valid(ipv6)", t_ipv6},
	{"format_valid(iso_date)", t_date},
	{"format_valid(iso_timestamp)", t_timestamp},
	{"format_valid(url)", t_url},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzText	t;

	if (fuzz_timing_mode())
	{
		fuzz_timing("format", timing, lengthof(timing), data, size);
		return 0;
	}
	fuzz_text(&t, data, size);
	run(&t);
	fuzz_text_free(&t);
	fuzz_reset();
	return 0;
}
