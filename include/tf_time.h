/*-------------------------------------------------------------------------
 *
 * tf_time.h
 *	  The date and timestamp transforms' parser (tf_time.c): a subset of
 *	  to_timestamp's patterns, compiled once, matched without raising.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_TF_TIME_H
#define STAGE_TF_TIME_H

#include "postgres.h"

typedef struct TfTimeItem TfTimeItem;

typedef struct TfTimeFormat
{
	int			n;
	TfTimeItem *items;
	bool		has_time;		/* any of HH, MI, SS, MS, US */
	bool		has_offset;		/* TZH or TZ */
} TfTimeFormat;

/* a parsed value; offset in seconds east of UTC when has_offset */
typedef struct TfTimeValue
{
	int			year;
	int			month;
	int			day;
	int			hour;
	int			minute;
	int			second;
	int			usec;
	bool		has_offset;
	int			offset;
} TfTimeValue;

/* compile a format: NULL, or what is wrong (palloc'd) */
extern char *tf_time_compile(const char *format, TfTimeFormat *f);

/*
 * Parse s[0..len) by f.  0: *v is filled and valid (every field in range,
 * the day in its month).  Otherwise *message (palloc'd) says why and the
 * result is the SQLSTATE class: TF_TIME_FORMAT (22007, the text does not
 * match the format) or TF_TIME_RANGE (22008, a field out of range).
 */
#define TF_TIME_OK		0
#define TF_TIME_FORMAT	1
#define TF_TIME_RANGE	2

extern int	tf_time_parse(const TfTimeFormat *f, const char *s, int len,
						  TfTimeValue *v, char **message);

/* a fixed offset: Z, UTC, GMT, +HH, +HHMM, +HH:MM (sign required); false if not one */
extern bool tf_time_offset(const char *s, int len, int *offset);

/* canonical text: YYYY-MM-DD, or YYYY-MM-DD HH24:MI:SS[.ffffff][+HH:MM] */
extern char *tf_time_date_text(const TfTimeValue *v);
extern char *tf_time_timestamp_text(const TfTimeValue *v);

#endif							/* STAGE_TF_TIME_H */
