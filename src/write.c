/*-------------------------------------------------------------------------
 *
 * write.c
 *	  The writes of a piece, after its checks: clean rows to the target
 *	  (masked), the outcome records of the others (stage.quarantine_log,
 *	  stage.duplicate_log), and, once per batch, the rule counters
 *	  (stage.batch_rule_stat).
 *
 * Clean rows go in one write per piece, by direct_insert (direct.c: no
 * statement, for plain targets) or by the program's INSERT statement
 * (prepared once, kept with the program), in a subtransaction bisected
 * when the target rejects a row, so the row is quarantined with the
 * target's error and the rest moves.  Keyed pipelines switch to the
 * INSERT ... ON CONFLICT form when a key may already be in the target.
 *
 * What it may touch: the target, as the pipeline's owner (its triggers,
 * defaults, constraints and casts are the owner's code and run here);
 * stage.quarantine_log, stage.duplicate_log and stage.batch_rule_stat,
 * as the catalog owner (catalog_exec).  Nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"

#include "mover_int.h"
#include "transform.h"

/* ----------------------------------------------------------------
 *		clean rows to the target
 * ---------------------------------------------------------------- */

/*
 * The text each clean row writes (row->out): masked where the column is
 * masked, through mover_masked, so a value is masked once whatever the
 * number of write attempts, and its quarantine record, should the target
 * reject the row, shows the same masked value.  A masked value too long
 * for its varchar column quarantines the row.
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

		for (c = 0; c < p->ncols; c++)
		{
			char	   *v;

			if (p->cols[c].mask == NULL)
				continue;
			v = mover_masked(m, row, c);
			if (v != NULL && p->cols[c].tclass == TC_VARCHAR &&
				p->cols[c].typmod > VARHDRSZ &&
				pg_mbstrlen(v) > p->cols[c].typmod - VARHDRSZ)
				mover_reason(m, row, psprintf("%s_mask", p->cols[c].name), "mask", c,
							 "22001",
							 psprintf("the masked value has %d characters, more than column \"%s\" of type %s takes",
									  pg_mbstrlen(v), p->cols[c].name,
									  format_type_with_typemod(p->cols[c].typid,
															   p->cols[c].typmod)));
		}
		if (row->out == NULL)
			row->out = row->vals;	/* no masked value: written as landed */
	}
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

/* write the rows idx[0..n): direct, or by INSERT, collecting the keys it returns */
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

/*
 * Write the clean rows.  Keyed pipelines first try a plain INSERT of the
 * whole chunk (no key can be in the batch twice: mover_dedupe saw to that);
 * only when it fails, or the previous chunk met conflicts, do they use the
 * ON CONFLICT form, whose RETURNING tells new keys from existing ones.
 */
void
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
 *		outcome records
 * ---------------------------------------------------------------- */

/*
 * Rows by source: a batch's rows counted by _stage_source (cut to 63
 * bytes; NULL is "(none)") and outcome, for stage_source_rows_total.  At
 * most SOURCES_PER_BATCH sources a batch; the rows of others count as
 * "(other)" (stage._count_sources caps the sources a pipeline tracks).
 */
#define SOURCES_PER_BATCH 64
#define SOURCE_LABEL_LEN 64
typedef struct SourceCount
{
	char		source[SOURCE_LABEL_LEN];
	int64		n[4];			/* taken, clean, quarantined, duplicate */
} SourceCount;

