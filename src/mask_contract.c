/*-------------------------------------------------------------------------
 *
 * mask_contract.c
 *	  A mask as a contract declares it (StageMask): parsed from its method
 *	  and jsonb arguments, checked against the column it masks, prepared
 *	  once per batch (its key loaded, tokens resolved), applied per value
 *	  with the primitives of mask.c, pseudonym.c and vault.c.  Also the
 *	  trigger on stage.mask that checks a mask however it is stored.
 *
 * Methods: hash, pseudonym, partial, email, phone, card, redact,
 * redact_pii, null, constant, generalize, noise and tokenize.
 *
 * mask_apply never raises because of a value and never returns the value
 * it could not read (see mask.c); NULL stays NULL (the mover never calls
 * mask_apply on NULL).  Keys are loaded (secret.c) when a mask is declared,
 * so a missing or forbidden secret is refused then, and before a batch
 * writes; a loaded key lives in the StageMask, in its memory context.
 *
 * Touches stage.secret and stage.token_vault only through secret.c and
 * vault.c; stage.pipeline is read by the trigger alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "jsonarg.h"
#include "mask.h"
#include "mask_contract.h"
#include "pii.h"
#include "pseudonym.h"
#include "regex.h"
#include "secret.h"
#include "vault.h"

/* ----------------------------------------------------------------
 *		arguments
 * ---------------------------------------------------------------- */

static const char *const mask_hash_keys[] = {"secret", "length", "encoding", NULL};
static const char *const mask_pseudonym_keys[] = {"secret", "kind", "domain", NULL};
static const char *const mask_partial_keys[] = {"keep_start", "keep_end", "fill", NULL};
static const char *const mask_phone_keys[] = {"keep", "fill", NULL};
static const char *const mask_redact_keys[] = {"pattern", "replacement", "flags", NULL};
static const char *const mask_redact_pii_keys[] = {"kinds", "replacement", NULL};
static const char *const mask_constant_keys[] = {"value", NULL};
static const char *const mask_generalize_keys[] = {"unit", "bucket", "format", NULL};
static const char *const mask_noise_keys[] = {"ratio", "seed", "secret", NULL};
static const char *const mask_tokenize_keys[] = {"secret", "prefix", NULL};
static const char *const mask_no_keys[] = {NULL};

#define MASK_METHODS "hash, pseudonym, partial, email, phone, card, redact, redact_pii, null, constant, generalize, noise and tokenize"

/* an argument error: "argument \"key\" of mask method problem", with hint */
static void
mask_bad_arg(const char *method, const char *key, const char *problem,
			 const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("argument \"%s\" of mask %s %s", key, method, problem),
			 errhint("%s", hint)));
}

/* a string argument, or dflt when absent */
static char *
mask_arg_string(Jsonb *args, const char *method, const char *key,
				const char *dflt, const char *hint)
{
	JsonbValue	v;

	if (!json_get(args, key, &v))
		return dflt ? pstrdup(dflt) : NULL;
	if (v.type != jbvString)
		mask_bad_arg(method, key, "must be a string", hint);
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/*
 * Which of choices (NULL-terminated) a string argument's value is: its
 * index.  Anything else is refused as "is \"<value>\", <what>" with the
 * hint.
 */
static int
mask_choice(const char *method, const char *key, const char *value,
			const char *const *choices, const char *what, const char *hint)
{
	int			i;

	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;
	mask_bad_arg(method, key, psprintf("is \"%s\", %s", value, what), hint);
	return -1;					/* not reached */
}

static const char *const mask_encodings[] = {"hex", "base64", NULL};
static const char *const mask_pseudo_kinds[] = {"auto", "email", "name", "digits", "text", NULL};
static const char *const mask_domains[] = {"keep", "pseudonymize", NULL};
static const char *const mask_units[] = {"year", "month", "day", "hour", NULL};
static const char *const mask_formats[] = {"floor", "range", NULL};

/* an integer argument in [minval, maxval], or dflt when absent */
static int64
mask_arg_int(Jsonb *args, const char *method, const char *key, int64 dflt,
			 int64 minval, int64 maxval, const char *hint)
{
	JsonbValue	v;
	Datum		n;
	char	   *txt;

	if (!json_get(args, key, &v))
		return dflt;
	if (v.type != jbvNumeric)
		mask_bad_arg(method, key, "must be an integer", hint);
	n = NumericGetDatum(v.val.numeric);
	txt = DatumGetCString(DirectFunctionCall1(numeric_out, n));
	if (strchr(txt, '.') != NULL || strlen(txt) > 19)
		mask_bad_arg(method, key, "must be an integer", hint);
	{
		int64		i = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));

		if (i < minval || i > maxval)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"%s\" of mask %s must be between " INT64_FORMAT " and " INT64_FORMAT,
							key, method, minval, maxval),
					 errhint("%s", hint)));
		return i;
	}
}

