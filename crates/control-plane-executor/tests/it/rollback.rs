//! Redeploys that make things worse are undone by themselves, against a real registry on
//! 127.0.0.1, the real engine and docker-compose v1: the new image exits at start, the verify
//! window sees it, the project is recreated from the held generation (its files, its images by
//! hold tag), watched again, and the action ends failed with `rolled_back_to`.

use std::process::Command;

use homelab_core::ActionState;
use homelab_core::deploy::DeployOutcome;
use homelab_store::DataRoot;
use testkit::{AppBehaviour, Registry, TempRoot};

use crate::*;

/// A compose project of one service `app` on `image`, with an env file holding a secret; down
/// (and its hold tags removed) when dropped.
struct Project {
    dir: tempfile::TempDir,
    project: String,
}

impl Project {
    fn up(image: &str) -> Project {
        let dir = tempfile::Builder::new().prefix(&format!("hxr{}", std::process::id())).tempdir().unwrap();
        let p = Project { project: control_plane_executor::docker::compose_project(dir.path().to_str().unwrap()), dir };
        p.set_image(image, false);
        std::fs::write(p.dir.path().join(".env"), "APP_SECRET=correct-horse-battery\n").unwrap();
        sh("docker-compose", &["up", "-d"], Some(p.dir.path()));
        p
    }

