//! `guichet outbox [--json]`: what waits to be sent, and each webhook
//! endpoint's lane: healthy, failing, or paused (its circuit breaker open),
//! with its backlog and last error. URLs are shown without their path
//! (Discord's and Slack's tokens).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::rules::webhooks::{
    self,
    lanes::{Health, State},
};
use crate::settings::Settings;
use crate::store::{CountedTable, EndpointBacklogRow, EndpointHealthRow, Store};

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

pub async fn show(store: &Store, s: &Settings, as_json: bool) -> Result<(), Failure> {
    let now = Utc::now();
    let configured: Vec<&str> = s.webhooks.iter().map(|w| w.url.as_str()).collect();
    let endpoints = overview(
        &configured,
        &store.webhook_backlogs().await?,
        &store.endpoint_healths().await?,
        now,
    );
    let mail = store.count(CountedTable::PendingMail).await?;
    if as_json {
        let out = json!({"mail": {"pending": mail}, "webhooks": endpoints});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("mail: {mail} pending");
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
            line += &format!(", held until {}", until.format("%Y-%m-%d %H:%M:%S UTC"));
        }
        if let Some(oldest) = e.oldest_pending {
            line += &format!(", oldest from {}", oldest.format("%Y-%m-%d %H:%M:%S UTC"));
        }
        println!("{line}");
        if let (Some(error), true) = (&e.last_error, e.failures > 0) {
            println!("  last error: {error}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
