//! A message's files: the attachment gate's verdicts before the
//! transaction, their bytes, and their rows and events inside it.

use anyhow::Context as _;
use serde_json::json;

use crate::adapters::{clamd, file_store};
use crate::domain::EventKind;
use crate::rules::attachments::roles::{self, Role};
use crate::rules::attachments::{self, Checked, FilePart, Policy as FilePolicy, Refusal};
use crate::settings::Language;
use crate::store::{NewAttachment, TicketRow};

use super::{Job, Trace};
use crate::workers::{Ctx, events, notify};

/// The attachment verdicts of a message, decided before the transaction
/// (scanning may take a while; the database is not held meanwhile).
pub(super) struct Files {
    pub(super) checked: Vec<(Checked, FileBytes)>,
    /// The parts that are not files (signatures, invitations…).
    pub(super) others: Vec<OtherPart>,
}

/// A part of the message that is no file (see [`roles`]).
pub(super) struct OtherPart {
    pub(super) name: String,
    pub(super) role: Role,
}

impl OtherPart {
    /// What the agents' copy says of it, if anything.
    pub(super) fn note(&self) -> Option<String> {
        match &self.role {
            Role::Signature(kind) => Some(format!(
                "The customer signed this message ({}); the signature was not checked.",
                kind.name()
            )),
            Role::Encrypted(kind) => Some(format!(
                "This message is encrypted ({}): Guichet cannot read it. The original is kept as received (guichet tickets show).",
                kind.name()
            )),
            Role::ContactCard { name } => Some(format!(
                "Contact card (vCard, {}): {}.",
                self.name,
                name.as_deref().unwrap_or("(no name)")
            )),
            Role::Invitation(i) => Some(format!("Invitation ({}): {}.", self.name, i.describe())),
            _ => None,
        }
    }
}

/// What `role` means, for `guichet explain`.
fn taken_for(role: &Role) -> &'static str {
    match role {
        Role::File => "a file the customer attached: the attachment policy applies",
        Role::BodyImage => {
            "an image of the body (referenced by cid: from the HTML): judged by content, size and antivirus; a refusal is not told to the customer"
        }
        Role::MessageBody => {
            "the body a winmail.dat carries: judged by the file policy and antivirus; a refusal is not told to the customer"
        }
        Role::TinyImage => "a tracking pixel or spacer (a tiny body image): dropped",
        Role::Signature(_) => {
            "a signature: not a file (never gated, stored or listed); the message is noted as signed"
        }
        Role::EncryptionControl => "the control part of an encryption wrapper: not a file",
        Role::Encrypted(_) => {
            "an encrypted body Guichet cannot read: kept raw with the message; the agents are told"
        }
        Role::ClientFooter => {
            "a footer the sender's mail server added (Exchange ATT00001): not a file"
        }
        Role::ContactCard { .. } => {
            "the sender's contact card: not a file; the agents' copy names it"
        }
        Role::Invitation(_) => {
            "a calendar invitation: not a file; the agents' copy gives its title and time"
        }
    }
}

