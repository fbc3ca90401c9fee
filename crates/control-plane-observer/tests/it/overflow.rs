//! Issue 12, inotify overflow: with `fs.inotify.max_queued_events` at 16 the kernel drops the
//! hints of a burst. The observer must notice (a log line and the `overflows` counter of its
//! heartbeat), rescan, and still fold every file: world state equals a replay. Needs root.

use std::time::Instant;

use super::*;

const NODES: u128 = 50;
const SERVICES: u128 = 40;
const EVENTS: u128 = 10_000;

/// Event `i` of the burst: 1 ms apart, round robin over 50 nodes and 40 services per node,
/// five events per service with changing status (so the order of a service's events matters).
fn burst_event(i: u128) -> Event {
    let node = format!("ovf-{:02}", i % NODES);
    let service = format!("svc-{:02}", (i / NODES) % SERVICES);
    let kind =
        ["service_healthy", "http_check_failed", "containers_not_running", "service_recovered", "http_check_failed"][(i / (NODES * SERVICES)) as usize % 5];
    Event {
        id: Uuid::from_u128(((i + 1) << 96) | i), // distinct first 8 hex digits: they are in the file name
        ts: at(0) + chrono::Duration::milliseconds(i as i64),
        node,
        kind: kind.into(),
        service: Some(service),
        detail: None,
        data: None,
    }
}

/// A world file as JSON without its `generated_at`; `None` while it is missing.
fn world_json(root: &Path, name: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("world").join(name)).ok()?).ok()?;
    v.as_object_mut()?.remove("generated_at");
    Some(v)
}

fn overflows(root: &Path) -> Option<u64> {
    let hb: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("state/heartbeat/observer.json")).ok()?).ok()?;
    hb["counters"]["overflows"].as_u64()
}

#[test]
fn inotify_overflow_is_seen_and_loses_no_event() {
    assert!(
        testkit::is_root(),
        "this test sets fs.inotify.max_queued_events and needs root: run it as root \
         (e.g. `sudo -E cargo test -p control-plane-observer --test it overflow`)"
    );
    let t = TempRoot::new();
    let log_path = t.path().join("observer.log");
    let log = std::fs::File::create(&log_path).unwrap();

    // The limit is read when the inotify instance is created: set it before the daemon starts,
    // put it back as soon as the daemon watches (and on drop, should anything panic first).
    let mut limit = testkit::ProcSys::set("fs/inotify/max_queued_events", "16").expect("set fs.inotify.max_queued_events (root only)");
    let mut d = Daemon(observer(&t).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log).spawn().unwrap());
    // The watcher exists before the first world files are written.
    wait_until("the observer watching (first world files)", Duration::from_secs(20), || {
        if let Some(status) = d.0.try_wait().unwrap() {
            panic!("the observer exited ({status}): {}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        t.root().join("world/services.json").exists()
    });
    limit.restore();

    // One writer per node, as agents are: each node's events land in their own order, all
    // nodes at once (a single writer is too slow to lose anything: the overflow rescan catches
    // up before the node's next file lands).
    let root = DataRoot::open(t.root()).unwrap();
    std::thread::scope(|s| {
        for n in 0..NODES {
            let root = &root;
            s.spawn(move || {
                for i in (n..EVENTS).step_by(NODES as usize) {
                    root.write_event(&burst_event(i)).unwrap();
                }
            });
        }
    });
    let written = Instant::now();

    // What every one of those files folded gives.
    let replayed = testkit::replay(Path::new(BIN), &t.root(), None);
    let replay_root = replayed.path().join("root");
    let want_services = world_json(&replay_root, "services.json").expect("replayed services.json");
    let want_nodes = world_json(&replay_root, "nodes.json").expect("replayed nodes.json");
    let total: usize = want_services["services"].as_object().unwrap().values().map(|m| m.as_object().unwrap().len()).sum();
    assert_eq!(total, (NODES * SERVICES) as usize, "the replay itself is wrong");

    let deadline = Duration::from_secs(60);
    loop {
        let last = (world_json(&t.root(), "services.json"), world_json(&t.root(), "nodes.json"));
        if last.0.as_ref() == Some(&want_services) && last.1.as_ref() == Some(&want_nodes) {
            break;
        }
        if written.elapsed() > deadline {
            let folded = |v: &Option<serde_json::Value>| -> usize {
                v.as_ref().and_then(|v| v["services"].as_object()).map_or(0, |n| n.values().map(|m| m.as_object().map_or(0, |m| m.len())).sum())
            };
            let differ = |k: &str, node: &str, svc: &str| last.0.as_ref().map(|v| &v[k][node][svc]) != Some(&want_services[k][node][svc]);
            let mut wrong = Vec::new();
            for (node, svcs) in want_services["services"].as_object().unwrap() {
                for svc in svcs.as_object().unwrap().keys() {
                    if differ("services", node, svc) {
                        wrong.push(format!("{node}/{svc}"));
                    }
                }
            }
            panic!(
                "world != replay {deadline:?} after a burst of {EVENTS} events with max_queued_events=16: \
                 {} of {total} services in world/services.json, {} differ from the replay (first: {:?}); nodes.json equal: {}",
                folded(&last.0),
                wrong.len(),
                &wrong[..wrong.len().min(10)],
                last.1.as_ref() == Some(&want_nodes)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The overflow was seen: counted in the heartbeat (written every 10 s) and logged.
    wait_for("the heartbeat counting an overflow (counters.overflows > 0)", Duration::from_secs(30), || overflows(&t.root()).filter(|n| *n > 0));
    let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        logged.lines().any(|l| l.to_lowercase().contains("overflow")),
        "no log line says \"overflow\"; the observer's log:\n{}",
        logged.lines().take(50).collect::<Vec<_>>().join("\n")
    );
}
