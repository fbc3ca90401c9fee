// tidy: long file: the snapshot builder beside the /summary, digest and drift view models, not yet split.
//! One consistent, cached view of the data root: world, desired state, drift, actions and the
//! daemons' heartbeats, with the `/summary` JSON, its ETag and the Markdown digest prepared once.
//!
//! Rebuilding reads every file it needs; readers share the last build until it is older than
//! the configured age or a file-system hint marked it dirty, so fifty mirrors polling `/summary`
//! cost one build, not fifty.
//!
//! **Each file on its own.** A file that does not parse (or cannot be read) never fails a build:
//! it is listed in `errors` (file and reason) and the view goes on with the last good copy of
//! that file kept in [`LastGood`] (or without it when there is none). A heartbeat that does not
//! parse reads as a stopped daemon.
//!
//! **Drift is read, never computed.** It is `world/drift.json`, the supervisor's own view with
//! what happens next about each drift; until the supervisor wrote it the view says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use homelab_core::desired::{ConfigError, DesiredState, HostFile};
use homelab_core::drift::DriftFile;
use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Action, ActionState, DiskLevel, Heartbeat, NodeStatus, ServiceStatus, Timestamp, rfc3339};
use homelab_store::named::display;
use homelab_store::{DataRoot, Doc};
use serde::Serialize;

/// How many terminal actions `/summary` and the pages show (newest first).
pub const RECENT_TERMINAL: usize = 50;

/// How many quarantined entries `/summary` lists (newest first).
pub const RECENT_QUARANTINE: usize = 20;

/// `GET /summary`: the document a mirror polls. Field names are a protocol: add, never rename.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub version: u32,
    /// When the observer last wrote world state (`null` before its first write).
    pub world_generated_at: Option<String>,
    pub nodes: BTreeMap<String, NodeSummary>,
    pub services: BTreeMap<String, BTreeMap<String, ServiceSummary>>,
    /// The entries of `world/drift.json` as the supervisor wrote them.
    pub drift: Vec<Drift>,
    /// Whether `drift` comes from a report of the supervisor, and from when.
    pub drift_report: DriftReport,
    pub actions: ActionsByState,
    pub counts: Counts,
    pub daemons: BTreeMap<String, DaemonSummary>,
    pub config_errors: Vec<ConfigError>,
    /// What sits in `quarantine/events/`, `quarantine/actions/` and `quarantine/outbox/`.
    pub quarantine: QuarantineSummary,
    /// Files of the data root that could not be read or do not parse, right now.
    pub errors: Vec<FileError>,
}

/// One file the view could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileError {
    /// Relative to the data root (`world/services.json`, `actions/running/x.json`,
    /// `state/heartbeat/observer.json`), or the hosts folder.
    pub file: String,
    /// Why: the parse error (with line and column) or the read error.
    pub reason: String,
    /// True when the view shows the last good copy of this file read earlier; false when it
    /// goes without it.
    pub last_good: bool,
}

/// `drift_report` in `/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// `reported` (drift is the supervisor's current file), `not_reported` (no
    /// `world/drift.json` yet: the supervisor has not run a reconcile), `unreadable` (the file
    /// does not parse: drift is its last good copy, or empty when there is none).
    #[schema(value_type = String)]
    pub state: &'static str,
    /// The `generated_at` of the report shown (`null` when none is shown).
    pub generated_at: Option<String>,
    /// One sentence for people.
    pub message: String,
}

/// `quarantine` in `/summary`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct QuarantineSummary {
    /// Quarantined entries (files, symlinks, folders) of every quarantine folder; `.reason` files and
    /// dot-files are not counted.
    pub count: usize,
    /// The newest, newest first, at most [`RECENT_QUARANTINE`].
    #[schema(max_items = 20)]
    pub recent: Vec<QuarantinedFile>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuarantinedFile {
    /// Relative to the data root: `quarantine/events/<name>`.
    pub file: String,
    /// The text of its `.reason` file, trimmed (or a placeholder in parentheses).
    pub reason: String,
    /// The `.reason` file's modification time.
    pub at: String,
}

/// One node: every field of its entry in `world/nodes.json` (`homelab_core::world::NodeState`),
/// with `status` as the UI sees it now and the file's own as `world_status`, plus `desired`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeSummary {
    /// `up` or `stale` (no event within the stale-after period, or never seen), as of this
    /// build of the view.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub last_seen: Option<String>,
    pub disk_pressure: Option<DiskLevel>,
    pub agent_version: Option<String>,
    /// Whether hosts/ describes this node.
    pub desired: bool,
    /// `status` as `world/nodes.json` holds it: the observer's verdict when it wrote the file
    /// (at `world_generated_at`). Absent for a node world state does not know (hosts/ names it
    /// but it never reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_status: Option<NodeStatus>,
    /// Per mount, as the agent's newest heartbeat reported it (`world/nodes.json` as is):
    /// `mount`, `used_pct`, `level`, `total_bytes`, `used_bytes`, `available_bytes`, and `error`
    /// when the mount could not be read. Absent when world state has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<DiskSummary>>)]
    pub disks: Option<serde_json::Value>,
    /// Seconds since the node booted, from the agent's newest heartbeat. Absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
}

