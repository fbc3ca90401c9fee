//! Surviving write errors: a [`Backoff`] for retries and a [`WriteErrors`] reporter every daemon
//! shares the same way.
//!
//! A full disk (ENOSPC), a failing one (EIO) or a file system remounted read-only (EROFS) must
//! never make a daemon exit: it keeps its state in memory, retries the write with backoff
//! (1 s doubling to 30 s), and catches up by itself once the disk takes writes again. What an
//! operator sees:
//!
//! - the heartbeat counter `write_errors`: failed writes since the daemon started (it only
//!   grows), and `extra.last_write_error`: `{"at", "since", "error"}` while the problem lasts,
//!   `null` once a write succeeded again ([`WriteErrors::add_to_heartbeat`]);
//! - one log line when writes start failing, one when the kind of error changes (full →
//!   read-only) and one when they work again: never one per retry.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use homelab_core::Timestamp;
use serde::Serialize;

/// The heartbeat counter of failed writes.
pub const WRITE_ERRORS_COUNTER: &str = "write_errors";
/// The heartbeat `extra` field holding the current write problem (or `null`).
pub const LAST_WRITE_ERROR_FIELD: &str = "last_write_error";

/// Delays between retries: `min`, doubling up to `max`, back to `min` after [`Backoff::reset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const DEFAULT_MIN: Duration = Duration::from_secs(1);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff { min, max, next: min }
    }

    /// The delay to wait before the next attempt; the one after it is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next.saturating_mul(2)).min(self.max);
        d
    }

    /// The delay [`Backoff::next_delay`] would return, without moving on.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Backoff::DEFAULT_MIN, Backoff::DEFAULT_MAX)
    }
}

/// The write problem in force, as the heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteFailure {
    /// When the most recent write failed.
    #[serde(with = "homelab_core::ts_format")]
    pub at: Timestamp,
    /// When writes started failing (the first failure since the last success).
    #[serde(with = "homelab_core::ts_format")]
    pub since: Timestamp,
    /// What failed and why (the most recent failure), e.g.
    /// `cannot write world/services.json: No space left on device (os error 28)`.
    pub error: String,
}

#[derive(Debug)]
struct State {
    total: u64,
    current: Option<WriteFailure>,
    /// The class of the current failure (its `io::ErrorKind`), to log a change of kind once.
    class: String,
    failures_since: u64,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

/// One daemon's record of failed writes: the count, the problem in force, when to retry, and
/// the log lines on each change of state. Cheap to clone; clones share the record (an
/// executor's action tasks and its main loop report into the same one).
#[derive(Debug, Clone)]
pub struct WriteErrors {
    daemon: Arc<str>,
    state: Arc<Mutex<State>>,
}

impl WriteErrors {
    /// A reporter with the default backoff (1 s doubling to 30 s).
    pub fn new(daemon: &str) -> WriteErrors {
        WriteErrors::with_backoff(daemon, Backoff::default())
    }

