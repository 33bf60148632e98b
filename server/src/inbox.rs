//! The support agents' web inbox: plain server-rendered HTML and forms (no JavaScript, no
//! CDN), served by the binary. Logging in with a token opens a server-side session: the
//! HttpOnly, SameSite=Strict cookie holds a random session id (never the token), which
//! expires, ends at logout and with `parley token revoke`. Every form POST must come from the
//! inbox's own origin, and every page carries a strict CSP, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. Actions go through the same store calls as the JSON API.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::{EscalationView, escalation_view, send_human_reply};
use crate::markup::escape;
use crate::store::{EscalationStatus, User};
use crate::{ApiError, AppState, SESSION_COOKIE, new_token, session_token, token_hash};

/// How long an inbox session lasts before the agent logs in again.
const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(queue))
        .route("/inbox/login", get(login_page).post(login))
        .route("/inbox/logout", post(logout))
        .route("/inbox/escalations/{id}", get(conversation))
        .route("/inbox/escalations/{id}/claim", post(claim))
        .route("/inbox/escalations/{id}/reply", post(reply))
        .route("/inbox/escalations/{id}/resolve", post(resolve))
        .layer(axum::middleware::from_fn(same_origin_and_headers))
}

/// Refuses a state-changing request that does not come from the inbox's own pages (CSRF):
/// browsers send `Origin` with every form POST, and it must name the host the request was
/// sent to (`Referer` stands in when a browser leaves `Origin` out). Then adds the security
/// headers to whatever the inbox answers.
async fn same_origin_and_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() != axum::http::Method::GET
        && request.method() != axum::http::Method::HEAD
        && !same_origin(request.headers())
    {
        return with_security_headers(
            (
                StatusCode::FORBIDDEN,
                page(
                    "Refused",
                    "<p class=\"error\">This form did not come from the Parley inbox; open the inbox and try again.</p>",
                ),
            )
                .into_response(),
        );
    }
    with_security_headers(next.run(request).await)
}

fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|value| value.to_str().ok());
    let Some(source) = source else { return false };
    // scheme://authority[/path]: the authority must be the host asked for.
    source
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// Whether the session cookie must be `Secure`: the public URL is https, or a TLS proxy in
/// front says the request came over https.
fn secure(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
.overdue{color:#b00;font-weight:bold}.msg{margin:.3rem 0;padding:.4rem .6rem;border-radius:.5rem;max-width:40rem}
.in{background:#eee}.out{background:#dbeafe;margin-left:auto}.meta{color:#666;font-size:.8rem}
textarea{width:100%;min-height:6rem}.error{color:#b00}form.inline{display:inline}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Parley inbox</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    ))
}

/// The logged-in agent; a request without a valid session is sent to the login page.
struct InboxUser(User);

impl FromRequestParts<AppState> for InboxUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(session) = session_token(&parts.headers) else {
            return Err(Redirect::to("/inbox/login").into_response());
        };
        match state
            .service
            .store
            .user_by_session(&token_hash(&session), state.service.now())
            .await
        {
            Ok(Some(user)) => Ok(InboxUser(user)),
            Ok(None) => Err(Redirect::to("/inbox/login").into_response()),
            Err(err) => Err(ApiError::from(err).into_response()),
        }
    }
}

fn login_form(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<h1>Parley inbox</h1>{error}<form method=\"post\" action=\"/inbox/login\">\
             <label>Access token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\"></label> \
             <button type=\"submit\" id=\"login\">Log in</button></form>\
             <p class=\"meta\">Create a token with <code>parley token create --merchant ID --name NAME</code>.</p>"
        ),
    )
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    match state.service.store.user_by_token_hash(&token_hash(token)).await {
        Ok(Some(user)) => {
            let session = new_token();
            let now = state.service.now();
            let expires_at = now + i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX / 2);
            if let Err(err) = state
                .service
                .store
                .create_session(user.id, &token_hash(&session), now, expires_at)
                .await
            {
                return ApiError::from(err).into_response();
            }
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/inbox".to_owned()),
                    (
                        header::SET_COOKIE,
                        session_cookie(&session, SESSION_TTL.as_secs(), secure(&state, &headers)),
                    ),
                ],
            )
                .into_response()
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            login_form(Some("That token is not valid.")),
        )
            .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Ends the session server-side (a copied cookie stops working too) and clears the cookie.
