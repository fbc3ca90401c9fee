//! The health gate in a running executor: a guarded action waits in approved/ with one history
//! note saying why, and runs as soon as world state allows it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use homelab_core::world::{NodeState, NodesFile, ServicesFile};
use homelab_core::{ActionState, ActionType, NodeStatus, ServiceState, ServiceStatus};
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for};
use tokio_util::sync::CancellationToken;

use crate::*;

/// Writes world state in which `node` is up (and nothing else is known).
pub fn world_up(root: &Path, node: &str) {
    write_world(root, node, &[]);
}

/// Writes world state: `node` up, with the given services and their health.
pub fn write_world(root: &Path, node: &str, services: &[(&str, bool)]) {
    let now = chrono::Utc::now();
    let nodes = NodesFile {
        generated_at: now,
        nodes: BTreeMap::from([(
            node.to_owned(),
            NodeState { last_seen: Some(now), status: NodeStatus::Up, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None },
        )]),
    };
    let per_node = services
        .iter()
        .map(|(name, healthy)| {
            let state = ServiceState {
                status: if *healthy { ServiceStatus::Healthy } else { ServiceStatus::Unhealthy },
                reason: (!healthy).then(|| "port_unreachable".to_owned()),
                detail: None,
                since: now,
                last_event_at: now,
                last_event_id: Default::default(),
                consecutive_failures: if *healthy { 0 } else { 1 },
            };
            ((*name).to_owned(), state)
        })
        .collect();
    let services = ServicesFile { generated_at: now, services: BTreeMap::from([(node.to_owned(), per_node)]) };
    DataRoot::open(root).unwrap().write_world(&services, &nodes).unwrap();
}

/// An executor daemon running in-process until dropped.
pub struct Daemon {
    rt: tokio::runtime::Runtime,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    pub fn start(mut cfg: control_plane_executor::Config) -> Daemon {
        cfg.once = false;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let stop = CancellationToken::new();
        let handle = Some(rt.spawn(control_plane_executor::run(cfg, stop.clone())));
        Daemon { rt, stop, handle }
    }

    pub fn stop(mut self) {
        self.stop.cancel();
        let handle = self.handle.take().unwrap();
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), handle).await })
            .expect("executor did not stop within 30s")
            .unwrap()
            .expect("executor failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[test]
fn guarded_action_waits_for_its_dependency_then_runs() {
    let t = TempRoot::new();
    t.write_host("edge", "services:\n  db: {}\n  app:\n    compose_dir: /srv/app\n    depends_on: [db]\n");
    write_world(&t.root(), "edge", &[("db", false)]);
    let action = approved(ActionType::Redeploy, "edge", Some("app"));
    approve(&t.root(), &action);

    let mut cfg = config(t.root(), t.hosts());
    cfg.dry_run = true;
    let daemon = Daemon::start(cfg);

    let waiting = |a: &homelab_core::Action| a.history.iter().filter(|h| h.note.as_deref().is_some_and(|n| n.starts_with("waiting:"))).count();
    let note = wait_for("the action to say why it waits", Duration::from_secs(20), || {
        let found = find(&t.root(), &action.id);
        (found.state == ActionState::Approved && waiting(&found.action) == 1).then(|| found.action.history.last().unwrap().note.clone().unwrap())
    });
    assert_eq!(note, "waiting: dependency db of app is unhealthy (port_unreachable)");

    // World state changes without fixing the dependency: re-evaluated, but no second note.
    write_world(&t.root(), "edge", &[("db", false), ("app", false)]);
    // Then the dependency recovers: the redeploy runs.
    write_world(&t.root(), "edge", &[("db", true), ("app", false)]);
    let done = wait_for("the redeploy to run", Duration::from_secs(20), || {
        let found = find(&t.root(), &action.id);
        (found.state == ActionState::Completed && found.action.result.is_some()).then_some(found.action)
    });
    daemon.stop();

    assert_eq!(waiting(&done), 1, "one note, not one per world change: {:#?}", done.history);
    assert!(done.result.unwrap().output.contains("would run `docker compose up -d --force-recreate` in /srv/app on node edge (local)"));
    let hb: homelab_core::Heartbeat = DataRoot::open(t.root()).unwrap().read_heartbeat("executor").unwrap().unwrap();
    assert_eq!(hb.counters["actions_completed"], 1);
    assert!(hb.counters["gate_waits"] >= 1);
}

#[test]
fn guarded_action_waits_outside_maintenance_windows() {
    let t = TempRoot::new();
    // A one-minute window twelve hours away from now is closed.
    let later = chrono::Utc::now() + chrono::Duration::hours(12);
    let start = later.format("%H:%M").to_string();
    let end = (later + chrono::Duration::minutes(1)).format("%H:%M").to_string();
    t.write_host("edge", &format!("maintenance_windows:\n  - {{ start: \"{start}\", end: \"{end}\" }}\nservices:\n  app:\n    compose_dir: /srv/app\n"));
    world_up(&t.root(), "edge");
    let action = approved(ActionType::Redeploy, "edge", Some("app"));
    approve(&t.root(), &action);
    let mut cfg = config(t.root(), t.hosts());
    cfg.dry_run = true;
    run_once(cfg);

    let found = ended(&t.root(), &action.id, ActionState::Approved);
    let note = found.history.last().unwrap().note.clone().unwrap();
    assert!(note.contains("outside the maintenance windows of node edge"), "{note}");
}

#[test]
fn a_waiting_action_runs_when_hosts_change_opens_the_gate() {
    let t = TempRoot::new();
    let later = chrono::Utc::now() + chrono::Duration::hours(12);
    let (start, end) = (later.format("%H:%M").to_string(), (later + chrono::Duration::minutes(1)).format("%H:%M").to_string());
    let services = "services:\n  app:\n    compose_dir: /srv/app\n";
    t.write_host("edge", &format!("maintenance_windows:\n  - {{ start: \"{start}\", end: \"{end}\" }}\n{services}"));
    world_up(&t.root(), "edge");
    let action = approved(ActionType::Redeploy, "edge", Some("app"));
    approve(&t.root(), &action);
    let mut cfg = config(t.root(), t.hosts());
    cfg.dry_run = true;
    cfg.rescan_interval = Duration::from_secs(3600); // the change must be seen through the notification
    let daemon = Daemon::start(cfg);

    wait_for("the action to wait for its window", Duration::from_secs(20), || {
        let found = find(&t.root(), &action.id);
        found.action.history.last().unwrap().note.as_deref().is_some_and(|n| n.contains("maintenance windows")).then_some(())
    });
    // The operator drops the window: the action runs without waiting for a rescan.
    t.write_host("edge", services);
    wait_for("the redeploy to run", Duration::from_secs(20), || (find(&t.root(), &action.id).state == ActionState::Completed).then_some(()));
    daemon.stop();
}
