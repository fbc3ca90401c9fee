//! kill -9 while an action runs: at the next start it is failed with `executor_interrupted`,
//! never run a second time, and running/ is empty.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::{ActionState, ActionType};
use testkit::{TempRoot, wait_for};

use crate::*;

/// A folder with a fake `docker-compose` first on PATH, running `body` (a shell script).
/// A host `local` with one compose service `app` (its folder under the temp folder, run by
/// `docker-compose`), the node up, and an approved redeploy of it, as the executor finds it.
pub fn approved_local_redeploy(t: &TempRoot) -> Action {
    let compose_dir = t.path().join("app");
    std::fs::create_dir_all(&compose_dir).unwrap();
    t.write_host("local", &format!("compose_command: docker-compose\nservices:\n  app:\n    compose_dir: {}\n", compose_dir.display()));
    crate::gate::world_up(&t.root(), "local");
    let action = approved(ActionType::Redeploy, "local", Some("app"));
    approve(&t.root(), &action);
    action
}

pub fn fake_compose(body: &str) -> (tempfile::TempDir, String) {
    let bin = tempfile::Builder::new().prefix("hx-fakebin-").tempdir().unwrap();
    let script = bin.path().join("docker-compose");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    (bin, path)
}

pub fn executor(t: &TempRoot, path_env: &str, once: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_control-plane-executor"));
    cmd.arg("--root").arg(t.root()).arg("--hosts").arg(t.hosts());
    if once {
        cmd.arg("--once");
    }
    cmd.env("PATH", path_env).env("VERIFY_TIMEOUT", "0").env("RUST_LOG", "warn").stdin(Stdio::null());
    cmd
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_during_a_redeploy_fails_it_as_interrupted_at_restart() {
    let t = TempRoot::new();
    let marker = t.path().join("compose.pid");
    let (_bin, path_env) = fake_compose(&format!("echo $$ > {m}.tmp && mv {m}.tmp {m}\nexec sleep 3600", m = marker.display()));
    let action = crate::crash::approved_local_redeploy(&t);

    let mut first = KillOnDrop(executor(&t, &path_env, false).spawn().unwrap());
    let pid: i32 = wait_for("the redeploy to be running", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&marker).ok()?;
        (find(&t.root(), &action.id).state == ActionState::Running).then(|| text.trim().parse().unwrap())
    });
    first.0.kill().unwrap(); // SIGKILL: no chance to clean up
    first.0.wait().unwrap();
    // The orphaned compose process is not ours to keep.
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert_eq!(find(&t.root(), &action.id).state, ActionState::Running, "still in running/ after the crash");

    let status = executor(&t, &path_env, true).status().unwrap();
    assert!(status.success());
    let failed = ended(&t.root(), &action.id, ActionState::Failed);
    assert_eq!(failed.history.last().unwrap().note.as_deref(), Some("executor_interrupted"));
    assert!(failed.result.unwrap().error.unwrap().starts_with("executor_interrupted"));
    assert_eq!(homelab_store::list_names(&t.root().join("actions/running")).unwrap(), Vec::<String>::new());
    // The deploy history says so, and the generation held before the change is still held.
    let root = homelab_store::DataRoot::open(t.root()).unwrap();
    let history = root.read_deploy_history("local", "app").unwrap();
    assert_eq!(history.records.len(), 1, "{history:#?}");
    assert_eq!(history.records[0].outcome, homelab_core::deploy::DeployOutcome::Interrupted);
    let (generations, _) = root.list_generations("local", "app").unwrap();
    assert!(generations.iter().any(|g| g.id == history.records[0].held), "{generations:#?}");
}

#[test]
fn executor_dry_run_env_runs_nothing() {
    let t = TempRoot::new();
    let ran = t.path().join("ran");
    let (_bin, path_env) = fake_compose(&format!("touch {}", ran.display()));
    let action = crate::crash::approved_local_redeploy(&t);

    let status = executor(&t, &path_env, true).env("EXECUTOR_DRY_RUN", "1").status().unwrap();
    assert!(status.success());
    let result = ended(&t.root(), &action.id, ActionState::Completed).result.unwrap();
    assert!(result.dry_run && result.output.contains("would run `docker-compose up -d --force-recreate`"), "{result:?}");
    assert!(!ran.exists(), "nothing ran");
}
