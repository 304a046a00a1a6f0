//! Outgoing mail about a ticket: rendered from its template, built with
//! the threading headers and the reply token, and queued in the mail
//! outbox inside the caller's transaction (sent later by `deliver`).

use minijinja::Value;
use serde_json::json;

use crate::domain::{EmailAddress, TicketId};
use crate::mail::inbound::Inbound;
use crate::mail::outbound::{self, Automation, FileToSend, InlineImage, Outgoing};
use crate::mail::words;
use crate::rules::reply_token;
use crate::rules::threading::SubjectTag;
use crate::settings::{Language, Settings};
use crate::store::{NewMail, TicketRow, Tx};

use super::Ctx;

/// One message to queue.
pub struct Notice<'a> {
    /// Outbox kind (`ack`, `agent_copy`, `agent_reply`, …), for logs and stats.
    pub kind: &'static str,
    /// Template name under `templates/<lang>/`.
    pub template: &'static str,
    pub ticket: &'a TicketRow,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub automation: Automation,
    /// Variables on top of the ticket's own (`ticket_id`, `subject`,
    /// `subject_tag`, `department`, `status`, `priority`, `client`, `team`).
    pub vars: serde_json::Value,
    /// Message-ID this one answers, and the thread so far.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub attachments: Vec<FileToSend>,
    /// The sender's display name instead of the team's (the agents' copy
    /// shows who wrote), still from the support address.
    pub from_name: Option<String>,
    /// What the HTML alternative shows beyond its template.
    pub rich: Rich,
}

/// The HTML side of a [`Notice`]: sent unless `[mail] html = false`.
#[derive(Debug, Clone, Default)]
pub struct Rich {
    /// Sanitized HTML for the template's `html` variable; `None`: the
    /// `text` variable, escaped.
    pub html: Option<String>,
    /// Images `html` shows by `cid:`.
    pub inline: Vec<InlineImage>,
    /// A message attached whole (`message/rfc822`), in either mode.
    pub original: Option<Vec<u8>>,
}

/// The address replies should go to: the department's, tagged with the
/// ticket's reply token (the customers' one).
pub fn reply_to_for(settings: &Settings, ticket: &TicketRow) -> String {
    reply_token::reply_address(
        &department_address(settings, ticket),
        settings.helpdesk.secret.expose().as_bytes(),
        TicketId(ticket.id),
    )
}

/// [`reply_to_for`] in mail that only agents receive: the agents' token,
/// the one that proves an agent's reply.
pub fn agent_reply_to_for(settings: &Settings, ticket: &TicketRow) -> String {
    reply_token::agent_reply_address(
        &department_address(settings, ticket),
        settings.helpdesk.secret.expose().as_bytes(),
        TicketId(ticket.id),
    )
}

/// In-Reply-To and References of mail to the customer that answers their
/// latest message (a relayed agent answer, the closing notice), so that
/// their client threads it: that message's id after its own References.
/// `(None, [])` when the ticket has no customer message with an id.
pub async fn customer_thread(
    tx: &mut Tx,
    ticket_id: i64,
) -> anyhow::Result<(Option<String>, Vec<String>)> {
    Ok(match tx.last_customer_message(ticket_id).await? {
        Some((id, raw)) => {
            let mut references = Inbound::parse(&raw).references;
            references.retain(|r| *r != id);
            references.push(id.clone());
            (Some(id), references)
        }
        None => (None, Vec::new()),
    })
}

fn department_address(settings: &Settings, ticket: &TicketRow) -> EmailAddress {
    settings
        .department_named(&ticket.department)
        .map(|d| d.address.clone())
        .unwrap_or_else(|| settings.smtp.from.address.clone())
}

/// The language a ticket's mail is written in.
pub fn ticket_language(ticket: &TicketRow, settings: &Settings) -> Language {
    match ticket.language.as_str() {
        "fr" => Language::Fr,
        "en" => Language::En,
        _ => settings.helpdesk.language,
    }
}

/// Template variables that hold header values (subjects, names, addresses).
const ONE_LINE_VARS: &[&str] = &["subject", "name", "client", "department", "cc", "team"];

