//! The dashboard: what its template renders.

use askama::Template;
use homelab_core::Timestamp;

use crate::history::History;
use crate::snapshot::{Counts, FileError, Snapshot, Summary};
use crate::view::{self, Pill, Tick, When};

use super::{DriftNext, DriftRow, DriftStatus, Line, NodeCard, ServiceRow, action_line};

pub(in crate::pages) struct DaemonRow {
    pub(in crate::pages) name: String,
    pub(in crate::pages) stopped: bool,
    pub(in crate::pages) last_loop: When,
    pub(in crate::pages) interval: String,
}

/// How many quarantined entries the dashboard card lists.
pub(in crate::pages) const DASHBOARD_QUARANTINE: usize = 5;
/// How many services the dashboard lists (the rest are on the node pages).
pub(in crate::pages) const DASHBOARD_SERVICES: usize = 200;
/// How many entries the dashboard's timeline shows.
pub(in crate::pages) const DASHBOARD_TIMELINE: usize = 12;

pub(in crate::pages) struct QuarantineRow {
    /// `events/<name>` (below quarantine/).
    pub(in crate::pages) name: String,
    /// The reason's first line, and the rest (the observer adds `(from events/...)`).
    pub(in crate::pages) reason: String,
    pub(in crate::pages) more: String,
    pub(in crate::pages) at: String,
    pub(in crate::pages) ago: String,
}

pub(in crate::pages) fn quarantine_rows(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<QuarantineRow> {
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

/// One line of a timeline: when, a pill, and what.
pub(in crate::pages) struct TimelineRow {
    pub(in crate::pages) at: Timestamp,
    pub(in crate::pages) when: When,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) text: Line,
}

pub(in crate::pages) fn dashboard_timeline(snap: &Snapshot, h: &History, now: Timestamp) -> Vec<TimelineRow> {
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
pub(in crate::pages) fn daemon_rows(snap: &Snapshot, now: Timestamp) -> Vec<DaemonRow> {
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
pub(in crate::pages) fn headline(c: &Counts, pending: usize) -> (String, &'static str) {
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
pub(in crate::pages) struct PendingCard {
    pub(in crate::pages) id: String,
    pub(in crate::pages) title: String,
    pub(in crate::pages) will: Vec<Tick>,
    pub(in crate::pages) created: When,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(in crate::pages) struct DashboardT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) csrf: Option<String>,
    pub(in crate::pages) s: &'a Summary,
    pub(in crate::pages) errors: &'a [FileError],
    pub(in crate::pages) drift_status: DriftStatus<'a>,
    pub(in crate::pages) world_at: When,
    pub(in crate::pages) headline: String,
    pub(in crate::pages) headline_tone: &'static str,
    /// Services desired in hosts/ (or in world state, when more).
    pub(in crate::pages) services_total: usize,
    pub(in crate::pages) daemons: Vec<DaemonRow>,
    pub(in crate::pages) nodes: Vec<NodeCard>,
    pub(in crate::pages) pending: Vec<PendingCard>,
    pub(in crate::pages) drift: Vec<DriftRow<'a>>,
    pub(in crate::pages) services: Vec<ServiceRow>,
    pub(in crate::pages) services_more: usize,
    pub(in crate::pages) timeline: Vec<TimelineRow>,
    pub(in crate::pages) quarantine: Vec<QuarantineRow>,
    /// Quarantined entries not listed on the card.
    pub(in crate::pages) quarantine_more: usize,
    /// No mute column here (the node pages have it).
    pub(in crate::pages) mute: bool,
    pub(in crate::pages) may_mute: bool,
}
