//! Table tests of the settings rules: each case edits a valid file and says
//! which key must be reported and with what words.

use std::env::VarError;
use std::path::{Path, PathBuf};

use super::*;
use crate::settings::{render_masked, warnings};

pub(crate) const BASE: &str = r#"[helpdesk]
auto_close_days = 7
auto_close_scope = "awaiting_customer"
reopen_days = 7
subject_tag = "[#{id}]"
language = "en"
secret_env = "T_SECRET"

[attachments]
enabled = true
max_size_mb = 5
allowed_extensions = "jpg,jpeg,png"
storage_dir = "data/attachments"

[imap]
host = "imap.mycorp.test"
port = 993
tls = "implicit"
username = "imap-user@mycorp.test"
password_env = "T_IMAP"
folder = "INBOX"
poll_seconds = 60
idle = true

[smtp]
host = "smtp.mycorp.test"
port = 465
tls = "implicit"
username = "smtp-user@mycorp.test"
password_env = "T_SMTP"
from = "Example Support <support@mycorp.test>"

[database]
url = "sqlite://data/guichet.db"

[[departments]]
name = "Technique"
address = "support@mycorp.test"
agents = ["alice@mycorp.test"]
default = true

[[webhooks]]
url = "https://discord.com/api/webhooks/123/abc"
events = ["ticket.created"]
"#;

pub(crate) const SECRET: &str = "0123456789abcdef-hmac-key";
pub(crate) const IMAP_PASSWORD: &str = "imap-pass-Zq81";
pub(crate) const SMTP_PASSWORD: &str = "smtp-pass-Wx42";

/// The test environment: never the process's.
pub(crate) fn env(name: &str) -> Result<String, VarError> {
    match name {
        "T_SECRET" => Ok(SECRET.into()),
        "T_IMAP" => Ok(IMAP_PASSWORD.into()),
        "T_SMTP" => Ok(SMTP_PASSWORD.into()),
        "T_EMPTY" => Ok(String::new()),
        "T_SHORT" => Ok("short".into()),
        "T_WHSEC" => Ok("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        _ => Err(VarError::NotPresent),
    }
}

fn check(text: &str) -> Result<Settings, SettingsError> {
    load_str_with_env(text, Path::new("/etc/guichet/guichet.toml"), &env)
}

/// BASE with each `(find, replace)` applied once; `find` must be there.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (find, replace) in edits {
        assert!(text.contains(find), "edit target {find:?} not in BASE");
        text = text.replacen(find, replace, 1);
    }
    text
}

