//! One pass over the mailbox: what to take (the checkpoint, a first
//! contact's history, the catch-up, the repair of unflagged messages),
//! then fetch, ingest in batches and flag once committed. Also the
//! passes that change nothing (`run --once --dry-run`) or send nothing
//! (`guichet import`). The loops that run passes are in [`super::daemon`].

use std::time::Duration as StdDuration;

use anyhow::Context;
use tokio::sync::watch;

use crate::adapters::imap::{FetchedMail, Mailbox};
use crate::rules::fetching::{
    BeforeStoring, EarlierFacts, before_storing, counts_as_attempt, gives_up,
};
use crate::settings::{FirstStart, ImapSettings, Settings};
use crate::store::fault_of;

use super::daemon::Runtime;
use super::ingest::{self, BatchItem, Options, Outcome, Source};

/// What a pass over the mailbox did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PassReport {
    pub fetched: usize,
    pub new_tickets: usize,
    pub appended: usize,
    pub already_seen: usize,
    pub unplaced: usize,
    /// Messages a first contact left as history.
    pub left_as_history: usize,
    /// Messages the server would not give, recorded as problems.
    pub unfetchable: usize,
}

impl PassReport {
    /// Adds another mailbox's pass.
    pub fn add(&mut self, o: PassReport) {
        self.fetched += o.fetched;
        self.new_tickets += o.new_tickets;
        self.appended += o.appended;
        self.already_seen += o.already_seen;
        self.unplaced += o.unplaced;
        self.left_as_history += o.left_as_history;
        self.unfetchable += o.unfetchable;
    }

    /// One log line with every count: `what` says which pass.
    pub fn log(&self, what: &'static str) {
        tracing::info!(
            fetched = self.fetched,
            new_tickets = self.new_tickets,
            appended = self.appended,
            already_seen = self.already_seen,
            unplaced = self.unplaced,
            left_as_history = self.left_as_history,
            unfetchable = self.unfetchable,
            "{what}"
        );
    }
}

/// The mailbox's name in the store, the logs and the metrics.
pub fn mailbox_key(s: &Settings) -> String {
    s.imap.checkpoint_key()
}

/// The `first_start` of the mailbox whose checkpoint is `key`.
fn first_start_of(s: &Settings, key: &str) -> FirstStart {
    s.mailboxes
        .iter()
        .find(|m| m.imap.checkpoint_key() == key)
        .map_or(s.imap.first_start, |m| m.imap.first_start)
}

