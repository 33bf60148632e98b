//! `make soak` (not part of `make test`): the release `parley serve` under signed Twilio
//! webhooks at a steady rate (default 100 msg/s for 20 minutes), killed with SIGKILL and
//! restarted on the same database every few minutes (default 4). Webhooks that get no 2xx
//! (the server is down, or refused one) are retried as Twilio retries, with the same
//! MessageSid, until acknowledged. At the end it reports what was acknowledged, stored,
//! decided and answered, what was answered twice (must be 0) and what was acknowledged but
//! never stored (lost, must be 0), with the server's RSS over time; to stdout and
//! `target/bench/soak.json`. It asserts nothing: it measures.
//!
//! Knobs: `PARLEY_SOAK_MINUTES` (20), `PARLEY_SOAK_RATE` (100 msg/s), `PARLEY_SOAK_KILL_EVERY`
//! (seconds, 240). Every 10th text is a STOP, the rest questions; every text comes from its
//! own phone, so "answered twice" is any phone the fake Twilio heard from more than once.

#[allow(dead_code)]
#[path = "bench/stats.rs"]
mod stats;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_testkit::{KillOnDrop, free_port};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const ACCOUNT_SID: &str = "AC000000000000000000000000000000soak";
const AUTH_TOKEN: &str = "soak-auth-token";
const NUMBER: &str = "+18005550101";
const QUESTIONS: &[&str] = &[
    "How long does standard shipping take?",
    "What is your return policy?",
    "Do you ship to Canada?",
    "does the summit pack come in green",
    "can I speak to a human",
    "what are your store hours?",
];

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn phone(n: usize) -> String {
    format!("+1556{:07}", n)
}

fn sid(n: usize) -> String {
    format!("SMsoak{n:026x}")
}

