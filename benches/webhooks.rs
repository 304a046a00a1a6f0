//! Webhook benchmarks, each figure beside its baseline:
//!
//! 1. Throughput: N events queued in a SQLite store, drained by
//!    `deliver_webhooks` to a receiver on 127.0.0.1 (claim, render, sign,
//!    POST, record), against N bare POSTs of one rendered body with the same
//!    HTTP client to the same receiver.
//! 2. A hung endpoint beside a healthy one (issue 26): the same N events
//!    drained to a healthy endpoint alone, and with a second endpoint
//!    configured that accepts connections and never answers (its attempt
//!    hangs until its 10 s deadline); the healthy endpoint's rate with the
//!    hung one beside it, as a ratio of its rate alone (target ≥ 0.9).
//! 3. Latency: `guichet run` (the real daemon, IMAP IDLE, polling set to 5
//!    minutes so only IDLE can wake it) and messages delivered one at a time
//!    over LMTP; the delay from the LMTP delivery's end (the message is in
//!    the mailbox) to its `ticket.created` webhook reaching the receiver,
//!    against the floor set by the server: the same delay for a bare IDLE
//!    client (Guichet's IMAP adapter, nothing else) to hear of the message.
//!
//! `cargo bench --bench webhooks [-- --events N --messages M --only throughput|hung|latency]`
//! (`GUICHET_BENCH_LOG=debug` prints the daemon's log). The latency
//! part needs the test rig (`bash scripts/mailrig.sh start /tmp/guichet-rig`)
//! and is skipped without it. Under `cargo test --all-targets` (no
//! `--bench` argument) it only says how to run it.

#[path = "../tests/receiver/mod.rs"]
mod receiver;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use guichet::adapters::imap::{Mailbox, News};
use guichet::adapters::webhook_http::WebhookClient;
use guichet::domain::EventKind;
use guichet::mail::templates::Templates;
use guichet::rules::webhooks;
use guichet::settings::{TlsMode, WebhookFormat};
use guichet::store::{NewTicket, Store};
use guichet::workers::{Ctx, deliver, events};
use receiver::{Fault, FaultyEndpoint, Receiver};
use serde_json::json;

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("webhooks benchmark: run it with `cargo bench --bench webhooks`");
        return;
    }
    let number = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let events = number("--events", 2000);
    let messages = number("--messages", 50);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let runs = |phase: &str| only.as_deref().is_none_or(|o| o == phase);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if runs("throughput") {
            println!("== webhook delivery throughput ({events} events, one endpoint on 127.0.0.1)");
            for (label, per_ticket, signed) in [
                ("10 events a ticket, unsigned", 10, false),
                ("10 events a ticket, signed", 10, true),
                ("all on one ticket, unsigned", events, false),
            ] {
                throughput(label, events, per_ticket, signed).await;
            }
            println!();
        }
        if runs("hung") {
            println!(
                "== a healthy endpoint alone vs. beside a hung one ({events} events, 10 a ticket)"
            );
            beside_a_hung_endpoint(events).await;
            println!();
        }
        if runs("latency") {
            println!(
                "== mailbox to webhook latency (`guichet run`, IMAP IDLE, {messages} messages)"
            );
            latency(messages).await;
        }
    });
}

// ---------------------------------------------------------------------------
// Throughput.

/// The parts of a settings file that differ between the two benchmarks.
struct Desk<'a> {
    support: &'a str,
    agent: &'a str,
    /// The whole `[imap]` section.
    imap: &'a str,
    smtp_host: &'a str,
    smtp_port: u16,
    /// `[[webhooks]]` sections.
    hooks: &'a str,
}

fn settings_text(d: &Desk<'_>) -> String {
    format!(
        r#"[helpdesk]
secret = "bench-secret-0123456789abcdef"

[attachments]
storage_dir = "files"

{imap}

[smtp]
host = "{smtp_host}"
port = {smtp_port}
tls = "none"
from = "Bench <{support}>"

[database]
url = "sqlite://guichet.db"

[[departments]]
name = "Support"
address = "{support}"
agents = ["{agent}"]

{hooks}
"#,
        imap = d.imap,
        smtp_host = d.smtp_host,
        smtp_port = d.smtp_port,
        support = d.support,
        agent = d.agent,
        hooks = d.hooks,
    )
}

