/*-------------------------------------------------------------------------
 *
 * stage.h
 *	  Shared declarations of the stage extension: GUC variables, the compiled
 *	  contract (RuleProgram) and the entry points each module offers the
 *	  others.
 *
 * Module map (one responsibility each):
 *	  stage.c     _PG_init and GUCs
 *	  regex.c     PCRE2 compile cache, limits, SQL regex functions
 *	  mask.c      masking primitives, the contract form of a mask, secrets
 *	  pseudonym.c keyed, format-preserving pseudonyms
 *	  vault.c     the token vault of the tokenize mask
 *	  qview.c     quarantine as analysts see it: masked at read time
 *	  pii.c       PII detection in free text, one pass
 *	  typecheck.c cheap C pre-checks of text against a target type
 *	  contract.c  load a pipeline's contract and compile it, cached per backend
 *	  landing.c   landing table DDL and the append-only guard
 *	  mover.c     one batch, end to end
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_H
#define STAGE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

#include "sha256.h"

/*---- GUC variables ----*/
extern int	stage_batch_size;
extern int	stage_regex_match_limit;
extern int	stage_regex_depth_limit;

/*---- regex.c ----*/
typedef struct RxEntry RxEntry;

/* result of rx_match */
#define RX_NOMATCH	0
#define RX_MATCH	1
#define RX_LIMIT	2			/* match or depth limit hit */

extern RxEntry *rx_compile(const char *pattern, const char *flags);
extern int	rx_match(RxEntry *rx, const char *subject, size_t len);
extern char *rx_replace_all(RxEntry *rx, const char *subject, size_t len,
							const char *repl, int *status);

/*---- mask.c (and pseudonym.c, vault.c, qview.c) ----*/
typedef enum MaskMethod
{
	MASK_HASH,					/* keyed HMAC-SHA256, hex or base64 */
	MASK_PSEUDONYM,				/* keyed, format-preserving stand-in */
	MASK_PARTIAL,
	MASK_EMAIL,
	MASK_PHONE,
	MASK_CARD,
	MASK_REDACT,				/* PCRE2 pattern, every match replaced */
	MASK_REDACT_PII,			/* every pii_scan span replaced */
	MASK_NULL,
	MASK_CONSTANT,
	MASK_GENERALIZE,			/* date/timestamp truncation, number buckets */
	MASK_NOISE,					/* number +/- ratio */
	MASK_TOKENIZE				/* random token, reversible through the vault */
} MaskMethod;

/* what a pseudonym looks like (auto: decided per value) */
typedef enum PseudoKind
{
	PSEUDO_AUTO,
	PSEUDO_EMAIL,
	PSEUDO_NAME,
	PSEUDO_DIGITS,
	PSEUDO_TEXT
} PseudoKind;

/* generalize: the unit of a date/timestamp, or a numeric bucket */
typedef enum MaskUnit
{
	UNIT_NONE,
	UNIT_YEAR,
	UNIT_MONTH,
	UNIT_DAY,
	UNIT_HOUR
} MaskUnit;

typedef struct VaultMap VaultMap;

typedef struct StageMask
{
	MaskMethod	method;
	const char *method_name;
	int			keep_start;		/* partial */
	int			keep_end;		/* partial; phone: digits kept at the end */
	char	   *fill;			/* partial, phone */
	/* hash, pseudonym, tokenize: the named secret */
	char	   *secret_name;
	HmacKey		hkey;			/* the secret, absorbed when loaded */
	bool		key_loaded;
	int			length;			/* hash: output length in chars, 0 = all */
	bool		base64;			/* hash: base64 instead of hex */
	PseudoKind	pseudo_kind;	/* pseudonym */
	bool		keep_domain;	/* pseudonym of an email: domain kept */
	RxEntry    *rx;				/* redact */
	char	   *replacement;	/* redact, redact_pii (NULL: "[kind]") */
	int			pii_kinds;		/* redact_pii */
	char	   *value;			/* constant */
	MaskUnit	unit;			/* generalize by unit */
	Datum		bucket;			/* generalize by bucket: width (Numeric) */
	bool		range_label;	/* bucket shown as "[lo,hi)" */
	double		ratio;			/* noise */
	bool		seeded;			/* noise: deterministic per value (secret_name: keyed) */
	int64		seed;
	char	   *prefix;			/* tokenize */
	VaultMap   *vault;			/* tokenize: tokens of this batch */
} StageMask;

extern void mask_parse(StageMask *m, const char *method, Jsonb *args);
extern char *mask_apply(const StageMask *m, const char *value, int len);
extern bool mask_needs_text(const StageMask *m);
extern bool mask_needs_batch(const StageMask *m);
extern bool mask_uses_secret(const StageMask *m);
extern bool mask_deterministic(const StageMask *m);
extern void mask_check_column(const StageMask *m, const char *column,
							  Oid typid, int32 typmod, bool notnull);
extern void mask_load_key(StageMask *m, Oid role);
extern bool mask_try_load_key(StageMask *m, Oid role);
extern void mask_prepare(StageMask *m, const char **values, int n, Oid role);
extern char *mask_email(const char *s, int len);
extern char *mask_partial(const char *s, int len, int keep_start, int keep_end,
						  const char *fill);
