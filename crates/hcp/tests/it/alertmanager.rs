//! `hcp alertmanager`: a webhook from Alertmanager becomes event files in the data root.

use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{TempRoot, wait_for, wait_until};

fn events(root: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(root.join("events")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
            if !f.file_name().to_string_lossy().starts_with('.') {
                out.push(serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn firing_and_resolved_alerts_become_events() {
    let t = TempRoot::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["alertmanager", "--root", t.root().to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("ALERTMANAGER_TOKEN", "am-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/alertmanager");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let body = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "homelab", "groupKey": "{}:{}",
        "alerts": [
            { "status": "firing", "labels": { "alertname": "MosquittoDown", "node": "edge-1", "service": "mosquitto" },
              "annotations": { "summary": "broker does not answer" }, "startsAt": "2020-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "a" },
            { "status": "resolved", "labels": { "alertname": "NasSlow", "instance": "nas-1:9100", "job": "jellyfin" },
              "annotations": {}, "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-01-01T00:10:00Z", "fingerprint": "b" },
            { "status": "firing", "labels": { "alertname": "NoLabels" }, "annotations": {}, "fingerprint": "c" }
        ]
    });
    // The receiver is a separate process: wait until it accepts connections.
    wait_until("the receiver listening", Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let result = async {
        // Without the token it refuses.
        let resp = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let resp = client.post(&url).bearer_auth("am-token").json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["written"], 2, "{v}");
        assert!(v["skipped"][0].as_str().unwrap().contains("no node"), "{v}");
        let bad = client.post(&url).bearer_auth("am-token").body("{").send().await.unwrap();
        assert_eq!(bad.status(), 400);
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), result).await;
    child.kill().unwrap();
    child.wait().unwrap();
    outcome.expect("the receiver answered in time");

    let got = wait_for("two event files", Duration::from_secs(5), || Some(events(&t.root())).filter(|e| e.len() == 2));
    let mut kinds: Vec<(String, String, String)> =
        got.iter().map(|e| (e["node"].as_str().unwrap().into(), e["service"].as_str().unwrap().into(), e["type"].as_str().unwrap().into())).collect();
    kinds.sort();
    assert_eq!(kinds, [("edge-1".into(), "mosquitto".into(), "service_unhealthy".into()), ("nas-1".into(), "jellyfin".into(), "service_healthy".into())]);
}
