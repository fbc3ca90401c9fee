// tidy: long file: every supervisor rule in one pure plan, not yet split by rule.
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

use crate::Timestamp;
use crate::action::{Action, ActionState, ActionType, HistoryEntry, Risk};
use crate::desired::{DesiredState, HostSpec, ServiceSpec};
pub use crate::drift::DriftKind;
use crate::drift::{DriftEntry, DriftFile, NextStep};
use crate::silence::Silence;
use crate::world::{DiskLevel, NodeState, NodeStatus, ServiceState, ServiceStatus};

mod words;

/// The cancel reason when the drift behind a pending action no longer holds.
pub const DRIFT_RESOLVED_AUTO: &str = "drift_resolved_auto";
/// The cancel reason when the target left services.yaml or got `monitor: false`.
pub const SERVICE_REMOVED: &str = "service_removed_from_desired_state";

/// Unhealthy reasons a container restart is expected to fix.
const RESTARTABLE_REASONS: &[&str] = &["containers_not_running", "mqtt_unreachable"];

/// The cancel reason when a dependency is in drift: only the root cause gets an action.
pub const ROOT_CAUSE_ELSEWHERE: &str = "root_cause_elsewhere";
/// The cancel reason prefix when the drift changed so that another action type is right.
pub const REPLACED: &str = "replaced";

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
    /// `MISSING_GRACE`: one full check pass. No `missing_service` action for a node until it
    /// has been up this long after it (re)appeared, nor until this long after the supervisor
    /// started (and the node reported since). An unhealthy service on a node that just
    /// reappeared waits for a fresh check, at most this long. Zero turns both waits off.
    pub missing_grace: Duration,
    /// `EXHAUSTED_HOLD`: once restart and redeploy (or a cleanup) did not help, nothing more is
    /// proposed for the target until its drift resolves once, an operator retries, or this long.
    pub exhausted_hold: Duration,
    /// `FLAP_WINDOW`: a drift that resolved by itself (its pending action was cancelled as
    /// resolved) and came back within this long of its last resolution is flapping.
    pub flap_window: Duration,
    /// `FLAP_HOLD`: a flapping drift must hold this long, without a break, before an action is
    /// proposed again.
    pub flap_hold: Duration,
    /// `FLAP_CHANGES`: a service whose state (in drift or not) changes more than this many
    /// times within `FLAP_CHANGES_WINDOW` is flapping: no new action until it has been stable
    /// for `FLAP_STABLE`; its drift row stays (decision `flapping`) while it lasts, also in its
    /// healthy moments, so it is one incident and one notification.
    pub flap_changes: u32,
    /// `FLAP_CHANGES_WINDOW`: the window the changes are counted in.
    pub flap_changes_window: Duration,
    /// `FLAP_STABLE`: a flapping service is stable again after this long without a change.
    pub flap_stable: Duration,
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
            missing_grace: Duration::from_secs(60),
            exhausted_hold: Duration::from_secs(6 * 3600),
            flap_window: Duration::from_secs(30 * 60),
            flap_hold: Duration::from_secs(2 * 60),
            flap_changes: 5,
            flap_changes_window: Duration::from_secs(10 * 60),
            flap_stable: Duration::from_secs(10 * 60),
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

/// A rejection (or an exhaustion) the supervisor remembers.
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
    #[serde(default, with = "crate::ts_format::map")]
    pub attempts: BTreeMap<String, Timestamp>,
    /// Per action id, its last rejection. Kept for the snooze.
    #[serde(default)]
    pub rejections: BTreeMap<String, Rejection>,
    /// Per `node/service` (or node for node actions), when actions were auto-approved. Kept for an hour.
    #[serde(default, with = "crate::ts_format::vec_map")]
    pub auto_approved: BTreeMap<String, Vec<Timestamp>>,
    /// Per node, since when the supervisor has judged it up without a break (for `MISSING_GRACE`).
    #[serde(default, with = "crate::ts_format::map")]
    pub up_since: BTreeMap<String, Timestamp>,
    /// Nodes the supervisor judged unreachable (stale or never seen): when one is up again, it
    /// (re)appeared at that moment.
    #[serde(default)]
    pub down: BTreeSet<String>,
    /// Per drift the world does not date (`missing:<node>/<service>`, `disk:<node>`,
    /// `node:<node>`), when the supervisor first saw it. Kept while it holds.
    #[serde(default, with = "crate::ts_format::map")]
    pub drift_since: BTreeMap<String, Timestamp>,
    /// Per target (`node/service` or node), since when its remediation is exhausted. Lifted when
    /// the drift resolves once, an operator proposes again, or after `EXHAUSTED_HOLD`.
    #[serde(default)]
    pub exhausted: BTreeMap<String, Rejection>,
    /// Per action id, when an operator proposed it again: terminal actions that ended before
    /// are not counted (escalation and snooze start over).
    #[serde(default, with = "crate::ts_format::map")]
    pub resets: BTreeMap<String, Timestamp>,
    /// Per target, when its drift last resolved by itself (flapping). Kept for `FLAP_WINDOW`.
    #[serde(default, with = "crate::ts_format::map")]
    pub flapping: BTreeMap<String, Timestamp>,
    /// Per service target (`node/service`), its state changes within `FLAP_CHANGES_WINDOW`
    /// and whether it is flapping: kept while it is in drift, changed recently or flapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flap_track: BTreeMap<String, FlapTrack>,
}

