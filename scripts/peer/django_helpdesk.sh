#!/usr/bin/env bash
# django_helpdesk.sh - the peer of issue 7, measured for real: django-helpdesk
# 2.6 (PyPI) drains one IMAP mailbox with its own `manage.py get_email`,
# acknowledgements on, mail sent over SMTP. Run by benches/backlog.rs (phase
# `peer`); usable alone against any rig:
#
#   bash scripts/peer/django_helpdesk.sh --imap-port 41143 --smtp-port 41025 \
#        --user peer-desk@example.test --password secret [--agent agent@example.test]
#
# 1. a Python venv in $PEER_VENV (default /var/cache/guichet-bench/peer-venv),
#    made once with the pinned requirements.txt beside this file and reused
#    while that file is unchanged (python3-venv is installed if missing);
# 2. a fresh Django project run dir (SQLite file, attachments) per run,
#    `migrate`, then one helpdesk Queue reading the mailbox over IMAP on
#    --host:--imap-port (plain IMAP; django-helpdesk upgrades with STARTTLS
#    when the server offers it, without checking the certificate), Django's
#    SMTP backend to --host:--smtp-port (plain, no auth), and with --agent a
#    copy of new tickets and updates to that address (new_ticket_cc,
#    updated_ticket_cc), like Guichet's agent copies;
# 3. counts the mailbox, runs `python manage.py get_email` once, timed, and
#    prints ONE line of JSON on stdout: mailbox_before, mailbox_after (what
#    it left: messages it could not handle), tickets, followups, mails_sent
#    (counted by a subclass of Django's SMTP backend: mails the server
#    accepted), wall_seconds (the whole get_email process, Python start-up
#    included), versions. Everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host=127.0.0.1 imap_port="" smtp_port="" user="" password=${PEER_PASSWORD:-} agent="" keep=0
venv=${PEER_VENV:-/var/cache/guichet-bench/peer-venv}
while (($#)); do
  case $1 in
    --host) host=$2; shift 2 ;;
    --imap-port) imap_port=$2; shift 2 ;;
    --smtp-port) smtp_port=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --password) password=$2; shift 2 ;;
    --agent) agent=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "django_helpdesk.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $imap_port && -n $smtp_port && -n $user && -n $password ]] ||
  { echo "usage: django_helpdesk.sh --imap-port P --smtp-port P --user U --password PW [--host H] [--agent A] [--venv DIR] [--keep]" >&2; exit 2; }
log() { printf '[peer] %s\n' "$*" >&2; }

# 1. the venv, once
stamp="$venv/.guichet-requirements"
if [[ ! -x $venv/bin/python || ! -f $stamp ]] || ! cmp -s "$stamp" "$here/requirements.txt"; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    log "python3 has no venv/ensurepip: installing python3-venv"
    apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; }
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  t0=$(date +%s)
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$stamp"
  log "venv ready in $venv ($(($(date +%s) - t0)) s)"
fi
py="$venv/bin/python"

# 2. a fresh project run dir
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/guichet-peer-XXXXXX")
cleanup() { if ((keep)); then log "kept $run_dir"; else rm -rf "$run_dir"; fi; }
trap cleanup EXIT
export PEER_RUN_DIR=$run_dir PEER_SENT_FILE=$run_dir/sent.txt \
  PEER_SMTP_HOST=$host PEER_SMTP_PORT=$smtp_port \
  PEER_IMAP_HOST=$host PEER_IMAP_PORT=$imap_port PEER_USER=$user PEER_PASSWORD=$password \
  PEER_AGENT=$agent DJANGO_SETTINGS_MODULE=settings PYTHONPATH=$here PYTHONDONTWRITEBYTECODE=1
: >"$PEER_SENT_FILE"
"$py" "$here/manage.py" migrate --noinput >"$run_dir/migrate.log" 2>&1 ||
  { tail -n 30 "$run_dir/migrate.log" >&2; exit 1; }
"$py" "$here/peer_tool.py" queue

# 3. the measured run
before=$("$py" "$here/peer_tool.py" count "$host" "$imap_port" "$user" "$password")
t0=$(date +%s.%N)
"$py" "$here/manage.py" get_email --quiet >"$run_dir/get_email.log" 2>&1 ||
  { tail -n 30 "$run_dir/get_email.log" >&2; exit 1; }
t1=$(date +%s.%N)
grep -v '^\s*$' "$run_dir/get_email.log" | tail -n 5 | sed 's/^/[peer] get_email: /' >&2 || true
after=$("$py" "$here/peer_tool.py" count "$host" "$imap_port" "$user" "$password")
db=$("$py" "$here/peer_tool.py" report)
sent=$(wc -l <"$PEER_SENT_FILE")
versions=$("$py" -c 'import django, importlib.metadata as m, sys; print("\"django_helpdesk\": \"%s\", \"django\": \"%s\", \"python\": \"%s\"" % (m.version("django-helpdesk"), django.get_version(), sys.version.split()[0]))')
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
printf '{"mailbox_before": %d, "mailbox_after": %d, "mails_sent": %d, "wall_seconds": %s, %s, %s}\n' \
  "$before" "$after" "$sent" "$wall" "${db:1:${#db}-2}" "$versions"
