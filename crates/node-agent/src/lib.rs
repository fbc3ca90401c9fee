//! The node agent: runs the health checks of `hosts/<node>/services.yaml` on every node and
//! turns them into events for the control plane.
//!
//! - Every `CHECK_INTERVAL` a pass runs each monitored service's checks (concurrently, each
//!   under its own timeout) and the node checks (disk pressure, read-only root). Each service's
//!   event is emitted as soon as its own checks are done: a slow check delays nobody else.
//! - The Docker events stream reports a dead or unhealthy container of a known service at once.
//! - Events go to a data root (`--root`) or through a durable spool to the control plane
//!   (`--control-plane`); failing checks also go to NATS when `NATS_URL` is set.
//! - `GET /health?check=…` on `LISTEN_PORT` answers readiness probes; `GET /metrics` next to it
//!   serves the agent's metrics (check results and durations, events).
//! - "Check now": an operator's request (`state/check_now/<node>/<service>.json`, written by
//!   the UI, the API or `hcp check-now`) runs that service's checks at once. With `--root` the
//!   agent polls its node's request folder every [`CHECK_NOW_POLL`] and removes the file once
//!   served; with `--control-plane` every ingest answer lists the node's requests (an empty
//!   batch asks every [`CHECK_NOW_POLL_REMOTE`]) and the result events, once ingested, finish
//!   the request. The events go out like a pass's, with `data.check_now`.
//! - `alert:` checks are not run here: their health comes from Alertmanager through the
//!   receiver. A service with only `alert:` checks gets no event from the agent at all; a
//!   service with some gets its local failures and recoveries, but no periodic
//!   `service_healthy` (which would clear a firing alert within one interval).

pub mod checks;
pub mod docker_events;
pub mod metrics;
pub mod nats;
pub mod node;
pub mod readiness;
pub mod sink;
pub mod tracker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::SubsecRound;
use homelab_core::desired::{ConfigError, HostFile};
use homelab_core::{DiskLevel, Event, HostSpec, Timestamp};
use homelab_store::check_now::CheckNowRequest;
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::{CheckResult, Checker, service_verdict};
use crate::nats::{HealthIssue, Publisher};
use crate::sink::{Acks, Deliverer, PendingCheckNow, Sink, Spool};
use crate::tracker::{CheckRun, Source, Tracker, Verdict};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often a local agent (`--root`) looks for check-now requests.
pub const CHECK_NOW_POLL: Duration = Duration::from_millis(250);

/// How long a remote agent (`--control-plane`) goes without an ingest answer (which lists the
/// check-now requests) before it asks with an empty batch.
pub const CHECK_NOW_POLL_REMOTE: Duration = Duration::from_secs(1);

fn parse_duration(s: &str) -> Result<Duration, String> {
    homelab_core::duration::parse_duration(s)
}

/// `node-agent --hosts DIR --node NAME (--root DIR | --control-plane URL) [--once]`.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("sink").required(true).multiple(false).args(["root", "control_plane"]))]
pub struct Config {
    /// The hosts/ folder; the agent reads hosts/<node>/services.yaml.
    #[arg(long, env = "HOSTS_DIR", value_name = "DIR")]
    pub hosts: PathBuf,
    /// This node's name, as in hosts/.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node: String,
    /// Write events straight into this data root (when the agent runs on the control-plane host).
    #[arg(long, env = "HOMELAB_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Send events to the control plane's ingest endpoint (`<URL>/api/v1/events`).
    #[arg(long = "control-plane", env = "CONTROL_PLANE_URL", value_name = "URL")]
    pub control_plane: Option<String>,
    /// This node's ingest token (for --control-plane).
    #[arg(long, env = "AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding this node's ingest token (for --control-plane).
    #[arg(long, env = "AGENT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where events wait while the control plane is unreachable.
    #[arg(long, env = "SPOOL_DIR", value_name = "DIR", default_value = "/var/lib/homelab-agent/spool")]
    pub spool_dir: PathBuf,
    /// How often every check runs (`30s`, `2m`, or seconds).
    #[arg(long, env = "CHECK_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub check_interval: Duration,
    /// The readiness endpoint's port.
    #[arg(long, env = "LISTEN_PORT", default_value_t = 25001)]
    pub listen_port: u16,
    /// The readiness endpoint's address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: IpAddr,
    /// Publish failing checks on NATS subject homelab_health_issue.
    #[arg(long, env = "NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// One pass, deliver, exit.
    #[arg(long)]
    pub once: bool,
}

