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
//! - Hysteresis per check ([`Tracker::observe_checks`]): a check counts as failing only after
//!   `failure_threshold` consecutive failed runs, and as passing again only after
//!   `success_threshold` consecutive passed runs (both default 1: every run counts at once). The
//!   service is unhealthy while one of its checks counts as failing; until then a pass reports it
//!   healthy. A container death from the Docker events stays immediate
//!   ([`Tracker::container_down`]); after it, the service is healthy again only once each check
//!   has passed its `success_threshold` times in a row.

use std::collections::BTreeMap;

/// Where a verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The periodic pass (or `--once`).
    Pass,
    /// The Docker events stream, between passes.
    DockerEvent,
    /// An operator's "check now": reported like a pass.
    CheckNow,
}

/// One check's result with its hysteresis settings, as the tracker needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRun {
    pub passed: bool,
    /// The negative event type when it failed.
    pub event_type: &'static str,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// Where one check stands: counting failing or not, its current streak, and the type of its
/// last failure (what it reports while it waits for `success_threshold` passes).
#[derive(Debug, Clone, Copy, Default)]
struct CheckState {
    failing: bool,
    fails: u32,
    passes: u32,
    event_type: Option<&'static str>,
}

/// Per service: the checks' states, and a death seen in the Docker events that still holds.
#[derive(Debug, Default)]
struct ServiceState {
    checks: Vec<CheckState>,
    died: Option<&'static str>,
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
    states: BTreeMap<String, ServiceState>,
}

impl Tracker {
    /// Records one run of a service's checks (a pass, a re-check, a check-now), applies each
    /// check's thresholds, and says which event type to emit, if any, with the verdict it stands
    /// for (the failing check that gives the type is the first in YAML order).
    pub fn observe_checks(&mut self, service: &str, runs: &[CheckRun], source: Source) -> (Option<&'static str>, Verdict) {
        let state = self.states.entry(service.to_owned()).or_default();
        if state.checks.len() != runs.len() {
            // The host file changed this service's checks: start counting afresh.
            state.checks = vec![CheckState::default(); runs.len()];
        }
        for (c, run) in state.checks.iter_mut().zip(runs) {
            if run.passed {
                c.passes = c.passes.saturating_add(1);
                c.fails = 0;
                if c.passes >= run.success_threshold.max(1) {
                    c.failing = false;
                }
            } else {
                c.fails = c.fails.saturating_add(1);
                c.passes = 0;
                c.event_type = Some(run.event_type);
                if c.fails >= run.failure_threshold.max(1) {
                    c.failing = true;
                }
            }
        }
        if state.died.is_some() && state.checks.iter().zip(runs).all(|(c, r)| !c.failing && c.passes >= r.success_threshold.max(1)) {
            state.died = None;
        }
        let verdict = match state.checks.iter().zip(runs).find(|(c, _)| c.failing) {
            Some((c, r)) => Verdict::Unhealthy { event_type: c.event_type.unwrap_or(r.event_type) },
            None => match state.died {
                Some(event_type) => Verdict::Unhealthy { event_type },
                None => Verdict::Healthy,
            },
        };
        (self.observe(service, verdict.clone(), source), verdict)
    }

