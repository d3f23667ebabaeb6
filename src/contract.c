/*-------------------------------------------------------------------------
 *
 * contract.c
 *	  Load a pipeline's contract (rules, masks, key, policies) from the
 *	  catalog and compile it into a RuleProgram: column positions, type
 *	  input/output functions, parsed rule arguments, compiled regexes, hash
 *	  keys, and the SQL text of the chunk read and the bulk write.
 *
 * Programs are cached per backend by pipeline id and reused while the
 * pipeline's contract_version is unchanged, so the per-row path never
 * touches the catalog.  A relcache invalidation of a program's target or
 * landing table (ALTER TABLE) marks it stale; it is rebuilt on next use.
 * Each program owns one memory context; dropping it frees everything.
 *
 * Also here: the validators behind stage.add_rule/stage.add_mask, which
 * compile a single rule or mask with the same code and throw it away, so a
 * rule that cannot run is refused when it is declared.
 *
 * Touches, as the catalog owner: stage.pipeline, stage.mask and
 * stage.rule (reads); the target and landing tables (relcache only).
 * JSON arguments are read with jsonarg.c, masks compiled by
 * mask_contract.c, secrets loaded there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/genam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/regproc.h"
#include <limits.h>
#include "executor/spi.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "common/keywords.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "contract.h"
#include "expression.h"
#include "transform_contract.h"
#include "direct.h"
#include "format.h"
#include "guard.h"
#include "jsonarg.h"
#include "mask_contract.h"
#include "pii.h"
#include "regex.h"
#include "typecheck.h"

/* ----------------------------------------------------------------
 *		columns and rules
 * ---------------------------------------------------------------- */

/* the column of a compiled contract: type, input/output functions, flags */
static void
column_init(StageColumn *col, Relation rel, AttrNumber attnum)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	Oid			func;
	int32		basetypmod = att->atttypmod;
	Oid			basetype = getBaseTypeAndTypmod(att->atttypid, &basetypmod);
	TypeCacheEntry *tce;

	memset(col, 0, sizeof(StageColumn));
	col->name = pstrdup(NameStr(att->attname));
	col->attnum = att->attnum;
	col->is_domain = (basetype != att->atttypid);
	col->typid = att->atttypid;
	col->typmod = att->atttypmod;
	col->collation = att->attcollation;
	/* domains carry constraints only their input function checks */
	col->tclass = (basetype == att->atttypid) ?
		tc_classify(att->atttypid, att->atttypmod) : TC_OTHER;
	/* TYPEMOD_GIVEN: a bare "character" would mean character(1) */
	col->cast_type = format_type_extended(att->atttypid, -1,
										  FORMAT_TYPE_FORCE_QUALIFY |
										  FORMAT_TYPE_TYPEMOD_GIVEN);

	getTypeInputInfo(att->atttypid, &func, &col->ioparam);
	fmgr_info(func, &col->infunc);
	getTypeInputInfo(basetype, &func, &col->range_ioparam);
	fmgr_info(func, &col->range_infunc);
	getTypeOutputInfo(att->atttypid, &func, &col->is_key);
	fmgr_info(func, &col->outfunc);
	col->is_key = false;

	col->required = att->attnotnull;
	switch (basetype)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			col->json_type = "number";
			break;
		case BOOLOID:
			col->json_type = "boolean";
			break;
		case JSONOID:
		case JSONBOID:
			col->json_type = NULL;	/* anything */
			break;
		default:
			col->json_type = "string";
	}

	tce = lookup_type_cache(basetype, TYPECACHE_CMP_PROC_FINFO);
	if (OidIsValid(tce->cmp_proc_finfo.fn_oid))
		fmgr_info_copy(&col->cmpfunc, &tce->cmp_proc_finfo, CurrentMemoryContext);
}

/* can a range rule compare values of this type (numbers, dates, times)? */
static bool
rule_range_type(Oid typid)
{
	switch (getBaseType(typid))
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TIMEOID:
			return true;
		default:
			return false;
	}
}

/* qsort/bsearch comparator of C strings, for the values of an enum rule */
static int
rule_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static const char *const rule_no_keys[] = {NULL};
static const char *const rule_range_keys[] = {"min", "max", NULL};
static const char *const rule_enum_keys[] = {"values", NULL};
static const char *const rule_regex_keys[] = {"pattern", "flags", NULL};
static const char *const rule_length_keys[] = {"min", "max", NULL};
static const char *const rule_format_keys[] = {"format", NULL};
static const char *const rule_no_pii_keys[] = {"kinds", NULL};
static const char *const rule_json_keys[] = {"required", "types", NULL};
static const char *const rule_reference_keys[] = {"table", "column", NULL};
static const char *const rule_expression_keys[] = {"sql", NULL};

/* an expression rule: its columns and statement, prepared once to check it */
static void
rule_check_expression(StageRule *r, Relation rel)
{
	r->expr_cols = expr_columns(r->expr, rel, "rule");
	r->expr_sql = expr_sql(r->expr, r->expr_cols, rel, true);
	expr_prepare(r->expr_sql, list_length(r->expr_cols), r->expr, "rule",
								"An expression is a boolean condition on one row, over its columns; aggregates, window and set-returning functions are not allowed, and functions outside pg_catalog must be schema-qualified.");
}

