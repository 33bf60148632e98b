-- Products as Shopify's `products/*` webhooks last described them (issue 16). The server
-- overlays them on the merchant directory's products.json at every ingest, so a change in
-- the shop reaches replies without a re-export; only the changed product is re-embedded.

CREATE TABLE live_products (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    shopify_id   TEXT NOT NULL,
    -- The product as Shopify sent it (Admin REST JSON); NULL once deleted.
    payload      TEXT,
    -- Shopify's updated_at (ms), so an older, retried delivery does not undo a newer one; a
    -- delete is final (Shopify never reuses a product id) and carries the largest value.
    updated_at   BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, shopify_id)
);
