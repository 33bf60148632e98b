-- Commerce data (issue 16): the store's Shopify webhooks, customers, checkouts and orders,
-- and consent by purpose.

-- `X-Shopify-Shop-Domain` names the merchant; the zone is the fallback for quiet hours.
ALTER TABLE merchants ADD COLUMN shop_domain TEXT;
ALTER TABLE merchants ADD COLUMN timezone TEXT;
CREATE UNIQUE INDEX merchants_shop_domain ON merchants (shop_domain) WHERE shop_domain IS NOT NULL;

-- What the store knows about a customer, from Shopify and from their orders.
ALTER TABLE customers ADD COLUMN shopify_id TEXT;
ALTER TABLE customers ADD COLUMN first_name TEXT;
ALTER TABLE customers ADD COLUMN last_name TEXT;
ALTER TABLE customers ADD COLUMN email TEXT;
-- Shopify's comma-separated tags, as Shopify writes them.
ALTER TABLE customers ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN time_zone TEXT;
-- ISO 3166-2 (`US-FL`) or country (`CA`) of the latest ship-to address: quiet hours and
-- state rules follow it.
ALTER TABLE customers ADD COLUMN ship_to_region TEXT;
-- Marketing consent, derived from the ledger like `opted_out` and kept with each entry:
-- none, awaiting_confirmation (a keyword opt-in whose program confirmation has not gone
-- out), confirmed.
ALTER TABLE customers ADD COLUMN marketing TEXT NOT NULL DEFAULT 'none'
    CHECK (marketing IN ('none', 'awaiting_confirmation', 'confirmed'));
ALTER TABLE customers ADD COLUMN updated_at BIGINT;
CREATE INDEX customers_shopify ON customers (merchant_id, shopify_id);

-- The ledger records what an entry is for: `all` (STOP and START act on every purpose),
-- or one purpose; and the proof a non-keyword source carries (checkout box, Shopify's
-- consent record, an import's note).
ALTER TABLE consent_events ADD COLUMN purpose TEXT NOT NULL DEFAULT 'all'
    CHECK (purpose IN ('all', 'marketing', 'conversational', 'transactional'));
ALTER TABLE consent_events ADD COLUMN proof TEXT;

-- Shopify webhooks as received: committed (deduplicated by X-Shopify-Event-Id) before the
-- 200, applied to the tables below after it, and re-applied on start if a crash came between.
CREATE TABLE shopify_events (
    id           INTEGER PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    event_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    triggered_at BIGINT,
    payload      TEXT NOT NULL,
    -- received -> applied | ignored (a topic Parley does not use) | failed (with the error)
    status       TEXT NOT NULL CHECK (status IN ('received', 'applied', 'ignored', 'failed')),
    error        TEXT,
    received_at  BIGINT NOT NULL,
    applied_at   BIGINT,
    UNIQUE (merchant_id, event_id)
);
CREATE INDEX shopify_events_pending ON shopify_events (status, id);

-- Checkouts (abandoned carts until completed_at is set).
CREATE TABLE checkouts (
    id                 INTEGER PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    token              TEXT NOT NULL,
    customer_id        INTEGER REFERENCES customers (id),
    phone              TEXT,
    email              TEXT,
    accepts_marketing  BOOLEAN NOT NULL DEFAULT FALSE,
    abandoned_url      TEXT,
    total_price        TEXT,
    currency           TEXT,
    -- JSON: [{title, variant_title, sku, quantity, price, product_id, variant_id}]
    line_items         TEXT NOT NULL,
    completed_at       BIGINT,
    created_at         BIGINT NOT NULL,
    -- Shopify's updated_at: an older retry never overwrites a newer state.
    updated_at         BIGINT NOT NULL,
    synced_at          BIGINT NOT NULL,
    UNIQUE (merchant_id, token)
);
CREATE INDEX checkouts_open ON checkouts (merchant_id, completed_at, created_at);

CREATE TABLE orders (
    id                 INTEGER PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    shopify_id         TEXT NOT NULL,
    name               TEXT NOT NULL,
    customer_id        INTEGER REFERENCES customers (id),
    phone              TEXT,
    email              TEXT,
    checkout_token     TEXT,
    financial_status   TEXT,
    fulfillment_status TEXT,
    cancelled_at       BIGINT,
    cancel_reason      TEXT,
    total_price        TEXT,
    currency           TEXT,
    ship_to_region     TEXT,
    -- webhook (live) or directory (orders.json at ingest)
    source             TEXT NOT NULL CHECK (source IN ('webhook', 'directory')),
    -- The order in Shopify's REST shape, as the order tools read it.
    payload            TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    synced_at          BIGINT NOT NULL,
    UNIQUE (merchant_id, shopify_id)
);
CREATE INDEX orders_phone ON orders (merchant_id, phone, created_at);
CREATE INDEX orders_checkout ON orders (merchant_id, checkout_token);

CREATE TABLE order_line_items (
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    position   INTEGER NOT NULL,
    product_id TEXT,
    variant_id TEXT,
    sku        TEXT,
    title      TEXT NOT NULL,
    quantity   INTEGER NOT NULL,
    price      TEXT NOT NULL,
    PRIMARY KEY (order_id, position)
);
