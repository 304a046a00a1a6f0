//! The ticket lifecycle end to end (SPEC.md "Lifecycle"), against the real
//! Dovecot and Postfix of the test rig through the real `guichet` binary.
//! Time is driven with `run --once --now …`: no test sleeps for a time rule.
//!
//! Agents answer the way they would in their mail client: they reply to the
//! copy they received, and its Reply-To token routes (and authenticates)
//! the answer. Customers reply to the last mail Guichet sent them.

mod harness;
mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use harness::{Desk, body_text, header, iso, reply_to_mail, subject};
use support::{deliver_lmtp, fresh_user, simple_message, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// What one `run --once` pass reported.
struct Pass {
    auto_closed: u64,
    mail_sent: u64,
}

/// One pass with the clock at `now`.
fn pass(desk: &Desk, now: DateTime<Utc>) -> Pass {
    let report = desk.pass(now);
    Pass {
        auto_closed: report["auto_closed"].as_u64().expect("auto_closed"),
        mail_sent: report["mail"]["sent"].as_u64().expect("mail.sent"),
    }
}

/// A mailbox read in delivery order: `next` waits for the next message.
struct Reader {
    user: String,
    read: usize,
}

impl Reader {
    fn new(user: &str) -> Reader {
        Reader {
            user: user.to_string(),
            read: 0,
        }
    }

    async fn next(&mut self) -> Vec<u8> {
        let all = wait_for_messages(&self.user, self.read + 1, WAIT).await;
        self.read += 1;
        all[self.read - 1].clone()
    }
}

/// `from` replies to `original` from their mail client.
async fn reply(from: &str, original: &[u8], body: &str) {
    let (to, raw) = reply_to_mail(from, original, body);
    deliver_lmtp(&to, &raw).await;
}

fn status(desk: &Desk, id: i64) -> String {
    desk.ticket(id)["status"].as_str().unwrap_or("").to_string()
}

fn events_named<'a>(ticket: &'a Value, name: &str) -> Vec<&'a Value> {
    ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == name)
        .collect()
}

fn ticket_ids(desk: &Desk) -> Vec<i64> {
    desk.tickets()
        .iter()
        .map(|t| t["ticket_id"].as_i64().unwrap())
        .collect()
}

/// A desk, a customer and the mailboxes to read, with helpers for the
/// usual moves.
struct Scene {
    desk: Desk,
    customer: String,
    customer_inbox: Reader,
    agent_inbox: Reader,
}

impl Scene {
    fn new(extra_helpdesk: &str) -> Scene {
        let desk = Desk::new(extra_helpdesk);
        let customer = fresh_user("customer");
        let customer_inbox = Reader::new(&customer);
        let agent_inbox = Reader::new(&desk.agent);
        Scene {
            desk,
            customer,
            customer_inbox,
            agent_inbox,
        }
    }

    /// The customer writes a new mail at `now`; returns the ticket and the
    /// agent's copy (already read off the agent's mailbox; the
    /// acknowledgement is read off the customer's).
    async fn customer_opens(&mut self, title: &str, now: DateTime<Utc>) -> (i64, Vec<u8>) {
        let mail = simple_message(&self.customer, &self.desk.support, title, "Help, please.");
        deliver_lmtp(&self.desk.support, &mail).await;
        let p = pass(&self.desk, now);
        assert_eq!(p.mail_sent, 2, "acknowledgement and agent copy");
        let id = *ticket_ids(&self.desk).last().expect("a ticket");
        let ack = self.customer_inbox.next().await;
        assert!(subject(&ack).contains(&format!("[#{id}]")));
        let copy = self.agent_inbox.next().await;
        assert_eq!(
            harness::marked_ticket(&copy).as_deref(),
            Some(format!("t{id}").as_str())
        );
        (id, copy)
    }

