//! Running one claimed action to its end: the work itself (Docker API, compose), its timeout and
//! output, and the final move to completed/ or failed/ (verification follows in [`crate::verify`]).

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homelab_core::action::{ActionResult, output_tail};
use homelab_core::{Action, ActionState, ActionType, HostSpec, Timestamp};
use homelab_store::actions::RunLock;
use homelab_store::{DataRoot, TransitionError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::ctx::{ACTOR, Ctx};
use crate::remote;
use crate::verify::{Pending, VerifyQueue};

/// The history note (and error prefix) of an action whose run was cut short by the executor stopping.
pub const INTERRUPTED: &str = "executor_interrupted";

/// The output of a run, kept to its tail as it arrives (a chatty compose cannot fill memory).
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    pub fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(bytes);
        let keep = 2 * homelab_core::action::OUTPUT_TAIL_BYTES;
        if buf.len() > keep {
            let cut = buf.len() - keep;
            buf.drain(..cut);
        }
    }

    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        output_tail(&String::from_utf8_lossy(&buf))
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, tails: &[&Tail]) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for tail in tails {
            tail.push(&chunk[..n]);
        }
    }
}

/// What a successful run produced besides its output.
#[derive(Debug, Default)]
struct Outcome {
    exit_status: Option<i64>,
    bytes_reclaimed: Option<u64>,
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
    let outcome: Result<Outcome, String> = match &host {
        None => Err(format!("node {} is not in desired state (no hosts/*/services.yaml describes it)", action.node)),
        Some(host) if ctx.dry_run => {
            tail.push(describe(&action, host).as_bytes());
            Ok(Outcome::default())
        }
        Some(host) => {
            tokio::select! {
                r = tokio::time::timeout(ctx.action_timeout, perform(&ctx, &action, host, &tail)) => match r {
                    Ok(r) => r,
                    Err(_) => Err(format!("{} on node {} timed out after {}s", action.kind, action.node, ctx.action_timeout.as_secs())),
                },
                _ = shutdown.cancelled() => {
                    interrupted = true;
                    Err(format!("{INTERRUPTED}: the executor was shut down while this action ran"))
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
        }
        Err(e) => {
            tracing::warn!(error = %e, "action failed");
            result.error = Some(e.clone());
            if let Some(code) = exit_code_in(e) {
                result.exit_status = Some(code);
            }
        }
    }
    let to_verify = result.ok && !ctx.dry_run && !ctx.verify_timeout.is_zero();

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

/// What a dry run records: the work it would do, in words.
fn describe(action: &Action, host: &HostSpec) -> String {
    let where_ = match &host.ssh {
        Some(t) => format!("on node {} over SSH ({})", host.node, remote::shown(t)),
        None => format!("on node {} (local)", host.node),
    };
    let service = action.service.as_deref().unwrap_or("-");
    let spec = host.services.get(service);
    match action.kind {
        ActionType::ContainerRestart => match spec {
            Some(s) if !s.containers.is_empty() => format!("dry run: would restart containers {} {where_}\n", s.containers.join(", ")),
            _ => format!("dry run: would restart the containers labelled com.docker.compose.service={service} {where_}\n"),
        },
        ActionType::Redeploy => {
            let dir = spec.and_then(|s| s.compose_dir.as_deref()).unwrap_or("(no compose_dir)");
            format!("dry run: would run `{}` in {dir} {where_}\n", compose_argv(host).join(" "))
        }
        ActionType::DiskCleanup => format!("dry run: would prune stopped containers, dangling images and build cache {where_}\n"),
    }
}

fn compose_argv(host: &HostSpec) -> Vec<String> {
    let mut argv = host.compose_command.clone();
    argv.extend(["up", "-d", "--force-recreate"].map(String::from));
    argv
}

async fn perform(ctx: &Ctx, action: &Action, host: &HostSpec, tail: &Tail) -> Result<Outcome, String> {
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
            let dir = spec.compose_dir.as_deref().ok_or_else(|| format!("service {name} on node {node} has no compose_dir: nothing to redeploy"))?;
            let argv = compose_argv(host);
            let remote = match &host.ssh {
                None => None,
                Some(t) => Some(ctx.pool.get(node, t, &ctx.ssh, ctx.action_timeout).await?),
            };
            let deploy = crate::deploys::begin(ctx, action, host, name, dir, remote.clone()).await?;
            tail.push(deploy.said.as_bytes());
            let ran = match &remote {
                None => compose_local(&argv, dir, node, tail).await,
                Some(remote) => compose_remote(remote, &argv, dir, node, tail).await,
            };
            let (status, errors) = match ran {
                Ok(r) => r,
                Err(e) => {
                    deploy.end(ctx, &action.id, Err(&e)).await;
                    return Err(e);
                }
            };
            if status != 0 {
                // The last line on stderr says why; stdout only when stderr was silent.
                let last_line = |text: &str| text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned());
                let last = last_line(&errors).or_else(|| last_line(&tail.text())).unwrap_or_default();
                let failed = format!("`{}` in {dir} on node {node} failed with exit status {status}", argv.join(" "));
                // Compose's own words for a missing engine can be a long traceback: say it plainly first.
                let engine_down = match &host.ssh {
                    None => crate::docker::connect(&ctx.docker_socket, Duration::from_secs(5)).await.err(),
                    Some(_) => None,
                };
                let error = match engine_down {
                    Some(e) => format!("the Docker engine of node {node} is not reachable ({e}); {failed}: {last}"),
                    None => format!("{failed}: {last}"),
                };
                deploy.end(ctx, &action.id, Err(&error)).await;
                return Err(error);
            }
            deploy.end(ctx, &action.id, Ok(())).await;
            Ok(Outcome { exit_status: Some(0), bytes_reclaimed: None })
        }
        ActionType::DiskCleanup => {
            let allowed = host.disk.as_ref().and_then(|d| d.cleanup.as_ref()).is_some_and(|c| c.docker_prune);
            if !allowed {
                return Err(format!("disk.cleanup.docker_prune is not enabled for node {node}: nothing was pruned"));
            }
            let docker = ctx.docker_for(host).await?;
            let done = crate::docker::prune(&docker, node, ctx.prune_label.as_deref()).await?;
            tail.push(done.output.as_bytes());
            Ok(Outcome { exit_status: None, bytes_reclaimed: done.bytes_reclaimed })
        }
    }
}

