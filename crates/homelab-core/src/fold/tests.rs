//! Table tests of the fold: each row is a sequence of events and the world it should leave.

use super::*;
use crate::world::DiskLevel;
use proptest::prelude::*;

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_780_000_000 + secs, 0).unwrap()
}

fn ev(secs: i64, n: u128, node: &str, kind: &str, service: Option<&str>) -> Event {
    Event {
        id: Uuid::from_u128(n),
        ts: at(secs),
        node: node.into(),
        kind: kind.into(),
        service: service.map(Into::into),
        detail: None,
        data: None,
    }
}

/// Folds `events` (in the given order) and returns a one-line rendering per service:
/// `node/service status reason failures since`.
fn check(events: &[Event], expect: &[&str], expect_outcomes: &[FoldOutcome]) {
    let mut cp = Checkpoint::new();
    let outcomes: Vec<_> = events.iter().map(|e| cp.apply(&e.node, e)).collect();
    let mut got = Vec::new();
    for (node, services) in &cp.world.services {
        for (name, s) in services {
            got.push(format!(
                "{node}/{name} {:?} {} failures={} since={}",
                s.status,
                s.reason.as_deref().unwrap_or("-"),
                s.consecutive_failures,
                s.since.timestamp() - 1_780_000_000
            ));
        }
    }
    assert_eq!(got, expect, "world");
    assert_eq!(outcomes, expect_outcomes, "outcomes");
}

use FoldOutcome::{Applied as A, Skipped as S, UnknownType as U};

#[test]
fn healthy_service_appears() {
    check(&[ev(0, 1, "n1", "service_healthy", Some("web"))], &["n1/web Healthy - failures=0 since=0"], &[A]);
}

#[test]
fn failures_count_up_and_reset_on_recovery() {
    check(
        &[
            ev(0, 1, "n1", "service_healthy", Some("web")),
            ev(10, 2, "n1", "http_check_failed", Some("web")),
            ev(20, 3, "n1", "containers_not_running", Some("web")),
        ],
        &["n1/web Unhealthy containers_not_running failures=2 since=10"],
        &[A, A, A],
    );
    check(
        &[
            ev(10, 2, "n1", "http_check_failed", Some("web")),
            ev(20, 3, "n1", "service_recovered", Some("web")),
        ],
        &["n1/web Healthy - failures=0 since=20"],
        &[A, A],
    );
}

#[test]
fn late_older_event_of_a_node_is_skipped() {
    check(
        &[
            ev(20, 2, "n1", "service_healthy", Some("web")),
            ev(10, 1, "n1", "http_check_failed", Some("web")),
        ],
        &["n1/web Healthy - failures=0 since=20"],
        &[A, S],
    );
}

#[test]
fn same_event_twice_is_skipped() {
    let e = ev(5, 1, "n1", "port_unreachable", Some("db"));
    check(&[e.clone(), e], &["n1/db Unhealthy port_unreachable failures=1 since=5"], &[A, S]);
}

#[test]
fn same_ts_orders_by_id() {
    check(
        &[
            ev(5, 1, "n1", "port_unreachable", Some("db")),
            ev(5, 2, "n1", "service_healthy", Some("db")),
            ev(5, 1, "n1", "port_unreachable", Some("db")),
        ],
        &["n1/db Healthy - failures=0 since=5"],
        &[A, A, S],
    );
}

#[test]
fn nodes_do_not_hold_each_other_back() {
    check(
        &[
            ev(100, 1, "n1", "service_healthy", Some("web")),
            ev(5, 2, "n2", "service_unhealthy", Some("web")),
        ],
        &["n1/web Healthy - failures=0 since=100", "n2/web Unhealthy service_unhealthy failures=1 since=5"],
        &[A, A],
    );
}

#[test]
fn unknown_type_is_counted_and_is_a_sign_of_life() {
    let mut cp = Checkpoint::new();
    assert_eq!(cp.apply("n1", &ev(7, 1, "n1", "from_the_future", Some("web"))), U);
    assert!(cp.world.services.is_empty());
    assert_eq!(cp.world.nodes["n1"].last_seen, Some(at(7)));
    assert_eq!(cp.counters.unknown_type, 1);
}

