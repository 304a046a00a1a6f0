-- The tables SQLite keeps big blobs in (see migrations/sqlite): the SQL
-- both backends share reads them. PostgreSQL never fills them.
CREATE TABLE raw_message_blobs (
    id    BIGINT PRIMARY KEY REFERENCES raw_messages(id),
    bytes BYTEA NOT NULL
);
CREATE TABLE outbox_mail_blobs (
    id    BIGINT PRIMARY KEY REFERENCES outbox_mail(id),
    bytes BYTEA NOT NULL
);
