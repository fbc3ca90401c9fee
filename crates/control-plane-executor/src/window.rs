//! The verify window of a change (redeploy, rollback): for its whole length no container of
//! the project may exit, restart or vanish, and the service's own checks, as the agent reports
//! them into world state, must not fail; at its end they must have reported it healthy since
//! the change. A failure is said in a line, with the failing container's last log lines.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use homelab_core::{ServiceStatus, Timestamp};
use homelab_store::DataRoot;

/// How often the project and world state are looked at during a window.
const POLL: Duration = Duration::from_millis(500);

/// How many log lines of a failing container are kept as evidence.
pub const LOG_LINES: usize = 50;

/// Why a change failed its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line: what failed.
    pub what: String,
    /// The container to take the last log lines from, when one is to blame.
    pub container: Option<String>,
}

/// What is watched.
pub struct Watched<'a> {
    pub root: &'a DataRoot,
    pub docker: &'a Docker,
    pub node: &'a str,
    pub service: &'a str,
    pub project: &'a str,
    /// The service has checks the agent runs (else only its containers are watched).
    pub checked: bool,
}

/// One container as the window first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    started_at: String,
    restarts: i64,
}

impl Watched<'_> {
    /// Watches for `window` from `since` (the end of the change). `Ok` when the project held
    /// up; the first failure otherwise.
    pub async fn watch(&self, since: Timestamp, window: Duration) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + window;
        let mut first: Option<HashMap<String, Seen>> = None;
        loop {
            let now = self.containers().await?;
            if now.is_empty() {
                return Err(Failure { what: format!("no container of project {} is there", self.project), container: None });
            }
            let base = first.get_or_insert_with(|| now.clone());
            for (name, was) in base.iter() {
                match now.get(name) {
                    None => return Err(Failure { what: format!("container {name} is gone"), container: None }),
                    Some(is) if is.restarts > was.restarts || is.started_at != was.started_at => {
                        return Err(Failure { what: format!("container {name} restarted"), container: Some(name.clone()) });
                    }
                    Some(_) => {}
                }
            }
            if self.checked
                && let Some(s) = self.service_state()
                && s.status == ServiceStatus::Unhealthy
                && s.last_event_at >= since
            {
                let why = [s.reason.as_deref(), s.detail.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
                return Err(Failure { what: format!("its checks fail ({why})"), container: now.keys().next().cloned() });
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            // A stop of the executor drops this future: the action is then failed as interrupted.
            tokio::time::sleep(POLL).await;
        }
        if self.checked && !self.service_state().is_some_and(|s| s.status == ServiceStatus::Healthy && s.last_event_at >= since) {
            return Err(Failure { what: format!("its checks did not report it healthy within {}s", window.as_secs()), container: None });
        }
        Ok(())
    }

    fn service_state(&self) -> Option<homelab_core::ServiceState> {
        let services = self.root.read_services().ok()??;
        services.services.get(self.node)?.get(self.service).cloned()
    }

    /// The project's containers: running ones with when they started and how often they
    /// restarted. One that is not running is a failure at once.
    async fn containers(&self) -> Result<HashMap<String, Seen>, Failure> {
        let engine = |e: bollard::errors::Error| Failure { what: format!("the Docker engine of node {} does not answer: {e}", self.node), container: None };
        let filters = HashMap::from([("label".to_owned(), vec![format!("com.docker.compose.project={}", self.project)])]);
        let list =
            self.docker.list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() })).await.map_err(engine)?;
        let mut out = HashMap::new();
        for c in list {
            let Some(id) = c.id else { continue };
            let info = match self.docker.inspect_container(&id, None::<InspectContainerOptions>).await {
                Ok(i) => i,
                // Removed between the list and the look (compose replacing it): seen next time.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(engine(e)),
            };
            let name = info.name.as_deref().unwrap_or(&id).trim_start_matches('/').to_owned();
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) {
                let code = state.exit_code.map(|c| format!(" with code {c}")).unwrap_or_default();
                return Err(Failure { what: format!("container {name} exited{code}"), container: Some(name) });
            }
            out.insert(name, Seen { started_at: state.started_at.unwrap_or_default(), restarts: info.restart_count.unwrap_or(0) });
        }
        Ok(out)
    }
}

/// The last [`LOG_LINES`] lines a container wrote, with every value of `secrets` masked.
pub async fn last_logs(docker: &Docker, container: &str, secrets: &[String]) -> String {
    let options = LogsOptions { stdout: true, stderr: true, tail: LOG_LINES.to_string(), ..Default::default() };
    let mut stream = docker.logs(container, Some(options));
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => text.push_str(&chunk.to_string()),
            Err(e) => {
                text.push_str(&format!("(logs cut short: {e})\n"));
                break;
            }
        }
    }
    mask(&text, secrets)
}

/// `text` with each secret (of at least 4 characters, longest first) replaced by `***`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.chars().count() >= 4).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// The values of an env file (`KEY=value` lines; quotes removed), what logs must not show.
pub fn env_values(env_file: &str) -> Vec<String> {
    env_file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_masked_in_logs() {
        let env = "# comment\nDB_PASSWORD=\"hunter2-long\"\nPORT=80\nTOKEN='abcd1234'\nEMPTY=\n";
        let values = env_values(env);
        assert_eq!(values, ["hunter2-long", "80", "abcd1234"]);
        let logs = "connecting with hunter2-long on port 80\ntoken abcd1234 refused\n";
        assert_eq!(mask(logs, &values), "connecting with *** on port 80\ntoken *** refused\n", "short values stay: they would mask everything");
    }
}
