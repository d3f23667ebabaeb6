/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Who stage acts for, the gate of its SQL API, and the one entry/exit
 *	  of every path that runs a pipeline owner's code.
 *
 * The catalog.  Only the extension's owner (the role that ran CREATE
 * EXTENSION, the owner of stage.pipeline: the "catalog owner") reads or
 * writes stage's tables.  Nobody else holds any privilege on them, so
 * nobody can plant a mask, a batch or a statistic: every change goes
 * through the API, which checks and writes.
 *
 * The gate.  Each function of the SQL API that changes or reads the
 * catalog (stage.add_rule, stage.create_pipeline, ...) is declared as
 * LANGUAGE c 'stage_api'.  The gate notes who called (stage_caller), pins
 * search_path, becomes the catalog owner and calls the implementation
 * stage._do_<name>, which only the catalog owner may execute.  The
 * implementation decides what the caller may do with stage._owns() and
 * stage._may_see(), which test the role the gate noted, never the catalog
 * owner it runs as.  GUC changes made inside are discarded on the way out.
 *
 * Owner code.  The target's triggers, defaults, constraints and domains,
 * expression rules, reference lookups: all of it is the pipeline owner's
 * code, and it runs when a superuser, pg_cron or a worker starts a batch.
 * guard_enter is the one way in: it refuses to enter a pipeline this
 * backend is already inside (a trigger that starts a batch of its own
 * pipeline), pins search_path in a new GUC nest level, turns plan logging
 * (auto_explain) off, and switches to the owner in a security-restricted
 * context, as VACUUM does for a table's owner.  guard_leave switches back
 * and *discards* every GUC change made inside (AtEOXact_GUC(false)), so a
 * set_config() in a trigger never outlives the batch.  On error the
 * transaction's abort restores the user and the settings, and the
 * (sub)transaction callbacks forget the entry.
 *
 * Inside an entry, stage's own bookkeeping (batches, quarantine, window)
 * runs as the catalog owner for one statement at a time (catalog_exec),
 * with search_path pinned again: owner code may have changed it.
 *
 * Touches the user identity, the security context and the GUC nest level
 * of the backend, always restored on the way out (or by the abort).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "guard.h"

/* the caller the innermost gate noted, and how many gates are open */
static Oid	api_caller = InvalidOid;
static int	api_depth = 0;

/* pipelines this backend is inside, with the transaction nest level */
#define GUARD_MAX_ACTIVE 64
typedef struct ActiveEntry
{
	int			pipeline_id;
	int			xact_nest;
} ActiveEntry;
static ActiveEntry active[GUARD_MAX_ACTIVE];
static int	nactive = 0;
static bool callbacks_registered = false;

/* ----------------------------------------------------------------
 *		who
 * ---------------------------------------------------------------- */

