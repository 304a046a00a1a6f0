//! `guichet run`: the IMAP loop, the outbox and sweep timers, SIGHUP reload
//! and clean shutdown.
//!
//! Shutdown is a `watch` value handed to every loop (mini-redis style): a
//! loop checks it between messages, never inside one, so the message in
//! hand is either committed or left untouched on the server.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use crate::adapters::health_http;
use crate::adapters::imap::{FetchedMail, Mailbox};
use crate::adapters::smtp::SmtpSender;
use crate::mail::templates::Templates;
use crate::rules::health::{Failed, Streak};
use crate::settings::{FirstStart, Settings};
use crate::store::{Store, fault_of};

use super::health::{self, Health};
use super::ingest::{self, BatchItem, Options, Outcome, Source};
use super::{Ctx, deliver, sweep};
use crate::rules::webhooks::lanes;

/// What a pass over the mailbox did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PassReport {
    pub fetched: usize,
    pub new_tickets: usize,
    pub appended: usize,
    pub already_seen: usize,
    pub unplaced: usize,
    /// Messages a first contact left as history.
    pub left_as_history: usize,
}

/// The clock: real time, or the instant `--now` gave.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Everything that lives as long as the daemon.
pub struct Runtime {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub templates: Arc<Templates>,
    pub smtp: SmtpSender,
    pub clock: Clock,
    /// Raised when mail was queued: the outbox is drained at once.
    pub wake_delivery: Arc<Notify>,
    /// Store faults seen and whether intake is paused (`[metrics]`,
    /// system events). `run_daemon` keeps one across reloads.
    pub health: Arc<Health>,
}

impl Runtime {
    pub async fn start(settings: Settings, clock: Clock) -> anyhow::Result<Runtime> {
        let store = Store::connect(&settings.database.url).await?;
        store.migrate().await?;
        let templates = Templates::load(settings.helpdesk.templates_dir.as_deref())?;
        let smtp = SmtpSender::new(&settings.smtp)?;
        // each endpoint's client (its CA file) can be made
        deliver::Lane::all(&settings)?;
        Ok(Runtime {
            settings: Arc::new(settings),
            store,
            templates: Arc::new(templates),
            smtp,
            clock,
            wake_delivery: Arc::new(Notify::new()),
            health: Health::new(),
        })
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            store: &self.store,
            templates: &self.templates,
            now: self.clock.now(),
        }
    }
}

fn mailbox_key(s: &Settings) -> String {
    format!("{}@{}/{}", s.imap.username, s.imap.host, s.imap.folder)
}

