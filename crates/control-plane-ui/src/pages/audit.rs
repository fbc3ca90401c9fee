//! The audit log page: one day, newest first, filtered (admins only).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::api::Peer;
use crate::view;

use crate::AppState;

use super::view_models::{AuditRow, AuditT};
use super::{PageError, PageQuery, finish, message_page, respond, viewer};

#[derive(Debug, Deserialize, Default)]
pub(super) struct AuditPageQuery {
    pub(super) fragment: Option<String>,
    /// `YYYY-MM-DD`, UTC; today when absent.
    pub(super) day: Option<String>,
    pub(super) who: Option<String>,
    pub(super) what: Option<String>,
    pub(super) outcome: Option<String>,
    pub(super) target: Option<String>,
}

/// The audit page shows at most this many records (the newest).
pub(super) const AUDIT_ROWS: usize = 500;
/// The outcomes records carry (docs/users.md).
pub(super) const AUDIT_OUTCOMES: [&str; 5] = ["ok", "refused", "rate_limited", "conflict", "failed"];

/// One day of the audit log, newest first, filtered (admins only; the API is `GET /api/v1/audit`).
pub(super) async fn audit_page(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<AuditPageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        match &v.op {
            None => {
                return Ok(message_page(
                    &state,
                    StatusCode::FORBIDDEN,
                    "Not allowed",
                    "The audit log is for admins: log in as an admin to read it.",
                    &state.url("/login"),
                ));
            }
            Some(op) => {
                if let Err(why) = op.may_administer() {
                    return Ok(message_page(&state, StatusCode::FORBIDDEN, "Not allowed", &format!("The audit log is for admins: {why}."), &state.url("/")));
                }
            }
        }
        let today = chrono::Utc::now().date_naive();
        let day = match q.day.as_deref().filter(|d| !d.is_empty()) {
            None => today,
            Some(d) => {
                homelab_store::audit::parse_day(d).ok_or_else(|| PageError::Status(StatusCode::BAD_REQUEST, format!("{d:?} is not a day: use YYYY-MM-DD.")))?
            }
        };
        let pick = |o: &Option<String>| o.as_deref().map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned);
        let filter = homelab_store::audit::AuditFilter { who: pick(&q.who), what: pick(&q.what), outcome: pick(&q.outcome), target: pick(&q.target) };
        let root = state.root.clone();
        let read =
            tokio::task::spawn_blocking(move || root.read_audit(day, &Default::default())).await.map_err(anyhow::Error::new)?.map_err(anyhow::Error::new)?;
        let whos: std::collections::BTreeSet<String> = read.records.iter().map(|r| r.who.clone()).collect();
        let mut whats: std::collections::BTreeSet<String> = read.records.iter().map(|r| r.what.clone()).collect();
        whats.extend(filter.what.clone());
        let mut rows: Vec<AuditRow> = read.records.iter().filter(|r| filter.keeps(r)).map(|r| AuditRow { time: view::clock(r.time), r: r.clone() }).collect();
        rows.reverse();
        let matched = rows.len();
        rows.truncate(AUDIT_ROWS);
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        let link = |d: chrono::NaiveDate| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("day", &d.format("%Y-%m-%d").to_string());
            for (k, val) in [("who", &filter.who), ("what", &filter.what), ("outcome", &filter.outcome), ("target", &filter.target)] {
                if let Some(x) = val {
                    query.append_pair(k, x);
                }
            }
            format!("{}/audit?{}", state.base, query.finish())
        };
        let t = AuditT {
            base: &state.base,
            day: day.format("%Y-%m-%d").to_string(),
            is_today: day == today,
            who: text(&filter.who),
            what: text(&filter.what),
            target: text(&filter.target),
            whos: whos.into_iter().collect(),
            whats: whats.into_iter().collect(),
            outcomes: AUDIT_OUTCOMES.iter().map(|o| (*o, filter.outcome.as_deref() == Some(*o))).collect(),
            rows,
            matched,
            total: read.records.len(),
            skipped: read.skipped,
            prev_link: link(day - chrono::Duration::days(1)),
            next_link: (day < today).then(|| link(day + chrono::Duration::days(1))),
            clear_link: format!("{}/audit?day={}", state.base, day.format("%Y-%m-%d")),
        };
        let pq = PageQuery { fragment: q.fragment.clone(), ..Default::default() };
        respond(&state, &headers, &pq, "Audit", v, false, t.render())
    }
    .await;
    finish(&state, r)
}
