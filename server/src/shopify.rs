//! Shopify's webhook wire format: the `X-Shopify-*` headers, the HMAC that proves a delivery
//! came from the store's app, the topics Parley uses and the payload fields it reads (the
//! Admin REST shapes; every other field Shopify sends is ignored, not rejected, since Shopify
//! adds fields in new API versions).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use parley_knowledge::shopify::Order;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use strum::{Display, EnumString, IntoStaticStr};

/// `[shopify]` settings: the app's webhook secret and how old a delivery may be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The app's client secret: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw
    /// body under it.
    pub app_secret: SecretString,
    /// A delivery whose `X-Shopify-Triggered-At` is older than this is refused as a replay.
    /// Shopify retries a failed delivery 8 times over 4 hours, so the default leaves room.
    #[serde(
        default = "default_max_event_age",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub max_event_age: std::time::Duration,
    /// Largest webhook body accepted (bytes): orders with many lines run to hundreds of KB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}

impl ShopifyConfig {
    /// What is wrong with these settings, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        use secrecy::ExposeSecret as _;
        if self.app_secret.expose_secret().trim().is_empty() {
            return Err(("shopify.app_secret", "must not be empty".into()));
        }
        if self.max_event_age < std::time::Duration::from_secs(5 * 60) {
            return Err((
                "shopify.max_event_age",
                "must be at least 5m (Shopify retries a delivery for hours)".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(("shopify.max_body_bytes", "must be at least 1024".into()));
        }
        Ok(())
    }
}

fn default_max_event_age() -> std::time::Duration {
    std::time::Duration::from_secs(24 * 3600)
}

/// Whether `header` (base64) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn verify_hmac(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The header value Shopify would send for `body` (the replay command and tests sign with it).
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The topic a sample file is for, from its name as `fixtures/shopify/` writes them:
/// `orders_create.json` is `orders/create`, `customers_marketing_consent_update.json` is
/// `customers_marketing_consent/update` (the last underscore is the slash).
pub fn topic_of_file(path: &std::path::Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let (resource, action) = stem.rsplit_once('_')?;
    (!resource.is_empty() && !action.is_empty()).then(|| format!("{resource}/{action}"))
}

/// One delivery as Shopify makes it: the body signed with the app secret and Shopify's
/// headers, POSTed to `{base_url}/webhooks/shopify`. `parley shopify replay` and the tests use it.
pub struct Replay<'a> {
    pub base_url: &'a str,
    pub secret: &'a str,
    pub shop: &'a str,
    pub topic: &'a str,
    pub event_id: &'a str,
    /// RFC 3339, as `X-Shopify-Triggered-At`.
    pub triggered_at: &'a str,
}

impl Replay<'_> {
    pub async fn send(&self, client: &reqwest::Client, body: Vec<u8>) -> reqwest::Result<reqwest::Response> {
        client
            .post(format!(
                "{}/webhooks/shopify",
                self.base_url.trim_end_matches('/')
            ))
            .header("content-type", "application/json")
            .header("x-shopify-topic", self.topic)
            .header("x-shopify-shop-domain", self.shop)
            .header("x-shopify-event-id", self.event_id)
            .header("x-shopify-webhook-id", format!("replay-{}", self.event_id))
            .header("x-shopify-triggered-at", self.triggered_at)
            .header("x-shopify-hmac-sha256", sign(self.secret, &body))
            .body(body)
            .send()
            .await
    }
}

/// The topics Parley acts on. Anything else is recorded and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Display, EnumString, IntoStaticStr)]
pub enum Topic {
    #[strum(serialize = "checkouts/create")]
    CheckoutsCreate,
    #[strum(serialize = "checkouts/update")]
    CheckoutsUpdate,
    #[strum(serialize = "orders/create")]
    OrdersCreate,
    #[strum(serialize = "orders/updated")]
    OrdersUpdated,
    #[strum(serialize = "orders/paid")]
    OrdersPaid,
    #[strum(serialize = "orders/fulfilled")]
    OrdersFulfilled,
    #[strum(serialize = "orders/partially_fulfilled")]
    OrdersPartiallyFulfilled,
    #[strum(serialize = "orders/cancelled")]
    OrdersCancelled,
    #[strum(serialize = "fulfillments/create")]
    FulfillmentsCreate,
    #[strum(serialize = "fulfillments/update")]
    FulfillmentsUpdate,
    #[strum(serialize = "refunds/create")]
    RefundsCreate,
    #[strum(serialize = "customers/create")]
    CustomersCreate,
    #[strum(serialize = "customers/update")]
    CustomersUpdate,
    /// Since API 2025-01 SMS consent changes arrive on their own topic.
    #[strum(serialize = "customers_marketing_consent/update")]
    CustomersMarketingConsentUpdate,
    #[strum(serialize = "products/create")]
    ProductsCreate,
    #[strum(serialize = "products/update")]
    ProductsUpdate,
    #[strum(serialize = "products/delete")]
    ProductsDelete,
}

