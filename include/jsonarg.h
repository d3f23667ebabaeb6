/*-------------------------------------------------------------------------
 *
 * jsonarg.h
 *	  Reading the jsonb arguments of rules and masks (see jsonarg.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_JSONARG_H
#define STAGE_JSONARG_H

#include "postgres.h"

#include "utils/jsonb.h"

extern bool json_get(Jsonb *args, const char *key, JsonbValue *out);
extern void json_check_keys(Jsonb *args, const char *what,
							const char *const *allowed);
extern char *json_get_string(Jsonb *args, const char *key, const char *what,
							 const char *dflt);
extern int	json_get_int(Jsonb *args, const char *key, const char *what,
						 int dflt, int minval, int maxval);
extern char *json_scalar_text(JsonbValue *v, const char *key, const char *what);

#endif							/* STAGE_JSONARG_H */
