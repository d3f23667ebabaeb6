/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background worker (see worker.c) and its GUC variables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_WORKER_H
#define STAGE_WORKER_H

extern char *stage_databases;
extern int	stage_workers_per_database;
extern int	stage_max_workers;
extern int	stage_naptime;
extern int	stage_batch_time_budget;
extern char *stage_worker_role;
extern int	stage_max_failures;
extern int	stage_worker_batch_timeout;
extern int	stage_worker_lock_timeout;
extern int	stage_retention_interval;

extern void worker_init(void);

#endif
