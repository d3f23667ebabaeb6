/*-------------------------------------------------------------------------
 *
 * transform.c
 *	  The transform methods of a contract: compile a method and its jsonb
 *	  arguments once (transform_compile), then apply it to one text value
 *	  at a time (transform_apply); and stage.transform, the same from SQL.
 *
 * Compiling checks the arguments against each method's allow-list and
 * raises ERROR 22023 with a hint naming what the method takes.  Applying
 * never raises on account of the value: a value that cannot be
 * transformed comes back as TR_FAIL with a SQLSTATE and a message, for the
 * batch to quarantine (and the SQL function to raise).  Only out of
 * memory and query cancel may throw.  Sizes are computed in Size and
 * checked against what a text value can hold before anything is
 * allocated; loops over the value check for interrupts.
 *
 * The pure text work is below this file (tf_text.c, tf_number.c,
 * tf_time.c: no backend state, fuzzed alone); here is what needs the
 * server: argument parsing, case mapping by collation (str_tolower),
 * Unicode normalization (common/unicode_norm.c, fed in short segments),
 * PCRE2 through regex.c, and JSON paths.
 *
 * Methods from, concat, coalesce (structural) and lookup, expression
 * (set-wise) are applied by the batch to whole rows or chunks: here their
 * arguments are checked and kept for the accessors at the end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "common/unicode_norm.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#include "stage.h"
#include "tf_number.h"
#include "tf_text.h"
#include "tf_time.h"
#include "transform.h"

/* the decomposition table: combining classes for normalization segments */
#include "common/unicode_norm_table.h"

/* what map {else} and lookup {on_missing} do with a value not found */
typedef enum TfOther
{
	TF_OTHER_KEEP,
	TF_OTHER_NULL,
	TF_OTHER_REJECT
} TfOther;

static const char *const tf_other_names[] = {"keep", "null", "reject", NULL};

/* a value shown in a message: at most this many characters */
#define TF_SHOW_CHARS	64

/*
 * Normalization works on segments that start at a boundary (see
 * tf_norm_boundary); a segment longer than this many characters (a base
 * and its combining marks) fails.  Unicode's stream-safe text format
 * allows 30 combining marks in a row; this also bounds the work of the
 * canonical reordering in unicode_normalize, which is quadratic in the
 * length of a run of marks.
 */
#define TF_NORM_SEGMENT 64

/* lower/upper: str_tolower allocates 4 bytes (wchar_t) per input byte */
#define TF_CASE_MAX		((Size) (MaxAllocSize / sizeof(wchar_t) - 16))

typedef struct TfMethodInfo
{
	const char *name;
	TransformMethod method;
	const char *const *keys;	/* allowed argument keys */
	const char *usage;			/* for hints: "Method x takes <usage>." */
} TfMethodInfo;

struct Transform
{
	const TfMethodInfo *info;
	/* trim */
	char	   *chars;			/* NULL: white space */
	int			charslen;
	/* lower, upper */
	Oid			collation;
	int			ascii_case;		/* the collation maps ASCII letters as ASCII: 1 yes, 0 no, -1 unknown */
	/* normalize */
	UnicodeNormalizationForm form;
	/* replace */
	char	   *from;
	int			fromlen;
	int		   *kmp;
	char	   *to;
	int			tolen;
	/* regex_replace */
	RxEntry    *rx;
	char	   *pattern;
	char	   *replacement;
	/* nullif, map (keys), boolean (true words) */
	TfSet		set;
	TfSet		set_false;		/* boolean */
	char	  **map_to;			/* map: by key index; NULL = SQL NULL */
	char	   *words;			/* boolean: the words, for hints */
	TfOther		other;			/* map else, lookup on_missing */
	/* default */
	char	   *value;
	/* number */
	TfNumberFormat number;
	/* date, timestamp */
	char	   *format;
	TfTimeFormat time;
	bool		has_zone;
	int			zone_offset;
	/* from, concat, coalesce */
	char	   *column;
	List	   *path;
	List	   *columns;
	List	   *paths;
	char	   *separator;
	/* lookup, expression */
	char	   *table;
	char	   *key;
	char	   *value_column;
	char	   *sql;
};

/* ----------------------------------------------------------------
 *		methods and their arguments
 * ---------------------------------------------------------------- */

static const char *const keys_none[] = {NULL};
static const char *const keys_trim[] = {"chars", NULL};
static const char *const keys_normalize[] = {"form", NULL};
static const char *const keys_replace[] = {"from", "to", NULL};
static const char *const keys_regex[] = {"pattern", "replacement", "flags", NULL};
static const char *const keys_values[] = {"values", NULL};
static const char *const keys_default[] = {"value", NULL};
static const char *const keys_map[] = {"values", "else", NULL};
static const char *const keys_number[] = {"decimal", "group", "currency", NULL};
static const char *const keys_boolean[] = {"true", "false", NULL};
static const char *const keys_date[] = {"format", NULL};
static const char *const keys_timestamp[] = {"format", "time_zone", NULL};
static const char *const keys_from[] = {"path", "column", NULL};
static const char *const keys_concat[] = {"columns", "separator", NULL};
static const char *const keys_coalesce[] = {"columns", "paths", NULL};
static const char *const keys_lookup[] = {"table", "key", "value", "on_missing", NULL};
static const char *const keys_expression[] = {"sql", NULL};