/// The state changes of one service, for flap detection by count (`FLAP_CHANGES`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlapTrack {
    /// In drift (unhealthy or missing) when last judged.
    pub in_drift: bool,
    /// The last drift seen (kind and trigger), for the row shown while it is healthy.
    #[serde(default)]
    pub drift: Option<DriftKind>,
    #[serde(default)]
    pub trigger: Option<String>,
    /// When it changed (into or out of drift), oldest first, within the window.
    #[serde(default, with = "crate::ts_format::vec")]
    pub changes: Vec<Timestamp>,
    /// Flapping until then (the last change + `FLAP_STABLE`), when it is.
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    pub flapping_until: Option<Timestamp>,
}

pub const MEMORY_VERSION: u32 = 1;

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
    /// A restart and a redeploy (or a cleanup) already ran within the escalation window and the
    /// drift persists: nothing more until it resolves once, an operator retries, or `until`.
    RemediationExhausted {
        tried: Vec<String>,
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
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
    /// The node (re)appeared recently, or a dependency has not been checked since this
    /// service failed: waiting a full check pass before acting.
    WaitingGrace {
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
        /// The dependency whose next check is awaited, if that is the reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dependency: Option<String>,
    },
    /// The supervisor started recently: world state is not fresh yet.
    WaitingFreshWorld {
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
    /// The drift resolved by itself recently and came back: it must hold until `until`.
    Flapping {
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
    /// The service changed state more than `FLAP_CHANGES` times within the window: no new
    /// action until it has been stable, `until`.
    FlappingChanges {
        changes: usize,
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
    /// An operator muted it (silence `silence`): nothing is proposed or notified until `until`.
    Silenced {
        silence: String,
        by: String,
        note: String,
        #[serde(with = "crate::ts_format")]
        until: Timestamp,
    },
}

impl Decision {
    /// The `decision` of `world/drift.json`.
    pub fn next_step(&self) -> NextStep {
        match self {
            Decision::Create { .. } => NextStep::ActionCreated,
            Decision::AlreadyActive { .. } => NextStep::AlreadyActive,
            Decision::RootCause { .. } => NextStep::RootCauseElsewhere,
            Decision::NodeUnreachable => NextStep::NodeUnreachable,
            Decision::RemediationExhausted { .. } => NextStep::RemediationExhausted,
            Decision::Snoozed { .. } => NextStep::RejectedSnoozed,
            Decision::Settling { .. } => NextStep::Settling,
            Decision::WaitingGrace { .. } => NextStep::WaitingGrace,
            Decision::WaitingFreshWorld { .. } => NextStep::WaitingFreshWorld,
            Decision::Flapping { .. } | Decision::FlappingChanges { .. } => NextStep::Flapping,
            Decision::Silenced { .. } => NextStep::Silenced,
        }
    }

    /// When the decision ends by time, if it does.
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            Decision::RemediationExhausted { until, .. }
            | Decision::Snoozed { until, .. }
            | Decision::Settling { until, .. }
            | Decision::WaitingGrace { until, .. }
            | Decision::WaitingFreshWorld { until }
            | Decision::Flapping { until }
            | Decision::FlappingChanges { until, .. }
            | Decision::Silenced { until, .. } => Some(*until),
            _ => None,
        }
    }
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
    /// When the drift began, as far as world state (or the supervisor's memory) tells.
    #[serde(with = "crate::ts_format::option", default)]
    pub since: Option<Timestamp>,
    #[serde(flatten)]
    pub decision: Decision,
}

/// A pending action to cancel, with the reason for its history note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub id: String,
    pub reason: String,
    /// The action created in its place (its type had to change). Not written if the cancel
    /// fails (someone approved it meanwhile): one remediation at a time.
    #[serde(default)]
    pub replaced_by: Option<String>,
}

/// A pending action whose drift changed (kind or trigger) but whose type is still right: its
/// `drift` and `trigger` are updated in place, with a history note, so the action and the drift
/// row never disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub id: String,
    pub drift: String,
    pub trigger: String,
    pub note: String,
}

/// What one reconcile will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Every drift found, in (node, service) order, with its decision.
    pub drifts: Vec<DriftDecision>,
    /// New action files to write (their `state` says pending or approved).
    pub create: Vec<Action>,
    /// Pending actions to move to cancelled (before the creates).
    pub cancel: Vec<Cancel>,
    /// Pending actions whose drift/trigger fields change.
    #[serde(default)]
    pub update: Vec<Update>,
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
    /// When this supervisor started watching (the process start): world state is fresh only
    /// once every node reported after it and `MISSING_GRACE` has passed.
    pub started_at: Timestamp,
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

