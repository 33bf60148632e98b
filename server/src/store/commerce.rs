//! The store's commerce data: Shopify webhook events (received, then applied), customers'
//! commerce facts and marketing consent, checkouts, orders and their line items.

use parley_knowledge::shopify::{Fulfillment, Order, Product, Refund};
use sqlx::{Row, Sqlite, Transaction};

use super::{Result, Store, StoreError};

/// A verified webhook to record.
#[derive(Debug, Clone)]
pub struct NewShopifyEvent<'a> {
    pub merchant_id: &'a str,
    pub event_id: &'a str,
    pub topic: &'a str,
    pub triggered_at: Option<i64>,
    pub payload: &'a str,
    /// A topic Parley does not use: recorded as `ignored`, never applied.
    pub ignored: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReceived {
    New(i64),
    /// This event id was accepted before (a Shopify retry): nothing was written.
    Duplicate,
}

/// A stored event, for applying it.
#[derive(Debug, Clone)]
pub struct ShopifyEventRow {
    pub id: i64,
    pub merchant_id: String,
    pub topic: String,
    pub payload: String,
    pub status: String,
    pub error: Option<String>,
}

/// A customer's facts as one event states them; `None` leaves the stored value.
#[derive(Debug, Clone, Default)]
pub struct CustomerFacts {
    /// E.164; a customer without a phone cannot be texted and is not stored.
    pub phone: String,
    pub shopify_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub tags: Option<String>,
    pub ship_to_region: Option<String>,
    pub marketing: Option<MarketingSignal>,
}

/// What a checkout box or Shopify's consent record says about marketing texts.
#[derive(Debug, Clone)]
pub struct MarketingSignal {
    pub subscribed: bool,
    /// When the customer gave (or withdrew) it, by Shopify's clock.
    pub at_ms: i64,
    /// `checkout` or `shopify`.
    pub source: &'static str,
    /// What proves it: the checkout, Shopify's opt-in level and collection point.
    pub proof: String,
}

#[derive(Debug, Clone)]
pub struct CheckoutRecord {
    pub token: String,
    pub customer: Option<CustomerFacts>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub accepts_marketing: bool,
    pub abandoned_url: Option<String>,
    pub total_price: Option<String>,
    pub currency: Option<String>,
    pub line_items_json: String,
    pub completed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct LineRecord {
    pub product_id: Option<String>,
    pub variant_id: Option<String>,
    pub sku: Option<String>,
    pub title: String,
    pub quantity: u32,
    pub price: String,
}

#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub shopify_id: String,
    pub order: Order,
    pub customer: Option<CustomerFacts>,
    pub phone: Option<String>,
    pub checkout_token: Option<String>,
    pub total_price: Option<String>,
    pub currency: Option<String>,
    pub ship_to_region: Option<String>,
    pub lines: Vec<LineRecord>,
    pub cancelled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `webhook` or `directory`.
    pub source: &'static str,
}

/// What one event changes.
#[derive(Debug, Clone)]
pub enum CommerceChange {
    Checkout(Box<CheckoutRecord>),
    Order(Box<OrderRecord>),
    Fulfillment {
        shopify_order_id: String,
        fulfillment: Fulfillment,
    },
    Refund {
        shopify_order_id: String,
        refund: Refund,
    },
    Customer(CustomerFacts),
    /// A product created, updated or (`product: None`) deleted in the shop.
    Product(Box<LiveProduct>),
    /// Nothing to store (a customer without a phone, a topic handled elsewhere), and why.
    Nothing(String),
}

/// A product as the shop's webhooks last described it; see `live_products` in the migrations.
#[derive(Debug, Clone)]
pub struct LiveProduct {
    pub shopify_id: String,
    /// `None` once deleted.
    pub product: Option<Product>,
    /// Shopify's `updated_at` (ms); `i64::MAX` for a delete, which is final.
    pub updated_at: i64,
}

/// How applying an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Nothing stored, with the reason (kept on the event).
    Ignored(String),
    /// An older delivery than what is stored (Shopify does not order retries): kept as is.
    Stale,
    /// The event was applied before (by another task, or before a restart).
    AlreadyDone,
}

