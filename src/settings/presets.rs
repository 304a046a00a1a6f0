//! The seed's four example set-ups, as commented settings files (`guichet init`).
//!
//! Values are the seed's "Exemples de configuration" exactly (auto-close,
//! reopen window, attachment size and types, webhook kind); everything else
//! is SPEC.md's defaults, written out so that the admin sees every knob.
//! Mail servers, addresses and webhook URLs are placeholders to edit; secrets
//! come from environment variables (`GUICHET_SECRET`,
//! `GUICHET_IMAP_PASSWORD`, `GUICHET_SMTP_PASSWORD`, and
//! `GUICHET_WEBHOOK_SECRET` for the signed audit webhook of `secure`).

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Agile start-up: 3-day auto-close, 7-day reopen, 5 MB, Discord.
    Startup,
    /// Established company: 7 / 14 days, 10 MB, JSON webhook to a CRM.
    Enterprise,
    /// Specialised technical support: 14 days, unlimited reopen, 25 MB, Slack + monitoring.
    Technical,
    /// Security-minded organisation: 5 days, no reopen, 2 MB, signed audit webhook, antivirus.
    Secure,
}

impl Preset {
    pub const ALL: &'static [Preset] = &[
        Preset::Startup,
        Preset::Enterprise,
        Preset::Technical,
        Preset::Secure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Startup => "startup",
            Preset::Enterprise => "enterprise",
            Preset::Technical => "technical",
            Preset::Secure => "secure",
        }
    }
}

/// The seed's values for one preset.
struct Values {
    title: &'static str,
    auto_close_days: u32,
    reopen_days: i32,
    reopen_comment: &'static str,
    max_size_mb: u32,
    extensions: &'static str,
    antivirus: Antivirus,
    webhooks: &'static str,
}

enum Antivirus {
    On,
    Suggested,
    Off,
}

fn values(preset: Preset) -> Values {
    match preset {
        Preset::Startup => Values {
            title: "Agile start-up: quick turnaround, light attachments, alerts in the team's Discord.",
            auto_close_days: 3,
            reopen_days: 7,
            reopen_comment: "a customer may reopen a closed ticket by replying within 7 days",
            max_size_mb: 5,
            extensions: "jpg,png,pdf,txt",
            antivirus: Antivirus::Off,
            webhooks: STARTUP_WEBHOOKS,
        },
        Preset::Enterprise => Values {
            title: "Established company: standard delays, office documents and logs, events sent to the CRM.",
            auto_close_days: 7,
            reopen_days: 14,
            reopen_comment: "a customer may reopen a closed ticket by replying within 14 days",
            max_size_mb: 10,
            extensions: "jpg,png,pdf,doc,docx,txt,log",
            antivirus: Antivirus::Off,
            webhooks: ENTERPRISE_WEBHOOKS,
        },
        Preset::Technical => Values {
            title: "Specialised technical support: long projects, big logs and dumps, Slack plus monitoring.",
            auto_close_days: 14,
            reopen_days: -1,
            reopen_comment: "-1: a closed ticket can be reopened at any time (long-term premium follow-up)",
            max_size_mb: 25,
            extensions: "jpg,png,pdf,txt,log,zip,sql,json",
            antivirus: Antivirus::Suggested,
            webhooks: TECHNICAL_WEBHOOKS,
        },
        Preset::Secure => Values {
            title: "Security-minded organisation: no reopening, small and few file types, scanned, audited.",
            auto_close_days: 5,
            reopen_days: 0,
            reopen_comment: "0: never reopen; a reply to a closed ticket opens a new, linked one",
            max_size_mb: 2,
            extensions: "jpg,png,pdf,txt",
            antivirus: Antivirus::On,
            webhooks: SECURE_WEBHOOKS,
        },
    }
}

