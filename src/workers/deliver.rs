//! Draining the outboxes: queued mail to SMTP, queued events to webhook
//! endpoints. Rows are leased before sending, so two daemons never send the
//! same row at once; a crash after sending and before marking sends it
//! again (at least once), never loses it.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::adapters::smtp::{SendError, SmtpSender, SmtpSession};
use crate::adapters::webhook_http::WebhookClient;
use crate::domain::EmailAddress;
use crate::rules::webhooks::{self, Answer};
use crate::store::WebhookOutcome;

use super::Ctx;

/// Mail that could not be sent for this long is given up (and stays
/// visible with its last error).
const MAIL_MAX_AGE_ATTEMPTS: i64 = 20;
/// Webhook events older than this are dead-lettered.
const WEBHOOK_MAX_AGE: StdDuration = StdDuration::from_secs(3 * 24 * 3600);

// Leases: once a claimed row's lease expires, another daemon may claim it
// and send it too. So rows are claimed a few at a time, with a lease that
// covers sending them all even from a slow server, and a mail is not sent
// any more when too little of its lease is left for one slow transaction.
// How many: what the relay took about a minute to accept at the pace of
// this pass (a claim waits for the database, which a batch of ingest may
// hold, so fewer, larger claims go faster), never fewer than MAIL_BATCH_MIN
// nor more than MAIL_BATCH_MAX: ten times slower than measured, a claim
// still fits in its lease before the margin.
const MAIL_BATCH_MIN: i64 = 10;
const MAIL_BATCH_MAX: i64 = 500;
const MAIL_CLAIM_WINDOW: StdDuration = StdDuration::from_secs(60);
const MAIL_LEASE: Duration = Duration::minutes(15);
/// Several SMTP commands, each up to its timeout (adapters::smtp).
const MAIL_SEND_MARGIN: Duration = Duration::minutes(5);
/// Each POST takes at most the webhook client's timeout (10 s).
const WEBHOOK_BATCH: i64 = 10;
const WEBHOOK_LEASE: Duration = Duration::minutes(5);

/// The pass's clock moving on: `ctx.now` (the pass's start, or `--now`)
/// plus the time spent since `started`. A long queue takes a while to
/// drain, and leases taken at a stale time would expire early.
fn clock(ctx: &Ctx<'_>, started: std::time::Instant) -> chrono::DateTime<chrono::Utc> {
    ctx.now + Duration::from_std(started.elapsed()).unwrap_or(Duration::zero())
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Delivered {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Webhook deliveries not tried in this pass because their endpoint
    /// had just said it was unavailable (a 429, a timeout…).
    pub postponed: usize,
}

impl Delivered {
    pub fn add(&mut self, other: Delivered) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.postponed += other.postponed;
    }
}

/// Mail retry delay: 1 min, 2, 4 … capped at 1 h.
fn mail_backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 7) - 1;
    Duration::minutes((1i64 << exp).min(60))
}

/// Relays often close connections idle for longer than this (lettre
/// issue #743): a kept session older than this is replaced.
const SESSION_IDLE_LIMIT: StdDuration = StdDuration::from_secs(30);

/// Connections the outbox drains over at once: while the relay works on
/// one message (its queue file, its delivery), the next one is already
/// on the wire. Most relays accept a few connections per client.
pub const SMTP_CONNECTIONS: usize = 2;

/// The SMTP connections the outbox drains over, kept from one pass to the
/// next (connecting, TLS and login cost more than sending a message);
/// and what a pass could not record because the store failed: mail sent
/// but not marked sent, mail claimed but not sent. The next pass records
/// those before it claims anything (so a fault never makes a mail go out
/// twice from this daemon), and sends nothing while it cannot.
#[derive(Default)]
pub struct SmtpLink {
    slots: [Slot; SMTP_CONNECTIONS],
    unrecorded: Vec<i64>,
    unsent: Vec<Claimed>,
}

/// A row claimed and not handled, and until when the claim holds.
#[derive(Debug, Clone, Copy)]
struct Claimed {
    id: i64,
    until: DateTime<Utc>,
}

