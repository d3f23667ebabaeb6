/*-------------------------------------------------------------------------
 *
 * qview.c
 *	  Quarantine as people may see it: the masked columns of the views
 *	  stage.quarantine and stage.quarantine_all, one row at a time
 *	  (stage._quarantine_row_data, stage._quarantine_reasons), and
 *	  stage._quarantine(pipeline_id), every item of a pipeline at once (what
 *	  the views read before; kept for callers and the benchmark), all masked
 *	  with the columns' current masks; stage.quarantine_raw(pipeline), the
 *	  rows as they landed, for the pipeline's owner only.
 *
 * Who sees what.  stage.quarantine_log keeps each quarantined row twice:
 * row_data and reasons, masked when the row was written, and raw_data
 * (and raw_reasons, the server messages that were withheld), as it
 * landed.  Only the catalog owner reads the table (guard.c).
 * stage._quarantine reads the log as the catalog owner and returns a
 * pipeline's rows to
 *	- a superuser or a member of the pipeline's owner role, and
 *	- members of the role stage_analyst (stage.create_roles),
 * and nothing to anyone else (no error: the views list every pipeline).
 * stage.quarantine_raw returns raw rows to members of the owner role.
 *
 * Masked with the current masks.  A row written under a contract version
 * whose masks are the current ones is returned as stored.  Any other row
 * (a mask was added, changed or dropped since) is masked again from
 * raw_data with the current masks, so a change of masking shows at once,
 * also on rows quarantined before it: row_data, the "value" of each
 * reason, and server messages in which the mover had replaced raw values
 * by their then-masked forms (those are replaced by the new forms, where
 * the old form can be recomputed; it is never the raw value).  A column
 * that is no longer masked shows its raw value, as the target now gets it.
 * What cannot be computed at read time shows as "[masked]" (a secret that
 * was dropped or that the owner may no longer use) or "[not tokenized]" (a
 * value that never went through the vault: reading never writes).  Keys
 * are loaded for the pipeline's owner, never for whoever reads: a mask
 * cannot compute under a secret its owner was not granted.
 *
 * A server message (origin "server": the target, a trigger, an
 * expression) is withheld at read time too when the pipeline now masks a
 * column, and an input function's (origin "input") when its column is now
 * masked: a mask added later also hides older messages (reason.c).
 *
 * The log is read through a cursor, 1000 rows at a time, into the
 * function's tuplestore; everything else lives in a context deleted at the
 * end.  The user is switched back on error (PG_FINALLY).
 *
 * Touches, as the catalog owner: stage.quarantine_log, stage.pipeline,
 * stage.mask and stage.contract_history (reads only: reading the
 * quarantine never writes, the token vault included).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "guard.h"
#include "mask.h"
#include "mask_contract.h"
#include "reason.h"

#define QV_CHUNK 1000

/* one masked column: its name and mask (usable: its key could be loaded) */
typedef struct QvMask
{
	char	   *column;
	StageMask  *mask;
	bool		usable;
} QvMask;

typedef struct QvMaskSet
{
	int			n;
	QvMask	   *masks;
} QvMaskSet;

/* the masks of an older contract version, parsed on first use */
typedef struct QvVersion
{
	int			version;
	Jsonb	   *masks_json;
	QvMaskSet  *set;
} QvVersion;

/* one column of a row's raw_data */
typedef struct QvCol
{
	char	   *name;
	char	   *raw;			/* NULL: JSON null */
} QvCol;


/* the mask of column in set, or NULL when it is not masked */
static QvMask *
qv_find(QvMaskSet *set, const char *column)
{
	int			i;

	for (i = 0; set && i < set->n; i++)
		if (strcmp(set->masks[i].column, column) == 0)
			return &set->masks[i];
	return NULL;
}

/* parse a mask into set and load its key for the pipeline's owner */
static void
qv_add_mask(QvMaskSet *set, const char *column, const char *method, Jsonb *args,
			Oid owner)
{
	QvMask	   *q = &set->masks[set->n++];

	q->column = pstrdup(column);
	q->mask = palloc0(sizeof(StageMask));
	mask_parse(q->mask, method, args);
	q->usable = mask_try_load_key(q->mask, owner);
}

