#!/usr/bin/env bash
# soak.sh - Guichet under kill -9 and outages, then fuzzed (issue 13). Not a
# test; CI never runs it (it takes 15-20 minutes).
#
#   bash scripts/soak.sh                       # both backends, then the fuzz loop
#   SOAK_BACKENDS=sqlite SOAK_MESSAGES=400 SOAK_KILLS=50 SOAK_OUTAGE=20 bash scripts/soak.sh
#   SOAK_FUZZ=0 bash scripts/soak.sh           # no fuzz loop
#
# 1. starts a rig of its own in $SOAK_RIG (default /dev/shm/guichet-soak,
#    ports 47143...; sdbox mail on tmpfs), so that the outages it causes
#    never touch the test rig in /tmp/guichet-rig;
# 2. builds guichet (release, or SOAK_PROFILE=debug);
# 3. runs scripts/soak.py per backend: a backlog of SOAK_MESSAGES (1000)
#    messages with replies and attachments, SIGKILL of a daemon every
#    0.05-1 s at least SOAK_KILLS (100) times, IMAP, SMTP, clamd and the
#    webhook endpoint each down for SOAK_OUTAGE (60) s; one JSON line of
#    figures each (lost/duplicated tickets, mails, copies, events, the time
#    everything took to go out after the last kill);
# 4. runs the stable mutation fuzz loop (`guichet fuzz`, two processes)
#    over the repository's fixtures and ../shared/corpus, SOAK_FUZZ_INPUTS
#    inputs in all (default 1,000,000);
# 5. stops and removes the rig unless SOAK_KEEP_RIG=1.
# Exits non-zero when any run failed its targets.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rig_dir=${SOAK_RIG:-/dev/shm/guichet-soak}
mailrig=scripts/mailrig.sh
profile=${SOAK_PROFILE:-release}

bash "$mailrig" install
bash "$mailrig" stop "$rig_dir" >&2 || true
rm -rf "$rig_dir"
MAIL_FORMAT=sdbox \
  IMAP_PORT=47143 IMAPS_PORT=47993 LMTP_PORT=47024 SMTP_PORT=47025 \
  SMTPS_PORT=47465 CLAMD_PORT=47310 PG_PORT=47432 \
  bash "$mailrig" start "$rig_dir" >/dev/null

cleanup() {
  if [[ ${SOAK_KEEP_RIG:-0} != 1 ]]; then
    bash "$mailrig" stop "$rig_dir" >&2 || true
    rm -rf "$rig_dir"
  fi
}
trap cleanup EXIT

if [[ $profile == release ]]; then cargo build --release --bins; else cargo build --bins; fi
bin=${CARGO_TARGET_DIR:-target}/$profile/guichet

status=0
results=()
for backend in ${SOAK_BACKENDS:-sqlite postgres}; do
  echo "[soak] $backend: ${SOAK_MESSAGES:-1000} messages, ${SOAK_KILLS:-100}+ kills, outages of ${SOAK_OUTAGE:-60} s" >&2
  if line=$(python3 scripts/soak.py --rig "$rig_dir" --bin "$bin" --backend "$backend" \
    --messages "${SOAK_MESSAGES:-1000}" --kills "${SOAK_KILLS:-100}" --outage "${SOAK_OUTAGE:-60}"); then
    results+=("PASS $line")
  else
    results+=("FAIL $line"); status=1
  fi
done

if [[ ${SOAK_FUZZ:-1} != 0 ]]; then
  echo "[soak] fuzz: ${SOAK_FUZZ_INPUTS:-1000000} mutated inputs over the corpus" >&2
  # two processes (2 cores), half the inputs each, different seeds
  half=$(( ${SOAK_FUZZ_INPUTS:-1000000} / 2 ))
  RUST_LOG=error "$bin" fuzz --inputs "$half" --seed 1 --crashes tests/fixtures/fuzz-crashes \
    tests/fixtures ../shared/corpus >/tmp/guichet-fuzz-1.json &
  first=$!
  RUST_LOG=error "$bin" fuzz --inputs "$half" --seed 2 --crashes tests/fixtures/fuzz-crashes \
    tests/fixtures ../shared/corpus >/tmp/guichet-fuzz-2.json && wait "$first"; fuzz_rc=$?
  line="$(cat /tmp/guichet-fuzz-1.json) $(cat /tmp/guichet-fuzz-2.json)"
  if ((fuzz_rc == 0)); then
    results+=("PASS $line")
  else
    results+=("FAIL $line"); status=1
  fi
fi

echo
echo "soak summary"
printf '%s\n' "${results[@]}"
exit $status
