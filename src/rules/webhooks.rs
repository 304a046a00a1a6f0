//! Webhook messages as pure data: which shape an endpoint gets (generic
//! JSON, Discord, Slack, Microsoft Teams), and the body of one event in that
//! shape, escaped for its target and cut to the target's documented limits.
//! The Standard Webhooks signature lives in [`signing`], the retry policy in
//! [`retry`], each endpoint's lane and circuit breaker in [`lanes`], the
//! `system.degraded` / `system.recovered` events in [`system`]. No I/O and no clock: the caller passes the event, its time and
//! its stable id.
//!
//! Escaping, per target:
//! - Discord and Teams render Markdown: every Markdown character a customer
//!   types is backslash-escaped, and so are list markers at a line start.
//!   Discord also gets `allowed_mentions: {"parse": []}`, so nothing pings.
//! - Slack: `&`, `<` and `>` become entities (Slack's rule: `<!channel>` and
//!   `<http://…|x>` cannot be forged) and customer text only goes into
//!   `plain_text` objects, which Slack never formats.
//! - Everywhere: `@everyone`, `@here` and `@channel` get a zero-width space
//!   after the `@`; control and bidi-override characters are dropped.
//!
//! Text is cut on whole escaped units (an escape is never split from its
//! character), and a cut text ends with `…`.

pub mod lanes;
pub mod mailbox;
pub mod retry;
pub mod signing;
pub mod system;

pub use retry::{Answer, classify, endpoint_unavailable, is_dead, next_delay};
pub use signing::{headers, sign};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::{EventKind, Fault, Priority, TicketStatus};
use crate::settings::WebhookFormat;

/// The seed's fields of a ticket, as they were when the event happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    pub ticket_id: i64,
    pub subject: String,
    pub department: String,
    pub priority: Priority,
    pub client: String,
    pub status: TicketStatus,
}

/// One event, made once by the caller and stored in the outbox: its `id`
/// is the `webhook-id` of every attempt, so receivers can drop duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Stable, e.g. from [`make_event_id`]: `evt_` + 26 characters.
    pub id: String,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    pub ticket: TicketSnapshot,
    /// The event's own data, e.g. `{"reason": "inactivity"}`,
    /// `{"from": "a@b.c", "text_excerpt": "…"}`,
    /// `{"filename", "size", "sniffed_type", "reason"}`,
    /// `{"from_department", "to_department"}`, `{"linked_ticket_id": 12}`.
    /// Known keys get a label in chat messages; others are shown as they are.
    pub data: Value,
}

/// An event about Guichet itself (`system.degraded`, `system.recovered`),
/// about no ticket. It is made when the store cannot write, so it is sent
/// from memory, at most once per change of state, never queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvent {
    pub id: String,
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    /// `fault` (stable code), `cause` (words), `since`; once recovered
    /// also `until` and `duration_seconds`.
    pub data: Value,
}

/// `system.degraded` (intake paused by `fault` since `since`), or with
/// `recovered_at`, `system.recovered`.
pub fn system_event(
    fault: Fault,
    since: DateTime<Utc>,
    recovered_at: Option<DateTime<Utc>>,
    random: u128,
) -> SystemEvent {
    let now = recovered_at.unwrap_or(since);
    let mut data = json!({
        "fault": fault.code(),
        "cause": fault.describe(),
        "since": timestamp(since),
    });
    let kind = match recovered_at {
        None => EventKind::SystemDegraded,
        Some(until) => {
            data["until"] = json!(timestamp(until));
            data["duration_seconds"] = json!((until - since).num_seconds().max(0));
            EventKind::SystemRecovered
        }
    };
    SystemEvent {
        id: make_event_id(now, random),
        kind,
        occurred_at: now,
        data,
    }
}

/// The body of a system event in `format`. The generic JSON has the
/// event's `id`, `event`, `occurred_at` and `data` (no ticket fields);
/// the chat formats say "Guichet cannot store mail: disk full since
/// 03:12 UTC" and, once it is over, "Guichet stores mail again".
pub fn render_system(format: WebhookFormat, event: &SystemEvent) -> Value {
    match format {
        WebhookFormat::Auto | WebhookFormat::Json => json!({
            "id": event.id,
            "event": event.kind.as_str(),
            "occurred_at": timestamp(event.occurred_at),
            "data": event.data,
        }),
        WebhookFormat::Discord => render_discord(&Message::system(event)),
        WebhookFormat::Slack => render_slack(&Message::system(event)),
        WebhookFormat::Teams => render_teams(&Message::system(event)),
    }
}

