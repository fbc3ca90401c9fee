//! Compose failures and timeouts, with a stand-in `docker-compose` first on PATH of the executor
//! binary: the exit status, the error naming what failed, and the output kept.

use homelab_core::ActionState;
use testkit::TempRoot;

use crate::crash::{executor, fake_compose};
use crate::*;

fn redeploy_with(body: &str, timeout: &str, env: &[(&str, &str)]) -> homelab_core::action::ActionResult {
    let t = TempRoot::new();
    let (_bin, path_env) = fake_compose(body);
    let action = crate::crash::approved_local_redeploy(&t);
    let status = executor(&t, &path_env, true).env("ACTION_TIMEOUT", timeout).envs(env.iter().copied()).status().unwrap();
    assert!(status.success());
    ended(&t.root(), &action.id, ActionState::Failed).result.unwrap()
}

#[test]
fn compose_error_is_named_with_its_exit_status_and_output() {
    let r = redeploy_with("echo \"pulling app\"\necho 'ERROR: manifest for app:latest not found' >&2\nexit 1", "60s", &[]);
    assert_eq!(r.exit_status, Some(1));
    let error = r.error.unwrap();
    assert!(
        error.contains("docker-compose up -d --force-recreate") && error.contains("exit status 1") && error.contains("manifest for app:latest not found"),
        "{error}"
    );
    assert!(r.output.contains("pulling app") && r.output.contains("ERROR: manifest"), "{}", r.output);
}

#[test]
fn an_action_past_its_timeout_is_stopped_and_keeps_its_output() {
    let r = redeploy_with("echo 'recreating app'\nexec sleep 600", "1s", &[]);
    assert!(r.error.as_deref().unwrap().contains("timed out after 1s"), "{r:?}");
    assert!(r.output.contains("recreating app"), "{}", r.output);
}

#[test]
fn a_missing_docker_engine_is_said_plainly_and_compose_never_runs() {
    let traceback = "echo 'Traceback (most recent call last):'\necho '  File \"/usr/bin/docker-compose\", line 33'\necho 'docker.errors.DockerException: Error while fetching server API version' >&2\nexit 1";
    let r = redeploy_with(traceback, "60s", &[("DOCKER_SOCKET", "/nonexistent/docker.sock")]);
    // Said before compose runs: the generation to roll back to cannot be held, so nothing is changed.
    let error = r.error.unwrap();
    assert!(error.starts_with("the Docker engine of node local is not reachable") && error.ends_with("nothing was changed"), "{error}");
    assert!(!r.output.contains("DockerException"), "compose must not have run: {}", r.output);
}
