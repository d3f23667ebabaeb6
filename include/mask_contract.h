/*-------------------------------------------------------------------------
 *
 * mask_contract.h
 *	  A mask as a contract declares it (StageMask): parsed from its method
 *	  and jsonb arguments, checked against its column, prepared per batch,
 *	  applied per value (see mask_contract.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_MASK_CONTRACT_H
#define STAGE_MASK_CONTRACT_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "mask.h"
#include "pseudonym.h"
#include "regex.h"
#include "sha256.h"
#include "vault.h"

typedef enum MaskMethod
{
	MASK_HASH,					/* keyed HMAC-SHA256, hex or base64 */
	MASK_PSEUDONYM,				/* keyed, format-preserving stand-in */
	MASK_PARTIAL,
	MASK_EMAIL,
	MASK_PHONE,
	MASK_CARD,
	MASK_REDACT,				/* PCRE2 pattern, every match replaced */
	MASK_REDACT_PII,			/* every pii_scan span replaced */
	MASK_NULL,
	MASK_CONSTANT,
	MASK_GENERALIZE,			/* date/timestamp truncation, number buckets */
	MASK_NOISE,					/* number +/- ratio */
	MASK_TOKENIZE				/* random token, reversible through the vault */
} MaskMethod;

typedef struct StageMask
{
	MaskMethod	method;
	const char *method_name;
	int			keep_start;		/* partial */
	int			keep_end;		/* partial; phone: digits kept at the end */
	char	   *fill;			/* partial, phone */
	/* hash, pseudonym, tokenize: the named secret */
	char	   *secret_name;
	HmacKey		hkey;			/* the secret, absorbed when loaded */
	bool		key_loaded;
	int			length;			/* hash: output length in chars, 0 = all */
	bool		base64;			/* hash: base64 instead of hex */
	PseudoKind	pseudo_kind;	/* pseudonym */
	bool		keep_domain;	/* pseudonym of an email: domain kept */
	RxEntry    *rx;				/* redact */
	char	   *replacement;	/* redact, redact_pii (NULL: "[kind]") */
	int			pii_kinds;		/* redact_pii */
	char	   *value;			/* constant */
	MaskUnit	unit;			/* generalize by unit */
	Datum		bucket;			/* generalize by bucket: width (Numeric) */
	bool		range_label;	/* bucket shown as "[lo,hi)" */
	double		ratio;			/* noise */
	bool		seeded;			/* noise: deterministic per value (secret_name: keyed) */
	int64		seed;
	char	   *prefix;			/* tokenize */
	VaultMap   *vault;			/* tokenize: tokens of this batch */
} StageMask;

extern void mask_parse(StageMask *m, const char *method, Jsonb *args);
extern bool mask_needs_text(const StageMask *m);
extern bool mask_needs_batch(const StageMask *m);
extern bool mask_deterministic(const StageMask *m);
extern void mask_load_key(StageMask *m, Oid role);
extern bool mask_try_load_key(StageMask *m, Oid role);
extern void mask_resolve_tokens(StageMask *m, const char **values, int n,
								bool create);
extern void mask_prepare(StageMask *m, const char **values, int n, Oid role,
						 bool create);
extern char *mask_apply(const StageMask *m, const char *value, int len);

#endif							/* STAGE_MASK_CONTRACT_H */
