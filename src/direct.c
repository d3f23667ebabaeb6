/*-------------------------------------------------------------------------
 *
 * direct.c
 *	  The direct write of clean rows: table_multi_insert plus index
 *	  maintenance and constraint checks, as COPY FROM does, for targets
 *	  where that is exactly what an INSERT would do.
 *
 * An INSERT ... SELECT over arrays costs a plan, an executor, unnest and a
 * cast per value on top of the heap and index work.  For a plain table
 * with no triggers (foreign keys are triggers), no rules, no row-level
 * security, no generated or identity-always columns, and every column
 * coming from landing (so no default is needed), the same result is had by
 * converting each value with the column's input function and typmod (what
 * the INSERT's cast and assignment coercion do), checking NOT NULL and
 * CHECK constraints, and inserting in buffers of DIRECT_BUFFER rows.  Any
 * other target takes the INSERT statement (direct_eligible says which).
 *
 * Errors are left to the caller: the mover (write.c) runs this inside a
 * subtransaction and bisects on failure, as it does for the INSERT.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/builtins.h"

#include "direct.h"
#include "node.h"
#include "stage.h"

#define DIRECT_BUFFER 1000

/*
 * Can clean rows be written to this target without an INSERT statement?
 * Decided once per compiled contract.
 */
bool
direct_eligible(Relation rel, RuleProgram *p)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			covered = 0;
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->trigdesc != NULL ||
		rel->rd_rules != NULL || rel->rd_rel->relrowsecurity)
		return false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (att->attgenerated || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			return false;
		covered++;
	}
	return covered == p->ncols + (p->lineage_id ? 1 : 0) + (p->lineage_batch ? 1 : 0) +
		(p->lineage_node ? 1 : 0);
}

/*
 * Insert n rows into the target.  values[r * ncols + c] is the text of
 * column c of row r (already masked), NULL for SQL NULL; texts, when not
 * NULL, holds for each such value its text datum where the column is of
 * type text and the value is the landing one (the input function would
 * only copy it: a value of 100 MB is not copied again); ids[r] its landing
 * id for the _stage_id lineage column (_stage_batch gets batch_id,
 * _stage_node the node's name).
 */
void
direct_insert(RuleProgram *p, int n, char **values, Datum *texts, int64 *ids,
			  int64 batch_id)
{
	Relation	rel = table_open(p->target, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	EState	   *estate = CreateExecutorState();
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	BulkInsertState bistate = GetBulkInsertState();
	CommandId	cid = GetCurrentCommandId(true);
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * DIRECT_BUFFER);
	int			nslots = Min(n, DIRECT_BUFFER);
	Datum		node = p->lineage_node ? CStringGetTextDatum(stage_node()) : (Datum) 0;
	int			i;
	int			start;

	rte->rtekind = RTE_RELATION;
	rte->relid = p->target;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
	ExecCheckRTPerms(list_make1(rte), true);
	ExecInitResultRelation(estate, rri, 1);
	ExecOpenIndices(rri, false);

	for (i = 0; i < nslots; i++)
		slots[i] = table_slot_create(rel, NULL);

	for (start = 0; start < n; start += DIRECT_BUFFER)
	{
		int			k = Min(DIRECT_BUFFER, n - start);
		int			j;

		for (j = 0; j < k; j++)
		{
			TupleTableSlot *slot = slots[j];
			int			r = start + j;
			int			c;

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
			for (c = 0; c < p->ncols; c++)
			{
				StageColumn *col = &p->cols[c];
				char	   *v = values[(size_t) r * p->ncols + c];

				if (v == NULL)
				{
					/* the input function of a domain checks its NOT NULL */
					if (col->is_domain)
						slot->tts_values[col->attnum - 1] =
							InputFunctionCall(&col->infunc, NULL, col->ioparam, col->typmod);
					continue;
				}
				if (texts != NULL && texts[(size_t) r * p->ncols + c] != (Datum) 0)
					slot->tts_values[col->attnum - 1] = texts[(size_t) r * p->ncols + c];
				else
					slot->tts_values[col->attnum - 1] =
						InputFunctionCall(&col->infunc, v, col->ioparam, col->typmod);
				slot->tts_isnull[col->attnum - 1] = false;
			}
			if (p->lineage_id)
			{
				slot->tts_values[p->lineage_id_attnum - 1] = Int64GetDatum(ids[r]);
				slot->tts_isnull[p->lineage_id_attnum - 1] = false;
			}
			if (p->lineage_batch)
			{
				slot->tts_values[p->lineage_batch_attnum - 1] = Int64GetDatum(batch_id);
				slot->tts_isnull[p->lineage_batch_attnum - 1] = false;
			}
			if (p->lineage_node)
			{
				slot->tts_values[p->lineage_node_attnum - 1] = node;
				slot->tts_isnull[p->lineage_node_attnum - 1] = false;
			}
			ExecStoreVirtualTuple(slot);
			if (desc->constr)
				ExecConstraints(rri, slot, estate);
		}
		table_multi_insert(rel, slots, k, cid, 0, bistate);
		for (j = 0; j < k; j++)
		{
			if (rri->ri_NumIndices > 0)
				list_free(ExecInsertIndexTuples(rri, slots[j], estate, false, false,
												NULL, NIL));
			ResetPerTupleExprContext(estate);
		}
	}

	for (i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	ExecCloseResultRelations(estate);	/* and their indexes */
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}
