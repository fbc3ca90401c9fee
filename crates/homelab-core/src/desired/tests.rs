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
      - mqtt: { port: 1883, timeout_secs: 3s }
  zigbee2mqtt:
    compose_dir: /srv/zigbee2mqtt
    depends_on: [mosquitto]
    checks:
      - http: { url: "http://127.0.0.1:8080/", expect_status: [200], basic_auth: { user: a, password_env: Z2M_PW } }
      - container: {}
      - exec: { container: db, command: [pg_isready, -t, 5, -U, postgres], timeout_secs: 1m }
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
    // Numbers in an argv are taken as written; durations are whole seconds.
    match &h.spec.services["zigbee2mqtt"].checks[2] {
        Check::Exec(e) => {
            assert_eq!(e.command, ["pg_isready", "-t", "5", "-U", "postgres"]);
            assert_eq!(e.timeout_secs, Some(60));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.spec.services["mosquitto"].checks[1].timeout().as_secs(), 3);
    assert_eq!(h.spec.services["mosquitto"].checks[0].timeout().as_secs(), 10);
    assert!(!h.spec.services["homeassistant"].monitor);
    assert_eq!(h.spec.monitored().count(), 4);
    let default = parse_host_file("f", "n1", "services: {}").unwrap();
    assert_eq!(default.spec.node, "n1");
    assert_eq!(default.spec.compose_command, ["docker", "compose"]);
}

/// One row: a file, the one error it must give (exact message, place) and a part of its hint.
struct Row {
    yaml: &'static str,
    line: u64,
    column: u64,
    message: &'static str,
    hint: &'static str,
}

const fn row(yaml: &'static str, line: u64, column: u64, message: &'static str, hint: &'static str) -> Row {
    Row { yaml, line, column, message, hint }
}

