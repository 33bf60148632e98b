//! What only the Qdrant backend has: one shared collection created on first use, tenants
//! kept apart inside it, the same cosine scores as the embedded index, and clear failures
//! (never empty results) while Qdrant is down.

use std::time::{Duration, Instant};

use parley_knowledge::qdrant::QdrantIndex;
use parley_knowledge::{
    Chunk, ChunkKind, IndexedChunk, KnowledgeBase, KnowledgeError, KnowledgeIndex, MerchantId, SearchHit,
};
use qdrant_client::qdrant::{self as pb, vectors_config::Config};

use crate::helpers::{
    Backend, TestKb, block_on, copy_fixture, load_fixture, merchant_fixture, no_progress, qdrant_config,
    qdrant_index, scratch_kb,
};

fn merchant(id: &str) -> MerchantId {
    MerchantId::parse(id).unwrap()
}

/// The hits' chunk ids and rounded scores, to compare result lists.
fn fingerprint(hits: &[SearchHit]) -> Vec<(String, i64)> {
    hits.iter()
        .map(|h| (h.chunk.id.clone(), (h.score * 1e6).round() as i64))
        .collect()
}

#[test]
fn collection_is_created_on_first_use() {
    block_on(async {
        let TestKb { kb, server, .. } = &TestKb::new(Backend::Qdrant).await;
        let server = server.as_ref().unwrap();
        let client = qdrant_client::Qdrant::from_url(&server.url())
            .skip_compatibility_check()
            .build()
            .unwrap();
        let collection = qdrant_config(server).collection;

        // Reachable and ready before any collection exists; nothing is created by reading.
        kb.index().ready().await.unwrap();
        assert!(kb.index().merchants().await.unwrap().is_empty());
        assert!(!client.collection_exists(&collection).await.unwrap());

        let report = kb
            .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
            .await
            .unwrap();
        assert!(client.collection_exists(&collection).await.unwrap());
        let info = client.collection_info(&collection).await.unwrap().result.unwrap();
        assert_eq!(info.points_count, Some(report.n_chunks as u64));
        let params = info.config.unwrap().params.unwrap();
        let Some(Config::ParamsMap(dense)) = params.vectors_config.unwrap().config else {
            panic!("expected named dense vectors");
        };
        assert_eq!(dense.map["dense"].size, kb.embedder().dimension() as u64);
        assert_eq!(dense.map["dense"].distance, pb::Distance::Cosine as i32);
        let sparse = params.sparse_vectors_config.unwrap();
        assert_eq!(sparse.map["lexical"].modifier, Some(pb::Modifier::Idf as i32));
        for field in ["merchant_id", "skus"] {
            assert_eq!(
                info.payload_schema[field].data_type,
                pb::PayloadSchemaType::Keyword as i32,
                "{field}"
            );
        }

        // A second ingest finds the collection and leaves it as it is.
        kb.ingest_dir(&merchant_fixture("trailhead"), no_progress())
            .await
            .unwrap();
        assert_eq!(
            kb.index().merchants().await.unwrap(),
            vec![merchant("glowleaf"), merchant("trailhead")]
        );
    });
}

fn tiny_chunk(merchant_id: &str, vector: Vec<f32>) -> IndexedChunk {
    IndexedChunk {
        chunk: Chunk {
            id: "c1".to_owned(),
            merchant_id: merchant(merchant_id),
            source: "policies/faq.md".to_owned(),
            kind: ChunkKind::Policy,
            title: "FAQ".to_owned(),
            heading_path: vec!["FAQ".to_owned()],
            text: "Hello".to_owned(),
            content_hash: "h1".to_owned(),
        },
        vector,
    }
}

#[test]
fn replace_refuses_what_the_collection_cannot_hold() {
    block_on(async {
        let server = parley_qdrant_testserver::spawn().await;
        let index = qdrant_index(&server);
        let acme = merchant("acme");
        index
            .replace(&acme, "m", vec![tiny_chunk("acme", vec![1.0, 0.0, 0.0])])
            .await
            .unwrap();

        let err = index
            .replace(&acme, "m", vec![tiny_chunk("acme", vec![1.0, 0.0])])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("3-dimensional") && err.to_string().contains("2-dimensional"),
            "{err}"
        );
        let err = index
            .replace(&acme, "m", vec![tiny_chunk("other", vec![1.0, 0.0, 0.0])])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("belongs to merchant other"), "{err}");
        assert_eq!(index.chunk_count(&acme).await.unwrap(), 1);

        // Replacing with nothing forgets the merchant.
        index.replace(&acme, "m", Vec::new()).await.unwrap();
        assert!(matches!(
            index.chunk_count(&acme).await,
            Err(KnowledgeError::UnknownMerchant(_))
        ));
    });
}

