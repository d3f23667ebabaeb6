#!/usr/bin/env bash
# test.sh: what `make test` runs.
#
#   1. installs missing packages (scripts/deps.sh), builds stage and installs
#      it into a private copy of PostgreSQL (scripts/private_install.sh), so
#      two runs on one machine never load each other's stage.so;
#   2. copies the tree to a fresh temporary directory owned by `postgres`
#      (PostgreSQL refuses to run as root) and runs, as that user:
#        regress    pg_regress over REGRESS of the Makefile (sql/, expected/)
#        pgtap      pg_prove over test/pgtap/*.sql, one fresh database per file
#        isolation  pg_isolation_regress over test/isolation/specs/*.spec
#        tap        prove over test/t/*.pl (PostgreSQL::Test::Cluster)
#        doccheck   the examples of README.md and docs/*.md (scripts/doccheck.pl),
#                   each page in a cluster of its own; beside tap when both run
#      each against a throwaway cluster with shared_preload_libraries = 'stage';
#   3. runs, from the repository, as root when root:
#        fuzz       scripts/fuzz.sh: libFuzzer harnesses of the pure C parts,
#                   STAGE_FUZZ_SECONDS (15) each, reproducers, 1 MiB timings
#        valgrind   scripts/valgrind.sh: regress and pgTAP with the server
#                   under valgrind; fails on any error in stage.so
#      side by side when both run (each keeps one core busy)
#
# A suite without any test file is skipped with a message.  The last line is
# "N passed, N failed" (N = suites); the exit status is non-zero if any failed.
#
#   scripts/test.sh [SUITE...]     run only the named suites
#   STAGE_TEST_KEEP=1              keep the temporary directory
#   STAGE_TEST_PORT_BASE=N         ports N..N+9 for the suites' servers (54329)
#   STAGE_TESTS="a b"              run only these tests of the suites: regress
#                                  test names, test/pgtap/ file names, isolation
#                                  spec names, test/t/ file names (with or
#                                  without their extension), doc pages
#                                  (README, functions, ...)
#   DOCCHECK_WRITE=1               doccheck replaces the output blocks that
#                                  differ with what the server printed, in the
#                                  repository's pages (read the diff after)
# shellcheck disable=SC2317  # the suite_* functions are called indirectly
set -euo pipefail

