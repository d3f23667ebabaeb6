/*-------------------------------------------------------------------------
 *
 * transform_contract.c
 *	  A transform as a contract declares it: checked against the pipeline's
 *	  target and landing table when it is added (stage._validate_transform),
 *	  and compiled into the program (transform_contract_load) for the batch
 *	  to run.
 *
 * The methods themselves are transform.c's.  What a contract adds is where
 * each one reads and writes: the column it sets (a target column with a
 * landing column), the landing columns or payload paths of from, concat
 * and coalesce, the table of a lookup (permanent, schema-qualified,
 * readable by the pipeline's owner) and the columns an expression reads.
 * Lookups and expressions are planned here as the pipeline's owner, so
 * what cannot run is refused when it is added, not in a batch.
 *
 * Touches: reads stage.pipeline and stage.transform (as the catalog
 * owner), the target and landing tables' descriptors, and plans the
 * owner's lookup and expression statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"

#include "expression.h"
#include "guard.h"
#include "node.h"
#include "transform.h"
#include "transform_contract.h"

/* the landing column named name, usable as a transform's source (or 0) */
static AttrNumber
tc_landing_column(Relation lrel, const char *name)
{
	AttrNumber	attnum;

	if (name == NULL || strncmp(name, "_stage_", 7) == 0)
		return InvalidAttrNumber;
	attnum = attnameAttNum(lrel, name, false);
	return attnum > 0 ? attnum : InvalidAttrNumber;
}

/* from, concat and coalesce: their sources exist where they read them */
static void
tc_check_sources(StageTransform *st, Relation lrel, bool jsonb_format)
{
	Transform  *t = st->t;
	List	   *cols = NIL;
	List	   *paths = NIL;
	ListCell   *lc;

	switch (transform_method(t))
	{
		case TF_FROM:
			if (transform_from_column(t))
				cols = list_make1((void *) transform_from_column(t));
			else
				paths = list_make1(transform_from_path(t));
			break;
		case TF_CONCAT:
			cols = transform_columns(t);
			break;
		case TF_COALESCE:
			cols = transform_columns(t);
			paths = transform_paths(t);
			break;
		default:
			return;
	}
	if (jsonb_format)
	{
		/* a payload's top-level key is a path of one step */
		foreach(lc, cols)
			paths = lappend(paths, list_make1(lfirst(lc)));
		st->nsrc = list_length(paths);
		st->src_path = palloc(sizeof(List *) * Max(st->nsrc, 1));
		foreach(lc, paths)
			st->src_path[foreach_current_index(lc)] = (List *) lfirst(lc);
		return;
	}
	if (paths != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transform %s reads paths of a jsonb payload, and this pipeline lands columns",
						transform_method_name(t)),
				 errhint("Name landing columns with \"column\" or \"columns\"; add one with stage.add_landing_column().")));
	st->nsrc = list_length(cols);
	st->src_col = palloc(sizeof(int) * Max(st->nsrc, 1));
	st->src_extra = palloc(sizeof(int) * Max(st->nsrc, 1));
	foreach(lc, cols)
	{
		const char *name = (const char *) lfirst(lc);

		if (tc_landing_column(lrel, name) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("transform %s reads \"%s\", which is not a column of landing table \"%s\"",
							transform_method_name(t), name, RelationGetRelationName(lrel)),
					 errhint("Add it with stage.add_landing_column(pipeline, '%s').", name)));
		st->src_col[foreach_current_index(lc)] = -1;
		st->src_extra[foreach_current_index(lc)] = -1;
	}
}

/* is the type text, varchar or bpchar, whose = an index on it serves? */
static bool
tc_text_like(Oid typid)
{
	typid = getBaseType(typid);
	return typid == TEXTOID || typid == VARCHAROID || typid == BPCHAROID;
}

/*
 * lookup: a permanent table, named with its schema, that the owner (the
 * current user here) may read, with the key and value columns; the batch's
 * statement, prepared now.
 */
