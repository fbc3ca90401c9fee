//! Issue 17: a silence in state/silences/ mutes a drift (decision silenced, until), withdraws
//! the supervisor's pending proposal, and ends by itself.

use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use homelab_core::drift::NextStep;
use homelab_core::silence::{Matcher, Silence};
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_until};

use crate::{BIN, EDGE, WorldBuilder, now};

#[test]
fn a_silence_mutes_the_drift_withdraws_the_proposal_and_ends_by_itself() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("containers_not_running")).write(&t);
    let root = DataRoot::open(t.root()).unwrap();
    let child = Command::new(BIN)
        .arg("--root")
        .arg(t.root())
        .arg("--hosts")
        .arg(t.hosts())
        .args(["--tick", "1s", "--missing-grace", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = testkit::KillOnDrop(child);
    let id = "container-restart-edge-1-web";
    wait_until("the restart proposed", Duration::from_secs(20), || root.active_state(id) == Some(ActionState::Pending));

    // Muted for 6 s: the row says silenced with until, the pending proposal is withdrawn.
    let s = Silence::new("s-test-1".into(), Matcher::target("edge-1/web"), Duration::from_secs(6), "swapping the disk", "cli:test", now()).unwrap();
    root.write_silence(&s).unwrap();
    wait_until("the drift silenced", Duration::from_secs(20), || {
        root.read_drift().ok().flatten().is_some_and(|d| {
            d.drifts.iter().any(|r| r.decision == NextStep::Silenced && r.until.map(|u| u.timestamp_millis()) == Some(s.ends_at.timestamp_millis()))
        })
    });
    wait_until("the proposal withdrawn", Duration::from_secs(20), || root.active_state(id).is_none());
    let drift = root.read_drift().unwrap().unwrap();
    assert!(drift.drifts[0].reason.contains("swapping the disk") && drift.drifts[0].reason.contains("s-test-1"), "{drift:?}");

    // It ends by itself: the restart is proposed again (on the 1 s tick, no file change needed).
    wait_until("proposed again after the silence", Duration::from_secs(30), || root.active_state(id) == Some(ActionState::Pending));
    // (drift.json is written after the action file in the same reconcile.)
    wait_until("the row says so", Duration::from_secs(10), || {
        root.read_drift().ok().flatten().is_some_and(|d| matches!(d.drifts[0].decision, NextStep::ActionCreated | NextStep::AlreadyActive))
    });
    guard.terminate(Duration::from_secs(10));
    // The cancelled one says why.
    let cancelled = homelab_store::list_names(&root.action_dir(ActionState::Cancelled)).unwrap();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let a: homelab_core::Action = homelab_store::read_json_file(&root.action_dir(ActionState::Cancelled).join(&cancelled[0])).unwrap().unwrap();
    assert!(a.history.last().unwrap().note.as_deref().unwrap().starts_with("silenced: edge-1/web muted by cli:test"), "{:?}", a.history);
}
