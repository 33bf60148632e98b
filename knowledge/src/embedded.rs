//! The embedded knowledge index: one persistent snapshot file per merchant under the data
//! directory, exact dense search in memory, and a tantivy BM25 index built in RAM at load.
//! Exact search is the right call at merchant scale (thousands to ~100k chunks): no
//! approximation error, no index to tune, and it stays within a few milliseconds.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::{Index, IndexReader, ReloadPolicy, Term, doc};

use crate::chunk::Chunk;
use crate::error::{KnowledgeError, Result};
use crate::index::{
    Export, IndexedChunk, KnowledgeIndex, SearchHit, SearchQuery, check_replacement, promote_exact,
    reciprocal_rank_fusion,
};
use crate::lexical::{analyzer, chunk_skus, query_codes, query_terms};
use crate::merchant::MerchantId;

/// Bumped whenever the snapshot layout changes; older files are rejected with a clear message.
const SNAPSHOT_FORMAT: u32 = 1;
const ANALYZER: &str = "parley_en";

/// How many candidates each side contributes to fusion. Deep enough that a chunk ranked
/// modestly by both signals still surfaces; shallow enough to stay cheap.
const CANDIDATES_PER_SIDE: usize = 50;

/// One merchant's index on disk (public for the snapshot decoder's fuzz target).
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    format: u32,
    model_id: String,
    dimension: usize,
    chunks: Vec<Chunk>,
    /// Row-major, `chunks.len() * dimension` values.
    vectors: Vec<f32>,
}

/// One merchant's searchable content, immutable once built; a re-ingest builds a new one.
struct Shard {
    model_id: String,
    dimension: usize,
    chunks: Vec<Chunk>,
    vectors: Vec<f32>,
    lexical: LexicalIndex,
    /// Lowercased SKU -> rows mentioning it. A customer who types a SKU has named the item
    /// exactly; BM25 alone splits `SLJ-M-BLK-S` into common pieces shared by sibling products.
    skus: HashMap<String, Vec<usize>>,
}

struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    body: Field,
}

pub struct EmbeddedIndex {
    dir: PathBuf,
    shards: RwLock<HashMap<MerchantId, Arc<Shard>>>,
    /// Snapshots that failed to load, with the file's size and time when they did: the same
    /// bad file is not read again on every question, and a changed file is retried.
    unreadable: RwLock<HashMap<MerchantId, (FileStamp, String)>>,
}

/// A file's size and modification time, enough to tell a rewritten file from the same one.
type FileStamp = (u64, Option<std::time::SystemTime>);

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

impl std::fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIndex").field("dir", &self.dir).finish()
    }
}

impl EmbeddedIndex {
    /// Opens (creating if needed) the index directory. Shards load lazily on first use, so
    /// start-up time does not grow with the number of merchants.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|err| KnowledgeError::io(&dir, err))?;
        Ok(Self {
            dir,
            shards: RwLock::new(HashMap::new()),
            unreadable: RwLock::new(HashMap::new()),
        })
    }

    fn snapshot_path(&self, merchant: &MerchantId) -> PathBuf {
        self.dir.join(format!("{merchant}.snapshot"))
    }

    fn shard(&self, merchant: &MerchantId) -> Result<Arc<Shard>> {
        if let Some(shard) = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
        {
            return Ok(shard.clone());
        }
        let path = self.snapshot_path(merchant);
        let Some(file_stamp) = stamp(&path) else {
            return Err(KnowledgeError::UnknownMerchant(merchant.to_string()));
        };
        if let Some((seen, problem)) = self
            .unreadable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
            && *seen == file_stamp
        {
            return Err(KnowledgeError::Index(problem.clone()));
        }
        let shard = match load_snapshot(&path) {
            Ok(shard) => Arc::new(shard),
            Err(err) => {
                tracing::error!(%merchant, error = %err, "a merchant's index snapshot is unreadable");
                self.unreadable
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(merchant.clone(), (file_stamp, err.to_string()));
                return Err(err);
            }
        };
        self.unreadable
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(merchant);
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        // Another caller may have loaded it meanwhile; keep whichever is there.
        Ok(shards.entry(merchant.clone()).or_insert(shard).clone())
    }
}

