//! One consistent, cached view of the data root: world, desired state, drift, actions and the
//! daemons' heartbeats, with the `/summary` JSON, its ETag and the Markdown digest prepared once.
//!
//! Rebuilding reads every file it needs; readers share the last build until it is older than
//! the configured age or a file-system hint marked it dirty, so fifty mirrors polling `/summary`
//! cost one build, not fifty.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use homelab_core::desired::{ConfigError, DesiredState};
use homelab_core::world::{NodesFile, ServicesFile};
use homelab_core::{Action, ActionState, DiskLevel, Heartbeat, ServiceStatus, Timestamp, rfc3339};
use homelab_store::DataRoot;
use serde::Serialize;

/// How many terminal actions `/summary` and the pages show (newest first).
pub const RECENT_TERMINAL: usize = 50;

/// How many quarantined entries `/summary` lists (newest first).
pub const RECENT_QUARANTINE: usize = 20;

/// `GET /summary`: the document a mirror polls. Field names are a protocol: add, never rename.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub version: u32,
    /// When the observer last wrote world state (`null` before its first write).
    pub world_generated_at: Option<String>,
    pub nodes: BTreeMap<String, NodeSummary>,
    pub services: BTreeMap<String, BTreeMap<String, ServiceSummary>>,
    pub drift: Vec<Drift>,
    pub actions: ActionsByState,
    pub counts: Counts,
    pub daemons: BTreeMap<String, DaemonSummary>,
    pub config_errors: Vec<ConfigError>,
    /// What sits in `quarantine/events/` and `quarantine/actions/`.
    pub quarantine: QuarantineSummary,
}

/// `quarantine` in `/summary`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuarantineSummary {
    /// Quarantined entries (files, symlinks, folders) of both folders; `.reason` files and
    /// dot-files are not counted.
    pub count: usize,
    /// The newest, newest first, at most [`RECENT_QUARANTINE`].
    pub recent: Vec<QuarantinedFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedFile {
    /// Relative to the data root: `quarantine/events/<name>`.
    pub file: String,
    /// The text of its `.reason` file, trimmed (or a placeholder in parentheses).
    pub reason: String,
    /// The `.reason` file's modification time.
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    /// `up` or `stale` (no event within the stale-after period, or never seen).
    pub status: &'static str,
    pub last_seen: Option<String>,
    pub disk_pressure: Option<DiskLevel>,
    pub agent_version: Option<String>,
    /// Whether hosts/ describes this node.
    pub desired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSummary {
    pub status: ServiceStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub since: String,
    pub last_event_at: String,
    pub last_event_id: String,
    pub consecutive_failures: u32,
    /// Whether hosts/ wants it (monitored) on this node.
    pub desired: bool,
}

/// One drift: a difference between desired state and world state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub node: String,
    pub service: Option<String>,
    /// `missing_service`, `unhealthy_service`, `disk_pressure`, `node_unreachable`.
    pub kind: &'static str,
    /// The unhealthy reason, `missing`, the disk level, or `stale`/`never_seen`.
    pub trigger: String,
    /// A dependency of this service that is itself in drift.
    pub root_cause: Option<String>,
    pub since: Option<String>,
    /// The active action that addresses it, if any.
    pub action_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionSummary {
    pub id: String,
    #[serde(rename = "type")]
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionsByState {
    pub pending: Vec<ActionSummary>,
    pub approved: Vec<ActionSummary>,
    pub running: Vec<ActionSummary>,
    /// Terminal actions (completed, failed, rejected, cancelled), newest first, at most 50.
    pub recent: Vec<ActionSummary>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub nodes: usize,
    pub nodes_up: usize,
    pub nodes_stale: usize,
    pub services: usize,
    pub services_healthy: usize,
    pub services_unhealthy: usize,
    pub drift: usize,
    /// Every action file on disk, by state folder.
    pub actions: BTreeMap<&'static str, usize>,
    pub config_errors: usize,
}

#[derive(Debug, Clone, Serialize)]
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
}

/// What a build needs besides the data root.
#[derive(Debug, Clone)]
pub struct BuildOptions<'a> {
    pub hosts: Option<&'a Path>,
    pub node_stale_after: Duration,
}

