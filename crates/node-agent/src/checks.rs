//! The health checks of `services.yaml`: http, tcp, container, exec, systemd and mqtt.
//!
//! Every check runs as its own task under its own timeout, so a slow check never delays another
//! one's verdict and a panicking check becomes a `check_error` instead of a dead agent. A check
//! that could not be run at all (Docker not reachable, `systemctl` missing, a password file that
//! cannot be read) is a `check_error` too: the operator must fix the agent's setup, not the
//! service.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, ExecConfig, HealthStatusEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use futures_util::StreamExt;
use homelab_core::desired::{Check, ContainerCheck, ExecCheck, HttpCheck, MqttCheck, ServiceSpec, SystemdCheck, TcpCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tracker::Verdict;

/// How long connecting to the Docker engine and negotiating the API version may take.
const DOCKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The compose label that names a container's service.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// `http`, `tcp`, … as in the YAML.
    pub kind: &'static str,
    pub passed: bool,
    /// The negative event type when it failed.
    pub event_type: Option<&'static str>,
    /// What was seen, for people (never a secret).
    pub reason: String,
    pub duration: Duration,
    /// `(failure_threshold, success_threshold)` of the check (hysteresis; default `(1, 1)`).
    pub thresholds: (u32, u32),
}

/// What a check function returns: pass, fail (the service is unhealthy), or error (the check
/// itself could not run).
#[derive(Debug)]
pub enum Outcome {
    Pass(String),
    Fail(String),
}

type CheckFn = Result<Outcome, String>;

/// The negative event type of each kind of check.
pub fn failure_type(check: &Check) -> &'static str {
    match check {
        Check::Http(_) => "http_check_failed",
        Check::Tcp(_) => "port_unreachable",
        Check::Container(_) => "containers_not_running",
        Check::Exec(_) => "exec_check_failed",
        // The contract has no systemd-specific type: the generic one says it.
        Check::Systemd(_) => "service_unhealthy",
        Check::Mqtt(_) => "mqtt_unreachable",
        // Never run by the agent (the Alertmanager receiver reports it).
        Check::Alert(_) => "service_unhealthy",
    }
}

/// The checks the agent runs for a service: its own local ones (`alert:` checks are the
/// Alertmanager receiver's, never run here), or, when it lists no check at all but names
/// containers or a compose folder, an implicit container check (a service with containers is at
/// least expected to have them running). Empty for a service whose every check is `alert:`.
pub fn effective_checks(spec: &ServiceSpec) -> Vec<Check> {
    if spec.checks.is_empty() && (!spec.containers.is_empty() || spec.compose_dir.is_some()) {
        vec![Check::Container(ContainerCheck::default())]
    } else {
        spec.checks.iter().filter(|c| c.is_local()).cloned().collect()
    }
}

/// Combines a service's check results: healthy when all passed, otherwise the first failure (in
/// the order of the YAML) names the event type and the detail.
pub fn service_verdict(results: &[CheckResult]) -> (Verdict, String) {
    match results.iter().find(|r| !r.passed) {
        Some(r) => (Verdict::Unhealthy { event_type: r.event_type.unwrap_or("check_error") }, r.reason.clone()),
        None if results.is_empty() => (Verdict::Healthy, "no checks configured".to_owned()),
        None => (Verdict::Healthy, results.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>().join("; ")),
    }
}

/// Runs checks. Cheap to clone; holds the HTTP clients and the Docker connection.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
    docker: tokio::sync::OnceCell<Docker>,
}

impl Checker {
    pub fn new() -> anyhow::Result<Checker> {
        let build = |insecure: bool| {
            reqwest::Client::builder().danger_accept_invalid_certs(insecure).user_agent(concat!("homelab-node-agent/", env!("CARGO_PKG_VERSION"))).build()
        };
        Ok(Checker { inner: Arc::new(Inner { http: build(false)?, http_insecure: build(true)?, docker: tokio::sync::OnceCell::new() }) })
    }

