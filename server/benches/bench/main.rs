//! `make bench`: the figures Parley competes on, from a release build on this machine. Prints a
//! table and writes `target/bench/bench.json`. Nothing is asserted about speed: the figures
//! are reported, each the median of repeated runs with its spread, and flagged when noisy.
//!
//! Sections (all by default; `PARLEY_BENCH_ONLY=load,stop,ingest,retrieval,evals,segments` picks some,
//! `PARLEY_BENCH_QUICK=1` shortens every run for a smoke test):
//! - load: signed Twilio webhooks into a real `parley serve` at 50/200/500 msg/s and at max,
//!   with an instant fake LLM, then once with the offline responder;
//! - stop: STOP webhooks, request → durable ledger commit → response;
//! - ingest: a 10k-product catalog against the raw embedding throughput;
//! - retrieval: top-5 hybrid queries at 1k/10k/100k chunks on the embedded index and on
//!   Qdrant (the real engine behind its gRPC API, in process over loopback);
//! - evals: wall time of `parley eval` over the fixture suites;
//! - segments: counting each built-in segment and a layered custom one over 100k customers.

mod ingest;
mod load;
mod retrieval;
mod segments;
mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_knowledge::qdrant::{QdrantConfig, QdrantIndex};
use parley_knowledge::{EmbeddedIndex, Embedder, FastEmbedder};
use serde_json::{Value, json};

use crate::load::{Responder, Server, Traffic};
use crate::stats::Spread;

fn root() -> PathBuf {
    parley_testkit::workspace_root()
}

struct Plan {
    quick: bool,
    only: Option<Vec<String>>,
}

