//! The supervisor's pure plan: desired state + world + actions + memory + policy + now → what
//! to create, what to cancel, what to leave alone, and why.
//!
//! No IO and no clock: the daemon reads the data root, calls [`plan`], and applies the result.
//! Every rule of the contract's supervisor section lives here so it can be tested as a table:
//! drift kinds, action types and ids, auto-cancel, the bootstrap-flood guard, root cause, loop
//! protection with escalation, the rejection snooze and auto-approval with an hourly cap.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionState, ActionType, HistoryEntry, Risk};
use crate::desired::{DesiredState, HostSpec};
use crate::world::{DiskLevel, NodeState, NodeStatus, ServiceState, ServiceStatus};
use crate::Timestamp;

/// The cancel reason when the drift behind a pending action no longer holds.
pub const DRIFT_RESOLVED_AUTO: &str = "drift_resolved_auto";
/// The cancel reason when the target left services.yaml or got `monitor: false`.
pub const SERVICE_REMOVED: &str = "service_removed_from_desired_state";

/// Unhealthy reasons a container restart is expected to fix.
const RESTARTABLE_REASONS: &[&str] = &["containers_not_running", "mqtt_unreachable"];

/// The knobs of the supervisor, all from the environment in the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `NODE_STALE_AFTER`: a node with no sign of life for this long is unreachable.
    pub node_stale_after: Duration,
    /// `ESCALATION_WINDOW`: how long a finished remediation counts against the next one.
    pub escalation_window: Duration,
    /// After a remediation ended, how long to wait for a fresh check before judging that it
    /// did not help (a fresh event about the target ends the wait early).
    pub settle_after: Duration,
    /// `REJECT_SNOOZE`: how long a rejected id stays quiet while its drift persists.
    pub reject_snooze: Duration,
    /// `AUTO_APPROVE=low`: low-risk actions go straight to approved.
    pub auto_approve_low: bool,
    /// `AUTO_APPROVE_MAX_PER_HOUR`, per service.
    pub auto_approve_max_per_hour: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            node_stale_after: Duration::from_secs(90),
            escalation_window: Duration::from_secs(15 * 60),
            settle_after: Duration::from_secs(60),
            reject_snooze: Duration::from_secs(6 * 3600),
            auto_approve_low: false,
            auto_approve_max_per_hour: 3,
        }
    }
}

/// An action that has ended, as its terminal file name tells it: `<state>/<id>--<ended>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub state: ActionState,
    #[serde(with = "crate::ts_format")]
    pub ended: Timestamp,
}

impl Outcome {
    /// Parses a terminal file name (`<id>--<YYYYMMDDTHHMMSS.fffZ>.json`) found in `state`'s folder.
    pub fn from_file_name(state: ActionState, name: &str) -> Option<Outcome> {
        let stem = name.strip_suffix(".json")?;
        let (id, ts) = stem.rsplit_once("--")?;
        let ended = crate::parse_compact_ts(ts)?;
        crate::validate_action_id(id).ok()?;
        state.is_terminal().then(|| Outcome { id: id.to_owned(), state, ended })
    }
}

/// A rejection the supervisor remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    #[serde(with = "crate::ts_format")]
    pub at: Timestamp,
    /// The drift has resolved at least once since the rejection: the id may be proposed again.
    pub resolved: bool,
}

/// `state/supervisor.json`: what the supervisor must not forget across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SupervisorMemory {
    pub version: u32,
    /// Per action id, when its last attempt (completed or failed) ended. Kept for the escalation window.
    #[serde(default, with = "ts_map")]
    pub attempts: BTreeMap<String, Timestamp>,
    /// Per action id, its last rejection. Kept for the snooze.
    #[serde(default)]
    pub rejections: BTreeMap<String, Rejection>,
    /// Per `node/service` (or node for node actions), when actions were auto-approved. Kept for an hour.
    #[serde(default, with = "ts_vec_map")]
    pub auto_approved: BTreeMap<String, Vec<Timestamp>>,
}

pub const MEMORY_VERSION: u32 = 1;