/// One pass over the mailbox: repair flags left by a crash, then ingest
/// every message after the last UID, in batches of one transaction each,
/// flagging them once committed.
pub async fn mailbox_pass(
    rt: &Runtime,
    mailbox: &mut Mailbox,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<PassReport> {
    let s = &rt.settings;
    let key = mailbox_key(s);
    let validity = mailbox.uid_validity();
    let mut report = PassReport::default();
    let selection = select(rt, mailbox, &key, validity).await?;
    if let Some(first) = &selection.first_contact {
        tracing::info!(
            mailbox = %key,
            first_start = s.imap.first_start.as_str(),
            "first contact with this mailbox: {} message(s) taken, {} left as history (imap.first_start = {:?})",
            selection.take.len(),
            first.left_alone,
            s.imap.first_start.as_str()
        );
        rt.store
            .first_checkpoint(
                &key,
                i64::from(validity),
                i64::from(first.last_uid),
                i64::from(first.catch_up_from),
            )
            .await?;
        report.left_as_history = first.left_alone;
    }
    // committed but not flagged (a crash between the two): flag them now,
    // only those really stored (history left on a first start is not)
    if !selection.unmarked_stored.is_empty() {
        mailbox.mark_processed(&selection.unmarked_stored).await?;
    }
    let news = selection.take;
    let mut groups = fetch_groups(&news).into_iter().peekable();
    let mut next = match groups.next() {
        Some(group) => Some((group, mailbox.fetch(&uids_of(group)).await?)),
        None => None,
    };
    while let Some((group, mails)) = next.take() {
        if *shutdown.borrow() {
            break;
        }
        if is_big(group) {
            // alone, and nothing fetched meanwhile: see `ingest_big`
            let done = ingest_big(rt, mailbox, &key, validity, mails, &mut report).await?;
            mailbox.mark_processed(&done).await?;
            next = match groups.next() {
                Some(group) => Some((group, mailbox.fetch(&uids_of(group)).await?)),
                None => None,
            };
            continue;
        }
        // the next group comes over IMAP while this one is ingested,
        // unless it is a big message (fetched once this one is done)
        let following = groups.next_if(|g| !is_big(g));
        let (fetched, ingested) = tokio::join!(
            async {
                match following {
                    Some(group) => mailbox
                        .fetch(&uids_of(group))
                        .await
                        .map(|mails| Some((group, mails))),
                    None => Ok(None),
                }
            },
            ingest_chunk(rt, &key, validity, &mails, shutdown, &mut report)
        );
        let done = ingested?;
        mailbox.mark_processed(&done).await?;
        next = match fetched? {
            Some(fetched) => Some(fetched),
            None => match groups.next() {
                Some(group) => Some((group, mailbox.fetch(&uids_of(group)).await?)),
                None => None,
            },
        };
    }
    Ok(report)
}

/// What one pass takes from the mailbox, decided before it takes it.
pub struct Selection {
    /// `(uid, size)` to ingest, ascending: new mail, and unread mail below
    /// the checkpoint that was never stored (catch-up).
    pub take: Vec<(u32, u32)>,
    /// Unflagged UIDs below the checkpoint whose message is stored.
    pub unmarked_stored: Vec<u32>,
    /// Set on the first pass over a mailbox without a checkpoint.
    pub first_contact: Option<FirstContact>,
    /// Messages in the mailbox.
    pub waiting: usize,
}

/// The checkpoint a first contact writes, and what it leaves.
pub struct FirstContact {
    pub last_uid: u32,
    pub catch_up_from: u32,
    pub left_alone: usize,
}

/// What this pass takes (SPEC "Running it": first contact takes unread
/// mail only, `imap.first_start`), reading the mailbox and the store but
/// changing neither.
pub async fn select(
    rt: &Runtime,
    mailbox: &mut Mailbox,
    key: &str,
    validity: u32,
) -> anyhow::Result<Selection> {
    let all = mailbox.uids_after(0).await?;
    let waiting = all.len();
    let highest = all.iter().copied().max().unwrap_or(0);
    let (last, catch_up_from, first_contact) = match rt.store.mailbox_checkpoint(key).await? {
        Some((v, last, from)) if v == i64::from(validity) => (last as u32, from as u32, None),
        Some(_) => {
            tracing::warn!(mailbox = %key, "UIDVALIDITY changed: reading the whole mailbox again (duplicates are recognised; mail older than helpdesk.old_mail_days gets no automatic mail)");
            (0, 0, None)
        }
        None => match rt.settings.imap.first_start {
            FirstStart::All => (0, 0, None),
            // the checkpoint passes the history at once; the unread mail
            // below it is taken by the catch-up, this pass and (if it is
            // cut short) the next
            FirstStart::Unseen => (highest, 0, Some(highest)),
            FirstStart::New => (highest, highest, Some(highest)),
        },
    };
    let unmarked = mailbox.unmarked_up_to(last).await?;
    let stored = rt.store.stored_uids(key, &unmarked).await?;
    let unseen = mailbox.unseen_between(catch_up_from, last).await?;
    let catch_up: Vec<u32> = unseen
        .into_iter()
        .filter(|u| stored.binary_search(u).is_err())
        .collect();
    let mut take = mailbox.sizes_of(&catch_up).await?;
    take.extend(mailbox.sizes_after(last).await?);
    take.sort_unstable();
    take.dedup_by_key(|(uid, _)| *uid);
    Ok(Selection {
        first_contact: first_contact.map(|last_uid| FirstContact {
            last_uid,
            catch_up_from,
            left_alone: waiting - take.len(),
        }),
        take,
        unmarked_stored: stored,
        waiting,
    })
}

/// UIDs per FETCH, and their bytes: the next group is read while one is
/// ingested, so at most two groups' bytes are in memory.
const FETCH_CHUNK: usize = 200;
const FETCH_BYTES: u64 = 8 << 20;
/// A message this big is fetched and ingested alone (see `ingest_big`).
const BIG_MESSAGE: u64 = 4 << 20;

/// The new messages (UID, size) cut into FETCH groups: consecutive UIDs,
/// up to [`FETCH_CHUNK`] messages and [`FETCH_BYTES`] bytes, a big
/// message alone.
fn fetch_groups(news: &[(u32, u32)]) -> Vec<&[(u32, u32)]> {
    let mut groups = Vec::new();
    let mut rest = news;
    while !rest.is_empty() {
        // a big message counts as filling a group by itself
        let sizes = rest.iter().map(|&(_, size)| match u64::from(size) {
            big if big >= BIG_MESSAGE => u64::MAX,
            size => size,
        });
        let (group, tail) = rest.split_at(leading_fit(sizes, FETCH_CHUNK, FETCH_BYTES));
        groups.push(group);
        rest = tail;
    }
    groups
}

/// How many of the leading items, of these sizes, fit in `max_items` and
/// `max_bytes`: at least one (a lone item too big goes alone).
fn leading_fit(sizes: impl Iterator<Item = u64>, max_items: usize, max_bytes: u64) -> usize {
    let mut bytes = 0u64;
    let mut n = 0;
    for size in sizes.take(max_items) {
        bytes = bytes.saturating_add(size);
        if n > 0 && bytes > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

fn is_big(group: &[(u32, u32)]) -> bool {
    matches!(group, [(_, size)] if u64::from(*size) >= BIG_MESSAGE)
}

fn uids_of(group: &[(u32, u32)]) -> Vec<u32> {
    group.iter().map(|(uid, _)| *uid).collect()
}

/// A big message, in a transaction of its own, given its bytes: ingest
/// drops them once they are stored, before building the mail it causes
/// (the agents' copy, which carries its files), so that the message is
/// not in memory twice over. When that fails, it is fetched again and
/// handled like a failed batch.
async fn ingest_big(
    rt: &Runtime,
    mailbox: &mut Mailbox,
    key: &str,
    validity: u32,
    mails: Vec<FetchedMail>,
    report: &mut PassReport,
) -> anyhow::Result<Vec<u32>> {
    let mut done = Vec::with_capacity(mails.len());
    for mail in mails {
        let uid = mail.uid;
        let source = source_of(key, validity, uid, mail.arrived_at);
        let ctx = rt.ctx();
        let outcome = match ingest::ingest(&ctx, mail.raw, &source, Options::default()).await {
            Ok((outcome, _)) => outcome,
            // the store cannot take it: the pass stops, the message waits
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    uid,
                    error = format!("{e:#}"),
                    "big message failed; fetching it again to handle it one more way"
                );
                let again = mailbox.fetch(&[uid]).await?;
                let mut outcomes = ingest_one_by_one(rt, key, validity, &again).await?;
                match outcomes.pop() {
                    Some(outcome) => outcome,
                    // gone from the server meanwhile: nothing to flag
                    None => continue,
                }
            }
        };
        crash_hook();
        count(report, outcome);
        done.push(uid);
        rt.wake_delivery.notify_one();
    }
    Ok(done)
}

fn source_of(
    key: &str,
    validity: u32,
    uid: u32,
    arrived_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Source {
    Source {
        arrived_at,
        mailbox: Some(key.to_string()),
        uid: Some(uid),
        uid_validity: Some(validity),
    }
}

/// Test hook: die like `kill -9` between the commit and the IMAP flag, to
/// prove that a restart neither loses nor repeats.
fn crash_hook() {
    if std::env::var_os("GUICHET_TEST_CRASH_AFTER_COMMIT").is_some() {
        std::process::abort();
    }
}

fn count(report: &mut PassReport, outcome: Outcome) {
    report.fetched += 1;
    match outcome {
        Outcome::AlreadySeen => report.already_seen += 1,
        Outcome::Ticket { created: true, .. } => report.new_tickets += 1,
        Outcome::Ticket { .. } => report.appended += 1,
        Outcome::Unplaced { .. } => report.unplaced += 1,
    }
}

/// The slow path: one message per transaction; a message that still fails
/// is stored raw with its error (it must never block the mailbox).
async fn ingest_one_by_one(
    rt: &Runtime,
    key: &str,
    validity: u32,
    batch: &[FetchedMail],
) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for mail in batch {
        let ctx = rt.ctx();
        let source = source_of(key, validity, mail.uid, mail.arrived_at);
        outcomes.push(match ingest_retrying(&ctx, &mail.raw, &source).await {
            Ok(o) => o,
            // the store cannot take it (disk full, read-only, I/O errors,
            // database away): not this message's problem, so it is not
            // stored raw as one; the pass stops and the message waits on
            // the server, unflagged, for the store to come back
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                tracing::error!(
                    uid = mail.uid,
                    error = format!("{e:#}"),
                    "cannot handle message; storing it raw"
                );
                ingest::store_unhandled(&ctx, &mail.raw, &source, &format!("{e:#}"))
                    .await
                    .context("cannot even store the message raw")?
            }
        });
    }
    Ok(outcomes)
}
/// Messages per transaction, and their bytes: fewer commits, bounded memory.
const BATCH_MESSAGES: usize = 50;
const BATCH_BYTES: u64 = 8 << 20;

