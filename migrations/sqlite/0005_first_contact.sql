-- First contact with a mailbox that holds history (imap.first_start):
-- unread messages at or below last_uid that were never stored are taken
-- on a later pass ("catch-up": the ones left when a first pass was cut
-- short, or a FETCH that came back without a body), except those at or
-- below catch_up_from, which a first start with first_start = "new" left
-- as history.
ALTER TABLE mailbox_state ADD COLUMN catch_up_from INTEGER NOT NULL DEFAULT 0;
