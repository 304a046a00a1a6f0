#!/usr/bin/env bash
# ab.sh - two builds (or two ways of running one) side by side, in
# alternating runs on the bench rig, for a change too small for the noise
# of single runs (issue 17):
#
#   bash scripts/profile/ab.sh ingest ROUNDS N 'CMD_A' 'CMD_B'
#       ingest alone (relay unreachable) of N messages seeded afresh for
#       every run (scripts/profile/seed.py)
#   bash scripts/profile/ab.sh delivery ROUNDS N 'K...' 'CMD_A' 'CMD_B'
#       delivery alone of one ingested outbox to the rig's Postfix, over
#       each connection count K, each run on a copy of the same store
#   bash scripts/profile/ab.sh drain ROUNDS N 'K...' 'CMD_A' 'CMD_B'
#       the whole drain (ingest and delivery together, as the bench's
#       backlog drain) of N messages seeded afresh, over K connections
#
# CMD is a guichet binary, with words before it if needed, e.g.
# 'env GUICHET_ALL_CPUS=1 target/release/guichet'. Each run prints its rate
# (messages or mails a second, from the run's own timings), wall time, user and system CPU and context
# switches (/usr/bin/time); the medians per command close the output.
# Starts the bench rig as scripts/profile.sh does unless it runs; needs jq
# and /usr/bin/time. Runs go in $AB_DIR (default /dev/shm/guichet-ab).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:?ingest or delivery}; rounds=${2:?ROUNDS}; n=${3:?N}; shift 3
ks=1
if [[ $mode != ingest ]]; then ks=${1:?K...}; shift; fi
cmds=()
for cmd in "$@"; do # runs happen in the desk's directory: paths made absolute
  words=()
  for w in $cmd; do
    if [[ $w != /* && -e $w ]]; then w=$PWD/$w; fi
    words+=("$w")
  done
  cmds+=("${words[*]}")
done
((${#cmds[@]} >= 2)) || { echo "ab.sh: two commands to compare" >&2; exit 2; }
rig_dir=${BENCH_RIG:-/dev/shm/guichet-bench}
if ! bash scripts/mailrig.sh status "$rig_dir" >/dev/null 2>&1; then
  MAIL_FORMAT=sdbox IMAP_PORT=41143 IMAPS_PORT=41993 LMTP_PORT=41024 SMTP_PORT=41025 \
    SMTPS_PORT=41465 CLAMD_PORT=43310 PG_PORT=45432 \
    bash scripts/mailrig.sh start "$rig_dir" >/dev/null
fi
# shellcheck disable=SC1091
source "$rig_dir/env"
# shellcheck source=scripts/profile/desk.sh
source scripts/profile/desk.sh
root=${AB_DIR:-/dev/shm/guichet-ab}
rm -rf "$root"; mkdir -p "$root"
results=$root/results.txt

seeded_desk() { # DIR SMTP_PORT: a fresh mailbox of N messages and its desk
  local user
  user="ab$(date +%s%N)-x@example.test"
  mkdir -p "$1"
  python3 scripts/profile/seed.py "$n" "$user" "${LMTP_PORT:-41024}" >/dev/null
  desk_toml "$user" "$2" >"$1/guichet.toml"
}
postfix_idle() {
  until postqueue -c "$POSTFIX_CONFIG_DIR" -p | grep -q "Mail queue is empty"; do sleep 0.1; done
}
one_run() { # LABEL DIR CMD ARGS...: runs, prints and records one line
  local label=$1 dir=$2 cmd=$3; shift 3
  # shellcheck disable=SC2086 # CMD may carry words before the binary
  (cd "$dir" && /usr/bin/time -f "%e %U %S %w %c" -o time.txt $cmd --config guichet.toml run --once "$@" >report.json 2>guichet.log)
  local what ms count wall user sys vol invol
  case $mode in
    ingest) what=ingest_ms count=$n ;;
    drain) what=total_ms count=$n ;;
    *) what=delivery_ms count=$(jq .mail.sent "$dir/report.json") ;;
  esac
  ms=$(jq ".timings.$what" "$dir/report.json")
  read -r wall user sys vol invol <"$dir/time.txt"
  local rate
  rate=$(awk -v c="$count" -v ms="$ms" 'BEGIN { printf "%.0f", c / (ms / 1000) }')
  echo "$label rate=$rate msg/s wall=${wall}s user=${user}s sys=${sys}s switches=$((vol + invol))"
  echo "$label $rate $user $sys $((vol + invol))" >>"$results"
}

if [[ $mode == delivery ]]; then
  seeded_desk "$root/base" 1
  (cd "$root/base" && ${cmds[0]} --config guichet.toml run --once >report.json 2>guichet.log)
  echo "outbox ingested, relay unreachable: $(jq -c .mail "$root/base/report.json")" >&2
  later=$(date -u -d '+10 min' +%Y-%m-%dT%H:%M:%SZ)
fi
for r in $(seq 1 "$rounds"); do
  for k in $ks; do
    for i in "${!cmds[@]}"; do
      label="cmd$((i + 1))"
      [[ $mode != ingest ]] && label="$label/k=$k"
      dir=$root/run
      rm -rf "$dir"
      if [[ $mode == ingest ]]; then
        seeded_desk "$dir" 1
        one_run "$label" "$dir" "${cmds[$i]}"
      elif [[ $mode == drain ]]; then
        postfix_idle
        seeded_desk "$dir" "${SMTP_PORT:-41025}"
        sed -i "s/^port = ${SMTP_PORT:-41025}$/&\nconnections = $k/" "$dir/guichet.toml"
        one_run "$label" "$dir" "${cmds[$i]}"
      else
        postfix_idle
        cp -a "$root/base" "$dir"
        sed -i "s/^port = 1$/port = ${SMTP_PORT:-41025}\nconnections = $k/" "$dir/guichet.toml"
        one_run "$label" "$dir" "${cmds[$i]}" --now "$later"
      fi
    done
  done
done
echo "== medians of $rounds rounds (cmd1 = ${cmds[0]}, cmd2 = ${cmds[1]})"
sort -k1,1 "$results" | awk '
  function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  function flush() { if (n) printf "%-12s rate %6.0f msg/s  cpu %.2f s  switches %.0f\n", label, med(rate, n), med(cpu, n), med(sw, n) }
  $1 != label { flush(); label = $1; n = 0 }
  { n++; rate[n] = $2; cpu[n] = $3 + $4; sw[n] = $5 }
  END { flush() }'
