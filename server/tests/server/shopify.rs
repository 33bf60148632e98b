//! Shopify's webhooks end to end, with Shopify's real header scheme and its documented sample
//! payloads (`fixtures/shopify/`): HMAC, staleness, dedupe by event id, bad input, unknown
//! shops and topics, and what each topic stores.

use parley_server::store::commerce::CommerceCounts;
use parley_testkit::workspace_root;
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "shpss_test_app_secret";
const SHOP: &str = "trailhead-demo.myshopify.com";
const MERCHANT: &str = "trailhead";

pub(crate) fn with_shopify(settings: &mut parley_server::settings::Settings) {
    settings.shopify =
        Some(serde_json::from_value(json!({ "app_secret": SECRET, "max_event_age": "24h" })).unwrap());
    // A ticked checkout starts cart recovery: the tests run due jobs themselves, on the
    // injected clock, rather than racing a poller.
    settings.scheduler.poll_every = std::time::Duration::from_secs(3600);
}

pub(crate) async fn shopify_app() -> TestApp {
    spawn_app_tweaked(Channel::Simulator, with_shopify).await
}

/// For tests whose product webhooks change the catalog: one of its own.
async fn shopify_app_own_catalog() -> TestApp {
    spawn_app_own_knowledge(Channel::Simulator, with_shopify).await
}

