//! The readiness endpoint: `GET /health?check=a,b` runs the named checks now and answers 200
//! (all passed) or 503 (one failed, or a name it does not know: that entry's reason is
//! `Unknown check: <name>`, as load balancers configured for the seed endpoint expect).
//! Names are service names (all checks of that service), `disk` and `readonly_fs`; without
//! `check=` everything runs. A load balancer (HAProxy, OPNsense) can drain a node with it.
//!
//! A service whose every check is `alert:` is not checked here (its health comes from
//! Alertmanager, which the agent cannot see): its entry passes with `checked_locally: false`,
//! so a probe never drains a node for something the agent does not know. A service with local
//! checks and `alert:` checks runs its local ones.
//!
//! `GET /metrics` on the same port serves [`crate::metrics`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::Shared;
use crate::checks::service_verdict;
use crate::node;

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub passed: bool,
    pub reason: String,
    pub duration_ms: u64,
    /// `false` for a service whose health comes only from alerts (nothing ran); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_locally: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct HealthBody {
    pub status: &'static str,
    pub checks: Vec<CheckReport>,
    pub total_duration_ms: u64,
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().route("/health", axum::routing::get(health)).route("/metrics", axum::routing::get(metrics)).with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], shared.metrics.render())
}

/// The names `check=` may use, given the host file in force.
fn known_names(shared: &Shared) -> Vec<String> {
    let mut names: Vec<String> = shared.spec().map(|s| s.services.keys().cloned().collect()).unwrap_or_default();
    names.push("disk".into());
    names.push("readonly_fs".into());
    names
}

async fn health(State(shared): State<Arc<Shared>>, Query(query): Query<HashMap<String, String>>) -> impl IntoResponse {
    let started = Instant::now();
    let known = known_names(&shared);
    let requested: Vec<String> = match query.get("check") {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => known.clone(),
    };
    let futures = requested.iter().map(|name| {
        let shared = shared.clone();
        let is_known = known.contains(name);
        async move {
            let t = Instant::now();
            let (passed, reason, checked_locally) = if !is_known {
                (false, format!("Unknown check: {name}"), None)
            } else if shared.spec().and_then(|s| s.services.get(name).map(|s| s.alert_only())).unwrap_or(false) {
                (true, "not checked locally: its health comes from Alertmanager alerts (alert: checks)".to_owned(), Some(false))
            } else {
                let (passed, reason) = run_named(&shared, name).await;
                (passed, reason, None)
            };
            (is_known, CheckReport { name: name.clone(), passed, reason, duration_ms: ms(t.elapsed()), checked_locally })
        }
    });
    let results = futures_util::future::join_all(futures).await;
    let misconfigured = results.iter().any(|(known, _)| !known);
    let checks: Vec<CheckReport> = results.into_iter().map(|(_, r)| r).collect();
    let ready = !misconfigured && checks.iter().all(|c| c.passed);
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = HealthBody { status: if ready { "ready" } else { "not-ready" }, checks, total_duration_ms: ms(started.elapsed()) };
    (code, Json(body))
}

async fn run_named(shared: &Shared, name: &str) -> (bool, String) {
    match name {
        "disk" => {
            let spec = shared.spec().and_then(|s| s.disk.clone()).unwrap_or_default();
            match tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || node::disk_usage(&spec))).await {
                Ok(Ok(disks)) => {
                    let level = node::node_level(&disks);
                    let shown: Vec<String> = disks.iter().map(|d| format!("{} {:.1}% used ({:?})", d.mount, d.used_pct, d.level).to_lowercase()).collect();
                    (level != homelab_core::DiskLevel::High, shown.join(", "))
                }
                Ok(Err(e)) => (false, format!("disk check failed: {e}")),
                Err(_) => (false, "disk check timed out after 10s".into()),
            }
        }
        "readonly_fs" => match tokio::fs::read_to_string("/proc/mounts").await.map(|t| node::root_readonly(&t)) {
            Ok(Some(true)) => (false, "the root filesystem is mounted read-only".into()),
            Ok(Some(false)) => (true, "the root filesystem is writable".into()),
            Ok(None) => (false, "/ is not listed in /proc/mounts".into()),
            Err(e) => (false, format!("cannot read /proc/mounts: {e}")),
        },
        service => {
            let Some(spec) = shared.spec().and_then(|s| s.services.get(service).cloned()) else {
                return (false, format!("Unknown check: {service}"));
            };
            let results = shared.checker.run_service(service, &spec).await;
            let (verdict, detail) = service_verdict(&results);
            (verdict == crate::tracker::Verdict::Healthy, detail)
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
