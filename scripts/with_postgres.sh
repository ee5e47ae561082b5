#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster:
#
#   bash scripts/with_postgres.sh CMD [ARGS...]
#
# It initdb's a cluster in a fresh temporary directory (trust auth, loopback only, fsync off),
# starts it on a free 127.0.0.1 port with its socket in that directory, creates a database, exports
#   TUNIX_RT_TEST_POSTGRES_URL=postgresql+psycopg://USER@127.0.0.1:PORT/tunix_rt_test
# runs CMD, and always (on success, failure or interrupt) stops the cluster and removes the
# directory, then exits with CMD's status.
#
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as the `postgres` OS user through
# `runuser -u postgres --`; as any other user they run directly as that user.
#
# When PostgreSQL cannot be run here (no initdb/pg_ctl, or root with no `postgres` user) it warns
# and runs CMD without the variable, so the postgres tests skip; TUNIX_RT_REQUIRE_POSTGRES=1 makes
# that an error instead. When TUNIX_RT_TEST_POSTGRES_URL is already set, CMD runs against that
# server and no cluster is started.
#
# Environment: PG_BIN (directory holding initdb and pg_ctl; default: from PATH, else the newest
# /usr/lib/postgresql/*/bin), TUNIX_RT_PG_TMP (parent of the temporary directory; default /tmp,
# short so that the socket path stays under the 107-byte limit).
set -euo pipefail

log() { echo "with_postgres: $*" >&2; }

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [[ -n "${TUNIX_RT_TEST_POSTGRES_URL:-}" ]]; then
    log "TUNIX_RT_TEST_POSTGRES_URL is already set; using that server"
    exec "$@"
fi

# no_postgres REASON CMD...: warns and execs CMD without a server (or fails when one is required).
no_postgres() {
    local reason="$1"
    shift
    if [[ "${TUNIX_RT_REQUIRE_POSTGRES:-0}" == 1 ]]; then
        log "ERROR: $reason (TUNIX_RT_REQUIRE_POSTGRES=1)"
        exit 1
    fi
    log "WARNING: $reason; running without TUNIX_RT_TEST_POSTGRES_URL (postgres tests will skip)"
    exec "$@"
}

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"
        return
    fi
    local initdb
    if initdb="$(command -v initdb)" && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local dir dirs
    mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    for dir in "${dirs[@]}"; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return
        fi
    done
}

PG_BIN="$(find_pg_bin)"
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/pg_ctl" ]]; then
    # `no_postgres` execs CMD (or exits): nothing below runs.
    no_postgres "no PostgreSQL server binaries (initdb, pg_ctl) found" "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
    if ! id -u postgres >/dev/null 2>&1; then
        no_postgres "running as root and there is no 'postgres' OS user to run PostgreSQL" "$@"
    fi
    PG_OS_USER=postgres
    as_pg() { (cd "$PGTMP" && runuser -u postgres -- "$@"); }
else
    PG_OS_USER="$(id -un)"
    as_pg() { (cd "$PGTMP" && "$@"); }
fi

PGTMP="$(mktemp -d "${TUNIX_RT_PG_TMP:-/tmp}/tunix-pg.XXXXXX")"
PGDATA_DIR="$PGTMP/data"
PGLOG="$PGTMP/postgres.log"
started=0

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ "$started" == 1 ]]; then
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1; then
            # pg_ctl could not stop it: kill the postmaster named in its pid file.
            local pid
            pid="$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
            if [[ -n "$pid" ]]; then
                log "pg_ctl stop failed; killing postmaster $pid"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$PGTMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ "$(id -u)" == 0 ]]; then
    chown "$PG_OS_USER" "$PGTMP"
fi
chmod 700 "$PGTMP"

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

if ! as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" --auth=trust --username="$PG_OS_USER" \
    --encoding=UTF8 --locale=C --no-sync >"$PGTMP/initdb.log" 2>&1; then
    cat "$PGTMP/initdb.log" >&2
    log "ERROR: initdb failed"
    exit 1
fi

# The port is free when picked but another process may take it before postgres binds: retry.
for attempt in 1 2 3; do
    PGPORT_PICKED="$(free_port)"
    if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 -o \
        "-p $PGPORT_PICKED -k $PGTMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1; then
        started=1
        break
    fi
    # A postmaster that came up but was not ready within the timeout still has to be stopped.
    if [[ -f "$PGDATA_DIR/postmaster.pid" ]]; then
        started=1
        break
    fi
    log "start on port $PGPORT_PICKED failed (attempt $attempt)"
done
if [[ "$started" != 1 ]] || ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    cat "$PGLOG" >&2 2>/dev/null || true
    log "ERROR: PostgreSQL did not start"
    exit 1
fi

PSQL="$PG_BIN/psql"
[[ -x "$PSQL" ]] || PSQL="$(command -v psql || echo psql)"
DB=tunix_rt_test
if ! as_pg "$PSQL" -X -q -h 127.0.0.1 -p "$PGPORT_PICKED" -U "$PG_OS_USER" -d postgres \
    -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >"$PGTMP/createdb.log" 2>&1; then
    cat "$PGTMP/createdb.log" >&2
    log "ERROR: could not create database $DB"
    exit 1
fi

export TUNIX_RT_TEST_POSTGRES_URL="postgresql+psycopg://$PG_OS_USER@127.0.0.1:$PGPORT_PICKED/$DB"
log "PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') at $TUNIX_RT_TEST_POSTGRES_URL"

# Not exec: the EXIT trap has to stop the cluster after CMD ends. `|| rc=$?` keeps set -e from
# exiting before we record the status.
rc=0
"$@" || rc=$?
exit "$rc"
