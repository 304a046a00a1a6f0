//! Placeholders left from a preset (`imap.example.com`, an agent at
//! `example.com`, a webhook URL ending in `ID/TOKEN`): refused with their
//! line, as part of loading a settings file (see [`super`]).

use toml::Spanned;
use toml::de::DeValue;

use super::{Checker, Section, Span};

impl Checker<'_> {
    /// Values left as a preset wrote them (`imap.example.com`,
    /// `alice@example.com`, a webhook URL ending in `ID/TOKEN`) are refused
    /// wherever they stand: a server name, login or agent address that only
    /// documentation uses means the admin has not put their own there yet,
    /// and a trusted `mx.example.com` would let anyone who writes that
    /// header pose as an agent. See [`placeholder_in`].
    pub(super) fn placeholders(&mut self, root: &Section<'_>) {
        let mut found: Vec<(Span, String, &'static str)> = Vec::new();
        let mut string_at = |v: Option<&Spanned<DeValue<'_>>>, key: String, what: &'static str| {
            if let Some(v) = v
                && let DeValue::String(text) = v.get_ref()
                && placeholder_in(text).is_some()
            {
                found.push((v.span(), key, what));
            }
        };
        let table = |name: &str| match root.get(name).map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        for (section, keys) in [
            ("imap", &["host", "username"][..]),
            ("smtp", &["host", "username", "from"][..]),
        ] {
            if let Some(t) = table(section) {
                for key in keys {
                    string_at(t.get(*key), format!("{section}.{key}"), server_what(key));
                }
            }
        }
        if let Some(t) = table("helpdesk") {
            string_at(
                t.get("ticket_url"),
                "helpdesk.ticket_url".into(),
                "your help desk's ticket page",
            );
        }
        if let Some(t) = table("trust")
            && let Some(v) = t.get("authserv_ids")
            && let DeValue::Array(items) = v.get_ref()
        {
            for item in items.iter() {
                string_at(
                    Some(item),
                    "trust.authserv_ids".into(),
                    "the authserv-id that YOUR receiving mail server writes in Authentication-Results (or `[]` to trust no one)",
                );
            }
        }
        for (list, keys) in [
            ("departments", &["address", "agents"][..]),
            ("webhooks", &["url"][..]),
        ] {
            let Some(DeValue::Array(items)) = root.get(list).map(|v| v.get_ref()) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let DeValue::Table(t) = item.get_ref() else {
                    continue;
                };
                for key in keys {
                    // 0 first, as every other problem with a list entry
                    let path = format!("{list}[{i}].{key}");
                    match t.get(*key) {
                        Some(v) if matches!(v.get_ref(), DeValue::Array(_)) => {
                            if let DeValue::Array(values) = v.get_ref() {
                                for value in values.iter() {
                                    string_at(
                                        Some(value),
                                        path.clone(),
                                        "your agents' real addresses",
                                    );
                                }
                            }
                        }
                        v => string_at(
                            v,
                            path,
                            if *key == "url" {
                                "the endpoint's real URL (the chat service shows it when you create the webhook)"
                            } else {
                                "your department's real address"
                            },
                        ),
                    }
                }
            }
        }
        for (span, key, what) in found {
            let text = &self.text[span.clone()];
            let shown = text.trim_matches('"');
            let why = placeholder_in(shown).unwrap_or("a placeholder");
            self.report(
                Some(span),
                key,
                format!("placeholder `{shown}` left from a preset ({why})"),
                what,
            );
        }
    }
}

/// What to put in a server key instead of a placeholder.
fn server_what(key: &str) -> &'static str {
    match key {
        "host" => "your mail server's name",
        "username" => "your mailbox's login",
        _ => "your support address",
    }
}

/// Why `text` is a placeholder, if it is one: a name under the domains
/// that documentation uses (RFC 2606: `example.com`, `example.net`,
/// `example.org` and the `.example` top-level domain), or a webhook URL
/// whose credentials are still the preset's (`ID/TOKEN`, `T000/B000/XXXX`).
/// `.test` and `.invalid` are left to test set-ups.
pub fn placeholder_in(text: &str) -> Option<&'static str> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.contains("/id/token") || lower.contains("t000/b000/xxxx") {
        return Some("the webhook's ID and token are the preset's");
    }
    let host = match url::Url::parse(&lower) {
        Ok(u) if u.host_str().is_some() => u.host_str().unwrap_or_default().to_string(),
        _ => {
            // `Name <a@b>`, `a@b` or a bare host name
            let address = lower
                .rsplit_once('<')
                .map(|(_, a)| a.trim_end_matches('>'))
                .unwrap_or(&lower);
            address
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or(address)
                .to_string()
        }
    };
    let host = host.trim_end_matches('.');
    let documentation = ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || host == "example"
        || host.ends_with(".example");
    documentation.then_some("a domain reserved for documentation")
}
