/*-------------------------------------------------------------------------
 *
 * shim.c
 *	  What the PostgreSQL backend would provide to stage's pure C functions,
 *	  for the libFuzzer harnesses (test/fuzz/fuzz_*.c), outside the server.
 *
 *	  - palloc and friends on top of malloc, every chunk tracked so that
 *	    fuzz_reset() frees everything allocated during one input, as a
 *	    memory context reset would (AddressSanitizer still sees each chunk
 *	    as its own malloc block: overflows and use-after-free are caught).
 *	  - psprintf/pvsnprintf, with PostgreSQL's own vsnprintf (libpgport).
 *	  - the ereport/elog machinery: an ERROR (or worse) aborts with its
 *	    message, file and line: the fuzzed functions are documented never to
 *	    raise on valid input, so any ERROR is a finding.
 *	  - the multibyte functions of mbutils.c for a UTF-8 database, stricter
 *	    than the server: a character cut by a length limit, or pg_mblen at a
 *	    continuation byte (a split character), aborts.
 *	  - InterruptPending/ProcessInterrupts for CHECK_FOR_INTERRUPTS.
 *
 *	  StringInfo, the wchar tables, pg_prng and snprintf come from the real
 *	  libpgcommon_shlib.a/libpgport_shlib.a.  Every other backend symbol the
 *	  stage objects reference gets a generated stub that aborts with its
 *	  name (scripts/fuzz.sh writes build/stubs.c from `nm -u`).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "fuzz_shim.h"

/* ----------------------------------------------------------------
 *		allocation tracking: an open-addressing set of live chunks
 * ---------------------------------------------------------------- */

#define TOMBSTONE ((void *) 1)

static void **live;				/* slots: NULL, TOMBSTONE or a chunk */
static size_t live_cap;			/* power of two */
static size_t live_used;		/* chunks + tombstones */
static size_t live_count;		/* chunks */

uint64		fuzz_alloc_calls;	/* palloc-family calls so far */

static size_t
slot_of(const void *p, size_t cap)
{
	uintptr_t	h = (uintptr_t) p;

	h ^= h >> 17;
	h *= UINT64CONST(0x9E3779B97F4A7C15);
	return (size_t) (h >> 7) & (cap - 1);
}

static void
live_insert_nogrow(void *p)
{
	size_t		i = slot_of(p, live_cap);

	while (live[i] != NULL && live[i] != TOMBSTONE)
		i = (i + 1) & (live_cap - 1);
	if (live[i] == NULL)
		live_used++;
	live[i] = p;
	live_count++;
}

static void
live_grow(void)
{
	void	  **old = live;
	size_t		oldcap = live_cap;
	size_t		i;

	live_cap = oldcap ? oldcap * 2 : 1024;
	while (live_count * 2 >= live_cap)
		live_cap *= 2;
	live = calloc(live_cap, sizeof(void *));
	if (live == NULL)
		fuzz_die("shim: out of memory for the chunk table");
	live_used = 0;
	live_count = 0;
	for (i = 0; i < oldcap; i++)
		if (old[i] != NULL && old[i] != TOMBSTONE)
			live_insert_nogrow(old[i]);
	free(old);
}

static void
live_add(void *p)
{
	if ((live_used + 1) * 4 >= live_cap * 3)
		live_grow();
	live_insert_nogrow(p);
}

/* remove p; false if it is not a live chunk */
static bool
live_remove(const void *p)
{
	size_t		i;

	if (live_cap == 0)
		return false;
	for (i = slot_of(p, live_cap); live[i] != NULL; i = (i + 1) & (live_cap - 1))
		if (live[i] == p)
		{
			live[i] = TOMBSTONE;
			live_count--;
			return true;
		}
	return false;
}

bool
fuzz_owned(const void *p)
{
	size_t		i;

	if (live_cap == 0 || p == NULL)
		return false;
	for (i = slot_of(p, live_cap); live[i] != NULL; i = (i + 1) & (live_cap - 1))
		if (live[i] == p)
			return true;
	return false;
}

