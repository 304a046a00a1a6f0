#!/usr/bin/env bash
# mailrig.sh - Guichet's test servers: a throw-away, loopback-only mail rig made
# of REAL Debian 12 servers, for the integration tests (scripts/test.sh).
#
#   Dovecot 2.3   IMAP 127.0.0.1:10143 (plain + STARTTLS, IDLE), IMAPS :10993,
#                 AUTH PLAIN/LOGIN, and XOAUTH2/OAUTHBEARER taking JWTs
#                 signed with OAUTH_JWT_KEY (see gen_oauth2_key),
#                 LMTP :10024
#   Postfix 3.7   SMTP 127.0.0.1:10025 (STARTTLS, optional AUTH PLAIN/LOGIN),
#                 SMTPS :10465 (implicit TLS); delivers ONLY into Dovecot (LMTP)
#   ClamAV clamd  127.0.0.1:13310 (+ unix socket), offline EICAR-only signatures
#   PostgreSQL 15 127.0.0.1:15432, trust auth, database "helpdesk"
#
# Usage (as root, Debian 12):
#   mailrig.sh install          apt-get the packages (idempotent, starts nothing;
#                               needs root only when something is missing)
#   mailrig.sh start  DIR       write configs/certs/data into DIR, start all four,
#                               wait until each answers, print KEY=VALUE env on
#                               stdout (also saved in DIR/env); logs go to stderr
#   mailrig.sh stop   DIR       stop everything started from DIR (by PID)
#   mailrig.sh status DIR       show what runs; exit 0 only if all four answer
#   mailrig.sh version          the rig version (MAILRIG_VERSION in DIR/env)
#   mailrig.sh down DIR NAME    stop one service (dovecot|postfix|clamd|postgres)
#   mailrig.sh up   DIR NAME    start it again (outages in scripts/soak.sh)
#
# Typical use: `bash scripts/test.sh` does install + start + cargo test. By hand:
#   set -a; eval "$(bash scripts/mailrig.sh start /tmp/guichet-rig)"; set +a
#   ... run tests ...;  bash scripts/mailrig.sh stop /tmp/guichet-rig
#
# Users: EVERY address of the domain example.test is a mailbox, password
# MAIL_PASSWORD (default "secret"), created on first use: a test takes fresh
# users such as t3f9a-support@example.test and sees no one else's mail.
# Plus-addressing works (support+t1.x@example.test -> support's INBOX).
# Postfix routing: *@example.test -> that user's INBOX over LMTP;
#   *@refused.example.test -> 550 at RCPT, *@deferred.example.test -> 450 at
#   RCPT (to test permanent/transient failures); any other domain -> rewritten
#   to catchall@example.test (nothing leaves the machine).
#
# Nothing under /etc is written except: the debconf answers given in `install`
# ("No configuration" for postfix, "manual" for freshclam), the system user
# "mailrig" (owner of the mailboxes) and, only while apt-get runs, a deny-all
# /usr/sbin/policy-rc.d (an existing one is saved and restored), so that the
# packages' own services never start on the standard ports and freshclam
# never phones home.  Every daemon runs from the config files in DIR.  A
# second `start DIR` reuses DIR's data (mailboxes, databases) and the ports of
# its last start; `rm -rf DIR` after `stop` gives a clean slate.
#
# Ports can be changed with environment variables at `start` time:
#   IMAP_PORT IMAPS_PORT LMTP_PORT SMTP_PORT SMTPS_PORT CLAMD_PORT PG_PORT
# MAIL_FORMAT=maildir (default) | sdbox | mdbox picks Dovecot's mail storage.
set -Eeuo pipefail

# Bump when a change to the generated configs or to the env must reach rigs
# that are already running: scripts/test.sh restarts a rig whose version is
# older, and reuses an equal or newer one (so that two checkouts sharing a
# rig never restart it under each other's tests).
RIG_VERSION=3

DOMAIN=example.test
MAIL_PASSWORD=${MAIL_PASSWORD:-secret}
MAIL_FORMAT=${MAIL_FORMAT:-maildir}        # maildir | sdbox | mdbox
# Every *@$DOMAIN is a mailbox; these are only the well-known ones (MAIL_USERS)
MAIL_LOCALPARTS=(support agent customer1 customer2 customer3 catchall)
REFUSED_DOMAIN=refused.$DOMAIN             # RCPT -> 550 (permanent failure)
DEFERRED_DOMAIN=deferred.$DOMAIN           # RCPT -> 450 (transient failure)
MAIL_UIDNAME=mailrig                       # system user owning the mailboxes
HOST=127.0.0.1

