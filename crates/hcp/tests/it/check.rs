//! `hcp check`: every error with file:line:column and a hint, exit codes like `monit -t`.

use testkit::TempRoot;

use crate::{hcp, text};

#[test]
fn a_valid_hosts_folder_prints_one_ok_line_and_exits_0() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services:\n  mosquitto:\n    containers: [mosquitto]\n    checks:\n      - tcp: { port: 1883 }\n  z2m:\n    depends_on: [mosquitto]\n  off:\n    monitor: false\n");
    t.write_host("vps", "node: vps\nservices: {}\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    let vps = t.hosts().join("vps/services.yaml").display().to_string();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 2, "{s}");
    assert!(lines[0].starts_with(&format!("{vps}:1:1: warning: no services")), "{s}");
    assert!(lines[1].ends_with("OK: 2 files, 2 nodes, 3 services (2 monitored), 1 check (1 warning)"), "{s}");
}

#[test]
fn every_error_is_reported_with_its_place_and_exit_1() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services:\n  mosquitto:\n    checks:\n      - tcp: { port: 1883 }\n  z2m:\n    checkz: []\n");
    t.write_host("vps", "services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n  c:\n    depends_on: [nope]\n");
    t.write_host("fine", "services: {}\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let edge = t.hosts().join("edge-1/services.yaml").display().to_string();
    let vps = t.hosts().join("vps/services.yaml").display().to_string();
    let expect = [
        format!(
            "{edge}:6:5: services.z2m: unknown field `checkz`; expected one of compose_dir, containers, depends_on, monitor, checks, verify_window, rollback (hint: did you mean `checks`?"
        ),
        format!("{vps}:2:3: services.a: dependency cycle: a -> b -> a (hint: depends_on must not loop back)"),
        format!("{vps}:7:18: services.c.depends_on[0]: service \"c\" depends on unknown service \"nope\" (hint: depends_on names services of the same file)"),
    ];
    for want in &expect {
        assert!(stdout.lines().any(|l| l.starts_with(want.as_str())), "missing {want:?} in:\n{stdout}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 errors in 2 files"), "{}", text(&out));
}

#[test]
fn two_folders_claiming_one_node_is_an_error() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services: {}\n");
    t.write_host("edge-1-old", "node: edge-1\nservices: {}\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("node \"edge-1\" is already described by another folder"), "{}", text(&out));
}

#[test]
fn a_missing_or_empty_hosts_folder_fails_with_a_hint() {
    let t = TempRoot::new();
    let out = hcp(&["check", "--hosts", t.path().join("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("does not exist (hint: pass --hosts DIR or set HOSTS_DIR)"), "{}", text(&out));
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no <node>/services.yaml found"), "{}", text(&out));
}

#[test]
fn hosts_dir_comes_from_the_environment() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services: {}\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp")).arg("check").env("HOSTS_DIR", t.hosts()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn every_error_of_one_file_with_its_field_path_and_what_was_expected() {
    let t = TempRoot::new();
    t.write_host(
        "edge-1",
        "services:\n  web:\n    checks:\n      - http: { url: \"localhost:8080/\", timeout_secs: soon }\n      - tcp: { port: \"80\" }\n    containers: web\n  db:\n    monitor: maybe\n",
    );
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let f = t.hosts().join("edge-1/services.yaml").display().to_string();
    let expect = [
        format!("{f}:4:22: services.web.checks[0].http.url: \"localhost:8080/\" has no scheme (hint: write it as http://localhost:8080/ (or https://))"),
        format!(
            "{f}:4:55: services.web.checks[0].http.timeout_secs: \"soon\" is not a time; expected seconds (3) or a duration (3s, 2m, 1h) (hint: units: ms, s, m, h, d)"
        ),
        format!("{f}:5:22: services.web.checks[1].tcp.port: expected a port as a number, found the text \"80\" (hint: remove the quotes)"),
        format!(
            "{f}:6:17: services.web.containers: expected a list of container names, found \"web\" (hint: write a list as [web, db], or one `- item` per line)"
        ),
        format!("{f}:8:14: services.db.monitor: expected true or false, found \"maybe\""),
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expect.iter().map(String::as_str).collect::<Vec<_>>(), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("5 errors in 1 file"), "{}", text(&out));
}

#[test]
fn durations_are_accepted_where_a_time_is_given() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services:\n  web:\n    checks:\n      - http: { url: \"http://127.0.0.1:8080/\", timeout_secs: 3s }\n      - tcp: { port: 80, timeout_secs: 1m }\n      - tcp: { port: 81, timeout_secs: 5 }\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_empty_file_or_one_without_services_is_a_warning_that_says_what_it_means() {
    let t = TempRoot::new();
    t.write_host("edge-1", "");
    t.write_host("vps", "services: {}\n");
    t.write_host("nas", "services:\n  jellyfin:\n    checks:\n      - tcp: { port: 8096 }\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "warnings do not fail the check: {}", text(&out));
    let edge = t.hosts().join("edge-1/services.yaml").display().to_string();
    let vps = t.hosts().join("vps/services.yaml").display().to_string();
    assert!(
        stdout.contains(&format!("{edge}:1:1: warning: the file is empty: node \"edge-1\" is expected to report, but nothing on it is checked or remediated")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{vps}:1:1: warning: no services: node \"vps\" is expected to report")), "{stdout}");
    assert!(stdout.lines().last().unwrap().ends_with("OK: 3 files, 3 nodes, 1 service (1 monitored), 1 check (2 warnings)"), "{stdout}");
}

#[test]
fn bad_indentation_gets_a_plain_hint() {
    let t = TempRoot::new();
    t.write_host("edge-1", "services:\n  web:\n   compose_dir: /srv/web\n    containers: [web]\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(s.contains("services.yaml:4:15: a `key: value` appears where it does not fit"), "{s}");
    assert!(s.contains("(hint: indent with spaces only; keys of one mapping start in the same column"), "{s}");
    for internal in ["mapping values are not allowed", "scalar", "DuplicateKeyPolicy", "invalid u64", "expected sequence"] {
        assert!(!s.contains(internal), "{internal}: {s}");
    }
}
