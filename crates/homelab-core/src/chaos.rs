//! Chaos scenarios on a simulated clock: scripted fleets (agents that start late, hosts that
//! go down, a database that takes its dependents with it, a container crash-looping or
//! flapping for an hour) run through the real, pure [`crate::plan::plan`], with a simulated
//! observer, operator and executor around it. Each scenario asserts how many actions were
//! proposed (= notifications an operator gets). Pure and fast: `cargo test -p homelab-core
//! chaos`, or the table printed by `cargo run -p control-plane-supervisor --example chaos`
//! (which `scripts/chaos.sh` runs).
//!
//! The simulation is deliberately unkind: an agent pass writes the node's heartbeat first and
//! then one event per service, and the supervisor reconciles after every single event (so it
//! sees every half-folded world), and on a 5 s tick.

use std::collections::{BTreeMap, BTreeSet};

use crate::Timestamp;
use crate::action::{Action, ActionState};
use crate::desired::{DesiredState, parse_host_file};
use crate::plan::{Outcome, PlanInput, Policy, SupervisorMemory, plan};
use crate::world::{NodeState, NodeStatus, ServiceState, ServiceStatus};

/// What the fleet looks like at a moment: the truth the agents report.
pub struct Truth<'a> {
    /// Actions that completed so far, with when (seconds since the start).
    pub completed: &'a [(String, i64)],
}

impl Truth<'_> {
    /// True when action `id` completed at or before `t`.
    pub fn done(&self, id: &str, t: i64) -> bool {
        self.completed.iter().any(|(i, at)| i == id && *at <= t)
    }
}

/// `Some(None)` healthy, `Some(Some(reason))` unhealthy, `None` not reported (not running).
pub type Health = Option<Option<&'static str>>;

/// Does a node's agent report at second `t`?
pub type AliveFn = Box<dyn Fn(&str, i64) -> bool>;

/// The truth about `(node, service)` at second `t`.
pub type HealthFn = Box<dyn Fn(&Truth<'_>, &str, &str, i64) -> Health>;

/// One scripted fleet.
pub struct Scenario {
    pub name: &'static str,
    /// What it stands for, for the table.
    pub about: &'static str,
    /// `(node, services.yaml)`.
    pub hosts: Vec<(String, String)>,
    pub duration_secs: i64,
    /// Agent pass interval (`CHECK_INTERVAL`).
    pub check_every: i64,
    /// Does the node's agent report at second `t`?
    pub alive: AliveFn,
    /// The truth about a service at second `t`.
    pub health: HealthFn,
    /// Changes are also reported at once (Docker events), not only by passes.
    pub events_on_change: bool,
    /// The supervisor (and its process start) restarts at these seconds; memory is kept.
    pub restarts: Vec<i64>,
    /// An operator approves a pending action this long after it appeared (`None`: never).
    pub approve_after: Option<i64>,
    pub policy: Policy,
    /// Expected actions proposed (each one is a notification).
    pub expect_created: usize,
    /// Expected incident messages on each other channel (webhook, ntfy, e-mail: each gets
    /// every message of [`crate::notify::step`]).
    pub expect_messages: usize,
}

/// What a scenario did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Actions proposed (each a notification: Telegram message, UI badge).
    pub created: usize,
    /// Pending actions withdrawn by the supervisor (each a follow-up to a notification).
    pub cancelled: usize,
    /// Actions the executor ran to the end.
    pub executed: usize,
    /// The ids proposed, in order.
    pub ids: Vec<String>,
    /// The largest number of drift rows seen at once, and of per-service rows on a node that
    /// was unreachable (must stay 0).
    pub max_rows: usize,
    pub service_rows_while_unreachable: usize,
    /// Decisions seen (as `world/drift.json` names them), for the record.
    pub decisions: BTreeSet<&'static str>,
    /// Incident messages (started, flapping, resolved, digests) per other channel.
    pub messages: usize,
    /// Their notices, `<kind> <incident>`, in order.
    pub notices: Vec<String>,
}

