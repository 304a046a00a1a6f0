//! OAuth2 for the mail servers (issue 14), the pure parts: when an access token is due for a
//! refresh, which account an ID token names, and what a provider's error
//! (`invalid_grant`, Microsoft's `AADSTS…` codes) means for the admin.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};

/// An access token this close to its expiry is refreshed before use: a
/// login that starts with it must not see it expire half-way.
pub const REFRESH_MARGIN_SECONDS: i64 = 120;

/// Is a token that expires at `expires_at` due for a refresh at `now`?
pub fn refresh_due(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at - Duration::seconds(REFRESH_MARGIN_SECONDS) <= now
}

/// When a token handed out at `now` with `expires_in` seconds expires
/// (an absent or silly value counts as one hour, the usual lifetime).
pub fn expiry(now: DateTime<Utc>, expires_in: Option<i64>) -> DateTime<Utc> {
    let secs = expires_in
        .filter(|s| (1..=86_400 * 30).contains(s))
        .unwrap_or(3600);
    now + Duration::seconds(secs)
}

/// The account an OpenID Connect ID token names (`preferred_username`,
/// `email` or `upn`), read without checking its signature: it is only
/// shown to the admin who just signed in.
pub fn account_of_id_token(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["email", "preferred_username", "upn"]
        .iter()
        .find_map(|k| claims.get(*k)?.as_str().map(str::to_string))
}

/// A provider's refusal, as RFC 6749 §5.2 / RFC 8628 §3.5 shape it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub error: String,
    pub description: Option<String>,
}

impl ProviderError {
    /// The refresh token is dead (revoked, expired, password changed,
    /// consent withdrawn): only a new `guichet oauth login` helps.
    pub fn needs_new_login(&self) -> bool {
        self.error == "invalid_grant"
            || self
                .description
                .as_deref()
                .is_some_and(|d| aadsts(d).is_some_and(|c| NEW_LOGIN_CODES.contains(&c)))
    }
}

/// Microsoft codes that mean "sign in again".
const NEW_LOGIN_CODES: &[u32] = &[50173, 50078, 50076, 50079, 700082, 700084, 70008, 50132];