/// The action ids that remediate a target: the ladder's rungs.
fn target_ids(node: &str, service: Option<&str>) -> Vec<String> {
    match service {
        Some(_) => vec![ActionType::ContainerRestart.id(node, service), ActionType::Redeploy.id(node, service)],
        None => vec![ActionType::DiskCleanup.id(node, None)],
    }
}

/// The drift on one service, if any: (kind, trigger). A service whose health (partly) comes
/// from alerts is silent while all is well, so its absence from world state is no drift.
fn service_drift(spec: &ServiceSpec, state: Option<&ServiceState>) -> Option<(DriftKind, String)> {
    match state {
        None if spec.has_alert_checks() => None,
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

/// The first time the supervisor saw a drift the world does not date: remembered in memory.
fn first_seen(memory: &mut SupervisorMemory, key: String, now: Timestamp) -> Timestamp {
    *memory.drift_since.entry(key).or_insert(now)
}

/// Operator-proposed (retried) actions reset their target's escalation, snooze and exhaustion:
/// attempts and rejections that ended before the retry no longer count.
fn apply_resets(memory: &mut SupervisorMemory, active: &[Action]) {
    for a in active.iter().filter(|a| operator_proposed(a)) {
        let at = a.created_at;
        for id in target_ids(&a.node, a.service.as_deref()) {
            let e = memory.resets.entry(id.clone()).or_insert(at);
            *e = (*e).max(at);
            if memory.attempts.get(&id).is_some_and(|t| *t <= at) {
                memory.attempts.remove(&id);
            }
            if memory.rejections.get(&id).is_some_and(|r| r.at <= at) {
                memory.rejections.remove(&id);
            }
        }
        memory.exhausted.remove(&target_key(&a.node, a.service.as_deref()));
        memory.flapping.remove(&target_key(&a.node, a.service.as_deref()));
    }
}

/// Computes the plan with no silences. Pure: the same input gives the same plan.
pub fn plan(input: PlanInput<'_>) -> Plan {
    plan_with_silences(input, &[])
}

/// The decision for a drift an active silence matches.
fn silenced(s: &Silence) -> Decision {
    Decision::Silenced { silence: s.id.clone(), by: s.created_by.clone(), note: s.reason.clone(), until: s.end() }
}

/// Records whether a service is in drift now and, when that changed, when; marks it flapping
/// when it changed more than `FLAP_CHANGES` times within `FLAP_CHANGES_WINDOW`.
fn track_flaps(memory: &mut SupervisorMemory, key: &str, drift: Option<&(DriftKind, String)>, state: Option<&ServiceState>, policy: &Policy, now: Timestamp) {
    let in_drift = drift.is_some();
    let t = memory.flap_track.entry(key.to_owned()).or_default();
    if t.in_drift != in_drift {
        let last = t.changes.last().copied();
        // The world dates the change (`since`); a clock oddity or a missing service: now.
        let at = state.map(|s| s.since).filter(|s| *s <= now && last.is_none_or(|l| *s > l)).unwrap_or(now);
        t.changes.push(at);
        t.in_drift = in_drift;
    }
    if let Some((kind, trigger)) = drift {
        t.drift = Some(*kind);
        t.trigger = Some(trigger.clone());
    }
    let window_start = now - chrono::Duration::from_std(policy.flap_changes_window).unwrap_or(chrono::TimeDelta::MAX);
    t.changes.retain(|c| *c > window_start);
    if policy.flap_changes > 0 && t.changes.len() > policy.flap_changes as usize {
        let last = *t.changes.last().expect("more than zero changes");
        t.flapping_until = Some(after(last, policy.flap_stable));
    }
    if t.flapping_until.is_some_and(|u| now >= u) {
        t.flapping_until = None;
    }
    if !t.in_drift && t.changes.is_empty() && t.flapping_until.is_none() {
        memory.flap_track.remove(key);
    }
}

/// Computes the plan. Pure: the same input gives the same plan. `silences` are every silence
/// on record (active or not): an active one that matches a drift makes it `silenced` (nothing
/// proposed) and withdraws a pending action the supervisor proposed for it.
///
/// The steps: remember what ended ([`learn`]), judge every desired node ([`judge_node`]),
/// forget what no longer holds ([`forget_gone`]), withdraw pending actions whose reason is
/// gone ([`auto_cancel`]) and lift rejections and exhaustions whose drift resolved
/// ([`lift_resolved`]).
pub fn plan_with_silences(input: PlanInput<'_>, silences: &[Silence]) -> Plan {
    let PlanInput { desired, unknown_nodes, services, nodes, active, outcomes, memory, policy, started_at, now } = input;
    let mut memory = memory.clone();
    apply_resets(&mut memory, active);
    let mut memory = learn(&memory, outcomes, policy, now);
    let rules = Rules { policy, now, started_at, silences, active_by_target: active_by_target(active) };
    let mut found = Found::default();
    for (node, host) in &desired.hosts {
        judge_node(&rules, node, host, nodes.get(node), services.get(node), &mut memory, &mut found);
    }
    forget_gone(&mut memory, desired, &found);
    auto_cancel(&rules, desired, unknown_nodes, active, &mut memory, &mut found);
    lift_resolved(&mut memory, desired, &found, now);
    let Found { drifts, create, cancel, update, .. } = found;
    Plan { drifts, create, cancel, update, memory }
}

/// What every step of one plan reads besides memory.
struct Rules<'a> {
    policy: &'a Policy,
    now: Timestamp,
    started_at: Timestamp,
    /// Every silence on record.
    silences: &'a [Silence],
    /// Per target, the active actions on it (any type): a second remediation never starts
    /// while one is pending, approved or running.
    active_by_target: BTreeMap<String, Vec<&'a Action>>,
}

impl<'a> Rules<'a> {
    /// The active silence matching a target (and action type), if any.
    fn muted(&self, node: &str, service: Option<&str>, kind: Option<ActionType>) -> Option<&'a Silence> {
        crate::silence::active_match(self.silences, node, service, kind, self.now)
    }
}

