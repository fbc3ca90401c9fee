//! Integration tests of the executor against real parts: the Docker engine, docker-compose v1,
//! sshd on loopback, and the executor binary itself for crashes and races.

mod compose;
mod crash;
mod deploys;
mod diskfull;
mod docker;
mod gate;
mod parallel;
mod race;
mod rollback;
mod ssh;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use control_plane_executor::Config;
use homelab_core::{Action, ActionState, ActionType, HistoryEntry};
use homelab_store::DataRoot;
use homelab_store::actions::StoredAction;

/// The local test image (see scripts/test-image.sh).
pub fn image() -> String {
    std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into())
}

/// A name unique to this test process, for Docker objects.
pub fn unique(what: &str) -> String {
    format!("hx{}-{what}", std::process::id())
}

/// Runs a command and returns its stdout; panics with its stderr when it fails.
pub fn sh(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn docker(args: &[&str]) -> String {
    sh("docker", args, None)
}

/// Removes Docker containers by name when dropped (also when the test panics).
pub struct Containers(pub Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", "-v", name]).output();
        }
    }
}

/// A compose project in a temp folder (image: the test image, `sleep 3600`), brought up with
/// docker-compose v1 and taken down when dropped.
pub struct ComposeProject {
    pub dir: tempfile::TempDir,
    pub project: String,
}

impl ComposeProject {
    pub fn up() -> ComposeProject {
        let dir = tempfile::Builder::new().prefix(&format!("hxc{}", std::process::id())).tempdir().unwrap();
        let yaml = format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n    network_mode: none\n",
            image()
        );
        std::fs::write(dir.path().join("docker-compose.yml"), yaml).unwrap();
        let project = control_plane_executor::docker::compose_project(dir.path().to_str().unwrap());
        let p = ComposeProject { dir, project };
        sh("docker-compose", &["up", "-d"], Some(p.dir.path()));
        p
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// The id of the running container of service `app`.
    pub fn container_id(&self) -> String {
        let ids = docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.service=app",
        ]);
        let ids: Vec<&str> = ids.lines().collect();
        assert_eq!(ids.len(), 1, "expected one running container of the project, got {ids:?}");
        ids[0].to_owned()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose").args(["down", "-t", "0", "-v"]).current_dir(self.dir.path()).output();
    }
}

/// An approved action as the supervisor and an operator would have left it.
pub fn approved(kind: ActionType, node: &str, service: Option<&str>) -> Action {
    let now = chrono::Utc::now();
    Action {
        id: kind.id(node, service),
        kind,
        risk: kind.risk(),
        node: node.into(),
        service: service.map(str::to_owned),
        drift: "unhealthy_service".into(),
        trigger: "containers_not_running".into(),
        root_cause: None,
        state: ActionState::Approved,
        created_at: now,
        updated_at: now,
        history: vec![
            HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None },
            HistoryEntry { state: ActionState::Approved, at: now, by: "cli:test".into(), note: None },
        ],
        result: None,
        generation: None,
    }
}

pub fn approve(root: &Path, action: &Action) {
    DataRoot::open(root).unwrap().create_action(action).unwrap();
}

/// The configuration a test starts from: `--once`, no verification, short timeouts.
pub fn config(root: PathBuf, hosts: PathBuf) -> Config {
    Config {
        common: homelab_store::daemon::CommonArgs { root },
        hosts,
        once: true,
        dry_run: false,
        action_timeout: Duration::from_secs(90),
        verify_timeout: Duration::ZERO,
        ssh_key: None,
        ssh_known_hosts: None,
        ssh_connect_timeout: Duration::from_secs(10),
        docker_socket: "/var/run/docker.sock".into(),
        max_parallel_nodes: 4,
        max_parallel_restarts: 8,
        rescan_interval: Duration::from_secs(5),
        heartbeat_interval: Duration::from_secs(5),
        prune_label: None,
        hold_generations: 3,
    }
}

/// Runs the executor with `--once` in-process, with a deadline.
pub fn run_once(config: Config) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), control_plane_executor::run(config, tokio_util::sync::CancellationToken::new()))
            .await
            .expect("executor --once did not finish within 180s")
            .expect("executor --once failed");
    });
}

/// Where the action is now (its folder) and what it says.
pub fn find(root: &Path, id: &str) -> StoredAction {
    DataRoot::open(root).unwrap().find_action(id).unwrap().unwrap_or_else(|| panic!("action {id} not found"))
}

/// Asserts the action ended in `state` and returns it.
pub fn ended(root: &Path, id: &str, state: ActionState) -> Action {
    let found = find(root, id);
    assert_eq!(found.state, state, "action {id}: {:#?}", found.action);
    found.action
}