/* "a.b.c" -> {"a","b","c"} and "$.a.b.c" */
static void
rule_json_path(JsonCheck *c, const char *path)
{
	char	   *copy = pstrdup(path);
	char	   *tok;
	char	   *save = NULL;
	int			cap = 8;

	if (strncmp(copy, "$.", 2) == 0)
		copy += 2;
	c->path = palloc(sizeof(char *) * cap);
	c->npath = 0;
	for (tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
	{
		if (c->npath == cap)
		{
			cap *= 2;
			c->path = repalloc(c->path, sizeof(char *) * cap);
		}
		c->path[c->npath++] = tok;
	}
	if (c->npath == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("empty JSON path \"%s\" in rule json", path),
				 errhint("Paths name keys from the top, separated by dots, e.g. \"customer.id\".")));
	c->path_text = psprintf("$.%s", strncmp(path, "$.", 2) == 0 ? path + 2 : path);
}

/* the check of path already in r ("a.b" and "$.a.b" alike), or NULL */
static JsonCheck *
rule_json_find(StageRule *r, const char *path)
{
	int			i;
	char	   *want = psprintf("$.%s", strncmp(path, "$.", 2) == 0 ? path + 2 : path);

	for (i = 0; i < r->njson; i++)
		if (strcmp(r->json[i].path_text, want) == 0)
			return &r->json[i];
	return NULL;
}

/* {"required": ["a", "b.c"], "types": {"a": "string", "b.c": "number"}} */
static void
rule_compile_json(StageRule *r, Jsonb *args)
{
	JsonbValue	v;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	e;
	int			cap = 0;

	if (json_get(args, "required", &v))
	{
		if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"required\" of rule json must be an array of paths")));
		cap += JsonContainerSize(v.val.binary.data);
	}
	if (json_get(args, "types", &v))
	{
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"types\" of rule json must be an object of path: type")));
		cap += JsonContainerSize(v.val.binary.data);
	}
	if (cap == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rule json needs \"required\", \"types\" or both"),
				 errhint("For example '{\"required\": [\"id\"], \"types\": {\"id\": \"number\"}}'.")));
	r->json = palloc0(sizeof(JsonCheck) * cap);
	if (json_get(args, "required", &v))
	{
		it = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
			{
				JsonCheck  *c = &r->json[r->njson++];

				if (e.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("paths in \"required\" of rule json must be strings")));
				rule_json_path(c, pnstrdup(e.val.string.val, e.val.string.len));
				c->required = true;
			}
	}
	if (json_get(args, "types", &v))
	{
		char	   *key = NULL;

		it = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				key = pnstrdup(e.val.string.val, e.val.string.len);
			else if (tok == WJB_VALUE)
			{
				char	   *t;
				JsonCheck  *c;

				if (e.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("type of \"%s\" in rule json must be a string", key)));
				t = pnstrdup(e.val.string.val, e.val.string.len);
				if (strcmp(t, "string") != 0 && strcmp(t, "number") != 0 &&
					strcmp(t, "boolean") != 0 && strcmp(t, "object") != 0 &&
					strcmp(t, "array") != 0 && strcmp(t, "null") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown JSON type \"%s\" for \"%s\" in rule json", t, key),
							 errhint("Valid types are string, number, boolean, object, array and null.")));
				c = rule_json_find(r, key);
				if (c == NULL)
				{
					c = &r->json[r->njson++];
					rule_json_path(c, key);
				}
				c->type = t;
			}
		}
	}
}

/*
 * {"table": "schema.table", "column": "col"}: resolve the table now, check
 * the caller may read it, and prepare the set-wise lookup so a mismatch of
 * types is refused when the rule is added.
 */
static void
rule_compile_reference(StageRule *r, StageColumn *col, Jsonb *args)
{
	char	   *table = json_get_string(args, "table", "rule reference", NULL);
	char	   *column = json_get_string(args, "column", "rule reference", NULL);
	List	   *names;
	Oid			relid;
	Relation	rel;
	AclResult	aclresult;
	Oid			argtype = TEXTARRAYOID;
	SPIPlanPtr	plan;

	if (table == NULL || column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rule reference needs \"table\" and \"column\""),
				 errhint("For example '{\"table\": \"public.customers\", \"column\": \"id\"}'.")));
	names = stringToQualifiedNameList(table);
	if (list_length(names) < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table of rule reference must be schema-qualified: \"%s\"", table),
				 errhint("Write \"public.%s\" or the table's own schema: rules run with a fixed search_path.", table)));
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, false);
	rel = relation_open(relid, NoLock);
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table \"%s\" of rule reference is temporary", table),
				 errhint("Other sessions, the worker among them, cannot see it; reference a permanent table.")));
	if (attnameAttNum(rel, column, false) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist", column, table),
				 errhint("The reference names a column of the referenced table.")));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, RelationGetRelationName(rel));
	r->ref_name = psprintf("%s.%s", quote_qualified_identifier(
													 get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel)),
						   quote_identifier(column));
	r->ref_sql = psprintf("SELECT DISTINCT u.v FROM pg_catalog.unnest($1) AS u(v)"
						  " WHERE EXISTS (SELECT 1 FROM %s r WHERE r.%s OPERATOR(pg_catalog.=) CAST(u.v AS %s))",
						  quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel)),
						  quote_identifier(column), col->cast_type);
	relation_close(rel, NoLock);

	/* refuse now what could never run: incomparable types */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(r->ref_sql, 1, &argtype);
	if (plan == NULL)
		elog(ERROR, "stage: could not prepare reference lookup");
	SPI_freeplan(plan);
	SPI_finish();
}

