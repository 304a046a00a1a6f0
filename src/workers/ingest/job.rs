//! The [`Job`]: one message inside its transaction. It gathers what the
//! decision needs (the ticket, its participants, the counters), calls
//! [`conversation::decide`], and applies the plan once: the ticket row, the
//! message, the mail it sends ([`super::mails`]), its webhook events.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::domain::{CloseReason, EmailAddress, EventKind, TicketId, TicketStatus};
use crate::mail::inbound::Inbound;
use crate::mail::words;
use crate::rules::conversation::{
    self, AgentText, Change, Counters, Facts, Plan, Policy, Sender, Target, TicketView, Writer,
};
use crate::rules::delivery;
use crate::rules::quotes;
use crate::rules::robots::{BounceReport, Classification, MailKind};
use crate::rules::senders::SenderClass;
use crate::rules::threading::{self, Clues, Placement, Rule, SubjectTag};
use crate::store::{NewMessage, NewTicket, TicketRow, Tx};

use super::files::Files;
use super::{Outcome, Trace};
use crate::workers::undelivered::{self, Failed};
use crate::workers::{Ctx, events};

/// One message being handled inside its transaction: gather what the
/// decision needs, [`conversation::decide`], apply the plan.
pub(super) struct Job<'c, 'a, 't> {
    pub(super) ctx: &'c Ctx<'a>,
    pub(super) tx: &'t mut Tx,
    pub(super) trace: Trace,
    pub(super) facts: Inbound,
    pub(super) raw_id: i64,
    pub(super) classification: Classification,
    pub(super) sender: Option<SenderClass>,
    pub(super) files: Files,
    pub(super) dry_run: bool,
    /// The customers' reply token of the ticket is among the recipients.
    pub(super) customers_token: bool,
    /// Why this message causes no mail and no event (history), if so.
    pub(super) quiet: Option<String>,
    /// The agent who forwarded the customer's message, when it is one.
    pub(super) forwarded_by: Option<EmailAddress>,
    /// The department the message's mailbox feeds, if it names one.
    pub(super) feeds: Option<String>,
}

