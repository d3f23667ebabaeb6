/*-------------------------------------------------------------------------
 *
 * pii.h
 *	  PII detection in free text, in one pass, and the list of PII kinds
 *	  the no_pii rule and the redact_pii mask take (see pii.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_PII_H
#define STAGE_PII_H

#include "postgres.h"

#include "utils/jsonb.h"

#define PII_EMAIL		0x01
#define PII_CARD		0x02	/* Luhn-checked */
#define PII_IBAN		0x04	/* mod-97 checked */
#define PII_PHONE		0x08
#define PII_SSN			0x10	/* US social security number */
#define PII_IPV4		0x20
#define PII_IPV6		0x40
#define PII_CREDENTIAL	0x80	/* API keys, tokens, private keys */
#define PII_ALL			0xFF

typedef struct PiiHit
{
	int			kind;			/* one PII_* bit */
	int			start;			/* byte offset */
	int			len;			/* bytes */
} PiiHit;

extern int	pii_scan(const char *s, int len, int kinds, PiiHit *hits, int maxhits);
extern const char *pii_kind_name(int kind);
extern const char *pii_kind_list(void);
extern int	pii_kinds_arg(Jsonb *args, const char *what);

#endif							/* STAGE_PII_H */
