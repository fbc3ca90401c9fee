//! The dashboard: headline, counts, approvals, nodes, drift, services, the last 24 hours, daemons.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use homelab_core::ActionState;
use homelab_core::action::run_plan;

use crate::api::Peer;
use crate::view::{self, When};

use crate::AppState;

use super::view_models::{
    DASHBOARD_SERVICES, DashboardT, DriftStatus, PendingCard, action_title_of, daemon_rows, dashboard_timeline, drift_rows, headline, node_cards,
    quarantine_rows, service_rows,
};
use super::{PageQuery, finish, history, respond, run_defaults, viewer};

pub(super) async fn dashboard(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let snap = state.snapshot().await?;
        let h = history(&state).await;
        let now = chrono::Utc::now();
        let daemons = daemon_rows(&snap, now);
        let quarantine = quarantine_rows(&snap.summary, now);
        let quarantine_more = snap.summary.quarantine.count.saturating_sub(quarantine.len());
        let s = &snap.summary;
        let defaults = run_defaults(&state, &snap);
        let pending = s
            .actions
            .pending
            .iter()
            .map(|a| {
                let will = match state.root.read_active(ActionState::Pending, &a.id) {
                    Ok(Some(full)) => run_plan(&full, snap.desired.as_ref().and_then(|d| d.hosts.get(&a.node)), &defaults).describe(),
                    _ => String::new(),
                };
                PendingCard { id: a.id.clone(), title: action_title_of(a), will: view::code_ticks(&will), created: view::time_text(&a.created_at, now) }
            })
            .collect::<Vec<_>>();
        let mut services = service_rows(s, snap.desired.as_ref(), &h, None, now);
        let services_more = services.len().saturating_sub(DASHBOARD_SERVICES);
        services.truncate(DASHBOARD_SERVICES);
        let (headline, headline_tone) = headline(&s.counts, pending.len());
        let t = DashboardT {
            base: &state.base,
            csrf: v.csrf.clone(),
            s,
            errors: &s.errors,
            drift_status: DriftStatus::of(s, now),
            world_at: s.world_generated_at.as_deref().map(|t| view::time_text(t, now)).unwrap_or_else(|| When::words("never")),
            headline,
            headline_tone,
            services_total: s.counts.services_desired.max(s.counts.services),
            daemons,
            nodes: node_cards(s, snap.desired.as_ref(), now),
            pending,
            drift: drift_rows(s.drift.iter(), s, now),
            services,
            services_more,
            timeline: dashboard_timeline(&snap, &h, now),
            quarantine,
            quarantine_more,
            mute: false,
            may_mute: false,
        };
        respond(&state, &headers, &q, "Dashboard", v, true, t.render())
    }
    .await;
    finish(&state, r)
}
