/*-------------------------------------------------------------------------
 *
 * check.c
 *	  The checks of a piece of rows against the compiled contract, in the
 *	  order a batch runs them: schema drift of jsonb payloads, type checks,
 *	  rules (reference lookups and expression rules set-wise, the rest per
 *	  row in C), then duplicate keys within the batch.
 *
 * A check that fails records a reason on its row (outcome.c) and, for
 * severity reject, marks the row for quarantine; the rule counters of the
 * compiled program (checked, failed) and the type counters of the batch
 * add up over its pieces.  Nothing is written to the target here.
 *
 * What it may touch: no catalog table.  It runs owner code: the input
 * functions of domains and of types that are not built in (swept in a
 * subtransaction), reference rules' lookups in the owner's tables, and
 * expression rules (bisected in a subtransaction).  stage.check_row for a
 * caller who is not an owner (m->limited) leaves all of those out and
 * says so (mover_skipped).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"

#include "mover_int.h"

/* ----------------------------------------------------------------
 *		schema drift (jsonb format)
 * ---------------------------------------------------------------- */

/* the JSON type of a value, as drift and json rules name it */
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

/* an issue of a drifting payload: noted, and a reason under policy quarantine */
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
 * drift).  A landing table of columns drifts when a row has a value in a
 * landing column nobody reads (its target column was dropped).  Drifting rows are counted; policy "quarantine" quarantines
 * them, "hold" holds the batch (see mover_hold).
 */
void
mover_drift(Mover *m)
{
	RuleProgram *p = m->p;
	bool	   *seen = palloc(sizeof(bool) * Max(p->ncols, 1));
	int			i;

	if (!p->jsonb_format)
	{
		/* columns: a value in a landing column nobody reads any more */
		for (i = 0; i < m->n; i++)
		{
			MoverRow   *row = &m->rows[i];
			bool		drifted = false;

			if (row->unread == NULL)
				continue;
			mover_drift_issue(m, row, -1,
							  psprintf("a value in landing column \"%s\", which no target column or transform reads",
									   row->unread),
							  &drifted);
			m->n_drift++;
		}
		return;
	}
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

/* ----------------------------------------------------------------
 *		type checks
 * ---------------------------------------------------------------- */

/* note a check that check_row left out for a caller who is not an owner */
void
mover_skipped(Mover *m, const char *what)
{
	if (m->skipped == NULL)
		m->skipped = makeStringInfo();
	else
		appendStringInfoString(m->skipped, ", ");
	appendStringInfoString(m->skipped, what);
}

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

/* a value its type's input function rejected: the row fails its type check */
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

/*
 * Type checks: each non-null value of a column through the C pre-check
 * (typecheck.c); those it cannot vouch for through the type's input
 * function, swept in a subtransaction.
 */
void
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

			if (v == NULL || m->rows[i].badtype[c])
				continue;		/* a transform of the column failed: no type to check */
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

/*
 * Reference rules look up the piece's values in one query each, before
 * the row loop; the loop then only probes a hash table of those found.
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

/*
 * The parameters of an expression's statement over the rows idx[0..n):
 * $1 their row numbers, then one text[] per column in cols (names of the
 * program's columns), as contract.c's expression statements take them.
 * types and vals have room for list_length(cols) + 1.
 */
void
mover_column_arrays(Mover *m, List *cols, int *idx, int n, Oid *types, Datum *vals)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	ListCell   *lc;
	int			k = 1;
	int			i;

	types[0] = INT4ARRAYOID;
	for (i = 0; i < n; i++)
		elems[i] = Int32GetDatum(idx[i]);
	vals[0] = mover_array(elems, NULL, n, INT4OID);
	foreach(lc, cols)
	{
		int			c;

		for (c = 0; c < m->p->ncols; c++)
			if (strcmp(m->p->cols[c].name, (char *) lfirst(lc)) == 0)
				break;
		for (i = 0; i < n; i++)
		{
			MoverRow   *row = &m->rows[idx[i]];

			nulls[i] = (c >= m->p->ncols || row->vals[c] == NULL);
			elems[i] = nulls[i] ? (Datum) 0 : row->datums[c];
		}
		types[k] = TEXTARRAYOID;
		vals[k++] = mover_array(elems, nulls, n, TEXTOID);
	}
}

