#!/usr/bin/env bash
# Start the database servers the test suite uses: MariaDB on 127.0.0.1:3307 and
# PostgreSQL 15 on 127.0.0.1:5433, each with a `katib` database.
#
# Usage (as root, on a fresh machine or again later: every step is idempotent):
#     eval "$(.ci/services.sh)"          # exports KATIB_TEST_MYSQL_URL / KATIB_TEST_POSTGRES_URL
# or  .ci/services.sh && . "${KATIB_SERVICES_DIR:-/tmp/katib-services}/env.sh"
# Stop them:  .ci/services.sh stop
#
# Only the `export ...` lines go to stdout; progress goes to stderr.
set -euo pipefail

STATE="${KATIB_SERVICES_DIR:-/tmp/katib-services}"
MYSQL_PORT="${KATIB_MYSQL_PORT:-3307}"
PG_PORT="${KATIB_PG_PORT:-5433}"
PG_BIN="${KATIB_PG_BIN:-/usr/lib/postgresql/15/bin}"
MY_DIR="$STATE/mariadb"
PG_DIR="$STATE/pg/data"
PG_SOCK="$STATE/pg/sock"
MYSQL_URL="mysql://katib:katib@127.0.0.1:$MYSQL_PORT/katib"
PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/katib"

log() { echo "services.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs PostgreSQL as the postgres user)"
export PATH="$PATH:/usr/sbin:/sbin"

as_postgres() {
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
}

wait_for() {  # wait_for <seconds> <what> <command...>
    local secs=$1 what=$2; shift 2
    for _ in $(seq "$((secs * 5))"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what did not come up in ${secs}s"
}

stop_all() {
    if [ -f "$MY_DIR/pid" ] && kill -0 "$(cat "$MY_DIR/pid")" 2>/dev/null; then
        local pid; pid="$(cat "$MY_DIR/pid")"
        log "stopping MariaDB (pid $pid)"
        kill "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    if [ -f "$PG_DIR/postmaster.pid" ]; then
        log "stopping PostgreSQL"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w stop >&2 || true
    fi
}

install_mariadb() {
    if command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null; then return; fi
    log "installing mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's own service start fails harmlessly without an init system; we start our own.
    apt-get install -y -qq mariadb-server >&2
    command -v mariadbd >/dev/null || die "mariadbd not found after installing mariadb-server"
}

mariadb_sql() { mariadb --no-defaults -uroot --socket="$MY_DIR/sock" -e "$1"; }

start_mariadb() {
    mkdir -p "$MY_DIR/data"
    if mariadb_sql "SELECT 1" >/dev/null 2>&1; then
        log "MariaDB already running on port $MYSQL_PORT"
    else
        if [ ! -d "$MY_DIR/data/mysql" ]; then
            log "initialising MariaDB in $MY_DIR/data"
            mariadb-install-db --no-defaults --user=root --datadir="$MY_DIR/data" \
                --skip-test-db >"$MY_DIR/install.log" 2>&1 \
                || { cat "$MY_DIR/install.log" >&2; die "mariadb-install-db failed"; }
        fi
        log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
        setsid mariadbd --no-defaults --user=root --datadir="$MY_DIR/data" \
            --socket="$MY_DIR/sock" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
            --pid-file="$MY_DIR/pid" --log-error="$MY_DIR/error.log" \
            </dev/null >/dev/null 2>&1 &
        wait_for 60 "MariaDB" mariadb_sql "SELECT 1" \
            || { tail -20 "$MY_DIR/error.log" >&2; exit 1; }
    fi
    # Root logs in through the socket (unix_socket auth); tests use a password user over TCP.
    mariadb_sql "CREATE DATABASE IF NOT EXISTS katib CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'katib'@'127.0.0.1' IDENTIFIED BY 'katib';
        CREATE USER IF NOT EXISTS 'katib'@'localhost' IDENTIFIED BY 'katib';
        GRANT ALL PRIVILEGES ON *.* TO 'katib'@'127.0.0.1';
        GRANT ALL PRIVILEGES ON *.* TO 'katib'@'localhost';
        FLUSH PRIVILEGES;"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
    [ -x "$PG_BIN/postgres" ] || die "PostgreSQL binaries not found in $PG_BIN"
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (install postgresql-15)"
    mkdir -p "$PG_DIR" "$PG_SOCK"
    chown postgres: "$STATE/pg" "$PG_DIR" "$PG_SOCK"
    chmod 700 "$PG_DIR"
    if pg_ready; then
        log "PostgreSQL already running on port $PG_PORT"
    else
        if [ ! -f "$PG_DIR/PG_VERSION" ]; then
            log "initialising PostgreSQL in $PG_DIR"
            as_postgres "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U postgres >"$STATE/pg/initdb.log" 2>&1 \
                || { cat "$STATE/pg/initdb.log" >&2; die "initdb failed"; }
        fi
        rm -f "$PG_DIR/postmaster.pid"  # stale after a machine restart; pg_isready said nobody listens
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$STATE/pg/server.log" -w -t 60 \
            -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1" start >&2 \
            || { tail -20 "$STATE/pg/server.log" >&2; die "PostgreSQL did not start"; }
        wait_for 30 "PostgreSQL" pg_ready
    fi
    local psql="$PG_BIN/psql"
    if [ "$("$psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
            "SELECT 1 FROM pg_database WHERE datname = 'katib'" postgres)" != 1 ]; then
        "$psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE katib" postgres >&2
    fi
}

main() {
    mkdir -p "$STATE"
    if [ "${1:-}" = stop ]; then stop_all; return; fi
    install_mariadb
    start_mariadb
    start_postgres
    {
        echo "export KATIB_TEST_MYSQL_URL=$MYSQL_URL"
        echo "export KATIB_TEST_POSTGRES_URL=$PG_URL"
    } >"$STATE/env.sh"
    log "ready; environment written to $STATE/env.sh"
    cat "$STATE/env.sh"
}

main "$@"