/// What judging the nodes found: the plan's rows and writes, and what auto-cancel and the
/// lifting of rejections need to know.
#[derive(Default)]
struct Found<'a> {
    drifts: Vec<DriftDecision>,
    create: Vec<Action>,
    cancel: Vec<Cancel>,
    update: Vec<Update>,
    /// Targets whose drift holds now.
    drift_holds: BTreeSet<String>,
    /// Targets in drift because a dependency is.
    root_caused: BTreeSet<String>,
    /// Nodes that cannot be judged (stale or never seen).
    unjudged_nodes: BTreeSet<&'a str>,
    /// `drift_since` keys still in use.
    live_since_keys: BTreeSet<String>,
}

impl Found<'_> {
    fn out(&mut self) -> Out<'_> {
        Out { create: &mut self.create, cancel: &mut self.cancel, update: &mut self.update }
    }
}

/// The active actions per target (`node/service` or the node).
fn active_by_target(active: &[Action]) -> BTreeMap<String, Vec<&Action>> {
    let mut by_target: BTreeMap<String, Vec<&Action>> = BTreeMap::new();
    for a in active {
        by_target.entry(target_key(&a.node, a.service.as_deref())).or_default().push(a);
    }
    by_target
}

/// Judges one desired node: unreachable (one row, nothing for its services), else its
/// services in drift, its flapping services in their healthy moments and its disk.
fn judge_node<'a>(
    rules: &Rules<'_>,
    node: &'a String,
    host: &HostSpec,
    state: Option<&NodeState>,
    world: Option<&BTreeMap<String, ServiceState>>,
    memory: &mut SupervisorMemory,
    found: &mut Found<'a>,
) {
    let now = rules.now;
    let reach = reachability(state, now, rules.policy.node_stale_after);
    if reach != Reachability::Up {
        let row = node_unreachable(rules, node, reach, state, memory, found);
        found.drifts.push(row);
        return;
    }
    // A node seen down by this supervisor (re)appears now; one it never judged is taken
    // as up since the supervisor started (the fresh-world wait covers that).
    let appeared = if memory.down.remove(node) { now } else { rules.started_at.min(now) };
    let up_since = *memory.up_since.entry(node.clone()).or_insert(appeared);
    let last_seen = state.and_then(|n| n.last_seen).unwrap_or(now);
    let empty = BTreeMap::new();
    let world = world.unwrap_or(&empty);
    judge_services(rules, node, host, world, up_since, last_seen, memory, found);
    if state.and_then(|n| n.disk_pressure) == Some(DiskLevel::High) {
        let fresh = state.and_then(|n| n.last_seen);
        let row = disk_pressure(rules, node, fresh, memory, found);
        found.drifts.push(row);
    }
}

/// The row of a node that cannot be judged; it is remembered as down.
fn node_unreachable<'a>(
    rules: &Rules<'_>,
    node: &'a String,
    reach: Reachability,
    state: Option<&NodeState>,
    memory: &mut SupervisorMemory,
    found: &mut Found<'a>,
) -> DriftDecision {
    memory.up_since.remove(node);
    memory.down.insert(node.clone());
    found.unjudged_nodes.insert(node);
    let trigger = if reach == Reachability::NeverSeen { "never_seen" } else { "stale" };
    let key = format!("node:{node}");
    let since = match state.and_then(|n| n.last_seen) {
        Some(seen) => Some(seen),
        None => Some(first_seen(memory, key.clone(), rules.now)),
    };
    found.live_since_keys.insert(key);
    DriftDecision {
        node: node.clone(),
        service: None,
        drift: DriftKind::NodeUnreachable,
        trigger: trigger.to_owned(),
        root_cause: None,
        since,
        decision: rules.muted(node, None, None).map_or(Decision::NodeUnreachable, silenced),
    }
}

