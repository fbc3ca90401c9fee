//! The health gate in front of guarded actions: a pure decision over desired state, world state
//! and the time, so it can be tested as a table.
//!
//! A guarded action (redeploy, disk cleanup) starts only when its node is up, every service the
//! target depends on is healthy, and the node's maintenance windows (if it has any) are open.
//! Low-risk actions pass without looking.

use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Action, HostSpec, NodeStatus, Risk, ServiceStatus, Timestamp, window};

/// `Ok(())` when the action may start now, else the reason it waits, in words for the history.
pub fn check(action: &Action, host: &HostSpec, services: Option<&ServicesFile>, nodes: Option<&NodesFile>, now: Timestamp) -> Result<(), String> {
    if action.risk != Risk::Guarded {
        return Ok(());
    }
    let node = &action.node;
    match nodes.and_then(|n| n.nodes.get(node)) {
        Some(n) if n.status == NodeStatus::Up => {}
        Some(n) => {
            let seen = n.last_seen.map(homelab_core::rfc3339).unwrap_or_else(|| "never".into());
            return Err(format!("waiting: node {node} is stale in world state (last seen {seen})"));
        }
        None => return Err(format!("waiting: node {node} has not reported yet (not in world/nodes.json)")),
    }
    if let Some(service) = &action.service {
        let deps = host.services.get(service).map(|s| s.depends_on.as_slice()).unwrap_or_default();
        for dep in deps {
            match services.and_then(|s| s.services.get(node)).and_then(|s| s.get(dep)) {
                Some(s) if s.status == ServiceStatus::Healthy => {}
                Some(s) => {
                    let why = s.reason.as_deref().unwrap_or("unhealthy");
                    return Err(format!("waiting: dependency {dep} of {service} is unhealthy ({why})"));
                }
                None => return Err(format!("waiting: dependency {dep} of {service} has no health report yet")),
            }
        }
    }
    if !window::is_open(&host.maintenance_windows, now) {
        let shown: Vec<String> = host
            .maintenance_windows
            .iter()
            .map(|w| {
                let days = if w.days.is_empty() { "daily".to_owned() } else { w.days.join(",") };
                format!("{days} {}-{}", w.start, w.end)
            })
            .collect();
        return Err(format!("waiting: outside the maintenance windows of node {node} ({} UTC)", shown.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use homelab_core::desired::MaintenanceWindow;
    use homelab_core::world::NodeState;
    use homelab_core::{ActionState, ActionType, ServiceSpec, ServiceState};

    use super::*;

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    /// The situation a case describes, in the operator's words.
    struct Situation {
        action: ActionType,
        node_up: Option<bool>,
        /// (dependency, healthy?) as world state reports them; a dependency left out has no report.
        deps_in_world: &'static [(&'static str, bool)],
        windows: &'static [(&'static str, &'static str)],
        now: &'static str,
    }

    fn check_case(s: &Situation) -> Result<(), String> {
        let now = at(s.now);
        let mut services = BTreeMap::new();
        services.insert(
            "z2m".to_owned(),
            ServiceSpec {
                compose_dir: None,
                containers: vec![],
                depends_on: vec!["mqtt".into()],
                monitor: true,
                checks: vec![],
                verify_window_secs: None,
                rollback: true,
            },
        );
        let host = HostSpec {
            node: "edge-1".into(),
            ssh: None,
            compose_command: vec!["docker".into(), "compose".into()],
            disk: None,
            maintenance_windows: s.windows.iter().map(|(a, b)| MaintenanceWindow { days: vec![], start: (*a).into(), end: (*b).into() }).collect(),
            services,
            groups: vec![],
        };
        let nodes = s.node_up.map(|up| NodesFile {
            generated_at: now,
            nodes: [(
                "edge-1".to_owned(),
                NodeState {
                    last_seen: Some(now),
                    status: if up { NodeStatus::Up } else { NodeStatus::Stale },
                    disk_pressure: None,
                    disks: None,
                    agent_version: None,
                    uptime_secs: None,
                },
            )]
            .into(),
        });
        let world = ServicesFile {
            generated_at: now,
            services: [(
                "edge-1".to_owned(),
                s.deps_in_world
                    .iter()
                    .map(|(name, healthy)| {
                        let st = ServiceState {
                            status: if *healthy { ServiceStatus::Healthy } else { ServiceStatus::Unhealthy },
                            reason: (!healthy).then(|| "port_unreachable".to_owned()),
                            detail: None,
                            since: now,
                            last_event_at: now,
                            last_event_id: Default::default(),
                            consecutive_failures: 0,
                        };
                        ((*name).to_owned(), st)
                    })
                    .collect(),
            )]
            .into(),
        };
        let service = (s.action != ActionType::DiskCleanup).then(|| "z2m".to_owned());
        let action = Action {
            id: s.action.id("edge-1", service.as_deref()),
            kind: s.action,
            risk: s.action.risk(),
            node: "edge-1".into(),
            service,
            drift: "unhealthy_service".into(),
            trigger: "port_unreachable".into(),
            root_cause: None,
            state: ActionState::Approved,
            created_at: now,
            updated_at: now,
            history: vec![],
            result: None,
            generation: None,
        };
        check(&action, &host, Some(&world), nodes.as_ref(), now)
    }

    #[test]
    fn gate_table() {
        use ActionType::*;
        // (situation, Ok or the words the reason must contain)
        let cases: &[(Situation, Result<(), &str>)] = &[
            // A low-risk restart never waits, even with the node stale and the broker down.
            (
                Situation { action: ContainerRestart, node_up: Some(false), deps_in_world: &[("mqtt", false)], windows: &[], now: "2026-11-25T12:00:00Z" },
                Ok(()),
            ),
            // Redeploy with the node up and its broker healthy, no windows: go.
            (Situation { action: Redeploy, node_up: Some(true), deps_in_world: &[("mqtt", true)], windows: &[], now: "2026-11-25T12:00:00Z" }, Ok(())),
            (
                Situation { action: Redeploy, node_up: Some(false), deps_in_world: &[("mqtt", true)], windows: &[], now: "2026-11-25T12:00:00Z" },
                Err("node edge-1 is stale"),
            ),
            (
                Situation { action: Redeploy, node_up: None, deps_in_world: &[("mqtt", true)], windows: &[], now: "2026-11-25T12:00:00Z" },
                Err("has not reported yet"),
            ),
            (
                Situation { action: Redeploy, node_up: Some(true), deps_in_world: &[("mqtt", false)], windows: &[], now: "2026-11-25T12:00:00Z" },
                Err("dependency mqtt of z2m is unhealthy (port_unreachable)"),
            ),
            (
                Situation { action: Redeploy, node_up: Some(true), deps_in_world: &[], windows: &[], now: "2026-11-25T12:00:00Z" },
                Err("dependency mqtt of z2m has no health report"),
            ),
            // Inside the nightly window: go; at noon: wait.
            (
                Situation {
                    action: Redeploy,
                    node_up: Some(true),
                    deps_in_world: &[("mqtt", true)],
                    windows: &[("02:00", "05:00")],
                    now: "2026-11-25T03:00:00Z",
                },
                Ok(()),
            ),
            (
                Situation {
                    action: Redeploy,
                    node_up: Some(true),
                    deps_in_world: &[("mqtt", true)],
                    windows: &[("02:00", "05:00")],
                    now: "2026-11-25T12:00:00Z",
                },
                Err("outside the maintenance windows of node edge-1 (daily 02:00-05:00 UTC)"),
            ),
            // Disk cleanup has no service, so only the node and the windows count.
            (Situation { action: DiskCleanup, node_up: Some(true), deps_in_world: &[], windows: &[], now: "2026-11-25T12:00:00Z" }, Ok(())),
            (Situation { action: DiskCleanup, node_up: Some(false), deps_in_world: &[], windows: &[], now: "2026-11-25T12:00:00Z" }, Err("stale")),
        ];
        for (i, (situation, want)) in cases.iter().enumerate() {
            let got = check_case(situation);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(words), Err(reason)) if reason.contains(words) => {}
                _ => panic!("case {i}: expected {want:?}, got {got:?}"),
            }
        }
    }
}
