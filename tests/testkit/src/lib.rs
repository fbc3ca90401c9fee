//! Shared test fixtures: a fresh temp data root per test and waiting for a condition with a
//! deadline (tests never sleep to synchronise).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A temp folder holding `root/` (the data root) and `hosts/`, removed on drop.
pub struct TempRoot {
    dir: tempfile::TempDir,
}

impl TempRoot {
    pub fn new() -> TempRoot {
        let dir = tempfile::Builder::new().prefix("homelab-test-").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        TempRoot { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `hosts/<node>/services.yaml`.
    pub fn write_host(&self, node: &str, yaml: &str) {
        let dir = self.hosts().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("services.yaml"), yaml).unwrap();
    }
}

impl Default for TempRoot {
    fn default() -> Self {
        TempRoot::new()
    }
}

/// Polls `cond` until it returns `Some`, panicking with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_for`] for a boolean condition.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, deadline, || cond().then_some(()))
}

/// Path of a binary of this workspace built by cargo for the current test profile.
pub fn workspace_bin(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}
