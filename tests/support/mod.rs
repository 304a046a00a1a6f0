//! Test support: the project's test servers (scripts/mailrig.sh) seen from
//! Rust. Integration tests say `mod support;` and get the rig's addresses,
//! fresh mailboxes, mail injection (LMTP, SMTP), mailbox reading (IMAP),
//! fresh databases and the `guichet` binary.
//!
//! Every address `*@example.test` is a mailbox with password `secret`, so a
//! test isolates itself by using [`fresh_user`] addresses; nothing needs to
//! be created or cleaned. The clients here are deliberately independent of
//! `guichet::adapters` (plain TCP for LMTP/SMTP, async-imap over plain
//! IMAP), so that they can check the adapters.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use guichet::domain::EmailAddress;
use guichet::settings::{ImapSettings, MailboxName, Secret, SecretSource, SmtpSettings, TlsMode};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where scripts/test.sh starts the rig, and where its env file is read
/// from when the variables are not set.
pub const DEFAULT_RIG_DIR: &str = "/tmp/guichet-rig";
const START_HINT: &str = "start the test servers: bash scripts/mailrig.sh install && bash scripts/mailrig.sh start /tmp/guichet-rig";

/// The running rig, as described by its env (see scripts/mailrig.sh).
#[derive(Debug, Clone)]
pub struct Rig {
    pub dir: PathBuf,
    /// `example.test`: every address of it is a mailbox.
    pub domain: String,
    /// The password of every mailbox.
    pub password: String,
    pub imap_host: String,
    /// Plain IMAP, STARTTLS offered.
    pub imap_port: u16,
    /// Implicit TLS.
    pub imaps_port: u16,
    /// Direct delivery into Dovecot (incoming mail without Postfix).
    pub lmtp_port: u16,
    pub smtp_host: String,
    /// Plain SMTP, STARTTLS and AUTH offered, no AUTH needed from loopback.
    pub smtp_port: u16,
    /// Implicit TLS.
    pub smtps_port: u16,
    /// The CA that signed the servers' certificate (SAN localhost,
    /// mail.example.test, 127.0.0.1).
    pub ca_file: PathBuf,
    pub clamd_host: String,
    pub clamd_port: u16,
    pub clamd_socket: PathBuf,
    /// `postgresql://helpdesk:secret@…/helpdesk`, a shared database.
    pub database_url: String,
    /// Superuser connection, for creating databases.
    pub pg_admin_url: String,
    /// Postfix refuses every recipient of this domain with 550.
    pub refused_domain: String,
    /// Postfix refuses every recipient of this domain with 450.
    pub deferred_domain: String,
}

/// The rig, read once per test binary: from the environment exported by
/// scripts/test.sh, else from `/tmp/guichet-rig/env`. Panics with the
/// command to run when neither exists.
pub fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let vars: HashMap<String, String> = if std::env::var_os("MAILRIG_DIR").is_some() {
            std::env::vars().collect()
        } else {
            let path = Path::new(DEFAULT_RIG_DIR).join("env");
            match std::fs::read_to_string(&path) {
                Ok(text) => text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                Err(_) => panic!(
                    "no rig env ($MAILRIG_DIR unset, {} unreadable): {START_HINT}",
                    path.display()
                ),
            }
        };
        Rig::from_vars(&vars)
    })
}