/* a positive number argument as a Numeric datum, or 0 when absent */
static Datum
mask_arg_numeric(Jsonb *args, const char *method, const char *key, const char *hint)
{
	JsonbValue	v;
	Datum		zero;

	if (!json_get(args, key, &v))
		return (Datum) 0;
	if (v.type != jbvNumeric)
		mask_bad_arg(method, key, "must be a number", hint);
	zero = DirectFunctionCall3(numeric_in, CStringGetDatum("0"),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v.val.numeric),
										  zero)) <= 0)
		mask_bad_arg(method, key, "must be greater than zero", hint);
	return datumCopy(NumericGetDatum(v.val.numeric), false, -1);
}

/* a secret name: short, printable, no need to exist yet for parsing */
static char *
mask_arg_secret(Jsonb *args, const char *method)
{
	char	   *name = mask_arg_string(args, method, "secret", "default",
									   "Name a secret created with stage.create_secret(), e.g. {\"secret\": \"default\"}.");

	if (name[0] == '\0' || strlen(name) > 63)
		mask_bad_arg(method, "secret", "must be a name of 1 to 63 characters",
					 "Name a secret created with stage.create_secret().");
	return name;
}

/*
 * A redact replacement may refer to groups as $1, ${1} or ${name} and
 * write $$ for a dollar sign; anything else after a $ is refused now, so
 * the mask never meets a bad replacement while moving rows.
 */
static void
mask_check_replacement(const char *r)
{
	const char *p;

	for (p = r; *p; p++)
	{
		if (*p != '$')
			continue;
		p++;
		if (*p == '$' || (*p >= '0' && *p <= '9'))
		{
			while (p[1] >= '0' && p[1] <= '9')
				p++;
			continue;
		}
		if (*p == '{')
		{
			const char *close = strchr(p, '}');

			if (close != NULL && close > p + 1)
			{
				p = close;
				continue;
			}
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid replacement of mask redact: a \"$\" must be followed by a group number, {name} or another \"$\""),
				 errhint("Refer to groups as $1 or ${name}; write $$ for a dollar sign.")));
	}
}

/* ----------------------------------------------------------------
 *		parse, validate, prepare, apply
 * ---------------------------------------------------------------- */

/*
 * Parse a mask method and its arguments into m (in CurrentMemoryContext).
 * Everything that can be checked without the column is checked here, with
 * the argument named; mask_check_column checks the rest against the
 * column.  Keys are not loaded here (mask_load_key).
 */
