/*-------------------------------------------------------------------------
 *
 * mover.c
 *	  stage.run_batch: one batch, end to end, in the caller's transaction.
 *
 * A batch is one chunk of the pipeline's snapshot window: the landing rows
 * whose inserting transaction is visible in snapshot win_hi and not in
 * win_lo, taken in (_stage_txid, _stage_id) order after the cursor
 * (cur_txid, cur_id), at most max_rows of them.  Exactly once follows from
 * doing everything in one transaction:
 *
 *	1. lock the pipeline row (FOR UPDATE), then, in a later statement whose
 *	   snapshot sees any batch committed while we waited, read the window
 *	   and open it (win_hi := current snapshot) if none is open;
 *	2. read the chunk; check every row in C against the compiled contract;
 *	3. write clean rows to the target (masked), failing rows to
 *	   stage.quarantine_log, duplicates to stage.duplicate_log;
 *	4. record the batch and advance the cursor (or close the window).
 *
 * If the transaction aborts or the server dies, none of it happened and the
 * same chunk is taken again.  The mover never updates or deletes landing.
 *
 * Errors in rows: values the C pre-checks cannot vouch for are run through
 * the type's input function inside a subtransaction (in groups, bisected
 * on failure); the bulk INSERT runs in a subtransaction and is bisected
 * when the target rejects a row (CHECK, NOT NULL, FK, unique, trigger), so
 * the offending rows are quarantined with their SQLSTATE and the rest
 * moves.  Only errors that can be pinned on a row (stage_row_error) are
 * caught; anything else aborts the batch.
 *
 * Memory: everything of one batch lives in a context that is a child of the
 * function's call context and is deleted at the end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "mb/pg_wchar.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "stage.h"
#include "contract.h"
#include "direct.h"
#include "mask_contract.h"
#include "guard.h"
#include "lane.h"
#include "mover.h"
#include "reason.h"

typedef enum RowOutcome
{
	OUT_CLEAN,
	OUT_QUARANTINE,
	OUT_DUPLICATE
} RowOutcome;

/* one failure of a row, as its quarantine record lists it */
typedef struct Reason
{
	const char *rule;
	const char *kind;
	const char *column;
	const char *value;			/* masked where the column is masked */
	const char *sqlstate;
	const char *message;		/* never a masked value (see reason.c) */
	const char *severity;
	const char *origin;			/* ORIGIN_*: whose text message is */
	const char *raw_message;	/* the server's text, when withheld (owners) */
} Reason;

typedef struct MoverRow
{
	int64		id;
	char	   *source;
	Datum		received_at;
	bool		received_null;
	char	  **vals;			/* per column cstring, NULL for SQL NULL */
	Datum	   *datums;			/* per column text datum from landing */
	bool	   *badtype;		/* per column: failed the type check */
	RowOutcome	outcome;
	bool		warned;
	List	   *reasons;		/* of Reason, NIL when the row passes */
	char	   *key;			/* canonical key text, for dedupe */
	Datum		payload;		/* jsonb format: the payload, or 0 */
	char	  **out;			/* clean rows: the text written per column */
} MoverRow;

typedef struct Mover
{
	RuleProgram *p;
	MemoryContext cxt;			/* the rows of the current piece */
	MemoryContext batch_cxt;	/* what lasts for the whole batch */
	int			n;
	MoverRow   *rows;
	int64		batch_id;
	int64		n_clean;
	int64		n_quarantined;
	int64		n_duplicate;
	int64		n_warned;
	int64		n_drift;		/* jsonb format: rows whose payload drifted */
	int64	   *type_checked;	/* per column */
	int64	   *type_failed;
	SPIPlanPtr	insert_plan;
	HTAB	   *written;		/* canonical keys the INSERT returned */
	bool		check_only;		/* stage.check_row: report warnings too */
	bool		limited;		/* check_row for a non-owner: no owner code */
	StringInfo	skipped;		/* what limited left out, for the NOTICE */
	bool		use_direct;		/* writes go through direct_insert */
	int			cur_col;		/* column of the type check being bisected */
	TimestampTz *received;		/* arrival of every row of the batch, all pieces */
	int64		nreceived;
	int64		received_cap;
	bool		input_errors;	/* bisecting input functions: see stage_input_error */
	StageRule  *cur_rule;		/* expression rule being bisected */
	void		(*sweep_fn) (struct Mover *m, int *idx, int n);	/* mover_sweep's work */
	int			sweep_pos;		/* the row mover_sweep is at */
} Mover;

static HTAB *mover_key_table(const char *name, int n);
static char *mover_json_text(JsonbValue *v);
static Datum mover_array(Datum *elems, bool *nulls, int n, Oid elemtype);
static void mover_exec(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls, int expect);

/* ----------------------------------------------------------------
 *		small helpers
 * ---------------------------------------------------------------- */

/*
 * The value as quarantine may show it: masked when the column is masked.
 * stage.check_row, which anyone may call, shows no form of a masked value
 * at all: a hash mask's output for a guessed value would make it an HMAC
 * oracle.
 */
static char *
mover_shown(Mover *m, StageColumn *col, const char *raw)
{
	if (raw == NULL || col->mask == NULL)
		return (char *) raw;
	if (m->check_only)
		return "[masked]";
	return mask_apply(col->mask, raw, strlen(raw));
}

static void
mover_add_reason(Mover *m, MoverRow *row, const char *rule, const char *kind,
				 int col, const char *sqlstate, const char *message,
				 const char *severity, const char *origin, const char *raw_message)
{
	Reason	   *r = palloc(sizeof(Reason));

	/*
	 * Copies: the strings may be an error's (freed after this call) or
	 * unpack_sql_state's static buffer.
	 */
	r->rule = pstrdup(rule);
	r->kind = kind;
	r->column = col >= 0 ? m->p->cols[col].name : NULL;
	r->value = col >= 0 ? mover_shown(m, &m->p->cols[col], row->vals[col]) : NULL;
	r->sqlstate = sqlstate ? pstrdup(sqlstate) : NULL;
	r->message = pstrdup(message);
	r->severity = severity;
	r->origin = origin;
	r->raw_message = raw_message ? pstrdup(raw_message) : NULL;
	row->reasons = lappend(row->reasons, r);
}

/* a failure in stage's own words: the row is quarantined */
static void
mover_reason(Mover *m, MoverRow *row, const char *rule, const char *kind,
			 int col, const char *sqlstate, const char *message)
{
	mover_add_reason(m, row, rule, kind, col, sqlstate, message, "reject",
					 ORIGIN_STAGE, NULL);
	row->outcome = OUT_QUARANTINE;
}

/* a rule of severity warn that failed (check_row reports them) */
static void
mover_warning(Mover *m, MoverRow *row, const char *rule, const char *kind,
			  int col, const char *sqlstate, const char *message)
{
	mover_add_reason(m, row, rule, kind, col, sqlstate, message, "warn",
					 ORIGIN_STAGE, NULL);
}

/* does any column of the pipeline have a mask? */
static bool
mover_has_masks(Mover *m)
{
	int			c;

	for (c = 0; c < m->p->ncols; c++)
		if (m->p->cols[c].mask != NULL)
			return true;
	return false;
}

/* note a check that check_row left out for a caller who is not an owner */
static void
mover_skipped(Mover *m, const char *what)
{
	if (m->skipped == NULL)
		m->skipped = makeStringInfo();
	else
		appendStringInfoString(m->skipped, ", ");
	appendStringInfoString(m->skipped, what);
}

/*
 * A failure whose message is the server's (an input function, the
 * target, an expression, a trigger): shown as it is only when it cannot
 * hold a masked value, withheld otherwise (see reason.c).  An input
 * function of a built-in type quotes nothing but its own value, so its
 * text is withheld only when that column is masked; any other text may
 * quote anything and is withheld when the pipeline masks any column.
 */
static void
mover_server_text(Mover *m, MoverRow *row, const char *rule, const char *kind,
				  int col, const char *sqlstate, const char *constraint,
				  const char *text, bool input_fn, const char *severity)
{
	bool		builtin = input_fn && col >= 0 && !m->p->cols[col].is_domain &&
		m->p->cols[col].typid < FirstNormalObjectId;
	const char *origin = builtin ? ORIGIN_INPUT : ORIGIN_SERVER;

	if (builtin && m->p->cols[col].mask != NULL)
		mover_add_reason(m, row, rule, kind, col, sqlstate,
						 reason_withheld(sqlstate, NULL, m->p->cols[col].name),
						 severity, origin, text);
	else if (!builtin && mover_has_masks(m))
		mover_add_reason(m, row, rule, kind, col, sqlstate,
						 reason_withheld(sqlstate, constraint, NULL),
						 severity, origin, text);
	else
		mover_add_reason(m, row, rule, kind, col, sqlstate, text, severity,
						 origin, NULL);
	if (strcmp(severity, "reject") == 0)
		row->outcome = OUT_QUARANTINE;
}

