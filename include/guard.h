/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  Who stage acts for, and the one entry/exit of every path that runs
 *	  a pipeline owner's code (see guard.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_GUARD_H
#define STAGE_GUARD_H

#include "postgres.h"

#include "fmgr.h"

/* the role on whose behalf stage acts now (see guard.c) */
extern Oid	stage_caller(void);
extern Oid	guard_catalog_owner(void);
extern bool guard_owns(Oid owner);
extern bool guard_may_see(Oid owner);
extern bool guard_may_see_as(Oid role, Oid owner);
extern bool guard_is_analyst(Oid role);

/* one entry into a pipeline: owner's identity, restricted, GUCs discarded */
typedef struct Guard
{
	int			pipeline_id;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
	bool		entered;
} Guard;

extern void guard_enter(Guard *g, int pipeline_id, const char *name, Oid owner);
extern void guard_leave(Guard *g);
extern void guard_check_idle(int pipeline_id, const char *name);

/* a short switch of identity, undone by guard_pop */
typedef struct GuardSwitch
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
} GuardSwitch;

extern void guard_push_catalog(GuardSwitch *s);
extern void guard_push_role(GuardSwitch *s, Oid role);
extern void guard_pop(GuardSwitch *s);

extern void catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
						 const char *nulls, int expect);
extern void guard_require_update(void);

#endif							/* STAGE_GUARD_H */