impl Rig {
    fn from_vars(vars: &HashMap<String, String>) -> Rig {
        let get = |key: &str| -> String {
            vars.get(key)
                .cloned()
                .unwrap_or_else(|| panic!("the rig env has no {key}: {START_HINT}"))
        };
        let port = |key: &str| -> u16 {
            get(key)
                .parse()
                .unwrap_or_else(|_| panic!("the rig env's {key} is not a port"))
        };
        if vars.get("MAIL_ANY_USER").map(String::as_str) != Some("1") {
            panic!(
                "the rig in the environment was not started by this project's scripts/mailrig.sh \
                 (it lacks MAIL_ANY_USER=1: fresh users would not exist): {START_HINT}"
            );
        }
        Rig {
            dir: get("MAILRIG_DIR").into(),
            domain: get("MAIL_DOMAIN"),
            password: get("MAIL_PASSWORD"),
            imap_host: get("IMAP_HOST"),
            imap_port: port("IMAP_PORT"),
            imaps_port: port("IMAPS_PORT"),
            lmtp_port: port("LMTP_PORT"),
            smtp_host: get("SMTP_HOST"),
            smtp_port: port("SMTP_PORT"),
            smtps_port: port("SMTPS_PORT"),
            ca_file: get("TLS_CA_FILE").into(),
            clamd_host: get("CLAMD_HOST"),
            clamd_port: port("CLAMD_PORT"),
            clamd_socket: get("CLAMD_SOCKET").into(),
            database_url: get("DATABASE_URL"),
            pg_admin_url: get("PG_ADMIN_URL"),
            refused_domain: get("SMTP_REFUSED_DOMAIN"),
            deferred_domain: get("SMTP_DEFERRED_DOMAIN"),
        }
    }

    /// `[imap]` settings for `user`'s INBOX: port 993-style for
    /// `Implicit`, the plain port for `StartTls` and `None`; the rig's CA
    /// trusted; IDLE on, 60 s polling.
    pub fn imap_settings(&self, user: &str, tls: TlsMode) -> ImapSettings {
        ImapSettings {
            host: self.imap_host.clone(),
            port: match tls {
                TlsMode::Implicit => self.imaps_port,
                TlsMode::StartTls | TlsMode::None => self.imap_port,
            },
            tls,
            username: user.to_string(),
            auth: guichet::settings::AuthMethod::Password,
            password: Secret::new(self.password.clone()),
            password_source: SecretSource::Literal,
            folder: "INBOX".to_string(),
            poll_seconds: 60,
            idle: true,
            ca_file: Some(self.ca_file.clone()),
            first_start: guichet::settings::FirstStart::All,
            processed: guichet::settings::ProcessedMail::Keep,
        }
    }

    /// `[smtp]` settings sending as `from`; with AUTH as `from` when
    /// `authenticate`, else anonymous (the rig relays for loopback).
    pub fn smtp_settings(&self, from: &str, tls: TlsMode, authenticate: bool) -> SmtpSettings {
        SmtpSettings {
            host: self.smtp_host.clone(),
            port: match tls {
                TlsMode::Implicit => self.smtps_port,
                TlsMode::StartTls | TlsMode::None => self.smtp_port,
            },
            tls,
            username: authenticate.then(|| from.to_string()),
            auth: guichet::settings::AuthMethod::Password,
            password: authenticate.then(|| Secret::new(self.password.clone())),
            password_source: authenticate.then_some(SecretSource::Literal),
            from: MailboxName {
                name: Some("Guichet Test".to_string()),
                address: address(from),
            },
            ca_file: Some(self.ca_file.clone()),
            connections: guichet::settings::DEFAULT_SMTP_CONNECTIONS,
        }
    }
}

/// A string unique across test processes, runs and calls: pid, a
/// per-process counter and 48 random bits (mailboxes outlive a run, and a
/// fresh CI container hands out the same pids every time), lower-case hex.
pub fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}-{:x}-{:012x}",
        std::process::id(),
        n,
        rand::random::<u64>() >> 16
    )
}

/// A mailbox no one has used: `t<unique>-<prefix>@example.test`. Keep
/// `prefix` short (the local part is limited to 64 characters).
pub fn fresh_user(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("t{}-{prefix}@{}", unique_token(), rig().domain)
}

/// Parses an address the test wrote itself.
pub fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap_or_else(|e| panic!("test address {text:?}: {e}"))
}

/// A small, valid RFC 822 message with Date and Message-ID.
pub fn simple_message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@test.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        date = chrono::Utc::now().to_rfc2822(),
        id = unique_token(),
    )
    .into_bytes()
}

/// Delivers `raw` into `rcpt`'s INBOX over LMTP, as incoming mail. The
/// envelope sender (the `Return-Path` Dovecot adds) is the message's From
/// address, or `sender@example.net` without one.
pub async fn deliver_lmtp(rcpt: &str, raw: &[u8]) {
    let from = from_address(raw).unwrap_or_else(|| "sender@example.net".to_string());
    deliver_lmtp_from(&from, rcpt, raw).await
}