/// One mount in `disks` (documentation only: `disks` is passed on as the agent reported it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiskSummary {
    pub mount: String,
    /// Used percent as `df` shows it: used / (used + available to unprivileged users).
    pub used_pct: f64,
    pub level: DiskLevel,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// Set when the mount could not be read; the mount then counts as `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One service: every field of its entry in `world/services.json`
/// (`homelab_core::world::ServiceState`, times as RFC 3339 text), plus `desired`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceSummary {
    pub status: ServiceStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub since: String,
    pub last_event_at: String,
    pub last_event_id: String,
    pub consecutive_failures: u32,
    /// Whether hosts/ wants it (monitored) on this node. Also true while the node's desired
    /// state is unknown (no hosts/ folder, or its file is broken with no last good version):
    /// unknown never reads as "not desired".
    pub desired: bool,
}

/// One drift and what happens next, as in `world/drift.json` (times as RFC 3339 text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Drift {
    pub node: String,
    pub service: Option<String>,
    /// `missing_service`, `unhealthy_service`, `disk_pressure`, `node_unreachable`.
    #[schema(value_type = homelab_core::drift::DriftKind)]
    pub kind: String,
    /// The unhealthy reason, `missing`, `high`, or `stale`/`never_seen`.
    pub trigger: String,
    /// A dependency of this service that is itself in drift.
    pub root_cause: Option<String>,
    pub since: Option<String>,
    /// What happens next: `action_created`, `already_active`, `root_cause_elsewhere`,
    /// `remediation_exhausted`, `rejected_snoozed`, `waiting_grace`, `node_unreachable`, …
    pub decision: String,
    /// One sentence: what happens next and why.
    pub reason: String,
    /// The action the decision is about, if any.
    pub action_id: Option<String>,
    /// When the decision ends by time, if it does.
    pub until: Option<String>,
}

impl Drift {
    fn of(d: &homelab_core::drift::DriftEntry) -> Drift {
        Drift {
            node: d.node.clone(),
            service: d.service.clone(),
            kind: d.kind.as_str().to_owned(),
            trigger: d.trigger.clone(),
            root_cause: d.root_cause.clone(),
            since: d.since.map(rfc3339),
            decision: d.decision.as_str().to_owned(),
            reason: d.reason.clone(),
            action_id: d.action_id.clone(),
            until: d.until.map(rfc3339),
        }
    }

