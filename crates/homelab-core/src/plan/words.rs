//! The plan's words: what a person reads about a decision (the drift row's reason, the
//! one-line `Display` of decisions, drift rows and whole plans) and the texts of the history notes
//! and cancel reasons the rules write. The rules themselves are in [`super`].

use std::fmt;
use std::time::Duration;

use super::{Decision, DriftDecision, DriftKind, Plan, Policy, REPLACED};
use crate::Timestamp;
use crate::action::{Action, ActionState};
use crate::drift::DriftEntry;
use crate::silence::Silence;

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Create { id, state, why, .. } => write!(f, "create {id} as {state}: {why}"),
            Decision::AlreadyActive { id, state } => write!(f, "leave alone: {id} is already {state}"),
            Decision::RootCause { root } => write!(f, "no action: root cause is {root}"),
            Decision::NodeUnreachable => write!(f, "no per-service action: node unreachable"),
            Decision::RemediationExhausted { tried, until } => {
                write!(f, "no action: remediation_exhausted (tried {}) until {}", tried.join(", "), crate::rfc3339(*until))
            }
            Decision::Snoozed { id, until } => write!(f, "no action: {id} was rejected, snoozed until {}", crate::rfc3339(*until)),
            Decision::Settling { after, until } => {
                write!(f, "no action yet: waiting for a fresh check after {after} (until {})", crate::rfc3339(*until))
            }
            Decision::WaitingGrace { until, dependency: None } => write!(f, "no action yet: waiting_grace (until {})", crate::rfc3339(*until)),
            Decision::WaitingGrace { until, dependency: Some(d) } => {
                write!(f, "no action yet: waiting_grace for a fresh check of {d} (until {})", crate::rfc3339(*until))
            }
            Decision::WaitingFreshWorld { until } => write!(f, "no action yet: waiting_fresh_world (until {})", crate::rfc3339(*until)),
            Decision::Flapping { until } => write!(f, "no action yet: flapping, must hold until {}", crate::rfc3339(*until)),
            Decision::FlappingChanges { changes, until } => {
                write!(f, "no action: flapping ({changes} changes), stable at {} at the earliest", crate::rfc3339(*until))
            }
            Decision::Silenced { silence, until, .. } => write!(f, "no action: silenced ({silence}) until {}", crate::rfc3339(*until)),
        }
    }
}

/// `HH:MM UTC`, the way a person on a phone reads a time (the date only when it is not `now`'s).
fn clock(t: Timestamp, now: Timestamp) -> String {
    if t.date_naive() == now.date_naive() { t.format("%H:%M UTC").to_string() } else { t.format("%Y-%m-%d %H:%M UTC").to_string() }
}

