//! The fold: events into world state, per node in (ts, id) order, with per-node cursors.
//!
//! The [`Checkpoint`] is the fold's whole state (world plus cursors), so writing it in one
//! atomic write makes a restart at any instant equal to an uninterrupted run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Event, EventKind};
use crate::world::{NodeFacts, ServiceState, ServiceStatus, World};
use crate::Timestamp;

/// Where a node's fold stands: the (ts, id) of the last event applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cursor {
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    pub ts: Timestamp,
    pub id: Uuid,
}

/// Counters kept with the checkpoint, so they survive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FoldCounters {
    pub applied: u64,
    pub skipped: u64,
    pub unknown_type: u64,
}

/// `state/observer_checkpoint.json`: the fold's state. Deleting it forces a full replay.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    pub version: u32,
    /// Per canonical node, the last event applied.
    pub cursors: BTreeMap<String, Cursor>,
    pub world: World,
    #[serde(default)]
    pub counters: FoldCounters,
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldOutcome {
    Applied,
    /// At or before its node's cursor: already applied, or arrived too late.
    Skipped,
    /// A type this version does not know: a sign of life of its node, nothing more.
    UnknownType,
}

pub const CHECKPOINT_VERSION: u32 = 1;

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint { version: CHECKPOINT_VERSION, ..Default::default() }
    }

    /// True when the event is at or before its (canonical) node's cursor.
    pub fn is_behind(&self, node: &str, ts: Timestamp, id: Uuid) -> bool {
        self.cursors.get(node).is_some_and(|c| Cursor { ts, id } <= *c)
    }

    /// Applies one event. `node` is the event's canonical node name (after the alias map).
    /// Callers feed each node's events in (ts, id) order; anything at or before the cursor is
    /// skipped, so feeding the same event twice changes nothing.
    pub fn apply(&mut self, node: &str, event: &Event) -> FoldOutcome {
        if self.is_behind(node, event.ts, event.id) {
            self.counters.skipped += 1;
            return FoldOutcome::Skipped;
        }
        self.cursors.insert(node.to_owned(), Cursor { ts: event.ts, id: event.id });
        let outcome = fold(&mut self.world, node, event);
        match outcome {
            FoldOutcome::Applied => self.counters.applied += 1,
            FoldOutcome::UnknownType => self.counters.unknown_type += 1,
            FoldOutcome::Skipped => self.counters.skipped += 1,
        }
        outcome
    }
}

/// The pure fold of one event into the world, without cursor bookkeeping.
pub fn fold(world: &mut World, node: &str, event: &Event) -> FoldOutcome {
    let facts = world.nodes.entry(node.to_owned()).or_insert_with(NodeFacts::default);
    if facts.last_seen.is_none_or(|seen| seen < event.ts) {
        facts.last_seen = Some(event.ts);
    }
    let kind = event.event_kind();
    match kind {
        EventKind::Unknown => return FoldOutcome::UnknownType,
        EventKind::NodeHeartbeat => {
            if let Some(data) = &event.data {
                if let Some(v) = data.get("agent_version").and_then(|v| v.as_str()) {
                    facts.agent_version = Some(v.to_owned());
                }
                if let Some(v) = data.get("uptime_secs").and_then(|v| v.as_u64()) {
                    facts.uptime_secs = Some(v);
                }
                if let Some(v) = data.get("disks") {
                    facts.disks = Some(v.clone());
                }
                if let Some(level) = data.get("disk_pressure").and_then(|v| serde_json::from_value(v.clone()).ok()) {
                    facts.disk_pressure = Some(level);
                }
            }
        }
        EventKind::DiskPressure => {
            if let Some(level) = event.disk_level() {
                facts.disk_pressure = Some(level);
            }
        }
        EventKind::Positive | EventKind::Negative => {
            let Some(service) = &event.service else {
                // Validation rejects these before they get here; be total anyway.
                return FoldOutcome::UnknownType;
            };
            let status = if kind == EventKind::Positive { ServiceStatus::Healthy } else { ServiceStatus::Unhealthy };
            let services = world.services.entry(node.to_owned()).or_default();
            let previous = services.get(service);
            let since = match previous {
                Some(p) if p.status == status => p.since,
                _ => event.ts,
            };
            let consecutive_failures = match status {
                ServiceStatus::Healthy => 0,
                ServiceStatus::Unhealthy => previous.map_or(0, |p| p.consecutive_failures) + 1,
            };
            let state = ServiceState {
                status,
                reason: (status == ServiceStatus::Unhealthy).then(|| event.kind.clone()),
                detail: event.detail.clone(),
                since,
                last_event_at: event.ts,
                last_event_id: event.id,
                consecutive_failures,
            };
            services.insert(service.clone(), state);
        }
    }
    FoldOutcome::Applied
}

/// Sorts events the way the fold needs them: by (ts, id). Per node order is what matters;
/// a global sort gives it for every node at once.
pub fn sort_events(events: &mut [(String, Event)]) {
    events.sort_by(|a, b| (a.1.ts, a.1.id).cmp(&(b.1.ts, b.1.id)));
}

#[cfg(test)]
mod tests;
