/*-------------------------------------------------------------------------
 *
 * backpressure.c
 *	  Backpressure: a pipeline's limit on its backlog (landing rows not yet
 *	  taken by a batch, or the age of the oldest of them), enforced when a
 *	  producer's INSERT or COPY into its landing table starts.
 *
 * The limit lives in stage.pipeline (max_backlog, max_backlog_age,
 * on_backlog, backlog_wait; stage.set_backpressure).  While one is set, the
 * landing table has a statement trigger, stage_backpressure, BEFORE INSERT
 * FOR EACH STATEMENT, with the pipeline id as its argument; without one it
 * has none, and producers pay nothing.  A statement trigger, never a row
 * trigger: a BEFORE ROW trigger would turn COPY's multi-row inserts off.
 * Over the limit the statement fails at once with SQLSTATE 53400
 * (configuration_limit_exceeded: class 53, insufficient resources, is what
 * clients and poolers retry later; "configuration limit" says that a
 * setting, not the machine, refused it), or, with on_backlog 'wait', first
 * sleeps on its latch in steps of BP_STEP_MS, looking again after each, up
 * to backlog_wait.  A statement that started is never stopped halfway, and
 * nothing already landed is touched.
 *
 * The backlog is an estimate, made of index probes, never a count: the
 * first pending row in (_stage_txid, _stage_id) order (a row of the open
 * window after its cursor, or one the window's snapshots leave out), as
 * stage._pending defines pending; its _stage_received_at is the age; the
 * rows are the landing's identity sequence's last value less that row's id,
 * plus one (so rows of open transactions count too).  Each probe reads at
 * most BP_PROBE_ROWS index entries: past that it gives up, and the estimate
 * comes out low rather than slow.  A backend keeps a pipeline's settings
 * and last estimate for BP_CACHE_US, so a producer that runs thousands of
 * single-row statements a second makes the probes ten times a second.
 *
 * The probes run as the catalog owner (guard.c), security-restricted, with
 * search_path pinned, through the landing table's parent (the table
 * p.landing names), on a snapshot taken at that moment; they read
 * stage.pipeline, stage.lane and the landing table, and run no owner code.
 * The error names the pipeline and the sizes, never a row's data.
 *
 * Counting.  A refused statement's transaction aborts, so refusals and
 * waits are counted in shared memory (a hash keyed by database and
 * pipeline, protected by one LWLock), read by stage._backpressure_counts
 * for stage.health and the metrics.  The counts start from zero when the
 * server starts (Prometheus reads that as a counter reset).  Without
 * shared_preload_libraries there is no shared memory: limits still hold,
 * nothing is counted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "backpressure.h"
#include "guard.h"

/* how long a backend trusts a pipeline's settings and backlog estimate */
#define BP_CACHE_US		(100 * 1000)
/* how long a waiting statement sleeps between looks */
#define BP_STEP_MS		100
/* index entries a probe reads at most */
#define BP_PROBE_ROWS	10000
/* pipelines the shared counters hold (of every database) */
#define BP_MAX_COUNTED	1024

/* ----------------------------------------------------------------
 *		shared counters
 * ---------------------------------------------------------------- */

typedef struct BpKey
{
	Oid			dbid;
	int32		pipeline_id;
} BpKey;

typedef struct BpCount
{
	BpKey		key;
	Oid			owner;			/* who may see the counts */
	int64		rejections;		/* statements refused */
	int64		waits;			/* statements that waited (then passed or not) */
	int64		wait_us;		/* time they waited */
} BpCount;

typedef struct BpShared
{
	LWLock	   *lock;
} BpShared;

static BpShared *bp_shared = NULL;
static HTAB *bp_counts = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
bp_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(BpShared)),
					hash_estimate_size(BP_MAX_COUNTED, sizeof(BpCount)));
}

static void
bp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(bp_shmem_size());
	RequestNamedLWLockTranche("stage_backpressure", 1);
}

static void
bp_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bp_shared = ShmemInitStruct("stage_backpressure", sizeof(BpShared), &found);
	if (!found)
		bp_shared->lock = &(GetNamedLWLockTranche("stage_backpressure"))->lock;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(BpKey);
	info.entrysize = sizeof(BpCount);
	bp_counts = ShmemInitHash("stage_backpressure counts", BP_MAX_COUNTED, BP_MAX_COUNTED,
							  &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* called from _PG_init while preloading */
void
backpressure_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = bp_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = bp_shmem_startup;
}

