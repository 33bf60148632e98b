//! Ingestion throughput on a 10k-product catalog, generated deterministically from the
//! fixture merchants' products (new ids, handles, SKUs and titles; each description cut to
//! its opening paragraph, as large catalogs' are), against the raw throughput of the same
//! embedding model on the same texts (the chunks and their passage sentences, which ingest
//! embeds too) on the same machine in the same run: the ratio is what chunking, sentence
//! splitting, hashing and indexing cost on top of the model.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use parley_knowledge::chunk::chunk_merchant;
use parley_knowledge::sentences::passage_sentences;
use parley_knowledge::{ChunkConfig, Embedder, FastEmbedder, KnowledgeBase, MerchantData};
use serde_json::{Value, json};

use crate::stats::Spread;

const SERIES: [&str; 12] = [
    "Alpine", "Coastal", "Summit", "Canyon", "Meadow", "Glacier", "Harbor", "Prairie", "Timber", "Desert",
    "Aurora", "Cedar",
];

/// Writes a merchant directory with `n` products into `dir`, from the fixtures' products.
pub fn write_catalog(root: &Path, dir: &Path, n: usize) {
    let mut templates = Vec::new();
    for merchant in ["trailhead", "glowleaf"] {
        let path = root
            .join("fixtures/merchants")
            .join(merchant)
            .join("products.json");
        let products: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        templates.extend(products["products"].as_array().unwrap().iter().cloned());
    }
    let mut products = Vec::with_capacity(n);
    for i in 0..n {
        let mut product = templates[i % templates.len()].clone();
        let series = SERIES[(i / templates.len()) % SERIES.len()];
        let edition = i / (templates.len() * SERIES.len()) + 1;
        let title = format!(
            "{} {series} {edition}",
            product["title"].as_str().unwrap_or("Product")
        );
        product["id"] = json!(9_000_000_000u64 + i as u64);
        product["handle"] = json!(format!("bench-{i}"));
        product["title"] = json!(title);
        if let Some(body) = product["body_html"].as_str() {
            let first = body.split("</p>").next().unwrap_or(body);
            product["body_html"] = json!(format!("{first}</p>"));
        }
        if let Some(variants) = product["variants"].as_array_mut() {
            for (v, variant) in variants.iter_mut().enumerate() {
                variant["id"] = json!(9_500_000_000u64 + (i * 64 + v) as u64);
                variant["product_id"] = json!(9_000_000_000u64 + i as u64);
                if let Some(sku) = variant["sku"].as_str() {
                    variant["sku"] = json!(format!("{sku}-{i}"));
                }
            }
        }
        products.push(product);
    }
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("products.json"),
        serde_json::to_string(&json!({ "products": products })).unwrap(),
    )
    .unwrap();
    let trailhead = root.join("fixtures/merchants/trailhead");
    let config = std::fs::read_to_string(trailhead.join("merchant.toml"))
        .unwrap()
        .replace("id = \"trailhead\"", "id = \"bench-catalog\"")
        .replace("+18005550101", "+18005550199");
    std::fs::write(dir.join("merchant.toml"), config).unwrap();
    for entry in std::fs::read_dir(trailhead.join("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("policies").join(entry.file_name())).unwrap();
    }
}

/// Ingests the catalog once into a fresh index (every chunk through the model; the rate is
/// taken per tenth of the run, so one long run still shows its spread), then embeds a sample
/// of the same chunks raw, `repeats` times. A fresh uncached model serves both, so no vector
/// comes from a cache.
pub async fn run(root: &Path, n_products: usize, repeats: usize) -> Value {
    let embedder: Arc<dyn Embedder> =
        Arc::new(FastEmbedder::load(&parley_testkit::checkout_embedder_config()).expect("run `make models`"));
    let catalog = tempfile::tempdir().unwrap();
    write_catalog(root, catalog.path(), n_products);
    let data = MerchantData::load(catalog.path()).unwrap();
    let chunks = chunk_merchant(&data, &ChunkConfig::default());
    let mut texts: Vec<String> = chunks.iter().map(|chunk| chunk.embedding_text()).collect();
    let mut seen = std::collections::HashSet::new();
    for chunk in &chunks {
        for sentence in passage_sentences(&chunk.text) {
            if seen.insert(sentence.clone()) {
                texts.push(sentence);
            }
        }
    }
    // Every k-th text: a sample of 500 with the ingest's mix of chunks and sentences.
    let step = (texts.len() / 500).max(1);
    let sample: Vec<String> = texts.iter().step_by(step).take(500).cloned().collect();

    let data_dir = tempfile::tempdir().unwrap();
    let kb = KnowledgeBase::open_embedded(embedder.clone(), data_dir.path()).unwrap();
    let marks: Mutex<Vec<(usize, Instant)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let report = kb
        .ingest_dir(catalog.path(), &|done, _| {
            marks.lock().unwrap().push((done, Instant::now()))
        })
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let n_texts = report.n_embedded + report.n_sentences_embedded;
    let overall = n_texts as f64 / elapsed;
    // Rates over tenths of the embedding progress (chunks, then sentences).
    let marks = marks.into_inner().unwrap();
    let mut window_rates = Vec::new();
    let (mut last_done, mut last_at) = (0, started);
    for (done, at) in marks {
        if done - last_done >= n_texts.max(10) / 10 {
            window_rates.push((done - last_done) as f64 / (at - last_at).as_secs_f64());
            (last_done, last_at) = (done, at);
        }
    }

    let mut raw_rates = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        embedder.embed(&sample).unwrap();
        raw_rates.push(sample.len() as f64 / started.elapsed().as_secs_f64());
    }
    let raw = Spread::of(raw_rates.iter().copied());
    json!({
        "products": n_products,
        "chunks": report.n_chunks,
        "sentences": report.n_sentences,
        "ingest_s": elapsed,
        "ingest_texts_per_s": overall,
        "ingest_texts_per_s_by_tenth": Spread::of(window_rates).json(),
        "raw_embed_sample": sample.len(),
        "raw_repeats": repeats,
        "raw_embed_texts_per_s": raw.json(),
        "ingest_to_raw_ratio": overall / raw.median,
        "model": embedder.model_id(),
        "batch_size": parley_testkit::checkout_embedder_config().batch_size,
        "bench_process_peak_rss_mib": crate::stats::peak_rss_mib("self"),
    })
}
