//! Ingestion: incremental and idempotent re-ingest, removals, and atomic replacement.

use std::fs;

use parley_knowledge::{KnowledgeError, MerchantId};

use crate::helpers::{copy_fixture, merchant_fixture, no_progress, scratch_kb};

#[tokio::test]
async fn reingest_embeds_only_what_changed() {
    let merchant_dir = copy_fixture("glowleaf");
    let (_data, kb) = scratch_kb();

    let first = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    assert!(first.n_chunks > 40);
    assert_eq!(first.n_embedded, first.n_chunks);
    assert_eq!(first.n_reused, 0);

    let again = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    assert_eq!(again.n_chunks, first.n_chunks);
    assert_eq!(again.n_embedded, 0, "unchanged content was re-embedded");
    assert_eq!(again.n_reused, first.n_chunks);
    assert_eq!(again.n_removed, 0);

    let faq = merchant_dir.path().join("policies/faq.md");
    let mut text = fs::read_to_string(&faq).unwrap();
    text.push_str(
        "\n\n## Do you ship to Antarctica?\nOnly research stations, by arrangement with our team.\n",
    );
    fs::write(&faq, text).unwrap();
    let edited = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    assert!(edited.n_embedded >= 1 && edited.n_embedded <= 3, "{edited:?}");
    assert_eq!(edited.n_reused + edited.n_embedded, edited.n_chunks);

    let merchant = MerchantId::parse("glowleaf").unwrap();
    let hits = kb
        .search(&merchant, "do you ship to antarctica", 3)
        .await
        .unwrap();
    assert!(
        hits[0].chunk.text.contains("research stations"),
        "{:?}",
        hits[0].chunk.text
    );
}

#[tokio::test]
async fn removed_documents_disappear_from_results() {
    let merchant_dir = copy_fixture("trailhead");
    let (_data, kb) = scratch_kb();
    let merchant = MerchantId::parse("trailhead").unwrap();
    kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    let before = kb
        .search(&merchant, "warranty claim for a defect", 10)
        .await
        .unwrap();
    assert!(before.iter().any(|h| h.chunk.source == "policies/warranty.html"));

    fs::remove_file(merchant_dir.path().join("policies/warranty.html")).unwrap();
    let report = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    assert!(report.n_removed > 0, "{report:?}");
    assert_eq!(report.n_embedded, 0);
    let after = kb
        .search(&merchant, "warranty claim for a defect", 50)
        .await
        .unwrap();
    assert!(after.iter().all(|h| h.chunk.source != "policies/warranty.html"));
}

#[tokio::test]
async fn failed_ingest_leaves_previous_index_intact() {
    let merchant_dir = copy_fixture("trailhead");
    let (data_dir, kb) = scratch_kb();
    let merchant = MerchantId::parse("trailhead").unwrap();
    let first = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    let snapshot = data_dir.path().join("index/trailhead.snapshot");
    let snapshot_before = fs::read(&snapshot).unwrap();
    let catalog_before = kb.merchant(&merchant).unwrap();

    // A new policy plus a broken product file: the whole ingest must be refused.
    fs::write(
        merchant_dir.path().join("policies/new.md"),
        "# New\nBrand new policy text.\n",
    )
    .unwrap();
    fs::write(
        merchant_dir.path().join("products.json"),
        "{\"products\": [ {\"id\": 1, ",
    )
    .unwrap();
    let err = kb
        .ingest_dir(merchant_dir.path(), no_progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("products.json"), "{err}");

    assert_eq!(
        fs::read(&snapshot).unwrap(),
        snapshot_before,
        "snapshot was modified"
    );
    assert_eq!(kb.merchant(&merchant).unwrap(), catalog_before);
    assert_eq!(kb.index().chunk_count(&merchant).await.unwrap(), first.n_chunks);
    let hits = kb.search(&merchant, "brand new policy text", 5).await.unwrap();
    assert!(hits.iter().all(|h| h.chunk.source != "policies/new.md"));
    // No temporary files left behind either.
    let leftovers: Vec<_> = fs::read_dir(data_dir.path().join("index"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn catalog_and_index_survive_a_restart() {
    let (data_dir, kb) = scratch_kb();
    let report = kb
        .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
        .await
        .unwrap();
    drop(kb);
    let reopened =
        parley_knowledge::KnowledgeBase::open_embedded(crate::helpers::embedder(), data_dir.path()).unwrap();
    let merchant = MerchantId::parse("glowleaf").unwrap();
    assert_eq!(
        reopened.index().chunk_count(&merchant).await.unwrap(),
        report.n_chunks
    );
    assert_eq!(
        reopened.merchant(&merchant).unwrap().orders.len(),
        report.n_orders
    );
    assert_eq!(reopened.merchant_ids().unwrap(), vec![merchant]);
}

#[tokio::test]
async fn unknown_merchant_is_an_error_not_an_empty_result() {
    let (_data, kb) = scratch_kb();
    let ghost = MerchantId::parse("ghost-store").unwrap();
    let err = kb.search(&ghost, "returns", 5).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::UnknownMerchant(_)), "{err}");
    assert!(err.to_string().contains("ghost-store"));
    assert!(matches!(
        kb.merchant(&ghost),
        Err(KnowledgeError::UnknownMerchant(_))
    ));
}
