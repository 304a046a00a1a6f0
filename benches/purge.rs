//! Retention purge beside ingest (issue 24): a SQLite store (the harder
//! case: one writer, and Guichet holds one connection to it) seeded with N
//! tickets closed long ago (message, 2 KB raw mail, participant, events,
//! a sent mail, a delivered webhook each); then the ingest pace (messages
//! stored per second: raw mail, ticket, participant, message, event, one
//! transaction each, as `workers::ingest` writes them) alone, and while
//! `workers::retention::run` removes the N tickets. Target: with the purge
//! running, ingest keeps ≥ 0.8× its pace alone.
//!
//! Ingest here is the store side of ingest (what competes with the purge
//! for the database); IMAP fetching and parsing, which do not touch the
//! database, are left out so that the ratio is not diluted by them.
//!
//! `cargo bench --bench purge [-- --tickets N --seconds S]` (default N =
//! 100000, S = 20). Under `cargo test --all-targets` it only says how to
//! run it.

#[path = "common/args.rs"]
mod args;
use args::{arg, bench_args};

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use guichet::mail::templates::Templates;
use guichet::store::{NewMessage, NewRaw, NewTicket, Store};
use guichet::workers::{Ctx, retention};

fn main() {
    let Some(args) = bench_args("purge") else {
        return;
    };
    let tickets = arg(&args, "--tickets", 100_000u64);
    let seconds = arg(&args, "--seconds", 20u64);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(tickets, Duration::from_secs(seconds)));
}

async fn seed(store: &Store, n: u64) {
    let Store::Sqlite(pool) = store else {
        unreachable!()
    };
    let closed = (Utc::now() - TimeDelta::days(400)).to_rfc3339();
    let raw: String = "x".repeat(2048);
    let mut c = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
    let stmts = [
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO tickets (id, subject, department, client, status, created_at, last_activity_at, \
         last_message_from, closed_at, close_reason) \
         SELECT i, 'old ' || i, 'Support', 'c' || i || '@example.test', 'closed', $2, $2, 'customer', $2, 'inactivity' FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO raw_messages (id, dedup_key, raw, size, received_at) \
         SELECT i, 'seed-' || i, CAST($3 || i AS BLOB), 2048, $2 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO messages (ticket_id, raw_id, direction, kind, from_addr, date, rule, text) \
         SELECT i, i, 'in', 'customer', 'c' || i || '@example.test', $2, 'new', 'Hello, it is broken ' || i FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO participants (ticket_id, address, role) SELECT i, 'c' || i || '@example.test', 'customer' FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO ticket_events (event_id, ticket_id, event, occurred_at, data) \
         SELECT 'evt-c-' || i, i, 'ticket.closed', $2, '{\"reason\":\"inactivity\"}' FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at, sent_at) \
         SELECT i, 'ack', 'support@example.test', 'c' || i || '@example.test', 'm' || i, CAST($3 AS BLOB), $2, $2, $2 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO webhook_outbox (event_id, endpoint, ticket_id, payload, created_at, next_attempt_at, delivered_at) \
         SELECT 'evt-c-' || i, 'https://hooks.example.test/x', i, '{}', $2, $2, $2 FROM n",
    ];
    for sql in stmts {
        sqlx::query(sql)
            .bind(n as i64)
            .bind(&closed)
            .bind(&raw)
            .execute(&mut *c)
            .await
            .unwrap();
    }
    sqlx::query("COMMIT").execute(&mut *c).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *c)
        .await
        .unwrap();
}

/// Stores messages one transaction each for `d`; returns messages/s.
async fn ingest_for(store: &Store, d: Duration, tag: &str) -> f64 {
    let body = "A new question from a customer.\n".repeat(60);
    let raw = format!("From: a@example.test\r\nSubject: q\r\n\r\n{body}");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < d {
        let now = Utc::now();
        let key = format!("{tag}-{n}");
        let mut tx = store.begin().await.unwrap();
        let raw_id = tx
            .insert_raw(&NewRaw {
                dedup_key: &key,
                raw: raw.as_bytes(),
                received_at: now,
                mailbox: Some("bench"),
                imap_uid: Some(n as i64),
                uid_validity: Some(1),
                problem: None,
            })
            .await
            .unwrap();
        let t = tx
            .create_ticket(&NewTicket {
                subject: "q",
                department: "Support",
                client: "a@example.test",
                language: "en",
                now,
                linked_from: None,
            })
            .await
            .unwrap();
        tx.add_participant(t, "a@example.test", "customer")
            .await
            .unwrap();
        tx.add_message(&NewMessage {
            ticket_id: t,
            raw_id,
            direction: "in",
            kind: "customer",
            from_addr: "a@example.test",
            date: now,
            message_id: Some(&key),
            rule: "new",
            text: &body,
            note: None,
            signed: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(tickets: u64, d: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.toml");
    let text = format!(
        r#"[helpdesk]
secret = "bench-secret-0123456789abcdef"
[imap]
host = "127.0.0.1"
port = 143
tls = "none"
username = "support@example.test"
password = "x"
[smtp]
host = "127.0.0.1"
port = 25
tls = "none"
from = "support@example.test"
[database]
url = "sqlite://{}/guichet.db"
[retention]
closed_tickets_days = 30
[[departments]]
name = "Support"
address = "support@example.test"
agents = ["agent@example.test"]
"#,
        dir.path().display()
    );
    let settings = guichet::settings::load_str(&text, &path).expect("bench settings");
    let store = Store::connect(&settings.database.url).await.unwrap();
    store.migrate().await.unwrap();
    let templates = Templates::load(None).unwrap();
    let t = Instant::now();
    seed(&store, tickets).await;
    let db = dir.path().join("guichet.db");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "seeded {tickets} closed tickets in {:.1} s ({} MB)",
        t.elapsed().as_secs_f64(),
        size(&db) / 1_000_000
    );

    let alone = ingest_for(&store, d, "alone").await;
    println!("ingest alone: {alone:.0} messages/s");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let purge = {
        let store = store.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let templates = Templates::load(None).unwrap();
            let ctx = Ctx {
                settings: &settings,
                store: &store,
                templates: &templates,
                now: Utc::now(),
            };
            let started = Instant::now();
            let report = retention::run(&ctx, stopped).await.unwrap();
            (report, started.elapsed())
        })
    };
    // the purge must still be running at the end of the measurement
    let beside = ingest_for(&store, d, "beside").await;
    let still_running = !purge.is_finished();
    println!(
        "ingest during the purge: {beside:.0} messages/s (purge still running at the end: {still_running})"
    );
    // the rest of the purge is not measured: stop it between two batches
    let _ = stop.send(true);
    let (report, took) = purge.await.unwrap();
    drop(templates);
    println!(
        "purge (stopped after the measurement): {} tickets removed in {:.1} s; space given back: {:?}; database now {} MB",
        report.removed.tickets,
        took.as_secs_f64(),
        report.reclaimed,
        size(&db) / 1_000_000
    );
    let ratio = beside / alone;
    println!(
        "ratio: {ratio:.2} (target ≥ 0.80): {}",
        if ratio >= 0.8 { "PASS" } else { "FAIL" }
    );
}
