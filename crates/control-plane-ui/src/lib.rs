//! The operator UI and HTTP API (`control-plane-ui`, port 18180): server-rendered pages,
//! approvals, `/summary` for mirrors, agent event ingest, Prometheus metrics.
//!
//! It reads the data root through `homelab_store`. Operator commands (approve, reject, retry,
//! silences, check-now) are the operations layer's (`homelab_ops`, through [`AppState::run_op`]):
//! this crate only turns a request into an `Actor` and the outcome into an answer. It writes
//! itself only what agents hand it (events, from agents and Alertmanager, and the removal of
//! served check-now requests), sessions and login records; the notifier and Telegram running in this process keep their
//! own state and outbox under `state/`. A GET changes nothing.

pub mod access;
pub mod api;
pub mod auth;
pub mod history;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod silences;
pub mod snapshot;
pub mod timeline;
pub mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use homelab_ops::Ops;
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

use crate::snapshot::{BuildOptions, Snapshot};

fn parse_duration(s: &str) -> Result<Duration, String> {
    homelab_core::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Flags and environment of `control-plane-ui`. Its `Debug` hides the tokens.
#[derive(Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: homelab_store::daemon::CommonArgs,
    /// The desired-state folder (`hosts/<node>/services.yaml`), for drift and config errors.
    #[arg(long, env = "HOSTS_DIR")]
    pub hosts: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:18180")]
    pub listen: SocketAddr,
    /// Path prefix when served behind a reverse proxy under a sub-path (e.g. `/homelab`).
    #[arg(long, env = "BASE_PATH", default_value = "")]
    pub base_path: String,
    /// Bearer token for the API and the login form; generated into state/ui_token when unset.
    #[arg(long, env = "UI_TOKEN", hide_env_values = true)]
    pub ui_token: Option<String>,
    /// When set, reads (/summary, pages, API GETs, metrics) need this token, the UI token, a
    /// session or a trusted proxy user.
    #[arg(long, env = "SUMMARY_TOKEN", hide_env_values = true)]
    pub summary_token: Option<String>,
    /// Addresses or networks whose proxy user header is believed (comma-separated).
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// The header a trusted reverse proxy puts the authenticated user name in.
    #[arg(long, env = "TRUSTED_USER_HEADER", default_value = "X-authentik-username")]
    pub trusted_user_header: String,
    /// Agent ingest tokens as JSON `{"<node>": "<token>"}`, in addition to
    /// state/secrets/agent_tokens.json.
    #[arg(long, env = "AGENT_TOKENS", hide_env_values = true)]
    pub agent_tokens: Option<String>,
    /// Bearer token Alertmanager sends to `POST /api/v1/alertmanager` (the UI token works too).
    #[arg(long, env = "ALERTMANAGER_TOKEN", hide_env_values = true)]
    pub alertmanager_token: Option<String>,
    /// Labels naming an alert's node, tried in order (URLs and host:port are cut to the host).
    #[arg(long, env = "ALERT_NODE_LABELS", default_value = "node,instance")]
    pub alert_node_labels: String,
    /// Labels naming an alert's service, tried in order.
    #[arg(long, env = "ALERT_SERVICE_LABELS", default_value = "service,container,job")]
    pub alert_service_labels: String,
    /// A node with no event for this long is shown as stale.
    #[arg(long, env = "NODE_STALE_AFTER", default_value = "90s", value_parser = parse_duration)]
    pub node_stale_after: Duration,
    /// How old the cached view may get before a request rebuilds it (file changes rebuild at once).
    #[arg(long, env = "UI_REFRESH", default_value = "1s", value_parser = parse_duration)]
    pub refresh: Duration,
    /// Ingest refuses (422) an event dated more than this ahead of this host's clock.
    #[arg(long, env = "MAX_CLOCK_SKEW", default_value = "5m", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// Ingest refuses (422) an event older than this many days (the observer's retention: it
    /// would be deleted before it could count).
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 14)]
    pub event_retention_days: u32,
    /// Users, sessions, proxy roles and the audit log (docs/users.md).
    #[command(flatten)]
    pub access: auth::AccessConfig,
    /// The executor's `ACTION_TIMEOUT`, shown on an action's page as what approving will run
    /// (the executor's heartbeat wins when it reports one).
    #[arg(long, env = "ACTION_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub action_timeout: Duration,
    /// The executor's `VERIFY_TIMEOUT`, shown the same way.
    #[arg(long, env = "VERIFY_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub verify_timeout: Duration,
    /// The executor's `EXECUTOR_PRUNE_LABEL`, shown the same way.
    #[arg(long, env = "EXECUTOR_PRUNE_LABEL")]
    pub prune_label: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("root", &self.common.root)
            .field("hosts", &self.hosts)
            .field("listen", &self.listen)
            .field("base_path", &self.base_path)
            .field("ui_token", &hidden(&self.ui_token))
            .field("summary_token", &hidden(&self.summary_token))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("trusted_user_header", &self.trusted_user_header)
            .field("agent_tokens", &hidden(&self.agent_tokens))
            .field("alertmanager_token", &hidden(&self.alertmanager_token))
            .field("node_stale_after", &self.node_stale_after)
            .field("refresh", &self.refresh)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("event_retention_days", &self.event_retention_days)
            .field("access", &self.access)
            .field("action_timeout", &self.action_timeout)
            .field("verify_timeout", &self.verify_timeout)
            .field("prune_label", &self.prune_label)
            .finish()
    }
}

