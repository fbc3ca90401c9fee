//! The OpenAPI document against the real server: `openapi-spec-validator` on the document it
//! serves, then `schemathesis` (bounded, loopback only) with every check, which must find no
//! failure. Both come from PyPI (scripts/test-deps.sh).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane_ui::{AppState, run_on};
use tokio_util::sync::CancellationToken;

use crate::fixture::*;

/// Per-operation settings: the silence body's semantic checks (a duration over 0 and at most 30
/// days, a target or a type) cannot be said in JSON Schema, so a valid-looking body may get 400.
const CONFIG: &str = r#"
[[operations]]
include-path = "/api/v1/silences"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"#;

/// Every (path, method, status) of a document.
fn operations(doc: &serde_json::Value) -> std::collections::BTreeSet<(String, String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            for status in op["responses"].as_object().expect("responses").keys() {
                out.insert((path.clone(), method.clone(), status.clone()));
            }
        }
    }
    out
}

/// Every operation and the status codes it documents: those the hand-written document (before
/// it was generated with utoipa) promised. Changing this list is changing the API's promise.
const OPERATIONS: &[(&str, &str, &[u16])] = &[
    ("GET", "/healthz", &[200]),
    ("GET", "/api/v1/openapi.json", &[200]),
    ("GET", "/summary", &[200, 304, 401, 429, 500]),
    ("GET", "/summary.md", &[200, 401, 429, 500]),
    ("GET", "/metrics", &[200, 401, 429, 500]),
    ("GET", "/api/v1/world", &[200, 401, 429, 500]),
    ("GET", "/api/v1/actions", &[200, 400, 401, 429, 500]),
    ("GET", "/api/v1/actions/{id}", &[200, 400, 401, 404, 409, 429, 500]),
    ("POST", "/api/v1/actions/{id}/approve", &[200, 400, 401, 403, 404, 409, 413, 429, 500, 503]),
    ("POST", "/api/v1/actions/{id}/reject", &[200, 400, 401, 403, 404, 409, 413, 422, 429, 500, 503]),
    ("POST", "/api/v1/actions/{id}/cancel", &[200, 400, 401, 403, 404, 409, 413, 422, 429, 500, 503]),
    ("POST", "/api/v1/actions/{id}/retry", &[201, 400, 401, 403, 409, 413, 429, 500, 503]),
    ("POST", "/api/v1/events", &[200, 400, 401, 403, 413, 422, 429, 500, 503]),
    ("POST", "/api/v1/alertmanager", &[200, 400, 401, 403, 413, 422, 429, 500, 503]),
    ("GET", "/api/v1/silences", &[200, 401, 429, 500]),
    ("POST", "/api/v1/silences", &[201, 400, 401, 403, 413, 429, 500, 503]),
    ("POST", "/api/v1/silences/{id}/expire", &[200, 400, 401, 403, 404, 409, 413, 429, 500, 503]),
    ("GET", "/api/v1/audit", &[200, 400, 401, 403, 429, 500]),
    ("GET", "/api/v1/services/{node}/{service}/deploys", &[200, 400, 401, 429, 500]),
    ("POST", "/api/v1/services/{node}/{service}/rollback", &[201, 303, 400, 401, 403, 409, 413, 429, 500, 503]),
    ("POST", "/api/v1/nodes/{node}/services/{service}/check-now", &[202, 303, 400, 401, 403, 404, 413, 429, 500, 503]),
];

