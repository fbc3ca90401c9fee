//! Running one claimed action to its end: the work itself (Docker API, compose), its timeout and
//! output, and the final move to completed/ or failed/ (verification follows in [`crate::verify`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use homelab_core::action::ActionResult;
use homelab_core::{Action, ActionState, ActionType, HostSpec, Timestamp};
use homelab_store::actions::RunLock;
use homelab_store::{DataRoot, TransitionError};
use tokio_util::sync::CancellationToken;

use crate::compose::Tail;
use crate::ctx::{ACTOR, Ctx};
use crate::deploys::Failed;

use crate::verify::{Pending, VerifyQueue};

/// The history note (and error prefix) of an action whose run was cut short by the executor stopping.
pub const INTERRUPTED: &str = "executor_interrupted";

/// What a successful run produced besides its output.
#[derive(Debug, Default)]
struct Outcome {
    exit_status: Option<i64>,
    bytes_reclaimed: Option<u64>,
    /// Decided during the run (a change watched over its verify window); `None`: the verifier
    /// decides after the end.
    verified: Option<bool>,
}

/// Runs a claimed action (it is in running/) to its end and moves it to completed/ or failed/.
/// `host` is `None` when the node is not in desired state (the action fails, naming that).
///
/// `release` is called as soon as the work on the node is done, before the end is written and
/// long before verification: the node is free for the next action at once. A successful run is
/// then handed to the [`Verifier`], which records `result.verified` in the terminal file later,
/// holding nothing.
pub async fn execute(
    ctx: Arc<Ctx>,
    action: Action,
    host: Option<HostSpec>,
    run_lock: RunLock,
    shutdown: CancellationToken,
    release: impl FnOnce(),
    verifier: &VerifyQueue,
) {
    let started = chrono::Utc::now();
    let tail = Tail::default();
    let mut interrupted = false;
    let outcome: Result<Outcome, Failed> = match &host {
        None => Err(format!("node {} is not in desired state (no hosts/*/services.yaml describes it)", action.node).into()),
        Some(host) if ctx.dry_run => {
            tail.push(describe(&ctx, &action, host).as_bytes());
            Ok(Outcome::default())
        }
        Some(host) => {
            tokio::select! {
                r = tokio::time::timeout(ctx.action_timeout, perform(&ctx, &action, host, &tail)) => match r {
                    Ok(r) => r,
                    Err(_) => Err(format!("{} on node {} timed out after {}s", action.kind, action.node, ctx.action_timeout.as_secs()).into()),
                },
                _ = shutdown.cancelled() => {
                    interrupted = true;
                    Err(format!("{INTERRUPTED}: the executor was shut down while this action ran").into())
                }
            }
        }
    };
    let finished = chrono::Utc::now();
    // The work on the node is over: the node takes its next action now.
    release();
    let mut result = ActionResult {
        ok: outcome.is_ok(),
        output: tail.text(),
        started_at: Some(started),
        finished_at: Some(finished),
        dry_run: ctx.dry_run,
        ..Default::default()
    };
    match &outcome {
        Ok(o) => {
            result.exit_status = o.exit_status;
            result.bytes_reclaimed = o.bytes_reclaimed;
            result.verified = o.verified;
        }
        Err(f) => {
            tracing::warn!(error = %f.error, "action failed");
            result.error = Some(f.error.clone());
            result.rolled_back_to = f.rolled_back_to.clone();
            result.evidence = f.evidence.clone();
            if let Some(code) = exit_code_in(&f.error) {
                result.exit_status = Some(code);
            }
        }
    }
    let to_verify = result.ok && result.verified.is_none() && !ctx.dry_run && !ctx.verify_timeout.is_zero();

    let (to, note) = if result.ok {
        (ActionState::Completed, None)
    } else if interrupted {
        (ActionState::Failed, Some(INTERRUPTED.to_owned()))
    } else {
        (ActionState::Failed, result.error.clone())
    };
    let recorded = record_end(&ctx, &action.id, to, note, result, finished, &shutdown).await;
    drop(run_lock);
    if to_verify && let Some(file_name) = recorded {
        verifier.push(Pending::new(&action, to, file_name, finished, ctx.verify_timeout));
    }
}

