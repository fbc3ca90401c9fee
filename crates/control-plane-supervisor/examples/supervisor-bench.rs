//! Supervisor benchmark: prints
//! 1. reconcile time with 200 nodes × 50 services (10k services) in world and hosts/, 1 % of
//!    them unhealthy: the first reconcile (writing 100 pending actions), steady-state
//!    reconciles (nothing to write), and the pure `plan` alone;
//! 2. event-landed → pending-action-written latency p50/p99 with `control-plane-observer` and
//!    `control-plane-supervisor` running as separate processes on one data root.
//!
//! `cargo build --release -p control-plane-observer -p control-plane-supervisor`
//! `cargo run --release -p control-plane-supervisor --example supervisor-bench [-- NODES SERVICES SAMPLES LATENCY_NODES]`
//! (defaults 200 50 200 4: the latency run's world has 4 nodes × 50 services unless asked for more).
//!
//! Latency samples are spaced 250 ms apart, because the observer writes world files at most
//! WORLD_WRITES_PER_SECOND (default 5) times a second and batches bursts by design; an agent's
//! event normally meets an unspent budget. t0 is taken just before the event file is written
//! (so the event's own fsync counts against the figure), t1 when the pending file is visible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control_plane_supervisor::{Config, Supervisor};
use homelab_core::plan::{Outcome, PlanInput, plan};
use homelab_core::world::{NodeState, NodeStatus, NodesFile, ServiceState, ServiceStatus, ServicesFile};
use homelab_core::{ActionState, Event};
use homelab_store::DataRoot;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let nodes = args.first().copied().unwrap_or(200);
    let services = args.get(1).copied().unwrap_or(50);
    let samples = args.get(2).copied().unwrap_or(200);
    // Nodes in the latency run's world (at least enough for one fresh service per sample).
    let latency_nodes = args.get(3).copied().unwrap_or(4);
    reconcile_time(nodes, services);
    if samples > 0 {
        latency(samples, latency_nodes);
    }
}

fn node_name(n: usize) -> String {
    format!("node-{n:03}")
}

fn svc_name(s: usize) -> String {
    format!("svc-{s:02}")
}

/// hosts/<node>/services.yaml for `nodes` × `services`, each service with a container check.
fn write_hosts(hosts: &Path, nodes: usize, services: usize) {
    for n in 0..nodes {
        let mut yaml = String::from("services:\n");
        for s in 0..services {
            yaml.push_str(&format!("  {}:\n    compose_dir: /srv/{}\n    checks:\n      - container: {{}}\n", svc_name(s), svc_name(s)));
        }
        let dir = hosts.join(node_name(n));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("services.yaml"), yaml).unwrap();
        // Host files change rarely; dated an hour back they count as settled for the parse cache.
        let f = std::fs::File::options().write(true).open(dir.join("services.yaml")).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn reconcile_time(nodes: usize, services: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    write_hosts(&hosts, nodes, services);
    let root = DataRoot::open(&root_dir).unwrap();
    let now = chrono::Utc::now();
    let mut world = BTreeMap::new();
    let mut node_states = BTreeMap::new();
    let mut unhealthy = 0;
    for n in 0..nodes {
        let mut per_node = BTreeMap::new();
        for s in 0..services {
            let bad = (n * services + s) % 100 == 7;
            unhealthy += usize::from(bad);
            per_node.insert(
                svc_name(s),
                ServiceState {
                    status: if bad { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy },
                    reason: bad.then(|| "containers_not_running".to_owned()),
                    detail: None,
                    since: now,
                    last_event_at: now,
                    last_event_id: uuid::Uuid::new_v4(),
                    consecutive_failures: u32::from(bad),
                },
            );
        }
        world.insert(node_name(n), per_node);
        let state = NodeState { last_seen: Some(now), status: NodeStatus::Up, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None };
        node_states.insert(node_name(n), state);
    }
    root.write_world(&ServicesFile { generated_at: now, services: world }, &NodesFile { generated_at: now, nodes: node_states }).unwrap();

    let mut sup = Supervisor::open(Config::new(&root_dir, &hosts)).unwrap();
    let first = sup.reconcile(chrono::Utc::now()).unwrap();
    assert_eq!(first.created, unhealthy);
    let mut steady = Vec::new();
    for _ in 0..20 {
        let r = sup.reconcile(chrono::Utc::now()).unwrap();
        assert_eq!(r.created, 0);
        steady.push(r.elapsed);
    }
    steady.sort();

    // Where the time goes: parsing hosts/ (cold, without the cache), reading world/, the pure plan.
    let t = Instant::now();
    let load = homelab_store::hosts::load_hosts(&hosts, &BTreeMap::new()).unwrap();
    let hosts_time = t.elapsed();
    let t = Instant::now();
    let (sf, nf) = root.read_world().unwrap();
    let world_time = t.elapsed();
    let (sf, nf) = (sf.unwrap(), nf.unwrap());
    let active: Vec<_> = root.list_actions(ActionState::Pending).unwrap().into_iter().map(|s| s.action).collect();
    let outcomes: Vec<Outcome> = Vec::new();
    let policy = Default::default();
    let memory = Default::default();
    let unknown = Default::default();
    let mut pure = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let p = plan(PlanInput {
            desired: &load.desired,
            unknown_nodes: &unknown,
            services: &sf.services,
            nodes: &nf.nodes,
            active: &active,
            outcomes: &outcomes,
            memory: &memory,
            policy: &policy,
            started_at: chrono::Utc::now() - chrono::Duration::hours(1),
            now: chrono::Utc::now(),
        });
        pure.push(t.elapsed());
        assert_eq!(p.drifts.len(), unhealthy);
    }
    pure.sort();
    println!("reconcile, {nodes} nodes x {services} services ({} services), {unhealthy} unhealthy:", nodes * services);
    println!("  first reconcile (reads everything, writes {unhealthy} pending actions): {}", ms(first.elapsed));
    println!("  steady-state reconcile over 20 runs: p50 {}, max {}", ms(pct(&steady, 0.5)), ms(pct(&steady, 1.0)));
    println!("  of which: parsing hosts/ {}, reading world/ {}", ms(hosts_time), ms(world_time));
    println!("  pure plan() alone over 20 runs:      p50 {}, max {}", ms(pct(&pure, 0.5)), ms(pct(&pure, 1.0)));
    let n = nodes * services;
    bench("supervisor.reconcile_steady.p50", &format!("reconcile of {n} services (steady), p50"), pct(&steady, 0.5), None);
    bench("supervisor.reconcile_first", &format!("first reconcile of {n} services ({unhealthy} actions written)"), first.elapsed, None);
}

