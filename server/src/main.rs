//! The `parley` binary: parses flags, loads settings, and runs a subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parley_agent::classifier::builtin_examples;
use parley_agent::llm::LlmGenerator;
use parley_agent::{Agent, Classifier, Generator};
use parley_evals::{Gates, Suite, check_gates, run_suites};
use parley_knowledge::{EmbedderConfig, FastEmbedder, KnowledgeBase, MerchantId};
use parley_prompts::Prompts;
use parley_server::settings::Settings;
use parley_server::{AppState, run};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "parley",
    version,
    about = "Two-way SMS support agent for online stores"
)]
struct Cli {
    /// TOML settings file (values override the built-in defaults; PARLEY__* env vars override both).
    #[arg(long, global = true, env = "PARLEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Merchant directories to ingest before serving (unchanged content is not re-embedded).
        #[arg(long = "ingest")]
        ingest: Vec<PathBuf>,
    },
    /// Ingest (or re-ingest) merchant directories into the knowledge base.
    Ingest {
        #[arg(required = true)]
        merchant_dirs: Vec<PathBuf>,
    },
    /// Run eval suites through the agent and score the replies (see fixtures/evals/).
    Eval {
        /// Directory holding one folder per merchant named in the suites.
        #[arg(long, default_value = "fixtures/merchants")]
        merchants: PathBuf,
        #[arg(long = "suite", required = true)]
        suites: Vec<PathBuf>,
        /// Write report.json and report.html here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when the resolution rate is below this (0..1).
        #[arg(long)]
        min_resolution: Option<f64>,
        /// Fail when the escalation recall is below this (0..1).
        #[arg(long)]
        min_escalation_recall: Option<f64>,
        /// A previous report.json: fail when a rate falls more than --tolerance below it.
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long, default_value_t = 0.02)]
        tolerance: f64,
        /// Knowledge state for the eval merchants, kept apart from the service's data.
        #[arg(long, default_value = ".cache/eval")]
        data_dir: PathBuf,
    },
    /// Search a merchant's knowledge and print ranked passages.
    Search {
        #[arg(long)]
        merchant: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        question: String,
    },
}

fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn,tantivy=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn open_knowledge(settings: &Settings) -> anyhow::Result<Arc<KnowledgeBase>> {
    let mut config = EmbedderConfig::new(&settings.embedding.model_dir);
    config.ort_library = settings.ort_library();
    config.threads = settings.embedding.threads;
    let embedder = FastEmbedder::load(&config).context("loading the embedding model")?;
    let knowledge = KnowledgeBase::open_embedded(Arc::new(embedder), &settings.data_dir)
        .with_context(|| format!("opening the data directory {}", settings.data_dir.display()))?;
    Ok(Arc::new(knowledge))
}

