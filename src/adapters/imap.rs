//! IMAP in: one logged-in connection to the support mailbox, with the few
//! operations ingest needs (new UIDs, raw messages, "processed" marks) and a
//! wait for news that uses IDLE where the server has it.
//!
//! Every error is a [`ImapError`] whose message starts with "cannot …" and
//! never contains the password. Reconnecting is the caller's job: after any
//! error, drop the [`Mailbox`] and [`connect`](Mailbox::connect) again.

use std::fmt;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, Status};
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

mod stream;

use stream::{ImapStream, handshake};

use crate::settings::{ImapSettings, OAuth2Mechanism, ProcessedMail, TlsMode};

/// How [`Mailbox::connect_with`] logs in.
#[derive(Clone, Copy)]
pub enum Login<'a> {
    /// LOGIN with the settings' username and password.
    Password,
    /// AUTHENTICATE XOAUTH2 / OAUTHBEARER with this access token.
    Bearer {
        token: &'a str,
        mechanism: OAuth2Mechanism,
    },
}

/// The SASL exchange of a bearer login: the initial response, then an
/// empty answer to the server's error challenge (RFC 7628 §3.2.3), so that
/// a refused token ends in a tagged NO rather than a hung command.
struct BearerAuth {
    first: Option<String>,
}

impl async_imap::Authenticator for BearerAuth {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.first.take().unwrap_or_default()
    }
}

/// The keyword set on every message Guichet has stored, next to `\Seen`:
/// other readers of the mailbox may mark mail seen, only Guichet sets this.
pub const PROCESSED_KEYWORD: &str = "$GuichetDone";

/// UIDs per FETCH/STORE command: keeps command lines and responses bounded.
const UIDS_PER_COMMAND: usize = 200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Any command but FETCH (LOGIN, SELECT, SEARCH, STORE, IDLE/DONE).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// One FETCH of up to [`UIDS_PER_COMMAND`] whole messages.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// What went wrong, for logs and for deciding how long to back off.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to IMAP server {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("cannot set up TLS with IMAP server {server}: {reason}")]
    Tls { server: String, reason: String },
    /// The server refused the username/password: a settings problem.
    #[error("cannot log in to IMAP server {server} as {username}: {reason}")]
    Login {
        server: String,
        username: String,
        reason: String,
    },
    #[error("cannot {action} on IMAP server {server}: {reason}")]
    Command {
        server: String,
        action: String,
        reason: String,
    },
    #[error("cannot {action} on IMAP server {server}: no answer within {} s", .after.as_secs())]
    Timeout {
        server: String,
        action: String,
        after: Duration,
    },
    /// The server answered NO or BAD to a command.
    #[error("cannot {action} on IMAP server {server}: {reason}")]
    Refused {
        server: String,
        action: String,
        reason: String,
    },
    #[error("cannot use the IMAP connection to {server}: it was lost earlier; reconnect")]
    Lost { server: String },
}

impl ImapError {
    /// The server refused our credentials (retrying soon will not help).
    pub fn is_login_refused(&self) -> bool {
        matches!(self, ImapError::Login { .. })
    }

    /// A command failed once sent: the server answered NO or BAD, did not
    /// answer in time, or hung up in the middle (Dovecot says `BYE` and
    /// closes when it cannot read a message it is sending). When that
    /// command was a FETCH, the fault may lie with one of the messages.
    pub fn may_be_the_message(&self) -> bool {
        matches!(
            self,
            ImapError::Refused { .. } | ImapError::Timeout { .. } | ImapError::Command { .. }
        )
    }

    /// The connection can still be used after this error.
    pub fn connection_usable(&self) -> bool {
        matches!(self, ImapError::Refused { .. })
    }
}

/// One message as the server stores it.
#[derive(Debug)]
pub struct FetchedMail {
    pub uid: u32,
    /// The whole RFC 822 message, byte for byte.
    pub raw: RawMail,
    /// When the server received it (INTERNALDATE), if it said.
    pub arrived_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A fetched message's bytes, left in the buffer async-imap read them
/// into: copying them out would hold a big message twice for a moment.
pub struct RawMail(async_imap::types::Fetch);

impl std::ops::Deref for RawMail {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // only responses with a body become a RawMail (Mailbox::fetch)
        self.0.body().unwrap_or_default()
    }
}

