//! Reading `guichet.toml`: TOML → checked [`Settings`], every problem at once.
//!
//! The file is parsed with spans (`toml::de::DeTable`) and then walked by
//! hand, section by section, instead of through `serde`: a derive stops at the
//! first bad value, while an admin wants every mistake of the file in one run,
//! each with its line, column, dotted key, what is wrong and what is accepted.
//! A file that is not TOML at all gives one problem, the parser's.
//!
//! **Relative paths are resolved against the folder of the settings file**,
//! not against the current directory: `attachments.storage_dir`, every
//! `*_file` secret, `imap.ca_file` / `smtp.ca_file` / `webhooks[].ca_file`, a relative
//! `unix:` clamd socket and a relative `sqlite://` database (which becomes
//! `sqlite:///absolute/path`). The daemon then finds the same files whether
//! systemd, a container or a shell in another folder starts it.
//!
//! Secrets (`X`, `X_env`, `X_file`) are read here, once; their values never
//! appear in a [`Problem`].
//!
//! This file holds the checker (positions, reporting, the typed readers)
//! and the walk from the root; each family of sections is read in
//! its own module: `connections` (IMAP, SMTP, OAuth2, database, metrics),
//! `helpdesk` (helpdesk, departments, trust, mail, retention),
//! `attachments` (and the antivirus), `webhooks`; the value parsers they
//! share (addresses, hosts, URLs, the clamd address) are in `values`, and
//! the reading of secrets in `secrets`.

use std::env::VarError;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    AntivirusSettings, AttachmentSettings, AuthMethod, AutoCloseScope, ClamdAddress,
    DatabaseSettings, Department, FirstStart, HelpdeskSettings, ImapSettings, Language,
    MailSettings, MailboxSettings, MetricsSettings, OAuth2Mechanism, OAuth2Provider,
    OAuth2Settings, ProcessedMail, ReopenWindow, RetentionSettings, Secret, SecretSource, Settings,
    SmtpSettings, TlsMode, TrustSettings, WebhookFormat, WebhookSettings,
};
use crate::domain::{EmailAddress, EventKind};

mod attachments;
mod connections;
mod helpdesk;
mod placeholders;
mod secrets;
mod values;
mod webhooks;

use secrets::{ReadSecret, secret_key};
use values::{
    check_host, check_webhook_secret, check_webhook_url, clean, database_url, is_loopback_host,
    parse_address, parse_clamd, parse_mailbox, parse_metrics_listen,
};

/// One thing wrong in a settings file, with where it is and what would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `helpdesk.reopen_days` or `departments[1].address`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What is accepted instead.
    pub accepted: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{} (accepted: {})", self.message, self.accepted)
    }
}

/// All the problems of a settings file, sorted by position (problems about
/// the whole file, such as a missing section, come last).
#[derive(Debug, Clone)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        let n = self.problems.len();
        let file = self
            .problems
            .first()
            .map(|p| p.file.display().to_string())
            .unwrap_or_default();
        write!(f, "{n} problem{} in {file}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for SettingsError {}

/// How `X_env` secrets are looked up: `std::env::var` in the daemon, a map
/// in tests (so that tests never touch the process environment).
pub type EnvLookup<'e> = &'e dyn Fn(&str) -> Result<String, VarError>;

/// Reads and checks the settings file at `path`.
pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, path),
        Err(e) => Err(SettingsError {
            problems: vec![Problem {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the settings file: {e}"),
                accepted: "a readable TOML file (`guichet init --preset startup` writes one)"
                    .into(),
            }],
        }),
    }
}

/// Checks settings text as if it had been read from `path` (relative paths
/// inside it are resolved against `path`'s folder), with secrets' `X_env`
/// taken from the process environment.
pub fn load_str(text: &str, path: &Path) -> Result<Settings, SettingsError> {
    load_str_with_env(text, path, &|name| std::env::var(name))
}

/// [`load_str`] with the environment given as a function, for tests and
/// for callers that want to control it.
pub fn load_str_with_env(
    text: &str,
    path: &Path,
    env: EnvLookup<'_>,
) -> Result<Settings, SettingsError> {
    load_checked(text, path, env, false)
}

