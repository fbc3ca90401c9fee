//! Deciding on actions: approve, reject, cancel, and "propose again" (retry).

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
    /// Takes back a pending action, or an approved one before an executor claims it. Unlike a
    /// rejection it snoozes nothing: while the drift holds, the supervisor proposes it again.
    /// `reason`: as for a rejection.
    Cancel { reason: Option<String> },
}

impl Decision {
    pub const APPROVE: Decision = Decision::Approve { note: None };

    fn command(&self) -> Command {
        match self {
            Decision::Approve { .. } => Command::Approve,
            Decision::Reject { .. } => Command::Reject,
            Decision::Cancel { .. } => Command::Cancel,
        }
    }

    /// The audit log's `what`.
    pub fn what(&self) -> &'static str {
        match self {
            Decision::Approve { .. } => "approve",
            Decision::Reject { .. } => "reject",
            Decision::Cancel { .. } => "cancel",
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
    /// Cancel: the action is running or has ended.
    #[error("action {id} is {state}: too late to cancel")]
    TooLate { id: ActionId, state: ActionState },
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
            DecideError::NotFound(_) | DecideError::NotPending { .. } | DecideError::TooLate { .. } => Outcome::Conflict,
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
    clean_or(reason, "rejected by operator (no reason given)")
}

fn clean_or(reason: Option<&str>, default: &str) -> String {
    let r = homelab_core::one_line(reason.unwrap_or(""), 500);
    let r = r.trim();
    if r.is_empty() { default.to_owned() } else { r.to_owned() }
}

impl Ops {
    /// Approves, rejects or cancels an action: the rename pending → approved/rejected/cancelled
    /// (or approved → cancelled), with the actor's `by` and the note or reason in the history.
    /// The actor's role and groups are checked against the action's node first (nothing
    /// changes on a refusal). Exactly one of several racing deciders (and executors) wins; the
    /// others get `NotPending` (or `TooLate`) with the state it is in now.
    pub fn decide(&self, actor: &Actor, id: &ActionId, decision: Decision) -> Result<Action, DecideError> {
        let command = decision.command();
        let what = decision.what();
        let result = self.decide_inner(actor, id, command, decision);
        self.record(actor, what, id, &result, DecideError::outcome);
        result
    }

    fn decide_inner(&self, actor: &Actor, id: &ActionId, command: Command, decision: Decision) -> Result<Action, DecideError> {
        // The node of the action, from its file; no such action: viewers are still refused.
        let found = self.root.find_action(id).ok().flatten();
        match &found {
            Some(f) => self.permit_on(actor, command, &f.action.node),
            None => permit(actor, command, Scope::Unknown),
        }
        .map_err(DecideError::Forbidden)?;
        let cancel = matches!(decision, Decision::Cancel { .. });
        let (to, note) = match decision {
            Decision::Approve { note } => (ActionState::Approved, note.map(|n| homelab_core::one_line(&n, 500))),
            Decision::Reject { reason } => (ActionState::Rejected, Some(clean_reason(reason.as_deref()))),
            Decision::Cancel { reason } => (ActionState::Cancelled, Some(clean_or(reason.as_deref(), "cancelled by operator (no reason given)"))),
        };
        // A cancel takes an approval back too; the rename from the folder it was read in
        // loses to an executor's claim made in between.
        let from = match found.map(|f| f.state) {
            Some(ActionState::Approved) if cancel => ActionState::Approved,
            _ => ActionState::Pending,
        };
        let mut result = self.root.transition(id, from, to, chrono::Utc::now(), &actor.by, note.clone(), |_| {});
        if cancel && matches!(result, Err(TransitionError::NotInState { current: Some(ActionState::Approved), .. })) {
            // Approved between the read and the rename: take the approval back.
            result = self.root.transition(id, ActionState::Approved, to, chrono::Utc::now(), &actor.by, note, |_| {});
        }
        result.map_err(|e| match e {
            TransitionError::NotInState { current: None, .. } => DecideError::NotFound(id.clone()),
            TransitionError::NotInState { current: Some(state), .. } | TransitionError::AlreadyExists { state, .. } if cancel => {
                DecideError::TooLate { id: id.clone(), state }
            }
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
    use crate::Role;

    #[test]
    fn reasons_are_one_clean_line() {
        assert_eq!(clean_reason(Some("  flaky\nagain ")), "flaky again");
        assert_eq!(clean_reason(None), "rejected by operator (no reason given)");
        assert_eq!(clean_reason(Some(&"x".repeat(900))).len(), 500);
    }

    fn pending(root: &homelab_store::DataRoot, service: &str) -> ActionId {
        let kind = homelab_core::ActionType::ContainerRestart;
        let t = chrono::Utc::now();
        let action = Action {
            id: kind.id("edge-1", Some(service)),
            kind,
            risk: kind.risk(),
            node: "edge-1".into(),
            service: Some(service.into()),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: t,
            updated_at: t,
            history: vec![],
            result: None,
            generation: None,
        };
        root.create_action(&action).unwrap();
        ActionId::parse(&action.id).unwrap()
    }

    #[test]
    fn cancel_takes_back_a_pending_action_or_an_approval_but_not_a_claimed_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = homelab_store::DataRoot::open(dir.path()).unwrap();
        let ops = Ops::new(root.clone());
        let admin = Actor::cli("cli:root");
        let cancel = |reason: Option<&str>| Decision::Cancel { reason: reason.map(str::to_owned) };

        // Pending → cancelled, the reason in the history.
        let id = pending(&root, "web");
        let a = ops.decide(&admin, &id, cancel(Some("doing it by hand"))).unwrap();
        assert_eq!(a.state, ActionState::Cancelled);
        let last = a.history.last().unwrap();
        assert_eq!((last.by.as_str(), last.note.as_deref()), ("cli:root", Some("doing it by hand")));
        assert_eq!(root.active_state(&id), None);

        // Approved → cancelled, before an executor claims it.
        let id = pending(&root, "db");
        ops.decide(&admin, &id, Decision::APPROVE).unwrap();
        let a = ops.decide(&admin, &id, cancel(None)).unwrap();
        assert_eq!(a.state, ActionState::Cancelled);
        assert_eq!(a.history.last().unwrap().note.as_deref(), Some("cancelled by operator (no reason given)"));

        // Claimed (running): too late, nothing changes.
        let id = pending(&root, "mqtt");
        ops.decide(&admin, &id, Decision::APPROVE).unwrap();
        root.transition(&id, ActionState::Approved, ActionState::Running, chrono::Utc::now(), "executor", None, |_| {}).unwrap();
        let e = ops.decide(&admin, &id, cancel(None)).unwrap_err();
        assert!(matches!(e, DecideError::TooLate { state: ActionState::Running, .. }), "{e}");
        assert_eq!(e.to_string(), "action container-restart-edge-1-mqtt is running: too late to cancel");
        assert_eq!(root.active_state(&id), Some(ActionState::Running));

        // A viewer is refused; one audit record per command, refused or not.
        let id = pending(&root, "dns");
        let viewer = Actor::user("vic", Role::Viewer, vec![], crate::Channel::Api, "192.0.2.1", "api:vic");
        assert!(matches!(ops.decide(&viewer, &id, cancel(None)), Err(DecideError::Forbidden(_))));
        assert_eq!(root.active_state(&id), Some(ActionState::Pending));
        let day = chrono::Utc::now().date_naive();
        let filter = homelab_store::audit::AuditFilter { what: Some("cancel".into()), ..Default::default() };
        let outcomes: Vec<String> = root.read_audit(day, &filter).unwrap().records.into_iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["ok", "ok", "conflict", "refused"]);
    }
}