async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(session) = session_token(&headers)
        && let Err(err) = state
            .service
            .store
            .revoke_session(&token_hash(&session), state.service.now())
            .await
    {
        return ApiError::from(err).into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/inbox/login".to_owned()),
            (
                header::SET_COOKIE,
                session_cookie("", 0, secure(&state, &headers)),
            ),
        ],
    )
        .into_response()
}

fn header_bar(user: &User) -> String {
    format!(
        "<p class=\"meta\">{} · {} ({}) <form class=\"inline\" method=\"post\" action=\"/inbox/logout\">\
         <button type=\"submit\">Log out</button></form></p>",
        escape(&user.merchant_id),
        escape(&user.name),
        user.role
    )
}

async fn queue(State(state): State<AppState>, InboxUser(user): InboxUser) -> Result<Html<String>, ApiError> {
    let rows = state
        .service
        .store
        .escalations(&user.merchant_id, EscalationStatus::ACTIVE)
        .await?;
    let now = state.service.now();
    let mut table = String::from(
        "<table id=\"queue\"><tr><th>#</th><th>Customer</th><th>Reason</th><th>Summary</th>\
         <th>Status</th><th>Due</th></tr>",
    );
    for row in &rows {
        let overdue = now > row.due_at;
        let _ = write!(
            table,
            "<tr class=\"escalation\"><td><a href=\"/inbox/escalations/{id}\" id=\"open-{id}\">{id}</a></td>\
             <td>{phone}</td><td>{reason}</td><td>{summary}</td><td>{status}{assignee}</td><td{class}>{due}{flag}</td></tr>",
            id = row.id,
            phone = escape(&row.customer_phone),
            reason = escape(&row.reason_detail),
            summary = escape(&row.summary),
            status = row.status,
            assignee = row
                .assignee
                .as_deref()
                .map(|a| format!(" ({})", escape(a)))
                .unwrap_or_default(),
            class = if overdue { " class=\"overdue\"" } else { "" },
            due = parley_core::clock::rfc3339(row.due_at),
            flag = if overdue { " — overdue" } else { "" },
        );
    }
    table.push_str("</table>");
    let empty = if rows.is_empty() {
        "<p id=\"empty\">Nothing waiting. The AI has it.</p>"
    } else {
        ""
    };
    Ok(page(
        "Queue",
        &format!(
            "{}<h1>Escalations ({})</h1>{empty}{table}",
            header_bar(&user),
            rows.len()
        ),
    ))
}

