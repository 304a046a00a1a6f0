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

#[allow(dead_code)]
const WAIT: Duration = Duration::from_secs(20);
