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
