#!/usr/bin/env bash
# deps.sh: install what building and testing stage needs on Debian 12.
# Idempotent and quiet when everything is present.  As root it installs what
# is missing; otherwise it names the missing packages and exits 1.
set -euo pipefail

PACKAGES=(
	postgresql-15                          # server, client and contrib modules
	postgresql-server-dev-15               # PGXS, server headers, pg_regress, isolation tester, TAP modules
	libpcre2-dev                           # PCRE2 (libpcre2-8) for the regex rule and mask
	pkg-config
	make
	gcc
	postgresql-15-pgtap                    # pgTAP extension
	libtap-parser-sourcehandler-pgtap-perl # pg_prove
	libipc-run-perl                        # needed by PostgreSQL::Test::Cluster
	postgresql-15-cron                     # pg_cron, the alternative scheduler
	postgresql-15-plproxy                  # PL/Proxy: routing producers to staging nodes by key (scale-out)
	clang-14                               # libFuzzer harnesses (scripts/fuzz.sh)
	libclang-rt-14-dev                     # libFuzzer and the sanitizers' runtime
	valgrind                               # memory checking (scripts/valgrind.sh)
	libc6-dbg                              # symbols valgrind's suppressions name
	prometheus                             # Prometheus and promtool: contrib/prometheus rules, checked and unit-tested (test/t/022_prometheus.pl)
	prometheus-postgres-exporter           # the scrape path of contrib/prometheus/queries.yaml (test/t/022_prometheus.pl)
)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "stage: missing packages: ${missing[*]}" >&2
		echo "install them as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "stage: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do
		installed "$p" || { echo "stage: failed to install $p" >&2; exit 1; }
	done
fi

PG_BINDIR=/usr/lib/postgresql/15/bin
for f in "$PG_BINDIR/pg_config" "$PG_BINDIR/initdb" "$PG_BINDIR/pg_ctl" "$PG_BINDIR/psql"; do
	[ -x "$f" ] || { echo "stage: $f not found after installing PostgreSQL 15" >&2; exit 1; }
done
