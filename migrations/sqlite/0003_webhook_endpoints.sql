-- Each webhook endpoint's health (issue 26): its consecutive failed
-- attempts and, while it is held or paused (its circuit breaker open),
-- until when its events wait. One row per endpoint URL that ever failed;
-- `guichet outbox` shows it. Rows of `webhook_outbox` are untouched.
CREATE TABLE webhook_endpoints (
    endpoint     TEXT PRIMARY KEY,      -- the endpoint URL, as in webhook_outbox
    failures     INTEGER NOT NULL DEFAULT 0,
    paused_until TEXT,
    last_error   TEXT,
    updated_at   TEXT NOT NULL
);
