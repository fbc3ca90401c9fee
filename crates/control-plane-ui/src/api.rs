// tidy: long file: every /api/v1 handler, /summary, /metrics and the OpenAPI document in one file, not yet split by resource.
//! The JSON API, `/summary`, `/summary.md`, `/metrics` and `/healthz`, each handler with its
//! `#[utoipa::path]` (the OpenAPI document is built from those: `crate::openapi`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use homelab_core::{Action, ActionId, ActionState, Event, NodeName, ServiceName};
use homelab_ops::{CheckNowError, DecideError, Decision, ProposeError, RetryError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::{Operator, Refusal};

/// At most this many events in one ingest request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// The largest request body the API reads (axum's default, stated): larger → 413 JSON.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// A reject reason is at most this many characters; a longer one is refused (422), never cut.
pub const MAX_REASON_CHARS: usize = 500;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/summary", get(summary))
        .route("/summary.md", get(summary_md))
        .route("/metrics", get(metrics))
        .route("/api/v1/world", get(world))
        .route("/api/v1/actions", get(list_actions))
        .route("/api/v1/actions/{id}", get(get_action))
        .route("/api/v1/actions/{id}/approve", post(approve))
        .route("/api/v1/actions/{id}/reject", post(reject))
        .route("/api/v1/actions/{id}/cancel", post(cancel))
        .route("/api/v1/services/{node}/{service}/deploys", get(deploys))
        .route("/api/v1/services/{node}/{service}/rollback", post(rollback))
        .route("/api/v1/actions/{id}/retry", post(retry))
        .route("/api/v1/events", post(ingest))
        .route("/api/v1/alertmanager", post(alertmanager))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/nodes/{node}/services/{service}/check-now", post(check_now))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Every error is JSON `{"error": …}`: axum's own rejections (a body over [`MAX_BODY_BYTES`]
/// → 413, a query or path that does not parse → 400, a method the route does not have → 405)
/// are plain text or empty; they are rewritten here with their message. Errors with another
/// content type (JSON, a page's HTML) pass unchanged.
pub async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let plain = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|c| c.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("request body too large: at most {MAX_BODY_BYTES} bytes"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
            format!("method not allowed here; use {allow}")
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        _ => text,
    };
    let mut out = ApiError::new(status, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The answer to a path no route has: 404 `{"error": …}` (the router's fallback).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint {}: see /api/v1/openapi.json", uri.path())).into_response()
}

/// The connecting address (the proxy's, behind a reverse proxy); `None` when unknown.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// An error answer: a status and `{"error": "...", ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError::with(status, ErrorBody { error: message.to_string() })
    }

    /// An error answer with one of the documented bodies ([`ErrorBody`], [`CodedError`], …).
    pub fn with(status: StatusCode, body: impl Serialize) -> ApiError {
        ApiError { status, body: serde_json::to_value(body).unwrap_or_else(|e| json!({ "error": e.to_string() })) }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the control-plane-ui log")
    }

    /// A failed write: 503 with `Retry-After` when the data root cannot take writes now (disk
    /// full, read-only, I/O error), else 500.
    pub fn write_failed(e: &std::io::Error) -> ApiError {
        match storage_unavailable(e) {
            Some(why) => {
                tracing::warn!(error = %e, "write refused: {why}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot write to the data root now: {why}; retry later"))
            }
            None => ApiError::internal(e),
        }
    }
}

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 30;

/// When an IO error means the data root cannot take writes for now (ENOSPC, EDQUOT, EROFS, EIO),
/// a short description of it; `None` for anything else.
pub fn storage_unavailable(e: &std::io::Error) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    match (e.kind(), e.raw_os_error()) {
        (K::StorageFull, _) | (_, Some(28)) => Some("the disk holding it is full (ENOSPC)"),
        (K::QuotaExceeded, _) | (_, Some(122)) => Some("the disk quota is exceeded (EDQUOT)"),
        (K::ReadOnlyFilesystem, _) | (_, Some(30)) => Some("its file system is read-only (EROFS)"),
        (_, Some(5)) => Some("the disk reports an I/O error (EIO)"),
        _ if e.to_string().contains("Input/output error") => Some("the disk reports an I/O error (EIO)"),
        _ => None,
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r.retry_after() {
            Some(s) => ApiError::with(r.status(), RateLimited { error: r.to_string(), retry_after: Some(s) }),
            None => ApiError::new(r.status(), &r),
        }
    }
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> ApiError {
        match &e {
            DecideError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, &e),
            DecideError::NotPending { state, .. } | DecideError::TooLate { state, .. } => {
                ApiError::with(StatusCode::CONFLICT, Conflict { error: e.to_string(), state: *state })
            }
            DecideError::Store(_) => match e.io().filter(|io| storage_unavailable(io).is_some()) {
                Some(io) => ApiError::write_failed(io),
                None => ApiError::internal(&e),
            },
            DecideError::Forbidden(_) => ApiError::with(StatusCode::FORBIDDEN, CodedError { error: e.to_string(), code: Some(ErrorCode::Forbidden) }),
        }
    }
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> ApiError {
        let conflict = |code, state| ApiError::with(StatusCode::CONFLICT, RetryConflict { error: e.to_string(), code, state });
        match &e {
            RetryError::Active { state, .. } => conflict(RetryCode::Active, Some(*state)),
            RetryError::NoDrift { .. } => conflict(RetryCode::NoDrift, None),
            RetryError::NotReported { .. } => conflict(RetryCode::DriftNotReported, None),
            RetryError::DriftUnreadable { .. } => conflict(RetryCode::DriftUnreadable, None),
            RetryError::Store(_) => match e.io().filter(|io| storage_unavailable(io).is_some()) {
                Some(io) => ApiError::write_failed(io),
                None => ApiError::internal(&e),
            },
            RetryError::Forbidden(_) => ApiError::with(StatusCode::FORBIDDEN, CodedError { error: e.to_string(), code: Some(ErrorCode::Forbidden) }),
        }
    }
}

