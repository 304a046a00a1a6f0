#!/usr/bin/env bash
# bench.sh - Guichet's benchmark (issue 7): every figure against the limits
# of the real mail servers it talks to, in one run. Not a test; CI never
# runs it.
#
#   bash scripts/bench.sh            # BENCH_N=10000 messages by default
#   BENCH_N=2000 BENCH_ONLY=backlog,latency bash scripts/bench.sh
#   BENCH_ONLY=realistic bash scripts/bench.sh   # the corpus with clamd, MB/s
#   BENCH_N=3000 bash scripts/bench.sh     # every phase in about 20 minutes
#   BENCH_ONLY=big bash scripts/bench.sh   # the 100k backlog (BENCH_BIG_N):
#                                    # time, peak RSS, per-message cost at start and end
#   BENCH_RELAY_ROUNDS=5 BENCH_ONLY=backlog bash scripts/bench.sh
#                                    # the relay over 1/2/4/8 connections, bare and by
#                                    # Guichet alternating, 5 rounds each (default 3): medians
#
# The summary at the end has every figure with its baseline measured in
# the same run, its ratio, its target and PASS/FAIL. Phases (BENCH_ONLY):
# peer, backlog (ingest alone, the relay over 1/2/4/8 connections bare and
# by Guichet, the drain against the best), realistic (the real-world
# corpus with clamd on, in MB/s, against a bare fetch plus a bare clamd
# INSTREAM of the files Guichet scanned; skipped without ../shared/corpus),
# big (BENCH_BIG_N messages, 100,000 by default, ingested alone), pipeline, latency, memory, growth, postgres (ingest alone and drain beside
# SQLite's; 1, 2, 3 daemons on one database and mailbox). On a shared
# machine absolute figures are noisy: read the ratios.
#
# 1. installs the servers if needed (scripts/mailrig.sh install);
# 2. starts a rig of its own in $BENCH_RIG (default /dev/shm/guichet-bench,
#    ports 41143/41024/41025/..., clamd 43310; BENCH_IMAP_PORT,
#    BENCH_IMAPS_PORT, BENCH_LMTP_PORT, BENCH_SMTP_PORT, BENCH_SMTPS_PORT,
#    BENCH_CLAMD_PORT, BENCH_PG_PORT to run a second bench rig beside it): Dovecot stores mail as sdbox on tmpfs, so
#    seeding 2 x 10,000 messages takes seconds (Maildir appends slow down as
#    a mailbox grows; see the mailrig README), and the test rig in
#    /tmp/guichet-rig, shared with the test suite, is neither loaded nor
#    disturbed. Any previous bench rig is wiped first;
# 3. builds the release binary and runs `cargo bench --bench backlog`
#    (benches/backlog.rs), which prints each figure and a summary;
# 4. stops and removes the rig (its mailboxes live in RAM), unless
#    BENCH_KEEP_RIG=1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rig_dir=${BENCH_RIG:-/dev/shm/guichet-bench}
mailrig=scripts/mailrig.sh

bash "$mailrig" install

bash "$mailrig" stop "$rig_dir" >&2
rm -rf "$rig_dir"
MAIL_FORMAT=sdbox \
  IMAP_PORT=${BENCH_IMAP_PORT:-41143} IMAPS_PORT=${BENCH_IMAPS_PORT:-41993} \
  LMTP_PORT=${BENCH_LMTP_PORT:-41024} SMTP_PORT=${BENCH_SMTP_PORT:-41025} \
  SMTPS_PORT=${BENCH_SMTPS_PORT:-41465} CLAMD_PORT=${BENCH_CLAMD_PORT:-43310} \
  PG_PORT=${BENCH_PG_PORT:-45432} \
  bash "$mailrig" start "$rig_dir" >/dev/null

cleanup() {
  if [[ ${BENCH_KEEP_RIG:-0} != 1 ]]; then
    bash "$mailrig" stop "$rig_dir" >&2 || true
    rm -rf "$rig_dir"
  fi
}
trap cleanup EXIT

cargo build --release
BENCH_RIG=$rig_dir cargo bench --bench backlog
