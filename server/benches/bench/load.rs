//! The inbound webhook path under load: a real `parley serve` (the release binary) on
//! 127.0.0.1, fed correctly signed Twilio webhooks with distinct MessageSids and phones, at
//! fixed rates (open loop: each request leaves at its scheduled time whatever the previous
//! ones did, and latency counts from that time, so a stalled server cannot hide its queue)
//! and at the most it sustains (closed loop). Replies go to the fake Twilio, which gives the
//! end-to-end latency: webhook sent → reply handed to Twilio's API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_testkit::{KillOnDrop, free_port};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::stats::{Percentiles, Spread, round};
use parley_testkit::fakes::Arrivals;

pub const ACCOUNT_SID: &str = "AC0000000000000000000000000000bench";
const AUTH_TOKEN: &str = "bench-auth-token";

/// What the server replies with: an instant fake LLM, or the built-in offline responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    InstantLlm,
    Offline,
}

impl Responder {
    pub fn label(self) -> &'static str {
        match self {
            Self::InstantLlm => "instant fake LLM",
            Self::Offline => "offline responder",
        }
    }
}

/// A running `parley serve` and what the bench needs to talk to it.
pub struct Server {
    child: KillOnDrop,
    pub base: String,
    public_url: String,
    db: PathBuf,
    pub outbox: Arrivals,
}

