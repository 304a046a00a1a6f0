# desk.sh - sourced by scripts/profile.sh and scripts/profile/ab.sh:
#   desk_toml USER SMTP_PORT   prints a desk's settings for the bench rig's
#                              mailbox USER (SMTP_PORT 1: relay unreachable)
desk_toml() {
  cat <<TOML
[helpdesk]
secret = "profile-secret-0123456789abcdef"

[attachments]
storage_dir = "files"

[imap]
host = "127.0.0.1"
port = ${IMAP_PORT:-41143}
tls = "none"
username = "$1"
password = "secret"

[smtp]
host = "127.0.0.1"
port = $2
tls = "none"
from = "Profile Support <$1>"

[database]
url = "sqlite://guichet.db"

[[departments]]
name = "Support"
address = "$1"
agents = ["agent@example.test"]
TOML
}
