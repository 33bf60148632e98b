//! Shopify-shaped catalog and order data: the Admin REST JSON shapes and the product CSV export.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{KnowledgeError, Result};

/// A product as Shopify's Admin REST API returns it (only the fields Parley uses; the many
/// others Shopify sends are ignored rather than rejected, since exports carry them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub title: String,
    #[serde(default)]
    pub handle: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub body_html: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub vendor: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub product_type: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub options: Vec<ProductOption>,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// When Shopify last changed it (RFC 3339), if known: of a directory's copy and a live
    /// webhook's, the newer one is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOption {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub id: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sku: String,
    pub price: String,
    #[serde(default)]
    pub compare_at_price: Option<String>,
    #[serde(default)]
    pub inventory_quantity: Option<i64>,
    #[serde(default)]
    pub option1: Option<String>,
    #[serde(default)]
    pub option2: Option<String>,
    #[serde(default)]
    pub option3: Option<String>,
}

impl Variant {
    /// The variant's option values in order, skipping Shopify's placeholder "Default Title".
    pub fn option_values(&self) -> Vec<&str> {
        [&self.option1, &self.option2, &self.option3]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|v| !v.is_empty() && *v != "Default Title")
            .collect()
    }

    /// `Some(true)` in stock, `Some(false)` sold out, `None` when the store does not track it.
    pub fn in_stock(&self) -> Option<bool> {
        self.inventory_quantity.map(|qty| qty > 0)
    }
}

impl Product {
    /// Whether the product is on sale to customers (drafts and archived products are not).
    pub fn is_active(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "active")
    }

    pub fn description_text(&self) -> String {
        crate::text::html_to_text(&self.body_html)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    /// The customer-facing order name, e.g. `#1042`.
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub financial_status: Option<String>,
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    #[serde(default)]
    pub cancelled_at: Option<String>,
    /// Shopify's reason code: `customer`, `inventory`, `fraud`, `declined`, `other`.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// Free text on the order. Often written by staff, so it goes to humans, not customers.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub shipping_lines: Vec<ShippingLine>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub fulfillments: Vec<Fulfillment>,
    /// Money given back (a return, a courtesy refund). A refund's `note` is staff text and
    /// is not read: what reaches a customer is the amount, the date and the items.
    #[serde(default)]
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub created_at: String,
    #[serde(default)]
    pub refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    pub transactions: Vec<Transaction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundLineItem {
    #[serde(default, deserialize_with = "null_as_default")]
    pub sku: String,
    #[serde(default)]
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    pub amount: String,
}

impl Refund {
    /// The amount refunded by successful refund transactions.
    pub fn amount(&self) -> f64 {
        self.transactions
            .iter()
            .filter(|t| t.kind.as_deref().is_none_or(|k| k == "refund"))
            .filter(|t| t.status.as_deref().is_none_or(|s| s == "success"))
            .filter_map(|t| t.amount.parse::<f64>().ok())
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShippingLine {
    pub title: String,
    #[serde(default)]
    pub price: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub title: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sku: String,
    pub quantity: u32,
    pub price: String,
    #[serde(default)]
    pub variant_title: Option<String>,
    /// `fulfilled`, `partial` or null (not shipped yet).
    #[serde(default)]
    pub fulfillment_status: Option<String>,
}

/// A line item inside a fulfillment (a shipment): which items travel under its tracking number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfillmentLineItem {
    pub title: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sku: String,
    #[serde(default)]
    pub quantity: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tracking_company: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub shipment_status: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub line_items: Vec<FulfillmentLineItem>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Shopify REST sends tags as one comma-separated string; GraphQL and other tools send a list.
fn tags<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Option::<Tags>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Tags::Text(text)) => split_tags(&text),
        Some(Tags::List(list)) => list.into_iter().filter(|t| !t.trim().is_empty()).collect(),
    })
}

fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
struct ProductsFile {
    products: Vec<Product>,
}

#[derive(Deserialize)]
struct OrdersFile {
    orders: Vec<Order>,
}

/// Parses `products.json` and checks what the rest of Parley relies on.
pub fn load_products_json(path: &Path, text: &str) -> Result<Vec<Product>> {
    let file: ProductsFile = serde_json::from_str(text).map_err(|err| {
        KnowledgeError::invalid(
            path,
            format!("invalid products JSON (expected {{\"products\": [...]}}): {err}"),
        )
    })?;
    let mut products = file.products;
    for product in &mut products {
        if product.handle.trim().is_empty() {
            product.handle = handleize(&product.title);
        }
    }
    validate_products(path, &products)?;
    Ok(products)
}

