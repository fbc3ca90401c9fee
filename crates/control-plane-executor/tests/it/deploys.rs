//! Held generations against the real engine and docker-compose v1: a redeploy holds the
//! generation it replaces (images tagged `homelab-held/…`, files kept apart from the record),
//! writes the deploy history, keeps the last three, and a disk cleanup never removes a held image.

use std::path::Path;
use std::process::Command;

use homelab_core::ActionState;
use homelab_core::deploy::DeployOutcome;
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::*;

/// An image of this test process only: the test image's files, a label to prune by, and a
/// fresh id.
fn import_image(tag: &str, label: &str) -> String {
    let tmp = unique(&format!("export-{}", tag.replace([':', '/'], "-")));
    docker(&["create", "--name", &tmp, &image(), "true"]);
    let export = Command::new("docker").args(["export", &tmp]).output().unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &tmp]).output();
    assert!(export.status.success());
    let mut import = Command::new("docker")
        .args(["import", "--change", &format!("LABEL {label}"), "--change", r#"CMD ["sleep", "3600"]"#, "-", tag])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&export.stdout).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn image_exists(reference: &str) -> bool {
    Command::new("docker").args(["image", "inspect", reference]).output().unwrap().status.success()
}

/// A compose project (service `app`) whose env file carries a secret, brought up for real;
/// down, and its hold tags removed, when dropped.
struct Project {
    dir: tempfile::TempDir,
    project: String,
}

impl Project {
    fn up(image: &str, secret: &str) -> Project {
        let dir = tempfile::Builder::new().prefix(&format!("hxh{}", std::process::id())).tempdir().unwrap();
        let yaml = format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n    network_mode: none\n    environment:\n      - SECRET=${{SECRET}}\n"
        );
        std::fs::write(dir.path().join("docker-compose.yml"), yaml).unwrap();
        let project = control_plane_executor::docker::compose_project(dir.path().to_str().unwrap());
        let p = Project { dir, project };
        p.set_secret(secret);
        sh("docker-compose", &["up", "-d"], Some(p.dir.path()));
        p
    }

    fn set_secret(&self, secret: &str) {
        std::fs::write(self.dir.path().join(".env"), format!("SECRET={secret}\n")).unwrap();
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn hold_tags(&self) -> Vec<String> {
        let out = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &format!("homelab-held/{}-app", self.project)]);
        out.lines().map(str::to_owned).collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose").args(["down", "-t", "0", "-v"]).current_dir(self.dir.path()).output();
        for tag in self.hold_tags() {
            let _ = Command::new("docker").args(["rmi", &tag]).output();
        }
    }
}

fn redeploy(t: &TempRoot) -> homelab_core::Action {
    let action = approved(homelab_core::ActionType::Redeploy, "local", Some("web"));
    approve(&t.root(), &action);
    run_once(config(t.root(), t.hosts()));
    ended(&t.root(), &action.id, ActionState::Completed)
}

fn write_host(t: &TempRoot, p: &Project) {
    t.write_host(
        "local",
        &format!("compose_command: docker-compose\ndisk: {{ cleanup: {{ docker_prune: true }} }}\nservices:\n  web:\n    compose_dir: {}\n", p.path()),
    );
    crate::gate::world_up(&t.root(), "local");
}