#[test]
fn node_events_set_facts() {
    let mut cp = Checkpoint::new();
    let mut hb = ev(1, 1, "n1", "node_heartbeat", None);
    hb.data = Some(serde_json::json!({"agent_version": "1.2.3", "uptime_secs": 99, "disks": [{"mount": "/", "used_pct": 40}]}));
    let mut dp = ev(2, 2, "n1", "disk_pressure", None);
    dp.data = Some(serde_json::json!({"level": "high"}));
    cp.apply("n1", &hb);
    cp.apply("n1", &dp);
    let n = &cp.world.nodes["n1"];
    assert_eq!(n.agent_version.as_deref(), Some("1.2.3"));
    assert_eq!(n.uptime_secs, Some(99));
    assert_eq!(n.disk_pressure, Some(DiskLevel::High));
    assert_eq!(n.last_seen, Some(at(2)));
}

#[test]
fn stale_after_threshold() {
    let facts = NodeFacts { last_seen: Some(at(0)), ..Default::default() };
    let d = std::time::Duration::from_secs(90);
    assert_eq!(World::node_status(&facts, at(90), d), crate::NodeStatus::Up);
    assert_eq!(World::node_status(&facts, at(91), d), crate::NodeStatus::Stale);
    assert_eq!(World::node_status(&NodeFacts::default(), at(0), d), crate::NodeStatus::Stale);
}

#[test]
fn ghosts_pruned_only_when_undesired_and_quiet() {
    let mut cp = Checkpoint::new();
    cp.apply("n1", &ev(0, 1, "n1", "service_healthy", Some("old")));
    cp.apply("n1", &ev(0, 2, "n1", "service_healthy", Some("kept")));
    cp.apply("n1", &ev(3500, 3, "n1", "service_healthy", Some("recent")));
    let desired = [("n1".to_string(), ["kept".to_string()].into_iter().collect())].into_iter().collect();
    let view = cp.world.without_ghosts(&desired, at(3700), std::time::Duration::from_secs(3600));
    let names: Vec<_> = view.services["n1"].keys().cloned().collect();
    assert_eq!(names, ["kept", "recent"]);
    assert_eq!(cp.world.services["n1"].len(), 3, "the fold keeps them: replay stays equal");
}

const TYPES: &[&str] = &["service_healthy", "http_check_failed", "containers_not_running", "node_heartbeat", "something_new"];

fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..50, 0usize..3, 0usize..TYPES.len(), 0usize..3), 1..120).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (t, node, kind, svc))| {
                let service = (TYPES[kind] != "node_heartbeat").then(|| ["a", "b", "c"][svc]);
                ev(t, i as u128 + 1, ["n0", "n1", "n2"][node], TYPES[kind], service)
            })
            .collect()
    })
}

proptest! {
    /// Folding in batches with a checkpoint round-trip (a restart) between batches gives the
    /// same checkpoint as one replay of everything, as long as each node's events arrive in
    /// order across batches (the agent writes them in order).
    #[test]
    fn incremental_with_restarts_equals_replay(events in arb_events(), cuts in prop::collection::vec(0usize..120, 0..6)) {
        let mut all: Vec<(String, Event)> = events.iter().map(|e| (e.node.clone(), e.clone())).collect();
        sort_events(&mut all);

        let mut replay = Checkpoint::new();
        for (node, e) in &all { replay.apply(node, e); }

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(all.len())).collect();
        cuts.sort();
        let mut cp = Checkpoint::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([all.len()]) {
            let mut batch: Vec<_> = all[start..cut].to_vec();
            batch.reverse(); // arrival order within a batch does not matter: batches are sorted
            sort_events(&mut batch);
            for (node, e) in &batch { cp.apply(node, e); }
            let bytes = serde_json::to_vec(&cp).unwrap();
            cp = serde_json::from_slice(&bytes).unwrap();
            start = cut;
        }
        prop_assert_eq!(&cp.world, &replay.world);
        prop_assert_eq!(&cp.cursors, &replay.cursors);
    }
}
