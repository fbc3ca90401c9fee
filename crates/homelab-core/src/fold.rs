//! The fold: events into world state, in any order.
//!
//! World state is a function of the *set* of events applied, not of the order they arrived
//! in: every key (a service, a node's heartbeat facts, a node's disk pressure) is a
//! last-writer-wins register ordered by the event key `(ts, id)`, and everything else is
//! defined so that a late or repeated event can only add to it or cut it, never confuse it:
//!
//! - `status`, `reason`, `detail`, `last_event_at`, `last_event_id`: from the service's newest
//!   event.
//! - The *current streak* is the set of events of the current status that are newer than the
//!   newest event of the other status. `since` is the time of its oldest event;
//!   `consecutive_failures` is its size while unhealthy (0 while healthy), counted up to
//!   [`NEGATIVE_KEEP`].
//! - A node's `last_seen` is its newest event of any type, except events an Alertmanager alert
//!   became (`data.source: "alertmanager"`): an alert says something about a service, not that
//!   the node's agent is alive. Agent facts come from its newest
//!   `node_heartbeat`; `disk_pressure` from its newest event that carries a level.
//!
//! To stay bounded the fold keeps only the newest keys of the current streak ([`NEGATIVE_KEEP`]
//! while unhealthy, [`POSITIVE_KEEP`] while healthy). Everything above is exact with that
//! memory, with one documented exception: when an event of the other status arrives so late
//! that it lands behind every key kept (more than [`POSITIVE_KEEP`] healthy reports, or
//! [`NEGATIVE_KEEP`] failures, deep), `since` becomes the oldest key kept instead of the first
//! event of the cut streak it cannot see.
//!
//! The [`Checkpoint`] is the fold's whole state; the observer writes it in one atomic write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::event::{Event, EventKind};
use crate::world::{ServiceState, ServiceStatus, World};

/// How many keys of a healthy streak the fold keeps (each healthy check pass is an event).
pub const POSITIVE_KEEP: usize = 8;
/// How many keys of an unhealthy streak the fold keeps; `consecutive_failures` stops there.
pub const NEGATIVE_KEEP: usize = 64;

/// An event's place in the order of its key: `(ts, id)`. Serialized as one short string,
/// `<YYYYMMDDTHHMMSS.fffZ>-<32 hex of the id>`, to keep the checkpoint small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub ts: Timestamp,
    pub id: Uuid,
}

impl Key {
    pub fn of(event: &Event) -> Key {
        Key { ts: event.ts, id: event.id }
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", crate::compact_ts(self.ts), self.id.simple()))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("bad event key {s:?}: expected <YYYYMMDDTHHMMSS.fffZ>-<32 hex>"));
        let (ts, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(Key { ts: crate::parse_compact_ts(ts).ok_or_else(bad)?, id: Uuid::try_parse(id).map_err(|_| bad())? })
    }
}

impl schemars::JsonSchema for Key {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventKey".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "<YYYYMMDDTHHMMSS.fffZ>-<32 hex of the event id>"})
    }
}

/// What the fold remembers of one service beyond its world entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceFold {
    /// The newest positive and negative event applied.
    pub last_positive: Option<Key>,
    pub last_negative: Option<Key>,
    /// The newest keys of the current streak, oldest first (see the module docs).
    pub streak: Vec<Key>,
    /// The oldest event of the current streak.
    pub streak_start: Key,
}

/// What the fold remembers of one node beyond its world entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeFold {
    /// The newest `node_heartbeat` applied: agent version, uptime and disks come from it.
    pub heartbeat: Option<Key>,
    /// The newest event that set `disk_pressure`.
    pub pressure: Option<Key>,
}

/// Counters kept with the checkpoint, so they survive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FoldCounters {
    /// Events that became the newest of what they describe.
    pub applied: u64,
    /// Events older than what they describe: folded into what they can still change.
    #[serde(default)]
    pub late: u64,
    /// Events the fold had already seen (same key): nothing changed.
    #[serde(default)]
    pub duplicate: u64,
    pub unknown_type: u64,
}

