//! The mail a plan sends, rendered and queued: acknowledgements, the
//! agents' copy, relayed answers, notices.

use std::collections::HashSet;

use serde_json::json;

use crate::domain::{CloseReason, EmailAddress, TicketId};
use crate::mail::outbound::{Automation, FileToSend, InlineImage};
use crate::mail::words;
use crate::rules::conversation::{Facts, Headline, Mail};
use crate::rules::lifecycle::LinkReason;
use crate::rules::quotes;
use crate::rules::threading::{self, SubjectTag};
use crate::store::TicketRow;

use super::Job;
use crate::workers::notify::{self, Notice, Rich};

/// How many earlier messages the agents' copy shows, and how much of each.
const EARLIER_MESSAGES: i64 = 5;
const EARLIER_CHARS: usize = 1500;
/// The customer's original rides along up to this size (a bigger one is
/// in the ticket: `guichet tickets show`).
const ORIGINAL_MAX_BYTES: usize = 5 * 1024 * 1024;

/// What the agents' copy shows of the customer's message.
pub(super) struct CopyBody {
    /// The new words (the whole text when it is nothing but quotes).
    text: String,
    /// The same, as sanitized HTML, when the customer wrote HTML and
    /// HTML is sent.
    html: Option<String>,
    /// The body images that HTML shows.
    cids: HashSet<String>,
    /// The last messages customers and agents wrote, newest first.
    earlier: Vec<serde_json::Value>,
    /// The untouched original, when something was left out.
    original: Option<Vec<u8>>,
}

/// Trace data of a queued mail: what, to whom.
pub(super) fn sent(kind: &str, to: &[EmailAddress], cc: &[EmailAddress]) -> serde_json::Value {
    json!({"send": kind, "to": to.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
           "cc": cc.iter().map(|a| a.as_str()).collect::<Vec<_>>()})
}