static void
mover_reason_server(Mover *m, MoverRow *row, const char *rule, const char *kind,
					int col, ErrorData *e, bool input_fn)
{
	char	   *text = (e->detail && !input_fn) ?
		psprintf("%s: %s", e->message, e->detail) : pstrdup(e->message);

	mover_server_text(m, row, rule, kind, col, unpack_sql_state(e->sqlerrcode),
					  e->constraint_name, text, input_fn, "reject");
}

/* ----------------------------------------------------------------
 *		building jsonb directly (no text to parse)
 * ---------------------------------------------------------------- */

static void
mover_jb_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	(void) pushJsonbValue(st, tok, &v);
}

static void
mover_jb_pair(JsonbParseState **st, const char *key, const char *value)
{
	mover_jb_string(st, WJB_KEY, key);
	mover_jb_string(st, WJB_VALUE, value);
}

/*
 * The reasons of a row as a jsonb array; with raw, each withheld message
 * is the server's text (for the owners' copy, raw_reasons).
 */
static Datum
mover_reasons_jsonb(Mover *m, MoverRow *row, bool raw)
{
	JsonbParseState *st = NULL;
	JsonbValue	num;
	JsonbValue *res;
	ListCell   *lc;

	num.type = jbvNumeric;
	num.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric,
														  Int32GetDatum(m->p->version)));
	(void) pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, row->reasons)
	{
		Reason	   *r = (Reason *) lfirst(lc);

		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		mover_jb_pair(&st, "rule", r->rule);
		mover_jb_pair(&st, "kind", r->kind);
		mover_jb_pair(&st, "column", r->column);
		mover_jb_pair(&st, "value", r->value);
		mover_jb_pair(&st, "sqlstate", r->sqlstate);
		mover_jb_pair(&st, "message", raw && r->raw_message ? r->raw_message : r->message);
		mover_jb_pair(&st, "severity", r->severity);
		if (r->origin != ORIGIN_STAGE)
			mover_jb_pair(&st, "origin", r->origin);
		mover_jb_string(&st, WJB_KEY, "contract_version");
		(void) pushJsonbValue(&st, WJB_VALUE, &num);
		(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/* does any reason of the row keep a withheld server text? */
static bool
mover_has_raw(MoverRow *row)
{
	ListCell   *lc;

	foreach(lc, row->reasons)
		if (((Reason *) lfirst(lc))->raw_message != NULL)
			return true;
	return false;
}

/* run fn(arg) in a subtransaction; on a row error return its data */
typedef void (*mover_try_fn) (Mover *m, int *idx, int n);

static ErrorData *
mover_try(Mover *m, mover_try_fn fn, int *idx, int n)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(m, idx, n);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (!stage_row_error(edata->sqlerrcode) &&
			!(m->input_errors && stage_input_error(edata->sqlerrcode)))
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

typedef void (*mover_fail_fn) (Mover *m, int row, ErrorData *e);

/*
 * Run fn over the rows idx[0..n) in one subtransaction; when it fails,
 * split the rows in halves and try again, until each row that fails alone
 * is handed to fail().  k bad rows among n cost O(k log n) attempts, and
 * the good rows are done in as few statements as possible.
 */
static void
mover_bisect(Mover *m, mover_try_fn fn, mover_fail_fn fail, int *idx, int n)
{
	ErrorData  *e;

	if (n == 0)
		return;
	e = mover_try(m, fn, idx, n);
	if (e == NULL)
		return;
	if (n == 1)
		fail(m, idx[0], e);
	FreeErrorData(e);
	if (n == 1)
		return;
	mover_bisect(m, fn, fail, idx, n / 2);
	mover_bisect(m, fn, fail, idx + n / 2, n - n / 2);
}

static void
mover_sweep_run(Mover *m, int *idx, int n)
{
	for (m->sweep_pos = 0; m->sweep_pos < n; m->sweep_pos++)
		m->sweep_fn(m, idx + m->sweep_pos, 1);
}

/*
 * For work that leaves nothing in the database (input functions): fn over
 * the rows one by one in one subtransaction; a row that fails is recorded
 * and the sweep goes on after it in a new one.  Each value is converted
 * once and a failing row costs one subtransaction, where bisection
 * converts the rows of a failing group again at every level.
 */
static void
mover_sweep(Mover *m, mover_try_fn fn, mover_fail_fn fail, int *idx, int n)
{
	int			start = 0;

	m->sweep_fn = fn;
	while (start < n)
	{
		ErrorData  *e = mover_try(m, mover_sweep_run, idx + start, n - start);
		int			at;

		if (e == NULL)
			break;
		at = start + m->sweep_pos;
		fail(m, idx[at], e);
		FreeErrorData(e);
		start = at + 1;
	}
}

/* ----------------------------------------------------------------
 *		type checks
 * ---------------------------------------------------------------- */

/* the type's input function over one column of the rows idx[0..n) */
static void
mover_tc_group(Mover *m, int *idx, int n)
{
	StageColumn *col = &m->p->cols[m->cur_col];
	int			i;

	for (i = 0; i < n; i++)
		(void) InputFunctionCall(&col->infunc, m->rows[idx[i]].vals[m->cur_col],
								 col->ioparam, col->typmod);
}

static void
mover_tc_fail(Mover *m, int r, ErrorData *e)
{
	MoverRow   *row = &m->rows[r];
	int			c = m->cur_col;

	row->badtype[c] = true;
	m->type_failed[c]++;
	mover_reason_server(m, row, psprintf("%s_type", m->p->cols[c].name), "type", c,
						e, true);
}

static void
mover_typecheck(Mover *m)
{
	RuleProgram *p = m->p;
	int		   *unsure = palloc(sizeof(int) * Max(m->n, 1));
	int			c;
	int			i;

	for (c = 0; c < p->ncols; c++)
	{
		StageColumn *col = &p->cols[c];
		int			nu = 0;

		/*
		 * A mask that writes text replaces the value: what must fit the
		 * column is its output (the write checks that), not the raw value.
		 */
		if (col->mask && mask_needs_text(col->mask))
			continue;
		/* domains and types not built in: their checks are owner code */
		if (m->limited && (col->is_domain || col->typid >= FirstNormalObjectId))
		{
			mover_skipped(m, psprintf("the type check of column %s", col->name));
			continue;
		}
		for (i = 0; i < m->n; i++)
		{
			const char *v = m->rows[i].vals[c];

			if (v == NULL)
				continue;
			m->type_checked[c]++;
			if (!tc_precheck(col->tclass, col->typmod, v))
				unsure[nu++] = i;
		}
		m->cur_col = c;
		m->input_errors = true;
		mover_sweep(m, mover_tc_group, mover_tc_fail, unsure, nu);
		m->input_errors = false;
	}
}

/* ----------------------------------------------------------------
 *		rules
 * ---------------------------------------------------------------- */

static int
mover_enum_cmp(const void *key, const void *elem)
{
	return strcmp((const char *) key, *(char *const *) elem);
}

/* ----------------------------------------------------------------
 *		schema drift (jsonb format)
 * ---------------------------------------------------------------- */

static const char *
mover_json_type(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvNull:
			return "null";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
		default:
			return "unknown";
	}
}

static void
mover_drift_issue(Mover *m, MoverRow *row, int col, char *msg, bool *drifted)
{
	*drifted = true;
	if (m->p->drift == DRIFT_QUARANTINE)
		mover_reason(m, row, "schema_drift", "drift", col, NULL, msg);
}

/*
 * Compare each payload with the target's shape: keys that are not
 * columns, NOT NULL columns without a key, and values whose JSON type is
 * not the one the column takes (number for numeric columns, boolean for
 * bool, anything for json/jsonb, string for the rest; null is never
 * drift).  Drifting rows are counted; policy "quarantine" quarantines
 * them, "hold" holds the batch (see mover_hold).
 */
static void
mover_drift(Mover *m)
{
	RuleProgram *p = m->p;
	bool	   *seen = palloc(sizeof(bool) * Max(p->ncols, 1));
	int			i;

	if (!p->jsonb_format)
		return;
	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];
		bool		drifted = false;
		Jsonb	   *jb;
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			col = -1;
		int			c;

		/* a payload that is not an object maps to nothing: always rejected */
		if (row->payload == (Datum) 0)
		{
			mover_reason(m, row, "payload_object", "drift", -1, "22023", "payload is null");
			m->n_drift++;
			continue;
		}
		jb = DatumGetJsonbP(row->payload);
		if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		{
			mover_reason(m, row, "payload_object", "drift", -1, "22023",
						 "payload is not a JSON object");
			m->n_drift++;
			continue;
		}
		memset(seen, 0, sizeof(bool) * Max(p->ncols, 1));
		it = JsonbIteratorInit(&jb->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				col = -1;
				for (c = 0; c < p->ncols; c++)
					if (strlen(p->cols[c].name) == v.val.string.len &&
						memcmp(p->cols[c].name, v.val.string.val, v.val.string.len) == 0)
						col = c;
				if (col < 0)
					mover_drift_issue(m, row, -1,
									  psprintf("unknown key \"%s\"",
											   pnstrdup(v.val.string.val, v.val.string.len)),
									  &drifted);
				else
					seen[col] = true;
			}
			else if (tok == WJB_VALUE && col >= 0 && v.type != jbvNull &&
					 p->cols[col].json_type != NULL &&
					 strcmp(mover_json_type(&v), p->cols[col].json_type) != 0)
				mover_drift_issue(m, row, col,
								  psprintf("type changed: %s expected, got %s",
										   p->cols[col].json_type, mover_json_type(&v)),
								  &drifted);
		}
		for (c = 0; c < p->ncols; c++)
			if (!seen[c] && p->cols[c].required)
				mover_drift_issue(m, row, c, "missing required key", &drifted);
		if (drifted)
			m->n_drift++;
	}
}