impl Config {
    /// A configuration for tests and embedding: the defaults, with the given root and hosts.
    pub fn new(root: impl Into<PathBuf>, hosts: Option<PathBuf>) -> Config {
        Config {
            common: homelab_store::daemon::CommonArgs { root: root.into() },
            hosts,
            listen: "127.0.0.1:18180".parse().unwrap(),
            base_path: String::new(),
            ui_token: None,
            summary_token: None,
            trusted_proxies: String::new(),
            trusted_user_header: "X-authentik-username".into(),
            agent_tokens: None,
            alertmanager_token: None,
            alert_node_labels: "node,instance".into(),
            alert_service_labels: "service,container,job".into(),
            node_stale_after: Duration::from_secs(90),
            refresh: Duration::from_secs(1),
            max_clock_skew: homelab_core::event::DEFAULT_MAX_CLOCK_SKEW,
            event_retention_days: 14,
            access: auth::AccessConfig::default(),
            action_timeout: Duration::from_secs(300),
            verify_timeout: Duration::from_secs(120),
            prune_label: None,
        }
    }
}

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    pub root: DataRoot,
    pub hosts: Option<PathBuf>,
    /// `""` or `/prefix` (no trailing slash).
    pub base: String,
    pub auth: Arc<auth::Auth>,
    pub env_agent_tokens: BTreeMap<String, String>,
    pub alertmanager_token: Option<String>,
    /// How alert labels name a node and a service (`ALERT_NODE_LABELS`, `ALERT_SERVICE_LABELS`).
    pub alert_mapping: homelab_core::alertmanager::Mapping,
    /// Ingest and webhook counters for `/metrics`.
    pub counters: metrics::UiCounters,
    pub node_stale_after: Duration,
    pub refresh: Duration,
    /// Clock sanity at ingest: how far ahead an event may be, and how old.
    pub max_clock_skew: Duration,
    pub max_event_age: Duration,
    /// The executor settings an action's "what will run" depends on.
    pub run_defaults: homelab_core::action::RunDefaults,
    /// The last 24 h of events per service (history bars, evidence), read incrementally.
    pub history: history::HistoryCache,
    cache: RwLock<Option<Arc<Snapshot>>>,
    /// The last good copy of each file the view reads (see [`snapshot::LastGood`]).
    last_good: Arc<std::sync::Mutex<snapshot::LastGood>>,
    dirty: AtomicBool,
    build_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Opens the data root, settles the UI token (generating it when unset) and parses the rest.
    pub fn new(config: &Config) -> anyhow::Result<AppState> {
        let root = DataRoot::open(&config.common.root).with_context(|| format!("cannot open data root {}", config.common.root.display()))?;
        let ui_token = match config.ui_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => t.to_owned(),
            None => {
                let path = root.display_path(homelab_store::Doc::UiToken);
                let (token, created) = root.read_or_create_ui_token(auth::random_token).with_context(|| format!("cannot read or create {}", path.display()))?;
                if created {
                    tracing::info!(file = %path.display(), "UI_TOKEN is not set: generated a token into this file (mode 0600); use it as bearer token or login password");
                } else {
                    tracing::info!(file = %path.display(), "UI_TOKEN is not set: using the token kept in this file");
                }
                token
            }
        };
        let trusted = auth::parse_proxies(&config.trusted_proxies).map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES: {e}"))?;
        let header: axum::http::HeaderName = config
            .trusted_user_header
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| anyhow::anyhow!("TRUSTED_USER_HEADER {:?} is not a header name", config.trusted_user_header))?;
        let env_agent_tokens = match &config.agent_tokens {
            Some(json) if !json.trim().is_empty() => {
                serde_json::from_str(json).map_err(|e| anyhow::anyhow!("AGENT_TOKENS must be JSON {{\"<node>\": \"<token>\"}}: {e}"))?
            }
            _ => BTreeMap::new(),
        };
        let base = normalize_base(&config.base_path)?;
        let summary_token = config.summary_token.clone().filter(|t| !t.trim().is_empty());
        let auth = Arc::new(auth::Auth::new(ui_token, summary_token, trusted, header).with_access(root.clone(), &config.access)?);
        Ok(AppState {
            root,
            hosts: config.hosts.clone(),
            base,
            auth,
            env_agent_tokens,
            alertmanager_token: config.alertmanager_token.clone().filter(|t| !t.trim().is_empty()),
            alert_mapping: homelab_core::alertmanager::Mapping::parse(Some(&config.alert_node_labels), Some(&config.alert_service_labels))
                .map_err(|e| anyhow::anyhow!(e))?,
            counters: metrics::UiCounters::default(),
            node_stale_after: config.node_stale_after,
            refresh: config.refresh,
            max_clock_skew: config.max_clock_skew,
            max_event_age: Duration::from_secs(u64::from(config.event_retention_days) * 86_400),
            run_defaults: homelab_core::action::RunDefaults {
                action_timeout: config.action_timeout,
                verify_timeout: config.verify_timeout,
                prune_label: config.prune_label.clone().filter(|l| !l.trim().is_empty()),
            },
            history: history::HistoryCache::default(),
            cache: RwLock::new(None),
            last_good: Arc::default(),
            dirty: AtomicBool::new(true),
            build_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Marks the cached view out of date (a file changed, or this process changed something).
    pub fn invalidate(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        if self.dirty.load(Ordering::SeqCst) {
            return None;
        }
        let cached = self.cache.read().unwrap().clone()?;
        let age = chrono::Utc::now().signed_duration_since(cached.built_at).to_std().unwrap_or_default();
        (age < self.refresh).then_some(cached)
    }

    /// The current view: the cached one while fresh, else one rebuild shared by every waiting
    /// request.
    pub async fn snapshot(self: &Arc<Self>) -> anyhow::Result<Arc<Snapshot>> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let _guard = self.build_lock.lock().await;
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        self.dirty.store(false, Ordering::SeqCst);
        let me = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let opts = BuildOptions { hosts: me.hosts.as_deref(), node_stale_after: me.node_stale_after };
            // A panicking build (a bug) must not poison the memory of every later build.
            let mut last = me.last_good.lock().unwrap_or_else(|p| p.into_inner());
            Snapshot::build(&me.root, &opts, &mut last, chrono::Utc::now())
        })
        .await;
        match built {
            Ok(s) => {
                let s = Arc::new(s);
                *self.cache.write().unwrap() = Some(s.clone());
                Ok(s)
            }
            Err(e) => {
                self.invalidate();
                Err(anyhow::Error::new(e).context("cannot build the view of the data root"))
            }
        }
    }

    /// `base` + `path`, for links and redirects.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn normalize_base(s: &str) -> anyhow::Result<String> {
    let t = s.trim().trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let t = if t.starts_with('/') { t.to_owned() } else { format!("/{t}") };
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.')) || t.contains("..") || t.contains("//") {
        anyhow::bail!("BASE_PATH {s:?} must be a plain path like /homelab");
    }
    Ok(t)
}

