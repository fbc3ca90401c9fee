//! The compose deployment on the real Docker engine, without any registry: an image made with
//! `docker import` from a root filesystem holding the workspace's binaries and the shared
//! libraries `ldd` lists, the real `compose/docker-compose.yml` with a small override pointing
//! at it, and then: four containers up and healthy, running as UID 1000, and the UI answering
//! `/summary`.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::{TempRoot, wait_for, workspace_bin};

const DAEMONS: [&str; 4] = ["control-plane-observer", "control-plane-supervisor", "control-plane-executor", "control-plane-ui"];

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", crate::text(&out));
    out
}

/// The shared libraries a binary needs, as absolute paths (the loader included).
fn libraries(bin: &Path) -> BTreeSet<PathBuf> {
    let out = run(Command::new("ldd").arg(bin));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from)).collect()
}

/// Builds `tag` from a root filesystem with the binaries in /usr/local/bin.
fn import_image(work: &Path, tag: &str) {
    let rootfs = work.join("rootfs");
    let bin_dir = rootfs.join("usr/local/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let mut libs = BTreeSet::new();
    for name in DAEMONS.iter().copied().chain(["hcp"]) {
        let bin = if name == "hcp" { PathBuf::from(env!("CARGO_BIN_EXE_hcp")) } else { workspace_bin(name) };
        std::fs::copy(&bin, bin_dir.join(name)).unwrap();
        libs.extend(libraries(&bin));
    }
    for lib in libs {
        // Copy the file the link points at, under the link's own path.
        let dest = rootfs.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &dest).unwrap();
    }
    for dir in ["tmp", "etc", "opt/homelab", "etc/homelab/hosts"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/false\nhomelab:x:1000:1000:homelab:/tmp:/bin/false\n").unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nhomelab:x:1000:\n").unwrap();
    let tar = work.join("rootfs.tar");
    run(Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg("."));
    run(Command::new("docker").args(["import", "--change", "ENV PATH=/usr/local/bin", "--change", "ENV HOMELAB_ROOT=/opt/homelab"]).arg(&tar).arg(tag));
}

fn compose_cmd() -> Vec<String> {
    let v2 = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if v2 { vec!["docker".into(), "compose".into()] } else { vec!["docker-compose".into()] }
}

/// Tears the project down even when an assertion fails.
struct Deployment {
    compose: Vec<String>,
    dir: PathBuf,
    project: String,
}

/// Removes the test image at the end, even when an assertion fails.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["image", "rm", "-f", &self.0]).output();
    }
}

impl Deployment {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.compose[0]);
        c.args(&self.compose[1..])
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(self.dir.join("docker-compose.yml"))
            .arg("-f")
            .arg(self.dir.join("override.yml"))
            .args(args)
            .current_dir(&self.dir);
        c
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.cmd(&["down", "--timeout", "5"]).output();
    }
}

