/*-------------------------------------------------------------------------
 *
 * vault.c
 *	  The token vault of the tokenize mask, and stage.detokenize.
 *
 * tokenize replaces a value by a random token (the mask's prefix and 24
 * random letters and digits, from pg_strong_random), the same token for
 * the same value under the same secret, and keeps the pair in
 * stage.token_vault, which only the extension owner can read.  A token is
 * reversible only through the vault (stage.detokenize); unlike the hash
 * mask, it says nothing about the value, even to someone holding the
 * secret.
 *
 * The vault is keyed by (secret, digest), the digest being
 * HMAC-SHA256(secret, "stage.vault" || value): fixed width whatever the
 * value's length, and not a plain hash anyone could compute.  Tokens are
 * unique across the vault.
 *
 * Set-wise, per batch (vault_prepare): the distinct values of a column are
 * resolved with one INSERT ... ON CONFLICT DO NOTHING and one lookup, as
 * the vault's owner.  The INSERT takes its rows in digest order, so two
 * batches inserting overlapping values wait for each other in the same
 * order and never deadlock; a batch that meets a value another batch is
 * inserting waits for it to commit, then reads that batch's token (in READ
 * COMMITTED each statement sees what committed before it; under
 * REPEATABLE READ such a batch fails with a serialization error and is
 * retried), so a value gets one token however many batches race for it.
 * The tokens of a batch live in a hash table in a memory context that is
 * a child of the caller's context; a reset callback forgets it when that
 * context goes, so a compiled contract never points at freed tokens.
 *
 * Touches stage.token_vault (as the catalog owner) and, to check who may
 * detokenize, stage.secret through secret.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "guard.h"
#include "mask.h"
#include "secret.h"
#include "sha256.h"
#include "vault.h"

#define VAULT_TOKEN_CHARS	24
#define VAULT_RETRIES		3

struct VaultMap
{
	MemoryContext cxt;			/* owns this map and its tokens */
	HTAB	   *tokens;			/* digest -> VaultEntry */
	VaultMap  **owner;			/* the caller's pointer to clear */
	MemoryContextCallback cb;
};

typedef struct VaultEntry
{
	uint8		digest[SHA256_DIGEST];	/* hash key */
	char	   *token;			/* NULL until resolved */
	const char *value;			/* the caller's string: valid during prepare only */
} VaultEntry;

/* reset callback of a map's context: the caller's pointer forgets it */
static void
vault_forget(void *arg)
{
	VaultMap   *v = (VaultMap *) arg;

	if (*v->owner == v)
		*v->owner = NULL;
}

/* the vault's key of a value: HMAC-SHA256(key, "stage.vault" || value) */
static void
vault_digest(const HmacKey *key, const char *s, int len, uint8 *out)
{
	static const char label[] = "stage.vault";

	hmac_sha256_2(key, (const uint8 *) label, sizeof(label),
				  (const uint8 *) s, len, out);
}

/* a one-dimensional array of n datums of elemtype */
static Datum
vault_array(Datum *elems, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(elems, n, elemtype, typlen, typbyval, typalign));
}

/* a bytea datum holding b[0..len) */
static Datum
vault_bytea(const uint8 *b, int len)
{
	bytea	   *d = palloc(VARHDRSZ + len);

	SET_VARSIZE(d, VARHDRSZ + len);
	memcpy(VARDATA(d), b, len);
	return PointerGetDatum(d);
}

/* a fresh token: prefix and 24 letters and digits from rnd (bytes < 252) */
static char *
vault_new_token(const char *prefix, const uint8 *rnd)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	int			plen = strlen(prefix);
	char	   *t = palloc(plen + VAULT_TOKEN_CHARS + 1);
	int			i;

	memcpy(t, prefix, plen);
	for (i = 0; i < VAULT_TOKEN_CHARS; i++)
		t[plen + i] = chars[rnd[i] % 36];
	t[plen + VAULT_TOKEN_CHARS] = '\0';
	return t;
}

