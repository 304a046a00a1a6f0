//! `guichet stats` against a known history: a fresh help desk is driven
//! through the real binary and the real mail servers with `run --once
//! --now …`, and every figure is compared with the one computed by hand
//! below.

mod harness;
mod support;

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use harness::{Desk, iso, reply_to_mail};
use support::{deliver_lmtp, fetch_all, fresh_user, unique_token, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

/// `S`, the start of the story: 2031-01-05 00:00 UTC.
fn s_plus(hours: i64, minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2031-01-05T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + TimeDelta::hours(hours)
        + TimeDelta::minutes(minutes)
}

/// A customer's new mail with files `(name, content type, bytes)`.
fn mail_with_files(
    from: &str,
    to: &str,
    subject: &str,
    files: &[(&str, &str, Vec<u8>)],
) -> Vec<u8> {
    let boundary = format!("b-{}", unique_token());
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@test.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease help.\r\n",
        date = Utc::now().to_rfc2822(),
        id = unique_token(),
    );
    for (name, content_type, bytes) in files {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in b64.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(line).unwrap());
            m.push_str("\r\n");
        }
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// `len` bytes starting with `head`, zero-padded.
fn padded(head: &[u8], len: usize) -> Vec<u8> {
    let mut v = head.to_vec();
    v.resize(len, 0);
    v
}