/// A customer row's commerce view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: i64,
    pub phone: String,
    pub shopify_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub tags: String,
    pub ship_to_region: Option<String>,
    pub opted_out: bool,
    pub marketing: String,
}

/// A checkout row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckoutRow {
    pub token: String,
    pub customer_id: Option<i64>,
    pub phone: Option<String>,
    pub accepts_marketing: bool,
    pub abandoned_url: Option<String>,
    pub total_price: Option<String>,
    pub line_items: String,
    pub completed_at: Option<i64>,
    pub updated_at: i64,
}

impl Store {
    /// Records a verified event, once per event id. Read back before the caller answers 200.
    pub async fn receive_shopify_event(
        &self,
        event: &NewShopifyEvent<'_>,
        now: i64,
    ) -> Result<EventReceived> {
        let id = self
            .guard(async move {
                let row = sqlx::query(
                    "INSERT INTO shopify_events (merchant_id, event_id, topic, triggered_at, payload, status,
                     error, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (merchant_id, event_id) DO NOTHING RETURNING id",
                )
                .bind(event.merchant_id)
                .bind(event.event_id)
                .bind(event.topic)
                .bind(event.triggered_at)
                .bind(event.payload)
                .bind(if event.ignored { "ignored" } else { "received" })
                .bind(event.ignored.then_some("a topic Parley does not use"))
                .bind(now)
                .fetch_optional(&self.writer)
                .await?;
                Ok(row.map(|row| row.get::<i64, _>("id")))
            })
            .await?;
        let Some(id) = id else {
            return Ok(EventReceived::Duplicate);
        };
        self.guard(self.confirm_visible("SELECT id FROM shopify_events WHERE id = ?", id, "shopify event"))
            .await?;
        Ok(EventReceived::New(id))
    }

