#!/usr/bin/env bash
# fuzz.sh [SECONDS] [HARNESS...]: build and run the libFuzzer harnesses of
# stage's pure C functions (test/fuzz/, see test/fuzz/README.md).
#
#   1. installs clang-14 and libclang-rt-14-dev if missing (as root, apt-get;
#      quiet when present);
#   2. builds, under test/fuzz/build/ (git-ignored): the stage sources the
#      harnesses need, with -fsanitize=fuzzer-no-link,address,undefined; the
#      shim (test/fuzz/shim.c); stubs.c, generated from `nm -u`, one stub per
#      backend symbol nothing else provides, aborting with its name; then
#      one binary per harness;
#   3. runs the saved reproducers (test/fuzz/crashes/HARNESS/*): they must
#      not crash any more;
#   4. fuzzes each harness for SECONDS (default 30), one job at a time, with
#      -max_len=65536 -timeout=10 -rss_limit_mb=2048;
#   5. times every function of each harness on 1 MiB inputs of pathological
#      repetitions ("DE89 " x N, "@" x N, digits, ...): each must finish in
#      well under a second (limit STAGE_FUZZ_SLOW_MS, default 1000 ms; a
#      function is killed after STAGE_FUZZ_TIME_LIMIT s, default 10).
#
# Exits non-zero on any crash, timeout, leak, sanitizer report, failed
# reproducer or slow function, printing the reproducer paths.
#
# Harnesses: pii format mask pseudonym typecheck transform (default: all).
# Environment:
#   STAGE_FUZZ_SKIP=name,...   property checks to skip while fuzzing (known,
#                              reported findings; reproducers still run them)
#   STAGE_FUZZ_BUILD=DIR       build directory (default test/fuzz/build)
#   STAGE_FUZZ_NO_SLOW=1       skip step 5;  STAGE_FUZZ_NO_FUZZ=1: skip step 4
#   STAGE_FUZZ_EXTRA="..."     more libFuzzer flags for step 4
#   STAGE_FUZZ_RETRY_WAIT=60   seconds to wait before retrying a failed
#                              compile of a stage source (edited meanwhile)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzzdir=$repo/test/fuzz
build=${STAGE_FUZZ_BUILD:-$fuzzdir/build}
ALL_HARNESSES=(pii format mask pseudonym typecheck transform)
# the stage sources the harnesses reach (everything else is stubbed)
STAGE_SRCS=(pii format mask pseudonym typecheck sha256 tf_text tf_number tf_time)
CC=clang-14
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGLIBDIR=$("$PG_CONFIG" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
POSTGRES_BIN=$("$PG_CONFIG" --bindir)/postgres
SLOW_MS=${STAGE_FUZZ_SLOW_MS:-1000}
TIME_LIMIT=${STAGE_FUZZ_TIME_LIMIT:-10}
RETRY_WAIT=${STAGE_FUZZ_RETRY_WAIT:-60}

secs=30
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${ALL_HARNESSES[@]}")
for h in "${harnesses[@]}"; do
	[ -f "$fuzzdir/fuzz_$h.c" ] || { echo "fuzz.sh: no harness \"$h\" (have: ${ALL_HARNESSES[*]})" >&2; exit 2; }
done

say() { printf '\n=== %s\n' "$*"; }
FAILURES=()
fail() { FAILURES+=("$*"); printf 'FAIL: %s\n' "$*"; }

# ------------------------------------------------------------- toolchain
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in clang-14 libclang-rt-14-dev; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "fuzz.sh: missing packages: ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "fuzz.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found" >&2; exit 1; }
[ -e "$("$CC" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ] ||
	{ echo "fuzz.sh: libFuzzer runtime missing (libclang-rt-14-dev)" >&2; exit 1; }

# ------------------------------------------------------------- build
say "build ($build)"
mkdir -p "$build/obj"
PG_INC=$("$PG_CONFIG" --includedir-server)
PCRE2_CFLAGS=$(pkg-config --cflags libpcre2-8 2>/dev/null || true)
PCRE2_LIBS=$(pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
# shellcheck disable=SC2054  # the commas belong to the flag
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)
# shellcheck disable=SC2206  # pkg-config output splits into flags
CFLAGS=(-g -O1 -fno-omit-frame-pointer -Wall -Wno-unused-parameter -Wno-missing-field-initializers
	-Wno-sign-compare -Wno-ignored-attributes -Wno-unused-function
	-I "$repo/include" -I "$PG_INC" $PCRE2_CFLAGS)

# two variants: san (fuzzing, reproducers) and plain -O2 (the 1 MiB timings,
# closer to the server's own build: sanitizers multiply the times)
# shellcheck disable=SC2206
PLAIN=(-O2 -g -Wall -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
	-Wno-ignored-attributes -Wno-unused-function -I "$repo/include" -I "$PG_INC" $PCRE2_CFLAGS)
flags_of() {
	case $1 in
	san) echo "-fsanitize=fuzzer-no-link ${SAN[*]} ${CFLAGS[*]}" ;;
	plain) echo "${PLAIN[*]}" ;;
	esac
}

