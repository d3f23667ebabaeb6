/*-------------------------------------------------------------------------
 *
 * expression.c
 *	  The SQL expressions of a contract (expression rules, expression
 *	  transforms): parsed on their own and checked to be one expression
 *	  over the target's columns, built into the set-wise statement a batch
 *	  runs, and planned once to refuse now what could not run.
 *
 * Touches: nothing but the parser and the planner (the caller runs it as
 * the pipeline's owner, under the guard); stage._expression_columns only
 * the parser.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "expression.h"

typedef struct ExprCheck
{
	Relation	rel;
	List	   *cols;
	const char *what;			/* "rule" or "transform" */
} ExprCheck;

/*
 * Walk a raw expression tree: every column reference must be one
 * unqualified column of the target; subqueries, aggregates, window
 * functions and parameters are refused.
 */
static bool
expr_walker(Node *node, ExprCheck *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *cref = (ColumnRef *) node;
		char	   *name;
		ListCell   *lc;

		if (list_length(cref->fields) != 1 || !IsA(linitial(cref->fields), String))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s expression may only name columns of the row, unqualified", ctx->what),
					 errhint("Write amount > 0, not t.amount > 0 or *.")));
		name = strVal(linitial(cref->fields));
		if (attnameAttNum(ctx->rel, name, false) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" in %s expression is not a column of \"%s\"",
							name, ctx->what, RelationGetRelationName(ctx->rel)),
					 errhint(strcmp(ctx->what, "repair") == 0 ?
							 "A repair expression reads the columns of the row as it landed, as text." :
							 "Expressions are evaluated over the row's target columns.")));
		foreach(lc, ctx->cols)
			if (strcmp((char *) lfirst(lc), name) == 0)
				return false;
		ctx->cols = lappend(ctx->cols, pstrdup(name));
		return false;
	}
	if (IsA(node, SubLink) || IsA(node, ParamRef) || IsA(node, RangeSubselect))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression may not contain subqueries or parameters", ctx->what),
				 errhint(strcmp(ctx->what, "rule") == 0 ?
						 "Use rule reference for lookups in other tables." :
						 strcmp(ctx->what, "repair") == 0 ?
						 "A repair expression corrects a row from its own values; look other values up in a transform." :
						 "Use the transform lookup for values from other tables.")));
	if (IsA(node, FuncCall) && (((FuncCall *) node)->agg_star ||
								((FuncCall *) node)->over != NULL ||
								((FuncCall *) node)->agg_order != NIL ||
								((FuncCall *) node)->agg_filter != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression may not contain aggregates or window functions", ctx->what),
				 errhint(strcmp(ctx->what, "rule") == 0 ?
						 "An expression checks one row at a time." :
						 "An expression derives a value from one row at a time.")));
	return raw_expression_tree_walker(node, expr_walker, (void *) ctx);
}

/*
 * The set-wise evaluation of an expression: $1 the row numbers, then one
 * text[] per column the expression reads, cast to the column's type under
 * the column's own name, so the validated expression text reads them
 * unqualified.  A rule's (condition) runs in WHERE, where aggregates,
 * window and set-returning functions are not allowed, under IS FALSE,
 * which wants a boolean: NULL passes, as in a CHECK constraint, and the
 * row numbers of the failing rows come back.  A transform's gives every
 * row number with the expression's value as text.
 */
char *
expr_sql(const char *expr, List *cols, Relation rel, bool condition)
{
	StringInfoData s;
	ListCell   *lc;
	int			i = 2;

	initStringInfo(&s);
	appendStringInfoString(&s, condition ? "SELECT u.\"?ord\"" : "SELECT u.\"?ord\", (\n");
	if (!condition)
		appendStringInfo(&s, "%s\n)::pg_catalog.text", expr);
	appendStringInfoString(&s, " FROM (SELECT pg_catalog.unnest($1) AS \"?ord\"");
	foreach(lc, cols)
	{
		const char *name = (const char *) lfirst(lc);
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel),
											  attnameAttNum(rel, name, false) - 1);

		appendStringInfo(&s, ", CAST(pg_catalog.unnest($%d) AS %s) AS %s", i++,
						 format_type_extended(att->atttypid, -1,
											  FORMAT_TYPE_FORCE_QUALIFY |
											  FORMAT_TYPE_TYPEMOD_GIVEN),
						 quote_identifier(name));
	}
	/* own lines: a -- comment in the expression ends with its line */
	if (condition)
		appendStringInfo(&s, ") AS u WHERE (\n%s\n) IS FALSE", expr);
	else
		appendStringInfoString(&s, ") AS u");
	return s.data;
}

