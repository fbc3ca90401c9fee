//! Footprint benchmark: memory and idle CPU of the release binaries.
//!
//! `cargo build --release -p hcp -p control-plane-observer -p control-plane-supervisor -p control-plane-executor -p control-plane-ui`
//! `cargo run --release -p hcp --example footprint-bench [-- IDLE_SECS UP_SERVICES DAEMON_SERVICES]`
//! (defaults 20 200 10000):
//!
//! 1. `hcp up` (every daemon and the local agent in one process) with UP_SERVICES services: 4
//!    nodes; the local node's services (a quarter) are checked by the local agent every 30 s
//!    (a TCP check to the UI's port), the others were reported healthy once by events written
//!    before the start. After the world holds every service and 5 s of settling, the process'
//!    CPU time (utime + stime from /proc/<pid>/stat) is read over IDLE_SECS seconds, and its RSS
//!    (VmRSS, and VmHWM as the peak) from /proc/<pid>/status.
//! 2. Each daemon binary alone on a data root with DAEMON_SERVICES services (200 nodes): the
//!    observer folding one event per service and node, the supervisor reconciling them, the
//!    executor idle on the same hosts/, the UI answering 20 `/summary` requests (gzip, identity):
//!    RSS after 3 s of settling, and the peak.
//!
//! `NODE_STALE_AFTER=1h` keeps the nodes that report only once up for the whole run. Prints a
//! human line and `BENCH {json}` lines for scripts/bench.sh (targets: hcp up RSS <= 32 MiB and
//! idle CPU <= 0.5 % of one core; each daemon at 10k services RSS <= 48 MiB).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homelab_core::Event;
use homelab_store::DataRoot;
use testkit::bench;

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(p.exists(), "{} is not built: run `cargo build --release -p {name}` first", p.display());
    p
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first (a clean stop), then SIGKILL if it lingers.
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