    /// Whether an operator may ask for this drift's action again (Retry / Propose again).
    pub fn retryable(&self) -> bool {
        matches!(self.decision.as_str(), "remediation_exhausted" | "rejected_snoozed") && self.action_id.is_some()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionSummary {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = homelab_core::ActionType)]
    pub kind: String,
    pub risk: homelab_core::Risk,
    pub state: ActionState,
    pub node: String,
    pub service: Option<String>,
    pub drift: String,
    pub trigger: String,
    pub root_cause: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Who moved it last (`supervisor`, `ui:alice`, …) and why.
    pub last_by: Option<String>,
    pub last_note: Option<String>,
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ActionsByState {
    pub pending: Vec<ActionSummary>,
    pub approved: Vec<ActionSummary>,
    pub running: Vec<ActionSummary>,
    /// Terminal actions (completed, failed, rejected, cancelled), newest first, at most 50.
    pub recent: Vec<ActionSummary>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub nodes: usize,
    pub nodes_up: usize,
    pub nodes_stale: usize,
    pub services: usize,
    pub services_healthy: usize,
    pub services_unhealthy: usize,
    /// Monitored services hosts/ describes (its last good version of each file); 0 without hosts/.
    pub services_desired: usize,
    /// Of those, the ones with no state in the world yet (never reported).
    pub services_not_reporting: usize,
    pub drift: usize,
    /// Every action file on disk, by state folder.
    #[schema(value_type = BTreeMap<String, usize>)]
    pub actions: BTreeMap<&'static str, usize>,
    pub config_errors: usize,
    /// Files that could not be read or do not parse (`errors`).
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DaemonSummary {
    pub started_at: Option<String>,
    pub last_loop_at: Option<String>,
    pub interval_secs: Option<u64>,
    /// No heartbeat for three intervals, or the file does not parse.
    pub stopped: bool,
}

/// Everything the pages, the API and the metrics read, built at one instant.
#[derive(Debug)]
pub struct Snapshot {
    pub built_at: Timestamp,
    pub summary: Summary,
    /// Shared, so answering a request copies no bytes.
    pub summary_json: axum::body::Bytes,
    /// `summary_json` compressed once with gzip, for clients that accept it: a mirror of a
    /// big fleet then moves a tenth of the bytes and the server compresses once per change,
    /// not once per request.
    pub summary_gzip: axum::body::Bytes,
    /// A strong ETag of `summary_json`, quoted.
    pub etag: String,
    pub markdown: String,
    pub heartbeats: BTreeMap<String, Option<Heartbeat>>,
    /// Approvals recorded in action histories on disk, by channel (`ui`, `api`, `telegram`, `policy`, …).
    pub approvals_by_channel: BTreeMap<String, u64>,
    pub desired: Option<DesiredState>,
    /// Quarantined entries by folder (`events`, `actions`).
    pub quarantine_by_kind: BTreeMap<&'static str, usize>,
    /// The world files in force (each the current file, or its last good copy).
    pub services_file: Option<ServicesFile>,
    pub nodes_file: Option<NodesFile>,
    /// The drift report in force (the current file, or its last good copy).
    pub drift_file: Option<DriftFile>,
    /// Every history entry of every action file on disk, newest first (at most
    /// [`ACTION_LOG`]): approvals, rejections, executor starts and results for the timelines.
    pub action_log: Vec<ActionLogEntry>,
}

/// How many action history entries the view keeps for the timelines.
pub const ACTION_LOG: usize = 5_000;

/// One history entry of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionLogEntry {
    pub at: Timestamp,
    pub id: String,
    pub kind: homelab_core::ActionType,
    pub node: String,
    pub service: Option<String>,
    /// The state it moved to.
    pub state: ActionState,
    pub by: String,
    pub note: Option<String>,
    /// The verification verdict, on the entry that ended a successful run.
    pub verified: Option<bool>,
}

impl ActionLogEntry {
    /// The word the timelines use: `proposed`, `approved`, `started`, `completed`, …
    pub fn verb(&self) -> &'static str {
        log_verb(self.state)
    }
}

/// `proposed` (pending), `started` (running), else the state's name.
pub fn log_verb(state: ActionState) -> &'static str {
    match state {
        ActionState::Pending => "proposed",
        ActionState::Running => "started",
        other => other.as_str(),
    }
}

/// What a build needs besides the data root.
#[derive(Debug, Clone)]
pub struct BuildOptions<'a> {
    pub hosts: Option<&'a Path>,
    pub node_stale_after: Duration,
}

/// The last good copy of every file the view reads, kept in memory between builds: a file that
/// stops parsing is shown as it last was (and reported), never as missing.
#[derive(Debug, Default)]
pub struct LastGood {
    services: Option<ServicesFile>,
    nodes: Option<NodesFile>,
    drift: Option<DriftFile>,
    /// Per hosts folder, the host file in force; `None` until the first read of hosts/ (then
    /// seeded from the supervisor's `state/hosts_last_good.json`).
    hosts: Option<BTreeMap<String, HostFile>>,
    /// Per (state folder, file name), the last content that parsed.
    actions: BTreeMap<(ActionState, String), Action>,
}

/// An io error's text without the absolute path the store puts in front.
fn reason_of(e: &std::io::Error, path: &Path) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", path.display());
    text.strip_prefix(&prefix).map(str::to_owned).unwrap_or(text)
}

/// Reads one JSON file below the root on its own: the file when it parses (and it becomes the
/// last good copy), nothing when it does not exist, else the error is recorded and the last
/// good copy is used.
fn read_one<T: Clone>(
    root: &DataRoot,
    doc: Doc,
    read: std::io::Result<Option<T>>,
    last: &mut Option<T>,
    errors: &mut Vec<FileError>,
) -> (Option<T>, Option<String>) {
    match read {
        Ok(Some(v)) => {
            *last = Some(v.clone());
            (Some(v), None)
        }
        Ok(None) => {
            *last = None;
            (None, None)
        }
        Err(e) => {
            let reason = reason_of(&e, &root.display_path(doc));
            errors.push(FileError { file: doc.name().to_owned(), reason: reason.clone(), last_good: last.is_some() });
            (last.clone(), Some(reason))
        }
    }
}

