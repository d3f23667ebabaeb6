#!/usr/bin/env bash
# demo.sh: what `make demo` runs.
#
# Installs missing packages, builds stage and installs it into a private
# copy of PostgreSQL (scripts/private_install.sh), starts a throwaway
# PostgreSQL 15 cluster with shared_preload_libraries = 'stage' (as the
# `postgres` user when run as root), runs scripts/demo.sql against it and
# stops the cluster again.
#
#   STAGE_DEMO_KEEP=1 make demo    leave the cluster running to explore it
set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BINDIR/pg_config
PORT=${STAGE_DEMO_PORT:-54340}
DB=stage_demo
export PATH="$PG_BINDIR:$PATH:/usr/sbin:/sbin"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

"$repo/scripts/deps.sh"

# run a command as the cluster's owner
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/stage-demo.XXXXXX")
# a private installation: the system's PostgreSQL is left as it is
PG_BINDIR=$(scripts/private_install.sh "$dir/install" | tail -n 1)
export PATH="$PG_BINDIR:$PATH"
cp scripts/demo.sql "$dir/demo.sql"
[ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$dir"
chmod 0755 "$dir"

stop() {
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
			as_pg pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap stop EXIT

cd "$dir"
as_pg initdb -D "$dir/data" -U postgres -A trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log"; exit 1; }
as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$dir'
shared_preload_libraries = 'stage'
fsync = off
EOF
if ! as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
	tail -n 40 "$dir/server.log" >&2
	exit 1
fi
as_pg createdb -h "$dir" -p "$PORT" -U postgres "$DB"

rc=0
as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PORT" -U postgres -d "$DB" \
	-f "$dir/demo.sql" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "demo failed; the end of the server log:" >&2
	tail -n 30 "$dir/server.log" >&2
	exit "$rc"
fi

if [ -n "${STAGE_DEMO_KEEP:-}" ]; then
	trap - EXIT
	echo
	echo "The cluster is still running.  Explore it with:"
	echo "  runuser -u postgres -- $PG_BINDIR/psql -h $dir -p $PORT -d $DB"
	echo "Stop it with:"
	echo "  runuser -u postgres -- $PG_BINDIR/pg_ctl -D $dir/data stop && rm -rf $dir"
fi
