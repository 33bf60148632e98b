//! Shared setup for the pipeline tests: the real embedding model, the fixture merchants
//! ingested once per test binary into a persistent directory under `target/` (re-runs reuse
//! the vectors), and an [`Agent`] over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley_agent::classifier::builtin_examples;
use parley_agent::{Agent, AgentConfig, Classifier, ConversationState, Decision, Generator, Inbound};
use parley_knowledge::{Embedder, KnowledgeBase, MerchantId, checkout_embedder};
use parley_prompts::Prompts;
use serde_json::json;
use tokio::sync::OnceCell;
use wiremock::ResponseTemplate;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The real model, loaded once per process (shared with every other test binary's helpers).
pub fn embedder() -> Arc<dyn Embedder> {
    checkout_embedder(&workspace_root())
        .expect("embedding model missing: run `make models` (scripts/fetch-models.sh)")
}

struct Shared {
    knowledge: Arc<KnowledgeBase>,
    classifier: Arc<Classifier>,
}

async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let data_dir = workspace_root().join("target/parley-test-kb");
            let knowledge = KnowledgeBase::open_embedded(embedder(), &data_dir).unwrap();
            for merchant in ["trailhead", "glowleaf"] {
                let dir = workspace_root().join("fixtures/merchants").join(merchant);
                knowledge.ingest_dir(&dir, &|_, _| {}).await.unwrap();
            }
            let embedder = embedder();
            let classifier = tokio::task::spawn_blocking(move || {
                Classifier::train(embedder.as_ref(), builtin_examples()).unwrap()
            })
            .await
            .unwrap();
            Shared {
                knowledge: Arc::new(knowledge),
                classifier: Arc::new(classifier),
            }
        })
        .await
}

pub async fn classifier() -> Arc<Classifier> {
    shared().await.classifier.clone()
}

/// The agent as shipped: offline extractive responder, default policy.
pub async fn agent() -> Agent {
    agent_with(None, AgentConfig::default()).await
}

pub async fn agent_with(generator: Option<Arc<dyn Generator>>, config: AgentConfig) -> Agent {
    let shared = shared().await;
    Agent::new(
        shared.knowledge.clone(),
        shared.classifier.clone(),
        generator,
        Arc::new(Prompts::builtin()),
        config,
    )
}

/// A scripted conversation with one customer of one merchant.
pub struct Conversation {
    pub agent: Agent,
    pub merchant: MerchantId,
    pub phone: Option<String>,
    pub state: ConversationState,
}

impl Conversation {
    pub async fn new(merchant: &str, phone: Option<&str>) -> Self {
        Self::with_agent(agent().await, merchant, phone)
    }

    pub fn with_agent(agent: Agent, merchant: &str, phone: Option<&str>) -> Self {
        Self {
            agent,
            merchant: MerchantId::parse(merchant).unwrap(),
            phone: phone.map(str::to_owned),
            state: ConversationState::default(),
        }
    }

    pub async fn say(&mut self, text: &str) -> Decision {
        let inbound = Inbound {
            merchant: &self.merchant,
            customer_phone: self.phone.as_deref(),
            text,
        };
        let decision = self.agent.decide(inbound, self.state.clone()).await.unwrap();
        self.state = decision.state.clone();
        decision
    }
}

/// A Chat Completions response body as OpenAI and compatible servers send it.
pub fn completion(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_735_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 420, "completion_tokens": 24, "total_tokens": 444}
    }))
}
