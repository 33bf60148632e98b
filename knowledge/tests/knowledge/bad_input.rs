//! Bad merchant directories: each gives a clear error naming the file, and nothing is written.

use std::fs;
use std::path::Path;

use parley_knowledge::{MerchantData, MerchantId};

use crate::helpers::{copy_fixture, no_progress, scratch_kb};

/// Breaks a copy of a fixture with `sabotage`, then checks that loading fails with a message
/// containing each of `expected`, and that an ingest of it writes nothing.
async fn check(sabotage: impl FnOnce(&Path), expected: &[&str]) {
    let merchant_dir = copy_fixture("trailhead");
    sabotage(merchant_dir.path());
    let err = MerchantData::load(merchant_dir.path()).unwrap_err().to_string();
    for needle in expected {
        assert!(err.contains(needle), "error {err:?} should mention {needle:?}");
    }
    let (data_dir, kb) = scratch_kb();
    assert!(kb.ingest_dir(merchant_dir.path(), no_progress()).await.is_err());
    let trailhead = MerchantId::parse("trailhead").unwrap();
    assert!(kb.merchant(&trailhead).is_err());
    assert!(kb.index().merchants().await.unwrap().is_empty());
    let written: Vec<_> = fs::read_dir(data_dir.path().join("index"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        written.is_empty(),
        "files written for a refused ingest: {written:?}"
    );
}

#[tokio::test]
async fn malformed_products_json() {
    check(
        |dir| fs::write(dir.join("products.json"), "{\"products\": [}").unwrap(),
        &["products.json", "invalid products JSON"],
    )
    .await;
}

#[tokio::test]
async fn products_json_of_the_wrong_shape() {
    check(
        |dir| fs::write(dir.join("products.json"), "[1, 2, 3]").unwrap(),
        &["products.json"],
    )
    .await;
}

#[tokio::test]
async fn malformed_products_csv() {
    check(
        |dir| {
            fs::remove_file(dir.join("products.json")).unwrap();
            fs::write(
                dir.join("products.csv"),
                "Handle,Title,Variant Price\nboot,Boot,12.00\nboot,Boot,12.00,extra\n",
            )
            .unwrap();
        },
        &["products.csv", "line 3"],
    )
    .await;
}

#[tokio::test]
async fn csv_without_shopify_headers() {
    check(
        |dir| {
            fs::remove_file(dir.join("products.json")).unwrap();
            fs::write(dir.join("products.csv"), "name,cost\nboot,12\n").unwrap();
        },
        &["products.csv", "Handle"],
    )
    .await;
}

#[tokio::test]
async fn malformed_orders_json() {
    check(
        |dir| fs::write(dir.join("orders.json"), "{\"orders\": [{\"id\": \"x\"}]}").unwrap(),
        &["orders.json"],
    )
    .await;
}

#[tokio::test]
async fn empty_policy_file() {
    check(
        |dir| fs::write(dir.join("policies/empty.md"), "  \n").unwrap(),
        &["policies/empty.md", "empty"],
    )
    .await;
}

#[tokio::test]
async fn binary_policy_file() {
    check(
        |dir| {
            fs::write(
                dir.join("policies/logo.txt"),
                [0x89, b'P', b'N', b'G', 0, 0, 1, 2],
            )
            .unwrap()
        },
        &["policies/logo.txt", "binary"],
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_policy_file() {
    check(
        |dir| fs::write(dir.join("policies/latin1.txt"), b"caf\xe9 hours").unwrap(),
        &["policies/latin1.txt", "UTF-8"],
    )
    .await;
}

#[tokio::test]
async fn unsupported_policy_format() {
    check(
        |dir| fs::write(dir.join("policies/terms.pdf"), "%PDF-1.4").unwrap(),
        &["policies/terms.pdf", "unsupported"],
    )
    .await;
}

#[tokio::test]
async fn missing_merchant_toml() {
    check(
        |dir| fs::remove_file(dir.join("merchant.toml")).unwrap(),
        &["merchant.toml"],
    )
    .await;
}

#[tokio::test]
async fn bad_merchant_toml() {
    check(
        |dir| {
            let path = dir.join("merchant.toml");
            let text = fs::read_to_string(&path)
                .unwrap()
                .replace("id = \"trailhead\"", "id = \"Trail Head!\"");
            fs::write(path, text).unwrap();
        },
        &["merchant.toml", "Trail Head!"],
    )
    .await;
}

/// A time zone the tz database does not know, or a phone number no country uses, is refused
/// when the directory is read, not when the first quiet-hours check or send needs it.
#[tokio::test]
async fn unknown_time_zone_and_bad_number_in_merchant_toml() {
    for (from, to, needles) in [
        ("America/Denver", "America/Atlantis", ["America/Atlantis", "IANA"]),
        ("America/Denver", "MST", ["MST", "IANA"]),
        ("+18005550101", "+1800555010x", ["+1800555010x", "E.164"]),
    ] {
        check(
            |dir| {
                let path = dir.join("merchant.toml");
                let text = fs::read_to_string(&path).unwrap().replace(from, to);
                fs::write(path, text).unwrap();
            },
            &["merchant.toml", needles[0], needles[1]],
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_key_in_merchant_toml() {
    check(
        |dir| {
            let path = dir.join("merchant.toml");
            let text = format!("colour = \"green\"\n{}", fs::read_to_string(&path).unwrap());
            fs::write(path, text).unwrap();
        },
        &["merchant.toml", "colour"],
    )
    .await;
}

#[test]
fn a_merchant_id_cannot_be_a_path() {
    for bad in ["", "../etc", "a/b", "UPPER", "x".repeat(65).as_str()] {
        assert!(MerchantId::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(MerchantId::parse("trail-head_2").is_ok());
}