static const TfMethodInfo tf_methods[] = {
	{"trim", TF_TRIM, keys_trim,
	"{\"chars\": \"characters to remove\"} (optional; default white space)"},
	{"lower", TF_LOWER, keys_none, "no arguments"},
	{"upper", TF_UPPER, keys_none, "no arguments"},
	{"squish", TF_SQUISH, keys_none, "no arguments"},
	{"normalize", TF_NORMALIZE, keys_normalize,
	"{\"form\": \"NFC\" or \"NFKC\"} (optional; default NFC)"},
	{"replace", TF_REPLACE, keys_replace,
	"{\"from\": \"text\", \"to\": \"text\"} (from not empty)"},
	{"regex_replace", TF_REGEX_REPLACE, keys_regex,
	"{\"pattern\": \"PCRE2 pattern\", \"replacement\": \"text, $1 for a group\", \"flags\": \"of i, m, s, x, g\"} (flags optional)"},
	{"nullif", TF_NULLIF, keys_values,
	"{\"values\": [\"\", \"N/A\", ...]} (an array of at least one string)"},
	{"default", TF_DEFAULT, keys_default, "{\"value\": \"text\"}"},
	{"map", TF_MAP, keys_map,
	"{\"values\": {\"from\": \"to\", ...}, \"else\": \"keep\", \"null\" or \"reject\"} (else optional; default keep)"},
	{"number", TF_NUMBER, keys_number,
	"{\"decimal\": \".\" or \",\", \"group\": \",\", \".\", \" \", \"'\" or \"\", \"currency\": true or false} (all optional)"},
	{"boolean", TF_BOOLEAN, keys_boolean,
	"{\"true\": [\"yes\", ...], \"false\": [\"no\", ...]} (optional; default true, t, yes, y, 1, on and false, f, no, n, 0, off)"},
	{"date", TF_DATE, keys_date,
	"{\"format\": \"YYYY-MM-DD\"} (patterns YYYY YY MM Mon Month DD Dy Day HH24 HH12 HH MI SS MS US AM PM TZH TZM TZ, \"quoted text\")"},
	{"timestamp", TF_TIMESTAMP, keys_timestamp,
	"{\"format\": \"YYYY-MM-DD HH24:MI:SS\", \"time_zone\": \"+01:00\" or \"UTC\"} (time_zone optional; patterns YYYY YY MM Mon Month DD Dy Day HH24 HH12 HH MI SS MS US AM PM TZH TZM TZ, \"quoted text\")"},
	{"from", TF_FROM, keys_from,
	"{\"path\": \"a.b.c\"} or {\"column\": \"landing column\"} (exactly one)"},
	{"concat", TF_CONCAT, keys_concat,
	"{\"columns\": [\"a\", \"b\", ...], \"separator\": \" \"} (separator optional; default one space)"},
	{"coalesce", TF_COALESCE, keys_coalesce,
	"{\"columns\": [\"a\", \"b\", ...]} or {\"paths\": [\"a.b\", \"c\", ...]} (exactly one)"},
	{"lookup", TF_LOOKUP, keys_lookup,
	"{\"table\": \"schema.table\", \"key\": \"column\", \"value\": \"column\", \"on_missing\": \"keep\", \"null\" or \"reject\"} (on_missing optional; default keep)"},
	{"expression", TF_EXPRESSION, keys_expression, "{\"sql\": \"an SQL expression\"}"},
};

static const TfMethodInfo *
tf_lookup_method(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(tf_methods); i++)
		if (strcmp(tf_methods[i].name, name) == 0)
			return &tf_methods[i];
	return NULL;
}

static char *
tf_method_list(void)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	for (i = 0; i < lengthof(tf_methods); i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", tf_methods[i].name);
	return s.data;
}

/* an argument error: 22023, with the method's usage as the hint */
static void tf_arg_error(const TfMethodInfo *m, const char *message) pg_attribute_noreturn();

static void
tf_arg_error(const TfMethodInfo *m, const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 errhint("Method %s takes %s.", m->name, m->usage)));
}

/* refuse arguments that are not an object or carry keys the method does not take */
static void
tf_check_keys(const TfMethodInfo *m, Jsonb *args)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (args == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(args) || JB_ROOT_IS_SCALAR(args))
		tf_arg_error(m, psprintf("arguments of transform %s must be a JSON object", m->name));
	it = JsonbIteratorInit(&args->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const char *const *k;

		if (tok != WJB_KEY)
			continue;
		for (k = m->keys; *k; k++)
			if (strlen(*k) == v.val.string.len &&
				memcmp(*k, v.val.string.val, v.val.string.len) == 0)
				break;
		if (*k == NULL)
			tf_arg_error(m, psprintf("unknown argument \"%s\" for transform %s",
									 pnstrdup(v.val.string.val, v.val.string.len),
									 m->name));
	}
}

/* the argument key (JSON null counts as absent); required: absent is an error */
static bool
tf_arg(const TfMethodInfo *m, Jsonb *args, const char *key, bool required,
	   JsonbValue *v)
{
	if (args != NULL &&
		getKeyJsonValueFromContainer(&args->root, key, strlen(key), v) != NULL &&
		v->type != jbvNull)
		return true;
	if (required)
		tf_arg_error(m, psprintf("transform %s needs argument \"%s\"", m->name, key));
	return false;
}

static char *
tf_arg_type_error(const TfMethodInfo *m, const char *key, const char *type)
{
	tf_arg_error(m, psprintf("argument \"%s\" of transform %s must be %s", key, m->name, type));
	return NULL;
}

/* a string argument, or dflt when absent (and not required) */
static char *
tf_arg_string(const TfMethodInfo *m, Jsonb *args, const char *key,
			  bool required, const char *dflt)
{
	JsonbValue	v;

	if (!tf_arg(m, args, key, required, &v))
		return dflt ? pstrdup(dflt) : NULL;
	if (v.type != jbvString)
		return tf_arg_type_error(m, key, "a string");
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* a non-empty string argument */
static char *
tf_arg_nonempty(const TfMethodInfo *m, Jsonb *args, const char *key,
				bool required)
{
	char	   *s = tf_arg_string(m, args, key, required, NULL);

	if (s != NULL && s[0] == '\0')
		tf_arg_error(m, psprintf("argument \"%s\" of transform %s must not be empty",
								 key, m->name));
	return s;
}

/* one of choices (NULL-terminated), as its index; dflt when absent */
static int
tf_arg_choice(const TfMethodInfo *m, Jsonb *args, const char *key,
			  const char *const *choices, int dflt)
{
	char	   *s = tf_arg_string(m, args, key, false, NULL);
	int			i;
	StringInfoData valid;

	if (s == NULL)
		return dflt;
	for (i = 0; choices[i]; i++)
		if (strcmp(choices[i], s) == 0)
			return i;
	initStringInfo(&valid);
	for (i = 0; choices[i]; i++)
		appendStringInfo(&valid, "%s\"%s\"", i == 0 ? "" : choices[i + 1] ? ", " : " or ",
						 choices[i]);
	tf_arg_error(m, psprintf("argument \"%s\" of transform %s must be %s", key, m->name,
							 valid.data));
	return dflt;
}

/*
 * A JSON value as ->> gives it: strings unquoted, numbers and booleans
 * printed, objects and arrays as JSON text, null as NULL.
 */
char *
transform_json_text(const JsonbValue *v)
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
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return NULL;
	}
}

