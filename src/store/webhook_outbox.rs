//! The webhook outbox: an event's deliveries are queued with it, one per
//! endpoint, then claimed lane by lane (one endpoint's hang never holds
//! another's), delivered in order per ticket, retried, or dead-lettered;
//! each endpoint's health is remembered.

use chrono::{DateTime, Utc};

use super::{
    EndpointBacklogRow, EndpointHealthRow, OutcomeColumns, Result, Store, WebhookOutcome,
    WebhookRow, claims,
};

impl Store {
    /// Due deliveries to `endpoint`, at most one per ticket: the oldest
    /// one not yet delivered, so that the endpoint hears of each ticket in
    /// order. Each endpoint is claimed on its own (its lane): a hung
    /// endpoint's leases never hold another endpoint's events.
    pub async fn claim_due_webhooks(
        &self,
        endpoint: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<WebhookRow>> {
        const SQLITE: &str = "UPDATE webhook_outbox SET locked_until = $1, attempts = attempts + 1, claimed_by = $5 \
             WHERE id IN (SELECT w.id FROM webhook_outbox w WHERE w.delivered_at IS NULL AND w.dead_at IS NULL \
               AND w.endpoint = $4 \
               AND w.next_attempt_at <= $2 AND (w.locked_until IS NULL OR w.locked_until < $2) \
               AND w.id = (SELECT MIN(x.id) FROM webhook_outbox x WHERE x.endpoint = w.endpoint \
                           AND x.ticket_id = w.ticket_id AND x.delivered_at IS NULL AND x.dead_at IS NULL) \
               ORDER BY w.id LIMIT $3) \
             RETURNING id, event_id, endpoint, ticket_id, payload, created_at, attempts";
        // PostgreSQL: when a concurrent claim commits first, the UPDATE
        // re-checks only the target row's own conditions, not the
        // subquery's, so both daemons got the row (tests/store.rs saw it).
        // Either of these closes that: the subquery locks what it picks
        // and skips rows another daemon is claiming (`SKIP LOCKED`, no
        // waiting), and the lease conditions are repeated on the row itself.
        const POSTGRES: &str = "UPDATE webhook_outbox SET locked_until = $1, attempts = attempts + 1, claimed_by = $5 \
             WHERE id IN (SELECT w.id FROM webhook_outbox w WHERE w.delivered_at IS NULL AND w.dead_at IS NULL \
               AND w.endpoint = $4 \
               AND w.next_attempt_at <= $2 AND (w.locked_until IS NULL OR w.locked_until < $2) \
               AND w.id = (SELECT MIN(x.id) FROM webhook_outbox x WHERE x.endpoint = w.endpoint \
                           AND x.ticket_id = w.ticket_id AND x.delivered_at IS NULL AND x.dead_at IS NULL) \
               ORDER BY w.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             AND delivered_at IS NULL AND dead_at IS NULL AND (locked_until IS NULL OR locked_until < $2) \
             RETURNING id, event_id, endpoint, ticket_id, payload, created_at, attempts";
        let until = now + lease;
        let mut rows = match self {
            Store::Sqlite(p) => {
                sqlx::query_as::<_, WebhookRow>(SQLITE)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .bind(endpoint)
                    .bind(claims::holder())
                    .fetch_all(p)
                    .await?
            }
            Store::Postgres(p) => {
                sqlx::query_as::<_, WebhookRow>(POSTGRES)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .bind(endpoint)
                    .bind(claims::holder())
                    .fetch_all(p)
                    .await?
            }
        };
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// How many of `endpoint`'s events could be claimed at `now` (each
    /// ticket's oldest undelivered one, when due): those a held endpoint
    /// keeps waiting.
    pub async fn count_due_webhooks(&self, endpoint: &str, now: DateTime<Utc>) -> Result<i64> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM webhook_outbox w WHERE w.delivered_at IS NULL AND w.dead_at IS NULL \
                 AND w.endpoint = $1 AND w.next_attempt_at <= $2 AND (w.locked_until IS NULL OR w.locked_until < $2) \
                 AND w.id = (SELECT MIN(x.id) FROM webhook_outbox x WHERE x.endpoint = w.endpoint \
                             AND x.ticket_id = w.ticket_id AND x.delivered_at IS NULL AND x.dead_at IS NULL)",
            )
            .bind(endpoint)
            .bind(now)
            .fetch_one(p)
            .await
        })?)
    }

    /// Gives claimed deliveries back untouched: their attempts were
    /// abandoned (shutdown) before any answer. Due as they were, lease
    /// released, the claim not counted as an attempt.
    pub async fn release_webhooks(&self, ids: &[i64]) -> Result<()> {
        for id in ids {
            on_db!(pool self, p => {
                sqlx::query(
                    "UPDATE webhook_outbox SET locked_until = NULL, attempts = attempts - 1 \
                     WHERE id = $1 AND delivered_at IS NULL AND dead_at IS NULL",
                )
                .bind(*id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Endpoints with undelivered events.
    pub async fn pending_webhook_endpoints(&self) -> Result<Vec<String>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT endpoint FROM webhook_outbox \
                 WHERE delivered_at IS NULL AND dead_at IS NULL ORDER BY endpoint",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// Gives up every undelivered event of `endpoint`; how many.
    pub async fn dead_letter_endpoint(
        &self,
        endpoint: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(on_db!(pool self, p => {
            sqlx::query(
                "UPDATE webhook_outbox SET last_error = $1, dead_at = $2, locked_until = NULL \
                 WHERE endpoint = $3 AND delivered_at IS NULL AND dead_at IS NULL",
            )
            .bind(error)
            .bind(now)
            .bind(endpoint)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// Queues an event that belongs to no ticket (`system.degraded`…) for
    /// `endpoints`, filed under ticket [`NO_TICKET`](crate::rules::webhooks::system::NO_TICKET).
    pub async fn queue_system_event(
        &self,
        event_id: &str,
        endpoints: &[&str],
        // the row's ticket: system events name none (rules::webhooks::system)
        no_ticket: i64,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for endpoint in endpoints {
            on_db!(pool self, p => {
                sqlx::query(
                    "INSERT INTO webhook_outbox (event_id, endpoint, ticket_id, payload, created_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
                )
                .bind(event_id)
                .bind(*endpoint)
                .bind(no_ticket)
                .bind(payload)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Undelivered events per endpoint (for `guichet outbox`).
    pub async fn webhook_backlogs(&self) -> Result<Vec<EndpointBacklogRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, EndpointBacklogRow>(
                "SELECT endpoint, COUNT(*) AS pending, MIN(created_at) AS oldest FROM webhook_outbox \
                 WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY endpoint ORDER BY endpoint",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// The stored health of every endpoint that ever failed.
    pub async fn endpoint_healths(&self) -> Result<Vec<EndpointHealthRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, EndpointHealthRow>(
                "SELECT endpoint, failures, paused_until, last_error, updated_at \
                 FROM webhook_endpoints ORDER BY endpoint",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// `endpoint`'s stored health, if it ever failed.
    pub async fn endpoint_health(&self, endpoint: &str) -> Result<Option<EndpointHealthRow>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, EndpointHealthRow>(
                "SELECT endpoint, failures, paused_until, last_error, updated_at \
                 FROM webhook_endpoints WHERE endpoint = $1",
            )
            .bind(endpoint)
            .fetch_optional(p)
            .await
        })?)
    }

    /// Stores `endpoint`'s health after an attempt. `last_error` is kept
    /// when `None` (a success leaves the last failure visible).
    pub async fn save_endpoint_health(
        &self,
        endpoint: &str,
        failures: u32,
        paused_until: Option<DateTime<Utc>>,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (endpoint, failures, paused_until, last_error, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (endpoint) DO UPDATE SET failures = excluded.failures, \
                 paused_until = excluded.paused_until, \
                 last_error = COALESCE(excluded.last_error, webhook_endpoints.last_error), \
                 updated_at = excluded.updated_at",
            )
            .bind(endpoint)
            .bind(i64::from(failures))
            .bind(paused_until)
            .bind(last_error)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn webhook_result(
        &self,
        id: i64,
        outcome: WebhookOutcome<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (status, error, delivered, dead, next): OutcomeColumns<'_> = match outcome {
            WebhookOutcome::Delivered { status } => {
                (Some(status.into()), None, Some(now), None, None)
            }
            WebhookOutcome::Retry { status, error, at } => {
                (status.map(i64::from), Some(error), None, None, Some(at))
            }
            WebhookOutcome::Dead { status, error } => {
                (status.map(i64::from), Some(error), None, Some(now), None)
            }
        };
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE webhook_outbox SET last_status = $1, last_error = $2, delivered_at = $3, dead_at = $4, \
                 next_attempt_at = COALESCE($5, next_attempt_at), locked_until = NULL WHERE id = $6",
            )
            .bind(status)
            .bind(error)
            .bind(delivered)
            .bind(dead)
            .bind(next)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Gives a claimed delivery back untried, due at `at`: its endpoint is
    /// unavailable for now (a 429, a timeout…), so the claim does not
    /// count as an attempt.
    pub async fn postpone_webhook(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "UPDATE webhook_outbox SET next_attempt_at = $1, locked_until = NULL, \
                 attempts = attempts - 1 WHERE id = $2",
            )
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
