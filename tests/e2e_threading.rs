//! Threading, agents and loop safety end to end, against the real Dovecot
//! and Postfix of the test rig and the real `guichet` binary: every party
//! (customer, Cc'd colleague, agent, stranger, a mailer-daemon) is a real
//! mailbox, and what each received — and did NOT receive — is read back
//! over IMAP.
//!
//! Agents answer the way a mail client does: they read the copy Guichet
//! sent them, press Reply (To = the copy's Reply-To, In-Reply-To and
//! References from the copy, "Re: " subject, the copy quoted under an
//! "On … wrote:" line, their signature below), and the reply goes to the
//! plus-address of the support mailbox.

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, body_text, header, mail, message_id, subject};
use support::{
    deliver_lmtp, deliver_lmtp_from, fetch_all, fresh_user, unique_token, wait_for_messages,
};

const WAIT: Duration = Duration::from_secs(20);
/// How long to wait for mail that must NOT come, after the expected mail
/// has arrived (everything of one pass is submitted in the same run).
const QUIET: Duration = Duration::from_millis(1500);
const AGENT_SIG: &str = "Agent Smith\nLevel 2 support, Example Corp";

/// The first address of the `Reply-To` (else `From`) header.
fn reply_address(raw: &[u8]) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("parses");
    msg.reply_to()
        .or(msg.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("a Reply-To or From address")
        .to_string()
}

/// What a mail client writes when `from` presses Reply on `original`:
/// `(recipient, bytes)`. `answer` goes on top; the original is quoted
/// below an attribution line; `signature` (if any) closes the mail.
fn client_reply(
    original: &[u8],
    from: &str,
    answer: &str,
    signature: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let to = reply_address(original);
    let orig_id = message_id(original);
    let mut references = header(original, "References").unwrap_or_default();
    references.push_str(&format!(" <{orig_id}>"));
    let orig_subject = subject(original);
    let subject = if orig_subject.to_ascii_lowercase().starts_with("re:") {
        orig_subject
    } else {
        format!("Re: {orig_subject}")
    };
    let orig_from = header(original, "From").unwrap_or_default();
    let date = header(original, "Date").unwrap_or_default();
    let mut body = String::new();
    if !answer.is_empty() {
        body.push_str(answer);
        body.push_str("\n\n");
    }
    body.push_str(&format!("On {date}, {orig_from} wrote:\n"));
    for line in body_text(original).lines() {
        if line.is_empty() {
            body.push_str(">\n");
        } else {
            body.push_str(&format!("> {line}\n"));
        }
    }
    if let Some(sig) = signature {
        body.push_str(&format!("\n-- \n{sig}\n"));
    }
    let in_reply_to = format!("<{orig_id}>");
    let mut headers: Vec<(&str, &str)> = vec![
        ("From", from),
        ("To", &to),
        ("Subject", &subject),
        ("In-Reply-To", &in_reply_to),
        ("References", references.trim()),
    ];
    headers.extend_from_slice(extra_headers);
    let raw = mail(&headers, &body);
    (to, raw)
}

/// Waits until every mailbox holds at least its count, then a little more,
/// and checks that each holds exactly its count: the expected mail came,
/// and nothing else did.
async fn exactly(expected: &[(&str, usize, &str)]) -> Vec<Vec<Vec<u8>>> {
    for (user, n, _) in expected {
        if *n > 0 {
            wait_for_messages(user, *n, WAIT).await;
        }
    }
    tokio::time::sleep(QUIET).await;
    let mut all = Vec::new();
    for (user, n, who) in expected {
        let got = fetch_all(user).await;
        assert_eq!(
            got.len(),
            *n,
            "{who} ({user}) should hold exactly {n} message(s); subjects: {:?}",
            got.iter().map(|m| subject(m)).collect::<Vec<_>>()
        );
        all.push(got);
    }
    all
}

fn messages(desk: &Desk, id: i64) -> Vec<serde_json::Value> {
    desk.ticket(id)["messages"].as_array().cloned().unwrap()
}