/// Node groups and checked services as the view's desired state has them (the last good
/// version of a broken file), for the operations layer's permission rule and check-now.
pub(crate) struct ViewFleet(pub(crate) Option<Arc<Snapshot>>);

impl homelab_ops::Fleet for ViewFleet {
    fn groups_of(&self, node: &str) -> Vec<String> {
        self.0.as_ref().and_then(|s| s.desired.as_ref()).map(|d| d.groups_of(node)).unwrap_or_default()
    }

    fn checks_service(&self, node: &str, service: &str) -> Option<bool> {
        // The UI knows desired state or nothing: unknown counts as "not checked".
        Some(self.0.as_ref().and_then(|s| s.desired.as_ref()).and_then(|d| d.checks_service(node, service)).unwrap_or(false))
    }
}

impl AppState {
    /// The operations layer over this data root, with node groups from the current view.
    pub async fn ops(self: &Arc<Self>) -> Ops {
        let view = match self.snapshot().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read desired state for node groups");
                None
            }
        };
        Ops::new(self.root.clone()).with_fleet(Arc::new(ViewFleet(view))).with_audit_retention(self.auth.audit_retention_days)
    }

    /// Runs an operator command of the operations layer off the async runtime (it fsyncs) and
    /// marks the view out of date.
    pub async fn run_op<T: Send + 'static>(self: &Arc<Self>, op: impl FnOnce(&Ops) -> T + Send + 'static) -> T {
        let ops = self.ops().await;
        let done = tokio::task::spawn_blocking(move || op(&ops)).await;
        self.invalidate();
        done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// The whole HTTP surface, mounted under `BASE_PATH`.
pub fn router(state: Arc<AppState>) -> Router {
    let inner = api::routes().merge(silences::routes()).merge(openapi::routes()).merge(pages::routes()).with_state(state.clone());
    let app = if state.base.is_empty() {
        inner
    } else {
        // A nested router answers `/prefix` but not `/prefix/`; send the latter home too.
        let home = state.base.clone();
        Router::new()
            .nest(&state.base, inner)
            .route(&format!("{}/", state.base), axum::routing::get(move || async move { axum::response::Redirect::permanent(&home) }))
    };
    // Unknown paths and axum's own plain-text rejections (413 over the body limit, 405, a bad
    // query) answer JSON `{"error": …}` like every other error.
    app.fallback(api::not_found).layer(axum::middleware::map_response(api::json_errors)).layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Runs the UI until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = Arc::new(AppState::new(&config)?);
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, base_path = %state.base, "control-plane-ui listening");
    run_on(state, listener, shutdown).await
}

