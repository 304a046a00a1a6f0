//! What the store keeps about reading a mailbox: which messages are
//! stored already (by dedup key, by UID), the checkpoint, the fetch claims
//! several daemons share, and the messages the IMAP server would not give
//! (issue 13).

use chrono::{DateTime, Utc};

use super::{IN_LIST_MAX, NewRaw, Result, Store, Tx, db_text, padded, placeholders};

impl Store {
    /// Rule 1 before any expensive work: is this message stored already?
    /// (A read on the pool: no write lock taken.)
    pub async fn is_known(&self, dedup_key: &str) -> Result<bool> {
        Ok(!self.known_dedup_keys(&[dedup_key]).await?.is_empty())
    }

    /// Which of these dedup keys are stored already: one query for a
    /// whole batch of messages.
    pub async fn known_dedup_keys(
        &self,
        keys: &[&str],
    ) -> Result<std::collections::HashSet<String>> {
        let mut known = std::collections::HashSet::new();
        for chunk in keys.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT dedup_key FROM raw_messages WHERE dedup_key IN ({})",
                placeholders(chunk.len())
            );
            let found: Vec<String> = on_db!(pool self, p => {
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.clone()));
                for k in padded(chunk) {
                    q = q.bind(db_text(k));
                }
                q.fetch_all(p).await
            })?;
            // the caller's keys, not their stored (NUL-free) form
            known.extend(
                chunk
                    .iter()
                    .filter(|k| found.iter().any(|f| *f == *db_text(k)))
                    .map(|k| k.to_string()),
            );
        }
        Ok(known)
    }

    /// Which of `uids` (of `mailbox` at `uid_validity`) have their raw
    /// message stored (the repair step flags only those).
    pub async fn stored_uids(
        &self,
        mailbox: &str,
        uid_validity: i64,
        uids: &[u32],
    ) -> Result<Vec<u32>> {
        let mut found = Vec::new();
        for chunk in uids.chunks(IN_LIST_MAX) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT DISTINCT imap_uid FROM raw_messages \
                 WHERE mailbox = $1 AND uid_validity = $2 AND imap_uid IN ({list})"
            );
            let rows: Vec<i64> = on_db!(pool self, p => {
                // only placeholders are formatted in, never a value
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(mailbox)
                    .bind(uid_validity);
                for uid in chunk {
                    q = q.bind(i64::from(*uid));
                }
                q.fetch_all(p).await
            })?;
            found.extend(rows.into_iter().filter_map(|u| u32::try_from(u).ok()));
        }
        found.sort_unstable();
        Ok(found)
    }

    pub async fn mailbox_state(&self, mailbox: &str) -> Result<Option<(i64, i64)>> {
        Ok(self
            .mailbox_checkpoint(mailbox)
            .await?
            .map(|(v, last, _)| (v, last)))
    }

    /// `(uidvalidity, last_uid, catch_up_from)` of a mailbox.
    pub async fn mailbox_checkpoint(&self, mailbox: &str) -> Result<Option<(i64, i64, i64)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (i64, i64, i64)>(
                "SELECT uidvalidity, last_uid, catch_up_from FROM mailbox_state WHERE mailbox = $1",
            )
            .bind(mailbox)
            .fetch_optional(p)
            .await
        })?)
    }

    /// The checkpoint of a first contact: `last_uid`, and below which
    /// unread messages are history for good.
    pub async fn first_checkpoint(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        last_uid: i64,
        catch_up_from: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        on_db!(tx &mut tx, c => {
            sqlx::query(
                "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, catch_up_from) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
                 last_uid = excluded.last_uid, catch_up_from = excluded.catch_up_from",
            )
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(last_uid)
            .bind(catch_up_from)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Claims `uids` of `mailbox` for this daemon until `until`, before
    /// their bodies are fetched; returns those it got (ascending): the
    /// ones nobody holds, or whose claim ran out by `now`. On PostgreSQL
    /// several daemons share a mailbox this way, each fetching and
    /// preparing its own part; a SQLite file has one daemon, which gets
    /// them all without a statement.
    pub async fn claim_uids(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uids: &[u32],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<u32>> {
        let Store::Postgres(p) = self else {
            return Ok(uids.to_vec());
        };
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
        // a concurrent claim of the same UID waits for this statement
        // (the primary key's row lock), then sees it held
        let mut got: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO fetch_claims (mailbox, uidvalidity, uid, claimed_by, claimed_until) \
             SELECT $1, $2, u, $3, $4 FROM UNNEST($5::BIGINT[]) AS u \
             ON CONFLICT (mailbox, uidvalidity, uid) DO UPDATE \
               SET claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until \
               WHERE fetch_claims.claimed_until <= $6 OR fetch_claims.claimed_by = EXCLUDED.claimed_by \
             RETURNING uid",
        )
        .bind(mailbox)
        .bind(uidvalidity)
        .bind(super::claims::holder())
        .bind(until)
        .bind(&wanted)
        .bind(now)
        .fetch_all(p)
        .await?;
        // claims that ran out long ago: nobody needs them any more
        sqlx::query("DELETE FROM fetch_claims WHERE mailbox = $1 AND claimed_until < $2")
            .bind(mailbox)
            .bind(now - chrono::Duration::hours(1))
            .execute(p)
            .await?;
        got.sort_unstable();
        Ok(got
            .into_iter()
            .filter_map(|u| u32::try_from(u).ok())
            .collect())
    }

    /// Whether another daemon holds a live claim on a UID of `mailbox`
    /// below `uid`: it is fetching or storing earlier messages, which go
    /// first (`rules::fetching::before_storing`). A dead daemon's claims
    /// stop counting when they run out. Never on SQLite (one daemon).
    pub async fn others_hold_claims_below(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uid: u32,
    ) -> Result<bool> {
        let Store::Postgres(p) = self else {
            return Ok(false);
        };
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM fetch_claims WHERE mailbox = $1 \
               AND uidvalidity = $2 AND uid < $3 AND claimed_by <> $4 AND claimed_until > $5)",
        )
        .bind(mailbox)
        .bind(uidvalidity)
        .bind(i64::from(uid))
        .bind(super::claims::holder())
        .bind(Utc::now())
        .fetch_one(p)
        .await?)
    }

    /// Gives up this daemon's claims on `uids` of `mailbox` (all of them
    /// when `uids` is `None`): stored, or left for the next pass.
    pub async fn release_uids(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uids: Option<&[u32]>,
    ) -> Result<()> {
        let Store::Postgres(p) = self else {
            return Ok(());
        };
        let uids: Option<Vec<i64>> = uids.map(|u| u.iter().map(|&u| i64::from(u)).collect());
        sqlx::query(
            "DELETE FROM fetch_claims WHERE mailbox = $1 AND uidvalidity = $2 \
               AND claimed_by = $3 AND ($4::BIGINT[] IS NULL OR uid = ANY($4))",
        )
        .bind(mailbox)
        .bind(uidvalidity)
        .bind(super::claims::holder())
        .bind(uids)
        .execute(p)
        .await?;
        Ok(())
    }

    /// The UIDs of `mailbox` (at `uidvalidity`) whose FETCH failed, with
    /// how many times it failed when they were fetched alone. Ascending.
    pub async fn fetch_failures(&self, mailbox: &str, uidvalidity: i64) -> Result<Vec<(u32, i64)>> {
        let rows: Vec<(i64, i64)> = on_db!(pool self, p => {
            sqlx::query_as(
                "SELECT uid, attempts FROM fetch_failures \
                 WHERE mailbox = $1 AND uidvalidity = $2 ORDER BY uid",
            )
            .bind(mailbox)
            .bind(uidvalidity)
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(uid, n)| u32::try_from(uid).ok().map(|u| (u, n)))
            .collect())
    }

    /// Notes a failed FETCH of `uid`: `alone` when it was the only UID
    /// asked for (then it counts as an attempt), else it is only marked to
    /// be fetched alone from now on. Returns the attempts counted so far.
    pub async fn record_fetch_failure(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uid: u32,
        alone: bool,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let add = i64::from(alone);
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO fetch_failures (mailbox, uidvalidity, uid, attempts, last_error, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (mailbox, uidvalidity, uid) DO UPDATE SET \
                   attempts = fetch_failures.attempts + excluded.attempts, \
                   last_error = excluded.last_error, updated_at = excluded.updated_at \
                 RETURNING attempts",
            )
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(i64::from(uid))
            .bind(add)
            .bind(error)
            .bind(now)
            .fetch_one(p)
            .await
        })?)
    }

    /// Forgets the failures of UIDs that were fetched after all.
    pub async fn clear_fetch_failures(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uids: &[u32],
    ) -> Result<()> {
        for uid in uids {
            on_db!(pool self, p => {
                sqlx::query(
                    "DELETE FROM fetch_failures WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3",
                )
                .bind(mailbox)
                .bind(uidvalidity)
                .bind(i64::from(*uid))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Gives up on a message the server would not give: it is recorded as
    /// a problem (no bytes; the mailbox, UID and the server's answer say
    /// where to look), which also counts it as stored, so that it is
    /// flagged and skipped like any other message handled.
    pub async fn record_unfetchable(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        uid: u32,
        problem: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let dedup_key = format!("unfetchable:{mailbox}:{uidvalidity}:{uid}");
        let mut tx = self.begin().await?;
        tx.insert_raw(&NewRaw {
            dedup_key: &dedup_key,
            raw: b"",
            received_at: now,
            mailbox: Some(mailbox),
            imap_uid: Some(i64::from(uid)),
            uid_validity: Some(uidvalidity),
            problem: Some(problem),
        })
        .await?;
        tx.set_mailbox_state(mailbox, uidvalidity, i64::from(uid))
            .await?;
        on_db!(tx &mut tx, c => {
            sqlx::query(
                "DELETE FROM fetch_failures WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3",
            )
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(i64::from(uid))
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }
}
