//! The supervisor daemon: reads desired state (hosts/), world state and actions, computes the
//! pure plan of `homelab_core::plan`, and applies it through the store: new pending (or
//! policy-approved) actions, and auto-cancels of pending ones.
//!
//! A reconcile runs at start, on every change to world/, hosts/ and actions/ (notify hints,
//! debounced) and on the tick. What must survive a restart lives under `state/`:
//! `state/supervisor.json` (escalation, rejections, auto-approvals) and
//! `state/hosts_last_good.json` (the last valid version of each host file).
//!
//! A write that fails (full disk, EIO, read-only file system) never stops the supervisor: what
//! it could not write stays in memory (its memory, the last good host files) and is written
//! again; an action it could not create is planned again by the next reconcile (nothing on disk
//! said it existed). While writes fail, reconciles run on a backoff (1 s doubling to 30 s)
//! rather than on every notification, and the heartbeat carries `write_errors` and
//! `last_write_error` ([`homelab_store::WriteErrors`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use homelab_core::desired::{ConfigError, HostFile};
use homelab_core::duration::parse_duration;
use homelab_core::plan::{Outcome, Plan, PlanInput, Policy, SupervisorMemory, plan_with_silences};
use homelab_core::silence::Silence;
use homelab_core::{ActionState, Heartbeat, NodeState, ServiceState, Timestamp};
use homelab_store::hosts::HostsLoad;
use homelab_store::{DataRoot, Doc, TransitionError, WriteErrors, list_names};
use tokio_util::sync::CancellationToken;

/// The daemon's name in heartbeats and logs.
pub const DAEMON: &str = "supervisor";

/// `control-plane-supervisor --root DIR --hosts DIR [--once] [--dry-run] [--tick 30s]`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: homelab_store::daemon::CommonArgs,
    /// The desired state: hosts/<node>/services.yaml.
    #[arg(long, env = "HOSTS_DIR")]
    pub hosts: PathBuf,
    /// One full reconcile, then exit (non-zero when hosts/ has errors).
    #[arg(long)]
    pub once: bool,
    /// Print the plan and write nothing at all.
    #[arg(long, env = "SUPERVISOR_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Reconcile at least this often, changes or not.
    #[arg(long, env = "SUPERVISOR_TICK", default_value = "30s", value_parser = parse_duration)]
    pub tick: Duration,
    /// How long to gather file notifications into one reconcile.
    #[arg(long, env = "SUPERVISOR_DEBOUNCE", default_value = "2ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// A node with no sign of life for this long is unreachable (judged from last_seen).
    #[arg(long, env = "NODE_STALE_AFTER", default_value = "90s", value_parser = parse_duration)]
    pub node_stale_after: Duration,
    /// A remediation that ended within this window counts against the next one.
    #[arg(long, env = "ESCALATION_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub escalation_window: Duration,
    /// After a remediation ended, wait this long for a fresh check before escalating.
    #[arg(long, env = "SUPERVISOR_SETTLE", default_value = "60s", value_parser = parse_duration)]
    pub settle_after: Duration,
    /// A rejected id is not proposed again for this long, unless its drift resolved.
    #[arg(long, env = "REJECT_SNOOZE", default_value = "6h", value_parser = parse_duration)]
    pub reject_snooze: Duration,
    /// `low`: low-risk actions go straight to approved. `off` (default): everything waits.
    #[arg(long, env = "AUTO_APPROVE", default_value = "off", value_parser = parse_auto_approve, action = clap::ArgAction::Set)]
    pub auto_approve: bool,
    /// Auto-approvals per service per hour; past that, actions wait in pending.
    #[arg(long, env = "AUTO_APPROVE_MAX_PER_HOUR", default_value_t = 3)]
    pub auto_approve_max_per_hour: u32,
    /// One full check pass: no missing_service action until a node has been up this long after
    /// it (re)appeared, nor this long after the supervisor started. `0` turns it off.
    #[arg(long, env = "MISSING_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub missing_grace: Duration,
    /// Once restart and redeploy did not help, nothing more is proposed until the drift
    /// resolves, an operator retries, or this long.
    #[arg(long, env = "EXHAUSTED_HOLD", default_value = "6h", value_parser = parse_duration)]
    pub exhausted_hold: Duration,
    /// A drift that resolved by itself and came back within this long is flapping.
    #[arg(long, env = "FLAP_WINDOW", default_value = "30m", value_parser = parse_duration)]
    pub flap_window: Duration,
    /// A flapping drift must hold this long before an action is proposed again.
    #[arg(long, env = "FLAP_HOLD", default_value = "2m", value_parser = parse_duration)]
    pub flap_hold: Duration,
    /// A service changing state more than this many times within --flap-changes-window is
    /// flapping (0 turns it off).
    #[arg(long, env = "FLAP_CHANGES", default_value_t = 5)]
    pub flap_changes: u32,
    #[arg(long, env = "FLAP_CHANGES_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub flap_changes_window: Duration,
    /// A flapping service is stable again after this long without a change.
    #[arg(long, env = "FLAP_STABLE", default_value = "10m", value_parser = parse_duration)]
    pub flap_stable: Duration,
}

