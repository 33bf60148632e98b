//! The support agents' web inbox: plain server-rendered HTML and forms (no JavaScript, no
//! CDN), served by the binary. Logging in stores the agent's token in an HttpOnly,
//! SameSite=Strict cookie; every action goes through the same store calls as the JSON API.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::{ACTIVE, EscalationView, escalation_view, send_human_reply};
use crate::markup::escape;
use crate::store::User;
use crate::{ApiError, AppState, SESSION_COOKIE, session_token, token_hash};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(queue))
        .route("/inbox/login", get(login_page).post(login))
        .route("/inbox/logout", post(logout))
        .route("/inbox/escalations/{id}", get(conversation))
        .route("/inbox/escalations/{id}/claim", post(claim))
        .route("/inbox/escalations/{id}/reply", post(reply))
        .route("/inbox/escalations/{id}/resolve", post(resolve))
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
        let Some(token) = session_token(&parts.headers) else {
            return Err(Redirect::to("/inbox/login").into_response());
        };
        match state.service.store.user_by_token_hash(&token_hash(&token)).await {
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

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    match state.service.store.user_by_token_hash(&token_hash(token)).await {
        Ok(Some(_)) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/inbox".to_owned()),
                (
                    header::SET_COOKIE,
                    format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
                ),
            ],
        )
            .into_response(),
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            login_form(Some("That token is not valid.")),
        )
            .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/inbox/login".to_owned()),
            (
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
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
        user.role.as_str()
    )
}

async fn queue(State(state): State<AppState>, InboxUser(user): InboxUser) -> Result<Html<String>, ApiError> {
    let rows = state.service.store.escalations(&user.merchant_id, ACTIVE).await?;
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
            status = escape(&row.status),
            assignee = row
                .assignee
                .as_deref()
                .map(|a| format!(" ({})", escape(a)))
                .unwrap_or_default(),
            class = if overdue { " class=\"overdue\"" } else { "" },
            due = crate::clock::rfc3339(row.due_at),
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
        status = escape(&escalation.status),
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
            body = escape(&message.body),
            author = message_author(message.author),
            at = crate::clock::rfc3339(message.created_at),
            status = escape(&message.status),
        );
    }
    html.push_str("</div>");
    if escalation.status != "resolved" {
        let id = escalation.id;
        if escalation.status == "open" {
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
