//! Restart safety with the real binary: `parley serve` (Twilio channel, REST replies to a
//! local fake) takes signed webhooks from concurrent senders, is killed with SIGKILL mid-load,
//! and restarted. Every acknowledged message must be in the store, every message must end up
//! decided, and no customer may be texted twice. The same for scheduled texts: killed while
//! its jobs come due, the restarted server sends each job's text at most once.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parley_server::store::{CountOf, JobStatus, Store};
use parley_testkit::{KillOnDrop, free_port};
use wiremock::MockServer;

use crate::helpers::*;

struct Server {
    child: KillOnDrop,
}

/// `parley ARGS` as the tests run it: the shared knowledge, the store at `db`, the fake Twilio.
fn parley(db: &std::path::Path, twilio: &MockServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command
        .current_dir(workspace_root())
        .env("PARLEY__DATA_DIR", shared_knowledge_dir())
        .env("PARLEY__STORE__PATH", db)
        .env("PARLEY__CHANNEL", "twilio")
        .env("PARLEY__TWILIO__ACCOUNT_SID", ACCOUNT_SID)
        .env("PARLEY__TWILIO__AUTH_TOKEN", AUTH_TOKEN)
        .env("PARLEY__TWILIO__PUBLIC_URL", PUBLIC_URL)
        .env("PARLEY__TWILIO__API_BASE", twilio.uri())
        .env("PARLEY__TWILIO__RETRY_BACKOFF", "1")
        .env("PARLEY__SCHEDULER__POLL_EVERY", "100ms")
        .env("RUST_LOG", "warn");
    command
}

