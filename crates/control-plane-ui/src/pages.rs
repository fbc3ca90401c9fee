//! Server-rendered pages (askama): dashboard, actions, one action, events, node, login.
//! Every page answers `?fragment=1` with only its `<main>` content and an ETag, which the page
//! script polls once a second for live updates.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use homelab_core::{Action, ActionState, ServiceStatus, rfc3339};
use serde::Deserialize;

use crate::api::{Lookup, Peer, lookup_action, not_modified};
use crate::auth::{Operator, SESSION_COOKIE};
use crate::snapshot::{ActionSummary, Drift, FileError, Summary, etag_of};
use crate::{AppState, DecideError, Decision};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/actions", get(actions))
        .route("/actions/{id}", get(action))
        .route("/actions/{id}/approve", post(form_approve))
        .route("/actions/{id}/reject", post(form_reject))
        .route("/actions/{id}/retry", post(form_retry))
        .route("/events", get(events))
        .route("/nodes/{node}", get(node))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/app.js")) }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/app.css")) }))
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
    base: &'a str,
    user: Option<String>,
    csrf: Option<String>,
    live: bool,
    body: String,
}

/// Who is looking (for buttons and the CSRF token in forms).
struct Viewer {
    user: Option<String>,
    csrf: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct PageQuery {
    fragment: Option<String>,
    node: Option<String>,
    state: Option<String>,
    service: Option<String>,
    page: Option<usize>,
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

fn message_page(state: &AppState, status: StatusCode, heading: &str, message: &str, back: &str) -> Response {
    let body = MessageT { heading, message, back }.render().unwrap_or_default();
    let html = Layout { title: heading, base: &state.base, user: None, csrf: None, live: false, body }.render().unwrap_or_default();
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
        Ok(Some(op)) => Ok(Viewer { user: Some(op.user().to_owned()), csrf: op.csrf }),
        Ok(None) => Ok(Viewer { user: None, csrf: None }),
        Err(_) => Err(PageError::Refused),
    }
}

/// Wraps page content: the whole page, or with `?fragment=1` only the content with an ETag.
fn respond(state: &AppState, headers: &HeaderMap, q: &PageQuery, title: &str, v: Viewer, body: Result<String, askama::Error>) -> Result<Response, PageError> {
    let body = body.map_err(|e| anyhow::anyhow!("template: {e}"))?;
    if q.fragment.is_some() {
        let etag = etag_of(body.as_bytes());
        if not_modified(headers, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        return Ok(([(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache".into())], axum::response::Html(body)).into_response());
    }
    let html = Layout { title, base: &state.base, user: v.user, csrf: v.csrf, live: true, body }.render().map_err(|e| anyhow::anyhow!("template: {e}"))?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], axum::response::Html(html)).into_response())
}

fn finish(state: &AppState, r: Result<Response, PageError>) -> Response {
    match r {
        Ok(r) => r,
        Err(PageError::Refused) => Redirect::to(&state.url("/login")).into_response(),
        Err(PageError::Status(s, m)) => message_page(state, s, "Something went wrong", &m, &state.url("/")),
    }
}

struct DaemonRow {
    name: String,
    stopped: bool,
    last_loop_at: String,
    age: String,
    interval: String,
}

struct ServiceRow {
    node: String,
    name: String,
    status: &'static str,
    unhealthy: bool,
    reason: String,
    since: String,
    failures: u32,
    desired: bool,
}

fn service_rows(s: &Summary, only_node: Option<&str>) -> Vec<ServiceRow> {
    // Unhealthy first: on a big fleet the interesting rows are at the top.
    let mut rows: Vec<ServiceRow> = s
        .services
        .iter()
        .filter(|(n, _)| only_node.is_none_or(|o| o == n.as_str()))
        .flat_map(|(node, svcs)| {
            svcs.iter().map(move |(name, sv)| ServiceRow {
                node: node.clone(),
                name: name.clone(),
                status: if sv.status == ServiceStatus::Healthy { "healthy" } else { "unhealthy" },
                unhealthy: sv.status == ServiceStatus::Unhealthy,
                reason: sv.reason.clone().unwrap_or_default(),
                since: sv.since.clone(),
                failures: sv.consecutive_failures,
                desired: sv.desired,
            })
        })
        .collect();
    rows.sort_by_key(|r| !r.unhealthy);
    rows
}

/// How many quarantined entries the dashboard card lists.
const DASHBOARD_QUARANTINE: usize = 5;

struct QuarantineRow {
    /// `events/<name>` (below quarantine/).
    name: String,
    /// The reason's first line, and the rest (the observer adds `(from events/...)`).
    reason: String,
    more: String,
    at: String,
    ago: String,
}

fn quarantine_rows(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<QuarantineRow> {
    s.quarantine
        .recent
        .iter()
        .take(DASHBOARD_QUARANTINE)
        .map(|q| {
            let ago = chrono::DateTime::parse_from_rfc3339(&q.at).map(|t| ago(now.signed_duration_since(t.with_timezone(&chrono::Utc)))).unwrap_or_default();
            let (reason, more) = q.reason.split_once('\n').unwrap_or((&q.reason, ""));
            QuarantineRow {
                name: q.file.strip_prefix("quarantine/").unwrap_or(&q.file).to_owned(),
                reason: reason.trim().to_owned(),
                more: crate::snapshot::one_line(more),
                at: q.at.clone(),
                ago,
            }
        })
        .collect()
}

/// "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago" (a time in the future reads "just now").
pub fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        ..=4 => "just now".into(),
        5..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// "ends in 42 s", "ends in 5 min", "ends in 3 h", "ends in 2 d"; a time past reads
/// "ended 5 min ago".
pub fn until(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        ..=0 => format!("ended {}", ago(-d)),
        1..=59 => format!("ends in {s} s"),
        60..=3599 => format!("ends in {} min", s / 60),
        3600..=86_399 => format!("ends in {} h", s / 3600),
        _ => format!("ends in {} d", s / 86_400),
    }
}

fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// One drift row as the pages show it: the file's fields plus times relative to now.
struct DriftRow<'a> {
    d: &'a Drift,
    /// `remediation exhausted` for `remediation_exhausted`.
    decision_label: String,
    since_ago: String,
    until_rel: String,
    retryable: bool,
}

fn drift_rows<'a>(drift: impl Iterator<Item = &'a Drift>, now: chrono::DateTime<chrono::Utc>) -> Vec<DriftRow<'a>> {
    drift
        .map(|d| DriftRow {
            d,
            decision_label: d.decision.replace('_', " "),
            since_ago: d.since.as_deref().and_then(parse_time).map(|t| ago(now.signed_duration_since(t))).unwrap_or_default(),
            until_rel: d.until.as_deref().and_then(parse_time).map(|t| until(t.signed_duration_since(now))).unwrap_or_default(),
            retryable: d.retryable(),
        })
        .collect()
}

