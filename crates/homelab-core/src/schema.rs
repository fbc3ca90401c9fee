//! JSON Schemas of the files in the data root, generated from the types that write them.
//!
//! `hcp schema --out docs/schemas` writes them into the repository; a test of `hcp` keeps the
//! committed copies equal to what this module generates.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::action::Action;
use crate::event::Event;
use crate::fold::Checkpoint;
use crate::heartbeat::Heartbeat;
use crate::world::{NodesFile, ServicesFile};

/// Every on-disk file's schema, as `(file name, schema)`, in a fixed order.
///
/// The schemas describe the files as the types serialize them (draft 2020-12): a field that is
/// always written is required, even when its value may be `null`. Object keys are sorted, so
/// the output does not depend on serde_json's `preserve_order` feature.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("event.json", schema_of::<Event>()),
        ("world-services.json", schema_of::<ServicesFile>()),
        ("world-nodes.json", schema_of::<NodesFile>()),
        ("action.json", schema_of::<Action>()),
        ("heartbeat.json", schema_of::<Heartbeat>()),
        ("observer-checkpoint.json", schema_of::<Checkpoint>()),
        ("world-drift.json", schema_of::<crate::drift::DriftFile>()),
        ("deploy-generation.json", schema_of::<crate::deploy::Generation>()),
        ("deploy-history.json", schema_of::<crate::deploy::DeployHistory>()),
    ]
}

fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12().for_serialize());
    sorted(generator.into_root_schema_for::<T>().to_value())
}