/* one expression rule over the rows idx[0..n), one statement: rows it is false for noted */
static void
mover_expr_group(Mover *m, int *idx, int n)
{
	StageRule  *r = m->cur_rule;
	int			k = list_length(r->expr_cols) + 1;
	Oid		   *types = palloc(sizeof(Oid) * k);
	Datum	   *vals = palloc(sizeof(Datum) * k);
	uint64		j;

	mover_column_arrays(m, r->expr_cols, idx, n, types, vals);
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
 * Expression rules run set-wise, one statement per rule and piece
 * (bisected when it raises), over the rows whose columns it reads all
 * passed their type check.
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

/* bsearch's comparison of a value with the sorted values of an enum rule */
static int
mover_enum_cmp(const void *key, const void *elem)
{
	return strcmp((const char *) key, *(char *const *) elem);
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
		type = mover_json_type(found);
		if (strcmp(type, c->type) != 0)
			return psprintf("%s is %s, expected %s", c->path_text, type, c->type);
	}
	return NULL;
}

/*
 * How a rule's message names the value of column c.  A rule's message
 * quotes the value as the row shows it (masked where the column is
 * masked, mover_masked), between double quotes and exactly as it is:
 * stage.quarantine later replaces the shown text with its form under the
 * current masks (qview.c), which only works on the text itself, whole.
 * So a value is quoted only when it is at most MOVER_QUOTE_MAX bytes and
 * holds no double quote, backslash or control character (nothing to
 * escape); any other is named by its length, never by a prefix.  Nothing
 * is said of a value masked to NULL, nor of a masked value in
 * stage.check_row, which shows no form of it (see outcome.c).
 *
 * Returns the quoted text, or NULL with *nchars the shown value's length
 * in characters (-1 when nothing may be said of it).
 */
#define MOVER_QUOTE_MAX 64

static char *
mover_quote(Mover *m, MoverRow *row, int c, int *nchars)
{
	const char *shown;
	size_t		len;
	size_t		i;

	*nchars = -1;
	if (m->p->cols[c].mask != NULL && m->check_only)
		return NULL;
	shown = mover_masked(m, row, c);
	if (shown == NULL)
		return NULL;
	len = strlen(shown);
	*nchars = pg_mbstrlen_with_len(shown, len);
	if (len > MOVER_QUOTE_MAX)
		return NULL;
	for (i = 0; i < len; i++)
	{
		unsigned char ch = (unsigned char) shown[i];

		if (ch == '"' || ch == '\\' || ch < 0x20 || ch == 0x7f)
			return NULL;
	}
	return psprintf("\"%s\"", shown);
}

/* the subject of a rule's message: value "XYZ", value of N characters, value */
static char *
mover_subject(Mover *m, MoverRow *row, int c)
{
	int			nchars;
	char	   *q = mover_quote(m, row, c, &nchars);

	if (q != NULL)
		return psprintf("value %s", q);
	if (nchars >= 0)
		return psprintf("value of %d character%s", nchars, nchars == 1 ? "" : "s");
	return "value";
}

/* a length rule's message: the value quoted, or its length alone */
static char *
mover_length_message(Mover *m, MoverRow *row, int c, int nchars, bool below,
					 int bound)
{
	int			shown_chars;
	char	   *q = mover_quote(m, row, c, &shown_chars);

	if (q != NULL)
		return psprintf(below ? "value %s has %d characters, fewer than the minimum %d" :
						"value %s has %d characters, more than the maximum %d",
						q, nchars, bound);
	return psprintf(below ? "value of %d characters is shorter than the minimum %d" :
					"value of %d characters is longer than the maximum %d",
					nchars, bound);
}

/*
 * The rules of the contract over every row: reference and expression rules
 * set-wise first (not for a limited check_row), then each rule per row, and
 * key columns not null.  A failed rule of severity warn only counts, except
 * in check_row, which lists it.
 */
