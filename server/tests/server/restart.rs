//! Restart safety with the real binary: `parley serve` (Twilio channel, REST replies to a
//! local fake) takes signed webhooks from concurrent senders, is killed with SIGKILL mid-load,
//! and restarted. Every acknowledged message must be in the store, every message must end up
//! decided, and no customer may be texted twice.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parley_server::store::{CountOf, Store};
use parley_testkit::{KillOnDrop, free_port};
use wiremock::MockServer;

use crate::helpers::*;

struct Server {
    child: KillOnDrop,
}

fn start(port: u16, db: &std::path::Path, twilio: &MockServer) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .arg("serve")
        .current_dir(workspace_root())
        .env("PARLEY__DATA_DIR", shared_knowledge_dir())
        .env("PARLEY__STORE__PATH", db)
        .env("PARLEY__SERVER__PORT", port.to_string())
        .env("PARLEY__CHANNEL", "twilio")
        .env("PARLEY__TWILIO__ACCOUNT_SID", ACCOUNT_SID)
        .env("PARLEY__TWILIO__AUTH_TOKEN", AUTH_TOKEN)
        .env("PARLEY__TWILIO__PUBLIC_URL", PUBLIC_URL)
        .env("PARLEY__TWILIO__API_BASE", twilio.uri())
        .env("PARLEY__TWILIO__RETRY_BACKOFF", "1")
        .env("RUST_LOG", "warn")
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
    let mut per_phone: HashMap<String, usize> = HashMap::new();
    for request in twilio.received_requests().await.unwrap() {
        let form = parley_server::twilio::parse_form(&request.body).unwrap();
        *per_phone
            .entry(form_value(&form, "To").unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_phone.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "texted more than once: {twice:?}");
    // Everyone else got their answer.
    assert!(per_phone.len() as i64 + unknown_sends(&store).await >= attempted as i64);
}

/// Sends cut off by the kill: their outcome is unknown, so they are recorded, not resent.
async fn unknown_sends(store: &Store) -> i64 {
    store.count(CountOf::UnknownOutcome).await.unwrap()
}