    /// The agent replies to `copy` at `now`; returns what the customer got
    /// (`None` when the pass sent the customer nothing).
    async fn agent_answers(
        &mut self,
        copy: &[u8],
        body: &str,
        now: DateTime<Utc>,
    ) -> Option<Vec<u8>> {
        reply(&self.desk.agent, copy, body).await;
        let p = pass(&self.desk, now);
        if p.mail_sent == 0 {
            return None;
        }
        assert_eq!(p.mail_sent, 1, "only the answer to the customer");
        Some(self.customer_inbox.next().await)
    }
}

#[tokio::test]
async fn an_answered_ticket_closes_after_n_days_reopens_within_the_window_and_links_after_it() {
    let mut s = Scene::new("auto_close_days = 3\nreopen_days = 7");
    let t0 = at("2030-03-01T09:00:00Z");
    let (id, copy) = s.customer_opens("Printer on fire", t0).await;
    // the acknowledgement is not activity: the clock is the creation's
    let t = s.desk.ticket(id);
    assert_eq!(t["last_activity_at"], iso(t0));
    assert_eq!(t["status"], "open");

    // the agent answers two hours later, from the copy
    let t1 = t0 + TimeDelta::hours(2);
    let answer = s
        .agent_answers(&copy, "Unplug it and call the fire brigade.", t1)
        .await
        .expect("the answer is relayed");
    assert!(body_text(&answer).contains("Unplug it and call the fire brigade."));
    assert!(
        !body_text(&answer).contains("> Help, please."),
        "quote removed"
    );
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "awaiting_customer");
    assert_eq!(
        t["last_activity_at"],
        iso(t1),
        "activity is the pass's clock, not the mail's Date"
    );

    // one second before 3 days: still open; exactly 3 days: closed
    let p = pass(&s.desk, t1 + days(3) - secs(1));
    assert_eq!((p.auto_closed, p.mail_sent), (0, 0));
    assert_eq!(status(&s.desk, id), "awaiting_customer");
    let closed_at = t1 + days(3);
    let p = pass(&s.desk, closed_at);
    assert_eq!((p.auto_closed, p.mail_sent), (1, 1));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "inactivity");
    assert_eq!(t["closed_at"], iso(closed_at));
    assert_eq!(t["last_activity_at"], iso(t1), "the notice is not activity");
    let closings = events_named(&t, "ticket.closed");
    assert_eq!(closings.len(), 1, "{closings:#?}");
    assert_eq!(closings[0]["data"]["reason"], "inactivity");
    assert_eq!(closings[0]["occurred_at"], iso(closed_at));

    // the closing notice says until when a reply reopens the ticket
    let deadline = closed_at + days(7);
    let notice = s.customer_inbox.next().await;
    let text = body_text(&notice);
    assert!(subject(&notice).contains(&format!("[#{id}]")));
    assert!(
        text.contains(&format!("Ticket {id} has been closed after 3 days")),
        "{text}"
    );
    assert!(
        text.contains(&format!("before {}", deadline.format("%Y-%m-%d %H:%M UTC"))),
        "{text}"
    );
    assert_eq!(
        header(&notice, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    // it answers the customer's mail, so that their client threads it
    let customer_ids: Vec<&str> = t["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == "in" && m["kind"] == "customer")
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(customer_ids.len(), 1, "{:#?}", t["messages"]);
    let customer_id = format!("<{}>", customer_ids[0]);
    assert_eq!(
        header(&notice, "In-Reply-To").as_deref(),
        Some(customer_id.as_str())
    );
    let references = header(&notice, "References").expect("References");
    assert_eq!(
        references.split_whitespace().last(),
        Some(customer_id.as_str()),
        "{references}"
    );
    // a pass later closes nothing more and sends nothing
    let p = pass(&s.desk, closed_at + secs(1));
    assert_eq!((p.auto_closed, p.mail_sent), (0, 0));

    // the customer answers the notice at the deadline itself: reopened
    reply(&s.customer, &notice, "It is on fire again.").await;
    let p = pass(&s.desk, deadline);
    assert_eq!(p.mail_sent, 2, "reopen notice and agent copy");
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "open");
    assert_eq!(t["closed_at"], Value::Null);
    assert_eq!(t["last_activity_at"], iso(deadline));
    let reopened = events_named(&t, "ticket.reopened");
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["occurred_at"], iso(deadline));
    let last = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["direction"], "in");
    assert_eq!(last["rule"], "token");
    assert!(last["text"].as_str().unwrap().contains("on fire again"));
    let told = s.customer_inbox.next().await;
    assert!(
        body_text(&told).contains(&format!("Your reply has reopened ticket {id}")),
        "{}",
        body_text(&told)
    );
    let copy2 = s.agent_inbox.next().await;
    assert!(body_text(&copy2).contains("on fire again"));
    assert_eq!(ticket_ids(&s.desk), [id], "no new ticket");

    // answered again, closed again after 3 days
    let t3 = deadline + TimeDelta::hours(1);
    s.agent_answers(&copy2, "Then buy a new one.", t3)
        .await
        .expect("relayed");
    let closed_again = t3 + days(3);
    let p = pass(&s.desk, closed_again);
    assert_eq!((p.auto_closed, p.mail_sent), (1, 1));
    let notice2 = s.customer_inbox.next().await;
    let deadline2 = closed_again + days(7);

    // one second after the window: a new ticket, linked both ways
    reply(&s.customer, &notice2, "The new one is on fire too.").await;
    let p = pass(&s.desk, deadline2 + secs(1));
    assert_eq!(p.mail_sent, 2, "the customer's answer and the agent copy");
    let ids = ticket_ids(&s.desk);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let new_id = ids[1];
    let old = s.desk.ticket(id);
    let new = s.desk.ticket(new_id);
    assert_eq!(old["status"], "closed", "the old ticket stays closed");
    assert_eq!(old["linked_tickets"], serde_json::json!([new_id]));
    assert_eq!(new["linked_tickets"], serde_json::json!([id]));
    assert_eq!(new["status"], "open");
    assert_eq!(new["client"], s.customer.as_str());
    assert_eq!(
        new["subject"], "Printer on fire",
        "the old ticket's subject"
    );
    assert_eq!(
        old["messages"].as_array().unwrap().len(),
        4,
        "the late reply is not appended to the old ticket"
    );
    let created = events_named(&new, "ticket.created");
    assert_eq!(created[0]["data"]["linked_ticket_id"], id);
    assert!(
        new["messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("on fire too")
    );
    // the customer is told the new number and why
    let told = s.customer_inbox.next().await;
    let text = body_text(&told);
    assert!(subject(&told).contains(&format!("[#{new_id}]")));
    assert!(
        text.contains(&format!(
            "opened a new ticket, {new_id}, linked to the old one"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Ticket {id} was closed on {}, and could be reopened only until {}",
            closed_again.format("%Y-%m-%d"),
            deadline2.format("%Y-%m-%d %H:%M UTC")
        )),
        "{text}"
    );
    let copy3 = s.agent_inbox.next().await;
    assert_eq!(
        harness::marked_ticket(&copy3).as_deref(),
        Some(format!("t{new_id}").as_str())
    );
}

