//! Integration tests of the observer binary over a temp data root.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Event, Timestamp};
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for, wait_until};
use uuid::Uuid;

mod daemon;
mod once;
mod order;
mod overflow;

const BIN: &str = env!("CARGO_BIN_EXE_control-plane-observer");

/// An hour before the test run started: recent enough that retention keeps it. Fixed for the
/// whole run so `at(n)` means the same instant everywhere.
static BASE: std::sync::LazyLock<Timestamp> = std::sync::LazyLock::new(|| {
    use chrono::SubsecRound;
    (chrono::Utc::now() - chrono::Duration::seconds(3600)).trunc_subsecs(0)
});

fn at(secs: i64) -> Timestamp {
    *BASE + chrono::Duration::seconds(secs)
}

fn ev(secs: i64, n: u128, node: &str, kind: &str, service: Option<&str>) -> Event {
    Event {
        id: Uuid::from_u128((n << 96) | n), // distinct first 8 hex digits: they are in the file name
        ts: at(secs),
        node: node.into(),
        kind: kind.into(),
        service: service.map(Into::into),
        detail: None,
        data: None,
    }
}

fn write(root: &Path, e: &Event) {
    DataRoot::open(root).unwrap().write_event(e).unwrap();
}

fn observer(t: &TempRoot) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--root").arg(t.root()).env_remove("NODE_ALIAS_MAP").env_remove("HOSTS_DIR").env("RUST_LOG", "warn");
    c
}

fn once(t: &TempRoot, extra: &[&str], env: &[(&str, &str)]) {
    let out = observer(t).arg("--once").args(extra).envs(env.iter().copied()).output().unwrap();
    assert!(out.status.success(), "observer --once failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn services(t: &TempRoot) -> ServicesFile {
    DataRoot::open(t.root()).unwrap().read_world().unwrap().0.expect("world/services.json")
}

fn nodes(t: &TempRoot) -> NodesFile {
    DataRoot::open(t.root()).unwrap().read_world().unwrap().1.expect("world/nodes.json")
}

/// `node/service status reason failures` lines, for compact assertions.
fn summary(s: &ServicesFile) -> Vec<String> {
    let mut out = Vec::new();
    for (node, svcs) in &s.services {
        for (name, st) in svcs {
            out.push(format!("{node}/{name} {:?} {} {}", st.status, st.reason.as_deref().unwrap_or("-"), st.consecutive_failures));
        }
    }
    out
}

struct Daemon(Child);

impl Daemon {
    fn start(t: &TempRoot, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let child = observer(t).args(extra).envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_world(t: &TempRoot, what: &str, cond: impl Fn(&ServicesFile) -> bool) {
    wait_until(what, Duration::from_secs(10), || DataRoot::open(t.root()).unwrap().read_world().ok().and_then(|w| w.0).is_some_and(|s| cond(&s)));
}
