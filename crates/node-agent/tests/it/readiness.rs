//! The readiness endpoint's 200 / 503 / 500 answers.

use testkit::TempRoot;

use crate::{Agent, closed_port, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_ready_not_ready_and_misconfigured() {
    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (open_port, closed) = (open.local_addr().unwrap().port(), closed_port());
    tr.write_host(
        "edge-1",
        &format!("services:\n  good:\n    checks:\n      - tcp: {{ port: {open_port} }}\n  bad:\n    checks:\n      - tcp: {{ port: {closed} }}\n"),
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
        ("an unknown name", "?check=good,nope", 500, "not-ready"),
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
    assert_eq!(names, ["bad", "good", "disk", "readonly_fs"]);
    let (code, body) = get("?check=disk,readonly_fs").await;
    assert_ne!(code, 500, "node check names are known: {body}");
    agent.stop().await;
    drop(open);
}
