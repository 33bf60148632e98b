//! Scheduled texts (the scheduler's `send` jobs) and the export of every send decision: a
//! merchant's admin schedules a text for a time, watches it go (or wait for quiet hours to
//! end, or be refused for want of consent), cancels it before it is due, and downloads what
//! the outbox decided for the record.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parley_core::ConsentPurpose;
use parley_core::clock::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};

use crate::jobs::SendRequest;
use crate::store::{JobKind, JobRow, JobStatus, SendPayload, UserRole};
use crate::{ApiError, AppState, AuthUser, ErrorBody};

pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/v1/merchants/{merchant_id}/jobs", post(schedule).get(list))
        .route("/v1/merchants/{merchant_id}/jobs/{id}", get(show))
        .route("/v1/merchants/{merchant_id}/jobs/{id}/cancel", post(cancel))
        .route(
            "/v1/merchants/{merchant_id}/send-decisions/export",
            get(send_decisions_export),
        )
}

/// What a scheduled text is for: marketing needs marketing consent and keeps to quiet hours
/// and caps (and gets the opt-out line); transactional is about the customer's own order.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ScheduledPurpose {
    Marketing,
    Transactional,
}

impl From<ScheduledPurpose> for ConsentPurpose {
    fn from(purpose: ScheduledPurpose) -> Self {
        match purpose {
            ScheduledPurpose::Marketing => ConsentPurpose::Marketing,
            ScheduledPurpose::Transactional => ConsentPurpose::Transactional,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleRequest {
    /// The customer's phone, E.164.
    to: String,
    /// The text, 1 to 1530 characters (the opt-out line is added to marketing texts).
    body: String,
    purpose: ScheduledPurpose,
    /// What it is about (a campaign's name), for the 3-per-24-hours-per-subject rule.
    #[serde(default)]
    subject: Option<String>,
    /// When, RFC 3339; absent or past: now. Quiet hours may hold it later still.
    #[serde(default)]
    send_at: Option<String>,
    /// Idempotency key: the same key again returns the job already scheduled (200).
    #[serde(default)]
    key: Option<String>,
}

/// A scheduled job as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct JobBody {
    id: i64,
    /// `send` (a text) or `flow` (a flow's decision about an enrollment's next step).
    kind: JobKind,
    status: JobStatus,
    /// For a `send` job: the customer's phone, the text and its purpose.
    to: Option<String>,
    body: Option<String>,
    purpose: Option<String>,
    subject: Option<String>,
    /// For a `flow` job: the enrollment it decides for.
    enrollment: Option<i64>,
    key: Option<String>,
    /// When it is (or was) due; for a retry, the next attempt's time. RFC 3339.
    due_at: String,
    attempts: i64,
    max_attempts: i64,
    /// The outbound message of the latest attempt.
    message_id: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

impl JobBody {
    fn of(row: JobRow) -> Result<Self, ApiError> {
        let (send, flow) = match row.kind {
            JobKind::Send => (
                Some(
                    serde_json::from_str::<SendPayload>(&row.payload)
                        .map_err(|err| ApiError::internal(&err))?,
                ),
                None,
            ),
            JobKind::Flow => (
                None,
                Some(
                    serde_json::from_str::<crate::store::jobs::FlowPayload>(&row.payload)
                        .map_err(|err| ApiError::internal(&err))?,
                ),
            ),
        };
        let purpose = send.as_ref().map(|p| p.purpose.to_string());
        let (to, body, subject) = match send {
            Some(p) => (Some(p.to), Some(p.body), p.subject),
            None => (None, None, None),
        };
        Ok(Self {
            id: row.id,
            kind: row.kind,
            status: row.status,
            to,
            body,
            purpose,
            subject,
            enrollment: flow.map(|f| f.enrollment),
            key: row.key,
            due_at: rfc3339(row.due_at),
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            message_id: row.message_id,
            last_error: row.last_error,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        })
    }
}

/// Schedules a text to one customer; it leaves through the outbox when due.
#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/jobs",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "Scheduled", body = JobBody),
        (status = 200, description = "Already scheduled under this key", body = JobBody),
    ),
    security(("bearer" = [])),
)]
async fn schedule(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Json(request): Json<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let user = user.require(&merchant_id, UserRole::Admin)?;
    let send_at_ms = request
        .send_at
        .as_deref()
        .map(|at| {
            parse_rfc3339(at)
                .ok_or_else(|| ApiError::bad_request(format!("send_at: {at:?} is not an RFC 3339 time")))
        })
        .transpose()?;
    let send = SendRequest {
        to: &request.to,
        body: &request.body,
        purpose: request.purpose.into(),
        subject: request.subject.as_deref(),
        send_at_ms,
        key: request.key.as_deref(),
        created_by: Some(user.id),
    };
    let (row, created) = state
        .service
        .schedule_send(&merchant_id, &send)
        .await?
        .map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(JobBody::of(row)?)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// Only jobs in this status.
    #[serde(default)]
    status: Option<JobStatus>,
    /// How many, newest first: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default = "super::default_page")]
    limit: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct JobList {
    jobs: Vec<JobBody>,
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/jobs",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ListParams),
    responses((status = 200, description = "Jobs, newest first", body = JobList)),
    security(("bearer" = [])),
)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    if !(1..=1000).contains(&params.limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let rows = state
        .service
        .store
        .jobs(&merchant_id, params.status, params.limit)
        .await?;
    let jobs = rows.into_iter().map(JobBody::of).collect::<Result<_, _>>()?;
    Ok(Json(JobList { jobs }))
}

#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/jobs/{id}",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobBody)),
    security(("bearer" = [])),
)]
async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<JobBody>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let row = state
        .service
        .store
        .job(&merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(Json(JobBody::of(row)?))
}

/// Cancels a job that has not started.
#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/jobs/{id}/cancel",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), ("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancelled", body = JobBody),
        (status = 409, description = "Already started or finished", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, id)): UrlPath<(String, i64)>,
) -> Result<Json<JobBody>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let store = &state.service.store;
    match store.cancel_job(&merchant_id, id, state.service.now()).await? {
        None => Err(ApiError::not_found("job")),
        Some(cancelled) => {
            let row = store
                .job(&merchant_id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("job"))?;
            if cancelled {
                Ok(Json(JobBody::of(row)?))
            } else {
                let status: &str = row.status.into();
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("job {id} is {status}; only a pending job can be cancelled"),
                ))
            }
        }
    }
}

/// Every answer the outbox gave, oldest first, as CSV: the other half of the compliance
/// record (the consent ledger says who agreed; this says what was sent, held or refused).
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/send-decisions/export",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    responses(
        (status = 200, description = "id,timestamp,merchant_id,message_id,phone,purpose,verdict,reason,until", content_type = "text/csv", body = String),
    ),
    security(("bearer" = [])),
)]
async fn send_decisions_export(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let rows = state.service.store.merchant_send_decisions(&merchant_id).await?;
    let header = [
        "id",
        "timestamp",
        "merchant_id",
        "message_id",
        "phone",
        "purpose",
        "verdict",
        "reason",
        "until",
    ];
    let records = rows.iter().map(|row| {
        [
            row.id.to_string(),
            rfc3339(row.decided_at),
            merchant_id.clone(),
            row.message_id.to_string(),
            row.phone.clone(),
            row.purpose.clone(),
            row.verdict.clone(),
            row.reason.clone().unwrap_or_default(),
            row.until.map(rfc3339).unwrap_or_default(),
        ]
    });
    super::csv_download(&format!("{merchant_id}-send-decisions.csv"), header, records)
}
