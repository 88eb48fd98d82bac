#!/usr/bin/env bash
# Runs reco's whole test suite: formatting, lints and every test against a real PostgreSQL and real
# SQLite files.
#
# PostgreSQL, in order of preference:
#   1. $RECO_TEST_DATABASE_URL, if set;
#   2. the server on 127.0.0.1:5432 (user postgres, trust auth), if it answers;
#   3. a private cluster started here under a temp dir with initdb/pg_ctl (PostgreSQL is installed
#      from Debian's packages first when its binaries are missing and we are root), stopped on exit.
#      RECO_TEST_PRIVATE_PG=1 forces this even when 127.0.0.1:5432 answers.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_answers() {
  command -v psql >/dev/null 2>&1 || return 1
  PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

ensure_postgres_installed() {
  pg_bin_dir >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin_dir >/dev/null || { log "PostgreSQL binaries (initdb, pg_ctl) not found; install PostgreSQL or set RECO_TEST_DATABASE_URL"; exit 1; }
}

start_private_cluster() {
  ensure_postgres_installed
  # Globals, not locals: the EXIT trap uses them after this function returns.
  run_as=()
  bin=$(pg_bin_dir)
  dir=$(mktemp -d /tmp/reco-test-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the cluster as the postgres system user.
    id postgres >/dev/null 2>&1 || useradd --system --home "$dir" postgres
    chown -R postgres "$dir"
    run_as=(runuser -u postgres --)
  fi
  log "starting a private PostgreSQL on 127.0.0.1:$port ($dir)"
  "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  trap '"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  export RECO_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ -z "${RECO_TEST_DATABASE_URL:-}" ]; then
  if [ "${RECO_TEST_PRIVATE_PG:-0}" != 1 ] && pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    export RECO_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    start_private_cluster
  fi
fi
log "PostgreSQL for tests: $RECO_TEST_DATABASE_URL"

# Tools some tests drive, from Debian's packages when we are root (each test skips with a notice
# when its tool is missing): tmux (`reco monitor`'s live view), wrk (load tests), pgbouncer
# (pooler tests), chromium (the dashboard in a browser).
missing=()
for tool in tmux:tmux wrk:wrk pgbouncer:pgbouncer chromium:chromium; do
  cmd=${tool%%:*}; pkg=${tool##*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing from Debian's packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || log "could not install ${missing[*]}"
fi
# PostgreSQL and PgBouncer refuse to run as root: tests start them as the postgres system user.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /nonexistent --shell /usr/sbin/nologin postgres
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets "$@"

# The Python client (clients/python) against a real reco server: pytest in a venv made here (the
# client itself needs only the standard library; pytest comes from PyPI).
venv=target/py-venv
if [ ! -x "$venv/bin/pytest" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing python3-venv from Debian's packages"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q -e 'clients/python[test]'
fi
cargo build --locked -q
RECO_BIN="$PWD/target/debug/reco" "$venv/bin/python" -m pytest -q -p no:cacheprovider clients/python
