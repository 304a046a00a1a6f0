//! The sections that reach other servers: `[imap]` and `[[mailboxes]]`,
//! `[smtp]`, their `auth` and `[*.oauth2]`, `[database]`, `[metrics]`.

use super::*;

impl Checker<'_> {
    pub(super) fn auth(&mut self, s: &Section<'_>) -> Checked<AuthMethod> {
        self.choice(
            s,
            "auth",
            &[
                ("password", AuthMethod::Password),
                ("oauth2", AuthMethod::OAuth2),
            ],
            AuthMethod::Password,
            "login method",
        )
        .map(|(a, _)| a)
    }

    pub(super) fn oauth2(&mut self, s: &Section<'_>) -> Checked<OAuth2Settings> {
        self.known_keys(s, OAUTH2_KEYS);
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            Microsoft,
            Google,
            Custom,
        }
        let kind = self.choice(
            s,
            "provider",
            &[
                ("microsoft", Kind::Microsoft),
                ("google", Kind::Google),
                ("custom", Kind::Custom),
            ],
            Kind::Custom,
            "provider",
        );
        if s.get("provider").is_none() {
            self.missing(s, "provider", "`microsoft`, `google` or `custom`");
        }
        let tenant = match self.string(
            s,
            "tenant",
            "a tenant: your domain, its id, or `organizations`",
            false,
        ) {
            Err(()) => None,
            Ok(None) => Some("organizations".to_string()),
            Ok(Some((t, span))) if t.trim().is_empty() || t.contains(['/', '?', '#', ' ']) => {
                self.report(
                    Some(span),
                    s.key("tenant"),
                    format!("`{t}` is not a tenant"),
                    "your domain (contoso.onmicrosoft.com), the tenant id, or `organizations`",
                );
                None
            }
            Ok(Some((t, _))) => Some(t.trim().to_string()),
        };
        let client_id = self.required_string(s, "client_id", "the app's client (application) id");
        let secret = self.secret(s, "client_secret");
        let url = |c: &mut Self, name: &str| -> Result<Option<String>, ()> {
            match c.string(s, name, "an https:// URL", false)? {
                None => Ok(None),
                Some((text, span)) => {
                    let text = text.trim();
                    let ok = url::Url::parse(text).is_ok_and(|u| {
                        u.scheme() == "https"
                            || (u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host))
                    });
                    if ok {
                        Ok(Some(text.to_string()))
                    } else {
                        c.report(
                            Some(span),
                            s.key(name),
                            format!("`{text}` is not an https:// URL"),
                            "an https:// URL (http:// only to a loopback host)",
                        );
                        Err(())
                    }
                }
            }
        };
        let token_url = url(self, "token_url");
        let device_url = url(self, "device_authorization_url");
        let scopes = match s.get("scopes") {
            None => Some(None),
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    let mut out = Vec::new();
                    let mut ok = true;
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::String(t)
                                if !t.trim().is_empty() && !t.trim().contains(' ') =>
                            {
                                out.push(t.trim().to_string())
                            }
                            _ => {
                                self.wrong_type(
                                    item,
                                    s.key("scopes"),
                                    "a scope",
                                    "scopes without spaces, e.g. `[\"offline_access\"]`",
                                    false,
                                );
                                ok = false;
                            }
                        }
                    }
                    ok.then_some(Some(out))
                }
                _ => {
                    self.wrong_type(v, s.key("scopes"), "a list", "a list of scopes", false);
                    None
                }
            },
        };
        let mechanism = self.choice(
            s,
            "mechanism",
            &[
                ("xoauth2", OAuth2Mechanism::Xoauth2),
                ("oauthbearer", OAuth2Mechanism::OAuthBearer),
            ],
            OAuth2Mechanism::Xoauth2,
            "SASL mechanism",
        );
        let ca_file = self.ca_file(s);
        let (kind, _) = kind?;
        let (token_url, device_url) = (token_url.ok()?, device_url.ok()?);
        let (provider, default_token, default_device, default_scopes): (
            _,
            String,
            String,
            Vec<&str>,
        ) = match kind {
            Kind::Microsoft => {
                let t = tenant?;
                (
                    OAuth2Provider::Microsoft { tenant: t.clone() },
                    format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
                    format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/devicecode"),
                    vec![
                        "https://outlook.office.com/IMAP.AccessAsUser.All",
                        "https://outlook.office.com/SMTP.Send",
                        "offline_access",
                        "openid",
                        "email",
                    ],
                )
            }
            Kind::Google => (
                OAuth2Provider::Google,
                "https://oauth2.googleapis.com/token".into(),
                "https://oauth2.googleapis.com/device/code".into(),
                vec!["https://mail.google.com/", "openid", "email"],
            ),
            Kind::Custom => {
                if token_url.is_none() {
                    self.missing(s, "token_url", "the provider's token endpoint (RFC 6749)");
                }
                if device_url.is_none() {
                    self.missing(
                        s,
                        "device_authorization_url",
                        "the provider's device authorization endpoint (RFC 8628)",
                    );
                }
                (OAuth2Provider::Custom, String::new(), String::new(), vec![])
            }
        };
        let token_url = token_url.unwrap_or(default_token);
        let device_authorization_url = device_url.unwrap_or(default_device);
        if token_url.is_empty() || device_authorization_url.is_empty() {
            return None;
        }
        let secret = secret.ok()?;
        Some(OAuth2Settings {
            provider,
            client_id: client_id?.0.to_string(),
            client_secret_source: secret.as_ref().map(|p| p.source.clone()),
            client_secret: secret.map(|p| p.value),
            token_url,
            device_authorization_url,
            scopes: scopes?
                .unwrap_or_else(|| default_scopes.iter().map(|s| s.to_string()).collect()),
            mechanism: mechanism?.0,
            ca_file: ca_file?,
        })
    }

    /// `[metrics]`: the health and metrics listener, on a loopback
    /// address only (it answers anyone who can connect).
    pub(super) fn metrics(&mut self, s: &Section<'_>) -> Checked<MetricsSettings> {
        self.known_keys(s, METRICS_KEYS);
        let accepted = "a loopback address and port, e.g. `127.0.0.1:9187` or `[::1]:9187`";
        let (text, span) = self.required_string(s, "listen", accepted)?;
        match parse_metrics_listen(text) {
            Ok(listen) => Some(MetricsSettings { listen }),
            Err(message) => {
                self.report(Some(span), s.key("listen"), message, accepted);
                None
            }
        }
    }

    /// `host`, `port` and `tls` of a mail server, with the rule that plain
    /// text only goes to a loopback host.
    pub(super) fn server(
        &mut self,
        s: &Section<'_>,
        default_port: i64,
        example: &str,
    ) -> Checked<(String, u16, TlsMode)> {
        let host_accepted = format!("a host name or IP address, e.g. `{example}`");
        let host = self
            .required_string(s, "host", &host_accepted)
            .and_then(|(text, span)| match check_host(text) {
                Ok(()) => Some(text.to_string()),
                Err(message) => {
                    self.report(Some(span), s.key("host"), message, &host_accepted);
                    None
                }
            });
        let port = self.int_in(
            s,
            "port",
            default_port,
            1..=65535,
            "a port number from 1 to 65535",
        );
        let tls = self.choice(
            s,
            "tls",
            &[
                ("implicit", TlsMode::Implicit),
                ("starttls", TlsMode::StartTls),
                ("none", TlsMode::None),
            ],
            TlsMode::Implicit,
            "tls mode",
        );
        if let (Some(host), Some((TlsMode::None, span))) = (&host, &tls)
            && !is_loopback_host(host)
        {
            self.report(
                span.clone(),
                s.key("tls"),
                format!("`none` sends passwords and mail in clear text to `{host}`, which is not a loopback host"),
                format!("`implicit` or `starttls`; `none` only with a loopback host ({LOOPBACK})"),
            );
            return None;
        }
        Some((host?, port? as u16, tls?.0))
    }

    pub(super) fn ca_file(&mut self, s: &Section<'_>) -> Checked<Option<PathBuf>> {
        let accepted = "a readable PEM file with `-----BEGIN CERTIFICATE-----` (relative to this settings file)";
        let (path, span) = match self.path(s, "ca_file", accepted) {
            Err(()) => return None,
            Ok(None) => return Some(None),
            Ok(Some(found)) => found,
        };
        let message = match std::fs::read_to_string(&path) {
            Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => return Some(Some(path)),
            Ok(_) => format!("`{}` holds no PEM certificate", path.display()),
            Err(e) => format!("cannot read `{}`: {e}", path.display()),
        };
        self.report(Some(span), s.key("ca_file"), message, accepted);
        None
    }

    /// The IMAP keys of `[imap]` or of a `[[mailboxes]]` entry (the
    /// caller checks which keys the table may hold).
    pub(super) fn imap(&mut self, s: &Section<'_>) -> Checked<ImapSettings> {
        let server = self.server(s, 993, "imap.example.com");
        let username = self.required_string(
            s,
            "username",
            "the mailbox login, e.g. `support@example.com`",
        );
        let auth = self.auth(s);
        let password = match self.secret(s, "password") {
            Err(()) => None,
            Ok(None) if auth == Some(AuthMethod::OAuth2) => Some(ReadSecret {
                value: Secret::new(""),
                source: SecretSource::Literal,
                span: 0..0,
            }),
            Ok(Some(p)) if auth == Some(AuthMethod::OAuth2) => {
                self.report(
                    Some(p.span.clone()),
                    s.key(&secret_key("password", &p.source)),
                    "a password with `auth = \"oauth2\"`",
                    "no password: the access token comes from `guichet oauth login`",
                );
                None
            }
            Ok(None) => {
                self.missing(
                    s,
                    "password",
                    "`password_env = \"GUICHET_IMAP_PASSWORD\"`, `password_file = \"PATH\"` or `password = \"…\"`",
                );
                None
            }
            Ok(Some(p)) => Some(p),
        };
        let folder = match self.string(s, "folder", "a mailbox folder name, e.g. `INBOX`", false) {
            Err(()) => None,
            Ok(None) => Some("INBOX".to_string()),
            Ok(Some((text, span))) if text.trim().is_empty() => {
                self.report(
                    Some(span),
                    s.key("folder"),
                    "is empty",
                    "a mailbox folder name, e.g. `INBOX`",
                );
                None
            }
            Ok(Some((text, _))) => Some(text.trim().to_string()),
        };
        let poll_seconds = self.int_in(
            s,
            "poll_seconds",
            60,
            1..=86_400,
            "a number of seconds from 1 to 86400",
        );
        let idle = self.boolean(s, "idle", true);
        let ca_file = self.ca_file(s);
        let first_start = self.choice(
            s,
            "first_start",
            &[
                ("unseen", FirstStart::Unseen),
                ("new", FirstStart::New),
                ("all", FirstStart::All),
            ],
            FirstStart::Unseen,
            "first start",
        );
        let processed = self.choice(
            s,
            "processed",
            &[("keep", 0), ("move", 1), ("delete", 2)],
            0,
            "processed mail",
        );
        let processed_folder = match self.string(
            s,
            "processed_folder",
            "a mailbox folder name, e.g. `Processed`",
            false,
        ) {
            Err(()) => None,
            Ok(None) => Some("Processed".to_string()),
            Ok(Some((text, span))) if text.trim().is_empty() => {
                self.report(
                    Some(span),
                    s.key("processed_folder"),
                    "is empty",
                    "a mailbox folder name, e.g. `Processed`",
                );
                None
            }
            Ok(Some((text, _))) => Some(text.trim().to_string()),
        };
        let processed = match (processed?.0, processed_folder?) {
            (1, folder) => ProcessedMail::Move(folder),
            (2, _) => ProcessedMail::Delete,
            _ => ProcessedMail::Keep,
        };
        let (host, port, tls) = server?;
        let password = password?;
        Some(ImapSettings {
            host,
            port,
            tls,
            username: username?.0.to_string(),
            auth: auth?,
            password: password.value,
            password_source: password.source,
            folder: folder?,
            poll_seconds: poll_seconds? as u64,
            idle: idle?,
            ca_file: ca_file?,
            first_start: first_start?.0,
            processed,
        })
    }

    pub(super) fn smtp(&mut self, s: &Section<'_>) -> Checked<SmtpSettings> {
        self.known_keys(s, SMTP_KEYS);
        let server = self.server(s, 465, "smtp.example.com");
        let username = match self.string(
            s,
            "username",
            "the submission login, e.g. `support@example.com`",
            false,
        ) {
            Err(()) => None,
            Ok(None) => Some(None),
            Ok(Some((text, span))) if text.trim().is_empty() => {
                self.report(
                    Some(span),
                    s.key("username"),
                    "is empty",
                    "a login, or no `username` at all to submit without authentication",
                );
                None
            }
            Ok(Some((text, span))) => Some(Some((text.trim().to_string(), span))),
        };
        let auth = self.auth(s);
        let password = self.secret(s, "password");
        if auth == Some(AuthMethod::OAuth2) {
            match (&username, &password) {
                (Some(None), _) => self.missing(
                    s,
                    "username",
                    "the account to send as, with `auth = \"oauth2\"`",
                ),
                (_, Ok(Some(p))) => self.report(
                    Some(p.span.clone()),
                    s.key(&secret_key("password", &p.source)),
                    "a password with `auth = \"oauth2\"`",
                    "no password: the access token comes from `guichet oauth login`",
                ),
                _ => {}
            }
        }
        // A username needs a password, and a password needs a username.
        let credentials = match (username, password) {
            (Some(Some(user)), Ok(None)) if auth == Some(AuthMethod::OAuth2) => {
                Some((Some(user.0), None))
            }
            (Some(Some(user)), Ok(Some(pass))) => Some((Some(user.0), Some(pass))),
            (Some(None), Ok(None)) => Some((None, None)),
            (Some(Some(_)), Ok(None)) => {
                self.missing(
                    s,
                    "password",
                    "`password_env`, `password_file` or `password` with `username`, or neither to submit without authentication",
                );
                None
            }
            (Some(None), Ok(Some(pass))) => {
                let key = match pass.source {
                    SecretSource::Literal => "password",
                    SecretSource::Env(_) => "password_env",
                    SecretSource::File(_) => "password_file",
                };
                self.report(
                    Some(pass.span),
                    s.key(key),
                    "a password without a `username`",
                    "`username` with the password, or neither to submit without authentication",
                );
                None
            }
            _ => None,
        };
        let from_accepted =
            "`Name <address>` or a bare address, e.g. `Example Support <support@example.com>`";
        let from = self
            .required_string(s, "from", from_accepted)
            .and_then(|(text, span)| match parse_mailbox(text) {
                Ok(mailbox) => Some(mailbox),
                Err(message) => {
                    self.report(Some(span), s.key("from"), message, from_accepted);
                    None
                }
            });
        let ca_file = self.ca_file(s);
        let connections = self.int_in(
            s,
            "connections",
            crate::settings::DEFAULT_SMTP_CONNECTIONS as i64,
            1..=16,
            "a number of connections from 1 to 16",
        );
        let (host, port, tls) = server?;
        let (username, password) = credentials?;
        let (password, password_source) = match password {
            Some(p) => (Some(p.value), Some(p.source)),
            None => (None, None),
        };
        Some(SmtpSettings {
            host,
            port,
            tls,
            username,
            auth: auth?,
            password,
            password_source,
            from: from?,
            ca_file: ca_file?,
            connections: connections? as usize,
        })
    }

    pub(super) fn database(&mut self, s: &Section<'_>) -> Checked<DatabaseSettings> {
        self.known_keys(s, DATABASE_KEYS);
        let accepted =
            "`sqlite://PATH` (relative to this settings file) or `postgres://USER@HOST/DATABASE`";
        let default = format!("sqlite://{}", self.resolve_state("guichet.db").display());
        let url = match self.string(s, "url", accepted, false) {
            Err(()) => return None,
            Ok(None) => (default.as_str(), None),
            Ok(Some((text, span))) => (text.trim(), Some(span)),
        };
        match database_url(url.0, &self.state_base()) {
            Ok(url) => Some(DatabaseSettings { url }),
            Err(message) => {
                self.report(url.1, s.key("url"), message, accepted);
                None
            }
        }
    }
}