/// Copies a child's stdout and stderr into the tail at the same time, until both close.
/// Returns what came on stderr (its tail), where a failing command says why.
async fn pump_output(out: Option<impl AsyncRead + Unpin>, err: Option<impl AsyncRead + Unpin>, tail: &Tail) -> String {
    let errors = Tail::default();
    tokio::join!(
        async {
            if let Some(o) = out {
                pump(o, &[tail]).await
            }
        },
        async {
            if let Some(e) = err {
                pump(e, &[tail, &errors]).await
            }
        }
    );
    errors.text()
}

/// Runs the compose argv in `dir` on this host; returns its exit status.
/// Returns the exit status and what the command wrote to stderr.
async fn compose_local(argv: &[String], dir: &str, node: &str, tail: &Tail) -> Result<(i64, String), String> {
    if !Path::new(dir).is_dir() {
        return Err(format!("compose_dir {dir} of node {node} does not exist"));
    }
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run `{}` in {dir} on node {node}: {e}", argv.join(" ")))?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (status, errors) = tokio::join!(child.wait(), pump_output(out, err, tail));
    let status = status.map_err(|e| format!("waiting for `{}` on node {node}: {e}", argv.join(" ")))?;
    Ok((status.code().map(i64::from).unwrap_or(-1), errors))
}

/// Runs the compose argv in `dir` on a remote node. The remote shell only ever sees a fixed
/// script; the folder and every argument travel as separate, quoted positional parameters.
async fn compose_remote(remote: &remote::Remote, argv: &[String], dir: &str, node: &str, tail: &Tail) -> Result<(i64, String), String> {
    let mut cmd = remote.session.command("sh");
    cmd.arg("-c")
        .arg(r#"cd -- "$1" || exit 125; shift; exec "$@""#)
        .arg("sh")
        .arg(dir)
        .args(argv)
        .stdin(openssh::Stdio::null())
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped());
    let mut child = cmd.spawn().await.map_err(|e| format!("cannot run compose on node {node} over SSH ({}): {}", remote.shown, remote::error_chain(&e)))?;
    let (out, err) = (child.stdout().take(), child.stderr().take());
    let (status, errors) = tokio::join!(child.wait(), pump_output(out, err, tail));
    let status = status.map_err(|e| format!("compose on node {node} over SSH ({}): {}", remote.shown, remote::error_chain(&e)))?;
    let code = status.code().map(i64::from).unwrap_or(-1);
    if code == 125 {
        return Err(format!("compose_dir {dir} does not exist on node {node}"));
    }
    Ok((code, errors))
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
                if let Some(service) = a.service.as_deref().filter(|_| a.kind == ActionType::Redeploy) {
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
