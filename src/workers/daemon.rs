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
use crate::adapters::imap::Mailbox;
use crate::adapters::smtp::SmtpSender;
use crate::mail::templates::Templates;
use crate::rules::health::{Failed, Streak};
use crate::settings::Settings;
use crate::store::{Store, fault_of};

use super::health::{self, Health};
pub use super::mailbox_pass::{
    FirstContact, PassReport, Selection, dry_run_pass, import, mailbox_pass, select,
};
use super::metrics::{self, Metrics};
use super::watchdog::Watchdog;
use super::{Ctx, deliver, retention, sweep};
use crate::adapters::systemd;
use crate::rules::webhooks::lanes;

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
    /// OAuth2 access tokens (`[oauth2]`), shared by the IMAP and SMTP logins.
    pub oauth: Option<Arc<super::oauth::OAuthTokens>>,
    /// What `/metrics` and `/readyz` show; kept across reloads too.
    pub metrics: Arc<Metrics>,
    /// The loops' signs of life, for systemd's watchdog; kept too.
    pub watchdog: Arc<Watchdog>,
}

impl Runtime {
    pub async fn start(settings: Settings, clock: Clock) -> anyhow::Result<Runtime> {
        let store = Store::connect(&settings.database.url).await?;
        store.migrate().await?;
        let templates = Templates::load(settings.helpdesk.templates_dir.as_deref())?;
        let mut smtp = SmtpSender::new(&settings.smtp)?;
        // each endpoint's client (its CA file) can be made
        deliver::Lane::all(&settings)?;
        let settings = Arc::new(settings);
        let oauth = super::oauth::OAuthTokens::new(settings.clone(), store.clone())?;
        if let (Some(tokens), Some(account)) = (&oauth, &settings.smtp.username) {
            smtp = smtp.with_tokens(Arc::new(super::oauth::SmtpTokens {
                tokens: tokens.clone(),
                account: account.clone(),
            }));
        }
        Ok(Runtime {
            settings,
            store,
            templates: Arc::new(templates),
            smtp,
            clock,
            wake_delivery: Arc::new(Notify::new()),
            health: Health::new(),
            oauth,
            metrics: Metrics::new(),
            watchdog: Watchdog::new(),
        })
    }

