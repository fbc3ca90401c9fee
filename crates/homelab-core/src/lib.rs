//! The domain of the homelab control plane, free of IO: names, events, world state and its
//! fold, desired state and its validation, actions and their state machine, and durations.
//!
//! Nothing here touches the filesystem, reads the clock or spawns a task. Time is always a
//! parameter, so every rule can be tested as a table.

pub mod action;
pub mod alertmanager;
pub mod applied;
pub mod chaos;
pub mod deploy;
pub mod desired;
pub mod drift;
pub mod duration;
pub mod event;
pub mod fold;
pub mod heartbeat;
pub mod name;
pub mod notify;
pub mod plan;
pub mod schema;
pub mod silence;
pub mod window;
pub mod words;
pub mod world;

pub use action::{Action, ActionState, ActionType, HistoryEntry, Risk};
pub use desired::{DesiredState, HostFile, HostSpec, ServiceSpec};
pub use event::{Event, EventKind};
pub use fold::{Checkpoint, FoldOutcome};
pub use heartbeat::Heartbeat;
pub use name::{ActionId, NameError, NodeName, ServiceName, validate_action_id, validate_name};
pub use world::{DiskLevel, NodeState, NodeStatus, ServiceState, ServiceStatus, World};

/// The timestamp type used everywhere: UTC with millisecond precision on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Formats a timestamp the way file names carry it: `YYYYMMDDTHHMMSS.fffZ`.
pub fn compact_ts(ts: Timestamp) -> String {
    ts.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Parses the compact file-name form back (`YYYYMMDDTHHMMSS.fffZ`).
pub fn parse_compact_ts(s: &str) -> Option<Timestamp> {
    if s.len() != 20 || s.as_bytes()[15] != b'.' {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s.strip_suffix('Z')?, "%Y%m%dT%H%M%S%.3f").ok()?;
    Some(naive.and_utc())
}

pub mod ts_format;

/// Formats a timestamp as RFC 3339 with milliseconds, as every JSON file carries it.
pub fn rfc3339(ts: Timestamp) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An error and its sources on one line, `a: b: c`, leaving out a source whose text is already
/// in what came before (many errors repeat their source in their own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = c.source();
    }
    out
}

/// Text for one line of a log, a record or a page: control characters (newlines included)
/// become spaces, and at most `max` characters are kept.
pub fn one_line(s: &str, max: usize) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ts_round_trips() {
        let ts = chrono::DateTime::parse_from_rfc3339("2026-05-27T14:03:11.123Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(compact_ts(ts), "20260527T140311.123Z");
        assert_eq!(parse_compact_ts("20260527T140311.123Z"), Some(ts));
        assert_eq!(parse_compact_ts("20260527T140311Z"), None);
    }
}
