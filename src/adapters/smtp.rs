//! SMTP out: hands finished messages (raw RFC 822 bytes, rendered and
//! threaded elsewhere) to the configured relay, and says whether a failure
//! is worth retrying.
//!
//! The outbox drains over one [`SmtpSession`]: a connection opened once
//! (TLS and login included) and kept for message after message. Two
//! things of lettre's pooled transport are avoided: the NOOP it sends at
//! every checkout, and its sockets without TCP_NODELAY, on which the final
//! `.` of every message waits for the server's delayed ACK (~40 ms on
//! Linux: 21 messages/s instead of hundreds). When the relay offers
//! PIPELINING (RFC 2920), the envelope and DATA go out in one write and
//! their answers are read after it: two round trips a message instead of
//! four, with lettre still doing the talking (commands, responses,
//! dot-stuffing, TLS, login). Errors never contain the password.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::domain::EmailAddress;
use crate::settings::{AuthMethod, SmtpSettings, TlsMode};

/// Where an OAuth2 login gets its access token (the daemon's token cache,
/// which refreshes and stores): `fresh` asks for a new one, after the
/// server refused the last.
pub trait TokenSource: Send + Sync {
    fn access_token(
        &self,
        fresh: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// Connecting, the greeting, EHLO, STARTTLS, login, each command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a message is handed to lettre at a time.
const MESSAGE_PIECE: usize = 256 * 1024;
/// A whole message: this, plus one second per 100 KB of it.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How to reach the relay, as configured in `[smtp]`.
#[derive(Clone)]
pub struct SmtpSender {
    host: String,
    port: u16,
    server: String,
    tls: TlsMode,
    /// STARTTLS (lettre's parameters).
    starttls: Option<TlsParameters>,
    /// Implicit TLS, set up before the greeting.
    implicit: Option<TlsConnector>,
    credentials: Option<Credentials>,
    /// `auth = "oauth2"`: the login, and where its tokens come from
    /// (set by [`SmtpSender::with_tokens`]).
    bearer: Option<(String, Option<Arc<dyn TokenSource>>)>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Checks the settings (CA file, credentials); connects nothing yet:
    /// see [`SmtpSender::check`] and [`SmtpSender::session`].
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, SmtpSetupError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = format!("{}:{}", settings.host, settings.port);
        let setup_error = |reason: String| SmtpSetupError {
            server: server.clone(),
            reason,
        };

        let (mut starttls, mut implicit) = (None, None);
        match settings.tls {
            TlsMode::None => {}
            TlsMode::StartTls => {
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
                starttls = Some(
                    params
                        .build_rustls()
                        .map_err(|e| setup_error(e.to_string()))?,
                );
            }
            TlsMode::Implicit => {
                implicit = Some(
                    crate::adapters::tls::connector(settings.ca_file.as_deref())
                        .map_err(setup_error)?,
                );
            }
        }

        let bearer = match (&settings.username, settings.auth) {
            (Some(username), AuthMethod::OAuth2) => Some((username.clone(), None)),
            _ => None,
        };
        let credentials = match &settings.username {
            Some(_) if bearer.is_some() => None,
            Some(username) => {
                let password = settings
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .ok_or_else(|| setup_error(format!("username {username} has no password")))?;
                Some(Credentials::new(username.clone(), password))
            }
            None => None,
        };
        Ok(SmtpSender {
            host: settings.host.clone(),
            port: settings.port,
            server,
            tls: settings.tls,
            starttls,
            implicit,
            credentials,
            bearer,
        })
    }

    /// The token source of an `auth = "oauth2"` login.
    pub fn with_tokens(mut self, source: Arc<dyn TokenSource>) -> SmtpSender {
        if let Some((_, slot)) = &mut self.bearer {
            *slot = Some(source);
        }
        self
    }

    /// Connects, with TLS and login as configured: a session that sends
    /// any number of messages. An OAuth2 login the server refuses is tried
    /// once more with a fresh access token.
    pub async fn session(&self) -> Result<SmtpSession, SendError> {
        let Some((user, source)) = &self.bearer else {
            return self.session_as(None).await;
        };
        let source = source.as_ref().ok_or_else(|| {
            SendError::Transient(format!("{}: no OAuth2 token source", self.server))
        })?;
        let token = |fresh| async move {
            source.access_token(fresh).await.map_err(|e| {
                SendError::Transient(format!("{}: no OAuth2 access token: {e}", self.server))
            })
        };
        let first = token(false).await?;
        match self
            .session_as(Some(Credentials::new(user.clone(), first)))
            .await
        {
            Err(SendError::Transient(e)) if e.contains("log in") => {
                tracing::info!(server = %self.server, "SMTP refused the OAuth2 access token; refreshing it and trying once more");
                let again = token(true).await?;
                self.session_as(Some(Credentials::new(user.clone(), again)))
                    .await
            }
            other => other,
        }
    }

    /// One connection; `bearer`: XOAUTH2 with these credentials instead
    /// of the password login.
    async fn session_as(&self, bearer: Option<Credentials>) -> Result<SmtpSession, SendError> {
        let transient = |what: String| SendError::Transient(format!("{}: {what}", self.server));
        let tcp = within(
            COMMAND_TIMEOUT,
            &self.server,
            "connect",
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await?
        .map_err(|e| transient(format!("cannot connect: {e}")))?;
        // one write per command is the rule already; without this, the
        // lone ".\r\n" after a message waits for the server's delayed ACK
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let stream: Box<dyn AsyncTokioStream> = match (&self.implicit, self.tls) {
            (Some(connector), TlsMode::Implicit) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                    transient(format!("{:?} is not a valid server name: {e}", self.host))
                })?;
                let tls = within(
                    COMMAND_TIMEOUT,
                    &self.server,
                    "complete the TLS handshake",
                    connector.connect(name, tcp),
                )
                .await?
                .map_err(|e| transient(format!("TLS handshake failed: {e}")))?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(tcp),
        };
        let mut conn = within(
            COMMAND_TIMEOUT,
            &self.server,
            "read the greeting",
            AsyncSmtpConnection::connect_with_transport(stream, &hello),
        )
        .await?
        .map_err(|e| classify(&self.server, &e))?;
        if let Some(params) = &self.starttls {
            within(
                COMMAND_TIMEOUT,
                &self.server,
                "start TLS",
                conn.starttls(params.clone(), &hello),
            )
            .await?
            .map_err(|e| classify(&self.server, &e))?;
        }
        if let Some(credentials) = &bearer {
            within(
                COMMAND_TIMEOUT,
                &self.server,
                "log in",
                conn.auth(&[Mechanism::Xoauth2], credentials),
            )
            .await?
            // lettre stops at the server's error challenge: whatever it
            // says, the login failed (and is worth one fresh token)
            .map_err(|e| SendError::Transient(format!("{}: cannot log in: {e}", self.server)))?;
        } else if let Some(credentials) = &self.credentials {
            within(
                COMMAND_TIMEOUT,
                &self.server,
                "log in",
                conn.auth(DEFAULT_MECHANISMS, credentials),
            )
            .await?
            .map_err(|e| classify(&self.server, &e))?;
        }
        // lettre reads the EHLO answer for the extensions it knows, not
        // PIPELINING: asked once more (EHLO may be repeated at any time)
        let pipelining = within(
            COMMAND_TIMEOUT,
            &self.server,
            "say EHLO",
            conn.command(Ehlo::new(hello)),
        )
        .await?
        .map_err(|e| classify(&self.server, &e))?
        .message()
        .any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("PIPELINING"))
        });
        Ok(SmtpSession {
            conn,
            server: self.server.clone(),
            pipelining,
            dropped: false,
        })
    }

    /// Submits one message over a connection of its own; the outbox uses
    /// a [`SmtpSession`] instead. As [`SmtpSession::send_raw`], except
    /// that a message refused for every recipient is an `Err`.
    pub async fn send_raw(
        &self,
        envelope_from: &EmailAddress,
        to: &[EmailAddress],
        raw: &[u8],
    ) -> Result<Vec<Refused>, SendError> {
        let mut session = self.session().await?;
        let sent = session.send_raw(envelope_from, to, raw).await;
        session.quit().await;
        let refused = sent?;
        match refused.first() {
            // nobody got it: the (first) refusal is the message's
            Some(first) if refused.len() == to.len() => Err(first.error.clone()),
            _ => Ok(refused),
        }
    }

    /// Connects (with TLS and login, as configured) and sends NOOP: the
    /// relay is usable.
    pub async fn check(&self) -> Result<(), SendError> {
        let mut session = self.session().await?;
        let alive = session.conn.test_connected().await;
        session.quit().await;
        if alive {
            Ok(())
        } else {
            Err(SendError::Transient(format!(
                "{} did not answer NOOP",
                self.server
            )))
        }
    }
}

