//! Redeploy → verify → rollback, timed, beside a 3 s exit-code window (what Sencho's rollback
//! looks at): a real registry on 127.0.0.1, the real node agent (an HTTP check every second)
//! and observer, docker-compose v1, and the executor in process.
//!
//! From a healthy v1, each bad version is deployed and must end rolled back and healthy again:
//! v3 exits at start, v2 runs but its /health answers 404, v4 answers for 10 s and then fails.
//! Then v5 (healthy) is deployed and verified. Printed per case: the time from the approval to
//! the action's end (holding, up, the verify window, the rollback and its window), and whether
//! a 3 s exit-code window would have caught it.
//!
//! `cargo run --release -p control-plane-executor --example rollback-bench -- [WINDOW_SECS]`
//! (needs the release `node-agent` and `control-plane-observer`, a Docker engine and Debian's
//! docker-registry).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control_plane_executor::Config;
use homelab_core::{Action, ActionState, ActionType, HistoryEntry};
use homelab_store::DataRoot;
use testkit::{AppBehaviour, Registry, TempRoot, bench};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|p| p.parent()).expect("target dir").join(name)
}

fn daemon(name: &str, args: &[&str]) -> testkit::KillOnDrop {
    let child = Command::new(bin(name)).args(args).env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::null()).spawn().expect(name);
    testkit::KillOnDrop(child)
}

fn sh(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("docker-compose").args(args).current_dir(dir).output().expect("docker-compose").status.success();
    assert!(ok, "docker-compose {args:?}");
}

fn approved(now: homelab_core::Timestamp) -> Action {
    let kind = ActionType::Redeploy;
    Action {
        id: kind.id("local", Some("web")),
        kind,
        risk: kind.risk(),
        node: "local".into(),
        service: Some("web".into()),
        drift: "unhealthy_service".into(),
        trigger: "bench".into(),
        root_cause: None,
        state: ActionState::Approved,
        created_at: now,
        updated_at: now,
        history: vec![
            HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None },
            HistoryEntry { state: ActionState::Approved, at: now, by: "bench".into(), note: None },
        ],
        result: None,
        generation: None,
    }
}

fn main() -> anyhow::Result<()> {
    let window: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(15);
    let registry = Registry::start();
    let versions = [
        ("v1", AppBehaviour::Healthy),
        ("v3", AppBehaviour::ExitsAtStart),
        ("v2", AppBehaviour::CheckFails),
        ("v4", AppBehaviour::FailsAfter(10)),
        ("v5", AppBehaviour::Healthy),
    ];
    let images: Vec<_> = versions.iter().map(|(tag, b)| registry.push_app("bench/app", tag, *b)).collect();
    let t = TempRoot::new();
    let port = testkit::free_port();
    let dir = tempfile::Builder::new().prefix("rollback-bench").tempdir()?;
    let compose = |image: &str| format!("version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    ports: [\"127.0.0.1:{port}:8080\"]\n");
    std::fs::write(dir.path().join("docker-compose.yml"), compose(&images[0].reference))?;
    sh(dir.path(), &["up", "-d"]);
    t.write_host(
        "local",
        &format!(
            "compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: {window}s\n    checks:\n      - http: {{ url: \"http://127.0.0.1:{port}/health\", timeout_secs: 2 }}\n",
            dir.path().display()
        ),
    );
    let (root_s, hosts_s) = (t.root().display().to_string(), t.hosts().display().to_string());
    let _observer = daemon("control-plane-observer", &["--root", &root_s, "--hosts", &hosts_s]);
    let spool = t.path().join("spool");
    let listen = testkit::free_port().to_string();
    let _agent = daemon(
        "node-agent",
        &[
            "--node",
            "local",
            "--hosts",
            &hosts_s,
            "--root",
            &root_s,
            "--spool-dir",
            spool.to_str().unwrap(),
            "--check-interval",
            "1s",
            "--listen-port",
            &listen,
            "--listen-addr",
            "127.0.0.1",
        ],
    );
    let root = DataRoot::open(t.root())?;
    testkit::wait_until("v1 reported healthy", Duration::from_secs(60), || {
        root.read_services()
            .ok()
            .flatten()
            .and_then(|s| s.services.get("local")?.get("web").cloned())
            .is_some_and(|s| s.status == homelab_core::ServiceStatus::Healthy)
    });
    let rt = tokio::runtime::Runtime::new()?;
    // (version, what is wrong with it, caught by a 3 s exit-code window)
    let cases = [(1, "exits at start", true), (2, "runs, /health answers 404", false), (3, "answers 10 s, then fails", false), (4, "healthy", false)];
    println!("verify window {window} s; each case starts from v1 running and healthy");
    for (i, what, exit_code_catches) in cases {
        let (tag, _) = versions[i];
        std::fs::write(dir.path().join("docker-compose.yml"), compose(&images[i].reference))?;
        let action = approved(chrono::Utc::now());
        root.create_action(&action)?;
        let config = Config {
            common: homelab_store::daemon::CommonArgs { root: t.root() },
            hosts: t.hosts(),
            once: true,
            dry_run: false,
            action_timeout: Duration::from_secs(300),
            verify_timeout: Duration::from_secs(120),
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
        };
        let started = Instant::now();
        rt.block_on(control_plane_executor::run(config, tokio_util::sync::CancellationToken::new()))?;
        let took = started.elapsed().as_secs_f64();
        let ended = root.find_action(&action.id)?.expect("the action ended");
        let r = ended.action.result.unwrap_or_default();
        let how = match (ended.state, &r.rolled_back_to) {
            (ActionState::Completed, _) => "verified".to_owned(),
            (ActionState::Failed, Some(_)) if r.error.as_deref().is_some_and(|e| e.ends_with("healthy again")) => "rolled back, healthy".to_owned(),
            (state, _) => format!("{state}: {}", r.error.unwrap_or_default()),
        };
        println!(
            "{tag} ({what}): {how} in {took:.1} s; a 3 s exit-code window {}",
            if tag == "v5" {
                "passes it too"
            } else if exit_code_catches {
                "catches it"
            } else {
                "misses it"
            }
        );
        let label = format!("redeploy {tag} ({what}) -> {how}; a 3 s exit-code window {}", if exit_code_catches { "catches it" } else { "does not" });
        bench(&format!("rollback.{tag}"), &label, took, "s", None);
        if tag != "v5" && how != "rolled back, healthy" {
            anyhow::bail!("{tag} was not rolled back: {how}");
        }
        // Back to v1 for the next case (the rollback put it there; the file says v1 again).
        std::fs::write(dir.path().join("docker-compose.yml"), compose(&images[0].reference))?;
    }
    sh(dir.path(), &["down", "-t", "0"]);
    Ok(())
}