    /// The compose file names `image`; with `leak_secret` the service starts by printing the
    /// env file's secret and exits (a broken config), else it runs the image's own command.
    fn set_image(&self, image: &str, leak_secret: bool) {
        let entrypoint = if leak_secret {
            "    entrypoint: [\"/bin/sh\", \"-c\", \"echo starting with $$APP_SECRET >&2; echo 'app: exits at start' >&2; exit 1\"]\n"
        } else {
            ""
        };
        let yaml = format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    network_mode: none\n    environment:\n      - APP_SECRET=${{APP_SECRET}}\n{entrypoint}"
        );
        std::fs::write(self.dir.path().join("docker-compose.yml"), yaml).unwrap();
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// The image id the service's (one) container runs, and whether it runs.
    fn running(&self) -> (String, bool) {
        let ids = docker(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", self.project)]);
        let ids: Vec<&str> = ids.lines().collect();
        assert_eq!(ids.len(), 1, "one container of the project: {ids:?}");
        let out = docker(&["inspect", "--format", "{{.Image}} {{.State.Running}}", ids[0]]);
        let (image, running) = out.split_once(' ').unwrap();
        (image.to_owned(), running == "true")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose").args(["down", "-t", "0", "-v"]).current_dir(self.dir.path()).output();
        let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &format!("homelab-held/{}-app", self.project)]);
        for tag in tags.lines() {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

fn redeploy(t: &TempRoot, want: ActionState) -> homelab_core::Action {
    redeploy_on(t, "local", want)
}

fn redeploy_on(t: &TempRoot, node: &str, want: ActionState) -> homelab_core::Action {
    let action = approved(homelab_core::ActionType::Redeploy, node, Some("web"));
    approve(&t.root(), &action);
    let mut cfg = config(t.root(), t.hosts());
    cfg.verify_timeout = std::time::Duration::from_secs(120);
    run_once(cfg);
    ended(&t.root(), &action.id, want)
}

#[test]
fn a_redeploy_whose_new_image_exits_is_rolled_back_to_the_held_generation() {
    let registry = Registry::start();
    let v1 = registry.push_app("rollback/app", "v1", AppBehaviour::Healthy);
    let v3 = registry.push_app("rollback/app", "v3", AppBehaviour::ExitsAtStart);
    // Only the registry has them: compose pulls for real.
    registry.remove_local_images();
    let t = TempRoot::new();
    let p = Project::up(&v1.reference);
    t.write_host("local", &format!("compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: 5s\n", p.path()));
    crate::gate::world_up(&t.root(), "local");
    let root = DataRoot::open(t.root()).unwrap();

    // A redeploy that changes nothing holds up over its window: verified.
    let first = redeploy(&t, ActionState::Completed);
    assert_eq!(first.result.as_ref().unwrap().verified, Some(true), "{:?}", first.result);
    let (generations, _) = root.list_generations("local", "web").unwrap();
    assert_eq!(generations.len(), 1);
    let good = generations[0].clone();
    assert_eq!(good.containers[0].image_id, v1.image_id);

    // The compose file now names v3, which exits at start, after printing the env file's secret.
    p.set_image(&v3.reference, true);
    let failed = redeploy(&t, ActionState::Failed);
    let r = failed.result.unwrap();
    assert_eq!(r.rolled_back_to.as_deref(), Some(good.id.as_str()), "{r:#?}");
    let error = r.error.unwrap();
    assert!(error.starts_with("redeploy of local/web failed its checks: container "), "{error}");
    assert!(error.contains("exited with code 1") && error.ends_with(&format!("rolled back to generation {}; healthy again", good.id)), "{error}");
    let evidence = r.evidence.unwrap();
    assert!(evidence.contains("log lines of") && evidence.contains("app: exits at start"), "{evidence}");
    assert!(evidence.contains("starting with ***") && !evidence.contains("correct-horse-battery"), "the env file's secret is masked: {evidence}");
    // Back on v1 (by its hold tag), running.
    let (image, running) = p.running();
    assert_eq!((image.as_str(), running), (v1.image_id.as_str(), true));
    let history = root.read_deploy_history("local", "web").unwrap();
    let last = history.records.last().unwrap();
    assert_eq!((last.outcome, last.rolled_back_to.as_deref()), (DeployOutcome::RolledBack, Some(good.id.as_str())));
    assert_eq!(history.records[0].outcome, DeployOutcome::Verified);
}

#[test]
fn with_rollback_off_a_failed_redeploy_is_left_as_it_is_and_says_so() {
    let registry = Registry::start();
    let v1 = registry.push_app("norollback/app", "v1", AppBehaviour::Healthy);
    let v3 = registry.push_app("norollback/app", "v3", AppBehaviour::ExitsAtStart);
    let t = TempRoot::new();
    let p = Project::up(&v1.reference);
    t.write_host(
        "local",
        &format!("compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: 5s\n    rollback: false\n", p.path()),
    );
    crate::gate::world_up(&t.root(), "local");
    p.set_image(&v3.reference, false);
    let failed = redeploy(&t, ActionState::Failed);
    let r = failed.result.unwrap();
    assert_eq!(r.rolled_back_to, None);
    assert!(r.error.as_deref().unwrap().ends_with("not rolled back (rollback: false)"), "{r:#?}");
    let (image, running) = p.running();
    assert_eq!((image.as_str(), running), (v3.image_id.as_str(), false));
}

#[test]
fn an_operator_rolls_back_to_an_earlier_generation_through_a_pending_action() {
    let registry = Registry::start();
    let v1 = registry.push_app("manual/app", "v1", AppBehaviour::Healthy);
    let v5 = registry.push_app("manual/app", "v5", AppBehaviour::Healthy);
    let t = TempRoot::new();
    let p = Project::up(&v1.reference);
    t.write_host("local", &format!("compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: 5s\n", p.path()));
    crate::gate::world_up(&t.root(), "local");
    let root = DataRoot::open(t.root()).unwrap();

    // v1 → v5, verified: two generations held (v1 before, v5 after).
    p.set_image(&v5.reference, false);
    let done = redeploy(&t, ActionState::Completed);
    assert_eq!(done.result.unwrap().verified, Some(true));
    assert_eq!(p.running(), (v5.image_id.clone(), true));
    let (generations, _) = root.list_generations("local", "web").unwrap();
    let on_v1 = generations.iter().find(|g| g.containers[0].image_id == v1.image_id).expect("v1 is held").clone();

    // The operator proposes going back to v1; it waits for approval like any guarded action.
    let ops = homelab_ops::Ops::new(root.clone());
    let actor = homelab_ops::Actor::cli("cli:test");
    let (node, service) = (homelab_core::NodeName::parse("local").unwrap(), homelab_core::ServiceName::parse("web").unwrap());
    let proposed = ops.propose_rollback(&actor, &node, &service, &on_v1.id, Some("v5 is slower")).unwrap();
    assert_eq!(proposed.state, ActionState::Pending);
    ops.decide(&actor, &homelab_core::ActionId::parse(&proposed.id).unwrap(), homelab_ops::Decision::APPROVE).unwrap();
    let mut cfg = config(t.root(), t.hosts());
    cfg.verify_timeout = std::time::Duration::from_secs(120);
    run_once(cfg);

    let back = ended(&t.root(), &proposed.id, ActionState::Completed);
    let r = back.result.unwrap();
    assert_eq!(r.verified, Some(true), "{r:#?}");
    assert!(r.output.contains(&format!("rolling back local/web to generation {}", on_v1.id)), "{}", r.output);
    assert_eq!(p.running(), (v1.image_id.clone(), true), "back on v1");
    let last = root.read_deploy_history("local", "web").unwrap().records.pop().unwrap();
    assert_eq!((last.kind, last.outcome, last.approved_by.as_deref()), (homelab_core::ActionType::Rollback, DeployOutcome::Verified, Some("cli:test")));
}

/// Starts `program` with `args`, killed when dropped.
fn daemon(program: &str, args: &[&str]) -> testkit::KillOnDrop {
    let child = Command::new(testkit::workspace_bin(program))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    testkit::KillOnDrop(child)
}

#[test]
fn a_redeploy_whose_http_check_fails_is_judged_by_the_agent_and_rolled_back() {
    let registry = Registry::start();
    let v1 = registry.push_app("checked/app", "v1", AppBehaviour::Healthy);
    let v2 = registry.push_app("checked/app", "v2", AppBehaviour::CheckFails);
    let v4 = registry.push_app("checked/app", "v4", AppBehaviour::FailsAfter(10));
    let t = TempRoot::new();
    let port = testkit::free_port();
    let dir = tempfile::Builder::new().prefix(&format!("hxr{}", std::process::id())).tempdir().unwrap();
    let compose = |image: &str| format!("version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    ports: [\"127.0.0.1:{port}:8080\"]\n");
    std::fs::write(dir.path().join("docker-compose.yml"), compose(&v1.reference)).unwrap();
    let p = Project { project: control_plane_executor::docker::compose_project(dir.path().to_str().unwrap()), dir };
    sh("docker-compose", &["up", "-d"], Some(p.dir.path()));
    t.write_host(
        "local",
        &format!(
            "compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: 15s\n    checks:\n      - http: {{ url: \"http://127.0.0.1:{port}/health\", timeout_secs: 2 }}\n",
            p.path()
        ),
    );
    let (root_s, hosts_s) = (t.root().display().to_string(), t.hosts().display().to_string());
    // The real agent (checks every second, writes events into the data root) and observer.
    let _observer = daemon("control-plane-observer", &["--root", &root_s, "--hosts", &hosts_s]);
    let spool = t.path().join("spool");
    let _agent = daemon(
        "node-agent",
        &[
            "--node",
            "local",
            "--hosts",
            &hosts_s,
            "--root",
            &root_s,
            "--spool-dir",
            spool.to_str().unwrap(),
            "--check-interval",
            "1s",
            "--listen-port",
            &testkit::free_port().to_string(),
            "--listen-addr",
            "127.0.0.1",
        ],
    );
    let root = DataRoot::open(t.root()).unwrap();
    testkit::wait_until("the agent reports local/web healthy", std::time::Duration::from_secs(60), || {
        root.read_services()
            .ok()
            .flatten()
            .and_then(|s| s.services.get("local")?.get("web").cloned())
            .is_some_and(|s| s.status == homelab_core::ServiceStatus::Healthy)
    });

    // v2 runs, but its /health answers 404: the agent's check fails, the window sees it.
    std::fs::write(p.dir.path().join("docker-compose.yml"), compose(&v2.reference)).unwrap();
    let failed = redeploy(&t, ActionState::Failed);
    let r = failed.result.unwrap();
    let error = r.error.unwrap();
    assert!(error.starts_with("redeploy of local/web failed its checks: its checks fail (http_check_failed: GET http://127.0.0.1:"), "{error}");
    assert!(error.contains("/health answered 404"), "{error}");
    assert!(error.contains("rolled back to generation") && error.ends_with("healthy again"), "{error}");
    assert!(r.rolled_back_to.is_some());
    assert_eq!(p.running(), (v1.image_id.clone(), true), "back on v1");
    let (status, body) = testkit::http(port, "GET", "/health", &[], "").unwrap();
    assert_eq!((status, body.trim()), (200, "ok v1"));

    // v4 answers for 10 s, then its /health goes: still inside the 15 s window, so it is caught
    // (an exit-code or first-answer check would have passed it).
    std::fs::write(p.dir.path().join("docker-compose.yml"), compose(&v4.reference)).unwrap();
    let r = redeploy(&t, ActionState::Failed).result.unwrap();
    let error = r.error.unwrap();
    assert!(error.contains("its checks fail (http_check_failed") && error.ends_with("healthy again"), "{error}");
    assert_eq!(p.running(), (v1.image_id.clone(), true), "back on v1 again");
}

#[test]
fn over_ssh_a_redeploy_whose_new_image_exits_is_rolled_back_too() {
    let sshd = crate::ssh::Sshd::start();
    let registry = Registry::start();
    let v1 = registry.push_app("remote/app", "v1", AppBehaviour::Healthy);
    let v3 = registry.push_app("remote/app", "v3", AppBehaviour::ExitsAtStart);
    let t = TempRoot::new();
    let p = Project::up(&v1.reference);
    t.write_host(
        "remote",
        &format!("{}compose_command: docker-compose\nservices:\n  web:\n    compose_dir: {}\n    verify_window: 5s\n", sshd.ssh_yaml(), p.path()),
    );
    crate::gate::world_up(&t.root(), "remote");
    let root = DataRoot::open(t.root()).unwrap();

    // Held over SSH: the files are read on the node, the images tagged through the forwarded socket.
    assert_eq!(redeploy_on(&t, "remote", ActionState::Completed).result.unwrap().verified, Some(true));
    let (generations, _) = root.list_generations("remote", "web").unwrap();
    let good = generations.last().unwrap().clone();
    let held = root.read_held_contents("remote", "web", &good.id).unwrap().unwrap();
    assert_eq!(held.files[&format!("{}/.env", p.path())], "APP_SECRET=correct-horse-battery\n");

    p.set_image(&v3.reference, true);
    let r = redeploy_on(&t, "remote", ActionState::Failed).result.unwrap();
    assert_eq!(r.rolled_back_to.as_deref(), Some(good.id.as_str()), "{r:#?}");
    assert!(r.error.as_deref().unwrap().ends_with("healthy again"), "{r:#?}");
    assert_eq!(p.running(), (v1.image_id.clone(), true), "back on v1, over SSH");
}
