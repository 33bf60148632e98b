//! `spawn_app()`: the real service (router, store, agent, channel) on 127.0.0.1:0 with its own
//! database, a manual clock, and (for the Twilio channel) a local fake of Twilio's Messages
//! API, wired by `startup::build` as `parley serve` is. The knowledge base and classifier come
//! from `parley-testkit`, built once per test binary and shared.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parley_core::ManualClock;
use parley_knowledge::KnowledgeBase;
use parley_server::settings::{ChannelKind, Settings};
use parley_server::store::{CountOf, EscalationStatus, UserRole};
use parley_server::twilio::{ReplyMode, TwilioConfig, signature};
use parley_server::{AppState, new_token, startup, token_hash};
use serde_json::{Value, json};
use wiremock::MockServer;

pub const TRAILHEAD_NUMBER: &str = "+18005550101";
pub use parley_testkit::fakes::{
    TWILIO_ACCOUNT_SID as ACCOUNT_SID, accept_all_messages, completion, twilio_created,
};
pub const AUTH_TOKEN: &str = "test-auth-token";
pub const PUBLIC_URL: &str = "https://sms.parley.example";
/// Start of the manual clock: 2026-11-28T12:00:00Z.
pub const T0: i64 = 1_795_867_200_000;

pub use parley_testkit::{shared_knowledge_dir, workspace_root};

pub async fn knowledge() -> Arc<KnowledgeBase> {
    parley_testkit::demo_knowledge().await
}

/// How the app under test talks SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Simulator,
    /// Twilio webhooks; replies inline as TwiML.
    TwilioTwiml,
    /// Twilio webhooks; replies through the (fake) Messages REST API.
    TwilioRest,
}

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: ManualClock,
    /// The fake Twilio Messages API (Twilio channels only).
    pub twilio: Option<MockServer>,
    data_dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Everything the test binary logged at INFO and above (the level production runs at), so
/// tests can check what never reaches the logs (customers' phone numbers).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static BUFFER: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn spawn_app(channel: Channel) -> TestApp {
    let knowledge = knowledge().await;
    spawn_app_with(channel, knowledge).await
}

/// The app over a knowledge base of the test's choosing (another index backend, say).
pub async fn spawn_app_with(channel: Channel, knowledge: Arc<KnowledgeBase>) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(channel, knowledge, data_dir.path(), |_| {}).await;
    app.data_dir = Some(data_dir);
    app
}

/// The app over the shared knowledge base, in a fresh data directory, with the settings
/// adjusted by `tweak` (timeouts, workers, an `[llm]` section).
pub async fn spawn_app_tweaked(channel: Channel, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(channel, knowledge().await, data_dir.path(), tweak).await;
    app.data_dir = Some(data_dir);
    app
}

/// [`spawn_app_tweaked`] over a knowledge base of its own (a copy of the shared one's
/// catalogs and snapshots, in the app's data directory), for tests that change a catalog:
/// the other tests of the binary read the shared one.
pub async fn spawn_app_own_knowledge(channel: Channel, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    // The shared one is built on first use; the copy is made from it.
    knowledge().await;
    let data_dir = tempfile::tempdir().unwrap();
    let knowledge = Arc::new(copied_knowledge(data_dir.path()));
    let mut app = spawn_app_in(channel, knowledge, data_dir.path(), tweak).await;
    app.data_dir = Some(data_dir);
    app
}