async fn throughput(label: &str, events: usize, per_ticket: usize, signed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let secret = if signed {
        format!("secret = \"{SIGNING_SECRET}\"")
    } else {
        String::new()
    };
    let hooks = format!("[[webhooks]]\nurl = \"{}\"\n{secret}\n", r.url("/bench"));
    // IMAP and SMTP are never contacted here
    let path = dir.path().join("guichet.toml");
    let text = settings_text(&Desk {
        support: "support@example.test",
        agent: "agent@example.test",
        imap: "[imap]\nhost = \"127.0.0.1\"\nport = 143\ntls = \"none\"\nusername = \"support@example.test\"\npassword = \"x\"",
        smtp_host: "127.0.0.1",
        smtp_port: 25,
        hooks: &hooks,
    });
    let settings = guichet::settings::load_str(&text, &path).expect("bench settings");
    let store = Store::connect(&settings.database.url).await.unwrap();
    store.migrate().await.unwrap();
    let templates = Templates::load(None).unwrap();

    let client = WebhookClient::new().unwrap();
    // one bare POST first, so both runs start with a warm connection
    let now = Utc::now();
    let sample = webhooks::demo_event(now);
    let body = serde_json::to_vec(&webhooks::render(WebhookFormat::Json, &sample, None)).unwrap();
    let headers = webhooks::headers(&sample.id, now.timestamp(), &body, None);
    client.post(&r.url("/warm"), &body, &headers).await.unwrap();

    // The machine may be shared: rounds alternate the two measurements
    // and the median round of each is reported.
    let mut lanes = deliver::Lane::all(&settings).unwrap();
    let mut delivering = Vec::new();
    let mut bare = Vec::new();
    for round in 0..ROUNDS {
        queue_events(&store, &settings, events, per_ticket, round).await;
        let ctx = Ctx {
            settings: &settings,
            store: &store,
            templates: &templates,
            now: Utc::now(),
        };
        let started = Instant::now();
        let done = deliver::deliver_webhooks(&ctx, &mut lanes).await.unwrap();
        delivering.push(started.elapsed());
        assert_eq!(done.sent, events, "{done:?}");
        assert_eq!(r.to("/bench").len(), events * (round + 1));

        let started = Instant::now();
        for _ in 0..events {
            let a = client.post(&r.url("/bare"), &body, &headers).await.unwrap();
            assert_eq!(a.status, 200);
        }
        bare.push(started.elapsed());
    }
    let delivering = figures(delivering).median;
    let bare = figures(bare).median;

    let rate = events as f64 / delivering.as_secs_f64();
    let bare_rate = events as f64 / bare.as_secs_f64();
    println!(
        "{label:<30} deliver_webhooks {rate:>7.0} events/s ({:.2} ms each) | bare POSTs {bare_rate:>7.0}/s ({:.2} ms each) | ratio {:.2}",
        delivering.as_secs_f64() * 1000.0 / events as f64,
        bare.as_secs_f64() * 1000.0 / events as f64,
        rate / bare_rate
    );
    store.close().await;
}

/// Issue 26: the healthy endpoint's throughput alone, and with a hung
/// endpoint configured beside it, in alternating rounds of the same run.
async fn beside_a_hung_endpoint(events: usize) {
    let hung = FaultyEndpoint::start(Fault::Blackhole, None);
    let mut alone = Vec::new();
    let mut beside = Vec::new();
    for _ in 0..ROUNDS {
        alone.push(drain_to_healthy(events, None).await);
        beside.push(drain_to_healthy(events, Some(&hung.url("/crm"))).await);
    }
    let alone = figures(alone).median;
    let beside = figures(beside).median;
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "healthy endpoint alone           {:>7.0} events/s ({} for {events})",
        rate(alone),
        ms(alone)
    );
    println!(
        "healthy endpoint beside a hung   {:>7.0} events/s ({} for {events})",
        rate(beside),
        ms(beside)
    );
    println!(
        "ratio (beside / alone)           {:.2} (target >= 0.90); connections to the hung endpoint: {}",
        rate(beside) / rate(alone),
        hung.broken_connections
            .load(std::sync::atomic::Ordering::SeqCst)
    );
}

