//! A full disk never stops the executor, and never makes it lose an action or run one twice:
//! an action it cannot claim waits in approved/; an action whose end cannot be written stays in
//! running/ (under its run lock) until it can be. The data root is a small tmpfs the test
//! mounts (root only; CI runs as root).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::{TempRoot, Tmpfs, wait_for, wait_until};

use crate::crash::{executor, fake_compose};
use crate::*;

struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn alive(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
        wait_for("the executor to stop", Duration::from_secs(30), || child.try_wait().unwrap())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Setup {
    t: TempRoot,
    _fs: Tmpfs,
    _bin: tempfile::TempDir,
    path_env: String,
    runs: PathBuf,
    filler: PathBuf,
    log: PathBuf,
    id: String,
}

impl Setup {
    /// A redeploy of `local/app` approved, on a 1 MiB data root; the fake compose appends a line
    /// to `runs` and then runs `then` (where `{filler}` stands for the filler file's path).
    fn new(then: &str) -> Setup {
        let t = TempRoot::new();
        let fs = Tmpfs::mount(&t.root(), "1m");
        let runs = t.path().join("runs");
        let filler = t.root().join("filler");
        let then = then.replace("{filler}", &filler.display().to_string());
        let (bin, path_env) = fake_compose(&format!("echo run >> {}\n{then}\nexit 0", runs.display()));
        let action = crate::crash::approved_local_redeploy(&t);
        let log = t.path().join("executor.log");
        Setup { t, _fs: fs, _bin: bin, path_env, runs, filler, log, id: action.id }
    }

    fn start(&self) -> KillOnDrop {
        let mut cmd = executor(&self.t, &self.path_env, false);
        cmd.env("RUST_LOG", "info,homelab_store::retry=debug")
            .env("EXECUTOR_HEARTBEAT_INTERVAL", "1s")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap());
        KillOnDrop(Some(cmd.spawn().unwrap()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(&self.runs).unwrap_or_default().lines().count()
    }

    fn state(&self) -> ActionState {
        find(&self.t.root(), &self.id).state
    }

    fn heartbeat(&self) -> Option<serde_json::Value> {
        DataRoot::open(self.t.root()).unwrap().read_heartbeat("executor").ok().flatten()
    }

    /// No temp file and nothing half-written anywhere in the data root.
    fn assert_no_temp_files(&self) {
        let mut stack = vec![self.t.root()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    assert!(!name.starts_with('.'), "temp file left behind: {}", e.path().display());
                }
            }
        }
    }
}

#[test]
fn an_action_whose_end_cannot_be_written_stays_running_and_is_recorded_once_the_disk_has_room() {
    // The action itself fills the disk: its end cannot be written.
    let s = Setup::new("dd if=/dev/zero of={filler} bs=16k 2>/dev/null");
    let mut exec = s.start();
    wait_until("the end of the action failing to be written", Duration::from_secs(60), || s.log().contains("its end cannot be written"));
    assert_eq!(s.state(), ActionState::Running, "not lost, not moved half-way:\n{}", s.log());
    wait_until("two more tries", Duration::from_secs(30), || s.log().matches("write still failing").count() >= 2);
    assert!(exec.alive(), "the executor exited on a full disk:\n{}", s.log());
    assert_eq!(s.state(), ActionState::Running);
    assert_eq!(s.runs(), 1);
    assert_eq!(s.log().matches("write failed").count(), 1, "one log line for the problem, not one per retry:\n{}", s.log());

    std::fs::remove_file(&s.filler).unwrap();
    let done = wait_for("the action recorded as completed", Duration::from_secs(60), || {
        let found = find(&s.t.root(), &s.id);
        (found.state == ActionState::Completed).then_some(found.action)
    });
    assert!(done.result.as_ref().is_some_and(|r| r.ok), "{done:#?}");
    // A heartbeat written after the action was recorded.
    let hb = wait_for("a heartbeat saying writes work again", Duration::from_secs(30), || {
        let hb = s.heartbeat()?;
        (hb["counters"]["actions_completed"] == 1).then_some(hb)
    });
    assert!(hb["extra"]["last_write_error"].is_null(), "{hb}");
    assert!(hb["counters"]["write_errors"].as_u64().unwrap() >= 3, "{hb}");
    assert!(s.log().contains("writes work again"), "{}", s.log());
    assert_eq!(s.runs(), 1, "run exactly once");
    assert_eq!(homelab_store::list_names(&s.t.root().join("actions/running")).unwrap(), Vec::<String>::new());
    s.assert_no_temp_files();
    assert!(exec.stop().success(), "{}", s.log());
}

#[test]
fn stopped_before_the_end_could_be_written_it_is_failed_at_the_next_start_not_run_again() {
    let s = Setup::new("dd if=/dev/zero of={filler} bs=16k 2>/dev/null");
    let mut exec = s.start();
    wait_until("the end of the action failing to be written", Duration::from_secs(60), || s.log().contains("its end cannot be written"));
    assert!(exec.stop().success(), "a full disk is no reason to exit non-zero:\n{}", s.log());
    assert!(s.log().contains("stays in running/ and the next start moves it to failed/"), "{}", s.log());
    assert_eq!(s.state(), ActionState::Running);

    std::fs::remove_file(&s.filler).unwrap();
    let status = executor(&s.t, &s.path_env, true).status().unwrap();
    assert!(status.success());
    let failed = ended(&s.t.root(), &s.id, ActionState::Failed);
    assert_eq!(failed.history.last().unwrap().note.as_deref(), Some("executor_interrupted"));
    assert_eq!(s.runs(), 1, "never run twice");
    s.assert_no_temp_files();
}

#[test]
fn an_approved_action_waits_while_the_disk_is_full_and_runs_once_after() {
    let s = Setup::new("true");
    s._fs.fill(&s.filler);
    let mut exec = s.start();
    wait_until("the claim failing", Duration::from_secs(30), || s.log().contains("write failed"));
    wait_until("two more tries", Duration::from_secs(30), || s.log().matches("write still failing").count() >= 2);
    assert!(exec.alive(), "the executor exited on a full disk:\n{}", s.log());
    assert_eq!(s.state(), ActionState::Approved);
    assert_eq!(s.runs(), 0);
    s.assert_no_temp_files();

    std::fs::remove_file(&s.filler).unwrap();
    wait_until("the action completed", Duration::from_secs(60), || s.state() == ActionState::Completed);
    assert_eq!(s.runs(), 1);
    wait_until("a heartbeat saying writes work again", Duration::from_secs(30), || {
        s.heartbeat().is_some_and(|hb| hb["extra"]["last_write_error"].is_null() && hb["counters"]["write_errors"].as_u64() > Some(0))
    });
    s.assert_no_temp_files();
    assert!(exec.stop().success(), "{}", s.log());
}
