/*-------------------------------------------------------------------------
 *
 * stage.h
 *	  The types every part of stage shares: the compiled contract
 *	  (RuleProgram, its StageColumn and StageRule) and the GUC variables
 *	  several modules read (a GUC only one module reads is declared in
 *	  that module's header).  Functions are declared in the header of the
 *	  file that defines them.
 *
 * Module map (one responsibility each; a file calls only files listed
 * below it, never one above):
 *	  stage.c          _PG_init and the GUCs
 *	  worker.c         background workers that run pipelines' batches
 *	  replay.c         stage.check_row, stage.preview and stage.replay
 *	  batch.c          one batch, end to end: enter, window, lanes, chunks
 *	                   read from the landing index, hold, advance
 *	  write.c          clean rows to the target, outcome records, rule and
 *	                   transform counts
 *	  transform_run.c  the transform stage of a batch's pieces
 *	  check.c          drift, type checks, rules, key dedupe of a piece
 *	  outcome.c        a row's masked values and reasons; bisection and
 *	                   sweep in subtransactions; reasons and rows as jsonb
 *	  moverutil.c      SPI arrays and statements, hash sets of strings
 *	  landing.c        landing table DDL (partitioned by _stage_txid) and
 *	                   the append-only guard; the retention state the views
 *	                   read as the catalog owner
 *	  backpressure.c   the producers' statement trigger: refuse or wait
 *	                   while a pipeline's backlog is over its limit
 *	  lane.c           the lane of a landing row, for parallel movers
 *	  qview.c          quarantine as people may see it: masked at read time
 *	  reason.c         which errors are a row's fault; messages withheld
 *	                   where they may quote a masked value
 *	  contract.c       compile a pipeline's contract (columns, rules, masks,
 *	                   transforms), cached per backend; stage.add_rule and
 *	                   add_mask validators
 *	  transform_contract.c  a transform as a contract declares it: checked
 *	                   when added, compiled into the program
 *	  expression.c     the SQL expressions of rules and transforms: checked,
 *	                   built into their set-wise statements, planned once
 *	  direct.c         clean rows written without an INSERT statement
 *	  mask_sql.c       the SQL masking functions (stage.mask, stage.mask_*,
 *	                   stage.hmac, stage.tokenize, ...)
 *	  mask_contract.c  a mask as a contract declares it: parse its jsonb
 *	                   arguments, check it against its column, prepare a
 *	                   batch, apply it to a value
 *	  vault.c          the token vault of the tokenize mask, stage.detokenize
 *	  secret.c         named secrets: read for allowed roles, absorbed into
 *	                   HMAC keys; key import and generation
 *	  guard.c          who stage acts for; the gate of the SQL API; the one
 *	                   entry/exit of owner code; catalog_exec
 *	  transform.c      transform methods: compile once, apply to one value;
 *	                   stage.transform
 *	  tf_number.c      formatted numbers to plain decimal text
 *	  tf_time.c        date and timestamp formats to ISO text
 *	  tf_text.c        pure text helpers of the transforms (buffer, trim,
 *	                   replace, string sets)
 *	  mask.c           masking primitives: one value in, its masked form out
 *	  pseudonym.c      keyed, format-preserving pseudonyms
 *	  pii.c            PII detection in free text, one pass; the PII kinds
 *	  format.c         format checks (email, uuid, card with Luhn, iban, ...)
 *	  typecheck.c      cheap C pre-checks of text against a target type
 *	  regex.c          PCRE2 compile cache, limits, SQL regex functions
 *	  node.c           which staging node this is (stage.node_name); the
 *	                   lineage columns of a target
 *	  jsonarg.c        reading the jsonb arguments of rules and masks
 *	  sha256.c         HMAC-SHA256 with a precomputed key
 *
 * The GUC variables stage.c defines are read from below it (batch.c,
 * worker.c, regex.c): data, not calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_H
#define STAGE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/relcache.h"

/* the types the compiled contract embeds */
#include "format.h"
#include "typecheck.h"

/*
 * The primitives, for files that include only this header (the fuzz
 * harnesses of test/fuzz among them): they sit below everything declared
 * here and include nothing of it.
 */
#include "mask.h"
#include "pii.h"
#include "pseudonym.h"
#include "regex.h"
#include "sha256.h"

/*---- GUC variables (defined and documented in stage.c) ----*/
extern int	stage_batch_size;

/*---- the compiled contract (built by contract.c) ----*/
typedef enum RuleKind
{
	RULE_NOT_NULL,
	RULE_RANGE,
	RULE_ENUM,
	RULE_REGEX,
	RULE_LENGTH,
	RULE_FORMAT,
	RULE_NO_PII,
	RULE_JSON,
	RULE_REFERENCE,
	RULE_UNIQUE,
	RULE_EXPRESSION
} RuleKind;

/* one check of the json rule: a path that must exist and/or have a type */
typedef struct JsonCheck
{
	int			npath;
	char	  **path;			/* keys from the root */
	char	   *path_text;		/* $.a.b, for reasons */
	bool		required;
	char	   *type;			/* string|number|boolean|object|array|null or NULL */
} JsonCheck;

