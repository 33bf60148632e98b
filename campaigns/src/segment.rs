//! Segments: who a flow or campaign is for, as a rule over customer facts — the built-ins
//! (new customers, repeat buyers, cart abandoners, inactive, VIP; thresholds configurable)
//! and a merchant's own, layered with `all` / `any` / `not` in TOML. Pure data: the server
//! compiles a rule to SQL, so a segment over 100k customers is one query.

use std::collections::HashSet;

use serde::Deserialize;

/// A condition on one customer. In TOML a rule is a table with one key:
/// `{ all = [ { orders_at_least = 2 }, { not = { tag = "wholesale" } } ] }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    /// Orders not cancelled.
    OrdersAtLeast(u32),
    OrdersAtMost(u32),
    /// Lifetime spend (the orders' totals), in the store's currency.
    SpentAtLeast(f64),
    /// Average order value strictly above.
    AverageOrderAbove(f64),
    /// The first order is at most this many days old.
    FirstOrderWithinDays(u32),
    /// The last order is less than this many days old.
    LastOrderWithinDays(u32),
    /// No order for at least this many days (customers who never ordered count when they
    /// were created that long ago).
    NoOrderForDays(u32),
    /// The customer texted the store in the last this many days.
    RepliedWithinDays(u32),
    /// The customer has not texted the store for at least this many days (or never has).
    NoReplyForDays(u32),
    /// An open (not completed) checkout last updated between these many minutes ago.
    OpenCheckoutMinutes {
        min: u32,
        max: u32,
    },
    /// One of Shopify's customer tags, compared without case.
    Tag(String),
    /// Bought a product with this title (any order, not cancelled).
    Bought(String),
    /// Marketing consent confirmed (`true`) or not.
    MarketingConsent(bool),
}

/// The built-in segments' thresholds (`[segments]` in the merchant's `flows.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    pub new_customer_days: u32,
    pub repeat_min_orders: u32,
    pub repeat_within_days: u32,
    pub abandoned_min_minutes: u32,
    pub abandoned_max_minutes: u32,
    pub inactive_min_days: u32,
    pub inactive_max_days: u32,
    pub vip_average_order: f64,
    pub vip_lifetime_spend: f64,
    pub vip_min_orders: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            new_customer_days: 30,
            repeat_min_orders: 2,
            repeat_within_days: 90,
            abandoned_min_minutes: 60,
            abandoned_max_minutes: 120,
            inactive_min_days: 60,
            inactive_max_days: 90,
            vip_average_order: 150.0,
            vip_lifetime_spend: 500.0,
            vip_min_orders: 3,
        }
    }
}

/// A named segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: String,
    pub rule: Rule,
    pub builtin: bool,
}

