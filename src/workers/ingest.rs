//! One inbound message, from raw bytes to a committed ticket change.
//!
//! The order is the contract of SPEC.md: the raw bytes are stored first
//! (rule 1 makes this idempotent), the message is classified (robot or
//! bounce, sender class), placed by the threading rules, its files go
//! through the attachment gate, and everything it causes (ticket change,
//! outgoing mail, webhook events, the mailbox's last UID) is written in
//! ONE transaction. A crash before the commit changes nothing; after it,
//! the IMAP flag is set by the caller, and a restart finds the message
//! already seen.
//!
//! Every decision is also written to a [`Trace`], which `guichet explain`
//! prints after running the same code in a transaction it rolls back.

use anyhow::Context as _;
use chrono::Duration;
use serde::Serialize;
use serde_json::json;

use crate::adapters::{clamd, file_store};
use crate::domain::{CloseReason, EmailAddress, EventKind, TicketId, TicketStatus};
use crate::mail::inbound::Inbound;
use crate::mail::outbound::{Automation, FileToSend};
use crate::rules::attachments::{self, Checked, FilePart, Policy, Refusal};
use crate::rules::commands::{self, Command};
use crate::rules::lifecycle::{self, LinkReason, ReplyToClosed};
use crate::rules::quotes;
use crate::rules::reply_token;
use crate::rules::robots::{self, Classification, MailKind};
use crate::rules::senders::{self, SenderClass};
use crate::rules::threading::{self, Clues, Placement, Rule, SubjectTag};
use crate::settings::Language;
use crate::store::{NewAttachment, NewMessage, NewRaw, NewTicket, TicketRow, Tx};

use super::notify::{self, Notice};
use super::{Ctx, events};

/// Where a message came from (for the mailbox's last UID and the raw row).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub mailbox: Option<String>,
    pub uid: Option<u32>,
    pub uid_validity: Option<u32>,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    AlreadySeen,
    Ticket {
        ticket_id: i64,
        rule: String,
        created: bool,
    },
    /// Stored raw, on no ticket: the reason is on the raw row.
    Unplaced {
        problem: String,
    },
}

/// Every decision taken, in order, with what decided it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    pub steps: Vec<TraceStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceStep {
    pub stage: &'static str,
    pub decision: String,
    /// The same decision as data (`explain --json`): the threading rule and
    /// ticket, the robot class and the header that decided it, the sender
    /// class, an attachment's verdict, a mail that is sent and to whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Trace {
    fn note(&mut self, stage: &'static str, decision: impl Into<String>) {
        self.push(stage, decision.into(), None);
    }

    fn note_data(
        &mut self,
        stage: &'static str,
        decision: impl Into<String>,
        data: serde_json::Value,
    ) {
        self.push(stage, decision.into(), Some(data));
    }

    fn push(&mut self, stage: &'static str, decision: String, data: Option<serde_json::Value>) {
        tracing::debug!(stage, %decision);
        self.steps.push(TraceStep {
            stage,
            decision,
            data,
        });
    }
}

/// Trace data of a queued mail: what, to whom.
fn sent(kind: &str, to: &[EmailAddress], cc: &[EmailAddress]) -> serde_json::Value {
    json!({"send": kind, "to": to.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
           "cc": cc.iter().map(|a| a.as_str()).collect::<Vec<_>>()})
}

/// Options of one ingest: `dry_run` writes no file (explain).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub dry_run: bool,
}

/// The attachment verdicts of a message, decided before the transaction
/// (scanning may take a while; the database is not held meanwhile).
struct Files {
    checked: Vec<(Checked, FileBytes)>,
}

/// Where an accepted file's bytes are. Accepted files are written to the
/// (content-addressed) file store as soon as they pass the gate, so that
/// the parsed message, which holds them decoded, can be dropped: a mail
/// that carries them reads them back. A dry run writes nothing and keeps
/// them; a write that failed is tried again (and fails the message) when
/// the message's files are recorded.
enum FileBytes {
    Refused,
    Stored { sha256: String },
    Held(Vec<u8>),
}

impl FileBytes {
    fn keep(ctx: &Ctx<'_>, bytes: std::borrow::Cow<'_, [u8]>, dry_run: bool) -> FileBytes {
        if !dry_run
            && let Ok(stored) = file_store::store(&ctx.settings.attachments.storage_dir, &bytes)
        {
            return FileBytes::Stored {
                sha256: stored.sha256,
            };
        }
        FileBytes::Held(bytes.into_owned())
    }

