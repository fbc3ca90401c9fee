// tidy: long file: the table tests of every supervisor rule, not yet split by rule.
//! The supervisor's rules as tables: each row is a situation ("edge-1 up, z2m unhealthy with
//! containers_not_running, a restart completed 5 min ago") and the decisions it must lead to,
//! written as one line per drift or cancel.

use super::*;
use crate::desired::parse_host_file;

const NOW: &str = "2026-11-25T12:00:00Z";

fn at(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
}

fn now() -> Timestamp {
    at(NOW)
}

/// `secs` seconds before now.
fn ago(secs: i64) -> Timestamp {
    now() - chrono::Duration::seconds(secs)
}

const MIN: i64 = 60;
const HOUR: i64 = 3600;

/// Two nodes: mosquitto ← zigbee2mqtt (depends_on), a web app, and a service not monitored.
const EDGE: &str = "services:\n  mosquitto: {}\n  zigbee2mqtt:\n    depends_on: [mosquitto]\n  web: {}\n  homeassistant:\n    monitor: false\n";

/// A situation, built up in the words of the rule it tests.
#[derive(Clone)]
struct Situation {
    desired: DesiredState,
    unknown_nodes: BTreeSet<String>,
    services: BTreeMap<String, BTreeMap<String, ServiceState>>,
    nodes: BTreeMap<String, NodeState>,
    active: Vec<Action>,
    outcomes: Vec<Outcome>,
    memory: SupervisorMemory,
    policy: Policy,
    started_at: Timestamp,
    now: Timestamp,
    silences: Vec<crate::silence::Silence>,
}

fn given() -> Situation {
    Situation {
        desired: DesiredState::default(),
        unknown_nodes: BTreeSet::new(),
        services: BTreeMap::new(),
        nodes: BTreeMap::new(),
        active: Vec::new(),
        outcomes: Vec::new(),
        memory: SupervisorMemory::default(),
        policy: Policy::default(),
        started_at: ago(HOUR),
        now: now(),
        silences: Vec::new(),
    }
}

impl Situation {
    fn host(mut self, node: &str, yaml: &str) -> Self {
        let f = parse_host_file("test", node, yaml).unwrap();
        self.desired.hosts.insert(node.to_owned(), f.spec);
        self
    }

    /// The node with every service of its file healthy, seen 10 s ago.
    fn all_healthy(mut self, node: &str) -> Self {
        self = self.node_seen(node, 10);
        let names: Vec<String> = self.desired.hosts[node].services.keys().cloned().collect();
        for s in names {
            self = self.healthy(node, &s);
        }
        self
    }

    fn node_seen(mut self, node: &str, secs_ago: i64) -> Self {
        let status = if secs_ago <= 90 { NodeStatus::Up } else { NodeStatus::Stale };
        self.nodes.insert(
            node.to_owned(),
            NodeState { last_seen: Some(ago(secs_ago)), status, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None },
        );
        // Up without a break for the last hour, as the supervisor remembers it.
        if status == NodeStatus::Up {
            self.memory.up_since.entry(node.to_owned()).or_insert(ago(HOUR));
        }
        self
    }

    /// The observer's file still says `up`, but its last_seen is old (a dead observer).
    fn node_says_up_but_last_seen(mut self, node: &str, secs_ago: i64) -> Self {
        self = self.node_seen(node, secs_ago);
        self.nodes.get_mut(node).unwrap().status = NodeStatus::Up;
        self
    }

    fn disk(mut self, node: &str, level: DiskLevel) -> Self {
        self.nodes.get_mut(node).unwrap().disk_pressure = Some(level);
        self
    }

    fn service(mut self, node: &str, name: &str, status: ServiceStatus, reason: Option<&str>, last_event: Timestamp) -> Self {
        let state = ServiceState {
            status,
            reason: reason.map(str::to_owned),
            detail: None,
            since: last_event,
            last_event_at: last_event,
            last_event_id: uuid::Uuid::nil(),
            consecutive_failures: u32::from(status == ServiceStatus::Unhealthy),
        };
        self.services.entry(node.to_owned()).or_default().insert(name.to_owned(), state);
        self
    }

    fn healthy(self, node: &str, name: &str) -> Self {
        self.service(node, name, ServiceStatus::Healthy, None, ago(5))
    }

    fn unhealthy(self, node: &str, name: &str, reason: &str) -> Self {
        self.service(node, name, ServiceStatus::Unhealthy, Some(reason), ago(5))
    }

    /// Unhealthy, with the last check `secs_ago`.
    fn unhealthy_checked(self, node: &str, name: &str, reason: &str, secs_ago: i64) -> Self {
        self.service(node, name, ServiceStatus::Unhealthy, Some(reason), ago(secs_ago))
    }

    fn missing(mut self, node: &str, name: &str) -> Self {
        if let Some(m) = self.services.get_mut(node) {
            m.remove(name);
        }
        self
    }

    fn active(mut self, state: ActionState, kind: ActionType, node: &str, service: Option<&str>) -> Self {
        let id = kind.id(node, service);
        self.active.push(Action {
            id,
            kind,
            risk: kind.risk(),
            node: node.to_owned(),
            service: service.map(str::to_owned),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: None,
            state,
            created_at: ago(10 * MIN),
            updated_at: ago(10 * MIN),
            history: vec![],
            result: None,
            generation: None,
        });
        self
    }

    fn pending(self, kind: ActionType, node: &str, service: Option<&str>) -> Self {
        self.active(ActionState::Pending, kind, node, service)
    }

    fn ended(mut self, state: ActionState, id: &str, secs_ago: i64) -> Self {
        self.outcomes.push(Outcome { id: id.to_owned(), state, ended: ago(secs_ago) });
        self
    }