/// [`load`] for the commands that only read the database (`tickets`,
/// `stats`, `explain`, `outbox`): a secret that cannot be read (a
/// credential file only the service may read, a variable set only in the
/// service's environment) is not a problem; it is replaced by a random
/// value that opens nothing. Everything else is checked as usual.
pub fn load_without_secrets(path: &Path) -> Result<Settings, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_checked(&text, path, &|name| std::env::var(name), true),
        Err(_) => load(path),
    }
}

fn load_checked(
    text: &str,
    path: &Path,
    env: EnvLookup<'_>,
    secrets_optional: bool,
) -> Result<Settings, SettingsError> {
    let mut c = Checker::new(text, path, env);
    c.secrets_optional = secrets_optional;
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let mut message = e.message().replace('\n', "; ");
            // the parser names no key: the one at its position is it
            if let Some(key) = e
                .span()
                .and_then(|span| text.get(span))
                .map(|k| k.trim().trim_matches(['"', '\'']))
                .filter(|k| message.starts_with("duplicate key") && !k.is_empty())
            {
                message = format!("duplicate key `{key}`: given twice in one table, keep one");
            }
            c.report(
                e.span().or(Some(0..0)),
                "",
                format!("not valid TOML: {message}"),
                "TOML syntax (https://toml.io), e.g. `key = \"value\"` under a `[section]`",
            );
            return Err(c.into_error());
        }
    };
    let settings = c.settings(root.get_ref());
    match settings {
        Some(s) if c.problems.is_empty() => Ok(s),
        _ => {
            if c.problems.is_empty() {
                // Defensive: every `None` above comes with a problem.
                c.report(None, "", "the settings could not be read", "a valid file");
            }
            Err(c.into_error())
        }
    }
}

type Span = Range<usize>;
/// `None`: a problem was recorded.
type Checked<T> = Option<T>;

const ROOT_KEYS: &[&str] = &[
    "helpdesk",
    "attachments",
    "antivirus",
    "imap",
    "mailboxes",
    "smtp",
    "database",
    "trust",
    "departments",
    "webhooks",
    "metrics",
    "oauth2",
    "state_dir",
    "retention",
    "mail",
];
const HELPDESK_KEYS: &[&str] = &[
    "auto_close_days",
    "auto_close_scope",
    "reopen_days",
    "subject_tag",
    "language",
    "secret",
    "secret_env",
    "secret_file",
    "max_auto_replies_per_hour",
    "max_relays_per_hour",
    "max_participants",
    "old_mail_days",
    "reply_to_participants",
    "reply_to_senders",
    "form_senders",
    "ticket_url",
    "templates_dir",
];
const ATTACHMENT_KEYS: &[&str] = &[
    "enabled",
    "max_size_mb",
    "max_files",
    "allowed_extensions",
    "storage_dir",
    "retention_days",
];
const ANTIVIRUS_KEYS: &[&str] = &["clamd", "timeout_seconds"];
const IMAP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "auth",
    "password",
    "password_env",
    "password_file",
    "folder",
    "poll_seconds",
    "idle",
    "ca_file",
    "first_start",
    "processed",
    "processed_folder",
];
const MAILBOX_KEYS: &[&str] = &[
    "name",
    "department",
    "host",
    "port",
    "tls",
    "username",
    "auth",
    "password",
    "password_env",
    "password_file",
    "folder",
    "poll_seconds",
    "idle",
    "ca_file",
    "first_start",
    "processed",
    "processed_folder",
];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "auth",
    "password",
    "password_env",
    "password_file",
    "from",
    "ca_file",
    "connections",
];
const DATABASE_KEYS: &[&str] = &["url"];
const OAUTH2_KEYS: &[&str] = &[
    "provider",
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_env",
    "client_secret_file",
    "token_url",
    "device_authorization_url",
    "scopes",
    "mechanism",
    "ca_file",
];
const TRUST_KEYS: &[&str] = &["authserv_ids"];
const METRICS_KEYS: &[&str] = &["listen"];
const RETENTION_KEYS: &[&str] = &["closed_tickets_days", "raw_mail_days"];
const MAIL_KEYS: &[&str] = &["html"];
const DEPARTMENT_KEYS: &[&str] = &["name", "address", "agents", "default"];
const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "format",
    "events",
    "secret",
    "secret_env",
    "secret_file",
    "timeout_seconds",
    "ca_file",
    "system_events",
];

