# shellcheck shell=bash
# scaleout_run.sh: BENCH_SCENARIO=scaleout of scripts/bench.sh (docs/
# performance.md, "Scale-out: two nodes and a warehouse").  Sourced by
# bench.sh after cluster_create (stage built and installed in TMPD), from
# the repository's root; uses BENCH_ROWS, BENCH_PORT, BENCH_LAG_SECONDS and
# BENCH_LAG_RATE, and exits with the scenario.
#
# Three clusters of the private installation, in TMPD: the warehouse is
# scripts/lib/cluster.sh's own (TMPD/data, port BENCH_PORT, database
# "warehouse", stage_warehouse, no stage); the staging nodes node_a and
# node_b (TMPD/node_a and TMPD/node_b, ports BENCH_PORT+1 and +2, database
# "shop", stage preloaded, wal_level logical, stage.node_name set, the
# background worker serving "shop" as stage_worker) run
# test/bench/scaleout_node.sql.  Stock durability on all three (fsync and
# synchronous_commit on; the subscriptions' own synchronous_commit is off,
# PostgreSQL's default for them); track_commit_timestamp on the nodes.
#
#   (a) one node alone: BENCH_ROWS rows landed into node_a's unpublished
#       pipeline orders_solo by two producer sessions at once (half each,
#       10,000 rows a transaction) while the worker moves them; timed from
#       the start of the landing to the end of the last batch.  Nothing
#       subscribes yet.
#   then the warehouse subscribes to both nodes (one subscription each, to
#       stage_history and stage_orders) and copies what they hold.
#   (b) two nodes and the warehouse: BENCH_ROWS / 2 rows into each node's
#       published pipeline orders at once, a producer session each (so two
#       in all, as in (a)); timed from the start of the landing until both
#       nodes are drained and the warehouse holds every clean row (its
#       count equals the sum of the nodes' targets), the end being the last
#       row's arrival on the warehouse.
#   Every part is also charged the CPU it got (so_cpu): on a shared
#   machine, what other work took in the meantime is reported with it.
#   lag: pgbench lands BENCH_LAG_RATE rows/s (transactions of 50 rows) into
#       each node for BENCH_LAG_SECONDS with the workers on; per clean row,
#       landing commit on the node -> target commit on the node -> visible
#       on the warehouse.  Then every node's target is compared with the
#       warehouse by (_stage_node, _stage_id), and the history by count.
# test/bench/scaleout_report.sql prints the report from the warehouse.

SO_DB=shop
WH_DB=warehouse
SO_NODES=(node_a node_b)
SO_PORTS=("$((BENCH_PORT + 1))" "$((BENCH_PORT + 2))")
SO_STARTED=()
SO_BG=()
SO_LAG_ROWS=50		# rows a producer transaction in the lag part

# what we started beside the warehouse ends with it: our background jobs,
# then the warehouse (first, so that its apply workers do not fill its log
# with the nodes' shutdown; cluster_cleanup's stop finds it stopped), then
# the nodes (rc is cluster_cleanup's exit status)
# shellcheck disable=SC2317 # called by cluster_cleanup
cluster_before_stop() {
	local p d
	for p in "${SO_BG[@]}" $SO_SAMPLER; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "$CLUSTER_STARTED" = 1 ]; then
		runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
	for d in "${SO_STARTED[@]}"; do
		runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$TMPD/$d" -m fast -w stop >/dev/null 2>&1 || true
		if [ "${rc:-0}" -ne 0 ] && [ -f "$TMPD/$d.log" ]; then
			echo "$CLUSTER_NAME: last lines of the log of $d:" >&2
			tail -n 20 "$TMPD/$d.log" >&2 || true
		fi
	done
}

node_psql() {
	local i=$1
	shift
	CLUSTER_PORT=${SO_PORTS[$i]} cluster_psql -d "$SO_DB" "$@"
}

wh_psql() {
	cluster_psql -d "$WH_DB" "$@"
}