/// The hosts folder names whose file is broken and has no version in force: their node's
/// desired state is unknown (the folder is the node's name by convention, as the supervisor
/// assumes).
fn unknown_folders(hosts: &Path, errors: &[ConfigError], in_force: &BTreeMap<String, HostFile>) -> BTreeSet<String> {
    errors
        .iter()
        .filter_map(|e| Path::new(&e.file).strip_prefix(hosts).ok()?.components().next()?.as_os_str().to_str().map(str::to_owned))
        .filter(|folder| !in_force.contains_key(folder))
        .collect()
}

impl Snapshot {
    /// Reads the data root, each file on its own: never fails because of a file's content or
    /// a folder that cannot be read; those are in `summary.errors`.
    pub fn build(root: &DataRoot, opts: &BuildOptions<'_>, last: &mut LastGood, now: Timestamp) -> Snapshot {
        let mut errors = Vec::new();
        let (services_file, _) = read_one(root, Doc::Services, root.read_services(), &mut last.services, &mut errors);
        let (nodes_file, _) = read_one(root, Doc::Nodes, root.read_nodes(), &mut last.nodes, &mut errors);
        let (drift_file, drift_error) = read_one(root, Doc::Drift, root.read_drift(), &mut last.drift, &mut errors);

        let mut unknown_nodes = BTreeSet::new();
        let (desired, mut config_errors) = match opts.hosts {
            Some(dir) if dir.is_dir() => {
                let last_hosts = last.hosts.get_or_insert_with(|| match root.read_hosts_last_good() {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(file = Doc::HostsLastGood.name(), error = %e, "cannot read the supervisor's last good host files; starting without them");
                        BTreeMap::new()
                    }
                });
                match homelab_store::hosts::load_hosts(dir, last_hosts) {
                    Ok(load) => {
                        unknown_nodes = unknown_folders(dir, &load.errors, &load.in_force);
                        *last_hosts = load.in_force;
                        (Some(load.desired), load.errors)
                    }
                    Err(e) => {
                        errors.push(FileError { file: dir.display().to_string(), reason: format!("cannot read the hosts folder: {e}"), last_good: true });
                        let mut d = DesiredState::default();
                        for f in last_hosts.values() {
                            d.hosts.entry(f.spec.node.clone()).or_insert_with(|| f.spec.clone());
                        }
                        (Some(d), Vec::new())
                    }
                }
            }
            _ => (None, Vec::new()),
        };

        let mut actions: BTreeMap<ActionState, Vec<Action>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for state in ActionState::ALL {
            let dir = root.action_dir(state);
            let list = actions.entry(state).or_default();
            let names = match homelab_store::list_names(&dir) {
                Ok(names) => names,
                Err(e) => {
                    // Unlistable folder: keep showing what it held.
                    errors.push(FileError { file: display::action(state, ""), reason: format!("cannot list: {e}"), last_good: true });
                    for ((s, name), a) in last.actions.iter().filter(|((s, _), _)| *s == state) {
                        seen.insert((*s, name.clone()));
                        list.push(a.clone());
                    }
                    continue;
                }
            };
            for name in names.into_iter().filter(|n| n.ends_with(".json")) {
                let path = dir.join(&name);
                let key = (state, name);
                match homelab_store::read_json_file::<Action>(&path) {
                    Ok(Some(mut a)) => {
                        a.state = state;
                        last.actions.insert(key.clone(), a.clone());
                        seen.insert(key);
                        list.push(a);
                    }
                    Ok(None) => {} // moved on between listing and reading
                    Err(e) => {
                        let good = last.actions.get(&key).cloned();
                        errors.push(FileError { file: display::action(state, &key.1), reason: reason_of(&e, &path), last_good: good.is_some() });
                        if let Some(a) = good {
                            list.push(a);
                        }
                        seen.insert(key);
                    }
                }
            }
        }
        last.actions.retain(|k, _| seen.contains(k));