/* a scalar argument value as text (NULL for JSON null and for containers) */
static char *
tf_scalar_text(const JsonbValue *v)
{
	return v->type == jbvBinary ? NULL : transform_json_text(v);
}

/*
 * An array argument of strings: at least one, each non-empty unless
 * empty_ok.  The elements as a List of char *.
 */
static List *
tf_arg_strings(const TfMethodInfo *m, Jsonb *args, const char *key,
			   bool required, bool empty_ok)
{
	JsonbValue	v;
	JsonbValue	e;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	List	   *out = NIL;
	const char *what = empty_ok ? "an array of strings" : "an array of non-empty strings";

	if (!tf_arg(m, args, key, required, &v))
		return NIL;
	if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
		return (List *) tf_arg_type_error(m, key, what);
	it = JsonbIteratorInit(v.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString || (!empty_ok && e.val.string.len == 0))
			return (List *) tf_arg_type_error(m, key, what);
		out = lappend(out, pnstrdup(e.val.string.val, e.val.string.len));
	}
	if (out == NIL)
		tf_arg_error(m, psprintf("argument \"%s\" of transform %s must hold at least one string",
								 key, m->name));
	return out;
}

/* a column name: non-empty, shorter than NAMEDATALEN */
static void
tf_check_column(const TfMethodInfo *m, const char *key, const char *name)
{
	if (strlen(name) >= NAMEDATALEN)
		tf_arg_error(m, psprintf("argument \"%s\" of transform %s holds a name longer than %d bytes",
								 key, m->name, NAMEDATALEN - 1));
}

/*
 * A path: a dotted string ("a.b.c", no empty key) or an array of keys
 * (which may hold dots).  A List of char *.
 */
static List *
tf_path(const TfMethodInfo *m, const char *key, const JsonbValue *v)
{
	List	   *path = NIL;

	if (v->type == jbvString)
	{
		const char *s = v->val.string.val;
		const char *end = s + v->val.string.len;
		const char *p = s;

		for (;;)
		{
			const char *dot = memchr(p, '.', end - p);
			const char *stop = dot ? dot : end;

			if (stop == p)
				tf_arg_error(m, psprintf("argument \"%s\" of transform %s has an empty key in path \"%.*s\"",
										 key, m->name, (int) (end - s), s));
			path = lappend(path, pnstrdup(p, stop - p));
			if (dot == NULL)
				break;
			p = dot + 1;
		}
		return path;
	}
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbIteratorToken tok;
		JsonbValue	e;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (e.type != jbvString || e.val.string.len == 0)
				break;
			path = lappend(path, pnstrdup(e.val.string.val, e.val.string.len));
		}
		if (tok == WJB_DONE && path != NIL)
			return path;
	}
	tf_arg_error(m, psprintf("argument \"%s\" of transform %s must be a path: \"a.b.c\" or an array of keys",
							 key, m->name));
	return NIL;
}

/* ----------------------------------------------------------------
 *		compiling
 * ---------------------------------------------------------------- */

static void
tf_compile_regex(Transform *t, Jsonb *args)
{
	const TfMethodInfo *m = t->info;
	char	   *flags = tf_arg_string(m, args, "flags", false, "");
	char	   *f;
	char	   *o;
	char	   *r;

	t->pattern = tf_arg_nonempty(m, args, "pattern", true);
	t->replacement = tf_arg_string(m, args, "replacement", true, NULL);
	/* every match is replaced: g is accepted, as stage.regex_replace takes it */
	for (f = o = flags; *f; f++)
	{
		if (strchr("imsx", *f))
			*o++ = *f;
		else if (*f != 'g')
			tf_arg_error(m, psprintf("invalid regular expression flag \"%c\" for transform %s",
									 *f, m->name));
	}
	*o = '\0';

	/*
	 * PCRE2 reads the replacement only when something matched: check it
	 * here, so a bad one is refused when declared rather than per row.
	 * $$, $n, ${n}, $name, ${name} and $*MARK are what it understands.
	 */
	for (r = t->replacement; *r; r++)
	{
		const char *q;

		if (*r != '$')
			continue;
		q = r + 1;
		if (*q == '$')
			q++;
		else if (*q == '{')
		{
			const char *close = strchr(q, '}');

			q++;
			if (*q == '*')
				q++;
			if (close == NULL || close == q ||
				strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
				(size_t) (close - q))
				tf_arg_error(m, psprintf("invalid group reference at character %d of the replacement",
										 (int) (r - t->replacement) + 1));
			q = close + 1;
		}
		else
		{
			if (*q == '*')
				q++;
			if (strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == 0)
				tf_arg_error(m, psprintf("invalid group reference at character %d of the replacement (write $$ for a dollar sign)",
										 (int) (r - t->replacement) + 1));
		}
		r = (char *) q - 1;
	}
	t->rx = rx_compile(t->pattern, flags);
}

/* words (nullif values, boolean words) as a set */
static void
tf_compile_set(TfSet *set, List *words, bool fold)
{
	int			n = list_length(words);
	char	  **strs = palloc(sizeof(char *) * n);
	int		   *lens = palloc(sizeof(int) * n);
	ListCell   *lc;
	int			i = 0;

	foreach(lc, words)
	{
		strs[i] = lfirst(lc);
		lens[i] = strlen(strs[i]);
		i++;
	}
	tf_set_build(set, strs, lens, n, fold);
}

