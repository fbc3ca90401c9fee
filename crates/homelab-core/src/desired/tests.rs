//! Validation of services.yaml: every rule as a row of (yaml, expected error text and position).

use super::*;

const GOOD: &str = r#"
node: edge-1
ssh: { host: 127.0.0.1, user: ops, port: 2222 }
compose_command: docker-compose
disk: { pressure_high_pct: 90, cleanup: { docker_prune: true } }
maintenance_windows:
  - { days: [sat, sun], start: "02:00", end: "05:00" }
services:
  mosquitto:
    compose_dir: /srv/mosquitto
    containers: [mosquitto]
    checks:
      - tcp: { port: 1883 }
      - mqtt: { port: 1883, timeout_secs: 3 }
  zigbee2mqtt:
    compose_dir: /srv/zigbee2mqtt
    depends_on: [mosquitto]
    checks:
      - http: { url: "http://127.0.0.1:8080/", expect_status: [200], basic_auth: { user: a, password_env: Z2M_PW } }
      - container: {}
      - exec: { container: db, command: [pg_isready, -U, postgres] }
      - systemd: { unit: docker.service }
  homeassistant:
    monitor: false
  ghost:
    checks:
      - alert: { alertname: ProbeFailed, labels: { instance: "https://ghost:443/x" } }
  grafana:
    checks:
      - tcp: { port: 3000 }
      - alert: { alertname: GrafanaDown }
"#;

#[test]
fn good_file_parses() {
    let h = parse_host_file("hosts/edge-1/services.yaml", "edge-1", GOOD).unwrap();
    assert_eq!(h.spec.node, "edge-1");
    assert_eq!(h.spec.compose_command, ["docker-compose"]);
    assert_eq!(h.spec.ssh.as_ref().unwrap().port, Some(2222));
    assert_eq!(h.spec.services.len(), 5);
    let ghost = &h.spec.services["ghost"];
    assert!(ghost.alert_only() && ghost.has_alert_checks());
    let probe = ghost.alert_checks().next().unwrap();
    let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert!(probe.matches(&labels(&[("alertname", "ProbeFailed"), ("instance", "https://ghost:443/x"), ("job", "blackbox")])));
    assert!(!probe.matches(&labels(&[("alertname", "ProbeFailed"), ("instance", "https://other:443/x")])));
    assert!(!probe.matches(&labels(&[("alertname", "Other"), ("instance", "https://ghost:443/x")])));
    let grafana = &h.spec.services["grafana"];
    assert!(grafana.has_alert_checks() && !grafana.alert_only());
    assert!(!h.spec.services["mosquitto"].has_alert_checks());
    assert_eq!(h.spec.services["zigbee2mqtt"].depends_on, ["mosquitto"]);
    assert_eq!(h.spec.services["zigbee2mqtt"].checks.len(), 4);
    assert_eq!(h.spec.services["mosquitto"].checks[1].timeout().as_secs(), 3);
    assert_eq!(h.spec.services["mosquitto"].checks[0].timeout().as_secs(), 10);
    assert!(!h.spec.services["homeassistant"].monitor);
    assert_eq!(h.spec.monitored().count(), 4);
    let default = parse_host_file("f", "n1", "services: {}").unwrap();
    assert_eq!(default.spec.node, "n1");
    assert_eq!(default.spec.compose_command, ["docker", "compose"]);
}

/// (yaml, folder, expected message part, expected line)
fn check(yaml: &str, folder: &str, want: &str, line: u64) {
    let errs = parse_host_file("hosts/x/services.yaml", folder, yaml).unwrap_err();
    let hit = errs.iter().find(|e| e.message.contains(want)).unwrap_or_else(|| panic!("no error with {want:?} in {errs:?}"));
    assert_eq!(hit.line, line, "line of {hit}");
    assert!(hit.column > 0, "column of {hit}");
    assert!(hit.to_string().starts_with("hosts/x/services.yaml:"), "{hit}");
}

#[test]
fn invalid_files_table() {
    check("services:\n  web:\n    compse_dir: /x\n", "n1", "unknown field", 3);
    check("servics: {}\n", "n1", "unknown field", 1);
    check("services:\n  web: {}\n  web: {}\n", "n1", "uplicate", 3);
    check("services:\n  Web_Bad: {}\n", "n1", "service: name", 2);
    check("node: ../etc\nservices: {}\n", "n1", "node: name", 1);
    check("services:\n  a:\n    depends_on: [nope]\n", "n1", "unknown service \"nope\"", 3);
    check("services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n", "n1", "dependency cycle: a -> b -> a", 3);
    check("services:\n  a:\n    depends_on: [a]\n", "n1", "depends on itself", 3);
    check("services:\n  a:\n    checks:\n      - ping: {}\n", "n1", "unknown variant", 4);
    check("services:\n  a:\n    checks:\n      - tcp: { port: 1, bogus: 2 }\n", "n1", "unknown field", 4);
    check("compose_command: podman-compose\nservices: {}\n", "n1", "not supported", 1);
    check("services: [\n", "n1", "", 1);
    check(
        "services:\n  a:\n    checks:\n      - http: { url: x, basic_auth: { user: u } }\n",
        "n1",
        "exactly one of password_env or password_file",
        3,
    );
    check("services:\n  a:\n    checks:\n      - tcp: { port: 1 }\n      - alert: { alertname: \"\" }\n", "n1", "alertname must not be empty", 5);
    check("services:\n  a:\n    checks:\n      - alert: { alertname: X, labels: { bad-label: y } }\n", "n1", "not a Prometheus label name", 4);
    check("services:\n  a:\n    checks:\n      - alert: { alertname: X, labels: { alertname: Y } }\n", "n1", "not in `labels`", 4);
    check("services:\n  a:\n    checks:\n      - alert: { labels: { job: y } }\n", "n1", "alertname", 4);
    check("services:\n  a:\n    checks:\n      - alert: { alertname: X, timeout_secs: 3 }\n", "n1", "unknown field", 4);
    check("maintenance_windows:\n  - { start: \"2:00x\", end: \"05:00\" }\nservices: {}\n", "n1", "maintenance window", 2);
}

#[test]
fn inline_password_is_an_unknown_key() {
    let errs = parse_host_file("f", "n1", "services:\n  a:\n    checks:\n      - http: { url: x, basic_auth: { user: u, password: hunter2 } }\n").unwrap_err();
    assert!(errs[0].message.contains("unknown field"), "{errs:?}");
}
