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
//!
//! - this file: the entry points ([`ingest`], [`ingest_batch`]), preparing
//!   a message outside the transaction, and storing it raw;
//! - [`job`]: one message inside its transaction, from facts to the
//!   applied plan;
//! - [`mails`]: the mail a plan sends, rendered and queued;
//! - [`files`]: the attachment gate's checks and the file store's writes;
//! - [`customer`]: who the customer is (contact forms, forwards).

mod customer;
mod files;
mod job;
mod mails;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::domain::{EmailAddress, TicketId};
use crate::mail::inbound::Inbound;
use crate::rules::attachments::{self, Checked, FilePart};
use crate::rules::lifecycle;
use crate::rules::reply_token;
use crate::rules::robots::{self, Classification, MailKind};
use crate::rules::senders::{self, SenderClass};
use crate::store::{NewRaw, Tx};

use super::Ctx;
use files::{FileBytes, Files, check_files};
use job::Job;

/// Where a message came from (for the mailbox's last UID and the raw row).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub mailbox: Option<String>,
    pub uid: Option<u32>,
    pub uid_validity: Option<u32>,
    /// When the server received it (IMAP INTERNALDATE).
    pub arrived_at: Option<DateTime<Utc>>,
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

/// Options of one ingest: `dry_run` writes no file (explain); `import`
/// sends nothing and fires no event (`guichet import`: history).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub dry_run: bool,
    pub import: bool,
}

/// Ingests one message. Idempotent: the same bytes twice are one message.
/// Given the bytes themselves (not a reference), it drops them once they
/// are stored, before building the mail the message causes: a big
/// message is then not held while its agents' copy is built.
///
/// A panic anywhere in parsing, the gate or the decision is caught and
/// returned as this message's error (the caller stores it raw with it and
/// goes on): one message must never stop the mailbox.
pub async fn ingest<R: AsRef<[u8]>>(
    ctx: &Ctx<'_>,
    raw: R,
    source: &Source,
    opts: Options,
) -> anyhow::Result<(Outcome, Trace)> {
    use futures::FutureExt;
    use tracing::Instrument;
    let span = message_span(source);
    let result = std::panic::AssertUnwindSafe(ingest_unguarded(ctx, raw, source, opts))
        .catch_unwind()
        .instrument(span)
        .await
        .unwrap_or_else(|p| Err(panicked(p)));
    if let (Ok((outcome, _)), false) = (&result, opts.dry_run) {
        log_outcome(outcome, source);
    }
    result
}

/// The span of one message: every line logged while it is handled (the
/// antivirus, a stale reply token…) carries its mailbox and UID.
fn message_span(source: &Source) -> tracing::Span {
    tracing::info_span!(
        "message",
        mailbox = source.mailbox.as_deref(),
        uid = source.uid
    )
}

/// One line per message taken: its ticket, mailbox and UID.
fn log_outcome(outcome: &Outcome, source: &Source) {
    let mailbox = source.mailbox.as_deref();
    let uid = source.uid;
    match outcome {
        Outcome::Ticket {
            ticket_id,
            rule,
            created,
        } => tracing::info!(
            ticket = *ticket_id,
            mailbox,
            uid,
            created = *created,
            rule = rule.as_str(),
            "message stored on its ticket"
        ),
        Outcome::Unplaced { problem } => tracing::warn!(
            mailbox,
            uid,
            problem = problem.as_str(),
            "message stored raw, on no ticket (`guichet tickets problems`)"
        ),
        Outcome::AlreadySeen => {
            tracing::debug!(mailbox, uid, "message already stored")
        }
    }
}

/// The error for a caught panic, with its message.
fn panicked(payload: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    anyhow::anyhow!(
        "Guichet panicked while handling this message (a bug; please report it): {text}"
    )
}

async fn ingest_unguarded<R: AsRef<[u8]>>(
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

    let mut prepared = prepare(ctx, parsed, facts, opts.dry_run, &mut trace).await;
    prepared.files.settle().await;
    let mut tx = ctx.store.begin().await?;
    let outcome = apply(ctx, &mut tx, raw, source, prepared, &mut trace, opts).await?;
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
    use futures::FutureExt;
    let result = std::panic::AssertUnwindSafe(ingest_batch_unguarded(ctx, items))
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(panicked(p)));
    if let Ok(outcomes) = &result {
        for (outcome, item) in outcomes.iter().zip(items) {
            log_outcome(outcome, &item.source);
        }
    }
    result
}

