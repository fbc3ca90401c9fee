// tidy: long file: handlers and view models of every page not yet split.
//! Server-rendered pages (askama): dashboard, actions, one action, events, node, silences, the
//! audit log, login.
//! Every page answers `?fragment=1` with only its `<main>` content and an ETag, which the page
//! script polls once a second for live updates.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use homelab_core::action::{RunDefaults, RunPlan, RunWhere, RunWork, run_plan};
use homelab_core::desired::DesiredState;
use homelab_core::silence::Matcher;
use homelab_core::{Action, ActionState, ServiceStatus, Timestamp};
use serde::Deserialize;

use crate::api::{Lookup, Peer, lookup_action, not_modified};
use crate::auth::{Operator, SESSION_COOKIE};
use crate::history::History;
use crate::snapshot::{ActionLogEntry, ActionSummary, Drift, FileError, Snapshot, Summary, etag_of};
use crate::view;
use homelab_ops::{Command, Decision};

use crate::{AppState, ViewFleet};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/actions", get(actions))
        .route("/actions/{id}", get(action))
        .route("/actions/{id}/approve", post(form_approve))
        .route("/actions/{id}/reject", post(form_reject))
        .route("/actions/{id}/retry", post(form_retry))
        .route("/events", get(events))
        .route("/nodes/{node}", get(node))
        .route("/silences", get(silences_page).post(silence_add))
        .route("/silences/{id}/expire", post(silence_expire))
        .route("/audit", get(audit_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/auth/oidc/login", get(oidc_login))
        .route("/auth/oidc/callback", get(oidc_callback))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/app.js")) }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/app.css")) }))
        .layer(axum::middleware::map_response(security_headers))
}

/// Pages may not be framed (an Approve button under someone else's page is clickjacking) and
/// run only our own script.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    title: &'a str,
    /// The nav entry of this page (`dashboard`, `actions`, `events`, `silences`, `audit`), for
    /// `aria-current`.
    active: &'a str,
    base: &'a str,
    user: Option<String>,
    /// Shows the Audit entry.
    admin: bool,
    csrf: Option<String>,
    live: bool,
    /// The ETag of `body` as `?fragment=1` would answer it: live updates start from it, so
    /// an unchanged page is never swapped in again.
    etag: String,
    body: String,
}

/// Who is looking (for buttons and the CSRF token in forms).
struct Viewer {
    user: Option<String>,
    csrf: Option<String>,
    op: Option<Operator>,
}

#[derive(Debug, Deserialize, Default)]
struct PageQuery {
    fragment: Option<String>,
    node: Option<String>,
    state: Option<String>,
    service: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<usize>,
    /// Fills the silences form's target.
    target: Option<String>,
}

enum PageError {
    Refused,
    Status(StatusCode, String),
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = format!("{e:#}"), "page failed");
        PageError::Status(StatusCode::INTERNAL_SERVER_ERROR, "The data root could not be read; see the control-plane-ui log.".into())
    }
}

fn message_page(state: &AppState, status: StatusCode, heading: &str, message: &str, back: &str) -> Response {
    let body = MessageT { heading, message, back }.render().unwrap_or_default();
    let html = Layout { title: heading, active: "", base: &state.base, user: None, admin: false, csrf: None, live: false, etag: String::new(), body }
        .render()
        .unwrap_or_default();
    (status, axum::response::Html(html)).into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageT<'a> {
    heading: &'a str,
    message: &'a str,
    back: &'a str,
}

fn viewer(state: &AppState, headers: &HeaderMap, peer: Peer) -> Result<Viewer, PageError> {
    match state.auth.for_read(headers, peer.0) {
        Ok(Some(op)) => Ok(Viewer { user: Some(op.user().to_owned()), csrf: op.csrf.clone(), op: Some(op) }),
        Ok(None) => Ok(Viewer { user: None, csrf: None, op: None }),
        Err(_) => Err(PageError::Refused),
    }
}

