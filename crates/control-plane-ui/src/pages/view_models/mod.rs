//! What the templates render, built from the snapshot so the handlers only gather and answer:
//! one module per page with its template struct (`dashboard`, `action` for the list and one
//! action, `events`, `node`, `silences`, `audit`, `login`), and here the rows several pages list
//! (services, drift, node cards, action rows, timeline lines). Times, pills and words come from
//! `crate::view`; the templates' macros (templates/macros.html) turn them into HTML.

use homelab_core::desired::DesiredState;
use homelab_core::{ActionState, ServiceStatus, Timestamp};

use crate::history::History;
use crate::snapshot::{ActionLogEntry, ActionSummary, Drift, Summary};
use crate::view::{self, BarView, Pill, When};

mod action;
mod audit;
mod dashboard;
mod events;
mod login;
mod node;
mod silences;

pub(super) use action::{ActionT, ActionsT, EvidenceRow, HistoryRow, executor_note, plan_view};
pub(super) use audit::{AuditRow, AuditT};
pub(super) use dashboard::{DASHBOARD_SERVICES, DashboardT, PendingCard, daemon_rows, dashboard_timeline, headline, quarantine_rows};
pub(super) use events::{EventsT, event_rows};
pub(super) use login::{LoginT, OidcDoneT};
pub(super) use node::{DeploysView, NodeT};
pub(super) use silences::{SilenceForm, SilenceRow, SilencesT};

/// One service as the pages list it: from world state, or desired in hosts/ and never reported.
pub(in crate::pages) struct ServiceRow {
    pub(in crate::pages) node: String,
    pub(in crate::pages) name: String,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) unhealthy: bool,
    pub(in crate::pages) reason: String,
    pub(in crate::pages) since: When,
    pub(in crate::pages) failures: u32,
    pub(in crate::pages) desired: bool,
    pub(in crate::pages) bar: BarView,
    /// "until 15:03 UTC (ends in 58 min)" while a silence mutes it; filled on the node page.
    pub(in crate::pages) muted: Option<When>,
}

/// Unhealthy first, then never reported, then healthy.
pub(in crate::pages) fn service_rows(s: &Summary, desired: Option<&DesiredState>, h: &History, only_node: Option<&str>, now: Timestamp) -> Vec<ServiceRow> {
    let mut rows: Vec<(u8, ServiceRow)> = Vec::new();
    for (node, svcs) in s.services.iter().filter(|(n, _)| only_node.is_none_or(|o| o == n.as_str())) {
        for (name, sv) in svcs {
            let unhealthy = sv.status == ServiceStatus::Unhealthy;
            rows.push((
                if unhealthy { 0 } else { 2 },
                ServiceRow {
                    node: node.clone(),
                    name: name.clone(),
                    pill: if unhealthy { view::pill("bad", "unhealthy") } else { view::pill("ok", "healthy") },
                    unhealthy,
                    reason: [sv.reason.clone().unwrap_or_default(), sv.detail.clone().unwrap_or_default()]
                        .into_iter()
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                        .join(": "),
                    since: view::time_text(&sv.since, now),
                    failures: sv.consecutive_failures,
                    desired: sv.desired,
                    bar: view::bar_view(h.bars(node, name, now)),
                    muted: None,
                },
            ));
        }
    }
    if let Some(d) = desired {
        for (node, spec) in d.hosts.iter().filter(|(n, _)| only_node.is_none_or(|o| o == n.as_str())) {
            for (name, _) in spec.monitored() {
                if s.services.get(node).is_some_and(|m| m.contains_key(name)) {
                    continue;
                }
                rows.push((
                    1,
                    ServiceRow {
                        node: node.clone(),
                        name: name.clone(),
                        pill: view::pill("none", "not reported"),
                        unhealthy: false,
                        reason: "desired in hosts/, no event yet".into(),
                        since: When::default(),
                        failures: 0,
                        desired: true,
                        bar: view::bar_view(h.bars(node, name, now)),
                        muted: None,
                    },
                ));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.node.cmp(&b.1.node)).then_with(|| a.1.name.cmp(&b.1.name)));
    rows.into_iter().map(|(_, r)| r).collect()
}

pub(in crate::pages) fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// One drift row as the pages show it: the file's fields plus what happens next in words.
pub(in crate::pages) struct DriftRow<'a> {
    pub(in crate::pages) d: &'a Drift,
    /// `remediation exhausted` for `remediation_exhausted`.
    pub(in crate::pages) decision_label: String,
    /// The headline of "what happens next".
    pub(in crate::pages) next: DriftNext,
    pub(in crate::pages) since: Option<When>,
    pub(in crate::pages) until_rel: String,
    pub(in crate::pages) until: Option<When>,
    pub(in crate::pages) retryable: bool,
}

