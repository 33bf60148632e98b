//! Pipeline latency without LLM time: every customer message of the fixture eval suites,
//! each as a fresh conversation, through the whole agent (compliance, embedding, classifier,
//! retrieval, tools, the offline responder, guardrails). Pass 1 starts with cold caches; pass 2
//! is the steady state (sentence vectors cached). Figures only; nothing is asserted.

use std::sync::Arc;
use std::time::Instant;

use parley_agent::classifier::builtin_examples;
use parley_agent::{Agent, AgentConfig, Classifier, ConversationState, Decision, Inbound};
use parley_knowledge::{FastEmbedder, KnowledgeBase, MerchantId};
use parley_prompts::Prompts;

use parley_testkit::workspace_root;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (merchant, phone, message) for every turn of the fixture suites.
fn messages() -> Vec<(String, Option<String>, String)> {
    let mut out = Vec::new();
    for name in ["trailhead", "glowleaf"] {
        let path = workspace_root().join(format!("fixtures/evals/{name}.yaml"));
        let suite: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let merchant = suite["merchant"].as_str().unwrap().to_owned();
        for case in suite["cases"].as_sequence().unwrap() {
            let phone = case["customer"].as_str().map(str::to_owned);
            for turn in case["turns"].as_sequence().unwrap() {
                out.push((
                    merchant.clone(),
                    phone.clone(),
                    turn["say"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

fn report(label: &str, decisions: &[Decision]) {
    type Stage = (&'static str, fn(&Decision) -> u64);
    let stages: [Stage; 8] = [
        ("total", |d| d.timings.total_us),
        ("compliance", |d| d.timings.compliance_us),
        ("embed", |d| d.timings.embed_us),
        ("classify", |d| d.timings.classify_us),
        ("retrieve", |d| d.timings.retrieve_us),
        ("tools", |d| d.timings.tools_us),
        ("generate", |d| d.timings.generate_us),
        ("guardrails", |d| d.timings.guardrails_us),
    ];
    println!("{label} ({} messages):", decisions.len());
    for (name, get) in stages {
        let mut values: Vec<f64> = decisions.iter().map(|d| get(d) as f64 / 1000.0).collect();
        values.sort_by(f64::total_cmp);
        println!(
            "  {name:<11} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            percentile(&values, 0.5),
            percentile(&values, 0.99),
            values.last().copied().unwrap_or(0.0)
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = parley_testkit::checkout_embedder_config();
        let embedder = Arc::new(FastEmbedder::load(&config).expect("run `make models` first"));
        let knowledge =
            KnowledgeBase::open_embedded(embedder.clone(), &workspace_root().join("target/parley-bench-kb"))
                .unwrap();
        for merchant in ["trailhead", "glowleaf"] {
            knowledge
                .ingest_dir(
                    &workspace_root().join("fixtures/merchants").join(merchant),
                    &|_, _| {},
                )
                .await
                .unwrap();
        }
        let started = Instant::now();
        let classifier_embedder = embedder.clone();
        let classifier = tokio::task::spawn_blocking(move || {
            Classifier::train(classifier_embedder.as_ref(), builtin_examples()).unwrap()
        })
        .await
        .unwrap();
        println!(
            "classifier: {} examples embedded and trained in {:.2} s",
            classifier.n_examples(),
            started.elapsed().as_secs_f64()
        );
        let agent = Agent::new(
            Arc::new(knowledge),
            Arc::new(classifier),
            None,
            Arc::new(Prompts::builtin()),
            AgentConfig::default(),
        );
        let messages = messages();
        println!(
            "pipeline without LLM time, {} cores, one ONNX thread, release build",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        for pass in ["pass 1 (cold caches)", "pass 2 (warm)"] {
            let mut decisions = Vec::with_capacity(messages.len());
            for (merchant, phone, text) in &messages {
                let merchant = MerchantId::parse(merchant).unwrap();
                let inbound = Inbound {
                    merchant: &merchant,
                    customer_phone: phone.as_deref(),
                    text,
                };
                decisions.push(agent.decide(inbound, ConversationState::default()).await.unwrap());
            }
            report(pass, &decisions);
        }
    });
}