/// Wraps page content: the whole page, or with `?fragment=1` only the content with an ETag.
/// A page with a form people fill in is not `live` (a swap would take what they typed).
fn respond(
    state: &AppState,
    headers: &HeaderMap,
    q: &PageQuery,
    title: &str,
    v: Viewer,
    live: bool,
    body: Result<String, askama::Error>,
) -> Result<Response, PageError> {
    let body = body.map_err(|e| anyhow::anyhow!("template: {e}"))?;
    if q.fragment.is_some() {
        let etag = etag_of(body.as_bytes());
        if not_modified(headers, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        return Ok(([(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache".into())], axum::response::Html(body)).into_response());
    }
    let active = match title.split(' ').next().unwrap_or("") {
        "Dashboard" | "Node" => "dashboard",
        "Actions" | "Action" => "actions",
        "Events" => "events",
        "Silences" => "silences",
        "Audit" => "audit",
        _ => "",
    };
    let etag = etag_of(body.as_bytes());
    let admin = v.op.as_ref().is_some_and(|op| op.may_administer().is_ok());
    let html = Layout { title, active, base: &state.base, user: v.user, admin, csrf: v.csrf, live, etag, body }
        .render()
        .map_err(|e| anyhow::anyhow!("template: {e}"))?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], axum::response::Html(html)).into_response())
}

fn finish(state: &AppState, r: Result<Response, PageError>) -> Response {
    match r {
        Ok(r) => r,
        Err(PageError::Refused) => Redirect::to(&state.url("/login")).into_response(),
        Err(PageError::Status(s, m)) => message_page(state, s, "Something went wrong", &m, &state.url("/")),
    }
}

struct DaemonRow {
    name: String,
    stopped: bool,
    last_loop: String,
    interval: String,
}

/// One service as the pages list it: from world state, or desired in hosts/ and never reported.
pub struct ServiceRow {
    node: String,
    name: String,
    pill: String,
    unhealthy: bool,
    reason: String,
    since: String,
    failures: u32,
    desired: bool,
    bar: String,
    /// "until 15:03 UTC (ends in 58 min)" (HTML) while a silence mutes it; filled on the node page.
    muted: String,
}

/// Unhealthy first, then never reported, then healthy.
fn service_rows(s: &Summary, desired: Option<&DesiredState>, h: &History, only_node: Option<&str>, now: Timestamp) -> Vec<ServiceRow> {
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
                    bar: view::bar_svg(&h.bars(node, name, now)),
                    muted: String::new(),
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
                        since: String::new(),
                        failures: 0,
                        desired: true,
                        bar: view::bar_svg(&h.bars(node, name, now)),
                        muted: String::new(),
                    },
                ));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.node.cmp(&b.1.node)).then_with(|| a.1.name.cmp(&b.1.name)));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// How many quarantined entries the dashboard card lists.
const DASHBOARD_QUARANTINE: usize = 5;
/// How many services the dashboard lists (the rest are on the node pages).
pub const DASHBOARD_SERVICES: usize = 200;
/// How many entries the dashboard's timeline shows.
const DASHBOARD_TIMELINE: usize = 12;

struct QuarantineRow {
    /// `events/<name>` (below quarantine/).
    name: String,
    /// The reason's first line, and the rest (the observer adds `(from events/...)`).
    reason: String,
    more: String,
    at: String,
    ago: String,
}

fn quarantine_rows(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> Vec<QuarantineRow> {
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

fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// One drift row as the pages show it: the file's fields plus what happens next in words.
struct DriftRow<'a> {
    d: &'a Drift,
    /// `remediation exhausted` for `remediation_exhausted`.
    decision_label: String,
    /// The headline of "what happens next" (HTML).
    next: String,
    since_html: String,
    until_rel: String,
    until_html: String,
    retryable: bool,
}

fn drift_rows<'a>(drift: impl Iterator<Item = &'a Drift>, s: &Summary, base: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<DriftRow<'a>> {
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
            let link = |id: &str| format!("<a class=\"id\" href=\"{base}/actions/{}\">{}</a>", view::esc(id), view::esc(id));
            let next = match (d.decision.as_str(), d.action_id.as_deref()) {
                ("action_created" | "already_active", Some(id)) => format!("{} {}", link(id), state_of(id).unwrap_or("proposed")),
                ("root_cause_elsewhere", _) => match &d.root_cause {
                    Some(rc) => format!(
                        "caused by <b>{}</b>: the fix goes there{}",
                        view::esc(rc),
                        d.action_id.as_deref().map(|a| format!(" ({})", link(a))).unwrap_or_default()
                    ),
                    None => "caused by a dependency".into(),
                },
                ("remediation_exhausted", _) => "restart and redeploy did not help: nothing more is proposed".into(),
                ("rejected_snoozed", _) => "rejected: not proposed again".into(),
                ("waiting_grace" | "waiting_fresh_world", _) => "waiting before proposing anything".into(),
                ("settling", _) => "an action just ended: waiting for it to settle".into(),
                ("flapping", _) => "flapping: waiting for it to hold".into(),
                ("node_unreachable", _) => "the node is not reporting: no action until it does".into(),
                ("silenced", _) => format!("muted: nothing is proposed, nobody is notified (<a href=\"{base}/silences\">silences</a>)"),
                (other, _) => view::esc(&other.replace('_', " ")),
            };
            DriftRow {
                d,
                decision_label: d.decision.replace('_', " "),
                next,
                since_html: d.since.as_deref().map(|t| view::time_text(t, now)).unwrap_or_default(),
                until_rel: until.map(|t| homelab_core::words::until(t, now)).unwrap_or_default(),
                until_html: until.map(|t| view::until_html(t, now)).unwrap_or_default(),
                retryable: d.retryable(),
            }
        })
        .collect()
}

