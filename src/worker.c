/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker: a launcher that keeps one worker running per
 *	  database of stage.databases (plus any started by stage.start_worker()),
 *	  and the workers, which run batches for every enabled pipeline of their
 *	  database until none has pending rows or their time budget is spent,
 *	  then sleep on their latch for stage.naptime.  A commit that inserted
 *	  into a landing table sets the latch of its database's workers.
 *
 * Shared state (StageShared, in shared memory when the library is
 * preloaded) holds one slot per worker: who it is, what it is doing, and
 * its counters, for the stage.workers view.  Slots are protected by one
 * LWLock; a worker writes only its own slot, the launcher and
 * stage.start_worker() claim free slots under the lock.
 *
 * Each batch is what stage.run_batch() does (mover_run), in a transaction
 * of its own, so the worker inherits its exactly-once guarantee: a worker
 * killed mid-batch leaves nothing half done, and the next run takes the
 * same rows.  Workers of one database take different pipelines: a worker
 * skips a pipeline whose catalog row another session has locked (a worker
 * or a run_batch call).  Only stage can lock those rows, so no other role
 * can keep a pipeline from running (an advisory lock could be taken by
 * anyone).  Every batch leaves the settings as it found them (guard.c),
 * so one owner's trigger cannot change how the next pipeline parses.  An
 * error aborts only its batch: it is recorded in a fresh transaction as a
 * failed batch, the pipeline backs off exponentially, and after
 * stage.max_failures consecutive failures it is paused with the reason.
 *
 * Workers connect as stage.worker_role, never as a superuser, and pin
 * search_path to pg_catalog, pg_temp at the highest priority, so a
 * database-level search_path set by a hostile owner changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "stage.h"
#include "worker.h"
#include "guard.h"
#include "mover.h"
#include "reason.h"

typedef struct WorkerSlot
{
	bool		in_use;			/* claimed (maybe not started yet) */
	bool		dynamic;		/* started by stage.start_worker() */
	pid_t		pid;
	Oid			dbid;
	PGPROC	   *proc;
	char		dbname[NAMEDATALEN];
	char		state[16];
	char		pipeline[NAMEDATALEN];
	Oid			pipeline_owner; /* who may see what the worker is on */
	int64		batch_id;
	char		last_error[256];
	Oid			error_owner;	/* owner of the pipeline of last_error */
	int64		batches;
	int64		rows;
	TimestampTz started_at;
	TimestampTz last_batch_at;
} WorkerSlot;

typedef struct StageShared
{
	LWLock	   *lock;
	PGPROC	   *launcher;
	int			nslots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} StageShared;

static StageShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static WorkerSlot *my_slot = NULL;
static bool wake_pending = false;
static bool wake_callback_registered = false;

PGDLLEXPORT void stage_launcher_main(Datum arg);
PGDLLEXPORT void stage_worker_main(Datum arg);

static Size
worker_shmem_size(void)
{
	return add_size(offsetof(StageShared, slots),
					mul_size(sizeof(WorkerSlot), stage_max_workers));
}

static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(worker_shmem_size());
	RequestNamedLWLockTranche("stage", 1);
}

static void
worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("stage", worker_shmem_size(), &found);
	if (!found)
	{
		memset(shared, 0, worker_shmem_size());
		shared->lock = &(GetNamedLWLockTranche("stage"))->lock;
		shared->nslots = stage_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Called from _PG_init while preloading: shared memory and the launcher.
 */
void
worker_init(void)
{
	BackgroundWorker bgw;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "stage");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "stage_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "stage launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "stage launcher");
	RegisterBackgroundWorker(&bgw);
}

/* ----------------------------------------------------------------
 *		starting workers
 * ---------------------------------------------------------------- */

/*
 * Claim a free slot and register a worker for dbname.  Returns the slot
 * index, or -1 (with a WARNING, or an ERROR when raise) if none is free or
 * the postmaster has no room for another background worker.
 */