impl Snapshot {
    pub fn build(root: &DataRoot, opts: &BuildOptions<'_>, now: Timestamp) -> std::io::Result<Snapshot> {
        let (services_file, nodes_file) = root.read_world()?;
        let (desired, mut config_errors) = match opts.hosts {
            Some(dir) if dir.is_dir() => {
                let load = homelab_store::hosts::load_hosts(dir, &BTreeMap::new())?;
                (Some(load.desired), load.errors)
            }
            _ => (None, Vec::new()),
        };
        let mut actions: BTreeMap<ActionState, Vec<Action>> = BTreeMap::new();
        for state in ActionState::ALL {
            actions.insert(state, root.list_actions(state)?.into_iter().map(|s| s.action).collect());
        }
        let mut heartbeats = BTreeMap::new();
        // Each file on its own: a corrupt heartbeat is that daemon shown as stopped, not a
        // failed page.
        for (name, value) in root.read_heartbeats_each()? {
            let hb: Option<Heartbeat> = value.ok().and_then(|v| serde_json::from_value(v).ok());
            if let Some(hb) = &hb {
                for e in &hb.config_errors {
                    if !config_errors.contains(e) {
                        config_errors.push(e.clone());
                    }
                }
            }
            heartbeats.insert(name, hb);
        }
        let quarantine = root.quarantine_listing(RECENT_QUARANTINE)?;
        Ok(Snapshot::from_parts(Parts { services_file, nodes_file, desired, config_errors, actions, heartbeats, quarantine }, opts.node_stale_after, now))
    }