static void
mover_count_source(Mover *m, const char *source, int outcome)
{
	char		key[SOURCE_LABEL_LEN];
	SourceCount *c;
	bool		found;

	if (m->sources == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = SOURCE_LABEL_LEN;
		ctl.entrysize = sizeof(SourceCount);
		ctl.hcxt = m->batch_cxt ? m->batch_cxt : CurrentMemoryContext;
		m->sources = hash_create("stage sources of a batch", 16, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	if (source == NULL)
		strcpy(key, "(none)");
	else
		memcpy(key, source, pg_mbcliplen(source, strlen(source), SOURCE_LABEL_LEN - 1));
	c = hash_search(m->sources, key, HASH_FIND, NULL);
	if (c == NULL)
	{
		if (hash_get_num_entries(m->sources) >= SOURCES_PER_BATCH - 1)
			strcpy(key, "(other)");
		c = hash_search(m->sources, key, HASH_ENTER, &found);
		if (!found)
			memset(c->n, 0, sizeof(c->n));
	}
	c->n[0]++;
	if (outcome == OUT_CLEAN)
		c->n[1]++;
	else if (outcome == OUT_QUARANTINE)
		c->n[2]++;
	else if (outcome == OUT_DUPLICATE)
		c->n[3]++;
}

/* the batch's rows by source into the counters (a done batch only) */
void
mover_write_sources(Mover *m)
{
	HASH_SEQ_STATUS seq;
	SourceCount *c;
	StringInfoData s;
	Oid			types[3] = {INT4OID, INT8OID, TEXTOID};
	Datum		vals[3];
	bool		first = true;

	if (m->sources == NULL || hash_get_num_entries(m->sources) == 0)
		return;
	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	hash_seq_init(&seq, m->sources);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		if (!first)
			appendStringInfoString(&s, ", ");
		first = false;
		escape_json(&s, c->source);
		appendStringInfo(&s, ": [" INT64_FORMAT ", " INT64_FORMAT ", " INT64_FORMAT ", " INT64_FORMAT "]",
						 c->n[0], c->n[1], c->n[2], c->n[3]);
	}
	appendStringInfoChar(&s, '}');
	vals[0] = Int32GetDatum(m->p->pipeline_id);
	vals[1] = Int64GetDatum(m->batch_id);
	vals[2] = CStringGetTextDatum(s.data);
	catalog_exec("SELECT stage._count_sources($1, $2, $3::jsonb)", 3, types, vals, NULL, SPI_OK_SELECT);
}

/* count the piece's outcomes; record its quarantined rows and its duplicates */
void
mover_write_outcomes(Mover *m)
{
	int			nq = 0;
	int			nd = 0;
	int			i;
	Datum	   *ids = palloc(sizeof(Datum) * Max(m->n, 1));
	Datum	   *srcs = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *srcnull = palloc(sizeof(bool) * Max(m->n, 1));
	Datum	   *roles = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *rolenull = palloc(sizeof(bool) * Max(m->n, 1));
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
	Datum	   *keys = palloc(sizeof(Datum) * Max(m->n, 1));
	bool	   *keynull = palloc(sizeof(bool) * Max(m->n, 1));

	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];
		char	   *key;

		mover_count_source(m, row->source, row->outcome);
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
				rolenull[nq] = (row->role == NULL);
				roles[nq] = row->role ? CStringGetTextDatum(row->role) : (Datum) 0;
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
				key = mover_quarantine_key(m, row);
				keynull[nq] = (key == NULL);
				keys[nq] = key ? CStringGetTextDatum(key) : (Datum) 0;
				nq++;
				break;
		}
	}
	if (nq > 0)
	{
		Oid			types[13] = {INT4OID, INT8OID, INT4OID, INT8ARRAYOID, TEXTARRAYOID,
			TIMESTAMPTZARRAYOID, JSONBARRAYOID, JSONBARRAYOID, JSONBARRAYOID,
		JSONBARRAYOID, JSONBARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum		vals[13];

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
		vals[11] = mover_array(keys, keynull, nq, TEXTOID);
		vals[12] = mover_array(roles, rolenull, nq, TEXTOID);
		catalog_exec("INSERT INTO stage.quarantine_log (pipeline_id, landing_id, batch_id,"
					 " contract_version, source, received_at, row_data, reasons, raw_data,"
					 " raw_payload, raw_reasons, key, role)"
					 " SELECT $1, u.id, $2, $3, u.src, u.rcv, u.rd, u.re, u.raw, u.pay, u.rr, u.k, u.ro"
					 " FROM (SELECT pg_catalog.unnest($4) AS id, pg_catalog.unnest($5) AS src,"
					 " pg_catalog.unnest($6) AS rcv, pg_catalog.unnest($7) AS rd,"
					 " pg_catalog.unnest($8) AS re, pg_catalog.unnest($9) AS raw,"
					 " pg_catalog.unnest($10) AS pay, pg_catalog.unnest($11) AS rr,"
					 " pg_catalog.unnest($12) AS k, pg_catalog.unnest($13) AS ro) AS u",
					 13, types, vals, NULL, SPI_OK_INSERT);
		m->open_items = true;
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

/* has the pipeline an open quarantine item (that a clean row might close)? */
bool
mover_has_open_items(int pipeline_id)
{
	Oid			type = INT4OID;
	Datum		val = Int32GetDatum(pipeline_id);
	bool		isnull;

	/*
	 * The quarantine's open items, as the counters keep them (a lookup of
	 * the counter's key): a query of the log itself was planned as a
	 * sequential scan when other pipelines had many open items.
	 */
	catalog_exec("SELECT COALESCE(pg_catalog.sum(c.value), 0) OPERATOR(pg_catalog.>) 0"
				 " FROM stage.counter c WHERE c.pipeline_id OPERATOR(pg_catalog.=) $1"
				 " AND c.metric OPERATOR(pg_catalog.=) 'stage_dlq_items'"
				 " AND c.labels OPERATOR(pg_catalog.=) '{\"status\": \"open\"}'",
				 1, &type, &val, NULL, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									  &isnull));
}

/*
 * Quarantine items this piece's clean rows close, in the batch's
 * transaction: an item whose repair copy (successor_id) moved clean is
 * repaired; an open item of a key that a later landing row (a higher
 * landing id) moved clean with is superseded by that row.  Nothing to do
 * while the pipeline has no open item (m->open_items, read when the batch
 * began and set when a piece quarantines a row).  The keys are looked up
 * in the open items' key index (key = ANY): the items read are those of
 * the piece's keys, however many others are open (joined on the key
 * alone, the update was planned as a walk of every open item of the
 * pipeline, in key order, each piece).
 */
void
mover_close_items(Mover *m)
{
	Datum	   *ids;
	Datum	   *keys;
	bool	   *keynull;
	int			n = 0;
	int			i;
	Oid			types[4] = {INT4OID, INT8OID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		vals[4];

	if (!m->open_items || m->n == 0)
		return;
	ids = palloc(sizeof(Datum) * m->n);
	keys = palloc(sizeof(Datum) * m->n);
	keynull = palloc(sizeof(bool) * m->n);
	for (i = 0; i < m->n; i++)
	{
		MoverRow   *row = &m->rows[i];

		if (row->outcome != OUT_CLEAN)
			continue;
		ids[n] = Int64GetDatum(row->id);
		keynull[n] = (row->key == NULL);
		keys[n] = row->key ? CStringGetTextDatum(row->key) : (Datum) 0;
		n++;
	}
	if (n == 0)
		return;
	vals[0] = Int32GetDatum(m->p->pipeline_id);
	vals[1] = Int64GetDatum(m->batch_id);
	vals[2] = mover_array(ids, NULL, n, INT8OID);
	vals[3] = mover_array(keys, keynull, n, TEXTOID);
	catalog_exec("UPDATE stage.quarantine_log q SET status = 'repaired',"
				 " closed_at = pg_catalog.now(), closed_batch_id = $2,"
				 " closed_by = (SELECT b.run_by FROM stage.batch b"
				 " WHERE b.batch_id OPERATOR(pg_catalog.=) $2)"
				 " WHERE q.pipeline_id OPERATOR(pg_catalog.=) $1"
				 " AND q.status OPERATOR(pg_catalog.=) 'open'"
				 " AND q.successor_id OPERATOR(pg_catalog.=) ANY ($3)",
				 3, types, vals, NULL, SPI_OK_UPDATE);
	if (m->p->nkeys == 0)
		return;
	catalog_exec("UPDATE stage.quarantine_log q SET status = 'superseded',"
				 " successor_id = c.id, closed_at = pg_catalog.now(), closed_batch_id = $2,"
				 " closed_by = (SELECT b.run_by FROM stage.batch b"
				 " WHERE b.batch_id OPERATOR(pg_catalog.=) $2)"
				 " FROM (SELECT u.k, pg_catalog.max(u.id) AS id"
				 " FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(id, k)"
				 " WHERE u.k IS NOT NULL GROUP BY u.k) AS c"
				 " WHERE q.pipeline_id OPERATOR(pg_catalog.=) $1"
				 " AND q.status OPERATOR(pg_catalog.=) 'open'"
				 " AND q.key OPERATOR(pg_catalog.=) ANY ($4)"
				 " AND q.key OPERATOR(pg_catalog.=) c.k"
				 " AND q.landing_id OPERATOR(pg_catalog.<) c.id",
				 4, types, vals, NULL, SPI_OK_UPDATE);
}

/* per transform counters of this batch */
static void
mover_write_transform_stats(Mover *m)
{
	RuleProgram *p = m->p;
	int			n = p->ntransforms;
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *cols = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *methods = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *counts[4];
	Oid			types[9] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		vals[9];
	int			i;
	int			k;

	if (n == 0)
		return;
	for (k = 0; k < 4; k++)
		counts[k] = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		StageTransform *st = &p->transforms[i];

		names[i] = CStringGetTextDatum(st->name);
		cols[i] = CStringGetTextDatum(p->cols[st->col].name);
		methods[i] = CStringGetTextDatum(transform_method_name(st->t));
		counts[0][i] = Int64GetDatum(st->applied);
		counts[1][i] = Int64GetDatum(st->changed);
		counts[2][i] = Int64GetDatum(st->nulled);
		counts[3][i] = Int64GetDatum(st->failed);
	}
	vals[0] = Int64GetDatum(m->batch_id);
	vals[1] = mover_array(names, NULL, n, TEXTOID);
	vals[2] = mover_array(cols, NULL, n, TEXTOID);
	vals[3] = mover_array(methods, NULL, n, TEXTOID);
	for (k = 0; k < 4; k++)
		vals[4 + k] = mover_array(counts[k], NULL, n, INT8OID);
	catalog_exec("INSERT INTO stage.batch_transform_stat (batch_id, transform_name, column_name,"
				 " method, applied, changed, nulled, failed)"
				 " SELECT $1, u.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
				 " pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
				 " pg_catalog.unnest($7), pg_catalog.unnest($8)) AS u",
				 8, types, vals, NULL, SPI_OK_INSERT);
}

/* per rule (and per column type check) counters of this batch, and per transform */
void
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
	mover_write_transform_stats(m);
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
