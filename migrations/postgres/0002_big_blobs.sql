-- The columns SQLite keeps big blobs in (see migrations/sqlite): the SQL
-- both backends share reads them. PostgreSQL never fills them.
ALTER TABLE raw_messages ADD COLUMN raw_big BYTEA;
ALTER TABLE outbox_mail ADD COLUMN raw_big BYTEA;
