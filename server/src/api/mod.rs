//! The JSON APIs: support agents' escalation queue, the merchant's knowledge, conversations
//! and consent export, knowledge search, and the simulator channel.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parley_core::Phone;
use parley_knowledge::{IngestReport, MerchantData, MerchantId, SearchHit};
use serde::{Deserialize, Serialize};

mod bodies;
mod flows;
mod jobs;
pub use bodies::{ConversationBody, EscalationBody, MessageBody};

use crate::settings::ChannelKind;
use crate::store::{
    EscalationRow, EscalationStatus, Merchant, MessageStatus, NewInbound, Received, UserRole,
};
use crate::{ApiError, AppState, AuthUser, ErrorBody};
use parley_core::clock::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/merchants/{merchant_id}/search", get(search))
        .route("/v1/merchants/{merchant_id}/escalations", get(list_escalations))
        .route(
            "/v1/merchants/{merchant_id}/escalations/{id}",
            get(get_escalation),
        )
        .route("/v1/merchants/{merchant_id}/escalations/{id}/claim", post(claim))
        .route("/v1/merchants/{merchant_id}/escalations/{id}/reply", post(reply))
        .route(
            "/v1/merchants/{merchant_id}/escalations/{id}/resolve",
            post(resolve),
        )
        .route(
            "/v1/merchants/{merchant_id}/escalations/{id}/reassign",
            post(reassign),
        )
        .route(
            "/v1/merchants/{merchant_id}/conversations",
            get(list_conversations),
        )
        .route(
            "/v1/merchants/{merchant_id}/conversations/{id}",
            get(get_conversation),
        )
        .route("/v1/merchants/{merchant_id}/consent/export", get(consent_export))
        .route("/v1/merchants/{merchant_id}/knowledge/reingest", post(reingest))
        .route(
            "/v1/simulator/messages",
            post(simulator_send).get(simulator_inbox),
        )
        .merge(jobs::routes())
        .merge(flows::routes())
}

/// Routes that take large bodies.
pub fn upload_routes() -> Router<AppState> {
    Router::new().route("/v1/merchants/{merchant_id}/knowledge", put(upload_knowledge))
}

// ---- search --------------------------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
struct SearchParams {
    /// The question, 1 to 2000 characters.
    #[param(min_length = 1, max_length = 2000, pattern = r"\S")]
    q: String,
    /// Passages to return, 1 to 50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    5
}