/// Two merchants in one collection: A's questions never reach B's chunks, even when they
/// name B's products and SKUs exactly, and re-ingesting or deleting A leaves B as it was.
#[test]
fn tenants_stay_isolated_in_one_collection() {
    block_on(async {
        let TestKb { kb, .. } = &TestKb::new(Backend::Qdrant).await;
        let trailhead_dir = copy_fixture("trailhead");
        kb.ingest_dir(trailhead_dir.path(), no_progress()).await.unwrap();
        let glowleaf_report = kb
            .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
            .await
            .unwrap();
        let (trailhead, glowleaf) = (merchant("trailhead"), merchant("glowleaf"));

        let glowleaf_data = load_fixture("glowleaf");
        let mut probes = Vec::new();
        for product in glowleaf_data.products.iter().step_by(3) {
            probes.push(product.title.clone());
            if let Some(variant) = product.variants.iter().find(|v| !v.sku.is_empty()) {
                probes.push(format!("is {} in stock?", variant.sku));
            }
        }
        for question in &probes {
            for hit in kb.search(&trailhead, question, 10).await.unwrap() {
                assert_eq!(
                    hit.chunk.merchant_id, trailhead,
                    "{question:?} leaked {}",
                    hit.chunk.source
                );
            }
        }

        let glowleaf_before: Vec<_> = {
            let mut all = Vec::new();
            for question in &probes {
                all.push(fingerprint(&kb.search(&glowleaf, question, 5).await.unwrap()));
            }
            all
        };
        let glowleaf_stored = kb
            .index()
            .stored_vectors(&glowleaf, kb.embedder().model_id())
            .await
            .unwrap();

        // Re-ingest trailhead with a policy removed, then delete it altogether.
        std::fs::remove_file(trailhead_dir.path().join("policies/warranty.html")).unwrap();
        let report = kb.ingest_dir(trailhead_dir.path(), no_progress()).await.unwrap();
        assert!(report.n_removed > 0);
        kb.index()
            .replace(&trailhead, kb.embedder().model_id(), Vec::new())
            .await
            .unwrap();
        assert!(matches!(
            kb.search(&trailhead, "returns", 5).await,
            Err(KnowledgeError::UnknownMerchant(_))
        ));

        assert_eq!(kb.index().merchants().await.unwrap(), vec![glowleaf.clone()]);
        assert_eq!(
            kb.index().chunk_count(&glowleaf).await.unwrap(),
            glowleaf_report.n_chunks
        );
        assert_eq!(
            kb.index()
                .stored_vectors(&glowleaf, kb.embedder().model_id())
                .await
                .unwrap(),
            glowleaf_stored
        );
        for (question, before) in probes.iter().zip(&glowleaf_before) {
            let after = fingerprint(&kb.search(&glowleaf, question, 5).await.unwrap());
            assert_eq!(&after, before, "{question:?} changed for glowleaf");
        }
    });
}

