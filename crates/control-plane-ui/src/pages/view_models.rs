//! What the templates render: one struct per template and the rows they list, built from the
//! snapshot here so the handlers only gather and answer. Times and words come from `crate::view`.

use askama::Template;
use homelab_core::action::{RunPlan, RunWhere, RunWork};
use homelab_core::desired::DesiredState;
use homelab_core::{Action, ActionState, ServiceStatus, Timestamp};
use serde::Deserialize;

use crate::history::History;
use crate::snapshot::{ActionLogEntry, ActionSummary, Counts, Drift, FileError, Snapshot, Summary};
use crate::view::{self, BarView, Pill, Tick, When};

pub(super) struct DaemonRow {
    pub(super) name: String,
    pub(super) stopped: bool,
    pub(super) last_loop: When,
    pub(super) interval: String,
}

/// One service as the pages list it: from world state, or desired in hosts/ and never reported.
pub(super) struct ServiceRow {
    pub(super) node: String,
    pub(super) name: String,
    pub(super) pill: Pill,
    pub(super) unhealthy: bool,
    pub(super) reason: String,
    pub(super) since: When,
    pub(super) failures: u32,
    pub(super) desired: bool,
    pub(super) bar: BarView,
    /// "until 15:03 UTC (ends in 58 min)" while a silence mutes it; filled on the node page.
    pub(super) muted: Option<When>,
}

