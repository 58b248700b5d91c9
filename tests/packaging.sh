#!/usr/bin/env bash
# Packaging test (test.sh runs it after cargo test):
#  1. builds the four .debs (packaging/build-debs.sh: one release build);
#  2. installs them with `apt-get install ./...deb`;
#  3. `pam-auth-update --enable twostep` and checks common-auth;
#  4. starts the installed twostep-api with its systemd unit's command line
#     and user (setpriv, no systemd), enrols users with the installed
#     `twostep`, authenticates once through the installed pam_twostep.so
#     with pamtester (password via pam_unix, then the code from oathtool);
#  5. starts the installed twostep-radiusd the same way and does one
#     Access-Request -> Access-Accept round trip with radclient;
#  6. runs the installed `twostep doctor`, then purges the packages.
#
# Steps 2-6 run in a private mount namespace in which /etc and /var/lib/pam
# are temporary copies: the real /etc/pam.d, /etc/twostep, /etc/passwd are
# never written. Packages are installed for real (dpkg database, /usr) and
# purged at the end, also on failure. Servers listen on 127.0.0.1, free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" != --inside ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "packaging test: needs root (apt-get, unshare); skipped" >&2
    exit 0
  fi
  start=$(date +%s)
  packaging/build-debs.sh
  built=$(date +%s)
  unshare --mount --propagation private -- "$0" --inside
  echo "packaging test: passed (build $((built - start)) s, install/test/purge $(($(date +%s) - built)) s)"
  exit 0
fi

# ---- inside the private mount namespace ------------------------------------
debs="${CARGO_TARGET_DIR:-$root/target}/debian"
packages=(libpam-twostep twostep-radiusd twostep-api twostep)
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    echo "packaging test: FAIL: $p is already installed on this machine; the test would replace and purge it (remove it first: apt-get purge ${packages[*]})" >&2
    exit 1
  fi
done
work=$(mktemp -d /tmp/twostep-packaging.XXXXXX)
pids=()
apt_opts=(-y -q -o DPkg::Lock::Timeout=120)
export DEBIAN_FRONTEND=noninteractive

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  apt-get purge "${apt_opts[@]}" "${packages[@]}" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

fail() { echo "packaging test: FAIL: $*" >&2; exit 1; }
step() { echo "packaging test: $*"; }

# Private copies of /etc and /var/lib/pam: installing, pam-auth-update,
# useradd and the packages' conffiles all land in the copies.
cp -a /etc "$work/etc"
mount --bind "$work/etc" /etc
cp -a /var/lib/pam "$work/varlibpam"
mount --bind "$work/varlibpam" /var/lib/pam

free_port() { # $1 = tcp|udp: a port on which nothing is bound (from /proc/net)
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! grep -qi "$(printf ':%04X ' "$p")" "/proc/net/$1" "/proc/net/${1}6" 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  fail "no free $1 port"
}

# Runs a unit's ExecStart= as its User= with NoNewPrivileges and UMask=0077,
# like systemd would; stdout+stderr to $2.
start_unit() { # $1 = unit file, $2 = log file
  local unit=$1 log=$2 user cmd
  user=$(sed -n 's/^User=//p' "$unit")
  cmd=$(sed -n 's/^ExecStart=//p' "$unit")
  [ -n "$user" ] && [ -n "$cmd" ] || fail "$unit has no User= or ExecStart="
  # shellcheck disable=SC2086 # ExecStart is split into words, as systemd does.
  (umask 077; exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- $cmd) >"$log" 2>&1 &
  pids+=($!)
}

wait_for() { # $1 = seconds, rest = command; retries until it succeeds
  local limit=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$limit" ] || return 1
    sleep 0.2
  done
}

step "installing ${packages[*]}"
common_before=$(cat /etc/pam.d/common-auth)
apt-get install "${apt_opts[@]}" --no-install-recommends \
  "$debs"/twostep_*.deb "$debs"/twostep-api_*.deb "$debs"/twostep-radiusd_*.deb \
  "$debs"/libpam-twostep_*.deb >"$work/apt.log" 2>&1 || fail "apt-get install (see $work/apt.log)"

