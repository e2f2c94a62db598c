#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for tests and benchmarks (loopback only) unless one is
# already answering there, and prints its URL. Installs Debian's postgresql when missing.
#
#   export SIGHTLINE_TEST_POSTGRES="$(scripts/postgres.sh)"
#   scripts/postgres.sh stop
#
# SIGHTLINE_PG_DIR (default /tmp/sightline-pg) and SIGHTLINE_PG_PORT (default 55432) choose
# where. The cluster uses the C locale, so text sorts as SQLite sorts it, and trust
# authentication on 127.0.0.1: it is for tests on this machine, not for production.
set -euo pipefail

dir="${SIGHTLINE_PG_DIR:-/tmp/sightline-pg}"
port="${SIGHTLINE_PG_PORT:-55432}"
url="postgres://sightline@127.0.0.1:${port}/postgres"

bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(bin)" ]; then
    echo "installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
pgbin="$(bin)"

# PostgreSQL refuses to run as root: run it as the postgres account then.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    exit 0
fi

if "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$url"
    exit 0
fi

mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$pgbin/initdb" -D "$dir/data" -U sightline -A trust --locale=C -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
fi
as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 -c shared_buffers=512MB -c shared_preload_libraries=pg_stat_statements" >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
echo "$url"
