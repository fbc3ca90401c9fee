//! `--once` passes: proposals, idempotence, auto-cancel, the flood guard, root cause, dry run.

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::{EDGE, WorldBuilder, actions, files_below, ids, once, run};

fn edge_up() -> WorldBuilder {
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt", "web"])
}

#[test]
fn unhealthy_service_gets_a_pending_action_once() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("containers_not_running")).write(&t);
    let out = once(&t);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 action(s) created"), "{out:?}");

    let pending = actions(&t, ActionState::Pending);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let a = &pending[0];
    assert_eq!(a.id, "container-restart-edge-1-web");
    assert_eq!(serde_json::to_value(a.kind).unwrap(), "container_restart");
    assert_eq!(serde_json::to_value(a.risk).unwrap(), "low");
    assert_eq!((a.drift.as_str(), a.trigger.as_str(), a.service.as_deref()), ("unhealthy_service", "containers_not_running", Some("web")));
    assert_eq!(a.history[0].by, "supervisor");

    // A second pass writes nothing new: same single file, same content.
    let path = t.root().join("actions/pending/container-restart-edge-1-web.json");
    let before = std::fs::read(&path).unwrap();
    once(&t);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(files_below(&t.root().join("actions")).iter().filter(|f| !f.starts_with(".locks")).count(), 1);

    let hb: serde_json::Value = DataRoot::open(t.root()).unwrap().read_heartbeat("supervisor").unwrap().unwrap();
    assert_eq!(hb["daemon"], "supervisor");
    assert!(t.root().join("state/supervisor.json").is_file());
}

#[test]
fn pending_is_cancelled_when_the_drift_resolves_but_approved_is_kept() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("containers_not_running")).service("edge-1", "zigbee2mqtt", Some("http_check_failed")).write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-web", "redeploy-edge-1-zigbee2mqtt"]);
    // An operator approves the restart.
    let root = DataRoot::open(t.root()).unwrap();
    root.transition("container-restart-edge-1-web", ActionState::Pending, ActionState::Approved, crate::now(), "ui:alice", None, |_| {}).unwrap();

    edge_up().write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());
    assert_eq!(ids(&t, ActionState::Approved), ["container-restart-edge-1-web"]);
    let cancelled = root.list_actions(ActionState::Cancelled).unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(cancelled[0].file_name.starts_with("redeploy-edge-1-zigbee2mqtt--"), "{}", cancelled[0].file_name);
    let last = cancelled[0].action.history.last().unwrap();
    assert_eq!((last.state, last.by.as_str(), last.note.as_deref()), (ActionState::Cancelled, "supervisor", Some("drift_resolved_auto")));
}

#[test]
fn pending_is_cancelled_when_the_service_leaves_desired_state_or_is_unmonitored() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("containers_not_running")).service("edge-1", "zigbee2mqtt", Some("http_check_failed")).write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending).len(), 2);

    // web removed from the file; zigbee2mqtt gets monitor: false. Both stay unhealthy in world.
    t.write_host("edge-1", "services:\n  mosquitto: {}\n  zigbee2mqtt:\n    monitor: false\n");
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());
    let cancelled = actions(&t, ActionState::Cancelled);
    assert_eq!(cancelled.len(), 2);
    for a in cancelled {
        assert_eq!(a.history.last().unwrap().note.as_deref(), Some("service_removed_from_desired_state"), "{}", a.id);
    }
}

#[test]
fn a_never_seen_node_gets_no_per_service_action() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    t.write_host("edge-2", EDGE);
    t.write_host("edge-3", EDGE);
    // Fresh install: no world files at all.
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());

    // edge-1 reports (broken web); edge-2 never did; edge-3 went silent 10 minutes ago.
    edge_up().service("edge-1", "web", Some("containers_not_running")).node("edge-3", 600).write(&t);
    let out = run(&t, &["--once", "--dry-run"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("edge-2: node_unreachable (never_seen)"), "{text}");
    assert!(text.contains("edge-3: node_unreachable (stale)"), "{text}");
    // edge-1 was judged never seen by the first run: it reappears now, and web's verdict is
    // older than that: one fresh check first (MISSING_GRACE)...
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());
    let drift = DataRoot::open(t.root()).unwrap().read_drift().unwrap().unwrap();
    assert_eq!(drift.drifts.iter().find(|d| d.service.as_deref() == Some("web")).unwrap().decision, homelab_core::drift::NextStep::WaitingGrace);
    // ...which comes.
    edge_up().service("edge-1", "web", Some("containers_not_running")).node("edge-3", 600).write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-web"]);
}