/// The drift kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// What the plan does about one drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// A new action is written (pending, or approved by policy).
    Create { id: String, action: ActionType, state: ActionState, why: String },
    /// An action for this target is already active: nothing new is written.
    AlreadyActive { id: String, state: ActionState },
    /// A dependency is in drift: only the root gets an action.
    RootCause { root: String },
    /// The node is stale or never seen: no per-service action for it.
    NodeUnreachable,
    /// A restart and a redeploy (or a cleanup) already ran within the escalation window.
    RemediationExhausted { tried: Vec<String> },
    /// The id was rejected and its drift has not resolved since.
    Snoozed {
        id: String,
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
    /// A remediation just ended; waiting for a fresh check before the next step.
    Settling {
        after: String,
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
}

/// One drift and the decision about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftDecision {
    pub node: String,
    pub service: Option<String>,
    pub drift: DriftKind,
    /// What set it off: the unhealthy reason, `missing`, `high`, `stale` or `never_seen`.
    pub trigger: String,
    pub root_cause: Option<String>,
    #[serde(flatten)]
    pub decision: Decision,
}

/// A pending action to cancel, with the reason for its history note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub id: String,
    pub reason: String,
}

/// What one reconcile will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Every drift found, in (node, service) order, with its decision.
    pub drifts: Vec<DriftDecision>,
    /// New action files to write (their `state` says pending or approved).
    pub create: Vec<Action>,
    /// Pending actions to move to cancelled.
    pub cancel: Vec<Cancel>,
    /// The memory to persist after applying.
    pub memory: SupervisorMemory,
}

/// What the supervisor reads before planning.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub desired: &'a DesiredState,
    /// Nodes whose host file is invalid with no last good version: their desired state is
    /// unknown, so nothing of theirs is cancelled as removed.
    pub unknown_nodes: &'a BTreeSet<String>,
    /// `world/services.json`: node → service → state.
    pub services: &'a BTreeMap<String, BTreeMap<String, ServiceState>>,
    /// `world/nodes.json`: node → state.
    pub nodes: &'a BTreeMap<String, NodeState>,
    /// Everything in pending/, approved/ and running/.
    pub active: &'a [Action],
    /// Terminal actions (from their file names); older ones than the windows are ignored.
    pub outcomes: &'a [Outcome],
    pub memory: &'a SupervisorMemory,
    pub policy: &'a Policy,
    pub now: Timestamp,
}

/// Whether a node can be trusted to report: judged from `last_seen` here, not only from the
/// observer's `status`, so a dead observer cannot keep nodes "up" forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    Up,
    Stale,
    NeverSeen,
}

pub fn reachability(node: Option<&NodeState>, now: Timestamp, stale_after: Duration) -> Reachability {
    let Some(node) = node else { return Reachability::NeverSeen };
    let Some(seen) = node.last_seen else { return Reachability::NeverSeen };
    let age = now.signed_duration_since(seen).to_std().unwrap_or_default();
    if node.status == NodeStatus::Stale || age > stale_after { Reachability::Stale } else { Reachability::Up }
}