async fn ingest_batch_unguarded(
    ctx: &Ctx<'_>,
    items: &[BatchItem<'_>],
) -> anyhow::Result<Vec<Outcome>> {
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
    // a few messages at once: while one waits for the antivirus, the
    // next is read (clamd scans several files at once); in order
    let mut waiting = Vec::with_capacity(items.len());
    for ((facts, message), item) in facts.into_iter().zip(parsed).zip(items) {
        let seen = known.contains(&facts.dedup_key);
        waiting.push(async move {
            use tracing::Instrument;
            if seen {
                return None;
            }
            let mut trace = Trace::default();
            Some(
                prepare(ctx, message, facts, false, &mut trace)
                    .instrument(message_span(&item.source))
                    .await,
            )
        });
    }
    let mut prepared = Vec::with_capacity(waiting.len());
    let mut waiting = waiting.into_iter();
    let mut running: futures::stream::FuturesOrdered<_> =
        waiting.by_ref().take(PREPARED_AT_ONCE).collect();
    while let Some(p) = futures::StreamExt::next(&mut running).await {
        prepared.push(p);
        if let Some(next) = waiting.next() {
            running.push_back(next);
        }
    }

    // the batch's files, written meanwhile, are on disk before its
    // transaction names them
    for p in prepared.iter_mut().flatten() {
        p.files.settle().await;
    }
    let mut tx = ctx.store.begin().await?;
    let mut outcomes = Vec::with_capacity(items.len());
    for (item, p) in items.iter().zip(prepared) {
        outcomes.push(match p {
            None => Outcome::AlreadySeen,
            Some(p) => {
                use tracing::Instrument;
                let mut trace = Trace::default();
                apply(
                    ctx,
                    &mut tx,
                    item.raw,
                    &item.source,
                    p,
                    &mut trace,
                    Options::default(),
                )
                .instrument(message_span(&item.source))
                .await?
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

/// How many messages of a batch are prepared at once (see
/// `ingest_batch_unguarded`): as many as the antivirus scans at once by
/// default (clamd's `MaxThreads` is 10; the mail rig's 4).
const PREPARED_AT_ONCE: usize = 4;

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
    /// The agent who forwarded the customer's message, when it is one.
    forwarded_by: Option<EmailAddress>,
}

async fn prepare(
    ctx: &Ctx<'_>,
    parsed: Option<mail_parser::Message<'_>>,
    mut facts: Inbound,
    dry_run: bool,
    trace: &mut Trace,
) -> Prepared {
    // test hook: a bug in the handling of one message, as a panic
    if let Some(word) = std::env::var_os("GUICHET_TEST_PANIC_ON")
        && facts.subject.contains(word.to_string_lossy().as_ref())
    {
        panic!("test panic on {:?}", facts.subject);
    }
    let mut classification = match &parsed {
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
    // who the customer is: the sender, or the person a named contact
    // form writes for (issue 20)
    customer::form(ctx, &mut facts, &mut classification, trace);
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

    let mut sender = facts.from.as_ref().map(|from| {
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

    // a proven agent forwarding a customer's message: the ticket is the
    // original sender's (issue 20)
    let forwarded_by = customer::agent_forward(
        ctx,
        parsed.as_ref(),
        &mut facts,
        &mut classification,
        &mut sender,
        token,
        trace,
    );
    let files = match &parsed {
        Some(m) if !matches!(classification.kind, MailKind::Bounce(_) | MailKind::OwnMail) => {
            let is_agent = matches!(sender, Some(SenderClass::Agent { .. }));
            let (parts, others) = files::sort_parts(m, is_agent, trace);
            if is_agent {
                // an authenticated agent's files are relayed as they are
                let mut checked = Vec::with_capacity(parts.len());
                for (p, _) in parts {
                    let file = agent_file(&p);
                    checked.push((file, FileBytes::keep(ctx, p.bytes, dry_run)));
                }
                Files { checked, others }
            } else {
                Files {
                    others,
                    ..check_files(ctx, parts, dry_run, trace).await
                }
            }
        }
        _ => Files {
            checked: Vec::new(),
            others: Vec::new(),
        },
    };
    Prepared {
        facts,
        classification,
        token,
        customers_token,
        sender,
        files,
        forwarded_by,
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
    opts: Options,
) -> anyhow::Result<Outcome> {
    let Prepared {
        facts,
        classification,
        token,
        customers_token,
        sender,
        files,
        forwarded_by,
    } = p;
    let problem = facts.problem.clone();
    let inserted = tx
        .insert_raw(&NewRaw {
            dedup_key: &facts.dedup_key,
            raw: raw.as_ref(),
            received_at: ctx.now,
            mailbox: source.mailbox.as_deref(),
            imap_uid: source.uid.map(i64::from),
            uid_validity: source.uid_validity.map(i64::from),
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

    let quiet = quiet_reason(ctx, &facts, source, opts);
    let dry_run = opts.dry_run;
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
        quiet,
        forwarded_by,
        // `[[mailboxes]] department`: a new ticket from that mailbox goes
        // there whatever its recipients say
        feeds: source.mailbox.as_deref().and_then(|key| {
            ctx.settings
                .mailboxes
                .iter()
                .find(|m| m.imap.checkpoint_key() == key)
                .and_then(|m| m.department.clone())
        }),
    };
    let outcome = job.place_and_act(token).await;
    *trace = job.trace;
    outcome
}

/// Why a message must cause no mail and no webhook event: it is imported
/// history, or older than `helpdesk.old_mail_days` (by the server's
/// arrival date, else its Date header).
fn quiet_reason(ctx: &Ctx<'_>, facts: &Inbound, source: &Source, opts: Options) -> Option<String> {
    if opts.import {
        return Some("imported history (guichet import)".into());
    }
    let received = source.arrived_at.or(facts.date)?;
    // by the real clock, never `--now`: a test or dry run that moves the
    // clock days ahead still meets the mail it delivered as new mail
    lifecycle::too_old_for_automatic_mail(received, ctx.settings.helpdesk.old_mail_days, Utc::now())
}

fn agent_file(p: &FilePart<'_>) -> Checked {
    Checked {
        filename: attachments::sanitize_filename(p.raw_name.as_deref(), p.index, None),
        extension: None,
        size: p.bytes.len() as u64,
        declared_type: p.declared_type.clone(),
        sniffed_type: None,
        refusal: None,
        body_image: false,
        content_id: None,
    }
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
            uid_validity: source.uid_validity.map(i64::from),
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