fn start(port: u16, db: &std::path::Path, twilio: &MockServer) -> Server {
    let child = parley(db, twilio)
        .arg("serve")
        .env("PARLEY__SERVER__PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting parley serve");
    Server {
        child: KillOnDrop(child),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("parley serve did not become ready at {base}");
}

async fn send(client: &reqwest::Client, base: &str, i: usize) -> bool {
    let sid = format!("SM{i:032}");
    let phone = format!("+1555{:07}", 7_000_000 + i);
    let params = inbound_form(
        &sid,
        &phone,
        TRAILHEAD_NUMBER,
        "How long does standard shipping take?",
    );
    let signed =
        parley_server::twilio::signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/webhooks/twilio/sms"), &params);
    let response = client
        .post(format!("{base}/webhooks/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signed)
        .body(encode_form(&params))
        .send()
        .await;
    matches!(response, Ok(response) if response.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_message_and_answers_none_twice() {
    // Knowledge and classifier ready in the shared directory before the binary reads it.
    knowledge().await;
    let twilio = MockServer::start().await;
    accept_all_messages(&twilio).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("parley.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut server = start(port, &db, &twilio);
    wait_ready(&client, &base).await;

    // Eight concurrent senders, 400 messages; the server is killed once 60 were acknowledged.
    const TOTAL: usize = 400;
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let n_acked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (client, base, next, acked, n_acked) = (
            client.clone(),
            base.clone(),
            next.clone(),
            acked.clone(),
            n_acked.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= TOTAL {
                    break;
                }
                if send(&client, &base, i).await {
                    acked.lock().unwrap().push(i);
                    n_acked.fetch_add(1, Ordering::SeqCst);
                } else {
                    // Connection refused: the server is gone; stop like Twilio would (and retry later).
                    break;
                }
            }
        }));
    }
    while n_acked.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.0.kill().expect("SIGKILL");
    server.child.0.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked: HashSet<usize> = acked.lock().unwrap().iter().copied().collect();
    let attempted = next.load(Ordering::SeqCst).min(TOTAL);
    assert!(acked.len() >= 60 && acked.len() < TOTAL, "acked {}", acked.len());

    // Every acknowledged message survived the kill.
    {
        let store = Store::open(&db).await.unwrap();
        for &i in &acked {
            let sid = format!("SM{i:032}");
            assert!(
                store.inbound_by_sid(&sid).await.unwrap().is_some(),
                "acknowledged {sid} is not in the store"
            );
        }
        store.close().await;
    }

    // Restart; Twilio retries everything it attempted (acked or not), as it may.
    let _server = start(port, &db, &twilio);
    wait_ready(&client, &base).await;
    for i in 0..attempted {
        assert!(send(&client, &base, i).await, "retry of message {i} failed");
    }
    let store = Store::open(&db).await.unwrap();
    let mut settled = false;
    for _ in 0..1200 {
        let unprocessed = store.count(CountOf::Unprocessed).await.unwrap();
        let in_flight = store.count(CountOf::InFlight).await.unwrap();
        if unprocessed == 0 && in_flight == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "the restarted server did not finish the backlog");
    assert_eq!(store.count(CountOf::Inbound).await.unwrap(), attempted as i64);

    // No phone was texted twice (each sender used a distinct phone, one question each).
    let per_phone = texts_per_phone(&twilio).await;
    let twice: Vec<_> = per_phone.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "texted more than once: {twice:?}");
    // Everyone else got their answer.
    assert!(per_phone.len() as i64 + unknown_sends(&store).await >= attempted as i64);
}

/// Sends cut off by the kill: their outcome is unknown, so they are recorded, not resent.
async fn unknown_sends(store: &Store) -> i64 {
    store.count(CountOf::UnknownOutcome).await.unwrap()
}

/// A fake Twilio that takes 40 ms over each message, so a kill lands mid-send.
async fn slow_twilio() -> MockServer {
    let twilio = MockServer::start().await;
    let counter = Arc::new(AtomicUsize::new(1));
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(move |_: &wiremock::Request| {
            twilio_created(counter.fetch_add(1, Ordering::SeqCst) as u64).set_delay(Duration::from_millis(40))
        })
        .mount(&twilio)
        .await;
    twilio
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_jobs_come_due_sends_each_at_most_once() {
    knowledge().await;
    let twilio = slow_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("parley.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = start(port, &db, &twilio);
    wait_ready(&client, &base).await;

    // The customers' consent comes from another tool's export: a file with a bad row imports
    // nothing and says which row; the corrected file imports every customer.
    const JOBS: usize = 40;
    let phone = |i: usize| format!("+1555{:07}", 8_000_000 + i);
    let mut csv = String::from("phone,consent,consented_at,source\n");
    for i in 0..JOBS {
        csv.push_str(&format!(
            "{},opted_in,2026-01-05T10:00:00Z,signup form\n",
            phone(i)
        ));
    }
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{csv}+1555,opted_in,2026-01-05T10:00:00Z,form\n")).unwrap();
    let output = parley(&db, &twilio)
        .args(["customers", "import", "--merchant", "trailhead"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("line {}: phone", JOBS + 2)), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let good = dir.path().join("good.csv");
    std::fs::write(&good, &csv).unwrap();
    let printed = run_ok(
        parley(&db, &twilio)
            .args(["customers", "import", "--merchant", "trailhead"])
            .arg(&good),
    );
    assert!(
        printed.contains(&format!("imported {JOBS} customer(s)")),
        "{printed}"
    );
    let token = run_ok(parley(&db, &twilio).args([
        "token",
        "create",
        "--merchant",
        "trailhead",
        "--name",
        "ops",
        "--role",
        "admin",
    ]));

    // Forty texts due one every 50 ms from a second from now; the server dies mid-way.
    use parley_core::Clock as _;
    let first_due = parley_core::SystemClock.now_ms() + 1000;
    for i in 0..JOBS {
        let response = client
            .post(format!("{base}/v1/merchants/trailhead/jobs"))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({
                "to": phone(i),
                "body": format!("Your order #{i} ships today."),
                "purpose": "transactional",
                "send_at": parley_core::clock::rfc3339(first_due + 50 * i as i64),
                "key": format!("ship-{i}"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    for _ in 0..600 {
        if sends(&twilio).await >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.0.kill().expect("SIGKILL");
    server.child.0.wait().unwrap();
    let at_kill = sends(&twilio).await;
    assert!((12..JOBS).contains(&at_kill), "{at_kill} sends when killed");

    let _server = start(port, &db, &twilio);
    wait_ready(&client, &base).await;
    let store = Store::open(&db).await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..600 {
        jobs = store.jobs("trailhead", None, 1000).await.unwrap();
        if jobs
            .iter()
            .all(|job| matches!(job.status, JobStatus::Done | JobStatus::Unknown))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(jobs.len(), JOBS);
    let per_phone = texts_per_phone(&twilio).await;
    let twice: Vec<_> = per_phone.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "texted more than once: {twice:?}");
    let unknown = jobs.iter().filter(|job| job.status == JobStatus::Unknown).count();
    let done = jobs.iter().filter(|job| job.status == JobStatus::Done).count();
    assert_eq!(done + unknown, JOBS, "{jobs:?}");
    // Only the sends the kill cut off are unknown; every done job reached the provider.
    assert!(unknown <= 4, "{unknown} unknown");
    assert!(
        per_phone.len() >= done,
        "{} phones texted, {done} done",
        per_phone.len()
    );
}

async fn sends(twilio: &MockServer) -> usize {
    twilio.received_requests().await.unwrap_or_default().len()
}

/// How many texts the fake Twilio got for each `To`.
async fn texts_per_phone(twilio: &MockServer) -> HashMap<String, usize> {
    let mut per_phone: HashMap<String, usize> = HashMap::new();
    for request in twilio.received_requests().await.unwrap() {
        let form = parley_server::twilio::parse_form(&request.body).unwrap();
        *per_phone
            .entry(form_value(&form, "To").unwrap().to_owned())
            .or_default() += 1;
    }
    per_phone
}
