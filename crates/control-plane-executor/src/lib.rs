//! The executor: claims approved actions and runs them — container restarts through the Docker
//! API, compose redeploys, disk cleanups — on this host or on remote nodes over SSH.
//!
//! The loop: watch `actions/approved/`, world/ and hosts/ (notifications are hints, plus a
//! periodic rescan); for each approved action whose node is idle, pass the health gate (guarded
//! actions only), take the action's run lock, claim it by renaming it into running/ (exactly one
//! executor wins), and run it in its own task. Which action may start beside what already runs
//! is the pure [`schedule::may_start`]: container restarts of different services on one node run
//! side by side (bounded), redeploys and disk cleanups one at a time per node, never beside a
//! restart of the same service; a bounded number of nodes in parallel. Verification happens
//! after the node is free, in one [`verify`] task that writes `result.verified` later.
//!
//! A write that fails (full disk, EIO, read-only file system) never stops the executor. An
//! approved action it cannot claim stays in approved/; an action that ended but whose end
//! cannot be written stays in running/ under its run lock (not lost, not run again) while the
//! move is retried with backoff. While writes fail, claims wait for the backoff (1 s doubling
//! to 30 s) instead of following every notification, and the heartbeat carries `write_errors`
//! and `last_write_error`.

pub mod compose;
pub mod ctx;
pub mod deploys;
pub mod docker;
pub mod gate;
pub mod hold;
pub mod remote;
pub mod rollback;
pub mod runner;
pub mod schedule;
pub mod verify;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use homelab_core::{Action, ActionState, HistoryEntry, HostFile, Risk};
use homelab_store::DataRoot;
use homelab_store::hosts::{HostsLoad, load_hosts};
use homelab_store::watch::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::ctx::{ACTOR, Ctx};
use crate::schedule::{Job, Limits};
use crate::verify::VerifyQueue;

fn duration(s: &str) -> Result<Duration, String> {
    homelab_core::duration::parse_duration(s)
}

/// `control-plane-executor --root DIR --hosts DIR [--once]`; every flag also from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: homelab_store::daemon::CommonArgs,
    /// The desired state: `<dir>/<node>/services.yaml`.
    #[arg(long, env = "HOSTS_DIR")]
    pub hosts: PathBuf,
    /// Run every approved action that may run now to its end, then exit.
    #[arg(long)]
    pub once: bool,
    /// Record what would run, run nothing (`EXECUTOR_DRY_RUN=1`; also true/false, yes/no, on/off).
    #[arg(long, env = "EXECUTOR_DRY_RUN", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Time limit per action (`300s`, `5m`).
    #[arg(long, env = "ACTION_TIMEOUT", default_value = "300s", value_parser = duration)]
    pub action_timeout: Duration,
    /// How long to watch world state for the target to report healthy after success; `0` skips.
    #[arg(long, env = "VERIFY_TIMEOUT", default_value = "120s", value_parser = duration)]
    pub verify_timeout: Duration,
    /// Private key for SSH to remote nodes (a host's `ssh.identity_file` wins).
    #[arg(long, env = "SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file for strict host-key checking (a host's `ssh.known_hosts` wins).
    #[arg(long, env = "SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Time limit for opening an SSH connection.
    #[arg(long, env = "SSH_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub ssh_connect_timeout: Duration,
    /// The local Docker engine's socket.
    #[arg(long, env = "DOCKER_SOCKET", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// How many nodes may run actions at the same time.
    #[arg(long, env = "EXECUTOR_MAX_PARALLEL_NODES", default_value_t = 4)]
    pub max_parallel_nodes: usize,
    /// How many container restarts (of different services) may run at once on one node.
    #[arg(long, env = "EXECUTOR_MAX_PARALLEL_RESTARTS", default_value_t = 8)]
    pub max_parallel_restarts: usize,
    /// Full rescan of approved/ even without notifications.
    #[arg(long, env = "EXECUTOR_RESCAN_INTERVAL", default_value = "10s", value_parser = duration)]
    pub rescan_interval: Duration,
    /// How often the heartbeat is written while idle.
    #[arg(long, env = "EXECUTOR_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = duration)]
    pub heartbeat_interval: Duration,
    /// Only prune containers and images carrying this label (`key` or `key=value`). Unset: prune
    /// every stopped container and dangling image, as `docker system prune` would.
    #[arg(long, env = "EXECUTOR_PRUNE_LABEL")]
    pub prune_label: Option<String>,
    /// How many generations of each compose service stay held (images tagged `homelab-held/…`,
    /// files kept) for rollbacks; at least 1.
    #[arg(long, env = "HOLD_GENERATIONS", default_value_t = homelab_core::deploy::KEEP_GENERATIONS, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=100), usize::from))]
    pub hold_generations: usize,
}

