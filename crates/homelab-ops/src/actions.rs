//! Deciding on actions: approve, reject, and "propose again" (retry).

use homelab_core::{Action, ActionId, ActionState};
use homelab_store::TransitionError;

use crate::Ops;
use crate::actor::Actor;
use crate::audit::Outcome;
use crate::permit::{Command, Scope, permit};

/// An operator's decision on a pending action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `note`: a line for the history (`approved in Telegram by Ann`).
    Approve { note: Option<String> },
    /// `reason`: why, kept in the history (and it snoozes the proposal); one line of at most
    /// 500 characters, or a default when empty.
    Reject { reason: Option<String> },
}

impl Decision {
    pub const APPROVE: Decision = Decision::Approve { note: None };

    fn command(&self) -> Command {
        match self {
            Decision::Approve { .. } => Command::Approve,
            Decision::Reject { .. } => Command::Reject,
        }
    }

    /// The audit log's `what`.
    pub fn what(&self) -> &'static str {
        match self {
            Decision::Approve { .. } => "approve",
            Decision::Reject { .. } => "reject",
        }
    }
}

/// Why a decision was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no action {0}")]
    NotFound(ActionId),
    #[error("action {id} is {state}, no longer pending")]
    NotPending { id: ActionId, state: ActionState },
    #[error("{0}")]
    Store(TransitionError),
    /// The actor's role or groups do not allow it (nothing changed).
    #[error("not allowed: {0}")]
    Forbidden(String),
}

impl DecideError {
    fn outcome(&self) -> Outcome {
        match self {
            DecideError::Forbidden(_) => Outcome::Refused,
            DecideError::Store(_) => Outcome::Failed,
            DecideError::NotFound(_) | DecideError::NotPending { .. } => Outcome::Conflict,
        }
    }

    /// The IO error behind a failed write, if that is why.
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            DecideError::Store(TransitionError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }
}

/// Why a retry ("propose again") was not written.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("action {id} is already {state}: nothing to propose again")]
    Active { id: ActionId, state: ActionState },
    #[error("no drift holds for {id} in {}: there is nothing to fix", homelab_store::Doc::Drift)]
    NoDrift { id: ActionId },
    #[error("the supervisor has not reported drift yet (no {}): cannot tell whether drift holds for {id}", homelab_store::Doc::Drift)]
    NotReported { id: ActionId },
    #[error("{} does not parse ({reason}): cannot tell whether drift holds for {id}", homelab_store::Doc::Drift)]
    DriftUnreadable { id: ActionId, reason: String },
    #[error("{0}")]
    Store(TransitionError),
    /// The actor's role or groups do not allow it (nothing written).
    #[error("not allowed: {0}")]
    Forbidden(String),
}

impl RetryError {
    fn outcome(&self) -> Outcome {
        match self {
            RetryError::Forbidden(_) => Outcome::Refused,
            RetryError::Store(_) => Outcome::Failed,
            _ => Outcome::Conflict,
        }
    }

    /// The IO error behind a failed write, if that is why.
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            RetryError::Store(TransitionError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }
}

/// A reject reason as stored: one line, printable, at most 500 characters.
pub fn clean_reason(reason: Option<&str>) -> String {
    let r = homelab_core::one_line(reason.unwrap_or(""), 500);
    let r = r.trim();
    if r.is_empty() { "rejected by operator (no reason given)".to_owned() } else { r.to_owned() }
}

impl Ops {
    /// Approves or rejects a pending action: the rename pending → approved/rejected, with the
    /// actor's `by` and the note or reason in the history. The actor's role and groups are
    /// checked against the action's node first (nothing changes on a refusal). Exactly one of
    /// several racing deciders wins; the others get `NotPending` with the state it is in now.
    pub fn decide(&self, actor: &Actor, id: &ActionId, decision: Decision) -> Result<Action, DecideError> {
        let command = decision.command();
        let what = decision.what();
        let result = self.decide_inner(actor, id, command, decision);
        self.record(actor, what, id, &result, DecideError::outcome);
        result
    }