#[tokio::test]
async fn nothing_closes_when_auto_close_days_is_0() {
    let mut s = Scene::new("auto_close_days = 0\nauto_close_scope = \"any\"");
    let t0 = at("2030-05-01T08:00:00Z");
    let (answered, copy) = s.customer_opens("Answered", t0).await;
    let (waiting, _) = s.customer_opens("Waiting", t0 + secs(1)).await;
    s.agent_answers(&copy, "Here you are.", t0 + secs(2))
        .await
        .expect("relayed");
    let p = pass(&s.desk, t0 + days(3650));
    assert_eq!((p.auto_closed, p.mail_sent), (0, 0));
    assert_eq!(status(&s.desk, answered), "awaiting_customer");
    assert_eq!(status(&s.desk, waiting), "open");
}

#[tokio::test]
async fn scope_and_lowered_days_apply_to_existing_tickets_at_the_next_pass() {
    // defaults: 7 days, scope awaiting_customer
    let mut s = Scene::new("auto_close_days = 7");
    let t0 = at("2030-06-01T12:00:00Z");
    let (waiting, _) = s.customer_opens("Nobody answered me", t0).await;
    let (answered, copy) = s.customer_opens("Answered", t0 + secs(10)).await;
    let t1 = t0 + TimeDelta::hours(1);
    s.agent_answers(&copy, "Try turning it off and on.", t1)
        .await
        .expect("relayed");

    // 5 days after the answer: not due under 7 days
    let p = pass(&s.desk, t1 + days(5));
    assert_eq!(p.auto_closed, 0, "5 days < 7");
    s.desk
        .edit_settings("auto_close_days = 7", "auto_close_days = 4");
    let p = pass(&s.desk, t1 + days(5) + secs(1));
    assert_eq!(p.auto_closed, 1, "lowered to 4: the answered ticket is due");
    assert_eq!(status(&s.desk, answered), "closed");
    assert_eq!(
        status(&s.desk, waiting),
        "open",
        "awaiting an agent: not in the default scope"
    );
    let notice = s.customer_inbox.next().await;
    assert!(body_text(&notice).contains("closed after 4 days"));

    let p = pass(&s.desk, t0 + days(30));
    assert_eq!(p.auto_closed, 0, "still not in scope after 30 days");
    assert_eq!(status(&s.desk, waiting), "open");

    s.desk.edit_settings(
        "auto_close_days = 4",
        "auto_close_days = 4\nauto_close_scope = \"any\"",
    );
    let p = pass(&s.desk, t0 + days(30) + secs(1));
    assert_eq!((p.auto_closed, p.mail_sent), (1, 1), "scope any");
    let t = s.desk.ticket(waiting);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "inactivity");
    let notice = s.customer_inbox.next().await;
    assert!(subject(&notice).contains(&format!("[#{waiting}]")));
}

