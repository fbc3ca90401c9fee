//! Actions: what the supervisor proposes, an operator approves, and the executor runs.
//! The folder an action file sits in is its state; moving between states is a rename.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Pending,
    Approved,
    Running,
    Completed,
    Failed,
    Rejected,
    Cancelled,
}

impl ActionState {
    pub const ALL: [ActionState; 7] = [
        ActionState::Pending,
        ActionState::Approved,
        ActionState::Running,
        ActionState::Completed,
        ActionState::Failed,
        ActionState::Rejected,
        ActionState::Cancelled,
    ];

    /// The folder name under `actions/`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Approved => "approved",
            ActionState::Running => "running",
            ActionState::Completed => "completed",
            ActionState::Failed => "failed",
            ActionState::Rejected => "rejected",
            ActionState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Pending, approved and running hold `<id>.json`; terminal folders hold `<id>--<ended>.json`.
    pub fn is_active(self) -> bool {
        matches!(self, ActionState::Pending | ActionState::Approved | ActionState::Running)
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// The transitions the state machine allows.
    pub fn can_move_to(self, to: ActionState) -> bool {
        use ActionState::*;
        matches!(
            (self, to),
            (Pending, Approved) | (Pending, Rejected) | (Pending, Cancelled) | (Approved, Running) | (Running, Completed) | (Running, Failed)
                // An executor that finds a running action at start fails it; an approved action
                // whose target vanished from desired state can be failed without running.
                | (Approved, Failed)
                // An operator takes an approval back before an executor claims it.
                | (Approved, Cancelled)
        )
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    ContainerRestart,
    Redeploy,
    /// An operator's request: recreate a compose project from a held generation (`generation`).
    Rollback,
    DiskCleanup,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::ContainerRestart => "container_restart",
            ActionType::Redeploy => "redeploy",
            ActionType::Rollback => "rollback",
            ActionType::DiskCleanup => "disk_cleanup",
        }
    }

    /// The deterministic id of this action for a node (and service).
    pub fn id(self, node: &str, service: Option<&str>) -> String {
        match (self, service) {
            (ActionType::ContainerRestart, Some(s)) => format!("container-restart-{node}-{s}"),
            (ActionType::Redeploy, Some(s)) => format!("redeploy-{node}-{s}"),
            (ActionType::Rollback, Some(s)) => format!("rollback-{node}-{s}"),
            (ActionType::DiskCleanup, _) => format!("disk-cleanup-{node}"),
            (t, None) => format!("{}-{node}", t.as_str().replace('_', "-")),
        }
    }

    /// Whether the supervisor proposes it to fix a drift (and withdraws it when the drift
    /// resolves). A rollback is asked for by a person, whatever the drift.
    pub fn remedies_drift(self) -> bool {
        !matches!(self, ActionType::Rollback)
    }

    pub fn risk(self) -> Risk {
        match self {
            ActionType::ContainerRestart => Risk::Low,
            ActionType::Redeploy | ActionType::Rollback | ActionType::DiskCleanup => Risk::Guarded,
        }
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Guarded,
}

/// One transition in an action's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub state: ActionState,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `supervisor`, `policy`, `executor`, or an operator with channel: `ui:alice`, `telegram:123`, `api:token`, `cli:bob`.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the executor recorded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct ActionResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i64>,
    /// The last 64 KiB of output.
    #[serde(default)]
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::Timestamp>")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::Timestamp>")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_reclaimed: Option<u64>,
    /// `true` when the service reported healthy after the action ended; `null` when not checked.
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default)]
    pub dry_run: bool,
    /// A change (redeploy) that failed verification and was rolled back: the generation it
    /// returned to (`state/deploys/<node>/<service>/generations/<id>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    /// Why a change counted as failed, with the failing container's last log lines (values of
    /// the project's env file masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// An action file (`actions/<state>/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Action {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,159}$")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub risk: Risk,
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub node: String,
    pub service: Option<String>,
    /// The drift kind: `unhealthy_service`, `missing_service`, `disk_pressure`.
    pub drift: String,
    /// What in world state set it off: the unhealthy reason, `missing`, or the disk level.
    pub trigger: String,
    pub root_cause: Option<String>,
    /// The folder is the truth; this mirrors it.
    pub state: ActionState,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub history: Vec<HistoryEntry>,
    pub result: Option<ActionResult>,
    /// A rollback's target: the held generation to return to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
}

