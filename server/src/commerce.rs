//! From a stored Shopify event to the change it makes: payloads read into customers (phone
//! parsed once, in the address's country), checkouts, orders, shipments and refunds, and the
//! marketing consent they carry; applied in the background after the webhook's 200, and on
//! start for anything a crash left unapplied.

use std::path::Path;
use std::sync::Arc;

use parley_knowledge::{
    IngestProgress, IngestReport, KnowledgeBase, KnowledgeError, MerchantData, MerchantId,
};

use parley_core::clock::parse_rfc3339;
use parley_core::{Phone, phone::Country};

use crate::service::{Service, ServiceError};
use crate::shopify::{self, Address, PayloadKind, Topic};
use crate::store::Store;
use crate::store::commerce::{
    Applied, CheckoutRecord, CommerceChange, CustomerFacts, LineRecord, LiveProduct, MarketingSignal,
    OrderRecord,
};

/// The agent's order tools over the store's `orders` table: what Shopify's order webhooks
/// and the directory's `orders.json` (synced at start and ingest) wrote, newest first.
pub struct StoreOrders(pub crate::store::Store);

/// A customer with more orders than this is asked about their recent ones.
const MAX_ORDERS_READ: i64 = 50;

#[async_trait::async_trait]
impl parley_agent::tools::OrderSource for StoreOrders {
    async fn orders_of(
        &self,
        merchant: &parley_knowledge::MerchantId,
        phone: &Phone,
    ) -> Result<Vec<parley_knowledge::Order>, parley_agent::tools::OrderSourceError> {
        self.0
            .orders_of_phone(merchant.as_str(), phone.as_str(), MAX_ORDERS_READ)
            .await
            .map_err(|err| parley_agent::tools::OrderSourceError(err.to_string()))
    }
}

impl Service {
    /// The directory's `orders.json` into the orders table, as webhooks write it (a webhook's
    /// newer state of an order is kept): at start and after every ingest, so the order tools,
    /// which read the store, see what the directory says. Returns the orders synced.
    pub async fn sync_directory_orders(
        &self,
        data: &parley_knowledge::MerchantData,
    ) -> Result<usize, ServiceError> {
        let orders = directory_orders(data);
        Ok(self
            .store
            .sync_directory_orders(data.config.id.as_str(), &orders, self.now())
            .await?)
    }
}

/// A merchant directory's `orders.json` as the orders table stores it; an order that cannot be
/// read is logged and left out.
pub fn directory_orders(data: &parley_knowledge::MerchantData) -> Vec<OrderRecord> {
    let merchant = data.config.id.as_str();
    data.orders
        .iter()
        .filter_map(|order| {
            order_record(order.clone(), Default::default(), "directory")
                .inspect_err(|problem| {
                    tracing::warn!(merchant, order = %order.name, problem, "an order in orders.json was not synced");
                })
                .ok()
        })
        .collect()
}

/// Reads a payload into the change it makes; `Err` names what is wrong with it.
pub fn change_for(topic: Topic, payload: &str) -> Result<CommerceChange, String> {
    let body = payload.as_bytes();
    let err = |e: serde_json::Error| e.to_string();
    Ok(match topic.payload_kind() {
        PayloadKind::Checkout => checkout_change(serde_json::from_slice(body).map_err(err)?)?,
        PayloadKind::Order => {
            let (order, meta) = shopify::parse_order(body).map_err(err)?;
            CommerceChange::Order(Box::new(order_record(order, meta, "webhook")?))
        }
        PayloadKind::Fulfillment => {
            let event: shopify::FulfillmentEvent = serde_json::from_slice(body).map_err(err)?;
            let order_id = event.order_id.ok_or("the fulfillment names no order_id")?;
            CommerceChange::Fulfillment {
                shopify_order_id: order_id,
                fulfillment: event.fulfillment,
            }
        }
        PayloadKind::Refund => {
            let event: shopify::RefundEvent = serde_json::from_slice(body).map_err(err)?;
            let order_id = event.order_id.ok_or("the refund names no order_id")?;
            CommerceChange::Refund {
                shopify_order_id: order_id,
                refund: event.refund,
            }
        }
        PayloadKind::Customer => {
            let customer: shopify::Customer = serde_json::from_slice(body).map_err(err)?;
            match customer_facts(&customer, None, None) {
                Some(facts) => CommerceChange::Customer(facts),
                None => CommerceChange::Nothing("the customer has no phone number Parley can text".into()),
            }
        }
        PayloadKind::Product => {
            let product: parley_knowledge::Product = serde_json::from_slice(body).map_err(err)?;
            let updated_at = product
                .updated_at
                .as_deref()
                .ok_or("the product has no updated_at")
                .and_then(|at| parse_rfc3339(at).ok_or("the product's updated_at is not an ISO 8601 time"))?;
            CommerceChange::Product(Box::new(LiveProduct {
                shopify_id: product.id.to_string(),
                product: Some(product),
                updated_at,
            }))
        }
        PayloadKind::ProductDeleted => {
            let deleted: shopify::ProductDeleted = serde_json::from_slice(body).map_err(err)?;
            CommerceChange::Product(Box::new(LiveProduct {
                shopify_id: deleted.id.ok_or("the deletion names no product id")?,
                product: None,
                updated_at: i64::MAX,
            }))
        }
    })
}