/// Ingests fetched mail in transactions of a few dozen messages; returns
/// the UIDs committed (to be flagged).
async fn ingest_chunk(
    rt: &Runtime,
    key: &str,
    validity: u32,
    mails: &[FetchedMail],
    shutdown: &watch::Receiver<bool>,
    report: &mut PassReport,
) -> anyhow::Result<Vec<u32>> {
    let mut done = Vec::with_capacity(mails.len());
    let mut rest = mails;
    while !rest.is_empty() && !*shutdown.borrow() {
        let sizes = rest.iter().map(|m| m.raw.len() as u64);
        let (batch, tail) = rest.split_at(leading_fit(sizes, BATCH_MESSAGES, BATCH_BYTES));
        rest = tail;
        let items: Vec<BatchItem<'_>> = batch
            .iter()
            .map(|m| BatchItem {
                raw: &m.raw,
                source: source_of(key, validity, m.uid, m.arrived_at),
            })
            .collect();
        let ctx = rt.ctx();
        let outcomes = match ingest::ingest_batch(&ctx, &items).await {
            Ok(outcomes) => outcomes,
            // one by one would fail the same way: the pass stops
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                // something in the batch failed and nothing of it was
                // committed: one message per transaction, as the slow path
                tracing::warn!(
                    error = format!("{e:#}"),
                    "batch failed; ingesting its messages one by one"
                );
                ingest_one_by_one(rt, key, validity, batch).await?
            }
        };
        crash_hook();
        for outcome in outcomes {
            count(report, outcome);
        }
        done.extend(batch.iter().map(|m| m.uid));
        // what this batch queued may go out while the next one is ingested
        rt.wake_delivery.notify_one();
    }
    Ok(done)
}