fn parse_auto_approve(s: &str) -> Result<bool, String> {
    match s.trim() {
        "low" => Ok(true),
        "" | "off" | "none" | "0" | "false" => Ok(false),
        other => Err(format!("AUTO_APPROVE {other:?} is not supported: use \"low\" or \"off\"")),
    }
}

impl Config {
    /// A configuration with every default, for embedding (`hcp up`) and tests.
    pub fn new(root: impl Into<PathBuf>, hosts: impl Into<PathBuf>) -> Config {
        let policy = Policy::default();
        Config {
            common: homelab_store::daemon::CommonArgs { root: root.into() },
            hosts: hosts.into(),
            once: false,
            dry_run: false,
            tick: Duration::from_secs(30),
            debounce: Duration::from_millis(2),
            node_stale_after: policy.node_stale_after,
            escalation_window: policy.escalation_window,
            settle_after: policy.settle_after,
            reject_snooze: policy.reject_snooze,
            auto_approve: policy.auto_approve_low,
            auto_approve_max_per_hour: policy.auto_approve_max_per_hour,
            missing_grace: policy.missing_grace,
            exhausted_hold: policy.exhausted_hold,
            flap_window: policy.flap_window,
            flap_hold: policy.flap_hold,
            flap_changes: policy.flap_changes,
            flap_changes_window: policy.flap_changes_window,
            flap_stable: policy.flap_stable,
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            node_stale_after: self.node_stale_after,
            escalation_window: self.escalation_window,
            settle_after: self.settle_after,
            reject_snooze: self.reject_snooze,
            auto_approve_low: self.auto_approve,
            auto_approve_max_per_hour: self.auto_approve_max_per_hour,
            missing_grace: self.missing_grace,
            exhausted_hold: self.exhausted_hold,
            flap_window: self.flap_window,
            flap_hold: self.flap_hold,
            flap_changes: self.flap_changes,
            flap_changes_window: self.flap_changes_window,
            flap_stable: self.flap_stable,
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    /// Problems in hosts/ (the last good version of each broken file stayed in force).
    pub config_errors: Vec<ConfigError>,
    pub created: usize,
    pub cancelled: usize,
    /// Pending actions whose drift fields were updated.
    pub updated: usize,
    pub elapsed: Duration,
    /// Writes that failed in this reconcile (each is retried; see [`Supervisor::write_errors`]).
    pub write_failures: usize,
}

/// What one reconcile reads before planning.
struct Read {
    load: HostsLoad,
    /// Nodes whose host file is broken with no last good version.
    unknown_nodes: BTreeSet<String>,
    services: BTreeMap<String, BTreeMap<String, ServiceState>>,
    nodes: BTreeMap<String, NodeState>,
    active: Vec<homelab_core::Action>,
    outcomes: Vec<Outcome>,
    silences: Vec<Silence>,
}

/// What applying a plan did.
#[derive(Default)]
struct Applied {
    created: usize,
    cancelled: usize,
    updated: usize,
    write_failures: usize,
}

/// The supervisor's state between reconciles.
pub struct Supervisor {
    config: Config,
    root: DataRoot,
    policy: Policy,
    memory: SupervisorMemory,
    last_good: BTreeMap<String, HostFile>,
    last_errors: Vec<ConfigError>,
    hosts_cache: homelab_store::hosts::HostsCache,
    started_at: Timestamp,
    counters: BTreeMap<String, u64>,
    write_errors: WriteErrors,
    /// `memory` / `last_good` differ from what is on disk (a write failed): write them again.
    memory_unsaved: bool,
    last_good_unsaved: bool,
    /// What world/drift.json last said, and when it was written: it is rewritten when the
    /// drifts change, or every tick to keep `generated_at` fresh, not at every reconcile (the
    /// supervisor watches world/, so each write would wake it again).
    last_drift: Option<(Vec<homelab_core::drift::DriftEntry>, std::time::Instant)>,
}

impl Supervisor {
    /// Opens the data root and loads memory and the last good host files. In a dry run the
    /// data root must exist and nothing is created.
    pub fn open(config: Config) -> anyhow::Result<Supervisor> {
        let root = if config.dry_run { DataRoot::open_existing(&config.common.root) } else { DataRoot::open(&config.common.root) }
            .with_context(|| format!("cannot open the data root {} (set --root or HOMELAB_ROOT)", config.common.root.display()))?;
        if !config.hosts.is_dir() {
            bail!("hosts folder {} does not exist (set --hosts or HOSTS_DIR to the folder holding <node>/services.yaml)", config.hosts.display());
        }
        let memory: SupervisorMemory = root
            .read_supervisor_memory()
            .with_context(|| format!("cannot read {}: fix it or delete it (escalation and snooze memory would be lost)", Doc::SupervisorMemory))?
            .unwrap_or_default();
        let last_good: BTreeMap<String, HostFile> = match root.read_hosts_last_good() {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                // Losing it only matters while a host file is broken; carry on without it.
                tracing::warn!(file = Doc::HostsLastGood.name(), error = %e, "cannot read the last good host files; starting without them");
                BTreeMap::new()
            }
        };
        if !config.dry_run {
            // Temp files of writes a crash interrupted, in the folders this daemon writes.
            let dirs = [
                root.state_dir(),
                root.heartbeats_dir(),
                root.action_dir(ActionState::Pending),
                root.action_dir(ActionState::Approved),
                root.action_dir(ActionState::Cancelled),
            ];
            for dir in dirs {
                if let Err(e) = homelab_store::remove_stale_temps(&dir, homelab_store::STALE_TEMP_AGE) {
                    tracing::warn!(error = %e, "cannot remove leftover temp files");
                }
            }
        }
        let policy = config.policy();
        Ok(Supervisor {
            config,
            root,
            policy,
            memory,
            last_good,
            last_errors: Vec::new(),
            hosts_cache: Default::default(),
            started_at: chrono::Utc::now(),
            counters: BTreeMap::new(),
            write_errors: WriteErrors::new(DAEMON),
            memory_unsaved: false,
            last_good_unsaved: false,
            last_drift: None,
        })
    }

    /// Appends each configuration error not seen at the previous load to the audit log
    /// (`who: supervisor`, `channel: hosts`, `what: config_error`, the file as target, the error
    /// with line and column as detail), and `config_ok` once hosts/ is valid again. After a
    /// restart the errors still in force are recorded once more: the log then tells which
    /// errors each start found.
    fn audit_config_errors(&self, errors: &[ConfigError]) {
        use homelab_ops::audit::record;
        use homelab_ops::{Actor, Channel, Outcome};
        let me = Actor::daemon("supervisor", Channel::Hosts);
        let mut records: Vec<_> = errors
            .iter()
            .filter(|e| !self.last_errors.contains(e))
            .map(|e| record(&me, "config_error", &e.file, Outcome::Refused).detail(e.to_string()))
            .collect();
        if errors.is_empty() && !self.last_errors.is_empty() {
            records.push(record(&me, "config_ok", "hosts/", Outcome::Ok));
        }
        for rec in records {
            if let Err(e) = self.root.append_audit(&rec, homelab_store::audit::retention_from_env()) {
                tracing::warn!(error = %e, "cannot append a configuration error to the audit log");
            }
        }
    }

    pub fn root(&self) -> &DataRoot {
        &self.root
    }

    /// Failed writes since start and the problem in force, if any.
    pub fn write_errors(&self) -> &WriteErrors {
        &self.write_errors
    }

    /// One reconcile: read → plan → apply → save (apply and save unless dry run).
    pub fn reconcile(&mut self, now: Timestamp) -> anyhow::Result<Report> {
        let n = self.bump("reconciles", 1);
        let span = tracing::info_span!("reconcile", n, dry_run = self.config.dry_run);
        let _enter = span.enter();
        let started = Instant::now();

        let read = self.read()?;
        let plan = self.plan(&read, now);
        let mut memory = plan.memory.clone();
        let applied = self.apply(&plan, &read.silences, &mut memory, now);
        let write_failures = applied.write_failures + self.save(&plan, &memory, &read.load, now);
        let Applied { created, cancelled, updated, .. } = applied;
        self.memory = memory;
        self.last_good = read.load.in_force;
        self.bump("actions_created", created as u64);
        self.bump("actions_cancelled", cancelled as u64);
        let elapsed = started.elapsed();
        self.bump("actions_updated", updated as u64);
        let mut report = Report { plan, config_errors: read.load.errors, created, cancelled, updated, elapsed, write_failures };
        if !self.config.dry_run {
            // Every other write worked: if the heartbeat does too, the problem is over (and the
            // heartbeat already says so).
            let clean = write_failures == 0;
            match self.write_heartbeat(now, &report, clean) {
                Ok(()) if clean => self.write_errors.succeeded(),
                Ok(()) => {}
                Err(e) => {
                    report.write_failures += 1;
                    self.write_errors.failed("the heartbeat", &e);
                }
            }
        }
        tracing::debug!(drifts = report.plan.drifts.len(), created, cancelled, elapsed_ms = elapsed.as_secs_f64() * 1e3, "reconciled");
        Ok(report)
    }

    /// Reads what the plan needs: hosts/ (reporting and auditing new configuration errors),
    /// world state, the active actions, the ended ones (by file name) and the silences.
    fn read(&mut self) -> anyhow::Result<Read> {
        let load =
            self.hosts_cache.load(&self.config.hosts, &self.last_good).with_context(|| format!("cannot read hosts folder {}", self.config.hosts.display()))?;
        if load.errors != self.last_errors {
            for e in &load.errors {
                tracing::error!("{e}: the last good version of this file stays in force");
            }
            if load.errors.is_empty() && !self.last_errors.is_empty() {
                tracing::info!("hosts/ is valid again");
            }
            if !self.config.dry_run {
                self.audit_config_errors(&load.errors);
            }
            self.last_errors = load.errors.clone();
        }
        let unknown_nodes = broken_without_last_good(&self.config.hosts, &load.errors, &load.in_force);

        let (services, nodes) = self.root.read_world().context("cannot read world/")?;
        let services = services.map(|s| s.services).unwrap_or_default();
        let nodes = nodes.map(|n| n.nodes).unwrap_or_default();
        let mut active = Vec::new();
        for state in [ActionState::Pending, ActionState::Approved, ActionState::Running] {
            active.extend(self.root.list_actions(state).with_context(|| format!("cannot list actions/{state}"))?.into_iter().map(|s| s.action));
        }
        let mut outcomes = Vec::new();
        for state in ActionState::ALL.into_iter().filter(|s| s.is_terminal()) {
            let names = list_names(&self.root.action_dir(state)).with_context(|| format!("cannot list actions/{state}"))?;
            outcomes.extend(names.iter().filter_map(|n| Outcome::from_file_name(state, n)));
        }

        // Silences (state/silences/): an unreadable folder mutes nothing, and says so.
        let silences = self.root.list_silences().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read state/silences/; no silence applies in this reconcile");
            Vec::new()
        });
        Ok(Read { load, unknown_nodes, services, nodes, active, outcomes, silences })
    }

    /// The pure plan of what was read.
    fn plan(&self, read: &Read, now: Timestamp) -> Plan {
        plan_with_silences(
            PlanInput {
                desired: &read.load.desired,
                unknown_nodes: &read.unknown_nodes,
                services: &read.services,
                nodes: &read.nodes,
                active: &read.active,
                outcomes: &read.outcomes,
                memory: &self.memory,
                policy: &self.policy,
                started_at: self.started_at,
                now,
            },
            &read.silences,
        )
    }

    /// Applies a plan (unless dry run): prunes expired silences, cancels, updates, then creates
    /// (a replacement whose cancel did not happen is not created: one remediation at a time).
    /// An auto-approval whose action was not written is taken back from `memory`.
    fn apply(&mut self, plan: &Plan, silences: &[Silence], memory: &mut SupervisorMemory, now: Timestamp) -> Applied {
        let mut applied = Applied::default();
        if self.config.dry_run {
            return applied;
        }
        if silences.iter().any(|s| !s.is_kept(now)) {
            let _ = self.root.prune_silences(now);
        }
        let skip = self.apply_cancels(plan, now, &mut applied);
        self.apply_updates(plan, now, &mut applied);
        for a in plan.create.iter().filter(|a| skip.contains(a.id.as_str())) {
            forget_auto_approval(memory, a, now);
        }
        for a in plan.create.iter().filter(|a| !skip.contains(a.id.as_str())) {
            match self.root.create_action(a) {
                Ok(()) => {
                    applied.created += 1;
                    tracing::info!(action = %a.id, state = %a.state, drift = %a.drift, trigger = %a.trigger, "proposed action");
                }
                Err(TransitionError::AlreadyExists { .. }) => tracing::debug!(action = %a.id, "already active"),
                // Nothing is on disk (a new action is one file, written whole or not at
                // all): the next reconcile plans it again. Its auto-approval did not happen.
                Err(e @ TransitionError::Io { .. }) => {
                    applied.write_failures += 1;
                    self.write_errors.failed(&format!("creating action {}", a.id), &e);
                    forget_auto_approval(memory, a, now);
                }
                Err(e) => tracing::error!(action = %a.id, error = %e, "cannot write action"),
            }
        }
        applied
    }

    /// Moves the plan's pending actions to cancelled; returns the replacements whose cancel did
    /// not happen (approved or rejected by a person meanwhile, or a failed write).
    fn apply_cancels<'p>(&mut self, plan: &'p Plan, now: Timestamp, applied: &mut Applied) -> BTreeSet<&'p str> {
        let mut skip: BTreeSet<&str> = BTreeSet::new();
        for c in &plan.cancel {
            let ok = match self.root.transition(&c.id, ActionState::Pending, ActionState::Cancelled, now, "supervisor", Some(c.reason.clone()), |_| {}) {
                Ok(_) => {
                    applied.cancelled += 1;
                    tracing::info!(action = %c.id, reason = %c.reason, "cancelled pending action");
                    true
                }
                // Approved or rejected by a person in the meantime: theirs wins.
                Err(TransitionError::NotInState { current, .. }) => {
                    tracing::info!(action = %c.id, now = ?current, "not cancelling: no longer pending");
                    false
                }
                // Still pending: the next reconcile plans the cancel again.
                Err(e @ TransitionError::Io { .. }) => {
                    applied.write_failures += 1;
                    self.write_errors.failed(&format!("cancelling action {}", c.id), &e);
                    false
                }
                Err(e) => {
                    tracing::error!(action = %c.id, error = %e, "cannot cancel");
                    false
                }
            };
            if let (false, Some(new)) = (ok, &c.replaced_by) {
                skip.insert(new);
            }
        }
        skip
    }

    /// Updates the drift fields of pending actions whose drift changed, with a history note.
    fn apply_updates(&mut self, plan: &Plan, now: Timestamp, applied: &mut Applied) {
        for u in &plan.update {
            let result = self.root.update_active(&u.id, ActionState::Pending, |a| {
                a.drift = u.drift.clone();
                a.trigger = u.trigger.clone();
                a.updated_at = now;
                a.history.push(homelab_core::HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".to_owned(), note: Some(u.note.clone()) });
            });
            match result {
                Ok(_) => {
                    applied.updated += 1;
                    tracing::info!(action = %u.id, note = %u.note, "updated pending action");
                }
                Err(TransitionError::NotInState { .. }) => tracing::info!(action = %u.id, "not updating: no longer pending"),
                Err(e @ TransitionError::Io { .. }) => {
                    applied.write_failures += 1;
                    self.write_errors.failed(&format!("updating action {}", u.id), &e);
                }
                Err(e) => tracing::error!(action = %u.id, error = %e, "cannot update"),
            }
        }
    }

    /// Saves (unless dry run) memory, `world/drift.json` and the last good host files when they
    /// changed or an earlier write failed; returns the number of failed writes.
    fn save(&mut self, plan: &Plan, memory: &SupervisorMemory, load: &HostsLoad, now: Timestamp) -> usize {
        let mut write_failures = 0;
        if !self.config.dry_run {
            // Memory and the last good host files are kept in memory whatever happens, and
            // written again until a write succeeds.
            if *memory != self.memory || self.memory_unsaved {
                self.memory_unsaved = match self.root.write_supervisor_memory(memory) {
                    Ok(()) => false,
                    Err(e) => {
                        write_failures += 1;
                        self.write_errors.failed(Doc::SupervisorMemory.name(), &e);
                        true
                    }
                };
            }
            // The one truth about drift (an empty list when there is none), whenever it changes.
            let drift = plan.drift_file(&self.policy, now);
            let fresh = self.last_drift.as_ref().is_some_and(|(d, at)| *d == drift.drifts && at.elapsed() < self.config.tick);
            if !fresh {
                match self.root.write_drift(&drift) {
                    Ok(()) => self.last_drift = Some((drift.drifts, std::time::Instant::now())),
                    Err(e) => {
                        write_failures += 1;
                        self.write_errors.failed(Doc::Drift.name(), &e);
                    }
                }
            }
            if load.in_force != self.last_good || self.last_good_unsaved {
                self.last_good_unsaved = match self.root.write_hosts_last_good(&load.in_force) {
                    Ok(()) => false,
                    Err(e) => {
                        write_failures += 1;
                        self.write_errors.failed(Doc::HostsLastGood.name(), &e);
                        true
                    }
                };
            }
        }
        write_failures
    }

    fn bump(&mut self, counter: &str, by: u64) -> u64 {
        let c = self.counters.entry(counter.to_owned()).or_default();
        *c += by;
        *c
    }

    fn write_heartbeat(&self, now: Timestamp, report: &Report, clean: bool) -> std::io::Result<()> {
        let mut hb = Heartbeat {
            counters: self.counters.clone(),
            config_errors: report.config_errors.clone(),
            extra: serde_json::json!({
                "drifts": report.plan.drifts.len(),
                "last_reconcile_ms": report.elapsed.as_secs_f64() * 1e3,
            }),
            ..homelab_store::daemon::heartbeat(DAEMON, self.started_at, now, self.config.tick)
        };
        self.write_errors.add_to_heartbeat(&mut hb);
        if clean {
            hb.extra[homelab_store::retry::LAST_WRITE_ERROR_FIELD] = serde_json::Value::Null;
        }
        self.root.write_heartbeat(DAEMON, &hb)
    }
}

