//! A real nats-server receives `homelab_health_issue` for failing checks, with the root cause.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use testkit::TempRoot;

use crate::{closed_port, config, run_once};

/// nats-server on 127.0.0.1 and a random port, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
}

impl NatsServer {
    fn start() -> NatsServer {
        let port = closed_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (scripts/test-deps.sh)");
        NatsServer { child, port }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_checks_are_published_with_their_root_cause() {
    let server = NatsServer::start();
    let url = format!("nats://127.0.0.1:{}", server.port);
    // The server needs a moment to listen: retry the subscriber's connection with a deadline.
    let client = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match async_nats::connect(&url).await {
                Ok(c) => break c,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("nats-server listens within 10s");
    let mut sub = client.subscribe("homelab_health_issue").await.unwrap();
    client.flush().await.unwrap();

    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (closed, open_port) = (closed_port(), open.local_addr().unwrap().port());
    tr.write_host(
        "edge-1",
        &format!(
            r#"
services:
  mosquitto:
    checks:
      - mqtt: {{ port: {closed} }}
  zigbee2mqtt:
    depends_on: [mosquitto]
    checks:
      - tcp: {{ port: {closed} }}
  happy:
    checks:
      - tcp: {{ port: {open_port} }}
"#
        ),
    );
    let mut cfg = config(&tr, "edge-1");
    cfg.nats_url = Some(url.clone());
    run_once(cfg).await.unwrap();

    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("two issues within 10s").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "exactly four fields: {v}");
        for k in ["component_name", "issue_detail", "detected_at", "root_cause"] {
            assert!(keys.contains(&k), "{k} in {v}");
        }
        chrono::DateTime::parse_from_rfc3339(v["detected_at"].as_str().unwrap()).unwrap();
        got.insert(v["component_name"].as_str().unwrap().to_owned(), v);
    }
    assert_eq!(got["mosquitto"]["root_cause"], serde_json::Value::Null);
    assert!(got["mosquitto"]["issue_detail"].as_str().unwrap().starts_with("mqtt_unreachable"));
    assert_eq!(got["zigbee2mqtt"]["root_cause"], "mosquitto unreachable");
    // Silent when healthy: nothing about `happy` follows.
    client.flush().await.unwrap();
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected message: {}", String::from_utf8_lossy(&msg.payload));
    }
    drop(open);
}
