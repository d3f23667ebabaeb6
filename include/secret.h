/*-------------------------------------------------------------------------
 *
 * secret.h
 *	  Named secrets (stage.secret): read for a role allowed to use them,
 *	  absorbed into HMAC keys (see secret.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_SECRET_H
#define STAGE_SECRET_H

#include "postgres.h"

#include "sha256.h"

extern uint8 *secret_try_load(const char *name, Oid role, int *keylen);
extern bool secret_hmac_key(HmacKey *k, const char *name, Oid role,
							bool missing_ok);

#endif							/* STAGE_SECRET_H */