impl Outcomes {
    pub fn pass(&self, s: &Scenario) -> bool {
        self.created == s.expect_created && self.messages == s.expect_messages && self.service_rows_while_unreachable == 0
    }
}

impl Scenario {
    /// `name` on `hosts` for `duration_secs`, as most scenarios run it: agents alive and
    /// checking every 30 s, every service healthy, no restart, an operator approving after a
    /// minute, the default policy, nothing expected. A scenario changes what differs.
    fn new(name: &'static str, about: &'static str, hosts: Vec<(String, String)>, duration_secs: i64) -> Scenario {
        Scenario {
            name,
            about,
            hosts,
            duration_secs,
            check_every: 30,
            alive: Box::new(|_, _| true),
            health: Box::new(|_, _, _, _| HEALTHY),
            events_on_change: false,
            restarts: vec![],
            approve_after: Some(60),
            policy: Policy::default(),
            expect_created: 0,
            expect_messages: 0,
        }
    }
}

fn t0() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc)
}

struct Sim<'s> {
    s: &'s Scenario,
    desired: DesiredState,
    services: BTreeMap<String, BTreeMap<String, ServiceState>>,
    nodes: BTreeMap<String, NodeState>,
    active: Vec<Action>,
    outcomes: Vec<Outcome>,
    memory: SupervisorMemory,
    started_at: Timestamp,
    completed: Vec<(String, i64)>,
    out: Outcomes,
    notify: crate::notify::NotifyState,
}

impl Sim<'_> {
    fn reconcile(&mut self, now: Timestamp) {
        for n in self.nodes.values_mut() {
            let age = now.signed_duration_since(n.last_seen.unwrap_or(now)).num_seconds();
            n.status = if age as u64 > self.s.policy.node_stale_after.as_secs() { NodeStatus::Stale } else { NodeStatus::Up };
        }
        let p = plan(PlanInput {
            desired: &self.desired,
            unknown_nodes: &BTreeSet::new(),
            services: &self.services,
            nodes: &self.nodes,
            active: &self.active,
            outcomes: &self.outcomes,
            memory: &self.memory,
            policy: &self.s.policy,
            started_at: self.started_at,
            now,
        });
        let file = p.drift_file(&self.s.policy, now);
        self.out.max_rows = self.out.max_rows.max(file.drifts.len());
        let unreachable: BTreeSet<&str> = file.drifts.iter().filter(|d| d.kind == crate::plan::DriftKind::NodeUnreachable).map(|d| d.node.as_str()).collect();
        self.out.service_rows_while_unreachable += file.drifts.iter().filter(|d| d.service.is_some() && unreachable.contains(d.node.as_str())).count();
        self.out.decisions.extend(file.drifts.iter().map(|d| d.decision.as_str()));
        for m in crate::notify::step(&mut self.notify, &file, &crate::notify::NotifyPolicy::default(), now) {
            self.out.messages += 1;
            self.out.notices.extend(m.notices.iter().map(|n| format!("{} {}", n.kind.as_str(), n.incident)));
        }
        let mut skip = BTreeSet::new();
        for c in &p.cancel {
            match self.active.iter().position(|a| a.id == c.id && a.state == ActionState::Pending) {
                Some(i) => {
                    self.active.remove(i);
                    self.outcomes.push(Outcome { id: c.id.clone(), state: ActionState::Cancelled, ended: now });
                    self.out.cancelled += 1;
                }
                None => skip.extend(c.replaced_by.clone()),
            }
        }
        for u in &p.update {
            if let Some(a) = self.active.iter_mut().find(|a| a.id == u.id && a.state == ActionState::Pending) {
                a.drift = u.drift.clone();
                a.trigger = u.trigger.clone();
            }
        }
        for a in p.create {
            if skip.contains(&a.id) || self.active.iter().any(|x| x.id == a.id) {
                continue;
            }
            self.out.created += 1;
            self.out.ids.push(a.id.clone());
            self.active.push(a);
        }
        self.memory = p.memory;
    }

    /// The operator and the executor: approve after a while, run for 10 s, complete.
    fn people_and_executor(&mut self, t: i64, now: Timestamp) {
        let mut done = Vec::new();
        for a in &mut self.active {
            let age = now.signed_duration_since(a.updated_at).num_seconds();
            match a.state {
                ActionState::Pending if self.s.approve_after.is_some_and(|after| age >= after) => {
                    a.state = ActionState::Approved;
                    a.updated_at = now;
                }
                ActionState::Approved if age >= 1 => {
                    a.state = ActionState::Running;
                    a.updated_at = now;
                }
                ActionState::Running if age >= 10 => done.push(a.id.clone()),
                _ => {}
            }
        }
        for id in done {
            self.active.retain(|a| a.id != id);
            self.outcomes.push(Outcome { id: id.clone(), state: ActionState::Completed, ended: now });
            self.completed.push((id, t));
            self.out.executed += 1;
        }
    }

    /// One service event: what the agent says about it now.
    fn report(&mut self, node: &str, service: &str, health: Health, now: Timestamp) -> bool {
        let Some(reason) = health else { return false };
        let status = if reason.is_some() { ServiceStatus::Unhealthy } else { ServiceStatus::Healthy };
        let states = self.services.entry(node.to_owned()).or_default();
        let prev = states.get(service);
        let changed = prev.is_none_or(|p| p.status != status || p.reason.as_deref() != reason);
        let since = if changed { now } else { prev.map_or(now, |p| p.since) };
        let failures = if status == ServiceStatus::Unhealthy { prev.map_or(0, |p| p.consecutive_failures) + 1 } else { 0 };
        states.insert(
            service.to_owned(),
            ServiceState {
                status,
                reason: reason.map(str::to_owned),
                detail: None,
                since,
                last_event_at: now,
                last_event_id: uuid::Uuid::nil(),
                consecutive_failures: failures,
            },
        );
        changed
    }

    fn heartbeat(&mut self, node: &str, now: Timestamp) {
        self.nodes.insert(
            node.to_owned(),
            NodeState { last_seen: Some(now), status: NodeStatus::Up, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None },
        );
    }
}