#[tokio::test]
async fn scope_any_closes_a_ticket_awaiting_an_agent_on_the_exact_day() {
    let mut s = Scene::new("auto_close_days = 2\nauto_close_scope = \"any\"");
    let t0 = at("2030-07-01T00:00:00Z");
    let (id, _) = s.customer_opens("Anyone?", t0).await;
    assert_eq!(pass(&s.desk, t0 + days(2) - secs(1)).auto_closed, 0);
    assert_eq!(status(&s.desk, id), "open");
    assert_eq!(pass(&s.desk, t0 + days(2)).auto_closed, 1);
    assert_eq!(status(&s.desk, id), "closed");
}

#[tokio::test]
async fn with_reopen_days_0_a_reply_to_a_closed_ticket_opens_a_linked_one() {
    let mut s = Scene::new("reopen_days = 0");
    let t0 = at("2030-08-01T10:00:00Z");
    let (id, copy) = s.customer_opens("Invoice missing", t0).await;
    // #close with an answer: the answer is relayed, the command is not
    let answer = s
        .agent_answers(&copy, "#close\nSent again, see attachment.", t0 + secs(60))
        .await
        .expect("relayed");
    assert!(body_text(&answer).contains("Sent again"));
    assert!(!body_text(&answer).contains("#close"));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "agent");
    assert_eq!(
        events_named(&t, "ticket.closed")[0]["data"]["reason"],
        "agent"
    );

    // one minute later the customer answers: a new linked ticket all the same
    reply(&s.customer, &answer, "Thanks, but I got nothing.").await;
    let p = pass(&s.desk, t0 + secs(120));
    assert_eq!(p.mail_sent, 2);
    let ids = ticket_ids(&s.desk);
    assert_eq!(ids.len(), 2);
    let new_id = ids[1];
    assert_eq!(s.desk.ticket(id)["status"], "closed");
    assert_eq!(
        s.desk.ticket(id)["linked_tickets"],
        serde_json::json!([new_id])
    );
    assert_eq!(
        s.desk.ticket(new_id)["linked_tickets"],
        serde_json::json!([id])
    );
    let told = s.customer_inbox.next().await;
    let text = body_text(&told);
    assert!(text.contains("closed tickets cannot be reopened"), "{text}");
    assert!(text.contains(&format!("new ticket, {new_id}")), "{text}");
}

