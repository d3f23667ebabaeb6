/*-------------------------------------------------------------------------
 *
 * tf_text.h
 *	  Pure text helpers of the transform methods (tf_text.c): an output
 *	  buffer with a size limit, white space, trim, squish, plain replace
 *	  and sets of strings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TF_TEXT_H
#define STAGE_TF_TEXT_H

#include "postgres.h"

#include "utils/memutils.h"

/* the longest text a transform produces: it must still fit a text datum */
#define TF_MAX_TEXT		((Size) (MaxAllocSize - VARHDRSZ - 1))

/* an output buffer that refuses to grow past TF_MAX_TEXT bytes */
typedef struct TfBuf
{
	char	   *data;
	Size		len;
	Size		cap;
	bool		too_long;		/* an append was refused */
} TfBuf;

extern void tf_buf_init(TfBuf *b, Size hint);
extern bool tf_buf_append(TfBuf *b, const char *s, Size n);
extern char *tf_buf_finish(TfBuf *b);

/* bytes of the white space character at s (0: none); utf8: Unicode spaces too */
extern int	tf_space_len(const char *s, const char *end, bool utf8);

/* trim: the range [*start, *end) of s left after trimming (chars NULL: white space) */
extern void tf_trim(const char *s, int len, const char *chars, int charslen,
					bool utf8, int *start, int *end);

/* squish: trimmed, inner runs of white space one ASCII space; palloc'd */
extern char *tf_squish(const char *s, int len, bool utf8, int *outlen);

/* replace: the Knuth-Morris-Pratt table of a pattern, then every match replaced */
extern int *tf_replace_prepare(const char *from, int fromlen);
extern int	tf_replace(const char *s, int len, const char *from, int fromlen,
					   const int *kmp, const char *to, int tolen, char **out,
					   Size *outlen);

#define TF_REPLACE_NONE		0	/* no match: *out is NULL */
#define TF_REPLACE_DONE		1
#define TF_REPLACE_TOO_LONG 2	/* the result would exceed TF_MAX_TEXT */

/*
 * A set of strings for exact look-up (nullif, map keys, boolean words):
 * sorted copies, searched in O(log n); fold: ASCII letters compared
 * without case.  Each string keeps the index it was added with.
 */
typedef struct TfSet
{
	int			n;
	bool		fold;
	int			maxlen;
	struct TfSetItem *items;
} TfSet;

extern void tf_set_build(TfSet *set, char **strs, int *lens, int n, bool fold);
extern int	tf_set_find(const TfSet *set, const char *s, int len);

#endif							/* STAGE_TF_TEXT_H */
