//! Parley's service: the HTTP API (axum) over the agent, the store and the channel. Only this
//! crate knows HTTP, JSON wire shapes and SMS provider formats.

pub mod api;
pub mod channel;
pub mod commerce;
pub mod flows;
pub mod fuzzing;
pub mod import;
pub mod inbox;
pub mod jobs;
pub mod markup;
pub mod metrics;
pub mod outbox;
pub mod service;
pub mod settings;
pub mod shopify;
pub mod startup;
pub mod store;
pub mod twilio;
pub mod webhooks;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parley_knowledge::{KnowledgeBase, KnowledgeError};
use serde::Serialize;
use sha2::Digest;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{PathLabels, RequestLabels};
use crate::service::{Service, ServiceError};
use crate::settings::ChannelKind;
use crate::store::{StoreError, User, UserRole};
use crate::twilio::TwilioConfig;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub knowledge: Arc<KnowledgeBase>,
    pub channel: ChannelKind,
    pub twilio: Option<Arc<TwilioConfig>>,
    /// The Shopify app's webhook secret; absent: `/webhooks/shopify` answers 404.
    pub shopify: Option<Arc<shopify::ShopifyConfig>>,
    /// Uploaded merchant directories live here, one folder per merchant.
    pub merchants_dir: PathBuf,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Inbox session cookies are `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

pub fn app(state: AppState) -> Router {
    // Knowledge uploads are large and slow (embedding): their own body limit, no timeout.
    let uploads = api::upload_routes()
        .layer(DefaultBodyLimit::max(state.max_upload_bytes))
        .layer(axum::middleware::map_response(json_errors));
    let shopify_limit = state
        .shopify
        .as_ref()
        .map_or(state.max_body_bytes, |shopify| shopify.max_body_bytes);
    let shopify = webhooks::shopify_routes()
        .layer(DefaultBodyLimit::max(shopify_limit))
        .layer(axum::middleware::map_response(json_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ));
    let bounded = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(api::routes().layer(axum::middleware::map_response(json_errors)))
        .merge(webhooks::routes())
        .merge(inbox::routes())
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ));
    Router::new()
        .merge(bounded)
        .merge(shopify)
        .merge(uploads)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_requests,
        ))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves; then finishes in-flight requests and
/// the background work they started (decisions, sends) before returning. Meanwhile a sweeper
/// picks up work that stalled (see `Service::resume_stale`) and the scheduler starts due jobs
/// (`Service::run_due_jobs`).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = state.service.clone();
    let stop_sweeping = tokio_util::sync::CancellationToken::new();
    let sweeper = tokio::spawn(service.clone().sweep_until(stop_sweeping.clone()));
    let scheduler = tokio::spawn(service.clone().poll_jobs_until(stop_sweeping.clone()));
    let limits = (state.header_timeout, state.max_connections);
    serve_connections(listener, app(state), limits, shutdown).await;
    stop_sweeping.cancel();
    let _ = sweeper.await;
    let _ = scheduler.await;
    service.drain().await;
    service.store.close().await;
    tracing::info!("in-flight work finished; stopped");
    Ok(())
}

/// The accept loop: axum's `serve`, plus what it does not offer. A client must send its
/// headers within `header_timeout` (hyper's header-read timeout) and at most
/// `max_connections` are open at once (past that, new clients wait in the kernel's backlog),
/// so slow or half-open clients cannot crowd out Twilio's webhooks. Bodies are bounded by the
/// router's request timeout. On shutdown, connections finish their in-flight requests.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    (header_timeout, max_connections): (Duration, usize),
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    // HTTP/1 only, as axum's own `serve` was built here: Twilio and the inbox speak it, and
    // sniffing for an HTTP/2 preface would read the first bytes with no timeout at all (a
    // client that connects and sends nothing would hold its slot forever).
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let connections = tokio_util::task::TaskTracker::new();
    let stopping = tokio_util::sync::CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stream = Tracked::new(stream);
        let activity = stream.activity.clone();
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            // hyper's header timeout starts with a request's first byte; a connection that
            // sends nothing at all (new, or idle between keep-alive requests) is closed here
            // once no byte has moved for `header_timeout`. A graceful shutdown lets a request
            // still being answered finish first.
            loop {
                let idle_until = activity.last() + header_timeout;
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = stopping.cancelled() => break,
                    () = tokio::time::sleep_until(idle_until) => {
                        if activity.last() + header_timeout <= tokio::time::Instant::now() {
                            break;
                        }
                    }
                }
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
}

/// When a connection last moved a byte, either way.
#[derive(Clone)]
struct Activity {
    epoch: tokio::time::Instant,
    /// Milliseconds after `epoch`.
    last_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A TCP stream that records its last activity for the idle check in `serve_connections`.
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Activity,
}

impl Tracked {
    fn new(inner: tokio::net::TcpStream) -> Self {
        Self {
            inner,
            activity: Activity {
                epoch: tokio::time::Instant::now(),
                last_ms: Arc::default(),
            },
        }
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, bytes);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts and times every request by its route template (never the raw path: ids and
/// phone numbers stay out of metric labels).
async fn track_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.service.metrics;
    metrics
        .request_seconds
        .get_or_create(&PathLabels { path: path.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            path,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// A request method as a metric label: the methods HTTP defines, or `other`, so a client
/// inventing methods cannot grow `/metrics` without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// An API error: a status code and a message safe to show the caller, plus, for failures on
/// Parley's side, the whole cause for the log. Building one has no side effects: the cause is
/// logged once, where the error becomes a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Logged, never shown: it may name files, hosts or SQL.
    cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            cause: None,
        }
    }

    fn with_cause(self, cause: &dyn std::error::Error) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// Tells the caller only that it failed; the cause goes to the log.
    pub(crate) fn internal(err: &dyn std::error::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").with_cause(err)
    }
}

/// Every error the JSON API answers: `{"error": "what went wrong"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(status = self.status.as_u16(), error = %cause, "request failed");
        }
        (self.status, Json(ErrorBody { error: &self.message })).into_response()
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(err: KnowledgeError) -> Self {
        match &err {
            KnowledgeError::UnknownMerchant(_) => Self::new(StatusCode::NOT_FOUND, err.to_string()),
            KnowledgeError::InvalidMerchantId(_) | KnowledgeError::InvalidFile { .. } => {
                Self::bad_request(err.to_string())
            }
            // The index backend is down: the caller may retry, and a load balancer should
            // see a 503, not a bug.
            KnowledgeError::Unavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()).with_cause(&err)
            }
            KnowledgeError::Io { .. } | KnowledgeError::Embedding(_) | KnowledgeError::Index(_) => {
                Self::internal(&err)
            }
        }
    }
}

