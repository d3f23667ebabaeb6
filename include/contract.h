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

#endif							/* STAGE_CONTRACT_H */
