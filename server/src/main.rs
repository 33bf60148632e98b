//! The `parley` binary: parses flags, loads settings, and runs a subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parley_core::{Clock as _, SystemClock};
use parley_evals::{Gates, Suite, check_gates, run_suites};
use parley_knowledge::{KnowledgeBase, MerchantId};
use parley_server::settings::{IndexBackend, Settings};
use parley_server::store::{Store, UserRole};
use parley_server::{new_token, run, startup, token_hash};
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
    /// Create a support-side user and print its bearer token (shown once).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Text a merchant as a customer through the simulator channel of a running `parley serve`.
    Chat {
        #[arg(long)]
        merchant: String,
        /// The customer's phone (E.164).
        #[arg(long)]
        from: String,
        /// The service's base URL; default: the [server] address from the settings.
        #[arg(long)]
        url: Option<String>,
    },
    /// Customers and their consent.
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
    /// Shopify tools.
    Shopify {
        #[command(subcommand)]
        command: ShopifyCommand,
    },
    /// Manage the knowledge index backend.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
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

#[derive(Subcommand)]
enum CustomersCommand {
    /// Import customers' marketing consent from a CSV file with the columns phone, consent
    /// (opted_in / opted_out), consented_at (RFC 3339) and source (where it was collected),
    /// and optionally first_name, last_name, email, tags. All rows or none: any bad row is
    /// reported with its line and nothing is written.
    Import {
        #[arg(long)]
        merchant: String,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Copy merchants' chunks and vectors from one backend to another, without re-embedding:
    /// the embedded index under the data directory, or Qdrant as `[index.qdrant]` configures
    /// it. Afterwards set `[index] backend` to the target.
    Migrate {
        #[arg(long, value_enum)]
        from: IndexBackend,
        #[arg(long, value_enum)]
        to: IndexBackend,
        /// Only these merchants (repeatable); default: every merchant in the source.
        #[arg(long = "merchant")]
        merchants: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a user for a merchant: `agent` works the queue, `admin` also manages knowledge,
    /// conversations and the consent export.
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent")]
        role: String,
    },
    /// Revoke a user's token: it authenticates nothing from now on, and the inbox sessions it
    /// opened end. `token create` with the same name issues a new one.
    Revoke {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        name: String,
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
    let knowledge = startup::open_knowledge(&eval_settings)?;
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
            ingest(&knowledge, None, &dir).await?;
            ingested.push(&suite.merchant);
        }
    }
    let classifier = startup::train_classifier(knowledge.embedder().clone()).await?;
    let agent = startup::build_agent(&eval_settings, knowledge, classifier)?;
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

/// Remembers where a merchant's knowledge came from, for `POST .../knowledge/reingest`.
async fn record_knowledge_dir(
    store: &Store,
    merchant: &MerchantId,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    if let Some(mut row) = store.merchant(merchant.as_str()).await? {
        row.knowledge_dir = Some(dir.display().to_string());
        store.upsert_merchant(&row, SystemClock.now_ms()).await?;
    }
    Ok(())
}

#[derive(Subcommand)]
enum ShopifyCommand {
    /// Send payload files to a running `parley serve` as Shopify would: signed with
    /// `[shopify] app_secret`, with Shopify's headers and a fresh event id each.
    Replay {
        /// The shop domain the deliveries come from (a merchant's `shop_domain`).
        #[arg(long)]
        shop: String,
        /// The topic for every file; default: from each file name (`orders_create.json`).
        #[arg(long)]
        topic: Option<String>,
        /// The service's base URL; default: the [server] address from the settings.
        #[arg(long)]
        url: Option<String>,
        /// Stamp each payload's top-level `created_at` and `updated_at` with the current
        /// time, as a live store's event would carry them (a sample from years ago starts no
        /// flow: it is too old to be about a cart anyone remembers).
        #[arg(long)]
        now: bool,
        /// JSON payload files, e.g. fixtures/shopify/checkouts_create.json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `--url`, or the service's own address from the settings.
fn service_url(settings: &Settings, url: Option<String>) -> String {
    url.unwrap_or_else(|| {
        let addr = settings.listen_addr().map(|a| a.to_string()).unwrap_or_default();
        format!("http://{addr}")
    })
}

/// `parley shopify replay`: each file signed and sent; fails if any is not accepted.
async fn shopify_replay(
    secret: &str,
    url: &str,
    shop: &str,
    topic: Option<&str>,
    stamp_now: bool,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut refused = 0;
    for (i, file) in files.iter().enumerate() {
        let mut body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        if stamp_now {
            body = parley_server::shopify::stamp_now(&body, SystemClock.now_ms())
                .with_context(|| format!("{}: not JSON, so --now cannot stamp it", file.display()))?;
        }
        let topic = match topic {
            Some(topic) => topic.to_owned(),
            None => parley_server::shopify::topic_of_file(file).with_context(|| {
                format!(
                    "{}: name it like orders_create.json, or pass --topic",
                    file.display()
                )
            })?,
        };
        let now = SystemClock.now_ms();
        let event_id = format!("replay-{now}-{i}");
        let triggered_at = parley_core::clock::rfc3339(now);
        let replay = parley_server::shopify::Replay {
            base_url: url,
            secret,
            shop,
            topic: &topic,
            event_id: &event_id,
            triggered_at: &triggered_at,
        };
        let response = replay
            .send(&client, body)
            .await
            .with_context(|| format!("sending {} to {url}", file.display()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("{} ({topic}): {status} {text}", file.display());
        if !status.is_success() {
            refused += 1;
        }
    }
    anyhow::ensure!(
        refused == 0,
        "{refused} of {} deliveries were not accepted",
        files.len()
    );
    Ok(())
}

/// A phone texting through the simulator channel of a running `parley serve`.
struct SimulatedPhone {
    client: reqwest::Client,
    url: String,
    merchant: String,
    from: String,
    /// The newest message this phone has shown.
    last_seen: tokio::sync::Mutex<i64>,
}

impl SimulatedPhone {
    /// What the phone received after message `after`.
    async fn received(&self, after: i64) -> anyhow::Result<Vec<serde_json::Value>> {
        let response = self
            .client
            .get(format!("{}/v1/simulator/messages", self.url))
            .query(&[
                ("merchant_id", self.merchant.as_str()),
                ("phone", self.from.as_str()),
                ("after", &after.to_string()),
            ])
            .send()
            .await
            .with_context(|| format!("connecting to {}; is `parley serve` running?", self.url))?;
        let mut body: serde_json::Value = response.error_for_status()?.json().await?;
        Ok(match body["messages"].take() {
            serde_json::Value::Array(messages) => messages,
            _ => Vec::new(),
        })
    }

    /// Prints what arrived since the last look (AI replies and people's from the inbox).
    async fn print_new(&self) -> anyhow::Result<()> {
        let mut last_seen = self.last_seen.lock().await;
        for message in self.received(*last_seen).await? {
            let who = match message["author"].as_str() {
                Some("human") => "agent",
                Some("compliance") => "auto",
                _ => "store",
            };
            println!("{who}> {}", message["body"].as_str().unwrap_or_default());
            *last_seen = (*last_seen).max(message["id"].as_i64().unwrap_or(0));
        }
        Ok(())
    }

    /// Texts the merchant; answers whether the conversation went to a person. A refusal (bad
    /// number, unknown merchant) is printed; only an unreachable server is an error.
    async fn send(&self, text: &str) -> anyhow::Result<bool> {
        let response = self
            .client
            .post(format!("{}/v1/simulator/messages", self.url))
            .json(&serde_json::json!({ "merchant_id": self.merchant, "from": self.from, "body": text }))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            eprintln!("error {status}: {body}");
            return Ok(false);
        }
        let result: serde_json::Value = response.json().await?;
        Ok(result["escalated"].as_bool() == Some(true))
    }
}

/// The simulator's terminal phone: each line typed is texted to the merchant; replies (the
/// AI's and a person's from the inbox) are printed as they arrive.
async fn chat(url: &str, merchant: &str, from: &str) -> anyhow::Result<()> {
    let phone = Arc::new(SimulatedPhone {
        client: reqwest::Client::new(),
        url: url.trim_end_matches('/').to_owned(),
        merchant: merchant.to_owned(),
        from: from.to_owned(),
        last_seen: tokio::sync::Mutex::new(0),
    });
    // Skip what this phone received before this session.
    let earlier = phone.received(0).await?;
    *phone.last_seen.lock().await = earlier.last().and_then(|m| m["id"].as_i64()).unwrap_or(0);
    println!("texting {merchant} as {from} (type a message, Ctrl-D to quit)");
    let poller = {
        let phone = phone.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                if let Err(err) = phone.print_new().await {
                    eprintln!("(checking for replies failed: {err})");
                }
            }
        })
    };
    // Stdin is read on its own thread (tokio's async stdin is blocking underneath anyway).
    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let escalated = phone.send(line).await?;
        phone.print_new().await?;
        if escalated {
            println!("(handed to a person: answer it in the inbox at {url}/inbox)");
        }
    }
    poller.abort();
    Ok(())
}