/// `t + d`, saturating (a huge configured window means "forever", not a panic).
fn after(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The key auto-approvals are counted under: `node/service`, or the node for node actions.
fn target_key(node: &str, service: Option<&str>) -> String {
    match service {
        Some(s) => format!("{node}/{s}"),
        None => node.to_owned(),
    }
}

/// The drift on one service, if any: (kind, trigger).
fn service_drift(state: Option<&ServiceState>) -> Option<(DriftKind, String)> {
    match state {
        None => Some((DriftKind::MissingService, "missing".to_owned())),
        Some(s) if s.status == ServiceStatus::Unhealthy => {
            Some((DriftKind::UnhealthyService, s.reason.clone().unwrap_or_else(|| "service_unhealthy".to_owned())))
        }
        Some(_) => None,
    }
}

/// Follows `depends_on` through services that are in drift to the one whose own dependencies
/// are fine: the root cause. `None` when no dependency of `name` is in drift.
fn root_of(host: &HostSpec, name: &str, in_drift: &BTreeSet<&str>) -> Option<String> {
    let mut current = name;
    let mut root = None;
    // Validation rejects cycles; the bound only keeps a bug from looping forever.
    for _ in 0..=host.services.len() {
        let next = host.services.get(current).and_then(|s| s.depends_on.iter().find(|d| in_drift.contains(d.as_str())));
        match next {
            Some(dep) => {
                root = Some(dep.clone());
                current = dep;
            }
            None => break,
        }
    }
    root
}

/// Computes the plan. Pure: the same input gives the same plan.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let PlanInput { desired, unknown_nodes, services, nodes, active, outcomes, memory, policy, now } = input;
    let mut memory = learn(memory, outcomes, policy, now);
    let mut drifts = Vec::new();
    let mut create = Vec::new();
    let mut cancel = Vec::new();

    // Per target, the active actions on it (any type): a second remediation never starts
    // while one is pending, approved or running.
    let mut active_by_target: BTreeMap<String, Vec<&Action>> = BTreeMap::new();
    for a in active {
        active_by_target.entry(target_key(&a.node, a.service.as_deref())).or_default().push(a);
    }
    // Targets whose drift holds now, and nodes we cannot judge; for auto-cancel and snooze.
    let mut drift_holds: BTreeSet<String> = BTreeSet::new();
    let mut unjudged_nodes: BTreeSet<&str> = BTreeSet::new();
    let empty = BTreeMap::new();

    for (node, host) in &desired.hosts {
        let reach = reachability(nodes.get(node), now, policy.node_stale_after);
        if reach != Reachability::Up {
            unjudged_nodes.insert(node);
            let trigger = if reach == Reachability::NeverSeen { "never_seen" } else { "stale" };
            drifts.push(DriftDecision {
                node: node.clone(),
                service: None,
                drift: DriftKind::NodeUnreachable,
                trigger: trigger.to_owned(),
                root_cause: None,
                decision: Decision::NodeUnreachable,
            });
            continue;
        }
        let world = services.get(node).unwrap_or(&empty);
        let found: BTreeMap<&str, (DriftKind, String)> =
            host.monitored().filter_map(|(name, _)| service_drift(world.get(name)).map(|d| (name.as_str(), d))).collect();
        let in_drift: BTreeSet<&str> = found.keys().copied().collect();

        for (name, (kind, trigger)) in &found {
            drift_holds.insert(target_key(node, Some(name)));
            let root = root_of(host, name, &in_drift);
            let decision = match &root {
                Some(root) => Decision::RootCause { root: root.clone() },
                None => {
                    let base = if *kind == DriftKind::UnhealthyService && RESTARTABLE_REASONS.contains(&trigger.as_str()) {
                        ActionType::ContainerRestart
                    } else {
                        ActionType::Redeploy
                    };
                    let target = Target { node, service: Some(name), drift: *kind, trigger, fresh_since: world.get(*name).map(|s| s.last_event_at) };
                    decide(&target, base, &active_by_target, &mut memory, policy, now, &mut create)
                }
            };
            drifts.push(DriftDecision {
                node: node.clone(),
                service: Some((*name).to_owned()),
                drift: *kind,
                trigger: trigger.clone(),
                root_cause: root,
                decision,
            });
        }

        if nodes.get(node).and_then(|n| n.disk_pressure) == Some(DiskLevel::High) {
            drift_holds.insert(target_key(node, None));
            let trigger = "high".to_owned();
            let fresh = nodes.get(node).and_then(|n| n.last_seen);
            let target = Target { node, service: None, drift: DriftKind::DiskPressure, trigger: &trigger, fresh_since: fresh };
            let decision = decide(&target, ActionType::DiskCleanup, &active_by_target, &mut memory, policy, now, &mut create);
            drifts.push(DriftDecision { node: node.clone(), service: None, drift: DriftKind::DiskPressure, trigger, root_cause: None, decision });
        }
    }

    // Auto-cancel: pending only, never approved or running.
    for a in active.iter().filter(|a| a.state == ActionState::Pending) {
        let host = desired.hosts.get(&a.node);
        let still_desired = match (&a.service, host) {
            (_, None) => false,
            (Some(s), Some(h)) => h.services.get(s).is_some_and(|s| s.monitor),
            (None, Some(_)) => true,
        };
        let reason = if !still_desired && unknown_nodes.contains(&a.node) {
            // A typo must never read as "every service removed".
            continue;
        } else if !still_desired {
            SERVICE_REMOVED
        } else if unjudged_nodes.contains(a.node.as_str()) {
            // No fresh word from the node: the drift cannot be called resolved.
            continue;
        } else if !drift_holds.contains(&target_key(&a.node, a.service.as_deref())) {
            DRIFT_RESOLVED_AUTO
        } else {
            continue;
        };
        cancel.push(Cancel { id: a.id.clone(), reason: reason.to_owned() });
    }

    // A rejection is lifted once its drift has resolved (judged only on a node that reports).
    for (id, rejection) in memory.rejections.iter_mut() {
        if rejection.resolved {
            continue;
        }
        if let Some((node, service)) = target_of_id(id, desired)
            && !unjudged_nodes.contains(node.as_str())
            && !drift_holds.contains(&target_key(&node, service.as_deref()))
        {
            rejection.resolved = true;
        }
    }

    Plan { drifts, create, cancel, memory }
}

