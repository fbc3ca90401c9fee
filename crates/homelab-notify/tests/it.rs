//! The notifier against loopback receivers: a webhook that checks the signature and fails the
//! first two tries, and a server speaking ntfy's publish API (POST /<topic>, Title, Priority,
//! Tags, bearer token). Nothing leaves 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use homelab_core::drift::{DriftEntry, DriftFile, NextStep};
use homelab_core::notify::NotifyPolicy;
use homelab_notify::{Channel, NotifyConfig, sign};
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Seen {
    webhook_tries: usize,
    webhook: Vec<serde_json::Value>,
    bad_signatures: usize,
    ntfy: Vec<(String, String, String, String)>,
}

type Shared = Arc<Mutex<Seen>>;

async fn webhook(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut s = seen.lock().unwrap();
    s.webhook_tries += 1;
    let sig = headers.get("x-homelab-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if sig != sign("hush", &body) {
        s.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    // The receiver is "down" for the first two tries.
    if s.webhook_tries <= 2 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    s.webhook.push(serde_json::from_slice(&body).unwrap());
    StatusCode::OK
}

async fn ntfy(State(seen): State<Shared>, Path(topic): Path<String>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if h("authorization") != "Bearer tk_test" {
        return StatusCode::FORBIDDEN;
    }
    seen.lock().unwrap().ntfy.push((topic, h("title"), h("priority"), body));
    StatusCode::OK
}

fn row(decision: NextStep) -> DriftEntry {
    common::web_unhealthy(decision)
}

fn wait_until(what: &str, f: impl FnMut() -> bool) {
    testkit::wait_until(what, Duration::from_secs(20), f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_ntfy_get_start_and_resolution_once_through_the_outbox() {
    let seen: Shared = Arc::default();
    let app = Router::new().route("/hook", post(webhook)).route("/{topic}", post(ntfy)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile_dir();
    let root = DataRoot::open(dir.path()).unwrap();
    root.write_drift(&DriftFile { generated_at: chrono::Utc::now(), drifts: vec![row(NextStep::ActionCreated)] }).unwrap();
    let cfg = NotifyConfig {
        channels: vec![
            Channel::Webhook { url: format!("http://{addr}/hook"), secret: "hush".into() },
            Channel::Ntfy { url: format!("http://{addr}/homelab-alerts"), token: Some("tk_test".into()) },
        ],
        policy: NotifyPolicy { resolve_after: Duration::from_millis(200), ..Default::default() },
        tick: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(homelab_notify::run(cfg, root.clone(), stop.clone()));

    let s2 = seen.clone();
    let r2 = root.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the start on both channels", || {
            let s = s2.lock().unwrap();
            s.webhook.len() == 1 && s.ntfy.len() == 1
        });
        // Delivered, so gone from the outbox (removed only after the 2xx).
        wait_until("an empty outbox", || r2.list_outbox().unwrap().is_empty());
        // The incident resolves.
        r2.write_drift(&DriftFile { generated_at: chrono::Utc::now(), drifts: vec![] }).unwrap();
        wait_until("the resolution on both channels", || {
            let s = s2.lock().unwrap();
            s.webhook.len() == 2 && s.ntfy.len() == 2
        });
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();

    let s = seen.lock().unwrap();
    assert_eq!((s.webhook_tries, s.bad_signatures), (4, 0), "two refusals, then start and resolution");
    assert_eq!(s.webhook[0]["notices"][0]["kind"], "started");
    assert_eq!(s.webhook[1]["notices"][0]["kind"], "resolved");
    assert_ne!(s.webhook[0]["id"], s.webhook[1]["id"]);
    assert!(s.webhook[0]["title"].as_str().unwrap().contains("n1/web"));
    let (topic, title, priority, body) = &s.ntfy[0];
    assert_eq!((topic.as_str(), priority.as_str()), ("homelab-alerts", "high"));
    assert!(title.contains("n1/web") && body.contains("container-restart-n1-web") && body.contains("id: "), "{title} {body}");
    assert_eq!(s.ntfy[1].2, "default");
    // Nothing left to send; the secret is nowhere in the data root.
    assert!(root.list_outbox().unwrap().is_empty());
    let state = std::fs::read_to_string(dir.path().join("state/notify.json")).unwrap();
    assert!(!state.contains("hush") && !state.contains("tk_test"));
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
