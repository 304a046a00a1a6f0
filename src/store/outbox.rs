//! The mail outbox: a mail is queued in the transaction of what caused
//! it (`Tx::enqueue_mail`), then claimed with a lease, sent, and marked
//! sent, put off or failed by the delivery worker; refusals remembered
//! per ticket and address. On SQLite a mail's bytes live beside its row
//! (`outbox_mail_blobs`), so that claiming and marking rewrite a small row.

use chrono::{DateTime, Utc};

use super::{
    IN_LIST_MAX, NewMail, OutboxMailRow, RefusalRow, Result, Store, Tx, blob, claims, db_text,
};

impl Store {
    /// Takes up to `limit` due messages and leases them until `now + lease`,
    /// so that another daemon does not send them too.
    pub async fn claim_due_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxMailRow>> {
        const SQLITE: &str = "UPDATE outbox_mail SET locked_until = $1, attempts = attempts + 1, claimed_by = $4 \
             WHERE id IN (SELECT id FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL \
               AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) ORDER BY id LIMIT $3) \
             RETURNING id, ticket_id, kind, envelope_from, recipients, message_id, raw, attempts";
        const POSTGRES: &str = "UPDATE outbox_mail SET locked_until = $1, attempts = attempts + 1, claimed_by = $4 \
             WHERE id IN (SELECT id FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL \
               AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) ORDER BY id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING id, ticket_id, kind, envelope_from, recipients, message_id, raw, attempts";
        let until = now + lease;
        // on SQLite `raw` is empty here (but in rows an older Guichet
        // queued), its bytes are in outbox_mail_blobs: those of
        // ordinary mail are read with the claim; a big message's when it
        // is sent (Store::outbox_mail_raw), so that a claim of many rows
        // never holds many big messages
        let mut rows = match self {
            Store::Sqlite(p) => {
                let mut rows = sqlx::query_as::<_, OutboxMailRow>(SQLITE)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .bind(claims::holder())
                    .fetch_all(p)
                    .await?;
                let wanting: Vec<i64> = rows
                    .iter()
                    .filter(|r| r.raw.is_empty())
                    .map(|r| r.id)
                    .collect();
                if !wanting.is_empty() {
                    let list = (1..=wanting.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "SELECT id, bytes FROM outbox_mail_blobs WHERE id IN ({list}) \
                         AND length(bytes) < {}",
                        blob::STREAM_FROM
                    );
                    let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(sqlx::AssertSqlSafe(sql));
                    for id in &wanting {
                        q = q.bind(id);
                    }
                    for (id, bytes) in q.fetch_all(p).await? {
                        if let Some(row) = rows.iter_mut().find(|r| r.id == id) {
                            row.raw = bytes;
                        }
                    }
                }
                rows
            }
            Store::Postgres(p) => {
                sqlx::query_as::<_, OutboxMailRow>(POSTGRES)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .bind(claims::holder())
                    .fetch_all(p)
                    .await?
            }
        };
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// The bytes of a claimed mail whose `raw` came back empty: a big one,
    /// kept in outbox_mail_blobs and read by pieces (see store::blob).
    pub async fn outbox_mail_raw(&self, id: i64) -> Result<Vec<u8>> {
        match self {
            Store::Sqlite(p) => {
                let mut c = p.acquire().await?;
                let usual = blob::small_cache(&mut c).await?;
                let read = blob::read(&mut c, "outbox_mail_blobs", "bytes", id).await;
                blob::restore_cache(&mut c, usual).await?;
                read
            }
            Store::Postgres(p) => Ok(sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT raw FROM outbox_mail WHERE id = $1",
            )
            .bind(id)
            .fetch_one(p)
            .await?),
        }
    }

