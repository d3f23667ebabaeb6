/*-------------------------------------------------------------------------
 *
 * regex.h
 *	  PCRE2 patterns for rules and masks: the per-backend compile cache
 *	  and the limited match and replace (see regex.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_REGEX_H
#define STAGE_REGEX_H

#include "postgres.h"

/* a compiled pattern, owned by the cache of regex.c */
typedef struct RxEntry RxEntry;

/* GUCs stage.regex_match_limit, stage.regex_depth_limit (stage.c) */
extern int	stage_regex_match_limit;
extern int	stage_regex_depth_limit;

/* result of rx_match */
#define RX_NOMATCH	0
#define RX_MATCH	1
#define RX_LIMIT	2			/* match or depth limit hit */

extern RxEntry *rx_compile(const char *pattern, const char *flags);
extern int	rx_match(RxEntry *rx, const char *subject, size_t len);
extern char *rx_replace_all(RxEntry *rx, const char *subject, size_t len,
							const char *repl, int *status);

#endif							/* STAGE_REGEX_H */
