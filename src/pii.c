/*-------------------------------------------------------------------------
 *
 * pii.c
 *	  Detection of personal data and credentials in free text, in one pass,
 *	  in C: email addresses, card numbers (Luhn-checked), IBANs (mod-97
 *	  checked), phone numbers, US social security numbers, IPv4 and IPv6
 *	  addresses, and common API-key/secret shapes.  Used by the no_pii rule,
 *	  the redact_pii mask and stage.scan_pii.
 *
 * pii_scan walks the text once, left to right.  At each position that can
 * start a span (a word boundary, or the '@' of an email) it tries the
 * detectors that fit the character there; each looks ahead a bounded
 * distance (an IBAN, a key, an address) and validates what it found, so
 * the whole scan is linear in the text.  Spans never overlap: text inside
 * a reported span is not scanned again.  A span is reported only when its
 * validator accepts it, so "order 1234-5678", "a@b" or a random 16-digit
 * number are not PII.
 *
 * What is deliberately not detected (too ambiguous in free text): phone
 * numbers without a leading '+' other than North-American groupings,
 * social security numbers without hyphens, names and street addresses.
 *
 * pii_scan reports byte offsets into the text it is given and never
 * allocates or raises: callers decide what to do with the spans.
 *
 * Touches nothing while scanning; pii_kinds_arg reads a jsonb argument
 * and raises on a bad one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"

#include <arpa/inet.h>

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "format.h"
#include "jsonarg.h"
#include "pii.h"

/* ----------------------------------------------------------------
 *		character classes (ASCII; bytes >= 0x80 are never word characters,
 *		so PII glued to non-Latin text, as in CJK, is still found)
 * ---------------------------------------------------------------- */

static inline bool
pii_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
pii_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static inline bool
pii_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || pii_upper(c);
}

static inline bool
pii_alnum(unsigned char c)
{
	return pii_alpha(c) || pii_digit(c);
}

