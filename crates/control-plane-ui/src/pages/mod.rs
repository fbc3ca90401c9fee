//! Server-rendered pages (askama): one handler module per page or group of pages
//! (`dashboard`, `actions` with the approve/reject/retry forms, `events`, `nodes`, `silences`,
//! `audit`, `login` with single sign-on and logout), the structs their templates render in
//! `view_models`, and here the routes and what every page shares (who is looking, the layout,
//! `?fragment=1` answers, error pages).
//! Every page answers `?fragment=1` with only its `<main>` content and an ETag, which the page
//! script polls once a second for live updates.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use homelab_core::action::RunDefaults;
use serde::Deserialize;

use crate::api::{Peer, not_modified};
use crate::auth::Operator;
use crate::history::History;
use crate::snapshot::{Snapshot, etag_of};

use crate::AppState;

mod actions;
mod audit;
mod dashboard;
mod events;
mod login;
mod nodes;
mod silences;
mod view_models;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/actions", get(actions::actions))
        .route("/actions/{id}", get(actions::action))
        .route("/actions/{id}/approve", post(actions::form_approve))
        .route("/actions/{id}/reject", post(actions::form_reject))
        .route("/actions/{id}/cancel", post(actions::form_cancel))
        .route("/actions/{id}/retry", post(actions::form_retry))
        .route("/events", get(events::events))
        .route("/nodes/{node}", get(nodes::node))
        .route("/silences", get(silences::silences_page).post(silences::silence_add))
        .route("/silences/{id}/expire", post(silences::silence_expire))
        .route("/audit", get(audit::audit_page))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/auth/oidc/login", get(login::oidc_login))
        .route("/auth/oidc/callback", get(login::oidc_callback))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/app.js")) }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/app.css")) }))
        .layer(axum::middleware::map_response(security_headers))
}

/// Pages may not be framed (an Approve button under someone else's page is clickjacking) and
/// run only our own script.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    title: &'a str,
    /// The nav entry of this page (`dashboard`, `actions`, `events`, `silences`, `audit`), for
    /// `aria-current`.
    active: &'a str,
    base: &'a str,
    user: Option<String>,
    /// Shows the Audit entry.
    admin: bool,
    csrf: Option<String>,
    live: bool,
    /// The ETag of `body` as `?fragment=1` would answer it: live updates start from it, so
    /// an unchanged page is never swapped in again.
    etag: String,
    body: String,
}

/// Who is looking (for buttons and the CSRF token in forms).
struct Viewer {
    user: Option<String>,
    csrf: Option<String>,
    op: Option<Operator>,
}

#[derive(Debug, Deserialize, Default)]
struct PageQuery {
    fragment: Option<String>,
    node: Option<String>,
    state: Option<String>,
    service: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<usize>,
    /// Fills the silences form's target.
    target: Option<String>,
}

enum PageError {
    Refused,
    Status(StatusCode, String),
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = format!("{e:#}"), "page failed");
        PageError::Status(StatusCode::INTERNAL_SERVER_ERROR, "The data root could not be read; see the control-plane-ui log.".into())
    }
}

/// The operator behind a form post (credentials, same origin, CSRF token), or the "Not
/// allowed" page to answer with (a page is what the handler answers: boxing buys nothing).
#[allow(clippy::result_large_err)]
fn form_operator(state: &AppState, headers: &HeaderMap, peer: Option<std::net::IpAddr>, csrf: Option<&str>) -> Result<Operator, Response> {
    state.auth.for_mutation(headers, peer, csrf).map_err(|r| message_page(state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")))
}

/// A form post about one action or silence (`/actions/{id}/approve`, `/silences/{id}/expire`,
/// …): the id, the form and the operator behind it, as [`form_operator`] finds them. Refused
/// with the "Not allowed" page.
struct IdPost {
    op: Operator,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    id: String,
    form: CsrfForm,
}

impl FromRequest<Arc<AppState>> for IdPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<IdPost, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(Peer(peer)) = Peer::from_request_parts(&mut parts, state).await;
        let Path(id) = Path::<String>::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let Form(form) = Form::<CsrfForm>::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        let op = form_operator(state, &headers, peer, form.csrf.as_deref())?;
        Ok(IdPost { op, peer, headers, id, form })
    }
}

