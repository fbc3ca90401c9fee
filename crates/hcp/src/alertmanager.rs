//! `hcp alertmanager --listen ADDR --root DIR`: a webhook receiver for Prometheus Alertmanager.
//! `POST /api/v1/alertmanager` takes Alertmanager's webhook payload (version 4) and writes one
//! event per alert into the data root: a firing alert is a negative event
//! (`service_unhealthy`), a resolved one a positive event (`service_healthy`). The observer
//! folds them like any agent's events.
//!
//! With `--hosts`, an alert that an `alert:` check of hosts/ matches becomes that service's
//! event; other alerts are mapped by their labels (`ALERT_NODE_LABELS`, `ALERT_SERVICE_LABELS`),
//! as in the UI's receiver. Every event carries `data.source: "alertmanager"`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use homelab_core::alertmanager::{Mapped, Mapping, Webhook, map_webhook};
use homelab_core::desired::{DesiredState, HostFile};
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct AlertmanagerArgs {
    #[arg(skip)]
    pub root: crate::RootArg,
    /// Address to listen on.
    #[arg(long, env = "ALERTMANAGER_LISTEN", default_value = "127.0.0.1:18181")]
    pub listen: SocketAddr,
    /// When set, requests need `Authorization: Bearer <token>`.
    #[arg(long, env = "ALERTMANAGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// hosts/: alerts matching an `alert:` check go to that check's service.
    #[arg(long, env = "HOSTS_DIR", value_name = "DIR")]
    pub hosts: Option<PathBuf>,
    /// Labels naming an alert's node, tried in order (comma-separated; URLs and host:port are cut to the host).
    #[arg(long, env = "ALERT_NODE_LABELS", default_value = "node,instance")]
    pub node_labels: String,
    /// Labels naming an alert's service, tried in order (comma-separated).
    #[arg(long, env = "ALERT_SERVICE_LABELS", default_value = "service,container,job")]
    pub service_labels: String,
}

struct AppState {
    root: DataRoot,
    token: Option<String>,
    mapping: Mapping,
    hosts: Option<PathBuf>,
    /// The last good version of each host file (a broken file never reads as "no checks").
    last_good: Mutex<BTreeMap<String, HostFile>>,
}

impl AppState {
    /// hosts/ as it is now (each broken file in its last good version), when `--hosts` is set.
    fn desired(&self) -> Option<DesiredState> {
        let dir = self.hosts.as_ref()?;
        let mut last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        match homelab_store::hosts::load_hosts(dir, &last) {
            Ok(load) => {
                for e in &load.errors {
                    tracing::debug!(error = %e, "invalid hosts file; its last good version stays in force");
                }
                *last = load.in_force;
                Some(load.desired)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the hosts folder; alerts are mapped by their labels only");
                None
            }
        }
    }
}

async fn receive(State(st): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(token) = &st.token {
        let want = format!("Bearer {token}");
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is required (ALERTMANAGER_TOKEN)\n").into_response();
        }
    }
    let hook: Webhook = match serde_json::from_slice(&body) {
        Ok(h) => h,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an Alertmanager webhook body: {e}\n")).into_response(),
    };
    let now = chrono::Utc::now();
    let desired = st.desired();
    let (mut written, mut skipped) = (0usize, Vec::new());
    for mapped in map_webhook(&hook, &st.mapping, desired.as_ref(), now) {
        match mapped {
            Mapped::Event(ev) => match st.root.write_event(&ev) {
                Ok(_) => written += 1,
                Err(e) => {
                    tracing::error!(error = %e, "cannot write an alert event");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "cannot write the event; see the log\n").into_response();
                }
            },
            Mapped::Skipped(why) => {
                tracing::warn!(why = %why, "alert skipped");
                skipped.push(why);
            }
        }
    }
    axum::Json(serde_json::json!({ "written": written, "skipped": skipped })).into_response()
}

pub async fn run(args: AlertmanagerArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let root = DataRoot::open(&args.root.root).with_context(|| format!("cannot open the data root {}", args.root.root.display()))?;
    let token = args.token.filter(|t| !t.trim().is_empty());
    let mapping = Mapping::parse(Some(&args.node_labels), Some(&args.service_labels)).map_err(|e| anyhow::anyhow!(e))?;
    let state = Arc::new(AppState { root, token, mapping, hosts: args.hosts, last_good: Mutex::default() });
    let app = axum::Router::new().route("/api/v1/alertmanager", axum::routing::post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "receiving Alertmanager webhooks on POST /api/v1/alertmanager");
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await.context("HTTP server failed")?;
    Ok(ExitCode::SUCCESS)
}