/// A fresh store with `events` events for a healthy endpoint (and for
/// `hung`, when given), drained by one `deliver_webhooks` pass; the time
/// from its start to the healthy endpoint's last event.
async fn drain_to_healthy(events: usize, hung: Option<&str>) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start();
    let mut hooks = format!("[[webhooks]]\nurl = \"{}\"\n", r.url("/chat"));
    if let Some(url) = hung {
        hooks += &format!("\n[[webhooks]]\nurl = \"{url}\"\n");
    }
    let path = dir.path().join("guichet.toml");
    let text = settings_text(&Desk {
        support: "support@example.test",
        agent: "agent@example.test",
        imap: "[imap]\nhost = \"127.0.0.1\"\nport = 143\ntls = \"none\"\nusername = \"support@example.test\"\npassword = \"x\"",
        smtp_host: "127.0.0.1",
        smtp_port: 25,
        hooks: &hooks,
    });
    let settings = guichet::settings::load_str(&text, &path).expect("bench settings");
    let store = Store::connect(&settings.database.url).await.unwrap();
    store.migrate().await.unwrap();
    let templates = Templates::load(None).unwrap();
    queue_events(&store, &settings, events, 10, 0).await;
    let mut lanes = deliver::Lane::all(&settings).unwrap();
    let ctx = Ctx {
        settings: &settings,
        store: &store,
        templates: &templates,
        now: Utc::now(),
    };
    let started = Instant::now();
    // the pass ends when the hung endpoint's attempt reaches its deadline;
    // the healthy endpoint's figure is its last event's arrival
    let (done, got) = tokio::join!(
        deliver::deliver_webhooks(&ctx, &mut lanes),
        r.wait_until(
            Duration::from_secs(600),
            "every event at the healthy endpoint",
            |all| { all.len() >= events }
        )
    );
    let done = done.unwrap();
    assert_eq!(done.sent, events, "{done:?}");
    assert_eq!(r.to("/chat").len(), events);
    store.close().await;
    got[events - 1].at.saturating_duration_since(started)
}

/// Rounds of each throughput measurement.
const ROUNDS: usize = 3;

