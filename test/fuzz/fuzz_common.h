/*-------------------------------------------------------------------------
 *
 * fuzz_common.h
 *	  Helpers shared by the libFuzzer harnesses of stage (test/fuzz/):
 *	  reading control bytes, turning the rest of the input into the text a
 *	  UTF-8 database would hand over (valid UTF-8, no NUL), property checks
 *	  that can be switched off by name, and the timing mode.
 *
 * Text: the bytes after the control bytes, with every NUL dropped and
 * every byte that does not start a valid UTF-8 character (by PostgreSQL's
 * own verifier, pg_encoding_verifymbchar) replaced by its low seven bits
 * (dropped if that is NUL).  The (s, len) functions get exactly len bytes
 * with no terminator after them, as the SQL wrappers pass VARDATA_ANY of a
 * text: AddressSanitizer reports any read of s[len].  Functions that take
 * a C string get a NUL-terminated copy.
 *
 * Properties: FUZZ_CHECK(name, cond, ...) aborts with the property's name
 * when cond is false, unless the name is listed in the environment
 * variable STAGE_FUZZ_SKIP (comma-separated), which lets fuzzing go on past
 * a known, reported finding.
 *
 * Timing mode (STAGE_FUZZ_TIMING=1, used by scripts/fuzz.sh with 1 MB
 * inputs): the whole input is the text, and every function of the harness
 * is run on it once, each in a forked child killed after
 * STAGE_FUZZ_TIME_LIMIT seconds (default 10); one line per function:
 *	  TIME <harness>.<case> <ms> ms | TIMEOUT >N s | CRASH <status>
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_FUZZ_COMMON_H
#define STAGE_FUZZ_COMMON_H

#include "postgres.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mb/pg_wchar.h"

#include "stage.h"
#include "fuzz_shim.h"

/* port.h maps printf-family names to PostgreSQL's; fine for the harnesses */

/* ----------------------------------------------------------------
 *		control bytes
 * ---------------------------------------------------------------- */

typedef struct FuzzBytes
{
	const uint8 *p;
	size_t		n;
} FuzzBytes;

/* the next byte, 0 when the input is used up */
static inline uint8
fb_byte(FuzzBytes *b)
{
	if (b->n == 0)
		return 0;
	b->n--;
	return *b->p++;
}

/*
 * An int argument from one byte: mostly small (0..19), sometimes one of
 * the extremes a SQL caller can pass (the SQL wrappers take int4).
 */
static inline int
fb_int(FuzzBytes *b)
{
	static const int extremes[] = {
		0, 1, 1000, 1001, PG_INT32_MAX, PG_INT32_MAX - 1, PG_INT32_MAX / 2 + 1,
		1 << 30, 65535, 65536, -1, -2, PG_INT32_MIN, PG_INT32_MIN + 1, 100000, 3
	};
	uint8		c = fb_byte(b);

	if (c < 240)
		return c % 20;
	return extremes[c - 240];
}

/* ----------------------------------------------------------------
 *		text
 * ---------------------------------------------------------------- */

typedef struct FuzzText
{
	char	   *s;				/* len bytes, not terminated (malloc'd) */
	char	   *cstr;			/* the same, NUL-terminated (malloc'd) */
	int			len;
} FuzzText;

static inline void
fuzz_text(FuzzText *t, const uint8 *p, size_t n)
{
	char	   *buf = malloc(n + 1);
	size_t		i = 0;
	size_t		o = 0;

	while (i < n)
	{
		uint8		c = p[i];

		if (c == 0)
		{
			i++;
			continue;
		}
		if (c < 0x80)
		{
			buf[o++] = c;
			i++;
			continue;
		}
		{
			int			l = pg_encoding_verifymbchar(PG_UTF8, (const char *) p + i,
													 (int) Min(n - i, 8));

			if (l > 0)
			{
				memcpy(buf + o, p + i, l);
				o += l;
				i += l;
			}
			else
			{
				if ((c & 0x7F) != 0)
					buf[o++] = c & 0x7F;
				i++;
			}
		}
	}
	t->len = (int) o;
	t->s = malloc(o ? o : 1);
	memcpy(t->s, buf, o);
	buf[o] = '\0';
	t->cstr = buf;
}

static inline void
fuzz_text_free(FuzzText *t)
{
	free(t->s);
	free(t->cstr);
}

/* valid UTF-8 without NUL, exactly len bytes */
static inline bool
fuzz_utf8_ok(const char *s, size_t len)
{
	return pg_encoding_verifymbstr(PG_UTF8, s, (int) len) == (int) len;
}

/* is s[i] the first byte of a character (or the end)? */
static inline bool
fuzz_char_boundary(const char *s, int len, int i)
{
	return i >= len || ((unsigned char) s[i] & 0xC0) != 0x80;
}

/* a printable, C-escaped excerpt of a value, for messages (static buffer) */
static inline const char *
fuzz_show(const char *s, int len)
{
	static char buf[4][700];
	static int	which;
	char	   *o = buf[which = (which + 1) % 4];
	int			i;
	int			k = 0;

	if (s == NULL)
		return "(null)";
	o[k++] = '"';
	for (i = 0; i < len && k < 660; i++)
	{
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			k += sprintf(o + k, "\\%c", c);
		else if (c >= 0x20 && c < 0x7F)
			o[k++] = c;
		else
			k += sprintf(o + k, "\\x%02x", c);
	}
	o[k++] = '"';
	if (i < len)
		k += sprintf(o + k, "... (%d bytes)", len);
	o[k] = '\0';
	return o;
}

