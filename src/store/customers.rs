//! One person's data (issue 24): finding it for `customers export`, and
//! erasing it for `customers erase`. Addresses are compared lower-cased.
//! The erasure runs in one transaction; a dry run is the same transaction
//! rolled back, so that what it reports is exactly what would go.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::retention::{Removed, list};
use super::{MessageRow, Store, Tx};

/// What an erasure took away (the audit event's counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// Their tickets, removed whole, and what those held.
    pub removed: Removed,
    /// Their messages in other people's tickets, replaced by a placeholder.
    pub placeholders: u64,
    /// Other tickets they were taken off.
    pub participations: u64,
    /// Raw mails of theirs outside their tickets (their messages in other
    /// tickets, mail that could not be placed).
    pub raw_mails: u64,
    /// Mail to them not sent yet, dropped; sent mail's bodies emptied.
    pub queued_mails: u64,
    pub mail_bodies: u64,
    /// Webhook payloads about them dropped or emptied.
    pub webhook_payloads: u64,
    /// Events of other tickets that named them, emptied.
    pub events: u64,
    /// Refusals and auto-reply records of their address.
    pub records: u64,
}

impl Store {
    /// Tickets whose customer is `address`.
    pub async fn tickets_of_customer(&self, address: &str) -> Result<Vec<i64>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>("SELECT id FROM tickets WHERE LOWER(client) = $1 ORDER BY id")
                .bind(address)
                .fetch_all(p)
                .await
        })?)
    }

    /// Other tickets where `address` wrote or is a participant.
    pub async fn tickets_joined_by(&self, address: &str) -> Result<Vec<i64>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM tickets WHERE LOWER(client) <> $1 AND (\
                 id IN (SELECT ticket_id FROM messages WHERE LOWER(from_addr) = $1) \
                 OR id IN (SELECT ticket_id FROM participants WHERE LOWER(address) = $1)) ORDER BY id",
            )
            .bind(address)
            .fetch_all(p)
            .await
        })?)
    }

    /// Raw mails placed in no ticket (problems), with their bytes: the
    /// caller looks for the address in them.
    pub async fn unplaced_raw_mails(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (i64, Vec<u8>)>(
                "SELECT r.id, COALESCE(b.bytes, r.raw) FROM raw_messages r \
                 LEFT JOIN raw_message_blobs b ON b.id = r.id \
                 WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.raw_id = r.id) ORDER BY r.id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    pub async fn audit_events(&self) -> Result<Vec<(String, DateTime<Utc>, String)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (String, DateTime<Utc>, String)>(
                "SELECT event, occurred_at, data FROM audit_events ORDER BY id",
            )
            .fetch_all(p)
            .await
        })?)
    }
}

