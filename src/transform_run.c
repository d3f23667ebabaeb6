/*-------------------------------------------------------------------------
 *
 * transform_run.c
 *	  The transform stage of a batch: the contract's transforms over the
 *	  rows of a piece, after they are read and before their type checks.
 *
 * In the order the program holds them (transform_contract.c): source
 * mappings (from, concat, coalesce) read the row as it landed; each
 * column's chain of per-value methods (transform.c) runs in C; lookups run
 * one query per transform and piece; expressions one statement per
 * transform and piece, bisected when a row makes it raise.  A transform
 * that cannot do its job for a row (a date that does not match its
 * format, a map or lookup with "reject", an expression that raises)
 * quarantines the row with kind "transform", the transform's name and the
 * value it failed on; the rest of that column's chain is skipped, and so
 * are its type check and rules.  The values as landed stay in the row
 * (row->landed) for the quarantine record's raw data and for replay.
 *
 * What it may touch: no catalog table.  Lookups and expressions are the
 * owner's code, run as the batch runs them (as the owner, restricted);
 * check_row for a non-owner leaves them out, and says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "mover_int.h"
#include "transform.h"

/* the row's value of column c is about to change: keep the landed ones */
static void
tf_keep_landed(Mover *m, MoverRow *row)
{
	if (row->landed == NULL)
	{
		row->landed = palloc(sizeof(char *) * Max(m->p->ncols, 1));
		memcpy(row->landed, row->vals, sizeof(char *) * m->p->ncols);
	}
}

/* set column c of the row to v (NULL for SQL NULL), counting the change */
static void
tf_set(Mover *m, MoverRow *row, StageTransform *st, char *v)
{
	int			c = st->col;
	char	   *was = row->vals[c];

	if (v == NULL ? was == NULL : (was != NULL && strcmp(v, was) == 0))
		return;
	if (v == NULL)
		st->nulled++;
	else
		st->changed++;
	tf_keep_landed(m, row);
	row->vals[c] = v;
	row->datums[c] = v ? CStringGetTextDatum(v) : (Datum) 0;
	/* a masked form made of the old value (for a reason) is stale now */
	if (row->masked != NULL && row->masked[c])
	{
		row->masked[c] = false;
		row->out[c] = v;
	}
	else if (row->out != NULL)
		row->out[c] = v;
}

/* the transform failed for the row: quarantine it, skip the column's checks */
static void
tf_fail(Mover *m, MoverRow *row, StageTransform *st, const char *sqlstate,
		const char *message)
{
	st->failed++;
	row->badtype[st->col] = true;
	mover_reason(m, row, st->name, "transform", st->col, sqlstate,
				 psprintf("transform %s failed: %s", transform_method_name(st->t), message));
}

/* the value of a source of from/concat/coalesce, as the row landed */
static char *
tf_source(Mover *m, MoverRow *row, StageTransform *st, int s)
{
	if (m->p->jsonb_format)
		return row->payload == (Datum) 0 ? NULL :
			transform_json_path(DatumGetJsonbP(row->payload), st->src_path[s]);
	if (st->src_col[s] >= 0)
		return row->landed ? row->landed[st->src_col[s]] : row->vals[st->src_col[s]];
	return row->extra ? row->extra[st->src_extra[s]] : NULL;
}

/* from, concat, coalesce for one row */
static void
tf_sources(Mover *m, MoverRow *row, StageTransform *st)
{
	StringInfoData buf;
	bool		any = false;
	int			s;

	st->applied++;
	switch ((TransformMethod) st->method)
	{
		case TF_FROM:
			tf_set(m, row, st, tf_source(m, row, st, 0));
			return;
		case TF_COALESCE:
			for (s = 0; s < st->nsrc; s++)
			{
				char	   *v = tf_source(m, row, st, s);

				if (v != NULL)
				{
					tf_set(m, row, st, v);
					return;
				}
			}
			tf_set(m, row, st, NULL);
			return;
		case TF_CONCAT:
			initStringInfo(&buf);
			for (s = 0; s < st->nsrc; s++)
			{
				char	   *v = tf_source(m, row, st, s);

				if (v == NULL)
					continue;
				if (any && st->separator)
					appendStringInfoString(&buf, st->separator);
				appendStringInfoString(&buf, v);
				any = true;
			}
			tf_set(m, row, st, any ? buf.data : NULL);
			return;
		default:
			return;
	}
}

/* one per-value method for one row */
static void
tf_value(Mover *m, MoverRow *row, StageTransform *st)
{
	char	   *in = row->vals[st->col];
	char	   *out = NULL;
	const char *sqlstate = NULL;
	char	   *message = NULL;

	st->applied++;
	switch (transform_apply(st->t, in, &out, &sqlstate, &message))
	{
		case TR_VALUE:
			tf_set(m, row, st, out);
			break;
		case TR_NULL:
			tf_set(m, row, st, NULL);
			break;
		case TR_FAIL:

			/*
			 * A message may quote the value or a part of it (a map names
			 * it; a date its year and month): not where the column is
			 * masked.  The SQLSTATE says what kind of failure it was.
			 */
			if (m->p->cols[st->col].mask != NULL)
				message = "the value could not be transformed (the column is masked: the details are withheld)";
			tf_fail(m, row, st, sqlstate, message);
			break;
	}
}

/*
 * A lookup over the piece: the distinct values of its column in one query
 * (as the owner), then each row's value replaced by what the table maps
 * it to; a value the table lacks is kept, made NULL or rejected.
 */
