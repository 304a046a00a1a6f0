-- Retention and erasure (issue 24).
-- What `guichet stats` needs of tickets, files and webhook deliveries that
-- retention or an erasure removed: the same facts the live tables give,
-- without ids, subjects, addresses or texts, written in the transaction
-- that removes them. `stats` reads these beside the live rows, so the
-- figures for a past period do not change when its tickets go.
CREATE TABLE stats_tickets (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at           TEXT NOT NULL,
    first_agent_reply_at TEXT,
    closed_at            TEXT,
    close_reason         TEXT,
    closings             TEXT NOT NULL,  -- JSON [[at, reason], ...]
    reopenings           TEXT NOT NULL   -- JSON [at, ...]
);
CREATE TABLE stats_attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    file_type    TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    refusal_code TEXT
);
CREATE TABLE stats_deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    delivered  INTEGER NOT NULL,
    dead       INTEGER NOT NULL,
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
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event       TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    data        TEXT NOT NULL           -- JSON: counts
);