#[derive(Serialize, utoipa::ToSchema)]
struct SearchResponse {
    merchant_id: String,
    hits: Vec<SearchHitBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
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

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/search",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), SearchParams),
    responses(
        (status = 200, description = "The best passages, best first", body = SearchResponse),
        (status = 503, description = "The knowledge index is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    user.require(&merchant_id, UserRole::Agent)?;
    let merchant = MerchantId::parse(&merchant_id)?;
    let question = params.q.trim();
    if question.is_empty() || question.len() > 2000 {
        return Err(ApiError::bad_request("`q` must be 1 to 2000 characters"));
    }
    if !(1..=50).contains(&params.limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 50"));
    }
    let hits = state.knowledge.search(&merchant, question, params.limit).await?;
    Ok(Json(SearchResponse {
        merchant_id: merchant.to_string(),
        hits: hits.into_iter().map(SearchHitBody::from).collect(),
    }))
}

// ---- escalations ---------------------------------------------------------------------------

/// An escalation as agents see it: the escalation, its SLA state and the conversation so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EscalationView {
    #[serde(flatten)]
    pub escalation: EscalationBody,
    /// Past its SLA and still not resolved.
    pub overdue: bool,
    pub transcript: Vec<MessageBody>,
}

pub async fn escalation_view(state: &AppState, row: EscalationRow) -> Result<EscalationView, ApiError> {
    let transcript = state
        .service
        .store
        .transcript(&row.merchant_id, row.conversation_id)
        .await?;
    Ok(EscalationView {
        overdue: row.status != EscalationStatus::Resolved && state.service.now() > row.due_at,
        escalation: EscalationBody::from(&row),
        transcript: transcript.into_iter().map(MessageBody::from).collect(),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// open, claimed, resolved, or active (open and claimed; the default).
    #[serde(default)]
    status: Option<String>,
}

fn statuses(filter: Option<&str>) -> Result<Vec<EscalationStatus>, ApiError> {
    match filter.unwrap_or("active") {
        "active" => Ok(EscalationStatus::ACTIVE.to_vec()),
        other => other.parse().map(|status| vec![status]).map_err(|_| {
            ApiError::bad_request(format!(
                "unknown status {other:?}; use open, claimed, resolved or active"
            ))
        }),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct EscalationList {
    escalations: Vec<EscalationView>,
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/escalations",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ListParams),
    responses(
        (status = 200, description = "The queue, oldest first", body = EscalationList),
    ),
    security(("bearer" = [])),
)]
async fn list_escalations(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<EscalationList>, ApiError> {
    user.require(&merchant_id, UserRole::Agent)?;
    let rows = state
        .service
        .store
        .escalations(&merchant_id, &statuses(params.status.as_deref())?)
        .await?;
    let mut escalations = Vec::with_capacity(rows.len());
    for row in rows {
        escalations.push(escalation_view(&state, row).await?);
    }
    Ok(Json(EscalationList { escalations }))
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/escalations/{id}",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    responses(
        (status = 200, description = "One escalation with its transcript", body = EscalationView),
    ),
    security(("bearer" = [])),
)]
async fn get_escalation(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<EscalationView>, ApiError> {
    user.require(&merchant_id, UserRole::Agent)?;
    let row = state.service.store.escalation(&merchant_id, id).await?;
    Ok(Json(escalation_view(&state, row).await?))
}

#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/escalations/{id}/claim",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    responses(
        (status = 200, description = "Claimed by the caller", body = EscalationView),
        (status = 409, description = "Resolved, or claimed by someone else", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn claim(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<EscalationView>, ApiError> {
    let user = user.require(&merchant_id, UserRole::Agent)?;
    let row = state.service.claim(&merchant_id, id, user).await?;
    Ok(Json(escalation_view(&state, row).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReplyRequest {
    /// The text to send the customer, 1 to 1600 characters.
    pub body: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ReplyResponse {
    message: MessageBody,
    escalation: EscalationView,
}

/// How long a support agent's request waits for the provider before answering with the
/// message still in flight.
const HUMAN_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends a support agent's reply to the customer over the channel; returns it with its status.
pub async fn send_human_reply(
    state: &AppState,
    user: &crate::store::User,
    merchant_id: &str,
    id: i64,
    body: &str,
) -> Result<MessageBody, ApiError> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 1600 {
        return Err(ApiError::bad_request("`body` must be 1 to 1600 characters"));
    }
    let message_id = state.service.human_reply(merchant_id, id, user, body).await?;
    // The reply is durably queued; the send runs in the background with the same
    // at-most-once rules as AI replies. Usually it is done at once and the answer says how it
    // went; with a slow provider the answer says `pending`/`sending`, and the inbox shows the
    // outcome when it comes.
    let sending = state.service.deliver_in_background(message_id);
    let _ = tokio::time::timeout(HUMAN_REPLY_WAIT, sending).await;
    state
        .service
        .store
        .message(message_id)
        .await?
        .map(MessageBody::from)
        .ok_or_else(|| ApiError::not_found("message"))
}

#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/escalations/{id}/reply",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    request_body = ReplyRequest,
    responses(
        (status = 200, description = "Queued and, usually, handed to the provider; `message.status` says how far it got", body = ReplyResponse),
        (status = 409, description = "Resolved, claimed by someone else, or the customer opted out", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn reply(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
    Json(request): Json<ReplyRequest>,
) -> Result<Json<ReplyResponse>, ApiError> {
    let user = user.require(&merchant_id, UserRole::Agent)?;
    let message = send_human_reply(&state, user, &merchant_id, id, &request.body).await?;
    let row = state.service.store.escalation(&merchant_id, id).await?;
    Ok(Json(ReplyResponse {
        message,
        escalation: escalation_view(&state, row).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/escalations/{id}/resolve",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    responses(
        (status = 200, description = "Resolved; the AI answers the customer again", body = EscalationView),
        (status = 409, description = "Already resolved", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn resolve(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<EscalationView>, ApiError> {
    user.require(&merchant_id, UserRole::Agent)?;
    let row = state.service.resolve(&merchant_id, id).await?;
    Ok(Json(escalation_view(&state, row).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ReassignRequest {
    /// The user name of the agent who takes it over.
    assignee: String,
}

#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/escalations/{id}/reassign",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    request_body = ReassignRequest,
    responses(
        (status = 200, description = "Reassigned", body = EscalationView),
        (status = 409, description = "Already resolved", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn reassign(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
    Json(request): Json<ReassignRequest>,
) -> Result<Json<EscalationView>, ApiError> {
    let user = user.require(&merchant_id, UserRole::Agent)?;
    let row = state
        .service
        .reassign(&merchant_id, id, user, &request.assignee)
        .await?
        .ok_or_else(|| ApiError::not_found("assignee"))?;
    Ok(Json(escalation_view(&state, row).await?))
}

// ---- conversations and consent -------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
struct ConversationParams {
    /// How many, most recent first: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default = "default_page")]
    limit: i64,
}

pub(super) fn default_page() -> i64 {
    100
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationList {
    conversations: Vec<ConversationBody>,
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/conversations",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ConversationParams),
    responses(
        (status = 200, description = "Conversations, most recently active first", body = ConversationList),
    ),
    security(("bearer" = [])),
)]
async fn list_conversations(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Query(params): Query<ConversationParams>,
) -> Result<Json<ConversationList>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    if !(1..=1000).contains(&params.limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let conversations = state
        .service
        .store
        .conversations(&merchant_id, params.limit)
        .await?
        .into_iter()
        .map(ConversationBody::from)
        .collect();
    Ok(Json(ConversationList { conversations }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Transcript {
    id: i64,
    messages: Vec<MessageBody>,
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/conversations/{id}",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The escalation's or conversation's id")),
    responses(
        (status = 200, description = "The conversation's messages, oldest first", body = Transcript),
    ),
    security(("bearer" = [])),
)]
async fn get_conversation(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<Transcript>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let messages = state
        .service
        .store
        .transcript(&merchant_id, id)
        .await?
        .into_iter()
        .map(MessageBody::from)
        .collect();
    Ok(Json(Transcript { id, messages }))
}

/// The consent ledger as CSV, oldest first (the TCPA record a merchant must be able to show).
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/consent/export",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    responses(
        (status = 200, description = "id,timestamp,merchant_id,phone,action,keyword,source,provider_message_id,purpose,proof", content_type = "text/csv", body = String),
    ),
    security(("bearer" = [])),
)]
async fn consent_export(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let rows = state.service.store.consent_ledger(&merchant_id).await?;
    let header = [
        "id",
        "timestamp",
        "merchant_id",
        "phone",
        "action",
        "keyword",
        "source",
        "provider_message_id",
        "purpose",
        "proof",
    ];
    let records = rows.iter().map(|row| {
        [
            row.id.to_string(),
            rfc3339(row.created_at),
            merchant_id.clone(),
            // E.164 by construction (`+` and digits): a spreadsheet reads it as a number,
            // never a formula, and the prefix would spoil the column for lookups.
            row.phone.clone(),
            row.action.as_str().to_owned(),
            spreadsheet_safe(&row.keyword).into_owned(),
            spreadsheet_safe(&row.source).into_owned(),
            spreadsheet_safe(row.provider_sid.as_deref().unwrap_or("")).into_owned(),
            row.purpose.clone(),
            spreadsheet_safe(row.proof.as_deref().unwrap_or("")).into_owned(),
        ]
    });
    csv_download(&format!("{merchant_id}-consent.csv"), header, records)
}

/// A CSV file download: the header, then one record per row.
pub(super) fn csv_download<const N: usize>(
    filename: &str,
    columns: [&str; N],
    records: impl Iterator<Item = [String; N]>,
) -> Result<Response, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let write = || -> Result<(), csv::Error> {
        writer.write_record(columns)?;
        for record in records {
            writer.write_record(&record)?;
        }
        writer.flush()?;
        Ok(())
    };
    write().map_err(|err| ApiError::internal(&err))?;
    let body = writer
        .into_inner()
        .map_err(|err| ApiError::internal(err.error()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// A CSV cell a spreadsheet will not run as a formula, per OWASP's CSV-injection guidance: a
/// cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so
/// "=HYPERLINK(...)" texted by a customer stays text in the merchant's Excel.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

// ---- knowledge -----------------------------------------------------------------------------

/// Replaces a merchant's knowledge with an uploaded directory (a tar archive, optionally
/// gzipped, holding `merchant.toml` and the rest at its root or in one top folder). The upload
/// is validated and ingested before anything replaces the current copy.
#[utoipa::path(
    put,
    path = "/v1/merchants/{merchant_id}/knowledge",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The merchant directory as a tar or tar.gz"),
    responses(
        (status = 200, description = "Validated, ingested and swapped in", body = IngestReportBody),
        (status = 409, description = "The archive names a number not assigned to this merchant", body = ErrorBody),
        (status = 413, description = "Larger than `server.max_upload_bytes`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn upload_knowledge(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<IngestReport>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    std::fs::create_dir_all(&state.merchants_dir).map_err(|err| ApiError::internal(&err))?;
    let staging = tempfile::Builder::new()
        .prefix(".upload-")
        .tempdir_in(&state.merchants_dir)
        .map_err(|err| ApiError::internal(&err))?;
    let unpack_dir = staging.path().to_owned();
    let max_unpacked = state.max_upload_bytes.saturating_mul(4) as u64;
    let root = tokio::task::spawn_blocking(move || unpack_archive(&body, &unpack_dir, max_unpacked))
        .await
        .map_err(|err| ApiError::internal(&err))??;
    // Errors name files as the archive does, never where the server unpacked it.
    let data = MerchantData::load(&root).map_err(|err| archive_relative(err, staging.path()))?;
    if data.config.id.as_str() != merchant_id {
        return Err(ApiError::bad_request(format!(
            "merchant.toml says id = {:?}, but this upload is for {merchant_id:?}",
            data.config.id.as_str()
        )));
    }
    // Numbers are assigned by the operator (`parley ingest` on the server), never claimed by
    // a tenant: an upload may repeat the merchant's assigned number or leave it out. Checked
    // before the ingest, so a rejected upload leaves the current knowledge in place.
    let stored = state.service.store.merchant(&merchant_id).await?;
    let assigned = stored.as_ref().and_then(|merchant| merchant.sms_number.clone());
    if let Some(number) = &data.config.sms_number
        && assigned.as_deref() != Some(number.as_str())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "sms_number {number} is not this merchant's assigned number; numbers are assigned by the \
                 operator, so remove sms_number from merchant.toml or ask them to assign it"
            ),
        ));
    }
    // A shop domain routes that store's Shopify webhooks (its customers and orders) here: like
    // the number, the operator assigns it.
    let assigned_shop = stored.as_ref().and_then(|merchant| merchant.shop_domain.clone());
    if let Some(domain) = &data.config.shop_domain
        && assigned_shop.as_deref() != Some(domain.as_str())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "shop_domain {domain} is not this merchant's assigned shop domain; shop domains are \
                 assigned by the operator, so remove shop_domain from merchant.toml or ask them to assign it"
            ),
        ));
    }
    let mut merchant = Merchant::from_config(&data.config, None);
    merchant.sms_number = assigned;
    merchant.shop_domain = assigned_shop;
    let report =
        crate::commerce::ingest_directory(&state.knowledge, &state.service.store, data, &|_, _| {}).await?;
    // Keep the uploaded directory for re-ingest: swap it in by rename (same file system).
    let target = state.merchants_dir.join(&merchant_id);
    let old = state.merchants_dir.join(format!(".old-{merchant_id}"));
    let _ = std::fs::remove_dir_all(&old);
    if target.exists() {
        std::fs::rename(&target, &old).map_err(|err| ApiError::internal(&err))?;
    }
    std::fs::rename(&root, &target).map_err(|err| ApiError::internal(&err))?;
    let _ = std::fs::remove_dir_all(&old);
    merchant.knowledge_dir = Some(target.display().to_string());
    state
        .service
        .store
        .upsert_merchant(&merchant, state.service.now())
        .await?;
    sync_orders(&state, &merchant_id).await?;
    Ok(Json(report))
}

/// After an ingest: the directory's orders into the store the order tools read.
async fn sync_orders(state: &AppState, merchant_id: &str) -> Result<(), ApiError> {
    let id = MerchantId::parse(merchant_id).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let data = state.knowledge.merchant(&id)?;
    state.service.sync_directory_orders(&data).await?;
    Ok(())
}

/// An upload's validation error, its paths shown as they are inside the archive: the
/// server's own directories are nobody else's business.
fn archive_relative(err: parley_knowledge::KnowledgeError, staging: &Path) -> ApiError {
    let mut error = ApiError::from(err);
    let staging = staging.display().to_string();
    error.message = error
        .message
        .replace(&format!("{staging}/"), "")
        .replace(&staging, ".");
    error
}

/// Unpacks a (gzipped) tar into `dest`, refusing links, paths escaping `dest` and archives
/// that expand beyond `max_bytes`. Returns the directory holding `merchant.toml`.
pub fn unpack_archive(bytes: &[u8], dest: &Path, max_bytes: u64) -> Result<PathBuf, ApiError> {
    let reader: Box<dyn std::io::Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let bad = |message: String| ApiError::bad_request(format!("knowledge upload: {message}"));
    let mut archive = tar::Archive::new(reader);
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|err| bad(format!("not a tar archive: {err}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| bad(format!("unreadable archive: {err}")))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(bad(format!("{path}: only plain files and folders are accepted")));
        }
        total = total.saturating_add(entry.size());
        if total > max_bytes {
            return Err(bad(format!("the archive expands beyond {max_bytes} bytes")));
        }
        let inside = entry
            .unpack_in(dest)
            .map_err(|err| bad(format!("unpacking failed: {err}")))?;
        if !inside {
            return Err(bad("an entry's path points outside the archive".into()));
        }
    }
    if dest.join("merchant.toml").is_file() {
        return Ok(dest.to_owned());
    }
    let folders: Vec<PathBuf> = std::fs::read_dir(dest)
        .map_err(|err| ApiError::internal(&err))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("merchant.toml").is_file())
        .collect();
    match folders.as_slice() {
        [root] => Ok(root.clone()),
        _ => Err(bad(
            "merchant.toml not found at the archive's root or in its one top folder".into(),
        )),
    }
}

#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/knowledge/reingest",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    responses(
        (status = 200, description = "Re-ingested from the directory on record", body = IngestReportBody),
        (status = 409, description = "No knowledge directory on record", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn reingest(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
) -> Result<Json<IngestReport>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let merchant = state
        .service
        .store
        .merchant(&merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    let Some(dir) = merchant.knowledge_dir else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no knowledge directory on record; upload one with PUT /v1/merchants/{id}/knowledge",
        ));
    };
    let report = crate::commerce::ingest_directory_at(
        &state.knowledge,
        &state.service.store,
        Path::new(&dir),
        &|_, _| {},
    )
    .await?;
    sync_orders(&state, &merchant_id).await?;
    Ok(Json(report))
}

// ---- simulator -----------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
struct SimulatedText {
    merchant_id: String,
    /// The customer's phone (E.164).
    #[schema(pattern = r"^\+[0-9]{8,15}$")]
    from: String,
    /// What the customer texts, at most 1600 characters.
    #[schema(max_length = 1600)]
    body: String,
    /// Optional idempotency key: the same id twice is processed once.
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SimulatedResult {
    message_id: Option<i64>,
    duplicate: bool,
    /// reply, escalate, opt_out, opt_in or help.
    #[schema(value_type = Option<String>)]
    route: Option<parley_agent::Route>,
    escalated: bool,
    replies: Vec<String>,
}

fn require_simulator(state: &AppState) -> Result<(), ApiError> {
    match state.channel {
        ChannelKind::Simulator => Ok(()),
        ChannelKind::Twilio => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the simulator channel is off (channel = \"twilio\")",
        )),
    }
}

/// Texts the merchant as a customer would, and answers with what the customer gets back.
#[utoipa::path(
    post,
    path = "/v1/simulator/messages",
    tag = "simulator",
    request_body = SimulatedText,
    responses(
        (status = 200, description = "What the customer got back", body = SimulatedResult),
    ),
)]
async fn simulator_send(
    State(state): State<AppState>,
    Json(text): Json<SimulatedText>,
) -> Result<Json<SimulatedResult>, ApiError> {
    require_simulator(&state)?;
    let phone: String = Phone::parse(&text.from)?.into();
    if text.body.chars().count() > 1600 {
        return Err(ApiError::bad_request("`body` must be at most 1600 characters"));
    }
    state
        .service
        .store
        .merchant(&text.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    let provider_sid = text.message_id.as_deref().map(|id| format!("sim:{id}"));
    let received = state
        .service
        .receive(&NewInbound {
            merchant_id: &text.merchant_id,
            phone: &phone,
            body: &text.body,
            channel: "simulator",
            provider_sid: provider_sid.as_deref(),
            num_media: 0,
        })
        .await?;
    let Received::New { message_id, .. } = received else {
        return Ok(Json(SimulatedResult {
            message_id: None,
            duplicate: true,
            route: None,
            escalated: false,
            replies: Vec::new(),
        }));
    };
    let processed = state.service.process(message_id).await?;
    let mut replies = Vec::new();
    let (mut route, mut escalated) = (None, false);
    if let Some(processed) = processed {
        route = Some(processed.route);
        escalated = processed.escalated;
        if let Some((reply_id, _)) = processed.reply {
            state.service.deliver(reply_id).await?;
            if let Some(sent) = state.service.store.message(reply_id).await?
                && !matches!(sent.status, MessageStatus::Suppressed | MessageStatus::Deferred)
            {
                replies.push(sent.body);
            }
        }
    }
    Ok(Json(SimulatedResult {
        message_id: Some(message_id),
        duplicate: false,
        route,
        escalated,
        replies,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct InboxParams {
    merchant_id: String,
    /// The customer's phone (E.164).
    #[param(pattern = r"^\+[0-9]{8,15}$")]
    phone: String,
    #[serde(default)]
    after: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SimulatorInbox {
    messages: Vec<MessageBody>,
}

/// What the simulated phone has received (AI replies and people's replies alike).
#[utoipa::path(
    get,
    path = "/v1/simulator/messages",
    tag = "simulator",
    params(InboxParams),
    responses(
        (status = 200, description = "Messages to that phone after `after`, oldest first", body = SimulatorInbox),
    ),
)]
async fn simulator_inbox(
    State(state): State<AppState>,
    Query(params): Query<InboxParams>,
) -> Result<Json<SimulatorInbox>, ApiError> {
    require_simulator(&state)?;
    let phone: String = Phone::parse(&params.phone)?.into();
    let messages = state
        .service
        .store
        .outbound_since(&params.merchant_id, &phone, params.after)
        .await?
        .into_iter()
        // A deferred text has not reached the phone yet; a suppressed one never will.
        .filter(|m| !matches!(m.status, MessageStatus::Suppressed | MessageStatus::Deferred))
        .map(MessageBody::from)
        .collect();
    Ok(Json(SimulatorInbox { messages }))
}

/// The schema of `IngestReport` (the knowledge crate's type, which knows no OpenAPI): what
/// an upload or re-ingest answers. The API test checks real answers against it.
#[derive(utoipa::ToSchema)]
#[schema(as = IngestReport)]
#[allow(dead_code)]
struct IngestReportBody {
    merchant_id: String,
    n_products: usize,
    n_policies: usize,
    n_orders: usize,
    n_chunks: usize,
    n_embedded: usize,
    n_reused: usize,
    n_removed: usize,
    /// Distinct passage sentences stored with vectors for the responder.
    n_sentences: usize,
    /// Sentences that went through the model this time.
    n_sentences_embedded: usize,
    /// Milliseconds.
    elapsed: f64,
}

/// The OpenAPI description of the JSON API, generated from the handlers' annotations and
/// served at `/openapi.json`. Twilio's webhooks (form posts that must carry Twilio's
/// signature) and the HTML inbox are not part of it.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Parley API", description = "Support agents' and merchants' JSON API, the simulator and health."),
    paths(
        search,
        list_escalations,
        get_escalation,
        claim,
        reply,
        resolve,
        reassign,
        list_conversations,
        get_conversation,
        consent_export,
        upload_knowledge,
        reingest,
        simulator_send,
        simulator_inbox,
        jobs::schedule,
        jobs::list,
        jobs::show,
        jobs::cancel,
        jobs::send_decisions_export,
        flows::list,
        flows::preview,
        flows::enrollments,
        flows::segments,
        flows::members,
        crate::healthz,
        crate::readyz,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &CommonErrors)
)]
pub struct ApiDoc;

/// The errors every JSON API operation can answer, declared once here rather than in each
/// annotation: 400 and 404 everywhere under `/v1/`, 401 and 403 where a token is required.
/// Operation-specific ones (409, 413, 503) stay in the operation's own annotation.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let secured = operation.security.is_some();
                for (status, description, applies) in [
                    ("400", "Invalid input", true),
                    ("401", "Missing or invalid token", secured),
                    ("403", "The token's role may not do this", secured),
                    ("404", "Not found, or another merchant's", true),
                ] {
                    if applies {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| error(description).into());
                    }
                }
            }
        }
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `parley token create`"))
                    .build(),
            ),
        );
    }
}
