//! Delivery you can trust (issue 18), through the real Postfix of the
//! test rig and the `guichet` binary: a Cc the relay refuses does not
//! cost the customer the answer, and a refused customer address is never
//! a silent failure.

mod harness;
mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use harness::{Desk, body_text, header, message_id, reply_to_mail, subject};
use support::{deliver_lmtp, deliver_lmtp_from, fresh_user, rig, unique_token, wait_for_messages};

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

/// A Postfix DSN saying that `returned` (a mail Guichet sent) did not
/// reach `to`, with its headers returned.
fn dsn(support: &str, to: &str, returned: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(returned);
    let headers = text.split("\r\n\r\n").next().unwrap_or("");
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         To: {support}\r\n\
         Auto-Submitted: auto-replied\r\n\
         Date: {date}\r\n\
         Message-Id: <dsn-{id}@mx.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         \r\n\
         Final-Recipient: rfc822; {to}\r\n\
         Action: failed\r\n\
         Status: 5.2.1\r\n\
         Diagnostic-Code: smtp; 550 5.2.1 <{to}>: mailbox disabled\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         {headers}\r\n\
         \r\n\
         --B1--\r\n",
        date = chrono::Utc::now().to_rfc2822(),
        id = unique_token(),
    )
    .into_bytes()
}

#[tokio::test]
async fn a_later_bounce_of_a_relayed_answer_tells_the_agent() {
    let desk = Desk::new("auto_close_days = 3");
    let customer = fresh_user("customer");
    let now = start();
    let (id, copy) = open(&desk, &customer, None, now).await;
    wait_for_messages(&customer, 1, WAIT).await;
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Unplug it, then plug it back in.");
    deliver_lmtp(&to, &answer).await;
    desk.pass(now + TimeDelta::minutes(5));
    // the relay took it; the customer's server returns it later
    let got = wait_for_messages(&customer, 2, WAIT).await;
    let relayed = &got[1];
    assert!(header(relayed, "X-Guichet-Mail").is_some());
    assert!(!message_id(relayed).is_empty());
    deliver_lmtp_from("", &desk.support, &dsn(&desk.support, &customer, relayed)).await;
    desk.pass(now + TimeDelta::hours(1));
    desk.pass(now + TimeDelta::hours(1) + TimeDelta::minutes(1));

    let told = notices(&desk.agent, 1).await;
    assert_eq!(told.len(), 1, "the agent who wrote is told");
    let text = body_text(&told[0]);
    assert!(
        text.contains(&customer) && text.contains("mailbox disabled"),
        "{text}"
    );
    let ticket = desk.ticket(id);
    assert!(
        refused(&ticket)
            .iter()
            .any(|r| r["main"] == true && r["source"] == "bounce"),
        "{ticket:#}"
    );
    assert_eq!(events_named(&ticket, "mail.failed").len(), 1, "{ticket:#}");
    let report = desk.pass(now + TimeDelta::days(5));
    assert_eq!(report["auto_closed"], 0, "{report}");
}

#[tokio::test]
async fn a_deferred_cc_is_retried_alone_and_the_customer_is_answered_at_once() {
    let desk = Desk::new("reply_to_participants = true");
    let customer = fresh_user("customer");
    let later = format!("colleague-{}@{}", unique_token(), rig().deferred_domain);
    let now = start();
    let (id, copy) = open(&desk, &customer, Some(&later), now).await;
    wait_for_messages(&customer, 1, WAIT).await;
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Unplug it, then plug it back in.");
    deliver_lmtp(&to, &answer).await;
    desk.pass(now + TimeDelta::minutes(5));

    // the customer is answered at once; the deferred Cc waits in the
    // outbox on its own, and is tried again after the backoff
    let got = wait_for_messages(&customer, 2, WAIT).await;
    assert!(body_text(&got[1]).contains("Unplug it"));
    assert_eq!(desk.json(&["outbox", "--json"])["mail"]["pending"], 1);
    assert!(
        refused(&desk.ticket(id)).is_empty(),
        "a 4xx is not a refusal"
    );
    let report = desk.pass(now + TimeDelta::minutes(7));
    assert_eq!(report["mail"]["retried"], 1, "{report}");
    assert_eq!(report["mail"]["sent"], 0, "{report}");
    // the customer got the answer once
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(support::fetch_all(&customer).await.len(), 2);
    assert!(
        notices(&desk.agent, 0).await.is_empty(),
        "nobody to tell yet"
    );
}

#[tokio::test]
async fn a_refused_agent_address_is_the_admins_problem_shown_in_stats() {
    let desk = Desk::new("");
    let wrong = format!("agent-{}@{}", unique_token(), rig().refused_domain);
    desk.edit_settings(
        &format!("agents = [\"{}\"]", desk.agent),
        &format!("agents = [\"{wrong}\"]"),
    );
    let customer = fresh_user("customer");
    let first = mail(
        &customer,
        &desk.support,
        None,
        "Printer on fire",
        "Help, please.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.pass(start());
    desk.pass(start() + TimeDelta::minutes(1));
    // the customer still gets the acknowledgement; nobody is sent a notice
    // about the agents' copy (no loop), and stats names the address
    wait_for_messages(&customer, 1, WAIT).await;
    let stats = desk.json(&["stats", "--json"]);
    let refused = stats["refused_agent_addresses"].as_array().expect("listed");
    assert_eq!(refused.len(), 1, "{stats:#}");
    assert_eq!(refused[0]["address"], wrong.to_lowercase().as_str());
    assert!(refused[0]["last_reply"].as_str().unwrap().contains("550"));
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    assert!(events_named(&desk.ticket(id), "mail.failed").is_empty());
}
