/*-------------------------------------------------------------------------
 *
 * landing.c
 *	  Landing tables: their DDL (stage._landing_ddl) and the append-only
 *	  guard trigger (stage._landing_guard).
 *
 * A landing table lives in schema stage_landing and belongs, like the
 * schema, to the catalog owner (guard.c): a pipeline owner can neither
 * rename it, nor add an index, trigger or rule to it, nor squat a name a
 * later pipeline needs.  The owner is granted SELECT and INSERT (data
 * columns and _stage_source); producers get INSERT through
 * stage.grant_producer.  Nobody but the catalog owner may set the other
 * metadata columns: _stage_role, the role whose privileges the INSERT or
 * COPY was checked against (CURRENT_USER, a stable default like the
 * others, so COPY keeps its multi-row inserts), cannot be forged.  It is
 * text, not name: a name takes 64 bytes in every row, text the role's
 * length plus one.
 * Identifiers are quoted with quote_identifier; nothing from the caller
 * is pasted into SQL otherwise.
 *
 * Touches schema stage_landing (DDL, as the catalog owner) and
 * stage.pipeline (its landing column); the guard trigger touches nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/timestamp.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "stage.h"
#include "guard.h"
#include "node.h"

/* run one DDL statement (SPI connected) */
static void
landing_exec(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "landing DDL failed: %s", sql);
}

/* append the data columns of target's landing table: text each, or a payload */
static void
landing_columns(StringInfo s, Oid target, bool jsonb_format)
{
	Relation	rel = table_open(target, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (jsonb_format)
		appendStringInfoString(s, ", payload pg_catalog.jsonb");
	for (i = 0; i < desc->natts && !jsonb_format; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *n = NameStr(att->attname);

		if (att->attisdropped || att->attgenerated ||
			att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS ||
			stage_is_lineage_column(n))
			continue;
		if (strncmp(n, "_stage_", 7) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" of the target uses a name reserved for landing metadata", n),
					 errhint("Rename the column; names starting with _stage_ are reserved (except the lineage columns _stage_id, _stage_batch and _stage_node).")));
		appendStringInfo(s, ", %s pg_catalog.text", quote_identifier(n));
	}
	table_close(rel, AccessShareLock);
}

/* the landing columns a producer may set: data columns and _stage_source */
static char *
landing_insert_columns(Oid target, bool jsonb_format)
{
	StringInfoData s;
	Relation	rel;
	TupleDesc	desc;
	int			i;

	initStringInfo(&s);
	appendStringInfoString(&s, "_stage_source");
	if (jsonb_format)
	{
		appendStringInfoString(&s, ", payload");
		return s.data;
	}
	rel = table_open(target, AccessShareLock);
	desc = RelationGetDescr(rel);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *n = NameStr(att->attname);

		if (att->attisdropped || att->attgenerated ||
			att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS ||
			stage_is_lineage_column(n))
			continue;
		appendStringInfo(&s, ", %s", quote_identifier(n));
	}
	table_close(rel, AccessShareLock);
	return s.data;
}