    /// The Docker engine, connected through `DOCKER_HOST` or the local socket, with the API
    /// version negotiated (the engine may be older than bollard's default). Retried on the next
    /// call when it fails.
    pub async fn docker(&self) -> Result<Docker, String> {
        self.inner
            .docker
            .get_or_try_init(|| async {
                let docker = Docker::connect_with_local_defaults().map_err(|e| format!("cannot connect to the Docker engine: {e}"))?;
                match tokio::time::timeout(DOCKER_CONNECT_TIMEOUT, docker.negotiate_version()).await {
                    Ok(Ok(d)) => Ok(d),
                    Ok(Err(e)) => Err(format!("the Docker engine does not answer: {e}")),
                    Err(_) => Err(format!("the Docker engine did not answer within {DOCKER_CONNECT_TIMEOUT:?}")),
                }
            })
            .await
            .cloned()
    }

    /// Runs every check of a service concurrently; results in the order of the YAML.
    pub async fn run_service(&self, service: &str, spec: &ServiceSpec) -> Vec<CheckResult> {
        let checks = effective_checks(spec);
        let futures = checks.into_iter().map(|check| self.run_one(service, spec, check));
        futures_util::future::join_all(futures).await
    }

    /// Runs one check on its own task under its own timeout.
    pub async fn run_one(&self, service: &str, spec: &ServiceSpec, check: Check) -> CheckResult {
        let started = Instant::now();
        let timeout = check.timeout();
        let kind = check.kind();
        let fail_type = failure_type(&check);
        let thresholds = (check.failure_threshold(), check.success_threshold());
        let this = self.clone();
        let (service_owned, spec_owned) = (service.to_owned(), spec.clone());
        let mut task = tokio::spawn(async move { this.check(&service_owned, &spec_owned, &check).await });
        let (passed, event_type, reason) = match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(Ok(Outcome::Pass(r)))) => (true, None, r),
            Ok(Ok(Ok(Outcome::Fail(r)))) => (false, Some(fail_type), r),
            Ok(Ok(Err(e))) => (false, Some("check_error"), format!("{kind} check could not run: {e}")),
            Ok(Err(join)) => {
                let msg = if join.is_panic() { "the check panicked (a bug: please report it)" } else { "the check was cancelled" };
                tracing::error!(service, kind, error = %join, "health check task failed");
                (false, Some("check_error"), format!("{kind} check: {msg}"))
            }
            Err(_) => {
                task.abort();
                (false, Some(fail_type), format!("{kind} check timed out after {}s", timeout.as_secs_f64()))
            }
        };
        CheckResult { kind, passed, event_type, reason, duration: started.elapsed(), thresholds }
    }

    async fn check(&self, service: &str, spec: &ServiceSpec, check: &Check) -> CheckFn {
        match check {
            Check::Http(c) => self.http(c).await,
            Check::Tcp(c) => tcp(c).await,
            Check::Container(c) => self.container(service, spec, c).await,
            Check::Exec(c) => self.exec(c).await,
            Check::Systemd(c) => systemd(c).await,
            Check::Mqtt(c) => mqtt(c).await,
            Check::Alert(_) => Err("alert checks are not run by the agent".into()),
        }
    }

    async fn http(&self, c: &HttpCheck) -> CheckFn {
        let client = if c.insecure_skip_verify { &self.inner.http_insecure } else { &self.inner.http };
        let timeout = Check::Http(c.clone()).timeout();
        let mut req = client.get(&c.url).timeout(timeout);
        if let Some(auth) = &c.basic_auth {
            let password = if let Some(var) = &auth.password_env {
                std::env::var(var).map_err(|_| format!("basic_auth password_env {var} is not set in the agent's environment"))?
            } else if let Some(file) = &auth.password_file {
                let text = tokio::fs::read_to_string(file).await.map_err(|e| format!("cannot read basic_auth password_file {file}: {e}"))?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                return Err("basic_auth needs password_env or password_file".into());
            };
            req = req.basic_auth(&auth.user, Some(password));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Err(format!("bad url {}: {e}", c.url)),
            Err(e) if e.is_timeout() => return Ok(Outcome::Fail(format!("GET {} timed out after {}s", c.url, timeout.as_secs_f64()))),
            Err(e) => return Ok(Outcome::Fail(format!("GET {} failed: {}", c.url, error_chain(&e)))),
        };
        let status = resp.status().as_u16();
        if !c.expect_status.contains(&status) {
            return Ok(Outcome::Fail(format!("GET {} answered {status}, expected {:?}", c.url, c.expect_status)));
        }
        if let Some(needle) = &c.body_contains {
            let body = match resp.text().await {
                Ok(b) => b,
                Err(e) => return Ok(Outcome::Fail(format!("GET {}: reading the body failed: {}", c.url, error_chain(&e)))),
            };
            if !body.contains(needle.as_str()) {
                return Ok(Outcome::Fail(format!("GET {} answered {status} but the body does not contain {needle:?}", c.url)));
            }
        }
        Ok(Outcome::Pass(format!("GET {} answered {status}", c.url)))
    }

    async fn container(&self, service: &str, spec: &ServiceSpec, _c: &ContainerCheck) -> CheckFn {
        let docker = self.docker().await?;
        let names = if spec.containers.is_empty() {
            let filters = HashMap::from([("label", vec![format!("{COMPOSE_SERVICE_LABEL}={service}")])]);
            let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
            let list = docker.list_containers(Some(opts)).await.map_err(|e| format!("listing containers failed: {e}"))?;
            let names: Vec<String> =
                list.into_iter().filter_map(|c| c.names.and_then(|n| n.into_iter().next()).map(|n| n.trim_start_matches('/').to_owned())).collect();
            if names.is_empty() {
                return Ok(Outcome::Fail(format!("no container carries the label {COMPOSE_SERVICE_LABEL}={service}")));
            }
            names
        } else {
            spec.containers.clone()
        };
        let mut ok = Vec::new();
        for name in &names {
            match container_state(&docker, name).await? {
                ContainerHealth::Running => ok.push(name.as_str()),
                ContainerHealth::Down(why) => return Ok(Outcome::Fail(why)),
            }
        }
        Ok(Outcome::Pass(format!("running: {}", ok.join(", "))))
    }

    async fn exec(&self, c: &ExecCheck) -> CheckFn {
        let docker = self.docker().await?;
        let config = ExecConfig { cmd: Some(c.command.clone()), attach_stdout: Some(true), attach_stderr: Some(true), ..Default::default() };
        let created = match docker.create_exec(&c.container, config).await {
            Ok(created) => created,
            Err(e) => return Ok(Outcome::Fail(format!("cannot exec in container {}: {}", c.container, docker_error(&e)))),
        };
        let mut output = String::new();
        match docker.start_exec(&created.id, None).await {
            Ok(bollard::exec::StartExecResults::Attached { output: mut stream, .. }) => {
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(chunk) => {
                            if output.len() < 4096 {
                                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                            }
                        }
                        Err(e) => return Err(format!("reading exec output failed: {e}")),
                    }
                }
            }
            Ok(bollard::exec::StartExecResults::Detached) => {}
            Err(e) => return Ok(Outcome::Fail(format!("cannot exec in container {}: {}", c.container, docker_error(&e)))),
        }
        let inspect = docker.inspect_exec(&created.id).await.map_err(|e| format!("inspecting the exec failed: {e}"))?;
        let last_line = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        let shown = c.command.join(" ");
        match inspect.exit_code {
            Some(0) => Ok(Outcome::Pass(format!("`{shown}` exited 0"))),
            Some(code) if last_line.is_empty() => Ok(Outcome::Fail(format!("`{shown}` in {} exited {code}", c.container))),
            Some(code) => Ok(Outcome::Fail(format!("`{shown}` in {} exited {code}: {last_line}", c.container))),
            None => Err(format!("`{shown}` in {} ended without an exit code", c.container)),
        }
    }
}

