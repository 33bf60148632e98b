//! Tools over the merchant's own systems: order lookup by the customer's phone and order
//! name, product/variant lookup (price, stock, options) and the store's discount codes
//! ([`offers`]). Their results become [`Fact`]s: sentences a customer can read, which
//! generators quote and guardrails accept as evidence.
//!
//! Order answers come from order data only. An order is shown only to the phone number that
//! placed it: "check #1004 for my buddy" is not answered, whatever the message claims.

pub mod offers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use parley_core::phone::{Country, Phone};
use parley_knowledge::shopify::Fulfillment;
use parley_knowledge::{MerchantData, Order, Product, Variant};
use regex::Regex;

use crate::generate::Fact;
use crate::text::{stem, terms_match, unique, words};

pub use offers::{mentions_codes, offer_facts};

/// Where the order tools read a customer's orders. The service's store is one (fed by
/// Shopify's order webhooks and by the directory's `orders.json` at ingest); an agent without
/// one reads the directory's orders as ingested (the eval harness, tests).
#[async_trait::async_trait]
pub trait OrderSource: Send + Sync {
    /// The orders placed from `phone` at `merchant`, newest first.
    async fn orders_of(
        &self,
        merchant: &parley_knowledge::MerchantId,
        phone: &Phone,
    ) -> Result<Vec<Order>, OrderSourceError>;
}

/// The orders could not be read: the agent hands the question to a person.
#[derive(Debug, thiserror::Error)]
#[error("orders could not be read: {0}")]
pub struct OrderSourceError(pub String);

/// A merchant's data with the lookups the tools need built once, not per message: orders by
/// phone, products by handle and SKU, and each title's words weighted by their rarity in the
/// catalogue. Rebuilt when the merchant is re-ingested (the pipeline caches one per
/// `Arc<MerchantData>`).
#[derive(Debug)]
pub struct Catalog {
    data: Arc<MerchantData>,
    /// Order indices per normalised phone, newest first.
    orders_by_phone: HashMap<Phone, Vec<usize>>,
    product_by_handle: HashMap<String, usize>,
    /// Upper-cased SKU → (product, variant), active products only; the first one wins.
    variant_by_sku: HashMap<String, (usize, usize)>,
    /// Per product: its title's stemmed words (generic ones removed) with their IDF.
    title_terms: Vec<Vec<(String, f32)>>,
    /// Per option name (lower case, "color"): every word any product's values of it use,
    /// so "green" is known to be a colour even for a bike that has none.
    option_words: HashMap<String, HashSet<String>>,
    /// Stemmed words of the product types ("e-bike" → "ebik"), for scoped rules.
    categories: Vec<String>,
    /// Category words that stand in several titles ("boot" in every hiking boot and in the
    /// boot wax): saying one names a kind of product, not a product.
    shared_category_words: HashSet<String>,
    /// Per active product: its title's lower-case words, for [`Catalog::mask_titles`].
    title_words: Vec<Vec<String>>,
    /// Per product: its title's head noun, stemmed (the last word before a " - " or " ("
    /// suffix: "tent" in "Basecamp 2 Backpacking Tent", "footprint" in "Basecamp 2 Tent
    /// Footprint"). A title whose head the customer did not say is a weaker match.
    title_heads: Vec<Option<String>>,
    /// Per active product: its source ("products/<handle>") and title, so a policy section
    /// headed by a product's title ("### Aero Shell MIPS Road Helmet") is known to be its.
    product_titles: Vec<(String, String)>,
    /// Per product source ("products/loam-trail-29"): its chunks, as indexed.
    product_chunks: HashMap<String, Vec<parley_knowledge::Chunk>>,
}

impl Catalog {
    /// `chunk_config` is the knowledge base's, so each product's chunks are the ones indexed.
    pub fn new(data: Arc<MerchantData>, chunk_config: &parley_knowledge::ChunkConfig) -> Self {
        let mut orders_by_phone: HashMap<Phone, Vec<usize>> = HashMap::new();
        for (idx, order) in data.orders.iter().enumerate() {
            if let Some(phone) = order.phone.as_deref().and_then(order_phone) {
                orders_by_phone.entry(phone).or_default().push(idx);
            }
        }
        // Newest first: "where's my order?" means the latest one.
        for indices in orders_by_phone.values_mut() {
            indices.sort_by(|a, b| data.orders[*b].created_at.cmp(&data.orders[*a].created_at));
        }
        let product_by_handle = data
            .products
            .iter()
            .enumerate()
            .map(|(idx, p)| (p.handle.clone(), idx))
            .rev() // so the first product with a handle wins, as a linear search would
            .collect();
        let mut variant_by_sku = HashMap::new();
        for (product_idx, product) in data.products.iter().enumerate().filter(|(_, p)| p.is_active()) {
            for (variant_idx, variant) in product.variants.iter().enumerate() {
                if !variant.sku.is_empty() {
                    variant_by_sku
                        .entry(variant.sku.to_ascii_uppercase())
                        .or_insert((product_idx, variant_idx));
                }
            }
        }
        // A title word's rarity across the catalogue is its weight.
        let title_stems: Vec<Vec<String>> = data.products.iter().map(|p| stemmed_words(&p.title)).collect();
        let mut frequency: HashMap<&str, usize> = HashMap::new();
        for stems in &title_stems {
            let unique: HashSet<&str> = stems.iter().map(String::as_str).collect();
            for word in unique {
                *frequency.entry(word).or_default() += 1;
            }
        }
        let n_products = data.products.len().max(1) as f32;
        let title_terms = title_stems
            .iter()
            .map(|stems| {
                stems
                    .iter()
                    // Nor does a title's stop word name it: "Fortress U-Lock" is not what
                    // every "do you…" asks about.
                    .filter(|w| !GENERIC_TITLE_WORDS.contains(&w.as_str()) && !crate::text::is_stop_word(w))
                    .map(|w| {
                        let df = frequency.get(w.as_str()).copied().unwrap_or(1).max(1) as f32;
                        (w.clone(), (n_products / df).ln())
                    })
                    .collect()
            })
            .collect();
        let mut option_words: HashMap<String, HashSet<String>> = HashMap::new();
        for product in data.products.iter().filter(|p| p.is_active()) {
            for option in &product.options {
                let known = option_words.entry(option_kind(&option.name)).or_default();
                for value in option.values.iter().filter(|v| *v != "Default Title") {
                    // Not glue words: "Fits up to 6 ft" must not make "for" or "to" a size.
                    known.extend(words(value).into_iter().filter(|w| {
                        w.len() >= 3
                            && !w.chars().all(|c| c.is_ascii_digit())
                            && !crate::text::terms(w).is_empty()
                    }));
                }
            }
        }
        option_words
            .entry("color".to_owned())
            .or_default()
            .extend(BASIC_COLOURS.iter().map(|c| (*c).to_owned()));
        let categories = unique(
            data.products
                .iter()
                .filter(|p| p.is_active())
                .flat_map(|p| crate::text::terms(&p.product_type.replace('-', ""))),
        );
        let shared_category_words = frequency
            .iter()
            .filter(|(word, df)| **df >= 2 && categories.iter().any(|c| c == *word))
            .map(|(word, _)| (*word).to_owned())
            .collect();
        let title_heads = data
            .products
            .iter()
            .map(|p| {
                let name = p.title.split(" - ").next().unwrap_or(&p.title);
                let name = name.split(" (").next().unwrap_or(name);
                stemmed_words(name).pop()
            })
            .collect();
        let product_titles = data
            .products
            .iter()
            .filter(|p| p.is_active())
            .map(|p| (format!("products/{}", p.handle), p.title.clone()))
            .collect();
        let title_words = data
            .products
            .iter()
            .filter(|p| p.is_active())
            .map(|p| plain_words(&p.title).into_iter().map(|(_, w)| w).collect())
            .collect();
        let mut product_chunks: HashMap<String, Vec<parley_knowledge::Chunk>> = HashMap::new();
        for chunk in parley_knowledge::chunk::chunk_products(&data, chunk_config) {
            product_chunks
                .entry(chunk.source.clone())
                .or_default()
                .push(chunk);
        }
        Self {
            data,
            orders_by_phone,
            product_by_handle,
            variant_by_sku,
            title_terms,
            option_words,
            categories,
            shared_category_words,
            title_words,
            title_heads,
            product_titles,
            product_chunks,
        }
    }