        let mut heartbeats = BTreeMap::new();
        // Each file on its own: a corrupt heartbeat is that daemon shown as stopped, not a
        // failed page.
        match root.read_heartbeats_each() {
            Ok(each) => {
                for (name, value) in each {
                    let file = display::heartbeat(&name);
                    let hb = match value {
                        Ok(v) => match serde_json::from_value::<Heartbeat>(v) {
                            Ok(hb) => Some(hb),
                            Err(e) => {
                                errors.push(FileError { file, reason: format!("not a heartbeat: {e}"), last_good: false });
                                None
                            }
                        },
                        Err(e) => {
                            let shown = root.heartbeat_display_path(&name);
                            let reason = e.strip_prefix(&format!("{}: ", shown.display())).unwrap_or(&e).to_owned();
                            errors.push(FileError { file, reason, last_good: false });
                            None
                        }
                    };
                    if let Some(hb) = &hb {
                        for e in &hb.config_errors {
                            if !config_errors.contains(e) {
                                config_errors.push(e.clone());
                            }
                        }
                    }
                    heartbeats.insert(name, hb);
                }
            }
            Err(e) => errors.push(FileError { file: display::HEARTBEATS.into(), reason: format!("cannot list: {e}"), last_good: false }),
        }
        let quarantine = match root.quarantine_listing(RECENT_QUARANTINE) {
            Ok(q) => q,
            Err(e) => {
                errors.push(FileError { file: display::QUARANTINE.into(), reason: e.to_string(), last_good: false });
                homelab_store::quarantine::QuarantineListing::default()
            }
        };
        let drift_report = drift_report(drift_file.as_ref(), drift_error.as_deref());
        Snapshot::from_parts(
            Parts {
                services_file,
                nodes_file,
                desired,
                unknown_nodes,
                config_errors,
                actions,
                heartbeats,
                quarantine,
                drift_file,
                drift_report: Some(drift_report),
                errors,
            },
            opts.node_stale_after,
            now,
        )
    }

    pub fn from_parts(p: Parts, stale_after: Duration, now: Timestamp) -> Snapshot {
        let wanted = p.desired.as_ref().map(|d| d.monitored_names()).unwrap_or_default();
        // Unknown desired state (no hosts/, or a broken file with no last good version) never
        // reads as "not desired".
        let unknown = |node: &str| p.desired.is_none() || p.unknown_nodes.contains(node);
        let nodes = node_summaries(p.nodes_file.as_ref(), &wanted, &p.unknown_nodes, stale_after, now);
        let services = service_summaries(p.services_file.as_ref(), &wanted, unknown);
        let drift: Vec<Drift> = p.drift_file.as_ref().map(|f| f.drifts.iter().map(Drift::of).collect()).unwrap_or_default();
        let drift_report = p.drift_report.unwrap_or_else(|| self::drift_report(p.drift_file.as_ref(), None));
        let counts = Counts {
            nodes: nodes.len(),
            nodes_up: nodes.values().filter(|n| n.status == "up").count(),
            nodes_stale: nodes.values().filter(|n| n.status != "up").count(),
            services: services.values().map(|m| m.len()).sum(),
            services_healthy: services.values().flat_map(|m| m.values()).filter(|s| s.status == ServiceStatus::Healthy).count(),
            services_unhealthy: services.values().flat_map(|m| m.values()).filter(|s| s.status == ServiceStatus::Unhealthy).count(),
            services_desired: wanted.values().map(BTreeSet::len).sum(),
            services_not_reporting: wanted.iter().map(|(n, set)| set.iter().filter(|sv| !services.get(n).is_some_and(|m| m.contains_key(*sv))).count()).sum(),
            drift: drift.len(),
            actions: ActionState::ALL.iter().map(|s| (s.as_str(), p.actions.get(s).map_or(0, Vec::len))).collect(),
            config_errors: p.config_errors.len(),
            errors: p.errors.len(),
        };
        let summary = Summary {
            version: 1,
            world_generated_at: p.services_file.as_ref().map(|s| rfc3339(s.generated_at)),
            nodes,
            services,
            drift,
            drift_report,
            actions: actions_by_state(&p.actions),
            counts,
            daemons: daemon_summaries(&p.heartbeats, now),
            config_errors: p.config_errors,
            quarantine: QuarantineSummary {
                count: p.quarantine.count(),
                recent: p.quarantine.recent.iter().map(|e| QuarantinedFile { file: e.file.clone(), reason: e.reason.clone(), at: rfc3339(e.at) }).collect(),
            },
            errors: p.errors,
        };
        let summary_json = axum::body::Bytes::from(serde_json::to_vec(&summary).expect("summary serializes"));
        Snapshot {
            built_at: now,
            etag: etag_of(&summary_json),
            summary_gzip: gzip(&summary_json),
            markdown: markdown(&summary),
            summary,
            summary_json,
            heartbeats: p.heartbeats,
            approvals_by_channel: approvals_by_channel(&p.actions),
            desired: p.desired,
            quarantine_by_kind: p.quarantine.by_kind,
            services_file: p.services_file,
            nodes_file: p.nodes_file,
            drift_file: p.drift_file,
            action_log: action_log(&p.actions),
        }
    }
}

