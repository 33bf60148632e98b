//! Setup every crate's tests and benches share, so each piece exists once: the checkout's
//! real embedding model (loaded once per process, behind a vector cache), the demo merchants
//! ingested into a persistent knowledge base under `target/` (re-runs reuse the vectors), the
//! classifier trained on the built-in examples, fakes of the paid APIs (`fakes`), free ports
//! and child processes that die with the test. Dev-only: no production crate depends on it.

pub mod fakes;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};

use parley_agent::Classifier;
use parley_agent::classifier::builtin_examples;
use parley_knowledge::{CachingEmbedder, Embedder, EmbedderConfig, FastEmbedder, KnowledgeBase};
use tokio::sync::OnceCell;

/// The merchants the demo knowledge base holds (`make run` serves the same two).
pub const DEMO_MERCHANTS: [&str; 2] = ["trailhead", "glowleaf"];

/// The checkout's root (the workspace directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

/// A fixture merchant's directory, e.g. `fixtures/merchants/trailhead`.
pub fn merchant_fixture(name: &str) -> PathBuf {
    workspace_root().join("fixtures/merchants").join(name)
}

/// The model `make models` fetched into `.cache/models`, unless `PARLEY_MODEL_DIR` /
/// `ORT_DYLIB_PATH` point elsewhere.
pub fn checkout_embedder_config() -> EmbedderConfig {
    let models = workspace_root().join(".cache/models");
    let model_dir = std::env::var_os("PARLEY_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| models.join("all-MiniLM-L6-v2-int8"));
    let mut config = EmbedderConfig::new(model_dir);
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        config.ort_library = Some(models.join("onnxruntime/libonnxruntime.so"));
    }
    config
}

/// The checkout's model behind a vector cache, loaded once per process and shared: tests and
/// benches embed the same fixture passages over and over, and loading costs about a second.
pub fn embedder() -> Arc<dyn Embedder> {
    static LOADED: Mutex<Option<Arc<CachingEmbedder<FastEmbedder>>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(embedder) = loaded.as_ref() {
        return embedder.clone();
    }
    let model = FastEmbedder::load(&checkout_embedder_config())
        .expect("embedding model missing: run `make models` (scripts/fetch-models.sh)");
    let embedder = Arc::new(CachingEmbedder::new(model, 100_000));
    *loaded = Some(embedder.clone());
    embedder
}

/// Where the demo knowledge base lives; shared by every test binary, so vectors embedded by
/// one are reused by the next.
pub fn shared_knowledge_dir() -> PathBuf {
    workspace_root().join("target/parley-test-kb")
}

struct Demo {
    knowledge: Arc<KnowledgeBase>,
    classifier: Arc<Classifier>,
}

async fn demo() -> &'static Demo {
    static DEMO: OnceCell<Demo> = OnceCell::const_new();
    DEMO.get_or_init(|| async {
        let knowledge = KnowledgeBase::open_embedded(embedder(), &shared_knowledge_dir())
            .expect("opening the shared test knowledge base");
        for merchant in DEMO_MERCHANTS {
            knowledge
                .ingest_dir(&merchant_fixture(merchant), &|_, _| {})
                .await
                .unwrap_or_else(|err| panic!("ingesting the {merchant} fixture: {err}"));
        }
        let embedder = embedder();
        let classifier =
            tokio::task::spawn_blocking(move || Classifier::train(embedder.as_ref(), builtin_examples()))
                .await
                .expect("classifier task")
                .expect("embedding the classifier examples");
        Demo {
            knowledge: Arc::new(knowledge),
            classifier: Arc::new(classifier),
        }
    })
    .await
}

/// The demo merchants, ingested once per test binary.
pub async fn demo_knowledge() -> Arc<KnowledgeBase> {
    demo().await.knowledge.clone()
}

/// The classifier as shipped (built-in examples, the checkout's model), trained once per
/// test binary.
pub async fn classifier() -> Arc<Classifier> {
    demo().await.classifier.clone()
}

/// A TCP port free at the time of asking, for a child process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// A child process killed (and reaped) when dropped, so a failing test or bench leaves no
/// server running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
