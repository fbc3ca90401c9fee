//! Claim latency: from an operator's approval (the rename of pending/<id>.json into approved/)
//! to the executor's claim (the rename into running/), measured with inotify on running/.
//!
//! `cargo run --release -p control-plane-executor --example executor-bench [-- SAMPLES]`
//!
//! The executor runs in-process in dry-run mode (container restarts, which pass no gate), so
//! no Docker engine is needed and only the claim path is measured.

use std::time::{Duration, Instant};

use homelab_core::{Action, ActionState, ActionType, HistoryEntry};
use homelab_store::DataRoot;
use homelab_store::watch::Watcher;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let dir = tempfile::Builder::new().prefix("executor-bench-").tempdir()?;
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    std::fs::create_dir_all(hosts.join("bench"))?;
    let mut yaml = String::from("services:\n");
    for i in 0..samples {
        yaml.push_str(&format!("  s{i}:\n    containers: [c{i}]\n"));
    }
    std::fs::write(hosts.join("bench/services.yaml"), yaml)?;
    let root = DataRoot::open(&root_dir)?;

    let config = control_plane_executor::Config {
        common: homelab_store::daemon::CommonArgs { root: root_dir.clone() },
        hosts,
        once: false,
        dry_run: true,
        action_timeout: Duration::from_secs(60),
        verify_timeout: Duration::ZERO,
        ssh_key: None,
        ssh_known_hosts: None,
        ssh_connect_timeout: Duration::from_secs(10),
        docker_socket: "/var/run/docker.sock".into(),
        max_parallel_nodes: 4,
        max_parallel_restarts: 8,
        rescan_interval: Duration::from_secs(60),
        heartbeat_interval: Duration::from_secs(60),
        prune_label: None,
        hold_generations: 3,
    };
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(control_plane_executor::run(config, stop.clone()));

    let running_dir = root.action_dir(ActionState::Running);
    let mut watcher = Watcher::new(&[(&running_dir, false)], Duration::from_secs(3600))?;
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let now = chrono::Utc::now();
        let service = format!("s{i}");
        let kind = ActionType::ContainerRestart;
        let action = Action {
            id: kind.id("bench", Some(&service)),
            kind,
            risk: kind.risk(),
            node: "bench".into(),
            service: Some(service),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: now,
            updated_at: now,
            history: vec![HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None }],
            result: None,
            generation: None,
        };
        root.create_action(&action)?;
        let file = format!("{}.json", action.id);
        let claimed = running_dir.join(&file);

        let t0 = Instant::now();
        std::fs::rename(root.action_dir(ActionState::Pending).join(&file), root.action_dir(ActionState::Approved).join(&file))?;
        loop {
            let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next_batch(Duration::ZERO))
                .await
                .map_err(|_| anyhow::anyhow!("action {} not claimed within 10s", action.id))?
                .ok_or_else(|| anyhow::anyhow!("watcher stopped"))?;
            if batch.paths.contains(&claimed) {
                break;
            }
        }
        latencies.push(t0.elapsed());

        // Let the dry run finish so the node is idle for the next sample.
        let deadline = Instant::now() + Duration::from_secs(10);
        while root.active_state(&action.id).is_some() {
            anyhow::ensure!(Instant::now() < deadline, "action {} did not finish", action.id);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stop.cancel();
    daemon.await??;

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "approve -> claimed latency over {} actions: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 10 ms)",
        latencies.len(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    );
    Ok(())
}