/// Builds the reply agent: the classifier trained on the built-in examples (embedded with
/// the knowledge base's model) and the configured generator.
async fn build_agent(settings: &Settings, knowledge: Arc<KnowledgeBase>) -> anyhow::Result<Agent> {
    let embedder = knowledge.embedder().clone();
    let classifier =
        tokio::task::spawn_blocking(move || Classifier::train(embedder.as_ref(), builtin_examples()))
            .await
            .context("classifier task")?
            .context("embedding the classifier examples")?;
    let prompts = Arc::new(Prompts::builtin());
    let generator: Option<Arc<dyn Generator>> = match &settings.llm {
        Some(config) => {
            tracing::info!(base_url = %config.base_url, model = %config.model, "replies by LLM");
            Some(Arc::new(LlmGenerator::new(config.clone(), prompts.clone())?))
        }
        None => None,
    };
    Ok(Agent::new(
        knowledge,
        Arc::new(classifier),
        generator,
        prompts,
        settings.agent.clone(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn eval(
    settings: &Settings,
    merchants: &std::path::Path,
    suite_paths: &[PathBuf],
    out: Option<&std::path::Path>,
    gates: Gates,
    data_dir: &std::path::Path,
) -> anyhow::Result<bool> {
    let suites = suite_paths
        .iter()
        .map(|path| Suite::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut eval_settings = settings.clone();
    eval_settings.data_dir = data_dir.to_owned();
    let knowledge = open_knowledge(&eval_settings)?;
    let mut ingested: Vec<&str> = Vec::new();
    for suite in &suites {
        if !ingested.contains(&suite.merchant.as_str()) {
            let dir = merchants.join(&suite.merchant);
            anyhow::ensure!(
                dir.is_dir(),
                "suite {}: merchant directory {} does not exist",
                suite.path.display(),
                dir.display()
            );
            ingest(&knowledge, &dir).await?;
            ingested.push(&suite.merchant);
        }
    }
    let agent = build_agent(&eval_settings, knowledge).await?;
    let total: usize = suites.iter().map(Suite::n_turns).sum();
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("evaluating [{bar:30}] {pos}/{len} turns ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let report = run_suites(&agent, &suites, &progress).await;
    bar.finish_and_clear();
    let report = report?;
    print!("{}", parley_evals::report::terminal_table(&report));
    if let Some(dir) = out {
        parley_evals::report::write(&report, dir).with_context(|| format!("writing {}", dir.display()))?;
        println!("wrote {0}/report.json and {0}/report.html", dir.display());
    }
    let failures = check_gates(&report, &gates);
    for failure in &failures {
        eprintln!("eval gate failed: {failure}");
    }
    Ok(failures.is_empty())
}

async fn ingest(knowledge: &KnowledgeBase, dir: &std::path::Path) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} chunks embedded ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("ingesting {}", dir.display()));
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report = knowledge.ingest_dir(dir, &progress).await;
    bar.finish_and_clear();
    let report = report.with_context(|| format!("ingesting {}", dir.display()))?;
    println!(
        "{}: {} chunks ({} embedded, {} unchanged, {} removed) from {} products, {} policies, {} orders in {:.1}s",
        report.merchant_id,
        report.n_chunks,
        report.n_embedded,
        report.n_reused,
        report.n_removed,
        report.n_products,
        report.n_policies,
        report.n_orders,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Ingest { merchant_dirs } => {
            let knowledge = open_knowledge(&settings)?;
            for dir in &merchant_dirs {
                ingest(&knowledge, dir).await?;
            }
        }
        Command::Eval {
            merchants,
            suites,
            out,
            min_resolution,
            min_escalation_recall,
            baseline,
            tolerance,
            data_dir,
        } => {
            let baseline = match baseline {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading the baseline {}", path.display()))?;
                    Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?)
                }
                None => None,
            };
            let gates = Gates {
                min_resolution,
                min_escalation_recall,
                baseline,
                tolerance,
            };
            let passed = eval(&settings, &merchants, &suites, out.as_deref(), gates, &data_dir).await?;
            if !passed {
                std::process::exit(1);
            }
        }
        Command::Search {
            merchant,
            limit,
            question,
        } => {
            let knowledge = open_knowledge(&settings)?;
            let merchant = MerchantId::parse(&merchant)?;
            let hits = knowledge.search(&merchant, &question, limit).await?;
            for (rank, hit) in hits.iter().enumerate() {
                let heading = if hit.chunk.heading_path.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", hit.chunk.heading_path.join(" > "))
                };
                println!(
                    "{}. [{:.4}] {}{} (cosine {:.3})",
                    rank + 1,
                    hit.score,
                    hit.chunk.source,
                    heading,
                    hit.dense_score.unwrap_or(0.0)
                );
                for line in hit.chunk.text.lines().take(4) {
                    println!("     {line}");
                }
            }
        }
        Command::Serve { ingest: dirs } => {
            let knowledge = open_knowledge(&settings)?;
            for dir in &dirs {
                ingest(&knowledge, dir).await?;
            }
            let addr = settings.listen_addr()?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            tracing::info!(%addr, "parley is serving");
            run(listener, AppState { knowledge }, shutdown_signal()).await?;
        }
    }
    Ok(())
}