/* ----------------------------------------------------------------
 *		properties
 * ---------------------------------------------------------------- */

static inline bool
fuzz_skip(const char *name)
{
	static const char *skip = NULL;
	static bool loaded = false;
	const char *p;
	size_t		n = strlen(name);

	if (!loaded)
	{
		skip = getenv("STAGE_FUZZ_SKIP");
		loaded = true;
	}
	if (skip == NULL)
		return false;
	for (p = skip; (p = strstr(p, name)) != NULL; p += n)
		if ((p == skip || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

#define FUZZ_CHECK(name, cond, ...) \
	do { \
		if (!(cond) && !fuzz_skip(name)) \
		{ \
			fprintf(stderr, "\n==stage fuzz== property \"%s\" violated (%s:%d)\n  ", \
					name, __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fprintf(stderr, "\n  (STAGE_FUZZ_SKIP=%s lets fuzzing go on past it)\n", name); \
			fflush(stderr); \
			abort(); \
		} \
	} while (0)

/* a result a mask returned: palloc'd, valid UTF-8, NUL-free */
static inline void
fuzz_check_result(const char *what, const char *out, const char *in, int inlen)
{
	FUZZ_CHECK("result-palloc", fuzz_owned(out),
			   "%s returned %p, not a palloc'd chunk; input %s", what, out,
			   fuzz_show(in, inlen));
	FUZZ_CHECK("result-utf8", fuzz_utf8_ok(out, strlen(out)),
			   "%s returned invalid UTF-8 %s for input %s", what,
			   fuzz_show(out, strlen(out)), fuzz_show(in, inlen));
}

/* ----------------------------------------------------------------
 *		keys
 * ---------------------------------------------------------------- */

/* fixed keys: empty, short, and longer than a SHA-256 block (hashed) */
static const char *const fuzz_key_bytes[3] = {
	"",
	"stage-fuzz-key-0123456789abcdef",
	"a key longer than the 64-byte SHA-256 block, so hmac_prepare hashes it first: "
	"0123456789abcdefghijklmnopqrstuvwxyz"
};
static HmacKey fuzz_keys[3];

static inline void
fuzz_keys_init(void)
{
	int			i;

	for (i = 0; i < 3; i++)
		hmac_prepare(&fuzz_keys[i], (const uint8 *) fuzz_key_bytes[i],
					 strlen(fuzz_key_bytes[i]));
}

/* ----------------------------------------------------------------
 *		timing mode
 * ---------------------------------------------------------------- */

typedef struct FuzzTiming
{
	const char *name;
	/* t->s/t->len unterminated, t->cstr the same NUL-terminated */
	void		(*fn) (const FuzzText *t);
} FuzzTiming;

static inline bool
fuzz_timing_mode(void)
{
	const char *v = getenv("STAGE_FUZZ_TIMING");

	return v != NULL && v[0] != '\0' && v[0] != '0';
}

static inline double
fuzz_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static inline void
fuzz_timing(const char *harness, const FuzzTiming *cases, int ncases,
			const uint8 *data, size_t size)
{
	FuzzText	t;
	const char *lim = getenv("STAGE_FUZZ_TIME_LIMIT");
	int			limit_s = lim ? atoi(lim) : 10;
	int			i;

	static bool done = false;

	/* libFuzzer may call back more than once for one file: time it once */
	if (size == 0 || done)
		return;
	done = true;
	if (limit_s <= 0)
		limit_s = 10;
	fuzz_text(&t, data, size);
	for (i = 0; i < ncases; i++)
	{
		int			fds[2];
		pid_t		pid;
		struct pollfd pfd;
		double		ms = -1;
		int			status;
		int			r;

		if (pipe(fds) != 0)
			fuzz_die("pipe: %m");
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0)
			fuzz_die("fork: %m");
		if (pid == 0)
		{
			double		t0;

			close(fds[0]);
			t0 = fuzz_now_ms();
			cases[i].fn(&t);
			ms = fuzz_now_ms() - t0;
			if (write(fds[1], &ms, sizeof(ms)) != sizeof(ms))
				_exit(2);
			_exit(0);
		}
		close(fds[1]);
		pfd.fd = fds[0];
		pfd.events = POLLIN;
		do
			r = poll(&pfd, 1, limit_s * 1000);
		while (r < 0 && errno == EINTR);
		if (r == 0)
		{
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			printf("TIME %s.%s TIMEOUT >%d s (%d bytes)\n", harness, cases[i].name,
				   limit_s, t.len);
		}
		else if (read(fds[0], &ms, sizeof(ms)) == sizeof(ms))
		{
			waitpid(pid, &status, 0);
			printf("TIME %s.%s %.1f ms (%d bytes)\n", harness, cases[i].name, ms, t.len);
		}
		else
		{
			waitpid(pid, &status, 0);
			printf("TIME %s.%s CRASH status %d (%d bytes)\n", harness, cases[i].name,
				   status, t.len);
		}
		close(fds[0]);
		fflush(stdout);
	}
	fuzz_text_free(&t);
}

#endif