static void
tf_compile_map(Transform *t, Jsonb *args)
{
	const TfMethodInfo *m = t->info;
	JsonbValue	v;
	JsonbValue	e;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	int			n;
	int			i = 0;
	char	  **keys;
	int		   *lens;

	(void) tf_arg(m, args, "values", true, &v);
	if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data) ||
		JsonContainerSize(v.val.binary.data) == 0)
		tf_arg_type_error(m, "values", "an object of at least one key");
	n = JsonContainerSize(v.val.binary.data);
	keys = palloc(sizeof(char *) * n);
	lens = palloc(sizeof(int) * n);
	t->map_to = palloc(sizeof(char *) * n);
	it = JsonbIteratorInit(v.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			keys[i] = pnstrdup(e.val.string.val, e.val.string.len);
			lens[i] = e.val.string.len;
		}
		else if (tok == WJB_VALUE)
		{
			t->map_to[i] = tf_scalar_text(&e);
			if (t->map_to[i] == NULL && e.type != jbvNull)
				tf_arg_error(m, psprintf("value of \"%s\" in argument \"values\" of transform map must be a string, a number, a boolean or null",
										 keys[i]));
			i++;
		}
	}
	tf_set_build(&t->set, keys, lens, n, false);
	t->other = tf_arg_choice(m, args, "else", tf_other_names, TF_OTHER_KEEP);
}

static void
tf_compile_number(Transform *t, Jsonb *args)
{
	const TfMethodInfo *m = t->info;
	static const char *const decimals[] = {".", ",", NULL};
	static const char *const groups[] = {",", ".", " ", "'", "", NULL};
	JsonbValue	v;
	int			d = tf_arg_choice(m, args, "decimal", decimals, 0);
	int			g = tf_arg_choice(m, args, "group", groups, d == 0 ? 0 : 1);

	t->number.decimal = decimals[d][0];
	t->number.group = groups[g][0];
	if (t->number.group == t->number.decimal)
		tf_arg_error(m, psprintf("the group separator of transform number cannot be its decimal separator \"%c\"",
								 t->number.decimal));
	t->number.currency = false;
	if (tf_arg(m, args, "currency", false, &v))
	{
		if (v.type != jbvBool)
			tf_arg_type_error(m, "currency", "true or false");
		t->number.currency = v.val.boolean;
	}
	t->number.utf8 = (GetDatabaseEncoding() == PG_UTF8);
}

/* a List of the words of a NULL-terminated array */
static List *
tf_word_list(const char *const *words)
{
	List	   *l = NIL;

	for (; *words; words++)
		l = lappend(l, pstrdup(*words));
	return l;
}

static void
tf_compile_boolean(Transform *t, Jsonb *args)
{
	static const char *const default_true[] = {"true", "t", "yes", "y", "1", "on", NULL};
	static const char *const default_false[] = {"false", "f", "no", "n", "0", "off", NULL};
	const TfMethodInfo *m = t->info;
	List	   *yes = tf_arg_strings(m, args, "true", false, true);
	List	   *no = tf_arg_strings(m, args, "false", false, true);
	StringInfoData words;
	ListCell   *lc;

	if (yes == NIL)
		yes = tf_word_list(default_true);
	if (no == NIL)
		no = tf_word_list(default_false);
	tf_compile_set(&t->set, yes, true);
	tf_compile_set(&t->set_false, no, true);
	initStringInfo(&words);
	appendStringInfoString(&words, "for true ");
	foreach(lc, yes)
		appendStringInfo(&words, "%s\"%s\"", lc == list_head(yes) ? "" : ", ",
						 (char *) lfirst(lc));
	appendStringInfoString(&words, "; for false ");
	foreach(lc, no)
	{
		const char *w = lfirst(lc);

		if (tf_set_find(&t->set, w, strlen(w)) >= 0)
			tf_arg_error(m, psprintf("\"%s\" is a word for both true and false", w));
		appendStringInfo(&words, "%s\"%s\"", lc == list_head(no) ? "" : ", ", w);
	}
	t->words = words.data;
}

static void
tf_compile_time(Transform *t, Jsonb *args)
{
	const TfMethodInfo *m = t->info;
	char	   *why;
	char	   *zone;

	t->format = tf_arg_nonempty(m, args, "format", true);
	why = tf_time_compile(t->format, &t->time);
	if (why != NULL)
		tf_arg_error(m, psprintf("invalid format \"%s\" for transform %s: %s",
								 t->format, m->name, why));
	if (t->info->method != TF_TIMESTAMP)
		return;
	zone = tf_arg_string(m, args, "time_zone", false, NULL);
	if (zone == NULL)
		return;
	if (!tf_time_offset(zone, strlen(zone), &t->zone_offset))
		tf_arg_error(m, psprintf("invalid time_zone \"%s\" for transform timestamp: a fixed offset (+01:00, -0530, UTC or Z) is needed",
								 zone));
	t->has_zone = true;
}

