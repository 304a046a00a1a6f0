//! The daemon's metrics (`/metrics`, in the OpenMetrics text format that
//! Prometheus scrapes, through the `prometheus-client` crate) and what
//! `/readyz` looks at.
//!
//! The loops count what they do as they do it (messages fetched and
//! stored per mailbox, deliveries, the IMAP connection, the time from a
//! message's arrival on the server to its commit); a probe task reads the
//! rest from the store every few seconds (the outboxes' depth and age,
//! ticket events and attachment verdicts since the start, the time from
//! commit to relay acceptance) and pings the store and clamd. A scrape
//! never touches the network or the store: it reads memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::domain::Fault;
use crate::rules::health::{HealthView, MailboxReadiness, Readiness};
use crate::store::Store;

use super::deliver::Delivered;
use super::mailbox_pass::PassReport;

type Labels = Vec<(String, String)>;
type FGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// OpenMetrics' content type (Prometheus asks for it and reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How often the probe reads the store and pings clamd.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Shared by the loops of one daemon, kept across SIGHUP reloads.
pub struct Metrics {
    registry: Registry,
    fetched: Family<Labels, Counter>,
    stored: Family<Labels, Counter>,
    problems: Family<Labels, Counter>,
    tickets: Family<Labels, Counter>,
    mail: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    attachments: Family<Labels, Counter>,
    store_errors: Family<Labels, Counter>,
    up: Gauge,
    paused: Gauge,
    paused_since: Gauge,
    outbox_depth: Family<Labels, Gauge>,
    outbox_oldest: Family<Labels, FGauge>,
    dead_letters: Family<Labels, Gauge>,
    imap_connected: Family<Labels, Gauge>,
    last_fetch_age: Family<Labels, FGauge>,
    /// No series at all without `[antivirus]` (a gauge at 0 set off the
    /// shipped `GuichetAntivirusDown` alert on every desk without one).
    clamd_up: Family<Labels, Gauge>,
    store_up: Gauge,
    ingest_latency: Histogram,
    delivery_latency: Histogram,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<String, MailboxState>,
    store_answers: Option<bool>,
    clamd_answers: Option<bool>,
    /// Ticket events and attachments counted up to these ids.
    events_after: Option<i64>,
    files_after: Option<i64>,
    /// Mail sent up to this instant is in the delivery histogram.
    sent_after: Option<DateTime<Utc>>,
}

