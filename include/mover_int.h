/*-------------------------------------------------------------------------
 *
 * mover_int.h
 *	  The mover's own types and the functions its files share; nothing
 *	  outside the mover includes it (mover.h is the public entry).
 *
 * The mover's files, top (entry points) to bottom (primitives); each calls
 * only into files below it:
 *	  replay.c      stage.check_row, stage.preview and stage.replay
 *	  batch.c       the batch transaction: enter, window, lanes, chunks,
 *	                batch record, hold, advance; stage.run_batch
 *	  transform_run.c  the transform stage of a piece's rows
 *	  write.c       clean rows to the target, outcome records, rule and
 *	                transform stats
 *	  check.c       drift, type checks, rules, references, expressions,
 *	                key dedupe
 *	  outcome.c     a row's masked values and reasons, subtransaction
 *	                bisection and sweep, reasons and row data as jsonb
 *	  moverutil.c   SPI arrays and statements, hash sets of strings
 *	  direct.c      the direct write primitive (table_multi_insert)
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_MOVER_INT_H
#define STAGE_MOVER_INT_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "stage.h"
#include "contract.h"
#include "direct.h"
#include "guard.h"
#include "mask_contract.h"
#include "mover.h"

typedef enum RowOutcome
{
	OUT_CLEAN,
	OUT_QUARANTINE,
	OUT_DUPLICATE
} RowOutcome;

/* one landing row (or replayed or checked row) and what became of it */
typedef struct MoverRow
{
	int64		id;
	char	   *source;
	char	   *role;			/* _stage_role: who landed the row (NULL: not known) */
	Datum		received_at;
	bool		received_null;
	char	  **vals;			/* per column cstring, NULL for SQL NULL */
	Datum	   *datums;			/* per column text datum from landing */
	bool	   *badtype;		/* per column: failed the type check */
	RowOutcome	outcome;
	bool		warned;
	List	   *reasons;		/* of Reason (outcome.c), NIL when it passes */
	char	   *key;			/* canonical key text, for dedupe */
	Datum		payload;		/* jsonb format: the payload, or 0 */
	char	  **extra;			/* the landing columns that are no target column (p->nextra) */
	char	  **landed;			/* the values as landed, once a transform changed one (else NULL) */
	char	   *unread;			/* a landing column nobody reads that has a value here, or NULL */

	/*
	 * The text the row shows and writes per column: the masked value where
	 * the column is masked, else vals[c] itself.  Made by mover_masked the
	 * first time a masked value is needed (a reason, the write, the
	 * quarantine record), so each value is masked at most once; masked[c]
	 * says whether out[c] is computed.  Rows without a masked value keep
	 * out == vals and masked == NULL.
	 */
	char	  **out;
	bool	   *masked;
} MoverRow;

/* the state of one batch (or one check_row or replay call) */
typedef struct Mover
{
	RuleProgram *p;
	MemoryContext cxt;			/* the rows of the current piece */
	MemoryContext batch_cxt;	/* what lasts for the whole batch */
	int			n;
	MoverRow   *rows;
	int64		batch_id;
	int64		n_clean;
	int64		n_quarantined;
	int64		n_duplicate;
	int64		n_warned;
	int64		n_drift;		/* jsonb format: rows whose payload drifted */
	int64	   *type_checked;	/* per column */
	int64	   *type_failed;
	SPIPlanPtr	insert_plan;
	HTAB	   *written;		/* canonical keys the INSERT returned */
	HTAB	   *sources;		/* rows by _stage_source and outcome (SourceCount) */
	bool		check_only;		/* stage.check_row: report warnings too */
	bool		limited;		/* check_row for a non-owner: no owner code */
	bool		no_writes;		/* preview, dry-run replay: no new tokens in the vault */
	StringInfo	skipped;		/* what limited left out, for the NOTICE */
	bool		use_direct;		/* writes go through direct_insert */
	int			cur_col;		/* column of the type check being swept */
	TimestampTz *received;		/* arrival of every row of the batch, all pieces */
	int64		nreceived;
	int64		received_cap;
	bool		input_errors;	/* sweeping input functions: see stage_input_error */
	StageRule  *cur_rule;		/* expression rule being bisected */
	StageTransform *cur_tf;		/* expression transform being bisected */
	char	  **tf_result;		/* its value per row */
	bool	   *tf_done;		/* per row: computed */
	void		(*sweep_fn) (struct Mover *m, int *idx, int n);	/* mover_sweep's work */
	int			sweep_pos;		/* the row mover_sweep is at */
	bool		open_items;		/* the pipeline may have open quarantine items */
} Mover;