void
mask_parse(StageMask *m, const char *method, Jsonb *args)
{
	memset(m, 0, sizeof(StageMask));
	if (method == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("mask method must not be null"),
				 errhint("Valid methods are " MASK_METHODS ".")));
	if (strcmp(method, "hash") == 0)
	{
		char	   *enc;

		m->method = MASK_HASH;
		m->method_name = "hash";
		json_check_keys(args, "mask hash", mask_hash_keys);
		m->secret_name = mask_arg_secret(args, "hash");
		enc = mask_arg_string(args, "hash", "encoding", "hex",
							  "Use \"hex\" (64 characters) or \"base64\" (44 characters).");
		m->base64 = (mask_choice("hash", "encoding", enc, mask_encodings, "not hex or base64",
								 "Use \"hex\" (64 characters) or \"base64\" (44 characters).") == 1);
		m->length = mask_arg_int(args, "hash", "length", 0, 0, m->base64 ? 44 : 64,
								 m->base64 ?
								 "The length cuts the output: 0 (all 44 characters) or 11 to 44." :
								 "The length cuts the output: 0 (all 64 characters) or 16 to 64.");

		/*
		 * A cut hash of b bits collides about n^2 / 2^(b+1) times among n
		 * values: 8 hex characters (32 bits) gave 133 collisions in a
		 * million ids.  64 bits (16 hex, 11 base64 characters) keep a
		 * billion values apart with odds of about 97%.
		 */
		if (m->length > 0 && m->length < (m->base64 ? 11 : 16))
			mask_bad_arg("hash", "length", "is too short to keep hashes distinct",
						 m->base64 ?
						 "Use 0 (the whole hash) or at least 11 base64 characters (64 bits): shorter hashes of a million values collide." :
						 "Use 0 (the whole hash) or at least 16 hex characters (64 bits): 8 characters collide about 116 times in a million values.");
	}
	else if (strcmp(method, "pseudonym") == 0)
	{
		char	   *kind;
		char	   *domain;

		m->method = MASK_PSEUDONYM;
		m->method_name = "pseudonym";
		json_check_keys(args, "mask pseudonym", mask_pseudonym_keys);
		m->secret_name = mask_arg_secret(args, "pseudonym");
		kind = mask_arg_string(args, "pseudonym", "kind", "auto",
							   "Use auto, email, name, digits or text.");
		/* the choices are in the order of PseudoKind */
		m->pseudo_kind = (PseudoKind) mask_choice("pseudonym", "kind", kind, mask_pseudo_kinds,
												  "not a known kind",
												  "Use auto, email, name, digits or text.");
		domain = mask_arg_string(args, "pseudonym", "domain", "keep",
								 "Use \"keep\" (the e-mail's domain stays) or \"pseudonymize\" (a pseudonymous domain under .example).");
		m->keep_domain = (mask_choice("pseudonym", "domain", domain, mask_domains,
									  "not keep or pseudonymize",
									  "Use \"keep\" (the e-mail's domain stays) or \"pseudonymize\" (a pseudonymous domain under .example).") == 0);
	}
	else if (strcmp(method, "partial") == 0)
	{
		m->method = MASK_PARTIAL;
		m->method_name = "partial";
		json_check_keys(args, "mask partial", mask_partial_keys);
		m->keep_start = mask_arg_int(args, "partial", "keep_start", 1, 0, 1000,
									 "keep_start is how many characters stay visible at the start.");
		m->keep_end = mask_arg_int(args, "partial", "keep_end", 0, 0, 1000,
								   "keep_end is how many characters stay visible at the end.");
		m->fill = mask_arg_string(args, "partial", "fill", "*",
								  "fill replaces each hidden character (one character) or the hidden part (longer).");
		if (m->fill[0] == '\0')
			mask_bad_arg("partial", "fill", "must not be empty",
						 "An empty fill would hide that anything was hidden; use e.g. \"*\".");
	}
	else if (strcmp(method, "email") == 0)
	{
		m->method = MASK_EMAIL;
		m->method_name = "email";
		json_check_keys(args, "mask email", mask_no_keys);
	}
	else if (strcmp(method, "phone") == 0)
	{
		m->method = MASK_PHONE;
		m->method_name = "phone";
		json_check_keys(args, "mask phone", mask_phone_keys);
		m->keep_end = mask_arg_int(args, "phone", "keep", 4, 0, 10,
								   "keep is how many digits stay visible at the end (0 to 10).");
		m->fill = mask_arg_string(args, "phone", "fill", "*",
								  "fill is the one character each hidden digit becomes.");
		if (pg_mbstrlen(m->fill) != 1)
			mask_bad_arg("phone", "fill", "must be one character",
						 "fill is the one character each hidden digit becomes, e.g. \"*\" or \"X\".");
	}
	else if (strcmp(method, "card") == 0)
	{
		m->method = MASK_CARD;
		m->method_name = "card";
		json_check_keys(args, "mask card", mask_no_keys);
	}
	else if (strcmp(method, "redact") == 0)
	{
		char	   *pattern;
		char	   *flags;
		const char *f;

		m->method = MASK_REDACT;
		m->method_name = "redact";
		json_check_keys(args, "mask redact", mask_redact_keys);
		pattern = mask_arg_string(args, "redact", "pattern", NULL,
								  "Give the PCRE2 pattern of what to hide, e.g. {\"pattern\": \"\\\\d{4,}\"}.");
		if (pattern == NULL || pattern[0] == '\0')
			mask_bad_arg("redact", "pattern", "is required",
						 "Give the PCRE2 pattern of what to hide, e.g. {\"pattern\": \"\\\\d{4,}\"}.");
		flags = mask_arg_string(args, "redact", "flags", "",
								"Flags are i, m, s and x.");
		for (f = flags; *f; f++)
			if (strchr("imsx", *f) == NULL)
				mask_bad_arg("redact", "flags", psprintf("has unknown flag \"%c\"", *f),
							 "Flags are i (case-insensitive), m (multi-line), s (dot matches newline) and x (extended); every match is replaced.");
		m->replacement = mask_arg_string(args, "redact", "replacement", "[redacted]",
										 "The replacement is a string; $1 or ${name} insert a group.");
		mask_check_replacement(m->replacement);
		m->rx = rx_compile(pattern, flags);
	}
	else if (strcmp(method, "redact_pii") == 0)
	{
		m->method = MASK_REDACT_PII;
		m->method_name = "redact_pii";
		json_check_keys(args, "mask redact_pii", mask_redact_pii_keys);
		m->pii_kinds = pii_kinds_arg(args, "mask redact_pii");
		m->replacement = mask_arg_string(args, "redact_pii", "replacement", NULL,
										 "The replacement is a string; without one each span becomes [kind], e.g. [email].");
	}
	else if (strcmp(method, "null") == 0)
	{
		m->method = MASK_NULL;
		m->method_name = "null";
		json_check_keys(args, "mask null", mask_no_keys);
	}
	else if (strcmp(method, "constant") == 0)
	{
		JsonbValue	v;

		m->method = MASK_CONSTANT;
		m->method_name = "constant";
		json_check_keys(args, "mask constant", mask_constant_keys);
		if (!json_get(args, "value", &v))
			mask_bad_arg("constant", "value", "is required",
						 "Give the value every row gets, e.g. {\"value\": \"redacted\"} or {\"value\": 0}.");
		if (v.type == jbvString)
			m->value = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type == jbvNumeric)
			m->value = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvBool)
			m->value = pstrdup(v.val.boolean ? "true" : "false");
		else
			mask_bad_arg("constant", "value", "must be a string, a number or a boolean",
						 "Use the null mask to write NULL.");
	}
	else if (strcmp(method, "generalize") == 0)
	{
		char	   *unit;
		char	   *format;
		const char *hint = "Give {\"unit\": \"year\"|\"month\"|\"day\"|\"hour\"} for dates and timestamps, or {\"bucket\": width} for numbers.";

		m->method = MASK_GENERALIZE;
		m->method_name = "generalize";
		json_check_keys(args, "mask generalize", mask_generalize_keys);
		unit = mask_arg_string(args, "generalize", "unit", NULL, hint);
		m->bucket = mask_arg_numeric(args, "generalize", "bucket", hint);
		if ((unit == NULL) == (m->bucket == (Datum) 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mask generalize takes either \"unit\" or \"bucket\""),
					 errhint("%s", hint)));
		if (unit != NULL)		/* the choices follow UNIT_NONE in MaskUnit */
			m->unit = (MaskUnit) (UNIT_YEAR +
								  mask_choice("generalize", "unit", unit, mask_units,
											  "not a known unit",
											  "Units are year, month, day and hour."));
		format = mask_arg_string(args, "generalize", "format", "floor",
								 "Use \"floor\" (the bucket's lower bound, a number) or \"range\" (a label \"[lo,hi)\", for text columns).");
		m->range_label = (mask_choice("generalize", "format", format, mask_formats,
									  "not floor or range",
									  "Use \"floor\" (the bucket's lower bound, a number) or \"range\" (a label \"[lo,hi)\", for text columns).") == 1);
		if (m->range_label && unit != NULL)
			mask_bad_arg("generalize", "format", "applies to buckets only",
						 "Dates and timestamps are generalized to the start of their unit.");
	}
	else if (strcmp(method, "noise") == 0)
	{
		JsonbValue	v;
		const char *hint = "The ratio is the largest relative change, greater than 0 and at most 1: {\"ratio\": 0.1} moves values by up to 10%.";

		m->method = MASK_NOISE;
		m->method_name = "noise";
		json_check_keys(args, "mask noise", mask_noise_keys);
		if (!json_get(args, "ratio", &v))
			mask_bad_arg("noise", "ratio", "is required", hint);
		if (v.type != jbvNumeric)
			mask_bad_arg("noise", "ratio", "must be a number", hint);
		m->ratio = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													  NumericGetDatum(v.val.numeric)));
		if (!(m->ratio > 0 && m->ratio <= 1))
			mask_bad_arg("noise", "ratio", "must be greater than 0 and at most 1", hint);
		m->seeded = json_get(args, "seed", &v);
		if (m->seeded)
			m->seed = mask_arg_int(args, "noise", "seed", 0, PG_INT64_MIN, PG_INT64_MAX,
								   "The seed makes the noise a function of the value (repeatable, for tests); leave it out for fresh noise each time.");
		if (json_get(args, "secret", &v))
		{
			if (m->seeded)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("mask noise takes either \"seed\" or \"secret\""),
						 errhint("A secret makes the noise repeatable and not computable without it; a seed makes it repeatable for anyone.")));
			m->secret_name = mask_arg_secret(args, "noise");
		}
	}
	else if (strcmp(method, "tokenize") == 0)
	{
		const char *p;

		m->method = MASK_TOKENIZE;
		m->method_name = "tokenize";
		json_check_keys(args, "mask tokenize", mask_tokenize_keys);
		m->secret_name = mask_arg_secret(args, "tokenize");
		m->prefix = mask_arg_string(args, "tokenize", "prefix", "tok_",
									"The prefix is up to 16 letters, digits, _ or -.");
		if (strlen(m->prefix) > 16)
			mask_bad_arg("tokenize", "prefix", "is longer than 16 characters",
						 "The prefix is up to 16 letters, digits, _ or -.");
		for (p = m->prefix; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				mask_bad_arg("tokenize", "prefix", "may hold only letters, digits, _ and -",
							 "The prefix is up to 16 letters, digits, _ or -.");
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown mask method \"%s\"", method),
				 errhint("Valid methods are " MASK_METHODS ".")));
}

