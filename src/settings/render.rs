//! What `check-config` prints: the resolved settings with secrets masked,
//! and the valid-but-risky choices worth a warning.
//!
//! Masking covers more than the `password`/`secret` keys: the password in a
//! PostgreSQL URL and the token part of chat webhook URLs (a Discord or Slack
//! webhook URL is itself a credential) are masked too.

use std::fmt::Write as _;

use super::{
    AuthMethod, AutoCloseScope, ClamdAddress, OAuth2Mechanism, OAuth2Provider, ReopenWindow,
    SecretSource, Settings, TlsMode, WebhookFormat,
};

const MASK: &str = "********";

/// Types that run code when opened; SPEC.md: a warning at check time, and
/// still refused at run time when the content really is one.
pub const DANGEROUS_EXTENSIONS: &[&str] = &[
    "exe", "bat", "cmd", "com", "scr", "pif", "php", "js", "html", "htm", "vbs", "ps1", "msi",
    "jar", "sh",
];

/// Archives can carry any of the above past the extension check.
const ARCHIVE_EXTENSIONS: &[&str] = &["zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz"];

/// The resolved settings as TOML-like text, secrets masked (`check-config`).
pub fn render_masked(settings: &Settings) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "# Settings read from {} (relative paths resolved against its folder; secrets masked)",
        settings.source.display()
    );

    let h = &settings.helpdesk;
    let _ = writeln!(o, "\n[helpdesk]");
    let _ = writeln!(o, "auto_close_days = {}", h.auto_close_days);
    let scope = match h.auto_close_scope {
        AutoCloseScope::AwaitingCustomer => "awaiting_customer",
        AutoCloseScope::Any => "any",
    };
    let _ = writeln!(o, "auto_close_scope = {}", quote(scope));
    let reopen = match h.reopen_days {
        ReopenWindow::Never => {
            "0    # never: a reply to a closed ticket opens a new one".to_string()
        }
        ReopenWindow::Unlimited => "-1   # unlimited".to_string(),
        ReopenWindow::Days(n) => n.to_string(),
    };
    let _ = writeln!(o, "reopen_days = {reopen}");
    let _ = writeln!(o, "subject_tag = {}", quote(&h.subject_tag));
    let _ = writeln!(o, "language = {}", quote(h.language.code()));
    let _ = writeln!(o, "secret = {}", masked(&h.secret_source));
    let _ = writeln!(
        o,
        "max_auto_replies_per_hour = {}",
        h.max_auto_replies_per_hour
    );
    let _ = writeln!(o, "max_relays_per_hour = {}", h.max_relays_per_hour);
    let _ = writeln!(o, "max_participants = {}", h.max_participants);
    let _ = writeln!(o, "old_mail_days = {}", h.old_mail_days);
    let _ = writeln!(o, "reply_to_participants = {}", h.reply_to_participants);
    let _ = writeln!(o, "reply_to_senders = {}", list(&h.form_senders));
    match &h.ticket_url {
        Some(url) => {
            let _ = writeln!(o, "ticket_url = {}", quote(url));
        }
        None => {
            let _ = writeln!(o, "# ticket_url: not set");
        }
    }
    match &h.templates_dir {
        Some(dir) => {
            let _ = writeln!(o, "templates_dir = {}", quote(&dir.display().to_string()));
        }
        None => {
            let _ = writeln!(o, "# templates_dir: not set (built-in templates)");
        }
    }

    let a = &settings.attachments;
    let _ = writeln!(o, "\n[attachments]");
    let _ = writeln!(o, "enabled = {}", a.enabled);
    let _ = writeln!(o, "max_size_mb = {}", a.max_size_mb);
    let _ = writeln!(o, "max_files = {}", a.max_files);
    let _ = writeln!(o, "allowed_extensions = {}", list(&a.allowed_extensions));
    let _ = writeln!(
        o,
        "storage_dir = {}",
        quote(&a.storage_dir.display().to_string())
    );
    let retention = if a.retention_days == 0 {
        "0    # keep files forever".to_string()
    } else {
        a.retention_days.to_string()
    };
    let _ = writeln!(o, "retention_days = {retention}");

    match &settings.antivirus {
        Some(av) => {
            let _ = writeln!(o, "\n[antivirus]");
            let clamd = match &av.clamd {
                ClamdAddress::Tcp { host, port } if host.contains(':') => {
                    format!("tcp://[{host}]:{port}")
                }
                ClamdAddress::Tcp { host, port } => format!("tcp://{host}:{port}"),
                ClamdAddress::Unix(path) => format!("unix:{}", path.display()),
            };
            let _ = writeln!(o, "clamd = {}", quote(&clamd));
            let _ = writeln!(o, "timeout_seconds = {}", av.timeout_seconds);
        }
        None => {
            let _ = writeln!(
                o,
                "\n# [antivirus]: not configured, attachments are not scanned"
            );
        }
    }

    for m in &settings.mailboxes {
        if m.name == "imap" {
            let _ = writeln!(o, "\n[imap]");
        } else {
            let _ = writeln!(o, "\n[[mailboxes]]");
            let _ = writeln!(o, "name = {}", quote(&m.name));
            if let Some(d) = &m.department {
                let _ = writeln!(o, "department = {}", quote(d));
            }
        }
        imap_keys(o, &m.imap);
    }

    let s = &settings.smtp;
    let _ = writeln!(o, "\n[smtp]");
    let _ = writeln!(o, "host = {}", quote(&s.host));
    let _ = writeln!(o, "port = {}", s.port);
    let _ = writeln!(o, "tls = {}", quote(tls(s.tls)));
    match (&s.username, &s.password_source) {
        (Some(user), _) if s.auth == AuthMethod::OAuth2 => {
            let _ = writeln!(o, "username = {}", quote(user));
            let _ = writeln!(o, "auth = \"oauth2\"  # token from `guichet oauth login`");
        }
        (Some(user), Some(source)) => {
            let _ = writeln!(o, "username = {}", quote(user));
            let _ = writeln!(o, "password = {}", masked(source));
        }
        _ => {
            let _ = writeln!(o, "# no username: mail is submitted without authentication");
        }
    }
    let _ = writeln!(o, "from = {}", quote(&s.from.to_string()));
    if let Some(ca) = &s.ca_file {
        let _ = writeln!(o, "ca_file = {}", quote(&ca.display().to_string()));
    }
    let _ = writeln!(o, "connections = {}", s.connections);

    if let Some(a) = &settings.oauth2 {
        let _ = writeln!(o, "\n[oauth2]");
        match &a.provider {
            OAuth2Provider::Microsoft { tenant } => {
                let _ = writeln!(o, "provider = \"microsoft\"");
                let _ = writeln!(o, "tenant = {}", quote(tenant));
            }
            OAuth2Provider::Google => {
                let _ = writeln!(o, "provider = \"google\"");
            }
            OAuth2Provider::Custom => {
                let _ = writeln!(o, "provider = \"custom\"");
            }
        }
        let _ = writeln!(o, "client_id = {}", quote(&a.client_id));
        match &a.client_secret_source {
            Some(source) => {
                let _ = writeln!(o, "client_secret = {}", masked(source));
            }
            None => {
                let _ = writeln!(o, "# no client_secret (a public client)");
            }
        }
        let _ = writeln!(o, "token_url = {}", quote(&a.token_url));
        let _ = writeln!(
            o,
            "device_authorization_url = {}",
            quote(&a.device_authorization_url)
        );
        let _ = writeln!(o, "scopes = {}", list(&a.scopes));
        let mechanism = match a.mechanism {
            OAuth2Mechanism::Xoauth2 => "xoauth2",
            OAuth2Mechanism::OAuthBearer => "oauthbearer",
        };
        let _ = writeln!(o, "mechanism = \"{mechanism}\"");
    }

    let _ = writeln!(o, "\n[database]");
    let _ = writeln!(
        o,
        "url = {}",
        quote(&mask_database_url(&settings.database.url))
    );

    let _ = writeln!(o, "\n[trust]");
    let _ = writeln!(o, "authserv_ids = {}", list(&settings.trust.authserv_ids));

    match &settings.metrics {
        Some(m) => {
            let _ = writeln!(o, "\n[metrics]");
            let _ = writeln!(o, "listen = {}", quote(&m.listen.to_string()));
        }
        None => {
            let _ = writeln!(o, "\n# [metrics]: no health or metrics listener");
        }
    }

    let r = &settings.retention;
    let _ = writeln!(o, "\n[retention]");
    let _ = writeln!(o, "closed_tickets_days = {}", r.closed_tickets_days);
    let _ = writeln!(o, "raw_mail_days = {}", r.raw_mail_days);

    let _ = writeln!(o, "\n[mail]");
    let _ = writeln!(o, "html = {}", settings.mail.html);

    for d in &settings.departments {
        let _ = writeln!(o, "\n[[departments]]");
        let _ = writeln!(o, "name = {}", quote(&d.name));
        let _ = writeln!(o, "address = {}", quote(d.address.as_str()));
        let agents: Vec<String> = d.agents.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(o, "agents = {}", list(&agents));
        let _ = writeln!(o, "default = {}", d.default);
    }

    if settings.webhooks.is_empty() {
        let _ = writeln!(o, "\n# [[webhooks]]: none");
    }
    for w in &settings.webhooks {
        let _ = writeln!(o, "\n[[webhooks]]");
        let _ = writeln!(o, "url = {}", quote(&mask_webhook_url(&w.url)));
        let format = match w.format {
            WebhookFormat::Auto => "auto",
            WebhookFormat::Json => "json",
            WebhookFormat::Discord => "discord",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Teams => "teams",
        };
        let _ = writeln!(o, "format = {}", quote(format));
        if w.events.is_empty() {
            let _ = writeln!(o, "# events: all");
        } else {
            let events: Vec<String> = w.events.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(o, "events = {}", list(&events));
        }
        match &w.secret_source {
            Some(source) => {
                let _ = writeln!(o, "secret = {}", masked(source));
            }
            None => {
                let _ = writeln!(o, "# no secret: deliveries are not signed");
            }
        }
        let _ = writeln!(o, "timeout_seconds = {}", w.timeout_seconds);
        if let Some(ca) = &w.ca_file {
            let _ = writeln!(o, "ca_file = {}", quote(&ca.display().to_string()));
        }
        let _ = writeln!(o, "system_events = {}", w.system_events);
    }
    out
}

