#!/usr/bin/env bash
# quickstart.sh — runs all of twostep on this machine, in the foreground:
#
#   1. builds the release binaries (cargo build --release);
#   2. starts the registry (twostep-api, SQLite in ./.state/) on 127.0.0.1;
#   3. starts twostep-radiusd on 127.0.0.1:1812 with a localhost client;
#   4. creates the user "demo" with an authenticator-app (TOTP) method and
#      prints its QR code: scan it with any authenticator app;
#   5. prints and runs one real RADIUS Access-Request (radclient) with a
#      fresh code from oathtool -> Access-Accept;
#   6. prints the pamtester command to try the PAM module by hand.
#
# Ctrl-C stops everything. Each run starts from a fresh ./.state/ (a new
# secret: delete the old "twostep" entry in your phone's app first). One run
# at a time: a second one, while the first still runs, stops with a message
# and touches nothing (the lock is ./.state.lock, held with flock(1)).
# Environment: TWOSTEP_RADIUS_PORT (default 1812), TWOSTEP_API_PORT
# (default 8443, and a free port is picked when that one is taken; a port
# given here must be free).
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD
state=$root/.state
radius_port=${TWOSTEP_RADIUS_PORT:-1812}
api_port=${TWOSTEP_API_PORT:-8443}
user=demo

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
# Ports are checked before anything is set up or cleaned.
for p in "TWOSTEP_RADIUS_PORT=$radius_port" "TWOSTEP_API_PORT=$api_port"; do
  v=${p#*=}
  case $v in
    ''|*[!0-9]*) die "${p%%=*} must be a port number (1-65535), not '$v'" ;;
  esac
  [ "$v" -ge 1 ] && [ "$v" -le 65535 ] || die "${p%%=*} must be a port number (1-65535), not '$v'"
done

# ---- one run at a time -------------------------------------------------------
# The lock lives beside .state (which each run deletes and recreates) and is
# held on fd 9 until this script exits; the servers and cargo do not inherit
# it. Opened for appending so a refused run does not truncate the pid in it.
lock=$root/.state.lock
exec 9>>"$lock"
if ! flock -n 9; then
  other=$(head -n 1 "$lock" 2>/dev/null || true)
  die "another quickstart.sh is running (pid ${other:-unknown}); stop it with Ctrl-C first"
fi
printf '%s\n' "$$" > "$lock"