typedef struct StageRule
{
	char	   *name;
	RuleKind	kind;
	const char *kind_name;
	int			col;			/* index into RuleProgram.cols */
	bool		warn;			/* severity warn: count, let the row pass */
	/* range */
	bool		has_min;
	bool		has_max;
	Datum		min;
	Datum		max;
	char	   *min_text;
	char	   *max_text;
	/* enum: sorted values for bsearch */
	int			nvalues;
	char	  **values;
	char	   *values_text;	/* for reasons */
	/* regex */
	RxEntry    *rx;
	char	   *pattern;
	/* length */
	int			min_len;		/* -1: none */
	int			max_len;
	/* format */
	FormatKind	format;
	/* no_pii */
	int			pii_kinds;
	/* json */
	int			njson;
	JsonCheck  *json;
	/* reference: SQL returning the distinct values of $1 found there */
	char	   *ref_sql;
	char	   *ref_name;		/* table.column, for reasons */
	HTAB	   *ref_found;		/* per batch */
	/* expression: validated text and the target columns it reads */
	char	   *expr;
	List	   *expr_cols;		/* of char * */
	char	   *expr_sql;		/* built with the program */
	char	  **expr_msg;		/* per batch: row index -> failure, or NULL */
	char	  **expr_state;		/* per batch: row index -> SQLSTATE, or NULL */
	bool	   *expr_raised;	/* per batch: the expression raised (server text) */
	/* per batch counters */
	int64		checked;
	int64		failed;
} StageRule;

typedef struct StageColumn
{
	char	   *name;
	AttrNumber	attnum;			/* in the target */
	bool		is_domain;
	Oid			typid;
	int32		typmod;
	TypeClass	tclass;
	char	   *cast_type;		/* qualified type name used in the INSERT */
	FmgrInfo	infunc;			/* type input function */
	Oid			ioparam;
	FmgrInfo	range_infunc;	/* input function of the base type (range) */
	Oid			range_ioparam;
	FmgrInfo	cmpfunc;		/* btree comparison, for range */
	Oid			collation;
	FmgrInfo	outfunc;		/* key canonicalization */
	bool		is_key;
	bool		required;		/* NOT NULL in the target: drift if missing */
	const char *json_type;		/* JSON type a jsonb payload should carry */
	AttrNumber	landing_attnum; /* columns format: its landing column */
	struct StageMask *mask;	/* NULL: not masked (mask_contract.h) */
} StageColumn;

typedef enum DriftPolicy
{
	DRIFT_IGNORE,
	DRIFT_QUARANTINE,
	DRIFT_HOLD
} DriftPolicy;

typedef enum OnDuplicate
{
	ONDUP_SKIP,
	ONDUP_UPDATE,
	ONDUP_QUARANTINE
} OnDuplicate;

/*
 * A transform of the contract, compiled (transform_contract.c).  The
 * program keeps them in the order the batch runs them: source mappings
 * (from, concat, coalesce), the columns' chains, lookups, expressions,
 * each group in declaration order.
 */
typedef struct StageTransform
{
	char	   *name;
	int			col;			/* the column it sets (index into cols) */
	struct Transform *t;		/* method and arguments (transform.c) */
	int			method;			/* TransformMethod */
	/* from / concat / coalesce: the landing columns, or the payload's paths */
	int			nsrc;
	int		   *src_col;		/* columns format: the source is this column's landing value, */
	int		   *src_extra;		/* or this extra landing column's (-1: not) */
	List	  **src_path;		/* jsonb format: key paths */
	const char *separator;		/* concat */
	/* lookup: $1 the values (text[]); rows of (key, value) as text */
	char	   *lookup_sql;
	char	   *lookup_name;	/* table.value, for reasons */
	int			on_missing;		/* TF_MISSING_* */
	/* expression: the text, the columns it reads, the statement */
	char	   *expr;
	List	   *expr_cols;
	char	   *expr_sql;
	/* counters of the batch */
	int64		applied;
	int64		changed;
	int64		nulled;
	int64		failed;
} StageTransform;

#define TF_MISSING_KEEP		0
#define TF_MISSING_NULL		1
#define TF_MISSING_REJECT	2

typedef struct RuleProgram
{
	MemoryContext cxt;			/* owns everything below */
	int			pipeline_id;
	int			version;
	Oid			target;
	Oid			landing;
	Oid			owner;			/* the pipeline's owner role */
	char	   *name;
	bool		jsonb_format;
	OnDuplicate on_duplicate;
	int			ncols;
	StageColumn *cols;
	int			nrules;
	StageRule  *rules;
	int			ntransforms;
	StageTransform *transforms;
	/* landing columns that are no target column, read for transforms */
	int			nextra;
	AttrNumber *extra_attnum;
	char	  **extra_name;
	/* landing columns nobody reads: values there are counted as drift */
	int			nunread;
	AttrNumber *unread_attnum;
	char	  **unread_name;
	int			nkeys;
	int		   *keycols;		/* indexes into cols */
	bool		lineage_id;		/* target has _stage_id */
	bool		lineage_batch;	/* target has _stage_batch */
	bool		lineage_node;	/* target has _stage_node */
	AttrNumber	lineage_id_attnum;
	AttrNumber	lineage_batch_attnum;
	AttrNumber	lineage_node_attnum;
	bool		direct;			/* clean rows bypass the INSERT (direct.c) */
	double		max_reject_ratio;	/* < 0: none */
	DriftPolicy drift;
	/* the landing table, for the chunk reader (mover_read_chunk, batch.c) */
	AttrNumber	l_id;
	AttrNumber	l_txid;
	AttrNumber	l_source;
	AttrNumber	l_received;
	AttrNumber	l_role;
	AttrNumber	l_payload;		/* jsonb format */
	Oid			landing_index;	/* btree on (_stage_txid, _stage_id) */
	char	   *insert_sql;		/* writes clean rows from arrays */
	char	   *upsert_sql;		/* the same with ON CONFLICT on the key */
	bool		conflicts_seen; /* last chunk met keys already in the target */
	void	   *insert_plan;	/* SPIPlanPtr, prepared on first use, kept */
	void	   *upsert_plan;
	bool		valid;
	int			pins;			/* calls using it now (contract_get/release) */
	bool		retired;		/* replaced while pinned: freed when unpinned */
} RuleProgram;

#endif							/* STAGE_H */