/// Runs one scenario to its end.
pub fn run(s: &Scenario) -> Outcomes {
    let mut desired = DesiredState::default();
    for (node, yaml) in &s.hosts {
        desired.hosts.insert(node.clone(), parse_host_file("chaos", node, yaml).expect("scenario host file").spec);
    }
    let mut sim = Sim {
        s,
        desired,
        services: BTreeMap::new(),
        nodes: BTreeMap::new(),
        active: Vec::new(),
        outcomes: Vec::new(),
        memory: SupervisorMemory::default(),
        started_at: t0(),
        completed: Vec::new(),
        out: Outcomes::default(),
        notify: crate::notify::NotifyState { epoch: "chaos".into(), ..Default::default() },
    };
    let names: Vec<(String, Vec<String>)> = sim.desired.hosts.iter().map(|(n, h)| (n.clone(), h.services.keys().cloned().collect())).collect();
    for t in 0..=s.duration_secs {
        let second = t0() + chrono::Duration::seconds(t);
        if s.restarts.contains(&t) {
            sim.started_at = second;
        }
        sim.people_and_executor(t, second);
        let mut ms = 0;
        for (i, (node, services)) in names.iter().enumerate() {
            if !(s.alive)(node, t) {
                continue;
            }
            // Passes are staggered per node; heartbeat first, then each service's event.
            let pass = (t - i as i64).rem_euclid(s.check_every) == 0;
            let completed = sim.completed.clone();
            let truth = Truth { completed: &completed };
            if pass {
                ms += 1;
                sim.heartbeat(node, second + chrono::Duration::milliseconds(ms));
                sim.reconcile(second + chrono::Duration::milliseconds(ms));
            }
            for svc in services {
                let health = (s.health)(&truth, node, svc, t);
                let now = second + chrono::Duration::milliseconds(ms + 1);
                let differs = health.is_some_and(|h| {
                    let cur = sim.services.get(node).and_then(|m| m.get(svc));
                    cur.is_none_or(|c| (c.status == ServiceStatus::Unhealthy) != h.is_some() || c.reason.as_deref() != h)
                });
                if pass || (s.events_on_change && differs) {
                    ms += 1;
                    if sim.report(node, svc, health, now) || pass {
                        sim.reconcile(now);
                    }
                }
            }
        }
        if t % 5 == 0 {
            sim.reconcile(second + chrono::Duration::milliseconds(ms + 1));
        }
    }
    sim.out
}

