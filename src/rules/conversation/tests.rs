//! Table tests of [`decide`], written the way SPEC.md reads. Each fault
//! that real mail clients and attacks found (issues 11 and 12) is a row.

use chrono::TimeZone;

use super::*;
use crate::domain::Priority;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap()
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn customer_mail(text: &str) -> Facts {
    Facts {
        from: addr("ann@customer.test"),
        sender: Sender::Customer,
        writer: Writer::Person,
        may_answer: true,
        rule: Rule::Headers,
        customers_token: false,
        customer_alias: false,
        others: vec![],
        text: text.into(),
        agent: AgentText::default(),
        refused_files: 0,
        department: "Support".into(),
        quiet: None,
    }
}

fn agent_mail(reply: &str) -> Facts {
    Facts {
        from: addr("alice@desk.test"),
        sender: Sender::Agent,
        rule: Rule::Token,
        agent: AgentText::read(reply, false),
        ..customer_mail(reply)
    }
}

fn open_ticket() -> TicketView {
    TicketView {
        id: 7,
        customer: "ann@customer.test".into(),
        status: TicketStatus::Open,
        priority: Priority::Normal,
        department: "Support".into(),
        closed_at: None,
        last_activity_at: now() - Duration::hours(2),
        participants: vec!["ann@customer.test".into()],
        open_linked: None,
        last_relay: None,
        relays_last_hour: 0,
    }
}

fn closed_ticket(days_ago: i64) -> TicketView {
    TicketView {
        status: TicketStatus::Closed,
        closed_at: Some(now() - Duration::days(days_ago)),
        ..open_ticket()
    }
}

fn policy() -> Policy {
    Policy {
        reopen: ReopenWindow::Days(7),
        max_participants: 20,
        max_relays_per_hour: 20,
        max_auto_replies_per_hour: 5,
        departments: vec!["Support".into(), "Billing".into()],
        not_customers: vec!["alice@desk.test".into(), "support@desk.test".into()],
    }
}

fn run(facts: &Facts, ticket: Option<&TicketView>) -> Plan {
    decide(facts, ticket, &policy(), Counters::default(), now())
}

fn kinds(plan: &Plan) -> Vec<EventKind> {
    plan.events.iter().map(|(k, _)| *k).collect()
}

fn relayed(plan: &Plan) -> Option<&str> {
    plan.mails.iter().find_map(|m| match m {
        Mail::Relay { text, .. } => Some(text.as_str()),
        _ => None,
    })
}