fn rules(desk: &Desk, id: i64) -> Vec<String> {
    messages(desk, id)
        .iter()
        .map(|m| m["rule"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The text of a message without its headers: what a reader sees.
fn visible(raw: &[u8]) -> String {
    body_text(raw).replace("\r\n", "\n")
}

#[tokio::test]
async fn an_agent_answers_from_the_copy_and_the_customer_answers_back() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let colleague = fresh_user("colleague");
    let first = mail(
        &[
            ("From", &format!("Ann Customer <{customer}>")),
            ("To", &desk.support),
            ("Cc", &format!("Bob Colleague <{colleague}>")),
            ("Subject", "Printer on fire"),
        ],
        "Hello,\nmy printer is on fire.\nAnn",
    );
    let first_id = message_id(&first);
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    let id = tickets[0]["ticket_id"].as_i64().unwrap();
    let tag = format!("[#{id}]");
    let detail = desk.ticket(id);
    let participants = detail["participants"].as_array().unwrap();
    assert!(
        participants
            .iter()
            .any(|p| p["address"] == colleague.as_str() && p["role"] == "cc"),
        "the Cc'd colleague takes part: {participants:#?}"
    );
    let got = exactly(&[
        (&customer, 1, "customer: the acknowledgement"),
        (&desk.agent, 1, "agent: the copy"),
        (&colleague, 0, "colleague: nothing yet"),
    ])
    .await;
    let copy = got[1][0].clone();

    // the agent presses Reply in their mail client
    let support_before = fetch_all(&desk.support).await.len();
    let answer = "Hello Ann,\n\nplease unplug it and step away.\n\nRegards";
    let (to, reply) = client_reply(&copy, &desk.agent, answer, Some(AGENT_SIG), &[]);
    let local = desk.support.split('@').next().unwrap();
    assert!(
        to.starts_with(&format!("{local}+t{id}.")),
        "the copy's Reply-To is the support plus-address with the token: {to}"
    );
    deliver_lmtp(&to, &reply).await;
    let support_mail = fetch_all(&desk.support).await;
    assert_eq!(
        support_mail.len(),
        support_before + 1,
        "the plus-address is delivered to the support mailbox"
    );
    assert_eq!(message_id(support_mail.last().unwrap()), message_id(&reply));
    desk.run_once(None);

    let got = exactly(&[
        (&customer, 2, "customer: ack + the agent's answer"),
        (&desk.agent, 1, "agent: nothing new"),
        (
            &colleague,
            1,
            "colleague (Cc participant): the agent's answer",
        ),
    ])
    .await;
    let relayed = got[0][1].clone();
    let text = visible(&relayed);
    assert!(
        text.contains("please unplug it and step away"),
        "the answer reaches the customer: {text}"
    );
    for leaked in [
        "wrote:",
        "Agent Smith",
        "Level 2 support",
        "my printer is on fire",
    ] {
        assert!(!text.contains(leaked), "{leaked:?} leaked: {text}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with('>')),
        "no quoted line reaches the customer: {text}"
    );
    assert!(
        header(&relayed, "From").unwrap().contains(&desk.support),
        "sent from the support address"
    );
    assert!(
        subject(&relayed).contains(&tag),
        "subject tag: {}",
        subject(&relayed)
    );
    assert!(
        subject(&relayed).to_ascii_lowercase().starts_with("re: "),
        "a reply's subject: {}",
        subject(&relayed)
    );
    assert_eq!(
        header(&relayed, "In-Reply-To").as_deref(),
        Some(format!("<{first_id}>").as_str()),
        "threads to the customer's own message"
    );
    assert!(
        header(&relayed, "References")
            .unwrap_or_default()
            .contains(&first_id)
    );
    let copy_id = message_id(&copy);
    let agent_reply_id = message_id(&reply);
    for private in [&copy_id, &agent_reply_id] {
        assert!(
            !String::from_utf8_lossy(&relayed).contains(private.as_str()),
            "the customer's mail does not name the agent's copy or reply ({private})"
        );
    }
    assert!(header(&relayed, "Auto-Submitted").is_none());
    assert_eq!(
        visible(&got[2][0]),
        text,
        "the colleague gets the same answer"
    );
    assert_eq!(desk.ticket(id)["status"], "awaiting_customer");
    assert_eq!(rules(&desk, id), ["new", "token"]);

    // the customer answers the reply in their mail client
    let (to, back) = client_reply(
        &relayed,
        &customer,
        "It is out now, thank you!",
        Some("Ann"),
        &[],
    );
    deliver_lmtp(&to, &back).await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1, "the answer joined the ticket");
    let r = rules(&desk, id);
    assert!(
        matches!(r[2].as_str(), "token" | "headers"),
        "placed by the token or the headers: {r:?}"
    );
    assert_eq!(desk.ticket(id)["status"], "open");
    let got = exactly(&[
        (&customer, 2, "customer: no acknowledgement for a reply"),
        (&desk.agent, 2, "agent: a copy of the customer's answer"),
        (&colleague, 1, "colleague: nothing new"),
    ])
    .await;
    let copy2 = got[1][1].clone();
    assert!(visible(&copy2).contains("It is out now, thank you!"));
    assert!(subject(&copy2).contains(&tag));
    let token_of = |raw: &[u8]| reply_address(raw);
    assert_eq!(token_of(&copy2), token_of(&copy), "same ticket, same token");

    // the Cc'd colleague writes a fresh mail naming the ticket: a participant
    // may use the subject tag
    let fresh = mail(
        &[
            ("From", &colleague),
            ("To", &desk.support),
            ("Subject", &format!("{tag} one more thing")),
        ],
        "The toner is also leaking.",
    );
    deliver_lmtp(&desk.support, &fresh).await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1);
    assert_eq!(
        rules(&desk, id).last().map(String::as_str),
        Some("subject_tag")
    );
    exactly(&[
        (&desk.agent, 3, "agent: a copy of the colleague's mail"),
        (&colleague, 1, "colleague: no acknowledgement"),
        (&customer, 2, "customer: nothing"),
    ])
    .await;
}

/// An HTML-only reply to `original` as Outlook (quote in a `divRplyFwdMsg`
/// block under an `<hr>`) or Thunderbird (a `<blockquote type="cite">`
/// without any "wrote:" line) writes it.
fn html_reply(original: &[u8], from: &str, answer: &str, outlook: bool) -> (String, Vec<u8>) {
    let to = reply_address(original);
    let quoted = body_text(original)
        .lines()
        .map(|l| l.replace('&', "&amp;").replace('<', "&lt;"))
        .collect::<Vec<_>>()
        .join("<br>\r\n");
    let html = if outlook {
        format!(
            "<html><body><div>{answer}</div><div><br></div><div>Agent Smith</div>\r\n\
             <hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\r\n\
             <div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri\"><b>From:</b> Example Support<br>\r\n\
             <b>Sent:</b> Tuesday, November 25, 2026 10:00 AM<br>\r\n<b>To:</b> {from}<br>\r\n\
             <b>Subject:</b> {subject}</font><div>&nbsp;</div></div>\r\n<div>{quoted}</div></body></html>",
            subject = subject(original)
        )
    } else {
        format!(
            "<html><body><p>{answer}</p>\r\n<blockquote type=\"cite\" cite=\"mid:{id}\">{quoted}</blockquote>\r\n\
             <div class=\"moz-signature\">-- <br>Agent Smith</div></body></html>",
            id = message_id(original)
        )
    };
    let raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Re: {subject}\r\nMessage-ID: <{mid}@client.test>\r\n\
         In-Reply-To: <{orig}>\r\nReferences: <{orig}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n",
        subject = subject(original),
        mid = unique_token(),
        orig = message_id(original),
        date = chrono::Utc::now().to_rfc2822(),
    );
    (to, raw.into_bytes())
}

