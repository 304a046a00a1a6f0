-- Every Message-ID received or sent for a ticket is remembered for
-- threading (rule 3) by the database itself, as its message or its queued
-- mail is inserted (issue 17): before, each was a statement of its own,
-- and each statement is a round trip.
CREATE FUNCTION remember_message_id() RETURNS trigger AS $$
BEGIN
    IF NEW.message_id IS NOT NULL AND NEW.ticket_id IS NOT NULL THEN
        INSERT INTO known_message_ids (message_id, ticket_id)
        VALUES (NEW.message_id, NEW.ticket_id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_known_message_id AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION remember_message_id();

CREATE TRIGGER outbox_mail_known_message_id AFTER INSERT ON outbox_mail
FOR EACH ROW EXECUTE FUNCTION remember_message_id();
