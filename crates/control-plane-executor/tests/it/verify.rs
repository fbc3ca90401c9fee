//! Verification never holds the node: a successful run goes to completed/ at once with
//! `verified: null`, the node takes its next action, and `result.verified` is written into the
//! terminal file later (also after a crash of the executor).

use std::time::Duration;

use homelab_core::{ActionState, ActionType};
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for, wait_until};

use crate::*;

fn terminal_files(root: &std::path::Path, id: &str) -> Vec<String> {
    let mut names: Vec<String> = ["completed", "failed"]
        .iter()
        .flat_map(|d| homelab_store::list_names(&root.join("actions").join(d)).unwrap())
        .filter(|n| n.starts_with(&format!("{id}--")))
        .collect();
    names.sort();
    names
}

/// A killed container, for a restart to bring back.
fn stopped_container(what: &str) -> (Containers, String) {
    let name = unique(what);
    let guard = Containers(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, "--network", "none", &image(), "sleep", "3600"]);
    docker(&["kill", &name]);
    (guard, name)
}

#[test]
fn verification_is_recorded_later_and_never_holds_the_node() {
    let t = TempRoot::new();
    let (_guard, name) = stopped_container("verify");
    let label = unique("verify-prune");
    t.write_host("local", &format!("disk: {{ cleanup: {{ docker_prune: true }} }}\nservices:\n  app:\n    containers: [{name}]\n"));
    // Before the action: the service is unhealthy in world state.
    crate::gate::write_world(&t.root(), "local", &[("app", false)]);
    let restart = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &restart);
    let mut cfg = config(t.root(), t.hosts());
    cfg.verify_timeout = Duration::from_secs(60);
    cfg.prune_label = Some(label);
    let daemon = crate::gate::Daemon::start(cfg);

    // The run has ended: in completed/ at once, not yet verified.
    let done = wait_for("the restart to complete", Duration::from_secs(30), || {
        let found = find(&t.root(), &restart.id);
        (found.state == ActionState::Completed).then_some(found)
    });
    let result = done.action.result.clone().unwrap();
    assert!(result.ok && result.verified.is_none() && result.finished_at.is_some(), "{result:?}");
    assert_eq!(homelab_store::list_names(&t.root().join("actions/running")).unwrap(), Vec::<String>::new());

    // The node is free while the restart waits for its verification: a disk cleanup, which
    // needs the node to itself, runs now.
    let cleanup = approved(ActionType::DiskCleanup, "local", None);
    approve(&t.root(), &cleanup);
    wait_until("the cleanup to run while the restart is verified", Duration::from_secs(30), || find(&t.root(), &cleanup.id).state == ActionState::Completed);
    assert_eq!(find(&t.root(), &restart.id).action.result.unwrap().verified, None, "still waiting for the service to report healthy");

    // The agent reports the service healthy after the restart: the terminal file gets the verdict.
    crate::gate::write_world(&t.root(), "local", &[("app", true)]);
    let verified = wait_for("the restart to be verified", Duration::from_secs(30), || {
        let found = find(&t.root(), &restart.id);
        found.action.result.as_ref().and_then(|r| r.verified).map(|v| (v, found))
    });
    assert!(verified.0);
    let found = verified.1;
    assert_eq!(found.state, ActionState::Completed);
    assert_eq!(found.file_name, done.file_name, "the same terminal file, updated in place");
    assert_eq!(found.action.history, done.action.history, "history untouched");
    assert_eq!(terminal_files(&t.root(), &restart.id), vec![done.file_name.clone()]);
    // The cleanup is verified by the node's report too.
    wait_until("the cleanup to be verified", Duration::from_secs(30), || find(&t.root(), &cleanup.id).action.result.unwrap().verified == Some(true));
    daemon.stop();
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(t.root().join("actions/completed")).unwrap().count(), 2);
}

#[test]
fn an_unconfirmed_success_is_recorded_unverified_at_the_deadline() {
    let t = TempRoot::new();
    let (_guard, name) = stopped_container("unverified");
    t.write_host("local", &format!("services:\n  app:\n    containers: [{name}]\n"));
    crate::gate::write_world(&t.root(), "local", &[("app", false)]);
    let restart = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &restart);
    let mut cfg = config(t.root(), t.hosts());
    cfg.verify_timeout = Duration::from_secs(1);
    // --once waits for the verification before it exits.
    run_once(cfg);
    let done = ended(&t.root(), &restart.id, ActionState::Completed);
    assert_eq!(done.result.unwrap().verified, Some(false));
}

#[test]
fn a_verification_cut_short_by_kill_9_is_resumed_at_the_next_start() {
    let t = TempRoot::new();
    let (_guard, name) = stopped_container("resume");
    t.write_host("local", &format!("services:\n  app:\n    containers: [{name}]\n"));
    crate::gate::write_world(&t.root(), "local", &[("app", false)]);
    let restart = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &restart);
    // An old success whose verification deadline passed while no executor ran: left alone.
    let root = DataRoot::open(t.root()).unwrap();
    let old = approved(ActionType::ContainerRestart, "local", Some("old"));
    approve(&t.root(), &old);
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    root.transition(&old.id, ActionState::Approved, ActionState::Running, long_ago, "executor", None, |_| {}).unwrap();
    root.transition(&old.id, ActionState::Running, ActionState::Completed, long_ago, "executor", None, |a| {
        a.result = Some(homelab_core::action::ActionResult { ok: true, finished_at: Some(long_ago), ..Default::default() })
    })
    .unwrap();

    let path = std::env::var("PATH").unwrap_or_default();
    let spawn = || {
        let mut cmd = crate::crash::executor(&t, &path, false);
        cmd.env("VERIFY_TIMEOUT", "60s");
        testkit::KillOnDrop(cmd.spawn().unwrap())
    };
    let mut first = spawn();
    wait_until("the restart to complete", Duration::from_secs(30), || find(&t.root(), &restart.id).state == ActionState::Completed);
    first.0.kill().unwrap(); // SIGKILL while the verification is open
    first.0.wait().unwrap();
    assert_eq!(find(&t.root(), &restart.id).action.result.unwrap().verified, None);

    crate::gate::write_world(&t.root(), "local", &[("app", true)]);
    let _second = spawn();
    wait_until("the verification to be resumed and recorded", Duration::from_secs(30), || {
        find(&t.root(), &restart.id).action.result.unwrap().verified == Some(true)
    });
    assert_eq!(find(&t.root(), &old.id).action.result.unwrap().verified, None, "past its deadline: not checked");
    assert_eq!(terminal_files(&t.root(), &restart.id).len(), 1);
}