# the system's pg_config (PGXS, the test drivers); the servers, psql and
# initdb come from the private installation part 1 makes (STAGE_PG_BINDIR)
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG_BINDIR=${STAGE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
export PATH="$PG_BINDIR:$PATH:/usr/sbin:/sbin"
ALL_SUITES=(regress pgtap isolation tap doccheck fuzz valgrind)
# the suites' servers listen on PORT_BASE and a few ports above it; two runs
# on one machine need bases at least 10 apart
PORT_BASE=${STAGE_TEST_PORT_BASE:-54329}
# run as the cluster user in the temporary copy (part 2); the others are
# whole scripts of their own, run from part 1
CLUSTER_SUITES=" regress pgtap isolation tap doccheck "

# ===================================================== part 2: the suites
# Runs as the cluster user, inside the temporary copy of the tree.

PASSED=()
FAILED=()
SKIPPED=()

# say, only, show_tail, make_var
# shellcheck source=scripts/lib/suite.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/suite.sh"

suite_regress() {
	local tests opts t n=0 rc missing=
	tests=$(make_var REGRESS) && opts=$(make_var REGRESS_OPTS) ||
		{ echo "could not read REGRESS from the Makefile"; return 1; }
	tests=$(only $tests)
	for t in $tests; do
		if [ -f "sql/$t.sql" ]; then
			n=$((n + 1))
		else
			missing="$missing sql/$t.sql"
		fi
	done
	for t in sql/*.sql; do
		[ -f "$t" ] || continue
		case "$(basename "$t" .sql)" in stage--*) continue ;; esac
		case " $tests " in *" $(basename "$t" .sql) "*) ;;
		*) echo "warning: $t is not listed in REGRESS of the Makefile: not run" ;;
		esac
	done
	if [ "$n" -eq 0 ]; then
		echo "skipped: no sql/<test>.sql file for REGRESS ($tests) yet"
		return 2
	fi
	[ -z "$missing" ] || echo "error: listed in REGRESS of the Makefile but missing:$missing"
	rm -rf results regression.diffs regression.out tmp_check_regress
	rc=0
	# shellcheck disable=SC2086
	"$PGXS_TESTS/regress/pg_regress" \
		--temp-instance=./tmp_check_regress --port=$((PORT_BASE + 0)) \
		--bindir="$PG_BINDIR" --inputdir=. --outputdir=. \
		--no-locale --encoding=UTF8 \
		$opts $tests || rc=$?
	if [ "$rc" -ne 0 ]; then
		show_tail 400 regression.diffs
		show_tail 40 tmp_check_regress/log/postmaster.log
		return 1
	fi
}

suite_isolation() {
	local specs=() f rc
	for f in test/isolation/specs/*.spec; do
		[ -f "$f" ] && [ -n "$(only "$(basename "$f" .spec)")" ] && specs+=("$(basename "$f" .spec)")
	done
	if [ "${#specs[@]}" -eq 0 ]; then
		echo "skipped: no test/isolation/specs/*.spec yet"
		return 2
	fi
	rm -rf output_iso tmp_check_iso
	rc=0
	"$PGXS_TESTS/isolation/pg_isolation_regress" \
		--temp-instance=./tmp_check_iso --port=$((PORT_BASE + 4)) \
		--bindir="$PG_BINDIR" --inputdir=test/isolation --outputdir=output_iso \
		--no-locale --encoding=UTF8 \
		--temp-config=test/stage.conf --load-extension=stage \
		"${specs[@]}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		show_tail 400 output_iso/regression.diffs
		show_tail 40 tmp_check_iso/log/postmaster.log
		return 1
	fi
}

# a throwaway cluster: preloaded stage, socket in its own directory, no TCP;
# the settings in the file EXTRA_CONF, if given, come after test/stage.conf
CLUSTER_DIR=
cluster_start() {
	local port=$1 extra=${2:-}
	CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stage-pg.XXXXXX")
	initdb -D "$CLUSTER_DIR/data" -U postgres -A trust --no-locale -E UTF8 \
		>"$CLUSTER_DIR/initdb.log" 2>&1 || { cat "$CLUSTER_DIR/initdb.log"; return 1; }
	{
		echo "listen_addresses = ''"
		echo "port = $port"
		echo "unix_socket_directories = '$CLUSTER_DIR'"
		echo "fsync = off"
		cat test/stage.conf
		[ -z "$extra" ] || cat "$extra"
	} >>"$CLUSTER_DIR/data/postgresql.conf"
	pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w -t 60 start >/dev/null ||
		{ show_tail 40 "$CLUSTER_DIR/server.log"; return 1; }
	export PGHOST=$CLUSTER_DIR PGPORT=$port PGUSER=postgres
}
cluster_stop() {
	[ -n "$CLUSTER_DIR" ] || return 0
	pg_ctl -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 ||
		pg_ctl -D "$CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$CLUSTER_DIR"
	CLUSTER_DIR=
	unset PGHOST PGPORT PGUSER
}

suite_pgtap() {
	local files=() f db rc=0 i=0
	for f in test/pgtap/*.sql; do
		[ -f "$f" ] && [ -n "$(only "$(basename "$f" .sql)")" ] && files+=("$f")
	done
	if [ "${#files[@]}" -eq 0 ]; then
		echo "skipped: no test/pgtap/*.sql yet"
		return 2
	fi
	cluster_start $((PORT_BASE + 2)) || { cluster_stop; return 1; }
	# every file gets a fresh database with pgtap and stage installed, so a
	# test may commit without disturbing the next one
	if ! psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'CREATE DATABASE stage_tap_template' \
		-c '\c stage_tap_template' \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION stage'; then
		show_tail 40 "$CLUSTER_DIR/server.log"
		cluster_stop
		return 1
	fi
	for f in "${files[@]}"; do
		i=$((i + 1))
		db="stage_tap_$i"
		if ! createdb -T stage_tap_template "$db"; then
			rc=1
			continue
		fi
		pg_prove --dbname "$db" --ext .sql --pset pager=off "$f" || rc=1
	done
	[ "$rc" -eq 0 ] || show_tail 40 "$CLUSTER_DIR/server.log"
	cluster_stop
	return "$rc"
}

suite_tap() {
	local files=() f n rc=0
	for f in test/t/*.pl; do
		[ -f "$f" ] && [ -n "$(only "$(basename "$f" .pl)")" ] && files+=("$f")
	done
	if [ "${#files[@]}" -eq 0 ]; then
		echo "skipped: no test/t/*.pl yet"
		return 2
	fi
	rm -rf tmp_check
	mkdir -p tmp_check
	# what PGXS's prove_installcheck sets; TEMP_CONFIG preloads stage in
	# every node (a test may still append its own settings)
	TESTDIR="$PWD" PG_REGRESS="$PGXS_TESTS/regress/pg_regress" \
		TEMP_CONFIG="$PWD/test/stage.conf" PGPORT=$((PORT_BASE + 6)) \
		prove -I "$PGXS_TESTS/perl" -I test "${files[@]}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		# the logs of the scripts that failed, and of their nodes
		for f in tmp_check/log/regress_log_*; do
			[ -f "$f" ] && grep -qE '^not ok|Bail out|died|Looks like' "$f" || continue
			show_tail 80 "$f"
			for n in "tmp_check/log/${f##*/regress_log_}"_*.log; do
				show_tail 30 "$n"
			done
		done
		return 1
	fi
}

