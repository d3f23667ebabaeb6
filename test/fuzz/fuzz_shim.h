/*-------------------------------------------------------------------------
 *
 * fuzz_shim.h
 *	  The fuzz shim's own interface (shim.c), for the harnesses.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_FUZZ_SHIM_H
#define STAGE_FUZZ_SHIM_H

/* abort with a message: a finding */
extern void fuzz_die(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

/* the generated stubs call this with their name */
extern void fuzz_stub_called(const char *name) pg_attribute_noreturn();

/* free every palloc'd chunk: the end of one input (a context reset) */
extern void fuzz_reset(void);

/* is p a live palloc'd chunk (the start of one)? */
extern bool fuzz_owned(const void *p);

/* palloc'd chunks alive now */
extern size_t fuzz_live_chunks(void);

/* palloc-family calls so far (to check that a function never allocates) */
extern uint64 fuzz_alloc_calls;

#endif