    /// The products the shop's webhooks have created, changed or deleted, by Shopify id.
    pub async fn live_products(&self, merchant_id: &str) -> Result<Vec<LiveProduct>> {
        let rows = sqlx::query(
            "SELECT shopify_id, payload, updated_at FROM live_products WHERE merchant_id = ?
             ORDER BY shopify_id",
        )
        .bind(merchant_id)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                let shopify_id: String = row.get("shopify_id");
                let payload: Option<String> = row.get("payload");
                let product = payload
                    .map(|json| serde_json::from_str::<Product>(&json))
                    .transpose()?;
                Ok(LiveProduct {
                    shopify_id,
                    product,
                    updated_at: row.get("updated_at"),
                })
            })
            .collect()
    }

    pub async fn shopify_event(&self, id: i64) -> Result<Option<ShopifyEventRow>> {
        let row = sqlx::query(
            "SELECT id, merchant_id, topic, payload, status, error FROM shopify_events WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| ShopifyEventRow {
            id: row.get("id"),
            merchant_id: row.get("merchant_id"),
            topic: row.get("topic"),
            payload: row.get("payload"),
            status: row.get("status"),
            error: row.get("error"),
        }))
    }

    /// The stored event with Shopify's `X-Shopify-Event-Id`.
    pub async fn shopify_event_id(&self, merchant_id: &str, event_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM shopify_events WHERE merchant_id = ? AND event_id = ?")
            .bind(merchant_id)
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|row| row.get("id")))
    }

    /// Events received but not yet applied (a crash came between the 200 and the apply).
    pub async fn unapplied_shopify_events(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM shopify_events WHERE status = 'received' ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(|row| row.get("id")).collect())
    }

    /// Marks an event that cannot be applied, with the reason.
    pub async fn fail_shopify_event(&self, id: i64, error: &str, now: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "UPDATE shopify_events SET status = 'failed', error = ?, applied_at = ?
                 WHERE id = ? AND status = 'received'",
            )
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Applies an event's change and marks it applied, in one transaction.
    pub async fn apply_shopify_event(
        &self,
        event_id: i64,
        merchant_id: &str,
        change: &CommerceChange,
        now: i64,
    ) -> Result<Applied> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let outcome = apply_change(&mut tx, merchant_id, change, now).await?;
            let (status, error) = match &outcome {
                Applied::Ignored(why) => ("ignored", Some(why.as_str())),
                Applied::Stale => ("applied", Some("older than the stored state; kept the newer")),
                _ => ("applied", None),
            };
            let marked = sqlx::query(
                "UPDATE shopify_events SET status = ?, error = ?, applied_at = ?
                 WHERE id = ? AND status = 'received'",
            )
            .bind(status)
            .bind(error)
            .bind(now)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                // Applied by someone else meanwhile: this transaction's writes are dropped.
                return Ok(Applied::AlreadyDone);
            }
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Imports customers and their marketing consent (`parley customers import`) in one
    /// transaction: all of them or, on any error, none. Returns the customers written and the
    /// ledger entries that changed someone's consent (an opt-in older than a later STOP is not
    /// one; see `apply_marketing`).
    pub async fn import_customers(
        &self,
        merchant_id: &str,
        customers: &[CustomerFacts],
        now: i64,
    ) -> Result<(usize, i64)> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let before = ledger_entries(&mut tx, merchant_id).await?;
            for facts in customers {
                upsert_customer(&mut tx, merchant_id, facts, now).await?;
            }
            let after = ledger_entries(&mut tx, merchant_id).await?;
            tx.commit().await?;
            Ok((customers.len(), after - before))
        })
        .await
    }

    /// Applies orders from the merchant directory's `orders.json` (at ingest), each upserted
    /// as a webhook would be; a newer live version is kept.
    pub async fn sync_directory_orders(
        &self,
        merchant_id: &str,
        orders: &[OrderRecord],
        now: i64,
    ) -> Result<usize> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let mut changed = 0;
            for order in orders {
                if upsert_order(&mut tx, merchant_id, order, now).await? == Applied::Applied {
                    changed += 1;
                }
            }
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }

    pub async fn customer_by_phone(&self, merchant_id: &str, phone: &str) -> Result<Option<CustomerRow>> {
        let row = sqlx::query_as::<_, CustomerRow>(
            "SELECT id, phone, shopify_id, first_name, last_name, email, tags, ship_to_region, opted_out,
             marketing FROM customers WHERE merchant_id = ? AND phone = ?",
        )
        .bind(merchant_id)
        .bind(phone)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row)
    }

    pub async fn checkout(&self, merchant_id: &str, token: &str) -> Result<Option<CheckoutRow>> {
        let row = sqlx::query_as::<_, CheckoutRow>(
            "SELECT token, customer_id, phone, accepts_marketing, abandoned_url, total_price, line_items,
             completed_at, updated_at FROM checkouts WHERE merchant_id = ? AND token = ?",
        )
        .bind(merchant_id)
        .bind(token)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row)
    }

    /// A stored order in Shopify's REST shape.
    pub async fn order(&self, merchant_id: &str, shopify_id: &str) -> Result<Option<Order>> {
        let row = sqlx::query("SELECT payload FROM orders WHERE merchant_id = ? AND shopify_id = ?")
            .bind(merchant_id)
            .bind(shopify_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| serde_json::from_str(row.get("payload")).map_err(StoreError::from))
            .transpose()
    }

    /// The orders placed from `phone` (E.164), newest first, at most `limit`.
    pub async fn orders_of_phone(&self, merchant_id: &str, phone: &str, limit: i64) -> Result<Vec<Order>> {
        let rows = sqlx::query(
            "SELECT payload FROM orders WHERE merchant_id = ? AND phone = ?
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(merchant_id)
        .bind(phone)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| serde_json::from_str(row.get("payload")).map_err(StoreError::from))
            .collect()
    }

    /// Counts of the commerce tables for one merchant (tests, the tour).
    pub async fn commerce_counts(&self, merchant_id: &str) -> Result<CommerceCounts> {
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql).bind(merchant_id).fetch_one(&self.reader).await?;
            Ok::<i64, StoreError>(row.get("n"))
        };
        Ok(CommerceCounts {
            events: count("SELECT COUNT(*) AS n FROM shopify_events WHERE merchant_id = ?").await?,
            customers: count("SELECT COUNT(*) AS n FROM customers WHERE merchant_id = ?").await?,
            checkouts: count("SELECT COUNT(*) AS n FROM checkouts WHERE merchant_id = ?").await?,
            orders: count("SELECT COUNT(*) AS n FROM orders WHERE merchant_id = ?").await?,
            consent_entries: count("SELECT COUNT(*) AS n FROM consent_events WHERE merchant_id = ?").await?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommerceCounts {
    pub events: i64,
    pub customers: i64,
    pub checkouts: i64,
    pub orders: i64,
    pub consent_entries: i64,
}

type Tx<'a> = Transaction<'a, Sqlite>;

async fn apply_change(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    change: &CommerceChange,
    now: i64,
) -> Result<Applied> {
    match change {
        CommerceChange::Nothing(why) => Ok(Applied::Ignored(why.clone())),
        CommerceChange::Customer(facts) => {
            upsert_customer(tx, merchant_id, facts, now).await?;
            Ok(Applied::Applied)
        }
        CommerceChange::Checkout(checkout) => upsert_checkout(tx, merchant_id, checkout, now).await,
        CommerceChange::Product(live) => upsert_live_product(tx, merchant_id, live, now).await,
        CommerceChange::Order(order) => upsert_order(tx, merchant_id, order, now).await,
        CommerceChange::Fulfillment {
            shopify_order_id,
            fulfillment,
        } => {
            amend_order(tx, merchant_id, shopify_order_id, now, |order| {
                // A later event about the same shipment replaces the earlier one.
                let same = order.fulfillments.iter().position(|known| {
                    known.tracking_number.is_some() && known.tracking_number == fulfillment.tracking_number
                        || known.created_at.is_some() && known.created_at == fulfillment.created_at
                });
                match same {
                    Some(at) => order.fulfillments[at] = fulfillment.clone(),
                    None => order.fulfillments.push(fulfillment.clone()),
                }
            })
            .await
        }
        CommerceChange::Refund {
            shopify_order_id,
            refund,
        } => {
            amend_order(tx, merchant_id, shopify_order_id, now, |order| {
                if !order.refunds.contains(refund) {
                    order.refunds.push(refund.clone());
                }
            })
            .await
        }
    }
}

async fn ledger_entries(tx: &mut Tx<'_>, merchant_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM consent_events WHERE merchant_id = ?")
            .bind(merchant_id)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Creates or updates the customer with this phone; returns its id.
async fn upsert_customer(tx: &mut Tx<'_>, merchant_id: &str, facts: &CustomerFacts, now: i64) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO customers (merchant_id, phone, created_at, shopify_id, first_name, last_name, email,
         tags, ship_to_region, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE(?, ''), ?, ?)
         ON CONFLICT (merchant_id, phone) DO UPDATE SET
           shopify_id = COALESCE(excluded.shopify_id, customers.shopify_id),
           first_name = COALESCE(excluded.first_name, customers.first_name),
           last_name = COALESCE(excluded.last_name, customers.last_name),
           email = COALESCE(excluded.email, customers.email),
           tags = CASE WHEN ? IS NULL THEN customers.tags ELSE excluded.tags END,
           ship_to_region = COALESCE(excluded.ship_to_region, customers.ship_to_region),
           updated_at = excluded.updated_at
         RETURNING id, marketing",
    )
    .bind(merchant_id)
    .bind(&facts.phone)
    .bind(now)
    .bind(&facts.shopify_id)
    .bind(&facts.first_name)
    .bind(&facts.last_name)
    .bind(&facts.email)
    .bind(&facts.tags)
    .bind(&facts.ship_to_region)
    .bind(now)
    .bind(&facts.tags)
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = row.get("id");
    let marketing: String = row.get("marketing");
    if let Some(signal) = &facts.marketing {
        apply_marketing(tx, merchant_id, id, &facts.phone, &marketing, signal, now).await?;
    }
    Ok(id)
}

/// Records a marketing opt-in or opt-out from Shopify in the ledger when it changes what is
/// stored. An opt-in older than the customer's latest opt-out is a stale echo of what they
/// since revoked (Shopify keeps sending the old state) and is not applied.
async fn apply_marketing(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    customer_id: i64,
    phone: &str,
    current: &str,
    signal: &MarketingSignal,
    now: i64,
) -> Result<()> {
    let last_opt_out: Option<i64> = sqlx::query(
        "SELECT MAX(created_at) AS at FROM consent_events
         WHERE merchant_id = ? AND phone = ? AND action = 'opt_out'",
    )
    .bind(merchant_id)
    .bind(phone)
    .fetch_one(&mut **tx)
    .await?
    .get("at");
    let (action, marketing) = match signal.subscribed {
        true if current == "confirmed" => return Ok(()),
        true if last_opt_out.is_some_and(|at| at >= signal.at_ms) => return Ok(()),
        true => ("opt_in", "confirmed"),
        false if current == "none" => return Ok(()),
        false => ("opt_out", "none"),
    };
    sqlx::query(
        "INSERT INTO consent_events (merchant_id, phone, action, keyword, source, purpose, proof, created_at)
         VALUES (?, ?, ?, '', ?, 'marketing', ?, ?)",
    )
    .bind(merchant_id)
    .bind(phone)
    .bind(action)
    .bind(signal.source)
    .bind(&signal.proof)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // A new express opt-in after a STOP is the customer asking to be texted again; a marketing
    // opt-out leaves replies and order updates alone.
    let clear_stop = signal.subscribed;
    sqlx::query(
        "UPDATE customers SET marketing = ?, opted_out = CASE WHEN ? THEN FALSE ELSE opted_out END
         WHERE id = ?",
    )
    .bind(marketing)
    .bind(clear_stop)
    .bind(customer_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An upsert guarded by "only if newer" wrote its row, or found a newer one stored.
fn applied_unless_stale(written: bool) -> Applied {
    if written { Applied::Applied } else { Applied::Stale }
}

async fn upsert_live_product(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    live: &LiveProduct,
    now: i64,
) -> Result<Applied> {
    let payload = live.product.as_ref().map(serde_json::to_string).transpose()?;
    let row = sqlx::query(
        "INSERT INTO live_products (merchant_id, shopify_id, payload, updated_at, received_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (merchant_id, shopify_id) DO UPDATE SET
           payload = excluded.payload,
           updated_at = excluded.updated_at,
           received_at = excluded.received_at
         WHERE excluded.updated_at >= live_products.updated_at
         RETURNING shopify_id",
    )
    .bind(merchant_id)
    .bind(&live.shopify_id)
    .bind(payload)
    .bind(live.updated_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(applied_unless_stale(row.is_some()))
}

async fn upsert_checkout(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    checkout: &CheckoutRecord,
    now: i64,
) -> Result<Applied> {
    let customer_id = match &checkout.customer {
        Some(facts) => Some(upsert_customer(tx, merchant_id, facts, now).await?),
        None => None,
    };
    let row = sqlx::query(
        "INSERT INTO checkouts (merchant_id, token, customer_id, phone, email, accepts_marketing, abandoned_url,
         total_price, currency, line_items, completed_at, created_at, updated_at, synced_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (merchant_id, token) DO UPDATE SET
           customer_id = COALESCE(excluded.customer_id, checkouts.customer_id),
           phone = COALESCE(excluded.phone, checkouts.phone),
           email = COALESCE(excluded.email, checkouts.email),
           accepts_marketing = excluded.accepts_marketing,
           abandoned_url = COALESCE(excluded.abandoned_url, checkouts.abandoned_url),
           total_price = excluded.total_price,
           currency = excluded.currency,
           line_items = excluded.line_items,
           completed_at = COALESCE(checkouts.completed_at, excluded.completed_at),
           updated_at = excluded.updated_at,
           synced_at = excluded.synced_at
         WHERE excluded.updated_at >= checkouts.updated_at
         RETURNING id",
    )
    .bind(merchant_id)
    .bind(&checkout.token)
    .bind(customer_id)
    .bind(&checkout.phone)
    .bind(&checkout.email)
    .bind(checkout.accepts_marketing)
    .bind(&checkout.abandoned_url)
    .bind(&checkout.total_price)
    .bind(&checkout.currency)
    .bind(&checkout.line_items_json)
    .bind(checkout.completed_at)
    .bind(checkout.created_at)
    .bind(checkout.updated_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(applied_unless_stale(row.is_some()))
}

async fn upsert_order(tx: &mut Tx<'_>, merchant_id: &str, order: &OrderRecord, now: i64) -> Result<Applied> {
    let customer_id = match &order.customer {
        Some(facts) => Some(upsert_customer(tx, merchant_id, facts, now).await?),
        None => None,
    };
    let payload = serde_json::to_string(&order.order)?;
    let row = sqlx::query(
        "INSERT INTO orders (merchant_id, shopify_id, name, customer_id, phone, email, checkout_token,
         financial_status, fulfillment_status, cancelled_at, cancel_reason, total_price, currency,
         ship_to_region, source, payload, created_at, updated_at, synced_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (merchant_id, shopify_id) DO UPDATE SET
           name = excluded.name,
           customer_id = COALESCE(excluded.customer_id, orders.customer_id),
           phone = COALESCE(excluded.phone, orders.phone),
           email = COALESCE(excluded.email, orders.email),
           checkout_token = COALESCE(excluded.checkout_token, orders.checkout_token),
           financial_status = excluded.financial_status,
           fulfillment_status = excluded.fulfillment_status,
           cancelled_at = excluded.cancelled_at,
           cancel_reason = excluded.cancel_reason,
           total_price = excluded.total_price,
           currency = excluded.currency,
           ship_to_region = COALESCE(excluded.ship_to_region, orders.ship_to_region),
           source = CASE WHEN orders.source = 'webhook' THEN 'webhook' ELSE excluded.source END,
           payload = excluded.payload,
           updated_at = excluded.updated_at,
           synced_at = excluded.synced_at
         WHERE excluded.updated_at >= orders.updated_at
           AND NOT (orders.source = 'webhook' AND excluded.source = 'directory')
         RETURNING id",
    )
    .bind(merchant_id)
    .bind(&order.shopify_id)
    .bind(&order.order.name)
    .bind(customer_id)
    .bind(&order.phone)
    .bind(&order.order.email)
    .bind(&order.checkout_token)
    .bind(&order.order.financial_status)
    .bind(&order.order.fulfillment_status)
    .bind(order.cancelled_at)
    .bind(&order.order.cancel_reason)
    .bind(&order.total_price)
    .bind(&order.currency)
    .bind(&order.ship_to_region)
    .bind(order.source)
    .bind(&payload)
    .bind(order.created_at)
    .bind(order.updated_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Applied::Stale);
    };
    let order_id: i64 = row.get("id");
    sqlx::query("DELETE FROM order_line_items WHERE order_id = ?")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    for (position, line) in order.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_line_items (order_id, position, product_id, variant_id, sku, title, quantity, price)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(order_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&line.product_id)
        .bind(&line.variant_id)
        .bind(&line.sku)
        .bind(&line.title)
        .bind(i64::from(line.quantity))
        .bind(&line.price)
        .execute(&mut **tx)
        .await?;
    }
    // The order completes its checkout: the cart is no longer abandoned.
    if let Some(token) = &order.checkout_token {
        sqlx::query(
            "UPDATE checkouts SET completed_at = COALESCE(completed_at, ?) WHERE merchant_id = ? AND token = ?",
        )
        .bind(order.created_at)
        .bind(merchant_id)
        .bind(token)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Applied::Applied)
}

/// Changes a stored order's REST payload (a shipment or a refund arriving on its own).
async fn amend_order(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    shopify_order_id: &str,
    now: i64,
    amend: impl FnOnce(&mut Order),
) -> Result<Applied> {
    let row = sqlx::query("SELECT id, payload FROM orders WHERE merchant_id = ? AND shopify_id = ?")
        .bind(merchant_id)
        .bind(shopify_order_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(Applied::Ignored(format!(
            "order {shopify_order_id} is not known yet; its next order webhook carries this too"
        )));
    };
    let mut order: Order = serde_json::from_str(row.get("payload"))?;
    amend(&mut order);
    sqlx::query("UPDATE orders SET payload = ?, synced_at = ? WHERE id = ?")
        .bind(serde_json::to_string(&order)?)
        .bind(now)
        .bind(row.get::<i64, _>("id"))
        .execute(&mut **tx)
        .await?;
    Ok(Applied::Applied)
}