/// The drift section's note on where its rows come from ("" when from a current report).
fn drift_note(s: &Summary) -> String {
    s.drift_report.message.clone()
}

/// "as of 12 s ago" for the drift report shown.
fn drift_at(s: &Summary, now: chrono::DateTime<chrono::Utc>) -> String {
    s.drift_report.generated_at.as_deref().and_then(parse_time).map(|t| view::time_ago(t, now)).unwrap_or_default()
}

/// A node at a glance.
struct NodeCard {
    name: String,
    pill: String,
    tone: &'static str,
    last_seen: String,
    disk: String,
    agent: String,
    desired: bool,
    healthy: usize,
    unhealthy: usize,
    unreported: usize,
}

fn node_cards(s: &Summary, desired: Option<&DesiredState>, now: Timestamp) -> Vec<NodeCard> {
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
                last_seen: n.last_seen.as_deref().map(|t| view::time_text(t, now)).unwrap_or_else(|| "never".into()),
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

/// One line of a timeline: when, a pill, and what (HTML).
struct TimelineRow {
    at: Timestamp,
    when: String,
    pill: String,
    text: String,
}

fn action_line(e: &ActionLogEntry, base: &str) -> (String, String) {
    let target = e.service.as_ref().map_or_else(|| e.node.clone(), |s| format!("{}/{s}", e.node));
    let link = format!("<a class=\"id\" href=\"{base}/actions/{id}\">{id}</a>", id = view::esc(&e.id));
    let tone = match e.state {
        ActionState::Completed if e.verified == Some(false) => "warn",
        ActionState::Completed => "ok",
        ActionState::Failed => "bad",
        ActionState::Pending => "ask",
        ActionState::Running => "run",
        ActionState::Approved => "wait",
        _ => "none",
    };
    let by = if e.by == "supervisor" || e.by == "executor" { String::new() } else { format!(" by <b>{}</b>", view::esc(&e.by)) };
    let verified = match (e.state, e.verified) {
        (ActionState::Completed, Some(true)) => ", healthy after it",
        (ActionState::Completed, Some(false)) => ", not healthy after it",
        _ => "",
    };
    let note = e.note.as_deref().map(|n| format!(" <span class=\"muted\">— {}</span>", view::esc(n))).unwrap_or_default();
    (view::pill(tone, &format!("action {}", e.verb())), format!("{} {} of {}{by}{verified}{note}", view::esc(e.kind.as_str()), link, view::esc(&target)))
}

fn dashboard_timeline(snap: &Snapshot, h: &History, base: &str, now: Timestamp) -> Vec<TimelineRow> {
    let day_ago = now - chrono::Duration::hours(24);
    let mut rows: Vec<TimelineRow> = Vec::new();
    for i in h.incidents(now).into_iter().filter(|i| i.start >= day_ago) {
        let target = format!("<a href=\"{base}/events?node={n}&amp;service={s}\">{n}/{s}</a>", n = view::esc(&i.node), s = view::esc(&i.service));
        let text = if i.ongoing {
            format!("{target} unhealthy ({}), still failing", view::esc(&i.reason))
        } else {
            format!("{target} unhealthy ({}), last failure {}", view::esc(&i.reason), view::time_ago(i.last_bad, now))
        };
        rows.push(TimelineRow { at: i.start, when: view::time_ago(i.start, now), pill: view::pill("bad", "incident"), text });
    }
    for e in snap.action_log.iter().take_while(|e| e.at >= day_ago).take(DASHBOARD_TIMELINE * 2) {
        let (pill, text) = action_line(e, base);
        rows.push(TimelineRow { at: e.at, when: view::time_ago(e.at, now), pill, text });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.at));
    rows.truncate(DASHBOARD_TIMELINE);
    rows
}

/// A pending action on the dashboard: what it will do, one sentence.
struct PendingCard {
    id: String,
    title: String,
    will: String,
    created: String,
}