    /// The chunks of one product ("products/<handle>"), as the index holds them.
    pub fn product_chunks(&self, source: &str) -> &[parley_knowledge::Chunk] {
        self.product_chunks.get(source).map_or(&[], Vec::as_slice)
    }

    /// The message with every product name in it (two or more consecutive title words)
    /// replaced by "item", so words inside a name are not read as what the customer says:
    /// "does the Melt Away balm have almond oil?" is not about something melting, "is the
    /// Fire Starter in stock?" not about a fire.
    pub fn mask_titles(&self, message: &str) -> String {
        let spans = plain_words(message);
        let mut masked = vec![false; spans.len()];
        for title in &self.title_words {
            for start in 0..spans.len() {
                for offset in (0..title.len()).filter(|&k| title[k] == spans[start].1) {
                    let run = spans[start..]
                        .iter()
                        .zip(&title[offset..])
                        .take_while(|(span, word)| span.1 == **word)
                        .count();
                    // A run of only short glue words ("of the") is no name.
                    let named = spans[start..start + run].iter().any(|(_, w)| w.len() >= 4);
                    if run >= 2 && named {
                        masked[start..start + run].iter_mut().for_each(|m| *m = true);
                    }
                }
            }
        }
        if !masked.contains(&true) {
            return message.to_owned();
        }
        let mut out = String::with_capacity(message.len());
        let mut cursor = 0;
        let mut previous_masked = false;
        for ((range, _), is_masked) in spans.iter().zip(&masked) {
            if *is_masked {
                // The gap between two masked words goes with them.
                if !previous_masked {
                    out.push_str(&message[cursor..range.start]);
                    out.push_str("item");
                }
                cursor = range.end;
            }
            previous_masked = *is_masked;
        }
        out.push_str(&message[cursor..]);
        out
    }

    /// Every active product's source and title.
    pub fn product_titles(&self) -> &[(String, String)] {
        &self.product_titles
    }

    /// The title of the product with this handle.
    pub fn title(&self, handle: &str) -> Option<&str> {
        self.product(handle).map(|p| p.title.as_str())
    }

    /// How many active products' titles hold every one of these stemmed words.
    fn titles_with_all(&self, words: &[&str]) -> usize {
        self.data
            .products
            .iter()
            .zip(&self.title_terms)
            .filter(|(p, terms)| p.is_active() && words.iter().all(|w| terms.iter().any(|(t, _)| t == w)))
            .count()
    }

    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// The category words of one product ("products/<handle>"): its product type, stemmed.
    pub fn category_terms(&self, source: Option<&str>) -> Vec<String> {
        source
            .and_then(|s| s.strip_prefix("products/"))
            .and_then(|handle| self.product(handle))
            .map(|p| crate::text::terms(&p.product_type.replace('-', "")))
            .unwrap_or_default()
    }

    pub fn data(&self) -> &Arc<MerchantData> {
        &self.data
    }

    fn product(&self, handle: &str) -> Option<&Product> {
        self.product_by_handle
            .get(handle)
            .map(|idx| &self.data.products[*idx])
    }

    /// The directory's orders placed from this phone, newest first.
    pub fn orders_of(&self, phone: &Phone) -> Vec<Order> {
        self.orders_by_phone
            .get(phone)
            .map(|indices| indices.iter().map(|idx| self.data.orders[*idx].clone()).collect())
            .unwrap_or_default()
    }
}

static ORDER_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:#\s?(\d{3,8})\b|\border\s*(?:number|num|no\.?)?\s*#?\s*(\d{3,8})\b)")
        .expect("valid regex")
});

/// Order numbers the customer mentioned, e.g. "#1042" or "order 1042" → ["1042"].
pub fn mentioned_order_numbers(message: &str) -> Vec<String> {
    unique(
        ORDER_REF
            .captures_iter(message)
            .filter_map(|caps| caps.get(1).or_else(|| caps.get(2)))
            .map(|number| number.as_str().to_owned()),
    )
}

/// What an order lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderLookup {
    /// The customer's orders relevant to the message, most relevant first.
    Found(Vec<Order>),
    /// The customer has no orders here, or named one that is not theirs. Never guess.
    NotFound { mentioned: Vec<String> },
    /// The channel gave no phone number to look up by.
    NoCustomer,
}