/// The generated document has exactly these (path, method, status), and every response of an
/// error status has a JSON body with `error`.
#[test]
fn generated_document_has_every_operation_and_status() {
    let doc: serde_json::Value = serde_json::from_str(&control_plane_ui::openapi::generate()).unwrap();
    let want: std::collections::BTreeSet<(String, String, String)> =
        OPERATIONS.iter().flat_map(|(m, p, codes)| codes.iter().map(move |c| (p.to_string(), m.to_lowercase(), c.to_string()))).collect();
    let got = operations(&doc);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing from the generated document: {missing:?}\nnot promised: {extra:?}");
    assert_eq!(got.len(), 143);
    let schemas = &doc["components"]["schemas"];
    for (path, method, status) in got.iter().filter(|(_, _, s)| s.as_str() >= "400") {
        let schema = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"];
        let name = schema.as_str().and_then(|r| r.strip_prefix("#/components/schemas/")).unwrap_or_else(|| panic!("{method} {path} {status}: {schema}"));
        assert!(schemas[name]["required"].as_array().unwrap().iter().any(|f| f == "error"), "{method} {path} {status}: {name}");
    }
    let recent = &schemas["QuarantineSummary"]["properties"]["recent"]["maxItems"];
    assert_eq!(recent.as_u64(), Some(control_plane_ui::snapshot::RECENT_QUARANTINE as u64), "#[schema(max_items)] of QuarantineSummary::recent");
    let disks = &schemas["NodeSummary"]["properties"]["disks"];
    assert!(disks.to_string().contains("#/components/schemas/DiskSummary"), "NodeSummary.disks: {disks}");
    assert!(schemas["DiskSummary"]["required"].as_array().unwrap().iter().any(|f| f == "used_pct"), "{}", schemas["DiskSummary"]);
    for scheme in ["bearer", "session", "agent", "alertmanager"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
    }
}

fn tool(name: &str) -> String {
    let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "{name} is not installed: run scripts/test-deps.sh (pip install schemathesis openapi-spec-validator)");
    name.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_failure() {
    let (validator, st) = (tool("openapi-spec-validator"), tool("schemathesis"));
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n");
    fx.pending("edge-1", "mqtt");
    // World state with disks and uptime, so /summary's and /api/v1/world's node fields are checked too.
    let now = chrono::Utc::now();
    let node = homelab_core::NodeState {
        last_seen: Some(now),
        status: homelab_core::NodeStatus::Up,
        disk_pressure: Some(homelab_core::DiskLevel::Medium),
        disks: Some(serde_json::json!([
            { "mount": "/", "used_pct": 81.5, "level": "medium", "total_bytes": 1000, "used_bytes": 815, "available_bytes": 185 },
            { "mount": "/gone", "used_pct": 0.0, "level": "ok", "total_bytes": 0, "used_bytes": 0, "available_bytes": 0, "error": "not mounted" }
        ])),
        agent_version: Some("1.0.0".into()),
        uptime_secs: Some(3600),
    };
    let nodes = homelab_core::world::NodesFile { generated_at: now, nodes: [("edge-1".to_owned(), node)].into() };
    fx.state.root.write_world(&homelab_core::world::ServicesFile { generated_at: now, services: Default::default() }, &nodes).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state: Arc<AppState> = fx.state.clone();
    let stop = CancellationToken::new();
    let server = tokio::spawn(run_on(state, listener, stop.clone()));
    let base = format!("http://{addr}");

    // The document as served, validated.
    let doc = reqwest::get(format!("{base}/api/v1/openapi.json")).await.unwrap().text().await.unwrap();
    let dir = fx.tmp.root().join("openapi-test");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, &doc).unwrap();
    let out = tokio::task::spawn_blocking(move || Command::new(validator).arg(&file).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "openapi-spec-validator: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // Unknown routes and oversized bodies answer JSON errors, as the document says.
    let nf = reqwest::get(format!("{base}/no/such/route")).await.unwrap();
    assert_eq!(nf.status(), 404);
    assert!(nf.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let big = reqwest::Client::new()
        .post(format!("{base}/api/v1/silences"))
        .bearer_auth(UI_TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert!(big.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("too large"));

    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let url = format!("{base}/api/v1/openapi.json");
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(&dir)
            .args(["--config-file"])
            .arg(&config)
            .args(["run", &url, "--checks", "all", "--max-examples", "20", "--max-time", "35", "--seed", "1", "--workers", "1"])
            .args(["--request-timeout", "10", "--no-color", "-H", &format!("Authorization: Bearer {UI_TOKEN}")])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures (exit {:?}):\n{text}", out.status.code());
    assert!(started.elapsed() < Duration::from_secs(90), "schemathesis ran {:?}", started.elapsed());
    let summary: Vec<&str> = text.lines().filter(|l| l.contains("generated") || l.contains(" passed")).collect();
    println!("schemathesis: {}", summary.join(" | "));

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
}