    pub fn with_backoff(daemon: &str, backoff: Backoff) -> WriteErrors {
        WriteErrors {
            daemon: daemon.into(),
            state: Arc::new(Mutex::new(State { total: 0, current: None, class: String::new(), failures_since: 0, backoff, retry_at: None })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed write of `what` (a file or folder, e.g. `world/services.json`). Counts
    /// it, logs when this starts a problem or changes its kind (not on every retry), and returns
    /// how long to wait before retrying.
    pub fn failed(&self, what: &str, error: &(dyn std::error::Error + 'static)) -> Duration {
        self.failed_at(what, error, chrono::Utc::now(), Instant::now())
    }

    /// [`WriteErrors::failed`] for an `io::Error`.
    pub fn failed_io(&self, what: &str, error: &std::io::Error) -> Duration {
        self.failed(what, error)
    }

    /// [`WriteErrors::failed`] with the clocks given (tests).
    pub fn failed_at(&self, what: &str, error: &(dyn std::error::Error + 'static), now: Timestamp, mono: Instant) -> Duration {
        let message = format!("{what}: {}", homelab_core::error_chain(error));
        let class = classify(error);
        let mut guard = self.lock();
        let s = &mut *guard;
        s.total += 1;
        s.failures_since += 1;
        let delay = s.backoff.next_delay();
        s.retry_at = Some(mono + delay);
        match &mut s.current {
            None => {
                tracing::error!(
                    daemon = %self.daemon,
                    error = %message,
                    retry_in_secs = delay.as_secs_f64(),
                    "write failed; the daemon keeps running, keeps its state in memory and retries with backoff until the disk takes writes again"
                );
                s.current = Some(WriteFailure { at: now, since: now, error: message });
                s.class = class;
            }
            Some(current) => {
                if s.class != class {
                    tracing::error!(daemon = %self.daemon, error = %message, was = %current.error, "write failing for another reason now; still retrying");
                } else {
                    tracing::debug!(daemon = %self.daemon, error = %message, retry_in_secs = delay.as_secs_f64(), "write still failing");
                }
                current.at = now;
                current.error = message;
                s.class = class;
            }
        }
        delay
    }

    /// Records a successful write: ends the problem in force (one log line), resets the backoff.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        s.backoff.reset();
        s.retry_at = None;
        if let Some(was) = s.current.take() {
            let failures = std::mem::take(&mut s.failures_since);
            tracing::info!(daemon = %self.daemon, failures, since = %homelab_core::rfc3339(was.since), last_error = %was.error, "writes work again; caught up");
        }
        s.failures_since = 0;
        s.class.clear();
    }

    /// Failed writes since start (never goes down).
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// The problem in force, if writes are failing now.
    pub fn current(&self) -> Option<WriteFailure> {
        self.lock().current.clone()
    }

    pub fn is_failing(&self) -> bool {
        self.lock().current.is_some()
    }

    /// When the next retry is due, while writes are failing.
    pub fn retry_at(&self) -> Option<Instant> {
        self.lock().retry_at
    }

    /// True when a write may be tried now: nothing is failing, or the backoff delay has passed.
    /// Lets a daemon skip optional writes (and the file notifications they cause) between retries.
    pub fn retry_due(&self) -> bool {
        self.retry_due_at(Instant::now())
    }

    pub fn retry_due_at(&self, now: Instant) -> bool {
        self.lock().retry_at.is_none_or(|at| now >= at)
    }

    /// `extra.last_write_error` of the heartbeat: the problem in force, or `null`.
    pub fn last_error_json(&self) -> serde_json::Value {
        match self.current() {
            Some(f) => serde_json::to_value(f).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        }
    }

    /// Puts `counters.write_errors` and `extra.last_write_error` into a heartbeat (`extra`
    /// becomes an object if it was `null`).
    pub fn add_to_heartbeat(&self, hb: &mut homelab_core::Heartbeat) {
        hb.counters.insert(WRITE_ERRORS_COUNTER.to_owned(), self.total());
        if !hb.extra.is_object() {
            hb.extra = serde_json::Value::Object(Default::default());
        }
        if let Some(extra) = hb.extra.as_object_mut() {
            extra.insert(LAST_WRITE_ERROR_FIELD.to_owned(), self.last_error_json());
        }
    }
}

/// The kind of the first `io::Error` in the chain (`StorageFull`, `ReadOnlyFilesystem`, …).
fn classify(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return format!("{:?}", io.kind());
        }
        cur = e.source();
    }
    "other".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(28)
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        let mut odd = Backoff::new(Duration::from_millis(300), Duration::from_millis(100));
        assert_eq!(odd.next_delay(), Duration::from_millis(300), "max below min is raised to min");
        assert_eq!(odd.next_delay(), Duration::from_millis(300));
    }

    #[test]
    fn reporter_counts_reports_and_clears() {
        let w = WriteErrors::new("test");
        assert!(!w.is_failing() && w.retry_due());
        assert_eq!(w.last_error_json(), serde_json::Value::Null);

        let t0 = chrono::Utc::now();
        let m0 = Instant::now();
        let d1 = w.failed_at("world/services.json", &enospc(), t0, m0);
        let d2 = w.failed_at("world/nodes.json", &enospc(), t0 + chrono::Duration::seconds(1), m0);
        assert_eq!((d1.as_secs(), d2.as_secs()), (1, 2));
        assert_eq!(w.total(), 2);
        let f = w.current().unwrap();
        assert_eq!(f.since, t0);
        assert_eq!(f.at, t0 + chrono::Duration::seconds(1));
        assert!(f.error.starts_with("world/nodes.json: No space left on device"), "{}", f.error);
        assert!(!w.retry_due_at(m0 + Duration::from_millis(1999)));
        assert!(w.retry_due_at(m0 + Duration::from_secs(2)));

        let json = w.last_error_json();
        assert!(json["at"].as_str().unwrap().ends_with('Z'), "{json}");
        assert!(json["error"].as_str().unwrap().contains("No space left"), "{json}");

        w.succeeded();
        assert!(!w.is_failing() && w.retry_due());
        assert_eq!(w.total(), 2, "the counter only grows");
        assert_eq!(w.last_error_json(), serde_json::Value::Null);
        // After a success the backoff starts over.
        assert_eq!(w.failed("x", &enospc()).as_secs(), 1);
        assert_eq!(w.total(), 3);
    }

    #[test]
    fn clones_share_one_record() {
        let a = WriteErrors::new("test");
        let b = a.clone();
        b.failed("x", &enospc());
        assert_eq!(a.total(), 1);
        assert!(a.is_failing());
        a.succeeded();
        assert!(!b.is_failing());
    }

    #[test]
    fn heartbeat_gets_the_counter_and_the_problem() {
        let now = chrono::Utc::now();
        let mut hb = homelab_core::Heartbeat {
            daemon: "test".into(),
            pid: 1,
            version: "0".into(),
            started_at: now,
            last_loop_at: now,
            interval_secs: 1,
            counters: Default::default(),
            config_errors: Vec::new(),
            extra: serde_json::Value::Null,
        };
        let w = WriteErrors::new("test");
        w.failed("state/x.json", &io::Error::from_raw_os_error(30));
        w.add_to_heartbeat(&mut hb);
        assert_eq!(hb.counters[WRITE_ERRORS_COUNTER], 1);
        assert!(hb.extra[LAST_WRITE_ERROR_FIELD]["error"].as_str().unwrap().contains("Read-only file system"), "{}", hb.extra);
        w.succeeded();
        w.add_to_heartbeat(&mut hb);
        assert_eq!(hb.counters[WRITE_ERRORS_COUNTER], 1);
        assert!(hb.extra.as_object().unwrap().contains_key(LAST_WRITE_ERROR_FIELD));
        assert!(hb.extra[LAST_WRITE_ERROR_FIELD].is_null());
    }

    #[test]
    fn error_chain_and_class() {
        #[derive(Debug)]
        struct Wrap(io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("action x")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(enospc());
        assert_eq!(classify(&e), "StorageFull");
        assert!(homelab_core::error_chain(&e).starts_with("action x: No space left on device"), "{}", homelab_core::error_chain(&e));
        assert_eq!(classify(&io::Error::from_raw_os_error(30)), "ReadOnlyFilesystem");
    }
}
