/*-------------------------------------------------------------------------
 *
 * vault.h
 *	  The token vault of the tokenize mask: tokens resolved set-wise per
 *	  batch, then looked up per value (see vault.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_VAULT_H
#define STAGE_VAULT_H

#include "postgres.h"

#include "sha256.h"

/* the tokens of one batch, in a memory context of their own */
typedef struct VaultMap VaultMap;

extern void vault_prepare(VaultMap **map, const HmacKey *key, const char *secret,
						  const char *prefix, const char **values, int n,
						  bool create);
extern char *vault_lookup(const VaultMap *map, const HmacKey *key,
						  const char *s, int len);

#endif							/* STAGE_VAULT_H */