fn notices(plan: &Plan) -> Vec<&AgentNotice> {
    plan.mails
        .iter()
        .flat_map(|m| match m {
            Mail::AgentNotice { reasons, .. } => reasons.iter().collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn a_first_message_opens_a_ticket_acknowledged_once_with_its_refusals() {
    let mut f = customer_mail("My printer is on fire.");
    f.rule = Rule::New;
    f.refused_files = 2;
    let plan = run(&f, None);
    assert!(matches!(
        plan.target,
        Target::New {
            linked_from: None,
            ..
        }
    ));
    assert_eq!(kinds(&plan), [EventKind::TicketCreated]);
    // issue 12 item 6: the refusals ride in the acknowledgement, one mail
    assert_eq!(
        plan.mails,
        [
            Mail::Acknowledgement,
            Mail::AgentCopy {
                headline: Headline::NewTicket
            }
        ]
    );
}

#[test]
fn robots_and_the_hourly_limit_get_no_automatic_mail() {
    let mut f = customer_mail("Out of office");
    f.rule = Rule::New;
    f.may_answer = false;
    let plan = run(&f, None);
    assert!(!plan.mails.contains(&Mail::Acknowledgement));
    let f = customer_mail("hello");
    let plan = decide(
        &Facts {
            rule: Rule::New,
            ..f
        },
        None,
        &policy(),
        Counters {
            automatic_to_sender_last_hour: 5,
        },
        now(),
    );
    assert!(!plan.mails.contains(&Mail::Acknowledgement));
    assert!(
        plan.mails
            .iter()
            .any(|m| matches!(m, Mail::AgentCopy { .. }))
    );
}

#[test]
fn participants_come_only_from_the_opening_mail_or_the_customers_token() {
    let colleague = addr("bob@customer.test");
    // issue 11: a forged From joining by headers adds nobody
    let mut f = customer_mail("Please copy my colleague.");
    f.others = vec![colleague.clone()];
    let plan = run(&f, Some(&open_ticket()));
    assert!(plan.add_participants.is_empty());
    assert!(
        plan.copy_notes
            .iter()
            .any(|n| n.contains("bob@customer.test"))
    );
    // the same with the customers' token: added
    f.rule = Rule::Token;
    f.customers_token = true;
    let plan = run(&f, Some(&open_ticket()));
    assert_eq!(plan.add_participants, vec![colleague]);
    // the opening mail names them
    let mut f = customer_mail("Hello");
    f.rule = Rule::New;
    f.others = (0..30).map(|i| addr(&format!("r{i}@x.test"))).collect();
    let plan = run(&f, None);
    assert_eq!(plan.add_participants.len(), 19, "20 with the customer");
    assert!(
        plan.copy_notes
            .iter()
            .any(|n| n.starts_with("11 addresses"))
    );
}

/// Someone who is not on the ticket writes into it (with the agents'
/// reply address, or by its headers): the words are kept, and the copy
/// says who wrote them, so that agents do not read them as the
/// customer's (found with mutt: the copy said "Customer: Eve <ann@…>").
#[test]
fn a_stranger_writing_into_a_ticket_is_named_in_the_copy() {
    let mut f = customer_mail("Just buy a new printer.");
    f.from = addr("eve@elsewhere.test");
    f.rule = Rule::Token;
    let plan = run(&f, Some(&open_ticket()));
    assert!(plan.add_participants.is_empty());
    assert!(
        plan.copy_notes
            .iter()
            .any(|n| n.contains("eve@elsewhere.test")
                && n.contains("not on this ticket")
                && n.contains("ann@customer.test")),
        "{:?}",
        plan.copy_notes
    );
    // the customer, or a Cc of the ticket, is on it: no such note
    for on_it in ["ann@customer.test", "bob@customer.test"] {
        let mut t = open_ticket();
        t.participants.push("bob@customer.test".into());
        let mut f = customer_mail("Thanks");
        f.from = addr(on_it);
        let plan = run(&f, Some(&t));
        assert!(
            !plan
                .copy_notes
                .iter()
                .any(|n| n.contains("not on this ticket")),
            "{on_it}: {:?}",
            plan.copy_notes
        );
    }
}

/// The `ticket.replied` event's excerpt is the customer's new words,
/// not the history their client quoted (mutt quotes above the answer).
#[test]
fn the_replied_events_excerpt_is_the_new_words() {
    let f = customer_mail(
        "On Sat, Dec 05, 2026, Support wrote:\r\n> Please unplug it.\r\n> Alice\r\n\r\nDone, thanks: it works.\r\n\r\n-- \r\nAnn\r\n",
    );
    let plan = run(&f, Some(&open_ticket()));
    let (_, data) = plan
        .events
        .iter()
        .find(|(k, _)| *k == EventKind::TicketReplied)
        .expect("ticket.replied");
    assert_eq!(data["text_excerpt"], "Done, thanks: it works.");
    // only quotes: the whole text, rather than nothing
    let f = customer_mail("> Please unplug it.");
    let plan = run(&f, Some(&open_ticket()));
    let (_, data) = plan
        .events
        .iter()
        .find(|(k, _)| *k == EventKind::TicketReplied)
        .unwrap();
    assert_eq!(data["text_excerpt"], "> Please unplug it.");
}

#[test]
fn replies_to_closed_tickets_reopen_or_open_one_linked_ticket() {
    let f = customer_mail("It broke again.");
    // within the window: reopened, told, the copy says so
    let plan = run(&f, Some(&closed_ticket(3)));
    assert_eq!(plan.target, Target::Existing(7));
    assert_eq!(
        kinds(&plan),
        [EventKind::TicketReopened, EventKind::TicketReplied]
    );
    assert!(plan.mails.contains(&Mail::Reopened));
    assert!(plan.mails.contains(&Mail::AgentCopy {
        headline: Headline::Reopened
    }));
    assert_eq!(plan.status_after(TicketStatus::Closed), TicketStatus::Open);
    // past it: a new linked ticket, whose copy names the old one
    let plan = run(&f, Some(&closed_ticket(30)));
    assert!(matches!(
        plan.target,
        Target::New {
            linked_from: Some((7, _)),
            ..
        }
    ));
    assert!(plan.mails.contains(&Mail::AgentCopy {
        headline: Headline::NewLinked { old: 7 }
    }));
    // issue 12 item 3: a second late reply joins the linked ticket
    let mut old = closed_ticket(30);
    old.open_linked = Some(9);
    let plan = run(&f, Some(&old));
    assert_eq!(plan.target, Target::Existing(9));
    assert_eq!(kinds(&plan), [EventKind::TicketReplied]);
    assert!(
        !plan
            .mails
            .iter()
            .any(|m| matches!(m, Mail::NewLinked { .. }))
    );
}

/// Issue 12 item 4: an agent address that nothing proves is neither a
/// customer nor an agent.
#[test]
fn unproven_agent_mail_is_kept_as_unverified_and_acts_on_nothing() {
    let mut f = agent_mail("#close\nAll done.");
    f.sender = Sender::UnprovenAgent {
        why: "no valid reply token".into(),
    };
    let plan = run(&f, Some(&open_ticket()));
    assert_eq!(plan.records.len(), 1);
    assert_eq!(plan.records[0].kind, "unverified");
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert!(plan.events.is_empty());
    assert!(relayed(&plan).is_none());
    assert!(matches!(
        notices(&plan)[..],
        [AgentNotice::Unverified { .. }]
    ));
    assert!(
        !plan
            .mails
            .iter()
            .any(|m| matches!(m, Mail::AgentCopy { .. })),
        "no 'customer reply' copy"
    );
}

/// Issue 12 item 2: every command is applied or explained.
#[test]
fn every_command_is_applied_or_the_agent_is_told() {
    // `#priority high` then `#note …`: both kept
    let plan = run(
        &agent_mail("#priority high\n#note called them\nWe are on it."),
        Some(&open_ticket()),
    );
    assert!(plan.changes.contains(&Change::Priority(Priority::High)));
    assert!(
        plan.records
            .iter()
            .any(|r| r.direction == "note" && r.text == "called them")
    );
    assert_eq!(relayed(&plan), Some("We are on it."));
    // `#close` typed as the last line: a command, never relayed
    let plan = run(&agent_mail("Fixed, thanks!\n#close"), Some(&open_ticket()));
    assert_eq!(relayed(&plan), Some("Fixed, thanks!"));
    assert!(plan.changes.contains(&Change::Close(CloseReason::Agent)));
    assert_eq!(kinds(&plan), [EventKind::TicketClosed]);
    // a bad line: the others applied, the text held, the agent told which
    let plan = run(
        &agent_mail("#priority urgent\n#department Nowhere\nMoving this."),
        Some(&open_ticket()),
    );
    assert!(plan.changes.contains(&Change::Priority(Priority::Urgent)));
    assert!(relayed(&plan).is_none());
    let n = notices(&plan);
    assert!(
        matches!(n[0], AgentNotice::NoSuchDepartment { .. }),
        "{n:?}"
    );
    assert!(n.contains(&&AgentNotice::AnswerHeldForCommands));
    // a known department moves the ticket
    let plan = run(&agent_mail("#department billing"), Some(&open_ticket()));
    assert_eq!(plan.changes, [Change::Department("Billing".into())]);
    assert_eq!(kinds(&plan), [EventKind::TicketEscalated]);
}

/// Issue 12 item 6: `#close` with no text tells the customer.
#[test]
fn a_close_without_words_tells_the_customer() {
    let plan = run(&agent_mail("#close"), Some(&open_ticket()));
    assert!(plan.mails.contains(&Mail::ClosedByAgent {
        reason: CloseReason::Agent
    }));
    let plan = run(&agent_mail("#resolve\nAll good now."), Some(&open_ticket()));
    assert!(
        !plan
            .mails
            .iter()
            .any(|m| matches!(m, Mail::ClosedByAgent { .. }))
    );
    assert_eq!(relayed(&plan), Some("All good now."));
    // the answer that closes says so, and how long a reply reopens (found
    // with mutt: the customer was never told the ticket was closed)
    assert!(
        plan.mails.iter().any(|m| matches!(
            m,
            Mail::Relay {
                closing: Some(CloseReason::Resolved),
                ..
            }
        )),
        "{:?}",
        plan.mails
    );
    let plan = run(&agent_mail("Here you are."), Some(&open_ticket()));
    assert!(
        plan.mails
            .iter()
            .any(|m| matches!(m, Mail::Relay { closing: None, .. }))
    );
}

#[test]
fn a_reply_of_nothing_but_quotes_is_explained() {
    let mut f = agent_mail("");
    f.agent.only_quotes = true;
    let plan = run(&f, Some(&open_ticket()));
    assert!(relayed(&plan).is_none());
    assert_eq!(notices(&plan), [&AgentNotice::OnlyQuotes]);
}

/// Issue 11 item 6: robots answering robots through Guichet stop.
#[test]
fn identical_answers_and_too_many_relays_are_held() {
    let mut t = open_ticket();
    t.last_relay = Some(("I am out of the office.".into(), now() - Duration::hours(1)));
    let plan = run(&agent_mail("I am OUT of the office"), Some(&t));
    assert!(relayed(&plan).is_none());
    assert!(matches!(
        notices(&plan)[..],
        [AgentNotice::Identical { .. }]
    ));
    // a day later the same words are an answer again
    t.last_relay = Some(("I am out of the office.".into(), now() - Duration::days(2)));
    assert!(relayed(&run(&agent_mail("I am out of the office."), Some(&t))).is_some());
    t.relays_last_hour = 20;
    let plan = run(&agent_mail("Another answer."), Some(&t));
    assert!(matches!(
        notices(&plan)[..],
        [AgentNotice::RateLimit {
            sent: 20,
            limit: 20
        }]
    ));
}

/// Issue 12 item 1: Guichet's own text is recognised in a reply, quoted
/// or not, and never relayed.
#[test]
fn guichet_own_text_is_removed_from_agents_replies() {
    let own = crate::mail::words::own_lines();
    let help_en = crate::mail::words::help(Language::En);
    let copy_block = format!(
        "New ticket\nTicket 2 · status open · priority normal · department Support\nCustomer: ann@customer.test\n\n{help_en}\n{}\n\nMy printer is on fire.",
        "-".repeat(72)
    );
    let quoted: String = copy_block.lines().map(|l| format!("> {l}\n")).collect();
    // mutt's inline answer, the header block left in place
    let inline = format!("{quoted}\nPlease unplug it.\n");
    let (text, removed) = remove_own_text(&inline, 2, &own);
    assert!(removed);
    for leak in [
        "Ticket 2",
        "status open",
        "Reply to this email",
        "#priority low",
        "---",
    ] {
        assert!(!text.contains(leak), "{leak} left in:\n{text}");
    }
    assert!(text.contains("> My printer is on fire.") && text.contains("Please unplug it."));
    // `|` quoting and the French block alike
    let help_fr = crate::mail::words::help(Language::Fr);
    let fr = format!(
        "Merci.\n\n| Nouveau ticket\n| Ticket 2 · statut ouvert · priorité normale · département Support\n| {}\n| {}\n",
        help_fr.lines().next().unwrap(),
        "-".repeat(72)
    );
    let (text, _) = remove_own_text(&fr, 2, &own);
    assert_eq!(text.trim(), "Merci.");
    // a help line pasted alone, and a token address
    let (text, _) = remove_own_text(
        &format!(
            "Hi\n{}\nwrite to support+t2.abcdefghij@x.test\n",
            help_en.lines().nth(1).unwrap()
        ),
        2,
        &own,
    );
    assert_eq!(text.trim(), "Hi");
    // another ticket's number is not ours to remove
    let (text, removed) = remove_own_text("Ticket 23 · is fine", 2, &own);
    assert!(!removed && text == "Ticket 23 · is fine");
}

/// Issue 21: history (old mail on a first start, imports) becomes tickets
/// and sends nothing.
#[test]
fn old_mail_becomes_a_ticket_and_sends_nothing() {
    let mut f = customer_mail("From 2024.");
    f.rule = Rule::New;
    f.quiet = Some("received 2024-03-01".into());
    let plan = run(&f, None);
    assert!(matches!(plan.target, Target::New { .. }));
    assert!(plan.mails.is_empty() && plan.events.is_empty(), "{plan:?}");
    let mut f = agent_mail("An answer from 2024.");
    f.quiet = Some("imported".into());
    let plan = run(&f, Some(&open_ticket()));
    assert!(relayed(&plan).is_none());
    assert_eq!(plan.records[0].direction, "out", "recorded as it was");
}

#[test]
fn the_same_words_whatever_the_spacing_and_case() {
    for (a, b, same) in [
        ("I am out of the office.", "i am  out of the office", true),
        (
            "I am out of the office.\n\nBack Monday",
            "I am out of the office. Back Monday!",
            true,
        ),
        ("Answer number 1.", "Answer number 2.", false),
        ("", "", false),
        ("...", "!!!", false),
        ("Merci, bien reçu.", "MERCI bien REÇU", true),
    ] {
        assert_eq!(same_words(a, b), same, "{a:?} vs {b:?}");
    }
}

// issue 20: one customer, several addresses

#[test]
fn merge_customer_ties_an_address_to_the_customer_and_holds_nothing_else() {
    let plan = run(
        &agent_mail("#merge-customer <Ann@Home.test>\nDone, thanks."),
        Some(&open_ticket()),
    );
    assert_eq!(plan.merge_customer, [addr("ann@home.test")]);
    // the answer still goes out; the merge is noted on the ticket
    assert_eq!(relayed(&plan), Some("Done, thanks."));
    assert!(
        plan.records
            .iter()
            .any(|r| r.note.as_deref().is_some_and(|n| n.contains(
                "ann@home.test is another address of this ticket's customer ann@customer.test"
            )))
    );
    assert!(notices(&plan).is_empty());
}

#[test]
fn merge_customer_refuses_agents_and_support_addresses_and_holds_the_answer() {
    for own in ["alice@desk.test", "Support@desk.test"] {
        let plan = run(
            &agent_mail(&format!("#merge-customer {own}\nHello")),
            Some(&open_ticket()),
        );
        assert!(plan.merge_customer.is_empty(), "{own}");
        assert!(
            matches!(
                notices(&plan)[..],
                [
                    AgentNotice::CannotMerge { .. },
                    AgentNotice::AnswerHeldForCommands
                ]
            ),
            "{own}: {:?}",
            notices(&plan)
        );
        assert_eq!(relayed(&plan), None);
    }
}

#[test]
fn merge_customer_of_the_customer_itself_or_twice_is_one_or_no_merge() {
    let plan = run(
        &agent_mail("#merge-customer ann@customer.test"),
        Some(&open_ticket()),
    );
    assert!(plan.merge_customer.is_empty());
    let plan = run(
        &agent_mail("#merge-customer a@b.test\n#merge-customer a@b.test"),
        Some(&open_ticket()),
    );
    assert_eq!(plan.merge_customer, [addr("a@b.test")]);
}

#[test]
fn a_reply_from_the_customers_other_address_joins_as_the_customer_and_is_added() {
    let mut f = customer_mail("Writing from home.");
    f.from = addr("ann@home.test");
    f.customer_alias = true;
    let plan = run(&f, Some(&open_ticket()));
    assert_eq!(plan.target, Target::Existing(7));
    assert_eq!(plan.add_participants, [addr("ann@home.test")]);
    assert!(plan.records.iter().any(|r| r.kind == "customer"));
    // a stranger's reply joins (known Message-ID) but adds nobody
    f.customer_alias = false;
    let plan = run(&f, Some(&open_ticket()));
    assert!(plan.add_participants.is_empty());
}
