/*-------------------------------------------------------------------------
 *
 * moverutil.c
 *	  Small primitives the mover's files share: one-dimensional arrays for
 *	  SPI parameters, statements run as the current user with their result
 *	  checked, and hash sets of C strings.
 *
 * What it may touch: mover_exec runs the statement it is given, as the
 * user in force (inside a batch, the pipeline's owner, under the guard):
 * the caller decides what it reads or writes.  Nothing else here reads or
 * writes the database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "mover_int.h"

/* a one-dimensional array of n elements (nulls may be NULL: none null) */
Datum
mover_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/* run sql with $n arguments as the current user; any result but expect fails */
void
mover_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
		   int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "stage: bookkeeping statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* hash of a C string key (the entry's first member is the char *) */
static uint32
mover_key_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return string_hash(s, strlen(s) + 1);
}

/* equality of two C string keys, as strcmp */
static int
mover_key_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * A hash table keyed by C strings (char *, compared by content) with room
 * for an int beside each key, in the current memory context, sized for n.
 */
HTAB *
mover_key_table(const char *name, int n)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(char *) + sizeof(int);
	ctl.hash = mover_key_hash;
	ctl.match = mover_key_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, Max(n, 16), &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}