    /// The bytes, for a mail that carries the file, when that mail is
    /// their last use: taken when held, else read back from the store.
    fn take(&mut self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<u8>> {
        match self {
            FileBytes::Held(bytes) => Ok(std::mem::take(bytes)),
            _ => self.read(ctx),
        }
    }

    /// A copy of the bytes: of those held, else read from the store.
    fn read(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<u8>> {
        match self {
            FileBytes::Refused => Ok(Vec::new()),
            FileBytes::Held(bytes) => Ok(bytes.clone()),
            FileBytes::Stored { sha256 } => {
                let path = file_store::path_of(&ctx.settings.attachments.storage_dir, sha256)?;
                // the io::Error stays in the chain: an I/O error is a
                // store fault (the message waits), not the message's
                std::fs::read(&path)
                    .with_context(|| format!("cannot read back stored file {sha256}"))
            }
        }
    }
}

impl Files {
    fn accepted(&self) -> impl Iterator<Item = &(Checked, FileBytes)> {
        self.checked.iter().filter(|(c, _)| c.refusal.is_none())
    }
    fn refused(&self) -> impl Iterator<Item = &Checked> {
        self.checked
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.refusal.is_some())
    }
}

async fn check_files(
    ctx: &Ctx<'_>,
    parts: Vec<FilePart<'_>>,
    dry_run: bool,
    trace: &mut Trace,
) -> Files {
    let a = &ctx.settings.attachments;
    let policy = Policy {
        enabled: a.enabled,
        max_size_bytes: a.max_size_bytes(),
        allowed_extensions: &a.allowed_extensions,
    };
    let mut checked = Vec::new();
    let max_files = a.max_files;
    for (n, part) in parts.into_iter().enumerate() {
        let mut c = if n < max_files as usize {
            attachments::check(&policy, &part)
        } else {
            attachments::refuse_as_too_many(&part, max_files)
        };
        if c.refusal.is_none()
            && let Some(av) = &ctx.settings.antivirus
        {
            let timeout = std::time::Duration::from_secs(av.timeout_seconds);
            match clamd::scan(&av.clamd, &part.bytes, timeout).await {
                clamd::ScanOutcome::Clean => {}
                clamd::ScanOutcome::Infected(signature) => {
                    c.refusal = Some(Refusal::Infected { signature })
                }
                clamd::ScanOutcome::Failed(why) => {
                    tracing::error!(file = %c.filename, %why, "ANTIVIRUS UNAVAILABLE: file refused as not scanned");
                    c.refusal = Some(Refusal::NotScanned { why })
                }
            }
        }
        trace.note_data(
            "attachment",
            match &c.refusal {
                None => format!(
                    "{} ({} bytes, sniffed {}): accepted",
                    c.filename,
                    c.size,
                    c.sniffed_type.as_deref().unwrap_or("unknown")
                ),
                Some(r) => format!(
                    "{} ({} bytes): refused, {}",
                    c.filename,
                    c.size,
                    r.explain(Language::En)
                ),
            },
            json!({"filename": c.filename, "size": c.size, "declared_type": c.declared_type,
                   "sniffed_type": c.sniffed_type,
                   "verdict": if c.refusal.is_none() { "accepted" } else { "refused" },
                   "reason_code": c.refusal.as_ref().map(|r| r.code())}),
        );
        let bytes = if c.refusal.is_none() {
            FileBytes::keep(ctx, part.bytes, dry_run)
        } else {
            FileBytes::Refused
        };
        checked.push((c, bytes));
    }
    Files { checked }
}

/// Ingests one message. Idempotent: the same bytes twice are one message.
/// Given the bytes themselves (not a reference), it drops them once they
/// are stored, before building the mail the message causes: a big
/// message is then not held while its agents' copy is built.
pub async fn ingest<R: AsRef<[u8]>>(
    ctx: &Ctx<'_>,
    raw: R,
    source: &Source,
    opts: Options,
) -> anyhow::Result<(Outcome, Trace)> {
    let mut trace = Trace::default();
    let (parsed, facts) = Inbound::read(raw.as_ref());

    // Rule 1 before any expensive work (a second daemon may have it already;
    // the unique key in the transaction below is what really decides).
    if !opts.dry_run && ctx.store.is_known(&facts.dedup_key).await? {
        trace.note(
            "threading",
            "1 already seen: this message is stored already; it is not stored again",
        );
        return Ok((Outcome::AlreadySeen, trace));
    }

    let prepared = prepare(ctx, parsed, facts, opts.dry_run, &mut trace).await;
    let mut tx = ctx.store.begin().await?;
    let outcome = apply(
        ctx,
        &mut tx,
        raw,
        source,
        prepared,
        &mut trace,
        opts.dry_run,
    )
    .await?;
    if !matches!(outcome, Outcome::AlreadySeen)
        && let (Some(mb), Some(uid), Some(v)) = (&source.mailbox, source.uid, source.uid_validity)
    {
        tx.set_mailbox_state(mb, i64::from(v), i64::from(uid))
            .await?;
    }
    if !opts.dry_run {
        tx.commit().await?;
    }
    Ok((outcome, trace))
}

/// One message of a batch: its bytes and where it came from.
pub struct BatchItem<'r> {
    pub raw: &'r [u8],
    pub source: Source,
}

