//! `guichet doctor` (issue 14): checks everything the settings point at,
//! in the order mail flows, and says for each failure what to fix. Exit 0
//! only when every check passes; `--json` for scripts. Nothing is sent
//! (SMTP gets `MAIL FROM` then `RSET`) unless `--send` asks to post the
//! demo event to the webhook endpoints.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::adapters::clamd;
use crate::adapters::imap::ImapError;
use crate::adapters::smtp::SmtpSender;
use crate::adapters::webhook_http::WebhookClient;
use crate::domain::ScanOutcome;
use crate::mail::templates::Templates;
use crate::rules::webhooks;
use crate::settings::{self, AuthMethod, SecretSource, Settings, TlsMode};
use crate::store::Store;

const STEP: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize)]
pub struct Check {
    /// Dotted name: `imap.login`, `mailboxes.sales.folder`, `webhooks[0].tls`…
    pub item: String,
    pub ok: bool,
    pub detail: String,
    /// What to do, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn pass(&mut self, item: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Check {
            item: item.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }
    fn fail(&mut self, item: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Check {
            item: item.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
}

/// Runs every check; `Ok(true)` when all passed.
pub async fn doctor(config: &Path, json: bool, send: bool) -> anyhow::Result<bool> {
    let mut r = Report::default();
    match settings::load(config) {
        Ok(s) => {
            r.pass("settings", format!("{} is valid", config.display()));
            check_all(&s, config, send, &mut r).await;
        }
        Err(e) => {
            let problems: Vec<String> = e
                .problems
                .iter()
                .map(|p| format!("line {}: {}: {}", p.line, p.key, p.message))
                .collect();
            r.fail(
                "settings",
                problems.join("; "),
                "correct these lines (`guichet check-config` shows each with what is accepted); values such as imap.example.com are placeholders left from the preset",
            );
        }
    }
    let ok = r.0.iter().all(|c| c.ok);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "checks": r.0}))?
        );
    } else {
        for c in &r.0 {
            match &c.fix {
                None => println!("ok    {:<28} {}", c.item, c.detail),
                Some(fix) => println!("FAIL  {:<28} {}\n      fix: {fix}", c.item, c.detail),
            }
        }
        let failed = r.0.iter().filter(|c| !c.ok).count();
        println!("{} checks, {} failed", r.0.len(), failed);
    }
    Ok(ok)
}

async fn check_all(s: &Settings, config: &Path, send: bool, r: &mut Report) {
    permissions(s, config, r);
    for m in &s.mailboxes {
        let item = if m.name == "imap" {
            "imap".to_string()
        } else {
            format!("mailboxes.{}", m.name)
        };
        mailbox(s, &m.name, &item, &m.imap, r).await;
    }
    smtp(s, r).await;
    antivirus(s, r).await;
    database(s, r).await;
    match Templates::load(s.helpdesk.templates_dir.as_deref()) {
        Ok(_) => r.pass("templates", "every template compiles"),
        Err(e) => r.fail(
            "templates",
            format!("{e:#}"),
            "correct the template named (helpdesk.templates_dir); see README \"Templates\"",
        ),
    }
    for (i, w) in s.webhooks.iter().enumerate() {
        webhook(s, i, w, send, r).await;
    }
}

/// DNS, then an answer on the port.
async fn dns(item: &str, host: &str, port: u16, key: &str, r: &mut Report) -> bool {
    match tokio::time::timeout(STEP, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            r.pass(
                format!("{item}.dns"),
                format!("{host} is {}", list.join(", ")),
            );
            true
        }
        Ok(Err(e)) => {
            r.fail(
                format!("{item}.dns"),
                format!("cannot resolve {host}: {e}"),
                format!("check `{key}` (a typo?) and this machine's DNS"),
            );
            false
        }
        Err(_) => {
            r.fail(
                format!("{item}.dns"),
                format!("no DNS answer for {host} within {} s", STEP.as_secs()),
                "check this machine's DNS resolver",
            );
            false
        }
    }
}

