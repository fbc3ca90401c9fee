//! The readiness endpoint's 200 / 503 answers (an unknown name is a 503 with
//! `Unknown check: <name>`), services whose health comes from alerts, and `/metrics` next to it.

use testkit::TempRoot;

use crate::{Agent, closed_port, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_ready_not_ready_and_unknown() {
    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (open_port, closed) = (open.local_addr().unwrap().port(), closed_port());
    tr.write_host(
        "edge-1",
        &format!("services:\n  good:\n    checks:\n      - tcp: {{ port: {open_port} }}\n  bad:\n    checks:\n      - tcp: {{ port: {closed} }}\n  ghost:\n    checks:\n      - alert: {{ alertname: GhostDown }}\n"),
    );
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let base = format!("http://{}", agent.addr.unwrap());
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();
    let get = |q: &str| {
        let url = format!("{base}/health{q}");
        let client = client.clone();
        async move {
            let resp = client.get(&url).send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let cases = [
        ("the good service alone", "?check=good", 200, "ready"),
        ("AND with a failing one", "?check=good,bad", 503, "not-ready"),
        ("an unknown name", "?check=good,nope", 503, "not-ready"),
        ("an unknown name alone", "?check=nope", 503, "not-ready"),
        ("health from alerts only: not checked here, never drains", "?check=ghost,good", 200, "ready"),
        ("everything, one failing", "", 503, "not-ready"),
    ];
    for (situation, q, code, status) in cases {
        let (got, body) = get(q).await;
        assert_eq!(got, code, "{situation}: {body}");
        assert_eq!(body["status"], status, "{situation}: {body}");
        assert!(body["total_duration_ms"].is_u64(), "{situation}: {body}");
        for c in body["checks"].as_array().unwrap() {
            assert!(c["name"].is_string() && c["passed"].is_boolean() && c["reason"].is_string() && c["duration_ms"].is_u64(), "{c}");
        }
    }
    let (_, body) = get("?check=good,nope").await;
    let nope = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "nope").unwrap().clone();
    assert_eq!(nope["reason"], "Unknown check: nope");
    assert_eq!(nope["passed"], false);
    let (_, body) = get("").await;
    let names: Vec<&str> = body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bad", "ghost", "good", "disk", "readonly_fs"]);
    let (_, body) = get("?check=ghost").await;
    let ghost = &body["checks"][0];
    assert_eq!((ghost["passed"].as_bool(), ghost["checked_locally"].as_bool()), (Some(true), Some(false)), "{body}");
    assert!(ghost["reason"].as_str().unwrap().starts_with("not checked locally"), "{body}");
    assert!(body["checks"].as_array().unwrap().len() == 1);
    let (_, body) = get("?check=good").await;
    assert!(body["checks"][0].get("checked_locally").is_none(), "{body}");
    let (code, body) = get("?check=disk,readonly_fs").await;
    let unknown = body["checks"].as_array().unwrap().iter().any(|c| c["reason"].as_str().unwrap().starts_with("Unknown check"));
    assert!(!unknown, "node check names are known ({code}): {body}");
    agent.stop().await;
    drop(open);
}

/// `GET /metrics` next to the readiness endpoint: check results and durations after a pass,
/// and `promtool check metrics` finds nothing to complain about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_check_results_and_pass_promtool() {
    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (open_port, closed) = (open.local_addr().unwrap().port(), closed_port());
    tr.write_host(
        "edge-1",
        &format!("services:\n  good:\n    checks:\n      - tcp: {{ port: {open_port} }}\n  bad:\n    checks:\n      - tcp: {{ port: {closed} }}\n"),
    );
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let url = format!("http://{}/metrics", agent.addr.unwrap());
    let client = reqwest::Client::new();
    // Polled with a deadline until the first pass shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let t = resp.text().await.unwrap();
        if t.contains("homelab_agent_check_up{service=\"bad\"") && t.contains("homelab_agent_events_total{type=\"node_heartbeat\"}") {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "metrics show the first pass within 20s:\n{t}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(text.contains("homelab_agent_check_up{service=\"good\",check=\"tcp\"} 1"), "{text}");
    assert!(text.contains("homelab_agent_check_up{service=\"bad\",check=\"tcp\"} 0"), "{text}");
    assert!(text.contains("homelab_agent_checks_total{service=\"bad\",check=\"tcp\",result=\"fail\"} 1"), "{text}");
    assert!(text.contains("homelab_agent_build_info{version=\""), "{text}");
    assert!(text.contains("homelab_agent_check_duration_seconds{service=\"good\",check=\"tcp\"}"), "{text}");
    promtool_check_metrics(&text);
    agent.stop().await;
    drop(open);
}

/// `promtool check metrics` (Debian's `prometheus` package) on `text`: no error, no lint warning.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: run scripts/test-deps.sh as root (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}
