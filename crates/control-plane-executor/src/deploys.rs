//! A change of a compose project (redeploy, update, rollback) from the deploy history's point of
//! view: hold the current generation, record the change as running, and record how it ended.

use std::sync::Arc;

use homelab_core::deploy::{DeployOutcome, DeployRecord};
use homelab_core::{Action, ActionState, HostSpec, ServiceSpec};

use crate::compose::{Tail, compose_local, compose_remote};
use crate::ctx::Ctx;
use crate::hold::{self, NodeFiles, Target};
use crate::remote::Remote;
use crate::window::{Failure, LOG_LINES, Watched, env_values, last_logs};

/// Why a run failed: the error, and for a change that was rolled back, where to and why.
#[derive(Debug, Default)]
pub struct Failed {
    pub error: String,
    pub rolled_back_to: Option<String>,
    pub evidence: Option<String>,
}

impl From<String> for Failed {
    fn from(error: String) -> Failed {
        Failed { error, ..Default::default() }
    }
}

/// How a change ended, for its history record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It ran; not verified (verification is off).
    Done,
    /// It ran and held up over its verify window.
    Verified,
    /// It failed (and was not rolled back, or the rollback failed too): why.
    Failed(String),
    /// It failed its checks and the project is back on the held generation, healthy: why.
    RolledBack(String),
}

/// A change under way: what to write into the history when it ends, and what to record as
/// the project's new generation.
pub struct Deploy {
    node: String,
    service: String,
    compose_dir: String,
    files: Option<NodeFiles>,
    pub docker: bollard::Docker,
    /// The files the change starts the project from (what the new generation records).
    pub used: hold::Files,
    /// The generation held before the change: what a rollback returns to.
    pub held: homelab_core::deploy::Generation,
    record: DeployRecord,
    /// What holding did, in a line for the action's output.
    pub said: String,
}

/// Holds the project's current generation and records the change as running. A project that
/// cannot be held is not changed: the action fails before anything is stopped.
pub async fn begin(
    ctx: &Ctx,
    action: &Action,
    host: &HostSpec,
    service: &str,
    compose_dir: &str,
    remote: Option<Arc<Remote>>,
    also_keep: Option<&str>,
) -> Result<Deploy, String> {
    let node = host.node.as_str();
    let docker = match &remote {
        Some(r) => r.docker.clone(),
        None => ctx.docker_for(host).await.map_err(|e| format!("the Docker engine of node {node} is not reachable ({e}); nothing was changed"))?,
    };
    let files = match remote {
        Some(r) => NodeFiles::Remote(r),
        None => NodeFiles::Local,
    };
    // On the wire to the millisecond: the record is found again by its start.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let project = hold::project_of(&docker, &files, compose_dir).await.map_err(|e| format!("nothing was changed: {e}"))?;
    let target = Target {
        root: &ctx.root,
        docker: &docker,
        files: &files,
        node,
        service,
        compose_dir,
        action_id: &action.id,
        keep: ctx.hold_generations,
        also_keep,
        project,
    };
    let held = target.hold(now).await.map_err(|e| format!("nothing was changed: cannot hold the current generation of {node}/{service}: {e}"))?;
    let g = &held.generation;
    let said = format!("held generation {} of {node}/{service}{}: {}\n", g.id, if held.new { "" } else { " (held before)" }, g.images_in_words());
    let approved_by = action.history.iter().rev().find(|h| h.state == ActionState::Approved).map(|h| h.by.clone());
    let record = DeployRecord {
        action_id: action.id.clone(),
        kind: action.kind,
        started_at: now,
        ended_at: None,
        approved_by,
        held: g.id.clone(),
        images_before: g.images_in_words(),
        images_after: None,
        outcome: DeployOutcome::Running,
        rolled_back_to: None,
        detail: None,
    };
    let deploy = Deploy {
        node: node.to_owned(),
        service: service.to_owned(),
        compose_dir: compose_dir.to_owned(),
        files: Some(files),
        docker,
        used: held.files,
        held: held.generation.clone(),
        record,
        said,
    };
    deploy.write(ctx);
    Ok(deploy)
}

impl Deploy {
    /// Records how the change ended. After a change that ran (`Done`, `Verified`), the
    /// project's new generation is recorded and held too.
    pub async fn end(mut self, ctx: &Ctx, action_id: &str, end: End) {
        let now = chrono::Utc::now();
        self.record.ended_at = Some(now);
        match end {
            End::Done | End::Verified => {
                self.record.outcome = if end == End::Verified { DeployOutcome::Verified } else { DeployOutcome::Done };
                let files = self.files.take().unwrap_or(NodeFiles::Local);
                let target = Target {
                    root: &ctx.root,
                    docker: &self.docker,
                    files: &files,
                    node: &self.node,
                    service: &self.service,
                    compose_dir: &self.compose_dir,
                    action_id,
                    keep: ctx.hold_generations,
                    also_keep: None,
                    project: self.held.project.clone(),
                };
                match target.record_after(&self.used, now).await {
                    Ok(g) => self.record.images_after = Some(g.images_in_words()),
                    Err(e) => tracing::warn!(node = %self.node, service = %self.service, error = %e, "cannot record the new generation"),
                }
            }
            End::Failed(why) => {
                self.record.outcome = DeployOutcome::Failed;
                self.record.detail = Some(homelab_core::one_line(&why, 300));
            }
            End::RolledBack(why) => {
                self.record.outcome = DeployOutcome::RolledBack;
                self.record.rolled_back_to = Some(self.held.id.clone());
                self.record.images_after = Some(self.held.images_in_words());
                self.record.detail = Some(homelab_core::one_line(&why, 300));
            }
        }
        self.write(ctx);
    }