#[test]
fn a_redeploy_holds_what_it_replaces_and_the_last_three_generations_stay_held() {
    let t = TempRoot::new();
    let p = Project::up(&image(), "hunter2-one");
    write_host(&t, &p);
    let root = DataRoot::open(t.root()).unwrap();

    let done = redeploy(&t);
    let output = &done.result.as_ref().unwrap().output;
    assert!(output.contains("held generation "), "{output}");
    let (generations, bad) = root.list_generations("local", "web").unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(generations.len(), 1, "the same images from the same files are one generation: {generations:#?}");
    let g = &generations[0];
    let test_image_id = docker(&["image", "inspect", "--format", "{{.Id}}", &image()]);
    assert_eq!(g.project, p.project);
    assert_eq!(g.containers.len(), 1);
    let c = &g.containers[0];
    assert_eq!((c.compose_service.as_str(), c.image.as_str(), c.image_id.as_str()), ("app", image().as_str(), test_image_id.as_str()));
    assert!(image_exists(&c.hold_tag), "{} is tagged", c.hold_tag);
    let files: Vec<String> = g.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(files, [format!("{}/docker-compose.yml", p.path()), format!("{}/.env", p.path())]);
    // The env file's content is kept for a rollback, apart from the record people are shown.
    let contents = root.read_held_contents("local", "web", &g.id).unwrap().unwrap();
    assert_eq!(contents.files[&format!("{}/.env", p.path())], "SECRET=hunter2-one\n");
    let shown = std::fs::read_to_string(t.root().join(format!("state/deploys/local/web/generations/{}.json", g.id))).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");

    let history = root.read_deploy_history("local", "web").unwrap();
    assert_eq!(history.records.len(), 1);
    let r = &history.records[0];
    assert_eq!((r.outcome, r.held.as_str(), r.approved_by.as_deref()), (DeployOutcome::Done, g.id.as_str(), Some("cli:test")));
    assert_eq!(r.images_after.as_deref(), Some(r.images_before.as_str()));

    // Three more redeploys, each after an edit of the env file: each makes a new generation;
    // the first is released (record, content and tag), the last three stay held.
    let first = g.clone();
    for secret in ["hunter2-two", "hunter2-three", "hunter2-four"] {
        p.set_secret(secret);
        redeploy(&t);
    }
    let (generations, _) = root.list_generations("local", "web").unwrap();
    assert_eq!(generations.len(), 3, "{generations:#?}");
    assert!(!generations.iter().any(|g| g.id == first.id));
    assert!(!image_exists(&first.containers[0].hold_tag), "the released generation's tag is gone");
    assert_eq!(root.read_held_contents("local", "web", &first.id).unwrap(), None);
    for g in &generations {
        assert!(image_exists(&g.containers[0].hold_tag), "{} is held", g.containers[0].hold_tag);
    }
    let newest = root.read_held_contents("local", "web", &generations[2].id).unwrap().unwrap();
    assert_eq!(newest.files[&format!("{}/.env", p.path())], "SECRET=hunter2-four\n");
    let history = root.read_deploy_history("local", "web").unwrap();
    assert_eq!(history.records.len(), 4);
    assert!(history.records.iter().all(|r| r.outcome == DeployOutcome::Done), "{history:#?}");
    assert_eq!(p.hold_tags().len(), 3, "{:?}", p.hold_tags());
}

#[test]
fn a_disk_cleanup_never_removes_a_held_image() {
    let t = TempRoot::new();
    let label = format!("hx.test={}", unique("held"));
    let repo = format!("{}/app:latest", unique("held"));
    let held_id = import_image(&repo, &label);
    let p = Project::up(&repo, "s3cret");
    write_host(&t, &p);
    redeploy(&t);
    let root = DataRoot::open(t.root()).unwrap();
    let (generations, _) = root.list_generations("local", "web").unwrap();
    assert_eq!(generations[0].containers[0].image_id, held_id);

    // The tag moves on to a newer image and the project is taken down: the old image is used
    // by nothing and named only by its hold tag. Beside it, one with no tag at all.
    let newer = import_image(&repo, &label);
    let other = format!("{}/other:x", unique("held"));
    let unheld = import_image(&other, &label);
    let other_newer = import_image(&other, &label);
    let _ = Command::new("docker-compose").args(["down", "-t", "0"]).current_dir(Path::new(p.path())).output();

    let cleanup = approved(homelab_core::ActionType::DiskCleanup, "local", None);
    approve(&t.root(), &cleanup);
    let mut cfg = config(t.root(), t.hosts());
    // Only this test's images: other tests on this engine keep theirs.
    cfg.prune_label = Some(label);
    run_once(cfg);
    ended(&t.root(), &cleanup.id, ActionState::Completed);

    assert!(!image_exists(&unheld), "the cleanup did prune: the image nothing names any more is gone");
    assert!(image_exists(&held_id), "the held image survived the cleanup");
    assert!(image_exists(&newer));
    let _ = Command::new("docker").args(["rmi", "-f", &repo, &held_id, &newer, &other, &other_newer]).output();
}