/// Finds the customer's orders the message is about. `previous` carries the order names
/// discussed earlier in the conversation, so "and when will it arrive?" stays on them.
/// A phone number as an order file wrote it: national numbers are read as North American,
/// the region every store so far sells in (a store elsewhere writes `+` and its country code).
pub fn order_phone(raw: &str) -> Option<Phone> {
    Phone::parse_in(raw, Country::US).ok()
}

/// `own`: the customer's orders, newest first; `None` when the channel gave no phone.
pub fn lookup_orders(own: Option<&[Order]>, message: &str, previous: &[String]) -> OrderLookup {
    let mentioned = mentioned_order_numbers(message);
    let Some(own) = own else {
        return if mentioned.is_empty() {
            OrderLookup::NoCustomer
        } else {
            OrderLookup::NotFound { mentioned }
        };
    };
    if own.is_empty() {
        return OrderLookup::NotFound { mentioned };
    }
    if !mentioned.is_empty() {
        let number_of = |order: &Order| order.name.trim_start_matches('#').to_owned();
        let found: Vec<Order> = own
            .iter()
            .filter(|order| mentioned.contains(&number_of(order)))
            .cloned()
            .collect();
        // Any order named that is not this customer's means we cannot answer about it.
        return if found.len() == mentioned.len() {
            OrderLookup::Found(found)
        } else {
            OrderLookup::NotFound { mentioned }
        };
    }
    // Which of their orders does the message mean? Items named ("my boots"), then what was
    // discussed before, then the newest.
    let message_words = stemmed_words(message);
    let item_score = |order: &Order| -> usize {
        order
            .line_items
            .iter()
            .map(|item| {
                stemmed_words(&item.title)
                    .iter()
                    .filter(|w| w.len() > 2 && message_words.iter().any(|m| terms_match(m, w)))
                    .count()
            })
            .max()
            .unwrap_or(0)
    };
    let best = own.iter().map(&item_score).max().unwrap_or(0);
    let chosen: Vec<Order> = if best > 0 {
        own.iter()
            .filter(|order| item_score(order) == best)
            .cloned()
            .collect()
    } else if let Some(order) = own.iter().find(|order| previous.contains(&order.name)) {
        vec![order.clone()]
    } else {
        vec![own[0].clone()]
    };
    OrderLookup::Found(chosen)
}

/// One sentence per shipment or state of the order: what the customer may be told.
pub fn order_facts(order: &Order, message: &str) -> Vec<Fact> {
    let source = format!("orders/{}", order.name);
    let fact = |text: String| Fact {
        source: source.clone(),
        text,
        direct: false,
    };
    let items = |titles: Vec<&str>| -> String { join_natural(&titles) };
    let all_titles: Vec<&str> = order.line_items.iter().map(|i| i.title.as_str()).collect();

    if order.cancelled_at.is_some() {
        let mut text = format!("Order {} ({}) was cancelled", order.name, items(all_titles));
        if let Some(date) = order.cancelled_at.as_deref().and_then(short_date) {
            text.push_str(&format!(" on {date}"));
        }
        match order.cancel_reason.as_deref() {
            Some("inventory") => text.push_str(" because the item was no longer available"),
            Some("customer") => text.push_str(" at your request"),
            _ => {}
        }
        match order.financial_status.as_deref() {
            Some("refunded") => text.push_str(" and fully refunded"),
            Some("partially_refunded") => text.push_str(" and partly refunded"),
            _ => {}
        }
        text.push('.');
        return vec![fact(text)];
    }

    let mut facts = Vec::new();
    let pickup = order
        .shipping_lines
        .iter()
        .any(|line| line.title.to_lowercase().contains("pickup"));
    // Shipments the message is about: those carrying a named item, else all of them.
    let message_words = stemmed_words(message);
    let names_item = |text: &str| {
        stemmed_words(text)
            .iter()
            .filter(|w| w.len() > 2 && message_words.iter().any(|m| terms_match(m, w)))
            .count()
    };
    for shipment in &order.fulfillments {
        if shipment
            .status
            .as_deref()
            .is_some_and(|s| s == "cancelled" || s == "failure")
        {
            continue;
        }
        let titles: Vec<&str> = if shipment.line_items.is_empty() {
            all_titles.clone()
        } else {
            shipment.line_items.iter().map(|i| i.title.as_str()).collect()
        };
        facts.push(fact(shipment_sentence(order, shipment, &items(titles))));
    }
    let unshipped: Vec<&str> = order
        .line_items
        .iter()
        .filter(|item| {
            item.fulfillment_status.is_none() || item.fulfillment_status.as_deref() == Some("partial")
        })
        .map(|item| item.title.as_str())
        .collect();
    // A fulfilled order with items whose own status was never set is shipped in full.
    let order_unfulfilled = order.fulfillment_status.is_none();
    if !unshipped.is_empty() && (order_unfulfilled || order.fulfillment_status.as_deref() == Some("partial"))
    {
        let verb = if unshipped.len() == 1 { "hasn't" } else { "haven't" };
        let mut text = if order.fulfillments.is_empty() {
            format!(
                "Order {} ({}) {verb} shipped yet",
                order.name,
                items(unshipped.clone())
            )
        } else {
            format!(
                "From order {}, {} {verb} shipped yet",
                order.name,
                items(unshipped.clone())
            )
        };
        if pickup && order_unfulfilled {
            text = format!(
                "Order {} ({}) is a store pickup order and isn't ready for pickup yet",
                order.name,
                items(unshipped.clone())
            );
        }
        match order.financial_status.as_deref() {
            Some("pending") | Some("authorized") => text.push_str(": the payment is still pending"),
            _ if order.fulfillments.is_empty() && !pickup => text.push_str(": it's being prepared"),
            _ => {}
        }
        text.push('.');
        facts.push(fact(text));
    }
    // Refunds: what was refunded, how much, when. A question about a return or a refund
    // gets them first.
    let mut refund_facts = Vec::new();
    for refund in &order.refunds {
        let amount = refund.amount();
        if amount <= 0.0 {
            continue;
        }
        let titles: Vec<&str> = refund
            .refund_line_items
            .iter()
            .filter_map(|r| {
                order
                    .line_items
                    .iter()
                    .find(|i| !r.sku.is_empty() && i.sku == r.sku)
            })
            .map(|i| i.title.as_str())
            .collect();
        let mut text = format!("We refunded ${amount:.2}");
        if !titles.is_empty() {
            text.push_str(&format!(" for the {}", items(titles)));
        }
        text.push_str(&format!(" from order {}", order.name));
        if let Some(date) = short_date(&refund.created_at) {
            text.push_str(&format!(" on {date}"));
        }
        text.push('.');
        refund_facts.push(fact(text));
    }
    static ABOUT_REFUND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(refund|refunded|return|returned|sent (it |them )?back|money back|credit)")
            .expect("valid")
    });
    if ABOUT_REFUND.is_match(message) {
        refund_facts.append(&mut facts);
        facts = refund_facts;
    } else {
        facts.append(&mut refund_facts);
    }
    if facts.is_empty() {
        facts.push(fact(format!(
            "Order {} ({}) has been fulfilled.",
            order.name,
            items(all_titles)
        )));
    }
    // Put the shipments carrying what the customer named first (a refund question keeps its
    // refunds in front: the sort is stable and refunds name their items too).
    facts.sort_by_key(|f| std::cmp::Reverse(names_item(&f.text)));
    facts
}

