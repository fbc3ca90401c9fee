//! Retry ("propose again"): `POST /api/v1/actions/{id}/retry` and the page button write a fresh
//! pending action while its drift holds; 409 when the id is active or no drift holds for it.

use axum::body::Body;
use axum::http::StatusCode;
use homelab_core::ActionState;
use homelab_core::drift::NextStep;
use homelab_core::plan::DriftKind;

use crate::files::{drift_entry, write_drift, write_world};
use crate::fixture::*;

const ID: &str = "redeploy-edge-1-web";

fn exhausted(fx: &Fx) {
    fx.tmp.write_host("edge-1", "services:\n  web: {}\n");
    write_world(fx);
    write_drift(fx, vec![drift_entry("edge-1", Some("web"), DriftKind::UnhealthyService, NextStep::RemediationExhausted, Some(ID), Some(600))]);
}

#[tokio::test]
async fn retry_with_bearer_writes_a_fresh_pending_action_then_409() {
    let fx = Fx::new();
    exhausted(&fx);
    // An earlier, failed run of the same id stays where it is.
    let old = fx.state.root.path().join(format!("actions/failed/{ID}--20260527T120000.000Z.json"));
    std::fs::write(&old, b"{}").unwrap();

    let r = fx.send(bearer_post(&format!("/api/v1/actions/{ID}/retry"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["state"], "pending");
    let a = fx.state.root.read_active(ActionState::Pending, ID).unwrap().expect("pending on disk");
    assert_eq!(a.history.len(), 1, "a fresh action, not a moved one");
    assert_eq!(a.history[0].by, "api:token");
    assert!(a.history[0].note.as_deref().unwrap().starts_with("proposed again by api:token"), "{:?}", a.history[0].note);
    assert_eq!((a.drift.as_str(), a.trigger.as_str()), ("unhealthy_service", "containers_not_running"));
    assert!(old.exists(), "history is never overwritten");

    // Active now: 409 with its state, nothing changes.
    let before = fx.disk();
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{ID}/retry"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!((r.json()["code"].as_str(), r.json()["state"].as_str()), (Some("active"), Some("pending")));
    assert_eq!(fx.disk(), before);
    // Approved and running are active too.
    fx.send(bearer_post(&format!("/api/v1/actions/{ID}/approve"), UI_TOKEN, "")).await;
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{ID}/retry"), UI_TOKEN, "")).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (StatusCode::CONFLICT, Some("approved")));
}

#[tokio::test]
async fn retry_without_drift_is_409_and_changes_nothing() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  web: {}\n");
    write_world(&fx);
    let before = fx.disk();
    // No drift.json yet.
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{ID}/retry"), UI_TOKEN, "")).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::CONFLICT, Some("drift_not_reported")), "{}", r.body);
    // A drift on another target, and a node_unreachable row for this node: no drift holds for it.
    write_drift(
        &fx,
        vec![
            drift_entry("edge-1", Some("mqtt"), DriftKind::UnhealthyService, NextStep::RemediationExhausted, Some("redeploy-edge-1-mqtt"), None),
            drift_entry("edge-2", None, DriftKind::NodeUnreachable, NextStep::NodeUnreachable, None, None),
        ],
    );
    for id in [ID, "redeploy-edge-2-web"] {
        let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/retry"), UI_TOKEN, "")).await;
        assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::CONFLICT, Some("no_drift")), "{id}: {}", r.body);
    }
    // drift.json that does not parse: cannot tell, 409.
    std::fs::write(fx.tmp.root().join("world/drift.json"), "{").unwrap();
    let r = fx.send(bearer_post("/api/v1/actions/redeploy-edge-1-mqtt/retry", UI_TOKEN, "")).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::CONFLICT, Some("drift_unreadable")), "{}", r.body);
    assert_eq!(fx.disk(), before);
    // Invalid ids: 400; no credentials: 401; session without CSRF: 403.
    assert_eq!(fx.send(bearer_post("/api/v1/actions/..%2Fx/retry", UI_TOKEN, "")).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.send(req("POST", &format!("/api/v1/actions/{ID}/retry"), "127.0.0.1").body(Body::empty()).unwrap()).await.status, StatusCode::UNAUTHORIZED);
    let cookie = login(&fx, "bob").await;
    let r = fx.send(req("POST", &format!("/api/v1/actions/{ID}/retry"), "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(fx.disk(), before);
}

/// The Retry button on the dashboard: a session with CSRF, recorded as `ui:<user>`; a rejected
/// and snoozed row offers "Propose again" with any id of its target.
#[tokio::test]
async fn retry_from_the_page_records_the_user() {
    let fx = Fx::new();
    exhausted(&fx);
    let cookie = login(&fx, "alice").await;
    let page = fx.send(req("GET", "/", "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await.body;
    let csrf = csrf_in(&page);
    let form = |id: &str, csrf: &str| {
        req("POST", &format!("/actions/{id}/retry"), "127.0.0.1")
            .header("cookie", &cookie)
            .header("origin", "http://ui.test")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap()
    };
    let before = fx.disk();
    assert_eq!(fx.send(form(ID, "forged")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(fx.disk(), before);
    let r = fx.send(form(ID, &csrf)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), format!("/actions/{ID}"));
    let a = fx.state.root.read_active(ActionState::Pending, ID).unwrap().unwrap();
    assert_eq!(a.history[0].by, "ui:alice");
    assert!(a.history[0].note.as_deref().unwrap().contains("proposed again by ui:alice"));
    // Again: a page saying why, 409.
    let r = fx.send(form(ID, &csrf)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("already pending"), "{}", r.body);

    // Rejected and snoozed: "Propose again" on the row.
    write_drift(
        &fx,
        vec![drift_entry("edge-1", Some("z2m"), DriftKind::UnhealthyService, NextStep::RejectedSnoozed, Some("container-restart-edge-1-z2m"), Some(3600))],
    );
    fx.state.invalidate();
    let page = fx.send(req("GET", "/", "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await.body;
    assert!(page.contains(">Propose again</button>") && page.contains("action=\"/actions/container-restart-edge-1-z2m/retry\""), "{page}");
    let r = fx.send(form("container-restart-edge-1-z2m", &csrf)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// Two operators press Retry at once: exactly one pending action is written, the other gets 409.
#[tokio::test]
async fn racing_retries_write_one_action() {
    let fx = Fx::new();
    exhausted(&fx);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = fx.app.clone();
        tasks.push(tokio::spawn(async move { send(&app, bearer_post(&format!("/api/v1/actions/{ID}/retry"), UI_TOKEN, "")).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");
    let active: Vec<_> = [ActionState::Pending, ActionState::Approved, ActionState::Running]
        .into_iter()
        .filter(|s| fx.state.root.read_active(*s, ID).unwrap().is_some())
        .collect();
    assert_eq!(active, [ActionState::Pending]);
}