/// Takes back the auto-approval `plan` recorded for an action that could not be created, so a
/// failed write does not use up the hourly cap. The key is `plan`'s: `node/service`, or the node.
fn forget_auto_approval(memory: &mut SupervisorMemory, action: &homelab_core::Action, now: Timestamp) {
    if action.state != ActionState::Approved {
        return;
    }
    let key = match &action.service {
        Some(s) => format!("{}/{s}", action.node),
        None => action.node.clone(),
    };
    if let Some(v) = memory.auto_approved.get_mut(&key) {
        if let Some(i) = v.iter().rposition(|at| *at == now) {
            v.remove(i);
        }
        if v.is_empty() {
            memory.auto_approved.remove(&key);
        }
    }
}

/// Folders whose file is broken and that have no last good version in force: their node's
/// desired state is unknown. The folder name stands in for the node name.
fn broken_without_last_good(hosts: &Path, errors: &[ConfigError], in_force: &BTreeMap<String, HostFile>) -> BTreeSet<String> {
    errors
        .iter()
        .filter_map(|e| {
            let rel = Path::new(&e.file).strip_prefix(hosts).ok()?;
            let folder = rel.components().next()?.as_os_str().to_str()?.to_owned();
            (!in_force.contains_key(&folder)).then_some(folder)
        })
        .collect()
}

