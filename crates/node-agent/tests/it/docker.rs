//! Container and exec checks against the real Docker engine, and the Docker events path.

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::TempRoot;

use crate::{Agent, config, run_once, service_events, unique, wait_for};

fn image() -> String {
    std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into())
}

/// A busybox container running `sleep`, removed on drop.
pub struct Container(pub String);

impl Container {
    pub fn start(tag: &str) -> Container {
        let name = unique(tag);
        docker(&["run", "-d", "--name", &name, &image(), "sleep", "3600"]);
        Container(name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("the docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_and_exec_checks() {
    let tr = TempRoot::new();
    let up = Container::start("up");
    let stopped = Container::start("stopped");
    docker(&["kill", &stopped.0]);
    let missing = unique("missing");
    tr.write_host(
        "edge-1",
        &format!(
            r#"
services:
  running:
    containers: [{up}]
    checks:
      - container: {{}}
      - exec: {{ container: {up}, command: [sh, -c, "test -d /tmp"] }}
  implicit:
    containers: [{up}]
  dead:
    containers: [{stopped}]
    checks:
      - container: {{}}
  gone:
    containers: [{missing}]
    checks:
      - container: {{}}
  execfail:
    checks:
      - exec: {{ container: {up}, command: [sh, -c, "echo not ready; exit 3"] }}
"#,
            up = up.0,
            stopped = stopped.0,
        ),
    );
    run_once(config(&tr, "edge-1")).await.unwrap();
    let root = tr.root();
    let cases = [
        ("running", "service_healthy", ""),
        ("implicit", "service_healthy", ""),
        ("dead", "containers_not_running", "(137)"),
        ("gone", "containers_not_running", "does not exist"),
        ("execfail", "exec_check_failed", "exited 3: not ready"),
    ];
    for (svc, want, detail) in cases {
        let evs = service_events(&root, svc);
        assert_eq!(evs.len(), 1, "{svc}: {evs:?}");
        let got = evs[0].detail.clone().unwrap_or_default();
        assert_eq!(evs[0].kind, want, "{svc}: {got}");
        assert!(got.contains(detail), "{svc}: {got:?} should mention {detail:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_reported_within_a_second() {
    let tr = TempRoot::new();
    let c = Container::start("kill");
    tr.write_host("edge-1", &format!("services:\n  z2m:\n    containers: [{}]\n    checks:\n      - container: {{}}\n", c.0));
    // A pass every hour: only the Docker events path can report the death in time.
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let root = tr.root();
    wait_for("the first healthy event", Duration::from_secs(20), || service_events(&root, "z2m").into_iter().find(|e| e.kind == "service_healthy")).await;
    let killed = Instant::now();
    docker(&["kill", &c.0]);
    let event = wait_for("containers_not_running after the kill", Duration::from_secs(5), || {
        service_events(&root, "z2m").into_iter().find(|e| e.kind == "containers_not_running")
    })
    .await;
    let latency = killed.elapsed();
    assert!(latency < Duration::from_secs(1), "reported after {latency:?}");
    assert!(event.detail.unwrap().contains("exited (137)"));
    // kill, die and stop of the same container: one event.
    docker(&["start", &c.0]);
    wait_for("recovery after the restart", Duration::from_secs(10), || service_events(&root, "z2m").into_iter().find(|e| e.kind == "service_recovered")).await;
    let downs = service_events(&root, "z2m").into_iter().filter(|e| e.kind == "containers_not_running").count();
    assert_eq!(downs, 1);
    agent.stop().await;
}
