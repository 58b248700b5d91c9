#!/usr/bin/env bash
# twostep's benchmark suite, one command: builds the release binaries,
# starts everything on 127.0.0.1 in a temporary directory, and measures
#
#   1. enrolment over REST (users + TOTP per second);
#   2. RADIUS PAP + TOTP end to end, twostep-radiusd (mode "otp-only") in
#      front of twostep-api on SQLite, against FreeRADIUS 3.2 with rlm_totp
#      holding the same secrets, interleaved, at 1/8/32/128 in flight;
#   3. POST /v1/host/verify on the registry alone, keep-alive;
#   4. PAM: pamtester with a code, pam_twostep vs pam_google_authenticator
#      vs a pam_permit floor (hyperfine);
#   5. cargo bench (criterion) for the hot functions;
#
# then writes the figures into bench/README.md (between the markers).
#
#   bench/run.sh            full counts (about 10 minutes)
#   bench/run.sh --smoke    tiny counts, checks the suite works (README untouched
#                           unless --write is given too)
#   bench/run.sh --only pam one part, its tables printed, README untouched:
#                           radius (RADIUS, the SQLite registry alone, pending
#                           requests), pg, pam or criterion; a comma list for more
#   BENCH_KEEP=1            keep the temporary directory (configs, logs)
#
# Every request uses a fresh (user, TOTP step): see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROOT=$PWD
SMOKE=0
WRITE=1
ONLY=
next_only=0
for a in "$@"; do
    if [ "$next_only" = 1 ]; then
        ONLY=$a; next_only=0; WRITE=0
        [ -n "${ONLY//,/}" ] || { echo "bench/run.sh: --only needs a part (radius, pg, pam, criterion)" >&2; exit 2; }
        for part in ${ONLY//,/ }; do
            case $part in
                radius|pg|pam|criterion) ;;
                *) echo "bench/run.sh: --only $part: one of radius, pg, pam, criterion" >&2; exit 2 ;;
            esac
        done
        continue
    fi
    case $a in
        --smoke) SMOKE=1; WRITE=0 ;;
        --write) WRITE=1 ;;
        --only) next_only=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done
[ "$next_only" = 0 ] || { echo "bench/run.sh: --only needs a part (radius, pg, pam, criterion)" >&2; exit 2; }
# want PART: whether this run measures PART.
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
START=$SECONDS
log() { echo "bench: [$(( SECONDS - START )) s] $*" >&2; }

if [ "$SMOKE" = 1 ]; then
    USERS=200; RAD_REQUESTS=40; RAD_CONC=1,8; RAD_REPEAT=1
    HTTP_REQUESTS=40; HTTP_CONC=1,8; HTTP_REPEAT=1
    PAM_POOL=12; PAM_RUNS=3; PAM_WARMUP=1; PAM_REPEAT=1
    SMALL_USERS=0
    PG_USERS=100; PG_REQUESTS=20; PG_CONC=8; PG_REPEAT=1
    PENDING=${BENCH_PENDING:-300}; PEND_DELAY=${BENCH_PEND_DELAY:-4}; PEND_REQUESTS=20; PEND_REPEAT=1
else
    USERS=10000; RAD_REQUESTS=2000; RAD_CONC=1,8,32,128; RAD_REPEAT=3
    HTTP_REQUESTS=2000; HTTP_CONC=1,8,32; HTTP_REPEAT=3
    PAM_POOL=150; PAM_RUNS=10; PAM_WARMUP=1; PAM_REPEAT=12
    SMALL_USERS=1000
    PG_USERS=10000; PG_REQUESTS=2000; PG_CONC=1,8,32; PG_REPEAT=2
    PENDING=10000; PEND_DELAY=20; PEND_REQUESTS=200; PEND_REPEAT=3
fi
RUN_LIMIT=${BENCH_RUN_LIMIT:-8}   # seconds, longest single load run

# --- tools -----------------------------------------------------------------
need=()
command -v freeradius >/dev/null || need+=(freeradius)
command -v radclient >/dev/null || need+=(freeradius-utils)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v pamtester >/dev/null || need+=(pamtester)
command -v oathtool >/dev/null || need+=(oathtool)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
[ -e /lib/x86_64-linux-gnu/security/pam_google_authenticator.so ] || need+=(libpam-google-authenticator)
[ -e /usr/lib/x86_64-linux-gnu/libpam_wrapper.so ] || need+=(libpam-wrapper)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi
GA_SO=/lib/x86_64-linux-gnu/security/pam_google_authenticator.so
[ -e /usr/lib/freeradius/rlm_totp.so ] || { echo "bench: rlm_totp.so missing (FreeRADIUS >= 3.2)" >&2; exit 1; }