/// Valid but risky choices (dangerous extensions allowed, …), one sentence each.
pub fn warnings(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let a = &settings.attachments;
    for ext in &a.allowed_extensions {
        if DANGEROUS_EXTENSIONS.contains(&ext.as_str()) {
            out.push(format!(
                "attachments.allowed_extensions: `{ext}` is an executable or script type; \
                 files whose content is an executable or script are still refused at run time"
            ));
        }
    }
    let archives: Vec<&str> = a
        .allowed_extensions
        .iter()
        .map(String::as_str)
        .filter(|e| ARCHIVE_EXTENSIONS.contains(e))
        .collect();
    if a.enabled && !archives.is_empty() && settings.antivirus.is_none() {
        out.push(format!(
            "attachments.allowed_extensions: archives ({}) are allowed but no [antivirus] is \
             configured: their content is not scanned",
            archives.join(", ")
        ));
    }
    if settings.helpdesk.reopen_days == ReopenWindow::Unlimited {
        out.push(
            "helpdesk.reopen_days = -1: customers can reopen tickets of any age, which keeps \
             very old tickets alive and hard to manage; a limited window (e.g. 7 or 14 days) is easier"
                .to_string(),
        );
    }
    for (i, d) in settings.departments.iter().enumerate() {
        if d.agents.is_empty() {
            out.push(format!(
                "departments[{i}] (`{}`) has no agents: its tickets are forwarded to nobody",
                d.name
            ));
        }
    }
    let ports = [
        ("imap", settings.imap.port, settings.imap.tls, 993, 143),
        ("smtp", settings.smtp.port, settings.smtp.tls, 465, 587),
    ];
    for (name, port, mode, implicit_port, starttls_port) in ports {
        if mode == TlsMode::Implicit && port == starttls_port {
            out.push(format!(
                "{name}.port = {port} usually wants `tls = \"starttls\"`, not `implicit`"
            ));
        } else if mode == TlsMode::StartTls && port == implicit_port {
            out.push(format!(
                "{name}.port = {port} usually wants `tls = \"implicit\"`, not `starttls`"
            ));
        }
    }
    out
}