/*
 * Parse kind and args for a rule on col into r (in CurrentMemoryContext).
 * Every argument error is an ERROR with errcode and hint.
 */
static void
rule_compile(StageRule *r, StageColumn *col, const char *kind, Jsonb *args,
			 Relation rel)
{
	JsonbValue	v;

	r->checked = r->failed = 0;
	if (strcmp(kind, "not_null") == 0)
	{
		r->kind = RULE_NOT_NULL;
		r->kind_name = "not_null";
		json_check_keys(args, "rule not_null", rule_no_keys);
	}
	else if (strcmp(kind, "range") == 0)
	{
		r->kind = RULE_RANGE;
		r->kind_name = "range";
		json_check_keys(args, "rule range", rule_range_keys);
		if (!rule_range_type(col->typid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("rule range does not apply to column \"%s\" of type %s",
							col->name, format_type_be(col->typid)),
					 errhint("range applies to numbers, dates, times and timestamps; use length for text.")));
		if (json_get(args, "min", &v))
		{
			r->min_text = json_scalar_text(&v, "min", "rule range");
			r->min = InputFunctionCall(&col->range_infunc, r->min_text,
									   col->range_ioparam, -1);
			r->has_min = true;
		}
		if (json_get(args, "max", &v))
		{
			r->max_text = json_scalar_text(&v, "max", "rule range");
			r->max = InputFunctionCall(&col->range_infunc, r->max_text,
									   col->range_ioparam, -1);
			r->has_max = true;
		}
		if (!r->has_min && !r->has_max)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule range needs \"min\", \"max\" or both"),
					 errhint("For example '{\"min\": 0, \"max\": 100}'.")));
		if (r->has_min && r->has_max &&
			DatumGetInt32(FunctionCall2Coll(&col->cmpfunc, col->collation,
											r->min, r->max)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule range has min %s greater than max %s",
							r->min_text, r->max_text)));
	}
	else if (strcmp(kind, "enum") == 0)
	{
		JsonbIterator *it;
		JsonbIteratorToken tok;
		JsonbValue	e;
		int			n = 0;
		int			cap;

		r->kind = RULE_ENUM;
		r->kind_name = "enum";
		json_check_keys(args, "rule enum", rule_enum_keys);
		if (!json_get(args, "values", &v) || v.type != jbvBinary ||
			!JsonContainerIsArray(v.val.binary.data) ||
			JsonContainerSize(v.val.binary.data) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule enum needs \"values\", a non-empty array"),
					 errhint("For example '{\"values\": [\"USD\", \"EUR\"]}'.")));
		cap = JsonContainerSize(v.val.binary.data);
		r->values = palloc(sizeof(char *) * cap);
		it = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				r->values[n++] = json_scalar_text(&e, "values", "rule enum");
		r->nvalues = n;
		qsort(r->values, n, sizeof(char *), rule_strcmp);
		{
			JsonbValue	whole;

			(void) json_get(args, "values", &whole);
			r->values_text = JsonbToCString(NULL, whole.val.binary.data,
											whole.val.binary.len);
		}
	}
	else if (strcmp(kind, "regex") == 0)
	{
		char	   *flags;

		r->kind = RULE_REGEX;
		r->kind_name = "regex";
		json_check_keys(args, "rule regex", rule_regex_keys);
		r->pattern = json_get_string(args, "pattern", "rule regex", NULL);
		if (r->pattern == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule regex needs \"pattern\""),
					 errhint("For example '{\"pattern\": \"^[A-Z]{3}$\", \"flags\": \"i\"}'.")));
		flags = json_get_string(args, "flags", "rule regex", "");
		r->rx = rx_compile(r->pattern, flags);
	}
	else if (strcmp(kind, "length") == 0)
	{
		r->kind = RULE_LENGTH;
		r->kind_name = "length";
		json_check_keys(args, "rule length", rule_length_keys);
		r->min_len = json_get_int(args, "min", "rule length", -1, 0, INT_MAX);
		r->max_len = json_get_int(args, "max", "rule length", -1, 0, INT_MAX);
		if (r->min_len < 0 && r->max_len < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule length needs \"min\", \"max\" or both"),
					 errhint("Lengths count characters, e.g. '{\"min\": 1, \"max\": 80}'.")));
		if (r->min_len >= 0 && r->max_len >= 0 && r->min_len > r->max_len)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule length has min %d greater than max %d",
							r->min_len, r->max_len)));
	}
	else if (strcmp(kind, "format") == 0)
	{
		char	   *f;

		r->kind = RULE_FORMAT;
		r->kind_name = "format";
		json_check_keys(args, "rule format", rule_format_keys);
		f = json_get_string(args, "format", "rule format", NULL);
		if (f == NULL || !format_lookup(f, &r->format))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 f ? errmsg("unknown format \"%s\"", f) :
					 errmsg("rule format needs \"format\""),
					 errhint("Valid formats are email, uuid, e164, card, iban, ipv4, ipv6, iso_date, iso_timestamp and url.")));
	}
	else if (strcmp(kind, "no_pii") == 0)
	{
		r->kind = RULE_NO_PII;
		r->kind_name = "no_pii";
		json_check_keys(args, "rule no_pii", rule_no_pii_keys);
		r->pii_kinds = pii_kinds_arg(args, "rule no_pii");
	}
	else if (strcmp(kind, "json") == 0)
	{
		r->kind = RULE_JSON;
		r->kind_name = "json";
		json_check_keys(args, "rule json", rule_json_keys);
		if (getBaseType(col->typid) != JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("rule json does not apply to column \"%s\" of type %s",
							col->name, format_type_be(col->typid)),
					 errhint("json applies to jsonb columns.")));
		rule_compile_json(r, args);
	}
	else if (strcmp(kind, "reference") == 0)
	{
		r->kind = RULE_REFERENCE;
		r->kind_name = "reference";
		json_check_keys(args, "rule reference", rule_reference_keys);
		rule_compile_reference(r, col, args);
	}
	else if (strcmp(kind, "expression") == 0)
	{
		r->kind = RULE_EXPRESSION;
		r->kind_name = "expression";
		json_check_keys(args, "rule expression", rule_expression_keys);
		r->expr = json_get_string(args, "sql", "rule expression", NULL);
		if (r->expr == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rule expression needs \"sql\""),
					 errhint("For example '{\"sql\": \"shipped_at >= ordered_at\"}'.")));
		rule_check_expression(r, rel);
	}
	else if (strcmp(kind, "unique") == 0)
	{
		r->kind = RULE_UNIQUE;
		r->kind_name = "unique";
		json_check_keys(args, "rule unique", rule_no_keys);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown rule kind \"%s\"", kind),
				 errhint("Valid kinds are not_null, range, length, enum, regex, format, unique, reference, json, no_pii and expression.")));
}

