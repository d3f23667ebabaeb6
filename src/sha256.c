/*-------------------------------------------------------------------------
 *
 * sha256.c
 *	  SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the hash mask.
 *
 * The hash mask runs once per masked value on the mover's hot path.  The
 * server's HMAC API allocates a fresh context per call and registers it
 * with the resource owner, which costs more than the hashing itself; here
 * the padded key is absorbed once when the contract is compiled
 * (hmac_prepare) and each value costs four compression rounds for short
 * input, with no allocation.  Tests compare the output with pgcrypto's
 * hmac() on the same key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sha256.h"

static const uint32 sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(Sha256 *s, const uint8 *p)
{
	uint32		w[64];
	uint32		a,
				b,
				c,
				d,
				e,
				f,
				g,
				h;
	int			i;

	for (i = 0; i < 16; i++)
		w[i] = ((uint32) p[4 * i] << 24) | ((uint32) p[4 * i + 1] << 16) |
			((uint32) p[4 * i + 2] << 8) | (uint32) p[4 * i + 3];
	for (i = 16; i < 64; i++)
	{
		uint32		s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32		s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0];
	b = s->h[1];
	c = s->h[2];
	d = s->h[3];
	e = s->h[4];
	f = s->h[5];
	g = s->h[6];
	h = s->h[7];
	for (i = 0; i < 64; i++)
	{
		uint32		S1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);
		uint32		ch = (e & f) ^ (~e & g);
		uint32		t1 = h + S1 + ch + sha256_k[i] + w[i];
		uint32		S0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);
		uint32		maj = (a & b) ^ (a & c) ^ (b & c);
		uint32		t2 = S0 + maj;

		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	s->h[0] += a;
	s->h[1] += b;
	s->h[2] += c;
	s->h[3] += d;
	s->h[4] += e;
	s->h[5] += f;
	s->h[6] += g;
	s->h[7] += h;
}

void
sha256_init(Sha256 *s)
{
	s->h[0] = 0x6a09e667;
	s->h[1] = 0xbb67ae85;
	s->h[2] = 0x3c6ef372;
	s->h[3] = 0xa54ff53a;
	s->h[4] = 0x510e527f;
	s->h[5] = 0x9b05688c;
	s->h[6] = 0x1f83d9ab;
	s->h[7] = 0x5be0cd19;
	s->len = 0;
	s->buflen = 0;
}

void
sha256_update(Sha256 *s, const uint8 *data, size_t len)
{
	s->len += len;
	if (s->buflen > 0)
	{
		size_t		take = Min(len, 64 - s->buflen);

		memcpy(s->buf + s->buflen, data, take);
		s->buflen += take;
		data += take;
		len -= take;
		if (s->buflen < 64)
			return;
		sha256_block(s, s->buf);
		s->buflen = 0;
	}
	while (len >= 64)
	{
		sha256_block(s, data);
		data += 64;
		len -= 64;
	}
	memcpy(s->buf, data, len);
	s->buflen = len;
}

void
sha256_final(Sha256 *s, uint8 *out)
{
	uint64		bits = s->len * 8;
	int			i;

	s->buf[s->buflen++] = 0x80;
	if (s->buflen > 56)
	{
		memset(s->buf + s->buflen, 0, 64 - s->buflen);
		sha256_block(s, s->buf);
		s->buflen = 0;
	}
	memset(s->buf + s->buflen, 0, 56 - s->buflen);
	for (i = 0; i < 8; i++)
		s->buf[56 + i] = (uint8) (bits >> (56 - 8 * i));
	sha256_block(s, s->buf);
	for (i = 0; i < 8; i++)
	{
		out[4 * i] = (uint8) (s->h[i] >> 24);
		out[4 * i + 1] = (uint8) (s->h[i] >> 16);
		out[4 * i + 2] = (uint8) (s->h[i] >> 8);
		out[4 * i + 3] = (uint8) s->h[i];
	}
}

/* absorb the padded key once: inner and outer states ready for messages */
void
hmac_prepare(HmacKey *k, const uint8 *key, size_t keylen)
{
	uint8		block[64];
	uint8		pad[64];
	int			i;

	memset(block, 0, sizeof(block));
	if (keylen > 64)
	{
		Sha256		s;

		sha256_init(&s);
		sha256_update(&s, key, keylen);
		sha256_final(&s, block);
	}
	else
		memcpy(block, key, keylen);
	for (i = 0; i < 64; i++)
		pad[i] = block[i] ^ 0x36;
	sha256_init(&k->inner);
	sha256_update(&k->inner, pad, 64);
	for (i = 0; i < 64; i++)
		pad[i] = block[i] ^ 0x5c;
	sha256_init(&k->outer);
	sha256_update(&k->outer, pad, 64);
}

void
hmac_sha256(const HmacKey *k, const uint8 *data, size_t len, uint8 *out)
{
	Sha256		s = k->inner;
	uint8		inner[SHA256_DIGEST];

	sha256_update(&s, data, len);
	sha256_final(&s, inner);
	s = k->outer;
	sha256_update(&s, inner, SHA256_DIGEST);
	sha256_final(&s, out);
}
