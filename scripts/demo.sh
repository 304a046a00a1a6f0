#!/usr/bin/env bash
# demo.sh - Guichet on its embedded default, end to end, on this machine:
#   1. installs and starts the local test mail servers (scripts/mailrig.sh,
#      Debian packages, 127.0.0.1 only, nothing leaves the machine);
#   2. builds guichet and writes demo/guichet.toml (SQLite demo/guichet.db);
#   3. a customer emails support; `guichet run --once` opens a ticket;
#   4. shows the ticket, the acknowledgement the customer received and the
#      copy the agent received (read back from their mailboxes).
# Run as root on Debian 12 with Rust installed:  bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rig_dir=${GUICHET_RIG_DIR:-/tmp/guichet-rig}

echo "== 1. local mail servers (Dovecot, Postfix, ClamAV, PostgreSQL)"
bash scripts/mailrig.sh install
if ! bash scripts/mailrig.sh status "$rig_dir" >/dev/null 2>&1; then
  bash scripts/mailrig.sh start "$rig_dir" >/dev/null
fi
set -a; . "$rig_dir/env"; set +a

echo "== 2. build guichet and write demo/guichet.toml"
if ! command -v cargo >/dev/null; then
  echo "   cargo not found: install Rust ${RUST_NEEDED:-1.95} or newer first (https://rustup.rs:" >&2
  echo "   curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then run this again" >&2
  exit 1
fi
echo "   compiling Guichet and its ~300 dependencies with $(cargo --version):"
echo "   the first build takes a few minutes (2 to 10 on a small machine); later ones seconds"
started=$(date +%s)
cargo build
echo "   built in $(($(date +%s) - started)) s"
bin=${CARGO_TARGET_DIR:-target}/debug/guichet
run=$(date +%s)
support="support-demo$run@example.test"
agent="agent-demo$run@example.test"
customer="customer-demo$run@example.test"
rm -rf demo && mkdir -p demo   # a fresh demo each time
cat >demo/guichet.toml <<TOML
# Demo settings: local test servers, SQLite in demo/guichet.db.
[helpdesk]
secret = "demo-secret-change-me-0123456789"
auto_close_days = 7
reopen_days = 7

[attachments]
storage_dir = "files"

[antivirus]
clamd = "tcp://$CLAMD_HOST:$CLAMD_PORT"

[imap]
host = "$IMAP_HOST"
port = $IMAP_PORT
tls = "none"
username = "$support"
password = "$MAIL_PASSWORD"

[smtp]
host = "$SMTP_HOST"
port = $SMTP_PORT
tls = "none"
from = "Demo Support <$support>"

[database]
url = "sqlite://guichet.db"

[[departments]]
name = "Technique"
address = "$support"
agents = ["$agent"]
TOML
$bin --config demo/guichet.toml check-config | tail -n 1

echo "== 3. a customer writes to $support"
python_free_lmtp() {  # deliver a message over LMTP with bash's /dev/tcp
  local rcpt=$1 file=$2
  exec 3<>"/dev/tcp/$IMAP_HOST/$LMTP_PORT"
  read -r _ <&3
  printf 'LHLO demo\r\n' >&3; while read -r l <&3; do [[ $l == 250\ * ]] && break; done
  printf 'MAIL FROM:<%s>\r\n' "$customer" >&3; read -r _ <&3
  printf 'RCPT TO:<%s>\r\n' "$rcpt" >&3; read -r _ <&3
  printf 'DATA\r\n' >&3; read -r _ <&3
  sed 's/$/\r/' "$file" >&3; printf '.\r\n' >&3; read -r l <&3; echo "   LMTP: $l"
  printf 'QUIT\r\n' >&3; exec 3>&-
}
cat >demo/sample.eml <<MAIL
From: Ann Customer <$customer>
To: $support
Subject: My printer is on fire
Message-ID: <demo-$run@customer.example.test>
Date: $(date -R)
Content-Type: text/plain; charset=utf-8

Hello,

since this morning my printer shows error E42 and smells of smoke.
What should I do?

Ann
MAIL
python_free_lmtp "$support" demo/sample.eml

echo "== 4. guichet run --once"
$bin --config demo/guichet.toml run --once
echo
$bin --config demo/guichet.toml tickets list
echo
sleep 1
echo "== the customer's mailbox ($customer):"
doveadm -c "$DOVECOT_CONF" fetch -u "$customer" 'hdr.subject hdr.auto-submitted body' mailbox INBOX ALL | sed 's/^/   /'
echo "== the agent's mailbox ($agent):"
doveadm -c "$DOVECOT_CONF" fetch -u "$agent" 'hdr.subject hdr.reply-to body' mailbox INBOX ALL | sed 's/^/   /'
echo
echo "Done. Try: $bin --config demo/guichet.toml tickets show 1"
