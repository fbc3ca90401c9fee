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