/// How long notifications are gathered into one batch: short, because claim latency is the
/// figure that matters here and a pass over approved/ is cheap.
const DEBOUNCE: Duration = Duration::from_millis(1);

/// Runs the executor until `shutdown` (or, with `--once`, until every runnable action has ended):
/// start up (hosts, the shared context, leftovers, interrupted runs, the verifier), then turn
/// (dispatch what may start, heartbeat) and wait for a change, then wind down.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let root = DataRoot::open(&config.common.root).with_context(|| format!("cannot open the data root {}", config.common.root.display()))?;
    let (hosts, last_good) = first_hosts(&config)?;
    let ctx = Arc::new(new_ctx(&config, root.clone()));
    remove_leftover_temps(&root);
    let swept = runner::sweep_interrupted(&ctx).context("cannot read actions/running")?;
    tracing::info!(dry_run = config.dry_run, interrupted = swept.failed, "executor started");

    // Notifications name paths under the folder as it was watched: watch the canonical path and
    // compare against it.
    let hosts_dir = std::fs::canonicalize(&config.hosts).unwrap_or_else(|_| config.hosts.clone());
    let mut watcher = Watcher::new(&[(&root.action_dir(ActionState::Approved), false), (&root.world_dir(), false), (&hosts_dir, true)], config.rescan_interval)
        .context("cannot watch the data root")?;

    let started_at = chrono::Utc::now();
    let tasks = TaskTracker::new();
    let work_stop = shutdown.child_token();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String)>();
    let verify_queue = start_verifier(&ctx, &config, &tasks, &work_stop);
    let limits = Limits { max_parallel_nodes: config.max_parallel_nodes.max(1), max_restarts_per_node: config.max_parallel_restarts.max(1) };
    let mut state = Loop {
        hosts,
        last_good,
        running: HashMap::new(),
        // Interrupted actions whose move to failed/ could not be written: swept again later.
        resweep: swept.unwritten > 0,
        next_heartbeat: tokio::time::Instant::now(),
        hosts_changed: false,
    };
    loop {
        let work = Work { ctx: &ctx, limits, done_tx: &done_tx, tasks: &tasks, stop: &work_stop, verify: &verify_queue };
        let Some(dispatched) = state.turn(&config, &work, started_at) else { continue };
        if config.once && state.running.is_empty() && dispatched == 0 {
            break;
        }
        if !state.wait(&ctx, &shutdown, &mut done_rx, &mut watcher, &hosts_dir).await? {
            break;
        }
    }
    wind_down(&ctx, &config, &shutdown, tasks, verify_queue, work_stop).await;
    heartbeat(&ctx, &config, started_at, &state.hosts, &HashMap::new(), state.resweep);
    tracing::info!("executor stopped");
    if config.once
        && let Some(problem) = ctx.write_errors.current()
    {
        anyhow::bail!("writes to the data root fail ({}); what could not be claimed stays in approved/, run again once it takes writes", problem.error);
    }
    Ok(())
}

/// hosts/ at start (an invalid file is logged; it has no last good version yet) and the files
/// in force, kept as the last good versions.
fn first_hosts(config: &Config) -> anyhow::Result<(HostsLoad, BTreeMap<String, HostFile>)> {
    let first = load_hosts(&config.hosts, &BTreeMap::new())
        .with_context(|| format!("cannot read hosts folder {} (set --hosts or HOSTS_DIR)", config.hosts.display()))?;
    for e in &first.errors {
        tracing::error!(error = %e, "invalid hosts file; its last good version stays in force");
    }
    let last_good = first.in_force.clone();
    Ok((first, last_good))
}

/// The settings and handles every run shares.
fn new_ctx(config: &Config, root: DataRoot) -> Ctx {
    let mut ctx = Ctx::new(
        root,
        config.dry_run,
        config.action_timeout,
        config.verify_timeout,
        config.docker_socket.clone(),
        config.prune_label.clone(),
        remote::SshDefaults { key: config.ssh_key.clone(), known_hosts: config.ssh_known_hosts.clone(), connect_timeout: config.ssh_connect_timeout },
    );
    ctx.hold_generations = config.hold_generations;
    ctx
}

/// Temp files of writes a crash interrupted, in the folders this daemon writes.
fn remove_leftover_temps(root: &DataRoot) {
    for dir in [
        root.action_dir(ActionState::Approved),
        root.action_dir(ActionState::Running),
        root.action_dir(ActionState::Completed),
        root.action_dir(ActionState::Failed),
        root.heartbeats_dir(),
    ] {
        if let Err(e) = homelab_store::remove_stale_temps(&dir, homelab_store::STALE_TEMP_AGE) {
            tracing::warn!(error = %e, "cannot remove leftover temp files");
        }
    }
}