static void
tc_compile_lookup(StageTransform *st)
{
	Transform  *t = st->t;
	const char *tname = transform_lookup_table(t);
	const char *kname = transform_lookup_key(t);
	const char *vname = transform_lookup_value(t);
	List	   *names = stringToQualifiedNameList(tname);
	RangeVar   *rv;
	Oid			relid;
	Relation	rel;
	AttrNumber	katt;
	AttrNumber	vatt;
	Oid			ktype;
	char	   *qtable;
	const char *m = transform_on_missing(t);

	if (list_length(names) != 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table of a lookup must be named with its schema: \"%s\"", tname),
				 errhint("For example {\"table\": \"ref.countries\", \"key\": \"code\", \"value\": \"name\"}.")));
	rv = makeRangeVarFromNameList(names);
	relid = RangeVarGetRelid(rv, AccessShareLock, false);
	rel = relation_open(relid, AccessShareLock);
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT ||
		(rel->rd_rel->relkind != RELKIND_RELATION &&
		 rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		 rel->rd_rel->relkind != RELKIND_MATVIEW))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("the table of a lookup must be a permanent table or materialized view: \"%s\"", tname)));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the pipeline's owner may not read lookup table \"%s\"", tname),
				 errhint("Grant SELECT on it to the owner role of the pipeline.")));
	katt = attnameAttNum(rel, kname, false);
	vatt = attnameAttNum(rel, vname, false);
	if (katt <= 0 || vatt <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("lookup table \"%s\" has no column \"%s\"", tname,
						katt <= 0 ? kname : vname)));
	ktype = TupleDescAttr(RelationGetDescr(rel), katt - 1)->atttypid;
	qtable = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										RelationGetRelationName(rel));
	relation_close(rel, AccessShareLock);

	/*
	 * One statement per batch: the distinct values in $1, compared as
	 * text (directly where the key is text, so an index on it serves).
	 */
	st->lookup_sql = psprintf("SELECT %s::pg_catalog.text, %s::pg_catalog.text FROM %s"
							  " WHERE %s%s OPERATOR(pg_catalog.=) ANY ($1)",
							  quote_identifier(kname), quote_identifier(vname), qtable,
							  quote_identifier(kname),
							  tc_text_like(ktype) ? "" : "::pg_catalog.text");
	st->lookup_name = psprintf("%s.%s", qtable, quote_identifier(vname));
	st->on_missing = strcmp(m, "null") == 0 ? TF_MISSING_NULL :
		strcmp(m, "reject") == 0 ? TF_MISSING_REJECT : TF_MISSING_KEEP;
	{
		Oid			argtype = TEXTARRAYOID;
		SPIPlanPtr	plan;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = SPI_prepare(st->lookup_sql, 1, &argtype);
		if (plan == NULL)
			elog(ERROR, "stage: could not prepare the lookup of transform \"%s\"", st->name);
		SPI_freeplan(plan);
		SPI_finish();
	}
}

/*
 * Compile one transform of column cname: its method and arguments, then
 * what it reads.  rel is the target, lrel the landing table.  Lookups and
 * expressions are planned with the current user's rights: the caller runs
 * this as the pipeline's owner.
 */
static void
tc_compile(StageTransform *st, const char *cname, const char *method, Jsonb *args,
		   Relation rel, Relation lrel, bool jsonb_format)
{
	AttrNumber	attnum;
	Form_pg_attribute att;

	if (cname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column name must not be null")));
	attnum = attnameAttNum(rel, cname, false);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist",
						cname, RelationGetRelationName(rel)),
				 errhint("A transform sets a column of the pipeline's target table.")));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	if (att->attgenerated || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS ||
		stage_is_lineage_column(cname))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("column \"%s\" never comes from landing and cannot be transformed", cname)));
	if (!jsonb_format && tc_landing_column(lrel, cname) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" has no landing column", cname),
				 errhint("It was added to the target after the pipeline; add it with stage.add_landing_column(pipeline, '%s').",
						 cname)));
	st->t = transform_compile(method, args, CurrentMemoryContext);
	st->method = (int) transform_method(st->t);
	transform_set_collation(st->t, att->attcollation);
	switch (transform_method(st->t))
	{
		case TF_FROM:
		case TF_CONCAT:
		case TF_COALESCE:
			tc_check_sources(st, lrel, jsonb_format);
			st->separator = transform_method(st->t) == TF_CONCAT ?
				transform_separator(st->t) : NULL;
			break;
		case TF_LOOKUP:
			tc_compile_lookup(st);
			break;
		case TF_EXPRESSION:
			st->expr = pstrdup(transform_expression(st->t));
			st->expr_cols = expr_columns(st->expr, rel, "transform");
			st->expr_sql = expr_sql(st->expr, st->expr_cols, rel, false);
			expr_prepare(st->expr_sql, list_length(st->expr_cols), st->expr,
										"transform",
										"An expression derives one value from one row, over its columns cast to their types; aggregates, window and set-returning functions are not allowed, and functions outside pg_catalog must be schema-qualified.");
			break;
		default:
			break;
	}
}

/* the stage a transform runs in: sources, chains, lookups, expressions */
static int
tc_stage(const StageTransform *st)
{
	switch ((TransformMethod) st->method)
	{
		case TF_FROM:
		case TF_CONCAT:
		case TF_COALESCE:
			return 0;
		case TF_LOOKUP:
			return 2;
		case TF_EXPRESSION:
			return 3;
		default:
			return 1;
	}
}

