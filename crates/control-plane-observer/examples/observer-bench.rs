//! Observer benchmark: prints
//! 1. full-replay throughput (events/s) over 100k events on disk (and 1M with a third
//!    argument), with the checkpoint's size and the applied-files record's size after it, and
//! 2. event-file-landed → world-updated latency p50/p99 over 1,000 events with the observer
//!    running as a daemon (in this process, on its own runtime threads).
//!
//! `cargo run --release -p control-plane-observer --example observer-bench [-- EVENTS LATENCY_EVENTS [BIG_EVENTS]]`
//! Events for the latency run are spaced 250 ms apart, so each one meets an observer with its
//! write budget (WORLD_WRITES_PER_SECOND, default 5) unspent, as an agent's event does; bursts
//! are batched by design.

use std::time::{Duration, Instant};

use clap::Parser as _;
use homelab_core::Event;
use homelab_store::DataRoot;
use testkit::bench;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    config: control_plane_observer::Config,
}

fn config(root: &std::path::Path) -> control_plane_observer::Config {
    Cli::parse_from(["bench", "--root", root.to_str().unwrap()]).config
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let replay_events = args.first().copied().unwrap_or(100_000);
    let latency_events = args.get(1).copied().unwrap_or(1_000);
    replay(replay_events);
    if let Some(big) = args.get(2) {
        replay(*big);
    }
    latency(latency_events);
}

fn replay(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path()).unwrap();
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let kinds = ["service_healthy", "http_check_failed", "containers_not_running", "node_heartbeat"];
    for i in 0..count {
        let kind = kinds[i % kinds.len()];
        let service = (kind != "node_heartbeat").then(|| format!("svc-{}", i % 20));
        let ts = start + chrono::Duration::milliseconds(i as i64 * 7);
        let e = Event::new(ts, &format!("node-{}", i % 50), kind, service.as_deref());
        // The workload, not the measure: plain writes, one `sync` at the end (a durable write
        // per file makes 1M files take a quarter of an hour to set up).
        let path = root.event_path(&e.day(), &e.file_name());
        if i == 0 || path.parent().is_some_and(|d| !d.exists()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    }
    let _ = std::process::Command::new("sync").status();
    let t = Instant::now();
    let mut observer = control_plane_observer::Observer::open(root, config(dir.path())).unwrap();
    let stats = observer.full_scan();
    observer.flush(true);
    assert!(observer.write_error().is_none());
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(stats.applied as usize, count);
    let checkpoint = std::fs::metadata(dir.path().join("state/observer_checkpoint.json")).unwrap().len();
    let record = du(&dir.path().join("state/observer/applied"));
    println!(
        "replay: {count} events in {secs:.2} s = {:.0} events/s (target >= 150000; 1M in <= 8 s); checkpoint {} bytes, applied-files record {} bytes",
        count as f64 / secs,
        checkpoint,
        record
    );
    let (tag, target) =
        if count.is_multiple_of(1_000_000) { (format!("{}m", count / 1_000_000), Some(150_000.0)) } else { (format!("{}k", count / 1000), None) };
    bench(&format!("observer.replay_{tag}"), &format!("replay, {tag} events"), count as f64 / secs, "events/s", target.map(|t| (">=", t)));
    bench(&format!("observer.replay_{tag}.checkpoint_bytes"), &format!("replay, {tag} events: checkpoint size"), checkpoint as f64, "bytes", None);
}

/// Bytes of the files below `dir`.
fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| if e.file_type().unwrap().is_dir() { du(&e.path()) } else { e.metadata().unwrap().len() }).sum())
        .unwrap_or(0)
}

fn latency(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path()).unwrap();
    let cfg = config(dir.path());
    let spacing = Duration::from_millis(250);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let handle = rt.spawn(control_plane_observer::run(cfg, token.clone()));
    let services = dir.path().join("world/services.json");
    while !services.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for i in 0..count {
        std::thread::sleep(spacing);
        let e = Event::new(chrono::Utc::now(), "bench-node", "service_healthy", Some(&format!("svc-{}", i % 10)));
        let id = e.id.to_string();
        let t = Instant::now();
        root.write_event(&e).unwrap();
        // Poll the world file until it names this event (a tight poll: the figure is the observer's).
        loop {
            if let Ok(text) = std::fs::read_to_string(&services)
                && text.contains(&id)
            {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!("event {i} not in world after 10 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        hist.record(t.elapsed().as_micros() as u64).unwrap();
    }
    token.cancel();
    rt.block_on(handle).unwrap().unwrap();
    println!(
        "latency: {count} events, landed -> world updated: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 10 ms)",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    bench("observer.landed_to_world.p50", "event landed -> world updated, p50", hist.value_at_quantile(0.5) as f64 / 1000.0, "ms", None);
    bench("observer.landed_to_world.p99", "event landed -> world updated, p99", hist.value_at_quantile(0.99) as f64 / 1000.0, "ms", None);
}