/// Quarantined action files that belong to `id` (`quarantine/actions/<…id…>.json`): the id
/// followed by `.` or `--`, at the start of the name or after `-`, `_` or `.`.
pub fn quarantined_action_files(root: &homelab_store::DataRoot, id: &str) -> Vec<crate::snapshot::QuarantinedFile> {
    let belongs = |name: &str| {
        name.match_indices(id).any(|(at, _)| {
            let before_ok = at == 0 || matches!(name.as_bytes()[at - 1], b'-' | b'_' | b'.');
            let rest = &name[at + id.len()..];
            before_ok && (rest.starts_with('.') || rest.starts_with("--"))
        })
    };
    let mine: Vec<String> = root.quarantined_action_files_where(belongs).unwrap_or_default();
    if mine.is_empty() {
        return Vec::new();
    }
    // Only now read reasons (at most 4 KiB each, never following a symlink).
    let listing = root.quarantine_listing(usize::MAX).unwrap_or_default();
    listing
        .recent
        .into_iter()
        .filter(|e| mine.contains(&e.file))
        .map(|e| crate::snapshot::QuarantinedFile { file: e.file, reason: e.reason, at: homelab_core::rfc3339(e.at) })
        .collect()
}

/// How looking up one action by id came out, for the API and the action page.
pub enum Lookup {
    Found(Box<homelab_store::actions::StoredAction>),
    /// No readable file; these quarantined files are its (maybe empty).
    Missing(Vec<crate::snapshot::QuarantinedFile>),
    /// Its file does not parse: (file relative to the data root when known, reason).
    Unreadable(String),
}

/// Finds an action by id without ever failing on a file's content.
pub async fn lookup_action(state: &Arc<AppState>, id: &str) -> Result<Lookup, ApiError> {
    let root = state.root.clone();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || match root.find_action(&id) {
        Ok(Some(found)) => Ok(Lookup::Found(Box::new(found))),
        Ok(None) => Ok(Lookup::Missing(quarantined_action_files(&root, &id))),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let prefix = format!("{}/", root.path().display());
            let text = e.to_string();
            Ok(Lookup::Unreadable(text.strip_prefix(&prefix).unwrap_or(&text).to_owned()))
        }
        Err(e) => Err(ApiError::internal(e)),
    })
    .await
    .map_err(ApiError::internal)?
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_secs = self.body["retry_after"].as_u64().unwrap_or(1);
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_secs));
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Descriptions of answers many operations share.
pub const UNAUTHORIZED_READ: &str =
    "only when SUMMARY_TOKEN is set: no credentials or wrong ones (without SUMMARY_TOKEN reads are open, yet a credential that is sent must be right)";
pub const UNAUTHORIZED_WRITE: &str = "no credentials, a wrong token, an expired session, or a proxy user header from an address outside TRUSTED_PROXIES";
pub const FORBIDDEN_WRITE: &str = "a browser credential (session cookie, trusted proxy user) without the X-CSRF-Token header or cross-site; or the user's role or node groups do not allow it (`code`: `forbidden`)";
pub const TOO_LARGE: &str = "the body is larger than 2 MiB (2097152 bytes)";
pub const RATE_LIMITED: &str = "too many wrong tokens or logins from this address: retry after `Retry-After` seconds";
pub const INTERNAL: &str = "internal error (a bug or an unreadable data root); see the control-plane-ui log";
pub const UNAVAILABLE: &str = "the data root cannot take writes now (disk full, read-only, I/O error); retry after `Retry-After` seconds";

/// `{"error": …}`: every error answer has it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
}

/// The closed set of `code`s of [`CodedError`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Forbidden,
    ReasonTooLong,
    Ended,
}

/// An error with a machine-readable `code`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodedError {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

/// 429: too many wrong tokens or logins from this address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateLimited {
    pub error: String,
    /// Seconds to wait (also in `Retry-After`).
    pub retry_after: Option<u64>,
}

/// 409 of approve, reject and cancel: the action is no longer pending (cancel: running or ended).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    pub error: String,
    pub state: ActionState,
}

/// The `code`s of a refused retry.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryCode {
    Active,
    NoDrift,
    DriftNotReported,
    DriftUnreadable,
}

/// 409 of retry: nothing written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryConflict {
    pub error: String,
    pub code: RetryCode,
    /// With `active`: pending, approved or running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ActionState>,
}

/// Why an event's time was refused.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockCode {
    ClockSkew,
    TooOld,
}

/// 422 of ingest and the webhook: an event failed the clock check; nothing was written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClockError {
    /// `event <index>: <code>: <message>`.
    pub error: String,
    #[schema(value_type = ClockCode)]
    pub code: &'static str,
    /// Position of the first refused event in the request.
    pub index: usize,
    pub id: uuid::Uuid,
}

/// 404 of one action: `quarantine` lists its quarantined file(s), if any.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotFoundQuarantined {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Vec<crate::snapshot::QuarantinedFile>>,
}

/// The one `code` of [`Unreadable`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnreadableCode {
    Unreadable,
}

/// 409 of one action: its file does not parse.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unreadable {
    pub error: String,
    pub code: UnreadableCode,
    /// The file and the parse error.
    pub reason: String,
}

/// The answers every read may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    #[response(status = 401, description = UNAUTHORIZED_READ, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    #[response(status = 429, description = RATE_LIMITED, headers(("Retry-After" = u64)))]
    RateLimited(RateLimited),
    #[response(status = 500, description = INTERNAL)]
    Internal(ErrorBody),
}