/// The shop's live products laid over a catalog: a deleted product, or one no longer
/// `active` (a draft, an archived item), leaves it; a changed one replaces the catalog's copy
/// unless that copy says it is newer; a new one joins at the end. Applying it twice changes
/// nothing the first time did not, so it serves both a fresh directory and the catalog as
/// it stands.
pub fn overlay_live_products(data: &mut MerchantData, live: &[LiveProduct]) {
    for entry in live {
        let Ok(id) = entry.shopify_id.parse::<u64>() else {
            continue;
        };
        let at = data.products.iter().position(|product| product.id == id);
        let for_sale = entry
            .product
            .as_ref()
            .filter(|product| product.status.as_deref().is_none_or(|status| status == "active"));
        match (at, for_sale) {
            (Some(at), None) => {
                data.products.remove(at);
            }
            (None, None) => {}
            (Some(at), Some(product)) => {
                let catalog_is_newer = data.products[at]
                    .updated_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .is_some_and(|catalog_at| catalog_at > entry.updated_at);
                if !catalog_is_newer {
                    data.products[at] = product.clone();
                }
            }
            (None, Some(product)) => data.products.push(product.clone()),
        }
    }
}

/// Ingests a merchant directory with the shop's live products laid over it, so a re-ingest
/// of an older export does not undo a change the webhooks brought.
pub async fn ingest_directory(
    knowledge: &KnowledgeBase,
    store: &Store,
    mut data: MerchantData,
    progress: IngestProgress<'_>,
) -> Result<IngestReport, ServiceError> {
    // The live rows are read under the ingest permit: a product webhook's refresh waiting
    // for it then starts from this ingest's result, never the other way round.
    crate::flows::check_flows(&data, None)?;
    let permit = knowledge.begin_ingest().await;
    let live = store.live_products(data.config.id.as_str()).await?;
    overlay_live_products(&mut data, &live);
    Ok(knowledge.ingest_with(&permit, data, progress).await?)
}

/// [`ingest_directory`] for a directory on disk (read off the async threads).
pub async fn ingest_directory_at(
    knowledge: &KnowledgeBase,
    store: &Store,
    dir: &Path,
    progress: IngestProgress<'_>,
) -> Result<IngestReport, ServiceError> {
    let owned = dir.to_path_buf();
    let data = tokio::task::spawn_blocking(move || MerchantData::load(&owned))
        .await
        .map_err(|err| KnowledgeError::Index(format!("loader task failed: {err}")))??;
    // Checked here too, so the error names the file where it is on disk.
    crate::flows::check_flows(&data, Some(dir))?;
    ingest_directory(knowledge, store, data, progress).await
}

/// The country a number without `+` is read in: the address's, else the US.
fn country_of(address: Option<&Address>) -> Country {
    address
        .and_then(|a| a.country_code.as_deref())
        .and_then(|code| code.trim().to_ascii_uppercase().parse().ok())
        .unwrap_or(Country::US)
}

/// The first of `raw` numbers that parses, as E.164.
fn phone_of<'a>(raw: impl IntoIterator<Item = Option<&'a str>>, address: Option<&Address>) -> Option<String> {
    let country = country_of(address);
    raw.into_iter()
        .flatten()
        .filter(|text| !text.trim().is_empty())
        .find_map(|text| Phone::parse_in(text, country).ok())
        .map(String::from)
}

