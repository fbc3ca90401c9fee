//! `--once` passes: order, aliases, quarantine, late events, replay equality, ghosts, retention.

use super::*;

#[test]
fn folds_in_ts_order_whatever_the_file_order() {
    let t = TempRoot::new();
    // Written newest first: the fold still applies them oldest first.
    write(&t.root(), &ev(30, 3, "n1", "containers_not_running", Some("web")));
    write(&t.root(), &ev(20, 2, "n1", "http_check_failed", Some("web")));
    write(&t.root(), &ev(10, 1, "n1", "service_healthy", Some("web")));
    once(&t, &[], &[]);
    assert_eq!(summary(&services(&t)), ["n1/web Unhealthy containers_not_running 2"]);
    let n = nodes(&t);
    assert_eq!(n.nodes["n1"].last_seen, Some(at(30)));
}

#[test]
fn late_older_event_never_overrides_newer_state_and_other_nodes_are_not_held_back() {
    let t = TempRoot::new();
    write(&t.root(), &ev(50, 2, "n1", "service_healthy", Some("web")));
    once(&t, &[], &[]);
    // Arrives later but is older than n1's newest: folded, but it does not override. n2's old
    // event is not held back.
    write(&t.root(), &ev(40, 1, "n1", "http_check_failed", Some("web")));
    write(&t.root(), &ev(5, 3, "n2", "port_unreachable", Some("db")));
    once(&t, &[], &[]);
    assert_eq!(summary(&services(&t)), ["n1/web Healthy - 0", "n2/db Unhealthy port_unreachable 1"]);
}

