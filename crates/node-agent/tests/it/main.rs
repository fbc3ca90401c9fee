//! Integration tests of the node agent against real parts: HTTP and TCP servers on loopback,
//! the Docker engine with the local busybox image, a real nats-server, and an ingest server
//! that goes away and comes back.

mod check_now;
mod checks;
mod cli;
mod docker;
mod mqtt;
mod nats;
mod readiness;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use homelab_core::Event;
use node_agent::Config;
use testkit::TempRoot;
use tokio_util::sync::CancellationToken;

/// An agent configuration writing into the temp data root, for node `node`.
pub fn config(tr: &TempRoot, node: &str) -> Config {
    Config {
        hosts: tr.hosts(),
        node: node.to_owned(),
        root: Some(tr.root()),
        control_plane: None,
        token: None,
        token_file: None,
        spool_dir: tr.path().join("spool"),
        check_interval: Duration::from_secs(3600),
        listen_port: 0,
        listen_addr: "127.0.0.1".parse().unwrap(),
        nats_url: None,
        once: false,
    }
}

/// A running agent daemon, stopped (and awaited) on drop of [`Agent::stop`].
pub struct Agent {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub addr: Option<std::net::SocketAddr>,
}

impl Agent {
    /// Starts the agent in this process, with its readiness endpoint on 127.0.0.1:<random>.
    pub async fn start(config: Config) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(node_agent::run_with_listener(config, shutdown.clone(), Some(listener)));
        Agent { shutdown, handle, addr: Some(addr) }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle).await.expect("agent stops within 20s").unwrap().unwrap();
    }
}

/// Runs `--once` and returns its result.
pub async fn run_once(mut config: Config) -> anyhow::Result<()> {
    config.once = true;
    tokio::time::timeout(Duration::from_secs(60), node_agent::run(config, CancellationToken::new())).await.expect("--once finishes within 60s")
}

/// Every event file under `root/events`, in file-name order.
pub fn events(root: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(root.join("events")) else { return out };
    let mut files: Vec<PathBuf> = days
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten().map(|f| f.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && n.ends_with(".json")))
        .collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    for f in files {
        let day = f.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&f).unwrap();
        out.push(Event::parse_file(&day, &name, &bytes).unwrap_or_else(|e| panic!("agent wrote an invalid event {name}: {e}")));
    }
    out
}

/// The events of one service.
pub fn service_events(root: &Path, service: &str) -> Vec<Event> {
    events(root).into_iter().filter(|e| e.service.as_deref() == Some(service)).collect()
}

/// Waits (without blocking the runtime's other tasks) until `cond` returns `Some`.
pub async fn wait_for<T: Send>(what: &str, deadline: Duration, cond: impl FnMut() -> Option<T> + Send) -> T {
    tokio::task::block_in_place(|| testkit::wait_for(what, deadline, cond))
}

/// A unique name for Docker objects and such: test tag, process id, counter.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("hl-agent-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A port on 127.0.0.1 with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