/// True when a notification names only dot-files (temp files, `actions/.locks/*`): plumbing.
/// Only the last two components are looked at: the data root itself may live below a
/// dot-folder (a temp dir such as `/tmp/.tmpXYZ`).
fn only_plumbing(paths: &BTreeSet<PathBuf>) -> bool {
    let dotted = |c: Option<&std::ffi::OsStr>| c.and_then(|c| c.to_str()).is_some_and(|s| s.starts_with('.') && s != "." && s != "..");
    !paths.is_empty() && paths.iter().all(|p| dotted(p.file_name()) || dotted(p.parent().and_then(Path::file_name)))
}

/// Runs the supervisor until `shutdown` (or one pass with `--once`).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let once = config.once;
    let dry_run = config.dry_run;
    let (tick, debounce) = (config.tick, config.debounce);
    let hosts = config.hosts.clone();
    let mut sup = Supervisor::open(config)?;

    if once {
        let (sup, report) = tokio::task::spawn_blocking(move || {
            let r = sup.reconcile(chrono::Utc::now());
            (sup, r)
        })
        .await?;
        let report = report?;
        print_report(&report, dry_run);
        if let Some(problem) = sup.write_errors().current() {
            bail!(
                "{} write(s) failed; the last: {} (nothing partial is left; run again once the data root takes writes)",
                report.write_failures,
                problem.error
            );
        }
        if !report.config_errors.is_empty() {
            bail!(
                "hosts/ has {} error(s) (listed above); the last good version of each broken file (if there was one) stayed in force. Fix the file(s) and run again",
                report.config_errors.len()
            );
        }
        return Ok(());
    }

    let root = sup.root().clone();
    let (world, actions, silences) = (root.world_dir(), root.actions_dir(), root.silences_dir());
    if !dry_run && let Err(e) = std::fs::create_dir_all(&silences) {
        tracing::warn!(error = %e, "cannot create state/silences/");
    }
    let mut watched = vec![(world.as_path(), false), (actions.as_path(), true), (hosts.as_path(), true)];
    if silences.is_dir() {
        watched.push((silences.as_path(), false));
    }
    let mut watcher = homelab_store::watch::Watcher::new(&watched, tick).context("cannot watch world/, actions/ and hosts/")?;
    tracing::info!(root = %root.path().display(), hosts = %hosts.display(), tick_secs = tick.as_secs(), dry_run, "supervisor started");
    let mut first = true;
    let write_errors = sup.write_errors().clone();
    let mut last_reconcile = tokio::time::Instant::now();
    loop {
        if !first {
            match write_errors.retry_at() {
                // Writes are failing: reconcile again when the backoff says so, not on every
                // notification (the watcher keeps them; the retry reads everything anyway).
                // At least a second apart, even when a reconcile failed before writing.
                Some(at) => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at).max(last_reconcile + homelab_store::Backoff::DEFAULT_MIN)) => {}
                },
                None => {
                    let batch = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        b = watcher.next_batch(debounce) => b,
                    };
                    let Some(batch) = batch else { bail!("the file watcher stopped") };
                    if !batch.rescan && only_plumbing(&batch.paths) {
                        continue;
                    }
                }
            }
        }
        first = false;
        let (back, result) = tokio::task::spawn_blocking(move || {
            let r = sup.reconcile(chrono::Utc::now());
            (sup, r)
        })
        .await?;
        sup = back;
        last_reconcile = tokio::time::Instant::now();
        match result {
            Ok(report) if dry_run => print_report(&report, true),
            Ok(_) => {}
            // A half-written world file or a vanished hosts folder: try again on the next hint.
            Err(e) => tracing::error!(error = format!("{e:#}"), "reconcile failed; will retry"),
        }
    }
    tracing::info!("supervisor stopped");
    Ok(())
}