static int
worker_start(const char *dbname, bool dynamic, bool raise, BackgroundWorkerHandle **handle)
{
	BackgroundWorker bgw;
	int			i;
	int			slot = -1;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nslots; i++)
		if (!shared->slots[i].in_use)
		{
			slot = i;
			memset(&shared->slots[i], 0, sizeof(WorkerSlot));
			shared->slots[i].in_use = true;
			shared->slots[i].dynamic = dynamic;
			strlcpy(shared->slots[i].dbname, dbname, NAMEDATALEN);
			strlcpy(shared->slots[i].state, "starting", sizeof(shared->slots[i].state));
			break;
		}
	LWLockRelease(shared->lock);
	if (slot < 0)
	{
		ereport(raise ? ERROR : WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("all %d stage worker slots are in use", shared->nslots),
				 errhint("Raise stage.max_workers (needs a restart).")));
		return -1;
	}

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "stage");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "stage_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "stage worker %s", dbname);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "stage worker");
	bgw.bgw_main_arg = Int32GetDatum(slot);
	bgw.bgw_notify_pid = handle ? MyProcPid : 0;
	if (!RegisterDynamicBackgroundWorker(&bgw, handle))
	{
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		shared->slots[slot].in_use = false;
		LWLockRelease(shared->lock);
		ereport(raise ? ERROR : WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a stage worker for database \"%s\"", dbname),
				 errhint("Raise max_worker_processes (needs a restart).")));
		return -1;
	}
	return slot;
}

/*
 * How many configured (not dynamic) workers serve dbname, in slots before
 * slot before (all of them: nslots)?
 */
static int
worker_serving(const char *dbname, int before)
{
	int			i;
	int			n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots && i < before; i++)
		if (shared->slots[i].in_use && !shared->slots[i].dynamic &&
			strcmp(shared->slots[i].dbname, dbname) == 0)
			n++;
	LWLockRelease(shared->lock);
	return n;
}

/* ----------------------------------------------------------------
 *		the launcher
 * ---------------------------------------------------------------- */

/*
 * The launcher's memory of when it last started a worker for a database,
 * so a worker that keeps failing (a missing role or database) is restarted
 * with a growing delay, 1 s to 60 s, instead of in a tight loop.
 */
typedef struct LaunchRecord
{
	char		dbname[NAMEDATALEN];
	TimestampTz last_start;
	int			delay_ms;
} LaunchRecord;

static LaunchRecord launches[128];
static int	nlaunches = 0;

static LaunchRecord *
launcher_record(const char *dbname)
{
	int			i;

	for (i = 0; i < nlaunches; i++)
		if (strcmp(launches[i].dbname, dbname) == 0)
			return &launches[i];
	if (nlaunches == lengthof(launches))
		return NULL;
	memset(&launches[nlaunches], 0, sizeof(LaunchRecord));
	strlcpy(launches[nlaunches].dbname, dbname, NAMEDATALEN);
	launches[nlaunches].delay_ms = 1000;
	return &launches[nlaunches++];
}

/*
 * May a worker for dbname be started now?  A worker that lived ten seconds
 * or more before it went away is replaced at once; one that died sooner
 * (a missing role or database, say) is replaced after a delay that doubles
 * each time, from 1 s up to 60 s.
 */
static bool
launcher_may_start(const char *dbname)
{
	LaunchRecord *r = launcher_record(dbname);
	TimestampTz now = GetCurrentTimestamp();

	if (r == NULL)
		return false;
	if (r->last_start != 0)
	{
		if (TimestampDifferenceExceeds(r->last_start, now, 10000))
			r->delay_ms = 1000;
		else if (!TimestampDifferenceExceeds(r->last_start, now, r->delay_ms))
			return false;
		else
			r->delay_ms = Min(r->delay_ms * 2, 60000);
	}
	r->last_start = now;
	return true;
}