impl Job<'_, '_, '_> {
    pub(super) async fn place_and_act(
        &mut self,
        token: Option<TicketId>,
    ) -> anyhow::Result<Outcome> {
        if matches!(self.classification.kind, MailKind::OwnMail) {
            return self.unplaced("Guichet's own mail came back: ignored").await;
        }
        if let MailKind::Bounce(report) = &self.classification.kind {
            let report = report.clone();
            return self.record_bounce(&report).await;
        }
        let Some(from) = self.facts.from.clone() else {
            return self
                .unplaced("no usable From address: stored raw, no ticket")
                .await;
        };

        let placement = self.place(token, &from).await?;
        if let Some((last, earlier)) = placement.trace.split_last() {
            for line in earlier {
                self.trace.note("threading", line.clone());
            }
            self.trace.note_data(
                "threading",
                last.clone(),
                json!({"rule": placement.rule.as_str(), "ticket_id": placement.ticket.map(|t| t.0)}),
            );
        }
        let ticket = match placement.ticket {
            Some(t) => self.tx.ticket(t.0).await?,
            None => None,
        };
        if ticket.is_none() && matches!(self.classification.kind, MailKind::AutoReply) {
            return self
                .unplaced("an automatic reply that belongs to no ticket: stored raw, no ticket")
                .await;
        }

        // gather
        let mut facts = self.conversation_facts(&from, placement.rule, placement.ticket);
        if let Some(t) = &ticket
            && facts.sender == Sender::Customer
            && t.client != from.as_str()
            && self.tx.same_customer(&t.client, from.as_str()).await?
        {
            facts.customer_alias = true;
            self.trace.note(
                "customer",
                format!(
                    "{from} is another address of ticket {}'s customer {}: they write as the customer",
                    t.id, t.client
                ),
            );
        }
        let view = match &ticket {
            Some(t) => Some(self.ticket_view(t).await?),
            None => None,
        };
        let since = self.ctx.now - Duration::hours(1);
        let counters = Counters {
            automatic_to_sender_last_hour: self
                .tx
                .auto_replies_since(from.as_str(), since)
                .await?
                .try_into()
                .unwrap_or(u32::MAX),
        };
        // decide
        let plan = conversation::decide(
            &facts,
            view.as_ref(),
            &self.policy(),
            counters,
            self.ctx.now,
        );
        for line in &plan.trace {
            self.trace.note("decision", line.clone());
        }
        // apply
        self.apply_plan(plan, &facts, ticket, placement.rule).await
    }

    fn policy(&self) -> Policy {
        let s = self.ctx.settings;
        Policy {
            reopen: s.helpdesk.reopen_days,
            max_participants: s.helpdesk.max_participants,
            max_relays_per_hour: s.helpdesk.max_relays_per_hour,
            max_auto_replies_per_hour: s.helpdesk.max_auto_replies_per_hour,
            departments: s.departments.iter().map(|d| d.name.clone()).collect(),
            not_customers: s
                .departments
                .iter()
                .flat_map(|d| d.agents.iter())
                .chain(s.support_addresses())
                .map(|a| a.as_str().to_lowercase())
                .collect(),
        }
    }

    /// The message as the conversation rules see it.
    fn conversation_facts(
        &mut self,
        from: &EmailAddress,
        rule: Rule,
        ticket: Option<TicketId>,
    ) -> Facts {
        let s = self.ctx.settings;
        let sender = match &self.sender {
            Some(SenderClass::Agent { .. }) => Sender::Agent,
            Some(SenderClass::SpoofedAgent { why }) => Sender::UnprovenAgent { why: why.clone() },
            _ => Sender::Customer,
        };
        let writer = match self.classification.kind {
            MailKind::Human => Writer::Person,
            MailKind::AutoReply => Writer::AutoReply,
            _ => Writer::Robot,
        };
        let agent = match ticket {
            Some(t) if sender == Sender::Agent => self.agent_text(t),
            _ => AgentText::default(),
        };
        Facts {
            from: from.clone(),
            sender,
            writer,
            may_answer: self.classification.may_answer,
            rule,
            customers_token: self.customers_token,
            customer_alias: false,
            others: self.cc_participants(from),
            text: self.customer_text(),
            agent,
            refused_files: self.files.refused_loudly().count(),
            quiet: self.quiet.clone(),
            department: self.feeds.clone().unwrap_or_else(|| {
                s.department_for(&self.facts.recipients().cloned().collect::<Vec<_>>())
                    .name
                    .clone()
            }),
        }
    }

    /// An agent's reply, read: Guichet's own text out (quoted or not),
    /// then quotes and signature, then command lines.
    fn agent_text(&mut self, ticket: TicketId) -> AgentText {
        let own = words::own_lines();
        let strip = |text: &str| conversation::remove_own_text(text, ticket.0, &own);
        // an HTML-only reply (Outlook, Apple Mail) is read as HTML: the text
        // mail-parser generates from it has lost the quote containers
        let (visible, own_removed) = match self.facts.html.as_deref() {
            Some(html) if self.facts.text_from_html || self.facts.text.trim().is_empty() => {
                let v = quotes::visible_html(html);
                let (text, removed) = strip(&v.text);
                (quotes::Visible { text, ..v }, removed)
            }
            _ => {
                let (text, removed) = strip(&self.facts.text);
                (quotes::visible_text(&text), removed)
            }
        };
        let read = AgentText::read(&visible.text, visible.only_quotes);
        self.trace.note(
            "agent",
            format!(
                "commands {:?}; quote removed: {}; signature removed: {}; inline reply: {}; Guichet's own text removed: {own_removed}",
                read.commands, visible.removed_quote, visible.removed_signature, visible.inline_reply
            ),
        );
        read
    }

    /// What the decision needs of the placed ticket, read once.
    async fn ticket_view(&mut self, t: &TicketRow) -> anyhow::Result<TicketView> {
        let mut participants: Vec<String> = self
            .tx
            .participants(t.id)
            .await?
            .into_iter()
            .map(|p| p.address)
            .collect();
        if !participants.contains(&t.client) {
            participants.push(t.client.clone());
        }
        let open_linked = if t.status().is_closed() {
            self.tx.open_linked_ticket(t.id).await?
        } else {
            None
        };
        let since = self.ctx.now - Duration::hours(1);
        Ok(TicketView {
            id: t.id,
            customer: t.client.clone(),
            status: t.status(),
            priority: t.priority(),
            department: t.department.clone(),
            closed_at: t.closed_at,
            last_activity_at: t.last_activity_at,
            participants,
            open_linked,
            last_relay: self.tx.last_relayed_answer(t.id).await?,
            relays_last_hour: self
                .tx
                .relays_since(t.id, since)
                .await?
                .try_into()
                .unwrap_or(u32::MAX),
        })
    }

    /// Writes the plan: the ticket, its participants, the messages, the
    /// ticket's changes, the events, the files, the mail; in that order.
    async fn apply_plan(
        &mut self,
        plan: Plan,
        facts: &Facts,
        placed: Option<TicketRow>,
        rule: Rule,
    ) -> anyhow::Result<Outcome> {
        let s = self.ctx.settings;
        let (mut ticket, created) = match &plan.target {
            Target::New {
                department,
                linked_from,
            } => {
                let subject = match (&placed, linked_from) {
                    // it continues the old ticket: its subject, not "Re: [#old] …"
                    (Some(old), Some(_)) => old.subject.clone(),
                    _ if self.facts.subject.is_empty() => "(no subject)".to_string(),
                    _ => self.facts.subject.clone(),
                };
                let row = self
                    .tx
                    .create_ticket_row(&NewTicket {
                        subject: &subject,
                        department,
                        client: facts.from.as_str(),
                        language: s.helpdesk.language.code(),
                        now: self.ctx.now,
                        linked_from: linked_from.map(|(id, _)| id),
                    })
                    .await?;
                self.tx
                    .add_participant(row.id, facts.from.as_str(), "customer")
                    .await?;
                self.trace.note(
                    "ticket",
                    format!("new ticket {} in department {department}", row.id),
                );
                (row, true)
            }
            Target::Existing(id) => match &placed {
                Some(t) if t.id == *id => (t.clone(), false),
                _ => (
                    self.tx
                        .ticket(*id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("ticket {id} vanished"))?,
                    false,
                ),
            },
        };
        for address in &plan.merge_customer {
            let merged = self
                .tx
                .merge_customers(
                    &ticket.client,
                    address.as_str(),
                    facts.from.as_str(),
                    self.ctx.now,
                )
                .await?;
            self.trace.note_data(
                "customer",
                format!("#merge-customer {address}: {merged:?}"),
                json!({"merged": address.as_str(), "customer": ticket.client}),
            );
        }
        for cc in &plan.add_participants {
            // the customer's other address is theirs, not a Cc'd person's
            let role = if facts.customer_alias && *cc == facts.from {
                "customer"
            } else {
                "cc"
            };
            self.tx
                .add_participant(ticket.id, cc.as_str(), role)
                .await?;
            self.trace.note(
                "participants",
                format!("{cc} (Cc) takes part in ticket {}", ticket.id),
            );
        }
        // an address the relay refused is mailed again once someone
        // names it again (issue 18)
        if !created {
            let named: Vec<String> = self
                .facts
                .cc
                .iter()
                .chain(self.facts.to.iter())
                .chain(std::iter::once(&facts.from))
                .map(|a| a.to_string())
                .collect();
            self.tx
                .clear_refusals(ticket.id, &named, self.ctx.now)
                .await?;
        }
        let mut files_row = None;
        for r in &plan.records {
            let row = self
                .add_message(
                    ticket.id,
                    r.direction,
                    r.kind,
                    facts.from.as_str(),
                    &r.text,
                    rule.as_str(),
                    r.note.as_deref(),
                )
                .await?;
            if r.with_files {
                files_row = Some(row);
            }
        }
        if !plan.changes.is_empty() {
            for c in &plan.changes {
                apply_change(&mut ticket, c, self.ctx.now);
            }
            self.tx.save_ticket(&ticket).await?;
        }
        for (kind, data) in &plan.events {
            let mut data = data.clone();
            if *kind == EventKind::TicketCreated {
                data["message_id"] = json!(self.facts.message_id);
            }
            events::emit(self.tx, s, *kind, &ticket, data, self.ctx.now).await?;
            self.trace
                .note_data("event", kind.as_str(), json!({"event": kind.as_str()}));
        }
        if let Some(row) = files_row {
            self.store_files(&ticket, row).await?;
        }
        for mail in &plan.mails {
            self.send(&ticket, facts, mail, &plan.copy_notes).await?;
        }
        Ok(Outcome::Ticket {
            ticket_id: ticket.id,
            rule: rule.as_str().into(),
            created,
        })
    }

    async fn place(
        &mut self,
        token: Option<TicketId>,
        from: &EmailAddress,
    ) -> anyhow::Result<Placement> {
        let referenced = self.facts.referenced_ids();
        let header_match = self.tx.ticket_of_message_ids(&referenced).await?;
        let tag =
            SubjectTag::new(&self.ctx.settings.helpdesk.subject_tag).find(&self.facts.subject);
        let (exists, participant) = match tag {
            Some(t) => match self.tx.ticket(t.0).await? {
                Some(ticket) => {
                    // an agent address counts only once proven: anyone
                    // can write `From: agent@…`. Unproven, its mail joins
                    // the ticket as unverified: kept, acting on nothing
                    let agent_address = matches!(
                        self.sender,
                        Some(SenderClass::Agent { .. } | SenderClass::SpoofedAgent { .. })
                    );
                    let is_participant = ticket.client == from.as_str()
                        || agent_address
                        || self.tx.same_customer(&ticket.client, from.as_str()).await?
                        || self
                            .tx
                            .participants(t.0)
                            .await?
                            .iter()
                            .any(|p| p.address == from.as_str());
                    (true, is_participant)
                }
                None => (false, false),
            },
            None => (false, false),
        };
        // a token for a ticket that does not exist is no token
        let token = match token {
            Some(t) if self.tx.ticket(t.0).await?.is_some() => Some(t),
            _ => None,
        };
        Ok(threading::place(&Clues {
            already_seen: false,
            token,
            header_match: header_match.map(|(t, id)| (TicketId(t), id)),
            referenced_ids: referenced.len(),
            subject_tag: tag,
            subject_ticket_exists: exists,
            sender_is_participant: participant,
        }))
    }

    async fn unplaced(&mut self, problem: &str) -> anyhow::Result<Outcome> {
        self.trace.note("outcome", problem.to_string());
        self.tx.set_raw_problem(self.raw_id, problem).await?;
        Ok(Outcome::Unplaced {
            problem: problem.into(),
        })
    }

    async fn record_bounce(&mut self, report: &BounceReport) -> anyhow::Result<Outcome> {
        let original_ids = &report.original_message_ids;
        let mut ids = original_ids.to_vec();
        ids.extend(self.facts.referenced_ids());
        match self.tx.ticket_of_message_ids(&ids).await? {
            Some((ticket_id, mid)) => {
                self.trace.note("bounce", format!("delivery report about <{mid}>: recorded on ticket {ticket_id}, not answered"));
                let from = self
                    .facts
                    .from
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "mailer-daemon".into());
                let text = self.facts.text.chars().take(4000).collect::<String>();
                self.add_message(ticket_id, "in", "bounce", &from, &text, "bounce", None)
                    .await?;
                if report.permanent && !self.dry_run {
                    self.bounced(ticket_id, report).await?;
                }
                Ok(Outcome::Ticket {
                    ticket_id,
                    rule: "bounce".into(),
                    created: false,
                })
            }
            None => {
                self.unplaced(
                    "a delivery report about mail Guichet does not know: stored raw, no ticket",
                )
                .await
            }
        }
    }

    /// A delivery report says mail Guichet sent did not arrive: the same
    /// record and notice as a refusal at RCPT (issue 18).
    async fn bounced(&mut self, ticket_id: i64, report: &BounceReport) -> anyhow::Result<()> {
        for id in &report.original_message_ids {
            let Some(row) = self.tx.outbox_mail_by_message_id(id).await? else {
                continue;
            };
            if row.ticket_id != Some(ticket_id) {
                continue;
            }
            let reply = report
                .diagnostic
                .clone()
                .or_else(|| report.status.clone())
                .unwrap_or_else(|| "returned as undeliverable".into());
            let sent_to = delivery::without(&row.recipients, &[]);
            // the report's failed recipients that the mail was sent to;
            // a report that names none is about all of them
            let named: Vec<&str> = sent_to
                .iter()
                .copied()
                .filter(|a| {
                    report
                        .failed_recipients
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(a))
                })
                .collect();
            let failed: Vec<Failed> = if named.is_empty() { sent_to } else { named }
                .into_iter()
                .map(|a| Failed {
                    address: a.to_string(),
                    reply: reply.clone(),
                })
                .collect();
            let mail = undelivered::Mail {
                ticket_id,
                outbox_id: Some(row.id),
                message_id: &row.message_id,
                kind: &row.kind,
            };
            let told =
                undelivered::record(self.tx, self.ctx, &mail, &failed, delivery::Source::Bounce)
                    .await?;
            self.trace.note(
                "bounce",
                format!(
                    "not delivered to {}{}",
                    failed
                        .iter()
                        .map(|f| f.address.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if told { "; the agents are told" } else { "" }
                ),
            );
            return Ok(());
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn add_message(
        &mut self,
        ticket: i64,
        direction: &str,
        kind: &str,
        from: &str,
        text: &str,
        rule: &str,
        note: Option<&str>,
    ) -> anyhow::Result<i64> {
        let date = self.facts.date.unwrap_or(self.ctx.now);
        let message_id = self.facts.message_id.clone();
        self.tx
            .add_message(&NewMessage {
                ticket_id: ticket,
                raw_id: Some(self.raw_id),
                direction,
                kind,
                from_addr: from,
                date,
                message_id: message_id.as_deref(),
                rule,
                text,
                note,
                signed: self.files.signed(),
            })
            .await
    }

    pub(super) fn customer_text(&self) -> String {
        let text = if self.facts.text.trim().is_empty() {
            self.facts
                .html
                .as_deref()
                .map(|h| quotes::visible_html(h).text)
                .unwrap_or_default()
        } else {
            self.facts.text.clone()
        };
        text.trim().to_string()
    }

    /// Cc'd addresses that become participants: not us, not agents.
    fn cc_participants(&self, from: &EmailAddress) -> Vec<EmailAddress> {
        let s = self.ctx.settings;
        self.facts
            .cc
            .iter()
            .chain(self.facts.to.iter())
            .filter(|a| *a != from && !s.is_support_address(a) && !s.is_agent(a))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// One change of the plan on the ticket row.
fn apply_change(t: &mut TicketRow, change: &Change, now: DateTime<Utc>) {
    match change {
        Change::Status(status) => {
            if !t.status().is_closed() {
                t.set_status(*status);
            }
        }
        Change::Priority(p) => t.priority = p.as_str().to_string(),
        Change::Department(d) => t.department = d.clone(),
        Change::Reopen => {
            t.set_status(TicketStatus::Open);
            t.closed_at = None;
            t.close_reason = None;
            // the inactivity clock restarts at the reopening, or the same
            // pass's sweep would close it again at once
            t.last_activity_at = now;
        }
        Change::Close(reason) => {
            t.set_status(if *reason == CloseReason::Resolved {
                TicketStatus::Resolved
            } else {
                TicketStatus::Closed
            });
            t.closed_at = Some(now);
            t.close_reason = Some(reason.as_str().into());
        }
        Change::Activity { by_agent } => {
            t.last_activity_at = now;
            t.last_message_from = if *by_agent { "agent" } else { "customer" }.into();
            if *by_agent {
                t.first_agent_reply_at.get_or_insert(now);
            }
        }
    }
}
