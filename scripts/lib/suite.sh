# shellcheck shell=bash
# suite.sh: what the suite runners (scripts/test.sh, scripts/valgrind.sh)
# share.  Sourced, not run; defines functions only.
#
#   say TEXT...         a heading: a blank line, then "=== TEXT"
#   only NAME...        the names that STAGE_TESTS selects (all of them when
#                       it is unset), each followed by a space
#   show_tail N FILE    the last N lines of FILE under a "--- FILE" line, if
#                       FILE is not empty
#   make_var NAME       the value of the Makefile's variable NAME (REGRESS,
#                       REGRESS_OPTS, ...), read with PG_CONFIG, from the
#                       current directory

say() { printf '\n=== %s\n' "$*"; }

only() {
	local t
	for t in "$@"; do
		if [ -z "${STAGE_TESTS:-}" ] || [[ " $STAGE_TESTS " == *" $t "* ]]; then
			printf '%s ' "$t"
		fi
	done
}

show_tail() {
	local n=$1 f=$2
	[ -s "$f" ] || return 0
	echo "--- $f (last $n lines)"
	tail -n "$n" "$f"
}

make_var() {
	make -s --no-print-directory PG_CONFIG="$PG_CONFIG" -f Makefile -f - \
		"print-var-$1" <<-'EOF'
	print-var-%: ; @echo '$($*)'
	EOF
}
