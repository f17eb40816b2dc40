#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster for the graph-store tests and export its DSN.
#
#   source scripts/start_test_postgres.sh   # sets MEDRESEARCHER_TEST_POSTGRES_DSN
#
# Sourced by .ci/run, so it never exits the calling shell: every failure returns 1 with a
# line on stderr, and without PostgreSQL binaries it does nothing. Idempotent: a cluster
# this script started earlier (recorded in $MEDRESEARCHER_PG_STATE) is reused while it
# answers. The cluster lives in a temporary folder, listens on 127.0.0.1 at a free port
# (and on a socket in that folder), trusts local connections and holds one database,
# medresearcher_test. Stop it with: pg_ctl -D <folder>/data stop (as the postgres user).

_mr_pg_start() {
    local state="${MEDRESEARCHER_PG_STATE:-${TMPDIR:-/tmp}/medresearcher-test-postgres.env}"
    local bindir="${PG_BINDIR:-}"
    if [ -z "$bindir" ]; then
        for candidate in /usr/lib/postgresql/*/bin; do
            [ -x "$candidate/initdb" ] && bindir="$candidate"
        done
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        echo "start_test_postgres: no PostgreSQL binaries found; the postgresql tests will skip" >&2
        return 1
    fi

    # initdb and postgres refuse to run as root: run them as the postgres user then.
    local -a as_owner=()
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "start_test_postgres: running as root and there is no postgres user" >&2
            return 1
        fi
        as_owner=(runuser -u postgres --)
    fi

    if [ -f "$state" ]; then
        # shellcheck disable=SC1090
        . "$state"
        if [ -n "${MR_PG_PORT:-}" ] && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$MR_PG_PORT"; then
            export MEDRESEARCHER_TEST_POSTGRES_DSN="$MR_PG_DSN"
            echo "start_test_postgres: reusing the cluster in $MR_PG_DIR (port $MR_PG_PORT)" >&2
            return 0
        fi
    fi

    local dir port
    dir="$(mktemp -d "${TMPDIR:-/tmp}/medresearcher-pg.XXXXXX")" || return 1
    chmod 755 "$dir"
    [ ${#as_owner[@]} -gt 0 ] && chown postgres: "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null)"
    [ -n "$port" ] || port=$((20000 + RANDOM % 20000))

    if ! "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        echo "start_test_postgres: initdb failed, see $dir/initdb.log" >&2
        return 1
    fi
    if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off" start >/dev/null; then
        echo "start_test_postgres: the server did not start, see $dir/server.log" >&2
        return 1
    fi
    if ! "${as_owner[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres \
        medresearcher_test; then
        echo "start_test_postgres: createdb failed" >&2
        return 1
    fi
    local dsn="host=127.0.0.1 port=$port dbname=medresearcher_test user=postgres"
    printf 'MR_PG_DIR=%q\nMR_PG_PORT=%q\nMR_PG_DSN=%q\n' "$dir" "$port" "$dsn" >"$state"
    export MEDRESEARCHER_TEST_POSTGRES_DSN="$dsn"
    echo "start_test_postgres: cluster in $dir on 127.0.0.1:$port" >&2
}

_mr_pg_start
_mr_pg_status=$?
unset -f _mr_pg_start
# Sourced: hand the status back without leaving the caller's shell; run: exit with it.
return $_mr_pg_status 2>/dev/null || exit $_mr_pg_status
