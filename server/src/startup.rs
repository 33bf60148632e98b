//! The composition root: the whole application built from `Settings` — knowledge base and
//! index, classifier, generator, agent, channel, store and service — in one place that both
//! the binary and the tests call, so the tests run the wiring that ships.

use std::path::PathBuf;
use std::sync::Arc;

use parley_agent::classifier::builtin_examples;
use parley_agent::llm::LlmGenerator;
use parley_agent::{Agent, Classifier, GenerateError, Generator};
use parley_core::{Clock, SystemClock};
use parley_knowledge::qdrant::QdrantIndex;
use parley_knowledge::{
    EmbeddedIndex, Embedder, EmbedderConfig, FastEmbedder, KnowledgeBase, KnowledgeError, KnowledgeIndex,
};
use parley_prompts::Prompts;

use crate::AppState;
use crate::channel::{Channel, SimulatorChannel, TwilioChannel};
use crate::metrics::Metrics;
use crate::service::{Service, ServiceError};
use crate::settings::{ChannelKind, IndexBackend, Settings};
use crate::store::{self, Store};
use crate::twilio::{SendError, TwilioClient};

/// Why the application could not be built; each names the part and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("loading the embedding model: {0}")]
    Model(#[source] KnowledgeError),
    #[error("opening the {backend} index: {source}")]
    Index {
        backend: &'static str,
        #[source]
        source: KnowledgeError,
    },
    #[error("opening the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: KnowledgeError,
    },
    #[error("embedding the classifier examples: {0}")]
    Classifier(#[source] KnowledgeError),
    #[error("the LLM generator: {0}")]
    Llm(#[source] GenerateError),
    #[error("setting up the SMS channel: {0}")]
    Channel(#[source] SendError),
    #[error("opening the store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: ServiceError,
    },
}

/// Parts a caller already has and wants used instead of building them from the settings:
/// tests share one knowledge base and one trained classifier across a test binary, and run
/// on a manual clock. Everything not given is built exactly as `parley serve` builds it.
#[derive(Default)]
pub struct Parts {
    pub knowledge: Option<Arc<KnowledgeBase>>,
    pub classifier: Option<Arc<Classifier>>,
    pub clock: Option<Arc<dyn Clock>>,
}

/// Builds the application `parley serve` runs (see [`crate::run`]).
pub async fn build(settings: &Settings, parts: Parts) -> Result<AppState, StartupError> {
    let knowledge = match parts.knowledge {
        Some(knowledge) => knowledge,
        None => open_knowledge(settings)?,
    };
    let classifier = match parts.classifier {
        Some(classifier) => classifier,
        None => train_classifier(knowledge.embedder().clone()).await?,
    };
    let agent = build_agent(settings, knowledge.clone(), classifier)?;
    let channel = channel(settings).map_err(StartupError::Channel)?;
    let clock = parts.clock.unwrap_or_else(|| Arc::new(SystemClock));
    build_state(settings, knowledge, agent, channel, clock)
        .await
        .map_err(|source| StartupError::Store {
            path: settings.store_path(),
            source,
        })
}

/// The index backend `backend`, as the settings configure it.
pub fn open_index(
    settings: &Settings,
    backend: IndexBackend,
) -> Result<Arc<dyn KnowledgeIndex>, StartupError> {
    let index: Arc<dyn KnowledgeIndex> = match backend {
        IndexBackend::Embedded => Arc::new(EmbeddedIndex::open(settings.data_dir.join("index")).map_err(
            |source| StartupError::Index {
                backend: "embedded",
                source,
            },
        )?),
        IndexBackend::Qdrant => {
            Arc::new(QdrantIndex::new(settings.index.qdrant.clone()).map_err(|source| {
                StartupError::Index {
                    backend: "Qdrant",
                    source,
                }
            })?)
        }
    };
    Ok(index)
}

/// The embedding model and the configured index, over the settings' data directory.
pub fn open_knowledge(settings: &Settings) -> Result<Arc<KnowledgeBase>, StartupError> {
    let mut config = EmbedderConfig::new(&settings.embedding.model_dir);
    config.ort_library = settings.ort_library();
    config.threads = settings.embedding.threads;
    let embedder = FastEmbedder::load(&config).map_err(StartupError::Model)?;
    let index = open_index(settings, settings.index.backend)?;
    tracing::info!(backend = index.backend_name(), "knowledge index");
    let knowledge = KnowledgeBase::new(Arc::new(embedder), index, &settings.data_dir).map_err(|source| {
        StartupError::DataDir {
            path: settings.data_dir.clone(),
            source,
        }
    })?;
    Ok(Arc::new(knowledge))
}

/// The classifier trained on the built-in examples, embedded with the knowledge base's model
/// (off the async threads: it embeds a few hundred texts).
pub async fn train_classifier(embedder: Arc<dyn Embedder>) -> Result<Arc<Classifier>, StartupError> {
    let trained =
        tokio::task::spawn_blocking(move || Classifier::train(embedder.as_ref(), builtin_examples()))
            .await
            .map_err(|err| StartupError::Classifier(KnowledgeError::Embedding(err.to_string())))?;
    trained.map(Arc::new).map_err(StartupError::Classifier)
}

/// The reply agent: the classifier and, when `[llm]` is configured, the LLM generator (else
/// the offline responder), with the settings' escalation policy.
pub fn build_agent(
    settings: &Settings,
    knowledge: Arc<KnowledgeBase>,
    classifier: Arc<Classifier>,
) -> Result<Agent, StartupError> {
    let prompts = Arc::new(Prompts::builtin());
    let generator: Option<Arc<dyn Generator>> = match &settings.llm {
        Some(config) => {
            tracing::info!(base_url = %config.base_url, model = %config.model, "replies by LLM");
            Some(Arc::new(
                LlmGenerator::new(config.clone(), prompts.clone()).map_err(StartupError::Llm)?,
            ))
        }
        None => None,
    };
    Ok(Agent::new(
        knowledge,
        classifier,
        generator,
        prompts,
        settings.agent.clone(),
    ))
}

/// The channel the settings ask for.
pub fn channel(settings: &Settings) -> Result<Arc<dyn Channel>, SendError> {
    match (&settings.channel, &settings.twilio) {
        (ChannelKind::Twilio, Some(config)) => {
            let client = TwilioClient::new(config.clone())?;
            let callback = config.webhook_url("/webhooks/twilio/status");
            Ok(Arc::new(TwilioChannel::new(client, callback)))
        }
        _ => Ok(Arc::new(SimulatorChannel)),
    }
}

/// Opens the store, wires the service and brings the store up to date with the knowledge
/// base: every ingested merchant gets its row (name, SMS number), and whatever a crash
/// interrupted is replayed (see `Service::recover`).
async fn build_state(
    settings: &Settings,
    knowledge: Arc<KnowledgeBase>,
    agent: Agent,
    channel: Arc<dyn Channel>,
    clock: Arc<dyn Clock>,
) -> Result<AppState, ServiceError> {
    let store = Store::open(&settings.store_path()).await?;
    // The order tools read the store, which webhooks and the directory's orders.json both feed.
    let agent = agent.with_order_source(Arc::new(crate::commerce::StoreOrders(store.clone())));
    let service = Arc::new(
        Service::new(
            store,
            agent,
            channel,
            clock,
            Arc::new(Metrics::default()),
            settings.escalation.sla,
            settings.server.workers,
        )
        .with_send_rules(settings.outbox.rules())
        .with_scheduler(settings.scheduler.clone()),
    );
    let merchant_ids = knowledge.merchant_ids().unwrap_or_else(|err| {
        tracing::error!(error = %err, "listing the knowledge base's merchants failed");
        Vec::new()
    });
    for id in merchant_ids {
        match knowledge.merchant(&id) {
            Ok(data) => {
                let merchant = store::Merchant::from_config(&data.config, None);
                service.store.upsert_merchant(&merchant, service.now()).await?;
                service.sync_directory_orders(&data).await?;
            }
            Err(err) => tracing::error!(merchant = %id, error = %err, "loading a merchant's data failed"),
        }
    }
    let applied = service.recover_shopify().await?;
    if applied > 0 {
        tracing::info!(applied, "applied Shopify events received before the last stop");
    }
    // Product changes committed before a crash (or before `serve --ingest` re-read an older
    // directory) reach the catalog now; a merchant whose catalog already has them costs a
    // comparison.
    for id in knowledge.merchant_ids().unwrap_or_default() {
        if let Err(err) = service.refresh_live_products(id.as_str()).await {
            tracing::error!(merchant = %id, error = %err, "applying the shop's product changes failed");
        }
    }
    let (inbound, outbound) = service.recover().await?;
    if inbound + outbound > 0 {
        tracing::info!(inbound, outbound, "resuming work interrupted by the last stop");
    }
    Ok(AppState {
        service,
        knowledge,
        channel: settings.channel,
        twilio: settings.twilio.clone().map(Arc::new),
        shopify: settings.shopify.clone().map(Arc::new),
        merchants_dir: settings.data_dir.join("merchants"),
        max_body_bytes: settings.server.max_body_bytes,
        max_upload_bytes: settings.server.max_upload_bytes,
        request_timeout: settings.server.request_timeout,
        header_timeout: settings.server.header_timeout,
        max_connections: settings.server.max_connections,
        secure_cookies: settings
            .twilio
            .as_ref()
            .is_some_and(|twilio| twilio.public_url.starts_with("https://")),
    })
}
