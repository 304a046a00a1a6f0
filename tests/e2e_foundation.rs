//! The foundation end to end, against the real Dovecot and Postfix of the
//! test rig: a customer's email becomes a ticket, the customer receives the
//! acknowledgement and the agent the copy (both read back over IMAP), a
//! second pass creates nothing, and a crash between storing and flagging
//! loses and duplicates nothing.

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, body_text, header, subject};
use support::{
    deliver_lmtp, fetch_all, flags_of_all, fresh_user, simple_message, wait_for_messages,
};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_customer_email_becomes_a_ticket_with_an_acknowledgement_and_an_agent_copy() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let mail = simple_message(
        &customer,
        &desk.support,
        "Printer on fire",
        "Hello,\nmy printer is on fire.\nAnn",
    );
    deliver_lmtp(&desk.support, &mail).await;

    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    let t = &tickets[0];
    let id = t["ticket_id"].as_i64().unwrap();
    assert_eq!(t["client"], customer.as_str());
    assert_eq!(t["status"], "open");
    assert_eq!(t["department"], "Support");
    assert_eq!(t["subject"], "Printer on fire");

    let ack = wait_for_messages(&customer, 1, WAIT).await;
    assert_eq!(ack.len(), 1);
    assert!(
        subject(&ack[0]).contains(&format!("[#{id}]")),
        "ack subject: {}",
        subject(&ack[0])
    );
    assert!(
        body_text(&ack[0]).contains(&format!("ticket {id}")),
        "{}",
        body_text(&ack[0])
    );
    assert_eq!(
        header(&ack[0], "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        harness::marked_ticket(&ack[0]).as_deref(),
        Some(format!("t{id}").as_str())
    );
    let marker = header(&ack[0], "X-Guichet-Mail").unwrap();
    let mark = marker.split("install=").nth(1).unwrap_or_default();
    assert!(
        mark.len() == 16 && mark.chars().all(|c| c.is_ascii_hexdigit()),
        "this installation's mark: {marker}"
    );
    let orig_id = harness::message_id(&mail);
    assert!(
        header(&ack[0], "In-Reply-To")
            .unwrap_or_default()
            .contains(&orig_id)
    );

    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    assert_eq!(copy.len(), 1);
    let reply_to = header(&copy[0], "Reply-To").unwrap_or_default();
    let local = desk.support.split('@').next().unwrap();
    assert!(
        reply_to.contains(&format!("{local}+t{id}.")),
        "Reply-To carries the token: {reply_to}"
    );
    assert!(body_text(&copy[0]).contains("my printer is on fire"));
    assert!(body_text(&copy[0]).contains(&customer));

    // the message is flagged on the server only now that it is committed
    let flags = flags_of_all(&desk.support).await;
    assert!(
        flags.iter().all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "{flags:?}"
    );

    // a second pass creates nothing new and sends nothing again
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        1,
        "the acknowledgement was sent once"
    );
    assert_eq!(
        fetch_all(&desk.agent).await.len(),
        1,
        "the copy was sent once"
    );

    let detail = desk.ticket(id);
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["rule"], "new");
    assert_eq!(messages[0]["direction"], "in");
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "ticket.created")
    );
}

#[tokio::test]
async fn a_reply_naming_a_stored_message_joins_its_ticket() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let first = simple_message(&customer, &desk.support, "Login broken", "I cannot log in.");
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let first_id = harness::message_id(&first);
    let reply = format!(
        "From: {customer}\r\nTo: {}\r\nSubject: Re: something else\r\nMessage-ID: <r1-{}@example.test>\r\nIn-Reply-To: <{first_id}>\r\nReferences: <{first_id}>\r\n\r\nStill broken.\r\n",
        desk.support,
        support::unique_token()
    );
    deliver_lmtp(&desk.support, reply.as_bytes()).await;
    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "the reply joined the first ticket");
    let detail = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let rules: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["new", "headers"]);
}

#[tokio::test]
async fn a_crash_between_storing_and_flagging_loses_and_duplicates_nothing() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    for i in 0..3 {
        let mail = simple_message(&customer, &desk.support, &format!("Question {i}"), "Hello");
        deliver_lmtp(&desk.support, &mail).await;
    }
    // the test hook aborts the process (like kill -9) right after the
    // first transaction commits (a batch: here all three messages), before
    // any IMAP flag is set
    let out = desk
        .command(&["run", "--once"])
        .env("GUICHET_TEST_CRASH_AFTER_COMMIT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process was meant to die");
    let stored = desk.tickets().len();
    assert!(
        (1..=3).contains(&stored),
        "the committed batch is stored: {stored}"
    );
    let flags = flags_of_all(&desk.support).await;
    assert_eq!(
        flags
            .iter()
            .filter(|f| f.iter().any(|x| x == "$GuichetDone"))
            .count(),
        0,
        "nothing flagged yet: {flags:?}"
    );

    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 3, "each message once: {tickets:#?}");
    let flags = flags_of_all(&desk.support).await;
    assert!(
        flags.iter().all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "all flagged after restart: {flags:?}"
    );
    let acks = wait_for_messages(&customer, 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        3,
        "one acknowledgement per ticket, none twice: {}",
        acks.len()
    );
}

#[tokio::test]
async fn broken_mail_is_stored_raw_and_surfaced() {
    let desk = Desk::new("");
    // no Message-ID, no From, 8-bit bytes in an unknown charset
    let broken = b"Subject: =?x-unknown?Q?caf=E9?=\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9 \xff\xfe\r\n".to_vec();
    deliver_lmtp(&desk.support, &broken).await;
    desk.run_once(None);
    let out = desk.json(&["tickets", "problems", "--json"]);
    let problems = out.as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0]["problem"].as_str().unwrap().contains("From"));
    // delivered again (new trace headers, same message): still one stored message
    deliver_lmtp(&desk.support, &broken).await;
    desk.run_once(None);
    assert_eq!(
        desk.json(&["tickets", "problems", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
