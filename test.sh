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
s=$SECONDS; cargo test --workspace --no-fail-fast || status=1; t "cargo test" $s
# cargo-deb stays in ~/.cargo/bin between runs.
s=$SECONDS
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
t "cargo-deb install" $s
s=$SECONDS; ./tests/packaging.sh || status=1; t "packaging test (release build included)" $s
echo "test.sh: total $SECONDS s"
exit $status