#[test]
fn only_the_root_cause_gets_an_action() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "mosquitto", Some("containers_not_running")).service("edge-1", "zigbee2mqtt", Some("http_check_failed")).write(&t);
    let out = run(&t, &["--once", "--dry-run"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("edge-1/zigbee2mqtt: unhealthy_service (http_check_failed) -> no action: root cause is mosquitto"), "{text}");
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-mosquitto"]);
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("http_check_failed")).write(&t);
    let before = files_below(&t.root());
    let out = run(&t, &["--once", "--dry-run"], &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dry run: nothing written"), "{text}");
    assert!(text.contains("edge-1/web: unhealthy_service (http_check_failed) -> create redeploy-edge-1-web as pending"), "{text}");
    assert_eq!(files_below(&t.root()), before);
}

#[test]
fn auto_approve_low_writes_straight_to_approved() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("containers_not_running")).service("edge-1", "zigbee2mqtt", Some("port_unreachable")).write(&t);
    let out = run(&t, &["--once"], &[("AUTO_APPROVE", "low")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ids(&t, ActionState::Approved), ["container-restart-edge-1-web"]);
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-1-zigbee2mqtt"]);
    let a = &actions(&t, ActionState::Approved)[0];
    assert_eq!(a.history.last().unwrap().by, "policy");
}

#[test]
fn bad_flag_and_missing_hosts_say_what_to_do() {
    let t = TempRoot::new();
    let out = run(&t, &["--once", "--tick", "5x"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"), "{out:?}");
    std::fs::remove_dir(t.hosts()).unwrap();
    let out = run(&t, &["--once"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOSTS_DIR"), "{out:?}");
}

#[test]
fn rejection_snoozes_and_a_finished_restart_escalates_across_runs() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    edge_up().service("edge-1", "web", Some("containers_not_running")).service("edge-1", "mosquitto", Some("containers_not_running")).write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-mosquitto", "container-restart-edge-1-web"]);
    let root = DataRoot::open(t.root()).unwrap();
    // An operator rejects the web restart; the mosquitto restart is run and completes.
    root.transition("container-restart-edge-1-web", ActionState::Pending, ActionState::Rejected, crate::now(), "ui:alice", Some("not now".into()), |_| {})
        .unwrap();
    let id = "container-restart-edge-1-mosquitto";
    root.transition(id, ActionState::Pending, ActionState::Approved, crate::now(), "ui:alice", None, |_| {}).unwrap();
    root.transition(id, ActionState::Approved, ActionState::Running, crate::now(), "executor", None, |_| {}).unwrap();
    root.transition(id, ActionState::Running, ActionState::Completed, crate::now(), "executor", None, |_| {}).unwrap();
    // A fresh check after the restart: mosquitto is still down, web too.
    edge_up().service("edge-1", "web", Some("containers_not_running")).service("edge-1", "mosquitto", Some("containers_not_running")).write(&t);

    for run_no in 1..=2 {
        once(&t);
        assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-1-mosquitto"], "run {run_no}: escalated, web snoozed");
    }
    let memory: serde_json::Value = homelab_store::read_json_file(&root.display_path(homelab_store::Doc::SupervisorMemory)).unwrap().unwrap();
    assert!(memory["attempts"][id].is_string(), "{memory}");
    assert_eq!(memory["rejections"]["container-restart-edge-1-web"]["resolved"], false, "{memory}");
    let out = run(&t, &["--once", "--dry-run"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("edge-1/web: unhealthy_service (containers_not_running) -> no action: container-restart-edge-1-web was rejected"), "{text}");
}