/// A duration in words: `15 min`, `6 h`, `90 s`.
fn words(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

impl DriftDecision {
    /// One sentence for a tired operator on a phone: what happens next and why.
    pub fn reason(&self, policy: &Policy, now: Timestamp) -> String {
        let what = match (self.drift, &self.service) {
            (DriftKind::MissingService, Some(s)) => format!("{s} is desired but not reported by {}", self.node),
            (DriftKind::UnhealthyService, Some(s)) => format!("{s} is unhealthy ({})", self.trigger),
            (DriftKind::DiskPressure, _) => format!("{} reports disk pressure high", self.node),
            (DriftKind::NodeUnreachable, _) if self.trigger == "never_seen" => format!("{} has never reported", self.node),
            (DriftKind::NodeUnreachable, _) => format!("{} has not reported for over {}", self.node, words(policy.node_stale_after)),
            (_, None) => format!("{} is in drift ({})", self.node, self.trigger),
        };
        let what = match (&self.decision, &self.service) {
            (Decision::FlappingChanges { .. }, Some(s)) => format!("{s} keeps going in and out of drift (last: {} {})", self.drift, self.trigger),
            _ => what,
        };
        match &self.decision {
            Decision::Create { id, state: ActionState::Approved, .. } => format!("{what}: {id} was proposed and approved by policy (AUTO_APPROVE=low)."),
            Decision::Create { id, .. } => format!("{what}: {id} is proposed and waits for approval."),
            Decision::AlreadyActive { id, state } => format!("{what}: {id} is already {state}; nothing new is proposed meanwhile."),
            Decision::RootCause { root } => format!("{what}, but it depends on {root}, which is in drift too: only {root} gets an action."),
            Decision::NodeUnreachable => format!("{what}: nothing is proposed for its services until it reports again."),
            Decision::RemediationExhausted { tried, until } => {
                let tried = if tried.len() > 1 {
                    "Restart and redeploy both"
                } else if self.drift == DriftKind::DiskPressure {
                    "A disk cleanup"
                } else {
                    "A redeploy"
                };
                format!(
                    "{tried} ran in the last {} and {what}: nothing more will be proposed until it recovers or {}; use Retry to try again now.",
                    words(policy.escalation_window),
                    clock(*until, now)
                )
            }
            Decision::Snoozed { id, until } => {
                format!("{what}: {id} was rejected, so it is not proposed again until it recovers once or {}; use Retry to propose it now.", clock(*until, now))
            }
            Decision::Settling { after, until } => {
                format!("{what}: {after} just ended; waiting for a fresh check before the next step, until {} at the latest.", clock(*until, now))
            }
            Decision::WaitingGrace { until, dependency: None } => {
                format!("{what}: the node came back recently, so nothing is proposed before a full check pass, until {}.", clock(*until, now))
            }
            Decision::WaitingGrace { until, dependency: Some(d) } => {
                format!(
                    "{what}: it depends on {d}, which has not been checked since; waiting for that check (until {}) to know which one to fix.",
                    clock(*until, now)
                )
            }
            Decision::WaitingFreshWorld { until } => {
                format!(
                    "{what}: the control plane just started, so nothing is proposed until every node has reported again, at {} at the earliest.",
                    clock(*until, now)
                )
            }
            Decision::Flapping { until } => {
                format!("{what}: it keeps recovering by itself and failing again, so nothing is proposed unless it stays down until {}.", clock(*until, now))
            }
            Decision::FlappingChanges { changes, until } => format!(
                "{what}: {changes} changes within {}, so it is flapping: nothing is proposed until it has been stable for {}, at {} at the earliest.",
                words(policy.flap_changes_window),
                words(policy.flap_stable),
                clock(*until, now)
            ),
            Decision::Silenced { silence, by, note, until } => {
                format!("{what}: muted by {by} until {} ({note}); nothing is proposed or notified meanwhile (silence {silence}).", clock(*until, now))
            }
        }
    }
}

impl fmt::Display for DriftDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(s) => write!(f, "{}/{s}", self.node)?,
            None => write!(f, "{}", self.node)?,
        }
        write!(f, ": {} ({}) -> {}", self.drift, self.trigger, self.decision)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drifts.is_empty() && self.cancel.is_empty() {
            return writeln!(f, "no drift: nothing to do");
        }
        for d in &self.drifts {
            writeln!(f, "drift  {d}")?;
        }
        for c in &self.cancel {
            writeln!(f, "cancel {}: {}", c.id, c.reason)?;
        }
        for u in &self.update {
            writeln!(f, "update {}: {}", u.id, u.note)?;
        }
        writeln!(f, "summary: {} drift(s), {} to create, {} to cancel", self.drifts.len(), self.create.len(), self.cancel.len())
    }
}

/// The cancel reason of a pending action a silence mutes.
pub(super) fn silenced_cancel(s: &Silence) -> String {
    format!("silenced: {} muted by {} until {} ({}), silence {}", s.target(), s.created_by, crate::rfc3339(s.end()), s.reason, s.id)
}

/// The cancel reason of a pending action replaced by `id` of another type.
pub(super) fn replaced_reason(drift: DriftKind, trigger: &str, id: &str) -> String {
    format!("{REPLACED}: the drift is now {drift} ({trigger}), {id} is proposed instead")
}

/// The history note of a pending action whose drift changed under it.
pub(super) fn drift_changed_note(a: &Action, drift: DriftKind, trigger: &str) -> String {
    format!("drift changed: {} ({}) is now {drift} ({trigger})", a.drift, a.trigger)
}

/// Why a new action is proposed (its first history note): the drift, or that it persists
/// after `prev` ran.
pub(super) fn why(drift: DriftKind, trigger: &str, prev: Option<&str>) -> String {
    match (drift, prev) {
        (_, Some(prev)) => format!("{drift} ({trigger}) persists after {prev} within the escalation window"),
        (DriftKind::MissingService, None) => "service is desired but absent from world state".to_owned(),
        (DriftKind::DiskPressure, None) => "node reports disk pressure high".to_owned(),
        (_, None) => format!("service unhealthy: {trigger}"),
    }
}

/// The history note of an approval by policy: the `nth` of at most `max` this hour.
pub(super) fn auto_approved_note(nth: usize, max: u32) -> String {
    format!("AUTO_APPROVE=low ({nth} of {max} this hour for this target)")
}

/// Added to `why` when the hourly auto-approval cap is reached.
pub(super) fn auto_approve_cap_reached(max: u32) -> String {
    format!("; auto-approval cap of {max} per hour reached, waiting for a person")
}

/// The history note of an action an operator proposes again.
pub(super) fn retry_note(by: &str, d: &DriftEntry) -> String {
    format!("proposed again by {by}: {} ({}) holds; it was {}: {}", d.kind, d.trigger, d.decision.as_str(), d.reason)
}