/* is dbname in stage.databases? */
static bool
worker_db_listed(const char *dbname)
{
	char	   *list;
	List	   *names = NIL;
	ListCell   *lc;
	bool		found = false;

	if (stage_databases == NULL)
		return false;
	list = pstrdup(stage_databases);
	if (SplitIdentifierString(list, ',', &names))
		foreach(lc, names)
			if (strcmp((const char *) lfirst(lc), dbname) == 0)
				found = true;
	list_free(names);
	pfree(list);
	return found;
}

void
stage_launcher_main(Datum arg)
{
	/* databases whose worker could not start: try again, but not each nap */
	TimestampTz retry_after = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	shared->launcher = MyProc;
	pgstat_report_appname("stage launcher");

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (stage_worker_role == NULL || stage_worker_role[0] == '\0')
		{
			if (stage_databases && stage_databases[0] != '\0' && retry_after == 0)
				ereport(WARNING,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("stage.databases is set but stage.worker_role is empty: no stage worker started"),
						 errhint("Set stage.worker_role to a role that is not a superuser and is a member of the pipeline owners.")));
			retry_after = 1;
		}
		else if (GetCurrentTimestamp() >= retry_after && stage_databases)
		{
			char	   *list = pstrdup(stage_databases);
			List	   *names = NIL;
			ListCell   *lc;
			bool		failed = false;

			if (!SplitIdentifierString(list, ',', &names))
				ereport(WARNING,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid list syntax in stage.databases")));
			foreach(lc, names)
			{
				const char *db = (const char *) lfirst(lc);
				int			n = worker_serving(db, INT_MAX);

				/* the missing workers at once; a failing database backs off */
				if (n < stage_workers_per_database && launcher_may_start(db))
					for (; n < stage_workers_per_database; n++)
						if (worker_start(db, false, false, NULL) < 0)
						{
							failed = true;
							break;
						}
			}
			retry_after = failed ?
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 30000) : 0;
			list_free(names);
			pfree(list);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* a worker that exits (or fails to connect) frees its slot */
static void
worker_release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot->in_use = false;
	my_slot->pid = 0;
	my_slot->proc = NULL;
	LWLockRelease(shared->lock);
	my_slot = NULL;
	/* let the launcher start a replacement without waiting for its nap */
	if (shared->launcher != NULL)
		SetLatch(&shared->launcher->procLatch);
}

/* ----------------------------------------------------------------
 *		the worker
 * ---------------------------------------------------------------- */

static void
worker_set_state(const char *state, const char *pipeline, Oid owner)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(my_slot->state, state, sizeof(my_slot->state));
	strlcpy(my_slot->pipeline, pipeline ? pipeline : "", NAMEDATALEN);
	my_slot->pipeline_owner = owner;
	LWLockRelease(shared->lock);
}

typedef struct PipelineRef
{
	int			id;
	char	   *name;
	Oid			owner;
} PipelineRef;

/*
 * A short transaction of the worker's own, SPI connected, reporting what it
 * does; true when the extension is installed in the database (the catalog
 * may be read).  worker_end closes it.
 */
static bool
worker_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension"
					" WHERE extname OPERATOR(pg_catalog.=) 'stage'", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for the stage extension");
	return SPI_processed > 0;
}

static void
worker_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The enabled pipelines not backing off, in a short transaction; NIL when
 * the extension is not (yet) installed in this database.
 */
static List *
worker_pipelines(MemoryContext cxt)
{
	List	   *result = NIL;
	uint64		i;

	if (!worker_begin("stage: listing pipelines"))
	{
		worker_end();
		return NIL;
	}
	{
		Oid			argtype = OIDOID;
		Datum		arg = ObjectIdGetDatum(GetUserId());

		/* the pipelines of owners the worker's role is a member of */
		catalog_exec("SELECT pipeline_id, name, owner::pg_catalog.oid FROM stage.pipeline"
					 " WHERE (enabled OR held_version OPERATOR(pg_catalog.<>) contract_version)"
					 " AND pg_catalog.pg_has_role($1, owner::pg_catalog.oid, 'MEMBER')"
					 " AND (retry_at IS NULL"
					 " OR retry_at OPERATOR(pg_catalog.<=) pg_catalog.now())"
					 " ORDER BY pipeline_id", 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	}
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		PipelineRef *p = palloc(sizeof(PipelineRef));

		p->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		p->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		p->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		result = lappend(result, p);
		MemoryContextSwitchTo(old);
	}
	worker_end();
	return result;
}

