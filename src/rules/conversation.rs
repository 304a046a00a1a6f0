//! What one message does to its ticket: SPEC "Senders", "Lifecycle" and
//! the participant rule of "Threading", as ONE pure decision.
//!
//! The ingest worker gathers the [`Facts`] of a message and a
//! [`TicketView`] of the ticket the threading rules placed it on, calls
//! [`decide`], and applies the [`Plan`] it returns in one transaction. The
//! plan lists the message rows to record, the ticket's changes, the
//! participants to add, the webhook events and the mails to send (by
//! template, rendered later in the ticket's language). Nothing here reads a
//! database, a clock or the network, so every rule is a table test.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::domain::{CloseReason, EmailAddress, EventKind, Priority, TicketStatus};
use crate::rules::commands::{self, Command, CommandError};
use crate::rules::lifecycle::{self, LinkReason, ReplyToClosed};
use crate::rules::threading::Rule;
use crate::settings::{Language, ReopenWindow};

/// Who sent the message, as far as trust goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Customer,
    /// An agent address, proven (reply token or trusted authentication).
    Agent,
    /// An agent address that nothing proves; `why` for the notes.
    UnprovenAgent {
        why: String,
    },
}

/// What kind of mail it is (SPEC "Never answer a robot").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Person,
    /// An out-of-office or other automatic reply.
    AutoReply,
    /// Any other robot: bulk, list, mailer-daemon-style senders.
    Robot,
}

/// An agent's reply, read: its answer without quotes, signature, command
/// lines and anything Guichet wrote itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentText {
    pub answer: String,
    pub commands: Vec<Command>,
    pub errors: Vec<CommandError>,
    /// Nothing but quoted text and a signature.
    pub only_quotes: bool,
}

impl AgentText {
    /// Reads an agent's visible text (quotes and signature already
    /// judged by [`crate::rules::quotes`]).
    pub fn read(visible: &str, only_quotes: bool) -> AgentText {
        let block = commands::parse_commands(visible);
        AgentText {
            answer: block.rest.trim().to_string(),
            commands: block.commands,
            errors: block.errors,
            only_quotes,
        }
    }
}

/// The facts of one message that the decision needs.
#[derive(Debug, Clone)]
pub struct Facts {
    pub from: EmailAddress,
    pub sender: Sender,
    pub writer: Writer,
    /// The robot rules allow automatic mail to the sender.
    pub may_answer: bool,
    /// How threading placed it ([`Rule::New`] without a ticket).
    pub rule: Rule,
    /// The customers' reply token of the placed ticket is a recipient.
    pub customers_token: bool,
    /// The sender is another address of the placed ticket's customer
    /// (merged by an agent or the admin): they are the customer.
    pub customer_alias: bool,
    /// To and Cc addresses that could take part: not the sender, not our
    /// own addresses, not agents; in the order written.
    pub others: Vec<EmailAddress>,
    /// The customer-side text to record (full text, not stripped).
    pub text: String,
    /// For agents' mail: the reply read.
    pub agent: AgentText,
    /// Files refused by the gate.
    pub refused_files: usize,
    /// The department a new ticket goes to (by the address it was sent to).
    pub department: String,
    /// Why this message must cause no mail and no event (old mail,
    /// imported history), if so.
    pub quiet: Option<String>,
}

/// What the decision needs to know of the placed ticket.
#[derive(Debug, Clone)]
pub struct TicketView {
    pub id: i64,
    pub status: TicketStatus,
    pub priority: Priority,
    pub department: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    /// Its customer's address (the one its mail goes to).
    pub customer: String,
    /// Everyone who receives its mail, its customer included.
    pub participants: Vec<String>,
    /// An open ticket opened by an earlier late reply to this closed one.
    pub open_linked: Option<i64>,
    /// The text and date of the last answer relayed to its customer.
    pub last_relay: Option<(String, DateTime<Utc>)>,
    /// Answers relayed to its customer in the last hour.
    pub relays_last_hour: u32,
}