#[tokio::test]
async fn html_replies_from_outlook_and_thunderbird_reach_the_customer_without_the_quote() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let first = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "Scanner jammed"),
        ],
        "The scanner is jammed with paper.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let got = exactly(&[
        (&customer, 1, "customer: ack"),
        (&desk.agent, 1, "agent: copy"),
    ])
    .await;
    let copy = got[1][0].clone();
    for (n, outlook) in [(2, true), (3, false)] {
        let answer = format!("Open the back panel and pull gently (answer {n}).");
        let (to, reply) = html_reply(&copy, &desk.agent, &answer, outlook);
        deliver_lmtp(&to, &reply).await;
        desk.run_once(None);
        let got = exactly(&[
            (&customer, n, "customer: the answer"),
            (&desk.agent, 1, "agent: nothing"),
        ])
        .await;
        let text = visible(&got[0][n - 1]);
        assert!(text.contains(&answer), "{text}");
        // Outlook's sign-off has no "-- " line: it is part of the answer
        let mut leaks = vec!["jammed with paper", "Sent:", "New ticket"];
        if !outlook {
            leaks.push("Agent Smith");
        }
        for leaked in leaks {
            assert!(
                !text.contains(leaked),
                "{} reply: {leaked:?} leaked: {text}",
                if outlook { "Outlook" } else { "Thunderbird" }
            );
        }
    }
}

