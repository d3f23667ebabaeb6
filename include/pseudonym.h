/*-------------------------------------------------------------------------
 *
 * pseudonym.h
 *	  Keyed, format-preserving pseudonyms (see pseudonym.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_PSEUDONYM_H
#define STAGE_PSEUDONYM_H

#include "postgres.h"

#include "sha256.h"

/* what a pseudonym looks like (auto: decided per value) */
typedef enum PseudoKind
{
	PSEUDO_AUTO,
	PSEUDO_EMAIL,
	PSEUDO_NAME,
	PSEUDO_DIGITS,
	PSEUDO_TEXT
} PseudoKind;

extern char *mask_pseudonym(const HmacKey *key, const char *s, int len,
							PseudoKind kind, bool keep_domain);

#endif							/* STAGE_PSEUDONYM_H */
