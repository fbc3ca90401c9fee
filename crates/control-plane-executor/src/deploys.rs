//! A change of a compose project (redeploy, update, rollback) from the deploy history's point of
//! view: hold the current generation, record the change as running, and record how it ended.

use std::sync::Arc;

use homelab_core::deploy::{DeployOutcome, DeployRecord};
use homelab_core::{Action, ActionState, HostSpec};

use crate::ctx::Ctx;
use crate::hold::{self, NodeFiles, Target};
use crate::remote::Remote;

/// A change under way: what to write into the history when it ends, and what to record as
/// the project's new generation.
pub struct Deploy {
    node: String,
    service: String,
    compose_dir: String,
    files: Option<NodeFiles>,
    docker: bollard::Docker,
    used: hold::Files,
    record: DeployRecord,
    /// What holding did, in a line for the action's output.
    pub said: String,
}

/// Holds the project's current generation and records the change as running. A project that
/// cannot be held is not changed: the action fails before anything is stopped.
pub async fn begin(ctx: &Ctx, action: &Action, host: &HostSpec, service: &str, compose_dir: &str, remote: Option<Arc<Remote>>) -> Result<Deploy, String> {
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
    let target = Target { root: &ctx.root, docker: &docker, files: &files, node, service, compose_dir, action_id: &action.id, keep: ctx.hold_generations };
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
        record,
        said,
    };
    deploy.write(ctx);
    Ok(deploy)
}

impl Deploy {
    /// Records how the change ended (`Ok`: it ran; verification may refine it later). After
    /// a change that ran, the project's new generation is recorded and held too.
    pub async fn end(mut self, ctx: &Ctx, action_id: &str, result: Result<(), &str>) {
        let now = chrono::Utc::now();
        self.record.ended_at = Some(now);
        match result {
            Ok(()) => {
                self.record.outcome = DeployOutcome::Done;
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
                };
                match target.record_after(&self.used, now).await {
                    Ok(g) => self.record.images_after = Some(g.images_in_words()),
                    Err(e) => tracing::warn!(node = %self.node, service = %self.service, error = %e, "cannot record the new generation"),
                }
            }
            Err(e) => {
                self.record.outcome = DeployOutcome::Failed;
                self.record.detail = Some(homelab_core::one_line(e, 300));
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