size_t
fuzz_live_chunks(void)
{
	return live_count;
}

/* free every chunk: the end of one input, like a memory context reset */
void
fuzz_reset(void)
{
	size_t		i;

	for (i = 0; i < live_cap; i++)
	{
		if (live[i] != NULL && live[i] != TOMBSTONE)
			free(live[i]);
		live[i] = NULL;
	}
	live_used = 0;
	live_count = 0;
}

/* ----------------------------------------------------------------
 *		palloc and friends
 * ---------------------------------------------------------------- */

MemoryContext CurrentMemoryContext = NULL;
MemoryContext TopMemoryContext = NULL;
MemoryContext ErrorContext = NULL;

static void *
shim_alloc(Size size, bool zero, bool huge, const char *caller)
{
	void	   *p;

	fuzz_alloc_calls++;
	if (huge ? !AllocHugeSizeIsValid(size) : !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu (%s)", (size_t) size, caller);
	/* malloc(0) may return NULL; palloc(0) returns a valid pointer */
	p = zero ? calloc(1, size ? size : 1) : malloc(size ? size : 1);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", (size_t) size)));
	live_add(p);
	return p;
}

void *
palloc(Size size)
{
	return shim_alloc(size, false, false, "palloc");
}

void *
palloc0(Size size)
{
	return shim_alloc(size, true, false, "palloc0");
}

void *
palloc_extended(Size size, int flags)
{
	return shim_alloc(size, (flags & MCXT_ALLOC_ZERO) != 0,
					  (flags & MCXT_ALLOC_HUGE) != 0, "palloc_extended");
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return shim_alloc(size, false, false, "MemoryContextAlloc");
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return shim_alloc(size, true, false, "MemoryContextAllocZero");
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return shim_alloc(size, false, true, "MemoryContextAllocHuge");
}

static void *
shim_realloc(void *pointer, Size size, bool huge)
{
	void	   *p;

	fuzz_alloc_calls++;
	if (huge ? !AllocHugeSizeIsValid(size) : !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu (repalloc)", (size_t) size);
	if (!live_remove(pointer))
		fuzz_die("repalloc of %p, which is not a live palloc chunk", pointer);
	p = realloc(pointer, size ? size : 1);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", (size_t) size)));
	live_add(p);
	return p;
}

void *
repalloc(void *pointer, Size size)
{
	return shim_realloc(pointer, size, false);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return shim_realloc(pointer, size, true);
}

void
pfree(void *pointer)
{
	if (!live_remove(pointer))
		fuzz_die("pfree of %p, which is not a live palloc chunk", pointer);
	free(pointer);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	size_t		n = strlen(string) + 1;
	char	   *p = shim_alloc(n, false, false, "pstrdup");

	memcpy(p, string, n);
	return p;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

/* the first len bytes of in, or fewer if it has a NUL earlier */
char *
pnstrdup(const char *in, Size len)
{
	size_t		n = strnlen(in, len);
	char	   *p = shim_alloc(n + 1, false, false, "pnstrdup");

	memcpy(p, in, n);
	p[n] = '\0';
	return p;
}

/*
 * Format into buf (len bytes) with PostgreSQL's vsnprintf.  Returns the
 * length printed when it fitted (less than len), else the buffer size it
 * needs (the result's length plus the terminating NUL), as the server's
 * pvsnprintf does.
 */
size_t
pvsnprintf(char *buf, size_t len, const char *fmt, va_list args)
{
	int			n = vsnprintf(buf, len, fmt, args);

	if (n < 0)
		elog(ERROR, "vsnprintf failed: %m with format string \"%s\"", fmt);
	if ((size_t) n < len)
		return (size_t) n;
	if ((size_t) n >= MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory")));
	return (size_t) n + 1;
}

char *
psprintf(const char *fmt,...)
{
	size_t		len = 128;

	for (;;)
	{
		char	   *buf = palloc(len);
		va_list		args;
		size_t		need;

		va_start(args, fmt);
		need = pvsnprintf(buf, len, fmt, args);
		va_end(args);
		if (need < len)
			return buf;
		pfree(buf);
		len = need;
	}
}

/* ----------------------------------------------------------------
 *		ereport/elog
 * ---------------------------------------------------------------- */

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;
volatile sig_atomic_t InterruptPending = false;
volatile sig_atomic_t QueryCancelPending = false;
volatile sig_atomic_t ProcDiePending = false;
volatile uint32 InterruptHoldoffCount = 0;
volatile uint32 QueryCancelHoldoffCount = 0;
volatile uint32 CritSectionCount = 0;

/* one report at a time: ERROR never returns here */
static struct
{
	bool		active;
	int			elevel;
	int			sqlerrcode;
	char		message[2048];
	char		detail[1024];
	char		hint[1024];
}			cur_error;

static bool
shim_errstart(int elevel)
{
	if (elevel < WARNING)
		return false;			/* DEBUG, LOG, INFO, NOTICE: dropped */
	memset(&cur_error, 0, sizeof(cur_error));
	cur_error.active = true;
	cur_error.elevel = elevel;
	return true;
}

bool
errstart(int elevel, const char *domain)
{
	return shim_errstart(elevel);
}

bool
errstart_cold(int elevel, const char *domain)
{
	return shim_errstart(elevel);
}

static void
shim_errfield(char *dst, size_t size, const char *fmt, va_list args)
{
	if (!cur_error.active)
		fuzz_die("error field set outside an ereport");
	vsnprintf(dst, size, fmt, args);
}

int
errcode(int sqlerrcode)
{
	cur_error.sqlerrcode = sqlerrcode;
	return 0;
}

int
errmsg(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	shim_errfield(cur_error.message, sizeof(cur_error.message), fmt, args);
	va_end(args);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	shim_errfield(cur_error.message, sizeof(cur_error.message), fmt, args);
	va_end(args);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	shim_errfield(cur_error.detail, sizeof(cur_error.detail), fmt, args);
	va_end(args);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	shim_errfield(cur_error.detail, sizeof(cur_error.detail), fmt, args);
	va_end(args);
	return 0;
}

int
errhint(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	shim_errfield(cur_error.hint, sizeof(cur_error.hint), fmt, args);
	va_end(args);
	return 0;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	const char *level = cur_error.elevel >= ERROR ? "ERROR" : "WARNING";

	cur_error.active = false;
	if (cur_error.elevel < ERROR)
	{
		fprintf(stderr, "stage fuzz: %s at %s:%d (%s): %s\n", level,
				filename, lineno, funcname ? funcname : "?", cur_error.message);
		return;
	}
	fprintf(stderr,
			"\n==stage fuzz== ereport(%s) from a pure function, at %s:%d in %s\n"
			"  SQLSTATE %s\n  message: %s\n%s%s%s%s%s%s",
			level, filename, lineno, funcname ? funcname : "?",
			unpack_sql_state(cur_error.sqlerrcode), cur_error.message,
			cur_error.detail[0] ? "  detail: " : "", cur_error.detail,
			cur_error.detail[0] ? "\n" : "",
			cur_error.hint[0] ? "  hint: " : "", cur_error.hint,
			cur_error.hint[0] ? "\n" : "");
	fflush(stderr);
	abort();
}

/* unpack a SQLSTATE (errcodes are packed six bits a character) */
char *
unpack_sql_state(int sql_state)
{
	static char buf[12];
	int			i;

	for (i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sql_state);
		sql_state >>= 6;
	}
	buf[i] = '\0';
	return buf;
}

void
pg_re_throw(void)
{
	fuzz_die("pg_re_throw: an ERROR was caught by PG_TRY and rethrown");
}

void
ProcessInterrupts(void)
{
	InterruptPending = false;
}

/* ----------------------------------------------------------------
 *		multibyte functions (mbutils.c) for a UTF-8 database
 * ---------------------------------------------------------------- */

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

const char *
GetDatabaseEncodingName(void)
{
	return "UTF8";
}

int
pg_database_encoding_max_length(void)
{
	return pg_encoding_max_length(PG_UTF8);
}

/* a continuation byte where a character should start: a split character */
static void
check_char_start(const char *s, const char *caller)
{
	unsigned char c = (unsigned char) *s;

	if (c >= 0x80 && c <= 0xBF)
		fuzz_die("%s called at a continuation byte 0x%02x: a multibyte character "
				 "was split (the caller walked into the middle of a character)",
				 caller, c);
}

int
pg_mblen(const char *mbstr)
{
	check_char_start(mbstr, "pg_mblen");
	return pg_utf_mblen((const unsigned char *) mbstr);
}

int
pg_mblen_unbounded(const char *mbstr)
{
	check_char_start(mbstr, "pg_mblen_unbounded");
	return pg_utf_mblen((const unsigned char *) mbstr);
}

/* the character must end before limit bytes */
int
pg_mblen_with_len(const char *mbstr, int limit)
{
	int			l;

	check_char_start(mbstr, "pg_mblen_with_len");
	l = pg_utf_mblen((const unsigned char *) mbstr);
	if (l > limit)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence for encoding \"UTF8\": a character of %d bytes cut at %d",
						l, limit)));
	return l;
}

