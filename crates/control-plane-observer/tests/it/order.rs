//! The repros of "no accepted event is ever lost": same-instant batches, late events, a
//! clock far ahead, and odd entries in events/, each through the running daemon and checked
//! against a replay.

use super::*;

fn heartbeat(t: &TempRoot) -> Option<homelab_core::Heartbeat> {
    DataRoot::open(t.root()).unwrap().read_heartbeat("observer").ok().flatten()
}

/// World files of a replay: a copy of the data root without the checkpoint, folded `--once`.
fn replay_of(t: &TempRoot) -> (ServicesFile, NodesFile) {
    let copy = TempRoot::new();
    let status = Command::new("cp").arg("-a").arg(t.root().join("events")).arg(copy.root()).status().unwrap();
    assert!(status.success());
    once(&copy, &[], &[]);
    (services(&copy), nodes(&copy))
}

fn assert_equals_replay(t: &TempRoot) {
    let (s, n) = replay_of(t);
    assert_eq!(services(t).services, s.services, "world/services.json = replay");
    let strip = |f: NodesFile| f.nodes.into_iter().map(|(k, v)| (k, v.last_seen, v.disk_pressure)).collect::<Vec<_>>();
    assert_eq!(strip(nodes(t)), strip(n), "world/nodes.json = replay");
}

#[test]
fn same_instant_events_are_all_folded() {
    let t = TempRoot::new();
    let _d = Daemon::start(&t, &[], &[]);
    wait_until("initial world", Duration::from_secs(10), || t.root().join("world/services.json").exists());
    let mut first = ev(0, 0, "n1", "service_healthy", Some("s0"));
    first.id = Uuid::from_u128(u128::MAX);
    write(&t.root(), &first);
    wait_world(&t, "s0 folded", |s| s.services.get("n1").is_some_and(|m| m.contains_key("s0")));
    // Same instant, smaller ids: the old per-node cursor skipped every one of these.
    for i in 1..8u128 {
        write(&t.root(), &ev(0, i, "n1", "http_check_failed", Some(&format!("s{i}"))));
    }
    wait_world(&t, "all 8 services", |s| s.services.get("n1").is_some_and(|m| m.len() == 8));
    assert_equals_replay(&t);
}

#[test]
fn a_late_event_is_folded_and_counted_as_late() {
    let t = TempRoot::new();
    let _d = Daemon::start(&t, &[], &[]);
    write(&t.root(), &ev(100, 1, "n1", "service_healthy", Some("web")));
    wait_world(&t, "web folded", |s| s.services.get("n1").is_some_and(|m| m.contains_key("web")));
    // 60 s older than the node's newest, for a service never seen: it must appear.
    write(&t.root(), &ev(40, 2, "n1", "port_unreachable", Some("db")));
    // And a late failure of web, older than its newest success: counted, no override.
    write(&t.root(), &ev(50, 3, "n1", "http_check_failed", Some("web")));
    wait_world(&t, "db folded", |s| s.services.get("n1").is_some_and(|m| m.contains_key("db")));
    wait_until("late counted", Duration::from_secs(20), || heartbeat(&t).is_some_and(|h| h.counters.get("late") >= Some(&1)));
    let s = services(&t);
    assert_eq!(s.services["n1"]["web"].status, homelab_core::ServiceStatus::Healthy);
    assert_equals_replay(&t);
}