/// The answers every operator command may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    #[response(status = 401, description = UNAUTHORIZED_WRITE, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    #[response(status = 413, description = TOO_LARGE)]
    TooLarge(ErrorBody),
    #[response(status = 429, description = RATE_LIMITED, headers(("Retry-After" = u64)))]
    RateLimited(RateLimited),
    #[response(status = 500, description = INTERNAL)]
    Internal(ErrorBody),
    #[response(status = 503, description = UNAVAILABLE, headers(("Retry-After" = u64)))]
    Unavailable(ErrorBody),
}

/// The answers of an operator command on one action, silence or service besides its own and
/// [`WriteErrors`]: a bad id or body, or not allowed.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum TargetErrors {
    #[response(status = 400, description = "an invalid id or body")]
    Invalid(ErrorBody),
    #[response(status = 403, description = FORBIDDEN_WRITE)]
    Forbidden(CodedError),
}

/// `GET /api/v1/world`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorldAnswer<'a> {
    /// `world/services.json` (or its last good copy; `null` before the observer wrote it).
    pub services: &'a Option<homelab_core::world::ServicesFile>,
    /// `world/nodes.json` (or its last good copy; `null` before the observer wrote it).
    pub nodes: &'a Option<homelab_core::world::NodesFile>,
    /// Those of the two that do not parse.
    pub errors: Vec<&'a crate::snapshot::FileError>,
}

/// `GET /api/v1/actions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionList {
    pub actions: Vec<Action>,
}

/// A check-now request still waiting for the token's node, in the ingest answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PendingCheckNow {
    pub service: String,
    pub requested_by: String,
    #[schema(format = DateTime)]
    pub requested_at: String,
}

/// `POST /api/v1/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    pub written: usize,
    pub duplicates: usize,
    /// Check-now requests waiting for this node, oldest first.
    pub check_now: Vec<PendingCheckNow>,
}

/// The ingest body: one event or an array of at most 1000 (`[]` is the agent's poll).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum EventBatch {
    One(Event),
    Many(Events),
}

/// At most 1000 events.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(max_items = 1000)]
pub struct Events(Vec<Event>);

/// `POST /api/v1/alertmanager`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertmanagerAnswer {
    pub written: usize,
    /// Why each skipped alert was skipped.
    pub skipped: Vec<String>,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditAnswer {
    #[schema(format = Date)]
    pub day: String,
    pub records: Vec<homelab_store::audit::AuditRecord>,
    /// Torn or damaged lines.
    pub skipped: usize,
    /// Days that have a log, as `YYYY-MM-DD`.
    pub days: Vec<String>,
}

#[utoipa::path(get, path = "/healthz", summary = "liveness (always open)", security(()),
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

fn read_access(state: &AppState, headers: &HeaderMap, peer: Peer) -> ApiResult<()> {
    state.auth.for_read(headers, peer.0).map(|_| ()).map_err(ApiError::from)
}

/// True when the client's `If-None-Match` names this ETag (or `*`).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

#[utoipa::path(get, path = "/summary",
    summary = "world state, drift, actions by state and counts, for mirrors (ETag / If-None-Match; gzip when asked)",
    security((), ("bearer" = []), ("session" = [])),
    params(("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "the summary", body = crate::snapshot::Summary, headers(("ETag" = String))),
        (status = 304, description = "unchanged since the given ETag (no body)"),
        ReadErrors,
    ))]
async fn summary(State(state): State<Arc<AppState>>, Peer(peer): Peer, headers: HeaderMap) -> ApiResult<Response> {
    read_access(&state, &headers, Peer(peer))?;
    let snap = state.snapshot().await.map_err(ApiError::internal)?;
    let gz_etag = crate::snapshot::gzip_etag(&snap.etag);
    let gzip = accepts_gzip(&headers);
    let etag = if gzip { gz_etag.as_str() } else { snap.etag.as_str() };
    let etag = HeaderValue::from_str(etag).map_err(ApiError::internal)?;
    let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
    // Either representation's tag means the client has the current content.
    if not_modified(&headers, &snap.etag) || not_modified(&headers, &gz_etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), vary]).into_response());
    }
    let ct = (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let cc = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if gzip {
        let ce = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return Ok(([(header::ETAG, etag), ct, cc, vary, ce], snap.summary_gzip.clone()).into_response());
    }
    Ok(([(header::ETAG, etag), ct, cc, vary], snap.summary_json.clone()).into_response())
}

/// True when `Accept-Encoding` lists gzip without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q_zero = parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

#[utoipa::path(get, path = "/summary.md", summary = "the Markdown digest behind 'Copy for AI'",
    security((), ("bearer" = []), ("session" = [])),
    responses((status = 200, description = "digest", body = String, content_type = "text/markdown"), ReadErrors))]
async fn summary_md(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> ApiResult<Response> {
    read_access(&state, &headers, peer)?;
    let snap = state.snapshot().await.map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], snap.markdown.clone()).into_response())
}

#[utoipa::path(get, path = "/metrics",
    summary = "Prometheus metrics: OpenMetrics text, or the classic text format 0.0.4 when Accept names text/plain and not OpenMetrics",
    security((), ("bearer" = []), ("session" = [])),
    responses((status = 200, description = "metrics", content((String = "application/openmetrics-text"), (String = "text/plain"))), ReadErrors))]
async fn metrics(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> ApiResult<Response> {
    read_access(&state, &headers, peer)?;
    let snap = state.snapshot().await.map_err(ApiError::internal)?;
    let text = crate::metrics::render_for(&state, &snap, chrono::Utc::now()).await.map_err(ApiError::internal)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if crate::metrics::wants_text(accept) {
        return Ok(([(header::CONTENT_TYPE, crate::metrics::TEXT_CONTENT_TYPE)], crate::metrics::to_prometheus_text(&text)).into_response());
    }
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

#[utoipa::path(get, path = "/api/v1/world",
    summary = "the two world files, world/services.json and world/nodes.json, each on its own: a file that does not parse is its last good copy (or null) and is named in `errors`",
    security((), ("bearer" = []), ("session" = [])),
    responses((status = 200, description = "world", body = WorldAnswer), ReadErrors))]
