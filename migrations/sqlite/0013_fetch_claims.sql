-- Which daemon fetches which message of a shared mailbox (issue 17). Only
-- PostgreSQL uses it (several daemons share a database there; a SQLite
-- file has one daemon); the table is here so that both schemas match.
CREATE TABLE fetch_claims (
    mailbox       TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    claimed_by    TEXT NOT NULL,
    claimed_until TEXT NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