static void
tf_compile_structural(Transform *t, Jsonb *args)
{
	const TfMethodInfo *m = t->info;
	JsonbValue	v;
	ListCell   *lc;

	switch (m->method)
	{
		case TF_FROM:
			t->column = tf_arg_nonempty(m, args, "column", false);
			if (tf_arg(m, args, "path", false, &v))
			{
				if (t->column != NULL)
					tf_arg_error(m, "transform from takes either \"path\" or \"column\", not both");
				t->path = tf_path(m, "path", &v);
			}
			else if (t->column == NULL)
				tf_arg_error(m, "transform from needs argument \"path\" or \"column\"");
			else
				tf_check_column(m, "column", t->column);
			break;
		case TF_CONCAT:
			t->columns = tf_arg_strings(m, args, "columns", true, false);
			t->separator = tf_arg_string(m, args, "separator", false, " ");
			break;
		case TF_COALESCE:
			t->columns = tf_arg_strings(m, args, "columns", false, false);
			if (tf_arg(m, args, "paths", false, &v))
			{
				JsonbIterator *it;
				JsonbIteratorToken tok;
				JsonbValue	e;

				if (t->columns != NIL)
					tf_arg_error(m, "transform coalesce takes either \"columns\" or \"paths\", not both");
				if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
					tf_arg_type_error(m, "paths", "an array of paths");
				it = JsonbIteratorInit(v.val.binary.data);
				while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
					if (tok == WJB_ELEM)
						t->paths = lappend(t->paths, tf_path(m, "paths", &e));
				if (t->paths == NIL)
					tf_arg_error(m, "argument \"paths\" of transform coalesce must hold at least one path");
			}
			else if (t->columns == NIL)
				tf_arg_error(m, "transform coalesce needs argument \"columns\" or \"paths\"");
			break;
		case TF_LOOKUP:
			{
				char	   *copy;
				List	   *names;

				t->table = tf_arg_nonempty(m, args, "table", true);
				copy = pstrdup(t->table);
				if (!SplitIdentifierString(copy, '.', &names) || list_length(names) != 2)
					tf_arg_error(m, psprintf("argument \"table\" of transform lookup must be a schema-qualified table name, not \"%s\"",
											 t->table));
				t->key = tf_arg_nonempty(m, args, "key", true);
				t->value_column = tf_arg_nonempty(m, args, "value", true);
				tf_check_column(m, "key", t->key);
				tf_check_column(m, "value", t->value_column);
				t->other = tf_arg_choice(m, args, "on_missing", tf_other_names, TF_OTHER_KEEP);
			}
			break;
		case TF_EXPRESSION:
			t->sql = tf_arg_nonempty(m, args, "sql", true);
			break;
		default:
			elog(ERROR, "transform method %d is not structural", (int) m->method);
	}
	foreach(lc, t->columns)
		tf_check_column(m, "columns", lfirst(lc));
}

Transform *
transform_compile(const char *method, Jsonb *args, MemoryContext cxt)
{
	const TfMethodInfo *m = tf_lookup_method(method);
	MemoryContext old;
	Transform  *t;

	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown transform method \"%s\"", method),
				 errhint("Methods are: %s.", tf_method_list())));
	tf_check_keys(m, args);

	old = MemoryContextSwitchTo(cxt);
	t = palloc0(sizeof(Transform));
	t->info = m;
	t->collation = DEFAULT_COLLATION_OID;
	t->ascii_case = -1;
	switch (m->method)
	{
		case TF_TRIM:
			t->chars = tf_arg_nonempty(m, args, "chars", false);
			t->charslen = t->chars ? strlen(t->chars) : 0;
			break;
		case TF_LOWER:
		case TF_UPPER:
		case TF_SQUISH:
			break;
		case TF_NORMALIZE:
			{
				static const char *const forms[] = {"NFC", "NFKC", NULL};

				if (GetDatabaseEncoding() != PG_UTF8)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("transform normalize needs a database with encoding UTF8"),
							 errhint("This database's encoding is %s; Unicode normalization applies to UTF-8 text only.",
									 GetDatabaseEncodingName())));
				t->form = tf_arg_choice(m, args, "form", forms, 0) == 0 ?
					UNICODE_NFC : UNICODE_NFKC;
			}
			break;
		case TF_REPLACE:
			t->from = tf_arg_nonempty(m, args, "from", true);
			t->to = tf_arg_string(m, args, "to", true, NULL);
			t->fromlen = strlen(t->from);
			t->tolen = strlen(t->to);
			t->kmp = tf_replace_prepare(t->from, t->fromlen);
			break;
		case TF_REGEX_REPLACE:
			tf_compile_regex(t, args);
			break;
		case TF_NULLIF:
			tf_compile_set(&t->set, tf_arg_strings(m, args, "values", true, true), false);
			break;
		case TF_DEFAULT:
			{
				JsonbValue	v;

				(void) tf_arg(m, args, "value", true, &v);
				t->value = tf_scalar_text(&v);
				if (t->value == NULL)
					tf_arg_type_error(m, "value", "a string, a number or a boolean");
			}
			break;
		case TF_MAP:
			tf_compile_map(t, args);
			break;
		case TF_NUMBER:
			tf_compile_number(t, args);
			break;
		case TF_BOOLEAN:
			tf_compile_boolean(t, args);
			break;
		case TF_DATE:
		case TF_TIMESTAMP:
			tf_compile_time(t, args);
			break;
		case TF_FROM:
		case TF_CONCAT:
		case TF_COALESCE:
		case TF_LOOKUP:
		case TF_EXPRESSION:
			tf_compile_structural(t, args);
			break;
	}
	MemoryContextSwitchTo(old);
	return t;
}

TransformMethod
transform_method(const Transform *t)
{
	return t->info->method;
}

const char *
transform_method_name(const Transform *t)
{
	return t->info->name;
}

bool
transform_per_value(const Transform *t)
{
	return t->info->method <= TF_TIMESTAMP;
}

void
transform_set_collation(Transform *t, Oid collation)
{
	t->collation = OidIsValid(collation) ? collation : DEFAULT_COLLATION_OID;
	t->ascii_case = -1;
}

/*
 * Does the collation map the ASCII letters to each other as ASCII does
 * (not, say, i to a dotted capital I)?  Then a value of ASCII only is
 * mapped byte by byte, without the collation's machinery.
 */
static bool
tf_ascii_case(Transform *t)
{
	static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
	static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	if (t->ascii_case < 0)
	{
		char	   *u = str_toupper(lower, strlen(lower), t->collation);
		char	   *l = str_tolower(upper, strlen(upper), t->collation);

		t->ascii_case = (strcmp(u, upper) == 0 && strcmp(l, lower) == 0) ? 1 : 0;
		pfree(u);
		pfree(l);
	}
	return t->ascii_case == 1;
}

/* ----------------------------------------------------------------
 *		applying
 * ---------------------------------------------------------------- */

static TransformResult
tf_fail(const char **sqlstate, char **message, const char *state, char *msg)
{
	*sqlstate = state;
	*message = msg;
	return TR_FAIL;
}

static TransformResult
tf_too_long(const Transform *t, const char **sqlstate, char **message)
{
	return tf_fail(sqlstate, message, "54000",
				   psprintf("the result of transform %s would be longer than a text value can be",
							t->info->name));
}

