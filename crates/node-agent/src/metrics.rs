//! `GET /metrics` next to the readiness endpoint: the agent's own counters and its checks'
//! last results and durations, in the Prometheus text format (0.0.4).
//!
//! - `homelab_agent_build_info{version}` 1
//! - `homelab_agent_start_time_seconds`, `homelab_agent_last_pass_timestamp_seconds` (gauges)
//! - `homelab_agent_passes_total` (counter)
//! - `homelab_agent_check_up{service,check}`: 1 when the check passed on its last run, else 0
//! - `homelab_agent_check_duration_seconds{service,check}`: the last run's duration (gauge)
//! - `homelab_agent_checks_total{service,check,result="pass|fail"}` (counter)
//! - `homelab_agent_check_seconds_total{service,check}` (counter: time spent in checks)
//! - `homelab_agent_events_total{type}`, `homelab_agent_event_failures_total` (counters: events
//!   handed to the sink, and those it could not take)
//!
//! Counters start at zero when the agent starts (`rate()` treats a restart as a reset).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default)]
struct CheckStats {
    up: bool,
    last_duration: Duration,
    passed: u64,
    failed: u64,
    seconds: f64,
}

#[derive(Debug, Default)]
struct Inner {
    checks: BTreeMap<(String, String), CheckStats>,
    events: BTreeMap<String, u64>,
    event_failures: u64,
    passes: u64,
    last_pass: Option<SystemTime>,
}

/// The agent's metrics, shared by the main loop and the HTTP endpoint.
#[derive(Debug)]
pub struct Metrics {
    started: SystemTime,
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { started: SystemTime::now(), inner: Mutex::default() }
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// A label value, escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pass_started(&self) {
        let mut i = self.lock();
        i.passes += 1;
        i.last_pass = Some(SystemTime::now());
    }

    /// One check's result (from a pass or a re-check; readiness probes are not counted).
    pub fn check(&self, service: &str, kind: &str, passed: bool, duration: Duration) {
        let mut i = self.lock();
        let s = i.checks.entry((service.to_owned(), kind.to_owned())).or_default();
        s.up = passed;
        s.last_duration = duration;
        s.seconds += duration.as_secs_f64();
        if passed {
            s.passed += 1;
        } else {
            s.failed += 1;
        }
    }

    /// Forgets services that left the host file (their series disappear).
    pub fn retain_services(&self, keep: impl Fn(&str) -> bool) {
        self.lock().checks.retain(|(s, _), _| keep(s));
    }

    pub fn event(&self, kind: &str, ok: bool) {
        let mut i = self.lock();
        if ok {
            *i.events.entry(kind.to_owned()).or_default() += 1;
        } else {
            i.event_failures += 1;
        }
    }

    /// The text format.
    pub fn render(&self) -> String {
        let i = self.lock();
        let mut o = String::new();
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut o, "homelab_agent_build_info", "gauge", "The agent's version; always 1");
        let _ = writeln!(o, "homelab_agent_build_info{{version=\"{}\"}} 1", esc(crate::AGENT_VERSION));
        head(&mut o, "homelab_agent_start_time_seconds", "gauge", "When the agent started (Unix time)");
        let _ = writeln!(o, "homelab_agent_start_time_seconds {:.3}", secs(self.started));
        head(&mut o, "homelab_agent_last_pass_timestamp_seconds", "gauge", "When the last check pass started (Unix time; 0 before the first)");
        let _ = writeln!(o, "homelab_agent_last_pass_timestamp_seconds {:.3}", i.last_pass.map(secs).unwrap_or(0.0));
        head(&mut o, "homelab_agent_passes_total", "counter", "Check passes started since the agent started");
        let _ = writeln!(o, "homelab_agent_passes_total {}", i.passes);
        head(&mut o, "homelab_agent_check_up", "gauge", "1 when the check passed on its last run, 0 when it failed");
        for ((svc, kind), s) in &i.checks {
            let _ = writeln!(o, "homelab_agent_check_up{{service=\"{}\",check=\"{}\"}} {}", esc(svc), esc(kind), u8::from(s.up));
        }
        head(&mut o, "homelab_agent_check_duration_seconds", "gauge", "How long the check's last run took");
        for ((svc, kind), s) in &i.checks {
            let _ =
                writeln!(o, "homelab_agent_check_duration_seconds{{service=\"{}\",check=\"{}\"}} {:.6}", esc(svc), esc(kind), s.last_duration.as_secs_f64());
        }
        head(&mut o, "homelab_agent_checks_total", "counter", "Check runs, by result");
        for ((svc, kind), s) in &i.checks {
            for (result, n) in [("pass", s.passed), ("fail", s.failed)] {
                let _ = writeln!(o, "homelab_agent_checks_total{{service=\"{}\",check=\"{}\",result=\"{result}\"}} {n}", esc(svc), esc(kind));
            }
        }
        head(&mut o, "homelab_agent_check_seconds_total", "counter", "Time spent running the check");
        for ((svc, kind), s) in &i.checks {
            let _ = writeln!(o, "homelab_agent_check_seconds_total{{service=\"{}\",check=\"{}\"}} {:.6}", esc(svc), esc(kind), s.seconds);
        }
        head(&mut o, "homelab_agent_events_total", "counter", "Events handed to the data root or the spool, by type");
        for (kind, n) in &i.events {
            let _ = writeln!(o, "homelab_agent_events_total{{type=\"{}\"}} {n}", esc(kind));
        }
        head(&mut o, "homelab_agent_event_failures_total", "counter", "Events that could not be written (full or read-only data root or spool)");
        let _ = writeln!(o, "homelab_agent_event_failures_total {}", i.event_failures);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let m = Metrics::default();
        m.pass_started();
        m.check("web", "http", true, Duration::from_millis(20));
        m.check("web", "http", false, Duration::from_millis(40));
        m.check("we\"b", "tcp", true, Duration::from_millis(1));
        m.event("service_healthy", true);
        m.event("node_heartbeat", false);
        let text = m.render();
        assert!(text.contains("homelab_agent_check_up{service=\"web\",check=\"http\"} 0"), "{text}");
        assert!(text.contains("homelab_agent_checks_total{service=\"web\",check=\"http\",result=\"pass\"} 1"), "{text}");
        assert!(text.contains("homelab_agent_check_duration_seconds{service=\"web\",check=\"http\"} 0.040000"), "{text}");
        assert!(text.contains("service=\"we\\\"b\""), "{text}");
        assert!(text.contains("homelab_agent_events_total{type=\"service_healthy\"} 1"), "{text}");
        assert!(text.contains("homelab_agent_event_failures_total 1"), "{text}");
        assert!(text.contains("homelab_agent_passes_total 1"), "{text}");
        m.retain_services(|s| s == "web");
        assert!(!m.render().contains("we\\\"b"));
    }
}