/* does the method produce text (so the column must hold text)? */
bool
mask_needs_text(const StageMask *m)
{
	switch (m->method)
	{
		case MASK_NULL:
		case MASK_CONSTANT:
		case MASK_GENERALIZE:
		case MASK_NOISE:
			return false;
		default:
			return true;
	}
}

/* does the method use a named secret? */
static bool
mask_uses_secret(const StageMask *m)
{
	return m->method == MASK_HASH || m->method == MASK_PSEUDONYM ||
		m->method == MASK_TOKENIZE ||
		(m->method == MASK_NOISE && m->secret_name != NULL);
}

/* does the method need to see a batch's values before mask_apply? */
bool
mask_needs_batch(const StageMask *m)
{
	return mask_uses_secret(m);
}

/* is the output a function of the value (given the vault)? */
bool
mask_deterministic(const StageMask *m)
{
	return !(m->method == MASK_NOISE && !m->seeded && m->secret_name == NULL);
}

/* the length of the longest output, or -1 when it depends on the value */
static int
mask_fixed_length(const StageMask *m)
{
	switch (m->method)
	{
		case MASK_HASH:
			return m->length > 0 ? m->length : (m->base64 ? 44 : 64);
		case MASK_TOKENIZE:
			return strlen(m->prefix) + 24;
		default:
			return -1;
	}
}

