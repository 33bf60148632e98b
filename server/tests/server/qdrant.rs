//! The service on the Qdrant backend (over the test server, the real Qdrant engine behind
//! Qdrant's real gRPC API): answers from it, and when Qdrant goes away mid-run the agent
//! hands the customer to a person instead of answering without knowledge, the service keeps
//! running and reports itself not ready, and it answers again once Qdrant is back.

use std::sync::Arc;

use parley_knowledge::qdrant::{QdrantConfig, QdrantIndex};
use parley_knowledge::{KnowledgeBase, MerchantId};
use parley_server::store::EscalationStatus;
use serde_json::Value;

use crate::helpers::*;

/// A knowledge base on Qdrant holding the fixture merchants, moved there from the shared
/// embedded index with `migrate` (no re-embedding), reading the same catalogs.
async fn qdrant_knowledge(url: String) -> Arc<KnowledgeBase> {
    let embedded = knowledge().await;
    let mut config = QdrantConfig::new(url);
    config.timeout = std::time::Duration::from_secs(2);
    let index = Arc::new(QdrantIndex::new(config).unwrap());
    for merchant in ["trailhead", "glowleaf"] {
        let merchant = MerchantId::parse(merchant).unwrap();
        let moved = parley_knowledge::index::migrate(embedded.index().as_ref(), index.as_ref(), &merchant)
            .await
            .unwrap();
        assert_eq!(moved, embedded.index().chunk_count(&merchant).await.unwrap());
    }
    let kb = KnowledgeBase::new(embedded.embedder().clone(), index, &shared_knowledge_dir()).unwrap();
    Arc::new(kb)
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn with_qdrant_down_the_agent_escalates_and_the_service_keeps_running() {
    let mut qdrant = parley_qdrant_testserver::spawn().await;
    let app = spawn_app_with(Channel::Simulator, qdrant_knowledge(qdrant.url()).await).await;
    let question = "How long does standard shipping take?";

    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["index_backend"], "qdrant", "{ready}");
    let answered = app.simulate("trailhead", "+15555550101", question).await;
    assert_eq!(answered["route"], "reply", "{answered}");
    assert_eq!(answered["escalated"], false, "{answered}");

    qdrant.stop().await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 503, "not ready without its index: {ready}");
    let stranded = app.simulate("trailhead", "+15555550102", question).await;
    assert_eq!(stranded["escalated"], true, "{stranded}");
    let queue = app
        .state
        .service
        .store
        .escalations("trailhead", &[EscalationStatus::Open])
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].reason, "knowledge_unavailable");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process is alive");

    qdrant.restart().await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    let answered = app.simulate("trailhead", "+15555550103", question).await;
    assert_eq!(answered["route"], "reply", "{answered}");
}