fn tls(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Implicit => "implicit",
        TlsMode::StartTls => "starttls",
        TlsMode::None => "none",
    }
}

fn masked(source: &SecretSource) -> String {
    let origin = match source {
        SecretSource::Literal => "literal".to_string(),
        SecretSource::Env(var) => format!("from env {var}"),
        SecretSource::File(path) => format!("from file {}", path.display()),
    };
    format!("\"{MASK}\"  # {origin}")
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `postgres://user:pw@host/db?password=x` → password parts masked.
fn mask_database_url(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else {
        return text.to_string();
    };
    if !u.scheme().starts_with("postgres") {
        return text.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    mask_query(&mut u);
    u.to_string()
}

/// Chat webhook URLs carry their token in the path: Discord
/// `/api/webhooks/ID/TOKEN`, Slack `/services/T/B/TOKEN`, Teams and others
/// in long segments. Everything after the host's fixed prefix is masked
/// for those; other URLs lose only a userinfo password and query values.
fn mask_webhook_url(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else {
        return MASK.to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    mask_query(&mut u);
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    let keep = if host.ends_with("discord.com") || host.ends_with("discordapp.com") {
        Some(2) // api/webhooks
    } else if host == "hooks.slack.com"
        || host.ends_with("webhook.office.com")
        || host.ends_with("logic.azure.com")
    {
        Some(1) // services/, webhookb2/, workflows/
    } else {
        None
    };
    if let Some(keep) = keep {
        let segments: Vec<String> = u
            .path_segments()
            .map(|s| s.map(str::to_string).collect())
            .unwrap_or_default();
        let masked: Vec<&str> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| if i < keep { s.as_str() } else { MASK })
            .collect();
        u.set_path(&masked.join("/"));
    }
    u.to_string()
}

fn mask_query(u: &mut url::Url) {
    if u.query().is_none() {
        return;
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, _)| (k.into_owned(), MASK.to_string()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
}

fn imap_keys(o: &mut String, i: &super::ImapSettings) {
    let _ = writeln!(o, "host = {}", quote(&i.host));
    let _ = writeln!(o, "port = {}", i.port);
    let _ = writeln!(o, "tls = {}", quote(tls(i.tls)));
    let _ = writeln!(o, "username = {}", quote(&i.username));
    if i.auth == AuthMethod::OAuth2 {
        let _ = writeln!(o, "auth = \"oauth2\"  # token from `guichet oauth login`");
    } else {
        let _ = writeln!(o, "password = {}", masked(&i.password_source));
    }
    let _ = writeln!(o, "folder = {}", quote(&i.folder));
    let _ = writeln!(o, "poll_seconds = {}", i.poll_seconds);
    let _ = writeln!(o, "idle = {}", i.idle);
    let _ = writeln!(o, "first_start = {}", quote(i.first_start.as_str()));
    let _ = writeln!(o, "processed = {}", quote(i.processed.as_str()));
    if let crate::settings::ProcessedMail::Move(folder) = &i.processed {
        let _ = writeln!(o, "processed_folder = {}", quote(folder));
    }
    if let Some(ca) = &i.ca_file {
        let _ = writeln!(o, "ca_file = {}", quote(&ca.display().to_string()));
    }
}
