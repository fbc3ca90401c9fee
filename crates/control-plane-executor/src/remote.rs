//! Remote nodes over SSH (the openssh crate): one multiplexed master connection per node, kept
//! between actions, with the node's Docker socket forwarded to a local unix socket so the same
//! bollard code serves local and remote engines.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use homelab_core::desired::SshTarget;
use openssh::{ForwardType, KnownHosts, Session, SessionBuilder};
use tokio::sync::Mutex;

/// What the executor's configuration says about SSH when a host file does not.
#[derive(Debug, Clone)]
pub struct SshDefaults {
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// A live connection to one node.
pub struct Remote {
    pub session: Session,
    pub docker: Docker,
    /// Holds the forwarded docker socket; removed on drop.
    _dir: tempfile::TempDir,
    /// How the node is shown in messages: `user@host:port`.
    pub shown: String,
}

/// Connections by node name. The executor runs one action per node at a time, so a node's
/// connection is never used by two actions at once.
#[derive(Default)]
pub struct Pool {
    nodes: Mutex<HashMap<String, Arc<Remote>>>,
}

pub fn shown(t: &SshTarget) -> String {
    format!("{}{}:{}", t.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(), t.host, t.port.unwrap_or(22))
}

impl Pool {
    /// The live connection to `node`, reconnecting when the master has gone away.
    pub async fn get(&self, node: &str, target: &SshTarget, defaults: &SshDefaults, docker_timeout: Duration) -> Result<Arc<Remote>, String> {
        // The map lock is never held across network calls: one slow node must not hold up the
        // others. Only one action per node runs at a time, so a node is never connected twice.
        let existing = self.nodes.lock().await.get(node).cloned();
        if let Some(r) = existing {
            let alive = tokio::time::timeout(defaults.connect_timeout, r.session.check()).await;
            if matches!(alive, Ok(Ok(()))) {
                return Ok(r);
            }
            tracing::info!(node, "ssh master connection is gone; reconnecting");
            self.nodes.lock().await.remove(node);
        }
        let remote = Arc::new(connect(node, target, defaults, docker_timeout).await?);
        self.nodes.lock().await.insert(node.to_owned(), remote.clone());
        Ok(remote)
    }

    /// Closes every master connection (at shutdown).
    pub async fn close_all(&self) {
        let nodes: Vec<_> = self.nodes.lock().await.drain().collect();
        for (node, remote) in nodes {
            if let Ok(remote) = Arc::try_unwrap(remote) {
                let Remote { session, _dir, .. } = remote;
                if let Err(e) = tokio::time::timeout(Duration::from_secs(5), session.close()).await.unwrap_or(Ok(())) {
                    tracing::debug!(node, error = %e, "closing ssh master connection");
                }
            }
        }
    }
}

async fn connect(node: &str, t: &SshTarget, defaults: &SshDefaults, docker_timeout: Duration) -> Result<Remote, String> {
    let shown = shown(t);
    let mut b = SessionBuilder::default();
    // The master's control socket goes to the temp folder: the daemon's home or working folder
    // may be read-only in a container.
    b.known_hosts_check(KnownHosts::Strict)
        .connect_timeout(defaults.connect_timeout)
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(std::env::temp_dir());
    if let Some(u) = &t.user {
        b.user(u.clone());
    }
    if let Some(p) = t.port {
        b.port(p);
    }
    if let Some(key) = t.identity_file.as_ref().map(PathBuf::from).or_else(|| defaults.key.clone()) {
        b.keyfile(key);
    }
    if let Some(kh) = t.known_hosts.as_ref().map(PathBuf::from).or_else(|| defaults.known_hosts.clone()) {
        b.user_known_hosts_file(kh);
    }
    // The master's own timeout covers the TCP connect; this one covers a stuck handshake.
    let session = tokio::time::timeout(defaults.connect_timeout * 2, b.connect(&t.host))
        .await
        .map_err(|_| format!("cannot reach node {node} over SSH ({shown}): timed out after {}s", (defaults.connect_timeout * 2).as_secs()))?
        .map_err(|e| format!("cannot reach node {node} over SSH ({shown}): {}", error_chain(&e)))?;

    let dir =
        tempfile::Builder::new().prefix("executor-docker-").tempdir().map_err(|e| format!("cannot create a folder for the forwarded docker socket: {e}"))?;
    let local = dir.path().join("docker.sock");
    let remote_sock = PathBuf::from(t.docker_socket.as_deref().unwrap_or("/var/run/docker.sock"));
    tokio::time::timeout(defaults.connect_timeout, session.request_port_forward(ForwardType::Local, local.clone(), remote_sock.clone()))
        .await
        .map_err(|_| format!("forwarding the docker socket of node {node} timed out"))?
        .map_err(|e| format!("cannot forward the docker socket {} of node {node} ({shown}): {}", remote_sock.display(), error_chain(&e)))?;
    let docker = crate::docker::connect(&local, docker_timeout).await.map_err(|e| format!("node {node} over SSH: {e}"))?;
    Ok(Remote { session, docker, _dir: dir, shown })
}

/// An error with its sources, on one line (openssh puts the useful part in the source).
pub use homelab_core::error_chain;