/// Moves an ended action from running/ to `to` with its result. When that cannot be written
/// (full disk, EIO, read-only file system) the action stays in running/, still under this
/// executor's run lock, so it is neither lost nor run again, and the move is retried with
/// backoff until it succeeds. If the executor is stopped first, the action is left in running/
/// and the next start moves it to failed/ as `executor_interrupted` (never run twice); the
/// result is in the log. Returns the terminal file's name once written.
async fn record_end(
    ctx: &Ctx,
    id: &str,
    to: ActionState,
    note: Option<String>,
    result: ActionResult,
    at: Timestamp,
    shutdown: &CancellationToken,
) -> Option<String> {
    let counter = if result.ok { &ctx.counters.completed } else { &ctx.counters.failed };
    // The end (`at`) is when the work ended, before the node was released, not when the disk
    // took it: it is the history entry's time and names the file.
    let mut waiting = false;
    let mut last_try = false;
    loop {
        let r = result.clone();
        let err = match ctx.root.transition(id, ActionState::Running, to, at, ACTOR, note.clone(), move |a| a.result = Some(r)) {
            Ok(_) => None,
            // Our rename happened but a later fsync failed, and the retry finds it moved: done.
            Err(TransitionError::NotInState { current: Some(now), .. }) if waiting && now == to => None,
            Err(e @ TransitionError::Io { .. }) => Some(e),
            Err(e) => {
                tracing::error!(error = %e, "cannot record the end of the action");
                return None;
            }
        };
        match err {
            None => {
                counter.fetch_add(1, Ordering::Relaxed);
                if waiting {
                    ctx.unrecorded.fetch_sub(1, Ordering::Relaxed);
                    ctx.write_errors.succeeded();
                }
                tracing::info!(state = %to, "action finished");
                return Some(DataRoot::action_file_name(id, to, at));
            }
            Some(e) => {
                let delay = ctx.write_errors.failed(&format!("recording the end of action {id}"), &e);
                if !waiting {
                    waiting = true;
                    ctx.unrecorded.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(state = %to, retry_in_secs = delay.as_secs_f64(), "the action has ended but its end cannot be written; it stays in running/ (not run again) until it can be");
                }
                if last_try {
                    ctx.unrecorded.fetch_sub(1, Ordering::Relaxed);
                    let result = serde_json::to_string(&result).unwrap_or_default();
                    tracing::error!(state = %to, %result, "stopping before the end of the action could be written: it stays in running/ and the next start moves it to failed/ as {INTERRUPTED}");
                    return None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // One last try right away, then give up.
                    _ = shutdown.cancelled() => last_try = true,
                }
            }
        }
    }
}

