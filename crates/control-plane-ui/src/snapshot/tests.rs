//! Drift as a table of situations, and the digest.

use super::*;
use homelab_core::desired::parse_host_file;
use homelab_core::world::{NodeFacts, ServiceState, World};

fn ts(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
}

const NOW: &str = "2026-05-27T12:00:00.000Z";

/// A world from lines like `edge-1 seen 11:59:30`, `edge-1/mqtt unhealthy containers_not_running`.
fn world(lines: &[&str]) -> World {
    let mut w = World::default();
    for l in lines {
        let parts: Vec<&str> = l.split_whitespace().collect();
        match parts.as_slice() {
            [node, "seen", at] => w.nodes.entry(node.to_string()).or_default().last_seen = Some(ts(&format!("2026-05-27T{at}.000Z"))),
            [node, "disk", "high"] => w.nodes.entry(node.to_string()).or_insert_with(NodeFacts::default).disk_pressure = Some(DiskLevel::High),
            [path, status, rest @ ..] => {
                let (node, svc) = path.split_once('/').unwrap();
                let unhealthy = *status == "unhealthy";
                w.services.entry(node.into()).or_default().insert(
                    svc.into(),
                    ServiceState {
                        status: if unhealthy { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy },
                        reason: rest.first().map(|r| r.to_string()),
                        detail: None,
                        since: ts(NOW),
                        last_event_at: ts(NOW),
                        last_event_id: uuid::Uuid::nil(),
                        consecutive_failures: unhealthy as u32,
                    },
                );
            }
            _ => panic!("bad line {l}"),
        }
    }
    w
}

const HOST: &str = "services:\n  mqtt:\n    containers: [mqtt]\n  z2m:\n    depends_on: [mqtt]\n  off:\n    monitor: false\n";

fn check(world_lines: &[&str], with_hosts: bool, expect: &[&str]) {
    let w = world(world_lines);
    let now = ts(NOW);
    let desired = with_hosts.then(|| {
        let f = parse_host_file("hosts/edge-1/services.yaml", "edge-1", HOST).unwrap();
        let mut d = DesiredState::default();
        d.hosts.insert("edge-1".into(), f.spec);
        d
    });
    let parts = Parts {
        services_file: Some(w.services_file(now)),
        nodes_file: Some(w.nodes_file(now, Duration::from_secs(90))),
        desired,
        ..Default::default()
    };
    let snap = Snapshot::from_parts(parts, Duration::from_secs(90), now);
    let got: Vec<String> = snap
        .summary
        .drift
        .iter()
        .map(|d| {
            let what = d.service.as_ref().map_or(d.node.clone(), |s| format!("{}/{s}", d.node));
            let rc = d.root_cause.as_ref().map(|r| format!(" root_cause={r}")).unwrap_or_default();
            format!("{what} {} {}{rc}", d.kind, d.trigger)
        })
        .collect();
    assert_eq!(got, expect, "world {world_lines:?}");
}

#[test]
fn drift_table() {
    // Everything healthy: no drift.
    check(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy", "edge-1/z2m healthy"], true, &[]);
    // A desired service absent from world on an up node is missing.
    check(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy"], true, &["edge-1/z2m missing_service missing"]);
    // The dependency is down too: the dependent's drift names it as root cause.
    check(
        &["edge-1 seen 11:59:30", "edge-1/mqtt unhealthy containers_not_running", "edge-1/z2m unhealthy http_check_failed"],
        true,
        &["edge-1/mqtt unhealthy_service containers_not_running", "edge-1/z2m unhealthy_service http_check_failed root_cause=mqtt"],
    );
    // A stale node is one node_unreachable drift, no per-service drift (bootstrap flood guard).
    check(&["edge-1 seen 11:00:00", "edge-1/mqtt unhealthy containers_not_running"], true, &["edge-1 node_unreachable stale"]);
    // Never seen at all.
    check(&[], true, &["edge-1 node_unreachable never_seen"]);
    // Disk pressure high on an up node.
    check(&["edge-1 seen 11:59:30", "edge-1 disk high", "edge-1/mqtt healthy", "edge-1/z2m healthy"], true, &["edge-1 disk_pressure high"]);
    // Without hosts/: unhealthy services are drift, nothing is missing.
    check(&["edge-2 seen 11:59:30", "edge-2/web unhealthy port_unreachable"], false, &["edge-2/web unhealthy_service port_unreachable"]);
    // monitor: false services are never drift.
    check(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy", "edge-1/z2m healthy", "edge-1/off unhealthy check_error"], true, &[]);
}

#[test]
fn etag_follows_content_and_digest_lists_problems() {
    let w = world(&["edge-1 seen 11:59:30", "edge-1/mqtt unhealthy containers_not_running", "edge-1/z2m healthy"]);
    let now = ts(NOW);
    let build = |w: &World| {
        Snapshot::from_parts(
            Parts { services_file: Some(w.services_file(now)), nodes_file: Some(w.nodes_file(now, Duration::from_secs(90))), ..Default::default() },
            Duration::from_secs(90),
            now,
        )
    };
    let a = build(&w);
    assert_eq!(a.etag, build(&w).etag, "same content, same ETag");
    let w2 = world(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy", "edge-1/z2m healthy"]);
    assert_ne!(a.etag, build(&w2).etag);
    assert!(a.markdown.contains("- edge-1/mqtt: containers_not_running since"), "{}", a.markdown);
    assert!(!a.markdown.contains("edge-1/z2m:"), "healthy services are counted, not listed");
    assert!(a.markdown.contains("Services: 2 (1 healthy, 1 unhealthy)"));
}