/* the current masks of a pipeline */
static QvMaskSet *
qv_current_masks(int32 pipeline_id, Oid owner, MemoryContext cxt)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	QvMaskSet  *set;
	uint64		j;
	MemoryContext old;

	if (SPI_execute_with_args("SELECT column_name, method, args FROM stage.mask"
							  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "stage: could not read stage.mask");
	old = MemoryContextSwitchTo(cxt);
	set = palloc0(sizeof(QvMaskSet));
	set->masks = palloc0(sizeof(QvMask) * Max(SPI_processed, 1));
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		Datum		a = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 3, &isnull);

		qv_add_mask(set, SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1),
					SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2),
					isnull ? NULL : DatumGetJsonbPCopy(a), owner);
	}
	MemoryContextSwitchTo(old);
	return set;
}

/* parse the "masks" array of a contract document */
static QvMaskSet *
qv_parse_masks(Jsonb *masks, Oid owner)
{
	QvMaskSet  *set = palloc0(sizeof(QvMaskSet));
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (masks == NULL || !JB_ROOT_IS_ARRAY(masks))
		return set;
	n = JB_ROOT_COUNT(masks);
	set->masks = palloc0(sizeof(QvMask) * Max(n, 1));
	it = JsonbIteratorInit(&masks->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue	col;
		JsonbValue	method;
		JsonbValue	args;
		Jsonb	   *argsj = NULL;

		if (tok != WJB_ELEM || v.type != jbvBinary)
			continue;
		if (getKeyJsonValueFromContainer(v.val.binary.data, "column", 6, &col) == NULL ||
			getKeyJsonValueFromContainer(v.val.binary.data, "method", 6, &method) == NULL ||
			col.type != jbvString || method.type != jbvString)
			continue;
		if (getKeyJsonValueFromContainer(v.val.binary.data, "args", 4, &args) != NULL &&
			args.type == jbvBinary)
			argsj = JsonbValueToJsonb(&args);
		qv_add_mask(set, pnstrdup(col.val.string.val, col.val.string.len),
					pnstrdup(method.val.string.val, method.val.string.len), argsj, owner);
	}
	return set;
}

/* the raw_data object as (name, text or NULL) pairs */
static int
qv_raw_columns(Jsonb *raw, QvCol **cols)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;
	char	   *key = NULL;

	if (raw == NULL || !JB_ROOT_IS_OBJECT(raw))
	{
		*cols = NULL;
		return 0;
	}
	*cols = palloc0(sizeof(QvCol) * Max(JB_ROOT_COUNT(raw), 1));
	it = JsonbIteratorInit(&raw->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && key != NULL)
		{
			QvCol	   *c = &(*cols)[n++];

			c->name = key;
			switch (v.type)
			{
				case jbvNull:
					c->raw = NULL;
					break;
				case jbvString:
					c->raw = pnstrdup(v.val.string.val, v.val.string.len);
					break;
				case jbvNumeric:
					c->raw = DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(v.val.numeric)));
					break;
				case jbvBool:
					c->raw = pstrdup(v.val.boolean ? "true" : "false");
					break;
				default:
					c->raw = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
					break;
			}
			key = NULL;
		}
	}
	return n;
}

/* the raw column of that name, or NULL */
static QvCol *
qv_col(QvCol *cols, int n, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(cols[i].name, name) == 0)
			return &cols[i];
	return NULL;
}

/* a value as the current masks show it (NULL: SQL NULL) */
static char *
qv_shown_now(QvMaskSet *cur, const char *column, const char *raw)
{
	QvMask	   *q;

	if (raw == NULL)
		return NULL;
	q = qv_find(cur, column);
	if (q == NULL)
		return (char *) raw;
	if (!q->usable)
		return MASK_HIDDEN;
	return mask_apply(q->mask, raw, strlen(raw));
}

/*
 * A value as the masks of the row's version showed it in messages; false
 * when that cannot be recomputed (a random noise, a dropped secret, the
 * null mask, which the mover wrote as "NULL" and cannot be told apart).
 */
static bool
qv_shown_then(QvMaskSet *then, const char *column, const char *raw, char **out)
{
	QvMask	   *q = qv_find(then, column);

	if (q == NULL)
	{
		*out = (char *) raw;
		return true;
	}
	if (!q->usable || !mask_deterministic(q->mask) || q->mask->method == MASK_NULL)
		return false;
	*out = mask_apply(q->mask, raw, strlen(raw));
	return *out != NULL;
}

