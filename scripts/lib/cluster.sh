# shellcheck shell=bash
# cluster.sh: the throwaway PostgreSQL 15 cluster of the benchmarks
# (scripts/bench.sh, scripts/latency.sh).  Sourced, not run: it defines
# functions and the defaults below, and runs nothing by itself.
#
# The caller sets CLUSTER_NAME (its name in messages and in the temp dir
# /tmp/stage-NAME.XXXXXX), sources this file from the repository's root,
# and then calls, in this order:
#
#   die MESSAGE           "NAME: MESSAGE" on stderr, exit 1 (usable at once)
#   cluster_create PORT_VAR KEEP_VAR
#                         the names of the caller's variables that hold the
#                         port and the keep flag; refuses to run but as root (it installs the
#                         extension and runs the server as postgres);
#                         scripts/deps.sh; refuses a port in use; makes the
#                         temp dir TMPD and sets the exit trap; builds stage
#                         and installs it privately in TMPD/install
#                         (scripts/private_install.sh), which sets
#                         PG_BINDIR; PGDATA is TMPD/data.  A keep flag of
#                         1 keeps TMPD at the exit.
#   cluster_initdb [ARGS] initdb as postgres (UTF8, C.UTF-8, trust), ARGS
#                         added (e.g. --no-sync)
#   cluster_configure     appends port, listen_addresses = '' and the socket
#                         directory TMPD to postgresql.conf, then the
#                         settings on its standard input
#   cluster_start         starts the server (log in TMPD/server.log)
#   cluster_psql ARGS     psql as the superuser postgres, ON_ERROR_STOP
#
# At the exit, whatever the cause: cluster_before_stop if the caller
# defined it (to end what it started beside the server), a fast stop of
# the server, on failure the last 30 lines of the server log, and TMPD
# removed (or kept and named).

PG_BINDIR=/usr/lib/postgresql/15/bin
# shellcheck disable=SC2034 # an exported PG_CONFIG is reset to this for scripts/private_install.sh
PG_CONFIG="$PG_BINDIR/pg_config"
CLUSTER_PORT=
CLUSTER_KEEP=0
CLUSTER_STARTED=0
TMPD=
PGDATA=

die() { echo "$CLUSTER_NAME: $*" >&2; exit 1; }

cluster_create() {
	local port_var=$1
	CLUSTER_PORT=${!1}
	CLUSTER_KEEP=${!2}
	[ "$(id -u)" -eq 0 ] || die "run as root (it installs the extension and runs the server as postgres)"
	if [ -x scripts/deps.sh ]; then
		scripts/deps.sh
	else
		echo "$CLUSTER_NAME: scripts/deps.sh not found, assuming dependencies are installed"
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$CLUSTER_PORT") 2>/dev/null; then
		die "port $CLUSTER_PORT is in use; set $port_var"
	fi
	TMPD="$(mktemp -d "/tmp/stage-$CLUSTER_NAME.XXXXXX")"
	trap cluster_cleanup EXIT
	trap 'exit 130' INT TERM
	echo "$CLUSTER_NAME: building stage and installing it privately in $TMPD/install"
	PG_BINDIR=$(scripts/private_install.sh "$TMPD/install" | tail -n 1)
	chown -R postgres: "$TMPD"
	chmod 700 "$TMPD"
	PGDATA="$TMPD/data"
}

cluster_cleanup() {
	local rc=$?
	if declare -F cluster_before_stop >/dev/null; then
		cluster_before_stop
	fi
	if [ "$CLUSTER_STARTED" = 1 ]; then
		runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$TMPD/server.log" ]; then
		echo "$CLUSTER_NAME: last lines of the server log:" >&2
		tail -n 30 "$TMPD/server.log" >&2 || true
	fi
	if [ "$CLUSTER_KEEP" = 1 ]; then
		echo "$CLUSTER_NAME: kept $TMPD"
	else
		rm -rf "$TMPD"
	fi
	exit "$rc"
}

cluster_initdb() {
	runuser -u postgres -- "$PG_BINDIR/initdb" -D "$PGDATA" -U postgres -A trust \
		-E UTF8 --locale=C.UTF-8 "$@" >"$TMPD/initdb.log" 2>&1 \
		|| { cat "$TMPD/initdb.log" >&2; die "initdb failed"; }
}

cluster_configure() {
	{
		echo "port = $CLUSTER_PORT"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$TMPD'"
		cat
	} >>"$PGDATA/postgresql.conf"
}

cluster_start() {
	runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$TMPD/server.log" -w -t 60 start >/dev/null \
		|| die "server did not start"
	CLUSTER_STARTED=1
}

cluster_psql() {
	"$PG_BINDIR/psql" -X -q -h "$TMPD" -p "$CLUSTER_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}