async fn world(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> ApiResult<Response> {
    read_access(&state, &headers, peer)?;
    // From the view: each file on its own, the last good copy of one that does not parse.
    let snap = state.snapshot().await.map_err(ApiError::internal)?;
    let errors: Vec<_> = snap.summary.errors.iter().filter(|e| e.file.starts_with("world/")).collect();
    Ok(Json(WorldAnswer { services: &snap.services_file, nodes: &snap.nodes_file, errors }).into_response())
}

/// The path of a command on one action (parsed by [`action_id`] in the handler).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct ActionPath {
    /// action id: `<type>-<node>[-<service>]`
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,159}$", max_length = 160)]
    id: String,
}

/// The path of a command on one service of a node (parsed by [`service_target`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct ServicePath {
    /// node name
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$", max_length = 63)]
    node: String,
    /// service name
    #[param(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$", max_length = 63)]
    service: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ActionsQuery {
    /// Comma-separated states; empty or absent: all.
    #[param(
        pattern = r"^((pending|approved|running|completed|failed|rejected|cancelled)(,(pending|approved|running|completed|failed|rejected|cancelled))*)?$"
    )]
    state: Option<String>,
    /// Only this node's actions (empty: all).
    #[param(pattern = r"^([a-z0-9][a-z0-9._-]{0,62})?$")]
    node: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/actions", summary = "actions, optionally by state(s) and node",
    security((), ("bearer" = []), ("session" = [])),
    params(ActionsQuery),
    responses(
        (status = 200, description = "actions", body = ActionList),
        (status = 400, description = "an unknown state or an invalid node name", body = ErrorBody),
        ReadErrors,
    ))]
async fn list_actions(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<ActionsQuery>) -> ApiResult<Json<ActionList>> {
    read_access(&state, &headers, peer)?;
    let states: Vec<ActionState> = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => ActionState::ALL.to_vec(),
        Some(s) => s
            .split(',')
            .map(|one| {
                ActionState::parse(one.trim()).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("unknown state {one:?}: use pending, approved, running, completed, failed, rejected or cancelled"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let node = q.node.filter(|n| !n.is_empty());
    if let Some(n) = &node {
        homelab_core::validate_name(n).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("node: {e}")))?;
    }
    let root = state.root.clone();
    let actions = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Action>> {
        let mut out = Vec::new();
        for s in states {
            out.extend(root.list_actions(s)?.into_iter().map(|a| a.action).filter(|a| node.as_ref().is_none_or(|n| &a.node == n)));
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(ActionList { actions }))
}

#[utoipa::path(get, path = "/api/v1/actions/{id}",
    summary = "one action (active, else its newest terminal file); never 500 because of a file's content",
    security((), ("bearer" = []), ("session" = [])),
    params(ActionPath),
    responses(
        (status = 200, description = "the action", body = Action),
        (status = 400, description = "an invalid id", body = ErrorBody),
        (status = 404, description = "no such action; when its file did not parse and was moved to quarantine/actions/, `quarantine` lists the quarantined file(s) with their reason", body = NotFoundQuarantined),
        (status = 409, description = "its file does not parse (and is still in its folder): `code` is `unreadable`, `reason` names the file and the parse error", body = Unreadable),
        ReadErrors,
    ))]
async fn get_action(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(ActionPath { id }): Path<ActionPath>) -> ApiResult<Json<Action>> {
    read_access(&state, &headers, peer)?;
    action_id(&id)?;
    match lookup_action(&state, &id).await? {
        Lookup::Found(found) => Ok(Json(found.action)),
        Lookup::Missing(quarantined) if quarantined.is_empty() => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no action {id}"))),
        Lookup::Missing(quarantined) => Err(ApiError::with(
            StatusCode::NOT_FOUND,
            NotFoundQuarantined {
                error: format!("no readable action {id}: its file was quarantined ({}); see the reason", quarantined[0].file),
                quarantine: Some(quarantined),
            },
        )),
        Lookup::Unreadable(reason) => Err(ApiError::with(
            StatusCode::CONFLICT,
            Unreadable {
                error: format!("the file of action {id} does not parse: {reason}; it is listed under errors in /summary until it is fixed or quarantined"),
                code: UnreadableCode::Unreadable,
                reason,
            },
        )),
    }
}

/// An action id from a request path, parsed once here (400 when it is not one).
pub fn action_id(id: &str) -> Result<ActionId, ApiError> {
    ActionId::parse(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

/// Approves or rejects for an authenticated operator through the operations layer (the role ×
/// node-group check, the move, the audit record) and answers with the moved action.
pub async fn apply_decision_from(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, id: &str, decision: Decision) -> ApiResult<Action> {
    let (id, actor) = (action_id(id)?, op.actor(peer));
    Ok(state.run_op(move |ops| ops.decide(&actor, &id, decision)).await?)
}

/// `POST /api/v1/nodes/{node}/services/{service}/check-now`: asks the node's agent to run the
/// service's checks at once (`state/check_now/<node>/<service>.json`, which the agent serves and
/// removes; the result shows as fresh events). Operator credentials as for approve, the node's
/// groups respected; the service must be a checked one of that node in hosts/ (else 404). JSON
/// clients get 202 and the request; the node page's form (field `csrf`) is sent back to the page.
#[utoipa::path(post, path = "/api/v1/nodes/{node}/services/{service}/check-now",
    summary = "ask the node's agent to run the service's checks at once (state/check_now/<node>/<service>.json); the agent serves it within a second and the result shows as fresh events",
    security(("bearer" = []), ("session" = [])),
    params(ServicePath),
    responses(
        (status = 202, description = "the request, written for the agent", body = homelab_store::check_now::CheckNowRequest),
        (status = 303, description = "from the node page's form: back to the node page", headers(("Location" = String))),
        TargetErrors,
        (status = 404, description = "not a service the node's agent checks (hosts/<node>/services.yaml)", body = ErrorBody),
        WriteErrors,
    ))]