    /// A container of the service died (Docker events): unhealthy at once, whatever the
    /// thresholds say; healthy again only after every check's `success_threshold` passes.
    pub fn container_down(&mut self, service: &str, event_type: &'static str) -> Option<&'static str> {
        let state = self.states.entry(service.to_owned()).or_default();
        state.died = Some(event_type);
        for c in &mut state.checks {
            c.passes = 0;
        }
        self.observe(service, Verdict::Unhealthy { event_type }, Source::DockerEvent)
    }

    /// Records a verdict and says which event type to emit, if any (the emission rules, without
    /// thresholds).
    pub fn observe(&mut self, service: &str, verdict: Verdict, source: Source) -> Option<&'static str> {
        let previous = self.last.get(service).cloned();
        let emit = match (&verdict, source) {
            (Verdict::Healthy, _) if matches!(previous, Some(Verdict::Unhealthy { .. })) => Some("service_recovered"),
            (Verdict::Healthy, Source::Pass | Source::CheckNow) => Some("service_healthy"),
            // Only a pass confirms health: a container start is a hint to re-check, not a verdict.
            (Verdict::Healthy, Source::DockerEvent) => None,
            (Verdict::Unhealthy { event_type }, Source::Pass | Source::CheckNow) => Some(*event_type),
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
        self.states.retain(|k, _| keep(k));
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
            (
                "a failing service is reported on every pass",
                vec![(HTTP_DOWN, Pass), (HTTP_DOWN, Pass)],
                vec![Some("http_check_failed"), Some("http_check_failed")],
            ),
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

    /// A step of a threshold story: the check results of one run (or a container death).
    #[derive(Clone, Copy)]
    enum Step {
        /// One run; per check `true` = passed.
        Run(&'static [bool], Source),
        Died,
    }

    /// Feeds runs of a service whose checks have these `(failure, success)` thresholds.
    fn threshold_story(thresholds: &[(u32, u32)], steps: &[Step]) -> Vec<Option<&'static str>> {
        let mut t = Tracker::default();
        let types = ["http_check_failed", "port_unreachable", "containers_not_running"];
        steps
            .iter()
            .map(|step| match *step {
                Step::Run(passed, source) => {
                    let runs: Vec<CheckRun> = passed
                        .iter()
                        .zip(thresholds)
                        .enumerate()
                        // A passed run carries no failure type (the agent passes `check_error`).
                        .map(|(i, (&passed, &(f, s)))| CheckRun {
                            passed,
                            event_type: if passed { "check_error" } else { types[i] },
                            failure_threshold: f,
                            success_threshold: s,
                        })
                        .collect();
                    t.observe_checks("svc", &runs, source).0
                }
                Step::Died => t.container_down("svc", "containers_not_running"),
            })
            .collect()
    }

    #[test]
    fn thresholds_table() {
        use Source::*;
        use Step::*;
        const OK: Step = Run(&[true], Pass);
        const FAIL: Step = Run(&[false], Pass);
        const H: Option<&str> = Some("service_healthy");
        const R: Option<&str> = Some("service_recovered");
        const F: Option<&str> = Some("http_check_failed");
        const C: Option<&str> = Some("containers_not_running");
        type Case = (&'static str, Vec<(u32, u32)>, Vec<Step>, Vec<Option<&'static str>>);
        let cases: Vec<Case> = vec![
            ("defaults 1/1: every run counts at once (today's behaviour)", vec![(1, 1)], vec![OK, FAIL, OK, FAIL, FAIL], vec![H, F, R, F, F]),
            ("failure_threshold 3: two failures stay healthy, the third turns unhealthy", vec![(3, 1)], vec![OK, FAIL, FAIL, FAIL, FAIL], vec![H, H, H, F, F]),
            ("a success in between starts the count again", vec![(3, 1)], vec![FAIL, FAIL, OK, FAIL, FAIL, FAIL], vec![H, H, H, H, H, F]),
            ("failing from the very first pass: unhealthy on the third", vec![(3, 1)], vec![FAIL, FAIL, FAIL], vec![H, H, F]),
            ("success_threshold 2: one success is not yet a recovery", vec![(1, 2)], vec![FAIL, OK, OK, OK], vec![F, F, R, H]),
            ("a failure during the recovery count starts it again", vec![(1, 2)], vec![FAIL, OK, FAIL, OK, OK], vec![F, F, F, F, R]),
            ("3/2 together", vec![(3, 2)], vec![FAIL, FAIL, FAIL, OK, OK, FAIL, FAIL], vec![H, H, F, F, R, H, H]),
            (
                "thresholds are per check: the second check fails at once and gives its type",
                vec![(3, 1), (1, 1)],
                vec![Run(&[false, true], Pass), Run(&[false, false], Pass), Run(&[true, true], Pass)],
                vec![H, Some("port_unreachable"), R],
            ),
            (
                "the first failing check in YAML order gives the type once both count",
                vec![(2, 1), (1, 1)],
                vec![Run(&[false, false], Pass), Run(&[false, false], Pass)],
                vec![Some("port_unreachable"), F],
            ),
            ("a container death stays immediate, whatever failure_threshold says", vec![(5, 1)], vec![OK, Died, Died], vec![H, C, None]),
            ("after a death, success_threshold passes are needed to recover", vec![(5, 2)], vec![OK, OK, Died, OK, OK, OK], vec![H, H, C, C, R, H]),
            ("defaults: a re-check that passes after a death recovers at once", vec![(1, 1)], vec![Died, Run(&[true], DockerEvent)], vec![C, R]),
            ("a re-check counts toward the threshold but says nothing while healthy", vec![(2, 1)], vec![Run(&[false], DockerEvent), FAIL], vec![None, F]),
            ("check-now reports like a pass", vec![(1, 1)], vec![Run(&[true], CheckNow), Run(&[false], CheckNow)], vec![H, F]),
        ];
        for (situation, thresholds, steps, want) in cases {
            assert_eq!(threshold_story(&thresholds, &steps), want, "{situation}");
        }
    }
}