/// Ingests several messages of one mailbox in ONE transaction, which also
/// moves the mailbox's last UID past them: the outcomes of [`ingest`] one
/// by one, with one commit instead of one each (the crash-safety contract
/// holds: every message's changes, mail, events and the last UID commit
/// together, and the caller flags them after the commit). Any error rolls
/// the whole batch back and is returned: the caller then ingests the
/// messages one at a time, where a failing message is stored raw.
pub async fn ingest_batch(ctx: &Ctx<'_>, items: &[BatchItem<'_>]) -> anyhow::Result<Vec<Outcome>> {
    // the work before the transaction: parsing, classifying, the
    // attachment gate (scans may take a while: the database is not held)
    let mut facts = Vec::with_capacity(items.len());
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let (message, message_facts) = Inbound::read(item.raw);
        facts.push(message_facts);
        parsed.push(message);
    }
    let keys: Vec<&str> = facts.iter().map(|f| f.dedup_key.as_str()).collect();
    let known = ctx.store.known_dedup_keys(&keys).await?;
    let mut prepared = Vec::with_capacity(items.len());
    for (facts, message) in facts.into_iter().zip(parsed) {
        if known.contains(&facts.dedup_key) {
            prepared.push(None);
        } else {
            prepared.push(Some(
                prepare(ctx, message, facts, false, &mut Trace::default()).await,
            ));
        }
    }

    let mut tx = ctx.store.begin().await?;
    let mut outcomes = Vec::with_capacity(items.len());
    for (item, p) in items.iter().zip(prepared) {
        outcomes.push(match p {
            None => Outcome::AlreadySeen,
            Some(p) => {
                let mut trace = Trace::default();
                apply(ctx, &mut tx, item.raw, &item.source, p, &mut trace, false).await?
            }
        });
    }
    let last = items
        .iter()
        .filter_map(|i| {
            Some((
                i.source.mailbox.as_ref()?,
                i.source.uid?,
                i.source.uid_validity?,
            ))
        })
        .max_by_key(|(_, uid, _)| *uid);
    if let Some((mb, uid, v)) = last {
        tx.set_mailbox_state(mb, i64::from(v), i64::from(uid))
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Everything decided about a message before its transaction.
struct Prepared {
    facts: Inbound,
    classification: Classification,
    token: Option<TicketId>,
    /// The token found is the customers' one (mail to the customer and
    /// their Cc'd participants): such mail may add participants.
    customers_token: bool,
    sender: Option<SenderClass>,
    files: Files,
}

async fn prepare(
    ctx: &Ctx<'_>,
    parsed: Option<mail_parser::Message<'_>>,
    facts: Inbound,
    dry_run: bool,
    trace: &mut Trace,
) -> Prepared {
    let classification = match &parsed {
        Some(m) => {
            let s = ctx.settings;
            let own: Vec<EmailAddress> = s.support_addresses().cloned().collect();
            let mark = reply_token::install_mark(s.helpdesk.secret.expose().as_bytes());
            robots::classify_own(m, facts.return_path.as_deref(), &own, Some(&mark))
        }
        None => Classification {
            kind: MailKind::Human,
            decided_by: "unparseable".into(),
            may_answer: false,
        },
    };
    trace.note_data(
        "robot",
        format!(
            "{:?} (decided by {}); automatic answers {}",
            classification.kind,
            classification.decided_by,
            if classification.may_answer {
                "allowed"
            } else {
                "never"
            }
        ),
        json!({"kind": classification.kind.name(), "decided_by": classification.decided_by,
               "may_answer": classification.may_answer}),
    );

    let secret = ctx.settings.helpdesk.secret.expose().as_bytes().to_vec();
    let found = reply_token::find_token_audience(&secret, facts.recipients(), |a| {
        ctx.settings.is_support_address(a)
    });
    let token = found.map(|(t, _)| t);
    let customers_token = matches!(found, Some((_, reply_token::Audience::Customers)));
    if found.is_none()
        && let Some(stale) = reply_token::find_unverified_token(facts.recipients(), |a| {
            ctx.settings.is_support_address(a)
        })
    {
        tracing::warn!(
            ticket = stale.0,
            "a reply token for ticket {} does not verify under the current secret: it was made under another key (has helpdesk.secret changed?) or forged; the message is threaded by its other clues",
            stale.0
        );
        trace.note(
            "threading",
            format!("a reply token names ticket {} but does not verify under the current secret (made under another key, or forged): no token", stale.0),
        );
    }
    // only the token of mail sent to agents proves an agent: customers hold
    // the other one
    let agent_token = matches!(found, Some((_, reply_token::Audience::Agents)));

    let sender = facts.from.as_ref().map(|from| {
        let auth: Vec<&str> = facts
            .authentication_results
            .iter()
            .map(String::as_str)
            .collect();
        match senders::classify_sender(
            from,
            ctx.settings.is_agent(from),
            agent_token,
            &auth,
            &ctx.settings.trust.authserv_ids,
        ) {
            SenderClass::SpoofedAgent { why } if token.is_some() => SenderClass::SpoofedAgent {
                why: format!("{why}; its reply token is the customers', not the agents'"),
            },
            class => class,
        }
    });
    trace.note_data(
        "sender",
        match &sender {
            None => "no usable From address".to_string(),
            Some(SenderClass::Customer) => "customer".to_string(),
            Some(SenderClass::Agent { proof }) => format!("authenticated agent ({proof})"),
            Some(SenderClass::SpoofedAgent { why }) => {
                format!("agent address NOT authenticated, handled as a customer: {why}")
            }
        },
        match &sender {
            None => json!({"class": null}),
            Some(SenderClass::Customer) => json!({"class": "customer"}),
            Some(SenderClass::Agent { proof }) => json!({"class": "agent", "proof": proof}),
            Some(SenderClass::SpoofedAgent { why }) => {
                json!({"class": "spoofed_agent", "why": why})
            }
        },
    );

    let files = match &parsed {
        Some(m) if !matches!(classification.kind, MailKind::Bounce(_) | MailKind::OwnMail) => {
            let is_agent = matches!(sender, Some(SenderClass::Agent { .. }));
            let parts = attachments::file_parts(m);
            if is_agent {
                // an authenticated agent's files are relayed as they are
                Files {
                    checked: parts
                        .into_iter()
                        .map(|p| (agent_file(&p), FileBytes::keep(ctx, p.bytes, dry_run)))
                        .collect(),
                }
            } else {
                check_files(ctx, parts, dry_run, trace).await
            }
        }
        _ => Files {
            checked: Vec::new(),
        },
    };
    Prepared {
        facts,
        classification,
        token,
        customers_token,
        sender,
        files,
    }
}

/// The message's changes inside `tx`: its raw bytes (rule 1 decides here),
/// then placing and acting. Sets no mailbox state.
async fn apply<R: AsRef<[u8]>>(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    raw: R,
    source: &Source,
    p: Prepared,
    trace: &mut Trace,
    dry_run: bool,
) -> anyhow::Result<Outcome> {
    let Prepared {
        facts,
        classification,
        token,
        customers_token,
        sender,
        files,
    } = p;
    let problem = facts.problem.clone();
    let inserted = tx
        .insert_raw(&NewRaw {
            dedup_key: &facts.dedup_key,
            raw: raw.as_ref(),
            received_at: ctx.now,
            mailbox: source.mailbox.as_deref(),
            imap_uid: source.uid.map(i64::from),
            problem: problem.as_deref(),
        })
        .await?;
    // stored: not needed any more (see `ingest`)
    drop(raw);
    let Some(raw_id) = inserted else {
        trace.note(
            "threading",
            "1 already seen: this message is stored already; it is not stored again",
        );
        return Ok(Outcome::AlreadySeen);
    };

    let mut job = Job {
        ctx,
        tx,
        trace: std::mem::take(trace),
        facts,
        raw_id,
        classification,
        sender,
        files,
        dry_run,
        customers_token,
        copy_notes: Vec::new(),
    };
    let outcome = job.place_and_act(token).await;
    *trace = job.trace;
    outcome
}

fn agent_file(p: &FilePart<'_>) -> Checked {
    Checked {
        filename: attachments::sanitize_filename(p.raw_name.as_deref(), p.index, None),
        extension: None,
        size: p.bytes.len() as u64,
        declared_type: p.declared_type.clone(),
        sniffed_type: None,
        refusal: None,
    }
}

/// One message being handled inside its transaction.
struct Job<'c, 'a, 't> {
    ctx: &'c Ctx<'a>,
    tx: &'t mut Tx,
    trace: Trace,
    facts: Inbound,
    raw_id: i64,
    classification: Classification,
    sender: Option<SenderClass>,
    files: Files,
    dry_run: bool,
    /// The customers' reply token of the ticket is among the recipients.
    customers_token: bool,
    /// Lines for the agents' copy (who was not added, and why).
    copy_notes: Vec<String>,
}