/// What a container's state means for its service.
#[derive(Debug)]
pub enum ContainerHealth {
    Running,
    Down(String),
}

/// Inspects one container: running and not `unhealthy`, or why not.
pub async fn container_state(docker: &Docker, name: &str) -> Result<ContainerHealth, String> {
    let inspect = match docker.inspect_container(name, None::<InspectContainerOptions>).await {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            return Ok(ContainerHealth::Down(format!("container {name} does not exist")));
        }
        Err(e) => return Err(format!("inspecting container {name} failed: {e}")),
    };
    let state = inspect.state.unwrap_or_default();
    let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
    if status != ContainerStateStatusEnum::RUNNING {
        let code = state.exit_code.map(|c| format!(" ({c})")).unwrap_or_default();
        let since = state.finished_at.filter(|f| !f.starts_with("0001")).map(|f| format!(" at {f}")).unwrap_or_default();
        return Ok(ContainerHealth::Down(format!("container {name} is {status}{code}{since}")));
    }
    if state.health.and_then(|h| h.status) == Some(HealthStatusEnum::UNHEALTHY) {
        return Ok(ContainerHealth::Down(format!("container {name} is running but unhealthy")));
    }
    Ok(ContainerHealth::Running)
}

async fn tcp(c: &TcpCheck) -> CheckFn {
    match TcpStream::connect((c.host.as_str(), c.port)).await {
        Ok(_) => Ok(Outcome::Pass(format!("{}:{} accepts connections", c.host, c.port))),
        Err(e) => Ok(Outcome::Fail(format!("cannot connect to {}:{}: {e}", c.host, c.port))),
    }
}

