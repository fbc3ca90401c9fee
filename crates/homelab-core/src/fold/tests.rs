//! Table tests of the fold: each row is a sequence of events and the world it should leave.

use super::*;
use crate::world::{DiskLevel, NodeFacts};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_780_000_000 + secs, 0).unwrap()
}

fn ev(secs: i64, n: u128, node: &str, kind: &str, service: Option<&str>) -> Event {
    Event { id: Uuid::from_u128(n), ts: at(secs), node: node.into(), kind: kind.into(), service: service.map(Into::into), detail: None, data: None }
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

use FoldOutcome::{Applied as A, Duplicate as D, Late as L, UnknownType as U};

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
        &[ev(10, 2, "n1", "http_check_failed", Some("web")), ev(20, 3, "n1", "service_recovered", Some("web"))],
        &["n1/web Healthy - failures=0 since=20"],
        &[A, A],
    );
}

/// Late events never override newer state, but still count for what they can change.
#[test]
fn late_events_table() {
    // A late failure older than the newest success changes nothing but the counter.
    check(
        &[ev(20, 2, "n1", "service_healthy", Some("web")), ev(10, 1, "n1", "http_check_failed", Some("web"))],
        &["n1/web Healthy - failures=0 since=20"],
        &[A, L],
    );
    // A late failure inside an unhealthy streak adds to it and moves `since` back.
    check(
        &[ev(0, 1, "n1", "service_healthy", Some("web")), ev(20, 3, "n1", "port_unreachable", Some("web")), ev(10, 2, "n1", "http_check_failed", Some("web"))],
        &["n1/web Unhealthy port_unreachable failures=2 since=10"],
        &[A, A, L],
    );
    // A late success inside an unhealthy streak cuts it: only failures after it count.
    check(
        &[
            ev(10, 1, "n1", "http_check_failed", Some("web")),
            ev(30, 3, "n1", "http_check_failed", Some("web")),
            ev(20, 2, "n1", "service_healthy", Some("web")),
        ],
        &["n1/web Unhealthy http_check_failed failures=1 since=30"],
        &[A, A, L],
    );
    // A late event of a service never seen before creates it.
    check(
        &[ev(100, 1, "n1", "service_healthy", Some("web")), ev(40, 2, "n1", "port_unreachable", Some("db"))],
        &["n1/db Unhealthy port_unreachable failures=1 since=40", "n1/web Healthy - failures=0 since=100"],
        &[A, A],
    );
}

#[test]
fn same_event_twice_is_a_duplicate() {
    let e = ev(5, 1, "n1", "port_unreachable", Some("db"));
    check(&[e.clone(), e], &["n1/db Unhealthy port_unreachable failures=1 since=5"], &[A, D]);
    let older = ev(1, 1, "n1", "port_unreachable", Some("db"));
    let newer = ev(5, 2, "n1", "port_unreachable", Some("db"));
    check(&[older.clone(), newer, older], &["n1/db Unhealthy port_unreachable failures=2 since=1"], &[A, A, D]);
}

/// Same-instant events (one Alertmanager webhook, two writers of one node) all count.
#[test]
fn same_instant_events_are_all_folded() {
    let mut events = vec![ev(5, u128::MAX, "n1", "service_healthy", Some("s0"))];
    events.extend((1..8).map(|i| ev(5, i, "n1", "http_check_failed", Some(&format!("s{i}")))));
    let mut cp = Checkpoint::new();
    for e in &events {
        assert_eq!(cp.apply("n1", e), A);
    }
    assert_eq!(cp.world.services["n1"].len(), 8);
}

#[test]
fn same_ts_orders_by_id() {
    check(
        &[ev(5, 1, "n1", "port_unreachable", Some("db")), ev(5, 2, "n1", "service_healthy", Some("db")), ev(5, 1, "n1", "port_unreachable", Some("db"))],
        &["n1/db Healthy - failures=0 since=5"],
        &[A, A, D],
    );
}