/* s with every occurrence of needle replaced by repl (s itself if none) */
static char *
qv_replace(const char *s, const char *needle, const char *repl)
{
	StringInfoData out;
	size_t		nl = strlen(needle);
	const char *p;

	if (nl == 0 || strstr(s, needle) == NULL)
		return (char *) s;
	initStringInfo(&out);
	while ((p = strstr(s, needle)) != NULL)
	{
		appendBinaryStringInfo(&out, s, p - s);
		appendStringInfoString(&out, repl);
		s = p + nl;
	}
	appendStringInfoString(&out, s);
	return out.data;
}

/* a message with each column's then-shown form replaced by its now-shown one */
static char *
qv_message(const char *msg, QvCol *cols, int ncols, QvMaskSet *cur, QvMaskSet *then)
{
	char	   *out = (char *) msg;
	int			i;

	for (i = 0; i < ncols; i++)
	{
		char	   *was;
		char	   *now;

		if (cols[i].raw == NULL || cols[i].raw[0] == '\0')
			continue;
		if (!qv_shown_then(then, cols[i].name, cols[i].raw, &was) || was[0] == '\0')
			continue;
		now = qv_shown_now(cur, cols[i].name, cols[i].raw);
		if (now == NULL)
			now = "NULL";
		if (strcmp(was, now) != 0)
			out = qv_replace(out, was, now);
	}
	return out;
}

/* append a jsonb scalar or container to s as JSON text */
static void
qv_json_value(StringInfo s, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(s, "null");
			break;
		case jbvString:
			escape_json(s, pnstrdup(v->val.string.val, v->val.string.len));
			break;
		case jbvNumeric:
			appendStringInfoString(s, DatumGetCString(DirectFunctionCall1(numeric_out,
																		  NumericGetDatum(v->val.numeric))));
			break;
		case jbvBool:
			appendStringInfoString(s, v->val.boolean ? "true" : "false");
			break;
		default:
			appendStringInfoString(s, JsonbToCString(NULL, v->val.binary.data,
													 v->val.binary.len));
			break;
	}
}

/* append a C string to s as a JSON string, or null */
static void
qv_json_text(StringInfo s, const char *v)
{
	if (v == NULL)
		appendStringInfoString(s, "null");
	else
		escape_json(s, v);
}

/* a jsonb datum from JSON text */
static Datum
qv_jsonb(const char *text)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
}

/* row_data of a row under the current masks */
static Datum
qv_row_data(QvCol *cols, int ncols, QvMaskSet *cur)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i < ncols; i++)
	{
		if (i > 0)
			appendStringInfoString(&s, ", ");
		escape_json(&s, cols[i].name);
		appendStringInfoString(&s, ": ");
		qv_json_text(&s, qv_shown_now(cur, cols[i].name, cols[i].raw));
	}
	appendStringInfoChar(&s, '}');
	return qv_jsonb(s.data);
}