void
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
							msg = psprintf("%s is below the minimum %s",
										   mover_subject(m, row, r->col), r->min_text);
						else if (r->has_max &&
								 DatumGetInt32(FunctionCall2Coll(&col->cmpfunc, col->collation,
																 d, r->max)) > 0)
							msg = psprintf("%s is above the maximum %s",
										   mover_subject(m, row, r->col), r->max_text);
					}
					break;
				case RULE_ENUM:
					if (bsearch(v, r->values, r->nvalues, sizeof(char *),
								mover_enum_cmp) == NULL)
						msg = psprintf("%s is not one of %s",
									   mover_subject(m, row, r->col), r->values_text);
					break;
				case RULE_LENGTH:
					{
						int			nchars = pg_mbstrlen(v);

						if (r->min_len >= 0 && nchars < r->min_len)
							msg = mover_length_message(m, row, r->col, nchars, true,
													   r->min_len);
						else if (r->max_len >= 0 && nchars > r->max_len)
							msg = mover_length_message(m, row, r->col, nchars, false,
													   r->max_len);
					}
					break;
				case RULE_FORMAT:
					if (!format_valid(r->format, v, strlen(v)))
						msg = psprintf("%s is not a valid %s",
									   mover_subject(m, row, r->col), format_name(r->format));
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
						msg = psprintf("%s not found in %s",
									   mover_subject(m, row, r->col), r->ref_name);
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
							msg = psprintf("%s does not match %s",
										   mover_subject(m, row, r->col), r->pattern);
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

/* an entry of the batch's key table: the row that holds the key now */
typedef struct KeyEntry
{
	char	   *key;
	int			row;
} KeyEntry;

/* canonical text of the key: each key value through input then output */
char *
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

/* is the column of an integer type, whose key mover_int_canonical makes? */
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

/* the canonical key of a row whose key values passed their type checks */
static char *
mover_key_of(Mover *m, MoverRow *row, Datum *typed)
{
	RuleProgram *p = m->p;
	int			k;

	if (p->nkeys == 1 && p->cols[p->keycols[0]].tclass == TC_TEXT)
		return row->vals[p->keycols[0]];	/* text is its own canonical form */
	if (p->nkeys == 1 && mover_int_key(&p->cols[p->keycols[0]]) &&
		tc_precheck(p->cols[p->keycols[0]].tclass, -1, row->vals[p->keycols[0]]))
		return mover_int_canonical(m, row->vals[p->keycols[0]]);
	for (k = 0; k < p->nkeys; k++)
	{
		StageColumn *col = &p->cols[p->keycols[k]];

		typed[k] = InputFunctionCall(&col->infunc, row->vals[p->keycols[k]],
									 col->ioparam, col->typmod);
	}
	return mover_canonical_key(m, typed);
}

/*
 * The canonical key of a quarantined row, for its item to be superseded by
 * a later row of the same key; NULL when the row has no usable key (a key
 * value NULL or of the wrong type).  The key's input functions run in a
 * subtransaction: a value whose type check was skipped may still raise.
 */
char *
mover_quarantine_key(Mover *m, MoverRow *row)
{
	RuleProgram *p = m->p;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Datum	   *typed;
	char	   *volatile key = NULL;
	int			k;

	if (p->nkeys == 0)
		return NULL;
	for (k = 0; k < p->nkeys; k++)
		if (row->vals[p->keycols[k]] == NULL || row->badtype[p->keycols[k]])
			return NULL;
	if (p->nkeys == 1 && p->cols[p->keycols[0]].tclass == TC_TEXT)
		return row->vals[p->keycols[0]];
	if (p->nkeys == 1 && mover_int_key(&p->cols[p->keycols[0]]))
		return tc_precheck(p->cols[p->keycols[0]].tclass, -1, row->vals[p->keycols[0]]) ?
			mover_int_canonical(m, row->vals[p->keycols[0]]) : NULL;
	typed = palloc(sizeof(Datum) * p->nkeys);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		key = mover_key_of(m, row, typed);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		key = NULL;
	}
	PG_END_TRY();
	return key;
}

/*
 * Keys within the batch: the canonical key of every row still clean, and
 * what on_duplicate says of a key seen before (skip: the later row is a
 * duplicate; update: the earlier; quarantine: the later is quarantined).
 * Counted for the unique rules.
 */
void
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
		row->key = mover_key_of(m, row, typed);
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

