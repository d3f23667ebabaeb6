/*-------------------------------------------------------------------------
 *
 * typecheck.h
 *	  Cheap C pre-checks of text against a target type, and the ISO
 *	  date/time scanners the masks and formats share (see typecheck.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TYPECHECK_H
#define STAGE_TYPECHECK_H

#include "postgres.h"

typedef enum TypeClass
{
	TC_OTHER,					/* no C pre-check: input function decides */
	TC_TEXT,					/* text, unconstrained */
	TC_VARCHAR,					/* varchar(n) / bpchar(n): length check */
	TC_INT2,
	TC_INT4,
	TC_INT8,
	TC_NUMERIC,
	TC_FLOAT,
	TC_BOOL,
	TC_DATE,
	TC_TIMESTAMP,
	TC_UUID
} TypeClass;

extern TypeClass tc_classify(Oid typid, int32 typmod);
extern bool tc_precheck(TypeClass tc, int32 typmod, const char *s);
extern int	tc_isodate(const char *s);
extern int	tc_isotime(const char *s);
extern bool tc_isozone(const char *s);

#endif							/* STAGE_TYPECHECK_H */