struct Target<'a> {
    node: &'a str,
    service: Option<&'a str>,
    drift: DriftKind,
    trigger: &'a str,
    /// When the target last reported (for "a fresh check after the remediation").
    fresh_since: Option<Timestamp>,
}

/// Decides what to do about one root drift, pushing a new action when one is due.
fn decide(
    t: &Target<'_>,
    base: ActionType,
    active_by_target: &BTreeMap<String, Vec<&Action>>,
    memory: &mut SupervisorMemory,
    policy: &Policy,
    now: Timestamp,
    create: &mut Vec<Action>,
) -> Decision {
    let key = target_key(t.node, t.service);
    if let Some(a) = active_by_target.get(&key).and_then(|v| v.first()) {
        return Decision::AlreadyActive { id: a.id.clone(), state: a.state };
    }

    // Loop protection: walk the ladder restart → redeploy → exhausted, skipping a rung whose
    // action already ran within the escalation window.
    let ladder: &[ActionType] = match base {
        ActionType::ContainerRestart => &[ActionType::ContainerRestart, ActionType::Redeploy],
        other => &[other],
    };
    let recent = |kind: ActionType| {
        let id = kind.id(t.node, t.service);
        memory.attempts.get(&id).copied().filter(|at| now < after(*at, policy.escalation_window)).map(|at| (id, at))
    };
    let mut tried = Vec::new();
    let mut chosen = None;
    for kind in ladder {
        match recent(*kind) {
            Some((id, at)) => tried.push((id, at)),
            None => {
                chosen = Some(*kind);
                break;
            }
        }
    }
    // The last attempt may not have had a chance to show its effect yet.
    if let Some((id, at)) = tried.iter().max_by_key(|(_, at)| *at) {
        let fresh = t.fresh_since.is_some_and(|f| f >= *at);
        let until = after(*at, policy.settle_after);
        if !fresh && now < until {
            return Decision::Settling { after: id.clone(), until };
        }
    }
    let Some(kind) = chosen else {
        return Decision::RemediationExhausted { tried: tried.into_iter().map(|(id, _)| id).collect() };
    };
    let id = kind.id(t.node, t.service);

    if let Some(r) = memory.rejections.get(&id) {
        let until = after(r.at, policy.reject_snooze);
        if !r.resolved && now < until {
            return Decision::Snoozed { id, until };
        }
    }

    let mut why = match (t.drift, tried.last()) {
        (_, Some((prev, _))) => format!("{} ({}) persists after {prev} within the escalation window", t.drift, t.trigger),
        (DriftKind::MissingService, None) => "service is desired but absent from world state".to_owned(),
        (DriftKind::DiskPressure, None) => "node reports disk pressure high".to_owned(),
        (_, None) => format!("service unhealthy: {}", t.trigger),
    };
    let mut state = ActionState::Pending;
    let mut history = vec![HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".to_owned(), note: None }];
    if policy.auto_approve_low && kind.risk() == Risk::Low {
        let hour_ago = now - chrono::Duration::hours(1);
        let used = memory.auto_approved.get(&key).map_or(0, |v| v.iter().filter(|at| **at > hour_ago).count());
        if (used as u32) < policy.auto_approve_max_per_hour {
            state = ActionState::Approved;
            memory.auto_approved.entry(key).or_default().push(now);
            history.push(HistoryEntry {
                state: ActionState::Approved,
                at: now,
                by: "policy".to_owned(),
                note: Some(format!("AUTO_APPROVE=low ({} of {} this hour for this target)", used + 1, policy.auto_approve_max_per_hour)),
            });
        } else {
            why.push_str(&format!("; auto-approval cap of {} per hour reached, waiting for a person", policy.auto_approve_max_per_hour));
        }
    }
    history[0].note = Some(why.clone());
    create.push(Action {
        id: id.clone(),
        kind,
        risk: kind.risk(),
        node: t.node.to_owned(),
        service: t.service.map(str::to_owned),
        drift: t.drift.as_str().to_owned(),
        trigger: t.trigger.to_owned(),
        root_cause: None,
        state,
        created_at: now,
        updated_at: now,
        history,
        result: None,
    });
    Decision::Create { id, action: kind, state, why }
}

/// Why an operator's "propose again" (retry) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryRefused {
    /// An action with this id is already pending, approved or running (HTTP 409).
    Active(ActionState),
    /// No drift in `world/drift.json` holds for this id's target (HTTP 409): nothing to fix.
    NoDrift,
}

