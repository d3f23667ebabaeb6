/*-------------------------------------------------------------------------
 *
 * contract.h
 *	  A pipeline's compiled contract (RuleProgram, in stage.h), from the
 *	  per-backend cache, pinned for one call (see contract.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_CONTRACT_H
#define STAGE_CONTRACT_H

#include "stage.h"

extern RuleProgram *contract_get(int pipeline_id, int version);
extern void contract_release(RuleProgram *p);

/* expressions of rules and transforms: what = "rule" or "transform" */
extern List *contract_expression_columns(const char *expr, Relation rel, const char *what);
extern char *contract_expression_sql(const char *expr, List *cols, Relation rel,
									 bool condition);
extern void contract_expression_prepare(const char *sql, int ncols, const char *expr,
										const char *what, const char *hint);

#endif							/* STAGE_CONTRACT_H */