/// Unhealthy first, then never reported, then healthy.
pub(super) fn service_rows(s: &Summary, desired: Option<&DesiredState>, h: &History, only_node: Option<&str>, now: Timestamp) -> Vec<ServiceRow> {
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

/// How many quarantined entries the dashboard card lists.
pub(super) const DASHBOARD_QUARANTINE: usize = 5;
/// How many services the dashboard lists (the rest are on the node pages).
pub(super) const DASHBOARD_SERVICES: usize = 200;
/// How many entries the dashboard's timeline shows.
pub(super) const DASHBOARD_TIMELINE: usize = 12;

pub(super) struct QuarantineRow {
    /// `events/<name>` (below quarantine/).
    pub(super) name: String,
    /// The reason's first line, and the rest (the observer adds `(from events/...)`).
    pub(super) reason: String,
    pub(super) more: String,
    pub(super) at: String,
    pub(super) ago: String,
}

pub(super) fn quarantine_rows(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<QuarantineRow> {
    s.quarantine
        .recent
        .iter()
        .take(DASHBOARD_QUARANTINE)
        .map(|q| {
            let ago = chrono::DateTime::parse_from_rfc3339(&q.at).map(|t| homelab_core::words::ago(t.with_timezone(&chrono::Utc), now)).unwrap_or_default();
            let (reason, more) = q.reason.split_once('\n').unwrap_or((&q.reason, ""));
            QuarantineRow {
                name: q.file.strip_prefix("quarantine/").unwrap_or(&q.file).to_owned(),
                reason: reason.trim().to_owned(),
                more: crate::snapshot::one_line(more),
                at: q.at.clone(),
                ago,
            }
        })
        .collect()
}

pub(super) fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// One drift row as the pages show it: the file's fields plus what happens next in words.
pub(super) struct DriftRow<'a> {
    pub(super) d: &'a Drift,
    /// `remediation exhausted` for `remediation_exhausted`.
    pub(super) decision_label: String,
    /// The headline of "what happens next".
    pub(super) next: DriftNext,
    pub(super) since: Option<When>,
    pub(super) until_rel: String,
    pub(super) until: Option<When>,
    pub(super) retryable: bool,
}

/// "What happens next" after the decision of a drift row (drift_table.html words it).
pub(super) enum DriftNext {
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

pub(super) fn drift_rows<'a>(drift: impl Iterator<Item = &'a Drift>, s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<DriftRow<'a>> {
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

/// The drift section's note on where its rows come from ("" when from a current report).
pub(super) fn drift_note(s: &Summary) -> String {
    s.drift_report.message.clone()
}

/// "12 s ago" for the drift report shown.
pub(super) fn drift_at(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Option<When> {
    s.drift_report.generated_at.as_deref().and_then(parse_time).map(|t| view::time_ago(t, now))
}

/// A node at a glance.
pub(super) struct NodeCard {
    pub(super) name: String,
    pub(super) pill: Pill,
    pub(super) tone: &'static str,
    pub(super) last_seen: When,
    pub(super) disk: String,
    pub(super) agent: String,
    pub(super) desired: bool,
    pub(super) healthy: usize,
    pub(super) unhealthy: usize,
    pub(super) unreported: usize,
}

pub(super) fn node_cards(s: &Summary, desired: Option<&DesiredState>, now: Timestamp) -> Vec<NodeCard> {
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

/// One line of a timeline: when, a pill, and what.
pub(super) struct TimelineRow {
    pub(super) at: Timestamp,
    pub(super) when: When,
    pub(super) pill: Pill,
    pub(super) text: Line,
}

/// What a timeline line says (the `line` macro of macros.html words it).
pub(super) enum Line {
    /// A run of failing half hours of one service; `last_bad` when it is over.
    Incident { node: String, service: String, reason: String, last_bad: Option<When> },
    /// A step of an action.
    Action(ActionLine),
    /// An agent event's detail.
    Text(String),
}

/// "restart <id> of edge-1/web by alice, healthy after it — note".
pub(super) struct ActionLine {
    pub(super) kind: &'static str,
    pub(super) id: String,
    pub(super) target: String,
    /// Who moved it, unless the supervisor or executor did.
    pub(super) by: Option<String>,
    /// ", healthy after it", ", not healthy after it" or "".
    pub(super) verified: &'static str,
    pub(super) note: Option<String>,
}

pub(super) fn action_line(e: &ActionLogEntry) -> (Pill, Line) {
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

pub(super) fn dashboard_timeline(snap: &Snapshot, h: &History, now: Timestamp) -> Vec<TimelineRow> {
    let day_ago = now - chrono::Duration::hours(24);
    let mut rows: Vec<TimelineRow> = Vec::new();
    for i in h.incidents(now).into_iter().filter(|i| i.start >= day_ago) {
        let last_bad = (!i.ongoing).then(|| view::time_ago(i.last_bad, now));
        let text = Line::Incident { node: i.node, service: i.service, reason: i.reason, last_bad };
        rows.push(TimelineRow { at: i.start, when: view::time_ago(i.start, now), pill: view::pill("bad", "incident"), text });
    }
    for e in snap.action_log.iter().take_while(|e| e.at >= day_ago).take(DASHBOARD_TIMELINE * 2) {
        let (pill, text) = action_line(e);
        rows.push(TimelineRow { at: e.at, when: view::time_ago(e.at, now), pill, text });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.at));
    rows.truncate(DASHBOARD_TIMELINE);
    rows
}

/// The daemons' heartbeats, a stopped or unreadable one marked.
pub(super) fn daemon_rows(snap: &Snapshot, now: Timestamp) -> Vec<DaemonRow> {
    snap.heartbeats
        .iter()
        .map(|(name, hb)| match hb {
            Some(hb) => DaemonRow {
                name: name.clone(),
                stopped: hb.is_stopped(now),
                last_loop: view::time_ago(hb.last_loop_at, now),
                interval: format!("every {} s", hb.interval_secs),
            },
            None => DaemonRow { name: name.clone(), stopped: true, last_loop: When::words("unreadable heartbeat"), interval: String::new() },
        })
        .collect()
}

/// The dashboard's one-line headline and its tone, from the counts and the pending actions.
pub(super) fn headline(c: &Counts, pending: usize) -> (String, &'static str) {
    let problems = c.services_unhealthy + c.nodes_stale;
    if pending > 0 {
        (format!("{} waiting for your approval", if pending == 1 { "1 action is".to_owned() } else { format!("{} actions are", pending) }), "ask")
    } else if problems > 0 || c.drift > 0 {
        (
            format!(
                "{} unhealthy, {} of {} nodes not reporting; the supervisor is on it (see Drift)",
                view::plural(c.services_unhealthy, "service"),
                c.nodes_stale,
                c.nodes
            ),
            "bad",
        )
    } else if c.services == 0 && c.services_desired == 0 {
        ("Nothing reported yet: start the agents (see the node pages)".to_owned(), "none")
    } else {
        (format!("All good: {} healthy on {}", view::plural(c.services_healthy, "service"), view::plural(c.nodes_up, "node")), "ok")
    }
}

/// A pending action on the dashboard: what it will do, one sentence.
pub(super) struct PendingCard {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) will: Vec<Tick>,
    pub(super) created: When,
}

pub(super) fn action_title(kind: homelab_core::ActionType, node: &str, service: Option<&str>) -> String {
    let what = match kind {
        homelab_core::ActionType::ContainerRestart => "Restart",
        homelab_core::ActionType::Redeploy => "Redeploy",
        homelab_core::ActionType::DiskCleanup => "Disk cleanup on",
    };
    format!("{what} {}", service.map_or_else(|| node.to_owned(), |s| format!("{node}/{s}")))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(super) struct DashboardT<'a> {
    pub(super) base: &'a str,
    pub(super) csrf: Option<String>,
    pub(super) s: &'a Summary,
    pub(super) errors: &'a [FileError],
    pub(super) drift_state: &'a str,
    pub(super) drift_note: String,
    pub(super) drift_at: Option<When>,
    pub(super) world_at: When,
    pub(super) headline: String,
    pub(super) headline_tone: &'static str,
    /// Services desired in hosts/ (or in world state, when more).
    pub(super) services_total: usize,
    pub(super) daemons: Vec<DaemonRow>,
    pub(super) nodes: Vec<NodeCard>,
    pub(super) pending: Vec<PendingCard>,
    pub(super) drift: Vec<DriftRow<'a>>,
    pub(super) services: Vec<ServiceRow>,
    pub(super) services_more: usize,
    pub(super) timeline: Vec<TimelineRow>,
    pub(super) quarantine: Vec<QuarantineRow>,
    /// Quarantined entries not listed on the card.
    pub(super) quarantine_more: usize,
    /// No mute column here (the node pages have it).
    pub(super) mute: bool,
    pub(super) may_mute: bool,
}

pub(super) fn action_title_of(a: &ActionSummary) -> String {
    let kind = match a.kind.as_str() {
        "container_restart" => homelab_core::ActionType::ContainerRestart,
        "redeploy" => homelab_core::ActionType::Redeploy,
        _ => homelab_core::ActionType::DiskCleanup,
    };
    action_title(kind, &a.node, a.service.as_deref())
}

/// An action row on the actions and node pages.
pub(super) struct ActionRow<'a> {
    pub(super) a: &'a ActionSummary,
    pub(super) title: String,
    pub(super) pill: Pill,
    pub(super) updated: When,
}

pub(super) fn action_rows<'a>(list: impl Iterator<Item = &'a ActionSummary>, now: Timestamp) -> Vec<ActionRow<'a>> {
    list.map(|a| ActionRow { a, title: action_title_of(a), pill: view::state_pill(a.state), updated: view::time_text(&a.updated_at, now) }).collect()
}

