//! `hcp up` on a data root that fills up for real (a 4 MiB tmpfs the test mounts: root only, as
//! in CI): every daemon keeps running, says so in its log, and once the disk has room again it
//! catches up by itself: world state has the events that landed before and while it was full,
//! the approved action runs, heartbeats are fresh and `last_write_error` is cleared. No file a
//! reader may open is ever partial.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homelab_core::{ActionState, Event};
use homelab_store::DataRoot;
use testkit::{TempRoot, Tmpfs, wait_for, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills `hcp up` if the test ends early.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The log without colour codes, so fields read `daemon=supervisor`.
fn plain(log: &Path) -> String {
    let raw = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every file below `dir` that a reader may open (no dot in front): none is partial.
fn assert_nothing_partial(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if !name.starts_with('.') && name.ends_with(".json") {
                let bytes = std::fs::read(e.path()).unwrap();
                assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(), "partial file visible: {} ({} bytes)", e.path().display(), bytes.len());
            }
        }
    }
}

fn service_in_world(root: &DataRoot, node: &str, service: &str) -> bool {
    root.read_world().ok().and_then(|(s, _)| s).is_some_and(|s| s.services.get(node).is_some_and(|m| m.contains_key(service)))
}

#[test]
fn hcp_up_survives_a_full_disk_and_catches_up_by_itself() {
    let t = TempRoot::new();
    let fs = Tmpfs::mount(&t.root(), "4m");
    let (ui_port, agent_port, dead_port) = (free_port(), free_port(), free_port());
    t.write_host(
        "dftest",
        &format!(
            "services:\n  ui:\n    checks:\n      - tcp: {{ port: {ui_port} }}\n  web:\n    checks:\n      - tcp: {{ port: {dead_port}, timeout_secs: 1 }}\n"
        ),
    );
    let log = t.path().join("hcp-up.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["up", "--root", t.root().to_str().unwrap(), "--hosts", t.hosts().to_str().unwrap()])
        .env("NODE_NAME", "dftest")
        .env("LISTEN", format!("127.0.0.1:{ui_port}"))
        .env("LISTEN_PORT", agent_port.to_string())
        .env("LISTEN_ADDR", "127.0.0.1")
        .env("CHECK_INTERVAL", "1s")
        .env("VERIFY_TIMEOUT", "0")
        .env("SUPERVISOR_TICK", "1s")
        .env("EXECUTOR_HEARTBEAT_INTERVAL", "1s")
        .env("RUST_LOG", "info,homelab_store::retry=debug")
        .env_remove("UI_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut up = KillOnDrop(Some(child));
    let root = DataRoot::open(t.root()).unwrap();
    let id = "redeploy-dftest-web";
    let mut alive = || up.0.as_mut().unwrap().try_wait().unwrap().is_none();

    // The loop works: the failing check became a pending action.
    wait_for("the pending redeploy", Duration::from_secs(60), || root.read_active(ActionState::Pending, id).ok().flatten());

    // Events that land before the disk fills.
    let before = Event::new(chrono::Utc::now(), "extnode", "service_healthy", Some("before-full"));
    root.write_event(&before).unwrap();
    // One more, written whole now and renamed into place once the disk is full (a rename needs
    // no room): it lands while nothing can be written.
    let during = Event::new(chrono::Utc::now(), "extnode", "service_healthy", Some("while-full"));
    let during_path = root.event_path(&during.day(), &during.file_name());
    std::fs::create_dir_all(during_path.parent().unwrap()).unwrap();
    let during_tmp = during_path.with_file_name(format!(".{}.staged", during.file_name()));
    std::fs::write(&during_tmp, serde_json::to_vec(&during).unwrap()).unwrap();

    let filler = t.root().join("filler");
    fs.fill(&filler);
    std::fs::rename(&during_tmp, &during_path).unwrap();
    // An operator approves with a plain rename (also valid while the disk is full).
    std::fs::rename(root.action_dir(ActionState::Pending).join(format!("{id}.json")), root.action_dir(ActionState::Approved).join(format!("{id}.json")))
        .unwrap();

    // Each daemon that writes says so once, and keeps running.
    for daemon in ["supervisor", "executor"] {
        wait_until(&format!("the {daemon} reporting the failed write"), Duration::from_secs(60), || {
            plain(&log).lines().any(|l| l.contains("write failed") && l.contains(&format!("daemon={daemon}")))
        });
    }
    wait_until("several retries", Duration::from_secs(60), || plain(&log).matches("write still failing").count() >= 6);
    assert!(alive(), "hcp up exited on a full disk (if only the observer failed, it still exits on write errors):\n{}", plain(&log));
    for daemon in ["supervisor", "executor"] {
        let lines = plain(&log).lines().filter(|l| l.contains("write failed") && l.contains(&format!("daemon={daemon}"))).count();
        assert!(lines <= 2, "{daemon}: one line per change of state, not one per retry ({lines}):\n{}", plain(&log));
    }
    assert_eq!(root.active_state(id), Some(ActionState::Approved), "not claimed while nothing can be written");
    assert_nothing_partial(&t.root());

    // Room again: everything catches up without a restart. (Heartbeat times are in whole ms.)
    let freed = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    std::fs::remove_file(&filler).unwrap();
    wait_until("world state with the events from before and while full", Duration::from_secs(60), || {
        service_in_world(&root, "extnode", "before-full") && service_in_world(&root, "extnode", "while-full")
    });
    let failed = wait_for("the approved action run and recorded", Duration::from_secs(60), || {
        root.list_actions(ActionState::Failed).ok()?.into_iter().find(|a| a.action.id == id && a.action.result.is_some())
    });
    assert!(failed.action.result.unwrap().error.unwrap_or_default().contains("no compose_dir"));
    // Fresh: written after the room came back (one written before the disk filled also says
    // no write error).
    let heartbeats = wait_for("fresh heartbeats with no write error in force", Duration::from_secs(60), || {
        let hbs = root.read_heartbeats().ok()?;
        let fresh = |d: &str| {
            hbs.get(d).is_some_and(|hb| {
                let at = hb["last_loop_at"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
                at.is_some_and(|at| at >= freed) && hb["extra"]["last_write_error"].is_null()
            })
        };
        (fresh("supervisor") && fresh("executor") && fresh("observer")).then_some(hbs)
    });
    for daemon in ["supervisor", "executor"] {
        assert!(heartbeats[daemon]["counters"]["write_errors"].as_u64() > Some(0), "{daemon}: {}", heartbeats[daemon]);
    }
    assert!(alive());
    assert_nothing_partial(&t.root());

    let mut child = up.0.take().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = wait_for("hcp up to stop", Duration::from_secs(40), || child.try_wait().unwrap());
    assert!(status.success(), "{status:?}\n{}", plain(&log));
    drop(fs);
}
