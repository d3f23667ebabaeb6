/*-------------------------------------------------------------------------
 *
 * regex.c
 *	  PCRE2 for stage: a per-backend cache of compiled (JIT) patterns, the
 *	  match/depth limits, and the SQL functions stage.regex_*.
 *
 * Compiled patterns live in TopMemoryContext-owned malloc memory managed by
 * PCRE2 itself and are kept for the life of the backend (bounded by
 * RX_CACHE_SIZE; the oldest entry is freed when the cache is full).  A rule
 * program holds RxEntry pointers, so entries are never freed while a program
 * that uses them is cached: eviction only happens among entries not pinned
 * by a program (pinned entries are simply never evicted).
 *
 * Subjects are PostgreSQL text in the database encoding; in a UTF-8
 * database patterns are compiled with PCRE2_UTF and matched with
 * PCRE2_NO_UTF_CHECK, because the server has already verified the
 * encoding of every text value.
 *
 * Touches no catalog; the cache lives in PCRE2's own (malloc) memory for
 * the life of the backend, the GUCs stage.regex_match_limit and
 * stage.regex_depth_limit (stage.c) bound every match.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "regex.h"

#define RX_CACHE_SIZE 256

struct RxEntry
{
	char	   *pattern;
	char	   *flags;
	uint32		hash;
	pcre2_code *code;
	pcre2_match_data *md;
	bool		jit;
};

static RxEntry *rx_cache[RX_CACHE_SIZE];
static int	rx_ncached = 0;
static pcre2_match_context *rx_mctx = NULL;
static pcre2_jit_stack *rx_jit_stack = NULL;
static int	rx_mctx_match_limit = -1;
static int	rx_mctx_depth_limit = -1;

/* the cache slot key of a pattern and its flags (djb2) */
static uint32
rx_hash(const char *pattern, const char *flags)
{
	uint32		h = 5381;
	const char *p;

	for (p = pattern; *p; p++)
		h = h * 33 + (unsigned char) *p;
	h = h * 33;
	for (p = flags; *p; p++)
		h = h * 33 + (unsigned char) *p;
	return h;
}

/* PCRE2 compile options of stage's flags (i, m, s, x) */
static uint32
rx_options(const char *flags)
{
	uint32		opts = 0;
	const char *f;

	if (GetDatabaseEncoding() == PG_UTF8)
		opts |= PCRE2_UTF | PCRE2_UCP;
	for (f = flags; *f; f++)
	{
		switch (*f)
		{
			case 'i':
				opts |= PCRE2_CASELESS;
				break;
			case 'm':
				opts |= PCRE2_MULTILINE;
				break;
			case 's':
				opts |= PCRE2_DOTALL;
				break;
			case 'x':
				opts |= PCRE2_EXTENDED;
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid regular expression flag \"%c\"", *f),
						 errhint("Valid flags are i (case-insensitive), m (multi-line), s (dot matches newline) and x (extended).")));
		}
	}
	return opts;
}

/*
 * Return the compiled form of pattern/flags, compiling it on first use.
 * A pattern that does not compile raises ERRCODE_INVALID_REGULAR_EXPRESSION
 * with PCRE2's message and the offset.
 */
RxEntry *
rx_compile(const char *pattern, const char *flags)
{
	uint32		h;
	int			i;
	int			pcre_err;
	PCRE2_SIZE	erroffset;
	pcre2_code *code;
	RxEntry    *e;
	uint32		opts;

	if (flags == NULL)
		flags = "";
	h = rx_hash(pattern, flags);
	for (i = 0; i < rx_ncached; i++)
	{
		e = rx_cache[i];
		if (e->hash == h && strcmp(e->pattern, pattern) == 0 &&
			strcmp(e->flags, flags) == 0)
			return e;
	}

	opts = rx_options(flags);
	code = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, opts,
						 &pcre_err, &erroffset, NULL);
	if (code == NULL)
	{
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(pcre_err, msg, sizeof(msg));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("invalid regular expression: %s", (char *) msg),
				 errdetail("The error is at offset %d of the pattern.", (int) erroffset),
				 errhint("Patterns use PCRE2 (Perl-compatible) syntax.")));
	}

	e = MemoryContextAllocZero(TopMemoryContext, sizeof(RxEntry));
	e->pattern = MemoryContextStrdup(TopMemoryContext, pattern);
	e->flags = MemoryContextStrdup(TopMemoryContext, flags);
	e->hash = h;
	e->code = code;
	e->jit = (pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0);
	e->md = pcre2_match_data_create_from_pattern(code, NULL);
	if (e->md == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("out of memory")));

	if (rx_ncached < RX_CACHE_SIZE)
		rx_cache[rx_ncached++] = e;
	else
	{
		/*
		 * Full: this entry is used uncached.  Entries are never freed while
		 * the backend lives because compiled contracts point at them; 256
		 * distinct patterns per backend is far beyond real contracts.
		 */
	}
	return e;
}

