//! POSTs one webhook body and reports what the endpoint answered, as plain
//! data for [`crate::rules::webhooks::classify`]. It decides nothing: no
//! retries here, and redirects are never followed (a 3xx comes back as it
//! is). Errors are short descriptions without the URL, whose path holds
//! Discord's and Slack's tokens. Every attempt has a deadline that covers
//! connecting, TLS, sending and reading the answer.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use crate::rules::webhooks::{check_url, display_url};

/// A whole attempt (connect, TLS, send, answer, body excerpt) gets this
/// long unless the endpoint's `timeout_seconds` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the endpoint's answer is kept for `webhook test` and logs.
pub const EXCERPT_BYTES: usize = 2048;

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The first 2 KiB of the body, as text (invalid UTF-8 replaced).
    pub body_excerpt: String,
    pub latency: Duration,
}

/// One endpoint's HTTP client: its deadline and the CAs it trusts.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    deadline: Duration,
}

impl WebhookClient {
    /// 10 s per attempt, no redirects, `User-Agent: guichet/<version>`.
    pub fn new() -> Result<Self, String> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// As [`WebhookClient::new`] with another deadline (tests use a short one).
    pub fn with_timeout(timeout: Duration) -> Result<Self, String> {
        Self::for_endpoint(timeout, None)
    }

    /// The client of one `[[webhooks]]` endpoint: every attempt ends within
    /// `deadline`, whatever the peer does; `ca_file` (PEM) is trusted
    /// besides the system's roots.
    pub fn for_endpoint(deadline: Duration, ca_file: Option<&Path>) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // reqwest's own timeouts too: the connection is dropped by
            // the one that fires first
            .timeout(deadline)
            .connect_timeout(deadline)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .user_agent(concat!("guichet/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "the CA file {} holds no usable certificate: {}",
                    path.display(),
                    describe(e)
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the webhook HTTP client: {}", describe(e)))?;
        Ok(Self { http, deadline })
    }

    /// How long one attempt may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// One attempt, ended by its deadline whatever the peer does (silent
    /// after accepting, a byte a second, a TLS handshake never finished).
    /// `Err` is a transport failure (refused connection, DNS, TLS, no
    /// status within the deadline) or a URL that is neither https:// nor
    /// loopback http://; any HTTP status, even 500, is an `Ok` answer,
    /// and a body still arriving at the deadline is cut there. `headers`
    /// are sent as given (the Standard Webhooks ones from
    /// [`crate::rules::webhooks::headers`]); `Content-Type` is JSON.
    pub async fn post(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> Result<HttpAnswer, String> {
        check_url(url)?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut request = self
            .http
            .post(url.trim())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = match tokio::time::timeout_at(deadline, request.send()).await {
            Ok(sent) => sent.map_err(|e| scrub(describe(e), url))?,
            Err(_) => {
                return Err(format!(
                    "timed out: no answer within the {:?} deadline",
                    self.deadline
                ));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => excerpt.extend_from_slice(&chunk),
                // The status is the answer; a body cut short (or still
                // coming at the deadline) does not undo it.
                Ok(Ok(None) | Err(_)) | Err(_) => break,
            }
        }
        Ok(HttpAnswer {
            status,
            retry_after,
            body_excerpt: text_excerpt(&excerpt),
            latency: started.elapsed(),
        })
    }
}

/// Idle kept connections are closed after this (endpoints behind load
/// balancers often drop them sooner).
const POOL_IDLE: Duration = Duration::from_secs(30);

/// At most [`EXCERPT_BYTES`], cut before a split UTF-8 sequence.
fn text_excerpt(bytes: &[u8]) -> String {
    let mut cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    if let Err(e) = std::str::from_utf8(cut)
        && e.error_len().is_none()
    {
        cut = &cut[..e.valid_up_to()];
    }
    String::from_utf8_lossy(cut).into_owned()
}

/// The error and its causes, without the URL reqwest puts in its message.
fn describe(error: reqwest::Error) -> String {
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

/// Belt and braces: should a cause quote the URL, only its host is left.
fn scrub(text: String, url: &str) -> String {
    let url = url.trim();
    if url.is_empty() {
        return text;
    }
    text.replace(url, &display_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_stop_at_two_kib_on_a_character_boundary() {
        let cases: &[(Vec<u8>, usize)] = &[
            (b"ok".to_vec(), 2),
            (vec![b'a'; 5000], 2048),
            // 2047 ASCII bytes then a 2-byte `é`: the split `é` is dropped.
            ([vec![b'a'; 2047], "é".as_bytes().to_vec()].concat(), 2047),
        ];
        for (bytes, len) in cases {
            assert_eq!(text_excerpt(bytes).len(), *len, "{} bytes", bytes.len());
        }
        // Invalid bytes inside are replaced, not fatal.
        assert_eq!(text_excerpt(b"a\xffb"), "a\u{FFFD}b");
    }

    #[test]
    fn urls_are_scrubbed_from_error_text() {
        let url = "https://discord.com/api/webhooks/1/TOKEN";
        let text = scrub(format!("error sending request for url ({url})"), url);
        assert!(!text.contains("TOKEN"), "{text}");
        assert!(text.contains("https://discord.com/…"), "{text}");
    }
}
