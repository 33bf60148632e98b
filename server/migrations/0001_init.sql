-- Parley's service schema. Portable SQL: it runs on SQLite today and is written to carry over
-- to PostgreSQL (INTEGER ids with RETURNING, unix-millisecond timestamps, TEXT enums with
-- CHECK constraints, ON CONFLICT upserts). Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The E.164 number customers text; an inbound `To` names the merchant.
    sms_number  TEXT UNIQUE,
    -- Where the merchant's knowledge directory was last ingested from (for re-ingest).
    knowledge_dir TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    phone       TEXT NOT NULL,
    -- Current consent, derived from the ledger (its latest entry) and kept in the same
    -- transaction as each ledger entry, so reading it never needs a scan.
    opted_out   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    UNIQUE (merchant_id, phone)
);

-- The consent ledger: append-only (the triggers below refuse changes), kept for the 4-year
-- TCPA record. One row per opt-out or opt-in, with what the customer wrote.
CREATE TABLE consent_events (
    id           INTEGER PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    phone        TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    -- The keyword (STOP, START, ...) or the customer's words for a natural-language revocation.
    keyword      TEXT NOT NULL,
    source       TEXT NOT NULL,
    message_id   INTEGER,
    provider_sid TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX consent_events_merchant ON consent_events (merchant_id, created_at);

CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    -- The agent's ConversationState as JSON.
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (merchant_id, customer_id)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    -- customer, ai (an answer or holding message), human (a support agent), compliance
    -- (STOP/START/HELP confirmations, the only texts an opted-out number may get).
    author          TEXT NOT NULL CHECK (author IN ('customer', 'ai', 'human', 'compliance')),
    body            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    -- The provider's id (Twilio MessageSid), unique per direction when known.
    provider_sid    TEXT,
    -- in: received -> processed. out: pending -> sending -> queued/sent/delivered, or
    -- undelivered/failed/suppressed/unknown.
    status          TEXT NOT NULL,
    error_code      TEXT,
    -- The inbound message an AI or compliance reply answers; at most one reply each.
    reply_to        INTEGER REFERENCES messages (id),
    agent_user_id   INTEGER,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_provider_sid ON messages (direction, provider_sid) WHERE provider_sid IS NOT NULL;
CREATE UNIQUE INDEX messages_one_reply ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_status ON messages (status);

CREATE TABLE agent_users (
    id          INTEGER PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    -- sha256 of the bearer token; the token itself is shown once, at creation.
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    UNIQUE (merchant_id, name)
);

CREATE TABLE escalations (
    id              INTEGER PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    message_id      INTEGER NOT NULL REFERENCES messages (id),
    reason          TEXT NOT NULL,
    reason_detail   TEXT NOT NULL,
    summary         TEXT NOT NULL,
    suggested_reply TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'resolved')),
    assignee_id     INTEGER REFERENCES agent_users (id),
    created_at      BIGINT NOT NULL,
    due_at          BIGINT NOT NULL,
    claimed_at      BIGINT,
    resolved_at     BIGINT
);
CREATE INDEX escalations_queue ON escalations (merchant_id, status, created_at);

-- Provider event ids already accepted (Twilio MessageSid, later Shopify X-Shopify-Event-Id):
-- a retried delivery finds its id here and has no second effect.
CREATE TABLE webhook_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