/// An open connection to the relay, logged in.
pub struct SmtpSession {
    conn: AsyncSmtpConnection,
    server: String,
    /// The relay said PIPELINING in its EHLO answer.
    pipelining: bool,
    /// Given up in the middle of a message (see [`SmtpSession::pipelined`]):
    /// to be closed without a word, never used again.
    dropped: bool,
}

/// A recipient the relay refused at RCPT while it took the message for
/// others (or for nobody, when every recipient is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub address: String,
    /// The relay's answer: `Permanent` for 5xx, `Transient` for 4xx.
    pub error: SendError,
}

impl SmtpSession {
    /// Submits `raw` as is, with this envelope (the envelope decides where
    /// it goes; the headers are not read). `Ok` lists the recipients the
    /// relay refused at RCPT: the message went to the others (to nobody
    /// when all are listed). `Err`: the message as a whole was refused or
    /// not handed over. After an error, see [`SmtpSession::is_broken`].
    pub async fn send_raw(
        &mut self,
        envelope_from: &EmailAddress,
        to: &[EmailAddress],
        raw: &[u8],
    ) -> Result<Vec<Refused>, SendError> {
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
        let limit = MESSAGE_TIMEOUT + Duration::from_secs(raw.len() as u64 / 100_000);
        let server = self.server.clone();
        let sent = within(
            limit,
            &server,
            "send a message",
            self.transaction(&envelope, raw),
        )
        .await;
        if sent.is_err() {
            // a timeout leaves the conversation at an unknown point
            self.dropped = true;
        }
        let (refused, done) = sent?;
        done.map_err(|e| classify(&server, &e))?;
        Ok(refused
            .into_iter()
            .map(|(address, e)| Refused {
                address,
                error: classify(&server, &e),
            })
            .collect())
    }