/// Ingest, tried again (a few times, briefly) when the database refused
/// its transaction because of a concurrent one, another daemon's for
/// instance: such a message is handled normally on the next try instead
/// of being stored raw as a problem.
async fn ingest_retrying(
    ctx: &super::Ctx<'_>,
    raw: &[u8],
    source: &Source,
) -> anyhow::Result<Outcome> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match ingest::ingest(ctx, raw, source, Options::default()).await {
            Ok((outcome, _)) => return Ok(outcome),
            Err(e) if attempt < ATTEMPTS && crate::store::is_retryable(&e) => {
                tracing::info!(
                    uid = source.uid,
                    attempt,
                    error = format!("{e:#}"),
                    "transaction refused because of a concurrent one; trying again"
                );
                tokio::time::sleep(StdDuration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `run --once`: new mail, due lifecycle work, queued deliveries; then exit.
/// The outbox is drained while the mailbox is read (each batch's mail goes
/// out as soon as it is committed), over one SMTP connection.
/// What a pass would do, changing nothing: per mailbox, the messages
/// waiting, those it would take, those it would leave as history, and the
/// mails and webhook events they would cause (each message decided alone,
/// in a transaction rolled back).
pub async fn dry_run_pass(rt: &Runtime) -> anyhow::Result<serde_json::Value> {
    let key = mailbox_key(&rt.settings);
    let mut mailbox = Mailbox::connect(&rt.settings.imap).await?;
    let validity = mailbox.uid_validity();
    let selection = select(rt, &mut mailbox, &key, validity).await?;
    let uids: Vec<u32> = selection.take.iter().map(|(uid, _)| *uid).collect();
    let (mut mails, mut events, mut tickets) = (0usize, 0usize, 0usize);
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for chunk in uids.chunks(50) {
        for mail in mailbox.fetch(chunk).await? {
            let source = source_of(&key, validity, mail.uid, mail.arrived_at);
            let opts = Options {
                dry_run: true,
                import: false,
            };
            let (outcome, trace) = ingest::ingest(&rt.ctx(), mail.raw, &source, opts).await?;
            if matches!(outcome, Outcome::Ticket { created: true, .. }) {
                tickets += 1;
            }
            for step in &trace.steps {
                if let Some(kind) = step
                    .data
                    .as_ref()
                    .and_then(|d| d.get("send"))
                    .and_then(|k| k.as_str())
                {
                    mails += 1;
                    *by_kind.entry(kind.to_string()).or_default() += 1;
                }
                if step.stage == "event" {
                    events += 1;
                }
            }
        }
    }
    let _ = mailbox.logout().await;
    Ok(serde_json::json!({
        "mailbox": key,
        "first_contact": selection.first_contact.is_some(),
        "first_start": rt.settings.imap.first_start.as_str(),
        "waiting": selection.waiting,
        "would_take": uids.len(),
        "left_as_history": selection.first_contact.as_ref().map_or(0, |f| f.left_alone),
        "would_open_tickets": tickets,
        "would_send": mails,
        "would_send_by_kind": by_kind,
        "would_fire_events": events,
    }))
}

/// `guichet import`: existing mail of a folder becomes tickets, sending
/// nothing and firing no webhook event; the mailbox's checkpoint and
/// flags are left as they are. Messages stored already are recognised.
pub async fn import(
    rt: &Runtime,
    folder: Option<&str>,
    since: Option<chrono::NaiveDate>,
) -> anyhow::Result<PassReport> {
    let mut imap = rt.settings.imap.clone();
    if let Some(f) = folder {
        imap.folder = f.to_string();
    }
    let mut mailbox = Mailbox::connect(&imap).await?;
    let uids = mailbox.uids_since(since).await?;
    let mut report = PassReport::default();
    for chunk in uids.chunks(50) {
        for mail in mailbox.fetch(chunk).await? {
            let source = Source {
                arrived_at: mail.arrived_at,
                ..Source::default()
            };
            let opts = Options {
                dry_run: false,
                import: true,
            };
            let outcome = match ingest::ingest(&rt.ctx(), &mail.raw, &source, opts).await {
                Ok((o, _)) => o,
                Err(e) => ingest::store_unhandled(&rt.ctx(), &mail.raw, &source, &format!("{e:#}"))
                    .await
                    .context("cannot even store the message raw")?,
            };
            count(&mut report, outcome);
        }
    }
    let _ = mailbox.logout().await;
    Ok(report)
}

pub async fn run_once(rt: &Runtime) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (_tx, shutdown) = watch::channel(false);
    let ingest_done = watch::channel(false);
    let ingest = async {
        let pass = async {
            let mut mailbox = Mailbox::connect(&rt.settings.imap).await?;
            let report = mailbox_pass(rt, &mut mailbox, &shutdown).await?;
            let _ = mailbox.logout().await;
            anyhow::Ok(report)
        }
        .await;
        let _ = ingest_done.0.send(true);
        pass
    };
    let mut link = deliver::SmtpLink::default();
    let delivery = async {
        let mut total = deliver::Delivered::default();
        let mut first_claim = None;
        let mut done_rx = ingest_done.1.clone();
        loop {
            // a pass that starts after the mailbox pass ended sees all its mail
            let ingest_over = *done_rx.borrow_and_update();
            let pass_started = std::time::Instant::now();
            let d = deliver::deliver_mail_over(&rt.ctx(), &rt.smtp, &mut link).await?;
            if d.sent + d.failed + d.retried > 0 {
                first_claim.get_or_insert(pass_started);
            }
            total.add(d);
            if ingest_over || d.retried > 0 {
                break;
            }
            if d.sent + d.failed == 0 {
                tokio::select! {
                    _ = rt.wake_delivery.notified() => {}
                    _ = done_rx.changed() => {}
                }
            }
        }
        anyhow::Ok((total, first_claim))
    };
    let (report, delivered) = tokio::join!(ingest, delivery);
    let ingest_ms = started.elapsed().as_secs_f64() * 1000.0;
    let report = report?;
    tracing::info!(?report, "mailbox pass done");
    let (mut mail, first_claim) = delivered?;
    let closed = sweep::sweep(&rt.ctx()).await?;
    if closed > 0 {
        mail.add(deliver::deliver_mail_over(&rt.ctx(), &rt.smtp, &mut link).await?);
    }
    let delivery_ms = first_claim.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
    link.close().await;
    let mut lanes = deliver::Lane::all(&rt.settings)?;
    let hooks = deliver::deliver_webhooks(&rt.ctx(), &mut lanes).await?;
    tracing::info!(closed, ?mail, ?hooks, "pass done");
    // timings: the mailbox pass (connect to last commit) and the mail
    // delivery (first claim to last message handed to SMTP); they overlap
    println!(
        "{}",
        serde_json::json!({"mailbox": report, "auto_closed": closed, "mail": mail, "webhooks": hooks,
            "timings": {"ingest_ms": ingest_ms, "delivery_ms": delivery_ms,
                "total_ms": started.elapsed().as_secs_f64() * 1000.0}})
    );
    Ok(())
}

/// Wakes the mail loop and the webhook lanes when a pass has queued
/// something for them.
#[derive(Clone)]
struct Wake {
    mail: Arc<Notify>,
    /// A counter every lane watches: a lane busy when it moves sees the
    /// change on its next wait, so nothing queued meanwhile waits for the
    /// timer.
    webhooks: Arc<watch::Sender<u64>>,
}

impl Wake {
    fn both(&self) {
        // `notify_one` keeps a permit when the loop is busy: the next wait
        // returns at once
        self.mail.notify_one();
        self.webhooks.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The daemon: runs until `shutdown` turns true.
pub async fn run_forever(rt: Arc<Runtime>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    match rt.store.release_dead_claims().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            claims = n,
            "claims of a daemon that died are due again at once"
        ),
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "cannot release the claims of a daemon that died; they are due when their lease ends"
        ),
    }
    // the mailbox pass wakes the mail loop after each committed batch
    let wake = Wake {
        mail: rt.wake_delivery.clone(),
        webhooks: Arc::new(watch::channel(0).0),
    };
    let imap = tokio::spawn(imap_loop(rt.clone(), shutdown.clone(), wake.clone()));
    // The mail loop and one lane per webhook endpoint, so that none waits
    // for another: a webhook is not held up by the SMTP server's answers
    // (tens of ms a message), nor mail or another endpoint by an endpoint
    // that hangs.
    let mail = tokio::spawn(mail_loop(rt.clone(), shutdown.clone(), wake.mail.clone()));
    let hooks = tokio::spawn(webhook_lanes(
        rt.clone(),
        shutdown.clone(),
        wake.webhooks.subscribe(),
    ));
    let sweeper = tokio::spawn(sweep_loop(rt.clone(), shutdown.clone(), wake));
    let announcer = tokio::spawn(health::announce(
        rt.health.clone(),
        rt.settings.clone(),
        // its own client: the store may be what fails, and the lanes' are
        // per endpoint
        crate::adapters::webhook_http::WebhookClient::new().map_err(anyhow::Error::msg)?,
        shutdown.clone(),
    ));
    let listener = tokio::spawn(metrics_listener(rt.clone(), shutdown.clone()));
    // Every loop runs until shutdown; one that fails or panics before
    // ends the daemon with why, so that its supervisor restarts it instead
    // of a process that looks alive and reads no mail. Those that may end
    // early by design (no webhook endpoint, no listener) just end.
    let optional = |h: tokio::task::JoinHandle<anyhow::Result<()>>| {
        let mut until = shutdown.clone();
        async move {
            match h.await {
                Ok(Ok(())) => {
                    deliver::stopped(&mut until).await;
                    Ok(Ok(()))
                }
                other => other,
            }
        }
    };
    type Watched = std::pin::Pin<
        Box<dyn Future<Output = Result<anyhow::Result<()>, tokio::task::JoinError>> + Send>,
    >;
    let mut watched: Vec<(&str, Watched)> = vec![
        ("mailbox", Box::pin(imap)),
        ("mail delivery", Box::pin(mail)),
        ("lifecycle", Box::pin(sweeper)),
        ("webhook", Box::pin(optional(hooks))),
        (
            "health announcer",
            Box::pin(optional(tokio::spawn(async move {
                announcer.await.map_err(anyhow::Error::from)
            }))),
        ),
        (
            "health listener",
            Box::pin(optional(tokio::spawn(async move {
                listener.await.map_err(anyhow::Error::from)
            }))),
        ),
    ];
    // after a shutdown, every loop is awaited (each finishes the message
    // in hand and gives back its claims); the caller bounds the wait
    while !watched.is_empty() {
        let (names, futures): (Vec<&str>, Vec<Watched>) = watched.into_iter().unzip();
        let (ended, which, rest) = futures::future::select_all(futures).await;
        let name = names[which];
        let stopping = *shutdown.borrow();
        let why = match ended {
            Ok(Ok(())) if stopping => None,
            Ok(Ok(())) => Some(anyhow::anyhow!("the {name} loop ended by itself")),
            Ok(Err(e)) => Some(e.context(format!("the {name} loop failed"))),
            Err(e) => Some(anyhow::anyhow!("the {name} loop panicked: {e}")),
        };
        if let Some(why) = why {
            if !stopping {
                tracing::error!(
                    error = format!("{why:#}"),
                    "a loop of the daemon ended: exiting so that the service restarts"
                );
                return Err(why);
            }
            tracing::warn!(error = format!("{why:#}"), "a loop failed while stopping");
        }
        // select_all removes the finished one with swap_remove: so do we
        let mut names = names;
        names.swap_remove(which);
        watched = names.into_iter().zip(rest).collect();
    }
    Ok(())
}

/// `[metrics] listen`: `/healthz`, `/readyz`, `/metrics`. A port that
/// cannot be had is logged; mail goes on without the listener.
async fn metrics_listener(rt: Arc<Runtime>, shutdown: watch::Receiver<bool>) {
    let Some(m) = rt.settings.metrics else {
        return;
    };
    let listener = match health_http::bind(m.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %m.listen, error = %e, "cannot open the health and metrics listener; running without it");
            return;
        }
    };
    tracing::info!(listen = %m.listen, "health and metrics on /healthz, /readyz, /metrics");
    let health = rt.health.clone();
    health_http::serve(
        listener,
        move |path| crate::rules::health::answer(path, &health.view()),
        shutdown,
    )
    .await;
}

