//! The silences page and its forms (add, the node page's mute buttons, expire), through
//! `crate::silences::add` and `end`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use homelab_core::silence::Matcher;

use crate::api::Peer;
use crate::view;
use homelab_ops::Command;

use crate::{AppState, ViewFleet};

use super::view_models::{SilenceForm, SilenceRow, SilencesT};
use super::{IdPost, PageError, PageQuery, Viewer, finish, form_operator, message_page, respond, viewer, with_status};

/// The durations the add form offers (value, label).
pub(super) const DURATIONS: [(&str, &str); 4] = [("30m", "30 minutes"), ("1h", "1 hour"), ("4h", "4 hours"), ("1d", "1 day")];

/// The silences page: active and recently ended silences, and the add form (with `error` and
/// what was typed after a refused add).
pub(super) async fn render_silences(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    q: &PageQuery,
    v: Viewer,
    form: &SilenceForm,
    error: Option<String>,
) -> Result<Response, PageError> {
    let snap = state.snapshot().await?;
    let now = chrono::Utc::now();
    let list = crate::silences::listing(state).await.map_err(|e| anyhow::anyhow!("cannot list silences: {}", e.body))?;
    let desired = snap.desired.as_ref();
    let fleet = ViewFleet(Some(snap.clone()));
    let actor = v.op.as_ref().map(|op| op.actor(None));
    let csrf = v.csrf.clone().filter(|_| v.op.as_ref().is_some_and(|op| op.role != crate::auth::Role::Viewer));
    let no_form = match &v.op {
        None => "Log in to add or end a silence.".to_owned(),
        Some(op) if op.role == crate::auth::Role::Viewer => format!("{} is a viewer: you may read silences, not add or end them.", op.name),
        Some(_) if v.csrf.is_none() => "Use the API or hcp silence to add one with a token.".to_owned(),
        Some(_) => String::new(),
    };
    let (mut active, mut ended) = (Vec::new(), Vec::new());
    for s in &list {
        let is_active = s.is_active(now);
        let row = SilenceRow {
            id: s.id.clone(),
            mutes: s.target(),
            reason: s.reason.clone(),
            by: s.created_by.clone(),
            created: view::time_ago(s.created_at, now),
            when: if is_active { view::until(s.end(), now) } else { view::time_ago(s.end(), now) },
            expired_by: s.expired_by.clone().unwrap_or_default(),
            can_expire: is_active
                && csrf.is_some()
                && actor.as_ref().is_some_and(|a| homelab_ops::permit_silence(a, &fleet, Command::SilenceExpire, s).is_ok()),
        };
        if is_active { active.push(row) } else { ended.push(row) }
    }
    // Targets to pick from: every node and node/service of world state and hosts/.
    let s = &snap.summary;
    let mut targets: std::collections::BTreeSet<String> = s.nodes.keys().cloned().collect();
    for (node, svcs) in &s.services {
        targets.insert(node.clone());
        targets.extend(svcs.keys().map(|sv| format!("{node}/{sv}")));
    }
    if let Some(d) = desired {
        for (node, h) in &d.hosts {
            targets.insert(node.clone());
            targets.extend(h.services.keys().map(|sv| format!("{node}/{sv}")));
        }
    }
    let chosen = if form.duration.is_empty() { "1h" } else { form.duration.as_str() };
    let t = SilencesT {
        base: &state.base,
        csrf,
        no_form,
        error,
        form,
        durations: DURATIONS.iter().map(|(d, l)| (*d, *l, *d == chosen)).collect(),
        action_types: ["container_restart", "redeploy", "disk_cleanup"].into_iter().map(|t| (t, form.action_type == t)).collect(),
        targets: targets.into_iter().collect(),
        active,
        ended,
    };
    respond(state, headers, q, "Silences", v, false, t.render())
}

pub(super) async fn silences_page(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        // `?target=edge-1` fills the form (the node page's "with a reason" link).
        let form = SilenceForm { target: q.target.clone().unwrap_or_default(), ..Default::default() };
        render_silences(&state, &headers, &q, v, &form, None).await
    }
    .await;
    finish(&state, r)
}

/// The add form and the node page's mute buttons: `silences::add` (checks, write, audit), then
/// back to where it came from; a refusal is shown on the form, with what was typed.
pub(super) async fn silence_add(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<SilenceForm>) -> Response {
    let op = match form_operator(&state, &headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(page) => return page,
    };
    let custom = f.duration_custom.trim();
    let req = crate::silences::NewSilenceBody {
        target: Some(f.target.trim().to_owned()).filter(|t| !t.is_empty()),
        action_type: Some(f.action_type.clone()).filter(|t| !t.is_empty()),
        duration: if custom.is_empty() { f.duration.clone() } else { custom.to_owned() },
        reason: f.reason.clone(),
    };
    match crate::silences::add(&state, &op, peer.0, req).await {
        Ok(s) => match (f.from.as_str(), &s.node) {
            ("node", Some(node)) => Redirect::to(&state.url(&format!("/nodes/{node}"))).into_response(),
            _ => Redirect::to(&state.url("/silences")).into_response(),
        },
        Err(e) => {
            let msg = format!("Not muted: {}", e.body["error"].as_str().unwrap_or("the silence could not be written"));
            if f.from == "node" {
                let back = Matcher::target(&f.target).node.map(|n| state.url(&format!("/nodes/{n}"))).unwrap_or_else(|| state.url("/silences"));
                return message_page(&state, e.status, "Not muted", &msg, &back);
            }
            let v = Viewer { user: Some(op.user().to_owned()), csrf: op.csrf.clone(), op: Some(op) };
            let r = render_silences(&state, &headers, &PageQuery::default(), v, &f, Some(msg)).await;
            with_status(finish(&state, r), e.status)
        }
    }
}

/// "Expire now": `silences::end` (checks, write, audit), then back to the list.
pub(super) async fn silence_expire(State(state): State<Arc<AppState>>, post: IdPost) -> Response {
    let IdPost { op, peer, headers, id, .. } = post;
    match crate::silences::end(&state, &op, peer, &id).await {
        Ok(_) => Redirect::to(&state.url("/silences")).into_response(),
        Err(e) => {
            let msg = format!("Not ended: {}", e.body["error"].as_str().unwrap_or("the silence could not be written"));
            let v = Viewer { user: Some(op.user().to_owned()), csrf: op.csrf.clone(), op: Some(op) };
            let r = render_silences(&state, &headers, &PageQuery::default(), v, &SilenceForm::default(), Some(msg)).await;
            with_status(finish(&state, r), e.status)
        }
    }
}