/// The app with its data (and SQLite store) in `data_dir`, which the test may have prepared
/// (or put on a small filesystem), and the settings adjusted by `tweak`.
pub async fn spawn_app_in(
    channel: Channel,
    knowledge: Arc<KnowledgeBase>,
    data_dir: &Path,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    log_buffer();
    let mut settings = Settings::load(None).unwrap();
    settings.data_dir = data_dir.to_owned();
    settings.server.max_body_bytes = 16 * 1024;
    tweak(&mut settings);
    let twilio = match channel {
        Channel::Simulator => None,
        Channel::TwilioTwiml | Channel::TwilioRest => {
            let server = MockServer::start().await;
            settings.channel = ChannelKind::Twilio;
            let config: TwilioConfig = serde_json::from_value(json!({
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "public_url": PUBLIC_URL,
                "api_base": server.uri(),
                "reply": if channel == Channel::TwilioTwiml { "twiml" } else { "rest" },
                "retry_backoff": 1,
            }))
            .unwrap();
            assert_eq!(
                config.reply,
                if channel == Channel::TwilioTwiml {
                    ReplyMode::Twiml
                } else {
                    ReplyMode::Rest
                }
            );
            settings.twilio = Some(config);
            Some(server)
        }
    };
    let clock = ManualClock::at(T0);
    // The wiring `parley serve` runs, over the binary's shared knowledge base and classifier.
    // With `[llm]` set by `tweak`, drafts come from that (fake) OpenAI-compatible endpoint.
    let parts = startup::Parts {
        knowledge: Some(knowledge),
        classifier: Some(parley_testkit::classifier().await),
        clock: Some(Arc::new(clock.clone())),
    };
    let state = startup::build(&settings, parts).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let served = state.clone();
    tokio::spawn(async move {
        parley_server::run(listener, served, async {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        clock,
        twilio,
        data_dir: None,
        shutdown: Some(shutdown),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A real small filesystem (a tmpfs the test mounts; the tests run as root, as CI does) for
/// disk-full tests: SQLite meets a real ENOSPC at the point it really would, mid-commit,
/// which no in-process cap reproduces. `resize` frees space; dropping it unmounts.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size_kb: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kb}k"), "parley-test"])
            .arg(dir.path())
            .status();
        assert!(
            mounted.is_ok_and(|status| status.success()),
            "the disk-full tests mount a tmpfs and need root (CAP_SYS_ADMIN)"
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn resize(&self, size_kb: u32) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size_kb}k")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the store may still hold its files open while the app shuts down.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A knowledge base of its own in `dir`, holding copies of the shared one's catalogs and
/// index snapshots (no embedding needed), for tests that break or replace its files.
pub fn copied_knowledge(dir: &Path) -> KnowledgeBase {
    for sub in ["merchants", "index"] {
        let from = shared_knowledge_dir().join(sub);
        let to = dir.join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap().flatten() {
            let path = entry.path();
            if path.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                std::fs::copy(&path, to.join(entry.file_name())).unwrap();
            }
        }
    }
    KnowledgeBase::open_embedded(parley_testkit::embedder(), dir).unwrap()
}

/// A Twilio inbound-message form, in the field order Twilio sends.
pub fn inbound_form(sid: &str, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn encode_form(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent(name));
        out.push('=');
        out.push_str(&percent(value));
    }
    out
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl TestApp {
    /// The injected clock's time.
    pub fn clock_now(&self) -> i64 {
        use parley_core::Clock as _;
        self.clock.now_ms()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// POSTs a form to a Twilio webhook path, signed as Twilio would sign it.
    pub async fn post_signed(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        let signed = signature(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), params);
        self.post_form(path, encode_form(params).into_bytes(), Some(&signed))
            .await
    }

    pub async fn post_form(&self, path: &str, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// A customer texts the merchant through the Twilio webhook.
    pub async fn text(&self, sid: &str, from: &str, to: &str, body: &str) -> reqwest::Response {
        self.post_signed("/webhooks/twilio/sms", &inbound_form(sid, from, to, body))
            .await
    }

    /// [`App::text`] that must be acknowledged with 200.
    pub async fn text_ok(&self, sid: &str, from: &str, to: &str, body: &str) {
        let status = self.text(sid, from, to, body).await.status();
        assert_eq!(status, 200, "webhook for {sid} answered {status}");
    }

    /// A customer texts through the simulator; returns the JSON result.
    pub async fn simulate(&self, merchant: &str, from: &str, body: &str) -> Value {
        let response = self
            .client
            .post(self.url("/v1/simulator/messages"))
            .json(&json!({ "merchant_id": merchant, "from": from, "body": body }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "simulator refused {body:?}");
        response.json().await.unwrap()
    }

    /// Creates a support user and returns its bearer token.
    pub async fn token(&self, merchant: &str, name: &str, role: UserRole) -> String {
        let token = new_token();
        self.state
            .service
            .store
            .create_user(merchant, name, role, &token_hash(&token), T0)
            .await
            .unwrap();
        token
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A body that claims to be JSON and is not, unauthenticated (bad-input tests).
    pub async fn post_malformed_json(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text `/metrics` serves.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// A stored message by id.
    pub async fn message(&self, id: i64) -> parley_server::store::MessageRow {
        self.state.service.store.message(id).await.unwrap().unwrap()
    }

    /// The id of the merchant's oldest open escalation.
    pub async fn first_open_escalation(&self, merchant: &str) -> i64 {
        self.state
            .service
            .store
            .escalations(merchant, &[EscalationStatus::Open])
            .await
            .unwrap()[0]
            .id
    }

    pub async fn count(&self, of: CountOf) -> i64 {
        self.state.service.store.count(of).await.unwrap()
    }

    /// A GET without credentials, answered with JSON.
    pub async fn get_public(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    /// What was texted to `phone`, oldest first.
    pub async fn sent_to(&self, merchant: &str, phone: &str) -> Vec<parley_server::store::MessageRow> {
        self.state
            .service
            .store
            .outbound_since(merchant, phone, 0)
            .await
            .unwrap()
    }

    pub async fn assert_nothing_stored(&self) {
        assert_eq!(self.count(CountOf::Inbound).await, 0, "inbound messages stored");
        assert_eq!(self.count(CountOf::Outbound).await, 0, "outbound messages stored");
    }

    /// Waits for background decisions and sends (REST reply mode) to finish.
    pub async fn settle(&self) {
        tokio::time::timeout(Duration::from_secs(60), self.state.service.idle())
            .await
            .expect("background work did not finish");
    }

    /// Requests the fake Twilio received on the Messages endpoint, as parsed forms.
    pub async fn twilio_sends(&self) -> Vec<Vec<(String, String)>> {
        let Some(server) = &self.twilio else {
            return Vec::new();
        };
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|request| request.url.path().ends_with("/Messages.json"))
            .map(|request| parley_server::twilio::parse_form(&request.body).unwrap())
            .collect()
    }
}

pub fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    parley_server::twilio::form_value(form, name)
}