fn time(text: Option<&str>, what: &str) -> Result<Option<i64>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| format!("{what} {text:?} is not an ISO 8601 time with an offset")),
    }
}

/// A Shopify customer's facts, with the phone (theirs, else the one given) and ship-to.
fn customer_facts(
    customer: &shopify::Customer,
    fallback_phone: Option<&str>,
    ship_to: Option<&Address>,
) -> Option<CustomerFacts> {
    let address = ship_to.or(customer.default_address.as_ref());
    let phone = phone_of(
        [
            customer.phone.as_deref(),
            fallback_phone,
            address.and_then(|a| a.phone.as_deref()),
        ],
        address,
    )?;
    let marketing = customer.sms_marketing_consent.as_ref().and_then(|consent| {
        let subscribed = match consent.state.as_deref()? {
            "subscribed" => true,
            "unsubscribed" | "not_subscribed" | "redacted" => false,
            // `pending`: Shopify awaits the customer's confirmation; nothing to record yet.
            _ => return None,
        };
        let at_ms = consent
            .consent_updated_at
            .as_deref()
            .and_then(parse_rfc3339)
            .or_else(|| customer.updated_at.as_deref().and_then(parse_rfc3339))?;
        Some(MarketingSignal {
            subscribed,
            at_ms,
            source: "shopify",
            proof: format!(
                "Shopify sms_marketing_consent: state={}, opt_in_level={}, collected_from={}, updated_at={}",
                consent.state.as_deref().unwrap_or("unknown"),
                consent.opt_in_level.as_deref().unwrap_or("unknown"),
                consent.consent_collected_from.as_deref().unwrap_or("unknown"),
                consent.consent_updated_at.as_deref().unwrap_or("unknown"),
            ),
        })
    });
    Some(CustomerFacts {
        phone,
        shopify_id: customer.id.clone(),
        first_name: customer.first_name.clone(),
        last_name: customer.last_name.clone(),
        email: customer.email.clone(),
        tags: customer.tags.clone(),
        ship_to_region: address.and_then(Address::region),
        marketing,
    })
}

fn checkout_change(checkout: shopify::Checkout) -> Result<CommerceChange, String> {
    let token = checkout.token.clone().ok_or("missing field `token`")?;
    let created_at =
        time(Some(&checkout.created_at), "created_at")?.ok_or("the checkout has no created_at")?;
    let updated_at = time(checkout.updated_at.as_deref(), "updated_at")?.unwrap_or(created_at);
    let completed_at = time(checkout.completed_at.as_deref(), "completed_at")?;
    let ship_to = checkout.shipping_address.as_ref();
    // The number the buyer gave for texts comes first; the contact phone after.
    let phone = phone_of(
        [
            checkout.sms_marketing_phone.as_deref(),
            checkout.phone.as_deref(),
            ship_to.and_then(|a| a.phone.as_deref()),
        ],
        ship_to,
    );
    let accepts = checkout.buyer_accepts_sms_marketing && checkout.sms_marketing_phone.is_some();
    let mut customer = match (&checkout.customer, &phone) {
        (Some(customer), _) => customer_facts(customer, phone.as_deref(), ship_to),
        (None, Some(phone)) => Some(CustomerFacts {
            phone: phone.clone(),
            email: checkout.email.clone(),
            ship_to_region: ship_to.and_then(Address::region),
            ..CustomerFacts::default()
        }),
        (None, None) => None,
    };
    if let Some(facts) = customer.as_mut() {
        // The checkout's own number is the one the box was ticked for.
        if let Some(phone) = &phone {
            facts.phone.clone_from(phone);
        }
        if accepts {
            facts.marketing = Some(MarketingSignal {
                subscribed: true,
                at_ms: updated_at,
                source: "checkout",
                proof: format!(
                    "checkout {} ticked buyer_accepts_sms_marketing for {} at {}",
                    token,
                    checkout.sms_marketing_phone.as_deref().unwrap_or_default(),
                    checkout.updated_at.as_deref().unwrap_or(&checkout.created_at),
                ),
            });
        }
    }
    let line_items_json = serde_json::to_string(&checkout.line_items).map_err(|e| e.to_string())?;
    Ok(CommerceChange::Checkout(Box::new(CheckoutRecord {
        token,
        customer,
        phone,
        email: checkout.email,
        accepts_marketing: accepts,
        abandoned_url: checkout.abandoned_checkout_url,
        total_price: checkout.total_price,
        currency: checkout.currency,
        line_items_json,
        completed_at,
        created_at,
        updated_at,
    })))
}

