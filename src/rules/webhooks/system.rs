//! `system.degraded` and `system.recovered` (issue 26): an endpoint that
//! opts in (`system_events = true`) is told when *another* endpoint is
//! paused (its circuit breaker opened) and when it answers again, so that
//! a broken receiver does not fail silently. Ticket events never carry
//! these; they are not tied to a ticket (the outbox files them under
//! ticket 0, so they too arrive in order).
//!
//! The generic JSON body is `{"id", "event", "occurred_at", "data"}` with
//! `data`: `{"component": "webhooks", "webhook": 1, "endpoint":
//! "https://crm.example.com/…", "failures": 5, "paused_until": "…",
//! "last_error": "…"}` (the endpoint without its path: Discord's and
//! Slack's tokens live there). Chat endpoints get a message in their shape.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lanes::Change;
use super::{Message, Part, make_event_id, render_discord, render_slack, render_teams};
use crate::domain::Priority;
use crate::settings::WebhookFormat;

/// The outbox files system events under this ticket id.
pub const NO_TICKET: i64 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEventKind {
    #[serde(rename = "system.degraded")]
    Degraded,
    #[serde(rename = "system.recovered")]
    Recovered,
}

impl SystemEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemEventKind::Degraded => "system.degraded",
            SystemEventKind::Recovered => "system.recovered",
        }
    }
}

/// What the event is about: one endpoint's lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointNotice {
    /// Always `webhooks`.
    pub component: String,
    /// The endpoint's place in the settings.
    pub webhook: usize,
    /// The endpoint without its path.
    pub endpoint: String,
    /// Consecutive failures (when paused), or how many there were (when
    /// recovered).
    pub failures: u32,
    pub paused_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One system event, stored in the outbox as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvent {
    pub id: String,
    pub event: SystemEventKind,
    pub occurred_at: DateTime<Utc>,
    pub data: EndpointNotice,
}

/// The event an endpoint's change of state makes. `endpoint` is already
/// fit for display; `random` draws the id.
pub fn notice(
    change: Change,
    webhook: usize,
    endpoint: &str,
    last_error: Option<&str>,
    now: DateTime<Utc>,
    random: u128,
) -> SystemEvent {
    let (event, failures, paused_until) = match change {
        Change::Paused { failures, until } => (SystemEventKind::Degraded, failures, Some(until)),
        Change::Resumed { after_failures } => (SystemEventKind::Recovered, after_failures, None),
    };
    SystemEvent {
        id: make_event_id(now, random),
        event,
        occurred_at: now,
        data: EndpointNotice {
            component: "webhooks".into(),
            webhook,
            endpoint: endpoint.into(),
            failures,
            paused_until,
            last_error: last_error.map(|e| e.chars().take(200).collect()),
        },
    }
}

/// Who is told about the endpoint at `about`: every other endpoint that
/// asked for system events. `endpoints`: `(url, system_events)` in the
/// settings' order.
pub fn recipients<'a>(endpoints: &[(&'a str, bool)], about: usize) -> Vec<&'a str> {
    endpoints
        .iter()
        .enumerate()
        .filter(|(i, (_, wants))| *wants && *i != about)
        .map(|(_, (url, _))| *url)
        .collect()
}

/// The body of a system event in an endpoint's shape (`Auto` resolved
/// first; here it means the generic JSON).
pub fn render(format: WebhookFormat, event: &SystemEvent) -> Value {
    match format {
        WebhookFormat::Auto | WebhookFormat::Json => json!({
            "id": event.id,
            "event": event.event.as_str(),
            "occurred_at": event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": event.data,
        }),
        WebhookFormat::Discord => render_discord(&message(event)),
        WebhookFormat::Slack => render_slack(&message(event)),
        WebhookFormat::Teams => render_teams(&message(event)),
    }
}