impl fmt::Display for RetryRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryRefused::Active(state) => write!(f, "an action with this id is already {state}"),
            RetryRefused::NoDrift => f.write_str("no drift holds for this action's target: there is nothing to fix"),
        }
    }
}

impl std::error::Error for RetryRefused {}

/// The history `by` of the supervisor's own proposals; any other first `by` (`ui:alice`,
/// `cli:bob`, …) marks an action an operator proposed (again).
pub const SUPERVISOR_BY: &str = "supervisor";

/// True when an operator, not the supervisor, proposed this action (a retry).
pub fn operator_proposed(a: &Action) -> bool {
    a.history.first().is_some_and(|h| h.by != SUPERVISOR_BY && h.by != "policy")
}

/// An operator asks to propose action `id` again ("retry"): after `remediation_exhausted`, a
/// rejection snooze, or any other drift the supervisor is not acting on right now.
///
/// ```text
/// pub fn retry_action(drift: &DriftFile, id: &str, active: Option<ActionState>, by: &str, now: Timestamp)
///     -> Result<Action, RetryRefused>
/// ```
///
/// - `drift`: the current `world/drift.json` (the supervisor's view; never recompute it).
/// - `id`: the action id asked for, e.g. `redeploy-edge-1-web` (usually a drift row's
///   `action_id`, but any id of the row's target works: `container-restart-<node>-<service>`,
///   `redeploy-<node>-<service>`, `disk-cleanup-<node>`).
/// - `active`: the state of the active action with this id, if any
///   (`DataRoot::active_state(id)`); `Some` refuses with [`RetryRefused::Active`].
/// - `by`: who asks, with channel: `ui:alice`, `cli:bob`, `api:token`, `telegram:123`.
/// - `now`: the time of the request.
///
/// Refuses with [`RetryRefused::NoDrift`] when no drift row (other than `node_unreachable`)
/// names this id's target. Otherwise returns a FRESH pending action, to be written with
/// `DataRoot::create_action` (which refuses again, `AlreadyExists`, if one appeared meanwhile):
/// type, risk, node and service from the id, `drift`/`trigger`/`root_cause` from the drift row,
/// one history entry `{state: pending, by, note: "proposed again by <by>: …"}`. The supervisor
/// does not cancel it as exhausted or snoozed while its drift holds, and its existence resets
/// that target's escalation and snooze memory (escalation starts over after it ran).
pub fn retry_action(drift: &crate::drift::DriftFile, id: &str, active: Option<ActionState>, by: &str, now: Timestamp) -> Result<Action, RetryRefused> {
    if let Some(state) = active {
        return Err(RetryRefused::Active(state));
    }
    let found = drift.drifts.iter().filter(|d| d.kind != DriftKind::NodeUnreachable).find_map(|d| {
        let kinds: &[ActionType] = match (d.kind, &d.service) {
            (DriftKind::DiskPressure, _) => &[ActionType::DiskCleanup],
            (DriftKind::MissingService | DriftKind::UnhealthyService, Some(_)) => &[ActionType::ContainerRestart, ActionType::Redeploy],
            _ => &[],
        };
        kinds.iter().find(|k| k.id(&d.node, d.service.as_deref()) == id).map(|k| (d, *k))
    });
    let Some((d, kind)) = found else { return Err(RetryRefused::NoDrift) };
    let note = format!("proposed again by {by}: {} ({}) holds; it was {}: {}", d.kind, d.trigger, d.decision.as_str(), d.reason);
    Ok(Action {
        id: id.to_owned(),
        kind,
        risk: kind.risk(),
        node: d.node.clone(),
        service: d.service.clone(),
        drift: d.kind.as_str().to_owned(),
        trigger: d.trigger.clone(),
        root_cause: d.root_cause.clone(),
        state: ActionState::Pending,
        created_at: now,
        updated_at: now,
        history: vec![HistoryEntry { state: ActionState::Pending, at: now, by: by.to_owned(), note: Some(note) }],
        result: None,
    })
}