/// The message's parts sorted by what they are taken for: the files to
/// gate (each with "is a body image"), and the others. `for_agent`: an
/// authenticated agent's contact cards and invitations are relayed as
/// files.
pub(super) fn sort_parts<'m>(
    m: &'m mail_parser::Message<'m>,
    for_agent: bool,
    trace: &mut Trace,
) -> (Vec<(FilePart<'m>, bool)>, Vec<OtherPart>) {
    let cids = attachments::body_cids(m);
    let encrypted = attachments::is_encrypted(m);
    let (mut files, mut others) = (Vec::new(), Vec::new());
    for part in attachments::file_parts(m) {
        let role = roles::role_of(&part, &cids, encrypted);
        let name = part
            .raw_name
            .clone()
            .unwrap_or_else(|| format!("part {}", part.index));
        if !matches!(role, Role::File) {
            trace.note_data(
                "part",
                format!("{name} ({}): {}", part.declared_type, taken_for(&role)),
                json!({"name": name, "declared_type": part.declared_type, "taken_for": format!("{role:?}")}),
            );
        }
        match role {
            Role::File => files.push((part, false)),
            Role::BodyImage | Role::MessageBody => files.push((part, true)),
            Role::ContactCard { .. } | Role::Invitation(_) if for_agent => {
                files.push((part, false))
            }
            role => others.push(OtherPart { name, role }),
        }
    }
    (files, others)
}

/// Where an accepted file's bytes are. Accepted files are written to the
/// (content-addressed) file store as soon as they pass the gate, so that
/// the parsed message, which holds them decoded, can be dropped: a mail
/// that carries them reads them back. A dry run writes nothing and keeps
/// them; a write that failed is tried again (and fails the message) when
/// the message's files are recorded.
pub(super) enum FileBytes {
    Refused,
    Stored {
        sha256: String,
    },
    Held(Vec<u8>),
    /// Being written (see [`FileBytes::keep`]).
    Writing {
        task: tokio::task::JoinHandle<std::io::Result<file_store::StoredFile>>,
        bytes: std::sync::Arc<Vec<u8>>,
    },
}

/// From this size on, a borrowed file is written where it is (see
/// [`FileBytes::keep`]).
const WRITTEN_IN_PLACE_FROM: usize = 1 << 20;

/// Runs `work`, which blocks, on this thread: the runtime moves its other
/// tasks elsewhere meanwhile (a single-threaded runtime, in tests, just
/// waits).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

impl FileBytes {
    /// The write (two fsyncs) starts on a blocking thread and is waited
    /// for by [`Files::settle`], before the message's transaction: the
    /// files of a whole batch are written at once (the file system
    /// commits their fsyncs together) while the next messages are
    /// prepared, and no async thread waits for the disk. Decoded bytes
    /// are owned already; others are copied once.
    ///
    /// A big file that is borrowed (from the parsed message) is written
    /// at once from where it is, on this thread: a copy of it would be
    /// in memory beside the message and its decoded form (a 25 MB file
    /// took 3.3 times its size at peak, issue 17).
    pub(super) fn keep(
        ctx: &Ctx<'_>,
        bytes: std::borrow::Cow<'_, [u8]>,
        dry_run: bool,
    ) -> FileBytes {
        if let std::borrow::Cow::Borrowed(borrowed) = bytes
            && !dry_run
            && borrowed.len() >= WRITTEN_IN_PLACE_FROM
        {
            let dir = &ctx.settings.attachments.storage_dir;
            return match blocking(|| file_store::store(dir, borrowed)) {
                Ok(stored) => FileBytes::Stored {
                    sha256: stored.sha256,
                },
                // tried again when the message's files are recorded
                Err(_) => FileBytes::Held(borrowed.to_vec()),
            };
        }
        let bytes = bytes.into_owned();
        if dry_run {
            return FileBytes::Held(bytes);
        }
        let dir = ctx.settings.attachments.storage_dir.clone();
        let bytes = std::sync::Arc::new(bytes);
        let shared = std::sync::Arc::clone(&bytes);
        let task = tokio::task::spawn_blocking(move || file_store::store(&dir, &shared));
        FileBytes::Writing { task, bytes }
    }

    /// Once its write is done: stored, or held (to be tried again when
    /// the message's files are recorded).
    async fn settled(self) -> FileBytes {
        let FileBytes::Writing { task, bytes } = self else {
            return self;
        };
        match task.await {
            Ok(Ok(stored)) => FileBytes::Stored {
                sha256: stored.sha256,
            },
            _ => FileBytes::Held(
                std::sync::Arc::try_unwrap(bytes).unwrap_or_else(|shared| shared.to_vec()),
            ),
        }
    }

    /// The bytes, for a mail that carries the file, when that mail is
    /// their last use: taken when held, else read back from the store.
    pub(super) fn take(&mut self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<u8>> {
        match self {
            FileBytes::Held(bytes) => Ok(std::mem::take(bytes)),
            _ => self.read(ctx),
        }
    }

    /// A copy of the bytes: of those held, else read from the store.
    pub(super) fn read(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<u8>> {
        match self {
            FileBytes::Refused => Ok(Vec::new()),
            FileBytes::Held(bytes) => Ok(bytes.clone()),
            FileBytes::Writing { bytes, .. } => Ok(bytes.to_vec()),
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
    /// Waits for the writes [`FileBytes::keep`] started.
    pub(super) async fn settle(&mut self) {
        for (_, bytes) in &mut self.checked {
            let pending = std::mem::replace(bytes, FileBytes::Refused);
            *bytes = pending.settled().await;
        }
    }
    pub(super) fn accepted(&self) -> impl Iterator<Item = &(Checked, FileBytes)> {
        self.checked.iter().filter(|(c, _)| c.refusal.is_none())
    }
    pub(super) fn refused(&self) -> impl Iterator<Item = &Checked> {
        self.checked
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.refusal.is_some())
    }
    /// How the message was signed, if it was.
    pub(super) fn signed(&self) -> Option<&'static str> {
        self.others.iter().find_map(|o| match o.role {
            Role::Signature(kind) => Some(kind.name()),
            _ => None,
        })
    }
    /// The refused files the customer is told of (not body images).
    pub(super) fn refused_loudly(&self) -> impl Iterator<Item = &Checked> {
        self.refused().filter(|c| c.refused_loudly())
    }
}

pub(super) async fn check_files(
    ctx: &Ctx<'_>,
    parts: Vec<(FilePart<'_>, bool)>,
    dry_run: bool,
    trace: &mut Trace,
) -> Files {
    let a = &ctx.settings.attachments;
    let policy = FilePolicy {
        enabled: a.enabled,
        max_size_bytes: a.max_size_bytes(),
        allowed_extensions: &a.allowed_extensions,
    };
    let mut checked = Vec::new();
    let max_files = a.max_files;
    for (n, (part, body_image)) in parts.into_iter().enumerate() {
        let mut c = if body_image {
            attachments::check_body_part(&policy, &part)
        } else if n < max_files as usize {
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
                Some(r) if c.body_image => format!(
                    "{} ({} bytes, part of the body): refused quietly (the customer is not told), {}",
                    c.filename,
                    c.size,
                    r.explain(Language::En)
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
    Files {
        checked,
        others: Vec::new(),
    }
}

impl Job<'_, '_, '_> {
    pub(super) async fn store_files(
        &mut self,
        ticket: &TicketRow,
        message_row: i64,
    ) -> anyhow::Result<()> {
        let dir = self.ctx.settings.attachments.storage_dir.clone();
        let lang = notify::ticket_language(ticket, self.ctx.settings);
        let checked = std::mem::take(&mut self.files.checked);
        let (mut uploaded, mut rejected) = (Vec::new(), Vec::new());
        for (c, bytes) in &checked {
            let held = match bytes {
                FileBytes::Held(bytes) => Some(bytes.as_slice()),
                // not settled (see `Files::settle`): written again below
                FileBytes::Writing { bytes, .. } => Some(bytes.as_slice()),
                FileBytes::Refused | FileBytes::Stored { .. } => None,
            };
            let sha = match (bytes, held) {
                (FileBytes::Stored { sha256 }, _) => Some(sha256.clone()),
                (_, Some(bytes)) if !self.dry_run => Some(
                    // a full or read-only file store is a store fault:
                    // the io::Error stays in the chain for store::fault_of
                    file_store::store(&dir, bytes)
                        .with_context(|| format!("cannot store attachment {}", c.filename))?
                        .sha256,
                ),
                (_, Some(bytes)) => Some(
                    crate::mail::inbound::content_key(bytes)
                        .trim_start_matches("sha256:")
                        .to_string(),
                ),
                (_, None) => None,
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
            if self.quiet.is_some() {
                continue;
            }
            if let Some(data) = files_event_data(files) {
                events::emit(self.tx, self.ctx.settings, kind, ticket, data, self.ctx.now).await?;
                self.trace
                    .note_data("event", kind.as_str(), json!({"event": kind.as_str()}));
            }
        }
        self.files.checked = checked;
        Ok(())
    }
}

/// Files listed in one event at most; `count` says how many there were.
const FILES_PER_EVENT: usize = 50;

/// The data of one message's `attachment.uploaded` (or `.rejected`) event:
/// `count` and `files` (each `filename`, `size`, `sniffed_type`, and
/// `sha256` or `reason`); with one file, that file's keys at the top level
/// as well, as receivers of one event per file read them. `None`: no file.
pub(super) fn files_event_data(mut files: Vec<serde_json::Value>) -> Option<serde_json::Value> {
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