/// One row per node world state knows and per node desired state names (those never seen are
/// stale).
fn node_summaries(
    nodes_file: Option<&NodesFile>,
    wanted: &BTreeMap<String, BTreeSet<String>>,
    unknown_nodes: &BTreeSet<String>,
    stale_after: Duration,
    now: Timestamp,
) -> BTreeMap<String, NodeSummary> {
    let mut nodes = BTreeMap::new();
    for (name, n) in nodes_file.map(|n| &n.nodes).into_iter().flatten() {
        let up = n.last_seen.is_some_and(|seen| now.signed_duration_since(seen).to_std().unwrap_or_default() <= stale_after);
        nodes.insert(
            name.clone(),
            NodeSummary {
                status: if up { "up" } else { "stale" },
                last_seen: n.last_seen.map(rfc3339),
                disk_pressure: n.disk_pressure,
                agent_version: n.agent_version.clone(),
                desired: wanted.contains_key(name) || unknown_nodes.contains(name),
                world_status: Some(n.status),
                disks: n.disks.clone(),
                uptime_secs: n.uptime_secs,
            },
        );
    }
    for name in wanted.keys() {
        nodes.entry(name.clone()).or_insert(NodeSummary {
            status: "stale",
            last_seen: None,
            disk_pressure: None,
            agent_version: None,
            desired: true,
            world_status: None,
            disks: None,
            uptime_secs: None,
        });
    }
    nodes
}

/// World state's services per node, each marked desired or not (`unknown(node)`: desired
/// state of that node is not known, so it counts as desired).
fn service_summaries(
    services_file: Option<&ServicesFile>,
    wanted: &BTreeMap<String, BTreeSet<String>>,
    unknown: impl Fn(&str) -> bool,
) -> BTreeMap<String, BTreeMap<String, ServiceSummary>> {
    let mut services: BTreeMap<String, BTreeMap<String, ServiceSummary>> = BTreeMap::new();
    for (node, svcs) in services_file.map(|s| &s.services).into_iter().flatten() {
        let entry = services.entry(node.clone()).or_default();
        for (name, s) in svcs {
            let desired = unknown(node) || wanted.get(node).is_some_and(|w| w.contains(name));
            entry.insert(
                name.clone(),
                ServiceSummary {
                    status: s.status,
                    reason: s.reason.clone(),
                    detail: s.detail.clone(),
                    since: rfc3339(s.since),
                    last_event_at: rfc3339(s.last_event_at),
                    last_event_id: s.last_event_id.to_string(),
                    consecutive_failures: s.consecutive_failures,
                    desired,
                },
            );
        }
    }
    services
}

fn action_summary(a: &Action) -> ActionSummary {
    ActionSummary {
        id: a.id.clone(),
        kind: a.kind.as_str().to_owned(),
        risk: a.risk,
        state: a.state,
        node: a.node.clone(),
        service: a.service.clone(),
        drift: a.drift.clone(),
        trigger: a.trigger.clone(),
        root_cause: a.root_cause.clone(),
        created_at: rfc3339(a.created_at),
        updated_at: rfc3339(a.updated_at),
        last_by: a.history.last().map(|h| h.by.clone()),
        last_note: a.history.last().and_then(|h| h.note.clone()),
        verified: a.result.as_ref().and_then(|r| r.verified),
    }
}

/// Active actions by state, and the most recently finished ones.
fn actions_by_state(actions: &BTreeMap<ActionState, Vec<Action>>) -> ActionsByState {
    let list = |s: ActionState| actions.get(&s).map(|v| v.iter().map(action_summary).collect::<Vec<_>>()).unwrap_or_default();
    let mut terminal: Vec<&Action> = ActionState::ALL.iter().filter(|s| s.is_terminal()).flat_map(|s| actions.get(s).into_iter().flatten()).collect();
    terminal.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
    ActionsByState {
        pending: list(ActionState::Pending),
        approved: list(ActionState::Approved),
        running: list(ActionState::Running),
        recent: terminal.iter().take(RECENT_TERMINAL).map(|a| action_summary(a)).collect(),
    }
}

/// Every history entry of every action, newest first, at most [`ACTION_LOG`].
fn action_log(actions: &BTreeMap<ActionState, Vec<Action>>) -> Vec<ActionLogEntry> {
    let mut log: Vec<ActionLogEntry> = actions
        .values()
        .flatten()
        .flat_map(|a| {
            let last = a.history.len().saturating_sub(1);
            a.history.iter().enumerate().map(move |(i, h)| ActionLogEntry {
                at: h.at,
                id: a.id.clone(),
                kind: a.kind,
                node: a.node.clone(),
                service: a.service.clone(),
                state: h.state,
                by: h.by.clone(),
                note: h.note.clone(),
                verified: if i == last { a.result.as_ref().and_then(|r| r.verified) } else { None },
            })
        })
        .collect();
    log.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
    log.truncate(ACTION_LOG);
    log
}