/// "What happens next" after the decision of a drift row (drift_table.html words it).
pub(in crate::pages) enum DriftNext {
    /// The action about it (a link) and where it stands.
    Action {
        id: String,
        state: &'static str,
    },
    /// Caused by another target, where the fix goes (and its action, if any).
    RootCause {
        rc: String,
        id: Option<String>,
    },
    /// Muted by a silence (a link to the silences).
    Silenced,
    Words(String),
}

pub(in crate::pages) fn drift_rows<'a>(drift: impl Iterator<Item = &'a Drift>, s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<DriftRow<'a>> {
    let state_of = |id: &str| {
        let a = &s.actions;
        if a.pending.iter().any(|x| x.id == id) {
            Some("waiting for your approval")
        } else if a.approved.iter().any(|x| x.id == id) {
            Some("approved, waiting for the executor")
        } else if a.running.iter().any(|x| x.id == id) {
            Some("running now")
        } else {
            None
        }
    };
    drift
        .map(|d| {
            let until = d.until.as_deref().and_then(parse_time);
            let action = |id: &str| DriftNext::Action { id: id.to_owned(), state: state_of(id).unwrap_or("proposed") };
            let next = match (d.decision.as_str(), d.action_id.as_deref()) {
                ("action_created" | "already_active", Some(id)) => action(id),
                ("root_cause_elsewhere", _) => match &d.root_cause {
                    Some(rc) => DriftNext::RootCause { rc: rc.clone(), id: d.action_id.clone() },
                    None => DriftNext::Words("caused by a dependency".into()),
                },
                ("remediation_exhausted", _) => DriftNext::Words("restart and redeploy did not help: nothing more is proposed".into()),
                ("rejected_snoozed", _) => DriftNext::Words("rejected: not proposed again".into()),
                ("waiting_grace" | "waiting_fresh_world", _) => DriftNext::Words("waiting before proposing anything".into()),
                ("settling", _) => DriftNext::Words("an action just ended: waiting for it to settle".into()),
                ("flapping", _) => DriftNext::Words("flapping: waiting for it to hold".into()),
                ("node_unreachable", _) => DriftNext::Words("the node is not reporting: no action until it does".into()),
                ("silenced", _) => DriftNext::Silenced,
                (other, _) => DriftNext::Words(other.replace('_', " ")),
            };
            DriftRow {
                d,
                decision_label: d.decision.replace('_', " "),
                next,
                since: d.since.as_deref().map(|t| view::time_text(t, now)),
                until_rel: until.map(|t| homelab_core::words::until(t, now)).unwrap_or_default(),
                until: until.map(|t| view::until(t, now)),
                retryable: d.retryable(),
            }
        })
        .collect()
}

/// Where the drift section's rows come from, as drift_table.html says it.
pub(in crate::pages) struct DriftStatus<'a> {
    /// `reported`, … (the summary's `drift_report.state`).
    pub(in crate::pages) state: &'a str,
    /// The note on where the rows come from ("" when from a current report).
    pub(in crate::pages) note: String,
    /// "12 s ago" for the drift report shown.
    pub(in crate::pages) at: Option<When>,
}

impl<'a> DriftStatus<'a> {
    pub(in crate::pages) fn of(s: &'a Summary, now: chrono::DateTime<chrono::Utc>) -> DriftStatus<'a> {
        let r = &s.drift_report;
        DriftStatus { state: r.state, note: r.message.clone(), at: r.generated_at.as_deref().and_then(parse_time).map(|t| view::time_ago(t, now)) }
    }
}

/// A node at a glance.
pub(in crate::pages) struct NodeCard {
    pub(in crate::pages) name: String,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) tone: &'static str,
    pub(in crate::pages) last_seen: When,
    pub(in crate::pages) disk: String,
    pub(in crate::pages) agent: String,
    pub(in crate::pages) desired: bool,
    pub(in crate::pages) healthy: usize,
    pub(in crate::pages) unhealthy: usize,
    pub(in crate::pages) unreported: usize,
}