#[derive(Template)]
#[template(path = "actions.html")]
pub(super) struct ActionsT<'a> {
    pub(super) base: &'a str,
    pub(super) csrf: Option<String>,
    pub(super) errors: &'a [FileError],
    /// (value, selected)
    pub(super) nodes: Vec<(String, bool)>,
    pub(super) states: Vec<(String, bool)>,
    pub(super) sections: Vec<(&'static str, &'static str, Vec<ActionRow<'a>>)>,
}

/// "What approving will run", ready for the template.
pub(super) struct PlanView {
    pub(super) node: String,
    /// `local` or `SSH`.
    pub(super) via: &'static str,
    pub(super) ssh: String,
    /// `containers`, `labels`, `compose`, `prune` or `none`.
    pub(super) work: &'static str,
    pub(super) items: Vec<String>,
    pub(super) command: String,
    pub(super) dir: String,
    pub(super) describe: Vec<Tick>,
    pub(super) timeout: u64,
    pub(super) verify: String,
    pub(super) blocked: Option<String>,
}

pub(super) fn plan_view(p: &RunPlan) -> PlanView {
    let (work, items, command, dir) = match &p.work {
        Some(RunWork::RestartContainers { containers }) => ("containers", containers.clone(), String::new(), String::new()),
        Some(RunWork::RestartByLabels { labels }) => ("labels", labels.clone(), String::new(), String::new()),
        Some(RunWork::Compose { argv, dir }) => ("compose", Vec::new(), argv.join(" "), dir.clone()),
        Some(RunWork::Prune { label }) => ("prune", label.iter().cloned().collect(), String::new(), String::new()),
        None => ("none", Vec::new(), String::new(), String::new()),
    };
    let (via, ssh) = match &p.run_where {
        RunWhere::Local => ("local", String::new()),
        RunWhere::Ssh { target, .. } => ("SSH", target.clone()),
    };
    PlanView {
        node: p.node.clone(),
        via,
        ssh,
        work,
        items,
        command,
        dir,
        describe: view::code_ticks(&p.describe()),
        timeout: p.timeout_secs,
        verify: p.verify_text(),
        blocked: p.blocked.clone(),
    }
}