/* the value quoted for a message, cut at TF_SHOW_CHARS characters */
static char *
tf_show(const char *s, int len)
{
	int			cut = pg_mbcliplen(s, len, TF_SHOW_CHARS);

	return psprintf("\"%.*s\"%s", cut, s, cut < len ? "..." : "");
}

static TransformResult
tf_apply_case(const Transform *t, const char *in, Size len, char **out,
			  const char **sqlstate, char **message)
{
	if (len > TF_CASE_MAX)
		return tf_fail(sqlstate, message, "54000",
					   psprintf("transform %s takes values of at most %zu bytes",
								t->info->name, TF_CASE_MAX));
	if (tf_ascii_case((Transform *) t))
	{
		bool		to_lower = (t->info->method == TF_LOWER);
		Size		i;
		char	   *o = NULL;

		for (i = 0; i < len && !IS_HIGHBIT_SET(in[i]); i++)
		{
			char		c = in[i];
			char		m = to_lower ? ((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c) :
				((c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c);

			if (m != c && o == NULL)
			{
				o = palloc(len + 1);
				memcpy(o, in, len + 1);
			}
			if (o != NULL)
				o[i] = m;
		}
		if (i == len)
		{
			/* ASCII only: mapped here, the value itself when nothing changed */
			*out = o ? o : (char *) in;
			return TR_VALUE;
		}
		if (o != NULL)
			pfree(o);
	}
	*out = (t->info->method == TF_LOWER) ?
		str_tolower(in, len, t->collation) : str_toupper(in, len, t->collation);
	return TR_VALUE;
}

/*
 * Is c a normalization boundary: can a segment start there without
 * changing the result?  It must decompose to a starter (combining class
 * 0) first, so nothing is reordered across it, and that starter must
 * never compose with a character before it (quick check not MAYBE).
 * ASCII characters are boundaries.
 */
static int
tf_norm_cmp(const void *key, const void *entry)
{
	uint32		c = *(const uint32 *) key;
	uint32		e = ((const pg_unicode_decomposition *) entry)->codepoint;

	return c < e ? -1 : (c > e);
}

static bool
tf_norm_boundary(pg_wchar c, UnicodeNormalizationForm form)
{
	bool		compat = (form == UNICODE_NFKC);
	pg_wchar	one[2] = {c, 0};
	int			depth;

	if (c < 0x80)
		return true;
	if (unicode_is_normalized_quickcheck(form, one) == UNICODE_NORM_QC_MAYBE)
		return false;
	for (depth = 0; depth < 8; depth++)
	{
		const pg_unicode_decomposition *e =
			bsearch(&c, UnicodeDecompMain, lengthof(UnicodeDecompMain),
					sizeof(pg_unicode_decomposition), tf_norm_cmp);

		if (e == NULL)
			break;
		if (e->comb_class != 0)
			return false;
		if (DECOMPOSITION_SIZE(e) == 0 || (!compat && DECOMPOSITION_IS_COMPAT(e)))
			break;
		c = DECOMPOSITION_IS_INLINE(e) ? e->dec_index :
			UnicodeDecomp_codepoints[e->dec_index];
	}
	one[0] = c;
	return unicode_is_normalized_quickcheck(form, one) != UNICODE_NORM_QC_MAYBE;
}

/*
 * One segment: kept as it is when the quick check says it is normalized,
 * else normalized and appended.  *changed: the output differs.
 */
static bool
tf_norm_segment(const Transform *t, pg_wchar *seg, int n, const char *in,
				Size seg_start, Size seg_end, Size *done, TfBuf *b, bool *changed)
{
	pg_wchar   *norm;
	pg_wchar   *w;

	seg[n] = 0;
	if (unicode_is_normalized_quickcheck(t->form, seg) == UNICODE_NORM_QC_YES)
		return true;
	norm = unicode_normalize(t->form, seg);
	if (!*changed)
	{
		tf_buf_init(b, seg_end + (seg_end >> 3));
		*changed = true;
	}
	if (!tf_buf_append(b, in + *done, seg_start - *done))
		return false;
	for (w = norm; *w; w++)
	{
		unsigned char utf8[8];

		unicode_to_utf8(*w, utf8);
		if (!tf_buf_append(b, (char *) utf8, pg_utf_mblen(utf8)))
			return false;
	}
	pfree(norm);
	*done = seg_end;
	return true;
}

static TransformResult
tf_apply_normalize(const Transform *t, const char *in, Size len, char **out,
				   const char **sqlstate, char **message)
{
	pg_wchar	seg[TF_NORM_SEGMENT + 1];
	int			n = 0;
	bool		ascii_seg = true;	/* the segment is one ASCII character */
	Size		seg_start = 0;
	Size		done = 0;		/* in[0..done) is settled: copied or normalized */
	Size		pos = 0;
	bool		changed = false;
	TfBuf		b;

	while (pos < len)
	{
		const unsigned char *p = (const unsigned char *) in + pos;
		pg_wchar	c = (*p < 0x80) ? *p : utf8_to_unicode(p);
		int			l = (*p < 0x80) ? 1 : pg_utf_mblen(p);

		if (n > 0 && tf_norm_boundary(c, t->form))
		{
			CHECK_FOR_INTERRUPTS();
			if (!ascii_seg &&
				!tf_norm_segment(t, seg, n, in, seg_start, pos, &done, &b, &changed))
				return tf_too_long(t, sqlstate, message);
			n = 0;
			ascii_seg = true;
			seg_start = pos;
		}
		if (n == TF_NORM_SEGMENT)
			return tf_fail(sqlstate, message, "54000",
						   psprintf("transform normalize takes at most %d combining characters in a row (character %d)",
									TF_NORM_SEGMENT - 1,
									pg_mbstrlen_with_len(in, pos) + 1));
		if (n > 0 || c >= 0x80)
			ascii_seg = false;
		seg[n++] = c;
		pos += l;
	}
	if (n > 0 && !ascii_seg &&
		!tf_norm_segment(t, seg, n, in, seg_start, pos, &done, &b, &changed))
		return tf_too_long(t, sqlstate, message);
	if (!changed)
	{
		*out = (char *) in;
		return TR_VALUE;
	}
	if (!tf_buf_append(&b, in + done, len - done))
		return tf_too_long(t, sqlstate, message);
	*out = tf_buf_finish(&b);
	return TR_VALUE;
}

static TransformResult
tf_apply_regex(const Transform *t, const char *in, Size len, char **out,
			   const char **sqlstate, char **message)
{
	int			status;
	char	   *res;

	/* rx_replace_all's first output buffer: len * 1.5 + replacement + 64 */
	if (len + len / 2 + strlen(t->replacement) + 65 > MaxAllocSize)
		return tf_too_long(t, sqlstate, message);
	res = rx_replace_all(t->rx, in, len, t->replacement, &status);
	if (status == RX_LIMIT)
		return tf_fail(sqlstate, message, "54000",
					   psprintf("pattern %s exceeded stage.regex_match_limit", t->pattern));
	if (res == NULL)
		return tf_fail(sqlstate, message, "2201B",
					   psprintf("replacing matches of pattern %s failed", t->pattern));
	if (strlen(res) > TF_MAX_TEXT)
		return tf_too_long(t, sqlstate, message);
	*out = res;
	return TR_VALUE;
}

static TransformResult
tf_apply_time(const Transform *t, const char *in, Size len, char **out,
			  const char **sqlstate, char **message)
{
	TfTimeValue v;
	char	   *why;
	int			r;

	r = tf_time_parse(&t->time, in, (int) len, &v, &why);
	if (r != TF_TIME_OK)
		return tf_fail(sqlstate, message, r == TF_TIME_RANGE ? "22008" : "22007",
					   psprintf("invalid %s: %s", t->info->name, why));
	if (t->info->method == TF_DATE)
		*out = tf_time_date_text(&v);
	else
	{
		if (!v.has_offset && t->has_zone)
		{
			v.has_offset = true;
			v.offset = t->zone_offset;
		}
		*out = tf_time_timestamp_text(&v);
	}
	return TR_VALUE;
}

TransformResult
transform_apply(const Transform *t, const char *in, char **out,
				const char **sqlstate, char **message)
{
	Size		len;
	int			i;

	*out = NULL;
	*sqlstate = NULL;
	*message = NULL;
	if (!transform_per_value(t))
		return tf_fail(sqlstate, message, "22023",
					   psprintf("transform method \"%s\" runs only in a batch", t->info->name));
	if (in == NULL)
	{
		if (t->info->method != TF_DEFAULT)
			return TR_NULL;
		*out = pstrdup(t->value);
		return TR_VALUE;
	}
	len = strlen(in);
	/* a text value is below 1 GB, so its length fits an int */
	if (len > TF_MAX_TEXT)
		return tf_too_long(t, sqlstate, message);

	switch (t->info->method)
	{
		case TF_TRIM:
			{
				int			start;
				int			end;

				tf_trim(in, (int) len, t->chars, t->charslen,
						GetDatabaseEncoding() == PG_UTF8, &start, &end);
				*out = (start == 0 && end == (int) len) ? (char *) in :
					pnstrdup(in + start, end - start);
			}
			return TR_VALUE;
		case TF_LOWER:
		case TF_UPPER:
			return tf_apply_case(t, in, len, out, sqlstate, message);
		case TF_SQUISH:
			*out = tf_squish(in, (int) len, GetDatabaseEncoding() == PG_UTF8, &i);
			return TR_VALUE;
		case TF_NORMALIZE:
			return tf_apply_normalize(t, in, len, out, sqlstate, message);
		case TF_REPLACE:
			{
				Size		outlen;

				switch (tf_replace(in, (int) len, t->from, t->fromlen, t->kmp,
								   t->to, t->tolen, out, &outlen))
				{
					case TF_REPLACE_NONE:
						*out = (char *) in;
						break;
					case TF_REPLACE_TOO_LONG:
						return tf_too_long(t, sqlstate, message);
				}
			}
			return TR_VALUE;
		case TF_REGEX_REPLACE:
			return tf_apply_regex(t, in, len, out, sqlstate, message);
		case TF_NULLIF:
			if (tf_set_find(&t->set, in, (int) len) >= 0)
				return TR_NULL;
			*out = (char *) in;
			return TR_VALUE;
		case TF_DEFAULT:
			*out = (char *) in;
			return TR_VALUE;
		case TF_MAP:
			i = tf_set_find(&t->set, in, (int) len);
			if (i >= 0)
			{
				if (t->map_to[i] == NULL)
					return TR_NULL;
				*out = pstrdup(t->map_to[i]);
				return TR_VALUE;
			}
			if (t->other == TF_OTHER_NULL)
				return TR_NULL;
			if (t->other == TF_OTHER_REJECT)
				return tf_fail(sqlstate, message, "22023",
							   psprintf("value %s is not in the map", tf_show(in, (int) len)));
			*out = (char *) in;
			return TR_VALUE;
		case TF_NUMBER:
			if (!tf_number(&t->number, in, (int) len, out, message))
			{
				*sqlstate = "22P02";
				return TR_FAIL;
			}
			return TR_VALUE;
		case TF_BOOLEAN:
			if (tf_set_find(&t->set, in, (int) len) >= 0)
				*out = pstrdup("true");
			else if (tf_set_find(&t->set_false, in, (int) len) >= 0)
				*out = pstrdup("false");
			else
				return tf_fail(sqlstate, message, "22P02",
							   pstrdup("invalid boolean: not a word for true or false"));
			return TR_VALUE;
		case TF_DATE:
		case TF_TIMESTAMP:
			return tf_apply_time(t, in, len, out, sqlstate, message);
		default:
			break;
	}
	return tf_fail(sqlstate, message, "22023",
				   psprintf("transform method \"%s\" runs only in a batch", t->info->name));
}

/* ----------------------------------------------------------------
 *		accessors for the batch
 * ---------------------------------------------------------------- */

const char *
transform_from_column(const Transform *t)
{
	return t->column;
}

List *
transform_from_path(const Transform *t)
{
	return t->path;
}

List *
transform_columns(const Transform *t)
{
	return t->columns;
}

List *
transform_paths(const Transform *t)
{
	return t->paths;
}

const char *
transform_separator(const Transform *t)
{
	return t->separator;
}

const char *
transform_lookup_table(const Transform *t)
{
	return t->table;
}

const char *
transform_lookup_key(const Transform *t)
{
	return t->key;
}

const char *
transform_lookup_value(const Transform *t)
{
	return t->value_column;
}

const char *
transform_on_missing(const Transform *t)
{
	return t->info->method == TF_LOOKUP ? tf_other_names[t->other] : NULL;
}

const char *
transform_expression(const Transform *t)
{
	return t->sql;
}

char *
transform_json_path(Jsonb *jb, List *path)
{
	JsonbContainer *c = &jb->root;
	JsonbValue	v;
	ListCell   *lc;

	if (path == NIL)
	{
		if (JB_ROOT_IS_SCALAR(jb))
			return JsonbExtractScalar(c, &v) ? transform_json_text(&v) : NULL;
		return JsonbToCString(NULL, c, VARSIZE(jb));
	}
	foreach(lc, path)
	{
		const char *key = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (!JsonContainerIsObject(c) || JsonContainerIsScalar(c))
			return NULL;
		if (getKeyJsonValueFromContainer(c, key, strlen(key), &v) == NULL)
			return NULL;
		if (lnext(path, lc) == NULL)
			return transform_json_text(&v);
		if (v.type != jbvBinary)
			return NULL;
		c = v.val.binary.data;
	}
	return NULL;
}

/* ----------------------------------------------------------------
 *		stage.transform(value, method, args)
 * ---------------------------------------------------------------- */

/* the compiled transform of the last call, in fn_extra */
typedef struct TfCallCache
{
	MemoryContext cxt;
	char	   *method;
	Jsonb	   *args;			/* NULL: none given */
	Oid			collation;
	Transform  *t;
} TfCallCache;

static Transform *
tf_cached(FunctionCallInfo fcinfo, const char *method, Jsonb *args, Oid collation)
{
	TfCallCache *cache = fcinfo->flinfo->fn_extra;
	MemoryContext old;

	if (cache != NULL && cache->t != NULL && strcmp(cache->method, method) == 0 &&
		cache->collation == collation &&
		((args == NULL && cache->args == NULL) ||
		 (args != NULL && cache->args != NULL && VARSIZE(args) == VARSIZE(cache->args) &&
		  memcmp(args, cache->args, VARSIZE(args)) == 0)))
		return cache->t;
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TfCallCache));
		cache->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "stage.transform",
										   ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = cache;
	}
	MemoryContextReset(cache->cxt);
	cache->t = NULL;
	cache->t = transform_compile(method, args, cache->cxt);
	transform_set_collation(cache->t, collation);
	old = MemoryContextSwitchTo(cache->cxt);
	cache->method = pstrdup(method);
	cache->args = NULL;
	if (args != NULL)
	{
		/* a byte copy: a jsonb holds zero bytes, pnstrdup would stop at one */
		cache->args = palloc(VARSIZE(args));
		memcpy(cache->args, args, VARSIZE(args));
	}
	cache->collation = collation;
	MemoryContextSwitchTo(old);
	return cache->t;
}