#[derive(Default, Clone, Copy)]
struct MailboxState {
    connected: bool,
    last_success: Option<Instant>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            fetched: Family::default(),
            stored: Family::default(),
            problems: Family::default(),
            tickets: Family::default(),
            mail: Family::default(),
            webhooks: Family::default(),
            attachments: Family::default(),
            store_errors: Family::default(),
            up: Gauge::default(),
            paused: Gauge::default(),
            paused_since: Gauge::default(),
            outbox_depth: Family::default(),
            outbox_oldest: Family::default(),
            dead_letters: Family::default(),
            imap_connected: Family::default(),
            last_fetch_age: Family::default(),
            clamd_up: Family::default(),
            store_up: Gauge::default(),
            // 50 ms … about 3.6 h
            ingest_latency: Histogram::new(exponential_buckets(0.05, 2.0, 18)),
            delivery_latency: Histogram::new(exponential_buckets(0.05, 2.0, 18)),
            state: Mutex::default(),
        };
        let r = &mut m.registry;
        r.register("guichet_up", "1 while the daemon runs", m.up.clone());
        r.register(
            "guichet_messages_fetched",
            "Messages read from a mailbox since the start",
            m.fetched.clone(),
        );
        r.register(
            "guichet_messages_stored",
            "Messages stored on a ticket (new or existing) since the start",
            m.stored.clone(),
        );
        r.register(
            "guichet_messages_problems",
            "Messages stored raw on no ticket (`guichet tickets problems`) since the start",
            m.problems.clone(),
        );
        r.register(
            "guichet_tickets",
            "Ticket changes since the start, by event (opened, closed, reopened)",
            m.tickets.clone(),
        );
        r.register(
            "guichet_mail_deliveries",
            "Outgoing mail attempts since the start, by outcome (sent, retried: a temporary failure, failed: given up)",
            m.mail.clone(),
        );
        r.register(
            "guichet_webhook_deliveries",
            "Webhook delivery attempts since the start, by outcome (sent, retried, failed, postponed)",
            m.webhooks.clone(),
        );
        r.register(
            "guichet_attachments",
            "Attachments checked since the start, by verdict and refusal reason",
            m.attachments.clone(),
        );
        r.register(
            "guichet_store_errors",
            "Passes that failed because the store could not write (disk full, read-only, I/O errors, database unreachable)",
            m.store_errors.clone(),
        );
        r.register(
            "guichet_intake_paused",
            "1 while intake is paused by a store fault",
            m.paused.clone(),
        );
        r.register(
            "guichet_intake_paused_since_seconds",
            "When the current pause began (Unix time), 0 when none",
            m.paused_since.clone(),
        );
        r.register(
            "guichet_outbox_depth",
            "Items waiting to be sent, per queue (mail, webhooks)",
            m.outbox_depth.clone(),
        );
        r.register(
            "guichet_outbox_oldest_age_seconds",
            "Age of the oldest item waiting, per queue (0 when none)",
            m.outbox_oldest.clone(),
        );
        r.register(
            "guichet_dead_letters",
            "Items given up (failed mail, dead webhook deliveries), per queue, still in the store",
            m.dead_letters.clone(),
        );
        r.register(
            "guichet_imap_connected",
            "1 while the mailbox's IMAP connection is up",
            m.imap_connected.clone(),
        );
        r.register(
            "guichet_mailbox_last_success_age_seconds",
            "Seconds since the mailbox's last pass that worked",
            m.last_fetch_age.clone(),
        );
        r.register(
            "guichet_store_up",
            "1 when the store answered the last probe",
            m.store_up.clone(),
        );
        r.register(
            "guichet_clamd_up",
            "1 when clamd answered the last ping (only with [antivirus])",
            m.clamd_up.clone(),
        );
        r.register(
            "guichet_ingest_latency_seconds",
            "From a message's arrival on the IMAP server to its ticket's commit",
            m.ingest_latency.clone(),
        );
        r.register(
            "guichet_delivery_latency_seconds",
            "From an outgoing mail's commit to its acceptance by the relay",
            m.delivery_latency.clone(),
        );
        m.up.set(1);
        // every family shows from the start, at 0
        for outcome in ["sent", "retried", "failed", "postponed"] {
            drop(m.mail.get_or_create(&labels(&[("outcome", outcome)])));
            drop(m.webhooks.get_or_create(&labels(&[("outcome", outcome)])));
        }
        for event in ["opened", "closed", "reopened"] {
            drop(m.tickets.get_or_create(&labels(&[("event", event)])));
        }
        drop(
            m.attachments
                .get_or_create(&labels(&[("verdict", "accepted"), ("reason", "")])),
        );
        m
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The IMAP connection of `mailbox` came up or went down.
    pub fn mailbox_connected(&self, mailbox: &str, up: bool) {
        let l = labels(&[("mailbox", mailbox)]);
        self.imap_connected.get_or_create(&l).set(i64::from(up));
        self.state()
            .mailboxes
            .entry(mailbox.to_string())
            .or_default()
            .connected = up;
    }

    /// A pass over `mailbox` worked.
    pub fn mailbox_pass(&self, mailbox: &str, report: &PassReport) {
        let l = labels(&[("mailbox", mailbox)]);
        self.fetched.get_or_create(&l).inc_by(report.fetched as u64);
        self.stored
            .get_or_create(&l)
            .inc_by((report.new_tickets + report.appended) as u64);
        self.problems
            .get_or_create(&l)
            .inc_by(report.unplaced as u64);
        self.state()
            .mailboxes
            .entry(mailbox.to_string())
            .or_default()
            .last_success = Some(Instant::now());
    }

    /// Messages committed now that arrived on the server then.
    pub fn committed(&self, arrived: impl IntoIterator<Item = Option<DateTime<Utc>>>) {
        let now = Utc::now();
        for at in arrived.into_iter().flatten() {
            let secs = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
            self.ingest_latency.observe(secs);
        }
    }

    pub fn mail_delivered(&self, d: &Delivered) {
        count_deliveries(&self.mail, d);
    }

    pub fn webhooks_delivered(&self, d: &Delivered) {
        count_deliveries(&self.webhooks, d);
    }

    /// Reads the store (and clamd) once: see the module's comment.
    pub async fn probe(&self, store: &Store, clamd: Option<&crate::settings::ClamdAddress>) {
        let now = Utc::now();
        let depth = store.queue_depth().await;
        let answers = depth.is_ok();
        self.store_up.set(i64::from(answers));
        self.state().store_answers = Some(answers);
        if let Ok(d) = depth {
            let age = |t: Option<DateTime<Utc>>| {
                t.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
            };
            for (queue, depth, oldest, dead) in [
                ("mail", d.mail_pending, d.mail_oldest_pending, d.mail_failed),
                (
                    "webhooks",
                    d.webhooks_pending,
                    d.webhooks_oldest_pending,
                    d.webhooks_dead,
                ),
            ] {
                let l = labels(&[("queue", queue)]);
                self.outbox_depth.get_or_create(&l).set(depth);
                self.outbox_oldest.get_or_create(&l).set(age(oldest));
                self.dead_letters.get_or_create(&l).set(dead);
            }
            if let Err(e) = self.count_since(store, now).await {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "metrics probe: cannot read the store"
                );
            }
        }
        let answered = match clamd {
            Some(addr) => Some(matches!(
                tokio::time::timeout(Duration::from_secs(5), crate::adapters::clamd::ping(addr))
                    .await,
                Ok(Ok(()))
            )),
            None => None,
        };
        self.clamd_answered(answered);
    }

    /// Whether clamd answered the last ping; `None` without `[antivirus]`
    /// (or once it is taken out by a reload): then no series.
    fn clamd_answered(&self, up: Option<bool>) {
        match up {
            Some(up) => {
                self.clamd_up.get_or_create(&Vec::new()).set(i64::from(up));
            }
            None => self.clamd_up.clear(),
        }
        self.state().clamd_answers = up;
    }

    /// Where the counters read from the store start: called before the
    /// loops start, so that nothing they commit is missed. Once per
    /// process (a reload keeps counting).
    pub async fn start_counting(&self, store: &Store) -> anyhow::Result<()> {
        if self.state().events_after.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        let (events, files) = store.probe_watermarks().await?;
        let mut s = self.state();
        s.events_after = Some(events);
        s.files_after = Some(files);
        s.sent_after = Some(now);
        Ok(())
    }

    async fn count_since(&self, store: &Store, now: DateTime<Utc>) -> anyhow::Result<()> {
        let (events_after, files_after, sent_after) = {
            let s = self.state();
            (s.events_after, s.files_after, s.sent_after)
        };
        let (Some(events_after), Some(files_after), Some(sent_after)) =
            (events_after, files_after, sent_after)
        else {
            let _ = now;
            return self.start_counting(store).await;
        };
        let mut last_event = events_after;
        for c in store.events_since(events_after).await? {
            let event = match c.kind.as_str() {
                "ticket.created" => "opened",
                "ticket.closed" => "closed",
                "ticket.reopened" => "reopened",
                _ => "",
            };
            if !event.is_empty() {
                self.tickets
                    .get_or_create(&labels(&[("event", event)]))
                    .inc_by(c.n.max(0) as u64);
            }
            last_event = last_event.max(c.last_id);
        }
        let mut last_file = files_after;
        for c in store.verdicts_since(files_after).await? {
            self.attachments
                .get_or_create(&labels(&[("verdict", &c.kind), ("reason", &c.detail)]))
                .inc_by(c.n.max(0) as u64);
            last_file = last_file.max(c.last_id);
        }
        let mut last_sent = sent_after;
        for (queued, sent) in store.sent_since(sent_after).await? {
            self.delivery_latency
                .observe((sent - queued).num_milliseconds().max(0) as f64 / 1000.0);
            last_sent = last_sent.max(sent);
        }
        let mut s = self.state();
        s.events_after = Some(last_event);
        s.files_after = Some(last_file);
        s.sent_after = Some(last_sent);
        Ok(())
    }

    /// What `/readyz` decides on.
    pub fn readiness(&self, health: &HealthView) -> Readiness {
        let s = self.state();
        let mut mailboxes: Vec<MailboxReadiness> = s
            .mailboxes
            .iter()
            .map(|(name, m)| MailboxReadiness {
                mailbox: name.clone(),
                connected: m.connected,
                last_success_seconds: m.last_success.map(|t| t.elapsed().as_secs_f64()),
            })
            .collect();
        mailboxes.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
        Readiness {
            paused: health.paused,
            store_answers: s.store_answers,
            mailboxes,
            clamd_answers: s.clamd_answers,
        }
    }

    /// The `/metrics` body.
    pub fn render(&self, health: &HealthView) -> String {
        self.paused.set(i64::from(health.paused.is_some()));
        self.paused_since
            .set(health.paused.map_or(0, |p| p.since.timestamp()));
        for fault in Fault::ALL {
            let n = health
                .store_errors
                .iter()
                .find(|(f, _)| *f == fault)
                .map_or(0, |(_, n)| *n);
            let c = self
                .store_errors
                .get_or_create(&labels(&[("fault", fault.code())]));
            c.inc_by(n.saturating_sub(c.get()));
        }
        {
            let s = self.state();
            for (name, m) in &s.mailboxes {
                if let Some(t) = m.last_success {
                    self.last_fetch_age
                        .get_or_create(&labels(&[("mailbox", name)]))
                        .set(t.elapsed().as_secs_f64());
                }
            }
        }
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn count_deliveries(family: &Family<Labels, Counter>, d: &Delivered) {
    for (outcome, n) in [
        ("sent", d.sent),
        ("retried", d.retried),
        ("failed", d.failed),
        ("postponed", d.postponed),
    ] {
        let c = family.get_or_create(&labels(&[("outcome", outcome)]));
        if n > 0 {
            c.inc_by(n as u64);
        }
    }
}

/// The probe, every [`PROBE_EVERY`] until `shutdown`.
pub async fn probe_loop(
    metrics: Arc<Metrics>,
    store: Store,
    clamd: Option<crate::settings::ClamdAddress>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        metrics.probe(&store, clamd.as_ref()).await;
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_every_family_with_its_values() {
        let m = Metrics::default();
        m.mailbox_connected("s@imap/INBOX", true);
        m.mailbox_pass(
            "s@imap/INBOX",
            &PassReport {
                fetched: 5,
                new_tickets: 3,
                appended: 1,
                unplaced: 1,
                ..PassReport::default()
            },
        );
        m.mail_delivered(&Delivered {
            sent: 7,
            retried: 1,
            ..Delivered::default()
        });
        m.committed([Some(Utc::now() - chrono::Duration::seconds(2)), None]);
        let text = m.render(&HealthView {
            paused: None,
            store_errors: vec![(Fault::DiskFull, 2)],
        });
        for line in [
            "guichet_up 1",
            "guichet_messages_fetched_total{mailbox=\"s@imap/INBOX\"} 5",
            "guichet_messages_stored_total{mailbox=\"s@imap/INBOX\"} 4",
            "guichet_messages_problems_total{mailbox=\"s@imap/INBOX\"} 1",
            "guichet_mail_deliveries_total{outcome=\"sent\"} 7",
            "guichet_mail_deliveries_total{outcome=\"retried\"} 1",
            "guichet_mail_deliveries_total{outcome=\"failed\"} 0",
            "guichet_store_errors_total{fault=\"disk_full\"} 2",
            "guichet_store_errors_total{fault=\"read_only\"} 0",
            "guichet_imap_connected{mailbox=\"s@imap/INBOX\"} 1",
            "guichet_intake_paused 0",
            "guichet_ingest_latency_seconds_count 1",
            "# TYPE guichet_ingest_latency_seconds histogram",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        // a second render does not count the store errors twice
        let text = m.render(&HealthView {
            paused: None,
            store_errors: vec![(Fault::DiskFull, 3)],
        });
        assert!(
            text.lines()
                .any(|l| l == "guichet_store_errors_total{fault=\"disk_full\"} 3"),
            "{text}"
        );
        // no antivirus, no clamd series (an alert on 0 would always fire)
        assert!(
            !text.lines().any(|l| l.starts_with("guichet_clamd_up")),
            "{text}"
        );
        m.clamd_answered(Some(false));
        let text = m.render(&HealthView::default());
        assert!(text.lines().any(|l| l == "guichet_clamd_up 0"), "{text}");
        m.clamd_answered(None);
        let text = m.render(&HealthView::default());
        assert!(
            !text.lines().any(|l| l.starts_with("guichet_clamd_up")),
            "{text}"
        );
        let r = m.readiness(&HealthView::default());
        assert_eq!(r.mailboxes.len(), 1);
        assert!(r.mailboxes[0].connected);
        assert_eq!(r.store_answers, None, "not probed yet");
    }
}