/// "disk full since 03:12 UTC" from a system event's data.
fn system_summary(kind: EventKind, data: &Value) -> String {
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or("");
    let cause = match text("cause") {
        "" => "a store fault",
        cause => cause,
    };
    let clock = |key: &str| {
        DateTime::parse_from_rfc3339(text(key))
            .map(|t| t.with_timezone(&Utc).format("%H:%M UTC").to_string())
            .unwrap_or_else(|_| "?".into())
    };
    match kind {
        EventKind::SystemRecovered => format!(
            "Guichet stores mail again: {cause} from {} to {}",
            clock("since"),
            clock("until")
        ),
        _ => format!(
            "Guichet cannot store mail: {cause} since {}",
            clock("since")
        ),
    }
}

/// A duration for people: `45 s`, `12 min`, `3 h 05 min`.
fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// A new event id: `evt_` and a ULID (48 bits of milliseconds, 80 random
/// bits, Crockford base32), so ids sort by time. `random`'s low 80 bits are
/// used; the caller draws them (`rand::random()`).
pub fn make_event_id(now: DateTime<Utc>, random: u128) -> String {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = now.timestamp_millis().clamp(0, (1 << 48) - 1) as u128;
    let value = (millis << 80) | (random & ((1u128 << 80) - 1));
    let mut id = String::with_capacity(30);
    id.push_str("evt_");
    for i in (0..26).rev() {
        id.push(CROCKFORD[((value >> (i * 5)) & 0x1f) as usize] as char);
    }
    id
}

/// The event `guichet webhook test` sends: the seed's example ticket 123,
/// marked `"test": true` in its data.
pub fn demo_event(now: DateTime<Utc>) -> Event {
    Event {
        id: make_event_id(now, u128::from(now.timestamp_subsec_nanos())),
        kind: EventKind::TicketCreated,
        occurred_at: now,
        ticket: TicketSnapshot {
            ticket_id: 123,
            subject: "Problème de connexion".into(),
            department: "Technique".into(),
            priority: Priority::High,
            client: "client@example.com".into(),
            status: TicketStatus::Open,
        },
        data: json!({
            "test": true,
            "from": "client@example.com",
            "text_excerpt": "This is a test event sent by `guichet webhook test`. No ticket was changed.",
        }),
    }
}