/* what to do about a failure, for the SQL caller */
static char *
tf_failure_hint(const Transform *t, const char *sqlstate, const char *message)
{
	if (strncmp(message, "the result of", 13) == 0)
		return pstrdup("A text value holds at most 1 GB.");
	switch (t->info->method)
	{
		case TF_REGEX_REPLACE:
			if (strcmp(sqlstate, "54000") == 0)
				return pstrdup("Simplify the pattern (avoid nested quantifiers) or raise stage.regex_match_limit and stage.regex_depth_limit.");
			break;
		case TF_NORMALIZE:
			return pstrdup("Unicode's stream-safe text format allows 30 combining characters in a row; remove the excess first (regex_replace).");
		case TF_MAP:
			return pstrdup("Add the value to \"values\", or set \"else\" to \"keep\" or \"null\".");
		case TF_NUMBER:
			return psprintf("Digits are read with decimal separator \"%c\" and %s%s.",
							t->number.decimal,
							t->number.group == 0 ? "no group separator" :
							psprintf("group separator \"%c\" between groups of three", t->number.group),
							t->number.currency ? ", around them a sign, parentheses and a currency mark" :
							", around them a sign or parentheses; \"currency\": true strips a currency mark");
		case TF_BOOLEAN:
			return psprintf("The words (of any case) are %s.", t->words);
		case TF_DATE:
		case TF_TIMESTAMP:
			return psprintf("The format is \"%s\".", t->format);
		default:
			break;
	}
	return psprintf("Method %s takes %s.", t->info->name, t->info->usage);
}

