//! The events timeline: what its template renders.

use askama::Template;
use homelab_core::Timestamp;

use crate::snapshot::ActionLogEntry;
use crate::view::{self, Pill, When};

use super::{Line, action_line};

/// One line of the events timeline.
pub(in crate::pages) struct EventRow {
    pub(in crate::pages) when: When,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) node: String,
    pub(in crate::pages) service: String,
    pub(in crate::pages) text: Line,
}

/// One page of the events timeline: agent events and action steps merged newest first, and
/// whether more follow. Both lists hold at least the pages up to this one.
pub(in crate::pages) fn event_rows(events: &[homelab_core::Event], acts: &[&ActionLogEntry], page: usize, now: Timestamp) -> (Vec<EventRow>, bool) {
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
pub(in crate::pages) struct EventsT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) node: Option<String>,
    pub(in crate::pages) service: Option<String>,
    /// (value, label, selected) per select.
    pub(in crate::pages) node_opts: Vec<(String, bool)>,
    pub(in crate::pages) service_opts: Vec<(String, bool)>,
    pub(in crate::pages) event_types: Vec<(String, bool)>,
    pub(in crate::pages) action_types: Vec<(String, String, bool)>,
    pub(in crate::pages) rows: Vec<EventRow>,
    pub(in crate::pages) page: usize,
    pub(in crate::pages) prev_link: String,
    pub(in crate::pages) next_link: Option<String>,
}