async fn systemd(c: &SystemdCheck) -> CheckFn {
    let out = tokio::process::Command::new("systemctl").args(["is-active", "--", &c.unit]).stdin(std::process::Stdio::null()).kill_on_drop(true).output().await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("systemctl is not installed on this node".into()),
        Err(e) => return Err(format!("cannot run systemctl: {e}")),
    };
    let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        return Ok(Outcome::Pass(format!("unit {} is {state}", c.unit)));
    }
    // "offline" or an empty answer: systemd is not running here (a container, a chroot).
    if state.is_empty() || state == "offline" {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(format!("systemd is not available on this node: {}", if stderr.is_empty() { &state } else { &stderr }));
    }
    Ok(Outcome::Fail(format!("unit {} is {state}", c.unit)))
}

/// An MQTT 3.1.1 CONNECT with clean session, keep-alive 60 s and an empty client id (the
/// broker assigns one): 14 bytes.
pub const MQTT_CONNECT: [u8; 14] = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0];
const MQTT_DISCONNECT: [u8; 2] = [0xE0, 0];

/// Reads a CONNACK's return code: `Ok(code)` or a description of what came instead.
pub fn parse_connack(bytes: &[u8; 4]) -> Result<u8, String> {
    if bytes[0] != 0x20 || bytes[1] != 2 {
        return Err(format!("the answer is not an MQTT CONNACK (first bytes {:02x} {:02x})", bytes[0], bytes[1]));
    }
    Ok(bytes[3])
}

/// Whether a CONNACK return code means the broker is up. 4 and 5 (bad credentials, not
/// authorised) mean a live broker that wants credentials the agent does not have: it is up.
pub fn connack_means_up(code: u8) -> Result<&'static str, String> {
    match code {
        0 => Ok("accepted"),
        4 => Ok("alive (asks for a user name and password)"),
        5 => Ok("alive (not authorised without credentials)"),
        1 => Err("refused: unacceptable protocol version".into()),
        2 => Err("refused: identifier rejected".into()),
        3 => Err("refused: server unavailable".into()),
        n => Err(format!("refused with return code {n}")),
    }
}