PG_FUNCTION_INFO_V1(stage_transform);
Datum
stage_transform(PG_FUNCTION_ARGS)
{
	char	   *method;
	Jsonb	   *args = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	Transform  *t;
	char	   *in;
	char	   *out;
	const char *sqlstate;
	char	   *message;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform method must not be null"),
				 errhint("Methods are: %s.", tf_method_list())));
	method = text_to_cstring(PG_GETARG_TEXT_PP(1));
	t = tf_cached(fcinfo, method, args, PG_GET_COLLATION());
	if (!transform_per_value(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transform method \"%s\" runs only in a batch", method),
				 errhint("Declare it with stage.add_transform; stage.transform applies the methods that work on one value: trim, lower, upper, squish, normalize, replace, regex_replace, nullif, default, map, number, boolean, date, timestamp.")));
	in = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	switch (transform_apply(t, in, &out, &sqlstate, &message))
	{
		case TR_VALUE:
			PG_RETURN_TEXT_P(cstring_to_text(out));
		case TR_NULL:
			PG_RETURN_NULL();
		case TR_FAIL:
			ereport(ERROR,
					(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
										   sqlstate[3], sqlstate[4])),
					 errmsg("%s", message),
					 errhint("%s", tf_failure_hint(t, sqlstate, message))));
	}
	PG_RETURN_NULL();			/* keep compiler quiet */
}
