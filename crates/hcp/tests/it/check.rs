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
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(s.contains("OK: 2 files, 2 nodes, 3 services (2 monitored), 1 check"), "{s}");
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
        format!("{edge}:6:5: unknown field `checkz`"),
        format!("{vps}:3:5: dependency cycle: a -> b -> a (hint: depends_on must not loop back)"),
        format!("{vps}:7:18: service \"c\" depends on unknown service \"nope\" (hint: depends_on names services of the same file)"),
    ];
    for want in &expect {
        assert!(stdout.lines().any(|l| l.starts_with(want.as_str())), "missing {want:?} in:\n{stdout}");
    }
    assert!(stdout.contains("(hint: check the spelling"), "{stdout}");
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
