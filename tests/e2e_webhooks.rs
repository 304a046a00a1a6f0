//! Webhooks end to end: the real `guichet` binary against the test rig's
//! mail servers and a real HTTP receiver on 127.0.0.1 (tests/receiver).
//! A ticket's whole life arrives, in order, with the seed's fields, on every
//! kind of endpoint (generic JSON, an event filter, signed, Discord); a
//! failing endpoint gets every event in order with stable ids once it
//! recovers; a daemon that dies with events pending delivers them after a
//! restart; a 410 is given up at once and counted; `webhook test` reports
//! the endpoint's answer. A broken endpoint (accepts and never answers,
//! answers a byte a second, never finishes the TLS handshake) beside a
//! healthy one delays only itself, does not keep SIGTERM from stopping the
//! daemon, and gets its whole backlog once it recovers.

mod harness;
mod receiver;
mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use harness::{Desk, header};
use receiver::{Fault, FaultyEndpoint, Received, Receiver};
use support::{deliver_lmtp, fresh_user, simple_message, wait_for_messages};

const WAIT: Duration = Duration::from_secs(30);
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------------------
// Helpers.

/// `[[webhooks]]` sections, one per `(path, extra keys)`.
fn endpoints(r: &Receiver, list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(path, extra)| format!("[[webhooks]]\nurl = \"{}\"\n{extra}\n", r.url(path)))
        .collect()
}

/// The JSON bodies' `event` names, in arrival order.
fn events_of(requests: &[Received]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The ticket's events as `tickets show` lists them: `(event, id)`.
fn stored_events(desk: &Desk, ticket: i64) -> Vec<(String, String)> {
    desk.ticket(ticket)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn only_ticket(desk: &Desk) -> i64 {
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    tickets[0]["ticket_id"].as_i64().unwrap()
}

/// A reply to `original` (threaded by In-Reply-To) from `from`.
fn reply_to(original: &[u8], from: &str, to: &str, body: &str) -> Vec<u8> {
    let id = harness::message_id(original);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Re: {}\r\nDate: {}\r\n\
         Message-ID: <r-{}@test.example.test>\r\nIn-Reply-To: <{id}>\r\nReferences: <{id}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        harness::subject(original),
        Utc::now().to_rfc2822(),
        support::unique_token()
    )
    .into_bytes()
}

/// The reply-token address of the agent's copy (its `Reply-To`).
fn token_address(agent_copy: &[u8]) -> String {
    let reply_to = header(agent_copy, "Reply-To").expect("the agent copy has a Reply-To");
    let address = match (reply_to.find('<'), reply_to.rfind('>')) {
        (Some(a), Some(b)) => &reply_to[a + 1..b],
        _ => reply_to.as_str(),
    };
    assert!(address.contains("+t"), "not a token address: {reply_to}");
    address.to_string()
}

/// An agent's reply sent to the ticket's token address, as their mail
/// client would (authenticated by the token).
async fn agent_writes(desk: &Desk, token: &str, ticket: i64, body: &str) {
    let mail = format!(
        "From: {agent}\r\nTo: {token}\r\nSubject: Re: [#{ticket}] ticket\r\nDate: {}\r\n\
         Message-ID: <a-{}@test.example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        Utc::now().to_rfc2822(),
        support::unique_token(),
        agent = desk.agent,
    );
    deliver_lmtp(token, mail.as_bytes()).await;
}

/// A customer's first mail with two files: a PNG (accepted) and an `.exe`
/// (refused by extension).
fn mail_with_files(from: &str, to: &str, subject: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89".to_vec();
    png.extend_from_slice(b"\x00\x00\x00\x0bIDATx\x9cc\xf8\x0f\x00\x01\x01\x01\x00\x18\xdd\x8d\xb4\x00\x00\x00\x00IEND\xaeB`\x82");
    let exe =
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00this program cannot be run";
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@test.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy printer is on fire, see the photo.\r\n\
         --b1\r\nContent-Type: image/png; name=\"photo.png\"\r\nContent-Disposition: attachment; filename=\"photo.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"fix.exe\"\r\nContent-Disposition: attachment; filename=\"fix.exe\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{exe}\r\n--b1--\r\n",
        date = Utc::now().to_rfc2822(),
        id = support::unique_token(),
        png = b64(&png),
        exe = b64(exe),
    )
    .into_bytes()
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// `guichet run` as a daemon, its log in the desk's directory.
fn start_daemon(desk: &Desk, name: &str) -> Child {
    let log = std::fs::File::create(desk.dir.path().join(name)).unwrap();
    desk.command(&["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start guichet run")
}

fn daemon_log(desk: &Desk, name: &str) -> String {
    std::fs::read_to_string(desk.dir.path().join(name)).unwrap_or_default()
}

/// Standard Webhooks verification from the specification, in Python's
/// standard library only (not our code). `None` when python3 is missing
/// outside CI.
const PYTHON_VERIFIER: &str = r#"
import base64, hashlib, hmac, os, sys
secret = os.environ["SW_SECRET"]
key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
signed = os.environ["SW_ID"].encode() + b"." + os.environ["SW_TIMESTAMP"].encode() + b"." + sys.stdin.buffer.read()
expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
ok = any(s.startswith("v1,") and hmac.compare_digest(s[3:], expected) for s in os.environ["SW_SIGNATURE"].split(" "))
print("valid" if ok else "invalid")
sys.exit(0 if ok else 1)
"#;

fn python_verifies(secret: &str, r: &Received) -> Option<bool> {
    let child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_VERIFIER)
        .env("SW_SECRET", secret)
        .env("SW_ID", r.header("webhook-id").unwrap_or(""))
        .env("SW_TIMESTAMP", r.header("webhook-timestamp").unwrap_or(""))
        .env("SW_SIGNATURE", r.header("webhook-signature").unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("SKIPPED signature check: python3 not found ({e})");
            return None;
        }
        Err(e) => panic!("python3 is needed for the signature check: {e}"),
    };
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        said == "valid" || said == "invalid",
        "the verifier itself failed: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.status.success())
}

