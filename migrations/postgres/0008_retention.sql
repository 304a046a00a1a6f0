-- Retention and erasure (issue 24).
-- What `guichet stats` needs of tickets, files and webhook deliveries that
-- retention or an erasure removed: the same facts the live tables give,
-- without ids, subjects, addresses or texts, written in the transaction
-- that removes them. `stats` reads these beside the live rows, so the
-- figures for a past period do not change when its tickets go.
CREATE TABLE stats_tickets (
    id                   BIGSERIAL PRIMARY KEY,
    created_at           TIMESTAMPTZ NOT NULL,
    first_agent_reply_at TIMESTAMPTZ,
    closed_at            TIMESTAMPTZ,
    close_reason         TEXT,
    closings             TEXT NOT NULL,  -- JSON [[at, reason], ...]
    reopenings           TEXT NOT NULL   -- JSON [at, ...]
);
CREATE TABLE stats_attachments (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    file_type    TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    refusal_code TEXT
);
CREATE TABLE stats_deliveries (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    delivered  BOOLEAN NOT NULL,
    dead       BOOLEAN NOT NULL,
    attempts   INTEGER NOT NULL
);
-- the purge finds its tickets and their rows by these
CREATE INDEX tickets_closed ON tickets(closed_at);
CREATE INDEX tickets_linked_from ON tickets(linked_from);
CREATE INDEX messages_raw ON messages(raw_id);
CREATE INDEX known_message_ids_ticket ON known_message_ids(ticket_id);
CREATE INDEX outbox_mail_ticket ON outbox_mail(ticket_id);
CREATE INDEX outbox_mail_sent ON outbox_mail(sent_at);
CREATE INDEX webhook_outbox_ticket ON webhook_outbox(ticket_id);
CREATE INDEX webhook_outbox_delivered ON webhook_outbox(delivered_at);
CREATE INDEX auto_replies_sent ON auto_replies(sent_at);
-- Audit records that belong to no ticket: `customer.erased` (when and how
-- much was erased, never who).
CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    event       TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    data        TEXT NOT NULL           -- JSON: counts
);
