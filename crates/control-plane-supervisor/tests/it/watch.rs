//! The running daemon reacts to world/ changes without waiting for its tick, and stops on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use testkit::{TempRoot, wait_until};

use crate::{BIN, EDGE, WorldBuilder, ids};

#[test]
fn daemon_proposes_and_cancels_on_world_changes() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    let up = || WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt", "web"]);
    up().write(&t);
    let child = Command::new(BIN)
        .arg("--root")
        .arg(t.root())
        .arg("--hosts")
        .arg(t.hosts())
        .args(["--tick", "1h"])
        // This test is about triggers: a missing service is proposed at once.
        .env("MISSING_GRACE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(t.root().join("supervisor.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed whatever happens, so a failing assertion does not leave it behind.
    let mut guard = testkit::KillOnDrop(child);
    let hb = t.root().join("state/heartbeat/supervisor.json");
    wait_until("the first reconcile", Duration::from_secs(20), || hb.is_file());

    up().service("edge-1", "web", Some("containers_not_running")).write(&t);
    wait_until("a pending restart", Duration::from_secs(10), || ids(&t, ActionState::Pending) == ["container-restart-edge-1-web"]);
    up().write(&t);
    wait_until("the restart cancelled", Duration::from_secs(10), || ids(&t, ActionState::Cancelled) == ["container-restart-edge-1-web"]);
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());

    // A host file edit is a trigger too: a new service nobody runs yet is missing.
    t.write_host("edge-1", &format!("{EDGE}  extra: {{}}\n"));
    wait_until("a redeploy for the new service", Duration::from_secs(10), || ids(&t, ActionState::Pending) == ["redeploy-edge-1-extra"]);

    let status = guard.terminate(Duration::from_secs(10));
    assert!(status.success(), "clean exit on SIGTERM: {}", std::fs::read_to_string(t.root().join("supervisor.log")).unwrap_or_default());
}

/// The supervisor watches world/ and writes world/drift.json: it rewrites the file only when
/// the drifts change (or once a tick), so its own write never wakes it into a busy loop.
#[test]
fn an_unchanged_drift_is_not_rewritten() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    let world = WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("http_check_failed"));
    world.write(&t);
    let child = Command::new(BIN)
        .arg("--root")
        .arg(t.root())
        .arg("--hosts")
        .arg(t.hosts())
        .args(["--tick", "1h"])
        .env("MISSING_GRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = testkit::KillOnDrop(child);
    let root = homelab_store::DataRoot::open(t.root()).unwrap();
    let reconciles =
        || root.read_heartbeat::<homelab_core::Heartbeat>("supervisor").ok().flatten().and_then(|h| h.counters.get("reconciles").copied()).unwrap_or(0);
    let drift = || root.read_drift().ok().flatten();
    // Settled: the redeploy was proposed, and the next reconcile says it is active.
    wait_until("drift.json with the unhealthy web's action active", Duration::from_secs(20), || {
        drift().is_some_and(|d| d.drifts.len() == 1 && d.drifts[0].decision == homelab_core::drift::NextStep::AlreadyActive)
    });
    let first = drift().unwrap().generated_at;
    let before = reconciles();
    // A world rewrite with the same content: a reconcile, the same drift.
    world.write(&t);
    wait_until("another reconcile", Duration::from_secs(10), || reconciles() > before);
    assert_eq!(drift().unwrap().generated_at, first, "the same drifts are not written again");
    assert!(reconciles() <= before + 3, "no busy loop: {} reconciles after one change", reconciles() - before);
    guard.terminate(Duration::from_secs(10));
}