fn print_report(report: &Report, dry_run: bool) {
    use std::io::Write as _;
    // Write errors (a closed pipe, as in `| head`) are not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = if dry_run {
        write!(out, "dry run: nothing written\n{}", report.plan)
    } else {
        writeln!(out, "reconciled: {} drift(s), {} action(s) created, {} cancelled", report.plan.drifts.len(), report.created, report.cancelled)
    };
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    for e in &report.config_errors {
        let _ = writeln!(err, "error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_approve_values() {
        assert_eq!(parse_auto_approve("low"), Ok(true));
        assert_eq!(parse_auto_approve(""), Ok(false));
        assert_eq!(parse_auto_approve("off"), Ok(false));
        assert!(parse_auto_approve("high").is_err());
    }

    #[test]
    fn plumbing_paths_are_ignored() {
        let set = |ps: &[&str]| ps.iter().map(PathBuf::from).collect::<BTreeSet<_>>();
        assert!(only_plumbing(&set(&["/r/actions/.locks/x", "/r/actions/pending/.x.json.1.0.tmp"])));
        assert!(!only_plumbing(&set(&["/r/actions/.locks/x", "/r/actions/pending/x.json"])));
        assert!(!only_plumbing(&set(&["/r/world/services.json"])));
        assert!(!only_plumbing(&set(&[])));
        // A data root below a relative path like ./var, or below a dot-folder, is not plumbing.
        assert!(!only_plumbing(&set(&["./var/world/nodes.json"])));
        assert!(!only_plumbing(&set(&["/tmp/.tmpAbc/root/world/services.json"])));
        assert!(only_plumbing(&set(&["/tmp/.tmpAbc/root/world/.services.json.7.1.tmp"])));
    }

    #[test]
    fn broken_folder_without_last_good_is_unknown() {
        let e = |f: &str| ConfigError { file: f.into(), line: 1, column: 1, message: "x".into(), hint: None };
        let got = broken_without_last_good(
            Path::new("/h"),
            &[e("/h/edge-1/services.yaml"), e("/h/edge-2/services.yaml")],
            &BTreeMap::from([("edge-2".to_owned(), homelab_core::desired::parse_host_file("f", "edge-2", "services: {}").unwrap())]),
        );
        assert_eq!(got, BTreeSet::from(["edge-1".to_owned()]));
    }
}
