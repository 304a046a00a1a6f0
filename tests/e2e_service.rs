//! Running Guichet as a service (issue 15), end to end against the rig:
//! logs an admin (and journald) can read, queues that can be seen and
//! acted on, the metrics listener, backups.

mod harness;
mod support;

use std::time::Duration;

use harness::Desk;
use serde_json::Value;
use support::{deliver_lmtp, fresh_user, simple_message};

/// The log lines of a run, as JSON values (`--log-format json`).
fn json_lines(stderr: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

#[tokio::test]
async fn logs_carry_plain_values_ticket_mailbox_and_uid_and_no_colour_off_a_terminal() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Logs please", "Hello"),
    )
    .await;

    // JSON: one object per line, values as JSON values, not Debug text
    let out = desk.run(&["--log-format", "json", "run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8_lossy(&out.stderr).to_string();
    for bad in ["Some(", "PassReport", "Delivered {", "\u{1b}["] {
        assert!(!raw.contains(bad), "{bad:?} in the log:\n{raw}");
    }
    let lines = json_lines(&out.stderr);
    let stored = lines
        .iter()
        .find(|l| l["fields"]["message"] == "message stored on its ticket")
        .unwrap_or_else(|| panic!("no line about the message in:\n{raw}"));
    assert_eq!(stored["level"], "INFO");
    let fields = &stored["fields"];
    let ticket = fields["ticket"]
        .as_i64()
        .unwrap_or_else(|| panic!("ticket is not a number: {stored}"));
    assert!(ticket >= 1);
    assert!(fields["uid"].as_u64().is_some(), "{stored}");
    assert!(
        fields["mailbox"]
            .as_str()
            .is_some_and(|m| m.starts_with(&desk.support)),
        "{stored}"
    );
    assert_eq!(fields["created"], true);
    let pass = lines
        .iter()
        .find(|l| l["fields"]["message"] == "mailbox pass done")
        .unwrap_or_else(|| panic!("no pass line in:\n{raw}"));
    assert_eq!(pass["fields"]["fetched"], 1, "{pass}");
    assert_eq!(pass["fields"]["new_tickets"], 1, "{pass}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["target"].is_string(), "{l}");
    }

    // text: `ticket=1`, no escape codes into a pipe (journald, a file)
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Logs again", "Hello"),
    )
    .await;
    let out = desk.run(&["run", "--once"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("message stored on its ticket"))
        .unwrap_or_else(|| panic!("no line about the message in:\n{text}"));
    assert!(line.contains(&format!("ticket={}", ticket + 1)), "{line}");
    assert!(line.contains("uid=2"), "{line}");
    assert!(!text.contains("Some("), "{text}");
}

const WAIT: Duration = Duration::from_secs(20);

fn items(outbox: &Value, queue: &str) -> Vec<Value> {
    outbox[queue]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_outbox_shows_mail_a_relay_refuses_and_sends_it_once_the_relay_accepts() {
    let desk = Desk::new("");
    let r = support::rig();
    // the relay is not there (a wrong port, as a wrong password would be)
    desk.edit_settings(
        &format!("port = {}\ntls = \"none\"\nfrom", r.smtp_port),
        "port = 9\ntls = \"none\"\nfrom",
    );
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Waiting mail", "Hello"),
    )
    .await;
    let pass = desk.pass(chrono::Utc::now());
    assert_eq!(pass["mail"]["sent"], 0, "{pass}");

    let outbox = desk.json(&["outbox", "--json"]);
    let mail = items(&outbox, "mail");
    assert_eq!(outbox["mail"]["pending"], 2, "{outbox:#}");
    assert_eq!(mail.len(), 2, "{outbox:#}");
    for m in &mail {
        assert_eq!(m["state"], "waiting", "{m}");
        assert!(m["id"].as_str().unwrap().starts_with('m'), "{m}");
        assert!(m["next_attempt_at"].is_string(), "{m}");
        assert!(m["ticket_id"].as_i64().is_some(), "{m}");
        // an unreachable relay is not this mail's fault (issue 13): no
        // attempt counted, and tried again within 30 s, not after a
        // growing back-off
        assert_eq!(m["attempts"], 0, "{m}");
        let next: chrono::DateTime<chrono::Utc> =
            m["next_attempt_at"].as_str().unwrap().parse().unwrap();
        let wait = next - chrono::Utc::now();
        assert!(
            wait <= chrono::Duration::seconds(31),
            "next try in {wait}: {m}"
        );
    }
    assert!(
        mail.iter()
            .any(|m| m["last_error"].as_str().is_some_and(|e| !e.is_empty())),
        "the relay's refusal is shown: {outbox:#}"
    );
    assert!(outbox["mail"]["oldest_pending"].is_string(), "{outbox:#}");
    let text = desk.run(&["outbox"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("mail: 2 pending, 0 failed"), "{text}");
    assert!(text.contains("last error:"), "{text}");
    assert!(text.contains(&customer), "{text}");
    let stats = desk.json(&["stats", "--json"]);
    assert_eq!(stats["queues"]["mail_pending"], 2, "{stats:#}");
    assert_eq!(stats["queues"]["mail_failed"], 0, "{stats:#}");

    // the admin fixes the settings and asks for the queue now, not in a
    // minute: the next pass sends both
    desk.edit_settings(
        "port = 9\ntls = \"none\"\nfrom",
        &format!("port = {}\ntls = \"none\"\nfrom", r.smtp_port),
    );
    let out = desk.run(&["outbox", "retry", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("2 mail"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pass = desk.pass(chrono::Utc::now());
    assert_eq!(pass["mail"]["sent"], 2, "{pass}");
    support::wait_for_messages(&customer, 1, WAIT).await;
    let outbox = desk.json(&["outbox", "--json"]);
    assert_eq!(outbox["mail"]["pending"], 0, "{outbox:#}");
    assert!(items(&outbox, "mail").is_empty(), "{outbox:#}");
}

#[tokio::test]
async fn a_deferred_mail_can_be_dropped_and_taken_back() {
    let desk = Desk::new("");
    let r = support::rig();
    let customer = format!("later-{}@{}", support::unique_token(), r.deferred_domain);
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Deferred", "Hello"),
    )
    .await;
    desk.pass(chrono::Utc::now());
    let outbox = desk.json(&["outbox", "--json"]);
    let mail = items(&outbox, "mail");
    let deferred = mail
        .iter()
        .find(|m| m["recipients"][0] == customer.as_str())
        .unwrap_or_else(|| panic!("the acknowledgement waits: {outbox:#}"));
    assert_eq!(deferred["state"], "waiting");
    assert!(
        deferred["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("450"),
        "{deferred}"
    );
    let id = deferred["id"].as_str().unwrap().to_string();

    let out = desk.run(&["outbox", "drop", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outbox = desk.json(&["outbox", "--json"]);
    assert_eq!(outbox["mail"]["pending"], 0, "{outbox:#}");
    assert_eq!(outbox["mail"]["failed"], 1, "{outbox:#}");
    let dropped = &items(&outbox, "mail")[0];
    assert_eq!(dropped["state"], "failed");
    assert!(dropped["next_attempt_at"].is_null());
    let why = dropped["last_error"].as_str().unwrap();
    assert!(
        why.contains("dropped by an admin") && why.contains("450"),
        "{why}"
    );
    // nothing waits under that id any more
    let again = desk.run(&["outbox", "drop", &id]);
    assert_eq!(again.status.code(), Some(3));
    let bad = desk.run(&["outbox", "drop", "x1"]);
    assert_eq!(bad.status.code(), Some(2), "a bad id is a usage error");

    let out = desk.run(&["outbox", "retry", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outbox = desk.json(&["outbox", "--json"]);
    assert_eq!(outbox["mail"]["pending"], 1, "{outbox:#}");
    let back = &items(&outbox, "mail")[0];
    assert_eq!(back["state"], "waiting");
    assert_eq!(back["attempts"], 0);
}

/// A GET on the metrics listener: status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("metrics listener {addr}: {e}"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The value of one sample (`name{labels}` exactly), 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse::<f64>().ok()).flatten()
        })
        .unwrap_or(0.0)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn metrics_scraped_during_a_drain_match_what_happened() {
    const N: usize = 8;
    let listen = format!("127.0.0.1:{}", free_port());
    let desk = Desk::with("", "", &format!("[metrics]\nlisten = \"{listen}\"\n"));
    let mailbox = format!("{}@{}/INBOX", desk.support, support::rig().imap_host);
    let mut customers = Vec::new();
    for i in 0..N {
        let customer = fresh_user("customer");
        deliver_lmtp(
            &desk.support,
            &simple_message(&customer, &desk.support, &format!("Metrics {i}"), "Hello"),
        )
        .await;
        customers.push(customer);
    }
    let log = desk.dir.path().join("daemon.log");
    let _daemon = Killed(
        desk.command(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let fetched = format!("guichet_messages_fetched_total{{mailbox=\"{mailbox}\"}}");
    let stored = format!("guichet_messages_stored_total{{mailbox=\"{mailbox}\"}}");
    let problems = format!("guichet_messages_problems_total{{mailbox=\"{mailbox}\"}}");
    let sent = "guichet_mail_deliveries_total{outcome=\"sent\"}";
    let opened = "guichet_tickets_total{event=\"opened\"}";
    let delivered_latency = "guichet_delivery_latency_seconds_count";
    // scraped while it works: counters never go back, and reach what
    // happened (the probe reads the store every few seconds)
    let start = std::time::Instant::now();
    let mut last = (0.0, 0.0);
    let mut scrapes = 0;
    let text = loop {
        let (status, text) = match tokio::net::TcpStream::connect(&listen).await {
            Ok(_) => get(&listen, "/metrics").await,
            Err(_) => (0, String::new()),
        };
        if status == 200 {
            scrapes += 1;
            let now = (sample(&text, &fetched), sample(&text, sent));
            assert!(now.0 >= last.0 && now.1 >= last.1, "{last:?} then {now:?}");
            last = now;
            if sample(&text, sent) >= (2 * N) as f64
                && sample(&text, opened) >= N as f64
                && sample(&text, delivered_latency) >= (2 * N) as f64
            {
                break text;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the counters never reached what happened:\n{text}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(scrapes >= 2, "scraped during the drain");
    for (name, want) in [
        (fetched.as_str(), N),
        (stored.as_str(), N),
        (problems.as_str(), 0),
        (opened, N),
        ("guichet_tickets_total{event=\"closed\"}", 0),
        (sent, 2 * N),
        ("guichet_mail_deliveries_total{outcome=\"failed\"}", 0),
        ("guichet_ingest_latency_seconds_count", N),
        (delivered_latency, 2 * N),
        ("guichet_outbox_depth{queue=\"mail\"}", 0),
        ("guichet_dead_letters{queue=\"mail\"}", 0),
        ("guichet_store_up", 1),
        ("guichet_up", 1),
        (
            &format!("guichet_imap_connected{{mailbox=\"{mailbox}\"}}"),
            1,
        ),
    ] {
        assert_eq!(sample(&text, name), want as f64, "{name} in:\n{text}");
    }
    for family in [
        "# TYPE guichet_ingest_latency_seconds histogram",
        "# TYPE guichet_delivery_latency_seconds histogram",
        "# TYPE guichet_outbox_oldest_age_seconds gauge",
        "# TYPE guichet_mailbox_last_success_age_seconds gauge",
        "# TYPE guichet_webhook_deliveries counter",
        "# TYPE guichet_attachments counter",
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == family), "{family} in:\n{text}");
    }
    let age = sample(
        &text,
        &format!("guichet_mailbox_last_success_age_seconds{{mailbox=\"{mailbox}\"}}"),
    );
    assert!((0.0..30.0).contains(&age), "{age}");
    assert_eq!(get(&listen, "/healthz").await.0, 200);
    let (status, body) = get(&listen, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    for c in &customers {
        support::wait_for_messages(c, 1, WAIT).await;
    }
}

#[tokio::test]
async fn under_systemd_it_says_ready_feeds_the_watchdog_and_shows_its_last_pass() {
    use std::os::unix::net::UnixDatagram;
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Notify", "Hello"),
    )
    .await;
    let socket = desk.dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let log = desk.dir.path().join("daemon.log");
    let daemon = Killed(
        desk.command(&["run"])
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "1000000")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut said: Vec<String> = Vec::new();
    let heard =
        |said: &[String], what: &dyn Fn(&str) -> bool| said.iter().any(|m| m.lines().any(what));
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while !(heard(&said, &|l| l == "READY=1")
        && heard(&said, &|l| l == "WATCHDOG=1")
        && heard(&said, &|l| {
            l.starts_with("STATUS=last mailbox pass") && l.contains("1 fetched, 1 new tickets")
        }))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "told systemd: {said:#?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if let Ok(n) = systemd.recv(&mut buf) {
            said.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    // SIGTERM: it says it stops
    // SAFETY: a signal to the child this test started
    unsafe {
        libc::kill(daemon.0.id() as i32, libc::SIGTERM);
    }
    let start = std::time::Instant::now();
    while !heard(&said, &|l| l == "STOPPING=1") {
        assert!(start.elapsed() < Duration::from_secs(15), "{said:#?}");
        if let Ok(n) = systemd.recv(&mut buf) {
            said.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
}

/// A mail with a PNG of its own attached (a file the store has not seen).
fn with_png(from: &str, to: &str, subject: &str, i: usize) -> Vec<u8> {
    use base64::Engine;
    let mut png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
        .unwrap();
    png.extend(format!("{i}-{}", support::unique_token()).bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <backup-{}@example.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nHere is a screenshot.\r\n\
         --b\r\nContent-Type: image/png; name=\"screen.png\"\r\n\
         Content-Disposition: attachment; filename=\"screen.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n",
        support::unique_token()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_backup_taken_during_a_drain_restores_every_committed_ticket() {
    const N: usize = 60;
    let desk = Desk::new("");
    for i in 0..N {
        let customer = fresh_user("customer");
        let raw = if i % 3 == 0 {
            with_png(&customer, &desk.support, &format!("Backup {i}"), i)
        } else {
            simple_message(&customer, &desk.support, &format!("Backup {i}"), "Hello")
        };
        deliver_lmtp(&desk.support, &raw).await;
    }
    let log = desk.dir.path().join("daemon.log");
    let _daemon = Killed(
        desk.command(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // as soon as the drain has committed something
    let start = std::time::Instant::now();
    let committed = loop {
        let out = desk.run(&["tickets", "list", "--json"]);
        if out.status.success() {
            let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            if !list.is_empty() {
                break list;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no ticket: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let backup = desk.dir.path().join("backup");
    let out = desk.run(&["backup", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("backup in"), "{said}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("MANIFEST.json")).unwrap()).unwrap();
    let in_backup = manifest["tickets"].as_u64().unwrap() as usize;
    assert!(in_backup >= committed.len(), "{manifest}");
    eprintln!(
        "backup during the drain: {} tickets committed before it, {in_backup} in it, {N} in all",
        committed.len()
    );

    // restored beside the running desk, into a database of its own
    let settings = std::fs::read_to_string(&desk.config)
        .unwrap()
        .replace("sqlite://guichet.db", "sqlite://restored/guichet.db")
        .replace(
            "storage_dir = \"files\"",
            "storage_dir = \"restored-files\"",
        );
    let other = desk.dir.path().join("restored.toml");
    std::fs::write(&other, settings).unwrap();
    let restore = |args: &[&str]| {
        std::process::Command::new(support::guichet_bin())
            .arg("--config")
            .arg(&other)
            .args(args)
            .env_remove("GUICHET_CONFIG")
            .output()
            .unwrap()
    };
    let out = restore(&["restore", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = restore(&["restore", backup.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing database needs --force"
    );
    let out = restore(&["tickets", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restored.len(), in_backup);
    for t in &committed {
        let id = t["ticket_id"].as_i64().unwrap();
        let r = restored
            .iter()
            .find(|r| r["ticket_id"] == id)
            .unwrap_or_else(|| panic!("ticket {id} committed before the backup is restored"));
        assert_eq!((&r["subject"], &r["client"]), (&t["subject"], &t["client"]));
    }
    // every restored attachment's file is there
    let mut files = 0;
    for t in &restored {
        let id = t["ticket_id"].as_i64().unwrap().to_string();
        let out = restore(&["tickets", "show", &id, "--json"]);
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        for m in shown["messages"].as_array().unwrap() {
            for a in m["attachments"].as_array().into_iter().flatten() {
                if a["verdict"] == "accepted" {
                    let sha = a["sha256"].as_str().unwrap();
                    let path = desk
                        .dir
                        .path()
                        .join("restored-files")
                        .join(&sha[0..2])
                        .join(&sha[2..4])
                        .join(sha);
                    assert!(path.is_file(), "{} restored", path.display());
                    files += 1;
                }
            }
        }
    }
    // one ticket in three has a file
    assert_eq!(
        files,
        restored
            .iter()
            .filter(|t| {
                let subject = t["subject"].as_str().unwrap();
                subject[7..].parse::<usize>().unwrap() % 3 == 0
            })
            .count(),
        "every restored ticket's file"
    );
    let url = format!(
        "sqlite://{}",
        desk.dir.path().join("restored/guichet.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;
}