pub(in crate::pages) fn node_cards(s: &Summary, desired: Option<&DesiredState>, now: Timestamp) -> Vec<NodeCard> {
    s.nodes
        .iter()
        .map(|(name, n)| {
            let (tone, word) = match (n.status, &n.last_seen) {
                ("up", _) => ("ok", "up"),
                (_, None) => ("none", "never reported"),
                _ => ("warn", "stale"),
            };
            let world = s.services.get(name);
            let healthy = world.map_or(0, |m| m.values().filter(|x| x.status == ServiceStatus::Healthy).count());
            let unhealthy = world.map_or(0, |m| m.values().filter(|x| x.status == ServiceStatus::Unhealthy).count());
            let unreported =
                desired.and_then(|d| d.hosts.get(name)).map_or(0, |h| h.monitored().filter(|(sv, _)| !world.is_some_and(|m| m.contains_key(*sv))).count());
            NodeCard {
                name: name.clone(),
                pill: view::pill(tone, word),
                tone,
                last_seen: n.last_seen.as_deref().map(|t| view::time_text(t, now)).unwrap_or_else(|| When::words("never")),
                disk: n.disk_pressure.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_else(|| "unknown".into()),
                agent: n.agent_version.clone().unwrap_or_default(),
                desired: n.desired,
                healthy,
                unhealthy,
                unreported,
            }
        })
        .collect()
}

/// What a timeline line says (the `line` macro of macros.html words it).
pub(in crate::pages) enum Line {
    /// A run of failing half hours of one service; `last_bad` when it is over.
    Incident { node: String, service: String, reason: String, last_bad: Option<When> },
    /// A step of an action.
    Action(ActionLine),
    /// An agent event's detail.
    Text(String),
}

/// "restart <id> of edge-1/web by alice, healthy after it — note".
pub(in crate::pages) struct ActionLine {
    pub(in crate::pages) kind: &'static str,
    pub(in crate::pages) id: String,
    pub(in crate::pages) target: String,
    /// Who moved it, unless the supervisor or executor did.
    pub(in crate::pages) by: Option<String>,
    /// ", healthy after it", ", not healthy after it" or "".
    pub(in crate::pages) verified: &'static str,
    pub(in crate::pages) note: Option<String>,
}

pub(in crate::pages) fn action_line(e: &ActionLogEntry) -> (Pill, Line) {
    let target = e.service.as_ref().map_or_else(|| e.node.clone(), |s| format!("{}/{s}", e.node));
    let tone = match e.state {
        ActionState::Completed if e.verified == Some(false) => "warn",
        ActionState::Completed => "ok",
        ActionState::Failed => "bad",
        ActionState::Pending => "ask",
        ActionState::Running => "run",
        ActionState::Approved => "wait",
        _ => "none",
    };
    let by = (e.by != "supervisor" && e.by != "executor").then(|| e.by.clone());
    let verified = match (e.state, e.verified) {
        (ActionState::Completed, Some(true)) => ", healthy after it",
        (ActionState::Completed, Some(false)) => ", not healthy after it",
        _ => "",
    };
    let line = ActionLine { kind: e.kind.as_str(), id: e.id.clone(), target, by, verified, note: e.note.clone() };
    (view::pill(tone, &format!("action {}", e.verb())), Line::Action(line))
}

pub(in crate::pages) fn action_title(kind: homelab_core::ActionType, node: &str, service: Option<&str>) -> String {
    let what = match kind {
        homelab_core::ActionType::ContainerRestart => "Restart",
        homelab_core::ActionType::Redeploy => "Redeploy",
        homelab_core::ActionType::Rollback => "Roll back",
        homelab_core::ActionType::DiskCleanup => "Disk cleanup on",
    };
    format!("{what} {}", service.map_or_else(|| node.to_owned(), |s| format!("{node}/{s}")))
}

pub(in crate::pages) fn action_title_of(a: &ActionSummary) -> String {
    let kind = match a.kind.as_str() {
        "container_restart" => homelab_core::ActionType::ContainerRestart,
        "redeploy" => homelab_core::ActionType::Redeploy,
        "rollback" => homelab_core::ActionType::Rollback,
        _ => homelab_core::ActionType::DiskCleanup,
    };
    action_title(kind, &a.node, a.service.as_deref())
}

/// An action row on the actions and node pages.
pub(in crate::pages) struct ActionRow<'a> {
    pub(in crate::pages) a: &'a ActionSummary,
    pub(in crate::pages) title: String,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) updated: When,
}

pub(in crate::pages) fn action_rows<'a>(list: impl Iterator<Item = &'a ActionSummary>, now: Timestamp) -> Vec<ActionRow<'a>> {
    list.map(|a| ActionRow { a, title: action_title_of(a), pill: view::state_pill(a.state), updated: view::time_text(&a.updated_at, now) }).collect()
}