impl Server {
    /// Starts the binary on a fresh database in `data_dir` (the knowledge snapshots there are
    /// reused, so a second start does not re-embed) and waits until `/readyz` says ready.
    pub async fn start(root: &Path, data_dir: &Path, responder: Responder) -> Self {
        let port = free_port();
        let (twilio, outbox) = parley_testkit::fakes::twilio_recording().await;
        let db = data_dir.join(format!("bench-{port}.db"));
        let public_url = format!("http://127.0.0.1:{port}");
        let mut config = format!(
            r#"data_dir = "{data}"
channel = "twilio"

[server]
port = {port}

[store]
path = "{db}"

[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
public_url = "{public_url}"
api_base = "{twilio}"
reply = "rest"
"#,
            data = data_dir.display(),
            db = db.display(),
        );
        if responder == Responder::InstantLlm {
            let llm = parley_testkit::fakes::instant_llm().await;
            config.push_str(&format!("\n[llm]\nbase_url = \"{llm}\"\nmodel = \"instant\"\n"));
        }
        let config_path = data_dir.join(format!("bench-{port}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(data_dir.join(format!("bench-{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .current_dir(root)
            .env("RUST_LOG", "warn")
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .args([
                "--ingest",
                "fixtures/merchants/trailhead",
                "--ingest",
                "fixtures/merchants/glowleaf",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting parley serve");
        let server = Self {
            child: KillOnDrop(child),
            base: public_url.clone(),
            public_url,
            db,
            outbox,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", server.base)).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "parley serve did not become ready; see {}",
                data_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        crate::stats::rss_fields(&self.pid().to_string())
    }

    async fn store(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new().filename(&self.db).read_only(true);
        SqlitePool::connect_with(options).await.unwrap()
    }

    /// Waits until every stored inbound message has been decided (or `limit` passes); returns
    /// when the last one was decided, as seen by polling.
    async fn drain(&self, limit: Duration) -> Instant {
        let store = self.store().await;
        let deadline = Instant::now() + limit;
        loop {
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'received'",
            )
            .fetch_one(&store)
            .await
            .unwrap();
            if pending == 0 || Instant::now() > deadline {
                store.close().await;
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn ledger_rows(&self, phones: &[String]) -> usize {
        let store = self.store().await;
        let mut found = 0;
        for phone in phones {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM consent_events WHERE phone = ? AND action = 'opt_out'",
            )
            .bind(phone)
            .fetch_one(&store)
            .await
            .unwrap();
            found += n as usize;
        }
        store.close().await;
        found
    }
}

/// One webhook, signed and encoded before the clock starts, so the generator's own cost
/// stays out of the figures.
pub struct Webhook {
    pub phone: String,
    body: String,
    signature: String,
}

/// Hands out distinct phones and MessageSids for the whole bench run.
pub struct Traffic {
    questions: Vec<(String, String)>,
    next: usize,
}

impl Traffic {
    /// `questions`: (merchant number, text) pairs to cycle through.
    pub fn new(questions: Vec<(String, String)>) -> Self {
        Self { questions, next: 0 }
    }

    /// How many distinct texts the traffic cycles through.
    pub fn distinct(&self) -> usize {
        self.questions.len()
    }

    pub fn webhook(&mut self, public_url: &str, body: Option<&str>) -> Webhook {
        let n = self.next;
        self.next += 1;
        let (to, question) = &self.questions[n % self.questions.len()];
        let phone = format!("+1555{:07}", 1_000_000 + n);
        let sid = format!("SM{n:032x}");
        let params: Vec<(String, String)> = [
            ("ToCountry", "US"),
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("SmsSid", sid.as_str()),
            ("SmsStatus", "received"),
            ("Body", body.unwrap_or(question)),
            ("To", to),
            ("NumSegments", "1"),
            ("MessageSid", sid.as_str()),
            ("AccountSid", ACCOUNT_SID),
            ("From", phone.as_str()),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let url = format!("{public_url}/webhooks/twilio/sms");
        let signature = parley_server::twilio::signature(AUTH_TOKEN, &url, &params);
        let body = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC),
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        Webhook {
            phone,
            body,
            signature,
        }
    }

    pub fn batch(&mut self, server: &Server, n: usize, body: Option<&str>) -> Vec<Webhook> {
        (0..n).map(|_| self.webhook(&server.public_url, body)).collect()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts one webhook; Ok(latency in ms) on a 2xx, Err otherwise.
async fn post(client: &reqwest::Client, base: &str, hook: &Webhook, since: Instant) -> Result<f64, ()> {
    let response = client
        .post(format!("{base}/webhooks/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", &hook.signature)
        .body(hook.body.clone())
        .send()
        .await
        .map_err(|_| ())?;
    let ok = response.status().is_success();
    let _ = response.bytes().await;
    let ms = since.elapsed().as_secs_f64() * 1000.0;
    if ok { Ok(ms) } else { Err(()) }
}

/// The figures of one run at one rate.
pub struct RunResult {
    pub achieved_rate: f64,
    pub latency: Percentiles,
    pub errors: usize,
    /// Webhook sent → reply at the fake Twilio, for the messages that got a reply.
    pub end_to_end: Percentiles,
    pub replied: usize,
    /// Inbound messages decided per second, first send to last decision.
    pub processed_rate: f64,
    pub rss_mib: f64,
}

/// Sends `hooks` at `rate` per second (open loop), then waits for every one to be decided.
pub async fn open_loop(server: &Server, hooks: Vec<Webhook>, rate: f64) -> RunResult {
    let client = Arc::new(client());
    let base: Arc<str> = server.base.clone().into();
    let n = hooks.len();
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    let mut scheduled = Vec::with_capacity(n);
    for (i, hook) in hooks.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        scheduled.push((hook.phone.clone(), at));
        tokio::time::sleep_until(at.into()).await;
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move { (post(&client, &base, &hook, at).await, Instant::now()) });
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0;
    let mut last_done = start;
    while let Some(joined) = tasks.join_next().await {
        let (result, done) = joined.unwrap();
        last_done = last_done.max(done);
        match result {
            Ok(ms) => latencies.push(ms),
            Err(()) => errors += 1,
        }
    }
    let achieved_rate = latencies.len() as f64 / (last_done - start).as_secs_f64();
    finish(server, scheduled, start, achieved_rate, latencies, errors).await
}

/// `concurrency` senders, each posting its next webhook as soon as the last is answered, for
/// `duration`: the most the server acknowledges.
pub async fn closed_loop(
    server: &Server,
    traffic: &mut Traffic,
    concurrency: usize,
    duration: Duration,
    per_sender: usize,
) -> RunResult {
    let client = Arc::new(client());
    let base: Arc<str> = server.base.clone().into();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let hooks = traffic.batch(server, per_sender, None);
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let mut sent = Vec::new();
            let mut latencies = Vec::new();
            let mut errors = 0;
            for hook in hooks {
                if start.elapsed() >= duration {
                    break;
                }
                let at = Instant::now();
                sent.push((hook.phone.clone(), at));
                match post(&client, &base, &hook, at).await {
                    Ok(ms) => latencies.push(ms),
                    Err(()) => errors += 1,
                }
            }
            (sent, latencies, errors)
        });
    }
    let (mut scheduled, mut latencies, mut errors) = (Vec::new(), Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let (sent, lat, err) = joined.unwrap();
        scheduled.extend(sent);
        latencies.extend(lat);
        errors += err;
    }
    let achieved_rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    finish(server, scheduled, start, achieved_rate, latencies, errors).await
}

async fn finish(
    server: &Server,
    scheduled: Vec<(String, Instant)>,
    start: Instant,
    achieved_rate: f64,
    latencies: Vec<f64>,
    errors: usize,
) -> RunResult {
    let decided_at = server.drain(Duration::from_secs(600)).await;
    // Replies are sent after the decision commits; give the last sends a moment to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut end_to_end = Vec::new();
    for (phone, at) in &scheduled {
        if let Some(arrived) = server.outbox.arrival(phone) {
            end_to_end.push((arrived - *at).as_secs_f64() * 1000.0);
        }
    }
    RunResult {
        achieved_rate,
        latency: Percentiles::of(latencies.clone()),
        errors,
        replied: end_to_end.len(),
        end_to_end: Percentiles::of(end_to_end),
        processed_rate: scheduled.len() as f64 / (decided_at - start).as_secs_f64(),
        rss_mib: server.rss_mib().0,
    }
}

/// Median and spread of each figure over repeated runs of the same level.
pub fn summarize(label: &str, runs: &[RunResult]) -> Value {
    let spread = |f: &dyn Fn(&RunResult) -> f64| Spread::of(runs.iter().map(f)).json();
    json!({
        "level": label,
        "repeats": runs.len(),
        "achieved_msgs_per_s": spread(&|r| r.achieved_rate),
        "ack_latency_ms": {
            "p50": spread(&|r| r.latency.p50),
            "p95": spread(&|r| r.latency.p95),
            "p99": spread(&|r| r.latency.p99),
            "max": spread(&|r| r.latency.max),
        },
        "errors": runs.iter().map(|r| r.errors).sum::<usize>(),
        "replied": runs.iter().map(|r| r.replied).sum::<usize>(),
        "end_to_end_ms": {
            "p50": spread(&|r| r.end_to_end.p50),
            "p99": spread(&|r| r.end_to_end.p99),
        },
        "processed_msgs_per_s": spread(&|r| r.processed_rate),
        "server_rss_mib": spread(&|r| round(r.rss_mib)),
    })
}
