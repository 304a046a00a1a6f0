//! Issue 16: the customer gets exactly what the agent wrote, whatever the
//! agent's client quotes below it. Each shape goes through the real
//! Dovecot and Postfix of the test rig and the `guichet` binary, and what
//! the customer receives is read back over IMAP: a Gmail attribution split
//! over two lines, Zoho's German `---- Am … schrieb … ----` with `|`
//! quoting, a German Outlook for Android reply (its link line and header
//! block), a French mobile signature above the copy, and an inline answer
//! under two of the customer's questions.

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, body_text, header, mail, message_id, subject};
use support::{deliver_lmtp, fetch_all, fresh_user, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(1500);

const QUESTIONS: &str =
    "Hello,\n\nWhere is my parcel?\n\nCan I change the delivery address?\n\nThanks,\nAnn";

/// The copy's Reply-To (the agents' token address).
fn reply_address(raw: &[u8]) -> String {
    let h = header(raw, "Reply-To").expect("a Reply-To");
    h.rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').to_string())
        .unwrap_or(h)
}

/// The agent's copy as `prefix`-quoted lines.
fn quoted(copy: &[u8], prefix: &str) -> String {
    body_text(copy)
        .replace("\r\n", "\n")
        .lines()
        .map(|l| format!("{prefix}{l}\n"))
        .collect()
}

/// Opens a ticket with the customer's questions; returns the agents' copy.
async fn open(desk: &Desk, customer: &str) -> Vec<u8> {
    let first = mail(
        &[
            ("From", &format!("Ann Customer <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Parcel"),
        ],
        QUESTIONS,
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk
        .tickets()
        .iter()
        .find(|t| t["client"] == customer)
        .unwrap()["ticket_id"]
        .as_i64()
        .unwrap();
    wait_for_messages(&desk.agent, 1, WAIT)
        .await
        .into_iter()
        .rev()
        .find(|m| subject(m).contains(&format!("[#{id}]")))
        .unwrap()
}

/// The agent answers the copy with `body`; returns what the customer
/// receives for it (the second mail, after the acknowledgement).
async fn answer(desk: &Desk, customer: &str, copy: &[u8], body: &str) -> String {
    let to = reply_address(copy);
    let raw = mail(
        &[
            ("From", &desk.agent),
            ("To", &to),
            ("Subject", &format!("Re: {}", subject(copy))),
            ("In-Reply-To", &format!("<{}>", message_id(copy))),
        ],
        body,
    );
    deliver_lmtp(&to, &raw).await;
    desk.run_once(None);
    let got = wait_for_messages(customer, 2, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(fetch_all(customer).await.len(), 2, "ack + the answer");
    body_text(&got[1]).replace("\r\n", "\n")
}

/// What the agent wrote, as relayed: the text above the desk's signature.
fn relayed(text: &str) -> &str {
    text.split("\n-- \n").next().unwrap_or(text).trim()
}

/// The relayed text is exactly the answer, nothing of the history.
fn assert_only(text: &str, answer: &str, absent: &[&str]) {
    assert_eq!(relayed(text), answer, "exactly the answer:\n{text}");
    for gone in absent
        .iter()
        .chain(["Where is my parcel?", "Can I change", "+t"].iter())
    {
        assert!(
            !text.contains(gone),
            "{gone:?} reached the customer:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_gmail_attribution_split_over_two_lines_is_not_relayed() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let copy = open(&desk, &customer).await;
    let body = format!(
        "It left our warehouse today.\n\n2026-12-02 18:24 GMT+00:00 ACME Support <\n{}>:\n\n{}",
        desk.support,
        quoted(&copy, "> ")
    );
    let text = answer(&desk, &customer, &copy, &body).await;
    assert_only(
        &text,
        "It left our warehouse today.",
        &["GMT+00:00", "ACME Support <", ">:"],
    );
}

#[tokio::test]
async fn zoho_dashed_header_and_bar_quotes_are_not_relayed() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let copy = open(&desk, &customer).await;
    let body = format!(
        "Das Paket ist heute rausgegangen.\n\n---- Am Mi, 02 Dez 2026 18:24:00 +0000 schrieb ACME Support <{}> ----\n\n{}",
        desk.support,
        quoted(&copy, "| ")
    );
    let text = answer(&desk, &customer, &copy, &body).await;
    assert_only(
        &text,
        "Das Paket ist heute rausgegangen.",
        &["---- Am", "schrieb", "| "],
    );
}

#[tokio::test]
async fn a_german_outlook_android_reply_loses_its_link_and_header_block() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let copy = open(&desk, &customer).await;
    let body = format!(
        "Das Paket ist heute rausgegangen.\n\nOutlook für Android herunterladen<https://aka.ms/AAb9ysg>\n________________________________\nVon: ACME Support <{}>\nGesendet: Mittwoch, 2. Dezember 2026 18:24\nAn: Agent <{}>\nBetreff: {}\n\n{}",
        desk.support,
        desk.agent,
        subject(&copy),
        body_text(&copy).replace("\r\n", "\n")
    );
    let text = answer(&desk, &customer, &copy, &body).await;
    assert_only(
        &text,
        "Das Paket ist heute rausgegangen.",
        &["Outlook", "aka.ms", "Von:", "Gesendet:", "Betreff:", "____"],
    );
}

#[tokio::test]
async fn a_french_mobile_signature_and_what_follows_are_not_relayed() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let copy = open(&desk, &customer).await;
    // iOS Mail in French: the signature, then the unprefixed original as
    // Outlook mobile writes it
    let body = format!(
        "Le colis est parti aujourd'hui.\n\nEnvoyé depuis mon iPhone\n\n{}",
        body_text(&copy).replace("\r\n", "\n")
    );
    let text = answer(&desk, &customer, &copy, &body).await;
    assert_only(
        &text,
        "Le colis est parti aujourd'hui.",
        &["iPhone", "Envoyé"],
    );
}

#[tokio::test]
async fn two_interleaved_answers_are_relayed_with_their_questions() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let copy = open(&desk, &customer).await;
    // mutt: the whole copy quoted, an answer under each question
    let mut body = format!(
        "On {}, {} wrote:\n",
        header(&copy, "Date").unwrap_or_default(),
        header(&copy, "From").unwrap_or_default()
    );
    for line in body_text(&copy).replace("\r\n", "\n").lines() {
        body.push_str(&format!("> {line}\n"));
        if line.contains("my parcel?") {
            body.push_str("\nIt left our warehouse today.\n\n");
        }
        if line.contains("delivery address?") {
            body.push_str("\nYes: reply with the new one.\n\n");
        }
    }
    let to = reply_address(&copy);
    let raw = mail(
        &[
            ("From", &desk.agent),
            ("To", &to),
            ("Subject", &format!("Re: {}", subject(&copy))),
            ("In-Reply-To", &format!("<{}>", message_id(&copy))),
        ],
        &body,
    );
    deliver_lmtp(&to, &raw).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(fetch_all(&customer).await.len(), 2, "ack + the answer");
    let text = body_text(&got[1]).replace("\r\n", "\n");
    assert_eq!(
        relayed(&text),
        "> Where is my parcel?\n\nIt left our warehouse today.\n\n\
         > Can I change the delivery address?\n\nYes: reply with the new one.",
        "{text}"
    );
    let parcel = text.find("> Where is my parcel?");
    let first = text.find("It left our warehouse today.");
    let address = text.find("> Can I change the delivery address?");
    let second = text.find("Yes: reply with the new one.");
    assert!(
        parcel.is_some() && first.is_some() && address.is_some() && second.is_some(),
        "both answers with their questions:\n{text}"
    );
    assert!(
        parcel < first && first < address && address < second,
        "each question right above its answer:\n{text}"
    );
    // just enough context: not the rest of the copy
    for gone in ["wrote:", "Thanks,", "> Ann", "+t", "status open"] {
        assert!(
            !text.contains(gone),
            "{gone:?} reached the customer:\n{text}"
        );
    }
}