static void
tf_lookup(Mover *m, StageTransform *st)
{
	int			c = st->col;
	HTAB	   *found = mover_key_table("stage lookup values", m->n);
	Datum	   *keys = palloc(sizeof(Datum) * Max(m->n, 1));
	char	  **mapped = NULL;
	int			nkeys = 0;
	int			nmapped = 0;
	int			i;
	uint64		j;
	Oid			argtype = TEXTARRAYOID;
	Datum		arg;

	for (i = 0; i < m->n; i++)
		if (m->rows[i].vals[c] != NULL && !m->rows[i].badtype[c])
			keys[nkeys++] = m->rows[i].datums[c];
	if (nkeys > 0)
	{
		arg = mover_array(keys, NULL, nkeys, TEXTOID);
		mover_exec(st->lookup_sql, 1, &argtype, &arg, NULL, SPI_OK_SELECT);
		mapped = palloc(sizeof(char *) * Max(SPI_processed, 1));
		for (j = 0; j < SPI_processed; j++)
		{
			char	   *k = SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1);
			bool		dup;
			char	  **e;

			if (k == NULL)
				continue;
			e = (char **) hash_search(found, &k, HASH_ENTER, &dup);
			if (dup)
				continue;		/* the first row of a key that is not unique */
			mapped[nmapped] = SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2);
			*(int *) (e + 1) = nmapped++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];
		char	   *v = row->vals[c];
		char	  **e;

		if (v == NULL || row->badtype[c])
			continue;
		st->applied++;
		e = (char **) hash_search(found, &v, HASH_FIND, NULL);
		if (e != NULL)
			tf_set(m, row, st, mapped[*(int *) (e + 1)]);
		else if (st->on_missing == TF_MISSING_NULL)
			tf_set(m, row, st, NULL);
		else if (st->on_missing == TF_MISSING_REJECT)
			tf_fail(m, row, st, "23503",
					psprintf("the value is not a key of %s", st->lookup_name));
	}
}

/* an expression transform over the rows idx[0..n): one statement */
static void
tf_expr_group(Mover *m, int *idx, int n)
{
	StageTransform *st = m->cur_tf;
	int			k = list_length(st->expr_cols) + 1;
	Oid		   *types = palloc(sizeof(Oid) * k);
	Datum	   *vals = palloc(sizeof(Datum) * k);
	uint64		j;

	mover_column_arrays(m, st->expr_cols, idx, n, types, vals);
	mover_exec(st->expr_sql, k, types, vals, NULL, SPI_OK_SELECT);
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		int			ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
													  SPI_tuptable->tupdesc, 1, &isnull));

		if (ord < 0 || ord >= m->n)
			continue;
		m->tf_result[ord] = SPI_getvalue(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2);
		m->tf_done[ord] = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* an expression that raised for one row fails the transform for that row */
static void
tf_expr_fail(Mover *m, int r, ErrorData *e)
{
	MoverRow   *row = &m->rows[r];
	StageTransform *st = m->cur_tf;

	st->failed++;
	row->badtype[st->col] = true;
	mover_reason_server(m, row, st->name, "transform", st->col, e, false);
}

/*
 * An expression over the piece's rows, set-wise as the owner, bisected to
 * the rows that make it raise; each row's column gets its value.  Rows
 * whose transforms already failed are left out.
 */
static void
tf_expression(Mover *m, StageTransform *st)
{
	int		   *idx = palloc(sizeof(int) * Max(m->n, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < m->n; i++)
	{
		ListCell   *lc;
		bool		ok = !m->rows[i].badtype[st->col];
		int			c;

		foreach(lc, st->expr_cols)
			for (c = 0; c < m->p->ncols; c++)
				if (strcmp(m->p->cols[c].name, (char *) lfirst(lc)) == 0 &&
					m->rows[i].badtype[c])
					ok = false;
		if (ok)
			idx[n++] = i;
	}
	m->cur_tf = st;
	m->tf_result = palloc0(sizeof(char *) * Max(m->n, 1));
	m->tf_done = palloc0(sizeof(bool) * Max(m->n, 1));
	mover_bisect(m, tf_expr_group, tf_expr_fail, idx, n);
	for (i = 0; i < n; i++)
	{
		MoverRow   *row = &m->rows[idx[i]];

		if (!m->tf_done[idx[i]] || row->badtype[st->col])
			continue;
		st->applied++;
		tf_set(m, row, st, m->tf_result[idx[i]]);
	}
	m->cur_tf = NULL;
}

/*
 * The transform stage over the rows of m, in the program's order.  For
 * check_row called by a non-owner, lookups and expressions (the owner's
 * tables and code) are left out.  Masks that need the whole piece (the
 * tokens of tokenize) were prepared for the values as landed, which the
 * reasons of drift show; they are prepared again for the transformed
 * values.
 */
void
mover_transform(Mover *m)
{
	RuleProgram *p = m->p;
	int			k;
	int			i;

	for (k = 0; k < p->ntransforms; k++)
	{
		StageTransform *st = &p->transforms[k];

		CHECK_FOR_INTERRUPTS();
		switch ((TransformMethod) st->method)
		{
			case TF_FROM:
			case TF_CONCAT:
			case TF_COALESCE:
				for (i = 0; i < m->n; i++)
					tf_sources(m, &m->rows[i], st);
				break;
			case TF_LOOKUP:
			case TF_EXPRESSION:
				if (m->limited)
				{
					mover_skipped(m, psprintf("transform %s (%s)", st->name,
											  transform_method_name(st->t)));
					break;
				}
				if (st->method == TF_LOOKUP)
					tf_lookup(m, st);
				else
					tf_expression(m, st);
				break;
			default:
				for (i = 0; i < m->n; i++)
				{
					MoverRow   *row = &m->rows[i];

					if (row->badtype[st->col])
						continue;	/* an earlier transform of the column failed */
					tf_value(m, row, st);
				}
				break;
		}
	}
	if (p->ntransforms > 0 && !m->check_only)
		mover_prepare_masks(m);
}