/// How many approvals each channel gave (`ui`, `api`, `telegram`, `cli`, …: the part of
/// `history[].by` before the colon).
fn approvals_by_channel(actions: &BTreeMap<ActionState, Vec<Action>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for a in actions.values().flatten() {
        for h in a.history.iter().filter(|h| h.state == ActionState::Approved) {
            let channel = h.by.split(':').next().unwrap_or("unknown").to_owned();
            *out.entry(channel).or_insert(0) += 1;
        }
    }
    out
}

fn daemon_summaries(heartbeats: &BTreeMap<String, Option<Heartbeat>>, now: Timestamp) -> BTreeMap<String, DaemonSummary> {
    heartbeats
        .iter()
        .map(|(name, hb)| {
            let d = match hb {
                Some(hb) => DaemonSummary {
                    started_at: Some(rfc3339(hb.started_at)),
                    last_loop_at: Some(rfc3339(hb.last_loop_at)),
                    interval_secs: Some(hb.interval_secs),
                    stopped: hb.is_stopped(now),
                },
                None => DaemonSummary { started_at: None, last_loop_at: None, interval_secs: None, stopped: true },
            };
            (name.clone(), d)
        })
        .collect()
}

/// What the drift section says about where its rows come from.
pub fn drift_report(file: Option<&DriftFile>, error: Option<&str>) -> DriftReport {
    let generated_at = file.map(|f| rfc3339(f.generated_at));
    match (file, error) {
        (_, Some(e)) => DriftReport {
            state: "unreadable",
            message: match &generated_at {
                Some(at) => format!("{} does not parse ({e}); showing its last good copy, from {at}.", Doc::Drift),
                None => format!("{} does not parse ({e}); no drift can be shown until the supervisor writes it again.", Doc::Drift),
            },
            generated_at,
        },
        (Some(_), None) => DriftReport { state: "reported", message: String::new(), generated_at },
        (None, None) => DriftReport {
            state: "not_reported",
            message: format!("The supervisor has not reported yet (no {}): drift shows once it has run a reconcile.", Doc::Drift),
            generated_at: None,
        },
    }
}

/// The raw inputs of a snapshot (split out so tests can build one without a disk).
#[derive(Debug, Default)]
pub struct Parts {
    pub services_file: Option<ServicesFile>,
    pub nodes_file: Option<NodesFile>,
    pub desired: Option<DesiredState>,
    /// Nodes whose desired state is unknown (a broken host file without a last good version).
    pub unknown_nodes: BTreeSet<String>,
    pub config_errors: Vec<ConfigError>,
    pub actions: BTreeMap<ActionState, Vec<Action>>,
    pub heartbeats: BTreeMap<String, Option<Heartbeat>>,
    pub quarantine: homelab_store::quarantine::QuarantineListing,
    pub drift_file: Option<DriftFile>,
    /// `None`: derived from `drift_file` (reported or not reported).
    pub drift_report: Option<DriftReport>,
    pub errors: Vec<FileError>,
}

fn gzip(bytes: &[u8]) -> axum::body::Bytes {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 8), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to memory");
    axum::body::Bytes::from(enc.finish().expect("writing to memory"))
}

/// The ETag of the gzip representation of the same content.
pub fn gzip_etag(etag: &str) -> String {
    format!("{}-gz\"", etag.trim_end_matches('"'))
}

/// A strong ETag: a 64-bit hash of the bytes (SipHash with fixed keys; not a secret, only a
/// change detector), quoted.
pub fn etag_of(bytes: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:016x}-{:x}\"", h.finish(), bytes.len())
}

