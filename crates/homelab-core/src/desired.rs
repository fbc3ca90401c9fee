//! Desired state: `hosts/<node>/services.yaml`, parsed and validated with file, line and column.
//!
//! Parsing a string is pure; reading the files is the store's job. YAML is read with
//! `serde-saphyr` into a tree of `Spanned` nodes ([`yaml`]), which the validator walks in full
//! ([`validate`]): every problem of a file is reported, in our words, with its place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::validate_name;
pub use crate::window::MaintenanceWindow;

mod keys;
mod validate;
pub mod yaml;
pub use validate::validate_url;

/// One validation problem, pointing at the place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    /// What to do about it, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// SSH access to a remote node. Absent: the node is this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshTarget {
    pub host: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// Private key file; default from the executor's configuration.
    #[serde(default)]
    pub identity_file: Option<String>,
    /// known_hosts file for strict host-key checking; default from the executor's configuration.
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// Remote Docker socket; default `/var/run/docker.sock`.
    #[serde(default)]
    pub docker_socket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCleanup {
    #[serde(default)]
    pub docker_prune: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskSpec {
    /// Used percent at or above which a mount is `medium` (default 80).
    pub pressure_medium_pct: Option<u8>,
    /// Used percent at or above which a mount is `high` (default 90).
    pub pressure_high_pct: Option<u8>,
    /// Mount points to watch (default `/`).
    pub mounts: Option<Vec<String>>,
    pub cleanup: Option<DiskCleanup>,
}

impl DiskSpec {
    pub fn medium_pct(&self) -> u8 {
        self.pressure_medium_pct.unwrap_or(80)
    }
    pub fn high_pct(&self) -> u8 {
        self.pressure_high_pct.unwrap_or(90)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub user: String,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

/// A check kind the node agent runs: its own fields, then the time limit and the thresholds
/// every such check has (in that order: the validator's key tables follow it).
macro_rules! local_check {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:tt)* }) => {
        $(#[$meta])*
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($field)*
            #[serde(default)]
            pub timeout_secs: Option<u64>,
            /// Consecutive failed runs before this check counts as failing (default 1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub failure_threshold: Option<u32>,
            /// Consecutive passed runs before a failing check counts as passing again (default 1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub success_threshold: Option<u32>,
        }
    };
}

fn default_expect_status() -> Vec<u16> {
    vec![200]
}
fn default_loopback() -> String {
    "127.0.0.1".to_owned()
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HttpCheck {
        pub url: String,
        #[serde(default = "default_expect_status")]
        pub expect_status: Vec<u16>,
        #[serde(default)]
        pub body_contains: Option<String>,
        #[serde(default)]
        pub basic_auth: Option<BasicAuth>,
        #[serde(default)]
        pub insecure_skip_verify: bool,
    }
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TcpCheck {
        pub port: u16,
        #[serde(default = "default_loopback")]
        pub host: String,
    }
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct ContainerCheck {}
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExecCheck {
        pub container: String,
        pub command: Vec<String>,
    }
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SystemdCheck {
        pub unit: String,
    }
}

local_check! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MqttCheck {
        #[serde(default = "default_mqtt_port")]
        pub port: u16,
        #[serde(default = "default_loopback")]
        pub host: String,
    }
}

fn default_mqtt_port() -> u16 {
    1883
}

/// Health from Prometheus Alertmanager: the service is unhealthy while an alert named
/// `alertname` whose labels include every pair of `labels` fires, and healthy again when it
/// resolves. The agent does not run it; the Alertmanager receiver (the UI's
/// `POST /api/v1/alertmanager` or `hcp alertmanager`) turns matching alerts into this service's
/// events, whatever their `node`/`service` labels say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertCheck {
    pub alertname: String,
    /// Labels the alert must carry with exactly these values (e.g. `instance`, `job`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl AlertCheck {
    /// Whether an alert with these labels is one this check listens to.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get("alertname") == Some(&self.alertname) && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// One health check, written in YAML as a one-key map: `- tcp: { port: 1883 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Container(ContainerCheck),
    Exec(ExecCheck),
    Systemd(SystemdCheck),
    Mqtt(MqttCheck),
    /// Not run by the agent: health from Alertmanager alerts.
    Alert(AlertCheck),
}

pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 10;

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Tcp(_) => "tcp",
            Check::Container(_) => "container",
            Check::Exec(_) => "exec",
            Check::Systemd(_) => "systemd",
            Check::Mqtt(_) => "mqtt",
            Check::Alert(_) => "alert",
        }
    }

    /// True for checks the node agent runs itself (every kind but `alert`).
    pub fn is_local(&self) -> bool {
        !matches!(self, Check::Alert(_))
    }

    pub fn timeout(&self) -> std::time::Duration {
        let secs = match self {
            Check::Http(c) => c.timeout_secs,
            Check::Tcp(c) => c.timeout_secs,
            Check::Container(c) => c.timeout_secs,
            Check::Exec(c) => c.timeout_secs,
            Check::Systemd(c) => c.timeout_secs,
            Check::Mqtt(c) => c.timeout_secs,
            Check::Alert(_) => None,
        };
        std::time::Duration::from_secs(secs.unwrap_or(DEFAULT_CHECK_TIMEOUT_SECS))
    }

    /// `(failure_threshold, success_threshold)` as written (`None` for an `alert:` check).
    fn thresholds(&self) -> (Option<u32>, Option<u32>) {
        match self {
            Check::Http(c) => (c.failure_threshold, c.success_threshold),
            Check::Tcp(c) => (c.failure_threshold, c.success_threshold),
            Check::Container(c) => (c.failure_threshold, c.success_threshold),
            Check::Exec(c) => (c.failure_threshold, c.success_threshold),
            Check::Systemd(c) => (c.failure_threshold, c.success_threshold),
            Check::Mqtt(c) => (c.failure_threshold, c.success_threshold),
            Check::Alert(_) => (None, None),
        }
    }

    /// Consecutive failed runs before the check counts as failing (hysteresis; default 1).
    pub fn failure_threshold(&self) -> u32 {
        self.thresholds().0.unwrap_or(1).max(1)
    }

    /// Consecutive passed runs before a failing check counts as passing again (default 1).
    pub fn success_threshold(&self) -> u32 {
        self.thresholds().1.unwrap_or(1).max(1)
    }
}

/// One service of a node, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub compose_dir: Option<String>,
    pub containers: Vec<String>,
    pub depends_on: Vec<String>,
    pub monitor: bool,
    pub checks: Vec<Check>,
    /// After a redeploy, update or rollback, how long the service must stay healthy with no
    /// container exiting or restarting (`verify_window:`; default [`DEFAULT_VERIFY_WINDOW_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_window_secs: Option<u64>,
    /// Roll back by itself when a change fails verification (`rollback:`; default true).
    #[serde(default = "yes")]
    pub rollback: bool,
}

fn yes() -> bool {
    true
}

/// The verify window when a service does not set one: two of the agent's default check
/// intervals (`CHECK_INTERVAL`, 30 s), so a failing check has had two chances to show.
pub const DEFAULT_VERIFY_WINDOW_SECS: u64 = 60;

/// The shortest verify window: a change is watched at least this long.
pub const MIN_VERIFY_WINDOW_SECS: u64 = 5;

/// One node's desired state, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    pub node: String,
    pub ssh: Option<SshTarget>,
    /// The compose invocation as an argv prefix: `["docker", "compose"]` or `["docker-compose"]`.
    pub compose_command: Vec<String>,
    pub disk: Option<DiskSpec>,
    pub maintenance_windows: Vec<MaintenanceWindow>,
    pub services: BTreeMap<String, ServiceSpec>,
    /// Node groups (`group:` / `groups:`): operators act only on nodes of their groups. Who is
    /// in a group is not said here (no secret in hosts/): see docs/users.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A parsed host file: where it came from and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFile {
    /// The path as shown in errors, e.g. `hosts/edge-1/services.yaml`.
    pub file: String,
    pub spec: HostSpec,
}

