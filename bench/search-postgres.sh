#!/usr/bin/env bash
# Installs (if missing) and starts a private PostgreSQL cluster for
# `cargo bench --bench search`, then prints the connection string to export as
# SEALTRAIL_PG. The cluster lives in a temporary directory, listens on a free
# local port and runs as the `postgres` user when started by root.
#
#   bash bench/search-postgres.sh            # start; prints SEALTRAIL_PG=...
#   bash bench/search-postgres.sh stop DIR   # stop the cluster in DIR
#
# Settings are PostgreSQL's defaults except shared_buffers (25% of RAM, as a
# practice's tuned server would have), work_mem, maintenance_work_mem (index
# builds) and a larger max_wal_size (bulk load).
set -euo pipefail

if [[ "${1:-}" == "stop" ]]; then
    dir="${2:?usage: search-postgres.sh stop DIR}"
    bin="$(cat "$dir/bindir")"
    if [[ $(id -u) -eq 0 ]]; then
        su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -m fast stop"
    else
        "$bin/pg_ctl" -D "$dir/data" -m fast stop
    fi
    rm -rf "$dir"
    exit 0
fi

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 &&
        { dirname "$(command -v initdb)"; return 0; }
    return 1
}

if ! bin="$(find_bin)"; then
    echo "installing PostgreSQL..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
    bin="$(find_bin)"
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)"
dir="$(mktemp -d /tmp/sealtrail-pg.XXXXXX)"
echo "$bin" >"$dir/bindir"
chmod 755 "$dir"

mem_kb="$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
shared_mb=$((mem_kb / 1024 / 4))

run() {
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

run "'$bin/initdb' -D '$dir/data' -U postgres -A trust -E UTF8 --locale=C.UTF-8 >'$dir/initdb.log'"
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_buffers = ${shared_mb}MB
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 8GB
CONF
run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w start >/dev/null"
version="$("$bin/postgres" --version)"
echo "$version running in $dir on port $port (stop: bash bench/search-postgres.sh stop $dir)" >&2
echo "SEALTRAIL_PG=postgresql://postgres@127.0.0.1:$port/postgres"