/// The "Copy for AI" digest: what is wrong, in a form a person or a model can read at once.
/// Healthy services are counted, not listed, so the digest stays short on a big fleet.
pub fn markdown(s: &Summary) -> String {
    let c = &s.counts;
    let mut m = String::new();
    let _ = writeln!(m, "# Homelab status");
    let _ = writeln!(m);
    let _ = writeln!(m, "World state as of {}.", s.world_generated_at.as_deref().unwrap_or("(never written)"));
    let services = if c.services_desired > 0 {
        format!(
            "{} desired in hosts/, {} reporting ({} healthy, {} unhealthy), {} never reported",
            c.services_desired, c.services, c.services_healthy, c.services_unhealthy, c.services_not_reporting
        )
    } else {
        format!("{} ({} healthy, {} unhealthy)", c.services, c.services_healthy, c.services_unhealthy)
    };
    let _ = writeln!(
        m,
        "Nodes: {} ({} up, {} stale). Services: {services}. Drift: {}. Actions pending: {}, approved: {}, running: {}.",
        c.nodes,
        c.nodes_up,
        c.nodes_stale,
        c.drift,
        s.actions.pending.len(),
        s.actions.approved.len(),
        s.actions.running.len()
    );
    let _ = writeln!(m, "\n## Nodes\n");
    for (name, n) in &s.nodes {
        let disk = n.disk_pressure.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(m, "- {name}: {}, last seen {}, disk pressure {disk}", n.status, n.last_seen.as_deref().unwrap_or("never"));
    }
    let _ = writeln!(m, "\n## Unhealthy services\n");
    let mut any = false;
    for (node, svcs) in &s.services {
        for (name, sv) in svcs.iter().filter(|(_, sv)| sv.status == ServiceStatus::Unhealthy) {
            any = true;
            let detail = sv.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
            let _ = writeln!(
                m,
                "- {node}/{name}: {} since {} ({} consecutive failures){detail}",
                sv.reason.as_deref().unwrap_or("unhealthy"),
                sv.since,
                sv.consecutive_failures
            );
        }
    }
    if !any {
        let _ = writeln!(m, "None.");
    }
    let _ = writeln!(m, "\n## Drift\n");
    let r = &s.drift_report;
    match r.state {
        "reported" => {
            let _ = writeln!(m, "As reported by the supervisor at {}.\n", r.generated_at.as_deref().unwrap_or("?"));
        }
        _ => {
            let _ = writeln!(m, "{}\n", r.message);
        }
    }
    if s.drift.is_empty() && r.state == "reported" {
        let _ = writeln!(m, "None.");
    }
    for d in &s.drift {
        let what = d.service.as_ref().map_or_else(|| d.node.clone(), |sv| format!("{}/{sv}", d.node));
        let rc = d.root_cause.as_ref().map(|r| format!(", root cause: {r}")).unwrap_or_default();
        let since = d.since.as_ref().map(|t| format!(" since {t}")).unwrap_or_default();
        let act = d.action_id.as_ref().map(|a| format!(", action: {a}")).unwrap_or_default();
        let until = d.until.as_ref().map(|u| format!(", until {u}")).unwrap_or_default();
        let _ = writeln!(m, "- {what}: {} ({}){rc}{since} — next: {}{act}{until}: {}", d.kind, d.trigger, d.decision, one_line(&d.reason));
    }
    let _ = writeln!(m, "\n## Actions\n");
    let active: Vec<&ActionSummary> = s.actions.pending.iter().chain(&s.actions.approved).chain(&s.actions.running).collect();
    if active.is_empty() {
        let _ = writeln!(m, "No active actions.");
    }
    for a in active {
        let _ = writeln!(m, "- {} [{}] {} risk, for {} ({}), since {}", a.id, a.state, risk_word(a.risk), a.drift, a.trigger, a.created_at);
    }
    for a in s.actions.recent.iter().take(10) {
        let _ = writeln!(m, "- {} [{}] at {}{}", a.id, a.state, a.updated_at, a.last_note.as_ref().map(|n| format!(": {n}")).unwrap_or_default());
    }
    let _ = writeln!(m, "\n## Daemons\n");
    if s.daemons.is_empty() {
        let _ = writeln!(m, "No heartbeats.");
    }
    for (name, d) in &s.daemons {
        let state = if d.stopped { "STOPPED" } else { "running" };
        let _ = writeln!(m, "- {name}: {state}, last loop {}", d.last_loop_at.as_deref().unwrap_or("unknown"));
    }
    if s.quarantine.count > 0 {
        let q = &s.quarantine;
        let _ = writeln!(m, "\n## Quarantine\n");
        let _ = writeln!(m, "{} quarantined (files that were not valid and were moved aside; see each `.reason` file). Newest:", q.count);
        for e in q.recent.iter().take(10) {
            let _ = writeln!(m, "- {} at {}: {}", e.file, e.at, one_line(&e.reason));
        }
    }
    if !s.errors.is_empty() {
        let _ = writeln!(m, "\n## Unreadable files\n");
        for e in &s.errors {
            let shown = if e.last_good { "showing its last good copy" } else { "not shown" };
            let _ = writeln!(m, "- {}: {} ({shown})", e.file, one_line(&e.reason));
        }
    }
    if !s.config_errors.is_empty() {
        let _ = writeln!(m, "\n## Configuration errors\n");
        for e in &s.config_errors {
            let _ = writeln!(m, "- {}:{}:{}: {}", e.file, e.line, e.column, e.message);
        }
    }
    m
}

/// A multi-line text on one line (reason files carry the origin on a second line).
pub fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

pub fn risk_word(r: impl std::borrow::Borrow<homelab_core::Risk>) -> &'static str {
    match r.borrow() {
        homelab_core::Risk::Low => "low",
        homelab_core::Risk::Guarded => "guarded",
    }
}

#[cfg(test)]
mod tests;
