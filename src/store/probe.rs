//! What the daemon's metrics read from the store since it started: ticket
//! events and attachment verdicts past a row id, mail handed to the relay
//! past an instant. Each query reads by primary key or index range.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::Store;

/// A count of rows of one kind past a watermark, and the new watermark.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CountSince {
    pub kind: String,
    pub detail: String,
    pub n: i64,
    pub last_id: i64,
}

impl Store {
    /// The highest ticket event and attachment ids (0 when none): where
    /// the daemon's counters start.
    pub async fn probe_watermarks(&self) -> Result<(i64, i64)> {
        Ok(on_db!(pool self, p => {
            let events: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM ticket_events")
                .fetch_one(p)
                .await?;
            let files: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM attachments")
                .fetch_one(p)
                .await?;
            (events, files)
        }))
    }

    /// Ticket events after id `after`, counted per event name.
    pub async fn events_since(&self, after: i64) -> Result<Vec<CountSince>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, CountSince>(
                "SELECT event AS kind, '' AS detail, COUNT(*) AS n, MAX(id) AS last_id \
                 FROM ticket_events WHERE id > $1 GROUP BY event",
            )
            .bind(after)
            .fetch_all(p)
            .await?
        }))
    }

    /// Attachments after id `after`, counted per verdict and reason code.
    pub async fn verdicts_since(&self, after: i64) -> Result<Vec<CountSince>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, CountSince>(
                "SELECT verdict AS kind, COALESCE(reason_code, '') AS detail, COUNT(*) AS n, MAX(id) AS last_id \
                 FROM attachments WHERE id > $1 GROUP BY verdict, COALESCE(reason_code, '')",
            )
            .bind(after)
            .fetch_all(p)
            .await?
        }))
    }

    /// Mail handed to the relay after `after`: when each was queued and
    /// when it was sent.
    pub async fn sent_since(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (DateTime<Utc>, DateTime<Utc>)>(
                "SELECT created_at, sent_at FROM outbox_mail WHERE sent_at IS NOT NULL AND sent_at > $1 \
                 ORDER BY sent_at LIMIT 10000",
            )
            .bind(after)
            .fetch_all(p)
            .await?
        }))
    }
}
