//! Draining the webhook outbox: each `[[webhooks]]` endpoint its own lane,
//! so that a hung endpoint holds only its own events.

use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use crate::adapters::webhook_http::{HttpAnswer, WebhookClient};
use crate::rules::webhooks::{
    self,
    lanes::{self, Change, Health, Step},
    system,
};
use crate::settings::Settings;
use crate::store::{WebhookOutcome, WebhookRow};

use super::super::Ctx;
use super::{Delivered, WEBHOOK_MAX_AGE, clock};

/// One `[[webhooks]]` endpoint's lane: its client (deadline, CA) and what
/// it knows of the endpoint's health. Lanes never wait for one another: a
/// hung endpoint holds only its own events (its claims name it), and its
/// attempts end at its deadline. See [`lanes`] for the rules.
pub struct Lane {
    /// The endpoint's place in the settings.
    place: usize,
    client: WebhookClient,
    health: Health,
    /// The endpoint answered a 2xx since this lane started.
    proven: bool,
    /// `health` was read from the store.
    loaded: bool,
}

impl Lane {
    /// One lane per configured endpoint.
    pub fn all(settings: &Settings) -> anyhow::Result<Vec<Lane>> {
        settings
            .webhooks
            .iter()
            .enumerate()
            .map(|(place, w)| {
                let client = WebhookClient::for_endpoint(
                    StdDuration::from_secs(w.timeout_seconds),
                    w.ca_file.as_deref(),
                )
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("webhooks[{place}] {}", webhooks::display_url(&w.url)))?;
                Ok(Lane {
                    place,
                    client,
                    health: Health::default(),
                    proven: false,
                    loaded: false,
                })
            })
            .collect()
    }

    /// The endpoint's health as this lane knows it.
    pub fn health(&self) -> Health {
        self.health
    }
}

/// Resolves once `stop` is true (never, if its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Gives up the undelivered events of endpoints the settings no longer
/// name (each event is queued for the endpoints of its time).
pub async fn drop_unknown_endpoints(ctx: &Ctx<'_>) -> anyhow::Result<usize> {
    let pending = ctx.store.pending_webhook_endpoints().await?;
    let configured: Vec<&str> = ctx
        .settings
        .webhooks
        .iter()
        .map(|w| w.url.as_str())
        .collect();
    let mut dropped = 0;
    for endpoint in lanes::unknown_endpoints(&pending, &configured) {
        let n = ctx
            .store
            .dead_letter_endpoint(endpoint, "endpoint no longer in the settings", ctx.now)
            .await?;
        tracing::warn!(endpoint = %webhooks::display_url(endpoint), events = n, "webhook events given up: endpoint no longer in the settings");
        dropped += n as usize;
    }
    Ok(dropped)
}

/// `run --once`: every lane drains what is due, all at once; returns when
/// each has nothing due left or its endpoint is held.
pub async fn deliver_webhooks(ctx: &Ctx<'_>, lanes: &mut [Lane]) -> anyhow::Result<Delivered> {
    let mut done = Delivered {
        failed: drop_unknown_endpoints(ctx).await?,
        ..Delivered::default()
    };
    let (_keep, stop) = watch::channel(false);
    let passes = lanes.iter_mut().map(|lane| {
        let mut stop = stop.clone();
        async move { lane_pass(ctx, lane, &mut stop).await }
    });
    for d in futures::future::join_all(passes).await {
        done.add(d?);
    }
    Ok(done)
}