/// Reads a snapshot defensively: whatever the file holds (truncation, garbage, a hostile
/// edit), decoding fails with an error naming it and never panics or allocates more than the
/// file's own size. A length prefix read from garbage can claim terabytes; the limit makes
/// bincode refuse it before allocating.
fn load_snapshot(path: &Path) -> Result<Shard> {
    let bytes = fs::read(path).map_err(|err| KnowledgeError::io(path, err))?;
    let snapshot = decode_snapshot(&bytes).map_err(|problem| {
        KnowledgeError::Index(format!(
            "{}: unreadable snapshot ({problem}); re-run `parley ingest` for this merchant",
            path.display()
        ))
    })?;
    build_shard(
        snapshot.model_id,
        snapshot.dimension,
        snapshot.chunks,
        snapshot.vectors,
    )
}

/// Decodes bincode written by `bincode::serialize`/`serialize_into` (fixed-width integers),
/// never allocating more than the input's length: a length prefix read from garbage is
/// refused instead of believed. Every stored file the knowledge crate reads goes through it.
pub(crate) fn decode_bounded<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|err| err.to_string())
}

/// Decodes and validates a snapshot's bytes; the error says what is wrong with them.
pub fn decode_snapshot(bytes: &[u8]) -> std::result::Result<Snapshot, String> {
    let snapshot: Snapshot = decode_bounded(bytes)?;
    if snapshot.format != SNAPSHOT_FORMAT {
        return Err(format!(
            "format {} is not supported (expected {SNAPSHOT_FORMAT})",
            snapshot.format
        ));
    }
    if snapshot.dimension == 0 && !snapshot.chunks.is_empty() {
        return Err("vector dimension is 0".into());
    }
    let expected = snapshot.chunks.len().checked_mul(snapshot.dimension);
    if expected != Some(snapshot.vectors.len()) {
        return Err(format!(
            "{} vector values for {} chunks of dimension {}: truncated or corrupt",
            snapshot.vectors.len(),
            snapshot.chunks.len(),
            snapshot.dimension
        ));
    }
    Ok(snapshot)
}

fn build_shard(model_id: String, dimension: usize, chunks: Vec<Chunk>, vectors: Vec<f32>) -> Result<Shard> {
    let lexical = LexicalIndex::build(&chunks)?;
    let mut skus: HashMap<String, Vec<usize>> = HashMap::new();
    for (row, chunk) in chunks.iter().enumerate() {
        for sku in chunk_skus(&chunk.text) {
            let rows = skus.entry(sku).or_default();
            if rows.last() != Some(&row) {
                rows.push(row);
            }
        }
    }
    Ok(Shard {
        model_id,
        dimension,
        chunks,
        vectors,
        lexical,
        skus,
    })
}

fn index_err(err: tantivy::TantivyError) -> KnowledgeError {
    KnowledgeError::Index(format!("lexical index: {err}"))
}

impl LexicalIndex {
    fn build(chunks: &[Chunk]) -> Result<Self> {
        let mut schema = Schema::builder();
        let body_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let body = schema.add_text_field("body", body_options);
        let row = schema.add_u64_field("row", FAST);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, analyzer());
        // One indexing thread: ingestion already keeps the other core busy embedding.
        let mut writer = index.writer_with_num_threads(1, 50_000_000).map_err(index_err)?;
        for (row_idx, chunk) in chunks.iter().enumerate() {
            writer
                .add_document(doc!(body => chunk.embedding_text(), row => row_idx as u64))
                .map_err(index_err)?;
        }
        writer.commit().map_err(index_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err)?;
        Ok(Self { index, reader, body })
    }

    /// BM25 over the query's analysed terms, any of which may match (OR semantics: SMS
    /// questions are short and rarely share every word with the answer).
    fn search(&self, text: &str, limit: usize) -> Result<Vec<(usize, f32)>> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(ANALYZER)
            .ok_or_else(|| KnowledgeError::Index("analyzer missing".into()))?;
        let terms = query_terms(&mut analyzer, text);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|term| {
                let query: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.body, term),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, query)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &tantivy::collector::TopDocs::with_limit(limit))
            .map_err(index_err)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let rows = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("row")
                .map_err(index_err)?;
            if let Some(row) = rows.first(address.doc_id) {
                hits.push((row as usize, score));
            }
        }
        Ok(hits)
    }
}