/// The section each key belongs to, to tell someone who wrote
/// `reopen_days = 3` at the top of the file where it goes.
const SECTION_KEYS: &[(&str, &[&str])] = &[
    ("helpdesk", HELPDESK_KEYS),
    ("attachments", ATTACHMENT_KEYS),
    ("antivirus", ANTIVIRUS_KEYS),
    ("imap", IMAP_KEYS),
    ("smtp", SMTP_KEYS),
    ("mailboxes", MAILBOX_KEYS),
    ("database", DATABASE_KEYS),
    ("trust", TRUST_KEYS),
    ("departments", DEPARTMENT_KEYS),
    ("webhooks", WEBHOOK_KEYS),
    ("metrics", METRICS_KEYS),
    ("oauth2", OAUTH2_KEYS),
    ("retention", RETENTION_KEYS),
    ("mail", MAIL_KEYS),
];

const DEFAULT_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx"];
const MAX_DAYS: i64 = 36_500;
const LOOPBACK: &str = "localhost, 127.0.0.0/8 or ::1";

/// A table of the file and where it is.
struct Section<'a> {
    table: &'a DeTable<'a>,
    /// The `[header]` (or inline table) span; `None` for the root and for
    /// optional sections that are absent.
    header: Option<Span>,
    /// Dotted path: `imap`, `departments[1]`.
    path: String,
}

impl<'a> Section<'a> {
    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }
    fn get(&self, name: &str) -> Option<&'a Spanned<DeValue<'a>>> {
        self.table.get(name)
    }
}

struct Checker<'c> {
    file: PathBuf,
    /// Absolute folder of the settings file: the base of relative paths.
    base_dir: PathBuf,
    text: &'c str,
    line_starts: Vec<usize>,
    env: EnvLookup<'c>,
    problems: Vec<Problem>,
    /// [`load_without_secrets`]: an unreadable secret is replaced, not a
    /// problem.
    secrets_optional: bool,
    /// `state_dir`: where the database and stored files go by default, and
    /// the base of their relative paths (else the settings file's folder).
    state_base: Option<PathBuf>,
}

