//! Benchmark: one pass of the node agent over 500 checks (`--once`, in this process).
//!
//! `cargo run --release -p node-agent --example agent-pass-bench [-- CHECKS PASSES SEED EXEC_PCT]`
//! (defaults 500 20 42 15) writes hosts/bench/services.yaml with CHECKS checks over CHECKS/5
//! services, drawn from SEED: HTTP GETs (`expect_status`, some with `body_contains`) and TCP
//! connects to a server on 127.0.0.1 in this process, `container` checks and `exec` checks
//! (`true`, EXEC_PCT % of the checks, default 15) on one busybox container of the local Docker engine (image `TEST_IMAGE`, default
//! `homelab-test/busybox:latest`); about 5 % fail fast (HTTP 500, a closed port, `false`). All
//! checks keep the default timeout (10 s). Each pass is `node_agent::run_with_listener` with
//! `--once` into a local data root, timed from the call to its return: reading hosts/, every
//! check, the node checks and the event files written (fsynced). Prints p50/p99/max and a
//! `BENCH {json}` line for scripts/bench.sh (target: p99 <= 2 s).

use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser as _;
use testkit::bench;
use tokio_util::sync::CancellationToken;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    config: node_agent::Config,
}

/// A tiny deterministic generator (SplitMix64), so the workload is the same for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where a pass' time goes: each check's own duration (`data.checks[].duration_ms` of the
/// events written), by kind, over every pass.
fn per_kind(root: &std::path::Path) {
    let mut by_kind: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let days = std::fs::read_dir(root.join("events")).into_iter().flatten().flatten();
    for file in days.flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten()) {
        let Ok(v) = std::fs::read(file.path()).map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default()) else { continue };
        for c in v["data"]["checks"].as_array().into_iter().flatten() {
            by_kind.entry(c["kind"].as_str().unwrap_or("?").to_owned()).or_default().push(c["duration_ms"].as_u64().unwrap_or(0));
        }
    }
    for (kind, mut d) in by_kind {
        d.sort();
        let p = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
        println!("  {kind:>9} checks ({} runs): p50 {} ms, p99 {} ms, max {} ms", d.len(), p(0.5), p(0.99), p(1.0));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let checks = args.first().copied().unwrap_or(500) as usize;
    let passes = args.get(1).copied().unwrap_or(20) as usize;
    let seed = args.get(2).copied().unwrap_or(42);
    // Percent of checks that are `exec` checks (the rest of the mix keeps its shares).
    let exec_pct = args.get(3).copied().unwrap_or(15).min(100);
    let image = std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into());
    let container = format!("hl-agent-pass-bench-{}", std::process::id());

    // The HTTP server the HTTP and TCP checks reach, and a port nobody listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "status: ok, all good" }))
        .route("/fail", axum::routing::get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "broken") }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();

    let tmp = tempfile::tempdir()?;
    let (root, hosts) = (tmp.path().join("root"), tmp.path().join("hosts"));
    std::fs::create_dir_all(hosts.join("bench"))?;
    let mut rng = Rng(seed);
    let mut yaml = String::from("services:\n");
    let per_service = 5;
    let (mut kinds, mut failing) = ([0usize; 4], 0usize);
    for s in 0..checks.div_ceil(per_service) {
        yaml.push_str(&format!("  svc-{s:03}:\n    containers: [{container}]\n    checks:\n"));
        for _ in 0..per_service.min(checks - s * per_service) {
            let fail = rng.below(100) < 5;
            failing += usize::from(fail);
            let draw = rng.below(100);
            let k = if draw >= 100 - exec_pct {
                3
            } else {
                match draw * 85 / (100 - exec_pct).max(1) {
                    0..40 => 0,
                    40..70 => 1,
                    _ => 2,
                }
            };
            kinds[k] += 1;
            let line = match (k, fail) {
                (0, false) if rng.below(2) == 0 => format!("http: {{ url: \"http://127.0.0.1:{port}/ok\", body_contains: \"ok\" }}"),
                (0, false) => format!("http: {{ url: \"http://127.0.0.1:{port}/ok\" }}"),
                (0, true) => format!("http: {{ url: \"http://127.0.0.1:{port}/fail\" }}"),
                (1, false) => format!("tcp: {{ port: {port} }}"),
                (1, true) => format!("tcp: {{ port: {closed} }}"),
                (2, _) => "container: {}".to_owned(),
                (_, false) => format!("exec: {{ container: {container}, command: [\"true\"] }}"),
                (_, true) => format!("exec: {{ container: {container}, command: [\"false\"] }}"),
            };
            yaml.push_str(&format!("      - {line}\n"));
        }
    }
    std::fs::write(hosts.join("bench/services.yaml"), yaml)?;
    println!(
        "{checks} checks over {} services (seed {seed}): {} http, {} tcp, {} container, {} exec; {failing} fail fast",
        checks.div_ceil(per_service),
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3]
    );

    let out = Command::new("docker").args(["run", "-d", "--name", &container, &image, "sleep", "3600"]).output()?;
    anyhow::ensure!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    let result = async {
        let mut times = Vec::with_capacity(passes);
        for _ in 0..passes {
            let config = Cli::parse_from([
                "agent",
                "--hosts",
                hosts.to_str().unwrap(),
                "--node",
                "bench",
                "--root",
                root.to_str().unwrap(),
                "--spool-dir",
                tmp.path().join("spool").to_str().unwrap(),
                "--once",
            ])
            .config;
            let t = Instant::now();
            node_agent::run_with_listener(config, CancellationToken::new(), None).await?;
            times.push(t.elapsed());
            // A pass every CHECK_INTERVAL: the next one does not start on the heels of this one.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1e3;
        println!(
            "one pass over {checks} checks (--once), {passes} passes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 <= 2 s)",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        per_kind(&root);
        if exec_pct == 15 {
            bench(&format!("agent.pass_{checks}.p50"), &format!("node agent, {checks} checks: one pass, p50"), pct(0.5), "ms", None);
            bench(&format!("agent.pass_{checks}.p99"), &format!("node agent, {checks} checks: one pass, p99"), pct(0.99), "ms", Some(("<=", 2000.0)));
        } else {
            let label = format!("node agent, {checks} checks, {exec_pct} % exec ({} exec checks): one pass, p99", kinds[3]);
            bench(&format!("agent.pass_{checks}_exec{exec_pct}.p99"), &label, pct(0.99), "ms", None);
        }
        anyhow::Ok(())
    }
    .await;
    let _ = Command::new("docker").args(["rm", "-f", &container]).output();
    server.abort();
    result
}
