//! Removing personal data (issue 24): retention's bounded batches, the
//! clearing of bodies and payloads past their purpose, a customer's
//! erasure, and giving the space back. The worker decides what is due
//! (`rules::retention`); these statements only carry it out. Every
//! removal of tickets first writes their anonymous facts to the
//! `stats_*` tables, in the same transaction.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{EventRow, Store, TicketRow, Tx};

/// `$from, $from+1, …` for `n` values (only placeholders are formatted
/// into SQL, never a value).
pub(super) fn list(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Several daemons on one PostgreSQL database run retention at the same
/// time. Each locks the rows it empties or removes in id order and passes
/// over those another holds (`FOR UPDATE SKIP LOCKED`): two daemons that
/// picked the same batch then split it instead of waiting on each other in
/// different orders, which PostgreSQL ends as a deadlock. SQLite's single
/// writer needs no lock clause.
fn skip_locked(shared: bool) -> &'static str {
    if shared {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

/// A raw mail (`raw_messages r`) still holds bytes: beside its row, or
/// in `raw_message_blobs` (SQLite, big mail).
const RAW_HOLDS_BYTES: &str =
    "(length(r.raw) > 0 OR EXISTS (SELECT 1 FROM raw_message_blobs b WHERE b.id = r.id))";

/// What a removal took away.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub tickets: u64,
    pub messages: u64,
    pub raw_mails: u64,
    pub queued_mails: u64,
    pub webhook_payloads: u64,
    pub files: u64,
}

impl Removed {
    pub fn add(&mut self, o: Removed) {
        self.tickets += o.tickets;
        self.messages += o.messages;
        self.raw_mails += o.raw_mails;
        self.queued_mails += o.queued_mails;
        self.webhook_payloads += o.webhook_payloads;
        self.files += o.files;
    }
}

/// A ticket's anonymous facts kept for `stats` after it is gone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchivedTicketRow {
    pub created_at: DateTime<Utc>,
    pub first_agent_reply_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
    /// JSON `[[at, reason], …]`
    pub closings: String,
    /// JSON `[at, …]`
    pub reopenings: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchivedAttachmentRow {
    pub at: DateTime<Utc>,
    pub file_type: String,
    pub bytes: i64,
    pub refusal_code: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchivedDeliveryRow {
    pub at: DateTime<Utc>,
    pub delivered: bool,
    pub dead: bool,
    pub attempts: i32,
}

/// What giving the space back did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Reclaimed {
    /// SQLite: pages given back to the file system; PostgreSQL: 0.
    pub pages: i64,
    /// SQLite: the database was converted to incremental vacuum by a full
    /// VACUUM (once per database made before issue 24).
    pub full_vacuum: bool,
}

impl Store {
    /// Up to `limit` tickets closed before `before` (oldest closing first).
    pub async fn closed_tickets_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM tickets WHERE status = 'closed' AND closed_at < $1 \
                 ORDER BY closed_at, id LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// Up to `limit` raw mails still holding bytes, of tickets closed
    /// before `before`.
    pub async fn raw_mail_of_closed_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT DISTINCT r.id FROM tickets t JOIN messages m ON m.ticket_id = t.id \
             JOIN raw_messages r ON r.id = m.raw_id \
             WHERE t.status = 'closed' AND t.closed_at < $1 AND {RAW_HOLDS_BYTES} \
             ORDER BY r.id LIMIT $2"
        );
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .bind(limit)
                .fetch_all(p)
                .await
        })?)
    }

    /// Empties the bodies of up to `limit` mails sent before `before`,
    /// passing over rows another daemon's retention holds.
    pub async fn clear_sent_mail_bodies(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT o.id FROM outbox_mail o WHERE o.sent_at < $1 \
             AND (length(o.raw) > 0 OR EXISTS (SELECT 1 FROM outbox_mail_blobs b WHERE b.id = o.id)) \
             ORDER BY o.id LIMIT $2{}",
            skip_locked(tx.is_shared())
        );
        let ids: Vec<i64> = on_db!(tx &mut tx, c => {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *c)
                .await
        })?;
        tx.empty_mail_bodies(&ids).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Empties the payloads of up to `limit` webhooks delivered before
    /// `before` (the row stays: `stats` counts it), passing over rows
    /// another daemon's retention holds.
    pub async fn clear_delivered_payloads(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let sql = format!(
            "UPDATE webhook_outbox SET payload = '' WHERE payload <> '' AND id IN (SELECT id FROM webhook_outbox \
             WHERE delivered_at < $1 AND payload <> '' ORDER BY id LIMIT $2{})",
            skip_locked(self.is_shared())
        );
        Ok(on_db!(pool self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .bind(limit)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// Forgets the auto-reply records older than `before`, passing over
    /// rows another daemon's retention holds (the table has no key:
    /// PostgreSQL names its rows by `ctid`).
    pub async fn forget_auto_replies(&self, before: DateTime<Utc>) -> Result<u64> {
        const SQLITE: &str = "DELETE FROM auto_replies WHERE sent_at < $1";
        const POSTGRES: &str = "DELETE FROM auto_replies WHERE ctid = ANY(ARRAY(\
             SELECT ctid FROM auto_replies WHERE sent_at < $1 FOR UPDATE SKIP LOCKED))";
        let sql = match self {
            Store::Sqlite(_) => SQLITE,
            Store::Postgres(_) => POSTGRES,
        };
        Ok(on_db!(pool self, p => {
            sqlx::query(sql)
                .bind(before)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// Whether any attachment row still names this file.
    pub async fn file_referenced(&self, sha256: &str) -> Result<bool> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM attachments WHERE sha256 = $1")
                .bind(sha256)
                .fetch_one(p)
                .await
        })? > 0)
    }

    /// Gives the freed space back. SQLite: the write-ahead log is
    /// checkpointed and truncated, free pages are given back (incremental
    /// vacuum; a database made before issue 24 is converted once by a full
    /// VACUUM). PostgreSQL: `VACUUM` of the tables retention empties.
    pub async fn reclaim_space(&self) -> Result<Reclaimed> {
        match self {
            Store::Sqlite(p) => {
                let mut c = p.acquire().await?;
                let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
                    .fetch_one(&mut *c)
                    .await?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(&mut *c)
                    .await?;
                let mut r = Reclaimed::default();
                if mode != 2 {
                    // 2 = INCREMENTAL; the mode changes only with a VACUUM
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("VACUUM").execute(&mut *c).await?;
                    r.full_vacuum = true;
                    r.pages = free;
                } else if free > 0 {
                    sqlx::query("PRAGMA incremental_vacuum")
                        .execute(&mut *c)
                        .await?;
                    r.pages = free;
                }
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *c)
                    .await?;
                Ok(r)
            }
            Store::Postgres(p) => {
                for table in [
                    "tickets",
                    "participants",
                    "raw_messages",
                    "messages",
                    "known_message_ids",
                    "attachments",
                    "ticket_events",
                    "outbox_mail",
                    "webhook_outbox",
                    "auto_replies",
                    "mail_refusals",
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {table}")))
                        .execute(p)
                        .await?;
                }
                Ok(Reclaimed::default())
            }
        }
    }

    /// SQLite: copies the write-ahead log into the database as far as no
    /// reader holds it back (PASSIVE: never waits). PostgreSQL: nothing.
    pub async fn checkpoint_passive(&self) -> Result<()> {
        if let Store::Sqlite(p) = self {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(p)
                .await?;
        }
        Ok(())
    }

    pub async fn archived_tickets(&self) -> Result<Vec<ArchivedTicketRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, ArchivedTicketRow>(
                "SELECT created_at, first_agent_reply_at, closed_at, close_reason, closings, reopenings \
                 FROM stats_tickets ORDER BY id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn archived_attachments(&self) -> Result<Vec<ArchivedAttachmentRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, ArchivedAttachmentRow>(
                "SELECT at, file_type, bytes, refusal_code FROM stats_attachments ORDER BY id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn archived_deliveries(&self) -> Result<Vec<ArchivedDeliveryRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, ArchivedDeliveryRow>(
                "SELECT at, delivered, dead, attempts FROM stats_deliveries ORDER BY id",
            )
            .fetch_all(p)
            .await
        })?)
    }
}

