//! OAuth2 access tokens for the mail logins (issue 14): one cache per
//! daemon, refreshed from the refresh token `guichet oauth login` stored.
//!
//! An access token is refreshed before it expires
//! ([`rules::oauth::refresh_due`]) and once more when the server refuses
//! it. A refresh the provider refuses for good (revoked or expired refresh
//! token, consent withdrawn) is logged as an error naming `guichet oauth
//! login` and raises one `mailbox.auth_failed` event per episode; the
//! callers keep retrying with their back-off, and mail stays on the server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use crate::adapters::imap::{Login, Mailbox};
use crate::adapters::oauth::{OAuthClient, OAuthError};
use crate::adapters::smtp::TokenSource;
use crate::domain::EventKind;
use crate::rules::oauth::{self as rules, ProviderError};
use crate::rules::webhooks::{mailbox as mailbox_event, system::NO_TICKET};
use crate::settings::{AuthMethod, ImapSettings, Settings};
use crate::store::Store;

/// Access tokens of every account, with the app to refresh them.
pub struct OAuthTokens {
    client: OAuthClient,
    store: Store,
    settings: Arc<Settings>,
    /// account → (access token, expiry); one refresh at a time.
    cache: tokio::sync::Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    /// Accounts whose failure was announced: one event per episode.
    announced: Mutex<HashSet<String>>,
}

impl OAuthTokens {
    /// `None` when no `[oauth2]` table is set.
    pub fn new(settings: Arc<Settings>, store: Store) -> anyhow::Result<Option<Arc<OAuthTokens>>> {
        let Some(o) = &settings.oauth2 else {
            return Ok(None);
        };
        let client = OAuthClient::new(o).map_err(anyhow::Error::msg)?;
        Ok(Some(Arc::new(OAuthTokens {
            client,
            store,
            settings: settings.clone(),
            cache: Default::default(),
            announced: Default::default(),
        })))
    }

    /// An access token for `account`, used by the login `mailbox` (`imap`,
    /// `smtp`, for logs and events). `fresh`: the server refused the last.
    pub async fn access_token(
        &self,
        mailbox: &str,
        account: &str,
        fresh: bool,
    ) -> anyhow::Result<String> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if !fresh
            && let Some((token, expires)) = cache.get(account)
            && !rules::refresh_due(*expires, now)
        {
            return Ok(token.clone());
        }
        let Some(refresh) = self.store.oauth_refresh_token(account).await? else {
            let error = format!("no OAuth2 refresh token is stored for {account}");
            let fix = format!("run `guichet oauth login --account {account}`");
            self.refused(mailbox, account, &error, &fix).await;
            return Err(anyhow!("{error}: {fix}"));
        };
        match self.client.refresh(&refresh).await {
            Ok(tokens) => {
                if let Some(rotated) = tokens.refresh_token.as_deref()
                    && rotated != refresh
                {
                    self.store
                        .save_oauth_refresh_token(account, rotated, now)
                        .await?;
                }
                let expires = rules::expiry(now, tokens.expires_in);
                cache.insert(account.to_string(), (tokens.access_token.clone(), expires));
                if self.announced.lock().expect("not poisoned").remove(account) {
                    tracing::info!(mailbox, account, "OAuth2 login works again");
                }
                tracing::debug!(mailbox, account, expires = %expires, "OAuth2 access token refreshed");
                Ok(tokens.access_token)
            }
            Err(OAuthError::Provider { error, description }) => {
                cache.remove(account);
                let pe = ProviderError { error, description };
                let fix = rules::explain(&pe);
                let error = match &pe.description {
                    Some(d) => format!("{}: {d}", pe.error),
                    None => pe.error.clone(),
                };
                self.refused(mailbox, account, &error, &fix).await;
                Err(anyhow!(
                    "the OAuth2 provider refuses to renew the access token of {account}: {fix}"
                ))
            }
            Err(e @ OAuthError::Unreachable(_)) => Err(anyhow!("{e}")),
        }
    }

    /// The error line, and the event once per episode.
    async fn refused(&self, mailbox: &str, account: &str, error: &str, fix: &str) {
        tracing::error!(mailbox, account, %error, "cannot log in with OAuth2: {fix}; mail waits on the server, retrying with back-off (run `guichet oauth login` to fix it)");
        if !self
            .announced
            .lock()
            .expect("not poisoned")
            .insert(account.to_string())
        {
            return;
        }
        let endpoints: Vec<&str> = self
            .settings
            .webhooks
            .iter()
            .filter(|w| w.wants(EventKind::MailboxAuthFailed))
            .map(|w| w.url.as_str())
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let now = Utc::now();
        let event = mailbox_event::auth_failed(mailbox, account, error, fix, now, rand::random());
        let queued = match serde_json::to_string(&event) {
            Ok(payload) => {
                self.store
                    .queue_system_event(&event.id, &endpoints, NO_TICKET, &payload, now)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = queued {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot queue the mailbox.auth_failed event"
            );
        }
    }
}

/// The SMTP login's view of the cache.
pub struct SmtpTokens {
    pub tokens: Arc<OAuthTokens>,
    pub account: String,
}

impl TokenSource for SmtpTokens {
    fn access_token(
        &self,
        fresh: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            self.tokens
                .access_token("smtp", &self.account, fresh)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }
}

/// Connects to the mailbox `imap` with its login method: an OAuth2 login
/// the server refuses is tried once more with a fresh access token.
pub async fn connect_mailbox(
    tokens: Option<&OAuthTokens>,
    name: &str,
    imap: &ImapSettings,
) -> anyhow::Result<Mailbox> {
    if imap.auth == AuthMethod::Password {
        return Ok(Mailbox::connect(imap).await?);
    }
    let (Some(tokens), Some(o)) = (tokens, tokens.and_then(|t| t.settings.oauth2.as_ref())) else {
        return Err(anyhow!("`auth = \"oauth2\"` needs an [oauth2] table"));
    };
    let mechanism = o.mechanism;
    let token = tokens.access_token(name, &imap.username, false).await?;
    match Mailbox::connect_with(
        imap,
        Login::Bearer {
            token: &token,
            mechanism,
        },
    )
    .await
    {
        Err(e) if e.is_login_refused() => {
            tracing::info!(mailbox = name, account = %imap.username, "IMAP refused the OAuth2 access token; refreshing it and trying once more");
            let token = tokens.access_token(name, &imap.username, true).await?;
            Ok(Mailbox::connect_with(
                imap,
                Login::Bearer {
                    token: &token,
                    mechanism,
                },
            )
            .await?)
        }
        other => Ok(other?),
    }
}
