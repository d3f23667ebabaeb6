/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  stage.run_batch: one batch, end to end, in the caller's transaction.
 *
 * A batch is the next rows of the pipeline's snapshot window: the landing
 * rows whose inserting transaction is visible in snapshot win_hi and not
 * in win_lo, taken in (_stage_txid, _stage_id) order after the cursor
 * (cur_txid, cur_id), at most max_rows of them.  Exactly once follows from
 * doing everything in one transaction:
 *
 *	1. enter the pipeline through the guard and lock its row (FOR UPDATE,
 *	   or FOR SHARE plus a lane's row when the window is worked in lanes),
 *	   then, in a later statement whose snapshot sees any batch committed
 *	   while we waited, read the window and open it (win_hi := current
 *	   snapshot) if none is open;
 *	2. read the rows in pieces of at most MOVER_PIECE; check every row of a
 *	   piece in C against the compiled contract (check.c);
 *	3. write its clean rows to the target (masked), failing rows to
 *	   stage.quarantine_log, duplicates to stage.duplicate_log (write.c);
 *	4. record the batch and advance the cursor (or close the window); a
 *	   batch whose rows break max_reject_ratio or drift under policy hold
 *	   is held instead: its writes undone, the pipeline paused.
 *
 * If the transaction aborts or the server dies, none of it happened and
 * the same rows are taken again.  The mover never updates or deletes
 * landing.  Errors that can be pinned on a row (stage_row_error) quarantine
 * that row (outcome.c); anything else aborts the batch.
 *
 * What it may touch: stage.pipeline (window, cursor, hold), stage.lane and
 * stage.batch, as the catalog owner (catalog_exec); the landing table, read
 * through its index only.  The checks and writes below it run the owner's
 * code, under the guard (guard.c) entered here.
 *
 * Memory: a batch's memory lives in one context per backend
 * (mover_batch_cxt), KEPT across batches and reset between them, not
 * freed: its first block stays in place for the next batch.  A batch run
 * from inside another (a target trigger calling run_batch) gets a context
 * of its own, deleted at its end.  Within a batch, each piece's rows live
 * in a child context reset before the next piece.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/attmap.h"
#include "access/genam.h"
#include "access/table.h"
#include "storage/lmgr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/tupconvert.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "lane.h"
#include "mover_int.h"
#include "transform.h"

/*
 * A batch reads, checks and writes its rows in pieces of at most
 * MOVER_PIECE rows, each piece's memory freed before the next: a batch of a
 * million rows (run_batch(p, 1000000), or a large stage.batch_size) needs
 * no more memory than one of ten thousand.  The pieces are one transaction
 * and one batch record; rule counts and latencies add up over them.
 */
#define MOVER_PIECE 10000

/* the role that called run_batch (the batch itself runs as the owner) */
static Oid	mover_caller = InvalidOid;

/* the memory of run_batch, kept across batches (see mover_run) */
static MemoryContext mover_batch_cxt = NULL;
static int	mover_depth = 0;	/* run_batch calls in progress in this backend */

/* the pipeline row's window state, read after the row lock is held */
typedef struct Window
{
	int			pipeline_id;
	bool		enabled;
	int			version;
	bool		fresh;			/* win_hi was opened by this call */
	Datum		lo;				/* pg_snapshot */
	Datum		hi;
	Datum		hi_xmax;		/* xid8 */
	Datum		cur_txid;		/* xid8 */
	int64		cur_id;
	Datum		start_txid;		/* xid8: the cursor before a window's first row */
	int			lanes;			/* of the open window (1: no lanes) */
	int			next_lanes;		/* the pipeline's, for the next window */
	int			lane;			/* the lane worked (-1: none) */
} Window;

/* ----------------------------------------------------------------
 *		entering a pipeline
 * ---------------------------------------------------------------- */

/*
 * Look a pipeline up by name, as the catalog owner (nobody else reads the
 * catalog).  Raises "does not exist" when it does not.
 */
void
mover_find_pipeline(const char *name, PipelineInfo *pi)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	catalog_exec("SELECT pipeline_id, owner::pg_catalog.oid,"
				 " EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
				 "         WHERE c.oid OPERATOR(pg_catalog.=) target::pg_catalog.oid),"
				 " landing::pg_catalog.oid, contract_version, enabled,"
				 " win_hi IS NOT NULL AND win_lanes OPERATOR(pg_catalog.>) 1"
				 " AND EXISTS (SELECT 1 FROM stage.lane x WHERE x.pipeline_id"
				 " OPERATOR(pg_catalog.=) pipeline.pipeline_id AND NOT x.done),"
				 " target::pg_catalog.oid"
				 " FROM stage.pipeline WHERE name OPERATOR(pg_catalog.=) $1",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("See SELECT pipeline FROM stage.pipelines for the pipelines of this database.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	pi->pipeline_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	pi->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	pi->target_exists = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	pi->landing = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	pi->version = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	pi->enabled = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	pi->lanes_open = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
	pi->target = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Enter a pipeline for a batch or a replay: find it, check the caller may
 * run it (a member of its owner role, or a superuser), enter it through
 * the guard (guard.c: the owner's identity in a restricted context,
 * search_path pinned, every setting made inside discarded on the way
 * out, a second entry into the same pipeline from inside refused), and
 * lock its row.  The target's triggers, defaults and the contract's
 * expressions are the owner's code and never run with the rights of
 * whoever calls (a superuser's pg_cron job, say).  Deferred constraints
 * of the target would fire at commit, outside the bisection, and fail the
 * whole batch again and again: they are checked at the end of each
 * statement instead.  An error undoes all of it with the transaction.
 *
 * The row lock is one only stage can take (nobody else may lock rows of
 * stage.pipeline), so no stranger can stop a pipeline from running; with
 * nowait, a pipeline whose row another session holds is skipped (false).
 * With may_lane, an open window worked in lanes is entered in one of its
 * lanes (the pipeline's row FOR SHARE, the lane's FOR UPDATE; false when
 * other movers hold every lane left); a replay always takes the whole
 * pipeline.
 */
bool
mover_enter(const char *name, MoverSession *ms, bool nowait, bool may_lane)
{
	PipelineInfo pi;
	Oid			argtype = INT4OID;
	Datum		arg;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	mover_find_pipeline(name, &pi);
	ms->save_userid = stage_caller();
	if (!guard_owns(pi.owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for pipeline \"%s\"", name),
				 errhint("Only members of the pipeline's owner role and superusers may run its batches.")));
	if (!pi.target_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the target table of pipeline \"%s\" no longer exists", name),
				 errhint("Its landing rows and quarantine are kept. A new target needs a new pipeline; drop this one with stage.drop_pipeline('%s', force => true) once nothing in it is needed.", name)));
	ms->pipeline_id = pi.pipeline_id;

	mover_caller = ms->save_userid;
	memset(&ms->guard, 0, sizeof(Guard));
	guard_enter(&ms->guard, pi.pipeline_id, name, pi.owner);

	/*
	 * The target first, then the pipeline's row: in the order an ALTER
	 * TABLE of the target takes them (its event trigger updates the row,
	 * stage._follow_target), so the two wait for each other instead of
	 * deadlocking.  With nowait, a target being altered is skipped.
	 */
	if (nowait)
	{
		if (!ConditionalLockRelationOid(pi.target, RowExclusiveLock))
			return false;
	}
	else
		LockRelationOid(pi.target, RowExclusiveLock);
	arg = Int32GetDatum(pi.pipeline_id);
	ms->lane = -1;
	if (may_lane && pi.enabled && pi.lanes_open)
	{
		/* a lane of the open window, beside the movers of its other lanes */
		catalog_exec(nowait ?
					 "SELECT 1 FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " FOR SHARE SKIP LOCKED" :
					 "SELECT 1 FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " FOR SHARE",
					 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			return false;
		catalog_exec("SELECT lane FROM stage.lane WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " AND NOT done ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED",
					 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			return false;		/* every lane left is being worked */
		{
			bool		isnull;

			ms->lane = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	else
	{
		/* the whole pipeline: its window, or the opening and closing of one */
		catalog_exec(nowait ?
					 "SELECT 1 FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " FOR UPDATE SKIP LOCKED" :
					 "SELECT 1 FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " FOR UPDATE",
					 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			return false;
	}
	mover_exec("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	return true;
}

/* undo mover_enter: the program unpinned, the guard left, SPI finished */
void
mover_leave(MoverSession *ms)
{
	if (ms->prog)
		contract_release(ms->prog);
	ms->prog = NULL;
	guard_leave(&ms->guard);
	SPI_finish();
}

/* ----------------------------------------------------------------
 *		the window
 * ---------------------------------------------------------------- */

/*
 * Read the pipeline's window state into w (its snapshots copied into cxt);
 * when no window is open, a new one reaches up to a snapshot taken now
 * (w->fresh), recorded when the batch advances or opens lanes.
 */
static void
mover_read_window(Window *w, int pipeline_id, bool whole, MemoryContext cxt)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;

	/*
	 * A contract change since a batch was held is the fix: lift the hold.
	 * Only with the pipeline's row held FOR UPDATE (whole), not beside
	 * the movers of other lanes.
	 */
	if (whole)
		catalog_exec("UPDATE stage.pipeline SET enabled = true, paused_reason = NULL, held_version = NULL"
					 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND NOT enabled"
					 " AND held_version OPERATOR(pg_catalog.<>) contract_version",
					 1, &argtype, &arg, NULL, SPI_OK_UPDATE);
	/* a statement of its own: its snapshot postdates the lock */
	catalog_exec("SELECT p.enabled, p.contract_version, p.win_lo,"
			   " COALESCE(p.win_hi, s.snap), p.win_hi IS NULL,"
			   " pg_catalog.pg_snapshot_xmax(COALESCE(p.win_hi, s.snap)),"
			   " COALESCE(p.cur_txid, pg_catalog.pg_snapshot_xmin(p.win_lo)),"
			   " COALESCE(p.cur_id, 0), pg_catalog.pg_snapshot_xmin(p.win_lo),"
			   " CASE WHEN p.win_hi IS NULL THEN 1 ELSE COALESCE(p.win_lanes, 1) END, p.lanes"
			   " FROM stage.pipeline p, (SELECT stage._window_snapshot() AS snap) s"
			   " WHERE p.pipeline_id OPERATOR(pg_catalog.=) $1",
			   1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "pipeline %d vanished", pipeline_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cxt);
	w->pipeline_id = pipeline_id;
	w->enabled = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	w->version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	w->lo = datumCopy(SPI_getbinval(tup, desc, 3, &isnull), false, -1);
	w->hi = datumCopy(SPI_getbinval(tup, desc, 4, &isnull), false, -1);
	w->fresh = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	w->hi_xmax = SPI_getbinval(tup, desc, 6, &isnull);
	w->cur_txid = SPI_getbinval(tup, desc, 7, &isnull);
	w->cur_id = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
	w->start_txid = SPI_getbinval(tup, desc, 9, &isnull);
	w->lanes = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
	w->next_lanes = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
	w->lane = -1;
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

/* ----------------------------------------------------------------
 *		lanes: one window worked by several movers at once
 *
 * A pipeline with lanes (stage.set_lanes) splits each window by the lane
 * of its rows (lane.c: the key's landing text hashed).  Each lane has its
 * cursor in stage.lane; a mover holds the pipeline's row FOR SHARE, so
 * movers of other lanes go on beside it while contract changes, pauses
 * and the next window wait, and its lane's row FOR UPDATE, so no other
 * mover takes the same lane.  Opening and closing a window need the
 * pipeline's row FOR UPDATE: no lane is being worked then.  A batch and
 * its lane's new cursor commit together, as for a pipeline without
 * lanes, so each row is still taken exactly once.
 * ---------------------------------------------------------------- */

/* the cursor of lane w->lane */
static void
mover_lane_load(Window *w, int lane, Datum cur_txid, bool txid_null, int64 cur_id)
{
	w->lane = lane;
	w->cur_txid = txid_null ? w->start_txid : cur_txid;
	w->cur_id = txid_null ? 0 : cur_id;
}

/*
 * Take the next lane of the open window no other mover holds and that
 * still has rows to take; false if there is none.
 */
static bool
mover_lane_next(Window *w)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(w->pipeline_id);
	bool		isnull;
	bool		txid_null;
	Datum		txid;
	int64		id;
	int			lane;

	catalog_exec("SELECT lane, cur_txid, cur_id FROM stage.lane"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND NOT done"
				 " ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	lane = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	txid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &txid_null);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	SPI_freetuptable(SPI_tuptable);
	mover_lane_load(w, lane, txid, txid_null, id);
	return true;
}

/* lane, which mover_enter locked */
static void
mover_lane_take(Window *w, int lane)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		vals[2] = {Int32GetDatum(w->pipeline_id), Int32GetDatum(lane)};
	bool		isnull;
	bool		txid_null;
	Datum		txid;
	int64		id;

	catalog_exec("SELECT cur_txid, cur_id FROM stage.lane"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND lane OPERATOR(pg_catalog.=) $2",
				 2, types, vals, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1 || w->lanes <= 1)
		elog(ERROR, "lane %d of pipeline %d vanished", lane, w->pipeline_id);
	txid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &txid_null);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	mover_lane_load(w, lane, txid, txid_null, id);
}

/* the lane's new cursor, and whether it has taken all its rows */
static void
mover_lane_save(Window *w, bool done)
{
	Oid			types[5] = {INT4OID, INT4OID, XID8OID, INT8OID, BOOLOID};
	Datum		vals[5] = {Int32GetDatum(w->pipeline_id), Int32GetDatum(w->lane),
	w->cur_txid, Int64GetDatum(w->cur_id), BoolGetDatum(done)};

	catalog_exec("UPDATE stage.lane SET cur_txid = $3, cur_id = $4, done = $5"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND lane OPERATOR(pg_catalog.=) $2",
				 5, types, vals, NULL, SPI_OK_UPDATE);
}

/*
 * Every lane done, and the pipeline's row to be had FOR UPDATE now (no
 * other mover holds it, in share or otherwise): the window may close.
 */
static bool
mover_lanes_closable(Window *w)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(w->pipeline_id);

	catalog_exec("SELECT 1 FROM stage.lane WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND NOT done",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		return false;
	catalog_exec("SELECT 1 FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
				 " FOR UPDATE SKIP LOCKED",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	return SPI_processed == 1;
}

/*
 * A window just opened, for a pipeline with lanes: record it with its
 * lanes, all at the start, and take lane 0.  The caller holds the
 * pipeline's row FOR UPDATE.
 */
static void
mover_lanes_open(Window *w)
{
	Oid			types[3] = {INT4OID, PG_SNAPSHOTOID, INT4OID};
	Datum		vals[3] = {Int32GetDatum(w->pipeline_id), w->hi, Int32GetDatum(w->next_lanes)};

	w->lanes = w->next_lanes;
	catalog_exec("UPDATE stage.pipeline SET win_hi = $2, win_lanes = $3, cur_txid = NULL, cur_id = NULL"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				 3, types, vals, NULL, SPI_OK_UPDATE);
	catalog_exec("INSERT INTO stage.lane (pipeline_id, lane)"
				 " SELECT $1, g FROM pg_catalog.generate_series(0, $3 OPERATOR(pg_catalog.-) 1) g",
				 3, types, vals, NULL, SPI_OK_INSERT);
	if (!mover_lane_next(w))
		elog(ERROR, "lane 0 of a new window of pipeline %d is locked", w->pipeline_id);
}

/* close the window: the next batch opens a new one from here */
static void
mover_close_window(Window *w)
{
	Oid			types[2] = {INT4OID, PG_SNAPSHOTOID};
	Datum		vals[2] = {Int32GetDatum(w->pipeline_id), w->hi};

	catalog_exec("UPDATE stage.pipeline SET win_lo = $2, win_hi = NULL, cur_txid = NULL,"
			   " cur_id = NULL, win_lanes = NULL WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
			   2, types, vals, NULL, SPI_OK_UPDATE);
	if (w->lanes > 1)
		catalog_exec("DELETE FROM stage.lane WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
					 1, types, vals, NULL, SPI_OK_DELETE);
}

/* ----------------------------------------------------------------
 *		reading the rows
 * ---------------------------------------------------------------- */

/* a copy of a text datum as a text whose data is also a C string */
static Datum
mover_text_copy(Datum d, char **cstr)
{
	struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(d));
	Size		len = VARSIZE_ANY_EXHDR(v);
	text	   *t;

	/*
	 * A value detoasted into memory of its own (a large one) gets its
	 * terminator in place: for a large chunk, repalloc grows the mapping
	 * without copying.
	 */
	if ((Pointer) v != DatumGetPointer(d) && !VARATT_IS_SHORT(v))
	{
		t = (text *) repalloc(v, VARSIZE(v) + 1);
		((char *) t)[VARSIZE(t)] = '\0';
		*cstr = VARDATA(t);
		return PointerGetDatum(t);
	}
	t = palloc(VARHDRSZ + len + 1);

	SET_VARSIZE(t, VARHDRSZ + len);
	memcpy(VARDATA(t), VARDATA_ANY(v), len);
	VARDATA(t)[len] = '\0';
	if ((Pointer) v != DatumGetPointer(d))
		pfree(v);
	*cstr = VARDATA(t);
	return PointerGetDatum(t);
}

/* is the transaction txid visible in snapshot (pg_visible_in_snapshot)? */
static bool
mover_in_snapshot(Datum txid, Datum snapshot)
{
	return DatumGetBool(DirectFunctionCall2(pg_visible_in_snapshot, txid, snapshot));
}


/* a row's per-column arrays, all NULL; the row clean until a check fails */
void
mover_row_init(RuleProgram *p, MoverRow *row)
{
	row->vals = palloc0(sizeof(char *) * Max(p->ncols, 1));
	row->datums = palloc0(sizeof(Datum) * Max(p->ncols, 1));
	row->badtype = palloc0(sizeof(bool) * Max(p->ncols, 1));
	row->extra = p->nextra > 0 ? palloc0(sizeof(char *) * p->nextra) : NULL;
	row->unread = NULL;
	row->outcome = OUT_CLEAN;
}

/*
 * The row's values from a JSON object of column: value (jsonb payloads,
 * check_row's argument, a quarantined row replayed), each as its landing
 * text; a key that is missing, or jb NULL or not an object, leaves NULL.
 */
void
mover_row_from_json(RuleProgram *p, MoverRow *row, Jsonb *jb)
{
	int			c;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		return;
	for (c = 0; c < p->ncols; c++)
	{
		JsonbValue	v;
		const char *cn = p->cols[c].name;

		if (getKeyJsonValueFromContainer(&jb->root, cn, strlen(cn), &v) == NULL)
			continue;
		row->vals[c] = transform_json_text(&v);
		if (row->vals[c] != NULL)
			row->datums[c] = CStringGetTextDatum(row->vals[c]);
	}
	/* a checked, previewed or replayed row: its landing columns only transforms read */
	for (c = 0; c < p->nextra; c++)
	{
		JsonbValue	v;
		const char *cn = p->extra_name[c];

		if (getKeyJsonValueFromContainer(&jb->root, cn, strlen(cn), &v) != NULL)
			row->extra[c] = transform_json_text(&v);
	}
}

/* the lane of the landing row in slot (lane.c), as stage._lane computes it */
static int
mover_row_lane(RuleProgram *p, TupleTableSlot *slot, int64 id, int lanes)
{
	uint32		h = LANE_SEED;
	bool		isnull;
	int			k;

	if (p->nkeys == 0)
		return lane_of_id(id, lanes);
	if (p->jsonb_format)
	{
		Datum		d = slot_getattr(slot, p->l_payload, &isnull);
		Jsonb	   *jb = isnull ? NULL : DatumGetJsonbP(d);

		for (k = 0; k < p->nkeys; k++)
		{
			const char *cn = p->cols[p->keycols[k]].name;
			JsonbValue	v;
			char	   *t = NULL;

			if (jb != NULL && JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb) &&
				getKeyJsonValueFromContainer(&jb->root, cn, strlen(cn), &v) != NULL)
				t = transform_json_text(&v);
			h = lane_add(h, t, t ? strlen(t) : 0);
		}
		return lane_end(h, lanes);
	}
	for (k = 0; k < p->nkeys; k++)
	{
		Datum		d = slot_getattr(slot, p->cols[p->keycols[k]].landing_attnum, &isnull);
		text	   *t;

		if (isnull)
		{
			h = lane_add(h, NULL, 0);
			continue;
		}
		t = DatumGetTextPP(d);
		h = lane_add(h, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	return lane_end(h, lanes);
}


/*
 * A text value of a row as a C string, shared with the previous row when
 * it is the same (a piece's sources and roles are few: most rows then cost
 * a comparison, not an allocation).
 */
static char *
mover_text_shared(Datum d, char **last)
{
	text	   *t = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (*last == NULL || strlen(*last) != (size_t) len ||
		memcmp(*last, VARDATA_ANY(t), len) != 0)
		*last = text_to_cstring(t);
	return *last;
}
/*
 * Reading a chunk: the cursor it starts from, the end of the window, the
 * rows wanted, and what is shared between rows.
 */
typedef struct ChunkRead
{
	FullTransactionId cur_txid;
	int64		cur_id;
	FullTransactionId hi_xmax;
	int64		limit;
	int			cap;
	char	   *last_source;
	char	   *last_role;
} ChunkRead;

/*
 * Take the landing row in slot (in the landing table's own layout) into the
 * chunk if it is in the window and in the lane.  False once the walk must
 * stop: the row is past the window, and so is every later one.
 */
static bool
mover_take_row(Mover *m, Window *w, ChunkRead *cr, TupleTableSlot *slot)
{
	RuleProgram *p = m->p;
	MoverRow   *row;
	Datum		txid;
	FullTransactionId ftxid;
	int64		id;
	bool		isnull;
	int			c;

	CHECK_FOR_INTERRUPTS();
	txid = slot_getattr(slot, p->l_txid, &isnull);
	ftxid = DatumGetFullTransactionId(txid);
	if (!FullTransactionIdPrecedes(ftxid, cr->hi_xmax))
		return false;			/* every later row is past the window */
	id = DatumGetInt64(slot_getattr(slot, p->l_id, &isnull));
	if (FullTransactionIdPrecedes(ftxid, cr->cur_txid) ||
		(FullTransactionIdEquals(ftxid, cr->cur_txid) && id <= cr->cur_id))
		return true;			/* at or before the cursor (the key sees to it) */
	if (!mover_in_snapshot(txid, w->hi) || mover_in_snapshot(txid, w->lo))
		return true;			/* another window's */
	if (w->lanes > 1 && mover_row_lane(p, slot, id, w->lanes) != w->lane)
		return true;			/* another lane's */

	if (m->n == cr->cap)
	{
		int			newcap = (int) Min((int64) cr->cap * 2, cr->limit);

		m->rows = repalloc(m->rows, sizeof(MoverRow) * newcap);
		memset(&m->rows[cr->cap], 0, sizeof(MoverRow) * (newcap - cr->cap));
		cr->cap = newcap;
	}
	row = &m->rows[m->n++];
	row->id = id;
	w->cur_txid = txid;		/* xid8 is by value */
	w->cur_id = id;
	{
		Datum		d = slot_getattr(slot, p->l_source, &isnull);

		row->source = isnull ? NULL : mover_text_shared(d, &cr->last_source);
		d = slot_getattr(slot, p->l_role, &isnull);
		row->role = isnull ? NULL : mover_text_shared(d, &cr->last_role);
	}
	row->received_at = slot_getattr(slot, p->l_received, &row->received_null);
	mover_row_init(p, row);
	if (p->jsonb_format)
	{
		Datum		d = slot_getattr(slot, p->l_payload, &isnull);
		Jsonb	   *jb = isnull ? NULL : DatumGetJsonbPCopy(d);

		row->payload = jb ? JsonbPGetDatum(jb) : (Datum) 0;
		mover_row_from_json(p, row, jb);
	}
	else
	{
		for (c = 0; c < p->ncols; c++)
		{
			Datum		d = slot_getattr(slot, p->cols[c].landing_attnum, &isnull);

			if (!isnull)
				row->datums[c] = mover_text_copy(d, &row->vals[c]);
		}
		/* landing columns that only transforms read */
		for (c = 0; c < p->nextra; c++)
		{
			Datum		d = slot_getattr(slot, p->extra_attnum[c], &isnull);

			if (!isnull)
				(void) mover_text_copy(d, &row->extra[c]);
		}
		/* landing columns nobody reads: a value there is drift */
		for (c = 0; c < p->nunread && row->unread == NULL; c++)
		{
			(void) slot_getattr(slot, p->unread_attnum[c], &isnull);
			if (!isnull)
				row->unread = p->unread_name[c];
		}
	}
	return true;
}

/*
 * Walk one relation, a partition of the landing table or the table itself,
 * through its (_stage_txid, _stage_id) index from the chunk's cursor.
 * False once the window ends in it.
 *
 * ROW(_stage_txid, _stage_id) > ROW(cur_txid, cur_id) is a row comparison
 * key, so the scan starts right after the cursor (one transaction's million
 * rows share a txid: a key on the txid alone would start each chunk at the
 * first of them).  The members of a row comparison carry the btree's
 * three-way comparison functions, not the operators' (nbtree positions the
 * scan and checks each member with them, as the executor builds such
 * keys): with the boolean ">" the scan started far before the cursor and
 * read the landing table's index from there, each batch (the rows were
 * right, mover_take_row sees to that, but a batch's cost grew with the
 * landing table).
 */
static bool
mover_read_relation(Mover *m, Window *w, ChunkRead *cr, Relation landing,
					Relation rel, Oid indexoid, Snapshot snap)
{
	Relation	irel = index_open(indexoid, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData key;
	ScanKeyData row[2];
	TupleTableSlot *slot;
	TupleTableSlot *lslot = NULL;
	AttrMap    *map = NULL;
	bool		more = true;

	ScanKeyEntryInitialize(&row[0], SK_ROW_MEMBER, 1, BTGreaterStrategyNumber,
						   XID8OID, InvalidOid, F_XID8CMP, FullTransactionIdGetDatum(cr->cur_txid));
	ScanKeyEntryInitialize(&row[1], SK_ROW_MEMBER | SK_ROW_END, 2, BTGreaterStrategyNumber,
						   INT8OID, InvalidOid, F_BTINT8CMP, Int64GetDatum(cr->cur_id));
	ScanKeyEntryInitialize(&key, SK_ROW_HEADER, 1, BTGreaterStrategyNumber,
						   InvalidOid, InvalidOid, InvalidOid, PointerGetDatum(row));
	scan = index_beginscan(rel, irel, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(rel, NULL);
	/* a partition attached with other column numbers (a table from before partitioning) */
	if (rel != landing)
		map = build_attrmap_by_name_if_req(RelationGetDescr(rel), RelationGetDescr(landing));
	if (map != NULL)
		lslot = MakeSingleTupleTableSlot(RelationGetDescr(landing), &TTSOpsVirtual);
	while (m->n < cr->limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		if (!mover_take_row(m, w, cr, map ? execute_attr_map_slot(map, slot, lslot) : slot))
		{
			more = false;
			break;
		}
	}
	if (lslot != NULL)
		ExecDropSingleTupleTableSlot(lslot);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(irel, AccessShareLock);
	return more;
}

/*
 * Read the next chunk of the window into m->rows: the landing rows after
 * the cursor (cur_txid, cur_id), in (_stage_txid, _stage_id) order, whose
 * transaction is visible in win_hi and not in win_lo, at most limit.
 *
 * Straight through the landing index from the cursor, with the window test
 * in C: the cost is that of the rows read, whatever the statistics say (a
 * query planned on an unanalysed landing table read the whole rest of the
 * window, then sorted it, for every chunk).  A landing table is partitioned
 * by ranges of _stage_txid (41_partitions.sql), so its partitions, in the
 * order of their bounds, are in that order too: they are read one after
 * the other.  A row stops the walk once its transaction is at or past
 * win_hi's xmax: no later one can be in the window.  Each value is copied
 * once, detoasted, as a text whose data is also the C string the checks
 * read.
 */
static void
mover_read_chunk(Mover *m, Window *w, int64 limit)
{
	RuleProgram *p = m->p;
	Relation	lrel;
	Snapshot	snap;
	ChunkRead	cr;
	MemoryContext old = MemoryContextSwitchTo(m->cxt);

	memset(&cr, 0, sizeof(cr));
	cr.cur_txid = DatumGetFullTransactionId(w->cur_txid);
	cr.cur_id = w->cur_id;
	cr.hi_xmax = DatumGetFullTransactionId(w->hi_xmax);
	cr.limit = limit;
	cr.cap = (int) Min(limit, 1024);
	m->n = 0;
	m->rows = palloc0(sizeof(MoverRow) * cr.cap);

	lrel = table_open(p->landing, AccessShareLock);
	/*
	 * A snapshot taken now: the window's upper snapshot was taken by a
	 * query of this batch, later than the statement's own snapshot (a
	 * mover that waited for the pipeline's lock started long before).
	 * Rows committed in between are in the window; read with the
	 * statement's snapshot they would not be seen, and the window would
	 * close without them.  Whatever a newer snapshot shows beyond the
	 * window, the window test leaves out.
	 */
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (lrel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		/*
		 * The partitions in the order of their bounds; the ones the
		 * maintenance drops are finished (it waits for this lock), and
		 * one it makes ahead is empty.
		 */
		PartitionDesc pd = RelationGetPartitionDesc(lrel, true);
		PartitionBoundInfo bi = pd->boundinfo;
		FullTransactionId *upper = palloc0(sizeof(FullTransactionId) * Max(pd->nparts, 1));
		bool	   *bounded = palloc0(sizeof(bool) * Max(pd->nparts, 1));
		int			i;

		/*
		 * Each partition's upper bound: the range bound datum whose index
		 * entry names it (partbounds.h).  A partition whose upper bound is
		 * at or before the cursor holds nothing after it: not read.
		 */
		for (i = 0; i < bi->ndatums; i++)
		{
			int			k = bi->indexes[i];

			if (k < 0 || k >= pd->nparts)
				continue;
			if (bi->kind[i][0] == PARTITION_RANGE_DATUM_VALUE)
			{
				upper[k] = DatumGetFullTransactionId(bi->datums[i][0]);
				bounded[k] = true;
			}
		}
		for (i = 0; i < pd->nparts && m->n < limit; i++)
		{
			Relation	part;
			bool		more;

			if (bounded[i] && FullTransactionIdPrecedesOrEquals(upper[i], cr.cur_txid))
				continue;
			part = table_open(pd->oids[i], AccessShareLock);

			more = mover_read_relation(m, w, &cr, lrel, part,
									   index_get_partition(part, p->landing_index), snap);
			table_close(part, AccessShareLock);
			if (!more)
				break;
		}
	}
	else
		(void) mover_read_relation(m, w, &cr, lrel, lrel, p->landing_index, snap);
	UnregisterSnapshot(snap);
	table_close(lrel, AccessShareLock);
	MemoryContextSwitchTo(old);
}

/* the program is cached across calls; its rule and transform counters are per call */
void
mover_reset_counters(RuleProgram *p)
{
	int			i;

	for (i = 0; i < p->nrules; i++)
		p->rules[i].checked = p->rules[i].failed = 0;
	for (i = 0; i < p->ntransforms; i++)
		p->transforms[i].applied = p->transforms[i].changed =
			p->transforms[i].nulled = p->transforms[i].failed = 0;
}

/*
 * Everything a piece's rows go through before they are written, in order:
 * masks prepared, drift, transforms, type checks, rules, duplicates.
 */
void
mover_check_piece(Mover *m)
{
	mover_prepare_masks(m);
	mover_drift(m);
	mover_transform(m);
	mover_typecheck(m);
	mover_rules(m);
	mover_dedupe(m);
}

/* keep the arrival times of the piece's rows, for the batch's latencies */
static void
mover_note_received(Mover *m)
{
	int			i;

	if (m->nreceived + m->n > m->received_cap)
	{
		int64		cap = Max(m->received_cap * 2, m->nreceived + m->n);

		m->received = m->received == NULL ?
			MemoryContextAlloc(m->batch_cxt, sizeof(TimestampTz) * cap) :
			repalloc(m->received, sizeof(TimestampTz) * cap);
		m->received_cap = cap;
	}
	for (i = 0; i < m->n; i++)
		if (!m->rows[i].received_null)
			m->received[m->nreceived++] = DatumGetTimestampTz(m->rows[i].received_at);
}

/* ----------------------------------------------------------------
 *		the batch record, hold and advance
 * ---------------------------------------------------------------- */

/*
 * The batch record, written first (outcomes reference it) with status done:
 * the window, where the batch starts, who ran it, its lane.
 */
static void
mover_batch_record(Mover *m, Window *w, Datum from_txid, int64 from_id,
				   TimestampTz started)
{
	Oid			types[10] = {INT4OID, INT4OID, PG_SNAPSHOTOID, PG_SNAPSHOTOID,
		XID8OID, INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID};
	Datum		vals[10] = {Int32GetDatum(w->pipeline_id), Int32GetDatum(w->version),
		w->lo, w->hi, from_txid, Int64GetDatum(from_id),
		TimestampTzGetDatum(started),
		CStringGetTextDatum(GetUserNameFromId(mover_caller, false)),
	Int32GetDatum(w->lane), Int32GetDatum(w->lanes)};
	char		nulls[10] = "        nn";
	bool		isnull;

	if (w->lanes > 1)
		nulls[8] = nulls[9] = ' ';
	catalog_exec("INSERT INTO stage.batch (pipeline_id, contract_version, status,"
				 " win_lo, win_hi, from_txid, from_id, started_at, run_by, lane, lanes)"
				 " VALUES ($1, $2, 'done', $3, $4, $5, $6, $7, $8, $9, $10) RETURNING batch_id",
				 10, types, vals, nulls, SPI_OK_INSERT_RETURNING);
	m->batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Hold the batch when more of its rows would be rejected than
 * max_reject_ratio allows, or payloads drift under drift policy hold
 * (false: neither).  Nothing of it moves (its writes were undone): the
 * batch is recorded as held with the reason and its rule counts, the
 * cursor stays where it was, and the pipeline is paused until a person
 * looks: stage.resume(), or any contract change (a fix), lets the next run
 * take the same rows again.
 */
static bool
mover_hold(Mover *m, BatchResult *res, int64 rows_in, int64 rejected)
{
	char	   *reason;
	Oid			types[6] = {INT8OID, INT8OID, INT8OID, TEXTOID, INT4OID, INT8OID};
	Datum		vals[6];

	if (m->p->drift == DRIFT_HOLD && m->n_drift > 0)
		reason = psprintf("batch %lld held: %lld of %lld payloads drift from the target's shape (drift policy hold)",
						  (long long) m->batch_id, (long long) m->n_drift, (long long) rows_in);
	else if (m->p->max_reject_ratio >= 0 &&
			 (double) rejected > m->p->max_reject_ratio * rows_in)
		reason = psprintf("batch %lld held: %lld of %lld rows (%.1f%%) fail the contract, above max_reject_ratio %.1f%%",
						  (long long) m->batch_id, (long long) rejected, (long long) rows_in,
						  100.0 * rejected / rows_in, 100.0 * m->p->max_reject_ratio);
	else
		return false;
	mover_write_stats(m);
	vals[0] = Int64GetDatum(m->batch_id);
	vals[1] = Int64GetDatum(rows_in);
	vals[2] = Int64GetDatum(rejected);
	vals[3] = CStringGetTextDatum(reason);
	vals[4] = Int32GetDatum(m->p->pipeline_id);
	vals[5] = Int64GetDatum(m->n_drift);
	catalog_exec("UPDATE stage.batch SET status = 'held', rows_in = $2, rows_quarantined = $3,"
			   " rows_drift = $6, error = $4, finished_at = pg_catalog.clock_timestamp()"
			   " WHERE batch_id OPERATOR(pg_catalog.=) $1",
			   6, types, vals, NULL, SPI_OK_UPDATE);
	catalog_exec("UPDATE stage.pipeline SET enabled = false, paused_reason = $4,"
			   " held_version = contract_version"
			   " WHERE pipeline_id OPERATOR(pg_catalog.=) $5",
			   6, types, vals, NULL, SPI_OK_UPDATE);
	ereport(WARNING,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("%s", reason),
			 errhint("Inspect stage.rule_stats for batch %lld. Landed rows never change: a contract change (a new version) lifts the hold and the same rows are taken again; stage.resume('%s') retries them unchanged.",
					 (long long) m->batch_id, m->p->name)));
	res->has_batch = true;
	res->batch_id = m->batch_id;
	res->rows_in = rows_in;
	res->quarantined = rejected;
	res->status = "held";
	return true;
}

/* qsort's comparison of doubles, ascending */
static int
mover_cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * The upper bounds of the handoff latency histogram's buckets, in seconds
 * (a last bucket, +Inf, follows): those of stage._latency_bounds().
 */
static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600};
#define NLATENCY_BUCKETS (lengthof(latency_bounds) + 1)

/*
 * Handoff latency of the batch's rows, received -> now (just before the
 * batch commits), in milliseconds: p50, p95, p99 and max, and every row
 * counted in its bucket of the histogram, with their sum, as SQL for the
 * batch record; stage.health and the metrics read them.
 */
static char *
mover_latency_sql(Mover *m)
{
	double	   *lat = palloc(sizeof(double) * Max(m->nreceived, 1));
	int64		buckets[NLATENCY_BUCKETS];
	double		sum = 0;
	int64		n = 0;
	int64		i;
	int			b;
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData s;

	memset(buckets, 0, sizeof(buckets));
	for (i = 0; i < m->nreceived; i++)
	{
		double		ms = (now - m->received[i]) / 1000.0;

		lat[n++] = ms;
		sum += ms;
		for (b = 0; b < NLATENCY_BUCKETS - 1 && ms > latency_bounds[b] * 1000.0; b++)
			;
		buckets[b]++;
	}
	if (n == 0)
		return "latency_p50_ms = NULL";
	qsort(lat, n, sizeof(double), mover_cmp_double);
	initStringInfo(&s);
	appendStringInfo(&s, "latency_p50_ms = %.3f, latency_p95_ms = %.3f, latency_p99_ms = %.3f,"
					 " latency_max_ms = %.3f, latency_sum_ms = %.3f, latency_buckets = '{",
					 lat[(int) (0.50 * (n - 1))], lat[(int) (0.95 * (n - 1))],
					 lat[(int) (0.99 * (n - 1))], lat[n - 1], sum);
	for (b = 0; b < NLATENCY_BUCKETS; b++)
		appendStringInfo(&s, "%s" INT64_FORMAT, b ? "," : "", buckets[b]);
	appendStringInfoString(&s, "}'");
	return s.data;
}

/*
 * Advance: the batch record completed, and the cursor moved past the
 * batch's last row; a short piece means the window (or the lane) is done,
 * and the window closes (a lane's, once every lane is done).
 */
static void
mover_advance(Mover *m, Window *w, int64 rows_in, bool window_done, int64 first_id)
{
	Oid			types[13] = {INT8OID, XID8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT8OID, INT4OID, BOOLOID, PG_SNAPSHOTOID, INT8OID, INT8OID};
	Datum		vals[13];

	vals[0] = Int64GetDatum(m->batch_id);
	vals[1] = w->cur_txid;
	vals[2] = Int64GetDatum(w->cur_id);
	vals[3] = Int64GetDatum(rows_in);
	vals[4] = Int64GetDatum(m->n_clean);
	vals[5] = Int64GetDatum(m->n_quarantined);
	vals[6] = Int64GetDatum(m->n_duplicate);
	vals[7] = Int64GetDatum(m->n_warned);
	vals[8] = Int32GetDatum(w->pipeline_id);
	vals[9] = BoolGetDatum(window_done);
	vals[10] = w->hi;
	vals[11] = Int64GetDatum(m->n_drift);
	vals[12] = Int64GetDatum(first_id);
	mover_write_sources(m);
	catalog_exec(psprintf("UPDATE stage.batch SET to_txid = $2, to_id = $3, first_id = $13, rows_in = $4,"
						  " rows_clean = $5, rows_quarantined = $6, rows_duplicate = $7,"
						  " rows_warned = $8, rows_drift = $12, finished_at = pg_catalog.clock_timestamp(),"
						  " %s WHERE batch_id OPERATOR(pg_catalog.=) $1",
						  mover_latency_sql(m)),
				 13, types, vals, NULL, SPI_OK_UPDATE);
	if (w->lanes > 1)
	{
		/* the lane's cursor; the last lane done closes the window if it can */
		mover_lane_save(w, window_done);
		if (window_done && mover_lanes_closable(w))
			mover_close_window(w);
	}
	else
		catalog_exec("UPDATE stage.pipeline SET"
					 " win_lo = CASE WHEN $10 THEN $11 ELSE win_lo END,"
					 " win_hi = CASE WHEN $10 THEN NULL ELSE $11 END,"
					 " cur_txid = CASE WHEN $10 THEN NULL ELSE $2 END,"
					 " cur_id = CASE WHEN $10 THEN NULL ELSE $3 END"
					 " WHERE pipeline_id OPERATOR(pg_catalog.=) $9",
					 13, types, vals, NULL, SPI_OK_UPDATE);
}

/* ----------------------------------------------------------------
 *		the batch
 * ---------------------------------------------------------------- */

/*
 * One batch of the entered pipeline into res: its window (or lane), the
 * rows piece by piece (checked, then written), then held or advanced.
 */
static void
mover_batch(MoverSession *ms, int64 limit, BatchResult *res, MemoryContext cxt)
{
	int			pipeline_id = ms->pipeline_id;
	Window		w;
	Mover		m;
	Datum		from_txid;
	int64		from_id;
	int64		first_id;
	int64		rows_in = 0;
	int64		rejected = 0;
	bool		window_done = false;
	bool		reopened;
	bool		may_hold;
	TimestampTz started = GetCurrentTimestamp();
	MemoryContext piece_cxt;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	memset(&m, 0, sizeof(m));
	m.batch_cxt = cxt;
	piece_cxt = AllocSetContextCreate(cxt, "stage batch piece", ALLOCSET_DEFAULT_SIZES);
	m.cxt = piece_cxt;
	mover_read_window(&w, pipeline_id, ms->lane < 0, cxt);
	if (!w.enabled)
	{
		res->status = "paused";
		return;
	}
	m.p = ms->prog = contract_get(pipeline_id, w.version);
	mover_reset_counters(m.p);
	m.type_checked = palloc0(sizeof(int64) * Max(m.p->ncols, 1));
	m.type_failed = palloc0(sizeof(int64) * Max(m.p->ncols, 1));

	/*
	 * The lane mover_enter took, or with the pipeline's row held FOR
	 * UPDATE: a lane of the open window still to be worked, a window
	 * whose lanes are all done closed, a new window's lanes set up.
	 */
	if (ms->lane >= 0)
		mover_lane_take(&w, ms->lane);
	else if (w.lanes > 1 && !mover_lane_next(&w))
	{
		mover_close_window(&w);
		mover_read_window(&w, pipeline_id, ms->lane < 0, cxt);
	}
	if (w.fresh && w.next_lanes > 1)
		mover_lanes_open(&w);

	/*
	 * An open window (or lane) may be exhausted exactly at a chunk
	 * boundary: then the next lane, or, every lane done, a fresh window,
	 * once.
	 */
	for (reopened = false;;)
	{
		from_txid = w.cur_txid;
		from_id = w.cur_id;
		mover_read_chunk(&m, &w, Min(limit, MOVER_PIECE));
		if (m.n > 0)
			break;
		if (w.lanes > 1)
		{
			mover_lane_save(&w, true);
			if (mover_lane_next(&w))
				continue;
			if (!mover_lanes_closable(&w))
			{
				res->status = "empty";	/* other movers finish the window */
				return;
			}
		}
		mover_close_window(&w);
		if (w.fresh || reopened)
		{
			res->status = "empty";
			return;
		}
		reopened = true;
		mover_read_window(&w, pipeline_id, ms->lane < 0, cxt);
		if (w.next_lanes > 1)
			mover_lanes_open(&w);
	}
	first_id = m.rows[0].id;

	/* the batch record first: outcomes reference it */
	mover_batch_record(&m, &w, from_txid, from_id, started);
	m.open_items = mover_has_open_items(pipeline_id);

	/*
	 * A batch that may be held (max_reject_ratio, drift policy hold) is
	 * decided on all its rows, after the last piece: its pieces are written
	 * in a subtransaction, undone when the batch is held.
	 */
	may_hold = (m.p->max_reject_ratio >= 0 || m.p->drift == DRIFT_HOLD);
	if (may_hold)
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
	}
	for (;;)
	{
		int64		piece_limit = Min(limit - rows_in, MOVER_PIECE);
		int			i;

		MemoryContextSwitchTo(piece_cxt);
		mover_check_piece(&m);
		for (i = 0; i < m.n; i++)
			if (m.rows[i].outcome == OUT_QUARANTINE)
				rejected++;
		mover_write_clean(&m);
		mover_write_outcomes(&m);
		mover_close_items(&m);
		mover_note_received(&m);
		MemoryContextSwitchTo(oldcxt);
		rows_in += m.n;
		if (m.n < piece_limit)
		{
			window_done = true; /* a short piece: the window is done */
			break;
		}
		if (rows_in >= limit)
			break;
		MemoryContextReset(piece_cxt);
		mover_read_chunk(&m, &w, Min(limit - rows_in, MOVER_PIECE));
		if (m.n == 0)
		{
			window_done = true;
			break;
		}
	}
	if (may_hold)
	{
		bool		held;

		m.n = 0;
		held = (m.p->drift == DRIFT_HOLD && m.n_drift > 0) ||
			(m.p->max_reject_ratio >= 0 && (double) rejected > m.p->max_reject_ratio * rows_in);
		if (held)
			RollbackAndReleaseCurrentSubTransaction();
		else
			ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (held)
		{
			(void) mover_hold(&m, res, rows_in, rejected);
			return;
		}
	}
	mover_write_stats(&m);

	mover_advance(&m, &w, rows_in, window_done, first_id);

	res->has_batch = true;
	res->batch_id = m.batch_id;
	res->rows_in = rows_in;
	res->clean = m.n_clean;
	res->quarantined = m.n_quarantined;
	res->duplicate = m.n_duplicate;
	res->status = "done";
}

/*
 * One batch of the pipeline called name, at most limit rows, in the
 * caller's transaction (see the file header).  With nowait, a pipeline
 * another session is running is left alone: false, status "busy".
 */
bool
mover_run(const char *name, int64 limit, bool nowait, BatchResult *res)
{
	MemoryContext cxt;
	MoverSession ms;
	volatile bool ran = false;

	memset(res, 0, sizeof(BatchResult));
	res->status = "busy";

	/*
	 * One context for every batch of the backend, reset between batches:
	 * its first block (sized for a default batch) stays, so a run of
	 * batches reuses memory already in place instead of faulting in fresh
	 * pages each time.  Reset at the start too, after a batch that failed.
	 */
	if (mover_batch_cxt == NULL)
		mover_batch_cxt = AllocSetContextCreate(TopMemoryContext, "stage batch",
												0, 16 * 1024 * 1024,
												64 * 1024 * 1024);

	/*
	 * A batch started from inside a batch of another pipeline (a target
	 * trigger calling run_batch) must not reset the memory of the one
	 * running: it gets a context of its own.  The depth is kept right on
	 * errors too.
	 */
	if (mover_depth == 0)
	{
		cxt = mover_batch_cxt;
		MemoryContextReset(cxt);
	}
	else
		cxt = AllocSetContextCreate(CurrentMemoryContext, "stage nested batch",
									ALLOCSET_DEFAULT_SIZES);
	mover_depth++;
	PG_TRY();
	{
		MemoryContext old;

		memset(&ms, 0, sizeof(ms));
		if (mover_enter(name, &ms, nowait, true))
		{
			old = MemoryContextSwitchTo(cxt);
			mover_batch(&ms, limit, res, cxt);
			MemoryContextSwitchTo(old);
			ran = true;
		}
		mover_leave(&ms);
	}
	PG_FINALLY();
	{
		mover_depth--;
	}
	PG_END_TRY();
	if (mover_depth == 0)
		MemoryContextReset(cxt);
	else
		MemoryContextDelete(cxt);
	return ran;
}

/* stage.run_batch(pipeline, max_rows): one batch, reported as one row */
PG_FUNCTION_INFO_V1(stage_run_batch);
Datum
stage_run_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	int64		limit;
	BatchResult res;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	limit = PG_ARGISNULL(1) ? stage_batch_size : PG_GETARG_INT32(1);
	if (limit <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be positive"),
				 errhint("Pass NULL to use stage.batch_size (%d).", stage_batch_size)));

	InitMaterializedSRF(fcinfo, 0);
	(void) mover_run(name, limit, false, &res);
	values[0] = Int64GetDatum(res.batch_id);
	nulls[0] = !res.has_batch;
	values[1] = Int64GetDatum(res.rows_in);
	values[2] = Int64GetDatum(res.clean);
	values[3] = Int64GetDatum(res.quarantined);
	values[4] = Int64GetDatum(res.duplicate);
	values[5] = CStringGetTextDatum(res.status);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
