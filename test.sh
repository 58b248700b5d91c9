#!/usr/bin/env bash
# Runs every twostep test: installs the Debian packages the tests need,
# starts a throwaway PostgreSQL, builds the workspace, runs cargo test, then
# the packaging test (tests/packaging.sh: build the .debs, install them,
# pam-auth-update, pamtester and radclient against the installed binaries,
# purge). Prints how long each part took.
set -euo pipefail
cd "$(dirname "$0")"
t() { echo "test.sh: $1 took $(( SECONDS - $2 )) s"; }
s=$SECONDS; ./tests/install-deps.sh; t "test dependencies" $s
TWOSTEP_TEST_POSTGRES_URL=$(./tests/start-postgres.sh)
export TWOSTEP_TEST_POSTGRES_URL
# The end-to-end tests drive the built binaries and pam_twostep.so.
s=$SECONDS; cargo build --workspace --bins --lib; t "debug build" $s
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
s=$SECONDS
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=1
t "cargo test" $s
# Totals over every test binary, for the closing line.
read -r passed failed < <(awk '/^test result:/ {
    for (i = 2; i <= NF; i++) {
        if ($i ~ /^passed;?$/) p += $(i - 1)
        if ($i ~ /^failed;?$/) f += $(i - 1)
    }
} END { print p + 0, f + 0 }' "$log")
# cargo-deb stays in ~/.cargo/bin between runs.
s=$SECONDS
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
t "cargo-deb install" $s
s=$SECONDS
if ./tests/packaging.sh; then passed=$((passed + 1)); else status=1; failed=$((failed + 1)); fi
t "packaging test (release build included)" $s
echo "test.sh: total $SECONDS s"
[ "$failed" -eq 0 ] || status=1
echo "tests: $passed passed, $failed failed"
exit $status