/// An order (from a webhook or the merchant directory) as the store keeps it.
pub fn order_record(
    order: parley_knowledge::shopify::Order,
    meta: shopify::OrderMeta,
    source: &'static str,
) -> Result<OrderRecord, String> {
    let created_at = time(Some(&order.created_at), "created_at")?.ok_or("the order has no created_at")?;
    let updated_at = time(meta.updated_at.as_deref(), "updated_at")?.unwrap_or(created_at);
    let cancelled_at = time(order.cancelled_at.as_deref(), "cancelled_at")?;
    let ship_to = meta.shipping_address.as_ref();
    let phone = phone_of(
        [
            order.phone.as_deref(),
            meta.customer.as_ref().and_then(|c| c.phone.as_deref()),
            ship_to.and_then(|a| a.phone.as_deref()),
        ],
        ship_to,
    );
    let customer = match &meta.customer {
        Some(customer) => customer_facts(customer, phone.as_deref(), ship_to),
        None => phone.clone().map(|phone| CustomerFacts {
            phone,
            email: order.email.clone(),
            ship_to_region: ship_to.and_then(Address::region),
            ..CustomerFacts::default()
        }),
    };
    let lines = order
        .line_items
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let ids = meta.line_items.get(i);
            LineRecord {
                product_id: ids.and_then(|ids| ids.product_id.clone()),
                variant_id: ids.and_then(|ids| ids.variant_id.clone()),
                sku: Some(line.sku.clone()).filter(|sku| !sku.is_empty()),
                title: line.title.clone(),
                quantity: line.quantity,
                price: line.price.clone(),
            }
        })
        .collect();
    Ok(OrderRecord {
        shopify_id: meta.id.unwrap_or_else(|| order.id.to_string()),
        customer,
        phone,
        checkout_token: meta.checkout_token,
        total_price: meta.total_price,
        currency: meta.currency,
        ship_to_region: ship_to.and_then(Address::region),
        lines,
        cancelled_at,
        created_at,
        updated_at,
        source,
        order,
    })
}

impl Service {
    /// Applies a stored Shopify event (idempotent: an applied event is left alone).
    pub async fn apply_shopify_event(&self, event_id: i64) -> Result<Option<Applied>, ServiceError> {
        let Some(event) = self.store.shopify_event(event_id).await? else {
            return Ok(None);
        };
        if event.status != "received" {
            return Ok(Some(Applied::AlreadyDone));
        }
        let change = match event.topic.parse::<Topic>() {
            Ok(topic) => change_for(topic, &event.payload),
            Err(_) => Ok(CommerceChange::Nothing("a topic Parley does not use".into())),
        };
        let change = match change {
            Ok(change) => change,
            Err(problem) => {
                tracing::warn!(event_id, topic = %event.topic, problem, "a Shopify event cannot be applied");
                self.store
                    .fail_shopify_event(event_id, &problem, self.now())
                    .await?;
                return Ok(None);
            }
        };
        let applied = self
            .store
            .apply_shopify_event(event_id, &event.merchant_id, &change, self.now())
            .await?;
        tracing::debug!(event_id, topic = %event.topic, ?applied, "applied a Shopify event");
        // The event is applied; a flow that could not start is logged, not retried.
        let started = match (&change, &applied) {
            (CommerceChange::Checkout(checkout), Applied::Applied) => {
                self.on_checkout(&event.merchant_id, checkout).await
            }
            (
                CommerceChange::Fulfillment {
                    shopify_order_id,
                    fulfillment,
                },
                Applied::Applied,
            ) if fulfillment.shipment_status.as_deref() == Some("delivered") => {
                let at = fulfillment
                    .updated_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .unwrap_or_else(|| self.now());
                self.on_delivered(&event.merchant_id, shopify_order_id, at).await
            }
            _ => Ok(()),
        };
        if let Err(err) = started {
            tracing::error!(event_id, error = %err, "starting flows for a Shopify event failed");
        }
        if matches!(change, CommerceChange::Product(_)) && applied == Applied::Applied {
            // The event is applied either way: a refresh that fails here is retried by the
            // reconciliation every start runs (`refresh_live_products` for each merchant).
            if let Err(err) = self.refresh_live_products(&event.merchant_id).await {
                tracing::error!(event_id, merchant = event.merchant_id, error = %err, "re-ingesting a changed product failed");
            }
        }
        Ok(Some(applied))
    }