fn shipment_sentence(order: &Order, shipment: &Fulfillment, items: &str) -> String {
    let carrier = shipment.tracking_company.as_deref().unwrap_or("the carrier");
    let status = match shipment.shipment_status.as_deref() {
        Some("delivered") => match shipment.updated_at.as_deref().and_then(short_date) {
            Some(date) => format!("was delivered on {date}"),
            None => "was delivered".to_owned(),
        },
        Some("out_for_delivery") => format!("is out for delivery today with {carrier}"),
        Some("in_transit") => format!("shipped with {carrier} and is in transit"),
        Some("label_printed") | Some("label_purchased") | Some("confirmed") => {
            format!("has a {carrier} shipping label and is waiting for {carrier} to pick it up")
        }
        Some("attempted_delivery") => format!("had a delivery attempt by {carrier}"),
        Some("failure") => format!("could not be delivered by {carrier} (a delivery exception)"),
        Some("ready_for_pickup") => "is ready for pickup".to_owned(),
        _ => format!("shipped with {carrier}"),
    };
    let mut text = format!("Order {} ({items}) {status}", order.name);
    if let Some(number) = &shipment.tracking_number {
        text.push_str(&format!(", tracking {number}"));
    }
    text.push('.');
    text
}

/// "2026-11-12T15:12:00-07:00" → "Nov 12".
fn short_date(timestamp: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = timestamp.get(5..7)?.parse().ok()?;
    let day: u32 = timestamp.get(8..10)?.parse().ok()?;
    Some(format!("{} {day}", MONTHS.get(month.checked_sub(1)?)?))
}

pub(crate) fn join_natural(items: &[&str]) -> String {
    match unique(items.iter().copied()).as_slice() {
        [] => "your items".to_owned(),
        [one] => (*one).to_owned(),
        [first, second] => format!("{first} and {second}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

/// Lower-case alphanumeric words with their byte ranges in `text`.
fn plain_words(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\p{L}\p{N}]+").expect("valid"));
    WORD.find_iter(text)
        .map(|m| (m.range(), m.as_str().to_lowercase()))
        .collect()
}

fn stemmed_words(text: &str) -> Vec<String> {
    words(text).iter().map(|w| stem(w)).collect()
}

// ---------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------

/// Words in product titles that name a category rather than a product.
const GENERIC_TITLE_WORDS: &[&str] = &["women", "men", "s", "the", "and", "with", "for", "of", "-", "&"];

/// A product the message is about, with the option values it named.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductMatch {
    pub handle: String,
    /// (option name, value) pairs the customer asked about, e.g. [("Color", "Black")].
    pub options: Vec<(String, String)>,
    /// An exact SKU the customer typed.
    pub sku: Option<String>,
    /// The customer named this product (by SKU, or by a title word that is not only a kind
    /// of product), now or earlier in the conversation: "boots" alone is any boot, or the
    /// boot wax, and a rule for one product is not said on such a guess.
    #[serde(default)]
    pub named: bool,
}

/// Finds the product a message is about: an exact SKU, else the title that the message names
/// best, else (for follow-ups) the product discussed before. Retrieved product sources break
/// ties. Option values named in the message ("black", "size 11.5", "medium") are attached;
/// values carried over from the previous turn are kept unless the message replaces them.
pub fn find_product(
    catalog: &Catalog,
    message: &str,
    retrieved_handles: &[String],
    previous: Option<&ProductMatch>,
) -> Option<ProductMatch> {
    let data = catalog.data();
    let message_words = words(message);
    // An exact SKU wins outright (the first in catalogue order, if several are named).
    // SKUs keep their hyphens ("VOLT-L-WHT"), so they are looked up by whitespace token.
    let sku_hit = message
        .split_whitespace()
        .map(|token| token.trim_matches(|c: char| !c.is_alphanumeric()))
        .chain(message_words.iter().map(String::as_str))
        .filter_map(|w| catalog.variant_by_sku.get(&w.to_ascii_uppercase()))
        .min();
    if let Some((product_idx, variant_idx)) = sku_hit {
        let product = &data.products[*product_idx];
        let variant = &product.variants[*variant_idx];
        return Some(ProductMatch {
            handle: product.handle.clone(),
            options: option_pairs(product, variant),
            sku: Some(variant.sku.clone()),
            named: true,
        });
    }

    let message_stems: Vec<String> = message_words.iter().map(|w| stem(w)).collect();
    let wants_women = message_words
        .iter()
        .any(|w| matches!(w.as_str(), "women" | "womens" | "ladies" | "woman"));
    let mut best: Option<(f32, &Product, bool)> = None;
    for ((product, title_terms), head) in data
        .products
        .iter()
        .zip(&catalog.title_terms)
        .zip(&catalog.title_heads)
        .filter(|((p, _), _)| p.is_active())
    {
        let mut score = 0.0;
        let mut matched_distinctive = false;
        let mut kind_words: Vec<&str> = Vec::new();
        let mut title_named = false;
        for (word, idf) in title_terms {
            let idf = *idf;
            let hit = message_stems
                .iter()
                .any(|m| m == word || (word.len() >= 5 && terms_match(m, word)));
            if hit {
                score += idf;
                // A number alone ("2") is not a product name.
                if idf > 1.5 && !word.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    matched_distinctive = true;
                    // Nor, quite, is a kind of product: "can I return boots?" may be about
                    // the boot wax or any boot.
                    if catalog.shared_category_words.contains(word) {
                        kind_words.push(word);
                    } else {
                        title_named = true;
                    }
                }
            } else {
                // Prefer "Ridgeline 2 Boot" over "Ridgeline 2 Wide Boot" when "wide" is unsaid,
                // and "Basecamp 2 Tent" over "Basecamp 2 Tent Footprint" for "the basecamp 2
                // tent": an unsaid head noun names another thing.
                let weight = if head.as_deref() == Some(word.as_str()) {
                    0.5
                } else {
                    0.15
                };
                score -= weight * idf.max(0.0);
            }
        }
        if !matched_distinctive {
            continue;
        }
        // Kinds together may still pick out one product: "lip oil" is lip and oil, and only
        // one title has both.
        let title_named = title_named || (kind_words.len() >= 2 && catalog.titles_with_all(&kind_words) == 1);
        let is_women = product.title.to_lowercase().starts_with("women");
        if is_women != wants_women {
            score -= 1.0;
        }
        if let Some(rank) = retrieved_handles.iter().position(|h| *h == product.handle) {
            score += 0.5 / (rank as f32 + 1.0);
        }
        if best.is_none_or(|(best_score, _, _)| score > best_score) {
            best = Some((score, product, title_named));
        }
    }

    // "is it carbon?" about the bike just discussed: a pronoun keeps the product unless the
    // message names another one by more than a single word of its title.
    let refers_back = message_words.iter().any(|w| {
        matches!(
            w.as_str(),
            "it" | "its" | "that" | "this" | "they" | "them" | "one"
        )
    });
    if let (Some((_, product, _)), Some(prev)) = (best, previous) {
        let named_words = catalog
            .title_terms
            .get(
                data.products
                    .iter()
                    .position(|p| p.handle == product.handle)
                    .unwrap_or(usize::MAX),
            )
            .map_or(0, |terms| {
                terms
                    .iter()
                    .filter(|(word, idf)| *idf > 1.5 && message_stems.iter().any(|m| m == word))
                    .count()
            });
        if refers_back && product.handle != prev.handle && named_words < 2 {
            best = None;
        }
    }
    let (product, carried, by_name) = match (best, previous) {
        (Some((_, product, by_name)), Some(prev)) if prev.handle == product.handle => {
            (product, prev.options.clone(), by_name || prev.named)
        }
        (Some((_, product, by_name)), _) => (product, Vec::new(), by_name),
        (None, Some(prev)) => (catalog.product(&prev.handle)?, prev.options.clone(), prev.named),
        (None, None) => return None,
    };
    let named = named_options(product, message);
    let mut options = carried;
    for (name, value) in named {
        options.retain(|(n, _)| *n != name);
        options.push((name, value));
    }
    Some(ProductMatch {
        handle: product.handle.clone(),
        options,
        sku: None,
        named: by_name,
    })
}