// ---------------------------------------------------------------------------
// A ticket's life.

#[tokio::test]
async fn a_tickets_whole_life_arrives_in_order_on_every_kind_of_endpoint() {
    let r = Receiver::start();
    let hooks = endpoints(
        &r,
        &[
            ("/all", ""),
            (
                "/closings",
                r#"events = ["ticket.closed", "ticket.reopened"]"#,
            ),
            ("/signed", &format!("secret = \"{SIGNING_SECRET}\"")),
            ("/discord", r#"format = "discord""#),
        ],
    );
    let desk = Desk::with("", "", "");
    // a second department to escalate to; its agent is the same person
    let billing = fresh_user("billing");
    let sections = format!(
        "[[departments]]\nname = \"Billing\"\naddress = \"{billing}\"\nagents = [\"{}\"]\n\n{hooks}",
        desk.agent
    );
    let text = std::fs::read_to_string(&desk.config).unwrap().replace(
        "name = \"Support\"\n",
        "name = \"Support\"\ndefault = true\n",
    ) + &sections;
    std::fs::write(&desk.config, text).unwrap();

    let customer = fresh_user("customer");
    // `@everyone` in a subject must not ping a Discord channel
    let subject = "Printer on fire @everyone";
    let first = mail_with_files(&customer, &desk.support, subject);
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = only_ticket(&desk);

    // the customer answers (threaded by In-Reply-To)
    deliver_lmtp(
        &desk.support,
        &reply_to(&first, &customer, &desk.support, "Still burning."),
    )
    .await;
    desk.run_once(None);

    // the agent moves it to Billing, then closes it
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let token = token_address(&copy[0]);
    agent_writes(
        &desk,
        &token,
        id,
        "#department Billing\n\nBilling will look at it.",
    )
    .await;
    desk.run_once(None);
    agent_writes(&desk, &token, id, "#close").await;
    desk.run_once(None);

    // the customer answers the closed ticket: reopened
    deliver_lmtp(
        &desk.support,
        &reply_to(&first, &customer, &desk.support, "It is on fire again."),
    )
    .await;
    desk.run_once(None);
    // the agent answers, nobody writes back: closed for inactivity 8 days on
    agent_writes(&desk, &token, id, "Please unplug it.").await;
    desk.run_once(None);
    let later = Utc::now() + chrono::Duration::days(8);
    desk.run_once(Some(&at(later)));

    let expected = [
        "ticket.created",
        "attachment.uploaded",
        "attachment.rejected",
        "ticket.replied",
        "ticket.escalated",
        "ticket.closed",
        "ticket.reopened",
        "ticket.replied",
        "ticket.closed",
    ];
    let stored = stored_events(&desk, id);
    assert_eq!(
        stored.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        expected,
        "the ticket's recorded events"
    );

    // Generic JSON: every event once, in order, with the seed's fields.
    let all = r.to("/all");
    assert_eq!(events_of(&all), expected, "generic endpoint");
    let ids: Vec<String> = all.iter().map(Received::webhook_id).collect();
    assert_eq!(
        ids,
        stored.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>(),
        "webhook-id is the stored event id"
    );
    for (i, req) in all.iter().enumerate() {
        let b = req.json();
        let what = format!("event {i} ({}): {b:#}", expected[i]);
        assert_eq!(req.status, 200);
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        assert_eq!(b["id"], ids[i].as_str(), "{what}");
        assert_eq!(b["ticket_id"], id, "{what}");
        assert_eq!(b["subject"], subject, "{what}");
        assert_eq!(b["client"], customer.as_str(), "{what}");
        assert_eq!(b["priority"], "normal", "{what}");
        for key in ["department", "status", "occurred_at", "data"] {
            assert!(b.get(key).is_some_and(|v| !v.is_null()), "{key}: {what}");
        }
        DateTime::parse_from_rfc3339(b["occurred_at"].as_str().unwrap()).expect("occurred_at");
        let department = if i < 4 { "Support" } else { "Billing" };
        assert_eq!(b["department"], department, "{what}");
    }
    let body = |i: usize| all[i].json();
    assert_eq!(body(0)["status"], "open");
    assert_eq!(body(0)["data"]["from"], customer.as_str());
    assert_eq!(body(1)["data"]["filename"], "photo.png");
    assert_eq!(body(2)["data"]["filename"], "fix.exe");
    assert_eq!(body(2)["data"]["reason"], "extension_not_allowed");
    assert!(
        body(3)["data"]["text_excerpt"]
            .as_str()
            .unwrap()
            .contains("Still burning")
    );
    assert_eq!(body(4)["data"]["from_department"], "Support");
    assert_eq!(body(4)["data"]["to_department"], "Billing");
    assert_eq!(body(5)["data"]["reason"], "agent");
    assert_eq!(body(5)["status"], "closed");
    assert_eq!(body(6)["status"], "open");
    assert_eq!(body(8)["data"]["reason"], "inactivity");
    assert_eq!(body(8)["status"], "closed");
    assert_eq!(
        body(8)["occurred_at"].as_str().unwrap()[..10],
        later.to_rfc3339()[..10],
        "auto-closed at the --now instant"
    );

    // The filtered endpoint gets only what it asked for, in order.
    let closings = r.to("/closings");
    assert_eq!(
        events_of(&closings),
        ["ticket.closed", "ticket.reopened", "ticket.closed"]
    );
    assert_eq!(
        closings
            .iter()
            .map(Received::webhook_id)
            .collect::<Vec<_>>(),
        [ids[5].clone(), ids[6].clone(), ids[8].clone()],
        "same event ids as everywhere"
    );

    // The signed endpoint: every request verifies with an independent
    // implementation; a request altered in transit does not.
    let signed = r.to("/signed");
    assert_eq!(events_of(&signed), expected);
    for req in &signed {
        assert!(req.header("webhook-signature").unwrap().starts_with("v1,"));
        let Some(valid) = python_verifies(SIGNING_SECRET, req) else {
            break;
        };
        assert!(valid, "signature refused: {}", receiver::summary(req));
        let mut tampered = req.clone();
        tampered.body[5] ^= 1;
        assert_eq!(python_verifies(SIGNING_SECRET, &tampered), Some(false));
    }
    assert!(
        all.iter().all(|r| r.header("webhook-signature").is_none()),
        "no signature without a secret"
    );

    // Discord gets Discord's shape, and nobody is pinged.
    let discord = r.to("/discord");
    assert_eq!(discord.len(), expected.len());
    for (i, req) in discord.iter().enumerate() {
        let b = req.json();
        assert_eq!(req.webhook_id(), ids[i], "Discord gets the same event ids");
        assert!(b.get("event").is_none(), "not the generic shape: {b:#}");
        assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
        let content = b["content"].as_str().unwrap();
        assert!(
            !content.is_empty() && content.len() <= 2000,
            "content: {content}"
        );
        let embed = &b["embeds"][0];
        let title = embed["title"].as_str().unwrap();
        assert!(
            title.starts_with(&format!("Ticket #{id} · ")),
            "title: {title}"
        );
        assert!(
            title.contains("@\u{200B}everyone"),
            "the mention is neutralised: {title:?}"
        );
        assert!(embed["color"].is_u64(), "{b:#}");
        assert!(embed["fields"].as_array().is_some_and(|f| f.len() <= 25));
        let footer = embed["footer"]["text"].as_str().unwrap();
        assert!(
            footer.starts_with(expected[i]),
            "event {i} is {}: footer {footer}",
            expected[i]
        );
        let text = b.to_string();
        assert!(
            !text.contains("@everyone"),
            "a customer's @everyone reaches Discord unneutralised: {text}"
        );
    }

    // Nothing is sent twice: a later pass delivers nothing new.
    let before = r.count();
    desk.run_once(Some(&at(later + chrono::Duration::hours(2))));
    assert_eq!(r.count(), before, "a further pass sent nothing again");
}

// ---------------------------------------------------------------------------
// Retries.

#[tokio::test]
async fn an_endpoint_failing_for_a_while_gets_every_event_in_order_with_stable_ids() {
    let r = Receiver::start();
    // six failures, then success for ever
    r.script("/flaky", &[500; 6], 200);
    let desk = Desk::with("", "", &endpoints(&r, &[("/flaky", "")]));
    let t0 = Utc::now();

    let customers = [fresh_user("ann"), fresh_user("bob")];
    let mut firsts = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        let m = simple_message(c, &desk.support, &format!("Question {i}"), "Hello");
        deliver_lmtp(&desk.support, &m).await;
        firsts.push(m);
    }
    desk.run_once(Some(&at(t0)));
    // one attempt per ticket: its first event, refused
    assert_eq!(r.count(), 2, "{:#?}", r.all());

    // too soon for a retry: the back-off is respected
    desk.run_once(Some(&at(t0 + chrono::Duration::seconds(2))));
    assert_eq!(r.count(), 2, "retried before its back-off delay");
    // the first retry comes after 5 s (± 20 %)
    desk.run_once(Some(&at(t0 + chrono::Duration::seconds(7))));
    assert_eq!(r.count(), 4, "first retry 7 s on: {:#?}", r.all());

    // the customers answer while the endpoint is still down
    for (c, m) in customers.iter().zip(&firsts) {
        deliver_lmtp(&desk.support, &reply_to(m, c, &desk.support, "Any news?")).await;
    }
    // each pass is past the longest back-off (an hour)
    for hours in [2, 4, 6, 8, 10] {
        desk.run_once(Some(&at(t0 + chrono::Duration::hours(hours))));
    }

    let requests = r.to("/flaky");
    let failures = requests.iter().filter(|q| q.status == 500).count();
    assert_eq!(failures, 6);
    let tickets: Vec<i64> = desk
        .tickets()
        .iter()
        .map(|t| t["ticket_id"].as_i64().unwrap())
        .collect();
    assert_eq!(tickets.len(), 2);
    for ticket in tickets {
        let stored = stored_events(&desk, ticket);
        let ids: Vec<&str> = stored.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(
            stored.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
            ["ticket.created", "ticket.replied"]
        );
        let mine: Vec<&Received> = requests
            .iter()
            .filter(|q| q.json()["ticket_id"] == ticket)
            .collect();
        let sequence: Vec<String> = mine.iter().map(|q| q.webhook_id()).collect();
        // every attempt names a stored event, never a later one before an
        // earlier one is delivered
        let positions: Vec<usize> = sequence
            .iter()
            .map(|s| ids.iter().position(|i| i == s).expect("a stored event id"))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "ticket {ticket}: out of order: {sequence:?}"
        );
        // each delivered exactly once, in order
        let delivered: Vec<&str> = mine
            .iter()
            .filter(|q| q.status == 200)
            .map(|q| q.header("webhook-id").unwrap())
            .collect();
        assert_eq!(delivered, ids, "ticket {ticket}: delivered once each");
        // retries carry the same id and the same body, with fresh timestamps
        for id in &ids {
            let attempts: Vec<&&Received> = mine
                .iter()
                .filter(|q| q.header("webhook-id") == Some(*id))
                .collect();
            assert!(attempts.iter().all(|q| q.body == attempts[0].body));
            let stamps: Vec<i64> = attempts
                .iter()
                .map(|q| q.header("webhook-timestamp").unwrap().parse().unwrap())
                .collect();
            assert!(
                stamps.windows(2).all(|w| w[0] < w[1]),
                "fresh timestamps: {stamps:?}"
            );
        }
        assert!(
            mine.iter()
                .filter(|q| q.header("webhook-id") == Some(ids[0]))
                .count()
                >= 3,
            "ticket {ticket}: its first event was retried"
        );
    }
    let stats = desk.json(&[
        "stats",
        "--json",
        "--now",
        &at(t0 + chrono::Duration::hours(12)),
    ]);
    let w = &stats["webhooks"];
    assert_eq!(
        (&w["delivered"], &w["failed"], &w["pending"], &w["retries"]),
        (&4.into(), &0.into(), &0.into(), &6.into()),
        "{w:#}"
    );
}

