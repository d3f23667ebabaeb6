#!/usr/bin/env bash
# private_install.sh DIR: a private PostgreSQL 15 installation with this
# tree's stage in it, so that test, benchmark and demo runs never load each
# other's stage.so (nor change the system's PostgreSQL).
#
# The system installation (bin, lib, share: server, contrib, pgTAP,
# pg_cron) is copied under DIR with the same layout, as `make install
# DESTDIR=DIR` would place it; PostgreSQL finds its share and lib
# directories relative to its own binary, so DIR/usr/lib/postgresql/15/bin
# runs as a self-contained installation.  Then stage is built and installed
# into it.  Prints the private bin directory on its last line.
set -euo pipefail

dir=${1:?usage: private_install.sh DIR}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bindir=$("$PG_CONFIG" --bindir)
pgroot=$(dirname "$bindir")            # /usr/lib/postgresql/15
sharedir=$("$PG_CONFIG" --sharedir)    # /usr/share/postgresql/15

mkdir -p "$dir$pgroot" "$dir$sharedir"
cp -a "$pgroot/." "$dir$pgroot/"
cp -a "$sharedir/." "$dir$sharedir/"
# pg_config reports the system paths; make install DESTDIR puts stage's
# files at the same paths under DIR
make -s -C "$repo" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
make -s -C "$repo" PG_CONFIG="$PG_CONFIG" install DESTDIR="$dir" >/dev/null
echo "$dir$bindir"
