//! Integration tests of the supervisor through its binary, each on a fresh temp data root.
//! World files are written directly (no observer needed); actions are read back from disk.

mod diskfull;
mod hosts;
mod once;
mod settled;
mod silences;
mod watch;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use homelab_core::world::{NodeState, NodeStatus, NodesFile, ServiceState, ServiceStatus, ServicesFile};
use homelab_core::{Action, ActionState, Timestamp};
use homelab_store::DataRoot;
use testkit::TempRoot;

pub const BIN: &str = env!("CARGO_BIN_EXE_control-plane-supervisor");

/// mosquitto ← zigbee2mqtt, a web app and a service not monitored.
pub const EDGE: &str = "services:\n  mosquitto:\n    containers: [mosquitto]\n    checks:\n      - tcp: { port: 1883 }\n  zigbee2mqtt:\n    depends_on: [mosquitto]\n    checks:\n      - http: { url: \"http://127.0.0.1:8080/\" }\n  web:\n    checks:\n      - container: {}\n  homeassistant:\n    monitor: false\n";

pub fn now() -> Timestamp {
    chrono::Utc::now()
}

/// Builds world/services.json and world/nodes.json, every time in it relative to one instant
/// (taken at `new`), so that what the builder says happened together did.
pub struct WorldBuilder {
    services: ServicesFile,
    nodes: NodesFile,
    at: Timestamp,
}

impl Default for WorldBuilder {
    fn default() -> Self {
        WorldBuilder::new()
    }
}

impl WorldBuilder {
    pub fn new() -> WorldBuilder {
        let at = now();
        WorldBuilder {
            services: ServicesFile { generated_at: at, services: Default::default() },
            nodes: NodesFile { generated_at: at, nodes: Default::default() },
            at,
        }
    }

    /// The node, seen `secs_ago`.
    pub fn node(mut self, node: &str, secs_ago: i64) -> Self {
        let status = if secs_ago <= 90 { NodeStatus::Up } else { NodeStatus::Stale };
        let state = NodeState {
            last_seen: Some(self.at - chrono::Duration::seconds(secs_ago)),
            status,
            disk_pressure: None,
            disks: None,
            agent_version: Some("test".into()),
            uptime_secs: None,
        };
        self.nodes.nodes.insert(node.to_owned(), state);
        self
    }

    pub fn service(mut self, node: &str, name: &str, reason: Option<&str>) -> Self {
        let state = ServiceState {
            status: if reason.is_some() { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy },
            reason: reason.map(str::to_owned),
            detail: None,
            since: self.at,
            last_event_at: self.at,
            last_event_id: uuid::Uuid::new_v4(),
            consecutive_failures: u32::from(reason.is_some()),
        };
        self.services.services.entry(node.to_owned()).or_default().insert(name.to_owned(), state);
        self
    }

    pub fn healthy(self, node: &str, names: &[&str]) -> Self {
        names.iter().fold(self, |w, n| w.service(node, n, None))
    }

    pub fn write(&self, t: &TempRoot) {
        DataRoot::open(t.root()).unwrap().write_world(&self.services, &self.nodes).unwrap();
    }
}

/// Runs the binary with `--root` and `--hosts` plus `args`, killing it after 30 s.
pub fn run(t: &TempRoot, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(t.root()).arg("--hosts").arg(t.hosts()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn supervisor");
    wait_output(child, Duration::from_secs(30))
}

pub fn wait_output(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("supervisor did not finish within {deadline:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// `--once`, expecting success.
pub fn once(t: &TempRoot) -> Output {
    let out = run(t, &["--once"], &[]);
    assert!(out.status.success(), "supervisor --once failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Every action in a state's folder.
pub fn actions(t: &TempRoot, state: ActionState) -> Vec<Action> {
    DataRoot::open(t.root()).unwrap().list_actions(state).unwrap().into_iter().map(|s| s.action).collect()
}

pub fn ids(t: &TempRoot, state: ActionState) -> Vec<String> {
    actions(t, state).into_iter().map(|a| a.id).collect()
}

/// Every file below `dir`, for "nothing was written" checks.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
