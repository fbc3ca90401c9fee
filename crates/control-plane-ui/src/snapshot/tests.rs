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

fn entry(
    node: &str,
    service: Option<&str>,
    kind: homelab_core::plan::DriftKind,
    decision: homelab_core::drift::NextStep,
    action: Option<&str>,
    until: Option<&str>,
) -> homelab_core::drift::DriftEntry {
    homelab_core::drift::DriftEntry {
        node: node.into(),
        service: service.map(Into::into),
        kind,
        trigger: "containers_not_running".into(),
        root_cause: None,
        since: Some(ts("2026-05-27T11:50:00.000Z")),
        decision,
        reason: format!("{} because of a test", decision.as_str()),
        action_id: action.map(Into::into),
        until: until.map(ts),
    }
}

/// Drift is the supervisor's file, shown as it is: every field, in its order, never recomputed
/// from world state (here world says everything is fine and hosts/ is unknown).
#[test]
fn drift_is_the_file_verbatim() {
    use homelab_core::drift::{DriftFile, NextStep};
    use homelab_core::plan::DriftKind;
    let now = ts(NOW);
    let w = world(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy"]);
    let file = DriftFile {
        generated_at: ts("2026-05-27T11:59:58.000Z"),
        drifts: vec![
            entry(
                "edge-1",
                Some("mqtt"),
                DriftKind::UnhealthyService,
                NextStep::RemediationExhausted,
                Some("redeploy-edge-1-mqtt"),
                Some("2026-05-27T12:14:00.000Z"),
            ),
            entry("edge-1", Some("z2m"), DriftKind::MissingService, NextStep::WaitingGrace, None, Some("2026-05-27T12:01:00.000Z")),
            entry("edge-2", None, DriftKind::NodeUnreachable, NextStep::NodeUnreachable, None, None),
        ],
    };
    let parts = Parts {
        services_file: Some(w.services_file(now)),
        nodes_file: Some(w.nodes_file(now, Duration::from_secs(90))),
        drift_file: Some(file),
        ..Default::default()
    };
    let snap = Snapshot::from_parts(parts, Duration::from_secs(90), now);
    let s = &snap.summary;
    assert_eq!(s.drift_report.state, "reported");
    assert_eq!(s.drift_report.generated_at.as_deref(), Some("2026-05-27T11:59:58.000Z"));
    assert_eq!(s.counts.drift, 3);
    let got: Vec<String> = s.drift.iter().map(|d| format!("{}/{:?} {} {} {:?} {:?}", d.node, d.service, d.kind, d.decision, d.action_id, d.until)).collect();
    assert_eq!(
        got,
        [
            "edge-1/Some(\"mqtt\") unhealthy_service remediation_exhausted Some(\"redeploy-edge-1-mqtt\") Some(\"2026-05-27T12:14:00.000Z\")",
            "edge-1/Some(\"z2m\") missing_service waiting_grace None Some(\"2026-05-27T12:01:00.000Z\")",
            "edge-2/None node_unreachable node_unreachable None None",
        ]
    );
    assert!(s.drift[0].retryable() && !s.drift[1].retryable());
    let json = serde_json::to_value(&s.drift[0]).unwrap();
    for f in ["node", "service", "kind", "trigger", "root_cause", "since", "decision", "reason", "action_id", "until"] {
        assert!(json.get(f).is_some(), "drift entry lacks {f}: {json}");
    }
    assert!(snap.markdown.contains("- edge-1/mqtt: unhealthy_service (containers_not_running) since 2026-05-27T11:50:00.000Z — next: remediation_exhausted, action: redeploy-edge-1-mqtt, until 2026-05-27T12:14:00.000Z: remediation_exhausted because of a test"), "{}", snap.markdown);
}

/// Before the supervisor wrote drift.json the view says so and shows no drift of its own, even
/// where world state is obviously unhealthy.
#[test]
fn no_drift_file_says_the_supervisor_has_not_reported() {
    let now = ts(NOW);
    let w = world(&["edge-1 seen 11:59:30", "edge-1/mqtt unhealthy containers_not_running"]);
    let parts = Parts { services_file: Some(w.services_file(now)), nodes_file: Some(w.nodes_file(now, Duration::from_secs(90))), ..Default::default() };
    let snap = Snapshot::from_parts(parts, Duration::from_secs(90), now);
    assert!(snap.summary.drift.is_empty());
    assert_eq!(snap.summary.drift_report.state, "not_reported");
    assert!(snap.summary.drift_report.message.contains("has not reported yet"), "{:?}", snap.summary.drift_report);
    assert!(snap.markdown.contains("The supervisor has not reported yet"), "{}", snap.markdown);
}

/// A node whose desired state is unknown (broken host file, no last good version) never reads
/// as "not desired"; a known node's undesired service does.
#[test]
fn unknown_desired_state_is_not_not_desired() {
    let now = ts(NOW);
    let w = world(&["edge-1 seen 11:59:30", "edge-1/mqtt healthy", "edge-1/extra healthy", "edge-2 seen 11:59:30", "edge-2/web healthy"]);
    let f = parse_host_file("hosts/edge-1/services.yaml", "edge-1", "services:\n  mqtt: {}\n").unwrap();
    let mut d = DesiredState::default();
    d.hosts.insert("edge-1".into(), f.spec);
    let parts = Parts {
        services_file: Some(w.services_file(now)),
        nodes_file: Some(w.nodes_file(now, Duration::from_secs(90))),
        desired: Some(d),
        unknown_nodes: ["edge-2".to_owned()].into(),
        ..Default::default()
    };
    let s = Snapshot::from_parts(parts, Duration::from_secs(90), now).summary;
    assert!(s.services["edge-1"]["mqtt"].desired);
    assert!(!s.services["edge-1"]["extra"].desired);
    assert!(s.services["edge-2"]["web"].desired, "unknown desired state");
    assert!(s.nodes["edge-2"].desired);
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