/// Settings the decision reads.
#[derive(Debug, Clone)]
pub struct Policy {
    pub reopen: ReopenWindow,
    pub max_participants: u32,
    pub max_relays_per_hour: u32,
    pub max_auto_replies_per_hour: u32,
    pub departments: Vec<String>,
    /// Agents' and our own support addresses, lower-cased: never a
    /// customer's, so `#merge-customer` refuses them.
    pub not_customers: Vec<String>,
}

/// Automatic mails already sent to the sender in the last hour
/// (acknowledgements and notices alike).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub automatic_to_sender_last_hour: u32,
}

/// Which ticket the plan acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new ticket, in `department`; `linked_from` a closed one.
    New {
        department: String,
        linked_from: Option<(i64, LinkReason)>,
    },
    /// The placed ticket, or the open ticket linked to it.
    Existing(i64),
}

/// A message row to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `in`, `out` or `note`.
    pub direction: &'static str,
    /// `customer`, `auto_reply`, `robot`, `agent`, `unverified`.
    pub kind: &'static str,
    pub text: String,
    pub note: Option<String>,
    /// The message's files are recorded on this row.
    pub with_files: bool,
}

/// One change to the ticket row, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Status(TicketStatus),
    Priority(Priority),
    Department(String),
    /// Reopened: closing date and reason cleared, inactivity clock restarts.
    Reopen,
    Close(CloseReason),
    /// A message that counts as activity, from the customer side or an
    /// agent.
    Activity {
        by_agent: bool,
    },
}

/// Why the agents get a copy (its first line, in the ticket's language).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headline {
    NewTicket,
    /// A new ticket opened by a reply to a closed one.
    NewLinked {
        old: i64,
    },
    CustomerReply,
    /// A customer reply that reopened the ticket.
    Reopened,
}

/// A reason told to an agent whose mail was not (wholly) acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotice {
    Command(CommandError),
    NoSuchDepartment {
        name: String,
        known: Vec<String>,
    },
    OnlyQuotes,
    /// The answer was not relayed because a command line failed.
    AnswerHeldForCommands,
    Identical {
        at: DateTime<Utc>,
    },
    RateLimit {
        sent: u32,
        limit: u32,
    },
    /// Mail from the agent's address that nothing proves.
    Unverified {
        why: String,
    },
    /// `#merge-customer` named an agent's or our own address.
    CannotMerge {
        address: String,
    },
}