fn clk_tck() -> f64 {
    Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

fn wait(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn world_services(root: &DataRoot) -> usize {
    root.read_world().ok().and_then(|(s, _)| s).map_or(0, |s| s.services.values().map(|m| m.len()).sum())
}

/// hosts/ with `nodes` × `per_node` services; the services of `local` get a TCP check to `port`.
fn write_hosts(hosts: &Path, nodes: usize, per_node: usize, local: Option<(&str, u16)>) {
    for n in 0..nodes {
        let node = format!("node-{n:03}");
        let mut yaml = String::from("services:\n");
        for s in 0..per_node {
            match local {
                Some((l, port)) if l == node => yaml.push_str(&format!("  svc-{s:02}:\n    checks:\n      - tcp: {{ port: {port} }}\n")),
                _ => yaml.push_str(&format!("  svc-{s:02}:\n    compose_dir: /srv/svc-{s:02}\n    checks:\n      - container: {{}}\n")),
            }
        }
        std::fs::create_dir_all(hosts.join(&node)).unwrap();
        std::fs::write(hosts.join(&node).join("services.yaml"), yaml).unwrap();
    }
}

/// One heartbeat per node and one `service_healthy` per service (except `skip`'s), in the data root.
fn seed_events(root: &DataRoot, nodes: usize, per_node: usize, skip: Option<&str>) {
    let now = chrono::Utc::now();
    for n in 0..nodes {
        let node = format!("node-{n:03}");
        if skip == Some(node.as_str()) {
            continue;
        }
        root.write_event(&Event::new(now, &node, "node_heartbeat", None)).unwrap();
        for s in 0..per_node {
            root.write_event(&Event::new(now, &node, "service_healthy", Some(&format!("svc-{s:02}")))).unwrap();
        }
    }
}

fn spawn(bin: &Path, args: &[&str], env: &[(&str, String)]) -> Daemon {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("NODE_STALE_AFTER", "1h").env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Daemon(cmd.spawn().unwrap())
}

async fn get(url: &str, gzip: bool) -> bool {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let mut req = client.get(url).bearer_auth("bench-token");
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

async fn hcp_up(idle_secs: u64, services: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    let (nodes, per_node) = (4, services.div_ceil(4));
    let (ui_port, agent_port) = (free_port(), free_port());
    write_hosts(&hosts, nodes, per_node, Some(("node-000", ui_port)));
    let root = DataRoot::open(&root_dir).unwrap();
    seed_events(&root, nodes, per_node, Some("node-000"));
    let up = spawn(
        &bin("hcp"),
        &["up", "--root", root_dir.to_str().unwrap(), "--hosts", hosts.to_str().unwrap()],
        &[
            ("LISTEN", format!("127.0.0.1:{ui_port}")),
            ("LISTEN_ADDR", "127.0.0.1".into()),
            ("LISTEN_PORT", agent_port.to_string()),
            ("NODE_NAME", "node-000".into()),
            ("UI_TOKEN", "bench-token".into()),
        ],
    );
    let pid = up.0.id();
    wait("hcp up: every service in world/", Duration::from_secs(120), || world_services(&root) == nodes * per_node);
    let url = format!("http://127.0.0.1:{ui_port}/summary");
    assert!(get(&url, true).await, "hcp up: /summary does not answer");
    std::thread::sleep(Duration::from_secs(5));
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (secs, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks(pid) - c0);
    let cpu_pct = ticks as f64 / clk_tck() / secs * 100.0;
    let (rss, hwm) = (status_kib(pid, "VmRSS:") / 1024.0, status_kib(pid, "VmHWM:") / 1024.0);
    println!(
        "hcp up, {} services on {nodes} nodes, idle for {secs:.0} s: CPU {cpu_pct:.2} % of one core ({ticks} ticks), RSS {rss:.1} MiB, peak {hwm:.1} MiB",
        nodes * per_node
    );
    let n = nodes * per_node;
    bench(&format!("up.{n}.rss"), &format!("`hcp up` with {n} services: RSS"), rss, "MiB", Some(("<=", 32.0)));
    bench(&format!("up.{n}.rss_peak"), &format!("`hcp up` with {n} services: RSS peak (VmHWM)"), hwm, "MiB", None);
    bench(&format!("up.{n}.idle_cpu"), &format!("`hcp up` with {n} services: idle CPU over {idle_secs} s"), cpu_pct, "% of a core", Some(("<=", 0.5)));
    drop(up);
}

async fn daemons(services: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    let nodes = 200;
    let per_node = services.div_ceil(nodes);
    let n = nodes * per_node;
    write_hosts(&hosts, nodes, per_node, None);
    let root = DataRoot::open(&root_dir).unwrap();
    seed_events(&root, nodes, per_node, None);
    let common = ["--root", root_dir.to_str().unwrap(), "--hosts", hosts.to_str().unwrap()];
    let tag = if n % 1000 == 0 { format!("{}k", n / 1000) } else { n.to_string() };
    let mut running = Vec::new();
    let report = |name: &str, d: &Daemon| {
        let pid = d.0.id();
        std::thread::sleep(Duration::from_secs(3));
        let (rss, hwm) = (status_kib(pid, "VmRSS:") / 1024.0, status_kib(pid, "VmHWM:") / 1024.0);
        println!("{name} at {n} services: RSS {rss:.1} MiB, peak {hwm:.1} MiB");
        bench(&format!("rss_{tag}.{name}"), &format!("{name} at {tag} services: RSS"), rss, "MiB", Some(("<=", 48.0)));
        bench(&format!("rss_{tag}.{name}.peak"), &format!("{name} at {tag} services: RSS peak (VmHWM)"), hwm, "MiB", None);
    };

    let observer = spawn(&bin("control-plane-observer"), &common, &[]);
    wait("the observer to fold every service", Duration::from_secs(300), || world_services(&root) == n);
    report("observer", &observer);
    running.push(observer);

    let supervisor = spawn(&bin("control-plane-supervisor"), &common, &[]);
    wait("the supervisor's heartbeat", Duration::from_secs(120), || root_dir.join("state/heartbeat/supervisor.json").is_file());
    report("supervisor", &supervisor);
    running.push(supervisor);

    let executor = spawn(&bin("control-plane-executor"), &common, &[("EXECUTOR_DRY_RUN", "1".into())]);
    wait("the executor's heartbeat", Duration::from_secs(120), || root_dir.join("state/heartbeat/executor.json").is_file());
    report("executor", &executor);
    running.push(executor);

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = common.to_vec();
    args.extend(["--listen", listen.as_str()]);
    let ui = spawn(&bin("control-plane-ui"), &args, &[("UI_TOKEN", "bench-token".into())]);
    let url = format!("http://{listen}/summary");
    let t = Instant::now();
    while !get(&url, true).await {
        assert!(t.elapsed() < Duration::from_secs(60), "the UI does not answer /summary");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        assert!(get(&url, i % 2 == 0).await);
    }
    report("ui", &ui);
    running.push(ui);
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let idle_secs = args.first().copied().unwrap_or(20) as u64;
    let up_services = args.get(1).copied().unwrap_or(200);
    let daemon_services = args.get(2).copied().unwrap_or(10_000);
    hcp_up(idle_secs, up_services).await;
    daemons(daemon_services).await;
}