#[tokio::test]
async fn with_reopen_days_minus_1_a_reply_ten_years_later_reopens() {
    let mut s = Scene::new("auto_close_days = 1\nreopen_days = -1");
    let t0 = at("2030-09-01T10:00:00Z");
    let (id, copy) = s.customer_opens("Old question", t0).await;
    s.agent_answers(&copy, "Answered.", t0 + secs(60))
        .await
        .expect("relayed");
    let closed_at = t0 + secs(60) + days(1);
    assert_eq!(pass(&s.desk, closed_at).auto_closed, 1);
    let notice = s.customer_inbox.next().await;
    assert!(
        body_text(&notice).contains("simply reply to this email and the ticket will be reopened"),
        "{}",
        body_text(&notice)
    );
    reply(&s.customer, &notice, "Back after ten years.").await;
    pass(&s.desk, closed_at + days(3653));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "open");
    assert_eq!(events_named(&t, "ticket.reopened").len(), 1);
    assert_eq!(ticket_ids(&s.desk), [id]);
    let told = s.customer_inbox.next().await;
    assert!(body_text(&told).contains(&format!("reopened ticket {id}")));
}

#[tokio::test]
async fn agents_mail_to_a_closed_ticket_is_relayed_and_reopens_only_with_reopen() {
    let mut s = Scene::new("");
    let t0 = at("2030-10-01T10:00:00Z");
    let (id, copy) = s.customer_opens("Password reset", t0).await;

    // #resolve: closed with reason resolved, the answer relayed
    let t1 = t0 + TimeDelta::hours(1);
    let answer = s
        .agent_answers(&copy, "#resolve\nYour password is reset.", t1)
        .await
        .expect("relayed");
    assert!(body_text(&answer).contains("Your password is reset."));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "resolved");
    assert_eq!(t["close_reason"], "resolved");
    assert_eq!(t["closed_at"], iso(t1));
    let closings = events_named(&t, "ticket.closed");
    assert_eq!(closings.len(), 1);
    assert_eq!(closings[0]["data"]["reason"], "resolved");

    // a last word from the agent: relayed, the ticket stays resolved
    let t2 = t1 + TimeDelta::hours(1);
    let word = s
        .agent_answers(&copy, "PS: change it again next month.", t2)
        .await
        .expect("relayed to the customer");
    assert!(body_text(&word).contains("change it again next month"));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "resolved");
    assert_eq!(t["closed_at"], iso(t1), "still closed since the #resolve");
    assert!(events_named(&t, "ticket.reopened").is_empty());

    // a month later, a bare #reopen: reopened, nothing sent to the customer
    let t3 = t2 + days(30);
    let sent = s.agent_answers(&copy, "#reopen", t3).await;
    assert!(
        sent.is_none(),
        "nothing to relay, yet the customer got: {:?}",
        sent.map(|m| body_text(&m))
    );
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "open");
    assert_eq!(t["closed_at"], Value::Null);
    assert_eq!(events_named(&t, "ticket.reopened").len(), 1);
    // reopening restarts the inactivity clock: not closed again at once
    let p = pass(&s.desk, t3 + secs(1));
    assert_eq!(p.auto_closed, 0, "a ticket just reopened is not idle");
    assert_eq!(status(&s.desk, id), "open");

    // #reopen on a ticket closed by the sweeper, with an answer
    let t4 = t3 + TimeDelta::hours(1);
    s.agent_answers(&copy, "Checking again.", t4)
        .await
        .expect("relayed");
    let closed_at = t4 + days(7);
    assert_eq!(pass(&s.desk, closed_at).auto_closed, 1);
    let _notice = s.customer_inbox.next().await;
    let t5 = closed_at + days(1);
    let again = s
        .agent_answers(&copy, "#reopen\nOne more question for you.", t5)
        .await
        .expect("relayed");
    assert!(body_text(&again).contains("One more question for you."));
    let t = s.desk.ticket(id);
    assert_eq!(t["status"], "awaiting_customer");
    assert_eq!(events_named(&t, "ticket.reopened").len(), 2);
    assert_eq!(t["last_activity_at"], iso(t5));
}