impl AgentNotice {
    pub fn explain(&self, lang: Language) -> String {
        let fr = lang == Language::Fr;
        match self {
            AgentNotice::Command(e) => e.explain(lang),
            AgentNotice::NoSuchDepartment { name, known } if fr => format!(
                "#department {name} : ce service n'existe pas (services : {}).",
                known.join(", ")
            ),
            AgentNotice::NoSuchDepartment { name, known } => format!(
                "#department {name}: no such department (known: {}).",
                known.join(", ")
            ),
            AgentNotice::OnlyQuotes if fr => "Votre réponse ne contenait que du texte cité et une signature : il n'y avait rien à envoyer.".into(),
            AgentNotice::OnlyQuotes => "Your reply held nothing but quoted text and a signature, so there was nothing to send.".into(),
            AgentNotice::AnswerHeldForCommands if fr => "Votre texte n'a pas été envoyé au client, car une ligne de commande n'a pas pu être appliquée (les autres l'ont été) : corrigez-la et renvoyez votre réponse.".into(),
            AgentNotice::AnswerHeldForCommands => "Your text was not sent to the customer because a command line could not be applied (the others were): correct it and send your answer again.".into(),
            AgentNotice::Identical { at } if fr => format!(
                "Cette réponse est identique à celle envoyée au client le {} : elle n'a pas été renvoyée. Deux répondeurs automatiques qui se répondent ressemblent à cela ; pour envoyer deux fois les mêmes mots exprès, changez-en un.",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            AgentNotice::Identical { at } => format!(
                "This answer is identical to the one relayed to the customer on {}: it was not sent again. Two automatic responders answering each other look like this; to send the same words twice on purpose, change one of them.",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            AgentNotice::RateLimit { sent, limit } if fr => format!(
                "{sent} réponses ont déjà été envoyées au client de ce ticket dans l'heure, la limite (helpdesk.max_relays_per_hour = {limit} par heure) : celle-ci ne l'a pas été. Renvoyez-la plus tard si elle est destinée au client."
            ),
            AgentNotice::RateLimit { sent, limit } => format!(
                "{sent} answers were already relayed to the customer of this ticket in the last hour, the limit (helpdesk.max_relays_per_hour = {limit} per hour): this one was not sent. Send it again later if it is meant for the customer."
            ),
            AgentNotice::Unverified { why } if fr => format!(
                "Un message est arrivé sur ce ticket depuis votre adresse, mais rien ne prouve qu'il vient de vous ({why}). Il est conservé comme non vérifié, ne change rien au ticket et n'a pas été envoyé au client. Pour répondre au client, répondez à la copie que Guichet vous a envoyée : son adresse de réponse porte votre jeton."
            ),
            AgentNotice::CannotMerge { address } if fr => format!(
                "#merge-customer {address} : c'est une adresse d'agent ou une adresse du support, jamais celle d'un client ; rien n'a été fusionné."
            ),
            AgentNotice::CannotMerge { address } => format!(
                "#merge-customer {address}: that is an agent's or one of our support addresses, never a customer's; nothing was merged."
            ),
            AgentNotice::Unverified { why } => format!(
                "A message reached this ticket from your address, but nothing proves it came from you ({why}). It is kept as unverified, changes nothing on the ticket and was not sent to the customer. To answer the customer, reply to the copy Guichet sent you: its reply address carries your token."
            ),
        }
    }
}

/// A mail to send, by what it is; the apply step renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// To the customer of a new ticket, listing refused files if any.
    Acknowledgement,
    /// To the customer whose late reply opened a linked ticket.
    NewLinked { old: i64, why: LinkReason },
    /// To the customer whose reply reopened the ticket.
    Reopened,
    /// To the sender of a reply whose files were refused.
    Refusals,
    /// To the department's agents.
    AgentCopy { headline: Headline },
    /// An agent's answer, to the customer and the Cc'd participants.
    /// `closing`: the same reply closed the ticket (`#close`,
    /// `#resolve`): the answer says so, and how long a reply reopens it.
    Relay {
        text: String,
        closing: Option<CloseReason>,
    },
    /// To the customer: an agent closed the ticket without a word.
    ClosedByAgent { reason: CloseReason },
    /// To the agent who wrote.
    AgentNotice {
        to: EmailAddress,
        reasons: Vec<AgentNotice>,
    },
}

impl Mail {
    /// Automatic mail to the message's sender: counted in the hourly limit.
    pub fn is_automatic_answer(&self) -> bool {
        matches!(
            self,
            Mail::Acknowledgement
                | Mail::NewLinked { .. }
                | Mail::Reopened
                | Mail::Refusals
                | Mail::AgentNotice { .. }
        )
    }
}

/// Everything one message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    pub records: Vec<Record>,
    pub changes: Vec<Change>,
    pub add_participants: Vec<EmailAddress>,
    /// Addresses to make the ticket's customer's (`#merge-customer`).
    pub merge_customer: Vec<EmailAddress>,
    pub events: Vec<(EventKind, Value)>,
    pub mails: Vec<Mail>,
    /// Lines for the agents' copy (who was left out, who is not proven).
    pub copy_notes: Vec<String>,
    /// Each decision in words, for `explain` and the debug log.
    pub trace: Vec<String>,
}

