//! `cargo run --release -p control-plane-ui --example ui-bench`: `/summary` latency with 10k
//! services (100 nodes × 100) and 50 concurrent clients, full answers and 304 revalidations,
//! plus the process RSS. The server and the clients share this process, so the RSS printed is
//! an upper bound for the UI alone; the snapshot rebuild age is the default 1 s, so rebuilds
//! happen during the run like in production.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane_ui::{AppState, Config};
use hdrhistogram::Histogram;
use homelab_core::world::{NodeFacts, ServiceState, ServiceStatus, World};
use tokio_util::sync::CancellationToken;

const NODES: usize = 100;
const SERVICES_PER_NODE: usize = 100;
const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 200;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn seed(tmp: &testkit::TempRoot) {
    let now = chrono::Utc::now();
    let mut world = World::default();
    for n in 0..NODES {
        let node = format!("node-{n:03}");
        world.nodes.insert(node.clone(), NodeFacts { last_seen: Some(now), ..Default::default() });
        let mut yaml = String::from("services:\n");
        let mut svcs = BTreeMap::new();
        for s in 0..SERVICES_PER_NODE {
            let name = format!("svc-{s:03}");
            yaml.push_str(&format!("  {name}: {{}}\n"));
            let unhealthy = (n * SERVICES_PER_NODE + s).is_multiple_of(97);
            svcs.insert(
                name,
                ServiceState {
                    status: if unhealthy { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy },
                    reason: unhealthy.then(|| "containers_not_running".to_owned()),
                    detail: None,
                    since: now,
                    last_event_at: now,
                    last_event_id: uuid::Uuid::new_v4(),
                    consecutive_failures: unhealthy as u32,
                },
            );
        }
        world.services.insert(node.clone(), svcs);
        tmp.write_host(&node, &yaml);
    }
    let root = homelab_store::DataRoot::open(tmp.root()).unwrap();
    root.write_world(&world.services_file(now), &world.nodes_file(now, Duration::from_secs(90))).unwrap();
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn run_clients(url: &str, etag: Option<String>, gzip: bool) -> (Histogram<u64>, Duration, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = client.clone();
        let url = url.to_owned();
        let etag = etag.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            let mut bytes = 0usize;
            for _ in 0..REQUESTS_PER_CLIENT {
                let t = Instant::now();
                let mut req = client.get(&url);
                if gzip {
                    // The raw compressed bytes are read; decompressing is the client's cost.
                    req = req.header("accept-encoding", "gzip");
                }
                if let Some(e) = &etag {
                    req = req.header("if-none-match", e);
                }
                let resp = req.send().await.expect("request");
                let body = resp.bytes().await.expect("body");
                bytes = body.len();
                h.record(t.elapsed().as_micros() as u64).unwrap();
            }
            (h, bytes)
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    let mut size = 0;
    for t in tasks {
        let (h, b) = t.await.unwrap();
        all.add(h).unwrap();
        size = b;
    }
    (all, start.elapsed(), size)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = testkit::TempRoot::new();
    seed(&tmp);
    let rss_before = rss_kib("VmRSS:");
    let mut config = Config::new(tmp.root(), Some(tmp.hosts()));
    config.ui_token = Some("bench-token".into());
    let state = Arc::new(AppState::new(&config)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/summary", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(control_plane_ui::run_on(state, listener, shutdown.clone()));

    let first = reqwest::get(&url).await?;
    let etag = first.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let size = first.bytes().await?.len();
    println!("/summary with {} services on {NODES} nodes: {size} bytes", NODES * SERVICES_PER_NODE);

    let n = CLIENTS * REQUESTS_PER_CLIENT;
    let (h, took, gz_size) = run_clients(&url, None, true).await;
    println!(
        "full answers, gzip ({gz_size} bytes), {CLIENTS} clients x {REQUESTS_PER_CLIENT}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} req/s",
        pct(&h, 0.5),
        pct(&h, 0.9),
        pct(&h, 0.99),
        h.max() as f64 / 1000.0,
        n as f64 / took.as_secs_f64()
    );
    let (h, took, _) = run_clients(&url, None, false).await;
    println!(
        "full answers, identity, {CLIENTS} clients x {REQUESTS_PER_CLIENT}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} req/s",
        pct(&h, 0.5),
        pct(&h, 0.9),
        pct(&h, 0.99),
        h.max() as f64 / 1000.0,
        n as f64 / took.as_secs_f64()
    );
    let (h, took, _) = run_clients(&url, etag, false).await;
    println!(
        "If-None-Match (304), {CLIENTS} clients x {REQUESTS_PER_CLIENT}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} req/s",
        pct(&h, 0.5),
        pct(&h, 0.99),
        h.max() as f64 / 1000.0,
        n as f64 / took.as_secs_f64()
    );
    println!(
        "process RSS (server + bench clients): before start {} MiB, now {} MiB, peak {} MiB",
        rss_before / 1024,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    shutdown.cancel();
    server.await??;
    separate_process(&tmp).await
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The RSS of the UI alone: the release binary (built by `cargo build --release -p
/// control-plane-ui`) on the same data, under the same load.
async fn separate_process(tmp: &testkit::TempRoot) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(|p| p.parent()).map(|p| p.join("control-plane-ui")).filter(|p| p.exists());
    let Some(bin) = bin else {
        println!("(build the binary with `cargo build --release -p control-plane-ui` to measure the UI process alone)");
        return Ok(());
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = tokio::process::Command::new(bin)
        .arg("--root")
        .arg(tmp.root())
        .arg("--hosts")
        .arg(tmp.hosts())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("UI_TOKEN", "bench-token")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let url = format!("http://127.0.0.1:{port}/summary");
    tokio::time::timeout(Duration::from_secs(20), async {
        while reqwest::get(&url).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    let idle = proc_kib(pid, "VmRSS:");
    let (h, _, _) = run_clients(&url, None, true).await;
    let (h2, _, _) = run_clients(&url, None, false).await;
    println!(
        "separate UI process: p99 gzip {:.2} ms, p99 identity {:.2} ms; RSS after first build {} MiB, now {} MiB, peak {} MiB",
        pct(&h, 0.99),
        pct(&h2, 0.99),
        idle / 1024,
        proc_kib(pid, "VmRSS:") / 1024,
        proc_kib(pid, "VmHWM:") / 1024
    );
    child.start_kill()?;
    child.wait().await?;
    Ok(())
}