#[test]
fn nodes_do_not_hold_each_other_back() {
    check(
        &[ev(100, 1, "n1", "service_healthy", Some("web")), ev(5, 2, "n2", "service_unhealthy", Some("web"))],
        &["n1/web Healthy - failures=0 since=100", "n2/web Unhealthy service_unhealthy failures=1 since=5"],
        &[A, A],
    );
}

/// `consecutive_failures` stops at NEGATIVE_KEEP, in any order.
#[test]
fn failures_saturate() {
    let n = NEGATIVE_KEEP as i64 + 10;
    let mut events: Vec<_> = (0..n).map(|i| ev(i, i as u128 + 1, "n1", "http_check_failed", Some("web"))).collect();
    let mut cp = Checkpoint::new();
    for e in &events {
        cp.apply("n1", e);
    }
    assert_eq!(cp.world.services["n1"]["web"].consecutive_failures, NEGATIVE_KEEP as u32);
    assert_eq!(cp.world.services["n1"]["web"].since, at(0));
    events.reverse();
    let mut rev = Checkpoint::new();
    for e in &events {
        rev.apply("n1", e);
    }
    assert_eq!(rev.world, cp.world);
}

#[test]
fn unknown_type_is_counted_and_is_a_sign_of_life() {
    let mut cp = Checkpoint::new();
    assert_eq!(cp.apply("n1", &ev(7, 1, "n1", "from_the_future", Some("web"))), U);
    assert!(cp.world.services.is_empty());
    assert_eq!(cp.world.nodes["n1"].last_seen, Some(at(7)));
    assert_eq!(cp.counters.unknown_type, 1);
}

/// An alert says something about a service, not that the node's agent is alive.
#[test]
fn alerts_are_not_a_sign_of_life() {
    let mut cp = Checkpoint::new();
    let mut alert = ev(5, 1, "ghost", "service_unhealthy", Some("web"));
    alert.data = Some(serde_json::json!({"source": "alertmanager", "labels": {"alertname": "Down"}}));
    assert_eq!(cp.apply("ghost", &alert), A);
    assert!(!cp.world.nodes.contains_key("ghost"), "no node from alerts alone");
    assert_eq!(cp.world.services["ghost"]["web"].status, crate::ServiceStatus::Unhealthy);
    cp.apply("ghost", &ev(3, 2, "ghost", "node_heartbeat", None));
    cp.apply("ghost", &{
        let mut resolved = ev(9, 3, "ghost", "service_healthy", Some("web"));
        resolved.data = alert.data.clone();
        resolved
    });
    assert_eq!(cp.world.nodes["ghost"].last_seen, Some(at(3)), "only the agent's event counts");
    assert_eq!(cp.world.services["ghost"]["web"].status, crate::ServiceStatus::Healthy);
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

const TYPES: &[&str] = &["service_healthy", "http_check_failed", "containers_not_running", "node_heartbeat", "disk_pressure", "something_new"];

/// Random events over 3 nodes and 3 services with many ties: times from a small range, and
/// ids that repeat across times.
fn arb_events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..40, 0u128..6, 0usize..3, 0usize..TYPES.len(), 0usize..3, 0usize..3), 1..max).prop_map(|rows| {
        let mut seen = std::collections::BTreeSet::new();
        rows.into_iter()
            .filter_map(|(t, id, node, kind, svc, level)| {
                let service = (!matches!(TYPES[kind], "node_heartbeat" | "disk_pressure")).then(|| ["a", "b", "c"][svc]);
                let mut e = ev(t, id, ["n0", "n1", "n2"][node], TYPES[kind], service);
                let level = ["ok", "medium", "high"][level];
                match TYPES[kind] {
                    "node_heartbeat" => e.data = Some(serde_json::json!({"agent_version": format!("v{id}"), "uptime_secs": t, "disk_pressure": level})),
                    "disk_pressure" => e.data = Some(serde_json::json!({"level": level})),
                    _ => {}
                }
                // One event per key (ts, id, node): the key is an event's identity.
                seen.insert((t, id, node)).then_some(e)
            })
            .collect()
    })
}

