#!/usr/bin/env bash
# bench.sh: the batch-throughput benchmark behind `make bench`.
#
# Builds and installs stage, starts a throwaway PostgreSQL 15 cluster of its
# own (preloaded with stage, port 54350, socket and data in a temp dir under
# /tmp; scripts/lib/cluster.sh), runs test/bench/bench.sql and stops the
# cluster again, also on error.
# It is a benchmark, not a test: it prints what it measures (and WARNINGs for
# result mismatches) and fails only if something could not run.
#
# Must run as root (it installs the extension and starts the server as the
# postgres user, since PostgreSQL refuses to run as root).
#
# Environment:
#   BENCH_ROWS     generated landing rows (default 1000000; 20000 for a quick try)
#   BENCH_C_ROWS   rows the per-row PL/pgSQL loop (c) really processes; its time
#                  is scaled linearly to BENCH_ROWS (default 0 = all rows: 1M
#                  take about 20 s on 2 cores; 100000 for a sample)
#   BENCH_BATCH    max_rows passed to stage.run_batch (default: empty = the
#                  extension's default batch size)
#   BENCH_REPEAT   timed rounds of every variant on the same data (default 1);
#                  the report gives each variant's median (parallel: rounds
#                  on fresh pipelines each)
#   BENCH_STAGE    1 (default) runs variant (d); 0 skips building stage and (d),
#                  for trying the baselines alone
#   BENCH_PORT     server port (default 54350)
#   BENCH_KEEP     1 keeps the temp dir (data directory and server log)
#   BENCH_SCENARIO batch (default): test/bench/bench.sql, the throughput of
#                  run_batch against hand-written SQL on an analysed landing;
#                  fresh: test/bench/fresh_main.sql, a fresh file COPYed and
#                  moved at once against a COPY of its clean rows
#                  parallel: test/bench/parallel_setup.sql, one pipeline moved
#                  by one mover, then by two movers in two lanes, then two
#                  pipelines moved at once (wall times and speed-ups)
#                  transforms: test/bench/transforms_bench.sql, the batch
#                  benchmark's contract moved as it is, with four C
#                  transforms, and with one expression transform
#                  scrape: test/bench/scrape_setup.sql, a pipeline with
#                  BENCH_SCRAPE_BATCHES (100000) batches of history and
#                  BENCH_SCRAPE_ITEMS (1000000) open quarantine items, then
#                  test/bench/scrape_time.sql: stage.metrics(), the metric
#                  views, stage.health (median and worst of five reads)
#                  scaleout: test/bench/scaleout_run.sh, two staging nodes
#                  feeding a warehouse by logical replication, three
#                  clusters on this machine (ports BENCH_PORT to
#                  BENCH_PORT+2): BENCH_ROWS rows moved by one node alone
#                  against half of them into each of two nodes until the
#                  warehouse has every clean row, then the lag from a
#                  landing commit on a node to the row on the warehouse
#                  volume: test/bench/volume_run.sh, run_batch time per 1M
#                  rows with 1M, 10M and 50M rows already finished in the
#                  landing table, sizes at each mark, then stage.purge of
#                  10M rows older than the retention against a plain DELETE
#   BENCH_VOLUME_MAX volume: finished rows at the end (default 50000000);
#                  BENCH_VOLUME_MARKS, BENCH_VOLUME_CHUNK,
#                  BENCH_VOLUME_PURGE: see test/bench/volume_run.sh
#                  views: scrape_setup.sql's history, then
#                  test/bench/views_time.sql: the typical reads of
#                  stage.quarantine (newest 100, one landing_id, count, by
#                  rule), dlq_summary, stage.batches and stage.health as a
#                  stage_analyst member, against the same reads of the raw
#                  tables and the quarantine view as it was before
#   BENCH_LAG_SECONDS scaleout: how long the lag part's producers run
#                  (default 60)
#   BENCH_LAG_RATE scaleout: rows a second landed into each node in the lag
#                  part (default 5000: pgbench, transactions of 50 rows)
#   BENCH_GROWTH   fresh: 1 also runs ten times BENCH_ROWS (default 0)
#   BENCH_MEMORY   fresh: 1 also measures one run_batch of 10k, 100k, 1M rows
#                  (default 1)
#   BENCH_PGLOADER fresh: seconds Debian's pgloader gets to load the same file
#                  into a copy of the target (default 120; 0 skips it); the
#                  package is installed if missing
#
# The output is also written to test/bench/out/bench-<timestamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER_NAME=bench
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