# ---- what this needs ---------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust first (https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh), then run ./quickstart.sh again"
# command -> Debian package
declare -A need=(
  [radclient]=freeradius-utils [oathtool]=oathtool [pamtester]=pamtester
  [pkg-config]=pkg-config [cc]=gcc
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
done
for pkg in libpam0g-dev libpam-wrapper; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    say "Installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing Debian packages; install them, then run ./quickstart.sh again:
    sudo apt-get install ${missing[*]}"
  fi
fi

# ---- ports -------------------------------------------------------------------
port_in_use() { # $1 = tcp|udp, $2 = port; true when something is bound to it
  grep -qi "$(printf ':%04X ' "$2")" "/proc/net/$1" "/proc/net/${1}6" 2>/dev/null
}
if port_in_use udp "$radius_port"; then
  die "UDP port $radius_port is already in use (FreeRADIUS? see: ss -ulpn 'sport = :$radius_port').
Stop that server, or run twostep-radiusd on another port:
    TWOSTEP_RADIUS_PORT=11812 ./quickstart.sh"
fi
if port_in_use tcp "$api_port"; then
  [ -z "${TWOSTEP_API_PORT:-}" ] || die "TCP port $api_port (TWOSTEP_API_PORT) is already in use (see: ss -tlpn 'sport = :$api_port'); pick another, or unset it to let quickstart choose"
  for _ in $(seq 100); do
    api_port=$(( 20000 + RANDOM % 30000 ))
    port_in_use tcp "$api_port" || break
  done
  if port_in_use tcp "$api_port"; then
    die "found no free TCP port for twostep-api; set TWOSTEP_API_PORT to a free one"
  fi
fi

# ---- build -------------------------------------------------------------------
say "Building (cargo build --release)"
cargo build --release -p twostep-api -p twostep-radius -p twostep-cli -p pam_twostep 9>&-
release="${CARGO_TARGET_DIR:-$root/target}/release"
twostep() { "$release/twostep" --config "$state/twostep.toml" "$@"; }

# ---- state and configuration -------------------------------------------------
rm -rf "$state"
mkdir -m 700 "$state" "$state/pam.d"
umask 077
secret_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
secret_hex 24 > "$state/radius-localhost.secret"   # NAS shared secret, 48 characters
secret_hex 32 > "$state/radius-state.key"           # seals Access-Challenge State
cat > "$state/twostep.toml" <<EOF
# twostep quickstart: the registry and this host's PAM settings.
version = 1

[api]
listen = "127.0.0.1:$api_port"
database = "sqlite://$state/registry.db"
secret_key_file = "$state/secret.key"
admin_token_file = "$state/admin.token"
issuer = "twostep quickstart"

[registry]
url = "http://127.0.0.1:$api_port"
api_key_file = "$state/pam-host.key"
admin_token_file = "$state/admin.token"

[pam]
max_tries = 3
EOF
cat > "$state/radiusd.toml" <<EOF
# twostep quickstart: twostep-radiusd.
version = 1

[registry]
url = "http://127.0.0.1:$api_port"
api_key_file = "$state/radius-host.key"

[radius]
listen = "127.0.0.1:$radius_port"
state_key_file = "$state/radius-state.key"

[[radius.client]]
name = "localhost"
address = "127.0.0.1/32"
secret_file = "$state/radius-localhost.secret"
mode = "otp-only"
EOF

# ---- processes ---------------------------------------------------------------
pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    printf '\nquickstart: stopping twostep-radiusd and twostep-api\n'
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

wait_for() { # $1 = seconds, $2 = what, rest = command retried until it succeeds
  local limit=$(( SECONDS + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || die "$what exited; its log:
$(tail -n 20 "$state"/*.log)"
    done
    [ "$SECONDS" -lt "$limit" ] || die "$what did not start within $1 s; logs in $state"
    sleep 0.2
  done
}

say "Starting the registry: twostep-api on 127.0.0.1:$api_port (log: .state/api.log)"
"$release/twostep-api" --config "$state/twostep.toml" >"$state/api.log" 2>&1 9>&- &
pids+=($!)
wait_for 20 "twostep-api" twostep user list

twostep host add "quickstart-pam" --kind ssh --key-file "$state/pam-host.key" >/dev/null
twostep host add "quickstart-radius" --kind radius --key-file "$state/radius-host.key" >/dev/null

say "Starting twostep-radiusd on 127.0.0.1:$radius_port/udp (log: .state/radiusd.log)"
"$release/twostep-radiusd" --config "$state/radiusd.toml" >"$state/radiusd.log" 2>&1 9>&- &
pids+=($!)
wait_for 20 "twostep-radiusd" grep -q "listening on" "$state/radiusd.log"

say "Creating the user \"$user\" with an authenticator app"
twostep user add "$user" --display-name "Demo User" >/dev/null
twostep enrol "$user" | tee "$state/enrol.txt"
totp_secret=$(sed -n 's/^secret: //p' "$state/enrol.txt")
rm -f "$state/enrol.txt"
[ -n "$totp_secret" ] || die "twostep enrol printed no secret"
# Kept for the oathtool lines below; a real deployment never stores it.
printf '%s\n' "$totp_secret" > "$state/demo.totp"

say "A RADIUS Access-Request with a fresh code, as a VPN concentrator would send it"
radius_secret=$(cat "$state/radius-localhost.secret")
code=$(oathtool --totp -b "$totp_secret")
cat <<EOF
  code=\$(oathtool --totp -b \$(cat .state/demo.totp))      # or read it from your phone
  printf 'User-Name = "$user"\\nUser-Password = "%s"\\nMessage-Authenticator = 0x00\\n' "\$code" |
    radclient -x 127.0.0.1:$radius_port auth "\$(cat .state/radius-localhost.secret)"

EOF
printf 'User-Name = "%s"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$user" "$code" |
  radclient -x -r 1 -t 5 "127.0.0.1:$radius_port" auth "$radius_secret" | tee "$state/radclient.txt" || true
if grep -q "Received Access-Accept" "$state/radclient.txt"; then
  echo "  -> Access-Accept. The same code again gets Access-Reject (replay); the next one (30 s later) is accepted."
else
  die "expected an Access-Accept; logs in $state"
fi

# A PAM service file for pam_wrapper: pamtester loads the module from the
# build, reads this config, and never touches /etc/pam.d.
cat > "$state/pam.d/twostep-demo" <<EOF
auth     required  $release/libpam_twostep.so config=$state/twostep.toml
account  required  pam_permit.so
EOF
# pam_wrapper wants the fallback service too.
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$state/pam.d/other"

say "Try the PAM module by hand (another terminal; the code from your phone or oathtool)"
cat <<EOF
  LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$state/pam.d \\
    pamtester twostep-demo $user authenticate
  # Verification code: <6 digits>   -> pamtester: successfully authenticated
  oathtool --totp -b \$(cat $state/demo.totp)    # a code without a phone

  $release/twostep --config $state/twostep.toml audit     # what happened

  # The Security info page, where users add their own authenticator app:
  $release/twostep --config $state/twostep.toml user passwd $user   # a page password first
  # then open http://127.0.0.1:$api_port/my/ in a browser on this machine
EOF

say "Running. Press Ctrl-C to stop twostep-api and twostep-radiusd."
# Returns when a server exits (that is an error) or on Ctrl-C (the trap).
set +e
wait -n "${pids[@]}"
status=$?
set -e
# The servers exit 0 only when told to stop: a SIGINT or SIGTERM sent to
# the whole process group (a supervisor, timeout -s INT) can reach them
# before this shell's trap runs. That is a stop, not a failure.
if [ "$status" -eq 0 ]; then
  stop
  exit 0
fi
die "a server exited (status $status); logs in $state:
$(tail -n 20 "$state"/*.log)"
