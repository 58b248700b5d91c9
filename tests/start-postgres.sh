#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 (port 54329 unless
# TWOSTEP_PG_PORT is set) and prints the database URL for the tests.
# Safe to run twice: a running cluster is reused.
set -euo pipefail
port=${TWOSTEP_PG_PORT:-54329}
dir=${TWOSTEP_PG_DIR:-/tmp/twostep-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
run() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! run "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    run "$bindir/initdb" -D "$dir" -A trust -U postgres >/dev/null
  fi
  run "$bindir/pg_ctl" -D "$dir" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp -c max_connections=200" start >/dev/null
fi
run "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='twostep_test'" | grep -q 1 ||
  run "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres twostep_test
echo "postgres://postgres@127.0.0.1:$port/twostep_test"