fn option_pairs(product: &Product, variant: &Variant) -> Vec<(String, String)> {
    product
        .options
        .iter()
        .zip(variant.option_values())
        .map(|(option, value)| (option.name.clone(), value.to_owned()))
        .collect()
}

/// Option values of `product` named in the message.
fn named_options(product: &Product, message: &str) -> Vec<(String, String)> {
    let lower = format!(" {} ", words(message).join(" "));
    let title_words: HashSet<String> = words(&product.title).into_iter().collect();
    let mut named = Vec::new();
    for option in &product.options {
        // Longest values first, so "Lake Blue" wins over "Blue" and "Long Wide" over "Long".
        let mut values: Vec<&String> = option.values.iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            let value_words = words(value);
            if value_words.is_empty() || value == "Default Title" {
                continue;
            }
            // A number that is part of the product's name ("Basecamp 2") is not a size.
            if value_words.len() == 1 && title_words.contains(&value_words[0]) {
                continue;
            }
            let mut spellings = vec![value_words.join(" ")];
            spellings.extend(
                size_synonyms(&value_words.join(" "))
                    .iter()
                    .map(|s| (*s).to_owned()),
            );
            if spellings.iter().any(|s| lower.contains(&format!(" {s} "))) {
                named.push((option.name.clone(), value.clone()));
                break;
            }
        }
    }
    named
}

fn size_synonyms(value: &str) -> &'static [&'static str] {
    match value {
        "xs" => &["extra small", "x-small", "xsmall"],
        "s" => &["small", "sm"],
        "m" => &["medium", "med"],
        "l" => &["large", "lg"],
        "xl" => &["extra large", "x-large", "xlarge"],
        "xxl" => &["2xl", "xx-large", "xxlarge"],
        "s/m" | "s m" => &["small/medium", "s/m", "sm/md"],
        "m/l" | "m l" => &["medium/large", "m/l"],
        "left" => &["left zip", "left zipper", "left-hand"],
        "right" => &["right zip", "right zipper", "right-hand"],
        _ => &[],
    }
}

/// English basic colour terms: a customer asks for "green" whether or not any product of the
/// store comes in it.
const BASIC_COLOURS: &[&str] = &[
    "black", "white", "grey", "gray", "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown",
    "navy", "tan", "beige", "silver", "gold", "teal", "olive", "maroon", "burgundy",
];

/// Option values as a customer reads them: "Navy", "size M".
fn named_values(options: &[(String, String)]) -> Vec<String> {
    options
        .iter()
        .map(|(name, value)| {
            if name.eq_ignore_ascii_case("size") {
                format!("size {value}")
            } else {
                value.clone()
            }
        })
        .collect()
}

/// The variants that have every (option, value) pair named.
fn matching_variants<'p>(product: &'p Product, named: &[(String, String)]) -> Vec<&'p Variant> {
    product
        .variants
        .iter()
        .filter(|v| {
            let pairs = option_pairs(product, v);
            named
                .iter()
                .all(|(name, value)| pairs.iter().any(|(n, val)| n == name && val == value))
        })
        .collect()
}

/// "Colour" and "Color" are one option.
fn option_kind(name: &str) -> String {
    match name.to_lowercase().as_str() {
        "colour" | "colors" | "colours" | "color" => "color".to_owned(),
        other => other.to_owned(),
    }
}

/// Does the message ask whether something is so ("does it come in green", "is it on sale",
/// "do you have it in XL")? Such a question deserves a yes or a no first.
pub fn asks_yes_no(message: &str) -> bool {
    static YES_NO: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\W*(do|does|did|is|are|was|were|can|could|will|would|has|have|any|u have|you have|got)\b|\b(come in|comes in|available in|offer it in|make it in)\b")
            .expect("valid")
    });
    YES_NO.is_match(message)
}

