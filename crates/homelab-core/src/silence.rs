//! Silences: an operator mutes a node, a service (`node/service`) or an action type for a
//! while, with a reason. While a silence holds, the drift it matches shows `decision: silenced`
//! with `until`, no action is proposed (a pending one the supervisor proposed is withdrawn) and
//! no notification starts. It ends by itself at `ends_at`, or earlier when expired by hand.
//!
//! Pure: matching and validation only. The store keeps one file per silence under
//! `state/silences/`; the supervisor hands the list to [`crate::plan::plan_with_silences`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::ActionType;

/// The longest silence accepted: a mute is not a way to stop monitoring for good
/// (`monitor: false` in hosts/ is).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Ended silences are listed (and kept on disk) this long after they ended.
pub const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest reason kept, in characters.
pub const MAX_REASON: usize = 500;

/// One silence, `state/silences/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Silence {
    /// `s-<YYYYMMDDTHHMMSS.fffZ>-<8 hex>`.
    pub id: String,
    /// Matches this node (all its services, its disk and whether it reports) when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Matches this service of `node` when set (needs `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Matches proposals of this action type when set (`container_restart`, `redeploy`,
    /// `disk_cleanup`), on any node unless `node` is set too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<ActionType>,
    pub reason: String,
    /// Who: `ui:alice`, `cli:bob`, `api:token`, `telegram:123`.
    pub created_by: String,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it ends by itself.
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    /// Set when an operator ended it early.
    #[serde(default, with = "crate::ts_format::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::Timestamp>")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expired_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
}

/// Why a silence cannot be created or expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("a silence needs a node, a service (node/service) or an action type to match")]
    NoMatcher,
    #[error("a service silence needs its node: give node/service")]
    ServiceWithoutNode,
    #[error("{0}")]
    BadName(String),
    #[error("the duration must be longer than 0 and at most 30 days")]
    BadDuration,
    #[error("a silence needs a reason (what is going on, for the next person)")]
    NoReason,
    #[error("silence {id} already ended at {at}")]
    AlreadyEnded { id: String, at: String },
}

/// What a silence is about, as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Matcher {
    pub node: Option<String>,
    pub service: Option<String>,
    pub action_type: Option<ActionType>,
}

impl Matcher {
    /// Parses a target as people write it: `node`, `node/service`; empty parts are unset.
    pub fn target(target: &str) -> Matcher {
        let (node, service) = match target.split_once('/') {
            Some((n, s)) => (n.trim(), Some(s.trim())),
            None => (target.trim(), None),
        };
        Matcher { node: Some(node.to_owned()).filter(|n| !n.is_empty()), service: service.map(str::to_owned).filter(|s| !s.is_empty()), action_type: None }
    }
}

/// Parses an action type as people write it (`redeploy`, `container-restart`, `disk_cleanup`).
pub fn parse_action_type(s: &str) -> Option<ActionType> {
    match s.trim().replace('-', "_").as_str() {
        "container_restart" | "restart" => Some(ActionType::ContainerRestart),
        "redeploy" => Some(ActionType::Redeploy),
        "disk_cleanup" | "cleanup" => Some(ActionType::DiskCleanup),
        _ => None,
    }
}