async fn check_now(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(ServicePath { node, service }): Path<ServicePath>,
    body: Bytes,
) -> ApiResult<Response> {
    let (op, form) = form_or_api_operator(&state, &headers, peer, &body)?;
    let (node, service) = service_target(&node, &service)?;
    let actor = op.actor(peer.0);
    let (n, s) = (node.clone(), service.clone());
    let req = state.run_op(move |ops| ops.check_now(&actor, &n, &s)).await.map_err(|e| match e {
        CheckNowError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, why),
        e @ CheckNowError::NotChecked { .. } => ApiError::new(StatusCode::NOT_FOUND, e),
        CheckNowError::Store(io) => ApiError::write_failed(&io),
    })?;
    if form {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("{}/nodes/{node}", state.base))]).into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(req)).into_response())
}

/// The operator of a command a page's form may post too (its CSRF token then comes as the
/// `csrf` field), and whether it came from a form (answered with a redirect, not JSON).
fn form_or_api_operator(state: &AppState, headers: &HeaderMap, peer: Peer, body: &[u8]) -> ApiResult<(Operator, bool)> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let csrf = form.then(|| form_field(body, "csrf")).flatten();
    Ok((state.auth.for_mutation(headers, peer.0, csrf.as_deref())?, form))
}

/// One field of an `application/x-www-form-urlencoded` body, decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let raw = text.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[utoipa::path(post, path = "/api/v1/actions/{id}/approve", summary = "approve a pending action (pending -> approved)",
    security(("bearer" = []), ("session" = [])),
    params(ActionPath),
    responses(
        (status = 200, description = "the action", body = Action),
        TargetErrors,
        (status = 404, description = "no such action", body = ErrorBody),
        (status = 409, description = "no longer pending; `state` names its current state", body = Conflict),
        WriteErrors,
    ))]
async fn approve(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(ActionPath { id }): Path<ActionPath>) -> ApiResult<Json<Action>> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    Ok(Json(apply_decision_from(&state, &op, peer.0, &id, Decision::APPROVE).await?))
}

/// Proposes an action again for an authenticated operator through the operations layer (the
/// role × node-group check on the action about to be written, the write, the audit record)
/// and answers with the new pending action.
pub async fn apply_retry_from(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, id: &str) -> ApiResult<Action> {
    let (id, actor) = (action_id(id)?, op.actor(peer));
    Ok(state.run_op(move |ops| ops.retry(&actor, &id)).await?)
}

#[utoipa::path(post, path = "/api/v1/actions/{id}/retry",
    summary = "propose an action again (after remediation_exhausted, a rejection snooze, ...): writes a fresh pending action with this id while world/drift.json holds a drift for its target",
    security(("bearer" = []), ("session" = [])),
    params(ActionPath),
    responses(
        (status = 201, description = "the new pending action", body = Action),
        TargetErrors,
        (status = 409, description = "nothing written. `code`: `active` (an action with this id is pending, approved or running; `state` names it), `no_drift`, `drift_not_reported` (no world/drift.json yet), `drift_unreadable`", body = RetryConflict),
        WriteErrors,
    ))]
async fn retry(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(ActionPath { id }): Path<ActionPath>) -> ApiResult<Response> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    let a = apply_retry_from(&state, &op, peer.0, &id).await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// Empty, or `{"reason": …}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// At most 500 characters, kept whole; a longer reason is refused (422), never cut.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/actions/{id}/reject", summary = "reject a pending action with an optional reason",
    security(("bearer" = []), ("session" = [])),
    params(ActionPath),
    request_body(content = ReasonBody, description = "empty, or `{\"reason\": …}`: at most 500 characters, kept whole (control characters become spaces); a longer reason is refused with 422, never cut"),
    responses(
        (status = 200, description = "the action", body = Action),
        TargetErrors,
        (status = 404, description = "no such action", body = ErrorBody),
        (status = 409, description = "no longer pending; `state` names its current state", body = Conflict),
        (status = 422, description = "the reason is longer than 500 characters (`code`: `reason_too_long`); nothing changed", body = CodedError),
        WriteErrors,
    ))]
async fn reject(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(ActionPath { id }): Path<ActionPath>,
    body: Bytes,
) -> ApiResult<Json<Action>> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    let reason = reason_of(&body)?;
    Ok(Json(apply_decision_from(&state, &op, peer.0, &id, Decision::Reject { reason }).await?))
}

/// The reason of a reject or cancel body: empty, or `{"reason": …}`, kept whole or refused
/// (never cut silently).
fn reason_of(body: &[u8]) -> ApiResult<Option<String>> {
    let body: ReasonBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReasonBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body must be {{\"reason\": \"...\"}}: {e}")))?
    };
    if let Some(n) = body.reason.as_deref().map(|r| r.chars().count()).filter(|n| *n > MAX_REASON_CHARS) {
        return Err(ApiError::with(
            StatusCode::UNPROCESSABLE_ENTITY,
            CodedError { error: format!("reason is {n} characters long; at most {MAX_REASON_CHARS}: shorten it"), code: Some(ErrorCode::ReasonTooLong) },
        ));
    }
    Ok(body.reason)
}

