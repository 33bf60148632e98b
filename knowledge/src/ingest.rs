//! Ingestion and the [`KnowledgeBase`] facade: validate a merchant directory, chunk it, embed
//! only what changed, and swap the merchant's index and catalog in as one step.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunk::{ChunkConfig, chunk_merchant};
use crate::embed::Embedder;
use crate::embedded::EmbeddedIndex;
use crate::error::{KnowledgeError, Result};
use crate::index::{IndexedChunk, KnowledgeIndex, SearchHit, SearchQuery};
use crate::merchant::{MerchantData, MerchantId};
use crate::qdrant::{QdrantConfig, QdrantIndex};
use crate::sentences::{SentenceVectors, passage_sentences};

/// What an ingest did, for the CLI, the API and the benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub merchant_id: MerchantId,
    pub n_products: usize,
    pub n_policies: usize,
    pub n_orders: usize,
    pub n_chunks: usize,
    /// Chunks whose text was new or changed and went through the embedding model.
    pub n_embedded: usize,
    /// Chunks whose stored vector was reused because their content hash was unchanged.
    pub n_reused: usize,
    /// Chunks present before this ingest and gone after it.
    pub n_removed: usize,
    /// Distinct passage sentences, each with a stored vector for the responder.
    pub n_sentences: usize,
    /// Sentences that went through the model (the rest kept their stored vector).
    pub n_sentences_embedded: usize,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// Called as embedding proceeds with (texts embedded so far, texts to embed): the changed
/// chunks first, then the new passage sentences.
pub type IngestProgress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// The knowledge base one process uses: an embedder, an index backend, and the catalog
/// store (each merchant's config, products and orders as last ingested).
pub struct KnowledgeBase {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn KnowledgeIndex>,
    catalog_dir: PathBuf,
    chunk_config: ChunkConfig,
    catalogs: RwLock<HashMap<MerchantId, Arc<MerchantData>>>,
    /// Each merchant's passage-sentence vectors, loaded on first use.
    sentences: RwLock<HashMap<MerchantId, Arc<SentenceVectors>>>,
    /// Catalogs that could not be read, with why (until an ingest replaces them).
    unreadable_catalogs: RwLock<HashMap<MerchantId, String>>,
    /// Ingests are serialised: they are rare, heavy, and simpler to reason about one at a time.
    ingest_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("backend", &self.index.backend_name())
            .field("catalog_dir", &self.catalog_dir)
            .finish()
    }
}

const EMBED_BATCH: usize = 64;