/// The executor settings in force: its heartbeat's when it reports them, else this process's.
fn run_defaults(state: &AppState, snap: &Snapshot) -> RunDefaults {
    let mut d = state.run_defaults.clone();
    if let Some(Some(hb)) = snap.heartbeats.get("executor") {
        if let Some(t) = hb.extra.get("action_timeout_secs").and_then(|v| v.as_u64()) {
            d.action_timeout = std::time::Duration::from_secs(t);
        }
        if let Some(t) = hb.extra.get("verify_timeout_secs").and_then(|v| v.as_u64()) {
            d.verify_timeout = std::time::Duration::from_secs(t);
        }
    }
    d
}

fn action_title(kind: homelab_core::ActionType, node: &str, service: Option<&str>) -> String {
    let what = match kind {
        homelab_core::ActionType::ContainerRestart => "Restart",
        homelab_core::ActionType::Redeploy => "Redeploy",
        homelab_core::ActionType::DiskCleanup => "Disk cleanup on",
    };
    format!("{what} {}", service.map_or_else(|| node.to_owned(), |s| format!("{node}/{s}")))
}

/// The history of the last 24 h, refreshed when due (bounded work; see [`crate::history`]).
async fn history(state: &Arc<AppState>) -> Arc<History> {
    if state.history.due() {
        let st = state.clone();
        let _ = tokio::task::spawn_blocking(move || st.history.refresh(&st.root, chrono::Utc::now())).await;
    }
    state.history.get()
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardT<'a> {
    base: &'a str,
    csrf: Option<String>,
    s: &'a Summary,
    errors: &'a [FileError],
    drift_state: &'a str,
    drift_note: String,
    drift_at: String,
    world_at: String,
    headline: String,
    headline_tone: &'static str,
    /// Services desired in hosts/ (or in world state, when more).
    services_total: usize,
    daemons: Vec<DaemonRow>,
    nodes: Vec<NodeCard>,
    pending: Vec<PendingCard>,
    drift: Vec<DriftRow<'a>>,
    services: Vec<ServiceRow>,
    services_more: usize,
    timeline: Vec<TimelineRow>,
    quarantine: Vec<QuarantineRow>,
    /// Quarantined entries not listed on the card.
    quarantine_more: usize,
    /// No mute column here (the node pages have it).
    mute: bool,
    may_mute: bool,
}

