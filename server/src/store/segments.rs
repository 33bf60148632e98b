//! Segments evaluated by SQL: a `parley_campaigns::Rule` compiled to one WHERE clause over
//! each customer's facts (orders, spend, first and last order, last text, tags, consent), so
//! counting or listing a segment of 100k customers is one query, not 100k rule evaluations.

use parley_campaigns::Rule;
use sqlx::Row as _;

use super::{Result, Store};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// A value bound into the compiled SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Real(f64),
    Text(String),
}

/// A rule as SQL over the `f` facts row, with its binds in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Compiles `rule` for a merchant at `now` (ms): day and minute windows become times.
pub fn compile(rule: &Rule, now: i64) -> Compiled {
    let mut binds = Vec::new();
    let sql = clause(rule, now, &mut binds);
    Compiled { sql, binds }
}

fn days_ago(now: i64, days: u32) -> i64 {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

fn clause(rule: &Rule, now: i64, binds: &mut Vec<Bind>) -> String {
    let mut bind = |b: Bind| binds.push(b);
    match rule {
        Rule::All(rules) | Rule::Any(rules) => {
            let joiner = if matches!(rule, Rule::All(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = rules.iter().map(|r| clause(r, now, binds)).collect();
            format!("({})", parts.join(joiner))
        }
        Rule::Not(inner) => format!("(NOT {})", clause(inner, now, binds)),
        Rule::OrdersAtLeast(n) => {
            bind(Bind::Int(i64::from(*n)));
            "(f.n_orders >= ?)".into()
        }
        Rule::OrdersAtMost(n) => {
            bind(Bind::Int(i64::from(*n)));
            "(f.n_orders <= ?)".into()
        }
        Rule::SpentAtLeast(x) => {
            bind(Bind::Real(*x));
            "(f.spent >= ?)".into()
        }
        Rule::AverageOrderAbove(x) => {
            bind(Bind::Real(*x));
            "(f.n_orders > 0 AND f.spent / f.n_orders > ?)".into()
        }
        Rule::FirstOrderWithinDays(d) => {
            bind(Bind::Int(days_ago(now, *d)));
            "(f.first_order IS NOT NULL AND f.first_order >= ?)".into()
        }
        Rule::LastOrderWithinDays(d) => {
            bind(Bind::Int(days_ago(now, *d)));
            "(f.last_order IS NOT NULL AND f.last_order > ?)".into()
        }
        Rule::NoOrderForDays(d) => {
            bind(Bind::Int(days_ago(now, *d)));
            "(COALESCE(f.last_order, f.created_at) <= ?)".into()
        }
        Rule::RepliedWithinDays(d) => {
            bind(Bind::Int(days_ago(now, *d)));
            "(f.last_text IS NOT NULL AND f.last_text > ?)".into()
        }
        Rule::NoReplyForDays(d) => {
            bind(Bind::Int(days_ago(now, *d)));
            "(f.last_text IS NULL OR f.last_text <= ?)".into()
        }
        Rule::OpenCheckoutMinutes { min, max } => {
            bind(Bind::Int(now.saturating_sub(i64::from(*max) * MINUTE_MS)));
            bind(Bind::Int(now.saturating_sub(i64::from(*min) * MINUTE_MS)));
            "(EXISTS (SELECT 1 FROM checkouts k WHERE k.merchant_id = f.merchant_id AND k.phone = f.phone
               AND k.completed_at IS NULL AND k.updated_at BETWEEN ? AND ?))"
                .into()
        }
        Rule::Tag(tag) => {
            bind(Bind::Text(tag.trim().to_lowercase()));
            // Shopify writes tags comma-separated ("vip, wholesale").
            "((',' || REPLACE(LOWER(f.tags), ', ', ',') || ',') LIKE '%,' || ? || ',%')".into()
        }
        Rule::Bought(title) => {
            bind(Bind::Text(title.trim().to_lowercase()));
            "(EXISTS (SELECT 1 FROM orders o JOIN order_line_items li ON li.order_id = o.id
               WHERE o.merchant_id = f.merchant_id AND o.phone = f.phone AND o.cancelled_at IS NULL
               AND LOWER(li.title) = ?))"
                .into()
        }
        Rule::MarketingConsent(yes) => {
            if *yes {
                "(f.marketing = 'confirmed' AND NOT f.opted_out)".into()
            } else {
                "(NOT (f.marketing = 'confirmed' AND NOT f.opted_out))".into()
            }
        }
    }
}

