/*
 * bench.sql: batch throughput of stage.run_batch against hand-written
 * equivalents, on the same generated data in one run.  Run by
 * scripts/bench.sh (`make bench`) against a throwaway cluster; see
 * docs/performance.md, "Batch throughput", for the method and the results.
 *
 * psql variables (set by bench.sh):
 *   rows        landing rows to generate (about 5% of them bad)
 *   c_rows      rows the per-row loop (c) really processes; its time is
 *               scaled linearly to :rows
 *   batch       max_rows for stage.run_batch, or NULL for its default
 *   repeat      timed rounds; the report gives the median of each variant
 *   with_stage  1 = run variant (d); 0 = baselines only
 *
 * Variants, each into its own freshly truncated copy of the same target:
 *   (a)  floor: cast + INSERT of the good rows only (no validation, no masks)
 *   (b)  the same staging hand-written in set-based SQL: regex-guarded casts,
 *        rule checks and masks (pgcrypto HMAC), one INSERT for the clean rows
 *        and one for the rejects
 *   (b2) the same SQL as one statement (a writable CTE), which validates
 *        each row once instead of twice
 *   (c)  a PL/pgSQL loop, one BEGIN ... EXCEPTION block per row
 *   (d)  stage.run_batch() in a loop, one transaction per chunk, until the
 *        landing table is drained
 * Generating the data and filling the landing tables are not timed.
 *
 *   setup.sql   schema, generated data, landing tables, (b)'s checks (once)
 *   round.sql   one timed round of every variant (repeated :repeat times)
 *   report.sql  medians, ratios, and the checks that the variants agree
 */
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET timezone = 'UTC';
SET datestyle = 'ISO, MDY';

\ir setup.sql
\set round 1
\ir round.sql
\ir report.sql
\echo '== done'