fn container(project: &str, service: &str) -> String {
    let out = run(Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"))
        .arg("--filter")
        .arg(format!("label=com.docker.compose.service={service}")));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn inspect(id: &str, format: &str) -> String {
    let out = run(Command::new("docker").args(["inspect", "-f", format, id]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Without a path prefix and behind one (`BASE_PATH=/homelab`): the compose file's own UI
/// healthcheck (`hcp health --ui`) must find the UI healthy either way.
#[test]
fn the_compose_file_runs_four_healthy_daemons_as_uid_1000() {
    let images = TempRoot::new();
    let pid = std::process::id();
    let image = format!("homelab-test/control-plane-{pid}:latest");
    import_image(images.path(), &image);
    let _image = Image(image.clone());
    for (i, base) in ["", "/homelab"].into_iter().enumerate() {
        deploy_and_check(&image, &format!("hcptest{pid}x{i}"), base);
    }
}

fn deploy_and_check(image: &str, project: &str, base: &str) {
    let t = TempRoot::new();

    // The compose folder as a deployment has it: the real files, plus secrets.env and ssh/.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = t.path().join("compose");
    std::fs::create_dir_all(dir.join("ssh")).unwrap();
    for f in ["docker-compose.yml", "defaults.env"] {
        std::fs::copy(repo.join("compose").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("secrets.env"), "").unwrap();
    t.write_host("cp-test", "services:\n  ui:\n    checks:\n      - tcp: { port: 1 }\n");
    let data = t.root();
    std::os::unix::fs::chown(&data, Some(1000), Some(1000)).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fast = "    healthcheck: { interval: 1s, timeout: 5s, retries: 3, start_period: 1s }\n";
    let mut over = String::from("version: \"2.4\"\nservices:\n");
    for d in DAEMONS {
        over.push_str(&format!("  {d}:\n    image: {image}\n"));
        if d == "control-plane-ui" {
            // Its own port, so the test never collides with a UI already on 18180; the
            // healthcheck's test is the compose file's own.
            over.push_str(&format!("    environment: {{ LISTEN: \"127.0.0.1:{port}\" }}\n{fast}"));
        } else {
            over.push_str(fast);
        }
    }
    std::fs::write(dir.join("override.yml"), over).unwrap();

    let docker_gid = std::fs::metadata("/var/run/docker.sock").map(|m| std::os::unix::fs::MetadataExt::gid(&m)).unwrap_or(999);
    let d = Deployment { compose: compose_cmd(), dir: dir.clone(), project: project.to_owned() };
    let mut up = d.cmd(&["up", "-d"]);
    up.env("BASE_PATH", base)
        .env("HOMELAB_DATA", &data)
        .env("HOMELAB_HOSTS", t.hosts())
        .env("HOMELAB_SSH_DIR", dir.join("ssh"))
        .env("DOCKER_GID", docker_gid.to_string());
    run(&mut up);

    for service in DAEMONS {
        let id = wait_for(&format!("the {service} container"), Duration::from_secs(30), || Some(container(&d.project, service)).filter(|s| !s.is_empty()));
        let health = wait_for(&format!("{service} healthy (BASE_PATH {base:?})"), Duration::from_secs(90), || {
            let state = inspect(&id, "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}");
            assert!(!state.starts_with("exited") && !state.starts_with("restarting"), "{service} stopped: {state}\n{}", logs(&id));
            (state == "running healthy").then_some(state)
        });
        assert_eq!(health, "running healthy");
        if service == "control-plane-ui" {
            // Healthy by the compose file's own check, not one the override wrote.
            assert_eq!(inspect(&id, "{{json .Config.Healthcheck.Test}}"), r#"["CMD","hcp","health","--ui"]"#);
            assert_eq!(inspect(&id, "{{range .Config.Env}}{{if eq (index (split . \"=\") 0) \"BASE_PATH\"}}{{.}}{{end}}{{end}}"), format!("BASE_PATH={base}"));
        }
        assert_eq!(inspect(&id, "{{.Config.User}} {{.HostConfig.NetworkMode}}"), "1000:1000 host");
        let top = run(Command::new("docker").args(["top", &id, "-eo", "pid,uid"]));
        let uids: BTreeSet<String> =
            String::from_utf8_lossy(&top.stdout).lines().skip(1).filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned)).collect();
        assert_eq!(uids, BTreeSet::from(["1000".to_owned()]), "{service} runs as UID 1000 only");
    }

    // The UI answers /summary on the host network, from what the daemons wrote.
    testkit::wait_until("the UI answers /summary", Duration::from_secs(30), || {
        Command::new(env!("CARGO_BIN_EXE_hcp"))
            .args(["health", "--url", &format!("http://127.0.0.1:{port}{base}/summary")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let summary: serde_json::Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}{base}/summary")).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    });
    assert!(summary["nodes"].is_object() && summary["services"].is_object(), "{summary}");
    // The data root belongs to UID 1000 and holds what the daemons wrote.
    let hb = wait_for("the daemons' heartbeats", Duration::from_secs(30), || {
        let names: BTreeSet<String> = std::fs::read_dir(data.join("state/heartbeat")).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        (names.len() >= 3).then_some(names)
    });
    assert!(hb.contains("observer.json"), "{hb:?}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(data.join("state/heartbeat/observer.json")).unwrap());
    assert_eq!(owner, 1000);
}

fn logs(id: &str) -> String {
    Command::new("docker").args(["logs", "--tail", "30", id]).output().map(|o| crate::text(&o)).unwrap_or_default()
}