/// Gives claimed rows back untried (due now), as long as the claim holds;
/// a claim that ran out needs nothing (anyone may claim the row again).
/// Stops at the first failure, keeping what is left.
async fn give_back<F, Fut>(
    unsent: &mut Vec<Claimed>,
    now: DateTime<Utc>,
    postpone: F,
) -> anyhow::Result<()>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    while let Some(c) = unsent.last().copied() {
        if c.until > now {
            postpone(c.id).await?;
        }
        unsent.pop();
    }
    Ok(())
}

/// One kept connection and when it was last used.
#[derive(Default)]
struct Slot {
    session: Option<(SmtpSession, Instant)>,
}

impl Slot {
    /// The kept session when it is alive and fresh, else a new one.
    async fn session(&mut self, smtp: &SmtpSender) -> Result<&mut SmtpSession, SendError> {
        let stale = self
            .session
            .as_ref()
            .is_some_and(|(s, used)| s.is_broken() || used.elapsed() > SESSION_IDLE_LIMIT);
        if stale && let Some((old, _)) = self.session.take() {
            old.quit().await;
        }
        if self.session.is_none() {
            self.session = Some((smtp.session().await?, Instant::now()));
        }
        let (session, used) = self.session.as_mut().expect("just set");
        *used = Instant::now();
        Ok(session)
    }
}

impl SmtpLink {
    pub async fn close(&mut self) {
        for slot in &mut self.slots {
            if let Some((session, _)) = slot.session.take() {
                session.quit().await;
            }
        }
    }
}

/// Sends every due message of the outbox over one connection, then
/// closes it.
pub async fn deliver_mail(ctx: &Ctx<'_>, smtp: &SmtpSender) -> anyhow::Result<Delivered> {
    let mut link = SmtpLink::default();
    let done = deliver_mail_over(ctx, smtp, &mut link).await;
    link.close().await;
    done
}

