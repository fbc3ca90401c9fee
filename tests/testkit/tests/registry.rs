//! The registry fixture against the real Docker engine: versioned images pushed to a real
//! `docker-registry` on 127.0.0.1, pulled back by tag, run, and the registry down and up again.

use std::process::Command;
use std::time::Duration;

use testkit::{AppBehaviour, ContainerOnDrop, PushedImage, Registry, free_port, http, wait_for};

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("run docker")
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker run -d -p 127.0.0.1:<free>:8080` of `image` as `name`.
fn run_app(image: &str, name: &str) -> (ContainerOnDrop, u16) {
    let port = free_port();
    let guard = ContainerOnDrop(name.to_owned());
    docker_ok(&["run", "-d", "--name", name, "-p", &format!("127.0.0.1:{port}:8080"), image]);
    (guard, port)
}

/// The first HTTP answer of the app to `GET path` (docker's proxy takes connections before the
/// app listens, and drops them: those are retried).
fn first_answer(port: u16, path: &str) -> (u16, String) {
    wait_for(&format!("an HTTP answer on port {port}"), Duration::from_secs(20), || http(port, "GET", path, &[], "").ok())
}

/// `(State.Status, State.ExitCode)` of a container.
fn state(name: &str) -> (String, i64) {
    let out = docker_ok(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name]);
    let (status, code) = out.trim().split_once(' ').unwrap();
    (status.to_owned(), code.parse().unwrap())
}

fn repo_digests(image: &str) -> Vec<String> {
    serde_json::from_str(&docker_ok(&["image", "inspect", "--format", "{{json .RepoDigests}}", image])).unwrap()
}

fn repull(image: &PushedImage) {
    docker_ok(&["rmi", &image.reference]);
    assert!(!docker(&["image", "inspect", &image.reference]).status.success(), "{} is still there after docker rmi", image.reference);
    docker_ok(&["pull", &image.reference]);
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image.reference]).trim(), image.image_id);
    assert!(repo_digests(&image.reference).contains(&image.by_digest()), "{} not in {:?}", image.by_digest(), repo_digests(&image.reference));
}

#[test]
fn versions_are_pushed_pulled_and_run_and_the_registry_goes_down_and_up() {
    let mut reg = Registry::start();
    let pid = std::process::id();
    let repo = format!("homelab-test/app-{pid}");
    let v1 = reg.push_app(&repo, "v1", AppBehaviour::Healthy);
    let v2 = reg.push_app(&repo, "v2", AppBehaviour::CheckFails);
    assert_eq!(v1.reference, format!("{}/{repo}:v1", reg.addr()));
    for v in [&v1, &v2] {
        assert!(v.digest.starts_with("sha256:") && v.digest.len() == 71, "digest {}", v.digest);
        assert!(v.image_id.starts_with("sha256:"), "image id {}", v.image_id);
        assert_eq!(reg.manifest_digest(&repo, &v.tag).as_deref(), Some(v.digest.as_str()));
    }
    assert_ne!(v1.digest, v2.digest);
    assert_ne!(v1.image_id, v2.image_id);
    assert_eq!(reg.manifest_digest(&repo, "v3"), None);

    repull(&v1);
    repull(&v2);

    let (c1, p1) = run_app(&v1.reference, &format!("homelab-registry-test-{pid}-v1"));
    assert_eq!(first_answer(p1, "/health"), (200, "ok v1\n".to_owned()));
    assert_eq!(first_answer(p1, "/version"), (200, "v1\n".to_owned()));
    let (c2, p2) = run_app(&v2.reference, &format!("homelab-registry-test-{pid}-v2"));
    assert_eq!(first_answer(p2, "/health").0, 404);
    assert_eq!(first_answer(p2, "/version"), (200, "v2\n".to_owned()));

    drop((c1, c2));

    // Down: a pull fails, and says why.
    reg.stop();
    assert!(!reg.is_running());
    let out = docker(&["pull", &v1.reference]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "docker pull worked with the registry down");
    assert!(err.contains("connection refused") && err.contains(&reg.addr()), "unclear error: {err}");

    // Up again, same port and storage: the pull works and finds the same digest.
    reg.restart();
    repull(&v1);
    assert_eq!(reg.manifest_digest(&repo, "v2").as_deref(), Some(v2.digest.as_str()));

    // The same tag pushed again moves to a new digest.
    let v1b = reg.push_app(&repo, "v1", AppBehaviour::Healthy);
    assert_ne!(v1b.digest, v1.digest);
    assert_eq!(reg.manifest_digest(&repo, "v1").as_deref(), Some(v1b.digest.as_str()));
    // Its log holds what it warned about, e.g. the unknown tag v3 asked for above.
    assert!(reg.log().contains("unknown tag=v3"), "registry log:\n{}", reg.log());
}

#[test]
fn behaviours_over_time() {
    let reg = Registry::start();
    let pid = std::process::id();
    let repo = format!("homelab-test/behaviours-{pid}");
    let name = |tag: &str| format!("homelab-registry-test-{pid}-{tag}");

    let exits = reg.push_app(&repo, "exits-at-start", AppBehaviour::ExitsAtStart);
    let fails_after = reg.push_app(&repo, "fails-after", AppBehaviour::FailsAfter(2));
    let exits_after = reg.push_app(&repo, "exits-after", AppBehaviour::ExitsAfter(2));

    let (_c, _) = run_app(&exits.reference, &name("exits-at-start"));
    let exited = wait_for("the app to exit at start", Duration::from_secs(20), || Some(state(&name("exits-at-start"))).filter(|(s, _)| s == "exited"));
    assert_eq!(exited.1, 1);

    let (_c, port) = run_app(&fails_after.reference, &name("fails-after"));
    assert_eq!(first_answer(port, "/health"), (200, "ok fails-after\n".to_owned()));
    wait_for("/health to go away", Duration::from_secs(20), || http(port, "GET", "/health", &[], "").ok().filter(|(s, _)| *s == 404));
    assert_eq!(state(&name("fails-after")).0, "running");
    assert_eq!(first_answer(port, "/version").0, 200);

    let (_c, port) = run_app(&exits_after.reference, &name("exits-after"));
    assert_eq!(first_answer(port, "/health"), (200, "ok exits-after\n".to_owned()));
    let exited = wait_for("the app to exit", Duration::from_secs(20), || Some(state(&name("exits-after"))).filter(|(s, _)| s == "exited"));
    assert_eq!(exited.1, 1);

    // docker stop is quick: the shell as PID 1 traps SIGTERM.
    let healthy = reg.push_app(&repo, "healthy", AppBehaviour::Healthy);
    let (_c, port) = run_app(&healthy.reference, &name("healthy"));
    assert_eq!(first_answer(port, "/health").0, 200);
    let started = std::time::Instant::now();
    docker_ok(&["stop", "--time", "30", &name("healthy")]);
    assert!(started.elapsed() < Duration::from_secs(5), "docker stop took {:?}", started.elapsed());
    assert_eq!(state(&name("healthy")), ("exited".to_owned(), 0));
}

#[test]
fn a_registry_with_auth_refuses_an_anonymous_pull() {
    let reg = Registry::start_with_auth();
    let repo = format!("homelab-test/private-{}", std::process::id());
    let image = reg.push_app(&repo, "v1", AppBehaviour::Healthy);
    docker_ok(&["rmi", &image.reference]);
    let out = docker(&["pull", &image.reference]);
    assert!(!out.status.success(), "an anonymous pull worked");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no basic auth credentials"), "unexpected error: {err}");
    assert_eq!(http(reg.port(), "GET", "/v2/", &[], "").unwrap().0, 401);
    // With the fixture's docker config (logged in), the pull works.
    let out = reg.docker().args(["pull", &image.reference]).output().unwrap();
    assert!(out.status.success(), "pull with credentials: {}", String::from_utf8_lossy(&out.stderr));
    assert!(repo_digests(&image.reference).contains(&image.by_digest()));
}