impl Tx {
    /// Runs `sql`, whose `$1…$n` are `ids`, and returns the rows changed.
    pub(super) async fn exec_ids(&mut self, sql: String, ids: &[i64]) -> Result<u64> {
        Ok(on_db!(tx self, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?)
    }

    pub(super) async fn ids_of(&mut self, sql: String, ids: &[i64]) -> Result<Vec<i64>> {
        Ok(on_db!(tx self, c => {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?)
    }

    /// Status and closing time of these tickets, read in the removing
    /// transaction (one may have been reopened meanwhile). On PostgreSQL
    /// they are locked until the commit, and a ticket another transaction
    /// holds (ingest adding a reply, another daemon's retention) is left
    /// out: it is looked at again in a later batch.
    #[allow(clippy::type_complexity)]
    pub async fn ticket_clocks(
        &mut self,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, Option<DateTime<Utc>>)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT id, status, closed_at FROM tickets WHERE id IN ({}) ORDER BY id{}",
            list(1, ids.len()),
            skip_locked(self.is_shared())
        );
        Ok(on_db!(tx self, c => {
            let mut q = sqlx::query_as::<_, (i64, String, Option<DateTime<Utc>>)>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?)
    }

    /// Empties the bodies of these queued mails (and their big-blob rows).
    pub async fn empty_mail_bodies(&mut self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let l = list(1, ids.len());
        self.exec_ids(
            format!("DELETE FROM outbox_mail_blobs WHERE id IN ({l})"),
            ids,
        )
        .await?;
        let sql = format!(
            "UPDATE outbox_mail SET raw = $1 WHERE id IN ({})",
            list(2, ids.len())
        );
        on_db!(tx self, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Vec::<u8>::new());
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Empties these raw mails (the row stays: its dedup key keeps the
    /// same mail from being taken twice). Returns how many it emptied:
    /// not those another daemon's retention emptied meanwhile or holds.
    pub async fn empty_raw_mails(&mut self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = self
            .ids_of(
                format!(
                    "SELECT r.id FROM raw_messages r WHERE r.id IN ({}) AND {RAW_HOLDS_BYTES} \
                     ORDER BY r.id{}",
                    list(1, ids.len()),
                    skip_locked(self.is_shared())
                ),
                ids,
            )
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let l = list(1, ids.len());
        self.exec_ids(
            format!("DELETE FROM raw_message_blobs WHERE id IN ({l})"),
            &ids,
        )
        .await?;
        let sql = format!(
            "UPDATE raw_messages SET raw = $1 WHERE id IN ({})",
            list(2, ids.len())
        );
        Ok(on_db!(tx self, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Vec::<u8>::new());
            for id in &ids {
                q = q.bind(*id);
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?)
    }

    /// Removes these tickets with everything they hold, after writing
    /// their anonymous facts for `stats`. Returns what went and the
    /// hashes of the files they named (the caller removes the files no
    /// other attachment names, after the commit).
    pub async fn remove_tickets(&mut self, ids: &[i64]) -> Result<(Removed, Vec<String>)> {
        let mut removed = Removed::default();
        if ids.is_empty() {
            return Ok((removed, vec![]));
        }
        self.archive_stats(ids).await?;
        let l = list(1, ids.len());
        let files: Vec<String> = on_db!(tx self, c => {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT sha256 FROM attachments WHERE sha256 IS NOT NULL AND ticket_id IN ({l})"
            )));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        let raw_ids = self
            .ids_of(
                format!("SELECT DISTINCT raw_id FROM messages WHERE raw_id IS NOT NULL AND ticket_id IN ({l})"),
                ids,
            )
            .await?;
        let mail_ids = self
            .ids_of(
                format!("SELECT id FROM outbox_mail WHERE ticket_id IN ({l})"),
                ids,
            )
            .await?;
        self.exec_ids(
            format!("DELETE FROM attachments WHERE ticket_id IN ({l})"),
            ids,
        )
        .await?;
        self.exec_ids(
            format!("DELETE FROM known_message_ids WHERE ticket_id IN ({l})"),
            ids,
        )
        .await?;
        self.exec_ids(
            format!("DELETE FROM mail_refusals WHERE ticket_id IN ({l})"),
            ids,
        )
        .await?;
        for chunk in mail_ids.chunks(64) {
            let m = list(1, chunk.len());
            self.exec_ids(
                format!("DELETE FROM outbox_mail_blobs WHERE id IN ({m})"),
                chunk,
            )
            .await?;
            removed.queued_mails += self
                .exec_ids(format!("DELETE FROM outbox_mail WHERE id IN ({m})"), chunk)
                .await?;
        }
        removed.webhook_payloads = self
            .exec_ids(
                format!("DELETE FROM webhook_outbox WHERE ticket_id IN ({l})"),
                ids,
            )
            .await?;
        self.exec_ids(
            format!("DELETE FROM ticket_events WHERE ticket_id IN ({l})"),
            ids,
        )
        .await?;
        self.exec_ids(
            format!("DELETE FROM participants WHERE ticket_id IN ({l})"),
            ids,
        )
        .await?;
        removed.messages = self
            .exec_ids(
                format!("DELETE FROM messages WHERE ticket_id IN ({l})"),
                ids,
            )
            .await?;
        for chunk in raw_ids.chunks(64) {
            let m = list(1, chunk.len());
            self.exec_ids(
                format!("DELETE FROM raw_message_blobs WHERE id IN ({m})"),
                chunk,
            )
            .await?;
            removed.raw_mails += self
                .exec_ids(
                    format!(
                        "DELETE FROM raw_messages WHERE id IN ({m}) \
                         AND NOT EXISTS (SELECT 1 FROM messages WHERE raw_id = raw_messages.id)"
                    ),
                    chunk,
                )
                .await?;
        }
        self.exec_ids(
            format!("UPDATE tickets SET linked_from = NULL WHERE linked_from IN ({l})"),
            ids,
        )
        .await?;
        removed.tickets = self
            .exec_ids(format!("DELETE FROM tickets WHERE id IN ({l})"), ids)
            .await?;
        Ok((removed, files))
    }

    /// Writes the anonymous facts `stats` needs of these tickets: their
    /// dates and closings, their customers' files' verdicts, their webhook
    /// deliveries. No id, subject, address or text.
    async fn archive_stats(&mut self, ids: &[i64]) -> Result<()> {
        let l = list(1, ids.len());
        let tickets: Vec<TicketRow> = on_db!(tx self, c => {
            let mut q = sqlx::query_as::<_, TicketRow>(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM tickets WHERE id IN ({l})"
            )));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        let events: Vec<EventRow> = on_db!(tx self, c => {
            let mut q = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM ticket_events WHERE event IN ('ticket.closed', 'ticket.reopened') \
                 AND ticket_id IN ({l}) ORDER BY id"
            )));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        for t in &tickets {
            let mine = events.iter().filter(|e| e.ticket_id == t.id);
            let closings: Vec<Value> = mine
                .clone()
                .filter(|e| e.event == "ticket.closed")
                .filter_map(|e| {
                    let data: Value = serde_json::from_str(&e.data).ok()?;
                    let reason = data["reason"].as_str()?.to_string();
                    Some(serde_json::json!([e.occurred_at, reason]))
                })
                .collect();
            let reopenings: Vec<Value> = mine
                .filter(|e| e.event == "ticket.reopened")
                .map(|e| serde_json::json!(e.occurred_at))
                .collect();
            let closings = Value::Array(closings).to_string();
            let reopenings = Value::Array(reopenings).to_string();
            on_db!(tx self, c => {
                sqlx::query(
                    "INSERT INTO stats_tickets (created_at, first_agent_reply_at, closed_at, close_reason, closings, reopenings) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.created_at)
                .bind(t.first_agent_reply_at)
                .bind(t.closed_at)
                .bind(t.close_reason.as_deref())
                .bind(&closings)
                .bind(&reopenings)
                .execute(&mut *c)
                .await
                .map(|_| ())
            })?;
        }
        // as Store::all_attachments: files offered by customers
        self.exec_ids(
            format!(
                "INSERT INTO stats_attachments (at, file_type, bytes, refusal_code) \
                 SELECT a.created_at, COALESCE(a.extension, a.sniffed_type, ''), a.size, a.reason_code \
                 FROM attachments a JOIN messages m ON m.id = a.message_id \
                 WHERE m.direction = 'in' AND a.ticket_id IN ({l}) ORDER BY a.id"
            ),
            ids,
        )
        .await?;
        self.exec_ids(
            format!(
                "INSERT INTO stats_deliveries (at, delivered, dead, attempts) \
                 SELECT created_at, delivered_at IS NOT NULL, dead_at IS NOT NULL, attempts \
                 FROM webhook_outbox WHERE ticket_id IN ({l}) ORDER BY id"
            ),
            ids,
        )
        .await?;
        Ok(())
    }
}