# so_until WHAT SECONDS COMMAND...: until COMMAND prints t, polled every
# half second; dies after SECONDS
so_until() {
	local what=$1 limit=$2 end
	shift 2
	end=$((SECONDS + limit))
	until [ "$("$@")" = t ]; do
		[ "$SECONDS" -lt "$end" ] || die "timed out after $limit s waiting for $what"
		sleep 0.5
	done
}

# shellcheck disable=SC2317 # called by so_until
# so_drained I PIPELINE: t when every landing row of PIPELINE on node I has
# been taken by a committed batch
so_drained() {
	node_psql "$1" -Atc "SELECT bench.moved('$2') = (SELECT count(*) FROM stage_landing.$2)"
}

# shellcheck disable=SC2317 # called by so_until
# t when the warehouse holds as many rows as the nodes' targets together
so_caught_up() {
	local n0 n1
	n0=$(node_psql 0 -Atc "SELECT count(*) FROM public.orders")
	n1=$(node_psql 1 -Atc "SELECT count(*) FROM public.orders")
	wh_psql -Atc "SELECT count(*) = $n0 + $n1 FROM public.orders"
}

# so_land I PIPELINE LO HI: a producer session lands rows LO..HI into
# PIPELINE on node I (bench.land); the session then stays a second and a
# half more, so that the CPU sampler sees all its backend did
so_land() {
	node_psql "$1" -U producer -c "CALL bench.land('$2', $3, $4)" -c "SELECT pg_sleep(1.5)" >/dev/null
}