/* the first failing check of a json rule on a jsonb value, or NULL */
static char *
mover_json_check(StageRule *r, const char *v)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(v)));
	int			i;

	for (i = 0; i < r->njson; i++)
	{
		JsonCheck  *c = &r->json[i];
		JsonbContainer *cont = &jb->root;
		JsonbValue	val;
		JsonbValue *found = NULL;
		int			k;
		const char *type;

		for (k = 0; k < c->npath; k++)
		{
			if (!JsonContainerIsObject(cont) || JsonContainerIsScalar(cont))
			{
				found = NULL;
				break;
			}
			found = getKeyJsonValueFromContainer(cont, c->path[k], strlen(c->path[k]), &val);
			if (found == NULL)
				break;
			if (found->type == jbvBinary)
				cont = found->val.binary.data;
			else if (k < c->npath - 1)
			{
				found = NULL;
				break;
			}
		}
		if (found == NULL)
		{
			if (c->required)
				return psprintf("%s is missing", c->path_text);
			continue;
		}
		if (c->type == NULL)
			continue;
		switch (found->type)
		{
			case jbvString:
				type = "string";
				break;
			case jbvNumeric:
				type = "number";
				break;
			case jbvBool:
				type = "boolean";
				break;
			case jbvNull:
				type = "null";
				break;
			case jbvBinary:
				type = JsonContainerIsArray(found->val.binary.data) ? "array" : "object";
				break;
			default:
				type = "unknown";
		}
		if (strcmp(type, c->type) != 0)
			return psprintf("%s is %s, expected %s", c->path_text, type, c->type);
	}
	return NULL;
}

/*
 * Reference rules look up the batch's distinct values in one query each,
 * before the row loop; the loop then only probes a hash table.
 */
static void
mover_references(Mover *m)
{
	RuleProgram *p = m->p;
	int			k;

	for (k = 0; k < p->nrules; k++)
	{
		StageRule  *r = &p->rules[k];
		Datum	   *vals;
		int			n = 0;
		int			i;
		Oid			argtype = TEXTARRAYOID;
		Datum		arg;
		uint64		j;

		if (r->kind != RULE_REFERENCE)
			continue;
		r->ref_found = mover_key_table("stage reference values", m->n);
		vals = palloc(sizeof(Datum) * Max(m->n, 1));
		for (i = 0; i < m->n; i++)
			if (m->rows[i].vals[r->col] != NULL && !m->rows[i].badtype[r->col])
				vals[n++] = m->rows[i].datums[r->col];
		if (n == 0)
			continue;
		arg = mover_array(vals, NULL, n, TEXTOID);
		mover_exec(r->ref_sql, 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		for (j = 0; j < SPI_processed; j++)
		{
			char	   *f = SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1);

			(void) hash_search(r->ref_found, &f, HASH_ENTER, NULL);
		}
		SPI_freetuptable(SPI_tuptable);
	}
}

/* ----------------------------------------------------------------
 *		expression rules
 * ---------------------------------------------------------------- */

static void
mover_expr_group(Mover *m, int *idx, int n)
{
	StageRule  *r = m->cur_rule;
	int			ncols = list_length(r->expr_cols);
	Oid		   *types = palloc(sizeof(Oid) * (ncols + 1));
	Datum	   *vals = palloc(sizeof(Datum) * (ncols + 1));
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	ListCell   *lc;
	int			k = 1;
	int			i;
	uint64		j;

	types[0] = INT4ARRAYOID;
	for (i = 0; i < n; i++)
		elems[i] = Int32GetDatum(idx[i]);
	vals[0] = mover_array(elems, NULL, n, INT4OID);
	foreach(lc, r->expr_cols)
	{
		int			c;

		for (c = 0; c < m->p->ncols; c++)
			if (strcmp(m->p->cols[c].name, (char *) lfirst(lc)) == 0)
				break;
		for (i = 0; i < n; i++)
		{
			MoverRow   *row = &m->rows[idx[i]];

			nulls[i] = (row->vals[c] == NULL);
			elems[i] = nulls[i] ? (Datum) 0 : row->datums[c];
		}
		types[k] = TEXTARRAYOID;
		vals[k++] = mover_array(elems, nulls, n, TEXTOID);
	}
	mover_exec(r->expr_sql, k, types, vals, NULL, SPI_OK_SELECT);	/* built by contract.c */
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		int			ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
													  SPI_tuptable->tupdesc, 1, &isnull));

		r->expr_msg[ord] = psprintf("expression is false: %s", r->expr);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* an expression that raised for one row fails for that row */
static void
mover_expr_fail(Mover *m, int row, ErrorData *e)
{
	m->cur_rule->expr_msg[row] = psprintf("expression failed: %s", e->message);
	m->cur_rule->expr_state[row] = pstrdup(unpack_sql_state(e->sqlerrcode));
	m->cur_rule->expr_raised[row] = true;
}

/*
 * Expression rules run set-wise, one statement per rule and batch, over
 * the rows whose columns it reads all passed their type check.
 */
static void
mover_expressions(Mover *m)
{
	RuleProgram *p = m->p;
	int		   *idx = palloc(sizeof(int) * Max(m->n, 1));
	int			k;

	for (k = 0; k < p->nrules; k++)
	{
		StageRule  *r = &p->rules[k];
		int			n = 0;
		int			i;

		if (r->kind != RULE_EXPRESSION)
			continue;
		r->expr_msg = palloc0(sizeof(char *) * Max(m->n, 1));
		r->expr_state = palloc0(sizeof(char *) * Max(m->n, 1));
		r->expr_raised = palloc0(sizeof(bool) * Max(m->n, 1));
		for (i = 0; i < m->n; i++)
		{
			ListCell   *lc;
			bool		ok = true;

			foreach(lc, r->expr_cols)
			{
				int			c;

				for (c = 0; c < p->ncols; c++)
					if (strcmp(p->cols[c].name, (char *) lfirst(lc)) == 0 &&
						m->rows[i].badtype[c])
						ok = false;
			}
			if (ok)
				idx[n++] = i;
		}
		m->cur_rule = r;
		mover_bisect(m, mover_expr_group, mover_expr_fail, idx, n);
	}
}

