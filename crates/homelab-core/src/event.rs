//! Events: one observation of a node agent, one file on disk.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Timestamp, compact_ts, name::validate_name, parse_compact_ts};

/// One event as written by an agent (`events/YYYY-MM-DD/<file name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Event {
    pub id: Uuid,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub ts: Timestamp,
    /// The node the agent runs on: `^[a-z0-9][a-z0-9._-]{0,62}$`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub node: String,
    /// `service_healthy`, `service_recovered`, `service_unhealthy`, `containers_not_running`,
    /// `mqtt_unreachable`, `http_check_failed`, `port_unreachable`, `exec_check_failed`,
    /// `check_error`, `node_heartbeat`, `disk_pressure`; unknown types are counted and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `node_heartbeat`: `agent_version`, `uptime_secs`, `disks`; `disk_pressure`: `level`
    /// (`ok`, `medium` or `high`) and `disks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// What an event type means for world state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The service is healthy (`service_healthy`, `service_recovered`).
    Positive,
    /// The service is unhealthy; the type becomes the reason.
    Negative,
    /// `node_heartbeat`: agent version, uptime, disks.
    NodeHeartbeat,
    /// `disk_pressure` with `data.level`.
    DiskPressure,
    /// A type this version does not know: counted and otherwise ignored.
    Unknown,
}

/// The negative service event types, in the words of the contract.
pub const NEGATIVE_TYPES: &[&str] =
    &["service_unhealthy", "containers_not_running", "mqtt_unreachable", "http_check_failed", "port_unreachable", "exec_check_failed", "check_error"];

/// The positive service event types.
pub const POSITIVE_TYPES: &[&str] = &["service_healthy", "service_recovered"];

impl EventKind {
    pub fn of(kind: &str) -> EventKind {
        match kind {
            k if POSITIVE_TYPES.contains(&k) => EventKind::Positive,
            k if NEGATIVE_TYPES.contains(&k) => EventKind::Negative,
            "node_heartbeat" => EventKind::NodeHeartbeat,
            "disk_pressure" => EventKind::DiskPressure,
            _ => EventKind::Unknown,
        }
    }

    pub fn is_service_level(self) -> bool {
        matches!(self, EventKind::Positive | EventKind::Negative)
    }
}

impl Event {
    /// A new event with a fresh random id. The time is cut to milliseconds, the precision
    /// events have on disk and in file names.
    pub fn new(ts: Timestamp, node: &str, kind: &str, service: Option<&str>) -> Event {
        use chrono::SubsecRound;
        Event {
            id: Uuid::new_v4(),
            ts: ts.trunc_subsecs(3),
            node: node.to_owned(),
            kind: kind.to_owned(),
            service: service.map(str::to_owned),
            detail: None,
            data: None,
        }
    }

    pub fn event_kind(&self) -> EventKind {
        EventKind::of(&self.kind)
    }

    /// `<ts as YYYYMMDDTHHMMSS.fffZ>-<node>-<first 8 hex of id>.json`
    pub fn file_name(&self) -> String {
        let hex = self.id.simple().to_string();
        format!("{}-{}-{}.json", compact_ts(self.ts), self.node, &hex[..8])
    }

