//! A help desk for one test: fresh mailboxes on the rig (support, agent),
//! a fresh database (SQLite in a temp dir by default, or PostgreSQL) and
//! storage directory, a settings file pointing at them, and the real
//! `guichet` binary to run against it.
//!
//! `GUICHET_TEST_BACKEND=postgres` makes every desk that does not choose
//! its database use a fresh PostgreSQL database of the rig instead of
//! SQLite: any end-to-end test can be run on both backends that way.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::support::{fresh_pg_database, fresh_user, guichet_bin, rig};

pub const SECRET: &str = "test-secret-0123456789abcdef";

pub struct Desk {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub support: String,
    pub agent: String,
    database_url: String,
}

impl Desk {
    /// A desk with one department ("Support") whose agent is a fresh user.
    /// `extra` is TOML appended to `[helpdesk]` (e.g. `auto_close_days = 3`).
    pub fn new(extra_helpdesk: &str) -> Desk {
        Self::with(extra_helpdesk, "", "")
    }

    pub fn with(extra_helpdesk: &str, extra_attachments: &str, extra_sections: &str) -> Desk {
        let database = match std::env::var("GUICHET_TEST_BACKEND").as_deref() {
            Ok("postgres") => Some(fresh_pg_database_blocking()),
            Ok("sqlite") | Err(_) => None,
            Ok(other) => panic!("GUICHET_TEST_BACKEND={other}: use sqlite or postgres"),
        };
        Self::build(
            extra_helpdesk,
            extra_attachments,
            extra_sections,
            database.as_deref(),
        )
    }

    /// A desk like [`Desk::new("")`](Desk::new) on the database at `url`
    /// (`postgres://…` from [`crate::support::fresh_pg_database`], or
    /// `sqlite://…`).
    pub fn with_database(url: &str) -> Desk {
        Self::build("", "", "", Some(url))
    }

    /// The general form: `database_url` `None` is a SQLite file in the
    /// desk's directory.
    pub fn build(
        extra_helpdesk: &str,
        extra_attachments: &str,
        extra_sections: &str,
        database_url: Option<&str>,
    ) -> Desk {
        let r = rig();
        let dir = tempfile::tempdir().expect("temp dir");
        let support = fresh_user("support");
        let agent = fresh_user("agent");
        let config = dir.path().join("guichet.toml");
        let text = format!(
            r#"[helpdesk]
secret = "{SECRET}"
{extra_helpdesk}

[attachments]
storage_dir = "files"
{extra_attachments}

[imap]
host = "{imap_host}"
port = {imap_port}
tls = "none"
username = "{support}"
password = "{password}"
poll_seconds = 1

[smtp]
host = "{smtp_host}"
port = {smtp_port}
tls = "none"
from = "Example Support <{support}>"

[database]
url = "{database_url}"

[[departments]]
name = "Support"
address = "{support}"
agents = ["{agent}"]

{extra_sections}
"#,
            imap_host = r.imap_host,
            imap_port = r.imap_port,
            password = r.password,
            smtp_host = r.smtp_host,
            smtp_port = r.smtp_port,
            database_url = database_url.unwrap_or("sqlite://guichet.db"),
        );
        std::fs::write(&config, text).expect("write settings");
        Desk {
            dir,
            config,
            support,
            agent,
            database_url: database_url.unwrap_or("sqlite://guichet.db").to_string(),
        }
    }

    /// The database URL as the settings file gives it (a relative SQLite
    /// path is relative to [`Desk::dir`]).
    pub fn database_url(&self) -> String {
        match self.database_url.strip_prefix("sqlite://") {
            Some(path) if !path.starts_with('/') => {
                format!("sqlite://{}", self.dir.path().join(path).display())
            }
            _ => self.database_url.clone(),
        }
    }

    /// Replaces `from` by `to` in the settings file, as an admin editing
    /// it between two passes would; panics when `from` is not there.
    pub fn edit_settings(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read settings");
        assert!(
            text.contains(from),
            "{from:?} is not in the settings:\n{text}"
        );
        std::fs::write(&self.config, text.replacen(from, to, 1)).expect("write settings");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(guichet_bin());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("GUICHET_CONFIG")
            .env("GUICHET_LOG", "info");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run guichet")
    }