/* stage._landing_ddl(pipeline_id, drop): create or drop a landing table */
PG_FUNCTION_INFO_V1(stage_landing_ddl);
Datum
stage_landing_ddl(PG_FUNCTION_ARGS)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	bool		drop = PG_GETARG_BOOL(1);
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	char	   *name;
	Oid			target;
	Oid			owner;
	bool		member;
	bool		jsonb_format;
	bool		isnull;
	volatile Oid result = InvalidOid;
	Oid			save_userid;
	int			save_sec;
	StringInfoData sql;
	const char *qname;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	catalog_exec("SELECT name, target::oid, owner::oid, format OPERATOR(pg_catalog.=) 'jsonb'"
				 " FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %d does not exist", pipeline_id)));
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	jsonb_format = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	member = guard_owns(owner);
	if (!member)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for pipeline \"%s\"", name),
				 errhint("Only members of the pipeline's owner role and superusers may change it.")));

	qname = quote_qualified_identifier("stage_landing", name);
	initStringInfo(&sql);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(guard_catalog_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (drop)
		{
			appendStringInfo(&sql, "DROP TABLE IF EXISTS %s", qname);
			landing_exec(sql.data);
		}
		else
		{
			appendStringInfo(&sql,
							 "CREATE TABLE %s ("
							 "_stage_id pg_catalog.int8 NOT NULL GENERATED ALWAYS AS IDENTITY,"
							 " _stage_txid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),"
							 " _stage_source pg_catalog.text DEFAULT NULLIF(pg_catalog.current_setting('application_name'), ''),"
							 " _stage_received_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),"
							 " _stage_role pg_catalog.text NOT NULL DEFAULT CURRENT_USER",
							 qname);
			landing_columns(&sql, target, jsonb_format);
			appendStringInfoString(&sql, ") PARTITION BY RANGE (_stage_txid)");
			landing_exec(sql.data);

			resetStringInfo(&sql);
			appendStringInfo(&sql, "CREATE INDEX ON %s (_stage_txid, _stage_id)", qname);
			landing_exec(sql.data);

			/*
			 * Lookups by id (stage.trace) take a BRIN index: ids rise with
			 * the heap, so a range summary finds them, at a fraction of a
			 * btree's cost on every landed row.
			 */
			resetStringInfo(&sql);
			appendStringInfo(&sql, "CREATE INDEX ON %s USING brin (_stage_id) WITH (autosummarize = on)", qname);
			landing_exec(sql.data);

			resetStringInfo(&sql);
			appendStringInfo(&sql,
							 "CREATE TRIGGER stage_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s"
							 " FOR EACH STATEMENT EXECUTE FUNCTION stage._landing_guard()",
							 qname);
			landing_exec(sql.data);

			/* a commit that landed rows wakes the database's workers */
			resetStringInfo(&sql);
			appendStringInfo(&sql,
							 "CREATE TRIGGER stage_wake AFTER INSERT ON %s"
							 " FOR EACH STATEMENT EXECUTE FUNCTION stage._wake()",
							 qname);
			landing_exec(sql.data);

			/* the owner reads its landing and may land rows itself */
			resetStringInfo(&sql);
			appendStringInfo(&sql, "GRANT SELECT ON %s TO %s", qname,
							 quote_identifier(GetUserNameFromId(owner, false)));
			landing_exec(sql.data);
			resetStringInfo(&sql);
			appendStringInfo(&sql, "GRANT INSERT (%s) ON %s TO %s",
							 landing_insert_columns(target, jsonb_format), qname,
							 quote_identifier(GetUserNameFromId(owner, false)));
			landing_exec(sql.data);

			result = get_relname_relid(name, get_namespace_oid("stage_landing", false));

			/*
			 * The txid places the row in a batch window; a row carrying
			 * any other value than its own transaction's could be skipped
			 * forever.  The check (stage_txid_is_own, NOT VALID: enforced
			 * on every insert, and dumped after the data, so a restore
			 * does not trip over it) is on each partition, made by
			 * stage._landing_partition_add.
			 */
			{
				Oid			types[2] = {INT4OID, OIDOID};
				Datum		vals[2] = {Int32GetDatum(pipeline_id), ObjectIdGetDatum(result)};

				if (SPI_execute_with_args("UPDATE stage.pipeline SET landing = $2"
										  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
										  2, types, vals, NULL, false, 0) != SPI_OK_UPDATE)
					elog(ERROR, "could not record the landing table");
				/* its first ranges (41_partitions.sql) */
				if (SPI_execute_with_args("SELECT stage._landing_partitions_init($1)",
										  1, types, vals, NULL, false, 0) != SPI_OK_SELECT)
					elog(ERROR, "could not make the landing table's partitions");
			}
		}
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();

	SPI_finish();
	if (drop)
		PG_RETURN_NULL();
	PG_RETURN_OID(result);
}

/*
 * The append-only guard: landing rows are never updated or deleted, so any
 * finished batch can be replayed from landing.  Rows leave only through
 * retention, which drops whole partitions (41_partitions.sql): no trigger
 * fires for that.
 */