/// Both backends give every hit the same cosine similarity (lexical-only and SKU hits
/// included) and return identical chunks.
#[test]
fn hits_carry_the_same_chunks_and_cosines_as_the_embedded_index() {
    block_on(async {
        let TestKb { kb: qdrant, .. } = &TestKb::new(Backend::Qdrant).await;
        let (_dir, embedded) = scratch_kb();
        for kb in [qdrant, &embedded] {
            kb.ingest_dir(&merchant_fixture("trailhead"), no_progress())
                .await
                .unwrap();
        }
        let trailhead = merchant("trailhead");
        let mut compared = 0;
        for question in [
            "waterproof jacket for rain",
            "RL2-BLK-10",
            "how do I return boots",
            "warranty",
        ] {
            let by_embedded = embedded.search(&trailhead, question, 10).await.unwrap();
            let by_qdrant = qdrant.search(&trailhead, question, 10).await.unwrap();
            assert!(
                by_qdrant.iter().any(|h| h.lexical_score.is_some()),
                "{question:?}: no lexical hits"
            );
            for hit in &by_qdrant {
                let dense_score = hit.dense_score.expect("every hit has a cosine");
                if let Some(same) = by_embedded.iter().find(|h| h.chunk.id == hit.chunk.id) {
                    assert_eq!(same.chunk, hit.chunk);
                    let expected = same.dense_score.unwrap();
                    assert!(
                        (dense_score - expected).abs() < 1e-3,
                        "{question:?}: {} cosine {dense_score} vs {expected}",
                        hit.chunk.source
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared >= 20, "only {compared} hits in common");
    });
}

/// Qdrant goes away mid-run: searches fail with a clear error after bounded retries (never an
/// empty result), readiness fails, and both recover when it is back on the same port.
#[test]
fn an_outage_is_a_clear_error_and_recovers() {
    block_on(async {
        let mut test_kb = TestKb::new(Backend::Qdrant).await;
        let glowleaf = merchant("glowleaf");
        test_kb
            .kb
            .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
            .await
            .unwrap();
        let before = test_kb.kb.search(&glowleaf, "returns", 5).await.unwrap();
        test_kb.kb.index().ready().await.unwrap();

        test_kb.server().stop().await;
        let url = test_kb.server().url();
        let started = Instant::now();
        let err = test_kb.kb.search(&glowleaf, "returns", 5).await.unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(err, KnowledgeError::Unavailable(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&url) && message.contains("unreachable"),
            "{message}"
        );
        assert!(waited < Duration::from_secs(5), "gave up after {waited:?}");
        assert!(waited >= Duration::from_millis(300), "did not retry: {waited:?}");
        println!("search while Qdrant is down, after {waited:?}: {message}");
        let err = test_kb.kb.index().ready().await.unwrap_err();
        assert!(matches!(err, KnowledgeError::Unavailable(_)), "{err}");
        assert!(matches!(
            test_kb.kb.index().chunk_count(&glowleaf).await,
            Err(KnowledgeError::Unavailable(_))
        ));

        test_kb.server().restart().await;
        test_kb.kb.index().ready().await.unwrap();
        let after = test_kb.kb.search(&glowleaf, "returns", 5).await.unwrap();
        assert_eq!(fingerprint(&after), fingerprint(&before));
    });
}

/// A Qdrant that was never there fails the same way, at start-up (readiness) and later.
#[test]
fn an_unreachable_qdrant_fails_readiness() {
    block_on(async {
        let mut server = parley_qdrant_testserver::spawn().await;
        let config = qdrant_config(&server);
        server.stop().await;
        let index = QdrantIndex::new(config).unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let kb = KnowledgeBase::new(
            crate::helpers::embedder(),
            std::sync::Arc::new(index),
            data_dir.path(),
        )
        .unwrap();
        assert!(matches!(
            kb.index().ready().await,
            Err(KnowledgeError::Unavailable(_))
        ));
        let err = kb
            .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
            .await
            .unwrap_err();
        assert!(matches!(err, KnowledgeError::Unavailable(_)), "{err}");
        assert!(
            kb.merchant_ids().unwrap().is_empty(),
            "catalog saved without an index"
        );
    });
}

/// `migrate` moves a merchant between backends without re-embedding: embedded → Qdrant →
/// a fresh embedded index gives back the same chunks and vectors, the same search results on
/// both sides, and leaves the other merchants on the target alone.
#[test]
fn migrate_moves_a_merchant_both_ways_without_re_embedding() {
    block_on(async {
        let TestKb { kb: qdrant, .. } = &TestKb::new(Backend::Qdrant).await;
        let (_dir, embedded) = scratch_kb();
        embedded
            .ingest_dir(&merchant_fixture("trailhead"), no_progress())
            .await
            .unwrap();
        qdrant
            .ingest_dir(&merchant_fixture("glowleaf"), no_progress())
            .await
            .unwrap();
        let (trailhead, glowleaf) = (merchant("trailhead"), merchant("glowleaf"));
        let glowleaf_before = qdrant.index().chunk_count(&glowleaf).await.unwrap();

        let copied =
            parley_knowledge::index::migrate(embedded.index().as_ref(), qdrant.index().as_ref(), &trailhead)
                .await
                .unwrap();
        let source = embedded.index().export(&trailhead).await.unwrap();
        assert_eq!(copied, source.chunks.len());
        assert_eq!(qdrant.index().chunk_count(&trailhead).await.unwrap(), copied);
        assert_eq!(
            qdrant.index().chunk_count(&glowleaf).await.unwrap(),
            glowleaf_before
        );
        let moved = qdrant.index().export(&trailhead).await.unwrap();
        assert_eq!(moved.model_id, source.model_id);
        // Qdrant re-normalises cosine vectors on upsert, so vectors match to rounding.
        let same = |a: &parley_knowledge::index::Export, b: &parley_knowledge::index::Export| {
            let sorted = |export: &parley_knowledge::index::Export| {
                let mut chunks = export.chunks.clone();
                chunks.sort_by(|x, y| x.chunk.id.cmp(&y.chunk.id));
                chunks
            };
            let (a, b) = (sorted(a), sorted(b));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.chunk, y.chunk);
                let off = x
                    .vector
                    .iter()
                    .zip(&y.vector)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0, f32::max);
                assert!(
                    x.vector.len() == y.vector.len() && off < 1e-5,
                    "{}: vector off by {off}",
                    x.chunk.id
                );
            }
        };
        same(&moved, &source);
        for question in ["how do I return boots", "RL2-BLK-10"] {
            let here = embedded.search(&trailhead, question, 5).await.unwrap();
            let there = qdrant.search(&trailhead, question, 5).await.unwrap();
            assert_eq!(here[0].chunk.id, there[0].chunk.id, "{question:?}");
        }

        // And back, into an index that never saw the merchant.
        let back_dir = tempfile::tempdir().unwrap();
        let back = parley_knowledge::EmbeddedIndex::open(back_dir.path()).unwrap();
        parley_knowledge::index::migrate(qdrant.index().as_ref(), &back, &trailhead)
            .await
            .unwrap();
        same(&back.export(&trailhead).await.unwrap(), &source);
        let missing =
            parley_knowledge::index::migrate(&back, qdrant.index().as_ref(), &merchant("nobody")).await;
        assert!(
            matches!(missing, Err(KnowledgeError::UnknownMerchant(_))),
            "{missing:?}"
        );
    });
}