#[derive(Template)]
#[template(path = "action.html")]
pub(super) struct ActionT<'a> {
    pub(super) base: &'a str,
    pub(super) csrf: Option<String>,
    pub(super) errors: &'a [FileError],
    /// The supervisor's drift row about this action's target now (world/drift.json).
    pub(super) drift: Vec<DriftRow<'a>>,
    pub(super) a: &'a Action,
    pub(super) title: String,
    pub(super) tone: &'static str,
    pub(super) icon: view::Icon,
    pub(super) created: When,
    pub(super) target: String,
    pub(super) plan: PlanView,
    /// A warning about the executor (stopped, dry run), empty when none.
    pub(super) executor_note: String,
    pub(super) evidence: Vec<EvidenceRow>,
    pub(super) events_link: String,
    pub(super) running_since: When,
    /// When the run started and how many seconds it took.
    pub(super) ran: Option<(When, i64)>,
    pub(super) history: Vec<HistoryRow>,
}

/// A warning about the executor for an action's page (stopped, unreadable, dry run); "" when none.
pub(super) fn executor_note(snap: &Snapshot, now: Timestamp) -> String {
    match snap.heartbeats.get("executor") {
        None => "No executor has written a heartbeat: an approved action waits in approved/ until one runs.".to_owned(),
        Some(None) => "The executor's heartbeat does not parse: it may not be running.".to_owned(),
        Some(Some(hb)) if hb.is_stopped(now) => format!(
            "The executor looks stopped (last heartbeat {}): an approved action waits until it runs again.",
            homelab_core::words::ago(hb.last_loop_at, now)
        ),
        Some(Some(hb)) if hb.extra.get("dry_run").and_then(|v| v.as_bool()) == Some(true) => {
            "The executor runs in dry-run mode (EXECUTOR_DRY_RUN): it records what it would do and changes nothing.".to_owned()
        }
        Some(Some(_)) => String::new(),
    }
}

/// One of the last events of an action's target.
pub(super) struct EvidenceRow {
    pub(super) when: When,
    pub(super) pill: Pill,
    pub(super) detail: String,
}

/// One step of an action's history.
pub(super) struct HistoryRow {
    pub(super) when: When,
    pub(super) pill: Pill,
    pub(super) by: String,
    pub(super) note: String,
}

/// One line of the events timeline.
pub(super) struct EventRow {
    pub(super) when: When,
    pub(super) pill: Pill,
    pub(super) node: String,
    pub(super) service: String,
    pub(super) text: Line,
}

/// One page of the events timeline: agent events and action steps merged newest first, and
/// whether more follow. Both lists hold at least the pages up to this one.
pub(super) fn event_rows(events: &[homelab_core::Event], acts: &[&ActionLogEntry], page: usize, now: Timestamp) -> (Vec<EventRow>, bool) {
    enum Item<'x> {
        Ev(&'x homelab_core::Event),
        Act(&'x ActionLogEntry),
    }
    let per = crate::timeline::PER_PAGE;
    let mut merged: Vec<(Timestamp, Item)> = events.iter().map(|e| (e.ts, Item::Ev(e))).chain(acts.iter().map(|e| (e.at, Item::Act(e)))).collect();
    merged.sort_by_key(|m| std::cmp::Reverse(m.0));
    let more = merged.len() > (page + 1) * per;
    let rows = merged
        .into_iter()
        .skip(page * per)
        .take(per)
        .map(|(at, item)| match item {
            Item::Ev(e) => EventRow {
                when: view::time_ago(at, now),
                pill: view::pill(view::event_tone(&e.kind), &e.kind),
                node: e.node.clone(),
                service: e.service.clone().unwrap_or_default(),
                text: Line::Text(e.detail.clone().unwrap_or_default()),
            },
            Item::Act(e) => {
                let (pill, text) = action_line(e);
                EventRow { when: view::time_ago(at, now), pill, node: e.node.clone(), service: e.service.clone().unwrap_or_default(), text }
            }
        })
        .collect();
    (rows, more)
}

#[derive(Template)]
#[template(path = "events.html")]
pub(super) struct EventsT<'a> {
    pub(super) base: &'a str,
    pub(super) node: Option<String>,
    pub(super) service: Option<String>,
    /// (value, label, selected) per select.
    pub(super) node_opts: Vec<(String, bool)>,
    pub(super) service_opts: Vec<(String, bool)>,
    pub(super) event_types: Vec<(String, bool)>,
    pub(super) action_types: Vec<(String, String, bool)>,
    pub(super) rows: Vec<EventRow>,
    pub(super) page: usize,
    pub(super) prev_link: String,
    pub(super) next_link: Option<String>,
}

