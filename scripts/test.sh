#!/usr/bin/env bash
# test.sh - THE test command: the project's test servers, then every test.
#
#   bash scripts/test.sh [cargo test args...]   e.g. --test mail_adapters, -- idle
#
# 1. installs the servers (scripts/mailrig.sh install: apt-get, once; root);
# 2. starts them in $GUICHET_RIG_DIR (default /tmp/guichet-rig), or reuses
#    them when they already run there, started by a mailrig.sh of the same
#    or a newer RIG_VERSION;
# 3. exports the rig's env (DIR/env: ports, CA file, clamd, PostgreSQL) and
#    runs `cargo test --all-targets "$@"` (without --all-targets when the
#    args pick targets), exiting with cargo's code.
# The rig is left running for the next run; stop it with
#   bash scripts/mailrig.sh stop /tmp/guichet-rig
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rig_dir=${GUICHET_RIG_DIR:-/tmp/guichet-rig}
mailrig=scripts/mailrig.sh

bash "$mailrig" install

wanted=$(bash "$mailrig" version)
running=$(sed -n 's/^MAILRIG_VERSION=\([0-9]*\)$/\1/p' "$rig_dir/env" 2>/dev/null || true)
if bash "$mailrig" status "$rig_dir" >/dev/null 2>&1 && ((${running:-0} >= wanted)); then
  echo "[test.sh] reusing the test servers running in $rig_dir (rig version ${running})" >&2
else
  # stopped, half-running, or started by an older mailrig.sh: (re)start
  bash "$mailrig" stop "$rig_dir" >&2
  bash "$mailrig" start "$rig_dir" >/dev/null
fi

# the packaging tests (tests/packaging.rs): systemd-analyze checks the unit,
# cargo-deb builds the .deb (installed once into ~/.cargo/bin, a few
# minutes the first time); without them those tests say SKIPPED
if ! command -v systemd-analyze >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get install -y -q systemd >&2 || echo "[test.sh] cannot install systemd-analyze" >&2
fi
if ! cargo deb --version >/dev/null 2>&1; then
  echo "[test.sh] installing cargo-deb (once, into ~/.cargo/bin)" >&2
  cargo install cargo-deb --version 3.8.0 --locked >&2 || echo "[test.sh] cannot install cargo-deb: the .deb test is skipped" >&2
fi

set -a
# shellcheck source=/dev/null
. "$rig_dir/env"
set +a

# `bash scripts/test.sh --test rig` runs that target only: cargo adds target
# selections up, so --all-targets goes when the caller picks targets.
targets=(--all-targets)
for arg in "$@"; do
  [[ $arg == -- ]] && break
  case $arg in
    --lib | --bin | --bin=* | --bins | --test | --test=* | --tests | --example | --example=* | \
      --examples | --bench | --bench=* | --benches | --doc) targets=() ;;
  esac
done
cargo test "${targets[@]}" "$@"
