//! What the agent remembers between check passes, and the pure rules that turn a verdict into
//! the event to emit (or none).
//!
//! - A scheduled pass always emits: a positive event for a healthy service (so the control plane
//!   never mistakes a quiet, healthy service for a missing one) and a negative event for an
//!   unhealthy one (so `consecutive_failures` counts failed passes).
//! - The first healthy verdict after an unhealthy one is `service_recovered`, otherwise
//!   `service_healthy`.
//! - A verdict from the Docker events stream (a container died or turned unhealthy) is emitted
//!   only when it changes what the control plane believes: a kill produces `kill`, `die` and
//!   `stop` messages, and the operator wants one event, not three.

use std::collections::BTreeMap;

/// Where a verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The periodic pass (or `--once`).
    Pass,
    /// The Docker events stream, between passes.
    DockerEvent,
}

/// One service's verdict: healthy, or the negative event type that describes the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Unhealthy { event_type: &'static str },
}

/// What the agent last reported per service.
#[derive(Debug, Default)]
pub struct Tracker {
    last: BTreeMap<String, Verdict>,
}

impl Tracker {
    /// Records a verdict and says which event type to emit, if any.
    pub fn observe(&mut self, service: &str, verdict: Verdict, source: Source) -> Option<&'static str> {
        let previous = self.last.get(service).cloned();
        let emit = match (&verdict, source) {
            (Verdict::Healthy, _) if matches!(previous, Some(Verdict::Unhealthy { .. })) => Some("service_recovered"),
            (Verdict::Healthy, Source::Pass) => Some("service_healthy"),
            // Only a pass confirms health: a container start is a hint to re-check, not a verdict.
            (Verdict::Healthy, Source::DockerEvent) => None,
            (Verdict::Unhealthy { event_type }, Source::Pass) => Some(*event_type),
            (Verdict::Unhealthy { event_type }, Source::DockerEvent) => {
                if previous.as_ref() == Some(&verdict) {
                    None
                } else {
                    Some(*event_type)
                }
            }
        };
        self.last.insert(service.to_owned(), verdict);
        emit
    }

    /// True when the last verdict for `service` was unhealthy.
    pub fn is_failing(&self, service: &str) -> bool {
        matches!(self.last.get(service), Some(Verdict::Unhealthy { .. }))
    }

    /// Forgets services that left the host file.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.last.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: Verdict = Verdict::Unhealthy { event_type: "containers_not_running" };
    const HTTP_DOWN: Verdict = Verdict::Unhealthy { event_type: "http_check_failed" };

    /// Feeds a story of verdicts to a fresh tracker and returns what it emitted at each step.
    fn story(steps: &[(Verdict, Source)]) -> Vec<Option<&'static str>> {
        let mut t = Tracker::default();
        steps.iter().map(|(v, s)| t.observe("svc", v.clone(), *s)).collect()
    }

    #[test]
    fn events_table() {
        use Source::*;
        use Verdict::Healthy;
        type Case = (&'static str, Vec<(Verdict, Source)>, Vec<Option<&'static str>>);
        let cases: Vec<Case> = vec![
            ("healthy every pass is reported every pass", vec![(Healthy, Pass), (Healthy, Pass)], vec![Some("service_healthy"), Some("service_healthy")]),
            (
                "a failure then health is a recovery, then plain healthy again",
                vec![(HTTP_DOWN, Pass), (Healthy, Pass), (Healthy, Pass)],
                vec![Some("http_check_failed"), Some("service_recovered"), Some("service_healthy")],
            ),
            ("a failing service is reported on every pass", vec![(HTTP_DOWN, Pass), (HTTP_DOWN, Pass)], vec![Some("http_check_failed"), Some("http_check_failed")]),
            (
                "kill, die and stop of one container give one event",
                vec![(Healthy, Pass), (DOWN.clone(), DockerEvent), (DOWN.clone(), DockerEvent), (DOWN.clone(), DockerEvent)],
                vec![Some("service_healthy"), Some("containers_not_running"), None, None],
            ),
            (
                "a container death while http already fails is still news",
                vec![(HTTP_DOWN, Pass), (DOWN.clone(), DockerEvent)],
                vec![Some("http_check_failed"), Some("containers_not_running")],
            ),
            ("a container start alone says nothing", vec![(Healthy, DockerEvent)], vec![None]),
            (
                "the next pass after a death still reports the failure",
                vec![(DOWN.clone(), DockerEvent), (DOWN.clone(), Pass)],
                vec![Some("containers_not_running"), Some("containers_not_running")],
            ),
            (
                "recovery seen through a re-check after a start",
                vec![(DOWN.clone(), DockerEvent), (Healthy, DockerEvent)],
                vec![Some("containers_not_running"), Some("service_recovered")],
            ),
        ];
        for (situation, steps, want) in cases {
            assert_eq!(story(&steps), want, "{situation}");
        }
    }
}