/* add to a pipeline's counts; a full table counts nothing more */
static void
bp_count(int32 pipeline_id, Oid owner, int64 rejections, int64 waits, int64 wait_us)
{
	BpKey		key;
	BpCount    *c;
	bool		found;

	if (bp_shared == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.pipeline_id = pipeline_id;
	LWLockAcquire(bp_shared->lock, LW_EXCLUSIVE);
	c = hash_search(bp_counts, &key, HASH_ENTER_NULL, &found);
	if (c != NULL)
	{
		if (!found)
		{
			c->rejections = 0;
			c->waits = 0;
			c->wait_us = 0;
		}
		c->owner = owner;
		c->rejections += rejections;
		c->waits += waits;
		c->wait_us += wait_us;
	}
	LWLockRelease(bp_shared->lock);
}

/* ----------------------------------------------------------------
 *		a pipeline's limit and backlog, as this backend last saw them
 * ---------------------------------------------------------------- */

typedef struct BpState
{
	int32		pipeline_id;	/* hash key */
	bool		valid;
	TimestampTz computed_at;
	char		name[NAMEDATALEN];
	Oid			owner;
	Oid			landing;
	int64		max_rows;		/* -1: no limit */
	int64		max_age_us;		/* -1: no limit */
	bool		wait;
	int64		max_wait_us;
	int64		rows;			/* the estimate */
	TimestampTz oldest;			/* 0: nothing pending */
	Oid			probe_landing;	/* the table probe_plan reads */
	SPIPlanPtr	probe_plan;
} BpState;

static HTAB *bp_states = NULL;
static SPIPlanPtr bp_read_plan = NULL;

static BpState *
bp_state(int32 pipeline_id)
{
	BpState    *s;
	bool		found;

	if (bp_states == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(int32);
		info.entrysize = sizeof(BpState);
		info.hcxt = TopMemoryContext;
		bp_states = hash_create("stage backpressure", 16, &info,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	s = hash_search(bp_states, &pipeline_id, HASH_ENTER, &found);
	if (!found)
	{
		memset(s, 0, sizeof(BpState));
		s->pipeline_id = pipeline_id;
	}
	return s;
}

/* forget what this backend knows of a pipeline (its settings changed) */
static void
bp_forget(int32 pipeline_id)
{
	BpState    *s;

	if (bp_states == NULL)
		return;
	s = hash_search(bp_states, &pipeline_id, HASH_FIND, NULL);
	if (s != NULL)
		s->valid = false;
}

/*
 * The pipeline's settings and the start of its open window's rest: the
 * cursor (the lowest of its lanes' that are not done), or, without a
 * window, the start of the rows win_lo leaves out.  No row: every lane is
 * done, only rows outside the window are pending.
 */
static const char *bp_read_sql =
"SELECT p.name, p.owner::pg_catalog.oid, p.landing::pg_catalog.oid, p.max_backlog,"
" (EXTRACT(epoch FROM p.max_backlog_age) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
" p.on_backlog OPERATOR(pg_catalog.=) 'wait',"
" (EXTRACT(epoch FROM p.backlog_wait) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
" p.win_lo, p.win_hi, pg_catalog.pg_snapshot_xmax(COALESCE(p.win_hi, p.win_lo)), c.t, c.i"
" FROM stage.pipeline p"
" LEFT JOIN LATERAL ("
"  SELECT pg_catalog.pg_snapshot_xmin(p.win_lo) AS t, 0::pg_catalog.int8 AS i WHERE p.win_hi IS NULL"
"  UNION ALL"
"  SELECT COALESCE(p.cur_txid, pg_catalog.pg_snapshot_xmin(p.win_lo)), COALESCE(p.cur_id, 0)"
"   WHERE p.win_hi IS NOT NULL AND COALESCE(p.win_lanes, 1) OPERATOR(pg_catalog.<=) 1"
"  UNION ALL"
"  (SELECT COALESCE(x.cur_txid, pg_catalog.pg_snapshot_xmin(p.win_lo)), COALESCE(x.cur_id, 0)"
"     FROM stage.lane x"
"    WHERE p.win_hi IS NOT NULL AND p.win_lanes OPERATOR(pg_catalog.>) 1"
"      AND x.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id AND NOT x.done"
"    ORDER BY 1, 2 LIMIT 1)) c ON true"
" WHERE p.pipeline_id OPERATOR(pg_catalog.=) $1";

/*
 * The probes of one landing table: $1, $2 the cursor (NULL: none), $3 the
 * xmax of the window's upper snapshot (of win_lo without a window), $4
 * win_lo, $5 win_hi (NULL: no window), $6 the identity sequence.  First
 * pending row of: the window after the cursor; the rows below $3 that
 * win_hi leaves out; the rows at or past $3.  Each an index scan, bounded.
 */
static char *
bp_probe_sql(const char *landing)
{
	return psprintf("SELECT pg_catalog.min(x.i), pg_catalog.min(x.r), pg_catalog.pg_sequence_last_value($6)"
					" FROM ("
					"(SELECT s.i, s.r FROM (SELECT l._stage_txid AS t, l._stage_id AS i, l._stage_received_at AS r"
					"   FROM %1$s l"
					"  WHERE $1 IS NOT NULL"
					"    AND ROW(l._stage_txid, l._stage_id) OPERATOR(pg_catalog.>) ROW($1, $2)"
					"    AND l._stage_txid OPERATOR(pg_catalog.<) $3"
					"  ORDER BY l._stage_txid, l._stage_id LIMIT %2$d) s"
					" WHERE NOT pg_catalog.pg_visible_in_snapshot(s.t, $4)"
					"   AND ($5 IS NULL OR pg_catalog.pg_visible_in_snapshot(s.t, $5))"
					" LIMIT 1)"
					" UNION ALL "
					"(SELECT s.i, s.r FROM (SELECT l._stage_txid AS t, l._stage_id AS i, l._stage_received_at AS r"
					"   FROM %1$s l"
					"  WHERE $5 IS NOT NULL"
					"    AND l._stage_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($5)"
					"    AND l._stage_txid OPERATOR(pg_catalog.<) $3"
					"  ORDER BY l._stage_txid, l._stage_id LIMIT %2$d) s"
					" WHERE NOT pg_catalog.pg_visible_in_snapshot(s.t, $5)"
					" LIMIT 1)"
					" UNION ALL "
					"(SELECT l._stage_id, l._stage_received_at FROM %1$s l"
					"  WHERE l._stage_txid OPERATOR(pg_catalog.>=) $3"
					"  ORDER BY l._stage_txid, l._stage_id LIMIT 1)) x",
					landing, BP_PROBE_ROWS);
}

static SPIPlanPtr
bp_prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "stage: could not prepare a backpressure probe (%s)",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "stage: could not keep a backpressure probe");
	return plan;
}

/*
 * Read the settings and estimate the backlog now.  SPI connected, as the
 * catalog owner (the caller sees to both).
 */
static void
bp_measure(BpState *s, int32 pipeline_id)
{
	Oid			read_types[1] = {INT4OID};
	Datum		read_vals[1] = {Int32GetDatum(pipeline_id)};
	Oid			probe_types[6] = {XID8OID, INT8OID, XID8OID, PG_SNAPSHOTOID, PG_SNAPSHOTOID, REGCLASSOID};
	Datum		probe_vals[6];
	char		probe_nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Oid			seq;
	Datum		d;

	if (bp_read_plan == NULL)
		bp_read_plan = bp_prepare(bp_read_sql, 1, read_types);
	if (SPI_execute_snapshot(bp_read_plan, read_vals, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "stage: could not read the backpressure settings");
	s->max_rows = -1;
	s->max_age_us = -1;
	s->rows = 0;
	s->oldest = 0;
	if (SPI_processed != 1)
		return;					/* dropped: nothing to hold */
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	strlcpy(s->name, SPI_getvalue(tup, desc, 1), NAMEDATALEN);
	s->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	s->landing = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	if (isnull)
		s->landing = InvalidOid;
	d = SPI_getbinval(tup, desc, 4, &isnull);
	if (!isnull)
		s->max_rows = DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	if (!isnull)
		s->max_age_us = DatumGetInt64(d);
	s->wait = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	s->max_wait_us = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	if ((s->max_rows < 0 && s->max_age_us < 0) || !OidIsValid(s->landing))
		return;

	/* the values outlive the tuple table: SPI's memory lasts to SPI_finish */
	probe_vals[3] = SPI_getbinval(tup, desc, 8, &isnull);	/* win_lo */
	probe_vals[4] = SPI_getbinval(tup, desc, 9, &isnull);	/* win_hi */
	if (isnull)
		probe_nulls[4] = 'n';
	probe_vals[2] = SPI_getbinval(tup, desc, 10, &isnull);
	probe_vals[0] = SPI_getbinval(tup, desc, 11, &isnull);
	if (isnull)
		probe_nulls[0] = 'n';
	probe_vals[1] = SPI_getbinval(tup, desc, 12, &isnull);
	if (isnull)
		probe_nulls[1] = 'n';

	seq = getIdentitySequence(s->landing, get_attnum(s->landing, "_stage_id"), true);
	if (!OidIsValid(seq))
		return;
	probe_vals[5] = ObjectIdGetDatum(seq);
	if (s->probe_plan == NULL || s->probe_landing != s->landing)
	{
		char	   *nsp = get_namespace_name(get_rel_namespace(s->landing));
		char	   *rel = get_rel_name(s->landing);

		if (nsp == NULL || rel == NULL)
			return;				/* dropped under us */
		if (s->probe_plan != NULL)
			SPI_freeplan(s->probe_plan);
		s->probe_plan = NULL;
		s->probe_plan = bp_prepare(bp_probe_sql(quote_qualified_identifier(nsp, rel)),
								   6, probe_types);
		s->probe_landing = s->landing;
	}
	if (SPI_execute_snapshot(s->probe_plan, probe_vals, probe_nulls, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "stage: could not estimate the backlog of pipeline \"%s\"", s->name);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	if (!isnull)
	{
		int64		first = DatumGetInt64(d);
		Datum		last = SPI_getbinval(tup, desc, 3, &isnull);

		s->rows = isnull ? 1 : Max(DatumGetInt64(last) - first + 1, 1);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		if (!isnull)
			s->oldest = DatumGetTimestampTz(d);
	}
}

/* settings and estimate as of now, read as the catalog owner */
static void
bp_refresh(BpState *s, int32 pipeline_id, TimestampTz now)
{
	GuardSwitch g;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	guard_push_catalog(&g);
	bp_measure(s, pipeline_id);
	guard_pop(&g);
	SPI_finish();
	s->computed_at = now;
	s->valid = true;
}

/* is the pipeline over its limit? */
static bool
bp_over(BpState *s, TimestampTz now, bool *by_age)
{
	*by_age = false;
	if (s->max_rows >= 0 && s->rows > s->max_rows)
		return true;
	if (s->max_age_us >= 0 && s->oldest != 0 && now - s->oldest > s->max_age_us)
	{
		*by_age = true;
		return true;
	}
	return false;
}

/* ----------------------------------------------------------------
 *		the refusal
 * ---------------------------------------------------------------- */

/* 1203455 as "1,203,455" */
static char *
bp_thousands(int64 v)
{
	char		digits[32];
	StringInfoData s;
	int			n;
	int			i;

	snprintf(digits, sizeof(digits), INT64_FORMAT, v);
	n = strlen(digits);
	initStringInfo(&s);
	for (i = 0; i < n; i++)
	{
		appendStringInfoChar(&s, digits[i]);
		if (digits[i] != '-' && (n - i - 1) % 3 == 0 && i < n - 1)
			appendStringInfoChar(&s, ',');
	}
	return s.data;
}

/* microseconds as hh:mm:ss */
static char *
bp_duration(int64 us)
{
	int64		secs = Max(us, 0) / USECS_PER_SEC;

	return psprintf("%02lld:%02d:%02d", (long long) (secs / 3600),
					(int) (secs / 60 % 60), (int) (secs % 60));
}

static void
bp_refuse(BpState *s, TimestampTz now, bool by_age, int64 waited_us)
{
	char	   *behind = psprintf("pipeline \"%s\" is %s %s behind (oldest pending row %s old)",
								  s->name, bp_thousands(s->rows), s->rows == 1 ? "row" : "rows",
								  bp_duration(s->oldest != 0 ? now - s->oldest : 0));

	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 by_age ?
			 errmsg("%s; its max_backlog_age is %s", behind, bp_duration(s->max_age_us)) :
			 errmsg("%s; its max_backlog is %s", behind, bp_thousands(s->max_rows)),
			 waited_us > 0 ?
			 errdetail("The statement waited %s for the backlog to fall under the limit; nothing was landed, and the rows landed before are kept.",
					   bp_duration(waited_us)) :
			 errdetail("Inserts into the landing table are refused while the backlog is over the limit; nothing was landed, and the rows landed before are kept."),
			 errhint("Retry the statement later. The rows move when the stage worker or stage.run_batch('%s') runs; an owner of the pipeline can raise the limit with stage.set_backpressure.",
					 s->name)));
}

/* ----------------------------------------------------------------
 *		the trigger
 * ---------------------------------------------------------------- */

static void
bp_enforce(int32 pipeline_id)
{
	BpState    *s = bp_state(pipeline_id);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz start;
	bool		by_age;

	if (!s->valid || now - s->computed_at >= BP_CACHE_US)
		bp_refresh(s, pipeline_id, now);
	if (!bp_over(s, now, &by_age))
		return;
	if (!s->wait || s->max_wait_us <= 0)
	{
		bp_count(pipeline_id, s->owner, 1, 0, 0);
		bp_refuse(s, now, by_age, 0);
	}

	/* on_backlog 'wait': look again every step until backlog_wait is spent */
	start = now;
	while (now - start < s->max_wait_us)
	{
		int64		left_ms = (s->max_wait_us - (now - start) + 999) / 1000;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) Min(left_ms, BP_STEP_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();
		bp_refresh(s, pipeline_id, now);
		if (!bp_over(s, now, &by_age))
		{
			bp_count(pipeline_id, s->owner, 0, 1, now - start);
			return;
		}
	}
	bp_count(pipeline_id, s->owner, 1, 1, now - start);
	bp_refuse(s, now, by_age, Max(now - start, 1));
}

/*
 * stage._backpressure(): BEFORE INSERT FOR EACH STATEMENT on a landing
 * table whose pipeline has a limit; its argument is the pipeline id (set
 * by stage._backpressure_ddl).
 */
PG_FUNCTION_INFO_V1(stage_backpressure);
Datum
stage_backpressure(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || td->tg_trigger->tgnargs != 1)
		elog(ERROR, "stage._backpressure must be a BEFORE ... FOR EACH STATEMENT trigger with the pipeline id");
	bp_enforce(pg_strtoint32(td->tg_trigger->tgargs[0]));
	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 *		SQL: the trigger's DDL, the counts
 * ---------------------------------------------------------------- */

/*
 * stage._backpressure_ddl(pipeline_id): give the landing table the
 * trigger when the pipeline has a limit, take it away when it has none.
 * Landing tables belong to the catalog owner: the DDL runs as that role.
 * Whoever makes a landing table anew calls it again.
 */
PG_FUNCTION_INFO_V1(stage_backpressure_ddl);
Datum
stage_backpressure_ddl(PG_FUNCTION_ARGS)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Oid			landing;
	Oid			owner;
	bool		limited;
	char	   *name;
	char	   *nsp;
	char	   *rel;
	GuardSwitch g;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	catalog_exec("SELECT landing::pg_catalog.oid, owner::pg_catalog.oid, name,"
				 " max_backlog IS NOT NULL OR max_backlog_age IS NOT NULL"
				 " FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %d does not exist", pipeline_id)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	landing = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	if (isnull)
		landing = InvalidOid;
	owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	name = SPI_getvalue(tup, desc, 3);
	limited = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	if (!guard_owns(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for pipeline \"%s\"", name),
				 errhint("Only members of the pipeline's owner role and superusers may change it.")));

	nsp = OidIsValid(landing) ? get_namespace_name(get_rel_namespace(landing)) : NULL;
	rel = OidIsValid(landing) ? get_rel_name(landing) : NULL;
	if (nsp != NULL && rel != NULL)
	{
		const char *qname = quote_qualified_identifier(nsp, rel);
		char	   *sql = NULL;

		if (limited)
			sql = psprintf("CREATE OR REPLACE TRIGGER stage_backpressure BEFORE INSERT ON %s"
						   " FOR EACH STATEMENT EXECUTE FUNCTION stage._backpressure('%d')",
						   qname, pipeline_id);
		else if (OidIsValid(get_trigger_oid(landing, "stage_backpressure", true)))
			sql = psprintf("DROP TRIGGER stage_backpressure ON %s", qname);
		if (sql != NULL)
		{
			guard_push_catalog(&g);
			if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "stage: backpressure DDL failed: %s", sql);
			guard_pop(&g);
		}
	}
	SPI_finish();
	bp_forget(pipeline_id);
	PG_RETURN_VOID();
}

