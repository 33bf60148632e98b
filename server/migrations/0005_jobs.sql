-- The durable scheduler (issue 16): work due at a time, kept in the database so a restart
-- loses none of it. A `send` job becomes one outbound message when due; the message takes the
-- one send path (the outbox) and the job follows its outcome.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    -- What to do (`send`); read by an enum that refuses a kind it does not know. No CHECK, so
    -- the kinds flows add need no table rebuild.
    kind         TEXT NOT NULL,
    -- JSON, shaped by the kind.
    payload      TEXT NOT NULL,
    -- The caller's idempotency key: scheduling the same key twice makes one job.
    key          TEXT,
    due_at       BIGINT NOT NULL,
    -- pending -> running (its message made) -> done | failed | refused | unknown; a provider
    -- outage puts it back to pending at a later due_at until attempts run out. pending ->
    -- cancelled by a person.
    status       TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'done', 'failed', 'refused', 'unknown', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    -- The message of the latest attempt.
    message_id   INTEGER REFERENCES messages (id),
    last_error   TEXT,
    created_by   INTEGER REFERENCES agent_users (id),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (merchant_id, key)
);
CREATE INDEX jobs_due ON jobs (status, due_at);
CREATE INDEX jobs_merchant ON jobs (merchant_id, id);
CREATE INDEX jobs_message ON jobs (message_id);

-- The job an outbound message was made for (one message per attempt).
ALTER TABLE messages ADD COLUMN job_id INTEGER REFERENCES jobs (id);