impl Plan {
    fn new(target: Target) -> Plan {
        Plan {
            target,
            records: Vec::new(),
            changes: Vec::new(),
            add_participants: Vec::new(),
            merge_customer: Vec::new(),
            events: Vec::new(),
            mails: Vec::new(),
            copy_notes: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn record(
        &mut self,
        direction: &'static str,
        kind: &'static str,
        text: &str,
        note: Option<String>,
    ) {
        let with_files = self.records.is_empty();
        self.records.push(Record {
            direction,
            kind,
            text: text.to_string(),
            note,
            with_files,
        });
    }

    /// The plan's status after its changes, from `start`.
    pub fn status_after(&self, start: TicketStatus) -> TicketStatus {
        self.changes.iter().fold(start, |s, c| match c {
            Change::Status(new) => *new,
            Change::Reopen => TicketStatus::Open,
            Change::Close(CloseReason::Resolved) => TicketStatus::Resolved,
            Change::Close(_) => TicketStatus::Closed,
            _ => s,
        })
    }
}

/// The decision for one message on `ticket` (`None`: threading found no
/// ticket, a new one is opened).
pub fn decide(
    facts: &Facts,
    ticket: Option<&TicketView>,
    policy: &Policy,
    counters: Counters,
    now: DateTime<Utc>,
) -> Plan {
    let mut d = Decision {
        facts,
        policy,
        automatic_left: policy
            .max_auto_replies_per_hour
            .saturating_sub(counters.automatic_to_sender_last_hour),
        now,
    };
    let mut plan = match ticket {
        None => d.new_ticket(None, None),
        Some(t) if facts.writer == Writer::Person && facts.sender == Sender::Agent => {
            d.agent_reply(t)
        }
        Some(t)
            if facts.writer == Writer::Person
                && matches!(facts.sender, Sender::UnprovenAgent { .. }) =>
        {
            d.unverified(t)
        }
        Some(t) => d.customer_reply(t),
    };
    // history (SPEC "Running it": first contact with a mailbox) becomes
    // tickets, but no customer, agent or chat channel hears of it again
    if let Some(why) = &facts.quiet
        && !(plan.mails.is_empty() && plan.events.is_empty())
    {
        plan.trace.push(format!(
            "{why}: no mail ({} left out) and no webhook event ({} left out)",
            plan.mails.len(),
            plan.events.len()
        ));
        plan.mails.clear();
        plan.events.clear();
    }
    plan
}

struct Decision<'a> {
    facts: &'a Facts,
    policy: &'a Policy,
    /// Automatic mails the sender may still get this hour.
    automatic_left: u32,
    now: DateTime<Utc>,
}

impl Decision<'_> {
    /// Adds an automatic mail to the sender if the robot rules and the
    /// hourly limit allow it.
    fn answer(&mut self, plan: &mut Plan, mail: Mail) {
        if !self.facts.may_answer && !matches!(mail, Mail::AgentNotice { .. }) {
            plan.trace
                .push(format!("no {mail:?}: the sender is a robot"));
            return;
        }
        if self.automatic_left == 0 {
            plan.trace.push(format!(
                "no {mail:?}: {} automatic mails went to {} in the last hour (the limit)",
                self.policy.max_auto_replies_per_hour, self.facts.from
            ));
            return;
        }
        self.automatic_left -= 1;
        plan.mails.push(mail);
    }