impl AsRef<[u8]> for RawMail {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq<Vec<u8>> for RawMail {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl fmt::Debug for RawMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawMail({} bytes)", self.len())
    }
}

/// Why [`Mailbox::wait_for_news`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// The server announced new messages (EXISTS/RECENT): look for them now.
    NewMail,
    /// `max_wait` passed without news: poll anyway (mail can arrive between
    /// two IDLEs, and a poll detects a dead connection).
    Timeout,
    /// The shutdown signal was raised.
    Shutdown,
}

/// A logged-in IMAP connection with the configured folder selected.
pub struct Mailbox {
    /// `None` once an IDLE failed half-way and took the session with it.
    session: Option<async_imap::Session<ImapStream>>,
    server: String,
    uid_validity: u32,
    supports_idle: bool,
    /// New mail was announced during a command: the next wait returns at once.
    pending_news: bool,
    /// What becomes of a message once flagged processed (`imap.processed`).
    processed: ProcessedMail,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("server", &self.server)
            .field("uid_validity", &self.uid_validity)
            .field("supports_idle", &self.supports_idle)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Connects (implicit TLS, STARTTLS or plain, as configured), reads the
    /// greeting, logs in and selects the folder.
    pub async fn connect(settings: &ImapSettings) -> Result<Mailbox, ImapError> {
        Self::connect_with(settings, Login::Password).await
    }

    /// As [`Mailbox::connect`], logging in as `login` says.
    pub async fn connect_with(
        settings: &ImapSettings,
        login: Login<'_>,
    ) -> Result<Mailbox, ImapError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = format!("{}:{}", settings.host, settings.port);
        let fail = |action: &str, reason: String| ImapError::Command {
            server: server.clone(),
            action: action.to_string(),
            reason,
        };

