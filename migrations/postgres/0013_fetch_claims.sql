-- Which daemon fetches which message of a shared mailbox (issue 17): a
-- daemon claims the UIDs of a group before it FETCHes their bodies, and
-- fetches only those it got, so that several daemons on one database and
-- one mailbox split its work instead of each fetching (and preparing,
-- attachment scans included) every message. A claim runs out at
-- `claimed_until`; a message whose daemon died is then claimed again (it
-- is neither stored nor flagged, so the next pass selects it).
CREATE TABLE fetch_claims (
    mailbox       TEXT NOT NULL,
    uidvalidity   BIGINT NOT NULL,
    uid           BIGINT NOT NULL,
    claimed_by    TEXT NOT NULL,
    claimed_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
CREATE INDEX fetch_claims_until ON fetch_claims(claimed_until);
