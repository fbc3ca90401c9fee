//! Alertmanager webhook alerts as events: a firing alert is a negative service event
//! (`service_unhealthy`), a resolved one a positive event (`service_healthy`). Pure mapping;
//! the UI (`POST /api/v1/alertmanager`) and `hcp alertmanager` write the events.

use serde::Deserialize;

use crate::{Event, Timestamp};

/// Alertmanager's webhook body (the fields used here).
#[derive(Debug, Deserialize)]
pub struct Webhook {
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What became of one alert.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    Event(Event),
    Skipped(String),
}

/// Maps one alert to an event at `now`. The node is the `node` label, else the host part of
/// `instance`; the service is the `service` label, else `container`, else `job`. The event time
/// is when it arrived, not `startsAt`: an old start time would sort before what the observer
/// already applied for that node and be skipped.
pub fn map_alert(alert: &Alert, now: Timestamp) -> Mapped {
    let label = |k: &str| alert.labels.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let instance_host = label("instance").map(|i| i.rsplit_once(':').map_or(i, |(h, _)| h));
    let Some(node) = label("node").or(instance_host) else {
        return Mapped::Skipped("no node (set a `node` label, or `instance`)".into());
    };
    let Some(service) = label("service").or(label("container")).or(label("job")) else {
        return Mapped::Skipped(format!("no service on node {node} (set a `service` label)"));
    };
    for (what, v) in [("node", node), ("service", service)] {
        if let Err(e) = crate::validate_name(v) {
            return Mapped::Skipped(format!("{what}: {e}"));
        }
    }
    let kind = match alert.status.as_str() {
        "firing" => "service_unhealthy",
        "resolved" => "service_healthy",
        other => return Mapped::Skipped(format!("unknown alert status {other:?}")),
    };
    let name = label("alertname").unwrap_or("alert");
    let text = alert.annotations.get("summary").or(alert.annotations.get("description"));
    let detail = match text {
        Some(t) => format!("alertmanager: {name} {}: {t}", alert.status),
        None => format!("alertmanager: {name} {}", alert.status),
    };
    Mapped::Event(Event {
        id: uuid::Uuid::new_v4(),
        ts: chrono::SubsecRound::trunc_subsecs(now, 3),
        node: node.to_owned(),
        kind: kind.to_owned(),
        service: Some(service.to_owned()),
        detail: Some(detail),
        data: Some(serde_json::json!({ "source": "alertmanager", "labels": alert.labels })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str, labels: &[(&str, &str)]) -> Alert {
        Alert {
            status: status.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: [("summary".to_string(), "disk almost full".to_string())].into(),
        }
    }

    #[test]
    fn alerts_to_events_table() {
        let now = chrono::Utc::now();
        // (status, labels, expected: Ok((node, service, type)) or Err(part of the reason))
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Result<(&'a str, &'a str, &'a str), &'a str>);
        let cases: Vec<Case> = vec![
            ("firing", vec![("alertname", "Down"), ("node", "edge-1"), ("service", "mosquitto")], Ok(("edge-1", "mosquitto", "service_unhealthy"))),
            ("resolved", vec![("node", "edge-1"), ("service", "mosquitto")], Ok(("edge-1", "mosquitto", "service_healthy"))),
            ("firing", vec![("instance", "nas-1:9100"), ("job", "node-exporter")], Ok(("nas-1", "node-exporter", "service_unhealthy"))),
            ("firing", vec![("node", "edge-1"), ("container", "z2m")], Ok(("edge-1", "z2m", "service_unhealthy"))),
            ("firing", vec![("service", "x")], Err("no node")),
            ("firing", vec![("node", "edge-1")], Err("no service")),
            ("firing", vec![("node", "Edge 1"), ("service", "x")], Err("node:")),
            ("pending", vec![("node", "edge-1"), ("service", "x")], Err("unknown alert status")),
        ];
        for (status, labels, want) in cases {
            let got = map_alert(&alert(status, &labels), now);
            match (got, want) {
                (Mapped::Event(e), Ok((node, service, kind))) => {
                    assert_eq!((e.node.as_str(), e.service.as_deref(), e.kind.as_str()), (node, Some(service), kind), "{labels:?}");
                    assert!(e.detail.unwrap().contains("disk almost full"));
                    assert_eq!(e.ts, chrono::SubsecRound::trunc_subsecs(now, 3));
                }
                (Mapped::Skipped(why), Err(part)) => assert!(why.contains(part), "{labels:?}: {why}"),
                (got, want) => panic!("{status} {labels:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
