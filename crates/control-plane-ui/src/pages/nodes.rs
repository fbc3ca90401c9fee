//! One node's page: its card, install steps, services with mute buttons, drift and actions.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::api::Peer;
use crate::view;
use homelab_ops::Command;

use crate::{AppState, ViewFleet};

use super::view_models::{DeploysView, DriftStatus, NodeT, action_rows, drift_rows, node_cards, service_rows};
use super::{PageError, PageQuery, behind_tls, finish, history, respond, viewer};

pub(super) async fn node(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(name): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        if homelab_core::validate_name(&name).is_err() {
            return Err(PageError::Status(StatusCode::BAD_REQUEST, "That is not a valid node name.".into()));
        }
        let snap = state.snapshot().await?;
        let h = history(&state).await;
        let now = chrono::Utc::now();
        let s = &snap.summary;
        let a = &s.actions;
        let rows = action_rows(a.pending.iter().chain(&a.approved).chain(&a.running).chain(&a.recent).filter(|x| x.node == name), now);
        let card = node_cards(s, snap.desired.as_ref(), now).into_iter().find(|c| c.name == name);
        let host = snap.desired.as_ref().and_then(|d| d.hosts.get(&name));
        let install = s.nodes.get(&name).is_some_and(|n| n.last_seen.is_none());
        let proto = if behind_tls(&headers) { "https" } else { "http" };
        let host_header = headers.get("x-forwarded-host").or_else(|| headers.get(header::HOST)).and_then(|v| v.to_str().ok()).unwrap_or("control-plane:18180");
        let host_header: String = host_header.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']')).collect();
        // Silences: what is muted now, and whether this viewer may mute here (the rule of every channel).
        let muting = crate::silences::listing(&state).await.unwrap_or_else(|e| {
            tracing::error!(error = %e.body, "cannot list silences for the node page");
            Vec::new()
        });
        let mut services = service_rows(s, snap.desired.as_ref(), &h, Some(&name), now);
        for row in &mut services {
            if let Some(m) = homelab_core::silence::active_match(&muting, &row.node, Some(&row.name), None, now) {
                row.muted = Some(view::until(m.end(), now));
            }
        }
        let node_muted = homelab_core::silence::active_match(&muting, &name, None, None, now).map(|m| view::until(m.end(), now));
        let fleet = ViewFleet(Some(snap.clone()));
        let may_mute =
            v.csrf.is_some() && v.op.as_ref().is_some_and(|op| homelab_ops::permit_on_node(&op.actor(None), &fleet, Command::SilenceAdd, &name).is_ok());
        let may_propose =
            v.csrf.is_some() && v.op.as_ref().is_some_and(|op| homelab_ops::permit_on_node(&op.actor(None), &fleet, Command::Propose, &name).is_ok());
        let compose_services: Vec<String> =
            host.map(|h| h.services.iter().filter(|(_, s)| s.compose_dir.is_some()).map(|(n, _)| n.clone()).collect()).unwrap_or_default();
        let (root, node) = (state.root.clone(), name.clone());
        let deploys = tokio::task::spawn_blocking(move || {
            compose_services
                .iter()
                .filter_map(|svc| {
                    let history = root.read_deploy_history(&node, svc).ok()?;
                    let (generations, _) = root.list_generations(&node, svc).ok()?;
                    (!history.records.is_empty() || !generations.is_empty()).then(|| DeploysView::of(svc, &history, &generations, now))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let t = NodeT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &s.errors,
            drift_status: DriftStatus::of(s, now),
            name: &name,
            card,
            install,
            ui_url: format!("{proto}://{host_header}{}", state.base),
            ssh: host
                .and_then(|h| h.ssh.as_ref())
                .map(|t| format!("{}{}", t.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(), t.host))
                .unwrap_or_else(|| format!("root@{name}")),
            drift: drift_rows(s.drift.iter().filter(|d| d.node == name), s, now),
            services,
            rows,
            mute: true,
            may_mute,
            node_muted,
            deploys,
            may_propose,
        };
        respond(&state, &headers, &q, &format!("Node {name}"), v, true, t.render())
    }
    .await;
    finish(&state, r)
}