extern char *mask_card(const char *s, int len);
extern char *mask_phone(const char *s, int len, int keep, const char *fill);
extern char *mask_hmac_hex(const HmacKey *key, const char *s, int len);
extern char *mask_hash(const HmacKey *key, const char *s, int len,
					   bool base64, int length);
extern char *mask_redact(RxEntry *rx, const char *s, int len, const char *repl);
extern char *mask_redact_pii(const char *s, int len, int kinds, const char *repl);
extern char *mask_generalize_time(const char *s, MaskUnit unit);
extern char *mask_generalize_number(const char *s, Datum width, bool label);
extern char *mask_noise(const char *s, double ratio, const HmacKey *key,
						bool seeded, int64 seed);
extern bool luhn_valid(const char *s, int len);
extern uint8 *secret_load(const char *name, Oid role, int *keylen);
extern uint8 *secret_try_load(const char *name, Oid role, int *keylen);

/* the texts written for values a mask cannot read (never the value) */
#define MASK_NOT_A_NUMBER	"[not a number]"
#define MASK_NOT_A_DATE		"[not an ISO date]"
#define MASK_NO_TOKEN		"[not tokenized]"
#define MASK_HIDDEN			"[masked]"

/* pseudonym.c */
extern char *mask_pseudonym(const HmacKey *key, const char *s, int len,
							PseudoKind kind, bool keep_domain);

/* vault.c: tokens, set-wise per batch */
extern void vault_prepare(StageMask *m, const char **values, int n, bool create);
extern char *vault_lookup(const StageMask *m, const char *s, int len);

/*---- typecheck.c ----*/
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

/*---- format.c ----*/
typedef enum FormatKind
{
	FMT_EMAIL,
	FMT_UUID,
	FMT_E164,
	FMT_CARD,
	FMT_IBAN,
	FMT_IPV4,
	FMT_IPV6,
	FMT_ISO_DATE,
	FMT_ISO_TIMESTAMP,
	FMT_URL
} FormatKind;

extern bool format_lookup(const char *name, FormatKind *kind);
extern const char *format_name(FormatKind kind);
extern bool format_valid(FormatKind kind, const char *s, int len);
extern bool iban_valid(const char *s, int len);
extern bool email_valid(const char *s, int len);

/*---- pii.c ----*/
#define PII_EMAIL		0x01
#define PII_CARD		0x02	/* Luhn-checked */
#define PII_IBAN		0x04	/* mod-97 checked */
#define PII_PHONE		0x08
#define PII_SSN			0x10	/* US social security number */
#define PII_IPV4		0x20
#define PII_IPV6		0x40
#define PII_CREDENTIAL	0x80	/* API keys, tokens, private keys */
#define PII_ALL			0xFF

typedef struct PiiHit
{
	int			kind;			/* one PII_* bit */
	int			start;			/* byte offset */
	int			len;			/* bytes */
} PiiHit;

extern int	pii_scan(const char *s, int len, int kinds, PiiHit *hits, int maxhits);
extern const char *pii_kind_name(int kind);
extern int	pii_kind_lookup(const char *name);
extern const char *pii_kind_list(void);

/*---- contract.c ----*/
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
	StageMask  *mask;
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
	int			nkeys;
	int		   *keycols;		/* indexes into cols */
	bool		lineage_id;		/* target has _stage_id */
	bool		lineage_batch;	/* target has _stage_batch */
	AttrNumber	lineage_id_attnum;
	AttrNumber	lineage_batch_attnum;
	bool		direct;			/* clean rows bypass the INSERT (direct.c) */
	double		max_reject_ratio;	/* < 0: none */
	DriftPolicy drift;
	/* the landing table, for the chunk reader (reader in mover.c) */
	AttrNumber	l_id;
	AttrNumber	l_txid;
	AttrNumber	l_source;
	AttrNumber	l_received;
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

extern RuleProgram *contract_get(int pipeline_id, int version);
extern void contract_release(RuleProgram *p);
extern void rule_compile(StageRule *r, StageColumn *col, const char *kind,
						 Jsonb *args, Relation rel);
extern void column_init(StageColumn *col, Relation rel, AttrNumber attnum);

/* JSON argument helpers */
extern bool json_get(Jsonb *args, const char *key, JsonbValue *out);
extern void json_check_keys(Jsonb *args, const char *what,
							const char *const *allowed);
extern char *json_get_string(Jsonb *args, const char *key, const char *what,
							 const char *dflt);
extern int	json_get_int(Jsonb *args, const char *key, const char *what,
						 int dflt, int minval, int maxval);

/*---- direct.c ----*/
extern bool direct_eligible(Relation rel, RuleProgram *p);
extern void direct_insert(RuleProgram *p, int n, char **values, Datum *texts,
						  int64 *ids, int64 batch_id);

/*---- errors that are a row's fault (quarantine) vs the batch's (abort) ----*/
extern bool stage_row_error(int sqlerrcode);
extern bool stage_input_error(int sqlerrcode);

#endif							/* STAGE_H */