    fn policy(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// An active silence (started 10 min ago, ends in `secs`) on `target` (`node`, `node/service`)
    /// and/or an action type.
    fn silenced(mut self, target: &str, kind: Option<ActionType>, secs: i64) -> Self {
        let mut m = crate::silence::Matcher::target(target);
        m.action_type = kind;
        let n = self.silences.len();
        let s = crate::silence::Silence::new(
            format!("s-{n}"),
            m,
            std::time::Duration::from_secs((secs + 10 * MIN) as u64),
            "maintenance",
            "ui:alice",
            ago(10 * MIN),
        )
        .unwrap();
        self.silences.push(s);
        self
    }

    fn plan(&self) -> Plan {
        plan_with_silences(
            PlanInput {
                desired: &self.desired,
                unknown_nodes: &self.unknown_nodes,
                services: &self.services,
                nodes: &self.nodes,
                active: &self.active,
                outcomes: &self.outcomes,
                memory: &self.memory,
                policy: &self.policy,
                started_at: self.started_at,
                now: self.now,
            },
            &self.silences,
        )
    }

    /// The next reconcile: the plan's creates are now active and its memory is remembered.
    fn then_applied(mut self) -> Self {
        let p = self.plan();
        self.active.retain(|a| !p.cancel.iter().any(|c| c.id == a.id));
        self.active.extend(p.create);
        self.memory = p.memory;
        self
    }
}

/// One line per decision, short enough to read as a table.
fn lines(p: &Plan) -> Vec<String> {
    let mut out: Vec<String> = p
        .drifts
        .iter()
        .map(|d| {
            let target = match &d.service {
                Some(s) => format!("{}/{s}", d.node),
                None => d.node.clone(),
            };
            let decision = match &d.decision {
                Decision::Create { id, state, .. } => format!("create {state} {id}"),
                Decision::AlreadyActive { id, state } => format!("leave {state} {id}"),
                Decision::RootCause { root } => format!("root_cause {root}"),
                Decision::NodeUnreachable => "no action".into(),
                Decision::RemediationExhausted { .. } => "remediation_exhausted".into(),
                Decision::Snoozed { id, .. } => format!("snoozed {id}"),
                Decision::Settling { after, .. } => format!("settling after {after}"),
                Decision::WaitingGrace { until, dependency: None } => format!("waiting_grace until {}", until.format("%H:%M:%S")),
                Decision::WaitingGrace { until, dependency: Some(d) } => format!("waiting_grace for {d} until {}", until.format("%H:%M:%S")),
                Decision::WaitingFreshWorld { until } => format!("waiting_fresh_world until {}", until.format("%H:%M:%S")),
                Decision::Flapping { until } => format!("flapping until {}", until.format("%H:%M:%S")),
                Decision::FlappingChanges { changes, until } => format!("flapping ({changes} changes) until {}", until.format("%H:%M:%S")),
                Decision::Silenced { silence, until, .. } => format!("silenced {silence} until {}", until.format("%H:%M:%S")),
            };
            format!("{target} {}({}) => {decision}", d.drift, d.trigger)
        })
        .collect();
    out.extend(p.cancel.iter().map(|c| format!("cancel {} {}", c.id, c.reason)));
    out.extend(p.update.iter().map(|u| format!("update {} {} ({})", u.id, u.drift, u.trigger)));
    out
}

fn check(what: &str, s: &Situation, want: &[&str]) {
    let got = lines(&s.plan());
    assert_eq!(got, want, "\nsituation: {what}\n got: {got:#?}");
}

use ActionType::{ContainerRestart as Restart, DiskCleanup, Redeploy};

#[test]
fn drift_kinds_action_types_and_ids() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    check("everything healthy", &edge(), &[]);
    check(
        "container gone",
        &edge().unhealthy("edge-1", "web", "containers_not_running"),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    check(
        "broker refuses MQTT",
        &edge().unhealthy("edge-1", "web", "mqtt_unreachable"),
        &["edge-1/web unhealthy_service(mqtt_unreachable) => create pending container-restart-edge-1-web"],
    );
    check(
        "http check failing",
        &edge().unhealthy("edge-1", "web", "http_check_failed"),
        &["edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web"],
    );
    check("desired but never reported", &edge().missing("edge-1", "web"), &["edge-1/web missing_service(missing) => create pending redeploy-edge-1-web"]);
    check("disk at medium", &edge().disk("edge-1", DiskLevel::Medium), &[]);
    check("disk at high", &edge().disk("edge-1", DiskLevel::High), &["edge-1 disk_pressure(high) => create pending disk-cleanup-edge-1"]);
    check("a monitor: false service is down: nobody cares", &edge().unhealthy("edge-1", "homeassistant", "containers_not_running"), &[]);
    check("a service not in desired state is down: not ours", &edge().unhealthy("edge-1", "stray", "containers_not_running"), &[]);
}

#[test]
fn created_actions_carry_the_contract_fields() {
    let p = given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "containers_not_running").plan();
    let a = &p.create[0];
    assert_eq!((a.id.as_str(), a.kind, a.risk, a.state), ("container-restart-edge-1-web", Restart, Risk::Low, ActionState::Pending));
    assert_eq!(
        (a.node.as_str(), a.service.as_deref(), a.drift.as_str(), a.trigger.as_str()),
        ("edge-1", Some("web"), "unhealthy_service", "containers_not_running")
    );
    assert_eq!(a.root_cause, None);
    assert_eq!((a.created_at, a.updated_at), (now(), now()));
    assert_eq!(a.history.len(), 1);
    assert_eq!((a.history[0].state, a.history[0].by.as_str()), (ActionState::Pending, "supervisor"));
    assert!(a.history[0].note.as_deref().unwrap().contains("containers_not_running"));
    let redeploy = given().host("edge-1", EDGE).all_healthy("edge-1").missing("edge-1", "web").plan();
    assert_eq!(redeploy.create[0].risk, Risk::Guarded);
}

#[test]
fn idempotent_while_active() {
    let down = || given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "containers_not_running");
    for state in [ActionState::Pending, ActionState::Approved, ActionState::Running] {
        check(
            &format!("restart already {state}"),
            &down().active(state, Restart, "edge-1", Some("web")),
            &[&format!("edge-1/web unhealthy_service(containers_not_running) => leave {state} container-restart-edge-1-web")],
        );
    }
    check(
        "a redeploy is running and the reason changed to a restartable one: no second remediation",
        &down().active(ActionState::Running, Redeploy, "edge-1", Some("web")),
        &["edge-1/web unhealthy_service(containers_not_running) => leave running redeploy-edge-1-web"],
    );
    // Planning again over its own output writes nothing new.
    let second = down().then_applied();
    assert!(second.plan().create.is_empty());
}

#[test]
fn auto_cancel_pending_only() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    check(
        "restart pending, service healthy again",
        &edge().pending(Restart, "edge-1", Some("web")),
        &["cancel container-restart-edge-1-web drift_resolved_auto"],
    );
    check(
        "disk cleanup pending, disk back to medium",
        &edge().disk("edge-1", DiskLevel::Medium).pending(DiskCleanup, "edge-1", None),
        &["cancel disk-cleanup-edge-1 drift_resolved_auto"],
    );
    check("restart approved, service healthy: approved is never cancelled", &edge().active(ActionState::Approved, Restart, "edge-1", Some("web")), &[]);
    check("restart running, service healthy: running is never cancelled", &edge().active(ActionState::Running, Restart, "edge-1", Some("web")), &[]);
    check(
        "service removed from services.yaml",
        &edge().pending(Redeploy, "edge-1", Some("gone")),
        &["cancel redeploy-edge-1-gone service_removed_from_desired_state"],
    );
    check(
        "service got monitor: false",
        &edge().pending(Restart, "edge-1", Some("homeassistant")),
        &["cancel container-restart-edge-1-homeassistant service_removed_from_desired_state"],
    );
    check(
        "the whole host file is gone",
        &edge().pending(Restart, "old-node", Some("web")),
        &["cancel container-restart-old-node-web service_removed_from_desired_state"],
    );
    let mut broken = edge().pending(Restart, "edge-2", Some("web"));
    broken.unknown_nodes.insert("edge-2".into());
    check("edge-2's file has a typo and no last good version: its pending action stays", &broken, &[]);
    check(
        "removed service on an unreachable node is still cancelled",
        &given().host("edge-1", EDGE).pending(Restart, "edge-1", Some("gone")),
        &["edge-1 node_unreachable(never_seen) => no action", "cancel container-restart-edge-1-gone service_removed_from_desired_state"],
    );
    check(
        "node went stale with a restart pending: no word, so not resolved",
        &given().host("edge-1", EDGE).all_healthy("edge-1").node_seen("edge-1", 5 * MIN).pending(Restart, "edge-1", Some("web")),
        &["edge-1 node_unreachable(stale) => no action"],
    );
    check(
        "drift still holds: pending stays",
        &edge().unhealthy("edge-1", "web", "containers_not_running").pending(Restart, "edge-1", Some("web")),
        &["edge-1/web unhealthy_service(containers_not_running) => leave pending container-restart-edge-1-web"],
    );
}

