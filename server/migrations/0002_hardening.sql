-- Hardening (issue 13).

-- Pictures an inbound MMS carried. The body is only the customer's own words, so compliance
-- detection reads exactly what they typed; the "[N attachment(s)]" note is added for people
-- at display time.
ALTER TABLE messages ADD COLUMN num_media INTEGER NOT NULL DEFAULT 0;

-- What the HELP and STOP/START confirmations need, kept in the store so compliance answers
-- never depend on the merchant's catalog or index being readable.
ALTER TABLE merchants ADD COLUMN support_email TEXT;
ALTER TABLE merchants ADD COLUMN support_hours TEXT;

-- /readyz's write probe: a committed write that a separate connection must be able to read.
-- Each probe inserts a padded row (so it needs free space, as a real message does) and
-- deletes the older ones.
CREATE TABLE write_probe (
    id  INTEGER PRIMARY KEY,
    at  BIGINT NOT NULL,
    pad BLOB NOT NULL
);

-- Inbox sessions: the cookie holds a random id (only its sha256 is stored) that names a user,
-- expires, and is revoked on logout; the long-lived bearer token never goes into a cookie.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES agent_users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- `parley token revoke`: a revoked token authenticates nothing, and its sessions end.
ALTER TABLE agent_users ADD COLUMN revoked_at BIGINT;