    fn record_kind(&self) -> &'static str {
        match self.facts.writer {
            Writer::Person => "customer",
            Writer::AutoReply => "auto_reply",
            Writer::Robot => "robot",
        }
    }

    fn unproven_note(&self) -> Option<String> {
        match &self.facts.sender {
            Sender::UnprovenAgent { why } => Some(format!(
                "From an agent address but not authenticated ({why}): handled as a customer message, not relayed"
            )),
            _ => None,
        }
    }

    /// Participants from `others`, up to the cap counting `present`.
    fn participants(&self, plan: &mut Plan, present: &[String]) {
        let cap = self.policy.max_participants as usize;
        let mut count = present.len();
        let mut left_out = Vec::new();
        for a in &self.facts.others {
            if present.iter().any(|p| p == a.as_str()) || plan.add_participants.contains(a) {
                continue;
            }
            if count >= cap {
                left_out.push(a.as_str());
                continue;
            }
            plan.add_participants.push(a.clone());
            count += 1;
        }
        if !left_out.is_empty() {
            let shown: Vec<&str> = left_out.iter().take(10).copied().collect();
            let line = format!(
                "{} addresses were not added to the ticket (at most {cap} people receive its mail, helpdesk.max_participants): {}{}",
                left_out.len(),
                shown.join(", "),
                if left_out.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
            plan.trace.push(line.clone());
            plan.copy_notes.push(line);
        }
    }

    /// A customer's first message (or a message no ticket takes).
    fn new_ticket(&mut self, old: Option<&TicketView>, why: Option<LinkReason>) -> Plan {
        let f = self.facts;
        let linked_from = old.zip(why).map(|(t, w)| (t.id, w));
        let mut plan = Plan::new(Target::New {
            department: f.department.clone(),
            linked_from,
        });
        plan.trace.push(match linked_from {
            Some((old, _)) => format!("a new ticket, linked to closed ticket {old}"),
            None => format!("a new ticket in department {}", f.department),
        });
        // the customer counts as one participant
        self.participants(&mut plan, &[f.from.as_str().to_string()]);
        plan.record("in", self.record_kind(), &f.text, self.unproven_note());
        plan.copy_notes.extend(self.unproven_note());
        let mut data = json!({"from": f.from.as_str(), "rule": f.rule.as_str()});
        if let Some((old, _)) = linked_from {
            data["linked_ticket_id"] = json!(old);
        }
        plan.events.push((EventKind::TicketCreated, data));
        match linked_from {
            Some((old, why)) => self.answer(&mut plan, Mail::NewLinked { old, why }),
            None => self.answer(&mut plan, Mail::Acknowledgement),
        }
        plan.mails.push(Mail::AgentCopy {
            headline: match linked_from {
                Some((old, _)) => Headline::NewLinked { old },
                None => Headline::NewTicket,
            },
        });
        plan
    }

    /// A customer's (or anyone's unproven) message on an existing ticket.
    fn customer_reply(&mut self, t: &TicketView) -> Plan {
        let f = self.facts;
        if f.writer != Writer::Person {
            // recorded, nothing else: robots are no activity
            let mut plan = Plan::new(Target::Existing(t.id));
            plan.record("in", self.record_kind(), &f.text, None);
            plan.trace.push(format!(
                "appended to ticket {} as {}: no activity, nothing sent",
                t.id,
                self.record_kind()
            ));
            return plan;
        }
        let mut target = t.id;
        let mut reopened = false;
        if t.status.is_closed() {
            let closed_at = t.closed_at.unwrap_or(t.last_activity_at);
            match lifecycle::customer_reply_to_closed(closed_at, self.policy.reopen, self.now) {
                ReplyToClosed::Reopen => reopened = true,
                ReplyToClosed::OpenLinkedTicket { .. } if t.open_linked.is_some() => {
                    // a later late reply joins the linked ticket already open
                    target = t.open_linked.unwrap_or(t.id);
                }
                ReplyToClosed::OpenLinkedTicket { why } => {
                    return self.new_ticket(Some(t), Some(why));
                }
            }
        }
        let mut plan = Plan::new(Target::Existing(target));
        if target != t.id {
            plan.trace.push(format!(
                "ticket {} is closed and past its reopen window: the reply joins ticket {target}, opened by an earlier late reply",
                t.id
            ));
        }
        plan.record("in", "customer", &f.text, self.unproven_note());
        plan.copy_notes.extend(self.unproven_note());
        if f.customer_alias && !t.participants.iter().any(|p| p == f.from.as_str()) {
            // the customer wrote from another of their addresses: the
            // answer reaches the address they wrote from too
            plan.add_participants.push(f.from.clone());
            let line = format!(
                "{} is another address of the customer {}: added to the ticket, so the answers reach it too",
                f.from, t.customer
            );
            plan.trace.push(line.clone());
            plan.copy_notes.push(line);
        }
        let on_ticket = f.from.as_str() == t.customer
            || f.customer_alias
            || t.participants.iter().any(|p| p == f.from.as_str());
        if !on_ticket && self.unproven_note().is_none() {
            // their words are kept, but they are not the customer: the
            // copy must not read as the customer's
            let line = format!(
                "Written by {}, who is not on this ticket: not its customer {}, and not added to it",
                f.from, t.customer
            );
            plan.trace.push(line.clone());
            plan.copy_notes.push(line);
        }
        if reopened {
            plan.trace.push(format!(
                "ticket {} was closed: within the reopen window, reopened",
                t.id
            ));
            plan.changes.push(Change::Reopen);
            plan.events
                .push((EventKind::TicketReopened, json!({"by": f.from.as_str()})));
            self.answer(&mut plan, Mail::Reopened);
        }
        // only mail carrying the ticket's customers' token adds people: a
        // forged From or a known Message-ID joins the ticket (the words are
        // kept) but never widens who receives its mail
        if f.customers_token && f.rule == Rule::Token && target == t.id {
            self.participants(&mut plan, &t.participants);
        } else {
            let unproven: Vec<&str> = f
                .others
                .iter()
                .map(EmailAddress::as_str)
                .filter(|a| !t.participants.iter().any(|p| p == a))
                .collect();
            if !unproven.is_empty() {
                let line = format!(
                    "{} in this mail were not added to the ticket: it does not carry the ticket's reply token (rule {}), so it proves nothing about its sender",
                    unproven.join(", "),
                    f.rule.as_str()
                );
                plan.trace.push(line.clone());
                plan.copy_notes.push(line);
            }
        }
        plan.changes.push(Change::Activity { by_agent: false });
        plan.changes.push(Change::Status(TicketStatus::Open));
        plan.events.push((
            EventKind::TicketReplied,
            json!({"from": f.from.as_str(), "rule": f.rule.as_str(), "text_excerpt": new_words_excerpt(&f.text)}),
        ));
        if f.refused_files > 0 {
            self.answer(&mut plan, Mail::Refusals);
        }
        plan.mails.push(Mail::AgentCopy {
            headline: if reopened {
                Headline::Reopened
            } else {
                Headline::CustomerReply
            },
        });
        plan
    }

    /// Mail from an agent address that nothing proves, on a ticket: kept
    /// as unverified; no change, no event; the agent is told.
    fn unverified(&mut self, t: &TicketView) -> Plan {
        let f = self.facts;
        let why = match &f.sender {
            Sender::UnprovenAgent { why } => why.clone(),
            _ => String::new(),
        };
        let mut plan = Plan::new(Target::Existing(t.id));
        plan.record(
            "in",
            "unverified",
            &f.text,
            Some(format!(
                "from an agent address, not authenticated ({why}): kept, not acted on"
            )),
        );
        plan.trace.push(format!(
            "from agent address {} but not proven ({why}): kept on ticket {} as unverified; nothing changes, nothing is relayed",
            f.from, t.id
        ));
        let notice = Mail::AgentNotice {
            to: f.from.clone(),
            reasons: vec![AgentNotice::Unverified { why }],
        };
        self.answer(&mut plan, notice);
        plan
    }

    /// A proven agent's reply: every command applied or explained, the
    /// answer relayed unless something holds it.
    fn agent_reply(&mut self, t: &TicketView) -> Plan {
        let f = self.facts;
        let a = &f.agent;
        let mut plan = Plan::new(Target::Existing(t.id));
        let mut reasons: Vec<AgentNotice> =
            a.errors.iter().cloned().map(AgentNotice::Command).collect();
        let whole_note = a.commands.contains(&Command::Note);
        let mut closing: Option<CloseReason> = None;
        let mut notes: Vec<String> = Vec::new();
        let mut department = t.department.clone();
        let mut status = t.status;
        for c in &a.commands {
            match c {
                Command::Priority(p) => plan.changes.push(Change::Priority(*p)),
                Command::Department(name) => {
                    match self
                        .policy
                        .departments
                        .iter()
                        .find(|d| d.eq_ignore_ascii_case(name.trim()))
                    {
                        Some(d) if *d != department => {
                            plan.changes.push(Change::Department(d.clone()));
                            plan.events.push((
                                EventKind::TicketEscalated,
                                json!({"from_department": department, "to_department": d, "by": f.from.as_str()}),
                            ));
                            department = d.clone();
                        }
                        Some(_) => {}
                        None => reasons.push(AgentNotice::NoSuchDepartment {
                            name: name.clone(),
                            known: self.policy.departments.clone(),
                        }),
                    }
                }
                Command::Close => closing = Some(CloseReason::Agent),
                Command::Resolve => closing = Some(CloseReason::Resolved),
                Command::Reopen => {
                    if status.is_closed() && lifecycle::agent_mail_to_closed(true) {
                        plan.changes.push(Change::Reopen);
                        plan.events
                            .push((EventKind::TicketReopened, json!({"by": f.from.as_str()})));
                        status = TicketStatus::Open;
                    }
                }
                Command::Note => {}
                Command::NoteText(text) => notes.push(text.clone()),
                Command::MergeCustomer(address) => {
                    let lower = address.as_str().to_lowercase();
                    if self.policy.not_customers.contains(&lower) {
                        reasons.push(AgentNotice::CannotMerge {
                            address: address.to_string(),
                        });
                    } else if lower != t.customer.to_lowercase()
                        && !plan.merge_customer.contains(address)
                    {
                        plan.merge_customer.push(address.clone());
                    }
                }
            }
        }
        let failed = !reasons.is_empty();
        for n in &notes {
            plan.record("note", "agent", n, Some("internal note".into()));
        }
        let nothing_to_say = a.answer.is_empty() || a.only_quotes;
        let mut relayed = false;
        if whole_note {
            plan.record("note", "agent", &a.answer, Some("internal note".into()));
            plan.trace.push("internal note: recorded, not sent".into());
        } else if failed {
            if !nothing_to_say {
                reasons.push(AgentNotice::AnswerHeldForCommands);
            }
            let why: Vec<String> = reasons.iter().map(|r| r.explain(Language::En)).collect();
            plan.record(
                "note",
                "agent",
                &a.answer,
                Some(format!("not sent: {}", why.join(" "))),
            );
        } else if nothing_to_say {
            if a.commands.is_empty() {
                reasons.push(AgentNotice::OnlyQuotes);
                plan.record(
                    "note",
                    "agent",
                    "",
                    Some(format!(
                        "not sent: {}",
                        AgentNotice::OnlyQuotes.explain(Language::En)
                    )),
                );
            }
        } else if let Some(hold) = self.relay_hold(t) {
            plan.record(
                "note",
                "agent",
                &a.answer,
                Some(format!("not sent: {}", hold.explain(Language::En))),
            );
            plan.trace.push(hold.explain(Language::En));
            reasons.push(hold);
        } else {
            plan.record("out", "agent", &a.answer, None);
            plan.mails.push(Mail::Relay {
                text: a.answer.clone(),
                closing: None,
            });
            plan.changes.push(Change::Activity { by_agent: true });
            if !status.is_closed() {
                plan.changes
                    .push(Change::Status(TicketStatus::AwaitingCustomer));
            }
            relayed = true;
        }
        if plan.records.is_empty() {
            // commands alone: kept on the ticket as what the agent did
            plan.record("note", "agent", &a.answer, Some("commands".into()));
        }
        for address in &plan.merge_customer.clone() {
            let line = format!(
                "{address} is another address of this ticket's customer {}: their mail joins their tickets as theirs (#merge-customer by {})",
                t.customer, f.from
            );
            plan.trace.push(line.clone());
            plan.record("note", "agent", "", Some(line));
        }
        if let Some(reason) = closing
            && !plan.status_after(t.status).is_closed()
        {
            plan.changes.push(Change::Close(reason));
            plan.events.push((
                EventKind::TicketClosed,
                json!({"reason": reason.as_str(), "by": f.from.as_str()}),
            ));
            plan.trace.push(format!(
                "ticket {} closed by {} (reason {})",
                t.id,
                f.from,
                reason.as_str()
            ));
            if !relayed && !whole_note {
                // the customer hears of it even without an answer
                plan.mails.push(Mail::ClosedByAgent { reason });
            }
            for mail in &mut plan.mails {
                if let Mail::Relay { closing, .. } = mail {
                    *closing = Some(reason);
                }
            }
        }
        if !reasons.is_empty() {
            self.answer(
                &mut plan,
                Mail::AgentNotice {
                    to: f.from.clone(),
                    reasons,
                },
            );
        }
        plan
    }

    /// Why an agent's answer must not be relayed now: the same words as
    /// the last answer relayed (two robots answering each other through
    /// Guichet), or the ticket's hourly limit of relays.
    fn relay_hold(&self, t: &TicketView) -> Option<AgentNotice> {
        if let Some((last, at)) = &t.last_relay
            && self.now - *at < Duration::hours(24)
            && same_words(last, &self.facts.agent.answer)
        {
            return Some(AgentNotice::Identical { at: *at });
        }
        if t.relays_last_hour >= self.policy.max_relays_per_hour {
            return Some(AgentNotice::RateLimit {
                sent: t.relays_last_hour,
                limit: self.policy.max_relays_per_hour,
            });
        }
        None
    }
}