#[utoipa::path(post, path = "/api/v1/actions/{id}/cancel",
    summary = "take back a pending action, or an approved one before an executor claims it (-> cancelled); unlike reject it snoozes nothing: while the drift holds, the supervisor proposes it again",
    security(("bearer" = []), ("session" = [])),
    params(ActionPath),
    request_body(content = ReasonBody, description = "empty, or `{\"reason\": …}`: at most 500 characters, kept whole; a longer reason is refused with 422, never cut"),
    responses(
        (status = 200, description = "the action, now cancelled", body = homelab_core::Action),
        (status = 400, description = "an invalid id or body", body = ErrorBody),
        (status = 403, description = FORBIDDEN_WRITE, body = CodedError),
        (status = 404, description = "no such action", body = ErrorBody),
        (status = 409, description = "running or ended: too late to cancel; `state` names its current state", body = Conflict),
        (status = 422, description = "the reason is longer than 500 characters (`code`: `reason_too_long`); nothing changed", body = CodedError),
        WriteErrors,
    ))]
async fn cancel(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(ActionPath { id }): Path<ActionPath>,
    body: Bytes,
) -> ApiResult<Json<homelab_core::Action>> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    let reason = reason_of(&body)?;
    Ok(Json(apply_decision_from(&state, &op, peer.0, &id, Decision::Cancel { reason }).await?))
}

/// A node and a service from a request path, parsed once here (400 when either is not a name).
fn service_target(node: &str, service: &str) -> ApiResult<(NodeName, ServiceName)> {
    let node = NodeName::parse(node).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("node: {e}")))?;
    let service = ServiceName::parse(service).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("service: {e}")))?;
    Ok((node, service))
}

/// `GET /api/v1/services/{node}/{service}/deploys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deploys {
    /// One record per change (redeploy, rollback), oldest first.
    pub history: Vec<homelab_core::deploy::DeployRecord>,
    /// The held generations, oldest first: what the service can be rolled back to.
    pub generations: Vec<homelab_core::deploy::Generation>,
}

#[utoipa::path(get, path = "/api/v1/services/{node}/{service}/deploys",
    summary = "a service's deploy history and its held generations (images and file hashes; never the files' content)",
    security((), ("bearer" = []), ("session" = [])),
    params(ServicePath),
    responses(
        (status = 200, description = "the history and the held generations (empty when nothing was changed yet)", body = Deploys),
        (status = 400, description = "an invalid node or service name", body = ErrorBody),
        ReadErrors,
    ))]
async fn deploys(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(ServicePath { node, service }): Path<ServicePath>,
) -> ApiResult<Json<Deploys>> {
    read_access(&state, &headers, peer)?;
    let (node, service) = service_target(&node, &service)?;
    let root = state.root.clone();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Deploys> {
        let history = root.read_deploy_history(&node, &service)?.records;
        let (generations, _) = root.list_generations(&node, &service)?;
        Ok(Deploys { history, generations })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(read))
}

/// `{"generation": …, "reason": …}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The held generation to return to (`GET …/deploys`).
    #[schema(max_length = 40)]
    generation: String,
    /// Why, kept in the history; at most 500 characters.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> ApiError {
        match &e {
            ProposeError::Forbidden(_) => ApiError::with(StatusCode::FORBIDDEN, CodedError { error: e.to_string(), code: Some(ErrorCode::Forbidden) }),
            ProposeError::NoSuchGeneration { .. } | ProposeError::Active { .. } => ApiError::new(StatusCode::CONFLICT, &e),
            ProposeError::Store(_) => match e.io().filter(|io| storage_unavailable(io).is_some()) {
                Some(io) => ApiError::write_failed(io),
                None => ApiError::internal(&e),
            },
        }
    }
}

#[utoipa::path(post, path = "/api/v1/services/{node}/{service}/rollback",
    summary = "propose rolling a service back to a held generation: a pending rollback action (guarded: a person approves it)",
    security(("bearer" = []), ("session" = [])),
    params(ServicePath),
    request_body(content = RollbackBody, description = "`{\"generation\": …}` and an optional `reason`"),
    responses(
        (status = 201, description = "the new pending rollback action", body = homelab_core::Action),
        (status = 303, description = "from the node page's form: to the new action's page", headers(("Location" = String))),
        TargetErrors,
        (status = 409, description = "the generation is not held, or a rollback of the service is already pending, approved or running; nothing written", body = ErrorBody),
        WriteErrors,
    ))]
async fn rollback(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(ServicePath { node, service }): Path<ServicePath>,
    body: Bytes,
) -> ApiResult<Response> {
    // From the node page's form (`csrf`, `generation`): answered with the new action's page.
    let (op, form) = form_or_api_operator(&state, &headers, peer, &body)?;
    let (node, service) = service_target(&node, &service)?;
    let body: RollbackBody = if form {
        let generation = form_field(&body, "generation").ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the form names no generation"))?;
        RollbackBody { generation, reason: form_field(&body, "reason").filter(|r| !r.trim().is_empty()) }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body must be {{\"generation\": \"...\"}}: {e}")))?
    };
    if body.reason.as_deref().is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("reason: at most {MAX_REASON_CHARS} characters")));
    }
    let actor = op.actor(peer.0);
    let a = state.run_op(move |ops| ops.propose_rollback(&actor, &node, &service, &body.generation, body.reason.as_deref())).await?;
    if form {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, state.url(&format!("/actions/{}", a.id)))]).into_response());
    }
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// The node whose ingest token this is, from state/secrets/agent_tokens.json and AGENT_TOKENS.
fn node_for_token(state: &AppState, token: &str) -> std::io::Result<Option<String>> {
    let file = state.root.read_agent_tokens()?;
    let mut found = None;
    // Compare against every token, not stopping at the first match.
    for (node, t) in file.iter().chain(state.env_agent_tokens.iter()) {
        if !t.is_empty() && crate::auth::ct_eq(token, t) {
            found = Some(node.clone());
        }
    }
    Ok(found)
}