fn host(services: &[(&str, &[&str])]) -> String {
    let mut y = String::from("services:\n");
    for (name, deps) in services {
        if deps.is_empty() {
            y.push_str(&format!("  {name}: {{}}\n"));
        } else {
            y.push_str(&format!("  {name}:\n    depends_on: [{}]\n", deps.join(", ")));
        }
    }
    y
}

/// `fleet` with one more service on its first node whose only check is an alert.
fn with_alert_only(fleet: &[(String, String)], service: &str) -> Vec<(String, String)> {
    let mut out = fleet.to_vec();
    if let Some((_, yaml)) = out.first_mut() {
        yaml.push_str(&format!("  {service}:\n    checks:\n      - alert: {{ alertname: ProbeFailed }}\n"));
    }
    out
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn flat(names: &[String]) -> String {
    host(&names.iter().map(|n| (n.as_str(), &[][..])).collect::<Vec<_>>())
}

const HOUR: i64 = 3600;
const HEALTHY: Health = Some(None);

/// The scenarios of issue 13, with their expected counts.
pub fn scenarios() -> Vec<Scenario> {
    let five = numbered("svc", 5);
    let fleet: Vec<(String, String)> = (1..=4).map(|i| (format!("node{i}"), flat(&five))).collect();
    let twenty = numbered("svc", 20);
    let mut db = vec![("db", &[][..])];
    let deps = numbered("app", 8);
    let db_dep: &[&str] = &["db"];
    db.extend(deps.iter().map(|d| (d.as_str(), db_dep)));
    vec![
        Scenario {
            alive: Box::new(|_, t| t >= 5 * 60),
            ..Scenario::new("agents-silent-at-start", "4 nodes x 5 services in hosts/, agents start 5 min after the control plane", fleet.clone(), 15 * 60)
        },
        Scenario {
            // An alert-only service reports only when Alertmanager sends an alert.
            health: Box::new(|_, _, service, _| if service == "probe" { None } else { HEALTHY }),
            restarts: vec![30 * 60],
            ..Scenario::new(
                "healthy-fleet-starting",
                "20 healthy services start with the control plane (heartbeat folded first), control plane restarted at 30 min; \
                    one more is alert-only and no alert ever fires, so it never reports: never missing either",
                with_alert_only(&fleet, "probe"),
                HOUR,
            )
        },
        Scenario {
            alive: Box::new(|_, t| !(10 * 60..30 * 60).contains(&t)),
            expect_messages: 2,
            ..Scenario::new(
                "host-down-20-services",
                "a node with 20 services goes silent for 20 min, then comes back",
                vec![("big".into(), flat(&twenty))],
                HOUR,
            )
        },
        Scenario {
            health: Box::new(|truth, _, svc, t| {
                let down = t >= 5 * 60 && !truth.done("redeploy-n1-db", t);
                match (down, svc) {
                    (false, _) => HEALTHY,
                    (true, "db") => Some(Some("exec_check_failed")),
                    (true, _) => Some(Some("http_check_failed")),
                }
            }),
            expect_created: 1,
            expect_messages: 2,
            ..Scenario::new(
                "database-down-8-dependents",
                "db fails at 5 min and its 8 dependents with it; a redeploy of db fixes all",
                vec![("n1".into(), host(&db))],
                HOUR,
            )
        },
        Scenario {
            health: Box::new(|_, _, svc, t| if svc == "web" && t >= 2 * 60 { Some(Some("containers_not_running")) } else { HEALTHY }),
            events_on_change: true,
            expect_created: 2,
            expect_messages: 1,
            ..Scenario::new(
                "crash-loop-1h",
                "a container crash-loops for an hour; the operator approves everything; nothing helps",
                vec![("n1".into(), flat(&["web".to_owned(), "db".to_owned()]))],
                HOUR,
            )
        },
        Scenario {
            health: Box::new(|_, _, svc, t| if svc == "web" && t >= 60 && (t / 20) % 2 == 1 { Some(Some("containers_not_running")) } else { HEALTHY }),
            events_on_change: true,
            approve_after: None,
            expect_created: 1,
            expect_messages: 2,
            ..Scenario::new(
                "flapping-20s-1h",
                "a service fails and recovers every 20 s for an hour (Docker events), nobody approves",
                vec![("n1".into(), flat(&["web".to_owned(), "db".to_owned()]))],
                HOUR,
            )
        },
    ]
}

/// Runs every scenario and formats the table: scenario, actions proposed (= notifications),
/// withdrawn, executed, expected, pass.
pub fn table() -> (String, bool) {
    let mut out = format!(
        "{:<28} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}  {}\n",
        "scenario", "actions", "withdrawn", "executed", "telegram", "webhook", "ntfy", "email", "expected", "pass"
    );
    let mut all = true;
    for s in scenarios() {
        let o = run(&s);
        let pass = o.pass(&s);
        all &= pass;
        out.push_str(&format!(
            "{:<28} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}  {}   {}\n",
            s.name,
            o.created,
            o.cancelled,
            o.executed,
            o.created,
            o.messages,
            o.messages,
            o.messages,
            format!("{}/{}", s.expect_created, s.expect_messages),
            if pass { "pass" } else { "FAIL" },
            o.ids.join(" ")
        ));
    }
    (out, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_scenarios_meet_their_expected_counts() {
        let mut failures = Vec::new();
        for s in scenarios() {
            let o = run(&s);
            if !o.pass(&s) {
                failures.push(format!("{}: {o:?}", s.name));
            }
        }
        assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), table().0);
    }

    #[test]
    fn chaos_crash_loop_escalates_then_stops() {
        let s = scenarios().into_iter().find(|s| s.name == "crash-loop-1h").unwrap();
        let o = run(&s);
        assert_eq!(o.ids, ["container-restart-n1-web", "redeploy-n1-web"]);
        assert_eq!(o.executed, 2);
        assert!(o.decisions.contains("remediation_exhausted"), "{o:?}");
    }

    #[test]
    fn chaos_database_gets_the_only_action() {
        let s = scenarios().into_iter().find(|s| s.name == "database-down-8-dependents").unwrap();
        let o = run(&s);
        assert_eq!((o.ids.as_slice(), o.cancelled, o.executed), (&["redeploy-n1-db".to_owned()][..], 0, 1));
        assert!(o.decisions.contains("root_cause_elsewhere"));
    }

    #[test]
    fn chaos_host_down_is_one_row() {
        let s = scenarios().into_iter().find(|s| s.name == "host-down-20-services").unwrap();
        let o = run(&s);
        assert!(o.decisions.contains("node_unreachable"));
        assert_eq!(o.service_rows_while_unreachable, 0);
    }

    #[test]
    fn chaos_flapping_is_one_incident() {
        let s = scenarios().into_iter().find(|s| s.name == "flapping-20s-1h").unwrap();
        let o = run(&s);
        assert_eq!((o.created, o.cancelled), (1, 1), "{o:?}");
        assert!(o.decisions.contains("flapping"));
        // Per other channel: the start and one flapping message, nothing per flap.
        assert_eq!(o.notices, ["started n1/web", "flapping n1/web"]);
    }

    #[test]
    fn chaos_crash_loop_and_host_down_notify_once_each_way() {
        let by_name = |n: &str| run(&scenarios().into_iter().find(|s| s.name == n).unwrap());
        assert_eq!(by_name("crash-loop-1h").notices, ["started n1/web"]);
        assert_eq!(by_name("host-down-20-services").notices, ["started node:big", "resolved node:big"]);
        assert_eq!(by_name("database-down-8-dependents").notices, ["started n1/db", "resolved n1/db"]);
    }
}