/// What the readiness endpoint and the Docker watcher share with the main loop.
pub struct Shared {
    pub checker: Checker,
    pub metrics: metrics::Metrics,
    spec: RwLock<Option<Arc<HostSpec>>>,
}

impl Shared {
    /// The host file in force, if this node has one.
    pub fn spec(&self) -> Option<Arc<HostSpec>> {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_spec(&self, spec: Option<Arc<HostSpec>>) {
        *self.spec.write().unwrap_or_else(|e| e.into_inner()) = spec;
    }
}

/// Messages into the main loop.
pub enum Msg {
    ServiceDone { pass: u64, service: String, results: Vec<CheckResult>, source: Source },
    NodeDone { pass: u64, disks: Vec<node::DiskUsage>, root_readonly: Option<bool> },
    ContainerDown { service: String, detail: String },
    Recheck { service: String },
}

/// Runs the agent until `shutdown` (or one pass with `--once`), binding the readiness endpoint
/// from the configuration.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = if config.once {
        None
    } else {
        let addr = SocketAddr::new(config.listen_addr, config.listen_port);
        Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (LISTEN_PORT / LISTEN_ADDR)"))?)
    };
    run_with_listener(config, shutdown, listener).await
}

/// Like [`run`], with the readiness endpoint on an already bound listener (tests bind
/// 127.0.0.1:0; `None` serves no endpoint).
pub async fn run_with_listener(config: Config, shutdown: CancellationToken, listener: Option<tokio::net::TcpListener>) -> anyhow::Result<()> {
    homelab_core::validate_name(&config.node).map_err(|e| anyhow::anyhow!("--node / NODE_NAME {:?}: {e}", config.node))?;
    if !config.hosts.is_dir() {
        bail!("hosts folder {} does not exist (--hosts / HOSTS_DIR)", config.hosts.display());
    }
    let tasks = TaskTracker::new();
    let (sink, deliverer) = open_sink(&config)?;
    // Check-now requests are files in the data root: a local agent reads them there.
    let check_now_root = match (&config.root, config.once) {
        (Some(root), false) => Some(homelab_store::DataRoot::open(root)?),
        _ => None,
    };
    // Remote: the deliverer hands over each ingest answer's list and takes acknowledgements.
    let (remote_requests, remote_acks) = match &deliverer {
        Some((d, _)) if !config.once => (Some(d.requests()), Some(d.acks())),
        _ => (None, None),
    };
    let nats = match &config.nats_url {
        Some(url) => Some(Publisher::connect(url).await?),
        None => None,
    };
    let shared = Arc::new(Shared { checker: Checker::new()?, metrics: metrics::Metrics::default(), spec: RwLock::new(None) });
    let (tx, rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        node: config.node.clone(),
        hosts_dir: config.hosts.clone(),
        sink,
        nats,
        shared: shared.clone(),
        tracker: Tracker::default(),
        tx,
        started: Instant::now(),
        last_good: BTreeMap::new(),
        last_errors: Vec::new(),
        disk_level: None,
        pass: 0,
        outstanding: 0,
        reported: BTreeSet::new(),
        waiting_issues: Vec::new(),
        emit_failures: 0,
        check_now_root,
        check_now: BTreeMap::new(),
        remote_acks,
        handled: BTreeMap::new(),
        remote_pending: Vec::new(),
    };

    if config.once {
        agent.start_pass();
        agent.drain_pass(rx).await;
        if let Some((deliverer, _)) = deliverer {
            let left = deliverer.deliver_all().await;
            if let Err(e) = left {
                bail!("{e}; the events stay in {} and are sent by the next run", config.spool_dir.display());
            }
        }
        if agent.emit_failures > 0 {
            bail!("{} event(s) could not be written; see the log above", agent.emit_failures);
        }
        return Ok(());
    }

    if let Some((deliverer, wake)) = deliverer {
        tasks.spawn(deliverer.run(wake, shutdown.clone()));
    }
    if let Some(listener) = listener {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "readiness endpoint: GET /health?check=…, metrics: GET /metrics");
        let app = readiness::router(shared.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
                tracing::error!(error = %e, "the readiness endpoint stopped");
            }
        });
    }
    // The host file must be in force before the watcher maps containers to services.
    agent.reload_hosts();
    tasks.spawn(docker_events::watch(shared.checker.clone(), shared.clone(), agent.tx.clone(), shutdown.clone()));
    tracing::info!(node = %config.node, interval = ?config.check_interval, "node agent started");
    agent.main_loop(rx, remote_requests, config.check_interval, shutdown.clone()).await;
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// The deliverer of a control-plane sink and the notifier that wakes it.
type Delivery = (Deliverer, Arc<Notify>);

