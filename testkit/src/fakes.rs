//! Local stand-ins for the paid APIs, speaking their real wire formats: Twilio's Messages API
//! and an OpenAI-compatible Chat Completions endpoint. Tests script them with wiremock
//! (matchers, recorded requests); benches use the plain axum fakes, which keep no request log
//! and record when each reply arrives (end-to-end latency).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The account the fake Twilio answers for (an `AC` sid of the real shape).
pub const TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";

/// A Chat Completions response body as OpenAI and compatible servers send it.
pub fn completion_body(content: &str) -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_735_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 420, "completion_tokens": 24, "total_tokens": 444}
    })
}

/// A 200 answer carrying [`completion_body`].
pub fn completion(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion_body(content))
}

/// An OpenAI-compatible server whose `POST /v1/chat/completions` always answers `response`;
/// point a client at `{uri}/v1`.
pub async fn llm(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Twilio's 201 answer to a created message with sid `SM…{n}`, status `queued`.
pub fn twilio_created(n: u64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": format!("SMfa4e{n:028x}"),
        "status": "queued",
        "account_sid": TWILIO_ACCOUNT_SID,
        "api_version": "2010-04-01",
    }))
}

/// Makes a fake Twilio accept every message, answering with distinct sids like the real API.
pub async fn accept_all_messages(server: &MockServer) {
    let counter = Arc::new(AtomicU64::new(1));
    Mock::given(method("POST"))
        .and(path_regex(r"^/2010-04-01/Accounts/AC[0-9a-f]+/Messages\.json$"))
        .respond_with(move |_: &wiremock::Request| twilio_created(counter.fetch_add(1, Ordering::SeqCst)))
        .mount(server)
        .await;
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Replies received by the bench's fake Twilio: per recipient, the first arrival and how
/// many came.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<HashMap<String, (Instant, usize)>>>);

impl Arrivals {
    pub fn arrival(&self, phone: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(phone).map(|(at, _)| *at)
    }

    /// How many messages each recipient got (the soak bench's duplicate check).
    pub fn counts(&self) -> HashMap<String, usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(phone, (_, n))| (phone.clone(), *n))
            .collect()
    }
}

async fn create_message(State(arrivals): State<Arrivals>, body: Bytes) -> impl IntoResponse {
    let now = Instant::now();
    let to = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "To")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let n = {
        let mut arrivals = arrivals.0.lock().unwrap();
        arrivals.entry(to.clone()).or_insert((now, 0)).1 += 1;
        arrivals.len()
    };
    (
        StatusCode::CREATED,
        axum::Json(json!({ "sid": format!("SM{n:032x}"), "status": "queued", "to": to })),
    )
}

/// A fake Twilio `POST /2010-04-01/Accounts/{sid}/Messages.json` that records arrivals;
/// returns its base URL.
pub async fn twilio_recording() -> (String, Arrivals) {
    let arrivals = Arrivals::default();
    let router = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
        .with_state(arrivals.clone());
    (format!("http://{}", serve(router).await), arrivals)
}

/// `POST {base}/chat/completions` answering at once; returns the base URL (`…/v1`).
pub async fn instant_llm() -> String {
    async fn answer() -> impl IntoResponse {
        axum::Json(completion_body(
            "Thanks for your message! Let me check that for you.",
        ))
    }
    let router = Router::new().route("/v1/chat/completions", post(answer));
    format!("http://{}/v1", serve(router).await)
}