    pub fn from_parts(parts: Parts, stale_after: Duration, now: Timestamp) -> Snapshot {
        let Parts { services_file, nodes_file, desired, config_errors, actions, heartbeats, quarantine } = parts;
        let wanted = desired.as_ref().map(|d| d.monitored_names()).unwrap_or_default();
        let mut nodes = BTreeMap::new();
        let node_files = nodes_file.map(|n| n.nodes).unwrap_or_default();
        for (name, n) in &node_files {
            let up = n.last_seen.is_some_and(|seen| now.signed_duration_since(seen).to_std().unwrap_or_default() <= stale_after);
            nodes.insert(
                name.clone(),
                NodeSummary {
                    status: if up { "up" } else { "stale" },
                    last_seen: n.last_seen.map(rfc3339),
                    disk_pressure: n.disk_pressure,
                    agent_version: n.agent_version.clone(),
                    desired: wanted.contains_key(name),
                },
            );
        }
        for name in wanted.keys() {
            nodes.entry(name.clone()).or_insert(NodeSummary { status: "stale", last_seen: None, disk_pressure: None, agent_version: None, desired: true });
        }
        let world_generated_at = services_file.as_ref().map(|s| rfc3339(s.generated_at));
        let mut services: BTreeMap<String, BTreeMap<String, ServiceSummary>> = BTreeMap::new();
        for (node, svcs) in services_file.map(|s| s.services).unwrap_or_default() {
            let entry = services.entry(node.clone()).or_default();
            for (name, s) in svcs {
                let desired = wanted.get(&node).is_some_and(|w| w.contains(&name));
                entry.insert(
                    name,
                    ServiceSummary {
                        status: s.status,
                        reason: s.reason,
                        detail: s.detail,
                        since: rfc3339(s.since),
                        last_event_at: rfc3339(s.last_event_at),
                        last_event_id: s.last_event_id.to_string(),
                        consecutive_failures: s.consecutive_failures,
                        desired,
                    },
                );
            }
        }
        let active: Vec<&Action> = [ActionState::Pending, ActionState::Approved, ActionState::Running]
            .iter()
            .flat_map(|s| actions.get(s).into_iter().flatten())
            .collect();
        let drift = compute_drift(desired.as_ref(), &nodes, &services, &active);

        let summarize = |a: &Action| ActionSummary {
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
        };
        let list = |s: ActionState| actions.get(&s).map(|v| v.iter().map(summarize).collect::<Vec<_>>()).unwrap_or_default();
        let mut terminal: Vec<&Action> = ActionState::ALL.iter().filter(|s| s.is_terminal()).flat_map(|s| actions.get(s).into_iter().flatten()).collect();
        terminal.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        let by_state = ActionsByState {
            pending: list(ActionState::Pending),
            approved: list(ActionState::Approved),
            running: list(ActionState::Running),
            recent: terminal.iter().take(RECENT_TERMINAL).map(|a| summarize(a)).collect(),
        };

        let mut approvals_by_channel = BTreeMap::new();
        for a in actions.values().flatten() {
            for h in a.history.iter().filter(|h| h.state == ActionState::Approved) {
                let channel = h.by.split(':').next().unwrap_or("unknown").to_owned();
                *approvals_by_channel.entry(channel).or_insert(0) += 1;
            }
        }

        let daemons = heartbeats
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
            .collect();

        let all_services = services.values().flat_map(|m| m.values());
        let counts = Counts {
            nodes: nodes.len(),
            nodes_up: nodes.values().filter(|n| n.status == "up").count(),
            nodes_stale: nodes.values().filter(|n| n.status != "up").count(),
            services: services.values().map(|m| m.len()).sum(),
            services_healthy: all_services.clone().filter(|s| s.status == ServiceStatus::Healthy).count(),
            services_unhealthy: all_services.filter(|s| s.status == ServiceStatus::Unhealthy).count(),
            drift: drift.len(),
            actions: ActionState::ALL.iter().map(|s| (s.as_str(), actions.get(s).map_or(0, Vec::len))).collect(),
            config_errors: config_errors.len(),
        };
        let summary = Summary {
            version: 1,
            world_generated_at,
            nodes,
            services,
            drift,
            actions: by_state,
            counts,
            daemons,
            config_errors,
            quarantine: QuarantineSummary {
                count: quarantine.count(),
                recent: quarantine.recent.iter().map(|e| QuarantinedFile { file: e.file.clone(), reason: e.reason.clone(), at: rfc3339(e.at) }).collect(),
            },
        };
        let summary_json = axum::body::Bytes::from(serde_json::to_vec(&summary).expect("summary serializes"));
        let etag = etag_of(&summary_json);
        let summary_gzip = gzip(&summary_json);
        let markdown = markdown(&summary);
        let quarantine_by_kind = quarantine.by_kind;
        Snapshot { built_at: now, summary, summary_json, summary_gzip, etag, markdown, heartbeats, approvals_by_channel, desired, quarantine_by_kind }
    }
}

