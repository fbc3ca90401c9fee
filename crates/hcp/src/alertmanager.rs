//! `hcp alertmanager --listen ADDR --root DIR`: a webhook receiver for Prometheus Alertmanager.
//! `POST /api/v1/alertmanager` takes Alertmanager's webhook payload (version 4) and writes one
//! event per alert into the data root: a firing alert is a negative event
//! (`service_unhealthy`), a resolved one a positive event (`service_healthy`). The observer
//! folds them like any agent's events.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use homelab_core::alertmanager::{Mapped, Webhook, map_alert};
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct AlertmanagerArgs {
    #[command(flatten)]
    pub root: crate::RootArg,
    /// Address to listen on.
    #[arg(long, env = "ALERTMANAGER_LISTEN", default_value = "127.0.0.1:18181")]
    pub listen: SocketAddr,
    /// When set, requests need `Authorization: Bearer <token>`.
    #[arg(long, env = "ALERTMANAGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

struct AppState {
    root: DataRoot,
    token: Option<String>,
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
    let (mut written, mut skipped) = (0usize, Vec::new());
    for alert in &hook.alerts {
        match map_alert(alert, now) {
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
    let state = Arc::new(AppState { root, token });
    let app = axum::Router::new().route("/api/v1/alertmanager", axum::routing::post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "receiving Alertmanager webhooks on POST /api/v1/alertmanager");
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await.context("HTTP server failed")?;
    Ok(ExitCode::SUCCESS)
}