pub(crate) fn sample(name: &str) -> Value {
    let path = workspace_root()
        .join("fixtures/shopify")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A delivery as Shopify sends it; `tamper` may change any header before it goes.
pub(crate) struct Delivery {
    topic: &'static str,
    event_id: String,
    body: Vec<u8>,
    shop: &'static str,
    signature: Option<String>,
    triggered_at: Option<String>,
}

impl Delivery {
    pub(crate) fn new(app: &TestApp, topic: &'static str, event_id: &str, body: &Value) -> Self {
        let body = serde_json::to_vec(body).unwrap();
        Self {
            topic,
            event_id: event_id.to_owned(),
            signature: Some(parley_server::shopify::sign(SECRET, &body)),
            body,
            shop: SHOP,
            triggered_at: Some(parley_core::clock::rfc3339(app.clock_now())),
        }
    }

    pub(crate) async fn send(&self, app: &TestApp) -> reqwest::Response {
        let mut request = app
            .client
            .post(app.url("/webhooks/shopify"))
            .header("content-type", "application/json")
            .header("x-shopify-topic", self.topic)
            .header("x-shopify-shop-domain", self.shop)
            .header("x-shopify-event-id", &self.event_id)
            .header("x-shopify-webhook-id", format!("wh-{}", self.event_id))
            .header("x-shopify-api-version", "2026-07")
            .body(self.body.clone());
        if let Some(signature) = &self.signature {
            request = request.header("x-shopify-hmac-sha256", signature);
        }
        if let Some(at) = &self.triggered_at {
            request = request.header("x-shopify-triggered-at", at);
        }
        request.send().await.unwrap()
    }
}

impl TestApp {
    async fn commerce(&self) -> CommerceCounts {
        self.state.service.store.commerce_counts(MERCHANT).await.unwrap()
    }

    pub(crate) async fn deliver_ok(&self, topic: &'static str, event_id: &str, body: &Value) {
        let response = Delivery::new(self, topic, event_id, body).send(self).await;
        let status = response.status();
        assert_eq!(status, 200, "{topic}: {}", response.text().await.unwrap());
        self.settle().await;
    }

    async fn cart_completed(&self, token: &str) -> bool {
        let store = &self.state.service.store;
        let checkout = store.checkout(MERCHANT, token).await.unwrap().expect("stored");
        checkout.completed_at.is_some()
    }

    async fn event_status(&self, event_id: &str) -> (String, Option<String>) {
        let store = &self.state.service.store;
        let id = store
            .shopify_event_id(MERCHANT, event_id)
            .await
            .unwrap()
            .expect("stored");
        let event = store.shopify_event(id).await.unwrap().unwrap();
        (event.status, event.error)
    }
}

#[tokio::test]
async fn a_signed_event_is_stored_once_and_applied() {
    let app = shopify_app().await;
    let before = app.commerce().await;
    let checkout = sample("checkouts_create");
    let delivery = Delivery::new(&app, "checkouts/create", "ev-1", &checkout);
    assert_eq!(delivery.send(&app).await.status(), 200);
    app.settle().await;
    let after = app.commerce().await;
    assert_eq!(after.events, before.events + 1);
    assert_eq!(after.checkouts, before.checkouts + 1);
    assert_eq!(app.event_status("ev-1").await.0, "applied");
    let stored = app
        .state
        .service
        .store
        .checkout(MERCHANT, "123123123")
        .await
        .unwrap()
        .expect("the sample checkout is stored under its token");
    assert_eq!(stored.phone.as_deref(), Some("+12025550123"));
    assert!(stored.abandoned_url.is_some());
    assert!(stored.line_items.contains("\"quantity\""));

    // Shopify's retry of the same event: 200, and no second effect.
    assert_eq!(delivery.send(&app).await.status(), 200);
    app.settle().await;
    assert_eq!(app.commerce().await, after);
    assert!(
        app.metrics_text()
            .await
            .contains("parley_shopify_events_total{name=\"duplicate\"} 1")
    );
}

#[tokio::test]
async fn forged_missing_and_stale_deliveries_are_refused_and_nothing_is_stored() {
    let app = shopify_app().await;
    let before = app.commerce().await;
    let body = sample("orders_create");
    let mut forged = Delivery::new(&app, "orders/create", "ev-forged", &body);
    forged.signature = Some(parley_server::shopify::sign("someone-elses-secret", &forged.body));
    let mut missing = Delivery::new(&app, "orders/create", "ev-missing", &body);
    missing.signature = None;
    let mut altered = Delivery::new(&app, "orders/create", "ev-altered", &body);
    altered.body =
        serde_json::to_vec(&json!({"id": 1, "name": "#1", "created_at": "2026-01-01T00:00:00Z"})).unwrap();
    let mut stale = Delivery::new(&app, "orders/create", "ev-stale", &body);
    stale.triggered_at = Some(parley_core::clock::rfc3339(app.clock_now() - 25 * 3600 * 1000));
    let mut future = Delivery::new(&app, "orders/create", "ev-future", &body);
    future.triggered_at = Some(parley_core::clock::rfc3339(app.clock_now() + 3600 * 1000));
    let mut untimed = Delivery::new(&app, "orders/create", "ev-untimed", &body);
    untimed.triggered_at = None;
    for (what, delivery) in [
        ("forged", forged),
        ("missing", missing),
        ("altered", altered),
        ("stale", stale),
        ("future", future),
        ("untimed", untimed),
    ] {
        let response = delivery.send(&app).await;
        assert_eq!(response.status(), 401, "{what}");
    }
    app.settle().await;
    assert_eq!(app.commerce().await, before);
    // A delivery a few minutes old (a Shopify retry) is fine.
    let mut retried = Delivery::new(&app, "orders/create", "ev-retried", &body);
    retried.triggered_at = Some(parley_core::clock::rfc3339(app.clock_now() - 4 * 3600 * 1000));
    assert_eq!(retried.send(&app).await.status(), 200);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = shopify_app().await;
    let before = app.commerce().await;
    let mut malformed = Delivery::new(&app, "orders/create", "ev-bad-json", &json!({}));
    malformed.body = b"{\"id\": 1, \"name\": ".to_vec();
    malformed.signature = Some(parley_server::shopify::sign(SECRET, &malformed.body));
    let response = malformed.send(&app).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not valid JSON"));

    // Valid JSON that is no checkout: the problem is named.
    let no_token = Delivery::new(
        &app,
        "checkouts/create",
        "ev-no-token",
        &json!({"created_at": "2026-01-01T00:00:00Z"}),
    );
    let response = no_token.send(&app).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("token"));

    let mut unknown_shop = Delivery::new(&app, "orders/create", "ev-unknown-shop", &sample("orders_create"));
    unknown_shop.shop = "someone-else.myshopify.com";
    assert_eq!(unknown_shop.send(&app).await.status(), 404);
    app.settle().await;
    assert_eq!(app.commerce().await, before);

    // A topic Parley does not use: 200 (or Shopify retries for hours), recorded, ignored.
    app.deliver_ok(
        "inventory_levels/update",
        "ev-inventory",
        &json!({"inventory_item_id": 1}),
    )
    .await;
    assert_eq!(app.event_status("ev-inventory").await.0, "ignored");
    assert_eq!(app.commerce().await.events, before.events + 1);
}