impl Shard {
    fn dense_search(&self, query: &[f32], limit: usize) -> Vec<(usize, f32)> {
        if query.len() != self.dimension || self.chunks.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .chunks_exact(self.dimension)
            .map(|vector| vector.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .collect();
        let limit = limit.min(scored.len());
        if limit < scored.len() {
            scored.select_nth_unstable_by(limit, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(limit);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let depth = CANDIDATES_PER_SIDE.max(query.limit);
        let dense = self.dense_search(&query.vector, depth);
        let lexical = self.lexical.search(&query.text, depth)?;
        let dense_scores: HashMap<usize, f32> = dense.iter().copied().collect();
        let lexical_scores: HashMap<usize, f32> = lexical.iter().copied().collect();
        let mut fused = reciprocal_rank_fusion(&[dense, lexical], depth * 2);
        let mut exact: Vec<usize> = query_codes(&query.text)
            .iter()
            .filter_map(|code| self.skus.get(code))
            .flatten()
            .copied()
            .collect();
        exact.sort_unstable();
        exact.dedup();
        promote_exact(&mut fused, &exact);
        fused.truncate(query.limit);
        Ok(fused
            .into_iter()
            .map(|(row, score)| SearchHit {
                chunk: self.chunks[row].clone(),
                score,
                dense_score: dense_scores.get(&row).copied().or_else(|| {
                    // Lexical-only hits still get their true similarity: cheap for one row.
                    let vector = self
                        .vectors
                        .get(row * self.dimension..(row + 1) * self.dimension)?;
                    (query.vector.len() == self.dimension)
                        .then(|| vector.iter().zip(&query.vector).map(|(a, b)| a * b).sum())
                }),
                lexical_score: lexical_scores.get(&row).copied(),
            })
            .collect())
    }
}

#[async_trait]
impl KnowledgeIndex for EmbeddedIndex {
    fn backend_name(&self) -> &'static str {
        "embedded"
    }

    async fn stored_vectors(
        &self,
        merchant: &MerchantId,
        model_id: &str,
    ) -> Result<HashMap<String, Vec<f32>>> {
        let shard = match self.shard(merchant) {
            Ok(shard) => shard,
            Err(KnowledgeError::UnknownMerchant(_)) => return Ok(HashMap::new()),
            // A corrupt or outdated snapshot must not block a fresh ingest that replaces it.
            Err(err) => {
                tracing::warn!(%merchant, error = %err, "ignoring unreadable snapshot; re-embedding everything");
                return Ok(HashMap::new());
            }
        };
        if shard.model_id != model_id {
            return Ok(HashMap::new());
        }
        Ok(shard
            .chunks
            .iter()
            .zip(shard.vectors.chunks_exact(shard.dimension.max(1)))
            .map(|(chunk, vector)| (chunk.content_hash.clone(), vector.to_vec()))
            .collect())
    }

    async fn replace(&self, merchant: &MerchantId, model_id: &str, chunks: Vec<IndexedChunk>) -> Result<()> {
        let dimension = check_replacement(merchant, &chunks)?;
        let mut vectors = Vec::with_capacity(chunks.len() * dimension);
        let mut plain_chunks = Vec::with_capacity(chunks.len());
        for indexed in chunks {
            vectors.extend_from_slice(&indexed.vector);
            plain_chunks.push(indexed.chunk);
        }
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT,
            model_id: model_id.to_owned(),
            dimension,
            chunks: plain_chunks,
            vectors,
        };
        // Write the new snapshot beside the old one and rename it into place: a crash at any
        // point leaves either the complete old file or the complete new one.
        let path = self.snapshot_path(merchant);
        let tmp = self
            .dir
            .join(format!(".{merchant}.snapshot.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(File::create(&tmp)?);
            bincode::serialize_into(&mut out, &snapshot).map_err(std::io::Error::other)?;
            out.flush()?;
            out.get_ref().sync_all()?;
            fs::rename(&tmp, &path)?;
            // Persist the rename itself.
            File::open(&self.dir)?.sync_all()
        };
        if let Err(err) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(KnowledgeError::io(&path, err));
        }
        let shard = build_shard(snapshot.model_id, dimension, snapshot.chunks, snapshot.vectors)?;
        self.shards
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(merchant.clone(), Arc::new(shard));
        self.unreadable
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(merchant);
        Ok(())
    }

    fn unreadable_merchants(&self) -> Vec<(MerchantId, String)> {
        let mut unreadable: Vec<_> = self
            .unreadable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(merchant, (_, problem))| (merchant.clone(), problem.clone()))
            .collect();
        unreadable.sort();
        unreadable
    }