/// Each of a merchant's customers with the facts rules read, as `f`: orders are aggregated in
/// one pass (by phone, the way orders find their customer), texts in another.
const FACTS: &str = "WITH o AS (
       SELECT phone, COUNT(*) AS n, SUM(CAST(COALESCE(total_price, '0') AS REAL)) AS spent,
              MIN(created_at) AS first_order, MAX(created_at) AS last_order
       FROM orders WHERE merchant_id = ?1 AND cancelled_at IS NULL AND phone IS NOT NULL GROUP BY phone),
     t AS (
       SELECT cv.customer_id, MAX(m.created_at) AS last_text
       FROM messages m JOIN conversations cv ON cv.id = m.conversation_id
       WHERE m.merchant_id = ?1 AND m.direction = 'in' GROUP BY cv.customer_id),
     f AS (
       SELECT c.id, c.merchant_id, c.phone, c.first_name, c.tags, c.marketing, c.opted_out, c.created_at,
              COALESCE(o.n, 0) AS n_orders, COALESCE(o.spent, 0.0) AS spent, o.first_order, o.last_order,
              t.last_text
       FROM customers c LEFT JOIN o ON o.phone = c.phone LEFT JOIN t ON t.customer_id = c.id
       WHERE c.merchant_id = ?1)";

fn bound<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Int(v) => query.bind(*v),
            Bind::Real(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.as_str()),
        };
    }
    query
}

/// A segment member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub phone: String,
    pub first_name: Option<String>,
}

/// Numbers the rule's `?` placeholders after the merchant's `?1`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 1;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("?{n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

impl Store {
    /// How many of the merchant's customers the rule holds for.
    pub async fn segment_count(&self, merchant_id: &str, rule: &Compiled) -> Result<i64> {
        let sql = format!(
            "{FACTS} SELECT COUNT(*) AS n FROM f WHERE {}",
            numbered(&rule.sql)
        );
        let query = bound(sqlx::query(&sql).bind(merchant_id), &rule.binds);
        Ok(query.fetch_one(&self.reader).await?.get("n"))
    }