/// Ingests one directory with a progress bar; with a store, the shop's live products (from
/// Shopify's product webhooks) are laid over it, as the server does.
async fn ingest(
    knowledge: &KnowledgeBase,
    store: Option<&Store>,
    dir: &std::path::Path,
) -> anyhow::Result<(MerchantId, PathBuf)> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} texts embedded ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("ingesting {}", dir.display()));
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report = match store {
        Some(store) => parley_server::commerce::ingest_directory_at(knowledge, store, dir, &progress)
            .await
            .map_err(anyhow::Error::from),
        None => knowledge
            .ingest_dir(dir, &progress)
            .await
            .map_err(anyhow::Error::from),
    };
    bar.finish_and_clear();
    let report = report.with_context(|| format!("ingesting {}", dir.display()))?;
    println!(
        "{}: {} chunks ({} embedded, {} unchanged, {} removed), {} sentences ({} embedded) from {} products, {} policies, {} orders in {:.1}s",
        report.merchant_id,
        report.n_chunks,
        report.n_embedded,
        report.n_reused,
        report.n_removed,
        report.n_sentences,
        report.n_sentences_embedded,
        report.n_products,
        report.n_policies,
        report.n_orders,
        report.elapsed.as_secs_f64()
    );
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    Ok((report.merchant_id, dir))
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
    parley_server::install_crypto_provider();
    init_tracing();
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Ingest { merchant_dirs } => {
            let knowledge = startup::open_knowledge(&settings)?;
            let store = Store::open(&settings.store_path()).await?;
            for dir in &merchant_dirs {
                let (merchant, dir) = ingest(&knowledge, Some(&store), dir).await?;
                let data = knowledge.merchant(&merchant)?;
                let row = parley_server::store::Merchant::from_config(
                    &data.config,
                    Some(dir.display().to_string()),
                );
                store.upsert_merchant(&row, SystemClock.now_ms()).await?;
                // The order tools read the store: a running server sees the new orders.json.
                let orders = parley_server::commerce::directory_orders(&data);
                store
                    .sync_directory_orders(merchant.as_str(), &orders, SystemClock.now_ms())
                    .await?;
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
        Command::Index {
            command: IndexCommand::Migrate { from, to, merchants },
        } => {
            anyhow::ensure!(from != to, "--from and --to name the same backend");
            let source = startup::open_index(&settings, from)?;
            let target = startup::open_index(&settings, to)?;
            target
                .ready()
                .await
                .with_context(|| format!("the target index ({}) is not ready", target.backend_name()))?;
            let merchants = match merchants.is_empty() {
                true => source
                    .merchants()
                    .await
                    .context("listing the source's merchants")?,
                false => merchants
                    .iter()
                    .map(|m| MerchantId::parse(m))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            anyhow::ensure!(!merchants.is_empty(), "the source index holds no merchants");
            for merchant in &merchants {
                let moved = parley_knowledge::index::migrate(source.as_ref(), target.as_ref(), merchant)
                    .await
                    .with_context(|| format!("migrating {merchant}"))?;
                println!(
                    "{merchant}: {moved} chunks copied from {} to {}",
                    source.backend_name(),
                    target.backend_name()
                );
            }
        }
        Command::Search {
            merchant,
            limit,
            question,
        } => {
            let knowledge = startup::open_knowledge(&settings)?;
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
            let knowledge = startup::open_knowledge(&settings)?;
            let mut ingested = Vec::new();
            for dir in &dirs {
                // The store opens with the service below; it lays live products over these.
                ingested.push(ingest(&knowledge, None, dir).await?);
            }
            let parts = startup::Parts {
                knowledge: Some(knowledge),
                ..startup::Parts::default()
            };
            let state = startup::build(&settings, parts).await?;
            for (merchant, dir) in &ingested {
                record_knowledge_dir(&state.service.store, merchant, dir).await?;
            }
            let addr = settings.listen_addr()?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            tracing::info!(%addr, channel = state.service.channel.name(), "parley is serving");
            run(listener, state, shutdown_signal()).await?;
        }
        Command::Token {
            command: TokenCommand::Create { merchant, name, role },
        } => {
            let role: UserRole = role.parse().map_err(|_| {
                anyhow::anyhow!(
                    "unknown role {role:?}; use {}",
                    <UserRole as strum::VariantNames>::VARIANTS.join(" or ")
                )
            })?;
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "--name must not be empty");
            let store = Store::open(&settings.store_path()).await?;
            anyhow::ensure!(
                store.merchant(&merchant).await?.is_some(),
                "no merchant {merchant:?} in the store; ingest it first (parley ingest DIR or parley serve --ingest DIR)"
            );
            let token = new_token();
            store
                .create_user(&merchant, name, role, &token_hash(&token), SystemClock.now_ms())
                .await?;
            println!("{token}");
            eprintln!(
                "created {} {name:?} for {merchant}; keep the token, it is not shown again",
                role
            );
        }
        Command::Token {
            command: TokenCommand::Revoke { merchant, name },
        } => {
            let store = Store::open(&settings.store_path()).await?;
            let revoked = store
                .revoke_user(&merchant, name.trim(), SystemClock.now_ms())
                .await?;
            anyhow::ensure!(revoked, "no live user {name:?} for merchant {merchant:?}");
            eprintln!("revoked {name:?} for {merchant}: the token and its inbox sessions no longer work");
        }
        Command::Shopify {
            command:
                ShopifyCommand::Replay {
                    shop,
                    topic,
                    url,
                    now,
                    files,
                },
        } => {
            let secret = settings.shopify.as_ref().context(
                "set [shopify] app_secret (or PARLEY__SHOPIFY__APP_SECRET): replays are signed with it",
            )?;
            let url = service_url(&settings, url);
            use secrecy::ExposeSecret as _;
            shopify_replay(
                secret.app_secret.expose_secret(),
                &url,
                &shop,
                topic.as_deref(),
                now,
                &files,
            )
            .await?;
        }
        Command::Customers {
            command: CustomersCommand::Import { merchant, file },
        } => {
            let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let label = file.file_name().map_or_else(
                || file.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            let now = SystemClock.now_ms();
            let customers = match parley_server::import::read_consent_csv(&data, &label, now) {
                Ok(customers) => customers,
                Err(errors) => {
                    for error in errors.iter().take(50) {
                        eprintln!("{}: {error}", file.display());
                    }
                    if errors.len() > 50 {
                        eprintln!("... and {} more", errors.len() - 50);
                    }
                    anyhow::bail!(
                        "{} problem(s) in {}; nothing was imported",
                        errors.len(),
                        file.display()
                    );
                }
            };
            let store = Store::open(&settings.store_path()).await?;
            anyhow::ensure!(
                store.merchant(&merchant).await?.is_some(),
                "no merchant {merchant:?} in the store; ingest it first (parley ingest DIR or parley serve --ingest DIR)"
            );
            let (imported, changed) = store.import_customers(&merchant, &customers, now).await?;
            println!(
                "imported {imported} customer(s) for {merchant}; {changed} consent change(s) written to the ledger"
            );
        }
        Command::Chat { merchant, from, url } => {
            let url = service_url(&settings, url);
            chat(&url, &merchant, &from).await?;
        }
    }
    Ok(())
}
