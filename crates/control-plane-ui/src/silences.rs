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
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api::{ApiError, Peer};
use crate::auth::Operator;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/silences", get(list).post(create)).route("/api/v1/silences/{id}/expire", post(expire))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilenceBody {
    /// `node` or `node/service`; may be omitted with `action_type`.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub action_type: Option<String>,
    /// `30m`, `1h`, `2d` or seconds.
    pub duration: String,
    pub reason: String,
}

/// The answer to a silence that was not added or ended.
fn api_error(e: SilenceError) -> ApiError {
    match e {
        SilenceError::BadInput(why) => ApiError::new(StatusCode::BAD_REQUEST, why),
        e @ SilenceError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e),
        SilenceError::Ended(why) => ApiError { status: StatusCode::CONFLICT, body: json!({ "error": why, "code": "ended" }) },
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

async fn list(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    state.auth.for_read(&headers, peer.0)?;
    let now = chrono::Utc::now();
    let rows: Vec<serde_json::Value> = listing(&state)
        .await?
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["active"] = json!(s.is_active(now));
            v["mutes"] = json!(s.target());
            v
        })
        .collect();
    Ok(Json(json!({ "silences": rows })))
}

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

async fn expire(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Silence>, ApiError> {
    let op = state.auth.for_mutation(&headers, peer.0, None)?;
    Ok(Json(end(&state, &op, peer.0, &id).await?))
}
