#!/usr/bin/env bash
# profile.sh - a flame graph of `guichet run --once` ingesting a backlog
# alone (issue 17): where a message's cost goes.
#
#   bash scripts/profile.sh [N] [OUT]     # N = 3000 messages, OUT = /tmp/guichet-profile
#
# Needs perf (apt-get install linux-perf) and inferno (cargo install
# inferno). Starts the bench rig (scripts/bench.sh's, /dev/shm/guichet-bench)
# unless one runs, seeds a fresh mailbox with N messages
# (scripts/profile/seed.py: one in five from ../shared/corpus when present,
# one in four a reply, one in seven with an 8 KB PNG; the same messages
# every time), runs the release binary under `perf record --call-graph
# dwarf` with the relay unreachable, and writes OUT/ingest.svg and
# OUT/ingest.folded (the collapsed stacks, for grep).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-3000}
out=${2:-/tmp/guichet-profile}
rig_dir=${BENCH_RIG:-/dev/shm/guichet-bench}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
command -v inferno-flamegraph >/dev/null || { echo "inferno is missing: cargo install inferno" >&2; exit 2; }
if ! bash scripts/mailrig.sh status "$rig_dir" >/dev/null 2>&1; then
  MAIL_FORMAT=sdbox IMAP_PORT=41143 IMAPS_PORT=41993 LMTP_PORT=41024 SMTP_PORT=41025 \
    SMTPS_PORT=41465 CLAMD_PORT=43310 PG_PORT=45432 \
    bash scripts/mailrig.sh start "$rig_dir" >/dev/null
fi
# shellcheck disable=SC1091
source "$rig_dir/env"
cargo build --release
user="prof$(date +%s)-x@example.test"
rm -rf "$out"
mkdir -p "$out"
python3 scripts/profile/seed.py "$n" "$user" "${LMTP_PORT:-41024}"
# shellcheck source=scripts/profile/desk.sh
source scripts/profile/desk.sh
desk_toml "$user" 1 >"$out/guichet.toml"
bin=$PWD/target/release/guichet
(cd "$out" && perf record -F 2000 --call-graph dwarf,16384 -o perf.data \
  "$bin" --config guichet.toml run --once >report.json 2>guichet.err)
(cd "$out" && perf script -i perf.data 2>/dev/null | inferno-collapse-perf >ingest.folded &&
  inferno-flamegraph --minwidth 2 --title "guichet run --once, ingest alone of $n messages" \
    <ingest.folded >ingest.svg)
echo "$out/ingest.svg ($(jq -c .timings "$out/report.json" 2>/dev/null || cat "$out/report.json"))"