/// The status in a compose failure message, so `result.exit_status` carries it too.
fn exit_code_in(error: &str) -> Option<i64> {
    let rest = error.split("exit status ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok()
}

/// What a dry run records: the work it would do, in the words of the plan the UI shows.
fn describe(ctx: &Ctx, action: &Action, host: &HostSpec) -> String {
    let defaults =
        homelab_core::action::RunDefaults { action_timeout: ctx.action_timeout, verify_timeout: ctx.verify_timeout, prune_label: ctx.prune_label.clone() };
    format!("dry run: would {}\n", homelab_core::action::run_plan(action, Some(host), &defaults).describe())
}

async fn perform(ctx: &Ctx, action: &Action, host: &HostSpec, tail: &Tail) -> Result<Outcome, Failed> {
    let node = &host.node;
    let service_spec = || {
        let name = action.service.as_deref().ok_or_else(|| format!("{} action {} names no service", action.kind, action.id))?;
        let spec = host.services.get(name).ok_or_else(|| format!("service {name} is not in the desired state of node {node}"))?;
        Ok::<_, String>((name, spec))
    };
    match action.kind {
        ActionType::ContainerRestart => {
            let (name, spec) = service_spec()?;
            let docker = ctx.docker_for(host).await?;
            let done = crate::docker::restart_service(&docker, node, name, &spec.containers, spec.compose_dir.as_deref()).await?;
            tail.push(done.output.as_bytes());
            Ok(Outcome::default())
        }
        ActionType::Redeploy => {
            let (name, spec) = service_spec()?;
            let changed = crate::deploys::redeploy(ctx, action, host, name, spec, tail).await?;
            Ok(Outcome { exit_status: Some(0), bytes_reclaimed: None, verified: changed.verified })
        }
        ActionType::Rollback => {
            let (name, spec) = service_spec()?;
            let changed = crate::deploys::rollback(ctx, action, host, name, spec, tail).await?;
            Ok(Outcome { exit_status: Some(0), bytes_reclaimed: None, verified: changed.verified })
        }
        ActionType::DiskCleanup => {
            let allowed = host.disk.as_ref().and_then(|d| d.cleanup.as_ref()).is_some_and(|c| c.docker_prune);
            if !allowed {
                return Err(format!("disk.cleanup.docker_prune is not enabled for node {node}: nothing was pruned").into());
            }
            let docker = ctx.docker_for(host).await?;
            let done = crate::docker::prune(&docker, node, ctx.prune_label.as_deref()).await?;
            tail.push(done.output.as_bytes());
            Ok(Outcome { exit_status: None, bytes_reclaimed: done.bytes_reclaimed, verified: None })
        }
    }
}

/// What [`sweep_interrupted`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Moved to failed/.
    pub failed: usize,
    /// Left in running/ because the move could not be written: sweep again later.
    pub unwritten: usize,
}

/// At start: every action left in running/ whose runner is gone goes to failed/ with
/// `executor_interrupted`. One that another live executor (or this one) holds the run lock of
/// is left alone, so sweeping again while running is safe.
pub fn sweep_interrupted(ctx: &Ctx) -> std::io::Result<Swept> {
    let mut n = 0;
    let mut unwritten = 0;
    for stored in ctx.root.list_actions(ActionState::Running)? {
        let id = stored.action.id.clone();
        let Some(_lock) = ctx.root.try_lock_run(&id)? else {
            tracing::info!(action = %id, "running action belongs to another live executor; left alone");
            continue;
        };
        let now = chrono::Utc::now();
        let r = ctx.root.transition(&id, ActionState::Running, ActionState::Failed, now, ACTOR, Some(INTERRUPTED.to_owned()), |a| {
            let mut r = a.result.take().unwrap_or_default();
            r.ok = false;
            r.error = Some(format!(
                "{INTERRUPTED}: the executor stopped while this action was running; it was not run again (check the node before approving it anew)"
            ));
            r.finished_at.get_or_insert(now);
            a.result = Some(r);
        });
        match r {
            Ok(a) => {
                n += 1;
                ctx.counters.interrupted.fetch_add(1, Ordering::Relaxed);
                if let Some(service) = a.service.as_deref().filter(|_| matches!(a.kind, ActionType::Redeploy | ActionType::Rollback)) {
                    crate::deploys::Deploy::interrupted(ctx, &a.node, service, &a.id);
                }
                tracing::warn!(action = %id, "action was interrupted by an executor stop; moved to failed/");
            }
            Err(e @ TransitionError::Io { .. }) => {
                unwritten += 1;
                ctx.write_errors.failed(&format!("failing interrupted action {id}"), &e);
            }
            Err(e) => tracing::warn!(action = %id, error = %e, "cannot fail an interrupted action"),
        }
    }
    Ok(Swept { failed: n, unwritten })
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_status_is_read_back_from_the_message() {
        assert_eq!(super::exit_code_in("`docker-compose up -d --force-recreate` in /x on node a failed with exit status 1: boom"), Some(1));
        assert_eq!(super::exit_code_in("container x not found"), None);
    }

    #[test]
    fn tail_keeps_the_end() {
        let t = super::Tail::default();
        for _ in 0..300 {
            t.push(&[b'a'; 1000]);
        }
        t.push(b"END");
        let s = t.text();
        assert!(s.len() <= homelab_core::action::OUTPUT_TAIL_BYTES && s.ends_with("END"));
    }
}