/* open the target and find a column usable by a rule or mask */
static AttrNumber
contract_find_column(Relation rel, const char *column_name)
{
	AttrNumber	attnum;
	Form_pg_attribute att;

	if (column_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column name must not be null")));
	attnum = attnameAttNum(rel, column_name, false);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist",
						column_name, RelationGetRelationName(rel)),
				 errhint("Rules and masks name columns of the pipeline's target table.")));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	if (att->attgenerated || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("column \"%s\" is generated and never comes from landing",
						column_name)));
	return attnum;
}

/*
 * stage._validate_rule(target, column, kind, args, owner): compile a rule
 * as the mover would and throw it away, so add_rule refuses what cannot run.
 */
PG_FUNCTION_INFO_V1(stage_validate_rule);
Datum
stage_validate_rule(PG_FUNCTION_ARGS)
{
	Oid			target;
	Relation	rel;
	StageColumn col;
	StageRule	r;
	GuardSwitch gs;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rule kind must not be null"),
				 errhint("Valid kinds are not_null, range, length, enum, regex, format, unique, reference, json, no_pii and expression.")));
	if (PG_NARGS() < 5)
		guard_require_update();
	target = PG_GETARG_OID(0);
	rel = relation_open(target, AccessShareLock);
	column_init(&col, rel, contract_find_column(rel, PG_ARGISNULL(1) ? NULL :
												text_to_cstring(PG_GETARG_TEXT_PP(1))));
	memset(&r, 0, sizeof(r));

	/*
	 * Compiling plans the expression or lookup: as the pipeline's owner,
	 * restricted, like a batch (planning may run its functions), and with
	 * the owner's privileges on a referenced table.
	 */
	guard_push_role(&gs, PG_GETARG_OID(4));
	rule_compile(&r, &col, text_to_cstring(PG_GETARG_TEXT_PP(2)),
				 PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), rel);
	guard_pop(&gs);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}

/* is the type (or a domain over it) text, varchar or bpchar? */
static bool
contract_text_type(Oid typid)
{
	Oid			base = getBaseType(typid);

	return base == TEXTOID || base == VARCHAROID || base == BPCHAROID;
}

/*
 * stage._validate_mask(target, column, method, args, owner): parse a mask,
 * load its key for the owner and check it writes the column's type.
 */
