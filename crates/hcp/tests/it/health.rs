//! `hcp health`: the compose healthcheck, on heartbeat files and on a URL.

use testkit::TempRoot;

use crate::{hcp, text};

fn heartbeat(root: &homelab_store::DataRoot, daemon: &str, secs_ago: i64) {
    let now = chrono::Utc::now();
    let hb = homelab_core::Heartbeat {
        daemon: daemon.into(),
        pid: 1,
        version: "0".into(),
        started_at: now - chrono::Duration::hours(1),
        last_loop_at: now - chrono::Duration::seconds(secs_ago),
        interval_secs: 10,
        counters: Default::default(),
        config_errors: vec![],
        extra: serde_json::Value::Null,
    };
    root.write_heartbeat(daemon, &hb).unwrap();
}

#[test]
fn fresh_old_and_missing_heartbeats() {
    let t = TempRoot::new();
    let root = homelab_store::DataRoot::open(t.root()).unwrap();
    heartbeat(&root, "observer", 2);
    heartbeat(&root, "executor", 600);
    let r = t.root();
    let r = r.to_str().unwrap();
    let out = hcp(&["health", "--root", r, "--daemon", "observer"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("observer is alive"), "{}", text(&out));
    let out = hcp(&["health", "--root", r, "--daemon", "executor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("executor heartbeat is old: last loop 10 min ago"), "{}", text(&out));
    let out = hcp(&["health", "--root", r, "--daemon", "supervisor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no heartbeat"), "{}", text(&out));
    // A tighter --max-age makes a fresh-enough heartbeat old.
    heartbeat(&root, "observer", 30);
    let out = hcp(&["health", "--root", r, "--daemon", "observer", "--max-age", "10s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_url_must_answer_2xx() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = hcp(&["health", "--url", &format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = hcp(&["health"]);
    assert_eq!(out.status.code(), Some(2), "one of --daemon or --url: {}", text(&out));
}