/// The page for a form post the API refused: its error (or `fallback`) under `heading`, a
/// link `back`, and `Retry-After` when the data root cannot take writes now.
fn refused_page(state: &AppState, api: crate::api::ApiError, heading: &str, fallback: &str, back: &str) -> Response {
    let msg = api.body["error"].as_str().unwrap_or(fallback).to_owned();
    let mut r = message_page(state, api.status, heading, &msg, back);
    if api.status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECS));
    }
    r
}

fn message_page(state: &AppState, status: StatusCode, heading: &str, message: &str, back: &str) -> Response {
    let body = MessageT { heading, message, back }.render().unwrap_or_default();
    let html = Layout { title: heading, active: "", base: &state.base, user: None, admin: false, csrf: None, live: false, etag: String::new(), body }
        .render()
        .unwrap_or_default();
    (status, axum::response::Html(html)).into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageT<'a> {
    heading: &'a str,
    message: &'a str,
    back: &'a str,
}

fn viewer(state: &AppState, headers: &HeaderMap, peer: Peer) -> Result<Viewer, PageError> {
    match state.auth.for_read(headers, peer.0) {
        Ok(Some(op)) => Ok(Viewer { user: Some(op.user().to_owned()), csrf: op.csrf.clone(), op: Some(op) }),
        Ok(None) => Ok(Viewer { user: None, csrf: None, op: None }),
        Err(_) => Err(PageError::Refused),
    }
}

/// Wraps page content: the whole page, or with `?fragment=1` only the content with an ETag.
/// A page with a form people fill in is not `live` (a swap would take what they typed).
fn respond(
    state: &AppState,
    headers: &HeaderMap,
    q: &PageQuery,
    title: &str,
    v: Viewer,
    live: bool,
    body: Result<String, askama::Error>,
) -> Result<Response, PageError> {
    let body = body.map_err(|e| anyhow::anyhow!("template: {e}"))?;
    if q.fragment.is_some() {
        let etag = etag_of(body.as_bytes());
        if not_modified(headers, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        return Ok(([(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache".into())], axum::response::Html(body)).into_response());
    }
    let active = match title.split(' ').next().unwrap_or("") {
        "Dashboard" | "Node" => "dashboard",
        "Actions" | "Action" => "actions",
        "Events" => "events",
        "Silences" => "silences",
        "Audit" => "audit",
        _ => "",
    };
    let etag = etag_of(body.as_bytes());
    let admin = v.op.as_ref().is_some_and(|op| op.may_administer().is_ok());
    let html = Layout { title, active, base: &state.base, user: v.user, admin, csrf: v.csrf, live, etag, body }
        .render()
        .map_err(|e| anyhow::anyhow!("template: {e}"))?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], axum::response::Html(html)).into_response())
}

fn finish(state: &AppState, r: Result<Response, PageError>) -> Response {
    match r {
        Ok(r) => r,
        Err(PageError::Refused) => Redirect::to(&state.url("/login")).into_response(),
        Err(PageError::Status(s, m)) => message_page(state, s, "Something went wrong", &m, &state.url("/")),
    }
}

/// The executor settings in force: its heartbeat's when it reports them, else this process's.
fn run_defaults(state: &AppState, snap: &Snapshot) -> RunDefaults {
    let mut d = state.run_defaults.clone();
    if let Some(Some(hb)) = snap.heartbeats.get("executor") {
        if let Some(t) = hb.extra.get("action_timeout_secs").and_then(|v| v.as_u64()) {
            d.action_timeout = std::time::Duration::from_secs(t);
        }
        if let Some(t) = hb.extra.get("verify_timeout_secs").and_then(|v| v.as_u64()) {
            d.verify_timeout = std::time::Duration::from_secs(t);
        }
    }
    d
}

/// The history of the last 24 h, refreshed when due (bounded work; see [`crate::history`]).
async fn history(state: &Arc<AppState>) -> Arc<History> {
    if state.history.due() {
        let st = state.clone();
        let _ = tokio::task::spawn_blocking(move || st.history.refresh(&st.root, chrono::Utc::now())).await;
    }
    state.history.get()
}

fn behind_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    if r.status().is_success() {
        *r.status_mut() = status;
    }
    r
}