PG_FUNCTION_INFO_V1(stage_validate_mask);
Datum
stage_validate_mask(PG_FUNCTION_ARGS)
{
	Oid			target;
	Relation	rel;
	StageColumn col;
	StageMask	m;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("mask method must not be null"),
				 errhint("Valid methods are hash, pseudonym, partial, email, phone, card, redact, redact_pii, null, constant, generalize, noise and tokenize.")));
	if (PG_NARGS() < 5)
		guard_require_update();
	target = PG_GETARG_OID(0);
	rel = relation_open(target, AccessShareLock);
	column_init(&col, rel, contract_find_column(rel, PG_ARGISNULL(1) ? NULL :
												text_to_cstring(PG_GETARG_TEXT_PP(1))));
	mask_parse(&m, text_to_cstring(PG_GETARG_TEXT_PP(2)),
			   PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	/* refuse now a secret that is missing or that the owner may not use */
	mask_load_key(&m, PG_GETARG_OID(4));
	if (mask_needs_text(&m) && !contract_text_type(col.typid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("mask \"%s\" writes text, but column \"%s\" is of type %s",
						text_to_cstring(PG_GETARG_TEXT_PP(2)), col.name,
						format_type_be(col.typid)),
				 errhint("Mask text columns, or use the null mask.")));
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}

/* ----------------------------------------------------------------
 *		the program cache
 * ---------------------------------------------------------------- */

typedef struct ProgramCacheEntry
{
	int			pipeline_id;	/* hash key */
	RuleProgram *prog;
} ProgramCacheEntry;

static HTAB *program_cache = NULL;
static List *retired_programs = NIL;	/* in TopMemoryContext */

static void contract_xact_callback(XactEvent event, void *arg);

/* relcache callback: programs on relid's target or landing are stale */
static void
contract_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS st;
	ProgramCacheEntry *e;

	if (program_cache == NULL)
		return;
	hash_seq_init(&st, program_cache);
	while ((e = hash_seq_search(&st)) != NULL)
		if (e->prog && (relid == InvalidOid || relid == e->prog->target ||
						relid == e->prog->landing))
			e->prog->valid = false;
}

/* create the program cache and register its callbacks, once per backend */
static void
contract_cache_init(void)
{
	HASHCTL		ctl;

	if (program_cache)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int);
	ctl.entrysize = sizeof(ProgramCacheEntry);
	program_cache = hash_create("stage contract programs", 16, &ctl,
								HASH_ELEM | HASH_BLOBS);
	CacheRegisterRelcacheCallback(contract_invalidate, (Datum) 0);
	RegisterXactCallback(contract_xact_callback, NULL);
}

/* run a catalog query with one int4 argument, as the catalog owner */
static void
contract_query(const char *sql, int pipeline_id)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(pipeline_id);

	catalog_exec(sql, 1, &argtype, &arg, NULL, SPI_OK_SELECT);
}

/* a copy of column col of row row of the last SPI result, NULL for null */
static char *
contract_getstr(int row, int col)
{
	char	   *s = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return s ? pstrdup(s) : NULL;
}

/* the index in p->cols of the named column; ERROR when it is not one */
static int
contract_colindex(RuleProgram *p, const char *name)
{
	int			i;

	for (i = 0; i < p->ncols; i++)
		if (strcmp(p->cols[i].name, name) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" named by the contract of pipeline \"%s\" is not a landing column",
					name, p->name),
			 errhint("The target table may have changed since the rule was added; drop the rule or recreate the pipeline.")));
	return -1;
}

/*
 * Where the chunk reader finds things in the landing table: the columns of
 * its metadata and data, and the index on (_stage_txid, _stage_id) it walks
 * (landing DDL creates it; nobody else can drop it).
 */
static void
contract_landing_layout(RuleProgram *p, Relation lrel)
{
	List	   *indexes = RelationGetIndexList(lrel);
	ListCell   *lc;
	int			c;

	p->l_id = attnameAttNum(lrel, "_stage_id", false);
	p->l_txid = attnameAttNum(lrel, "_stage_txid", false);
	p->l_source = attnameAttNum(lrel, "_stage_source", false);
	p->l_received = attnameAttNum(lrel, "_stage_received_at", false);
	p->l_role = attnameAttNum(lrel, "_stage_role", false);
	p->l_payload = p->jsonb_format ? attnameAttNum(lrel, "payload", false) : InvalidAttrNumber;
	for (c = 0; c < p->ncols; c++)
		p->cols[c].landing_attnum = p->jsonb_format ? InvalidAttrNumber :
			attnameAttNum(lrel, p->cols[c].name, false);
	p->landing_index = InvalidOid;
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	irel = index_open(indexoid, AccessShareLock);
		Form_pg_index ind = irel->rd_index;

		if (ind->indnkeyatts == 2 && ind->indisvalid && irel->rd_rel->relam == BTREE_AM_OID &&
			ind->indkey.values[0] == p->l_txid && ind->indkey.values[1] == p->l_id &&
			RelationGetIndexPredicate(irel) == NIL && RelationGetIndexExpressions(irel) == NIL)
			p->landing_index = indexoid;
		index_close(irel, AccessShareLock);
	}
	list_free(indexes);
	if (p->l_id <= 0 || p->l_txid <= 0 || p->l_source <= 0 || p->l_received <= 0 ||
		p->l_role <= 0 || !OidIsValid(p->landing_index))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("landing table \"%s\" lacks its metadata columns or its index on (_stage_txid, _stage_id)",
						RelationGetRelationName(lrel)),
				 errhint("Landing tables are made by stage.create_pipeline; recreate the pipeline.")));
}

