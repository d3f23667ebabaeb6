/*-------------------------------------------------------------------------
 *
 * mask_sql.c
 *	  The SQL masking functions: stage.mask (any method, exactly as a
 *	  contract applies it), stage.mask_email, mask_partial, mask_card,
 *	  mask_phone, mask_hash, pseudonymize, redact, redact_pii,
 *	  mask_generalize, mask_noise, hmac and tokenize.
 *
 * Each parses its mask once per call site (fn_extra) with the contract
 * form (mask_contract.c), keyed for the caller (stage_caller), never for
 * the function's owner; or calls a primitive (mask.c) directly.  Nothing
 * here is called from C.
 *
 * Touches stage.secret and stage.token_vault only through secret.c and
 * mask_contract.c (tokenize writes new tokens).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "guard.h"
#include "mask.h"
#include "mask_contract.h"
#include "pii.h"
#include "secret.h"

/* stage.mask_email(value) */
PG_FUNCTION_INFO_V1(stage_mask_email);
Datum
stage_mask_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(mask_email(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

/* stage.mask_partial(value, keep_start, keep_end, fill) */
PG_FUNCTION_INFO_V1(stage_mask_partial);
Datum
stage_mask_partial(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int32		keep_start = PG_GETARG_INT32(1);
	int32		keep_end = PG_GETARG_INT32(2);
	char	   *fill = text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (keep_start < 0 || keep_end < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep_start and keep_end must not be negative")));
	PG_RETURN_TEXT_P(cstring_to_text(mask_partial(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
												  keep_start, keep_end, fill)));
}

/* stage.mask_card(value) */
PG_FUNCTION_INFO_V1(stage_mask_card);
Datum
stage_mask_card(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(mask_card(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

/* stage.mask_phone(value, keep, fill) */
PG_FUNCTION_INFO_V1(stage_mask_phone);
Datum
stage_mask_phone(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int32		keep = PG_GETARG_INT32(1);
	char	   *fill = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (keep < 0 || keep > 10)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep must be between 0 and 10"),
				 errhint("keep is how many digits stay visible at the end.")));
	if (pg_mbstrlen(fill) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fill must be one character"),
				 errhint("fill is the one character each hidden digit becomes, e.g. '*'.")));
	PG_RETURN_TEXT_P(cstring_to_text(mask_phone(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
												keep, fill)));
}

/*
 * A StageMask parsed from SQL arguments, cached in fn_extra while the
 * arguments stay the same (a call per row over a column parses once).
 */
typedef struct MaskCache
{
	char	   *method;
	char	   *args;			/* jsonb as text: the cache key */
	StageMask	mask;
} MaskCache;

/* the mask of method and args for this call site, parsed and keyed once */
static StageMask *
mask_cached(FunctionCallInfo fcinfo, const char *method, Jsonb *args)
{
	MaskCache  *c = (MaskCache *) fcinfo->flinfo->fn_extra;
	char	   *argtext = args ? JsonbToCString(NULL, &args->root, VARSIZE(args)) : "";

	if (c == NULL || strcmp(c->method, method) != 0 || strcmp(c->args, argtext) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		/* a failed parse leaves no half-made entry behind */
		fcinfo->flinfo->fn_extra = NULL;
		c = palloc0(sizeof(MaskCache));
		c->method = pstrdup(method);
		c->args = pstrdup(argtext);
		mask_parse(&c->mask, method, args);
		mask_load_key(&c->mask, stage_caller());
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = c;
	}
	return &c->mask;
}

/* apply a cached mask to the text argument 0 */
static Datum
mask_call(FunctionCallInfo fcinfo, StageMask *m)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *v = text_to_cstring(t);
	char	   *out;

	if (m->method == MASK_TOKENIZE)
	{
		const char *vals[1] = {v};

		mask_resolve_tokens(m, vals, 1, true);
	}
	out = mask_apply(m, v, strlen(v));
	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* stage.mask(value, method, args): any method, exactly as add_mask applies it */
PG_FUNCTION_INFO_V1(stage_mask);
Datum
stage_mask(PG_FUNCTION_ARGS)
{
	return mask_call(fcinfo, mask_cached(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(1)),
										 PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)));
}

/* build a jsonb object from alternating key/value C strings (NULL: skip) */
static Jsonb *
mask_args(int n, const char **kv)
{
	StringInfoData s;
	int			i;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i + 1 < n; i += 2)
	{
		if (kv[i + 1] == NULL)
			continue;
		if (!first)
			appendStringInfoString(&s, ", ");
		first = false;
		escape_json(&s, kv[i]);
		appendStringInfoString(&s, ": ");
		/* numbers and arrays are passed already in JSON form, marked by '#' */
		if (kv[i + 1][0] == '#')
			appendStringInfoString(&s, kv[i + 1] + 1);
		else
			escape_json(&s, kv[i + 1]);
	}
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* stage.mask_hash(value, secret, length, encoding) */
PG_FUNCTION_INFO_V1(stage_mask_hash);
Datum
stage_mask_hash(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"length", psprintf("#%d", PG_GETARG_INT32(2)),
	"encoding", text_to_cstring(PG_GETARG_TEXT_PP(3))};

	return mask_call(fcinfo, mask_cached(fcinfo, "hash", mask_args(6, kv)));
}

