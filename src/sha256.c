/*-------------------------------------------------------------------------
 *
 * sha256.c
 *	  HMAC-SHA256 (RFC 2104) with the key absorbed once, for the hash mask.
 *
 * The hash mask runs once per masked value on the mover's hot path.  The
 * server's pg_hmac API allocates a fresh OpenSSL context per call and
 * registers it with the resource owner, which costs several times more
 * than the hashing.  Here the padded key is absorbed into the inner and
 * outer SHA-256 states once, when the contract is compiled
 * (hmac_prepare); each value then costs a struct copy and two compression
 * rounds for short input, with no allocation.  The compression itself is
 * OpenSSL's (hardware SHA extensions where the CPU has them), through its
 * plain-struct SHA256_CTX interface, whose state can be copied.
 *
 * Tests compare the output with pgcrypto's hmac() on the same key.
 *
 * Touches nothing but the memory it is given: no catalog, no allocation.
 *
 *-------------------------------------------------------------------------
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "postgres.h"

#include "sha256.h"

/* absorb the padded key once: inner and outer states ready for messages */
void
hmac_prepare(HmacKey *k, const uint8 *key, size_t keylen)
{
	uint8		block[SHA256_CBLOCK];
	uint8		pad[SHA256_CBLOCK];
	int			i;

	memset(block, 0, sizeof(block));
	if (keylen > SHA256_CBLOCK)
		SHA256(key, keylen, block);
	else
		memcpy(block, key, keylen);
	for (i = 0; i < SHA256_CBLOCK; i++)
		pad[i] = block[i] ^ 0x36;
	SHA256_Init(&k->inner);
	SHA256_Update(&k->inner, pad, SHA256_CBLOCK);
	for (i = 0; i < SHA256_CBLOCK; i++)
		pad[i] = block[i] ^ 0x5c;
	SHA256_Init(&k->outer);
	SHA256_Update(&k->outer, pad, SHA256_CBLOCK);
	explicit_bzero(block, sizeof(block));
	explicit_bzero(pad, sizeof(pad));
}

/* HMAC-SHA256 of data under the prepared key k, into out (32 bytes) */
void
hmac_sha256(const HmacKey *k, const uint8 *data, size_t len, uint8 *out)
{
	SHA256_CTX	s = k->inner;
	uint8		inner[SHA256_DIGEST_LENGTH];

	SHA256_Update(&s, data, len);
	SHA256_Final(inner, &s);
	s = k->outer;
	SHA256_Update(&s, inner, SHA256_DIGEST_LENGTH);
	SHA256_Final(out, &s);
}

/* HMAC of the concatenation a || b, without copying them together */
void
hmac_sha256_2(const HmacKey *k, const uint8 *a, size_t alen,
			  const uint8 *b, size_t blen, uint8 *out)
{
	SHA256_CTX	s = k->inner;
	uint8		inner[SHA256_DIGEST_LENGTH];

	SHA256_Update(&s, a, alen);
	SHA256_Update(&s, b, blen);
	SHA256_Final(inner, &s);
	s = k->outer;
	SHA256_Update(&s, inner, SHA256_DIGEST_LENGTH);
	SHA256_Final(out, &s);
}