/// `state/observer_checkpoint.json`: the fold's state. Deleting it forces a full replay.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    pub version: u32,
    pub world: World,
    /// Per canonical node, per service: the streak memory.
    #[serde(default)]
    pub services: BTreeMap<String, BTreeMap<String, ServiceFold>>,
    /// Per canonical node: which events the node facts come from.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeFold>,
    #[serde(default)]
    pub counters: FoldCounters,
    /// Event files quarantined, by reason code (`invalid`, `clock_skew`, `too_old`,
    /// `not_regular_file`, `bad_day_folder`).
    #[serde(default)]
    pub quarantined: BTreeMap<String, u64>,
    /// The observer's record of applied event files: segments up to this number are part of
    /// this checkpoint (see the observer).
    #[serde(default)]
    pub applied_seq: u64,
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldOutcome {
    /// It is now the newest event of what it describes.
    Applied,
    /// Older than what it describes: folded into what it can still change, counted as late.
    Late,
    /// Already folded: nothing changed.
    Duplicate,
    /// A type this version does not know: a sign of life of its node, nothing more.
    UnknownType,
}

/// Version 2: order-independent registers. Version 1 (per-node cursors) is replayed.
pub const CHECKPOINT_VERSION: u32 = 2;

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint { version: CHECKPOINT_VERSION, ..Default::default() }
    }

    /// Applies one event, whatever its order relative to the others. `node` is the event's
    /// canonical node name (after the alias map). Applying the same event twice changes
    /// nothing but the `duplicate` counter.
    pub fn apply(&mut self, node: &str, event: &Event) -> FoldOutcome {
        let key = Key::of(event);
        if event.is_sign_of_life() {
            let facts = self.world.nodes.entry(node.to_owned()).or_default();
            if facts.last_seen.is_none_or(|seen| seen < event.ts) {
                facts.last_seen = Some(event.ts);
            }
        }
        let outcome = match event.event_kind() {
            EventKind::Unknown => FoldOutcome::UnknownType,
            EventKind::NodeHeartbeat => {
                let facts = self.world.nodes.entry(node.to_owned()).or_default();
                let memory = self.nodes.entry(node.to_owned()).or_default();
                let data = event.data.as_ref();
                let level = data.and_then(|d| d.get("disk_pressure")).and_then(|v| serde_json::from_value(v.clone()).ok());
                if let Some(level) = level
                    && register(&mut memory.pressure, key) == FoldOutcome::Applied
                {
                    facts.disk_pressure = Some(level);
                }
                let outcome = register(&mut memory.heartbeat, key);
                if outcome == FoldOutcome::Applied {
                    facts.agent_version = data.and_then(|d| d.get("agent_version")).and_then(|v| v.as_str()).map(str::to_owned);
                    facts.uptime_secs = data.and_then(|d| d.get("uptime_secs")).and_then(|v| v.as_u64());
                    facts.disks = data.and_then(|d| d.get("disks")).cloned();
                }
                outcome
            }
            EventKind::DiskPressure => {
                let facts = self.world.nodes.entry(node.to_owned()).or_default();
                let memory = self.nodes.entry(node.to_owned()).or_default();
                let outcome = register(&mut memory.pressure, key);
                if outcome == FoldOutcome::Applied {
                    facts.disk_pressure = event.disk_level();
                }
                outcome
            }
            kind @ (EventKind::Positive | EventKind::Negative) => match &event.service {
                Some(service) => self.apply_service(node, service, event, kind == EventKind::Positive),
                // Validation rejects these before they get here; be total anyway.
                None => FoldOutcome::UnknownType,
            },
        };
        match outcome {
            FoldOutcome::Applied => self.counters.applied += 1,
            FoldOutcome::Late => self.counters.late += 1,
            FoldOutcome::Duplicate => self.counters.duplicate += 1,
            FoldOutcome::UnknownType => self.counters.unknown_type += 1,
        }
        outcome
    }

    fn apply_service(&mut self, node: &str, service: &str, event: &Event, positive: bool) -> FoldOutcome {
        let key = Key::of(event);
        let memories = self.services.entry(node.to_owned()).or_default();
        let states = self.world.services.entry(node.to_owned()).or_default();
        let (Some(memory), Some(state)) = (memories.get_mut(service), states.get_mut(service)) else {
            let memory =
                ServiceFold { last_positive: positive.then_some(key), last_negative: (!positive).then_some(key), streak: vec![key], streak_start: key };
            states.insert(service.to_owned(), state_of(&memory, event, positive));
            memories.insert(service.to_owned(), memory);
            return FoldOutcome::Applied;
        };
        let newest = *memory.streak.last().expect("a streak is never empty");
        let current_positive = state.status == ServiceStatus::Healthy;
        if key == newest || Some(key) == memory.last_positive || Some(key) == memory.last_negative || memory.streak.contains(&key) {
            return FoldOutcome::Duplicate;
        }
        if key > newest {
            if positive == current_positive {
                memory.streak.push(key);
                truncate_streak(&mut memory.streak, positive);
            } else {
                memory.streak = vec![key];
                memory.streak_start = key;
            }
            set_last(memory, positive, key);
            *state = state_of(memory, event, positive);
            return FoldOutcome::Applied;
        }
        // Late: it can only add to the current streak or cut it.
        let own_last = if positive { memory.last_positive } else { memory.last_negative };
        if positive == current_positive {
            let other_last = if positive { memory.last_negative } else { memory.last_positive };
            if other_last.is_none_or(|o| key > o) {
                let at = memory.streak.partition_point(|k| *k < key);
                memory.streak.insert(at, key);
                truncate_streak(&mut memory.streak, positive);
                memory.streak_start = memory.streak_start.min(key);
            }
        } else if own_last.is_none_or(|o| key > o) {
            // Newer than anything of its status: it cuts the streak there.
            set_last(memory, positive, key);
            memory.streak.retain(|k| *k > key);
            memory.streak_start = memory.streak[0];
        }
        state.since = memory.streak_start.ts;
        state.consecutive_failures = failures(memory, current_positive);
        FoldOutcome::Late
    }
}