#[tokio::test]
async fn a_narrowed_reopen_window_applies_to_tickets_closed_before() {
    let mut s = Scene::new("reopen_days = 7");
    let t0 = at("2030-12-01T10:00:00Z");
    let (id, copy) = s.customer_opens("Closed under 7 days", t0).await;
    let closed_at = t0 + TimeDelta::hours(1);
    let answer = s
        .agent_answers(&copy, "#close\nThat should do it.", closed_at)
        .await
        .expect("relayed");
    // the admin narrows the window to one day; the customer answers on day 2
    s.desk.edit_settings("reopen_days = 7", "reopen_days = 1");
    reply(&s.customer, &answer, "It did not.").await;
    let p = pass(&s.desk, closed_at + days(2));
    assert_eq!(p.mail_sent, 2);
    assert_eq!(status(&s.desk, id), "closed");
    let ids = ticket_ids(&s.desk);
    assert_eq!(ids.len(), 2, "a new linked ticket under the new window");
    let told = s.customer_inbox.next().await;
    let text = body_text(&told);
    assert!(
        text.contains(&format!(
            "could be reopened only until {}",
            (closed_at + days(1)).format("%Y-%m-%d %H:%M UTC")
        )),
        "the deadline of the new window: {text}"
    );
}

#[tokio::test]
async fn notes_and_out_of_office_replies_do_not_postpone_the_close() {
    let mut s = Scene::new("auto_close_days = 3");
    let t0 = at("2031-02-01T10:00:00Z");
    let (id, copy) = s.customer_opens("Quiet customer", t0).await;
    let t1 = t0 + TimeDelta::hours(1);
    let answer = s
        .agent_answers(&copy, "Does this help?", t1)
        .await
        .expect("relayed");
    // day 1: the customer's out-of-office answers the agent's reply
    let (to, raw) = reply_to_mail(&s.customer, &answer, "I am away until March.");
    let mut ooo = b"Auto-Submitted: auto-replied\r\n".to_vec();
    ooo.extend_from_slice(&raw);
    deliver_lmtp(&to, &ooo).await;
    assert_eq!(
        pass(&s.desk, t1 + days(1)).mail_sent,
        0,
        "robots get nothing"
    );
    // day 2: an agent's internal note
    assert!(
        s.agent_answers(&copy, "#note\nCall them next week.", t1 + days(2))
            .await
            .is_none(),
        "a note is not sent"
    );
    let t = s.desk.ticket(id);
    let kinds: Vec<(&str, &str)> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap(),
                m["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("in", "customer"),
            ("out", "agent"),
            ("in", "auto_reply"),
            ("note", "agent")
        ]
    );
    assert_eq!(t["last_activity_at"], iso(t1));
    // still closed 3 days after the agent's answer
    let p = pass(&s.desk, t1 + days(3));
    assert_eq!((p.auto_closed, p.mail_sent), (1, 1));
    assert_eq!(status(&s.desk, id), "closed");
}