/// Queues `events` events as ingest would: one transaction per ticket,
/// `per_ticket` events each.
async fn queue_events(
    store: &Store,
    settings: &guichet::settings::Settings,
    events: usize,
    per_ticket: usize,
    round: usize,
) {
    let now = Utc::now();
    let tickets = events.div_ceil(per_ticket);
    let mut queued = 0;
    for t in 0..tickets {
        let mut tx = store.begin().await.unwrap();
        let subject = format!("Benchmark ticket {round}.{t}");
        let client = format!("customer{t}@example.net");
        let id = tx
            .create_ticket(&NewTicket {
                subject: &subject,
                department: "Support",
                client: &client,
                language: "en",
                now,
                linked_from: None,
            })
            .await
            .unwrap();
        let ticket = tx.ticket(id).await.unwrap().unwrap();
        for k in 0..per_ticket.min(events - queued) {
            events::emit(
                &mut tx,
                settings,
                EventKind::TicketReplied,
                &ticket,
                json!({"from": client, "rule": "headers", "text_excerpt": format!("Reply {k}: the printer is still on fire.")}),
                now,
            )
            .await
            .unwrap();
            queued += 1;
        }
        tx.commit().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Latency.

fn rig_available() -> bool {
    std::env::var_os("MAILRIG_DIR").is_some()
        || Path::new(support::DEFAULT_RIG_DIR).join("env").exists()
}

struct Figures {
    median: Duration,
    p99: Duration,
    min: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let rank = |q: f64| {
        // nearest rank
        let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    Figures {
        median: rank(0.5),
        p99: rank(0.99),
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn latency(messages: usize) {
    if !rig_available() {
        println!("SKIPPED: no test rig (bash scripts/mailrig.sh start /tmp/guichet-rig)");
        return;
    }
    let rig = support::rig();
    let support_user = support::fresh_user("support");
    let agent = support::fresh_user("agent");

    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let hooks = format!(
        "[[webhooks]]\nurl = \"{}\"\nevents = [\"ticket.created\"]\n",
        r.url("/created")
    );
    let imap = format!(
        "[imap]\nhost = \"{}\"\nport = {}\ntls = \"none\"\nusername = \"{support_user}\"\npassword = \"{}\"\nidle = true\npoll_seconds = 300",
        rig.imap_host, rig.imap_port, rig.password
    );
    let config = dir.path().join("guichet.toml");
    std::fs::write(
        &config,
        settings_text(&Desk {
            support: &support_user,
            agent: &agent,
            imap: &imap,
            smtp_host: &rig.smtp_host,
            smtp_port: rig.smtp_port,
            hooks: &hooks,
        }),
    )
    .unwrap();
    let log_path = dir.path().join("daemon.log");
    let mut daemon = Command::new(support::guichet_bin())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("GUICHET_CONFIG")
        .env(
            "GUICHET_LOG",
            std::env::var("GUICHET_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start guichet run");

    let mut samples = Vec::with_capacity(messages);
    // the first message warms up (connection, IDLE, templates); not counted
    for i in 0..=messages {
        let customer = support::fresh_user("customer");
        let mail =
            support::simple_message(&customer, &support_user, &format!("Latency {i}"), "Hello");
        support::deliver_lmtp(&support_user, &mail).await;
        let in_mailbox = Instant::now();
        let timeout = if i == 0 { 60 } else { 30 };
        let got = r
            .wait_until(
                Duration::from_secs(timeout),
                &format!("the webhook of message {i}"),
                |all| all.len() > i,
            )
            .await;
        if i > 0 {
            samples.push(got[i].at.saturating_duration_since(in_mailbox));
        }
        // the daemon goes back to IDLE as a real one would between mails
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let errors = std::fs::read_to_string(&log_path).unwrap_or_default();
    if errors.contains("ERROR") || std::env::var_os("GUICHET_BENCH_LOG").is_some() {
        println!("daemon log:\n{errors}");
    }

    // the floor: a bare IDLE client on a mailbox of its own
    let idle_user = support::fresh_user("idle");
    let mut mailbox = Mailbox::connect(&rig.imap_settings(&idle_user, TlsMode::None))
        .await
        .expect("IMAP connect");
    let (_stop, mut shutdown) = tokio::sync::watch::channel(false);
    let mut floor = Vec::with_capacity(messages);
    for i in 0..=messages {
        let waiter = async {
            let news = mailbox
                .wait_for_news(Duration::from_secs(30), &mut shutdown)
                .await
                .expect("IDLE");
            (news, Instant::now())
        };
        let deliver = async {
            // let the IDLE start first, as the daemon's has
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mail = support::simple_message("x@example.net", &idle_user, "Idle", "Hello");
            support::deliver_lmtp(&idle_user, &mail).await;
            Instant::now()
        };
        let ((news, heard), delivered) = tokio::join!(waiter, deliver);
        assert_eq!(news, News::NewMail, "message {i}");
        if i > 0 {
            floor.push(heard.saturating_duration_since(delivered));
        }
    }
    let _ = mailbox.logout().await;

    let g = figures(samples);
    let f = figures(floor);
    println!(
        "mailbox -> webhook (guichet run)   median {:>9}  p99 {:>9}  (min {}, max {})",
        ms(g.median),
        ms(g.p99),
        ms(g.min),
        ms(g.max)
    );
    println!(
        "mailbox -> IDLE wake-up (floor)    median {:>9}  p99 {:>9}  (min {}, max {})",
        ms(f.median),
        ms(f.p99),
        ms(f.min),
        ms(f.max)
    );
    println!(
        "Guichet's own share (median)       {} = {:.1}x the IDLE floor",
        ms(g.median.saturating_sub(f.median)),
        g.median.as_secs_f64() / f.median.as_secs_f64().max(1e-9)
    );
}
