-- Every Message-ID received or sent for a ticket is remembered for
-- threading (rule 3) by the database itself, as its message or its queued
-- mail is inserted (issue 17): before, each was a statement of its own,
-- and each statement costs a hand-off to the database's thread.
CREATE TRIGGER messages_known_message_id AFTER INSERT ON messages
WHEN NEW.message_id IS NOT NULL
BEGIN
    INSERT INTO known_message_ids (message_id, ticket_id)
    VALUES (NEW.message_id, NEW.ticket_id)
    ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER outbox_mail_known_message_id AFTER INSERT ON outbox_mail
WHEN NEW.ticket_id IS NOT NULL
BEGIN
    INSERT INTO known_message_ids (message_id, ticket_id)
    VALUES (NEW.message_id, NEW.ticket_id)
    ON CONFLICT DO NOTHING;
END;