/*
 * Record a failed batch and back off, in a fresh transaction: the failed
 * one is gone with everything it did.  Returns whether the pipeline masks
 * columns (then its error text may quote a masked value: see reason.c).
 */
static bool
worker_record_failure(PipelineRef *p, ErrorData *e)
{
	Oid			types[5] = {INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID};
	Datum		vals[5];
	bool		has_masks;
	bool		isnull;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "stage: recording a failed batch");
	vals[0] = Int32GetDatum(p->id);
	vals[1] = CStringGetTextDatum(e->message ? e->message : "unknown error");
	vals[2] = CStringGetTextDatum(unpack_sql_state(e->sqlerrcode));
	vals[3] = Int32GetDatum(stage_max_failures);
	vals[4] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	catalog_exec("SELECT stage._record_failure($1, $2, $3, $4, $5::pg_catalog.name)",
				 5, types, vals, NULL, SPI_OK_SELECT);
	has_masks = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										   1, &isnull));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return has_masks;
}

/*
 * One batch of one pipeline in a transaction of its own.  Returns the rows
 * it took (0: nothing pending, paused, or another worker holds it), or -1
 * after a failure, which is recorded.
 */
static int64
worker_run_one(PipelineRef *p, MemoryContext cxt)
{
	volatile int64 rows = 0;
	MemoryContext oldcxt = CurrentMemoryContext;

	worker_set_state("running", p->name, p->owner);
	PG_TRY();
	{
		Oid			argtype = INT4OID;
		Datum		arg = Int32GetDatum(p->id);
		BatchResult res;
		bool		ran;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, psprintf("stage: run_batch('%s')", p->name));

		/*
		 * nowait: a pipeline another worker (or a run_batch call) holds is
		 * left for this pass.  The lock is the pipeline's catalog row,
		 * which only stage can lock: no other role can hold a pipeline up.
		 */
		/*
		 * A batch runs owner code (triggers, expressions) that could wait
		 * on a lock of the owner's or sleep: bounded, so the worker goes
		 * on with the other owners' pipelines, and this one backs off.
		 * Owner code can change statement_timeout but not this timer.
		 */
		if (stage_worker_batch_timeout > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, stage_worker_batch_timeout);
		/* and a lock the owner holds (an open transaction on its target) fails it soon */
		if (stage_worker_lock_timeout > 0)
			(void) set_config_option("lock_timeout",
									 psprintf("%d", stage_worker_lock_timeout),
									 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
									 true, 0, false);
		ran = mover_run(p->name, stage_batch_size, true, &res);
		disable_timeout(STATEMENT_TIMEOUT, false);
		if (ran && res.rows_in > 0)
		{
			rows = res.rows_in;
			if (strcmp(res.status, "done") != 0)
				rows = 0;		/* held: nothing moved, stop here */
			LWLockAcquire(shared->lock, LW_EXCLUSIVE);
			my_slot->batch_id = res.batch_id;
			my_slot->batches++;
			my_slot->rows += res.rows_in;
			my_slot->last_batch_at = GetCurrentTimestamp();
			LWLockRelease(shared->lock);
			/*
			 * A success ends a series of failures.  Not waiting: beside
			 * the movers of other lanes (who hold the row in share) the
			 * wait could be a deadlock; a later batch resets it then.
			 */
			catalog_exec("UPDATE stage.pipeline SET failures = 0, retry_at = NULL"
						 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
						 " AND pipeline_id OPERATOR(pg_catalog.=) ANY (SELECT x.pipeline_id"
						 " FROM stage.pipeline x WHERE x.pipeline_id OPERATOR(pg_catalog.=) $1"
						 " AND x.failures OPERATOR(pg_catalog.>) 0 FOR UPDATE SKIP LOCKED)",
						 1, &argtype, &arg, NULL, SPI_OK_UPDATE);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(oldcxt);

		/*
		 * stage.workers is public: it says which pipeline failed and how,
		 * never the text, which may quote a value (the owners read it in
		 * stage.batches).
		 */
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		snprintf(my_slot->last_error, sizeof(my_slot->last_error),
				 "batch of pipeline \"%s\" failed: %s (SQLSTATE %s); see stage.batches",
				 p->name, sqlstate_name(unpack_sql_state(e->sqlerrcode)),
				 unpack_sql_state(e->sqlerrcode));
		my_slot->error_owner = p->owner;
		LWLockRelease(shared->lock);
		PG_TRY();
		{
			bool		has_masks = worker_record_failure(p, e);

			/* the text only where it cannot hold a masked value */
			ereport(LOG,
					(errmsg("stage: batch of pipeline \"%s\" failed: %s", p->name,
							has_masks ? reason_withheld(unpack_sql_state(e->sqlerrcode),
														NULL, NULL) : e->message),
					 errdetail("SQLSTATE %s.", unpack_sql_state(e->sqlerrcode))));
		}
		PG_CATCH();
		{
			/* could not even record it: say so, and go on with the others */
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
		FreeErrorData(e);
		rows = -1;
	}
	PG_END_TRY();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return rows;
}

/* stage.purge of one pipeline in a transaction of its own; a failure is logged */
static void
worker_purge_one(const char *name, MemoryContext cxt)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(name);

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		/* through the API's gate, as the worker's role (it checks ownership) */
		if (SPI_execute_with_args("SELECT stage.purge($1)",
								  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "stage.purge failed");
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
}

/*
 * Retention (stage.purge) of every pipeline whose owner the worker's role
 * is a member of, paused or not, each in a transaction of its own: drops
 * the finished landing partitions and the history past their retention,
 * and makes the landing partitions ahead.  A failure is logged and the
 * next pipeline goes on; the next round tries again.
 */
static void
worker_retention(MemoryContext cxt)
{
	List	   *names = NIL;
	ListCell   *lc;

	if (worker_begin("stage: retention"))
	{
		Oid			argtype = OIDOID;
		Datum		arg = ObjectIdGetDatum(GetUserId());
		uint64		i;

		catalog_exec("SELECT name FROM stage.pipeline"
					 " WHERE pg_catalog.pg_has_role($1, owner::pg_catalog.oid, 'MEMBER')"
					 " ORDER BY pipeline_id", 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
			MemoryContextSwitchTo(old);
		}
	}
	worker_end();

	foreach(lc, names)
	{
		CHECK_FOR_INTERRUPTS();
		worker_purge_one((const char *) lfirst(lc), cxt);
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * One pass over the database's pipelines, in rounds: each round gives
 * every pipeline one batch, so a busy pipeline cannot starve the others;
 * rounds go on until no pipeline had rows or the time budget is spent.
 * Returns true if rows may still be pending.
 */
static bool
worker_pass(MemoryContext cxt)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   stage_batch_time_budget);
	List	   *pipelines = worker_pipelines(cxt);

	for (;;)
	{
		ListCell   *lc;
		bool		any = false;

		foreach(lc, pipelines)
		{
			PipelineRef *p = (PipelineRef *) lfirst(lc);
			int64		rows;

			CHECK_FOR_INTERRUPTS();
			rows = worker_run_one(p, cxt);
			if (rows > 0)
				any = true;
			else if (rows < 0)
			{
				/* failed: it backs off (retry_at); not again in this pass */
				pipelines = foreach_delete_current(pipelines, lc);
			}
			if (GetCurrentTimestamp() >= deadline)
				return any;
		}
		if (!any)
			return false;
	}
}

/* when this worker last applied retention */
static TimestampTz last_retention = 0;

void
stage_worker_main(Datum arg)
{
	int			slot = DatumGetInt32(arg);
	MemoryContext cxt;
	char		dbname[NAMEDATALEN];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_slot = &shared->slots[slot];
	before_shmem_exit(worker_release_slot, (Datum) 0);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(dbname, my_slot->dbname, NAMEDATALEN);
	my_slot->pid = MyProcPid;
	my_slot->started_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);

	/*
	 * Started by a launcher that has not seen a reload yet (it woke when a
	 * worker stopped on that reload): this process, forked after the
	 * postmaster read the new settings, sees them.  A database no longer
	 * listed gets no worker, and none beyond stage.workers_per_database.
	 */
	if (!my_slot->dynamic && !worker_db_listed(dbname))
	{
		ereport(LOG,
				(errmsg("stage worker for database \"%s\" stops: the database left stage.databases",
						dbname)));
		proc_exit(0);
	}
	if (!my_slot->dynamic && worker_serving(dbname, slot) >= stage_workers_per_database)
	{
		ereport(LOG,
				(errmsg("stage worker for database \"%s\" stops: stage.workers_per_database is %d",
						dbname, stage_workers_per_database)));
		proc_exit(0);
	}
	if (stage_worker_role == NULL || stage_worker_role[0] == '\0')
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stage.worker_role is not set")));
	BackgroundWorkerInitializeConnection(dbname, stage_worker_role, 0);
	if (superuser())
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("stage.worker_role \"%s\" is a superuser", stage_worker_role),
				 errhint("Workers run with the rights of an ordinary role that is a member of the pipeline owners.")));

	/* names resolve in pg_catalog only, whatever the database says */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", "stage worker", PGC_USERSET, PGC_S_OVERRIDE);
	pgstat_report_appname("stage worker");

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot->dbid = MyDatabaseId;
	my_slot->proc = MyProc;
	strlcpy(my_slot->state, "idle", sizeof(my_slot->state));
	LWLockRelease(shared->lock);

	cxt = AllocSetContextCreate(TopMemoryContext, "stage worker",
								ALLOCSET_DEFAULT_SIZES);
	last_retention = GetCurrentTimestamp();
	ereport(LOG,
			(errmsg("stage worker started for database \"%s\" as role \"%s\"",
					dbname, stage_worker_role)));

	for (;;)
	{
		volatile bool pending;
		MemoryContext old;
		long		nap = stage_naptime;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (!my_slot->dynamic && !worker_db_listed(dbname))
			{
				ereport(LOG,
						(errmsg("stage worker for database \"%s\" stops: the database left stage.databases",
								dbname)));
				proc_exit(0);
			}
			/* the configured workers beyond stage.workers_per_database stop */
			if (!my_slot->dynamic &&
				worker_serving(dbname, (int) (my_slot - shared->slots)) >= stage_workers_per_database)
			{
				ereport(LOG,
						(errmsg("stage worker for database \"%s\" stops: stage.workers_per_database is %d",
								dbname, stage_workers_per_database)));
				proc_exit(0);
			}
		}

		old = MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			pending = worker_pass(cxt);
			if (stage_retention_interval > 0 &&
				TimestampDifferenceExceeds(last_retention, GetCurrentTimestamp(),
										   stage_retention_interval))
			{
				worker_set_state("retention", NULL, InvalidOid);
				last_retention = GetCurrentTimestamp();
				worker_retention(cxt);
			}
		}
		PG_CATCH();
		{
			/* not a batch's error (those are caught and recorded) */
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
			pending = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
		worker_set_state("idle", NULL, InvalidOid);

		if (!pending)
		{
			/* not past the next retention round */
			if (stage_retention_interval > 0)
			{
				long		secs;
				int			usecs;

				TimestampDifference(GetCurrentTimestamp(),
									TimestampTzPlusMilliseconds(last_retention, stage_retention_interval),
									&secs, &usecs);
				nap = Max(Min(nap, secs * 1000 + usecs / 1000), 10);
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 nap, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

/* ----------------------------------------------------------------
 *		waking workers when producers commit
 * ---------------------------------------------------------------- */

static void
worker_wake_callback(XactEvent event, void *arg)
{
	int			i;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT)
		return;
	if (!wake_pending)
		return;
	wake_pending = false;
	if (event != XACT_EVENT_COMMIT || shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots; i++)
		if (shared->slots[i].in_use && shared->slots[i].proc != NULL &&
			shared->slots[i].dbid == MyDatabaseId)
			SetLatch(&shared->slots[i].proc->procLatch);
	LWLockRelease(shared->lock);
}

/*
 * stage._wake(): statement trigger on every landing table.  It only notes
 * that this transaction landed rows; the workers are woken when it commits,
 * when the rows are visible to them.
 */
PG_FUNCTION_INFO_V1(stage_wake);
Datum
stage_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "stage._wake called outside a trigger");
	if (shared != NULL)
	{
		wake_pending = true;
		if (!wake_callback_registered)
		{
			RegisterXactCallback(worker_wake_callback, NULL);
			wake_callback_registered = true;
		}
	}
	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 *		SQL: stage.start_worker(), stage.workers
 * ---------------------------------------------------------------- */

static void
worker_require_shared(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stage background workers are not available"),
				 errhint("Add stage to shared_preload_libraries and restart; until then schedule stage.run_all() with pg_cron.")));
}

