/*-------------------------------------------------------------------------
 *
 * sha256.h
 *	  HMAC-SHA256 with a precomputed key (see sha256.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_SHA256_H
#define STAGE_SHA256_H

#include <openssl/sha.h>

#define SHA256_DIGEST SHA256_DIGEST_LENGTH

typedef struct HmacKey
{
	SHA256_CTX	inner;
	SHA256_CTX	outer;
} HmacKey;

extern void hmac_prepare(HmacKey *k, const uint8 *key, size_t keylen);
extern void hmac_sha256(const HmacKey *k, const uint8 *data, size_t len, uint8 *out);
extern void hmac_sha256_2(const HmacKey *k, const uint8 *a, size_t alen,
						  const uint8 *b, size_t blen, uint8 *out);

#endif
