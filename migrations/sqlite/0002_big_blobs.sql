-- Big raw messages and big outgoing mail (over 256 KiB) keep their bytes
-- in these columns, `raw` then holding x''. Being the last column of
-- their row lets SQLite insert them as zeroblob(n) without building n
-- bytes of zeros in memory, before Guichet writes them by pieces
-- (src/store/blob.rs). NULL for every other row.
ALTER TABLE raw_messages ADD COLUMN raw_big BLOB;
ALTER TABLE outbox_mail ADD COLUMN raw_big BLOB;