fn png(len: usize) -> Vec<u8> {
    padded(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", len)
}

fn jpeg(len: usize) -> Vec<u8> {
    padded(b"\xff\xd8\xff\xe0\0\x10JFIF\0", len)
}

/// A Windows program: `MZ`, `e_lfanew` = 128, `PE\0\0` there.
fn pe(len: usize) -> Vec<u8> {
    let mut v = padded(b"MZ", len);
    v[60..64].copy_from_slice(&128u32.to_le_bytes());
    v[128..132].copy_from_slice(b"PE\0\0");
    v
}

/// The agent's copy of ticket `id` (the first one Guichet sent).
async fn copy_for(agent: &str, id: i64) -> Vec<u8> {
    let want = format!("t{id}");
    let started = std::time::Instant::now();
    loop {
        if let Some(m) = fetch_all(agent)
            .await
            .into_iter()
            .find(|m| harness::marked_ticket(m).as_deref() == Some(want.as_str()))
        {
            return m;
        }
        assert!(
            started.elapsed() < WAIT,
            "no copy of ticket {id} for {agent}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One customer of the story and the ticket their first mail opened.
struct Customer {
    address: String,
    ticket: i64,
}

/// `address` writes a new mail (with `files`) at `now`.
async fn opens(
    desk: &Desk,
    subject: &str,
    files: &[(&str, &str, Vec<u8>)],
    now: DateTime<Utc>,
) -> Customer {
    let address = fresh_user("customer");
    let mail = mail_with_files(&address, &desk.support, subject, files);
    deliver_lmtp(&desk.support, &mail).await;
    desk.pass(now);
    let ticket = desk
        .tickets()
        .iter()
        .find(|t| t["client"] == address.as_str())
        .and_then(|t| t["ticket_id"].as_i64())
        .expect("the new ticket");
    Customer { address, ticket }
}

/// The agent answers ticket `id` from its copy at `now`; returns the pass
/// report.
async fn agent_answers(desk: &Desk, id: i64, body: &str, now: DateTime<Utc>) -> Value {
    let copy = copy_for(&desk.agent, id).await;
    let (to, raw) = reply_to_mail(&desk.agent, &copy, body);
    deliver_lmtp(&to, &raw).await;
    desk.pass(now)
}

fn stats(desk: &Desk, extra: &[&str]) -> Value {
    let now = iso(s_plus(12 * 24, 0));
    let mut args = vec!["stats", "--json", "--now", now.as_str()];
    args.extend_from_slice(extra);
    desk.json(&args)
}

fn close_to(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

#[tokio::test]
async fn stats_of_a_known_history() {
    let desk = Desk::new("language = \"fr\"\nauto_close_days = 3\nreopen_days = 7");

    // ---- the story (hours after S) ----
    // h0    A opens with a.png (1000 B, accepted)
    let a = opens(
        &desk,
        "A",
        &[("a.png", "image/png", png(1000))],
        s_plus(0, 0),
    )
    .await;
    // h1    B opens with setup.exe (2048 B, refused: extension) and
    //       photo.jpg (3000 B, accepted)
    let b = opens(
        &desk,
        "B",
        &[
            ("setup.exe", "application/octet-stream", vec![b'x'; 2048]),
            ("photo.jpg", "image/jpeg", jpeg(3000)),
        ],
        s_plus(1, 0),
    )
    .await;
    // h2    the agent answers A: first answer after 2 h
    agent_answers(&desk, a.ticket, "Try this.", s_plus(2, 0)).await;
    // h3    C opens; h3:30 the agent answers and closes it (#close):
    //       first answer and close after 30 min
    let c = opens(&desk, "C", &[], s_plus(3, 0)).await;
    agent_answers(&desk, c.ticket, "#close\nNot our product.", s_plus(3, 30)).await;
    // h4    D opens with invoice.jpg, a Windows program (600 B, refused:
    //       executable); nobody ever answers D
    let d = opens(
        &desk,
        "D",
        &[("invoice.jpg", "image/jpeg", pe(600))],
        s_plus(4, 0),
    )
    .await;
    // h7    the agent answers B, with a file of their own: first answer
    //       after 6 h. Agents' files are relayed, not offered by a
    //       customer: they are not in the attachment figures.
    let copy = copy_for(&desk.agent, b.ticket).await;
    let (to, _) = reply_to_mail(&desk.agent, &copy, "");
    let answer = mail_with_files(
        &desk.agent,
        &to,
        "Re: B",
        &[("guide.png", "image/png", png(5000))],
    );
    deliver_lmtp(&to, &answer).await;
    desk.pass(s_plus(7, 0));
    let relayed = &desk.ticket(b.ticket)["messages"][1];
    assert_eq!(relayed["direction"], "out", "{relayed:#}");
    assert_eq!(relayed["attachments"][0]["filename"], "guide.png");
    // h74   A auto-closed (3 days after h2): created h0, so 74 h to close
    assert_eq!(desk.pass(s_plus(74, 0))["auto_closed"], 1);
    // h79   B auto-closed (3 days after h7): created h1, so 78 h to close
    assert_eq!(desk.pass(s_plus(79, 0))["auto_closed"], 1);
    // h98   A's customer answers: reopened (within 7 days of h74)
    let ack = wait_for_messages(&a.address, 1, WAIT).await.remove(0);
    let (to, raw) = reply_to_mail(&a.address, &ack, "Still broken.");
    deliver_lmtp(&to, &raw).await;
    desk.pass(s_plus(98, 0));
    assert_eq!(desk.ticket(a.ticket)["status"], "open");
    // h99   the agent resolves A (#resolve): A's second closing
    agent_answers(&desk, a.ticket, "#resolve\nFixed.", s_plus(99, 0)).await;
    assert_eq!(desk.ticket(a.ticket)["status"], "resolved");
    // h240  E opens; h264 the agent answers: first answer after 24 h
    let e = opens(&desk, "E", &[], s_plus(240, 0)).await;
    agent_answers(&desk, e.ticket, "Done.", s_plus(264, 0)).await;
    assert_eq!(desk.ticket(d.ticket)["status"], "open");
    assert_eq!(desk.ticket(e.ticket)["status"], "awaiting_customer");
    assert_eq!(desk.tickets().len(), 5);

    // ---- the whole story, up to S + 12 days ----
    let all = stats(&desk, &[]);
    let t = &all["tickets"];
    assert_eq!(all["period"]["since"], Value::Null);
    assert_eq!(t["opened"], 5, "A B C D E");
    // closings: C agent h3:30, A inactivity h74, B inactivity h79, A resolved h99
    assert_eq!(t["closed"], 4, "{t:#}");
    assert_eq!(t["closed_by_reason"]["inactivity"], 2);
    assert_eq!(t["closed_by_reason"]["agent"], 1);
    assert_eq!(t["closed_by_reason"]["resolved"], 1);
    assert_eq!(t["reopened"], 1);
    // closed at least once: A, B, C; reopened after that: A
    assert_eq!(t["reopen_base"], 3);
    assert_eq!(t["reopen_count"], 1);
    assert!(close_to(&t["reopen_rate"], 1.0 / 3.0), "{t:#}");
    assert!(close_to(&t["auto_closed_share"], 0.5), "2 of 4 closings");
    // first answers: C 1800, A 7200, B 21600, E 86400 (D none). Nearest
    // rank of 4: median rank 2, p90 rank ceil(3.6) = 4
    assert_eq!(t["time_to_first_answer"]["count"], 4);
    assert_eq!(t["time_to_first_answer"]["median_seconds"], 7200);
    assert_eq!(t["time_to_first_answer"]["p90_seconds"], 86400);
    // first closings: C 1800, A 74 h = 266400, B 78 h = 280800. Of 3:
    // median rank 2, p90 rank ceil(2.7) = 3
    assert_eq!(t["time_to_close"]["count"], 3);
    assert_eq!(t["time_to_close"]["median_seconds"], 266_400);
    assert_eq!(t["time_to_close"]["p90_seconds"], 280_800);
    let at = &all["attachments"];
    // accepted: a.png 1000 + photo.jpg 3000; refused: setup.exe 2048 +
    // invoice.jpg 600
    assert_eq!(
        at["accepted"],
        serde_json::json!({"count": 2, "bytes": 4000})
    );
    assert_eq!(
        at["refused"],
        serde_json::json!({"count": 2, "bytes": 2648})
    );
    assert_eq!(
        at["by_type"],
        serde_json::json!({
            "exe": {"accepted": {"count": 0, "bytes": 0}, "refused": {"count": 1, "bytes": 2048}},
            "jpg": {"accepted": {"count": 1, "bytes": 3000}, "refused": {"count": 1, "bytes": 600}},
            "png": {"accepted": {"count": 1, "bytes": 1000}, "refused": {"count": 0, "bytes": 0}},
        }),
        "{at:#}"
    );
    assert_eq!(
        at["refusals_by_reason"],
        serde_json::json!({
            "executable": {"count": 1, "bytes": 600},
            "extension_not_allowed": {"count": 1, "bytes": 2048},
        }),
        "{at:#}"
    );
    // no [[webhooks]]: nothing queued, nothing failed
    assert_eq!(
        all["webhooks"],
        serde_json::json!({"total": 0, "delivered": 0, "failed": 0, "pending": 0, "retries": 0})
    );

    // ---- since S + 3 days (2031-01-08, h72) ----
    let since = stats(&desk, &["--since", "2031-01-08"]);
    let t = &since["tickets"];
    assert_eq!(since["period"]["since"], "2031-01-08T00:00:00Z");
    assert_eq!(t["opened"], 1, "E only");
    // closings from h72: A h74, B h79 (inactivity), A h99 (resolved)
    assert_eq!(t["closed"], 3);
    assert_eq!(t["closed_by_reason"]["inactivity"], 2);
    assert_eq!(t["closed_by_reason"]["agent"], 0);
    assert_eq!(t["closed_by_reason"]["resolved"], 1);
    assert_eq!(t["reopened"], 1);
    assert_eq!(t["reopen_base"], 2, "A and B");
    assert_eq!(t["reopen_count"], 1, "A");
    assert!(close_to(&t["reopen_rate"], 0.5));
    assert!(close_to(&t["auto_closed_share"], 2.0 / 3.0));
    // created in the period and answered: E, 24 h
    assert_eq!(t["time_to_first_answer"]["count"], 1);
    assert_eq!(t["time_to_first_answer"]["median_seconds"], 86400);
    // first closing in the period: A 266400, B 280800 (C's was before).
    // Of 2: median rank 1, p90 rank ceil(1.8) = 2
    assert_eq!(t["time_to_close"]["count"], 2);
    assert_eq!(t["time_to_close"]["median_seconds"], 266_400);
    assert_eq!(t["time_to_close"]["p90_seconds"], 280_800);
    assert_eq!(
        since["attachments"]["accepted"],
        serde_json::json!({"count": 0, "bytes": 0})
    );

    // ---- since S + 11 days: no closing, the rates are null ----
    let late = stats(&desk, &["--since", "2031-01-16T00:00:00Z"]);
    assert_eq!(late["tickets"]["opened"], 0);
    assert_eq!(late["tickets"]["closed"], 0);
    assert_eq!(late["tickets"]["reopen_rate"], Value::Null);
    assert_eq!(late["tickets"]["auto_closed_share"], Value::Null);
    assert_eq!(
        late["tickets"]["time_to_close"]["median_seconds"],
        Value::Null
    );

    // ---- the text report, in French: the seed's list at least ----
    let out = desk.run(&["stats", "--now", &iso(s_plus(12 * 24, 0))]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    for want in [
        "Période : le début → 2031-01-17 00:00:00 UTC",
        "ouverts : 5",
        "fermés : 4 (inactivité 2, agent 1, résolus 1)",
        "ré-ouverts : 1",
        "taux de ré-ouverture : 33,3 % (1 / 3 tickets fermés)",
        "part fermée automatiquement : 50,0 %",
        "délai de première réponse : médiane 2 h, p90 1 j (4 tickets)",
        "temps de fermeture : médiane 3 j 2 h, p90 3 j 6 h (3 tickets)",
        "Pièces jointes",
        "acceptées : 2 (3,9 Kio)",
        "refusées : 2 (2,6 Kio)",
        "par type de fichier :",
        "png: 1 acceptées (1000 o), 0 refusées (0 o)",
        "jpg: 1 acceptées (2,9 Kio), 1 refusées (600 o)",
        "exe: 0 acceptées (0 o), 1 refusées (2,0 Kio)",
        "refus par motif :",
        "executable: 1 (600 o)",
        "envois : 0, livrés 0, échecs 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