# --- build -----------------------------------------------------------------
log "cargo build --release --workspace --bins --lib"
cargo build --release --workspace --bins --lib -q
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/release
LOADGEN=$BIN/twostep-loadgen

# --- scratch space, processes, cleanup ---------------------------------------
W=$(mktemp -d /tmp/twostep-bench.XXXXXX)
chmod 700 "$W"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
free_port() { # $1: tcp|udp
    python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1]=='tcp' else socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}
secret() { (umask 077; printf '%s\n' "$2" > "$1"); }
wait_for() { # $1: what, $2: command; at most 15 s
    local i
    for i in $(seq 150); do
        if eval "$2" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "bench: $1 did not start" >&2
    return 1
}

UPTIME_BEFORE=$(uptime)
MACHINE="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GB RAM, $(uname -sr)"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
log "machine: $MACHINE; load: $UPTIME_BEFORE"

# --- registry --------------------------------------------------------------
# start_registry DIR [DATABASE_URL [LIKE_DIR]]: twostep-api in DIR, on
# SQLite in DIR by default; LIKE_DIR: a registry on the same database whose
# secret key and admin token this one shares. Sets API_URL, API_PID.
start_registry() {
    local d=$1 db=${2:-sqlite://$1/registry.db} like=${3:-} port
    mkdir -p "$d"
    port=$(free_port tcp)
    if [ -n "$like" ]; then
        (umask 077; cp "$like/secret.key" "$like/admin.token" "$d/")
    else
        secret "$d/admin.token" "admin-$(od -An -tx8 -N16 /dev/urandom | tr -d ' \n')"
    fi
    registry_config "$d" "$port" "$db"
    RUST_LOG=warn "$BIN/twostep-api" --config "$d/twostep.toml" > "$d/api.log" 2>&1 &
    API_PID=$!
    PIDS+=("$API_PID")
    API_URL=http://127.0.0.1:$port
    wait_for twostep-api "curl -sf $API_URL/v1/health"
}
# add_host DIR NAME KIND: writes DIR/host-NAME.key.
add_host() {
    local key
    key=$(curl -sf -X POST "$API_URL/v1/admin/hosts" \
        -H "Authorization: Bearer $(cat "$1/admin.token")" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$2\",\"kind\":\"$3\"}" | jq -r .api_key)
    secret "$1/host-$2.key" "$key"
}

# --- FreeRADIUS with rlm_totp ------------------------------------------------
# start_freeradius DIR USERS_CSV SECRET: sets FR_PORT, FR_PID.
start_freeradius() {
    local d=$1 users=$2 sec=$3
    mkdir -p "$d"
    FR_PORT=$(free_port udp)
    cat > "$d/radiusd.conf" <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = $d
raddbdir = $d
radacctdir = $d
name = freeradius
confdir = $d
modconfdir = $d
run_dir = $d
db_dir = $d
libdir = /usr/lib/freeradius
pidfile = $d/freeradius.pid
max_request_time = 30
cleanup_delay = 0
max_requests = 65536
hostname_lookups = no
log {
  destination = files
  file = $d/radius.log
  auth = no
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}
thread pool {
  start_servers = 4
  max_servers = 32
  min_spare_servers = 2
  max_spare_servers = 8
  max_requests_per_server = 0
}
client bench {
  ipaddr = 127.0.0.1
  secret = $sec
  require_message_authenticator = yes
}
modules {
  files {
    filename = $d/users
  }
  totp {
  }
}
server default {
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = $FR_PORT
  }
  authorize {
    files
    update request {
      &TOTP-Password := &User-Password
    }
    update control {
      &Auth-Type := totp
    }
  }
  authenticate {
    Auth-Type totp {
      totp
    }
  }
}
EOF
    : > "$d/dictionary"
    # One users entry per user: its base32 secret as control:TOTP-Secret.
    awk -F, '{ printf "%s TOTP-Secret := \"%s\"\n\n", $1, $2 }' "$users" > "$d/users"
    freeradius -f -d "$d" > "$d/stdout.log" 2>&1 &
    FR_PID=$!
    PIDS+=("$FR_PID")
    wait_for freeradius "grep -q 'Ready to process requests' $d/radius.log"
}

