//! The real-world mail corpus (`../shared/corpus`, or `$GUICHET_CORPUS`) as
//! the corpus-driven tests read it. Its GPL/AGPL parts are read in place,
//! never copied into this repository: when it is absent a test says so and
//! passes, except under CI (env `CI` set), where that is a failure.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};

/// The corpus folder, or `None` (after printing SKIPPED) outside CI.
pub fn dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GUICHET_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("index.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("corpus not found at {} (CI must have it)", dir.display());
    }
    println!("SKIPPED: corpus not found at {}", dir.display());
    None
}

/// A stored mail as a mailbox hands it over: a leading mbox `From ` line
/// and blank lines (artefacts of how the files were saved) dropped.
pub fn mail_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut start = 0;
    loop {
        let rest = &bytes[start..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let line = &rest[..end];
        if !line.is_empty()
            && (line.iter().all(|b| b.is_ascii_whitespace()) || line.starts_with(b"From "))
        {
            start += end;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Settings for an in-process help desk over a SQLite file in `dir`, with
/// mail servers that are never contacted (ingest only queues mail).
/// `extra_helpdesk` is appended to `[helpdesk]`.
pub fn offline_settings(dir: &Path, extra_helpdesk: &str) -> guichet::settings::Settings {
    let text = format!(
        r#"
[helpdesk]
secret = "corpus-secret-0123456789"
# the corpus's mails are dated years ago but handed over as arriving now
old_mail_days = 0
{extra_helpdesk}
[attachments]
storage_dir = "files"
allowed_extensions = "jpg,jpeg,png,gif,pdf,doc,docx,xls,xlsx,txt,log,zip,csv"
[imap]
host = "127.0.0.1"
tls = "none"
port = 1
username = "support@example.test"
password = "x"
[smtp]
host = "127.0.0.1"
tls = "none"
port = 1
from = "Support <support@example.test>"
[database]
url = "sqlite://guichet.db"
[[departments]]
name = "Support"
address = "support@example.test"
agents = ["agent@example.test"]
"#
    );
    let path = dir.join("guichet.toml");
    std::fs::write(&path, text).unwrap();
    guichet::settings::load(&path).unwrap_or_else(|e| panic!("{e}"))
}