/// A direct answer to "does the X come in <value>?": yes with the variant, or no with what
/// it does come in. `None` when the message names no option value at all.
pub fn option_answer(catalog: &Catalog, found: &ProductMatch, message: &str) -> Option<Fact> {
    let product = catalog.product(&found.handle)?;
    if !asks_yes_no(message) {
        return None;
    }
    let source = format!("products/{}", product.handle);
    let asked = words(message);
    let title_words: HashSet<String> = words(&product.title).into_iter().collect();
    // The yes is for what this message asks: options carried from earlier turns ("size M,
    // black") are not what "will a fleece fit under it?" asks about.
    let names_an_option = !named_options(product, message).is_empty();
    for option in product
        .options
        .iter()
        .filter(|o| !o.values.iter().all(|v| v == "Default Title"))
    {
        let kind = option_kind(&option.name);
        if names_an_option && found.options.iter().any(|(name, _)| option_kind(name) == kind) {
            // Every option the customer named, together: "navy, size M" is one variant.
            let matching = matching_variants(product, &found.options);
            let named = named_values(&found.options);
            let stock = match (
                matching.is_empty(),
                matching.iter().any(|v| v.in_stock() != Some(false)),
            ) {
                (true, _) => return None,
                (false, in_stock) => stock_clause(in_stock),
            };
            return Some(Fact {
                source,
                text: format!(
                    "Yes, the {} comes in {}, {stock}.",
                    product.title,
                    named.join(", ")
                ),
                direct: true,
            });
        }
        // A word the store uses for this kind of option elsewhere (or a basic colour) that
        // this product does not have: a plain no, with what it does come in.
        let Some(known) = catalog.option_words.get(&kind) else {
            continue;
        };
        let value_words: HashSet<String> = option.values.iter().flat_map(|v| words(v)).collect();
        let missing = asked
            .iter()
            .find(|w| known.contains(*w) && !value_words.contains(*w) && !title_words.contains(*w));
        // "does the Loam come in green?": a word of a value ("Forest Green") is a yes, with
        // the values that have it.
        let partial: Vec<&str> = option
            .values
            .iter()
            .filter(|v| {
                words(v)
                    .iter()
                    .any(|w| known.contains(w) && asked.contains(w) && !title_words.contains(w))
            })
            .map(String::as_str)
            .collect();
        if !partial.is_empty() {
            let in_stock = product.variants.iter().any(|variant| {
                variant.in_stock() != Some(false)
                    && variant.option_values().iter().any(|v| partial.contains(v))
            });
            let stock = stock_clause(in_stock);
            return Some(Fact {
                source,
                text: format!(
                    "Yes, the {} comes in {}, {stock}.",
                    product.title,
                    join_natural(&partial).replace(", and ", " and ")
                ),
                direct: true,
            });
        }
        if let Some(missing) = missing {
            let values: Vec<&str> = option.values.iter().map(String::as_str).collect();
            return Some(Fact {
                source,
                text: format!(
                    "No, the {} doesn't come in {missing}; it comes in {}.",
                    product.title,
                    join_natural(&values).replace(", and ", " and ")
                ),
                direct: true,
            });
        }
    }
    None
}

/// "I'm 5'10, what size Tempo?": the row of the product's own size chart that holds the
/// measurement, else of a general chart among the retrieved passages (`(source, heading,
/// text)`, best first), said with the numbers that put the customer there.
pub fn size_answer(
    catalog: &Catalog,
    found: Option<&ProductMatch>,
    passages: &[(String, String, String)],
    message: &str,
) -> Option<Fact> {
    let (measure, said) = crate::sizing::measurement(message)?;
    if let Some(product) = found.and_then(|f| catalog.product(&f.handle)) {
        let description = parley_knowledge::text::html_to_text(&product.body_html);
        if let Some(row) = crate::sizing::fitting_row(&description, measure) {
            return Some(Fact {
                source: format!("products/{}", product.handle),
                text: format!("For {said}, the {} size chart gives {row}.", product.title),
                direct: true,
            });
        }
    }
    passages.iter().find_map(|(source, heading, text)| {
        let row = crate::sizing::fitting_row(text, measure)?;
        let chart = heading
            .rsplit(" > ")
            .next()
            .filter(|h| !h.is_empty())
            .unwrap_or("size");
        Some(Fact {
            source: source.clone(),
            text: format!("For {said}, our {chart} chart gives {row}."),
            direct: true,
        })
    })
}

/// A question about the store's pricing and fee rules rather than a product's price: price
/// matching and adjustments ("it went on sale, can I get the difference?"), what shipping,
/// returns or customs cost, restocking fees.
pub fn asks_pricing_policy(text: &str) -> bool {
    static PRICE_POLICY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(price ?match\w*|match (the|their|a|that) price|price (adjust\w*|protection|guarantee|drop\w*)|price (went|goes|has gone|dropped)|(went|gone|go) on sale|cheaper (at|on|somewhere|elsewhere)|\w+ has (it|the same \w+|them) cheaper|(get|refund|pay|owe) (me )?the difference|difference back|price difference|restocking|fees?|how much (is |does |would |will |for |to |it )*(cost )?(to )?(ship\w*|deliver\w*|postage|return\w*|exchang\w*|customs|duties|tax\w*))\b")
            .expect("valid")
    });
    PRICE_POLICY.is_match(text)
}

/// "Is the X on sale?": yes with the sale price and the regular one, or no with the price.
pub fn sale_answer(catalog: &Catalog, found: &ProductMatch, message: &str) -> Option<Fact> {
    static SALE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(on sale|sale price|discounted|marked down|any deals?)\b").expect("valid")
    });
    if !SALE.is_match(message) || asks_pricing_policy(message) {
        return None;
    }
    let product = catalog.product(&found.handle)?;
    // The variants the customer named ("the fig one"), or all of them.
    let named = matching_variants(product, &found.options);
    let variants: Vec<&Variant> = if named.is_empty() {
        product.variants.iter().collect()
    } else {
        named
    };
    let sold_out = !variants.iter().any(|v| v.in_stock() != Some(false));
    let stock = if sold_out {
        ", but it's sold out right now"
    } else {
        ""
    };
    let sale = variants.iter().find_map(|v| sale_prices(v));
    let text = match sale {
        Some((now, was)) => format!(
            "Yes, the {} is on sale: ${now:.2} (was ${was:.2}){stock}.",
            product.title
        ),
        None => format!(
            "No, the {} isn't on sale right now; it's {}{stock}.",
            product.title,
            price_phrase(&variants)
        ),
    };
    Some(Fact {
        source: format!("products/{}", product.handle),
        text,
        direct: true,
    })
}