/// A commented `guichet.toml` for the preset; it loads as it is once the
/// environment variables it names are set.
pub fn render(preset: Preset) -> String {
    let v = values(preset);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"# guichet.toml — preset "{name}" (guichet init --preset {name})
# {title}
# Replace every example.com name, address and URL below with your own
# (check-config refuses them until you do), set the environment variables
# named by the *_env keys, then run `guichet check-config`.
# Relative paths are relative to the folder of this file.

[helpdesk]
auto_close_days = {auto_close:<20}# close a ticket after this many days without activity (0 disables)
auto_close_scope = "awaiting_customer"  # only tickets waiting for the customer; "any" closes all idle tickets
reopen_days = {reopen:<24}# {reopen_comment}
subject_tag = "[#{{id}}]"               # how the ticket number appears in subjects
language = "en"                       # language of the emails sent to customers: "en" or "fr"
secret_file = "guichet.secret"        # HMAC key of reply tokens: `guichet init` wrote a random one; keep it (replies to earlier mail need it)
max_auto_replies_per_hour = 5         # automatic replies per sender and hour, against mail loops
reply_to_participants = true          # agents' replies also go to the people in Cc of the ticket
reply_to_senders = []                 # your website's contact-form mailer ("noreply@shop.example.com" or "@forms.example.com"): the person in Reply-To is the customer

[attachments]
enabled = true                        # accept files from customers
max_size_mb = {max_size:<24}# largest accepted file, per file, in MiB
allowed_extensions = "{extensions}"  # accepted types; content is sniffed and must match
storage_dir = "data/attachments"      # where accepted files are stored
retention_days = 365                  # `guichet cleanup` removes files of tickets closed longer ago (0 keeps them)
"#,
        name = preset.name(),
        title = v.title,
        auto_close = v.auto_close_days,
        reopen = v.reopen_days,
        reopen_comment = v.reopen_comment,
        max_size = v.max_size_mb,
        extensions = v.extensions,
    );
    o.push_str(match v.antivirus {
        Antivirus::On => ANTIVIRUS_ON,
        Antivirus::Suggested => ANTIVIRUS_SUGGESTED,
        Antivirus::Off => "",
    });
    o.push_str(MAIL_AND_DEPARTMENTS);
    o.push_str(match preset {
        Preset::Secure => RETENTION_SECURE,
        _ => RETENTION_KEEP,
    });
    o.push_str(v.webhooks);
    o
}

const ANTIVIRUS_ON: &str = r#"
[antivirus]
clamd = "unix:/run/clamav/clamd.ctl"  # ClamAV daemon socket (or "tcp://127.0.0.1:3310"); unreachable = file refused
timeout_seconds = 30                  # longest scan of one file before it is refused as unscanned
"#;

const ANTIVIRUS_SUGGESTED: &str = r#"
# zip archives are allowed: scanning them with ClamAV is recommended.
# [antivirus]
# clamd = "unix:/run/clamav/clamd.ctl"  # ClamAV daemon socket (or "tcp://127.0.0.1:3310")
# timeout_seconds = 30                  # longest scan of one file before it is refused as unscanned
"#;

const MAIL_AND_DEPARTMENTS: &str = r#"
[imap]
host = "imap.example.com"             # mailbox server that receives customers' mail
port = 993                            # 993 for implicit TLS, 143 for STARTTLS
tls = "implicit"                      # implicit | starttls | none (none: loopback only)
username = "support@example.com"      # mailbox login
password_env = "GUICHET_IMAP_PASSWORD"  # mailbox password, read from this variable
folder = "INBOX"                      # folder watched for new mail
poll_seconds = 60                     # how often to look for mail when IDLE is not available
idle = true                           # wait for new mail with IMAP IDLE where the server has it
processed = "keep"                    # stored mail: keep (flagged) | move (to processed_folder) | delete, never before it is stored

[smtp]
host = "smtp.example.com"             # server that sends Guichet's mail
port = 465                            # 465 for implicit TLS, 587 for STARTTLS
tls = "implicit"                      # implicit | starttls | none (none: loopback only)
username = "support@example.com"      # submission login (remove with the password to send without authentication)
password_env = "GUICHET_SMTP_PASSWORD"  # submission password, read from this variable
from = "Example Support <support@example.com>"  # sender of every outgoing message
connections = 4                       # connections the outbox sends over at once (1-16; fewer if the relay limits clients)

# Microsoft 365 or Google Workspace: OAuth2 instead of passwords (README,
# "Microsoft 365 and Google"): `auth = "oauth2"` in [imap] and [smtp] in
# place of password_env, this table, then `guichet oauth login`.
# [oauth2]
# provider = "microsoft"              # microsoft | google | custom (custom: token_url, device_authorization_url)
# tenant = "example.com"              # Microsoft: your domain or tenant id
# client_id = "00000000-0000-0000-0000-000000000000"  # the app registration's client id
# client_secret_env = "GUICHET_OAUTH_SECRET"  # Google always; Microsoft only for a confidential app

# More mailboxes, each with its own login, folder, checkpoint and IDLE connection:
# [[mailboxes]]
# name = "sales"                      # for logs, events and `guichet oauth login --mailbox sales`
# host = "outlook.office365.com"
# username = "sales@example.com"      # a Microsoft shared mailbox: its address, signed in as a user with access
# auth = "oauth2"
# department = "Sales"                # new tickets from this mailbox go to this department

[database]
url = "sqlite://data/guichet.db"      # SQLite file, or postgres://user@host/db for several daemons

[trust]
authserv_ids = []                     # trust no one until you name YOUR receiving server's authserv-id (it must strip forged Authentication-Results)