#[tokio::test]
async fn strangers_and_spoofed_agents_cannot_write_into_a_ticket() {
    let trusted = "mx.rig.example.test";
    let desk = Desk::with(
        "",
        "",
        &format!("[trust]\nauthserv_ids = [\"{trusted}\"]\n"),
    );
    let agent_domain = desk.agent.split('@').nth(1).unwrap().to_string();
    let customer = fresh_user("customer");
    let stranger = fresh_user("stranger");
    let first = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "Invoice 42 is wrong"),
        ],
        "The amount is twice what we agreed.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let tag = format!("[#{id}]");
    let ack = exactly(&[
        (&customer, 1, "customer: ack"),
        (&desk.agent, 1, "agent: copy"),
    ])
    .await
    .remove(0)
    .remove(0);

    // a stranger who guesses the number gets a ticket of their own
    let guess = mail(
        &[
            ("From", &stranger),
            ("To", &desk.support),
            ("Subject", &format!("Re: {tag} Invoice 42 is wrong")),
        ],
        "Please send me the invoice PDF.",
    );
    deliver_lmtp(&desk.support, &guess).await;
    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:#?}");
    let other = tickets
        .iter()
        .find(|t| t["client"] == stranger.as_str())
        .expect("the stranger's own ticket");
    let other_id = other["ticket_id"].as_i64().unwrap();
    assert_ne!(other_id, id);
    assert_eq!(rules(&desk, other_id), ["new"]);
    assert_eq!(rules(&desk, id), ["new"], "ticket {id} untouched");
    let got = exactly(&[
        (&stranger, 1, "stranger: an ack of their own ticket"),
        (&customer, 1, "customer: nothing"),
        (&desk.agent, 2, "agent: a copy of the new ticket"),
    ])
    .await;
    assert!(subject(&got[0][0]).contains(&format!("[#{other_id}]")));
    assert!(!visible(&got[0][0]).contains("amount is twice"));

    // a spoofed agent From: no token, an Authentication-Results from a
    // server nobody trusts, and one from the trusted server that fails
    let spoof = mail(
        &[
            ("From", &desk.agent),
            ("To", &desk.support),
            ("Subject", &format!("Re: {tag} Invoice 42 is wrong")),
            ("In-Reply-To", &format!("<{}>", message_id(&first))),
            (
                "Authentication-Results",
                &format!("evil.example; dkim=pass header.d={agent_domain}"),
            ),
            (
                "Authentication-Results",
                &format!(
                    "{trusted}; dkim=fail header.d={agent_domain}; spf=softfail smtp.mailfrom={}",
                    desk.agent
                ),
            ),
        ],
        "Please pay to IBAN XX00 EVIL 0000 instead.",
    );
    deliver_lmtp(&desk.support, &spoof).await;
    desk.run_once(None);
    let msgs = messages(&desk, id);
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    let spoofed = &msgs[1];
    assert_eq!(spoofed["direction"], "in");
    // neither a customer's message nor an agent's (issue 12)
    assert_eq!(spoofed["kind"], "unverified");
    let note = spoofed["note"].as_str().unwrap_or("");
    assert!(
        note.contains("not authenticated") && note.contains("evil.example"),
        "the ticket records why: {note}"
    );
    assert_eq!(desk.ticket(id)["status"], "open");
    let got = exactly(&[
        (&customer, 1, "customer: the spoof is NOT relayed"),
        (&desk.agent, 3, "agent: told how to reply so that it counts"),
    ])
    .await;
    let notice = visible(&got[1][2]);
    assert!(
        notice.contains("nothing proves it came from you") && notice.contains("reply to the copy"),
        "{notice}"
    );

    // the customer holds the reply token of their acknowledgement: with a
    // forged agent From it proves nothing (only the agents' token does)
    let (to, forged_agent) = client_reply(
        &ack,
        &desk.agent,
        "#close\nYour refund of 2000 EUR is approved, send your bank details.",
        None,
        &[],
    );
    deliver_lmtp(&to, &forged_agent).await;
    desk.run_once(None);
    let msgs = messages(&desk, id);
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert_eq!(msgs[2]["rule"], "token");
    assert_eq!(msgs[2]["direction"], "in");
    let note = msgs[2]["note"].as_str().unwrap_or("");
    assert!(
        note.contains("not authenticated") && note.contains("customers'"),
        "{note}"
    );
    assert_eq!(desk.ticket(id)["status"], "open", "#close not obeyed");
    exactly(&[
        (&customer, 1, "customer: the forgery is NOT relayed"),
        (&desk.agent, 4, "agent: told again"),
    ])
    .await;

    // the same agent address, authenticated by the trusted server: relayed
    let genuine = mail(
        &[
            (
                "Authentication-Results",
                &format!(
                    "{trusted}; dkim=pass header.d={agent_domain} header.s=sel; spf=pass smtp.mailfrom={}",
                    desk.agent
                ),
            ),
            ("From", &desk.agent),
            ("To", &desk.support),
            ("Subject", &format!("{tag} Invoice 42 is wrong")),
        ],
        "We corrected the invoice; a new one is on its way.\n\n-- \nAgent Smith",
    );
    deliver_lmtp(&desk.support, &genuine).await;
    desk.run_once(None);
    let msgs = messages(&desk, id);
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[3]["direction"], "out");
    assert_eq!(msgs[3]["rule"], "subject_tag");
    let got = exactly(&[
        (&customer, 2, "customer: the authenticated answer"),
        (&desk.agent, 4, "agent: nothing new"),
    ])
    .await;
    let text = visible(&got[0][1]);
    assert!(text.contains("We corrected the invoice"), "{text}");
    assert!(!text.contains("Agent Smith"), "{text}");
    assert!(!text.contains("IBAN"), "{text}");

    // a truncated and a forged reply token are no tokens: new tickets
    let token = reply_address(&got[0][1]);
    let (local, domain) = token.split_once('@').unwrap();
    let (base, tag_part) = local.split_once('+').unwrap();
    let truncated = format!(
        "{local_cut}@{domain}",
        local_cut = &local[..local.len() - 1]
    );
    let forged = format!(
        "{base}+{}.aaaaaaaaaa@{domain}",
        tag_part.split('.').next().unwrap()
    );
    let forger = fresh_user("forger");
    for to in [&truncated, &forged] {
        let m = mail(
            &[
                ("From", &forger),
                ("To", to),
                ("Subject", "Re: Invoice 42 is wrong"),
            ],
            "Cancel the order and refund me.",
        );
        deliver_lmtp(to, &m).await;
    }
    desk.run_once(None);
    assert_eq!(messages(&desk, id).len(), 4, "ticket {id} untouched");
    let theirs: Vec<i64> = desk
        .tickets()
        .iter()
        .filter(|t| t["client"] == forger.as_str())
        .map(|t| t["ticket_id"].as_i64().unwrap())
        .collect();
    assert_eq!(theirs.len(), 2, "two new tickets");
    for t in theirs {
        assert_eq!(rules(&desk, t), ["new"]);
    }
    exactly(&[
        (&forger, 2, "forger: an ack per new ticket"),
        (&customer, 2, "customer: nothing"),
        (&desk.agent, 6, "agent: two copies"),
    ])
    .await;
}