compile_stage() {
	local v=$1 src=$2 obj=$3 try
	for try in 1 2 3; do
		# shellcheck disable=SC2046
		if "$CC" -c $(flags_of "$v") "$src" -o "$obj" 2>"$obj.log"; then
			return 0
		fi
		if [ $try -lt 3 ]; then
			echo "fuzz.sh: compiling $src failed (being edited?); retrying in ${RETRY_WAIT}s" >&2
			sleep "$RETRY_WAIT"
		fi
	done
	cat "$obj.log" >&2
	return 1
}

all_objs=()
for v in san plain; do
	mkdir -p "$build/obj/$v"
	for s in "${STAGE_SRCS[@]}"; do
		compile_stage "$v" "$repo/src/$s.c" "$build/obj/$v/stage_$s.o"
		all_objs+=("$build/obj/$v/stage_$s.o")
	done
	shim_flags=$(flags_of "$v")
	# shellcheck disable=SC2086
	"$CC" -c ${shim_flags//-fsanitize=fuzzer-no-link/} -I "$fuzzdir" "$fuzzdir/shim.c" -o "$build/obj/$v/shim.o"
	all_objs+=("$build/obj/$v/shim.o")
	for h in "${ALL_HARNESSES[@]}"; do
		# shellcheck disable=SC2046
		"$CC" -c $(flags_of "$v") -I "$fuzzdir" "$fuzzdir/fuzz_$h.c" -o "$build/obj/$v/fuzz_$h.o"
		all_objs+=("$build/obj/$v/fuzz_$h.o")
	done
done

# stubs: every symbol the objects need that neither they, the shim, the
# PostgreSQL static libraries, the shared libraries linked nor the
# sanitizer/libFuzzer runtimes define
LIBS=("$PGLIBDIR/libpgcommon_shlib.a" "$PGLIBDIR/libpgport_shlib.a")
SHLIBS=()
for l in libc.so.6 libm.so.6 libcrypto.so.3 libpcre2-8.so.0; do
	f=$(ldconfig -p 2>/dev/null | awk -v l="$l" '$1 == l && /x86-64/ && !f {f = $NF} END {print f}' || true)
	for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
		[ -n "$f" ] || { [ -e "$d/$l" ] && f=$d/$l; }
	done
	[ -n "$f" ] && SHLIBS+=("$f")
done

nm -u "${all_objs[@]}" 2>/dev/null | awk 'NF == 2 && $1 == "U" {print $2}' | sort -u >"$build/undefined.txt"
{
	nm -g --defined-only "${all_objs[@]}" "${LIBS[@]}" 2>/dev/null | awk 'NF == 3 {print $3}'
	for f in "${SHLIBS[@]}"; do nm -D --defined-only "$f" | awk 'NF == 3 {print $3}' | sed 's/@.*//'; done
} | sort -u >"$build/defined.txt"
comm -23 "$build/undefined.txt" "$build/defined.txt" |
	grep -Ev '^(__(asan|ubsan|sanitizer|sancov|lsan|interceptor)_|__start_|__stop_|LLVMFuzzer)' \
		>"$build/stubbed.txt" || true
# data symbols: from the postgres binary's dynamic symbol table, or
# declared as variables in stage's headers
nm -D --defined-only "$POSTGRES_BIN" 2>/dev/null | awk '$2 ~ /^[BbDdRrGgSsV]$/ {print $3}' |
	sort -u >"$build/pg_data.txt" || true

gen_stubs() {
	local list=$1 out=$2 name
	{
		echo '/* generated by scripts/fuzz.sh from nm -u: do not edit */'
		echo '#include <stddef.h>'
		echo 'extern void fuzz_stub_called(const char *name) __attribute__((noreturn));'
		echo '/* data stubs: poisoned for AddressSanitizer at start, so any access from'
		echo '   the (instrumented) stage code is reported where it happens */'
		echo 'extern void __asan_poison_memory_region(void const volatile *addr, size_t size)'
		echo '	__attribute__((weak));'
		echo 'extern char __start_fuzz_stub_data[] __attribute__((weak));'
		echo 'extern char __stop_fuzz_stub_data[] __attribute__((weak));'
		while read -r name; do
			[ -n "$name" ] || continue
			if grep -qxF "$name" "$build/pg_data.txt" ||
				grep -Eqs "^extern[^(]*[ *]$name(\[[^]]*\])?;" "$repo"/include/*.h; then
				echo "char ${name}[256] __attribute__((aligned(64), section(\"fuzz_stub_data\")));"
			else
				echo "void $name(void) { fuzz_stub_called(\"$name\"); }"
			fi
		done <"$list"
		echo 'static void __attribute__((constructor)) fuzz_stub_poison(void)'
		echo '{'
		echo '	if (__asan_poison_memory_region != NULL && __start_fuzz_stub_data != NULL &&'
		echo '		__stop_fuzz_stub_data > __start_fuzz_stub_data)'
		echo '		__asan_poison_memory_region(__start_fuzz_stub_data, __stop_fuzz_stub_data - __start_fuzz_stub_data);'
		echo '}'
	} >"$out"
}

# link harness h of variant v: build/fuzz_h (san) or build/plain/fuzz_h
link_harness() {
	local v=$1 h=$2 out sanflags=()
	if [ "$v" = san ]; then
		out=$build/fuzz_$h
		sanflags=("${SAN[@]}")
	else
		out=$build/plain/fuzz_$h
		mkdir -p "$build/plain"
	fi
	# shellcheck disable=SC2086  # PCRE2_LIBS: flags
	"$CC" -fsanitize=fuzzer "${sanflags[@]}" -o "$out" "$build/obj/$v/fuzz_$h.o" \
		"${stage_o[@]/#/$build/obj/$v/stage_}" "$build/obj/$v/shim.o" "$build/obj/stubs.o" \
		"${LIBS[@]}" -lcrypto $PCRE2_LIBS -lm 2>"$build/link_$h.log"
}
stage_o=("${STAGE_SRCS[@]/%/.o}")

gen_stubs "$build/stubbed.txt" "$build/stubs.c"
"$CC" -c -g -O0 "$build/stubs.c" -o "$build/obj/stubs.o"
for v in san plain; do
	for h in "${ALL_HARNESSES[@]}"; do
		if ! link_harness "$v" "$h"; then
			# a symbol pulled in by an archive member: stub it too and relink
			grep -o "undefined reference to \`[^']*'" "$build/link_$h.log" |
				sed "s/undefined reference to \`//; s/'\$//" | sort -u >"$build/more.txt" || true
			if [ -s "$build/more.txt" ]; then
				echo "fuzz.sh: also stubbing $(tr '\n' ' ' <"$build/more.txt")"
				sort -u "$build/stubbed.txt" "$build/more.txt" -o "$build/stubbed.txt"
				gen_stubs "$build/stubbed.txt" "$build/stubs.c"
				"$CC" -c -g -O0 "$build/stubs.c" -o "$build/obj/stubs.o"
			fi
			link_harness "$v" "$h" || { cat "$build/link_$h.log" >&2; exit 1; }
		fi
	done
done
echo "built: ${ALL_HARNESSES[*]/#/fuzz_} ($(wc -l <"$build/stubbed.txt") backend symbols stubbed, list in $build/stubbed.txt)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:symbolize=1}
FUZZ_FLAGS=(-max_len=65536 -timeout=10 -rss_limit_mb=2048)

# ------------------------------------------------------------- reproducers
say "saved reproducers (test/fuzz/crashes/)"
declare -A REPRO_OK
for h in "${harnesses[@]}"; do
	REPRO_OK[$h]=1
	shopt -s nullglob
	files=("$fuzzdir/crashes/$h"/*)
	shopt -u nullglob
	[ ${#files[@]} -gt 0 ] || { echo "$h: none"; continue; }
	n_bad=0
	for f in "${files[@]}"; do
		[ -f "$f" ] || continue
		case $f in *.md | *.txt) continue ;; esac
		if ! { env -u STAGE_FUZZ_SKIP timeout 120 "$build/fuzz_$h" "${FUZZ_FLAGS[@]}" "$f" >"$build/repro.log" 2>&1; } 2>/dev/null; then
			n_bad=$((n_bad + 1))
			REPRO_OK[$h]=0
			fail "$h: reproducer still fails: $f"
			printf '      %s\n' "$(grep -m1 -A1 -E '==stage fuzz==|runtime error|ERROR: ' "$build/repro.log" | tr -s ' \n' ' ' | cut -c1-300)"
		fi
	done
	echo "$h: ${#files[@]} reproducer(s), $n_bad still failing"
done

# ------------------------------------------------------------- fuzzing
summary=()
if [ "${STAGE_FUZZ_NO_FUZZ:-0}" != 1 ]; then
	for h in "${harnesses[@]}"; do
		say "fuzz_$h for ${secs}s"
		work=$build/work/$h
		art=$build/artifacts/$h
		mkdir -p "$work" "$art" "$build/corpus/$h"
		seeds=("$build/corpus/$h" "$fuzzdir/corpus/$h")
		# passing reproducers are seeds too (a failing one would stop at once)
		if [ "${REPRO_OK[$h]}" = 1 ] && [ -d "$fuzzdir/crashes/$h" ]; then
			seeds+=("$fuzzdir/crashes/$h")
		fi
		before=$(find "$art" -type f | sort)
		rm -f "$work"/fuzz-*.log
		# shellcheck disable=SC2086
		(cd "$work" && "$build/fuzz_$h" "${FUZZ_FLAGS[@]}" -max_total_time="$secs" -jobs=1 \
			-report_slow_units=1 -print_final_stats=1 -artifact_prefix="$art/" \
			${STAGE_FUZZ_EXTRA:-} "${seeds[@]}" >"$work/driver.log" 2>&1) || true
		log=$work/fuzz-0.log
		[ -f "$log" ] || log=$work/driver.log
		cp "$log" "$build/fuzz_$h.log"
		stats=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/ +/ /g' || true)
		execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
		echo "last: ${stats:-?}"
		echo "executions: ${execs:-?}"
		summary+=("fuzz_$h: ${execs:-?} executions; ${stats:-?}")
		new=$(comm -13 <(echo "$before") <(find "$art" -type f | sort) || true)
		problem=0
		for f in $new; do
			case $(basename "$f") in
			slow-unit-*) echo "slow input (>1 s): $f" ;;
			*)
				problem=1
				fail "fuzz_$h: $(basename "$f" | cut -d- -f1) — reproducer: $f"
				;;
			esac
		done
		if grep -qE '==stage fuzz==|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
			grep -m1 -A3 -E '==stage fuzz==|runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" | sed 's/^/    /'
			grep -m12 -E '^ +#[0-9]+ ' "$log" | sed 's/^/    /' || true
			[ $problem = 1 ] || fail "fuzz_$h: sanitizer or harness report in $build/fuzz_$h.log"
		fi
	done
fi

# ------------------------------------------------------------- 1 MiB inputs
if [ "${STAGE_FUZZ_NO_SLOW:-0}" != 1 ]; then
	say "1 MiB pathological inputs (limit ${SLOW_MS} ms per function; killed after ${TIME_LIMIT} s)"
	mkdir -p "$build/slow"
	# name|unit[|tail]: unit repeated, then tail, 1 MiB in all (\x{...}: a code point)
	PATTERNS=(
		'iban_groups|DE89 '
		'iban_valid|DE89 3704 0044 0532 0130 00 '
		'at|@'
		'a_at|a@'
		'email_list|a.b@c.de '
		'dots_at|a.'
		'digits|0'
		'digit_groups|4111 '
		'cards|4111111111111111 '
		'plus_one|+1 '
		'plus_paren|+1('
		'paren_phone|(555) '
		'ipv4|1.2.3.4 '
		'colons|:'
		'hex_colon|a:'
		'jwt_start|eyJ-'
		'slack_start|xoxb-'
		'slack_tail|xoxb-|_'
		'google_key|AIza-'
		'github|ghp_'
		'pem_begin|-----BEGIN PRIVATE KEY-----'
		'hyphens|-'
		'spaces| '
		'words|ab '
		'initials|A. '
		'latin1|\x{e9}'
		'cjk|\x{4e2d}'
		'emoji|\x{1f600}'
		'timestamps|2024-01-01T00:00:00+01 '
		'commas|1,'
		'nbsp|\x{a0}'
	)
	for p in "${PATTERNS[@]}"; do
		IFS='|' read -r name unit tail <<<"$p"
		f=$build/slow/$name.txt
		[ -s "$f" ] || UNIT="$unit" TAIL="${tail:-}" perl -e '
			my ($u, $t) = ($ENV{UNIT}, $ENV{TAIL});
			s/\\x\{([0-9a-f]+)\}/chr(hex($1))/ge for ($u, $t);
			utf8::encode($u); utf8::encode($t);
			my $n = 1048576 - length($t);
			my $s = $u x (int($n / length($u)) + 1);
			$s = substr($s, 0, $n - ($n % length($u)));
			print $s, $t;' >"$f"
	done
	report=$build/slow-report.txt
	: >"$report"
	for h in "${harnesses[@]}"; do
		for p in "${PATTERNS[@]}"; do
			name=${p%%|*}
			STAGE_FUZZ_TIMING=1 STAGE_FUZZ_TIME_LIMIT=$TIME_LIMIT "$build/plain/fuzz_$h" "$build/slow/$name.txt" 2>/dev/null |
				grep '^TIME ' | sed "s|\$| [$name]|" >>"$report" || true
		done
	done
	# worst time of each function, and every input over the limit
	awk -v lim="$SLOW_MS" '
		{ fn = $2; pat = $NF
		  if ($3 == "TIMEOUT" || $3 == "CRASH") { ms = 1e12; shown = $3 " " $4 " " $5 } else { ms = $3 + 0; shown = $3 " ms" }
		  if (!(fn in worst) || ms > worst[fn]) { worst[fn] = ms; wshow[fn] = shown; wpat[fn] = pat }
		  if (ms > lim) print "SLOW " fn " on " pat ": " shown > "/dev/stderr" }
		END { for (fn in worst) printf "%-40s worst %-16s on %s\n", fn, wshow[fn], wpat[fn] }' \
		"$report" 2>"$build/slow-over.txt" | sort
	if [ -s "$build/slow-over.txt" ]; then
		while read -r line; do
			pat=$(sed -E 's/.* on \[([^]]+)\].*/\1/' <<<"$line")
			fail "${line#SLOW } — input: $build/slow/$pat.txt"
		done <"$build/slow-over.txt"
		echo "rerun one: STAGE_FUZZ_TIMING=1 $build/plain/fuzz_HARNESS $build/slow/NAME.txt  (all times: $report)"
	fi
fi

# ------------------------------------------------------------- summary
say "summary"
for s in "${summary[@]}"; do echo "$s"; done
if [ ${#FAILURES[@]} -gt 0 ]; then
	echo "${#FAILURES[@]} problem(s):"
	for f in "${FAILURES[@]}"; do echo "  - $f"; done
	exit 1
fi
echo "no crash, timeout, leak or slow function"
