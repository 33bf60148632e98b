//! Segments at scale: a store holding 100k customers (with orders, texts and open checkouts
//! spread over a year) and the time to count each built-in segment and a layered custom one —
//! one SQL query each, through the same `Store::segment_count` the API calls.

use std::path::Path;
use std::time::Instant;

use parley_server::store::Store;
use parley_server::store::segments::compile;
use serde_json::{Value, json};

use crate::stats::Spread;

const DAY: i64 = 86_400_000;

/// A deterministic spread of facts (no RNG crate needed for a fixture).
fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 29)
}

async fn seed(path: &Path, customers: u64, now: i64) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO merchants (id, name, created_at, updated_at) VALUES ('bench', 'Bench', 0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for i in 0..customers {
        let r = mix(i);
        let phone = format!("+1555{i:07}");
        let created = now - ((r % 400) as i64) * DAY;
        let tags = match r % 10 {
            0 => "vip",
            1 => "wholesale, vip",
            _ => "",
        };
        let marketing = if r.is_multiple_of(3) { "confirmed" } else { "none" };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO customers (merchant_id, phone, created_at, tags, marketing) VALUES ('bench', ?, ?, ?, ?) RETURNING id",
        )
        .bind(&phone)
        .bind(created)
        .bind(tags)
        .bind(marketing)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        for j in 0..(r >> 8) % 4 {
            let at = now - (((r >> (12 + j)) % 360) as i64) * DAY;
            let total = format!("{}.00", 20 + (r >> (20 + j)) % 300);
            sqlx::query(
                "INSERT INTO orders (merchant_id, shopify_id, name, phone, total_price, source, payload, created_at, updated_at, synced_at)
                 VALUES ('bench', ?, '#1', ?, ?, 'webhook', '{}', ?, ?, ?)",
            )
            .bind(format!("{i}-{j}"))
            .bind(&phone)
            .bind(total)
            .bind(at)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        if r.is_multiple_of(5) {
            let conversation: i64 = sqlx::query_scalar(
                "INSERT INTO conversations (merchant_id, customer_id, state, created_at, updated_at) VALUES ('bench', ?, '{}', 0, 0) RETURNING id",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            let at = now - (((r >> 40) % 120) as i64) * DAY;
            sqlx::query(
                "INSERT INTO messages (merchant_id, conversation_id, direction, author, body, channel, status, created_at, updated_at)
                 VALUES ('bench', ?, 'in', 'customer', 'hi', 'sms', 'processed', ?, ?)",
            )
            .bind(conversation)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        if r.is_multiple_of(50) {
            let at = now - (((r >> 44) % 240) as i64) * 60_000;
            sqlx::query(
                "INSERT INTO checkouts (merchant_id, token, phone, line_items, created_at, updated_at, synced_at)
                 VALUES ('bench', ?, ?, '[]', ?, ?, ?)",
            )
            .bind(format!("t{i}"))
            .bind(&phone)
            .bind(at)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

pub async fn run(scratch: &Path, customers: u64, repeats: usize) -> Value {
    let path = scratch.join("segments.db");
    let now = 1_800_000_000_000;
    // Open first: the migrations make the tables the seed writes into.
    Store::open(&path).await.unwrap().close().await;
    let started = Instant::now();
    seed(&path, customers, now).await;
    let seed_s = started.elapsed().as_secs_f64();
    let store = Store::open(&path).await.unwrap();
    let custom = parley_campaigns::load_segments(
        "[[segment]]\nid = \"loyal_not_wholesale\"\nrule = { all = [ { orders_at_least = 2 }, { any = [ { spent_at_least = 300 }, { tag = \"vip\" } ] }, { not = { tag = \"wholesale\" } } ] }\n",
    )
    .unwrap();
    let mut results = Vec::new();
    for segment in &custom {
        let compiled = compile(&segment.rule, now);
        let mut ms = Vec::new();
        let mut count = 0;
        for _ in 0..repeats.max(3) {
            let t = Instant::now();
            count = store.segment_count("bench", &compiled).await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let spread = Spread::of(ms);
        println!(
            "segments: {} over {customers} customers: {count} members, {:.0} ms median",
            segment.id, spread.median
        );
        results.push(json!({ "segment": segment.id, "members": count, "count_ms": spread.json() }));
    }
    store.close().await;
    json!({ "customers": customers, "seed_s": crate::stats::round(seed_s), "segments": results })
}