async fn dashboard(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let r = async {
        let v = viewer(&state, &headers, peer)?;
        let snap = state.snapshot().await?;
        let h = history(&state).await;
        let now = chrono::Utc::now();
        let daemons = snap
            .heartbeats
            .iter()
            .map(|(name, hb)| match hb {
                Some(hb) => DaemonRow {
                    name: name.clone(),
                    stopped: hb.is_stopped(now),
                    last_loop: view::time_ago(hb.last_loop_at, now),
                    interval: format!("every {} s", hb.interval_secs),
                },
                None => DaemonRow { name: name.clone(), stopped: true, last_loop: "unreadable heartbeat".into(), interval: String::new() },
            })
            .collect();
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
        let c = &s.counts;
        let problems = c.services_unhealthy + c.nodes_stale;
        let (headline, headline_tone) = if !pending.is_empty() {
            (
                format!("{} waiting for your approval", if pending.len() == 1 { "1 action is".to_owned() } else { format!("{} actions are", pending.len()) }),
                "ask",
            )
        } else if problems > 0 || c.drift > 0 {
            (
                format!(
                    "{} unhealthy, {} of {} nodes not reporting; the supervisor is on it (see Drift)",
                    plural(c.services_unhealthy, "service"),
                    c.nodes_stale,
                    c.nodes
                ),
                "bad",
            )
        } else if c.services == 0 && c.services_desired == 0 {
            ("Nothing reported yet: start the agents (see the node pages)".to_owned(), "none")
        } else {
            (format!("All good: {} healthy on {}", plural(c.services_healthy, "service"), plural(c.nodes_up, "node")), "ok")
        };
        let t = DashboardT {
            base: &state.base,
            csrf: v.csrf.clone(),
            s,
            errors: &s.errors,
            drift_state: s.drift_report.state,
            drift_note: drift_note(s),
            drift_at: drift_at(s, now),
            world_at: s.world_generated_at.as_deref().map(|t| view::time_text(t, now)).unwrap_or_else(|| "never".into()),
            headline,
            headline_tone,
            services_total: s.counts.services_desired.max(s.counts.services),
            daemons,
            nodes: node_cards(s, snap.desired.as_ref(), now),
            pending,
            drift: drift_rows(s.drift.iter(), s, &state.base, now),
            services,
            services_more,
            timeline: dashboard_timeline(&snap, &h, &state.base, now),
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

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn action_title_of(a: &ActionSummary) -> String {
    let kind = match a.kind.as_str() {
        "container_restart" => homelab_core::ActionType::ContainerRestart,
        "redeploy" => homelab_core::ActionType::Redeploy,
        _ => homelab_core::ActionType::DiskCleanup,
    };
    action_title(kind, &a.node, a.service.as_deref())
}

/// An action row on the actions and node pages.
struct ActionRow<'a> {
    a: &'a ActionSummary,
    title: String,
    pill: String,
    updated: String,
}

fn action_rows<'a>(list: impl Iterator<Item = &'a ActionSummary>, now: Timestamp) -> Vec<ActionRow<'a>> {
    list.map(|a| ActionRow { a, title: action_title_of(a), pill: view::state_pill(a.state), updated: view::time_text(&a.updated_at, now) }).collect()
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    /// (value, selected)
    nodes: Vec<(String, bool)>,
    states: Vec<(String, bool)>,
    sections: Vec<(&'static str, &'static str, Vec<ActionRow<'a>>)>,
}

async fn actions(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
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

/// "What approving will run", ready for the template.
struct PlanView {
    node: String,
    /// `local` or `SSH`.
    via: &'static str,
    ssh: String,
    /// `containers`, `labels`, `compose`, `prune` or `none`.
    work: &'static str,
    items: Vec<String>,
    command: String,
    dir: String,
    describe: String,
    timeout: u64,
    verify: String,
    blocked: Option<String>,
}

fn plan_view(p: &RunPlan) -> PlanView {
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
struct ActionT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    /// The supervisor's drift row about this action's target now (world/drift.json).
    drift: Vec<DriftRow<'a>>,
    a: &'a Action,
    title: String,
    tone: &'static str,
    icon: &'static str,
    created: String,
    target: String,
    plan: PlanView,
    /// A warning about the executor (stopped, dry run), empty when none.
    executor_note: String,
    evidence: Vec<(String, String, String)>,
    events_link: String,
    running_since: String,
    result_times: String,
    history: Vec<(String, String, String, String)>,
}

async fn action(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
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
        let history =
            a.history.iter().map(|x| (view::time_ago(x.at, now), view::state_pill(x.state), x.by.clone(), x.note.clone().unwrap_or_default())).collect();
        let about = |d: &&Drift| d.action_id.as_deref() == Some(a.id.as_str()) || (d.node == a.node && d.service == a.service && d.kind != "node_unreachable");
        let drift = drift_rows(snap.summary.drift.iter().filter(about).take(1), &snap.summary, &state.base, now);
        let host = snap.desired.as_ref().and_then(|d| d.hosts.get(&a.node));
        let plan = run_plan(&a, host, &run_defaults(&state, &snap));
        let executor_note = match snap.heartbeats.get("executor") {
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
        };
        let evidence = h
            .recent(&a.node, a.service.as_deref())
            .into_iter()
            .map(|e| (view::time_ago(e.ts, now), view::pill(view::event_tone(&e.kind), &e.kind), e.detail.unwrap_or_default()))
            .collect();
        let mut events_link = format!("{}/events?node={}", state.base, a.node);
        if let Some(sv) = &a.service {
            events_link.push_str(&format!("&service={sv}"));
        }
        let running_since =
            if a.state == ActionState::Running { a.history.last().map(|x| view::time_ago(x.at, now)).unwrap_or_default() } else { String::new() };
        let result_times = a
            .result
            .as_ref()
            .and_then(|r| Some((r.started_at?, r.finished_at?)))
            .map(|(s, f)| format!("ran {} for {} s", view::time_ago(s, now), f.signed_duration_since(s).num_seconds().max(0)))
            .unwrap_or_default();
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
            result_times,
            a: &a,
            history,
        };
        respond(&state, &headers, &q, &format!("Action {id}"), v, true, t.render())
    }
    .await;
    finish(&state, r)
}

/// One line of the events timeline.
struct EventRow {
    when: String,
    pill: String,
    node: String,
    service: String,
    text: String,
}

/// The action entries the type filter offers, as `action:<verb>`.
const ACTION_VERBS: [&str; 7] = ["proposed", "approved", "rejected", "started", "completed", "failed", "cancelled"];