/*
 * Landing data columns nobody reads: no target column has their name (the
 * target's was dropped, or it was added for a transform that is gone) and
 * no transform takes them.  A value a producer still sends there would be
 * lost without a word: the batch counts the rows that have one as drift
 * (the pipeline's drift policy applies).
 */
static void
contract_unread_columns(RuleProgram *p, Relation lrel)
{
	TupleDesc	desc = RelationGetDescr(lrel);
	int			i;
	int			c;

	p->nunread = 0;
	p->unread_attnum = palloc(sizeof(AttrNumber) * Max(desc->natts, 1));
	p->unread_name = palloc(sizeof(char *) * Max(desc->natts, 1));
	if (p->jsonb_format)
		return;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		read = false;

		if (att->attisdropped || strncmp(NameStr(att->attname), "_stage_", 7) == 0)
			continue;
		for (c = 0; c < p->ncols && !read; c++)
			read = (p->cols[c].landing_attnum == att->attnum);
		for (c = 0; c < p->nextra && !read; c++)
			read = (p->extra_attnum[c] == att->attnum);
		if (read)
			continue;
		p->unread_attnum[p->nunread] = att->attnum;
		p->unread_name[p->nunread] = pstrdup(NameStr(att->attname));
		p->nunread++;
	}
}

/*
 * Build the bulk write: one INSERT over unnest() of one text[] per column
 * ($3...), casting each to the column's type so the target's own input
 * functions, typmods, constraints, triggers and partitioning apply.  $1 is
 * the landing ids (for a _stage_id lineage column), $2 the batch id.
 */
static char *
contract_build_insert(RuleProgram *p, const char *target, bool on_conflict)
{
	StringInfoData s;
	int			i;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s AS t (", target);
	for (i = 0; i < p->ncols; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", quote_identifier(p->cols[i].name));
	if (p->lineage_id)
		appendStringInfoString(&s, ", _stage_id");
	if (p->lineage_batch)
		appendStringInfoString(&s, ", _stage_batch");
	if (p->lineage_node)
		appendStringInfoString(&s, ", _stage_node");
	appendStringInfoString(&s, ") SELECT ");
	for (i = 0; i < p->ncols; i++)
		appendStringInfo(&s, "%sCAST(u.c%d AS %s)", i ? ", " : "", i, p->cols[i].cast_type);
	if (p->lineage_id)
		appendStringInfoString(&s, ", u.lid");
	if (p->lineage_batch)
		appendStringInfoString(&s, ", $2");
	if (p->lineage_node)
		appendStringInfoString(&s, ", (SELECT stage.node_name())");	/* once a statement */
	/*
	 * unnest() in the select list runs the arrays in lock-step through a
	 * ProjectSet node, streaming; in FROM each would be materialized.
	 */
	appendStringInfoString(&s, " FROM (SELECT pg_catalog.unnest($1) AS lid");
	for (i = 0; i < p->ncols; i++)
		appendStringInfo(&s, ", pg_catalog.unnest($%d) AS c%d", i + 3, i);
	appendStringInfoString(&s, ") AS u");

	if (on_conflict)
	{
		appendStringInfoString(&s, " ON CONFLICT (");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&s, "%s%s", i ? ", " : "",
							 quote_identifier(p->cols[p->keycols[i]].name));
		appendStringInfoChar(&s, ')');
		if (p->on_duplicate == ONDUP_UPDATE)
		{
			for (i = 0; i < p->ncols; i++)
			{
				const char *n;

				if (p->cols[i].is_key)
					continue;
				n = quote_identifier(p->cols[i].name);
				appendStringInfo(&s, "%s%s = EXCLUDED.%s",
								 first ? " DO UPDATE SET " : ", ", n, n);
				first = false;
			}
			if (!first && p->lineage_id)
				appendStringInfoString(&s, ", _stage_id = EXCLUDED._stage_id");
			if (!first && p->lineage_batch)
				appendStringInfoString(&s, ", _stage_batch = EXCLUDED._stage_batch");
			if (!first && p->lineage_node)
				appendStringInfoString(&s, ", _stage_node = EXCLUDED._stage_node");
		}
		if (first)
			appendStringInfoString(&s, " DO NOTHING");
		/* the keys actually written tell duplicates from new rows */
		if (p->on_duplicate != ONDUP_UPDATE)
		{
			appendStringInfoString(&s, " RETURNING ");
			for (i = 0; i < p->nkeys; i++)
				appendStringInfo(&s, "%st.%s", i ? ", " : "",
								 quote_identifier(p->cols[p->keycols[i]].name));
		}
	}
	return s.data;
}

/* every column an expression rule reads must come from landing */
static void
contract_build_expression(RuleProgram *p, StageRule *r)
{
	ListCell   *lc;

	/* every column it reads must come from landing */
	foreach(lc, r->expr_cols)
		(void) contract_colindex(p, (char *) lfirst(lc));
}

/* is att the lineage column name (of type typid)? then note its flag and attnum */
static bool
contract_is_lineage(Form_pg_attribute att, const char *name, Oid typid, bool *flag,
					AttrNumber *attnum)
{
	if (strcmp(NameStr(att->attname), name) != 0)
		return false;
	*attnum = att->attnum;
	if (att->atttypid != typid)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("lineage column \"%s\" of the target must be of type %s",
						name, format_type_be(typid))));
	*flag = true;
	return true;
}

