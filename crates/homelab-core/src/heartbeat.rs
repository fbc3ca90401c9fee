//! `state/heartbeat/<daemon>.json`: each daemon's sign of life and counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::desired::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Heartbeat {
    /// `observer`, `supervisor`, `executor`, `telegram`, `hcp-mirror`, …
    pub daemon: String,
    pub pid: u32,
    pub version: String,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub started_at: Timestamp,
    /// When the daemon last finished a loop (a fold, a reconcile, a scan).
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub last_loop_at: Timestamp,
    /// The daemon writes a heartbeat at least this often while alive; a reader may call it
    /// stopped after a few of these without a new one.
    pub interval_secs: u64,
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Configuration problems in force (e.g. invalid hosts files), for the UI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<ConfigError>,
    /// Daemon-specific facts.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

impl Heartbeat {
    /// True when no heartbeat came for three intervals (plus a little slack).
    pub fn is_stopped(&self, now: Timestamp) -> bool {
        let age = now.signed_duration_since(self.last_loop_at).num_seconds();
        age > (self.interval_secs.max(1) * 3 + 5) as i64
    }
}