/// The services of a reachable node: flap tracking for each, a row with its decision for each
/// in drift, and a row for each flapping one in a healthy moment (one incident, not one per flap).
#[allow(clippy::too_many_arguments)]
fn judge_services(
    rules: &Rules<'_>,
    node: &str,
    host: &HostSpec,
    world: &BTreeMap<String, ServiceState>,
    up_since: Timestamp,
    last_seen: Timestamp,
    memory: &mut SupervisorMemory,
    found: &mut Found<'_>,
) {
    let (policy, now) = (rules.policy, rules.now);
    let in_drift_now: BTreeMap<&str, (DriftKind, String)> =
        host.monitored().filter_map(|(name, spec)| service_drift(spec, world.get(name)).map(|d| (name.as_str(), d))).collect();
    let in_drift: BTreeSet<&str> = in_drift_now.keys().copied().collect();
    for (name, _) in host.monitored() {
        track_flaps(memory, &target_key(node, Some(name)), in_drift_now.get(name.as_str()), world.get(name), policy, now);
    }

    for (name, (kind, trigger)) in &in_drift_now {
        let key = target_key(node, Some(name));
        found.drift_holds.insert(key.clone());
        let state = world.get(*name);
        let since = match state {
            Some(s) => s.since,
            None => {
                let k = format!("missing:{key}");
                found.live_since_keys.insert(k.clone());
                first_seen(memory, k, now)
            }
        };
        let root = root_of(host, name, &in_drift);
        let wait = evidence_wait(*kind, state, up_since, last_seen, rules.started_at, policy, now)
            .or_else(|| unverified_dependency(host, name, trigger, state, world, policy, now));
        let flapping = memory.flap_track.get(&key).and_then(|t| t.flapping_until.map(|u| (t.changes.len(), u)));
        if root.is_some() {
            found.root_caused.insert(key.clone());
        }
        let mute = rules.muted(node, Some(name), None);
        let decision = match (&root, wait) {
            _ if mute.is_some() => silenced(mute.expect("checked")),
            (Some(root), _) => Decision::RootCause { root: root.clone() },
            (None, _) if flapping.is_some() => {
                let (changes, until) = flapping.expect("checked");
                Decision::FlappingChanges { changes, until }
            }
            // An active action is named first: the row says what exists.
            (None, Some(wait)) if !rules.active_by_target.contains_key(&key) => wait,
            (None, _) => {
                let base = if *kind == DriftKind::UnhealthyService && RESTARTABLE_REASONS.contains(&trigger.as_str()) {
                    ActionType::ContainerRestart
                } else {
                    ActionType::Redeploy
                };
                let target =
                    Target { node, service: Some(name), drift: *kind, trigger, since, fresh_since: state.map(|s| s.last_event_at), silences: rules.silences };
                decide(&target, base, &rules.active_by_target, memory, policy, now, &mut found.out())
            }
        };
        found.drifts.push(DriftDecision {
            node: node.to_owned(),
            service: Some((*name).to_owned()),
            drift: *kind,
            trigger: trigger.clone(),
            root_cause: root,
            since: Some(since),
            decision,
        });
    }

    // A flapping service keeps its row in its healthy moments: one incident, not one per flap.
    for (name, _) in host.monitored().filter(|(n, _)| !in_drift_now.contains_key(n.as_str())) {
        let key = target_key(node, Some(name));
        let Some(t) = memory.flap_track.get(&key) else { continue };
        let (Some(until), Some(kind)) = (t.flapping_until, t.drift) else { continue };
        found.drifts.push(DriftDecision {
            node: node.to_owned(),
            service: Some(name.clone()),
            drift: kind,
            trigger: t.trigger.clone().unwrap_or_default(),
            root_cause: None,
            since: t.changes.first().copied(),
            decision: rules.muted(node, Some(name), None).map_or(Decision::FlappingChanges { changes: t.changes.len(), until }, silenced),
        });
    }
}

/// The row of a node reporting disk pressure high, with its decision (a disk cleanup).
fn disk_pressure(rules: &Rules<'_>, node: &str, fresh: Option<Timestamp>, memory: &mut SupervisorMemory, found: &mut Found<'_>) -> DriftDecision {
    found.drift_holds.insert(target_key(node, None));
    let trigger = "high".to_owned();
    let k = format!("disk:{node}");
    found.live_since_keys.insert(k.clone());
    let since = first_seen(memory, k, rules.now);
    let target = Target { node, service: None, drift: DriftKind::DiskPressure, trigger: &trigger, since, fresh_since: fresh, silences: rules.silences };
    let decision = match rules.muted(node, None, None) {
        Some(s) => silenced(s),
        None => decide(&target, ActionType::DiskCleanup, &rules.active_by_target, memory, rules.policy, rules.now, &mut found.out()),
    };
    DriftDecision { node: node.to_owned(), service: None, drift: DriftKind::DiskPressure, trigger, root_cause: None, since: Some(since), decision }
}