# packages, grouped so `install` can time each group
PKG_GROUPS=(
  "dovecot:dovecot-imapd dovecot-lmtpd"
  "postfix:postfix"
  "clamav:clamav-daemon clamdscan"
  "postgresql:postgresql"
  "tools:openssl"
)

log() { printf '[mailrig] %s\n' "$*" >&2; }
die() { printf '[mailrig] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# --------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------
pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

ensure_mail_user() {
  if ! getent passwd "$MAIL_UIDNAME" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$MAIL_UIDNAME"
    log "created system user $MAIL_UIDNAME"
  fi
}

cmd_install() {
  local g name pkgs p missing=() group_missing t0 t_all
  for g in "${PKG_GROUPS[@]}"; do
    for p in ${g#*:}; do pkg_installed "$p" || missing+=("$p"); done
  done
  if ((${#missing[@]} == 0)); then
    log "install: all packages already present"
    if ! getent passwd "$MAIL_UIDNAME" >/dev/null; then need_root; ensure_mail_user; fi
    return 0
  fi
  need_root
  t_all=$(now)
  export DEBIAN_FRONTEND=noninteractive
  # Answer the questions that would otherwise configure system-wide mail
  # delivery / automatic signature downloads.
  debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select No configuration
clamav-freshclam clamav-freshclam/autoupdate_freshclam select manual
EOF
  # Keep the packages from starting their stock services (dovecot on :143,
  # postgres "main" on :5432, freshclam downloading signatures...) with a
  # deny-all policy-rc.d for the duration of apt-get.  An existing one (Docker
  # images ship a deny-all) is saved and put back afterwards.
  local pol=/usr/sbin/policy-rc.d
  [[ -e $pol ]] && cp -p "$pol" "$pol.mailrig-saved"
  trap 'if [[ -e '"$pol"'.mailrig-saved ]]; then mv -f '"$pol"'.mailrig-saved '"$pol"'; else rm -f '"$pol"'; fi' EXIT
  printf '#!/bin/sh\n# temporary, written by mailrig.sh install\nexit 101\n' >"$pol"
  chmod 755 "$pol"
  t0=$(now)
  # another apt/dpkg run (a second rig, unattended-upgrades) may hold the
  # locks: wait for it instead of failing
  apt-get update -q -o DPkg::Lock::Timeout=300 >&2
  log "timing: apt-get update $(elapsed "$t0") s"
  for g in "${PKG_GROUPS[@]}"; do
    name=${g%%:*}; pkgs=${g#*:}; group_missing=()
    for p in $pkgs; do pkg_installed "$p" || group_missing+=("$p"); done
    ((${#group_missing[@]})) || { log "timing: $name already installed"; continue; }
    t0=$(now)
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${group_missing[@]}" >&2
    log "timing: install $name (${group_missing[*]}) $(elapsed "$t0") s"
  done
  ensure_mail_user
  log "timing: install total $(elapsed "$t_all") s"
}

# --------------------------------------------------------------------------
# helpers for start/stop/status
# --------------------------------------------------------------------------
set_ports() {   # defaults, overridable from the environment
  IMAP_PORT=${IMAP_PORT:-10143}
  IMAPS_PORT=${IMAPS_PORT:-10993}
  LMTP_PORT=${LMTP_PORT:-10024}
  SMTP_PORT=${SMTP_PORT:-10025}
  SMTPS_PORT=${SMTPS_PORT:-10465}
  CLAMD_PORT=${CLAMD_PORT:-13310}
  PG_PORT=${PG_PORT:-15432}
}

load_env() {    # load_env DIR [env-wins]: take the ports of DIR's last start
  # stop/status use exactly those; start lets ports set in the environment win
  local d=$1 env_wins=${2:-} k v
  if [[ -f $d/env ]]; then
    while IFS='=' read -r k v; do
      [[ $k == PGPORT ]] && k=PG_PORT
      case $k in
        IMAP_PORT|IMAPS_PORT|LMTP_PORT|SMTP_PORT|SMTPS_PORT|CLAMD_PORT|PG_PORT)
          [[ -n $env_wins && -n ${!k:-} ]] || printf -v "$k" '%s' "$v" ;;
      esac
    done <"$d/env"
  fi
  set_ports
}

resolve_dir() {
  local d=${1:-}
  [[ -n $d ]] || die "missing DIR argument"
  [[ $d == /* ]] || d="$PWD/$d"
  d=${d%/}
  # config files and unix socket paths are built from DIR: keep it simple/short
  [[ $d =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain [A-Za-z0-9._/+-]: $d"
  ((${#d} <= 60)) || die "DIR path too long for unix sockets (max 60 chars): $d"
  printf '%s' "$d"
}

pg_bindir() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $b && -x $b/postgres ]] || die "PostgreSQL server not found (run: $0 install)"
  printf '%s' "$b"
}

# is something accepting connections on HOST:port?
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# read the first line a server sends and check its prefix (IMAP "* OK", SMTP "220")
banner_ok() {
  local port=$1 want=$2 line=''
  {
    exec 3<>"/dev/tcp/$HOST/$port" || return 1
    IFS= read -r -t 3 line <&3 || true
    exec 3>&- 3<&-
  } 2>/dev/null
  [[ $line == "$want"* ]]
}

clamd_ping() {
  local resp=''
  {
    exec 3<>"/dev/tcp/$HOST/$1" || return 1
    printf 'zPING\0' >&3
    IFS= read -r -d '' -t 3 resp <&3 || true
    exec 3>&- 3<&-
  } 2>/dev/null
  [[ $resp == PONG ]]
}

pg_ready() { "$(pg_bindir)/pg_isready" -q -h "$HOST" -p "$1" -t 2; }

wait_for() {    # wait_for SECONDS what cmd args...
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "$what did not come up within ${secs}s (see logs in $D/log)"
}

pid_alive() {   # pid_alive PIDFILE COMM  -> prints pid if the process lives
  local f=$1 comm=$2 pid
  [[ -s $f ]] || return 1
  pid=$(head -n1 "$f" | tr -dc 0-9)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm"* ]] || return 1
  printf '%s' "$pid"
}

wait_gone() {   # wait_gone PID SECONDS NAME ; SIGKILL that one PID as last resort
  local pid=$1 secs=$2 name=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running after ${secs}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# --------------------------------------------------------------------------
# config generation
# --------------------------------------------------------------------------
gen_tls() {     # a tiny CA + a server cert for localhost/127.0.0.1 (kept across restarts)
  local t=$D/tls
  mkdir -p "$t"
  [[ -s $t/fullchain.pem && -s $t/key.pem && -s $t/ca.pem ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mailrig test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$t/key.pem" -out "$t/server.csr" 2>/dev/null
  cat >"$t/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:mail.$DOMAIN,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
    -CAcreateserial -days 3650 -extfile "$t/server.ext" -out "$t/cert.pem" 2>/dev/null
  cat "$t/cert.pem" "$t/ca.pem" >"$t/fullchain.pem"
  chmod 600 "$t/ca.key" "$t/key.pem"
  chmod 644 "$t/ca.pem" "$t/cert.pem" "$t/fullchain.pem"
}

gen_oauth2_key() {  # the HS256 key of the OAuth2 access tokens (kept across restarts)
  local c=$1 k
  if [[ ! -s $c/oauth2-key ]]; then
    head -c 32 /dev/urandom | base64 -w0 >"$c/oauth2-key"
  fi
  k=$(cat "$c/oauth2-key")
  # Dovecot looks up shared/<azp>/<alg>/<kid>; azp and kid default to "default"
  mkdir -p "$c/oauth2-keys/default/HS256" "$c/oauth2-keys/shared/default/HS256"
  printf '%s' "$k" >"$c/oauth2-keys/default/HS256/default"
  printf '%s' "$k" >"$c/oauth2-keys/shared/default/HS256/default"
  chmod -R a+rX "$c/oauth2-keys"
}

gen_dovecot() {
  local c=$D/dovecot u loc
  case $MAIL_FORMAT in   # Maildir by default; Dovecot's own dbox formats optional
    maildir) loc='maildir:~/Maildir' ;;
    sdbox)   loc='sdbox:~/sdbox' ;;
    mdbox)   loc='mdbox:~/mdbox' ;;
    *) die "MAIL_FORMAT must be maildir, sdbox or mdbox" ;;
  esac
  mkdir -p "$c" "$c/state" "$D/mail"
  chown "$MAIL_UIDNAME:$MAIL_UIDNAME" "$D/mail"
  chmod 750 "$D/mail"
  # passwd-file keyed by DOMAIN (username_format=%Ld below): every
  # user@$DOMAIN has this password, any other domain is unknown
  printf '%s:{PLAIN}%s\n' "$DOMAIN" "$MAIL_PASSWORD" >"$c/domains"
  chown root:dovecot "$c/domains"; chmod 640 "$c/domains"
  gen_oauth2_key "$c"
  cat >"$c/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$c/oauth2-keys/
username_attribute = email
EOF
  cat >"$c/dovecot.conf" <<EOF
# generated by mailrig.sh - Dovecot runs ONLY from this file (dovecot -c)
instance_name = guichet-rig
base_dir = $c/run
state_dir = $c/state
protocols = imap lmtp
listen = $HOST
log_path = $D/log/dovecot.log
info_log_path = $D/log/dovecot.log
auth_verbose = yes
auth_failure_delay = 0
shutdown_clients = yes

ssl = yes
ssl_cert = <$D/tls/fullchain.pem
ssl_key = <$D/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer

# users: any *@$DOMAIN, password "$MAIL_PASSWORD" (the passwd-file is looked
# up by domain); all mail owned by one system user, home created on first use
passdb {
  driver = passwd-file
  mechanisms = none plain login
  args = scheme=PLAIN username_format=%Ld $c/domains
}
# OAuth2 (XOAUTH2 / OAUTHBEARER, IMAP and Postfix SMTP AUTH alike): the
# bearer token is a JWT signed (HS256) with the rig's key (OAUTH_JWT_KEY in
# the env); the tests' token service signs the access tokens it hands out
# with it, so Dovecot checks signature, expiry and account ("email" claim)
# without calling back into a test process.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $c/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  # no allow_all_users: LMTP checks the passdb, so other domains are rejected
  args = uid=$MAIL_UIDNAME gid=$MAIL_UIDNAME home=$D/mail/%Ld/%Ln
}
first_valid_uid = 1
mail_location = $loc
mail_fsync = never
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
# IDLE: notice new mail within ~1s even where inotify is unavailable
mailbox_idle_check_interval = 1 secs

namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
}

protocol imap {
  mail_max_userip_connections = 100
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
}

service imap-login {
  inet_listener imap {
    address = $HOST
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = $HOST
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = $HOST
    port = $LMTP_PORT
  }
}
# No brute-force "auth penalty": after a failed login (e.g. a negative test)
# Dovecot would otherwise delay the next logins from 127.0.0.1 by 2..15 s,
# IMAP and SMTP AUTH alike.  A mode-0 listener is not created at all.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  # Postfix SMTP AUTH (smtpd_sasl_type = dovecot) asks Dovecot
  unix_listener auth-postfix {
    mode = 0666
  }
}
EOF
}

gen_postfix() {
  # conf/ must not contain the queue: postfix-script checks that the whole
  # config tree is root-owned, and queue subdirs are owned by "postfix"
  local p=$D/postfix c=$D/postfix/conf u
  mkdir -p "$c" "$p/queue" "$p/data"
  chown root:root "$p" "$c" "$p/queue"; chmod 755 "$p" "$c" "$p/queue"
  chown postfix:postfix "$p/data"
  # every address of $DOMAIN is a mailbox (Dovecot creates it on delivery)
  printf '/@%s$/ OK\n' "${DOMAIN//./\\.}" >"$c/vmailbox.regexp"
  # two domains that always refuse, to test permanent and transient failures
  cat >"$c/refuse.regexp" <<EOF
/@${REFUSED_DOMAIN//./\\.}\$/ 550 5.1.1 mailrig refuses every address of $REFUSED_DOMAIN
/@${DEFERRED_DOMAIN//./\\.}\$/ 450 4.2.0 mailrig defers every address of $DEFERRED_DOMAIN
EOF
  # Every recipient outside $DOMAIN is rewritten to catchall@$DOMAIN: nothing
  # can leave the machine, and a test can still see what "went out".
  cat >"$c/catchall.regexp" <<EOF
/^(postmaster|abuse|mailer-daemon)@${DOMAIN//./\\.}\$/ catchall@$DOMAIN
!/@${DOMAIN//./\\.}\$/ catchall@$DOMAIN
EOF
  : >"$D/log/postfix.log"
  cat >"$c/main.cf" <<EOF
# generated by mailrig.sh - Postfix runs ONLY from this dir (postfix -c)
compatibility_level = 3.6
queue_directory = $p/queue
data_directory = $p/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $D/log/postfix.log
maillog_file_prefixes = $D/log
myhostname = mail.$DOMAIN
mydomain = $DOMAIN
myorigin = $DOMAIN
mydestination =
inet_interfaces = $HOST
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = \$myhostname ESMTP guichet mailrig
recipient_delimiter = +
message_size_limit = 52428800

# Delivery: only $DOMAIN, only into Dovecot over LMTP.  No smtp/relay
# service exists in master.cf and all other transports are "error".
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = regexp:$c/vmailbox.regexp
virtual_alias_maps = regexp:$c/catchall.regexp
# default is \$virtual_alias_maps: with a regexp catch-all EVERY domain would
# become an alias domain ("User unknown in virtual alias table")
virtual_alias_domains =
virtual_transport = lmtp:inet:$HOST:$LMTP_PORT
default_transport = error:mailrig never delivers outside the rig
relay_transport = error:mailrig never delivers outside the rig
local_transport = error:mailrig has no local delivery
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no

# Fast retries so a test does not wait minutes after a Dovecot hiccup
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 30s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
in_flow_delay = 0
smtpd_error_sleep_time = 0

# Clients on loopback may send without auth; AUTH PLAIN/LOGIN (Dovecot
# passdb) is offered too, also without TLS.
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$c/refuse.regexp
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/dovecot/run/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = no
smtpd_tls_security_level = may
smtpd_tls_cert_file = $D/tls/fullchain.pem
smtpd_tls_key_file = $D/tls/key.pem
smtpd_tls_loglevel = 0
smtpd_tls_received_header = yes
EOF
  # master.cf: no chroot (nothing to copy into a jail), loopback listeners only
  cat >"$c/master.cf" <<EOF
# generated by mailrig.sh
# service           type  private unpriv chroot wakeup maxproc command
$HOST:$SMTP_PORT  inet  n       -      n      -      -       smtpd
$HOST:$SMTPS_PORT inet  n       -      n      -      -       smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
tlsmgr     unix  -       -      n      1000?  1       tlsmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
proxywrite unix  -       -      n      -      1       proxymap
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
lmtp       unix  -       -      n      -      -       lmtp
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
EOF
  # `postfix start` stalls ~2 s when main.cf is only a moment old (Postfix
  # waits out same-second config changes); back-date the generated files.
  touch -d '-10 seconds' "$c"/*
}

gen_clamav() {
  local c=$D/clamav eicar
  mkdir -p "$c/db"
  # EICAR test string (68 bytes) -> md5 hash signature (.hdb, matches the
  # exact file, e.g. a decoded attachment) and a body signature (.ndb, matches
  # the string anywhere).  No download from the internet is ever attempted.
  eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
  printf '%s:68:Eicar-Test-Signature\n' \
    "$(printf '%s' "$eicar" | md5sum | cut -d' ' -f1)" >"$c/db/mailrig.hdb"
  printf 'Eicar-Test-Signature:0:*:%s\n' \
    "$(printf '%s' "$eicar" | od -An -v -tx1 | tr -d ' \n')" >"$c/db/mailrig.ndb"
  : >"$D/log/clamd.log"
  cat >"$c/clamd.conf" <<EOF
# generated by mailrig.sh - clamd runs ONLY from this file (clamd -c)
# runs as root (no "User"), so path scans (SCAN/CONTSCAN) can read any file
LogFile $D/log/clamd.log
LogTime yes
PidFile $c/clamd.pid
DatabaseDirectory $c/db
TCPSocket $CLAMD_PORT
TCPAddr $HOST
LocalSocket $c/clamd.sock
LocalSocketMode 666
Foreground no
MaxThreads 4
StreamMaxLength 50M
ScanMail yes
SelfCheck 0
ConcurrentDatabaseReload no
EOF
}

gen_postgres() {
  local c=$D/pg bin
  bin=$(pg_bindir)
  mkdir -p "$c/run"
  chown postgres:postgres "$c" "$c/run"
  chmod 700 "$c"
  # postgres must be able to reach DIR (e.g. DIR under /root would fail)
  runuser -u postgres -- test -x "$D" || die "user postgres cannot enter $D"
  if [[ ! -s $c/data/PG_VERSION ]]; then
    local t0; t0=$(now)
    (cd / && runuser -u postgres -- "$bin/initdb" -D "$c/data" -U postgres \
      --auth=trust --encoding=UTF8 --no-locale --no-sync >"$c/initdb.log" 2>&1) ||
      { cat "$c/initdb.log" >&2; die "initdb failed"; }
    echo "include_if_exists = 'mailrig.conf'" >>"$c/data/postgresql.conf"
    log "timing: postgres initdb $(elapsed "$t0") s"
  fi
  # regenerated on every start so port changes apply; durability is off (test rig)
  cat >"$c/data/mailrig.conf" <<EOF
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$c/run'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  chown postgres:postgres "$c/data/mailrig.conf"
  touch "$D/log/postgres.log"; chown postgres:postgres "$D/log/postgres.log"
}

# --------------------------------------------------------------------------
# start / stop / status
# --------------------------------------------------------------------------
check_free() {
  local name=$1 port=$2
  port_open "$port" && die "port $HOST:$port (for $name) is already in use; stop it or set ${name}=..."
  return 0
}

precheck_ports() {  # fail before starting anything if a port of a stopped service is taken
  pid_alive "$D/pg/data/postmaster.pid" postgres >/dev/null || check_free PG_PORT "$PG_PORT"
  pid_alive "$D/clamav/clamd.pid" clamd >/dev/null || check_free CLAMD_PORT "$CLAMD_PORT"
  pid_alive "$D/dovecot/run/master.pid" dovecot >/dev/null || {
    check_free IMAP_PORT "$IMAP_PORT"; check_free IMAPS_PORT "$IMAPS_PORT"; check_free LMTP_PORT "$LMTP_PORT"; }
  pid_alive "$D/postfix/queue/pid/master.pid" master >/dev/null || {
    check_free SMTP_PORT "$SMTP_PORT"; check_free SMTPS_PORT "$SMTPS_PORT"; }
  return 0
}

start_postgres() {
  local bin; bin=$(pg_bindir)
  if pid_alive "$D/pg/data/postmaster.pid" postgres >/dev/null; then log "postgres already running"; return; fi
  check_free PG_PORT "$PG_PORT"
  # left by a killed rig (CI ends every process of the session); its PID may
  # now belong to another process, which would make postgres refuse to start
  rm -f "$D/pg/data/postmaster.pid"
  (cd / && runuser -u postgres -- "$bin/pg_ctl" -D "$D/pg/data" -l "$D/log/postgres.log" \
    -w -t 60 start </dev/null >/dev/null 2>>"$D/log/postgres.log" 9>&-) || { tail -n 20 "$D/log/postgres.log" >&2; die "postgres failed"; }
  wait_for 30 postgres pg_ready "$PG_PORT"
  # database "helpdesk" owned by role "helpdesk" (password ignored: trust auth)
  local psql=("$bin/psql" -X -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
  if [[ -z $("${psql[@]}" -tAc "select 1 from pg_roles where rolname='helpdesk'") ]]; then
    "${psql[@]}" -c "create role helpdesk login password '$MAIL_PASSWORD'"
  fi
  if [[ -z $("${psql[@]}" -tAc "select 1 from pg_database where datname='helpdesk'") ]]; then
    "${psql[@]}" -c "create database helpdesk owner helpdesk"
  fi
}

start_clamd() {
  if pid_alive "$D/clamav/clamd.pid" clamd >/dev/null; then log "clamd already running"; return; fi
  check_free CLAMD_PORT "$CLAMD_PORT"
  rm -f "$D/clamav/clamd.sock"
  clamd -c "$D/clamav/clamd.conf" </dev/null >>"$D/log/clamd.log" 2>&1 9>&- ||
    { tail -n 20 "$D/log/clamd.log" >&2; die "clamd failed"; }
  wait_for 60 clamd clamd_ping "$CLAMD_PORT"
}

start_dovecot() {
  if pid_alive "$D/dovecot/run/master.pid" dovecot >/dev/null; then log "dovecot already running"; return; fi
  check_free IMAP_PORT "$IMAP_PORT"; check_free IMAPS_PORT "$IMAPS_PORT"; check_free LMTP_PORT "$LMTP_PORT"
  rm -f "$D/dovecot/run/master.pid"   # stale, as for postgres
  doveconf -c "$D/dovecot/dovecot.conf" -n >/dev/null || die "invalid dovecot config"
  # a socket left by an older config would make auth log "Connection refused"
  rm -f "$D/dovecot/run/anvil-auth-penalty"
  # daemons must not inherit our stdout/stderr, or `$(mailrig.sh start ...)`
  # and `... | grep` would wait forever for EOF; nor fd 9, the start lock
  dovecot -c "$D/dovecot/dovecot.conf" </dev/null >>"$D/log/dovecot.log" 2>&1 9>&- || { tail -n 20 "$D/log/dovecot.log" >&2; die "dovecot failed"; }
  wait_for 30 "dovecot imap" banner_ok "$IMAP_PORT" '* OK'
  wait_for 30 "dovecot lmtp" banner_ok "$LMTP_PORT" '220'
  wait_for 30 "dovecot imaps" port_open "$IMAPS_PORT"
  wait_for 30 "dovecot auth socket" test -S "$D/dovecot/run/auth-postfix"
}

start_postfix() {
  if pid_alive "$D/postfix/queue/pid/master.pid" master >/dev/null; then log "postfix already running"; return; fi
  check_free SMTP_PORT "$SMTP_PORT"; check_free SMTPS_PORT "$SMTPS_PORT"
  postfix -c "$D/postfix/conf" start </dev/null >>"$D/log/postfix.log" 2>&1 9>&- ||
    { tail -n 20 "$D/log/postfix.log" >&2; die "postfix failed"; }
  wait_for 30 postfix banner_ok "$SMTP_PORT" '220'
  wait_for 30 "postfix smtps" port_open "$SMTPS_PORT"
}

print_env() {
  local users="" u
  for u in "${MAIL_LOCALPARTS[@]}"; do users+="${users:+,}$u@$DOMAIN"; done
  cat <<EOF
MAILRIG_DIR=$D
MAIL_DOMAIN=$DOMAIN
MAIL_USERS=$users
MAIL_PASSWORD=$MAIL_PASSWORD
MAIL_FORMAT=$MAIL_FORMAT
IMAP_HOST=$HOST
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
LMTP_PORT=$LMTP_PORT
SMTP_HOST=$HOST
SMTP_PORT=$SMTP_PORT
SMTPS_PORT=$SMTPS_PORT
TLS_CA_FILE=$D/tls/ca.pem
CLAMD_HOST=$HOST
CLAMD_PORT=$CLAMD_PORT
CLAMD_SOCKET=$D/clamav/clamd.sock
CLAMD_CONF=$D/clamav/clamd.conf
DOVECOT_CONF=$D/dovecot/dovecot.conf
POSTFIX_CONFIG_DIR=$D/postfix/conf
PGHOST=$HOST
PGPORT=$PG_PORT
PGUSER=postgres
PGDATABASE=helpdesk
DATABASE_URL=postgresql://helpdesk:$MAIL_PASSWORD@$HOST:$PG_PORT/helpdesk
PG_ADMIN_URL=postgresql://postgres@$HOST:$PG_PORT/postgres
MAIL_ANY_USER=1
MAILRIG_VERSION=$RIG_VERSION
OAUTH_JWT_KEY=$(cat "$D/dovecot/oauth2-key")
SMTP_REFUSED_DOMAIN=$REFUSED_DOMAIN
SMTP_DEFERRED_DOMAIN=$DEFERRED_DOMAIN
EOF
}

cmd_start() {
  need_root
  D=$(resolve_dir "${1:-}")
  load_env "$D" env-wins
  command -v dovecot >/dev/null && command -v postfix >/dev/null && command -v clamd >/dev/null ||
    die "packages missing: run '$0 install' first"
  local t_all t0
  t_all=$(now)
  # two test runs starting the same rig at once: the second waits, then
  # finds everything running
  mkdir -p "$D"
  exec 9>"$D/.start.lock"
  flock -w 300 9 || die "another 'start $D' holds $D/.start.lock"
  # all or nothing: if anything fails, stop whatever runs from DIR
  trap 'rc=$?; if ((rc)); then log "start failed: stopping services of $D"; cmd_stop "$D" || true; fi' EXIT
  precheck_ports
  mkdir -p "$D" "$D/log"
  chmod 755 "$D"
  ensure_mail_user
  # mailboxes of fresh test users (t<token>-...) from earlier runs
  [[ -d $D/mail/$DOMAIN ]] &&
    find "$D/mail/$DOMAIN" -mindepth 1 -maxdepth 1 -name 't*' -mtime +1 -exec rm -rf {} +
  t0=$(now)
  gen_tls; gen_dovecot; gen_postfix; gen_clamav; gen_postgres
  log "timing: configs+certs $(elapsed "$t0") s"
  t0=$(now); start_postgres; log "timing: postgres up $(elapsed "$t0") s  ($HOST:$PG_PORT)"
  t0=$(now); start_clamd;    log "timing: clamd up $(elapsed "$t0") s  ($HOST:$CLAMD_PORT)"
  t0=$(now); start_dovecot;  log "timing: dovecot up $(elapsed "$t0") s  (imap $IMAP_PORT, imaps $IMAPS_PORT, lmtp $LMTP_PORT)"
  t0=$(now); start_postfix;  log "timing: postfix up $(elapsed "$t0") s  (smtp $SMTP_PORT, smtps $SMTPS_PORT)"
  print_env >"$D/env"
  trap - EXIT
  log "timing: start total $(elapsed "$t_all") s; env saved in $D/env"
  cat "$D/env"
}

cmd_stop() {
  need_root
  D=$(resolve_dir "${1:-}")
  load_env "$D"
  local pid pids=() names=() ports=() i port
  # signal all four first, then wait: shutdown takes ~2.5 s instead of ~8 s
  if pid=$(pid_alive "$D/postfix/queue/pid/master.pid" master); then
    kill -TERM "$pid"; pids+=("$pid"); names+=(postfix)        # = `postfix stop`
    ports+=("$SMTP_PORT" "$SMTPS_PORT")
  fi
  if pid=$(pid_alive "$D/dovecot/run/master.pid" dovecot); then
    kill -TERM "$pid"; pids+=("$pid"); names+=(dovecot)
    ports+=("$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT")
  fi
  if pid=$(pid_alive "$D/clamav/clamd.pid" clamd); then
    kill -TERM "$pid"; pids+=("$pid"); names+=(clamd); ports+=("$CLAMD_PORT")
  fi
  if pid=$(pid_alive "$D/pg/data/postmaster.pid" postgres); then
    kill -INT "$pid"; pids+=("$pid"); names+=(postgres)        # = pg_ctl stop -m fast
    ports+=("$PG_PORT")
  fi
  for i in "${!pids[@]}"; do
    wait_gone "${pids[$i]}" 30 "${names[$i]}"
    log "${names[$i]} stopped"
  done
  # children that still hold a listening socket would make the next start fail
  for port in "${ports[@]}"; do
    for ((i = 0; i < 100; i++)); do port_open "$port" || break; sleep 0.1; done
  done
  rm -f "$D/clamav/clamd.sock"
  return 0
}

cmd_status() {
  D=$(resolve_dir "${1:-}")
  load_env "$D"
  local bad=0 pid
  report() {  # name pid-or-empty ok-flag detail
    if [[ -n $2 && $3 == 1 ]]; then printf '%-9s running  pid %-7s %s\n' "$1" "$2" "$4"
    elif [[ -n $2 ]]; then printf '%-9s NOT ANSWERING pid %s %s\n' "$1" "$2" "$4"; bad=1
    else printf '%-9s stopped\n' "$1"; bad=1; fi
  }
  pid=$(pid_alive "$D/dovecot/run/master.pid" dovecot || true)
  ok=0; banner_ok "$IMAP_PORT" '* OK' && banner_ok "$LMTP_PORT" 220 && port_open "$IMAPS_PORT" && ok=1
  report dovecot "$pid" $ok "imap $HOST:$IMAP_PORT imaps :$IMAPS_PORT lmtp :$LMTP_PORT"
  pid=$(pid_alive "$D/postfix/queue/pid/master.pid" master || true)
  ok=0; banner_ok "$SMTP_PORT" 220 && port_open "$SMTPS_PORT" && ok=1
  report postfix "$pid" $ok "smtp $HOST:$SMTP_PORT smtps :$SMTPS_PORT"
  pid=$(pid_alive "$D/clamav/clamd.pid" clamd || true)
  ok=0; clamd_ping "$CLAMD_PORT" && ok=1
  report clamd "$pid" $ok "$HOST:$CLAMD_PORT"
  pid=$(pid_alive "$D/pg/data/postmaster.pid" postgres || true)
  ok=0; pg_ready "$PG_PORT" && ok=1
  report postgres "$pid" $ok "$HOST:$PG_PORT db helpdesk"
  return $bad
}

# one service of a running rig down or up again (an outage, for the soak)
cmd_service() {
  need_root
  local verb=$1 name=$3 pid file comm
  D=$(resolve_dir "${2:-}")
  load_env "$D"
  case $name in
    dovecot)  file=$D/dovecot/run/master.pid; comm=dovecot ;;
    postfix)  file=$D/postfix/queue/pid/master.pid; comm=master ;;
    clamd)    file=$D/clamav/clamd.pid; comm=clamd ;;
    postgres) file=$D/pg/data/postmaster.pid; comm=postgres ;;
    *) die "unknown service '$name' (dovecot|postfix|clamd|postgres)" ;;
  esac
  if [[ $verb == down ]]; then
    if pid=$(pid_alive "$file" "$comm"); then
      if [[ $name == postgres ]]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
      wait_gone "$pid" 30 "$name"
    fi
    log "$name down"
  else
    "start_$name"
    log "$name up"
  fi
}

case ${1:-} in
  install) cmd_install ;;
  down|up) cmd_service "$1" "${2:-}" "${3:-}" ;;
  start)   cmd_start "${2:-}" ;;
  stop)    cmd_stop "${2:-}" ;;
  status)  cmd_status "${2:-}" ;;
  version) echo "$RIG_VERSION" ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
