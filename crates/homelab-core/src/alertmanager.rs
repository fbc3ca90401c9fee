//! Alertmanager webhook alerts as events: a firing alert is a negative service event
//! (`service_unhealthy`), a resolved one a positive event (`service_healthy`). Pure mapping;
//! the UI (`POST /api/v1/alertmanager`) and `hcp alertmanager` write the events.
//!
//! Which node and service an alert is about:
//!
//! 1. An `alert:` check in hosts/ whose `alertname` and `labels` the alert carries: the
//!    service (and node) that check belongs to, whatever the alert's own labels say. One alert
//!    may match several checks; each gets its event.
//! 2. Otherwise the labels, in the order configured ([`Mapping`], `ALERT_NODE_LABELS` and
//!    `ALERT_SERVICE_LABELS`): the node from the first node label present, with URLs
//!    (`https://ghost:443/x` → `ghost`) and `host:port` (`nas-1:9100` → `nas-1`) cut to their
//!    host; the service from the first service label present.
//!
//! Every event carries `data.source: "alertmanager"` ([`SOURCE`]): an alert says something
//! about a service, never that the node's agent is alive, and the fold does not count it as
//! the node's sign of life.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::desired::DesiredState;
use crate::{Event, Timestamp};

/// `data.source` of every event made from an alert.
pub const SOURCE: &str = "alertmanager";

/// The node labels tried by default, in order.
pub const DEFAULT_NODE_LABELS: &[&str] = &["node", "instance"];
/// The service labels tried by default, in order.
pub const DEFAULT_SERVICE_LABELS: &[&str] = &["service", "container", "job"];

/// Alertmanager's webhook body (the fields used here).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// `firing` or `resolved`; anything else refuses the whole body.
    #[schema(schema_with = alert_status)]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The OpenAPI schema of [`Alert::status`]: a string, one of the two Alertmanager sends.
fn alert_status() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["firing", "resolved"]))
        .description(Some("`firing` or `resolved`; anything else refuses the whole body."))
        .build()
}

/// What became of one alert.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    Event(Event),
    Skipped(String),
}

/// Which labels name an alert's node and service, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub node_labels: Vec<String>,
    pub service_labels: Vec<String>,
}

impl Default for Mapping {
    fn default() -> Self {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Mapping { node_labels: own(DEFAULT_NODE_LABELS), service_labels: own(DEFAULT_SERVICE_LABELS) }
    }
}

impl Mapping {
    /// From two comma-separated lists of label names (`ALERT_NODE_LABELS`,
    /// `ALERT_SERVICE_LABELS`); an absent or blank list keeps the default.
    pub fn parse(node_labels: Option<&str>, service_labels: Option<&str>) -> Result<Mapping, String> {
        fn list(what: &str, s: Option<&str>, default: &[&str]) -> Result<Vec<String>, String> {
            let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
                return Ok(default.iter().map(|s| s.to_string()).collect());
            };
            s.split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| if crate::desired::is_label_name(l) { Ok(l.to_owned()) } else { Err(format!("{what}: {l:?} is not a Prometheus label name")) })
                .collect()
        }
        Ok(Mapping {
            node_labels: list("ALERT_NODE_LABELS", node_labels, DEFAULT_NODE_LABELS)?,
            service_labels: list("ALERT_SERVICE_LABELS", service_labels, DEFAULT_SERVICE_LABELS)?,
        })
    }
}