/// All nodes' desired state, keyed by node name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredState {
    pub hosts: BTreeMap<String, HostSpec>,
}

impl ServiceSpec {
    /// How long a change of this service is watched before it counts as good.
    pub fn verify_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.verify_window_secs.unwrap_or(DEFAULT_VERIFY_WINDOW_SECS).max(MIN_VERIFY_WINDOW_SECS))
    }

    /// The `alert:` checks: health the Alertmanager receiver reports for this service.
    pub fn alert_checks(&self) -> impl Iterator<Item = &AlertCheck> {
        self.checks.iter().filter_map(|c| match c {
            Check::Alert(a) => Some(a),
            _ => None,
        })
    }

    /// True when some of this service's health comes from alerts (an `alert:` check). Such a
    /// service is silent while all is well: the agent sends no periodic `service_healthy` for
    /// it (that would clear a firing alert), so its absence from world state is not news.
    pub fn has_alert_checks(&self) -> bool {
        self.alert_checks().next().is_some()
    }

    /// True when every check is an `alert:` check: the agent runs nothing for this service.
    pub fn alert_only(&self) -> bool {
        self.has_alert_checks() && self.checks.iter().all(|c| !c.is_local())
    }
}

impl HostSpec {
    /// Services the control plane watches (those without `monitor: false`).
    pub fn monitored(&self) -> impl Iterator<Item = (&String, &ServiceSpec)> {
        self.services.iter().filter(|(_, s)| s.monitor)
    }
}

impl DesiredState {
    /// Per node, the names of monitored services (what ghost pruning keeps).
    pub fn monitored_names(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.hosts.iter().map(|(node, h)| (node.clone(), h.monitored().map(|(n, _)| n.clone()).collect())).collect()
    }
}

/// Parses and validates one `services.yaml`. `file` is the path shown in errors; `folder_node`
/// is the folder name, the default for `node:`. Returns every problem found, not just the first:
/// each with its line and column, the path of the field (`services.web.checks[0].http.url`) and
/// what was expected, in plain words.
pub fn parse_host_file(file: &str, folder_node: &str, text: &str) -> Result<HostFile, Vec<ConfigError>> {
    let root = yaml::read(text).map_err(|e| vec![ConfigError { file: file.to_owned(), line: e.line, column: e.column, message: e.message, hint: e.hint }])?;
    let mut walker = validate::Walker::new(file, text);
    match walker.host(root.as_ref(), folder_node) {
        Some(spec) if walker.errors.is_empty() => Ok(HostFile { file: file.to_owned(), spec }),
        _ => {
            let mut errors = walker.errors;
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

/// Warnings about a file that is valid but probably not what was meant: an empty file, or
/// one without services. Such a node is expected to report (its agent's heartbeat) but
/// nothing on it is checked or remediated.
pub fn host_file_warnings(file: &HostFile, text: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let only_comments = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    });
    let node = &file.spec.node;
    let meaning = format!("node {node:?} is expected to report, but nothing on it is checked or remediated");
    if only_comments {
        out.push(ConfigError {
            file: file.file.clone(),
            line: 1,
            column: 1,
            message: format!("the file is empty: {meaning}"),
            hint: Some("describe its services under `services:` (see hosts/ for an example), or delete the folder if the node is gone".into()),
        });
    } else if file.spec.services.is_empty() {
        out.push(ConfigError {
            file: file.file.clone(),
            line: 1,
            column: 1,
            message: format!("no services: {meaning}"),
            hint: Some("add services under `services:`; `services: {}` is fine for a node watched only for being up".into()),
        });
    }
    out
}

/// Returns one dependency cycle (as a path that ends where it starts), if any.
fn find_cycle(services: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        services: &'a BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| *p == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name, Mark::Visiting);
        path.push(name);
        for dep in services.get(name).map(Vec::as_slice).unwrap_or_default() {
            if dep != name
                && services.contains_key(dep)
                && let Some(c) = visit(dep, services, marks, path)
            {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in services.keys() {
        if let Some(c) = visit(name, services, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests;
