#!/usr/bin/env bash
# Before and after a change: POST /v1/host/verify on SQLite, the
# twostep-api of an older commit against the one of the working tree,
# interleaved in one run on one copy of one registry.
#
#   bench/compare.sh REV                 e.g. bench/compare.sh HEAD~1
#   USERS=10000 CONC=1,8,32 REPEAT=3 REQUESTS=2000 bench/compare.sh REV
#   DB=postgres bench/compare.sh REV     on a throwaway PostgreSQL cluster
#
# REV is built in a temporary git worktree with the same target directory
# (dependencies are shared, only the workspace crates are compiled again),
# the working tree's release binaries are built as bench/run.sh builds them.
# Users are enrolled once (by the working tree's registry), then the
# registry is copied so both servers start from the same data (the SQLite
# file, or on PostgreSQL a database made from the first as its template);
# the load generator alternates between them and keeps one step record, so
# no code is used twice. Prints the Markdown table (ratio: REV over the
# working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROOT=$PWD
[ $# -eq 1 ] || { echo "usage: bench/compare.sh REV (a commit, e.g. HEAD~1)" >&2; exit 2; }
REV=$1
OLD=$(git rev-parse --quiet --verify --short "$REV^{commit}") || { echo "bench/compare.sh: no commit $REV" >&2; exit 2; }
USERS=${USERS:-10000}; CONC=${CONC:-1,8,32}; REPEAT=${REPEAT:-3}; REQUESTS=${REQUESTS:-2000}
DB=${DB:-sqlite}
case $DB in sqlite|postgres) ;; *) echo "bench/compare.sh: DB=$DB: DB must be sqlite or postgres" >&2; exit 2 ;; esac
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
for t in jq curl python3; do
    command -v "$t" >/dev/null || { echo "bench/compare.sh: $t missing (apt-get install $t)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/twostep-compare.XXXXXX)
chmod 700 "$W"
PIDS=()
PGDIR=
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    git -C "$ROOT" worktree remove --force "$W/src" 2>/dev/null || true
    if [ -n "$PGDIR" ]; then
        runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" \
            -D "$PGDIR" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PGDIR"
    fi
    rm -rf "$W"
}
trap cleanup EXIT

echo "compare: building $OLD (twostep-api) in a worktree" >&2
git worktree add -q --detach "$W/src" "$OLD"
[ ! -f .cargo/config.toml ] || { mkdir -p "$W/src/.cargo"; cp .cargo/config.toml "$W/src/.cargo/"; }
(cd "$W/src" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p twostep-api --bin twostep-api)
cp "$TARGET/release/twostep-api" "$W/twostep-api-$OLD"
echo "compare: building the working tree" >&2
cargo build --release -q --workspace --bins --lib
NEW_API=$TARGET/release/twostep-api
LOADGEN=$TARGET/release/twostep-loadgen

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
secret() { (umask 077; printf '%s\n' "$2" > "$1"); }
# start BIN DIR [DATABASE]: a registry on DATABASE (a URL; DIR/registry.db
# when not given); sets URL and PID.
start() {
    local port i db=${3:-sqlite://$2/registry.db}
    port=$(free_port)
    registry_config "$2" "$port" "$db"
    RUST_LOG=warn "$1" --config "$2/twostep.toml" > "$2/api.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    URL=http://127.0.0.1:$port
    for i in $(seq 150); do
        curl -sf "$URL/v1/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "compare: twostep-api in $2 did not start:" >&2
    cat "$2/api.log" >&2
    exit 1
}

mkdir -p "$W/new" "$W/old"
NEW_DB=; OLD_DB=; PG_CPU=
if [ "$DB" = postgres ]; then
    PGDIR=$(mktemp -d /tmp/twostep-compare-pg.XXXXXX)
    PGPORT=$(free_port)
    echo "compare: a throwaway PostgreSQL cluster on 127.0.0.1:$PGPORT" >&2
    NEW_DB=$(TWOSTEP_PG_PORT=$PGPORT TWOSTEP_PG_DIR=$PGDIR tests/start-postgres.sh)
    OLD_DB=${NEW_DB%/*}/twostep_old
    PG_CPU=",postgres:$(head -n 1 "$PGDIR/postmaster.pid")+"
fi
secret "$W/new/admin.token" "admin-$(od -An -tx8 -N16 /dev/urandom | tr -d ' \n')"
start "$NEW_API" "$W/new" "$NEW_DB"
key=$(curl -sf -X POST "$URL/v1/admin/hosts" -H "Authorization: Bearer $(cat "$W/new/admin.token")" \
    -H 'Content-Type: application/json' -d '{"name":"bench","kind":"radius"}' | jq -r .api_key)
secret "$W/host.key" "$key"
"$LOADGEN" enrol --url "$URL" --admin-token-file "$W/new/admin.token" --count "$USERS" \
    --concurrency 8 --out "$W/users.csv" --json "$W/enrol.jsonl" >&2
kill "$PID"; wait "$PID" 2>/dev/null || true
if [ "$DB" = postgres ]; then
    (umask 077; cp -a "$W/new/secret.key" "$W/new/admin.token" "$W/old/")
    psql -q "${NEW_DB%/*}/postgres" -c "CREATE DATABASE twostep_old TEMPLATE ${NEW_DB##*/}" >&2
else
    (umask 077; cp -a "$W/new/secret.key" "$W/new/admin.token" "$W"/new/registry.db* "$W/old/")
fi

start "$W/twostep-api-$OLD" "$W/old" "$OLD_DB"; OLD_URL=$URL; OLD_PID=$PID
start "$NEW_API" "$W/new" "$NEW_DB"; NEW_URL=$URL; NEW_PID=$PID
"$LOADGEN" http --target "$OLD=$OLD_URL" --target "working tree=$NEW_URL" --host-key-file "$W/host.key" \
    --users "$W/users.csv" --pids "$OLD=api:$OLD_PID$PG_CPU,machine:machine" \
    --pids "working tree=api:$NEW_PID$PG_CPU,machine:machine" \
    --concurrency "$CONC" --repeat "$REPEAT" --requests "$REQUESTS" --max-seconds 8 \
    --state "$W/steps.json" --json "$W/http.jsonl" --markdown "$W/http.md" >&2
echo "POST /v1/host/verify, $DB, $USERS users, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
cat "$W/http.md"