impl Action {
    /// Records a move to `to` (the caller renames the file; this updates the content).
    pub fn record(&mut self, to: ActionState, at: Timestamp, by: &str, note: Option<String>) {
        self.state = to;
        self.updated_at = at;
        self.history.push(HistoryEntry { state: to, at, by: by.to_owned(), note });
    }

    /// When the action reached its terminal state (the last history entry), for its file name.
    pub fn ended_at(&self) -> Timestamp {
        self.history.last().map_or(self.updated_at, |h| h.at)
    }
}

/// The bytes of output an action result keeps: the last 64 KiB, cut on a character boundary.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

pub fn output_tail(output: &str) -> String {
    if output.len() <= OUTPUT_TAIL_BYTES {
        return output.to_owned();
    }
    let mut start = output.len() - OUTPUT_TAIL_BYTES;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].to_owned()
}

/// The settings of the executor a [`RunPlan`] depends on (its `ACTION_TIMEOUT`,
/// `VERIFY_TIMEOUT` and `EXECUTOR_PRUNE_LABEL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDefaults {
    pub action_timeout: std::time::Duration,
    pub verify_timeout: std::time::Duration,
    pub prune_label: Option<String>,
}

impl Default for RunDefaults {
    /// The executor's defaults: 300 s to run, 120 s to verify, no prune label.
    fn default() -> RunDefaults {
        RunDefaults { action_timeout: std::time::Duration::from_secs(300), verify_timeout: std::time::Duration::from_secs(120), prune_label: None }
    }
}

/// Where the executor does the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunWhere {
    /// On the executor's own host: its Docker socket, compose run as a child process.
    Local,
    /// Over SSH (one master connection per node; the node's Docker socket is forwarded).
    Ssh {
        /// `user@host:port` as the executor shows it.
        target: String,
        user: Option<String>,
        host: String,
        port: u16,
    },
}

/// The work itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunWork {
    /// Restart these containers by name (each is checked first: a missing one fails the action
    /// before anything restarts).
    RestartContainers { containers: Vec<String> },
    /// Restart every container (running or not) carrying all these labels.
    RestartByLabels { labels: Vec<String> },
    /// Run this argv (never a shell string) in this folder.
    Compose { argv: Vec<String>, dir: String },
    /// Recreate the project in this folder from a held generation (its files, its images by
    /// hold tag).
    Rollback { dir: String, generation: String },
    /// Prune stopped containers, dangling images and the build cache (containers and images
    /// only with `label`, when set).
    Prune { label: Option<String> },
}

/// How the executor decides that the action helped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunVerify {
    /// The service reports healthy (an event at or after the end of the run) within `within_secs`.
    ServiceHealthy { within_secs: u64 },
    /// The node reports again without high disk pressure within `within_secs`.
    NodeDiskOk { within_secs: u64 },
    /// `VERIFY_TIMEOUT` is 0: success is the exit status alone.
    NotChecked,
}

/// Exactly what approving an action will run: the pure description the UI shows before
/// approval (and a dry run prints). Built from the action and its node's desired state the way
/// the executor's runner builds the real run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPlan {
    pub node: String,
    pub service: Option<String>,
    pub run_where: RunWhere,
    /// `None` when it cannot run as described (see `blocked`).
    pub work: Option<RunWork>,
    /// The whole run is cut off after this many seconds (`ACTION_TIMEOUT`).
    pub timeout_secs: u64,
    pub verify: RunVerify,
    /// Why the executor would fail this action without touching the node, if it would.
    pub blocked: Option<String>,
}

