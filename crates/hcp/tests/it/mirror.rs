//! `hcp mirror` against a small HTTP server on loopback serving `/summary` with an ETag.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hcp::mirror::{Poll, poll_once};
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for};

use crate::text;

#[derive(Default)]
struct Served {
    doc: serde_json::Value,
    etag: String,
    token: Option<String>,
    ok: usize,
    not_modified: usize,
    saw_if_none_match: usize,
}

type Shared = Arc<Mutex<Served>>;

async fn summary(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if let Some(token) = &s.token {
        let want = format!("Bearer {token}");
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if inm.is_some() {
        s.saw_if_none_match += 1;
    }
    if inm.as_deref() == Some(s.etag.as_str()) {
        s.not_modified += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    s.ok += 1;
    ([(header::ETAG, s.etag.clone()), (header::CONTENT_TYPE, "application/json".into())], s.doc.to_string()).into_response()
}

/// A summary document shaped as the UI serves it: world state as a view (no `last_event_id`,
/// a `desired` flag, a node hosts/ names that never reported) plus drift, actions and counts.
fn doc(status: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "world_generated_at": "2026-05-27T14:03:11.123Z",
        "nodes": {
            "edge-1": { "last_seen": "2026-05-27T14:03:10.000Z", "status": "up", "disk_pressure": "ok", "agent_version": "0.0.0", "desired": true },
            "edge-2": { "last_seen": null, "status": "stale", "disk_pressure": null, "agent_version": null, "desired": true }
        },
        "services": { "edge-1": { "mosquitto": {
            "status": status, "reason": if status == "healthy" { serde_json::Value::Null } else { "port_unreachable".into() },
            "detail": null, "since": "2026-05-27T14:00:00.000Z", "last_event_at": "2026-05-27T14:03:00.000Z",
            "consecutive_failures": 0, "desired": true } } },
        "drift": [{ "node": "edge-2", "service": null, "kind": "node_unreachable", "trigger": "never_seen", "root_cause": null, "since": null, "action_id": null }],
        "actions": { "pending": [], "approved": [], "running": [], "recent": [] },
        "counts": { "nodes": 2, "services": 1 },
        "daemons": {},
        "config_errors": []
    })
}

/// Starts the server on 127.0.0.1:0 in its own thread and runtime; returns its base URL.
fn serve(state: Shared) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route("/summary", axum::routing::get(summary)).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv_timeout(Duration::from_secs(10)).unwrap())
}

fn shared(status: &str, token: Option<&str>) -> Shared {
    Arc::new(Mutex::new(Served { doc: doc(status), etag: "\"v1\"".into(), token: token.map(str::to_owned), ..Default::default() }))
}