/// Sends every due message of the outbox over `link`'s connection (opened
/// when needed, kept afterwards). Sent messages are marked by a second
/// future of this one task, a statement for all those sent meanwhile:
/// sending never waits for the database's write lock, which an ingest
/// transaction may hold (a crash in between sends them again: at least
/// once, as before).
pub async fn deliver_mail_over(
    ctx: &Ctx<'_>,
    smtp: &SmtpSender,
    link: &mut SmtpLink,
) -> anyhow::Result<Delivered> {
    let started = std::time::Instant::now();
    // what an earlier pass could not record, first; nothing is claimed
    // (nor sent) while that fails
    if !link.unrecorded.is_empty() {
        ctx.store
            .mails_sent(&link.unrecorded, clock(ctx, started))
            .await?;
        tracing::info!(
            count = link.unrecorded.len(),
            "mail sent while the store failed is now recorded as sent"
        );
        link.unrecorded.clear();
    }
    let now = clock(ctx, started);
    give_back(&mut link.unsent, now, |id| ctx.store.postpone_mail(id, now)).await?;

    // set when the store fails: no more claims, no more sending
    let stop = std::sync::atomic::AtomicBool::new(false);
    let unsent = std::sync::Mutex::new(Vec::new());
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let marking = async {
        let mut ids = Vec::new();
        let mut unrecorded = Vec::new();
        let mut failure = None;
        while sent_rx.recv_many(&mut ids, 1000).await > 0 {
            if failure.is_none() {
                match ctx.store.mails_sent(&ids, clock(ctx, started)).await {
                    Ok(()) => {
                        ids.clear();
                        continue;
                    }
                    Err(e) => {
                        failure = Some(e);
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
            // sent, not recorded: kept for the next pass
            unrecorded.append(&mut ids);
        }
        (unrecorded, failure)
    };
    let slots = &mut link.slots;
    let sending = async {
        let done = send_due_mail(ctx, smtp, slots, started, &sent_tx, &stop, &unsent).await;
        drop(sent_tx);
        done
    };
    let (done, (unrecorded, failure)) = tokio::join!(sending, marking);
    link.unrecorded.extend(unrecorded);
    link.unsent
        .extend(unsent.into_inner().expect("not poisoned"));
    if let Some(e) = failure {
        return Err(e.context("cannot record mail as sent"));
    }
    done
}

/// Claims due mail a few rows at a time and sends each claim's rows over
/// the link's connections, which take them in turn; reports each sent
/// row's id on `sent`.
///
/// A store failure stops everything (`stop`): the rows of the claim not
/// handled are listed in `unsent`, to be given back.
async fn send_due_mail(
    ctx: &Ctx<'_>,
    smtp: &SmtpSender,
    slots: &mut [Slot; SMTP_CONNECTIONS],
    started: Instant,
    sent: &tokio::sync::mpsc::UnboundedSender<i64>,
    stop: &std::sync::atomic::AtomicBool,
    unsent: &std::sync::Mutex<Vec<Claimed>>,
) -> anyhow::Result<Delivered> {
    use std::sync::Mutex;
    use std::sync::atomic::Ordering::SeqCst;
    let done = Mutex::new(Delivered::default());
    let count = |f: fn(&mut Delivered)| f(&mut done.lock().expect("not poisoned"));
    let mut claim = MAIL_BATCH_MIN;
    loop {
        if stop.load(SeqCst) {
            break;
        }
        let claimed_at = clock(ctx, started);
        let until = claimed_at + MAIL_LEASE;
        let not_handled = |id: i64| {
            unsent
                .lock()
                .expect("not poisoned")
                .push(Claimed { id, until })
        };
        // a store failure while handling a row: nothing more is sent
        let failed = |id: i64, e: anyhow::Error| {
            not_handled(id);
            stop.store(true, SeqCst);
            Err(e)
        };
        let batch = ctx
            .store
            .claim_due_mail(claimed_at, MAIL_LEASE, claim)
            .await?;
        if batch.is_empty() {
            break;
        }
        let claimed = batch.len() as u32;
        let sending_started = Instant::now();
        // the connections take the claim's messages in turn, in order
        let queue = Mutex::new(batch.into_iter());
        // set when the server seems down: the connections stop, and what
        // is left of the claim is given back untried, due when this
        // message is retried
        let retry_rest_at = Mutex::new(None);
        let workers = slots.iter_mut().map(|slot| async {
            loop {
                if retry_rest_at.lock().expect("not poisoned").is_some() || stop.load(SeqCst) {
                    return anyhow::Ok(());
                }
                let Some(mut row) = queue.lock().expect("not poisoned").next() else {
                    return Ok(());
                };
                let now = clock(ctx, started);
                if claimed_at + MAIL_LEASE - now < MAIL_SEND_MARGIN {
                    // left leased: sent after the lease, by whichever daemon claims it
                    tracing::info!(
                        outbox = row.id,
                        "lease nearly over: mail left for a later pass"
                    );
                    continue;
                }
                if row.raw.is_empty() {
                    // a big message: its bytes are read now, and dropped
                    // with `row` once it is sent
                    row.raw = match ctx.store.outbox_mail_raw(row.id).await {
                        Ok(raw) => raw,
                        Err(e) => return failed(row.id, e),
                    };
                }
                match send_one(smtp, slot, &row).await {
                    Ok(()) => {
                        let _ = sent.send(row.id);
                        tracing::info!(outbox = row.id, kind = %row.kind, ticket = ?row.ticket_id, "mail sent");
                        count(|d| d.sent += 1);
                    }
                    Err(SendError::Permanent(e)) => {
                        tracing::warn!(outbox = row.id, kind = %row.kind, error = %e, "mail refused for good");
                        if let Err(e) = ctx.store.mail_failed(row.id, &e, None, now).await {
                            return failed(row.id, e);
                        }
                        count(|d| d.failed += 1);
                    }
                    Err(SendError::Transient(e)) if row.attempts >= MAIL_MAX_AGE_ATTEMPTS => {
                        tracing::warn!(outbox = row.id, error = %e, attempts = row.attempts, "mail given up after too many attempts");
                        if let Err(e) = ctx.store.mail_failed(row.id, &e, None, now).await {
                            return failed(row.id, e);
                        }
                        count(|d| d.failed += 1);
                    }
                    Err(SendError::Transient(e)) => {
                        let at = now + mail_backoff(row.attempts);
                        tracing::warn!(outbox = row.id, error = %e, retry_at = %at, "mail not sent, will retry");
                        if let Err(e) = ctx.store.mail_failed(row.id, &e, Some(at), now).await {
                            return failed(row.id, e);
                        }
                        count(|d| d.retried += 1);
                        retry_rest_at.lock().expect("not poisoned").get_or_insert(at);
                    }
                }
            }
        });
        let results = futures::future::join_all(workers).await;
        let mut rest = queue.into_inner().expect("not poisoned");
        if let Some(e) = results.into_iter().find_map(Result::err) {
            rest.for_each(|r| not_handled(r.id));
            return Err(e);
        }
        if stop.load(SeqCst) {
            // recording a sent mail failed: the caller says so
            rest.for_each(|r| not_handled(r.id));
            break;
        }
        if let Some(at) = retry_rest_at.into_inner().expect("not poisoned") {
            while let Some(r) = rest.next() {
                if let Err(e) = ctx.store.postpone_mail(r.id, at).await {
                    not_handled(r.id);
                    rest.for_each(|r| not_handled(r.id));
                    return Err(e);
                }
            }
            break;
        }
        claim = next_claim(sending_started.elapsed() / claimed);
    }
    Ok(done.into_inner().expect("not poisoned"))
}

/// The next claim's size, from the time the last one took per message.
fn next_claim(per_mail: StdDuration) -> i64 {
    let fits = MAIL_CLAIM_WINDOW.as_micros() / per_mail.as_micros().max(1);
    i64::try_from(fits)
        .unwrap_or(i64::MAX)
        .clamp(MAIL_BATCH_MIN, MAIL_BATCH_MAX)
}

/// One queued message over one of the connections.
async fn send_one(
    smtp: &SmtpSender,
    slot: &mut Slot,
    row: &crate::store::OutboxMailRow,
) -> Result<(), SendError> {
    let from = EmailAddress::parse(&row.envelope_from)
        .map_err(|e| SendError::Permanent(format!("bad envelope sender: {e}")))?;
    let to: Vec<EmailAddress> = row
        .recipients
        .split(',')
        .filter_map(|a| EmailAddress::parse(a).ok())
        .collect();
    match slot.session(smtp).await {
        Ok(session) => session.send_raw(&from, &to, &row.raw).await,
        // no connection is this message's fault: retry it later
        Err(SendError::Permanent(e)) => Err(SendError::Transient(e)),
        Err(e) => Err(e),
    }
}

/// What a webhook pass could not record because the store failed:
/// deliveries made (their outcome kept here) and rows claimed but not
/// tried. Kept by the delivery loop from one pass to the next, and
/// recorded before anything else is claimed or posted.
#[derive(Default)]
pub struct WebhookMemo {
    unrecorded: Vec<(i64, Recorded)>,
    unsent: Vec<Claimed>,
}

/// The outcome of one delivery attempt, owned.
#[derive(Debug, Clone)]
enum Recorded {
    Delivered {
        status: u16,
    },
    Retry {
        status: Option<u16>,
        error: String,
        at: DateTime<Utc>,
    },
    Dead {
        status: Option<u16>,
        error: String,
    },
}

impl Recorded {
    fn outcome(&self) -> WebhookOutcome<'_> {
        match self {
            Recorded::Delivered { status } => WebhookOutcome::Delivered { status: *status },
            Recorded::Retry { status, error, at } => WebhookOutcome::Retry {
                status: *status,
                error,
                at: *at,
            },
            Recorded::Dead { status, error } => WebhookOutcome::Dead {
                status: *status,
                error,
            },
        }
    }
}

/// What to write about one claimed delivery.
enum Step {
    /// Given back untried, due then (its endpoint is unavailable).
    Postpone(DateTime<Utc>),
    Record(Recorded),
}

/// One pass over the webhook outbox (`run --once`, benches): what it could
/// not record is lost with it (sent again once its lease ends).
pub async fn deliver_webhooks(ctx: &Ctx<'_>, client: &WebhookClient) -> anyhow::Result<Delivered> {
    deliver_webhooks_with(ctx, client, &mut WebhookMemo::default()).await
}

/// Every due webhook delivery, at most one per endpoint and ticket at a
/// time. When the store fails, what was done and not recorded stays in
/// `memo` and the pass stops: nothing more is posted until it is recorded.
pub async fn deliver_webhooks_with(
    ctx: &Ctx<'_>,
    client: &WebhookClient,
    memo: &mut WebhookMemo,
) -> anyhow::Result<Delivered> {
    let mut done = Delivered::default();
    if ctx.settings.webhooks.is_empty() {
        return Ok(done);
    }
    let started = std::time::Instant::now();
    while let Some((id, recorded)) = memo.unrecorded.last() {
        ctx.store
            .webhook_result(*id, recorded.outcome(), ctx.now)
            .await?;
        memo.unrecorded.pop();
    }
    let now = clock(ctx, started);
    give_back(&mut memo.unsent, now, |id| {
        ctx.store.postpone_webhook(id, now)
    })
    .await?;
    // Endpoints that said they are unavailable in this pass, and when to
    // try them again: their other events wait until then, untried.
    let mut unavailable: HashMap<String, DateTime<Utc>> = HashMap::new();
    loop {
        let claimed_at = clock(ctx, started);
        let until = claimed_at + WEBHOOK_LEASE;
        let batch = ctx
            .store
            .claim_due_webhooks(claimed_at, WEBHOOK_LEASE, WEBHOOK_BATCH)
            .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let mut rows = batch.into_iter();
        while let Some(row) = rows.next() {
            let step = attempt(ctx, client, &row, &mut unavailable, &mut done).await;
            let written = match &step {
                Ok(Step::Postpone(at)) => ctx.store.postpone_webhook(row.id, *at).await,
                Ok(Step::Record(r)) => ctx.store.webhook_result(row.id, r.outcome(), ctx.now).await,
                Err(_) => Ok(()),
            };
            let failure = match (step, written) {
                (Ok(_), Ok(())) => continue,
                (Err(e), _) => {
                    memo.unsent.push(Claimed { id: row.id, until });
                    e
                }
                // posted, not recorded: kept to be recorded, not posted again
                (Ok(Step::Record(r)), Err(e)) => {
                    memo.unrecorded.push((row.id, r));
                    e
                }
                (Ok(Step::Postpone(_)), Err(e)) => {
                    memo.unsent.push(Claimed { id: row.id, until });
                    e
                }
            };
            memo.unsent
                .extend(rows.map(|r| Claimed { id: r.id, until }));
            return Err(failure);
        }
    }
}

/// Posts one claimed delivery (unless its endpoint is unavailable or gone)
/// and says what to write about it.
async fn attempt(
    ctx: &Ctx<'_>,
    client: &WebhookClient,
    row: &crate::store::WebhookRow,
    unavailable: &mut HashMap<String, DateTime<Utc>>,
    done: &mut Delivered,
) -> anyhow::Result<Step> {
    if let Some(&at) = unavailable.get(&row.endpoint) {
        done.postponed += 1;
        return Ok(Step::Postpone(at));
    }
    let Some(endpoint) = ctx.settings.webhooks.iter().find(|w| w.url == row.endpoint) else {
        done.failed += 1;
        return Ok(Step::Record(Recorded::Dead {
            status: None,
            error: "endpoint no longer in the settings".into(),
        }));
    };
    // Discord's and Slack's tokens are in the URL's path: logs get
    // the host and the endpoint's place in the settings only
    let shown = webhooks::display_url(&row.endpoint);
    let place = ctx
        .settings
        .webhooks
        .iter()
        .position(|w| w.url == row.endpoint)
        .unwrap_or(0);
    let format = webhooks::resolve_format(endpoint.format, &endpoint.url);
    let event: webhooks::Event =
        serde_json::from_str(&row.payload).context("unreadable event in the webhook outbox")?;
    let body = serde_json::to_vec(&webhooks::render(
        format,
        &event,
        ctx.settings.helpdesk.ticket_url.as_deref(),
    ))?;
    // the id stays the same across retries; timestamp and signature are fresh
    let headers = webhooks::headers(
        &row.event_id,
        ctx.now.timestamp(),
        &body,
        endpoint.secret.as_ref().map(|s| s.expose()),
    );
    let answer = client.post(&endpoint.url, &body, &headers).await;
    let (status, retry_after, error) = match &answer {
        Ok(a) => (
            Some(a.status),
            a.retry_after.clone(),
            format!(
                "HTTP {}: {}",
                a.status,
                a.body_excerpt.chars().take(200).collect::<String>()
            ),
        ),
        Err(e) => (None, None, e.clone()),
    };
    Ok(Step::Record(
        match webhooks::classify(status, retry_after.as_deref(), ctx.now) {
            Answer::Delivered => {
                tracing::info!(event = %row.event_id, endpoint = %shown, webhook = place, "webhook delivered");
                done.sent += 1;
                Recorded::Delivered {
                    status: status.unwrap_or(200),
                }
            }
            Answer::Permanent { why } => {
                let error = format!("{why} ({error})");
                tracing::warn!(event = %row.event_id, endpoint = %shown, webhook = place, %error, "webhook refused for good");
                done.failed += 1;
                Recorded::Dead { status, error }
            }
            Answer::Retry { after } => {
                let first = row.created_at;
                if webhooks::is_dead(first, ctx.now, WEBHOOK_MAX_AGE) {
                    tracing::error!(event = %row.event_id, endpoint = %shown, webhook = place, %error, "webhook dead-lettered after its maximum age");
                    done.failed += 1;
                    return Ok(Step::Record(Recorded::Dead { status, error }));
                }
                let jitter: f64 = rand::random();
                // `attempts` already counts this attempt (the claim
                // adds it); `next_delay` wants the failed one's index
                let failed_attempt = (row.attempts - 1).max(0) as u32;
                let delay = webhooks::next_delay(failed_attempt, after, jitter);
                let at = ctx.now + Duration::from_std(delay).unwrap_or(Duration::hours(1));
                if webhooks::endpoint_unavailable(status, retry_after.as_deref()) {
                    unavailable.insert(row.endpoint.clone(), at);
                }
                tracing::warn!(event = %row.event_id, endpoint = %shown, webhook = place, %error, retry_at = %at, "webhook not delivered, will retry");
                done.retried += 1;
                Recorded::Retry { status, error, at }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_relays_pace_within_bounds() {
        let ms = StdDuration::from_millis;
        for (per_mail, want) in [
            (ms(0), MAIL_BATCH_MAX),
            (ms(2), MAIL_BATCH_MAX),
            (ms(200), 300),
            (ms(1000), 60),
            (ms(6000), 10),
            (ms(60_000), MAIL_BATCH_MIN),
        ] {
            assert_eq!(next_claim(per_mail), want, "{per_mail:?} a mail");
        }
    }

    #[test]
    fn a_claim_fits_its_lease_even_ten_times_slower_than_measured() {
        let usable = (MAIL_LEASE - MAIL_SEND_MARGIN).to_std().unwrap();
        for ms in [1, 10, 100, 120, 1000, 5000, 6000] {
            let per_mail = StdDuration::from_millis(ms);
            let claim = next_claim(per_mail);
            if claim > MAIL_BATCH_MIN {
                let worst = per_mail * 10 * u32::try_from(claim).unwrap();
                assert!(worst <= usable, "{ms} ms a mail: {claim} take {worst:?}");
            }
        }
    }
}