static void
mover_rules(Mover *m)
{
	RuleProgram *p = m->p;
	int			i;
	int			k;

	if (!m->limited)
	{
		mover_references(m);
		mover_expressions(m);
	}
	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];

		CHECK_FOR_INTERRUPTS();
		for (k = 0; k < p->nrules; k++)
		{
			StageRule  *r = &p->rules[k];
			StageColumn *col = &p->cols[r->col];
			const char *v = row->vals[r->col];
			char	   *msg = NULL;
			const char *sqlstate = NULL;
			const char *kind = r->kind_name;
			bool		raised = false;

			if (m->limited &&
				(r->kind == RULE_EXPRESSION || r->kind == RULE_REFERENCE))
			{
				mover_skipped(m, psprintf("rule %s (%s)", r->name, r->kind_name));
				continue;
			}
			if (r->kind == RULE_EXPRESSION)
			{
				/* evaluated set-wise above, over the whole row */
				if (r->expr_msg[i] == NULL)
				{
					r->checked++;
					continue;
				}
				v = row->vals[r->col];
			}
			else if (v == NULL && r->kind != RULE_NOT_NULL)
				continue;		/* NULL passes every rule but not_null */
			if (row->badtype[r->col])
				continue;		/* already quarantined for its type */
			r->checked++;
			switch (r->kind)
			{
				case RULE_NOT_NULL:
					if (v == NULL)
					{
						msg = "value is null";
						sqlstate = "23502";
					}
					break;
				case RULE_RANGE:
					{
						Datum		d = InputFunctionCall(&col->range_infunc, (char *) v,
														  col->range_ioparam, -1);

						if (r->has_min &&
							DatumGetInt32(FunctionCall2Coll(&col->cmpfunc, col->collation,
															d, r->min)) < 0)
							msg = psprintf("value is below the minimum %s", r->min_text);
						else if (r->has_max &&
								 DatumGetInt32(FunctionCall2Coll(&col->cmpfunc, col->collation,
																 d, r->max)) > 0)
							msg = psprintf("value is above the maximum %s", r->max_text);
					}
					break;
				case RULE_ENUM:
					if (bsearch(v, r->values, r->nvalues, sizeof(char *),
								mover_enum_cmp) == NULL)
						msg = psprintf("value is not one of %s", r->values_text);
					break;
				case RULE_LENGTH:
					{
						int			nchars = pg_mbstrlen(v);

						if (r->min_len >= 0 && nchars < r->min_len)
							msg = psprintf("value has %d characters, fewer than the minimum %d",
										   nchars, r->min_len);
						else if (r->max_len >= 0 && nchars > r->max_len)
							msg = psprintf("value has %d characters, more than the maximum %d",
										   nchars, r->max_len);
					}
					break;
				case RULE_FORMAT:
					if (!format_valid(r->format, v, strlen(v)))
						msg = psprintf("value is not a valid %s", format_name(r->format));
					break;
				case RULE_NO_PII:
					{
						PiiHit		hit;

						if (pii_scan(v, strlen(v), r->pii_kinds, &hit, 1) > 0)
							msg = psprintf("value contains %s at character %d",
										   pii_kind_name(hit.kind),
										   pg_mbstrlen_with_len(v, hit.start) + 1);
					}
					break;
				case RULE_JSON:
					msg = mover_json_check(r, v);
					break;
				case RULE_REFERENCE:
					if (hash_search(r->ref_found, &v, HASH_FIND, NULL) == NULL)
						msg = psprintf("value not found in %s", r->ref_name);
					break;
				case RULE_UNIQUE:
					r->checked--;	/* counted by mover_dedupe */
					break;
				case RULE_EXPRESSION:
					msg = r->expr_msg[i];
					sqlstate = r->expr_state[i];
					raised = r->expr_raised[i];
					break;
				case RULE_REGEX:
					switch (rx_match(r->rx, v, strlen(v)))
					{
						case RX_MATCH:
							break;
						case RX_NOMATCH:
							msg = psprintf("value does not match %s", r->pattern);
							break;
						case RX_LIMIT:
							kind = "regex_limit";
							sqlstate = "54000";
							msg = psprintf("pattern %s exceeded stage.regex_match_limit", r->pattern);
							break;
					}
					break;
			}
			if (msg == NULL)
				continue;
			r->failed++;
			if (r->warn)
				row->warned = true;
			if (r->warn && !m->check_only)
				continue;		/* counted; a batch records no warnings per row */
			if (raised)
				mover_server_text(m, row, r->name, kind, r->col, sqlstate, NULL, msg,
								  false, r->warn ? "warn" : "reject");
			else if (r->warn)
				mover_warning(m, row, r->name, kind, r->col, sqlstate, msg);
			else
				mover_reason(m, row, r->name, kind, r->col, sqlstate, msg);
		}
		/* key columns are implicitly not null */
		for (k = 0; k < p->nkeys; k++)
			if (row->vals[p->keycols[k]] == NULL && !row->badtype[p->keycols[k]])
				mover_reason(m, row, "key_not_null", "not_null", p->keycols[k], "23502",
							 "key column is null");
		if (row->warned && row->outcome == OUT_CLEAN)
			m->n_warned++;
	}
}

/* ----------------------------------------------------------------
 *		keys and duplicates
 * ---------------------------------------------------------------- */

static uint32
mover_key_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return string_hash(s, strlen(s) + 1);
}

static int
mover_key_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static HTAB *
mover_key_table(const char *name, int n)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(char *) + sizeof(int);
	ctl.hash = mover_key_hash;
	ctl.match = mover_key_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, Max(n, 16), &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

typedef struct KeyEntry
{
	char	   *key;
	int			row;
} KeyEntry;

/* canonical text of the key: each key value through input then output */
static char *
mover_canonical_key(Mover *m, Datum *typed)
{
	RuleProgram *p = m->p;
	StringInfoData s;
	int			k;

	initStringInfo(&s);
	for (k = 0; k < p->nkeys; k++)
	{
		StageColumn *col = &p->cols[p->keycols[k]];
		char	   *out = OutputFunctionCall(&col->outfunc, typed[k]);

		if (k > 0)
			appendStringInfoChar(&s, '\x1f');
		appendStringInfo(&s, "%zu:%s", strlen(out), out);
	}
	return s.data;
}

static bool
mover_int_key(StageColumn *col)
{
	return col->tclass == TC_INT2 || col->tclass == TC_INT4 || col->tclass == TC_INT8;
}

/*
 * The canonical key of an integer that passed its pre-check ([sign]
 * digits): what the type's output function prints, without calling input
 * and output functions; must equal mover_canonical_key of the typed value.
 */
static char *
mover_int_canonical(Mover *m, const char *s)
{
	bool		neg = false;
	char	   *out;
	size_t		len;

	if (*s == '+' || *s == '-')
		neg = (*s++ == '-');
	while (*s == '0' && s[1] != '\0')
		s++;
	if (*s == '0')
		neg = false;
	len = strlen(s) + (neg ? 1 : 0);
	out = psprintf("%zu:%s%s", len, neg ? "-" : "", s);
	return out;
}

static void
mover_dedupe(Mover *m)
{
	RuleProgram *p = m->p;
	HTAB	   *seen;
	Datum	   *typed;
	int			i;
	int			k;

	int64		candidates = 0;
	int64		dups = 0;

	if (p->nkeys == 0)
		return;
	seen = mover_key_table("stage batch keys", m->n);
	typed = palloc(sizeof(Datum) * p->nkeys);
	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];
		KeyEntry   *e;
		bool		found;

		if (row->outcome != OUT_CLEAN)
			continue;
		candidates++;
		if (p->nkeys == 1 && p->cols[p->keycols[0]].tclass == TC_TEXT)
			row->key = row->vals[p->keycols[0]];	/* text is its own canonical form */
		else if (p->nkeys == 1 && mover_int_key(&p->cols[p->keycols[0]]) &&
				 tc_precheck(p->cols[p->keycols[0]].tclass, -1, row->vals[p->keycols[0]]))
			row->key = mover_int_canonical(m, row->vals[p->keycols[0]]);
		else
		{
			for (k = 0; k < p->nkeys; k++)
			{
				StageColumn *col = &p->cols[p->keycols[k]];

				typed[k] = InputFunctionCall(&col->infunc, row->vals[p->keycols[k]],
											 col->ioparam, col->typmod);
			}
			row->key = mover_canonical_key(m, typed);
		}
		e = hash_search(seen, &row->key, HASH_ENTER, &found);
		if (!found)
		{
			e->row = i;
			continue;
		}
		dups++;
		switch (p->on_duplicate)
		{
			case ONDUP_SKIP:
				row->outcome = OUT_DUPLICATE;
				break;
			case ONDUP_UPDATE:
				/* the last version of a key wins; earlier ones are superseded */
				m->rows[e->row].outcome = OUT_DUPLICATE;
				e->row = i;
				break;
			case ONDUP_QUARANTINE:
				mover_reason(m, row, "unique_key", "unique", p->keycols[0], "23505",
							 psprintf("duplicate key: landing row %lld has the same key",
									  (long long) m->rows[e->row].id));
				break;
		}
	}
	for (k = 0; k < p->nrules; k++)
		if (p->rules[k].kind == RULE_UNIQUE)
		{
			p->rules[k].checked += candidates;
			p->rules[k].failed += dups;
		}
}

/*
 * Masks that need the whole batch at once (a lookup per batch, not per
 * value) see every non-null value of their column here, before any row
 * is written.
 */
static void
mover_prepare_masks(Mover *m)
{
	RuleProgram *p = m->p;
	const char **values = palloc(sizeof(char *) * Max(m->n, 1));
	int			c;

	for (c = 0; c < p->ncols; c++)
	{
		int			n = 0;
		int			i;

		if (p->cols[c].mask == NULL || !mask_needs_batch(p->cols[c].mask))
			continue;
		for (i = 0; i < m->n; i++)
			if (m->rows[i].vals[c] != NULL)
				values[n++] = m->rows[i].vals[c];
		mask_prepare(p->cols[c].mask, values, n, p->owner);
	}
}