/// One pass of one lane: claims its endpoint's due events (one as a probe
/// until the endpoint answers, then [`lanes::CLAIM`] at a time) and sends
/// them, up to [`lanes::IN_FLIGHT`] at once, until nothing is due or the
/// endpoint is held. When `stop` turns true, the attempts in flight are
/// abandoned and their events given back, due as they were.
pub async fn lane_pass(
    ctx: &Ctx<'_>,
    lane: &mut Lane,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Delivered> {
    let started = Instant::now();
    let endpoint = &ctx.settings.webhooks[lane.place];
    if !lane.loaded {
        if let Some(row) = ctx.store.endpoint_health(&endpoint.url).await? {
            lane.health = Health {
                failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
                paused_until: row.paused_until,
            };
        }
        lane.loaded = true;
    }
    let mut done = Delivered::default();
    let mut attempted = false;
    while !*stop.borrow() {
        let now = clock(ctx, started);
        let (claim, in_flight) = match lanes::next_step(&lane.health, lane.proven, now) {
            Step::Send { claim, in_flight } => (claim, in_flight),
            Step::Wait { .. } => {
                if attempted {
                    // what this pass leaves waiting on the endpoint
                    let waiting = ctx.store.count_due_webhooks(&endpoint.url, now).await?;
                    done.postponed += usize::try_from(waiting).unwrap_or(0);
                }
                break;
            }
        };
        let lease = lanes::lease(lane.client.deadline(), claim, in_flight);
        let lease = Duration::from_std(lease).unwrap_or(Duration::hours(1));
        let rows = ctx
            .store
            .claim_due_webhooks(&endpoint.url, now, lease, claim as i64)
            .await?;
        if rows.is_empty() {
            break;
        }
        attempted = true;
        send_claimed(ctx, lane, rows, in_flight, started, stop, &mut done).await?;
    }
    Ok(done)
}

/// Sends a claim's events, `in_flight` at once, recording each answer as
/// it comes. Stops starting new ones when the endpoint becomes held
/// (those are given back untried, due when the hold ends), and abandons
/// those in flight when `stop` turns true (given back as they were).
async fn send_claimed(
    ctx: &Ctx<'_>,
    lane: &mut Lane,
    rows: Vec<WebhookRow>,
    in_flight: usize,
    started: Instant,
    stop: &mut watch::Receiver<bool>,
    done: &mut Delivered,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let Lane {
        place,
        client,
        health,
        proven,
        ..
    } = lane;
    let endpoint = &ctx.settings.webhooks[*place];
    let mut queue = rows.into_iter();
    let mut running = futures::stream::FuturesUnordered::new();
    // claimed and not yet recorded
    let mut open: Vec<i64> = Vec::new();
    loop {
        let now = clock(ctx, started);
        while running.len() < in_flight && health.held_until(now).is_none() {
            let Some(row) = queue.next() else { break };
            open.push(row.id);
            running.push(attempt(ctx, client, *place, row, started));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = stopped(stop) => {
                drop(running);
                open.extend(queue.by_ref().map(|row| row.id));
                ctx.store.release_webhooks(&open).await?;
                tracing::info!(endpoint = %webhooks::display_url(&endpoint.url), webhook = *place, abandoned = open.len(), "stopping: webhook attempts in flight abandoned, still due");
                return Ok(());
            }
            Some((row, answer)) = running.next() => {
                open.retain(|id| *id != row.id);
                let now = clock(ctx, started);
                record(ctx, *place, health, row, &answer, now, done).await?;
                if matches!(answer, Ok(ref a) if (200..300).contains(&a.status)) {
                    *proven = true;
                }
            }
        }
    }
    // the endpoint became held: the rest of the claim waits, untried
    if let Some(until) = health.held_until(clock(ctx, started)) {
        for row in queue {
            ctx.store.postpone_webhook(row.id, until).await?;
            done.postponed += 1;
        }
    }
    Ok(())
}

/// One attempt: the body in the endpoint's shape, signed at this
/// attempt's own time, POSTed within the endpoint's deadline.
async fn attempt(
    ctx: &Ctx<'_>,
    client: &WebhookClient,
    place: usize,
    row: WebhookRow,
    started: Instant,
) -> (WebhookRow, Result<HttpAnswer, String>) {
    let endpoint = &ctx.settings.webhooks[place];
    let format = webhooks::resolve_format(endpoint.format, &endpoint.url);
    let ticket_url = ctx.settings.helpdesk.ticket_url.as_deref();
    let body = match webhooks::render_stored(format, &row.payload, ticket_url)
        .and_then(|v| serde_json::to_vec(&v).map_err(|e| format!("cannot render the event: {e}")))
    {
        Ok(body) => body,
        Err(e) => return (row, Err(e)),
    };
    // the id stays the same across retries; timestamp and signature are
    // this attempt's own (SPEC: signed at the moment of sending)
    let headers = webhooks::headers(
        &row.event_id,
        clock(ctx, started).timestamp(),
        &body,
        endpoint.secret.as_ref().map(|s| s.expose()),
    );
    let answer = client.post(&endpoint.url, &body, &headers).await;
    (row, answer)
}

/// Applies the rules' plan for one answer: the event's outcome, the
/// endpoint's health (stored when it changed), the log lines.
async fn record(
    ctx: &Ctx<'_>,
    place: usize,
    health: &mut Health,
    row: WebhookRow,
    answer: &Result<HttpAnswer, String>,
    now: DateTime<Utc>,
    done: &mut Delivered,
) -> anyhow::Result<()> {
    let endpoint = &ctx.settings.webhooks[place];
    // Discord's and Slack's tokens are in the URL's path: logs get the
    // host and the endpoint's place in the settings only
    let shown = webhooks::display_url(&endpoint.url);
    let (status, retry_after, error) = match answer {
        Ok(a) => (
            Some(a.status),
            a.retry_after.as_deref(),
            format!(
                "HTTP {}: {}",
                a.status,
                a.body_excerpt.chars().take(200).collect::<String>()
            ),
        ),
        Err(e) => (None, None, e.clone()),
    };
    let plan = lanes::after_attempt(
        *health,
        &lanes::Attempt {
            status,
            retry_after,
            // `attempts` already counts this one (the claim adds it)
            previous_attempts: u32::try_from(row.attempts - 1).unwrap_or(0),
            queued_at: row.created_at,
            max_age: WEBHOOK_MAX_AGE,
            now,
            jitter: rand::random(),
        },
    );
    let failed = match &plan.outcome {
        lanes::Outcome::Delivered { status } => {
            ctx.store
                .webhook_result(row.id, WebhookOutcome::Delivered { status: *status }, now)
                .await?;
            tracing::info!(event = %row.event_id, endpoint = %shown, webhook = place, "webhook delivered");
            done.sent += 1;
            false
        }
        lanes::Outcome::Dead { why } => {
            let error = match why {
                Some(why) => {
                    let error = format!("{why} ({error})");
                    tracing::warn!(event = %row.event_id, endpoint = %shown, webhook = place, %error, "webhook refused for good");
                    error
                }
                None => {
                    tracing::error!(event = %row.event_id, endpoint = %shown, webhook = place, %error, "webhook dead-lettered after its maximum age");
                    error.clone()
                }
            };
            let outcome = WebhookOutcome::Dead {
                status,
                error: &error,
            };
            ctx.store.webhook_result(row.id, outcome, now).await?;
            done.failed += 1;
            why.is_none()
        }
        lanes::Outcome::Retry { at } => {
            tracing::warn!(event = %row.event_id, endpoint = %shown, webhook = place, %error, retry_at = %at, "webhook not delivered, will retry");
            let outcome = WebhookOutcome::Retry {
                status,
                error: &error,
                at: *at,
            };
            ctx.store.webhook_result(row.id, outcome, now).await?;
            done.retried += 1;
            true
        }
    };
    if let Some(change) = plan.change {
        // the endpoints that asked are told (system.degraded, .recovered)
        let flags: Vec<(&str, bool)> = ctx
            .settings
            .webhooks
            .iter()
            .map(|w| {
                (
                    w.url.as_str(),
                    w.wants(crate::domain::EventKind::SystemDegraded),
                )
            })
            .collect();
        let to = system::recipients(&flags, place);
        if !to.is_empty() {
            let last_error = matches!(change, Change::Paused { .. }).then_some(error.as_str());
            let event = system::notice(change, place, &shown, last_error, now, rand::random());
            ctx.store
                .queue_system_event(
                    &event.id,
                    &to,
                    crate::rules::webhooks::system::NO_TICKET,
                    &serde_json::to_string(&event)?,
                    now,
                )
                .await?;
        }
    }
    match plan.change {
        Some(Change::Paused { failures, until }) => {
            tracing::warn!(endpoint = %shown, webhook = place, failures, paused_until = %until, %error,
                "webhook endpoint paused: its events wait, and one is tried after each pause until it answers");
        }
        Some(Change::Resumed { after_failures }) => {
            tracing::info!(endpoint = %shown, webhook = place, after_failures, "webhook endpoint answers again: delivering its backlog");
        }
        None => {}
    }
    if plan.health != *health {
        ctx.store
            .save_endpoint_health(
                &endpoint.url,
                plan.health.failures,
                plan.health.paused_until,
                failed.then_some(error.as_str()),
                now,
            )
            .await?;
    }
    *health = plan.health;
    Ok(())
}