/// One log line per failed pass, each a back-off step: what failed, why,
/// and when the next try is. A store fault (`fault`) is counted, and
/// pauses intake when `intake` says this is the mailbox loop.
fn failed_pass(
    rt: &Runtime,
    what: &str,
    failed: &Failed,
    fault: Option<crate::domain::Fault>,
    error: &anyhow::Error,
    intake: bool,
) {
    let retry_in = format!("{}s", failed.delay.as_secs());
    let error = format!("{error:#}");
    let (Some(cause), Some(paused)) = (fault, failed.paused) else {
        tracing::warn!(%error, failures = failed.failures, %retry_in, "{what} failed; next try in {retry_in}");
        return;
    };
    rt.health.store_error(cause);
    if intake {
        rt.health.set_paused(Some(paused));
    }
    let since = paused
        .since
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if failed.newly_paused {
        let then = if intake {
            "intake paused, new mail waits in the mailbox"
        } else {
            "paused"
        };
        tracing::warn!(%cause, %error, %retry_in, "{what}: the store cannot write ({cause}); {then}; next try in {retry_in}");
    } else {
        let still = if intake {
            "intake still paused"
        } else {
            "still paused"
        };
        tracing::warn!(%cause, %since, failures = failed.failures, %error, %retry_in, "{what}: {still} ({cause} since {since}); next try in {retry_in}");
    }
}

