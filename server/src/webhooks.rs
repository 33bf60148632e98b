//! Twilio's webhooks: inbound SMS (`/webhooks/twilio/sms`) and delivery status callbacks
//! (`/webhooks/twilio/status`). Every request is signature-checked before anything is read
//! into the store; an inbound message is committed before Twilio gets its answer.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parley_agent::compliance::{ComplianceAction, detect};
use parley_core::Phone;
use secrecy::ExposeSecret;

use crate::service::Processed;
use crate::store::{MessageStatus, NewInbound, Received};
use crate::twilio::{ReplyMode, TwilioConfig, form_value, parse_form, twiml, verify_signature};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/sms", post(inbound_sms))
        .route("/webhooks/twilio/status", post(status_callback))
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
