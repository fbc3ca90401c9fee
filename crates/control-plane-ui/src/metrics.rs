//! `GET /metrics`: Prometheus/OpenMetrics text built from one snapshot.

use std::sync::atomic::AtomicU64;

use homelab_core::{ActionState, ServiceStatus, Timestamp};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn family(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

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

    let errors = family(&mut registry, "config_errors", "Configuration errors in force (hosts/ files that do not validate)");
    errors.get_or_create(&Vec::new()).set(s.config_errors.len() as i64);

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
