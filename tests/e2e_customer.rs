//! Who the customer is (issue 20), through the real Dovecot and Postfix
//! of the rig: a website's contact form named in `helpdesk.reply_to_senders`
//! writes on behalf of the person in its Reply-To, who gets the
//! acknowledgement and the agent's answer; a form that is not named keeps
//! today's behaviour (its Reply-To chooses nothing).

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, body_text, mail, reply_to_mail};
use support::{deliver_lmtp, fetch_all, fresh_user, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

fn form_mail(form: &str, person: &str, support: &str) -> Vec<u8> {
    mail(
        &[
            ("From", &format!("Website <{form}>")),
            ("Reply-To", &format!("Jane <{person}>")),
            ("To", support),
            ("Subject", "Contact form: order 1234"),
        ],
        "Name: Jane\nMessage: my order 1234 has not arrived.",
    )
}

#[tokio::test]
async fn a_named_contact_form_gives_jane_the_acknowledgement_and_the_answer() {
    let form = fresh_user("noreply");
    let jane = fresh_user("jane");
    let desk = Desk::new(&format!("form_senders = [\"{form}\"]"));
    deliver_lmtp(&desk.support, &form_mail(&form, &jane, &desk.support)).await;
    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["client"], jane.as_str(), "Jane is the customer");
    // the acknowledgement (a form's mail is no robot's when it is named)
    wait_for_messages(&jane, 1, WAIT).await;

    // the agent answers from the copy: the answer reaches Jane
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let (to, answer) = reply_to_mail(&desk.agent, &copy[0], "Your parcel left today.");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&jane, 2, WAIT).await;
    assert!(
        got.iter()
            .any(|m| body_text(m).contains("Your parcel left today.")),
        "Jane gets the agent's answer"
    );
    assert!(
        fetch_all(&form).await.is_empty(),
        "nothing goes to the form's address"
    );

    // explain says which identity was chosen and why
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("form.eml");
    std::fs::write(&file, form_mail(&form, &jane, &desk.support)).unwrap();
    let out = desk.run(&["explain", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{jane}: the mail is a contact form's ({form} is in helpdesk.reply_to_senders)"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_form_that_is_not_named_keeps_todays_behaviour() {
    let form = fresh_user("noreply");
    let jane = fresh_user("jane");
    let desk = Desk::new("");
    deliver_lmtp(&desk.support, &form_mail(&form, &jane, &desk.support)).await;
    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        tickets[0]["client"],
        form.as_str(),
        "the sender stays the customer"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        fetch_all(&jane).await.is_empty(),
        "an unproven Reply-To gets nothing"
    );
    assert!(
        fetch_all(&form).await.is_empty(),
        "a no-reply robot gets no acknowledgement"
    );
}

const TRUSTED: &str = "mx.rig.example.test";

/// A desk whose receiving server is trusted to authenticate agents.
fn desk_trusting_agents() -> Desk {
    Desk::with(
        "",
        "",
        &format!("[trust]\nauthserv_ids = [\"{TRUSTED}\"]\n"),
    )
}

fn authenticated(agent: &str) -> String {
    let domain = agent.split('@').nth(1).unwrap();
    format!("{TRUSTED}; dkim=pass header.d={domain} header.s=sel; spf=pass smtp.mailfrom={agent}")
}

fn inline_forward(
    from: &str,
    auth: Option<&str>,
    to: &str,
    customer: &str,
    agent_words: &str,
) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = vec![
        ("From", from),
        ("To", to),
        ("Subject", "Fwd: My order never came"),
    ];
    if let Some(a) = auth {
        headers.insert(0, ("Authentication-Results", a));
    }
    mail(
        &headers,
        &format!(
            "{agent_words}\n\n---------- Forwarded message ---------\nFrom: Jane Doe <{customer}>\n\
             Date: Mon, 30 Nov 2026 at 09:12\nSubject: My order never came\nTo: <{from}>\n\n\
             Hello, order 77 never came. Jane\n"
        ),
    )
}

#[tokio::test]
async fn an_agents_forward_opens_the_ticket_for_the_original_sender() {
    let desk = desk_trusting_agents();
    let jane = fresh_user("jane");
    let auth = authenticated(&desk.agent);
    deliver_lmtp(
        &desk.support,
        &inline_forward(
            &desk.agent,
            Some(&auth),
            &desk.support,
            &jane,
            "Please take this one.",
        ),
    )
    .await;
    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["client"], jane.as_str(), "the ticket is Jane's");
    assert_eq!(tickets[0]["subject"], "My order never came");
    let t = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let text = t["messages"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("order 77 never came"),
        "the original text: {text}"
    );
    assert!(!text.contains("Please take this one"), "{text}");
    // no acknowledgement without #ack; the agents are told who opened it
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    assert!(
        body_text(&copy[0]).contains(&format!("Opened by {}", desk.agent)),
        "{}",
        body_text(&copy[0])
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        fetch_all(&jane).await.is_empty(),
        "no acknowledgement unless the agent asks"
    );

    // with #ack, she is acknowledged
    let bob = fresh_user("bob");
    deliver_lmtp(
        &desk.support,
        &inline_forward(&desk.agent, Some(&auth), &desk.support, &bob, "#ack"),
    )
    .await;
    desk.run_once(None);
    wait_for_messages(&bob, 1, WAIT).await;
}

