//! Shared test setup: one real embedder per test binary, fixture paths, scratch knowledge
//! bases on either index backend, and the macro that runs a test once per backend.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parley_knowledge::qdrant::{QdrantConfig, QdrantIndex};
use parley_knowledge::{KnowledgeBase, MerchantData};
use parley_qdrant_testserver::TestServer;

pub use parley_testkit::{embedder, merchant_fixture, workspace_root};

pub fn no_progress() -> &'static (dyn Fn(usize, usize) + Send + Sync) {
    &|_, _| {}
}

/// A knowledge base in a fresh temporary data directory.
pub fn scratch_kb() -> (tempfile::TempDir, KnowledgeBase) {
    let dir = tempfile::tempdir().unwrap();
    let kb = KnowledgeBase::open_embedded(embedder(), dir.path()).unwrap();
    (dir, kb)
}

/// The index backends every backend test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Snapshot files under the data directory.
    Embedded,
    /// A Qdrant test server of the test's own (the real engine behind the real gRPC API).
    Qdrant,
}

/// A knowledge base over one backend, with what it lives on.
pub struct TestKb {
    pub kb: KnowledgeBase,
    pub data_dir: tempfile::TempDir,
    /// The Qdrant server, for [`Backend::Qdrant`].
    pub server: Option<TestServer>,
}

impl TestKb {
    pub async fn new(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Embedded => Self {
                kb: KnowledgeBase::open_embedded(embedder(), data_dir.path()).unwrap(),
                data_dir,
                server: None,
            },
            Backend::Qdrant => {
                let server = TestServer::spawn().await;
                Self {
                    kb: qdrant_kb(&server, data_dir.path()),
                    data_dir,
                    server: Some(server),
                }
            }
        }
    }

    pub fn server(&mut self) -> &mut TestServer {
        self.server.as_mut().expect("a Qdrant-backed knowledge base")
    }
}

/// Client settings for a test server: short timeouts, since it answers in milliseconds.
pub fn qdrant_config(server: &TestServer) -> QdrantConfig {
    QdrantConfig {
        collection: "parley_test".to_owned(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        ..QdrantConfig::new(server.url())
    }
}

pub fn qdrant_index(server: &TestServer) -> QdrantIndex {
    QdrantIndex::new(qdrant_config(server)).unwrap()
}

/// A knowledge base whose catalogs live in `data_dir` and whose index is on `server`.
pub fn qdrant_kb(server: &TestServer, data_dir: &Path) -> KnowledgeBase {
    KnowledgeBase::new(embedder(), Arc::new(qdrant_index(server)), data_dir).unwrap()
}

/// Runs a backend test on the one runtime all of them share. A gRPC client's connections and
/// a test server's tasks belong to the runtime that started them, so a knowledge base shared
/// between tests must not live on any one test's runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });
    RUNTIME.block_on(future)
}

/// Turns `async fn name(backend: Backend)` tests into `embedded::name` and `qdrant::name`:
/// the same test, the same thresholds, once per backend.
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $test() {
                    $crate::helpers::block_on(super::$test($crate::helpers::Backend::Embedded));
                }
            )*
        }

        mod qdrant {
            $(
                #[test]
                fn $test() {
                    $crate::helpers::block_on(super::$test($crate::helpers::Backend::Qdrant));
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// Copies a fixture merchant into a scratch directory so a test can edit it.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&merchant_fixture(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn load_fixture(name: &str) -> MerchantData {
    MerchantData::load(&merchant_fixture(name)).unwrap()
}