fn conversation_html(user: &User, view: &EscalationView, error: Option<&str>) -> String {
    let escalation = &view.row;
    let mut html = header_bar(user);
    let _ = write!(
        html,
        "<p><a href=\"/inbox\">← Queue</a></p><h1>Escalation {id} · {phone}</h1>\
         <p><b>Status:</b> <span id=\"status\">{status}</span>{assignee} · <b>Reason:</b> {reason}{overdue}</p>\
         <p><b>Summary:</b> {summary}</p>",
        id = escalation.id,
        phone = escape(&escalation.customer_phone),
        status = escalation.status,
        assignee = escalation
            .assignee
            .as_deref()
            .map(|a| format!(" by <span id=\"assignee\">{}</span>", escape(a)))
            .unwrap_or_default(),
        reason = escape(&escalation.reason_detail),
        overdue = if view.overdue {
            " · <span class=\"overdue\">overdue</span>"
        } else {
            ""
        },
        summary = escape(&escalation.summary),
    );
    if let Some(error) = error {
        let _ = write!(html, "<p class=\"error\" id=\"error\">{}</p>", escape(error));
    }
    html.push_str("<div id=\"transcript\">");
    for message in &view.transcript {
        let _ = write!(
            html,
            "<div class=\"msg {dir}\"><div>{body}</div><div class=\"meta\">{author} · {at} · {status}</div></div>",
            dir = if message.direction == "in" { "in" } else { "out" },
            body = escape(&with_attachments(message)),
            author = message_author(message.author),
            at = parley_core::clock::rfc3339(message.created_at),
            status = escape(&message.status),
        );
    }
    html.push_str("</div>");
    if escalation.status != EscalationStatus::Resolved {
        let id = escalation.id;
        if escalation.status == EscalationStatus::Open {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/inbox/escalations/{id}/claim\"><button type=\"submit\" id=\"claim\">Claim</button></form>"
            );
        }
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/inbox/escalations/{id}/reply\"><h2>Reply</h2>\
             <textarea name=\"body\" id=\"reply-body\" maxlength=\"1600\">{draft}</textarea>\
             <p class=\"meta\">Suggested by Parley from the merchant's knowledge; edit before sending.</p>\
             <button type=\"submit\" id=\"send\">Send</button></form>\
             <form method=\"post\" action=\"/inbox/escalations/{id}/resolve\">\
             <button type=\"submit\" id=\"resolve\">Resolve and hand back to the AI</button></form>",
            draft = escape(escalation.suggested_reply.as_deref().unwrap_or_default()),
        );
    }
    html
}

fn message_author(author: crate::store::Author) -> &'static str {
    match author {
        crate::store::Author::Customer => "customer",
        crate::store::Author::Ai => "AI",
        crate::store::Author::Human => "agent",
        crate::store::Author::Compliance => "compliance",
    }
}

async fn render_conversation(state: &AppState, user: &User, id: i64, error: Option<&str>) -> Response {
    let row = match state.service.store.escalation(&user.merchant_id, id).await {
        Ok(row) => row,
        Err(err) => return ApiError::from(err).into_response(),
    };
    match escalation_view(state, row).await {
        Ok(view) => {
            let status = if error.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            (
                status,
                page(
                    &format!("Escalation {id}"),
                    &conversation_html(user, &view, error),
                ),
            )
                .into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn conversation(
    State(state): State<AppState>,
    InboxUser(user): InboxUser,
    Path(id): Path<i64>,
) -> Response {
    render_conversation(&state, &user, id, None).await
}

fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/inbox/escalations/{id}")).into_response()
}

async fn claim(State(state): State<AppState>, InboxUser(user): InboxUser, Path(id): Path<i64>) -> Response {
    match state
        .service
        .store
        .claim(&user.merchant_id, id, &user, state.service.now())
        .await
    {
        Ok(_) => back_to(id),
        Err(err) => render_conversation(&state, &user, id, Some(&err.to_string())).await,
    }
}

#[derive(Deserialize)]
struct ReplyForm {
    body: String,
}

async fn reply(
    State(state): State<AppState>,
    InboxUser(user): InboxUser,
    Path(id): Path<i64>,
    Form(form): Form<ReplyForm>,
) -> Response {
    match send_human_reply(&state, &user, &user.merchant_id, id, &form.body).await {
        Ok(_) => back_to(id),
        Err(err) => render_conversation(&state, &user, id, Some(&err.message)).await,
    }
}

async fn resolve(State(state): State<AppState>, InboxUser(user): InboxUser, Path(id): Path<i64>) -> Response {
    match state
        .service
        .store
        .resolve(&user.merchant_id, id, state.service.now())
        .await
    {
        Ok(_) => Redirect::to("/inbox").into_response(),
        Err(err) => render_conversation(&state, &user, id, Some(&err.to_string())).await,
    }
}

/// A message's words and, for an MMS, the note that pictures came (the agent never saw them).
fn with_attachments(message: &crate::store::MessageRow) -> String {
    let note = crate::service::attachment_note(u32::try_from(message.attachments).unwrap_or(u32::MAX));
    format!("{} {note}", message.body).trim().to_owned()
}
