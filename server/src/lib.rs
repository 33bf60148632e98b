//! Parley's service: the HTTP API (axum) over the knowledge base. Only this crate knows
//! HTTP, JSON wire shapes and SMS provider formats.

pub mod settings;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parley_knowledge::{KnowledgeBase, KnowledgeError, MerchantId, SearchHit};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub knowledge: Arc<KnowledgeBase>,
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/merchants/{merchant_id}/search", get(search))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An API error: a status code and a message safe to show the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self.message })).into_response()
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(err: KnowledgeError) -> Self {
        let (status, message) = match &err {
            KnowledgeError::UnknownMerchant(_) => (StatusCode::NOT_FOUND, err.to_string()),
            KnowledgeError::InvalidMerchantId { .. } | KnowledgeError::InvalidFile { .. } => {
                (StatusCode::BAD_REQUEST, err.to_string())
            }
            // Internal failures: log the whole chain, tell the caller only that it failed.
            KnowledgeError::Io { .. } | KnowledgeError::Embedding(_) | KnowledgeError::Index(_) => {
                tracing::error!(error = %err, "knowledge request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
            }
        };
        Self { status, message }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    embedding_model: String,
    index_backend: &'static str,
    merchants: usize,
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let merchants = state.knowledge.index().merchants().await?.len();
    Ok(Json(Readiness {
        ready: true,
        embedding_model: state.knowledge.embedder().model_id().to_owned(),
        index_backend: state.knowledge.index().backend_name(),
        merchants,
    }))
}

#[derive(Deserialize)]
struct SearchParams {
    q: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    5
}

#[derive(Serialize)]
struct SearchResponse {
    merchant_id: String,
    hits: Vec<SearchHitBody>,
}

#[derive(Serialize)]
struct SearchHitBody {
    source: String,
    heading_path: Vec<String>,
    text: String,
    score: f32,
    dense_score: Option<f32>,
    lexical_score: Option<f32>,
}

impl From<SearchHit> for SearchHitBody {
    fn from(hit: SearchHit) -> Self {
        Self {
            source: hit.chunk.source,
            heading_path: hit.chunk.heading_path,
            text: hit.chunk.text,
            score: hit.score,
            dense_score: hit.dense_score,
            lexical_score: hit.lexical_score,
        }
    }
}

async fn search(
    State(state): State<AppState>,
    Path(merchant_id): Path<String>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let merchant = MerchantId::parse(&merchant_id)?;
    let question = params.q.trim();
    if question.is_empty() || question.len() > 2000 {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: "`q` must be 1 to 2000 characters".into(),
        });
    }
    if !(1..=50).contains(&params.limit) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: "`limit` must be between 1 and 50".into(),
        });
    }
    let hits = state.knowledge.search(&merchant, question, params.limit).await?;
    Ok(Json(SearchResponse {
        merchant_id: merchant.to_string(),
        hits: hits.into_iter().map(SearchHitBody::from).collect(),
    }))
}