/// Parses `orders.json` (`{"orders": [...]}` in Shopify's shape).
pub fn load_orders_json(path: &Path, text: &str) -> Result<Vec<Order>> {
    let file: OrdersFile = serde_json::from_str(text).map_err(|err| {
        KnowledgeError::invalid(
            path,
            format!("invalid orders JSON (expected {{\"orders\": [...]}}): {err}"),
        )
    })?;
    for order in &file.orders {
        if order.name.trim().is_empty() {
            return Err(KnowledgeError::invalid(
                path,
                format!("order {} has an empty `name`", order.id),
            ));
        }
        for item in &order.line_items {
            check_price(
                path,
                &format!("order {} line item {:?}", order.name, item.title),
                &item.price,
            )?;
        }
    }
    Ok(file.orders)
}

fn validate_products(path: &Path, products: &[Product]) -> Result<()> {
    let mut handles = BTreeMap::new();
    for product in products {
        if product.title.trim().is_empty() {
            return Err(KnowledgeError::invalid(
                path,
                format!("product {} has an empty title", product.id),
            ));
        }
        if let Some(previous) = handles.insert(product.handle.clone(), &product.title) {
            return Err(KnowledgeError::invalid(
                path,
                format!(
                    "handle {:?} is used by both {:?} and {:?}",
                    product.handle, previous, product.title
                ),
            ));
        }
        for variant in &product.variants {
            let what = format!("product {:?} variant {:?}", product.handle, variant.title);
            check_price(path, &what, &variant.price)?;
            if let Some(compare) = &variant.compare_at_price {
                check_price(path, &what, compare)?;
            }
        }
    }
    Ok(())
}

fn check_price(path: &Path, what: &str, price: &str) -> Result<()> {
    match price.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(()),
        _ => Err(KnowledgeError::invalid(
            path,
            format!("{what}: price {price:?} is not a decimal amount"),
        )),
    }
}

/// Shopify's handle rule: lowercase, runs of non-alphanumerics become one `-`.
pub fn handleize(title: &str) -> String {
    let mut handle = String::with_capacity(title.len());
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            handle.push(c);
        } else if !handle.is_empty() && !handle.ends_with('-') {
            handle.push('-');
        }
    }
    handle.trim_end_matches('-').to_owned()
}

/// Parses Shopify's product CSV export: one row per variant (or image), grouped by `Handle`;
/// product-level columns are filled only on a product's first row.
pub fn load_products_csv(path: &Path, text: &str) -> Result<Vec<Product>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|err| KnowledgeError::invalid(path, format!("invalid CSV header: {err}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let handle_col = column("Handle").ok_or_else(|| {
        KnowledgeError::invalid(
            path,
            "missing `Handle` column; expected a Shopify product CSV export",
        )
    })?;
    let title_col = column("Title").ok_or_else(|| {
        KnowledgeError::invalid(
            path,
            "missing `Title` column; expected a Shopify product CSV export",
        )
    })?;
    let col = |name: &str| column(name);
    let (body_col, vendor_col, type_col, tags_col, status_col) = (
        col("Body (HTML)"),
        col("Vendor"),
        col("Type"),
        col("Tags"),
        col("Status"),
    );
    let option_cols: Vec<(Option<usize>, Option<usize>)> = (1..=3)
        .map(|i| (col(&format!("Option{i} Name")), col(&format!("Option{i} Value"))))
        .collect();
    let (sku_col, price_col, compare_col, qty_col) = (
        col("Variant SKU"),
        col("Variant Price"),
        col("Variant Compare At Price"),
        col("Variant Inventory Qty"),
    );

    let mut products: Vec<Product> = Vec::new();
    for (row_idx, record) in reader.records().enumerate() {
        // Row 1 is the header, so the first record is line 2 of the file.
        let line = row_idx + 2;
        let record = record.map_err(|err| KnowledgeError::invalid(path, format!("line {line}: {err}")))?;
        let get = |idx: Option<usize>| {
            idx.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let handle = get(Some(handle_col))
            .ok_or_else(|| KnowledgeError::invalid(path, format!("line {line}: empty Handle")))?;
        let starts_product = products.last().is_none_or(|p| p.handle != handle);
        if starts_product {
            let title = get(Some(title_col)).ok_or_else(|| {
                KnowledgeError::invalid(
                    path,
                    format!("line {line}: first row of product {handle:?} has no Title"),
                )
            })?;
            if products.iter().any(|p| p.handle == handle) {
                return Err(KnowledgeError::invalid(
                    path,
                    format!("line {line}: rows of product {handle:?} are not contiguous"),
                ));
            }
            let options = option_cols
                .iter()
                .filter_map(|(name, _)| get(*name))
                .filter(|name| *name != "Title")
                .map(|name| ProductOption {
                    name: name.to_owned(),
                    values: Vec::new(),
                })
                .collect();
            products.push(Product {
                id: stable_id(handle, ""),
                title: title.to_owned(),
                handle: handle.to_owned(),
                body_html: get(body_col).unwrap_or_default().to_owned(),
                vendor: get(vendor_col).unwrap_or_default().to_owned(),
                product_type: get(type_col).unwrap_or_default().to_owned(),
                tags: split_tags(get(tags_col).unwrap_or_default()),
                status: get(status_col).map(str::to_ascii_lowercase),
                options,
                variants: Vec::new(),
                updated_at: None,
            });
        }
        let product = products.last_mut().expect("pushed above");
        // Image-only rows carry no price: they add nothing Parley uses.
        let Some(price) = get(price_col) else {
            continue;
        };
        let values: Vec<Option<String>> = option_cols
            .iter()
            .map(|(_, value)| get(*value).map(str::to_owned))
            .collect();
        for (option, value) in product.options.iter_mut().zip(&values) {
            if let Some(value) = value
                && !option.values.contains(value)
            {
                option.values.push(value.clone());
            }
        }
        let title = values
            .iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" / ");
        let inventory_quantity = match get(qty_col) {
            None => None,
            Some(qty) => Some(qty.parse::<i64>().map_err(|_| {
                KnowledgeError::invalid(
                    path,
                    format!("line {line}: Variant Inventory Qty {qty:?} is not a whole number"),
                )
            })?),
        };
        let sku = get(sku_col).unwrap_or_default().to_owned();
        product.variants.push(Variant {
            id: stable_id(handle, &format!("{title}|{sku}")),
            title,
            sku,
            price: price.to_owned(),
            compare_at_price: get(compare_col).map(str::to_owned),
            inventory_quantity,
            option1: values[0].clone(),
            option2: values[1].clone(),
            option3: values[2].clone(),
        });
    }
    if products.is_empty() {
        return Err(KnowledgeError::invalid(path, "CSV has a header but no products"));
    }
    validate_products(path, &products)?;
    Ok(products)
}

