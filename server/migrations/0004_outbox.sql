-- The outbox (issue 16): every outbound message says what it is for, and every send decision
-- the policy makes is recorded.

-- conversational (a reply to the customer's own text, by the AI or a person), marketing
-- (flows, campaigns), transactional (order updates). Compliance texts are `author = compliance`.
ALTER TABLE messages ADD COLUMN purpose TEXT NOT NULL DEFAULT 'conversational'
    CHECK (purpose IN ('conversational', 'marketing', 'transactional'));
-- What a marketing text is about (a checkout, a campaign), for the same-subject limit.
ALTER TABLE messages ADD COLUMN subject TEXT;
-- A `deferred` message goes at this time (the first minute the policy allows).
ALTER TABLE messages ADD COLUMN due_at BIGINT;
CREATE INDEX messages_due ON messages (status, due_at);

-- What `may_send` answered for each send attempt: allow, defer (until) or refuse (reason).
-- Append-only, exported with the consent ledger.
CREATE TABLE send_decisions (
    id          INTEGER PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    phone       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('allow', 'defer', 'refuse')),
    reason      TEXT,
    until       BIGINT,
    decided_at  BIGINT NOT NULL
);
CREATE INDEX send_decisions_merchant ON send_decisions (merchant_id, decided_at);

CREATE TRIGGER send_decisions_no_update BEFORE UPDATE ON send_decisions
BEGIN
    SELECT RAISE(ABORT, 'send decisions are append-only');
END;

CREATE TRIGGER send_decisions_no_delete BEFORE DELETE ON send_decisions
BEGIN
    SELECT RAISE(ABORT, 'send decisions are append-only');
END;