/// Sentences about the product and the variants the customer asked about.
pub fn product_facts(catalog: &Catalog, found: &ProductMatch) -> Vec<Fact> {
    let Some(product) = catalog.product(&found.handle) else {
        return Vec::new();
    };
    let source = format!("products/{}", product.handle);
    let fact = |text: String| Fact {
        source: source.clone(),
        text,
        direct: false,
    };
    let matching = matching_variants(product, &found.options);
    let mut facts = Vec::new();
    let described: String = if found.options.is_empty() {
        product.title.clone()
    } else {
        format!("{} in {}", product.title, named_values(&found.options).join(", "))
    };
    if matching.is_empty() {
        facts.push(fact(format!(
            "The {described} is not a combination the store offers."
        )));
        facts.push(fact(options_sentence(product)));
        return facts;
    }
    let price = price_phrase(&matching);
    let options_named = found.options.len();
    let total_options = product
        .options
        .iter()
        .filter(|o| !o.values.iter().all(|v| v == "Default Title"))
        .count();
    let in_stock: Vec<&&Variant> = matching.iter().filter(|v| v.in_stock() != Some(false)).collect();
    if options_named >= total_options || matching.len() == 1 {
        let stock = match matching[0].in_stock() {
            Some(true) => "and in stock",
            Some(false) => "but sold out right now",
            None => "and available to order",
        };
        facts.push(fact(format!("The {described} is {price} {stock}.")));
    } else if in_stock.is_empty() {
        facts.push(fact(format!(
            "The {described} is {price} but sold out in every option right now."
        )));
    } else {
        // Which values of the options the customer did not name are in stock.
        let mut stock_parts = Vec::new();
        for (idx, option) in product.options.iter().enumerate() {
            if found.options.iter().any(|(name, _)| *name == option.name) {
                continue;
            }
            let available: Vec<&str> = unique(
                in_stock
                    .iter()
                    .filter_map(|variant| variant.option_values().get(idx).copied()),
            );
            let sold_out: Vec<&str> = option
                .values
                .iter()
                .map(String::as_str)
                .filter(|v| !available.contains(v))
                .collect();
            let mut part = format!("{} {}", option.name.to_lowercase(), join_natural(&available));
            if !sold_out.is_empty() {
                part.push_str(&format!(" ({} sold out)", join_natural(&sold_out)));
            }
            stock_parts.push(part);
        }
        facts.push(fact(format!(
            "The {described} is {price}, in stock in {}.",
            stock_parts.join("; ")
        )));
    }
    // Sold out: what the product's own text says about its return ("We expect our next
    // shipment in February", "won't be restocked"), which is the customer's next question.
    let sold_out = matching.iter().all(|v| v.in_stock() == Some(false))
        || (found.options.len() >= total_options && matching[0].in_stock() == Some(false));
    if sold_out && let Some(restock) = restock_sentence(catalog, &source) {
        // Sold out and when it is back is the whole answer: said first, as it stands.
        facts.push(fact(restock));
        facts.iter_mut().for_each(|f| f.direct = true);
    }
    if let Some(sku) = &found.sku {
        facts.insert(0, fact(format!("SKU {sku} is the {described}.")));
        // The customer typed the SKU: what it is and whether it is in stock is the answer.
        facts.iter_mut().for_each(|f| f.direct = true);
    }
    facts
}

/// The sentence of a product's own text about when it is back, if it has one.
fn restock_sentence(catalog: &Catalog, source: &str) -> Option<String> {
    static RESTOCK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(restock\w*|back in stock|next (shipment|batch|delivery)|expect(ed)? (it |them )?(back|in)|ships? again|available again|won.t be (restocked|back)|limited edition)\b")
            .expect("valid")
    });
    catalog.product_chunks(source).iter().find_map(|chunk| {
        parley_knowledge::text::split_sentences(&chunk.text)
            .into_iter()
            .map(|s| s.trim().to_owned())
            .find(|s| RESTOCK.is_match(s) && s.split_whitespace().count() >= 4)
    })
}

/// "Are any of your bikes on sale?": the active products with a sale price, of the category
/// the message names when it names one, in catalogue order. At most three, said with both
/// prices; "No, …" when none is.
pub fn sale_listing(catalog: &Catalog, message: &str) -> Option<Fact> {
    static SALE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(on sale|discounted|marked down|clearance)\b").expect("valid"));
    static WHEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(when|how long)\b").expect("valid"));
    if !SALE.is_match(message) || WHEN.is_match(message) || asks_pricing_policy(message) {
        return None;
    }
    let asked: Vec<String> = crate::text::terms(&message.replace('-', ""))
        .into_iter()
        .filter(|t| catalog.categories.contains(t))
        .collect();
    let in_category = |product: &Product| {
        asked.is_empty()
            || crate::text::terms(&product.product_type.replace('-', ""))
                .iter()
                .any(|t| asked.contains(t))
    };
    let on_sale: Vec<(&str, String)> = catalog
        .data
        .products
        .iter()
        .filter(|p| p.is_active() && in_category(p))
        .filter_map(|product| {
            let (now, was) = product
                .variants
                .iter()
                .filter(|v| v.in_stock() != Some(false))
                .find_map(sale_prices)?;
            Some((
                product.handle.as_str(),
                format!("the {} at ${now:.2} (was ${was:.2})", product.title),
            ))
        })
        .collect();
    let what = if asked.is_empty() {
        "items".to_owned()
    } else {
        message
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .find(|w| {
                crate::text::terms(&w.replace('-', ""))
                    .iter()
                    .any(|t| asked.contains(t))
            })
            .unwrap_or("items")
            .to_lowercase()
    };
    let text = match on_sale.len() {
        0 => format!("No, none of our {what} are on sale right now."),
        n => {
            let shown: Vec<&str> = on_sale.iter().take(3).map(|(_, s)| s.as_str()).collect();
            let more = if n > 3 {
                format!(" and {} more", n - 3)
            } else {
                String::new()
            };
            let mut text = format!(
                "Yes: {}{more} {}.",
                join_natural(&shown),
                if n == 1 { "is on sale" } else { "are on sale" }
            );
            if let Some(first) = text.get(5..6) {
                text.replace_range(5..6, &first.to_uppercase());
            }
            text
        }
    };
    let source = on_sale.first().map_or_else(
        || "products".to_owned(),
        |(handle, _)| format!("products/{handle}"),
    );
    Some(Fact {
        source,
        text,
        direct: true,
    })
}

