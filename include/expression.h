/*-------------------------------------------------------------------------
 *
 * expression.h
 *	  The SQL expressions of rules and transforms (expression.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_EXPRESSION_H
#define STAGE_EXPRESSION_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/relcache.h"

/* what = "rule" or "transform", for the messages */
extern List *expr_columns(const char *expr, Relation rel, const char *what);
extern char *expr_sql(const char *expr, List *cols, Relation rel, bool condition);
extern void expr_prepare(const char *sql, int ncols, const char *expr,
						 const char *what, const char *hint);

#endif							/* STAGE_EXPRESSION_H */
