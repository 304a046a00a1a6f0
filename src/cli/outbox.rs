//! `guichet outbox [--json]`: what waits to be sent, and each webhook
//! endpoint's lane: healthy, failing, or paused (its circuit breaker open),
//! with its backlog and last error. URLs are shown without their path
//! (Discord's and Slack's tokens). Every waiting or given-up item is
//! listed with its id (`m12` a mail, `w34` a webhook delivery), next
//! attempt and last error; `outbox retry ID|--all` and `outbox drop ID`
//! act on them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::rules::webhooks::{
    self,
    lanes::{Health, State},
};
use crate::settings::Settings;
use crate::store::queues::{QueuedMailRow, QueuedWebhookRow, Which};
use crate::store::{EndpointBacklogRow, EndpointHealthRow, Store};

use super::Failure;

/// One endpoint as `outbox` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    /// Its place in the settings; `None`: no longer there (its events are
    /// given up when the daemon next starts).
    pub webhook: Option<usize>,
    pub endpoint: String,
    pub state: State,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Its events wait until then (a failure, a `Retry-After`, a pause).
    pub held_until: Option<DateTime<Utc>>,
    /// Undelivered events.
    pub pending: i64,
    pub oldest_pending: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The configured endpoints in the settings' order, then those with a
/// backlog that the settings no longer name.
pub fn overview(
    configured: &[&str],
    backlogs: &[EndpointBacklogRow],
    healths: &[EndpointHealthRow],
    now: DateTime<Utc>,
) -> Vec<EndpointView> {
    let view = |webhook: Option<usize>, url: &str| {
        let backlog = backlogs.iter().find(|b| b.endpoint == url);
        let stored = healths.iter().find(|h| h.endpoint == url);
        let health = stored.map_or(Health::default(), |h| Health {
            failures: u32::try_from(h.failures).unwrap_or(u32::MAX),
            paused_until: h.paused_until,
        });
        EndpointView {
            webhook,
            endpoint: webhooks::display_url(url),
            state: health.state(),
            failures: health.failures,
            held_until: health.held_until(now),
            pending: backlog.map_or(0, |b| b.pending),
            oldest_pending: backlog.map(|b| b.oldest),
            last_error: stored.and_then(|h| h.last_error.clone()),
        }
    };
    let mut out: Vec<EndpointView> = configured
        .iter()
        .enumerate()
        .map(|(i, url)| view(Some(i), url))
        .collect();
    out.extend(
        backlogs
            .iter()
            .filter(|b| !configured.contains(&b.endpoint.as_str()))
            .map(|b| view(None, &b.endpoint)),
    );
    out
}

/// Given-up items listed (the most recent), per outbox.
const GIVEN_UP_SHOWN: i64 = 50;

/// An item of one of the outboxes, as the admin names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemId {
    Mail(i64),
    Webhook(i64),
}

impl std::str::FromStr for ItemId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an outbox item: `m12` (a mail) or `w34` (a webhook delivery), as `guichet outbox` lists them"
            )
        };
        let (kind, n) = s.split_at_checked(1).ok_or_else(bad)?;
        let n: i64 = n.parse().map_err(|_| bad())?;
        match kind {
            "m" | "M" => Ok(ItemId::Mail(n)),
            "w" | "W" => Ok(ItemId::Webhook(n)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemId::Mail(n) => write!(f, "m{n}"),
            ItemId::Webhook(n) => write!(f, "w{n}"),
        }
    }
}

/// One mail of the outbox as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MailItem {
    pub id: String,
    /// `waiting` or `failed`.
    pub state: &'static str,
    pub kind: String,
    pub ticket_id: Option<i64>,
    pub recipients: Vec<String>,
    pub attempts: i64,
    pub queued_at: DateTime<Utc>,
    /// When it is tried next (waiting only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl MailItem {
    fn from_row(r: QueuedMailRow) -> MailItem {
        MailItem {
            id: ItemId::Mail(r.id).to_string(),
            state: if r.failed_at.is_some() {
                "failed"
            } else {
                "waiting"
            },
            kind: r.kind,
            ticket_id: r.ticket_id,
            recipients: r
                .recipients
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            attempts: r.attempts,
            queued_at: r.created_at,
            next_attempt_at: r.failed_at.is_none().then_some(r.next_attempt_at),
            failed_at: r.failed_at,
            last_error: r.last_error,
        }
    }
}

