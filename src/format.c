/*-------------------------------------------------------------------------
 *
 * format.c
 *	  Validators behind the "format" rule kind and stage.is_email,
 *	  stage.iban_valid, stage.luhn_valid: email, uuid, e164, card (Luhn),
 *	  iban (mod 97), ipv4, ipv6, iso_date, iso_timestamp, url.  PII
 *	  detection (pii.c) validates what it finds with the same checks.
 *
 * Each validator is a pure function of the bytes it is given: no
 * allocation, no catalog access, safe on any input (the mover calls them
 * on raw landing text).  They check shape and checksums, not existence:
 * an email can be well formed and undeliverable.
 *
 * Touches nothing: no catalog, no allocation (but the SQL wrappers'
 * results).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include <arpa/inet.h>

#include "fmgr.h"

#include "format.h"
#include "typecheck.h"

static const char *const format_names[] = {
	"email", "uuid", "e164", "card", "iban", "ipv4", "ipv6", "iso_date",
	"iso_timestamp", "url"
};

/* the format named by a format rule; false if there is none of that name */
bool
format_lookup(const char *name, FormatKind *kind)
{
	int			i;

	for (i = 0; i < lengthof(format_names); i++)
		if (strcmp(name, format_names[i]) == 0)
		{
			*kind = (FormatKind) i;
			return true;
		}
	return false;
}

/* the name of a format, as reasons show it */
const char *
format_name(FormatKind kind)
{
	return format_names[kind];
}

static bool
fmt_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
fmt_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
fmt_alnum(unsigned char c)
{
	return fmt_alpha(c) || fmt_digit(c);
}

/*
 * local@domain: a local part of 1..64 atom characters and single dots; a
 * domain of two or more labels of letters, digits and inner hyphens, each
 * at most 63 long, the last one alphabetic and at least two long.  Bytes
 * above 0x7f count as letters (internationalized addresses).
 */