/// Clock sanity of one event of a request: 422 naming the event when its time is more than
/// `MAX_CLOCK_SKEW` ahead of this host's clock or older than the event retention.
fn clock_sane(state: &AppState, index: usize, event: &Event, now: chrono::DateTime<chrono::Utc>) -> ApiResult<()> {
    homelab_core::event::clock_check(event.ts, now, state.max_clock_skew, state.max_event_age).map_err(|e| {
        tracing::warn!(node = %event.node, id = %event.id, ts = %homelab_core::rfc3339(event.ts), code = e.code, "event refused: {}", e.message);
        ApiError::with(
            StatusCode::UNPROCESSABLE_ENTITY,
            ClockError { error: format!("event {index}: {}: {}", e.code, e.message), code: e.code, index, id: event.id },
        )
    })
}

/// Counts what an ingest or webhook request came to (for `/metrics`).
fn counted<T: Serialize>(state: &AppState, endpoint: &'static str, source: &'static str, r: &ApiResult<Json<T>>) {
    match r {
        Ok(Json(body)) => state.counters.answered(endpoint, source, 200, serde_json::to_value(body).ok().as_ref()),
        Err(e) => state.counters.answered(endpoint, source, e.status.as_u16(), None),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct IngestQuery {
    /// Check-now requests the agent served without an event to carry the acknowledgement:
    /// `<service>@<requested_at>`, comma-separated.
    served: Option<String>,
}

/// `POST /api/v1/events`: the agent's events (one, or an array; `[]` is the agent's poll). The
/// answer lists this node's pending check-now requests (`check_now`). An ingested event with
/// `data.check_now.requested_at`, or a `served` entry, finishes the matching request
/// (`finish_check_now`: not when a newer request replaced it).
#[utoipa::path(post, path = "/api/v1/events",
    summary = "agent ingest: one event or an array of at most 1000 (`[]` is the agent's poll for check-now requests); per-node bearer token; all validated (names, node, clock) before any is written: one refused event refuses the whole request. The answer lists the token's node's pending check-now requests; an ingested event with data.check_now.requested_at, or a `served` entry, finishes the matching request unless a newer one replaced it",
    security(("agent" = [])),
    params(IngestQuery),
    request_body(content = EventBatch),
    responses(
        (status = 200, description = "written", body = IngestAnswer),
        (status = 400, description = "not JSON, or an event that is not valid (names, required fields, type-specific data)", body = ErrorBody),
        (status = 401, description = "no bearer token, or not a node's ingest token (the UI token is not one)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "an event's node is not this token's node", body = ErrorBody),
        (status = 413, description = "more than 1000 events, or a body over 2 MiB", body = ErrorBody),
        (status = 422, description = "an event's time is more than MAX_CLOCK_SKEW ahead of the UI's clock or older than the EVENT_RETENTION_DAYS retention; nothing of the request is written", body = ClockError),
        (status = 429, description = RATE_LIMITED, body = RateLimited, headers(("Retry-After" = u64))),
        (status = 500, description = INTERNAL, body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(("Retry-After" = u64))),
    ))]
async fn ingest(State(state): State<Arc<AppState>>, headers: HeaderMap, Query(q): Query<IngestQuery>, body: Bytes) -> ApiResult<Json<IngestAnswer>> {
    let r = ingest_inner(state.clone(), headers, q, body).await;
    counted(&state, "events", "agent", &r);
    r
}

/// `(service, requested_at)` of a check-now request an event reports as served.
fn served_by(event: &Event) -> Option<(String, homelab_core::Timestamp)> {
    let at = event.data.as_ref()?.get("check_now")?.get("requested_at")?.as_str()?;
    Some((event.service.clone()?, chrono::DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&chrono::Utc)))
}

/// The `served` query: `<service>@<requested_at>`, comma-separated.
fn parse_served(q: &str) -> Result<Vec<(String, homelab_core::Timestamp)>, String> {
    q.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (service, at) = item.split_once('@').ok_or_else(|| format!("served: {item:?} is not <service>@<requested_at>"))?;
            homelab_core::validate_name(service).map_err(|e| format!("served: service {service:?}: {e}"))?;
            let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| format!("served: {at:?} is not an RFC 3339 time: {e}"))?;
            Ok((service.to_owned(), at.with_timezone(&chrono::Utc)))
        })
        .collect()
}

async fn ingest_inner(state: Arc<AppState>, headers: HeaderMap, q: IngestQuery, body: Bytes) -> ApiResult<Json<IngestAnswer>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::from(Refusal::NoCredentials))?;
    let node = node_for_token(&state, token).map_err(ApiError::internal)?.ok_or_else(|| ApiError::from(Refusal::WrongToken))?;
    let mut served = parse_served(q.served.as_deref().unwrap_or("")).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("at most {MAX_EVENTS_PER_REQUEST} events per request")));
    }
    // Validate everything first: a request is written whole or not at all.
    let now = chrono::Utc::now();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let event: Event = serde_json::from_value(item).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("event {i}: not a valid event: {e}")))?;
        event.validate().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("event {i}: {e}")))?;
        if event.node != node {
            return Err(ApiError::new(StatusCode::FORBIDDEN, format!("event {i}: node {:?} does not match this token's node", event.node)));
        }
        clock_sane(&state, i, &event, now)?;
        events.push(event);
    }
    let root = state.root.clone();
    let node2 = node.clone();
    let (written, duplicates, pending) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let (mut w, mut d) = (0, 0);
        for e in &events {
            match root.write_event(e)? {
                homelab_store::events::Written::New => w += 1,
                homelab_store::events::Written::AlreadyThere => d += 1,
            }
        }
        // Written (or there already, a spool replay): the check-now requests they served are done.
        served.extend(events.iter().filter_map(served_by));
        for (service, requested_at) in served {
            let done = homelab_store::check_now::CheckNowRequest { node: node2.clone(), service, requested_by: String::new(), requested_at };
            if let Err(e) = root.finish_check_now(&done) {
                tracing::warn!(node = %node2, service = %done.service, error = %e, "cannot remove a served check-now request");
            }
        }
        // One folder listing: cheap enough for a poll every second per node.
        let pending = root.pending_check_now(&node2).unwrap_or_else(|e| {
            tracing::warn!(node = %node2, error = %e, "cannot list check-now requests");
            Vec::new()
        });
        Ok((w, d, pending))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::write_failed(&e))?;
    tracing::debug!(%node, written, duplicates, "events ingested");
    let check_now = pending
        .into_iter()
        .map(|r| PendingCheckNow { service: r.service, requested_by: r.requested_by, requested_at: homelab_core::rfc3339(r.requested_at) })
        .collect();
    Ok(Json(IngestAnswer { written, duplicates, check_now }))
}