    /// What lettre's `send` does, except that a refused RCPT refuses only
    /// its recipient: DATA goes to the accepted ones (RFC 5321 3.3). With
    /// PIPELINING, MAIL, every RCPT and DATA are written at once and their
    /// answers read afterwards, in order; else one command at a time (DATA
    /// only when some recipient was accepted). When the message is not
    /// sent, the relay is reset for the next one (or the connection is
    /// dropped when that fails, or when it said 354 to a DATA that must
    /// not go on). Returns the refused recipients with the relay's answer,
    /// and the outcome of the message as a whole.
    async fn transaction(
        &mut self,
        envelope: &Envelope,
        raw: &[u8],
    ) -> (Vec<(String, SmtpError)>, Result<(), SmtpError>) {
        let info = self.conn.server_info();
        let mut parameters = Vec::new();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii && info.supports_feature(Extension::SmtpUtfEight) {
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() && info.supports_feature(Extension::EightBitMime) {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(envelope.from().cloned(), parameters);
        let mut refused = Vec::new();
        let (mail_answer, data) = if self.pipelining {
            let mut commands = mail.to_string();
            for to in envelope.to() {
                commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
            }
            commands.push_str(&Data.to_string());
            // `command` writes the whole text and reads MAIL's answer
            let mail_answer = self.conn.command(Commands(commands)).await.map(|_| ());
            for to in envelope.to() {
                if let Err(e) = self.conn.read_response().await {
                    refused.push((to.to_string(), e));
                }
            }
            (mail_answer, self.conn.read_response().await.map(|_| ()))
        } else {
            let mail_answer = self.conn.command(mail).await.map(|_| ());
            if mail_answer.is_ok() {
                for to in envelope.to() {
                    if let Err(e) = self.conn.command(Rcpt::new(to.clone(), Vec::new())).await {
                        refused.push((to.to_string(), e));
                    }
                }
            }
            let data = if mail_answer.is_ok() && refused.len() < envelope.to().len() {
                self.conn.command(Data).await.map(|_| ())
            } else {
                Ok(())
            };
            (mail_answer, data)
        };
        let network = |e: &SmtpError| e.status().is_none();
        if let Err(e) = mail_answer {
            if network(&e) || self.conn.command(Rset).await.is_err() {
                self.dropped = true;
            }
            return (Vec::new(), Err(e));
        }
        let nobody = refused.len() == envelope.to().len();
        match data {
            // by pieces: lettre dot-stuffs each piece into a copy of its
            // size, and a whole 36 MB message would be copied at once
            Ok(()) if !nobody => {
                let sent = self
                    .conn
                    .message_iter(raw.chunks(MESSAGE_PIECE))
                    .await
                    .map(|_| ());
                if sent.as_ref().is_err_and(network) {
                    self.dropped = true;
                }
                (refused, sent)
            }
            // 354 with nobody to send to (a server that accepts DATA
            // anyway): nothing must go out
            Ok(()) if self.pipelining => {
                self.dropped = true;
                (refused, Ok(()))
            }
            Ok(()) => {
                if self.conn.command(Rset).await.is_err() {
                    self.dropped = true;
                }
                (refused, Ok(()))
            }
            Err(e) => {
                if network(&e) || self.conn.command(Rset).await.is_err() {
                    self.dropped = true;
                }
                if nobody {
                    // DATA refused for want of recipients: their answers say why
                    (refused, Ok(()))
                } else {
                    (refused, Err(e))
                }
            }
        }
    }

    /// The connection is unusable (lettre drops it after any error): open
    /// a new session.
    pub fn is_broken(&self) -> bool {
        self.dropped || self.conn.has_broken()
    }

    /// QUIT, politely and briefly.
    /// `MAIL FROM:<from>` then `RSET`: would the relay take mail from this
    /// sender (nothing is sent)?
    pub async fn probe_sender(&mut self, from: &EmailAddress) -> Result<(), SendError> {
        let address = to_lettre_address(from)?;
        let server = self.server.clone();
        within(
            COMMAND_TIMEOUT,
            &server,
            "say MAIL FROM",
            self.conn.command(Mail::new(Some(address), vec![])),
        )
        .await?
        .map_err(|e| classify(&server, &e))?;
        within(
            COMMAND_TIMEOUT,
            &server,
            "say RSET",
            self.conn.command(Rset),
        )
        .await?
        .map_err(|e| classify(&server, &e))?;
        Ok(())
    }

    pub async fn quit(mut self) {
        if !self.is_broken() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.quit()).await;
        }
    }
}

/// Several commands sent as one (PIPELINING): each already ends in CRLF.
struct Commands(String);

impl std::fmt::Display for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

async fn within<T>(
    limit: Duration,
    server: &str,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, SendError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| {
        SendError::Transient(format!(
            "{server}: cannot {what}: no answer within {} s",
            limit.as_secs()
        ))
    })
}

/// A TLS stream as lettre wants it (implicit TLS is set up here, with
/// the same trust as IMAP, so that lettre only ever sees a ready stream).
#[derive(Debug)]
struct ImplicitTls(TlsStream<TcpStream>);

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
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
