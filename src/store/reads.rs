//! Reading tickets and what they hold, as the CLI (`tickets`, `show`,
//! `export`, `stats`, `cleanup`) and the workers' fact-gathering see them.
//! Reads go to the pool and take no write lock.

use chrono::{DateTime, Utc};

use super::{
    AttachmentRow, CountedTable, EventRow, MessageRow, ParticipantRow, Result, Store, TicketRow,
    WebhookStatusRow,
};

impl Store {
    pub async fn tickets(&self, status: Option<&str>) -> Result<Vec<TicketRow>> {
        let rows = on_db!(pool self, p => {
            sqlx::query_as::<_, TicketRow>(
                "SELECT * FROM tickets WHERE ($1 IS NULL OR status = $1) ORDER BY id",
            )
            .bind(status)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    pub async fn ticket(&self, id: i64) -> Result<Option<TicketRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, TicketRow>("SELECT * FROM tickets WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })?)
    }

    pub async fn messages(&self, ticket: i64) -> Result<Vec<MessageRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, MessageRow>(
                "SELECT id, ticket_id, raw_id, direction, kind, from_addr, date, message_id, rule, text, note, signed \
                 FROM messages WHERE ticket_id = $1 ORDER BY id",
            )
            .bind(ticket)
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn attachments(&self, ticket: i64) -> Result<Vec<AttachmentRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, AttachmentRow>("SELECT * FROM attachments WHERE ticket_id = $1 ORDER BY id")
                .bind(ticket)
                .fetch_all(p)
                .await
        })?)
    }

    pub async fn events(&self, ticket: i64) -> Result<Vec<EventRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, EventRow>("SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
                .bind(ticket)
                .fetch_all(p)
                .await
        })?)
    }

    /// Tickets linked to this one, either way (continued from / continued by).
    pub async fn linked_tickets(&self, ticket: i64) -> Result<Vec<i64>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(
                "SELECT linked_from FROM tickets WHERE id = $1 AND linked_from IS NOT NULL \
                 UNION SELECT id FROM tickets WHERE linked_from = $1 ORDER BY 1",
            )
            .bind(ticket)
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn participants(&self, ticket: i64) -> Result<Vec<ParticipantRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, ParticipantRow>("SELECT * FROM participants WHERE ticket_id = $1 ORDER BY address")
                .bind(ticket)
                .fetch_all(p)
                .await
        })?)
    }

    /// Tickets not closed, for the auto-close sweep.
    pub async fn open_tickets(&self) -> Result<Vec<TicketRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, TicketRow>(
                "SELECT * FROM tickets WHERE status IN ('open', 'awaiting_customer') ORDER BY id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn raw_message(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(on_db!(pool self, p => {
            // a big message comes out whole here (two copies for a moment):
            // this serves `tickets show` of one message, never the daemon
            sqlx::query_scalar::<_, Vec<u8>>("SELECT COALESCE(b.bytes, r.raw) FROM raw_messages r LEFT JOIN raw_message_blobs b ON b.id = r.id WHERE r.id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })?)
    }

    /// Raw messages that could not be placed in a ticket (unparseable…).
    pub async fn problem_messages(&self) -> Result<Vec<(i64, String, DateTime<Utc>)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (i64, String, DateTime<Utc>)>(
                "SELECT r.id, r.problem, r.received_at FROM raw_messages r \
                 WHERE r.problem IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.raw_id = r.id) ORDER BY r.id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn count(&self, table: CountedTable) -> Result<i64> {
        let sql = match table {
            CountedTable::Tickets => "SELECT COUNT(*) FROM tickets",
            CountedTable::RawMessages => "SELECT COUNT(*) FROM raw_messages",
            CountedTable::Messages => "SELECT COUNT(*) FROM messages",
            CountedTable::PendingMail => {
                "SELECT COUNT(*) FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL"
            }
            CountedTable::PendingWebhooks => {
                "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL"
            }
        };
        Ok(on_db!(pool self, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await)?)
    }

    // ---- facts for `guichet stats` and `cleanup` ----

    pub async fn all_events(&self, since: Option<DateTime<Utc>>) -> Result<Vec<EventRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, EventRow>("SELECT * FROM ticket_events WHERE ($1 IS NULL OR occurred_at >= $1) ORDER BY id")
                .bind(since)
                .fetch_all(p)
                .await
        })?)
    }

    pub async fn all_tickets_since(&self, since: Option<DateTime<Utc>>) -> Result<Vec<TicketRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, TicketRow>(
                "SELECT * FROM tickets WHERE ($1 IS NULL OR created_at >= $1 OR closed_at >= $1) ORDER BY id",
            )
            .bind(since)
            .fetch_all(p)
            .await
        })?)
    }

    /// Files offered by customers (on inbound messages): what the
    /// attachment gate decided on. Agents' own files are relayed, not
    /// judged, and would count as accepted files of an unknown type.
    pub async fn all_attachments(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AttachmentRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, AttachmentRow>(
                "SELECT a.* FROM attachments a JOIN messages m ON m.id = a.message_id \
                 WHERE m.direction = 'in' AND ($1 IS NULL OR a.created_at >= $1) ORDER BY a.id",
            )
                .bind(since)
                .fetch_all(p)
                .await
        })?)
    }

    pub async fn all_webhook_deliveries(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<WebhookStatusRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, WebhookStatusRow>(
                "SELECT created_at, delivered_at, dead_at, attempts FROM webhook_outbox \
                 WHERE ($1 IS NULL OR created_at >= $1) ORDER BY id",
            )
            .bind(since)
            .fetch_all(p)
            .await
        })?)
    }

    /// Stored files (by hash) and whether any ticket that is not closed
    /// long ago still refers to them: `(sha256, still_needed)`.
    pub async fn stored_files(&self, closed_before: DateTime<Utc>) -> Result<Vec<(String, bool)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (String, bool)>(
                "SELECT a.sha256, MAX(CASE WHEN t.closed_at IS NULL OR t.closed_at >= $1 THEN 1 ELSE 0 END) = 1 \
                 FROM attachments a JOIN tickets t ON t.id = a.ticket_id \
                 WHERE a.sha256 IS NOT NULL GROUP BY a.sha256 ORDER BY a.sha256",
            )
            .bind(closed_before)
            .fetch_all(p)
            .await
        })?)
    }
}
