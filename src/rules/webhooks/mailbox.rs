//! `mailbox.auth_failed` (issue 14): the mail server refused Guichet's
//! login and a new one will not come by itself (the OAuth2 refresh token
//! was revoked or expired, the provider refuses the app). Mail waits on
//! the server; the daemon keeps trying; an admin must act. Endpoints get
//! it as a system event (`system_events = true`, or naming it in `events`).
//!
//! The generic JSON body is `{"id", "event", "occurred_at", "data"}` with
//! `data`: `{"component": "mailbox", "mailbox": "imap", "account":
//! "support@example.com", "error": "…", "fix": "…"}`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::system::NO_TICKET;
use super::{Message, Part, make_event_id, render_discord, render_slack, render_teams};
use crate::domain::Priority;
use crate::settings::WebhookFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxEventKind {
    #[serde(rename = "mailbox.auth_failed")]
    AuthFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxNotice {
    /// Always `mailbox`.
    pub component: String,
    /// Which login: `imap` or `smtp` (or a `[[mailboxes]]` name).
    pub mailbox: String,
    pub account: String,
    pub error: String,
    /// What the admin should do.
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxEvent {
    pub id: String,
    pub event: MailboxEventKind,
    pub occurred_at: DateTime<Utc>,
    pub data: MailboxNotice,
}

pub fn auth_failed(
    mailbox: &str,
    account: &str,
    error: &str,
    fix: &str,
    now: DateTime<Utc>,
    random: u128,
) -> MailboxEvent {
    MailboxEvent {
        id: make_event_id(now, random),
        event: MailboxEventKind::AuthFailed,
        occurred_at: now,
        data: MailboxNotice {
            component: "mailbox".into(),
            mailbox: mailbox.into(),
            account: account.into(),
            error: error.chars().take(300).collect(),
            fix: fix.into(),
        },
    }
}

pub fn render(format: WebhookFormat, event: &MailboxEvent) -> Value {
    match format {
        WebhookFormat::Auto | WebhookFormat::Json => json!({
            "id": event.id,
            "event": "mailbox.auth_failed",
            "occurred_at": event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": event.data,
        }),
        WebhookFormat::Discord => render_discord(&message(event)),
        WebhookFormat::Slack => render_slack(&message(event)),
        WebhookFormat::Teams => render_teams(&message(event)),
    }
}

fn message(event: &MailboxEvent) -> Message {
    let d = &event.data;
    let ours = |s: &str| Part::Ours(s.to_string());
    Message {
        summary: vec![
            ours("Guichet cannot log in to the mailbox of "),
            Part::Theirs(d.account.clone()),
            ours(&format!(" ({}): mail waits on the server. ", d.mailbox)),
            ours(&d.fix),
        ],
        title: vec![ours("Guichet: mailbox login refused")],
        description: None,
        fields: vec![
            ("Account".to_string(), Part::Theirs(d.account.clone())),
            ("Error".to_string(), Part::Theirs(d.error.clone())),
            ("What to do".to_string(), Part::Ours(d.fix.clone())),
        ],
        url: None,
        footer: vec![
            ours("mailbox.auth_failed · "),
            Part::Theirs(event.id.clone()),
        ],
        ticket_id: NO_TICKET,
        priority: Priority::Urgent,
        occurred_at: event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_event_reads_back_and_renders_for_every_format() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap();
        let e = auth_failed(
            "imap",
            "s@x.com",
            "invalid_grant",
            "run `guichet oauth login`",
            t,
            7,
        );
        let stored = serde_json::to_string(&e).unwrap();
        let body = super::super::render_stored(WebhookFormat::Json, &stored, None).unwrap();
        assert_eq!(body["event"], "mailbox.auth_failed");
        assert_eq!(body["data"]["account"], "s@x.com");
        for f in [
            WebhookFormat::Slack,
            WebhookFormat::Discord,
            WebhookFormat::Teams,
        ] {
            let b = super::super::render_stored(f, &stored, None)
                .unwrap()
                .to_string();
            assert!(b.contains("guichet oauth login"), "{f:?}: {b}");
        }
    }
}