        let tcp = match timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((settings.host.as_str(), settings.port)),
        )
        .await
        {
            Err(_) => {
                return Err(ImapError::Connect {
                    server,
                    reason: format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                });
            }
            Ok(Err(e)) => {
                return Err(ImapError::Connect {
                    server,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);

        let tls = match settings.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::StartTls => Some(
                crate::adapters::tls::connector(settings.ca_file.as_deref()).map_err(|reason| {
                    ImapError::Tls {
                        server: server.clone(),
                        reason,
                    }
                })?,
            ),
        };
        let stream = match (&tls, settings.tls) {
            (Some(connector), TlsMode::Implicit) => ImapStream::Tls(Box::new(
                handshake(connector, &settings.host, tcp, &server).await?,
            )),
            _ => ImapStream::Plain(tcp),
        };

        let mut client = async_imap::Client::new(stream);
        read_greeting(&mut client, &server).await?;

        if let (Some(connector), TlsMode::StartTls) = (&tls, settings.tls) {
            within(
                COMMAND_TIMEOUT,
                &server,
                "start TLS (STARTTLS)",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?
            .map_err(|e| fail("start TLS (STARTTLS)", imap_reason(&e)))?;
            // Whatever the server sent after its OK is dropped with the
            // plain-text buffer, as RFC 3207 asks (no response injection).
            let ImapStream::Plain(tcp) = client.into_inner() else {
                unreachable!("STARTTLS runs over the plain connection");
            };
            let tls = handshake(connector, &settings.host, tcp, &server).await?;
            client = async_imap::Client::new(ImapStream::Tls(Box::new(tls)));
        }

        let login = match login {
            Login::Password => {
                within(
                    COMMAND_TIMEOUT,
                    &server,
                    "log in",
                    client.login(&settings.username, settings.password.expose()),
                )
                .await?
            }
            Login::Bearer { token, mechanism } => {
                let (name, first) = match mechanism {
                    OAuth2Mechanism::Xoauth2 => (
                        "XOAUTH2",
                        crate::adapters::oauth::xoauth2(&settings.username, token),
                    ),
                    OAuth2Mechanism::OAuthBearer => (
                        "OAUTHBEARER",
                        crate::adapters::oauth::oauthbearer(
                            &settings.username,
                            token,
                            &settings.host,
                            settings.port,
                        ),
                    ),
                };
                within(
                    COMMAND_TIMEOUT,
                    &server,
                    "log in",
                    client.authenticate(name, BearerAuth { first: Some(first) }),
                )
                .await?
            }
        };
        let mut session = login.map_err(|(e, _)| ImapError::Login {
            server: server.clone(),
            username: settings.username.clone(),
            reason: imap_reason(&e),
        })?;

        let capabilities = within(
            COMMAND_TIMEOUT,
            &server,
            "ask for CAPABILITY",
            session.capabilities(),
        )
        .await?
        .map_err(|e| fail("ask for CAPABILITY", imap_reason(&e)))?;
        let supports_idle = settings.idle && capabilities.has_str("IDLE");

        let action = format!("select folder {:?}", settings.folder);
        let selected = within(
            COMMAND_TIMEOUT,
            &server,
            &action,
            session.select(&settings.folder),
        )
        .await?
        .map_err(|e| fail(&action, imap_reason(&e)))?;
        let uid_validity = selected
            .uid_validity
            .ok_or_else(|| fail(&action, "the server sent no UIDVALIDITY".into()))?;

        let mut mailbox = Mailbox {
            session: Some(session),
            server,
            uid_validity,
            supports_idle,
            pending_news: false,
            processed: settings.processed.clone(),
        };
        // SELECT's own EXISTS is not news.
        mailbox.drain_unsolicited();
        Ok(mailbox)
    }

    /// The folder's UIDVALIDITY: when it changes, every stored UID is void.
    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// IDLE is enabled in the settings and offered by the server.
    pub fn supports_idle(&self) -> bool {
        self.supports_idle
    }

    /// UIDs greater than `last_uid`, ascending.
    pub async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, ImapError> {
        let Some(first) = last_uid.checked_add(1) else {
            return Ok(Vec::new());
        };
        // `n:*` always matches the highest UID, even when it is below n.
        let uids = self
            .search(&format!("UID {first}:*"), "search for new messages")
            .await?;
        Ok(uids.into_iter().filter(|&uid| uid > last_uid).collect())
    }

    /// UIDs greater than `last_uid` with their sizes (RFC822.SIZE),
    /// ascending: big messages can then be fetched alone.
    pub async fn sizes_after(&mut self, last_uid: u32) -> Result<Vec<(u32, u32)>, ImapError> {
        let uids = self.uids_after(last_uid).await?;
        self.sizes_of(&uids).await
    }

    /// These UIDs (ascending) with their sizes, those that exist.
    pub async fn sizes_of(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>, ImapError> {
        let action = "ask for the sizes of new messages";
        let mut found = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(UIDS_PER_COMMAND) {
            let set = uid_set(chunk);
            let server = self.server.clone();
            let session = self.session()?;
            within(COMMAND_TIMEOUT, &server, action, async {
                let mut fetched = session.uid_fetch(&set, "(UID RFC822.SIZE)").await?;
                while let Some(fetch) = fetched.try_next().await? {
                    // untagged FETCH responses about flags carry no size
                    if let (Some(uid), Some(size)) = (fetch.uid, fetch.size)
                        && chunk.binary_search(&uid).is_ok()
                    {
                        found.push((uid, size));
                    }
                }
                Ok::<_, async_imap::error::Error>(())
            })
            .await?
            .map_err(|e| self.command_error(action, e))?;
        }
        self.drain_unsolicited_keep_news();
        found.sort_unstable();
        found.dedup_by_key(|(uid, _)| *uid);
        Ok(found)
    }

    /// UIDs of messages that arrived on or after `since` (IMAP SINCE,
    /// by day), or all of them.
    pub async fn uids_since(
        &mut self,
        since: Option<chrono::NaiveDate>,
    ) -> Result<Vec<u32>, ImapError> {
        let query = match since {
            Some(d) => format!("SINCE {}", d.format("%-d-%b-%Y")),
            None => "ALL".to_string(),
        };
        let mut uids = self.search(&query, "search for messages").await?;
        uids.sort_unstable();
        Ok(uids)
    }

    /// Unread messages in `(above, up_to]` that lack [`PROCESSED_KEYWORD`]:
    /// below the checkpoint, candidates for the catch-up.
    pub async fn unseen_between(&mut self, above: u32, up_to: u32) -> Result<Vec<u32>, ImapError> {
        if up_to <= above {
            return Ok(Vec::new());
        }
        let uids = self
            .search(
                &format!(
                    "UID {}:{up_to} UNSEEN UNKEYWORD {PROCESSED_KEYWORD}",
                    above + 1
                ),
                "search for unread messages below the checkpoint",
            )
            .await?;
        Ok(uids
            .into_iter()
            .filter(|&u| u > above && u <= up_to)
            .collect())
    }

    /// UIDs up to `last_uid` that lack [`PROCESSED_KEYWORD`]: messages
    /// stored before a crash but not yet marked.
    pub async fn unmarked_up_to(&mut self, last_uid: u32) -> Result<Vec<u32>, ImapError> {
        if last_uid == 0 {
            return Ok(Vec::new());
        }
        let uids = self
            .search(
                &format!("UID 1:{last_uid} UNKEYWORD {PROCESSED_KEYWORD}"),
                "search for unmarked messages",
            )
            .await?;
        Ok(uids.into_iter().filter(|&uid| uid <= last_uid).collect())
    }

    /// Those of `uids` still in the mailbox without [`PROCESSED_KEYWORD`]
    /// (ascending): neither flagged by a daemon nor moved or deleted.
    pub async fn unmarked_among(&mut self, uids: &[u32]) -> Result<Vec<u32>, ImapError> {
        let mut found = Vec::new();
        for chunk in uids.chunks(UIDS_PER_COMMAND) {
            let set = uid_set(chunk);
            let uids = self
                .search(
                    &format!("UID {set} UNKEYWORD {PROCESSED_KEYWORD}"),
                    "search for messages not yet processed",
                )
                .await?;
            found.extend(uids.into_iter().filter(|u| chunk.contains(u)));
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// The raw messages of these UIDs, in UID order, without setting
    /// `\Seen`. UIDs that no longer exist are left out.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<FetchedMail>, ImapError> {
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut mails: Vec<FetchedMail> = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(UIDS_PER_COMMAND) {
            let set = uid_set(chunk);
            let server = self.server.clone();
            let session = self.session()?;
            let answer = within(FETCH_TIMEOUT, &server, "fetch messages", async {
                let mut fetched = session
                    .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                    .await?;
                while let Some(fetch) = fetched.try_next().await? {
                    // Untagged FETCH responses about other messages (a flag
                    // change by another client) carry no body: skip them.
                    if let (Some(uid), Some(_)) = (fetch.uid, fetch.body())
                        && chunk.binary_search(&uid).is_ok()
                    {
                        let arrived_at = fetch.internal_date().map(|d| d.to_utc());
                        mails.push(FetchedMail {
                            uid,
                            raw: RawMail(fetch),
                            arrived_at,
                        });
                    }
                }
                Ok::<_, async_imap::error::Error>(())
            })
            .await;
            let answer = match answer {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(self.command_error("fetch messages", e)),
                Err(timeout) => Err(timeout),
            };
            // async-imap ends the stream quietly when the server says BYE
            // and hangs up before its tagged answer (Dovecot does when it
            // cannot read a message): the messages after are just missing
            let answer = answer.and_then(|()| match self.take_bye() {
                Some(text) => Err(ImapError::Command {
                    server: server.clone(),
                    action: "fetch messages".to_string(),
                    reason: format!("the server closed the connection: {text}"),
                }),
                None => Ok(()),
            });
            if let Err(e) = answer {
                // an answer half-read (no answer in time, a hang-up): the
                // connection is of no further use
                if !e.connection_usable() {
                    self.session = None;
                }
                return Err(e);
            }
        }
        mails.sort_by_key(|m| m.uid);
        mails.dedup_by_key(|m| m.uid);
        self.drain_unsolicited_keep_news();
        Ok(mails)
    }

    /// Marks messages as handled: `\Seen` and [`PROCESSED_KEYWORD`], in one
    /// UID STORE per chunk.
    pub async fn mark_processed(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for chunk in sorted.chunks(UIDS_PER_COMMAND) {
            let set = uid_set(chunk);
            let flags = format!("+FLAGS.SILENT (\\Seen {PROCESSED_KEYWORD})");
            let server = self.server.clone();
            let session = self.session()?;
            within(COMMAND_TIMEOUT, &server, "mark messages processed", async {
                session
                    .uid_store(&set, &flags)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?
            .map_err(|e| self.command_error("mark messages processed", e))?;
            self.dispose(&set).await?;
        }
        self.drain_unsolicited_keep_news();
        Ok(())
    }

    /// `imap.processed`: moves or deletes messages Guichet has stored and
    /// flagged (only [`Mailbox::mark_processed`] calls it, and only once
    /// their transaction is committed). `keep` leaves them.
    async fn dispose(&mut self, set: &str) -> Result<(), ImapError> {
        let server = self.server.clone();
        match self.processed.clone() {
            ProcessedMail::Keep => Ok(()),
            ProcessedMail::Move(folder) => {
                let session = self.session()?;
                let moved = within(COMMAND_TIMEOUT, &server, "move processed messages", async {
                    session.uid_mv(set, &folder).await
                })
                .await?;
                if moved.is_ok() {
                    return Ok(());
                }
                // the folder does not exist yet ([TRYCREATE]): make it, try again
                let session = self.session()?;
                let _ = within(
                    COMMAND_TIMEOUT,
                    &server,
                    "create the processed folder",
                    async { session.create(&folder).await },
                )
                .await?;
                let session = self.session()?;
                within(COMMAND_TIMEOUT, &server, "move processed messages", async {
                    session.uid_mv(set, &folder).await
                })
                .await?
                .map_err(|e| self.command_error("move processed messages", e))
            }
            ProcessedMail::Delete => {
                let session = self.session()?;
                within(
                    COMMAND_TIMEOUT,
                    &server,
                    "delete processed messages",
                    async {
                        session
                            .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await?;
                        session
                            .uid_expunge(set)
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    },
                )
                .await?
                .map_err(|e| self.command_error("delete processed messages", e))?;
                Ok(())
            }
        }
    }

    /// Waits until the server announces new mail, `max_wait` passes, or
    /// `shutdown` becomes `true`. Uses IDLE when [`supports_idle`]
    /// (Self::supports_idle), else just sleeps. Returns [`News::NewMail`]
    /// at once when new mail was announced during an earlier command.
    /// A dropped shutdown sender counts as "never shut down".
    pub async fn wait_for_news(
        &mut self,
        max_wait: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<News, ImapError> {
        if *shutdown.borrow_and_update() {
            return Ok(News::Shutdown);
        }
        self.drain_unsolicited_keep_news();
        if self.pending_news {
            self.pending_news = false;
            return Ok(News::NewMail);
        }
        if !self.supports_idle {
            tokio::select! {
                _ = tokio::time::sleep(max_wait) => return Ok(News::Timeout),
                _ = shutdown_raised(shutdown) => return Ok(News::Shutdown),
            }
        }

        let server = self.server.clone();
        let session = self.session.take().ok_or_else(|| ImapError::Lost {
            server: server.clone(),
        })?;
        // The handle hides the session: keep a way to its unsolicited queue.
        let unsolicited = session.unsolicited_responses.clone();
        let mut idle = session.idle();
        within(COMMAND_TIMEOUT, &server, "start IDLE", idle.init())
            .await?
            .map_err(|e| ImapError::Command {
                server: server.clone(),
                action: "start IDLE".into(),
                reason: imap_reason(&e),
            })?;
        // A server may announce mail before its `+ idling`: async-imap
        // queues that as unsolicited, and the wait below would miss it.
        let announced_early = drain_news!(unsolicited);

        let deadline = Instant::now() + max_wait;
        let news = loop {
            if announced_early {
                break Ok(News::NewMail);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // `wait_with_timeout` restarts its timer on every keepalive, so
            // the overall deadline is kept here.
            let (wait, _stop) = idle.wait_with_timeout(left);
            let answer = tokio::select! {
                answer = wait => answer,
                _ = tokio::time::sleep_until(deadline) => break Ok(News::Timeout),
                _ = shutdown_raised(shutdown) => break Ok(News::Shutdown),
            };
            match answer {
                Ok(IdleResponse::NewData(data)) => match data.parsed() {
                    response if announces_new_mail(response) => {
                        // the moment of the push, for latency measurements
                        tracing::debug!("IDLE: the server announced new mail");
                        break Ok(News::NewMail);
                    }
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => {
                        break Err(format!(
                            "the server closed the connection: {}",
                            outcome.information.as_deref().unwrap_or("BYE")
                        ));
                    }
                    // EXPUNGE, flag changes...: not our business, keep idling.
                    _ => {}
                },
                Ok(IdleResponse::Timeout) => break Ok(News::Timeout),
                // We never interrupt (`_stop` lives): the stream ended.
                Ok(IdleResponse::ManualInterrupt) => {
                    break Err("the server closed the connection".to_string());
                }
                Err(e) => break Err(imap_reason(&e)),
            }
        };
        // On error the connection is unusable: the session stays taken.
        let news = news.map_err(|reason| ImapError::Command {
            server: server.clone(),
            action: "wait in IDLE".into(),
            reason,
        })?;

        let session = within(COMMAND_TIMEOUT, &server, "end IDLE", idle.done())
            .await?
            .map_err(|e| ImapError::Command {
                server: server.clone(),
                action: "end IDLE".into(),
                reason: imap_reason(&e),
            })?;
        self.session = Some(session);
        // An EXISTS that raced with DONE lands in the unsolicited queue.
        self.drain_unsolicited_keep_news();
        match news {
            News::Shutdown => Ok(News::Shutdown),
            News::NewMail | News::Timeout => {
                let news = if self.pending_news {
                    News::NewMail
                } else {
                    news
                };
                self.pending_news = false;
                Ok(news)
            }
        }
    }

    /// Says goodbye (LOGOUT) and closes the connection.
    pub async fn logout(mut self) -> Result<(), ImapError> {
        let server = self.server.clone();
        let session = self.session()?;
        within(COMMAND_TIMEOUT, &server, "log out", session.logout())
            .await?
            .map_err(|e| self.command_error("log out", e))
    }

    async fn search(&mut self, query: &str, action: &str) -> Result<Vec<u32>, ImapError> {
        let server = self.server.clone();
        let session = self.session()?;
        let found = within(COMMAND_TIMEOUT, &server, action, session.uid_search(query))
            .await?
            .map_err(|e| self.command_error(action, e))?;
        self.drain_unsolicited_keep_news();
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    fn session(&mut self) -> Result<&mut async_imap::Session<ImapStream>, ImapError> {
        let server = &self.server;
        self.session.as_mut().ok_or_else(|| ImapError::Lost {
            server: server.clone(),
        })
    }

    fn command_error(&self, action: &str, e: async_imap::error::Error) -> ImapError {
        use async_imap::error::Error;
        if matches!(e, Error::No(_) | Error::Bad(_)) {
            return ImapError::Refused {
                server: self.server.clone(),
                action: action.to_string(),
                reason: imap_reason(&e),
            };
        }
        ImapError::Command {
            server: self.server.clone(),
            action: action.to_string(),
            reason: imap_reason(&e),
        }
    }

    /// Empties the unsolicited-response queue (async-imap drops new ones
    /// silently once 100 wait there). True when one announced new mail.
    fn drain_unsolicited(&mut self) -> bool {
        match self.session.as_mut() {
            Some(session) => drain_news!(session.unsolicited_responses),
            None => false,
        }
    }

    /// Empties the unsolicited-response queue, remembering news; the
    /// text of a `BYE` found there, if any.
    fn take_bye(&mut self) -> Option<String> {
        let session = self.session.as_mut()?;
        let mut bye = None;
        while let Ok(response) = session.unsolicited_responses.try_recv() {
            match response {
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_) => {
                    self.pending_news = true;
                }
                UnsolicitedResponse::Other(data) => {
                    if let Response::Data {
                        status: Status::Bye,
                        outcome,
                    } = data.parsed()
                    {
                        bye = Some(outcome.information.as_deref().unwrap_or("BYE").to_string());
                    }
                }
                _ => {}
            }
        }
        bye
    }

    /// [`Self::drain_unsolicited`], remembering news for the next
    /// [`Self::wait_for_news`].
    fn drain_unsolicited_keep_news(&mut self) {
        if self.drain_unsolicited() {
            self.pending_news = true;
        }
    }
}

/// An async-imap error as a short reason: the server's own words for NO
/// and BAD, never the characters of a refused input (a password may hold
/// them).
fn imap_reason(error: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    // async-imap formats NO/BAD as `code: …, info: Some("text")`.
    let server_text = |raw: &str| -> String {
        raw.split_once("info: Some(\"")
            .and_then(|(_, rest)| rest.rsplit_once("\")"))
            .map(|(text, _)| text.replace("\\\"", "\""))
            .unwrap_or_else(|| raw.to_string())
    };
    match error {
        Error::No(raw) => format!("the server said NO: {}", server_text(raw)),
        Error::Bad(raw) => format!("the server said BAD: {}", server_text(raw)),
        Error::Validate(_) => "a value contains a character IMAP cannot send (CR or LF)".into(),
        Error::ConnectionLost => "the server closed the connection".into(),
        other => other.to_string(),
    }
}

/// Empties an unsolicited-response receiver; true when one of them
/// announced new mail. A macro because async-imap does not name the
/// channel type.
macro_rules! drain_news {
    ($receiver:expr) => {{
        let mut news = false;
        while let Ok(response) = $receiver.try_recv() {
            news |= matches!(
                response,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        news
    }};
}
use drain_news;

/// Does this untagged response say that messages arrived?
fn announces_new_mail(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::MailboxData(MailboxDatum::Exists(_))
            | Response::MailboxData(MailboxDatum::Recent(_))
    )
}

/// Resolves once `shutdown` holds `true`; never, if its sender is gone.
async fn shutdown_raised(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `fut` with a time limit, as an [`ImapError::Timeout`].
async fn within<F: Future>(
    limit: Duration,
    server: &str,
    action: &str,
    fut: F,
) -> Result<F::Output, ImapError> {
    timeout(limit, fut).await.map_err(|_| ImapError::Timeout {
        server: server.to_string(),
        action: action.to_string(),
        after: limit,
    })
}

async fn read_greeting(
    client: &mut async_imap::Client<ImapStream>,
    server: &str,
) -> Result<(), ImapError> {
    let greeting = within(
        COMMAND_TIMEOUT,
        server,
        "read the greeting",
        client.read_response(),
    )
    .await?;
    let fail = |reason: String| ImapError::Connect {
        server: server.to_string(),
        reason,
    };
    match greeting {
        Ok(Some(response)) => match response.parsed() {
            Response::Data {
                status: Status::Ok, ..
            } => Ok(()),
            Response::Data {
                status: Status::Bye,
                outcome,
            } => Err(fail(format!(
                "the server said BYE: {}",
                outcome.information.as_deref().unwrap_or("")
            ))),
            other => Err(fail(format!("unexpected greeting {other:?}"))),
        },
        Ok(None) => Err(fail(
            "the server closed the connection before its greeting".into(),
        )),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// `[1, 2, 3, 7, 9, 10]` → `1:3,7,9:10`. `uids` must be sorted, deduplicated
/// and non-empty.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        let table: &[(&[u32], &str)] = &[
            (&[1], "1"),
            (&[1, 2], "1:2"),
            (&[1, 2, 3, 7, 9, 10], "1:3,7,9:10"),
            (&[5, 7, 9], "5,7,9"),
            (&[4294967294, 4294967295], "4294967294:4294967295"),
        ];
        for (uids, want) in table {
            assert_eq!(uid_set(uids), *want, "uids {uids:?}");
        }
    }

    #[test]
    fn imap_errors_read_as_the_servers_words() {
        use async_imap::error::{Error, ValidateError};
        let table: Vec<(Error, &str)> = vec![
            (
                Error::No(
                    r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
                        .into(),
                ),
                "the server said NO: [AUTHENTICATIONFAILED] Authentication failed.",
            ),
            (
                Error::Bad(r#"code: None, info: Some("Mailbox \"x\" unknown")"#.into()),
                r#"the server said BAD: Mailbox "x" unknown"#,
            ),
            (Error::No("odd".into()), "the server said NO: odd"),
            (
                Error::Validate(ValidateError('\n')),
                "a value contains a character IMAP cannot send (CR or LF)",
            ),
            (Error::ConnectionLost, "the server closed the connection"),
        ];
        for (error, want) in table {
            assert_eq!(imap_reason(&error), want, "{error:?}");
        }
    }

    #[test]
    fn only_exists_and_recent_announce_new_mail() {
        let table: &[(&[u8], bool)] = &[
            (b"* 3 EXISTS\r\n", true),
            (b"* 1 RECENT\r\n", true),
            (b"* 2 EXPUNGE\r\n", false),
            (b"* 1 FETCH (FLAGS (\\Seen))\r\n", false),
            (b"* OK Still here\r\n", false),
        ];
        for (line, want) in table {
            let (_, response) = Response::parse(line).expect("parses");
            assert_eq!(
                announces_new_mail(&response),
                *want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
