//! The validated settings: what `guichet.toml` means once it has been read.
//!
//! Every value here has been checked by [`load`] (see `load.rs`), so the rest
//! of the program never re-validates: a `ReopenWindow` is one of three
//! shapes, a `Secret` is resolved and never printed, a department has an
//! address. Key names follow SPEC.md "Settings file".

use std::fmt;
use std::path::PathBuf;

use crate::domain::{EmailAddress, EventKind};

mod load;
pub mod presets;
mod render;

pub use load::{
    EnvLookup, Problem, SettingsError, load, load_str, load_str_with_env, load_without_secrets,
};
pub use render::{DANGEROUS_EXTENSIONS, render_masked, warnings};

/// A password or key. Its `Debug` and `Display` print `********`, so that a
/// secret cannot reach a log line by accident; [`Secret::expose`] is the one
/// way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Where a secret came from, for `check-config` (`value`, `env NAME`,
/// `file PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Literal,
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The file these settings were read from (for messages).
    pub source: PathBuf,
    pub helpdesk: HelpdeskSettings,
    pub attachments: AttachmentSettings,
    pub antivirus: Option<AntivirusSettings>,
    /// The first mailbox's IMAP settings (`[imap]`, else the first
    /// `[[mailboxes]]`): what `import` and the dry run read.
    pub imap: ImapSettings,
    /// Every mailbox Guichet reads: `[imap]` (named `imap`) and each
    /// `[[mailboxes]]`, in the file's order; never empty.
    pub mailboxes: Vec<MailboxSettings>,
    pub smtp: SmtpSettings,
    pub database: DatabaseSettings,
    pub trust: TrustSettings,
    /// At least one; exactly one has `default = true` (or the only one is
    /// the default).
    pub departments: Vec<Department>,
    pub webhooks: Vec<WebhookSettings>,
    /// The health and metrics listener (`[metrics]`), when wanted.
    pub metrics: Option<MetricsSettings>,
    /// The OAuth2 app (`[oauth2]`), when `imap.auth` or `smtp.auth` is
    /// `oauth2`.
    pub oauth2: Option<OAuth2Settings>,
    /// How long personal data is kept (`[retention]`); all zero (keep
    /// forever) when the table is absent.
    pub retention: RetentionSettings,
    /// How outgoing mail is written (`[mail]`).
    pub mail: MailSettings,
}

impl Settings {
    /// The department a message sent to `to` lands in: the one whose
    /// address matches (plus-tags ignored), else the default one.
    pub fn department_for(&self, to: &[EmailAddress]) -> &Department {
        for addr in to {
            let base = addr.without_tag();
            if let Some(d) = self.departments.iter().find(|d| d.address == base) {
                return d;
            }
        }
        self.default_department()
    }

    pub fn default_department(&self) -> &Department {
        self.departments
            .iter()
            .find(|d| d.default)
            .unwrap_or(&self.departments[0])
    }

    pub fn department_named(&self, name: &str) -> Option<&Department> {
        self.departments
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name.trim()))
    }

    /// Every configured agent address, over all departments.
    pub fn is_agent(&self, addr: &EmailAddress) -> bool {
        self.departments.iter().any(|d| d.agents.contains(addr))
    }

    /// Our own support addresses: every department's, and the sender of
    /// outgoing mail.
    pub fn support_addresses(&self) -> impl Iterator<Item = &EmailAddress> {
        self.departments
            .iter()
            .map(|d| &d.address)
            .chain([&self.smtp.from.address])
    }

    /// Is this one of our own support addresses (any department)?
    pub fn is_support_address(&self, addr: &EmailAddress) -> bool {
        let base = addr.without_tag();
        self.support_addresses().any(|a| *a == base)
    }
}

#[derive(Debug, Clone)]
pub struct HelpdeskSettings {
    /// `0` disables auto-close.
    pub auto_close_days: u32,
    pub auto_close_scope: AutoCloseScope,
    pub reopen_days: ReopenWindow,
    /// Contains `{id}` exactly once, e.g. `[#{id}]`.
    pub subject_tag: String,
    pub language: Language,
    /// HMAC key of the reply tokens.
    pub secret: Secret,
    pub secret_source: SecretSource,
    /// Automatic replies per sender and hour (robot safety). Default 5.
    pub max_auto_replies_per_hour: u32,
    /// Agents' answers relayed to the customer per ticket and hour; more
    /// are held and the agent told (robots answering robots). Default 20.
    pub max_relays_per_hour: u32,
    /// People who receive a ticket's mail (its customer and Cc'd
    /// participants); more are not added and the agents told. Default 20.
    pub max_participants: u32,
    /// Mail older than this many days (its server arrival date, else its
    /// Date) becomes a ticket but causes no automatic mail and no webhook
    /// event: history met on a first start or after a server move. `0`:
    /// no limit. Default 3.
    pub old_mail_days: u32,
    /// Send agents' replies to the customer's Cc'd participants too. Default true.
    pub reply_to_participants: bool,
    /// Senders (`form@shop.test`, or a domain `@forms.shop.test`, lower
    /// case) whose mail is written on behalf of the person in its
    /// `Reply-To` (a website's contact form): that person is the
    /// customer. Default: none.
    pub form_senders: Vec<String>,
    /// Optional link for webhook messages, with `{id}`:
    /// `https://desk.example.com/tickets/{id}`.
    pub ticket_url: Option<String>,
    /// Directory whose `<lang>/<name>.txt` files replace the built-in
    /// templates of outgoing mail.
    pub templates_dir: Option<PathBuf>,
}