fn open_sink(config: &Config) -> anyhow::Result<(Sink, Option<Delivery>)> {
    if let Some(root) = &config.root {
        let root = homelab_store::DataRoot::open(root).with_context(|| format!("cannot open the data root {} (--root / HOMELAB_ROOT)", root.display()))?;
        return Ok((Sink::root(root), None));
    }
    let url = config.control_plane.as_deref().context("either --root or --control-plane is needed")?;
    let token = match (&config.token, &config.token_file) {
        (Some(t), _) if !t.trim().is_empty() => t.trim().to_owned(),
        (_, Some(file)) => std::fs::read_to_string(file).with_context(|| format!("cannot read AGENT_TOKEN_FILE {}", file.display()))?.trim().to_owned(),
        _ => bail!("--control-plane needs this node's ingest token: set AGENT_TOKEN or AGENT_TOKEN_FILE"),
    };
    if token.is_empty() {
        bail!("the agent token is empty: check AGENT_TOKEN / AGENT_TOKEN_FILE");
    }
    let spool = Arc::new(Spool::open(&config.spool_dir)?);
    let wake = Arc::new(Notify::new());
    let deliverer = Deliverer::new(spool.clone(), url, token)?;
    Ok((Sink::Remote { spool, wake: wake.clone() }, Some((deliverer, wake))))
}

struct Agent {
    node: String,
    hosts_dir: PathBuf,
    sink: Sink,
    nats: Option<Publisher>,
    shared: Arc<Shared>,
    tracker: Tracker,
    tx: mpsc::UnboundedSender<Msg>,
    started: Instant,
    last_good: BTreeMap<String, HostFile>,
    last_errors: Vec<ConfigError>,
    disk_level: Option<DiskLevel>,
    /// The current pass and how many of its tasks have not reported yet.
    pass: u64,
    outstanding: usize,
    /// Services that reported in the current pass (root causes wait for dependencies).
    reported: BTreeSet<String>,
    /// Failing services of this pass whose NATS message waits for their dependencies' verdicts.
    waiting_issues: Vec<(String, String, homelab_core::Timestamp)>,
    emit_failures: u64,
    /// Where check-now requests are read (`--root` only).
    check_now_root: Option<homelab_store::DataRoot>,
    /// Check-now requests being served, by service.
    check_now: BTreeMap<String, CheckNowRequest>,
    /// Remote: acknowledgements of requests served without an event (sent with the next poll).
    remote_acks: Option<Acks>,
    /// Remote: requests served whose acknowledgement has not reached the control plane yet
    /// (`requested_at` by service): not run again while the answers still list them.
    handled: BTreeMap<String, Timestamp>,
    /// Remote: the latest list of pending requests.
    remote_pending: Vec<CheckNowRequest>,
}

