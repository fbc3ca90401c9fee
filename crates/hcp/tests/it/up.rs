//! `hcp up`: every daemon in one process, end to end: a failing check becomes a pending action,
//! an approval gets it executed, the UI serves it all, and SIGTERM stops everything cleanly.

use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::{TempRoot, wait_for};

use crate::{hcp, text};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn up_runs_the_whole_loop_and_stops_on_sigterm() {
    let t = TempRoot::new();
    let (ui_port, agent_port, dead_port) = (free_port(), free_port(), free_port());
    t.write_host(
        "uptest",
        &format!(
            "services:\n  ui:\n    checks:\n      - tcp: {{ port: {ui_port} }}\n  web:\n    checks:\n      - tcp: {{ port: {dead_port}, timeout_secs: 1 }}\n"
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["up", "--root", t.root().to_str().unwrap(), "--hosts", t.hosts().to_str().unwrap()])
        .env("NODE_NAME", "uptest")
        .env("LISTEN", format!("127.0.0.1:{ui_port}"))
        .env("LISTEN_PORT", agent_port.to_string())
        .env("LISTEN_ADDR", "127.0.0.1")
        .env("CHECK_INTERVAL", "1s")
        .env("VERIFY_TIMEOUT", "0")
        .env_remove("UI_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let root = DataRoot::open(t.root()).unwrap();
    let id = "redeploy-uptest-web";
    let result = std::panic::catch_unwind(|| {
        wait_for("the pending redeploy", Duration::from_secs(60), || root.read_active(ActionState::Pending, id).ok().flatten());
        let out = hcp(&["actions", "--root", t.root().to_str().unwrap(), "approve", id]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        // No compose_dir: the executor runs it and fails it, saying why.
        let failed = wait_for("the action to end", Duration::from_secs(60), || {
            // The rename comes first, the content (history, result) right after it.
            root.list_actions(ActionState::Failed).ok()?.into_iter().find(|a| a.action.id == id && a.action.result.is_some())
        });
        let error = failed.action.result.as_ref().and_then(|r| r.error.clone()).unwrap_or_default();
        assert!(error.contains("no compose_dir"), "{}", serde_json::to_string_pretty(&failed.action).unwrap());
        // The UI of the same process answers, and the token file is where it said.
        let out = hcp(&["health", "--url", &format!("http://127.0.0.1:{ui_port}/summary")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(t.root().join("state/ui_token").exists());
    });
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = wait_for("hcp up to stop", Duration::from_secs(40), || child.try_wait().unwrap());
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    result.unwrap();
    assert!(status.success(), "{status:?}\n{stdout}");
    assert!(stdout.contains(&format!("UI         http://127.0.0.1:{ui_port}/")), "{stdout}");
    assert!(stdout.contains("state/ui_token"), "{stdout}");
    assert!(stdout.contains("agent      node uptest"), "{stdout}");
}

#[test]
fn up_with_a_port_in_use_fails_naming_the_ui() {
    let t = TempRoot::new();
    t.write_host("uptest", "services: {}\n");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcp"));
    cmd.args(["up", "--no-agent", "--root", t.root().to_str().unwrap(), "--hosts", t.hosts().to_str().unwrap()])
        .env("NODE_NAME", "uptest")
        .env("LISTEN", format!("127.0.0.1:{port}"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ui failed"), "{}", text(&out));
    drop(busy);
}