#[tokio::test]
async fn a_429_holds_back_the_whole_endpoint_for_its_retry_after() {
    let r = Receiver::start();
    r.script_retry_after("/limited", &[429], 200, Some("30"));
    let desk = Desk::with("", "", &endpoints(&r, &[("/limited", "")]));
    for i in 0..3 {
        let c = fresh_user("customer");
        let m = simple_message(&c, &desk.support, &format!("Limited {i}"), "Hello");
        deliver_lmtp(&desk.support, &m).await;
    }
    let t0 = Utc::now();
    let out = desk.run_once(Some(&at(t0)));
    // one request: the 429 is about the endpoint, so the other tickets'
    // events are not tried in the same pass
    assert_eq!(r.count(), 1, "{:#?}", r.all());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["webhooks"]["postponed"], 2, "{report:#}");
    // still inside the 30 s the endpoint asked for: nothing is sent
    desk.run_once(Some(&at(t0 + chrono::Duration::seconds(20))));
    assert_eq!(r.count(), 1, "Retry-After was not honoured");
    desk.run_once(Some(&at(t0 + chrono::Duration::seconds(31))));
    let all = r.to("/limited");
    assert_eq!(
        all.iter().map(|q| q.status).collect::<Vec<_>>(),
        [429, 200, 200, 200]
    );
    assert_eq!(
        all[0].webhook_id(),
        all[1].webhook_id(),
        "the refused event first"
    );
    let stats = desk.json(&[
        "stats",
        "--json",
        "--now",
        &at(t0 + chrono::Duration::minutes(1)),
    ]);
    assert_eq!(
        (
            &stats["webhooks"]["delivered"],
            &stats["webhooks"]["retries"]
        ),
        (&3.into(), &1.into()),
        "events held back untried are not counted as attempts: {:#}",
        stats["webhooks"]
    );
}