#[test]
fn bootstrap_flood_guard() {
    check("fresh install: hosts/ lists a node that never reported", &given().host("edge-1", EDGE), &["edge-1 node_unreachable(never_seen) => no action"]);
    check(
        "node known but silent for 5 minutes, its services look unhealthy",
        &given().host("edge-1", EDGE).all_healthy("edge-1").node_seen("edge-1", 5 * MIN).unhealthy("edge-1", "web", "containers_not_running"),
        &["edge-1 node_unreachable(stale) => no action"],
    );
    check(
        "observer is dead: nodes.json still says up but last_seen is 10 minutes old",
        &given().host("edge-1", EDGE).all_healthy("edge-1").node_says_up_but_last_seen("edge-1", 10 * MIN).disk("edge-1", DiskLevel::High),
        &["edge-1 node_unreachable(stale) => no action"],
    );
    check(
        "NODE_STALE_AFTER raised to 10 minutes: a node seen 5 minutes ago counts as up",
        &given()
            .host("edge-1", EDGE)
            .all_healthy("edge-1")
            .node_says_up_but_last_seen("edge-1", 5 * MIN)
            .missing("edge-1", "web")
            .policy(|p| p.node_stale_after = Duration::from_secs(600)),
        &["edge-1/web missing_service(missing) => create pending redeploy-edge-1-web"],
    );
    check(
        "one node never seen, the other up and broken: only the live node gets an action",
        &given().host("edge-1", EDGE).host("edge-2", EDGE).all_healthy("edge-2").unhealthy("edge-2", "web", "port_unreachable"),
        &["edge-1 node_unreachable(never_seen) => no action", "edge-2/web unhealthy_service(port_unreachable) => create pending redeploy-edge-2-web"],
    );
}

#[test]
fn root_cause_via_depends_on() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    check(
        "broker down and zigbee2mqtt down with it: only the broker gets an action",
        &edge().unhealthy("edge-1", "mosquitto", "containers_not_running").unhealthy("edge-1", "zigbee2mqtt", "http_check_failed"),
        &[
            "edge-1/mosquitto unhealthy_service(containers_not_running) => create pending container-restart-edge-1-mosquitto",
            "edge-1/zigbee2mqtt unhealthy_service(http_check_failed) => root_cause mosquitto",
        ],
    );
    check(
        "broker missing from world: it is the root",
        &edge().missing("edge-1", "mosquitto").unhealthy("edge-1", "zigbee2mqtt", "http_check_failed"),
        &[
            "edge-1/mosquitto missing_service(missing) => create pending redeploy-edge-1-mosquitto",
            "edge-1/zigbee2mqtt unhealthy_service(http_check_failed) => root_cause mosquitto",
        ],
    );
    check(
        "dependent down, dependency healthy: the dependent is its own root",
        &edge().unhealthy("edge-1", "zigbee2mqtt", "http_check_failed"),
        &["edge-1/zigbee2mqtt unhealthy_service(http_check_failed) => create pending redeploy-edge-1-zigbee2mqtt"],
    );
    let chain = "services:\n  db: {}\n  api:\n    depends_on: [db]\n  ui:\n    depends_on: [api]\n";
    check(
        "a chain ui → api → db all down: the root cause named is db, the deepest",
        &given().host("n1", chain).all_healthy("n1").unhealthy("n1", "db", "exec_check_failed").unhealthy("n1", "api", "port_unreachable").unhealthy(
            "n1",
            "ui",
            "http_check_failed",
        ),
        &[
            "n1/api unhealthy_service(port_unreachable) => root_cause db",
            "n1/db unhealthy_service(exec_check_failed) => create pending redeploy-n1-db",
            "n1/ui unhealthy_service(http_check_failed) => root_cause db",
        ],
    );
    let p = edge().unhealthy("edge-1", "mosquitto", "containers_not_running").unhealthy("edge-1", "zigbee2mqtt", "http_check_failed").plan();
    assert_eq!(p.drifts[1].root_cause.as_deref(), Some("mosquitto"));
    check(
        "pending redeploy of the dependent while its broker also went down: cancelled, only the root gets an action",
        &edge().unhealthy("edge-1", "mosquitto", "containers_not_running").unhealthy("edge-1", "zigbee2mqtt", "http_check_failed").pending(
            Redeploy,
            "edge-1",
            Some("zigbee2mqtt"),
        ),
        &[
            "edge-1/mosquitto unhealthy_service(containers_not_running) => create pending container-restart-edge-1-mosquitto",
            "edge-1/zigbee2mqtt unhealthy_service(http_check_failed) => root_cause mosquitto",
            "cancel redeploy-edge-1-zigbee2mqtt root_cause_elsewhere",
        ],
    );
    let mut approved = edge().unhealthy("edge-1", "mosquitto", "containers_not_running").unhealthy("edge-1", "zigbee2mqtt", "http_check_failed").active(
        ActionState::Approved,
        Redeploy,
        "edge-1",
        Some("zigbee2mqtt"),
    );
    approved.active[0].trigger = "http_check_failed".into();
    check(
        "approved redeploy of the dependent: never cancelled",
        &approved,
        &[
            "edge-1/mosquitto unhealthy_service(containers_not_running) => create pending container-restart-edge-1-mosquitto",
            "edge-1/zigbee2mqtt unhealthy_service(http_check_failed) => root_cause mosquitto",
        ],
    );
}