async fn mqtt(c: &MqttCheck) -> CheckFn {
    let addr = format!("{}:{}", c.host, c.port);
    let mut stream = match TcpStream::connect((c.host.as_str(), c.port)).await {
        Ok(s) => s,
        Err(e) => return Ok(Outcome::Fail(format!("cannot connect to the MQTT broker at {addr}: {e}"))),
    };
    if let Err(e) = stream.write_all(&MQTT_CONNECT).await {
        return Ok(Outcome::Fail(format!("sending CONNECT to {addr} failed: {e}")));
    }
    let mut ack = [0u8; 4];
    if let Err(e) = stream.read_exact(&mut ack).await {
        return Ok(Outcome::Fail(format!("no CONNACK from {addr}: {e}")));
    }
    let code = match parse_connack(&ack) {
        Ok(code) => code,
        Err(e) => return Ok(Outcome::Fail(format!("{addr}: {e}"))),
    };
    let _ = stream.write_all(&MQTT_DISCONNECT).await;
    match connack_means_up(code) {
        Ok(what) => Ok(Outcome::Pass(format!("MQTT broker at {addr}: {what}"))),
        Err(why) => Ok(Outcome::Fail(format!("MQTT broker at {addr} {why}"))),
    }
}

/// An error with its sources, on one line (reqwest hides the useful part in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn docker_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => format!("{message} ({status_code})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(kind: &'static str, passed: bool, event_type: Option<&'static str>, reason: &str) -> CheckResult {
        CheckResult { kind, passed, event_type, reason: reason.into(), duration: Duration::ZERO, thresholds: (1, 1) }
    }

    #[test]
    fn verdict_table() {
        let cases = [
            ("every check passed", vec![result("tcp", true, None, "open"), result("http", true, None, "200")], Verdict::Healthy),
            (
                "the first failure in YAML order names the type",
                vec![
                    result("tcp", true, None, "open"),
                    result("http", false, Some("http_check_failed"), "500"),
                    result("exec", false, Some("exec_check_failed"), "1"),
                ],
                Verdict::Unhealthy { event_type: "http_check_failed" },
            ),
            ("no checks at all", vec![], Verdict::Healthy),
        ];
        for (situation, results, want) in cases {
            assert_eq!(service_verdict(&results).0, want, "{situation}");
        }
    }

    #[test]
    fn connack_table() {
        let cases: [(&str, [u8; 4], Result<bool, ()>); 5] = [
            ("accepted", [0x20, 2, 0, 0], Ok(true)),
            ("wants credentials: alive", [0x20, 2, 0, 5], Ok(true)),
            ("server unavailable", [0x20, 2, 0, 3], Ok(false)),
            ("not MQTT at all (an HTTP server)", *b"HTTP", Err(())),
            ("a SUBACK, not a CONNACK", [0x90, 3, 0, 1], Err(())),
        ];
        for (situation, bytes, want) in cases {
            let got = parse_connack(&bytes).map(|code| connack_means_up(code).is_ok()).map_err(|_| ());
            assert_eq!(got, want, "{situation}");
        }
        assert_eq!(MQTT_CONNECT.len(), 14);
        assert_eq!(usize::from(MQTT_CONNECT[1]), MQTT_CONNECT.len() - 2, "remaining length");
    }

    #[test]
    fn implicit_container_check() {
        let mut spec = ServiceSpec {
            compose_dir: None,
            containers: vec!["db".into()],
            depends_on: vec![],
            monitor: true,
            checks: vec![],
            verify_window_secs: None,
            rollback: true,
        };
        assert_eq!(effective_checks(&spec).len(), 1);
        spec.containers.clear();
        assert!(effective_checks(&spec).is_empty());
        // Only alert checks: nothing runs here, not even the implicit container check.
        let alert = Check::Alert(homelab_core::desired::AlertCheck { alertname: "Down".into(), labels: Default::default() });
        spec.containers = vec!["db".into()];
        spec.checks = vec![alert.clone()];
        assert!(effective_checks(&spec).is_empty());
        spec.checks =
            vec![alert, Check::Tcp(TcpCheck { port: 1, host: "127.0.0.1".into(), timeout_secs: None, failure_threshold: None, success_threshold: None })];
        assert_eq!(effective_checks(&spec).iter().map(Check::kind).collect::<Vec<_>>(), ["tcp"]);
    }
}
