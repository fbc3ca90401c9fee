//! What every action run shares: the executor's settings, its counters and its handles (the SSH
//! pool, the local Docker engine, the write-error record), used by the runner, the verifier and
//! the loop alike.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use homelab_core::HostSpec;
use homelab_store::{DataRoot, WriteErrors};

use crate::remote::{self, SshDefaults};

/// Who the executor is in history entries.
pub const ACTOR: &str = "executor";

/// Settings and shared handles every action run uses.
pub struct Ctx {
    pub root: DataRoot,
    pub dry_run: bool,
    pub action_timeout: Duration,
    pub verify_timeout: Duration,
    pub docker_socket: PathBuf,
    pub prune_label: Option<String>,
    pub ssh: SshDefaults,
    pub pool: remote::Pool,
    local_docker: tokio::sync::Mutex<Option<Docker>>,
    pub counters: Counters,
    /// Failed writes (full disk, EIO, read-only): counted, reported in the heartbeat, retried.
    pub write_errors: WriteErrors,
    /// Actions that have ended but whose end could not be written yet (they wait in running/).
    pub unrecorded: AtomicU64,
    /// Ended actions whose verification is still open.
    pub verifying: AtomicU64,
    /// How many generations of each compose service stay held (`HOLD_GENERATIONS`).
    pub hold_generations: usize,
}

#[derive(Default)]
pub struct Counters {
    pub claimed: AtomicU64,
    pub claims_lost: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub interrupted: AtomicU64,
    pub gated: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("actions_claimed", &self.claimed),
            ("claims_lost", &self.claims_lost),
            ("actions_completed", &self.completed),
            ("actions_failed", &self.failed),
            ("actions_interrupted", &self.interrupted),
            ("gate_waits", &self.gated),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.load(Ordering::Relaxed)))
        .collect()
    }
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: DataRoot,
        dry_run: bool,
        action_timeout: Duration,
        verify_timeout: Duration,
        docker_socket: PathBuf,
        prune_label: Option<String>,
        ssh: SshDefaults,
    ) -> Ctx {
        Ctx {
            root,
            dry_run,
            action_timeout,
            verify_timeout,
            docker_socket,
            prune_label,
            ssh,
            pool: remote::Pool::default(),
            local_docker: tokio::sync::Mutex::new(None),
            counters: Counters::default(),
            write_errors: WriteErrors::new(ACTOR),
            unrecorded: AtomicU64::new(0),
            verifying: AtomicU64::new(0),
            hold_generations: homelab_core::deploy::KEEP_GENERATIONS,
        }
    }

    /// The Docker engine of a node: the local socket, or the node's socket forwarded over SSH.
    pub(crate) async fn docker_for(&self, host: &HostSpec) -> Result<Docker, String> {
        let timeout = self.action_timeout;
        match &host.ssh {
            Some(t) => Ok(self.pool.get(&host.node, t, &self.ssh, timeout).await?.docker.clone()),
            None => {
                let mut cached = self.local_docker.lock().await;
                if let Some(d) = cached.as_ref() {
                    return Ok(d.clone());
                }
                let d = crate::docker::connect(&self.docker_socket, timeout).await?;
                *cached = Some(d.clone());
                Ok(d)
            }
        }
    }
}
