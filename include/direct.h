/*-------------------------------------------------------------------------
 *
 * direct.h
 *	  The direct write of clean rows, without an INSERT statement, for
 *	  targets where that is exactly what an INSERT would do (see direct.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_DIRECT_H
#define STAGE_DIRECT_H

#include "utils/relcache.h"

#include "stage.h"

extern bool direct_eligible(Relation rel, RuleProgram *p);
extern void direct_insert(RuleProgram *p, int n, char **values, Datum *texts,
						  int64 *ids, int64 batch_id);

#endif							/* STAGE_DIRECT_H */
