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
# It also accepts TLS, with a certificate for localhost/127.0.0.1 from a throwaway CA in
# $SIGHTLINE_PG_DIR/tls/ca.pem (for the TLS tests: ...?sslmode=verify-full&sslrootcert=...).
set -euo pipefail

dir="${SIGHTLINE_PG_DIR:-/tmp/sightline-pg}"
port="${SIGHTLINE_PG_PORT:-55432}"
url="postgres://sightline@127.0.0.1:${port}/postgres"

bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

missing=()
[ -n "$(bin)" ] || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
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
tls="$dir/tls"
if [ ! -f "$tls/server.crt" ]; then
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=sightline test database CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
        -extfile "$tls/ext" -out "$tls/server.crt" 2>/dev/null
    chmod 600 "$tls/server.key" "$tls/ca.key"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls"; fi
    chmod 644 "$tls/ca.pem"
fi
as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 -c shared_buffers=512MB -c shared_preload_libraries=pg_stat_statements -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key" >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
echo "$url"