/// Forgets what no longer holds: undated drifts (kept only while they hold, or while their node
/// cannot be judged), and nodes and services no longer desired.
fn forget_gone(memory: &mut SupervisorMemory, desired: &DesiredState, found: &Found<'_>) {
    memory.drift_since.retain(|k, _| {
        found.live_since_keys.contains(k) || {
            let node = k.split_once(':').map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            found.unjudged_nodes.contains(node) && !k.starts_with("node:")
        }
    });
    memory.up_since.retain(|n, _| desired.hosts.contains_key(n));
    memory.flap_track.retain(|k, _| {
        let (node, service) = k.split_once('/').unwrap_or((k, ""));
        desired.hosts.get(node).is_some_and(|h| h.services.get(service).is_some_and(|s| s.monitor))
    });
    memory.down.retain(|n| desired.hosts.contains_key(n));
}

/// Auto-cancel: withdraws pending actions (never approved or running) whose service left
/// desired state, that a silence mutes, whose drift resolved by itself, or whose root cause is
/// elsewhere.
fn auto_cancel(
    rules: &Rules<'_>,
    desired: &DesiredState,
    unknown_nodes: &BTreeSet<String>,
    active: &[Action],
    memory: &mut SupervisorMemory,
    found: &mut Found<'_>,
) {
    for a in active.iter().filter(|a| a.state == ActionState::Pending) {
        if found.cancel.iter().any(|c| c.id == a.id) {
            continue;
        }
        let key = target_key(&a.node, a.service.as_deref());
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
            SERVICE_REMOVED.to_owned()
        } else if !a.kind.remedies_drift() {
            // A rollback is a person's request, not a fix for a drift: only its service leaving
            // desired state withdraws it.
            continue;
        } else if let Some(s) = rules.muted(&a.node, a.service.as_deref(), Some(a.kind)).filter(|_| !operator_proposed(a)) {
            words::silenced_cancel(s)
        } else if found.unjudged_nodes.contains(a.node.as_str()) {
            // No fresh word from the node: the drift cannot be called resolved.
            continue;
        } else if !found.drift_holds.contains(&key) {
            // Resolved by itself before anyone acted: remember it, a quick return is flapping.
            memory.flapping.insert(key, rules.now);
            DRIFT_RESOLVED_AUTO.to_owned()
        } else if found.root_caused.contains(&key) && !operator_proposed(a) {
            ROOT_CAUSE_ELSEWHERE.to_owned()
        } else {
            continue;
        };
        found.cancel.push(Cancel { id: a.id.clone(), reason, replaced_by: None });
    }
}

/// A rejection or an exhaustion is lifted once its drift has resolved (judged only on a node
/// that reports). A flapping target's last resolution moves on while it is resolved.
fn lift_resolved(memory: &mut SupervisorMemory, desired: &DesiredState, found: &Found<'_>, now: Timestamp) {
    for (id, rejection) in memory.rejections.iter_mut() {
        if rejection.resolved {
            continue;
        }
        if let Some((node, service)) = target_of_id(id, desired)
            && !found.unjudged_nodes.contains(node.as_str())
            && !found.drift_holds.contains(&target_key(&node, service.as_deref()))
        {
            rejection.resolved = true;
        }
    }
    let resolved = |key: &str| {
        let node = key.split('/').next().unwrap_or(key);
        desired.hosts.contains_key(node) && !found.unjudged_nodes.contains(node) && !found.drift_holds.contains(key)
    };
    memory.exhausted.retain(|key, _| !resolved(key));
    // A flapping target is remembered until it has stayed resolved for FLAP_WINDOW.
    for (key, last) in memory.flapping.iter_mut() {
        if found.drift_holds.contains(key) {
            *last = now;
        }
    }
}

/// Whether a service drift must wait for settled evidence (`MISSING_GRACE`) before any action.
fn evidence_wait(
    kind: DriftKind,
    state: Option<&ServiceState>,
    up_since: Timestamp,
    last_seen: Timestamp,
    started_at: Timestamp,
    policy: &Policy,
    now: Timestamp,
) -> Option<Decision> {
    if policy.missing_grace.is_zero() {
        return None;
    }
    let grace_until = after(up_since, policy.missing_grace);
    match kind {
        DriftKind::MissingService => {
            // Absence is only evidence once the node has had a full check pass to report it,
            // in a world this supervisor has watched settle.
            let fresh_until = after(started_at, policy.missing_grace);
            let world_fresh = last_seen >= started_at && now >= fresh_until;
            if !world_fresh && fresh_until >= grace_until {
                Some(Decision::WaitingFreshWorld { until: fresh_until.max(now) })
            } else if now < grace_until {
                Some(Decision::WaitingGrace { until: grace_until, dependency: None })
            } else if !world_fresh {
                Some(Decision::WaitingFreshWorld { until: fresh_until.max(now) })
            } else {
                None
            }
        }
        // A node that came back while we watched: its services' old verdicts wait for one
        // fresh check (at most the grace).
        DriftKind::UnhealthyService => {
            let stale_verdict = state.is_some_and(|s| s.last_event_at < up_since);
            (up_since > started_at && stale_verdict && now < grace_until).then_some(Decision::WaitingGrace { until: grace_until, dependency: None })
        }
        _ => None,
    }
}

