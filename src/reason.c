/*-------------------------------------------------------------------------
 *
 * reason.c
 *	  Which errors are a row's fault (quarantined with the row) and which
 *	  the batch's (abort it), and the messages stage writes in place of a
 *	  server's message when that message may quote a masked value.
 *
 * A quarantine reason's message is either stage's own (no value in it), or
 * the text of an error raised by a type's input function, the target (a
 * constraint, a trigger) or an expression rule.  That text is untrusted:
 * "invalid input syntax for type integer: "SSN-123-45-6789"" quotes a part
 * of an int[] value, a CHECK violation prints the whole failing row, an
 * owner's trigger may RAISE anything.  Replacing the raw value where it
 * appears byte for byte does not help (a part, a cast, a transformed
 * value, a typed rendering survive).  So where a masked value could be in
 * it, the message is not shown at all: it is built from the SQLSTATE, the
 * constraint and the column, and the server's text is kept for the
 * pipeline's owners only (stage.quarantine_raw).
 *
 * Touches nothing: functions of an SQLSTATE, a constraint and a column.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "reason.h"

/*
 * Which errors may be pinned on one row and quarantined with it: data
 * exceptions (class 22), integrity constraint violations (23), errors raised
 * by the target's triggers (P0) and WITH CHECK OPTION (44).  Everything else
 * (cancel, permissions, resources, deadlocks, internal errors) is the
 * batch's problem: it aborts the batch and nothing moves.
 */
bool
stage_row_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_PLPGSQL_ERROR:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
			return true;
		default:
			return false;
	}
}

/*
 * A type's input function may also reject a value with a syntax or lookup
 * error (class 42): a tsquery that does not parse (42601), a regclass or
 * regtype that names nothing (42P01, 42704).  In the type check such an
 * error is the value's fault too; a missing privilege (42501) is not.
 */
bool
stage_input_error(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION &&
		sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE;
}

typedef struct SqlstateName
{
	const char *code;
	const char *name;
} SqlstateName;

/* the conditions a row can cause, and the classes they belong to */
static const SqlstateName sqlstate_names[] = {
	{"22001", "string_data_right_truncation"},
	{"22003", "numeric_value_out_of_range"},
	{"22004", "null_value_not_allowed"},
	{"22007", "invalid_datetime_format"},
	{"22008", "datetime_field_overflow"},
	{"22012", "division_by_zero"},
	{"22015", "interval_field_overflow"},
	{"22021", "character_not_in_repertoire"},
	{"22023", "invalid_parameter_value"},
	{"22026", "string_data_length_mismatch"},
	{"2202E", "array_subscript_error"},
	{"22P02", "invalid_text_representation"},
	{"22P03", "invalid_binary_representation"},
	{"22P04", "bad_copy_file_format"},
	{"22P05", "untranslatable_character"},
	{"2200H", "sequence_generator_limit_exceeded"},
	{"22030", "duplicate_json_object_key_value"},
	{"22032", "invalid_json_text"},
	{"23000", "integrity_constraint_violation"},
	{"23001", "restrict_violation"},
	{"23502", "not_null_violation"},
	{"23503", "foreign_key_violation"},
	{"23505", "unique_violation"},
	{"23514", "check_violation"},
	{"23P01", "exclusion_violation"},
	{"P0001", "raise_exception"},
	{"P0002", "no_data_found"},
	{"P0003", "too_many_rows"},
	{"P0004", "assert_failure"},
	{"44000", "with_check_option_violation"},
	{"54000", "program_limit_exceeded"},
	{"55006", "object_in_use"},
	{"55P03", "lock_not_available"},
	{"57014", "query_canceled"},
	{"40001", "serialization_failure"},
	{"40P01", "deadlock_detected"},
	{"42501", "insufficient_privilege"},
	{"42601", "syntax_error"},
	{"42P01", "undefined_table"},
	{"42704", "undefined_object"},
	{"42883", "undefined_function"},
	{"XX000", "internal_error"},
	{NULL, NULL}
};

static const SqlstateName sqlstate_classes[] = {
	{"22", "data_exception"},
	{"23", "integrity_constraint_violation"},
	{"P0", "plpgsql_error"},
	{"44", "with_check_option_violation"},
	{"42", "syntax_error_or_access_rule_violation"},
	{"40", "transaction_rollback"},
	{"53", "insufficient_resources"},
	{"54", "program_limit_exceeded"},
	{"55", "object_not_in_prerequisite_state"},
	{"57", "operator_intervention"},
	{"XX", "internal_error"},
	{NULL, NULL}
};

/* the condition name of a SQLSTATE, or of its class; "error" if unknown */
const char *
sqlstate_name(const char *sqlstate)
{
	const SqlstateName *n;

	if (sqlstate == NULL)
		return "error";
	for (n = sqlstate_names; n->code; n++)
		if (strcmp(n->code, sqlstate) == 0)
			return n->name;
	for (n = sqlstate_classes; n->code; n++)
		if (strncmp(n->code, sqlstate, 2) == 0)
			return n->name;
	return "error";
}

/*
 * The message shown in place of a server's: the condition, the
 * constraint when there is one, and why the text is not shown.
 * masked_column names the masked column the value belongs to; NULL means
 * the message may quote any column of the row.
 */
char *
reason_withheld(const char *sqlstate, const char *constraint,
				const char *masked_column)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "%s (SQLSTATE %s)", sqlstate_name(sqlstate),
					 sqlstate ? sqlstate : "?????");
	if (constraint != NULL)
		appendStringInfo(&s, " on constraint \"%s\"", constraint);
	if (masked_column != NULL)
		appendStringInfo(&s, "; the server's message is withheld: column \"%s\" is masked",
						 masked_column);
	else
		appendStringInfoString(&s, "; the server's message is withheld: the pipeline masks columns");
	return s.data;
}

/* stage._withheld(sqlstate): the message for a whole-row server text */
PG_FUNCTION_INFO_V1(stage_withheld);
Datum
stage_withheld(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(reason_withheld(PG_ARGISNULL(0) ? NULL :
													 text_to_cstring(PG_GETARG_TEXT_PP(0)),
													 NULL, NULL)));
}