/// [`deliver_lmtp`] with an explicit envelope sender (`""` for a bounce's
/// null sender).
pub async fn deliver_lmtp_from(mail_from: &str, rcpt: &str, raw: &[u8]) {
    let rig = rig();
    if let Err(e) = smtp_transaction(
        &rig.imap_host,
        rig.lmtp_port,
        Dialect::Lmtp,
        mail_from,
        &[rcpt],
        raw,
    )
    .await
    {
        panic!("LMTP delivery to {rcpt} failed: {e}");
    }
}

/// Submits `raw` to the rig's Postfix (plain, no AUTH) for `rcpts`; other
/// domains end up in catchall@example.test.
pub async fn send_smtp(from: &str, rcpts: &[&str], raw: &[u8]) {
    if let Err(e) = try_send_smtp(from, rcpts, raw).await {
        panic!("SMTP submission to {rcpts:?} failed: {e}");
    }
}

/// [`send_smtp`], returning the server's refusal (`"550 5.1.1 …"`).
pub async fn try_send_smtp(from: &str, rcpts: &[&str], raw: &[u8]) -> Result<(), String> {
    let rig = rig();
    smtp_transaction(
        &rig.smtp_host,
        rig.smtp_port,
        Dialect::Smtp,
        from,
        rcpts,
        raw,
    )
    .await
}

/// Every message of `user`'s INBOX, in UID order (read-only: flags unchanged).
pub async fn fetch_all(user: &str) -> Vec<Vec<u8>> {
    let mut inbox = Inbox::open(user).await;
    let all = inbox.messages().await;
    inbox.close().await;
    all
}