/// The host part of a label value: `https://ghost:443/x` → `ghost`, `nas-1:9100` → `nas-1`,
/// `[fd00::1]:9100` → `fd00::1`, `edge-1` → `edge-1`; lowercased (host names are not case
/// sensitive, node names are lowercase).
pub fn host_of(value: &str) -> String {
    let v = value.trim();
    let authority = match v.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or(rest),
        None => v,
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match authority.rsplit_once(':') {
            // host:port (one colon, digits after it); a bare IPv6 address is left alone.
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    host.to_ascii_lowercase()
}

/// Maps one alert to an event at `now` by its labels (the default [`Mapping`], no hosts/).
pub fn map_alert(alert: &Alert, now: Timestamp) -> Mapped {
    map_by_labels(alert, &Mapping::default(), now)
}

/// Maps one alert by its labels. The event time is when it arrived, not `startsAt`.
pub fn map_by_labels(alert: &Alert, mapping: &Mapping, now: Timestamp) -> Mapped {
    let label = |k: &String| alert.labels.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
    let Some(node) = mapping.node_labels.iter().find_map(label).map(host_of) else {
        return Mapped::Skipped(format!("no node (set one of the labels {})", mapping.node_labels.join(", ")));
    };
    let Some(service) = mapping.service_labels.iter().find_map(label) else {
        return Mapped::Skipped(format!("no service on node {node} (set one of the labels {})", mapping.service_labels.join(", ")));
    };
    event_for(alert, &node, service, "labels", now)
}

/// Maps every alert of a webhook: through the `alert:` checks of `desired` first, else by
/// labels. Within one webhook a target with a firing alert stays unhealthy: a resolved alert
/// for the same node and service is skipped (Alertmanager sends a group's alerts together,
/// with one arrival time, so both events would tie).
pub fn map_webhook(hook: &Webhook, mapping: &Mapping, desired: Option<&DesiredState>, now: Timestamp) -> Vec<Mapped> {
    let mut out = Vec::new();
    for alert in &hook.alerts {
        let targets: Vec<(&str, &str)> = desired
            .map(|d| {
                d.hosts
                    .iter()
                    .flat_map(|(node, h)| h.services.iter().map(move |(s, spec)| (node, s, spec)))
                    .filter(|(_, _, spec)| spec.alert_checks().any(|c| c.matches(&alert.labels)))
                    .map(|(n, s, _)| (n.as_str(), s.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if targets.is_empty() {
            out.push(map_by_labels(alert, mapping, now));
        } else {
            out.extend(targets.into_iter().map(|(node, service)| event_for(alert, node, service, "check", now)));
        }
    }
    let firing: BTreeSet<(String, String)> = out
        .iter()
        .filter_map(|m| match m {
            Mapped::Event(e) if e.kind == "service_unhealthy" => Some((e.node.clone(), e.service.clone().unwrap_or_default())),
            _ => None,
        })
        .collect();
    out.into_iter()
        .map(|m| match m {
            Mapped::Event(e) if e.kind == "service_healthy" && firing.contains(&(e.node.clone(), e.service.clone().unwrap_or_default())) => {
                let service = e.service.unwrap_or_default();
                Mapped::Skipped(format!("resolved alert for {}/{service} skipped: another alert for it still fires in this webhook", e.node))
            }
            m => m,
        })
        .collect()
}

fn event_for(alert: &Alert, node: &str, service: &str, matched: &str, now: Timestamp) -> Mapped {
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
    let name = alert.labels.get("alertname").map(String::as_str).filter(|n| !n.is_empty()).unwrap_or("alert");
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
        data: Some(serde_json::json!({ "source": SOURCE, "matched": matched, "labels": alert.labels })),
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
            ("firing", vec![("instance", "https://ghost:443/x"), ("job", "blackbox")], Ok(("ghost", "blackbox", "service_unhealthy"))),
            ("firing", vec![("instance", "https://ghost"), ("job", "blackbox")], Ok(("ghost", "blackbox", "service_unhealthy"))),
            ("firing", vec![("instance", "http://user@Ghost.example.net:8080/?q=1"), ("job", "b")], Ok(("ghost.example.net", "b", "service_unhealthy"))),
            ("firing", vec![("instance", "[fd00::1]:9100"), ("job", "b")], Err("node:")),
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
                    assert!(e.detail.as_deref().unwrap().contains("disk almost full"));
                    assert_eq!(e.ts, chrono::SubsecRound::trunc_subsecs(now, 3));
                    assert_eq!(e.data.as_ref().unwrap()["source"], SOURCE);
                    assert!(!e.is_sign_of_life());
                }
                (Mapped::Skipped(why), Err(part)) => assert!(why.contains(part), "{labels:?}: {why}"),
                (got, want) => panic!("{status} {labels:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn host_of_table() {
        for (value, host) in [
            ("https://ghost:443/x", "ghost"),
            ("https://ghost", "ghost"),
            ("ghost:9100", "ghost"),
            ("edge-1", "edge-1"),
            ("tcp://10.0.0.5:1883", "10.0.0.5"),
            ("[fd00::1]:9100", "fd00::1"),
            ("fd00::1", "fd00::1"),
            ("http://a:b@host:1/p", "host"),
        ] {
            assert_eq!(host_of(value), host, "{value}");
        }
    }

    #[test]
    fn configured_labels() {
        let now = chrono::Utc::now();
        let m = Mapping::parse(Some("host, target"), Some("app")).unwrap();
        let a = alert("firing", &[("host", "https://nas-1:5001/"), ("app", "photos"), ("node", "ignored"), ("service", "ignored")]);
        let Mapped::Event(e) = map_by_labels(&a, &m, now) else { panic!() };
        assert_eq!((e.node.as_str(), e.service.as_deref()), ("nas-1", Some("photos")));
        let Mapped::Skipped(why) = map_by_labels(&alert("firing", &[("node", "x"), ("service", "y")]), &m, now) else { panic!() };
        assert!(why.contains("host, target"), "{why}");
        assert_eq!(Mapping::parse(None, Some(" ")).unwrap(), Mapping::default());
        assert!(Mapping::parse(Some("no-dash"), None).unwrap_err().contains("ALERT_NODE_LABELS"));
    }

    #[test]
    fn alert_checks_in_hosts_decide_the_target() {
        let now = chrono::Utc::now();
        let yaml = "services:\n  ghost:\n    checks:\n      - alert: { alertname: ProbeFailed, labels: { instance: \"https://ghost:443/x\" } }\n  web:\n    checks:\n      - tcp: { port: 80 }\n      - alert: { alertname: ProbeFailed, labels: { instance: \"https://ghost:443/x\" } }\n";
        let host = crate::desired::parse_host_file("hosts/vps/services.yaml", "vps", yaml).unwrap();
        let desired = DesiredState { hosts: [("vps".to_string(), host.spec)].into() };
        let firing = alert("firing", &[("alertname", "ProbeFailed"), ("instance", "https://ghost:443/x"), ("job", "blackbox")]);
        let hook = Webhook { alerts: vec![firing] };
        let got = map_webhook(&hook, &Mapping::default(), Some(&desired), now);
        let targets: Vec<(String, String, String)> = got
            .iter()
            .map(|m| match m {
                Mapped::Event(e) => (e.node.clone(), e.service.clone().unwrap(), e.data.as_ref().unwrap()["matched"].as_str().unwrap().to_owned()),
                Mapped::Skipped(why) => panic!("{why}"),
            })
            .collect();
        assert_eq!(targets, [("vps".into(), "ghost".into(), "check".into()), ("vps".into(), "web".into(), "check".into())]);
        // An alert no check matches falls back to its labels.
        let other = Webhook { alerts: vec![alert("firing", &[("alertname", "ProbeFailed"), ("instance", "https://other:443/"), ("job", "blackbox")])] };
        let Mapped::Event(e) = &map_webhook(&other, &Mapping::default(), Some(&desired), now)[0] else { panic!() };
        assert_eq!((e.node.as_str(), e.service.as_deref()), ("other", Some("blackbox")));
    }

    #[test]
    fn firing_wins_over_resolved_in_one_webhook() {
        let now = chrono::Utc::now();
        let hook = Webhook {
            alerts: vec![
                alert("resolved", &[("alertname", "A"), ("node", "n1"), ("service", "s")]),
                alert("firing", &[("alertname", "B"), ("node", "n1"), ("service", "s")]),
                alert("resolved", &[("alertname", "A"), ("node", "n1"), ("service", "t")]),
            ],
        };
        let got = map_webhook(&hook, &Mapping::default(), None, now);
        assert!(matches!(&got[0], Mapped::Skipped(why) if why.contains("still fires")), "{got:?}");
        assert!(matches!(&got[1], Mapped::Event(e) if e.kind == "service_unhealthy"));
        assert!(matches!(&got[2], Mapped::Event(e) if e.kind == "service_healthy" && e.service.as_deref() == Some("t")));
    }
}