#[tokio::test]
async fn a_poll_writes_world_files_and_the_next_one_is_not_modified() {
    let t = TempRoot::new();
    let root = DataRoot::open(t.root()).unwrap();
    let state = shared("healthy", None);
    let url = format!("{}/summary", serve(state.clone()));
    let client = reqwest::Client::new();
    let first = tokio::time::timeout(Duration::from_secs(20), poll_once(&client, &url, None, None, &root)).await.unwrap().unwrap();
    assert_eq!(first, Poll::Updated { etag: Some("\"v1\"".into()), nodes: 1, services: 1 });
    let (services, nodes) = root.read_world().unwrap();
    let services = services.expect("world/services.json");
    assert_eq!(services.services["edge-1"]["mosquitto"].status, homelab_core::ServiceStatus::Healthy);
    let nodes = nodes.expect("world/nodes.json");
    assert_eq!(nodes.nodes["edge-1"].status, homelab_core::NodeStatus::Up);
    assert!(!nodes.nodes.contains_key("edge-2"), "a node that never reported is not in world/nodes.json");
    assert_eq!(homelab_core::rfc3339(services.generated_at), "2026-05-27T14:03:11.123Z");

    let second = tokio::time::timeout(Duration::from_secs(20), poll_once(&client, &url, None, Some("\"v1\""), &root)).await.unwrap().unwrap();
    assert_eq!(second, Poll::NotModified);
    let s = state.lock().unwrap();
    assert_eq!((s.ok, s.not_modified), (1, 1));
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(t.root().join("world")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[test]
fn the_mirror_follows_changes_and_sends_the_etag_back() {
    let t = TempRoot::new();
    let state = shared("healthy", Some("s3cret"));
    let base = serve(state.clone());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["mirror", "--from", &base, "--root", t.root().to_str().unwrap(), "--interval", "50ms"])
        .env("SUMMARY_TOKEN", "s3cret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = DataRoot::open(t.root()).unwrap();
    let status = |root: &DataRoot| root.read_world().ok().and_then(|(s, _)| s).map(|s| s.services["edge-1"]["mosquitto"].status);
    let result = std::panic::catch_unwind(|| {
        wait_for("the first mirrored world", Duration::from_secs(20), || status(&root).filter(|s| *s == homelab_core::ServiceStatus::Healthy));
        wait_for("a conditional request answered 304", Duration::from_secs(20), || (state.lock().unwrap().not_modified > 0).then_some(()));
        {
            let mut s = state.lock().unwrap();
            s.doc = doc("unhealthy");
            s.etag = "\"v2\"".into();
        }
        wait_for("the change mirrored", Duration::from_secs(20), || status(&root).filter(|s| *s == homelab_core::ServiceStatus::Unhealthy));
        let hb = wait_for("the mirror heartbeat", Duration::from_secs(20), || root.read_heartbeats().ok()?.remove("hcp-mirror"));
        assert_eq!(hb["daemon"], "hcp-mirror");
    });
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
    let s = state.lock().unwrap();
    assert_eq!(s.ok, 2, "one full answer per version");
    assert!(s.saw_if_none_match >= 2);
}

#[test]
fn once_with_a_wrong_token_fails_and_writes_nothing() {
    let t = TempRoot::new();
    let base = serve(shared("healthy", Some("right")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["mirror", "--once", "--from", &base, "--root", t.root().to_str().unwrap(), "--token", "wrong"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("401 Unauthorized (hint: set SUMMARY_TOKEN"), "{}", text(&out));
    assert!(!text(&out).contains("wrong"), "the token is never printed: {}", text(&out));
    assert!(!t.root().join("world/services.json").exists());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["mirror", "--once", "--from", &base, "--root", t.root().to_str().unwrap(), "--token", "right"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(t.root().join("world/services.json").exists());
}

/// Serves `root` with the real UI (router, snapshot, ETag) on 127.0.0.1:0 in its own thread
/// and runtime; returns its base URL and the token that stops it.
fn serve_ui(root: std::path::PathBuf) -> (String, tokio_util::sync::CancellationToken) {
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let state = Arc::new(control_plane_ui::AppState::new(&control_plane_ui::Config::new(root, None)).unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            control_plane_ui::run_on(state, listener, token).await.unwrap();
        });
    });
    (format!("http://{}", rx.recv_timeout(Duration::from_secs(10)).unwrap()), stop)
}

/// A source world as the observer writes it: two nodes with disks, uptime and agent version
/// (one up, one stale), a healthy and an unhealthy service. Written two minutes ago, so the
/// UI's live `status` of edge-1 (stale by now) differs from the observer's verdict in the file
/// (up): the mirror must still write the file's.
fn source_world() -> (homelab_core::world::ServicesFile, homelab_core::world::NodesFile) {
    use homelab_core::world::{NodeState, NodesFile, ServiceState, ServicesFile};
    use homelab_core::{DiskLevel, NodeStatus, ServiceStatus};
    let ms = |t: chrono::DateTime<chrono::Utc>| chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap();
    let written = ms(chrono::Utc::now() - chrono::Duration::seconds(120));
    let node = |seen: chrono::Duration, status, pressure, disks, version: &str, uptime| NodeState {
        last_seen: Some(written - seen),
        status,
        disk_pressure: Some(pressure),
        disks: Some(disks),
        agent_version: Some(version.into()),
        uptime_secs: Some(uptime),
    };
    let nodes = [
        (
            "edge-1",
            node(
                chrono::Duration::seconds(5),
                NodeStatus::Up,
                DiskLevel::High,
                serde_json::json!([
                    { "mount": "/", "used_pct": 91.5, "level": "high", "total_bytes": 100_000_000_000u64, "used_bytes": 91_500_000_000u64, "available_bytes": 8_500_000_000u64 },
                    { "mount": "/data", "used_pct": 12.0, "level": "ok", "total_bytes": 2_000_000_000_000u64, "used_bytes": 240_000_000_000u64, "available_bytes": 1_760_000_000_000u64 }
                ]),
                "1.4.2",
                864_000,
            ),
        ),
        (
            "edge-2",
            node(
                chrono::Duration::hours(3),
                NodeStatus::Stale,
                DiskLevel::Ok,
                serde_json::json!([{ "mount": "/", "used_pct": 0.0, "level": "ok", "total_bytes": 0, "used_bytes": 0, "available_bytes": 0, "error": "No such file or directory (os error 2)" }]),
                "1.4.1",
                42,
            ),
        ),
    ];
    let healthy = ServiceState {
        status: ServiceStatus::Healthy,
        reason: None,
        detail: None,
        since: written - chrono::Duration::hours(30),
        last_event_at: written - chrono::Duration::seconds(10),
        last_event_id: uuid::Uuid::new_v4(),
        consecutive_failures: 0,
    };
    let unhealthy = ServiceState {
        status: ServiceStatus::Unhealthy,
        reason: Some("http_check_failed".into()),
        detail: Some("GET http://127.0.0.1:8080/health: 503".into()),
        since: written - chrono::Duration::minutes(7),
        last_event_at: written - chrono::Duration::seconds(3),
        last_event_id: uuid::Uuid::new_v4(),
        consecutive_failures: 4,
    };
    let services = [("edge-1", [("mosquitto", healthy.clone()), ("web", unhealthy)]), ("edge-2", [("mosquitto", healthy.clone()), ("ntp", healthy)])];
    (
        ServicesFile {
            generated_at: written,
            services: services.into_iter().map(|(n, s)| (n.to_owned(), s.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())).collect(),
        },
        NodesFile { generated_at: written, nodes: nodes.into_iter().map(|(n, s)| (n.to_owned(), s)).collect() },
    )
}

fn world_json(root: &std::path::Path, doc: homelab_store::Doc) -> serde_json::Value {
    let path = root.join(doc.name());
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn a_mirror_of_a_data_root_has_its_world_files() {
    use homelab_store::Doc;
    let source = TempRoot::new();
    let (services, nodes) = source_world();
    DataRoot::open(source.root()).unwrap().write_world(&services, &nodes).unwrap();
    let (base, stop) = serve_ui(source.root());
    let mirror = TempRoot::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["mirror", "--once", "--from", &base, "--root", mirror.root().to_str().unwrap()])
        .env_remove("SUMMARY_TOKEN")
        .output()
        .unwrap();
    stop.cancel();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for doc in [Doc::Nodes, Doc::Services] {
        let (want, got) = (world_json(&source.root(), doc), world_json(&mirror.root(), doc));
        assert_eq!(got["generated_at"], want["generated_at"], "{}: generated_at", doc.name());
        let (want_entries, got_entries) = (want.as_object().unwrap(), got.as_object().unwrap());
        assert_eq!(got_entries.keys().collect::<Vec<_>>(), want_entries.keys().collect::<Vec<_>>(), "{}: top-level keys", doc.name());
        let key = if doc == Doc::Nodes { "nodes" } else { "services" };
        let (want_map, got_map) = (want[key].as_object().unwrap(), got[key].as_object().unwrap());
        assert_eq!(got_map.keys().collect::<Vec<_>>(), want_map.keys().collect::<Vec<_>>(), "{}: names", doc.name());
        for (name, want_entry) in want_map {
            // Nodes: one level of fields; services: one more (per service of the node).
            let pairs: Vec<(String, &serde_json::Value, &serde_json::Value)> = if doc == Doc::Nodes {
                vec![(name.clone(), want_entry, &got_map[name])]
            } else {
                want_entry.as_object().unwrap().iter().map(|(svc, w)| (format!("{name}/{svc}"), w, &got_map[name][svc])).collect()
            };
            for (what, w, g) in pairs {
                for (field, value) in w.as_object().unwrap() {
                    assert_eq!(g.get(field), Some(value), "{}: {what}.{field}", doc.name());
                }
                assert_eq!(g.as_object().unwrap().len(), w.as_object().unwrap().len(), "{}: {what} has other fields: {g}", doc.name());
            }
        }
        assert_eq!(got, want, "{}", doc.name());
    }
}
