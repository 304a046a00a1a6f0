-- Recipients the relay refused (issue 18): at RCPT (5xx, or 4xx until the
-- retries ran out) or later by a bounce (DSN). A refused Cc is left out of
-- the ticket's later mail until someone names the address again
-- (cleared_at). `main`: the mail's main recipient (the customer), whose
-- refusal the agents are told of and which holds the auto-close clock.
CREATE TABLE mail_refusals (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES tickets(id),
    outbox_id   BIGINT,
    message_id  TEXT NOT NULL,          -- the refused mail's Message-ID
    kind        TEXT NOT NULL,          -- its outbox kind (agent_reply, ack…)
    address     TEXT NOT NULL,
    main        BOOLEAN NOT NULL,
    source      TEXT NOT NULL,          -- relay | retries | bounce
    reply       TEXT NOT NULL,          -- the relay's (or the report's) words
    refused_at  TIMESTAMPTZ NOT NULL,
    cleared_at  TIMESTAMPTZ
);
CREATE INDEX mail_refusals_ticket ON mail_refusals(ticket_id);
