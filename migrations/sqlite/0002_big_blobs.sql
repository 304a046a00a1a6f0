-- Big raw messages and big outgoing mail (over 256 KiB) keep their bytes
-- in tables of their own, `raw` then holding x''. There nothing else of
-- the row ever changes (SQLite rewrites a whole row on every UPDATE:
-- claiming a mail and marking it sent each built a 36 MB message twice in
-- memory), and the blob ends its row (SQLite inserts a zeroblob(n) that
-- ends a row without building n bytes of zeros) before Guichet writes it
-- by pieces (src/store/blob.rs). The id is the row's in the main table.
CREATE TABLE raw_message_blobs (
    id    INTEGER PRIMARY KEY REFERENCES raw_messages(id),
    bytes BLOB NOT NULL
);
CREATE TABLE outbox_mail_blobs (
    id    INTEGER PRIMARY KEY REFERENCES outbox_mail(id),
    bytes BLOB NOT NULL
);