/// Verification: one task for every ended action, holding no node; resumes what a stop cut short.
fn start_verifier(ctx: &Arc<Ctx>, config: &Config, tasks: &TaskTracker, stop: &CancellationToken) -> VerifyQueue {
    let (verify_queue, verify_rx) = verify::queue();
    match verify::unfinished(&ctx.root, config.verify_timeout) {
        Ok(left) => {
            if !left.is_empty() {
                tracing::info!(actions = left.len(), "resuming verifications a stop cut short");
            }
            left.into_iter().for_each(|p| verify_queue.push(p));
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for unfinished verifications in actions/completed"),
    }
    tasks.spawn(verify::run(ctx.clone(), verify_rx, stop.clone()));
    verify_queue
}

/// What the executor's loop keeps between turns.
struct Loop {
    hosts: HostsLoad,
    last_good: BTreeMap<String, HostFile>,
    /// What runs, per node: action id and its job.
    running: Running,
    /// Interrupted actions wait in running/ for their move to failed/.
    resweep: bool,
    next_heartbeat: tokio::time::Instant,
    /// hosts/ is parsed again only when it changed (or on a rescan), not on every pass.
    hosts_changed: bool,
}

impl Loop {
    /// One turn: hosts/ again if it changed, interrupted runs swept again, a pass over approved/
    /// and the heartbeat when due. Returns how many actions started, or `None` when the
    /// heartbeat found that writes work again (turn again at once).
    fn turn(&mut self, config: &Config, work: &Work<'_>, started_at: homelab_core::Timestamp) -> Option<usize> {
        let ctx = work.ctx;
        if std::mem::take(&mut self.hosts_changed) {
            reload_hosts(config, &mut self.hosts, &mut self.last_good);
        }
        // While writes fail, claims and notes wait for the backoff: each try would fail again
        // (and its temp file would notify us again).
        let writable = ctx.write_errors.retry_due();
        if self.resweep && writable {
            match runner::sweep_interrupted(ctx) {
                Ok(s) => self.resweep = s.unwritten > 0,
                Err(e) => tracing::warn!(error = %e, "cannot read actions/running"),
            }
        }
        let dispatched = if ctx.write_errors.retry_due() { pass(work, &self.hosts, &mut self.running) } else { 0 };
        // While writes fail, the heartbeat is written on the backoff (it is also the probe that
        // notices they work again); when it does, claim at once.
        let failing = ctx.write_errors.is_failing();
        if (!failing && tokio::time::Instant::now() >= self.next_heartbeat) || (failing && ctx.write_errors.retry_due()) {
            let recovered = heartbeat(ctx, config, started_at, &self.hosts, &self.running, self.resweep) && failing;
            self.next_heartbeat = tokio::time::Instant::now() + config.heartbeat_interval;
            if recovered {
                return None;
            }
        }
        Some(dispatched)
    }

    /// Waits for something to do: an action's work ended, a change in approved/, world/ or
    /// hosts/, the heartbeat or the next retry of failing writes. False on shutdown.
    async fn wait(
        &mut self,
        ctx: &Ctx,
        shutdown: &CancellationToken,
        done_rx: &mut mpsc::UnboundedReceiver<(String, String)>,
        watcher: &mut Watcher,
        hosts_dir: &std::path::Path,
    ) -> anyhow::Result<bool> {
        // Wake for the next retry while writes fail.
        let retry_at = ctx.write_errors.retry_at().map(|at| tokio::time::Instant::from_std(at).max(tokio::time::Instant::now() + Duration::from_millis(100)));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            Some(done) = done_rx.recv() => {
                free(&mut self.running, done);
                while let Ok(done) = done_rx.try_recv() {
                    free(&mut self.running, done);
                }
                // An action ended: say so at once rather than at the next tick.
                self.next_heartbeat = tokio::time::Instant::now();
            }
            batch = watcher.next_batch(DEBOUNCE) => match batch {
                None => anyhow::bail!("the file watcher stopped"),
                Some(b) => self.hosts_changed = b.rescan || b.paths.iter().any(|p| p.starts_with(hosts_dir)),
            },
            _ = tokio::time::sleep_until(self.next_heartbeat) => {}
            _ = async { tokio::time::sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => {}
        }
        Ok(true)
    }
}

/// `--once`: what has run is recorded and verified before exiting (verification ends by
/// VERIFY_TIMEOUT at the latest); a shutdown cuts that short. Then running actions see the
/// cancellation, record themselves as interrupted and end; open verifications stay `null` on
/// disk and are resumed at the next start.
async fn wind_down(ctx: &Ctx, config: &Config, shutdown: &CancellationToken, tasks: TaskTracker, verify_queue: VerifyQueue, work_stop: CancellationToken) {
    drop(verify_queue);
    tasks.close();
    if config.once {
        tokio::select! {
            _ = tasks.wait() => {}
            _ = shutdown.cancelled() => {}
        }
    }
    work_stop.cancel();
    tasks.wait().await;
    ctx.pool.close_all().await;
}

/// What runs now, per node: (action id, job).
type Running = HashMap<String, Vec<(String, Job)>>;

/// An action's work on its node is over: (node, action id).
fn free(running: &mut Running, (node, id): (String, String)) {
    if let Some(jobs) = running.get_mut(&node) {
        jobs.retain(|(i, _)| *i != id);
        if jobs.is_empty() {
            running.remove(&node);
        }
    }
}

/// What a pass needs to start actions.
struct Work<'a> {
    ctx: &'a Arc<Ctx>,
    limits: Limits,
    done_tx: &'a mpsc::UnboundedSender<(String, String)>,
    tasks: &'a TaskTracker,
    stop: &'a CancellationToken,
    verify: &'a VerifyQueue,
}