impl Silence {
    /// A new silence, validated. `id` comes from the caller (the core has no randomness):
    /// use [`new_id`].
    pub fn new(id: String, m: Matcher, duration: Duration, reason: &str, by: &str, now: Timestamp) -> Result<Silence, SilenceError> {
        if m.node.is_none() && m.service.is_none() && m.action_type.is_none() {
            return Err(SilenceError::NoMatcher);
        }
        if m.service.is_some() && m.node.is_none() {
            return Err(SilenceError::ServiceWithoutNode);
        }
        for n in m.node.iter().chain(m.service.iter()) {
            crate::validate_name(n).map_err(|e| SilenceError::BadName(format!("{n:?}: {e}")))?;
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(SilenceError::BadDuration);
        }
        let reason = crate::one_line(reason, MAX_REASON);
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(SilenceError::NoReason);
        }
        let ends_at = now + chrono::Duration::from_std(duration).map_err(|_| SilenceError::BadDuration)?;
        Ok(Silence {
            id,
            node: m.node,
            service: m.service,
            action_type: m.action_type,
            reason,
            created_by: by.to_owned(),
            created_at: now,
            ends_at,
            expired_at: None,
            expired_by: None,
        })
    }

    /// When it ends (or ended): early expiry or `ends_at`.
    pub fn end(&self) -> Timestamp {
        self.expired_at.map_or(self.ends_at, |e| e.min(self.ends_at))
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        now >= self.created_at && now < self.end()
    }

    /// Ends it now. Refused when it already ended.
    pub fn expire(&self, by: &str, now: Timestamp) -> Result<Silence, SilenceError> {
        if !self.is_active(now) && now >= self.created_at {
            return Err(SilenceError::AlreadyEnded { id: self.id.clone(), at: crate::rfc3339(self.end()) });
        }
        Ok(Silence { expired_at: Some(now), expired_by: Some(by.to_owned()), ..self.clone() })
    }

    /// Whether it matches a target: `node`, its `service` (`None` for node-level drift) and
    /// the action type that would be proposed (`None` when none is in question). Every field
    /// the silence sets must match; a node silence covers the node's services too.
    pub fn matches(&self, node: &str, service: Option<&str>, action_type: Option<ActionType>) -> bool {
        self.node.as_deref().is_none_or(|n| n == node)
            && self.service.as_deref().is_none_or(|s| service == Some(s))
            && self.action_type.is_none_or(|t| action_type == Some(t))
    }

    /// What it mutes, for people: `edge-1/web`, `edge-1`, `redeploy on edge-1`, `redeploy`.
    pub fn target(&self) -> String {
        let place = match (&self.node, &self.service) {
            (Some(n), Some(s)) => Some(format!("{n}/{s}")),
            (Some(n), None) => Some(n.clone()),
            _ => None,
        };
        match (self.action_type, place) {
            (Some(t), Some(p)) => format!("{} on {p}", t.as_str()),
            (Some(t), None) => t.as_str().to_owned(),
            (None, Some(p)) => p,
            (None, None) => "nothing".to_owned(),
        }
    }

    /// Kept and listed: active, or ended less than [`KEEP_ENDED`] ago.
    pub fn is_kept(&self, now: Timestamp) -> bool {
        now < self.end() + chrono::Duration::from_std(KEEP_ENDED).unwrap_or_default()
    }
}

/// The active silence that matches, the one that lasts longest if several do.
pub fn active_match<'a>(silences: &'a [Silence], node: &str, service: Option<&str>, action_type: Option<ActionType>, now: Timestamp) -> Option<&'a Silence> {
    silences.iter().filter(|s| s.is_active(now) && s.matches(node, service, action_type)).max_by_key(|s| (s.end(), s.id.clone()))
}

/// An id for a new silence from its creation time and 32 random bits the caller drew.
pub fn new_id(now: Timestamp, random: u32) -> String {
    format!("s-{}-{random:08x}", crate::compact_ts(now))
}

