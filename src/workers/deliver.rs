//! Draining the outboxes: queued mail to SMTP, queued events to webhook
//! endpoints. Rows are leased before sending, so two daemons never send the
//! same row at once; a crash after sending and before marking sends it
//! again (at least once), never loses it.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::adapters::smtp::{Refused, SendError, SmtpSender, SmtpSession};
use crate::domain::EmailAddress;
use crate::rules::delivery::{self, Source};
use crate::store::OutboxMailRow;

use super::Ctx;
use super::undelivered::{self, Failed};

mod webhooks;
pub(crate) use webhooks::stopped;
pub use webhooks::{Lane, deliver_webhooks, drop_unknown_endpoints, lane_pass};

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
/// While the relay cannot be reached at all, the queue is tried again this
/// often (no attempt counted): mail goes out within this of its return.
const RELAY_DOWN_RETRY: Duration = Duration::seconds(30);

fn mail_backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 7) - 1;
    Duration::minutes((1i64 << exp).min(60))
}

/// Relays often close connections idle for longer than this (lettre
/// issue #743): a kept session older than this is replaced.
const SESSION_IDLE_LIMIT: StdDuration = StdDuration::from_secs(30);

/// The SMTP connections the outbox drains over, kept from one pass to the
/// next (connecting, TLS and login cost more than sending a message);
/// and what a pass could not record because the store failed: mail sent
/// but not marked sent, mail claimed but not sent. The next pass records
/// those before it claims anything (so a fault never makes a mail go out
/// twice from this daemon), and sends nothing while it cannot.
#[derive(Default)]
pub struct SmtpLink {
    /// One per connection (`smtp.connections`): while the relay works on
    /// one message (its queue file, its delivery), the next ones are
    /// already on the wire.
    slots: Vec<Slot>,
    unrecorded: Vec<i64>,
    unsent: Vec<Claimed>,
    /// When it turns true, no further message of a claim is sent.
    shutdown: Option<watch::Receiver<bool>>,
}

impl SmtpLink {
    /// Stops a pass after the messages in flight once `shutdown` is true
    /// (the rest of its claim is listed as unsent, see [`release`]).
    pub fn stop_on(&mut self, shutdown: watch::Receiver<bool>) {
        self.shutdown = Some(shutdown);
    }
}

/// Gives back (due now) the claimed mail a stopped pass did not send, and
/// records what was sent and not yet recorded.
pub async fn release(ctx: &Ctx<'_>, link: &mut SmtpLink) -> anyhow::Result<()> {
    if !link.unrecorded.is_empty() {
        ctx.store.mails_sent(&link.unrecorded, Utc::now()).await?;
        link.unrecorded.clear();
    }
    let now = Utc::now();
    give_back(&mut link.unsent, now, |id| ctx.store.postpone_mail(id, now)).await
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
    /// The last message could not even be handed over: no connection.
    unreachable: bool,
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
            match smtp.session().await {
                Ok(s) => self.session = Some((s, Instant::now())),
                Err(e) => {
                    self.unreachable = true;
                    return Err(e);
                }
            }
        }
        self.unreachable = false;
        let (session, used) = self.session.as_mut().expect("just set");
        *used = Instant::now();
        Ok(session)
    }
}

impl SmtpLink {
    /// How many connections are kept open now.
    pub fn open_connections(&self) -> usize {
        self.slots.iter().filter(|s| s.session.is_some()).count()
    }

    pub async fn close(&mut self) {
        for slot in &mut self.slots {
            if let Some((session, _)) = slot.session.take() {
                session.quit().await;
            }
        }
    }
}

/// Sends every due message of the outbox over `smtp.connections`
/// connections, then closes them.
pub async fn deliver_mail(ctx: &Ctx<'_>, smtp: &SmtpSender) -> anyhow::Result<Delivered> {
    let mut link = SmtpLink::default();
    let done = deliver_mail_over(ctx, smtp, &mut link).await;
    link.close().await;
    done
}

