//! Providers' webhooks: Twilio's inbound SMS (`/webhooks/twilio/sms`) and delivery status
//! callbacks (`/webhooks/twilio/status`), and Shopify's store events (`/webhooks/shopify`).
//! Every request is signature-checked before anything is read into the store; an inbound
//! message or a Shopify event is committed before the provider gets its answer.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parley_agent::compliance::{ComplianceAction, detect};
use parley_core::Phone;
use secrecy::ExposeSecret;

use crate::service::Processed;
use crate::store::commerce::{EventReceived, NewShopifyEvent};
use crate::store::{MessageStatus, NewInbound, Received};
use crate::twilio::{ReplyMode, TwilioConfig, form_value, parse_form, twiml, verify_signature};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/sms", post(inbound_sms))
        .route("/webhooks/twilio/status", post(status_callback))
}

/// Shopify's endpoint, under its own body limit (`shopify.max_body_bytes`): an order with
/// many lines is far larger than any SMS webhook.
pub fn shopify_routes() -> Router<AppState> {
    Router::new().route("/webhooks/shopify", post(shopify_event))
}

fn twiml_response(messages: &[&str]) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        twiml(messages),
    )
        .into_response()
}

fn twilio_config(state: &AppState) -> Result<&TwilioConfig, ApiError> {
    state
        .twilio
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the Twilio channel is not configured"))
}

/// A webhook's form fields, extracted only if `X-Twilio-Signature` matches the URL Twilio
/// called (our public base URL plus the path and query received) and every field received,
/// and the AccountSid is ours. Nothing reads a field before this passes.
struct SignedForm(Vec<(String, String)>);

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let config = twilio_config(state).map_err(IntoResponse::into_response)?;
        let signature = request
            .headers()
            .get("x-twilio-signature")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        // The body limit applies here: an oversized body is a 413 before any parsing.
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let params =
            parse_form(&body).map_err(|err| ApiError::bad_request(err.to_string()).into_response())?;
        let url = config.webhook_url(&path_and_query);
        if signature.is_empty()
            || !verify_signature(config.auth_token.expose_secret(), &url, &params, &signature)
        {
            tracing::warn!(
                path = path_and_query.split('?').next().unwrap_or_default(),
                "rejected a webhook with a missing or invalid signature"
            );
            return Err(ApiError::new(StatusCode::FORBIDDEN, "invalid Twilio signature").into_response());
        }
        if form_value(&params, "AccountSid") != Some(config.account_sid.as_str()) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "unknown AccountSid").into_response());
        }
        Ok(Self(params))
    }
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    form_value(params, name)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing form field {name}")))
}

async fn inbound_sms(
    State(state): State<AppState>,
    SignedForm(params): SignedForm,
) -> Result<Response, ApiError> {
    let config = twilio_config(&state)?;
    let sid = required(&params, "MessageSid")?;
    let from: String = Phone::parse(required(&params, "From")?)?.into();
    let to: String = Phone::parse(required(&params, "To")?)?.into();
    // The body is the customer's own words only: compliance detection reads exactly that.
    // Pictures are counted, and people are told about them where messages are shown.
    let text = form_value(&params, "Body").unwrap_or_default().to_owned();
    let num_media: u32 = form_value(&params, "NumMedia")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let merchant = state
        .service
        .store
        .merchant_by_number(&to)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant for the number in To"))?;
    let received = state
        .service
        .receive(&NewInbound {
            merchant_id: &merchant.id,
            phone: &from,
            body: &text,
            channel: "twilio",
            provider_sid: Some(sid),
            num_media,
        })
        .await?;
    let message_id = match received {
        Received::New { message_id, .. } => message_id,
        Received::Duplicate => match state.service.store.inbound_by_sid(sid).await? {
            // A retry of a message stored but never decided (its first attempt failed after
            // the commit, say on a full disk): finish it now, so that this 200 too means what
            // it always means (for a STOP: the ledger entry is durable). Deciding is idempotent.
            Some(stored) if stored.status == MessageStatus::Received => stored.id,
            // Already decided: its reply (if any) is on its way.
            _ => return Ok(twiml_response(&[])),
        },
    };
    match config.reply {
        ReplyMode::Twiml => {
            let processed = state.service.process(message_id).await?;
            let reply = match processed.and_then(|p| p.reply) {
                Some((reply_id, body)) if state.service.mark_sent_inline(reply_id).await? => Some(body),
                _ => None,
            };
            match &reply {
                Some(body) => Ok(twiml_response(&[body.as_str()])),
                None => Ok(twiml_response(&[])),
            }
        }
        // An opt-out is decided before Twilio gets its answer, so the acknowledgement means
        // the ledger entry is durable; its confirmation is sent after. Everything else is
        // decided in the background, where a slow draft cannot hold up the webhook.
        ReplyMode::Rest if detect(&text, false) == Some(ComplianceAction::OptOut) => {
            if let Some(Processed {
                reply: Some((reply_id, _)),
                ..
            }) = state.service.process(message_id).await?
            {
                state.service.spawn_deliver(reply_id);
            }
            Ok(twiml_response(&[]))
        }
        ReplyMode::Rest => {
            state.service.spawn_process(message_id);
            Ok(twiml_response(&[]))
        }
    }
}