impl HelpdeskSettings {
    /// Whether mail from `from` is a contact form's, on behalf of its
    /// `Reply-To` (see [`HelpdeskSettings::form_senders`]).
    pub fn is_form_sender(&self, from: &str) -> bool {
        let from = from.to_ascii_lowercase();
        let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.form_senders.iter().any(|p| match p.strip_prefix('@') {
            Some(d) => d == domain,
            None => *p == from,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCloseScope {
    /// Only tickets whose last message came from an agent.
    AwaitingCustomer,
    /// Every open ticket.
    Any,
}

/// `reopen_days`: `0` never, `-1` unlimited, `n` days after closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReopenWindow {
    Never,
    Days(u32),
    Unlimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Fr,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    pub enabled: bool,
    /// Per file, decoded size, in MiB.
    pub max_size_mb: u64,
    /// Lower-case, without leading dots, deduplicated, in file order.
    pub allowed_extensions: Vec<String>,
    /// Files checked per message; the rest are refused as too many.
    /// Default 20.
    pub max_files: u32,
    pub storage_dir: PathBuf,
    /// `guichet cleanup` removes files of tickets closed longer ago than
    /// this. `0` keeps files forever. Default 365.
    pub retention_days: u32,
}

impl AttachmentSettings {
    pub fn max_size_bytes(&self) -> u64 {
        self.max_size_mb.saturating_mul(1024 * 1024)
    }
}

#[derive(Debug, Clone)]
pub struct AntivirusSettings {
    pub clamd: ClamdAddress,
    /// Per file. Default 30.
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Implicit,
    StartTls,
    /// Plain text: only accepted towards a loopback host.
    None,
}

/// How Guichet logs in to a mail server (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `password` (LOGIN on IMAP, AUTH PLAIN/LOGIN on SMTP).
    Password,
    /// SASL XOAUTH2 or OAUTHBEARER with an access token of the `[oauth2]`
    /// app, refreshed from the refresh token `guichet oauth login` stored.
    OAuth2,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::OAuth2 => "oauth2",
        }
    }
}

/// `[oauth2] provider`: where the app is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2Provider {
    /// Microsoft Entra ID (Microsoft 365), with its tenant (a domain, a
    /// tenant id, or `organizations`).
    Microsoft {
        tenant: String,
    },
    Google,
    /// Any RFC 8628 provider, with its endpoints.
    Custom,
}

/// SASL mechanism of the IMAP login (SMTP always uses XOAUTH2, the one
/// Microsoft and Google both take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuth2Mechanism {
    Xoauth2,
    OAuthBearer,
}

/// `[oauth2]`: the app registration Guichet signs in with.
#[derive(Debug, Clone)]
pub struct OAuth2Settings {
    pub provider: OAuth2Provider,
    pub client_id: String,
    /// Google's desktop clients and "confidential" Microsoft apps have one;
    /// Microsoft public clients (the device flow) need none.
    pub client_secret: Option<Secret>,
    pub client_secret_source: Option<SecretSource>,
    /// RFC 6749 token endpoint (the provider's, or `token_url`).
    pub token_url: String,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_url: String,
    pub scopes: Vec<String>,
    pub mechanism: OAuth2Mechanism,
    /// Extra CA (PEM) to trust for the provider's endpoints (tests, a
    /// private identity provider).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    /// [`AuthMethod::OAuth2`]: `password` is empty and never sent.
    pub auth: AuthMethod,
    pub password: Secret,
    pub password_source: SecretSource,
    pub folder: String,
    pub poll_seconds: u64,
    pub idle: bool,
    /// Extra CA certificate (PEM) to trust, for a private mail server.
    pub ca_file: Option<PathBuf>,
    /// What the first pass over a mailbox Guichet has no checkpoint for
    /// takes. Default [`FirstStart::Unseen`].
    pub first_start: FirstStart,
    /// What becomes of a message once it is stored (`processed`,
    /// `processed_folder`). Default [`ProcessedMail::Keep`].
    pub processed: ProcessedMail,
}