/* ----------------------------------------------------------------
 *		writing clean rows
 * ---------------------------------------------------------------- */

static Datum
mover_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/* INSERT the rows idx[0..n); collect the keys it returns */
/*
 * The text each clean row writes: masked where the column is masked.
 * Computed once, whatever the number of write attempts.
 */
static void
mover_output(Mover *m, int *idx, int n)
{
	RuleProgram *p = m->p;
	int			i;
	int			c;

	for (i = 0; i < n; i++)
	{
		MoverRow   *row = &m->rows[idx[i]];

		row->out = row->vals;
		for (c = 0; c < p->ncols; c++)
		{
			if (p->cols[c].mask == NULL)
				continue;
			if (row->out == row->vals)
			{
				row->out = palloc(sizeof(char *) * p->ncols);
				memcpy(row->out, row->vals, sizeof(char *) * p->ncols);
			}
			if (row->vals[c] != NULL)
				row->out[c] = mask_apply(p->cols[c].mask, row->vals[c],
										 strlen(row->vals[c]));
			if (row->out[c] != NULL && p->cols[c].tclass == TC_VARCHAR &&
				p->cols[c].typmod > VARHDRSZ &&
				pg_mbstrlen(row->out[c]) > p->cols[c].typmod - VARHDRSZ)
				mover_reason(m, row, psprintf("%s_mask", p->cols[c].name), "mask", c,
							 "22001",
							 psprintf("the masked value has %d characters, more than column \"%s\" of type %s takes",
									  pg_mbstrlen(row->out[c]), p->cols[c].name,
									  format_type_with_typemod(p->cols[c].typid,
															   p->cols[c].typmod)));
		}
	}
}

/* write the rows idx[0..n) without an INSERT statement (direct.c) */
static void
mover_insert_direct(Mover *m, int *idx, int n)
{
	RuleProgram *p = m->p;
	char	  **values = palloc(sizeof(char *) * (size_t) n * Max(p->ncols, 1));
	Datum	   *texts = palloc0(sizeof(Datum) * (size_t) n * Max(p->ncols, 1));
	int64	   *ids = palloc(sizeof(int64) * n);
	int			i;
	int			c;

	for (i = 0; i < n; i++)
	{
		MoverRow   *row = &m->rows[idx[i]];

		memcpy(values + (size_t) i * p->ncols, row->out, sizeof(char *) * p->ncols);
		/* a text column's landing value is its own datum */
		for (c = 0; c < p->ncols; c++)
			if (p->cols[c].typid == TEXTOID && !p->cols[c].is_domain &&
				row->out[c] != NULL && row->out[c] == row->vals[c])
				texts[(size_t) i * p->ncols + c] = row->datums[c];
		ids[i] = row->id;
	}
	direct_insert(p, n, values, texts, ids, m->batch_id);
}

static void
mover_insert(Mover *m, int *idx, int n)
{
	RuleProgram *p = m->p;
	int			nparams = p->ncols + 2;
	Datum	   *params;
	char	   *pnulls;
	Datum	   *elems;
	bool	   *enulls;
	int			c;
	int			i;
	int			rc;

	if (m->use_direct)
	{
		mover_insert_direct(m, idx, n);
		return;
	}
	params = palloc(sizeof(Datum) * nparams);
	pnulls = palloc(nparams);
	elems = palloc(sizeof(Datum) * n);
	enulls = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
	{
		elems[i] = Int64GetDatum(m->rows[idx[i]].id);
		enulls[i] = false;
	}
	params[0] = mover_array(elems, enulls, n, INT8OID);
	params[1] = Int64GetDatum(m->batch_id);
	memset(pnulls, ' ', nparams);
	for (c = 0; c < p->ncols; c++)
	{
		for (i = 0; i < n; i++)
		{
			MoverRow   *row = &m->rows[idx[i]];
			char	   *v = row->out[c];

			enulls[i] = (v == NULL);
			if (v == NULL)
				elems[i] = (Datum) 0;
			else if (v == row->vals[c])
				elems[i] = row->datums[c];	/* unmasked: the landing datum */
			else
				elems[i] = CStringGetTextDatum(v);
		}
		params[c + 2] = mover_array(elems, enulls, n, TEXTOID);
	}

	rc = SPI_execute_plan(m->insert_plan, params, pnulls, false, 0);
	if (rc != SPI_OK_INSERT && rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "stage: insert into target failed (%d)", rc);

	if (rc == SPI_OK_INSERT_RETURNING && m->written)
	{
		Datum	   *typed = palloc(sizeof(Datum) * p->nkeys);
		uint64		j;

		for (j = 0; j < SPI_processed; j++)
		{
			bool		isnull;
			int			k;
			char	   *key;

			for (k = 0; k < p->nkeys; k++)
				typed[k] = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc,
										 k + 1, &isnull);
			if (p->nkeys == 1 && p->cols[p->keycols[0]].tclass == TC_TEXT)
				key = TextDatumGetCString(typed[0]);
			else
				key = mover_canonical_key(m, typed);
			(void) hash_search(m->written, &key, HASH_ENTER, NULL);
		}
	}
	if (SPI_tuptable)
		SPI_freetuptable(SPI_tuptable);
}

/* a row the target rejected (constraint, trigger, cast) is quarantined */
static void
mover_write_fail(Mover *m, int r, ErrorData *e)
{
	MoverRow   *row = &m->rows[r];
	int			col = -1;
	int			c;

	if (e->column_name)
		for (c = 0; c < m->p->ncols; c++)
			if (strcmp(m->p->cols[c].name, e->column_name) == 0)
				col = c;
	mover_reason_server(m, row, e->constraint_name ? e->constraint_name : "target",
						"target", col, e, false);
}