/// One pass over the mailbox: repair flags left by a crash, then ingest
/// every message after the last UID, in batches of one transaction each,
/// flagging them once committed.
pub async fn mailbox_pass(
    rt: &Runtime,
    imap: &ImapSettings,
    mailbox: &mut Mailbox,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<PassReport> {
    let passed = pass_in_order(rt, imap, mailbox, shutdown).await;
    if passed.is_err() {
        // what this pass claimed is free at once for another daemon (or
        // this one's next pass), which takes it in UID order
        let (key, validity) = (imap.checkpoint_key(), i64::from(mailbox.uid_validity()));
        if let Err(e) = rt.store.release_uids(&key, validity, None).await {
            tracing::warn!(mailbox = %key, error = format!("{e:#}"),
                "cannot give back this pass's claims; they run out by themselves");
        }
    }
    passed
}

async fn pass_in_order(
    rt: &Runtime,
    imap: &ImapSettings,
    mailbox: &mut Mailbox,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<PassReport> {
    let key = imap.checkpoint_key();
    let validity = mailbox.uid_validity();
    let mut report = PassReport::default();
    let selection = select(rt, mailbox, &key, validity).await?;
    if let Some(first) = &selection.first_contact {
        tracing::info!(
            mailbox = %key,
            first_start = imap.first_start.as_str(),
            "first contact with this mailbox: {} message(s) taken, {} left as history (imap.first_start = {:?})",
            selection.take.len(),
            first.left_alone,
            imap.first_start.as_str()
        );
        if first.checkpoint {
            rt.store
                .first_checkpoint(
                    &key,
                    i64::from(validity),
                    i64::from(first.last_uid),
                    i64::from(first.catch_up_from),
                )
                .await?;
        }
        report.left_as_history = first.left_alone;
    }
    // committed but not flagged (a crash between the two): flag them now,
    // only those really stored (history left on a first start is not)
    if !selection.unmarked_stored.is_empty() {
        mailbox.mark_processed(&selection.unmarked_stored).await?;
    }
    // messages whose FETCH failed before are fetched alone, last
    let known = rt.store.fetch_failures(&key, i64::from(validity)).await?;
    let news: Vec<(u32, u32)> = selection
        .take
        .into_iter()
        .filter(|(uid, _)| known.binary_search_by_key(uid, |k| k.0).is_err())
        .collect();
    let mut fetching = Fetching {
        key: &key,
        validity,
        suspects: known,
        fetched_any: false,
        open: if rt.store.is_shared() {
            news.iter().map(|(uid, _)| *uid).collect()
        } else {
            // one daemon: its own pass goes in UID order
            std::collections::BTreeSet::new()
        },
    };
    let mut groups = fetch_groups(&news).into_iter().peekable();
    let mut next = match groups.next() {
        Some(group) => Some((group, fetching.group(rt, mailbox, group).await?)),
        None => None,
    };
    while let Some((group, mails)) = next.take() {
        if *shutdown.borrow() {
            break;
        }
        if is_big(group) {
            // alone, and nothing fetched meanwhile: see `ingest_big`
            let uids: Vec<u32> = mails.iter().map(|m| m.uid).collect();
            if let Some(&first) = uids.first() {
                fetching
                    .settle_earlier(rt, mailbox, first, shutdown, &mut report)
                    .await?;
            }
            let done = ingest_big(rt, mailbox, &key, validity, mails, &mut report).await?;
            mailbox.mark_processed(&done).await?;
            rt.store
                .release_uids(&key, i64::from(validity), Some(&uids))
                .await?;
            fetching.done(&done);
            next = match groups.next() {
                Some(group) => Some((group, fetching.group(rt, mailbox, group).await?)),
                None => None,
            };
            continue;
        }
        // the next group comes over IMAP while this one is ingested,
        // unless it is a big message (fetched once this one is done)
        let following = groups.next_if(|g| !is_big(g));
        // stored in UID order across daemons (see `settle_earlier`)
        let uids: Vec<u32> = mails.iter().map(|m| m.uid).collect();
        if let Some(&first) = uids.first() {
            fetching
                .settle_earlier(rt, mailbox, first, shutdown, &mut report)
                .await?;
        }
        let (fetched, ingested) = tokio::join!(
            async {
                match following {
                    Some(group) => fetching
                        .group(rt, mailbox, group)
                        .await
                        .map(|mails| Some((group, mails))),
                    None => Ok(None),
                }
            },
            ingest_chunk(rt, &key, validity, &mails, shutdown, &mut report)
        );
        let done = ingested?;
        mailbox.mark_processed(&done).await?;
        rt.store
            .release_uids(&key, i64::from(validity), Some(&uids))
            .await?;
        fetching.done(&done);
        next = match fetched? {
            Some(fetched) => Some(fetched),
            None => match groups.next() {
                Some(group) => Some((group, fetching.group(rt, mailbox, group).await?)),
                None => None,
            },
        };
    }
    // what this pass claimed and did not store (a stop, a failed FETCH)
    // is left to the next pass, of whichever daemon
    rt.store
        .release_uids(&key, i64::from(validity), None)
        .await?;
    fetching.alone(rt, mailbox, shutdown, &mut report).await?;
    Ok(report)
}

/// How long a daemon holds the UIDs it claimed before fetching them
/// (`Store::claim_uids`): long enough to fetch, prepare and commit a
/// group of big messages; a dead daemon's UIDs are taken again after it.
const FETCH_CLAIM: chrono::Duration = chrono::Duration::minutes(5);

/// The FETCHes of one pass, and what failed.
struct Fetching<'a> {
    key: &'a str,
    validity: u32,
    /// `(uid, attempts)` to fetch alone at the end of the pass (a FETCH
    /// with them failed).
    suspects: Vec<(u32, i64)>,
    /// The server gave at least one message in this pass.
    fetched_any: bool,
    /// On a shared mailbox, the UIDs this pass selected that are not yet
    /// known to be done, by any daemon (see [`Fetching::settle_earlier`]).
    open: std::collections::BTreeSet<u32>,
}

impl Fetching<'_> {
    /// FETCHes a group. When the server refuses it (NO) or does not answer
    /// in time, its UIDs are noted to be fetched alone (in this pass when
    /// the connection is still usable, else in the next), so that one
    /// message the server cannot read does not fail the others.
    async fn group(
        &mut self,
        rt: &Runtime,
        mailbox: &mut Mailbox,
        group: &[(u32, u32)],
    ) -> anyhow::Result<Vec<FetchedMail>> {
        // on a shared database, only the UIDs no other daemon holds
        let now = chrono::Utc::now();
        let uids = rt
            .store
            .claim_uids(
                self.key,
                i64::from(self.validity),
                &uids_of(group),
                now,
                now + FETCH_CLAIM,
            )
            .await?;
        self.fetch_claimed(rt, mailbox, &uids).await
    }

    /// FETCHes UIDs this daemon claimed (see [`Fetching::group`]).
    async fn fetch_claimed(
        &mut self,
        rt: &Runtime,
        mailbox: &mut Mailbox,
        uids: &[u32],
    ) -> anyhow::Result<Vec<FetchedMail>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        match mailbox.fetch(uids).await {
            Ok(mails) => {
                self.fetched_any |= !mails.is_empty();
                Ok(mails)
            }
            Err(e) if e.may_be_the_message() => {
                tracing::warn!(
                    mailbox = %self.key,
                    first_uid = uids.first().copied().unwrap_or(0),
                    last_uid = uids.last().copied().unwrap_or(0),
                    count = uids.len(),
                    error = %e,
                    "FETCH failed; these messages will be fetched one by one"
                );
                let now = chrono::Utc::now();
                for &uid in uids {
                    rt.store
                        .record_fetch_failure(
                            self.key,
                            i64::from(self.validity),
                            uid,
                            false,
                            &e.to_string(),
                            now,
                        )
                        .await?;
                }
                self.suspects.extend(uids.iter().map(|&uid| (uid, 0)));
                if e.connection_usable() {
                    Ok(Vec::new())
                } else {
                    Err(e.into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// UIDs this daemon stored and flagged: no later group waits for them.
    fn done(&mut self, uids: &[u32]) {
        for uid in uids {
            self.open.remove(uid);
        }
    }

    /// On a mailbox shared with other daemons, before this daemon stores
    /// messages from UID `first` on: every earlier message it selected is
    /// stored first, by whichever daemon (`rules::fetching::before_storing`).
    /// It waits while another daemon holds earlier ones, and takes itself
    /// those nobody holds nor stored (a dead daemon's, given back). Returns
    /// at once on SQLite, or when asked to stop.
    async fn settle_earlier(
        &mut self,
        rt: &Runtime,
        mailbox: &mut Mailbox,
        first: u32,
        shutdown: &watch::Receiver<bool>,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let (key, validity) = (self.key, i64::from(self.validity));
        let mut unmarked: Option<Vec<u32>> = None;
        loop {
            let pending: Vec<u32> = self.open.range(..first).copied().collect();
            if pending.is_empty() || *shutdown.borrow() {
                return Ok(());
            }
            let held_by_others = rt
                .store
                .others_hold_claims_below(key, validity, first)
                .await?;
            // while another daemon is on earlier messages, this daemon
            // waits whatever the rest says: one statement per look
            let (stored, failing) = if held_by_others {
                (Vec::new(), Vec::new())
            } else {
                let stored = rt.store.stored_uids(key, validity, &pending).await?;
                let failing: Vec<u32> = rt
                    .store
                    .fetch_failures(key, validity)
                    .await?
                    .into_iter()
                    .map(|(uid, _)| uid)
                    .chain(self.suspects.iter().map(|s| s.0))
                    .collect();
                (stored, failing)
            };
            let facts = EarlierFacts {
                pending: &pending,
                stored: &stored,
                failing: &failing,
                held_by_others,
                unmarked: unmarked.as_deref(),
            };
            match before_storing(facts) {
                BeforeStoring::Go => {
                    for uid in pending {
                        self.open.remove(&uid);
                    }
                    return Ok(());
                }
                BeforeStoring::Wait => {
                    unmarked = None;
                    tokio::time::sleep(StdDuration::from_millis(20)).await;
                }
                BeforeStoring::AskServer(open) => {
                    unmarked = Some(mailbox.unmarked_among(&open).await?);
                }
                BeforeStoring::Take(gap) => {
                    unmarked = None;
                    self.take_gap(rt, mailbox, &gap, shutdown, report).await?;
                }
            }
        }
    }

    /// Claims, fetches and stores earlier messages nobody holds nor
    /// stored, in UID order. When another daemon claimed one of them
    /// meanwhile, this daemon gives back what it got and waits again.
    async fn take_gap(
        &mut self,
        rt: &Runtime,
        mailbox: &mut Mailbox,
        gap: &[u32],
        shutdown: &watch::Receiver<bool>,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let (key, validity) = (self.key, i64::from(self.validity));
        let now = chrono::Utc::now();
        let got = rt
            .store
            .claim_uids(key, validity, gap, now, now + FETCH_CLAIM)
            .await?;
        if got != gap {
            rt.store.release_uids(key, validity, Some(&got)).await?;
            tokio::time::sleep(StdDuration::from_millis(20)).await;
            return Ok(());
        }
        tracing::info!(
            mailbox = %key,
            count = gap.len(),
            first_uid = gap[0],
            "earlier messages nobody holds nor stored (a stopped daemon's): taking them first"
        );
        let sized = mailbox.sizes_of(gap).await?;
        for group in fetch_groups(&sized) {
            let uids = uids_of(group);
            let mails = self.fetch_claimed(rt, mailbox, &uids).await?;
            let done = if is_big(group) {
                ingest_big(rt, mailbox, key, self.validity, mails, report).await?
            } else {
                ingest_chunk(rt, key, self.validity, &mails, shutdown, report).await?
            };
            mailbox.mark_processed(&done).await?;
            rt.store.release_uids(key, validity, Some(&uids)).await?;
            self.done(&done);
        }
        Ok(())
    }

    /// Fetches the suspects one by one: each one the server gives is
    /// ingested; each one it still refuses counts an attempt, and after
    /// `rules::fetching::FETCH_ATTEMPTS` is recorded as a problem (mailbox, UID, the
    /// server's answer), flagged and skipped.
    async fn alone(
        mut self,
        rt: &Runtime,
        mailbox: &mut Mailbox,
        shutdown: &watch::Receiver<bool>,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let mut suspects = std::mem::take(&mut self.suspects);
        // Dovecot hangs up when it cannot read a message: the one that
        // failed most goes last, so that it does not hide the others
        suspects.sort_unstable_by_key(|&(uid, attempts)| (attempts, uid));
        suspects.dedup_by_key(|s| s.0);
        let (key, validity) = (self.key, i64::from(self.validity));
        let total = suspects.len();
        for (uid, _) in suspects {
            if *shutdown.borrow() {
                break;
            }
            let error = match mailbox.fetch(&[uid]).await {
                Ok(mails) => {
                    rt.store.clear_fetch_failures(key, validity, &[uid]).await?;
                    if mails.is_empty() {
                        // gone from the server meanwhile
                        continue;
                    }
                    self.fetched_any = true;
                    let done =
                        ingest_chunk(rt, key, self.validity, &mails, shutdown, report).await?;
                    mailbox.mark_processed(&done).await?;
                    continue;
                }
                Err(e) if e.may_be_the_message() => e,
                Err(e) => return Err(e.into()),
            };
            let now = chrono::Utc::now();
            let counted = counts_as_attempt(self.fetched_any, total - 1);
            let attempts = rt
                .store
                .record_fetch_failure(key, validity, uid, counted, &error.to_string(), now)
                .await?;
            if gives_up(attempts) {
                let problem = format!(
                    "the IMAP server would not give this message (mailbox {key}, UID {uid}) \
                     in {attempts} attempts; its last answer: {error}"
                );
                rt.store
                    .record_unfetchable(key, validity, uid, &problem, now)
                    .await?;
                tracing::error!(mailbox = %key, uid, attempts, error = %error,
                    "message the server will not give recorded as a problem and skipped (see `guichet tickets problems`)");
                report.unfetchable += 1;
                if error.connection_usable()
                    && let Err(e) = mailbox.mark_processed(&[uid]).await
                {
                    // flagged by the next pass's repair step instead
                    tracing::warn!(mailbox = %key, uid, error = %e, "cannot flag the skipped message");
                }
            } else {
                tracing::warn!(mailbox = %key, uid, attempts, counted, error = %error,
                    "message the server would not give; tried again in the next pass");
            }
            if !error.connection_usable() {
                return Err(error.into());
            }
        }
        Ok(())
    }
}

/// What one pass takes from the mailbox, decided before it takes it.
pub struct Selection {
    /// `(uid, size)` to ingest, ascending: new mail, and unread mail below
    /// the checkpoint that was never stored (catch-up).
    pub take: Vec<(u32, u32)>,
    /// Unflagged UIDs below the checkpoint whose message is stored.
    pub unmarked_stored: Vec<u32>,
    /// Set on the first pass over a mailbox without a checkpoint.
    pub first_contact: Option<FirstContact>,
    /// Messages in the mailbox.
    pub waiting: usize,
}

/// The checkpoint a first contact writes, and what it leaves.
pub struct FirstContact {
    pub last_uid: u32,
    pub catch_up_from: u32,
    pub left_alone: usize,
    /// Whether the checkpoint is written before the pass: not with
    /// `first_start = "all"`, which starts from UID 0 as if there were none
    /// (and must not reset another daemon's progress).
    pub checkpoint: bool,
}

/// What this pass takes (SPEC "Running it": first contact takes unread
/// mail only, `imap.first_start`), reading the mailbox and the store but
/// changing neither.
pub async fn select(
    rt: &Runtime,
    mailbox: &mut Mailbox,
    key: &str,
    validity: u32,
) -> anyhow::Result<Selection> {
    let all = mailbox.uids_after(0).await?;
    let waiting = all.len();
    let highest = all.iter().copied().max().unwrap_or(0);
    let (last, catch_up_from, first_contact) = match rt.store.mailbox_checkpoint(key).await? {
        Some((v, last, from)) if v == i64::from(validity) => (last as u32, from as u32, None),
        Some(_) => {
            tracing::warn!(mailbox = %key, "UIDVALIDITY changed: reading the whole mailbox again (duplicates are recognised; mail older than helpdesk.old_mail_days gets no automatic mail)");
            (0, 0, None)
        }
        None => match first_start_of(&rt.settings, key) {
            FirstStart::All => (0, 0, Some(0)),
            // the checkpoint passes the history at once; the unread mail
            // below it is taken by the catch-up, this pass and (if it is
            // cut short) the next
            FirstStart::Unseen => (highest, 0, Some(highest)),
            FirstStart::New => (highest, highest, Some(highest)),
        },
    };
    let unmarked = mailbox.unmarked_up_to(last).await?;
    let stored = rt
        .store
        .stored_uids(key, i64::from(validity), &unmarked)
        .await?;
    let unseen = mailbox.unseen_between(catch_up_from, last).await?;
    let catch_up: Vec<u32> = unseen
        .into_iter()
        .filter(|u| stored.binary_search(u).is_err())
        .collect();
    let mut take = mailbox.sizes_of(&catch_up).await?;
    take.extend(mailbox.sizes_after(last).await?);
    take.sort_unstable();
    take.dedup_by_key(|(uid, _)| *uid);
    Ok(Selection {
        first_contact: first_contact.map(|last_uid| FirstContact {
            last_uid,
            catch_up_from,
            left_alone: waiting - take.len(),
            checkpoint: first_start_of(&rt.settings, key) != FirstStart::All,
        }),
        take,
        unmarked_stored: stored,
        waiting,
    })
}

/// UIDs per FETCH, and their bytes: the next group is read while one is
/// ingested, so at most two groups' bytes are in memory.
const FETCH_CHUNK: usize = 200;
const FETCH_BYTES: u64 = 8 << 20;
/// A message this big is fetched and ingested alone (see `ingest_big`).
const BIG_MESSAGE: u64 = 4 << 20;

/// The new messages (UID, size) cut into FETCH groups: consecutive UIDs,
/// up to [`FETCH_CHUNK`] messages and [`FETCH_BYTES`] bytes, a big
/// message alone.
fn fetch_groups(news: &[(u32, u32)]) -> Vec<&[(u32, u32)]> {
    let mut groups = Vec::new();
    let mut rest = news;
    while !rest.is_empty() {
        // a big message counts as filling a group by itself
        let sizes = rest.iter().map(|&(_, size)| match u64::from(size) {
            big if big >= BIG_MESSAGE => u64::MAX,
            size => size,
        });
        let (group, tail) = rest.split_at(leading_fit(sizes, FETCH_CHUNK, FETCH_BYTES));
        groups.push(group);
        rest = tail;
    }
    groups
}

/// How many of the leading items, of these sizes, fit in `max_items` and
/// `max_bytes`: at least one (a lone item too big goes alone).
fn leading_fit(sizes: impl Iterator<Item = u64>, max_items: usize, max_bytes: u64) -> usize {
    let mut bytes = 0u64;
    let mut n = 0;
    for size in sizes.take(max_items) {
        bytes = bytes.saturating_add(size);
        if n > 0 && bytes > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

fn is_big(group: &[(u32, u32)]) -> bool {
    matches!(group, [(_, size)] if u64::from(*size) >= BIG_MESSAGE)
}

fn uids_of(group: &[(u32, u32)]) -> Vec<u32> {
    group.iter().map(|(uid, _)| *uid).collect()
}

/// A big message, in a transaction of its own, given its bytes: ingest
/// drops them once they are stored, before building the mail it causes
/// (the agents' copy, which carries its files), so that the message is
/// not in memory twice over. When that fails, it is fetched again and
/// handled like a failed batch.
async fn ingest_big(
    rt: &Runtime,
    mailbox: &mut Mailbox,
    key: &str,
    validity: u32,
    mails: Vec<FetchedMail>,
    report: &mut PassReport,
) -> anyhow::Result<Vec<u32>> {
    let mut done = Vec::with_capacity(mails.len());
    for mail in mails {
        let uid = mail.uid;
        let arrived_at = mail.arrived_at;
        let source = source_of(key, validity, uid, mail.arrived_at);
        let ctx = rt.ctx();
        let outcome = match ingest::ingest(&ctx, mail.raw, &source, Options::default()).await {
            Ok((outcome, _)) => outcome,
            // the store cannot take it: the pass stops, the message waits
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    mailbox = key,
                    uid,
                    error = format!("{e:#}"),
                    "big message failed; fetching it again to handle it one more way"
                );
                let again = mailbox.fetch(&[uid]).await?;
                let mut outcomes = ingest_one_by_one(rt, key, validity, &again).await?;
                match outcomes.pop() {
                    Some(outcome) => outcome,
                    // gone from the server meanwhile: nothing to flag
                    None => continue,
                }
            }
        };
        crash_hook();
        rt.metrics.committed([arrived_at]);
        rt.watchdog.busy(&super::watchdog::mailbox_loop(key));
        count(report, outcome);
        done.push(uid);
        rt.wake_delivery.notify_one();
    }
    Ok(done)
}

fn source_of(
    key: &str,
    validity: u32,
    uid: u32,
    arrived_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Source {
    Source {
        arrived_at,
        mailbox: Some(key.to_string()),
        uid: Some(uid),
        uid_validity: Some(validity),
    }
}

/// Test hook: die like `kill -9` between the commit and the IMAP flag, to
/// prove that a restart neither loses nor repeats.
fn crash_hook() {
    if std::env::var_os("GUICHET_TEST_CRASH_AFTER_COMMIT").is_some() {
        std::process::abort();
    }
}

fn count(report: &mut PassReport, outcome: Outcome) {
    report.fetched += 1;
    match outcome {
        Outcome::AlreadySeen => report.already_seen += 1,
        Outcome::Ticket { created: true, .. } => report.new_tickets += 1,
        Outcome::Ticket { .. } => report.appended += 1,
        Outcome::Unplaced { .. } => report.unplaced += 1,
    }
}

/// The slow path: one message per transaction; a message that still fails
/// is stored raw with its error (it must never block the mailbox).
async fn ingest_one_by_one(
    rt: &Runtime,
    key: &str,
    validity: u32,
    batch: &[FetchedMail],
) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for mail in batch {
        let ctx = rt.ctx();
        let source = source_of(key, validity, mail.uid, mail.arrived_at);
        outcomes.push(match ingest_retrying(&ctx, &mail.raw, &source).await {
            Ok(o) => o,
            // the store cannot take it (disk full, read-only, I/O errors,
            // database away): not this message's problem, so it is not
            // stored raw as one; the pass stops and the message waits on
            // the server, unflagged, for the store to come back
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                tracing::error!(
                    mailbox = key,
                    uid = mail.uid,
                    error = format!("{e:#}"),
                    "cannot handle message; storing it raw"
                );
                ingest::store_unhandled(&ctx, &mail.raw, &source, &format!("{e:#}"))
                    .await
                    .context("cannot even store the message raw")?
            }
        });
    }
    Ok(outcomes)
}
/// Messages per transaction, and their bytes: fewer commits, bounded memory.
const BATCH_MESSAGES: usize = 50;
const BATCH_BYTES: u64 = 8 << 20;

/// Ingests fetched mail in transactions of a few dozen messages; returns
/// the UIDs committed (to be flagged).
async fn ingest_chunk(
    rt: &Runtime,
    key: &str,
    validity: u32,
    mails: &[FetchedMail],
    shutdown: &watch::Receiver<bool>,
    report: &mut PassReport,
) -> anyhow::Result<Vec<u32>> {
    let mut done = Vec::with_capacity(mails.len());
    let mut rest = mails;
    while !rest.is_empty() && !*shutdown.borrow() {
        let sizes = rest.iter().map(|m| m.raw.len() as u64);
        let (batch, tail) = rest.split_at(leading_fit(sizes, BATCH_MESSAGES, BATCH_BYTES));
        rest = tail;
        let items: Vec<BatchItem<'_>> = batch
            .iter()
            .map(|m| BatchItem {
                raw: &m.raw,
                source: source_of(key, validity, m.uid, m.arrived_at),
            })
            .collect();
        let ctx = rt.ctx();
        let outcomes = match ingest::ingest_batch(&ctx, &items).await {
            Ok(outcomes) => outcomes,
            // one by one would fail the same way: the pass stops
            Err(e) if fault_of(&e).is_some() => return Err(e),
            Err(e) => {
                // something in the batch failed and nothing of it was
                // committed: one message per transaction, as the slow path.
                // Another daemon's transaction in the way (a deadlock on
                // PostgreSQL) is expected with several daemons, not a fault.
                if crate::store::is_retryable(&e) {
                    tracing::info!(
                        error = format!("{e:#}"),
                        "batch refused because of a concurrent transaction; ingesting its messages one by one"
                    );
                } else {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "batch failed; ingesting its messages one by one"
                    );
                }
                ingest_one_by_one(rt, key, validity, batch).await?
            }
        };
        crash_hook();
        rt.metrics.committed(batch.iter().map(|m| m.arrived_at));
        rt.watchdog.busy(&super::watchdog::mailbox_loop(key));
        for outcome in outcomes {
            count(report, outcome);
        }
        done.extend(batch.iter().map(|m| m.uid));
        // what this batch queued may go out while the next one is ingested
        rt.wake_delivery.notify_one();
    }
    Ok(done)
}

/// Ingest, tried again (a few times, briefly) when the database refused
/// its transaction because of a concurrent one, another daemon's for
/// instance: such a message is handled normally on the next try instead
/// of being stored raw as a problem.
async fn ingest_retrying(
    ctx: &super::Ctx<'_>,
    raw: &[u8],
    source: &Source,
) -> anyhow::Result<Outcome> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match ingest::ingest(ctx, raw, source, Options::default()).await {
            Ok((outcome, _)) => return Ok(outcome),
            Err(e) if attempt < ATTEMPTS && crate::store::is_retryable(&e) => {
                tracing::info!(
                    mailbox = source.mailbox.as_deref(),
                    uid = source.uid,
                    attempt,
                    error = format!("{e:#}"),
                    "transaction refused because of a concurrent one; trying again"
                );
                tokio::time::sleep(StdDuration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `run --once`: new mail, due lifecycle work, queued deliveries; then exit.
/// The outbox is drained while the mailbox is read (each batch's mail goes
/// out as soon as it is committed), over one SMTP connection.
/// What a pass would do, changing nothing: per mailbox, the messages
/// waiting, those it would take, those it would leave as history, and the
/// mails and webhook events they would cause (each message decided alone,
/// in a transaction rolled back).
/// With several mailboxes, one report each, in a JSON array.
pub async fn dry_run_pass(rt: &Runtime) -> anyhow::Result<serde_json::Value> {
    let mut reports = Vec::new();
    for feed in &rt.settings.mailboxes {
        reports.push(
            dry_run_mailbox(rt, feed)
                .await
                .with_context(|| format!("mailbox {}", feed.name))?,
        );
    }
    Ok(match <[_; 1]>::try_from(reports) {
        Ok([one]) => one,
        Err(all) => serde_json::Value::Array(all),
    })
}

async fn dry_run_mailbox(
    rt: &Runtime,
    feed: &crate::settings::MailboxSettings,
) -> anyhow::Result<serde_json::Value> {
    let key = feed.imap.checkpoint_key();
    let mut mailbox = rt.connect_mailbox(&feed.name, &feed.imap).await?;
    let validity = mailbox.uid_validity();
    let selection = select(rt, &mut mailbox, &key, validity).await?;
    let uids: Vec<u32> = selection.take.iter().map(|(uid, _)| *uid).collect();
    let (mut mails, mut events, mut tickets) = (0usize, 0usize, 0usize);
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for chunk in uids.chunks(50) {
        for mail in mailbox.fetch(chunk).await? {
            let source = source_of(&key, validity, mail.uid, mail.arrived_at);
            let opts = Options {
                dry_run: true,
                import: false,
            };
            let (outcome, trace) = ingest::ingest(&rt.ctx(), mail.raw, &source, opts).await?;
            if matches!(outcome, Outcome::Ticket { created: true, .. }) {
                tickets += 1;
            }
            for step in &trace.steps {
                if let Some(kind) = step
                    .data
                    .as_ref()
                    .and_then(|d| d.get("send"))
                    .and_then(|k| k.as_str())
                {
                    mails += 1;
                    *by_kind.entry(kind.to_string()).or_default() += 1;
                }
                if step.stage == "event" {
                    events += 1;
                }
            }
        }
    }
    let _ = mailbox.logout().await;
    Ok(serde_json::json!({
        "mailbox": key,
        "name": feed.name,
        "first_contact": selection.first_contact.is_some(),
        "first_start": feed.imap.first_start.as_str(),
        "waiting": selection.waiting,
        "would_take": uids.len(),
        "left_as_history": selection.first_contact.as_ref().map_or(0, |f| f.left_alone),
        "would_open_tickets": tickets,
        "would_send": mails,
        "would_send_by_kind": by_kind,
        "would_fire_events": events,
    }))
}

/// `guichet import`: existing mail of a folder becomes tickets, sending
/// nothing and firing no webhook event; the mailbox's checkpoint and
/// flags are left as they are. Messages stored already are recognised.
pub async fn import(
    rt: &Runtime,
    name: &str,
    folder: Option<&str>,
    since: Option<chrono::NaiveDate>,
) -> anyhow::Result<PassReport> {
    let Some(feed) = rt.settings.mailboxes.iter().find(|m| m.name == name) else {
        let known: Vec<&str> = rt
            .settings
            .mailboxes
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        anyhow::bail!(
            "no mailbox named `{name}` (the settings have: {})",
            known.join(", ")
        );
    };
    let mut imap = feed.imap.clone();
    if let Some(f) = folder {
        imap.folder = f.to_string();
    }
    let mut mailbox = rt.connect_mailbox(&feed.name, &imap).await?;
    let uids = mailbox.uids_since(since).await?;
    let mut report = PassReport::default();
    for chunk in uids.chunks(50) {
        for mail in mailbox.fetch(chunk).await? {
            let source = Source {
                arrived_at: mail.arrived_at,
                ..Source::default()
            };
            let opts = Options {
                dry_run: false,
                import: true,
            };
            let outcome = match ingest::ingest(&rt.ctx(), &mail.raw, &source, opts).await {
                Ok((o, _)) => o,
                Err(e) => ingest::store_unhandled(&rt.ctx(), &mail.raw, &source, &format!("{e:#}"))
                    .await
                    .context("cannot even store the message raw")?,
            };
            count(&mut report, outcome);
        }
    }
    let _ = mailbox.logout().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_fit_table() {
        // (sizes, max items, max bytes, how many fit)
        let table: &[(&[u64], usize, u64, usize)] = &[
            (&[], 5, 10, 0),
            (&[50], 5, 10, 1), // too big alone: still goes
            (&[4, 4, 4], 5, 10, 2),
            (&[5, 5, 5], 5, 10, 2), // exactly full
            (&[1, 1, 1, 1], 3, 10, 3),
            (&[1, u64::MAX, 1], 5, 10, 1),
            (&[u64::MAX, 1], 5, 10, 1),
        ];
        for &(sizes, items, bytes, want) in table {
            let got = leading_fit(sizes.iter().copied(), items, bytes);
            assert_eq!(got, want, "{sizes:?} in {items} items / {bytes} bytes");
        }
    }

    #[test]
    fn fetch_groups_bound_bytes_and_put_big_messages_alone() {
        const K: u32 = 1024;
        const M: u32 = 1024 * 1024;
        let many: Vec<(u32, u32)> = (1..=450).map(|uid| (uid, 2 * K)).collect();
        type Case<'a> = (&'a [(u32, u32)], &'a [usize]);
        let table: &[Case<'_>] = &[
            (&[], &[]),
            (&[(1, 10 * K)], &[1]),
            (&[(1, 10 * K), (2, 34 * M), (3, 10 * K)], &[1, 1, 1]),
            (&[(1, 34 * M), (2, 35 * M)], &[1, 1]),
            (&[(1, 3 * M), (2, 3 * M), (3, 3 * M)], &[2, 1]),
            (&many[..], &[200, 200, 50]),
        ];
        for (news, want) in table {
            let groups = fetch_groups(news);
            let sizes: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(&sizes, want, "sizes of groups of {news:?}");
            let flat: Vec<(u32, u32)> = groups.concat();
            assert_eq!(&flat[..], *news, "every message once, in order");
            for g in &groups {
                let big = g.iter().any(|(_, s)| u64::from(*s) >= BIG_MESSAGE);
                assert_eq!(is_big(g), big, "{g:?}");
                assert!(big || g.iter().map(|(_, s)| u64::from(*s)).sum::<u64>() <= FETCH_BYTES);
            }
        }
    }
}
