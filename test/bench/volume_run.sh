# shellcheck shell=bash
# volume_run.sh: BENCH_SCENARIO=volume of scripts/bench.sh, sourced by it
# once its cluster runs (it uses psql_bench, die, TMPD, OUT).  Exits.
#
# One pipeline (test/bench/volume_setup.sql).  Landing rows are landed by
# INSERT ... SELECT generate_series, a transaction per 1,000,000 rows, and
# moved by run_batch, a transaction a batch.  At each mark M the last
# BENCH_VOLUME_CHUNK rows before M are landed, then their move is timed:
# its run_batch time per 1M rows with M - chunk rows already finished in
# the landing table (retention 7 days: they stay).  The rows between marks
# are filler, landed and moved untimed.  After the last mark: purge of the
# first BENCH_VOLUME_PURGE rows (older than the retention set just before),
# against a plain DELETE of the same rows from a copy of the landing table.
# stage.purge drops whole partitions: the rows it drops are those of the
# partitions that hold only rows of the first BENCH_VOLUME_PURGE (each
# million landed is one transaction, so one partition's).
#
#   BENCH_VOLUME_MAX    finished rows at the end (default 50000000)
#   BENCH_VOLUME_MARKS  the marks (default: 1M, 10M, 50M, those below MAX, and MAX)
#   BENCH_VOLUME_CHUNK  rows moved at a mark, timed (default 1000000)
#   BENCH_VOLUME_PURGE  rows made older than the retention and purged
#                       (default 10000000, at most MAX; not inside a timed chunk)
#   BENCH_BATCH         max_rows of run_batch (default: stage.batch_size)

VOL_MAX="${BENCH_VOLUME_MAX:-50000000}"
VOL_CHUNK="${BENCH_VOLUME_CHUNK:-1000000}"
VOL_PURGE="${BENCH_VOLUME_PURGE:-10000000}"
[[ "$VOL_MAX" =~ ^[1-9][0-9]*$ ]] || die "BENCH_VOLUME_MAX must be a positive integer"
[[ "$VOL_CHUNK" =~ ^[1-9][0-9]*$ ]] || die "BENCH_VOLUME_CHUNK must be a positive integer"
[[ "$VOL_PURGE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_VOLUME_PURGE must be a positive integer"
[ "$VOL_PURGE" -le "$VOL_MAX" ] || VOL_PURGE=$VOL_MAX
if [ -n "${BENCH_VOLUME_MARKS:-}" ]; then
	VOL_MARKS="$BENCH_VOLUME_MARKS"
else
	VOL_MARKS=""
	for m in 1000000 10000000 50000000; do
		[ "$m" -lt "$VOL_MAX" ] && VOL_MARKS="$VOL_MARKS $m"
	done
	VOL_MARKS="$VOL_MARKS $VOL_MAX"
fi
prev=0
for m in $VOL_MARKS; do
	[[ "$m" =~ ^[1-9][0-9]*$ ]] || die "BENCH_VOLUME_MARKS must be positive integers"
	[ "$m" -gt "$prev" ] || die "BENCH_VOLUME_MARKS must increase"
	[ "$m" -ge "$VOL_CHUNK" ] || die "a mark ($m) is below BENCH_VOLUME_CHUNK"
	[ "$((m - VOL_CHUNK))" -ge "$prev" ] || die "marks $prev and $m are closer than BENCH_VOLUME_CHUNK"
	if [ "$VOL_PURGE" -gt "$((m - VOL_CHUNK))" ] && [ "$VOL_PURGE" -lt "$m" ]; then
		die "BENCH_VOLUME_PURGE ($VOL_PURGE) falls inside the timed chunk of mark $m"
	fi
	prev=$m
done
VOL_MAX=$prev

OUT="test/bench/out/volume-$(date -u +%Y%m%dT%H%M%SZ).txt"
CSV="${OUT%.txt}.csv"
exec > >(tee "$OUT") 2>&1
echo "bench: volume, marks ${VOL_MARKS# } (timed chunk $VOL_CHUNK rows), purge of $VOL_PURGE rows, batch size ${BENCH_BATCH:-default}"
echo "bench: output in $OUT and $CSV"
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stage:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src include sql 2>/dev/null || echo ' (with uncommitted changes)')"

psql_bench -f test/bench/volume_setup.sql >/dev/null
VOL_BATCH="${BENCH_BATCH:-NULL}"
VOL_FINISHED=0
VOL_BOUNDARY=0

# lands rows up to $1 and moves them; $2 = 1: the move is timed (a mark)
vol_advance() {
	local to=$1 timed=$2 t0 t1
	if [ "$VOL_BOUNDARY" = 0 ] && [ "$VOL_PURGE" -gt "$VOL_FINISHED" ] && [ "$VOL_PURGE" -lt "$to" ]; then
		vol_advance "$VOL_PURGE" 0
	fi
	t0=$(date +%s)
	psql_bench -c "CALL vol.land($((VOL_FINISHED + 1)), $to)"
	if [ "$VOL_BOUNDARY" = 0 ] && [ "$to" = "$VOL_PURGE" ]; then
		# rows landed so far are the purge's; the next arrive 3 s later
		psql_bench -c "CREATE TABLE vol.boundary AS SELECT clock_timestamp() + interval '1.5 s' AS at"
		sleep 3
		VOL_BOUNDARY=1
	fi
	if [ "$timed" = 1 ]; then
		# the statistics autovacuum keeps (off in the benchmark cluster)
		psql_bench -c "ANALYZE stage_landing.vol" -c "ANALYZE vol.orders" -c "ANALYZE stage.quarantine_log" -c CHECKPOINT
		psql_bench -c "CALL vol.move($to, true, $VOL_BATCH)"
		psql_bench -Atc "SELECT format('mark %s: %s rows moved in %s s (%s finished before)', mark, rows_in,
				round(seconds::numeric, 2), mark - rows_in) FROM vol.mark WHERE mark = $to"
	else
		psql_bench -c "CALL vol.move($to, false, $VOL_BATCH)"
	fi
	t1=$(date +%s)
	echo "bench: $to rows finished ($((to - VOL_FINISHED)) landed and moved in $((t1 - t0)) s)"
	VOL_FINISHED=$to
}

