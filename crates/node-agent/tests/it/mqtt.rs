//! The mqtt check against a real mosquitto broker, a server that is not MQTT, and a closed port.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::TempRoot;

use crate::{closed_port, config, run_once, service_events, wait_for};

/// mosquitto on 127.0.0.1 and a random port, killed on drop.
struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_check_speaks_to_a_real_broker() {
    let port = closed_port();
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), format!("listener {port} 127.0.0.1\nallow_anonymous true\n")).unwrap();
    let _broker = Mosquitto(
        Command::new("mosquitto")
            .args(["-c", conf.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/test-deps.sh)"),
    );
    wait_for("mosquitto listening", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).ok()).await;
    // A TCP server that accepts and hangs up at once: reachable, but no broker.
    let rude = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude_port = rude.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = rude.accept().await {
            drop(s);
        }
    });
    let tr = TempRoot::new();
    let closed = closed_port();
    tr.write_host(
        "edge-1",
        &format!(
            "services:\n  broker:\n    checks:\n      - mqtt: {{ port: {port} }}\n  rude:\n    checks:\n      - mqtt: {{ port: {rude_port} }}\n  gone:\n    checks:\n      - mqtt: {{ port: {closed} }}\n"
        ),
    );
    run_once(config(&tr, "edge-1")).await.unwrap();
    let root = tr.root();
    let cases = [("broker", "service_healthy", "accepted"), ("rude", "mqtt_unreachable", "no CONNACK"), ("gone", "mqtt_unreachable", "cannot connect")];
    for (svc, want, detail) in cases {
        let evs = service_events(&root, svc);
        assert_eq!(evs.len(), 1, "{svc}: {evs:?}");
        let got = evs[0].detail.clone().unwrap_or_default();
        assert_eq!(evs[0].kind, want, "{svc}: {got}");
        assert!(got.contains(detail), "{svc}: {got:?} should mention {detail:?}");
    }
}