impl Job<'_, '_, '_> {
    /// Renders and queues one mail of the plan.
    pub(super) async fn send(
        &mut self,
        ticket: &TicketRow,
        facts: &Facts,
        mail: &Mail,
        copy_notes: &[String],
    ) -> anyhow::Result<()> {
        let from = &facts.from;
        match mail {
            Mail::Acknowledgement => {
                let mut vars = self.refusal_vars(ticket);
                vars["name"] = json!(self.facts.from_name);
                self.auto_reply(ticket, from, "acknowledgement", vars)
                    .await?;
            }
            Mail::NewLinked { old, why } => {
                let (why_code, until) = match why {
                    LinkReason::ReopenDisabled => ("disabled", String::new()),
                    LinkReason::WindowExpired { deadline } => {
                        ("expired", deadline.format("%Y-%m-%d %H:%M UTC").to_string())
                    }
                };
                let closed_on = match self.tx.ticket(*old).await? {
                    Some(o) => o
                        .closed_at
                        .map(|c| c.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    None => String::new(),
                };
                let mut vars = self.refusal_vars(ticket);
                for (k, v) in [
                    ("old_ticket_id", json!(old)),
                    ("why", json!(why_code)),
                    ("reopen_until", json!(until)),
                    ("closed_on", json!(closed_on)),
                ] {
                    vars[k] = v;
                }
                self.auto_reply(ticket, from, "new_linked", vars).await?;
            }
            Mail::Reopened => {
                self.auto_reply(ticket, from, "reopened", json!({})).await?;
            }
            Mail::Refusals => {
                let vars = self.refusal_vars(ticket);
                self.auto_reply(ticket, from, "refused_attachments", vars)
                    .await?;
            }
            Mail::AgentCopy { headline } => {
                let by_customer = from.as_str() == ticket.client || facts.customer_alias;
                self.copy_to_agents(ticket, *headline, copy_notes, by_customer)
                    .await?;
            }
            Mail::Relay { text, closing } => {
                let (text, html) = self.answer_html(text);
                let mut files = Vec::with_capacity(self.files.checked.len());
                let mut inline = Vec::new();
                for (c, b) in &self.files.checked {
                    if let Some(cid) = c
                        .content_id
                        .as_ref()
                        .filter(|id| html.as_ref().is_some_and(|(_, cids)| cids.contains(*id)))
                    {
                        inline.push(InlineImage {
                            content_id: cid.clone(),
                            filename: c.filename.clone(),
                            content_type: c.declared_type.clone(),
                            bytes: b.read(self.ctx)?,
                        });
                        continue;
                    }
                    files.push(FileToSend {
                        filename: c.filename.clone(),
                        content_type: c.declared_type.clone(),
                        bytes: b.read(self.ctx)?,
                    });
                }
                let rich = Rich {
                    html: html.map(|(h, _)| h),
                    inline,
                    original: None,
                };
                self.relay_to_customer(ticket, &text, files, rich, *closing)
                    .await?;
            }
            Mail::ClosedByAgent { reason } => {
                let client = EmailAddress::parse(&ticket.client).map_err(anyhow::Error::msg)?;
                let (in_reply_to, references) = notify::customer_thread(self.tx, ticket.id).await?;
                let (reopen, days) = reopen_window(self.ctx.settings);
                notify::queue(
                    self.tx,
                    self.ctx,
                    Notice {
                        kind: "closed_by_agent",
                        template: "closed_by_agent",
                        ticket,
                        to: vec![client.clone()],
                        cc: vec![],
                        automation: Automation::AutoGenerated,
                        vars: json!({"resolved": *reason == CloseReason::Resolved, "reopen": reopen, "days": days}),
                        in_reply_to,
                        references,
                        attachments: vec![],
                        from_name: None,
                        rich: Default::default(),
                    },
                )
                .await?;
                self.trace.note_data(
                    "answer",
                    format!("closing notice to {client}"),
                    sent("closed_by_agent", std::slice::from_ref(&client), &[]),
                );
            }
            Mail::AgentNotice { to, reasons } => {
                let lang = notify::ticket_language(ticket, self.ctx.settings);
                let reason = reasons
                    .iter()
                    .map(|r| r.explain(lang))
                    .collect::<Vec<_>>()
                    .join("\n\n");
                self.agent_notice(ticket, to, &reason).await?;
            }
        }
        Ok(())
    }

    /// The refused files of the message, for the customer's mail.
    pub(super) fn refusal_vars(&self, ticket: &TicketRow) -> serde_json::Value {
        let lang = notify::ticket_language(ticket, self.ctx.settings);
        let refused: Vec<serde_json::Value> = self
            .files
            .refused_loudly()
            .map(|c| json!({"filename": c.filename, "reason": c.refusal.as_ref().map(|r| r.explain(lang))}))
            .collect();
        let a = &self.ctx.settings.attachments;
        json!({"refused": refused, "allowed": a.allowed_extensions.join(", "), "max_size_mb": a.max_size_mb, "enabled": a.enabled})
    }

    pub(super) async fn auto_reply(
        &mut self,
        ticket: &TicketRow,
        to: &EmailAddress,
        template: &'static str,
        vars: serde_json::Value,
    ) -> anyhow::Result<()> {
        let references = self.thread_refs();
        notify::queue(
            self.tx,
            self.ctx,
            Notice {
                kind: template,
                template,
                ticket,
                to: vec![to.clone()],
                cc: vec![],
                automation: Automation::AutoReplied,
                vars,
                in_reply_to: self.facts.message_id.clone(),
                references,
                attachments: vec![],
                from_name: None,
                rich: Default::default(),
            },
        )
        .await?;
        self.tx.record_auto_reply(to.as_str(), self.ctx.now).await?;
        self.trace.note_data(
            "answer",
            format!("{template} to {to}"),
            sent(template, std::slice::from_ref(to), &[]),
        );
        Ok(())
    }

    pub(super) fn thread_refs(&self) -> Vec<String> {
        let mut refs = self.facts.references.clone();
        if let Some(id) = &self.facts.message_id
            && !refs.contains(id)
        {
            refs.push(id.clone());
        }
        refs
    }

    /// An agent's answer as the customer gets it: its text, and its HTML
    /// (sanitized, quote containers and command lines removed) with the
    /// body images it shows, when the agent wrote HTML and HTML is sent.
    /// An HTML-only answer's text is rendered from that HTML.
    pub(super) fn answer_html(&self, answer: &str) -> (String, Option<(String, HashSet<String>)>) {
        let Some(h) = self.facts.html.as_deref() else {
            return (answer.to_string(), None);
        };
        if !self.ctx.settings.mail.html {
            return (answer.to_string(), None);
        }
        let visible = quotes::visible_html(h);
        let cids: HashSet<String> = self
            .files
            .checked
            .iter()
            .filter(|(c, _)| c.refusal.is_none())
            .filter_map(|(c, _)| c.content_id.clone())
            .collect();
        let mut html = crate::mail::html::relayable(h, false, visible.inline_reply, &cids);
        // the command lines the text lost (`#close`…) leave the HTML too
        let answer_lines: HashSet<&str> = answer.lines().map(str::trim).collect();
        for line in visible.text.lines().map(str::trim) {
            if line.starts_with('#') && !answer_lines.contains(line) {
                let escaped = crate::mail::html::from_text(line);
                for (from, to) in [
                    (format!(">{escaped}<"), "><".to_string()),
                    (format!(">{escaped}\n"), ">\n".to_string()),
                    (format!("\n{escaped}<"), "\n<".to_string()),
                ] {
                    html = html.replace(&from, &to);
                }
            }
        }
        let text = if self.facts.text_from_html || self.facts.text.trim().is_empty() {
            let rendered = crate::mail::html::to_text(&html);
            if rendered.trim().is_empty() {
                answer.to_string()
            } else {
                rendered.trim().to_string()
            }
        } else {
            answer.to_string()
        };
        (text, Some((html, cids)))
    }

    /// The customer's new words for the agents' copy (quotes and
    /// signature removed as for agents' answers), the ticket's recent
    /// history, and the original when something was left out.
    pub(super) async fn copy_body(
        &mut self,
        ticket: &TicketRow,
        headline: Headline,
        lang: crate::settings::Language,
    ) -> anyhow::Result<CopyBody> {
        let html_part = self.facts.html.clone();
        let read_html =
            html_part.is_some() && (self.facts.text_from_html || self.facts.text.trim().is_empty());
        let visible = match html_part.as_deref() {
            Some(h) if read_html => quotes::visible_html(h),
            _ => quotes::visible_text(&self.facts.text),
        };
        let whole = visible.only_quotes || visible.text.trim().is_empty();
        let text = if whole {
            self.customer_text()
        } else {
            visible.text.trim().to_string()
        };
        let mut cids = HashSet::new();
        let html = match html_part.as_deref() {
            Some(h) if self.ctx.settings.mail.html => {
                cids = self
                    .files
                    .checked
                    .iter()
                    .filter(|(c, _)| c.refusal.is_none())
                    .filter_map(|(c, _)| c.content_id.clone())
                    .collect();
                Some(crate::mail::html::relayable(
                    h,
                    whole,
                    visible.inline_reply,
                    &cids,
                ))
            }
            _ => None,
        };
        let left_out = !whole && (visible.removed_quote || visible.removed_signature);
        let original = if left_out {
            self.tx
                .raw_bytes_up_to(self.raw_id, ORIGINAL_MAX_BYTES)
                .await?
        } else {
            None
        };
        // a ticket this message opens has nothing earlier to read
        let opened_now = matches!(headline, Headline::NewTicket | Headline::NewLinked { .. });
        let recent = if opened_now {
            Vec::new()
        } else {
            self.tx
                .recent_written(ticket.id, self.raw_id, EARLIER_MESSAGES)
                .await?
        };
        let earlier = recent
            .into_iter()
            .filter_map(|(direction, from, date, text)| {
                let v = quotes::visible_text(&text);
                let mut words = if v.only_quotes { text } else { v.text };
                if words.trim().is_empty() {
                    return None;
                }
                if words.len() > EARLIER_CHARS {
                    let mut end = EARLIER_CHARS;
                    while !words.is_char_boundary(end) {
                        end -= 1;
                    }
                    words.truncate(end);
                    words.push_str(" […]");
                }
                let role = match (direction.as_str(), lang) {
                    ("in", crate::settings::Language::Fr) => "client",
                    ("in", _) => "customer",
                    _ => "agent",
                };
                Some(json!({"who": format!("{from} ({role})"),
                            "date": date.format("%Y-%m-%d %H:%M UTC").to_string(),
                            "text": words.trim()}))
            })
            .collect();
        Ok(CopyBody {
            text,
            html,
            cids,
            earlier,
            original,
        })
    }

    /// The customer's words (and accepted files) to the department's
    /// agents, in the ticket's language, sent in the writer's name.
    /// `by_customer`: the writer is the ticket's customer (else their name
    /// is not the customer's, and a note says who they are).
    pub(super) async fn copy_to_agents(
        &mut self,
        ticket: &TicketRow,
        headline: Headline,
        notes: &[String],
        by_customer: bool,
    ) -> anyhow::Result<()> {
        let s = self.ctx.settings;
        let lang = notify::ticket_language(ticket, s);
        let agents = s
            .department_named(&ticket.department)
            .map(|d| d.agents.clone())
            .unwrap_or_default();
        if agents.is_empty() {
            self.trace.note(
                "copy",
                format!(
                    "department {} has no agents: no copy sent",
                    ticket.department
                ),
            );
            return Ok(());
        }
        let accepted: Vec<String> = self
            .files
            .accepted()
            .map(|(c, _)| c.filename.clone())
            .collect();
        let refused: Vec<String> = self
            .files
            .refused()
            .map(|c| {
                let why = c
                    .refusal
                    .as_ref()
                    .map(|r| r.explain(lang))
                    .unwrap_or_default();
                if c.body_image {
                    format!("{} (an image of the message's body, not shown; the customer was not told: {why})", c.filename)
                } else {
                    format!("{} ({why})", c.filename)
                }
            })
            .collect();
        // what the message holds besides files (a signature, an invitation…)
        let opened_by = self.forwarded_by.as_ref().map(|agent| {
            format!("Opened by {agent}, who forwarded this message of the customer's.")
        });
        let notes: Vec<String> = opened_by
            .into_iter()
            .chain(notes.iter().cloned())
            .chain(self.files.others.iter().filter_map(|o| o.note()))
            .collect();
        let notes = notes.as_slice();
        let cc: Vec<String> = self.facts.cc.iter().map(|a| a.to_string()).collect();
        let body = self.copy_body(ticket, headline, lang).await?;
        // the copy is the files' last use (recorded already): their bytes
        // move into it, or are read back from the file store; the images
        // its HTML shows go beside the HTML
        let mut attachments = Vec::new();
        let mut inline = Vec::new();
        for (c, bytes) in &mut self.files.checked {
            if c.refusal.is_none()
                && let Some(cid) = c.content_id.as_ref().filter(|id| body.cids.contains(*id))
            {
                inline.push(InlineImage {
                    content_id: cid.clone(),
                    filename: c.filename.clone(),
                    content_type: c
                        .sniffed_type
                        .clone()
                        .unwrap_or_else(|| c.declared_type.clone()),
                    bytes: bytes.take(self.ctx)?,
                });
            } else if c.refusal.is_none() {
                attachments.push(FileToSend {
                    filename: c.filename.clone(),
                    content_type: c
                        .sniffed_type
                        .clone()
                        .unwrap_or_else(|| c.declared_type.clone()),
                    bytes: bytes.take(self.ctx)?,
                });
            }
        }
        let references = self.thread_refs();
        let text = body.text;
        // the "Customer:" line names the customer, never someone else
        let name = self.facts.from_name.clone().filter(|_| by_customer);
        let team = s.smtp.from.name.clone().unwrap_or_else(|| "Support".into());
        // agents tell tickets apart in their inbox by who wrote
        let from_name = Some(match (&self.facts.from_name, &self.facts.from) {
            (Some(n), _) => format!("{n} via {team}"),
            (None, Some(writer)) if !by_customer => format!("{writer} via {team}"),
            _ => format!("{} via {team}", ticket.client),
        });
        notify::queue(self.tx, self.ctx, Notice {
            kind: "agent_copy",
            template: "agent_copy",
            ticket,
            to: agents.clone(),
            cc: vec![],
            automation: Automation::AutoGenerated,
            vars: json!({"headline": words::headline(lang, headline), "help": words::help(lang),
                         "text": text, "name": name, "attachments_accepted": accepted.join(", "),
                         "attachments_refused": refused.join("; "), "cc": cc.join(", "), "notes": notes,
                         // the single `note` of earlier templates an admin may have copied
                         "note": (!notes.is_empty()).then(|| notes.join("; ")),
                         "earlier": body.earlier}),
            in_reply_to: self.facts.message_id.clone(),
            references,
            attachments,
            from_name,
            rich: Rich {
                html: body.html,
                inline,
                original: body.original,
            },
        })
        .await?;
        self.trace.note_data(
            "copy",
            format!(
                "copy to agents {}",
                agents
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            sent("agent_copy", &agents, &[]),
        );
        Ok(())
    }

    pub(super) async fn relay_to_customer(
        &mut self,
        ticket: &TicketRow,
        answer: &str,
        files: Vec<FileToSend>,
        rich: Rich,
        closing: Option<CloseReason>,
    ) -> anyhow::Result<()> {
        let s = self.ctx.settings;
        let client = EmailAddress::parse(&ticket.client).map_err(anyhow::Error::msg)?;
        let (reopen, days) = reopen_window(s);
        // the Cc'd people when the admin says so; the customer's other
        // addresses they wrote from (issue 20) always: they are the customer
        let cc: Vec<EmailAddress> = self
            .tx
            .participants(ticket.id)
            .await?
            .into_iter()
            .filter(|p| match p.role.as_str() {
                "cc" => s.helpdesk.reply_to_participants,
                "customer" => p.address != ticket.client,
                _ => false,
            })
            .filter_map(|p| EmailAddress::parse(&p.address).ok())
            .collect();
        // answer the customer's last message, in the customer's thread: the
        // agent's own headers name the copy only agents saw (and the agent's
        // Message-ID), which the customer's client cannot thread on
        let (in_reply_to, references) = notify::customer_thread(self.tx, ticket.id).await?;
        notify::queue(
            self.tx,
            self.ctx,
            Notice {
                kind: "agent_reply",
                template: "agent_reply",
                ticket,
                to: vec![client.clone()],
                cc: cc.clone(),
                automation: Automation::Human,
                // "Re: [#12] Subject", not "[#12] Re: Subject": clients
                // (Gmail) thread on the subject after its "Re:"
                vars: json!({"text": answer, "subject": threading::reply_subject(
                    &SubjectTag::new(&s.helpdesk.subject_tag).apply(&ticket.subject, TicketId(ticket.id))
                ), "closing": closing.map(|c| if c == CloseReason::Resolved { "resolved" } else { "closed" }),
                   "reopen": reopen, "days": days}),
                in_reply_to,
                references,
                attachments: files,
                from_name: None,
                rich,
            },
        )
        .await?;
        self.trace.note_data(
            "relay",
            format!(
                "agent reply relayed to {client}{}",
                if cc.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (Cc {})",
                        cc.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
            sent("agent_reply", std::slice::from_ref(&client), &cc),
        );
        Ok(())
    }

    pub(super) async fn agent_notice(
        &mut self,
        ticket: &TicketRow,
        agent: &EmailAddress,
        reason: &str,
    ) -> anyhow::Result<()> {
        // a notice is automatic mail to the agent: counted in the hourly
        // limit the decision checked (an agent's robot answering each
        // notice must not keep a loop going)
        self.tx
            .record_auto_reply(agent.as_str(), self.ctx.now)
            .await?;
        let references = self.thread_refs();
        notify::queue(
            self.tx,
            self.ctx,
            Notice {
                kind: "agent_notice",
                template: "agent_notice",
                ticket,
                to: vec![agent.clone()],
                cc: vec![],
                automation: Automation::AutoReplied,
                vars: json!({"reason": reason}),
                in_reply_to: self.facts.message_id.clone(),
                references,
                attachments: vec![],
                from_name: None,
                rich: Default::default(),
            },
        )
        .await?;
        self.trace.note_data(
            "agent",
            format!("not relayed; {agent} is told why: {reason}"),
            sent("agent_notice", std::slice::from_ref(agent), &[]),
        );
        Ok(())
    }
}

/// How a closed ticket reopens, for the templates: `never`, `unlimited`
/// or `days` (with their number).
fn reopen_window(s: &crate::settings::Settings) -> (&'static str, i64) {
    match s.helpdesk.reopen_days {
        crate::settings::ReopenWindow::Never => ("never", 0),
        crate::settings::ReopenWindow::Unlimited => ("unlimited", 0),
        crate::settings::ReopenWindow::Days(d) => ("days", i64::from(d)),
    }
}