#[test]
fn base_loads_with_documented_values() {
    let s = check(BASE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.helpdesk.auto_close_days, 7);
    assert_eq!(s.helpdesk.reopen_days, ReopenWindow::Days(7));
    assert_eq!(s.helpdesk.secret.expose(), SECRET);
    assert_eq!(
        s.helpdesk.secret_source,
        SecretSource::Env("T_SECRET".into())
    );
    assert_eq!(s.imap.password.expose(), IMAP_PASSWORD);
    assert_eq!(s.smtp.password.as_ref().unwrap().expose(), SMTP_PASSWORD);
    assert_eq!(s.smtp.from.name.as_deref(), Some("Example Support"));
    assert_eq!(s.smtp.from.address.as_str(), "support@mycorp.test");
    // [mail] left out: HTML with a text alternative
    assert!(s.mail.html);
    let text_only = check(&edited(&[(
        "[database]",
        "[mail]\nhtml = false\n\n[database]",
    )]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!text_only.mail.html);
    assert_eq!(s.attachments.allowed_extensions, ["jpg", "jpeg", "png"]);
    assert_eq!(
        s.attachments.storage_dir,
        PathBuf::from("/etc/guichet/data/attachments")
    );
    assert_eq!(s.database.url, "sqlite:///etc/guichet/data/guichet.db");
    assert_eq!(s.webhooks[0].events, [EventKind::TicketCreated]);
    assert_eq!(s.webhooks[0].timeout_seconds, 10, "the default deadline");
    assert_eq!(s.webhooks[0].ca_file, None);
    assert!(!s.webhooks[0].system_events, "system events are asked for");
    assert!(s.departments[0].default);
}

/// (case, edits, key reported, words in message or accepted)
type BadCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const BAD: &[BadCase] = &[
    ("negative reopen", &[("reopen_days = 7", "reopen_days = -2")], "helpdesk.reopen_days", "-1 (unlimited), 0 (never"),
    ("reply_to_senders not an address", &[("language = \"en\"\n", "language = \"en\"\nreply_to_senders = [\"shop\"]\n")], "helpdesk.reply_to_senders", "neither an address"),
    ("reply_to_senders and its older name", &[("language = \"en\"\n", "language = \"en\"\nreply_to_senders = [\"a@b.test\"]\nform_senders = [\"c@d.test\"]\n")], "helpdesk.form_senders", "older name of `reply_to_senders`"),
    ("reopen too big", &[("reopen_days = 7", "reopen_days = 99999")], "helpdesk.reopen_days", "99999 is not allowed"),
    ("auto_close negative", &[("auto_close_days = 7", "auto_close_days = -1")], "helpdesk.auto_close_days", "0 (never close"),
    ("auto_close float", &[("auto_close_days = 7", "auto_close_days = 7.5")], "helpdesk.auto_close_days", "expected a whole number, found the number 7.5"),
    ("scope", &[("\"awaiting_customer\"", "\"all\"")], "helpdesk.auto_close_scope", "awaiting_customer, any"),
    ("size is a word", &[("max_size_mb = 5", "max_size_mb = \"big\"")], "attachments.max_size_mb", "found the string \"big\""),
    ("size quoted number", &[("max_size_mb = 5", "max_size_mb = \"5\"")], "attachments.max_size_mb", "without quotes"),
    ("size zero", &[("max_size_mb = 5", "max_size_mb = 0")], "attachments.max_size_mb", "from 1 to 1024"),
    ("enabled word", &[("enabled = true", "enabled = \"yes\"")], "attachments.enabled", "true or false"),
    ("http webhook", &[("https://discord.com/api/webhooks/123/abc", "http://hooks.mycorp.test/x")], "webhooks[0].url", "not a loopback host"),
    ("http webhook 10.x", &[("https://discord.com/api/webhooks/123/abc", "http://10.0.0.1/x")], "webhooks[0].url", "`https://`"),
    ("same webhook twice", &[("events = [\"ticket.created\"]\n", "events = [\"ticket.created\"]\n\n[[webhooks]]\nurl = \"https://discord.com/api/webhooks/123/abc\"\nformat = \"json\"\n")], "webhooks[1].url", "earlier [[webhooks]] entry"),
    ("ftp webhook", &[("https://discord.com/api/webhooks/123/abc", "ftp://mycorp.test/x")], "webhooks[0].url", "not a web address"),
    ("webhook not url", &[("https://discord.com/api/webhooks/123/abc", "discord webhook")], "webhooks[0].url", "not a URL"),
    ("unknown tls", &[("tls = \"implicit\"", "tls = \"ssl\"")], "imap.tls", "implicit, starttls, none"),
    ("tls none remote imap", &[("tls = \"implicit\"", "tls = \"none\"")], "imap.tls", "not a loopback host"),
    ("tls none remote smtp", &[("port = 465\ntls = \"implicit\"", "port = 465\ntls = \"none\"")], "smtp.tls", "`none` only with a loopback host"),
    ("host is url", &[("host = \"smtp.mycorp.test\"", "host = \"smtps://smtp.mycorp.test\"")], "smtp.host", "without `smtps://`"),
    ("host with port", &[("host = \"imap.mycorp.test\"", "host = \"imap.mycorp.test:993\"")], "imap.host", "put the port in `port`"),
    ("department without address", &[("address = \"support@mycorp.test\"\n", "")], "departments[0].address", "missing in [[departments]]"),
    ("department without name", &[("name = \"Technique\"\n", "")], "departments[0].name", "missing"),
    ("department plus address", &[("address = \"support@mycorp.test\"", "address = \"support+x@mycorp.test\"")], "departments[0].address", "`+tag`"),
    ("bad email", &[("address = \"support@mycorp.test\"", "address = \"support-at-mycorp.test\"")], "departments[0].address", "not an email address"),
    ("two emails in one", &[("[\"alice@mycorp.test\"]", "[\"alice@mycorp.test, bob@mycorp.test\"]")], "departments[0].agents[0]", "not a single plain address"),
    ("agents as string", &[("[\"alice@mycorp.test\"]", "\"alice@mycorp.test\"")], "departments[0].agents", "expected a list"),
    ("agent is support address", &[("[\"alice@mycorp.test\"]", "[\"support@mycorp.test\"]")], "departments[0].agents[0]", "loop"),
    ("two defaults", &[("default = true\n", "default = true\n\n[[departments]]\nname = \"Ventes\"\naddress = \"sales@mycorp.test\"\ndefault = true\n")], "departments[1].default", "exactly one department"),
    ("no default among two", &[("default = true\n", "\n[[departments]]\nname = \"Ventes\"\naddress = \"sales@mycorp.test\"\n")], "departments", "none of the 2 departments"),
    ("duplicate name", &[("default = true\n", "default = true\n\n[[departments]]\nname = \"technique\"\naddress = \"sales@mycorp.test\"\n")], "departments[1].name", "also the name"),
    ("duplicate address", &[("default = true\n", "default = true\n\n[[departments]]\nname = \"Ventes\"\naddress = \"Support@MyCorp.test\"\n")], "departments[1].address", "also the address"),
    ("no department", &[("[[departments]]\nname = \"Technique\"\naddress = \"support@mycorp.test\"\nagents = [\"alice@mycorp.test\"]\ndefault = true\n", "")], "departments", "no department"),
    ("departments single table", &[("[[departments]]", "[departments]")], "departments", "single table"),
    ("tag without id", &[("\"[#{id}]\"", "\"[Ticket]\"")], "helpdesk.subject_tag", "has no `{id}`"),
    ("tag twice", &[("\"[#{id}]\"", "\"[{id}-{id}]\"")], "helpdesk.subject_tag", "2 times"),
    ("tag bare", &[("\"[#{id}]\"", "\"{id}\"")], "helpdesk.subject_tag", "only `{id}`"),
    ("language", &[("language = \"en\"", "language = \"de\"")], "helpdesk.language", "en, fr"),
    ("unknown event", &[("[\"ticket.created\"]", "[\"ticket.deleted\"]")], "webhooks[0].events", "unknown event `ticket.deleted`"),
    ("empty events", &[("[\"ticket.created\"]", "[]")], "webhooks[0].events", "leave `events` out for all"),
    ("unknown format", &[("events = [", "format = \"xml\"\nevents = [")], "webhooks[0].format", "auto, json, discord, slack, teams"),
    ("port zero", &[("port = 993", "port = 0")], "imap.port", "0 is not allowed"),
    ("port too big", &[("port = 465", "port = 70000")], "smtp.port", "from 1 to 65535"),
    ("poll zero", &[("poll_seconds = 60", "poll_seconds = 0")], "imap.poll_seconds", "0 is not allowed"),
    ("no smtp connection", &[("port = 465", "port = 465\nconnections = 0")], "smtp.connections", "from 1 to 16"),
    ("too many smtp connections", &[("port = 465", "port = 465\nconnections = 17")], "smtp.connections", "17 is not allowed"),
    ("secret env unset", &[("\"T_SECRET\"", "\"T_NOPE\"")], "helpdesk.secret_env", "environment variable T_NOPE is not set"),
    ("secret env empty", &[("\"T_SECRET\"", "\"T_EMPTY\"")], "helpdesk.secret_env", "T_EMPTY is empty"),
    ("secret too short", &[("\"T_SECRET\"", "\"T_SHORT\"")], "helpdesk.secret_env", "at least 16 bytes"),
    ("secret literal too short", &[("secret_env = \"T_SECRET\"", "secret = \"abc\"")], "helpdesk.secret", "3 bytes long"),
    ("secret twice", &[("secret_env = \"T_SECRET\"", "secret_env = \"T_SECRET\"\nsecret_file = \"k\"")], "helpdesk.secret_file", "exactly one of"),
    ("secret missing", &[("secret_env = \"T_SECRET\"\n", "")], "helpdesk.secret", "missing in [helpdesk]"),
    ("secret file unreadable", &[("secret_env = \"T_SECRET\"", "secret_file = \"no/such/file\"")], "helpdesk.secret_file", "cannot read `no/such/file` (/etc/guichet/no/such/file)"),
    ("secret env not a name", &[("\"T_SECRET\"", "\"A B\"")], "helpdesk.secret_env", "not an environment variable name"),
    ("password as number", &[("password_env = \"T_IMAP\"", "password = 1234")], "imap.password", "expected a string, found a whole number"),
    ("imap password missing", &[("password_env = \"T_IMAP\"\n", "")], "imap.password", "GUICHET_IMAP_PASSWORD"),
    ("imap username missing", &[("username = \"imap-user@mycorp.test\"\n", "")], "imap.username", "missing"),
    ("smtp user without password", &[("password_env = \"T_SMTP\"\n", "")], "smtp.password", "with `username`"),
    ("smtp password without user", &[("username = \"smtp-user@mycorp.test\"\n", "")], "smtp.password_env", "without a `username`"),
    ("smtp from unclosed", &[("<support@mycorp.test>", "<support@mycorp.test")], "smtp.from", "closing `>`"),
    ("smtp from missing", &[("from = \"Example Support <support@mycorp.test>\"\n", "")], "smtp.from", "missing"),
    ("typo in key", &[("reopen_days = 7", "reopen_day = 7")], "helpdesk.reopen_day", "did you mean `reopen_days`?"),
    ("typo lists keys", &[("idle = true", "idel = true")], "imap.idel", "one of: host, port, tls, username"),
    ("typo in section", &[("[database]", "[databse]")], "databse", "did you mean `database`?"),
    ("singular webhook", &[("[[webhooks]]", "[[webhook]]")], "webhook", "did you mean `webhooks`?"),
    ("key at root", &[("[helpdesk]\n", "reopen_days = 3\n[helpdesk]\n")], "reopen_days", "it belongs in [helpdesk]"),
    ("missing imap", &[("[imap]", "[imap_old]")], "imap", "missing section [imap]"),
    ("extension with dot inside", &[("\"jpg,jpeg,png\"", "\"jpg,tar.gz\"")], "attachments.allowed_extensions", "`tar.gz` is not a file extension"),
    ("extension list empty", &[("\"jpg,jpeg,png\"", "\" , \"")], "attachments.allowed_extensions", "the list is empty"),
    ("extension not string", &[("\"jpg,jpeg,png\"", "[\"jpg\", 3]")], "attachments.allowed_extensions", "expected a string"),
    ("webhook secret bad whsec", &[("events = [", "secret = \"whsec_!!!\"\nevents = [")], "webhooks[0].secret", "not valid base64"),
    ("webhook timeout zero", &[("events = [", "timeout_seconds = 0\nevents = [")], "webhooks[0].timeout_seconds", "from 1 to 300"),
    ("webhook timeout too long", &[("events = [", "timeout_seconds = 301\nevents = [")], "webhooks[0].timeout_seconds", "301 is not allowed"),
    ("webhook timeout word", &[("events = [", "timeout_seconds = \"10s\"\nevents = [")], "webhooks[0].timeout_seconds", "a whole number"),
    ("webhook system_events word", &[("events = [", "system_events = \"yes\"\nevents = [")], "webhooks[0].system_events", "true or false"),
    ("webhook ca file missing", &[("events = [", "ca_file = \"no-ca.pem\"\nevents = [")], "webhooks[0].ca_file", "cannot read `/etc/guichet/no-ca.pem`"),
    ("webhook url missing", &[("url = \"https://discord.com/api/webhooks/123/abc\"\n", "")], "webhooks[0].url", "missing"),
    ("ticket url without id", &[("secret_env = \"T_SECRET\"", "secret_env = \"T_SECRET\"\nticket_url = \"https://desk.mycorp.test/t\"")], "helpdesk.ticket_url", "has no `{id}`"),
    ("database mysql", &[("sqlite://data/guichet.db", "mysql://db/guichet")], "database.url", "neither a `sqlite:` nor a `postgres://`"),
    ("clamd bad", &[("[database]", "[antivirus]\nclamd = \"clamd.local:3310\"\n\n[database]")], "antivirus.clamd", "neither `tcp://…` nor `unix:…`"),
    ("clamd bad port", &[("[database]", "[antivirus]\nclamd = \"tcp://127.0.0.1:0\"\n\n[database]")], "antivirus.clamd", "not a port number"),
    ("clamd missing", &[("[database]", "[antivirus]\ntimeout_seconds = 5\n\n[database]")], "antivirus.clamd", "missing in [antivirus]"),
    ("ca file missing", &[("idle = true", "idle = true\nca_file = \"no-ca.pem\"")], "imap.ca_file", "cannot read `/etc/guichet/no-ca.pem`"),
    ("trust not list", &[("[database]", "[trust]\nauthserv_ids = \"mx.mycorp.test\"\n\n[database]")], "trust.authserv_ids", "expected a list"),
    ("metrics not loopback", &[("[database]", "[metrics]\nlisten = \"0.0.0.0:9187\"\n\n[database]")], "metrics.listen", "not a loopback address"),
    ("metrics host name", &[("[database]", "[metrics]\nlisten = \"localhost:9187\"\n\n[database]")], "metrics.listen", "not an IP address and port"),
    ("metrics no port", &[("[database]", "[metrics]\nlisten = \"127.0.0.1\"\n\n[database]")], "metrics.listen", "not an IP address and port"),
    ("metrics port 0", &[("[database]", "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[database]")], "metrics.listen", "has no port"),
    ("metrics without listen", &[("[database]", "[metrics]\n\n[database]")], "metrics.listen", "loopback address and port"),
    ("metrics typo", &[("[database]", "[metrics]\nlisten = \"127.0.0.1:9187\"\nlisen = 1\n\n[database]")], "metrics.lisen", "listen"),
    ("metrics key at the top", &[("[helpdesk]", "listen = \"127.0.0.1:9187\"\n[helpdesk]")], "listen", "metrics"),
    ("system event typo", &[("[\"ticket.created\"]", "[\"system.degrade\"]")], "webhooks[0].events", "system.degraded"),
    ("retention negative", &[("[database]", "[retention]\nclosed_tickets_days = -1\n\n[database]")], "retention.closed_tickets_days", "0 (keep forever)"),
    ("retention text", &[("[database]", "[retention]\nraw_mail_days = \"30\"\n\n[database]")], "retention.raw_mail_days", "a whole number"),
    ("processed unknown", &[("idle = true", "idle = true\nprocessed = \"archive\"")], "imap.processed", "keep, move, delete"),
    ("processed folder empty", &[("idle = true", "idle = true\nprocessed = \"move\"\nprocessed_folder = \" \"")], "imap.processed_folder", "is empty"),
    ("retention typo", &[("[database]", "[retention]\nclosed_ticket_days = 3\n\n[database]")], "retention.closed_ticket_days", "closed_tickets_days"),
    ("mail html text", &[("[database]", "[mail]\nhtml = \"no\"\n\n[database]")], "mail.html", "true or false"),
    ("mail typo", &[("[database]", "[mail]\nhtlm = false\n\n[database]")], "mail.htlm", "html"),
];

#[test]
fn each_bad_setting_is_reported_with_its_key() {
    let mut failures = Vec::new();
    for (case, edits, key, words) in BAD {
        let text = edited(edits);
        match check(&text) {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(e) => {
                let hit = e.problems.iter().any(|p| {
                    p.key == *key && (p.message.contains(words) || p.accepted.contains(words))
                });
                if !hit {
                    failures.push(format!("{case}: wanted `{key}` with {words:?}, got:\n{e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn each_bad_setting_gives_one_problem_only() {
    // The cases above change one thing; more than one problem means a
    // follow-on error that would confuse the admin.
    // A renamed section is reported as unknown *and* as missing: both help.
    const TWO: &[&str] = &["missing imap"];
    let mut failures = Vec::new();
    for (case, edits, _, _) in BAD.iter().filter(|c| !TWO.contains(&c.0)) {
        if let Err(e) = check(&edited(edits))
            && e.problems.len() != 1
        {
            failures.push(format!("{case}:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// (case, edits) that must load.
#[rustfmt::skip]
const GOOD: &[(&str, &[(&str, &str)])] = &[
    ("reopen unlimited", &[("reopen_days = 7", "reopen_days = -1")]),
    ("reopen never", &[("reopen_days = 7", "reopen_days = 0")]),
    ("auto_close off", &[("auto_close_days = 7", "auto_close_days = 0")]),
    ("scope any, upper case", &[("\"awaiting_customer\"", "\"ANY\"")]),
    ("french", &[("language = \"en\"", "language = \"fr\"")]),
    ("http to 127.0.0.1", &[("https://discord.com/api/webhooks/123/abc", "http://127.0.0.1:8080/hook")]),
    ("http to 127.1.2.3", &[("https://discord.com/api/webhooks/123/abc", "http://127.1.2.3/hook")]),
    ("http to localhost", &[("https://discord.com/api/webhooks/123/abc", "http://localhost:9000/hook")]),
    ("http to ::1", &[("https://discord.com/api/webhooks/123/abc", "http://[::1]:9000/hook")]),
    ("tls none to localhost", &[("host = \"imap.mycorp.test\"\nport = 993\ntls = \"implicit\"", "host = \"localhost\"\nport = 143\ntls = \"none\"")]),
    ("tls none to 127.0.0.1", &[("host = \"smtp.mycorp.test\"\nport = 465\ntls = \"implicit\"", "host = \"127.0.0.1\"\nport = 25\ntls = \"none\"")]),
    ("starttls", &[("port = 465\ntls = \"implicit\"", "port = 587\ntls = \"starttls\"")]),
    ("smtp without auth", &[("username = \"smtp-user@mycorp.test\"\n", ""), ("password_env = \"T_SMTP\"\n", "")]),
    ("bare from", &[("\"Example Support <support@mycorp.test>\"", "\"support@mycorp.test\"")]),
    ("quoted from name", &[("\"Example Support <support@mycorp.test>\"", "'\"Support, Inc.\" <support@mycorp.test>'")]),
    ("extensions array", &[("\"jpg,jpeg,png\"", "[\".JPG\", \"png\"]")]),
    ("extensions trailing comma", &[("\"jpg,jpeg,png\"", "\"jpg, png,\"")]),
    ("literal secret", &[("secret_env = \"T_SECRET\"", "secret = \"a-literal-secret-of-32-bytes-----\"")]),
    ("whsec from env", &[("events = [", "secret_env = \"T_WHSEC\"\nevents = [")]),
    ("raw webhook secret", &[("events = [", "secret = \"any text\"\nevents = [")]),
    ("webhook timeout", &[("events = [", "timeout_seconds = 300\nevents = [")]),
    ("webhook system events", &[("events = [", "system_events = true\nevents = [")]),
    ("no webhooks", &[("[[webhooks]]\nurl = \"https://discord.com/api/webhooks/123/abc\"\nevents = [\"ticket.created\"]\n", "")]),
    ("postgres", &[("sqlite://data/guichet.db", "postgres://guichet:pw@db.mycorp.test/guichet")]),
    ("sqlite memory", &[("sqlite://data/guichet.db", "sqlite::memory:")]),
    ("clamd tcp", &[("[database]", "[antivirus]\nclamd = \"tcp://127.0.0.1:3310\"\n\n[database]")]),
    ("clamd unix", &[("[database]", "[antivirus]\nclamd = \"unix:/run/clamav/clamd.ctl\"\n\n[database]")]),
    ("inline table", &[("[database]\nurl = \"sqlite://data/guichet.db\"\n", ""), ("[helpdesk]\n", "database = { url = \"sqlite://x.db\" }\n[helpdesk]\n")]),
    ("ticket url", &[("secret_env = \"T_SECRET\"", "secret_env = \"T_SECRET\"\nticket_url = \"https://desk.mycorp.test/t/{id}\"")]),
    ("department without agents", &[("agents = [\"alice@mycorp.test\"]\n", "")]),
    ("events given twice", &[("[\"ticket.created\"]", "[\"ticket.created\", \"ticket.created\", \"ticket.closed\"]")]),
    ("metrics on 127.0.0.1", &[("[database]", "[metrics]\nlisten = \"127.0.0.1:9187\"\n\n[database]")]),
    ("metrics on ::1", &[("[database]", "[metrics]\nlisten = \"[::1]:9187\"\n\n[database]")]),
    ("system events", &[("[\"ticket.created\"]", "[\"system.degraded\", \"system.recovered\"]")]),
];

/// SPEC.md names the contact forms' senders `reply_to_senders`; their
/// name here before, `form_senders`, is still read (settings files of
/// earlier versions).
#[test]
fn contact_form_senders_are_read_under_both_names() {
    for key in ["reply_to_senders", "form_senders"] {
        let text = edited(&[(
            "language = \"en\"\n",
            &format!("language = \"en\"\n{key} = [\"NoReply@Shop.test\", \"@forms.test\"]\n"),
        )]);
        let s = check(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(
            s.helpdesk.form_senders,
            ["noreply@shop.test", "@forms.test"],
            "{key}"
        );
    }
}

#[test]
fn good_variants_load() {
    let mut failures = Vec::new();
    for (case, edits) in GOOD {
        if let Err(e) = check(&edited(edits)) {
            failures.push(format!("{case}:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn problems_point_at_the_value_or_the_table_header() {
    let e = check(&edited(&[("reopen_days = 7", "reopen_days = -2")])).unwrap_err();
    let p = &e.problems[0];
    assert_eq!((p.line, p.column), (4, 15), "{p}");
    assert_eq!(p.file, PathBuf::from("/etc/guichet/guichet.toml"));
    assert_eq!(
        p.to_string(),
        "/etc/guichet/guichet.toml:4:15: helpdesk.reopen_days: -2 is not allowed \
         (accepted: -1 (unlimited), 0 (never: a reply opens a new ticket) or a positive number of days up to 36500)"
    );
    // A missing key points at its table's header: `[[departments]]` is line 37.
    let e = check(&edited(&[("address = \"support@mycorp.test\"\n", "")])).unwrap_err();
    assert_eq!((e.problems[0].line, e.problems[0].column), (36, 1), "{e}");
    // A missing section is about the whole file.
    let e = check(&edited(&[("[imap]", "[imap_x]")])).unwrap_err();
    let missing = e.problems.iter().find(|p| p.key == "imap").unwrap();
    assert_eq!((missing.line, missing.column), (0, 0));
    // Columns count characters, not bytes.
    let line = "helpdesk = { subject_tag = \"[é#{id}]\", language = \"xx\" }";
    let e = check(&format!("# é\n{line}\n")).unwrap_err();
    let lang = e
        .problems
        .iter()
        .find(|p| p.key == "helpdesk.language")
        .unwrap();
    let byte = line.find("\"xx\"").unwrap();
    let column = line[..byte].chars().count() + 1;
    assert_ne!(column, byte + 1);
    assert_eq!((lang.line, lang.column), (2, column), "{e}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = edited(&[
        ("reopen_days = 7", "reopen_days = -2"),
        ("max_size_mb = 5", "max_size_mb = \"big\""),
        ("tls = \"implicit\"", "tls = \"tls13\""),
        ("address = \"support@mycorp.test\"\n", ""),
        (
            "https://discord.com/api/webhooks/123/abc",
            "http://mycorp.test/hook",
        ),
        ("\"T_SECRET\"", "\"T_NOPE\""),
    ]);
    let e = check(&text).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "helpdesk.reopen_days",
            "helpdesk.secret_env",
            "attachments.max_size_mb",
            "imap.tls",
            "departments[0].address",
            "webhooks[0].url"
        ],
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("6 problems in /etc/guichet/guichet.toml"),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_toml_gives_the_parsers_position() {
    let e = check("[helpdesk]\nreopen_days = 7\nsubject_tag = [#{id}]\n").unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert_eq!(p.line, 3, "{p}");
    assert!(p.message.starts_with("not valid TOML"), "{p}");
    let e = check("[imap]\nhost = \"a\"\nhost = \"b\"\n").unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].line, 3, "{e}");
    assert!(e.problems[0].message.contains("duplicate key"), "{e}");
    // the key is named (SPEC: "file, line, key and reason")
    assert!(e.problems[0].message.contains("`host`"), "{e}");
    let e = check(
        "[helpdesk]
idle = 1
[imap]
idle = true
idle = false
",
    )
    .unwrap_err();
    assert!(e.problems[0].message.contains("`idle`"), "{e}");
    assert_eq!(e.problems[0].line, 5, "{e}");
}

#[test]
fn defaults_fill_what_is_left_out() {
    let minimal = r#"
[helpdesk]
secret_env = "T_SECRET"
[imap]
host = "imap.mycorp.test"
username = "support@mycorp.test"
password_env = "T_IMAP"
[smtp]
host = "smtp.mycorp.test"
from = "support@mycorp.test"
[[departments]]
name = "Support"
address = "support@mycorp.test"
"#;
    let s = load_str_with_env(minimal, Path::new("/srv/g/guichet.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    let h = &s.helpdesk;
    assert_eq!(h.auto_close_days, 7);
    assert_eq!(h.auto_close_scope, AutoCloseScope::AwaitingCustomer);
    assert_eq!(h.reopen_days, ReopenWindow::Days(7));
    assert_eq!(h.subject_tag, "[#{id}]");
    assert_eq!(h.language, Language::En);
    assert_eq!(h.max_auto_replies_per_hour, 5);
    assert!(h.reply_to_participants);
    assert_eq!(h.ticket_url, None);
    let a = &s.attachments;
    assert!(a.enabled);
    assert_eq!(a.max_size_mb, 5);
    assert_eq!(a.max_size_bytes(), 5 * 1024 * 1024);
    assert_eq!(
        a.allowed_extensions,
        ["jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx"]
    );
    assert_eq!(a.storage_dir, PathBuf::from("/srv/g/data/attachments"));
    assert_eq!(a.retention_days, 365);
    assert!(s.antivirus.is_none());
    assert_eq!((s.imap.port, s.imap.tls), (993, TlsMode::Implicit));
    assert_eq!(s.imap.folder, "INBOX");
    assert_eq!(s.imap.poll_seconds, 60);
    assert!(s.imap.idle);
    assert_eq!(s.imap.ca_file, None);
    assert_eq!((s.smtp.port, s.smtp.tls), (465, TlsMode::Implicit));
    assert_eq!(s.smtp.username, None);
    assert_eq!(s.smtp.password_source, None);
    assert_eq!(s.smtp.connections, 4);
    assert_eq!(s.database.url, "sqlite:///srv/g/data/guichet.db");
    assert!(s.trust.authserv_ids.is_empty());
    assert!(
        s.departments[0].default,
        "a single department is the default"
    );
    assert!(s.webhooks.is_empty());
    assert_eq!(s.metrics, None);
}

#[test]
fn extensions_are_normalised() {
    for (written, wanted) in [
        ("\" .JPG, png ,PNG,.Pdf,\"", vec!["jpg", "png", "pdf"]),
        ("[\".JPG\", \"png\", \"jpg\"]", vec!["jpg", "png"]),
        ("\"log\"", vec!["log"]),
    ] {
        let s = check(&edited(&[("\"jpg,jpeg,png\"", written)])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.attachments.allowed_extensions, wanted, "input {written}");
    }
}

#[test]
fn relative_paths_are_relative_to_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/key"),
        "file-secret-0123456789\r\n\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = edited(&[
        (
            "secret_env = \"T_SECRET\"",
            "secret_file = \"./secrets/key\"",
        ),
        (
            "storage_dir = \"data/attachments\"",
            "storage_dir = \"../files\"",
        ),
        ("idle = true", "idle = true\nca_file = \"ca.pem\""),
        ("events = [", "ca_file = \"./ca.pem\"\nevents = ["),
        ("sqlite://data/guichet.db", "sqlite://db/g.db?mode=rwc"),
        (
            "[database]",
            "[antivirus]\nclamd = \"unix:run/clamd.sock\"\n\n[database]",
        ),
    ]);
    let file = dir.path().join("guichet.toml");
    let s = load_str_with_env(&text, &file, &env).unwrap_or_else(|e| panic!("{e}"));
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        s.helpdesk.secret.expose(),
        "file-secret-0123456789",
        "trailing newlines trimmed"
    );
    assert_eq!(
        s.helpdesk.secret_source,
        SecretSource::File(base.join("secrets/key"))
    );
    assert_eq!(
        s.attachments.storage_dir,
        base.parent().unwrap().join("files")
    );
    assert_eq!(s.imap.ca_file, Some(base.join("ca.pem")));
    assert_eq!(s.webhooks[0].ca_file, Some(base.join("ca.pem")));
    assert_eq!(
        s.database.url,
        format!("sqlite://{}?mode=rwc", base.join("db/g.db").display())
    );
    assert!(s.database.url.starts_with("sqlite:///"));
    assert_eq!(
        s.antivirus.unwrap().clamd,
        ClamdAddress::Unix(base.join("run/clamd.sock"))
    );
    // `load` reads the file and resolves against its folder the same way
    // (no `_env` secrets here: `load` uses the process environment).
    let text = text
        .replace("password_env = \"T_IMAP\"", "password = \"imap-literal\"")
        .replace(
            "password_env = \"T_SMTP\"",
            "password_file = \"secrets/key\"",
        );
    std::fs::write(&file, &text).unwrap();
    let s = load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.smtp.password.unwrap().expose(), "file-secret-0123456789");
    assert_eq!(s.source, file);
}

#[test]
fn an_unreadable_settings_file_is_one_problem() {
    let e = load(Path::new("/nonexistent/guichet.toml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/guichet.toml: cannot read the settings file"),
        "{e}"
    );
}

#[test]
fn clamd_addresses() {
    for (written, wanted) in [
        (
            "tcp://127.0.0.1:3310",
            ClamdAddress::Tcp {
                host: "127.0.0.1".into(),
                port: 3310,
            },
        ),
        (
            "tcp://[::1]:3310",
            ClamdAddress::Tcp {
                host: "::1".into(),
                port: 3310,
            },
        ),
        (
            "tcp://clamd:3310/",
            ClamdAddress::Tcp {
                host: "clamd".into(),
                port: 3310,
            },
        ),
        (
            "unix:/run/clamav/clamd.ctl",
            ClamdAddress::Unix("/run/clamav/clamd.ctl".into()),
        ),
        (
            "unix:///run/clamav/clamd.ctl",
            ClamdAddress::Unix("/run/clamav/clamd.ctl".into()),
        ),
    ] {
        assert_eq!(parse_clamd(written), Ok(wanted), "input {written}");
    }
    for bad in [
        "tcp://127.0.0.1",
        "tcp://:3310",
        "tcp://h:99999",
        "unix:",
        "clamd:3310",
    ] {
        assert!(parse_clamd(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn loopback_hosts() {
    for host in [
        "localhost",
        "LOCALHOST.",
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
    ] {
        assert!(is_loopback_host(host), "{host} not loopback");
    }
    for host in [
        "mycorp.test",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "localhost.mycorp.test",
        "128.0.0.1",
    ] {
        assert!(!is_loopback_host(host), "{host} loopback");
    }
}

#[test]
fn mailboxes() {
    let m = parse_mailbox("Example Support <Support@MyCorp.test>").unwrap();
    assert_eq!(m.to_string(), "Example Support <support@mycorp.test>");
    let m = parse_mailbox("\"Support, Inc.\" <a@b.c>").unwrap();
    assert_eq!(m.name.as_deref(), Some("Support, Inc."));
    assert_eq!(parse_mailbox("a@b.c").unwrap().name, None);
    assert_eq!(parse_mailbox("<a@b.c>").unwrap().name, None);
    for bad in [
        "Support",
        "Support <a@b.c",
        "S <a@@b>",
        "S <a@b.c> x",
        "a@b..c",
        ".a@b.c",
    ] {
        assert!(parse_mailbox(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn secrets_never_appear_in_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "hunter2-hunter2\n").unwrap();
    let text = edited(&[
        // Literal and file secrets alongside others: "given too" problems.
        (
            "secret_env = \"T_SECRET\"",
            "secret_env = \"T_SECRET\"\nsecret = \"literal-secret-XYZ-123456\"",
        ),
        (
            "password_env = \"T_IMAP\"",
            "password_env = \"T_IMAP\"\npassword_file = \"s\"",
        ),
        // A secret of the wrong type.
        ("password_env = \"T_SMTP\"", "password = 987654321"),
    ]);
    let e = load_str_with_env(&text, &dir.path().join("g.toml"), &env).unwrap_err();
    let report = e.to_string();
    for secret in [
        SECRET,
        IMAP_PASSWORD,
        SMTP_PASSWORD,
        "literal-secret-XYZ",
        "hunter2",
        "987654321",
    ] {
        assert!(!report.contains(secret), "{secret} leaked:\n{report}");
    }
    assert_eq!(e.problems.len(), 3, "{report}");
}

#[test]
fn render_masked_shows_everything_but_secrets() {
    let text = edited(&[
        (
            "sqlite://data/guichet.db",
            "postgres://guichet:db-pass-Q9@db.mycorp.test/guichet?password=qp-Q9",
        ),
        ("events = [", "secret_env = \"T_WHSEC\"\nevents = ["),
        (
            "[database]",
            "[antivirus]\nclamd = \"tcp://[::1]:3310\"\n\n[metrics]\nlisten = \"[::1]:9187\"\n\n[database]",
        ),
    ]);
    let s = check(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.metrics.map(|m| m.listen),
        Some("[::1]:9187".parse().unwrap())
    );
    let out = render_masked(&s);
    for secret in [
        SECRET,
        IMAP_PASSWORD,
        SMTP_PASSWORD,
        "db-pass-Q9",
        "qp-Q9",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "/123/abc",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    for wanted in [
        "[helpdesk]",
        "secret = \"********\"  # from env T_SECRET",
        "password = \"********\"  # from env T_IMAP",
        "password = \"********\"  # from env T_SMTP",
        "[attachments]",
        "allowed_extensions = [\"jpg\", \"jpeg\", \"png\"]",
        "storage_dir = \"/etc/guichet/data/attachments\"",
        "clamd = \"tcp://[::1]:3310\"",
        "[imap]",
        "[smtp]",
        "from = \"Example Support <support@mycorp.test>\"",
        "url = \"postgres://guichet:********@db.mycorp.test/guichet?password=********\"",
        "[trust]",
        "[metrics]\nlisten = \"[::1]:9187\"",
        "[[departments]]",
        "agents = [\"alice@mycorp.test\"]",
        "url = \"https://discord.com/api/webhooks/********/********\"",
        "events = [\"ticket.created\"]",
        "secret = \"********\"  # from env T_WHSEC",
    ] {
        assert!(out.contains(wanted), "missing {wanted:?} in:\n{out}");
    }
    // Literal and file sources are named too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "file-pw-77\n").unwrap();
    let text = edited(&[
        (
            "secret_env = \"T_SECRET\"",
            "secret = \"literal-secret-0123456789\"",
        ),
        ("password_env = \"T_IMAP\"", "password_file = \"pw\""),
    ]);
    let s = load_str_with_env(&text, &dir.path().join("g.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = render_masked(&s);
    assert!(
        !out.contains("literal-secret") && !out.contains("file-pw-77"),
        "{out}"
    );
    assert!(out.contains("secret = \"********\"  # literal"), "{out}");
    let file_line = format!(
        "password = \"********\"  # from file {}",
        dir.path().join("pw").display()
    );
    assert!(out.contains(&file_line), "{out}");
}

#[test]
fn rendered_settings_load_again() {
    // check-config output is TOML: it loads, to the same values (secrets
    // excepted, which it cannot carry).
    let s = check(BASE).unwrap();
    let rendered = render_masked(&s)
        .replace(
            "secret = \"********\"  # from env T_SECRET",
            "secret_env = \"T_SECRET\"",
        )
        .replace(
            "password = \"********\"  # from env T_IMAP",
            "password_env = \"T_IMAP\"",
        )
        .replace(
            "password = \"********\"  # from env T_SMTP",
            "password_env = \"T_SMTP\"",
        )
        .replace("/********/********", "/123/abc");
    let again = check(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(render_masked(&again), render_masked(&s));
    // with a metrics listener too
    let s = check(&edited(&[(
        "[database]",
        "[metrics]\nlisten = \"127.0.0.1:9187\"\n\n[database]",
    )]))
    .unwrap();
    let rendered = render_masked(&s)
        .replace(
            "secret = \"********\"  # from env T_SECRET",
            "secret_env = \"T_SECRET\"",
        )
        .replace(
            "password = \"********\"  # from env T_IMAP",
            "password_env = \"T_IMAP\"",
        )
        .replace(
            "password = \"********\"  # from env T_SMTP",
            "password_env = \"T_SMTP\"",
        )
        .replace("/********/********", "/123/abc");
    let again = check(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(again.metrics, s.metrics);
}

#[test]
fn warnings_for_risky_choices() {
    type WarningCase = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let cases: &[WarningCase] = &[
        ("clean", &[], &[]),
        (
            "dangerous types",
            &[("\"jpg,jpeg,png\"", "\"jpg,exe,PHP,.sh,html\"")],
            &["`exe`", "`php`", "`sh`", "`html`"],
        ),
        (
            "unlimited reopen",
            &[("reopen_days = 7", "reopen_days = -1")],
            &["very old tickets"],
        ),
        (
            "zip without antivirus",
            &[("\"jpg,jpeg,png\"", "\"jpg,zip,rar\"")],
            &["archives (zip, rar)"],
        ),
        (
            "no agents",
            &[("agents = [\"alice@mycorp.test\"]\n", "")],
            &["has no agents"],
        ),
        (
            "smtp 587 implicit",
            &[("port = 465", "port = 587")],
            &["starttls"],
        ),
    ];
    for (case, edits, wanted) in cases {
        let s = check(&edited(edits)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let w = warnings(&s);
        assert_eq!(w.len(), wanted.len(), "{case}: {w:#?}");
        for (warning, words) in w.iter().zip(wanted.iter()) {
            assert!(warning.contains(words), "{case}: {warning}");
        }
    }
    let s = check(&edited(&[("\"jpg,jpeg,png\"", "\"exe\"")])).unwrap();
    assert!(
        warnings(&s)[0].contains("still refused at run time"),
        "{:?}",
        warnings(&s)
    );
    // Archives with an antivirus: no warning.
    let s = check(&edited(&[
        ("\"jpg,jpeg,png\"", "\"jpg,zip\""),
        (
            "[database]",
            "[antivirus]\nclamd = \"tcp://127.0.0.1:3310\"\n\n[database]",
        ),
    ]))
    .unwrap();
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}

#[test]
fn closest_key_suggestions() {
    for (typo, wanted) in [
        ("reopen_day", Some("reopen_days")),
        ("max_size", Some("max_size_mb")),
        ("pass", None),
        ("Language", Some("language")),
        ("pasword", Some("password")),
        ("xyz", None),
    ] {
        assert_eq!(
            closest(typo, &[HELPDESK_KEYS, IMAP_KEYS, ATTACHMENT_KEYS].concat()),
            wanted,
            "typo {typo}"
        );
    }
}

#[test]
fn files_saved_on_windows_load_and_keep_positions() {
    // A byte-order mark and CRLF line ends (Notepad) change nothing.
    let crlf = |t: &str| format!("\u{feff}{}", t.replace('\n', "\r\n"));
    check(&crlf(BASE)).unwrap_or_else(|e| panic!("{e}"));
    let e = check(&crlf(&edited(&[("reopen_days = 7", "reopen_days = -5")]))).unwrap_err();
    assert_eq!((e.problems[0].line, e.problems[0].column), (4, 15), "{e}");
}

#[test]
fn oauth2_logins_and_several_mailboxes() {
    let oauth = "[oauth2]\nprovider = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"app-1\"\nclient_secret_env = \"T_SMTP\"\n\n[database]";
    let imap_oauth = ("password_env = \"T_IMAP\"", "auth = \"oauth2\"");
    let smtp_oauth = ("password_env = \"T_SMTP\"", "auth = \"oauth2\"");
    let s = check(&edited(&[imap_oauth, smtp_oauth, ("[database]", oauth)]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.imap.auth, AuthMethod::OAuth2);
    assert_eq!(s.smtp.auth, AuthMethod::OAuth2);
    let o = s.oauth2.as_ref().unwrap();
    assert_eq!(
        o.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    for scope in [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ] {
        assert!(o.scopes.iter().any(|x| x == scope), "{scope}");
    }
    let shown = render_masked(&s);
    assert!(
        shown.contains("client_secret = \"********\"  # from env T_SMTP"),
        "{shown}"
    );
    assert!(!shown.contains(SMTP_PASSWORD), "{shown}");
    let google = check(&edited(&[
        imap_oauth,
        ("[database]", "[oauth2]\nprovider = \"google\"\nclient_id = \"g\"\nclient_secret = \"x\"\n\n[database]"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(google.oauth2.unwrap().scopes[0], "https://mail.google.com/");

    // two mailboxes: [imap] plus a shared one feeding a department
    let two = check(&edited(&[(
        "[database]",
        "[[mailboxes]]\nname = \"sales\"\nhost = \"imap.mycorp.test\"\nusername = \"sales@mycorp.test\"\npassword_env = \"T_IMAP\"\ndepartment = \"technique\"\n\n[database]",
    )]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(two.mailboxes.len(), 2);
    assert_eq!(two.mailboxes[0].name, "imap");
    assert_eq!(two.mailboxes[1].department.as_deref(), Some("Technique"));
    assert_ne!(
        two.mailboxes[0].imap.checkpoint_key(),
        two.mailboxes[1].imap.checkpoint_key()
    );

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let bad: &[Case] = &[
        (
            "oauth2 without [oauth2]",
            vec![imap_oauth],
            "oauth2",
            "[oauth2] table",
        ),
        (
            "a password with oauth2",
            vec![("idle = true", "idle = true\nauth = \"oauth2\"")],
            "imap.password_env",
            "oauth login",
        ),
        (
            "custom without endpoints",
            vec![
                imap_oauth,
                (
                    "[database]",
                    "[oauth2]\nprovider = \"custom\"\nclient_id = \"c\"\n\n[database]",
                ),
            ],
            "oauth2.token_url",
            "token endpoint",
        ),
        (
            "unknown provider",
            vec![
                imap_oauth,
                (
                    "[database]",
                    "[oauth2]\nprovider = \"yahoo\"\nclient_id = \"c\"\n\n[database]",
                ),
            ],
            "oauth2.provider",
            "microsoft",
        ),
        (
            "a mailbox feeding no department",
            vec![(
                "[database]",
                "[[mailboxes]]\nname = \"x\"\nhost = \"h.test\"\nusername = \"u\"\npassword = \"p\"\ndepartment = \"Sales\"\n\n[database]",
            )],
            "mailboxes[0].department",
            "Technique",
        ),
        (
            "a mailbox named like another",
            vec![(
                "[database]",
                "[[mailboxes]]\nname = \"imap\"\nhost = \"h.test\"\nusername = \"u\"\npassword = \"p\"\n\n[database]",
            )],
            "mailboxes[0].name",
            "another mailbox",
        ),
        (
            "a mailbox without name",
            vec![(
                "[database]",
                "[[mailboxes]]\nhost = \"h.test\"\nusername = \"u\"\npassword = \"p\"\n\n[database]",
            )],
            "mailboxes[0].name",
            "short name",
        ),
    ];
    let mut failures = Vec::new();
    for (case, edits, key, words) in bad {
        match check(&edited(edits)) {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(e) => {
                if !e.problems.iter().any(|p| {
                    p.key == *key && (p.message.contains(words) || p.accepted.contains(words))
                }) {
                    failures.push(format!("{case}: wanted `{key}` with {words:?}, got:\n{e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `state_dir` (issue 15): the database and stored files by default, and
/// the base of their relative paths; other paths stay relative to the
/// settings file.
#[test]
fn state_dir_holds_the_database_and_the_files() {
    let with = |state: &str, edits: &[(&str, &str)]| {
        let text = format!("state_dir = \"{state}\"\n\n{}", edited(edits));
        check(&text).unwrap_or_else(|e| panic!("{e}"))
    };
    // relative paths under it
    let s = with(
        "/var/lib/guichet",
        &[
            (
                "storage_dir = \"data/attachments\"",
                "storage_dir = \"attachments\"",
            ),
            (
                "url = \"sqlite://data/guichet.db\"",
                "url = \"sqlite://guichet.db\"",
            ),
        ],
    );
    assert_eq!(
        s.attachments.storage_dir,
        Path::new("/var/lib/guichet/attachments")
    );
    assert_eq!(s.database.url, "sqlite:///var/lib/guichet/guichet.db");
    // defaults in it
    let s = with(
        "/srv/desk",
        &[
            ("storage_dir = \"data/attachments\"\n", ""),
            ("url = \"sqlite://data/guichet.db\"\n", ""),
        ],
    );
    assert_eq!(
        s.attachments.storage_dir,
        Path::new("/srv/desk/attachments")
    );
    assert_eq!(s.database.url, "sqlite:///srv/desk/guichet.db");
    // absolute paths as written; a relative state_dir is relative to the file
    let s = with(
        "state",
        &[(
            "storage_dir = \"data/attachments\"",
            "storage_dir = \"/data/files\"",
        )],
    );
    assert_eq!(s.attachments.storage_dir, Path::new("/data/files"));
    assert_eq!(
        s.database.url,
        "sqlite:///etc/guichet/state/data/guichet.db"
    );
    // without it, as before
    let s = check(BASE).unwrap();
    assert_eq!(s.database.url, "sqlite:///etc/guichet/data/guichet.db");
    let err = check(&format!("state_dir = 3\n\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("state_dir"), "{err}");
}
