//! Retention (`[retention]`, issue 24): the daemon's hourly due work and
//! every `run --once`, against the pass's clock. The rule
//! (`rules::retention`) says what is due; this removes it in batches of
//! [`BATCH`](crate::rules::retention::BATCH) tickets, one transaction
//! each, resting between batches so that ingest keeps its pace, then gives
//! the space back.

use std::time::Instant;

use tokio::sync::watch;

use crate::adapters::file_store;
use crate::rules::retention::{self, BATCH, TicketFate};
use crate::store::{Reclaimed, Removed};

use super::Ctx;

/// What one retention pass did (printed by `run --once`).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Report {
    pub removed: Removed,
    /// Raw mails emptied in tickets closed longer than `raw_mail_days`.
    pub raw_mails_emptied: u64,
    pub sent_bodies_emptied: u64,
    pub webhook_payloads_emptied: u64,
    pub auto_replies_forgotten: u64,
    /// Set when something was removed and the space given back.
    pub reclaimed: Option<Reclaimed>,
}

impl Report {
    fn anything(&self) -> bool {
        self.removed.tickets
            + self.raw_mails_emptied
            + self.sent_bodies_emptied
            + self.webhook_payloads_emptied
            + self.auto_replies_forgotten
            > 0
    }
}

async fn rest(took: std::time::Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(retention::rest_after_batch(took)) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Removes what is due at `ctx.now`. Stops between batches when
/// `shutdown` turns true (what is committed stays committed; the rest is
/// due at the next pass).
pub async fn run(ctx: &Ctx<'_>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<Report> {
    let cut = retention::cutoffs(&ctx.settings.retention, ctx.now);
    let mut report = Report::default();
    let dir = &ctx.settings.attachments.storage_dir;
    if let Some(before) = cut.tickets_closed_before {
        loop {
            let candidates = ctx.store.closed_tickets_before(before, BATCH).await?;
            if candidates.is_empty() {
                break;
            }
            let started = Instant::now();
            let mut tx = ctx.store.begin().await?;
            // re-read inside the transaction: a reply may have reopened one
            let due: Vec<i64> = tx
                .ticket_clocks(&candidates)
                .await?
                .into_iter()
                .filter(|(_, status, closed_at)| {
                    retention::ticket_fate(status == "closed", *closed_at, &cut)
                        == TicketFate::Remove
                })
                .map(|(id, _, _)| id)
                .collect();
            let (mut removed, files) = tx.remove_tickets(&due).await?;
            tx.commit().await?;
            // the batch writes its own pages back (SQLite), inside the
            // time it rests for, not in a later commit of ingest's
            ctx.store.checkpoint_passive().await?;
            for sha in files {
                if !ctx.store.file_referenced(&sha).await? {
                    match file_store::remove(dir, &sha) {
                        Ok(true) => removed.files += 1,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot remove a stored file"),
                    }
                }
            }
            report.removed.add(removed);
            if due.is_empty() || rest(started.elapsed(), &mut shutdown).await {
                break;
            }
        }
    }
    if let Some(before) = cut.raw_mail_closed_before {
        loop {
            let ids = ctx.store.raw_mail_of_closed_before(before, BATCH).await?;
            if ids.is_empty() {
                break;
            }
            let started = Instant::now();
            let mut tx = ctx.store.begin().await?;
            report.raw_mails_emptied += tx.empty_raw_mails(&ids).await?;
            tx.commit().await?;
            if rest(started.elapsed(), &mut shutdown).await {
                break;
            }
        }
    }
    loop {
        let started = Instant::now();
        let n = ctx
            .store
            .clear_sent_mail_bodies(cut.mail_sent_before, BATCH)
            .await?;
        report.sent_bodies_emptied += n;
        if n == 0 || rest(started.elapsed(), &mut shutdown).await {
            break;
        }
    }
    loop {
        let started = Instant::now();
        let n = ctx
            .store
            .clear_delivered_payloads(cut.webhooks_delivered_before, BATCH * 10)
            .await?;
        report.webhook_payloads_emptied += n;
        if n == 0 || rest(started.elapsed(), &mut shutdown).await {
            break;
        }
    }
    report.auto_replies_forgotten = ctx
        .store
        .forget_auto_replies(cut.auto_replies_before)
        .await?;
    if report.anything() {
        report.reclaimed = Some(ctx.store.reclaim_space().await?);
        let r = &report;
        tracing::info!(
            tickets = r.removed.tickets,
            messages = r.removed.messages,
            files = r.removed.files,
            raw_mails_emptied = r.raw_mails_emptied,
            sent_bodies_emptied = r.sent_bodies_emptied,
            webhook_payloads_emptied = r.webhook_payloads_emptied,
            auto_replies_forgotten = r.auto_replies_forgotten,
            pages_given_back = r.reclaimed.as_ref().map_or(0, |c| c.pages),
            "retention: removed what was due"
        );
    }
    Ok(report)
}