/* a pipeline as the catalog says it is */
typedef struct PipelineInfo
{
	int			pipeline_id;
	Oid			owner;
	bool		target_exists;
	Oid			landing;
	int			version;
	bool		enabled;
	bool		lanes_open;		/* an open window worked in lanes, a lane of it left */
	Oid			target;
} PipelineInfo;

/* what mover_enter changed, for mover_leave to restore */
typedef struct MoverSession
{
	int			pipeline_id;
	Oid			save_userid;	/* who called (stage_caller) */
	Guard		guard;
	RuleProgram *prog;			/* pinned for the call (contract_release) */
	int			lane;			/* the lane mover_enter took (-1: the whole pipeline) */
} MoverSession;

/* work over the rows idx[0..n), and what to do with a row it failed for */
typedef void (*mover_try_fn) (Mover *m, int *idx, int n);
typedef void (*mover_fail_fn) (Mover *m, int row, ErrorData *e);

/*---- batch.c ----*/
extern void mover_check_piece(Mover *m);
extern void mover_reset_counters(RuleProgram *p);
extern void mover_find_pipeline(const char *name, PipelineInfo *pi);
extern bool mover_enter(const char *name, MoverSession *ms, bool nowait,
						bool may_lane);
extern void mover_leave(MoverSession *ms);
extern void mover_row_init(RuleProgram *p, MoverRow *row);
extern void mover_row_from_json(RuleProgram *p, MoverRow *row, Jsonb *jb);

/*---- write.c ----*/
extern void mover_write_clean(Mover *m);
extern void mover_write_outcomes(Mover *m);
extern void mover_close_items(Mover *m);
extern bool mover_has_open_items(int pipeline_id);
extern void mover_write_stats(Mover *m);
extern void mover_write_sources(Mover *m);

/*---- transform_run.c ----*/
extern void mover_transform(Mover *m);

/*---- check.c ----*/
extern void mover_skipped(Mover *m, const char *what);
extern void mover_column_arrays(Mover *m, List *cols, int *idx, int n, Oid *types,
								Datum *vals);
extern void mover_drift(Mover *m);
extern void mover_typecheck(Mover *m);
extern void mover_rules(Mover *m);
extern void mover_dedupe(Mover *m);
extern char *mover_canonical_key(Mover *m, Datum *typed);
extern char *mover_quarantine_key(Mover *m, MoverRow *row);

/*---- outcome.c ----*/
extern void mover_prepare_masks(Mover *m);
extern char *mover_masked(Mover *m, MoverRow *row, int c);
extern void mover_reason(Mover *m, MoverRow *row, const char *rule,
						 const char *kind, int col, const char *sqlstate,
						 const char *message);
extern void mover_warning(Mover *m, MoverRow *row, const char *rule,
						  const char *kind, int col, const char *sqlstate,
						  const char *message);
extern void mover_server_text(Mover *m, MoverRow *row, const char *rule,
							  const char *kind, int col, const char *sqlstate,
							  const char *constraint, const char *text,
							  bool input_fn, const char *severity);
extern void mover_reason_server(Mover *m, MoverRow *row, const char *rule,
								const char *kind, int col, ErrorData *e,
								bool input_fn);
extern ErrorData *mover_try(Mover *m, mover_try_fn fn, int *idx, int n);
extern void mover_bisect(Mover *m, mover_try_fn fn, mover_fail_fn fail,
						 int *idx, int n);
extern void mover_sweep(Mover *m, mover_try_fn fn, mover_fail_fn fail,
						int *idx, int n);
extern Datum mover_reasons_jsonb(Mover *m, MoverRow *row, bool raw);
extern bool mover_has_raw(MoverRow *row);
extern Datum mover_row_data(Mover *m, MoverRow *row, bool masked);

/*---- moverutil.c ----*/
extern Datum mover_array(Datum *elems, bool *nulls, int n, Oid elemtype);
extern void mover_exec(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls, int expect);
extern HTAB *mover_key_table(const char *name, int n);

#endif							/* STAGE_MOVER_INT_H */
