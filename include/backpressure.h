/*-------------------------------------------------------------------------
 *
 * backpressure.h
 *	  Per-pipeline backlog limits enforced on producers (see
 *	  backpressure.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_BACKPRESSURE_H
#define STAGE_BACKPRESSURE_H

/* from _PG_init while preloading: the shared counters */
extern void backpressure_init(void);

#endif							/* STAGE_BACKPRESSURE_H */