/// `imap.processed`: a message Guichet has stored (committed) stays in
/// the folder flagged (keep, the default), is moved to another folder, or
/// is deleted from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessedMail {
    Keep,
    Move(String),
    Delete,
}

impl ProcessedMail {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProcessedMail::Keep => "keep",
            ProcessedMail::Move(_) => "move",
            ProcessedMail::Delete => "delete",
        }
    }
}

/// One mailbox Guichet reads (`[imap]` or a `[[mailboxes]]` entry): its
/// own login, folder, UID checkpoint and IDLE connection.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    /// `imap` for the `[imap]` table; for logs, events and `--mailbox`.
    pub name: String,
    pub imap: ImapSettings,
    /// The department new tickets from this mailbox go to (instead of
    /// the one their recipients name); `None`: by recipient, as `[imap]`.
    pub department: Option<String>,
}

impl ImapSettings {
    /// The mailbox's name in the store (its UID checkpoint, its messages'
    /// origin): `username@host/folder`.
    pub fn checkpoint_key(&self) -> String {
        format!("{}@{}/{}", self.username, self.host, self.folder)
    }
}

/// `imap.first_start`: what to take from a mailbox met for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstStart {
    /// Unread messages; read mail is left as history.
    Unseen,
    /// Nothing already there: only mail arriving from now on.
    New,
    /// Everything (old messages get no automatic mail all the same).
    All,
}

impl FirstStart {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstStart::Unseen => "unseen",
            FirstStart::New => "new",
            FirstStart::All => "all",
        }
    }
}

/// `smtp.connections` when absent: what got the most through the bench
/// rig's Postfix (README, "Performance").
pub const DEFAULT_SMTP_CONNECTIONS: usize = 4;

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// `None`: submit without authentication.
    pub username: Option<String>,
    /// [`AuthMethod::OAuth2`]: `username` is set, `password` is `None`.
    pub auth: AuthMethod,
    pub password: Option<Secret>,
    pub password_source: Option<SecretSource>,
    /// The sender of every outgoing message.
    pub from: MailboxName,
    pub ca_file: Option<PathBuf>,
    /// How many connections the outbox drains over at once (`connections`).
    pub connections: usize,
}

/// `Example Support <support@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxName {
    pub name: Option<String>,
    pub address: EmailAddress,
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} <{}>", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
}

/// `[metrics] listen = "127.0.0.1:9187"`: `/healthz`, `/readyz` and
/// `/metrics` over plain HTTP, on a loopback address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: std::net::SocketAddr,
}

/// `[mail]`: how outgoing mail is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailSettings {
    /// Every mail is `multipart/alternative` (text and HTML); `false`
    /// sends text only.
    pub html: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings { html: true }
    }
}

/// `[retention]`: how long tickets and raw mail are kept. `0` keeps
/// forever (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionSettings {
    /// Tickets closed longer ago than this are removed with everything
    /// they hold.
    pub closed_tickets_days: u32,
    /// Raw copies of mail in tickets closed longer ago than this are
    /// dropped (the decoded text, files and verdicts stay).
    pub raw_mail_days: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TrustSettings {
    /// `Authentication-Results` headers from these servers are believed.
    pub authserv_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Department {
    pub name: String,
    pub address: EmailAddress,
    pub agents: Vec<EmailAddress>,
    pub default: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub format: WebhookFormat,
    /// Empty means every event.
    pub events: Vec<EventKind>,
    pub secret: Option<Secret>,
    pub secret_source: Option<SecretSource>,
    /// The deadline of every attempt: connecting, TLS, sending the event
    /// and reading the answer (seconds).
    pub timeout_seconds: u64,
    /// Extra CA (PEM) to trust for this endpoint, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// This endpoint is told (`system.degraded`, `system.recovered`) when
    /// another endpoint is paused and when it answers again.
    pub system_events: bool,
}

/// The default of `webhooks[].timeout_seconds`.
pub const WEBHOOK_TIMEOUT_SECONDS: u64 = 10;

impl WebhookSettings {
    /// Ticket events: all when `events` is left out. The system events
    /// (`system.degraded`/`system.recovered`: a store fault, or another
    /// endpoint paused) only when asked for, by `system_events = true` or
    /// by naming them in `events`: one opt-in for both sources.
    pub fn wants(&self, event: EventKind) -> bool {
        // an audit record: every endpoint that takes every event
        if event == EventKind::CustomerErased {
            return self.events.is_empty() || self.events.contains(&event);
        }
        if event.is_system() {
            return self.system_events || self.events.contains(&event);
        }
        self.events.is_empty() || self.events.contains(&event)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    Auto,
    Json,
    Discord,
    Slack,
    Teams,
}