/* the reasons of a row under the current masks */
static Datum
qv_reasons(Jsonb *reasons, QvCol *cols, int ncols, QvMaskSet *cur, QvMaskSet *then)
{
	StringInfoData s;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;

	if (reasons == NULL || !JB_ROOT_IS_ARRAY(reasons))
		return PointerGetDatum(reasons);
	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	it = JsonbIteratorInit(&reasons->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbIterator *eit;
		JsonbValue	ev;
		JsonbIteratorToken etok;
		JsonbValue	colv;
		JsonbValue	ov;
		JsonbValue	sv;
		QvCol	   *col = NULL;
		char	   *withheld = NULL;
		bool		efirst = true;
		char	   *key = NULL;

		if (tok != WJB_ELEM)
			continue;
		if (!first)
			appendStringInfoString(&s, ", ");
		first = false;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
		{
			qv_json_value(&s, &v);
			continue;
		}
		if (getKeyJsonValueFromContainer(v.val.binary.data, "column", 6, &colv) != NULL &&
			colv.type == jbvString)
			col = qv_col(cols, ncols, pnstrdup(colv.val.string.val, colv.val.string.len));
		if (getKeyJsonValueFromContainer(v.val.binary.data, "origin", 6, &ov) != NULL &&
			ov.type == jbvString)
		{
			char	   *origin = pnstrdup(ov.val.string.val, ov.val.string.len);
			char	   *sqlstate = NULL;

			if (getKeyJsonValueFromContainer(v.val.binary.data, "sqlstate", 8, &sv) != NULL &&
				sv.type == jbvString)
				sqlstate = pnstrdup(sv.val.string.val, sv.val.string.len);
			if (strcmp(origin, ORIGIN_INPUT) == 0 && col != NULL && qv_find(cur, col->name))
				withheld = reason_withheld(sqlstate, NULL, col->name);
			else if (strcmp(origin, ORIGIN_INPUT) != 0 && cur != NULL && cur->n > 0)
				withheld = reason_withheld(sqlstate, NULL, NULL);
		}

		appendStringInfoChar(&s, '{');
		eit = JsonbIteratorInit(v.val.binary.data);
		while ((etok = JsonbIteratorNext(&eit, &ev, true)) != WJB_DONE)
		{
			if (etok == WJB_KEY)
			{
				key = pnstrdup(ev.val.string.val, ev.val.string.len);
				if (!efirst)
					appendStringInfoString(&s, ", ");
				efirst = false;
				escape_json(&s, key);
				appendStringInfoString(&s, ": ");
			}
			else if (etok == WJB_VALUE && key != NULL)
			{
				if (strcmp(key, "value") == 0 && col != NULL)
					qv_json_text(&s, qv_shown_now(cur, col->name, col->raw));
				else if (strcmp(key, "message") == 0 && withheld != NULL)
					qv_json_text(&s, withheld);
				else if (strcmp(key, "message") == 0 && ev.type == jbvString)
					qv_json_text(&s, qv_message(pnstrdup(ev.val.string.val, ev.val.string.len),
												cols, ncols, cur, then));
				else
					qv_json_value(&s, &ev);
				key = NULL;
			}
		}
		appendStringInfoChar(&s, '}');
	}
	appendStringInfoChar(&s, ']');
	return qv_jsonb(s.data);
}

/* the versions of a pipeline whose masks are not the current ones */
static int
qv_stale_versions(int32 pipeline_id, QvVersion **out, MemoryContext cxt)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	uint64		j;
	int			n;
	MemoryContext old;

	if (SPI_execute_with_args("SELECT h.version, h.contract OPERATOR(pg_catalog.->) 'masks'"
							  "  FROM stage.contract_history h"
							  " WHERE h.pipeline_id OPERATOR(pg_catalog.=) $1"
							  "   AND COALESCE(h.contract OPERATOR(pg_catalog.->) 'masks', '[]')"
							  "       OPERATOR(pg_catalog.<>) (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
							  "                 'column', m.column_name, 'method', m.method, 'args', m.args)"
							  "               ORDER BY m.column_name), '[]')"
							  "          FROM stage.mask m WHERE m.pipeline_id OPERATOR(pg_catalog.=) $1)",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "stage: could not read stage.contract_history");
	old = MemoryContextSwitchTo(cxt);
	n = SPI_processed;
	*out = palloc0(sizeof(QvVersion) * Max(n, 1));
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		Datum		d;

		(*out)[j].version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
														SPI_tuptable->tupdesc, 1, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2, &isnull);
		(*out)[j].masks_json = isnull ? NULL : DatumGetJsonbPCopy(d);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/* the entry of a contract version in versions[0..n), or NULL */
static QvVersion *
qv_version(QvVersion *versions, int n, int version)
{
	int			i;

	for (i = 0; i < n; i++)
		if (versions[i].version == version)
			return &versions[i];
	return NULL;
}

/*
 * Tokenize masks read the vault once per chunk: look up the raw values of
 * raws[0..nrows) (NULL: a row that needs none) for every usable tokenize
 * mask of set.
 */
