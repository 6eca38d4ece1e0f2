# Sourced by scripts/test.sh; also usable by hand:
#   source scripts/postgres.sh && start_postgres && cargo test -p store-postgres
# Installs Debian's postgresql if missing, creates a throwaway cluster (initdb, as the
# `postgres` user) in a temporary folder, starts it on a free loopback port, exports
# HERALD_TEST_DATABASE_URL (a superuser on the `postgres` database: the tests create a
# database of their own for each run) and HERALD_TEST_PG_BIN (for the outage test, which
# runs a server of its own to stop and start), and stops it and removes the folder with
# stop_postgres.

start_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "== installing postgresql"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  PG_BIN="$bin"
  PG_DIR="$(mktemp -d -t herald-postgres.XXXXXX)"
  chmod 755 "$PG_DIR"
  # initdb and the server refuse to run as root: the cluster belongs to `postgres`.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    echo "initdb failed" >&2
    exit 1
  }
  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    if "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null; then
      PG_PORT="$port"
      export HERALD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
      # The binaries, for the outage test, which runs a server of its own to stop.
      export HERALD_TEST_PG_BIN="$PG_BIN"
      echo "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
      return
    fi
    echo "PostgreSQL did not start (attempt $attempt):" >&2
    cat "$PG_DIR/server.log" >&2 || true
  done
  echo "PostgreSQL did not start" >&2
  exit 1
}

stop_postgres() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    local as=()
    [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
    "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

declare -F free_port >/dev/null || free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