/* trigger stage._landing_guard: landing rows are never updated or deleted */
PG_FUNCTION_INFO_V1(stage_landing_guard);
Datum
stage_landing_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "stage._landing_guard called outside a trigger");
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("landing table \"%s\" is append-only",
					RelationGetRelationName(td->tg_relation)),
			 errdetail("Landing rows are never updated or deleted, so every batch can be replayed."),
			 errhint("Rows leave landing through retention only, after their batch is finished.")));
	return PointerGetDatum(NULL);
}

/*
 * stage._purge_landing of the 0.1 and 0.2 scripts, which deleted landing
 * rows; 0.3 drops partitions in plpgsql (41_partitions.sql).  The symbol
 * stays so that those scripts still install (to be updated): it only
 * asks for the update.
 */
PG_FUNCTION_INFO_V1(stage_purge_landing);
Datum
stage_purge_landing(PG_FUNCTION_ARGS)
{
	guard_require_update();
	PG_RETURN_INT64(0);
}

/*
 * What the views show of a pipeline's landing partitions and retention,
 * for a caller who may see the pipeline (else NULL): the internal SQL
 * functions run as the catalog owner, who may read the landing table and
 * the catalog; the caller may not.
 *
 * stage._retention_state_for(pipeline_id): oldest_landing_age and
 * retention_compliance (stage._retention_state).
 * stage._partition_rows_for(pipeline_id, partition): the rows of one of
 * its partitions (stage._partition_rows).
 */
static bool
landing_visible(int32 pipeline_id, Oid caller)
{
	Oid			type = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);
	bool		isnull;

	if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM stage.pipeline"
							  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "stage: could not read stage.pipeline");
	return SPI_processed == 1 &&
		guard_may_see_as(caller, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc, 1, &isnull)));
}

PG_FUNCTION_INFO_V1(stage_retention_state_for);
Datum
stage_retention_state_for(PG_FUNCTION_ARGS)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	Oid			caller = stage_caller();
	TupleDesc	desc;
	GuardSwitch gs;
	Datum		values[2] = {0, 0};
	bool		nulls[2] = {true, true};
	volatile bool visible = false;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "stage._retention_state_for must return a record");
	desc = BlessTupleDesc(desc);
	guard_push_catalog(&gs);
	PG_TRY();
	{
		Oid			type = INT4OID;
		Datum		arg = Int32GetDatum(pipeline_id);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (landing_visible(pipeline_id, caller))
		{
			visible = true;
			if (SPI_execute_with_args("SELECT oldest_landing_age, retention_compliance"
									  " FROM stage._retention_state($1)",
									  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "stage: could not read the retention state");
			values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &nulls[0]);
			values[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &nulls[1]);
			/* out of SPI's memory: an interval is by reference */
			if (!nulls[0])
				values[0] = SPI_datumTransfer(values[0], false, sizeof(Interval));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	if (!visible)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(stage_partition_rows_for);
Datum
stage_partition_rows_for(PG_FUNCTION_ARGS)
{
	int32		pipeline_id = PG_GETARG_INT32(0);
	Oid			part = PG_GETARG_OID(1);
	Oid			caller = stage_caller();
	GuardSwitch gs;
	volatile int64 rows = -1;

	guard_push_catalog(&gs);
	PG_TRY();
	{
		Oid			types[2] = {INT4OID, OIDOID};
		Datum		args[2] = {Int32GetDatum(pipeline_id), ObjectIdGetDatum(part)};
		bool		isnull;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* one of the pipeline's partitions, nothing else */
		if (landing_visible(pipeline_id, caller) &&
			SPI_execute_with_args("SELECT stage._partition_rows(lp.partition) FROM stage.landing_partition lp"
								  " WHERE lp.pipeline_id OPERATOR(pg_catalog.=) $1"
								  " AND lp.partition OPERATOR(pg_catalog.=) $2::pg_catalog.regclass",
								  2, types, args, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	PG_FINALLY();
	{
		guard_pop(&gs);
	}
	PG_END_TRY();
	if (rows < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(rows);
}
