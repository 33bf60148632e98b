//! Top-5 hybrid retrieval latency at 1k, 10k and 100k chunks, per index backend.
//!
//! Embedding 100k passages would take hours on a 2-core machine, so the large indexes are
//! filled with synthetic passages recombined from fixture sentences, whose vectors are real
//! embeddings of fixture passages plus noise; query vectors are real embeddings of the
//! labelled retrieval questions. Dense search cost depends only on count and dimension, and
//! the lexical side sees a realistic vocabulary, so latencies are representative. Query
//! embedding is measured separately: it is the same for every backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parley_knowledge::chunk::chunk_merchant;
use parley_knowledge::embed::normalize;
use parley_knowledge::{
    Chunk, ChunkConfig, Embedder, IndexedChunk, KnowledgeIndex, MerchantData, MerchantId, SearchQuery,
};
use serde_json::{Value, json};

use crate::stats::{Percentiles, Spread};

/// xorshift64*: deterministic, dependency-free randomness for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn gauss(&mut self) -> f32 {
        // Sum of uniforms: close enough to normal for noise.
        (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum::<f32>()
            - 2.0
    }
}

/// Real fixture passages with their real vectors, and real questions with theirs.
pub struct Corpus {
    model_id: String,
    pool: Vec<Chunk>,
    pool_vectors: Vec<Vec<f32>>,
    sentences: Vec<String>,
    questions: Vec<(String, Vec<f32>)>,
}

impl Corpus {
    pub fn load(root: &Path, embedder: &Arc<dyn Embedder>) -> Self {
        let mut pool: Vec<Chunk> = Vec::new();
        for merchant in ["trailhead", "glowleaf"] {
            let data = MerchantData::load(&root.join("fixtures/merchants").join(merchant)).unwrap();
            pool.extend(chunk_merchant(&data, &ChunkConfig::default()));
        }
        let texts: Vec<String> = pool.iter().map(Chunk::embedding_text).collect();
        let pool_vectors = embedder.embed(&texts).unwrap();
        let sentences = pool
            .iter()
            .flat_map(|c| {
                parley_knowledge::text::split_sentences(&c.text)
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut question_texts = Vec::new();
        for merchant in ["trailhead", "glowleaf"] {
            let text =
                std::fs::read_to_string(root.join(format!("fixtures/retrieval/{merchant}.yaml"))).unwrap();
            for line in text.lines() {
                if let Some(q) = line.trim().strip_prefix("- q:") {
                    question_texts.push(q.trim().trim_matches('"').to_owned());
                }
            }
        }
        let vectors = embedder.embed(&question_texts).unwrap();
        Self {
            model_id: embedder.model_id().to_owned(),
            pool,
            pool_vectors,
            sentences,
            questions: question_texts.into_iter().zip(vectors).collect(),
        }
    }

    pub fn questions(&self) -> impl Iterator<Item = &str> {
        self.questions.iter().map(|(q, _)| q.as_str())
    }

    /// `n` synthetic chunks for `merchant`, the same ones for the same `n` every run.
    pub fn synthesize(&self, merchant: &MerchantId, n: usize) -> Vec<IndexedChunk> {
        let mut rng = Rng(0x5eed ^ n as u64);
        (0..n)
            .map(|idx| {
                let base = rng.below(self.pool.len());
                let mut chunk = self.pool[base].clone();
                let n_sentences = 2 + rng.below(4);
                chunk.text = (0..n_sentences)
                    .map(|_| self.sentences[rng.below(self.sentences.len())].as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                chunk.merchant_id = merchant.clone();
                chunk.id = format!("{idx:032x}");
                chunk.content_hash = format!("{idx:064x}");
                let mut vector: Vec<f32> = self.pool_vectors[base]
                    .iter()
                    .map(|x| x + 0.02 * rng.gauss())
                    .collect();
                normalize(&mut vector);
                IndexedChunk { chunk, vector }
            })
            .collect()
    }
}

/// Loads `n` chunks into `index` (the build rate is reported) and times every question as a
/// top-5 hybrid search, `repeats` times after one warm-up pass.
pub async fn measure(corpus: &Corpus, index: &dyn KnowledgeIndex, n: usize, repeats: usize) -> Value {
    let merchant = MerchantId::parse(&format!("bench-{n}")).unwrap();
    let chunks = corpus.synthesize(&merchant, n);
    let started = Instant::now();
    index.replace(&merchant, &corpus.model_id, chunks).await.unwrap();
    let build_rate = n as f64 / started.elapsed().as_secs_f64();

    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for round in 0..=repeats {
        let mut times = Vec::with_capacity(corpus.questions.len());
        for (text, vector) in &corpus.questions {
            let query = SearchQuery {
                text: text.clone(),
                vector: vector.clone(),
                limit: 5,
            };
            let started = Instant::now();
            let hits = index.search(&merchant, &query).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(hits.len(), 5, "a {n}-chunk index must fill a top-5");
        }
        if round > 0 {
            let p = Percentiles::of(times);
            p50s.push(p.p50);
            p99s.push(p.p99);
        }
    }
    json!({
        "backend": index.backend_name(),
        "chunks": n,
        "queries_per_repeat": corpus.questions.len(),
        "repeats": repeats,
        "index_build_chunks_per_s": Spread::of([build_rate]).json(),
        "query_p50_ms": Spread::of(p50s).json(),
        "query_p99_ms": Spread::of(p99s).json(),
    })
}

/// Query embedding (one question at a time, as the agent does), the same for every backend.
pub fn query_embedding(corpus: &Corpus, embedder: &Arc<dyn Embedder>, repeats: usize) -> Value {
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let mut times = Vec::new();
        for question in corpus.questions() {
            let started = Instant::now();
            embedder.embed(&[question.to_owned()]).unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let p = Percentiles::of(times);
        p50s.push(p.p50);
        p99s.push(p.p99);
    }
    json!({ "p50_ms": Spread::of(p50s).json(), "p99_ms": Spread::of(p99s).json() })
}
