//! Verification, apart from running: after a successful run the action is moved to completed/
//! at once (with `result.verified: null`), its node takes its next action, and this one task
//! watches world state for every action waiting to be verified. When the target reports healthy
//! after the run's end (or the deadline passes), `result.verified` is written into the terminal
//! file: one atomic content swap (temp file, fsync, `RENAME_EXCHANGE`, fsync the folder) that
//! never recreates a file someone removed. Nothing is held meanwhile: no node slot, no run lock.
//!
//! Crash safety: a verification cut short (stop, crash, `kill -9`) leaves `verified: null` in
//! the terminal file; the next start finds recent successes with `null` whose deadline
//! (`finished_at + VERIFY_TIMEOUT`) has not passed and resumes watching them. One whose deadline
//! passed while no executor ran stays `null` (not checked).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Action, ActionState, DiskLevel, ServiceStatus, Timestamp};
use homelab_store::DataRoot;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ctx::Ctx;

/// How often world state is read while something waits to be verified. The observer writes it
/// at most every few hundred ms; one read serves every pending verification.
const POLL: Duration = Duration::from_millis(500);

/// An ended, successful action waiting for its verification.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub node: String,
    pub service: Option<String>,
    /// The terminal folder and file the verdict goes into.
    pub state: ActionState,
    pub file_name: String,
    /// The end of the run: the target must report healthy at or after it.
    pub ended: Timestamp,
    pub deadline: Timestamp,
    /// Decided but not written yet (a failing write is retried).
    decided: Option<bool>,
}

impl Pending {
    pub fn new(action: &Action, state: ActionState, file_name: String, ended: Timestamp, timeout: Duration) -> Pending {
        let deadline = ended + chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX);
        Pending { id: action.id.clone(), node: action.node.clone(), service: action.service.clone(), state, file_name, ended, deadline, decided: None }
    }
}

/// Where ended actions are handed to the verifier. The verifier ends (in `--once`) when every
/// sender is gone and nothing is left to verify.
#[derive(Clone)]
pub struct VerifyQueue(mpsc::UnboundedSender<Pending>);

impl VerifyQueue {
    pub fn push(&self, p: Pending) {
        let _ = self.0.send(p);
    }
}

pub fn queue() -> (VerifyQueue, mpsc::UnboundedReceiver<Pending>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (VerifyQueue(tx), rx)
}

/// Watches world state for every pending verification until each is decided and written, or
/// `shutdown` (what is left stays `null` on disk and is resumed at the next start).
pub async fn run(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Pending>, shutdown: CancellationToken) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut open = true;
    loop {
        if !pending.is_empty() {
            check(&ctx, &mut pending);
        }
        ctx.verifying.store(pending.len() as u64, Ordering::Relaxed);
        if !open && pending.is_empty() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                if !pending.is_empty() {
                    tracing::info!(left = pending.len(), "stopping with verifications open; the next start resumes them");
                }
                return;
            }
            m = rx.recv(), if open => match m {
                Some(p) => {
                    pending.push(p);
                    while let Ok(p) = rx.try_recv() {
                        pending.push(p);
                    }
                }
                None => open = false,
            },
            _ = tokio::time::sleep(POLL), if !pending.is_empty() => {}
        }
    }
}

/// One look at world state for everything pending; writes what is decided.
fn check(ctx: &Ctx, pending: &mut Vec<Pending>) {
    let now = chrono::Utc::now();
    let world = ctx.root.read_world().ok();
    for p in pending.iter_mut().filter(|p| p.decided.is_none()) {
        if world.as_ref().is_some_and(|(s, n)| verified_now(s.as_ref(), n.as_ref(), &p.node, p.service.as_deref(), p.ended)) {
            p.decided = Some(true);
        } else if now >= p.deadline {
            p.decided = Some(false);
        }
    }
    if !ctx.write_errors.retry_due() {
        return;
    }
    pending.retain(|p| {
        let Some(verified) = p.decided else { return true };
        match record_verified(&ctx.root, p.state, &p.file_name, verified) {
            Ok(written) => {
                tracing::info!(action = %p.id, verified, written, "verification ended");
                false
            }
            Err(e) => {
                ctx.write_errors.failed_io(&format!("recording the verification of action {}", p.id), &e);
                true
            }
        }
    });
}

/// Did the target report healthy (a node: reported without high disk pressure) at or after `ended`?
pub fn verified_now(services: Option<&ServicesFile>, nodes: Option<&NodesFile>, node: &str, service: Option<&str>, ended: Timestamp) -> bool {
    // World state carries milliseconds: compare at that precision, so a report in the same
    // millisecond as the end still counts.
    let ended = chrono::DurationRound::duration_trunc(ended, chrono::TimeDelta::milliseconds(1)).unwrap_or(ended);
    match service {
        Some(svc) => {
            services.and_then(|s| s.services.get(node).and_then(|m| m.get(svc))).is_some_and(|s| s.status == ServiceStatus::Healthy && s.last_event_at >= ended)
        }
        None => nodes.and_then(|n| n.nodes.get(node)).is_some_and(|n| n.disk_pressure != Some(DiskLevel::High) && n.last_seen.is_some_and(|t| t >= ended)),
    }
}

/// Writes `result.verified` into a terminal action file: read, change, atomic content swap
/// (never recreating a file that is gone), fsync the folder. Only the executor that ended an
/// action writes into its terminal file, and only this once, so no lock is needed. `Ok(false)`
/// when there was nothing to write (file gone, already verified).
pub fn record_verified(root: &DataRoot, state: ActionState, file_name: &str, verified: bool) -> std::io::Result<bool> {
    let dir = root.action_dir(state);
    let path = dir.join(file_name);
    let Some(mut action) = homelab_store::read_json_file::<Action>(&path)? else { return Ok(false) };
    let Some(result) = action.result.as_mut() else { return Ok(false) };
    if result.verified.is_some() {
        return Ok(false);
    }
    result.verified = Some(verified);
    action.updated_at = chrono::Utc::now();
    let bytes = serde_json::to_vec_pretty(&action).map_err(std::io::Error::other)?;
    match homelab_store::atomic::swap_content(&path, &bytes) {
        Ok(old) => {
            let _ = std::fs::remove_file(old);
            homelab_store::atomic::sync_dir(&dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// At start: recent successes in completed/ whose verification a stop cut short (`verified:
/// null`, not a dry run, deadline not passed). Only files named as ended within the last
/// `timeout` are read.
pub fn unfinished(root: &DataRoot, timeout: Duration) -> std::io::Result<Vec<Pending>> {
    if timeout.is_zero() {
        return Ok(Vec::new());
    }
    let now = chrono::Utc::now();
    let since = now - chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX);
    let state = ActionState::Completed;
    let dir = root.action_dir(state);
    let mut out = Vec::new();
    for name in homelab_store::list_names(&dir)? {
        let Some(ended) = name.strip_suffix(".json").and_then(|n| n.rsplit_once("--")).and_then(|(_, ts)| homelab_core::parse_compact_ts(ts)) else {
            continue;
        };
        if ended < since {
            continue;
        }
        let Ok(Some(action)) = homelab_store::read_json_file::<Action>(&dir.join(&name)) else { continue };
        let Some(r) = &action.result else { continue };
        let Some(finished) = r.finished_at else { continue };
        if !r.ok || r.dry_run || r.verified.is_some() {
            continue;
        }
        let p = Pending::new(&action, state, name, finished, timeout);
        if p.deadline > now {
            out.push(p);
        }
    }
    Ok(out)
}
