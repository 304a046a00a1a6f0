#!/usr/bin/env bash
# package-deb.sh - builds Guichet's .deb with cargo-deb.
#
#   bash scripts/package-deb.sh [--debug] [--no-build] [--output DIR]
#
# Installs cargo-deb once (`cargo install cargo-deb --locked`, into
# ~/.cargo/bin), builds the release binary (or, with --debug, packages the
# debug binary `cargo build` made: what the test suite does, as a release
# build would add minutes to CI), generates the man pages and the shell
# completions with that binary (`guichet manual`), then runs cargo deb.
# --no-build packages the binary already there (tests/packaging.rs, run by
# `cargo test`, which built it).
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
build=yes
output=${CARGO_TARGET_DIR:-target}/debian
while (($#)); do
  case $1 in
    --debug) profile=dev ;;
    --no-build) build=no ;;
    --output) output=$2; shift ;;
    *) echo "usage: $0 [--debug] [--no-build] [--output DIR]" >&2; exit 2 ;;
  esac
  shift
done

if ! cargo deb --version >/dev/null 2>&1; then
  echo "[package-deb] installing cargo-deb (once)" >&2
  # pinned: it packages the debug binary (--profile dev), which later
  # versions say they will refuse
  cargo install cargo-deb --version 3.8.0 --locked >&2
fi

target_dir=${CARGO_TARGET_DIR:-target}
if [[ $profile == release ]]; then
  [[ $build == no ]] || cargo build --release --locked >&2
  bin=$target_dir/release/guichet
else
  [[ $build == no ]] || cargo build --locked >&2
  bin=$target_dir/debug/guichet
fi

rm -rf contrib/debian/generated
"$bin" manual contrib/debian/generated >&2
mkdir -p "$output"
# --fast: light compression (the debug binary is big); stripped either way
cargo deb --no-build --profile "$profile" --fast --output "$output" >&2
ls -t "$output"/guichet_*.deb | head -n1
