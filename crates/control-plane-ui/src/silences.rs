//! Silences over the API: `GET /api/v1/silences` (active and ended within a week),
//! `POST /api/v1/silences` (`{"target": "edge-1/web", "action_type": null, "duration": "1h",
//! "reason": "..."}`) and `POST /api/v1/silences/{id}/expire`. Writing needs operator
//! credentials like approve (bearer token, or session cookie + CSRF header); a viewer is refused,
//! an operator only for nodes of their groups (a silence of an action type everywhere: admins).
//! Every add and expire, allowed or not, is in the audit log (`silence`, `silence_expire`):
//! the operations layer (`homelab_ops::Ops::add_silence`, `expire_silence`) does both.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use homelab_core::silence::Silence;
use homelab_ops::{NewSilence, SilenceError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::{ApiError, CodedError, ErrorBody, ErrorCode, Peer, ReadErrors, TargetErrors, WriteErrors};
use crate::auth::Operator;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/silences", get(list).post(create)).route("/api/v1/silences/{id}/expire", post(expire))
}

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilenceBody {
    /// `node` or `node/service`; may be omitted with `action_type`.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62})?$")]
    pub target: Option<String>,
    /// `container_restart`, `redeploy` or `disk_cleanup` (also `restart`, `cleanup`, `container-restart`, `disk-cleanup`);
    /// empty or null: any type.
    #[serde(default)]
    #[schema(pattern = r"^(container_restart|redeploy|disk_cleanup|restart|cleanup|container-restart|disk-cleanup)?$")]
    pub action_type: Option<String>,
    /// `30m`, `1h`, `2d` or seconds: over 0 and at most 30 days.
    pub duration: String,
    /// Why, for the people who see it.
    #[schema(min_length = 1)]
    pub reason: String,
}

/// One silence in the listing: the silence, whether it holds now and what it mutes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceRow {
    #[serde(flatten)]
    pub silence: Silence,
    pub active: bool,
    /// What it mutes, in words (`edge-1/web`, `redeploy on every node`).
    pub mutes: String,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    pub silences: Vec<SilenceRow>,
}

/// The answer to a silence that was not added or ended.
fn api_error(e: SilenceError) -> ApiError {
    match e {
        SilenceError::BadInput(why) => ApiError::new(StatusCode::BAD_REQUEST, why),
        e @ SilenceError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e),
        SilenceError::Ended(why) => ApiError::with(StatusCode::CONFLICT, CodedError { error: why, code: Some(ErrorCode::Ended) }),
        SilenceError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, why),
        SilenceError::Store(io) => ApiError::write_failed(&io),
    }
}

/// Adds a silence for `op` through the operations layer (checks, write, audit); the API and
/// the page share this.
pub async fn add(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, req: NewSilenceBody) -> Result<Silence, ApiError> {
    let duration = homelab_core::duration::parse_duration(&req.duration).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("duration: {e}")))?;
    let req = NewSilence { target: req.target, action_type: req.action_type, duration, reason: req.reason };
    let actor = op.actor(peer);
    state.run_op(move |ops| ops.add_silence(&actor, req)).await.map_err(api_error)
}

/// Ends a silence now for `op` through the operations layer.
pub async fn end(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, id: &str) -> Result<Silence, ApiError> {
    let (actor, id) = (op.actor(peer), id.to_owned());
    state.run_op(move |ops| ops.expire_silence(&actor, &id)).await.map_err(api_error)
}

/// Active silences and those ended within a week, newest first.
pub async fn listing(state: &Arc<AppState>) -> Result<Vec<Silence>, ApiError> {
    let root = state.root.clone();
    let now = chrono::Utc::now();
    let all = tokio::task::spawn_blocking(move || root.list_silences()).await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    Ok(all.into_iter().filter(|s| s.is_kept(now)).collect())
}

#[utoipa::path(get, path = "/api/v1/silences", operation_id = "list_silences", summary = "active silences and those ended within a week, newest first",
    security((), ("bearer" = []), ("session" = [])),
    responses((status = 200, description = "silences", body = SilenceList), ReadErrors))]
async fn list(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Result<Json<SilenceList>, ApiError> {
    state.auth.for_read(&headers, peer.0)?;
    let now = chrono::Utc::now();
    let silences = listing(&state).await?.into_iter().map(|s| SilenceRow { active: s.is_active(now), mutes: s.target(), silence: s }).collect();
    Ok(Json(SilenceList { silences }))
}

#[utoipa::path(post, path = "/api/v1/silences", operation_id = "add_silence", summary = "mute a node, a service or an action type for a while",
    security(("bearer" = []), ("session" = [])),
    request_body = NewSilenceBody,
    responses(
        (status = 201, description = "the new silence", body = Silence),
        (status = 400, description = "a body that does not parse, no target and no action type, a bad name, an unknown action type, a duration of 0 or over 30 days, or an empty reason", body = ErrorBody),
        (status = 403, description = "a viewer; an operator for a node outside their groups; a non-admin muting an action type on every node; or a browser credential without X-CSRF-Token", body = ErrorBody),
        WriteErrors,
    ))]
async fn create(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    let req: NewSilenceBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body must be {{\"target\": \"node[/service]\", \"action_type\": null, \"duration\": \"1h\", \"reason\": \"...\"}}: {e}"),
        )
    })?;
    let s = add(&state, &op, peer.0, req).await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

#[utoipa::path(post, path = "/api/v1/silences/{id}/expire", operation_id = "expire_silence", summary = "end a silence now",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "silence id: `s-<time>-<hex>`", pattern = r"^s-[0-9A-Za-z.-]{1,38}$", max_length = 40)),
    responses(
        (status = 200, description = "the silence with `expired_at`", body = Silence),
        TargetErrors,
        (status = 404, description = "no such silence", body = ErrorBody),
        (status = 409, description = "it already ended (`code`: `ended`)", body = CodedError),
        WriteErrors,
    ))]
async fn expire(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Silence>, ApiError> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    Ok(Json(end(&state, &op, peer.0, &id).await?))
}