/// The log line of a loop working again after failures.
fn resumed(rt: &Runtime, what: &str, r: crate::rules::health::Recovered, intake: bool) {
    match r.paused {
        Some(p) => {
            let lasted = (chrono::Utc::now() - p.since).num_seconds().max(0);
            if intake {
                rt.health.set_paused(None);
            }
            let then = if intake { "intake resumed" } else { "resumed" };
            tracing::info!(cause = %p.fault, lasted_seconds = lasted, failures = r.failures,
                "{what}: {then}, the store takes writes again ({} for {lasted}s)", p.fault);
        }
        None => {
            tracing::info!(failures = r.failures, "{what} works again");
        }
    }
}

async fn sleep_or_shutdown(d: StdDuration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

async fn imap_loop(
    rt: Arc<Runtime>,
    mut shutdown: watch::Receiver<bool>,
    wake: Wake,
) -> anyhow::Result<()> {
    let mut backoff = StdDuration::from_secs(1);
    // failed passes in a row (the connection is fine, the pass is not)
    let mut passes = Streak::default();
    while !*shutdown.borrow() {
        let mut mailbox = match Mailbox::connect(&rt.settings.imap).await {
            Ok(m) => {
                backoff = StdDuration::from_secs(1);
                m
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "IMAP connection failed");
                if sleep_or_shutdown(backoff, &mut shutdown).await {
                    break;
                }
                backoff = (backoff * 2).min(StdDuration::from_secs(300));
                continue;
            }
        };
        tracing::info!(host = %rt.settings.imap.host, folder = %rt.settings.imap.folder, idle = mailbox.supports_idle(), "mailbox connected");
        loop {
            match mailbox_pass(&rt, &mut mailbox, &shutdown).await {
                Ok(report) => {
                    if let Some(r) = passes.succeed() {
                        resumed(&rt, "mailbox pass", r, true);
                    }
                    if report.fetched > 0 {
                        tracing::info!(?report, "mailbox pass");
                        wake.both();
                    }
                }
                Err(e) => {
                    // back off: 1 s, 2, 4 … a minute; one line each
                    let fault = fault_of(&e);
                    let failed = passes.fail(fault, chrono::Utc::now());
                    failed_pass(&rt, "mailbox pass", &failed, fault, &e, true);
                    if sleep_or_shutdown(failed.delay, &mut shutdown).await {
                        break;
                    }
                    if fault.is_some() {
                        // the store's fault, not the mailbox's: the same
                        // connection tries the pass again
                        continue;
                    }
                    break;
                }
            }
            if *shutdown.borrow() {
                break;
            }
            let wait = StdDuration::from_secs(rt.settings.imap.poll_seconds.max(1));
            if let Err(e) = mailbox.wait_for_news(wait, &mut shutdown.clone()).await {
                tracing::warn!(error = format!("{e:#}"), "IMAP wait failed; reconnecting");
                break;
            }
        }
        let _ = mailbox.logout().await;
    }
    Ok(())
}

