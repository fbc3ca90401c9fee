//! Benchmark: container killed → `containers_not_running` event file on disk.
//!
//! `cargo run --release -p node-agent --example agent-bench [-- ROUNDS]` runs the agent in this
//! process against the local Docker engine (image `TEST_IMAGE`, default
//! `homelab-test/busybox:latest`), kills a busybox container ROUNDS times (default 30), and
//! prints p50/p90/p99/max of the time from the kill call to the event file appearing in the
//! data root. The check interval is one hour, so only the Docker events path is measured.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{KillContainerOptions, StartContainerOptions};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

fn count(root: &Path, kind: &str) -> usize {
    let Ok(days) = std::fs::read_dir(root.join("events")) else { return 0 };
    days.flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_name().to_str().is_some_and(|n| !n.starts_with('.')))
        .filter(|f| std::fs::read(f.path()).is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v["type"] == kind)))
        .count()
}

async fn wait_count(root: &Path, kind: &str, n: usize, deadline: Duration) -> Instant {
    let start = Instant::now();
    loop {
        if count(root, kind) >= n {
            return Instant::now();
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {n} {kind} events");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(30);
    let image = std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into());
    let name = format!("hl-agent-bench-{}", std::process::id());
    let tmp = tempfile::tempdir()?;
    let (root, hosts) = (tmp.path().join("root"), tmp.path().join("hosts"));
    std::fs::create_dir_all(hosts.join("bench"))?;
    std::fs::write(hosts.join("bench/services.yaml"), format!("services:\n  svc:\n    containers: [{name}]\n    checks:\n      - container: {{}}\n"))?;
    let out = Command::new("docker").args(["run", "-d", "--name", &name, &image, "sleep", "3600"]).output()?;
    anyhow::ensure!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));

    let result = async {
        let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
        let config = node_agent::Config {
            hosts,
            node: "bench".into(),
            root: Some(root.clone()),
            control_plane: None,
            token: None,
            token_file: None,
            spool_dir: tmp.path().join("spool"),
            check_interval: Duration::from_secs(3600),
            listen_port: 0,
            listen_addr: "127.0.0.1".parse()?,
            nats_url: None,
            once: false,
        };
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(node_agent::run_with_listener(config, shutdown.clone(), None));
        wait_count(&root, "service_healthy", 1, Duration::from_secs(30)).await;
        let mut hist = Histogram::<u64>::new(3)?;
        for round in 0..rounds {
            let t0 = Instant::now();
            docker.kill_container(&name, None::<KillContainerOptions>).await?;
            let seen = wait_count(&root, "containers_not_running", round + 1, Duration::from_secs(10)).await;
            hist.record(seen.duration_since(t0).as_micros() as u64)?;
            docker.start_container(&name, None::<StartContainerOptions>).await?;
            wait_count(&root, "service_recovered", round + 1, Duration::from_secs(10)).await;
        }
        shutdown.cancel();
        agent.await??;
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "container killed -> containers_not_running on disk, {rounds} rounds: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            hist.max() as f64 / 1000.0
        );
        anyhow::Ok(())
    }
    .await;
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    result
}