impl<'c> Checker<'c> {
    fn new(text: &'c str, path: &Path, env: EnvLookup<'c>) -> Self {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base_dir = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file: path.to_path_buf(),
            base_dir: clean(&base_dir),
            text,
            line_starts,
            env,
            problems: Vec::new(),
            secrets_optional: false,
            state_base: None,
        }
    }

    fn into_error(mut self) -> SettingsError {
        // Problems about the whole file (line 0) last, the others in file order.
        self.problems
            .sort_by_key(|p| (p.line == 0, p.line, p.column));
        self.problems.dedup();
        SettingsError {
            problems: self.problems,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    fn report(
        &mut self,
        span: Option<Span>,
        key: impl Into<String>,
        message: impl Into<String>,
        accepted: impl Into<String>,
    ) {
        let (line, column) = match span {
            Some(s) => self.position(s.start),
            None => (0, 0),
        };
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            accepted: accepted.into(),
        });
    }

    fn missing(&mut self, s: &Section<'_>, name: &str, accepted: &str) {
        let message = if s.path.is_empty() {
            format!("missing section [{name}]")
        } else {
            format!("missing in [{}]", section_title(&s.path))
        };
        self.report(s.header.clone(), s.key(name), message, accepted);
    }

    /// Reports keys that this table does not have, with the ones it has.
    fn known_keys(&mut self, s: &Section<'_>, known: &[&str]) {
        for (key, _) in s.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = if let Some(close) = closest(name, known) {
                format!(" (did you mean `{close}`?)")
            } else if s.path.is_empty() {
                SECTION_KEYS
                    .iter()
                    .find(|(_, keys)| keys.contains(&name))
                    .map(|(section, _)| format!(" (it belongs in [{section}])"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let is_table = s.table.get(name).is_some_and(|v| {
                matches!(v.get_ref(), DeValue::Table(_))
                    || matches!(v.get_ref(), DeValue::Array(a) if a.iter().all(|i| i.get_ref().is_table()))
            });
            let what = if s.path.is_empty() && is_table {
                "section"
            } else {
                "key"
            };
            self.report(
                Some(key.span()),
                s.key(name),
                format!("unknown {what} `{name}`{hint}"),
                format!("one of: {}", known.join(", ")),
            );
        }
    }

    fn wrong_type(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        key: String,
        expected: &str,
        accepted: &str,
        secret: bool,
    ) {
        let found = if secret {
            type_name(v.get_ref()).to_string()
        } else {
            shown(v.get_ref())
        };
        let mut message = format!("expected {expected}, found {found}");
        if !secret
            && expected == "a whole number"
            && let DeValue::String(text) = v.get_ref()
            && text.trim().parse::<i64>().is_ok()
        {
            message.push_str(" (write the number without quotes)");
        }
        self.report(Some(v.span()), key, message, accepted);
    }

    // ----- typed getters: `Ok(None)` when absent, `Err(())` after a problem

    fn int(
        &mut self,
        s: &Section<'_>,
        name: &str,
        accepted: &str,
    ) -> Result<Option<(i64, Span)>, ()> {
        let Some(v) = s.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Ok(Some((n, v.span()))),
                Err(_) => {
                    self.report(
                        Some(v.span()),
                        s.key(name),
                        format!("{i} is too large"),
                        accepted,
                    );
                    Err(())
                }
            },
            _ => {
                self.wrong_type(v, s.key(name), "a whole number", accepted, false);
                Err(())
            }
        }
    }

    /// An integer in `range`, or `default` when absent.
    fn int_in(
        &mut self,
        s: &Section<'_>,
        name: &str,
        default: i64,
        range: RangeInclusive<i64>,
        accepted: &str,
    ) -> Checked<i64> {
        match self.int(s, name, accepted) {
            Err(()) => None,
            Ok(None) => Some(default),
            Ok(Some((n, _))) if range.contains(&n) => Some(n),
            Ok(Some((n, span))) => {
                self.report(
                    Some(span),
                    s.key(name),
                    format!("{n} is not allowed"),
                    accepted,
                );
                None
            }
        }
    }

    fn boolean(&mut self, s: &Section<'_>, name: &str, default: bool) -> Checked<bool> {
        let Some(v) = s.get(name) else {
            return Some(default);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(
                    v,
                    s.key(name),
                    "true or false",
                    "true or false (without quotes)",
                    false,
                );
                None
            }
        }
    }

    fn string<'a>(
        &mut self,
        s: &Section<'a>,
        name: &str,
        accepted: &str,
        secret: bool,
    ) -> Result<Option<(&'a str, Span)>, ()> {
        let Some(v) = s.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(text) => Ok(Some((text.as_ref(), v.span()))),
            _ => {
                self.wrong_type(v, s.key(name), "a string", accepted, secret);
                Err(())
            }
        }
    }

    /// A non-empty string that must be there.
    fn required_string<'a>(
        &mut self,
        s: &Section<'a>,
        name: &str,
        accepted: &str,
    ) -> Checked<(&'a str, Span)> {
        match self.string(s, name, accepted, false) {
            Err(()) => None,
            Ok(None) => {
                self.missing(s, name, accepted);
                None
            }
            Ok(Some((text, span))) if text.trim().is_empty() => {
                self.report(Some(span), s.key(name), "is empty", accepted);
                None
            }
            Ok(Some((text, span))) => Some((text.trim(), span)),
        }
    }

    /// One of a few words, case-insensitive, or `default` when absent.
    fn choice<T: Copy>(
        &mut self,
        s: &Section<'_>,
        name: &str,
        options: &[(&str, T)],
        default: T,
        what: &str,
    ) -> Checked<(T, Option<Span>)> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let accepted = format!("one of: {}", names.join(", "));
        match self.string(s, name, &accepted, false) {
            Err(()) => None,
            Ok(None) => Some((default, None)),
            Ok(Some((text, span))) => {
                let wanted = text.trim().to_ascii_lowercase();
                match options.iter().find(|(n, _)| *n == wanted) {
                    Some((_, value)) => Some((*value, Some(span))),
                    None => {
                        self.report(
                            Some(span),
                            s.key(name),
                            format!("unknown {what} `{text}`"),
                            accepted,
                        );
                        None
                    }
                }
            }
        }
    }

    /// A path, resolved against the settings file's folder.
    fn path(
        &mut self,
        s: &Section<'_>,
        name: &str,
        accepted: &str,
    ) -> Result<Option<(PathBuf, Span)>, ()> {
        match self.string(s, name, accepted, false)? {
            None => Ok(None),
            Some((text, span)) if text.trim().is_empty() => {
                self.report(Some(span), s.key(name), "is empty", accepted);
                Err(())
            }
            Some((text, span)) => Ok(Some((self.resolve(text.trim()), span))),
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        clean(&self.base_dir.join(path))
    }

    /// The folder relative state paths are resolved against: `state_dir`,
    /// else the settings file's folder.
    fn state_base(&self) -> PathBuf {
        self.state_base
            .clone()
            .unwrap_or_else(|| self.base_dir.clone())
    }

    /// A path written under `[attachments]`/`[database]`: relative to
    /// `state_dir` when there is one.
    fn resolve_state_path(&self, path: &str) -> PathBuf {
        clean(&self.state_base().join(path))
    }

    /// The default place of `name` (`attachments`, `guichet.db`): in
    /// `state_dir`, else in `data/` beside the settings file.
    fn resolve_state(&self, name: &str) -> PathBuf {
        match &self.state_base {
            Some(dir) => clean(&dir.join(name)),
            None => self.resolve(&format!("data/{name}")),
        }
    }

    /// A sub-table of the root. `Ok(None)` when absent (a problem if `required`).
    fn section<'a>(
        &mut self,
        root: &Section<'a>,
        name: &str,
        required: Option<&str>,
    ) -> Result<Option<Section<'a>>, ()> {
        let Some(v) = root.get(name) else {
            if let Some(accepted) = required {
                self.missing(root, name, accepted);
                return Err(());
            }
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(table) => Ok(Some(Section {
                table,
                header: Some(v.span()),
                path: name.to_string(),
            })),
            _ => {
                let accepted = format!("a [{name}] table");
                self.wrong_type(v, name.to_string(), "a table", &accepted, false);
                Err(())
            }
        }
    }

    /// An array of tables (`[[name]]`); absent is an empty list.
    fn table_list<'a>(&mut self, root: &Section<'a>, name: &str) -> Checked<Vec<Section<'a>>> {
        let Some(v) = root.get(name) else {
            return Some(Vec::new());
        };
        let accepted = format!("one [[{name}]] table per entry");
        let DeValue::Array(items) = v.get_ref() else {
            let message = match v.get_ref() {
                DeValue::Table(_) => format!("[{name}] is a single table"),
                other => format!("expected [[{name}]] tables, found {}", shown(other)),
            };
            self.report(Some(v.span()), name, message, accepted);
            return None;
        };
        let mut sections = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(table) => sections.push(Section {
                    table,
                    header: Some(item.span()),
                    path: format!("{name}[{i}]"),
                }),
                other => {
                    let message = format!("expected a table, found {}", shown(other));
                    self.report(
                        Some(item.span()),
                        format!("{name}[{i}]"),
                        message,
                        &accepted,
                    );
                }
            }
        }
        Some(sections)
    }

    // ----- the sections

    fn settings(&mut self, root: &DeTable<'_>) -> Checked<Settings> {
        let empty = DeTable::new();
        let root = Section {
            table: root,
            header: None,
            path: String::new(),
        };
        self.known_keys(&root, ROOT_KEYS);
        if let Ok(Some((dir, _))) = self.path(
            &root,
            "state_dir",
            "a folder for the database and stored files, e.g. \"/var/lib/guichet\" (relative paths: to this settings file)",
        ) {
            self.state_base = Some(dir);
        }

        let helpdesk = self
            .section(
                &root,
                "helpdesk",
                Some("a [helpdesk] table with at least `secret_env` (or `secret` / `secret_file`)"),
            )
            .ok()
            .flatten()
            .and_then(|s| self.helpdesk(&s));

        let attachments = match self.section(&root, "attachments", None) {
            Ok(s) => {
                let s = s.unwrap_or_else(|| absent(&empty, "attachments"));
                self.attachments(&s)
            }
            Err(()) => None,
        };

        let antivirus = match self.section(&root, "antivirus", None) {
            Ok(Some(s)) => self.antivirus(&s).map(Some),
            Ok(None) => Some(None),
            Err(()) => None,
        };

        let mut mailbox_departments: Vec<(String, Span, String)> = Vec::new();
        let listed = self.table_list(&root, "mailboxes");
        let has_list = listed.as_ref().is_some_and(|l| !l.is_empty());
        let imap_table = self
            .section(
                &root,
                "imap",
                (!has_list).then_some(
                    "an [imap] table with host, username and password (or [[mailboxes]])",
                ),
            )
            .ok()
            .flatten();
        let imap = match &imap_table {
            Some(s) => {
                self.known_keys(s, IMAP_KEYS);
                self.imap(s).map(Some)
            }
            None if has_list => Some(None),
            None => None,
        };
        let mut mailboxes: Checked<Vec<MailboxSettings>> = match &imap {
            Some(Some(i)) => Some(vec![MailboxSettings {
                name: "imap".into(),
                imap: i.clone(),
                department: None,
            }]),
            Some(None) => Some(Vec::new()),
            None => None,
        };
        for m in listed.unwrap_or_default() {
            self.known_keys(&m, MAILBOX_KEYS);
            let name = self.required_string(&m, "name", "a short name for logs, e.g. `sales`");
            let department = match self.string(&m, "department", "a department's name", false) {
                Ok(d) => Some(d.map(|(t, span)| (t.trim().to_string(), span))),
                Err(()) => None,
            };
            let settings = self.imap(&m);
            match (name, department, settings, mailboxes.as_mut()) {
                (Some((n, span)), Some(d), Some(i), Some(list)) => {
                    if list.iter().any(|x| x.name.eq_ignore_ascii_case(n)) {
                        self.report(
                            Some(span),
                            m.key("name"),
                            format!("`{n}` names another mailbox too"),
                            "a name of its own (`imap` is the [imap] table's)",
                        );
                        mailboxes = None;
                        continue;
                    }
                    list.push(MailboxSettings {
                        name: n.to_string(),
                        imap: i,
                        department: d.map(|(t, span)| {
                            mailbox_departments.push((t.clone(), span, m.key("department")));
                            t
                        }),
                    });
                }
                _ => mailboxes = None,
            }
        }
        let imap = mailboxes
            .as_ref()
            .and_then(|l| l.first())
            .map(|m| m.imap.clone());

        let smtp = self
            .section(&root, "smtp", Some("an [smtp] table with host and from"))
            .ok()
            .flatten()
            .and_then(|s| self.smtp(&s));

        let database = match self.section(&root, "database", None) {
            Ok(s) => {
                let s = s.unwrap_or_else(|| absent(&empty, "database"));
                self.database(&s)
            }
            Err(()) => None,
        };

        let trust = match self.section(&root, "trust", None) {
            Ok(s) => {
                let s = s.unwrap_or_else(|| absent(&empty, "trust"));
                self.trust(&s)
            }
            Err(()) => None,
        };

        let metrics = match self.section(&root, "metrics", None) {
            Ok(Some(s)) => self.metrics(&s).map(Some),
            Ok(None) => Some(None),
            Err(()) => None,
        };

        let oauth2 = match self.section(&root, "oauth2", None) {
            Ok(Some(s)) => self.oauth2(&s).map(Some),
            Ok(None) => Some(None),
            Err(()) => None,
        };
        let wants_oauth2 = mailboxes
            .as_ref()
            .is_some_and(|l| l.iter().any(|m| m.imap.auth == AuthMethod::OAuth2))
            || smtp.as_ref().is_some_and(|s| s.auth == AuthMethod::OAuth2);
        if wants_oauth2 && matches!(oauth2, Some(None)) {
            self.missing(
                &root,
                "oauth2",
                "an [oauth2] table (provider, client_id) when `auth = \"oauth2\"`",
            );
        }
        let retention = match self.section(&root, "retention", None) {
            Ok(s) => {
                let s = s.unwrap_or_else(|| absent(&empty, "retention"));
                self.retention(&s)
            }
            Err(()) => None,
        };
        let mail = match self.section(&root, "mail", None) {
            Ok(s) => {
                let s = s.unwrap_or_else(|| absent(&empty, "mail"));
                self.mail(&s)
            }
            Err(()) => None,
        };

        let from = smtp.as_ref().map(|s: &SmtpSettings| s.from.address.clone());
        let departments = self.departments(&root, from.as_ref());
        if let Some(list) = &departments {
            for (name, span, key) in &mailbox_departments {
                if !list.iter().any(|d| d.name.eq_ignore_ascii_case(name)) {
                    let names: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
                    self.report(
                        Some(span.clone()),
                        key.clone(),
                        format!("no department is named `{name}`"),
                        format!("one of: {}", names.join(", ")),
                    );
                }
            }
        }
        let mailboxes = mailboxes.map(|list| {
            list.into_iter()
                .map(|mut m| {
                    // the department's own spelling
                    if let (Some(d), Some(all)) = (&m.department, &departments)
                        && let Some(found) = all.iter().find(|x| x.name.eq_ignore_ascii_case(d))
                    {
                        m.department = Some(found.name.clone());
                    }
                    m
                })
                .collect::<Vec<_>>()
        });
        let webhooks = self.webhooks(&root);
        self.placeholders(&root);

        Some(Settings {
            source: self.file.clone(),
            helpdesk: helpdesk?,
            attachments: attachments?,
            antivirus: antivirus?,
            imap: imap?,
            mailboxes: mailboxes?,
            smtp: smtp?,
            database: database?,
            trust: trust?,
            departments: departments?,
            webhooks: webhooks?,
            metrics: metrics?,
            oauth2: oauth2?,
            retention: retention?,
            mail: mail?,
        })
    }
}

