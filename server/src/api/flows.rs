//! A merchant's flows over the API: the definitions in force (built-ins with `flows.toml`), a
//! preview of one step as a customer would get it (its text with the opt-out line, length,
//! encoding and segment count), a customer's enrollments (where each flow stands), and the
//! segments with their live counts and members.

use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use parley_core::Phone;
use parley_core::clock::rfc3339;
use parley_knowledge::MerchantId;
use serde::{Deserialize, Serialize};

use crate::flows::{MessageContext, flows_of_data};
use crate::store::UserRole;
use crate::{ApiError, AppState, AuthUser};

pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/v1/merchants/{merchant_id}/flows", get(list))
        .route("/v1/merchants/{merchant_id}/flows/enrollments", get(enrollments))
        .route(
            "/v1/merchants/{merchant_id}/flows/{flow_id}/preview",
            post(preview),
        )
        .route("/v1/merchants/{merchant_id}/segments", get(segments))
        .route(
            "/v1/merchants/{merchant_id}/segments/{segment_id}/members",
            get(members),
        )
}

#[derive(Serialize, utoipa::ToSchema)]
struct StepBody {
    /// Seconds after the trigger (first step) or after the previous step.
    delay_seconds: u64,
    template: String,
    offer: Option<String>,
    offer_valid_for_seconds: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FlowBody {
    id: String,
    /// checkout_abandoned, marketing_opt_in, order_delivered, order_placed or inactive.
    trigger: String,
    enabled: bool,
    resume_after_reply: bool,
    steps: Vec<StepBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FlowList {
    /// No flow texts a customer within this long of their last text.
    pause_after_customer_text_seconds: u64,
    flows: Vec<FlowBody>,
}

fn merchant_data(
    state: &AppState,
    merchant_id: &str,
) -> Result<std::sync::Arc<parley_knowledge::MerchantData>, ApiError> {
    let id = MerchantId::parse(merchant_id).map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(state.knowledge.merchant(&id)?)
}

fn flows(
    state: &AppState,
    merchant_id: &str,
) -> Result<
    (
        std::sync::Arc<parley_knowledge::MerchantData>,
        parley_campaigns::Flows,
    ),
    ApiError,
> {
    let data = merchant_data(state, merchant_id)?;
    // The ingest refused a file this rejects; one that no longer reads is the server's fault.
    let flows = flows_of_data(&data).map_err(|err| ApiError::internal(&err))?;
    Ok((data, flows))
}

/// The merchant's flows in force: the built-ins with its `flows.toml` laid over them.
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/flows",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    responses((status = 200, description = "The flows", body = FlowList)),
    security(("bearer" = [])),
)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
) -> Result<Json<FlowList>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let (_, flows) = flows(&state, &merchant_id)?;
    let trigger = |t: parley_campaigns::Trigger| {
        serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    Ok(Json(FlowList {
        pause_after_customer_text_seconds: flows.pause_after_customer_text.as_secs(),
        flows: flows
            .flows
            .iter()
            .map(|flow| FlowBody {
                id: flow.id.clone(),
                trigger: trigger(flow.trigger),
                enabled: flow.enabled,
                resume_after_reply: flow.resume_after_reply,
                steps: flow
                    .steps
                    .iter()
                    .map(|step| StepBody {
                        delay_seconds: step.delay.as_secs(),
                        template: step.template.clone(),
                        offer: step.offer.clone(),
                        offer_valid_for_seconds: step.offer_valid_for.map(|d| d.as_secs()),
                    })
                    .collect(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// Which step, from 1.
    #[schema(minimum = 1)]
    step: usize,
    /// A customer to render it for (E.164): their first name, and the products and cart of
    /// their enrollment in this flow if they have one. Absent: the fallbacks ("there", "your
    /// items").
    #[serde(default)]
    #[schema(pattern = r"^\+[0-9]{8,15}$")]
    phone: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PreviewBody {
    flow: String,
    step: usize,
    /// The text as it would go, with the opt-out line.
    body: String,
    characters: usize,
    /// gsm7 or ucs2.
    encoding: String,
    segments: usize,
}

/// One step rendered as the customer would get it, with its length and segment count.
#[utoipa::path(
    post,
    path = "/v1/merchants/{merchant_id}/flows/{flow_id}/preview",
    tag = "merchants",
    params(
        ("merchant_id" = String, Path, description = "The merchant's id"),
        ("flow_id" = String, Path, description = "The flow's id"),
    ),
    request_body = PreviewRequest,
    responses((status = 200, description = "The rendered step", body = PreviewBody)),
    security(("bearer" = [])),
)]
async fn preview(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, flow_id)): UrlPath<(String, String)>,
    Json(request): Json<PreviewRequest>,
) -> Result<Json<PreviewBody>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let phone = request
        .phone
        .as_deref()
        .map(|raw| Phone::parse(raw).map_err(|err| ApiError::bad_request(format!("phone: {err}"))))
        .transpose()?;
    let (data, flows) = flows(&state, &merchant_id)?;
    let flow = flows.get(&flow_id).ok_or_else(|| ApiError::not_found("flow"))?;
    let Some(spec) = request.step.checked_sub(1).and_then(|i| flow.steps.get(i)) else {
        return Err(ApiError::bad_request(format!(
            "step: {} is not a step of {flow_id}, which has steps 1 to {}",
            request.step,
            flow.steps.len()
        )));
    };
    let store = &state.service.store;
    let mut context = MessageContext::default();
    if let Some(phone) = &phone {
        if let Some(enrollment) = store
            .enrollments_of(&merchant_id, phone.as_str())
            .await?
            .into_iter()
            .find(|e| e.flow_id == flow.id)
        {
            context = serde_json::from_str(&enrollment.context).unwrap_or_default();
        }
        if context.first_name.is_none() {
            context.first_name = store
                .customer_by_phone(&merchant_id, phone.as_str())
                .await?
                .and_then(|c| c.first_name);
        }
    }
    let now = state.service.now();
    let expires = spec
        .offer_valid_for
        .map(|valid| now.saturating_add(i64::try_from(valid.as_millis()).unwrap_or(i64::MAX)));
    let body = crate::flows::render_step(&data, spec, &context, expires)
        .map_err(|problem| ApiError::bad_request(format!("step {}: {problem}", request.step)))?;
    let body = crate::jobs::with_opt_out_line(&body);
    let info = parley_agent::sms::segments(&body);
    Ok(Json(PreviewBody {
        flow: flow.id.clone(),
        step: request.step,
        characters: body.chars().count(),
        encoding: match info.encoding {
            parley_agent::sms::Encoding::Gsm7 => "gsm7".into(),
            parley_agent::sms::Encoding::Ucs2 => "ucs2".into(),
        },
        segments: info.segments,
        body,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EnrollmentParams {
    /// The customer (E.164).
    phone: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct EnrollmentBody {
    id: i64,
    flow: String,
    /// What started it (`checkout:<token>`, `order:<id>`, `opt-in:<message>`).
    subject: String,
    started_at: String,
    /// When each step went out (RFC 3339), in order.
    sent_at: Vec<String>,
    /// active or exited.
    status: String,
    /// completed, opted_out, no_consent, ordered, escalated, replied or disabled.
    exit_reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct EnrollmentList {
    enrollments: Vec<EnrollmentBody>,
}

/// Where each flow stands for one customer, newest first.
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/flows/enrollments",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id"), EnrollmentParams),
    responses((status = 200, description = "The customer's enrollments", body = EnrollmentList)),
    security(("bearer" = [])),
)]
async fn enrollments(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
    Query(params): Query<EnrollmentParams>,
) -> Result<Json<EnrollmentList>, ApiError> {
    user.require(&merchant_id, UserRole::Agent)?;
    let phone = Phone::parse(&params.phone).map_err(|err| ApiError::bad_request(format!("phone: {err}")))?;
    let rows = state
        .service
        .store
        .enrollments_of(&merchant_id, phone.as_str())
        .await?;
    Ok(Json(EnrollmentList {
        enrollments: rows
            .into_iter()
            .map(|row| EnrollmentBody {
                id: row.id,
                flow: row.flow_id.clone(),
                subject: row.subject.clone(),
                started_at: rfc3339(row.started_at),
                sent_at: row.sent_at().into_iter().map(rfc3339).collect(),
                status: row.status.clone(),
                exit_reason: row.exit_reason.clone(),
            })
            .collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SegmentBody {
    id: String,
    /// One of Parley's (new_customers, repeat_buyers, cart_abandoners, inactive, vip), or
    /// the merchant's own from `segments.toml`.
    builtin: bool,
    /// Customers in it now.
    count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SegmentList {
    segments: Vec<SegmentBody>,
}

fn segment_defs(state: &AppState, merchant_id: &str) -> Result<Vec<parley_campaigns::Segment>, ApiError> {
    let data = merchant_data(state, merchant_id)?;
    crate::flows::segments_of_data(&data).map_err(|err| {
        let err: Box<dyn std::error::Error> = err.into();
        ApiError::internal(err.as_ref())
    })
}

/// Every segment with how many customers are in it now (each counted by one SQL query).
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/segments",
    tag = "merchants",
    params(("merchant_id" = String, Path, description = "The merchant's id")),
    responses((status = 200, description = "The segments", body = SegmentList)),
    security(("bearer" = [])),
)]
async fn segments(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath(merchant_id): UrlPath<String>,
) -> Result<Json<SegmentList>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let now = state.service.now();
    let mut out = Vec::new();
    for segment in segment_defs(&state, &merchant_id)? {
        let compiled = crate::store::segments::compile(&segment.rule, now);
        let count = state.service.store.segment_count(&merchant_id, &compiled).await?;
        out.push(SegmentBody {
            id: segment.id,
            builtin: segment.builtin,
            count,
        });
    }
    Ok(Json(SegmentList { segments: out }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MembersParams {
    /// At most this many (1 to 1000, default 100), by phone.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct MemberBody {
    phone: String,
    first_name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct MemberList {
    segment: String,
    count: i64,
    members: Vec<MemberBody>,
}

/// A segment's members now.
#[utoipa::path(
    get,
    path = "/v1/merchants/{merchant_id}/segments/{segment_id}/members",
    tag = "merchants",
    params(
        ("merchant_id" = String, Path, description = "The merchant's id"),
        ("segment_id" = String, Path, description = "The segment's id"),
        MembersParams,
    ),
    responses((status = 200, description = "The members", body = MemberList)),
    security(("bearer" = [])),
)]
async fn members(
    State(state): State<AppState>,
    user: AuthUser,
    UrlPath((merchant_id, segment_id)): UrlPath<(String, String)>,
    Query(params): Query<MembersParams>,
) -> Result<Json<MemberList>, ApiError> {
    user.require(&merchant_id, UserRole::Admin)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit: between 1 and 1000"));
    }
    let segment = segment_defs(&state, &merchant_id)?
        .into_iter()
        .find(|s| s.id == segment_id)
        .ok_or_else(|| ApiError::not_found("segment"))?;
    let compiled = crate::store::segments::compile(&segment.rule, state.service.now());
    let store = &state.service.store;
    let count = store.segment_count(&merchant_id, &compiled).await?;
    let members = store.segment_members(&merchant_id, &compiled, limit).await?;
    Ok(Json(MemberList {
        segment: segment.id,
        count,
        members: members
            .into_iter()
            .map(|m| MemberBody {
                phone: m.phone,
                first_name: m.first_name,
            })
            .collect(),
    }))
}