# so_wait_bg WHAT [FILE...]: waits for the background jobs; if one fails,
# shows the FILEs and dies
so_wait_bg() {
	local what=$1 p
	shift
	for p in "${SO_BG[@]}"; do
		wait "$p" || { [ $# -eq 0 ] || cat "$@" >&2; die "$what failed"; }
	done
	SO_BG=()
}

so_lsn() {
	if [ "$1" = wh ]; then
		wh_psql -Atc "SELECT pg_current_wal_lsn()"
	else
		node_psql "$1" -Atc "SELECT pg_current_wal_lsn()"
	fi
}

so_checkpoint() {
	node_psql 0 -c CHECKPOINT
	node_psql 1 -c CHECKPOINT
	wh_psql -c CHECKPOINT
}

# so_part PART I PIPELINE T0 WAL0: the node's row of a timed part
so_part() {
	local tuple
	tuple=$(node_psql "$2" -Atc "
		SELECT format('(%L, %L, %s, %s, to_timestamp(%s), %L, %L, %s)', '$1', stage.node_name(),
			(SELECT count(*) FROM stage_landing.$3), (SELECT count(*) FROM public.$3), '$4',
			(SELECT max(pg_xact_commit_timestamp(xmin)) FROM stage_landing.$3),
			(SELECT max(b.finished_at) FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
			  WHERE p.name = '$3' AND b.status = 'done'),
			pg_wal_lsn_diff(pg_current_wal_lsn(), '$5'))")
	wh_psql -c "INSERT INTO bench.part VALUES $tuple"
}

# so_cpu: "SECONDS BUSY OURS": the time, the machine's busy CPU time so
# far and the part of it that is this benchmark's (clock ticks): the script
# with its reaped children (psql, pgbench), and each of the three servers
# with its live and reaped processes.  Between two samples, BUSY - OURS is
# what other work on the machine took.
so_cpu() {
	local busy ours=0 d f line pid u n s irq sirq steal
	local -a a
	local -A pm=()
	read -r _ u n s _ _ irq sirq steal _ </proc/stat
	busy=$((u + n + s + irq + sirq + steal))
	for d in "$PGDATA" "$TMPD/${SO_NODES[0]}" "$TMPD/${SO_NODES[1]}"; do
		[ -f "$d/postmaster.pid" ] && pm[$(head -n 1 "$d/postmaster.pid")]=1
	done
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		read -r -a a <<<"${line##*) }"
		# a[1] the parent, a[11..14] utime, stime, cutime, cstime
		if [ "$pid" = $$ ] || [ -n "${pm[$pid]:-}" ] || [ -n "${pm[${a[1]}]:-}" ]; then
			ours=$((ours + a[11] + a[12] + a[13] + a[14]))
		fi
	done
	echo "$(date +%s.%N) $busy $ours"
}

# so_cpu_part PART SAMPLE: the CPU of a part, from SAMPLE (so_cpu) to now
so_cpu_part() {
	local t0 b0 o0 t1 b1 o1
	read -r t0 b0 o0 <<<"$2"
	read -r t1 b1 o1 <<<"$(so_cpu)"
	wh_psql -c "INSERT INTO bench.cpu VALUES ('$1', $t1 - $t0, $((b1 - b0)), $((o1 - o0)), $(getconf CLK_TCK), $(nproc), '$(cut -d' ' -f1-3 /proc/loadavg)')"
}

# so_procs: one line per process of the benchmark: pid, start (clock ticks
# since boot), CPU so far (ticks), server (node_a, node_b, warehouse or
# pgbench) and process title
so_procs() {
	local f line pid srv title d
	local -a a
	local -A pm=()
	for d in "${SO_NODES[@]}" data; do
		[ -f "$TMPD/$d/postmaster.pid" ] || continue
		pm[$(head -n 1 "$TMPD/$d/postmaster.pid")]=${d/data/warehouse}
	done
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		read -r -a a <<<"${line##*) }"
		srv=${pm[${a[1]}]:-${pm[$pid]:-}}
		title=
		if [ -z "$srv" ]; then
			# a pgbench of ours names our socket directory
			[[ "$line" == *" (pgbench) "* ]] || continue
			tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$TMPD" || continue
			srv=clients
			title=pgbench
		elif [ -n "${pm[$pid]:-}" ]; then
			# what the postmaster reaped: the processes that ended
			echo "reaped_$pid 0 $((a[13] + a[14])) $srv (reaped)"
			title=postmaster
		else
			{ read -r -d '' title <"/proc/$pid/cmdline"; } 2>/dev/null || true
		fi
		echo "$pid ${a[19]} $((a[11] + a[12])) $srv ${title:-?}"
	done
}

# so_sampler FILE: so_procs every second into FILE until killed
so_sampler() {
	while :; do
		so_procs >>"$1"
		sleep 1
	done
}

# so_sample_start PART / so_sample_end PART: the CPU of the benchmark's
# processes over a part, by what they are, into bench.cpu_use.  A process
# that ends between two samples loses its CPU since the last one; on each
# server, what the postmaster reaped less what the samples gave the
# processes that ended is reported as "ended between samples".
SO_SAMPLER=
so_sample_start() {
	local up
	read -r up _ </proc/uptime
	awk -v u="$up" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%d\n", u * hz }' >"$TMPD/cpu_$1.start"
	so_procs >"$TMPD/cpu_$1.txt"
	so_sampler "$TMPD/cpu_$1.txt" &
	SO_SAMPLER=$!
}
so_sample_end() {
	kill "$SO_SAMPLER" 2>/dev/null || true
	wait "$SO_SAMPLER" 2>/dev/null || true
	SO_SAMPLER=
	so_procs >"$TMPD/cpu_$1.end"
	awk -v part="$1" -v t0="$(cat "$TMPD/cpu_$1.start")" -v hz="$(getconf CLK_TCK)" '
		{
			pid = $1; srv[pid] = $4
			t = $5; for (i = 6; i <= NF; i++) t = t " " $i; title[pid] = t
			if (!(pid in first)) first[pid] = ($2 > t0) ? 0 : $3
			last[pid] = $3
			if (FILENAME ~ /[.]end$/) alive[pid] = 1
		}
		END {
			for (pid in last) {
				t = title[pid]
				place = (srv[pid] ~ /^node/) ? "nodes" : srv[pid]
				d = last[pid] - first[pid]
				if (t == "(reaped)") { reaped[place] += d; continue }
				if (!(pid in alive)) ended[place] += d
				if (t == "pgbench") what = "pgbench (producers of the lag part)"
				else if (t ~ / producer /) what = "producer sessions (landing)"
				else if (t ~ /stage (worker|launcher)/) what = "stage workers (moving)"
				else if (t ~ /walsender/) what = "walsenders (logical decoding)"
				else if (t ~ /logical replication worker/) what = "apply workers"
				else if (t ~ /autovacuum/) what = "autovacuum"
				else if (t ~ /postgres (shop|warehouse|postgres) /) what = "the benchmark (polling, counting)"
				else what = "other (postmaster, WAL writer, checkpointer, ...)"
				cpu[place "|" what] += d
			}
			for (place in reaped)
				if (reaped[place] > ended[place])
					cpu[place "|ended between samples"] += reaped[place] - ended[place]
			for (k in cpu) {
				split(k, x, "|")
				printf "INSERT INTO bench.cpu_use VALUES (\x27%s\x27, \x27%s\x27, \x27%s\x27, %.2f);\n", \
					part, x[1], x[2], cpu[k] / hz
			}
		}' "$TMPD/cpu_$1.txt" "$TMPD/cpu_$1.end" | wh_psql
}

so_t0=$SECONDS
mkdir -p test/bench/out
OUT="test/bench/out/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
exec > >(tee "$OUT") 2>&1

lag_tps=$(awk -v r="$BENCH_LAG_RATE" -v n="$SO_LAG_ROWS" 'BEGIN { printf "%g", r / n }')
echo "bench: scale-out, two staging nodes and a warehouse on one machine; $BENCH_ROWS rows a throughput part,"
echo "bench: lag at $BENCH_LAG_RATE rows/s a node ($lag_tps transactions/s of $SO_LAG_ROWS rows) for $BENCH_LAG_SECONDS s; output in $OUT"
echo
echo "== machine"
echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:       $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory:    $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "disk:      $(df -T "$TMPD" | awk 'NR == 2 {print $2 " on " $1}')"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server:    $("$PG_BINDIR/postgres" --version)"
echo "stage:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src include sql 2>/dev/null || echo ' (with uncommitted changes)')"

# ------------------------------------------------------------ the clusters
so_common() {
	echo "max_worker_processes = 16"
	echo "shared_buffers = 512MB"
	echo "max_wal_size = 4GB"
	echo "checkpoint_timeout = 30min"
	echo "timezone = 'UTC'"
	echo "logging_collector = off"
}
for i in 0 1; do
	n=${SO_NODES[$i]}
	if (exec 3<>"/dev/tcp/127.0.0.1/${SO_PORTS[$i]}") 2>/dev/null; then
		die "port ${SO_PORTS[$i]} (node $n) is in use; set BENCH_PORT"
	fi
	PGDATA="$TMPD/$n" cluster_initdb --no-sync
	{
		so_common
		echo "shared_preload_libraries = 'stage'"
		echo "wal_level = logical"
		echo "track_commit_timestamp = on"
		echo "stage.node_name = '$n'"
	} | PGDATA="$TMPD/$n" CLUSTER_PORT=${SO_PORTS[$i]} cluster_configure
	runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$TMPD/$n" -l "$TMPD/$n.log" -w -t 60 start >/dev/null \
		|| die "node $n did not start"
	SO_STARTED+=("$n")
done
# shellcheck disable=SC2119 # the options are given
cluster_initdb --no-sync
so_common | cluster_configure
cluster_start

for i in 0 1; do
	CLUSTER_PORT=${SO_PORTS[$i]} cluster_psql -d postgres -c "CREATE DATABASE $SO_DB"
	node_psql "$i" -f test/bench/scaleout_node.sql >/dev/null
	CLUSTER_PORT=${SO_PORTS[$i]} cluster_psql -d postgres \
		-c "ALTER SYSTEM SET stage.databases = '$SO_DB'" \
		-c "ALTER SYSTEM SET stage.worker_role = 'stage_worker'" -c "SELECT pg_reload_conf()" >/dev/null
done
for i in 0 1; do
	so_until "the worker of ${SO_NODES[$i]}" 30 \
		node_psql "$i" -Atc "SELECT count(*) = 1 FROM stage.workers WHERE state IN ('idle', 'running')"
done
cluster_psql -d postgres -c "CREATE DATABASE $WH_DB"
wh_psql -f test/bench/scaleout_warehouse.sql >/dev/null

# ------------------------------------------------- (a) one node alone
half=$((BENCH_ROWS / 2))
echo
echo "scaleout: (a) $BENCH_ROWS rows into ${SO_NODES[0]} alone, two producer sessions"
so_checkpoint
wal0=$(so_lsn 0)
cpu0=$(so_cpu)
so_sample_start a
t0=$(date +%s.%N)
so_land 0 orders_solo 1 "$half" & SO_BG+=($!)
so_land 0 orders_solo $((half + 1)) "$BENCH_ROWS" & SO_BG+=($!)
so_wait_bg "a landing"
so_until "${SO_NODES[0]} to drain" 900 so_drained 0 orders_solo
so_cpu_part a "$cpu0"
so_sample_end a
so_part a 0 orders_solo "$t0" "$wal0"

# ------------------------------------------------ the warehouse subscribes
echo "scaleout: the warehouse subscribes to both nodes"
for i in 0 1; do
	wh_psql -c "SET client_min_messages = warning" -c "CREATE SUBSCRIPTION ${SO_NODES[$i]} CONNECTION 'host=$TMPD port=${SO_PORTS[$i]} dbname=$SO_DB user=postgres' PUBLICATION stage_history, stage_orders"
done
so_until "the warehouse's initial copy" 600 \
	wh_psql -Atc "SELECT count(*) = 14 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel"

# ---------------------------------------- (b) two nodes and the warehouse
echo "scaleout: (b) $half + $((BENCH_ROWS - half)) rows into ${SO_NODES[0]} and ${SO_NODES[1]} at once, replicated to the warehouse"
so_checkpoint
wal0_0=$(so_lsn 0)
wal0_1=$(so_lsn 1)
wal0_w=$(so_lsn wh)
cpu0=$(so_cpu)
so_sample_start b
t0=$(date +%s.%N)
so_land 0 orders 1 "$half" & SO_BG+=($!)
so_land 1 orders $((half + 1)) "$BENCH_ROWS" & SO_BG+=($!)
so_wait_bg "a landing"
so_until "${SO_NODES[0]} to drain" 900 so_drained 0 orders
so_until "${SO_NODES[1]} to drain" 900 so_drained 1 orders
so_until "the warehouse to catch up" 900 so_caught_up
so_cpu_part b "$cpu0"
so_sample_end b
so_part b 0 orders "$t0" "$wal0_0"
so_part b 1 orders "$t0" "$wal0_1"
wh_psql -c "INSERT INTO bench.part
	SELECT 'b', 'warehouse', NULL, count(*), to_timestamp($t0), NULL, max(arrived_at),
		   pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0_w')
	  FROM public.orders"

# ------------------------------------------------------------ the lag part
echo "scaleout: lag, pgbench at $BENCH_LAG_RATE rows/s into each node for $BENCH_LAG_SECONDS s"
cp test/bench/scaleout_produce.sql "$TMPD/produce.sql"
chown postgres: "$TMPD/produce.sql"
so_checkpoint
declare -a b_id lwal0
for i in 0 1; do
	b_id[i]=$(node_psql "$i" -Atc "SELECT COALESCE(max(_stage_id), 0) FROM stage_landing.orders")
	lwal0[i]=$(so_lsn "$i")
done
lwal0_w=$(so_lsn wh)
cpu0=$(so_cpu)
so_sample_start lag
lt0=$(date +%s.%N)
for i in 0 1; do
	runuser -u postgres -- "$PG_BINDIR/pgbench" -n -h "$TMPD" -p "${SO_PORTS[$i]}" -U producer \
		-c 4 -j 2 -R "$lag_tps" -T "$BENCH_LAG_SECONDS" -D rows="$SO_LAG_ROWS" \
		-f "$TMPD/produce.sql" "$SO_DB" >"$TMPD/pgbench_$i.out" 2>&1 & SO_BG+=($!)
done
so_wait_bg "a producer" "$TMPD"/pgbench_*.out
so_until "${SO_NODES[0]} to drain" 900 so_drained 0 orders
so_until "${SO_NODES[1]} to drain" 900 so_drained 1 orders
so_until "the warehouse to catch up" 900 so_caught_up
so_cpu_part lag "$cpu0"
so_sample_end lag
for i in 0 1; do
	b=${b_id[$i]}
	tuple=$(node_psql "$i" -Atc "
		SELECT format('(%L, %s, %s, %s, %s, %L, %L, %s, %s, %s, %s, %s)', stage.node_name(),
			(SELECT count(*) FROM stage_landing.orders WHERE _stage_id > $b),
			(SELECT count(*) FROM public.orders WHERE _stage_id > $b),
			(SELECT count(*) FROM stage.quarantine_log q JOIN stage.pipeline p USING (pipeline_id)
			  WHERE p.name = 'orders' AND q.landing_id > $b),
			(SELECT count(*) FROM stage.duplicate_log d JOIN stage.pipeline p USING (pipeline_id)
			  WHERE p.name = 'orders' AND d.landing_id > $b),
			(SELECT min(_stage_received_at) FROM stage_landing.orders WHERE _stage_id > $b),
			(SELECT max(_stage_received_at) FROM stage_landing.orders WHERE _stage_id > $b),
			pg_wal_lsn_diff(pg_current_wal_lsn(), '${lwal0[$i]}'),
			x.n, COALESCE(x.avg_rows, 0), COALESCE(x.p95_ms, 0), COALESCE(x.handoff_p95, 0))
		  FROM (SELECT count(*) AS n, round(avg(b.rows_in), 1) AS avg_rows,
					   round((1000 * percentile_cont(0.95) WITHIN GROUP
							  (ORDER BY extract(epoch FROM b.finished_at - b.started_at)))::numeric, 1) AS p95_ms,
					   round(max(b.latency_p95_ms)::numeric, 1) AS handoff_p95
				  FROM stage.batch b JOIN stage.pipeline p USING (pipeline_id)
				 WHERE p.name = 'orders' AND b.status = 'done' AND b.started_at >= to_timestamp($lt0)) x")
	wh_psql -c "INSERT INTO bench.lag_node VALUES $tuple"
	# the clean rows of the lag part: received, landing commit, target commit
	node_psql "$i" -c "COPY (SELECT stage.node_name(), l._stage_id, l._stage_received_at,
								   pg_xact_commit_timestamp(l.xmin), pg_xact_commit_timestamp(t.xmin)
							  FROM stage_landing.orders l JOIN public.orders t ON t._stage_id = l._stage_id
							 WHERE l._stage_id > $b) TO STDOUT" |
		wh_psql -c "COPY bench.lag_row FROM STDIN"
	# every row of the node's target, and its history by count
	node_psql "$i" -c "COPY (SELECT stage.node_name(), _stage_id FROM public.orders) TO STDOUT" |
		wh_psql -c "COPY bench.node_row FROM STDIN"
	node_psql "$i" -Atc "
		SELECT format('(%L, %L, %s)', stage.node_name(), w, n) FROM (
			SELECT 'pipeline' AS w, count(*) AS n FROM stage.pipeline
			UNION ALL SELECT 'batch', count(*) FROM stage.batch
			UNION ALL SELECT 'batch done', count(*) FROM stage.batch WHERE status = 'done'
			UNION ALL SELECT 'batch_rule_stat', count(*) FROM stage.batch_rule_stat
			UNION ALL SELECT 'batch_transform_stat', count(*) FROM stage.batch_transform_stat
			UNION ALL SELECT 'quarantine_log', count(*) FROM stage.quarantine_log
			UNION ALL SELECT 'duplicate_log', count(*) FROM stage.duplicate_log) x" |
		sed 's/^/INSERT INTO bench.node_history VALUES /; s/$/;/' | wh_psql
	node_psql "$i" -Atc "
		SELECT format('%s: slot %s: %s transactions decoded (%s MB), %s spilled to disk (%s MB), %s streamed',
					  stage.node_name(), slot_name, total_txns, round(total_bytes / 1e6, 1),
					  spill_txns, round(spill_bytes / 1e6, 1), stream_txns)
		  FROM pg_stat_replication_slots ORDER BY slot_name" |
		while IFS= read -r line; do
			echo "INSERT INTO bench.note (section, line) VALUES ('decoding', :'line')" | wh_psql -v line="$line"
		done
	node_psql "$i" -Atc "
		SELECT format('%s: autovacuum during the lag part: %s', stage.node_name(),
					  COALESCE(string_agg(format('%s.%s', schemaname, relname), ', ' ORDER BY schemaname, relname)
								   FILTER (WHERE last_autovacuum >= to_timestamp($lt0)), 'none'))
			   || format('; autoanalyze: %s',
					  COALESCE(string_agg(format('%s.%s', schemaname, relname), ', ' ORDER BY schemaname, relname)
								   FILTER (WHERE last_autoanalyze >= to_timestamp($lt0)), 'none'))
		  FROM pg_stat_all_tables" |
		while IFS= read -r line; do
			echo "INSERT INTO bench.note (section, line) VALUES ('decoding', :'line')" | wh_psql -v line="$line"
		done
done
# What a batch reads on each node now: with the worker stopped, 50 rows
# landed and a batch that moves them, in a transaction whose own
# statistics (pg_stat_xact_all_tables) say what it read, rolled back (so
# the nodes' targets and history stay as compared above)
for i in 0 1; do
	CLUSTER_PORT=${SO_PORTS[$i]} cluster_psql -d postgres -c "ALTER SYSTEM SET stage.databases = ''" \
		-c "SELECT pg_reload_conf()" >/dev/null
	so_until "the worker of ${SO_NODES[$i]} to stop" 30 \
		node_psql "$i" -Atc "SELECT count(*) = 0 FROM stage.workers"
	node_psql "$i" -U producer -c "
		INSERT INTO stage_landing.orders (order_id, email, amount, currency, qty, code, ordered_at)
		SELECT (3000000000000 + g)::text, 'probe' || g || '@example.com', '1', 'USD', '1', 'AB-1234', now()::text
		  FROM generate_series(1, 50) g"
	node_psql "$i" -At <<-EOF |
		BEGIN;
		SELECT rows_in FROM stage.run_batch('orders') \gset
		SELECT format('%s: a batch of %s rows read %s landing index entries (the landing table has %s rows) and %s quarantine_log rows by sequential scan (it has %s)',
					  stage.node_name(), :rows_in,
					  (SELECT idx_tup_fetch FROM pg_stat_xact_all_tables WHERE relid = 'stage_landing.orders'::regclass),
					  (SELECT count(*) FROM stage_landing.orders),
					  (SELECT seq_tup_read FROM pg_stat_xact_all_tables WHERE relid = 'stage.quarantine_log'::regclass),
					  (SELECT count(*) FROM stage.quarantine_log));
		ROLLBACK;
	EOF
		while IFS= read -r line; do
			echo "INSERT INTO bench.note (section, line) VALUES ('probe', :'line')" | wh_psql -v line="$line"
		done
done

wh_psql -c "INSERT INTO bench.note (section, line)
	SELECT 'decoding', format('warehouse: %s MB of WAL during the lag part',
							  round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lwal0_w') / 1e6, 1))"

for i in 0 1; do
	{ grep -E '^(number of (transactions actually processed|failed)|latency average|rate limit schedule lag|tps)' \
		"$TMPD/pgbench_$i.out" || true; } |
		while IFS= read -r line; do
			echo "INSERT INTO bench.note (section, line) VALUES ('producer', :'line')" |
				wh_psql -v line="${SO_NODES[$i]}: $line"
		done
done

wh_psql -v rows="$BENCH_ROWS" -v lag_seconds="$BENCH_LAG_SECONDS" -v rate="$BENCH_LAG_RATE" \
	-v cores="$(nproc)" -f test/bench/scaleout_report.sql
echo
echo "scenario runtime: $((SECONDS - so_t0)) s (build and install before it not counted)"
exit 0
