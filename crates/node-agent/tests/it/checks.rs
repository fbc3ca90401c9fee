//! HTTP and TCP checks against servers on 127.0.0.1; timeouts; the event stream of a pass.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use testkit::TempRoot;

use crate::{Agent, closed_port, config, events, run_once, service_events, wait_for};

/// An HTTP server with the answers the checks are tested against.
async fn http_server() -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { "hello homelab" }))
        .route("/broken", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }))
        .route("/teapot", get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }))
        .route(
            "/auth",
            get(|headers: HeaderMap| async move {
                // "user:s3cret" in base64.
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Basic dXNlcjpzM2NyZXQ=") => (StatusCode::OK, "welcome"),
                    _ => (StatusCode::UNAUTHORIZED, "who are you"),
                }
            }),
        )
        .route(
            "/hang",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_tcp_checks_become_the_right_events() {
    let tr = TempRoot::new();
    let http = http_server().await;
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    let password_file = tr.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let (closed, pw) = (closed_port(), password_file.display());
    tr.write_host(
        "edge-1",
        &format!(
            r#"
services:
  web:
    checks:
      - http: {{ url: "http://{http}/ok", body_contains: "homelab" }}
      - tcp: {{ port: {open_port} }}
  broken:
    checks:
      - http: {{ url: "http://{http}/broken" }}
  teapot:
    checks:
      - http: {{ url: "http://{http}/teapot", expect_status: [418] }}
  wrongbody:
    checks:
      - http: {{ url: "http://{http}/ok", body_contains: "kubernetes" }}
  authed:
    checks:
      - http: {{ url: "http://{http}/auth", basic_auth: {{ user: user, password_file: "{pw}" }} }}
  badauth:
    checks:
      - http: {{ url: "http://{http}/auth", basic_auth: {{ user: user, password_file: "{pw}.missing" }} }}
  closed:
    checks:
      - tcp: {{ port: {closed} }}
  hidden:
    monitor: false
    checks:
      - tcp: {{ port: {closed} }}
"#
        ),
    );
    run_once(config(&tr, "edge-1")).await.unwrap();
    let evs = events(&tr.root());
    let kind_of = |svc: &str| {
        let e: Vec<_> = evs.iter().filter(|e| e.service.as_deref() == Some(svc)).collect();
        assert_eq!(e.len(), 1, "one event for {svc}: {e:?}");
        (e[0].kind.clone(), e[0].detail.clone().unwrap_or_default())
    };
    let cases = [
        ("web", "service_healthy", ""),
        ("broken", "http_check_failed", "answered 500"),
        ("teapot", "service_healthy", ""),
        ("wrongbody", "http_check_failed", "does not contain \"kubernetes\""),
        ("authed", "service_healthy", ""),
        ("badauth", "check_error", "password_file"),
        ("closed", "port_unreachable", &format!("127.0.0.1:{closed}")),
    ];
    for (svc, want, detail) in cases {
        let (kind, got_detail) = kind_of(svc);
        assert_eq!(kind, want, "{svc}: {got_detail}");
        assert!(got_detail.contains(detail), "{svc}: {got_detail:?} should mention {detail:?}");
        assert!(!got_detail.contains("s3cret"), "no password in events");
    }
    assert!(evs.iter().all(|e| e.service.as_deref() != Some("hidden")), "monitor: false is skipped");
    let heartbeat = evs.iter().find(|e| e.kind == "node_heartbeat").expect("a node_heartbeat");
    let data = heartbeat.data.as_ref().unwrap();
    assert_eq!(data["agent_version"], node_agent::AGENT_VERSION);
    assert!(data["uptime_secs"].as_u64().is_some());
    assert!(data["disks"][0]["mount"] == "/", "{data}");
    assert!(["ok", "medium", "high"].contains(&data["disk_pressure"].as_str().unwrap()));
    let pressure = evs.iter().find(|e| e.kind == "disk_pressure").expect("a first disk_pressure event");
    assert!(pressure.disk_level().is_some());
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_times_out_without_delaying_the_others() {
    let tr = TempRoot::new();
    let http = http_server().await;
    tr.write_host(
        "edge-1",
        &format!(
            r#"
services:
  slow:
    checks:
      - http: {{ url: "http://{http}/hang", timeout_secs: 4 }}
  quick:
    checks:
      - http: {{ url: "http://{http}/ok" }}
"#
        ),
    );
    let started = Instant::now();
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let root = tr.root();
    wait_for("the quick service's event", Duration::from_secs(10), || service_events(&root, "quick").pop()).await;
    let quick_after = started.elapsed();
    assert!(service_events(&root, "slow").is_empty(), "the slow verdict cannot be in before its timeout");
    assert!(quick_after < Duration::from_secs(3), "the quick verdict waited for the slow one: {quick_after:?}");
    let slow = wait_for("the slow service's timeout", Duration::from_secs(15), || service_events(&root, "slow").pop()).await;
    assert_eq!(slow.kind, "http_check_failed");
    assert!(slow.detail.unwrap().contains("timed out after 4s"));
    assert!(started.elapsed() >= Duration::from_secs(4));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interval_repeats_healthy_and_reports_recovery() {
    let tr = TempRoot::new();
    // A port that is closed first and opened later.
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  flaky:\n    checks:\n      - tcp: {{ port: {port}, timeout_secs: 2 }}\n"));
    let mut cfg = config(&tr, "edge-1");
    cfg.check_interval = Duration::from_millis(300);
    let agent = Agent::start(cfg).await;
    let root = tr.root();
    wait_for("port_unreachable", Duration::from_secs(10), || service_events(&root, "flaky").into_iter().find(|e| e.kind == "port_unreachable")).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    wait_for("recovered, then healthy again", Duration::from_secs(10), || {
        let kinds: Vec<String> = service_events(&root, "flaky").into_iter().map(|e| e.kind).collect();
        let recovered = kinds.iter().position(|k| k == "service_recovered")?;
        kinds[recovered..].iter().filter(|k| *k == "service_healthy").nth(1).map(|_| ())
    })
    .await;
    let kinds: Vec<String> = service_events(&root, "flaky").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "service_recovered").count(), 1, "{kinds:?}");
    let heartbeats = events(&root).into_iter().filter(|e| e.kind == "node_heartbeat").count();
    assert!(heartbeats >= 3, "a heartbeat every interval: {heartbeats}");
    let pressure = events(&root).into_iter().filter(|e| e.kind == "disk_pressure").count();
    assert_eq!(pressure, 1, "disk_pressure only when the level changes");
    agent.stop().await;
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_unit_is_unhealthy_and_a_missing_systemd_is_a_check_error() {
    let tr = TempRoot::new();
    let unit = format!("{}.service", crate::unique("none"));
    tr.write_host("edge-1", &format!("services:\n  daemon:\n    checks:\n      - systemd: {{ unit: {unit}, timeout_secs: 5 }}\n"));
    run_once(config(&tr, "edge-1")).await.unwrap();
    let evs = service_events(&tr.root(), "daemon");
    assert_eq!(evs.len(), 1, "{evs:?}");
    let detail = evs[0].detail.clone().unwrap();
    // On a node with systemd the unit is inactive; in a container without it, the check cannot run.
    let booted_with_systemd = std::path::Path::new("/run/systemd/system").is_dir();
    if booted_with_systemd {
        assert_eq!(evs[0].kind, "service_unhealthy", "{detail}");
        assert!(detail.contains(&unit), "{detail}");
    } else {
        assert_eq!(evs[0].kind, "check_error", "{detail}");
        assert!(detail.contains("systemd is not available"), "{detail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_host_file_keeps_the_last_good_one_in_force() {
    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = open.local_addr().unwrap().port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port} }}\n"));
    let mut cfg = config(&tr, "edge-1");
    cfg.check_interval = Duration::from_millis(200);
    let agent = Agent::start(cfg).await;
    let root = tr.root();
    wait_for("web healthy", Duration::from_secs(10), || service_events(&root, "web").pop()).await;
    tr.write_host("edge-1", "services:\n  web:\n    chekcs: []\n");
    let before = service_events(&root, "web").len();
    wait_for("web still checked after the typo", Duration::from_secs(10), || (service_events(&root, "web").len() >= before + 3).then_some(())).await;
    assert!(service_events(&root, "web").iter().all(|e| e.kind == "service_healthy"));
    agent.stop().await;
    drop(open);
}

/// `alert:` checks are the Alertmanager receiver's: a service with only those gets no event from
/// the agent (never "no checks configured" healthy), and one with local checks as well gets its
/// local failures and recovery but no periodic `service_healthy` that would clear a firing alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_checks_are_left_to_alertmanager() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host(
        "edge-1",
        &format!(
            "services:\n  ghost:\n    containers: [ghost]\n    checks:\n      - alert: {{ alertname: GhostDown, labels: {{ job: blackbox }} }}\n  mixed:\n    checks:\n      - tcp: {{ port: {port}, timeout_secs: 2 }}\n      - alert: {{ alertname: MixedDown }}\n  plain:\n    checks: []\n"
        ),
    );
    let mut cfg = config(&tr, "edge-1");
    cfg.check_interval = Duration::from_millis(300);
    let agent = Agent::start(cfg).await;
    let root = tr.root();
    wait_for("the local failure of mixed", Duration::from_secs(10), || service_events(&root, "mixed").into_iter().find(|e| e.kind == "port_unreachable")).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    wait_for("its recovery", Duration::from_secs(10), || service_events(&root, "mixed").into_iter().find(|e| e.kind == "service_recovered")).await;
    // Several more passes with mixed healthy: counted by heartbeats after the recovery.
    let recovered_at = service_events(&root, "mixed").into_iter().find(|e| e.kind == "service_recovered").unwrap().ts;
    wait_for("three more passes", Duration::from_secs(10), || {
        (events(&root).into_iter().filter(|e| e.kind == "node_heartbeat" && e.ts > recovered_at).count() >= 3).then_some(())
    })
    .await;
    let mixed: Vec<String> = service_events(&root, "mixed").into_iter().map(|e| e.kind).collect();
    assert!(!mixed.contains(&"service_healthy".to_owned()), "no periodic positive for a service with alert checks: {mixed:?}");
    assert_eq!(mixed.iter().filter(|k| *k == "service_recovered").count(), 1, "{mixed:?}");
    assert!(service_events(&root, "ghost").is_empty(), "nothing for an alert-only service: {:?}", service_events(&root, "ghost"));
    let plain = service_events(&root, "plain");
    assert!(plain.iter().all(|e| e.kind == "service_healthy") && !plain.is_empty(), "a service without checks is still healthy every pass");
    agent.stop().await;
    drop(listener);
}