/// The shape an endpoint gets. A configured format wins; `auto` looks at
/// the host: Discord's webhook API, Slack's incoming webhooks, and the Teams
/// Workflows hosts (Power Automate / Logic Apps, old Office connectors);
/// anything else gets the generic JSON.
pub fn resolve_format(configured: WebhookFormat, url: &str) -> WebhookFormat {
    if configured != WebhookFormat::Auto {
        return configured;
    }
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return WebhookFormat::Json;
    };
    let Some(host) = parsed.host_str() else {
        return WebhookFormat::Json;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let within = |domain: &str| {
        host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    let path = parsed.path();
    if (within("discord.com") || within("discordapp.com"))
        && path.starts_with("/api/")
        && path.contains("/webhooks/")
    {
        WebhookFormat::Discord
    } else if host == "hooks.slack.com" {
        WebhookFormat::Slack
    } else if within("webhook.office.com")
        || within("logic.azure.com")
        || within("powerplatform.com")
    {
        WebhookFormat::Teams
    } else {
        WebhookFormat::Json
    }
}

/// SPEC.md: `https://` only, plain `http://` only to a loopback address
/// (`localhost`, 127.0.0.0/8, `::1`) for tests. The error never repeats the
/// URL's path, where Discord and Slack keep their tokens.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url.trim())
        .map_err(|e| format!("`{}` is not a valid URL ({e})", display_url(url)))?;
    let host = parsed
        .host()
        .ok_or_else(|| format!("`{}` has no host", display_url(url)))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{}` must use https:// (plain http:// is accepted only to a loopback address)",
                    display_url(url)
                ))
            }
        }
        other => Err(format!(
            "`{}`: scheme `{other}` is not accepted, use https://",
            display_url(url)
        )),
    }
}

/// A URL fit for logs and error messages: scheme, host and port, with the
/// path, query and credentials (where webhook tokens live) replaced by `…`.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = u.path() != "/" || u.query().is_some() || !u.username().is_empty();
            format!(
                "{}://{host}{port}/{}",
                u.scheme(),
                if hidden { "…" } else { "" }
            )
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// The ticket's link from the `ticket_url` template (`{id}` replaced), if
/// it makes a valid http(s) URL: Discord refuses a whole message over a bad
/// embed URL, so a broken template drops the link rather than the event.
pub fn ticket_link(template: Option<&str>, ticket_id: i64) -> Option<String> {
    let filled = template?.trim().replace("{id}", &ticket_id.to_string());
    let parsed = url::Url::parse(&filled).ok()?;
    matches!(parsed.scheme(), "https" | "http").then(|| parsed.to_string())
}

/// What the webhook outbox stores: a ticket's event, or a system event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Stored {
    Ticket(Event),
    System(system::SystemEvent),
    Mailbox(mailbox::MailboxEvent),
    /// `customer.erased` (issue 24): counts, never who.
    Audit(SystemEvent),
}

/// The body of a stored event in `format` (see [`render`] and
/// [`system::render`]).
pub fn render_stored(
    format: WebhookFormat,
    payload: &str,
    ticket_url_template: Option<&str>,
) -> Result<Value, String> {
    match serde_json::from_str::<Stored>(payload) {
        Ok(Stored::Ticket(event)) => Ok(render(format, &event, ticket_url_template)),
        Ok(Stored::System(event)) => Ok(system::render(format, &event)),
        Ok(Stored::Mailbox(event)) => Ok(mailbox::render(format, &event)),
        Ok(Stored::Audit(event)) => Ok(render_system(format, &event)),
        Err(e) => Err(format!("unreadable event in the webhook outbox: {e}")),
    }
}

/// The body for `event` in `format` (`Auto` should be resolved first with
/// [`resolve_format`]; here it means the generic JSON).
pub fn render(format: WebhookFormat, event: &Event, ticket_url_template: Option<&str>) -> Value {
    let url = ticket_link(ticket_url_template, event.ticket.ticket_id);
    match format {
        WebhookFormat::Auto | WebhookFormat::Json => render_json(event, url),
        WebhookFormat::Discord => render_discord(&Message::of(event, url)),
        WebhookFormat::Slack => render_slack(&Message::of(event, url)),
        WebhookFormat::Teams => render_teams(&Message::of(event, url)),
    }
}

/// RFC 3339, UTC, whole seconds: `2026-03-01T09:30:00Z`.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn render_json(event: &Event, url: Option<String>) -> Value {
    let t = &event.ticket;
    let mut body = json!({
        "id": event.id,
        "event": event.kind.as_str(),
        "occurred_at": timestamp(event.occurred_at),
        "ticket_id": t.ticket_id,
        "subject": t.subject,
        "department": t.department,
        "priority": t.priority.as_str(),
        "client": t.client,
        "status": t.status.as_str(),
        "data": event.data,
    });
    if let Some(url) = url {
        body["url"] = Value::String(url);
    }
    body
}

// ---------------------------------------------------------------------------
// The chat message, before it is escaped for one target.

/// A piece of a line: our own words, or text that came from outside
/// (a customer's subject, a file name) and must be escaped.
enum Part {
    Ours(String),
    Theirs(String),
}

/// What every chat shape shows, in plain (unescaped) text.
struct Message {
    /// One line saying what happened: "New ticket #123: subject".
    summary: Vec<Part>,
    /// "Ticket #123 · subject".
    title: Vec<Part>,
    /// The message excerpt, if the event has one.
    description: Option<String>,
    /// (label, value): the ticket's fields, then the event's data. Labels
    /// are ours; values built from numbers, booleans and our enums too.
    fields: Vec<(String, Part)>,
    url: Option<String>,
    /// "ticket.created · evt_…" (the id is the caller's: escaped).
    footer: Vec<Part>,
    ticket_id: i64,
    priority: Priority,
    occurred_at: String,
}

/// Data keys with a label, in display order. `text_excerpt` is the
/// description, not a field.
const KNOWN_DATA: &[(&str, &str)] = &[
    ("from", "From"),
    ("to", "Recipient"),
    ("from_department", "From department"),
    ("to_department", "To department"),
    ("filename", "File"),
    ("size", "Size"),
    ("declared_type", "Declared type"),
    ("sniffed_type", "Detected type"),
    ("reason", "Reason"),
    ("linked_ticket_id", "Linked ticket"),
    ("count", "Files"),
];
/// Data keys shown in the summary, not as fields.
const SUMMARY_KEYS: &[&str] = &["files"];
const EXCERPT_KEY: &str = "text_excerpt";

impl Message {
    fn of(event: &Event, url: Option<String>) -> Message {
        let t = &event.ticket;
        let id = t.ticket_id;
        let subject = if t.subject.trim().is_empty() {
            "(no subject)".to_string()
        } else {
            t.subject.clone()
        };
        let data_str = |key: &str| {
            event
                .data
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let ours = |s: String| Part::Ours(s);
        let summary = match event.kind {
            EventKind::TicketCreated => vec![
                ours(format!("New ticket #{id}: ")),
                Part::Theirs(subject.clone()),
            ],
            EventKind::TicketReplied => vec![
                ours(format!("Customer reply on ticket #{id}: ")),
                Part::Theirs(subject.clone()),
            ],
            EventKind::TicketClosed => {
                let mut parts = match data_str("reason").as_deref() {
                    Some("inactivity") => {
                        vec![ours(format!("Ticket #{id} closed for inactivity: "))]
                    }
                    Some("resolved") => vec![ours(format!("Ticket #{id} resolved: "))],
                    Some("agent") => vec![ours(format!("Ticket #{id} closed by an agent: "))],
                    Some(other) => vec![
                        ours(format!("Ticket #{id} closed, ")),
                        Part::Theirs(other.to_string()),
                        ours(": ".into()),
                    ],
                    None => vec![ours(format!("Ticket #{id} closed: "))],
                };
                parts.push(Part::Theirs(subject.clone()));
                parts
            }
            EventKind::TicketReopened => vec![
                ours(format!("Ticket #{id} reopened: ")),
                Part::Theirs(subject.clone()),
            ],
            EventKind::TicketEscalated => match data_str("to_department") {
                Some(to) => vec![
                    ours(format!("Ticket #{id} moved to ")),
                    Part::Theirs(to),
                    ours(": ".into()),
                    Part::Theirs(subject.clone()),
                ],
                None => vec![
                    ours(format!("Ticket #{id} escalated: ")),
                    Part::Theirs(subject.clone()),
                ],
            },
            EventKind::AttachmentUploaded | EventKind::AttachmentRejected
                if files_count(&event.data) > 1 =>
            {
                let verb = if event.kind == EventKind::AttachmentUploaded {
                    "received"
                } else {
                    "refused"
                };
                let mut parts = vec![ours(format!(
                    "{} files {verb} on ticket #{id}: ",
                    files_count(&event.data)
                ))];
                parts.push(Part::Theirs(files_names(&event.data)));
                parts
            }
            EventKind::AttachmentUploaded => match data_str("filename") {
                Some(name) => vec![
                    ours("File ".into()),
                    Part::Theirs(name),
                    ours(format!(" received on ticket #{id}")),
                ],
                None => vec![ours(format!("File received on ticket #{id}"))],
            },
            EventKind::AttachmentRejected => {
                let mut parts = match data_str("filename") {
                    Some(name) => vec![
                        ours("File ".into()),
                        Part::Theirs(name),
                        ours(format!(" refused on ticket #{id}")),
                    ],
                    None => vec![ours(format!("File refused on ticket #{id}"))],
                };
                if let Some(reason) = data_str("reason") {
                    parts.push(ours(": ".into()));
                    parts.push(Part::Theirs(reason));
                }
                parts
            }
            EventKind::MailFailed => match data_str("to") {
                Some(to) => vec![
                    ours(format!("Mail of ticket #{id} not delivered to ")),
                    Part::Theirs(to),
                    ours(": ".into()),
                    Part::Theirs(subject.clone()),
                ],
                None => vec![
                    ours(format!("Mail of ticket #{id} not delivered: ")),
                    Part::Theirs(subject.clone()),
                ],
            },
            EventKind::SystemDegraded
            | EventKind::SystemRecovered
            | EventKind::MailboxAuthFailed
            | EventKind::CustomerErased => {
                vec![Part::Theirs(system_summary(event.kind, &event.data))]
            }
        };

        let mut fields = vec![
            ("Department".to_string(), Part::Theirs(t.department.clone())),
            (
                "Priority".to_string(),
                Part::Ours(t.priority.as_str().to_string()),
            ),
            (
                "Status".to_string(),
                Part::Ours(t.status.as_str().replace('_', " ")),
            ),
            ("Client".to_string(), Part::Theirs(t.client.clone())),
        ];
        let data = event.data.as_object().cloned().unwrap_or_default();
        for (key, label) in KNOWN_DATA {
            if let Some(value) = data.get(*key).and_then(|v| data_value(key, v)) {
                fields.push((label.to_string(), value));
            }
        }
        for (key, v) in &data {
            let known = KNOWN_DATA.iter().any(|(k, _)| k == key)
                || key == EXCERPT_KEY
                || SUMMARY_KEYS.contains(&key.as_str());
            if !known && let Some(value) = data_value(key, v) {
                fields.push((data_label(key), value));
            }
        }

        Message {
            summary,
            title: vec![ours(format!("Ticket #{id} · ")), Part::Theirs(subject)],
            description: data_str(EXCERPT_KEY),
            fields,
            url,
            footer: vec![
                Part::Ours(format!("{} · ", event.kind.as_str())),
                Part::Theirs(event.id.clone()),
            ],
            ticket_id: id,
            priority: t.priority,
            occurred_at: timestamp(event.occurred_at),
        }
    }
}

impl Message {
    /// The chat message of a system event: no ticket, no link; the fault
    /// and its times as fields, red while degraded.
    fn system(event: &SystemEvent) -> Message {
        if event.kind == EventKind::CustomerErased {
            return Message::erased(event);
        }
        let text = |key: &str| {
            event
                .data
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let degraded = event.kind != EventKind::SystemRecovered;
        let mut fields = vec![
            ("Cause".to_string(), Part::Ours(text("cause"))),
            ("Since".to_string(), Part::Ours(text("since"))),
        ];
        if !degraded {
            fields.push(("Until".to_string(), Part::Ours(text("until"))));
            if let Some(s) = event.data.get("duration_seconds").and_then(Value::as_i64) {
                fields.push(("Duration".to_string(), Part::Ours(human_duration(s))));
            }
        }
        Message {
            summary: vec![Part::Ours(system_summary(event.kind, &event.data))],
            title: vec![Part::Ours(
                if degraded {
                    "Guichet · intake paused"
                } else {
                    "Guichet · intake resumed"
                }
                .into(),
            )],
            description: degraded.then(|| {
                "New mail waits in the mailbox, untouched; it is taken as soon as the store \
                 accepts writes again."
                    .to_string()
            }),
            fields,
            url: None,
            footer: vec![
                Part::Ours(format!("{} · ", event.kind.as_str())),
                Part::Theirs(event.id.clone()),
            ],
            ticket_id: 0,
            priority: if degraded {
                Priority::Urgent
            } else {
                Priority::Normal
            },
            occurred_at: timestamp(event.occurred_at),
        }
    }
}

impl Message {
    /// `customer.erased`: what went, in numbers; never who.
    fn erased(event: &SystemEvent) -> Message {
        let fields = event
            .data
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (data_label(k), Part::Ours(v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Message {
            summary: vec![Part::Ours(
                "A person's data was erased at their request".into(),
            )],
            title: vec![Part::Ours("Guichet · personal data erased".into())],
            description: None,
            fields,
            url: None,
            footer: vec![
                Part::Ours(format!("{} · ", event.kind.as_str())),
                Part::Theirs(event.id.clone()),
            ],
            ticket_id: 0,
            priority: Priority::Normal,
            occurred_at: timestamp(event.occurred_at),
        }
    }
}

/// `text_excerpt` → "Text excerpt": the label of a data key we do not know.
fn data_label(key: &str) -> String {
    let spaced = key.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A data value as chat text; `None` for null and empty strings. Only
/// strings (and structures holding them) come from outside.
fn data_value(key: &str, v: &Value) -> Option<Part> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(Part::Theirs(s.clone())),
        Value::Bool(b) => Some(Part::Ours(if *b { "yes" } else { "no" }.into())),
        Value::Number(n) if key == "size" => Some(Part::Ours(
            n.as_u64().map(human_size).unwrap_or_else(|| n.to_string()),
        )),
        Value::Number(n) if key == "linked_ticket_id" => Some(Part::Ours(format!("#{n}"))),
        Value::Number(n) => Some(Part::Ours(n.to_string())),
        other => Some(Part::Theirs(other.to_string())),
    }
}

/// Bytes in the units of `max_size_mb` (MiB): `48213` → `47.1 KiB`.
fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes < KIB {
        format!("{bytes} bytes")
    } else if bytes < MIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

// ---------------------------------------------------------------------------
// Escaping and cutting.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Discord,
    Slack,
    Teams,
}

/// Escaped text as indivisible units (a character with its escape, a
/// neutralised mention, an entity), so that cutting to a limit never
/// splits an escape.
#[derive(Default, Clone)]
struct Units(Vec<String>);

impl Units {
    fn ours(mut self, s: &str) -> Self {
        self.0.extend(s.chars().map(String::from));
        self
    }

    fn theirs(mut self, raw: &str, target: Target, multiline: bool) -> Self {
        self.0.extend(escape_units(raw, target, multiline));
        self
    }

    fn part(self, part: &Part, target: Target) -> Self {
        match part {
            Part::Ours(s) => self.ours(s),
            Part::Theirs(s) => self.theirs(s, target, false),
        }
    }

    fn parts(parts: &[Part], target: Target) -> Self {
        parts
            .iter()
            .fold(Units::default(), |u, p| u.part(p, target))
    }

    /// At most `max` characters; a cut text ends with `…`.
    fn fit(&self, max: usize) -> String {
        let total: usize = self.0.iter().map(|u| u.chars().count()).sum();
        if total <= max {
            return self.0.concat();
        }
        if max == 0 {
            return String::new();
        }
        let mut out = String::new();
        let mut used = 0;
        for unit in &self.0 {
            let n = unit.chars().count();
            if used + n > max - 1 {
                break;
            }
            out.push_str(unit);
            used += n;
        }
        let mut out = out.trim_end().to_string();
        out.push('…');
        out
    }
}

fn escaped(raw: &str, target: Target, multiline: bool) -> Units {
    Units::default().theirs(raw, target, multiline)
}

/// Drops control and bidi-override characters; single-line text gets
/// spaces for line breaks and tabs; runs of blank lines shrink to one.
fn clean(raw: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.replace("\r\n", "\n").chars() {
        match c {
            '\n' | '\r' if multiline => out.push('\n'),
            '\n' | '\r' | '\t' => out.push(' '),
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim().to_string()
}

/// Characters that format text in Discord's and Teams' Markdown.
const MARKDOWN_SPECIAL: &[char] = &[
    '\\', '*', '_', '~', '`', '|', '>', '<', '#', '[', ']', '(', ')',
];
/// Mass mentions (Discord `@everyone`/`@here`, Slack `@channel`/`@here`).
const MASS_MENTIONS: &[&str] = &["everyone", "here", "channel"];

