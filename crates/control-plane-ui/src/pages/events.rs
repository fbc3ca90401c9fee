//! The events timeline: agent events and action steps, newest first, filtered and paged.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::api::Peer;
use crate::snapshot::ActionLogEntry;

use crate::AppState;

use super::view_models::{EventsT, event_rows};
use super::{PageError, PageQuery, finish, respond, viewer};

/// The action entries the type filter offers, as `action:<verb>`.
pub(super) const ACTION_VERBS: [&str; 7] = ["proposed", "approved", "rejected", "started", "completed", "failed", "cancelled"];

pub(super) async fn events(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let node = q.node.clone().filter(|n| !n.is_empty());
        let service = q.service.clone().filter(|n| !n.is_empty());
        for n in node.iter().chain(service.iter()) {
            if homelab_core::validate_name(n).is_err() {
                return Err(PageError::Status(StatusCode::BAD_REQUEST, format!("{n:?} is not a valid node or service name.")));
            }
        }
        let kind = q.kind.clone().filter(|k| !k.is_empty());
        let (event_kind, action_verb) = match kind.as_deref() {
            None => (None, None),
            Some(k) => match k.strip_prefix("action:") {
                Some(verb) if ACTION_VERBS.contains(&verb) => (None, Some(verb.to_owned())),
                None if k.len() <= 64 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => (Some(k.to_owned()), None),
                _ => return Err(PageError::Status(StatusCode::BAD_REQUEST, format!("{k:?} is not an event or action type."))),
            },
        };
        let page = q.page.unwrap_or(0).min(100_000);
        let per = crate::timeline::PER_PAGE;
        let want = (page + 1) * per + 1;
        let snap = state.snapshot().await?;
        let now = chrono::Utc::now();
        // Agent events from disk (not when only action entries are asked for).
        let tl = if action_verb.is_some() {
            crate::timeline::TimelinePage { events: Vec::new(), more: false }
        } else {
            let root = state.root.clone();
            let (n2, s2, k2) = (node.clone(), service.clone(), event_kind.clone());
            tokio::task::spawn_blocking(move || crate::timeline::read_newest(&root, n2.as_deref(), s2.as_deref(), k2.as_deref(), want))
                .await
                .map_err(anyhow::Error::new)?
                .map_err(anyhow::Error::new)?
        };
        // Action history entries from the view (not when an agent event type is asked for).
        let acts: Vec<&ActionLogEntry> = if event_kind.is_some() {
            Vec::new()
        } else {
            snap.action_log
                .iter()
                .filter(|e| {
                    node.as_ref().is_none_or(|n| &e.node == n)
                        && service.as_ref().is_none_or(|s| e.service.as_ref() == Some(s))
                        && action_verb.as_deref().is_none_or(|v| e.verb() == v)
                })
                .take(want)
                .collect()
        };
        let (rows, more) = event_rows(&tl.events, &acts, page, now);
        let more = more || tl.more;
        let link = |p: usize| {
            let mut l = format!("{}/events?page={p}", state.base);
            if let Some(n) = &node {
                l.push_str(&format!("&node={n}"));
            }
            if let Some(s) = &service {
                l.push_str(&format!("&service={s}"));
            }
            if let Some(k) = &kind {
                l.push_str(&format!("&type={k}"));
            }
            l
        };
        let s = &snap.summary;
        let mut node_names: std::collections::BTreeSet<String> = s.nodes.keys().cloned().collect();
        let mut service_names: std::collections::BTreeSet<String> = s.services.values().flat_map(|m| m.keys().cloned()).collect();
        if let Some(d) = &snap.desired {
            node_names.extend(d.hosts.keys().cloned());
            service_names.extend(d.hosts.values().flat_map(|h| h.services.keys().cloned()));
        }
        node_names.extend(node.clone());
        service_names.extend(service.clone());
        let mut types: Vec<&str> = homelab_core::event::POSITIVE_TYPES.iter().chain(homelab_core::event::NEGATIVE_TYPES).copied().collect();
        types.extend(["node_heartbeat", "disk_pressure"]);
        let t = EventsT {
            base: &state.base,
            node: node.clone(),
            service: service.clone(),
            node_opts: node_names
                .into_iter()
                .map(|n| {
                    let sel = node.as_ref() == Some(&n);
                    (n, sel)
                })
                .collect(),
            service_opts: service_names
                .into_iter()
                .map(|n| {
                    let sel = service.as_ref() == Some(&n);
                    (n, sel)
                })
                .collect(),
            event_types: types.into_iter().map(|t| (t.to_owned(), event_kind.as_deref() == Some(t))).collect(),
            action_types: ACTION_VERBS.iter().map(|v| (format!("action:{v}"), format!("action {v}"), action_verb.as_deref() == Some(*v))).collect(),
            rows,
            page,
            prev_link: link(page.saturating_sub(1)),
            next_link: more.then(|| link(page + 1)),
        };
        respond(&state, &headers, &q, "Events", v, true, t.render())
    }
    .await;
    finish(&state, r)
}