for m in $VOL_MARKS; do
	if [ "$((m - VOL_CHUNK))" -gt "$VOL_FINISHED" ]; then
		vol_advance "$((m - VOL_CHUNK))" 0
	fi
	vol_advance "$m" 1
done

# the baseline: the same rows deleted from a copy of the landing table
echo "bench: purge: copying the landing table for the baseline"
psql_bench -c "CREATE TABLE vol.landing_copy AS SELECT * FROM stage_landing.vol" -c "VACUUM ANALYZE vol.landing_copy" >/dev/null
psql_bench -v ON_ERROR_STOP=1 <<-'EOF'
	SET client_min_messages = warning;
	SELECT pg_total_relation_size('vol.landing_copy') AS b0 \gset
	CHECKPOINT;
	SELECT clock_timestamp() AS t0 \gset
	DELETE FROM vol.landing_copy WHERE _stage_received_at < (SELECT at FROM vol.boundary);
	SELECT :ROW_COUNT AS n, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s \gset
	INSERT INTO vol.purge SELECT 'baseline: DELETE from a copy', :n, :s, :b0,
		pg_total_relation_size('vol.landing_copy');
	SELECT clock_timestamp() AS t0 \gset
	VACUUM vol.landing_copy;
	SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s \gset
	INSERT INTO vol.purge SELECT 'baseline: the VACUUM after it', NULL, :s, :b0, pg_total_relation_size('vol.landing_copy');
	-- stage.purge: the retention set so that the partitions holding only
	-- those rows (ids up to the boundary's) are past it: they were
	-- finished (seen so by a purge) before the later ones
	SELECT vol.landing_bytes('stage_landing.vol') AS b0 \gset
	SELECT stage.purge('vol') AS ignored \gset
	SELECT max(_stage_id) AS last_id FROM stage_landing.vol WHERE _stage_received_at < (SELECT at FROM vol.boundary) \gset
	SELECT COALESCE(max(lp.finished_at), now()) AS due FROM stage.landing_partition lp
	 WHERE lp.pipeline_id = (SELECT pipeline_id FROM stage.pipeline WHERE name = 'vol')
	   AND lp.finished_at IS NOT NULL
	   AND vol.last_id(lp.partition) <= :last_id \gset
	CHECKPOINT;
	SELECT stage.set_retention('vol', now() - :'due'::timestamptz) AS ignored \gset
	SELECT clock_timestamp() AS t0 \gset
	SELECT stage.purge('vol') AS n \gset
	SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS s \gset
	INSERT INTO vol.purge SELECT 'stage.purge', :n, :s, :b0, vol.landing_bytes('stage_landing.vol');
EOF
psql_bench -f test/bench/volume_report.sql
psql_bench -c "\\copy (SELECT * FROM vol.report) TO STDOUT WITH (FORMAT csv, HEADER)" >"$CSV"
exit 0