#[derive(Template)]
#[template(path = "node.html")]
pub(super) struct NodeT<'a> {
    pub(super) base: &'a str,
    pub(super) csrf: Option<String>,
    pub(super) errors: &'a [FileError],
    pub(super) drift_state: &'a str,
    pub(super) drift_note: String,
    pub(super) drift_at: Option<When>,
    pub(super) name: &'a str,
    pub(super) card: Option<NodeCard>,
    /// Never reported and desired: how to get an agent reporting.
    pub(super) install: bool,
    pub(super) ui_url: String,
    pub(super) ssh: String,
    pub(super) drift: Vec<DriftRow<'a>>,
    pub(super) services: Vec<ServiceRow>,
    pub(super) rows: Vec<ActionRow<'a>>,
    /// The services table has a mute column (this page); the viewer may mute this node.
    pub(super) mute: bool,
    pub(super) may_mute: bool,
    /// "until …" while a silence mutes the whole node.
    pub(super) node_muted: Option<When>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginT<'a> {
    pub(super) base: &'a str,
    pub(super) message: Option<&'a str>,
    /// Single sign-on configured.
    pub(super) sso: bool,
    /// Why single sign-on cannot be used now (the last discovery failed).
    pub(super) sso_unavailable: Option<String>,
}

#[derive(Template)]
#[template(path = "oidc_done.html")]
pub(super) struct OidcDoneT<'a> {
    pub(super) base: &'a str,
    pub(super) user: &'a str,
}

/// One silence as the page lists it.
pub(super) struct SilenceRow {
    pub(super) id: String,
    pub(super) mutes: String,
    pub(super) reason: String,
    pub(super) by: String,
    pub(super) created: When,
    /// Active: "until 15:03 UTC (ends in 58 min)"; ended: when, relative.
    pub(super) when: When,
    pub(super) expired_by: String,
    pub(super) can_expire: bool,
}

/// What the add form holds: what was typed, sent back with an error.
#[derive(Debug, Deserialize, Default)]
pub(super) struct SilenceForm {
    #[serde(default)]
    pub(super) csrf: Option<String>,
    #[serde(default)]
    pub(super) target: String,
    #[serde(default)]
    pub(super) action_type: String,
    /// One of [`DURATIONS`] from the select.
    #[serde(default)]
    pub(super) duration: String,
    /// Typed; wins over the select when filled.
    #[serde(default)]
    pub(super) duration_custom: String,
    #[serde(default)]
    pub(super) reason: String,
    /// `node`: a mute button of the node page; go back there.
    #[serde(default)]
    pub(super) from: String,
}

#[derive(Template)]
#[template(path = "silences.html")]
pub(super) struct SilencesT<'a> {
    pub(super) base: &'a str,
    /// Set when this viewer gets the add form (logged in with a browser credential, not a viewer).
    pub(super) csrf: Option<String>,
    /// Why there is no form ("" when there is one).
    pub(super) no_form: String,
    pub(super) error: Option<String>,
    pub(super) form: &'a SilenceForm,
    pub(super) durations: Vec<(&'static str, &'static str, bool)>,
    pub(super) action_types: Vec<(&'static str, bool)>,
    pub(super) targets: Vec<String>,
    pub(super) active: Vec<SilenceRow>,
    pub(super) ended: Vec<SilenceRow>,
}

pub(super) struct AuditRow {
    pub(super) time: When,
    pub(super) r: homelab_store::audit::AuditRecord,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(super) struct AuditT<'a> {
    pub(super) base: &'a str,
    pub(super) day: String,
    pub(super) is_today: bool,
    pub(super) who: String,
    pub(super) what: String,
    pub(super) target: String,
    pub(super) whos: Vec<String>,
    pub(super) whats: Vec<String>,
    pub(super) outcomes: Vec<(&'static str, bool)>,
    pub(super) rows: Vec<AuditRow>,
    /// Records of the day that pass the filters, and of the day at all.
    pub(super) matched: usize,
    pub(super) total: usize,
    pub(super) skipped: usize,
    pub(super) prev_link: String,
    pub(super) next_link: Option<String>,
    pub(super) clear_link: String,
}
