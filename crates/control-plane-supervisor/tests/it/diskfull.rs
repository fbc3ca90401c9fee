//! A full disk never stops the supervisor: nothing partial is left, nothing is lost, and it
//! catches up by itself once the disk takes writes again. The data root is a small tmpfs the
//! test mounts (root only; CI runs as root).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use control_plane_supervisor::{Config, Supervisor};
use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for, wait_until};

use crate::{BIN, EDGE, WorldBuilder, files_below, ids};
use testkit::Tmpfs;

/// Names starting with `.` below `dir` (temp files), except the lock folder's content.
fn dot_files(dir: &Path) -> Vec<String> {
    files_below(dir).into_iter().filter(|f| Path::new(f).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))).collect()
}

fn unhealthy_world() -> WorldBuilder {
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("containers_not_running"))
}

#[test]
fn a_reconcile_on_a_full_disk_loses_nothing_and_leaves_nothing_partial() {
    let t = TempRoot::new();
    let fs = Tmpfs::mount(&t.root(), "1m");
    t.write_host("edge-1", EDGE);
    unhealthy_world().write(&t);
    let mut sup = Supervisor::open(Config::new(t.root(), t.hosts())).unwrap();
    let filler = t.root().join("filler");
    fs.fill(&filler);

    let id = "container-restart-edge-1-web";
    for round in 1..=2 {
        let report = sup.reconcile(chrono::Utc::now()).expect("a full disk is not a reconcile error");
        assert_eq!(report.created, 0);
        assert!(report.write_failures >= 2, "round {round}: the action and the heartbeat failed: {report:?}");
        let problem = sup.write_errors().current().expect("the problem is in force");
        assert!(problem.error.contains("No space left on device"), "{}", problem.error);
        // No action anywhere, not even half of one; no temp file left behind.
        for state in ActionState::ALL {
            assert_eq!(ids(&t, state), Vec::<String>::new(), "round {round}: {state}");
        }
        assert_eq!(dot_files(&t.root()), Vec::<String>::new());
    }
    let failed = sup.write_errors().total();
    assert!(failed >= 4);

    std::fs::remove_file(&filler).unwrap();
    let report = sup.reconcile(chrono::Utc::now()).unwrap();
    assert_eq!((report.created, report.write_failures), (1, 0), "{report:?} {:?}", sup.write_errors().current());
    assert!(!sup.write_errors().is_failing());
    // Exactly one file for the id, in exactly one folder.
    let everywhere: Vec<(ActionState, String)> = ActionState::ALL.into_iter().flat_map(|s| ids(&t, s).into_iter().map(move |i| (s, i))).collect();
    assert_eq!(everywhere, [(ActionState::Pending, id.to_owned())]);
    let root = DataRoot::open(t.root()).unwrap();
    let hb: serde_json::Value = root.read_heartbeat("supervisor").unwrap().unwrap();
    assert_eq!(hb["counters"]["write_errors"], failed, "{hb}");
    assert!(hb["extra"]["last_write_error"].is_null(), "{hb}");
    assert_eq!(dot_files(&t.root()), Vec::<String>::new());
    drop(fs);
}

#[test]
fn the_daemon_keeps_running_on_a_full_disk_and_catches_up_by_itself() {
    let t = TempRoot::new();
    let fs = Tmpfs::mount(&t.root(), "1m");
    t.write_host("edge-1", EDGE);
    unhealthy_world().write(&t);
    let filler = t.root().join("filler");
    fs.fill(&filler);
    let log = t.path().join("supervisor.log");
    let child = Command::new(BIN)
        .arg("--root")
        .arg(t.root())
        .arg("--hosts")
        .arg(t.hosts())
        .args(["--tick", "1h"])
        .env("RUST_LOG", "info,homelab_store::retry=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut guard = testkit::KillOnDrop(child);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the write failure in the log", Duration::from_secs(20), || read_log().contains("write failed"));
    // It retries on its own backoff: wait for a few retries, and it is still there.
    wait_until("two more failed tries", Duration::from_secs(20), || read_log().matches("write still failing").count() >= 2);
    assert!(guard.0.try_wait().unwrap().is_none(), "the supervisor exited on a full disk:\n{}", read_log());
    assert_eq!(read_log().matches("write failed").count(), 1, "one log line for the problem, not one per retry:\n{}", read_log());
    assert_eq!(ids(&t, ActionState::Pending), Vec::<String>::new());

    // Room again: no notification is needed, the retry finds it.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the action created after the disk has room", Duration::from_secs(60), || ids(&t, ActionState::Pending) == ["container-restart-edge-1-web"]);
    let root = DataRoot::open(t.root()).unwrap();
    let hb = wait_for("a heartbeat saying writes work again", Duration::from_secs(30), || {
        let hb: serde_json::Value = root.read_heartbeat("supervisor").ok()??;
        hb["extra"]["last_write_error"].is_null().then_some(hb)
    });
    assert!(hb["counters"]["write_errors"].as_u64().unwrap() >= 2, "{hb}");
    assert!(read_log().contains("writes work again"), "{}", read_log());
    assert_eq!(dot_files(&t.root()), Vec::<String>::new());

    assert!(guard.terminate(Duration::from_secs(10)).success(), "clean exit on SIGTERM:\n{}", read_log());
    drop(fs);
}

#[test]
fn a_read_only_data_root_is_reported_and_caught_up_after_remount() {
    let t = TempRoot::new();
    let fs = Tmpfs::mount(&t.root(), "1m");
    t.write_host("edge-1", EDGE);
    unhealthy_world().write(&t);
    let mut sup = Supervisor::open(Config::new(t.root(), t.hosts())).unwrap();
    let remount = |mode: &str| {
        let out = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(t.root()).output().unwrap();
        assert!(out.status.success(), "remount {mode}: {}", String::from_utf8_lossy(&out.stderr));
    };
    remount("ro");
    let report = sup.reconcile(chrono::Utc::now()).expect("a read-only root is not a reconcile error");
    assert!(report.write_failures >= 2, "{report:?}");
    assert!(sup.write_errors().current().unwrap().error.contains("Read-only file system"), "{:?}", sup.write_errors().current());
    remount("rw");
    let report = sup.reconcile(chrono::Utc::now()).unwrap();
    assert_eq!((report.created, report.write_failures), (1, 0), "{report:?} {:?}", sup.write_errors().current());
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-web"]);
    assert!(sup.write_errors().current().is_none());
    drop(fs);
}

#[test]
fn temp_files_left_by_a_crash_are_removed_at_start_fresh_ones_are_not() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    let root = DataRoot::open(t.root()).unwrap();
    let old = [root.state_dir().join(".supervisor.json.4242.0.tmp"), root.action_dir(ActionState::Pending).join(".redeploy-edge-1-web.json.4242.1.tmp")];
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for p in &old {
        std::fs::write(p, "{\"partial").unwrap();
        std::fs::File::options().write(true).open(p).unwrap().set_modified(hour_ago).unwrap();
    }
    // Another daemon sharing the root may be writing this one right now.
    let fresh = root.state_dir().join(".hosts_last_good.json.4243.0.tmp");
    std::fs::write(&fresh, "{").unwrap();
    Supervisor::open(Config::new(t.root(), t.hosts())).unwrap();
    assert!(old.iter().all(|p| !p.exists()), "stale temp files removed");
    assert!(fresh.exists(), "a fresh temp file is left alone");
}
