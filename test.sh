#!/usr/bin/env bash
# Runs every twostep test: installs the Debian packages the tests need,
# starts a throwaway PostgreSQL, builds the workspace and runs cargo test.
set -euo pipefail
cd "$(dirname "$0")"
./tests/install-deps.sh
TWOSTEP_TEST_POSTGRES_URL=$(./tests/start-postgres.sh)
export TWOSTEP_TEST_POSTGRES_URL
# The end-to-end tests drive the built binaries and pam_twostep.so.
cargo build --workspace --bins --lib
cargo test --workspace --no-fail-fast
