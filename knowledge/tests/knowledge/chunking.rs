//! Chunking of the fixture merchants: structure, token limits, hashes.

use parley_knowledge::chunk::chunk_merchant;
use parley_knowledge::text::count_tokens;
use parley_knowledge::{ChunkConfig, ChunkKind};

use crate::helpers::load_fixture;

#[test]
fn every_chunk_fits_the_token_budget_and_names_its_merchant() {
    for merchant in ["trailhead", "glowleaf"] {
        let data = load_fixture(merchant);
        let config = ChunkConfig::default();
        let chunks = chunk_merchant(&data, &config);
        assert!(chunks.len() > data.products.len(), "{merchant}: too few chunks");
        for chunk in &chunks {
            assert_eq!(chunk.merchant_id.as_str(), merchant);
            let tokens = count_tokens(&chunk.text);
            assert!(
                tokens <= config.max_tokens,
                "{merchant} {} has {tokens} tokens:\n{}",
                chunk.source,
                chunk.text
            );
            assert!(!chunk.text.trim().is_empty());
            assert_eq!(chunk.content_hash.len(), 64);
        }
        // Ids are unique: backends upsert by them.
        let mut ids: Vec<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), chunks.len(), "{merchant}: duplicate chunk ids");
    }
}

#[test]
fn policy_chunks_carry_their_heading_path() {
    let data = load_fixture("trailhead");
    let chunks = chunk_merchant(&data, &ChunkConfig::default());
    let returns: Vec<_> = chunks
        .iter()
        .filter(|c| c.source == "policies/returns.md")
        .collect();
    assert!(returns.len() >= 3, "returns policy should split into sections");
    // Every section below the document title keeps the title as the first heading.
    let title = &returns[0].heading_path[0];
    assert!(returns.iter().all(|c| c.heading_path.first() == Some(title)));
    assert!(
        returns.iter().any(|c| c.heading_path.len() >= 2),
        "no sub-headings found"
    );
    // The HTML warranty is split on its <h2> headings like Markdown is.
    let warranty: Vec<_> = chunks
        .iter()
        .filter(|c| c.source == "policies/warranty.html")
        .collect();
    assert!(
        warranty.iter().any(|c| c.heading_path.len() >= 2),
        "HTML headings lost: {warranty:#?}"
    );
    assert!(
        warranty
            .iter()
            .all(|c| !c.text.contains("<p>") && !c.text.contains("</"))
    );
}

#[test]
fn product_chunks_carry_options_prices_skus_and_stock() {
    let data = load_fixture("trailhead");
    let chunks = chunk_merchant(&data, &ChunkConfig::default());
    for product in data.products.iter().filter(|p| p.is_active()) {
        let source = format!("products/{}", product.handle);
        let product_chunks: Vec<_> = chunks.iter().filter(|c| c.source == source).collect();
        let main = product_chunks
            .iter()
            .find(|c| c.kind == ChunkKind::Product)
            .unwrap_or_else(|| panic!("{source} has no main chunk"));
        assert!(main.text.starts_with(&product.title));
        let all_text: String = product_chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for variant in &product.variants {
            if !variant.sku.is_empty() {
                assert!(
                    all_text.contains(&variant.sku),
                    "{source}: SKU {} missing",
                    variant.sku
                );
            }
            assert!(
                all_text.contains(&format!("${}", variant.price)),
                "{source}: price missing"
            );
        }
        if product.variants.iter().any(|v| v.inventory_quantity == Some(0)) {
            assert!(all_text.contains("sold out"), "{source}: stock missing");
        }
    }
}

#[test]
fn hashes_are_stable_and_change_only_with_content() {
    let mut data = load_fixture("glowleaf");
    let config = ChunkConfig::default();
    let before = chunk_merchant(&data, &config);
    assert_eq!(
        before,
        chunk_merchant(&data, &config),
        "chunking is not deterministic"
    );

    let doc = data
        .policies
        .iter_mut()
        .find(|d| d.source == "policies/shipping.md")
        .unwrap();
    doc.raw
        .push_str("\n## Gift wrapping\nWe wrap any order for $4.\n");
    let after = chunk_merchant(&data, &config);
    let old_hashes: std::collections::HashSet<_> = before.iter().map(|c| &c.content_hash).collect();
    let changed: Vec<_> = after
        .iter()
        .filter(|c| !old_hashes.contains(&c.content_hash))
        .collect();
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|c| c.source == "policies/shipping.md"),
        "an edit to shipping.md changed other documents' chunks"
    );
}
