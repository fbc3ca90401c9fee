//! World state: what the observer believes about every node and service, folded from events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Healthy,
    Unhealthy,
}

/// One service on one node, as `world/services.json` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct ServiceState {
    pub status: ServiceStatus,
    /// The negative event type that made it unhealthy; `null` when healthy.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// When the service entered its current status.
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub last_event_at: Timestamp,
    pub last_event_id: Uuid,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskLevel {
    Ok,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Up,
    Stale,
}

/// What the fold knows about a node. Status (`up`/`stale`) is not stored: it depends on the
/// clock and is computed when the world is written (see [`World::node_status`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeFacts {
    #[serde(with = "crate::ts_format::option", default)]
    #[schemars(with = "Option<crate::Timestamp>")]
    pub last_seen: Option<Timestamp>,
    pub disk_pressure: Option<DiskLevel>,
    pub disks: Option<serde_json::Value>,
    pub agent_version: Option<String>,
    pub uptime_secs: Option<u64>,
}

/// One node as `world/nodes.json` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct NodeState {
    #[serde(with = "crate::ts_format::option", default)]
    #[schemars(with = "Option<crate::Timestamp>")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Timestamp>,
    pub status: NodeStatus,
    pub disk_pressure: Option<DiskLevel>,
    /// Per mount, as the agent reported it: `mount`, `used_pct`, `level`, `total_bytes`,
    /// `used_bytes`, `available_bytes`.
    pub disks: Option<serde_json::Value>,
    pub agent_version: Option<String>,
    #[serde(default)]
    pub uptime_secs: Option<u64>,
}

/// The folded world: per node facts and per node, per service state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct World {
    pub nodes: BTreeMap<String, NodeFacts>,
    pub services: BTreeMap<String, BTreeMap<String, ServiceState>>,
}

/// `world/services.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct ServicesFile {
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: Timestamp,
    pub services: BTreeMap<String, BTreeMap<String, ServiceState>>,
}

/// `world/nodes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct NodesFile {
    #[serde(with = "crate::ts_format")]
    #[schemars(with = "crate::Timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: Timestamp,
    pub nodes: BTreeMap<String, NodeState>,
}

impl World {
    /// `up` when the node was seen within `stale_after` of `now`, else `stale`.
    pub fn node_status(facts: &NodeFacts, now: Timestamp, stale_after: std::time::Duration) -> NodeStatus {
        match facts.last_seen {
            Some(seen) if now.signed_duration_since(seen).to_std().unwrap_or_default() <= stale_after => NodeStatus::Up,
            Some(_) | None => NodeStatus::Stale,
        }
    }

    pub fn nodes_file(&self, now: Timestamp, stale_after: std::time::Duration) -> NodesFile {
        let nodes = self
            .nodes
            .iter()
            .map(|(name, f)| {
                let state = NodeState {
                    last_seen: f.last_seen,
                    status: World::node_status(f, now, stale_after),
                    disk_pressure: f.disk_pressure,
                    disks: f.disks.clone(),
                    agent_version: f.agent_version.clone(),
                    uptime_secs: f.uptime_secs,
                };
                (name.clone(), state)
            })
            .collect();
        NodesFile { generated_at: now, nodes }
    }

    pub fn services_file(&self, now: Timestamp) -> ServicesFile {
        ServicesFile { generated_at: now, services: self.services.clone() }
    }

    /// Ghost pruning as a view: drops services that are not desired on their node and have had
    /// no event for `ttl`. `desired` maps node to its desired service names; a node absent from
    /// it has no desired services. The fold itself keeps them, so a replay stays equal.
    pub fn without_ghosts(&self, desired: &BTreeMap<String, std::collections::BTreeSet<String>>, now: Timestamp, ttl: std::time::Duration) -> World {
        let mut out = self.clone();
        for (node, services) in out.services.iter_mut() {
            let wanted = desired.get(node);
            services.retain(|name, s| {
                let desired = wanted.is_some_and(|w| w.contains(name));
                let age = now.signed_duration_since(s.last_event_at).to_std().unwrap_or_default();
                desired || age <= ttl
            });
        }
        out.services.retain(|_, s| !s.is_empty());
        out
    }
}
