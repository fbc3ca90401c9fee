//! Issue 13: no action without settled evidence, world/drift.json at every reconcile, and
//! unreadable action files moved to quarantine without ever putting an id in two folders.

use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use homelab_core::drift::NextStep;
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for, wait_until};

use crate::{BIN, EDGE, WorldBuilder, files_below, ids, once, run};

/// Every action file anywhere below actions/ (not the locks).
fn action_files(t: &TempRoot) -> Vec<String> {
    files_below(&t.root().join("actions")).into_iter().filter(|f| !f.starts_with(".locks")).collect()
}

#[test]
fn a_healthy_fleet_starting_writes_no_action_and_drift_json_says_why() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    // The node's heartbeat was folded before its service events: every service reads missing.
    WorldBuilder::new().node("edge-1", 0).write(&t);
    let child = Command::new(BIN)
        .arg("--root")
        .arg(t.root())
        .arg("--hosts")
        .arg(t.hosts())
        .args(["--tick", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = testkit::KillOnDrop(child);
    let root = DataRoot::open(t.root()).unwrap();
    let drift = wait_for("world/drift.json", Duration::from_secs(20), || root.read_drift().ok().flatten());
    let rows: Vec<(Option<&str>, NextStep)> = drift.drifts.iter().map(|d| (d.service.as_deref(), d.decision)).collect();
    assert_eq!(
        rows,
        [(Some("mosquitto"), NextStep::WaitingFreshWorld), (Some("web"), NextStep::WaitingFreshWorld), (Some("zigbee2mqtt"), NextStep::RootCauseElsewhere)]
    );
    assert!(drift.drifts[..2].iter().all(|d| d.until.is_some() && d.reason.contains("just started")), "{drift:?}");
    // The services report over the first check pass.
    WorldBuilder::new().node("edge-1", 0).healthy("edge-1", &["mosquitto", "zigbee2mqtt", "web"]).write(&t);
    wait_until("an empty drift list", Duration::from_secs(20), || root.read_drift().ok().flatten().is_some_and(|d| d.drifts.is_empty()));
    guard.terminate(Duration::from_secs(10));
    assert_eq!(action_files(&t), Vec::<String>::new(), "not one action, not even a cancelled one");
}

#[test]
fn an_unreadable_running_file_is_quarantined_and_the_id_is_never_in_two_folders() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("http_check_failed")).write(&t);
    let root = DataRoot::open(t.root()).unwrap();
    let running = root.action_dir(ActionState::Running).join("redeploy-edge-1-web.json");
    std::fs::write(&running, "{\"id\": \"redeploy-edge-1-web\", \"type\": ").unwrap();
    let out = once(&t);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreadable action file moved to quarantine"), "{stderr}");
    assert!(!running.exists());
    let q = root.quarantine_kind_dir("actions");
    assert!(q.join("redeploy-edge-1-web.json").is_file() && q.join("redeploy-edge-1-web.json.reason").is_file());
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-1-web"]);
    assert_eq!(action_files(&t), ["pending/redeploy-edge-1-web.json"]);
    // The next pass has nothing to say about it.
    let out = run(&t, &["--once"], &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("unreadable"));
    assert_eq!(action_files(&t), ["pending/redeploy-edge-1-web.json"]);
    let drift = root.read_drift().unwrap().unwrap();
    assert_eq!((drift.drifts[0].decision, drift.drifts[0].action_id.as_deref()), (NextStep::AlreadyActive, Some("redeploy-edge-1-web")));
}

#[test]
fn a_retried_action_is_honoured_across_runs() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("http_check_failed")).write(&t);
    let root = DataRoot::open(t.root()).unwrap();
    // A redeploy ran a minute ago and did not help: exhausted.
    let ended = chrono::Utc::now() - chrono::Duration::seconds(30);
    std::fs::write(root.action_dir(ActionState::Completed).join(format!("redeploy-edge-1-web--{}.json", homelab_core::compact_ts(ended))), "{}").unwrap();
    once(&t);
    let drift = root.read_drift().unwrap().unwrap();
    assert_eq!(drift.drifts[0].decision, NextStep::RemediationExhausted, "{drift:?}");
    assert!(drift.drifts[0].reason.contains("Retry"), "{}", drift.drifts[0].reason);
    // The operator proposes it again (as the UI and hcp do).
    let a =
        homelab_core::plan::retry_action(&drift, "redeploy-edge-1-web", root.active_state("redeploy-edge-1-web"), "cli:tester", chrono::Utc::now()).unwrap();
    root.create_action(&a).unwrap();
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-1-web"], "not cancelled as exhausted");
    assert_eq!(ids(&t, ActionState::Cancelled), Vec::<String>::new());
    let drift = root.read_drift().unwrap().unwrap();
    assert_eq!(drift.drifts[0].decision, NextStep::AlreadyActive);
    let memory: serde_json::Value = homelab_store::read_json_file(&root.display_path(homelab_store::Doc::SupervisorMemory)).unwrap().unwrap();
    assert!(memory["exhausted"].as_object().unwrap().is_empty(), "{memory}");
}
