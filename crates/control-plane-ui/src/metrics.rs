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

/// True when the client wants the classic text format: it names `text/plain` and not OpenMetrics
/// (Prometheus itself asks for OpenMetrics first; `*/*` gets OpenMetrics).
pub fn wants_text(accept: &str) -> bool {
    accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
}

/// OpenMetrics text → Prometheus text format 0.0.4: a counter family `x` (samples `x_total`)
/// gets its `# HELP`/`# TYPE` as `x_total`; `# UNIT` and `# EOF` are dropped. Samples are the same.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
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
    let write_errors = counters(&mut registry, "write_errors", "Writes into the data root that failed (ENOSPC, EIO, EROFS, ...), by daemon (from each heartbeat)");
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

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