impl Tx {
    async fn ids_where_address(&mut self, sql: &'static str, address: &str) -> Result<Vec<i64>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(sql).bind(address).fetch_all(&mut *c).await
        })?)
    }

    async fn exec_address(&mut self, sql: &'static str, address: &str) -> Result<u64> {
        Ok(on_db!(tx self, c => {
            sqlx::query(sql).bind(address).execute(&mut *c).await.map(|r| r.rows_affected())
        })?)
    }

    /// Erases `address` from everything but their own tickets (removed
    /// before with [`Tx::remove_tickets`]): their messages in other
    /// tickets become `placeholder`, their files, raw mail, queued mail,
    /// webhook payloads and records go, they leave every participant list.
    /// Returns the counts and the hashes of files the caller removes after
    /// the commit when no attachment names them any more.
    pub async fn erase_traces(
        &mut self,
        address: &str,
        placeholder: &str,
        unplaced_raw: &[i64],
        erased: &mut Erased,
    ) -> Result<Vec<String>> {
        // the tickets where they wrote or took part, before they leave them
        let touched = self
            .ids_where_address(
                "SELECT DISTINCT ticket_id FROM messages WHERE LOWER(from_addr) = $1 \
                 UNION SELECT ticket_id FROM participants WHERE LOWER(address) = $1",
                address,
            )
            .await?;
        let messages: Vec<MessageRow> = on_db!(tx self, c => {
            sqlx::query_as::<_, MessageRow>("SELECT * FROM messages WHERE LOWER(from_addr) = $1 ORDER BY id")
                .bind(address)
                .fetch_all(&mut *c)
                .await
        })?;
        let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        let mut files = Vec::new();
        for chunk in ids.chunks(64) {
            let l = list(1, chunk.len());
            // their files count in `stats` as before
            self.exec_ids(
                format!(
                    "INSERT INTO stats_attachments (at, file_type, bytes, refusal_code) \
                     SELECT a.created_at, COALESCE(a.extension, a.sniffed_type, ''), a.size, a.reason_code \
                     FROM attachments a JOIN messages m ON m.id = a.message_id \
                     WHERE m.direction = 'in' AND a.message_id IN ({l}) ORDER BY a.id"
                ),
                chunk,
            )
            .await?;
            files.extend(
                self.strings_of(
                    format!(
                        "SELECT DISTINCT sha256 FROM attachments WHERE sha256 IS NOT NULL AND message_id IN ({l})"
                    ),
                    chunk,
                )
                .await?,
            );
            self.exec_ids(
                format!("DELETE FROM attachments WHERE message_id IN ({l})"),
                chunk,
            )
            .await?;
        }
        for m in &messages {
            if let Some(mid) = &m.message_id {
                on_db!(tx self, c => {
                    sqlx::query("DELETE FROM known_message_ids WHERE message_id = $1")
                        .bind(mid)
                        .execute(&mut *c)
                        .await
                        .map(|r| r.rows_affected())
                })?;
            }
        }
        for chunk in ids.chunks(64) {
            let sql = format!(
                "UPDATE messages SET text = $1, from_addr = 'erased', raw_id = NULL, message_id = NULL, \
                 note = NULL WHERE id IN ({})",
                list(2, chunk.len())
            );
            erased.placeholders += on_db!(tx self, c => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(placeholder);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *c).await.map(|r| r.rows_affected())
            })?;
        }
        let mut raw: Vec<i64> = messages.iter().filter_map(|m| m.raw_id).collect();
        raw.extend_from_slice(unplaced_raw);
        raw.sort_unstable();
        raw.dedup();
        for chunk in raw.chunks(64) {
            let l = list(1, chunk.len());
            self.exec_ids(
                format!("DELETE FROM raw_message_blobs WHERE id IN ({l})"),
                chunk,
            )
            .await?;
            erased.raw_mails += self
                .exec_ids(
                    format!(
                        "DELETE FROM raw_messages WHERE id IN ({l}) \
                         AND NOT EXISTS (SELECT 1 FROM messages WHERE raw_id = raw_messages.id)"
                    ),
                    chunk,
                )
                .await?;
        }
        erased.participations = self
            .exec_address(
                "DELETE FROM participants WHERE LOWER(address) = $1",
                address,
            )
            .await?;
        // mail to them not sent yet goes; the rest of those tickets' mail
        // (copies to agents quote them) keeps its row, not its body
        let unsent = self
            .ids_where_address(
                "SELECT id FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL \
                 AND LOWER(recipients) LIKE '%' || $1 || '%'",
                address,
            )
            .await?;
        for chunk in unsent.chunks(64) {
            let l = list(1, chunk.len());
            self.exec_ids(
                format!("DELETE FROM outbox_mail_blobs WHERE id IN ({l})"),
                chunk,
            )
            .await?;
            erased.queued_mails += self
                .exec_ids(format!("DELETE FROM outbox_mail WHERE id IN ({l})"), chunk)
                .await?;
        }
        // the rows of mail sent to them stay (bounces find their ticket
        // by Message-ID), without their address
        self.exec_address(
            "UPDATE outbox_mail SET recipients = REPLACE(LOWER(recipients), $1, 'erased') \
                 WHERE LOWER(recipients) LIKE '%' || $1 || '%'",
            address,
        )
        .await?;
        for chunk in touched.chunks(64) {
            let l = list(1, chunk.len());
            let done = self
                .ids_of(
                    format!(
                        "SELECT id FROM outbox_mail WHERE ticket_id IN ({l}) \
                         AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)"
                    ),
                    chunk,
                )
                .await?;
            erased.mail_bodies += done.len() as u64;
            for c in done.chunks(64) {
                self.empty_mail_bodies(c).await?;
            }
            // events and webhooks of those tickets that name them
            let sql = format!(
                "UPDATE ticket_events SET data = '{{\"erased\":true}}' WHERE ticket_id IN ({}) \
                 AND LOWER(data) LIKE '%' || $1 || '%'",
                list(2, chunk.len())
            );
            erased.events += on_db!(tx self, c => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(address);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *c).await.map(|r| r.rows_affected())
            })?;
            let cond = format!(
                "ticket_id IN ({}) AND LOWER(payload) LIKE '%' || $1 || '%'",
                list(2, chunk.len())
            );
            let sqls = [
                format!(
                    "INSERT INTO stats_deliveries (at, delivered, dead, attempts) \
                     SELECT created_at, delivered_at IS NOT NULL, dead_at IS NOT NULL, attempts \
                     FROM webhook_outbox WHERE {cond} ORDER BY id"
                ),
                format!("DELETE FROM webhook_outbox WHERE {cond}"),
            ];
            for (i, sql) in sqls.into_iter().enumerate() {
                let n = on_db!(tx self, c => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(address);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *c).await.map(|r| r.rows_affected())
                })?;
                if i == 1 {
                    erased.webhook_payloads += n;
                }
            }
            // delivered payloads of those tickets may quote them
            erased.webhook_payloads += self
                .exec_ids(
                    format!(
                        "UPDATE webhook_outbox SET payload = '' WHERE ticket_id IN ({l}) \
                         AND delivered_at IS NOT NULL AND payload <> ''"
                    ),
                    chunk,
                )
                .await?;
        }
        erased.records += self
            .exec_address(
                "DELETE FROM mail_refusals WHERE LOWER(address) = $1",
                address,
            )
            .await?;
        erased.records += self
            .exec_address(
                "DELETE FROM auto_replies WHERE LOWER(address) = $1",
                address,
            )
            .await?;
        files.sort_unstable();
        files.dedup();
        Ok(files)
    }

    async fn strings_of(&mut self, sql: String, ids: &[i64]) -> Result<Vec<String>> {
        Ok(on_db!(tx self, c => {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?)
    }

    pub async fn record_audit(&mut self, event: &str, at: DateTime<Utc>, data: &str) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query("INSERT INTO audit_events (event, occurred_at, data) VALUES ($1, $2, $3)")
                .bind(event)
                .bind(at)
                .bind(data)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Queues an event about no ticket for these endpoints (as
    /// [`Store::queue_system_event`], inside this transaction).
    pub async fn queue_audit_webhook(
        &mut self,
        event_id: &str,
        endpoints: &[&str],
        no_ticket: i64,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for endpoint in endpoints {
            on_db!(tx self, c => {
                sqlx::query(
                    "INSERT INTO webhook_outbox (event_id, endpoint, ticket_id, payload, created_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
                )
                .bind(event_id)
                .bind(*endpoint)
                .bind(no_ticket)
                .bind(payload)
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}
