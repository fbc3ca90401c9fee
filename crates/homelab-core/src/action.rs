//! Actions: what the supervisor proposes, an operator approves, and the executor runs.
//! The folder an action file sits in is its state; moving between states is a rename.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Pending,
    Approved,
    Running,
    Completed,
    Failed,
    Rejected,
    Cancelled,
}

impl ActionState {
    pub const ALL: [ActionState; 7] = [
        ActionState::Pending,
        ActionState::Approved,
        ActionState::Running,
        ActionState::Completed,
        ActionState::Failed,
        ActionState::Rejected,
        ActionState::Cancelled,
    ];

    /// The folder name under `actions/`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Approved => "approved",
            ActionState::Running => "running",
            ActionState::Completed => "completed",
            ActionState::Failed => "failed",
            ActionState::Rejected => "rejected",
            ActionState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Pending, approved and running hold `<id>.json`; terminal folders hold `<id>--<ended>.json`.
    pub fn is_active(self) -> bool {
        matches!(self, ActionState::Pending | ActionState::Approved | ActionState::Running)
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// The transitions the state machine allows.
    pub fn can_move_to(self, to: ActionState) -> bool {
        use ActionState::*;
        matches!(
            (self, to),
            (Pending, Approved) | (Pending, Rejected) | (Pending, Cancelled) | (Approved, Running) | (Running, Completed) | (Running, Failed)
                // An executor that finds a running action at start fails it; an approved action
                // whose target vanished from desired state can be failed without running.
                | (Approved, Failed)
        )
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    ContainerRestart,
    Redeploy,
    DiskCleanup,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::ContainerRestart => "container_restart",
            ActionType::Redeploy => "redeploy",
            ActionType::DiskCleanup => "disk_cleanup",
        }
    }

    /// The deterministic id of this action for a node (and service).
    pub fn id(self, node: &str, service: Option<&str>) -> String {
        match (self, service) {
            (ActionType::ContainerRestart, Some(s)) => format!("container-restart-{node}-{s}"),
            (ActionType::Redeploy, Some(s)) => format!("redeploy-{node}-{s}"),
            (ActionType::DiskCleanup, _) => format!("disk-cleanup-{node}"),
            (t, None) => format!("{}-{node}", t.as_str().replace('_', "-")),
        }
    }

    pub fn risk(self) -> Risk {
        match self {
            ActionType::ContainerRestart => Risk::Low,
            ActionType::Redeploy | ActionType::DiskCleanup => Risk::Guarded,
        }
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Guarded,
}

/// One transition in an action's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    pub state: ActionState,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub at: Timestamp,
    /// `supervisor`, `policy`, `executor`, or an operator with channel: `ui:alice`, `telegram:123`, `api:token`, `cli:bob`.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the executor recorded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i64>,
    /// The last 64 KiB of output.
    #[serde(default)]
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::Timestamp>")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::Timestamp>")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_reclaimed: Option<u64>,
    /// `true` when the service reported healthy after the action ended; `null` when not checked.
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default)]
    pub dry_run: bool,
}

/// An action file (`actions/<state>/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Action {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub risk: Risk,
    pub node: String,
    pub service: Option<String>,
    /// The drift kind: `unhealthy_service`, `missing_service`, `disk_pressure`.
    pub drift: String,
    /// What in world state set it off: the unhealthy reason, `missing`, or the disk level.
    pub trigger: String,
    pub root_cause: Option<String>,
    /// The folder is the truth; this mirrors it.
    pub state: ActionState,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub created_at: Timestamp,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub updated_at: Timestamp,
    pub history: Vec<HistoryEntry>,
    pub result: Option<ActionResult>,
}

impl Action {
    /// Records a move to `to` (the caller renames the file; this updates the content).
    pub fn record(&mut self, to: ActionState, at: Timestamp, by: &str, note: Option<String>) {
        self.state = to;
        self.updated_at = at;
        self.history.push(HistoryEntry { state: to, at, by: by.to_owned(), note });
    }

    /// When the action reached its terminal state (the last history entry), for its file name.
    pub fn ended_at(&self) -> Timestamp {
        self.history.last().map_or(self.updated_at, |h| h.at)
    }
}

/// The bytes of output an action result keeps: the last 64 KiB, cut on a character boundary.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

pub fn output_tail(output: &str) -> String {
    if output.len() <= OUTPUT_TAIL_BYTES {
        return output.to_owned();
    }
    let mut start = output.len() - OUTPUT_TAIL_BYTES;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_risks() {
        assert_eq!(ActionType::ContainerRestart.id("edge-1", Some("z2m")), "container-restart-edge-1-z2m");
        assert_eq!(ActionType::Redeploy.id("edge-1", Some("z2m")), "redeploy-edge-1-z2m");
        assert_eq!(ActionType::DiskCleanup.id("edge-1", None), "disk-cleanup-edge-1");
        assert_eq!(ActionType::ContainerRestart.risk(), Risk::Low);
        assert_eq!(ActionType::Redeploy.risk(), Risk::Guarded);
        // The longest names still make a valid id.
        let long = "a".repeat(63);
        assert!(crate::validate_action_id(&ActionType::ContainerRestart.id(&long, Some(&long))).is_ok());
    }

    #[test]
    fn state_machine_table() {
        use ActionState::*;
        let allowed = [(Pending, Approved), (Pending, Rejected), (Pending, Cancelled), (Approved, Running), (Running, Completed), (Running, Failed), (Approved, Failed)];
        for from in ActionState::ALL {
            for to in ActionState::ALL {
                assert_eq!(from.can_move_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let s = format!("{}{}", "é".repeat(40_000), "end");
        let t = output_tail(&s);
        assert!(t.len() <= OUTPUT_TAIL_BYTES && t.ends_with("end"));
    }
}