#[tokio::test]
async fn a_410_is_given_up_at_once_counted_and_logged_without_the_token() {
    let r = Receiver::start();
    // the path holds a token, as Discord's and Slack's URLs do
    let gone_path = "/api/webhooks/1/GONE-SECRET-TOKEN";
    let ok_path = "/api/webhooks/2/OK-SECRET-TOKEN";
    r.script(gone_path, &[], 410);
    let desk = Desk::with("", "", &endpoints(&r, &[(gone_path, ""), (ok_path, "")]));
    let mut logs = String::new();
    let customer = fresh_user("customer");
    let first = simple_message(&customer, &desk.support, "Gone", "Hello");
    deliver_lmtp(&desk.support, &first).await;
    logs += &String::from_utf8_lossy(&desk.run_once(None).stderr);
    deliver_lmtp(
        &desk.support,
        &reply_to(&first, &customer, &desk.support, "Hello again"),
    )
    .await;
    let out = desk.run_once(None);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("refused for good"), "logged: {log}");
    logs += &log;

    for hours in [2, 30] {
        let out = desk.run_once(Some(&at(Utc::now() + chrono::Duration::hours(hours))));
        logs += &String::from_utf8_lossy(&out.stderr);
    }
    assert!(
        logs.contains("webhook delivered") && !logs.contains("SECRET-TOKEN"),
        "the logs show the endpoints without their tokens: {logs}"
    );
    let gone = r.to(gone_path);
    assert_eq!(
        events_of(&gone),
        ["ticket.created", "ticket.replied"],
        "each event tried once, never again"
    );
    assert_eq!(
        events_of(&r.to(ok_path)),
        ["ticket.created", "ticket.replied"]
    );
    let stats = desk.json(&["stats", "--json"]);
    let w = &stats["webhooks"];
    assert_eq!(
        (&w["total"], &w["delivered"], &w["failed"], &w["pending"]),
        (&4.into(), &2.into(), &2.into(), &0.into()),
        "{w:#}"
    );
}