/* the extra landing column name in p (added if new); its index */
static int
tc_extra(RuleProgram *p, Relation lrel, const char *name)
{
	int			i;

	for (i = 0; i < p->nextra; i++)
		if (strcmp(p->extra_name[i], name) == 0)
			return i;
	p->extra_name = p->nextra == 0 ? palloc(sizeof(char *)) :
		repalloc(p->extra_name, sizeof(char *) * (p->nextra + 1));
	p->extra_attnum = p->nextra == 0 ? palloc(sizeof(AttrNumber)) :
		repalloc(p->extra_attnum, sizeof(AttrNumber) * (p->nextra + 1));
	p->extra_name[p->nextra] = pstrdup(name);
	p->extra_attnum[p->nextra] = tc_landing_column(lrel, name);
	return p->nextra++;
}

/*
 * Compile the pipeline's transforms into p, in the order the batch runs
 * them.  Called by contract_build, inside its SPI connection, with p's
 * memory context current; rel is the target, lrel the landing table.
 * Lookups and expressions are planned as the pipeline's owner.
 */
void
transform_contract_load(RuleProgram *p, Relation rel, Relation lrel)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(p->pipeline_id);
	SPITupleTable *tt;
	uint64		n;
	uint64		j;
	StageTransform *all;
	int			stage;
	int			k = 0;
	GuardSwitch gs;

	catalog_exec("SELECT transform_name, column_name, method, args FROM stage.transform"
				 " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 ORDER BY position",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	tt = SPI_tuptable;
	n = SPI_processed;
	all = palloc0(sizeof(StageTransform) * Max(n, 1));
	guard_push_role(&gs, p->owner);
	for (j = 0; j < n; j++)
	{
		StageTransform *st = &all[j];
		char	   *cname = SPI_getvalue(tt->vals[j], tt->tupdesc, 2);
		bool		isnull;
		Jsonb	   *args = DatumGetJsonbPCopy(SPI_getbinval(tt->vals[j], tt->tupdesc, 4, &isnull));
		int			c;
		int			s;

		st->name = SPI_getvalue(tt->vals[j], tt->tupdesc, 1);
		tc_compile(st, cname, SPI_getvalue(tt->vals[j], tt->tupdesc, 3), args,
				   rel, lrel, p->jsonb_format);
		st->col = -1;
		for (c = 0; c < p->ncols; c++)
			if (strcmp(p->cols[c].name, cname) == 0)
				st->col = c;
		if (st->col < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" named by transform \"%s\" of pipeline \"%s\" is not a landing column",
							cname, st->name, p->name),
					 errhint("The target table may have changed since the transform was added; drop the transform or recreate the pipeline.")));
		/* each columns-format source: a column's landing value, or an extra one */
		for (s = 0; !p->jsonb_format && s < st->nsrc; s++)
		{
			const char *sname;
			List	   *srcs = transform_method(st->t) == TF_FROM ?
				list_make1((void *) transform_from_column(st->t)) : transform_columns(st->t);

			sname = (const char *) list_nth(srcs, s);
			for (c = 0; c < p->ncols; c++)
				if (strcmp(p->cols[c].name, sname) == 0)
					st->src_col[s] = c;
			if (st->src_col[s] < 0)
				st->src_extra[s] = tc_extra(p, lrel, sname);
		}
	}
	guard_pop(&gs);

	/* sources, chains, lookups, expressions; declaration order within each */
	p->transforms = palloc0(sizeof(StageTransform) * Max(n, 1));
	for (stage = 0; stage < 4; stage++)
		for (j = 0; j < n; j++)
			if (tc_stage(&all[j]) == stage)
				p->transforms[k++] = all[j];
	p->ntransforms = k;
}

/*
 * stage._validate_transform(pipeline_id, column, method, args, owner):
 * compile a transform as the batch would and throw it away, so
 * add_transform and set_contract refuse what cannot run.
 */
PG_FUNCTION_INFO_V1(stage_validate_transform);
Datum
stage_validate_transform(PG_FUNCTION_ARGS)
{
	Oid			argtype = INT4OID;
	Datum		arg;
	Oid			target;
	Oid			landing;
	bool		jsonb_format;
	bool		isnull;
	Relation	rel;
	Relation	lrel;
	StageTransform st;
	GuardSwitch gs;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform method must not be null"),
				 errhint("See stage.transform() and docs/transforms.md for the methods.")));
	arg = Int32GetDatum(PG_GETARG_INT32(0));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	catalog_exec("SELECT target::pg_catalog.oid, landing::pg_catalog.oid, format OPERATOR(pg_catalog.=) 'jsonb'"
				 " FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "pipeline %d vanished", DatumGetInt32(arg));
	target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	landing = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	jsonb_format = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	SPI_finish();

	rel = relation_open(target, AccessShareLock);
	lrel = relation_open(landing, AccessShareLock);
	memset(&st, 0, sizeof(st));
	st.name = "(new)";
	guard_push_role(&gs, PG_GETARG_OID(4));
	tc_compile(&st, PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
			   text_to_cstring(PG_GETARG_TEXT_PP(2)),
			   PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), rel, lrel, jsonb_format);
	guard_pop(&gs);
	relation_close(lrel, AccessShareLock);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