/// A service that failed (for a reason a dependency can cause) while a dependency it needs
/// still reads healthy from a check older than the failure: the dependency's next check (in the
/// same agent pass, usually milliseconds later) tells whether it is the root cause. Waits at
/// most `MISSING_GRACE` after the failure. A container that is not running is its own problem.
fn unverified_dependency(
    host: &HostSpec,
    name: &str,
    trigger: &str,
    state: Option<&ServiceState>,
    world: &BTreeMap<String, ServiceState>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Decision> {
    let s = state.filter(|s| s.status == ServiceStatus::Unhealthy && trigger != "containers_not_running")?;
    let until = after(s.since, policy.missing_grace);
    if now >= until {
        return None;
    }
    let spec = host.services.get(name)?;
    let dep = spec.depends_on.iter().find(|d| world.get(d.as_str()).is_some_and(|ds| ds.status == ServiceStatus::Healthy && ds.last_event_at < s.since))?;
    Some(Decision::WaitingGrace { until, dependency: Some(dep.clone()) })
}

struct Target<'a> {
    node: &'a str,
    service: Option<&'a str>,
    drift: DriftKind,
    trigger: &'a str,
    /// When the drift began.
    since: Timestamp,
    /// When the target last reported (for "a fresh check after the remediation").
    fresh_since: Option<Timestamp>,
    /// Every silence on record (for action type silences).
    silences: &'a [Silence],
}

/// Where [`decide`] puts what it plans.
struct Out<'a> {
    create: &'a mut Vec<Action>,
    cancel: &'a mut Vec<Cancel>,
    update: &'a mut Vec<Update>,
}

/// Decides what to do about one root drift, pushing a new action when one is due. A pending
/// action of the target whose drift changed is updated, or replaced when its type must change.
fn decide(
    t: &Target<'_>,
    base: ActionType,
    active_by_target: &BTreeMap<String, Vec<&Action>>,
    memory: &mut SupervisorMemory,
    policy: &Policy,
    now: Timestamp,
    out: &mut Out<'_>,
) -> Decision {
    let key = target_key(t.node, t.service);
    let Some(a) = active_by_target.get(&key).and_then(|v| v.first()) else {
        return decide_new(t, base, &key, memory, policy, now, out.create);
    };
    // A pending proposal of a muted type is withdrawn (see auto-cancel): say why.
    if a.state == ActionState::Pending
        && !operator_proposed(a)
        && let Some(s) = crate::silence::active_match(t.silences, t.node, t.service, Some(a.kind), now)
    {
        return silenced(s);
    }
    let changed = a.drift != t.drift.as_str() || a.trigger != t.trigger;
    if a.state != ActionState::Pending || !changed {
        return Decision::AlreadyActive { id: a.id.clone(), state: a.state };
    }
    if !operator_proposed(a) {
        // What would be proposed now, were the pending one not there.
        let saved = memory.clone();
        let mut scratch = Vec::new();
        let fresh = decide_new(t, base, &key, memory, policy, now, &mut scratch);
        if let Decision::Create { id, action, .. } = &fresh
            && *action != a.kind
        {
            out.cancel.push(Cancel { id: a.id.clone(), reason: words::replaced_reason(t.drift, t.trigger, id), replaced_by: Some(id.clone()) });
            out.create.extend(scratch);
            return fresh;
        }
        *memory = saved;
    }
    out.update.push(Update {
        id: a.id.clone(),
        drift: t.drift.as_str().to_owned(),
        trigger: t.trigger.to_owned(),
        note: words::drift_changed_note(a, t.drift, t.trigger),
    });
    Decision::AlreadyActive { id: a.id.clone(), state: a.state }
}