#[derive(Template)]
#[template(path = "events.html")]
struct EventsT<'a> {
    base: &'a str,
    node: Option<String>,
    service: Option<String>,
    /// (value, label, selected) per select.
    node_opts: Vec<(String, bool)>,
    service_opts: Vec<(String, bool)>,
    event_types: Vec<(String, bool)>,
    action_types: Vec<(String, String, bool)>,
    rows: Vec<EventRow>,
    page: usize,
    prev_link: String,
    next_link: Option<String>,
}

async fn events(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
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
        enum Item<'x> {
            Ev(&'x homelab_core::Event),
            Act(&'x ActionLogEntry),
        }
        let mut merged: Vec<(Timestamp, Item)> = tl.events.iter().map(|e| (e.ts, Item::Ev(e))).chain(acts.iter().map(|e| (e.at, Item::Act(e)))).collect();
        merged.sort_by_key(|m| std::cmp::Reverse(m.0));
        let more = merged.len() > (page + 1) * per || tl.more;
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
                    text: view::esc(e.detail.as_deref().unwrap_or("")),
                },
                Item::Act(e) => {
                    let (pill, text) = action_line(e, &state.base);
                    EventRow { when: view::time_ago(at, now), pill, node: e.node.clone(), service: e.service.clone().unwrap_or_default(), text }
                }
            })
            .collect();
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

#[derive(Template)]
#[template(path = "node.html")]
struct NodeT<'a> {
    base: &'a str,
    csrf: Option<String>,
    errors: &'a [FileError],
    drift_state: &'a str,
    drift_note: String,
    drift_at: String,
    name: &'a str,
    card: Option<NodeCard>,
    /// Never reported and desired: how to get an agent reporting.
    install: bool,
    ui_url: String,
    ssh: String,
    drift: Vec<DriftRow<'a>>,
    services: Vec<ServiceRow>,
    rows: Vec<ActionRow<'a>>,
    /// The services table has a mute column (this page); the viewer may mute this node.
    mute: bool,
    may_mute: bool,
    /// "until …" (HTML) while a silence mutes the whole node.
    node_muted: String,
}

async fn node(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(name): Path<String>, Query(q): Query<PageQuery>) -> Response {
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
                row.muted = view::until_html(m.end(), now);
            }
        }
        let node_muted = homelab_core::silence::active_match(&muting, &name, None, None, now).map(|m| view::until_html(m.end(), now)).unwrap_or_default();
        let fleet = ViewFleet(Some(snap.clone()));
        let may_mute =
            v.csrf.is_some() && v.op.as_ref().is_some_and(|op| homelab_ops::permit_on_node(&op.actor(None), &fleet, Command::SilenceAdd, &name).is_ok());
        let t = NodeT {
            base: &state.base,
            csrf: v.csrf.clone(),
            errors: &s.errors,
            drift_state: s.drift_report.state,
            drift_note: drift_note(s),
            drift_at: drift_at(s, now),
            name: &name,
            card,
            install,
            ui_url: format!("{proto}://{host_header}{}", state.base),
            ssh: host
                .and_then(|h| h.ssh.as_ref())
                .map(|t| format!("{}{}", t.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(), t.host))
                .unwrap_or_else(|| format!("root@{name}")),
            drift: drift_rows(s.drift.iter().filter(|d| d.node == name), s, &state.base, now),
            services,
            rows,
            mute: true,
            may_mute,
            node_muted,
        };
        respond(&state, &headers, &q, &format!("Node {name}"), v, true, t.render())
    }
    .await;
    finish(&state, r)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginT<'a> {
    base: &'a str,
    message: Option<&'a str>,
    /// Single sign-on configured.
    sso: bool,
    /// Why single sign-on cannot be used now (the last discovery failed).
    sso_unavailable: Option<String>,
}

fn login_response(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let oidc = state.auth.oidc.as_ref();
    let body = LoginT { base: &state.base, message, sso: oidc.is_some(), sso_unavailable: oidc.and_then(|o| o.unavailable()) }.render().unwrap_or_default();
    let html = Layout { title: "Log in", active: "", base: &state.base, user: None, admin: false, csrf: None, live: false, etag: String::new(), body }
        .render()
        .unwrap_or_default();
    (status, axum::response::Html(html)).into_response()
}