/* compile the program of a pipeline, in a new memory context */
static RuleProgram *
contract_build(int pipeline_id, int version)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext,
											  "stage contract",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RuleProgram *p = palloc0(sizeof(RuleProgram));
	Relation	rel;
	Relation	lrel;
	TupleDesc	desc;
	int			i;
	char	   *on_dup;
	char	   *format;
	ArrayType  *keyarr = NULL;
	bool		isnull;

	p->cxt = cxt;
	p->pipeline_id = pipeline_id;
	p->version = version;

	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		contract_query("SELECT name, target::oid, landing::oid, format, on_duplicate, key,"
					   " COALESCE(max_reject_ratio, -1), drift, owner::oid"
					   " FROM stage.pipeline WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
					   pipeline_id);
		if (SPI_processed != 1)
			elog(ERROR, "pipeline %d vanished", pipeline_id);
		MemoryContextSwitchTo(cxt);
		p->name = contract_getstr(0, 1);
		p->target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 2, &isnull));
		p->landing = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 3, &isnull));
		format = contract_getstr(0, 4);
		on_dup = contract_getstr(0, 5);
		p->max_reject_ratio = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 7, &isnull));
		p->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 9, &isnull));
		{
			char	   *drift = contract_getstr(0, 8);

			p->drift = strcmp(drift, "quarantine") == 0 ? DRIFT_QUARANTINE :
				strcmp(drift, "hold") == 0 ? DRIFT_HOLD : DRIFT_IGNORE;
		}
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 6, &isnull);

			if (!isnull)
				keyarr = DatumGetArrayTypePCopy(d);
		}
		p->jsonb_format = strcmp(format, "jsonb") == 0;
		p->on_duplicate = strcmp(on_dup, "update") == 0 ? ONDUP_UPDATE :
			strcmp(on_dup, "quarantine") == 0 ? ONDUP_QUARANTINE : ONDUP_SKIP;

		/* columns: target columns that can come from landing */
		rel = table_open(p->target, AccessShareLock);
		lrel = table_open(p->landing, AccessShareLock);
		desc = RelationGetDescr(rel);
		p->cols = palloc0(sizeof(StageColumn) * desc->natts);
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || att->attgenerated ||
				att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
				continue;
			if (contract_is_lineage(att, "_stage_id", INT8OID, &p->lineage_id,
									&p->lineage_id_attnum) ||
				contract_is_lineage(att, "_stage_batch", INT8OID, &p->lineage_batch,
									&p->lineage_batch_attnum) ||
				contract_is_lineage(att, "_stage_node", TEXTOID, &p->lineage_node,
									&p->lineage_node_attnum))
				continue;
			if (!p->jsonb_format &&
				attnameAttNum(lrel, NameStr(att->attname), false) == InvalidAttrNumber)
				continue;		/* added to the target later: its default applies */
			column_init(&p->cols[p->ncols++], rel, att->attnum);
		}
		contract_landing_layout(p, lrel);
		table_close(lrel, AccessShareLock);

		/* key */
		if (keyarr)
		{
			Datum	   *elems;
			int			n;

			deconstruct_array(keyarr, TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &n);
			p->nkeys = n;
			p->keycols = palloc(sizeof(int) * n);
			for (i = 0; i < n; i++)
			{
				p->keycols[i] = contract_colindex(p, TextDatumGetCString(elems[i]));
				p->cols[p->keycols[i]].is_key = true;
			}
		}

		/* masks */
		MemoryContextSwitchTo(old);
		contract_query("SELECT column_name, method, args FROM stage.mask"
					   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1", pipeline_id);
		MemoryContextSwitchTo(cxt);
		{
			SPITupleTable *tt = SPI_tuptable;
			uint64		n = SPI_processed;
			uint64		j;

			for (j = 0; j < n; j++)
			{
				char	   *cname = SPI_getvalue(tt->vals[j], tt->tupdesc, 1);
				char	   *method = SPI_getvalue(tt->vals[j], tt->tupdesc, 2);
				Jsonb	   *args = DatumGetJsonbPCopy(SPI_getbinval(tt->vals[j], tt->tupdesc,
																	3, &isnull));
				StageColumn *col = &p->cols[contract_colindex(p, cname)];

				col->mask = palloc0(sizeof(StageMask));
				mask_parse(col->mask, method, args);
			}
		}

		/* rules, in declaration order */
		MemoryContextSwitchTo(old);
		contract_query("SELECT rule_name, column_name, kind, args, severity FROM stage.rule"
					   " WHERE pipeline_id OPERATOR(pg_catalog.=) $1 ORDER BY position",
					   pipeline_id);
		MemoryContextSwitchTo(cxt);
		{
			SPITupleTable *tt = SPI_tuptable;
			uint64		n = SPI_processed;
			uint64		j;

			p->rules = palloc0(sizeof(StageRule) * (n + 1));
			for (j = 0; j < n; j++)
			{
				StageRule  *r = &p->rules[j];
				char	   *cname = SPI_getvalue(tt->vals[j], tt->tupdesc, 2);
				char	   *kind = SPI_getvalue(tt->vals[j], tt->tupdesc, 3);
				Jsonb	   *args = DatumGetJsonbPCopy(SPI_getbinval(tt->vals[j], tt->tupdesc,
																	4, &isnull));
				char	   *sev = SPI_getvalue(tt->vals[j], tt->tupdesc, 5);

				r->name = SPI_getvalue(tt->vals[j], tt->tupdesc, 1);
				r->col = contract_colindex(p, cname);
				r->warn = strcmp(sev, "warn") == 0;
				rule_compile(r, &p->cols[r->col], kind, args, rel);
				if (r->kind == RULE_EXPRESSION)
					contract_build_expression(p, r);
			}
			p->nrules = n;
		}

		/* transforms, in the order the batch runs them */
		MemoryContextSwitchTo(old);
		lrel = table_open(p->landing, AccessShareLock);
		MemoryContextSwitchTo(cxt);
		transform_contract_load(p, rel, lrel);
		contract_unread_columns(p, lrel);
		table_close(lrel, AccessShareLock);

		{
			char	   *qtarget = quote_qualified_identifier(
												 get_namespace_name(RelationGetNamespace(rel)),
												 RelationGetRelationName(rel));

			/*
			 * A keyed pipeline writes with a plain INSERT while no key
			 * conflicts with the target (the common case, and the cheapest
			 * write), and with ON CONFLICT on the key otherwise; "update"
			 * always needs the upsert.
			 */
			p->insert_sql = contract_build_insert(p, qtarget, false);
			p->direct = direct_eligible(rel, p);
			if (p->nkeys > 0)
				p->upsert_sql = contract_build_insert(p, qtarget, true);
		}
		table_close(rel, AccessShareLock);
		MemoryContextSwitchTo(old);
		SPI_finish();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	p->valid = true;
	return p;
}