fn escape_units(raw: &str, target: Target, multiline: bool) -> Vec<String> {
    let chars: Vec<char> = clean(raw, multiline).chars().collect();
    let mut units = Vec::with_capacity(chars.len());
    let mut line_start = true;
    // The line so far is spaces then digits: a `.` now would make a list.
    let mut in_number = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '@'
            && let Some(word) = MASS_MENTIONS
                .iter()
                .find(|w| starts_with_ci(&chars[i + 1..], w))
        {
            let mut unit = String::from("@\u{200B}");
            unit.extend(&chars[i + 1..i + 1 + word.len()]);
            units.push(unit);
            i += 1 + word.len();
            line_start = false;
            in_number = false;
            continue;
        }
        let unit = match target {
            Target::Slack => match c {
                '&' => "&amp;".to_string(),
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                c => c.to_string(),
            },
            Target::Discord | Target::Teams => {
                if MARKDOWN_SPECIAL.contains(&c)
                    || (line_start && (c == '-' || c == '+'))
                    || (c == '.' && in_number)
                {
                    format!("\\{c}")
                } else if target == Target::Teams && c == '\n' {
                    // A TextBlock needs a blank line to break a line.
                    "\n\n".to_string()
                } else if target == Target::Teams && c == '{' && chars.get(i + 1) == Some(&'{') {
                    // `{{DATE(…)}}` is a function in Adaptive Cards.
                    "{\u{200B}".to_string()
                } else {
                    c.to_string()
                }
            }
        };
        units.push(unit);
        in_number = (line_start || in_number) && c.is_ascii_digit();
        line_start = c == '\n' || (line_start && c == ' ');
        i += 1;
    }
    units
}