/// True when `id` looks like a silence id (safe as a file name).
pub fn valid_id(id: &str) -> bool {
    id.len() <= 40 && id.starts_with("s-") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    fn m(node: Option<&str>, service: Option<&str>, action_type: Option<ActionType>) -> Matcher {
        Matcher { node: node.map(Into::into), service: service.map(Into::into), action_type }
    }

    fn silence(node: Option<&str>, service: Option<&str>, action_type: Option<ActionType>) -> Silence {
        Silence::new("s-1".into(), m(node, service, action_type), Duration::from_secs(3600), "maintenance", "cli:alice", t("2026-01-01T10:00:00Z")).unwrap()
    }

    #[test]
    fn matching_table() {
        use ActionType::*;
        let cases: &[(Silence, (&str, Option<&str>, Option<ActionType>), bool)] = &[
            // A node silence covers the node, its disk and every service on it, any action.
            (silence(Some("n1"), None, None), ("n1", None, None), true),
            (silence(Some("n1"), None, None), ("n1", Some("web"), Some(Redeploy)), true),
            (silence(Some("n1"), None, None), ("n2", Some("web"), None), false),
            // A service silence covers that service only, not the node-level drift.
            (silence(Some("n1"), Some("web"), None), ("n1", Some("web"), None), true),
            (silence(Some("n1"), Some("web"), None), ("n1", Some("web"), Some(ContainerRestart)), true),
            (silence(Some("n1"), Some("web"), None), ("n1", Some("db"), None), false),
            (silence(Some("n1"), Some("web"), None), ("n1", None, None), false),
            (silence(Some("n1"), Some("web"), None), ("n2", Some("web"), None), false),
            // An action type silence covers that type anywhere, and nothing without a type.
            (silence(None, None, Some(Redeploy)), ("n1", Some("web"), Some(Redeploy)), true),
            (silence(None, None, Some(Redeploy)), ("n9", Some("db"), Some(Redeploy)), true),
            (silence(None, None, Some(Redeploy)), ("n1", Some("web"), Some(ContainerRestart)), false),
            (silence(None, None, Some(Redeploy)), ("n1", Some("web"), None), false),
            (silence(None, None, Some(DiskCleanup)), ("n1", None, Some(DiskCleanup)), true),
            // Type and node together: both must match.
            (silence(Some("n1"), None, Some(DiskCleanup)), ("n1", None, Some(DiskCleanup)), true),
            (silence(Some("n1"), None, Some(DiskCleanup)), ("n2", None, Some(DiskCleanup)), false),
            (silence(Some("n1"), None, Some(DiskCleanup)), ("n1", Some("web"), Some(Redeploy)), false),
        ];
        for (s, (node, service, kind), want) in cases {
            assert_eq!(s.matches(node, *service, *kind), *want, "{} vs {node}/{service:?}/{kind:?}", s.target());
        }
    }

    #[test]
    fn activity_and_expiry_table() {
        let s = silence(Some("n1"), None, None);
        let cases = [("2026-01-01T09:59:59Z", false), ("2026-01-01T10:00:00Z", true), ("2026-01-01T10:59:59Z", true), ("2026-01-01T11:00:00Z", false)];
        for (now, want) in cases {
            assert_eq!(s.is_active(t(now)), want, "{now}");
        }
        let e = s.expire("ui:bob", t("2026-01-01T10:30:00Z")).unwrap();
        assert_eq!((e.end(), e.expired_by.as_deref()), (t("2026-01-01T10:30:00Z"), Some("ui:bob")));
        assert!(!e.is_active(t("2026-01-01T10:30:00Z")));
        assert!(matches!(e.expire("ui:bob", t("2026-01-01T10:31:00Z")), Err(SilenceError::AlreadyEnded { .. })));
        assert!(matches!(s.expire("ui:bob", t("2026-01-01T12:00:00Z")), Err(SilenceError::AlreadyEnded { .. })));
        // Listed for a week after it ended, then forgotten.
        assert!(e.is_kept(t("2026-01-08T10:29:00Z")) && !e.is_kept(t("2026-01-08T10:31:00Z")));
    }

    #[test]
    fn the_longest_active_match_wins() {
        let now = t("2026-01-01T10:10:00Z");
        let short = silence(Some("n1"), None, None);
        let mut long = silence(Some("n1"), Some("web"), None);
        long.id = "s-2".into();
        long.ends_at = t("2026-01-01T15:00:00Z");
        let list = [short.clone(), long.clone()];
        assert_eq!(active_match(&list, "n1", Some("web"), None, now).map(|s| s.id.as_str()), Some("s-2"));
        assert_eq!(active_match(&list, "n1", Some("db"), None, now).map(|s| s.id.as_str()), Some("s-1"));
        assert_eq!(active_match(&list, "n1", Some("db"), None, t("2026-01-01T11:00:00Z")), None);
    }

    #[test]
    fn validation_table() {
        let now = t("2026-01-01T10:00:00Z");
        let h = Duration::from_secs(3600);
        let new = |m: Matcher, d: Duration, r: &str| Silence::new("s-x".into(), m, d, r, "cli:a", now);
        assert_eq!(new(Matcher::default(), h, "x").unwrap_err(), SilenceError::NoMatcher);
        assert_eq!(new(m(None, Some("web"), None), h, "x").unwrap_err(), SilenceError::ServiceWithoutNode);
        assert!(matches!(new(m(Some("../etc"), None, None), h, "x").unwrap_err(), SilenceError::BadName(_)));
        assert_eq!(new(m(Some("n1"), None, None), Duration::ZERO, "x").unwrap_err(), SilenceError::BadDuration);
        assert_eq!(new(m(Some("n1"), None, None), MAX_DURATION + h, "x").unwrap_err(), SilenceError::BadDuration);
        assert_eq!(new(m(Some("n1"), None, None), h, " \n ").unwrap_err(), SilenceError::NoReason);
        let s = new(m(Some("n1"), None, None), h, "disk swap\u{7}").unwrap();
        assert_eq!((s.reason.as_str(), s.ends_at), ("disk swap", t("2026-01-01T11:00:00Z")));
        assert_eq!(Matcher::target("n1/web"), m(Some("n1"), Some("web"), None));
        assert_eq!(Matcher::target("n1"), m(Some("n1"), None, None));
        assert_eq!(parse_action_type("container-restart"), Some(ActionType::ContainerRestart));
        assert!(valid_id(&new_id(now, 0xdead_beef)) && !valid_id("../x") && !valid_id("s-a/b"));
    }
}
