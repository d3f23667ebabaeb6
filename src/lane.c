/*-------------------------------------------------------------------------
 *
 * lane.c
 *	  The lane of a landing row.
 *
 * A window worked in lanes (stage.set_lanes) is split between movers by
 * key: every row whose key columns have the same landing text is in the
 * same lane, so one mover takes all the versions of a key, in landing
 * order, and the order in which they reach the target (skip: the first
 * wins; update: the last wins) is the order of one mover's batches.  A
 * pipeline without a key has its rows dealt by landing id.
 *
 * The mover computes the lane while it reads (batch.c) and SQL computes
 * it with stage._lane() (stage.trace, stage.backlog): the two must agree,
 * so both go through the functions here.
 *
 * Touches nothing: pure functions of a key's text and a landing id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "lane.h"

/* hash h with one more key value (NULL: a value of its own) */
uint32
lane_add(uint32 h, const char *text, Size len)
{
	/* a NULL differs from every text, the empty one included */
	if (text == NULL)
		return hash_combine(h, 0x4e554c4cu);
	return hash_combine(h, DatumGetUInt32(hash_any((const unsigned char *) text,
												   (int) Min(len, (Size) INT_MAX))));
}

/* the lane of a key hash h among lanes */
int
lane_end(uint32 h, int lanes)
{
	return (int) (h % (uint32) lanes);
}

/* the lane of a row of a pipeline without a key: its landing id decides */
int
lane_of_id(int64 id, int lanes)
{
	int64		r = id % lanes;

	return (int) (r < 0 ? r + lanes : r);
}

/*
 * stage._lane(lanes integer, key text[], id bigint) RETURNS integer: the
 * lane of a landing row with this key (NULL array: a pipeline without a
 * key, the row's id decides).
 */
PG_FUNCTION_INFO_V1(stage_lane);
Datum
stage_lane(PG_FUNCTION_ARGS)
{
	int32		lanes;
	ArrayType  *key;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	uint32		h = LANE_SEED;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	lanes = PG_GETARG_INT32(0);
	if (lanes < 1 || lanes > LANE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lanes must be between 1 and %d", LANE_MAX)));
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(2))
			PG_RETURN_NULL();
		PG_RETURN_INT32(lane_of_id(PG_GETARG_INT64(2), lanes));
	}
	key = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_ELEMTYPE(key) != TEXTOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the key of a lane must be a text array")));
	deconstruct_array(key, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
		{
			h = lane_add(h, NULL, 0);
			continue;
		}
		t = DatumGetTextPP(elems[i]);
		h = lane_add(h, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	PG_RETURN_INT32(lane_end(h, lanes));
}