/// Polls `user`'s INBOX until it holds at least `n` messages, then returns
/// them all; panics after `timeout`.
pub async fn wait_for_messages(user: &str, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let started = Instant::now();
    let mut inbox = Inbox::open(user).await;
    loop {
        let count = inbox.count().await;
        if count >= n {
            let all = inbox.messages().await;
            inbox.close().await;
            return all;
        }
        if started.elapsed() > timeout {
            panic!("{user} has {count} message(s) after {timeout:?}, expected {n}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `user`'s INBOX until a message whose Subject header contains
/// `subject` arrives, and returns it; for shared mailboxes such as
/// catchall@example.test. Panics after `timeout`.
pub async fn wait_for_subject(user: &str, subject: &str, timeout: Duration) -> Vec<u8> {
    let started = Instant::now();
    let mut inbox = Inbox::open(user).await;
    loop {
        if let Some(raw) = inbox.find_subject(subject).await {
            inbox.close().await;
            return raw;
        }
        if started.elapsed() > timeout {
            panic!("no message with subject {subject:?} in {user} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The flags of every message of `user`'s INBOX, in UID order.
pub async fn flags_of_all(user: &str) -> Vec<Vec<String>> {
    let mut inbox = Inbox::open(user).await;
    let flags = inbox.flags().await;
    inbox.close().await;
    flags
}

/// Cuts every IMAP connection of `user` (`doveadm kick`), as a server
/// restart or a network failure would.
pub fn kick_imap_user(user: &str) {
    let conf = rig().dir.join("dovecot/dovecot.conf");
    let out = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(&conf)
        .args(["kick", user])
        .output()
        .expect("run doveadm (installed with the rig)");
    assert!(
        out.status.success(),
        "doveadm kick {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A SQLite URL for a database file that does not exist yet, in `dir`.
pub fn fresh_sqlite_url(dir: &Path) -> String {
    format!(
        "sqlite://{}",
        dir.join(format!("guichet-{}.db", unique_token())).display()
    )
}

/// Creates an empty PostgreSQL database on the rig, owned by `helpdesk`,
/// and returns its URL. Databases left by finished test processes are
/// dropped on the first call of each process.
pub async fn fresh_pg_database() -> String {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let rig = rig();
    let mut admin = sqlx::PgConnection::connect(&rig.pg_admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the rig's PostgreSQL: {e}: {START_HINT}"));
    SWEPT
        .get_or_init(|| async {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'gt\\_%'")
                    .fetch_all(&mut admin)
                    .await
                    .expect("list test databases");
            for name in names {
                let owner_alive = name
                    .split('_')
                    .nth(1)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if !owner_alive {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&mut admin)
                        .await;
                }
            }
        })
        .await;
    let name = format!("gt_{}_{}", std::process::id(), unique_token());
    let create = format!("CREATE DATABASE \"{name}\" OWNER helpdesk");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let _ = admin.close().await;
    let base = rig
        .database_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("DATABASE_URL has a database name");
    format!("{base}/{name}")
}

/// The `guichet` binary built for these tests.
pub fn guichet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guichet"))
}

/// The address in the message's From header.
fn from_address(raw: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let from = message.from()?.first()?;
    from.address().map(str::to_string)
}

// ---------------------------------------------------------------- IMAP

/// Puts `raw` into `user`'s `folder` (created if missing) with IMAP
/// APPEND, as mail that was there before Guichet: its flags (`\\Seen`
/// for read mail, or "") and the server's arrival date (INTERNALDATE,
/// `"01-Mar-2024 10:00:00 +0000"`).
pub async fn append(user: &str, folder: &str, raw: &[u8], flags: &str, arrived: &str) {
    let mut inbox = Inbox::open(user).await;
    if folder != "INBOX" {
        let _ = inbox.session.create(folder).await;
    }
    let flags = (!flags.is_empty()).then(|| format!("({flags})"));
    inbox
        .session
        .append(
            folder,
            flags.as_deref(),
            Some(&format!("\"{arrived}\"")),
            raw,
        )
        .await
        .unwrap_or_else(|e| panic!("APPEND to {user}/{folder}: {e}"));
    let _ = inbox.session.logout().await;
}

/// A read-only (EXAMINE) view of one user's INBOX over plain IMAP.
struct Inbox {
    session: async_imap::Session<TcpStream>,
    user: String,
}

impl Inbox {
    async fn open(user: &str) -> Inbox {
        let rig = rig();
        let tcp = TcpStream::connect((rig.imap_host.as_str(), rig.imap_port))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the rig's IMAP: {e}: {START_HINT}"));
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("IMAP greeting")
            .expect("IMAP greeting");
        let session = client
            .login(user, &rig.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("IMAP login as {user}: {e}"));
        Inbox {
            session,
            user: user.to_string(),
        }
    }

    /// Re-EXAMINE: also the way to see mail delivered since the last look.
    async fn count(&mut self) -> usize {
        let mailbox = self
            .session
            .examine("INBOX")
            .await
            .unwrap_or_else(|e| panic!("EXAMINE INBOX of {}: {e}", self.user));
        while self.session.unsolicited_responses.try_recv().is_ok() {}
        mailbox.exists as usize
    }

    async fn fetch(&mut self, items: &str) -> Vec<async_imap::types::Fetch> {
        if self.count().await == 0 {
            return Vec::new();
        }
        let mut fetched: Vec<_> = self
            .session
            .uid_fetch("1:*", items)
            .await
            .unwrap_or_else(|e| panic!("UID FETCH in {}: {e}", self.user))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("UID FETCH in {}: {e}", self.user));
        fetched.sort_by_key(|f| f.uid);
        fetched
    }

    async fn find_subject(&mut self, subject: &str) -> Option<Vec<u8>> {
        self.count().await;
        let query = format!("HEADER Subject \"{}\"", subject.replace(['"', '\\'], ""));
        let uids = self
            .session
            .uid_search(&query)
            .await
            .unwrap_or_else(|e| panic!("UID SEARCH in {}: {e}", self.user));
        let uid = uids.into_iter().max()?;
        let fetched: Vec<_> = self
            .session
            .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
            .await
            .unwrap_or_else(|e| panic!("UID FETCH in {}: {e}", self.user))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("UID FETCH in {}: {e}", self.user));
        fetched.first().and_then(|f| f.body()).map(<[u8]>::to_vec)
    }

    async fn messages(&mut self) -> Vec<Vec<u8>> {
        self.fetch("(UID BODY.PEEK[])")
            .await
            .iter()
            .map(|f| f.body().expect("FETCH BODY[] has a body").to_vec())
            .collect()
    }

    async fn flags(&mut self) -> Vec<Vec<String>> {
        self.fetch("(UID FLAGS)")
            .await
            .iter()
            .map(|f| f.flags().map(|flag| flag_text(&flag)).collect())
            .collect()
    }

    async fn close(mut self) {
        let _ = self.session.logout().await;
    }
}

/// A flag as IMAP writes it: `\\Seen`, `$GuichetDone`.
fn flag_text(flag: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(name) => name.to_string(),
    }
}

// ---------------------------------------------------------------- SMTP / LMTP

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Smtp,
    /// RFC 2033: LHLO, and one reply per recipient after the data.
    Lmtp,
}

/// One mail transaction with a plain-text SMTP or LMTP server.
async fn smtp_transaction(
    host: &str,
    port: u16,
    dialect: Dialect,
    mail_from: &str,
    rcpts: &[&str],
    raw: &[u8],
) -> Result<(), String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e} ({START_HINT})"))?;
    let (read, mut write) = tcp.into_split();
    let mut read = BufReader::new(read);

    expect(&mut read, 220, "greeting").await?;
    let hello = if dialect == Dialect::Lmtp {
        "LHLO"
    } else {
        "EHLO"
    };
    command(&mut write, &format!("{hello} localhost")).await?;
    expect(&mut read, 250, hello).await?;
    command(&mut write, &format!("MAIL FROM:<{mail_from}>")).await?;
    expect(&mut read, 250, "MAIL FROM").await?;
    for rcpt in rcpts {
        command(&mut write, &format!("RCPT TO:<{rcpt}>")).await?;
        expect(&mut read, 250, &format!("RCPT TO:<{rcpt}>")).await?;
    }
    command(&mut write, "DATA").await?;
    expect(&mut read, 354, "DATA").await?;
    write
        .write_all(&dot_stuffed(raw))
        .await
        .map_err(|e| e.to_string())?;
    let replies = if dialect == Dialect::Lmtp {
        rcpts.len()
    } else {
        1
    };
    for _ in 0..replies {
        expect(&mut read, 250, "end of data").await?;
    }
    command(&mut write, "QUIT").await?;
    let _ = read_reply(&mut read).await;
    Ok(())
}

async fn command(write: &mut tokio::net::tcp::OwnedWriteHalf, line: &str) -> Result<(), String> {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| format!("cannot send {line:?}: {e}"))
}

/// Reads one (possibly multi-line) reply: its code and full text.
async fn read_reply(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<(u16, String), String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = read.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed (after {text:?})"));
        }
        text.push_str(&line);
        let bytes = line.as_bytes();
        if bytes.len() < 4 || bytes[3] != b'-' {
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad reply {line:?}"))?;
            return Ok((code, text.trim_end().to_string()));
        }
    }
}

async fn expect(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    want: u16,
    step: &str,
) -> Result<(), String> {
    let (code, text) = read_reply(read).await?;
    if code == want {
        Ok(())
    } else {
        Err(format!("{step}: {text}"))
    }
}

/// The DATA payload: CRLF line ends, leading dots doubled, final `.`.
fn dot_stuffed(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &byte in raw {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The Maildir of `user` on the rig.
pub fn maildir(user: &str) -> PathBuf {
    let (local, domain) = user.split_once('@').unwrap();
    rig()
        .dir
        .join("mail")
        .join(domain)
        .join(local)
        .join("Maildir")
}

/// The file that holds the message containing `marker`.
pub fn message_file(user: &str, marker: &str) -> PathBuf {
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(maildir(user).join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = std::fs::read(entry.path()).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains(marker) {
                return entry.path();
            }
        }
    }
    panic!("no message with {marker:?} in {user}'s Maildir");
}