async fn status_callback(
    State(state): State<AppState>,
    SignedForm(params): SignedForm,
) -> Result<Response, ApiError> {
    let sid = required(&params, "MessageSid")?;
    let status = required(&params, "MessageStatus")?;
    let error_code = form_value(&params, "ErrorCode").filter(|code| !code.is_empty());
    // A word Parley does not track (e.g. `partially_delivered`) changes nothing.
    let Some(status) = MessageStatus::from_provider(status) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let changed = state
        .service
        .store
        .apply_status(sid, status, error_code, state.service.now())
        .await?;
    if changed {
        crate::metrics::Metrics::count(&state.service.metrics.outbound, status.as_str());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Shopify clocks and ours may differ a little; a delivery from further in the future is
/// as suspect as a stale one.
const SHOPIFY_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// `POST /webhooks/shopify`: HMAC first (401, nothing stored), then the delivery's age (401),
/// the headers and the JSON (400 naming the problem), the shop (404); then the event is
/// committed once per `X-Shopify-Event-Id` and answered 200, and applied after.
async fn shopify_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = state
        .shopify
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Shopify webhooks are not configured"))?;
    let unauthorized = |why: &str| {
        tracing::warn!(why, "rejected a Shopify webhook");
        ApiError::new(StatusCode::UNAUTHORIZED, why)
    };
    let signature = header_text(&headers, "x-shopify-hmac-sha256")
        .ok_or_else(|| unauthorized("missing X-Shopify-Hmac-Sha256"))?;
    if !crate::shopify::verify_hmac(config.app_secret.expose_secret(), &body, signature) {
        return Err(unauthorized("invalid X-Shopify-Hmac-Sha256"));
    }
    // A valid signature on an old body is a replay: Shopify's own retries end within hours.
    let now = state.service.now();
    let triggered_at = header_text(&headers, "x-shopify-triggered-at")
        .ok_or_else(|| unauthorized("missing X-Shopify-Triggered-At"))?;
    let triggered_ms = parley_core::clock::parse_rfc3339(triggered_at)
        .ok_or_else(|| unauthorized("X-Shopify-Triggered-At is not an ISO 8601 time"))?;
    let max_age = i64::try_from(config.max_event_age.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(triggered_ms) > max_age || triggered_ms.saturating_sub(now) > SHOPIFY_CLOCK_SKEW_MS
    {
        return Err(unauthorized("stale X-Shopify-Triggered-At"));
    }
    let required_header = |name: &'static str| {
        header_text(&headers, name).ok_or_else(|| ApiError::bad_request(format!("missing header {name}")))
    };
    let topic = required_header("x-shopify-topic")?;
    let event_id = required_header("x-shopify-event-id")?;
    let shop = required_header("x-shopify-shop-domain")?;
    let payload =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the body is not UTF-8 JSON"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map_err(|err| ApiError::bad_request(format!("the body is not valid JSON: {err}")))?;
    let known = topic.parse::<crate::shopify::Topic>().ok();
    if let Some(topic) = known {
        // The same reading the apply step does, so a payload it could not use is refused now.
        crate::commerce::change_for(topic, payload).map_err(|problem| {
            ApiError::bad_request(format!("the {topic} payload is not usable: {problem}"))
        })?;
    }
    let merchant = state
        .service
        .store
        .merchant_by_shop_domain(shop)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant for X-Shopify-Shop-Domain"))?;
    let received = state
        .service
        .store
        .receive_shopify_event(
            &NewShopifyEvent {
                merchant_id: &merchant.id,
                event_id,
                topic,
                triggered_at: Some(triggered_ms),
                payload,
                ignored: known.is_none(),
            },
            now,
        )
        .await?;
    crate::metrics::Metrics::count(
        &state.service.metrics.shopify,
        match (received, known) {
            (EventReceived::Duplicate, _) => "duplicate",
            (EventReceived::New(_), None) => "ignored",
            (EventReceived::New(_), Some(_)) => "new",
        },
    );
    if let (EventReceived::New(id), Some(_)) = (received, known) {
        state.service.spawn_apply_shopify(id);
    }
    Ok(StatusCode::OK.into_response())
}