/// Sends every due message of the outbox over `link`'s connections (opened
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
    let (recorded_tx, recorded_rx) = watch::channel(0u64);
    // the furthest place a connection waits to see recorded, and the
    // signal that one started waiting (see [`Handover::recorded`])
    let waited_for = std::sync::atomic::AtomicU64::new(0);
    let needed = tokio::sync::Notify::new();
    let gather = ctx.settings.smtp.connections.max(1);
    let marking = async {
        let mut ids = Vec::new();
        let mut unrecorded = Vec::new();
        let mut failure = None;
        let mut recorded = 0u64;
        while sent_rx.recv_many(&mut ids, 1000).await > 0 {
            // the other connections' marks are awaited, to record them
            // in one commit, while no connection needs them yet
            let first = tokio::time::Instant::now();
            let mut open = true;
            loop {
                let waits = waited_for.load(std::sync::atomic::Ordering::SeqCst) > recorded;
                if failure.is_some()
                    || record_sent_now(ids.len(), gather, waits, first.elapsed(), open)
                {
                    break;
                }
                tokio::select! {
                    n = sent_rx.recv_many(&mut ids, 1000) => open = n > 0,
                    () = needed.notified() => {}
                    () = tokio::time::sleep_until(first + MARKS_GATHERED_FOR) => {}
                }
            }
            if failure.is_none() {
                match ctx.store.mails_sent(&ids, clock(ctx, started)).await {
                    Ok(()) => {
                        recorded += ids.len() as u64;
                        let _ = recorded_tx.send(recorded);
                        ids.clear();
                        continue;
                    }
                    Err(e) => {
                        failure = Some(e);
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        // nothing more will be recorded: wake the waiting
                        let _ = recorded_tx.send(u64::MAX);
                    }
                }
            }
            // sent, not recorded: kept for the next pass
            unrecorded.append(&mut ids);
        }
        (unrecorded, failure)
    };
    // `smtp.connections` (the settings may have been reloaded): extra
    // kept sessions are closed, missing ones opened when first used
    let wanted = ctx.settings.smtp.connections.max(1);
    for mut slot in link.slots.drain(wanted.min(link.slots.len())..) {
        if let Some((session, _)) = slot.session.take() {
            session.quit().await;
        }
    }
    link.slots.resize_with(wanted, Slot::default);
    let slots = &mut link.slots;
    let shutdown = link.shutdown.clone();
    let sending = async {
        let handover = Handover {
            sent: sent_tx,
            handed: std::sync::atomic::AtomicU64::new(0),
            recorded: recorded_rx,
            waited_for: &waited_for,
            needed: &needed,
        };
        let done = send_due_mail(
            ctx,
            smtp,
            slots,
            started,
            &handover,
            (&stop, shutdown.as_ref()),
            &unsent,
        )
        .await;
        drop(handover);
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

/// How many of its messages a connection may have handed over and not
/// yet seen recorded: what a kill may duplicate per connection.
const HANDED_AHEAD: usize = 2;

/// How long a sent mark waits at most for others to share its commit.
const MARKS_GATHERED_FOR: StdDuration = StdDuration::from_millis(20);

/// Whether the `pending` sent marks are recorded now, or wait for more:
/// each record is a commit, and over 8 connections most commits recorded
/// one mail (780 commits for 1,443 mails), while the connections' other
/// marks came a few milliseconds later (issue 17). They wait while no
/// connection needs them (`someone_waits`, it would stall), fewer than one
/// per connection are there (`gather`), for at most MARKS_GATHERED_FOR,
/// and while more can come (`open`). Over one connection nothing waits:
/// its mark is recorded while it sends the next mail. The duplicate bound
/// ([`HANDED_AHEAD`] a connection) is unchanged.
fn record_sent_now(
    pending: usize,
    gather: usize,
    someone_waits: bool,
    waited: StdDuration,
    open: bool,
) -> bool {
    pending >= gather || someone_waits || waited >= MARKS_GATHERED_FOR || !open
}

/// Mail the relay accepted, on its way to being recorded as sent.
///
/// A kill between the relay's acceptance and the record sends the mail
/// again after the restart. So that this duplicates as little as
/// possible, a connection sends a message only once the one before its
/// previous one is recorded, and nothing more is claimed until all are:
/// a kill duplicates at most two messages per connection (the one being
/// recorded, the next one the relay accepted meanwhile), while sending and
/// recording overlap on every connection (with one connection, the relay
/// takes a message while the previous one is being recorded).
struct Handover<'a> {
    /// Ids of rows the relay accepted, in the order handed over.
    sent: tokio::sync::mpsc::UnboundedSender<i64>,
    /// How many were handed over so far.
    handed: std::sync::atomic::AtomicU64,
    /// How many of those are recorded (u64::MAX once recording failed).
    recorded: watch::Receiver<u64>,
    /// The furthest place a connection waits for: marks gathered for one
    /// commit are recorded at once when it is not recorded yet.
    waited_for: &'a std::sync::atomic::AtomicU64,
    /// Wakes the marking when a connection starts waiting.
    needed: &'a tokio::sync::Notify,
}