/// What a topic's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Checkout,
    Order,
    Fulfillment,
    Refund,
    Customer,
    Product,
    ProductDeleted,
}

impl Topic {
    pub fn payload_kind(self) -> PayloadKind {
        use Topic::*;
        match self {
            CheckoutsCreate | CheckoutsUpdate => PayloadKind::Checkout,
            OrdersCreate
            | OrdersUpdated
            | OrdersPaid
            | OrdersFulfilled
            | OrdersPartiallyFulfilled
            | OrdersCancelled => PayloadKind::Order,
            FulfillmentsCreate | FulfillmentsUpdate => PayloadKind::Fulfillment,
            RefundsCreate => PayloadKind::Refund,
            CustomersCreate | CustomersUpdate | CustomersMarketingConsentUpdate => PayloadKind::Customer,
            ProductsCreate | ProductsUpdate => PayloadKind::Product,
            ProductsDelete => PayloadKind::ProductDeleted,
        }
    }
}

/// Shopify ids are JSON numbers (and strings in some tools' exports): kept as text.
fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Id>::deserialize(deserializer)? {
        None => None,
        Some(Id::Number(n)) => Some(n.to_string()),
        Some(Id::Text(text)) => Some(text).filter(|t| !t.trim().is_empty()),
    })
}

/// `null` read as the type's default (Shopify writes `null` for empty lists and flags).
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Address {
    #[serde(default)]
    pub country_code: Option<String>,
    #[serde(default)]
    pub province_code: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

impl Address {
    /// `US-FL` from a US address in Florida, `CA` from a Canadian one without a province.
    pub fn region(&self) -> Option<String> {
        let country = self.country_code.as_deref()?.trim().to_ascii_uppercase();
        if country.len() != 2 {
            return None;
        }
        match self
            .province_code
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(province) => Some(format!("{country}-{}", province.to_ascii_uppercase())),
            None => Some(country),
        }
    }
}

/// `sms_marketing_consent` on a customer.
#[derive(Debug, Clone, Deserialize)]
pub struct SmsMarketingConsent {
    /// `subscribed`, `not_subscribed`, `unsubscribed`, `pending`, `redacted` (or null).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub opt_in_level: Option<String>,
    #[serde(default)]
    pub consent_updated_at: Option<String>,
    #[serde(default)]
    pub consent_collected_from: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Absent from the consent topic's payload: `None` leaves the stored tags.
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub sms_marketing_consent: Option<SmsMarketingConsent>,
    #[serde(default)]
    pub default_address: Option<Address>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CheckoutLine {
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    #[serde(default)]
    pub variant_title: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub quantity: u32,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default, deserialize_with = "id_text")]
    pub product_id: Option<String>,
    #[serde(default, deserialize_with = "id_text")]
    pub variant_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Checkout {
    /// A number in Shopify's samples, a string in live stores: kept as text.
    #[serde(default, deserialize_with = "id_text")]
    pub token: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub sms_marketing_phone: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub buyer_accepts_sms_marketing: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub abandoned_checkout_url: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub line_items: Vec<CheckoutLine>,
    #[serde(default)]
    pub total_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    pub shipping_address: Option<Address>,
}

/// What an order webhook carries beyond the REST order the order tools read (`Order`, read
/// from the same body): the customer, the ship-to address and the checkout it completes.
/// Empty for an order from the merchant directory's `orders.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderMeta {
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    pub shipping_address: Option<Address>,
    #[serde(default)]
    pub checkout_token: Option<String>,
    #[serde(default)]
    pub total_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub line_items: Vec<OrderLineIds>,
}

/// An order webhook's body, read as both shapes.
pub fn parse_order(body: &[u8]) -> Result<(Order, OrderMeta), serde_json::Error> {
    Ok((serde_json::from_slice(body)?, serde_json::from_slice(body)?))
}