static void
qv_prepare_tokens(QvMaskSet *set, Jsonb **raws, uint64 nrows)
{
	int			k;

	for (k = 0; set && k < set->n; k++)
	{
		QvMask	   *q = &set->masks[k];
		const char **vals;
		int			nv = 0;
		uint64		j;

		if (q->mask->method != MASK_TOKENIZE || !q->usable)
			continue;
		vals = palloc(sizeof(char *) * Max(nrows, 1));
		for (j = 0; j < nrows; j++)
		{
			JsonbValue	v;

			if (raws[j] == NULL)
				continue;
			if (getKeyJsonValueFromContainer(&raws[j]->root, q->column,
											 strlen(q->column), &v) != NULL &&
				v.type == jbvString)
				vals[nv++] = pnstrdup(v.val.string.val, v.val.string.len);
		}
		mask_resolve_tokens(q->mask, vals, nv, false);
	}
}

/* the raw_data column of a chunk's rows, for qv_prepare_tokens */
static Jsonb **
qv_chunk_raws(SPITupleTable *tt, uint64 nrows, int rawcol)
{
	Jsonb	  **raws = palloc0(sizeof(Jsonb *) * Max(nrows, 1));
	uint64		j;

	for (j = 0; j < nrows; j++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tt->vals[j], tt->tupdesc, rawcol, &isnull);

		raws[j] = isnull ? NULL : DatumGetJsonbP(d);
	}
	return raws;
}

/*
 * stage._quarantine(pipeline_id integer) RETURNS TABLE(landing_id bigint,
 *   batch_id bigint, contract_version integer, source text,
 *   received_at timestamptz, row_data jsonb, reasons jsonb,
 *   quarantined_at timestamptz, status text, successor_id bigint,
 *   closed_at timestamptz, closed_by text, note text, role text): every
 *   item, whatever its status
 */
