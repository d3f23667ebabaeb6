/*-------------------------------------------------------------------------
 *
 * transform_contract.h
 *	  The transforms of a contract, compiled into its program
 *	  (transform_contract.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TRANSFORM_CONTRACT_H
#define STAGE_TRANSFORM_CONTRACT_H

#include "stage.h"

extern void transform_contract_load(RuleProgram *p, Relation rel, Relation lrel);

#endif							/* STAGE_TRANSFORM_CONTRACT_H */
