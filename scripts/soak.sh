#!/usr/bin/env bash
# soak.sh: the soak test behind `make soak` (docs/performance.md, "Soak";
# not part of `make test`).
#
# Builds and installs stage, starts a throwaway PostgreSQL 15 cluster of its
# own (port 54353, data and socket in a temp dir under /tmp;
# scripts/lib/cluster.sh) with the background worker on, and lets pgbench
# producers land rows at SOAK_RATE rows a second for SOAK_MINUTES minutes
# into the handoff-latency benchmark's pipeline (test/bench/latency_*.sql),
# whose retention is SOAK_RETENTION (and its history retention too when
# stage.set_retention takes a history_retention).  A sampler records every
# SOAK_SAMPLE seconds the landing table's size and row count, the history
# tables' sizes, the handoff p95 of stage.health and the backlog.  At the
# end, once the backlog is moved: the samples at 5-minute marks, the
# plateau check (landing and history size at the end within SOAK_TOLERANCE
# of half time; history only where history retention exists) and the books
# (rows landed = clean + quarantined + duplicate + pending, and the
# counters agree).  Exits 1 if a check fails.
#
# Only the SQL API and the landing table's columns are used, never its
# physical layout: the same script soaks a plain or a partitioned landing.
# Must run as root (it installs the extension and runs the server as the
# postgres user).
#
# Environment:
#   SOAK_MINUTES    how long the producers run (default 30; 3 for a quick run)
#   SOAK_RATE       rows a second (default 5000: transactions of SOAK_ROWS rows)
#   SOAK_ROWS       rows a producer transaction (default 50)
#   SOAK_CLIENTS    producer connections (default 4)
#   SOAK_RETENTION  the pipeline's retention (default '2 minutes')
#   SOAK_SAMPLE     seconds between samples (default 30)
#   SOAK_PURGE      1: the sampler calls stage.purge() before each sample, as a
#                   cron job would; 0 (default): retention is the worker's
#   SOAK_WORK_DLQ   1 (default): the sampler dismisses, before each sample,
#                   the open quarantine items older than SOAK_RETENTION, as an
#                   on-call works the quarantine off (open items never
#                   expire: without it they grow with the bad rows); 0: not
#   SOAK_TOLERANCE  allowed growth from half time to the end (default 0.2)
#   SOAK_PORT       server port (default 54353)
#   SOAK_KEEP       1 keeps the temp dir (data directory and server log)
#   SOAK_SVG        the plot written from the samples (default docs/soak.svg;
#                   empty: none)
#
# The output goes to test/bench/out/soak-<timestamp>.txt, the samples to
# test/bench/out/soak.csv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER_NAME=soak
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

SOAK_MINUTES="${SOAK_MINUTES:-30}"
SOAK_RATE="${SOAK_RATE:-5000}"
SOAK_ROWS="${SOAK_ROWS:-50}"
SOAK_CLIENTS="${SOAK_CLIENTS:-4}"
SOAK_RETENTION="${SOAK_RETENTION:-2 minutes}"
SOAK_SAMPLE="${SOAK_SAMPLE:-30}"
SOAK_PURGE="${SOAK_PURGE:-0}"
SOAK_WORK_DLQ="${SOAK_WORK_DLQ:-1}"
SOAK_TOLERANCE="${SOAK_TOLERANCE:-0.2}"
SOAK_PORT="${SOAK_PORT:-54353}"
SOAK_KEEP="${SOAK_KEEP:-0}"
SOAK_SVG="${SOAK_SVG-docs/soak.svg}"