/* the match context, its limits following the GUCs as they are now */
static pcre2_match_context *
rx_context(void)
{
	if (rx_mctx == NULL)
	{
		rx_mctx = pcre2_match_context_create(NULL);
		if (rx_mctx == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("out of memory")));

		/*
		 * JIT code recurses on its own stack, 32 kB by default: too small
		 * for a repeated group over a few thousand characters.  Give it up
		 * to 1 MB; a match that still runs out falls back to the
		 * interpreter (rx_exec), which uses the heap and the depth limit.
		 */
		rx_jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
		if (rx_jit_stack)
			pcre2_jit_stack_assign(rx_mctx, NULL, rx_jit_stack);
	}
	if (rx_mctx_match_limit != stage_regex_match_limit)
	{
		pcre2_set_match_limit(rx_mctx, stage_regex_match_limit);
		rx_mctx_match_limit = stage_regex_match_limit;
	}
	if (rx_mctx_depth_limit != stage_regex_depth_limit)
	{
		pcre2_set_depth_limit(rx_mctx, stage_regex_depth_limit);
		rx_mctx_depth_limit = stage_regex_depth_limit;
	}
	return rx_mctx;
}

/* match from the start offset; returns rc of pcre2 */
static int
rx_exec(RxEntry *rx, const char *subject, size_t len, size_t start)
{
	pcre2_match_context *mctx = rx_context();
	uint32		mopts = (GetDatabaseEncoding() == PG_UTF8) ? PCRE2_NO_UTF_CHECK : 0;

	if (rx->jit)
	{
		int			rc = pcre2_jit_match(rx->code, (PCRE2_SPTR) subject, len, start,
										 mopts, rx->md, mctx);

		if (rc != PCRE2_ERROR_JIT_STACKLIMIT)
			return rc;
		/* too deep for the JIT stack: the interpreter decides */
	}
	return pcre2_match(rx->code, (PCRE2_SPTR) subject, len, start,
					   mopts | PCRE2_NO_JIT, rx->md, mctx);
}

/* is a PCRE2 result a limit hit (match, depth, heap, JIT stack)? */
static bool
rx_is_limit(int rc)
{
	return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
		rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT;
}

/*
 * Does the subject match?  RX_MATCH, RX_NOMATCH or RX_LIMIT; any other PCRE2
 * failure is an error.
 */
int
rx_match(RxEntry *rx, const char *subject, size_t len)
{
	int			rc = rx_exec(rx, subject, len, 0);

	if (rc >= 0)
		return RX_MATCH;
	if (rc == PCRE2_ERROR_NOMATCH)
		return RX_NOMATCH;
	if (rx_is_limit(rc))
		return RX_LIMIT;
	{
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed: %s", (char *) msg)));
	}
	return RX_NOMATCH;			/* keep compiler quiet */
}

/* ERROR: a pattern hit its match or depth limit */
static void
rx_limit_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("regular expression exceeded its match limit"),
			 errdetail("stage.regex_match_limit is %d and stage.regex_depth_limit is %d.",
					   stage_regex_match_limit, stage_regex_depth_limit),
			 errhint("Simplify the pattern (avoid nested quantifiers) or raise the limits.")));
}

/*
 * SQL-callable functions cache the last pattern in fn_extra, so a call per
 * row over a column costs one string compare, not a lookup.
 */
static RxEntry *
rx_from_args(FunctionCallInfo fcinfo, int patarg, int flagarg)
{
	char	   *pattern = text_to_cstring(PG_GETARG_TEXT_PP(patarg));
	char	   *flags = (flagarg >= 0 && !PG_ARGISNULL(flagarg)) ?
		text_to_cstring(PG_GETARG_TEXT_PP(flagarg)) : "";
	RxEntry    *e = (RxEntry *) fcinfo->flinfo->fn_extra;

	if (e && strcmp(e->pattern, pattern) == 0 && strcmp(e->flags, flags) == 0)
		return e;
	e = rx_compile(pattern, flags);
	fcinfo->flinfo->fn_extra = e;
	return e;
}

