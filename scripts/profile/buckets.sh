#!/usr/bin/env bash
# buckets.sh - a profile's CPU split into parts that do not overlap, in
# shares and in microseconds a message (issue 17: what 100x the peer
# leaves room for):
#
#   bash scripts/profile/buckets.sh OUT/ingest.folded N
#
# OUT/ingest.folded comes from scripts/profile.sh (collapsed stacks, each
# line's count the CPU time its samples stand for, in ns); N is the number
# of messages the profile ingested. A stack goes to the first bucket it
# matches, in this order:
#   sqlite   SQLite executing statements and commits (any sqlite3_ frame)
#   handoff  handing statements to sqlx's SQLite thread and back: its
#            channel (flume), wakes (futex), task switches and parking
#   mails    the outgoing mails of a plan (templates, HTML, MIME, outbox)
#   parse    reading the message (mail-parser, the inbound view, preparing)
#   files    the file store
#   imap     fetching (IMAP, TLS)
#   rest     everything else (the decisions, logging, allocation...)
set -euo pipefail
folded=${1:?usage: buckets.sh FOLDED N}
n=${2:?usage: buckets.sh FOLDED N}
awk -v n="$n" '
{
  count = $NF; $NF = ""; s = $0; b = "rest"
  if (s ~ /sqlite3/) b = "sqlite"
  else if (s ~ /flume|futex|finish_task_switch|schedule|park|_raw_spin_unlock|lock_contended|syscall_exit|irqentry/) b = "handoff"
  else if (s ~ /ingest::mails/) b = "mails"
  else if (s ~ /mail_parser|Inbound|ingest::prepare/) b = "parse"
  else if (s ~ /file_store|FileBytes/) b = "files"
  else if (s ~ /imap|rustls/) b = "imap"
  part[b] += count; total += count
}
END {
  for (b in part) printf "%-8s %5.1f %%  %5.0f us a message\n", b, 100 * part[b] / total, part[b] / 1000 / n
  printf "%-8s %5.1f %%  %5.0f us a message\n", "total", 100, total / 1000 / n
}' "$folded" | sort -k2 -rn