/// The next list of check-now requests from the deliverer; never, without one.
async fn next_requests(rx: &mut Option<watch::Receiver<Vec<PendingCheckNow>>>) -> Vec<PendingCheckNow> {
    if let Some(rx) = rx
        && rx.changed().await.is_ok()
    {
        return rx.borrow_and_update().clone();
    }
    std::future::pending().await
}

impl Agent {
    async fn main_loop(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut requests: Option<watch::Receiver<Vec<PendingCheckNow>>>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check_now_tick = tokio::time::interval(CHECK_NOW_POLL);
        check_now_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => self.start_pass(),
                _ = check_now_tick.tick(), if self.check_now_root.is_some() => self.poll_check_now(),
                list = next_requests(&mut requests) => {
                    self.remote_pending = list.into_iter().map(|p| CheckNowRequest { node: self.node.clone(), service: p.service, requested_by: p.requested_by, requested_at: p.requested_at }).collect();
                    self.serve_check_now(self.remote_pending.clone());
                }
                Some(msg) = rx.recv() => self.handle(msg).await,
            }
        }
        tracing::info!("node agent stopped");
    }

    /// Runs one pass to its end (for `--once`).
    async fn drain_pass(&mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while self.outstanding > 0 {
            match rx.recv().await {
                Some(msg) => self.handle(msg).await,
                None => break,
            }
        }
    }

    fn reload_hosts(&mut self) -> Option<Arc<HostSpec>> {
        let spec = match homelab_store::hosts::load_hosts(&self.hosts_dir, &self.last_good) {
            Ok(load) => {
                if load.errors != self.last_errors {
                    for e in &load.errors {
                        tracing::error!(error = %e, "invalid hosts file; its last good version stays in force");
                    }
                    self.last_errors = load.errors.clone();
                }
                self.last_good = load.in_force;
                let spec = load.desired.hosts.get(&self.node).cloned().map(Arc::new);
                if spec.is_none() && self.shared.spec().is_none() && self.pass <= 1 {
                    tracing::warn!(node = %self.node, hosts = %self.hosts_dir.display(), "no services.yaml describes this node: only node checks run");
                }
                spec
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the hosts folder; the last good host file stays in force");
                self.shared.spec()
            }
        };
        self.shared.set_spec(spec.clone());
        spec
    }

    fn start_pass(&mut self) {
        self.pass += 1;
        // Whatever waited on the previous pass goes out now, with what is known.
        self.flush_issues(true);
        self.reported.clear();
        let spec = self.reload_hosts();
        self.shared.metrics.pass_started();
        if let Some(spec) = &spec {
            // Services whose health comes only from alerts: nothing to run, nothing to say.
            let names: BTreeSet<&String> = spec.monitored().filter(|(_, s)| !s.alert_only()).map(|(n, _)| n).collect();
            self.tracker.retain(|s| names.iter().any(|n| n.as_str() == s));
            self.shared.metrics.retain_services(|s| spec.services.contains_key(s));
            for (name, svc) in spec.monitored().filter(|(_, s)| !s.alert_only()) {
                self.spawn_service(name.clone(), svc.clone(), Source::Pass);
            }
        }
        let disk = spec.as_ref().and_then(|s| s.disk.clone()).unwrap_or_default();
        let (tx, pass) = (self.tx.clone(), self.pass);
        self.outstanding += 1;
        tokio::spawn(async move {
            let disks = match tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || node::disk_usage(&disk))).await {
                Ok(Ok(d)) => d,
                _ => Vec::new(),
            };
            let root_readonly = tokio::fs::read_to_string("/proc/mounts").await.ok().and_then(|t| node::root_readonly(&t));
            let _ = tx.send(Msg::NodeDone { pass, disks, root_readonly });
        });
    }

    /// Local: reads this node's check-now requests from the data root and serves them.
    fn poll_check_now(&mut self) {
        let Some(root) = self.check_now_root.clone() else { return };
        match root.pending_check_now(&self.node) {
            Ok(requests) => self.serve_check_now(requests),
            Err(e) => tracing::warn!(error = %e, "cannot read check-now requests"),
        }
    }

    /// Starts the checks of every new check-now request for this node.
    fn serve_check_now(&mut self, requests: Vec<CheckNowRequest>) {
        // Gone from the list: its acknowledgement arrived (or a newer request replaced it).
        self.handled.retain(|service, at| requests.iter().any(|r| &r.service == service && r.requested_at == *at));
        let spec = self.shared.spec();
        for req in requests {
            if self.check_now.contains_key(&req.service) {
                continue; // being served; a newer one is served once the running checks are done
            }
            if self.handled.get(&req.service) == Some(&req.requested_at) {
                continue; // served; the control plane has not seen the result yet
            }
            match spec.as_ref().and_then(|s| s.services.get(&req.service)).filter(|s| s.monitor && !s.alert_only()) {
                Some(svc) => {
                    tracing::info!(service = %req.service, by = %req.requested_by, "check now");
                    let svc = svc.clone();
                    self.check_now.insert(req.service.clone(), req.clone());
                    self.spawn_service(req.service.clone(), svc, Source::CheckNow);
                }
                None => {
                    tracing::warn!(service = %req.service, by = %req.requested_by, "check-now request for a service this agent does not check; removed");
                    self.finish_without_event(&req);
                }
            }
        }
    }

    /// A request served with no event to carry the acknowledgement: removed from the data root
    /// (local), or acknowledged with the next poll (remote).
    fn finish_without_event(&mut self, req: &CheckNowRequest) {
        if let Some(root) = &self.check_now_root {
            if let Err(e) = root.finish_check_now(req) {
                tracing::warn!(error = %e, "cannot remove a check-now request");
            }
        } else if let Some(acks) = &self.remote_acks {
            acks.lock().unwrap_or_else(|e| e.into_inner()).push((req.service.clone(), req.requested_at));
            self.handled.insert(req.service.clone(), req.requested_at);
        }
    }

    fn spawn_service(&mut self, service: String, spec: homelab_core::ServiceSpec, source: Source) {
        let (tx, checker, pass) = (self.tx.clone(), self.shared.checker.clone(), self.pass);
        if source == Source::Pass {
            self.outstanding += 1;
        }
        tokio::spawn(async move {
            let results = checker.run_service(&service, &spec).await;
            let _ = tx.send(Msg::ServiceDone { pass, service, results, source });
        });
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::ServiceDone { pass, service, results, source } => {
                if source == Source::Pass && pass == self.pass {
                    self.outstanding = self.outstanding.saturating_sub(1);
                }
                for r in &results {
                    self.shared.metrics.check(&service, r.kind, r.passed, r.duration);
                }
                let (raw, mut detail) = service_verdict(&results);
                let mut data = json!({ "checks": results.iter().map(|r| json!({
                    "kind": r.kind, "passed": r.passed, "reason": r.reason, "duration_ms": r.duration.as_millis() as u64,
                })).collect::<Vec<_>>() });
                let served = if source == Source::CheckNow { self.check_now.remove(&service) } else { None };
                if let Some(req) = &served {
                    data["check_now"] = json!({ "requested_by": req.requested_by, "requested_at": homelab_core::rfc3339(req.requested_at) });
                }
                let runs: Vec<CheckRun> = results
                    .iter()
                    .map(|r| CheckRun {
                        passed: r.passed,
                        event_type: r.event_type.unwrap_or("check_error"),
                        failure_threshold: r.thresholds.0,
                        success_threshold: r.thresholds.1,
                    })
                    .collect();
                let (emit, verdict) = self.tracker.observe_checks(&service, &runs, source);
                // Hysteresis: say why the verdict differs from this run's results.
                match (&raw, &verdict) {
                    (Verdict::Unhealthy { .. }, Verdict::Healthy) => detail = format!("{detail} (below failure_threshold: still healthy)"),
                    (Verdict::Healthy, Verdict::Unhealthy { .. }) => detail = format!("{detail} (waiting for success_threshold passes)"),
                    _ => {}
                }
                let emitted = self.service_verdict(&service, emit, &verdict, detail, Some(data), source, pass).await;
                // Served: its events are handed over; the request goes (unless a newer one
                // replaced it). Remote: the control plane removes it when the event arrives.
                if let Some(req) = served {
                    match emitted {
                        _ if self.check_now_root.is_some() => self.finish_without_event(&req),
                        Some(true) => {
                            self.handled.insert(req.service.clone(), req.requested_at);
                        }
                        None => self.finish_without_event(&req),
                        // Not in the spool: served again with the next answer that lists it.
                        Some(false) => {}
                    }
                    // A newer request may have waited for this one (not at once after a failed
                    // hand-over: that would run the same request again and again).
                    if self.check_now_root.is_none() && emitted != Some(false) {
                        self.serve_check_now(self.remote_pending.clone());
                    }
                }
            }
            Msg::ContainerDown { service, detail } => {
                if self.shared.spec().and_then(|s| s.services.get(&service).map(|s| s.alert_only())).unwrap_or(false) {
                    return;
                }
                let verdict = Verdict::Unhealthy { event_type: "containers_not_running" };
                // A death is immediate, whatever the thresholds say.
                let emit = self.tracker.container_down(&service, "containers_not_running");
                self.service_verdict(&service, emit, &verdict, detail, None, Source::DockerEvent, self.pass).await;
            }
            Msg::Recheck { service } => {
                if let Some(spec) = self.shared.spec().and_then(|s| s.services.get(&service).cloned()).filter(|s| !s.alert_only()) {
                    self.spawn_service(service, spec, Source::DockerEvent);
                }
            }
            Msg::NodeDone { pass, disks, root_readonly } => {
                if pass == self.pass {
                    self.outstanding = self.outstanding.saturating_sub(1);
                }
                self.node_done(disks, root_readonly).await;
                if self.outstanding == 0 {
                    self.flush_issues_async(true).await;
                }
            }
        }
    }

    /// Emits the service's event, if any; `Some(handed over)` when there was one to emit.
    #[allow(clippy::too_many_arguments)]
    async fn service_verdict(
        &mut self,
        service: &str,
        emit: Option<&'static str>,
        verdict: &Verdict,
        detail: String,
        data: Option<serde_json::Value>,
        source: Source,
        pass: u64,
    ) -> Option<bool> {
        let failing = matches!(verdict, Verdict::Unhealthy { .. });
        let kind = emit?;
        if source == Source::Pass && pass == self.pass {
            self.reported.insert(service.to_owned());
        }
        // Part of its health comes from alerts: a periodic positive would clear a firing alert.
        // Failures and recoveries of the local checks are still news.
        let quiet = kind == "service_healthy" && self.shared.spec().and_then(|s| s.services.get(service).map(|s| s.has_alert_checks())).unwrap_or(false);
        let (ts, emitted) = if quiet {
            (chrono::Utc::now(), None)
        } else {
            let mut event = self.event(kind, Some(service));
            event.detail = Some(detail.clone());
            event.data = data;
            let ts = event.ts;
            (ts, Some(self.emit(event).await))
        };
        if failing && self.nats.is_some() {
            let issue_detail = format!("{kind}: {detail}");
            if source == Source::Pass && pass == self.pass {
                self.waiting_issues.push((service.to_owned(), issue_detail, ts));
            } else {
                self.publish(service, issue_detail, ts).await;
            }
        }
        if source == Source::Pass {
            let done = self.outstanding == 0;
            self.flush_issues_async(done).await;
        }
        emitted
    }

    /// Publishes waiting issues whose dependencies have all reported in this pass (or all of
    /// them, at the end of the pass).
    async fn flush_issues_async(&mut self, all: bool) {
        let ready = self.take_ready_issues(all);
        for (service, detail, ts) in ready {
            self.publish(&service, detail, ts).await;
        }
    }

    fn flush_issues(&mut self, all: bool) {
        let ready = self.take_ready_issues(all);
        if ready.is_empty() {
            return;
        }
        let Some(nats) = self.nats.clone() else { return };
        let spec = self.shared.spec();
        let issues: Vec<HealthIssue> = ready
            .into_iter()
            .map(|(service, issue_detail, detected_at)| HealthIssue {
                root_cause: self.root_cause(spec.as_deref(), &service),
                component_name: service,
                issue_detail,
                detected_at,
            })
            .collect();
        tokio::spawn(async move {
            for issue in issues {
                nats.publish(&issue).await;
            }
        });
    }

    fn take_ready_issues(&mut self, all: bool) -> Vec<(String, String, homelab_core::Timestamp)> {
        let spec = self.shared.spec();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_issues).into_iter().partition(|(service, _, _)| {
            all || spec.as_ref().and_then(|s| s.services.get(service)).is_none_or(|svc| {
                svc.depends_on
                    .iter()
                    .all(|d| self.reported.contains(d) || spec.as_ref().and_then(|s| s.services.get(d)).is_none_or(|dep| !dep.monitor || dep.alert_only()))
            })
        });
        self.waiting_issues = waiting;
        ready
    }

    fn root_cause(&self, spec: Option<&HostSpec>, service: &str) -> Option<String> {
        let deps = spec?.services.get(service)?.depends_on.clone();
        nats::root_cause(&deps, |d| self.tracker.is_failing(d))
    }

    async fn publish(&self, component: &str, issue_detail: String, detected_at: homelab_core::Timestamp) {
        let Some(nats) = &self.nats else { return };
        let spec = self.shared.spec();
        let issue = HealthIssue { component_name: component.to_owned(), issue_detail, detected_at, root_cause: self.root_cause(spec.as_deref(), component) };
        nats.publish(&issue).await;
    }

    async fn node_done(&mut self, disks: Vec<node::DiskUsage>, root_readonly: Option<bool>) {
        let level = node::node_level(&disks);
        if self.disk_level != Some(level) && !disks.is_empty() {
            let mut event = self.event("disk_pressure", None);
            event.data = Some(json!({ "level": level, "disks": disks }));
            event.detail = Some(disks.iter().map(|d| format!("{} {:.1}% used", d.mount, d.used_pct)).collect::<Vec<_>>().join(", "));
            self.emit(event).await;
            self.disk_level = Some(level);
        }
        let mut heartbeat = self.event("node_heartbeat", None);
        heartbeat.data = Some(json!({
            "agent_version": AGENT_VERSION,
            "uptime_secs": node_uptime_secs().unwrap_or_else(|| self.started.elapsed().as_secs()),
            "agent_uptime_secs": self.started.elapsed().as_secs(),
            "disks": disks,
            "disk_pressure": level,
            "root_readonly": root_readonly,
        }));
        let ts = heartbeat.ts;
        self.emit(heartbeat).await;
        if level == DiskLevel::High {
            let detail =
                disks.iter().filter(|d| d.level == DiskLevel::High).map(|d| format!("{} {:.1}% used", d.mount, d.used_pct)).collect::<Vec<_>>().join(", ");
            self.publish("disk", format!("disk_pressure: high: {detail}"), ts).await;
        }
        if root_readonly == Some(true) {
            self.publish("readonly_fs", "the root filesystem is mounted read-only".into(), ts).await;
        }
    }

    fn event(&self, kind: &str, service: Option<&str>) -> Event {
        Event::new(chrono::Utc::now().trunc_subsecs(3), &self.node, kind, service)
    }

    /// Hands an event to the sink; false when it could not be.
    async fn emit(&mut self, event: Event) -> bool {
        let (kind, service) = (event.kind.clone(), event.service.clone());
        tracing::debug!(kind = %kind, service = ?service, detail = ?event.detail, "event");
        let result = self.sink.emit(event).await;
        self.shared.metrics.event(&kind, result.is_ok());
        if let Err(e) = &result {
            self.emit_failures += 1;
            tracing::error!(error = format!("{e:#}"), kind = %kind, service = ?service, "cannot hand over an event");
        }
        result.is_ok()
    }
}

/// The node's uptime from `/proc/uptime`.
fn node_uptime_secs() -> Option<u64> {
    let text = std::fs::read_to_string(Path::new("/proc/uptime")).ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(secs as u64)
}