impl Handover<'_> {
    /// Hands over a row the relay accepted; its place in the order.
    fn accepted(&self, id: i64) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        // no await between the two: the order of the places is the
        // order of the channel
        let place = self.handed.fetch_add(1, SeqCst) + 1;
        let _ = self.sent.send(id);
        place
    }

    /// Waits until the first `place` rows handed over are recorded (or
    /// recording failed).
    async fn recorded(&self, place: u64) {
        let mut recorded = self.recorded.clone();
        if *recorded.borrow() < place {
            self.waited_for
                .fetch_max(place, std::sync::atomic::Ordering::SeqCst);
            // a permit when the marking is not listening: it looks again
            self.needed.notify_one();
        }
        let _ = recorded.wait_for(|&r| r >= place).await;
    }

    /// Waits until every row handed over is recorded.
    async fn all_recorded(&self) {
        self.recorded(self.handed.load(std::sync::atomic::Ordering::SeqCst))
            .await;
    }
}

/// Claims due mail a few rows at a time and sends each claim's rows over
/// the link's connections, which take them in turn; hands each sent row
/// over to be recorded (see [`Handover`]).
///
/// A store failure stops everything (`stop`): the rows of the claim not
/// handled are listed in `unsent`, to be given back.
async fn send_due_mail(
    ctx: &Ctx<'_>,
    smtp: &SmtpSender,
    slots: &mut [Slot],
    started: Instant,
    handover: &Handover<'_>,
    (stop, shutdown): (
        &std::sync::atomic::AtomicBool,
        Option<&watch::Receiver<bool>>,
    ),
    unsent: &std::sync::Mutex<Vec<Claimed>>,
) -> anyhow::Result<Delivered> {
    use std::sync::Mutex;
    use std::sync::atomic::Ordering::SeqCst;
    let shutting_down = || shutdown.is_some_and(|s| *s.borrow());
    let done = Mutex::new(Delivered::default());
    let count = |f: fn(&mut Delivered)| f(&mut done.lock().expect("not poisoned"));
    let mut claim = MAIL_BATCH_MIN;
    loop {
        // what was sent is recorded before anything more is claimed
        handover.all_recorded().await;
        if stop.load(SeqCst) || shutting_down() {
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
            // this connection's messages handed over and maybe not yet
            // recorded: at most HANDED_AHEAD (see [`Handover`])
            let mut handed = std::collections::VecDeque::with_capacity(HANDED_AHEAD);
            loop {
                while handed.len() >= HANDED_AHEAD {
                    if let Some(place) = handed.pop_front() {
                        handover.recorded(place).await;
                    }
                }
                if retry_rest_at.lock().expect("not poisoned").is_some()
                    || stop.load(SeqCst)
                    || shutting_down()
                {
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
                    Ok(refused) if refused.is_empty() => {
                        handed.push_back(handover.accepted(row.id));
                        tracing::info!(outbox = row.id, kind = %row.kind, ticket = row.ticket_id, "mail sent");
                        count(|d| d.sent += 1);
                    }
                    Ok(refused) => {
                        // some recipients refused at RCPT: the others got it
                        let names: Vec<String> = refused.iter().map(|r| r.address.clone()).collect();
                        let accepted = !delivery::without(&row.recipients, &names).is_empty();
                        let exhausted = row.attempts >= MAIL_MAX_AGE_ATTEMPTS;
                        let (mut for_good, mut given_up, mut deferred) = (Vec::new(), Vec::new(), Vec::new());
                        for r in refused {
                            let f = Failed { address: r.address, reply: r.error.to_string() };
                            match r.error {
                                SendError::Permanent(_) => for_good.push(f),
                                SendError::Transient(_) if exhausted => given_up.push(f),
                                SendError::Transient(_) => deferred.push(f),
                            }
                        }
                        tracing::warn!(outbox = row.id, kind = %row.kind, ticket = row.ticket_id, accepted,
                            refused = for_good.len(), given_up = given_up.len(), deferred = deferred.len(),
                            "mail refused for some recipients");
                        let outcome = if !deferred.is_empty() {
                            // the deferred ones are tried again, alone
                            let at = now + mail_backoff(row.attempts);
                            let rest: Vec<&str> = deferred.iter().map(|f| f.address.as_str()).collect();
                            let error = deferred.iter().map(|f| f.reply.as_str()).collect::<Vec<_>>().join("; ");
                            count(|d| d.retried += 1);
                            ctx.store.mail_partly_sent(row.id, &rest.join(","), &error, at).await
                        } else if accepted {
                            handed.push_back(handover.accepted(row.id));
                            count(|d| d.sent += 1);
                            Ok(())
                        } else {
                            let error = for_good.iter().chain(&given_up).map(|f| f.reply.as_str()).collect::<Vec<_>>().join("; ");
                            count(|d| d.failed += 1);
                            ctx.store.mail_failed(row.id, &error, None, now).await
                        };
                        if let Err(e) = outcome {
                            return failed(row.id, e);
                        }
                        for (list, source) in [(for_good, Source::Relay), (given_up, Source::Retries)] {
                            if let Err(e) = record_failures(ctx, &row, &list, source).await {
                                return failed(row.id, e);
                            }
                        }
                    }
                    Err(SendError::Permanent(e)) => {
                        tracing::warn!(outbox = row.id, kind = %row.kind, error = %e, "mail refused for good");
                        if let Err(e) = ctx.store.mail_failed(row.id, &e, None, now).await {
                            return failed(row.id, e);
                        }
                        if let Err(e) = record_failures(ctx, &row, &everyone(&row, &e), Source::Relay).await {
                            return failed(row.id, e);
                        }
                        count(|d| d.failed += 1);
                    }
                    Err(SendError::Transient(e)) if slot.unreachable => {
                        // the relay is down, not this message: no attempt
                        // counted, and the claim is tried again soon, so
                        // that the queue goes out within RELAY_DOWN_RETRY of
                        // the relay's return (not after a growing back-off)
                        let at = now + RELAY_DOWN_RETRY;
                        tracing::warn!(outbox = row.id, error = %e, retry_at = %at, "relay unreachable; mail kept, tried again soon");
                        if let Err(e) = ctx.store.relay_unreachable(row.id, at, &e).await {
                            return failed(row.id, e);
                        }
                        count(|d| d.retried += 1);
                        retry_rest_at.lock().expect("not poisoned").get_or_insert(at);
                    }
                    Err(SendError::Transient(e)) if row.attempts >= MAIL_MAX_AGE_ATTEMPTS => {
                        tracing::warn!(outbox = row.id, error = %e, attempts = row.attempts, "mail given up after too many attempts");
                        if let Err(e) = ctx.store.mail_failed(row.id, &e, None, now).await {
                            return failed(row.id, e);
                        }
                        if let Err(e) = record_failures(ctx, &row, &everyone(&row, &e), Source::Retries).await {
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
        if stop.load(SeqCst) || shutting_down() {
            // recording a sent mail failed (the caller says so), or the
            // daemon stops: the rest of the claim is given back
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

/// Every recipient of `row`, refused with `reply`.
fn everyone(row: &OutboxMailRow, reply: &str) -> Vec<Failed> {
    delivery::without(&row.recipients, &[])
        .into_iter()
        .map(|a| Failed {
            address: a.to_string(),
            reply: reply.to_string(),
        })
        .collect()
}

/// Records recipients of `row` who did not get it on its ticket (and
/// tells the agents when the customer is one of them), in a transaction
/// of its own.
async fn record_failures(
    ctx: &Ctx<'_>,
    row: &OutboxMailRow,
    failed: &[Failed],
    source: Source,
) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let Some(ticket_id) = row.ticket_id else {
        for f in failed {
            tracing::error!(outbox = row.id, kind = %row.kind, address = %f.address, reply = %f.reply,
                "mail without a ticket not delivered to a recipient");
        }
        return Ok(());
    };
    let mut tx = ctx.store.begin().await?;
    let mail = undelivered::Mail {
        ticket_id,
        outbox_id: Some(row.id),
        message_id: &row.message_id,
        kind: &row.kind,
    };
    undelivered::record(&mut tx, ctx, &mail, failed, source).await?;
    tx.commit().await
}

/// One queued message over one of the connections: the recipients the
/// relay refused (see [`SmtpSession::send_raw`]).
async fn send_one(
    smtp: &SmtpSender,
    slot: &mut Slot,
    row: &OutboxMailRow,
) -> Result<Vec<Refused>, SendError> {
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
    fn sent_marks_wait_for_company_only_while_nobody_needs_them() {
        let ms = StdDuration::from_millis;
        // (pending, connections, someone waits, waited, more can come) -> now?
        for (pending, gather, waits, waited, open, now) in [
            // one connection: its mark is recorded while it sends the next
            (1, 1, false, ms(0), true, true),
            // eight: the first marks wait for the others' ...
            (1, 8, false, ms(0), true, false),
            (7, 8, false, ms(19), true, false),
            // ... until there is one a connection
            (8, 8, false, ms(0), true, true),
            (30, 8, false, ms(0), true, true),
            // a connection that waits for its mark is never kept waiting
            (1, 8, true, ms(0), true, true),
            // a mark is never held long (a kill meanwhile would resend it)
            (1, 8, false, MARKS_GATHERED_FOR, true, true),
            // the sending is over: nothing more will come
            (2, 8, false, ms(0), false, true),
        ] {
            assert_eq!(
                record_sent_now(pending, gather, waits, waited, open),
                now,
                "{pending} pending over {gather} connections, waits {waits}, after {waited:?}, open {open}"
            );
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
