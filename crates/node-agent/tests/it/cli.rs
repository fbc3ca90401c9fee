//! The binary itself: flags and environment, exit codes and messages for people.

use std::process::Command;

use testkit::TempRoot;

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_node-agent"));
    for var in ["HOSTS_DIR", "NODE_NAME", "HOMELAB_ROOT", "CONTROL_PLANE_URL", "AGENT_TOKEN", "AGENT_TOKEN_FILE", "NATS_URL", "CHECK_INTERVAL"] {
        c.env_remove(var);
    }
    c
}

#[test]
fn once_from_the_environment_writes_events_and_exits_zero() {
    let tr = TempRoot::new();
    tr.write_host("edge-1", "services:\n  nothing: {}\n");
    let out = agent().args(["--once"]).env("HOSTS_DIR", tr.hosts()).env("NODE_NAME", "edge-1").env("HOMELAB_ROOT", tr.root()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: Vec<String> = crate::events(&tr.root()).into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"node_heartbeat".to_owned()) && kinds.contains(&"service_healthy".to_owned()), "{kinds:?}");
}

#[test]
fn bad_setups_say_what_to_do() {
    let tr = TempRoot::new();
    let hosts = tr.hosts();
    let hosts = hosts.to_str().unwrap();
    let root = tr.root();
    let root = root.to_str().unwrap();
    let cases: [(&str, Vec<&str>, &str); 5] = [
        ("no sink", vec!["--hosts", hosts, "--node", "edge-1"], "--root <DIR>|--control-plane <URL>"),
        ("both sinks", vec!["--hosts", hosts, "--node", "edge-1", "--root", root, "--control-plane", "http://x"], "cannot be used with"),
        ("no token", vec!["--hosts", hosts, "--node", "edge-1", "--control-plane", "http://127.0.0.1:9", "--once"], "AGENT_TOKEN"),
        ("a bad node name", vec!["--hosts", hosts, "--node", "Edge 1", "--root", root, "--once"], "NODE_NAME"),
        ("a bad interval", vec!["--hosts", hosts, "--node", "edge-1", "--root", root, "--check-interval", "soon"], "invalid duration"),
    ];
    for (situation, args, want) in cases {
        let out = agent().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{situation}: exit 0");
        assert!(stderr.contains(want), "{situation}: {stderr}");
    }
}