    /// Marks the change of `action_id` that an executor stop cut short: its held generation
    /// stays held (a rollback to it is one click).
    pub fn interrupted(ctx: &Ctx, node: &str, service: &str, action_id: &str) {
        let r = ctx.root.update_deploy_history(node, service, |h| {
            for r in h.records.iter_mut().filter(|r| r.action_id == action_id && r.outcome == DeployOutcome::Running) {
                r.outcome = DeployOutcome::Interrupted;
                r.ended_at = Some(chrono::Utc::now());
                r.detail = Some("the executor stopped in the middle of the change; the generation held before it is still held".into());
            }
        });
        if let Err(e) = r {
            tracing::warn!(node, service, error = %e, "cannot mark the interrupted change in the deploy history");
        }
    }

    /// The history is a record for people: a write that fails is logged, never fails the change.
    fn write(&self, ctx: &Ctx) {
        if let Err(e) = ctx.root.update_deploy_history(&self.node, &self.service, |h| h.upsert(self.record.clone())) {
            tracing::warn!(node = %self.node, service = %self.service, error = %e, "cannot write the deploy history");
        }
    }
}

/// A change that ran: whether it held up over its verify window (`None`: not watched).
pub struct Changed {
    pub verified: Option<bool>,
}

/// A redeploy: hold, `up -d --force-recreate`, watch the verify window, and when it fails
/// (or compose fails half-way) roll back to the held generation and watch again.
pub async fn redeploy(ctx: &Ctx, action: &Action, host: &HostSpec, name: &str, spec: &ServiceSpec, tail: &Tail) -> Result<Changed, Failed> {
    let node = host.node.as_str();
    let dir = spec.compose_dir.as_deref().ok_or_else(|| format!("service {name} on node {node} has no compose_dir: nothing to redeploy"))?;
    let argv = homelab_core::action::compose_argv(host);
    let remote = match &host.ssh {
        None => None,
        Some(t) => Some(ctx.pool.get(node, t, &ctx.ssh, ctx.action_timeout).await?),
    };
    let deploy = begin(ctx, action, host, name, dir, remote.clone(), None).await?;
    tail.push(deploy.said.as_bytes());
    let ran = match &remote {
        None => compose_local(&argv, dir, node, tail).await,
        Some(remote) => compose_remote(remote, &argv, dir, node, tail).await,
    };
    let failure = match ran {
        Err(e) => e,
        Ok((0, _)) => {
            let verified = "verified: healthy over its verify window\n".to_owned();
            return judge(ctx, action, host, remote, deploy, spec, &format!("redeploy of {node}/{name} failed its checks"), verified, tail).await;
        }
        Ok((status, errors)) => {
            // The last line on stderr says why; stdout only when stderr was silent.
            let last_line = |text: &str| text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned());
            let last = last_line(&errors).or_else(|| last_line(&tail.text())).unwrap_or_default();
            format!("`{}` in {dir} on node {node} failed with exit status {status}: {last}", argv.join(" "))
        }
    };
    // Compose failed: the project may be half-done.
    roll_back_after(ctx, action, host, remote, deploy, spec, &failure, None, tail).await
}

/// After a failed change: roll back when the service allows it and there is something to roll
/// back to, watch again, and say how it ended.
#[allow(clippy::too_many_arguments)]
async fn roll_back_after(
    ctx: &Ctx,
    action: &Action,
    host: &HostSpec,
    remote: Option<Arc<Remote>>,
    deploy: Deploy,
    spec: &ServiceSpec,
    failure: &str,
    evidence: Option<String>,
    tail: &Tail,
) -> Result<Changed, Failed> {
    let (node, name) = (deploy.node.clone(), deploy.service.clone());
    let held = deploy.held.clone();
    let fail = |error: String, rolled_back_to: Option<String>| Failed { error, rolled_back_to, evidence: evidence.clone() };
    if !spec.rollback || held.containers.is_empty() || ctx.verify_timeout.is_zero() {
        let why = if !spec.rollback { "not rolled back (rollback: false)" } else { "nothing held to roll back to" };
        let error = format!("{failure}; {why}");
        deploy.end(ctx, &action.id, End::Failed(error.clone())).await;
        return Err(fail(error, None));
    }
    if let Err(e) = crate::rollback::roll_back(&ctx.root, &deploy.docker, host, remote.as_ref(), &held, tail).await {
        let error = format!("{failure}; the rollback to generation {} failed too: {e}; stopped", held.id);
        deploy.end(ctx, &action.id, End::Failed(error.clone())).await;
        return Err(fail(error, None));
    }
    let watched = watched(ctx, &deploy, &node, &name, spec);
    match watched.watch(now_ms(), spec.verify_window()).await {
        Ok(()) => {
            let error = format!("{failure}; rolled back to generation {}; healthy again", held.id);
            tail.push(format!("rolled back to generation {}: healthy over its verify window\n", held.id).as_bytes());
            deploy.end(ctx, &action.id, End::RolledBack(error.clone())).await;
            Err(fail(error, Some(held.id)))
        }
        Err(f) => {
            let error = format!("{failure}; rolled back to generation {}, but that failed its checks too ({}); stopped", held.id, f.what);
            deploy.end(ctx, &action.id, End::Failed(error.clone())).await;
            Err(fail(error, Some(held.id)))
        }
    }
}