#[test]
fn loop_protection_and_escalation() {
    let down_checked = |secs_ago| given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy_checked("edge-1", "web", "containers_not_running", secs_ago);
    check(
        "restart completed 5 min ago, a check since says still down: redeploy instead",
        &down_checked(30).ended(ActionState::Completed, "container-restart-edge-1-web", 5 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending redeploy-edge-1-web"],
    );
    check(
        "restart failed 5 min ago: counts as tried too",
        &down_checked(30).ended(ActionState::Failed, "container-restart-edge-1-web", 5 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending redeploy-edge-1-web"],
    );
    check(
        "restart completed 20 s ago, no check since: wait for one",
        &down_checked(10 * MIN).ended(ActionState::Completed, "container-restart-edge-1-web", 20),
        &["edge-1/web unhealthy_service(containers_not_running) => settling after container-restart-edge-1-web"],
    );
    check(
        "restart completed 2 min ago, still no check since: settle time is over, escalate",
        &down_checked(10 * MIN).ended(ActionState::Completed, "container-restart-edge-1-web", 2 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending redeploy-edge-1-web"],
    );
    check(
        "restart and redeploy both completed within the window: exhausted",
        &down_checked(30).ended(ActionState::Completed, "container-restart-edge-1-web", 10 * MIN).ended(ActionState::Completed, "redeploy-edge-1-web", 3 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => remediation_exhausted"],
    );
    check(
        "restart completed 20 min ago (outside the 15 min window): restart again",
        &down_checked(30).ended(ActionState::Completed, "container-restart-edge-1-web", 20 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    check(
        "http check failing and a redeploy completed 5 min ago: exhausted",
        &given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "http_check_failed").ended(
            ActionState::Completed,
            "redeploy-edge-1-web",
            5 * MIN,
        ),
        &["edge-1/web unhealthy_service(http_check_failed) => remediation_exhausted"],
    );
    check(
        "disk cleanup completed 5 min ago and the disk is still high: exhausted",
        &given().host("edge-1", EDGE).all_healthy("edge-1").disk("edge-1", DiskLevel::High).ended(ActionState::Completed, "disk-cleanup-edge-1", 5 * MIN),
        &["edge-1 disk_pressure(high) => remediation_exhausted"],
    );
    check(
        "a cancelled restart is no attempt",
        &down_checked(30).ended(ActionState::Cancelled, "container-restart-edge-1-web", 5 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    check(
        "ESCALATION_WINDOW shortened to 2 min: a restart 5 min ago no longer counts",
        &down_checked(30).ended(ActionState::Completed, "container-restart-edge-1-web", 5 * MIN).policy(|p| p.escalation_window = Duration::from_secs(120)),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
}

#[test]
fn memory_survives_without_the_history_files() {
    // The supervisor learns a completed restart, then the history file disappears (or is
    // archived): the escalation still holds because memory has it.
    let s = given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy_checked("edge-1", "web", "containers_not_running", 30).ended(
        ActionState::Completed,
        "container-restart-edge-1-web",
        5 * MIN,
    );
    let memory = s.plan().memory;
    assert_eq!(memory.attempts.get("container-restart-edge-1-web"), Some(&ago(5 * MIN)));
    let json = serde_json::to_string(&memory).unwrap();
    let back: SupervisorMemory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, memory);
    let mut later = s.clone();
    later.outcomes.clear();
    later.memory = back;
    check("restart known only from memory", &later, &["edge-1/web unhealthy_service(containers_not_running) => create pending redeploy-edge-1-web"]);
    // Outside every window, memory forgets.
    let mut old = given();
    old.memory.attempts.insert("x".into(), ago(HOUR));
    old.memory.rejections.insert("y".into(), Rejection { at: ago(7 * HOUR), resolved: false });
    old.memory.auto_approved.insert("n/s".into(), vec![ago(2 * HOUR)]);
    let forgot = old.plan().memory;
    assert!(forgot.attempts.is_empty() && forgot.rejections.is_empty() && forgot.auto_approved.is_empty(), "{forgot:?}");
}

#[test]
fn rejection_snooze() {
    let down = || given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "containers_not_running");
    check(
        "restart rejected an hour ago, still down: snoozed",
        &down().ended(ActionState::Rejected, "container-restart-edge-1-web", HOUR),
        &["edge-1/web unhealthy_service(containers_not_running) => snoozed container-restart-edge-1-web"],
    );
    check(
        "restart rejected 7 hours ago (REJECT_SNOOZE 6h): proposed again",
        &down().ended(ActionState::Rejected, "container-restart-edge-1-web", 7 * HOUR),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    // Rejected, then the service recovered once, then went down again: proposed again at once.
    let rejected = down().ended(ActionState::Rejected, "container-restart-edge-1-web", HOUR);
    let recovered = rejected.clone().then_applied().healthy("edge-1", "web").then_applied();
    assert!(recovered.memory.rejections["container-restart-edge-1-web"].resolved);
    check(
        "rejected, recovered once, down again",
        &recovered.clone().unhealthy("edge-1", "web", "containers_not_running"),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    // The same rejection file read again after the recovery does not snooze anew.
    assert!(recovered.plan().memory.rejections["container-restart-edge-1-web"].resolved);
    // A node that went silent says nothing about resolution.
    let silent = rejected.clone().then_applied().node_seen("edge-1", 10 * MIN).then_applied();
    assert!(!silent.memory.rejections["container-restart-edge-1-web"].resolved);
    check(
        "disk cleanup rejected 2 hours ago, disk still high",
        &given().host("edge-1", EDGE).all_healthy("edge-1").disk("edge-1", DiskLevel::High).ended(ActionState::Rejected, "disk-cleanup-edge-1", 2 * HOUR),
        &["edge-1 disk_pressure(high) => snoozed disk-cleanup-edge-1"],
    );
}

#[test]
fn auto_approve_low_with_hourly_cap() {
    let down = || given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "containers_not_running").policy(|p| p.auto_approve_low = true);
    check(
        "AUTO_APPROVE=low, restart proposed: straight to approved",
        &down(),
        &["edge-1/web unhealthy_service(containers_not_running) => create approved container-restart-edge-1-web"],
    );
    let a = &down().plan().create[0];
    assert_eq!(
        a.history.iter().map(|h| (h.state, h.by.as_str())).collect::<Vec<_>>(),
        [(ActionState::Pending, "supervisor"), (ActionState::Approved, "policy")]
    );
    check(
        "AUTO_APPROVE=low, redeploy (guarded): waits in pending",
        &down().unhealthy("edge-1", "web", "http_check_failed"),
        &["edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web"],
    );
    let mut capped = down();
    capped.memory.auto_approved.insert("edge-1/web".into(), vec![ago(50 * MIN), ago(30 * MIN), ago(10 * MIN)]);
    check(
        "three auto-approvals for this service within the hour: the fourth waits for a person",
        &capped,
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    let mut other = down().unhealthy("edge-1", "mosquitto", "containers_not_running");
    other.memory.auto_approved.insert("edge-1/web".into(), vec![ago(50 * MIN), ago(30 * MIN), ago(10 * MIN)]);
    check(
        "the cap is per service: another service is still auto-approved",
        &other,
        &[
            "edge-1/mosquitto unhealthy_service(containers_not_running) => create approved container-restart-edge-1-mosquitto",
            "edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web",
        ],
    );
    let mut aged = down();
    aged.memory.auto_approved.insert("edge-1/web".into(), vec![ago(70 * MIN), ago(65 * MIN), ago(61 * MIN)]);
    check(
        "three auto-approvals, all more than an hour ago: approved again",
        &aged,
        &["edge-1/web unhealthy_service(containers_not_running) => create approved container-restart-edge-1-web"],
    );
    assert_eq!(down().plan().memory.auto_approved["edge-1/web"], [now()]);
    check(
        "policy off: pending",
        &down().policy(|p| p.auto_approve_low = false),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
}

#[test]
fn outcome_file_names() {
    let o = Outcome::from_file_name(ActionState::Completed, "container-restart-edge-1-web--20261125T115500.000Z.json").unwrap();
    assert_eq!((o.id.as_str(), o.ended), ("container-restart-edge-1-web", ago(5 * MIN)));
    assert_eq!(Outcome::from_file_name(ActionState::Pending, "x--20261125T115500.000Z.json"), None);
    assert_eq!(Outcome::from_file_name(ActionState::Failed, "x.json"), None);
    assert_eq!(Outcome::from_file_name(ActionState::Failed, "x--garbage.json"), None);
}

#[test]
fn plan_prints_for_people() {
    let p = given().host("edge-1", EDGE).host("edge-2", EDGE).all_healthy("edge-1").unhealthy("edge-1", "web", "containers_not_running").plan();
    let text = p.to_string();
    assert!(text.contains("drift  edge-1/web: unhealthy_service (containers_not_running) -> create container-restart-edge-1-web as pending"), "{text}");
    assert!(text.contains("drift  edge-2: node_unreachable (never_seen) -> no per-service action: node unreachable"), "{text}");
    assert!(text.contains("summary: 2 drift(s), 1 to create, 0 to cancel"), "{text}");
    let json = serde_json::to_value(&p.drifts[0]).unwrap();
    assert_eq!(json["decision"], "create");
    assert_eq!(json["drift"], "unhealthy_service");
}

#[test]
fn retry_is_allowed_only_when_a_drift_holds_and_nothing_is_active() {
    use crate::drift::{DriftEntry, DriftFile, NextStep};
    let row = |service: Option<&str>, kind: DriftKind, trigger: &str, decision: NextStep, action_id: Option<&str>| DriftEntry {
        node: "edge-1".into(),
        service: service.map(str::to_owned),
        kind,
        trigger: trigger.into(),
        root_cause: None,
        since: Some(ago(20 * MIN)),
        decision,
        reason: "Restart and redeploy both ran in the last 15 min and it is still unhealthy.".into(),
        action_id: action_id.map(str::to_owned),
        until: Some(now() + chrono::Duration::minutes(5)),
    };
    let drift = DriftFile {
        generated_at: now(),
        drifts: vec![
            row(Some("web"), DriftKind::UnhealthyService, "containers_not_running", NextStep::RemediationExhausted, Some("redeploy-edge-1-web")),
            row(None, DriftKind::DiskPressure, "high", NextStep::RejectedSnoozed, Some("disk-cleanup-edge-1")),
        ],
    };
    let a = retry_action(&drift, "redeploy-edge-1-web", None, "ui:alice", now()).unwrap();
    assert_eq!((a.kind, a.risk, a.state, a.node.as_str(), a.service.as_deref()), (Redeploy, Risk::Guarded, ActionState::Pending, "edge-1", Some("web")));
    assert_eq!((a.drift.as_str(), a.trigger.as_str()), ("unhealthy_service", "containers_not_running"));
    assert_eq!(a.history.len(), 1);
    assert_eq!((a.history[0].by.as_str(), a.history[0].state), ("ui:alice", ActionState::Pending));
    assert!(a.history[0].note.as_deref().unwrap().starts_with("proposed again by ui:alice"));
    assert!(operator_proposed(&a));
    // Any rung of the same target may be asked for.
    assert_eq!(retry_action(&drift, "container-restart-edge-1-web", None, "cli:bob", now()).unwrap().kind, Restart);
    assert_eq!(retry_action(&drift, "disk-cleanup-edge-1", None, "cli:bob", now()).unwrap().kind, DiskCleanup);
    assert_eq!(retry_action(&drift, "redeploy-edge-1-web", Some(ActionState::Running), "ui:alice", now()), Err(RetryRefused::Active(ActionState::Running)));
    assert_eq!(retry_action(&drift, "redeploy-edge-1-db", None, "ui:alice", now()), Err(RetryRefused::NoDrift));
    assert_eq!(retry_action(&drift, "nonsense", None, "ui:alice", now()), Err(RetryRefused::NoDrift));
    let unreachable = DriftFile { generated_at: now(), drifts: vec![row(None, DriftKind::NodeUnreachable, "stale", NextStep::NodeUnreachable, None)] };
    assert_eq!(retry_action(&unreachable, "disk-cleanup-edge-1", None, "ui:alice", now()), Err(RetryRefused::NoDrift));
}

impl Situation {
    /// The supervisor (re)started `secs_ago`.
    fn started(mut self, secs_ago: i64) -> Self {
        self.started_at = ago(secs_ago);
        self
    }

    /// The supervisor has judged the node up since `secs_ago` (it (re)appeared then).
    fn up_since(mut self, node: &str, secs_ago: i64) -> Self {
        self.memory.up_since.insert(node.to_owned(), ago(secs_ago));
        self
    }

    /// The supervisor judged the node down at its last reconcile: it (re)appears now.
    fn newly_up(mut self, node: &str) -> Self {
        self.memory.up_since.remove(node);
        self.memory.down.insert(node.to_owned());
        self
    }

    /// An operator proposed `kind` again (retry) `secs_ago`.
    fn retried(mut self, kind: ActionType, node: &str, service: Option<&str>, secs_ago: i64) -> Self {
        self = self.pending(kind, node, service);
        let a = self.active.last_mut().unwrap();
        a.created_at = ago(secs_ago);
        a.history =
            vec![HistoryEntry { state: ActionState::Pending, at: ago(secs_ago), by: "ui:alice".into(), note: Some("proposed again by ui:alice".into()) }];
        self
    }

    /// The clock moves on by `secs`; the agents keep sending heartbeats (services do not change).
    fn later(mut self, secs: i64) -> Self {
        let d = chrono::Duration::seconds(secs);
        self.now += d;
        for n in self.nodes.values_mut() {
            n.last_seen = n.last_seen.map(|t| t + d);
        }
        self
    }
}

fn hms(secs_from_now: i64) -> String {
    (now() + chrono::Duration::seconds(secs_from_now)).format("%H:%M:%S").to_string()
}

#[test]
fn no_missing_service_action_without_settled_evidence() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    check(
        "node (re)appeared 10 s ago, web not reported yet: wait a full check pass (MISSING_GRACE 60 s)",
        &edge().up_since("edge-1", 10).missing("edge-1", "web"),
        &[&format!("edge-1/web missing_service(missing) => waiting_grace until {}", hms(50))],
    );
    check(
        "node first judged up right now (heartbeat folded before its services)",
        &edge().newly_up("edge-1").missing("edge-1", "web").missing("edge-1", "mosquitto"),
        &[
            &format!("edge-1/mosquitto missing_service(missing) => waiting_grace until {}", hms(60)),
            &format!("edge-1/web missing_service(missing) => waiting_grace until {}", hms(60)),
        ],
    );
    check(
        "node up for 61 s and web still absent: now it is evidence",
        &edge().up_since("edge-1", 61).missing("edge-1", "web"),
        &["edge-1/web missing_service(missing) => create pending redeploy-edge-1-web"],
    );
    check(
        "supervisor restarted 10 s ago, node up for an hour: world not fresh yet",
        &edge().started(10).missing("edge-1", "web"),
        &[&format!("edge-1/web missing_service(missing) => waiting_fresh_world until {}", hms(50))],
    );
    check(
        "supervisor started 2 min ago but the node has not reported since (a frozen world)",
        &edge().started(2 * MIN).node_says_up_but_last_seen("edge-1", 150).missing("edge-1", "web").policy(|p| p.node_stale_after = Duration::from_secs(600)),
        &[&format!("edge-1/web missing_service(missing) => waiting_fresh_world until {}", hms(0))],
    );
    check(
        "supervisor started 2 min ago, node reported since: fresh",
        &edge().started(2 * MIN).missing("edge-1", "web"),
        &["edge-1/web missing_service(missing) => create pending redeploy-edge-1-web"],
    );
    check(
        "both: restarted 10 s ago and the node reappeared 5 s ago: the later end is named",
        &edge().started(10).up_since("edge-1", 5).missing("edge-1", "web"),
        &[&format!("edge-1/web missing_service(missing) => waiting_grace until {}", hms(55))],
    );
    check(
        "MISSING_GRACE=0 turns the waits off",
        &edge().started(1).newly_up("edge-1").missing("edge-1", "web").policy(|p| p.missing_grace = Duration::ZERO),
        &["edge-1/web missing_service(missing) => create pending redeploy-edge-1-web"],
    );
    check(
        "a pending redeploy for a missing service is not cancelled while it waits (the drift holds)",
        &edge().started(10).missing("edge-1", "web").pending(Redeploy, "edge-1", Some("web")).then_update_fields(),
        &["edge-1/web missing_service(missing) => leave pending redeploy-edge-1-web"],
    );
    // Unhealthy services: positive evidence, acted on unless the verdict predates a reappearance.
    check(
        "node reappeared 10 s ago; web's unhealthy verdict is from before that",
        &edge().up_since("edge-1", 10).unhealthy_checked("edge-1", "web", "http_check_failed", 5 * MIN),
        &[&format!("edge-1/web unhealthy_service(http_check_failed) => waiting_grace until {}", hms(50))],
    );
    check(
        "node reappeared 10 s ago; web checked 5 s ago and still failing: act",
        &edge().up_since("edge-1", 10).unhealthy_checked("edge-1", "web", "http_check_failed", 5),
        &["edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web"],
    );
    check(
        "supervisor just started, node up before that, web failing: act (it is not a reappearance)",
        &edge().started(5).up_since("edge-1", HOUR).unhealthy_checked("edge-1", "web", "http_check_failed", 5 * MIN),
        &["edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web"],
    );
    check(
        "disk pressure is evidence at once",
        &edge().started(5).newly_up("edge-1").disk("edge-1", DiskLevel::High),
        &["edge-1 disk_pressure(high) => create pending disk-cleanup-edge-1"],
    );
}

impl Situation {
    /// Gives the single active action the drift fields of the current world (as if created now).
    fn then_update_fields(mut self) -> Self {
        for a in &mut self.active {
            a.drift = "missing_service".into();
            a.trigger = "missing".into();
        }
        self
    }
}

/// A healthy fleet starting from nothing: agents report heartbeats first, services over the
/// first check pass. Nothing may be proposed at any point.
#[test]
fn a_dependent_waits_for_its_dependencys_next_check() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    // zigbee2mqtt failed 1 s ago; mosquitto's last (healthy) check is 5 s old: its check in the
    // same pass will tell.
    let s = edge().unhealthy_checked("edge-1", "zigbee2mqtt", "mqtt_unreachable", 1).service("edge-1", "mosquitto", ServiceStatus::Healthy, None, ago(5));
    check(
        "dependency not checked since the failure",
        &s,
        &[&format!("edge-1/zigbee2mqtt unhealthy_service(mqtt_unreachable) => waiting_grace for mosquitto until {}", hms(59))],
    );
    check(
        "the dependency's check came: it is down, the root cause",
        &s.clone().unhealthy_checked("edge-1", "mosquitto", "containers_not_running", 0),
        &[
            "edge-1/mosquitto unhealthy_service(containers_not_running) => create pending container-restart-edge-1-mosquitto",
            "edge-1/zigbee2mqtt unhealthy_service(mqtt_unreachable) => root_cause mosquitto",
        ],
    );
    check(
        "the dependency's check came: it is fine, the dependent is its own problem",
        &s.clone().service("edge-1", "mosquitto", ServiceStatus::Healthy, None, ago(0)),
        &["edge-1/zigbee2mqtt unhealthy_service(mqtt_unreachable) => create pending container-restart-edge-1-zigbee2mqtt"],
    );
    check(
        "no check of the dependency for a whole MISSING_GRACE: act",
        &s.clone().later(60),
        &["edge-1/zigbee2mqtt unhealthy_service(mqtt_unreachable) => create pending container-restart-edge-1-zigbee2mqtt"],
    );
    check(
        "a container that is not running is its own problem: no wait",
        &edge().unhealthy_checked("edge-1", "zigbee2mqtt", "containers_not_running", 1).service("edge-1", "mosquitto", ServiceStatus::Healthy, None, ago(5)),
        &["edge-1/zigbee2mqtt unhealthy_service(containers_not_running) => create pending container-restart-edge-1-zigbee2mqtt"],
    );
}

#[test]
fn a_healthy_fleet_starting_proposes_nothing() {
    let mut s = given().host("edge-1", EDGE).host("edge-2", EDGE).started(0);
    let mut created = 0;
    for (t, step) in [(0, "no agent yet"), (2, "heartbeats folded, no services"), (15, "half the services"), (30, "all services")] {
        s.now = now() + chrono::Duration::seconds(t);
        if t >= 2 {
            for n in ["edge-1", "edge-2"] {
                s.nodes.insert(
                    n.into(),
                    NodeState { last_seen: Some(s.now), status: NodeStatus::Up, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None },
                );
            }
        }
        if t >= 15 {
            s = s.service("edge-1", "web", ServiceStatus::Healthy, None, now() + chrono::Duration::seconds(t)).service(
                "edge-2",
                "mosquitto",
                ServiceStatus::Healthy,
                None,
                now(),
            );
        }
        if t >= 30 {
            for n in ["edge-1", "edge-2"] {
                for svc in ["mosquitto", "zigbee2mqtt", "web"] {
                    s = s.service(n, svc, ServiceStatus::Healthy, None, now() + chrono::Duration::seconds(t));
                }
            }
        }
        let p = s.plan();
        created += p.create.len();
        assert!(p.create.is_empty() && p.cancel.is_empty(), "{step}: {:#?}", lines(&p));
        s.memory = p.memory;
    }
    assert_eq!(created, 0);
}

#[test]
fn a_pending_action_follows_its_drift() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    let missing_redeploy = |s: Situation| s.pending(Redeploy, "edge-1", Some("web")).then_update_fields();
    check(
        "pending redeploy for missing_service; the service now reports http_check_failed: same type, fields updated",
        &missing_redeploy(edge().unhealthy("edge-1", "web", "http_check_failed")),
        &[
            "edge-1/web unhealthy_service(http_check_failed) => leave pending redeploy-edge-1-web",
            "update redeploy-edge-1-web unhealthy_service (http_check_failed)",
        ],
    );
    check(
        "pending redeploy for missing_service; now containers_not_running: a restart is right, the redeploy is replaced",
        &missing_redeploy(edge().unhealthy("edge-1", "web", "containers_not_running")),
        &[
            "edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web",
            "cancel redeploy-edge-1-web replaced: the drift is now unhealthy_service (containers_not_running), container-restart-edge-1-web is proposed instead",
        ],
    );
    let p = missing_redeploy(edge().unhealthy("edge-1", "web", "containers_not_running")).plan();
    assert_eq!(p.cancel[0].replaced_by.as_deref(), Some("container-restart-edge-1-web"));
    check(
        "pending restart; now http_check_failed: replaced by a redeploy",
        &edge().unhealthy("edge-1", "web", "http_check_failed").pending(Restart, "edge-1", Some("web")),
        &[
            "edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web",
            "cancel container-restart-edge-1-web replaced: the drift is now unhealthy_service (http_check_failed), redeploy-edge-1-web is proposed instead",
        ],
    );
    check(
        "pending redeploy escalated after a restart; trigger changes between restartable reasons: updated, not replaced",
        &edge().unhealthy_checked("edge-1", "web", "mqtt_unreachable", 30).ended(ActionState::Completed, "container-restart-edge-1-web", 5 * MIN).pending(
            Redeploy,
            "edge-1",
            Some("web"),
        ),
        &[
            "edge-1/web unhealthy_service(mqtt_unreachable) => leave pending redeploy-edge-1-web",
            "update redeploy-edge-1-web unhealthy_service (mqtt_unreachable)",
        ],
    );
    check(
        "an operator's retried redeploy is never replaced, only its fields follow",
        &edge().unhealthy("edge-1", "web", "containers_not_running").retried(Redeploy, "edge-1", Some("web"), 60).then_update_fields(),
        &[
            "edge-1/web unhealthy_service(containers_not_running) => leave pending redeploy-edge-1-web",
            "update redeploy-edge-1-web unhealthy_service (containers_not_running)",
        ],
    );
    let mut approved = edge().unhealthy("edge-1", "web", "http_check_failed").active(ActionState::Approved, Restart, "edge-1", Some("web"));
    approved.active[0].trigger = "containers_not_running".into();
    check("approved actions are never touched", &approved, &["edge-1/web unhealthy_service(http_check_failed) => leave approved container-restart-edge-1-web"]);
}

#[test]
fn exhaustion_holds_until_recovery_retry_or_hold() {
    let down = || given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy_checked("edge-1", "web", "containers_not_running", 30);
    let exhausted = down()
        .ended(ActionState::Completed, "container-restart-edge-1-web", 10 * MIN)
        .ended(ActionState::Completed, "redeploy-edge-1-web", 3 * MIN)
        .then_applied();
    assert!(exhausted.memory.exhausted.contains_key("edge-1/web"));
    // 20 minutes later both attempts left the escalation window; still down: still exhausted.
    let mut later = exhausted.clone().later(20 * MIN);
    later.outcomes.clear();
    check("20 min later, still down: exhausted (no new cycle)", &later, &["edge-1/web unhealthy_service(containers_not_running) => remediation_exhausted"]);
    let p = later.plan();
    let row = &p.drift_file(&later.policy, later.now).drifts[0];
    assert_eq!((row.decision, row.action_id.as_deref()), (NextStep::RemediationExhausted, Some("redeploy-edge-1-web")));
    assert_eq!(row.until, Some(now() + chrono::Duration::hours(6)));
    assert!(row.reason.contains("use Retry"), "{}", row.reason);
    // Survives a restart: it is in memory.
    let json = serde_json::to_string(&p.memory).unwrap();
    assert_eq!(serde_json::from_str::<SupervisorMemory>(&json).unwrap(), p.memory);
    check(
        "after EXHAUSTED_HOLD (6 h): a new cycle starts",
        &later.clone().later(6 * HOUR),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    // It recovers once: lifted.
    let recovered = later.clone().healthy("edge-1", "web").then_applied();
    assert!(recovered.memory.exhausted.is_empty());
    check(
        "recovered, then down again: a new cycle",
        &recovered.unhealthy("edge-1", "web", "containers_not_running"),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    // A node that goes silent says nothing about recovery.
    let silent = later.clone().node_seen("edge-1", 10 * MIN).then_applied();
    assert!(silent.memory.exhausted.contains_key("edge-1/web"));
}

#[test]
fn an_operator_retry_is_honoured_and_starts_escalation_over() {
    let down = || given().host("edge-1", EDGE).all_healthy("edge-1").unhealthy_checked("edge-1", "web", "containers_not_running", 30);
    let exhausted = down()
        .ended(ActionState::Completed, "container-restart-edge-1-web", 10 * MIN)
        .ended(ActionState::Completed, "redeploy-edge-1-web", 3 * MIN)
        .then_applied();
    // The operator proposes the redeploy again: not cancelled, memory of the target reset.
    let retried = exhausted.clone().retried(Redeploy, "edge-1", Some("web"), 0);
    check("retried while exhausted: left alone", &retried, &["edge-1/web unhealthy_service(containers_not_running) => leave pending redeploy-edge-1-web"]);
    let m = retried.plan().memory;
    assert!(m.exhausted.is_empty() && m.attempts.is_empty(), "{m:?}");
    assert_eq!(m.resets.get("container-restart-edge-1-web"), Some(&now()));
    // It runs and fails 2 min later; the old terminal files are still there but do not count:
    // escalation starts over (after settling): restart, then redeploy, then exhausted.
    let mut ran = retried.clone().then_applied();
    ran.active.clear();
    let ran = ran.later(2 * MIN).ended(ActionState::Failed, "redeploy-edge-1-web", -2 * MIN).unhealthy_checked(
        "edge-1",
        "web",
        "containers_not_running",
        -(2 * MIN) - 10,
    );
    check(
        "the retried redeploy failed: a restart is next (the old restart no longer counts)",
        &ran,
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    // Snoozed: a retry lifts the snooze for that id.
    let snoozed = down().ended(ActionState::Rejected, "container-restart-edge-1-web", HOUR).then_applied();
    check("rejected and snoozed", &snoozed, &["edge-1/web unhealthy_service(containers_not_running) => snoozed container-restart-edge-1-web"]);
    let retried = snoozed.retried(Restart, "edge-1", Some("web"), 0);
    check(
        "retried while snoozed: left alone",
        &retried,
        &["edge-1/web unhealthy_service(containers_not_running) => leave pending container-restart-edge-1-web"],
    );
    assert!(retried.plan().memory.rejections.is_empty());
    // A retried action whose drift resolves is cancelled like any other.
    check(
        "retried, then the service recovered: cancelled as resolved",
        &given().host("edge-1", EDGE).all_healthy("edge-1").retried(Redeploy, "edge-1", Some("web"), 0),
        &["cancel redeploy-edge-1-web drift_resolved_auto"],
    );
}

#[test]
fn flapping_is_damped() {
    let edge = || given().host("edge-1", EDGE).all_healthy("edge-1");
    // Down: proposed. Healthy 20 s later: cancelled as resolved (one notification and its
    // resolution). Down again 20 s later: flapping, must hold FLAP_HOLD (2 min).
    let down1 = edge().unhealthy("edge-1", "web", "containers_not_running").then_applied();
    assert_eq!(down1.active.len(), 1);
    let up = down1.later(20).healthy("edge-1", "web");
    check("recovered by itself", &up, &["cancel container-restart-edge-1-web drift_resolved_auto"]);
    let up = up.then_applied();
    assert!(up.memory.flapping.contains_key("edge-1/web"));
    let down2 = up.clone().later(20).service("edge-1", "web", ServiceStatus::Unhealthy, Some("containers_not_running"), now() + chrono::Duration::seconds(40));
    check("down again 20 s later: flapping", &down2, &[&format!("edge-1/web unhealthy_service(containers_not_running) => flapping until {}", hms(160))]);
    check(
        "still down 2 min later: it holds, proposed",
        &down2.clone().later(2 * MIN),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
    check(
        "healthy for FLAP_WINDOW (30 min), then down: proposed at once",
        &up.later(31 * MIN).service(
            "edge-1",
            "web",
            ServiceStatus::Unhealthy,
            Some("containers_not_running"),
            now() + chrono::Duration::minutes(31) + chrono::Duration::seconds(20),
        ),
        &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"],
    );
}

#[test]
fn drift_file_rows_say_what_happens_next() {
    let s = given()
        .host("edge-1", EDGE)
        .host("edge-2", EDGE)
        .all_healthy("edge-1")
        .unhealthy("edge-1", "mosquitto", "containers_not_running")
        .unhealthy("edge-1", "zigbee2mqtt", "http_check_failed")
        .started(10)
        .missing("edge-1", "web");
    let p = s.plan();
    let f = p.drift_file(&s.policy, now());
    assert_eq!(f.generated_at, now());
    let rows: Vec<(&str, Option<&str>, NextStep, Option<&str>)> =
        f.drifts.iter().map(|d| (d.node.as_str(), d.service.as_deref(), d.decision, d.action_id.as_deref())).collect();
    assert_eq!(
        rows,
        [
            ("edge-1", Some("mosquitto"), NextStep::ActionCreated, Some("container-restart-edge-1-mosquitto")),
            ("edge-1", Some("web"), NextStep::WaitingFreshWorld, None),
            ("edge-1", Some("zigbee2mqtt"), NextStep::RootCauseElsewhere, Some("container-restart-edge-1-mosquitto")),
            ("edge-2", None, NextStep::NodeUnreachable, None),
        ]
    );
    assert_eq!(f.drifts[0].since, Some(ago(5)), "unhealthy: the service's since");
    assert_eq!(f.drifts[1].since, Some(now()), "missing: when the supervisor first saw it");
    assert_eq!(f.drifts[1].until, Some(ago(10) + chrono::Duration::seconds(60)));
    assert_eq!(f.drifts[3].since, Some(now()), "never seen: when the supervisor first saw it unreachable");
    for d in &f.drifts {
        assert!(d.reason.ends_with('.') && !d.reason.contains('\n'), "{}", d.reason);
    }
    assert!(f.drifts[2].reason.contains("depends on mosquitto"), "{}", f.drifts[2].reason);
    // The missing service keeps the time it was first seen missing across reconciles.
    let again = s.clone().then_applied().later(30);
    let f2 = again.plan().drift_file(&again.policy, again.now);
    assert_eq!(f2.drifts[1].since, Some(now()));
    // A stale node: since is its last_seen.
    let stale = given().host("edge-1", EDGE).all_healthy("edge-1").node_seen("edge-1", 5 * MIN);
    assert_eq!(stale.plan().drift_file(&stale.policy, now()).drifts[0].since, Some(ago(5 * MIN)));
    // No drift: an empty list.
    let calm = given().host("edge-1", EDGE).all_healthy("edge-1");
    assert!(calm.plan().drift_file(&calm.policy, now()).drifts.is_empty());
}

#[test]
fn silences_table() {
    let base = || given().host("edge-1", EDGE).all_healthy("edge-1");
    let end = hms_at(now() + chrono::Duration::hours(1));
    let cases: Vec<(&str, Situation, Vec<String>)> = vec![
        (
            "a muted service: silenced, nothing proposed",
            base().unhealthy("edge-1", "web", "containers_not_running").silenced("edge-1/web", None, HOUR),
            vec![format!("edge-1/web unhealthy_service(containers_not_running) => silenced s-0 until {end}")],
        ),
        (
            "a muted node: its services and the node itself",
            base().unhealthy("edge-1", "web", "http_check_failed").disk("edge-1", DiskLevel::High).silenced("edge-1", None, HOUR),
            vec![
                format!("edge-1/web unhealthy_service(http_check_failed) => silenced s-0 until {end}"),
                format!("edge-1 disk_pressure(high) => silenced s-0 until {end}"),
            ],
        ),
        (
            "a muted node that stopped reporting",
            given().host("edge-1", EDGE).node_seen("edge-1", 10 * MIN).silenced("edge-1", None, HOUR),
            vec![format!("edge-1 node_unreachable(stale) => silenced s-0 until {end}")],
        ),
        (
            "another service on the node is not muted",
            base().unhealthy("edge-1", "mosquitto", "containers_not_running").silenced("edge-1/web", None, HOUR),
            vec!["edge-1/mosquitto unhealthy_service(containers_not_running) => create pending container-restart-edge-1-mosquitto".into()],
        ),
        (
            "an action type muted: the restart is not proposed",
            base().unhealthy("edge-1", "web", "containers_not_running").silenced("", Some(Restart), HOUR),
            vec![format!("edge-1/web unhealthy_service(containers_not_running) => silenced s-0 until {end}")],
        ),
        (
            "an action type muted: other types are proposed",
            base().unhealthy("edge-1", "web", "http_check_failed").silenced("", Some(Restart), HOUR),
            vec!["edge-1/web unhealthy_service(http_check_failed) => create pending redeploy-edge-1-web".into()],
        ),
        (
            "a pending proposal of a muted target is withdrawn",
            base().unhealthy("edge-1", "web", "containers_not_running").pending(Restart, "edge-1", Some("web")).silenced("edge-1/web", None, HOUR),
            vec![
                format!("edge-1/web unhealthy_service(containers_not_running) => silenced s-0 until {end}"),
                format!(
                    "cancel container-restart-edge-1-web silenced: edge-1/web muted by ui:alice until {} (maintenance), silence s-0",
                    crate::rfc3339(now() + chrono::Duration::hours(1))
                ),
            ],
        ),
        (
            "a pending proposal of a muted type is withdrawn",
            base().unhealthy("edge-1", "web", "containers_not_running").pending(Restart, "edge-1", Some("web")).silenced("", Some(Restart), HOUR),
            vec![
                format!("edge-1/web unhealthy_service(containers_not_running) => silenced s-0 until {end}"),
                format!(
                    "cancel container-restart-edge-1-web silenced: container_restart muted by ui:alice until {} (maintenance), silence s-0",
                    crate::rfc3339(now() + chrono::Duration::hours(1))
                ),
            ],
        ),
        (
            "an approved action is never withdrawn; the row says silenced",
            base().unhealthy("edge-1", "web", "containers_not_running").active(ActionState::Approved, Restart, "edge-1", Some("web")).silenced(
                "edge-1/web",
                None,
                HOUR,
            ),
            vec![format!("edge-1/web unhealthy_service(containers_not_running) => silenced s-0 until {end}")],
        ),
        (
            "an expired silence ends by itself",
            base().unhealthy("edge-1", "web", "containers_not_running").silenced("edge-1/web", None, -1),
            vec!["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web".into()],
        ),
    ];
    for (what, s, want) in cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check(what, &s, &want);
    }
}

fn hms_at(t: Timestamp) -> String {
    t.format("%H:%M:%S").to_string()
}

/// A service that changes state more than FLAP_CHANGES times within FLAP_CHANGES_WINDOW is
/// flapping: one row all along (also while healthy), no action, until stable for FLAP_STABLE.
#[test]
fn flapping_by_count() {
    let mut s = given().host("edge-1", EDGE).all_healthy("edge-1");
    s.now = ago(20 * MIN);
    let mut rows = Vec::new();
    // Every 30 s it fails or recovers (20 changes in 10 min), then it stays healthy.
    for i in 0..20 {
        s.now = ago(20 * MIN - i * 30);
        let unhealthy = i % 2 == 0;
        let status = if unhealthy { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy };
        let reason = unhealthy.then_some("http_check_failed");
        let t = s.now;
        s = s.service("edge-1", "web", status, reason, t).node_seen("edge-1", 0);
        s.nodes.get_mut("edge-1").unwrap().last_seen = Some(s.now);
        let p = s.plan();
        rows.push(p.drift_file(&s.policy, s.now).drifts.iter().map(|d| d.decision.as_str()).collect::<Vec<_>>().join(","));
        s = s.then_applied();
    }
    // The 6th change marks it flapping; from then on there is a row whether it is up or down.
    // Before: a row only while down (the first proposal, then the older damping); the healthy
    // moments have none, so each return would be a new incident.
    assert_eq!(rows[..4], ["action_created", "", "flapping", ""], "{rows:?}");
    assert!(rows[5..].iter().all(|r| r == "flapping"), "{rows:?}");
    let last_change = s.now;
    // Healthy and stable: still flapping until last change + FLAP_STABLE, then gone.
    s.now = last_change + chrono::Duration::minutes(9);
    s.nodes.get_mut("edge-1").unwrap().last_seen = Some(s.now);
    let p = s.plan();
    let f = p.drift_file(&s.policy, s.now);
    assert_eq!(f.drifts.len(), 1, "{f:?}");
    assert_eq!((f.drifts[0].decision, f.drifts[0].until), (crate::drift::NextStep::Flapping, Some(last_change + chrono::Duration::minutes(10))));
    assert!(f.drifts[0].reason.contains("flapping"), "{}", f.drifts[0].reason);
    s = s.then_applied();
    s.now = last_change + chrono::Duration::minutes(10);
    s.nodes.get_mut("edge-1").unwrap().last_seen = Some(s.now);
    let p = s.plan();
    assert!(p.drifts.is_empty(), "{:?}", p.drifts);
    assert!(p.memory.flap_track.is_empty(), "{:?}", p.memory.flap_track);
    // Only actions proposed before it was marked: none while flapping.
    assert!(p.create.is_empty());
}

#[test]
fn flapping_while_down_proposes_nothing_then_acts_once_stable() {
    let mut s = given().host("edge-1", EDGE).all_healthy("edge-1");
    // 6 recorded changes, the last one 2 min ago: it is down now.
    let mut t = FlapTrack { in_drift: true, drift: Some(DriftKind::UnhealthyService), trigger: Some("containers_not_running".into()), ..Default::default() };
    t.changes = (0..6).map(|i| ago(7 * MIN - i * MIN)).collect();
    t.flapping_until = Some(ago(2 * MIN) + chrono::Duration::minutes(10));
    s.memory.flap_track.insert("edge-1/web".into(), t);
    s = s.service("edge-1", "web", ServiceStatus::Unhealthy, Some("containers_not_running"), ago(2 * MIN));
    check("flapping and down", &s, &[&format!("edge-1/web unhealthy_service(containers_not_running) => flapping (6 changes) until {}", hms(8 * MIN))]);
    // Down without a change for FLAP_STABLE: an action at last.
    s.now = now() + chrono::Duration::minutes(8);
    s.nodes.get_mut("edge-1").unwrap().last_seen = Some(s.now);
    check("stable (down) for 10 min", &s, &["edge-1/web unhealthy_service(containers_not_running) => create pending container-restart-edge-1-web"]);
}

/// A service whose health comes from alerts is silent while all is well: never "missing".
#[test]
fn alert_checked_services_are_not_missing_while_quiet() {
    const ALERTS: &str = "services:\n  web:\n    checks:\n      - alert: { alertname: WebDown }\n  db: {}\n";
    let quiet = || given().host("edge-1", ALERTS).all_healthy("edge-1").missing("edge-1", "web");
    check("no alert has fired yet", &quiet(), &[]);
    check(
        "the alert fired",
        &quiet().unhealthy("edge-1", "web", "service_unhealthy"),
        &["edge-1/web unhealthy_service(service_unhealthy) => create pending redeploy-edge-1-web"],
    );
    check(
        "a service with local checks that never reported is still missing",
        &given().host("edge-1", ALERTS).all_healthy("edge-1").missing("edge-1", "db"),
        &["edge-1/db missing_service(missing) => create pending redeploy-edge-1-db"],
    );
}