    /// The first `limit` members, by phone.
    pub async fn segment_members(
        &self,
        merchant_id: &str,
        rule: &Compiled,
        limit: i64,
    ) -> Result<Vec<Member>> {
        let n_binds = rule.binds.len() + 2;
        let sql = format!(
            "{FACTS} SELECT phone, first_name FROM f WHERE {} ORDER BY phone LIMIT ?{n_binds}",
            numbered(&rule.sql)
        );
        let query = bound(sqlx::query(&sql).bind(merchant_id), &rule.binds).bind(limit);
        let rows = query.fetch_all(&self.reader).await?;
        Ok(rows
            .into_iter()
            .map(|row| Member {
                phone: row.get("phone"),
                first_name: row.get("first_name"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use parley_campaigns::Thresholds;

    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const D: i64 = DAY_MS;

    /// One customer's facts, written as the webhooks and texts would leave them.
    #[derive(Default)]
    struct Seed {
        phone: &'static str,
        created_days_ago: i64,
        /// (days ago, total)
        orders: &'static [(i64, &'static str)],
        cancelled_order_days_ago: Option<i64>,
        text_days_ago: Option<i64>,
        /// (minutes ago, completed)
        checkout: Option<(i64, bool)>,
        tags: &'static str,
        bought: Option<&'static str>,
        marketing: &'static str,
    }

    async fn seeded(seeds: &[Seed]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("parley.db")).await.unwrap();
        let w = &store.writer;
        sqlx::query("INSERT INTO merchants (id, name, created_at, updated_at) VALUES ('m', 'M', 0, 0)")
            .execute(w)
            .await
            .unwrap();
        for (i, s) in seeds.iter().enumerate() {
            let customer: i64 = sqlx::query(
                "INSERT INTO customers (merchant_id, phone, created_at, tags, marketing) VALUES ('m', ?, ?, ?, ?) RETURNING id",
            )
            .bind(s.phone)
            .bind(NOW - s.created_days_ago * D)
            .bind(s.tags)
            .bind(if s.marketing.is_empty() { "none" } else { s.marketing })
            .fetch_one(w)
            .await
            .unwrap()
            .get("id");
            let mut orders: Vec<(i64, &str, bool)> = s.orders.iter().map(|(d, t)| (*d, *t, false)).collect();
            orders.extend(s.cancelled_order_days_ago.map(|d| (d, "999.00", true)));
            for (j, (days, total, cancelled)) in orders.into_iter().enumerate() {
                let at = NOW - days * D;
                let order: i64 = sqlx::query(
                    "INSERT INTO orders (merchant_id, shopify_id, name, phone, total_price, cancelled_at, source, payload,
                     created_at, updated_at, synced_at) VALUES ('m', ?, '#1', ?, ?, ?, 'webhook', '{}', ?, ?, ?) RETURNING id",
                )
                .bind(format!("{i}-{j}"))
                .bind(s.phone)
                .bind(total)
                .bind(cancelled.then_some(at))
                .bind(at)
                .bind(at)
                .bind(at)
                .fetch_one(w)
                .await
                .unwrap()
                .get("id");
                if let Some(title) = s.bought.filter(|_| j == 0) {
                    sqlx::query(
                        "INSERT INTO order_line_items (order_id, position, title, quantity, price) VALUES (?, 0, ?, 1, '1.00')",
                    )
                    .bind(order)
                    .bind(title)
                    .execute(w)
                    .await
                    .unwrap();
                }
            }
            if let Some(days) = s.text_days_ago {
                let conversation: i64 = sqlx::query(
                    "INSERT INTO conversations (merchant_id, customer_id, state, created_at, updated_at) VALUES ('m', ?, '{}', 0, 0) RETURNING id",
                )
                .bind(customer)
                .fetch_one(w)
                .await
                .unwrap()
                .get("id");
                sqlx::query(
                    "INSERT INTO messages (merchant_id, conversation_id, direction, author, body, channel, status, created_at, updated_at)
                     VALUES ('m', ?, 'in', 'customer', 'hi', 'sms', 'processed', ?, ?)",
                )
                .bind(conversation)
                .bind(NOW - days * D)
                .bind(NOW - days * D)
                .execute(w)
                .await
                .unwrap();
            }
            if let Some((minutes, completed)) = s.checkout {
                let at = NOW - minutes * 60_000;
                sqlx::query(
                    "INSERT INTO checkouts (merchant_id, token, phone, line_items, completed_at, created_at, updated_at, synced_at)
                     VALUES ('m', ?, ?, '[]', ?, ?, ?, ?)",
                )
                .bind(format!("t{i}"))
                .bind(s.phone)
                .bind(completed.then_some(at))
                .bind(at)
                .bind(at)
                .bind(at)
                .execute(w)
                .await
                .unwrap();
            }
        }
        (dir, store)
    }

    #[tokio::test]
    async fn the_built_in_segments_hold_at_their_boundaries() {
        let seeds = [
            Seed {
                phone: "+1new30",
                created_days_ago: 30,
                orders: &[(30, "20.00")],
                ..Seed::default()
            },
            Seed {
                phone: "+1new31",
                created_days_ago: 31,
                orders: &[(31, "20.00")],
                ..Seed::default()
            },
            Seed {
                phone: "+1rep89",
                created_days_ago: 200,
                orders: &[(150, "20.00"), (89, "20.00")],
                text_days_ago: Some(1),
                ..Seed::default()
            },
            Seed {
                phone: "+1rep90",
                created_days_ago: 200,
                orders: &[(150, "20.00"), (90, "20.00")],
                text_days_ago: Some(1),
                ..Seed::default()
            },
            // A cancelled order is no order.
            Seed {
                phone: "+1repx",
                created_days_ago: 200,
                orders: &[(10, "20.00")],
                cancelled_order_days_ago: Some(5),
                text_days_ago: Some(1),
                ..Seed::default()
            },
            Seed {
                phone: "+1cart60",
                created_days_ago: 1,
                checkout: Some((60, false)),
                ..Seed::default()
            },
            Seed {
                phone: "+1cart121",
                created_days_ago: 1,
                checkout: Some((121, false)),
                ..Seed::default()
            },
            Seed {
                phone: "+1cartdone",
                created_days_ago: 1,
                checkout: Some((90, true)),
                ..Seed::default()
            },
            Seed {
                phone: "+1idle75",
                created_days_ago: 75,
                ..Seed::default()
            },
            Seed {
                phone: "+1idle59",
                created_days_ago: 300,
                orders: &[(59, "20.00")],
                ..Seed::default()
            },
            Seed {
                phone: "+1idle91",
                created_days_ago: 300,
                orders: &[(91, "20.00")],
                ..Seed::default()
            },
            Seed {
                phone: "+1idletext",
                created_days_ago: 300,
                orders: &[(70, "20.00")],
                text_days_ago: Some(10),
                ..Seed::default()
            },
            Seed {
                phone: "+1aov151",
                created_days_ago: 300,
                orders: &[(200, "151.00")],
                text_days_ago: Some(1),
                ..Seed::default()
            },
            Seed {
                phone: "+1aov150",
                created_days_ago: 300,
                orders: &[(200, "150.00")],
                text_days_ago: Some(1),
                ..Seed::default()
            },
            Seed {
                phone: "+1three",
                created_days_ago: 300,
                orders: &[(200, "10.00"), (150, "10.00"), (120, "10.00")],
                text_days_ago: Some(1),
                ..Seed::default()
            },
        ];
        let (_dir, store) = seeded(&seeds).await;
        let members = |id: &'static str| {
            let store = &store;
            async move {
                let segment = Thresholds::default()
                    .builtins()
                    .into_iter()
                    .find(|s| s.id == id)
                    .unwrap();
                let compiled = compile(&segment.rule, NOW);
                let members = store.segment_members("m", &compiled, 100).await.unwrap();
                assert_eq!(
                    store.segment_count("m", &compiled).await.unwrap(),
                    members.len() as i64
                );
                members.into_iter().map(|m| m.phone).collect::<Vec<_>>()
            }
        };
        // +1repx's one real order is ten days old: a new customer, not a repeat buyer.
        assert_eq!(members("new_customers").await, ["+1new30", "+1repx"]);
        assert_eq!(members("repeat_buyers").await, ["+1rep89"]);
        assert_eq!(members("cart_abandoners").await, ["+1cart60"]);
        assert_eq!(members("inactive").await, ["+1idle75"]);
        assert_eq!(members("vip").await, ["+1aov151", "+1three"]);
    }

