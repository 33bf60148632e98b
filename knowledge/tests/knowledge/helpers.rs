//! Shared test setup: one real embedder per test binary, fixture paths, scratch knowledge bases.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley_knowledge::{Embedder, KnowledgeBase, MerchantData, checkout_embedder};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn merchant_fixture(name: &str) -> PathBuf {
    workspace_root().join("fixtures/merchants").join(name)
}

/// The real model, loaded once per process (shared with every other test binary's helpers).
pub fn embedder() -> Arc<dyn Embedder> {
    checkout_embedder(&workspace_root())
        .expect("embedding model missing: run `make models` (scripts/fetch-models.sh)")
}

pub fn no_progress() -> &'static (dyn Fn(usize, usize) + Send + Sync) {
    &|_, _| {}
}

/// A knowledge base in a fresh temporary data directory.
pub fn scratch_kb() -> (tempfile::TempDir, KnowledgeBase) {
    let dir = tempfile::tempdir().unwrap();
    let kb = KnowledgeBase::open_embedded(embedder(), dir.path()).unwrap();
    (dir, kb)
}

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