module=/usr/lib/x86_64-linux-gnu/security/pam_twostep.so
[ -f "$module" ] || fail "$module not installed"
[ -f /usr/share/man/man8/pam_twostep.8.gz ] || fail "man page pam_twostep(8) missing"
for b in twostep twostep-api twostep-radiusd; do
  [ -x /usr/bin/$b ] || fail "/usr/bin/$b not installed"
  /usr/bin/$b --version | grep -q "0\.1\.0" || fail "$b --version"
  [ -f /usr/share/man/man1/$b.1.gz ] || fail "man page of $b missing"
  [ -f /usr/share/bash-completion/completions/$b ] || fail "bash completion of $b missing"
done
[ "$(cat /etc/pam.d/common-auth)" = "$common_before" ] || fail "installing changed common-auth (profile must be Default: no)"
getent passwd twostep >/dev/null || fail "user twostep not created"
getent passwd twostep-radius >/dev/null || fail "user twostep-radius not created"
[ "$(stat -c '%U %a' /etc/twostep/admin.token)" = "root 600" ] || fail "/etc/twostep/admin.token owner/mode"
[ "$(stat -c '%U %a' /var/lib/twostep/admin.token)" = "twostep 600" ] || fail "/var/lib/twostep/admin.token owner/mode"
cmp -s /etc/twostep/admin.token /var/lib/twostep/admin.token || fail "the two admin token copies differ"
[ "$(stat -c '%U %a' /etc/twostep/radiusd/state.key)" = "twostep-radius 600" ] || fail "state.key owner/mode"
grep -Eqx '[0-9a-f]{64}' /etc/twostep/radiusd/state.key || fail "state.key is not 64 hex digits"

step "pam-auth-update --enable twostep"
pam-auth-update --enable twostep
# Expected: the Primary block (pam_unix jumping over pam_deny), pam_permit,
# then pam_twostep as a required step, before the other Additional modules.
grep -E '^auth' /etc/pam.d/common-auth | sed 's/^/  common-auth: /'
order=$(grep -E '^auth' /etc/pam.d/common-auth | grep -o 'pam_[a-z_]*\.so' | tr '\n' ' ')
case "$order" in
  "pam_unix.so pam_deny.so pam_permit.so pam_twostep.so "*) ;;
  *) fail "unexpected common-auth order: $order" ;;
esac
grep -Eq '^auth[[:space:]]+required[[:space:]]+pam_twostep\.so[[:space:]]*$' /etc/pam.d/common-auth \
  || fail "pam_twostep.so is not a plain 'required' line"
grep -Eq '^auth[[:space:]]+\[success=1 default=ignore\][[:space:]]+pam_unix\.so' /etc/pam.d/common-auth \
  || fail "pam_unix.so no longer jumps exactly over pam_deny.so"

step "starting the installed twostep-api (unit command line, user twostep)"
api_port=$(free_port tcp)
sed -i -e "s|^listen = \"127.0.0.1:8443\"|listen = \"127.0.0.1:$api_port\"|" \
       -e "s|^url = \"http://127.0.0.1:8443\"|url = \"http://127.0.0.1:$api_port\"|" /etc/twostep/twostep.toml
grep -q "127.0.0.1:$api_port" /etc/twostep/twostep.toml || fail "could not set the registry port"
start_unit /usr/lib/systemd/system/twostep-api.service "$work/api.log"
wait_for 20 twostep user list || fail "twostep-api did not answer"
[ "$(stat -c %U /var/lib/twostep/secret.key)" = twostep ] || fail "secret.key not created by the service user"

# A local user for pam_unix, in the namespace's copy of /etc/passwd.
user=tspkg$$
useradd --no-create-home --shell /usr/sbin/nologin "$user"
echo "$user:Pw-$$-ok" | chpasswd
twostep user add "$user" >/dev/null
secret=$(twostep enrol "$user" --no-qr | sed -n 's/^secret: //p')
[ -n "$secret" ] || fail "twostep enrol printed no secret"
twostep host add "pkg-ssh-$$" --kind ssh --key-file /etc/twostep/host.key >/dev/null

