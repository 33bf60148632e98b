//! Retrieval, on every backend: lexical hits for SKUs and names, semantic hits for
//! paraphrases, merchant isolation, and recall@5 over the labelled question sets in
//! `fixtures/retrieval/`.

use parley_knowledge::{KnowledgeBase, MerchantId, SearchHit};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::helpers::{
    Backend, TestKb, backend_tests, load_fixture, merchant_fixture, no_progress, workspace_root,
};

backend_tests!(
    every_sku_finds_its_product_first,
    product_names_find_their_product,
    paraphrases_find_the_policy,
    results_never_cross_merchants,
    recall_at_5_on_labelled_questions,
);

/// Both fixture merchants ingested once per backend for all retrieval tests (they only read).
/// On Qdrant both live in one collection, as in production.
async fn shared_kb(backend: Backend) -> &'static KnowledgeBase {
    static EMBEDDED: OnceCell<TestKb> = OnceCell::const_new();
    static QDRANT: OnceCell<TestKb> = OnceCell::const_new();
    let cell = match backend {
        Backend::Embedded => &EMBEDDED,
        Backend::Qdrant => &QDRANT,
    };
    let test_kb = cell
        .get_or_init(|| async {
            let test_kb = TestKb::new(backend).await;
            for merchant in ["trailhead", "glowleaf"] {
                test_kb
                    .kb
                    .ingest_dir(&merchant_fixture(merchant), no_progress())
                    .await
                    .unwrap();
            }
            test_kb
        })
        .await;
    &test_kb.kb
}

async fn search(backend: Backend, merchant: &str, question: &str, limit: usize) -> Vec<SearchHit> {
    let merchant = MerchantId::parse(merchant).unwrap();
    shared_kb(backend)
        .await
        .search(&merchant, question, limit)
        .await
        .unwrap()
}

fn rank_of(hits: &[SearchHit], source: &str) -> Option<usize> {
    hits.iter().position(|h| h.chunk.source == source)
}

async fn every_sku_finds_its_product_first(backend: Backend) {
    for merchant in ["trailhead", "glowleaf"] {
        let data = load_fixture(merchant);
        let mut checked = 0;
        // Every fourth product keeps the test quick while covering the whole catalog's shapes.
        for product in data.products.iter().filter(|p| p.is_active()).step_by(4) {
            let Some(variant) = product.variants.iter().find(|v| !v.sku.is_empty()) else {
                continue;
            };
            let hits = search(backend, merchant, &format!("is {} in stock?", variant.sku), 5).await;
            let source = format!("products/{}", product.handle);
            assert_eq!(
                rank_of(&hits, &source),
                Some(0),
                "{merchant}: SKU {} did not rank {source} first",
                variant.sku
            );
            checked += 1;
        }
        assert!(checked >= 8, "{merchant}: only {checked} SKUs checked");
    }
}

async fn product_names_find_their_product(backend: Backend) {
    for merchant in ["trailhead", "glowleaf"] {
        let data = load_fixture(merchant);
        for product in data.products.iter().filter(|p| p.is_active()).step_by(5) {
            let question = format!("how much is the {}", product.title.to_lowercase());
            let hits = search(backend, merchant, &question, 3).await;
            let source = format!("products/{}", product.handle);
            assert!(
                rank_of(&hits, &source).is_some(),
                "{merchant}: {question:?} missed {source}: {:?}",
                hits.iter().map(|h| &h.chunk.source).collect::<Vec<_>>()
            );
        }
    }
}

async fn paraphrases_find_the_policy(backend: Backend) {
    // Questions that share almost no words with the policy text they need.
    let cases = [
        ("trailhead", "can I send it back?", "policies/returns.md"),
        (
            "trailhead",
            "how long till my package gets here",
            "policies/shipping.md",
        ),
        (
            "glowleaf",
            "can I send it back if my skin hates it",
            "policies/returns.md",
        ),
        (
            "glowleaf",
            "how long till my package gets here",
            "policies/shipping.md",
        ),
    ];
    for (merchant, question, source) in cases {
        let hits = search(backend, merchant, question, 5).await;
        assert!(
            rank_of(&hits, source).is_some(),
            "{merchant}: {question:?} missed {source}: {:?}",
            hits.iter().map(|h| &h.chunk.source).collect::<Vec<_>>()
        );
    }
}

async fn results_never_cross_merchants(backend: Backend) {
    let trailhead = load_fixture("trailhead");
    let glowleaf = load_fixture("glowleaf");
    // Ask each store about the other store's products by exact name and SKU.
    let probes = [("glowleaf", &trailhead), ("trailhead", &glowleaf)];
    for (asked, other) in probes {
        for product in other.products.iter().step_by(6) {
            let sku = product.variants.first().map(|v| v.sku.as_str()).unwrap_or("");
            for question in [product.title.clone(), format!("{sku} price")] {
                let hits = search(backend, asked, &question, 10).await;
                assert!(!hits.is_empty());
                for hit in hits {
                    assert_eq!(
                        hit.chunk.merchant_id.as_str(),
                        asked,
                        "{question:?} leaked {}",
                        hit.chunk.source
                    );
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct LabelledSet {
    merchant: String,
    questions: Vec<LabelledQuestion>,
}

#[derive(Deserialize)]
struct LabelledQuestion {
    q: String,
    sources: Vec<String>,
}

/// Recall@5: the share of labelled questions with at least one right source in the top 5.
/// A quality gate, not a timing: the figure is printed for the record (`--nocapture`).
async fn recall_at_5_on_labelled_questions(backend: Backend) {
    let mut total_hits = 0;
    let mut total = 0;
    for merchant in ["trailhead", "glowleaf"] {
        let path = workspace_root().join(format!("fixtures/retrieval/{merchant}.yaml"));
        let set: LabelledSet = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(set.merchant, merchant);
        assert!(
            set.questions.len() >= 40,
            "{merchant}: only {} labelled questions",
            set.questions.len()
        );
        let data = load_fixture(merchant);
        let mut hits_count = 0;
        let mut misses = Vec::new();
        for question in &set.questions {
            for source in &question.sources {
                // A label pointing at nothing would silently lower recall; catch it here.
                let exists = data.policies.iter().any(|d| &d.source == source)
                    || data
                        .products
                        .iter()
                        .any(|p| format!("products/{}", p.handle) == *source);
                assert!(exists, "{}: label {source:?} names no document", path.display());
            }
            let hits = search(backend, merchant, &question.q, 5).await;
            if hits.iter().any(|h| question.sources.contains(&h.chunk.source)) {
                hits_count += 1;
            } else {
                misses.push(format!(
                    "{:?} -> {:?}",
                    question.q,
                    hits.iter().map(|h| &h.chunk.source).collect::<Vec<_>>()
                ));
            }
        }
        let recall = hits_count as f64 / set.questions.len() as f64;
        println!(
            "recall@5 {backend:?} {merchant}: {recall:.3} ({hits_count}/{})",
            set.questions.len()
        );
        for miss in &misses {
            println!("  miss {miss}");
        }
        assert!(
            recall >= 0.9,
            "{merchant}: recall@5 {recall:.3} below 0.9; misses:\n{}",
            misses.join("\n")
        );
        total_hits += hits_count;
        total += set.questions.len();
    }
    println!(
        "recall@5 {backend:?} overall: {:.3} ({total_hits}/{total})",
        total_hits as f64 / total as f64
    );
}