/// Whether two answers say the same words: case, white space and
/// punctuation aside. An automatic responder sends the same text every
/// time; relaying it twice in a row is how a loop between two robots
/// looks from inside.
fn same_words(a: &str, b: &str) -> bool {
    fn words(s: &str) -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
    let (a, b) = (words(a), words(b));
    !a.is_empty() && a == b
}

/// The start of what the writer added: quoted history and signature
/// left out, as in the agents' copy (the whole text when it is only
/// quotes). A chat channel showed "On … wrote: > …" for a reply whose
/// new words were below the quote.
fn new_words_excerpt(text: &str) -> String {
    let visible = crate::rules::quotes::visible_text(text);
    excerpt(if visible.only_quotes {
        text
    } else {
        &visible.text
    })
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(280).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// Removes from an agent's reply every line Guichet wrote itself for
/// agents, quoted or not: the copy's header block (from its `Ticket N ·`
/// line to its separator), the help lines in any language (`own_lines`),
/// and lines holding a reply token of the ticket. Returns the text and
/// whether anything went.
pub fn remove_own_text(text: &str, ticket: i64, own_lines: &[&str]) -> (String, bool) {
    fn bare(line: &str) -> String {
        let t = line.trim_start_matches(|c: char| c == '>' || c == '|' || c.is_whitespace());
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }
    let own: Vec<String> = own_lines
        .iter()
        .map(|l| bare(l))
        .filter(|l| !l.is_empty())
        .collect();
    let lines: Vec<&str> = text.split('\n').collect();
    let bares: Vec<String> = lines.iter().map(|l| bare(l)).collect();
    let ticket_line = |b: &str| {
        let rest = b.strip_prefix("ticket ").unwrap_or("");
        let rest = rest.strip_prefix("n° ").unwrap_or(rest);
        rest.strip_prefix(&ticket.to_string())
            .is_some_and(|r| r.trim_start().starts_with('·'))
    };
    let separator = |b: &str| b.len() >= 20 && b.chars().all(|c| c == '-');
    let token = format!("+t{ticket}.");
    let mut drop = vec![false; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if ticket_line(&bares[i]) {
            // the headline above it, quoted (or not) like the block
            let quoted = |l: &str| {
                let t = l.trim_start();
                t.starts_with('>') || t.starts_with('|')
            };
            if i > 0 && !bares[i - 1].is_empty() && quoted(lines[i - 1]) == quoted(lines[i]) {
                drop[i - 1] = true;
            }
            let end = (i + 1..lines.len().min(i + 25)).find(|&j| separator(&bares[j]));
            let last = end.unwrap_or(i);
            for d in drop.iter_mut().take(last + 1).skip(i) {
                *d = true;
            }
            i = last + 1;
            continue;
        }
        if own.contains(&bares[i]) || bares[i].contains(&token) {
            drop[i] = true;
        }
        i += 1;
    }
    let removed = drop.iter().any(|d| *d);
    let kept: Vec<&str> = lines
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(l, _)| *l)
        .collect();
    (kept.join("\n"), removed)
}

#[cfg(test)]
mod tests;
