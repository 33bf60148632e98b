//! Sentence embeddings: the [`Embedder`] trait and its real implementation on fastembed with
//! ONNX Runtime loaded at run time from a library file the project's scripts install.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

use crate::error::{KnowledgeError, Result};

/// Turns texts into unit-length vectors. Implementations are blocking (CPU-bound); async
/// callers run them on a blocking thread.
pub trait Embedder: Send + Sync {
    /// Identifies the model; stored with vectors so a model change forces re-embedding.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// Where the model files and the ONNX Runtime library live.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// A directory with `model.onnx`, `tokenizer.json`, `config.json`,
    /// `special_tokens_map.json` and `tokenizer_config.json`.
    pub model_dir: PathBuf,
    /// `libonnxruntime.so`; `None` means `ORT_DYLIB_PATH`, then ort's own search.
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime intra-op threads. One by default: on a small shared machine a single
    /// thread per call gives the best latency under concurrent load.
    pub threads: usize,
    /// Token limit per text; longer texts are truncated by the tokenizer.
    pub max_length: usize,
    /// Texts per model call. ONNX Runtime's arena keeps the peak memory of the largest call
    /// for the life of the process (batch × length² for attention), and beyond a handful of
    /// texts a bigger batch buys no throughput on a CPU: 8 keeps a 256-token batch small.
    pub batch_size: usize,
}

impl EmbedderConfig {
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: model_dir.into(),
            ort_library: None,
            threads: 1,
            max_length: 256,
            batch_size: 8,
        }
    }
}

/// fastembed over a user-supplied model directory (mean pooling, as sentence-transformers
/// MiniLM models are trained; fastembed's default CLS pooling is wrong for them).
pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
    model_id: String,
    dimension: usize,
    batch_size: usize,
}

impl std::fmt::Debug for FastEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastEmbedder")
            .field("model_id", &self.model_id)
            .field("dimension", &self.dimension)
            .finish()
    }
}

/// ONNX Runtime can be loaded once per process; every embedder shares that environment.
fn ort_environment(library: Option<&Path>) -> Result<ort::environment::Environment> {
    static LOADED: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let path = library
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
        let builder = match &path {
            Some(path) => {
                if !path.exists() {
                    return Err(format!(
                        "ONNX Runtime library {} does not exist; run scripts/fetch-models.sh",
                        path.display()
                    ));
                }
                ort::init_from(path)
                    .map_err(|err| format!("cannot load ONNX Runtime from {}: {err}", path.display()))?
            }
            None => ort::init(),
        };
        builder
            .with_name("parley")
            .build()
            .map_err(|err| format!("cannot start ONNX Runtime: {err}"))
    });
    loaded.clone().map_err(KnowledgeError::Embedding)
}

impl FastEmbedder {
    pub fn load(config: &EmbedderConfig) -> Result<Self> {
        let environment = ort_environment(config.ort_library.as_deref())?;
        let dir = &config.model_dir;
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|err| {
                KnowledgeError::Embedding(format!(
                    "cannot read {}: {err} (run scripts/fetch-models.sh, or point the model directory at a fastembed model)",
                    path.display()
                ))
            })
        };
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let model =
            UserDefinedEmbeddingModel::new(read("model.onnx")?, tokenizer_files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(config.max_length)
            .with_intra_threads(config.threads.max(1));
        let mut embedding = TextEmbedding::try_new_from_user_defined(model, options).map_err(|err| {
            KnowledgeError::Embedding(format!("cannot load model from {}: {err}", dir.display()))
        })?;
        // The probe both finds the dimension and proves the model runs before we accept it.
        let probe = embedding.embed(["dimension probe"], None).map_err(|err| {
            KnowledgeError::Embedding(format!("model in {} does not run: {err}", dir.display()))
        })?;
        let dimension = probe.first().map(Vec::len).unwrap_or(0);
        if dimension == 0 {
            return Err(KnowledgeError::Embedding(format!(
                "model in {} produced empty vectors",
                dir.display()
            )));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            model: Mutex::new(embedding),
            model_id: format!("{name}/mean/{dimension}"),
            dimension,
            batch_size: config.batch_size.max(1),
        })
    }
}

