//! The Docker events stream: a container of a known service that dies, is OOM-killed or turns
//! unhealthy is reported at once, without waiting for the next pass; a container that starts or
//! turns healthy again triggers an immediate re-check of its service.
//!
//! The subscription asks for events `since` the agent started (and after a reconnect, since a
//! few seconds before the newest event seen, skipping the ones already handled), so an event
//! that happens while the stream is still connecting is not lost.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use homelab_core::HostSpec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checks::{COMPOSE_SERVICE_LABEL, Checker};
use crate::{Msg, Shared};

/// What a container event means for its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The service is down now; the detail says which container and how.
    Down(String),
    /// Something got better: re-run the service's checks.
    Recheck,
}

/// Reads one Docker event: the container's name, action and attributes → a signal, or nothing.
pub fn classify(action: &str, attributes: &HashMap<String, String>) -> Option<Signal> {
    let name = attributes.get("name").map_or("?", String::as_str);
    match action {
        "die" => {
            let code = attributes.get("exitCode").map(|c| format!(" ({c})")).unwrap_or_default();
            Some(Signal::Down(format!("container {name} exited{code}")))
        }
        "oom" => Some(Signal::Down(format!("container {name} was killed: out of memory"))),
        "health_status: unhealthy" => Some(Signal::Down(format!("container {name} turned unhealthy"))),
        "start" | "health_status: healthy" => Some(Signal::Recheck),
        _ => None,
    }
}

/// The monitored service a container belongs to: listed by name in `containers`, or (for a
/// service that lists none) carrying the compose label with the service's name.
/// Services whose every check is `alert:` are left out: the agent reports nothing for them.
pub fn service_of(spec: &HostSpec, attributes: &HashMap<String, String>) -> Option<String> {
    let name = attributes.get("name")?;
    if let Some((svc, _)) = spec.monitored().find(|(_, s)| !s.alert_only() && s.containers.iter().any(|c| c == name)) {
        return Some(svc.clone());
    }
    let label = attributes.get(COMPOSE_SERVICE_LABEL)?;
    spec.monitored().find(|(svc, s)| !s.alert_only() && s.containers.is_empty() && *svc == label).map(|(svc, _)| svc.clone())
}

/// How far back a reconnect asks the stream again, and how long handled events are remembered.
const REPLAY_WINDOW_NANOS: i64 = 5_000_000_000;

/// The events already handled. Docker delivers events slightly out of `timeNano` order when
/// containers die at once, so "older than the newest seen" does not mean "seen": an event is
/// skipped only when this very event (time, container, action) was handled. After a reconnect
/// the stream is asked again from a little before the newest event seen, and the replayed ones
/// are skipped here.
#[derive(Debug, Default)]
pub struct Seen {
    keys: std::collections::HashSet<(i64, String, String)>,
    newest: i64,
}

impl Seen {
    /// True the first time an event is offered (always for an event without a time).
    pub fn first(&mut self, nano: i64, id: &str, action: &str) -> bool {
        if nano == 0 {
            return true;
        }
        if !self.keys.insert((nano, id.to_owned(), action.to_owned())) {
            return false;
        }
        if nano > self.newest {
            self.newest = nano;
            let cut = nano - REPLAY_WINDOW_NANOS;
            self.keys.retain(|(n, _, _)| *n >= cut);
        }
        true
    }

    /// Where a reconnect resumes the stream: a window before the newest event seen.
    pub fn resume_from(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        (self.newest > 0).then(|| chrono::DateTime::from_timestamp_nanos(self.newest - REPLAY_WINDOW_NANOS))
    }
}

