//! `world/drift.json`: the supervisor's whole view, written at every reconcile. Every other
//! reader (UI, `/summary`, `/summary.md`, Telegram, `hcp`) shows this and never recomputes
//! drift, so there is one truth about what is wrong and what happens next.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The drift kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    MissingService,
    UnhealthyService,
    DiskPressure,
    NodeUnreachable,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::MissingService => "missing_service",
            DriftKind::UnhealthyService => "unhealthy_service",
            DriftKind::DiskPressure => "disk_pressure",
            DriftKind::NodeUnreachable => "node_unreachable",
        }
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens next about one drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// A new action was written (pending, or approved by policy): `action_id`.
    ActionCreated,
    /// An action for it is pending, approved or running: `action_id`.
    AlreadyActive,
    /// A dependency is in drift (`root_cause`): only the dependency gets an action.
    RootCauseElsewhere,
    /// A restart and a redeploy already ran within the escalation window: nothing more is
    /// proposed until `until` (or an operator asks again with retry).
    RemediationExhausted,
    /// The operator rejected `action_id`; not proposed again until the drift resolves once, or
    /// `until`.
    RejectedSnoozed,
    /// The node (re)appeared or the service just went missing: waiting a full check pass
    /// (`MISSING_GRACE`) before proposing anything, until `until`.
    WaitingGrace,
    /// The control plane just started and world state is not fresh yet: nothing is proposed
    /// until `until`.
    WaitingFreshWorld,
    /// The node is stale or never seen: no per-service action for it.
    NodeUnreachable,
    /// A remediation just ended (`action_id`); waiting for a fresh check before the next step,
    /// until `until`.
    Settling,
    /// Muted by an operator until `until`.
    Silenced,
    /// Changing state too often: no new action until it has been stable, `until`.
    Flapping,
}

impl NextStep {
    pub fn as_str(self) -> &'static str {
        match self {
            NextStep::ActionCreated => "action_created",
            NextStep::AlreadyActive => "already_active",
            NextStep::RootCauseElsewhere => "root_cause_elsewhere",
            NextStep::RemediationExhausted => "remediation_exhausted",
            NextStep::RejectedSnoozed => "rejected_snoozed",
            NextStep::WaitingGrace => "waiting_grace",
            NextStep::WaitingFreshWorld => "waiting_fresh_world",
            NextStep::NodeUnreachable => "node_unreachable",
            NextStep::Settling => "settling",
            NextStep::Silenced => "silenced",
            NextStep::Flapping => "flapping",
        }
    }
}

/// One drift and what happens next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriftEntry {
    pub node: String,
    /// Absent for node-level drift (`disk_pressure`, `node_unreachable`).
    pub service: Option<String>,
    /// `missing_service`, `unhealthy_service`, `disk_pressure`, `node_unreachable`.
    #[schemars(with = "String")]
    pub kind: DriftKind,
    /// What set it off: the unhealthy reason (an event type), `missing`, `high`, `stale` or
    /// `never_seen`.
    pub trigger: String,
    /// The dependency in drift that this drift is blamed on (`service` name on the same node).
    pub root_cause: Option<String>,
    /// When the drift began, as far as world state tells.
    #[serde(with = "crate::ts_format::option", default)]
    #[schemars(with = "Option<crate::Timestamp>")]
    pub since: Option<Timestamp>,
    pub decision: NextStep,
    /// One sentence for people: what happens next and why.
    pub reason: String,
    /// The action this decision is about, if any.
    pub action_id: Option<String>,
    /// When the decision ends by time, if it does.
    #[serde(with = "crate::ts_format::option", default)]
    #[schemars(with = "Option<crate::Timestamp>")]
    pub until: Option<Timestamp>,
}

/// `world/drift.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriftFile {
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub generated_at: Timestamp,
    /// Every drift, in (node, service) order.
    pub drifts: Vec<DriftEntry>,
}