# --- twostep-radiusd --------------------------------------------------------
# start_radiusd DIR REGDIR SECRET [REGISTRY_URL [MAX_IN_FLIGHT]]: sets
# RD_PORT, RD_PID.
start_radiusd() {
    local d=$1 reg=$2 sec=$3 url=${4:-$API_URL} inflight=${5:-1024}
    mkdir -p "$d"
    RD_PORT=$(free_port udp)
    secret "$d/state.key" "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
    secret "$d/client.secret" "$sec"
    cat > "$d/radiusd.toml" <<EOF
version = 1

[registry]
url = "$url"
api_key_file = "$reg/host-radius-bench.key"
timeout = 60

[radius]
listen = "127.0.0.1:$RD_PORT"
state_key_file = "$d/state.key"
max_in_flight = $inflight

[[radius.client]]
name = "bench"
address = "127.0.0.1/32"
secret_file = "$d/client.secret"
mode = "otp-only"
require_message_authenticator = true
EOF
    RUST_LOG=warn "$BIN/twostep-radiusd" --config "$d/radiusd.toml" > "$d/radiusd.log" 2>&1 &
    RD_PID=$!
    PIDS+=("$RD_PID")
    wait_for twostep-radiusd "echo 'Message-Authenticator = 0x00' | radclient -t 1 -r 1 127.0.0.1:$RD_PORT status '$sec' || grep -q 'listening on' $d/radiusd.log"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

RES=$W/results
mkdir -p "$RES"
RADSECRET=bench-$(od -An -tx8 -N8 /dev/urandom | tr -d ' \n')

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# radius_population N LABEL REQUESTS CONC REPEAT HTTP PENDING: one registry with N users,
# one FreeRADIUS with the same secrets; interleaved RADIUS runs; for the
# main population also the registry's HTTP runs.
radius_population() {
    local n=$1 label=$2 req=$3 conc=$4 rep=$5 http=$6 pending=${7:-0}
    local d=$W/$label
    start_registry "$d/reg"
    add_host "$d/reg" radius-bench radius
    log "$label: enrolling $n users"
    "$LOADGEN" enrol --url "$API_URL" --admin-token-file "$d/reg/admin.token" \
        --count "$n" --concurrency 8 --out "$d/users.csv" --json "$RES/enrol-$label.jsonl"
    start_radiusd "$d/rd" "$d/reg" "$RADSECRET"
    start_freeradius "$d/fr" "$d/users.csv" "$RADSECRET"
    secret "$d/radius.secret" "$RADSECRET"
    log "$label: RADIUS, $req requests per run, in flight $conc, $rep repetitions"
    "$LOADGEN" radius --users "$d/users.csv" --secret-file "$d/radius.secret" \
        --target "twostep=127.0.0.1:$RD_PORT" --target "freeradius=127.0.0.1:$FR_PORT" \
        --pids "twostep=radiusd:$RD_PID,api:$API_PID,machine:machine" --pids "freeradius=freeradius:$FR_PID,machine:machine" \
        --concurrency "$conc" --repeat "$rep" --requests "$req" --max-seconds "$RUN_LIMIT" \
        --state "$d/steps.json" --json "$RES/radius-$label.jsonl" --markdown "$RES/radius-$label.md" >&2
    if [ "$http" = 1 ]; then
        log "$label: POST /v1/host/verify, $HTTP_REQUESTS requests per run, in flight $HTTP_CONC"
        # Same registry and users as the twostep RADIUS runs: the step state
        # (--name twostep) carries over, so no code is used twice.
        "$LOADGEN" http --target "twostep=$API_URL" --host-key-file "$d/reg/host-radius-bench.key" --state-name twostep \
            --users "$d/users.csv" --pids "twostep=api:$API_PID,machine:machine" \
            --concurrency "$HTTP_CONC" --repeat "$HTTP_REPEAT" --requests "$HTTP_REQUESTS" \
            --max-seconds "$RUN_LIMIT" --state "$d/steps.json" \
            --json "$RES/http-$label.jsonl" --markdown "$RES/http-$label.md" >&2
    fi
    stop_pid "$FR_PID"; stop_pid "$RD_PID"
    if [ "$pending" -gt 0 ]; then
        # Pending requests: a second twostep-radiusd whose registry calls for
        # users "slow-NNNNN" are held $PEND_DELAY s by a proxy (then answered
        # 503), while the enrolled users log in with codes through it.
        local px_port px_pid hold_pid rss0 rss1 rss2 hwm
        px_port=$(free_port tcp)
        "$LOADGEN" slow-proxy --listen "127.0.0.1:$px_port" --upstream "${API_URL#http://}" \
            --marker slow- --delay "$PEND_DELAY" > "$d/proxy.log" 2>&1 &
        px_pid=$!
        PIDS+=("$px_pid")
        wait_for proxy "curl -sf http://127.0.0.1:$px_port/v1/health"
        start_radiusd "$d/rdp" "$d/reg" "$RADSECRET" "http://127.0.0.1:$px_port" $(( pending + 1024 ))
        log "$label: $pending pending requests held $PEND_DELAY s, code logins meanwhile"
        rss0=$(rss_kib "$RD_PID" VmRSS)
        # Start with a new TOTP step, so that the enrolled users have fresh
        # codes for the logins while the others are pending.
        sleep "$(( 30 - $(date +%s) % 30 ))"
        "$LOADGEN" hold --target "127.0.0.1:$RD_PORT" --secret-file "$d/radius.secret" \
            --count "$pending" --prefix slow- --wait $(( PEND_DELAY + 30 )) > "$RES/hold.json" &
        hold_pid=$!
        sleep 4
        rss1=$(rss_kib "$RD_PID" VmRSS)
        "$LOADGEN" radius --users "$d/users.csv" --secret-file "$d/radius.secret" \
            --target "twostep=127.0.0.1:$RD_PORT" --pids "twostep=radiusd:$RD_PID,api:$API_PID,machine:machine" \
            --concurrency 8 --repeat "$PEND_REPEAT" --requests "$PEND_REQUESTS" --max-seconds 4 \
            --state "$d/steps.json" --json "$RES/pending.jsonl" --markdown "$RES/pending.md" >&2
        rss2=$(rss_kib "$RD_PID" VmRSS)
        wait "$hold_pid" || true
        hwm=$(rss_kib "$RD_PID" VmHWM)
        echo "$pending $PEND_DELAY $rss0 $rss1 $rss2 $hwm" > "$RES/pending.txt"
        log "$label: RSS of twostep-radiusd idle ${rss0} KiB, with $pending pending ${rss1} KiB, after the code logins ${rss2} KiB, peak ${hwm} KiB; $(cat "$RES/hold.json")"
        stop_pid "$RD_PID"; stop_pid "$px_pid"
    fi
    # After all the load, replays must still be refused: one code twice,
    # one accept. The code of the next step (inside the registry's +-1 step
    # window) is one the load never used.
    local u s c r1 r2 key
    u=$(sed -n 1p "$d/users.csv" | cut -d, -f1)
    s=$(sed -n 1p "$d/users.csv" | cut -d, -f2)
    c=$(oathtool --totp -b -N "@$(( $(date +%s) + 30 ))" "$s")
    key=$(cat "$d/reg/host-radius-bench.key")
    r1=$(curl -sf -X POST "$API_URL/v1/host/verify" -H "Authorization: Bearer $key" -H 'twostep-results: replay' -H 'Content-Type: application/json' -d "{\"username\":\"$u\",\"code\":\"$c\"}" | jq -r .result)
    r2=$(curl -sf -X POST "$API_URL/v1/host/verify" -H "Authorization: Bearer $key" -H 'twostep-results: replay' -H 'Content-Type: application/json' -d "{\"username\":\"$u\",\"code\":\"$c\"}" | jq -r .result)
    echo "$r1 $r2" > "$RES/replay-$label.txt"
    log "$label: the same code twice after the load: $r1, then $r2"
    [ "$r1 $r2" = "accept replay" ] || { echo "bench: replay check failed: $r1 $r2" >&2; exit 1; }
    stop_pid "$API_PID"
}

# The pending-requests pass goes with the smaller population (the main
# one in --smoke, which has no other).
want radius && radius_population "$USERS" "n$USERS" "$RAD_REQUESTS" "$RAD_CONC" "$RAD_REPEAT" 1 \
    "$( [ "$SMALL_USERS" -gt 0 ] && echo 0 || echo "$PENDING")"
if want radius && [ "$SMALL_USERS" -gt 0 ]; then
    # 1,000 users give 2,000 fresh codes in the first step and 1,000 per
    # step after: fewer, shorter runs.
    radius_population "$SMALL_USERS" "n$SMALL_USERS" 500 8,32 2 0 "$PENDING"
fi

# --- PostgreSQL: the registry alone, one and two twostep-api -----------------
if want pg && [ "$PG_USERS" -gt 0 ]; then
    PGDIR=$(mktemp -d /tmp/twostep-bench-pg.XXXXXX)
    PGPORT=$(free_port tcp)
    stop_pg() {
        local bindir
        bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        runuser -u postgres -- "$bindir/pg_ctl" -D "$PGDIR" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PGDIR"
    }
    trap 'stop_pg; cleanup' EXIT
    log "PostgreSQL: a throwaway cluster on 127.0.0.1:$PGPORT"
    # The test suite's script, on a port and directory of our own.
    PGURL=$(TWOSTEP_PG_PORT=$PGPORT TWOSTEP_PG_DIR=$PGDIR tests/start-postgres.sh)
    # The postmaster: its backends are the database's CPU in the table.
    PG_PID=$(head -n 1 "$PGDIR/postmaster.pid")
    G=$W/pg
    start_registry "$G/reg1" "$PGURL"
    PG1_URL=$API_URL; PG1_PID=$API_PID
    add_host "$G/reg1" verify-bench ssh
    log "PostgreSQL: enrolling $PG_USERS users"
    "$LOADGEN" enrol --url "$PG1_URL" --admin-token-file "$G/reg1/admin.token" \
        --count "$PG_USERS" --concurrency 8 --out "$G/users.csv" --json "$RES/enrol-pg.jsonl"
    start_registry "$G/reg2" "$PGURL" "$G/reg1"
    PG2_URL=$API_URL; PG2_PID=$API_PID
    log "PostgreSQL: POST /v1/host/verify, one registry and two on one database, in flight $PG_CONC"
    "$LOADGEN" http --target "one twostep-api=$PG1_URL" --target "two twostep-api=$PG1_URL,$PG2_URL" \
        --host-key-file "$G/reg1/host-verify-bench.key" --state-name pg \
        --users "$G/users.csv" --pids "one twostep-api=api:$PG1_PID,postgres:$PG_PID+,machine:machine" \
        --pids "two twostep-api=api1:$PG1_PID,api2:$PG2_PID,postgres:$PG_PID+,machine:machine" \
        --concurrency "$PG_CONC" --repeat "$PG_REPEAT" --requests "$PG_REQUESTS" \
        --max-seconds "$RUN_LIMIT" --state "$G/steps.json" \
        --json "$RES/http-pg.jsonl" --markdown "$RES/pg.md" >&2
    stop_pid "$PG2_PID"; stop_pid "$PG1_PID"
    stop_pg
    trap cleanup EXIT
fi

# --- PAM ---------------------------------------------------------------------
if want pam; then
log "PAM: pamtester, $PAM_RUNS runs x $PAM_REPEAT per stack"
P=$W/pam
mkdir -p "$P/svc" "$P/ga"
start_registry "$P/reg"
add_host "$P/reg" pam-bench ssh
"$LOADGEN" enrol --url "$API_URL" --admin-token-file "$P/reg/admin.token" --prefix p \
    --count "$PAM_POOL" --concurrency 4 --out "$P/users.csv"
cat > "$P/pam.toml" <<EOF
version = 1

[registry]
url = "$API_URL"
api_key_file = "$P/reg/host-pam-bench.key"

[pam]
push = "off"
EOF
# pam_google_authenticator: the same secrets, one file per user, replay
# refused (DISALLOW_REUSE) and +-1 step (WINDOW_SIZE 3), as twostep.
while IFS=, read -r u s; do
    (umask 077; printf '%s\n" TOTP_AUTH\n" DISALLOW_REUSE\n" WINDOW_SIZE 3\n' "$s" > "$P/ga/$u")
done < "$P/users.csv"
echo "auth required $BIN/libpam_twostep.so config=$P/pam.toml" > "$P/svc/twostep"
echo "auth required $GA_SO secret=$P/ga/\${USER} user=root" > "$P/svc/google_authenticator"
echo "auth required pam_permit.so" > "$P/svc/pam_permit"
echo "auth required pam_deny.so" > "$P/svc/other"
# next.sh STACK: the next user of the pool for STACK and its current code,
# in $P/user and $P/code (hyperfine --prepare, not timed). Each stack has
# its own counter; a pool of $PAM_POOL users is larger than the runs of one
# TOTP step, so no code is used twice.
cat > "$P/next.sh" <<EOF
#!/bin/sh
set -e
n=\$(cat "$P/ctr.\$1" 2>/dev/null || echo 0)
echo \$((n + 1)) > "$P/ctr.\$1"
line=\$(sed -n "\$((n % $PAM_POOL + 1))p" "$P/users.csv")
echo "\${line%%,*}" > "$P/user"
oathtool --totp -b "\${line#*,}" > "$P/code"
EOF
chmod +x "$P/next.sh"
export PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$P/svc
for r in $(seq "$PAM_REPEAT"); do
    for stack in twostep google_authenticator pam_permit; do
        hyperfine --style basic --runs "$PAM_RUNS" --warmup "$PAM_WARMUP" \
            --prepare "$P/next.sh $stack" \
            --export-json "$RES/pam-$stack-$r.json" \
            "read u < $P/user; LD_PRELOAD=libpam_wrapper.so pamtester $stack \"\$u\" authenticate < $P/code" >&2
    done
done
unset PAM_WRAPPER PAM_WRAPPER_SERVICE_DIR
args=()
for stack in twostep google_authenticator pam_permit; do
    for r in $(seq "$PAM_REPEAT"); do args+=(--result "$stack=$RES/pam-$stack-$r.json"); done
done
"$LOADGEN" pam-table "${args[@]}" --floor pam_permit --markdown "$RES/pam.md" >&2
stop_pid "$API_PID"
fi

# --- criterion ----------------------------------------------------------------
if want criterion && [ "$SMOKE" = 0 ]; then
    log "cargo bench (criterion, short)"
    cargo bench -q -p twostep-common -p twostep-radius --bench hot -- \
        --warm-up-time 1 --measurement-time 2 --noplot 2>&1 | tee "$RES/criterion.txt" >&2 || true
fi

UPTIME_AFTER=$(uptime)
TOTAL=$(( SECONDS - START ))
log "done in $TOTAL s; load: $UPTIME_AFTER"

# --- report -------------------------------------------------------------------
report() {
    echo "Measured $DATE on $MACHINE, by \`bench/run.sh\`$( [ "$SMOKE" = 1 ] && echo ' --smoke (tiny counts: not figures)') in $TOTAL s."
    echo
    echo "Load before: \`$(echo "$UPTIME_BEFORE" | sed 's/^ *//')\`; after: \`$(echo "$UPTIME_AFTER" | sed 's/^ *//')\`."
    echo "The load generator runs on the same 2 cores as the servers, and other"
    echo "work may have run at the same time: figures under contention are rough;"
    echo "compare the ratios of the same run rather than absolute rates."
    echo
    for f in "$RES"/enrol-*.jsonl; do
        [ -e "$f" ] || continue
        case $f in *-pg.jsonl) db=PostgreSQL ;; *) db=SQLite ;; esac
        jq -r --arg db "$db" '"Enrolment over REST (user + TOTP method, \(.concurrency) in flight, \($db)): \(.enrolled) users in \(.seconds * 100 | round / 100) s, \(.enrolled / .seconds | round) per s."' "$f"
        echo
    done
    for f in "$RES"/radius-n*.md; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .md); n=${n#radius-n}
        echo "#### RADIUS PAP + TOTP, $n enrolled users"
        echo
        echo "twostep = \`twostep-radiusd\` (client mode \`otp-only\`) → \`twostep-api\` (SQLite);"
        echo "freeradius = FreeRADIUS $(freeradius -v 2>/dev/null | sed -n 's/.*Version \([0-9.]*\).*/\1/p' | head -1) \`rlm_totp\` (\`-f\`, users file). Ratio: twostep's accepts/s over FreeRADIUS's, median over the repetitions."
        echo "CPU: cores used by each process during the run (user + system time / wall time); machine: all $(nproc) cores' busy time, the load generator and the kernel included."
        echo
        cat "$f"
        echo
    done
    for f in "$RES"/http-n*.md; do
        [ -e "$f" ] || continue
        echo "#### \`POST /v1/host/verify\` on the registry alone (SQLite, keep-alive)"
        echo
        cat "$f"
        echo
    done
    if [ -s "$RES/pg.md" ]; then
        echo "#### \`POST /v1/host/verify\` on PostgreSQL $(ls /usr/lib/postgresql | sort -V | tail -1): one \`twostep-api\`, and two on one database"
        echo
        echo "A throwaway cluster on 127.0.0.1 (initdb defaults, fsync on), $PG_USERS users; with two registries the load generator's requests alternate between them. Ratio: one registry's rate over two's. CPU: the registries, PostgreSQL (the postmaster and its backends) and the whole machine ($(nproc) cores)."
        echo
        cat "$RES/pg.md"
        echo
    fi
    if [ -s "$RES/pending.txt" ]; then
        read -r pn pd r0 r1 r2 rh < "$RES/pending.txt"
        echo "#### Pending requests: $pn held by a slow registry, code logins meanwhile"
        echo
        echo "A second \`twostep-radiusd\` (\`max_in_flight\` $(( pn + 1024 )), \`[registry] timeout\` 60 s) talks to the registry through a proxy that holds the calls for users \`slow-NNNNN\` $pd s (then answers 503) and passes the others on at once. $pn Access-Requests of such users are sent (paced over about a second); 4 s after the first the enrolled users log in with codes through the same server, 8 in flight, $PEND_REQUESTS per run:"
        echo
        echo "- RSS of \`twostep-radiusd\`: $(( r0 / 1024 )) MiB idle, $(( r1 / 1024 )) MiB with the $pn pending, $(( r2 / 1024 )) MiB after the code logins, peak (VmHWM) $(( rh / 1024 )) MiB."
        echo "- The held requests: $(jq -r '"sent in \(.send_seconds * 10 | round / 10) s (paced, 20 per ms at most); \(.answered) of \(.sent) answered (Access-Reject once the proxy gave up), the last after \(.seconds * 10 | round / 10) s; a request not answered was dropped by the server, never pending"' "$RES/hold.json")."
        echo
        cat "$RES/pending.md"
        echo
    fi
    for f in "$RES"/replay-*.txt; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .txt); n=${n#replay-n}
        echo "After all the load on the registry with $n users, one fresh code sent twice: \`$(cat "$f")\` (the replay rule held)."
        echo
    done
    if [ -s "$RES/pam.md" ]; then
        echo "#### PAM: pamtester with a code (hyperfine)"
        echo
        echo "Each run a new user of a pool of $PAM_POOL with its current code, the three stacks taking turns every $PAM_RUNS runs; ratio: twostep's median over the other module's. hyperfine subtracts the start-up time of the shell that runs the command; under load that correction is noisy (hence a floor near 0 ms in some runs)."
        echo
        cat "$RES/pam.md"
        echo
    fi
    if [ -s "$RES/criterion.txt" ]; then
        echo "#### cargo bench (criterion)"
        echo
        echo "Time per call, criterion's estimate with its 95 % confidence interval (\`--warm-up-time 1 --measurement-time 2\`)."
        echo
        echo "| function | time | 95 % interval |"
        echo "|---|---|---|"
        awk '/^Benchmarking/ { next }
            /^[a-z_]+\/[a-z_]+/ { name = $1 }
            /time: +\[/ {
                i = index($0, "["); j = index($0, "]")
                split(substr($0, i + 1, j - i - 1), a, " ")
                printf "| %s | %s %s | %s %s – %s %s |\n", name, a[3], a[4], a[1], a[2], a[5], a[6]
            }' "$RES/criterion.txt"
        echo
    fi
}
report > "$RES/report.md"
cat "$RES/report.md"
if [ "$WRITE" = 1 ]; then
    README=$ROOT/bench/README.md
    begin='<!-- results: written by bench/run.sh -->'
    end='<!-- end of results -->'
    awk -v b="$begin" -v e="$end" -v f="$RES/report.md" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$README" > "$W/README.new"
    cp "$W/README.new" "$README"
    log "figures written to bench/README.md"
fi
