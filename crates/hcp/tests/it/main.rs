//! The `hcp` integration tests: the real binary on a fresh temp data root per test.

mod actions;
mod alertmanager;
mod alertmanager_burst;
mod check;
mod cli;
mod compose;
mod deploys;
mod diskfull;
mod health;
mod mirror;
mod monitoring;
mod quickstart;
mod schema;
mod silence;
mod up;
mod users;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `hcp` binary built for this test run, with a clean environment for its settings.
pub fn hcp(args: &[&str]) -> Output {
    hcp_in(None, args)
}

pub fn hcp_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcp"));
    cmd.args(args).env_remove("HOMELAB_ROOT").env_remove("HOSTS_DIR").env_remove("SUMMARY_TOKEN").env("USER", "tester");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.output().expect("run hcp")
}

/// stdout and stderr together, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
