//! Desired state: `hosts/<node>/services.yaml`, parsed and validated with file, line and column.
//!
//! Parsing a string is pure; reading the files is the store's job. YAML is read with
//! `serde-saphyr`, which keeps locations in its errors and offers `Spanned` values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::name::validate_name;

/// One validation problem, pointing at the place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Used percent at or above which a mount is `medium` (default 80).
    #[serde(default)]
    pub pressure_medium_pct: Option<u8>,
    /// Used percent at or above which a mount is `high` (default 90).
    #[serde(default)]
    pub pressure_high_pct: Option<u8>,
    /// Mount points to watch (default `/`).
    #[serde(default)]
    pub mounts: Option<Vec<String>>,
    #[serde(default)]
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

/// A weekly window in UTC when guarded actions may start, e.g. `{ days: [sat, sun], start: "02:00", end: "05:00" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Three-letter lowercase day names (`mon` … `sun`); empty or absent means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM` UTC.
    pub start: String,
    /// `HH:MM` UTC; may be before `start` to wrap past midnight.
    pub end: String,
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

fn default_expect_status() -> Vec<u16> {
    vec![200]
}
fn default_loopback() -> String {
    "127.0.0.1".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub port: u16,
    #[serde(default = "default_loopback")]
    pub host: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerCheck {
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    pub container: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdCheck {
    pub unit: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttCheck {
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    #[serde(default = "default_loopback")]
    pub host: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
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

    fn validate(&self) -> Result<(), String> {
        if self.alertname.trim().is_empty() {
            return Err("alert: alertname must not be empty".into());
        }
        for k in self.labels.keys() {
            if k == "alertname" {
                return Err("alert: put the alert name in `alertname`, not in `labels`".into());
            }
            if !is_label_name(k) {
                return Err(format!("alert: {k:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
            }
        }
        Ok(())
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
}

fn yes() -> bool {
    true
}

/// One service of a node, as written in YAML (with locations, for validation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    compose_dir: Option<String>,
    #[serde(default)]
    containers: Vec<String>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    monitor: bool,
    #[serde(default)]
    checks: Vec<Spanned<Check>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(default)]
    node: Option<Spanned<String>>,
    #[serde(default)]
    ssh: Option<SshTarget>,
    #[serde(default)]
    compose_command: Option<Spanned<String>>,
    #[serde(default)]
    disk: Option<DiskSpec>,
    #[serde(default)]
    maintenance_windows: Vec<Spanned<MaintenanceWindow>>,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
}

/// One service of a node, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub compose_dir: Option<String>,
    pub containers: Vec<String>,
    pub depends_on: Vec<String>,
    pub monitor: bool,
    pub checks: Vec<Check>,
}

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
        self.hosts
            .iter()
            .map(|(node, h)| (node.clone(), h.monitored().map(|(n, _)| n.clone()).collect()))
            .collect()
    }
}

/// Parses and validates one `services.yaml`. `file` is the path shown in errors; `folder_node`
/// is the folder name, the default for `node:`. Returns every problem found, not just the first.
pub fn parse_host_file(file: &str, folder_node: &str, text: &str) -> Result<HostFile, Vec<ConfigError>> {
    let err = |line: u64, column: u64, message: String, hint: Option<&str>| ConfigError {
        file: file.to_owned(),
        line,
        column,
        message,
        hint: hint.map(str::to_owned),
    };
    let raw: RawHost = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = first_line(&e.to_string());
            let hint = if message.contains("unknown field") {
                Some("check the spelling against docs/configuration.md")
            } else if message.contains("duplicate") {
                Some("each key, and each service name, may appear once")
            } else {
                None
            };
            return Err(vec![err(line, column, message, hint)]);
        }
    };
    let mut errors = Vec::new();

    let node = match &raw.node {
        Some(n) => {
            if let Err(e) = validate_name(&n.value) {
                errors.push(err(n.referenced.line(), n.referenced.column(), format!("node: {e}"), None));
            }
            n.value.clone()
        }
        None => folder_node.to_owned(),
    };
    if raw.node.is_none() {
        if let Err(e) = validate_name(folder_node) {
            errors.push(err(1, 1, format!("folder name is not a valid node name: {e}"), Some("rename the folder or set node:")));
        }
    }

    let compose_command = match &raw.compose_command {
        None => vec!["docker".to_owned(), "compose".to_owned()],
        Some(c) => {
            let argv: Vec<String> = c.value.split_whitespace().map(str::to_owned).collect();
            if argv != ["docker", "compose"] && argv != ["docker-compose"] {
                errors.push(err(
                    c.referenced.line(),
                    c.referenced.column(),
                    format!("compose_command {:?} is not supported", c.value),
                    Some("use \"docker compose\" or \"docker-compose\""),
                ));
            }
            argv
        }
    };

    for w in &raw.maintenance_windows {
        if let Err(e) = crate::window::validate(&w.value) {
            errors.push(err(w.referenced.line(), w.referenced.column(), format!("maintenance window: {e}"), None));
        }
    }

    // Services: names, depends_on targets, cycles.
    for (name, svc) in &raw.services {
        if let Err(e) = validate_name(name) {
            errors.push(err(svc.referenced.line(), svc.referenced.column(), format!("service: {e}"), None));
        }
        for dep in &svc.value.depends_on {
            if !raw.services.contains_key(&dep.value) {
                errors.push(err(
                    dep.referenced.line(),
                    dep.referenced.column(),
                    format!("service {name:?} depends on unknown service {:?}", dep.value),
                    Some("depends_on names services of the same file"),
                ));
            } else if dep.value == *name {
                errors.push(err(dep.referenced.line(), dep.referenced.column(), format!("service {name:?} depends on itself"), None));
            }
        }
        for c in &svc.value.containers {
            if c.is_empty() || c.contains('/') {
                errors.push(err(svc.referenced.line(), svc.referenced.column(), format!("service {name:?}: bad container name {c:?}"), None));
            }
        }
        for check in &svc.value.checks {
            if let Check::Alert(a) = &check.value
                && let Err(e) = a.validate()
            {
                errors.push(err(check.referenced.line(), check.referenced.column(), format!("service {name:?}: {e}"), Some("see docs/alertmanager.md")));
            }
            if let Check::Http(h) = &check.value {
                if let Some(auth) = &h.basic_auth {
                    if auth.password_env.is_none() == auth.password_file.is_none() {
                        errors.push(err(
                            svc.referenced.line(),
                            svc.referenced.column(),
                            format!("service {name:?}: basic_auth needs exactly one of password_env or password_file"),
                            Some("passwords never go inline in hosts/"),
                        ));
                    }
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&raw.services) {
        let first = &raw.services[&cycle[0]];
        errors.push(err(
            first.referenced.line(),
            first.referenced.column(),
            format!("dependency cycle: {}", cycle.join(" -> ")),
            Some("depends_on must not loop back"),
        ));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(errors);
    }

    let services = raw
        .services
        .into_iter()
        .map(|(name, s)| {
            let s = s.value;
            let spec = ServiceSpec {
                compose_dir: s.compose_dir,
                containers: s.containers,
                depends_on: s.depends_on.into_iter().map(|d| d.value).collect(),
                monitor: s.monitor,
                checks: s.checks.into_iter().map(|c| c.value).collect(),
            };
            (name, spec)
        })
        .collect();
    Ok(HostFile {
        file: file.to_owned(),
        spec: HostSpec {
            node,
            ssh: raw.ssh,
            compose_command,
            disk: raw.disk,
            maintenance_windows: raw.maintenance_windows.into_iter().map(|w| w.value).collect(),
            services,
        },
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_owned()
}

/// Returns one dependency cycle (as a path that ends where it starts), if any.
fn find_cycle(services: &BTreeMap<String, Spanned<RawService>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        services: &'a BTreeMap<String, Spanned<RawService>>,
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
        for dep in services.get(name).map(|s| s.value.depends_on.as_slice()).unwrap_or_default() {
            if dep.value != name && services.contains_key(&dep.value) {
                if let Some(c) = visit(&dep.value, services, marks, path) {
                    return Some(c);
                }
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