for v in SOAK_MINUTES SOAK_RATE SOAK_ROWS SOAK_CLIENTS SOAK_SAMPLE SOAK_PORT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ "$SOAK_PURGE" =~ ^[01]$ ]] || die "SOAK_PURGE must be 0 or 1"
[[ "$SOAK_WORK_DLQ" =~ ^[01]$ ]] || die "SOAK_WORK_DLQ must be 0 or 1"
[[ "$SOAK_TOLERANCE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SOAK_TOLERANCE must be a number like 0.2"
[ "$((SOAK_RATE % SOAK_ROWS))" = 0 ] || die "SOAK_RATE must be a multiple of SOAK_ROWS"
SOAK_TPS=$((SOAK_RATE / SOAK_ROWS))
SECONDS_RUN=$((SOAK_MINUTES * 60))
STEP=5
[ "$SOAK_MINUTES" -ge 10 ] || STEP=1

SAMPLER=
cluster_before_stop() {
	if [ -n "$SAMPLER" ]; then
		kill "$SAMPLER" 2>/dev/null || true
		wait "$SAMPLER" 2>/dev/null || true
	fi
}
cluster_create SOAK_PORT SOAK_KEEP
# shellcheck disable=SC2119 # no initdb options of its own
cluster_initdb

# stock durability and autovacuum, as in production
{
	echo "shared_preload_libraries = 'stage'"
	echo "max_worker_processes = 16"
	echo "shared_buffers = 512MB"
	echo "timezone = 'UTC'"
	echo "logging_collector = off"
} | cluster_configure
cluster_start

mkdir -p test/bench/out
OUT="test/bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ).txt"
CSV=test/bench/out/soak.csv
exec > >(tee "$OUT") 2>&1

echo "soak: $SOAK_CLIENTS producers, $SOAK_TPS transactions/s of $SOAK_ROWS rows ($SOAK_RATE rows/s) for $SOAK_MINUTES min"
echo "soak: retention '$SOAK_RETENTION', a sample every $SOAK_SAMPLE s, purge by $([ "$SOAK_PURGE" = 1 ] && echo 'the harness before each sample' || echo 'the worker')"
echo "soak: output in $OUT, samples in $CSV"
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stage:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src include sql 2>/dev/null || echo ' (with uncommitted changes)')"

cluster_psql -d postgres -v retention="$SOAK_RETENTION" -f test/bench/soak_setup.sql >/dev/null
cluster_psql -d postgres -Atc "SELECT 'soak: history retention ' || CASE WHEN history_retention THEN 'set too' ELSE 'not in this build' END FROM soak.conf"
cp test/bench/latency_produce.sql "$TMPD/produce.sql"
chown postgres: "$TMPD/produce.sql"

cluster_psql -d postgres -c "ALTER SYSTEM SET stage.databases = 'postgres'" \
	-c "ALTER SYSTEM SET stage.worker_role = 'stage_worker'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
	n=$(cluster_psql -d postgres -Atc "SELECT count(*) FROM stage.workers WHERE state IN ('idle', 'running')")
	[ "$n" = 1 ] && break
	sleep 0.1
done
[ "$n" = 1 ] || die "the worker did not start"

T0=$(cluster_psql -d postgres -Atc "SELECT clock_timestamp()")
purge=$([ "$SOAK_PURGE" = 1 ] && echo true || echo false)
dlq=$([ "$SOAK_WORK_DLQ" = 1 ] && echo "'$SOAK_RETENTION'::interval" || echo NULL)
cluster_psql -d postgres -c "CALL soak.run('$T0', $SECONDS_RUN, $SOAK_SAMPLE, $purge, $dlq)" &
SAMPLER=$!

echo
echo "== producers (pgbench)"
runuser -u postgres -- "$PG_BINDIR/pgbench" -n -h "$TMPD" -p "$SOAK_PORT" -U producer \
	-c "$SOAK_CLIENTS" -j 2 -R "$SOAK_TPS" -T "$SECONDS_RUN" -D rows="$SOAK_ROWS" \
	-f "$TMPD/produce.sql" postgres >"$TMPD/pgbench.out" 2>&1 || true
grep -E '^(number of (transactions actually processed|failed)|latency average|rate limit schedule lag|tps)' "$TMPD/pgbench.out" || true
TX=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$TMPD/pgbench.out")
[ -n "$TX" ] || { cat "$TMPD/pgbench.out"; die "pgbench did not report its transactions"; }
if grep -q 'aborted' "$TMPD/pgbench.out"; then
	grep 'aborted' "$TMPD/pgbench.out" | head -5
	echo "soak: a producer aborted; its rows in a failed transaction are not counted as landed"
fi
LANDED=$((TX * SOAK_ROWS))

wait "$SAMPLER" || die "the sampler failed"
SAMPLER=

# the backlog moved (at most two minutes), for the books
for _ in $(seq 1 120); do
	b=$(cluster_psql -d postgres -Atc "SELECT stage.backlog('events')")
	[ "$b" = 0 ] && break
	sleep 1
done
echo "soak: $LANDED rows landed, backlog $b after the producers stopped"

cluster_psql -d postgres -v seconds="$SECONDS_RUN" -v step="$STEP" -v tolerance="$SOAK_TOLERANCE" \
	-v landed="$LANDED" -f test/bench/soak_report.sql
cluster_psql -d postgres -c "\\copy (SELECT * FROM soak.csv) TO STDOUT WITH (FORMAT csv, HEADER)" >"$CSV"
if [ -n "$SOAK_SVG" ]; then
	python3 scripts/soak_plot.py "$CSV" "$SOAK_SVG" \
		"soak: $SOAK_RATE rows/s for $SOAK_MINUTES min, retention $SOAK_RETENTION ($(date -u '+%Y-%m-%d'))"
	echo "soak: plot in $SOAK_SVG"
fi
failed=$(cluster_psql -d postgres -Atc "SELECT count(*) FROM soak.verdict WHERE NOT ok")
if [ "$failed" != 0 ]; then
	echo "soak: $failed check(s) FAILED"
	exit 1
fi
echo "soak: every check passed"