// ---------------------------------------------------------------------------
// Crashes.

#[tokio::test]
async fn events_committed_before_a_crash_are_delivered_by_the_restarted_daemon() {
    let r = Receiver::start();
    let desk = Desk::with("", "", &endpoints(&r, &[("/hook", "")]));
    let customer = fresh_user("customer");
    for i in 0..2 {
        let m = simple_message(&customer, &desk.support, &format!("Crash {i}"), "Hello");
        deliver_lmtp(&desk.support, &m).await;
    }
    // dies like kill -9 right after the first transaction's commit (a
    // batch: one or both messages): its events are in the outbox, not yet
    // sent
    let out = desk
        .command(&["run", "--once"])
        .env("GUICHET_TEST_CRASH_AFTER_COMMIT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process was meant to die");
    let stored = desk.tickets().len();
    assert!((1..=2).contains(&stored), "committed: {stored}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.count(), 0, "nothing was sent before the crash");

    let mut daemon = start_daemon(&desk, "daemon.log");
    let got = r
        .wait_until(WAIT, "both tickets' created events", |all| all.len() >= 2)
        .await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(events_of(&got), ["ticket.created", "ticket.created"]);
    let mut tickets: Vec<i64> = got
        .iter()
        .map(|q| q.json()["ticket_id"].as_i64().unwrap())
        .collect();
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), 2, "{}", daemon_log(&desk, "daemon.log"));
}