fn starts_with_ci(chars: &[char], word: &str) -> bool {
    chars.len() >= word.len()
        && chars
            .iter()
            .zip(word.chars())
            .all(|(a, b)| a.eq_ignore_ascii_case(&b))
}

fn count(s: &str) -> usize {
    s.chars().count()
}

// ---------------------------------------------------------------------------
// Discord: https://discord.com/developers/docs/resources/webhook (execute)
// and the embed limits of docs/resources/message.

const DISCORD_CONTENT: usize = 2000;
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
const DISCORD_FIELDS: usize = 25;
const DISCORD_FIELD_NAME: usize = 256;
const DISCORD_FIELD_VALUE: usize = 1024;
const DISCORD_FOOTER: usize = 2048;
const DISCORD_EMBED_TOTAL: usize = 6000;

fn discord_color(p: Priority) -> u32 {
    match p {
        Priority::Low => 0x95A5A6,
        Priority::Normal => 0x3498DB,
        Priority::High => 0xE67E22,
        Priority::Urgent => 0xE74C3C,
    }
}

fn render_discord(m: &Message) -> Value {
    let t = Target::Discord;
    let content = Units::parts(&m.summary, t).fit(DISCORD_CONTENT);
    let title = Units::parts(&m.title, t).fit(DISCORD_TITLE);
    let footer = Units::parts(&m.footer, t).fit(DISCORD_FOOTER);
    let mut fields: Vec<(String, String)> = m
        .fields
        .iter()
        .take(DISCORD_FIELDS)
        .map(|(name, value)| {
            let value = Units::default().part(value, t).fit(DISCORD_FIELD_VALUE);
            // Discord refuses an empty field value.
            let value = if value.is_empty() {
                "-".to_string()
            } else {
                value
            };
            (Units::default().ours(name).fit(DISCORD_FIELD_NAME), value)
        })
        .collect();
    let description_units = m.description.as_deref().map(|d| escaped(d, t, true));
    let mut description = description_units
        .as_ref()
        .map(|u| u.fit(DISCORD_DESCRIPTION));

    // The embed's characters all count towards 6000: the description gives
    // way first, then the last fields.
    let fixed = |fields: &[(String, String)]| {
        count(&title)
            + count(&footer)
            + fields
                .iter()
                .map(|(n, v)| count(n) + count(v))
                .sum::<usize>()
    };
    let desc_len = description.as_deref().map(count).unwrap_or(0);
    if fixed(&fields) + desc_len > DISCORD_EMBED_TOTAL {
        let room = DISCORD_EMBED_TOTAL.saturating_sub(fixed(&fields));
        description = description_units
            .as_ref()
            .map(|u| u.fit(room.min(DISCORD_DESCRIPTION)))
            .filter(|d| !d.is_empty());
        while fixed(&fields) > DISCORD_EMBED_TOTAL && !fields.is_empty() {
            fields.pop();
        }
    }

    let mut embed = Map::new();
    embed.insert("title".into(), json!(title));
    if let Some(d) = description {
        embed.insert("description".into(), json!(d));
    }
    if let Some(url) = &m.url {
        embed.insert("url".into(), json!(url));
    }
    embed.insert("color".into(), json!(discord_color(m.priority)));
    embed.insert(
        "fields".into(),
        Value::Array(
            fields
                .into_iter()
                .map(|(name, value)| {
                    let inline = count(&value) <= 40;
                    json!({"name": name, "value": value, "inline": inline})
                })
                .collect(),
        ),
    );
    embed.insert("footer".into(), json!({"text": footer}));
    embed.insert("timestamp".into(), json!(m.occurred_at));
    json!({
        "content": content,
        "allowed_mentions": {"parse": []},
        "embeds": [Value::Object(embed)],
    })
}

