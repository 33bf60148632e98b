//! The support agents' web inbox: plain server-rendered HTML and forms (no JavaScript, no
//! CDN), served by the binary. Logging in with a token opens a server-side session: the
//! HttpOnly, SameSite=Strict cookie holds a random session id (never the token), which
//! expires, ends at logout and with `parley token revoke`. Every form POST must come from the
//! inbox's own origin, and every page carries a strict CSP, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. Actions go through the same store calls as the JSON API.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, context};
use serde::Deserialize;

use crate::api::{EscalationView, escalation_view, send_human_reply};
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
        let page = render("refused.html", context! { title => "Refused" });
        return with_security_headers((StatusCode::FORBIDDEN, page).into_response());
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

/// The inbox's pages, compiled into the binary. minijinja escapes every value for HTML
/// (templates ending in `.html`), so no handler builds markup or escapes by hand.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("style.css", include_str!("../templates/inbox/style.css")),
        ("base.html", include_str!("../templates/inbox/base.html")),
        ("refused.html", include_str!("../templates/inbox/refused.html")),
        ("login.html", include_str!("../templates/inbox/login.html")),
        ("queue.html", include_str!("../templates/inbox/queue.html")),
        (
            "conversation.html",
            include_str!("../templates/inbox/conversation.html"),
        ),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|err| panic!("inbox template {name}: {err}"));
    }
    env
});

/// Renders one page; a template error is a 500 (logged once, by `ApiError`), never half a page.
fn render(name: &str, context: minijinja::Value) -> Result<Html<String>, ApiError> {
    TEMPLATES
        .get_template(name)
        .and_then(|template| template.render(context))
        .map(Html)
        .map_err(|err| ApiError::internal(&err))
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

fn login_form(error: Option<&str>) -> Result<Html<String>, ApiError> {
    render("login.html", context! { title => "Log in", error })
}

async fn login_page() -> Result<Html<String>, ApiError> {
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

async fn queue(State(state): State<AppState>, InboxUser(user): InboxUser) -> Result<Html<String>, ApiError> {
    let rows = state
        .service
        .store
        .escalations(&user.merchant_id, EscalationStatus::ACTIVE)
        .await?;
    let now = state.service.now();
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|row| {
            context! {
                id => row.id,
                customer_phone => row.customer_phone,
                reason_detail => row.reason_detail,
                summary => row.summary,
                status => row.status,
                assignee => row.assignee,
                due_at => parley_core::clock::rfc3339(row.due_at),
                overdue => now > row.due_at,
            }
        })
        .collect();
    render(
        "queue.html",
        context! { title => "Queue", user => signed_in(&user), rows },
    )
}

fn conversation_page(
    user: &User,
    view: &EscalationView,
    error: Option<&str>,
) -> Result<Html<String>, ApiError> {
    let transcript: Vec<minijinja::Value> = view
        .transcript
        .iter()
        .map(|message| {
            context! {
                direction => message.direction,
                text => with_attachments(message),
                author => message_author(message.author),
                at => parley_core::clock::rfc3339(message.created_at),
                status => message.status,
            }
        })
        .collect();
    render(
        "conversation.html",
        context! {
            title => format!("Escalation {}", view.escalation.id),
            user => signed_in(user),
            escalation => view.escalation,
            overdue => view.overdue,
            transcript,
            error,
        },
    )
}

/// Who is signed in, as the page header shows it.
fn signed_in(user: &User) -> minijinja::Value {
    context! {
        merchant_id => user.merchant_id,
        name => user.name,
        role => user.role.to_string(),
    }
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
            (status, conversation_page(user, &view, error)).into_response()
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
    match state.service.claim(&user.merchant_id, id, &user).await {
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
    match state.service.resolve(&user.merchant_id, id).await {
        Ok(_) => Redirect::to("/inbox").into_response(),
        Err(err) => render_conversation(&state, &user, id, Some(&err.to_string())).await,
    }
}

/// A message's words and, for an MMS, the note that pictures came (the agent never saw them).
fn with_attachments(message: &crate::api::MessageBody) -> String {
    let note = crate::service::attachment_note(u32::try_from(message.attachments).unwrap_or(u32::MAX));
    format!("{} {note}", message.body).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserRole;

    #[test]
    fn pages_render_and_escape_what_people_typed() {
        let login = login_form(Some("<script>alert(1)</script>")).unwrap().0;
        assert!(
            login.contains("&lt;script&gt;") && !login.contains("<script>"),
            "{login}"
        );
        let refused = render("refused.html", context! { title => "Refused" }).unwrap().0;
        assert!(
            refused.contains("did not come from the Parley inbox"),
            "{refused}"
        );

        let user = User {
            id: 1,
            merchant_id: "shop".into(),
            name: "Ana <b>".into(),
            role: UserRole::Agent,
        };
        let rows = vec![context! {
            id => 7,
            customer_phone => "+15551112222",
            reason_detail => "says \"broken\"",
            summary => "<img src=x onerror=alert(1)>",
            status => "open",
            assignee => None::<String>,
            due_at => "2026-11-28T12:00:00Z",
            overdue => true,
        }];
        let queue = render(
            "queue.html",
            context! { title => "Queue", user => signed_in(&user), rows },
        )
        .unwrap()
        .0;
        for expected in [
            "id=\"open-7\"",
            "Escalations (1)",
            "&lt;img src=x onerror=alert(1)&gt;",
            "Ana &lt;b&gt; (agent)",
            "&quot;broken&quot;",
            "class=\"overdue\"",
        ] {
            assert!(queue.contains(expected), "{expected} missing from {queue}");
        }
        assert!(
            !queue.contains("<img") && !queue.contains("id=\"empty\""),
            "{queue}"
        );
    }
}