/// A duration figure in ms for scripts/bench.sh (`target_ms`: at most this).
fn bench(name: &str, label: &str, value: Duration, target_ms: Option<f64>) {
    testkit::bench(name, label, value.as_secs_f64() * 1e3, "ms", target_ms.map(|t| ("<=", t)));
}

/// Both daemons' release binaries, next to this example's folder.
fn bins() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let (obs, sup) = (dir.join("control-plane-observer"), dir.join("control-plane-supervisor"));
    for b in [&obs, &sup] {
        assert!(b.exists(), "{} is not built: run `cargo build --release -p control-plane-observer -p control-plane-supervisor` first", b.display());
    }
    (obs, sup)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, root: &Path, hosts: &Path, extra: &[&str]) -> Daemon {
    let child = Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg("--hosts")
        .arg(hosts)
        .args(extra)
        .env("NODE_STALE_AFTER", "1h")
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Daemon(child)
}

fn wait(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn latency(samples: usize, min_nodes: usize) {
    let (obs_bin, sup_bin) = bins();
    let dir = tempfile::tempdir().unwrap();
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    let services = 50;
    let nodes = samples.div_ceil(services).max(min_nodes).max(1);
    write_hosts(&hosts, nodes, services);
    let root = DataRoot::open(&root_dir).unwrap();
    let now = chrono::Utc::now();
    for n in 0..nodes {
        root.write_event(&Event::new(now, &node_name(n), "node_heartbeat", None)).unwrap();
        for s in 0..services {
            root.write_event(&Event::new(now, &node_name(n), "service_healthy", Some(&svc_name(s)))).unwrap();
        }
    }
    let _observer = spawn(&obs_bin, &root_dir, &hosts, &[]);
    let _supervisor = spawn(&sup_bin, &root_dir, &hosts, &["--tick", "1h"]);
    wait("the observer to fold the initial events", Duration::from_secs(60), || {
        root.read_world().ok().and_then(|(s, _)| s).is_some_and(|s| s.services.values().map(|m| m.len()).sum::<usize>() == nodes * services)
    });
    wait("the supervisor's first reconcile", Duration::from_secs(30), || root_dir.join("state/heartbeat/supervisor.json").is_file());

    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        std::thread::sleep(Duration::from_millis(250));
        let (node, svc) = (node_name(i / services), svc_name(i % services));
        let pending = root.action_dir(ActionState::Pending).join(format!("container-restart-{node}-{svc}.json"));
        let event = Event::new(chrono::Utc::now(), &node, "containers_not_running", Some(&svc));
        let t0 = Instant::now();
        root.write_event(&event).unwrap();
        // For a slow sample, say which daemon was slow: when did world/ show the event?
        let mut world_at = None;
        let mut next_look = Duration::from_millis(100);
        wait(&format!("the pending action {} (sample {i})", pending.display()), Duration::from_secs(60), || {
            if pending.exists() {
                return true;
            }
            if world_at.is_none() && t0.elapsed() > next_look {
                next_look += Duration::from_millis(50);
                let seen = root.read_world().ok().and_then(|(s, _)| s).is_some_and(|s| s.services[&node][&svc].last_event_id == event.id);
                if seen {
                    world_at = Some(t0.elapsed());
                }
            }
            false
        });
        let took = t0.elapsed();
        if took > Duration::from_millis(100) {
            let w = world_at.map_or("within 100 ms".to_owned(), ms);
            eprintln!("slow sample {i}: {} in total; world/ showed the event after {w}", ms(took));
        }
        lat.push(took);
    }
    lat.sort();
    println!("event landed -> pending action written, observer + supervisor as processes, {samples} samples ({nodes} nodes x {services} services):");
    println!("  p50 {}, p99 {}, max {}", ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99)), ms(pct(&lat, 1.0)));
    bench("supervisor.landed_to_pending.p50", "event landed -> pending action written, p50", pct(&lat, 0.5), None);
    bench("supervisor.landed_to_pending.p99", "event landed -> pending action written, p99", pct(&lat, 0.99), Some(10.0));
}