impl Job<'_, '_, '_> {
    async fn place_and_act(&mut self, token: Option<TicketId>) -> anyhow::Result<Outcome> {
        if matches!(self.classification.kind, MailKind::OwnMail) {
            return self.unplaced("Guichet's own mail came back: ignored").await;
        }
        if let MailKind::Bounce(report) = &self.classification.kind {
            let ids = report.original_message_ids.clone();
            return self.record_bounce(&ids).await;
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
        let existing = match placement.ticket {
            Some(t) => self.tx.ticket(t.0).await?,
            None => None,
        };

        match (&self.sender, existing) {
            // an agent's vacation responder answering a copy carries the
            // reply token too: it is recorded like any robot, never relayed
            (Some(SenderClass::Agent { .. }), Some(ticket))
                if matches!(self.classification.kind, MailKind::Human) =>
            {
                self.agent_reply(ticket, &placement).await
            }
            (_, Some(ticket)) => self.customer_reply(ticket, &placement, &from).await,
            (_, None) => {
                if matches!(self.classification.kind, MailKind::AutoReply) {
                    return self
                        .unplaced(
                            "an automatic reply that belongs to no ticket: stored raw, no ticket",
                        )
                        .await;
                }
                self.new_ticket(&from, None, Rule::New).await
            }
        }
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
                    // can write `From: agent@…`
                    let proven_agent = matches!(self.sender, Some(SenderClass::Agent { .. }));
                    let is_participant = ticket.client == from.as_str()
                        || proven_agent
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

    async fn record_bounce(&mut self, original_ids: &[String]) -> anyhow::Result<Outcome> {
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
            })
            .await
    }

    fn customer_text(&self) -> String {
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

    fn spoof_note(&self) -> Option<String> {
        match &self.sender {
            Some(SenderClass::SpoofedAgent { why }) => Some(format!(
                "From an agent address but not authenticated ({why}): handled as a customer message, not relayed"
            )),
            _ => None,
        }
    }

    /// A customer's first message: a new ticket, its acknowledgement, the
    /// agents' copy, `ticket.created`.
    async fn new_ticket(
        &mut self,
        from: &EmailAddress,
        linked_from: Option<(&TicketRow, LinkReason)>,
        rule: Rule,
    ) -> anyhow::Result<Outcome> {
        let s = self.ctx.settings;
        let department = s
            .department_for(&self.facts.recipients().cloned().collect::<Vec<_>>())
            .name
            .clone();
        let subject = if let Some((old, _)) = linked_from {
            // it continues the old ticket: its subject, not "Re: [#old] …"
            old.subject.clone()
        } else if self.facts.subject.is_empty() {
            "(no subject)".to_string()
        } else {
            self.facts.subject.clone()
        };
        let ticket = self
            .tx
            .create_ticket_row(&NewTicket {
                subject: &subject,
                department: &department,
                client: from.as_str(),
                language: s.helpdesk.language.code(),
                now: self.ctx.now,
                linked_from: linked_from.map(|(t, _)| t.id),
            })
            .await?;
        let ticket_id = ticket.id;
        self.trace.note(
            "ticket",
            format!("new ticket {ticket_id} in department {department}"),
        );
        self.tx
            .add_participant(ticket_id, from.as_str(), "customer")
            .await?;
        self.add_cc_participants(ticket_id, from).await?;
        let text = self.customer_text();
        let note = self.spoof_note();
        let kind = if matches!(self.classification.kind, MailKind::AutoReply) {
            "auto_reply"
        } else {
            "customer"
        };
        let message_row = self
            .add_message(
                ticket_id,
                "in",
                kind,
                from.as_str(),
                &text,
                rule.as_str(),
                note.as_deref(),
            )
            .await?;
        let mut data = json!({"from": from.as_str(), "rule": rule.as_str(), "message_id": self.facts.message_id});
        if let Some((old, _)) = linked_from {
            data["linked_ticket_id"] = json!(old.id);
        }
        events::emit(
            self.tx,
            s,
            EventKind::TicketCreated,
            &ticket,
            data,
            self.ctx.now,
        )
        .await?;
        self.store_files(&ticket, message_row).await?;

        let answerable = self.may_answer(from).await?;
        if answerable {
            match linked_from {
                Some((old, why)) => {
                    let (why_code, until) = match why {
                        LinkReason::ReopenDisabled => ("disabled", String::new()),
                        LinkReason::WindowExpired { deadline } => {
                            ("expired", deadline.format("%Y-%m-%d %H:%M UTC").to_string())
                        }
                    };
                    let closed_on = old
                        .closed_at
                        .map(|c| c.format("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    self.auto_reply(&ticket, from, "new_linked", json!({"old_ticket_id": old.id, "why": why_code, "reopen_until": until, "closed_on": closed_on})).await?;
                }
                None => {
                    self.auto_reply(
                        &ticket,
                        from,
                        "acknowledgement",
                        json!({"name": self.facts.from_name}),
                    )
                    .await?;
                }
            }
            self.send_refusals(&ticket, from).await?;
        }
        self.copy_to_agents(
            &ticket,
            if linked_from.is_some() {
                "New ticket (continues a closed one)"
            } else {
                "New ticket"
            },
            &text,
        )
        .await?;
        Ok(Outcome::Ticket {
            ticket_id,
            rule: rule.as_str().into(),
            created: true,
        })
    }

    /// Adds the mail's Cc'd (and other To) addresses to the ticket's
    /// participants, up to `helpdesk.max_participants` people in all; those
    /// past the cap receive nothing, and the agents' copy says so.
    async fn add_cc_participants(
        &mut self,
        ticket_id: i64,
        from: &EmailAddress,
    ) -> anyhow::Result<()> {
        let candidates = self.cc_participants(from);
        if candidates.is_empty() {
            return Ok(());
        }
        let known = self.tx.participants(ticket_id).await?;
        let cap = self.ctx.settings.helpdesk.max_participants as usize;
        let mut count = known.len();
        let mut left_out = Vec::new();
        for cc in candidates {
            if known.iter().any(|p| p.address == cc.as_str()) {
                continue;
            }
            if count >= cap {
                left_out.push(cc);
                continue;
            }
            self.tx
                .add_participant(ticket_id, cc.as_str(), "cc")
                .await?;
            count += 1;
            self.trace.note(
                "participants",
                format!("{cc} (Cc) takes part in ticket {ticket_id}"),
            );
        }
        if !left_out.is_empty() {
            let shown: Vec<&str> = left_out.iter().take(10).map(|a| a.as_str()).collect();
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
            self.trace.note("participants", line.clone());
            self.copy_notes.push(line);
        }
        Ok(())
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

    /// May an automatic reply go to this sender now? (robots, own mail,
    /// the hourly limit)
    async fn may_answer(&mut self, to: &EmailAddress) -> anyhow::Result<bool> {
        if !self.classification.may_answer {
            self.trace.note(
                "answer",
                format!(
                    "no automatic reply: {} ({})",
                    kind_name(&self.classification.kind),
                    self.classification.decided_by
                ),
            );
            return Ok(false);
        }
        let since = self.ctx.now - Duration::hours(1);
        let sent = self.tx.auto_replies_since(to.as_str(), since).await?;
        let limit = self.ctx.settings.helpdesk.max_auto_replies_per_hour;
        if !robots::may_send_auto_reply(sent.try_into().unwrap_or(u32::MAX), limit) {
            self.trace.note("answer", format!("no automatic reply: {sent} already sent to {to} in the last hour (limit {limit})"));
            return Ok(false);
        }
        Ok(true)
    }

    async fn auto_reply(
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

    fn thread_refs(&self) -> Vec<String> {
        let mut refs = self.facts.references.clone();
        if let Some(id) = &self.facts.message_id
            && !refs.contains(id)
        {
            refs.push(id.clone());
        }
        refs
    }

    /// One mail listing every refused file and why (SPEC "Attachments").
    async fn send_refusals(&mut self, ticket: &TicketRow, to: &EmailAddress) -> anyhow::Result<()> {
        let lang = self.ctx.settings.helpdesk.language;
        let refused: Vec<serde_json::Value> = self
            .files
            .refused()
            .map(|c| json!({"filename": c.filename, "reason": c.refusal.as_ref().map(|r| r.explain(lang))}))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let a = &self.ctx.settings.attachments;
        let vars = json!({"refused": refused, "allowed": a.allowed_extensions.join(", "), "max_size_mb": a.max_size_mb, "enabled": a.enabled});
        let references = self.thread_refs();
        notify::queue(
            self.tx,
            self.ctx,
            Notice {
                kind: "refused_attachments",
                template: "refused_attachments",
                ticket,
                to: vec![to.clone()],
                cc: vec![],
                automation: Automation::AutoReplied,
                vars,
                in_reply_to: self.facts.message_id.clone(),
                references,
                attachments: vec![],
            },
        )
        .await?;
        self.tx.record_auto_reply(to.as_str(), self.ctx.now).await?;
        self.trace.note_data(
            "answer",
            format!(
                "refusal notice to {to} listing {} file(s)",
                self.files.refused().count()
            ),
            sent("refused_attachments", std::slice::from_ref(to), &[]),
        );
        Ok(())
    }

    /// The customer's words (and accepted files) to the department's agents.
    async fn copy_to_agents(
        &mut self,
        ticket: &TicketRow,
        headline: &str,
        text: &str,
    ) -> anyhow::Result<()> {
        let s = self.ctx.settings;
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
                format!(
                    "{} ({})",
                    c.filename,
                    c.refusal
                        .as_ref()
                        .map(|r| r.explain(Language::En))
                        .unwrap_or_default()
                )
            })
            .collect();
        let cc: Vec<String> = self.facts.cc.iter().map(|a| a.to_string()).collect();
        // the copy is the files' last use (recorded already): their bytes
        // move into it, or are read back from the file store
        let mut attachments = Vec::new();
        for (c, bytes) in &mut self.files.checked {
            if c.refusal.is_none() {
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
        let notes: Vec<String> = self
            .spoof_note()
            .into_iter()
            .chain(self.copy_notes.iter().cloned())
            .collect();
        let note = (!notes.is_empty()).then(|| notes.join("\nNote: "));
        notify::queue(self.tx, self.ctx, Notice {
            kind: "agent_copy",
            template: "agent_copy",
            ticket,
            to: agents.clone(),
            cc: vec![],
            automation: Automation::AutoGenerated,
            vars: json!({"headline": headline, "text": text, "attachments_accepted": accepted.join(", "), "attachments_refused": refused.join("; "), "cc": cc.join(", "), "note": note}),
            in_reply_to: self.facts.message_id.clone(),
            references,
            attachments,
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

    async fn store_files(&mut self, ticket: &TicketRow, message_row: i64) -> anyhow::Result<()> {
        let dir = self.ctx.settings.attachments.storage_dir.clone();
        let lang = Language::En;
        let checked = std::mem::take(&mut self.files.checked);
        let (mut uploaded, mut rejected) = (Vec::new(), Vec::new());
        for (c, bytes) in &checked {
            let sha = match bytes {
                FileBytes::Refused => None,
                FileBytes::Stored { sha256 } => Some(sha256.clone()),
                FileBytes::Held(bytes) if !self.dry_run => Some(
                    // a full or read-only file store is a store fault:
                    // the io::Error stays in the chain for store::fault_of
                    file_store::store(&dir, bytes)
                        .with_context(|| format!("cannot store attachment {}", c.filename))?
                        .sha256,
                ),
                FileBytes::Held(bytes) => Some(
                    crate::mail::inbound::content_key(bytes)
                        .trim_start_matches("sha256:")
                        .to_string(),
                ),
            };
            let reason = c.refusal.as_ref().map(|r| r.explain(lang));
            self.tx
                .add_attachment(&NewAttachment {
                    message_id: message_row,
                    ticket_id: ticket.id,
                    filename: &c.filename,
                    extension: c.extension.as_deref(),
                    size: c.size as i64,
                    declared_type: &c.declared_type,
                    sniffed_type: c.sniffed_type.as_deref(),
                    sha256: sha.as_deref(),
                    verdict: if c.refusal.is_none() {
                        "accepted"
                    } else {
                        "refused"
                    },
                    reason_code: c.refusal.as_ref().map(|r| r.code()),
                    reason: reason.as_deref(),
                    created_at: self.ctx.now,
                })
                .await?;
            match &c.refusal {
                None => uploaded.push(json!({"filename": c.filename, "size": c.size, "sniffed_type": c.sniffed_type, "sha256": sha})),
                Some(r) => rejected.push(json!({"filename": c.filename, "size": c.size, "sniffed_type": c.sniffed_type, "reason": r.code(), "explanation": reason})),
            }
        }
        // one event of each kind for one message's files: a mail with
        // 10,000 parts is one alert in the chat channel, not 10,000
        for (kind, files) in [
            (EventKind::AttachmentUploaded, uploaded),
            (EventKind::AttachmentRejected, rejected),
        ] {
            if let Some(data) = files_event_data(files) {
                events::emit(self.tx, self.ctx.settings, kind, ticket, data, self.ctx.now).await?;
            }
        }
        self.files.checked = checked;
        Ok(())
    }

    /// A customer (or unauthenticated) message on an existing ticket.
    async fn customer_reply(
        &mut self,
        mut ticket: TicketRow,
        placement: &Placement,
        from: &EmailAddress,
    ) -> anyhow::Result<Outcome> {
        let s = self.ctx.settings;
        let rule = placement.rule;
        let robot = !matches!(self.classification.kind, MailKind::Human);
        if ticket.status().is_closed() && !robot {
            let closed_at = ticket.closed_at.unwrap_or(ticket.last_activity_at);
            match lifecycle::customer_reply_to_closed(
                closed_at,
                s.helpdesk.reopen_days,
                self.ctx.now,
            ) {
                ReplyToClosed::Reopen => {
                    self.trace.note("lifecycle", format!("ticket {} was closed on {closed_at}: within the reopen window, reopened", ticket.id));
                    ticket.set_status(TicketStatus::Open);
                    ticket.closed_at = None;
                    ticket.close_reason = None;
                    self.tx.save_ticket(&ticket).await?;
                    events::emit(
                        self.tx,
                        s,
                        EventKind::TicketReopened,
                        &ticket,
                        json!({"by": from.as_str()}),
                        self.ctx.now,
                    )
                    .await?;
                    if self.may_answer(from).await? {
                        self.auto_reply(&ticket, from, "reopened", json!({}))
                            .await?;
                    }
                }
                ReplyToClosed::OpenLinkedTicket { why } => {
                    self.trace.note("lifecycle", format!("ticket {} was closed on {closed_at}: {}, a new linked ticket is opened", ticket.id, match why { LinkReason::ReopenDisabled => "reopening is disabled".to_string(), LinkReason::WindowExpired { deadline } => format!("the reopen window ended {deadline}") }));
                    return self.new_ticket(from, Some((&ticket, why)), rule).await;
                }
            }
        }

        let text = self.customer_text();
        let note = self.spoof_note();
        let kind = match &self.classification.kind {
            MailKind::AutoReply => "auto_reply",
            MailKind::Human => "customer",
            _ => "robot",
        };
        let message_row = self
            .add_message(
                ticket.id,
                "in",
                kind,
                from.as_str(),
                &text,
                rule.as_str(),
                note.as_deref(),
            )
            .await?;
        if robot {
            self.trace.note(
                "ticket",
                format!(
                    "appended to ticket {} as {kind}: no activity, nothing sent",
                    ticket.id
                ),
            );
            self.store_files(&ticket, message_row).await?;
            return Ok(Outcome::Ticket {
                ticket_id: ticket.id,
                rule: rule.as_str().into(),
                created: false,
            });
        }
        // only mail carrying the customers' reply token may add people:
        // a forged From or a known Message-ID joins the ticket (the words
        // are kept) but never widens who receives its mail
        if self.customers_token && rule == Rule::Token {
            self.add_cc_participants(ticket.id, from).await?;
        } else if !self.cc_participants(from).is_empty() {
            let known = self.tx.participants(ticket.id).await?;
            let unproven: Vec<String> = self
                .cc_participants(from)
                .into_iter()
                .filter(|a| !known.iter().any(|p| p.address == a.as_str()))
                .map(|a| a.to_string())
                .collect();
            if !unproven.is_empty() {
                let line = format!(
                    "{} in this mail were not added to the ticket: it does not carry the ticket's reply token (rule {}), so it proves nothing about its sender",
                    unproven.join(", "),
                    rule.as_str()
                );
                self.trace.note("participants", line.clone());
                self.copy_notes.push(line);
            }
        }
        ticket.last_activity_at = self.ctx.now;
        ticket.last_message_from = "customer".into();
        if !ticket.status().is_closed() {
            ticket.set_status(TicketStatus::Open);
        }
        self.tx.save_ticket(&ticket).await?;
        self.trace.note(
            "ticket",
            format!("appended to ticket {} (rule {})", ticket.id, rule.as_str()),
        );
        events::emit(
            self.tx,
            s,
            EventKind::TicketReplied,
            &ticket,
            json!({"from": from.as_str(), "rule": rule.as_str(), "text_excerpt": excerpt(&text)}),
            self.ctx.now,
        )
        .await?;
        self.store_files(&ticket, message_row).await?;
        if self.files.refused().next().is_some() && self.may_answer(from).await? {
            self.send_refusals(&ticket, from).await?;
        }
        self.copy_to_agents(&ticket, "Customer reply", &text)
            .await?;
        Ok(Outcome::Ticket {
            ticket_id: ticket.id,
            rule: rule.as_str().into(),
            created: false,
        })
    }

    /// An authenticated agent's reply: commands, then the visible answer
    /// relayed to the customer.
    async fn agent_reply(
        &mut self,
        mut ticket: TicketRow,
        placement: &Placement,
    ) -> anyhow::Result<Outcome> {
        let s = self.ctx.settings;
        let from = self.facts.from.clone().expect("agents have a From");
        let rule = placement.rule.as_str();
        // an HTML-only reply (Outlook, Apple Mail) is read as HTML: the text
        // mail-parser generates from it has lost the quote containers
        let visible = match self.facts.html.as_deref() {
            Some(html) if self.facts.text_from_html || self.facts.text.trim().is_empty() => {
                quotes::visible_html(html)
            }
            _ => quotes::visible_text(&self.facts.text),
        };
        let block = commands::parse_commands(&visible.text);
        let answer = block.rest.trim().to_string();
        self.trace.note(
            "agent",
            format!(
                "commands {:?}; quote removed: {}; signature removed: {}; inline reply: {}",
                block.commands,
                visible.removed_quote,
                visible.removed_signature,
                visible.inline_reply
            ),
        );

        if !block.errors.is_empty() {
            let reason = block.errors.join("\n");
            return self.not_sent(&ticket, &from, &answer, rule, &reason).await;
        }
        if block.commands.contains(&Command::Note) {
            self.add_message(
                ticket.id,
                "note",
                "agent",
                from.as_str(),
                &answer,
                rule,
                Some("internal note"),
            )
            .await?;
            self.trace
                .note("agent", "internal note: recorded, not sent");
            return Ok(Outcome::Ticket {
                ticket_id: ticket.id,
                rule: rule.into(),
                created: false,
            });
        }

        let mut closing: Option<CloseReason> = None;
        for c in &block.commands {
            match c {
                Command::Priority(p) => ticket.priority = p.as_str().to_string(),
                Command::Department(name) => match s.department_named(name) {
                    Some(d) if d.name != ticket.department => {
                        let old = std::mem::replace(&mut ticket.department, d.name.clone());
                        self.tx.save_ticket(&ticket).await?;
                        events::emit(self.tx, s, EventKind::TicketEscalated, &ticket, json!({"from_department": old, "to_department": d.name, "by": from.as_str()}), self.ctx.now).await?;
                    }
                    Some(_) => {}
                    None => {
                        let known: Vec<&str> =
                            s.departments.iter().map(|d| d.name.as_str()).collect();
                        let reason = format!(
                            "#department {name}: no such department (known: {})",
                            known.join(", ")
                        );
                        return self.not_sent(&ticket, &from, &answer, rule, &reason).await;
                    }
                },
                Command::Close => closing = Some(CloseReason::Agent),
                Command::Resolve => closing = Some(CloseReason::Resolved),
                Command::Reopen => {
                    if ticket.status().is_closed() && lifecycle::agent_mail_to_closed(true) {
                        ticket.set_status(TicketStatus::Open);
                        ticket.closed_at = None;
                        ticket.close_reason = None;
                        // the inactivity clock restarts at the reopening, or
                        // the same pass's sweep would close it again at once
                        ticket.last_activity_at = self.ctx.now;
                        self.tx.save_ticket(&ticket).await?;
                        events::emit(
                            self.tx,
                            s,
                            EventKind::TicketReopened,
                            &ticket,
                            json!({"by": from.as_str()}),
                            self.ctx.now,
                        )
                        .await?;
                    }
                }
                Command::Note => {}
            }
        }

        let nothing_to_say = answer.is_empty() || visible.only_quotes;
        let mut relayed_files = Vec::with_capacity(self.files.checked.len());
        for (c, b) in &self.files.checked {
            relayed_files.push(FileToSend {
                filename: c.filename.clone(),
                content_type: c.declared_type.clone(),
                bytes: b.read(self.ctx)?,
            });
        }
        if nothing_to_say && block.commands.is_empty() {
            let reason = "Your reply held nothing but quoted text and a signature, so there was nothing to send.";
            return self.not_sent(&ticket, &from, "", rule, reason).await;
        }
        let hold = if nothing_to_say {
            None
        } else {
            self.relay_hold(&ticket, &answer).await?
        };
        if let Some(reason) = &hold {
            self.add_message(
                ticket.id,
                "note",
                "agent",
                from.as_str(),
                &answer,
                rule,
                Some(&format!("not sent: {reason}")),
            )
            .await?;
            self.agent_notice(&ticket, &from, reason).await?;
        } else if !nothing_to_say {
            let message_row = self
                .add_message(
                    ticket.id,
                    "out",
                    "agent",
                    from.as_str(),
                    &answer,
                    rule,
                    None,
                )
                .await?;
            self.relay_to_customer(&ticket, &answer, relayed_files)
                .await?;
            self.store_files(&ticket, message_row).await?;
            ticket.last_activity_at = self.ctx.now;
            ticket.last_message_from = "agent".into();
            ticket.first_agent_reply_at.get_or_insert(self.ctx.now);
            if !ticket.status().is_closed() {
                ticket.set_status(TicketStatus::AwaitingCustomer);
            }
        }
        if let Some(reason) = closing
            && !ticket.status().is_closed()
        {
            ticket.set_status(if reason == CloseReason::Resolved {
                TicketStatus::Resolved
            } else {
                TicketStatus::Closed
            });
            ticket.closed_at = Some(self.ctx.now);
            ticket.close_reason = Some(reason.as_str().into());
            self.tx.save_ticket(&ticket).await?;
            events::emit(
                self.tx,
                s,
                EventKind::TicketClosed,
                &ticket,
                json!({"reason": reason.as_str(), "by": from.as_str()}),
                self.ctx.now,
            )
            .await?;
            self.trace.note(
                "lifecycle",
                format!(
                    "ticket {} closed by {from} (reason {})",
                    ticket.id,
                    reason.as_str()
                ),
            );
        }
        self.tx.save_ticket(&ticket).await?;
        Ok(Outcome::Ticket {
            ticket_id: ticket.id,
            rule: rule.into(),
            created: false,
        })
    }

    /// Why an agent's answer must not be relayed now, if it must not: the
    /// same words as the last answer relayed on the ticket (two robots
    /// answering each other through Guichet), or the ticket's hourly
    /// limit of relays reached.
    async fn relay_hold(
        &mut self,
        ticket: &TicketRow,
        answer: &str,
    ) -> anyhow::Result<Option<String>> {
        let now = self.ctx.now;
        if let Some((last, at)) = self.tx.last_relayed_answer(ticket.id).await?
            && now - at < Duration::hours(24)
            && robots::same_words(&last, answer)
        {
            let why = format!(
                "This answer is identical to the one relayed to the customer on {}: it was not sent again. Two automatic responders answering each other look like this; to send the same words twice on purpose, change one of them.",
                at.format("%Y-%m-%d %H:%M UTC")
            );
            self.trace.note("relay", why.clone());
            return Ok(Some(why));
        }
        let limit = self.ctx.settings.helpdesk.max_relays_per_hour;
        let sent = self
            .tx
            .relays_since(ticket.id, now - Duration::hours(1))
            .await?;
        if sent >= i64::from(limit) {
            let why = format!(
                "{sent} answers were already relayed to the customer of this ticket in the last hour, the limit (helpdesk.max_relays_per_hour = {limit} per hour): this one was not sent. Send it again later if it is meant for the customer."
            );
            self.trace.note("relay", why.clone());
            return Ok(Some(why));
        }
        Ok(None)
    }

    /// An agent's mail that is not relayed: kept on the ticket as a note
    /// saying why, and the agent is told.
    async fn not_sent(
        &mut self,
        ticket: &TicketRow,
        agent: &EmailAddress,
        text: &str,
        rule: &str,
        reason: &str,
    ) -> anyhow::Result<Outcome> {
        self.add_message(
            ticket.id,
            "note",
            "agent",
            agent.as_str(),
            text,
            rule,
            Some(&format!("not sent: {reason}")),
        )
        .await?;
        self.agent_notice(ticket, agent, reason).await?;
        Ok(Outcome::Ticket {
            ticket_id: ticket.id,
            rule: rule.into(),
            created: false,
        })
    }

    async fn relay_to_customer(
        &mut self,
        ticket: &TicketRow,
        answer: &str,
        files: Vec<FileToSend>,
    ) -> anyhow::Result<()> {
        let s = self.ctx.settings;
        let client = EmailAddress::parse(&ticket.client).map_err(anyhow::Error::msg)?;
        let cc: Vec<EmailAddress> = if s.helpdesk.reply_to_participants {
            self.tx
                .participants(ticket.id)
                .await?
                .into_iter()
                .filter(|p| p.role == "cc")
                .filter_map(|p| EmailAddress::parse(&p.address).ok())
                .collect()
        } else {
            vec![]
        };
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
                )}),
                in_reply_to,
                references,
                attachments: files,
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

    async fn agent_notice(
        &mut self,
        ticket: &TicketRow,
        agent: &EmailAddress,
        reason: &str,
    ) -> anyhow::Result<()> {
        // notices are automatic mail too: an agent's robot answering each
        // notice must not keep a loop going
        let since = self.ctx.now - Duration::hours(1);
        let already = self.tx.auto_replies_since(agent.as_str(), since).await?;
        let limit = self.ctx.settings.helpdesk.max_auto_replies_per_hour;
        if !robots::may_send_auto_reply(already.try_into().unwrap_or(u32::MAX), limit) {
            self.trace.note(
                "agent",
                format!("not relayed ({reason}); no notice: {already} automatic mails already went to {agent} in the last hour (limit {limit})"),
            );
            return Ok(());
        }
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

/// Files listed in one event at most; `count` says how many there were.
const FILES_PER_EVENT: usize = 50;

/// The data of one message's `attachment.uploaded` (or `.rejected`) event:
/// `count` and `files` (each `filename`, `size`, `sniffed_type`, and
/// `sha256` or `reason`); with one file, that file's keys at the top level
/// as well, as receivers of one event per file read them. `None`: no file.
fn files_event_data(mut files: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    let count = files.len();
    let mut data = match files.first()? {
        serde_json::Value::Object(first) if count == 1 => first.clone(),
        _ => serde_json::Map::new(),
    };
    files.truncate(FILES_PER_EVENT);
    data.insert("count".into(), json!(count));
    data.insert("files".into(), json!(files));
    Some(serde_json::Value::Object(data))
}

fn kind_name(k: &MailKind) -> &'static str {
    match k {
        MailKind::Human => "human",
        MailKind::OwnMail => "Guichet's own mail",
        MailKind::Bounce(_) => "a delivery report",
        MailKind::AutoReply => "an automatic reply",
        MailKind::AutoGenerated => "automatic mail",
        MailKind::Bulk => "bulk mail",
        MailKind::ListMail => "mailing-list mail",
        MailKind::RobotSender => "a robot sender",
    }
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(280).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// Last resort when [`ingest`] fails on a message (a bug, or a store
/// error that went away): keep its bytes with the error, so that nothing is
/// lost and `tickets problems` shows it, and let the mailbox move on.
pub async fn store_unhandled(
    ctx: &Ctx<'_>,
    raw: &[u8],
    source: &Source,
    problem: &str,
) -> anyhow::Result<Outcome> {
    let facts = Inbound::parse(raw);
    let mut tx = ctx.store.begin().await?;
    let problem = format!("could not be handled: {problem}");
    let inserted = tx
        .insert_raw(&NewRaw {
            dedup_key: &facts.dedup_key,
            raw,
            received_at: ctx.now,
            mailbox: source.mailbox.as_deref(),
            imap_uid: source.uid.map(i64::from),
            problem: Some(&problem),
        })
        .await?;
    if let (Some(mb), Some(uid), Some(v)) = (&source.mailbox, source.uid, source.uid_validity) {
        tx.set_mailbox_state(mb, i64::from(v), i64::from(uid))
            .await?;
    }
    tx.commit().await?;
    Ok(match inserted {
        Some(_) => Outcome::Unplaced { problem },
        None => Outcome::AlreadySeen,
    })
}