impl From<parley_core::InvalidPhone> for ApiError {
    fn from(err: parley_core::InvalidPhone) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<parley_core::InvalidMerchantId> for ApiError {
    fn from(err: parley_core::InvalidMerchantId) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, message.clone()),
            StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::State(_)
            | StoreError::NotDurable(_) => Self::internal(&err),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Store(err) => err.into(),
            ServiceError::Refused(refused @ service::Refused::NotAssignee) => {
                Self::new(StatusCode::FORBIDDEN, refused.to_string())
            }
            ServiceError::Refused(refused) => Self::new(StatusCode::CONFLICT, refused.to_string()),
            ServiceError::Knowledge(err) => err.into(),
        }
    }
}

/// The support-side user an API request acts as: a bearer token (`Authorization: Bearer …`).
/// The inbox's session cookie is not accepted here: the API takes no ambient credentials, so
/// a page elsewhere cannot make a browser call it.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

pub const SESSION_COOKIE: &str = "parley_session";

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_token(&parts.headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing credentials: send Authorization: Bearer <token>",
            ));
        };
        match state
            .service
            .store
            .user_by_token_hash(&token_hash(&token))
            .await?
        {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token")),
        }
    }
}

impl AuthUser {
    /// Checks the user may act for `merchant_id` with at least `role`. Another merchant's
    /// data answers 404, exactly as if it did not exist.
    pub fn require(&self, merchant_id: &str, role: UserRole) -> Result<&User, ApiError> {
        if self.0.merchant_id != merchant_id {
            return Err(ApiError::not_found("merchant"));
        }
        if role == UserRole::Admin && self.0.role != UserRole::Admin {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "this needs an admin token"));
        }
        Ok(&self.0)
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// Tokens are stored only as their sha256.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A new random bearer token (256 bits).
pub fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("pk_{}", hex::encode(bytes))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", content_type = "text/plain", body = String))
)]
async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    ready: bool,
    store: bool,
    /// A write committed and was read back through another connection (a full disk or a
    /// broken writer fails this while reads still work).
    store_writable: bool,
    index: bool,
    /// Merchants whose catalog or index could not be read when last used: their customers are
    /// handed to people until a re-ingest repairs them. The replica stays ready for the rest.
    /// (Ids only: this endpoint is unauthenticated; the log says what is wrong.)
    merchants_unavailable: Vec<String>,
    embedding_model: String,
    index_backend: &'static str,
    merchants: usize,
    channel: &'static str,
}

