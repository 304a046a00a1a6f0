//! SMTP out: hands finished messages (raw RFC 822 bytes, rendered and
//! threaded elsewhere) to the configured relay, and says whether a failure
//! is worth retrying.
//!
//! Connections are pooled by lettre and dropped after 30 s idle, below
//! common relay timeouts (lettre issue #743). Errors never contain the
//! password.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::domain::EmailAddress;
use crate::settings::{SmtpSettings, TlsMode};

/// Per SMTP command (connect, EHLO, each RCPT, the DATA transfer...).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle pooled connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message was not handed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: 4xx, connection or TLS trouble, timeouts, and login
    /// refusals (a settings problem that the admin can fix; the queued
    /// mail should survive it, as in any MTA's queue).
    #[error("cannot send mail now (will retry): {0}")]
    Transient(String),
    /// The relay refused this message for good (5xx): do not retry.
    #[error("cannot send mail: refused by the relay: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }
}

/// A problem in the SMTP settings found while building the sender.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up SMTP to {server}: {reason}")]
pub struct SmtpSetupError {
    pub server: String,
    pub reason: String,
}

/// The outgoing relay, as configured in `[smtp]`.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Builds the (lazy, pooled) transport: nothing is connected yet; see
    /// [`SmtpSender::check`].
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, SmtpSetupError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = format!("{}:{}", settings.host, settings.port);
        let setup_error = |reason: String| SmtpSetupError {
            server: server.clone(),
            reason,
        };

        let tls = match settings.tls {
            TlsMode::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(settings.host.clone());
                if let Some(path) = &settings.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        setup_error(format!("cannot read CA file {}: {e}", path.display()))
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        setup_error(format!("cannot use CA file {}: {e}", path.display()))
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| setup_error(e.to_string()))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(PoolConfig::new().idle_timeout(POOL_IDLE_TIMEOUT));
        if let Some(username) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .ok_or_else(|| setup_error(format!("username {username} has no password")))?;
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            server,
        })
    }

    /// Submits `raw` as is, with this envelope (the envelope decides where
    /// it goes; the headers are not read).
    pub async fn send_raw(
        &self,
        envelope_from: &EmailAddress,
        to: &[EmailAddress],
        raw: &[u8],
    ) -> Result<(), SendError> {
        let from = to_lettre_address(envelope_from)?;
        let recipients = to
            .iter()
            .map(to_lettre_address)
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(from), recipients)
            .map_err(|e| SendError::Permanent(format!("cannot build the envelope: {e}")))?;
        // lettre always ends the data with CRLF "." CRLF: without this, a
        // message that ends with a line break (most do) would grow a blank
        // line, and a signed body would no longer verify.
        let raw = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(raw);
        self.transport
            .send_raw(&envelope, raw)
            .await
            .map(|_| ())
            .map_err(|e| classify(&self.server, &e))
    }

    /// Connects (with TLS and login, as configured) and sends NOOP: the
    /// relay is usable.
    pub async fn check(&self) -> Result<(), SendError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError::Transient(format!(
                "{} did not answer NOOP",
                self.server
            ))),
            Err(e) => Err(classify(&self.server, &e)),
        }
    }
}

fn to_lettre_address(address: &EmailAddress) -> Result<Address, SendError> {
    address
        .as_str()
        .parse::<Address>()
        .map_err(|e| SendError::Permanent(format!("{address} is not a deliverable address: {e}")))
}

/// SMTP replies whose code means "your login is wrong or missing" (RFC 4954):
/// a settings problem, not this message's fault.
const LOGIN_CODES: [&str; 4] = ["530", "534", "535", "538"];

fn classify(server: &str, error: &SmtpError) -> SendError {
    let text = format!("{server}: {error}");
    let code = error.status().map(|c| c.to_string());
    let login_problem = code.as_deref().is_some_and(|c| LOGIN_CODES.contains(&c));
    if login_problem {
        SendError::Transient(format!(
            "the relay refused our login (check [smtp] username and password): {text}"
        ))
    } else if error.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}