/// The compose project name Docker Compose derives from a folder: its last component,
/// lowercased, keeping `a-z0-9_-`.
pub fn compose_project(compose_dir: &str) -> String {
    let trimmed = compose_dir.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(compose_dir);
    base.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// The argv of a redeploy: the node's `compose_command` followed by `up -d --force-recreate`.
pub fn compose_argv(host: &crate::HostSpec) -> Vec<String> {
    let mut argv = host.compose_command.clone();
    argv.extend(["up", "-d", "--force-recreate"].map(String::from));
    argv
}

/// `user@host:port`, as the executor names an SSH target.
pub fn ssh_shown(t: &crate::desired::SshTarget) -> String {
    format!("{}{}:{}", t.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(), t.host, t.port.unwrap_or(22))
}

/// What approving `action` will run on `host` (its node's desired state; `None` when no
/// hosts file describes the node).
pub fn run_plan(action: &Action, host: Option<&crate::HostSpec>, defaults: &RunDefaults) -> RunPlan {
    let run_where = match host.and_then(|h| h.ssh.as_ref()) {
        Some(t) => RunWhere::Ssh { target: ssh_shown(t), user: t.user.clone(), host: t.host.clone(), port: t.port.unwrap_or(22) },
        None => RunWhere::Local,
    };
    let verify_secs = defaults.verify_timeout.as_secs();
    let verify = match (verify_secs, action.kind) {
        (0, _) => RunVerify::NotChecked,
        (_, ActionType::DiskCleanup) => RunVerify::NodeDiskOk { within_secs: verify_secs },
        _ => RunVerify::ServiceHealthy { within_secs: verify_secs },
    };
    let mut plan = RunPlan {
        node: action.node.clone(),
        service: action.service.clone(),
        run_where,
        work: None,
        timeout_secs: defaults.action_timeout.as_secs(),
        verify,
        blocked: None,
    };
    let Some(host) = host else {
        plan.blocked = Some(format!("node {} is not in desired state (no hosts/*/services.yaml describes it)", action.node));
        return plan;
    };
    let node = &host.node;
    let service = || -> Result<(&str, &crate::ServiceSpec), String> {
        let name = action.service.as_deref().ok_or_else(|| format!("{} action {} names no service", action.kind, action.id))?;
        let spec = host.services.get(name).ok_or_else(|| format!("service {name} is not in the desired state of node {node}"))?;
        Ok((name, spec))
    };
    let work = match action.kind {
        ActionType::ContainerRestart => service().map(|(name, spec)| {
            if spec.containers.is_empty() {
                let mut labels = vec![format!("com.docker.compose.service={name}")];
                if let Some(dir) = spec.compose_dir.as_deref() {
                    labels.push(format!("com.docker.compose.project={}", compose_project(dir)));
                }
                RunWork::RestartByLabels { labels }
            } else {
                RunWork::RestartContainers { containers: spec.containers.clone() }
            }
        }),
        ActionType::Redeploy => service().and_then(|(name, spec)| match spec.compose_dir.as_deref() {
            Some(dir) => Ok(RunWork::Compose { argv: compose_argv(host), dir: dir.to_owned() }),
            None => Err(format!("service {name} on node {node} has no compose_dir: nothing to redeploy")),
        }),
        ActionType::Rollback => service().and_then(|(name, spec)| match (spec.compose_dir.as_deref(), action.generation.as_deref()) {
            (Some(dir), Some(g)) => Ok(RunWork::Rollback { dir: dir.to_owned(), generation: g.to_owned() }),
            (None, _) => Err(format!("service {name} on node {node} has no compose_dir: nothing to roll back")),
            (_, None) => Err(format!("rollback action {} names no generation", action.id)),
        }),
        ActionType::DiskCleanup => {
            if host.disk.as_ref().and_then(|d| d.cleanup.as_ref()).is_some_and(|c| c.docker_prune) {
                Ok(RunWork::Prune { label: defaults.prune_label.clone() })
            } else {
                Err(format!("disk.cleanup.docker_prune is not enabled for node {node}: nothing will be pruned"))
            }
        }
    };
    match work {
        Ok(w) => plan.work = Some(w),
        Err(e) => plan.blocked = Some(e),
    }
    plan
}

impl RunPlan {
    /// Where, in words: `on node edge-1 (local)` or `on node edge-1 over SSH (ops@10.0.0.5:22)`.
    pub fn where_text(&self) -> String {
        match &self.run_where {
            RunWhere::Local => format!("on node {} (local)", self.node),
            RunWhere::Ssh { target, .. } => format!("on node {} over SSH ({target})", self.node),
        }
    }

    /// The work, in one sentence (what a dry run records).
    pub fn describe(&self) -> String {
        let w = self.where_text();
        match (&self.work, &self.blocked) {
            (_, Some(b)) => format!("will fail without running anything: {b}"),
            (Some(RunWork::RestartContainers { containers }), _) => format!("restart containers {} {w}", containers.join(", ")),
            (Some(RunWork::RestartByLabels { labels }), _) => format!("restart the containers labelled {} {w}", labels.join(", ")),
            (Some(RunWork::Compose { argv, dir }), _) => format!("run `{}` in {dir} {w}", argv.join(" ")),
            (Some(RunWork::Rollback { dir, generation }), _) => {
                format!("recreate the project in {dir} from held generation {generation} (its compose and env files, its images by hold tag) {w}")
            }
            (Some(RunWork::Prune { label }), _) => format!(
                "prune stopped containers, dangling images{} and build cache {w}",
                label.as_ref().map(|l| format!(" (containers and images labelled {l})")).unwrap_or_default()
            ),
            (None, None) => format!("nothing {w}"),
        }
    }

    /// The verification, in one sentence.
    pub fn verify_text(&self) -> String {
        match self.verify {
            RunVerify::ServiceHealthy { within_secs } => format!(
                "{} reports healthy (an event after the run ends) within {within_secs} s (VERIFY_TIMEOUT); else the result says \"not healthy after the action\"",
                self.service.as_deref().map_or_else(|| "the service".to_owned(), |s| format!("{}/{s}", self.node))
            ),
            RunVerify::NodeDiskOk { within_secs } => {
                format!("node {} reports again without high disk pressure within {within_secs} s (VERIFY_TIMEOUT)", self.node)
            }
            RunVerify::NotChecked => "not checked (VERIFY_TIMEOUT is 0): success is the exit status alone".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(yaml: &str) -> crate::HostSpec {
        crate::desired::parse_host_file("hosts/edge-1/services.yaml", "edge-1", yaml).expect("valid host file").spec
    }

    fn action(kind: ActionType, service: Option<&str>) -> Action {
        let t = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:03:11.123Z").unwrap().with_timezone(&chrono::Utc);
        Action {
            id: kind.id("edge-1", service),
            kind,
            risk: kind.risk(),
            node: "edge-1".into(),
            service: service.map(str::to_owned),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: t,
            updated_at: t,
            history: vec![],
            result: None,
            generation: None,
        }
    }

    #[test]
    fn run_plans_table() {
        let local = "node: edge-1\nservices:\n  web:\n    compose_dir: /srv/Web-App/\n  mqtt:\n    containers: [mosquitto, mqtt-exporter]\n  bare: {}\n";
        let ssh = "node: edge-1\nssh:\n  host: 10.0.0.5\n  user: ops\ncompose_command: docker-compose\ndisk:\n  cleanup:\n    docker_prune: true\nservices:\n  web:\n    compose_dir: /srv/web\n";
        let d = RunDefaults::default();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, ActionType, Option<&str>, Option<&str>, RunWhere, Option<RunWork>, Option<&str>)> = vec![
            (
                "restart by name",
                ActionType::ContainerRestart,
                Some("mqtt"),
                Some(local),
                RunWhere::Local,
                Some(RunWork::RestartContainers { containers: strings(&["mosquitto", "mqtt-exporter"]) }),
                None,
            ),
            (
                "restart by labels with project",
                ActionType::ContainerRestart,
                Some("web"),
                Some(local),
                RunWhere::Local,
                Some(RunWork::RestartByLabels { labels: strings(&["com.docker.compose.service=web", "com.docker.compose.project=web-app"]) }),
                None,
            ),
            (
                "restart by service label only",
                ActionType::ContainerRestart,
                Some("bare"),
                Some(local),
                RunWhere::Local,
                Some(RunWork::RestartByLabels { labels: strings(&["com.docker.compose.service=bare"]) }),
                None,
            ),
            (
                "redeploy local",
                ActionType::Redeploy,
                Some("web"),
                Some(local),
                RunWhere::Local,
                Some(RunWork::Compose { argv: strings(&["docker", "compose", "up", "-d", "--force-recreate"]), dir: "/srv/Web-App/".into() }),
                None,
            ),
            (
                "redeploy over ssh",
                ActionType::Redeploy,
                Some("web"),
                Some(ssh),
                RunWhere::Ssh { target: "ops@10.0.0.5:22".into(), user: Some("ops".into()), host: "10.0.0.5".into(), port: 22 },
                Some(RunWork::Compose { argv: strings(&["docker-compose", "up", "-d", "--force-recreate"]), dir: "/srv/web".into() }),
                None,
            ),
            ("redeploy without compose_dir", ActionType::Redeploy, Some("mqtt"), Some(local), RunWhere::Local, None, Some("has no compose_dir")),
            (
                "service not desired",
                ActionType::ContainerRestart,
                Some("gone"),
                Some(local),
                RunWhere::Local,
                None,
                Some("service gone is not in the desired state"),
            ),
            ("node not desired", ActionType::ContainerRestart, Some("web"), None, RunWhere::Local, None, Some("not in desired state")),
            (
                "cleanup enabled",
                ActionType::DiskCleanup,
                None,
                Some(ssh),
                RunWhere::Ssh { target: "ops@10.0.0.5:22".into(), user: Some("ops".into()), host: "10.0.0.5".into(), port: 22 },
                Some(RunWork::Prune { label: None }),
                None,
            ),
            ("cleanup not enabled", ActionType::DiskCleanup, None, Some(local), RunWhere::Local, None, Some("docker_prune is not enabled")),
        ];
        for (what, kind, service, yaml, want_where, want_work, want_blocked) in cases {
            let h = yaml.map(host);
            let p = run_plan(&action(kind, service), h.as_ref(), &d);
            assert_eq!(p.run_where, want_where, "{what}");
            assert_eq!(p.work, want_work, "{what}");
            match want_blocked {
                Some(b) => assert!(p.blocked.as_deref().is_some_and(|x| x.contains(b)), "{what}: {:?}", p.blocked),
                None => assert_eq!(p.blocked, None, "{what}"),
            }
            assert_eq!(p.timeout_secs, 300, "{what}");
        }
    }

    #[test]
    fn run_plan_words_and_verification() {
        let h = host("node: edge-1\nservices:\n  web:\n    compose_dir: /srv/web\n");
        let p = run_plan(&action(ActionType::Redeploy, Some("web")), Some(&h), &RunDefaults::default());
        assert_eq!(p.describe(), "run `docker compose up -d --force-recreate` in /srv/web on node edge-1 (local)");
        assert_eq!(p.verify, RunVerify::ServiceHealthy { within_secs: 120 });
        assert!(p.verify_text().starts_with("edge-1/web reports healthy"), "{}", p.verify_text());
        let none = RunDefaults {
            verify_timeout: std::time::Duration::ZERO,
            action_timeout: std::time::Duration::from_secs(60),
            prune_label: Some("homelab.prune=true".into()),
        };
        let p = run_plan(&action(ActionType::Redeploy, Some("web")), Some(&h), &none);
        assert_eq!((p.verify.clone(), p.timeout_secs), (RunVerify::NotChecked, 60));
        let p = run_plan(&action(ActionType::DiskCleanup, None), Some(&h), &RunDefaults::default());
        assert!(p.describe().starts_with("will fail without running anything: disk.cleanup.docker_prune"), "{}", p.describe());
        assert_eq!(p.verify, RunVerify::NodeDiskOk { within_secs: 120 });
    }

    #[test]
    fn compose_project_names() {
        for (dir, want) in
            [("/srv/homelab/mosquitto", "mosquitto"), ("/srv/Zigbee2MQTT/", "zigbee2mqtt"), ("/tmp/redeploy-12.x", "redeploy-12x"), ("/srv/a_b", "a_b")]
        {
            assert_eq!(compose_project(dir), want, "{dir}");
        }
    }

    #[test]
    fn ids_and_risks() {
        assert_eq!(ActionType::ContainerRestart.id("edge-1", Some("z2m")), "container-restart-edge-1-z2m");
        assert_eq!(ActionType::Redeploy.id("edge-1", Some("z2m")), "redeploy-edge-1-z2m");
        assert_eq!(ActionType::DiskCleanup.id("edge-1", None), "disk-cleanup-edge-1");
        assert_eq!(ActionType::ContainerRestart.risk(), Risk::Low);
        assert_eq!(ActionType::Redeploy.risk(), Risk::Guarded);
        // The longest names still make a valid id.
        let long = "a".repeat(63);
        assert!(crate::validate_action_id(&ActionType::ContainerRestart.id(&long, Some(&long))).is_ok());
    }

    #[test]
    fn state_machine_table() {
        use ActionState::*;
        let allowed = [
            (Pending, Approved),
            (Pending, Rejected),
            (Pending, Cancelled),
            (Approved, Running),
            (Running, Completed),
            (Running, Failed),
            (Approved, Failed),
            (Approved, Cancelled),
        ];
        for from in ActionState::ALL {
            for to in ActionState::ALL {
                assert_eq!(from.can_move_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let s = format!("{}{}", "é".repeat(40_000), "end");
        let t = output_tail(&s);
        assert!(t.len() <= OUTPUT_TAIL_BYTES && t.ends_with("end"));
    }
}
