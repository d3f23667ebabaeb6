/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  What becomes of a row: its masked values, the reasons it fails,
 *	  work over rows in subtransactions that pins a failure on the row
 *	  that caused it (bisection and sweep), and the reasons and the row
 *	  itself as jsonb for its quarantine record.
 *
 * Masked values.  A masked column's value is masked at most once per row
 * (mover_masked keeps the output in the row): the reasons that show it,
 * the clean row written and the quarantine record all see the same
 * output.  stage.check_row, which anyone may call, shows no form of a
 * masked value at all ("[masked]") and masks nothing.
 *
 * What it may touch: no catalog table of its own.  mover_prepare_masks
 * loads mask keys and, for tokenize masks, gives new values their tokens
 * in stage.vault (vault.c, as the vault's owner).  mover_try runs the
 * caller's work in a subtransaction: that work may be the owner's code
 * (input functions of domains, expressions, the target's triggers); it
 * catches only errors that can be pinned on a row (stage_row_error) and
 * re-throws anything else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"

#include "mover_int.h"
#include "reason.h"

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

/* ----------------------------------------------------------------
 *		masked values
 * ---------------------------------------------------------------- */

/*
 * Masks that need the whole piece at once (a lookup per piece, not per
 * value) see every non-null value of their column here, before any value
 * is masked: first thing in a piece, ahead of the checks, whose reasons
 * show masked values.
 */
void
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
		mask_prepare(p->cols[c].mask, values, n, p->owner, !m->no_writes);
	}
}

/*
 * The row's value of column c as it is written and shown: masked where
 * the column is masked.  Masked the first time it is asked for, in the
 * current memory context, and kept in row->out (see MoverRow).
 */
char *
mover_masked(Mover *m, MoverRow *row, int c)
{
	RuleProgram *p = m->p;
	const char *raw = row->vals[c];

	if (raw == NULL || p->cols[c].mask == NULL)
		return row->vals[c];
	if (row->masked == NULL)
	{
		row->out = palloc(sizeof(char *) * p->ncols);
		memcpy(row->out, row->vals, sizeof(char *) * p->ncols);
		row->masked = palloc0(sizeof(bool) * p->ncols);
	}
	if (!row->masked[c])
	{
		row->out[c] = mask_apply(p->cols[c].mask, raw, strlen(raw));
		row->masked[c] = true;
	}
	return row->out[c];
}

/*
 * The value as quarantine may show it: masked when the column is masked.
 * stage.check_row, which anyone may call, shows no form of a masked value
 * at all: a hash mask's output for a guessed value would make it an HMAC
 * oracle.
 */
static char *
mover_shown(Mover *m, MoverRow *row, int c)
{
	if (row->vals[c] == NULL || m->p->cols[c].mask == NULL)
		return row->vals[c];
	if (m->check_only)
		return "[masked]";
	return mover_masked(m, row, c);
}

/* ----------------------------------------------------------------
 *		reasons
 * ---------------------------------------------------------------- */

/* record a failure of the row (column col, or -1 for the whole row) */
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
	r->value = col >= 0 ? mover_shown(m, row, col) : NULL;
	r->sqlstate = sqlstate ? pstrdup(sqlstate) : NULL;
	r->message = pstrdup(message);
	r->severity = severity;
	r->origin = origin;
	r->raw_message = raw_message ? pstrdup(raw_message) : NULL;
	row->reasons = lappend(row->reasons, r);
}

/* a failure in stage's own words: the row is quarantined */
void
mover_reason(Mover *m, MoverRow *row, const char *rule, const char *kind,
			 int col, const char *sqlstate, const char *message)
{
	mover_add_reason(m, row, rule, kind, col, sqlstate, message, "reject",
					 ORIGIN_STAGE, NULL);
	row->outcome = OUT_QUARANTINE;
}

/* a rule of severity warn that failed (check_row reports them) */
void
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

/*
 * A failure whose message is the server's (an input function, the
 * target, an expression, a trigger): shown as it is only when it cannot
 * hold a masked value, withheld otherwise (see reason.c).  An input
 * function of a built-in type quotes nothing but its own value, so its
 * text is withheld only when that column is masked; any other text may
 * quote anything and is withheld when the pipeline masks any column.
 */
void
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

/* the row fails with error e (an input function's when input_fn) */
void
mover_reason_server(Mover *m, MoverRow *row, const char *rule, const char *kind,
					int col, ErrorData *e, bool input_fn)
{
	char	   *text = (e->detail && !input_fn) ?
		psprintf("%s: %s", e->message, e->detail) : pstrdup(e->message);

	mover_server_text(m, row, rule, kind, col, unpack_sql_state(e->sqlerrcode),
					  e->constraint_name, text, input_fn, "reject");
}

/* ----------------------------------------------------------------
 *		failures pinned on rows: subtransactions
 * ---------------------------------------------------------------- */

/*
 * Run fn over the rows idx[0..n) in a subtransaction, in the caller's
 * memory context; on an error that is a row's fault return its data (the
 * subtransaction undone), on any other re-throw it.
 */
ErrorData *
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

/*
 * Run fn over the rows idx[0..n) in one subtransaction; when it fails,
 * split the rows in halves and try again, until each row that fails alone
 * is handed to fail().  k bad rows among n cost O(k log n) attempts, and
 * the good rows are done in as few statements as possible.
 */
void
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

/* mover_sweep's work: m->sweep_fn row by row, the row it is at kept */
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
void
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
 *		reasons and rows as jsonb (built directly, no text to parse)
 * ---------------------------------------------------------------- */

/* push s as a string (or null) token */
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

/* push "key": value (value NULL: null) */
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
Datum
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
bool
mover_has_raw(MoverRow *row)
{
	ListCell   *lc;

	foreach(lc, row->reasons)
		if (((Reason *) lfirst(lc))->raw_message != NULL)
			return true;
	return false;
}

/* the row's columns as a jsonb object, masked or as landed */
Datum
mover_row_data(Mover *m, MoverRow *row, bool masked)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	int			c;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (c = 0; c < m->p->ncols; c++)
		mover_jb_pair(&st, m->p->cols[c].name,
					  masked ? mover_shown(m, row, c) :
					  row->landed ? row->landed[c] : row->vals[c]);
	/* as landed: the landing columns only transforms read, for replay */
	for (c = 0; !masked && c < m->p->nextra; c++)
		mover_jb_pair(&st, m->p->extra_name[c], row->extra ? row->extra[c] : NULL);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}