/// One scan of approved/: dispatches every action that may start now. Returns how many started.
fn pass(work: &Work<'_>, hosts: &HostsLoad, running: &mut Running) -> usize {
    let ctx = work.ctx;
    let approved = match ctx.root.list_actions(ActionState::Approved) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot list approved actions");
            return 0;
        }
    };
    if approved.is_empty() {
        return 0;
    }
    let mut world: Option<(Option<homelab_core::world::ServicesFile>, Option<homelab_core::world::NodesFile>)> = None;
    let mut actions: Vec<Action> = approved.into_iter().map(|s| s.action).collect();
    actions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    let now = chrono::Utc::now();
    let mut started = 0;
    // Per node, older actions that wait for their turn: younger ones that conflict wait too.
    let mut waiting: HashMap<String, Vec<Job>> = HashMap::new();
    for action in actions {
        let job = Job::new(action.kind, action.service.as_deref());
        let on_node: Vec<Job> = running.get(&action.node).map(|v| v.iter().map(|(_, j)| j.clone()).collect()).unwrap_or_default();
        let other_busy = running.len() - usize::from(running.contains_key(&action.node));
        let older = waiting.get(&action.node).map(Vec::as_slice).unwrap_or_default();
        if let Err(why) = schedule::may_start(&job, &on_node, older, other_busy, work.limits) {
            tracing::trace!(action = %action.id, ?why, "waits for its turn");
            waiting.entry(action.node.clone()).or_default().push(job);
            continue;
        }
        let host = hosts.desired.hosts.get(&action.node).cloned();
        if let Some(host) = &host
            && action.risk == Risk::Guarded
        {
            // World state is read once per pass, and only when a guarded action needs it.
            let (services, nodes) = world.get_or_insert_with(|| {
                ctx.root.read_world().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read world state; guarded actions wait");
                    (None, None)
                })
            });
            if let Err(reason) = gate::check(&action, host, services.as_ref(), nodes.as_ref(), now) {
                note_wait(ctx, &action, &reason);
                continue;
            }
        }
        // The run lock first, then the claim: a starting executor's sweep never fails an action
        // we are about to run, and a held lock means another executor is on it.
        let run_lock = match ctx.root.try_lock_run(&action.id) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(action = %action.id, error = %e, "cannot take the run lock");
                continue;
            }
        };
        let note = Some(format!("claimed by executor pid {}", std::process::id()));
        let claimed = match ctx.root.transition(&action.id, ActionState::Approved, ActionState::Running, chrono::Utc::now(), ACTOR, note, |_| {}) {
            Ok(a) => a,
            Err(homelab_store::TransitionError::NotInState { .. } | homelab_store::TransitionError::AlreadyExists { .. }) => {
                // Another executor won the rename (or an operator moved it): back off quietly.
                ctx.counters.claims_lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // The rename into running/ is done before its folder's fsync: if only the fsync
            // failed, the action is ours (we hold its run lock, so no other executor took it).
            Err(e @ homelab_store::TransitionError::Io { .. }) => {
                ctx.write_errors.failed(&format!("claiming action {}", action.id), &e);
                match ctx.root.read_active(ActionState::Running, &action.id) {
                    Ok(Some(a)) if a.history.last().is_some_and(|h| h.by == ACTOR && h.state == ActionState::Running) => a,
                    // Still in approved/: claimed on a later try.
                    _ => continue,
                }
            }
            Err(e) => {
                tracing::warn!(action = %action.id, error = %e, "cannot claim action");
                continue;
            }
        };
        ctx.write_errors.succeeded();
        ctx.counters.claimed.fetch_add(1, Ordering::Relaxed);
        started += 1;
        running.entry(claimed.node.clone()).or_default().push((claimed.id.clone(), job));
        let span = tracing::info_span!("action", id = %claimed.id, node = %claimed.node, kind = %claimed.kind);
        let (ctx, done_tx, stop, verify) = (ctx.clone(), work.done_tx.clone(), work.stop.clone(), work.verify.clone());
        work.tasks.spawn(
            async move {
                tracing::info!("claimed");
                let done = (claimed.node.clone(), claimed.id.clone());
                let release = move || {
                    let _ = done_tx.send(done);
                };
                runner::execute(ctx, claimed, host, run_lock, stop, release, &verify).await;
            }
            .instrument(span),
        );
    }
    started
}