step "pamtester through common-auth (password, then code)"
printf '@include common-auth\n' > /etc/pam.d/twostep-pkgtest
code=$(oathtool --totp -b "$secret")
wrong=$(printf '%06d' $(( (10#$code + 1) % 1000000 )))
printf 'Pw-%s-ok\n%s\n' $$ "$wrong" | pamtester twostep-pkgtest "$user" authenticate >"$work/pam-wrong.log" 2>&1 \
  && fail "a wrong code authenticated"
grep -q "Authentication failure\|Maximum number of tries exceeded" "$work/pam-wrong.log" || fail "wrong code: $(cat "$work/pam-wrong.log")"
printf 'Pw-%s-ok\n%s\n' $$ "$code" | pamtester twostep-pkgtest "$user" authenticate >"$work/pam.log" 2>&1 \
  || fail "pamtester with the right code: $(cat "$work/pam.log")"
grep -q "successfully authenticated" "$work/pam.log" || fail "pamtester: $(cat "$work/pam.log")"
printf 'Wrong-password\n%s\n' "$code" | pamtester twostep-pkgtest "$user" authenticate >/dev/null 2>&1 \
  && fail "a wrong password with a code authenticated"

step "starting the installed twostep-radiusd (unit command line, user twostep-radius)"
radius_port=$(free_port udp)
radius_secret=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
install -o twostep-radius -g twostep-radius -m 0600 /dev/null /etc/twostep/radiusd/local.secret
printf '%s\n' "$radius_secret" > /etc/twostep/radiusd/local.secret
twostep host add "pkg-radius-$$" --kind radius --key-file /etc/twostep/radiusd/host.key >/dev/null
chown twostep-radius:twostep-radius /etc/twostep/radiusd/host.key
sed -i -e "s|^url = \"http://127.0.0.1:8443\"|url = \"http://127.0.0.1:$api_port\"|" \
       -e "s|^listen = \"0.0.0.0:1812\"|listen = \"127.0.0.1:$radius_port\"|" /etc/twostep/radiusd.toml
cat >> /etc/twostep/radiusd.toml <<EOF

[[radius.client]]
name = "localhost"
address = "127.0.0.1/32"
secret_file = "/etc/twostep/radiusd/local.secret"
mode = "otp-only"
EOF
radius_user=${user}r
twostep user add "$radius_user" >/dev/null
radius_totp=$(twostep enrol "$radius_user" --no-qr | sed -n 's/^secret: //p')
start_unit /usr/lib/systemd/system/twostep-radiusd.service "$work/radiusd.log"
wait_for 20 grep -q "listening on" "$work/radiusd.log" || fail "twostep-radiusd did not start"

step "radclient Access-Request -> Access-Accept"
rcode=$(oathtool --totp -b "$radius_totp")
printf 'User-Name = "%s"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$radius_user" "$rcode" \
  | radclient -x -r 1 -t 5 "127.0.0.1:$radius_port" auth "$radius_secret" >"$work/radclient.log" 2>&1 \
  || fail "radclient: $(cat "$work/radclient.log")"
grep -q "Received Access-Accept" "$work/radclient.log" || fail "no Access-Accept: $(cat "$work/radclient.log")"
# The same code again: replay, refused.
printf 'User-Name = "%s"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$radius_user" "$rcode" \
  | radclient -x -r 1 -t 5 "127.0.0.1:$radius_port" auth "$radius_secret" >"$work/radclient2.log" 2>&1 || true
grep -q "Received Access-Reject" "$work/radclient2.log" || fail "replayed code not rejected: $(cat "$work/radclient2.log")"

step "twostep doctor on the installed system"
twostep doctor --no-sshd >"$work/doctor.log" 2>&1 || fail "twostep doctor: $(cat "$work/doctor.log")"
grep -q "pam sshd: pam_twostep.so runs at /etc/pam.d/common-auth" "$work/doctor.log" || fail "doctor: $(cat "$work/doctor.log")"
twostep doctor --config /etc/twostep/radiusd.toml --no-pam --no-sshd >"$work/doctor-radius.log" 2>&1 \
  || fail "twostep doctor (radiusd.toml): $(cat "$work/doctor-radius.log")"

step "stopping the services, purging the packages"
for p in "${pids[@]}"; do kill "$p"; done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
apt-get purge "${apt_opts[@]}" "${packages[@]}" >"$work/purge.log" 2>&1 || fail "apt-get purge"
[ ! -e "$module" ] || fail "$module left behind"
[ ! -e /var/lib/twostep ] || fail "/var/lib/twostep left behind"
[ ! -e /etc/twostep ] || fail "/etc/twostep left behind: $(ls -la /etc/twostep)"
grep -q pam_twostep /etc/pam.d/common-auth && fail "pam_twostep.so still in common-auth after purge"
exit 0