fn options_sentence(product: &Product) -> String {
    let parts: Vec<String> = product
        .options
        .iter()
        .filter(|o| !o.values.iter().all(|v| v == "Default Title"))
        .map(|o| {
            let values: Vec<&str> = o.values.iter().map(String::as_str).collect();
            format!(
                "{} {}",
                o.name.to_lowercase(),
                join_natural(&values).replace(", and ", " and ")
            )
        })
        .collect();
    if parts.is_empty() {
        format!("The {} comes in one version.", product.title)
    } else {
        format!("The {} comes in {}.", product.title, parts.join("; "))
    }
}

/// A variant's (sale price, regular price) when it is marked down.
fn sale_prices(variant: &Variant) -> Option<(f64, f64)> {
    let now = variant.price.parse::<f64>().ok()?;
    let was = variant.compare_at_price.as_deref()?.parse::<f64>().ok()?;
    (was > now).then_some((now, was))
}

/// "and it's in stock" / "but it's sold out right now", after a yes about an option.
fn stock_clause(in_stock: bool) -> &'static str {
    if in_stock {
        "and it's in stock"
    } else {
        "but it's sold out right now"
    }
}

fn price_phrase(variants: &[&Variant]) -> String {
    let price = |raw: &str| raw.parse::<f64>().ok();
    let mut prices: Vec<f64> = variants.iter().filter_map(|v| price(&v.price)).collect();
    prices.sort_by(f64::total_cmp);
    prices.dedup();
    let on_sale: Vec<&&Variant> = variants.iter().filter(|v| sale_prices(v).is_some()).collect();
    let money = |value: f64| format!("${value:.2}");
    let mut phrase = match prices.as_slice() {
        [] => "priced at checkout".to_owned(),
        [one] => money(*one),
        [low, .., high] => format!("{} to {}", money(*low), money(*high)),
    };
    let regular = on_sale.first().and_then(|v| sale_prices(v)).map(|(_, was)| was);
    if let Some(was) = regular {
        if on_sale.len() == variants.len() {
            phrase = format!("on sale at {phrase} (regularly {})", money(was));
        } else {
            phrase.push_str(" (some options are on sale)");
        }
    }
    phrase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_references_are_found() {
        assert_eq!(
            mentioned_order_numbers("any update on order #1042?"),
            vec!["1042"]
        );
        assert_eq!(mentioned_order_numbers("order 2291 - did it ship?"), vec!["2291"]);
        assert_eq!(
            mentioned_order_numbers("order number 1003 and #1004"),
            vec!["1003", "1004"]
        );
        assert!(mentioned_order_numbers("I wear a size 10").is_empty());
    }

    fn fixture_catalog(merchant: &str) -> Catalog {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/merchants")
            .join(merchant);
        Catalog::new(
            Arc::new(MerchantData::load(&dir).expect("fixture loads")),
            &parley_knowledge::ChunkConfig::default(),
        )
    }

    #[test]
    fn a_kind_of_product_is_not_a_products_name() {
        let trailhead = fixture_catalog("trailhead");
        // "boot" stands in every hiking boot's title and in the boot wax's.
        let boots = find_product(&trailhead, "can I return boots I bought 3 weeks ago?", &[], None);
        assert!(boots.is_none_or(|found| !found.named), "a kind, not a name");
        let named = find_product(&trailhead, "is the basecamp 2 tent waterproof?", &[], None).expect("named");
        assert_eq!(named.handle, "basecamp-2-backpacking-tent");
        assert!(named.named);
        // Two kinds that only one title has together name it.
        let glowleaf = fixture_catalog("glowleaf");
        let lip_oil = find_product(&glowleaf, "is the fig lip oil on sale?", &[], None).expect("named");
        assert_eq!(lip_oil.handle, "sheer-kiss-tinted-lip-oil");
        assert!(lip_oil.named);
        // "U-Lock"'s "U" reads as "you", which every question has.
        let cadence = fixture_catalog("cadence");
        assert_eq!(find_product(&cadence, "do you ship to canada?", &[], None), None);
    }

    #[test]
    fn an_unsaid_head_noun_names_another_thing() {
        let trailhead = fixture_catalog("trailhead");
        let tent = find_product(
            &trailhead,
            "how heavy is the basecamp 2 tent",
            &["basecamp-2-tent-footprint".to_owned()],
            None,
        )
        .expect("named");
        assert_eq!(tent.handle, "basecamp-2-backpacking-tent");
        let footprint =
            find_product(&trailhead, "how big is the basecamp 2 footprint?", &[], None).expect("named");
        assert_eq!(footprint.handle, "basecamp-2-tent-footprint");
    }

    #[test]
    fn product_names_are_masked_whole() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/merchants/glowleaf");
        let catalog = Catalog::new(
            Arc::new(MerchantData::load(&dir).expect("fixture loads")),
            &parley_knowledge::ChunkConfig::default(),
        );
        assert_eq!(
            catalog.mask_titles("does the melt away cleansing balm have almond oil in it?"),
            "does the item have almond oil in it?"
        );
        // One title word alone is not a name, and words outside names are kept.
        assert_eq!(
            catalog.mask_titles("my skin started to burn, the balm melted"),
            "my skin started to burn, the balm melted"
        );
    }

    #[test]
    fn a_sold_out_product_says_when_it_is_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/merchants/cadence");
        let catalog = Catalog::new(
            Arc::new(MerchantData::load(&dir).expect("fixture loads")),
            &parley_knowledge::ChunkConfig::default(),
        );
        let found = ProductMatch {
            handle: "dropline-150mm-dropper-post".to_owned(),
            options: Vec::new(),
            sku: None,
            named: true,
        };
        let facts = product_facts(&catalog, &found);
        let texts: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
        assert!(texts[0].contains("sold out"), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("February")), "{texts:?}");
        assert!(facts.iter().all(|f| f.direct));
    }

    #[test]
    fn dates_are_short() {
        assert_eq!(short_date("2026-11-12T15:12:00-07:00").as_deref(), Some("Nov 12"));
        assert_eq!(short_date("garbage"), None);
    }
}
