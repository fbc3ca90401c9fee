//! Container restart, compose redeploy and prune against the local Docker engine.

use homelab_core::{ActionState, ActionType};
use testkit::TempRoot;

use crate::*;

#[test]
fn stopped_container_is_restarted() {
    let t = TempRoot::new();
    let name = unique("stopped");
    let _guard = Containers(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, "--network", "none", &image(), "sleep", "3600"]);
    docker(&["kill", &name]);
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "false");

    t.write_host("local", &format!("services:\n  app:\n    containers: [{name}]\n"));
    let action = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &action);
    run_once(config(t.root(), t.hosts()));

    let done = ended(&t.root(), &action.id, ActionState::Completed);
    let result = done.result.expect("result");
    assert!(result.ok && result.output.contains(&format!("restarted {name}")), "{result:?}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "true");
    let by: Vec<(ActionState, &str)> = done.history.iter().map(|h| (h.state, h.by.as_str())).collect();
    assert_eq!(&by[2..], [(ActionState::Running, "executor"), (ActionState::Completed, "executor")]);
    let running =
        std::fs::read_dir(t.root().join("actions/running")).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.')).count();
    assert_eq!(running, 0);
}

#[test]
fn restart_of_a_missing_container_fails_naming_it() {
    let t = TempRoot::new();
    let missing = unique("no-such-container");
    t.write_host("local", &format!("services:\n  app:\n    containers: [{missing}]\n"));
    let action = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &action);
    run_once(config(t.root(), t.hosts()));

    let done = ended(&t.root(), &action.id, ActionState::Failed);
    let error = done.result.unwrap().error.unwrap();
    assert!(error.contains(&missing) && error.contains("not found"), "{error}");
    assert_eq!(done.history.last().unwrap().note.as_deref(), Some(error.as_str()));
}

#[test]
fn compose_project_is_redeployed_with_docker_compose_v1() {
    let t = TempRoot::new();
    let project = ComposeProject::up();
    let before = project.container_id();

    t.write_host("local", &format!("compose_command: docker-compose\nservices:\n  app:\n    compose_dir: {}\n", project.path()));
    let action = approved(ActionType::Redeploy, "local", Some("app"));
    approve(&t.root(), &action);
    crate::gate::world_up(&t.root(), "local");
    run_once(config(t.root(), t.hosts()));

    let done = ended(&t.root(), &action.id, ActionState::Completed);
    let result = done.result.unwrap();
    assert_eq!(result.exit_status, Some(0), "{result:?}");
    let after = project.container_id();
    assert_ne!(before, after, "the container was recreated");
    assert!(result.output.to_lowercase().contains("recreat"), "compose output kept: {}", result.output);
}

#[test]
fn container_restart_finds_compose_containers_by_labels() {
    let t = TempRoot::new();
    let project = ComposeProject::up();
    let id = project.container_id();
    docker(&["kill", &id]);

    t.write_host("local", &format!("services:\n  app:\n    compose_dir: {}\n", project.path()));
    let action = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &action);
    run_once(config(t.root(), t.hosts()));

    let done = ended(&t.root(), &action.id, ActionState::Completed);
    assert!(done.result.unwrap().output.contains(&format!("com.docker.compose.project={}", project.project)));
    assert_eq!(project.container_id(), id, "restarted in place, not recreated");
}

#[test]
fn disk_cleanup_prunes_and_records_bytes_reclaimed() {
    let t = TempRoot::new();
    let label = unique("prune");
    let name = unique("prunable");
    let _guard = Containers(vec![name.clone()]);
    // A stopped container holding 2 MiB in its writable layer.
    docker(&["run", "--name", &name, "--label", &label, "--network", "none", &image(), "dd", "if=/dev/zero", "of=/blob", "bs=1048576", "count=2"]);

    t.write_host("local", "disk: { cleanup: { docker_prune: true } }\nservices: {}\n");
    let action = approved(ActionType::DiskCleanup, "local", None);
    approve(&t.root(), &action);
    crate::gate::world_up(&t.root(), "local");
    let mut cfg = config(t.root(), t.hosts());
    // Only this test's objects: other tests on this engine keep their stopped containers.
    cfg.prune_label = Some(label);
    run_once(cfg);

    let done = ended(&t.root(), &action.id, ActionState::Completed);
    let result = done.result.unwrap();
    assert!(result.bytes_reclaimed.unwrap() >= 2 * 1024 * 1024, "{result:?}");
    let gone = std::process::Command::new("docker").args(["inspect", &name]).output().unwrap();
    assert!(!gone.status.success(), "the stopped container was pruned");
}

#[test]
fn disk_cleanup_without_permission_prunes_nothing() {
    let t = TempRoot::new();
    t.write_host("local", "services: {}\n");
    let action = approved(ActionType::DiskCleanup, "local", None);
    approve(&t.root(), &action);
    crate::gate::world_up(&t.root(), "local");
    run_once(config(t.root(), t.hosts()));
    let done = ended(&t.root(), &action.id, ActionState::Failed);
    assert!(done.result.unwrap().error.unwrap().contains("docker_prune is not enabled"));
}

#[test]
fn dry_run_records_and_touches_nothing() {
    let t = TempRoot::new();
    let name = unique("dry");
    let _guard = Containers(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, "--network", "none", &image(), "sleep", "3600"]);
    docker(&["kill", &name]);
    t.write_host("local", &format!("services:\n  app:\n    containers: [{name}]\n"));
    let action = approved(ActionType::ContainerRestart, "local", Some("app"));
    approve(&t.root(), &action);
    let mut cfg = config(t.root(), t.hosts());
    cfg.dry_run = true;
    run_once(cfg);

    let result = ended(&t.root(), &action.id, ActionState::Completed).result.unwrap();
    assert!(result.dry_run && result.output.contains(&format!("would restart containers {name}")), "{result:?}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "false", "dry run touched nothing");
}