/* random bytes below 252, so that % 36 is unbiased */
static void
vault_random(uint8 *buf, int n)
{
	int			i;

	if (!pg_strong_random(buf, n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random tokens")));
	for (i = 0; i < n; i++)
		while (buf[i] >= 252)
		{
			if (!pg_strong_random(&buf[i], 1))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not generate random tokens")));
		}
}

/* look up the tokens of entries[0..n) (digests) and store them in the map */
static void
vault_fetch(VaultMap *v, const char *secret, VaultEntry **entries, int n)
{
	Oid			types[2] = {TEXTOID, BYTEAARRAYOID};
	Datum		vals[2];
	Datum	   *digests = palloc(sizeof(Datum) * n);
	uint64		j;
	int			i;

	for (i = 0; i < n; i++)
		digests[i] = vault_bytea(entries[i]->digest, SHA256_DIGEST);
	vals[0] = CStringGetTextDatum(secret);
	vals[1] = vault_array(digests, n, BYTEAOID);
	if (SPI_execute_with_args("SELECT digest, token FROM stage.token_vault"
							  " WHERE secret OPERATOR(pg_catalog.=) $1"
							  " AND digest OPERATOR(pg_catalog.=) ANY ($2)",
							  2, types, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "stage: could not read the token vault");
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		bytea	   *d = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[j],
													  SPI_tuptable->tupdesc, 1, &isnull));
		VaultEntry *e;

		if (VARSIZE_ANY_EXHDR(d) != SHA256_DIGEST)
			continue;
		e = hash_search(v->tokens, VARDATA_ANY(d), HASH_FIND, NULL);
		if (e != NULL && e->token == NULL)
			e->token = MemoryContextStrdup(v->cxt,
										   SPI_getvalue(SPI_tuptable->vals[j],
														SPI_tuptable->tupdesc, 2));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Insert tokens for entries[0..n) under secret, new tokens starting with
 * prefix, in digest order; conflicts are skipped.
 */
static void
vault_insert(const char *secret, const char *prefix, VaultEntry **entries,
			 int n)
{
	Oid			types[4] = {TEXTOID, BYTEAARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		vals[4];
	Datum	   *digests = palloc(sizeof(Datum) * n);
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	Datum	   *values = palloc(sizeof(Datum) * n);
	uint8	   *rnd = palloc(VAULT_TOKEN_CHARS * n);
	int			i;

	vault_random(rnd, VAULT_TOKEN_CHARS * n);
	for (i = 0; i < n; i++)
	{
		digests[i] = vault_bytea(entries[i]->digest, SHA256_DIGEST);
		tokens[i] = CStringGetTextDatum(vault_new_token(prefix, rnd + i * VAULT_TOKEN_CHARS));
		values[i] = CStringGetTextDatum(entries[i]->value);
	}
	vals[0] = CStringGetTextDatum(secret);
	vals[1] = vault_array(digests, n, BYTEAOID);
	vals[2] = vault_array(tokens, n, TEXTOID);
	vals[3] = vault_array(values, n, TEXTOID);
	if (SPI_execute_with_args("INSERT INTO stage.token_vault (secret, digest, token, value)"
							  " SELECT $1, u.d, u.t, u.v"
							  " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
							  "                 pg_catalog.unnest($4)) AS u(d, t, v)"
							  " ORDER BY u.d ON CONFLICT DO NOTHING",
							  4, types, vals, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "stage: could not write the token vault");
}

/*
 * Resolve the tokens of values[0..n) (duplicates allowed) under the named
 * secret, whose key the caller has loaded: with create, values without a
 * token get one, starting with prefix; without, they are only looked up.
 * The map replaces *map and lives in a child of CurrentMemoryContext; when
 * that context goes, *map is cleared.
 */
void
vault_prepare(VaultMap **map, const HmacKey *key, const char *secret,
			  const char *prefix, const char **values, int n, bool create)
{
	MemoryContext cxt;
	VaultMap   *v;
	HASHCTL		ctl;
	VaultEntry **entries;
	int			nd = 0;
	int			i;
	GuardSwitch gs;

	if (*map != NULL)
		MemoryContextDelete((*map)->cxt);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "stage token vault",
								ALLOCSET_DEFAULT_SIZES);
	v = MemoryContextAllocZero(cxt, sizeof(VaultMap));
	v->cxt = cxt;
	v->owner = map;
	v->cb.func = vault_forget;
	v->cb.arg = v;
	MemoryContextRegisterResetCallback(cxt, &v->cb);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = SHA256_DIGEST;
	ctl.entrysize = sizeof(VaultEntry);
	ctl.hcxt = cxt;
	v->tokens = hash_create("stage token vault", Max(n, 16), &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	*map = v;

	entries = MemoryContextAlloc(cxt, sizeof(VaultEntry *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		uint8		d[SHA256_DIGEST];
		bool		found;
		VaultEntry *e;

		vault_digest(key, values[i], strlen(values[i]), d);
		e = hash_search(v->tokens, d, HASH_ENTER, &found);
		if (!found)
		{
			e->token = NULL;
			e->value = values[i];
			entries[nd++] = e;
		}
	}
	if (nd == 0)
		return;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		int			attempt;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		for (attempt = 0; create && attempt < VAULT_RETRIES && nd > 0; attempt++)
		{
			int			k = 0;

			vault_insert(secret, prefix, entries, nd);
			vault_fetch(v, secret, entries, nd);
			/* a token collision (about 2^-124) leaves a value to retry */
			for (i = 0; i < nd; i++)
				if (entries[i]->token == NULL)
					entries[k++] = entries[i];
			nd = k;
		}
		if (!create)
			vault_fetch(v, secret, entries, nd);
		else if (nd > 0)
			elog(ERROR, "stage: could not allocate unique tokens");
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
}

/* the token of s, from the map vault_prepare made under key; never the value */
char *
vault_lookup(const VaultMap *map, const HmacKey *key, const char *s, int len)
{
	uint8		d[SHA256_DIGEST];
	VaultEntry *e;

	if (map == NULL)
		elog(ERROR, "tokenize mask used before its batch was prepared");
	vault_digest(key, s, len, d);
	e = hash_search(map->tokens, d, HASH_FIND, NULL);
	if (e == NULL || e->token == NULL)
		return pstrdup(MASK_NO_TOKEN);
	return pstrdup(e->token);
}

/* one column of the vault row of a token, read as the vault's owner */
static text *
vault_by_token(const char *sql, text *token)
{
	GuardSwitch gs;
	Oid			argtype = TEXTOID;
	Datum		arg = PointerGetDatum(token);
	MemoryContext caller = CurrentMemoryContext;
	text	   *volatile result = NULL;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "stage: could not read the token vault");
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  1, &isnull);

			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(caller);

				result = DatumGetTextPCopy(d);
				MemoryContextSwitchTo(old);
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	return result;
}

/*
 * stage.detokenize(token) RETURNS text: the value behind a token, for a
 * superuser or a member of a role the token's secret is granted to (the
 * roles that may tokenize under it); NULL for an unknown token.  Anyone
 * else gets an error, never the value.
 */
PG_FUNCTION_INFO_V1(stage_detokenize);
Datum
stage_detokenize(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	text	   *secret;
	text	   *value;
	int			keylen;
	uint8	   *key;

	/* which secret the token belongs to */
	secret = vault_by_token("SELECT secret FROM stage.token_vault"
							" WHERE token OPERATOR(pg_catalog.=) $1", token);
	if (secret == NULL)
		PG_RETURN_NULL();

	/* the caller must be allowed to use that secret */
	key = secret_try_load(text_to_cstring(secret), stage_caller(), &keylen);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to detokenize"),
				 errdetail("The token belongs to secret \"%s\".", text_to_cstring(secret)),
				 errhint("Superusers and roles granted the secret (stage.grant_secret) may detokenize.")));
	explicit_bzero(key, keylen);

	value = vault_by_token("SELECT value FROM stage.token_vault"
						   " WHERE token OPERATOR(pg_catalog.=) $1", token);
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(value);
}
