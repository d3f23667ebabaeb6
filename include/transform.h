/*-------------------------------------------------------------------------
 *
 * transform.h
 *	  The transform methods of a contract (transform.c): compile a method
 *	  and its jsonb arguments once, apply it to one text value at a time
 *	  without ever raising on account of the value.
 *
 * The pure text work behind the methods lives below this module, in
 * tf_text.c (trim, squish, replace, string sets), tf_number.c (number) and
 * tf_time.c (date, timestamp); transform.c adds what needs the backend:
 * argument parsing, case mapping by collation, Unicode normalization,
 * PCRE2 through regex.c, and the SQL function stage.transform.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TRANSFORM_H
#define STAGE_TRANSFORM_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

typedef enum TransformMethod
{
	TF_TRIM,
	TF_LOWER,
	TF_UPPER,
	TF_SQUISH,
	TF_NORMALIZE,
	TF_REPLACE,
	TF_REGEX_REPLACE,
	TF_NULLIF,
	TF_DEFAULT,
	TF_MAP,
	TF_NUMBER,
	TF_BOOLEAN,
	TF_DATE,
	TF_TIMESTAMP,
	/* applied by the batch, not per value: args checked here only */
	TF_FROM,
	TF_CONCAT,
	TF_COALESCE,
	TF_LOOKUP,
	TF_EXPRESSION
} TransformMethod;

typedef struct Transform Transform;	/* compiled; allocated in the given context */

typedef enum TransformResult
{
	TR_VALUE,
	TR_NULL,
	TR_FAIL
} TransformResult;

/* compile method + args; bad method or args: ERROR 22023 with a hint listing what is allowed */
extern Transform *transform_compile(const char *method, Jsonb *args, MemoryContext cxt);
extern TransformMethod transform_method(const Transform *t);
extern const char *transform_method_name(const Transform *t);
extern bool transform_per_value(const Transform *t);	/* true for TF_TRIM .. TF_TIMESTAMP */

/*
 * lower and upper map case by a collation: the database's default unless
 * set here (the target column's, or the SQL call's input collation).
 * InvalidOid means the default.
 */
extern void transform_set_collation(Transform *t, Oid collation);

/*
 * One value (in may be NULL = SQL NULL).  TR_VALUE: *out is the new text
 * (palloc'd in CurrentMemoryContext, or in itself when unchanged); TR_NULL:
 * the result is SQL NULL; TR_FAIL: the value cannot be transformed,
 * *sqlstate (5 chars, static) and *message (palloc'd) say why.  Never
 * ereport(ERROR) for any input; only out-of-memory and query cancel may
 * throw.  The message of a map with else "reject" quotes the value (at
 * most 64 characters): callers mask messages of masked columns.
 */
extern TransformResult transform_apply(const Transform *t, const char *in,
									   char **out, const char **sqlstate, char **message);

/* accessors the batch needs for the structural/set-wise methods (args as compiled) */
extern const char *transform_from_column(const Transform *t);	/* from {column} or NULL */
extern List *transform_from_path(const Transform *t);	/* from {path}: list of key strings, or NIL */
extern List *transform_columns(const Transform *t);	/* concat/coalesce {columns} */
extern List *transform_paths(const Transform *t);	/* coalesce {paths}: list of lists */
extern const char *transform_separator(const Transform *t);	/* concat */

/* lookup {table, key, value, on_missing}: table as given (schema.name) */
extern const char *transform_lookup_table(const Transform *t);
extern const char *transform_lookup_key(const Transform *t);
extern const char *transform_lookup_value(const Transform *t);
extern const char *transform_on_missing(const Transform *t);	/* keep | null | reject */
extern const char *transform_expression(const Transform *t);	/* expression {sql} */

/* the value at a dotted path of a jsonb object, as ->> would give it (NULL if absent) */
extern char *transform_json_path(Jsonb *jb, List *path);
/* one JSON value as ->> gives it (NULL for JSON null) */
extern char *transform_json_text(const JsonbValue *v);

#endif							/* STAGE_TRANSFORM_H */