impl Plan {
    fn from_env() -> Self {
        Self {
            quick: std::env::var("PARLEY_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
            only: std::env::var("PARLEY_BENCH_ONLY")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }

    fn repeats(&self) -> usize {
        if self.quick { 1 } else { 3 }
    }

    fn seconds(&self) -> f64 {
        if self.quick { 1.0 } else { 5.0 }
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

/// Every customer text of the fixture eval suites that is not a compliance keyword, paired
/// with the merchant number it goes to.
fn questions(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["trailhead", "glowleaf"] {
        let toml = std::fs::read_to_string(root.join("fixtures/merchants").join(name).join("merchant.toml"))
            .unwrap();
        let number = toml
            .lines()
            .find_map(|line| line.strip_prefix("sms_number = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let suite: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(root.join(format!("fixtures/evals/{name}.yaml"))).unwrap(),
        )
        .unwrap();
        for case in suite["cases"].as_sequence().unwrap() {
            for turn in case["turns"].as_sequence().unwrap() {
                let text = turn["say"].as_str().unwrap();
                if parley_agent::compliance::detect(text, false).is_none() {
                    out.push((number.clone(), text.to_owned()));
                }
            }
        }
    }
    out
}

async fn load_section(
    plan: &Plan,
    data_dir: &Path,
    traffic: &mut Traffic,
    responder: Responder,
    repeats: usize,
) -> Value {
    let server = Server::start(&root(), data_dir, responder).await;
    println!("load ({}): server pid {} ready", responder.label(), server.pid());
    // Warm-up, not reported: every distinct question once, so the figures are the steady state
    // (the responder caches the vectors of knowledge sentences it has scored before).
    let warm_up = traffic.batch(&server, traffic.distinct(), None);
    load::open_loop(&server, warm_up, 50.0).await;
    let mut levels = Vec::new();
    for rate in [50.0, 200.0, 500.0] {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let hooks = traffic.batch(&server, (rate * plan.seconds()) as usize, None);
            runs.push(load::open_loop(&server, hooks, rate).await);
        }
        let summary = load::summarize(&format!("{rate} msg/s"), &runs);
        levels.push(summary);
    }
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let duration = Duration::from_secs_f64(plan.seconds());
        runs.push(load::closed_loop(&server, traffic, 32, duration, 1_000).await);
    }
    let max = load::summarize("max (32 senders)", &runs);
    println!("  {}", max);
    levels.push(max);
    let (_, peak) = server.rss_mib();
    json!({ "responder": responder.label(), "levels": levels, "server_peak_rss_mib": peak })
}

async fn stop_section(plan: &Plan, data_dir: &Path, traffic: &mut Traffic) -> Value {
    let server = Server::start(&root(), data_dir, Responder::InstantLlm).await;
    let n = if plan.quick { 50 } else { 300 };
    let mut runs = Vec::new();
    let mut committed = 0;
    let mut sent = 0;
    for _ in 0..plan.repeats() {
        let hooks = traffic.batch(&server, n, Some("STOP"));
        let phones: Vec<String> = hooks.iter().map(|h| h.phone.clone()).collect();
        runs.push(load::open_loop(&server, hooks, 50.0).await);
        committed += server.ledger_rows(&phones).await;
        sent += phones.len();
    }
    let spread = |f: &dyn Fn(&load::RunResult) -> f64| Spread::of(runs.iter().map(f)).json();
    json!({
        "stops_sent": sent,
        "ledger_opt_outs_committed": committed,
        "errors": runs.iter().map(|r| r.errors).sum::<usize>(),
        "rate_msgs_per_s": 50,
        "p50_ms": spread(&|r| r.latency.p50),
        "p99_ms": spread(&|r| r.latency.p99),
        "confirmation_end_to_end_p50_ms": spread(&|r| r.end_to_end.p50),
    })
}

fn evals_section(repeats: usize) -> Value {
    let mut seconds = Vec::new();
    let out = tempfile::tempdir().unwrap();
    for _ in 0..repeats {
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_parley"))
            .current_dir(root())
            .env("RUST_LOG", "warn")
            .args([
                "eval",
                "--suite",
                "fixtures/evals/trailhead.yaml",
                "--suite",
                "fixtures/evals/glowleaf.yaml",
                "--out",
            ])
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "parley eval failed");
        seconds.push(started.elapsed().as_secs_f64());
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    json!({
        "suites": ["fixtures/evals/trailhead.yaml", "fixtures/evals/glowleaf.yaml"],
        "turns": report["turns"].clone(),
        "wall_s": Spread::of(seconds).json(),
    })
}

fn embedder() -> Arc<dyn Embedder> {
    parley_testkit::embedder()
}

fn uncached_embedder() -> Arc<dyn Embedder> {
    let config = parley_testkit::checkout_embedder_config();
    Arc::new(FastEmbedder::load(&config).expect("embedding model missing: run `make models`"))
}

/// Puts a measured section into the report, stamped with when and on which commit, so a
/// report merged from partial runs shows each section's age.
fn record(report: &mut Value, key: &str, mut section: Value) {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    section["measured_at_unix"] = json!(now);
    section["commit"] = json!(commit);
    println!("{key}: {section}");
    report[key] = section;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let plan = Plan::from_env();
    let repeats = plan.repeats();
    let out = root().join("target/bench");
    // A partial run (PARLEY_BENCH_ONLY) replaces its own sections and keeps the others.
    let previous: Option<Value> = plan
        .only
        .as_ref()
        .and_then(|_| std::fs::read_to_string(out.join("bench.json")).ok())
        .and_then(|text| serde_json::from_str(&text).ok());
    let mut report = previous.unwrap_or_else(|| json!({}));
    report["machine"] = machine();
    report["quick"] = json!(plan.quick);
    println!("machine: {}", report["machine"]);
    let scratch = tempfile::tempdir().unwrap();
    let mut traffic = Traffic::new(questions(&root()));

    if plan.runs("load") {
        let section = load_section(
            &plan,
            scratch.path(),
            &mut traffic,
            Responder::InstantLlm,
            repeats,
        )
        .await;
        record(&mut report, "webhook_load", section);
        let section = load_section(&plan, scratch.path(), &mut traffic, Responder::Offline, 1).await;
        record(&mut report, "webhook_load_offline", section);
    }
    if plan.runs("stop") {
        let section = stop_section(&plan, scratch.path(), &mut traffic).await;
        record(&mut report, "stop", section);
    }
    let embedder = embedder();
    if plan.runs("ingest") {
        let products = if plan.quick { 500 } else { 10_000 };
        let section = ingest::run(&root(), products, repeats).await;
        record(&mut report, "ingest", section);
    }
    if plan.runs("retrieval") {
        let corpus = retrieval::Corpus::load(&root(), &embedder);
        let mut results = Vec::new();
        let sizes: &[usize] = if plan.quick {
            &[1_000, 10_000]
        } else {
            &[1_000, 10_000, 100_000]
        };
        for &n in sizes {
            let dir = tempfile::tempdir().unwrap();
            let index = EmbeddedIndex::open(dir.path()).unwrap();
            let result = retrieval::measure(&corpus, &index, n, repeats).await;
            println!("retrieval: {result}");
            results.push(result);
        }
        // Qdrant: the real engine (qdrant-edge) behind Qdrant's gRPC API in this process,
        // reached over loopback by the same client production uses.
        let qdrant = parley_qdrant_testserver::spawn().await;
        for &n in sizes {
            let mut config = QdrantConfig::new(qdrant.url());
            config.collection = format!("bench_{n}");
            config.timeout = Duration::from_secs(120);
            let index = QdrantIndex::new(config).unwrap();
            let result = retrieval::measure(&corpus, &index, n, repeats).await;
            println!("retrieval: {result}");
            results.push(result);
        }
        let section = json!({
            // Uncached: the shared embedder has already seen every question.
            "query_embedding": retrieval::query_embedding(&corpus, &uncached_embedder(), repeats),
            "search": results,
        });
        record(&mut report, "retrieval", section);
    }
    if plan.runs("evals") {
        record(&mut report, "evals", evals_section(repeats));
    }
    if plan.runs("segments") {
        let customers = if plan.quick { 5_000 } else { 100_000 };
        let section = segments::run(scratch.path(), customers, repeats).await;
        record(&mut report, "segments", section);
    }

    println!();
    print!("{}", table(&report));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("bench.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("\nwritten: target/bench/bench.json");
}

/// A Markdown table of the headline figures (the JSON has everything).
fn table(report: &Value) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    fn fig(v: &Value) -> (String, String) {
        let median = v["median"].as_f64().unwrap_or(f64::NAN);
        let spread = format!(
            "{:.2}–{:.2}{}",
            v["min"].as_f64().unwrap_or(f64::NAN),
            v["max"].as_f64().unwrap_or(f64::NAN),
            if v["noisy"].as_bool() == Some(true) {
                " (noisy)"
            } else {
                ""
            }
        );
        (format!("{median:.2}"), spread)
    }
    fn push(rows: &mut Vec<[String; 4]>, name: String, v: &Value, target: &str) {
        let (median, spread) = fig(v);
        rows.push([name, median, spread, target.to_owned()]);
    }
    for key in ["webhook_load", "webhook_load_offline"] {
        let Some(levels) = report[key]["levels"].as_array() else {
            continue;
        };
        let responder = report[key]["responder"].as_str().unwrap_or_default().to_owned();
        for level in levels {
            let name = level["level"].as_str().unwrap_or_default();
            let is_200 = name.starts_with("200");
            let is_max = name.starts_with("max");
            push(
                &mut rows,
                format!("webhook {name}, {responder}: achieved msg/s"),
                &level["achieved_msgs_per_s"],
                if is_max { "≥ 300" } else { "" },
            );
            push(
                &mut rows,
                format!("webhook {name}, {responder}: ack p50 ms"),
                &level["ack_latency_ms"]["p50"],
                "",
            );
            push(
                &mut rows,
                format!("webhook {name}, {responder}: ack p99 ms"),
                &level["ack_latency_ms"]["p99"],
                if is_200 { "≤ 25" } else { "" },
            );
            push(
                &mut rows,
                format!("webhook {name}, {responder}: decided msg/s"),
                &level["processed_msgs_per_s"],
                "",
            );
            push(
                &mut rows,
                format!("webhook {name}, {responder}: reply e2e p50 ms"),
                &level["end_to_end_ms"]["p50"],
                "",
            );
            push(
                &mut rows,
                format!("webhook {name}, {responder}: server RSS MiB"),
                &level["server_rss_mib"],
                "",
            );
        }
    }
    if report["stop"].is_object() {
        push(
            &mut rows,
            "STOP → ledger commit → response p50 ms".into(),
            &report["stop"]["p50_ms"],
            "",
        );
        push(
            &mut rows,
            "STOP → ledger commit → response p99 ms".into(),
            &report["stop"]["p99_ms"],
            "≤ 5",
        );
    }
    if report["ingest"].is_object() {
        let i = &report["ingest"];
        let what = format!(
            "{} products, {} chunks + {} sentences",
            i["products"], i["chunks"], i["sentences"]
        );
        push(
            &mut rows,
            format!("ingest ({what}) texts/s, per tenth of the run"),
            &i["ingest_texts_per_s_by_tenth"],
            "",
        );
        push(
            &mut rows,
            "raw embedding texts/s (same model, same mix, same run)".into(),
            &i["raw_embed_texts_per_s"],
            "",
        );
        let ratio = i["ingest_to_raw_ratio"].as_f64().unwrap_or(f64::NAN);
        rows.push([
            "ingest / raw embedding throughput".into(),
            format!("{ratio:.2}"),
            String::new(),
            String::new(),
        ]);
    }
    if let Some(search) = report["retrieval"]["search"].as_array() {
        push(
            &mut rows,
            "query embedding p50 ms".into(),
            &report["retrieval"]["query_embedding"]["p50_ms"],
            "",
        );
        for s in search {
            let name = format!(
                "retrieval {} {} chunks",
                s["backend"].as_str().unwrap_or_default(),
                s["chunks"]
            );
            push(&mut rows, format!("{name}: top-5 p50 ms"), &s["query_p50_ms"], "");
            push(&mut rows, format!("{name}: top-5 p99 ms"), &s["query_p99_ms"], "");
            push(
                &mut rows,
                format!("{name}: index build chunks/s"),
                &s["index_build_chunks_per_s"],
                "",
            );
        }
    }
    if report["evals"].is_object() {
        push(
            &mut rows,
            "eval run (fixture suites) wall s".into(),
            &report["evals"]["wall_s"],
            "",
        );
    }
    let mut out = format!(
        "machine: {} cores, {}; median of repeats, spread = min–max\n\n| figure | median | spread | target |\n|---|---:|---:|---:|\n",
        report["machine"]["cores"],
        report["machine"]["cpu"].as_str().unwrap_or_default()
    );
    for [a, b, c, d] in rows {
        out.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    out
}
