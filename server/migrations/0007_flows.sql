-- Flows (issue 17): one row per customer per flow per thing that started it (a checkout
-- token, an order). The flow's steps are `flow` jobs that decide, when due, whether to send
-- the next message (as a `send` job, through the outbox), wait, or end the enrollment.

CREATE TABLE flow_enrollments (
    id           INTEGER PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    flow_id      TEXT NOT NULL,
    -- E.164.
    phone        TEXT NOT NULL,
    -- What started it, e.g. `checkout:<token>`.
    subject      TEXT NOT NULL,
    -- The trigger's time (ms): the first step's delay counts from here. A checkout updated
    -- before the first message moves it.
    started_at   BIGINT NOT NULL,
    -- JSON array of the times (ms) each step was sent.
    sent_at      TEXT NOT NULL DEFAULT '[]',
    -- JSON: what the messages show (first name, products, cart link).
    context      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'exited')),
    -- completed, opted_out, no_consent, ordered, escalated, replied, disabled.
    exit_reason  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (merchant_id, flow_id, subject)
);
CREATE INDEX flow_enrollments_phone ON flow_enrollments (merchant_id, phone);

-- A flow's message carries what it was about (flow, step, products, cart link, offer), so the
-- customer's reply is answered in that context ("is it in XL?" is about the cart's jacket).
ALTER TABLE messages ADD COLUMN flow_context TEXT;