/* free a program: its kept plans and its memory context */
static void
contract_free(RuleProgram *p)
{
	if (p->insert_plan)
		SPI_freeplan(p->insert_plan);
	if (p->upsert_plan)
		SPI_freeplan(p->upsert_plan);
	MemoryContextDelete(p->cxt);
}

/* a program leaves the cache: freed now, or when its last pin goes */
static void
contract_retire(RuleProgram *p)
{
	MemoryContext old;

	if (p->pins == 0)
	{
		contract_free(p);
		return;
	}
	p->retired = true;
	old = MemoryContextSwitchTo(TopMemoryContext);
	retired_programs = lappend(retired_programs, p);
	MemoryContextSwitchTo(old);
}

/*
 * The compiled program of a pipeline at a contract version, from the
 * backend cache or freshly built, pinned: the caller releases it with
 * contract_release when its call is over.  A program replaced while
 * pinned (a contract change or an ALTER TABLE in the middle of a batch,
 * by code the batch ran) is retired, not freed: the batch goes on with
 * the rules it started with, and the program is freed when the last pin
 * goes.  At the end of a transaction every pin is gone (an error skips
 * contract_release), see contract_xact_callback.
 */
RuleProgram *
contract_get(int pipeline_id, int version)
{
	ProgramCacheEntry *e;
	bool		found;
	RuleProgram *p;

	contract_cache_init();
	e = hash_search(program_cache, &pipeline_id, HASH_ENTER, &found);
	if (!found)
		e->prog = NULL;
	if (e->prog && e->prog->valid && e->prog->version == version)
	{
		e->prog->pins++;
		return e->prog;
	}
	if (e->prog)
	{
		contract_retire(e->prog);
		e->prog = NULL;
	}
	p = contract_build(pipeline_id, version);
	/* the build may have run code that looked the pipeline up again */
	e = hash_search(program_cache, &pipeline_id, HASH_ENTER, &found);
	if (found && e->prog != NULL)
	{
		contract_retire(e->prog);
	}
	e->prog = p;
	p->pins = 1;
	return p;
}

/* unpin a program contract_get returned; a retired one is freed at last */
void
contract_release(RuleProgram *p)
{
	if (p->pins > 0)
		p->pins--;
	if (p->pins == 0 && p->retired)
	{
		retired_programs = list_delete_ptr(retired_programs, p);
		contract_free(p);
	}
}

/* at the end of a transaction no call is running: unpin everything */
static void
contract_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS st;
	ProgramCacheEntry *e;
	ListCell   *lc;

	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	if (program_cache == NULL)
		return;
	hash_seq_init(&st, program_cache);
	while ((e = hash_seq_search(&st)) != NULL)
		if (e->prog)
			e->prog->pins = 0;
	foreach(lc, retired_programs)
		contract_free((RuleProgram *) lfirst(lc));
	list_free(retired_programs);
	retired_programs = NIL;
}
