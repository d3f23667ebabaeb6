/*-------------------------------------------------------------------------
 *
 * pii.c
 *	  Detection of personal data in free text, in one pass, in C: email
 *	  addresses and card numbers (Luhn-checked).  Used by the no_pii rule.
 *
 * pii_scan reports spans as byte offsets into the text it is given and
 * never allocates; callers decide what to do with the spans (fail a rule,
 * redact).  A span is reported only when its validator accepts it, so
 * "order 1234-5678" or "a@b" are not PII.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "stage.h"

static bool
pii_local_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~.-", c);
}

static bool
pii_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c >= 0x80 || c == '.' || c == '-';
}

static bool
pii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* the email around the '@' at position at, or false */
static bool
pii_email_at(const char *s, int len, int at, int *start, int *end)
{
	int			b = at;
	int			e = at + 1;

	while (b > 0 && pii_local_char(s[b - 1]) && s[b - 1] != '\0')
		b--;
	while (b < at && s[b] == '.')
		b++;
	while (e < len && pii_domain_char(s[e]))
		e++;
	while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
		e--;
	if (!email_valid(s + b, e - b))
		return false;
	*start = b;
	*end = e;
	return true;
}

/*
 * A card number starting at i: 13..19 digits, single spaces or hyphens
 * allowed between digits, not glued to other letters or digits, Luhn-valid.
 */
static bool
pii_card_at(const char *s, int len, int i, int *end)
{
	int			digits = 0;
	int			j = i;
	int			last_digit_end = i;

	while (j < len)
	{
		if (s[j] >= '0' && s[j] <= '9')
		{
			digits++;
			j++;
			last_digit_end = j;
			if (digits > 19)
				return false;
		}
		else if ((s[j] == ' ' || s[j] == '-') && j + 1 < len &&
				 s[j + 1] >= '0' && s[j + 1] <= '9' && j > i)
			j++;
		else
			break;
	}
	if (digits < 13 || (last_digit_end < len && pii_alnum(s[last_digit_end])))
		return false;
	if (!luhn_valid(s + i, last_digit_end - i))
		return false;
	*end = last_digit_end;
	return true;
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

	while (i < len)
	{
		int			start;
		int			end;

		if ((kinds & PII_CARD) && s[i] >= '0' && s[i] <= '9' &&
			(i == 0 || !pii_alnum(s[i - 1])) && i >= covered &&
			pii_card_at(s, len, i, &end))
		{
			if (n < maxhits)
			{
				hits[n].kind = PII_CARD;
				hits[n].start = i;
				hits[n].len = end - i;
			}
			n++;
			covered = i = end;
			continue;
		}
		if ((kinds & PII_EMAIL) && s[i] == '@' &&
			pii_email_at(s, len, i, &start, &end) && start >= covered)
		{
			if (n < maxhits)
			{
				hits[n].kind = PII_EMAIL;
				hits[n].start = start;
				hits[n].len = end - start;
			}
			n++;
			covered = i = end;
			continue;
		}
		i++;
	}
	return n;
}

const char *
pii_kind_name(int kind)
{
	switch (kind)
	{
		case PII_EMAIL:
			return "email";
		case PII_CARD:
			return "card";
	}
	return "unknown";
}

int
pii_kind_lookup(const char *name)
{
	if (strcmp(name, "email") == 0)
		return PII_EMAIL;
	if (strcmp(name, "card") == 0)
		return PII_CARD;
	return 0;
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

	InitMaterializedSRF(fcinfo, 0);
	n = pii_scan(s, len, PII_ALL, NULL, 0);
	hits = palloc(sizeof(PiiHit) * Max(n, 1));
	n = pii_scan(s, len, PII_ALL, hits, n);
	for (i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(pii_kind_name(hits[i].kind));
		values[1] = Int32GetDatum(pg_mbstrlen_with_len(s, hits[i].start) + 1);
		values[2] = Int32GetDatum(pg_mbstrlen_with_len(s + hits[i].start, hits[i].len));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