#define QV_RAW_COL 15			/* the query's raw_data column (1-based) */
PG_FUNCTION_INFO_V1(stage_quarantine_rows);
Datum
stage_quarantine_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		pipeline_id = PG_GETARG_INT32(0);
	GuardSwitch gs;
	Oid			caller = stage_caller();
	MemoryContext cxt;
	MemoryContext rowcxt;
	MemoryContext old;

	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "stage quarantine view",
								ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(cxt, "stage quarantine row", ALLOCSET_DEFAULT_SIZES);

	guard_push_catalog(&gs);
	PG_TRY();
	{
		Oid			argtypes[2] = {INT4OID, INT4ARRAYOID};
		Datum		args[2];
		bool		isnull;
		Oid			owner = InvalidOid;
		QvMaskSet  *cur = NULL;
		QvVersion  *stale = NULL;
		int			nstale = 0;
		Portal		portal;
		SPIPlanPtr	plan;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		args[0] = Int32GetDatum(pipeline_id);
		if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM stage.pipeline"
								  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "stage: could not read stage.pipeline");
		if (SPI_processed == 1)
			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));

		if (OidIsValid(owner) && guard_may_see_as(caller, owner))
		{
			Datum	   *versions;
			int			i;

			cur = qv_current_masks(pipeline_id, owner, cxt);
			nstale = qv_stale_versions(pipeline_id, &stale, cxt);
			versions = palloc(sizeof(Datum) * Max(nstale, 1));
			for (i = 0; i < nstale; i++)
				versions[i] = Int32GetDatum(stale[i].version);
			args[1] = PointerGetDatum(construct_array(versions, nstale, INT4OID, 4, true,
													  TYPALIGN_INT));
			plan = SPI_prepare("SELECT landing_id, batch_id, contract_version, source,"
							   " received_at, row_data, reasons, quarantined_at,"
							   " status, successor_id, closed_at, closed_by, note, role,"
							   " CASE WHEN contract_version OPERATOR(pg_catalog.=) ANY ($2)"
							   "      THEN raw_data END"
							   " FROM stage.quarantine_log"
							   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
							   " ORDER BY landing_id", 2, argtypes);
			if (plan == NULL)
				elog(ERROR, "stage: could not prepare the quarantine query");
			portal = SPI_cursor_open(NULL, plan, args, NULL, true);
			for (;;)
			{
				SPITupleTable *tt;
				Jsonb	  **raws;
				uint64		j;

				SPI_cursor_fetch(portal, true, QV_CHUNK);
				if (SPI_processed == 0)
					break;
				tt = SPI_tuptable;
				MemoryContextReset(rowcxt);
				old = MemoryContextSwitchTo(rowcxt);
				/* the vault, once per chunk and mask */
				raws = qv_chunk_raws(tt, SPI_processed, QV_RAW_COL);
				qv_prepare_tokens(cur, raws, SPI_processed);
				for (i = 0; i < nstale; i++)
					if (stale[i].set != NULL)
						qv_prepare_tokens(stale[i].set, raws, SPI_processed);
				for (j = 0; j < SPI_processed; j++)
				{
					Datum		values[QV_RAW_COL - 1];
					bool		nulls[QV_RAW_COL - 1];
					int			c;
					Datum		raw;
					bool		rawnull;

					CHECK_FOR_INTERRUPTS();
					for (c = 0; c < QV_RAW_COL - 1; c++)
						values[c] = SPI_getbinval(tt->vals[j], tt->tupdesc, c + 1, &nulls[c]);
					raw = SPI_getbinval(tt->vals[j], tt->tupdesc, QV_RAW_COL, &rawnull);
					if (!rawnull)
					{
						QvVersion  *ver = qv_version(stale, nstale,
													 DatumGetInt32(values[2]));
						QvCol	   *cols;
						int			ncols = qv_raw_columns(DatumGetJsonbP(raw), &cols);

						if (ver != NULL && ver->set == NULL)
						{
							MemoryContext o2 = MemoryContextSwitchTo(cxt);

							ver->set = qv_parse_masks(ver->masks_json, owner);
							MemoryContextSwitchTo(o2);
							/* this chunk's tokens for the newly parsed masks */
							qv_prepare_tokens(ver->set, raws, SPI_processed);
						}
						values[5] = qv_row_data(cols, ncols, cur);
						nulls[5] = false;
						if (!nulls[6])
							values[6] = qv_reasons(DatumGetJsonbP(values[6]), cols, ncols,
												   cur, ver ? ver->set : NULL);
					}
					tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
				}
				MemoryContextSwitchTo(old);
				SPI_freetuptable(tt);
			}
			SPI_cursor_close(portal);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/*
 * One row at a time: stage._quarantine_row_data and stage._quarantine_reasons
 * compute, in the views' target lists, the two masked columns of the
 * quarantine row (pipeline_id, landing_id), so only the rows a query
 * returns pay (a count or a LIMIT never masks the rest).
 *
 * The caller passes the stored column: it is returned as it is when the
 * row's contract version masks as the current masks do (the common case:
 * no read).  Otherwise the row is read by its key, as the catalog owner,
 * and masked again from its raw_data with the current masks; what the
 * caller passed is ignored, so nothing but the row's own values is ever
 * masked (no way to have a value of one's choosing hashed or looked up in
 * the vault).  NULL for a pipeline the caller may not see, and for a row
 * that is not there.
 *
 * Each call site keeps, in fn_extra for the query, the pipelines it met:
 * owner, visibility, current masks and the versions whose masks differ,
 * read once per query (so a change of masks shows from the next query).
 */
typedef struct QvPipeline
{
	int32		pipeline_id;
	Oid			owner;
	bool		visible;
	QvMaskSet  *cur;
	QvVersion  *stale;
	int			nstale;
} QvPipeline;

typedef struct QvRowCache
{
	int			n;
	int			cap;
	QvPipeline *pipelines;
} QvRowCache;

/* the read of one row by its key, prepared once per backend */
static SPIPlanPtr qv_row_plan = NULL;

/* a pipeline's masks and the caller's right to see it; runs inside SPI */
static void
qv_load_pipeline(QvPipeline *p, MemoryContext cxt)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(p->pipeline_id);
	Oid			caller = stage_caller();
	bool		isnull;
	GuardSwitch gs;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM stage.pipeline"
								  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
								  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "stage: could not read stage.pipeline");
		if (SPI_processed == 1)
			p->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
		p->visible = OidIsValid(p->owner) && guard_may_see_as(caller, p->owner);
		if (p->visible)
		{
			p->cur = qv_current_masks(p->pipeline_id, p->owner, cxt);
			p->nstale = qv_stale_versions(p->pipeline_id, &p->stale, cxt);
		}
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
}