// ---------------------------------------------------------------------------
// Slack: incoming webhooks with Block Kit (header 150, section text 3000,
// section fields 10 × 2000, 50 blocks).

const SLACK_TEXT: usize = 3000;
const SLACK_HEADER: usize = 150;
const SLACK_FIELDS_PER_SECTION: usize = 10;
const SLACK_FIELD: usize = 2000;
const SLACK_BLOCKS: usize = 50;

fn plain(text: String) -> Value {
    json!({"type": "plain_text", "text": text})
}

fn render_slack(m: &Message) -> Value {
    let t = Target::Slack;
    let summary = Units::parts(&m.summary, t);
    let mut blocks = vec![
        json!({"type": "header", "text": plain(Units::parts(&m.title, t).fit(SLACK_HEADER))}),
        json!({"type": "section", "text": plain(summary.fit(SLACK_TEXT))}),
    ];
    if let Some(d) = &m.description {
        blocks.push(json!({"type": "section", "text": plain(escaped(d, t, true).fit(SLACK_TEXT))}));
    }
    // Room for the context block at the end.
    let max_field_sections = SLACK_BLOCKS - blocks.len() - 1;
    for chunk in m
        .fields
        .chunks(SLACK_FIELDS_PER_SECTION)
        .take(max_field_sections)
    {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(label, value)| {
                plain(
                    Units::default()
                        .ours(label)
                        .ours(": ")
                        .part(value, t)
                        .fit(SLACK_FIELD),
                )
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let footer = Units::parts(&m.footer, t).fit(SLACK_TEXT);
    let context = match &m.url {
        Some(url) => json!({"type": "mrkdwn", "text": format!(
            "<{}|Open ticket #{}> · {footer}",
            slack_link_target(url),
            m.ticket_id
        )}),
        None => plain(footer),
    };
    blocks.push(json!({"type": "context", "elements": [context]}));
    json!({"text": summary.fit(SLACK_TEXT), "blocks": blocks})
}

/// A URL inside Slack's `<url|label>`: `|`, `<` and `>` would end it early,
/// so they are percent-encoded; `&` is an entity, as everywhere in Slack.
fn slack_link_target(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

// ---------------------------------------------------------------------------
// Microsoft Teams: a Workflows ("Post to a channel when a webhook request is
// received") message carrying an Adaptive Card 1.4. Teams refuses messages
// over about 28 KB, so texts are kept well under that.

const TEAMS_TITLE: usize = 256;
const TEAMS_SUMMARY: usize = 1000;
const TEAMS_DESCRIPTION: usize = 2000;
const TEAMS_FACTS: usize = 12;
const TEAMS_FACT_TITLE: usize = 64;
const TEAMS_FACT_VALUE: usize = 256;

fn teams_color(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Default",
        Priority::Normal => "Accent",
        Priority::High => "Warning",
        Priority::Urgent => "Attention",
    }
}

fn render_teams(m: &Message) -> Value {
    let t = Target::Teams;
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": Units::parts(&m.title, t).fit(TEAMS_TITLE),
            "weight": "Bolder",
            "size": "Medium",
            "color": teams_color(m.priority),
            "wrap": true,
        }),
        json!({"type": "TextBlock", "text": Units::parts(&m.summary, t).fit(TEAMS_SUMMARY), "wrap": true}),
    ];
    if let Some(d) = &m.description {
        body.push(json!({"type": "TextBlock", "text": escaped(d, t, true).fit(TEAMS_DESCRIPTION), "wrap": true}));
    }
    let facts: Vec<Value> = m
        .fields
        .iter()
        .take(TEAMS_FACTS)
        .map(|(label, value)| {
            json!({
                "title": Units::default().ours(label).fit(TEAMS_FACT_TITLE),
                "value": Units::default().part(value, t).fit(TEAMS_FACT_VALUE),
            })
        })
        .collect();
    body.push(json!({"type": "FactSet", "facts": facts}));
    body.push(json!({
        "type": "TextBlock",
        "text": Units::parts(&m.footer, t).fit(TEAMS_TITLE),
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    });
    if let Some(url) = &m.url {
        card["actions"] = json!([{
            "type": "Action.OpenUrl",
            "title": format!("Open ticket #{}", m.ticket_id),
            "url": url,
        }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests;

/// How many files one attachment event is about (`count`; 1 for events
/// about one file, which carry no count).
fn files_count(data: &Value) -> u64 {
    data.get("count").and_then(Value::as_u64).unwrap_or(1)
}

/// The first names of an attachment event's `files`, with how many more.
fn files_names(data: &Value) -> String {
    const SHOWN: usize = 5;
    let names: Vec<&str> = data
        .get("files")
        .and_then(Value::as_array)
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.get("filename").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let count = files_count(data) as usize;
    let mut text = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if count > SHOWN.min(names.len()) {
        text.push_str(&format!(" and {} more", count - SHOWN.min(names.len())));
    }
    text
}
