//! The conversation as real clients drive it (issue 12), through the real
//! Dovecot and Postfix of the test rig and the `guichet` binary: an agent
//! answering inline in mutt without deleting the copy's header block, Zoho
//! quoting, a French desk, late replies to a closed ticket, an agent who
//! writes to the support address instead of replying to the copy.

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, body_text, header, mail, message_id, reply_to_mail, subject};
use support::{deliver_lmtp, fetch_all, fresh_user, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(1500);

/// The copy's Reply-To (the agents' token address).
fn reply_address(raw: &[u8]) -> String {
    let h = header(raw, "Reply-To").expect("a Reply-To");
    h.rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').to_string())
        .unwrap_or(h)
}

/// What mutt's Reply writes when the agent answers below the customer's
/// line and deletes nothing: the whole copy quoted with `> `.
fn mutt_inline_reply(agent: &str, copy: &[u8], after: &str, answer: &str) -> (String, Vec<u8>) {
    let to = reply_address(copy);
    let mut body = format!(
        "On {}, {} wrote:\n",
        header(copy, "Date").unwrap_or_default(),
        header(copy, "From").unwrap_or_default()
    );
    for line in body_text(copy).replace("\r\n", "\n").lines() {
        body.push_str(&format!("> {line}\n"));
        if line.contains(after) {
            body.push_str(&format!("\n{answer}\n\n"));
        }
    }
    let raw = mail(
        &[
            ("From", agent),
            ("To", &to),
            ("Subject", &format!("Re: {}", subject(copy))),
            ("In-Reply-To", &format!("<{}>", message_id(copy))),
        ],
        &body,
    );
    (to, raw)
}

/// Opens a ticket; returns its id and the agents' copy.
async fn open(desk: &Desk, customer: &str, name: &str, body: &str) -> (i64, Vec<u8>) {
    let first = mail(
        &[
            ("From", &format!("{name} <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Printer on fire"),
        ],
        body,
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
    let copy = wait_for_messages(&desk.agent, 1, WAIT)
        .await
        .into_iter()
        .rev()
        .find(|m| subject(m).contains(&format!("[#{id}]")))
        .unwrap();
    (id, copy)
}

/// Issue 12 item 1: nothing Guichet wrote for agents reaches the
/// customer, whatever the agent's client does with the copy.
#[tokio::test]
async fn an_inline_answer_in_mutt_or_zoho_relays_nothing_internal() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let (id, copy) = open(&desk, &customer, "Ann Customer", "Is my printer on fire?").await;

    let (to, inline) = mutt_inline_reply(&desk.agent, &copy, "on fire?", "Yes: unplug it now.");
    deliver_lmtp(&to, &inline).await;
    desk.run_once(None);
    // Zoho: `---- On … wrote ----` above the unprefixed copy
    let zoho_body = format!(
        "Then call us.\n\n---- On {} Support <{}> wrote ----\n\n{}",
        header(&copy, "Date").unwrap_or_default(),
        desk.support,
        body_text(&copy)
    );
    let zoho = mail(
        &[
            ("From", &desk.agent),
            ("To", &reply_address(&copy)),
            ("Subject", &format!("Re: {}", subject(&copy))),
        ],
        &zoho_body,
    );
    deliver_lmtp(&reply_address(&copy), &zoho).await;
    desk.run_once(None);

    let got = wait_for_messages(&customer, 3, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(fetch_all(&customer).await.len(), 3, "ack + two answers");
    let inline_text = body_text(&got[1]);
    assert!(inline_text.contains("Yes: unplug it now."), "{inline_text}");
    let zoho_text = body_text(&got[2]);
    assert!(zoho_text.contains("Then call us."), "{zoho_text}");
    for text in [&inline_text, &zoho_text] {
        for internal in [
            &format!("Ticket {id} ·"),
            "status open",
            "priority normal",
            "department Support",
            "Reply to this email",
            "#priority",
            "#department",
            "------------",
            "+t",
        ] {
            assert!(
                !text.contains(internal),
                "{internal:?} reached the customer:\n{text}"
            );
        }
    }
    assert!(
        !zoho_text.contains("on fire?"),
        "the Zoho quote is a quote:\n{zoho_text}"
    );
    // agents tell tickets apart by who wrote (issue 12 item 6)
    let from = header(&copy, "From").unwrap();
    assert!(
        from.contains("Ann Customer") && from.contains(&desk.support),
        "{from}"
    );
}

/// Issue 12 item 5: a French desk's copy and notices are French
/// throughout, values included.
#[tokio::test]
async fn a_french_desk_writes_french_to_its_agents() {
    let desk = Desk::new("language = \"fr\"");
    let customer = fresh_user("customer");
    let (_id, copy) = open(&desk, &customer, "Anne", "Mon imprimante fume.").await;
    let text = body_text(&copy);
    for fr in [
        "Nouveau ticket",
        "statut ouvert",
        "priorité normale",
        "Répondez à ce message",
    ] {
        assert!(text.contains(fr), "{fr} missing:\n{text}");
    }
    for en in [
        "New ticket",
        "status open",
        "normal ·",
        "Reply to this email",
    ] {
        assert!(!text.contains(en), "{en} in a French copy:\n{text}");
    }
    let (to, typo) = reply_to_mail(&desk.agent, &copy, "#clsoe\nC'est réglé.");
    deliver_lmtp(&to, &typo).await;
    desk.run_once(None);
    let notice = wait_for_messages(&desk.agent, 2, WAIT).await.remove(1);
    let n = body_text(&notice);
    assert!(n.contains("n'est pas une commande"), "{n}");
    assert!(!n.contains("is not a command"), "{n}");
}

/// Issue 12 item 6: `#close` alone tells the customer.
#[tokio::test]
async fn a_bare_close_is_announced_to_the_customer() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let (id, copy) = open(&desk, &customer, "Ann", "Help.").await;
    let (to, close) = reply_to_mail(&desk.agent, &copy, "#close");
    deliver_lmtp(&to, &close).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    let closing = body_text(&got[1]);
    assert!(
        closing.contains(&format!("Ticket {id} has been closed")),
        "{closing}"
    );
    assert_eq!(desk.ticket(id)["status"], "closed");
}

/// Found with mutt: `#resolve` with an answer relayed the answer and never
/// told the customer the ticket was closed, nor how long a reply reopens
/// it. Now the answer ends with it, in one mail; an answer that closes
/// nothing has no such lines.
#[tokio::test]
async fn an_answer_that_closes_says_so_and_how_to_reopen() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let (id, copy) = open(&desk, &customer, "Ann", "Help.").await;
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Restart it and it works.\n#resolve");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        2,
        "ack and the answer, one mail"
    );
    let text = body_text(&got[1]);
    assert!(text.contains("Restart it and it works."), "{text}");
    assert!(
        text.contains(&format!("ticket {id} is now closed"))
            && text.contains("reply within 7 days and it will be reopened"),
        "{text}"
    );
    assert!(!text.contains("#resolve"), "{text}");
    assert_eq!(desk.ticket(id)["status"], "resolved");

    let other = fresh_user("customer");
    let (_, copy) = open(&desk, &other, "Bo", "Help too.").await;
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "Restart it.");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&other, 2, WAIT).await;
    assert!(
        !body_text(&got[1]).contains("closed"),
        "{}",
        body_text(&got[1])
    );
}

