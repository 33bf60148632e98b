//! Retrieval benchmark: prints ingest throughput (chunks/s) and top-5 hybrid query latency
//! p50/p99 at 1k and 100k chunks. Figures only; nothing is asserted.
//!
//! Ingest is measured for real on the fixture merchants (every chunk through the model).
//! Embedding 100k passages would take hours on a 2-core machine, so the large indexes are
//! filled with synthetic passages recombined from fixture sentences, whose vectors are real
//! embeddings of fixture passages plus noise; query vectors are real embeddings of the
//! labelled questions. Dense search cost depends only on the count and dimension, and BM25
//! sees a realistic vocabulary, so latencies are representative.
//!
//! Run: `make bench` (or `cargo bench -p parley-knowledge --bench retrieval`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_knowledge::chunk::chunk_merchant;
use parley_knowledge::embed::normalize;
use parley_knowledge::{
    Chunk, ChunkConfig, EmbeddedIndex, Embedder, EmbedderConfig, FastEmbedder, IndexedChunk, KnowledgeBase,
    KnowledgeIndex, MerchantData, MerchantId, SearchQuery,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

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

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn questions() -> Vec<String> {
    let mut out = Vec::new();
    for merchant in ["trailhead", "glowleaf"] {
        let text =
            std::fs::read_to_string(root().join(format!("fixtures/retrieval/{merchant}.yaml"))).unwrap();
        for line in text.lines() {
            if let Some(q) = line.trim().strip_prefix("- q:") {
                out.push(q.trim().trim_matches('"').to_owned());
            }
        }
    }
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let models = root().join(".cache/models");
    let mut config = EmbedderConfig::new(models.join("all-MiniLM-L6-v2-int8"));
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        config.ort_library = Some(models.join("onnxruntime/libonnxruntime.so"));
    }
    let embedder: Arc<dyn Embedder> = Arc::new(FastEmbedder::load(&config).expect("run make models"));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "machine: {cores} cores; embedder {} (1 intra-op thread)",
        embedder.model_id()
    );

    // 1. Real ingest of the fixture merchants.
    let data_dir = tempfile::tempdir().unwrap();
    let kb = KnowledgeBase::open_embedded(embedder.clone(), data_dir.path()).unwrap();
    let mut total_chunks = 0;
    let started = Instant::now();
    for merchant in ["trailhead", "glowleaf"] {
        let report = kb
            .ingest_dir(&root().join("fixtures/merchants").join(merchant), &|_, _| {})
            .await
            .unwrap();
        total_chunks += report.n_chunks;
    }
    let cold = started.elapsed();
    let started = Instant::now();
    for merchant in ["trailhead", "glowleaf"] {
        kb.ingest_dir(&root().join("fixtures/merchants").join(merchant), &|_, _| {})
            .await
            .unwrap();
    }
    let warm = started.elapsed();
    println!(
        "ingest (fixtures, {total_chunks} chunks): cold {:.1} chunks/s ({:.1}s), unchanged re-ingest {:.0} chunks/s",
        total_chunks as f64 / cold.as_secs_f64(),
        cold.as_secs_f64(),
        total_chunks as f64 / warm.as_secs_f64()
    );

    // A pool of real passages and their real vectors to synthesise large indexes from.
    let mut pool: Vec<Chunk> = Vec::new();
    for merchant in ["trailhead", "glowleaf"] {
        let data = MerchantData::load(&root().join("fixtures/merchants").join(merchant)).unwrap();
        pool.extend(chunk_merchant(&data, &ChunkConfig::default()));
    }
    let mut pool_vectors = Vec::new();
    for chunk in &pool {
        let id = MerchantId::parse(chunk.merchant_id.as_str()).unwrap();
        let stored = kb.index().stored_vectors(&id, embedder.model_id()).await.unwrap();
        pool_vectors.push(stored[&chunk.content_hash].clone());
    }
    let sentences: Vec<String> = pool
        .iter()
        .flat_map(|c| {
            parley_knowledge::text::split_sentences(&c.text)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();

    let question_texts = questions();
    let query_vectors = embedder.embed(&question_texts).unwrap();
    let mut embed_times = Vec::new();
    for question in question_texts.iter().take(100) {
        let started = Instant::now();
        embedder.embed(std::slice::from_ref(question)).unwrap();
        embed_times.push(started.elapsed());
    }
    embed_times.sort();
    println!(
        "query embedding: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&embed_times, 0.5),
        percentile(&embed_times, 0.99)
    );

    for n_chunks in [1_000usize, 100_000] {
        let mut rng = Rng(0x5eed ^ n_chunks as u64);
        let merchant = MerchantId::parse("bench").unwrap();
        let mut chunks = Vec::with_capacity(n_chunks);
        for idx in 0..n_chunks {
            let base = rng.below(pool.len());
            let mut chunk = pool[base].clone();
            let n_sentences = 2 + rng.below(4);
            chunk.text = (0..n_sentences)
                .map(|_| sentences[rng.below(sentences.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            chunk.merchant_id = merchant.clone();
            chunk.id = format!("{idx:032x}");
            chunk.content_hash = format!("{idx:064x}");
            let mut vector: Vec<f32> = pool_vectors[base]
                .iter()
                .map(|x| x + 0.02 * rng.gauss())
                .collect();
            normalize(&mut vector);
            chunks.push(IndexedChunk { chunk, vector });
        }
        let index_dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(index_dir.path()).unwrap();
        let started = Instant::now();
        index
            .replace(&merchant, embedder.model_id(), chunks)
            .await
            .unwrap();
        let build = started.elapsed();
        let reopened = EmbeddedIndex::open(index_dir.path()).unwrap();
        let started = Instant::now();
        reopened.chunk_count(&merchant).await.unwrap();
        let load = started.elapsed();

        let mut times = Vec::new();
        for round in 0..3 {
            for (question, vector) in question_texts.iter().zip(&query_vectors) {
                let query = SearchQuery {
                    text: question.clone(),
                    vector: vector.clone(),
                    limit: 5,
                };
                let started = Instant::now();
                let hits = index.search(&merchant, &query).await.unwrap();
                let elapsed = started.elapsed();
                assert_eq!(hits.len(), 5);
                if round > 0 {
                    times.push(elapsed);
                }
            }
        }
        times.sort();
        println!(
            "{n_chunks:>7} chunks: index build+persist {:.0} chunks/s ({:.2}s), cold load {:.2}s, top-5 hybrid search (excl. query embedding) p50 {:.2} ms, p99 {:.2} ms over {} queries",
            n_chunks as f64 / build.as_secs_f64(),
            build.as_secs_f64(),
            load.as_secs_f64(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.len()
        );
    }
}
