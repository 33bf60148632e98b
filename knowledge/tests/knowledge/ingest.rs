//! Ingestion, on every backend: incremental and idempotent re-ingest, removals, a failed
//! ingest changing nothing, restarts, and unknown merchants.

use std::fs;

use parley_knowledge::{KnowledgeBase, KnowledgeError, MerchantId};

use crate::helpers::{
    Backend, TestKb, backend_tests, copy_fixture, embedder, merchant_fixture, no_progress, qdrant_kb,
};

backend_tests!(
    reingest_embeds_only_what_changed,
    removed_documents_disappear_from_results,
    failed_ingest_leaves_previous_index_intact,
    catalog_and_index_survive_a_restart,
    unknown_merchant_is_an_error_not_an_empty_result,
);

async fn reingest_embeds_only_what_changed(backend: Backend) {
    let merchant_dir = copy_fixture("glowleaf");
    let TestKb { kb, .. } = &TestKb::new(backend).await;

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
    assert_eq!(kb.index().chunk_count(&merchant).await.unwrap(), edited.n_chunks);
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

async fn removed_documents_disappear_from_results(backend: Backend) {
    let merchant_dir = copy_fixture("trailhead");
    let TestKb { kb, .. } = &TestKb::new(backend).await;
    let merchant = MerchantId::parse("trailhead").unwrap();
    let first = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    let before = kb
        .search(&merchant, "warranty claim for a defect", 10)
        .await
        .unwrap();
    assert!(before.iter().any(|h| h.chunk.source == "policies/warranty.html"));

    fs::remove_file(merchant_dir.path().join("policies/warranty.html")).unwrap();
    let report = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    assert!(report.n_removed > 0, "{report:?}");
    assert_eq!(report.n_embedded, 0);
    assert_eq!(report.n_chunks, first.n_chunks - report.n_removed);
    assert_eq!(kb.index().chunk_count(&merchant).await.unwrap(), report.n_chunks);
    let after = kb
        .search(&merchant, "warranty claim for a defect", 50)
        .await
        .unwrap();
    assert!(after.iter().all(|h| h.chunk.source != "policies/warranty.html"));
}

async fn failed_ingest_leaves_previous_index_intact(backend: Backend) {
    let merchant_dir = copy_fixture("trailhead");
    let TestKb { kb, data_dir, .. } = &TestKb::new(backend).await;
    let merchant = MerchantId::parse("trailhead").unwrap();
    let first = kb.ingest_dir(merchant_dir.path(), no_progress()).await.unwrap();
    let snapshot = data_dir.path().join("index/trailhead.snapshot");
    let snapshot_before = (backend == Backend::Embedded).then(|| fs::read(&snapshot).unwrap());
    let catalog_before = kb.merchant(&merchant).unwrap();
    let hits_before = kb.search(&merchant, "brand new policy text", 5).await.unwrap();

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

    assert_eq!(kb.merchant(&merchant).unwrap(), catalog_before);
    assert_eq!(kb.index().chunk_count(&merchant).await.unwrap(), first.n_chunks);
    let hits = kb.search(&merchant, "brand new policy text", 5).await.unwrap();
    assert!(hits.iter().all(|h| h.chunk.source != "policies/new.md"));
    let ids =
        |hits: &[parley_knowledge::SearchHit]| hits.iter().map(|h| h.chunk.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&hits), ids(&hits_before));
    if let Some(snapshot_before) = snapshot_before {
        assert_eq!(
            fs::read(&snapshot).unwrap(),
            snapshot_before,
            "snapshot was modified"
        );
        // No temporary files left behind either.
        let leftovers: Vec<_> = fs::read_dir(data_dir.path().join("index"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A new process over the same data: the embedded index reopens its files; on Qdrant the
/// server restarts too, and a new client finds everything where it was.
async fn catalog_and_index_survive_a_restart(backend: Backend) {
    let mut test_kb = TestKb::new(backend).await;
    let report = test_kb
        .kb
        .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
        .await
        .unwrap();
    let data_dir = test_kb.data_dir.path().to_path_buf();
    let reopened = match backend {
        Backend::Embedded => KnowledgeBase::open_embedded(embedder(), &data_dir).unwrap(),
        Backend::Qdrant => {
            test_kb.server().restart().await;
            qdrant_kb(test_kb.server(), &data_dir)
        }
    };
    let merchant = MerchantId::parse("glowleaf").unwrap();
    assert_eq!(
        reopened.index().chunk_count(&merchant).await.unwrap(),
        report.n_chunks
    );
    assert_eq!(
        reopened.merchant(&merchant).unwrap().orders.len(),
        report.n_orders
    );
    assert_eq!(reopened.merchant_ids().unwrap(), vec![merchant.clone()]);
    assert_eq!(
        reopened.index().merchants().await.unwrap(),
        vec![merchant.clone()]
    );
    let hits = reopened.search(&merchant, "returns", 3).await.unwrap();
    assert_eq!(hits.len(), 3);
}

async fn unknown_merchant_is_an_error_not_an_empty_result(backend: Backend) {
    let TestKb { kb, .. } = &TestKb::new(backend).await;
    let ghost = MerchantId::parse("ghost-store").unwrap();
    let unknown = |result: Result<_, KnowledgeError>| match result {
        Err(err @ KnowledgeError::UnknownMerchant(_)) => assert!(err.to_string().contains("ghost-store")),
        Err(err) => panic!("expected an unknown merchant, got: {err}"),
        Ok(_) => panic!("expected an unknown merchant, got a result"),
    };
    // Before anything was ingested (on Qdrant: before the collection exists)...
    unknown(kb.search(&ghost, "returns", 5).await.map(|_| ()));
    unknown(kb.index().chunk_count(&ghost).await.map(|_| ()));
    assert!(matches!(
        kb.merchant(&ghost),
        Err(KnowledgeError::UnknownMerchant(_))
    ));
    assert!(kb.index().merchants().await.unwrap().is_empty());
    // ...and after another merchant was.
    kb.ingest_dir(&merchant_fixture("glowleaf"), no_progress())
        .await
        .unwrap();
    unknown(kb.search(&ghost, "returns", 5).await.map(|_| ()));
    unknown(kb.index().chunk_count(&ghost).await.map(|_| ()));
}