/// The signed, encoded form of text `n`.
fn webhook(public_url: &str, n: usize) -> (String, String) {
    let (sid, phone) = (sid(n), phone(n));
    let body = if n.is_multiple_of(10) {
        "STOP"
    } else {
        QUESTIONS[n % QUESTIONS.len()]
    };
    let params: Vec<(String, String)> = [
        ("SmsMessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("Body", body),
        ("To", NUMBER),
        ("MessageSid", sid.as_str()),
        ("AccountSid", ACCOUNT_SID),
        ("From", phone.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = format!("{public_url}/webhooks/twilio/sms");
    let signature = parley_server::twilio::signature(AUTH_TOKEN, &url, &params);
    let encoded = params
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&");
    (encoded, signature)
}

struct Parley {
    root: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<KillOnDrop>,
}

impl Parley {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .current_dir(&self.root)
            .env("RUST_LOG", "warn")
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .args(["--ingest", "fixtures/merchants/trailhead"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting parley serve");
        self.child = Some(KillOnDrop(child));
    }

    fn kill(&mut self) {
        // SIGKILL (KillOnDrop's drop): no shutdown, no drain.
        drop(self.child.take());
    }

    fn rss_mib(&self) -> f64 {
        self.child
            .as_ref()
            .map_or(0.0, |child| stats::rss_fields(&child.id().to_string()).0)
    }
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("parley serve at {base} did not become ready; see target/soak/*.log");
}

impl Drop for Parley {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Posts text `n` once; whether it got a 2xx.
async fn post(client: &reqwest::Client, base: &str, public_url: &str, n: usize) -> bool {
    let (body, signature) = webhook(public_url, n);
    let sent = client
        .post(format!("{base}/webhooks/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await;
    matches!(sent, Ok(response) if response.status().is_success())
}

#[tokio::main]
async fn main() {
    let minutes = env_or("PARLEY_SOAK_MINUTES", 20.0);
    let rate = env_or("PARLEY_SOAK_RATE", 100.0);
    let kill_every = Duration::from_secs_f64(env_or("PARLEY_SOAK_KILL_EVERY", 240.0));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let data_dir = root.join("target/soak");
    std::fs::create_dir_all(&data_dir).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let db = data_dir.join(format!("soak-{stamp}.db"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (twilio, outbox) = parley_testkit::fakes::twilio_recording().await;
    let config = data_dir.join(format!("soak-{stamp}.toml"));
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\nchannel = \"twilio\"\n[server]\nport = {port}\n[store]\npath = \"{db}\"\n\
             [twilio]\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\npublic_url = \"{base}\"\n\
             api_base = \"{twilio}\"\nreply = \"rest\"\n",
            data = data_dir.display(),
            db = db.display(),
        ),
    )
    .unwrap();
    let mut parley = Parley {
        root: root.clone(),
        config,
        log: data_dir.join(format!("soak-{stamp}.log")),
        child: None,
    };
    parley.spawn();
    wait_ready(&base).await;
    let parley = Arc::new(Mutex::new(parley));
    let total = (minutes * 60.0 * rate) as usize;
    println!(
        "soak: {total} texts at {rate} msg/s over {minutes} min, SIGKILL every {kill_every:?}; db {}",
        db.display()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let acked: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let sending_for = Duration::from_secs_f64(total as f64 / rate);
    // The killer: SIGKILL and restart on the same database every `kill_every` while texts
    // flow; the senders meanwhile meet refused connections and retry.
    let killer = {
        let (parley, base) = (parley.clone(), base.clone());
        tokio::spawn(async move {
            let mut kills = Vec::new();
            let mut next = start + kill_every;
            while next < start + sending_for {
                tokio::time::sleep_until(next.into()).await;
                let down = Instant::now();
                {
                    let mut parley = parley.lock().unwrap();
                    parley.kill();
                    parley.spawn();
                }
                wait_ready(&base).await;
                let at_s = start.elapsed().as_secs();
                println!(
                    "soak: killed and restarted at {at_s} s ({} ms down)",
                    down.elapsed().as_millis()
                );
                kills.push(json!({ "at_s": at_s, "down_ms": down.elapsed().as_millis() as u64 }));
                next += kill_every;
            }
            kills
        })
    };
    let sampler = {
        let parley = parley.clone();
        tokio::spawn(async move {
            let mut rss = BTreeMap::new();
            while start.elapsed() < sending_for {
                let mib = parley.lock().unwrap().rss_mib();
                rss.insert(start.elapsed().as_secs(), mib);
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            rss
        })
    };
    let mut senders = tokio::task::JoinSet::new();
    for n in 0..total {
        let at = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let (client, base, acked, attempts) = (client.clone(), base.clone(), acked.clone(), attempts.clone());
        senders.spawn(async move {
            // Twilio's way: retry until a 2xx, with the same MessageSid.
            loop {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if post(&client, &base, &base, n).await {
                    acked.lock().unwrap().insert(n);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    while senders.join_next().await.is_some() {}
    let sending_s = start.elapsed().as_secs_f64();
    let kills = killer.await.unwrap();
    let mut rss = sampler.await.unwrap();

    // Let the queue drain: every text decided, every reply handed over.
    let store = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&db).read_only(true))
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let store = store.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&store).await.unwrap() }
    };
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < drain_deadline {
        let pending = count(
            "SELECT (SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'received')
                  + (SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status IN ('pending', 'sending'))",
        )
        .await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rss.insert(start.elapsed().as_secs(), parley.lock().unwrap().rss_mib());

    let stored_sids: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT provider_sid FROM messages WHERE direction = 'in' AND provider_sid IS NOT NULL",
    )
    .fetch_all(&store)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let acked = acked.lock().unwrap().clone();
    let lost = acked.iter().filter(|&&n| !stored_sids.contains(&sid(n))).count();
    let stored = count("SELECT COUNT(*) FROM messages WHERE direction = 'in'").await;
    let decided =
        count("SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'processed'").await;
    let replies = count("SELECT COUNT(*) FROM messages WHERE direction = 'out'").await;
    let unknown = count("SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status = 'unknown'").await;
    let stops = (0..total).filter(|n| n.is_multiple_of(10)).count();
    let ledger = count("SELECT COUNT(DISTINCT phone) FROM consent_events WHERE action = 'opt_out'").await;
    let sends = outbox.counts();
    let answered = sends.len();
    let duplicated = sends.values().filter(|&&n| n > 1).count();
    let report = json!({
        "texts": total,
        "rate_msgs_per_s": rate,
        "minutes": minutes,
        "sending_s": sending_s,
        "attempts": attempts.load(std::sync::atomic::Ordering::Relaxed),
        "acknowledged": acked.len(),
        "stored": stored,
        "decided": decided,
        "replies_committed": replies,
        "answered_phones": answered,
        "duplicated": duplicated,
        "lost": lost,
        "sends_cut_by_a_kill_unknown": unknown,
        "stops": stops,
        "stops_in_ledger": ledger,
        "kills": kills,
        "rss_mib_by_second": rss,
    });
    println!("| figure | value |\n|---|---:|");
    for key in [
        "texts",
        "attempts",
        "acknowledged",
        "stored",
        "decided",
        "replies_committed",
        "answered_phones",
        "duplicated",
        "lost",
        "sends_cut_by_a_kill_unknown",
        "stops",
        "stops_in_ledger",
    ] {
        println!("| {key} | {} |", report[key]);
    }
    let rss_values: Vec<f64> = report["rss_mib_by_second"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    println!(
        "| restarts | {} |\n| server RSS MiB min / max | {:.0} / {:.0} |",
        report["kills"].as_array().unwrap().len(),
        rss_values.iter().copied().fold(f64::INFINITY, f64::min),
        rss_values.iter().copied().fold(0.0, f64::max)
    );
    let out = root.join("target/bench/soak.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("wrote {}", out.display());
}
