-- Two indexes repeated the first column of another index on the same
-- table: outbox_mail_due (sent_at, failed_at, next_attempt_at) serves every
-- lookup by sent_at, and webhook_outbox_due (delivered_at, dead_at, ...)
-- every lookup by delivered_at. Each cost a B-tree write for every mail
-- queued and every mail marked sent, and for every webhook event queued
-- and delivered (issue 17; tests/store.rs
-- no_index_repeats_the_leading_columns_of_another).
DROP INDEX IF EXISTS outbox_mail_sent;
DROP INDEX IF EXISTS webhook_outbox_delivered;