[[departments]]
name = "Support"                      # shown to agents and used by `#department NAME`
address = "support@example.com"       # mail sent to this address lands in this department
agents = ["alice@example.com", "bob@example.com"]  # agents who receive and answer its tickets
default = true                        # receives mail sent to no department's address
"#;

const RETENTION_KEEP: &str = r#"
[retention]
closed_tickets_days = 0               # tickets closed longer ago are removed with everything they hold (0 keeps them)
raw_mail_days = 0                     # raw copies of mail in closed tickets are dropped after this (0 keeps them)

[mail]
html = true                           # HTML with a text alternative; false sends plain text only
"#;

const RETENTION_SECURE: &str = r#"
[retention]
closed_tickets_days = 365             # tickets closed longer ago are removed with everything they hold (0 keeps them)
raw_mail_days = 30                    # raw copies of mail in closed tickets are dropped after this (0 keeps them)

[mail]
html = true                           # HTML with a text alternative; false sends plain text only
"#;

const STARTUP_WEBHOOKS: &str = r#"
[[webhooks]]
url = "https://discord.com/api/webhooks/ID/TOKEN"  # the team's Discord channel webhook (replace ID/TOKEN)
format = "auto"                       # message shape, detected from the URL: discord
# events: every event is sent when this key is left out
"#;

const ENTERPRISE_WEBHOOKS: &str = r#"
[[webhooks]]
url = "https://crm.example.com/hooks/guichet"  # the CRM's endpoint for ticket events
format = "json"                       # generic JSON body: ticket_id, subject, department, priority, client, status
events = ["ticket.created", "ticket.replied", "ticket.closed", "ticket.reopened", "ticket.escalated"]  # events sent
# secret_env = "GUICHET_WEBHOOK_SECRET"  # uncomment to sign deliveries (Standard Webhooks, whsec_…)
"#;

const TECHNICAL_WEBHOOKS: &str = r#"
[[webhooks]]
url = "https://hooks.slack.com/services/T000/B000/XXXX"  # the team's Slack incoming webhook
format = "auto"                       # message shape, detected from the URL: slack
# events: every event is sent when this key is left out

[[webhooks]]
url = "https://monitoring.example.com/hooks/guichet"  # the monitoring system's endpoint
format = "json"                       # generic JSON body for machines
events = ["ticket.created", "ticket.closed", "ticket.reopened", "attachment.rejected"]  # events sent
"#;

const SECURE_WEBHOOKS: &str = r#"
[[webhooks]]
url = "https://audit.example.com/hooks/guichet"  # the internal audit system's endpoint
format = "json"                       # generic JSON body, every event recorded
secret_env = "GUICHET_WEBHOOK_SECRET"  # signing key (Standard Webhooks, whsec_…), read from this variable
# events: every event is sent when this key is left out
"#;

#[cfg(test)]
mod tests {
    use std::env::VarError;

    use super::*;
    use crate::domain::EventKind;
    use crate::settings::{
        ReopenWindow, Settings, WebhookFormat, load_str_with_env, render_masked, warnings,
    };