/// Folds the terminal outcomes into memory and forgets what no rule needs any more.
fn learn(memory: &SupervisorMemory, outcomes: &[Outcome], policy: &Policy, now: Timestamp) -> SupervisorMemory {
    let mut m = memory.clone();
    m.version = MEMORY_VERSION;
    for o in outcomes {
        match o.state {
            ActionState::Completed | ActionState::Failed if now < after(o.ended, policy.escalation_window) => {
                let e = m.attempts.entry(o.id.clone()).or_insert(o.ended);
                *e = (*e).max(o.ended);
            }
            ActionState::Rejected => {
                let newer = m.rejections.get(&o.id).is_none_or(|r| o.ended > r.at);
                if newer && now < after(o.ended, policy.reject_snooze) {
                    m.rejections.insert(o.id.clone(), Rejection { at: o.ended, resolved: false });
                }
            }
            _ => {}
        }
    }
    m.attempts.retain(|_, at| now < after(*at, policy.escalation_window));
    m.rejections.retain(|_, r| now < after(r.at, policy.reject_snooze));
    let hour_ago = now - chrono::Duration::hours(1);
    for v in m.auto_approved.values_mut() {
        v.retain(|at| *at > hour_ago);
    }
    m.auto_approved.retain(|_, v| !v.is_empty());
    m
}

/// The (node, service) an action id names, found by matching it against desired state.
/// Ids are `<type>-<node>-<service>` or `disk-cleanup-<node>`; names may contain `-`, so the
/// split is found by trying every desired node.
fn target_of_id(id: &str, desired: &DesiredState) -> Option<(String, Option<String>)> {
    for (node, host) in &desired.hosts {
        if id == ActionType::DiskCleanup.id(node, None) {
            return Some((node.clone(), None));
        }
        for kind in [ActionType::ContainerRestart, ActionType::Redeploy] {
            let prefix = kind.id(node, Some(""));
            if let Some(service) = id.strip_prefix(&prefix)
                && host.services.contains_key(service)
            {
                return Some((node.clone(), Some(service.to_owned())));
            }
        }
    }
    None
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Create { id, state, why, .. } => write!(f, "create {id} as {state}: {why}"),
            Decision::AlreadyActive { id, state } => write!(f, "leave alone: {id} is already {state}"),
            Decision::RootCause { root } => write!(f, "no action: root cause is {root}"),
            Decision::NodeUnreachable => write!(f, "no per-service action: node unreachable"),
            Decision::RemediationExhausted { tried } => write!(f, "no action: remediation_exhausted (tried {})", tried.join(", ")),
            Decision::Snoozed { id, until } => write!(f, "no action: {id} was rejected, snoozed until {}", crate::rfc3339(*until)),
            Decision::Settling { after, until } => {
                write!(f, "no action yet: waiting for a fresh check after {after} (until {})", crate::rfc3339(*until))
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
        writeln!(f, "summary: {} drift(s), {} to create, {} to cancel", self.drifts.len(), self.create.len(), self.cancel.len())
    }
}

/// Serde for `BTreeMap<String, Timestamp>` with the house timestamp format.
mod ts_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::ts_format")] Timestamp);

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().map(|(k, v)| (k, W(*v))).collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Timestamp>, D::Error> {
        Ok(BTreeMap::<String, W>::deserialize(d)?.into_iter().map(|(k, W(v))| (k, v)).collect())
    }
}

/// Serde for `BTreeMap<String, Vec<Timestamp>>` with the house timestamp format.
mod ts_vec_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::ts_format")] Timestamp);

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Vec<Timestamp>>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().map(|(k, v)| (k, v.iter().map(|t| W(*t)).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<Timestamp>>, D::Error> {
        Ok(BTreeMap::<String, Vec<W>>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.into_iter().map(|W(t)| t).collect())).collect())
    }
}

#[cfg(test)]
mod tests;