/// One webhook delivery as listed.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookItem {
    pub id: String,
    /// `waiting` or `dead`.
    pub state: &'static str,
    pub event_id: String,
    pub endpoint: String,
    pub ticket_id: i64,
    pub attempts: i64,
    pub queued_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

impl WebhookItem {
    fn from_row(r: QueuedWebhookRow) -> WebhookItem {
        WebhookItem {
            id: ItemId::Webhook(r.id).to_string(),
            state: if r.dead_at.is_some() {
                "dead"
            } else {
                "waiting"
            },
            event_id: r.event_id,
            endpoint: webhooks::display_url(&r.endpoint),
            ticket_id: r.ticket_id,
            attempts: r.attempts,
            queued_at: r.created_at,
            next_attempt_at: r.dead_at.is_none().then_some(r.next_attempt_at),
            dead_at: r.dead_at,
            last_status: r.last_status,
            last_error: r.last_error,
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub async fn show(store: &Store, s: &Settings, as_json: bool) -> Result<(), Failure> {
    let now = Utc::now();
    let configured: Vec<&str> = s.webhooks.iter().map(|w| w.url.as_str()).collect();
    let endpoints = overview(
        &configured,
        &store.webhook_backlogs().await?,
        &store.endpoint_healths().await?,
        now,
    );
    let depth = store.queue_depth().await?;
    let mail: Vec<MailItem> = store
        .queued_mail(GIVEN_UP_SHOWN)
        .await?
        .into_iter()
        .map(MailItem::from_row)
        .collect();
    let deliveries: Vec<WebhookItem> = store
        .queued_webhooks(GIVEN_UP_SHOWN)
        .await?
        .into_iter()
        .map(WebhookItem::from_row)
        .collect();
    if as_json {
        let out = json!({
            "mail": {
                "pending": depth.mail_pending,
                "failed": depth.mail_failed,
                "oldest_pending": depth.mail_oldest_pending,
                "items": mail,
            },
            "webhooks": endpoints,
            "webhook_deliveries": {
                "pending": depth.webhooks_pending,
                "dead": depth.webhooks_dead,
                "oldest_pending": depth.webhooks_oldest_pending,
                "items": deliveries,
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "mail: {} pending, {} failed",
        depth.mail_pending, depth.mail_failed
    );
    for m in &mail {
        let ticket = m
            .ticket_id
            .map_or(String::new(), |t| format!(" (ticket {t})"));
        let when = match (m.next_attempt_at, m.failed_at) {
            (_, Some(f)) => format!("FAILED {}", time(f)),
            (Some(n), None) if n <= now => "due now".to_string(),
            (Some(n), None) => format!("next attempt {}", time(n)),
            (None, None) => String::new(),
        };
        println!(
            "  {} {} to {}{ticket}: {} attempt(s), {when}",
            m.id,
            m.kind,
            m.recipients.join(", "),
            m.attempts
        );
        if let Some(e) = &m.last_error {
            println!("      last error: {e}");
        }
    }
    println!(
        "webhook deliveries: {} pending, {} dead",
        depth.webhooks_pending, depth.webhooks_dead
    );
    for d in &deliveries {
        let when = match (d.next_attempt_at, d.dead_at) {
            (_, Some(f)) => format!("DEAD {}", time(f)),
            (Some(n), None) if n <= now => "due now".to_string(),
            (Some(n), None) => format!("next attempt {}", time(n)),
            (None, None) => String::new(),
        };
        println!(
            "  {} event {} to {} (ticket {}): {} attempt(s), {when}",
            d.id, d.event_id, d.endpoint, d.ticket_id, d.attempts
        );
        if let Some(e) = &d.last_error {
            let status = d
                .last_status
                .map_or(String::new(), |s| format!("HTTP {s}: "));
            println!("      last error: {status}{e}");
        }
    }
    if endpoints.is_empty() {
        println!("webhooks: none configured");
    }
    for e in &endpoints {
        let place = match e.webhook {
            Some(i) => format!("webhooks[{i}]"),
            None => "(no longer in the settings)".into(),
        };
        let mut line = format!(
            "{place} {}: {}, {} pending",
            e.endpoint,
            e.state.as_str(),
            e.pending
        );
        if e.failures > 0 {
            line += &format!(", {} failures in a row", e.failures);
        }
        if let Some(until) = e.held_until {
            line += &format!(", held until {}", time(until));
        }
        if let Some(oldest) = e.oldest_pending {
            line += &format!(", oldest from {}", time(oldest));
        }
        println!("{line}");
        if let (Some(error), true) = (&e.last_error, e.failures > 0) {
            println!("  last error: {error}");
        }
    }
    if depth.mail_failed + depth.webhooks_dead > 0 {
        println!(
            "(`guichet outbox retry ID` sends a failed item again; `guichet outbox drop ID` gives up a waiting one)"
        );
    }
    Ok(())
}

/// `outbox retry ID|--all`: due at once; a given-up item waits again.
pub async fn retry(store: &Store, id: Option<ItemId>) -> Result<(), Failure> {
    // whole seconds: due for a pass whose clock (`run --now`) has no
    // fraction either
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    let (mail, hooks) = match id {
        Some(ItemId::Mail(n)) => (store.retry_mail(Which::One(n), now).await?, 0),
        Some(ItemId::Webhook(n)) => (0, store.retry_webhooks(Which::One(n), now).await?),
        None => (
            store.retry_mail(Which::All, now).await?,
            store.retry_webhooks(Which::All, now).await?,
        ),
    };
    if let (Some(id), 0) = (id, mail + hooks) {
        return Err(super::fail(
            3,
            anyhow::anyhow!(
                "{id}: no such mail or delivery waiting or failed (already sent, or being sent right now: see `guichet outbox`)"
            ),
        ));
    }
    println!(
        "{mail} mail and {hooks} webhook deliveries due now (a running daemon sends them within seconds)"
    );
    Ok(())
}

/// `outbox drop ID`: a waiting item is given up, kept as failed (mail)
/// or dead (webhook) with why.
pub async fn drop_item(store: &Store, id: ItemId) -> Result<(), Failure> {
    let now = Utc::now();
    const WHY: &str = "dropped by an admin (guichet outbox drop)";
    let dropped = match id {
        ItemId::Mail(n) => store.drop_mail(n, WHY, now).await?,
        ItemId::Webhook(n) => store.drop_webhook(n, WHY, now).await?,
    };
    if !dropped {
        return Err(super::fail(
            3,
            anyhow::anyhow!("{id}: nothing waiting under this id (see `guichet outbox`)"),
        ));
    }
    println!("{id} dropped: it will not be sent (`guichet outbox retry {id}` takes it back)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn item_ids() {
        assert_eq!("m12".parse(), Ok(ItemId::Mail(12)));
        assert_eq!("W3".parse(), Ok(ItemId::Webhook(3)));
        for bad in ["", "m", "12", "x12", "m-", "m1x", "é1"] {
            assert!(bad.parse::<ItemId>().is_err(), "{bad}");
        }
        assert_eq!(ItemId::Webhook(7).to_string(), "w7");
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()
    }

    #[test]
    fn every_endpoint_with_its_state_and_backlog() {
        let chat = "https://discord.com/api/webhooks/1/TOKEN";
        let crm = "https://crm.example.com/hook";
        let gone = "https://old.example.com/hook";
        let backlog = |endpoint: &str, pending| EndpointBacklogRow {
            endpoint: endpoint.into(),
            pending,
            oldest: t0(),
        };
        let health = |endpoint: &str, failures, paused_until| EndpointHealthRow {
            endpoint: endpoint.into(),
            failures,
            paused_until,
            last_error: Some("timed out".into()),
            updated_at: t0(),
        };
        let views = overview(
            &[chat, crm],
            &[backlog(crm, 25), backlog(gone, 2)],
            &[
                health(crm, 6, Some(t0() + chrono::Duration::seconds(20))),
                health(chat, 0, None),
            ],
            t0(),
        );
        let summary: Vec<_> = views
            .iter()
            .map(|v| {
                (
                    v.webhook,
                    v.endpoint.as_str(),
                    v.state,
                    v.failures,
                    v.pending,
                    v.held_until.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Some(0),
                    "https://discord.com/…",
                    State::Healthy,
                    0,
                    0,
                    false
                ),
                (
                    Some(1),
                    "https://crm.example.com/…",
                    State::Paused,
                    6,
                    25,
                    true
                ),
                (
                    None,
                    "https://old.example.com/…",
                    State::Healthy,
                    0,
                    2,
                    false
                ),
            ]
        );
        let json = serde_json::to_value(&views[1]).unwrap();
        assert_eq!(json["state"], "paused");
        assert_eq!(json["last_error"], "timed out");
    }
}