/* stage.regex_match(subject, pattern, flags) */
PG_FUNCTION_INFO_V1(stage_regex_match);
Datum
stage_regex_match(PG_FUNCTION_ARGS)
{
	text	   *subject = PG_GETARG_TEXT_PP(0);
	RxEntry    *rx = rx_from_args(fcinfo, 1, 2);
	int			r;

	CHECK_FOR_INTERRUPTS();
	r = rx_match(rx, VARDATA_ANY(subject), VARSIZE_ANY_EXHDR(subject));
	if (r == RX_LIMIT)
		rx_limit_error();
	PG_RETURN_BOOL(r == RX_MATCH);
}

/* the flags without 'g' (global replace is not a compile option) */
static char *
rx_strip_global(const char *flags, bool *global)
{
	char	   *out = palloc(strlen(flags) + 1);
	char	   *o = out;

	*global = false;
	for (; *flags; flags++)
	{
		if (*flags == 'g')
			*global = true;
		else
			*o++ = *flags;
	}
	*o = '\0';
	return out;
}

static char *rx_replace_each(RxEntry *rx, const char *subject, size_t len,
							 const char *repl, size_t repllen, uint32 extra,
							 size_t *outlen, int *rc);

/*
 * stage.regex_replace(value, pattern, replacement, flags): the first match
 * (every match with flag g) replaced; $1, ${name} refer to groups.
 */
PG_FUNCTION_INFO_V1(stage_regex_replace);
Datum
stage_regex_replace(PG_FUNCTION_ARGS)
{
	text	   *subject = PG_GETARG_TEXT_PP(0);
	char	   *pattern = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *repl = PG_GETARG_TEXT_PP(2);
	bool		global;
	char	   *flags = rx_strip_global(PG_ARGISNULL(3) ? "" :
										text_to_cstring(PG_GETARG_TEXT_PP(3)), &global);
	RxEntry    *rx = rx_compile(pattern, flags);
	PCRE2_SIZE	outlen = VARSIZE_ANY_EXHDR(subject) * 2 + 64;
	uint32		opts = PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
		((GetDatabaseEncoding() == PG_UTF8) ? PCRE2_NO_UTF_CHECK : 0);
	PCRE2_UCHAR *out;
	int			rc;
	int			attempt;

	CHECK_FOR_INTERRUPTS();
	if (global)
	{
		size_t		n;

		out = (PCRE2_UCHAR *) rx_replace_each(rx, VARDATA_ANY(subject), VARSIZE_ANY_EXHDR(subject),
											  VARDATA_ANY(repl), VARSIZE_ANY_EXHDR(repl), 0,
											  &n, &rc);
		outlen = n;
	}
	else
		for (attempt = 0; attempt < 2; attempt++)
		{
			out = palloc(outlen + 1);
			rc = pcre2_substitute(rx->code, (PCRE2_SPTR) VARDATA_ANY(subject),
								  VARSIZE_ANY_EXHDR(subject), 0, opts, rx->md,
								  rx_context(), (PCRE2_SPTR) VARDATA_ANY(repl),
								  VARSIZE_ANY_EXHDR(repl), out, &outlen);
			if (rc != PCRE2_ERROR_NOMEMORY)
				break;
			pfree(out);
		}
	if (rx_is_limit(rc))
		rx_limit_error();
	if (rc < 0)
	{
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("regular expression replacement failed: %s", (char *) msg),
				 errhint("Refer to groups as $1 or ${name}; write $$ for a dollar sign.")));
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len((char *) out, outlen));
}

/*
 * stage.regex_extract(value, pattern, flags): the first capture group of
 * the first match (the whole match when the pattern has no group), or NULL.
 */
PG_FUNCTION_INFO_V1(stage_regex_extract);
Datum
stage_regex_extract(PG_FUNCTION_ARGS)
{
	text	   *subject = PG_GETARG_TEXT_PP(0);
	RxEntry    *rx = rx_from_args(fcinfo, 1, 2);
	int			rc;
	PCRE2_SIZE *ov;
	int			g;

	CHECK_FOR_INTERRUPTS();
	rc = rx_exec(rx, VARDATA_ANY(subject), VARSIZE_ANY_EXHDR(subject), 0);
	if (rc == PCRE2_ERROR_NOMATCH)
		PG_RETURN_NULL();
	if (rx_is_limit(rc))
		rx_limit_error();
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed (PCRE2 error %d)", rc)));
	ov = pcre2_get_ovector_pointer(rx->md);
	{
		uint32		ncaptures = 0;

		/* the pattern's first group if it has one, matched or not */
		(void) pcre2_pattern_info(rx->code, PCRE2_INFO_CAPTURECOUNT, &ncaptures);
		g = (ncaptures > 0) ? 1 : 0;
	}
	if (g >= rc || ov[2 * g] == PCRE2_UNSET)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(VARDATA_ANY(subject) + ov[2 * g],
											  ov[2 * g + 1] - ov[2 * g]));
}