    /// Connects to a mailbox with its login method (password or OAuth2).
    pub async fn connect_mailbox(
        &self,
        name: &str,
        imap: &crate::settings::ImapSettings,
    ) -> anyhow::Result<Mailbox> {
        super::oauth::connect_mailbox(self.oauth.as_deref(), name, imap).await
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

pub async fn run_once(rt: &Runtime) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (_tx, shutdown) = watch::channel(false);
    let ingest_done = watch::channel(false);
    let ingest = async {
        // every mailbox in turn; one that fails does not keep the others
        // from being read (the pass fails at the end, naming it)
        let pass = async {
            let mut total = PassReport::default();
            let mut failed = Vec::new();
            for feed in &rt.settings.mailboxes {
                let one = async {
                    let mut mailbox = rt.connect_mailbox(&feed.name, &feed.imap).await?;
                    let report = mailbox_pass(rt, &feed.imap, &mut mailbox, &shutdown).await?;
                    let _ = mailbox.logout().await;
                    anyhow::Ok(report)
                }
                .await;
                match one {
                    Ok(r) => total.add(r),
                    Err(e) => {
                        tracing::error!(mailbox = %feed.name, error = format!("{e:#}"), "mailbox pass failed");
                        failed.push(format!("{}: {e:#}", feed.name));
                    }
                }
            }
            if failed.is_empty() {
                anyhow::Ok(total)
            } else {
                Err(anyhow::anyhow!("mailbox pass failed for {}", failed.join("; ")))
            }
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
    report.log("mailbox pass done");
    let (mut mail, first_claim) = delivered?;
    let closed = sweep::sweep(&rt.ctx()).await?;
    let kept = retention::run(&rt.ctx(), shutdown.clone()).await?;
    if closed > 0 {
        mail.add(deliver::deliver_mail_over(&rt.ctx(), &rt.smtp, &mut link).await?);
    }
    let delivery_ms = first_claim.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
    link.close().await;
    let mut lanes = deliver::Lane::all(&rt.settings)?;
    let hooks = deliver::deliver_webhooks(&rt.ctx(), &mut lanes).await?;
    tracing::info!(
        closed,
        mail_sent = mail.sent,
        mail_retried = mail.retried,
        mail_failed = mail.failed,
        webhooks_sent = hooks.sent,
        webhooks_retried = hooks.retried,
        webhooks_failed = hooks.failed,
        webhooks_postponed = hooks.postponed,
        "pass done"
    );
    // timings: the mailbox pass (connect to last commit) and the mail
    // delivery (first claim to last message handed to SMTP); they overlap
    println!(
        "{}",
        serde_json::json!({"mailbox": report, "auto_closed": closed, "retention": kept, "mail": mail, "webhooks": hooks,
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
    if rt.settings.metrics.is_some()
        && let Err(e) = rt.metrics.start_counting(&rt.store).await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            "metrics: cannot read where counting starts"
        );
    }
    // the mailbox pass wakes the mail loop after each committed batch
    let wake = Wake {
        mail: rt.wake_delivery.clone(),
        webhooks: Arc::new(watch::channel(0).0),
    };
    // one loop (and IDLE connection) per mailbox: one that fails backs
    // off alone while the others read on
    let feeds: Vec<_> = rt
        .settings
        .mailboxes
        .iter()
        .map(|feed| {
            tokio::spawn(imap_loop(
                rt.clone(),
                feed.clone(),
                shutdown.clone(),
                wake.clone(),
            ))
        })
        .collect();
    let imap = tokio::spawn(async move {
        for r in futures::future::join_all(feeds).await {
            r.context("a mailbox loop panicked")??;
        }
        anyhow::Ok(())
    });
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
    let retainer = tokio::spawn(retention_loop(rt.clone(), shutdown.clone()));
    let announcer = tokio::spawn(health::announce(
        rt.health.clone(),
        rt.settings.clone(),
        // its own client: the store may be what fails, and the lanes' are
        // per endpoint
        crate::adapters::webhook_http::WebhookClient::new().map_err(anyhow::Error::msg)?,
        shutdown.clone(),
    ));
    let listener = tokio::spawn(metrics_listener(rt.clone(), shutdown.clone()));
    let prober = tokio::spawn(probe(rt.clone(), shutdown.clone()));
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
        ("retention", Box::pin(retainer)),
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
        (
            "metrics probe",
            Box::pin(optional(tokio::spawn(async move {
                prober.await.map_err(anyhow::Error::from)
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
    let metrics = rt.metrics.clone();
    health_http::serve(
        listener,
        move |path| {
            let view = health.view();
            match path.split('?').next().unwrap_or("") {
                "/metrics" => crate::rules::health::Answer {
                    status: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body: metrics.render(&view),
                },
                "/readyz" => crate::rules::health::readyz(&metrics.readiness(&view)),
                _ => crate::rules::health::answer(path, &view),
            }
        },
        shutdown,
    )
    .await;
}

/// With `[metrics]`: reads the outboxes and pings the store and clamd
/// every few seconds, for `/metrics` and `/readyz`.
async fn probe(rt: Arc<Runtime>, shutdown: watch::Receiver<bool>) {
    if rt.settings.metrics.is_none() {
        return;
    }
    let clamd = rt.settings.antivirus.as_ref().map(|a| a.clamd.clone());
    metrics::probe_loop(rt.metrics.clone(), rt.store.clone(), clamd, shutdown).await;
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
    feed: crate::settings::MailboxSettings,
    mut shutdown: watch::Receiver<bool>,
    wake: Wake,
) -> anyhow::Result<()> {
    let imap = &feed.imap;
    let name = feed.name.as_str();
    let mut backoff = StdDuration::from_secs(1);
    // failed passes in a row (the connection is fine, the pass is not)
    let mut passes = Streak::default();
    let watched = super::watchdog::mailbox_loop(&imap.checkpoint_key());
    while !*shutdown.borrow() {
        let mut mailbox = match rt.connect_mailbox(name, imap).await {
            Ok(m) => {
                backoff = StdDuration::from_secs(1);
                m
            }
            Err(e) => {
                tracing::warn!(
                    mailbox = name,
                    error = format!("{e:#}"),
                    retry_in_seconds = backoff.as_secs(),
                    "IMAP connection failed"
                );
                if sleep_or_shutdown(backoff, &mut shutdown).await {
                    break;
                }
                backoff = (backoff * 2).min(StdDuration::from_secs(300));
                continue;
            }
        };
        tracing::info!(mailbox = name, host = %imap.host, folder = %imap.folder, idle = mailbox.supports_idle(), "mailbox connected");
        let key = imap.checkpoint_key();
        rt.metrics.mailbox_connected(&key, true);
        rt.watchdog.connected();
        loop {
            rt.watchdog.busy(&watched);
            match mailbox_pass(&rt, imap, &mut mailbox, &shutdown).await {
                Ok(report) => {
                    rt.metrics.mailbox_pass(&key, &report);
                    systemd::status(&format!(
                        "last mailbox pass {}: {} fetched, {} new tickets, {} added to tickets, {} problems",
                        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
                        report.fetched,
                        report.new_tickets,
                        report.appended,
                        report.unplaced
                    ));
                    if let Some(r) = passes.succeed() {
                        resumed(&rt, "mailbox pass", r, true);
                    }
                    if report.fetched > 0 {
                        report.log("mailbox pass");
                        wake.both();
                    }
                }
                Err(e) => {
                    // back off: 1 s, 2, 4 … a minute; one line each
                    let fault = fault_of(&e);
                    let failed = passes.fail(fault, chrono::Utc::now());
                    failed_pass(&rt, "mailbox pass", &failed, fault, &e, true);
                    systemd::status(&format!(
                        "mailbox pass failed, next try in {} s: {e:#}",
                        failed.delay.as_secs()
                    ));
                    rt.watchdog.waiting(&watched, failed.delay);
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
            let wait = StdDuration::from_secs(imap.poll_seconds.max(1));
            rt.watchdog.waiting(&watched, wait);
            if let Err(e) = mailbox.wait_for_news(wait, &mut shutdown.clone()).await {
                tracing::warn!(error = format!("{e:#}"), "IMAP wait failed; reconnecting");
                break;
            }
        }
        rt.metrics.mailbox_connected(&key, false);
        let _ = mailbox.logout().await;
    }
    rt.watchdog.gone(&watched);
    Ok(())
}

/// The loops' names for the watchdog (each mailbox's: [`super::watchdog::mailbox_loop`]).
const MAIL_LOOP: &str = "mail delivery";
const LIFECYCLE_LOOP: &str = "lifecycle";

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
        rt.watchdog.busy(MAIL_LOOP);
        let ctx = rt.ctx();
        let result = deliver::deliver_mail_over(&ctx, &rt.smtp, &mut link)
            .await
            .map(|d| rt.metrics.mail_delivered(&d));
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
                rt.watchdog.waiting(MAIL_LOOP, failed.delay);
                if sleep_or_shutdown(failed.delay, &mut shutdown).await {
                    break;
                }
                continue;
            }
        }
        rt.watchdog.waiting(MAIL_LOOP, StdDuration::from_secs(5));
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(StdDuration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
    rt.watchdog.gone(MAIL_LOOP);
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
        match deliver::lane_pass(&ctx, &mut lane, &mut shutdown).await {
            Ok(d) => rt.metrics.webhooks_delivered(&d),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "webhook delivery pass failed"),
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
        rt.watchdog.busy(LIFECYCLE_LOOP);
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
        rt.watchdog
            .waiting(LIFECYCLE_LOOP, StdDuration::from_secs(60));
        if sleep_or_shutdown(StdDuration::from_secs(60), &mut shutdown).await {
            break;
        }
    }
    rt.watchdog.gone(LIFECYCLE_LOOP);
    Ok(())
}

const RETENTION_EVERY: StdDuration = StdDuration::from_secs(60 * 60);

/// `[retention]`: at start, then hourly. A long purge rests between its
/// batches (see `rules::retention::rest_after_batch`) and stops at a
/// shutdown between two batches.
async fn retention_loop(
    rt: Arc<Runtime>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    while !*shutdown.borrow() {
        if let Err(e) = retention::run(&rt.ctx(), shutdown.clone()).await {
            if let Some(fault) = fault_of(&e) {
                rt.health.store_error(fault);
            }
            tracing::warn!(
                error = format!("{e:#}"),
                "retention failed; next try in an hour"
            )
        }
        if sleep_or_shutdown(RETENTION_EVERY, &mut shutdown).await {
            break;
        }
    }
    Ok(())
}
