/*-------------------------------------------------------------------------
 *
 * stage.c
 *	  Module entry point: _PG_init and the GUC variables.
 *
 * The extension works without shared_preload_libraries (every SQL function
 * loads the module on first call); preloading is needed only for the
 * background worker.  _PG_init therefore defines the GUCs in either case and
 * never assumes it runs in the postmaster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/elog.h"
#include "utils/errcodes.h"
#include "utils/guc.h"

#include "stage.h"

PG_MODULE_MAGIC;

/*---- GUC variables ----*/

/*
 * stage.batch_size: how many landing rows one call of stage.run_batch takes
 * when max_rows is not given.  Each chunk is one transaction's worth of work:
 * larger chunks amortize per-statement costs, smaller ones hold locks for a
 * shorter time and bound memory (roughly batch_size x row width x 3).
 */
int			stage_batch_size = 10000;

/*
 * stage.regex_match_limit / stage.regex_depth_limit: PCRE2's match and depth
 * limits for every pattern stage runs.  A pattern that hits them fails fast:
 * the row is quarantined with reason "regex_limit" instead of burning CPU.
 */
int			stage_regex_match_limit = 1000000;
int			stage_regex_depth_limit = 10000;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("stage.batch_size",
							"Landing rows taken by one stage.run_batch call when max_rows is not given.",
							NULL,
							&stage_batch_size,
							10000, 1, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.regex_match_limit",
							"PCRE2 match limit for patterns run by stage.",
							"A match that needs more steps fails with reason regex_limit.",
							&stage_regex_match_limit,
							1000000, 1000, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.regex_depth_limit",
							"PCRE2 depth limit (backtracking memory, in kilobytes of heap for the interpreter) for patterns run by stage.",
							NULL,
							&stage_regex_depth_limit,
							10000, 100, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("stage");
}

/*
 * Which errors may be pinned on one row and quarantined with it: data
 * exceptions (class 22), integrity constraint violations (23), errors raised
 * by the target's triggers (P0) and WITH CHECK OPTION (44).  Everything else
 * (cancel, permissions, resources, deadlocks, internal errors) is the
 * batch's problem: it aborts the batch and nothing moves.
 */
bool
stage_row_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_PLPGSQL_ERROR:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
			return true;
		default:
			return false;
	}
}