impl Thresholds {
    /// The built-in segments with these thresholds.
    pub fn builtins(&self) -> Vec<Segment> {
        let t = self;
        let seg = |id: &str, rule: Rule| Segment {
            id: id.to_owned(),
            rule,
            builtin: true,
        };
        vec![
            seg(
                "new_customers",
                Rule::All(vec![
                    Rule::OrdersAtLeast(1),
                    Rule::FirstOrderWithinDays(t.new_customer_days),
                ]),
            ),
            seg(
                "repeat_buyers",
                Rule::All(vec![
                    Rule::OrdersAtLeast(t.repeat_min_orders),
                    Rule::LastOrderWithinDays(t.repeat_within_days),
                ]),
            ),
            seg(
                "cart_abandoners",
                Rule::OpenCheckoutMinutes {
                    min: t.abandoned_min_minutes,
                    max: t.abandoned_max_minutes,
                },
            ),
            // Inactive: nothing from them (no order, no text) for between the two ages.
            seg(
                "inactive",
                Rule::All(vec![
                    Rule::NoOrderForDays(t.inactive_min_days),
                    Rule::NoReplyForDays(t.inactive_min_days),
                    Rule::Not(Box::new(Rule::NoOrderForDays(
                        t.inactive_max_days.saturating_add(1),
                    ))),
                ]),
            ),
            seg(
                "vip",
                Rule::Any(vec![
                    Rule::AverageOrderAbove(t.vip_average_order),
                    Rule::SpentAtLeast(t.vip_lifetime_spend),
                    Rule::OrdersAtLeast(t.vip_min_orders),
                ]),
            ),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    id: String,
    rule: Rule,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSegments {
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    segment: Vec<RawSegment>,
}

/// Reads `segments.toml` (thresholds for the built-ins and the merchant's own segments) into
/// every segment, built-ins first; an error names the segment and what is wrong.
pub fn load_segments(text: &str) -> Result<Vec<Segment>, String> {
    let raw: RawSegments = toml::from_str(text).map_err(|err| err.to_string())?;
    let t = &raw.thresholds;
    if t.abandoned_min_minutes > t.abandoned_max_minutes {
        return Err("thresholds: abandoned_min_minutes is above abandoned_max_minutes".into());
    }
    if t.inactive_min_days > t.inactive_max_days {
        return Err("thresholds: inactive_min_days is above inactive_max_days".into());
    }
    let mut segments = t.builtins();
    let mut seen: HashSet<String> = segments.iter().map(|s| s.id.clone()).collect();
    for custom in raw.segment {
        let ok = !custom.id.is_empty()
            && custom
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "segment `{}`, `id`: use lowercase letters, digits, `_` and `-`",
                custom.id
            ));
        }
        if !seen.insert(custom.id.clone()) {
            return Err(format!(
                "segment `{}`, `id`: defined twice (or a built-in's id)",
                custom.id
            ));
        }
        check(&custom.rule).map_err(|problem| format!("segment `{}`, `rule`: {problem}", custom.id))?;
        segments.push(Segment {
            id: custom.id,
            rule: custom.rule,
            builtin: false,
        });
    }
    Ok(segments)
}

fn check(rule: &Rule) -> Result<(), String> {
    match rule {
        Rule::All(rules) | Rule::Any(rules) if rules.is_empty() => Err("an empty `all`/`any`".into()),
        Rule::All(rules) | Rule::Any(rules) => rules.iter().try_for_each(check),
        Rule::Not(inner) => check(inner),
        Rule::OpenCheckoutMinutes { min, max } if min > max => {
            Err("open_checkout_minutes: min is above max".into())
        }
        Rule::SpentAtLeast(x) | Rule::AverageOrderAbove(x) if !x.is_finite() || *x < 0.0 => {
            Err("an amount must be a number of at least 0".into())
        }
        Rule::Tag(text) | Rule::Bought(text) if text.trim().is_empty() => {
            Err("an empty tag or product".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_custom_segments_load_and_problems_are_named() {
        let segments = load_segments("").unwrap();
        let ids: Vec<&str> = segments.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "new_customers",
                "repeat_buyers",
                "cart_abandoners",
                "inactive",
                "vip"
            ]
        );
        let text = r#"
            [thresholds]
            vip_lifetime_spend = 800
            [[segment]]
            id = "loyal_not_wholesale"
            rule = { all = [ { orders_at_least = 2 }, { any = [ { spent_at_least = 300 }, { tag = "vip" } ] }, { not = { tag = "wholesale" } } ] }
        "#;
        let segments = load_segments(text).unwrap();
        let custom = segments.last().unwrap();
        assert_eq!(custom.id, "loyal_not_wholesale");
        assert!(matches!(&custom.rule, Rule::All(rules) if rules.len() == 3));
        let vip = segments.iter().find(|s| s.id == "vip").unwrap();
        assert!(matches!(&vip.rule, Rule::Any(rules) if rules.contains(&Rule::SpentAtLeast(800.0))));

        let err = |text: &str| load_segments(text).unwrap_err();
        assert!(err("[[segment]]\nid = \"vip\"\nrule = { tag = \"x\" }").contains("defined twice"));
        assert!(err("[[segment]]\nid = \"a\"\nrule = { all = [] }").contains("segment `a`"));
        assert!(err("[[segment]]\nid = \"a\"\nrule = { colour = \"red\" }").contains("colour"));
        assert!(
            err("[[segment]]\nid = \"a\"\nrule = { open_checkout_minutes = { min = 9, max = 1 } }")
                .contains("min is above max")
        );
        assert!(err("[thresholds]\ninactive_min_days = 100").contains("inactive_min_days"));
        assert!(err("[[segment]]\nid = \"A B\"\nrule = { tag = \"x\" }").contains("`id`"));
    }
}
