//! Silences over the API: `GET /api/v1/silences` (active and ended within a week),
//! `POST /api/v1/silences` (`{"target": "edge-1/web", "action_type": null, "duration": "1h",
//! "reason": "..."}`) and `POST /api/v1/silences/{id}/expire`. Writing needs operator
//! credentials like approve (bearer token, or session cookie + CSRF header); a viewer is refused,
//! an operator only for nodes of their groups (a silence of an action type everywhere: admins).
//! Every add and expire, allowed or not, is in the audit log (`silence`, `silence_expire`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use homelab_core::silence::{Matcher, Silence, new_id, parse_action_type};
use homelab_store::audit::AuditRecord;
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
pub struct NewSilence {
    /// `node` or `node/service`; may be omitted with `action_type`.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub action_type: Option<String>,
    /// `30m`, `1h`, `2d` or seconds.
    pub duration: String,
    pub reason: String,
}

/// Whether `op` may mute (or end the muting of) what `s` matches; the page asks it too, to show
/// an "Expire now" button only where it would work.
pub fn allowed(op: &Operator, desired: Option<&homelab_core::DesiredState>, s: &Silence) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::new(StatusCode::FORBIDDEN, why);
    match &s.node {
        Some(node) => op.may_act_on(node, &crate::auth::groups_of(desired, node)).map_err(refuse),
        None if op.role == crate::auth::Role::Admin => Ok(()),
        None => Err(refuse(format!("{} may not mute an action type on every node: only an admin may; give a node", op.name))),
    }
}

/// Appends the outcome of an add or expire to the audit log: `ok`, `refused` (403), `failed`
/// (could not be written), else `conflict` (bad input, unknown id, already ended).
async fn audit<T>(
    state: &AppState,
    op: &Operator,
    peer: Option<IpAddr>,
    what: &str,
    target: &str,
    result: &Result<T, ApiError>,
    ok_detail: impl FnOnce(&T) -> String,
) {
    // The target may be what was typed: one short line.
    let target = homelab_core::one_line(target, 120);
    let mut rec = AuditRecord::new(&op.name, op.role.as_str(), op.channel, &crate::auth::source(peer), what, &target, "ok");
    rec = match result {
        Ok(v) => rec.detail(ok_detail(v)),
        Err(e) => {
            rec.outcome = match e.status {
                StatusCode::FORBIDDEN => "refused",
                s if s.is_server_error() => "failed",
                _ => "conflict",
            }
            .into();
            rec.detail(e.body["error"].as_str().unwrap_or_default())
        }
    };
    state.auth.audit_now(rec).await;
}

/// Builds, checks and writes a new silence for `op` (the API and the page share this); audited
/// as `silence` with what it mutes as the target.
pub async fn add(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, req: NewSilence) -> Result<Silence, ApiError> {
    let target = [req.target.clone().unwrap_or_default(), req.action_type.clone().unwrap_or_default()]
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let result = write_new(state, op, req).await;
    let target = result.as_ref().map(|s| s.target()).unwrap_or(target);
    audit(state, op, peer, "silence", &target, &result, |s| format!("silence {} until {} ({})", s.id, homelab_core::rfc3339(s.ends_at), s.reason)).await;
    result
}

async fn write_new(state: &Arc<AppState>, op: &Operator, req: NewSilence) -> Result<Silence, ApiError> {
    let now = chrono::Utc::now();
    let mut m = req.target.as_deref().map(Matcher::target).unwrap_or_default();
    if let Some(t) = req.action_type.as_deref().filter(|t| !t.trim().is_empty()) {
        m.action_type =
            Some(parse_action_type(t).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("unknown action type {t:?}: use container_restart, redeploy or disk_cleanup"))
            })?);
    }
    let duration = homelab_core::duration::parse_duration(&req.duration).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("duration: {e}")))?;
    let s = Silence::new(new_id(now, uuid::Uuid::new_v4().as_u128() as u32), m, duration, &req.reason, &op.by, now)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let desired = state.snapshot().await.ok().and_then(|snap| snap.desired.clone());
    allowed(op, desired.as_ref(), &s)?;
    let root = state.root.clone();
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || root.write_silence(&s2)).await.map_err(ApiError::internal)?.map_err(|e| ApiError::write_failed(&e))?;
    tracing::info!(silence = %s.id, mutes = %s.target(), by = %s.created_by, until = %homelab_core::rfc3339(s.ends_at), "silence added");
    Ok(s)
}

/// Ends a silence now for `op`; audited as `silence_expire` with the silence id as the target.
pub async fn end(state: &Arc<AppState>, op: &Operator, peer: Option<IpAddr>, id: &str) -> Result<Silence, ApiError> {
    let result = expire_now(state, op, id).await;
    audit(state, op, peer, "silence_expire", id, &result, |s| format!("mutes {} ({})", s.target(), s.reason)).await;
    result
}

async fn expire_now(state: &Arc<AppState>, op: &Operator, id: &str) -> Result<Silence, ApiError> {
    let root = state.root.clone();
    let id2 = id.to_owned();
    let found = tokio::task::spawn_blocking(move || root.read_silence(&id2)).await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    let Some(s) = found else { return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no silence {id}"))) };
    let desired = state.snapshot().await.ok().and_then(|snap| snap.desired.clone());
    allowed(op, desired.as_ref(), &s)?;
    let e = s
        .expire(&op.by, chrono::Utc::now())
        .map_err(|e| ApiError { status: StatusCode::CONFLICT, body: json!({ "error": e.to_string(), "code": "ended" }) })?;
    let root = state.root.clone();
    let e2 = e.clone();
    tokio::task::spawn_blocking(move || root.write_silence(&e2)).await.map_err(ApiError::internal)?.map_err(|e| ApiError::write_failed(&e))?;
    tracing::info!(silence = %e.id, by = %op.by, "silence expired");
    Ok(e)
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
    let req: NewSilence = serde_json::from_slice(&body).map_err(|e| {
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
