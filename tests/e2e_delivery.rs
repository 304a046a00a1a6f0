//! Delivery you can trust (issue 18), through the real Postfix of the
//! test rig and the `guichet` binary: a Cc the relay refuses does not
//! cost the customer the answer, and a refused customer address is never
//! a silent failure.

mod harness;
mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use harness::{Desk, body_text, reply_to_mail, subject};
use support::{deliver_lmtp, fresh_user, rig, unique_token, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn mail(from: &str, to: &str, cc: Option<&str>, subject: &str, body: &str) -> Vec<u8> {
    let cc = cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default();
    format!(
        "From: {from}\r\nTo: {to}\r\n{cc}Subject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        date = chrono::Utc::now().to_rfc2822(),
        id = unique_token(),
    )
    .into_bytes()
}

fn events_named(ticket: &Value, name: &str) -> Vec<Value> {
    ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == name)
        .cloned()
        .collect()
}

fn refused(ticket: &Value) -> Vec<Value> {
    ticket["refused_recipients"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The customer writes (with an optional Cc); returns the ticket and the
/// agent's copy.
async fn open(desk: &Desk, customer: &str, cc: Option<&str>, now: DateTime<Utc>) -> (i64, Vec<u8>) {
    let first = mail(
        customer,
        &desk.support,
        cc,
        "Printer on fire",
        "Help, please.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.pass(now);
    let id = desk
        .tickets()
        .iter()
        .find(|t| t["client"] == customer)
        .expect("a ticket")["ticket_id"]
        .as_i64()
        .unwrap();
    let copy = wait_for_messages(&desk.agent, 1, WAIT)
        .await
        .into_iter()
        .find(|m| subject(m).contains(&format!("[#{id}]")))
        .expect("the agents' copy");
    (id, copy)
}

/// The agent's mailbox: the notices about mail that did not arrive.
async fn notices(agent: &str, n: usize) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got: Vec<Vec<u8>> = support::fetch_all(agent)
            .await
            .into_iter()
            .filter(|m| subject(m).contains("Not delivered"))
            .collect();
        if got.len() >= n || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_refused_cc_does_not_cost_the_customer_the_answer() {
    let desk = Desk::new("reply_to_participants = true");
    let customer = fresh_user("customer");
    let typo = format!("colleauge-{}@{}", unique_token(), rig().refused_domain);
    let now = start();
    let (id, copy) = open(&desk, &customer, Some(&typo), now).await;
    // the acknowledgement
    wait_for_messages(&customer, 1, WAIT).await;

    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Unplug it, then plug it back in.");
    deliver_lmtp(&to, &answer).await;
    desk.pass(now + TimeDelta::minutes(5));
    desk.pass(now + TimeDelta::minutes(6));

    // the customer gets the answer, although the Cc was refused
    let got = wait_for_messages(&customer, 2, WAIT).await;
    assert!(
        body_text(&got[1]).contains("Unplug it"),
        "the customer got the answer: {}",
        body_text(&got[1])
    );
    // the ticket records the refused Cc with the relay's answer
    let ticket = desk.ticket(id);
    let r = refused(&ticket);
    assert_eq!(r.len(), 1, "{ticket:#}");
    assert_eq!(r[0]["address"], typo.as_str());
    assert_eq!(r[0]["main"], false);
    assert_eq!(r[0]["kind"], "agent_reply");
    assert!(r[0]["reply"].as_str().unwrap().contains("550"), "{r:?}");
    // the customer got it: no mail.failed, and the ticket waits for them
    assert!(
        events_named(&ticket, "mail.failed").is_empty(),
        "{ticket:#}"
    );
    assert_eq!(ticket["status"], "awaiting_customer");
    // the agent who wrote is told, with the relay's words
    let told = notices(&desk.agent, 1).await;
    assert_eq!(told.len(), 1, "one notice to the agent");
    let text = body_text(&told[0]);
    assert!(text.contains(&typo) && text.contains("550"), "{text}");

    // a later answer leaves the refused Cc out: nothing more is refused
    let (to, again) = reply_to_mail(&desk.agent, &copy, "Also check the cable.");
    deliver_lmtp(&to, &again).await;
    desk.pass(now + TimeDelta::minutes(10));
    let got = wait_for_messages(&customer, 3, WAIT).await;
    assert!(body_text(&got[2]).contains("check the cable"));
    assert_eq!(
        refused(&desk.ticket(id)).len(),
        1,
        "the Cc was not tried again"
    );
}

#[tokio::test]
async fn a_refused_customer_address_is_told_fires_mail_failed_and_holds_the_close() {
    let desk = Desk::new("auto_close_days = 3");
    let customer = format!("customer-{}@{}", unique_token(), rig().refused_domain);
    let now = start();
    let (id, copy) = open(&desk, &customer, None, now).await;
    desk.pass(now + TimeDelta::minutes(1));
    // the acknowledgement was refused: Guichet's own mail, so the
    // department's agents are told
    let told = notices(&desk.agent, 1).await;
    assert_eq!(
        told.len(),
        1,
        "the agents hear of the refused acknowledgement"
    );

    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Unplug it, then plug it back in.");
    deliver_lmtp(&to, &answer).await;
    desk.pass(now + TimeDelta::minutes(5));
    desk.pass(now + TimeDelta::minutes(6));

    // the agent who wrote is told to whom, why and what to do
    let told = notices(&desk.agent, 2).await;
    assert_eq!(told.len(), 2, "a notice for the answer too");
    let text = body_text(&told[1]);
    assert!(text.contains(&customer), "{text}");
    assert!(text.contains("550"), "the relay's words: {text}");
    assert!(text.contains("What to do"), "{text}");
    let ticket = desk.ticket(id);
    let r = refused(&ticket);
    assert!(
        r.iter().any(|r| r["main"] == true
            && r["kind"] == "agent_reply"
            && r["address"] == customer.as_str()),
        "{ticket:#}"
    );
    // mail.failed fired (recorded on the ticket, queued for the endpoints)
    let failed = events_named(&ticket, "mail.failed");
    assert!(
        failed
            .iter()
            .any(|e| e["data"]["to"] == customer.as_str() && e["data"]["kind"] == "agent_reply"),
        "{failed:?}"
    );

    // days later, the ticket has not closed for inactivity
    let report = desk.pass(now + TimeDelta::days(5));
    assert_eq!(report["auto_closed"], 0, "{report}");
    assert_eq!(desk.ticket(id)["status"], "awaiting_customer");
}
