//! The actions list, one action's page, and the Approve, Reject, Cancel and Retry forms (through
//! `crate::api::apply_decision_from` and `apply_retry_from`, the operations layer).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use homelab_core::ActionState;
use homelab_core::action::run_plan;

use crate::api::{Lookup, Peer, lookup_action};
use crate::snapshot::{ActionSummary, Drift};
use crate::view::{self, When};
use homelab_ops::Decision;

use crate::AppState;

use super::view_models::{ActionT, ActionsT, EvidenceRow, HistoryRow, action_rows, action_title, drift_rows, executor_note, plan_view};
use super::{IdPost, PageError, PageQuery, finish, history, refused_page, respond, run_defaults, viewer};

pub(super) async fn actions(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let snap = state.snapshot().await?;
        let s = &snap.summary;
        let now = chrono::Utc::now();
        let fnode = q.node.clone().unwrap_or_default();
        let fstate = q.state.clone().unwrap_or_default();
        let keep = |a: &&ActionSummary| (fnode.is_empty() || a.node == fnode) && (fstate.is_empty() || a.state.as_str() == fstate);
        let pick = |list: &'_ [ActionSummary]| -> Vec<ActionSummary> { list.iter().filter(|a| keep(a)).cloned().collect() };
        let lists = [
            ("Pending", "pending", pick(&s.actions.pending)),
            ("Approved", "approved", pick(&s.actions.approved)),
            ("Running", "running", pick(&s.actions.running)),
            ("Recently finished", "recent", pick(&s.actions.recent)),
        ];
        let sections = lists.iter().map(|(t, id, l)| (*t, *id, action_rows(l.iter(), now))).collect();
        let mut nodes: Vec<String> = s.nodes.keys().cloned().collect();
        for a in s.actions.pending.iter().chain(&s.actions.approved).chain(&s.actions.running).chain(&s.actions.recent) {
            if !nodes.contains(&a.node) {
                nodes.push(a.node.clone());
            }
        }
        let t = ActionsT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &s.errors,
            nodes: nodes
                .into_iter()
                .map(|n| {
                    let sel = n == fnode;
                    (n, sel)
                })
                .collect(),
            states: ActionState::ALL.iter().map(|s| (s.as_str().to_owned(), s.as_str() == fstate)).collect(),
            sections,
        };
        respond(&state, &headers, &q, "Actions", v, true, t.render())
    }
    .await;
    finish(&state, r)
}

pub(super) async fn action(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        if homelab_core::validate_action_id(&id).is_err() {
            return Err(PageError::Status(StatusCode::BAD_REQUEST, "That is not a valid action id.".into()));
        }
        let found = match lookup_action(&state, &id).await.map_err(|e| anyhow::anyhow!("{}", e.body["error"]))? {
            Lookup::Found(found) => found,
            Lookup::Missing(q) if q.is_empty() => return Err(PageError::Status(StatusCode::NOT_FOUND, format!("There is no action {id}."))),
            Lookup::Missing(q) => {
                let files: Vec<String> = q.iter().map(|e| format!("{} ({})", e.file, crate::snapshot::one_line(&e.reason))).collect();
                return Err(PageError::Status(
                    StatusCode::NOT_FOUND,
                    format!("There is no readable action {id}: its file was quarantined: {}.", files.join("; ")),
                ));
            }
            Lookup::Unreadable(reason) => {
                return Err(PageError::Status(
                    StatusCode::CONFLICT,
                    format!("The file of action {id} does not parse: {reason}. It stays listed under the unreadable files until it is fixed or quarantined."),
                ));
            }
        };
        let snap = state.snapshot().await?;
        let h = history(&state).await;
        let now = chrono::Utc::now();
        let a = found.action;
        let history = a
            .history
            .iter()
            .map(|x| HistoryRow {
                when: view::time_ago(x.at, now),
                pill: view::state_pill(x.state),
                by: x.by.clone(),
                note: x.note.clone().unwrap_or_default(),
            })
            .collect();
        let about = |d: &&Drift| d.action_id.as_deref() == Some(a.id.as_str()) || (d.node == a.node && d.service == a.service && d.kind != "node_unreachable");
        let drift = drift_rows(snap.summary.drift.iter().filter(about).take(1), &snap.summary, now);
        let host = snap.desired.as_ref().and_then(|d| d.hosts.get(&a.node));
        let plan = run_plan(&a, host, &run_defaults(&state, &snap));
        let executor_note = executor_note(&snap, now);
        let evidence = h
            .recent(&a.node, a.service.as_deref())
            .into_iter()
            .map(|e| EvidenceRow {
                when: view::time_ago(e.ts, now),
                pill: view::pill(view::event_tone(&e.kind), &e.kind),
                detail: e.detail.unwrap_or_default(),
            })
            .collect();
        let mut events_link = format!("{}/events?node={}", state.base, a.node);
        if let Some(sv) = &a.service {
            events_link.push_str(&format!("&service={sv}"));
        }
        let running_since =
            if a.state == ActionState::Running { a.history.last().map(|x| view::time_ago(x.at, now)).unwrap_or_default() } else { When::default() };
        let ran = a
            .result
            .as_ref()
            .and_then(|r| Some((r.started_at?, r.finished_at?)))
            .map(|(s, f)| (view::time_ago(s, now), f.signed_duration_since(s).num_seconds().max(0)));
        let t = ActionT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &snap.summary.errors,
            drift,
            title: action_title(a.kind, &a.node, a.service.as_deref()),
            tone: view::state_tone(a.state),
            icon: view::tone_icon(view::state_tone(a.state)),
            created: view::time_ago(a.created_at, now),
            target: a.service.as_ref().map_or_else(|| a.node.clone(), |s| format!("{}/{s}", a.node)),
            plan: plan_view(&plan),
            executor_note,
            evidence,
            events_link,
            running_since,
            ran,
            a: &a,
            history,
        };
        respond(&state, &headers, &q, &format!("Action {id}"), v, true, t.render())
    }
    .await;
    finish(&state, r)
}

/// Approve or reject (a bearer token in a form post is fine too: it cannot come from another site).
async fn form_decide(state: Arc<AppState>, post: IdPost, decision: Decision) -> Response {
    match crate::api::apply_decision_from(&state, &post.op, post.peer, &post.id, decision).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(api) => refused_page(&state, api, "Nothing changed", "nothing changed", &state.url("/actions")),
    }
}

pub(super) async fn form_approve(State(state): State<Arc<AppState>>, post: IdPost) -> Response {
    form_decide(state, post, Decision::APPROVE).await
}

pub(super) async fn form_reject(State(state): State<Arc<AppState>>, post: IdPost) -> Response {
    let reason = post.form.reason.clone();
    form_decide(state, post, Decision::Reject { reason }).await
}

pub(super) async fn form_cancel(State(state): State<Arc<AppState>>, post: IdPost) -> Response {
    let reason = post.form.reason.clone();
    form_decide(state, post, Decision::Cancel { reason }).await
}

pub(super) async fn form_retry(State(state): State<Arc<AppState>>, post: IdPost) -> Response {
    match crate::api::apply_retry_from(&state, &post.op, post.peer, &post.id).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(api) => refused_page(&state, api, "Not proposed again", "not proposed again", &state.url("/")),
    }
}