/// Ready when the store answers reads and commits a write, the index backend can serve (for
/// Qdrant: it answers its health check and the collections API) and the model is loaded.
/// `merchants` counts the catalogs this replica holds; one merchant's unreadable knowledge is
/// named but does not make the replica unready.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready: the store cannot read or commit, or the index cannot serve", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.service.store.ping().await.is_ok();
    let store_writable = match state.service.store.probe_write(state.service.now()).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "not ready: the store cannot commit a write");
            false
        }
    };
    let index = match state.knowledge.index().ready().await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "not ready: the knowledge index cannot serve");
            false
        }
    };
    let merchants_unavailable = state
        .knowledge
        .unavailable_merchants()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    let readiness = Readiness {
        ready: store && store_writable && index,
        store,
        store_writable,
        index,
        merchants_unavailable,
        embedding_model: state.knowledge.embedder().model_id().to_owned(),
        index_backend: state.knowledge.index().backend_name(),
        merchants: state.knowledge.merchant_ids().map_or(0, |m| m.len()),
        channel: state.service.channel.name(),
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi as _;
    Json(api::ApiDoc::openapi())
}

/// The JSON API answers every error as `{"error": ...}`, including the ones axum's extractors
/// produce as plain text (a malformed path id, query or JSON body, a missing content type,
/// a body over the limit, a timeout): one shape for clients and for the OpenAPI description.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => parts.status.canonical_reason().unwrap_or("error"),
        text => text,
    };
    let mut response = (parts.status, Json(ErrorBody { error: message })).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.service.metrics.encode(),
    )
        .into_response()
}

/// Picks rustls's crypto provider for the process. The build carries two (aws-lc-rs through
/// reqwest, ring through qdrant-client's gRPC stack), and with two rustls refuses to choose,
/// so any TLS client relying on the default would panic. Idempotent; call it first thing.
pub fn install_crypto_provider() {
    // Err only means one is installed already, which is all this wants.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_error_keeps_its_cause_for_the_log_and_out_of_the_answer() {
        let err = ApiError::from(StoreError::NotDurable("replies table on /var/lib/parley"));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            err.cause
                .as_deref()
                .is_some_and(|cause| cause.contains("/var/lib/parley"))
        );
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"internal error"}"#);

        // A caller's mistake has nothing to log.
        let conflict = ApiError::from(StoreError::Conflict("already resolved".into()));
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert!(conflict.cause.is_none());
    }
}