/*
 * stage._backpressure_counts(): the refusals and waits of the current
 * database's pipelines since the server started, for those the caller may
 * see.
 */
PG_FUNCTION_INFO_V1(stage_backpressure_counts);
Datum
stage_backpressure_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	BpCount    *c;
	BpCount    *copy;
	int			n = 0;
	int			cap = 16;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (bp_shared == NULL)
		return (Datum) 0;
	/* a copy, so that the role checks below run without the lock */
	copy = palloc(sizeof(BpCount) * cap);
	LWLockAcquire(bp_shared->lock, LW_SHARED);
	hash_seq_init(&seq, bp_counts);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		if (c->key.dbid != MyDatabaseId)
			continue;
		if (n == cap)
		{
			cap *= 2;
			copy = repalloc(copy, sizeof(BpCount) * cap);
		}
		copy[n++] = *c;
	}
	LWLockRelease(bp_shared->lock);
	for (i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		if (!guard_may_see(copy[i].owner))
			continue;
		values[0] = Int32GetDatum(copy[i].key.pipeline_id);
		values[1] = Int64GetDatum(copy[i].rejections);
		values[2] = Int64GetDatum(copy[i].waits);
		values[3] = Float8GetDatum((double) copy[i].wait_us / USECS_PER_SEC);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
