/*-------------------------------------------------------------------------
 *
 * reason.h
 *	  Messages of quarantine reasons that stage writes itself (reason.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_REASON_H
#define STAGE_REASON_H

/* where a reason's message comes from */
#define ORIGIN_STAGE	NULL		/* written by stage: no value in it */
#define ORIGIN_INPUT	"input"		/* a built-in type's input function: quotes its value */
#define ORIGIN_SERVER	"server"	/* the target, a trigger, an expression: anything */

extern const char *sqlstate_name(const char *sqlstate);
extern char *reason_withheld(const char *sqlstate, const char *constraint,
							 const char *masked_column);

#endif							/* STAGE_REASON_H */