/* is base a type a text-writing mask can write (text, varchar, bpchar)? */
static bool
mask_text_type(Oid base)
{
	return base == TEXTOID || base == VARCHAROID || base == BPCHAROID;
}

/* is base a number type generalize and noise can write? */
static bool
mask_number_type(Oid base)
{
	return base == INT2OID || base == INT4OID || base == INT8OID ||
		base == NUMERICOID || base == FLOAT4OID || base == FLOAT8OID;
}

/* a mask that cannot write its column's type: ERROR with hint */
static void
mask_type_error(const StageMask *m, const char *column, Oid typid,
				const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("mask %s cannot write column \"%s\" of type %s",
					m->method_name, column, format_type_be(typid)),
			 errhint("%s", hint)));
}

/*
 * Check a parsed mask against the column it masks (its type, typmod and
 * NOT NULL): what the mask writes must be something the column accepts,
 * or every row would end in quarantine.
 */
static void
mask_check_column(const StageMask *m, const char *column, Oid typid,
				  int32 typmod, bool notnull)
{
	int32		basemod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &basemod);

	switch (m->method)
	{
		case MASK_NULL:
			if (notnull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("mask null cannot apply to column \"%s\": it is NOT NULL", column),
						 errhint("Use the constant mask to write a fixed value instead.")));
			return;
		case MASK_CONSTANT:
			{
				Oid			infunc;
				Oid			ioparam;

				/* the input function says whether the column takes it */
				getTypeInputInfo(typid, &infunc, &ioparam);
				(void) OidInputFunctionCall(infunc, m->value, ioparam, typmod);
				return;
			}
		case MASK_GENERALIZE:
			if (m->bucket == (Datum) 0)
			{
				if (base == DATEOID && m->unit == UNIT_HOUR)
					mask_type_error(m, column, typid,
									"A date has no hours: generalize it by day, month or year.");
				if (base != DATEOID && base != TIMESTAMPOID && base != TIMESTAMPTZOID &&
					!mask_text_type(base))
					mask_type_error(m, column, typid,
									"A unit generalizes dates and timestamps (or text holding them); use {\"bucket\": width} for numbers.");
				return;
			}
			if (m->range_label && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"The \"range\" format writes a label such as [10,20); use it on text columns, or the default \"floor\" format.");
			if (!mask_number_type(base) && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"A bucket generalizes numbers (or text holding them); use {\"unit\": ...} for dates and timestamps.");
			if ((base == INT2OID || base == INT4OID || base == INT8OID) &&
				strchr(DatumGetCString(DirectFunctionCall1(numeric_out, m->bucket)), '.'))
			{
				char	   *w = DatumGetCString(DirectFunctionCall1(numeric_out, m->bucket));
				char	   *dot = strchr(w, '.');

				/* 10.000 is integral too */
				while (*++dot == '0')
					;
				if (*dot != '\0')
					mask_type_error(m, column, typid,
									"The column holds integers: use a whole bucket width.");
			}
			return;
		case MASK_NOISE:
			if (!mask_number_type(base) && !mask_text_type(base))
				mask_type_error(m, column, typid,
								"Noise applies to numbers (or text holding them).");
			return;
		default:
			if (!mask_text_type(base))
				mask_type_error(m, column, typid,
								"This mask writes text: mask text columns, or use null, constant, generalize or noise.");
			if ((base == VARCHAROID || base == BPCHAROID) && basemod > VARHDRSZ &&
				mask_fixed_length(m) > basemod - VARHDRSZ)
				ereport(ERROR,
						(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
						 errmsg("mask %s writes %d characters, but column \"%s\" is %s",
								m->method_name, mask_fixed_length(m), column,
								format_type_with_typemod(typid, typmod)),
						 errhint(m->method == MASK_HASH ?
								 "Set the hash's \"length\" or widen the column." :
								 "Use a shorter prefix or widen the column.")));
			return;
	}
}