async fn mailbox(
    s: &Settings,
    name: &str,
    item: &str,
    imap_settings: &crate::settings::ImapSettings,
    r: &mut Report,
) {
    if !dns(
        item,
        &imap_settings.host,
        imap_settings.port,
        &format!("{item}.host"),
        r,
    )
    .await
    {
        return;
    }
    let tokens = if imap_settings.auth == AuthMethod::OAuth2 {
        match Store::connect(&s.database.url).await {
            Ok(store) => {
                crate::workers::oauth::OAuthTokens::new(std::sync::Arc::new(s.clone()), store)
                    .ok()
                    .flatten()
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let connected = tokio::time::timeout(
        Duration::from_secs(90),
        crate::workers::oauth::connect_mailbox(tokens.as_deref(), name, imap_settings),
    )
    .await;
    let server = format!("{}:{}", imap_settings.host, imap_settings.port);
    let tls_word = match imap_settings.tls {
        TlsMode::Implicit => "implicit TLS",
        TlsMode::StartTls => "STARTTLS",
        TlsMode::None => "no TLS (loopback)",
    };
    let mailbox = match connected {
        Err(_) => {
            r.fail(
                format!("{item}.connect"),
                format!("{server}: no answer in time"),
                "check the host, the port and any firewall",
            );
            return;
        }
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            let text = format!("{e:#}");
            match e.downcast_ref::<ImapError>() {
                Some(ImapError::Connect { .. }) => r.fail(format!("{item}.connect"), text, format!("check `{item}.port` ({}) and that the server listens there; a firewall may drop it", imap_settings.port)),
                Some(ImapError::Tls { .. }) => r.fail(format!("{item}.tls"), text, format!("the certificate must name {} and be in date; for a private CA set `{item}.ca_file`; check `{item}.tls` (implicit on 993, starttls on 143)", imap_settings.host)),
                Some(ImapError::Login { .. }) => r.fail(format!("{item}.login"), text, match imap_settings.auth {
                    AuthMethod::Password => format!("check `{item}.username` and the password; Microsoft 365 and Gmail need `auth = \"oauth2\"`"),
                    AuthMethod::OAuth2 => "run `guichet oauth login`; check that the account may use IMAP (Exchange: IMAP enabled for the mailbox)".to_string(),
                }),
                Some(ImapError::Command { action, .. }) if action.starts_with("select") => r.fail(format!("{item}.folder"), text, format!("`{item}.folder` = {:?} does not exist for this login; folder names are case-sensitive (INBOX is not)", imap_settings.folder)),
                Some(ImapError::Command { action, .. }) if action.contains("STARTTLS") => r.fail(format!("{item}.tls"), text, format!("the server does not offer STARTTLS: use `{item}.tls = \"implicit\"` on port 993")),
                _ if imap_settings.auth == AuthMethod::OAuth2 => r.fail(format!("{item}.login"), text, "run `guichet oauth login` (see the error for the provider's reason)"),
                _ => r.fail(format!("{item}.connect"), text, "see the error"),
            }
            return;
        }
    };
    r.pass(
        format!("{item}.connect"),
        format!("{server} answers ({tls_word})"),
    );
    if imap_settings.tls != TlsMode::None {
        r.pass(
            format!("{item}.tls"),
            format!("certificate valid for {} and in date", imap_settings.host),
        );
    }
    r.pass(
        format!("{item}.login"),
        format!(
            "logged in as {} ({})",
            imap_settings.username,
            imap_settings.auth.as_str()
        ),
    );
    r.pass(
        format!("{item}.folder"),
        format!("{:?} selected", imap_settings.folder),
    );
    if !imap_settings.idle {
        r.pass(
            format!("{item}.idle"),
            format!(
                "IDLE turned off: polling every {} s",
                imap_settings.poll_seconds
            ),
        );
    } else if mailbox.supports_idle() {
        r.pass(
            format!("{item}.idle"),
            "the server offers IDLE: new mail is seen at once",
        );
    } else {
        r.fail(
            format!("{item}.idle"),
            "the server does not offer IDLE",
            format!(
                "mail is polled every {} s; set `{item}.idle = false` to accept that",
                imap_settings.poll_seconds
            ),
        );
    }
    let _ = mailbox.logout().await;
}

async fn smtp(s: &Settings, r: &mut Report) {
    let c = &s.smtp;
    if !dns("smtp", &c.host, c.port, "smtp.host", r).await {
        return;
    }
    let mut sender = match SmtpSender::new(c) {
        Ok(x) => x,
        Err(e) => {
            r.fail("smtp.tls", e.to_string(), "check `smtp.ca_file`");
            return;
        }
    };
    if c.auth == AuthMethod::OAuth2
        && let (Ok(store), Some(account)) = (Store::connect(&s.database.url).await, &c.username)
        && let Ok(Some(tokens)) =
            crate::workers::oauth::OAuthTokens::new(std::sync::Arc::new(s.clone()), store)
    {
        sender = sender.with_tokens(std::sync::Arc::new(crate::workers::oauth::SmtpTokens {
            tokens,
            account: account.clone(),
        }));
    }
    let mut session = match sender.session().await {
        Ok(x) => x,
        Err(e) => {
            let text = e.to_string();
            let (item, fix) = if text.contains("log in")
                || text.contains("535")
                || text.contains("authentication")
            {
                (
                    "smtp.auth",
                    "check `smtp.username` and its password (or run `guichet oauth login --mailbox smtp`); Microsoft 365 needs SMTP AUTH enabled for the mailbox",
                )
            } else if text.contains("TLS") || text.contains("certificate") {
                (
                    "smtp.tls",
                    "the certificate must name the host and be in date; `smtp.tls`: implicit on 465, starttls on 587; a private CA goes in `smtp.ca_file`",
                )
            } else {
                (
                    "smtp.connect",
                    "check `smtp.host` and `smtp.port` and that the relay listens there",
                )
            };
            r.fail(item, text, fix);
            return;
        }
    };
    let server = format!("{}:{}", c.host, c.port);
    r.pass("smtp.connect", format!("{server} answers EHLO"));
    match c.tls {
        TlsMode::StartTls => r.pass("smtp.tls", "STARTTLS done; certificate valid and in date"),
        TlsMode::Implicit => r.pass("smtp.tls", "implicit TLS; certificate valid and in date"),
        TlsMode::None => r.pass("smtp.tls", "no TLS (loopback relay)"),
    }
    match &c.username {
        Some(u) => r.pass(
            "smtp.auth",
            format!("logged in as {u} ({})", c.auth.as_str()),
        ),
        None => r.pass(
            "smtp.auth",
            "no login configured (the relay takes mail without AUTH)",
        ),
    }
    match session.probe_sender(&c.from.address).await {
        Ok(()) => r.pass("smtp.mail_from", format!("the relay takes mail from {} (then RSET: nothing sent)", c.from.address)),
        Err(e) => r.fail("smtp.mail_from", e.to_string(), "the relay refuses this sender: `smtp.from` must be an address the login may send as (Microsoft 365: \"Send As\" permission on a shared mailbox)"),
    }
    session.quit().await;
}

async fn antivirus(s: &Settings, r: &mut Report) {
    let Some(av) = &s.antivirus else {
        r.pass("antivirus", "not configured: attachments are not scanned");
        return;
    };
    if let Err(e) = clamd::ping(&av.clamd).await {
        r.fail(
            "antivirus.ping",
            format!("{e:#}"),
            "start clamd, or correct `antivirus.clamd` (tcp://host:3310 or unix:/path)",
        );
        return;
    }
    r.pass("antivirus.ping", "clamd answers PONG");
    // the EICAR test file, which every antivirus must refuse
    let eicar = concat!(
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    );
    match clamd::scan(
        &av.clamd,
        eicar.as_bytes(),
        Duration::from_secs(av.timeout_seconds),
    )
    .await
    {
        ScanOutcome::Infected(name) => r.pass(
            "antivirus.eicar",
            format!("the EICAR test file is refused ({name})"),
        ),
        ScanOutcome::Clean => r.fail(
            "antivirus.eicar",
            "clamd says the EICAR test file is clean",
            "clamd has no signatures loaded: run freshclam and restart clamd",
        ),
        ScanOutcome::Failed(why) => r.fail(
            "antivirus.eicar",
            why,
            "clamd cannot scan a stream: check StreamMaxLength and its logs",
        ),
    }
}

async fn database(s: &Settings, r: &mut Report) {
    let store = match Store::connect(&s.database.url).await {
        Ok(x) => x,
        Err(e) => {
            r.fail(
                "database",
                format!("{e:#}"),
                "check `database.url`, that the server runs and that the role may log in",
            );
            return;
        }
    };
    match store.pending_migrations().await {
        Ok(0) => r.pass(
            "database",
            format!("{} reachable; migrations up to date", store.backend()),
        ),
        Ok(n) => r.fail(
            "database",
            format!("{n} migration(s) not applied"),
            "run `guichet migrate` (the daemon also applies them at start)",
        ),
        Err(e) => r.fail(
            "database",
            format!("{e:#}"),
            "check the database's permissions",
        ),
    }
    for m in &s.mailboxes {
        if m.imap.auth == AuthMethod::OAuth2 {
            oauth_token(&store, &m.imap.username, &format!("oauth2.{}", m.name), r).await;
        }
    }
    if let (AuthMethod::OAuth2, Some(u)) = (s.smtp.auth, &s.smtp.username)
        && !s
            .mailboxes
            .iter()
            .any(|m| m.imap.username == *u && m.imap.auth == AuthMethod::OAuth2)
    {
        oauth_token(&store, u, "oauth2.smtp", r).await;
    }
    store.close().await;
}

async fn oauth_token(store: &Store, account: &str, item: &str, r: &mut Report) {
    match store.oauth_refresh_token(account).await {
        Ok(Some(_)) => r.pass(item, format!("a refresh token is stored for {account}")),
        Ok(None) => r.fail(
            item,
            format!("no refresh token for {account}"),
            "run `guichet oauth login`",
        ),
        Err(e) => r.fail(item, format!("{e:#}"), "check the database"),
    }
}

async fn webhook(
    s: &Settings,
    i: usize,
    w: &crate::settings::WebhookSettings,
    send: bool,
    r: &mut Report,
) {
    let item = format!("webhooks[{i}]");
    let shown = webhooks::display_url(&w.url);
    let Ok(url) = url::Url::parse(&w.url) else {
        r.fail(&item, "not a URL", "correct the URL");
        return;
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    if !dns(&item, &host, port, &format!("{item}.url"), r).await {
        return;
    }
    if url.scheme() == "https" {
        let handshake = async {
            let connector = crate::adapters::tls::connector(w.ca_file.as_deref())?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let name =
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(STEP, handshake).await {
            Ok(Ok(())) => r.pass(format!("{item}.tls"), format!("{shown}: certificate valid for {host} and in date")),
            Ok(Err(e)) => r.fail(format!("{item}.tls"), format!("{shown}: {e}"), format!("the endpoint's certificate must name {host} and be in date; a private CA goes in `{item}.ca_file`")),
            Err(_) => r.fail(format!("{item}.tls"), format!("{shown}: no answer in time"), "check the URL and any firewall"),
        }
    } else {
        r.pass(
            format!("{item}.tls"),
            format!("{shown}: plain HTTP (loopback)"),
        );
    }
    if !send {
        return;
    }
    let event = webhooks::demo_event(Utc::now());
    let format = webhooks::resolve_format(w.format, &w.url);
    let body = match serde_json::to_vec(&webhooks::render(
        format,
        &event,
        s.helpdesk.ticket_url.as_deref(),
    )) {
        Ok(b) => b,
        Err(e) => {
            r.fail(format!("{item}.send"), e.to_string(), "report this");
            return;
        }
    };
    let headers = webhooks::headers(
        &event.id,
        Utc::now().timestamp(),
        &body,
        w.secret.as_ref().map(|x| x.expose()),
    );
    let client = match WebhookClient::for_endpoint(
        Duration::from_secs(w.timeout_seconds),
        w.ca_file.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            r.fail(format!("{item}.send"), e, format!("check `{item}.ca_file`"));
            return;
        }
    };
    match client.post(&w.url, &body, &headers).await {
        Ok(a) if (200..300).contains(&a.status) => r.pass(
            format!("{item}.send"),
            format!("{shown}: the demo event was taken (HTTP {})", a.status),
        ),
        Ok(a) => r.fail(
            format!("{item}.send"),
            format!(
                "{shown}: HTTP {}: {}",
                a.status,
                a.body_excerpt.chars().take(200).collect::<String>()
            ),
            "the endpoint refuses the demo event: check the URL (its token) and `format`",
        ),
        Err(e) => r.fail(
            format!("{item}.send"),
            format!("{shown}: {e}"),
            "check the URL and the network",
        ),
    }
}

/// Secret files and a settings file holding secrets must not be readable
/// by others; the attachment folder must be writable.
fn permissions(s: &Settings, config: &Path, r: &mut Report) {
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut literal = false;
    let mut source = |key: &str, src: Option<&SecretSource>| match src {
        Some(SecretSource::File(p)) => files.push((key.to_string(), p.clone())),
        Some(SecretSource::Literal) => literal = true,
        _ => {}
    };
    source("helpdesk.secret_file", Some(&s.helpdesk.secret_source));
    for m in &s.mailboxes {
        if m.imap.auth == AuthMethod::Password {
            source(
                &format!("{}.password_file", m.name),
                Some(&m.imap.password_source),
            );
        }
    }
    source("smtp.password_file", s.smtp.password_source.as_ref());
    if let Some(o) = &s.oauth2 {
        source("oauth2.client_secret_file", o.client_secret_source.as_ref());
    }
    for (i, w) in s.webhooks.iter().enumerate() {
        source(
            &format!("webhooks[{i}].secret_file"),
            w.secret_source.as_ref(),
        );
    }
    if literal {
        files.push(("settings file (holds secrets)".into(), config.to_path_buf()));
    }
    let mut bad = Vec::new();
    for (key, path) in &files {
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o007 != 0
        {
            bad.push(format!(
                "{key}: {} is readable by every user (mode {:o})",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
    }
    let dir = &s.attachments.storage_dir;
    let probe = dir.join(format!(".guichet-doctor-{}", std::process::id()));
    // made as the service would own it (doctor runs as root)
    let writable = crate::adapters::ownership::create_dir_all_as_owner(dir).is_ok()
        && std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        bad.push(format!(
            "attachments.storage_dir: {} is not writable by this user",
            dir.display()
        ));
    }
    if bad.is_empty() {
        r.pass(
            "permissions",
            format!(
                "{} secret file(s) private; attachment folder writable",
                files.len()
            ),
        );
    } else {
        r.fail("permissions", bad.join("; "), "`chmod 600` the secret files (and the settings file when it holds secrets); make the attachment folder writable by the daemon's user");
    }
}