/*
 * For the redact mask (mask.c): every match of rx in subject replaced by
 * repl ($1 and ${name} refer to groups; unknown or unset groups are empty),
 * as a palloc'd NUL-terminated string.  Never raises on account of the
 * subject: *status is RX_MATCH on success, RX_LIMIT when the match limits
 * were hit, RX_NOMATCH for any other PCRE2 failure; NULL is returned then,
 * and the caller decides what to show instead (never the subject).
 */
/*
 * Every match of rx in subject replaced by repl (repllen bytes), with the
 * substitution options extra; the result as a palloc'd NUL-terminated
 * string of *outlen bytes, or NULL with the PCRE2 error in *rc.
 *
 * Match by match, not one global substitution: the match limits bound
 * each match, and between matches the query can be cancelled (a global
 * substitution of a long subject with many matches ran for minutes).
 */
static char *
rx_replace_each(RxEntry *rx, const char *subject, size_t len, const char *repl,
				size_t repllen, uint32 extra, size_t *outlen, int *rc)
{
	bool		utf8 = (GetDatabaseEncoding() == PG_UTF8);
	uint32		mopts = utf8 ? PCRE2_NO_UTF_CHECK : 0;
	uint32		sopts = PCRE2_SUBSTITUTE_MATCHED | PCRE2_SUBSTITUTE_REPLACEMENT_ONLY |
		PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | extra | mopts;
	StringInfoData buf;
	PCRE2_SIZE	start = 0;
	PCRE2_SIZE	replen = 64;
	PCRE2_UCHAR *rep = palloc(replen + 1);

	initStringInfo(&buf);
	while (start <= len)
	{
		PCRE2_SIZE *ov;
		PCRE2_SIZE	n;
		int			attempt;

		CHECK_FOR_INTERRUPTS();
		*rc = pcre2_match(rx->code, (PCRE2_SPTR) subject, len, start, mopts, rx->md,
						  rx_context());
		if (*rc == PCRE2_ERROR_NOMATCH)
			break;
		if (*rc < 0)
			return NULL;
		ov = pcre2_get_ovector_pointer(rx->md);
		appendBinaryStringInfo(&buf, subject + start, (int) (ov[0] - start));
		/* this match's replacement, groups expanded */
		for (attempt = 0; attempt < 2; attempt++)
		{
			n = replen;
			*rc = pcre2_substitute(rx->code, (PCRE2_SPTR) subject, len, start, sopts,
								   rx->md, rx_context(), (PCRE2_SPTR) repl, repllen,
								   rep, &n);
			if (*rc != PCRE2_ERROR_NOMEMORY)
				break;
			pfree(rep);
			replen = n;
			rep = palloc(replen + 1);
		}
		if (*rc < 0)
			return NULL;
		appendBinaryStringInfo(&buf, (const char *) rep, (int) n);
		if (ov[1] > ov[0])
			start = ov[1];
		else
		{
			/* an empty match: the character after it is kept, the next try starts past it */
			int			l;

			if (ov[1] >= len)
			{
				start = len;
				break;
			}
			l = utf8 ? pg_utf_mblen((const unsigned char *) subject + ov[1]) : 1;
			l = (int) Min((PCRE2_SIZE) l, len - ov[1]);
			appendBinaryStringInfo(&buf, subject + ov[1], l);
			start = ov[1] + l;
		}
	}
	if (start < len)
		appendBinaryStringInfo(&buf, subject + start, (int) (len - start));
	pfree(rep);
	*outlen = buf.len;
	*rc = 0;
	return buf.data;
}

char *
rx_replace_all(RxEntry *rx, const char *subject, size_t len, const char *repl,
			   int *status)
{
	size_t		outlen;
	int			rc;
	char	   *out = rx_replace_each(rx, subject, len, repl, strlen(repl),
									  PCRE2_SUBSTITUTE_UNKNOWN_UNSET |
									  PCRE2_SUBSTITUTE_UNSET_EMPTY, &outlen, &rc);

	*status = out ? RX_MATCH : rx_is_limit(rc) ? RX_LIMIT : RX_NOMATCH;
	return out;
}