impl Embedder for FastEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Each batch is padded to its longest text, so a batch mixing a ten-word product line
        // with a 250-token policy passage spends most of its compute on padding. Embedding in
        // length order keeps every batch nearly pad-free; the vectors go back in caller order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let sorted: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
        let mut model = self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let embedded = model
            .embed(sorted, Some(self.batch_size))
            .map_err(|err| KnowledgeError::Embedding(err.to_string()))?;
        drop(model);
        if embedded.len() != texts.len() {
            return Err(KnowledgeError::Embedding(format!(
                "the model returned {} vectors for {} texts",
                embedded.len(),
                texts.len()
            )));
        }
        let mut vectors = vec![Vec::new(); texts.len()];
        for (position, mut vector) in order.into_iter().zip(embedded) {
            normalize(&mut vector);
            vectors[position] = vector;
        }
        Ok(vectors)
    }
}

/// Scales a vector to unit length so a dot product is the cosine similarity.
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in vector {
            *x /= norm;
        }
    }
}

/// Remembers the vectors of recently embedded texts. SMS traffic repeats itself ("yes",
/// "thanks", "where is my order"), and the same passages recur across re-ingests and eval
/// runs, so a small cache in front of a compute-bound model saves real time.
pub struct CachingEmbedder<E> {
    inner: E,
    capacity: usize,
    cache: Mutex<FifoCache>,
}

#[derive(Default)]
struct FifoCache {
    map: std::collections::HashMap<String, Vec<f32>>,
    order: std::collections::VecDeque<String>,
}

impl<E: Embedder> CachingEmbedder<E> {
    pub fn new(inner: E, capacity: usize) -> Self {
        Self {
            inner,
            capacity: capacity.max(1),
            cache: Mutex::new(FifoCache::default()),
        }
    }
}

impl<E> std::fmt::Debug for CachingEmbedder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingEmbedder")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<E: Embedder> Embedder for CachingEmbedder<E> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut results: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for text in texts {
                let hit = cache.map.get(text).cloned();
                if hit.is_none() && !missing.contains(text) {
                    missing.push(text.clone());
                }
                results.push(hit);
            }
        }
        // The model runs outside the lock so cache hits never wait behind a slow batch.
        let fresh = self.inner.embed(&missing)?;
        let fresh: std::collections::HashMap<&String, Vec<f32>> = missing.iter().zip(fresh).collect();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Insert in request order so eviction order is deterministic.
        for text in &missing {
            let vector = fresh[text].clone();
            if cache.map.insert(text.clone(), vector).is_none() {
                cache.order.push_back(text.clone());
            }
            while cache.order.len() > self.capacity {
                if let Some(oldest) = cache.order.pop_front() {
                    cache.map.remove(&oldest);
                }
            }
        }
        Ok(results
            .into_iter()
            .zip(texts)
            .map(|(hit, text)| hit.unwrap_or_else(|| fresh[text].clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts how many texts reach the model.
    struct Counting(AtomicUsize);

    impl Embedder for Counting {
        fn model_id(&self) -> &str {
            "counting"
        }
        fn dimension(&self) -> usize {
            1
        }
        fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[test]
    fn cache_embeds_each_text_once_and_evicts_oldest() {
        let cached = CachingEmbedder::new(Counting(AtomicUsize::new(0)), 2);
        let texts = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let out = cached.embed(&texts(&["a", "bb", "a"])).unwrap();
        assert_eq!(out, vec![vec![1.0], vec![2.0], vec![1.0]]);
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 2);
        cached.embed(&texts(&["bb"])).unwrap();
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 2, "hit went to the model");
        cached.embed(&texts(&["ccc"])).unwrap(); // evicts "a"
        cached.embed(&texts(&["a"])).unwrap();
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 4);
    }
}
