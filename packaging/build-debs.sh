#!/usr/bin/env bash
# Builds the Debian packages twostep, libpam-twostep, twostep-api and
# twostep-radiusd into target/debian/ from one release build:
#   packaging/build-debs.sh
# Man pages and shell completions are generated from each binary's clap
# definition (hidden `generate-man` / `generate-completions` subcommands).
# Needs cargo-deb (installed with `cargo install cargo-deb --locked` when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null; then
  cargo install cargo-deb --locked
fi
cargo build --release -p twostep-cli -p twostep-api -p twostep-radius -p pam_twostep
target="${CARGO_TARGET_DIR:-$PWD/target}"
release="$target/release"
for bin in twostep twostep-api twostep-radiusd; do
  rm -rf "$release/gen/$bin"
  "$release/$bin" generate-man "$release/gen/$bin/man" >/dev/null
  gzip -9n "$release/gen/$bin/man"/*.1   # Debian policy: compressed man pages
  "$release/$bin" generate-completions "$release/gen/$bin/completions" >/dev/null
done
rm -f "$target"/debian/*.deb
cargo deb --no-build -p twostep-cli
cargo deb --no-build -p twostep-api
cargo deb --no-build -p twostep-radius
cargo deb --no-build --multiarch=same -p pam_twostep
ls -1 "$target"/debian/*.deb
