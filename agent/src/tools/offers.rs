//! The store's discount codes as tool facts: whether a message asks about codes, and the
//! merchant's `[[offers]]` phrased for the customer, the most relevant first. Only the
//! configured offers are ever quoted; a code the customer invents is said to be unknown.

use std::sync::LazyLock;

use parley_knowledge::{MerchantData, Offer};
use regex::Regex;

use super::join_natural;
use crate::generate::Fact;
use crate::text::{terms, terms_match};

/// The message asks about discount codes: it says "code", "coupon", "promo", "% off"… or
/// names something shaped like a code ("GLOW15", "SAVE-20").
pub fn mentions_codes(text: &str) -> bool {
    static CODE_WORDS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(discount|discounts|coupon|coupons|promo|promos|promotion|code|codes|voucher|vouchers|\d+ ?% off|percent off|deals?|military|student|veteran|first responders?|nurses?)\b")
            .expect("valid")
    });
    CODE_WORDS.is_match(text) || !code_tokens(text).is_empty()
}

/// Tokens typed like a discount code: capitals and digits, both ("GLOW15", "TRAIL-10"); SKUs
/// look the same, so callers check the catalogue first.
fn code_tokens(text: &str) -> Vec<&str> {
    static CODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z]{3,}-?\d{1,3}\b").expect("valid"));
    CODE.find_iter(text).map(|m| m.as_str()).collect()
}

/// The merchant's offers as facts, the most relevant first (a veteran asking gets the
/// military code first; a code the customer names comes first with its conditions). A code
/// the customer names that is not the store's is said to be unknown rather than listed as if
/// it might work. Only `[[offers]]` are ever quoted.
pub fn offer_facts(data: &MerchantData, message: &str) -> Vec<Fact> {
    let offers = &data.config.offers;
    let named = code_tokens(message);
    let is_offer = |token: &str| offers.iter().any(|o| o.code.eq_ignore_ascii_case(token));
    let is_sku = |token: &str| {
        data.products
            .iter()
            .flat_map(|p| &p.variants)
            .any(|v| v.sku.eq_ignore_ascii_case(token))
    };
    let unknown: Vec<&str> = named
        .iter()
        .copied()
        .filter(|t| !is_offer(t) && !is_sku(t))
        .collect();
    if let Some(code) = unknown.first() {
        // The unknown code is not repeated (a reply quoting it reads like a confirmation when
        // forwarded), and only the names of the real codes follow: a description next to it
        // would read as what that code gives.
        let codes: Vec<&str> = offers.iter().map(|o| o.code.as_str()).collect();
        let text = if codes.is_empty() {
            "That isn't one of our codes, and we have no codes running right now.".to_owned()
        } else {
            format!(
                "That code isn't one of ours, so it can't be used here. Our current codes are {}.",
                join_natural(&codes)
            )
        };
        return vec![Fact {
            source: format!("offers/{code}"),
            text,
            direct: true,
        }];
    }
    ranked_offers(data, message, &named)
}

/// The offers as facts, best first; `named` are the code-shaped tokens the message holds.
fn ranked_offers(data: &MerchantData, message: &str, named: &[&str]) -> Vec<Fact> {
    let message_terms = terms(message);
    let mut scored: Vec<(usize, &Offer)> = data
        .config
        .offers
        .iter()
        .map(|offer| {
            let text = format!(
                "{} {}",
                offer.description,
                offer.conditions.as_deref().unwrap_or("")
            );
            let offer_terms = terms(&text);
            let mut overlap = message_terms
                .iter()
                .filter(|t| offer_terms.iter().any(|o| terms_match(o, t)))
                .count();
            // The code the customer typed is the one they ask about.
            if named.iter().any(|t| offer.code.eq_ignore_ascii_case(t)) {
                overlap += 100;
            }
            (overlap, offer)
        })
        .collect();
    scored.sort_by_key(|(overlap, _)| std::cmp::Reverse(*overlap));
    let best = scored.first().map_or(0, |(overlap, _)| *overlap);
    scored
        .iter()
        .enumerate()
        .map(|(rank, (_, offer))| {
            let mut text = format!(
                "Code {}: {}.",
                offer.code,
                offer.description.trim_end_matches('.')
            );
            // The clear winner gets its conditions spelled out.
            if let Some(conditions) = offer.conditions.as_deref().filter(|_| rank == 0 && best > 0) {
                text = format!("{text} {}.", conditions.trim_end_matches('.'));
            }
            Fact {
                source: format!("offers/{}", offer.code),
                text,
                direct: false,
            }
        })
        .collect()
}
