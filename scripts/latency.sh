#!/usr/bin/env bash
# latency.sh: the handoff-latency benchmark (docs/performance.md, "Handoff
# latency").
#
# Builds and installs stage, starts a throwaway PostgreSQL 15 cluster of its
# own (port 54351, data and socket in a temp dir under /tmp;
# scripts/lib/cluster.sh) with the
# background worker on, and lets a pgbench producer land rows at a fixed
# rate (default 100 transactions of 50 rows a second = 5,000 rows/s, for
# 60 s) while the worker moves them.  A sampler records the backlog every
# second.  Then it reports p50/p95/p99 handoff latency (received -> committed
# in the target, from the landing row's _stage_received_at and the commit
# timestamp of the target row) and the backlog over time, and stops the
# cluster, also on error.
#
# It is a benchmark, not a test: it prints what it measures and fails only if
# something could not run.  Must run as root (it installs the extension and
# runs the server as the postgres user).
#
# Environment:
#   LAT_SECONDS   how long the producer runs (default 60)
#   LAT_TPS       producer transactions a second (default 100)
#   LAT_ROWS      rows a producer transaction (default 50)
#   LAT_CLIENTS   producer connections (default 4)
#   LAT_NAPTIME   stage.naptime (default: the extension's default, 1s)
#   LAT_BATCH     stage.batch_size (default: the extension's default, 10000)
#   LAT_SYNC      synchronous_commit (default on)
#   LAT_PORT      server port (default 54351)
#   LAT_KEEP      1 keeps the temp dir (data directory and server log)
#
# The output is also written to test/bench/out/latency-<timestamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER_NAME=latency
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

LAT_SECONDS="${LAT_SECONDS:-60}"
LAT_TPS="${LAT_TPS:-100}"
LAT_ROWS="${LAT_ROWS:-50}"
LAT_CLIENTS="${LAT_CLIENTS:-4}"
LAT_NAPTIME="${LAT_NAPTIME:-}"
LAT_BATCH="${LAT_BATCH:-}"
LAT_SYNC="${LAT_SYNC:-on}"
LAT_PORT="${LAT_PORT:-54351}"
LAT_KEEP="${LAT_KEEP:-0}"

for v in LAT_SECONDS LAT_TPS LAT_ROWS LAT_CLIENTS LAT_PORT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ -z "$LAT_BATCH" || "$LAT_BATCH" =~ ^[1-9][0-9]*$ ]] || die "LAT_BATCH must be empty or a positive integer"
[[ -z "$LAT_NAPTIME" || "$LAT_NAPTIME" =~ ^[1-9][0-9]*(ms|s|min)?$ ]] || die "LAT_NAPTIME must be like 1s, 200ms or 1000"
[[ "$LAT_SYNC" =~ ^(on|off|local|remote_write|remote_apply)$ ]] || die "LAT_SYNC must be a synchronous_commit value"
SAMPLER=
# the sampler, if it still runs, ends before the server
cluster_before_stop() {
	if [ -n "$SAMPLER" ]; then
		kill "$SAMPLER" 2>/dev/null || true
		wait "$SAMPLER" 2>/dev/null || true
	fi
}
cluster_create LAT_PORT LAT_KEEP
# shellcheck disable=SC2119 # no initdb options of its own
cluster_initdb

# Stock durability (fsync on, synchronous_commit as LAT_SYNC): the latency a
# production setup would see.  track_commit_timestamp gives the commit time
# of every target row.  The worker is configured only after the setup.
{
	echo "shared_preload_libraries = 'stage'"
	echo "max_worker_processes = 16"
	echo "shared_buffers = 512MB"
	echo "synchronous_commit = $LAT_SYNC"
	echo "track_commit_timestamp = on"
	echo "timezone = 'UTC'"
	echo "logging_collector = off"
	[ -z "$LAT_NAPTIME" ] || echo "stage.naptime = '$LAT_NAPTIME'"
	[ -z "$LAT_BATCH" ] || echo "stage.batch_size = $LAT_BATCH"
} | cluster_configure
cluster_start

mkdir -p test/bench/out
OUT="test/bench/out/latency-$(date -u +%Y%m%dT%H%M%SZ).txt"
exec > >(tee "$OUT") 2>&1

echo "latency: $LAT_CLIENTS producers, $LAT_TPS transactions/s of $LAT_ROWS rows ($((LAT_TPS * LAT_ROWS)) rows/s) for $LAT_SECONDS s"
echo "latency: stage.naptime ${LAT_NAPTIME:-default}, stage.batch_size ${LAT_BATCH:-default}, synchronous_commit $LAT_SYNC"
echo "latency: output in $OUT"
echo
echo "== machine"
echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:       $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory:    $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "disk:      $(df -T "$TMPD" | awk 'NR == 2 {print $2 " on " $1}')"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server:    $("$PG_BINDIR/postgres" --version)"
echo "stage:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src include sql 2>/dev/null || echo ' (with uncommitted changes)')"

cluster_psql -d postgres -f test/bench/latency_setup.sql >/dev/null
cp test/bench/latency_produce.sql "$TMPD/produce.sql"
chown postgres: "$TMPD/produce.sql"

# the worker, and wait until it serves the database
cluster_psql -d postgres -c "ALTER SYSTEM SET stage.databases = 'postgres'" \
	-c "ALTER SYSTEM SET stage.worker_role = 'stage_worker'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
	n=$(cluster_psql -d postgres -Atc "SELECT count(*) FROM stage.workers WHERE state IN ('idle', 'running')")
	[ "$n" = 1 ] && break
	sleep 0.1
done
[ "$n" = 1 ] || die "the worker did not start"

# the sampler runs until the backlog is gone after the load
cluster_psql -d postgres -c "CALL lat.sample($LAT_SECONDS, $((LAT_SECONDS + 300)))" &
SAMPLER=$!

echo
echo "== producer (pgbench)"
runuser -u postgres -- "$PG_BINDIR/pgbench" -n -h "$TMPD" -p "$LAT_PORT" -U producer \
	-c "$LAT_CLIENTS" -j 2 -R "$LAT_TPS" -T "$LAT_SECONDS" -D rows="$LAT_ROWS" \
	-f "$TMPD/produce.sql" postgres 2>&1 |
	grep -E '^(number of (transactions actually processed|failed)|latency average|rate limit schedule lag|tps)' || true

wait "$SAMPLER" || die "the sampler failed"
SAMPLER=

cluster_psql -d postgres -f test/bench/latency_report.sql