int
pg_mblen_range(const char *mbstr, const char *end)
{
	return pg_mblen_with_len(mbstr, (int) (end - mbstr));
}

/* a NUL-terminated string: the character must end before the NUL */
int
pg_mblen_cstr(const char *mbstr)
{
	int			l;
	int			i;

	check_char_start(mbstr, "pg_mblen_cstr");
	l = pg_utf_mblen((const unsigned char *) mbstr);
	for (i = 1; i < l; i++)
		if (mbstr[i] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("invalid byte sequence for encoding \"UTF8\": a character cut by a NUL")));
	return l;
}

/* characters of a NUL-terminated string */
int
pg_mbstrlen(const char *mbstr)
{
	int			n = 0;

	while (*mbstr)
	{
		mbstr += pg_mblen_cstr(mbstr);
		n++;
	}
	return n;
}

/* characters in the first limit bytes (or up to a NUL) */
int
pg_mbstrlen_with_len(const char *mbstr, int limit)
{
	int			n = 0;

	while (limit > 0 && *mbstr)
	{
		int			l = pg_mblen_with_len(mbstr, limit);

		mbstr += l;
		limit -= l;
		n++;
	}
	return n;
}

/* bytes of the longest prefix of whole characters within limit bytes */
int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;

	while (clen < len && mbstr[clen])
	{
		int			l = pg_mblen_with_len(mbstr + clen, len - clen);

		if (clen + l > limit)
			break;
		clen += l;
		if (clen == limit)
			break;
	}
	return clen;
}

bool
pg_verifymbstr(const char *mbstr, int len, bool noError)
{
	if (pg_encoding_verifymbstr(PG_UTF8, mbstr, len) == len)
		return true;
	if (!noError)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence for encoding \"UTF8\"")));
	return false;
}

/* ----------------------------------------------------------------
 *		for the generated stubs and the harnesses
 * ---------------------------------------------------------------- */

void
fuzz_die(const char *fmt,...)
{
	va_list		args;

	fprintf(stderr, "\n==stage fuzz== ");
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fprintf(stderr, "\n");
	fflush(stderr);
	abort();
}

void
fuzz_stub_called(const char *name)
{
	fuzz_die("call of %s, a backend function the fuzz shim does not provide "
			 "(generated stub): the fuzzed code reached server-only code", name);
}