/// Every message of the validator, in our words: place, field path, what was expected.
const ROWS: &[Row] = &[
    // Keys.
    row(
        "services:\n  web:\n    compse_dir: /x\n",
        3,
        5,
        "services.web: unknown field `compse_dir`; expected one of compose_dir, containers, depends_on, monitor, checks, verify_window, rollback",
        "did you mean `compose_dir`?",
    ),
    row(
        "servics: {}\n",
        1,
        1,
        "unknown field `servics`; expected one of node, ssh, compose_command, disk, maintenance_windows, services, group, groups",
        "did you mean `services`?",
    ),
    row("services:\n  web: {}\n  web: {}\n", 3, 3, "services.web: appears twice; the first is on line 2", "may appear once"),
    row("ssh: { host: a, host: b }\nservices: {}\n", 1, 17, "ssh.host: appears twice; the first is on line 1", "may appear once"),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 1, bogus: 2 }\n",
        4,
        25,
        "services.a.checks[0].tcp: unknown field `bogus`; expected one of port, host, timeout_secs, failure_threshold, success_threshold",
        "docs/configuration.md",
    ),
    row(
        "services:\n  a:\n    checks:\n      - alert: { alertname: X, timeout_secs: 3 }\n",
        4,
        32,
        "services.a.checks[0].alert: unknown field `timeout_secs`; expected one of alertname, labels",
        "docs/configuration.md",
    ),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", basic_auth: { user: u, password: p, password_env: P } }\n",
        4,
        58,
        "services.a.checks[0].http.basic_auth: unknown field `password`; expected one of user, password_env, password_file",
        "passwords never go inline",
    ),
    // Names and references.
    row(
        "services:\n  Web_Bad: {}\n",
        2,
        3,
        "services.Web_Bad: not a valid service name: name \"Web_Bad\" must start with a lowercase letter or digit and use only a-z, 0-9, '.', '_' and '-'",
        "",
    ),
    row("node: ../etc\nservices: {}\n", 1, 7, "node: name \"../etc\" must start with a lowercase letter or digit and use only a-z, 0-9, '.', '_' and '-'", ""),
    row("services:\n  a:\n    depends_on: [nope]\n", 3, 18, "services.a.depends_on[0]: service \"a\" depends on unknown service \"nope\"", "same file"),
    row(
        "services:\n  web: {}\n  a:\n    depends_on: [wbe]\n",
        4,
        18,
        "services.a.depends_on[0]: service \"a\" depends on unknown service \"wbe\"",
        "did you mean \"web\"?",
    ),
    row("services:\n  a:\n    depends_on: [a]\n", 3, 18, "services.a.depends_on[0]: service \"a\" depends on itself", ""),
    row("services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n", 2, 3, "services.a: dependency cycle: a -> b -> a", "must not loop back"),
    row("compose_command: podman-compose\nservices: {}\n", 1, 18, "compose_command: \"podman-compose\" is not supported", "docker compose"),
    row(
        "maintenance_windows:\n  - { start: \"2:00x\", end: \"05:00\" }\nservices: {}\n",
        2,
        5,
        "maintenance_windows[0]: maintenance window: \"2:00x\" is not a time of day as HH:MM",
        "HH:MM in UTC",
    ),
    row("maintenance_windows:\n  - { days: [sat] }\nservices: {}\n", 2, 5, "maintenance_windows[0]: `start` is required", "start: \"02:00\""),
    // Types: what was expected, never a parser's type name.
    row("services:\n  a:\n    containers: web\n", 3, 17, "services.a.containers: expected a list of container names, found \"web\"", "[web, db]"),
    row("services:\n  a:\n    containers: [a/b]\n", 3, 18, "services.a.containers[0]: \"a/b\" is not a container name", "docker ps"),
    row(
        "services:\n  a:\n    checks: { tcp: { port: 1 } }\n",
        3,
        13,
        "services.a.checks: expected a list of checks, found a mapping (key: value)",
        "one `- item` per line",
    ),
    row("services:\n  a:\n    monitor: maybe\n", 3, 14, "services.a.monitor: expected true or false, found \"maybe\"", ""),
    row("services:\n  a: [x]\n", 2, 6, "services.a: expected a mapping of service settings (compose_dir, containers, checks, …), or {}, found a list", ""),
    row("services: [a, b]\n", 1, 11, "services: expected a mapping of service names, e.g. `web:` on its own line, found a list", ""),
    row("- a\n", 1, 1, "the file must be a mapping of keys such as `services:`, found a list", "start with `services:`"),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: \"80\" }\n",
        4,
        22,
        "services.a.checks[0].tcp.port: expected a port as a number, found the text \"80\"",
        "remove the quotes",
    ),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 70000 }\n",
        4,
        22,
        "services.a.checks[0].tcp.port: 70000 is out of range; expected a port from 1 to 65535",
        "",
    ),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: x }\n",
        4,
        22,
        "services.a.checks[0].tcp.port: expected a port (a whole number from 1 to 65535), found \"x\"",
        "",
    ),
    row("services:\n  a:\n    checks:\n      - tcp: {}\n", 4, 14, "services.a.checks[0].tcp: `port` is required", "port: 1883"),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", expect_status: 200 }\n",
        4,
        50,
        "services.a.checks[0].http.expect_status: expected a list of HTTP status codes, found the number 200",
        "[200, 204]",
    ),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", expect_status: [42] }\n",
        4,
        51,
        "services.a.checks[0].http.expect_status[0]: 42 is out of range; expected an HTTP status code from 100 to 599",
        "",
    ),
    row(
        "disk: { pressure_medium_pct: 95, pressure_high_pct: 90 }\nservices: {}\n",
        1,
        30,
        "disk: pressure_medium_pct (95) must be below pressure_high_pct (90)",
        "",
    ),
    row("disk: { mounts: [srv] }\nservices: {}\n", 1, 18, "disk.mounts[0]: \"srv\" is not an absolute path", "start with /"),
    // Durations wherever a time is given.
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", timeout_secs: 3x }\n",
        4,
        49,
        "services.a.checks[0].http.timeout_secs: \"3x\" is not a time; expected seconds (3) or a duration (3s, 2m, 1h)",
        "ms, s, m, h, d",
    ),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 1, timeout_secs: 500ms }\n",
        4,
        39,
        "services.a.checks[0].tcp.timeout_secs: \"500ms\" is not whole seconds; expected seconds (3) or a duration (3s, 2m, 1h) of at least 1s",
        "",
    ),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 1, timeout_secs: 0 }\n",
        4,
        39,
        "services.a.checks[0].tcp.timeout_secs: 0 is not a usable time; expected seconds (3) or a duration (3s, 2m, 1h) of at least 1s",
        "",
    ),
    // Hysteresis: consecutive runs before a check flips.
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 1, failure_threshold: 0 }\n",
        4,
        44,
        "services.a.checks[0].tcp.failure_threshold: 0 is out of range; expected a number of consecutive runs from 1 to 1000",
        "",
    ),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", success_threshold: 1001 }\n",
        4,
        54,
        "services.a.checks[0].http.success_threshold: 1001 is out of range; expected a number of consecutive runs from 1 to 1000",
        "",
    ),
    row(
        "services:\n  a:\n    checks:\n      - container: { failure_threshold: \"3\" }\n",
        4,
        41,
        "services.a.checks[0].container.failure_threshold: expected a number of consecutive runs as a number, found the text \"3\"",
        "remove the quotes",
    ),
    row(
        "services:\n  a:\n    checks:\n      - alert: { alertname: X, failure_threshold: 3 }\n",
        4,
        32,
        "services.a.checks[0].alert: unknown field `failure_threshold`; expected one of alertname, labels",
        "",
    ),
    row(
        "services:\n  a:\n    failure_threshold: 3\n",
        3,
        5,
        "services.a: unknown field `failure_threshold`; expected one of compose_dir, containers, depends_on, monitor, checks, verify_window, rollback",
        "",
    ),
    // URLs.
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"127.0.0.1:80/\" }\n",
        4,
        22,
        "services.a.checks[0].http.url: \"127.0.0.1:80/\" has no scheme",
        "http://127.0.0.1:80/",
    ),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"ftp://nas/\" }\n",
        4,
        22,
        "services.a.checks[0].http.url: \"ftp://nas/\": the scheme \"ftp\" is not supported",
        "use tcp:",
    ),
    row("services:\n  a:\n    checks:\n      - http: { url: \"http:///x\" }\n", 4, 22, "services.a.checks[0].http.url: \"http:///x\" has no host", ""),
    row("services:\n  a:\n    checks:\n      - http: { url: x, basic_auth: { user: u } }\n", 4, 22, "services.a.checks[0].http.url: \"x\" has no scheme", ""),
    // Checks.
    row(
        "services:\n  a:\n    checks:\n      - ping: {}\n",
        4,
        9,
        "services.a.checks[0]: unknown check `ping`; expected one of http, tcp, container, exec, systemd, mqtt, alert",
        "docs/configuration.md",
    ),
    row(
        "services:\n  a:\n    checks:\n      - htp: {}\n",
        4,
        9,
        "services.a.checks[0]: unknown check `htp`; expected one of http, tcp, container, exec, systemd, mqtt, alert",
        "did you mean `http`?",
    ),
    row("services:\n  a:\n    checks:\n      - container\n", 4, 9, "services.a.checks[0]: `container` needs its settings", "- container: {}"),
    row(
        "services:\n  a:\n    checks:\n      - tcp:\n        port: 1\n",
        4,
        9,
        "services.a.checks[0]: the settings of `tcp` (port) are not indented under it",
        "two spaces further",
    ),
    row(
        "services:\n  a:\n    checks:\n      - { tcp: { port: 1 }, mqtt: {} }\n",
        4,
        11,
        "services.a.checks[0]: a check has exactly one kind, found `tcp` and `mqtt`",
        "its own `- `",
    ),
    row(
        "services:\n  a:\n    checks:\n      - exec: { container: db, command: [] }\n",
        4,
        41,
        "services.a.checks[0].exec.command: the command is empty",
        "pg_isready",
    ),
    row(
        "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", basic_auth: { user: u } }\n",
        4,
        47,
        "services.a.checks[0].http.basic_auth: basic_auth needs exactly one of password_env or password_file",
        "never go inline",
    ),
    row(
        "services:\n  a:\n    checks:\n      - tcp: { port: 1 }\n      - alert: { alertname: \"\" }\n",
        5,
        29,
        "services.a.checks[1].alert.alertname: alertname must not be empty",
        "docs/alertmanager.md",
    ),
    row(
        "services:\n  a:\n    checks:\n      - alert: { alertname: X, labels: { bad-label: y } }\n",
        4,
        42,
        "services.a.checks[0].alert.labels.bad-label: \"bad-label\" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
        "docs/alertmanager.md",
    ),
    row(
        "services:\n  a:\n    checks:\n      - alert: { alertname: X, labels: { alertname: Y } }\n",
        4,
        42,
        "services.a.checks[0].alert.labels.alertname: put the alert name in `alertname`, not in `labels`",
        "",
    ),
    row(
        "services:\n  a:\n    checks:\n      - alert: { labels: { job: y } }\n",
        4,
        16,
        "services.a.checks[0].alert: `alertname` is required",
        "alertname: ProbeFailed",
    ),
    // YAML syntax, in plain words.
    row(
        "services:\n  web:\n   a: 1\n    b: 2\n",
        4,
        6,
        "a `key: value` appears where it does not fit: either a value holds \": \" and needs quotes, or this line is indented more than the keys around it",
        "indent with spaces only",
    ),
    row("services:\n  a: {}\n b: {}\n", 3, 2, "this line is not indented like the lines around it", "same column"),
    row("services:\n  a:\n    - x\n    y: 1\n", 4, 5, "list items (`- …`) and `key: value` lines are mixed at the same indentation", "indent with spaces"),
    row("services:\n\tweb: {}\n", 2, 2, "a tab character is used for indentation; YAML indentation must be spaces", "replace the tabs"),
    row("services: [\n", 1, 11, "a `[` is never closed", "close it with `]`"),
    row("services: {a: {}\n", 1, 11, "a `{` is never closed", "close it with `}`"),
    row("node: \"edge\nservices: {}\n", 1, 7, "a quoted text is never closed", "closing quote"),
    row("node: 'a'b\n", 1, 10, "there is more text after a closing quote", "quote the whole value"),
];

