//! Ingest throughput with HTML mail on and off (issue 23): the real
//! `workers::ingest::ingest` (parse, attachment gate, threading, store,
//! quote removal, sanitizing, templates, the acknowledgement and the
//! agents' copy queued) over the same customer mails, HTML with a text
//! part (Gmail's shape: a table, a link, a quoted earlier mail), each a
//! new ticket, on SQLite in a temporary directory; `[mail] html = true`
//! against `html = false`, interleaved in rounds so that the machine's
//! load hits both alike. Target: HTML on keeps ≥ 0.8× of text only.
//!
//! `cargo bench --bench html [-- --seconds S --rounds R]` (default S = 5
//! per side per round, R = 3). Under `cargo test --all-targets` it only
//! says how to run it.

#[path = "common/args.rs"]
mod args;
use args::{arg, bench_args};

use std::time::{Duration, Instant};

use chrono::Utc;
use guichet::mail::templates::Templates;
use guichet::store::Store;
use guichet::workers::Ctx;
use guichet::workers::ingest::{Options, Source, ingest};

fn main() {
    let Some(args) = bench_args("html") else {
        return;
    };
    let seconds = arg(&args, "--seconds", 5u64);
    let rounds = arg(&args, "--rounds", 3u64);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(Duration::from_secs(seconds), rounds));
}

fn customer_mail(n: u64) -> Vec<u8> {
    let rows: String = (0..20)
        .map(|i| format!("<tr><td>A-{i}</td><td><b>{i}0 EUR</b></td><td><a href=\"https://shop.example/o/{i}\">order</a></td></tr>"))
        .collect();
    let quoted = "<p>We have received your message and opened ticket 12.</p>".repeat(20);
    let html = format!(
        "<html><body><div dir=\"ltr\"><p>Hello, my <b>orders</b> are wrong:</p><table>{rows}</table>\
         <ul><li>one</li><li>two</li></ul></div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Support wrote:</div>\
         <blockquote class=\"gmail_quote\">{quoted}</blockquote></div></body></html>"
    );
    let text = format!(
        "Hello, my orders are wrong:\n{}\nOn Mon, Support wrote:\n{}",
        (0..20)
            .map(|i| format!("A-{i} {i}0 EUR\n"))
            .collect::<String>(),
        "> We have received your message and opened ticket 12.\n".repeat(20)
    );
    format!(
        "From: Customer {n} <c{n}@example.test>\r\nTo: support@example.test\r\nSubject: Orders {n}\r\n\
         Message-ID: <bench-{n}@example.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         {text}\r\n--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--ALT--\r\n"
    )
    .into_bytes()
}

async fn desk(dir: &std::path::Path, html: bool) -> (guichet::settings::Settings, Store) {
    let path = dir.join("guichet.toml");
    let text = format!(
        r#"[helpdesk]
secret = "bench-secret-0123456789abcdef"
[attachments]
storage_dir = "{dir}/files"
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
from = "Support <support@example.test>"
[database]
url = "sqlite://{dir}/guichet.db"
[mail]
html = {html}
[[departments]]
name = "Support"
address = "support@example.test"
agents = ["agent@example.test"]
"#,
        dir = dir.display()
    );
    let settings = guichet::settings::load_str(&text, &path).expect("bench settings");
    let store = Store::connect(&settings.database.url).await.unwrap();
    store.migrate().await.unwrap();
    (settings, store)
}

/// Ingests customer mails for `d`; returns messages/s.
async fn ingest_for(
    settings: &guichet::settings::Settings,
    store: &Store,
    templates: &Templates,
    d: Duration,
    next: &mut u64,
) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < d {
        let ctx = Ctx {
            settings,
            store,
            templates,
            now: Utc::now(),
        };
        ingest(
            &ctx,
            customer_mail(*next),
            &Source::default(),
            Options::default(),
        )
        .await
        .unwrap();
        *next += 1;
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(d: Duration, rounds: u64) {
    let templates = Templates::load(None).unwrap();
    let on_dir = tempfile::tempdir().unwrap();
    let off_dir = tempfile::tempdir().unwrap();
    let (on_settings, on_store) = desk(on_dir.path(), true).await;
    let (off_settings, off_store) = desk(off_dir.path(), false).await;
    let (mut on_total, mut off_total) = (0.0, 0.0);
    let (mut on_next, mut off_next) = (0u64, 1_000_000u64);
    for round in 1..=rounds {
        let off = ingest_for(&off_settings, &off_store, &templates, d, &mut off_next).await;
        let on = ingest_for(&on_settings, &on_store, &templates, d, &mut on_next).await;
        println!("round {round}: text only {off:.0} messages/s, HTML on {on:.0} messages/s");
        on_total += on;
        off_total += off;
    }
    let ratio = on_total / off_total;
    println!(
        "HTML on / text only: {ratio:.2} (target ≥ 0.80): {}",
        if ratio >= 0.8 { "PASS" } else { "FAIL" }
    );
}
