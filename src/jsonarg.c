/*-------------------------------------------------------------------------
 *
 * jsonarg.c
 *	  Reading the jsonb arguments of rules and masks: a key's value,
 *	  unknown keys refused, strings and integers with the argument named in
 *	  the error.
 *
 * Touches nothing but the jsonb it is given: no catalog, no SPI; results
 * are allocated in CurrentMemoryContext.  Errors are the user's (an
 * argument of the wrong type or out of range): ERROR with
 * ERRCODE_INVALID_PARAMETER_VALUE, naming the argument and what it
 * belongs to ("rule range", "mask hash").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jsonarg.h"

/* the value of key (false: no args, not an object, key absent or null) */
bool
json_get(Jsonb *args, const char *key, JsonbValue *out)
{
	JsonbValue *v;

	if (args == NULL || !JB_ROOT_IS_OBJECT(args))
		return false;
	v = getKeyJsonValueFromContainer(&args->root, key, strlen(key), out);
	return v != NULL && v->type != jbvNull;
}

/* refuse arguments that are not an object or carry unknown keys */
void
json_check_keys(Jsonb *args, const char *what, const char *const *allowed)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (args == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(args) || JB_ROOT_IS_SCALAR(args))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("arguments of %s must be a JSON object", what)));
	it = JsonbIteratorInit(&args->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *k = pnstrdup(v.val.string.val, v.val.string.len);
			const char *const *a;
			bool		ok = false;
			StringInfoData valid;

			for (a = allowed; *a; a++)
				if (strcmp(*a, k) == 0)
					ok = true;
			if (ok)
				continue;
			initStringInfo(&valid);
			for (a = allowed; *a; a++)
				appendStringInfo(&valid, "%s%s", a == allowed ? "" : ", ", *a);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown argument \"%s\" for %s", k, what),
					 allowed[0] ? errhint("Valid arguments are: %s.", valid.data) :
					 errhint("It takes no arguments.")));
		}
	}
}

/* a string argument, or a copy of dflt (may be NULL) when absent */
char *
json_get_string(Jsonb *args, const char *key, const char *what, const char *dflt)
{
	JsonbValue	v;

	if (!json_get(args, key, &v))
		return dflt ? pstrdup(dflt) : NULL;
	if (v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" of %s must be a string", key, what)));
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* an integer argument in [minval, maxval], or dflt when absent */
int
json_get_int(Jsonb *args, const char *key, const char *what, int dflt,
			 int minval, int maxval)
{
	JsonbValue	v;
	int64		i;

	if (!json_get(args, key, &v))
		return dflt;
	if (v.type == jbvNumeric)
	{
		char	   *txt = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(v.val.numeric)));
		char	   *end;

		errno = 0;
		i = strtoll(txt, &end, 10);
		if (*end != '\0' || errno == ERANGE)
		{
			if (strspn(txt, "-0123456789") == strlen(txt))
				i = (txt[0] == '-') ? PG_INT64_MIN : PG_INT64_MAX;	/* too large */
			else
				v.type = jbvNull;	/* a fraction or NaN: not an integer */
		}
	}
	if (v.type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" of %s must be an integer", key, what)));
	if (i < minval || i > maxval)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" of %s must be between %d and %d", key, what,
						minval, maxval)));
	return (int) i;
}

/* a scalar JSON value as text: strings unquoted, numbers and booleans printed */
char *
json_scalar_text(JsonbValue *v, const char *key, const char *what)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"%s\" of %s must be a string or a number", key, what)));
	}
	return NULL;
}