/// Alertmanager's webhook (payload version 4): firing alerts become negative service events,
/// resolved ones positive events (see `homelab_core::alertmanager`). Authenticated by the bearer
/// `ALERTMANAGER_TOKEN`, or like any other mutation.
#[utoipa::path(post, path = "/api/v1/alertmanager",
    summary = "Alertmanager webhook (payload version 4): firing alerts become service_unhealthy events, resolved ones service_healthy",
    security(("bearer" = []), ("alertmanager" = []), ("session" = [])),
    request_body(content = homelab_core::alertmanager::Webhook),
    responses(
        (status = 200, description = "events written; alerts that name no node/service are skipped and listed", body = AlertmanagerAnswer),
        (status = 400, description = "not an Alertmanager webhook body (an alert status other than firing or resolved included); nothing written", body = ErrorBody),
        (status = 403, description = "a viewer, or a browser credential without the X-CSRF-Token header", body = ErrorBody),
        (status = 422, description = "an event failed the clock check (cannot happen with sane settings: events are dated at arrival); nothing written", body = ClockError),
        WriteErrors,
    ))]
async fn alertmanager(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, body: Bytes) -> ApiResult<Json<AlertmanagerAnswer>> {
    let r = alertmanager_inner(state.clone(), peer, headers, body).await;
    counted(&state, "alertmanager", "alertmanager", &r);
    r
}

async fn alertmanager_inner(state: Arc<AppState>, peer: Peer, headers: HeaderMap, body: Bytes) -> ApiResult<Json<AlertmanagerAnswer>> {
    use homelab_core::alertmanager::{Mapped, Webhook, map_webhook};
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let by_token = matches!((&state.alertmanager_token, bearer), (Some(t), Some(b)) if crate::auth::ct_eq(b, t));
    if !by_token {
        let op = state.auth.for_mutation(&headers, peer.0, None)?;
        if op.role == crate::auth::Role::Viewer {
            return Err(ApiError::new(StatusCode::FORBIDDEN, format!("{} is a viewer and may only read", op.name)));
        }
    }
    let hook: Webhook = serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("not an Alertmanager webhook body: {e}")))?;
    // Alertmanager sends only these two; anything else is a wrong body, refused whole.
    if let Some((i, a)) = hook.alerts.iter().enumerate().find(|(_, a)| a.status != "firing" && a.status != "resolved") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not an Alertmanager webhook body: alert {i}: status {:?} is neither firing nor resolved", a.status),
        ));
    }
    let now = chrono::Utc::now();
    // Through the alert: checks of hosts/ as the view has them, else by labels.
    let snap = state.snapshot().await.map_err(ApiError::internal)?;
    let (mut events, mut skipped) = (Vec::new(), Vec::new());
    for mapped in map_webhook(&hook, &state.alert_mapping, snap.desired.as_ref(), now) {
        match mapped {
            Mapped::Event(e) => events.push(e),
            Mapped::Skipped(why) => {
                tracing::warn!(%why, "alert skipped");
                skipped.push(why);
            }
        }
    }
    for (i, e) in events.iter().enumerate() {
        clock_sane(&state, i, e, now)?;
    }
    let root = state.root.clone();
    let written = tokio::task::spawn_blocking(move || events.iter().try_for_each(|e| root.write_event(e).map(|_| ())).map(|()| events.len()))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::write_failed(&e))?;
    Ok(Json(AlertmanagerAnswer { written, skipped }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// `YYYY-MM-DD` (default today, UTC).
    #[param(format = Date)]
    day: Option<String>,
    /// Only records whose `who` is this.
    who: Option<String>,
    /// Only records whose `what` is this.
    what: Option<String>,
    /// Only records whose `outcome` is this.
    outcome: Option<String>,
    /// Only records whose `target` is this.
    target: Option<String>,
}

/// `GET /api/v1/audit?day=&who=&what=&outcome=&target=`: one day of the audit log (admins only).
#[utoipa::path(get, path = "/api/v1/audit", summary = "one day of the audit log (admins: the UI token or an admin user)",
    security(("bearer" = []), ("session" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "records", body = AuditAnswer),
        (status = 400, description = "`day` is not YYYY-MM-DD", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED_WRITE, body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 429, description = RATE_LIMITED, body = RateLimited, headers(("Retry-After" = u64))),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn audit_log(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<AuditQuery>) -> ApiResult<Json<AuditAnswer>> {
    let op = state.auth.identify(&headers, peer.0)?;
    op.may_administer().map_err(|why| ApiError::new(StatusCode::FORBIDDEN, why))?;
    let day = match q.day.as_deref() {
        None => chrono::Utc::now().date_naive(),
        Some(d) => homelab_store::audit::parse_day(d).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("day {d:?}: use YYYY-MM-DD")))?,
    };
    let filter = homelab_store::audit::AuditFilter { who: q.who, what: q.what, outcome: q.outcome, target: q.target };
    let root = state.root.clone();
    let read = tokio::task::spawn_blocking(move || root.read_audit(day, &filter)).await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    let days: Vec<String> = state.root.audit_days().unwrap_or_default().iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
    Ok(Json(AuditAnswer { day: day.format("%Y-%m-%d").to_string(), records: read.records, skipped: read.skipped, days }))
}
