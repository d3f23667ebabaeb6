/*-------------------------------------------------------------------------
 *
 * mask.h
 *	  Masking primitives: one value in, its masked form out (see mask.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_MASK_H
#define STAGE_MASK_H

#include "postgres.h"

#include "regex.h"
#include "sha256.h"

/* generalize: the unit of a date/timestamp, or a numeric bucket */
typedef enum MaskUnit
{
	UNIT_NONE,
	UNIT_YEAR,
	UNIT_MONTH,
	UNIT_DAY,
	UNIT_HOUR
} MaskUnit;

/* the texts written for values a mask cannot read (never the value) */
#define MASK_NOT_A_NUMBER	"[not a number]"
#define MASK_NOT_A_DATE		"[not an ISO date]"
#define MASK_NO_TOKEN		"[not tokenized]"
#define MASK_HIDDEN			"[masked]"

extern char *mask_partial(const char *s, int len, int keep_start, int keep_end,
						  const char *fill);
extern char *mask_email(const char *s, int len);
extern char *mask_card(const char *s, int len);
extern char *mask_phone(const char *s, int len, int keep, const char *fill);
extern char *mask_hmac_hex(const HmacKey *key, const char *s, int len);
extern char *mask_hash(const HmacKey *key, const char *s, int len,
					   bool base64, int length);
extern char *mask_redact(RxEntry *rx, const char *s, int len, const char *repl);
extern char *mask_redact_pii(const char *s, int len, int kinds, const char *repl);
extern char *mask_generalize_time(const char *s, MaskUnit unit);
extern char *mask_generalize_number(const char *s, Datum width, bool label);
extern char *mask_noise(const char *s, double ratio, const HmacKey *key,
						bool seeded, int64 seed);

#endif							/* STAGE_MASK_H */
