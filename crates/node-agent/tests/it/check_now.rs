//! "Check now" in local mode (`--root`): a request file in the data root makes the agent run
//! that service's checks at once; the result is fresh events and the file goes. Thresholds in a
//! running agent, driven by check-now runs instead of waiting for the interval.

use std::time::Duration;

use homelab_store::DataRoot;
use homelab_store::check_now::CheckNowRequest;
use testkit::TempRoot;

use crate::{Agent, closed_port, config, service_events, wait_for};

fn ask(root: &DataRoot, service: &str) -> CheckNowRequest {
    let req = CheckNowRequest { node: "edge-1".into(), service: service.into(), requested_by: "cli:ops".into(), requested_at: chrono::Utc::now() };
    root.request_check_now(&req).unwrap();
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_now_runs_the_checks_at_once_and_removes_the_request() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port}, timeout_secs: 2 }}\n  other:\n    checks:\n      - tcp: {{ port: {port} }}\n"));
    let agent = Agent::start(config(&tr, "edge-1")).await; // interval: 1 h
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("the first pass", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "port_unreachable")).await;

    // The service comes back; nobody would know for an hour, but an operator asks.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let req = ask(&root, "web");
    let recovered = wait_for("a fresh event from the check-now", Duration::from_secs(5), || {
        service_events(&path, "web").into_iter().find(|e| e.kind == "service_recovered")
    })
    .await;
    let data = recovered.data.as_ref().expect("data");
    assert_eq!(data["check_now"]["requested_by"], "cli:ops", "{data}");
    let took = recovered.ts - req.requested_at;
    assert!(took < chrono::TimeDelta::milliseconds(1500), "learned within a second (poll {:?}), took {took}", node_agent::CHECK_NOW_POLL);
    wait_for("the request file is removed once served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    // Only that service ran.
    assert_eq!(service_events(&path, "other").len(), 1, "other: only its pass");

    // A request for a service the agent does not check is dropped, with nothing emitted.
    ask(&root, "nope");
    wait_for("an unknown service's request is removed", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    assert!(service_events(&path, "nope").is_empty());
    agent.stop().await;
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_hold_the_verdict_until_enough_runs_agree() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port}, failure_threshold: 2, success_threshold: 2 }}\n"));
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    let kinds = |n: usize| {
        let path = path.clone();
        move || {
            let ev = service_events(&path, "web");
            (ev.len() >= n).then(|| ev.into_iter().map(|e| (e.kind, e.detail.unwrap_or_default())).collect::<Vec<_>>())
        }
    };
    // First failed run: still healthy, and the detail says why.
    let got = wait_for("the first pass", Duration::from_secs(10), kinds(1)).await;
    assert_eq!(got[0].0, "service_healthy");
    assert!(got[0].1.contains("below failure_threshold"), "{got:?}");
    ask(&root, "web");
    let got = wait_for("the second failed run", Duration::from_secs(5), kinds(2)).await;
    assert_eq!(got[1].0, "port_unreachable", "{got:?}");
    // Back up: one good run is not enough, the second is a recovery.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    wait_for("served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    ask(&root, "web");
    let got = wait_for("the first good run", Duration::from_secs(5), kinds(3)).await;
    assert_eq!(got[2].0, "port_unreachable", "{got:?}");
    assert!(got[2].1.contains("waiting for success_threshold"), "{got:?}");
    wait_for("served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    ask(&root, "web");
    let got = wait_for("the second good run", Duration::from_secs(5), kinds(4)).await;
    assert_eq!(got[3].0, "service_recovered", "{got:?}");
    agent.stop().await;
    drop(listener);
}

/// The whole way in local mode: `POST /api/v1/nodes/{node}/services/{service}/check-now` on the
/// real UI server writes the request into the data root; the agent on that root serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_request_is_served_by_the_agent() {
    const UI_TOKEN: &str = "test-ui-token-0123456789";
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port} }}\n  manual:\n    monitor: false\n"));
    let mut c = control_plane_ui::Config::new(tr.root(), Some(tr.hosts()));
    c.ui_token = Some(UI_TOKEN.into());
    c.refresh = Duration::ZERO;
    let state = std::sync::Arc::new(control_plane_ui::AppState::new(&c).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ui = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(control_plane_ui::run_on(state, listener, stop.clone()));
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let path = tr.root();
    wait_for("the first pass", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "port_unreachable")).await;
    let web = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();

    let http = reqwest::Client::new();
    let post = |node: &str, service: &str, token: Option<&str>| {
        let mut r = http.post(format!("{ui}/api/v1/nodes/{node}/services/{service}/check-now"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // No credentials, a service the agent does not check, a node that does not exist, a bad name.
    for (node, service, token, want) in [
        ("edge-1", "web", None, 401),
        ("edge-1", "manual", Some(UI_TOKEN), 404),
        ("edge-1", "nope", Some(UI_TOKEN), 404),
        ("edge-9", "web", Some(UI_TOKEN), 404),
        ("edge-1", "Bad_Name", Some(UI_TOKEN), 400),
    ] {
        let r = post(node, service, token).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{node}/{service} with {token:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(DataRoot::open(&path).unwrap().pending_check_now("edge-1").unwrap().is_empty(), "refused requests write nothing");

    let r = post("edge-1", "web", Some(UI_TOKEN)).await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let req: serde_json::Value = r.json().await.unwrap();
    assert_eq!((req["node"].as_str(), req["service"].as_str()), (Some("edge-1"), Some("web")), "{req}");
    let recovered = wait_for("the agent serves the API's request", Duration::from_secs(5), || {
        service_events(&path, "web").into_iter().find(|e| e.kind == "service_recovered")
    })
    .await;
    assert_eq!(recovered.data.as_ref().unwrap()["check_now"]["requested_by"], req["requested_by"]);
    let root = DataRoot::open(&path).unwrap();
    wait_for("the request file is removed", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    agent.stop().await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), server).await.expect("the UI stops").unwrap().unwrap();
    drop(web);
}