/* the program's INSERT plan, prepared once and kept with the program */
static SPIPlanPtr
mover_plan(RuleProgram *p, bool upsert)
{
	void	  **slot = upsert ? &p->upsert_plan : &p->insert_plan;

	if (*slot == NULL)
	{
		Oid		   *argtypes = palloc(sizeof(Oid) * (p->ncols + 2));
		SPIPlanPtr	plan;
		int			c;

		argtypes[0] = INT8ARRAYOID;
		argtypes[1] = INT8OID;
		for (c = 0; c < p->ncols; c++)
			argtypes[c + 2] = TEXTARRAYOID;
		plan = SPI_prepare(upsert ? p->upsert_sql : p->insert_sql, p->ncols + 2, argtypes);
		if (plan == NULL)
			elog(ERROR, "stage: could not prepare insert: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*slot = plan;
	}
	return (SPIPlanPtr) *slot;
}

/*
 * Write the clean rows.  Keyed pipelines first try a plain INSERT of the
 * whole chunk (no key can be in the batch twice: mover_dedupe saw to that);
 * only when it fails, or the previous chunk met conflicts, do they use the
 * ON CONFLICT form, whose RETURNING tells new keys from existing ones.
 */
static void
mover_write_clean(Mover *m)
{
	RuleProgram *p = m->p;
	int		   *idx = palloc(sizeof(int) * Max(m->n, 1));
	int			n = 0;
	int			i;
	int			k;
	bool		upsert = (p->nkeys > 0 &&
						  (p->on_duplicate == ONDUP_UPDATE || p->conflicts_seen));

	for (i = 0; i < m->n; i++)
		if (m->rows[i].outcome == OUT_CLEAN)
			idx[n++] = i;
	if (n == 0)
		return;
	mover_output(m, idx, n);
	/* a masked value too long for its column quarantined its row */
	for (i = 0, k = 0; i < n; i++)
		if (m->rows[idx[i]].outcome == OUT_CLEAN)
			idx[k++] = idx[i];
	n = k;
	if (n == 0)
		return;

	if (!upsert)
	{
		ErrorData  *e;

		m->use_direct = p->direct;
		if (!m->use_direct)
			m->insert_plan = mover_plan(p, false);
		e = mover_try(m, mover_insert, idx, n);
		if (e == NULL)
			return;
		FreeErrorData(e);
		/* something was rejected: find it row by row below */
		upsert = (p->nkeys > 0);
	}

	m->use_direct = (p->direct && !upsert);
	m->insert_plan = mover_plan(p, upsert);
	if (upsert && p->on_duplicate != ONDUP_UPDATE)
		m->written = mover_key_table("stage written keys", n);
	mover_bisect(m, mover_insert, mover_write_fail, idx, n);

	/* rows sent but not written conflicted with a key already in the target */
	if (m->written)
	{
		int			conflicts = 0;

		for (i = 0; i < n; i++)
		{
			MoverRow   *row = &m->rows[idx[i]];

			if (row->outcome != OUT_CLEAN ||
				hash_search(m->written, &row->key, HASH_FIND, NULL) != NULL)
				continue;
			conflicts++;
			if (p->on_duplicate == ONDUP_QUARANTINE)
				mover_reason(m, row, "unique_key", "unique", p->keycols[0], "23505",
							 "duplicate key: the key already exists in the target");
			else
				row->outcome = OUT_DUPLICATE;
		}
		p->conflicts_seen = (conflicts > 0);
	}
}

/* ----------------------------------------------------------------
 *		bookkeeping writes
 * ---------------------------------------------------------------- */

static void
mover_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
		   int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "stage: bookkeeping statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* the row's columns as a jsonb object, masked or as landed */
static Datum
mover_row_data(Mover *m, MoverRow *row, bool masked)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	int			c;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (c = 0; c < m->p->ncols; c++)
		mover_jb_pair(&st, m->p->cols[c].name,
					  masked ? mover_shown(m, &m->p->cols[c], row->vals[c]) : row->vals[c]);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

static void
mover_write_outcomes(Mover *m)
{
	int			nq = 0;
	int			nd = 0;
	int			i;
	Datum	   *ids = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *srcs = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *srcnull = palloc(sizeof(bool) * Max(m->n, 1));
	Datum	   *rcv = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *rcvnull = palloc(sizeof(bool) * Max(m->n, 1));
	Datum	   *rd = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *re = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *raw = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *pay = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *rr = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *rrnull = palloc(sizeof(bool) * Max(m->n, 1));
	bool	   *paynull = palloc(sizeof(bool) * Max(m->n, 1));
	Datum	   *dids = palloc(sizeof(Datum) * Max(m->n, 1));

	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];

		switch (row->outcome)
		{
			case OUT_CLEAN:
				m->n_clean++;
				break;
			case OUT_DUPLICATE:
				m->n_duplicate++;
				dids[nd++] = Int64GetDatum(row->id);
				break;
			case OUT_QUARANTINE:
				m->n_quarantined++;
				ids[nq] = Int64GetDatum(row->id);
				srcnull[nq] = (row->source == NULL);
				srcs[nq] = row->source ? CStringGetTextDatum(row->source) : (Datum) 0;
				rcvnull[nq] = row->received_null;
				rcv[nq] = row->received_at;
				re[nq] = mover_reasons_jsonb(m, row, false);
				rrnull[nq] = !mover_has_raw(row);
				rr[nq] = rrnull[nq] ? (Datum) 0 : mover_reasons_jsonb(m, row, true);
				rd[nq] = mover_row_data(m, row, true);
				raw[nq] = mover_row_data(m, row, false);
				/* jsonb format: the payload itself, for replay and its drift check */
				paynull[nq] = (row->payload == (Datum) 0);
				pay[nq] = paynull[nq] ? (Datum) 0 : row->payload;
				nq++;
				break;
		}
	}
	if (nq > 0)
	{
		Oid			types[11] = {INT4OID, INT8OID, INT4OID, INT8ARRAYOID, TEXTARRAYOID,
			TIMESTAMPTZARRAYOID, JSONBARRAYOID, JSONBARRAYOID, JSONBARRAYOID,
		JSONBARRAYOID, JSONBARRAYOID};
		Datum		vals[11];

		vals[0] = Int32GetDatum(m->p->pipeline_id);
		vals[1] = Int64GetDatum(m->batch_id);
		vals[2] = Int32GetDatum(m->p->version);
		vals[3] = mover_array(ids, NULL, nq, INT8OID);
		vals[4] = mover_array(srcs, srcnull, nq, TEXTOID);
		vals[5] = mover_array(rcv, rcvnull, nq, TIMESTAMPTZOID);
		vals[6] = mover_array(rd, NULL, nq, JSONBOID);
		vals[7] = mover_array(re, NULL, nq, JSONBOID);
		vals[8] = mover_array(raw, NULL, nq, JSONBOID);
		vals[9] = mover_array(pay, paynull, nq, JSONBOID);
		vals[10] = mover_array(rr, rrnull, nq, JSONBOID);
		catalog_exec("INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id,"
					 " contract_version, source, received_at, row_data, reasons, raw_data,"
					 " raw_payload, raw_reasons)"
					 " SELECT $1, u.id, $2, $3, u.src, u.rcv, u.rd, u.re, u.raw, u.pay, u.rr"
					 " FROM (SELECT pg_catalog.unnest($4) AS id, pg_catalog.unnest($5) AS src,"
					 " pg_catalog.unnest($6) AS rcv, pg_catalog.unnest($7) AS rd,"
					 " pg_catalog.unnest($8) AS re, pg_catalog.unnest($9) AS raw,"
					 " pg_catalog.unnest($10) AS pay, pg_catalog.unnest($11) AS rr) AS u",
					 11, types, vals, NULL, SPI_OK_INSERT);
	}
	if (nd > 0)
	{
		Oid			types[3] = {INT4OID, INT8OID, INT8ARRAYOID};
		Datum		vals[3];

		vals[0] = Int32GetDatum(m->p->pipeline_id);
		vals[1] = Int64GetDatum(m->batch_id);
		vals[2] = mover_array(dids, NULL, nd, INT8OID);
		catalog_exec("INSERT INTO stage.duplicate_log (pipeline_id, landing_id, batch_id)"
				   " SELECT $1, u.id, $2 FROM pg_catalog.unnest($3) AS u(id)",
				   3, types, vals, NULL, SPI_OK_INSERT);
	}
}

/* per rule (and per column type check) counters of this batch */
static void
mover_write_stats(Mover *m)
{
	RuleProgram *p = m->p;
	int			max = p->nrules + p->ncols;
	Datum	   *names = palloc(sizeof(Datum) * max);
	Datum	   *cols = palloc(sizeof(Datum) * max);
	Datum	   *kinds = palloc(sizeof(Datum) * max);
	Datum	   *sev = palloc(sizeof(Datum) * max);
	Datum	   *checked = palloc(sizeof(Datum) * max);
	Datum	   *failed = palloc(sizeof(Datum) * max);
	int			n = 0;
	int			i;
	Oid			types[7] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		vals[7];

	for (i = 0; i < p->ncols; i++)
	{
		/* not type-checked: a mask that writes text replaces the value */
		if (p->cols[i].mask && mask_needs_text(p->cols[i].mask))
			continue;
		names[n] = CStringGetTextDatum(psprintf("%s_type", p->cols[i].name));
		cols[n] = CStringGetTextDatum(p->cols[i].name);
		kinds[n] = CStringGetTextDatum("type");
		sev[n] = CStringGetTextDatum("reject");
		checked[n] = Int64GetDatum(m->type_checked[i]);
		failed[n] = Int64GetDatum(m->type_failed[i]);
		n++;
	}
	for (i = 0; i < p->nrules; i++)
	{
		StageRule  *r = &p->rules[i];

		names[n] = CStringGetTextDatum(r->name);
		cols[n] = CStringGetTextDatum(p->cols[r->col].name);
		kinds[n] = CStringGetTextDatum(r->kind_name);
		sev[n] = CStringGetTextDatum(r->warn ? "warn" : "reject");
		checked[n] = Int64GetDatum(r->checked);
		failed[n] = Int64GetDatum(r->failed);
		n++;
	}
	if (n == 0)
		return;
	vals[0] = Int64GetDatum(m->batch_id);
	vals[1] = mover_array(names, NULL, n, TEXTOID);
	vals[2] = mover_array(cols, NULL, n, TEXTOID);
	vals[3] = mover_array(kinds, NULL, n, TEXTOID);
	vals[4] = mover_array(sev, NULL, n, TEXTOID);
	vals[5] = mover_array(checked, NULL, n, INT8OID);
	vals[6] = mover_array(failed, NULL, n, INT8OID);
	catalog_exec("INSERT INTO stage.batch_rule_stat (batch_id, rule_name, column_name, kind,"
			   " severity, checked, failed)"
			   " SELECT $1, u.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
			   " pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
			   " pg_catalog.unnest($7)) AS u",
			   7, types, vals, NULL, SPI_OK_INSERT);
}

/* ----------------------------------------------------------------
 *		the batch
 * ---------------------------------------------------------------- */


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

/* what mover_enter changed, for mover_leave to restore */
typedef struct MoverSession
{
	int			pipeline_id;
	Oid			save_userid;	/* who called (stage_caller) */
	Guard		guard;
	RuleProgram *prog;			/* pinned for the call (contract_release) */
	int			lane;			/* the lane mover_enter took (-1: the whole pipeline) */
} MoverSession;

static bool mover_hold(Mover *m, BatchResult *res, int64 rows_in, int64 rejected);
static char *mover_latency_sql(Mover *m);

/* the role that called run_batch (the batch itself runs as the owner) */
static Oid	mover_caller = InvalidOid;

