//! Auto-close: tickets idle for `auto_close_days` are closed, the customer
//! is told until when a reply reopens them, and `ticket.closed` fires with
//! reason `inactivity`. Run every minute by the daemon and by every
//! `run --once`, against the pass's clock.
//! Also the file store's stale temporary files, which the daemon clears
//! hourly.

use std::path::Path;

use chrono::Duration;
use serde_json::json;

use crate::domain::{CloseReason, EmailAddress, EventKind, TicketStatus};
use crate::mail::outbound::Automation;
use crate::rules::lifecycle::{self, Party, ReopenDeadline, TicketClock};
use crate::store::TicketRow;

use super::notify::{self, Notice};
use super::{Ctx, events};

fn clock_of(t: &TicketRow) -> TicketClock {
    TicketClock {
        status: t.status(),
        last_activity_at: t.last_activity_at,
        last_message_from: if t.last_message_from == "agent" {
            Party::Agent
        } else {
            Party::Customer
        },
        closed_at: t.closed_at,
    }
}

/// Closes every ticket that is due; returns how many.
pub async fn sweep(ctx: &Ctx<'_>) -> anyhow::Result<usize> {
    let h = &ctx.settings.helpdesk;
    if h.auto_close_days == 0 {
        return Ok(0);
    }
    let mut closed = 0;
    for candidate in ctx.store.open_tickets().await? {
        if !lifecycle::auto_close_due(
            &clock_of(&candidate),
            h.auto_close_days,
            h.auto_close_scope,
            ctx.now,
        ) {
            continue;
        }
        let mut tx = ctx.store.begin().await?;
        // re-read inside the transaction: a reply may have arrived meanwhile
        let Some(mut ticket) = tx.ticket(candidate.id).await? else {
            continue;
        };
        if !lifecycle::auto_close_due(
            &clock_of(&ticket),
            h.auto_close_days,
            h.auto_close_scope,
            ctx.now,
        ) {
            continue;
        }
        // the customer never got the last answer: the agents were told,
        // and the ticket waits for them, not for the customer (issue 18)
        if tx.last_answer_undelivered(ticket.id).await? {
            tracing::debug!(
                ticket = ticket.id,
                "not closed for inactivity: its last answer never reached the customer"
            );
            continue;
        }
        ticket.set_status(TicketStatus::Closed);
        ticket.closed_at = Some(ctx.now);
        ticket.close_reason = Some(CloseReason::Inactivity.as_str().into());
        tx.save_ticket(&ticket).await?;
        events::emit(
            &mut tx,
            ctx.settings,
            EventKind::TicketClosed,
            &ticket,
            json!({"reason": "inactivity", "idle_days": h.auto_close_days}),
            ctx.now,
        )
        .await?;
        let (reopen, until) = match lifecycle::reopen_deadline(ctx.now, h.reopen_days) {
            ReopenDeadline::Never => ("never", String::new()),
            ReopenDeadline::Unlimited => ("unlimited", String::new()),
            ReopenDeadline::Until(d) => ("days", d.format("%Y-%m-%d %H:%M UTC").to_string()),
        };
        if let Ok(client) = EmailAddress::parse(&ticket.client) {
            // one notice per ticket; still within the hourly limit per address
            let sent = tx
                .auto_replies_since(client.as_str(), ctx.now - Duration::hours(1))
                .await?;
            if crate::rules::robots::may_send_auto_reply(
                sent.try_into().unwrap_or(u32::MAX),
                h.max_auto_replies_per_hour,
            ) {
                // a reply to the customer's latest message, so that their
                // client shows it in the ticket's thread
                let (in_reply_to, references) = notify::customer_thread(&mut tx, ticket.id).await?;
                notify::queue(&mut tx, ctx, Notice {
                    kind: "closed_notice",
                    template: "closed_notice",
                    ticket: &ticket,
                    to: vec![client.clone()],
                    cc: vec![],
                    automation: Automation::AutoReplied,
                    vars: json!({"days": h.auto_close_days, "reopen": reopen, "reopen_until": until}),
                    in_reply_to,
                    references,
                    attachments: vec![],
                    from_name: None,
                    rich: Default::default(),
                })
                .await?;
                tx.record_auto_reply(client.as_str(), ctx.now).await?;
            }
        }
        tx.commit().await?;
        tracing::info!(
            ticket = ticket.id,
            "closed after {} days without activity",
            h.auto_close_days
        );
        closed += 1;
    }
    Ok(closed)
}

/// Removes the file store's temporary files left by writes that died
/// (older than [`crate::adapters::file_store::STALE_AFTER`] by the real clock,
/// never the pass's: a simulated date must not condemn a write in progress),
/// and logs how many. Off the async threads: the store may be large.
/// A failure is logged, not returned: it must not stop the daemon.
pub async fn remove_stale_temps(storage_dir: &Path) {
    let dir = storage_dir.to_path_buf();
    let swept = tokio::task::spawn_blocking(move || {
        crate::adapters::file_store::remove_stale_temps(&dir, std::time::SystemTime::now(), false)
    })
    .await;
    match swept {
        Ok(Ok(removed)) if !removed.is_empty() => tracing::info!(
            removed = removed.len(),
            "removed {} stale temporary file(s) from the file store",
            removed.len()
        ),
        Ok(Ok(_)) => tracing::debug!("no stale temporary file in the file store"),
        Ok(Err(e)) => tracing::warn!(
            error = %e,
            dir = %storage_dir.display(),
            "clearing stale temporary files failed"
        ),
        Err(e) => tracing::warn!(error = %e, "clearing stale temporary files failed"),
    }
}