/*
 * Load the secret of a hash, pseudonym or tokenize mask, checking the
 * current user may use it.  Done when a mask is declared (so a missing or
 * forbidden secret is refused then) and before a batch writes, never by
 * stage.check_row, which shows no masked values and so needs no key.
 */
void
mask_load_key(StageMask *m, Oid role)
{
	if (!mask_uses_secret(m) || m->key_loaded)
		return;
	m->key_loaded = secret_hmac_key(&m->hkey, m->secret_name, role, false);
}

/* the same, false (not raising) when the secret is missing or forbidden */
bool
mask_try_load_key(StageMask *m, Oid role)
{
	if (!mask_uses_secret(m) || m->key_loaded)
		return m->key_loaded || !mask_uses_secret(m);
	m->key_loaded = secret_hmac_key(&m->hkey, m->secret_name, role, true);
	return m->key_loaded;
}

/*
 * Resolve the vault tokens of values[0..n) (duplicates allowed) for a
 * tokenize mask whose key is loaded: with create, values without a token
 * get one (the mover, stage.tokenize); without, they are only looked up
 * (the quarantine view, which must not write).
 */
void
mask_resolve_tokens(StageMask *m, const char **values, int n, bool create)
{
	/* the caller loaded the key, for the role the mask is used for */
	if (!m->key_loaded)
		elog(ERROR, "tokenize mask used before its key was loaded");
	vault_prepare(&m->vault, &m->hkey, m->secret_name, m->prefix, values, n,
				  create);
}

/*
 * Called by the mover once per batch with the column's non-null values
 * (quarantined rows included), before mask_apply is called on any of
 * them: the key is loaded (once per compiled contract), and tokenize
 * resolves every value of the batch against the vault at once, making the
 * missing tokens unless create is false (a preview, a dry run: a value
 * without a token then shows as having none).
 */