/* the entry of a pipeline in the call site's cache, loaded on first use */
static QvPipeline *
qv_row_pipeline(FunctionCallInfo fcinfo, int32 pipeline_id)
{
	QvRowCache *c = (QvRowCache *) fcinfo->flinfo->fn_extra;
	MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
	QvPipeline *p;
	int			i;

	if (c == NULL)
	{
		c = MemoryContextAllocZero(cxt, sizeof(QvRowCache));
		fcinfo->flinfo->fn_extra = c;
	}
	for (i = 0; i < c->n; i++)
		if (c->pipelines[i].pipeline_id == pipeline_id)
			return &c->pipelines[i];
	if (c->n == c->cap)
	{
		c->cap = Max(4, c->cap * 2);
		c->pipelines = c->pipelines == NULL
			? MemoryContextAllocZero(cxt, sizeof(QvPipeline) * c->cap)
			: repalloc(c->pipelines, sizeof(QvPipeline) * c->cap);
	}
	p = &c->pipelines[c->n];
	memset(p, 0, sizeof(QvPipeline));
	p->pipeline_id = pipeline_id;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	qv_load_pipeline(p, cxt);
	SPI_finish();
	c->n++;
	return p;
}

/*
 * The row (pipeline_id, landing_id) masked again with the current masks:
 * its row_data (reasons false) or its reasons; NULL if it is not there.
 * Runs inside SPI; the result is in the SPI context.
 */
static Datum
qv_row_remask(FunctionCallInfo fcinfo, QvPipeline *p, int64 landing_id, bool reasons,
			  bool *isnull)
{
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		args[2];
	Datum volatile result = (Datum) 0;
	GuardSwitch gs;

	*isnull = true;
	guard_push_catalog(&gs);
	PG_TRY();
	{
		if (qv_row_plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare("SELECT contract_version, raw_data, row_data, reasons"
										   " FROM stage.quarantine_log"
										   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
										   " AND landing_id OPERATOR(pg_catalog.=) $2",
										   2, argtypes);

			if (plan == NULL || SPI_keepplan(plan) != 0)
				elog(ERROR, "stage: could not prepare the quarantine row query");
			qv_row_plan = plan;
		}
		args[0] = Int32GetDatum(p->pipeline_id);
		args[1] = Int64GetDatum(landing_id);
		if (SPI_execute_plan(qv_row_plan, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "stage: could not read stage.quarantine_log");
		if (SPI_processed == 1)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		null;
			int32		version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &null));
			QvVersion  *ver = qv_version(p->stale, p->nstale, version);

			if (ver == NULL)
			{
				/* masked as the current masks do: as stored */
				result = SPI_getbinval(tup, desc, reasons ? 4 : 3, isnull);
			}
			else
			{
				Jsonb	   *raw = DatumGetJsonbP(SPI_getbinval(tup, desc, 2, &null));
				QvCol	   *cols;
				int			ncols = qv_raw_columns(raw, &cols);

				if (ver->set == NULL)
				{
					MemoryContext o = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

					ver->set = qv_parse_masks(ver->masks_json, p->owner);
					MemoryContextSwitchTo(o);
				}
				/* the vault, for this row's values */
				qv_prepare_tokens(p->cur, &raw, 1);
				qv_prepare_tokens(ver->set, &raw, 1);
				if (reasons)
					result = qv_reasons(DatumGetJsonbP(SPI_getbinval(tup, desc, 4, &null)),
										cols, ncols, p->cur, ver->set);
				else
					result = qv_row_data(cols, ncols, p->cur);
				*isnull = false;
			}
		}
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	return result;
}

/* row_data (reasons false) or reasons of a quarantine row, as shown */
static Datum
qv_row_shown(FunctionCallInfo fcinfo, bool reasons)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	int64		landing_id = PG_GETARG_INT64(1);
	int32		version = PG_GETARG_INT32(2);
	QvPipeline *p = qv_row_pipeline(fcinfo, pipeline_id);
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		result;
	bool		isnull;

	if (!p->visible)
		PG_RETURN_NULL();
	if (qv_version(p->stale, p->nstale, version) == NULL)
		PG_RETURN_DATUM(PG_GETARG_DATUM(3));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	result = qv_row_remask(fcinfo, p, landing_id, reasons, &isnull);
	if (!isnull)
	{
		MemoryContext o = MemoryContextSwitchTo(callercxt);

		result = PointerGetDatum(PG_DETOAST_DATUM_COPY(result));
		MemoryContextSwitchTo(o);
	}
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * stage._quarantine_row_data(pipeline_id integer, landing_id bigint,
 *   contract_version integer, row_data jsonb) RETURNS jsonb
 */
