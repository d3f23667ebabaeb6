/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  stage.check_row, the contract's verdict on one candidate row,
 *	  stage.preview, what a batch would write of it, and stage.replay
 *	  (stage._replay), quarantined rows run through the current contract
 *	  again.
 *
 * Both take rows from JSON instead of landing and run the checks of a
 * batch (check.c) on them; replay then writes them as a batch does
 * (write.c).
 *
 * What they may touch: check_row and preview write nothing; check_row,
 * for a caller who is not an owner, runs none of the owner's code (see
 * stage_check_row), and preview is for the owners only.
 * replay, for the owners only, runs the owner's code under the guard like
 * a batch, and writes the target, stage.batch (a batch of kind replay),
 * stage.quarantine_log (its rows' records removed, new ones written),
 * stage.duplicate_log and stage.batch_rule_stat.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "expression.h"
#include "mover_int.h"

/* ----------------------------------------------------------------
 *		stage.check_row
 * ---------------------------------------------------------------- */

/*
 * The one row of check_row or preview, from its JSON object (a jsonb
 * pipeline's payload too); with check_keys, each key that names no landing
 * column is a reason: it would never reach a batch.
 */
static void
replay_row_from_json(Mover *m, MoverRow *row, Jsonb *row_data, bool check_keys)
{
	RuleProgram *p = m->p;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			c;

	mover_row_init(p, row);
	if (p->jsonb_format)
		row->payload = JsonbPGetDatum(row_data);
	mover_row_from_json(p, row, row_data);
	if (!check_keys)
		return;
	it = JsonbIteratorInit(&row_data->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *k;
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		k = pnstrdup(v.val.string.val, v.val.string.len);
		for (c = 0; c < p->ncols; c++)
			if (strcmp(p->cols[c].name, k) == 0)
				known = true;
		for (c = 0; c < p->nextra; c++)
			if (strcmp(p->extra_name[c], k) == 0)
				known = true;
		if (!known)
			mover_reason(m, row, "unknown_column", "schema", -1, "42703",
						 psprintf("\"%s\" is not a column of the pipeline", k));
	}
}

/*
 * The arguments of check_row and preview, (pipeline text, row_data jsonb):
 * both given, the row an object (hint: an example of one); SPI connected
 * and the pipeline found.  Returns the pipeline's name.
 */
static char *
replay_row_args(FunctionCallInfo fcinfo, Jsonb **row_data, PipelineInfo *pi,
				const char *hint)
{
	char	   *name;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline and row_data must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	*row_data = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_OBJECT(*row_data) || JB_ROOT_IS_SCALAR(*row_data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row_data must be a JSON object of column: value"),
				 errhint("%s", hint)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	mover_find_pipeline(name, pi);
	return name;
}

/*
 * The failures of one candidate row under the pipeline's current contract:
 * type checks, rules (warnings included, marked "warn"), key not null, and
 * keys of the row that are not columns.  Nothing is written; duplicates
 * against the target are not looked for.
 *
 * Who may ask, and what they learn.  Members of the owner role get every
 * check, run as the owner like a batch.  Producers of the pipeline (INSERT
 * on its landing table) and stage_analyst members get the checks that read
 * nothing but the row: reference and expression rules (which read tables
 * and run the owner's code) and the input functions of domains and types
 * that are not built in (whose checks are the owner's code) are left out,
 * and a NOTICE names them; otherwise check_row would tell them whether a
 * value is in a table they cannot read.  Anyone else is refused.  Masked
 * columns never show any form of their value ("[masked]"): a hash for a
 * guessed value would be an HMAC oracle.
 */
PG_FUNCTION_INFO_V1(stage_check_row);
Datum
stage_check_row(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *row_data;
	MemoryContext callercxt = CurrentMemoryContext;
	PipelineInfo pi;
	Guard		g;
	Mover		m;
	MoverRow   *row;
	RuleProgram *p;
	Datum		result_jb;
	Datum		result;
	Oid			caller = stage_caller();
	bool		full;

	name = replay_row_args(fcinfo, &row_data, &pi,
						   "For example '{\"order_id\": 1, \"email\": \"a@example.com\"}'.");
	full = guard_owns(pi.owner);
	if (!full && !guard_is_analyst(caller) &&
		!(OidIsValid(pi.landing) &&
		  pg_attribute_aclcheck_all(pi.landing, caller, ACL_INSERT, ACLMASK_ANY) == ACLCHECK_OK))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for pipeline \"%s\"", name),
				 errhint("stage.check_row is for the pipeline's owners, its producers and members of stage_analyst.")));

	memset(&g, 0, sizeof(g));
	guard_enter(&g, pi.pipeline_id, name, pi.owner);
	p = contract_get(pi.pipeline_id, pi.version);
	mover_reset_counters(p);

	memset(&m, 0, sizeof(m));
	m.p = p;
	m.cxt = CurrentMemoryContext;
	m.check_only = true;
	m.limited = !full;
	m.n = 1;
	m.rows = palloc0(sizeof(MoverRow));
	m.type_checked = palloc0(sizeof(int64) * Max(p->ncols, 1));
	m.type_failed = palloc0(sizeof(int64) * Max(p->ncols, 1));
	row = &m.rows[0];
	replay_row_from_json(&m, row, row_data, true);
	mover_transform(&m);
	mover_typecheck(&m);
	mover_rules(&m);
	if (m.skipped != NULL)
		ereport(NOTICE,
				(errmsg("check_row left out: %s", m.skipped->data),
				 errdetail("They read tables or run code of the pipeline's owner; only members of role %s get them.",
						   GetUserNameFromId(pi.owner, false))));

	result_jb = row->reasons ? mover_reasons_jsonb(&m, row, false) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	/* the result outlives SPI_finish, which frees everything made above */
	MemoryContextSwitchTo(callercxt);
	result = datumCopy(result_jb, false, -1);
	contract_release(p);
	guard_leave(&g);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ----------------------------------------------------------------
 *		stage.preview
 * ---------------------------------------------------------------- */