/*
 * The expression's tokens close no bracket they did not open, and close
 * every one they open: then, on lines of its own between parentheses, it
 * stays one operand whatever is pasted around it ("true) OR (true" would
 * otherwise turn "(x) IS FALSE" into "(true) OR ((true) IS FALSE)").
 */
static void
expr_check_brackets(const char *expr, const char *what)
{
	core_yy_extra_type extra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			depth = 0;
	int			tok;

	scanner = scanner_init(expr, &extra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		if (tok == '(' || tok == '[')
			depth++;
		else if (tok == ')' || tok == ']')
			depth--;
		if (depth < 0)
			break;
	}
	scanner_finish(scanner);
	if (depth != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression must be a single expression", what),
				 errdetail("Its parentheses or brackets do not balance."),
				 errhint("For example \"shipped_at >= ordered_at\".")));
}

/*
 * Parse an expression on its own ("SELECT <sql>" must give exactly one
 * statement with one target and nothing else) and return the target
 * columns it reads.  Only text that parsed as a single expression over
 * known columns is ever placed in the mover's SQL.
 */
List *
expr_columns(const char *expr, Relation rel, const char *what)
{
	List	   *stmts;
	SelectStmt *sel;
	ResTarget  *rt;
	ExprCheck	ctx;

	expr_check_brackets(expr, what);
	stmts = raw_parser(psprintf("SELECT (\n%s\n)", expr), RAW_PARSE_DEFAULT);
	if (list_length(stmts) != 1 ||
		!IsA(((RawStmt *) linitial(stmts))->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression must be a single expression", what)));
	sel = (SelectStmt *) ((RawStmt *) linitial(stmts))->stmt;
	if (list_length(sel->targetList) != 1 || sel->fromClause || sel->whereClause ||
		sel->groupClause || sel->havingClause || sel->windowClause ||
		sel->sortClause || sel->limitCount || sel->limitOffset || sel->withClause ||
		sel->distinctClause || sel->valuesLists || sel->op != SETOP_NONE ||
		sel->intoClause || sel->lockingClause)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression must be a single expression", what),
				 errhint("For example \"shipped_at >= ordered_at\".")));
	rt = (ResTarget *) linitial(sel->targetList);
	ctx.rel = rel;
	ctx.cols = NIL;
	ctx.what = what;
	(void) expr_walker(rt->val, &ctx);
	return ctx.cols;
}

/*
 * Prepare the statement that will run an expression (built by
 * contract_expression_sql over ncols columns), so type errors,
 * non-boolean conditions, aggregates and unknown functions are refused
 * now, said of the expression rather than of the statement around it.
 */
void
expr_prepare(const char *sql, int ncols, const char *expr,
							const char *what, const char *hint)
{
	int			nargs = ncols + 1;
	Oid		   *types = palloc(sizeof(Oid) * nargs);
	volatile SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	int			k;

	types[0] = INT4ARRAYOID;
	for (k = 1; k < nargs; k++)
		types[k] = TEXTARRAYOID;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		plan = SPI_prepare(sql, nargs, types);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expression is not valid: %s", what, e->message),
				 errdetail("The expression: %s", expr),
				 errhint("%s", hint)));
	}
	PG_END_TRY();
	if (plan == NULL)
		elog(ERROR, "stage: could not prepare the expression");
	SPI_freeplan(plan);
	SPI_finish();
}


/*
 * stage._expression_columns(target, sql): the columns of the target an
 * expression reads, as the parser sees them (quoted, Unicode-escaped or
 * bare: the names it resolves to), for publishing's check of raw columns
 * (sql/stage--0.3/85_publish.sql).  Errors as expr_columns does.
 */
PG_FUNCTION_INFO_V1(stage_expression_columns);
Datum
stage_expression_columns(PG_FUNCTION_ARGS)
{
	Oid			target = PG_GETARG_OID(0);
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Relation	rel = relation_open(target, AccessShareLock);
	List	   *cols = expr_columns(sql, rel, "transform");
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(cols) + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, cols)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	relation_close(rel, AccessShareLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}
