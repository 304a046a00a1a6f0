//! The two outboxes as an admin sees them (`guichet outbox`, `stats`,
//! `/metrics`): what waits, what failed, and the admin's two actions on
//! an item, retry (due at once) and drop (given up, kept as a record).

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use super::Store;

/// How deep the outboxes are.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub mail_pending: i64,
    pub mail_failed: i64,
    pub mail_oldest_pending: Option<DateTime<Utc>>,
    pub webhooks_pending: i64,
    pub webhooks_dead: i64,
    pub webhooks_oldest_pending: Option<DateTime<Utc>>,
}

/// A mail not sent: waiting (`failed_at` `None`) or given up.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedMailRow {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub kind: String,
    pub recipients: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// A webhook delivery not made: waiting (`dead_at` `None`) or given up.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedWebhookRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint: String,
    pub ticket_id: i64,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
}

/// Which items an admin's retry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    One(i64),
    /// Every waiting item, and those given up within [`RETRY_ALL_FAILED_WITHIN`].
    All,
}

/// `outbox retry --all` takes back failures this recent, not older ones
/// (an old refusal retried would surprise more than help).
pub const RETRY_ALL_FAILED_WITHIN: Duration = Duration::days(7);

const MAIL_COLUMNS: &str =
    "id, ticket_id, kind, recipients, attempts, created_at, next_attempt_at, last_error, failed_at";
const WEBHOOK_COLUMNS: &str = "id, event_id, endpoint, ticket_id, attempts, created_at, next_attempt_at, last_status, last_error, dead_at";

impl Store {
    pub async fn queue_depth(&self) -> Result<QueueDepth> {
        const MAIL: &str = "SELECT \
             COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END), 0) \
             FROM outbox_mail WHERE sent_at IS NULL";
        const MAIL_OLDEST: &str =
            "SELECT MIN(created_at) FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL";
        const HOOKS: &str = "SELECT \
             COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 0 ELSE 1 END), 0) \
             FROM webhook_outbox WHERE delivered_at IS NULL";
        const HOOKS_OLDEST: &str = "SELECT MIN(created_at) FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL";
        Ok(on_db!(pool self, p => {
            let (mail_pending, mail_failed): (i64, i64) =
                sqlx::query_as(MAIL).fetch_one(p).await?;
            let mail_oldest_pending: Option<DateTime<Utc>> =
                sqlx::query_scalar(MAIL_OLDEST).fetch_one(p).await?;
            let (webhooks_pending, webhooks_dead): (i64, i64) =
                sqlx::query_as(HOOKS).fetch_one(p).await?;
            let webhooks_oldest_pending: Option<DateTime<Utc>> =
                sqlx::query_scalar(HOOKS_OLDEST).fetch_one(p).await?;
            QueueDepth {
                mail_pending,
                mail_failed,
                mail_oldest_pending,
                webhooks_pending,
                webhooks_dead,
                webhooks_oldest_pending,
            }
        }))
    }

    /// Every waiting mail (oldest first), then the `failed` most recently
    /// given up.
    pub async fn queued_mail(&self, failed: i64) -> Result<Vec<QueuedMailRow>> {
        let waiting = format!(
            "SELECT {MAIL_COLUMNS} FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id"
        );
        let given_up = format!(
            "SELECT {MAIL_COLUMNS} FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NOT NULL \
             ORDER BY failed_at DESC, id DESC LIMIT $1"
        );
        Ok(on_db!(pool self, p => {
            let mut rows = sqlx::query_as::<_, QueuedMailRow>(sqlx::AssertSqlSafe(waiting))
                .fetch_all(p)
                .await?;
            rows.extend(
                sqlx::query_as::<_, QueuedMailRow>(sqlx::AssertSqlSafe(given_up))
                    .bind(failed)
                    .fetch_all(p)
                    .await?,
            );
            rows
        }))
    }

    /// Every waiting webhook delivery (oldest first), then the `dead` most
    /// recently given up.
    pub async fn queued_webhooks(&self, dead: i64) -> Result<Vec<QueuedWebhookRow>> {
        let waiting = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL ORDER BY id"
        );
        let given_up = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NOT NULL \
             ORDER BY dead_at DESC, id DESC LIMIT $1"
        );
        Ok(on_db!(pool self, p => {
            let mut rows = sqlx::query_as::<_, QueuedWebhookRow>(sqlx::AssertSqlSafe(waiting))
                .fetch_all(p)
                .await?;
            rows.extend(
                sqlx::query_as::<_, QueuedWebhookRow>(sqlx::AssertSqlSafe(given_up))
                    .bind(dead)
                    .fetch_all(p)
                    .await?,
            );
            rows
        }))
    }

    /// Makes mail due at once (a given-up one waits again, its attempts
    /// counted from zero). A message the daemon is sending right now (its
    /// claim not over) is left to it. Returns how many.
    pub async fn retry_mail(&self, which: Which, now: DateTime<Utc>) -> Result<u64> {
        let filter = match which {
            Which::One(_) => "id = $2",
            Which::All => "(failed_at IS NULL OR failed_at >= $2)",
        };
        let sql = format!(
            "UPDATE outbox_mail SET next_attempt_at = $1, failed_at = NULL, attempts = 0 \
             WHERE sent_at IS NULL AND (locked_until IS NULL OR locked_until < $1) AND {filter}"
        );
        let since = now - RETRY_ALL_FAILED_WITHIN;
        Ok(on_db!(pool self, p => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            let q = match which {
                Which::One(id) => q.bind(id),
                Which::All => q.bind(since),
            };
            q.execute(p).await.map(|r| r.rows_affected())
        })?)
    }

    /// [`Store::retry_mail`] for webhook deliveries.
    pub async fn retry_webhooks(&self, which: Which, now: DateTime<Utc>) -> Result<u64> {
        let filter = match which {
            Which::One(_) => "id = $2",
            Which::All => "(dead_at IS NULL OR dead_at >= $2)",
        };
        let sql = format!(
            "UPDATE webhook_outbox SET next_attempt_at = $1, dead_at = NULL, attempts = 0 \
             WHERE delivered_at IS NULL AND (locked_until IS NULL OR locked_until < $1) AND {filter}"
        );
        let since = now - RETRY_ALL_FAILED_WITHIN;
        Ok(on_db!(pool self, p => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            let q = match which {
                Which::One(id) => q.bind(id),
                Which::All => q.bind(since),
            };
            q.execute(p).await.map(|r| r.rows_affected())
        })?)
    }

    /// Gives up a waiting mail: never sent, kept (failed) with why.
    /// False when there is no such waiting mail.
    pub async fn drop_mail(&self, id: i64, why: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(on_db!(pool self, p => {
            sqlx::query(
                "UPDATE outbox_mail SET failed_at = $1, locked_until = NULL, \
                 last_error = $2 || COALESCE(' (last error: ' || last_error || ')', '') \
                 WHERE id = $3 AND sent_at IS NULL AND failed_at IS NULL",
            )
            .bind(now)
            .bind(why)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })? > 0)
    }

    /// Gives up a waiting webhook delivery (dead-lettered, with why).
    pub async fn drop_webhook(&self, id: i64, why: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(on_db!(pool self, p => {
            sqlx::query(
                "UPDATE webhook_outbox SET dead_at = $1, locked_until = NULL, \
                 last_error = $2 || COALESCE(' (last error: ' || last_error || ')', '') \
                 WHERE id = $3 AND delivered_at IS NULL AND dead_at IS NULL",
            )
            .bind(now)
            .bind(why)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })? > 0)
    }
}
