//! `GET /metrics`: Prometheus/OpenMetrics text built from one snapshot.

use std::sync::atomic::AtomicU64;

use homelab_core::{ActionState, ServiceStatus, Timestamp};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for clients that ask for `text/plain` only (and
/// `promtool check metrics`).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// True when the client gets the classic text format: whenever it does not name OpenMetrics.
/// Prometheus asks for OpenMetrics by name and gets it; `curl` (`*/*`, or no Accept at all)
/// gets the format `promtool check metrics` reads, so `curl /metrics | promtool check metrics`
/// is clean (it used to get OpenMetrics, where a counter's HELP names `x`, not `x_total`).
pub fn wants_text(accept: &str) -> bool {
    !accept.contains("application/openmetrics-text")
}

/// OpenMetrics text → Prometheus text format 0.0.4: a counter family `x` (samples `x_total`)
/// gets its `# HELP`/`# TYPE` as `x_total`; `# UNIT` and `# EOF` are dropped. Samples are the same.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

type Labels = Vec<(String, String)>;

fn family(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

/// A counter family: the `_total` suffix is added by the encoder.
fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    registry.register(name, help, f.clone());
    f
}

/// The observer's event outcomes as counted in its heartbeat (`counters.<key>`).
pub const OBSERVER_OUTCOMES: [&str; 4] = ["applied", "duplicate", "late", "unknown_type"];

/// At most this many `reason` series are taken from the observer's heartbeat.
const MAX_REASONS: usize = 64;

fn l(k: &str, v: &str) -> Labels {
    vec![(k.to_owned(), v.to_owned())]
}

/// Renders the metrics of a snapshot; heartbeat ages are taken at `now`.
pub fn render(snap: &Snapshot, now: Timestamp) -> Result<String, std::fmt::Error> {
    render_with(snap, &Extra::default(), now)
}

/// [`render`] with what only the running UI knows ([`Extra`]).
pub fn render_with(snap: &Snapshot, extra: &Extra<'_>, now: Timestamp) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("homelab");
    let s = &snap.summary;

    let services = family(&mut registry, "services", "Services in world state, by status");
    for status in [ServiceStatus::Healthy, ServiceStatus::Unhealthy] {
        let n = s.services.values().flat_map(|m| m.values()).filter(|x| x.status == status).count();
        let name = if status == ServiceStatus::Healthy { "healthy" } else { "unhealthy" };
        services.get_or_create(&l("status", name)).set(n as i64);
    }

    let nodes = family(&mut registry, "nodes", "Nodes, by status");
    for status in ["up", "stale"] {
        nodes.get_or_create(&l("status", status)).set(s.nodes.values().filter(|n| n.status == status).count() as i64);
    }

    let drift = family(&mut registry, "drift", "Current drift, by kind");
    for kind in ["missing_service", "unhealthy_service", "disk_pressure", "node_unreachable"] {
        drift.get_or_create(&l("kind", kind)).set(s.drift.iter().filter(|d| d.kind == kind).count() as i64);
    }

    let decisions = family(&mut registry, "drift_decisions", "Current drift, by what happens next (world/drift.json's decision)");
    for d in &s.drift {
        decisions.get_or_create(&l("decision", &d.decision)).inc();
    }

    let actions = family(&mut registry, "actions", "Action files on disk, by state");
    for state in ActionState::ALL {
        actions.get_or_create(&l("state", state.as_str())).set(s.counts.actions.get(state.as_str()).copied().unwrap_or(0) as i64);
    }

    let approvals = family(&mut registry, "approvals", "Approvals recorded in the histories of actions on disk, by channel");
    for channel in ["ui", "api", "telegram", "policy", "cli"] {
        approvals.get_or_create(&l("channel", channel)).set(0);
    }
    for (channel, n) in &snap.approvals_by_channel {
        approvals.get_or_create(&l("channel", channel)).set(*n as i64);
    }

    let ages = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    registry.register("daemon_heartbeat_age_seconds", "Seconds since each daemon last finished a loop", ages.clone());
    let stopped = family(&mut registry, "daemon_stopped", "1 when a daemon's heartbeat is older than three intervals");
    for (name, hb) in &snap.heartbeats {
        match hb {
            Some(hb) => {
                let age = now.signed_duration_since(hb.last_loop_at).num_milliseconds().max(0) as f64 / 1000.0;
                ages.get_or_create(&l("daemon", name)).set(age);
                stopped.get_or_create(&l("daemon", name)).set(hb.is_stopped(now) as i64);
            }
            None => {
                stopped.get_or_create(&l("daemon", name)).set(1);
            }
        }
    }

    // Counters the daemons keep in their heartbeat files. They restart from zero when a daemon
    // restarts (unless it persists them), which Prometheus' rate() treats as a counter reset.
    let observer = snap.heartbeats.get("observer").and_then(Option::as_ref);
    let outcomes = counters(&mut registry, "observer_events", "Event files the observer handled, by outcome (from its heartbeat)");
    let overflows = counters(&mut registry, "observer_watch_overflows", "inotify queue overflows the observer saw (each triggers a rescan)");
    let quarantined = counters(&mut registry, "observer_events_quarantined", "Event files the observer moved to quarantine/events/, by reason code");
    if let Some(hb) = observer {
        for outcome in OBSERVER_OUTCOMES {
            if let Some(n) = hb.counters.get(outcome) {
                outcomes.get_or_create(&l("outcome", outcome)).inc_by(*n);
            }
        }
        if let Some(n) = hb.counters.get("overflows") {
            overflows.get_or_create(&Vec::new()).inc_by(*n);
        }
        if let Some(by_reason) = hb.extra.get("quarantined_by_reason").and_then(|v| v.as_object()) {
            for (reason, n) in by_reason.iter().take(MAX_REASONS) {
                if let Some(n) = n.as_u64() {
                    quarantined.get_or_create(&l("reason", reason)).inc_by(n);
                }
            }
        }
    }
    let write_errors =
        counters(&mut registry, "write_errors", "Writes into the data root that failed (ENOSPC, EIO, EROFS, ...), by daemon (from each heartbeat)");
    for (name, hb) in &snap.heartbeats {
        if let Some(n) = hb.as_ref().and_then(|hb| hb.counters.get("write_errors")) {
            write_errors.get_or_create(&l("daemon", name)).inc_by(*n);
        }
    }
    let qfiles = family(&mut registry, "quarantine_files", "Entries in quarantine/<kind>/ (reason files not counted)");
    for kind in homelab_store::quarantine::QUARANTINE_KINDS {
        qfiles.get_or_create(&l("kind", kind)).set(snap.quarantine_by_kind.get(kind).copied().unwrap_or(0) as i64);
    }

    let errors = family(&mut registry, "config_errors", "Configuration errors in force (hosts/ files that do not validate)");
    errors.get_or_create(&Vec::new()).set(s.config_errors.len() as i64);
    let unreadable = family(&mut registry, "unreadable_files", "Files of the data root that do not parse or cannot be read now (errors in /summary)");
    unreadable.get_or_create(&Vec::new()).set(s.errors.len() as i64);

    extra_families(&mut registry, snap, extra, now);

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// What the UI process counts itself (since it started): ingest and webhook requests and the
/// events they wrote. Kept in [`crate::AppState`]; counters restart at zero with the process.
#[derive(Debug, Default)]
pub struct UiCounters {
    /// (endpoint, HTTP status) → requests.
    requests: std::sync::Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
    /// (source, outcome) → events.
    events: std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl UiCounters {
    /// One answered request to `endpoint` (`events` or `alertmanager`).
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((endpoint, status)).or_default() += 1;
    }

    /// `n` events from `source` (`agent` or `alertmanager`) with `outcome` (`written`,
    /// `duplicate`, `skipped`).
    pub fn events(&self, source: &'static str, outcome: &'static str, n: u64) {
        if n > 0 {
            *self.events.lock().unwrap_or_else(|e| e.into_inner()).entry((source, outcome)).or_default() += n;
        }
    }

    /// Records an ingest or webhook answer: its status, and the counts its JSON body reports
    /// (`written`, `duplicates`, `skipped`).
    pub fn answered(&self, endpoint: &'static str, source: &'static str, status: u16, body: Option<&serde_json::Value>) {
        self.request(endpoint, status);
        if let Some(b) = body {
            self.events(source, "written", b["written"].as_u64().unwrap_or(0));
            self.events(source, "duplicate", b["duplicates"].as_u64().unwrap_or(0));
            self.events(source, "skipped", b["skipped"].as_array().map_or(0, |a| a.len() as u64));
        }
    }
}

/// Action files on disk by (state, type), read from the file names of the action folders (the
/// type is the id's prefix). A gauge: archiving or deleting old files lowers it.
pub fn action_files(root: &homelab_store::DataRoot) -> std::collections::BTreeMap<(&'static str, &'static str), u64> {
    let mut out = std::collections::BTreeMap::new();
    for state in ActionState::ALL {
        let Ok(names) = homelab_store::list_names(&root.action_dir(state)) else { continue };
        for name in names.iter().filter(|n| n.ends_with(".json")) {
            let kind = action_type_of(name);
            *out.entry((state.as_str(), kind)).or_default() += 1;
        }
    }
    out
}

/// The action type an id (or file name) starts with.
pub fn action_type_of(id: &str) -> &'static str {
    use homelab_core::ActionType;
    [ActionType::ContainerRestart, ActionType::Redeploy, ActionType::DiskCleanup]
        .into_iter()
        .find(|t| id.starts_with(&format!("{}-", t.as_str().replace('_', "-"))))
        .map_or("unknown", |t| t.as_str())
}

/// What the handler adds to a snapshot's metrics.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    pub counters: Option<&'a UiCounters>,
    pub action_files: std::collections::BTreeMap<(&'static str, &'static str), u64>,
    /// Logins and bearer tokens, by outcome (auth.rs).
    pub auth: Option<&'a crate::auth::AuthCounters>,
}

