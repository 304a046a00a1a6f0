-- Messages the IMAP server would not give (a NO to FETCH, or no answer in
-- time), per mailbox and UIDVALIDITY (issue 13). A UID of a group that
-- failed is fetched alone from then on; `attempts` counts the failures of
-- those lone FETCHes, and after a few the message is recorded as a
-- problem (raw_messages, without bytes) and skipped.
CREATE TABLE fetch_failures (
    mailbox     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);

-- The UIDVALIDITY under which a stored message had its UID: after the
-- server renumbers a mailbox, an old UID must not pass for a new one
-- (the repair step flags only messages really stored). Rows stored
-- before this column take their mailbox's current UIDVALIDITY.
ALTER TABLE raw_messages ADD COLUMN uid_validity INTEGER;
UPDATE raw_messages SET uid_validity =
    (SELECT uidvalidity FROM mailbox_state WHERE mailbox_state.mailbox = raw_messages.mailbox)
    WHERE mailbox IS NOT NULL;
-- the repair step looks stored messages up by mailbox and UID
CREATE INDEX raw_messages_mailbox_uid ON raw_messages(mailbox, imap_uid);

-- Who holds a claim on a queued mail or webhook delivery: host/pid/start
-- of the daemon process. A daemon that starts gives back at once the
-- claims of dead daemons of its own host (PostgreSQL; on SQLite one file
-- has one daemon, so every claim found at start is a dead one).
ALTER TABLE outbox_mail ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT;