/// The `AADSTS12345` code in a Microsoft error description.
pub fn aadsts(description: &str) -> Option<u32> {
    let at = description.find("AADSTS")?;
    let digits: String = description[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What to do about a provider's error, in one sentence for the log.
pub fn explain(e: &ProviderError) -> String {
    if let Some(code) = e.description.as_deref().and_then(aadsts) {
        let fix = match code {
            50173 | 700082 | 700084 | 70008 | 50132 => {
                "the refresh token expired or was revoked (password change, sign-out, admin action): run `guichet oauth login` again"
            }
            50076 | 50079 | 50078 => {
                "the tenant now asks for multi-factor authentication: run `guichet oauth login` again and complete it"
            }
            65001 => {
                "the app has no consent for these scopes: an administrator grants consent in Entra ID (Enterprise applications → the app → Permissions), then run `guichet oauth login`"
            }
            700016 => {
                "the client_id is not known in this tenant: check `oauth2.client_id` and `oauth2.tenant` against the app registration"
            }
            7000218 => {
                "the app registration does not allow public clients: enable \"Allow public client flows\" (Authentication) or set `oauth2.client_secret`"
            }
            7000215 | 7000222 => {
                "the client secret is wrong or expired: create a new one (Certificates & secrets) and update `oauth2.client_secret`"
            }
            90002 | 90023 => "the tenant is not known: check `oauth2.tenant`",
            53003 => {
                "a conditional access policy blocks this sign-in: ask the tenant administrator to exclude the app or the mailbox account"
            }
            50034 | 50126 => {
                "the account or its password is wrong: sign in as the mailbox's account"
            }
            _ => "see Microsoft's error reference for this AADSTS code",
        };
        return format!("Microsoft error AADSTS{code}: {fix}");
    }
    let fix = match e.error.as_str() {
        "invalid_grant" => {
            "the refresh token was revoked or has expired: run `guichet oauth login` again"
        }
        "invalid_client" | "unauthorized_client" => {
            "the provider refuses the app: check `oauth2.client_id` and `oauth2.client_secret` against the app registration"
        }
        "invalid_scope" => {
            "the provider refuses the scopes: check `oauth2.scopes` and the API permissions of the app registration"
        }
        "access_denied" => {
            "the sign-in was refused in the browser: run `guichet oauth login` again and accept"
        }
        "expired_token" => "the code was not entered in time: run `guichet oauth login` again",
        "admin_policy_enforced" => {
            "a Google Workspace administrator blocks this app: allow it in the Admin console (Security → API controls)"
        }
        _ => "see the provider's documentation for this error",
    };
    format!("{}: {fix}", e.error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn err(error: &str, description: Option<&str>) -> ProviderError {
        ProviderError {
            error: error.into(),
            description: description.map(str::to_string),
        }
    }

    #[test]
    fn refresh_is_due_inside_the_margin_only() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let cases = [
            (3600, false),
            (REFRESH_MARGIN_SECONDS + 1, false),
            (REFRESH_MARGIN_SECONDS, true),
            (10, true),
            (-5, true),
        ];
        for (left, due) in cases {
            assert_eq!(
                refresh_due(now + Duration::seconds(left), now),
                due,
                "{left}s left"
            );
        }
        assert_eq!(expiry(now, Some(60)), now + Duration::seconds(60));
        assert_eq!(expiry(now, None), now + Duration::seconds(3600));
        assert_eq!(expiry(now, Some(0)), now + Duration::seconds(3600));
    }

    #[test]
    fn id_token_names_the_account() {
        let b = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let t = format!(
            "{}.{}.sig",
            b("{}"),
            b(r#"{"preferred_username":"s@x.com"}"#)
        );
        assert_eq!(account_of_id_token(&t).as_deref(), Some("s@x.com"));
        let t = format!(
            "{}.{}.sig",
            b("{}"),
            b(r#"{"email":"e@x.com","preferred_username":"p"}"#)
        );
        assert_eq!(account_of_id_token(&t).as_deref(), Some("e@x.com"));
        assert_eq!(account_of_id_token("garbage"), None);
    }

    #[test]
    fn errors_are_explained_with_what_to_do() {
        let cases: &[(ProviderError, &str, bool)] = &[
            (
                err(
                    "invalid_grant",
                    Some(
                        "AADSTS70008: The provided authorization code or refresh token has expired",
                    ),
                ),
                "AADSTS70008",
                true,
            ),
            (
                err(
                    "invalid_grant",
                    Some("AADSTS50173: The provided grant has expired due to it being revoked"),
                ),
                "guichet oauth login",
                true,
            ),
            (
                err(
                    "invalid_client",
                    Some("AADSTS7000215: Invalid client secret provided."),
                ),
                "client secret",
                false,
            ),
            (
                err(
                    "invalid_client",
                    Some("AADSTS700016: Application with identifier 'x' was not found"),
                ),
                "oauth2.tenant",
                false,
            ),
            (
                err(
                    "invalid_request",
                    Some(
                        "AADSTS7000218: The request body must contain client_assertion or client_secret",
                    ),
                ),
                "public client",
                false,
            ),
            (err("invalid_grant", None), "guichet oauth login", true),
            (err("invalid_scope", None), "oauth2.scopes", false),
            (err("admin_policy_enforced", None), "Admin console", false),
            (err("strange", None), "strange", false),
        ];
        for (e, needle, relogin) in cases {
            let text = explain(e);
            assert!(text.contains(needle), "{e:?} -> {text}");
            assert_eq!(e.needs_new_login(), *relogin, "{e:?}");
        }
        assert_eq!(aadsts("x AADSTS50076: y"), Some(50076));
        assert_eq!(aadsts("none"), None);
    }
}
