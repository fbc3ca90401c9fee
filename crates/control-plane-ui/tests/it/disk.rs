//! UI writes on a real full disk and a read-only file system: a small tmpfs mounted as the data
//! root (the test needs root, as scripts/test-deps.sh does). Writes answer 503 with
//! `Retry-After`, reads keep working, nothing panics, and writes work again once there is room.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use homelab_core::{ActionState, Event};
use serde_json::json;
use testkit::{TempRoot, Tmpfs};

use crate::fixture::*;

/// Fields drop in order: the mount goes before the temp folder.
struct OnTmpfs {
    _mount: Tmpfs,
    fx: Fx,
}

fn fx_on_tmpfs() -> OnTmpfs {
    let tmp = TempRoot::new();
    let mount = Tmpfs::mount(&tmp.root(), "1m");
    let state = Arc::new(control_plane_ui::AppState::new(&config(&tmp)).expect("state"));
    let app = control_plane_ui::router(state.clone());
    OnTmpfs { _mount: mount, fx: Fx { tmp, state, app } }
}

/// Fills the file system with a dot-file (ignored by readers) until ENOSPC.
fn fill(mount: &Tmpfs, root: &Path) -> PathBuf {
    let path = root.join(".filler");
    mount.fill(&path);
    path
}

fn assert_unavailable(r: &Resp, what: &str, says: &str) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", r.body);
    assert_eq!(r.header("retry-after"), "30", "{what}");
    let msg = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains(says), "{what}: {msg}");
}

#[tokio::test]
async fn writes_on_a_full_or_read_only_disk_answer_503_and_recover() {
    let t = fx_on_tmpfs();
    let fx = &t.fx;
    fx.state.root.write_agent_tokens(&serde_json::from_value(json!({"edge-1": "node-token-1"})).unwrap()).unwrap();
    let first = fx.pending("edge-1", "mqtt");
    let second = fx.pending("edge-1", "web");
    let event = || serde_json::to_string(&Event::new(chrono::Utc::now(), "edge-1", "service_healthy", Some("mqtt"))).unwrap();

    // Full.
    let filler = fill(&t._mount, &fx.tmp.root());
    let before = fx.disk();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &event())).await;
    assert_unavailable(&r, "ingest on a full disk", "full");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{first}/approve"), UI_TOKEN, "")).await;
    assert_unavailable(&r, "approve on a full disk", "full");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{first}/reject"), UI_TOKEN, r#"{"reason": "no"}"#)).await;
    assert_unavailable(&r, "reject on a full disk", "full");
    assert_eq!(fx.disk(), before, "nothing changed, no partial file visible");
    assert!(fx.state.root.read_active(ActionState::Pending, &first).unwrap().is_some());
    // The form answers a page saying so, not a 500.
    let form = req("POST", &format!("/actions/{first}/approve"), "127.0.0.1")
        .header("authorization", format!("Bearer {UI_TOKEN}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = fx.send(form).await;
    assert_eq!((r.status, r.header("retry-after").as_str()), (StatusCode::SERVICE_UNAVAILABLE, "30"), "{}", r.body);
    assert!(r.body.contains("full"), "{}", r.body);
    // Reads go on.
    for path in ["/", "/summary", "/metrics", "/actions"] {
        assert_eq!(fx.send(get(path)).await.status, StatusCode::OK, "{path}");
    }

    // Room again: the same requests succeed.
    std::fs::remove_file(filler).unwrap();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &event())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{first}/approve"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Read-only.
    t._mount.remount("ro");
    let before = fx.disk();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &event())).await;
    assert_unavailable(&r, "ingest on a read-only disk", "read-only");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{second}/approve"), UI_TOKEN, "")).await;
    assert_unavailable(&r, "approve on a read-only disk", "read-only");
    assert_eq!(fx.disk(), before);
    assert_eq!(fx.send(get("/summary")).await.status, StatusCode::OK);
    t._mount.remount("rw");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{second}/approve"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