async fn login_page(State(state): State<Arc<AppState>>) -> Response {
    login_response(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    token: String,
}

fn behind_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let path = if state.base.is_empty() { "/" } else { state.base.as_str() };
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

async fn login(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if crate::auth::check_same_origin(&headers).is_err() {
        return login_response(&state, StatusCode::FORBIDDEN, Some("Cross-site login refused."));
    }
    // A local user's password, or the bootstrap UI token (auth.rs: limits, audit, sessions).
    match state.auth.password_login(peer.0, f.user.trim(), &f.token).await {
        Ok(id) => {
            let cookie = session_cookie(&state, &headers, &id, state.auth.session_ttl().as_secs());
            ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
        }
        Err(e) => {
            let mut r = login_response(&state, e.status(), Some(&e.to_string()));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    }
}

/// The pending-login cookie: sent back on the provider's redirect (a cross-site top-level GET,
/// hence SameSite=Lax), only to the callback's path, for 10 minutes.
fn pending_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{}={value}; Path={}/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", crate::oidc::PENDING_COOKIE, state.base)
}

/// "Log in with single sign-on": state, nonce and PKCE verifier are kept here, the browser goes
/// to the provider. A provider that cannot be reached leaves the person on the login page with
/// the reason.
async fn oidc_login(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Response {
    match state.auth.oidc_begin(peer.0).await {
        Ok((url, cookie)) => {
            let mut r = Redirect::to(&url).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&pending_cookie(&state, &headers, &cookie, crate::oidc::PENDING_TTL.as_secs())).expect("cookie is ASCII"),
            );
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(crate::auth::OidcError::Refused(why)) => {
            login_response(&state, StatusCode::SERVICE_UNAVAILABLE, Some(&format!("Single sign-on is unavailable: {why}")))
        }
        Err(e) => {
            let mut r = login_response(&state, e.status(), Some(&format!("Single sign-on failed: {e}")));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    }
}

#[derive(Template)]
#[template(path = "oidc_done.html")]
struct OidcDoneT<'a> {
    base: &'a str,
    user: &'a str,
}

/// The provider's redirect back. On success the session cookie is set on a small page that
/// moves on to the dashboard itself: the session cookie is SameSite=Strict, and a redirect
/// answering a cross-site navigation would arrive without it.
async fn oidc_callback(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    q: Result<Query<crate::auth::OidcCallback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query that does not parse is a refused login like any other (audited, counted).
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let pending = crate::auth::cookie(&headers, crate::oidc::PENDING_COOKIE);
    let clear_pending = pending_cookie(&state, &headers, "", 0);
    let mut r = match state.auth.oidc_callback(peer.0, &q, pending.as_deref()).await {
        Ok((id, user)) => {
            let html = OidcDoneT { base: &state.base, user: &user }.render().unwrap_or_default();
            let mut r = axum::response::Html(html).into_response();
            let cookie = session_cookie(&state, &headers, &id, state.auth.session_ttl().as_secs());
            r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
            r
        }
        Err(e) => {
            let mut r = message_page(&state, e.status(), "Single sign-on failed", &format!("Single sign-on failed: {e}"), &state.url("/login"));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    };
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&clear_pending).expect("cookie is ASCII"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn logout(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        return message_page(&state, r.status(), "Not logged out", &r.to_string(), &state.url("/"));
    }
    state.auth.logout(&headers);
    let cookie = session_cookie(&state, &headers, "", 0);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
}

async fn form_decide(state: Arc<AppState>, peer: Peer, headers: HeaderMap, id: String, f: CsrfForm, decision: Decision) -> Response {
    let back = state.url("/actions");
    let op: Operator = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
    };
    if op.csrf.is_none() {
        // A bearer token in a form post: fine, it cannot come from another site.
    }
    match crate::api::apply_decision_from(&state, &op, peer.0, &id, decision).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(api) => {
            let msg = api.body["error"].as_str().unwrap_or("nothing changed").to_owned();
            let mut r = message_page(&state, api.status, "Nothing changed", &msg, &back);
            if api.status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECS));
            }
            r
        }
    }
}

async fn form_approve(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    form_decide(state, peer, headers, id, f, Decision::APPROVE).await
}

async fn form_reject(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let reason = f.reason.clone();
    form_decide(state, peer, headers, id, f, Decision::Reject { reason }).await
}

async fn form_retry(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let back = state.url("/");
    let op: Operator = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
    };
    match crate::api::apply_retry_from(&state, &op, peer.0, &id).await {
        Ok(a) => Redirect::to(&state.url(&format!("/actions/{}", a.id))).into_response(),
        Err(e) => {
            let api = e;
            let msg = api.body["error"].as_str().unwrap_or("not proposed again").to_owned();
            let mut r = message_page(&state, api.status, "Not proposed again", &msg, &back);
            if api.status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECS));
            }
            r
        }
    }
}