/// Issue 12 item 3: the second late reply joins the linked ticket the
/// first one opened, whose copy names the old ticket.
#[tokio::test]
async fn late_replies_open_one_linked_ticket() {
    let desk = Desk::new("reopen_days = 0");
    let customer = fresh_user("customer");
    let (id, copy) = open(&desk, &customer, "Ann", "Help.").await;
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    let (to, close) = reply_to_mail(&desk.agent, &copy, "#close\nDone, closing.");
    deliver_lmtp(&to, &close).await;
    desk.run_once(None);
    assert_eq!(desk.ticket(id)["status"], "closed");

    for n in 0..2 {
        let (to, late) = reply_to_mail(&customer, &ack, &format!("Late reply {n}."));
        deliver_lmtp(&to, &late).await;
        desk.run_once(None);
    }
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 2, "one linked ticket, not two: {tickets:#?}");
    let linked = tickets.iter().find(|t| t["ticket_id"] != id).unwrap();
    let linked_id = linked["ticket_id"].as_i64().unwrap();
    let texts: Vec<String> = desk.ticket(linked_id)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    let copies = wait_for_messages(&desk.agent, 3, WAIT).await;
    assert!(
        copies
            .iter()
            .any(|m| body_text(m).contains(&format!("continuing closed ticket {id}"))),
        "no copy names ticket {id}"
    );
}