    #[tokio::test]
    async fn custom_rules_layer_all_any_and_not_over_tags_products_and_consent() {
        let seeds = [
            Seed {
                phone: "+1a",
                created_days_ago: 10,
                orders: &[(5, "400.00")],
                tags: "VIP, wholesale",
                bought: Some("Stormline 2.5L Rain Jacket"),
                marketing: "confirmed",
                ..Seed::default()
            },
            Seed {
                phone: "+1b",
                created_days_ago: 10,
                orders: &[(5, "400.00"), (4, "10.00")],
                tags: "vip",
                marketing: "confirmed",
                ..Seed::default()
            },
            Seed {
                phone: "+1c",
                created_days_ago: 10,
                orders: &[(5, "20.00"), (4, "10.00")],
                tags: "presale",
                ..Seed::default()
            },
        ];
        let (_dir, store) = seeded(&seeds).await;
        let members = |text: &'static str| {
            let store = &store;
            async move {
                let segments =
                    parley_campaigns::load_segments(&format!("[[segment]]\nid = \"x\"\nrule = {text}"))
                        .unwrap();
                let rule = segments.last().unwrap().rule.clone();
                let members = store
                    .segment_members("m", &compile(&rule, NOW), 100)
                    .await
                    .unwrap();
                members.into_iter().map(|m| m.phone).collect::<Vec<_>>()
            }
        };
        assert_eq!(members(r#"{ tag = "wholesale" }"#).await, ["+1a"]);
        assert_eq!(
            members(r#"{ tag = "sale" }"#).await,
            Vec::<String>::new(),
            "a tag is a whole tag"
        );
        assert_eq!(
            members(r#"{ bought = "stormline 2.5l rain jacket" }"#).await,
            ["+1a"]
        );
        assert_eq!(
            members(r#"{ all = [ { orders_at_least = 2 }, { any = [ { spent_at_least = 300 }, { tag = "vip" } ] }, { not = { tag = "wholesale" } } ] }"#).await,
            ["+1b"]
        );
        assert_eq!(members("{ marketing_consent = false }").await, ["+1c"]);
        assert_eq!(members("{ orders_at_most = 1 }").await, ["+1a"]);
    }
}