/// CSV exports carry no ids; derive stable ones so re-imports keep the same identity.
fn stable_id(handle: &str, extra: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{handle}\u{1f}{extra}").as_bytes());
    // Keep it within JavaScript's safe integer range for JSON consumers.
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 11
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handleize_matches_shopify_rule() {
        assert_eq!(
            handleize("Ridgeline 2 Waterproof Boot!"),
            "ridgeline-2-waterproof-boot"
        );
        assert_eq!(handleize("  Crème  Brûlée -- Lip Balm "), "crème-brûlée-lip-balm");
    }

    #[test]
    fn csv_groups_variant_rows_by_handle() {
        let csv = "Handle,Title,Body (HTML),Vendor,Type,Tags,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Compare At Price,Variant Inventory Qty,Image Src,Status\n\
            trail-sock,Trail Sock,<p>Merino.</p>,Acme,Socks,\"wool, socks\",Size,M,TS-M,18.00,,5,,active\n\
            trail-sock,,,,,,,L,TS-L,18.00,22.00,0,,\n\
            trail-sock,,,,,,,,,,,,https://img.example/1.jpg,\n";
        let products = load_products_csv(Path::new("products.csv"), csv).unwrap();
        assert_eq!(products.len(), 1);
        let sock = &products[0];
        assert_eq!(sock.tags, vec!["wool", "socks"]);
        assert_eq!(sock.options[0].values, vec!["M", "L"]);
        assert_eq!(sock.variants.len(), 2);
        assert_eq!(sock.variants[1].sku, "TS-L");
        assert_eq!(sock.variants[1].in_stock(), Some(false));
        assert_eq!(sock.variants[1].compare_at_price.as_deref(), Some("22.00"));
    }

    #[test]
    fn csv_errors_name_the_line() {
        let csv = "Handle,Title,Variant Price,Variant Inventory Qty\nsock,Sock,12.00,many\n";
        let err = load_products_csv(Path::new("x/products.csv"), csv).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("x/products.csv"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn bad_price_is_rejected() {
        let json = r#"{"products":[{"id":1,"title":"A","handle":"a","variants":[{"id":2,"price":"free"}]}]}"#;
        let err = load_products_json(Path::new("products.json"), json).unwrap_err();
        assert!(err.to_string().contains("not a decimal amount"), "{err}");
    }
}
