//! The running daemon reacts to world/ changes without waiting for its tick, and stops on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use testkit::{TempRoot, wait_until};

use crate::{BIN, EDGE, WorldBuilder, ids, wait_output};

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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it whatever happens, so a failing assertion does not leave it behind.
    struct Guard(Option<std::process::Child>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(c) = &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut guard = Guard(Some(child));
    let pid = guard.0.as_ref().unwrap().id();
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

    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let out = wait_output(guard.0.take().unwrap(), Duration::from_secs(10));
    assert!(out.status.success(), "clean exit on SIGTERM: {}", String::from_utf8_lossy(&out.stderr));
}