    /// Lays the shop's live products over the merchant's catalog as it stands and re-ingests
    /// if that changes anything; only the changed products' chunks and sentences are embedded
    /// (the rest keep their vectors by content hash). `None` when nothing changed or the
    /// merchant has no catalog yet (its first ingest applies the live products).
    pub async fn refresh_live_products(
        &self,
        merchant_id: &str,
    ) -> Result<Option<IngestReport>, ServiceError> {
        let Ok(merchant) = MerchantId::parse(merchant_id) else {
            return Ok(None);
        };
        let knowledge = self.agent.knowledge();
        let permit = knowledge.begin_ingest().await;
        let current = match knowledge.merchant(&merchant) {
            Ok(current) => current,
            Err(KnowledgeError::UnknownMerchant(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let live = self.store.live_products(merchant_id).await?;
        if live.is_empty() {
            return Ok(None);
        }
        let mut data = MerchantData::clone(&current);
        overlay_live_products(&mut data, &live);
        if data.products == current.products {
            return Ok(None);
        }
        let report = knowledge.ingest_with(&permit, data, &|_, _| {}).await?;
        tracing::info!(
            merchant = merchant_id,
            embedded = report.n_embedded,
            reused = report.n_reused,
            removed = report.n_removed,
            "applied the shop's product changes"
        );
        Ok(Some(report))
    }

    /// `apply_shopify_event` in the background, after the webhook's 200.
    pub fn spawn_apply_shopify(self: &Arc<Self>, event_id: i64) {
        let service = self.clone();
        self.spawn_background(async move {
            if let Err(err) = service.apply_shopify_event(event_id).await {
                // Still `received`: the next start applies it.
                tracing::error!(event_id, error = %err, "applying a Shopify event failed");
            }
        });
    }

    /// Applies the events a crash left received but unapplied; returns how many.
    pub async fn recover_shopify(&self) -> Result<usize, ServiceError> {
        let pending = self.store.unapplied_shopify_events().await?;
        for &id in &pending {
            self.apply_shopify_event(id).await?;
        }
        Ok(pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_with_the_box_ticked_carries_a_marketing_opt_in() {
        let payload = r#"{"token":"t1","created_at":"2026-07-01T12:00:00-04:00",
            "updated_at":"2026-07-01T12:05:00-04:00","phone":null,
            "sms_marketing_phone":"(212) 555-0123","buyer_accepts_sms_marketing":true,
            "line_items":[{"title":"Tent","quantity":1,"price":"199.00","product_id":7,"variant_id":8,"sku":null}],
            "shipping_address":{"country_code":"US","province_code":"NY"}}"#;
        let CommerceChange::Checkout(checkout) = change_for(Topic::CheckoutsUpdate, payload).unwrap() else {
            panic!("a checkout");
        };
        assert_eq!(checkout.phone.as_deref(), Some("+12125550123"));
        assert!(checkout.accepts_marketing);
        let customer = checkout.customer.unwrap();
        assert_eq!(customer.ship_to_region.as_deref(), Some("US-NY"));
        let signal = customer.marketing.unwrap();
        assert!(signal.subscribed);
        assert_eq!(signal.source, "checkout");
        assert!(signal.proof.contains("t1"), "{}", signal.proof);
        assert!(checkout.line_items_json.contains("\"product_id\":\"7\""));
    }

    #[test]
    fn an_unticked_box_or_no_sms_phone_is_no_opt_in() {
        let payload = r#"{"token":"t1","created_at":"2026-07-01T12:00:00-04:00",
            "phone":"+12125550123","buyer_accepts_sms_marketing":true}"#;
        let CommerceChange::Checkout(checkout) = change_for(Topic::CheckoutsCreate, payload).unwrap() else {
            panic!("a checkout");
        };
        assert!(!checkout.accepts_marketing);
        assert!(checkout.customer.unwrap().marketing.is_none());
    }

    #[test]
    fn bad_payloads_name_the_problem() {
        let missing =
            change_for(Topic::CheckoutsCreate, r#"{"created_at":"2026-07-01T12:00:00Z"}"#).unwrap_err();
        assert!(missing.contains("token"), "{missing}");
        let bad_time = change_for(
            Topic::CheckoutsCreate,
            r#"{"token":"t","created_at":"yesterday"}"#,
        )
        .unwrap_err();
        assert!(bad_time.contains("created_at"), "{bad_time}");
        let no_order =
            change_for(Topic::RefundsCreate, r#"{"created_at":"2026-07-01T12:00:00Z"}"#).unwrap_err();
        assert!(no_order.contains("order_id"), "{no_order}");
    }

    #[test]
    fn a_customer_without_a_phone_changes_nothing() {
        let change = change_for(Topic::CustomersCreate, r#"{"id":1,"email":"a@example.com"}"#).unwrap();
        assert!(matches!(change, CommerceChange::Nothing(_)));
    }

    #[test]
    fn shopify_consent_states_map_to_signals() {
        let payload = |state: &str| {
            format!(
                r#"{{"id":5,"phone":"+14055550123","tags":"vip, wholesale","sms_marketing_consent":{{"state":"{state}",
                "opt_in_level":"single_opt_in","consent_updated_at":"2026-06-01T10:00:00Z",
                "consent_collected_from":"SHOPIFY"}}}}"#
            )
        };
        let facts = |state| match change_for(Topic::CustomersUpdate, &payload(state)).unwrap() {
            CommerceChange::Customer(facts) => facts,
            other => panic!("{other:?}"),
        };
        let subscribed = facts("subscribed");
        assert_eq!(subscribed.shopify_id.as_deref(), Some("5"));
        assert_eq!(subscribed.tags.as_deref(), Some("vip, wholesale"));
        let signal = subscribed.marketing.unwrap();
        assert!(signal.subscribed && signal.proof.contains("single_opt_in"));
        assert!(!facts("unsubscribed").marketing.unwrap().subscribed);
        assert!(facts("pending").marketing.is_none());
    }

    fn product(id: u64, price: &str, updated_at: Option<&str>, status: &str) -> parley_knowledge::Product {
        serde_json::from_value(serde_json::json!({
            "id": id, "title": format!("Item {id}"), "status": status, "updated_at": updated_at,
            "variants": [{"id": id * 10, "title": "Default Title", "price": price}],
        }))
        .unwrap()
    }

    fn live(id: u64, product: Option<parley_knowledge::Product>, at: &str) -> LiveProduct {
        LiveProduct {
            shopify_id: id.to_string(),
            updated_at: if product.is_some() {
                parse_rfc3339(at).unwrap()
            } else {
                i64::MAX
            },
            product,
        }
    }

    #[test]
    fn live_products_replace_remove_and_add_and_a_second_overlay_changes_nothing() {
        let dir = parley_testkit::workspace_root().join("fixtures/merchants/cadence");
        let mut data = MerchantData::load(&dir).unwrap();
        data.products = vec![
            product(1, "10.00", None, "active"),
            product(2, "20.00", Some("2026-11-01T00:00:00Z"), "active"),
            product(3, "30.00", None, "active"),
            product(4, "40.00", None, "active"),
        ];
        let at = "2026-10-01T00:00:00Z";
        let rows = [
            live(1, Some(product(1, "8.00", Some(at), "active")), at),
            // The directory's copy of 2 is newer than this delivery: it stays.
            live(2, Some(product(2, "18.00", Some(at), "active")), at),
            live(3, None, at),
            live(4, Some(product(4, "40.00", Some(at), "archived")), at),
            live(5, Some(product(5, "50.00", Some(at), "active")), at),
            live(6, Some(product(6, "60.00", Some(at), "draft")), at),
        ];
        overlay_live_products(&mut data, &rows);
        let prices: Vec<(u64, &str)> = data
            .products
            .iter()
            .map(|p| (p.id, p.variants[0].price.as_str()))
            .collect();
        assert_eq!(prices, [(1, "8.00"), (2, "20.00"), (5, "50.00")]);
        let once = data.products.clone();
        overlay_live_products(&mut data, &rows);
        assert_eq!(data.products, once);
    }
}