/// Follows the events stream until shutdown, reconnecting with a pause when it breaks.
pub async fn watch(checker: Checker, shared: std::sync::Arc<Shared>, tx: mpsc::UnboundedSender<Msg>, shutdown: CancellationToken) {
    let started = chrono::Utc::now();
    let mut seen = Seen::default();
    let mut warned = false;
    loop {
        let docker = tokio::select! {
            _ = shutdown.cancelled() => return,
            d = checker.docker() => d,
        };
        match docker {
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "no Docker engine: container deaths are seen at the next pass only");
                    warned = true;
                }
            }
            Ok(docker) => {
                let filters = HashMap::from([("type", vec!["container"])]);
                let since = seen.resume_from().map_or(started, |t| t.max(started));
                let since_arg = format!("{}.{:09}", since.timestamp(), since.timestamp_subsec_nanos());
                let opts = EventsOptionsBuilder::new().since(&since_arg).filters(&filters).build();
                let mut stream = docker.events(Some(opts));
                tracing::info!("following the Docker events stream");
                warned = false;
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = stream.next() => n,
                    };
                    let msg = match next {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "the Docker events stream broke; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the Docker events stream ended; reconnecting");
                            break;
                        }
                    };
                    let (Some(action), Some(attributes)) = (msg.action.as_deref(), msg.actor.as_ref().and_then(|a| a.attributes.as_ref())) else {
                        continue;
                    };
                    let id = msg.actor.as_ref().and_then(|a| a.id.as_deref()).unwrap_or_default();
                    if !seen.first(msg.time_nano.unwrap_or(0), id, action) {
                        continue; // replayed after a reconnect
                    }
                    let Some(signal) = classify(action, attributes) else { continue };
                    let Some(spec) = shared.spec() else { continue };
                    let Some(service) = service_of(&spec, attributes) else { continue };
                    tracing::debug!(service, action, "container event");
                    let m = match signal {
                        Signal::Down(detail) => Msg::ContainerDown { service, detail },
                        Signal::Recheck => Msg::Recheck { service },
                    };
                    if tx.send(m).is_err() {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn classify_table() {
        let cases = [
            (
                "a kill ends in die with its code",
                "die",
                attrs(&[("name", "z2m"), ("exitCode", "137")]),
                Some(Signal::Down("container z2m exited (137)".into())),
            ),
            ("out of memory", "oom", attrs(&[("name", "z2m")]), Some(Signal::Down("container z2m was killed: out of memory".into()))),
            ("a failing healthcheck", "health_status: unhealthy", attrs(&[("name", "db")]), Some(Signal::Down("container db turned unhealthy".into()))),
            ("a start asks for a re-check", "start", attrs(&[("name", "db")]), Some(Signal::Recheck)),
            ("the kill itself is noise (die follows)", "kill", attrs(&[("name", "db")]), None),
            ("exec events are noise", "exec_start: pg_isready", attrs(&[("name", "db")]), None),
        ];
        for (situation, action, a, want) in cases {
            assert_eq!(classify(action, &a), want, "{situation}");
        }
    }

    #[test]
    fn events_out_of_time_order_are_handled_and_replays_skipped() {
        let mut seen = Seen::default();
        // Containers dying at once: Docker delivers b before a although a is older.
        assert!(seen.first(1_000_000_500, "b", "die"));
        assert!(seen.first(1_000_000_400, "a", "die"), "an older event not seen before is news");
        assert!(seen.first(1_000_000_500, "b", "start"), "another action of the same time is news");
        // A reconnect asks again from a window before the newest and gets both again.
        assert_eq!(seen.resume_from().unwrap().timestamp_nanos_opt().unwrap(), 1_000_000_500 - REPLAY_WINDOW_NANOS);
        assert!(!seen.first(1_000_000_400, "a", "die"));
        assert!(!seen.first(1_000_000_500, "b", "die"));
        assert!(seen.first(0, "c", "die"), "an event without a time is always handled");
        // Memory stays bounded: keys older than the window are dropped.
        assert!(seen.first(1_000_000_500 + 2 * REPLAY_WINDOW_NANOS, "d", "die"));
        assert_eq!(seen.keys.len(), 1);
    }

    #[test]
    fn service_of_table() {
        let yaml = "services:\n  mosquitto:\n    containers: [mqtt-broker]\n  z2m:\n    compose_dir: /srv/z2m\n  ha:\n    monitor: false\n    containers: [ha]\n  ghost:\n    containers: [ghost]\n    checks:\n      - alert: { alertname: GhostDown }\n";
        let spec = homelab_core::desired::parse_host_file("t", "edge-1", yaml).unwrap().spec;
        let cases = [
            ("listed by name", attrs(&[("name", "mqtt-broker")]), Some("mosquitto")),
            ("by compose label", attrs(&[("name", "z2m-z2m-1"), (COMPOSE_SERVICE_LABEL, "z2m")]), Some("z2m")),
            ("not monitored", attrs(&[("name", "ha")]), None),
            ("a stranger", attrs(&[("name", "random")]), None),
            ("health from alerts only: the agent stays out", attrs(&[("name", "ghost")]), None),
            ("a label of a service that lists its containers", attrs(&[("name", "other"), (COMPOSE_SERVICE_LABEL, "mosquitto")]), None),
        ];
        for (situation, a, want) in cases {
            assert_eq!(service_of(&spec, &a).as_deref(), want, "{situation}");
        }
    }
}
