//! The `parley` binary: parses flags, loads settings, and runs a subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parley_knowledge::{EmbedderConfig, FastEmbedder, KnowledgeBase, MerchantId};
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