# every page in a cluster of its own (roles, settings and workers are the
# cluster's), one page after the other on PORT_BASE + 8
suite_doccheck() {
	local pages=() p rc=0 conf=$PWD/doccheck.conf results=$PWD/doccheck.results
	for p in README.md docs/*.md; do
		[ -f "$p" ] && [ -n "$(only "$(basename "$p" .md)")" ] || continue
		grep -qE '^ {0,3}```sql *$' "$p" && pages+=("$p")
	done
	if [ "${#pages[@]}" -eq 0 ]; then
		echo "skipped: no page with a sql block"
		return 2
	fi
	: >"$results"
	for p in "${pages[@]}"; do
		perl scripts/doccheck.pl conf "$p" >"$conf" || { rc=1; continue; }
		cluster_start $((PORT_BASE + 8)) "$conf" || { cluster_stop; rc=1; continue; }
		if ! DOCCHECK_RESULTS=$results perl scripts/doccheck.pl run "$p"; then
			rc=1
			show_tail 30 "$CLUSTER_DIR/server.log"
		fi
		cluster_stop
	done
	perl scripts/doccheck.pl summary "$results" || rc=1
	return "$rc"
}

run_suites() {
	local s rc bg= bg_out=$PWD/doccheck.out
	PGXS_TESTS=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")/test
	trap cluster_stop EXIT
	for s in "$@"; do
		# doccheck mostly waits (workers' naps, pg_cron's minute ticks): it
		# runs beside tap, which mostly waits too, on ports of its own
		if [ "$s" = tap ] && [[ " $* " == *" doccheck "* ]]; then
			(
				rc=0
				suite_doccheck >"$bg_out" 2>&1 || rc=$?
				echo "$rc" >"$bg_out.rc"
			) &
			bg=$!
		fi
		rc=0
		if [ "$s" = doccheck ] && [ -n "$bg" ]; then
			say "suite doccheck (ran beside tap)"
			wait "$bg" || true
			cat "$bg_out"
			rc=$(cat "$bg_out.rc" 2>/dev/null || echo 1)
		else
			say "suite $s"
			"suite_$s" || rc=$?
		fi
		case $rc in
		0) PASSED+=("$s"); echo "--- suite $s: passed" ;;
		2) SKIPPED+=("$s") ;;
		*) FAILED+=("$s"); echo "--- suite $s: FAILED" ;;
		esac
	done
	[ "${#FAILED[@]}" -eq 0 ] || echo "(results kept in $PWD)"
	{
		for s in "${PASSED[@]}"; do echo "passed $s"; done
		for s in "${FAILED[@]}"; do echo "failed $s"; done
		for s in "${SKIPPED[@]}"; do echo "skipped $s"; done
	} >"$PWD/suites.result"
	[ "${#FAILED[@]}" -eq 0 ]
}

if [ "${1:-}" = "--suites" ]; then
	shift
	cd "$1"
	shift
	run_suites "$@"
	exit
fi

# ========================================= part 1: build, install, hand over

suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=("${ALL_SUITES[@]}")
cluster=()
tools=()
for s in "${suites[@]}"; do
	case " ${ALL_SUITES[*]} " in *" $s "*) ;;
	*) echo "unknown suite '$s' (known: ${ALL_SUITES[*]})" >&2; exit 2 ;;
	esac
	case "$CLUSTER_SUITES" in *" $s "*) cluster+=("$s") ;; *) tools+=("$s") ;; esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

"$repo/scripts/deps.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/stage-test.XXXXXX")
say "build and install (privately, in $work/install)"
if ! make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" ||
	! bindir=$("$repo/scripts/private_install.sh" "$work/install" | tail -n 1); then
	echo "build failed"
	echo "0 passed, ${#suites[@]} failed"
	exit 1
fi
tar -C "$repo" --exclude=./.git --exclude=./tmp_install --exclude=./test/fuzz/build \
	-cf - . | tar -C "$work" -xf -
export STAGE_PG_BINDIR=$bindir
rc=0
if [ "${#cluster[@]}" -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres:postgres "$work"
		chmod 0755 "$work"
		(cd "$work" && runuser -u postgres -- env PATH="$PATH" \
			STAGE_PG_BINDIR="$bindir" STAGE_TESTS="${STAGE_TESTS:-}" \
			DOCCHECK_WRITE="${DOCCHECK_WRITE:-}" DOCCHECK_TRACE="${DOCCHECK_TRACE:-}" \
			bash "$work/scripts/test.sh" --suites "$work" "${cluster[@]}") || rc=$?
	else
		bash "$work/scripts/test.sh" --suites "$work" "${cluster[@]}" || rc=$?
	fi
fi
# DOCCHECK_WRITE: the pages doccheck rewrote replace the repository's,
# unless the repository's page changed since the copy was made
for f in "$work"/README.md.doccheck-new "$work"/docs/*.md.doccheck-new; do
	[ -f "$f" ] || continue
	page=${f#"$work"/}
	page=${page%.doccheck-new}
	if cmp -s "$work/$page" "$repo/$page"; then
		cp "$f" "$repo/$page"
		echo "doccheck: rewrote $page"
	else
		echo "doccheck: $page changed meanwhile; not rewritten (see $f)"
		STAGE_TEST_KEEP=1
	fi
done
results=()
[ -f "$work/suites.result" ] && mapfile -t results <"$work/suites.result"

# fuzz: a short run of every harness, its saved reproducers and the 1 MiB
# timings (scripts/fuzz.sh); valgrind: the regress and pgTAP suites with
# the server under memcheck (scripts/valgrind.sh).  Asked for together,
# they run side by side: each keeps one core busy (libFuzzer is one
# process; the server under memcheck runs one test backend at a time).
tool_result() {
	if [ "$2" -eq 0 ]; then
		results+=("passed $1")
		echo "--- suite $1: passed"
	else
		results+=("failed $1")
		echo "--- suite $1: FAILED"
		rc=1
	fi
}
fuzz_bg=
if [[ " ${tools[*]} " == *" fuzz "* && " ${tools[*]} " == *" valgrind "* ]]; then
	(
		trc=0
		"$repo/scripts/fuzz.sh" "${STAGE_FUZZ_SECONDS:-15}" >"$work/fuzz.out" 2>&1 || trc=$?
		echo "$trc" >"$work/fuzz.rc"
	) &
	fuzz_bg=$!
fi
for s in "${tools[@]}"; do
	trc=0
	case $s in
	fuzz)
		[ -z "$fuzz_bg" ] || continue
		say "suite $s"
		"$repo/scripts/fuzz.sh" "${STAGE_FUZZ_SECONDS:-15}" || trc=$?
		;;
	valgrind)
		say "suite $s"
		"$repo/scripts/valgrind.sh" || trc=$?
		;;
	esac
	tool_result "$s" "$trc"
done
if [ -n "$fuzz_bg" ]; then
	wait "$fuzz_bg" || true
	say "suite fuzz (ran beside valgrind)"
	cat "$work/fuzz.out"
	tool_result fuzz "$(cat "$work/fuzz.rc" 2>/dev/null || echo 1)"
fi

npass=0
nfail=0
lpass=
lfail=
lskip=
for r in "${results[@]}"; do
	case $r in
	"passed "*) npass=$((npass + 1)); lpass="$lpass ${r#passed }" ;;
	"failed "*) nfail=$((nfail + 1)); lfail="$lfail ${r#failed }" ;;
	"skipped "*) lskip="$lskip ${r#skipped }" ;;
	esac
done
echo
echo "passed: ${lpass:- none}"
echo "failed: ${lfail:- none}"
echo "skipped:${lskip:- none}"
if [ "$rc" -eq 0 ] && [ -z "${STAGE_TEST_KEEP:-}" ]; then
	rm -rf "$work"
else
	echo "(results kept in $work)"
fi
echo "$npass passed, $nfail failed"
exit "$rc"