/// Held while one ingest runs; see [`KnowledgeBase::begin_ingest`].
pub struct IngestPermit<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl KnowledgeBase {
    pub fn new(embedder: Arc<dyn Embedder>, index: Arc<dyn KnowledgeIndex>, data_dir: &Path) -> Result<Self> {
        let catalog_dir = data_dir.join("merchants");
        fs::create_dir_all(&catalog_dir).map_err(|err| KnowledgeError::io(&catalog_dir, err))?;
        Ok(Self {
            embedder,
            index,
            catalog_dir,
            chunk_config: ChunkConfig::default(),
            catalogs: RwLock::new(HashMap::new()),
            sentences: RwLock::new(HashMap::new()),
            unreadable_catalogs: RwLock::new(HashMap::new()),
            ingest_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The out-of-the-box setup: the embedded index under `data_dir/index`.
    pub fn open_embedded(embedder: Arc<dyn Embedder>, data_dir: &Path) -> Result<Self> {
        let index = EmbeddedIndex::open(data_dir.join("index"))?;
        Self::new(embedder, Arc::new(index), data_dir)
    }

    /// The multi-merchant setup: the index in Qdrant (see [`QdrantIndex`]), catalogs under
    /// `data_dir`. Connects lazily; check [`KnowledgeIndex::ready`] before serving.
    pub fn open_qdrant(embedder: Arc<dyn Embedder>, config: QdrantConfig, data_dir: &Path) -> Result<Self> {
        let index = QdrantIndex::new(config)?;
        Self::new(embedder, Arc::new(index), data_dir)
    }

    /// How this knowledge base chunks documents.
    pub fn chunk_config(&self) -> &ChunkConfig {
        &self.chunk_config
    }

    pub fn with_chunk_config(mut self, config: ChunkConfig) -> Self {
        self.chunk_config = config;
        self
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    pub fn index(&self) -> &Arc<dyn KnowledgeIndex> {
        &self.index
    }

    /// Loads, validates and ingests a merchant directory. Validation covers every file
    /// before anything is written, so a bad file leaves the previous index untouched.
    pub async fn ingest_dir(&self, dir: &Path, progress: IngestProgress<'_>) -> Result<IngestReport> {
        let owned_dir = dir.to_path_buf();
        let data = tokio::task::spawn_blocking(move || MerchantData::load(&owned_dir))
            .await
            .map_err(|err| KnowledgeError::Index(format!("loader task failed: {err}")))??;
        self.ingest(data, progress).await
    }

    pub async fn ingest(&self, data: MerchantData, progress: IngestProgress<'_>) -> Result<IngestReport> {
        let permit = self.begin_ingest().await;
        self.ingest_with(&permit, data, progress).await
    }

    /// Waits until no other ingest runs and holds that until the permit drops. A caller that
    /// reads something to build the data it ingests (the live Shopify products the server
    /// overlays on the directory) reads it while holding the permit, so two such ingests
    /// cannot interleave and leave the older reading in place.
    pub async fn begin_ingest(&self) -> IngestPermit<'_> {
        IngestPermit {
            _guard: self.ingest_lock.lock().await,
        }
    }

    /// [`Self::ingest`] under a permit the caller already holds.
    pub async fn ingest_with(
        &self,
        _permit: &IngestPermit<'_>,
        data: MerchantData,
        progress: IngestProgress<'_>,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        let merchant = data.config.id.clone();
        let chunks = chunk_merchant(&data, &self.chunk_config);
        let model_id = self.embedder.model_id().to_owned();

        let mut stored = self.index.stored_vectors(&merchant, &model_id).await?;
        let n_before = stored.len();
        let to_embed: Vec<usize> = chunks
            .iter()
            .enumerate()
            .filter(|(_, chunk)| !stored.contains_key(&chunk.content_hash))
            .map(|(idx, _)| idx)
            .collect();
        // The responder reads passages sentence by sentence and ranks the sentences by
        // meaning; their vectors are computed here, once, not per question. A sentence already
        // stored under this model keeps its vector.
        let previous = self.sentence_vectors(&merchant);
        let previous = (previous.model_id() == model_id).then_some(previous);
        let mut sentence_texts: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chunk in &chunks {
            for sentence in passage_sentences(&chunk.text) {
                if seen.insert(sentence.clone()) {
                    sentence_texts.push(sentence);
                }
            }
        }
        let mut new_sentences: Vec<&String> = sentence_texts
            .iter()
            .filter(|s| previous.as_ref().is_none_or(|p| p.get(s).is_none()))
            .collect();
        // Similar lengths batch together: less padding through the model.
        new_sentences.sort_by_key(|s| s.len());
        let total = to_embed.len() + new_sentences.len();

        let mut fresh: HashMap<String, Vec<f32>> = HashMap::with_capacity(to_embed.len());
        progress(0, total);
        for batch in to_embed.chunks(EMBED_BATCH) {
            let texts: Vec<String> = batch.iter().map(|&idx| chunks[idx].embedding_text()).collect();
            let vectors = self.embed_batch(texts).await?;
            for (&idx, vector) in batch.iter().zip(vectors) {
                fresh.insert(chunks[idx].content_hash.clone(), vector);
            }
            progress(fresh.len(), total);
        }
        let mut sentence_store = SentenceVectors::new(&model_id, self.embedder.dimension());
        for batch in new_sentences.chunks(EMBED_BATCH) {
            let texts: Vec<String> = batch.iter().map(|s| (*s).clone()).collect();
            let vectors = self.embed_batch(texts.clone()).await?;
            for (text, vector) in texts.into_iter().zip(vectors) {
                sentence_store
                    .insert(text, &vector)
                    .map_err(KnowledgeError::Embedding)?;
            }
            progress(fresh.len() + sentence_store.len(), total);
        }
        let n_sentences_embedded = sentence_store.len();
        if let Some(previous) = &previous {
            for sentence in &sentence_texts {
                if let Some(vector) = previous.get(sentence) {
                    sentence_store
                        .insert(sentence.clone(), vector)
                        .map_err(KnowledgeError::Embedding)?;
                }
            }
        }

        let n_chunks = chunks.len();
        let mut n_reused = 0;
        let mut kept_hashes = std::collections::HashSet::new();
        let mut indexed = Vec::with_capacity(n_chunks);
        for chunk in chunks {
            kept_hashes.insert(chunk.content_hash.clone());
            let vector = match fresh.get(&chunk.content_hash) {
                Some(vector) => vector.clone(),
                None => {
                    n_reused += 1;
                    stored
                        .get(&chunk.content_hash)
                        .cloned()
                        .expect("every chunk was either stored or embedded above")
                }
            };
            indexed.push(IndexedChunk { chunk, vector });
        }
        stored.retain(|hash, _| !kept_hashes.contains(hash));
        let n_removed = stored.len().min(n_before);

        // Catalog first to a temporary file, then the index, then the catalog rename: if the
        // index swap fails, the old catalog stays with the old index.
        let catalog_path = self.catalog_path(&merchant);
        let tmp = catalog_path.with_extension(format!("json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec(&data).map_err(|err| KnowledgeError::Index(err.to_string()))?;
        fs::write(&tmp, bytes).map_err(|err| KnowledgeError::io(&tmp, err))?;
        let sentences_path = self.sentences_path(&merchant);
        let sentences_tmp = sentences_path.with_extension(format!("bin.tmp-{}", std::process::id()));
        if let Err(err) = fs::write(&sentences_tmp, sentence_store.encode()) {
            let _ = fs::remove_file(&tmp);
            return Err(KnowledgeError::io(&sentences_tmp, err));
        }
        if let Err(err) = self.index.replace(&merchant, &model_id, indexed).await {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&sentences_tmp);
            return Err(err);
        }
        // The sentence store goes in before the catalog: it is keyed by sentence text, so
        // one that is newer or older than the index it serves is slower (misses embed), never wrong.
        fs::rename(&sentences_tmp, &sentences_path)
            .map_err(|err| KnowledgeError::io(&sentences_path, err))?;
        fs::rename(&tmp, &catalog_path).map_err(|err| KnowledgeError::io(&catalog_path, err))?;

        let report = IngestReport {
            merchant_id: merchant.clone(),
            n_products: data.products.len(),
            n_policies: data.policies.len(),
            n_orders: data.orders.len(),
            n_chunks,
            n_embedded: to_embed.len(),
            n_reused,
            n_removed,
            n_sentences: sentence_store.len(),
            n_sentences_embedded,
            elapsed: started.elapsed(),
        };
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(merchant.clone(), Arc::new(data));
        self.sentences
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(merchant.clone(), Arc::new(sentence_store));
        self.unreadable_catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&merchant);
        tracing::info!(
            merchant = %report.merchant_id,
            chunks = report.n_chunks,
            embedded = report.n_embedded,
            reused = report.n_reused,
            removed = report.n_removed,
            sentences = report.n_sentences,
            sentences_embedded = report.n_sentences_embedded,
            "ingested"
        );
        Ok(report)
    }

    fn catalog_path(&self, merchant: &MerchantId) -> PathBuf {
        self.catalog_dir.join(format!("{merchant}.json"))
    }

    fn sentences_path(&self, merchant: &MerchantId) -> PathBuf {
        self.catalog_dir.join(format!("{merchant}.sentences.bin"))
    }

    /// Embeds one batch on a blocking thread, checking the model returned a vector per text.
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let n = texts.len();
        let embedder = self.embedder.clone();
        let vectors = tokio::task::spawn_blocking(move || embedder.embed(&texts))
            .await
            .map_err(|err| KnowledgeError::Embedding(format!("embedding task failed: {err}")))??;
        if vectors.len() != n {
            return Err(KnowledgeError::Embedding(format!(
                "model returned {} vectors for {n} texts",
                vectors.len()
            )));
        }
        Ok(vectors)
    }

    /// The merchant's passage-sentence vectors as last ingested, for ranking sentences by
    /// meaning without embedding them per question. A merchant ingested before the store
    /// existed, or whose file cannot be read, gets an empty store (logged): the responder
    /// then embeds the sentences it needs, as it did before, so this never fails a reply.
    pub fn sentence_vectors(&self, merchant: &MerchantId) -> Arc<SentenceVectors> {
        if let Some(store) = self
            .sentences
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
        {
            return store.clone();
        }
        let path = self.sentences_path(merchant);
        let store = match fs::read(&path) {
            Ok(bytes) => SentenceVectors::decode(&bytes).unwrap_or_else(|problem| {
                tracing::warn!(%merchant, path = %path.display(), %problem, "unreadable sentence vectors; re-run `parley ingest` to rebuild them");
                SentenceVectors::default()
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => SentenceVectors::default(),
            Err(err) => {
                tracing::warn!(%merchant, path = %path.display(), error = %err, "sentence vectors not readable");
                SentenceVectors::default()
            }
        };
        let store = Arc::new(store);
        self.sentences
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(merchant.clone())
            .or_insert(store)
            .clone()
    }

    /// The merchant's config, products and orders as last ingested.
    pub fn merchant(&self, merchant: &MerchantId) -> Result<Arc<MerchantData>> {
        if let Some(data) = self
            .catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
        {
            return Ok(data.clone());
        }
        let path = self.catalog_path(merchant);
        if !path.exists() {
            return Err(KnowledgeError::UnknownMerchant(merchant.to_string()));
        }
        let read = fs::read(&path)
            .map_err(|err| KnowledgeError::io(&path, err))
            .and_then(|bytes| {
                serde_json::from_slice::<MerchantData>(&bytes).map_err(|err| {
                    KnowledgeError::invalid(
                        &path,
                        format!("unreadable catalog ({err}); re-run `parley ingest` for this merchant"),
                    )
                })
            });
        let data = match read {
            Ok(data) => Arc::new(data),
            Err(err) => {
                self.unreadable_catalogs
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(merchant.clone(), err.to_string());
                return Err(err);
            }
        };
        self.unreadable_catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(merchant);
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(merchant.clone(), data.clone());
        Ok(data)
    }

    /// Every merchant with an ingested catalog.
    /// Merchants that cannot be served right now because their catalog or index could not
    /// be read (when last tried), with why; sorted, one entry per merchant.
    pub fn unavailable_merchants(&self) -> Vec<(MerchantId, String)> {
        let mut unavailable: std::collections::BTreeMap<MerchantId, String> = self
            .unreadable_catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .into_iter()
            .collect();
        for (merchant, problem) in self.index.unreadable_merchants() {
            unavailable.entry(merchant).or_insert(problem);
        }
        unavailable.into_iter().collect()
    }

    pub fn merchant_ids(&self) -> Result<Vec<MerchantId>> {
        let entries =
            fs::read_dir(&self.catalog_dir).map_err(|err| KnowledgeError::io(&self.catalog_dir, err))?;
        let mut ids: Vec<MerchantId> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let stem = name.to_str()?.strip_suffix(".json")?.to_owned();
                MerchantId::parse(&stem).ok()
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Embeds a question (on a blocking thread) for [`KnowledgeBase::search_with_vector`].
    pub async fn embed_query(&self, question: &str) -> Result<Vec<f32>> {
        let embedder = self.embedder.clone();
        let texts = vec![question.to_owned()];
        let mut vectors = tokio::task::spawn_blocking(move || embedder.embed(&texts))
            .await
            .map_err(|err| KnowledgeError::Embedding(format!("embedding task failed: {err}")))??;
        vectors
            .pop()
            .ok_or_else(|| KnowledgeError::Embedding("model returned no vector".into()))
    }

    /// The `limit` passages that best answer `question` for this merchant only.
    pub async fn search(
        &self,
        merchant: &MerchantId,
        question: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let vector = self.embed_query(question).await?;
        self.search_with_vector(merchant, question, vector, limit).await
    }

    pub async fn search_with_vector(
        &self,
        merchant: &MerchantId,
        question: &str,
        vector: Vec<f32>,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let query = SearchQuery {
            text: question.to_owned(),
            vector,
            limit,
        };
        self.index.search(merchant, &query).await
    }
}