/* start one more worker for the current database; returns its pid */
PG_FUNCTION_INFO_V1(stage_start_worker);
Datum
stage_start_worker(PG_FUNCTION_ARGS)
{
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	BgwHandleStatus status;

	worker_require_shared();
	if (stage_worker_role == NULL || stage_worker_role[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stage.worker_role is not set"),
				 errhint("Set stage.worker_role to an ordinary role that is a member of the pipeline owners, and reload.")));
	(void) worker_start(get_database_name(MyDatabaseId), true, true, &handle);
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("the stage worker did not start"),
				 errhint("See the server log.")));
	PG_RETURN_INT32(pid);
}

PG_FUNCTION_INFO_V1(stage_workers);
Datum
stage_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	WorkerSlot *copy;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (shared == NULL)
		return (Datum) 0;
	/* a copy, so that the role checks below run without the lock */
	copy = palloc(sizeof(WorkerSlot) * Max(shared->nslots, 1));
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots; i++)
		if (shared->slots[i].in_use)
			copy[n++] = shared->slots[i];
	LWLockRelease(shared->lock);
	for (i = 0; i < n; i++)
	{
		WorkerSlot *s = &copy[i];
		Datum		values[11];
		bool		nulls[11];

		/*
		 * That a worker runs, anyone may see; which pipeline it is on and
		 * how its last batch failed, those who may see that pipeline
		 * (roles are cluster-wide, so this holds across databases).
		 */
		bool		see_pipeline = OidIsValid(s->pipeline_owner) &&
			guard_may_see(s->pipeline_owner);
		bool		see_error = OidIsValid(s->error_owner) &&
			guard_may_see(s->error_owner);

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(s->pid);
		nulls[0] = (s->pid == 0);
		values[1] = CStringGetTextDatum(s->dbname);
		values[2] = CStringGetTextDatum(s->state);
		values[3] = CStringGetTextDatum(s->pipeline);
		nulls[3] = (s->pipeline[0] == '\0' || !see_pipeline);
		values[4] = Int64GetDatum(s->batch_id);
		nulls[4] = (s->batch_id == 0 || !see_pipeline);
		values[5] = CStringGetTextDatum(s->last_error);
		nulls[5] = (s->last_error[0] == '\0' || !see_error);
		values[6] = Int64GetDatum(s->batches);
		values[7] = Int64GetDatum(s->rows);
		values[8] = TimestampTzGetDatum(s->started_at);
		nulls[8] = (s->started_at == 0);
		values[9] = TimestampTzGetDatum(s->last_batch_at);
		nulls[9] = (s->last_batch_at == 0);
		values[10] = BoolGetDatum(s->dynamic);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