PG_FUNCTION_INFO_V1(stage_quarantine_row_data);
Datum
stage_quarantine_row_data(PG_FUNCTION_ARGS)
{
	return qv_row_shown(fcinfo, false);
}

/*
 * stage._quarantine_reasons(pipeline_id integer, landing_id bigint,
 *   contract_version integer, reasons jsonb) RETURNS jsonb
 */
PG_FUNCTION_INFO_V1(stage_quarantine_reasons);
Datum
stage_quarantine_reasons(PG_FUNCTION_ARGS)
{
	return qv_row_shown(fcinfo, true);
}

/*
 * stage.quarantine_raw(pipeline text) RETURNS TABLE(landing_id bigint,
 *   batch_id bigint, contract_version integer, raw_data jsonb,
 *   reasons jsonb, quarantined_at timestamptz): the quarantined rows as
 * they landed, for a member of the pipeline's owner role or a superuser.
 */
PG_FUNCTION_INFO_V1(stage_quarantine_raw);
Datum
stage_quarantine_raw(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(name);
	int32		pipeline_id = 0;
	Oid			owner = InvalidOid;
	GuardSwitch gs;
	Oid			caller = stage_caller();

	InitMaterializedSRF(fcinfo, 0);

	/* the pipeline */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	catalog_exec("SELECT pipeline_id, owner::pg_catalog.oid FROM stage.pipeline"
				 " WHERE name OPERATOR(pg_catalog.=) $1",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;

		pipeline_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("See SELECT pipeline FROM stage.pipelines for the pipelines of this database.")));
	if (!is_member_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for the raw quarantine of pipeline \"%s\"", name),
				 errdetail("Raw values are for members of role %s and superusers only.",
						   GetUserNameFromId(owner, false)),
				 errhint("Read stage.quarantine: it shows masked columns masked.")));

	guard_push_catalog(&gs);
	PG_TRY();
	{
		Oid			t = INT4OID;
		Datum		a = Int32GetDatum(pipeline_id);
		SPIPlanPtr	plan;
		Portal		portal;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = SPI_prepare("SELECT landing_id, batch_id, contract_version, raw_data,"
						   " COALESCE(raw_reasons, reasons), quarantined_at FROM stage.quarantine_log"
						   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 ORDER BY landing_id",
						   1, &t);
		if (plan == NULL)
			elog(ERROR, "stage: could not prepare the quarantine query");
		portal = SPI_cursor_open(NULL, plan, &a, NULL, true);
		for (;;)
		{
			uint64		j;

			SPI_cursor_fetch(portal, true, QV_CHUNK);
			if (SPI_processed == 0)
				break;
			for (j = 0; j < SPI_processed; j++)
			{
				Datum		values[6];
				bool		nulls[6];
				int			c;

				for (c = 0; c < 6; c++)
					values[c] = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc,
											  c + 1, &nulls[c]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * stage._quarantine_count(pipeline_id, since) RETURNS bigint: how many rows
 * of the pipeline are in quarantine (quarantined at or after since, when
 * given), for those who may read its quarantine (as stage._quarantine
 * decides), NULL for anyone else.  For health views: cheap, no values.
 */
PG_FUNCTION_INFO_V1(stage_quarantine_count);
Datum
stage_quarantine_count(PG_FUNCTION_ARGS)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	GuardSwitch gs;
	Oid			caller = stage_caller();
	int64		volatile count = -1;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
		Datum		args[2];
		char		nulls[2] = {' ', PG_ARGISNULL(1) ? 'n' : ' '};
		bool		isnull;
		Oid			owner = InvalidOid;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		args[0] = Int32GetDatum(pipeline_id);
		args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
		if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM stage.pipeline"
								  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
								  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "stage: could not read stage.pipeline");
		if (SPI_processed == 1)
			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		if (OidIsValid(owner) && guard_may_see_as(caller, owner))
		{
			if (SPI_execute_with_args("SELECT pg_catalog.count(*) FROM stage.quarantine_log"
									  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1"
									  " AND ($2 IS NULL OR quarantined_at OPERATOR(pg_catalog.>=) $2)",
									  2, types, args, nulls, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "stage: could not count quarantine");
			count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	if (count < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(count);
}