/// The drift section's note on where its rows come from ("" when from a current report).
fn drift_note(s: &Summary) -> String {
    s.drift_report.message.clone()
}

/// "as of 12 s ago" for the drift report shown.
fn drift_at(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> String {
    s.drift_report.generated_at.as_deref().and_then(parse_time).map(|t| ago(now.signed_duration_since(t))).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardT<'a> {
    base: &'a str,
    csrf: Option<String>,
    s: &'a Summary,
    errors: &'a [FileError],
    drift_state: &'a str,
    drift_note: String,
    drift_at: String,
    daemons: Vec<DaemonRow>,
    drift: Vec<DriftRow<'a>>,
    services: Vec<ServiceRow>,
    quarantine: Vec<QuarantineRow>,
    /// Quarantined entries not listed on the card.
    quarantine_more: usize,
}

async fn dashboard(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let snap = state.snapshot().await?;
        let now = chrono::Utc::now();
        let daemons = snap
            .heartbeats
            .iter()
            .map(|(name, hb)| match hb {
                Some(hb) => DaemonRow {
                    name: name.clone(),
                    stopped: hb.is_stopped(now),
                    last_loop_at: rfc3339(hb.last_loop_at),
                    age: format!("{} s", now.signed_duration_since(hb.last_loop_at).num_seconds().max(0)),
                    interval: format!("{} s", hb.interval_secs),
                },
                None => DaemonRow { name: name.clone(), stopped: true, last_loop_at: "unreadable heartbeat".into(), age: String::new(), interval: String::new() },
            })
            .collect();
        let quarantine = quarantine_rows(&snap.summary, now);
        let quarantine_more = snap.summary.quarantine.count.saturating_sub(quarantine.len());
        let s = &snap.summary;
        let t = DashboardT {
            base: &state.base,
            csrf: v.csrf.clone(),
            s,
            errors: &s.errors,
            drift_state: s.drift_report.state,
            drift_note: drift_note(s),
            drift_at: drift_at(s, now),
            daemons,
            drift: drift_rows(s.drift.iter(), now),
            services: service_rows(s, None),
            quarantine,
            quarantine_more,
        };
        respond(&state, &headers, &q, "Dashboard", v, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    /// (value, selected)
    nodes: Vec<(String, bool)>,
    states: Vec<(String, bool)>,
    sections: Vec<(&'static str, &'static str, Vec<&'a ActionSummary>)>,
}

async fn actions(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let snap = state.snapshot().await?;
        let s = &snap.summary;
        let fnode = q.node.clone().unwrap_or_default();
        let fstate = q.state.clone().unwrap_or_default();
        let keep = |a: &&ActionSummary| (fnode.is_empty() || a.node == fnode) && (fstate.is_empty() || a.state.as_str() == fstate);
        fn pick<'x>(list: &'x [ActionSummary], keep: &dyn Fn(&&ActionSummary) -> bool) -> Vec<&'x ActionSummary> {
            list.iter().filter(|a| keep(a)).collect()
        }
        let pick = |list| pick(list, &keep);
        let sections = vec![
            ("Pending", "pending", pick(&s.actions.pending)),
            ("Approved", "approved", pick(&s.actions.approved)),
            ("Running", "running", pick(&s.actions.running)),
            ("Recently finished", "recent", pick(&s.actions.recent)),
        ];
        let mut nodes: Vec<String> = s.nodes.keys().cloned().collect();
        for a in s.actions.pending.iter().chain(&s.actions.approved).chain(&s.actions.running).chain(&s.actions.recent) {
            if !nodes.contains(&a.node) {
                nodes.push(a.node.clone());
            }
        }
        let t = ActionsT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &s.errors,
            nodes: nodes.into_iter().map(|n| { let sel = n == fnode; (n, sel) }).collect(),
            states: ActionState::ALL.iter().map(|s| (s.as_str().to_owned(), s.as_str() == fstate)).collect(),
            sections,
        };
        respond(&state, &headers, &q, "Actions", v, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    /// The supervisor's drift row about this action's target now (world/drift.json).
    drift: Vec<DriftRow<'a>>,
    a: &'a Action,
    created_at: String,
    history: Vec<(String, String, String, String)>,
}

async fn action(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        if homelab_core::validate_action_id(&id).is_err() {
            return Err(PageError::Status(StatusCode::BAD_REQUEST, "That is not a valid action id.".into()));
        }
        let found = match lookup_action(&state, &id).await.map_err(|e| anyhow::anyhow!("{}", e.body["error"]))? {
            Lookup::Found(found) => found,
            Lookup::Missing(q) if q.is_empty() => return Err(PageError::Status(StatusCode::NOT_FOUND, format!("There is no action {id}."))),
            Lookup::Missing(q) => {
                let files: Vec<String> = q.iter().map(|e| format!("{} ({})", e.file, crate::snapshot::one_line(&e.reason))).collect();
                return Err(PageError::Status(StatusCode::NOT_FOUND, format!("There is no readable action {id}: its file was quarantined: {}.", files.join("; "))));
            }
            Lookup::Unreadable(reason) => {
                return Err(PageError::Status(StatusCode::CONFLICT, format!("The file of action {id} does not parse: {reason}. It stays listed under the unreadable files until it is fixed or quarantined.")));
            }
        };
        let snap = state.snapshot().await?;
        let a = found.action;
        let history = a.history.iter().map(|h| (rfc3339(h.at), h.state.to_string(), h.by.clone(), h.note.clone().unwrap_or_default())).collect();
        let about = |d: &&Drift| d.action_id.as_deref() == Some(a.id.as_str()) || (d.node == a.node && d.service == a.service && d.kind != "node_unreachable");
        let drift = drift_rows(snap.summary.drift.iter().filter(about).take(1), chrono::Utc::now());
        let t = ActionT { base: &state.base, csrf: v.csrf.clone(), errors: &snap.summary.errors, drift, a: &a, created_at: rfc3339(a.created_at), history };
        respond(&state, &headers, &q, &format!("Action {id}"), v, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsT<'a> {
    base: &'a str,
    node: Option<String>,
    service: Option<String>,
    rows: Vec<(String, String, String, String, String)>,
    page: usize,
    prev_link: String,
    next_link: Option<String>,
}

async fn events(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let node = q.node.clone().filter(|n| !n.is_empty());
        let service = q.service.clone().filter(|n| !n.is_empty());
        for n in node.iter().chain(service.iter()) {
            if homelab_core::validate_name(n).is_err() {
                return Err(PageError::Status(StatusCode::BAD_REQUEST, format!("{n:?} is not a valid node or service name.")));
            }
        }
        let page = q.page.unwrap_or(0).min(100_000);
        let root = state.root.clone();
        let (n2, s2) = (node.clone(), service.clone());
        let tl = tokio::task::spawn_blocking(move || crate::timeline::read_page(&root, n2.as_deref(), s2.as_deref(), page, crate::timeline::PER_PAGE))
            .await
            .map_err(anyhow::Error::new)?
            .map_err(anyhow::Error::new)?;
        let link = |p: usize| {
            let mut l = format!("{}/events?page={p}", state.base);
            if let Some(n) = &node {
                l.push_str(&format!("&node={n}"));
            }
            if let Some(s) = &service {
                l.push_str(&format!("&service={s}"));
            }
            l
        };
        let rows = tl
            .events
            .iter()
            .map(|e| (rfc3339(e.ts), e.node.clone(), e.service.clone().unwrap_or_default(), e.kind.clone(), e.detail.clone().unwrap_or_default()))
            .collect();
        let t = EventsT { base: &state.base, node: node.clone(), service: service.clone(), rows, page, prev_link: link(page.saturating_sub(1)), next_link: tl.next.map(link) };
        respond(&state, &headers, &q, "Events", v, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodeT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    drift_state: &'a str,
    drift_note: String,
    drift_at: String,
    name: &'a str,
    node: Option<&'a crate::snapshot::NodeSummary>,
    drift: Vec<DriftRow<'a>>,
    services: Vec<ServiceRow>,
    rows: Vec<&'a ActionSummary>,
}

async fn node(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(name): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        if homelab_core::validate_name(&name).is_err() {
            return Err(PageError::Status(StatusCode::BAD_REQUEST, "That is not a valid node name.".into()));
        }
        let snap = state.snapshot().await?;
        let s = &snap.summary;
        let a = &s.actions;
        let rows = a.pending.iter().chain(&a.approved).chain(&a.running).chain(&a.recent).filter(|x| x.node == name).collect();
        let t = NodeT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &s.errors,
            drift_state: s.drift_report.state,
            drift_note: drift_note(s),
            drift_at: drift_at(s, chrono::Utc::now()),
            name: &name,
            node: s.nodes.get(&name),
            drift: drift_rows(s.drift.iter().filter(|d| d.node == name), chrono::Utc::now()),
            services: service_rows(s, Some(&name)),
            rows,
        };
        respond(&state, &headers, &q, &format!("Node {name}"), v, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginT<'a> {
    base: &'a str,
    message: Option<&'a str>,
}

fn login_response(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let body = LoginT { base: &state.base, message }.render().unwrap_or_default();
    let html = Layout { title: "Log in", base: &state.base, user: None, csrf: None, live: false, body }.render().unwrap_or_default();
    (status, axum::response::Html(html)).into_response()
}

async fn login_page(State(state): State<Arc<AppState>>) -> Response {
    login_response(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    token: String,
}

fn behind_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let path = if state.base.is_empty() { "/" } else { state.base.as_str() };
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

async fn login(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if crate::auth::check_same_origin(&headers).is_err() {
        return login_response(&state, StatusCode::FORBIDDEN, Some("Cross-site login refused."));
    }
    // A local user's password, or the bootstrap UI token (auth.rs: limits, audit, sessions).
    match state.auth.password_login(peer.0, f.user.trim(), &f.token).await {
        Ok(id) => {
            let cookie = session_cookie(&state, &headers, &id, state.auth.session_ttl().as_secs());
            ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
        }
        Err(e) => {
            let mut r = login_response(&state, e.status(), Some(&e.to_string()));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn logout(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        return message_page(&state, r.status(), "Not logged out", &r.to_string(), &state.url("/"));
    }
    state.auth.logout(&headers);
    let cookie = session_cookie(&state, &headers, "", 0);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
}

async fn form_decide(state: Arc<AppState>, peer: Peer, headers: HeaderMap, id: String, f: CsrfForm, decision: Decision) -> Response {
    let back = state.url("/actions");
    let op: Operator = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
    };
    if op.csrf.is_none() {
        // A bearer token in a form post: fine, it cannot come from another site.
    }
    match crate::api::apply_decision_from(&state, &op, peer.0, id.clone(), decision).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(e) if crate::api::decide_storage_error(&e).is_some() => {
            let api = crate::api::ApiError::from(e);
            let msg = api.body["error"].as_str().unwrap_or("cannot write to the data root now; retry later").to_owned();
            let mut r = message_page(&state, api.status, "Nothing changed", &msg, &back);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECS));
            r
        }
        Err(e) => {
            let status = match &e {
                DecideError::BadId(_) => StatusCode::BAD_REQUEST,
                DecideError::NotFound(_) => StatusCode::NOT_FOUND,
                DecideError::NotPending { .. } => StatusCode::CONFLICT,
                DecideError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                DecideError::Forbidden(_) => StatusCode::FORBIDDEN,
            };
            message_page(&state, status, "Nothing changed", &e.to_string(), &back)
        }
    }
}

async fn form_approve(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    form_decide(state, peer, headers, id, f, Decision::Approve).await
}

async fn form_reject(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let reason = f.reason.clone();
    form_decide(state, peer, headers, id, f, Decision::Reject { reason }).await
}

async fn form_retry(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let back = state.url("/");
    let op: Operator = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
    };
    match crate::api::apply_retry_from(&state, &op, peer.0, id).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(e) => {
            let api = crate::api::ApiError::from(e);
            let msg = api.body["error"].as_str().unwrap_or("not proposed again").to_owned();
            let mut r = message_page(&state, api.status, "Not proposed again", &msg, &back);
            if api.status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECS));
            }
            r
        }
    }
}