fn watched<'a>(ctx: &'a Ctx, deploy: &'a Deploy, node: &'a str, service: &'a str, spec: &ServiceSpec) -> Watched<'a> {
    Watched {
        root: &ctx.root,
        docker: &deploy.docker,
        node,
        service,
        project: &deploy.held.project,
        checked: spec.monitor && spec.checks.iter().any(|c| c.is_local()),
    }
}

/// The failure in words, with the failing container's last log lines (env values masked).
async fn evidence(deploy: &Deploy, f: &Failure) -> String {
    let mut out = f.what.clone();
    if let Some(c) = &f.container {
        let secrets: Vec<String> = deploy.used.contents.files.iter().filter(|(p, _)| p.ends_with(".env")).flat_map(|(_, text)| env_values(text)).collect();
        let logs = last_logs(&deploy.docker, c, &secrets).await;
        out.push_str(&format!("\nlast {LOG_LINES} log lines of {c}:\n{logs}"));
    }
    out
}

fn now_ms() -> homelab_core::Timestamp {
    chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3)
}

/// A rollback an operator asked for: hold what runs now, recreate the project from the chosen
/// held generation, watch the verify window, and when it fails return to what ran before.
pub async fn rollback(ctx: &Ctx, action: &Action, host: &HostSpec, name: &str, spec: &ServiceSpec, tail: &Tail) -> Result<Changed, Failed> {
    let node = host.node.as_str();
    let dir = spec.compose_dir.as_deref().ok_or_else(|| format!("service {name} on node {node} has no compose_dir: nothing to roll back"))?;
    let wanted = action.generation.as_deref().ok_or_else(|| format!("rollback action {} names no generation", action.id))?;
    let target = match ctx.root.read_generation(node, name, wanted) {
        Ok(Some(g)) => g,
        Ok(None) => return Err(format!("generation {wanted} of {node}/{name} is no longer held: nothing was changed").into()),
        Err(e) => return Err(format!("cannot read generation {wanted} of {node}/{name}: {e}; nothing was changed").into()),
    };
    let remote = match &host.ssh {
        None => None,
        Some(t) => Some(ctx.pool.get(node, t, &ctx.ssh, ctx.action_timeout).await?),
    };
    let mut deploy = begin(ctx, action, host, name, dir, remote.clone(), Some(wanted)).await?;
    tail.push(deploy.said.as_bytes());
    // What the rollback starts the project from: the target's files (its new generation).
    deploy.used =
        hold::Files { held: target.files.clone(), contents: homelab_store::deploys::HeldContents { files: crate::hold::held_files(&ctx.root, &target)? } };
    if let Err(e) = crate::rollback::roll_back(&ctx.root, &deploy.docker, host, remote.as_ref(), &target, tail).await {
        return roll_back_after(ctx, action, host, remote, deploy, spec, &format!("rollback of {node}/{name} to generation {wanted} failed: {e}"), None, tail)
            .await;
    }
    let verified = format!("verified: healthy on generation {wanted} over its verify window\n");
    judge(ctx, action, host, remote, deploy, spec, &format!("rollback of {node}/{name} to generation {wanted} failed its checks"), verified, tail).await
}

/// After a change ran: watch its verify window (unless verification is off); verified, or
/// evidence and back to the held generation (`failed` starts the error's words).
#[allow(clippy::too_many_arguments)]
async fn judge(
    ctx: &Ctx,
    action: &Action,
    host: &HostSpec,
    remote: Option<Arc<Remote>>,
    deploy: Deploy,
    spec: &ServiceSpec,
    failed: &str,
    verified: String,
    tail: &Tail,
) -> Result<Changed, Failed> {
    if ctx.verify_timeout.is_zero() {
        deploy.end(ctx, &action.id, End::Done).await;
        return Ok(Changed { verified: None });
    }
    let watched = watched(ctx, &deploy, &host.node, &deploy.service, spec);
    match watched.watch(now_ms(), spec.verify_window()).await {
        Ok(()) => {
            tail.push(verified.as_bytes());
            deploy.end(ctx, &action.id, End::Verified).await;
            Ok(Changed { verified: Some(true) })
        }
        Err(f) => {
            let evidence = evidence(&deploy, &f).await;
            roll_back_after(ctx, action, host, remote, deploy, spec, &format!("{failed}: {}", f.what), Some(evidence), tail).await
        }
    }
}