async fn mail_loop(
    rt: Arc<Runtime>,
    mut shutdown: watch::Receiver<bool>,
    wake: Arc<Notify>,
) -> anyhow::Result<()> {
    let mut link = deliver::SmtpLink::default();
    // a SIGTERM stops the claim in hand after the messages in flight
    link.stop_on(shutdown.clone());
    let mut passes = Streak::default();
    let what = "mail delivery";
    while !*shutdown.borrow() {
        let ctx = rt.ctx();
        let result = deliver::deliver_mail_over(&ctx, &rt.smtp, &mut link)
            .await
            .map(|_| ());
        match result {
            Ok(()) => {
                if let Some(r) = passes.succeed() {
                    resumed(&rt, what, r, false);
                }
            }
            Err(e) => {
                // what was sent and not yet recorded is kept (link, hooks)
                // and recorded first next time; nothing more goes out
                // until then
                let fault = fault_of(&e);
                let failed = passes.fail(fault, chrono::Utc::now());
                failed_pass(&rt, what, &failed, fault, &e, false);
                if sleep_or_shutdown(failed.delay, &mut shutdown).await {
                    break;
                }
                continue;
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(StdDuration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
    // the claimed rows not sent are due again at once, for the next start
    if let Err(e) = deliver::release(&rt.ctx(), &mut link).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "cannot give back claimed mail; it is sent once its lease ends"
        );
    }
    link.close().await;
    Ok(())
}

/// An idle lane looks for due events this often (new events wake it
/// sooner, and a held endpoint's lane wakes when the hold ends).
const LANE_POLL: StdDuration = StdDuration::from_secs(5);

/// One task per webhook endpoint (its lane), until shutdown. A lane's
/// attempts in flight at shutdown are abandoned and their events stay
/// due: the daemon never waits for an endpoint to stop.
async fn webhook_lanes(
    rt: Arc<Runtime>,
    shutdown: watch::Receiver<bool>,
    wake: watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let lanes = deliver::Lane::all(&rt.settings)?;
    if lanes.is_empty() {
        return Ok(());
    }
    if let Err(e) = deliver::drop_unknown_endpoints(&rt.ctx()).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "cannot give up the events of removed webhook endpoints"
        );
    }
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|lane| tokio::spawn(lane_loop(rt.clone(), lane, shutdown.clone(), wake.clone())))
        .collect();
    for task in tasks {
        task.await.context("webhook lane panicked")?;
    }
    Ok(())
}