    /// The UTC day folder the event belongs in: `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.ts.format("%Y-%m-%d").to_string()
    }

    /// Checks what serde cannot: names, and that service events name their service.
    /// An unknown type is valid (it is counted and ignored, not quarantined).
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.node).map_err(|e| format!("node: {e}"))?;
        if let Some(service) = &self.service {
            validate_name(service).map_err(|e| format!("service: {e}"))?;
        }
        if self.kind.is_empty() || self.kind.len() > 64 {
            return Err("type must be 1 to 64 characters".into());
        }
        if self.event_kind().is_service_level() && self.service.is_none() {
            return Err(format!("event type {:?} needs a \"service\" field", self.kind));
        }
        if self.kind == "disk_pressure" && self.disk_level().is_none() {
            return Err("disk_pressure needs data.level: \"ok\", \"medium\" or \"high\"".into());
        }
        Ok(())
    }

    /// True unless the event came from an Alertmanager alert (`data.source: "alertmanager"`):
    /// an alert is not a sign of life of its node's agent.
    pub fn is_sign_of_life(&self) -> bool {
        self.data.as_ref().and_then(|d| d.get("source")).and_then(|s| s.as_str()) != Some("alertmanager")
    }

    /// `data.level` of a `disk_pressure` event.
    pub fn disk_level(&self) -> Option<crate::DiskLevel> {
        let level = self.data.as_ref()?.get("level")?.as_str()?;
        serde_json::from_value(serde_json::Value::String(level.to_owned())).ok()
    }

    /// Parses and validates an event file's bytes against its file name and day folder.
    /// The error is the reason written next to the quarantined file.
    pub fn parse_file(day: &str, file_name: &str, bytes: &[u8]) -> Result<Event, String> {
        let name =
            EventFileName::parse(file_name).ok_or_else(|| format!("bad file name {file_name:?}: expected <YYYYMMDDTHHMMSS.fffZ>-<node>-<8 hex>.json"))?;
        let event: Event = serde_json::from_slice(bytes).map_err(|e| format!("not a valid event: {e}"))?;
        event.validate()?;
        if event.file_name() != file_name {
            return Err(format!("file name {file_name:?} does not match the event inside (expected {:?})", event.file_name()));
        }
        if event.day() != day {
            return Err(format!("event of day {} is in the folder of day {day}", event.day()));
        }
        debug_assert_eq!(name.node, event.node);
        Ok(event)
    }
}

/// Why an event's time cannot be used. `code` is stable (metrics label, quarantine reason
/// prefix); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockError {
    /// `clock_skew` (dated ahead of the control plane's clock) or `too_old` (older than the
    /// event retention).
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The default `MAX_CLOCK_SKEW`: how far ahead of the control plane's clock an event may be.
pub const DEFAULT_MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// Clock sanity of an event time against the control plane's clock `now`: more than `max_skew`
/// ahead is refused (it would move its node into the future), and so is an event whose whole
/// UTC day lies more than `max_age` (the event retention) in the past: retention deletes that
/// day folder, so the event could never count in a replay.
pub fn clock_check(ts: Timestamp, now: Timestamp, max_skew: std::time::Duration, max_age: std::time::Duration) -> Result<(), ClockError> {
    let ahead = ts.signed_duration_since(now);
    if ahead.to_std().is_ok_and(|a| a > max_skew) {
        return Err(ClockError {
            code: "clock_skew",
            message: format!(
                "dated {} ahead of the control plane's clock (more than MAX_CLOCK_SKEW {}): check the sending node's clock (NTP)",
                crate::duration::format_duration(ahead.to_std().unwrap_or_default()),
                crate::duration::format_duration(max_skew),
            ),
        });
    }
    let age = now.signed_duration_since(ts);
    let day_end = (ts.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    if now.signed_duration_since(day_end).to_std().is_ok_and(|a| a >= max_age) {
        return Err(ClockError {
            code: "too_old",
            message: format!(
                "dated {} ago, older than the event retention ({}): it would be deleted before it could count",
                crate::duration::format_duration(age.to_std().unwrap_or_default()),
                crate::duration::format_duration(max_age),
            ),
        });
    }
    Ok(())
}

/// What an event file name tells without reading the file: enough to skip old files cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFileName {
    pub ts: Timestamp,
    pub node: String,
    pub id_prefix: String,
}