BENCH_ROWS="${BENCH_ROWS:-1000000}"
BENCH_C_ROWS="${BENCH_C_ROWS:-0}"
BENCH_BATCH="${BENCH_BATCH:-}"
BENCH_REPEAT="${BENCH_REPEAT:-1}"
BENCH_STAGE="${BENCH_STAGE:-1}"
BENCH_PORT="${BENCH_PORT:-54350}"
BENCH_KEEP="${BENCH_KEEP:-0}"
BENCH_SCENARIO="${BENCH_SCENARIO:-batch}"
BENCH_GROWTH="${BENCH_GROWTH:-0}"
BENCH_MEMORY="${BENCH_MEMORY:-1}"
BENCH_PGLOADER="${BENCH_PGLOADER:-120}"
BENCH_LAG_SECONDS="${BENCH_LAG_SECONDS:-60}"
BENCH_LAG_RATE="${BENCH_LAG_RATE:-5000}"

[[ "$BENCH_ROWS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive integer"
[[ "$BENCH_C_ROWS" =~ ^[0-9]+$ ]] || die "BENCH_C_ROWS must be a non-negative integer"
[[ -z "$BENCH_BATCH" || "$BENCH_BATCH" =~ ^[1-9][0-9]*$ ]] || die "BENCH_BATCH must be empty or a positive integer"
[[ "$BENCH_REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer"
[[ "$BENCH_STAGE" =~ ^[01]$ ]] || die "BENCH_STAGE must be 0 or 1"
[[ "$BENCH_LAG_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_LAG_SECONDS must be a positive integer"
[[ "$BENCH_LAG_RATE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_LAG_RATE must be a positive integer"
if [ "$BENCH_C_ROWS" -eq 0 ] || [ "$BENCH_C_ROWS" -gt "$BENCH_ROWS" ]; then
	BENCH_C_ROWS="$BENCH_ROWS"
fi
cluster_create BENCH_PORT BENCH_KEEP
if [ "$BENCH_SCENARIO" = scaleout ]; then
	# three clusters of its own; exits
	# shellcheck source=test/bench/scaleout_run.sh
	. test/bench/scaleout_run.sh
fi
cluster_initdb --no-sync

# The same settings for every variant.  synchronous_commit = off because the
# chunked mover (d) commits once per chunk and (a)-(c) once in total; the
# WAL volume is still written and counted.
{
	if [ "$BENCH_STAGE" = 1 ]; then
		echo "shared_preload_libraries = 'stage'"
		# no background worker: (d) is the benchmark's own run_batch loop
		echo "stage.databases = ''"
	fi
	echo "max_worker_processes = 16"
	echo "shared_buffers = 1GB"
	echo "work_mem = 64MB"
	echo "maintenance_work_mem = 256MB"
	echo "synchronous_commit = off"
	echo "max_wal_size = 4GB"
	echo "checkpoint_timeout = 30min"
	echo "autovacuum = off"
	echo "timezone = 'UTC'"
	echo "datestyle = 'ISO, MDY'"
	echo "logging_collector = off"
} | cluster_configure
cluster_start

mkdir -p test/bench/out
OUT="test/bench/out/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"

psql_bench() {
	cluster_psql -d postgres "$@"
}

# wall seconds of the drains given, run at once (one session each)
timed_drains() {
	local t0 t1 p pids=()
	t0=$(date +%s.%N)
	for p in "$@"; do
		psql_bench -c "CALL fb.drain('$p')" & pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || die "a drain failed"
	done
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

if [ "$BENCH_SCENARIO" = volume ]; then
	# shellcheck source=test/bench/volume_run.sh
	. test/bench/volume_run.sh
fi
if [ "$BENCH_SCENARIO" = parallel ]; then
	echo "bench: parallel movers, $BENCH_ROWS rows a pipeline, output in $OUT"
	psql_bench -v rows="$BENCH_ROWS" -v repeat="$BENCH_REPEAT" -f test/bench/parallel_setup.sql
	for r in $(seq 1 "$BENCH_REPEAT"); do
		psql_bench -c CHECKPOINT
		t=$(timed_drains "one_$r")
		psql_bench -c "INSERT INTO fb.timing VALUES ($r, 'one', $t)"
		psql_bench -c CHECKPOINT
		t=$(timed_drains "two_$r" "two_$r")
		psql_bench -c "INSERT INTO fb.timing VALUES ($r, 'two', $t)"
		psql_bench -c CHECKPOINT
		t=$(timed_drains "pa_$r" "pb_$r")
		psql_bench -c "INSERT INTO fb.timing VALUES ($r, 'pair', $t)"
	done
	psql_bench -f test/bench/parallel_report.sql 2>&1 | tee "$OUT"
elif [ "$BENCH_SCENARIO" = views ]; then
	echo "bench: catalog views with ${BENCH_SCRAPE_BATCHES:-100000} batches and ${BENCH_SCRAPE_ITEMS:-1000000} quarantine items, output in $OUT"
	psql_bench -q -v batches="${BENCH_SCRAPE_BATCHES:-100000}" -v items="${BENCH_SCRAPE_ITEMS:-1000000}" \
		-f test/bench/scrape_setup.sql 2>&1 | tee "$OUT"
	psql_bench -q -f test/bench/views_time.sql 2>&1 | tee -a "$OUT"
	exit 0
elif [ "$BENCH_SCENARIO" = scrape ]; then
	echo "bench: scrape with ${BENCH_SCRAPE_BATCHES:-100000} batches and ${BENCH_SCRAPE_ITEMS:-1000000} quarantine items, output in $OUT"
	psql_bench -q -v batches="${BENCH_SCRAPE_BATCHES:-100000}" -v items="${BENCH_SCRAPE_ITEMS:-1000000}" \
		-f test/bench/scrape_setup.sql 2>&1 | tee "$OUT"
	psql_bench -q -f test/bench/scrape_time.sql 2>&1 | tee -a "$OUT"
	exit 0
elif [ "$BENCH_SCENARIO" = transforms ]; then
	echo "bench: transforms, $BENCH_ROWS rows, $BENCH_REPEAT round(s), output in $OUT"
	psql_bench -v rows="$BENCH_ROWS" -v c_rows=1 -v batch=NULL -v repeat="$BENCH_REPEAT" \
		-v with_stage=1 -f test/bench/transforms_bench.sql 2>&1 | tee "$OUT"
elif [ "$BENCH_SCENARIO" = fresh ]; then
	echo "bench: fresh file of $BENCH_ROWS rows (growth $BENCH_GROWTH, memory $BENCH_MEMORY), output in $OUT"
	psql_bench \
		-v rows="$BENCH_ROWS" \
		-v dir="$TMPD" \
		-v growth="$BENCH_GROWTH" \
		-v memory="$BENCH_MEMORY" \
		-f test/bench/fresh_main.sql 2>&1 | tee "$OUT"
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || die "fresh_main.sql failed (psql exit $rc)"
	if [ "$BENCH_PGLOADER" -gt 0 ]; then
		command -v pgloader >/dev/null || apt-get install -y -q pgloader >/dev/null \
			|| die "could not install pgloader"
		# the same file, into a table like the target, with pgloader's
		# default error handling (a failing batch is retried row by row)
		psql_bench -c 'CREATE TABLE fb.t_pgl (LIKE fb.t_copy_small INCLUDING ALL)'
		cat >"$TMPD/pgl.load" <<-EOF
		LOAD CSV
		     FROM '$TMPD/full_small.csv' (id, email, amount, currency, ordered_at, note)
		     INTO postgresql://postgres@unix:$TMPD:$BENCH_PORT/postgres
		          TARGET TABLE fb.t_pgl
		     WITH fields terminated by ',', fields optionally enclosed by '"';
		EOF
		chown postgres: "$TMPD/pgl.load"
		t0=$(date +%s.%N)
		runuser -u postgres -- timeout "$BENCH_PGLOADER" pgloader --root-dir "$TMPD/pgloader" \
			"$TMPD/pgl.load" >"$TMPD/pgloader.out" 2>&1 || true
		t1=$(date +%s.%N)
		psql_bench -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
			-v budget="$BENCH_PGLOADER" -f test/bench/pgloader_report.sql 2>&1 | tee -a "$OUT"
	fi
	exit 0
else
echo "bench: $BENCH_ROWS rows ((c) on $BENCH_C_ROWS), batch size ${BENCH_BATCH:-default}, $BENCH_REPEAT round(s), output in $OUT"
psql_bench \
	-v rows="$BENCH_ROWS" \
	-v c_rows="$BENCH_C_ROWS" \
	-v batch="${BENCH_BATCH:-NULL}" \
	-v repeat="$BENCH_REPEAT" \
	-v with_stage="$BENCH_STAGE" \
	-f test/bench/bench.sql 2>&1 | tee "$OUT"
fi
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || die "bench.sql failed (psql exit $rc)"