    pub async fn mail_sent(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query("UPDATE outbox_mail SET sent_at = $1, locked_until = NULL, last_error = NULL WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Gives a claimed mail back untried, due at `at` (the server is down):
    /// the claim does not count as an attempt.
    pub async fn postpone_mail(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE outbox_mail SET next_attempt_at = $1, locked_until = NULL, \
                 attempts = attempts - 1 WHERE id = $2 AND sent_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// [`Store::postpone_mail`] because the relay cannot be reached,
    /// keeping its answer as the mail's last error (`guichet outbox`).
    pub async fn relay_unreachable(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE outbox_mail SET next_attempt_at = $1, locked_until = NULL, \
                 attempts = attempts - 1, last_error = $2 WHERE id = $3 AND sent_at IS NULL",
            )
            .bind(at)
            .bind(error)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// [`Store::mail_sent`] for several messages, in one statement.
    pub async fn mails_sent(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        for chunk in ids.chunks(IN_LIST_MAX) {
            let n = chunk.len().next_power_of_two().min(IN_LIST_MAX);
            let sql = format!(
                "UPDATE outbox_mail SET sent_at = $1, locked_until = NULL, last_error = NULL WHERE id IN ({})",
                (2..n + 2)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let last = *chunk.last().expect("chunks are not empty");
            on_db!(pool self, p => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now);
                // padded with the last id: a repeated value changes nothing
                for id in chunk.iter().copied().chain(std::iter::repeat(last)).take(n) {
                    q = q.bind(id);
                }
                q.execute(p).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// `retry_at = None`: a permanent failure, never tried again.
    pub async fn mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE outbox_mail SET last_error = $1, locked_until = NULL, \
                 next_attempt_at = COALESCE($2, next_attempt_at), failed_at = CASE WHEN $2 IS NULL THEN $3 ELSE NULL END \
                 WHERE id = $4",
            )
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Part of a claimed mail was handed over: what is left, the
    /// recipients the relay deferred (4xx), is tried again at `at`, alone.
    pub async fn mail_partly_sent(
        &self,
        id: i64,
        remaining: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE outbox_mail SET recipients = $1, last_error = $2, locked_until = NULL, \
                 next_attempt_at = $3 WHERE id = $4",
            )
            .bind(remaining)
            .bind(error)
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Agents' addresses the relay refused (their copies, notices): an
    /// admin's problem, shown by `stats`. Each address once, with how many
    /// refusals and the latest answer.
    pub async fn refused_agent_addresses(&self) -> Result<Vec<(String, i64, String)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (String, i64, String)>(
                "SELECT g.a, g.n, \
                 (SELECT l.reply FROM mail_refusals l WHERE lower(l.address) = g.a \
                  AND l.kind IN ('agent_copy', 'agent_notice', 'delivery_notice') ORDER BY l.id DESC LIMIT 1) \
                 FROM (SELECT lower(address) AS a, COUNT(*) AS n FROM mail_refusals \
                  WHERE kind IN ('agent_copy', 'agent_notice', 'delivery_notice') GROUP BY lower(address)) g \
                 ORDER BY g.a",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// The ticket's refused recipients, oldest first.
    pub async fn refusals(&self, ticket: i64) -> Result<Vec<RefusalRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, RefusalRow>(
                "SELECT id, ticket_id, outbox_id, message_id, kind, address, main, source, reply, refused_at, cleared_at \
                 FROM mail_refusals WHERE ticket_id = $1 ORDER BY id",
            )
            .bind(ticket)
            .fetch_all(p)
            .await
        })?)
    }
}

impl Tx {
    /// Queues a message for SMTP; its Message-ID is remembered for threading.
    ///
    /// On SQLite its bytes go in `outbox_mail_blobs` (a big one by pieces,
    /// see store::blob): claiming the row and marking it sent then rewrite
    /// a small row, not the whole mail twice (SQLite rewrites a whole row
    /// on every UPDATE). PostgreSQL keeps them in the row, where an UPDATE
    /// leaves an unchanged big value where it is.
    pub async fn enqueue_mail(&mut self, m: &NewMail<'_>) -> Result<()> {
        if let Tx::Sqlite(t) = self {
            if m.raw.len() >= blob::STREAM_FROM {
                // a big message (an agent copy with files) goes in by pieces
                let usual = blob::small_cache(t).await?;
                let queued = enqueue_mail_in_blobs(t, m).await;
                blob::restore_cache(t, usual).await?;
                queued?;
            } else {
                enqueue_mail_in_blobs(t, m).await?;
            }
        } else {
            on_db!(tx self, c => {
            sqlx::query(
                "INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(m.ticket_id)
            .bind(m.kind)
            .bind(m.envelope_from)
            .bind(m.recipients)
            .bind(db_text(m.message_id))
            .bind(m.raw)
            .bind(m.now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        // its Message-ID is remembered by the database (trigger
        // `outbox_mail_known_message_id`, migration 0014)
        Ok(())
    }
}

/// [`Tx::enqueue_mail`] on SQLite: the row, then its bytes in
/// `outbox_mail_blobs` (a big message by pieces, see store::blob).
async fn enqueue_mail_in_blobs(c: &mut sqlx::SqliteConnection, m: &NewMail<'_>) -> Result<()> {
    if m.raw.len() < blob::STREAM_FROM {
        // both rows in one statement (one hand-off to the database's
        // thread instead of two, issue 17). The trigger that remembers the
        // Message-ID inserts a row too, but `last_insert_rowid()` is back
        // to the mail's own once the first INSERT has ended.
        let sql = "INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, x'', $6, $6); \
             INSERT INTO outbox_mail_blobs (id, bytes) VALUES (last_insert_rowid(), $7)";
        sqlx::query_with(sql, mail_row_arguments(m)?)
            .bind(m.raw)
            .execute(&mut *c)
            .await?;
        return Ok(());
    }
    let sql = "INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, x'', $6, $6) RETURNING id";
    let id = sqlx::query_scalar_with::<_, i64, _>(sql, mail_row_arguments(m)?)
        .fetch_one(&mut *c)
        .await?;
    blob::insert(c, "outbox_mail_blobs", id, m.raw).await
}

/// The six values of a queued mail's row on SQLite, `$1` to `$6`, its
/// bytes apart (they go in `outbox_mail_blobs`).
fn mail_row_arguments<'q>(m: &NewMail<'q>) -> Result<sqlx::sqlite::SqliteArguments> {
    use sqlx::Arguments;
    let mut a = sqlx::sqlite::SqliteArguments::default();
    a.add(m.ticket_id).map_err(sqlx::Error::Encode)?;
    a.add(m.kind).map_err(sqlx::Error::Encode)?;
    a.add(m.envelope_from).map_err(sqlx::Error::Encode)?;
    a.add(m.recipients).map_err(sqlx::Error::Encode)?;
    a.add(db_text(m.message_id)).map_err(sqlx::Error::Encode)?;
    a.add(m.now).map_err(sqlx::Error::Encode)?;
    Ok(a)
}