#[test]
fn alias_map_folds_into_the_canonical_name() {
    let t = TempRoot::new();
    write(&t.root(), &ev(1, 1, "old-name", "service_unhealthy", Some("web")));
    write(&t.root(), &ev(2, 2, "edge-1", "service_unhealthy", Some("web")));
    once(&t, &[], &[("NODE_ALIAS_MAP", r#"{"old-name": "edge-1"}"#)]);
    assert_eq!(summary(&services(&t)), ["edge-1/web Unhealthy service_unhealthy 2"]);
    assert_eq!(nodes(&t).nodes.keys().collect::<Vec<_>>(), ["edge-1"]);
}

#[test]
fn bad_alias_map_is_a_clear_startup_error() {
    let t = TempRoot::new();
    let out = observer(&t).arg("--once").env("NODE_ALIAS_MAP", "{not json").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NODE_ALIAS_MAP"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn invalid_files_go_to_quarantine_with_a_reason_and_nothing_is_lost() {
    let t = TempRoot::new();
    let good = ev(1, 1, "n1", "service_healthy", Some("web"));
    write(&t.root(), &good);
    let day = t.root().join("events").join(good.day());
    std::fs::write(day.join("garbage.json"), "{not json").unwrap();
    let missing = ev(2, 2, "n1", "service_healthy", Some("web"));
    std::fs::write(day.join(missing.file_name()), r#"{"id":"00000000-0000-0000-0000-000000000002","node":"n1","type":"service_healthy","service":"web"}"#)
        .unwrap();
    let mut bad_name = ev(3, 3, "n1", "service_healthy", Some("web"));
    bad_name.node = "Bad/Name".into();
    std::fs::write(day.join("20990101T000000.000Z-n1-00000000.json"), serde_json::to_vec(&bad_name).unwrap()).unwrap();
    std::fs::write(day.join(".in-progress.tmp"), "ignored").unwrap();
    let unknown = ev(4, 4, "n1", "from_a_newer_agent", Some("web"));
    write(&t.root(), &unknown);

    once(&t, &[], &[]);

    let q = t.root().join("quarantine/events");
    let mut names = homelab_store::list_names(&q).unwrap();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    let reason = std::fs::read_to_string(q.join("garbage.json.reason")).unwrap();
    assert!(reason.contains("bad file name"), "{reason}");
    let reason = std::fs::read_to_string(q.join(format!("{}.reason", missing.file_name()))).unwrap();
    assert!(reason.contains("missing field `ts`"), "{reason}");
    assert_eq!(std::fs::read_to_string(q.join("garbage.json")).unwrap(), "{not json", "content kept");
    // The good and the unknown-type events stay; the dot-file is left alone.
    assert!(day.join(good.file_name()).exists() && day.join(unknown.file_name()).exists() && day.join(".in-progress.tmp").exists());
    assert_eq!(summary(&services(&t)), ["n1/web Healthy - 0"]);
    let hb: homelab_core::Heartbeat = DataRoot::open(t.root()).unwrap().read_heartbeat("observer").unwrap().unwrap();
    assert_eq!(hb.counters["quarantined"], 3);
    assert_eq!(hb.counters["unknown_type"], 1);
    assert_eq!(hb.counters["applied"], 1);
}

#[test]
fn replay_after_deleting_the_checkpoint_equals_incremental_folding() {
    let t = TempRoot::new();
    let kinds = ["service_healthy", "http_check_failed", "containers_not_running", "service_recovered", "node_heartbeat"];
    let mut n = 0u128;
    for round in 0..5 {
        for i in 0..40i64 {
            n += 1;
            let kind = kinds[(n as usize * 7 + round) % kinds.len()];
            let service = (kind != "node_heartbeat").then(|| ["a", "b", "c"][(n % 3) as usize]);
            write(&t.root(), &ev(round as i64 * 100 + i, n, ["n1", "n2"][(n % 2) as usize], kind, service));
        }
        once(&t, &[], &[]);
    }
    let incremental = (services(&t).services, nodes(&t).nodes);
    std::fs::remove_file(t.root().join("state/observer_checkpoint.json")).unwrap();
    std::fs::remove_dir_all(t.root().join("world")).unwrap();
    once(&t, &[], &[]);
    let replayed = (services(&t).services, nodes(&t).nodes);
    assert_eq!(incremental.0, replayed.0);
    assert_eq!(incremental.1.keys().collect::<Vec<_>>(), replayed.1.keys().collect::<Vec<_>>());
    for (k, v) in &incremental.1 {
        assert_eq!(v.last_seen, replayed.1[k].last_seen);
    }
}

#[test]
fn ghosts_are_pruned_only_with_hosts() {
    let t = TempRoot::new();
    t.write_host("n1", "services:\n  web: {}\n");
    write(&t.root(), &ev(0, 1, "n1", "service_healthy", Some("web")));
    write(&t.root(), &ev(0, 2, "n1", "service_healthy", Some("gone")));
    once(&t, &[], &[("GHOST_TTL", "10m")]);
    assert_eq!(summary(&services(&t)), ["n1/gone Healthy - 0", "n1/web Healthy - 0"], "no hosts: nothing pruned");
    once(&t, &["--hosts", t.hosts().to_str().unwrap()], &[("GHOST_TTL", "10m")]);
    assert_eq!(summary(&services(&t)), ["n1/web Healthy - 0"]);
    // A recent event keeps an undesired service.
    write(&t.root(), &ev(3590, 3, "n1", "service_healthy", Some("gone")));
    once(&t, &["--hosts", t.hosts().to_str().unwrap()], &[("GHOST_TTL", "10m")]);
    assert_eq!(summary(&services(&t)), ["n1/gone Healthy - 0", "n1/web Healthy - 0"]);
}

#[test]
fn retention_deletes_old_days_and_events_that_old_are_quarantined_not_dropped() {
    let t = TempRoot::new();
    let mut old = ev(0, 1, "n1", "service_unhealthy", Some("web"));
    old.ts = chrono::Utc::now() - chrono::Duration::days(20);
    write(&t.root(), &old);
    write(&t.root(), &ev(10, 3, "n1", "service_healthy", Some("web")));
    once(&t, &[], &[]);
    assert!(!t.root().join("events").join(old.day()).exists(), "a day past retention is deleted");
    let reason = std::fs::read_to_string(t.root().join("quarantine/events").join(format!("{}.reason", old.file_name()))).unwrap();
    assert!(reason.starts_with("too_old: "), "{reason}");
    assert_eq!(summary(&services(&t)), ["n1/web Healthy - 0"]);
    // The applied-files record of a deleted day goes with it.
    once(&t, &["--hosts", t.hosts().to_str().unwrap()], &[]);
    let record: Vec<_> = std::fs::read_dir(t.root().join("state/observer/applied")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(record, [std::ffi::OsString::from(at(10).format("%Y-%m-%d").to_string())]);
}

#[test]
fn nodes_go_stale_after_the_threshold() {
    let t = TempRoot::new();
    let mut fresh = ev(0, 1, "fresh", "node_heartbeat", None);
    fresh.ts = chrono::Utc::now();
    write(&t.root(), &fresh);
    write(&t.root(), &ev(0, 2, "old", "node_heartbeat", None));
    once(&t, &[], &[("NODE_STALE_AFTER", "5m")]);
    let n = nodes(&t);
    assert_eq!(n.nodes["fresh"].status, homelab_core::NodeStatus::Up);
    assert_eq!(n.nodes["old"].status, homelab_core::NodeStatus::Stale);
}

#[test]
fn unreadable_root_is_a_clear_error() {
    let out = Command::new(BIN).args(["--once", "--root", "/proc/definitely/not/here"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/definitely/not/here"), "{err}");
}