/// `GET /metrics` for the UI: the snapshot's metrics, the process's own counters and the action
/// files by type (listed off the async runtime).
pub async fn render_for(state: &std::sync::Arc<crate::AppState>, snap: &Snapshot, now: Timestamp) -> anyhow::Result<String> {
    let root = state.root.clone();
    let action_files = tokio::task::spawn_blocking(move || action_files(&root)).await?;
    Ok(render_with(snap, &Extra { counters: Some(&state.counters), action_files, auth: Some(&state.auth.counters) }, now)?)
}

/// Counters taken from a heartbeat's `counters`: (heartbeat key, label value).
const SUPERVISOR_ENDED: [(&str, &str); 1] = [("actions_cancelled", "cancelled")];
const EXECUTOR_ENDED: [(&str, &str); 3] = [("actions_completed", "completed"), ("actions_failed", "failed"), ("actions_interrupted", "interrupted")];
/// Telegram's counters: (key, outcome).
const TELEGRAM_SENT: [(&str, &str); 4] =
    [("messages_sent", "sent"), ("messages_edited", "edited"), ("follow_ups_sent", "follow_up"), ("api_failures", "failed")];

fn extra_families(registry: &mut Registry, snap: &Snapshot, extra: &Extra<'_>, now: Timestamp) {
    let _ = now;
    let build = family(registry, "build_info", "The control plane's version (the UI's build); always 1");
    build.get_or_create(&l("version", env!("CARGO_PKG_VERSION"))).set(1);

    let stamps = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    registry.register("daemon_heartbeat_timestamp_seconds", "When each daemon last finished a loop (Unix time, from its heartbeat file)", stamps.clone());
    let started = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    registry.register("daemon_start_time_seconds", "When each daemon started (Unix time, from its heartbeat file)", started.clone());
    for (name, hb) in &snap.heartbeats {
        if let Some(hb) = hb {
            stamps.get_or_create(&l("daemon", name)).set(hb.last_loop_at.timestamp_millis() as f64 / 1000.0);
            started.get_or_create(&l("daemon", name)).set(hb.started_at.timestamp_millis() as f64 / 1000.0);
        }
    }

    // Monotonic while the daemon runs (from its heartbeat; a restart is a counter reset).
    let hb_counter = |daemon: &str, key: &str| snap.heartbeats.get(daemon).and_then(Option::as_ref).and_then(|hb| hb.counters.get(key).copied());
    let created = counters(registry, "actions_created", "Actions the supervisor wrote (since it started; from its heartbeat)");
    if let Some(n) = hb_counter("supervisor", "actions_created") {
        created.get_or_create(&Vec::new()).inc_by(n);
    }
    let ended = counters(
        registry,
        "actions_ended",
        "Actions that ended, by outcome: completed/failed/interrupted by the executor, cancelled by the supervisor (since each started; from heartbeats)",
    );
    for (daemon, keys) in [("supervisor", &SUPERVISOR_ENDED[..]), ("executor", &EXECUTOR_ENDED[..])] {
        for (key, outcome) in keys {
            if let Some(n) = hb_counter(daemon, key) {
                ended.get_or_create(&l("outcome", outcome)).inc_by(n);
            }
        }
    }
    let notifications =
        counters(registry, "notifications", "Telegram Bot API calls, by outcome: sent, edited, follow_up, failed (since the task started; from its heartbeat)");
    for (key, outcome) in TELEGRAM_SENT {
        if let Some(n) = hb_counter("telegram", key) {
            notifications.get_or_create(&l("outcome", outcome)).inc_by(n);
        }
    }

    let files = family(registry, "action_files", "Action files on disk, by state folder and action type (a gauge: old files may be archived)");
    for ((state, kind), n) in &extra.action_files {
        files.get_or_create(&vec![("state".to_owned(), (*state).to_owned()), ("type".to_owned(), (*kind).to_owned())]).set(*n as i64);
    }

    if let Some(a) = extra.auth {
        let attempts = counters(
            registry,
            "auth_attempts",
            "Password logins, single sign-on logins and operator bearer tokens, by kind (login, oidc, token) and outcome (ok, refused, rate_limited) (since the UI started)",
        );
        for (kind, outcome, n) in a.snapshot() {
            attempts.get_or_create(&vec![("kind".to_owned(), kind.to_owned()), ("outcome".to_owned(), outcome.to_owned())]).inc_by(n);
        }
    }
    if let Some(c) = extra.counters {
        let requests = counters(
            registry,
            "ingest_requests",
            "Requests to the ingest endpoints (events from agents, alerts from Alertmanager), by endpoint and HTTP status (since the UI started)",
        );
        for ((endpoint, status), n) in c.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            requests.get_or_create(&vec![("endpoint".to_owned(), (*endpoint).to_owned()), ("code".to_owned(), status.to_string())]).inc_by(*n);
        }
        let events = counters(
            registry,
            "ingest_events",
            "Events taken in over HTTP, by source (agent, alertmanager) and outcome (written, duplicate, skipped) (since the UI started)",
        );
        for source in ["agent", "alertmanager"] {
            let _ = events.get_or_create(&vec![("source".to_owned(), source.to_owned()), ("outcome".to_owned(), "written".to_owned())]);
        }
        for ((source, outcome), n) in c.events.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            events.get_or_create(&vec![("source".to_owned(), (*source).to_owned()), ("outcome".to_owned(), (*outcome).to_owned())]).inc_by(*n);
        }
    }
}
