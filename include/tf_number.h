/*-------------------------------------------------------------------------
 *
 * tf_number.h
 *	  The number transform's parser (tf_number.c): formatted numbers to
 *	  the plain decimal text numeric_in accepts.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TF_NUMBER_H
#define STAGE_TF_NUMBER_H

#include "postgres.h"

typedef struct TfNumberFormat
{
	char		decimal;		/* '.' or ',' */
	char		group;			/* ',', '.', ' ', '\'' or 0 for none */
	bool		currency;		/* strip one currency symbol or code */
	bool		utf8;			/* the text is UTF-8: Unicode spaces, symbols */
} TfNumberFormat;

/*
 * Parse s[0..len).  True: *out is the plain decimal text (palloc'd, at
 * most len + 2 bytes).  False: *message (palloc'd) says what is wrong and
 * at which character.
 */
extern bool tf_number(const TfNumberFormat *f, const char *s, int len,
					  char **out, char **message);

#endif							/* STAGE_TF_NUMBER_H */