impl EventFileName {
    pub fn parse(file_name: &str) -> Option<EventFileName> {
        let stem = file_name.strip_suffix(".json")?;
        // The timestamp has a fixed width (20), the id prefix too (8): the node is between.
        if stem.len() < 20 + 1 + 1 + 1 + 8 || !stem.is_char_boundary(20) {
            return None;
        }
        let (ts, rest) = stem.split_at(20);
        let ts = parse_compact_ts(ts)?;
        let rest = rest.strip_prefix('-')?;
        let (node, id_prefix) = rest.rsplit_once('-')?;
        if id_prefix.len() != 8 || !id_prefix.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return None;
        }
        validate_name(node).ok()?;
        Some(EventFileName { ts, node: node.to_owned(), id_prefix: id_prefix.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_check_table() {
        let now: Timestamp = "2026-05-27T12:00:00Z".parse().unwrap();
        let skew = std::time::Duration::from_secs(300);
        let keep = std::time::Duration::from_secs(14 * 86400);
        let cases: &[(&str, Option<&str>)] = &[
            ("2026-05-27T12:00:00Z", None),
            ("2026-05-27T12:05:00Z", None),
            ("2026-05-27T12:05:00.001Z", Some("clock_skew")),
            ("2031-05-27T12:00:00Z", Some("clock_skew")),
            ("2026-05-13T00:00:00Z", None),
            ("2026-05-12T23:59:59.999Z", Some("too_old")),
            ("2020-01-01T00:00:00Z", Some("too_old")),
        ];
        for (ts, want) in cases {
            let got = clock_check(ts.parse().unwrap(), now, skew, keep).err().map(|e| e.code);
            assert_eq!(got, *want, "{ts}");
        }
        let err = clock_check("2031-05-27T12:00:00Z".parse().unwrap(), now, skew, keep).unwrap_err();
        assert!(err.message.contains("1826d") && err.message.contains("NTP"), "{err}");
    }

    fn ev(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn file_name_round_trip() {
        let e =
            ev(r#"{"id":"7d0c1f5e-0000-4000-8000-000000000001","ts":"2026-05-27T14:03:11.123Z","node":"edge-1","type":"service_healthy","service":"mqtt"}"#);
        assert_eq!(e.file_name(), "20260527T140311.123Z-edge-1-7d0c1f5e.json");
        let parsed = EventFileName::parse(&e.file_name()).unwrap();
        assert_eq!(parsed.node, "edge-1");
        assert_eq!(parsed.ts, e.ts);
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(Event::parse_file("2026-05-27", &e.file_name(), &bytes).unwrap(), e);
    }

    #[test]
    fn invalid_files_table() {
        let good = r#"{"id":"7d0c1f5e-0000-4000-8000-000000000001","ts":"2026-05-27T14:03:11.123Z","node":"edge-1","type":"service_healthy","service":"mqtt"}"#;
        let name = "20260527T140311.123Z-edge-1-7d0c1f5e.json";
        let cases: &[(&str, &str, &str, &str)] = &[
            ("not json", "2026-05-27", name, "not a valid event"),
            (r#"{"id":"7d0c1f5e-0000-4000-8000-000000000001","ts":"2026-05-27T14:03:11.123Z","node":"edge-1"}"#, "2026-05-27", name, "missing field `type`"),
            (
                r#"{"id":"7d0c1f5e-0000-4000-8000-000000000001","ts":"2026-05-27T14:03:11.123Z","node":"edge-1","type":"service_healthy"}"#,
                "2026-05-27",
                name,
                "needs a \"service\"",
            ),
            (good, "2026-05-27", "whatever.json", "bad file name"),
            (good, "2026-05-27", "20260527T140311.123Z-edge-2-7d0c1f5e.json", "does not match"),
            (good, "2026-05-28", name, "folder of day"),
            (&good.replace("\"mqtt\"", "\"../x\""), "2026-05-27", name, "service:"),
            (&good.replace("service_healthy\",\"service\":\"mqtt\"", "disk_pressure\""), "2026-05-27", name, "data.level"),
        ];
        for (json, day, file, want) in cases {
            let err = Event::parse_file(day, file, json.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{file} {json}: {err}");
        }
        let unknown = good.replace("service_healthy", "brand_new_type");
        assert!(Event::parse_file("2026-05-27", name, unknown.as_bytes()).is_ok());
    }
}