    fn decide_inner(&self, actor: &Actor, id: &ActionId, command: Command, decision: Decision) -> Result<Action, DecideError> {
        // The node of the action, from its file; no such action: viewers are still refused.
        let node = self.root.find_action(id).ok().flatten().map(|f| f.action.node);
        match &node {
            Some(n) => self.permit_on(actor, command, n),
            None => permit(actor, command, Scope::Unknown),
        }
        .map_err(DecideError::Forbidden)?;
        let (to, note) = match decision {
            Decision::Approve { note } => (ActionState::Approved, note.map(|n| homelab_core::one_line(&n, 500))),
            Decision::Reject { reason } => (ActionState::Rejected, Some(clean_reason(reason.as_deref()))),
        };
        self.root.transition(id, ActionState::Pending, to, chrono::Utc::now(), &actor.by, note, |_| {}).map_err(|e| match e {
            TransitionError::NotInState { current: None, .. } => DecideError::NotFound(id.clone()),
            TransitionError::NotInState { current: Some(state), .. } | TransitionError::AlreadyExists { state, .. } => {
                DecideError::NotPending { id: id.clone(), state }
            }
            other => DecideError::Store(other),
        })
    }

    /// Proposes action `id` again (after `remediation_exhausted`, a rejection snooze, …): a
    /// fresh pending action with that id, history by the actor, note `proposed again by …`.
    ///
    /// The decision is the core's `plan::retry_action` on the supervisor's current drift
    /// (read, never recomputed); the write is `create_action`, which never overwrites and
    /// refuses an id active anywhere (the answer to a race). The actor's role and groups are
    /// checked on the node of the action about to be written; a viewer is refused even when
    /// there is nothing to retry.
    pub fn retry(&self, actor: &Actor, id: &ActionId) -> Result<Action, RetryError> {
        let result = self.retry_inner(actor, id);
        self.record(actor, "retry", id, &result, RetryError::outcome);
        result
    }

    fn retry_inner(&self, actor: &Actor, id: &ActionId) -> Result<Action, RetryError> {
        permit(actor, Command::Retry, Scope::Unknown).map_err(RetryError::Forbidden)?;
        let drift = match self.root.read_drift() {
            Ok(Some(d)) => d,
            Ok(None) => return Err(RetryError::NotReported { id: id.clone() }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let shown = format!("{}: ", self.root.display_path(homelab_store::Doc::Drift).display());
                let reason = e.to_string();
                return Err(RetryError::DriftUnreadable { id: id.clone(), reason: reason.strip_prefix(&shown).unwrap_or(&reason).to_owned() });
            }
            Err(e) => return Err(RetryError::Store(TransitionError::Io { id: id.to_string(), source: e })),
        };
        let action = homelab_core::plan::retry_action(&drift, id, self.root.active_state(id), &actor.by, chrono::Utc::now()).map_err(|r| match r {
            homelab_core::plan::RetryRefused::Active(state) => RetryError::Active { id: id.clone(), state },
            homelab_core::plan::RetryRefused::NoDrift => RetryError::NoDrift { id: id.clone() },
        })?;
        self.permit_on(actor, Command::Retry, &action.node).map_err(RetryError::Forbidden)?;
        self.root.create_action(&action).map_err(|e| match e {
            TransitionError::AlreadyExists { state, .. } => RetryError::Active { id: id.clone(), state },
            other => RetryError::Store(other),
        })?;
        Ok(action)
    }

    /// Logs a move on an action and appends its one audit record: `ok` with the node, or the
    /// error's outcome and text.
    fn record<E: std::fmt::Display>(&self, actor: &Actor, what: &str, id: &ActionId, result: &Result<Action, E>, outcome: fn(&E) -> Outcome) {
        match result {
            Ok(a) => {
                tracing::info!(what, action = %a.id, by = %actor.by, state = %a.state, "operator's move recorded");
                self.audit(actor, what, id, Outcome::Ok, Some(format!("node {}", a.node)));
            }
            Err(e) => {
                tracing::info!(what, action = %id, by = %actor.by, error = %e, "operator's move not applied");
                self.audit(actor, what, id, outcome(e), Some(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_clean_line() {
        assert_eq!(clean_reason(Some("  flaky\nagain ")), "flaky again");
        assert_eq!(clean_reason(None), "rejected by operator (no reason given)");
        assert_eq!(clean_reason(Some(&"x".repeat(900))).len(), 500);
    }
}