/* stage.pseudonymize(value, secret, kind, keep_domain) */
PG_FUNCTION_INFO_V1(stage_pseudonymize);
Datum
stage_pseudonymize(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"kind", text_to_cstring(PG_GETARG_TEXT_PP(2)),
	"domain", PG_GETARG_BOOL(3) ? "keep" : "pseudonymize"};

	return mask_call(fcinfo, mask_cached(fcinfo, "pseudonym", mask_args(6, kv)));
}

/* stage.redact(value, pattern, replacement, flags) */
PG_FUNCTION_INFO_V1(stage_redact);
Datum
stage_redact(PG_FUNCTION_ARGS)
{
	const char *kv[6] = {"pattern", text_to_cstring(PG_GETARG_TEXT_PP(1)),
		"replacement", text_to_cstring(PG_GETARG_TEXT_PP(2)),
	"flags", text_to_cstring(PG_GETARG_TEXT_PP(3))};

	return mask_call(fcinfo, mask_cached(fcinfo, "redact", mask_args(6, kv)));
}

/* stage.redact_pii(value, kinds text[], replacement): not strict */
PG_FUNCTION_INFO_V1(stage_redact_pii);
Datum
stage_redact_pii(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"kinds", NULL, "replacement", NULL};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;
		StringInfoData s;

		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		initStringInfo(&s);
		appendStringInfoString(&s, "#[");
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("PII kinds must not be null"),
						 errhint("Kinds are %s.", pii_kind_list())));
			if (i > 0)
				appendStringInfoString(&s, ", ");
			escape_json(&s, TextDatumGetCString(elems[i]));
		}
		appendStringInfoChar(&s, ']');
		kv[1] = s.data;
	}
	if (!PG_ARGISNULL(2))
		kv[3] = text_to_cstring(PG_GETARG_TEXT_PP(2));
	return mask_call(fcinfo, mask_cached(fcinfo, "redact_pii", mask_args(4, kv)));
}

/* stage.mask_generalize(value text, unit text): the mask's own algorithm */
PG_FUNCTION_INFO_V1(stage_mask_generalize_text);
Datum
stage_mask_generalize_text(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"unit", text_to_cstring(PG_GETARG_TEXT_PP(1))};

	return mask_call(fcinfo, mask_cached(fcinfo, "generalize", mask_args(2, kv)));
}

/* the unit argument of the typed generalize functions, checked */
static text *
mask_unit_arg(FunctionCallInfo fcinfo)
{
	char	   *unit = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (strcmp(unit, "year") != 0 && strcmp(unit, "month") != 0 &&
		strcmp(unit, "day") != 0 && strcmp(unit, "hour") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown generalize unit \"%s\"", unit),
				 errhint("Units are year, month, day and hour.")));
	return PG_GETARG_TEXT_PP(1);
}

/* stage.mask_generalize(date, unit) RETURNS date */
PG_FUNCTION_INFO_V1(stage_mask_generalize_date);
Datum
stage_mask_generalize_date(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);
	Datum		ts;

	if (strcmp(text_to_cstring(unit), "hour") == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	ts = DirectFunctionCall1(date_timestamp, PG_GETARG_DATUM(0));
	ts = DirectFunctionCall2(timestamp_trunc, PointerGetDatum(unit), ts);
	PG_RETURN_DATUM(DirectFunctionCall1(timestamp_date, ts));
}

/* stage.mask_generalize(timestamp, unit) RETURNS timestamp */
PG_FUNCTION_INFO_V1(stage_mask_generalize_timestamp);
Datum
stage_mask_generalize_timestamp(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);

	PG_RETURN_DATUM(DirectFunctionCall2(timestamp_trunc, PointerGetDatum(unit),
										PG_GETARG_DATUM(0)));
}