#[tokio::test]
async fn a_daemon_killed_while_an_endpoint_is_down_delivers_after_restart() {
    let r = Receiver::start();
    r.script("/hook", &[], 503);
    let desk = Desk::with("", "", &endpoints(&r, &[("/hook", "")]));
    let customer = fresh_user("customer");

    let mut daemon = start_daemon(&desk, "first.log");
    let first = simple_message(&customer, &desk.support, "Down", "Hello");
    deliver_lmtp(&desk.support, &first).await;
    r.wait_until(WAIT, "a first (failed) attempt", |all| !all.is_empty())
        .await;
    // let the failure be recorded, then kill -9
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let attempts_before = r.count();

    // mail arrives while the daemon is dead; the endpoint recovers
    deliver_lmtp(
        &desk.support,
        &reply_to(&first, &customer, &desk.support, "Hello?"),
    )
    .await;
    r.script("/hook", &[], 200);

    let mut daemon = start_daemon(&desk, "second.log");
    let all = r
        .wait_until(WAIT, "both events delivered", |all| {
            all.iter().filter(|q| q.status == 200).count() >= 2
        })
        .await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let delivered: Vec<&Received> = all.iter().filter(|q| q.status == 200).collect();
    assert_eq!(
        delivered
            .iter()
            .map(|q| q.json()["event"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["ticket.created", "ticket.replied"],
        "{}",
        daemon_log(&desk, "second.log")
    );
    let id = only_ticket(&desk);
    let stored = stored_events(&desk, id);
    assert_eq!(delivered[0].webhook_id(), stored[0].1);
    assert_eq!(delivered[1].webhook_id(), stored[1].1);
    // the failed attempts were of the first event, with the same id
    assert!(
        all[..attempts_before]
            .iter()
            .all(|q| q.webhook_id() == stored[0].1)
    );
}

#[tokio::test]
async fn a_hanging_smtp_server_does_not_hold_up_webhooks() {
    // accepts connections and never says a word
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let r = Receiver::start();
    let desk = Desk::with("", "", &endpoints(&r, &[("/hook", "")]));
    let text = std::fs::read_to_string(&desk.config).unwrap().replace(
        &format!("port = {}\n", support::rig().smtp_port),
        &format!("port = {silent_port}\n"),
    );
    std::fs::write(&desk.config, text).unwrap();

    let mut daemon = start_daemon(&desk, "daemon.log");
    let customer = fresh_user("customer");
    let mail = simple_message(&customer, &desk.support, "SMTP is stuck", "Hello");
    deliver_lmtp(&desk.support, &mail).await;
    let got = r
        .wait_until(
            Duration::from_secs(10),
            "the webhook, mail being stuck",
            |all| !all.is_empty(),
        )
        .await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(events_of(&got), ["ticket.created"]);
}

// ---------------------------------------------------------------------------
// A broken endpoint beside a healthy one.

/// New tickets, and replies to the first few of them.
const TICKETS: usize = 20;
const REPLIES: usize = 5;
/// `timeout_seconds` of the broken endpoint.
const BROKEN_DEADLINE: u64 = 3;

/// Polls `done` every 50 ms for at most `within`.
async fn wait_for(within: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test]
async fn a_blackhole_endpoint_delays_only_itself_and_gets_its_backlog_after_recovering() {
    broken_beside_healthy(Fault::Blackhole).await;
}

#[tokio::test]
async fn a_slow_loris_endpoint_delays_only_itself_and_gets_its_backlog_after_recovering() {
    broken_beside_healthy(Fault::SlowLoris).await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_delays_only_itself_and_its_backlog_follows_recovery() {
    broken_beside_healthy(Fault::StalledTls).await;
}

/// Per ticket, the events delivered (answered 2xx), in arrival order.
fn delivered_per_ticket(
    requests: &[Received],
) -> std::collections::BTreeMap<i64, Vec<(String, String)>> {
    let mut per_ticket = std::collections::BTreeMap::<i64, Vec<(String, String)>>::new();
    for q in requests.iter().filter(|q| q.status == 200) {
        let b = q.json();
        per_ticket
            .entry(b["ticket_id"].as_i64().unwrap())
            .or_default()
            .push((b["event"].as_str().unwrap().to_string(), q.webhook_id()));
    }
    per_ticket
}

/// Every ticket's events, once each and in order: created, then replied
/// for the first `REPLIES` tickets.
fn assert_whole_backlog(requests: &[Received], what: &str) {
    let per_ticket = delivered_per_ticket(requests);
    assert_eq!(per_ticket.len(), TICKETS, "{what}: tickets {per_ticket:#?}");
    let mut ids: Vec<&str> = Vec::new();
    for (n, (ticket, events)) in per_ticket.iter().enumerate() {
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        let expected: &[&str] = if n < REPLIES {
            &["ticket.created", "ticket.replied"]
        } else {
            &["ticket.created"]
        };
        assert_eq!(
            names, expected,
            "{what}: ticket {ticket}, once each, in order"
        );
        ids.extend(events.iter().map(|(_, id)| id.as_str()));
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{what}: an event delivered twice");
}

/// SIGTERM, then at most `within` for the process to exit.
fn terminate_within(daemon: &mut Child, within: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    // SAFETY: a plain kill(2) of our own child
    unsafe {
        libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM);
    }
    loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            let took = started.elapsed();
            return if status.success() {
                Ok(took)
            } else {
                Err(format!("exited with {status} after {took:?}"))
            };
        }
        if started.elapsed() > within {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err(format!("still running {within:?} after SIGTERM"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The issue-26 scenario: a broken endpoint beside a healthy one, 20 new
/// tickets and 5 replies. The healthy one gets every event within
/// seconds; SIGTERM during the fault stops the daemon within 10 s; the
/// broken one, once it recovers, gets its whole backlog, each event once
/// and in order, within a minute.
async fn broken_beside_healthy(fault: Fault) {
    let healthy = Receiver::start();
    let tls = support::rig().ca_file.parent().unwrap().to_path_buf();
    let broken = FaultyEndpoint::start(
        fault,
        Some((&tls.join("fullchain.pem"), &tls.join("key.pem"))),
    );
    let mut hooks = endpoints(&healthy, &[("/chat", "")]);
    // a short deadline keeps the test short; the default is 10 s
    hooks += &format!(
        "[[webhooks]]\nurl = \"{}\"\ntimeout_seconds = {BROKEN_DEADLINE}\n",
        broken.url("/crm")
    );
    if fault == Fault::StalledTls {
        // the endpoint's certificate is signed by the rig's own CA, as an
        // internal system's would be by the company's
        hooks += &format!("ca_file = \"{}\"\n", support::rig().ca_file.display());
    }
    let desk = Desk::with("", "", &hooks);
    let mut daemon = start_daemon(&desk, "first.log");

    let mut firsts = Vec::new();
    for i in 0..TICKETS {
        let customer = fresh_user("customer");
        let m = simple_message(&customer, &desk.support, &format!("Fault {i}"), "Hello");
        deliver_lmtp(&desk.support, &m).await;
        firsts.push((customer, m));
    }
    let queued = Instant::now();
    healthy
        .wait_until(
            Duration::from_secs(20),
            "every ticket.created at the healthy endpoint",
            |all| all.iter().filter(|q| q.status == 200).count() >= TICKETS,
        )
        .await;
    println!(
        "{fault:?}: the healthy endpoint had all {TICKETS} new tickets {:?} after the last mail",
        queued.elapsed()
    );
    for (customer, first) in &firsts[..REPLIES] {
        let reply = reply_to(first, customer, &desk.support, "Any news?");
        deliver_lmtp(&desk.support, &reply).await;
    }
    let all = healthy
        .wait_until(
            Duration::from_secs(20),
            "the replies at the healthy endpoint",
            |all| all.iter().filter(|q| q.status == 200).count() >= TICKETS + REPLIES,
        )
        .await;
    assert_whole_backlog(&all, "healthy endpoint");
    // the first attempt at the broken endpoint fails at its deadline and
    // is logged; SIGTERM comes while the next one is in flight
    let failed = wait_for(Duration::from_secs(30), || {
        daemon_log(&desk, "first.log").contains("webhook not delivered")
    })
    .await;
    assert!(
        failed,
        "a failed attempt is logged: {}",
        daemon_log(&desk, "first.log")
    );
    let connections = || {
        broken
            .broken_connections
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let probing = wait_for(Duration::from_secs(30), || connections() >= 2).await;
    assert!(
        probing,
        "the endpoint is tried again after its pause: {}",
        daemon_log(&desk, "first.log")
    );
    let stopped = terminate_within(&mut daemon, Duration::from_secs(10));
    let log = daemon_log(&desk, "first.log");
    let took = stopped.unwrap_or_else(|e| panic!("{fault:?}: {e}; log:\n{log}"));
    println!("{fault:?}: stopped {took:?} after SIGTERM");
    assert!(
        log.contains("webhook attempts in flight abandoned"),
        "the attempt in flight was abandoned: {log}"
    );

    // restarted while the endpoint is still broken: the backlog waits,
    // and `guichet outbox` says why
    let before = connections();
    let mut daemon = start_daemon(&desk, "second.log");
    let retried = wait_for(Duration::from_secs(40), || connections() > before).await;
    assert!(
        retried,
        "the restarted daemon tries the endpoint again: {}",
        daemon_log(&desk, "second.log")
    );
    let outbox = desk.json(&["outbox", "--json"]);
    let lanes = outbox["webhooks"].as_array().unwrap();
    assert_eq!(
        (&lanes[0]["state"], &lanes[0]["pending"]),
        (&"healthy".into(), &0.into()),
        "{outbox:#}"
    );
    assert_eq!(lanes[1]["state"], "failing", "{outbox:#}");
    assert_eq!(lanes[1]["pending"], TICKETS + REPLIES, "{outbox:#}");
    assert!(lanes[1]["failures"].as_u64().unwrap() >= 1, "{outbox:#}");
    assert!(
        !lanes[1].to_string().contains("/crm"),
        "no URL path shown: {outbox:#}"
    );

    // the endpoint recovers: the running daemon resumes by itself
    broken.recover();
    let recovered = Instant::now();
    let got = broken
        .receiver
        .wait_until(
            Duration::from_secs(60),
            "the broken endpoint's whole backlog after it recovered",
            |all| all.iter().filter(|q| q.status == 200).count() >= TICKETS + REPLIES,
        )
        .await;
    println!(
        "{fault:?}: backlog delivered {:?} after recovery",
        recovered.elapsed()
    );
    // no duplicate arrives late
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if broken.receiver.count() > got.len() {
        broken.receiver.all()
    } else {
        got
    };
    let _ = terminate_within(&mut daemon, Duration::from_secs(10));
    assert_whole_backlog(&got, &format!("{fault:?} endpoint after recovery"));
    assert_eq!(
        healthy.count(),
        TICKETS + REPLIES,
        "the healthy endpoint got nothing twice"
    );
}

#[tokio::test]
async fn a_paused_endpoint_is_announced_to_the_endpoints_that_asked_and_resumes_by_itself() {
    let r = Receiver::start();
    r.script("/down", &[], 503);
    let desk = Desk::with(
        "",
        "",
        &endpoints(
            &r,
            &[
                ("/down", ""),
                // no ticket events, only the system ones
                ("/ops", "events = [\"ticket.closed\"]\nsystem_events = true"),
                ("/quiet", "events = [\"ticket.closed\"]"),
            ],
        ),
    );
    let customer = fresh_user("customer");
    let m = simple_message(&customer, &desk.support, "Paused", "Hello");
    deliver_lmtp(&desk.support, &m).await;
    // one probe a pass, each past the endpoint's hold: the fifth failure
    // in a row pauses it
    let t0 = Utc::now();
    for pass in 0..5 {
        desk.run_once(Some(&at(t0 + chrono::Duration::hours(pass))));
    }
    // within its hold: it waits, and /ops hears of it
    desk.run_once(Some(&at(t0
        + chrono::Duration::hours(4)
        + chrono::Duration::seconds(2))));
    let outbox = desk.json(&["outbox", "--json"]);
    assert_eq!(outbox["webhooks"][0]["state"], "paused", "{outbox:#}");
    assert_eq!(outbox["webhooks"][0]["failures"], 5, "{outbox:#}");
    let down = r.to("/down");
    assert_eq!(down.len(), 5, "one probe a pass: {down:#?}");
    let ops = r.to("/ops");
    assert_eq!(ops.len(), 1, "{ops:#?}");
    let degraded = ops[0].json();
    assert_eq!(degraded["event"], "system.degraded", "{degraded:#}");
    assert_eq!(degraded["data"]["component"], "webhooks");
    assert_eq!(degraded["data"]["webhook"], 0);
    assert_eq!(degraded["data"]["failures"], 5);
    assert!(
        degraded["data"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/…"),
        "no path: {degraded:#}"
    );
    assert!(
        degraded["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{degraded:#}"
    );

    // it answers again: resumed, its event delivered, and /ops told
    r.script("/down", &[], 200);
    desk.run_once(Some(&at(t0 + chrono::Duration::hours(7))));
    desk.run_once(Some(&at(t0 + chrono::Duration::hours(8))));
    let down = r.to("/down");
    assert_eq!(
        down.iter().map(|q| q.status).collect::<Vec<_>>(),
        [503, 503, 503, 503, 503, 200]
    );
    assert_eq!(events_of(&down[5..]), ["ticket.created"]);
    let ops: Vec<String> = r
        .to("/ops")
        .iter()
        .map(|q| q.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ["system.degraded", "system.recovered"]);
    assert!(r.to("/quiet").is_empty(), "only endpoints that asked");
    let outbox = desk.json(&["outbox", "--json"]);
    assert_eq!(outbox["webhooks"][0]["state"], "healthy", "{outbox:#}");
}

// ---------------------------------------------------------------------------
// `guichet webhook test`.

#[tokio::test]
async fn webhook_test_shows_the_answer_and_fails_on_a_500() {
    let r = Receiver::start();
    r.script("/api/webhooks/9/BROKEN-SECRET-TOKEN", &[], 500);
    let desk = Desk::with(
        "",
        "",
        &endpoints(
            &r,
            &[("/configured", &format!("secret = \"{SIGNING_SECRET}\""))],
        ),
    );

    let out = desk.run(&["webhook", "test", "--url", &r.url("/fine")]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    assert!(stdout.contains(" ms"), "latency shown: {stdout}");
    assert!(
        stdout.contains("ok"),
        "the answer's body is shown: {stdout}"
    );
    let sent = r.to("/fine");
    assert_eq!(sent.len(), 1);
    let b = sent[0].json();
    assert_eq!(b["event"], "ticket.created");
    assert_eq!(b["ticket_id"], 123);
    assert_eq!(b["data"]["test"], true);

    let out = desk.run(&[
        "webhook",
        "test",
        "--url",
        &r.url("/api/webhooks/9/BROKEN-SECRET-TOKEN"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("HTTP 500"), "{stdout}");
    assert!(stdout.contains("scripted failure"), "{stdout}");
    assert!(
        !stdout.contains("SECRET-TOKEN"),
        "the URL's token is not shown: {stdout}"
    );

    // a refused connection fails too, without a panic
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = desk.run(&[
        "webhook",
        "test",
        "--url",
        &format!("http://127.0.0.1:{closed}/x"),
    ]);
    assert_eq!(out.status.code(), Some(1));

    // without --url: the configured endpoints, signed with their secret
    let out = desk.run(&["webhook", "test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let configured = r.to("/configured");
    assert_eq!(configured.len(), 1);
    if let Some(valid) = python_verifies(SIGNING_SECRET, &configured[0]) {
        assert!(valid, "the test event's signature verifies");
    }
}
