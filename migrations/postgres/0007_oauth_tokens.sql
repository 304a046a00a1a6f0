-- OAuth2 refresh tokens (issue 14), one per mail account, written by
-- `guichet oauth login` and replaced when the provider rotates them.
-- Never logged; `check-config` and `doctor` only say whether one exists.
CREATE TABLE oauth_tokens (
    account       TEXT PRIMARY KEY,     -- the login, e.g. support@example.com
    refresh_token TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
