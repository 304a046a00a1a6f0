//! `[[webhooks]]`: each endpoint, its format, secret and events.

use super::*;

impl Checker<'_> {
    pub(super) fn webhooks(&mut self, root: &Section<'_>) -> Checked<Vec<WebhookSettings>> {
        let sections = self.table_list(root, "webhooks")?;
        let mut out: Vec<WebhookSettings> = Vec::new();
        let mut ok = true;
        for s in &sections {
            match self.webhook(s) {
                // the outbox knows an endpoint by its URL: a second entry
                // with the same URL would silently lose its format, filter
                // and secret
                Some(w) if out.iter().any(|o| o.url == w.url) => {
                    if let Some((_, span)) = self.required_string(s, "url", "") {
                        self.report(
                            Some(span),
                            s.key("url"),
                            "the same URL as an earlier [[webhooks]] entry",
                            "each endpoint once: one entry holds its format, events and secret",
                        );
                    }
                    ok = false;
                }
                Some(w) => out.push(w),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn webhook(&mut self, s: &Section<'_>) -> Checked<WebhookSettings> {
        self.known_keys(s, WEBHOOK_KEYS);
        let url_accepted =
            format!("an `https://` URL; plain `http://` only to a loopback host ({LOOPBACK})");
        let url = self
            .required_string(s, "url", &url_accepted)
            .and_then(|(text, span)| match check_webhook_url(text) {
                Ok(()) => Some(text.to_string()),
                Err(message) => {
                    self.report(Some(span), s.key("url"), message, &url_accepted);
                    None
                }
            });
        let format = self.choice(
            s,
            "format",
            &[
                ("auto", WebhookFormat::Auto),
                ("json", WebhookFormat::Json),
                ("discord", WebhookFormat::Discord),
                ("slack", WebhookFormat::Slack),
                ("teams", WebhookFormat::Teams),
            ],
            WebhookFormat::Auto,
            "format",
        );
        let events = self.events(s);
        let secret = match self.secret(s, "secret") {
            Err(()) => None,
            Ok(None) => Some(None),
            Ok(Some(secret)) => match check_webhook_secret(secret.value.expose()) {
                Ok(()) => Some(Some(secret)),
                Err(message) => {
                    let key = match secret.source {
                        SecretSource::Literal => "secret",
                        SecretSource::Env(_) => "secret_env",
                        SecretSource::File(_) => "secret_file",
                    };
                    self.report(
                        Some(secret.span),
                        s.key(key),
                        message,
                        "`whsec_` followed by base64 (Standard Webhooks), or any other text used as the key itself",
                    );
                    None
                }
            },
        };
        let timeout_seconds = self.int_in(
            s,
            "timeout_seconds",
            crate::settings::WEBHOOK_TIMEOUT_SECONDS as i64,
            1..=300,
            "a number of seconds from 1 to 300: the deadline of each attempt (connect, TLS, send, answer)",
        );
        let ca_file = self.ca_file(s);
        let system_events = self.boolean(s, "system_events", false);
        let (secret, secret_source) = match secret? {
            Some(s) => (Some(s.value), Some(s.source)),
            None => (None, None),
        };
        Some(WebhookSettings {
            url: url?,
            format: format?.0,
            events: events?,
            secret,
            secret_source,
            timeout_seconds: timeout_seconds? as u64,
            ca_file: ca_file?,
            system_events: system_events?,
        })
    }

    pub(super) fn events(&mut self, s: &Section<'_>) -> Checked<Vec<EventKind>> {
        let names: Vec<&str> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
        let accepted = format!(
            "a list of: {}; leave `events` out for all",
            names.join(", ")
        );
        let key = s.key("events");
        let Some(v) = s.get("events") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(v, key, "a list", &accepted, false);
            return None;
        };
        if items.is_empty() {
            self.report(Some(v.span()), key, "the list is empty", &accepted);
            return None;
        }
        let mut events = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let DeValue::String(text) = item.get_ref() else {
                self.wrong_type(item, key.clone(), "a string", &accepted, false);
                ok = false;
                continue;
            };
            match EventKind::ALL
                .iter()
                .find(|e| e.as_str().eq_ignore_ascii_case(text.trim()))
            {
                Some(e) if events.contains(e) => {}
                Some(e) => events.push(*e),
                None => {
                    self.report(
                        Some(item.span()),
                        key.clone(),
                        format!("unknown event `{text}`"),
                        &accepted,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(events)
    }
}