/// The ids on an order's line items (the rest of the line is in `Order`).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderLineIds {
    #[serde(default, deserialize_with = "id_text")]
    pub product_id: Option<String>,
    #[serde(default, deserialize_with = "id_text")]
    pub variant_id: Option<String>,
}

/// `fulfillments/*`: one shipment of an order.
#[derive(Debug, Clone, Deserialize)]
pub struct FulfillmentEvent {
    #[serde(default, deserialize_with = "id_text")]
    pub order_id: Option<String>,
    #[serde(flatten)]
    pub fulfillment: parley_knowledge::shopify::Fulfillment,
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
}

/// `refunds/create`.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundEvent {
    #[serde(default, deserialize_with = "id_text")]
    pub order_id: Option<String>,
    #[serde(flatten)]
    pub refund: parley_knowledge::shopify::Refund,
}

/// `products/delete` carries only the id.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductDeleted {
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
}

/// A sample payload as if it happened at `now_ms`: its top-level `created_at` and
/// `updated_at` (where present) become that time. For `parley shopify replay --now`: a sample
/// from years ago starts no flow.
pub fn stamp_now(body: &[u8], now_ms: i64) -> Result<Vec<u8>, serde_json::Error> {
    let mut payload: serde_json::Value = serde_json::from_slice(body)?;
    let now = parley_core::clock::rfc3339(now_ms);
    if let Some(fields) = payload.as_object_mut() {
        for key in ["created_at", "updated_at"] {
            if let Some(value) = fields.get_mut(key) {
                *value = serde_json::Value::String(now.clone());
            }
        }
    }
    serde_json::to_vec(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_sample_carries_the_time_given_and_nothing_else_changes() {
        let body = br#"{"token":"t","created_at":"2021-12-31T19:00:00-05:00","updated_at":"2021-12-31T19:00:00-05:00","completed_at":null,"line_items":[{"updated_at":"x"}]}"#;
        let stamped: serde_json::Value =
            serde_json::from_slice(&stamp_now(body, 1_795_867_200_000).unwrap()).unwrap();
        assert_eq!(stamped["created_at"], "2026-11-28T12:00:00Z");
        assert_eq!(stamped["updated_at"], "2026-11-28T12:00:00Z");
        assert!(stamped["completed_at"].is_null());
        assert_eq!(stamped["line_items"][0]["updated_at"], "x", "only the top level");
        assert_eq!(stamped["token"], "t");
        assert!(stamp_now(b"not json", 0).is_err());
    }

    #[test]
    fn the_signature_is_base64_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let body = b"what do ya want for nothing?";
        let expected_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let expected = base64::engine::general_purpose::STANDARD.encode(hex::decode(expected_hex).unwrap());
        assert_eq!(sign("Jefe", body), expected);
        assert!(verify_hmac("Jefe", body, &expected));
        assert!(!verify_hmac("Jefe", b"what do ya want for nothing!", &expected));
        assert!(!verify_hmac("jefe", body, &expected));
        assert!(!verify_hmac("Jefe", body, "not base64!"));
        assert!(!verify_hmac("Jefe", body, ""));
    }

    #[test]
    fn sample_files_name_their_topic() {
        let topic = |name: &str| topic_of_file(std::path::Path::new(name));
        assert_eq!(
            topic("fixtures/shopify/orders_create.json").as_deref(),
            Some("orders/create")
        );
        assert_eq!(
            topic("customers_marketing_consent_update.json").as_deref(),
            Some("customers_marketing_consent/update")
        );
        assert_eq!(topic("orders.json"), None);
        assert_eq!(topic("_create.json"), None);
    }

    #[test]
    fn topics_read_as_shopify_writes_them() {
        assert_eq!(
            "checkouts/update".parse::<Topic>().unwrap(),
            Topic::CheckoutsUpdate
        );
        assert_eq!(Topic::RefundsCreate.to_string(), "refunds/create");
        assert!("carts/update".parse::<Topic>().is_err());
    }

    #[test]
    fn regions_from_addresses() {
        let address = |country: Option<&str>, province: Option<&str>| Address {
            country_code: country.map(str::to_owned),
            province_code: province.map(str::to_owned),
            phone: None,
        };
        assert_eq!(address(Some("US"), Some("FL")).region().as_deref(), Some("US-FL"));
        assert_eq!(address(Some("ca"), Some("on")).region().as_deref(), Some("CA-ON"));
        assert_eq!(address(Some("GB"), None).region().as_deref(), Some("GB"));
        assert_eq!(address(None, Some("FL")).region(), None);
    }
}
