/*-------------------------------------------------------------------------
 *
 * format.h
 *	  Format checks of the "format" rule kind and their checksums (Luhn,
 *	  mod 97), shared with PII detection (see format.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_FORMAT_H
#define STAGE_FORMAT_H

#include "postgres.h"

typedef enum FormatKind
{
	FMT_EMAIL,
	FMT_UUID,
	FMT_E164,
	FMT_CARD,
	FMT_IBAN,
	FMT_IPV4,
	FMT_IPV6,
	FMT_ISO_DATE,
	FMT_ISO_TIMESTAMP,
	FMT_URL
} FormatKind;

extern bool format_lookup(const char *name, FormatKind *kind);
extern const char *format_name(FormatKind kind);
extern bool format_valid(FormatKind kind, const char *s, int len);
extern bool email_valid(const char *s, int len);
extern bool iban_valid(const char *s, int len);
extern bool luhn_valid(const char *s, int len);

#endif							/* STAGE_FORMAT_H */