/* push key: text (or null) into an object being built */
static void
preview_pair(JsonbParseState **st, const char *key, const char *value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/*
 * stage.preview(pipeline, row_data): what a batch would make of one row
 * under the current contract, for the pipeline's owners: {"outcome":
 * "target" or "quarantine", "row": the row as it would be written (masked
 * where the column is masked; NULL masks and text masks as they write),
 * "transformed": for each column a transform changed, {"landed", "value"}
 * (the values themselves: owners may see them), "reasons": [...]}.
 * Everything a batch runs before its write runs, as the owner, under the
 * guard; nothing is written (tokens that do not exist yet are not made:
 * such values show "[no token]").  Duplicates are not looked for.
 */
PG_FUNCTION_INFO_V1(stage_preview);
Datum
stage_preview(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *row_data;
	MemoryContext callercxt = CurrentMemoryContext;
	PipelineInfo pi;
	Guard		g;
	Mover		m;
	MoverRow   *row;
	RuleProgram *p;
	int			c;
	Datum		result;
	JsonbParseState *st = NULL;
	JsonbValue *res;
	JsonbValue	k;

	name = replay_row_args(fcinfo, &row_data, &pi,
						   "For example '{\"order_id\": \"1\", \"email\": \" A@Example.com \"}'.");
	if (!guard_owns(pi.owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for pipeline \"%s\"", name),
				 errhint("stage.preview shows transformed values as they are: it is for the pipeline's owners. Producers and analysts may use stage.check_row.")));

	memset(&g, 0, sizeof(g));
	guard_enter(&g, pi.pipeline_id, name, pi.owner);
	p = contract_get(pi.pipeline_id, pi.version);
	mover_reset_counters(p);

	memset(&m, 0, sizeof(m));
	m.p = p;
	m.cxt = CurrentMemoryContext;
	m.no_writes = true;
	m.n = 1;
	m.rows = palloc0(sizeof(MoverRow));
	m.type_checked = palloc0(sizeof(int64) * Max(p->ncols, 1));
	m.type_failed = palloc0(sizeof(int64) * Max(p->ncols, 1));
	row = &m.rows[0];
	/* in a jsonb pipeline, other keys are the payload's own (drift decides) */
	replay_row_from_json(&m, row, row_data, !p->jsonb_format);
	mover_prepare_masks(&m);
	mover_drift(&m);
	mover_transform(&m);
	mover_typecheck(&m);
	mover_rules(&m);

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	preview_pair(&st, "outcome", row->outcome == OUT_CLEAN ? "target" : "quarantine");
	k.type = jbvString;
	k.val.string.val = "row";
	k.val.string.len = 3;
	(void) pushJsonbValue(&st, WJB_KEY, &k);
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (c = 0; c < p->ncols; c++)
		preview_pair(&st, p->cols[c].name, mover_masked(&m, row, c));
	(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	k.val.string.val = "transformed";
	k.val.string.len = strlen("transformed");
	(void) pushJsonbValue(&st, WJB_KEY, &k);
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (c = 0; row->landed != NULL && c < p->ncols; c++)
	{
		char	   *was = row->landed[c];
		char	   *now = row->vals[c];

		if (was == now || (was && now && strcmp(was, now) == 0))
			continue;
		k.val.string.val = p->cols[c].name;
		k.val.string.len = strlen(p->cols[c].name);
		(void) pushJsonbValue(&st, WJB_KEY, &k);
		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		preview_pair(&st, "landed", was);
		preview_pair(&st, "value", now);
		(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	k.val.string.val = "reasons";
	k.val.string.len = strlen("reasons");
	(void) pushJsonbValue(&st, WJB_KEY, &k);
	{
		Datum		r = row->reasons ? mover_reasons_jsonb(&m, row, true) :
			DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
		Jsonb	   *rj = DatumGetJsonbP(r);
		JsonbValue	rv;

		rv.type = jbvBinary;
		rv.val.binary.data = &rj->root;
		rv.val.binary.len = VARSIZE(rj) - VARHDRSZ;
		(void) pushJsonbValue(&st, WJB_VALUE, &rv);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	result = JsonbPGetDatum(JsonbValueToJsonb(res));

	/* the result outlives SPI_finish, which frees everything made above */
	MemoryContextSwitchTo(callercxt);
	result = datumCopy(result, false, -1);
	contract_release(p);
	guard_leave(&g);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ----------------------------------------------------------------
 *		stage.replay
 * ---------------------------------------------------------------- */

/*
 * stage._replay(pipeline, ids, dry_run): run quarantined rows through the
 * pipeline's current contract again, from the raw row their quarantine
 * record keeps (so retention of landing does not prevent it).  In one
 * transaction: their quarantine records are removed, and each row goes to
 * the target, back to quarantine with its new reasons, or to duplicates,
 * recorded as a batch of kind 'replay'; a row thus stays in exactly one
 * place.  dry_run evaluates the contract and reports, writing nothing (the
 * target's own constraints are then not consulted).
 */
PG_FUNCTION_INFO_V1(stage_replay_rows);
Datum
stage_replay_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	Datum		ids;
	bool		dry_run;
	MemoryContext cxt;
	MemoryContext old;
	int			pipeline_id;
	MoverSession ms;
	Mover		m;
	RuleProgram *p;
	int			i;
	bool		isnull;
	Oid			types[3] = {INT4OID, INT8ARRAYOID, INT8OID};
	Datum		vals[3];
	SPITupleTable *tt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline and ids must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ids = PG_GETARG_DATUM(1);
	dry_run = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);

	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "stage replay",
								ALLOCSET_DEFAULT_SIZES);
	memset(&ms, 0, sizeof(ms));
	(void) mover_enter(name, &ms, false, false);
	pipeline_id = ms.pipeline_id;
	old = MemoryContextSwitchTo(cxt);

	vals[0] = Int32GetDatum(pipeline_id);
	vals[1] = ids;
	catalog_exec("SELECT contract_version FROM stage.pipeline"
			   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
			   1, types, vals, NULL, SPI_OK_SELECT);
	memset(&m, 0, sizeof(m));
	m.cxt = cxt;
	m.p = p = ms.prog = contract_get(pipeline_id,
						   DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull)));
	mover_reset_counters(p);
	m.type_checked = palloc0(sizeof(int64) * Max(p->ncols, 1));
	m.type_failed = palloc0(sizeof(int64) * Max(p->ncols, 1));
	m.no_writes = dry_run;

	catalog_exec("SELECT landing_id, source, received_at, raw_data, raw_payload, role FROM stage.quarantine_log"
			   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
			   " AND status OPERATOR(pg_catalog.=) 'open'"
			   " AND landing_id OPERATOR(pg_catalog.=) ANY ($2) ORDER BY landing_id FOR UPDATE",
			   2, types, vals, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	m.n = (int) SPI_processed;
	m.rows = palloc0(sizeof(MoverRow) * Max(m.n, 1));
	for (i = 0; i < m.n; i++)
	{
		MoverRow   *row = &m.rows[i];
		Jsonb	   *raw;
		Datum		d;

		row->id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		row->source = isnull ? NULL : TextDatumGetCString(d);
		row->received_at = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &row->received_null);
		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull);
		row->role = isnull ? NULL : TextDatumGetCString(d);
		raw = DatumGetJsonbP(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		if (p->jsonb_format)
		{
			/* the payload as it landed: extraction and drift as in a batch */
			d = SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull);
			row->payload = isnull ? (Datum) 0 : d;
			if (!isnull)
				raw = DatumGetJsonbP(d);
		}
		mover_row_init(p, row);
		mover_row_from_json(p, row, raw);
	}

	if (m.n > 0 && !dry_run)
	{
		Oid			btypes[2] = {INT4OID, TEXTOID};
		Datum		bvals[2] = {Int32GetDatum(pipeline_id),
		CStringGetTextDatum(GetUserNameFromId(ms.save_userid, false))};

		catalog_exec("INSERT INTO stage.batch (pipeline_id, contract_version, status,"
					 " kind, started_at, run_by)"
					 " SELECT pipeline_id, contract_version, 'done', 'replay',"
					 " pg_catalog.clock_timestamp(), $2"
					 " FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
					 " RETURNING batch_id",
					 2, btypes, bvals, NULL, SPI_OK_INSERT_RETURNING);
		m.batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}
	mover_check_piece(&m);
	if (m.n > 0 && !dry_run)
	{
		Datum	   *again = palloc(sizeof(Datum) * m.n);
		int			nagain = 0;

		mover_write_clean(&m);

		/*
		 * A row quarantined again (by the contract, or by the target while
		 * it was written) gets a new record, the reasons of this replay;
		 * the others leave quarantine: their items are closed as replayed
		 * by this batch, below.
		 */
		for (i = 0; i < m.n; i++)
			if (m.rows[i].outcome == OUT_QUARANTINE)
				again[nagain++] = Int64GetDatum(m.rows[i].id);
		vals[1] = mover_array(again, NULL, nagain, INT8OID);
		/* the item stays the same item: its repair copy and note are kept */
		catalog_exec("DELETE FROM stage.quarantine_log WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
				   " AND landing_id OPERATOR(pg_catalog.=) ANY ($2)"
				   " RETURNING landing_id, successor_id, note",
				   2, types, vals, NULL, SPI_OK_DELETE_RETURNING);
		{
			int			nk = (int) SPI_processed;
			Datum	   *kid = palloc(sizeof(Datum) * Max(nk, 1));
			Datum	   *ksucc = palloc(sizeof(Datum) * Max(nk, 1));
			bool	   *ksuccnull = palloc(sizeof(bool) * Max(nk, 1));
			Datum	   *knote = palloc(sizeof(Datum) * Max(nk, 1));
			bool	   *knotenull = palloc(sizeof(bool) * Max(nk, 1));
			Oid			ktypes[4] = {INT4OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
			Datum		kvals[4];

			for (i = 0; i < nk; i++)
			{
				HeapTuple	tup = SPI_tuptable->vals[i];
				TupleDesc	desc = SPI_tuptable->tupdesc;

				kid[i] = SPI_getbinval(tup, desc, 1, &isnull);
				ksucc[i] = SPI_getbinval(tup, desc, 2, &ksuccnull[i]);
				knote[i] = SPI_getbinval(tup, desc, 3, &knotenull[i]);
				if (!knotenull[i])
					knote[i] = datumCopy(knote[i], false, -1);
			}
			mover_write_outcomes(&m);
			if (nk > 0)
			{
				kvals[0] = vals[0];
				kvals[1] = mover_array(kid, NULL, nk, INT8OID);
				kvals[2] = mover_array(ksucc, ksuccnull, nk, INT8OID);
				kvals[3] = mover_array(knote, knotenull, nk, TEXTOID);
				catalog_exec("UPDATE stage.quarantine_log q SET successor_id = k.s, note = k.n"
							 " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
							 " pg_catalog.unnest($4)) AS k(id, s, n)"
							 " WHERE q.pipeline_id OPERATOR(pg_catalog.=) $1"
							 " AND q.landing_id OPERATOR(pg_catalog.=) k.id",
							 4, ktypes, kvals, NULL, SPI_OK_UPDATE);
			}
		}
		mover_write_stats(&m);
		{
			Datum	   *left = palloc(sizeof(Datum) * m.n);
			int			nleft = 0;

			for (i = 0; i < m.n; i++)
				if (m.rows[i].outcome != OUT_QUARANTINE)
					left[nleft++] = Int64GetDatum(m.rows[i].id);
			vals[1] = mover_array(left, NULL, nleft, INT8OID);
			vals[2] = Int64GetDatum(m.batch_id);
			catalog_exec("UPDATE stage.quarantine_log SET status = 'replayed',"
						 " closed_at = pg_catalog.now(), closed_batch_id = $3,"
						 " closed_by = (SELECT b.run_by FROM stage.batch b"
						 " WHERE b.batch_id OPERATOR(pg_catalog.=) $3)"
						 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
						 " AND landing_id OPERATOR(pg_catalog.=) ANY ($2)",
						 3, types, vals, NULL, SPI_OK_UPDATE);
		}
		vals[2] = Int64GetDatum(m.batch_id);
		catalog_exec(psprintf("UPDATE stage.batch SET rows_in = %d, rows_clean = %lld,"
							" rows_quarantined = %lld, rows_duplicate = %lld, rows_warned = %lld,"
							" first_id = %lld, to_id = %lld, finished_at = pg_catalog.clock_timestamp()"
							" WHERE batch_id OPERATOR(pg_catalog.=) $3",
							m.n, (long long) m.n_clean, (long long) m.n_quarantined,
							(long long) m.n_duplicate, (long long) m.n_warned,
							(long long) m.rows[0].id, (long long) m.rows[m.n - 1].id),
				   3, types, vals, NULL, SPI_OK_UPDATE);
	}

	for (i = 0; i < m.n; i++)
	{
		MoverRow   *row = &m.rows[i];
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int64GetDatum(row->id);
		values[1] = CStringGetTextDatum(row->outcome == OUT_CLEAN ? "target" :
										row->outcome == OUT_DUPLICATE ? "duplicate" :
										"quarantine");
		if (row->reasons)
			values[2] = mover_reasons_jsonb(&m, row, true);	/* replay is for owners */
		else
			nulls[2] = true;
		MemoryContextSwitchTo(old);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(cxt);
	}

	MemoryContextSwitchTo(old);
	mover_leave(&ms);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 *		stage._repair_values: a repair's expression over the raw rows
 * ---------------------------------------------------------------- */

/*
 * stage._repair_values(pipeline text, ids bigint[], expr text)
 *   RETURNS TABLE(landing_id bigint, value text)
 *
 * What expr makes of each open quarantine item of ids: expr is one SQL
 * expression over the columns of the row as it landed (all text), checked
 * as the expressions of rules and transforms are (one expression, names
 * only of the row's columns) and run set-wise as the pipeline's owner
 * under the guard, like them: never with the rights of whoever calls.
 * For stage.repair_where.
 */
PG_FUNCTION_INFO_V1(stage_repair_values);
Datum
stage_repair_values(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	char	   *expr;
	MoverSession ms;
	PipelineInfo pi;
	Relation	rel;
	List	   *cols;
	ListCell   *lc;
	char	   *sql;
	Oid			types[2] = {INT4OID, INT8ARRAYOID};
	Datum		vals[2];
	int			n;
	int			i;
	int			k;
	int64	   *ids;
	Datum	  **colvals;
	bool	  **colnulls;
	Oid		   *etypes;
	Datum	   *evals;
	Datum	   *ords;
	SPITupleTable *tt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline, ids and expression must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	expr = text_to_cstring(PG_GETARG_TEXT_PP(2));
	InitMaterializedSRF(fcinfo, 0);
	memset(&ms, 0, sizeof(ms));
	(void) mover_enter(name, &ms, false, false);
	mover_find_pipeline(name, &pi);

	/* an expression over the landing table's columns, all text */
	rel = table_open(pi.landing, AccessShareLock);
	cols = expr_columns(expr, rel, "repair");
	foreach(lc, cols)
		if (strncmp((const char *) lfirst(lc), "_stage_", 7) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("repair expression may only name the row's data columns, not %s",
							(const char *) lfirst(lc)),
					 errhint("The row as it landed has the landing table's columns without _stage_*.")));
	sql = expr_sql(expr, cols, rel, false);
	table_close(rel, NoLock);
	expr_prepare(sql, list_length(cols), expr, "repair",
				 "The expression reads the row's columns as text, e.g. replace(amount, ',', '.').");

	/* the raw rows, as the catalog owner */
	vals[0] = Int32GetDatum(pi.pipeline_id);
	vals[1] = PG_GETARG_DATUM(1);
	catalog_exec("SELECT landing_id, raw_data FROM stage.quarantine_log"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
				 " AND landing_id OPERATOR(pg_catalog.=) ANY ($2)"
				 " AND status OPERATOR(pg_catalog.=) 'open' ORDER BY landing_id",
				 2, types, vals, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * Max(n, 1));
	ords = palloc(sizeof(Datum) * Max(n, 1));
	colvals = palloc(sizeof(Datum *) * Max(list_length(cols), 1));
	colnulls = palloc(sizeof(bool *) * Max(list_length(cols), 1));
	for (k = 0; k < list_length(cols); k++)
	{
		colvals[k] = palloc(sizeof(Datum) * Max(n, 1));
		colnulls[k] = palloc(sizeof(bool) * Max(n, 1));
	}
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Jsonb	   *raw;

		ids[i] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		ords[i] = Int32GetDatum(i);
		raw = DatumGetJsonbPCopy(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		k = 0;
		foreach(lc, cols)
		{
			const char *col = (const char *) lfirst(lc);
			JsonbValue	v;

			colnulls[k][i] = true;
			colvals[k][i] = (Datum) 0;
			if (!isnull && JB_ROOT_IS_OBJECT(raw) &&
				getKeyJsonValueFromContainer(&raw->root, col, strlen(col), &v) != NULL &&
				v.type == jbvString)
			{
				colvals[k][i] = PointerGetDatum(cstring_to_text_with_len(v.val.string.val,
																		 v.val.string.len));
				colnulls[k][i] = false;
			}
			k++;
		}
	}
	if (n > 0)
	{
		etypes = palloc(sizeof(Oid) * (list_length(cols) + 1));
		evals = palloc(sizeof(Datum) * (list_length(cols) + 1));
		etypes[0] = INT4ARRAYOID;
		evals[0] = mover_array(ords, NULL, n, INT4OID);
		for (k = 0; k < list_length(cols); k++)
		{
			etypes[k + 1] = TEXTARRAYOID;
			evals[k + 1] = mover_array(colvals[k], colnulls[k], n, TEXTOID);
		}
		/* as the owner, under the guard mover_enter set up */
		mover_exec(sql, list_length(cols) + 1, etypes, evals, NULL, SPI_OK_SELECT);
		tt = SPI_tuptable;
		/* one value per row: a set-returning expression gives none or several */
		{
			bool	   *seen = palloc0(sizeof(bool) * n);

			for (i = 0; i < (int) SPI_processed; i++)
			{
				bool		isnull;
				int			ord = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));

				if (seen[ord])
					break;
				seen[ord] = true;
			}
			if (SPI_processed != (uint64) n || i < n)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("repair expression must give one value per row"),
						 errdetail("The expression: %s", expr),
						 errhint("Set-returning functions give none or several; use a scalar expression.")));
		}
		for (i = 0; i < (int) SPI_processed; i++)
		{
			Datum		values[2];
			bool		nulls[2] = {false, false};
			bool		isnull;
			int			ord = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));

			values[0] = Int64GetDatum(ids[ord]);
			values[1] = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &nulls[1]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	mover_leave(&ms);
	return (Datum) 0;
}
