/*-------------------------------------------------------------------------
 *
 * reason.h
 *	  Which errors a row is quarantined for, and the messages of quarantine
 *	  reasons that stage writes itself (reason.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_REASON_H
#define STAGE_REASON_H

/* where a reason's message comes from */
#define ORIGIN_STAGE	NULL		/* written by stage: no value in it */
#define ORIGIN_INPUT	"input"		/* a built-in type's input function: quotes its value */
#define ORIGIN_SERVER	"server"	/* the target, a trigger, an expression: anything */

/* errors that are a row's fault (quarantine) vs the batch's (abort) */
extern bool stage_row_error(int sqlerrcode);
extern bool stage_input_error(int sqlerrcode);

extern const char *sqlstate_name(const char *sqlstate);
extern char *reason_withheld(const char *sqlstate, const char *constraint,
							 const char *masked_column);

#endif							/* STAGE_REASON_H */