/// At most `keep` events per (node, service): within the fold's memory, everything is exact.
fn within_memory(events: Vec<Event>, keep: usize) -> Vec<Event> {
    let mut per = BTreeMap::<(String, Option<String>), usize>::new();
    events
        .into_iter()
        .filter(|e| {
            let n = per.entry((e.node.clone(), e.service.clone())).or_default();
            *n += 1;
            e.service.is_none() || *n <= keep
        })
        .collect()
}

fn replay(events: &[Event]) -> Checkpoint {
    let mut all: Vec<(String, Event)> = events.iter().map(|e| (e.node.clone(), e.clone())).collect();
    sort_events(&mut all);
    let mut cp = Checkpoint::new();
    for (node, e) in &all {
        cp.apply(node, e);
    }
    cp
}

/// Folds `events` in the order given by `order` (indexes, repeats allowed: re-deliveries),
/// with a checkpoint round-trip (a restart) at each of `cuts`.
fn incremental(events: &[Event], order: &[usize], cuts: &[usize]) -> Checkpoint {
    let mut cp = Checkpoint::new();
    for (i, &at) in order.iter().enumerate() {
        if cuts.contains(&i) {
            cp = serde_json::from_slice(&serde_json::to_vec(&cp).unwrap()).unwrap();
        }
        let e = &events[at % events.len()];
        cp.apply(&e.node, e);
    }
    cp
}

/// A random arrival order: a permutation with some events delivered again.
fn arb_order() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    (Just((0..400).collect::<Vec<usize>>()).prop_shuffle(), prop::collection::vec(0usize..400, 0..20), prop::collection::vec(0usize..400, 0..6))
}

proptest! {
    /// Any arrival order, with re-deliveries and restarts in between, gives exactly the world
    /// (and fold memory) of one sorted replay.
    #[test]
    fn any_order_with_duplicates_and_restarts_equals_replay(events in arb_events(150), (perm, dups, cuts) in arb_order()) {
        let events = within_memory(events, POSITIVE_KEEP);
        let mut order: Vec<usize> = perm.into_iter().filter(|&i| i < events.len()).collect();
        for d in dups {
            order.insert(d % (order.len() + 1), d % events.len());
        }
        let want = replay(&events);
        let got = incremental(&events, &order, &cuts);
        prop_assert_eq!(&got.world, &want.world);
        prop_assert_eq!(&got.services, &want.services);
        prop_assert_eq!(&got.nodes, &want.nodes);
        let c = got.counters;
        prop_assert_eq!(c.applied + c.late + c.duplicate + c.unknown_type, order.len() as u64);
    }

    /// Beyond the fold's memory (long streaks cut by very late events), everything but `since`
    /// stays exact, and `since` never claims a streak began earlier than it did.
    #[test]
    fn long_streaks_stay_exact_but_since(events in arb_events(400), (perm, _dups, cuts) in arb_order()) {
        let order: Vec<usize> = perm.into_iter().filter(|&i| i < events.len()).collect();
        let want = replay(&events);
        let got = incremental(&events, &order, &cuts);
        prop_assert_eq!(&got.world.nodes, &want.world.nodes);
        for (node, services) in &want.world.services {
            for (name, w) in services {
                let g = &got.world.services[node][name];
                prop_assert_eq!(g.status, w.status);
                prop_assert_eq!(&g.reason, &w.reason);
                prop_assert_eq!(g.last_event_id, w.last_event_id);
                prop_assert_eq!(g.consecutive_failures, w.consecutive_failures);
                prop_assert!(g.since >= w.since && g.since <= g.last_event_at, "{node}/{name}: since {} vs {}", g.since, w.since);
            }
        }
    }
}