#[tokio::test]
async fn the_directory_orders_feed_the_orders_table_and_a_webhook_updates_them() {
    let app = shopify_app().await;
    let store = &app.state.service.store;
    let stored = store
        .order(MERCHANT, "5520331001001")
        .await
        .unwrap()
        .expect("orders.json #1001");
    assert_eq!(stored.name, "#1001");
    assert!(
        store
            .customer_by_phone(MERCHANT, "+17205550123")
            .await
            .unwrap()
            .is_some()
    );
    // A live webhook for the same order wins over the directory copy.
    let mut live = sample("orders_cancelled");
    live["id"] = json!(5_520_331_001_001_u64);
    live["name"] = json!("#1001");
    live["phone"] = json!("+17205550123");
    live["updated_at"] = json!("2030-01-01T00:00:00Z");
    app.deliver_ok("orders/cancelled", "ev-live-1001", &live).await;
    let updated = store.order(MERCHANT, "5520331001001").await.unwrap().unwrap();
    assert_eq!(updated.cancel_reason.as_deref(), Some("customer"));
}

/// What `parley shopify replay` sends: the file's topic from its name, signed, to the real
/// server; a cart appears for the merchant.
#[tokio::test]
async fn a_replayed_sample_file_is_accepted() {
    let app = shopify_app().await;
    let before = app.commerce().await;
    let file = workspace_root().join("fixtures/shopify/checkouts_create.json");
    let topic = parley_server::shopify::topic_of_file(&file).unwrap();
    let triggered_at = parley_core::clock::rfc3339(app.clock_now());
    let replay = parley_server::shopify::Replay {
        base_url: &app.addr,
        secret: SECRET,
        shop: SHOP,
        topic: &topic,
        event_id: "replay-1",
        triggered_at: &triggered_at,
    };
    let response = replay
        .send(&app.client, std::fs::read(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.settle().await;
    assert_eq!(app.commerce().await.checkouts, before.checkouts + 1);
    // Signed with another secret, the same replay is refused.
    let forged = parley_server::shopify::Replay {
        secret: "wrong",
        event_id: "replay-2",
        ..replay
    };
    let response = forged
        .send(&app.client, std::fs::read(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn without_a_secret_the_endpoint_does_not_exist() {
    let app = spawn_app(Channel::Simulator).await;
    let response = Delivery::new(&app, "orders/create", "ev-1", &sample("orders_create"))
        .send(&app)
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn every_documented_sample_is_accepted_and_applied() {
    let app = shopify_app_own_catalog().await;
    let topics = [
        ("customers/create", "customers_create"),
        ("customers/update", "customers_update"),
        (
            "customers_marketing_consent/update",
            "customers_marketing_consent_update",
        ),
        ("checkouts/create", "checkouts_create"),
        ("checkouts/update", "checkouts_update"),
        ("orders/create", "orders_create"),
        ("orders/paid", "orders_paid"),
        ("orders/fulfilled", "orders_fulfilled"),
        ("orders/cancelled", "orders_cancelled"),
        ("fulfillments/create", "fulfillments_create"),
        ("refunds/create", "refunds_create"),
        ("products/create", "products_create"),
        ("products/update", "products_update"),
        ("products/delete", "products_delete"),
    ];
    let before = app.commerce().await;
    for (i, (topic, file)) in topics.into_iter().enumerate() {
        app.deliver_ok(topic, &format!("sample-{i}"), &sample(file)).await;
        let (status, error) = app.event_status(&format!("sample-{i}")).await;
        assert!(
            status == "applied" || status == "ignored",
            "{topic}: {status} {error:?}"
        );
    }
    let counts = app.commerce().await;
    assert_eq!(
        counts.orders,
        before.orders + 1,
        "the four order samples are one order"
    );
    assert_eq!(counts.checkouts, before.checkouts + 1);
    let order = app
        .state
        .service
        .store
        .order(MERCHANT, "820982911946154508")
        .await
        .unwrap()
        .expect("the sample order");
    assert_eq!(order.name, "#9999");
    assert_eq!(order.cancel_reason.as_deref(), Some("customer"));
    // The separate fulfillment and refund events reached the order the tools read.
    assert!(!order.fulfillments.is_empty());
    assert!(!order.refunds.is_empty());
    let customer = app
        .state
        .service
        .store
        .customer_by_phone(MERCHANT, "+12025550123")
        .await
        .unwrap()
        .expect("the order's customer");
    assert!(customer.ship_to_region.is_some());
}

/// A checkout as a live store sends it: the customer ticked the SMS box.
pub(crate) fn ticked_checkout(token: &str, phone: &str, updated_at: &str) -> Value {
    let mut checkout = sample("checkouts_update");
    checkout["token"] = json!(token);
    checkout["sms_marketing_phone"] = json!(phone);
    checkout["buyer_accepts_sms_marketing"] = json!(true);
    checkout["updated_at"] = json!(updated_at);
    checkout["customer"] = Value::Null;
    checkout
}

#[tokio::test]
async fn a_ticked_box_is_a_marketing_opt_in_with_its_proof_and_an_order_completes_the_cart() {
    let app = shopify_app().await;
    let phone = "+13035550142";
    app.deliver_ok(
        "checkouts/update",
        "ev-c1",
        &ticked_checkout("tok-1", phone, "2026-11-27T10:00:00-07:00"),
    )
    .await;
    let store = &app.state.service.store;
    let customer = store.customer_by_phone(MERCHANT, phone).await.unwrap().unwrap();
    assert_eq!(customer.marketing, "confirmed");
    let ledger = store.consent_ledger(MERCHANT).await.unwrap();
    let entry = ledger.iter().find(|e| e.phone == phone).expect("a ledger entry");
    assert_eq!(
        (entry.purpose.as_str(), entry.source.as_str()),
        ("marketing", "checkout")
    );
    assert!(entry.proof.as_deref().unwrap_or_default().contains("tok-1"));
    assert!(!app.cart_completed("tok-1").await);

    // An older delivery of the same checkout (Shopify does not order retries) is kept out.
    let mut older = ticked_checkout("tok-1", phone, "2026-11-27T09:00:00-07:00");
    older["total_price"] = json!("1.00");
    app.deliver_ok("checkouts/update", "ev-c0", &older).await;
    let kept = store.checkout(MERCHANT, "tok-1").await.unwrap().unwrap();
    assert_ne!(kept.total_price.as_deref(), Some("1.00"));

    // The order for that checkout: the cart is no longer abandoned.
    let mut order = sample("orders_create");
    order["id"] = json!(4242);
    order["checkout_token"] = json!("tok-1");
    order["phone"] = json!(phone);
    order["customer"] = Value::Null;
    app.deliver_ok("orders/create", "ev-o1", &order).await;
    assert!(app.cart_completed("tok-1").await);
    // Repeating the opt-in adds no second ledger entry.
    app.deliver_ok(
        "checkouts/update",
        "ev-c2",
        &ticked_checkout("tok-1", phone, "2026-11-27T11:00:00-07:00"),
    )
    .await;
    let entries = store.consent_ledger(MERCHANT).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.phone == phone).count(), 1);
}

#[tokio::test]
async fn a_stale_shopify_opt_in_does_not_undo_a_stop() {
    let app = shopify_app().await;
    let phone = "+13035550143";
    // The customer texts STOP now...
    app.simulate(MERCHANT, phone, "STOP").await;
    app.settle().await;
    let store = &app.state.service.store;
    assert!(
        store
            .customer_by_phone(MERCHANT, phone)
            .await
            .unwrap()
            .unwrap()
            .opted_out
    );
    // ...then Shopify echoes a consent record from before it.
    let echo = json!({
        "id": 77, "phone": phone,
        "sms_marketing_consent": {
            "state": "subscribed", "opt_in_level": "single_opt_in",
            "consent_updated_at": parley_core::clock::rfc3339(app.clock_now() - 86_400_000),
            "consent_collected_from": "SHOPIFY"
        }
    });
    app.deliver_ok("customers_marketing_consent/update", "ev-echo", &echo)
        .await;
    let customer = store.customer_by_phone(MERCHANT, phone).await.unwrap().unwrap();
    assert!(customer.opted_out);
    assert_eq!(customer.marketing, "none");
    // A Shopify opt-out of marketing leaves replies alone; a later opt-in is honoured.
    let later = json!({
        "id": 77, "phone": phone,
        "sms_marketing_consent": {
            "state": "subscribed", "opt_in_level": "confirmed_opt_in",
            "consent_updated_at": parley_core::clock::rfc3339(app.clock_now() + 60_000),
            "consent_collected_from": "SHOPIFY"
        }
    });
    app.deliver_ok("customers_marketing_consent/update", "ev-later", &later)
        .await;
    let customer = store.customer_by_phone(MERCHANT, phone).await.unwrap().unwrap();
    assert!(!customer.opted_out);
    assert_eq!(customer.marketing, "confirmed");
}

/// The reply the simulator got for `body` from `phone`.
async fn reply_to(app: &TestApp, phone: &str, body: &str) -> String {
    let result = app.simulate(MERCHANT, phone, body).await;
    app.settle().await;
    let sent = app.sent_to(MERCHANT, phone).await;
    let reply = sent
        .last()
        .unwrap_or_else(|| panic!("no reply to {body:?}: {result}"));
    reply.body.clone()
}

#[tokio::test]
async fn the_order_tools_answer_from_orders_the_webhooks_brought() {
    let app = shopify_app().await;
    let phone = "+13035550166";
    // An order the merchant directory has never heard of, placed just now.
    let mut order = sample("orders_create");
    order["id"] = json!(6161);
    order["name"] = json!("#6161");
    order["order_number"] = json!(6161);
    order["phone"] = json!(phone);
    order["cancelled_at"] = Value::Null;
    order["cancel_reason"] = Value::Null;
    order["financial_status"] = json!("paid");
    order["fulfillment_status"] = Value::Null;
    order["line_items"] = json!([order["line_items"][0].clone()]);
    order["created_at"] = json!("2026-11-27T10:00:00-05:00");
    order["updated_at"] = json!("2026-11-27T10:00:00-05:00");
    app.deliver_ok("orders/create", "ev-o6161", &order).await;
    let before = reply_to(&app, phone, "where is my order #6161?").await;
    assert!(before.contains("#6161"), "{before}");
    assert!(!before.contains("1z827wk74630"), "{before}");

    // Its shipment arrives by webhook; the next answer carries the tracking number.
    let mut shipment = sample("fulfillments_create");
    shipment["order_id"] = json!(6161);
    shipment["status"] = json!("success");
    shipment["created_at"] = json!("2026-11-28T09:00:00-05:00");
    shipment["updated_at"] = json!("2026-11-28T09:00:00-05:00");
    app.deliver_ok("fulfillments/create", "ev-f6161", &shipment).await;
    let after = reply_to(&app, phone, "ok and the tracking number for #6161?").await;
    assert!(after.contains("1z827wk74630"), "{after}");

    // Another phone asking about that order learns nothing of it.
    let stranger = reply_to(&app, "+13035550167", "where is my order #6161?").await;
    assert!(
        !stranger.contains("Aviator") && !stranger.contains("1z827wk74630"),
        "{stranger}"
    );
}

/// Trailhead's product `id` as its directory describes it, in Shopify's REST shape.
fn directory_product(id: u64) -> Value {
    let path = workspace_root().join("fixtures/merchants/trailhead/products.json");
    let products: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let products = products
        .get("products")
        .unwrap_or(&products)
        .as_array()
        .unwrap()
        .clone();
    products
        .into_iter()
        .find(|product| product["id"] == json!(id))
        .expect("a trailhead product")
}

/// Chunk vectors in the merchant's index, by content hash.
async fn index_hashes(app: &TestApp) -> std::collections::HashSet<String> {
    let knowledge = &app.state.knowledge;
    let merchant = parley_knowledge::MerchantId::parse(MERCHANT).unwrap();
    let model = knowledge.embedder().model_id().to_owned();
    let stored = knowledge.index().stored_vectors(&merchant, &model).await.unwrap();
    stored.into_keys().collect()
}

/// How many chunks a catalog holding only `product` makes of it.
fn chunks_of(app: &TestApp, product: &Value) -> usize {
    let merchant = parley_knowledge::MerchantId::parse(MERCHANT).unwrap();
    let mut data = parley_knowledge::MerchantData::clone(&app.state.knowledge.merchant(&merchant).unwrap());
    data.products = vec![serde_json::from_value(product.clone()).unwrap()];
    data.policies.clear();
    data.orders.clear();
    parley_knowledge::chunk::chunk_merchant(&data, app.state.knowledge.chunk_config()).len()
}

#[tokio::test]
async fn a_product_webhook_changes_that_product_in_replies_and_re_embeds_only_it() {
    let app = shopify_app_own_catalog().await;
    let phone = "+13035550181";
    let question = "how much is the Lumen Peak 400 headlamp?";
    let before = reply_to(&app, phone, question).await;
    assert!(before.contains("49"), "{before}");

    // A sale in the shop: $39, was $49.
    let old = directory_product(7001000042);
    let mut sale = old.clone();
    for variant in sale["variants"].as_array_mut().unwrap() {
        variant["price"] = json!("39.00");
        variant["compare_at_price"] = json!("49.00");
    }
    sale["updated_at"] = json!("2026-11-28T06:00:00-05:00");
    let hashes_before = index_hashes(&app).await;
    app.deliver_ok("products/update", "ev-p42-sale", &sale).await;
    let hashes_after = index_hashes(&app).await;
    let added = hashes_after.difference(&hashes_before).count();
    let removed = hashes_before.difference(&hashes_after).count();
    assert!(added >= 1, "the changed product was re-embedded");
    assert!(
        added <= chunks_of(&app, &sale) && removed <= chunks_of(&app, &old),
        "only the changed product's chunks changed: {added} added, {removed} removed"
    );
    assert_eq!(hashes_after.len(), hashes_before.len() + added - removed);
    let after = reply_to(&app, "+13035550182", question).await;
    assert!(after.contains("39"), "{after}");

    // Shopify retries out of order: an older delivery of the product changes nothing.
    let mut stale = old.clone();
    stale["updated_at"] = json!("2026-11-27T06:00:00-05:00");
    app.deliver_ok("products/update", "ev-p42-old", &stale).await;
    let (status, error) = app.event_status("ev-p42-old").await;
    assert_eq!(status, "applied");
    assert!(error.unwrap_or_default().contains("older"));
    let merchant = parley_knowledge::MerchantId::parse(MERCHANT).unwrap();
    let catalog = app.state.knowledge.merchant(&merchant).unwrap();
    let served = catalog.products.iter().find(|p| p.id == 7001000042).unwrap();
    assert_eq!(served.variants[0].price, "39.00");

    // Nothing left to apply: a second refresh is a comparison, not an ingest.
    assert!(
        app.state
            .service
            .refresh_live_products(MERCHANT)
            .await
            .unwrap()
            .is_none()
    );

    // Re-ingesting the (older) directory keeps the shop's newer product.
    let dir = workspace_root().join("fixtures/merchants/trailhead");
    parley_server::commerce::ingest_directory_at(
        &app.state.knowledge,
        &app.state.service.store,
        &dir,
        &|_, _| {},
    )
    .await
    .unwrap();
    let catalog = app.state.knowledge.merchant(&merchant).unwrap();
    let served = catalog.products.iter().find(|p| p.id == 7001000042).unwrap();
    assert_eq!(served.variants[0].price, "39.00");
}

#[tokio::test]
async fn a_deleted_or_archived_product_leaves_the_catalog_and_a_created_one_joins_it() {
    let app = shopify_app_own_catalog().await;
    let merchant = parley_knowledge::MerchantId::parse(MERCHANT).unwrap();
    let has = |id: u64| {
        let catalog = app.state.knowledge.merchant(&merchant).unwrap();
        catalog.products.iter().any(|p| p.id == id)
    };
    assert!(has(7001000043) && has(7001000045));
    app.deliver_ok("products/delete", "ev-del-43", &json!({ "id": 7001000043_u64 }))
        .await;
    assert!(!has(7001000043));
    let mut archived = directory_product(7001000045);
    archived["status"] = json!("archived");
    archived["updated_at"] = json!("2026-11-28T06:00:00-05:00");
    app.deliver_ok("products/update", "ev-arch-45", &archived).await;
    assert!(!has(7001000045));

    let mut created = sample("products_create");
    created["title"] = json!("Emberline Camp Stove");
    created["handle"] = json!("emberline-camp-stove");
    created["body_html"] = json!("<p>A one-burner canister stove that boils a litre in 3.5 minutes.</p>");
    created["updated_at"] = json!("2026-11-28T06:00:00-05:00");
    app.deliver_ok("products/create", "ev-new-stove", &created).await;
    assert!(has(788032119674292922));
    let reply = reply_to(&app, "+13035550183", "how much is the Emberline camp stove?").await;
    assert!(reply.contains("19.99"), "{reply}");
}