    /// `guichet run --once [--now NOW]`, which must succeed.
    pub fn run_once(&self, now: Option<&str>) -> Output {
        let mut args = vec!["run", "--once"];
        if let Some(n) = now {
            args.extend(["--now", n]);
        }
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "run --once failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `guichet run --once --now NOW`, which must succeed; returns the
    /// pass report it prints (`auto_closed`, `mail.sent`, …).
    pub fn pass(&self, now: DateTime<Utc>) -> Value {
        let out = self.run_once(Some(&iso(now)));
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no pass report in {stdout:?}"))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.json(&["tickets", "list", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn ticket(&self, id: i64) -> Value {
        self.json(&["tickets", "show", &id.to_string(), "--json"])
    }
}

/// An instant as `--now` takes it and the JSON output writes it.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A message with the given headers (in order) and a plain-text body.
pub fn mail(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Message-ID"))
    {
        out.push_str(&format!(
            "Message-ID: <{}@client.test>\r\n",
            crate::support::unique_token()
        ));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Date")) {
        out.push_str(&format!("Date: {}\r\n", Utc::now().to_rfc2822()));
    }
    out.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    out.push_str(&body.replace('\n', "\r\n"));
    out.push_str("\r\n");
    out.into_bytes()
}

/// `from`'s reply to `original` as a mail client writes it: to its
/// Reply-To (else From), `Re:` subject, In-Reply-To and References, the
/// original quoted below an "On …, X wrote:" line. Returns the address to
/// deliver it to and the message.
pub fn reply_to_mail(from: &str, original: &[u8], body: &str) -> (String, Vec<u8>) {
    let m = mail_parser::MessageParser::default()
        .parse(original)
        .expect("parse the original");
    let to = m
        .reply_to()
        .or(m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("a reply address")
        .to_string();
    let original_id = message_id(original);
    let references = header(original, "References").unwrap_or_default();
    let quoted: String = body_text(original)
        .lines()
        .map(|l| format!("> {l}\r\n"))
        .collect();
    let raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Re: {subject}\r\nDate: {date}\r\n\
         Message-ID: <reply-{id}@test.example.test>\r\nIn-Reply-To: <{original_id}>\r\n\
         References: {references} <{original_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\r\n\
         On {original_date}, {original_from} wrote:\r\n{quoted}",
        subject = subject(original),
        date = Utc::now().to_rfc2822(),
        id = crate::support::unique_token(),
        original_date = header(original, "Date").unwrap_or_default(),
        original_from = header(original, "From").unwrap_or_default(),
    );
    (to, raw.into_bytes())
}

/// The value of a header in raw mail (first occurrence, unfolded).
/// The ticket part (`t42`) of Guichet's `X-Guichet-Mail` marker, whose
/// value is `t42; install=<this installation's mark>`.
pub fn marked_ticket(raw: &[u8]) -> Option<String> {
    let marker = header(raw, "X-Guichet-Mail")?;
    Some(marker.split(';').next()?.trim().to_string())
}

pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    msg.header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

pub fn subject(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

pub fn body_text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

pub fn message_id(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.message_id().map(str::to_string))
        .unwrap_or_default()
}

/// [`fresh_pg_database`] from synchronous code, even inside a test's
/// runtime (on a thread of its own, with a runtime of its own).
pub fn fresh_pg_database_blocking() -> String {
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(fresh_pg_database())
    })
    .join()
    .expect("creating a PostgreSQL database")
}

/// A test that panics before stopping its `guichet run` must not leave the
/// daemon behind: every process whose command line names this desk's
/// settings file (a unique temp path) is killed when the desk goes.
impl Drop for Desk {
    fn drop(&mut self) {
        let Some(config) = self.config.to_str().map(str::to_string) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.contains(&config.as_bytes()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}