    /// The variables the presets name, without touching the process environment.
    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "GUICHET_SECRET" => Ok("preset-test-secret-0123456789".into()),
            "GUICHET_IMAP_PASSWORD" => Ok("preset-imap-pw".into()),
            "GUICHET_SMTP_PASSWORD" => Ok("preset-smtp-pw".into()),
            "GUICHET_WEBHOOK_SECRET" => Ok("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            _ => Err(VarError::NotPresent),
        }
    }

    /// The preset as an admin leaves it: placeholders replaced by their
    /// own names, beside the secret file `guichet init` writes.
    fn loaded(preset: Preset) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("guichet.secret"),
            "preset-test-secret-0123456789\n",
        )
        .unwrap();
        let text = render(preset)
            .replace("example.com", "acme.test")
            .replace("ID/TOKEN", "1234/s3cr3t")
            .replace("T000/B000/XXXX", "T1/B2/s3cr3t");
        load_str_with_env(&text, &dir.path().join("guichet.toml"), &env)
            .unwrap_or_else(|e| panic!("preset {} does not load:\n{e}\n{text}", preset.name()))
    }

    /// A preset left as written is refused, each placeholder with its
    /// line; it trusts no Authentication-Results at all.
    #[test]
    fn a_preset_as_written_is_refused_for_its_placeholders() {
        for &preset in Preset::ALL {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("guichet.secret"),
                "preset-test-secret-0123456789",
            )
            .unwrap();
            let text = render(preset);
            assert!(text.contains("authserv_ids = []"), "{}", preset.name());
            let err = load_str_with_env(&text, &dir.path().join("guichet.toml"), &env)
                .expect_err("placeholders are refused");
            let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
            for key in [
                "imap.host",
                "imap.username",
                "smtp.host",
                "smtp.username",
                "smtp.from",
                "departments[0].address",
                "departments[0].agents",
                "webhooks[0].url",
            ] {
                assert!(
                    keys.contains(&key),
                    "{}: {key} not refused: {keys:?}",
                    preset.name()
                );
            }
            assert!(
                err.problems
                    .iter()
                    .all(|p| p.line > 0 && p.message.starts_with("placeholder")),
                "{err}"
            );
        }
    }

    /// The seed's "Exemples de configuration": auto-close, reopen, size,
    /// types, and the webhooks' formats.
    #[test]
    fn presets_load_with_the_seeds_values() {
        type Row = (
            Preset,
            u32,
            ReopenWindow,
            u64,
            &'static str,
            &'static [WebhookFormat],
            bool,
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            (Preset::Startup, 3, ReopenWindow::Days(7), 5, "jpg,png,pdf,txt", &[WebhookFormat::Auto], false),
            (Preset::Enterprise, 7, ReopenWindow::Days(14), 10, "jpg,png,pdf,doc,docx,txt,log", &[WebhookFormat::Json], false),
            (Preset::Technical, 14, ReopenWindow::Unlimited, 25, "jpg,png,pdf,txt,log,zip,sql,json", &[WebhookFormat::Auto, WebhookFormat::Json], false),
            (Preset::Secure, 5, ReopenWindow::Never, 2, "jpg,png,pdf,txt", &[WebhookFormat::Json], true),
        ];
        assert_eq!(rows.len(), Preset::ALL.len());
        for &(preset, auto_close, reopen, size, types, formats, antivirus) in rows {
            let s = loaded(preset);
            let name = preset.name();
            assert_eq!(s.helpdesk.auto_close_days, auto_close, "{name}");
            assert_eq!(s.helpdesk.reopen_days, reopen, "{name}");
            assert!(s.attachments.enabled, "{name}");
            assert_eq!(s.attachments.max_size_mb, size, "{name}");
            assert_eq!(s.attachments.allowed_extensions.join(","), types, "{name}");
            let got: Vec<WebhookFormat> = s.webhooks.iter().map(|w| w.format).collect();
            assert_eq!(got, formats, "{name}");
            assert_eq!(s.antivirus.is_some(), antivirus, "{name}");
            assert_eq!(s.imap.host, "imap.acme.test", "{name}");
            assert_eq!(s.helpdesk.secret.expose(), "preset-test-secret-0123456789");
        }
    }

    #[test]
    fn preset_webhooks_go_where_the_seed_says() {
        let startup = loaded(Preset::Startup);
        assert!(
            startup.webhooks[0]
                .url
                .starts_with("https://discord.com/api/webhooks/")
        );
        let technical = loaded(Preset::Technical);
        assert!(
            technical.webhooks[0]
                .url
                .starts_with("https://hooks.slack.com/")
        );
        assert!(technical.webhooks[1].url.contains("monitoring"));
        assert!(technical.webhooks[1].wants(EventKind::TicketCreated));
        let enterprise = loaded(Preset::Enterprise);
        assert!(enterprise.webhooks[0].url.contains("crm"));
        let secure = loaded(Preset::Secure);
        assert!(secure.webhooks[0].url.contains("audit"));
        assert!(
            secure.webhooks[0].secret.is_some(),
            "the audit webhook is signed"
        );
        assert!(
            secure.webhooks[0].events.is_empty(),
            "audit gets every event"
        );
        // only `secure` removes data; the others keep today's behaviour
        assert_eq!(secure.retention.closed_tickets_days, 365);
        assert_eq!(secure.retention.raw_mail_days, 30);
        for &p in Preset::ALL.iter().filter(|p| **p != Preset::Secure) {
            assert_eq!(loaded(p).retention, Default::default(), "{}", p.name());
        }
    }

    #[test]
    fn presets_are_commented_and_warn_only_where_the_seed_does() {
        for &preset in Preset::ALL {
            let text = render(preset);
            // Every setting line explains itself.
            for line in text.lines() {
                let setting = line.contains(" = ") && !line.starts_with('#');
                assert!(
                    !setting || line.contains(" # "),
                    "{}: uncommented {line:?}",
                    preset.name()
                );
            }
            let w = warnings(&loaded(preset));
            let wanted = match preset {
                // Unlimited reopen and zip archives without a scanner.
                Preset::Technical => 2,
                _ => 0,
            };
            assert_eq!(w.len(), wanted, "{}: {w:#?}", preset.name());
            let shown = render_masked(&loaded(preset));
            assert!(!shown.contains("preset-imap-pw") && !shown.contains("preset-test-secret"));
        }
    }
}