/// Reads hosts/ again; an invalid file keeps its last good version, an unreadable folder keeps
/// everything as it was.
fn reload_hosts(config: &Config, hosts: &mut HostsLoad, last_good: &mut BTreeMap<String, HostFile>) {
    match load_hosts(&config.hosts, last_good) {
        Ok(load) => {
            for e in load.errors.iter().filter(|e| !hosts.errors.contains(e)) {
                tracing::error!(error = %e, "invalid hosts file; its last good version stays in force");
            }
            last_good.clone_from(&load.in_force);
            *hosts = load;
        }
        Err(e) => tracing::error!(error = %e, "cannot read hosts/; keeping what was in force"),
    }
}

/// Records once in the action's history why it waits; repeats only when the reason changes.
fn note_wait(ctx: &Ctx, action: &Action, reason: &str) {
    let last_note = |a: &Action| a.history.last().and_then(|h| h.note.clone());
    if last_note(action).as_deref() == Some(reason) {
        return;
    }
    ctx.counters.gated.fetch_add(1, Ordering::Relaxed);
    tracing::info!(action = %action.id, reason, "guarded action waits");
    let r = ctx.root.update_active(&action.id, ActionState::Approved, |a| {
        if last_note(a).as_deref() != Some(reason) {
            a.history.push(HistoryEntry { state: ActionState::Approved, at: chrono::Utc::now(), by: ACTOR.to_owned(), note: Some(reason.to_owned()) });
        }
    });
    match r {
        Ok(_) => {}
        Err(e @ homelab_store::TransitionError::Io { .. }) => {
            ctx.write_errors.failed(&format!("noting why action {} waits", action.id), &e);
        }
        Err(e) => tracing::debug!(action = %action.id, error = %e, "cannot note why the action waits"),
    }
}

/// Writes the heartbeat; true when writes work (again).
fn heartbeat(ctx: &Ctx, config: &Config, started_at: homelab_core::Timestamp, hosts: &HostsLoad, running: &Running, resweep: bool) -> bool {
    let mut busy: Vec<&String> = running.keys().collect();
    busy.sort();
    let actions_running: usize = running.values().map(Vec::len).sum();
    let mut hb = homelab_core::Heartbeat {
        counters: ctx.counters.snapshot(),
        config_errors: hosts.errors.clone(),
        extra: serde_json::json!({
            "dry_run": config.dry_run,
            "busy_nodes": busy,
            "actions_running": actions_running,
            "verifying": ctx.verifying.load(Ordering::Relaxed),
            "unrecorded_ends": ctx.unrecorded.load(Ordering::Relaxed),
        }),
        ..homelab_store::daemon::heartbeat("executor", started_at, chrono::Utc::now(), config.heartbeat_interval)
    };
    ctx.write_errors.add_to_heartbeat(&mut hb);
    // If this write works, writes work again (and the heartbeat says so), unless an action's
    // end or an interrupted action still waits for its own retry.
    let clears = ctx.unrecorded.load(Ordering::Relaxed) == 0 && !resweep;
    if clears {
        hb.extra[homelab_store::retry::LAST_WRITE_ERROR_FIELD] = serde_json::Value::Null;
    }
    match ctx.root.write_heartbeat("executor", &hb) {
        Ok(()) if clears => {
            ctx.write_errors.succeeded();
            true
        }
        Ok(()) => false,
        Err(e) => {
            ctx.write_errors.failed("the heartbeat", &e);
            false
        }
    }
}