void
mask_prepare(StageMask *m, const char **values, int n, Oid role, bool create)
{
	if (mask_uses_secret(m))
	{
		/* the key lives with the compiled contract, in its context */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(m));

		mask_load_key(m, role);
		MemoryContextSwitchTo(old);
	}
	if (m->method == MASK_TOKENIZE)
		mask_resolve_tokens(m, values, n, create);
}

/* the masked form of value (NUL-terminated, len bytes); NULL for null */
char *
mask_apply(const StageMask *m, const char *value, int len)
{
	switch (m->method)
	{
		case MASK_HASH:
			if (!m->key_loaded)
				elog(ERROR, "hash mask used before its key was loaded");
			return mask_hash(&m->hkey, value, len, m->base64, m->length);
		case MASK_PSEUDONYM:
			if (!m->key_loaded)
				elog(ERROR, "pseudonym mask used before its key was loaded");
			return mask_pseudonym(&m->hkey, value, len, m->pseudo_kind, m->keep_domain);
		case MASK_PARTIAL:
			return mask_partial(value, len, m->keep_start, m->keep_end, m->fill);
		case MASK_EMAIL:
			return mask_email(value, len);
		case MASK_PHONE:
			return mask_phone(value, len, m->keep_end, m->fill);
		case MASK_CARD:
			return mask_card(value, len);
		case MASK_REDACT:
			return mask_redact(m->rx, value, len, m->replacement);
		case MASK_REDACT_PII:
			return mask_redact_pii(value, len, m->pii_kinds, m->replacement);
		case MASK_NULL:
			return NULL;
		case MASK_CONSTANT:
			return pstrdup(m->value);
		case MASK_GENERALIZE:
			if (m->bucket != (Datum) 0)
				return mask_generalize_number(value, m->bucket, m->range_label);
			return mask_generalize_time(value, m->unit);
		case MASK_NOISE:
			if (m->secret_name != NULL && !m->key_loaded)
				elog(ERROR, "noise mask used before its key was loaded");
			return mask_noise(value, m->ratio, m->secret_name ? &m->hkey : NULL,
							  m->seeded, m->seed);
		case MASK_TOKENIZE:
			return vault_lookup(m->vault, &m->hkey, value, len);
	}
	return NULL;
}

/*
 * BEFORE INSERT OR UPDATE trigger on stage.mask: check a mask against the
 * column it masks (mask_check_column), however it is stored (add_mask,
 * set_contract).  Rows whose pipeline or column cannot be resolved (a
 * restore that loads catalog rows before their pipeline) pass: add_mask
 * has checked those already.
 */
PG_FUNCTION_INFO_V1(stage_mask_check);
Datum
stage_mask_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int32		pipeline_id;
	char	   *column;
	char	   *method;
	Jsonb	   *args;
	Oid			target = InvalidOid;
	Oid			argtype = INT4OID;
	Datum		arg;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "stage_mask_check: must be a BEFORE ROW trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);
	pipeline_id = DatumGetInt32(heap_getattr(tup, SPI_fnumber(desc, "pipeline_id"), desc, &isnull));
	column = SPI_getvalue(tup, desc, SPI_fnumber(desc, "column_name"));
	method = SPI_getvalue(tup, desc, SPI_fnumber(desc, "method"));
	{
		Datum		a = heap_getattr(tup, SPI_fnumber(desc, "args"), desc, &isnull);

		args = isnull ? NULL : DatumGetJsonbP(a);
	}

	arg = Int32GetDatum(pipeline_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT target::pg_catalog.oid FROM stage.pipeline"
							  " WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read stage.pipeline");
	if (SPI_processed == 1)
		target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	if (OidIsValid(target) && column != NULL)
	{
		Relation	rel = try_relation_open(target, AccessShareLock);

		if (rel != NULL)
		{
			AttrNumber	attnum = attnameAttNum(rel, column, false);

			if (attnum > 0)
			{
				Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
				StageMask	m;

				mask_parse(&m, method, args);
				mask_check_column(&m, column, att->atttypid, att->atttypmod,
								  att->attnotnull);
			}
			relation_close(rel, AccessShareLock);
		}
	}
	return PointerGetDatum(tup);
}
