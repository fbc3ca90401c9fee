//! README command 1, without a person: `scripts/quickstart.sh` with QUICKSTART_AUTO_APPROVE=1
//! builds the example's image locally (no registry), runs the control plane, approves the
//! proposed redeploy and ends once it completed and was verified; `--clean` then removes the
//! container and the data. Own ports, folder and container name, so it runs beside others.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::{free_port, wait_for};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/quickstart.sh")
}

fn container_exists(name: &str) -> bool {
    let out = Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l == name)
}

#[test]
fn quickstart_ends_with_the_redeploy_completed_and_verified_then_clean_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("qs");
    let name = format!("qs-test-{}", std::process::id());
    let container = format!("{name}-web");
    let (ui, agent, web) = (free_port(), free_port(), free_port());
    let env = |cmd: &mut Command| {
        cmd.env("QUICKSTART_DIR", &work)
            .env("QUICKSTART_NAME", &name)
            .env("QUICKSTART_HCP", env!("CARGO_BIN_EXE_hcp"))
            .env("QUICKSTART_WEB_PORT", web.to_string())
            .env("LISTEN", format!("127.0.0.1:{ui}"))
            .env("LISTEN_PORT", agent.to_string())
            .env("CHECK_INTERVAL", "1s")
            .env("RUST_LOG", "warn")
            .env("QUICKSTART_KEEP_IMAGE", "1")
            .env_remove("UI_TOKEN")
            .env_remove("HOMELAB_ROOT")
            .env_remove("HOSTS_DIR")
            .env_remove("LISTEN_ADDR");
    };
    let mut cmd = Command::new("bash");
    cmd.arg(script()).env("QUICKSTART_AUTO_APPROVE", "1").env("QUICKSTART_EXIT_WHEN_VERIFIED", "1").stdout(Stdio::piped()).stderr(Stdio::piped());
    env(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    // Ends by itself once verified; past the deadline it is stopped (and cleaned) and fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
            wait_for("the quickstart to stop after SIGTERM", Duration::from_secs(60), || child.try_wait().unwrap());
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for r in readers {
        r.join().unwrap();
    }
    let output: Vec<String> = rx.iter().collect();
    let output = output.join("\n");
    // Whatever happened, leave nothing behind.
    let cleanup = || {
        let mut clean = Command::new("bash");
        clean.arg(script()).arg("--clean");
        env(&mut clean);
        clean.output().unwrap()
    };
    let verified = output.contains("redeploy-laptop-web completed and verified");
    if !verified || !status.is_some_and(|s| s.success()) {
        let out = cleanup();
        panic!("status {status:?}\n{output}\n--- clean:\n{}", crate::text(&out));
    }
    // The data root says the same as the terminal.
    let root = DataRoot::open(work.join("root")).unwrap();
    let done = root.list_actions(ActionState::Completed).unwrap();
    let action = done.iter().find(|a| a.action.id == "redeploy-laptop-web").expect("completed action");
    let result = action.action.result.as_ref().unwrap();
    assert!(result.ok && result.verified == Some(true), "{}", serde_json::to_string_pretty(&action.action).unwrap());
    assert!(action.action.history.iter().any(|h| h.by.starts_with("cli:")), "approved from the command line");
    assert!(container_exists(&container), "{output}");
    // No ANSI colour in output that is not a terminal; the stop message names --clean.
    assert!(!output.contains('\u{1b}'), "{output}");
    assert!(output.contains("scripts/quickstart.sh --clean"), "{output}");
    // The web service answers.
    let (code, body) = testkit::http(web, "GET", "/", &[], "").unwrap();
    assert_eq!((code, body.trim()), (200, "hello from the quickstart"));

    let out = cleanup();
    assert!(out.status.success(), "{}", crate::text(&out));
    assert!(crate::text(&out).contains(&format!("removed container {container}")), "{}", crate::text(&out));
    assert!(!container_exists(&container));
    assert!(!work.exists());
}