async fn lane_loop(
    rt: Arc<Runtime>,
    mut lane: deliver::Lane,
    mut shutdown: watch::Receiver<bool>,
    mut wake: watch::Receiver<u64>,
) {
    while !*shutdown.borrow() {
        wake.mark_unchanged();
        let ctx = rt.ctx();
        if let Err(e) = deliver::lane_pass(&ctx, &mut lane, &mut shutdown).await {
            tracing::warn!(error = format!("{e:#}"), "webhook delivery pass failed");
        }
        let wait = lanes::idle_wait(&lane.health(), rt.clock.now(), LANE_POLL);
        tokio::select! {
            // the wake's sender lives as long as the daemon's loops
            Ok(()) = wake.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            // the pass may have seen the shutdown already: `stopped`
            // looks at the value, not only at its changes
            () = deliver::stopped(&mut shutdown) => {}
        }
    }
}

const STALE_TEMP_SWEEP_EVERY: StdDuration = StdDuration::from_secs(60 * 60);

async fn sweep_loop(
    rt: Arc<Runtime>,
    mut shutdown: watch::Receiver<bool>,
    wake: Wake,
) -> anyhow::Result<()> {
    // stale temporary files: at start (a restart after a crash), then hourly
    let mut temps_swept: Option<std::time::Instant> = None;
    while !*shutdown.borrow() {
        match sweep::sweep(&rt.ctx()).await {
            // their events and notices are queued: send them now
            Ok(closed) if closed > 0 => wake.both(),
            Ok(_) => {}
            Err(e) => {
                if let Some(fault) = fault_of(&e) {
                    rt.health.store_error(fault);
                }
                tracing::warn!(
                    error = format!("{e:#}"),
                    "auto-close sweep failed; next try in 60s"
                )
            }
        }
        if temps_swept.is_none_or(|t| t.elapsed() >= STALE_TEMP_SWEEP_EVERY) {
            temps_swept = Some(std::time::Instant::now());
            sweep::remove_stale_temps(&rt.settings.attachments.storage_dir).await;
        }
        if sleep_or_shutdown(StdDuration::from_secs(60), &mut shutdown).await {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_fit_table() {
        // (sizes, max items, max bytes, how many fit)
        let table: &[(&[u64], usize, u64, usize)] = &[
            (&[], 5, 10, 0),
            (&[50], 5, 10, 1), // too big alone: still goes
            (&[4, 4, 4], 5, 10, 2),
            (&[5, 5, 5], 5, 10, 2), // exactly full
            (&[1, 1, 1, 1], 3, 10, 3),
            (&[1, u64::MAX, 1], 5, 10, 1),
            (&[u64::MAX, 1], 5, 10, 1),
        ];
        for &(sizes, items, bytes, want) in table {
            let got = leading_fit(sizes.iter().copied(), items, bytes);
            assert_eq!(got, want, "{sizes:?} in {items} items / {bytes} bytes");
        }
    }

    #[test]
    fn fetch_groups_bound_bytes_and_put_big_messages_alone() {
        const K: u32 = 1024;
        const M: u32 = 1024 * 1024;
        let many: Vec<(u32, u32)> = (1..=450).map(|uid| (uid, 2 * K)).collect();
        type Case<'a> = (&'a [(u32, u32)], &'a [usize]);
        let table: &[Case<'_>] = &[
            (&[], &[]),
            (&[(1, 10 * K)], &[1]),
            (&[(1, 10 * K), (2, 34 * M), (3, 10 * K)], &[1, 1, 1]),
            (&[(1, 34 * M), (2, 35 * M)], &[1, 1]),
            (&[(1, 3 * M), (2, 3 * M), (3, 3 * M)], &[2, 1]),
            (&many[..], &[200, 200, 50]),
        ];
        for (news, want) in table {
            let groups = fetch_groups(news);
            let sizes: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(&sizes, want, "sizes of groups of {news:?}");
            let flat: Vec<(u32, u32)> = groups.concat();
            assert_eq!(&flat[..], *news, "every message once, in order");
            for g in &groups {
                let big = g.iter().any(|(_, s)| u64::from(*s) >= BIG_MESSAGE);
                assert_eq!(is_big(g), big, "{g:?}");
                assert!(big || g.iter().map(|(_, s)| u64::from(*s)).sum::<u64>() <= FETCH_BYTES);
            }
        }
    }
}