/// The value with the keys of every object in sorted order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::schemas;
    use crate::Timestamp;
    use crate::action::{Action, ActionResult, ActionState, ActionType, HistoryEntry, Risk};
    use crate::desired::ConfigError;
    use crate::event::Event;
    use crate::fold::Checkpoint;
    use crate::heartbeat::Heartbeat;
    use crate::world::{DiskLevel, NodeFacts, NodeState, NodeStatus, NodesFile, ServiceState, ServiceStatus, ServicesFile, World};

    fn ts(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    fn schema(file: &str) -> Value {
        schemas().into_iter().find(|(name, _)| *name == file).unwrap_or_else(|| panic!("no schema {file}")).1
    }

    /// Follows a `$ref` into the root's `$defs`.
    fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
                resolve(&root["$defs"][name], root)
            }
            None => schema,
        }
    }

    /// Checks `value` against `schema` as far as objects go: every property the value has is
    /// declared (or allowed by `additionalProperties`), every required one is there, and the
    /// same holds for nested objects, arrays and maps. Returns the problems with their paths.
    fn check(value: &Value, schema: &Value, root: &Value, path: &str, problems: &mut Vec<String>) {
        let schema = resolve(schema, root);
        if schema == &Value::Bool(true) {
            return;
        }
        // Option<T> of a named type: `anyOf: [T, null]`. Check against the branch that fits.
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
            let fits: Vec<Vec<String>> = branches
                .iter()
                .map(|b| {
                    let mut p = Vec::new();
                    check(value, b, root, path, &mut p);
                    if !type_fits(value, resolve(b, root)) {
                        p.push(format!("{path}: {value} is not of the branch's type"));
                    }
                    p
                })
                .collect();
            if !fits.iter().any(Vec::is_empty) {
                problems.push(format!("{path}: fits no branch: {fits:?}"));
            }
            return;
        }
        if !type_fits(value, schema) {
            problems.push(format!("{path}: {value} does not have type {}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        match value {
            // A schema that declares neither properties nor additionalProperties (a free-form
            // `serde_json::Value` such as `data` or `extra`) allows any object.
            Value::Object(_) if schema.get("properties").is_none() && schema.get("additionalProperties").is_none() => {}
            Value::Object(map) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                for (key, v) in map {
                    let sub = format!("{path}.{key}");
                    match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                        (Some(s), _) => check(v, s, root, &sub, problems),
                        (None, Some(Value::Bool(false)) | None) => problems.push(format!("{sub}: not in the schema's properties")),
                        (None, Some(s)) => check(v, s, root, &sub, problems),
                    }
                }
                for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                    let key = required.as_str().unwrap();
                    if !map.contains_key(key) {
                        problems.push(format!("{path}: required {key:?} is missing"));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        check(item, item_schema, root, &format!("{path}[{i}]"), problems);
                    }
                }
            }
            _ => {}
        }
    }

    fn type_fits(value: &Value, schema: &Value) -> bool {
        let name = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        match schema.get("type") {
            None => true,
            Some(Value::String(t)) => t == name || (t == "number" && name == "integer"),
            Some(Value::Array(ts)) => ts.iter().any(|t| t == name || (t == "number" && name == "integer")),
            Some(_) => false,
        }
    }

    fn assert_fits(file: &str, value: &Value) {
        let schema = schema(file);
        let mut problems = Vec::new();
        check(value, &schema, &schema, "$", &mut problems);
        assert!(problems.is_empty(), "{file}: {value:#}\ndoes not fit its schema:\n{}", problems.join("\n"));
    }

    fn service_state() -> ServiceState {
        ServiceState {
            status: ServiceStatus::Unhealthy,
            reason: Some("http_check_failed".into()),
            detail: None,
            since: ts("2026-05-27T14:03:11.123Z"),
            last_event_at: ts("2026-05-27T14:05:11.123Z"),
            last_event_id: Uuid::from_u128(7),
            consecutive_failures: 3,
        }
    }

    fn disks() -> Value {
        json!([{ "mount": "/", "used_pct": 91.5, "level": "high", "total_bytes": 100, "used_bytes": 91, "available_bytes": 9 }])
    }

    #[test]
    fn every_file_has_a_titled_2020_12_schema() {
        let all = schemas();
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "event.json",
                "world-services.json",
                "world-nodes.json",
                "action.json",
                "heartbeat.json",
                "observer-checkpoint.json",
                "world-drift.json",
                "deploy-generation.json",
                "deploy-history.json"
            ]
        );
        for (name, schema) in &all {
            assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
            assert!(schema["title"].is_string(), "{name}");
            assert_eq!(schema["type"], "object", "{name}");
        }
    }

    #[test]
    fn timestamps_and_ids_are_formatted_strings() {
        let event = schema("event.json");
        assert_eq!(event["properties"]["ts"], json!({ "type": "string", "format": "date-time" }));
        assert_eq!(event["properties"]["id"], json!({ "type": "string", "format": "uuid" }));
        assert!(event["properties"].get("type").is_some() && event["properties"].get("kind").is_none());
        let required: Vec<&str> = event["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["id", "ts", "node", "type"]);
    }

    #[test]
    fn an_event_fits() {
        let mut event = Event::new(ts("2026-05-27T14:03:11.123Z"), "pi4", "disk_pressure", None);
        event.detail = Some("root at 91%".into());
        event.data = Some(json!({ "level": "high", "disks": disks() }));
        assert_fits("event.json", &serde_json::to_value(&event).unwrap());
        let bare = Event::new(ts("2026-05-27T14:03:11.123Z"), "pi4", "service_healthy", Some("mqtt"));
        assert_fits("event.json", &serde_json::to_value(&bare).unwrap());
    }

    #[test]
    fn world_files_fit() {
        let mut services = BTreeMap::new();
        services.insert("pi4".to_owned(), BTreeMap::from([("mqtt".to_owned(), service_state())]));
        let file = ServicesFile { generated_at: ts("2026-05-27T14:06:00.000Z"), services };
        assert_fits("world-services.json", &serde_json::to_value(&file).unwrap());

        let up = NodeState {
            last_seen: Some(ts("2026-05-27T14:05:11.123Z")),
            status: NodeStatus::Up,
            disk_pressure: Some(DiskLevel::High),
            disks: Some(disks()),
            agent_version: Some("0.3.1".into()),
            uptime_secs: Some(86_400),
        };
        let never = NodeState { last_seen: None, status: NodeStatus::Stale, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None };
        let file = NodesFile { generated_at: ts("2026-05-27T14:06:00.000Z"), nodes: BTreeMap::from([("pi4".to_owned(), up), ("nas".to_owned(), never)]) };
        assert_fits("world-nodes.json", &serde_json::to_value(&file).unwrap());
    }

    #[test]
    fn the_drift_file_fits() {
        use crate::drift::{DriftEntry, DriftFile, NextStep};
        use crate::plan::DriftKind;
        let row = DriftEntry {
            node: "pi4".into(),
            service: Some("mqtt".into()),
            kind: DriftKind::UnhealthyService,
            trigger: "containers_not_running".into(),
            root_cause: None,
            since: Some(ts("2026-05-27T14:00:00.000Z")),
            decision: NextStep::RemediationExhausted,
            reason: "Restart and redeploy both ran in the last 15 min and mqtt is unhealthy.".into(),
            action_id: Some("redeploy-pi4-mqtt".into()),
            until: Some(ts("2026-05-27T20:00:00.000Z")),
        };
        let node = DriftEntry {
            service: None,
            kind: DriftKind::NodeUnreachable,
            trigger: "never_seen".into(),
            since: None,
            decision: NextStep::NodeUnreachable,
            action_id: None,
            until: None,
            ..row.clone()
        };
        let file = DriftFile { generated_at: ts("2026-05-27T14:06:00.000Z"), drifts: vec![node, row] };
        let value = serde_json::to_value(&file).unwrap();
        assert_eq!(value["drifts"][1]["kind"], "unhealthy_service");
        assert_eq!(value["drifts"][1]["decision"], "remediation_exhausted");
        assert_fits("world-drift.json", &value);
        assert_fits("world-drift.json", &json!({ "generated_at": "2026-05-27T14:06:00.000Z", "drifts": [] }));
    }

    #[test]
    fn actions_fit() {
        let created = ts("2026-05-27T14:03:11.123Z");
        let mut action = Action {
            id: ActionType::Redeploy.id("pi4", Some("mqtt")),
            kind: ActionType::Redeploy,
            risk: Risk::Guarded,
            node: "pi4".into(),
            service: Some("mqtt".into()),
            drift: "unhealthy_service".into(),
            trigger: "http_check_failed".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: created,
            updated_at: created,
            history: vec![HistoryEntry { state: ActionState::Pending, at: created, by: "supervisor".into(), note: None }],
            result: None,
            generation: None,
        };
        assert_fits("action.json", &serde_json::to_value(&action).unwrap());

        action.record(ActionState::Approved, ts("2026-05-27T14:04:00.000Z"), "ui:alice", Some("go".into()));
        action.record(ActionState::Running, ts("2026-05-27T14:04:01.000Z"), "executor", None);
        action.record(ActionState::Completed, ts("2026-05-27T14:04:09.000Z"), "executor", None);
        action.result = Some(ActionResult {
            ok: true,
            exit_status: Some(0),
            output: "done\n".into(),
            error: Some("none, really".into()),
            started_at: Some(ts("2026-05-27T14:04:01.000Z")),
            finished_at: Some(ts("2026-05-27T14:04:09.000Z")),
            bytes_reclaimed: Some(1 << 30),
            verified: Some(true),
            dry_run: false,
            rolled_back_to: Some("20261207T230102.123Z".into()),
            evidence: Some("container web_app_1 exited with code 1".into()),
        });
        assert_fits("action.json", &serde_json::to_value(&action).unwrap());
    }

    #[test]
    fn a_heartbeat_fits() {
        let mut hb = Heartbeat {
            daemon: "observer".into(),
            pid: 4242,
            version: "0.0.0".into(),
            started_at: ts("2026-05-27T14:00:00.000Z"),
            last_loop_at: ts("2026-05-27T14:06:00.000Z"),
            interval_secs: 10,
            counters: BTreeMap::from([("applied".to_owned(), 12)]),
            config_errors: Vec::new(),
            extra: Value::Null,
        };
        assert_fits("heartbeat.json", &serde_json::to_value(&hb).unwrap());
        hb.config_errors.push(ConfigError {
            file: "hosts/pi4/services.yaml".into(),
            line: 3,
            column: 5,
            message: "unknown field".into(),
            hint: Some("check the spelling".into()),
        });
        hb.extra = json!({ "hosts": 2 });
        assert_fits("heartbeat.json", &serde_json::to_value(&hb).unwrap());
    }

    #[test]
    fn a_checkpoint_fits() {
        let mut checkpoint = Checkpoint::new();
        let mut heartbeat = Event::new(ts("2026-05-27T14:03:11.123Z"), "pi4", "node_heartbeat", None);
        heartbeat.data = Some(json!({ "agent_version": "0.3.1", "uptime_secs": 60, "disks": disks(), "disk_pressure": "ok" }));
        checkpoint.apply("pi4", &heartbeat);
        checkpoint.apply("pi4", &Event::new(ts("2026-05-27T14:03:12.000Z"), "pi4", "http_check_failed", Some("mqtt")));
        checkpoint.apply("pi4", &Event::new(ts("2026-05-27T14:03:13.000Z"), "pi4", "something_new", None));
        checkpoint.world.nodes.insert("nas".into(), NodeFacts::default());
        assert!(checkpoint.counters.applied > 0 && checkpoint.counters.unknown_type > 0);
        assert_fits("observer-checkpoint.json", &serde_json::to_value(&checkpoint).unwrap());
        assert_fits("observer-checkpoint.json", &serde_json::to_value(Checkpoint { world: World::default(), ..Checkpoint::new() }).unwrap());
    }

    #[test]
    fn the_checker_catches_a_stray_field() {
        let mut event = serde_json::to_value(Event::new(ts("2026-05-27T14:03:11.123Z"), "pi4", "node_heartbeat", None)).unwrap();
        event["kind"] = json!("node_heartbeat");
        let schema = schema("event.json");
        let mut problems = Vec::new();
        check(&event, &schema, &schema, "$", &mut problems);
        assert_eq!(problems, ["$.kind: not in the schema's properties"]);
    }
}