/* the owner of stage.pipeline: the role stage's catalog belongs to */
Oid
guard_catalog_owner(void)
{
	Oid			nsp = get_namespace_oid("stage", false);
	Oid			relid = get_relname_relid("pipeline", nsp);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation stage.pipeline");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The role stage acts for: inside a gate and still running as the
 * catalog owner, whoever called the gate; otherwise the current user
 * (also when owner code runs inside a gate: then it is the owner).
 */
Oid
stage_caller(void)
{
	if (api_depth > 0 && GetUserId() == guard_catalog_owner())
		return api_caller;
	return GetUserId();
}

/* may the caller act for a pipeline of this owner (member or superuser)? */
bool
guard_owns(Oid owner)
{
	return is_member_of_role(stage_caller(), owner);
}

/* is role a member of stage_analyst (masked quarantine of every pipeline)? */
bool
guard_is_analyst(Oid role)
{
	Oid			analyst = get_role_oid("stage_analyst", true);

	return OidIsValid(analyst) && has_privs_of_role(role, analyst);
}

/* may this role see the outcomes (history, quarantine masked) of a pipeline? */
bool
guard_may_see_as(Oid role, Oid owner)
{
	return is_member_of_role(role, owner) || guard_is_analyst(role);
}

/* may the caller see them? */
bool
guard_may_see(Oid owner)
{
	return guard_may_see_as(stage_caller(), owner);
}

/* ----------------------------------------------------------------
 *		settings
 * ---------------------------------------------------------------- */

/*
 * A new GUC nest level with search_path pinned and plan logging off; the
 * caller ends it with AtEOXact_GUC(false, level), which discards every
 * change made at or above it.  auto_explain would log plans with the
 * values of their parameters (raw rows among them) at any depth.
 */
static int
guard_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (GetConfigOption("auto_explain.log_min_duration", true, false) != NULL)
		(void) set_config_option("auto_explain.log_min_duration", "-1",
								 PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* ----------------------------------------------------------------
 *		short switches of identity
 * ---------------------------------------------------------------- */

/* become role, security-restricted, search_path pinned, until guard_pop */
void
guard_push_role(GuardSwitch *s, Oid role)
{
	s->nestlevel = guard_pin_search_path();
	GetUserIdAndSecContext(&s->save_userid, &s->save_sec);
	SetUserIdAndSecContext(role, s->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* become the catalog owner for stage's own statements */
void
guard_push_catalog(GuardSwitch *s)
{
	guard_push_role(s, guard_catalog_owner());
}

/* undo guard_push_role/_catalog: identity back, GUC changes discarded */
void
guard_pop(GuardSwitch *s)
{
	SetUserIdAndSecContext(s->save_userid, s->save_sec);
	AtEOXact_GUC(false, s->nestlevel);
}

/*
 * One of stage's own statements (fully qualified, $n parameters) as the
 * catalog owner; rc must be expect.  SPI must be connected.
 */
void
catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
			 const char *nulls, int expect)
{
	GuardSwitch s;
	int			rc;

	guard_push_catalog(&s);
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	guard_pop(&s);
	if (rc != expect)
		elog(ERROR, "stage: catalog statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* ----------------------------------------------------------------
 *		entry and exit
 * ---------------------------------------------------------------- */

/* forget the entries made at transaction nest level xact_nest or deeper */
static void
guard_forget_from(int xact_nest)
{
	while (nactive > 0 && active[nactive - 1].xact_nest >= xact_nest)
		nactive--;
}

/* at the end of a transaction no entry and no gate is open */
static void
guard_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	nactive = 0;
	api_depth = 0;
	api_caller = InvalidOid;
}

/* an aborted subtransaction forgets the entries made inside it */
static void
guard_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		guard_forget_from(GetCurrentTransactionNestLevel());
}

/* is this backend inside pipeline_id now (a batch, replay or check)? */
static bool
guard_active(int pipeline_id)
{
	int			i;

	for (i = 0; i < nactive; i++)
		if (active[i].pipeline_id == pipeline_id)
			return true;
	return false;
}

/* refuse what would change a pipeline this backend is inside */
void
guard_check_idle(int pipeline_id, const char *name)
{
	if (guard_active(pipeline_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("pipeline \"%s\" is being processed by this session", name),
				 errdetail("Code that runs inside a batch, replay or check of a pipeline (a trigger on its target, an expression rule, a lookup) cannot start another one of the same pipeline or change its contract."),
				 errhint("Change the contract or run the batch from outside, after this one has finished.")));
}

/*
 * Enter a pipeline to run its owner's code: see the file header.  The
 * caller has checked that stage_caller() may do what it asked.
 */
void
guard_enter(Guard *g, int pipeline_id, const char *name, Oid owner)
{
	guard_check_idle(pipeline_id, name);
	if (nactive >= GUARD_MAX_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many nested pipeline runs in one session")));
	if (!callbacks_registered)
	{
		RegisterXactCallback(guard_xact_callback, NULL);
		RegisterSubXactCallback(guard_subxact_callback, NULL);
		callbacks_registered = true;
	}
	g->pipeline_id = pipeline_id;
	g->owner = owner;
	g->nestlevel = guard_pin_search_path();
	GetUserIdAndSecContext(&g->save_userid, &g->save_sec);
	SetUserIdAndSecContext(owner, g->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	active[nactive].pipeline_id = pipeline_id;
	active[nactive].xact_nest = GetCurrentTransactionNestLevel();
	nactive++;
	g->entered = true;
}

/* leave what guard_enter entered: identity back, GUC changes discarded */
void
guard_leave(Guard *g)
{
	int			i;

	if (!g->entered)
		return;
	SetUserIdAndSecContext(g->save_userid, g->save_sec);
	AtEOXact_GUC(false, g->nestlevel);
	for (i = nactive - 1; i >= 0; i--)
		if (active[i].pipeline_id == g->pipeline_id)
		{
			memmove(&active[i], &active[i + 1], sizeof(ActiveEntry) * (nactive - i - 1));
			nactive--;
			break;
		}
	g->entered = false;
}

/* ----------------------------------------------------------------
 *		the gate
 * ---------------------------------------------------------------- */

typedef struct ApiCache
{
	FmgrInfo	impl;
} ApiCache;

/* the implementation stage._do_<name> of the API function being called */
static ApiCache *
api_lookup(FunctionCallInfo fcinfo)
{
	ApiCache   *c = (ApiCache *) fcinfo->flinfo->fn_extra;
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid			impl;
	char	   *implname;

	if (c != NULL)
		return c;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	implname = psprintf("_do_%s", NameStr(proc->proname));
	impl = LookupFuncName(list_make2(makeString("stage"), makeString(implname)),
						  proc->pronargs, proc->proargtypes.values, false);
	ReleaseSysCache(tup);
	c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ApiCache));
	fmgr_info_cxt(impl, &c->impl, fcinfo->flinfo->fn_mcxt);
	fcinfo->flinfo->fn_extra = c;
	return c;
}

/*
 * The SQL objects this library serves: an installation whose SQL is older
 * (its ALTER EXTENSION UPDATE not yet run) would call objects that are not
 * there or misread ones that changed.  Checked once per backend, at the
 * first gate; CREATE and ALTER EXTENSION themselves pass.
 */
#define STAGE_SQL_VERSION "0.3"

static void
guard_check_sql_version(void)
{
	static bool checked = false;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	if (checked || creating_extension)
		return;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("stage"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (version != NULL && strcmp(version, STAGE_SQL_VERSION) != 0)
		guard_require_update();
	checked = true;
}

/* the gate: every SQL API function is LANGUAGE c 'stage_api' (see above) */
PG_FUNCTION_INFO_V1(stage_api);
Datum
stage_api(PG_FUNCTION_ARGS)
{
	ApiCache   *c = api_lookup(fcinfo);
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	Oid			caller = stage_caller();
	Oid			save_caller = api_caller;
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
	Datum		result;
	int			i;

	guard_check_sql_version();
	InitFunctionCallInfoData(*inner, &c->impl, PG_NARGS(), PG_GET_COLLATION(),
							 fcinfo->context, fcinfo->resultinfo);
	for (i = 0; i < PG_NARGS(); i++)
		inner->args[i] = fcinfo->args[i];

	nestlevel = guard_pin_search_path();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(guard_catalog_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	api_caller = caller;
	api_depth++;
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		api_caller = save_caller;
		api_depth--;
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec);
	AtEOXact_GUC(false, nestlevel);
	fcinfo->isnull = inner->isnull;
	return result;
}

/* stage._caller(): the role the gate acts for */
PG_FUNCTION_INFO_V1(stage_caller_sql);
Datum
stage_caller_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(stage_caller());
}

/* stage._owns(owner regrole): may the caller act for this owner? */
PG_FUNCTION_INFO_V1(stage_owns_sql);
Datum
stage_owns_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(guard_owns(PG_GETARG_OID(0)));
}

/* stage._may_see(owner regrole): may the caller see a pipeline's outcomes? */
PG_FUNCTION_INFO_V1(stage_may_see_sql);
Datum
stage_may_see_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(guard_may_see(PG_GETARG_OID(0)));
}

/* stage._check_idle(pipeline_id, name): error if this backend is inside it */
PG_FUNCTION_INFO_V1(stage_check_idle);
Datum
stage_check_idle(PG_FUNCTION_ARGS)
{
	guard_check_idle(PG_GETARG_INT32(0), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/*
 * Entry points of earlier versions' SQL that this library no longer
 * serves: an installation keeps its SQL objects until ALTER EXTENSION
 * UPDATE, which replaces or drops them.  They refuse to run instead of
 * misreading their arguments.
 */
void
guard_require_update(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("the SQL objects of extension \"stage\" are older than its library"),
			 errhint("Run ALTER EXTENSION stage UPDATE.")));
}

/* 0.1: the trigger that granted raw quarantine columns to owner roles */
PG_FUNCTION_INFO_V1(stage_raw_access);
Datum
stage_raw_access(PG_FUNCTION_ARGS)
{
	guard_require_update();
	PG_RETURN_NULL();
}