static inline bool
pii_hex(unsigned char c)
{
	return pii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* a character of a base64url token (keys, JWTs) */
static inline bool
pii_b64url(unsigned char c)
{
	return pii_alnum(c) || c == '_' || c == '-';
}

/* may c stand in the local part of an email address? */
static bool
pii_local_char(unsigned char c)
{
	return pii_alnum(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~.-", c);
}

/* may c stand in the domain of an email address? */
static bool
pii_domain_char(unsigned char c)
{
	return pii_alnum(c) || c >= 0x80 || c == '.' || c == '-';
}

/* does a span start at i: not glued to a letter, digit or underscore? */
static inline bool
pii_starts_word(const char *s, int i)
{
	return i == 0 || !(pii_alnum(s[i - 1]) || s[i - 1] == '_');
}

/* does a span end at e: not glued to a letter, digit or underscore? */
static inline bool
pii_ends_word(const char *s, int len, int e)
{
	return e >= len || !(pii_alnum(s[e]) || s[e] == '_');
}

/* is s[i..) the string lit? */
static inline bool
pii_at(const char *s, int len, int i, const char *lit)
{
	int			n = strlen(lit);

	return i + n <= len && memcmp(s + i, lit, n) == 0;
}

/* ----------------------------------------------------------------
 *		detectors: each returns the end of its span, or -1
 * ---------------------------------------------------------------- */

/* the email around the '@' at position at, or false */
static bool
pii_email_at(const char *s, int len, int at, int *start, int *end)
{
	int			b = at;
	int			e = at + 1;

	while (b > 0 && pii_local_char(s[b - 1]))
	{
		CHECK_FOR_INTERRUPTS();
		b--;
	}
	while (b < at && s[b] == '.')
		b++;
	while (e < len && pii_domain_char(s[e]))
	{
		CHECK_FOR_INTERRUPTS();
		e++;
	}
	while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
		e--;
	if (!email_valid(s + b, e - b))
		return false;
	*start = b;
	*end = e;
	return true;
}

/*
 * A card number: 13..19 digits, single spaces or hyphens allowed between
 * digits, Luhn-valid.
 */
static int
pii_card(const char *s, int len, int i)
{
	int			digits = 0;
	int			j = i;
	int			end = i;

	while (j < len)
	{
		if (pii_digit(s[j]))
		{
			if (++digits > 19)
				return -1;
			end = ++j;
		}
		else if ((s[j] == ' ' || s[j] == '-') && j + 1 < len && pii_digit(s[j + 1]))
			j++;
		else
			break;
	}
	if (digits < 13 || !pii_ends_word(s, len, end) || !luhn_valid(s + i, end - i))
		return -1;
	return end;
}

/* exactly n digits at i? */
static bool
pii_digits(const char *s, int len, int i, int n)
{
	int			k;

	if (i + n > len)
		return false;
	for (k = 0; k < n; k++)
		if (!pii_digit(s[i + k]))
			return false;
	return true;
}

/* the number the n digits at s[i] write */
static int
pii_num(const char *s, int i, int n)
{
	int			v = 0;
	int			k;

	for (k = 0; k < n; k++)
		v = v * 10 + (s[i + k] - '0');
	return v;
}

/*
 * US SSN, AAA-GG-SSSS: area not 000, 666 or 9xx, group not 00, serial not
 * 0000 (numbers the SSA never issues).
 */
static int
pii_ssn(const char *s, int len, int i)
{
	int			area;

	if (!(pii_digits(s, len, i, 3) && i + 3 < len && s[i + 3] == '-' &&
		  pii_digits(s, len, i + 4, 2) && i + 6 < len && s[i + 6] == '-' &&
		  pii_digits(s, len, i + 7, 4)))
		return -1;
	if (!pii_ends_word(s, len, i + 11) || (i + 11 < len && s[i + 11] == '-'))
		return -1;
	area = pii_num(s, i, 3);
	if (area == 0 || area == 666 || area >= 900 || pii_num(s, i + 4, 2) == 0 ||
		pii_num(s, i + 7, 4) == 0)
		return -1;
	return i + 11;
}

/*
 * A phone number.  International: '+', a country code starting 1..9, 8 to
 * 15 digits in all, separated by single spaces, hyphens, dots or
 * parentheses.  North American: (AAA) BBB-CCCC, AAA-BBB-CCCC, AAA.BBB.CCCC
 * or AAA BBB CCCC.  Plain runs of digits are not phone numbers here.
 */
static int
pii_phone(const char *s, int len, int i)
{
	if (s[i] == '+')
	{
		int			j = i + 1;
		int			digits = 0;
		int			end = -1;

		if (j >= len || s[j] < '1' || s[j] > '9')
			return -1;
		while (j < len)
		{
			if (pii_digit(s[j]))
			{
				if (++digits > 15)
					return -1;
				end = ++j;
			}
			else if (strchr(" -.()", s[j]) && s[j] != '\0' && j + 1 < len &&
					 (pii_digit(s[j + 1]) || s[j + 1] == '('))
				j++;
			else if (s[j] == ')' && j + 1 < len && s[j + 1] == ' ')
				j++;
			else
				break;
		}
		if (digits < 8 || end < 0 || !pii_ends_word(s, len, end))
			return -1;
		return end;
	}
	if (s[i] == '(')
	{
		int			j = i + 5;

		/* (AAA) BBB-CCCC or (AAA)BBB-CCCC */
		if (!(pii_digits(s, len, i + 1, 3) && i + 4 < len && s[i + 4] == ')'))
			return -1;
		if (j < len && s[j] == ' ')
			j++;
		if (!(pii_digits(s, len, j, 3) && j + 3 < len && strchr("-. ", s[j + 3]) &&
			  s[j + 3] != '\0' && pii_digits(s, len, j + 4, 4)))
			return -1;
		if (!pii_ends_word(s, len, j + 8))
			return -1;
		return j + 8;
	}
	/* AAA-BBB-CCCC with one separator used twice */
	if (pii_digits(s, len, i, 3) && i + 3 < len && strchr("-. ", s[i + 3]) &&
		s[i + 3] != '\0' && pii_digits(s, len, i + 4, 3) && i + 7 < len &&
		s[i + 7] == s[i + 3] && pii_digits(s, len, i + 8, 4) &&
		pii_ends_word(s, len, i + 12) &&
		!(i + 13 < len && strchr(" -.", s[i + 12]) && pii_digit(s[i + 13])))
		return i + 12;
	return -1;
}

/* dotted quad, each part 0..255 without leading zeros */
static int
pii_ipv4(const char *s, int len, int i)
{
	int			j = i;
	int			part;

	for (part = 0; part < 4; part++)
	{
		int			n = 0;
		int			v = 0;

		if (part > 0)
		{
			if (j >= len || s[j] != '.')
				return -1;
			j++;
		}
		while (j < len && pii_digit(s[j]) && n < 4)
		{
			v = v * 10 + (s[j] - '0');
			n++;
			j++;
		}
		if (n == 0 || n > 3 || v > 255 || (n > 1 && s[j - n] == '0'))
			return -1;
	}
	/* not part of a longer dotted sequence (a version number, an OID) */
	if (!pii_ends_word(s, len, j) || (j + 1 < len && s[j] == '.' && pii_digit(s[j + 1])))
		return -1;
	return j;
}

/*
 * IPv6: the longest run of hex digits, colons and dots (an embedded IPv4)
 * that inet_pton accepts, with at least two colons and one hex digit.
 */
static int
pii_ipv6(const char *s, int len, int i)
{
	char		buf[48];
	unsigned char addr[16];
	int			j = i;
	int			colons = 0;
	int			hex = 0;

	while (j < len && j - i < 45 && (pii_hex(s[j]) || s[j] == ':' || s[j] == '.'))
	{
		if (s[j] == ':')
			colons++;
		else if (s[j] != '.')
			hex++;
		j++;
	}
	if (colons < 2 || hex == 0)
		return -1;
	/* trailing punctuation of the sentence is not part of the address */
	while (j > i)
	{
		if (pii_ends_word(s, len, j))
		{
			memcpy(buf, s + i, j - i);
			buf[j - i] = '\0';
			if (inet_pton(AF_INET6, buf, addr) == 1)
				return j;
		}
		if (s[j - 1] != ':' && s[j - 1] != '.')
			break;
		j--;
	}
	return -1;
}

/*
 * ISO 13616 IBAN: two letters, two check digits, then letters and digits,
 * optionally in groups separated by single spaces, 15..34 characters in
 * all, mod-97 valid.  The longest valid prefix (at a group boundary) wins.
 */
static int
pii_iban(const char *s, int len, int i)
{
	int			ends[40];
	int			nends = 0;
	int			j = i + 4;
	int			chars = 4;

	if (!(i + 4 <= len && pii_upper(s[i]) && pii_upper(s[i + 1]) &&
		  pii_digit(s[i + 2]) && pii_digit(s[i + 3])))
		return -1;
	while (j < len && chars < 34)
	{
		if (pii_upper(s[j]) || pii_digit(s[j]))
		{
			chars++;
			j++;
			if (j >= len || !(pii_upper(s[j]) || pii_digit(s[j])))
				ends[nends++] = j;
		}
		else if (s[j] == ' ' && j + 1 < len && (pii_upper(s[j + 1]) || pii_digit(s[j + 1])))
			j++;
		else
			break;
	}
	if (nends == 0 || ends[nends - 1] != j)
		ends[nends++] = j;
	while (nends > 0)
	{
		int			e = ends[--nends];

		if (pii_ends_word(s, len, e) && iban_valid(s + i, e - i))
			return e;
	}
	return -1;
}

/*
 * min to max characters of class fn from j; the end, or -1 (also when the
 * run goes on beyond max: no token of that shape is that long).  The cap
 * keeps a scan linear: a token start inside a long run of key characters
 * would otherwise read to the end of the run, at every start.
 */
static int
pii_run_max(const char *s, int len, int j, int min, int max, bool (*fn) (unsigned char))
{
	int			start = j;

	while (j < len && fn(s[j]))
	{
		CHECK_FOR_INTERRUPTS();
		if (j - start >= max)
			return -1;
		j++;
	}
	return (j - start >= min) ? j : -1;
}

/* the longest credential of a fixed-width family we look for */
#define PII_KEY_MAX 255

/* pii_run_max with the longest credential as max */
static int
pii_run(const char *s, int len, int j, int min, bool (*fn) (unsigned char))
{
	return pii_run_max(s, len, j, min, PII_KEY_MAX, fn);
}

/* A-Z or 0-9: the characters of an AWS access key id */
static bool
pii_key_char(unsigned char c)
{
	return pii_upper(c) || pii_digit(c);
}

/* pii_alnum, as a function pointer for pii_run */
static bool
pii_alnum_fn(unsigned char c)
{
	return pii_alnum(c);
}

/* a letter, digit or underscore */
static bool
pii_alnum_us(unsigned char c)
{
	return pii_alnum(c) || c == '_';
}

/* pii_b64url, as a function pointer for pii_run */
static bool
pii_b64url_fn(unsigned char c)
{
	return pii_b64url(c);
}

/* a letter, digit or hyphen: the body of a Slack token */
static bool
pii_slack_char(unsigned char c)
{
	return pii_alnum(c) || c == '-';
}

/*
 * Credentials with a recognisable shape: AWS access key ids, Google API
 * keys, GitHub, Slack and Stripe tokens, JSON Web Tokens and PEM private
 * key blocks.
 */
static int
pii_credential(const char *s, int len, int i, int *jwt_dead)
{
	static const char *const aws[] = {"AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA",
	"AROA", "AIPA", "ANPA", "ANVA", "APKA", NULL};
	static const char *const github[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", NULL};
	static const char *const stripe[] = {"sk_live_", "sk_test_", "rk_live_", "rk_test_", NULL};
	const char *const *p;
	int			e;

	switch (s[i])
	{
		case 'A':
			for (p = aws; *p; p++)
				if (pii_at(s, len, i, *p))
				{
					e = pii_run_max(s, len, i + 4, 16, 16, pii_key_char);
					if (e == i + 20 && pii_ends_word(s, len, e))
						return e;
				}
			if (pii_at(s, len, i, "AIza"))
			{
				e = pii_run_max(s, len, i + 4, 35, 35, pii_b64url_fn);
				if (e > 0 && e == i + 39)
					return e;
			}
			break;
		case 'g':
			for (p = github; *p; p++)
				if (pii_at(s, len, i, *p))
				{
					e = pii_run(s, len, i + 4, 36, pii_alnum_fn);
					if (e > 0 && pii_ends_word(s, len, e))
						return e;
				}
			if (pii_at(s, len, i, "github_pat_"))
			{
				e = pii_run(s, len, i + 11, 22, pii_alnum_us);
				if (e > 0)
					return e;
			}
			break;
		case 'x':
			if (pii_at(s, len, i, "xox") && i + 4 < len && strchr("abprs", s[i + 3]) &&
				s[i + 3] != '\0' && s[i + 4] == '-')
			{
				e = pii_run(s, len, i + 5, 10, pii_slack_char);
				if (e > 0 && pii_ends_word(s, len, e))
					return e;
			}
			break;
		case 's':
		case 'r':
			for (p = stripe; *p; p++)
				if (pii_at(s, len, i, *p))
				{
					e = pii_run(s, len, i + 8, 16, pii_alnum_fn);
					if (e > 0 && pii_ends_word(s, len, e))
						return e;
				}
			break;
		case 'e':
			/*
			 * header.payload.signature, the first two base64url JSON
			 * objects.  Parts have no fixed length; a start inside a run
			 * that already failed from an earlier start ends the same
			 * way, so *jwt_dead (the end of that run) skips it.
			 */
			if (i >= *jwt_dead && pii_at(s, len, i, "eyJ"))
			{
				int			h = pii_run_max(s, len, i, 10, INT_MAX, pii_b64url_fn);

				e = h;
				if (e < 0 || e >= len || s[e] != '.' || !pii_at(s, len, e + 1, "eyJ"))
				{
					*jwt_dead = h > 0 ? h : i;
					break;
				}
				e = pii_run_max(s, len, e + 1, 4, INT_MAX, pii_b64url_fn);
				if (e < 0 || e >= len || s[e] != '.')
				{
					*jwt_dead = h;
					break;
				}
				e++;
				while (e < len && pii_b64url(s[e]))
				{
					CHECK_FOR_INTERRUPTS();
					e++;
				}
				if (e < len && s[e] == '.')
				{
					*jwt_dead = h;
					break;
				}
				return e;
			}
			break;
		case '-':
			/* -----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE KEY----- ... END ...----- */
			if (pii_at(s, len, i, "-----BEGIN "))
			{
				int			j = i + 11;
				const char *end;

				while (j < len && j - i < 40 && (pii_upper(s[j]) || s[j] == ' '))
					j++;
				if (j - 11 < i + 11 || !pii_at(s, len, j - 11, "PRIVATE KEY") ||
					!pii_at(s, len, j, "-----"))
					break;
				/* to the end of the matching END line, or of the text */
				end = NULL;
				for (e = j + 5; e + 9 <= len; e++)
					if (s[e] == '-' && pii_at(s, len, e, "-----END "))
					{
						end = s + e;
						break;
					}
				if (end == NULL)
					return len;
				e += 9;
				while (e < len && (pii_upper(s[e]) || s[e] == ' '))
					e++;
				if (pii_at(s, len, e, "-----"))
					e += 5;
				return e;
			}
			break;
	}
	return -1;
}

/* ----------------------------------------------------------------
 *		the scan
 * ---------------------------------------------------------------- */

/*
 * Try the detectors that can start at i (a word boundary); returns the end
 * of the first hit and its kind, or -1.  Order matters where shapes meet:
 * a card before a phone, an SSN before an IPv4.
 */
static int
pii_detect(const char *s, int len, int i, int kinds, int *kind, int *jwt_dead)
{
	unsigned char c = s[i];
	int			e;

	if (pii_digit(c))
	{
		/* the rest of a dotted or hyphenated number is not a new start */
		if (i >= 2 && (s[i - 1] == '.' || s[i - 1] == '-') && pii_digit(s[i - 2]))
			return -1;
		if ((kinds & PII_CARD) && (e = pii_card(s, len, i)) > 0)
			return (*kind = PII_CARD), e;
		if ((kinds & PII_SSN) && (e = pii_ssn(s, len, i)) > 0)
			return (*kind = PII_SSN), e;
		if ((kinds & PII_PHONE) && (e = pii_phone(s, len, i)) > 0)
			return (*kind = PII_PHONE), e;
		if ((kinds & PII_IPV4) && (e = pii_ipv4(s, len, i)) > 0)
			return (*kind = PII_IPV4), e;
	}
	else if (c == '+' || c == '(')
	{
		if ((kinds & PII_PHONE) && (e = pii_phone(s, len, i)) > 0)
			return (*kind = PII_PHONE), e;
		return -1;
	}
	if (pii_upper(c) && (kinds & PII_IBAN) && (e = pii_iban(s, len, i)) > 0)
		return (*kind = PII_IBAN), e;
	if ((kinds & PII_CREDENTIAL) && strchr("Agxsre-", c) && c != '\0' &&
		(e = pii_credential(s, len, i, jwt_dead)) > 0)
		return (*kind = PII_CREDENTIAL), e;
	if ((kinds & PII_IPV6) && (pii_hex(c) || c == ':') &&
		(i == 0 || (s[i - 1] != ':' && s[i - 1] != '.')) &&
		(e = pii_ipv6(s, len, i)) > 0)
		return (*kind = PII_IPV6), e;
	return -1;
}

/*
 * Find PII of the given kinds in s; store up to maxhits spans in order of
 * their start and return how many were found (which may exceed maxhits).
 */
int
pii_scan(const char *s, int len, int kinds, PiiHit *hits, int maxhits)
{
	int			n = 0;
	int			i = 0;
	int			covered = 0;	/* bytes before this are inside a reported span */
	int			jwt_dead = 0;	/* no token starts before this (pii_credential) */

	while (i < len)
	{
		int			start = i;
		int			end = -1;
		int			kind = 0;
		unsigned char c = s[i];

		CHECK_FOR_INTERRUPTS();
		if (c == '@')
		{
			if ((kinds & PII_EMAIL) && pii_email_at(s, len, i, &start, &end) &&
				start >= covered)
				kind = PII_EMAIL;
			else
				end = -1;
		}
		else if (c < 0x80 && c != ' ' && pii_starts_word(s, i) &&
				 (end = pii_detect(s, len, i, kinds, &kind, &jwt_dead)) > 0)
		{
			int			es;
			int			ee;

			int			at = end;

			/*
			 * A number or key inside the local part of an email is the
			 * email: 123-45-6789.john@example.com is not an SSN followed
			 * by an address-shaped rest.  A local part has at most 64
			 * characters, so the look-ahead is bounded.
			 */
			while (at < len && at - i <= 64 && s[at] != '@' && pii_local_char(s[at]))
				at++;
			if (at < len && s[at] == '@' && (kinds & PII_EMAIL) &&
				pii_email_at(s, len, at, &es, &ee) && es <= i && es >= covered)
			{
				start = es;
				end = ee;
				kind = PII_EMAIL;
			}
		}
		if (end > 0 && kind != 0)
		{
			if (n < maxhits)
			{
				hits[n].kind = kind;
				hits[n].start = start;
				hits[n].len = end - start;
			}
			n++;
			covered = i = end;
			continue;
		}
		i += (c < 0x80) ? 1 : pg_mblen(s + i);
	}
	return n;
}

static const struct
{
	const char *name;
	int			kind;
}			pii_kinds[] =
{
	{"email", PII_EMAIL},
	{"card", PII_CARD},
	{"iban", PII_IBAN},
	{"phone", PII_PHONE},
	{"ssn", PII_SSN},
	{"ipv4", PII_IPV4},
	{"ipv6", PII_IPV6},
	{"credential", PII_CREDENTIAL},
	/* groups */
	{"ip", PII_IPV4 | PII_IPV6},
	{"all", PII_ALL}
};

/* the name of one PII_* bit, as scan results and "[kind]" show it */
const char *
pii_kind_name(int kind)
{
	int			i;

	for (i = 0; i < lengthof(pii_kinds); i++)
		if (pii_kinds[i].kind == kind)
			return pii_kinds[i].name;
	return "unknown";
}

/* the PII_* bits a kind name stands for, 0 if unknown */
static int
pii_kind_lookup(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(pii_kinds); i++)
		if (strcmp(pii_kinds[i].name, name) == 0)
			return pii_kinds[i].kind;
	return 0;
}

/* for hints: the valid kind names */
const char *
pii_kind_list(void)
{
	return "email, card, iban, phone, ssn, ipv4, ipv6, credential, ip (ipv4 and ipv6) and all";
}

/*
 * The PII_* bits of the "kinds" argument of what ("rule no_pii", "mask
 * redact_pii"): an array of kind names; absent or empty, every kind.
 */
int
pii_kinds_arg(Jsonb *args, const char *what)
{
	JsonbValue	v;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	e;
	int			kinds = 0;

	if (!json_get(args, "kinds", &v))
		return PII_ALL;
	if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"kinds\" of %s must be an array", what),
				 errhint("List PII kinds, e.g. {\"kinds\": [\"email\", \"phone\"]}; kinds are %s.",
						 pii_kind_list())));
	it = JsonbIteratorInit(v.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		char	   *k;
		int			bit;

		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"kinds\" of %s must hold strings", what),
					 errhint("Kinds are %s.", pii_kind_list())));
		k = pnstrdup(e.val.string.val, e.val.string.len);
		bit = pii_kind_lookup(k);
		if (bit == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown PII kind \"%s\" in %s", k, what),
					 errhint("Kinds are %s.", pii_kind_list())));
		kinds |= bit;
	}
	return kinds == 0 ? PII_ALL : kinds;
}

/*
 * stage.scan_pii(text) RETURNS TABLE(kind text, start int, length int):
 * the PII spans of a text; start is 1-based and both count characters.
 */
PG_FUNCTION_INFO_V1(stage_scan_pii);
Datum
stage_scan_pii(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			n;
	PiiHit	   *hits;
	int			i;
	int			pos = 0;		/* byte offset of the last hit's start */
	int			chars = 0;		/* characters before pos */

	InitMaterializedSRF(fcinfo, 0);
	n = pii_scan(s, len, PII_ALL, NULL, 0);
	hits = palloc(sizeof(PiiHit) * Max(n, 1));
	n = pii_scan(s, len, PII_ALL, hits, n);
	for (i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		/* count characters incrementally: hits are in order */
		chars += pg_mbstrlen_with_len(s + pos, hits[i].start - pos);
		pos = hits[i].start;
		values[0] = CStringGetTextDatum(pii_kind_name(hits[i].kind));
		values[1] = Int32GetDatum(chars + 1);
		values[2] = Int32GetDatum(pg_mbstrlen_with_len(s + hits[i].start, hits[i].len));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
