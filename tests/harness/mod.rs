//! A help desk for one test: fresh mailboxes on the rig (support, agent),
//! a fresh SQLite database and storage directory in a temp dir, a settings
//! file pointing at them, and the real `guichet` binary to run against it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{fresh_user, guichet_bin, rig};

pub const SECRET: &str = "test-secret-0123456789abcdef";

pub struct Desk {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub support: String,
    pub agent: String,
}

impl Desk {
    /// A desk with one department ("Support") whose agent is a fresh user.
    /// `extra` is TOML appended to `[helpdesk]` (e.g. `auto_close_days = 3`).
    pub fn new(extra_helpdesk: &str) -> Desk {
        Self::with(extra_helpdesk, "", "")
    }

    pub fn with(extra_helpdesk: &str, extra_attachments: &str, extra_sections: &str) -> Desk {
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
url = "sqlite://guichet.db"

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
        );
        std::fs::write(&config, text).expect("write settings");
        Desk {
            dir,
            config,
            support,
            agent,
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

/// The value of a header in raw mail (first occurrence, unfolded).
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