/// A department as far as it is valid (`None`: that part had a problem).
struct DepartmentDraft {
    name: Option<(String, Span)>,
    address: Option<(EmailAddress, Span)>,
    /// The valid agents, with their index in the list.
    agents: Vec<(usize, EmailAddress, Span)>,
    /// The value and where `default = …` is written.
    default: Option<(bool, Option<Span>)>,
    /// No problem in this department.
    complete: bool,
}

fn absent<'a>(empty: &'a DeTable<'a>, name: &str) -> Section<'a> {
    Section {
        table: empty,
        header: None,
        path: name.to_string(),
    }
}

/// `departments[1]` → `[[departments]]`, `imap` → `[imap]` (inside the brackets).
fn section_title(path: &str) -> String {
    match path.split_once('[') {
        Some((name, _)) => format!("[{name}]"),
        None => path.to_string(),
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// The value for a message (never used for secrets).
fn shown(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => {
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "…" } else { "" };
            format!("the string \"{short}{more}\"")
        }
        DeValue::Integer(i) => format!("the number {i}"),
        DeValue::Float(x) => format!("the number {x}"),
        DeValue::Boolean(b) => format!("{b}"),
        other => type_name(other).to_string(),
    }
}

/// The known key nearest to a typo (edit distance ≤ 2), if any.
fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    let typo = typo.to_ascii_lowercase();
    let near = known
        .iter()
        .map(|k| (edit_distance(&typo, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    // `max_size` for `max_size_mb`: a known key that starts with the typo.
    near.or_else(|| {
        let mut longer = known
            .iter()
            .filter(|k| typo.len() >= 4 && k.starts_with(typo.as_str()));
        match (longer.next(), longer.next()) {
            (Some(k), None) => Some(*k),
            _ => None,
        }
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