bool
email_valid(const char *s, int len)
{
	int			at = -1;
	int			i;
	int			label = 0;
	int			labels = 0;
	bool		tld_alpha = true;

	if (len > 254)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] == '@')
		{
			if (at >= 0)
				return false;
			at = i;
		}
	if (at < 1 || at > 64 || at >= len - 3)
		return false;
	for (i = 0; i < at; i++)
	{
		unsigned char c = s[i];

		if (c == '.')
		{
			if (i == 0 || i == at - 1 || s[i - 1] == '.')
				return false;
		}
		else if (!(fmt_alnum(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~-", c)))
			return false;
	}
	for (i = at + 1; i <= len; i++)
	{
		unsigned char c = (i < len) ? s[i] : '.';

		if (c == '.')
		{
			if (label == 0 || s[i - 1] == '-' || label > 63)
				return false;
			labels++;
			if (i == len)
				return labels >= 2 && tld_alpha && label >= 2;
			label = 0;
			tld_alpha = true;
		}
		else if (fmt_alnum(c) || c >= 0x80 || (c == '-' && label > 0))
		{
			label++;
			if (!(fmt_alpha(c) || c >= 0x80))
				tld_alpha = false;
		}
		else
			return false;
	}
	return false;
}

/* 8-4-4-4-12 hex digits, either case */
static bool
fmt_uuid(const char *s, int len)
{
	int			i;

	if (len != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!(fmt_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') ||
				   (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return true;
}

/* +, a non-zero digit, 1..14 more digits */
static bool
fmt_e164(const char *s, int len)
{
	int			i;

	if (len < 3 || len > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (i = 2; i < len; i++)
		if (!fmt_digit(s[i]))
			return false;
	return true;
}

/*
 * ISO 13616: two letters, two check digits, 11..30 letters or digits
 * (spaces allowed between groups); the number with its first four
 * characters moved to the end, letters as 10..35, is 1 modulo 97.
 */
bool
iban_valid(const char *s, int len)
{
	char		buf[40];
	int			n = 0;
	int			i;
	int			rem = 0;

	for (i = 0; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] == ' ')
			continue;
		if (!fmt_alnum(s[i]) || n >= 34)
			return false;
		buf[n++] = s[i];
	}
	if (n < 15 || !fmt_alpha(buf[0]) || !fmt_alpha(buf[1]) ||
		!fmt_digit(buf[2]) || !fmt_digit(buf[3]))
		return false;
	for (i = 0; i < n; i++)
	{
		char		c = buf[(i + 4) % n];

		if (fmt_digit(c))
			rem = (rem * 10 + (c - '0')) % 97;
		else
		{
			int			v = (c >= 'a' ? c - 'a' : c - 'A') + 10;

			rem = (rem * 100 + v) % 97;
		}
	}
	return rem == 1;
}

/*
 * Luhn check over the digits of s; spaces and hyphens are allowed as
 * separators, anything else fails.  12 to 19 digits, as card numbers have.
 */
bool
luhn_valid(const char *s, int len)
{
	int			digits[32];
	int			n = 0;
	int			i;
	int			sum = 0;

	for (i = 0; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (s[i] >= '0' && s[i] <= '9')
		{
			if (n >= 32)
				return false;
			digits[n++] = s[i] - '0';
		}
		else if (s[i] != ' ' && s[i] != '-')
			return false;
	}
	if (n < 12 || n > 19)
		return false;
	for (i = 0; i < n; i++)
	{
		int			d = digits[n - 1 - i];

		if (i % 2 == 1)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return sum % 10 == 0;
}

/* an IPv4 (af AF_INET) or IPv6 (AF_INET6) address, as inet_pton reads it */
static bool
fmt_inet(int af, const char *s, int len)
{
	char		buf[64];
	unsigned char addr[16];

	if (len <= 0 || len >= (int) sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(af, buf, addr) == 1;
}

/* an ISO date, a T or a space, a time and a zone (tc_isotime, tc_isozone) */
static bool
fmt_iso_timestamp(const char *s, int len)
{
	char		buf[64];
	int			n;

	if (len >= (int) sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	n = tc_isodate(buf);
	if (n == 0 || (buf[n] != 'T' && buf[n] != ' '))
		return false;
	n++;
	len = tc_isotime(buf + n);
	if (len == 0)
		return false;
	return tc_isozone(buf + n + len);
}

/*
 * scheme://[userinfo@]host[:port][/path][?query][#fragment]: a scheme of
 * letters, digits, + . -; a host that is a name or [IPv6]; a port of
 * digits; no spaces or control characters anywhere.
 */
static bool
fmt_url(const char *s, int len)
{
	int			i = 0;
	int			auth;
	int			end;
	int			host;
	int			j;

	if (len == 0 || !fmt_alpha(s[0]))
		return false;
	while (i < len && (fmt_alnum(s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-'))
	{
		CHECK_FOR_INTERRUPTS();
		i++;
	}
	if (i + 3 > len || s[i] != ':' || s[i + 1] != '/' || s[i + 2] != '/')
		return false;
	auth = i + 3;
	for (end = auth; end < len && s[end] != '/' && s[end] != '?' && s[end] != '#'; end++)
		CHECK_FOR_INTERRUPTS();
	/* the host starts after the last '@' of the authority */
	host = auth;
	for (j = auth; j < end; j++)
	{
		CHECK_FOR_INTERRUPTS();
		if (s[j] == '@')
			host = j + 1;
	}
	/* user:password@ takes no spaces or control characters either */
	for (j = auth; j < host; j++)
		if ((unsigned char) s[j] <= ' ' || s[j] == 0x7f)
			return false;
	if (host < end && s[host] == '[')
	{
		/* [IPv6]:port */
		for (j = host + 1; j < end && s[j] != ']'; j++)
			if (!(fmt_alnum(s[j]) || s[j] == ':' || s[j] == '.'))
				return false;
		if (j >= end || j == host + 1)
			return false;
		j++;
	}
	else
	{
		for (j = host; j < end && s[j] != ':'; j++)
		{
			unsigned char c = s[j];

			CHECK_FOR_INTERRUPTS();
			if (!(fmt_alnum(c) || c >= 0x80 || c == '.' || c == '-' || c == '_' || c == '~' || c == '%'))
				return false;
		}
		if (j == host)
			return false;		/* no host */
	}
	if (j < end)
	{
		/* :port */
		if (s[j] != ':' || j + 1 == end)
			return false;
		for (j++; j < end; j++)
			if (!fmt_digit(s[j]))
				return false;
	}
	for (i = end; i < len; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if ((unsigned char) s[i] <= ' ' || s[i] == 0x7f)
			return false;
	}
	return true;
}

/* does s[0..len) have the format kind? */
bool
format_valid(FormatKind kind, const char *s, int len)
{
	switch (kind)
	{
		case FMT_EMAIL:
			return email_valid(s, len);
		case FMT_UUID:
			return fmt_uuid(s, len);
		case FMT_E164:
			return fmt_e164(s, len);
		case FMT_CARD:
			return luhn_valid(s, len);
		case FMT_IBAN:
			return iban_valid(s, len);
		case FMT_IPV4:
			return fmt_inet(AF_INET, s, len);
		case FMT_IPV6:
			return fmt_inet(AF_INET6, s, len);
		case FMT_ISO_DATE:
			{
				char		buf[16];

				if (len != 10)
					return false;
				memcpy(buf, s, 10);
				buf[10] = '\0';
				return tc_isodate(buf) == 10;
			}
		case FMT_ISO_TIMESTAMP:
			return fmt_iso_timestamp(s, len);
		case FMT_URL:
			return fmt_url(s, len);
	}
	return false;
}

/* stage.is_email(text) */
PG_FUNCTION_INFO_V1(stage_is_email);
Datum
stage_is_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(email_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/* stage.iban_valid(text) */
PG_FUNCTION_INFO_V1(stage_iban_valid);
Datum
stage_iban_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(iban_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/* stage.luhn_valid(text) */
PG_FUNCTION_INFO_V1(stage_luhn_valid);
Datum
stage_luhn_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(luhn_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}