/* the memory of run_batch, kept across batches (see stage_run_batch) */
static MemoryContext mover_batch_cxt = NULL;
static int	mover_depth = 0;	/* run_batch calls in progress in this backend */

static void
mover_read_window(Window *w, int pipeline_id, bool whole, MemoryContext cxt)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;

	/* a statement of its own: its snapshot postdates the lock */
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

static bool
mover_in_snapshot(Datum txid, Datum snapshot)
{
	return DatumGetBool(DirectFunctionCall2(pg_visible_in_snapshot, txid, snapshot));
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
				t = mover_json_text(&v);
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
 * Read the next chunk of the window into m->rows: the landing rows after
 * the cursor (cur_txid, cur_id), in (_stage_txid, _stage_id) order, whose
 * transaction is visible in win_hi and not in win_lo, at most limit.
 *
 * Straight through the landing index from the cursor, with the window test
 * in C: the cost is that of the rows read, whatever the statistics say (a
 * query planned on an unanalysed landing table read the whole rest of the
 * window, then sorted it, for every chunk).  A row stops the walk once its
 * transaction is at or past win_hi's xmax: no later one can be in the
 * window.  Each value is copied once, detoasted, as a text whose data is
 * also the C string the checks read.
 */
static void
mover_read_chunk(Mover *m, Window *w, int64 limit)
{
	RuleProgram *p = m->p;
	Relation	lrel;
	Relation	irel;
	IndexScanDesc scan;
	ScanKeyData key;
	ScanKeyData row[2];
	Snapshot	snap;
	TupleTableSlot *slot;
	int			cap = (int) Min(limit, 1024);
	int64		cur_id = w->cur_id;
	FullTransactionId cur_txid = DatumGetFullTransactionId(w->cur_txid);
	FullTransactionId hi_xmax = DatumGetFullTransactionId(w->hi_xmax);
	MemoryContext old = MemoryContextSwitchTo(m->cxt);

	m->n = 0;
	m->rows = palloc0(sizeof(MoverRow) * cap);

	lrel = table_open(p->landing, AccessShareLock);
	irel = index_open(p->landing_index, AccessShareLock);
	/*
	 * ROW(_stage_txid, _stage_id) > ROW(cur_txid, cur_id): a row
	 * comparison key, so the scan starts right after the cursor (one
	 * transaction's million rows share a txid: a key on the txid alone
	 * would start each chunk at the first of them).
	 */
	ScanKeyEntryInitialize(&row[0], SK_ROW_MEMBER, 1, BTGreaterStrategyNumber,
						   XID8OID, InvalidOid, F_XID8GT, w->cur_txid);
	ScanKeyEntryInitialize(&row[1], SK_ROW_MEMBER | SK_ROW_END, 2, BTGreaterStrategyNumber,
						   INT8OID, InvalidOid, F_INT8GT, Int64GetDatum(w->cur_id));
	ScanKeyEntryInitialize(&key, SK_ROW_HEADER, 1, BTGreaterStrategyNumber,
						   InvalidOid, InvalidOid, InvalidOid, PointerGetDatum(row));
	/*
	 * A snapshot taken now: the window's upper snapshot was taken by a
	 * query of this batch, later than the statement's own snapshot (a
	 * mover that waited for the pipeline's lock started long before).
	 * Rows committed in between are in the window; read with the
	 * statement's snapshot they would not be seen, and the window would
	 * close without them.  Whatever a newer snapshot shows beyond the
	 * window, the window test below leaves out.
	 */
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = index_beginscan(lrel, irel, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(lrel, NULL);
	while (m->n < limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		MoverRow   *row;
		Datum		txid;
		FullTransactionId ftxid;
		int64		id;
		bool		isnull;
		int			c;

		CHECK_FOR_INTERRUPTS();
		txid = slot_getattr(slot, p->l_txid, &isnull);
		ftxid = DatumGetFullTransactionId(txid);
		if (!FullTransactionIdPrecedes(ftxid, hi_xmax))
			break;				/* every later row is past the window */
		id = DatumGetInt64(slot_getattr(slot, p->l_id, &isnull));
		if (FullTransactionIdPrecedes(ftxid, cur_txid) ||
			(FullTransactionIdEquals(ftxid, cur_txid) && id <= cur_id))
			continue;			/* at or before the cursor (the key sees to it) */
		if (!mover_in_snapshot(txid, w->hi) || mover_in_snapshot(txid, w->lo))
			continue;			/* another window's */
		if (w->lanes > 1 && mover_row_lane(p, slot, id, w->lanes) != w->lane)
			continue;			/* another lane's */

		if (m->n == cap)
		{
			int			newcap = (int) Min((int64) cap * 2, limit);

			m->rows = repalloc(m->rows, sizeof(MoverRow) * newcap);
			memset(&m->rows[cap], 0, sizeof(MoverRow) * (newcap - cap));
			cap = newcap;
		}
		row = &m->rows[m->n++];
		row->id = id;
		w->cur_txid = txid;		/* xid8 is by value */
		w->cur_id = id;
		{
			Datum		d = slot_getattr(slot, p->l_source, &isnull);

			row->source = isnull ? NULL : TextDatumGetCString(d);
		}
		row->received_at = slot_getattr(slot, p->l_received, &row->received_null);
		row->vals = palloc(sizeof(char *) * Max(p->ncols, 1));
		row->datums = palloc(sizeof(Datum) * Max(p->ncols, 1));
		row->badtype = palloc0(sizeof(bool) * Max(p->ncols, 1));
		row->outcome = OUT_CLEAN;
		if (p->jsonb_format)
		{
			Datum		d = slot_getattr(slot, p->l_payload, &isnull);
			Jsonb	   *jb = isnull ? NULL : DatumGetJsonbPCopy(d);

			row->payload = jb ? JsonbPGetDatum(jb) : (Datum) 0;
			for (c = 0; c < p->ncols; c++)
			{
				JsonbValue	v;
				const char *cn = p->cols[c].name;

				row->vals[c] = NULL;
				row->datums[c] = (Datum) 0;
				if (jb == NULL || !JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb) ||
					getKeyJsonValueFromContainer(&jb->root, cn, strlen(cn), &v) == NULL)
					continue;
				row->vals[c] = mover_json_text(&v);
				if (row->vals[c] != NULL)
					row->datums[c] = CStringGetTextDatum(row->vals[c]);
			}
		}
		else
		{
			for (c = 0; c < p->ncols; c++)
			{
				Datum		d = slot_getattr(slot, p->cols[c].landing_attnum, &isnull);

				if (isnull)
				{
					row->vals[c] = NULL;
					row->datums[c] = (Datum) 0;
				}
				else
					row->datums[c] = mover_text_copy(d, &row->vals[c]);
			}
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snap);
	index_close(irel, AccessShareLock);
	table_close(lrel, AccessShareLock);
	MemoryContextSwitchTo(old);
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

/*
 * A batch reads, checks and writes its rows in pieces of at most
 * MOVER_PIECE rows, each piece's memory freed before the next: a batch of a
 * million rows (run_batch(p, 1000000), or a large stage.batch_size) needs
 * no more memory than one of ten thousand.  The pieces are one transaction
 * and one batch record; rule counts and latencies add up over them.
 */
#define MOVER_PIECE 10000

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
	int			attempt;

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
	/* the program is cached across batches; its counters are per batch */
	for (attempt = 0; attempt < m.p->nrules; attempt++)
		m.p->rules[attempt].checked = m.p->rules[attempt].failed = 0;
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
	{
		Oid			types[10] = {INT4OID, INT4OID, PG_SNAPSHOTOID, PG_SNAPSHOTOID,
			XID8OID, INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID};
		Datum		vals[10] = {Int32GetDatum(pipeline_id), Int32GetDatum(w.version),
			w.lo, w.hi, from_txid, Int64GetDatum(from_id),
			TimestampTzGetDatum(started),
			CStringGetTextDatum(GetUserNameFromId(mover_caller, false)),
		Int32GetDatum(w.lane), Int32GetDatum(w.lanes)};
		char		nulls[10] = "        nn";
		bool		isnull;

		if (w.lanes > 1)
			nulls[8] = nulls[9] = ' ';
		catalog_exec("INSERT INTO stage.batch (pipeline_id, contract_version, status,"
					 " win_lo, win_hi, from_txid, from_id, started_at, run_by, lane, lanes)"
					 " VALUES ($1, $2, 'done', $3, $4, $5, $6, $7, $8, $9, $10) RETURNING batch_id",
					 10, types, vals, nulls, SPI_OK_INSERT_RETURNING);
		m.batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_freetuptable(SPI_tuptable);
	}

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
		mover_prepare_masks(&m);
		mover_drift(&m);
		mover_typecheck(&m);
		mover_rules(&m);
		mover_dedupe(&m);
		for (i = 0; i < m.n; i++)
			if (m.rows[i].outcome == OUT_QUARANTINE)
				rejected++;
		mover_write_clean(&m);
		mover_write_outcomes(&m);
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

	/* advance: a short chunk means the window is done */
	{
		Oid			types[13] = {INT8OID, XID8OID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, INT4OID, BOOLOID, PG_SNAPSHOTOID, INT8OID, INT8OID};
		Datum		vals[13];

		vals[0] = Int64GetDatum(m.batch_id);
		vals[1] = w.cur_txid;
		vals[2] = Int64GetDatum(w.cur_id);
		vals[3] = Int64GetDatum(rows_in);
		vals[4] = Int64GetDatum(m.n_clean);
		vals[5] = Int64GetDatum(m.n_quarantined);
		vals[6] = Int64GetDatum(m.n_duplicate);
		vals[7] = Int64GetDatum(m.n_warned);
		vals[8] = Int32GetDatum(pipeline_id);
		vals[9] = BoolGetDatum(window_done);
		vals[10] = w.hi;
		vals[11] = Int64GetDatum(m.n_drift);
		vals[12] = Int64GetDatum(first_id);
		catalog_exec(psprintf("UPDATE stage.batch SET to_txid = $2, to_id = $3, first_id = $13, rows_in = $4,"
							  " rows_clean = $5, rows_quarantined = $6, rows_duplicate = $7,"
							  " rows_warned = $8, rows_drift = $12, finished_at = pg_catalog.clock_timestamp(),"
							  " %s WHERE batch_id OPERATOR(pg_catalog.=) $1",
							  mover_latency_sql(&m)),
					 13, types, vals, NULL, SPI_OK_UPDATE);
		if (w.lanes > 1)
		{
			/* the lane's cursor; the last lane done closes the window if it can */
			mover_lane_save(&w, window_done);
			if (window_done && mover_lanes_closable(&w))
				mover_close_window(&w);
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

	res->has_batch = true;
	res->batch_id = m.batch_id;
	res->rows_in = rows_in;
	res->clean = m.n_clean;
	res->quarantined = m.n_quarantined;
	res->duplicate = m.n_duplicate;
	res->status = "done";
}

static int
mover_cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * Handoff latency of the batch's rows, received -> now (just before the
 * batch commits), in milliseconds: p50, p95, p99 and max, as SQL for the
 * batch record; stage.health aggregates them.
 */
static char *
mover_latency_sql(Mover *m)
{
	double	   *lat = palloc(sizeof(double) * Max(m->nreceived, 1));
	int64		n = 0;
	int64		i;
	TimestampTz now = GetCurrentTimestamp();

	for (i = 0; i < m->nreceived; i++)
		lat[n++] = (now - m->received[i]) / 1000.0;
	if (n == 0)
		return "latency_p50_ms = NULL";
	qsort(lat, n, sizeof(double), mover_cmp_double);
	return psprintf("latency_p50_ms = %.3f, latency_p95_ms = %.3f, latency_p99_ms = %.3f,"
					" latency_max_ms = %.3f",
					lat[(int) (0.50 * (n - 1))], lat[(int) (0.95 * (n - 1))],
					lat[(int) (0.99 * (n - 1))], lat[n - 1]);
}

/*
 * max_reject_ratio: when more of the chunk would be rejected than the
 * pipeline allows, nothing of it moves.  The batch is recorded as held with
 * the reason and its rule counts, the cursor stays where it was, and the
 * pipeline is paused until a person looks: stage.resume(), or any contract
 * change (a fix), lets the next run take the same rows again.
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

/* a pipeline as the catalog says it is */
typedef struct PipelineInfo
{
	int			pipeline_id;
	Oid			owner;
	bool		target_exists;
	Oid			landing;
	int			version;
	bool		enabled;
	bool		lanes_open;		/* an open window worked in lanes, a lane of it left */
} PipelineInfo;

/*
 * Look a pipeline up by name, as the catalog owner (nobody else reads the
 * catalog).  Raises "does not exist" when it does not.
 */
static void
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
				 " OPERATOR(pg_catalog.=) pipeline.pipeline_id AND NOT x.done)"
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
static bool
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
				 errhint("Drop the pipeline with stage.drop_pipeline('%s'), or recreate it for a new target.", name)));
	ms->pipeline_id = pi.pipeline_id;
	mover_caller = ms->save_userid;
	memset(&ms->guard, 0, sizeof(Guard));
	guard_enter(&ms->guard, pi.pipeline_id, name, pi.owner);
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

static void
mover_leave(MoverSession *ms)
{
	if (ms->prog)
		contract_release(ms->prog);
	ms->prog = NULL;
	guard_leave(&ms->guard);
	SPI_finish();
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

/* ----------------------------------------------------------------
 *		stage.check_row
 * ---------------------------------------------------------------- */

/* a JSON value as landing text: what ->> gives */
static char *
mover_json_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return NULL;
	}
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
	int			c;
	Datum		result_jb;
	Datum		result;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Oid			caller = stage_caller();
	bool		full;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline and row_data must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	row_data = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_OBJECT(row_data) || JB_ROOT_IS_SCALAR(row_data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row_data must be a JSON object of column: value"),
				 errhint("For example '{\"order_id\": 1, \"email\": \"a@example.com\"}'.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	mover_find_pipeline(name, &pi);
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
	for (c = 0; c < p->nrules; c++)
		p->rules[c].checked = p->rules[c].failed = 0;

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
	row->vals = palloc0(sizeof(char *) * Max(p->ncols, 1));
	row->datums = palloc0(sizeof(Datum) * Max(p->ncols, 1));
	row->badtype = palloc0(sizeof(bool) * Max(p->ncols, 1));
	row->outcome = OUT_CLEAN;
	for (c = 0; c < p->ncols; c++)
	{
		const char *cn = p->cols[c].name;

		if (getKeyJsonValueFromContainer(&row_data->root, cn, strlen(cn), &v) != NULL)
		{
			row->vals[c] = mover_json_text(&v);
			if (row->vals[c])
				row->datums[c] = CStringGetTextDatum(row->vals[c]);
		}
	}
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
		if (!known)
			mover_reason(&m, row, "unknown_column", "schema", -1, "42703",
						 psprintf("\"%s\" is not a column of the pipeline", k));
	}
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
	int			c;
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
	for (i = 0; i < p->nrules; i++)
		p->rules[i].checked = p->rules[i].failed = 0;
	m.type_checked = palloc0(sizeof(int64) * Max(p->ncols, 1));
	m.type_failed = palloc0(sizeof(int64) * Max(p->ncols, 1));

	catalog_exec("SELECT landing_id, source, received_at, raw_data, raw_payload FROM stage.quarantine_log"
			   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
			   " AND landing_id OPERATOR(pg_catalog.=) ANY ($2) ORDER BY landing_id",
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
		raw = DatumGetJsonbP(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		if (p->jsonb_format)
		{
			/* the payload as it landed: extraction and drift as in a batch */
			d = SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull);
			row->payload = isnull ? (Datum) 0 : d;
			if (!isnull)
				raw = DatumGetJsonbP(d);
		}
		row->vals = palloc0(sizeof(char *) * Max(p->ncols, 1));
		row->datums = palloc0(sizeof(Datum) * Max(p->ncols, 1));
		row->badtype = palloc0(sizeof(bool) * Max(p->ncols, 1));
		row->outcome = OUT_CLEAN;
		for (c = 0; c < p->ncols && JB_ROOT_IS_OBJECT(raw) && !JB_ROOT_IS_SCALAR(raw); c++)
		{
			JsonbValue	v;

			if (getKeyJsonValueFromContainer(&raw->root, p->cols[c].name,
											 strlen(p->cols[c].name), &v) == NULL)
				continue;
			row->vals[c] = mover_json_text(&v);
			if (row->vals[c])
				row->datums[c] = CStringGetTextDatum(row->vals[c]);
		}
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
	mover_prepare_masks(&m);
	mover_drift(&m);
	mover_typecheck(&m);
	mover_rules(&m);
	mover_dedupe(&m);
	if (m.n > 0 && !dry_run)
	{
		Datum	   *elems = palloc(sizeof(Datum) * m.n);

		for (i = 0; i < m.n; i++)
			elems[i] = Int64GetDatum(m.rows[i].id);
		vals[1] = mover_array(elems, NULL, m.n, INT8OID);
		catalog_exec("DELETE FROM stage.quarantine_log WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
				   " AND landing_id OPERATOR(pg_catalog.=) ANY ($2)",
				   2, types, vals, NULL, SPI_OK_DELETE);
		mover_write_clean(&m);
		mover_write_outcomes(&m);
		mover_write_stats(&m);
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
