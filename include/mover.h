/*-------------------------------------------------------------------------
 *
 * mover.h
 *	  One batch of a pipeline, for stage.run_batch and the worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_MOVER_H
#define STAGE_MOVER_H

#include "postgres.h"

typedef struct BatchResult
{
	bool		has_batch;
	int64		batch_id;
	int64		rows_in;
	int64		clean;
	int64		quarantined;
	int64		duplicate;
	const char *status;			/* done, held, empty, paused, busy */
} BatchResult;

extern bool mover_run(const char *name, int64 limit, bool nowait,
					  BatchResult *res);

#endif							/* STAGE_MOVER_H */