/// The decision for a target with no active action.
fn decide_new(
    t: &Target<'_>,
    base: ActionType,
    key: &str,
    memory: &mut SupervisorMemory,
    policy: &Policy,
    now: Timestamp,
    create: &mut Vec<Action>,
) -> Decision {
    let ladder: &[ActionType] = match base {
        ActionType::ContainerRestart => &[ActionType::ContainerRestart, ActionType::Redeploy],
        other => &[other],
    };
    let ladder_ids = || ladder.iter().map(|k| k.id(t.node, t.service)).collect::<Vec<_>>();
    // Exhausted before and not lifted (resolution, retry, hold): stays exhausted.
    if let Some(e) = memory.exhausted.get(key) {
        let until = after(e.at, policy.exhausted_hold);
        if now < until {
            return Decision::RemediationExhausted { tried: ladder_ids(), until };
        }
        memory.exhausted.remove(key);
    }
    // Flapping: the drift resolved by itself recently and is back; it must hold first.
    if let Some(last) = memory.flapping.get(key).copied() {
        if now >= after(last, policy.flap_window) {
            memory.flapping.remove(key);
        } else {
            let until = after(t.since, policy.flap_hold);
            if now < until {
                return Decision::Flapping { until };
            }
        }
    }

    // Loop protection: walk the ladder restart → redeploy → exhausted, skipping a rung whose
    // action already ran within the escalation window.
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
        memory.exhausted.insert(key.to_owned(), Rejection { at: now, resolved: false });
        return Decision::RemediationExhausted { tried: tried.into_iter().map(|(id, _)| id).collect(), until: after(now, policy.exhausted_hold) };
    };
    let id = kind.id(t.node, t.service);
    if let Some(s) = crate::silence::active_match(t.silences, t.node, t.service, Some(kind), now) {
        return silenced(s);
    }

    if let Some(r) = memory.rejections.get(&id) {
        let until = after(r.at, policy.reject_snooze);
        if !r.resolved && now < until {
            return Decision::Snoozed { id, until };
        }
    }

    let mut why = words::why(t.drift, t.trigger, tried.last().map(|(prev, _)| prev.as_str()));
    let mut state = ActionState::Pending;
    let mut history = vec![HistoryEntry { state: ActionState::Pending, at: now, by: SUPERVISOR_BY.to_owned(), note: None }];
    if policy.auto_approve_low && kind.risk() == Risk::Low {
        let hour_ago = now - chrono::Duration::hours(1);
        let used = memory.auto_approved.get(key).map_or(0, |v| v.iter().filter(|at| **at > hour_ago).count());
        if (used as u32) < policy.auto_approve_max_per_hour {
            state = ActionState::Approved;
            memory.auto_approved.entry(key.to_owned()).or_default().push(now);
            history.push(HistoryEntry {
                state: ActionState::Approved,
                at: now,
                by: "policy".to_owned(),
                note: Some(words::auto_approved_note(used + 1, policy.auto_approve_max_per_hour)),
            });
        } else {
            why.push_str(&words::auto_approve_cap_reached(policy.auto_approve_max_per_hour));
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
        generation: None,
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
    let note = words::retry_note(by, d);
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
        generation: None,
    })
}

/// Folds the terminal outcomes into memory and forgets what no rule needs any more.
fn learn(memory: &SupervisorMemory, outcomes: &[Outcome], policy: &Policy, now: Timestamp) -> SupervisorMemory {
    let mut m = memory.clone();
    m.version = MEMORY_VERSION;
    for o in outcomes {
        if m.resets.get(&o.id).is_some_and(|r| o.ended <= *r) {
            continue;
        }
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
    let keep_resets = policy.escalation_window.max(policy.reject_snooze);
    m.resets.retain(|_, at| now < after(*at, keep_resets));
    m.flapping.retain(|_, at| now < after(*at, policy.flap_window));
    m.exhausted.retain(|_, e| now < after(e.at, policy.exhausted_hold));
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

impl DriftDecision {
    /// The action id a drift row names: the one created, active, rejected, settling, the one a
    /// retry would propose (exhausted), or the root cause's (root cause elsewhere).
    pub fn action_id(&self) -> Option<String> {
        match &self.decision {
            Decision::Create { id, .. } | Decision::AlreadyActive { id, .. } | Decision::Snoozed { id, .. } => Some(id.clone()),
            Decision::Settling { after, .. } => Some(after.clone()),
            Decision::RemediationExhausted { tried, .. } => tried.last().cloned(),
            _ => None,
        }
    }

    /// The row of `world/drift.json`.
    pub fn entry(&self, policy: &Policy, now: Timestamp) -> DriftEntry {
        DriftEntry {
            node: self.node.clone(),
            service: self.service.clone(),
            kind: self.drift,
            trigger: self.trigger.clone(),
            root_cause: self.root_cause.clone(),
            since: self.since,
            decision: self.decision.next_step(),
            reason: self.reason(policy, now),
            action_id: self.action_id(),
            until: self.decision.until(),
        }
    }
}

impl Plan {
    /// `world/drift.json` for this plan: every drift, in (node, service) order, with what
    /// happens next. Written at every reconcile, also when empty.
    pub fn drift_file(&self, policy: &Policy, now: Timestamp) -> DriftFile {
        let mut drifts: Vec<DriftEntry> = self.drifts.iter().map(|d| d.entry(policy, now)).collect();
        // Root cause elsewhere: name the action that is about the root, if any.
        for i in 0..drifts.len() {
            if let Some(root) = drifts[i].root_cause.clone() {
                let node = drifts[i].node.clone();
                drifts[i].action_id = drifts.iter().find(|r| r.node == node && r.service.as_deref() == Some(root.as_str())).and_then(|r| r.action_id.clone());
            }
        }
        drifts.sort_by(|a, b| (&a.node, &a.service).cmp(&(&b.node, &b.service)));
        DriftFile { generated_at: now, drifts }
    }
}

#[cfg(test)]
mod tests;