#[tokio::test]
async fn a_forged_forward_opens_nothing_for_the_named_sender() {
    // the agent's address without proof: a stranger pretending
    let desk = desk_trusting_agents();
    let jane = fresh_user("jane");
    deliver_lmtp(
        &desk.support,
        &inline_forward(&desk.agent, None, &desk.support, &jane, "#ack"),
    )
    .await;
    desk.run_once(None);
    for t in desk.tickets() {
        assert_ne!(
            t["client"],
            jane.as_str(),
            "a forged forward chooses no customer: {t}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        fetch_all(&jane).await.is_empty(),
        "nothing goes to the named sender"
    );
}

/// A fresh mail (no In-Reply-To, no token) from `from` whose subject names
/// ticket `id`: what a customer writes from another account, the subject
/// copied.
fn tagged_mail(from: &str, support: &str, id: i64, body: &str) -> Vec<u8> {
    mail(
        &[
            ("From", from),
            ("To", support),
            ("Subject", &format!("Re: [#{id}] My order never came")),
        ],
        body,
    )
}

#[tokio::test]
async fn merged_addresses_thread_into_one_ticket_and_count_as_one_customer() {
    let desk = Desk::new("");
    let work = fresh_user("jane-work");
    let home = fresh_user("jane-home");
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", &format!("Jane <{work}>")),
                ("To", &desk.support),
                ("Subject", "My order never came"),
            ],
            "Order 77 never came.",
        ),
    )
    .await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    wait_for_messages(&work, 1, WAIT).await;

    // before any merge, her home address naming the ticket is a stranger
    // (anti-hijack): a ticket of its own
    let stranger = fresh_user("jane-other");
    deliver_lmtp(
        &desk.support,
        &tagged_mail(&stranger, &desk.support, id, "Me too."),
    )
    .await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 2, "an unmerged address opens its own");

    // the agent ties her home address to her, answering from the copy
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let (to, answer) = reply_to_mail(
        &desk.agent,
        &copy[0],
        &format!("#merge-customer {home}\nWe are looking into it."),
    );
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&work, 2, WAIT).await;
    assert!(
        got.iter()
            .any(|m| body_text(m).contains("We are looking into it.")),
        "the answer goes out with the command"
    );
    let out = desk.run(&["customers", "addresses", &work]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{work}\n{home}\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // now her home address joins the ticket as her, and gets the answers
    deliver_lmtp(
        &desk.support,
        &tagged_mail(&home, &desk.support, id, "Writing from home: any news?"),
    )
    .await;
    desk.run_once(None);
    assert_eq!(
        desk.tickets().len(),
        2,
        "no new ticket for her home address"
    );
    let t = desk.ticket(id);
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|m| m.contains("Writing from home")),
        "{texts:?}"
    );
    let copies = wait_for_messages(&desk.agent, 3, WAIT).await;
    let last = copies
        .iter()
        .find(|m| body_text(m).contains("Writing from home"))
        .expect("the agents get her words");
    assert!(
        body_text(last).contains("another address of the customer"),
        "{}",
        body_text(last)
    );
    let (to, answer) = reply_to_mail(&desk.agent, last, "It ships tomorrow.");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    for who in [&work, &home] {
        let got = wait_for_messages(who, 1, WAIT).await;
        assert!(
            got.iter()
                .any(|m| body_text(m).contains("It ships tomorrow.")),
            "{who} gets the answer"
        );
    }

    // a new ticket from her home address: stats count one customer for
    // her two tickets (and one for the stranger)
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", home.as_str()),
                ("To", &desk.support),
                ("Subject", "Another question"),
            ],
            "Do you ship to Belgium?",
        ),
    )
    .await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 3);
    let stats = desk.json(&["stats", "--json"]);
    assert_eq!(stats["tickets"]["opened"], 3);
    assert_eq!(stats["customers"]["people"], 2, "{stats}");

    // split, she is two people again
    let out = desk.run(&["customers", "split", &home]);
    assert!(out.status.success());
    let stats = desk.json(&["stats", "--json"]);
    assert_eq!(stats["customers"]["people"], 3, "{stats}");
}

#[tokio::test]
async fn an_agent_cannot_merge_an_agents_address_into_a_customer() {
    let desk = Desk::new("");
    let jane = fresh_user("jane");
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", jane.as_str()),
                ("To", &desk.support),
                ("Subject", "Hi"),
            ],
            "Hello.",
        ),
    )
    .await;
    desk.run_once(None);
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let (to, answer) = reply_to_mail(
        &desk.agent,
        &copy[0],
        &format!("#merge-customer {}\nHello Jane.", desk.agent),
    );
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    // the agent is told, the answer held, nothing merged
    let mails = wait_for_messages(&desk.agent, 2, WAIT).await;
    assert!(
        mails
            .iter()
            .any(|m| body_text(m).contains("never a customer's; nothing was merged")),
        "the agent is told"
    );
    let out = desk.run(&["customers", "addresses", &jane]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{jane}\n"));
}
