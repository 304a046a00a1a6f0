-- Guichet schema (PostgreSQL), mirroring migrations/sqlite table for table.


CREATE TABLE tickets (
    id              BIGSERIAL PRIMARY KEY,
    subject         TEXT NOT NULL,
    department      TEXT NOT NULL,
    priority        TEXT NOT NULL DEFAULT 'normal',
    client          TEXT NOT NULL,
    status          TEXT NOT NULL,
    language        TEXT NOT NULL DEFAULT 'en',
    created_at      TIMESTAMPTZ NOT NULL,
    -- last message in or out (notes, bounces and auto-replies do not count)
    last_activity_at TIMESTAMPTZ NOT NULL,
    -- 'customer' or 'agent': who wrote last (awaiting whom)
    last_message_from TEXT NOT NULL,
    first_agent_reply_at TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ,
    close_reason    TEXT,
    -- the closed ticket this one continues (reply after the reopen window)
    linked_from     BIGINT REFERENCES tickets(id)
);
CREATE INDEX tickets_status ON tickets(status, last_activity_at);

CREATE TABLE participants (
    ticket_id BIGINT NOT NULL REFERENCES tickets(id),
    address   TEXT NOT NULL,
    role      TEXT NOT NULL,            -- customer | cc
    PRIMARY KEY (ticket_id, address)
);
CREATE INDEX participants_address ON participants(address);

-- Every inbound message, stored raw before anything is decided about it.
CREATE TABLE raw_messages (
    id          BIGSERIAL PRIMARY KEY,
    dedup_key   TEXT NOT NULL UNIQUE,   -- Message-ID, or sha256 of the bytes without one
    raw         BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    mailbox     TEXT,
    imap_uid    BIGINT,
    -- what went wrong when the message could not be handled normally
    problem     TEXT
);

CREATE TABLE messages (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES tickets(id),
    raw_id      BIGINT REFERENCES raw_messages(id),
    direction   TEXT NOT NULL,          -- in | out | note
    kind        TEXT NOT NULL,          -- customer | agent | auto_reply | bounce | ack | notice | ...
    from_addr   TEXT NOT NULL,
    date        TIMESTAMPTZ NOT NULL,
    message_id  TEXT,
    rule        TEXT NOT NULL,          -- new | token | headers | subject_tag | outbound | ...
    text        TEXT NOT NULL,
    note        TEXT                    -- why (e.g. "agent not authenticated")
);
CREATE INDEX messages_ticket ON messages(ticket_id, id);

-- Every Message-ID received or sent for a ticket: threading rule 3.
CREATE TABLE known_message_ids (
    message_id TEXT PRIMARY KEY,
    ticket_id  BIGINT NOT NULL REFERENCES tickets(id)
);

CREATE TABLE attachments (
    id            BIGSERIAL PRIMARY KEY,
    message_id    BIGINT NOT NULL REFERENCES messages(id),
    ticket_id     BIGINT NOT NULL REFERENCES tickets(id),
    filename      TEXT NOT NULL,
    extension     TEXT,
    size          BIGINT NOT NULL,
    declared_type TEXT NOT NULL,
    sniffed_type  TEXT,
    sha256        TEXT,
    verdict       TEXT NOT NULL,        -- accepted | refused
    reason_code   TEXT,
    reason        TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_sha ON attachments(sha256);
CREATE INDEX attachments_ticket ON attachments(ticket_id);

CREATE TABLE ticket_events (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    ticket_id   BIGINT NOT NULL REFERENCES tickets(id),
    event       TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    data        TEXT NOT NULL           -- JSON: the event's own data
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, id);

-- Outgoing mail, written in the same transaction as the change that causes it.
CREATE TABLE outbox_mail (
    id            BIGSERIAL PRIMARY KEY,
    ticket_id     BIGINT REFERENCES tickets(id),
    kind          TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    recipients    TEXT NOT NULL,        -- comma-separated
    message_id    TEXT NOT NULL,
    raw           BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    last_error    TEXT,
    sent_at       TIMESTAMPTZ,
    failed_at     TIMESTAMPTZ
);
CREATE INDEX outbox_mail_due ON outbox_mail(sent_at, failed_at, next_attempt_at);

-- Webhook deliveries: one row per (event, endpoint).
CREATE TABLE webhook_outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL,
    endpoint      TEXT NOT NULL,        -- the endpoint URL
    ticket_id     BIGINT NOT NULL,
    payload       TEXT NOT NULL,        -- the body, rendered when the event happened
    created_at    TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    last_status   BIGINT,
    last_error    TEXT,
    delivered_at  TIMESTAMPTZ,
    dead_at       TIMESTAMPTZ,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(delivered_at, dead_at, endpoint, ticket_id, id);

CREATE TABLE mailbox_state (
    mailbox     TEXT PRIMARY KEY,       -- user@host/folder
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL
);

-- Automatic replies sent, per recipient: the hourly limit of "Never answer a robot".
CREATE TABLE auto_replies (
    address TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX auto_replies_address ON auto_replies(address, sent_at);