/// A last-writer-wins key: `Applied` when `key` is newer than what it holds (and now holds it).
fn register(slot: &mut Option<Key>, key: Key) -> FoldOutcome {
    match *slot {
        Some(held) if held == key => FoldOutcome::Duplicate,
        Some(held) if held > key => FoldOutcome::Late,
        _ => {
            *slot = Some(key);
            FoldOutcome::Applied
        }
    }
}

fn set_last(memory: &mut ServiceFold, positive: bool, key: Key) {
    let slot = if positive { &mut memory.last_positive } else { &mut memory.last_negative };
    *slot = Some(key);
}

fn truncate_streak(streak: &mut Vec<Key>, positive: bool) {
    let keep = if positive { POSITIVE_KEEP } else { NEGATIVE_KEEP };
    if streak.len() > keep {
        streak.drain(..streak.len() - keep);
    }
}

fn failures(memory: &ServiceFold, healthy: bool) -> u32 {
    if healthy { 0 } else { memory.streak.len() as u32 }
}

/// The world entry of a service whose newest event is `event`.
fn state_of(memory: &ServiceFold, event: &Event, positive: bool) -> ServiceState {
    let status = if positive { ServiceStatus::Healthy } else { ServiceStatus::Unhealthy };
    ServiceState {
        status,
        reason: (!positive).then(|| event.kind.clone()),
        detail: event.detail.clone(),
        since: memory.streak_start.ts,
        last_event_at: event.ts,
        last_event_id: event.id,
        consecutive_failures: failures(memory, positive),
    }
}

/// Sorts events by (ts, id). Not needed for correctness (the fold does not care about order);
/// a sorted batch only spares the `late` counter events that merely arrived together.
pub fn sort_events(events: &mut [(String, Event)]) {
    events.sort_by_key(|a| (a.1.ts, a.1.id));
}

#[cfg(test)]
mod tests;