/// Renders, builds and queues one message; returns its Message-ID.
pub async fn queue(tx: &mut Tx, ctx: &Ctx<'_>, mut n: Notice<'_>) -> anyhow::Result<String> {
    let s = ctx.settings;
    // a Cc the relay refused for good is left out of the ticket's later
    // mail, until someone names it again (issue 18)
    if !n.cc.is_empty() {
        let refused = tx.refused_addresses(n.ticket.id).await?;
        n.cc.retain(|a| !refused.iter().any(|r| r.eq_ignore_ascii_case(a.as_str())));
    }
    let tag = SubjectTag::new(&s.helpdesk.subject_tag);
    let t = n.ticket;
    let mut vars = json!({
        "ticket_id": t.id,
        "subject": t.subject,
        "subject_tag": tag.render(TicketId(t.id)),
        "department": t.department,
        "status": t.status,
        "priority": t.priority,
        "client": t.client,
        "team": s.smtp.from.name.clone().unwrap_or_else(|| "Support".into()),
        "status_label": words::status_label(ticket_language(t, s), t.status()),
        "priority_label": words::priority_label(ticket_language(t, s), t.priority()),
    });
    if let (Some(base), Some(extra)) = (vars.as_object_mut(), n.vars.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    // values that came from someone's headers are one line wherever a
    // template puts them (a ticket stored before this rule included)
    if let Some(base) = vars.as_object_mut() {
        for key in ONE_LINE_VARS {
            if let Some(serde_json::Value::String(text)) = base.get_mut(*key) {
                *text = crate::mail::inbound::one_line(text);
            }
        }
    }
    let rendered = ctx.templates.render(
        ticket_language(t, s),
        n.template,
        Value::from(minijinja::value::Serde(&vars)),
    )?;
    let Rich {
        html,
        inline,
        original,
    } = n.rich;
    let html = if s.mail.html {
        if let Some(base) = vars.as_object_mut() {
            let body = match html {
                Some(h) => h,
                None => crate::mail::html::from_text(
                    base.get("text").and_then(|t| t.as_str()).unwrap_or(""),
                ),
            };
            base.insert("html".into(), serde_json::Value::String(body));
        }
        Some(ctx.templates.render_html(
            ticket_language(t, s),
            n.template,
            Value::from(minijinja::value::Serde(&vars)),
        )?)
    } else {
        None
    };
    let message_id = outbound::new_message_id(&s.smtp.from.address);
    let out = Outgoing {
        from: match &n.from_name {
            Some(name) => crate::settings::MailboxName {
                name: Some(crate::mail::inbound::one_line(name)),
                address: s.smtp.from.address.clone(),
            },
            None => s.smtp.from.clone(),
        },
        to: n.to.clone(),
        cc: n.cc.clone(),
        reply_to: Some(
            if !n.to.is_empty() && n.cc.is_empty() && n.to.iter().all(|a| s.is_agent(a)) {
                agent_reply_to_for(s, t)
            } else {
                reply_to_for(s, t)
            },
        ),
        subject: tag.apply(&rendered.subject, TicketId(t.id)),
        text: rendered.body,
        inline: if html.is_some() { inline } else { Vec::new() },
        html,
        original,
        message_id: message_id.clone(),
        in_reply_to: n.in_reply_to.clone(),
        references: n.references.clone(),
        automation: n.automation,
        ticket_ref: format!(
            "t{}; install={}",
            t.id,
            reply_token::install_mark(s.helpdesk.secret.expose().as_bytes())
        ),
        attachments: n.attachments,
        date: ctx.now,
    };
    let raw = outbound::build(out)?;
    let recipients: Vec<&str> = n.to.iter().chain(n.cc.iter()).map(|a| a.as_str()).collect();
    tx.enqueue_mail(&NewMail {
        ticket_id: Some(t.id),
        kind: n.kind,
        envelope_from: s.smtp.from.address.as_str(),
        recipients: &recipients.join(","),
        message_id: &message_id,
        raw: &raw,
        now: ctx.now,
    })
    .await?;
    Ok(message_id)
}