#[test]
fn every_message_in_our_words_table() {
    let mut wrong = Vec::new();
    for r in ROWS {
        let errs = parse_host_file("hosts/x/services.yaml", "n1", r.yaml).expect_err(r.yaml);
        let Some(e) = errs.iter().find(|e| e.message == r.message) else {
            wrong.push(format!("{:?}: no error {:?} in {:?}", r.yaml, r.message, errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()));
            continue;
        };
        if (e.line, e.column) != (r.line, r.column) {
            wrong.push(format!("{:?}: at {}:{}, not {}:{}: {e}", r.yaml, e.line, e.column, r.line, r.column));
        }
        if !e.hint.as_deref().unwrap_or("").contains(r.hint) {
            wrong.push(format!("{:?}: hint without {:?}: {e}", r.yaml, r.hint));
        }
        // No library internals, ever.
        for leak in
            ["invalid type", "invalid u64", "expected sequence", "DuplicateKeyPolicy", "Options", "scalar", "serde", "variant", "while parsing", "indicator"]
        {
            if e.to_string().contains(leak) {
                wrong.push(format!("{:?}: {leak:?} leaks in {e}", r.yaml));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let yaml = "servics: {}\nservices:\n  web:\n    checkz: []\n    checks:\n      - http: { url: \"localhost/\", timeout_secs: soon }\n      - tcp: {}\n  db:\n    depends_on: [nope]\n    monitor: 3\n";
    let errs = parse_host_file("f", "n1", yaml).unwrap_err();
    let got: Vec<(u64, &str)> = errs.iter().map(|e| (e.line, e.message.split(':').next().unwrap_or(""))).collect();
    assert_eq!(
        got,
        [
            (1, "unknown field `servics`; expected one of node, ssh, compose_command, disk, maintenance_windows, services, group, groups"),
            (4, "services.web"),
            (6, "services.web.checks[0].http.url"),
            (6, "services.web.checks[0].http.timeout_secs"),
            (7, "services.web.checks[1].tcp"),
            (9, "services.db.depends_on[0]"),
            (10, "services.db.monitor"),
        ],
        "{errs:#?}"
    );
}

#[test]
fn durations_wherever_a_time_is_given() {
    for (written, secs) in [("3", 3), ("3s", 3), ("\"3s\"", 3), ("2m", 120), ("1h", 3600), ("1000ms", 1)] {
        for check in [
            "http: { url: \"http://x/\", timeout_secs: T }",
            "tcp: { port: 1, timeout_secs: T }",
            "container: { timeout_secs: T }",
            "exec: { container: c, command: [true], timeout_secs: T }",
            "systemd: { unit: u, timeout_secs: T }",
            "mqtt: { timeout_secs: T }",
        ] {
            let yaml = format!("services:\n  a:\n    checks:\n      - {}\n", check.replace('T', written));
            let h = parse_host_file("f", "n1", &yaml).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
            assert_eq!(h.spec.services["a"].checks[0].timeout().as_secs(), secs, "{yaml}");
        }
    }
}

#[test]
fn urls_table() {
    let ok = ["http://127.0.0.1:8080/", "https://nas.lan/health?x=1", "HTTP://x", "http://[::1]:80/", "http://host"];
    for u in ok {
        assert_eq!(validate_url(u), Ok(()), "{u}");
    }
    let bad = [
        ("127.0.0.1:8080", "has no scheme"),
        ("ftp://x/", "is not supported"),
        ("http://", "has no host"),
        ("http://:80/", "has no host"),
        ("http://a:b@x/", "holds credentials"),
        ("http://x:99999/", "is not a number from 1 to 65535"),
        ("http://x:0/", "is not a number from 1 to 65535"),
        ("http://[::1/", "no closing `]`"),
        ("http://a b/", "has a space"),
    ];
    for (u, want) in bad {
        let (msg, hint) = validate_url(u).unwrap_err();
        assert!(msg.contains(want), "{u}: {msg}");
        assert!(!hint.is_empty(), "{u}");
    }
}

#[test]
fn empty_files_and_files_without_services_warn() {
    let cases = [
        ("", "the file is empty"),
        ("# nothing yet\n", "the file is empty"),
        ("---\n", "the file is empty"),
        ("services: {}\n", "no services"),
        ("services:\n", "no services"),
        ("node: n1\n", "no services"),
    ];
    for (text, want) in cases {
        let h = parse_host_file("f", "n1", text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        assert!(h.spec.services.is_empty());
        let w = host_file_warnings(&h, text);
        assert_eq!(w.len(), 1, "{text:?}");
        assert!(w[0].message.starts_with(want), "{text:?}: {}", w[0]);
        assert!(w[0].message.contains("node \"n1\" is expected to report, but nothing on it is checked or remediated"), "{}", w[0]);
    }
    let h = parse_host_file("f", "n1", "services:\n  a: {}\n").unwrap();
    assert!(host_file_warnings(&h, "services:\n  a: {}\n").is_empty());
}

#[test]
fn a_container_check_may_be_written_without_settings() {
    let h = parse_host_file("f", "n1", "services:\n  a:\n    containers: [a]\n    checks:\n      - container:\n").unwrap();
    assert_eq!(h.spec.services["a"].checks, [Check::Container(ContainerCheck { timeout_secs: None, failure_threshold: None, success_threshold: None })]);
}

#[test]
fn inline_password_is_an_unknown_key() {
    let errs = parse_host_file("f", "n1", "services:\n  a:\n    checks:\n      - http: { url: \"http://x/\", basic_auth: { user: u, password: hunter2 } }\n")
        .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.contains("unknown field `password`"), "{errs:?}");
    assert!(!format!("{errs:?}").contains("hunter2"), "a password never appears in an error: {errs:?}");
}

#[test]
fn thresholds_default_to_one_and_are_read_per_check() {
    let yaml = "services:\n  a:\n    checks:\n      - tcp: { port: 1, failure_threshold: 3, success_threshold: 2 }\n      - http: { url: \"http://x/\", success_threshold: 5 }\n      - container: {}\n      - alert: { alertname: X }\n";
    let h = parse_host_file("f", "n1", yaml).unwrap();
    let got: Vec<(u32, u32)> = h.spec.services["a"].checks.iter().map(|c| (c.failure_threshold(), c.success_threshold())).collect();
    assert_eq!(got, [(3, 2), (1, 5), (1, 1), (1, 1)]);
}

#[test]
fn verify_window_and_rollback_per_service() {
    let table: [(&str, Option<(u64, bool)>); 7] = [
        ("{}", Some((DEFAULT_VERIFY_WINDOW_SECS, true))),
        ("{ verify_window: 45s }", Some((45, true))),
        ("{ verify_window: 2m, rollback: false }", Some((120, false))),
        ("{ verify_window: 1 }", Some((MIN_VERIFY_WINDOW_SECS, true))),
        ("{ rollback: maybe }", None),
        ("{ verify_window: soon }", None),
        ("{ verify_window: 0 }", None),
    ];
    for (service, want) in table {
        let yaml = format!("services:\n  a: {service}\n");
        let got = parse_host_file("f", "n1", &yaml).ok().map(|h| (h.spec.services["a"].verify_window().as_secs(), h.spec.services["a"].rollback));
        assert_eq!(got, want, "{yaml}");
    }
}