#[test]
fn an_event_years_ahead_is_quarantined_and_never_freezes_its_node() {
    let t = TempRoot::new();
    let _d = Daemon::start(&t, &[], &[]);
    let mut future = ev(0, 1, "n1", "service_healthy", Some("web"));
    future.ts = chrono::Utc::now() + chrono::Duration::days(5 * 365);
    write(&t.root(), &future);
    let reason_file = t.root().join("quarantine/events").join(format!("{}.reason", future.file_name()));
    wait_until("future event quarantined", Duration::from_secs(10), || reason_file.exists());
    let reason = std::fs::read_to_string(&reason_file).unwrap();
    assert!(reason.starts_with("clock_skew: dated ") && reason.contains("MAX_CLOCK_SKEW"), "{reason}");
    // Real events after it are folded, and last_seen is the real one.
    let mut now = ev(0, 2, "n1", "http_check_failed", Some("web"));
    now.ts = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    write(&t.root(), &now);
    wait_world(&t, "real event folded", |s| s.services.get("n1").is_some_and(|m| m.contains_key("web")));
    wait_until("node not in the future", Duration::from_secs(10), || nodes(&t).nodes.get("n1").is_some_and(|n| n.last_seen == Some(now.ts)));
    wait_until("counted by reason", Duration::from_secs(20), || heartbeat(&t).is_some_and(|h| h.extra["quarantined_by_reason"]["clock_skew"] == 1));
    // A small skew (an agent a minute ahead) is accepted.
    let mut ahead = ev(0, 3, "n1", "service_healthy", Some("web"));
    ahead.ts = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() + chrono::Duration::seconds(60), 3);
    write(&t.root(), &ahead);
    wait_world(&t, "slightly ahead folded", |s| s.services.get("n1").is_some_and(|m| m["web"].last_event_id == ahead.id));
}

#[test]
fn only_regular_files_inside_the_root_are_read() {
    let t = TempRoot::new();
    let outside = TempRoot::new();
    let good = ev(0, 1, "n1", "service_healthy", Some("web"));
    let day = t.root().join("events").join(good.day());
    std::fs::create_dir_all(&day).unwrap();
    // A valid event file outside the data root, symlinked in under a valid name.
    let planted = ev(1, 2, "n1", "service_unhealthy", Some("planted"));
    let target = outside.path().join("planted.json");
    std::fs::write(&target, serde_json::to_vec(&planted).unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, day.join(planted.file_name())).unwrap();
    // A dangling symlink, a folder named like an event, a bad day folder, a symlinked day.
    std::os::unix::fs::symlink("/nonexistent/x.json", day.join(ev(2, 3, "n1", "service_healthy", Some("d")).file_name())).unwrap();
    std::fs::create_dir(day.join(ev(3, 4, "n1", "service_healthy", Some("f")).file_name())).unwrap();
    std::fs::create_dir_all(t.root().join("events/not-a-day")).unwrap();
    std::os::unix::fs::symlink(outside.path(), t.root().join("events/2026-01-01")).unwrap();
    write(&t.root(), &good);
    once(&t, &[], &[]);
    assert_eq!(summary(&services(&t)), ["n1/web Healthy - 0"], "nothing from outside the root is folded");
    assert!(target.exists(), "the symlink's target is untouched");
    let q = t.root().join("quarantine/events");
    let mut reasons: Vec<String> = std::fs::read_dir(&q)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".reason").then(|| std::fs::read_to_string(q.join(&name)).unwrap().lines().next().unwrap().to_owned())
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("not_regular_file: a symbolic link")).count(), 2, "{reasons:#?}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("not_regular_file: a folder")).count(), 1, "{reasons:#?}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("bad_day_folder: ")).count(), 2, "{reasons:#?}");
    // Quarantined once: a second pass finds nothing more to say.
    once(&t, &[], &[]);
    assert_eq!(std::fs::read_dir(&q).unwrap().count(), 10);
}

#[test]
fn restart_finds_files_that_landed_while_it_was_down_whatever_their_time() {
    let t = TempRoot::new();
    write(&t.root(), &ev(100, 1, "n1", "service_healthy", Some("web")));
    once(&t, &[], &[]);
    // Landed while the observer was down, older than everything folded: not skipped.
    write(&t.root(), &ev(10, 2, "n1", "port_unreachable", Some("db")));
    write(&t.root(), &ev(10, 3, "n2", "service_healthy", Some("web")));
    once(&t, &[], &[]);
    assert_eq!(summary(&services(&t)), ["n1/db Unhealthy port_unreachable 1", "n1/web Healthy - 0", "n2/web Healthy - 0"]);
    assert_equals_replay(&t);
}
