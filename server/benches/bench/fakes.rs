//! Local stand-ins for the paid APIs, speaking their real wire formats, so the bench measures
//! Parley and not a network: Twilio's Messages API (it records when each reply arrives, which
//! gives end-to-end latency) and an OpenAI-compatible chat endpoint that answers instantly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Replies received by the fake Twilio: per recipient, the first arrival and how many came.
#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<HashMap<String, (Instant, usize)>>>);

impl Outbox {
    pub fn arrival(&self, phone: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(phone).map(|(at, _)| *at)
    }

    /// How many messages each recipient got (the soak bench's duplicate check).
    #[allow(dead_code)]
    pub fn counts(&self) -> HashMap<String, usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(phone, (_, n))| (phone.clone(), *n))
            .collect()
    }
}

async fn create_message(State(outbox): State<Outbox>, body: Bytes) -> impl IntoResponse {
    let now = Instant::now();
    let form = parley_server::twilio::parse_form(&body).unwrap_or_default();
    let to = parley_server::twilio::form_value(&form, "To")
        .unwrap_or_default()
        .to_owned();
    let n = {
        let mut outbox = outbox.0.lock().unwrap();
        outbox.entry(to.clone()).or_insert((now, 0)).1 += 1;
        outbox.len()
    };
    (
        StatusCode::CREATED,
        axum::Json(json!({ "sid": format!("SM{n:032x}"), "status": "queued", "to": to })),
    )
}

/// Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`; returns its base URL.
pub async fn twilio() -> (String, Outbox) {
    let outbox = Outbox::default();
    let router = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
        .with_state(outbox.clone());
    (format!("http://{}", serve(router).await), outbox)
}

async fn chat_completion() -> impl IntoResponse {
    axum::Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "instant",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Thanks for your message! Let me check that for you." },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 12, "total_tokens": 13 }
    }))
}

/// `POST {base}/chat/completions` answering at once; returns the base URL (`…/v1`).
pub async fn instant_llm() -> String {
    let router = Router::new().route("/v1/chat/completions", post(chat_completion));
    format!("http://{}/v1", serve(router).await)
}