/// The raw inputs of a snapshot (split out so tests can build one without a disk).
#[derive(Debug, Default)]
pub struct Parts {
    pub services_file: Option<ServicesFile>,
    pub nodes_file: Option<NodesFile>,
    pub desired: Option<DesiredState>,
    pub config_errors: Vec<ConfigError>,
    pub actions: BTreeMap<ActionState, Vec<Action>>,
    pub heartbeats: BTreeMap<String, Option<Heartbeat>>,
    pub quarantine: homelab_store::quarantine::QuarantineListing,
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

/// Drift for display: what the supervisor would see. Without hosts/ only unhealthy services
/// and disk pressure are drift (nothing is known to be missing).
pub fn compute_drift(
    desired: Option<&DesiredState>,
    nodes: &BTreeMap<String, NodeSummary>,
    services: &BTreeMap<String, BTreeMap<String, ServiceSummary>>,
    active: &[&Action],
) -> Vec<Drift> {
    let action_for = |node: &str, service: Option<&str>| {
        active.iter().find(|a| a.node == node && a.service.as_deref() == service).map(|a| a.id.clone())
    };
    let mut out = Vec::new();
    let mut node_names: BTreeSet<&String> = nodes.keys().collect();
    if let Some(d) = desired {
        node_names.extend(d.hosts.keys());
    }
    for node in node_names {
        let n = nodes.get(node);
        let up = n.is_some_and(|n| n.status == "up");
        let host = desired.and_then(|d| d.hosts.get(node));
        if host.is_some() && !up {
            let trigger = if n.and_then(|n| n.last_seen.as_ref()).is_some() { "stale" } else { "never_seen" };
            out.push(Drift {
                node: node.clone(),
                service: None,
                kind: "node_unreachable",
                trigger: trigger.into(),
                root_cause: None,
                since: n.and_then(|n| n.last_seen.clone()),
                action_id: None,
            });
            continue;
        }
        if n.and_then(|n| n.disk_pressure) == Some(DiskLevel::High) {
            out.push(Drift {
                node: node.clone(),
                service: None,
                kind: "disk_pressure",
                trigger: "high".into(),
                root_cause: None,
                since: None,
                action_id: action_for(node, None),
            });
        }
        let world = services.get(node);
        // Per service: (kind, trigger, since), before root causes are known.
        let mut found: BTreeMap<&str, (&'static str, String, Option<String>)> = BTreeMap::new();
        match host {
            Some(host) => {
                for (name, _) in host.monitored() {
                    match world.and_then(|w| w.get(name)) {
                        None => {
                            found.insert(name, ("missing_service", "missing".into(), None));
                        }
                        Some(s) if s.status == ServiceStatus::Unhealthy => {
                            found.insert(name, ("unhealthy_service", s.reason.clone().unwrap_or_else(|| "service_unhealthy".into()), Some(s.since.clone())));
                        }
                        Some(_) => {}
                    }
                }
            }
            None if desired.is_none() => {
                for (name, s) in world.into_iter().flatten() {
                    if s.status == ServiceStatus::Unhealthy {
                        found.insert(name, ("unhealthy_service", s.reason.clone().unwrap_or_else(|| "service_unhealthy".into()), Some(s.since.clone())));
                    }
                }
            }
            None => {}
        }
        for (name, (kind, trigger, since)) in &found {
            let root_cause = host
                .and_then(|h| h.services.get(*name))
                .and_then(|spec| spec.depends_on.iter().find(|d| found.contains_key(d.as_str())).cloned());
            out.push(Drift {
                node: node.clone(),
                service: Some((*name).to_owned()),
                kind,
                trigger: trigger.clone(),
                root_cause,
                since: since.clone(),
                action_id: action_for(node, Some(name)),
            });
        }
    }
    out
}

/// The "Copy for AI" digest: what is wrong, in a form a person or a model can read at once.
/// Healthy services are counted, not listed, so the digest stays short on a big fleet.
pub fn markdown(s: &Summary) -> String {
    let c = &s.counts;
    let mut m = String::new();
    let _ = writeln!(m, "# Homelab status");
    let _ = writeln!(m);
    let _ = writeln!(m, "World state as of {}.", s.world_generated_at.as_deref().unwrap_or("(never written)"));
    let _ = writeln!(
        m,
        "Nodes: {} ({} up, {} stale). Services: {} ({} healthy, {} unhealthy). Drift: {}. Actions pending: {}, approved: {}, running: {}.",
        c.nodes,
        c.nodes_up,
        c.nodes_stale,
        c.services,
        c.services_healthy,
        c.services_unhealthy,
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
    if s.drift.is_empty() {
        let _ = writeln!(m, "None.");
    }
    for d in &s.drift {
        let what = d.service.as_ref().map_or_else(|| d.node.clone(), |sv| format!("{}/{sv}", d.node));
        let rc = d.root_cause.as_ref().map(|r| format!(", root cause: {r}")).unwrap_or_default();
        let act = d.action_id.as_ref().map(|a| format!(", action: {a}")).unwrap_or_default();
        let _ = writeln!(m, "- {what}: {} ({}){rc}{act}", d.kind, d.trigger);
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