#[tokio::test]
async fn agent_commands_act_and_mistakes_reach_only_the_agent() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let first = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "VPN drops every hour"),
        ],
        "Since Monday the VPN disconnects every hour.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let got = exactly(&[
        (&customer, 1, "customer: ack"),
        (&desk.agent, 1, "agent: copy"),
    ])
    .await;
    let copy = got[1][0].clone();
    let send = |answer: &'static str, sig: Option<&'static str>| {
        let (to, raw) = client_reply(&copy, &desk.agent, answer, sig, &[]);
        async move {
            deliver_lmtp(&to, &raw).await;
        }
    };

    // #priority acts and is not relayed; the answer is
    send(
        "#priority high\n\nWe are looking into it right now.",
        Some(AGENT_SIG),
    )
    .await;
    desk.run_once(None);
    let t = desk.ticket(id);
    assert_eq!(t["priority"], "high");
    let got = exactly(&[
        (&customer, 2, "customer: the answer"),
        (&desk.agent, 1, "agent: nothing"),
    ])
    .await;
    let text = visible(&got[0][1]);
    assert!(text.contains("We are looking into it right now."), "{text}");
    assert!(!text.contains("#priority"), "{text}");

    // #note: recorded, not sent
    send(
        "#note\nCustomer is on the old client, v2.3; ask them to upgrade.",
        Some(AGENT_SIG),
    )
    .await;
    desk.run_once(None);
    let msgs = messages(&desk, id);
    let note = msgs.last().unwrap();
    assert_eq!(note["direction"], "note");
    assert!(note["text"].as_str().unwrap().contains("old client, v2.3"));

    // a misspelt command: the agent is told, the customer gets nothing
    send("#clsoe\n\nAll fixed, closing.", Some(AGENT_SIG)).await;
    desk.run_once(None);
    // a reply that is only the quote and a signature
    send("", Some(AGENT_SIG)).await;
    desk.run_once(None);
    let got = exactly(&[
        (
            &customer,
            2,
            "customer: neither the note, the typo nor the empty reply",
        ),
        (&desk.agent, 3, "agent: two notices"),
    ])
    .await;
    let typo_notice = visible(&got[1][1]);
    assert!(typo_notice.contains("#clsoe"), "{typo_notice}");
    assert!(
        subject(&got[1][1]).contains("Not sent"),
        "{}",
        subject(&got[1][1])
    );
    let empty_notice = visible(&got[1][2]);
    assert!(
        empty_notice.contains("nothing but quoted text"),
        "{empty_notice}"
    );
    assert_ne!(desk.ticket(id)["status"], "closed", "#clsoe closes nothing");

    // #close with an answer: relayed, then closed
    send("#close\n\nThe fix is deployed; closing this ticket.", None).await;
    desk.run_once(None);
    let t = desk.ticket(id);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "agent");
    let got = exactly(&[
        (&customer, 3, "customer: the closing answer"),
        (&desk.agent, 3, "agent: nothing"),
    ])
    .await;
    let text = visible(&got[0][2]);
    assert!(text.contains("The fix is deployed"), "{text}");
    assert!(!text.contains("#close"), "{text}");
    let notes: Vec<String> = messages(&desk, id)
        .iter()
        .filter(|m| m["direction"] == "note")
        .map(|m| m["note"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(notes.len(), 3, "{notes:#?}");
    assert!(notes[1].contains("#clsoe"), "{notes:#?}");
}

#[tokio::test]
async fn auto_replies_and_bounces_are_recorded_and_answered_by_nothing() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let daemon = fresh_user("mailer-daemon");
    let first = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "Cannot print"),
        ],
        "Nothing comes out of the printer.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let got = exactly(&[
        (&customer, 1, "customer: ack"),
        (&desk.agent, 1, "agent: copy"),
    ])
    .await;
    let ack = got[0][0].clone();
    let ack_id = message_id(&ack);
    let before = desk.ticket(id);

    // an RFC 3834 vacation responder answers the acknowledgement
    let (to, vacation) = client_reply(
        &ack,
        &customer,
        "I am away until Monday.",
        None,
        &[("Auto-Submitted", "auto-replied")],
    );
    deliver_lmtp(&to, &vacation).await;
    // Exchange's out-of-office, to the plain support address
    let ooo = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", &format!("Automatic reply: {}", subject(&ack))),
            ("In-Reply-To", &format!("<{ack_id}>")),
            ("X-Auto-Response-Suppress", "All"),
            ("X-MS-Exchange-Inbox-Rules-Loop", &customer),
            ("Thread-Topic", "Cannot print"),
        ],
        "I am out of the office with limited access to email.",
    );
    deliver_lmtp(&desk.support, &ooo).await;
    // the acknowledgement bounced: a DSN with the returned headers
    let boundary = format!("dsn-{}", unique_token());
    let dsn = format!(
        "From: Mail Delivery System <{daemon}>\r\n\
         To: {support}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{mid}@mx.example.test>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.test.\r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         <{customer}>: mailbox full\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.test\r\n\
         Arrival-Date: {date}\r\n\
         \r\n\
         Final-Recipient: rfc822; {customer}\r\n\
         Original-Recipient: rfc822;{customer}\r\n\
         Action: failed\r\n\
         Status: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: {ack_from}\r\n\
         To: {customer}\r\n\
         Subject: {ack_subject}\r\n\
         Message-ID: <{ack_id}>\r\n\
         X-Guichet-Mail: t{id}\r\n\
         Auto-Submitted: auto-replied\r\n\
         \r\n\
         --{boundary}--\r\n",
        support = desk.support,
        date = chrono::Utc::now().to_rfc2822(),
        mid = unique_token(),
        ack_from = header(&ack, "From").unwrap(),
        ack_subject = subject(&ack),
    );
    deliver_lmtp_from("", &desk.support, dsn.as_bytes()).await;
    // an out-of-office that belongs to no ticket
    let stray = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "Out of Office: Re: your newsletter"),
            ("Auto-Submitted", "auto-replied"),
        ],
        "I am away.",
    );
    deliver_lmtp(&desk.support, &stray).await;
    // the agent's own vacation responder answers the copy (to its reply
    // token, so the mail is authenticated): still a robot, never relayed
    let copy = got[1][0].clone();
    let (to, agent_away) = client_reply(
        &copy,
        &desk.agent,
        "#close\nI am on holiday until the 3rd; for urgent matters call reception.",
        None,
        &[("Auto-Submitted", "auto-replied")],
    );
    deliver_lmtp(&to, &agent_away).await;
    desk.run_once(None);

    assert_eq!(desk.tickets().len(), 1, "no robot opened a ticket");
    let after = desk.ticket(id);
    let msgs = after["messages"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("customer", "new"),
            ("auto_reply", "token"),
            ("auto_reply", "headers"),
            ("bounce", "bounce"),
            ("auto_reply", "token"),
        ],
        "{msgs:#?}"
    );
    assert_eq!(
        msgs[4]["from"],
        desk.agent.as_str(),
        "the agent's responder is recorded"
    );
    assert_eq!(after["status"], before["status"], "#close from a robot");
    assert_eq!(
        after["last_activity_at"], before["last_activity_at"],
        "robots are not activity"
    );
    // no event for robots; the bounce of the acknowledgement is news,
    // though (issue 18): mail.failed, and the agents are told
    let new_events: Vec<&str> = after["events"].as_array().unwrap()
        [before["events"].as_array().unwrap().len()..]
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(new_events, ["mail.failed"], "no other event for robots");
    let problems = desk.json(&["tickets", "problems", "--json"]);
    assert_eq!(
        problems.as_array().unwrap().len(),
        1,
        "the stray out-of-office is kept outside tickets: {problems:#}"
    );
    exactly(&[
        (&customer, 1, "customer: nothing for the robots"),
        (
            &desk.agent,
            2,
            "agent: no copy of robots; the notice of the bounced acknowledgement",
        ),
        (&daemon, 0, "mailer-daemon: never answered"),
    ])
    .await;
}