/// Serves on an already bound listener (tests and `hcp up` bind port 0 and read the address).
pub async fn run_on(state: Arc<AppState>, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(watch_changes(state.clone(), shutdown.clone()));

    // Single sign-on: discover the provider now, in the background; a provider that is down
    // only makes the login page say so (and the next login click tries again).
    if let Some(oidc) = state.auth.oidc.clone() {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = oidc.discover() => {}
                _ = stop.cancelled() => {}
            }
        });
    }
    let mut app = router(state.clone());
    // Telegram approvals run next to the UI when TELEGRAM_BOT_TOKEN is set; presses are
    // commands of the same operations layer as every other channel (`telegram:<user id>`).
    match homelab_telegram::TelegramConfig::from_env() {
        None => {}
        Some(Err(e)) => anyhow::bail!("Telegram approvals are misconfigured: {e}"),
        Some(Ok(cfg)) => {
            // Presses read hosts/ at the moment of the press for the node's groups.
            let mut ops = Ops::new(state.root.clone()).with_audit_retention(state.auth.audit_retention_days);
            if let Some(h) = &state.hosts {
                ops = ops.with_fleet(Arc::new(homelab_ops::HostsDir(h.clone())));
            }
            let stop = shutdown.clone();
            match cfg.mode {
                homelab_telegram::Mode::Polling => {
                    tracing::info!("Telegram approvals on (long polling)");
                    tasks.spawn(async move {
                        if let Err(e) = homelab_telegram::run(cfg, ops, stop).await {
                            tracing::error!(error = %format!("{e:#}"), "Telegram approvals stopped");
                        }
                    });
                }
                homelab_telegram::Mode::Webhook => {
                    let (hook, webhook) = homelab_telegram::webhook_router(&cfg)?;
                    app = if state.base.is_empty() { app.merge(hook) } else { app.merge(Router::new().nest(&state.base, hook)) };
                    tracing::info!(path = %format!("{}{}", state.base, homelab_telegram::WEBHOOK_PATH), "Telegram approvals on (webhook)");
                    tasks.spawn(async move {
                        if let Err(e) = homelab_telegram::run_webhook(cfg, ops, webhook, stop).await {
                            tracing::error!(error = %format!("{e:#}"), "Telegram approvals stopped");
                        }
                    });
                }
            }
        }
    }

    // Incident notifications (webhook, ntfy, e-mail) when configured; see docs/notifications.md.
    match homelab_notify::NotifyConfig::from_env(&state.root) {
        None => {}
        Some(Err(e)) => anyhow::bail!("notifications are misconfigured: {e:#}"),
        Some(Ok(cfg)) => {
            let (root, stop) = (state.root.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = homelab_notify::run(cfg, root, stop).await {
                    tracing::error!(error = %format!("{e:#}"), "notifications stopped");
                }
            });
        }
    }

    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await.context("HTTP server failed")?;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Marks the cached view dirty whenever world/, actions/, state/heartbeat/, quarantine/ or hosts/ change,
/// so pages see a change at once instead of after the refresh age.
async fn watch_changes(state: Arc<AppState>, shutdown: CancellationToken) {
    let watched = state.root.watch_paths();
    let mut paths: Vec<(&std::path::Path, bool)> = watched.iter().map(|(p, r)| (p.as_path(), *r)).collect();
    if let Some(h) = state.hosts.as_deref().filter(|h| h.is_dir()) {
        paths.push((h, true));
    }
    let mut watcher = match homelab_store::watch::Watcher::new(&paths, state.refresh.max(Duration::from_secs(1))) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the data root; pages refresh on their timer only");
            return;
        }
    };
    watcher.each_batch(Duration::from_millis(20), &shutdown, || state.invalidate()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths() {
        assert_eq!(normalize_base("").unwrap(), "");
        assert_eq!(normalize_base("/").unwrap(), "");
        assert_eq!(normalize_base("homelab/").unwrap(), "/homelab");
        assert_eq!(normalize_base("/a/b").unwrap(), "/a/b");
        assert!(normalize_base("/a/../b").is_err());
        assert!(normalize_base("/a b").is_err());
    }
}
