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
 * Touches only GUCs and, when preloaded, the worker's registration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "miscadmin.h"

#include "backpressure.h"
#include "node.h"
#include "regex.h"
#include "stage.h"
#include "worker.h"

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

/*
 * The background worker (worker.c).  stage.databases: comma-separated
 * databases the launcher keeps one worker running in.  stage.max_workers:
 * worker slots in shared memory (restart to change).  stage.naptime: how
 * long an idle worker sleeps before looking again; a commit that landed
 * rows wakes it at once.  stage.batch_time_budget: how long a worker keeps
 * running batches before it looks at the other pipelines and naps.
 * stage.workers_per_database: how many workers the launcher keeps running in
 * each of those databases (more than one pays for pipelines with lanes and
 * for many busy pipelines).
 * stage.worker_role: the ordinary role workers connect as; it must be a
 * member of the pipeline owners.  stage.max_failures: consecutive failed
 * batches after which a pipeline is paused with the reason.
 */
char	   *stage_databases = NULL;
int			stage_workers_per_database = 1;
int			stage_max_workers = 8;
int			stage_naptime = 1000;
int			stage_batch_time_budget = 5000;
char	   *stage_worker_role = NULL;
int			stage_max_failures = 5;

/*
 * stage.worker_batch_timeout: how long one batch of the worker may run
 * (its owner's triggers and expressions included) before it is cancelled
 * as a failed batch; 0: no limit.  One slow or blocked pipeline must not
 * hold up the other owners' pipelines of the database.
 */
int			stage_worker_batch_timeout = 60000;

/*
 * stage.worker_lock_timeout: how long a worker's batch waits for a lock
 * (a target table an owner's open transaction holds) before it fails and
 * backs off; 0: as long as stage.worker_batch_timeout allows.
 */
int			stage_worker_lock_timeout = 1000;
int			stage_retention_interval = 10000;

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
							"PCRE2 depth limit (nested backtracking) for patterns run by stage.",
							"It bounds the interpreter, which runs a match when compiled (JIT) code runs out of its stack; JIT code is bounded by stage.regex_match_limit.",
							&stage_regex_depth_limit,
							10000, 100, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("stage.databases",
							   "Databases in which the launcher keeps a stage worker running.",
							   "A comma-separated list of database names; empty starts none.",
							   &stage_databases,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("stage.workers_per_database",
							"Workers the launcher keeps running in each database of stage.databases.",
							"Each also needs a stage.max_workers and a max_worker_processes slot.",
							&stage_workers_per_database,
							1, 1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	/*
	 * Worker slots live in shared memory, sized at startup: the variable
	 * exists only when the library is preloaded (a PGC_POSTMASTER variable
	 * cannot be defined by a library loaded later, on first use).
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("stage.max_workers",
								"Maximum number of stage workers (launcher not included).",
								"Each also needs a max_worker_processes slot.",
								&stage_max_workers,
								8, 1, 128,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);

	DefineCustomIntVariable("stage.naptime",
							"How long an idle stage worker sleeps between looks for pending rows.",
							"A commit that inserted into a landing table wakes the workers at once.",
							&stage_naptime,
							1000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.retention_interval",
							"How often a stage worker applies retention (stage.purge) to its pipelines.",
							"Drops the finished landing partitions and the history past their retention, and makes the landing partitions ahead; 0 turns it off (then schedule stage.purge yourself).",
							&stage_retention_interval,
							10000, 0, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.batch_time_budget",
							"How long a stage worker runs batches before it naps, even if rows are pending.",
							NULL,
							&stage_batch_time_budget,
							5000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("stage.worker_role",
							   "Role the stage workers connect as; must not be a superuser.",
							   "It must be a member of the owners of the pipelines it runs.",
							   &stage_worker_role,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("stage.max_failures",
							"Consecutive failed batches after which a worker pauses the pipeline.",
							NULL,
							&stage_max_failures,
							5, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.worker_batch_timeout",
							"How long one batch of a stage worker may run before it is cancelled as failed.",
							"Owner code (target triggers, expressions) counts; 0 means no limit.",
							&stage_worker_batch_timeout,
							60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stage.worker_lock_timeout",
							"How long a batch of a stage worker waits for a lock before it fails and backs off.",
							"0 means as long as stage.worker_batch_timeout allows.",
							&stage_worker_lock_timeout,
							1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * A superuser setting, so that it can be set per database (ALTER
	 * DATABASE ... SET) when one cluster holds several staging databases,
	 * and no pipeline owner can make its rows claim another node.
	 */
	DefineCustomStringVariable("stage.node_name",
							   "The name of this staging node, as its history and lineage rows carry it.",
							   "Unique among the nodes a warehouse subscribes to; empty: the system identifier and the database.",
							   &stage_node_name,
							   "",
							   PGC_SUSET, 0,
							   stage_node_name_check, NULL, NULL);

	MarkGUCPrefixReserved("stage");

	/* the worker needs shared memory: only when preloaded */
	if (process_shared_preload_libraries_in_progress)
		worker_init();

	/* the backpressure counters too; without them limits hold uncounted */
	if (process_shared_preload_libraries_in_progress)
		backpressure_init();
}