/// Issue 12 item 4: an agent who writes to support@ (no token, no trusted
/// authentication) is neither a customer nor an agent.
#[tokio::test]
async fn an_agent_writing_to_the_support_address_is_held_as_unverified() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let (id, _copy) = open(&desk, &customer, "Ann", "Help.").await;
    let direct = mail(
        &[
            ("From", &desk.agent),
            ("To", &desk.support),
            ("Subject", &format!("Re: [#{id}] Printer on fire")),
        ],
        "#close\nUnplug it.",
    );
    deliver_lmtp(&desk.support, &direct).await;
    desk.run_once(None);
    let t = desk.ticket(id);
    assert_eq!(desk.tickets().len(), 1, "no ticket of the agent's own");
    assert_eq!(t["status"], "open", "nothing changed");
    let last = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "unverified", "{last:#}");
    let events: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["ticket.created"], "no ticket.replied");
    let agent_mail = wait_for_messages(&desk.agent, 2, WAIT).await;
    let notice = body_text(&agent_mail[1]);
    assert!(notice.contains("reply to the copy"), "{notice}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        1,
        "the customer got only the ack"
    );
}

/// Found with mutt: someone who is not on a ticket writes to the agents'
/// reply address. Their words are kept, but the agents' copy named them
/// as the customer ("Customer: Eve <ann@…>", Eve's address nowhere), and
/// the next answer to the customer was threaded on Eve's message, which
/// the customer never received (In-Reply-To and References lost the
/// customer's own thread).
#[tokio::test]
async fn a_strangers_mail_on_a_ticket_is_named_and_not_threaded_on() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let stranger = fresh_user("stranger");
    let (_, copy) = open(&desk, &customer, "Ann Customer", "Is my printer on fire?").await;
    // the copy answers Ann's message: its id is Ann's
    let ann_id = header(&copy, "In-Reply-To").expect("the copy answers Ann's message");

    let eve = mail(
        &[
            ("From", &format!("Eve Next-Door <{stranger}>")),
            ("To", &reply_address(&copy)),
            ("Subject", &format!("Re: {}", subject(&copy))),
        ],
        "Just buy a new printer.",
    );
    deliver_lmtp(&reply_address(&copy), &eve).await;
    desk.run_once(None);
    let copies = wait_for_messages(&desk.agent, 2, WAIT).await;
    let eve_copy = copies
        .iter()
        .find(|m| body_text(m).contains("Just buy a new printer."))
        .expect("a copy of Eve's mail");
    let text = body_text(eve_copy);
    assert!(
        text.contains(&stranger) && text.contains("not on this ticket"),
        "the copy says who wrote:\n{text}"
    );
    assert!(
        !text.contains(&format!("Eve Next-Door <{customer}>")),
        "Eve passed for the customer:\n{text}"
    );

    // the agent answers the customer's copy: threaded on Ann's message
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "It is not: unplug it anyway.");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    let relayed = got
        .iter()
        .find(|m| body_text(m).contains("unplug it anyway"))
        .expect("the answer");
    let in_reply_to = header(relayed, "In-Reply-To").unwrap_or_default();
    let references = header(relayed, "References").unwrap_or_default();
    assert_eq!(in_reply_to, ann_id, "{references}");
    assert!(
        !references.contains(&message_id(&eve)),
        "Eve's message is not in Ann's thread: {references}"
    );
}