/// One silence as the page lists it.
struct SilenceRow {
    id: String,
    mutes: String,
    reason: String,
    by: String,
    created: String,
    /// Active: "until 15:03 UTC (ends in 58 min)"; ended: when, relative (HTML).
    when: String,
    expired_by: String,
    can_expire: bool,
}

/// What the add form holds: what was typed, sent back with an error.
#[derive(Debug, Deserialize, Default)]
struct SilenceForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    target: String,
    #[serde(default)]
    action_type: String,
    /// One of [`DURATIONS`] from the select.
    #[serde(default)]
    duration: String,
    /// Typed; wins over the select when filled.
    #[serde(default)]
    duration_custom: String,
    #[serde(default)]
    reason: String,
    /// `node`: a mute button of the node page; go back there.
    #[serde(default)]
    from: String,
}

/// The durations the add form offers (value, label).
const DURATIONS: [(&str, &str); 4] = [("30m", "30 minutes"), ("1h", "1 hour"), ("4h", "4 hours"), ("1d", "1 day")];

#[derive(Template)]
#[template(path = "silences.html")]
struct SilencesT<'a> {
    base: &'a str,
    /// Set when this viewer gets the add form (logged in with a browser credential, not a viewer).
    csrf: Option<String>,
    /// Why there is no form ("" when there is one).
    no_form: String,
    error: Option<String>,
    form: &'a SilenceForm,
    durations: Vec<(&'static str, &'static str, bool)>,
    action_types: Vec<(&'static str, bool)>,
    targets: Vec<String>,
    active: Vec<SilenceRow>,
    ended: Vec<SilenceRow>,
}

/// The silences page: active and recently ended silences, and the add form (with `error` and
/// what was typed after a refused add).
async fn render_silences(
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
            when: if is_active { view::until_html(s.end(), now) } else { view::time_ago(s.end(), now) },
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

async fn silences_page(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
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
async fn silence_add(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<SilenceForm>) -> Response {
    let op = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
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
async fn silence_expire(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let op = match state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        Ok(op) => op,
        Err(r) => return message_page(&state, r.status(), "Not allowed", &r.to_string(), &state.url("/login")),
    };
    match crate::silences::end(&state, &op, peer.0, &id).await {
        Ok(_) => Redirect::to(&state.url("/silences")).into_response(),
        Err(e) => {
            let msg = format!("Not ended: {}", e.body["error"].as_str().unwrap_or("the silence could not be written"));
            let v = Viewer { user: Some(op.user().to_owned()), csrf: op.csrf.clone(), op: Some(op) };
            let r = render_silences(&state, &headers, &PageQuery::default(), v, &SilenceForm::default(), Some(msg)).await;
            with_status(finish(&state, r), e.status)
        }
    }
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    if r.status().is_success() {
        *r.status_mut() = status;
    }
    r
}

#[derive(Debug, Deserialize, Default)]
struct AuditPageQuery {
    fragment: Option<String>,
    /// `YYYY-MM-DD`, UTC; today when absent.
    day: Option<String>,
    who: Option<String>,
    what: Option<String>,
    outcome: Option<String>,
    target: Option<String>,
}

/// The audit page shows at most this many records (the newest).
const AUDIT_ROWS: usize = 500;
/// The outcomes records carry (docs/users.md).
const AUDIT_OUTCOMES: [&str; 5] = ["ok", "refused", "rate_limited", "conflict", "failed"];

struct AuditRow {
    time: String,
    r: homelab_store::audit::AuditRecord,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditT<'a> {
    base: &'a str,
    day: String,
    is_today: bool,
    who: String,
    what: String,
    target: String,
    whos: Vec<String>,
    whats: Vec<String>,
    outcomes: Vec<(&'static str, bool)>,
    rows: Vec<AuditRow>,
    /// Records of the day that pass the filters, and of the day at all.
    matched: usize,
    total: usize,
    skipped: usize,
    prev_link: String,
    next_link: Option<String>,
    clear_link: String,
}

/// One day of the audit log, newest first, filtered (admins only; the API is `GET /api/v1/audit`).
async fn audit_page(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Query(q): Query<AuditPageQuery>) -> Response {
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
        let mut rows: Vec<AuditRow> = read
            .records
            .iter()
            .filter(|r| filter.keeps(r))
            .map(|r| AuditRow {
                time: format!("<time datetime=\"{}\" title=\"{}\">{}</time>", homelab_core::rfc3339(r.time), view::utc(r.time), r.time.format("%H:%M:%S")),
                r: r.clone(),
            })
            .collect();
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
