//! `cargo run --release -p control-plane-ui --example ui-bench [-- NODES SERVICES_PER_NODE REQUESTS_PER_CLIENT]`:
//! `/summary` latency with NODES × SERVICES_PER_NODE services (default 100 × 100 = 10k) and 50
//! concurrent clients, full answers (gzip, then identity) and 304 revalidations, plus the process
//! RSS. The server and the clients share this process, so the RSS printed is an upper bound for
//! the UI alone; the snapshot rebuild age is the default 1 s, so rebuilds happen during the run
//! like in production.
//!
//! Two times are recorded for every request: the client's (send → last body byte, on the same
//! two cores as the server) and the server's (each client runs at least 5 s, so rebuilds of the
//! snapshot, once per refresh age, fall inside the run), from the request entering the router to the
//! response being ready (a timing layer around the UI's own router), which is the figure the
//! targets are about. The clients never decompress: they read the gzip bytes as sent.
//! Each figure is also printed as a machine-readable `BENCH {json}` line for scripts/bench.sh.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_plane_ui::{AppState, Config};
use hdrhistogram::Histogram;
use homelab_core::world::{NodeFacts, ServiceState, ServiceStatus, World};
use testkit::bench;
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 50;
/// Every client keeps asking for at least this long.
const MIN_RUN: Duration = Duration::from_secs(5);

/// Server-side time of every `/summary` request since the last `take`.
static SERVER: Mutex<Option<Histogram<u64>>> = Mutex::new(None);

fn take_server() -> Histogram<u64> {
    SERVER.lock().unwrap().take().unwrap_or_else(|| Histogram::new(3).unwrap())
}

async fn timing(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let t = Instant::now();
    let resp = next.run(req).await;
    let us = t.elapsed().as_micros() as u64;
    SERVER.lock().unwrap().get_or_insert_with(|| Histogram::new(3).unwrap()).record(us.max(1)).unwrap();
    resp
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn seed(tmp: &testkit::TempRoot, nodes: usize, per_node: usize) {
    let now = chrono::Utc::now();
    let mut world = World::default();
    for n in 0..nodes {
        let node = format!("node-{n:03}");
        world.nodes.insert(node.clone(), NodeFacts { last_seen: Some(now), ..Default::default() });
        let mut yaml = String::from("services:\n");
        let mut svcs = BTreeMap::new();
        for s in 0..per_node {
            let name = format!("svc-{s:03}");
            yaml.push_str(&format!("  {name}: {{}}\n"));
            let unhealthy = (n * per_node + s).is_multiple_of(97);
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

async fn run_clients(url: &str, etag: Option<String>, gzip: bool, requests: usize) -> (Histogram<u64>, Duration, usize) {
    // no_gzip: the client neither asks for gzip by itself nor decompresses what it gets.
    let client = reqwest::Client::builder().no_gzip().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = client.clone();
        let url = url.to_owned();
        let etag = etag.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            let mut bytes = 0usize;
            // At least `requests` each, and for at least MIN_RUN, so that the run holds the
            // snapshot rebuilds (one per refresh age, 1 s) that requests wait for.
            let mut i = 0;
            while i < requests || start.elapsed() < MIN_RUN {
                i += 1;
                let t = Instant::now();
                let mut req = client.get(&url);
                if gzip {
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
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let nodes = args.first().copied().unwrap_or(100);
    let per_node = args.get(1).copied().unwrap_or(100);
    let requests = args.get(2).copied().unwrap_or(200);
    let services = nodes * per_node;
    // Targets (issue 15): server p99 <= 10 ms at 1k services, <= 40 ms at 10k.
    let target = if services <= 1_000 { 10.0 } else { 40.0 };
    let tag = if services % 1000 == 0 { format!("{}k", services / 1000) } else { services.to_string() };

    let tmp = testkit::TempRoot::new();
    seed(&tmp, nodes, per_node);
    let rss_before = rss_kib("VmRSS:");
    let mut config = Config::new(tmp.root(), Some(tmp.hosts()));
    config.ui_token = Some("bench-token".into());
    let state = Arc::new(AppState::new(&config)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/summary", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    // The UI's own router with a timing layer outside it (no file watcher: the snapshot is
    // rebuilt when it is older than the refresh age, 1 s).
    let app = control_plane_ui::router(state).layer(axum::middleware::from_fn(timing)).into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await });

    let first = reqwest::Client::builder().no_gzip().build()?.get(&url).send().await?;
    let etag = first.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let size = first.bytes().await?.len();
    println!("/summary with {services} services on {nodes} nodes: {size} bytes");
    take_server();

    for (what, key, etag, gzip) in
        [("full answers, gzip", "gzip", None, true), ("If-None-Match (304)", "304", etag.clone(), false), ("full answers, identity", "identity", None, false)]
    {
        let (h, took, bytes) = run_clients(&url, etag, gzip, requests).await;
        let s = take_server();
        let n = h.len();
        println!(
            "{what} ({bytes} bytes), {CLIENTS} clients, {n} requests: server p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; client p50 {:.2} ms, p99 {:.2} ms; {:.0} req/s",
            pct(&s, 0.5),
            pct(&s, 0.99),
            s.max() as f64 / 1000.0,
            pct(&h, 0.5),
            pct(&h, 0.99),
            n as f64 / took.as_secs_f64()
        );
        let server_target = (key != "identity").then_some(("<=", target));
        bench(
            &format!("ui.summary_{tag}.{key}.server_p99"),
            &format!("`/summary` {tag} services, 50 clients, {what}: server p99"),
            pct(&s, 0.99),
            "ms",
            server_target,
        );
        bench(
            &format!("ui.summary_{tag}.{key}.client_p99"),
            &format!("`/summary` {tag} services, 50 clients, {what}: client p99 (same 2 cores)"),
            pct(&h, 0.99),
            "ms",
            None,
        );
    }
    println!(
        "process RSS (server + bench clients): before start {} MiB, now {} MiB, peak {} MiB",
        rss_before / 1024,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    shutdown.cancel();
    server.await??;
    separate_process(&tmp, requests, &tag).await
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The RSS of the UI alone: the release binary (built by `cargo build --release -p
/// control-plane-ui`) on the same data, under the same load.
async fn separate_process(tmp: &testkit::TempRoot, requests: usize, tag: &str) -> anyhow::Result<()> {
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
    let (h, _, _) = run_clients(&url, None, true, requests).await;
    let (h2, _, _) = run_clients(&url, None, false, requests).await;
    let (now, peak) = (proc_kib(pid, "VmRSS:"), proc_kib(pid, "VmHWM:"));
    println!(
        "separate UI process: client p99 gzip {:.2} ms, p99 identity {:.2} ms; RSS after first build {} MiB, now {} MiB, peak {} MiB",
        pct(&h, 0.99),
        pct(&h2, 0.99),
        idle / 1024,
        now / 1024,
        peak / 1024
    );
    bench(
        &format!("ui.rss_{tag}_under_load"),
        &format!("UI process alone, {tag} services, after 50 clients (gzip, identity): RSS peak"),
        peak as f64 / 1024.0,
        "MiB",
        None,
    );
    child.start_kill()?;
    child.wait().await?;
    Ok(())
}
