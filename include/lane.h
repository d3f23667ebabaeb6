/*-------------------------------------------------------------------------
 *
 * lane.h
 *	  The lane of a landing row, for windows worked by several movers at
 *	  once (stage.set_lanes).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_LANE_H
#define STAGE_LANE_H

#include "postgres.h"

/* most lanes a pipeline may have (stage.pipeline.lanes) */
#define LANE_MAX 64

/*
 * Running hash of a row's key: start with LANE_SEED, add each key value's
 * landing text (NULL for SQL NULL), then lane_end.
 */
#define LANE_SEED 0x5354u

extern uint32 lane_add(uint32 h, const char *text, Size len);
extern int	lane_end(uint32 h, int lanes);
extern int	lane_of_id(int64 id, int lanes);

#endif							/* STAGE_LANE_H */