fn message(event: &SystemEvent) -> Message {
    let d = &event.data;
    let ours = |s: String| Part::Ours(s);
    let place = format!("webhooks[{}] ", d.webhook);
    let (summary, title, priority) = match event.event {
        SystemEventKind::Degraded => (
            vec![
                ours(format!("Webhook endpoint {place}(")),
                Part::Theirs(d.endpoint.clone()),
                ours(format!(
                    ") is paused after {} failures in a row: its events wait until it answers.",
                    d.failures
                )),
            ],
            "Guichet: a webhook endpoint is paused",
            Priority::Urgent,
        ),
        SystemEventKind::Recovered => (
            vec![
                ours(format!("Webhook endpoint {place}(")),
                Part::Theirs(d.endpoint.clone()),
                ours(format!(
                    ") answers again after {} failures: its waiting events are being delivered.",
                    d.failures
                )),
            ],
            "Guichet: a webhook endpoint answers again",
            Priority::Normal,
        ),
    };
    let mut fields = vec![
        ("Endpoint".to_string(), Part::Theirs(d.endpoint.clone())),
        (
            "Failures in a row".to_string(),
            ours(d.failures.to_string()),
        ),
    ];
    if let Some(until) = d.paused_until {
        fields.push((
            "Next try".to_string(),
            ours(until.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        ));
    }
    if let Some(error) = &d.last_error {
        fields.push(("Last error".to_string(), Part::Theirs(error.clone())));
    }
    Message {
        summary,
        title: vec![ours(title.to_string())],
        description: None,
        fields,
        url: None,
        footer: vec![
            ours(format!("{} · ", event.event.as_str())),
            Part::Theirs(event.id.clone()),
        ],
        ticket_id: NO_TICKET,
        priority,
        occurred_at: event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()
    }

    fn degraded() -> SystemEvent {
        notice(
            Change::Paused {
                failures: 5,
                until: t0() + chrono::Duration::seconds(30),
            },
            1,
            "https://crm.example.com/…",
            Some("HTTP 503: <b>@everyone</b> down"),
            t0(),
            7,
        )
    }

    #[test]
    fn a_pause_and_a_resume_make_their_events() {
        let e = degraded();
        assert_eq!(e.event, SystemEventKind::Degraded);
        assert!(e.id.starts_with("evt_"));
        assert_eq!(e.data.failures, 5);
        assert_eq!(
            e.data.paused_until,
            Some(t0() + chrono::Duration::seconds(30))
        );
        let r = notice(
            Change::Resumed { after_failures: 9 },
            1,
            "https://crm.example.com/…",
            None,
            t0(),
            8,
        );
        assert_eq!(
            (r.event, r.data.failures, r.data.paused_until),
            (SystemEventKind::Recovered, 9, None)
        );
        // long errors are cut
        let long = "x".repeat(1000);
        let cut = notice(
            Change::Resumed { after_failures: 1 },
            0,
            "e",
            Some(&long),
            t0(),
            1,
        );
        assert_eq!(cut.data.last_error.unwrap().len(), 200);
    }

    #[test]
    fn only_other_endpoints_that_asked_are_told() {
        let endpoints = [
            ("https://a", true),
            ("https://b", false),
            ("https://c", true),
        ];
        assert_eq!(recipients(&endpoints, 0), ["https://c"]);
        assert_eq!(recipients(&endpoints, 1), ["https://a", "https://c"]);
        assert_eq!(recipients(&endpoints, 2), ["https://a"]);
        assert!(recipients(&[("https://a", true)], 0).is_empty());
    }

    #[test]
    fn the_json_body_and_the_stored_form() {
        let e = degraded();
        let body = render(WebhookFormat::Json, &e);
        assert_eq!(body["event"], "system.degraded");
        assert_eq!(body["occurred_at"], "2026-03-01T09:30:00Z");
        assert_eq!(body["data"]["component"], "webhooks");
        assert_eq!(body["data"]["webhook"], 1);
        assert_eq!(body["data"]["endpoint"], "https://crm.example.com/…");
        assert_eq!(body["data"]["failures"], 5);
        assert!(body.get("ticket_id").is_none());
        let stored = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<SystemEvent>(&stored).unwrap(), e);
    }

    #[test]
    fn chat_shapes_escape_what_came_from_outside() {
        let e = degraded();
        let discord = render(WebhookFormat::Discord, &e);
        let text = discord.to_string();
        assert!(!text.contains("@everyone"), "{text}");
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        assert!(
            discord["content"]
                .as_str()
                .unwrap()
                .contains("is paused after 5 failures"),
            "{discord:#}"
        );
        let slack = render(WebhookFormat::Slack, &e).to_string();
        assert!(slack.contains("&lt;b&gt;"), "{slack}");
        assert!(!slack.contains("<b>"), "{slack}");
        let teams = render(WebhookFormat::Teams, &e);
        assert_eq!(teams["type"], "message");
        assert!(teams.to_string().contains("system.degraded"));
    }
}
