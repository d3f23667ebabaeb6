/*-------------------------------------------------------------------------
 *
 * sha256.h
 *	  SHA-256 and HMAC-SHA256 with a precomputed key (see sha256.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_SHA256_H
#define STAGE_SHA256_H

#define SHA256_DIGEST 32

typedef struct Sha256
{
	uint32		h[8];
	uint64		len;
	uint8		buf[64];
	size_t		buflen;
} Sha256;

typedef struct HmacKey
{
	Sha256		inner;
	Sha256		outer;
} HmacKey;

extern void sha256_init(Sha256 *s);
extern void sha256_update(Sha256 *s, const uint8 *data, size_t len);
extern void sha256_final(Sha256 *s, uint8 *out);
extern void hmac_prepare(HmacKey *k, const uint8 *key, size_t keylen);
extern void hmac_sha256(const HmacKey *k, const uint8 *data, size_t len, uint8 *out);

#endif