    async fn search(&self, merchant: &MerchantId, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        self.shard(merchant)?.search(query)
    }

    async fn merchants(&self) -> Result<Vec<MerchantId>> {
        let entries = fs::read_dir(&self.dir).map_err(|err| KnowledgeError::io(&self.dir, err))?;
        let mut merchants = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".snapshot")) else {
                continue;
            };
            if let Ok(id) = MerchantId::parse(stem) {
                merchants.push(id);
            }
        }
        merchants.sort();
        Ok(merchants)
    }

    async fn chunk_count(&self, merchant: &MerchantId) -> Result<usize> {
        Ok(self.shard(merchant)?.chunks.len())
    }

    async fn export(&self, merchant: &MerchantId) -> Result<Export> {
        let shard = self.shard(merchant)?;
        Ok(Export {
            model_id: shard.model_id.clone(),
            chunks: shard
                .chunks
                .iter()
                .zip(shard.vectors.chunks_exact(shard.dimension.max(1)))
                .map(|(chunk, vector)| IndexedChunk {
                    chunk: chunk.clone(),
                    vector: vector.to_vec(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_bytes(format: u32, dimension: usize, n_chunks: usize, n_values: usize) -> Vec<u8> {
        let snapshot = Snapshot {
            format,
            model_id: "m".into(),
            dimension,
            chunks: Vec::new(),
            vectors: vec![0.5; n_values],
        };
        let mut bytes = bincode::serialize(&snapshot).unwrap();
        // Claim `n_chunks` chunks in the length prefix without any chunk bytes behind it.
        if n_chunks > 0 {
            let at = 4 + 8 + 1 + 8; // format, model id length, "m", dimension
            bytes[at..at + 8].copy_from_slice(&(n_chunks as u64).to_le_bytes());
        }
        bytes
    }

    #[test]
    fn garbage_and_hostile_snapshots_are_errors_not_panics_or_huge_allocations() {
        assert!(decode_snapshot(&snapshot_bytes(SNAPSHOT_FORMAT, 3, 0, 0)).is_ok());
        let garbage: Vec<u8> = (0..4096_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("garbage", garbage),
            ("wrong format", snapshot_bytes(SNAPSHOT_FORMAT + 1, 3, 0, 0)),
            ("values without chunks", snapshot_bytes(SNAPSHOT_FORMAT, 3, 0, 6)),
            // A length prefix claiming 2^40 chunks must not be believed (it once aborted the
            // process allocating a terabyte).
            ("huge chunk count", snapshot_bytes(SNAPSHOT_FORMAT, 3, 1 << 40, 0)),
        ];
        for (name, bytes) in cases {
            assert!(decode_snapshot(&bytes).is_err(), "{name}");
        }
        // A model id whose length prefix claims a terabyte.
        let mut huge_string = SNAPSHOT_FORMAT.to_le_bytes().to_vec();
        huge_string.extend_from_slice(&(1_u64 << 40).to_le_bytes());
        assert!(decode_snapshot(&huge_string).is_err());
    }

    #[tokio::test]
    async fn an_unreadable_snapshot_fails_that_merchant_only_and_a_replace_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(dir.path()).unwrap();
        let bad = MerchantId::parse("bad").unwrap();
        let good = MerchantId::parse("good").unwrap();
        index.replace(&good, "m", Vec::new()).await.unwrap();
        std::fs::write(dir.path().join("bad.snapshot"), b"\x01\x00\x00\x00garbage").unwrap();
        let query = SearchQuery {
            text: "anything".into(),
            vector: vec![1.0, 0.0],
            limit: 5,
        };
        for _ in 0..2 {
            assert!(matches!(
                index.search(&bad, &query).await,
                Err(KnowledgeError::Index(_))
            ));
        }
        assert!(index.search(&good, &query).await.is_ok());
        let unreadable = index.unreadable_merchants();
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].0, bad);
        // An ingest starts over instead of failing on the bad file.
        assert!(index.stored_vectors(&bad, "m").await.unwrap().is_empty());
        index.replace(&bad, "m", Vec::new()).await.unwrap();
        assert!(index.unreadable_merchants().is_empty());
        assert!(index.search(&bad, &query).await.unwrap().is_empty());
    }
}
