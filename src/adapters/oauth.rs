//! OAuth2 over HTTP (issue 14): the device authorization flow (RFC 8628)
//! and the refresh grant (RFC 6749 §6) against the `[oauth2]` provider's
//! endpoints. Tokens never appear in an error or a log line; what the
//! provider said (`error`, `error_description`) comes back as data for
//! `rules::oauth::explain`.

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{OAuth2Settings, Secret};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a token request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The provider answered with an RFC 6749 error.
    #[error("the OAuth2 provider refused: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    /// No usable answer (connection, TLS, HTTP status without an error
    /// body, unreadable JSON).
    #[error("cannot reach the OAuth2 provider: {0}")]
    Unreachable(String),
}

/// What the device authorization endpoint handed out.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    /// Microsoft says `verification_uri`, some `verification_url`.
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Option<u64>,
    pub interval: Option<u64>,
    /// Microsoft's ready-made sentence.
    pub message: Option<String>,
}

/// A token endpoint's success.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    error_description: Option<String>,
}

/// One poll of the token endpoint during the device flow.
#[derive(Debug)]
pub enum Poll {
    Done(Tokens),
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: add 5 s to the interval.
    SlowDown,
}

/// The provider's endpoints and the app's identity.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    token_url: String,
    device_url: String,
    client_id: String,
    client_secret: Option<Secret>,
    scopes: String,
}

impl OAuthClient {
    pub fn new(s: &OAuth2Settings) -> Result<OAuthClient, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("guichet/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &s.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "the CA file {} holds no usable certificate: {e}",
                    path.display()
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the OAuth2 HTTP client: {e}"))?;
        Ok(OAuthClient {
            http,
            token_url: s.token_url.clone(),
            device_url: s.device_authorization_url.clone(),
            client_id: s.client_id.clone(),
            client_secret: s.client_secret.clone(),
            scopes: s.scopes.join(" "),
        })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<T, OAuthError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", &self.client_id);
            if let Some(secret) = &self.client_secret {
                form.append_pair("client_secret", secret.expose());
            }
            for (k, v) in fields {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let answer = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            // without the URL: a custom provider's may hold a key
            .map_err(|e| OAuthError::Unreachable(describe(&e)))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| OAuthError::Unreachable(describe(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                OAuthError::Unreachable(format!("unreadable answer (HTTP {status}): {e}"))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => Err(OAuthError::Provider {
                error: e.error,
                description: e.error_description,
            }),
            Err(_) => Err(OAuthError::Unreachable(format!("HTTP {status}"))),
        }
    }

    /// Step 1 of RFC 8628: a user code and the address to enter it at.
    pub async fn device_code(&self) -> Result<DeviceCode, OAuthError> {
        self.post(&self.device_url, &[("scope", &self.scopes)])
            .await
    }

    /// Step 2: one poll of the token endpoint.
    pub async fn poll_device(&self, device_code: &str) -> Result<Poll, OAuthError> {
        let asked = self
            .post::<Tokens>(
                &self.token_url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", device_code),
                ],
            )
            .await;
        match asked {
            Ok(t) => Ok(Poll::Done(t)),
            Err(OAuthError::Provider { error, .. }) if error == "authorization_pending" => {
                Ok(Poll::Pending)
            }
            Err(OAuthError::Provider { error, .. }) if error == "slow_down" => Ok(Poll::SlowDown),
            Err(e) => Err(e),
        }
    }

    /// A new access token (and maybe a new refresh token) for this refresh
    /// token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OAuthError> {
        self.post(
            &self.token_url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("scope", &self.scopes),
            ],
        )
        .await
    }
}

/// XOAUTH2 (Google's and Microsoft's): `user=…^Aauth=Bearer …^A^A`.
pub fn xoauth2(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// OAUTHBEARER (RFC 7628): `n,a=user,^Ahost=…^Aport=…^Aauth=Bearer …^A^A`.
pub fn oauthbearer(user: &str, token: &str, host: &str, port: u16) -> String {
    // a ',' or '=' in the authzid is escaped (RFC 5801)
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
}

/// reqwest's error with its causes, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_strings_are_the_documented_shapes() {
        assert_eq!(
            xoauth2("a@b.c", "tok"),
            "user=a@b.c\u{1}auth=Bearer tok\u{1}\u{1}"
        );
        assert_eq!(
            oauthbearer("a,b=@c", "tok", "imap.x", 993),
            "n,a=a=2Cb=3D@c,\u{1}host=imap.x\u{1}port=993\u{1}auth=Bearer tok\u{1}\u{1}"
        );
    }
}