/* stage.mask_generalize(timestamptz, unit): in the session's time zone */
PG_FUNCTION_INFO_V1(stage_mask_generalize_timestamptz);
Datum
stage_mask_generalize_timestamptz(PG_FUNCTION_ARGS)
{
	text	   *unit = mask_unit_arg(fcinfo);

	PG_RETURN_DATUM(DirectFunctionCall2(timestamptz_trunc, PointerGetDatum(unit),
										PG_GETARG_DATUM(0)));
}

/*
 * Apply a cached mask to the numeric argument 0, as its text: the result
 * as a numeric, or the value unchanged where the mask could not read it
 * (NaN, Infinity).
 */
static Datum
mask_call_numeric(FunctionCallInfo fcinfo, StageMask *m)
{
	char	   *v = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(0)));
	char	   *out = mask_apply(m, v, strlen(v));

	if (strcmp(out, MASK_NOT_A_NUMBER) == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));	/* NaN, Infinity: unchanged */
	PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(out),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* stage.mask_generalize(numeric, bucket numeric) RETURNS numeric */
PG_FUNCTION_INFO_V1(stage_mask_generalize_numeric);
Datum
stage_mask_generalize_numeric(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"bucket", psprintf("#%s",
											DatumGetCString(DirectFunctionCall1(numeric_out,
																				PG_GETARG_DATUM(1))))};

	if (numeric_is_nan(PG_GETARG_NUMERIC(1)) || numeric_is_inf(PG_GETARG_NUMERIC(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bucket width must be a finite number greater than zero")));
	return mask_call_numeric(fcinfo, mask_cached(fcinfo, "generalize", mask_args(2, kv)));
}

/* the ratio argument 1 of stage.mask_noise, refused when not finite */
static double
mask_noise_ratio_arg(FunctionCallInfo fcinfo)
{
	double		ratio = PG_GETARG_FLOAT8(1);

	if (isnan(ratio) || isinf(ratio))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"ratio\" of mask noise must be greater than 0 and at most 1")));
	return ratio;
}

/* stage.mask_noise(numeric, ratio [, seed]) RETURNS numeric */
PG_FUNCTION_INFO_V1(stage_mask_noise);
Datum
stage_mask_noise(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"ratio", psprintf("#%.17g", mask_noise_ratio_arg(fcinfo)),
	"seed", PG_NARGS() > 2 ? psprintf("#" INT64_FORMAT, PG_GETARG_INT64(2)) : NULL};

	return mask_call_numeric(fcinfo, mask_cached(fcinfo, "noise", mask_args(4, kv)));
}

/* stage.mask_noise(numeric, ratio, secret text): keyed noise */
PG_FUNCTION_INFO_V1(stage_mask_noise_keyed);
Datum
stage_mask_noise_keyed(PG_FUNCTION_ARGS)
{
	const char *kv[4] = {"ratio", psprintf("#%.17g", mask_noise_ratio_arg(fcinfo)),
	"secret", text_to_cstring(PG_GETARG_TEXT_PP(2))};

	return mask_call_numeric(fcinfo, mask_cached(fcinfo, "noise", mask_args(4, kv)));
}

/* stage.hmac's key, cached in fn_extra while the secret's name stays */
typedef struct HmacCache
{
	char	   *name;
	HmacKey		key;
} HmacCache;

/* stage.hmac(value, secret name): HMAC-SHA256 hex under a named secret */
PG_FUNCTION_INFO_V1(stage_hmac);
Datum
stage_hmac(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	HmacCache  *c = (HmacCache *) fcinfo->flinfo->fn_extra;

	if (c == NULL || strcmp(c->name, name) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		fcinfo->flinfo->fn_extra = NULL;
		c = palloc0(sizeof(HmacCache));
		c->name = pstrdup(name);
		(void) secret_hmac_key(&c->key, name, stage_caller(), false);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = c;
	}
	PG_RETURN_TEXT_P(cstring_to_text(mask_hmac_hex(&c->key,
												   VARDATA_ANY(t),
												   VARSIZE_ANY_EXHDR(t))));
}

/* stage.tokenize(value, secret): the value's token, created if need be */
PG_FUNCTION_INFO_V1(stage_tokenize);
Datum
stage_tokenize(PG_FUNCTION_ARGS)
{
	const char *kv[2] = {"secret", text_to_cstring(PG_GETARG_TEXT_PP(1))};

	return mask_call(fcinfo, mask_cached(fcinfo, "tokenize", mask_args(2, kv)));
}