#[tokio::test]
async fn automatic_replies_to_one_sender_are_limited_per_hour() {
    let desk = Desk::new("max_auto_replies_per_hour = 2");
    let customer = fresh_user("customer");
    for i in 1..=4 {
        let m = mail(
            &[
                ("From", &customer),
                ("To", &desk.support),
                ("Subject", &format!("Question {i}")),
            ],
            "Hello?",
        );
        deliver_lmtp(&desk.support, &m).await;
    }
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 4, "every mail is a ticket");
    let got = exactly(&[
        (&customer, 2, "customer: 2 acknowledgements only"),
        (&desk.agent, 4, "agent: every copy"),
    ])
    .await;
    let mut subjects: Vec<String> = got[0].iter().map(|m| subject(m)).collect();
    subjects.sort();
    assert!(subjects[0].contains("Question 1"), "{subjects:?}");
    assert!(subjects[1].contains("Question 2"), "{subjects:?}");
}

/// Two companies both run Guichet: the other one's agent answers our
/// customer-side mail, their Guichet relays it (a human reply, marked with
/// THEIR installation's mark). We must treat it as a person writing to us
/// (a ticket, an acknowledgement), not as our own mail come back; our own
/// marker, and mail from our own address, are still ignored.
#[tokio::test]
async fn mail_relayed_by_another_companys_guichet_is_a_person_writing() {
    let desk = Desk::new("");
    let other = fresh_user("othercompany");
    let relayed = mail(
        &[
            ("From", &other),
            ("To", &desk.support),
            ("Subject", "Re: [#7] Your order with us"),
            ("X-Guichet-Mail", "t7; install=00112233445566ff"),
        ],
        "Hello, here is the answer from our agent.",
    );
    deliver_lmtp(&desk.support, &relayed).await;
    // our own marker (this installation's mark) and our own From address
    let ours = desk.run_once(None);
    assert!(ours.status.success());
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    let ack = wait_for_messages(&other, 1, WAIT).await;
    assert_eq!(
        header(&ack[0], "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    let own_marker = header(&ack[0], "X-Guichet-Mail").unwrap();
    let looped = mail(
        &[
            ("From", &other),
            ("To", &desk.support),
            ("Subject", "Re: your acknowledgement, come back"),
            ("X-Guichet-Mail", &own_marker),
        ],
        "Mail of ours that came back.",
    );
    deliver_lmtp(&desk.support, &looped).await;
    let from_us = mail(
        &[
            ("From", &desk.support),
            ("To", &desk.support),
            ("Subject", "A copy of ours"),
        ],
        "Sent from our own address.",
    );
    deliver_lmtp(&desk.support, &from_us).await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1, "no ticket for our own mail");
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        fetch_all(&other).await.len(),
        1,
        "nothing answered our own mail"
    );
}
