//! A real container registry for tests: Debian's `docker-registry` (distribution 2.8) on
//! 127.0.0.1 with its storage, config and log in a temp folder, killed on drop; and tiny
//! versioned app images pushed to it.
//!
//! Docker treats 127.0.0.0/8 registries as insecure-allowed, so `docker pull 127.0.0.1:PORT/…`
//! works over plain HTTP with no daemon configuration. Images are made with `docker import` of
//! a tarball (busybox from the host's busybox-static and its applet links, as in
//! scripts/test-image.sh), no Dockerfile and no other registry. The app serves
//! `busybox httpd -f -p 8080 -h /www`: `/health` ("ok <tag>") as its check and `/version`
//! (the tag); how it behaves over time is an [`AppBehaviour`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{KillOnDrop, free_port, http, wait_until};

/// What an app image does once started. Every image serves on port 8080 in the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppBehaviour {
    /// Serves `/health` (200, "ok <tag>") for as long as it runs.
    Healthy,
    /// httpd runs but there is no `/health` (404): the HTTP check fails from the start.
    CheckFails,
    /// Exits with status 1 at once.
    ExitsAtStart,
    /// Serves `/health` for this many seconds, then deletes it and keeps running (404 after).
    FailsAfter(u64),
    /// Serves `/health` for this many seconds, then exits with status 1.
    ExitsAfter(u64),
}

impl AppBehaviour {
    /// The container's command, run by `/bin/sh -c`. A trap makes `docker stop` quick (a shell
    /// as PID 1 would otherwise ignore SIGTERM and wait for the kill after the stop timeout).
    fn script(self) -> String {
        const SERVE: &str = "trap 'exit 0' TERM INT; httpd -f -p 8080 -h /www & httpd=$!";
        match self {
            AppBehaviour::Healthy | AppBehaviour::CheckFails => format!("{SERVE}; wait $httpd"),
            AppBehaviour::ExitsAtStart => "echo 'app: exits at start' >&2; exit 1".to_owned(),
            AppBehaviour::FailsAfter(secs) => {
                format!("{SERVE}; sleep {secs} & wait $!; rm -f /www/health; echo 'app: /health removed' >&2; wait $httpd")
            }
            AppBehaviour::ExitsAfter(secs) => format!("{SERVE}; sleep {secs} & wait $!; echo 'app: exits' >&2; exit 1"),
        }
    }

    fn serves_health(self) -> bool {
        !matches!(self, AppBehaviour::CheckFails | AppBehaviour::ExitsAtStart)
    }
}

/// An image pushed by [`Registry::push_app`] (and still tagged locally).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// `127.0.0.1:PORT/<repo>`.
    pub repository: String,
    /// `127.0.0.1:PORT/<repo>:<tag>`.
    pub reference: String,
    pub tag: String,
    /// The manifest digest the registry holds, `sha256:…` (as `docker push` reports it, and as
    /// in the image's `RepoDigests`).
    pub digest: String,
    /// The local image id, `sha256:…` (`docker image inspect --format {{.Id}}`).
    pub image_id: String,
}

impl PushedImage {
    /// `127.0.0.1:PORT/<repo>@sha256:…`.
    pub fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// A running (or, after [`Registry::stop`], stopped) registry. On drop it is killed, its temp
/// folder removed, and the local images that name it (`127.0.0.1:PORT/…`, tags and digests)
/// are untagged; remove the containers that use them first (declare them after the registry).
pub struct Registry {
    child: Option<KillOnDrop>,
    dir: tempfile::TempDir,
    port: u16,
    auth: Option<(String, String)>,
    base: OnceLock<PathBuf>,
}

fn output(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Registry {
    pub const BIN: &'static str = "/usr/bin/docker-registry";
    pub const BUSYBOX: &'static str = "/bin/busybox";
    pub const HTPASSWD: &'static str = "/usr/bin/htpasswd";
    /// The user and password of [`Registry::start_with_auth`].
    pub const USER: &'static str = "homelab";
    pub const PASSWORD: &'static str = "registry-test-password";

    /// Starts an open registry (no auth, deletes enabled) and waits until `GET /v2/` is 200.
    pub fn start() -> Registry {
        Self::start_inner(false)
    }

    /// Starts a registry that wants HTTP basic auth ([`Registry::USER`], [`Registry::PASSWORD`],
    /// an htpasswd file made by `htpasswd -Bbn`): an anonymous `docker pull` is refused (401,
    /// "no basic auth credentials"). [`Registry::push_app`] logs in with a docker client config
    /// of its own ([`Registry::docker_config`]), never the user's `~/.docker`.
    pub fn start_with_auth() -> Registry {
        Self::start_inner(true)
    }

    fn start_inner(auth: bool) -> Registry {
        for bin in [Self::BIN, Self::BUSYBOX].into_iter().chain(auth.then_some(Self::HTPASSWD)) {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/test-deps.sh as root (apt-get install docker-registry busybox-static apache2-utils)"
            );
        }
        let dir = tempfile::Builder::new().prefix("registry-test-").tempdir().expect("temp dir");
        let port = free_port();
        let d = dir.path();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: registry-test-{port}\n",
            d.join("storage").display()
        );
        let auth = auth.then(|| {
            let line = output(Command::new(Self::HTPASSWD).args(["-Bbn", Self::USER, Self::PASSWORD]), "htpasswd -Bbn");
            std::fs::write(d.join("htpasswd"), line.trim_end()).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: registry-test\n    path: {}\n", d.join("htpasswd").display()));
            (Self::USER.to_owned(), Self::PASSWORD.to_owned())
        });
        std::fs::write(d.join("config.yml"), config).unwrap();
        let mut reg = Registry { child: None, dir, port, auth, base: OnceLock::new() };
        reg.restart();
        if reg.auth.is_some() {
            let mut login = reg
                .docker()
                .args(["login", "--username", Self::USER, "--password-stdin", &reg.addr()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("docker login");
            use std::io::Write as _;
            login.stdin.take().unwrap().write_all(Self::PASSWORD.as_bytes()).unwrap();
            let out = login.wait_with_output().unwrap();
            assert!(out.status.success(), "docker login {}: {}\n{}", reg.addr(), String::from_utf8_lossy(&out.stderr), reg.log());
        }
        reg
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user and password when it wants basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The docker client config folder logged in to this registry (pass as `docker --config`),
    /// when it wants basic auth.
    pub fn docker_config(&self) -> Option<PathBuf> {
        self.auth.as_ref().map(|_| self.dir.path().join("docker-config"))
    }

    /// A `docker` command, with `--config` [`Registry::docker_config`] when there is one.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        if let Some(config) = self.docker_config() {
            cmd.arg("--config").arg(config);
        }
        cmd
    }

    /// What it logged so far (warnings and errors, every start since [`Registry::start`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Whether the process runs (it may still be starting).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.0.try_wait().unwrap().is_none())
    }

    /// Stops it (SIGKILL: it keeps nothing in memory that a finished push needs) and waits until
    /// its port refuses connections: the registry is "down". Its storage is kept for
    /// [`Registry::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.0.kill();
            let _ = child.0.wait();
        }
        let port = self.port;
        wait_until("the registry's port to refuse connections", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    /// Starts it again on the same port, config and storage (stopping it first if it runs) and
    /// waits until `GET /v2/` answers (200, or 401 when it wants auth).
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(Self::BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(KillOnDrop(child));
        let (port, ready) = (self.port, if self.auth.is_some() { 401 } else { 200 });
        wait_until("the registry to answer GET /v2/", Duration::from_secs(30), || {
            if let Some(status) = self.child.as_mut().unwrap().0.try_wait().unwrap() {
                panic!("docker-registry exited ({status}) at start:\n{}", self.log());
            }
            matches!(http(port, "GET", "/v2/", &[], ""), Ok((s, _)) if s == ready)
        });
    }

    /// The root file system every app image shares, made once per registry: /bin/busybox and
    /// its applet links, /etc/passwd, /tmp.
    fn base(&self) -> &Path {
        self.base.get_or_init(|| {
            let root = self.dir.path().join("base");
            for sub in ["bin", "etc", "tmp"] {
                std::fs::create_dir_all(root.join(sub)).unwrap();
            }
            std::fs::copy(Self::BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
            let applets = output(Command::new(Self::BUSYBOX).arg("--list"), "busybox --list");
            for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
                std::os::unix::fs::symlink("/bin/busybox", root.join("bin").join(applet)).unwrap();
            }
            std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
            root
        })
    }

    /// Builds a tiny app image for `tag` behaving as `behaviour` (`docker import` of the busybox
    /// tarball plus `/www/health`, `/www/version`, `/www/build`, the last unique per build so
    /// every push has its own digest), tags it `<addr>/<repo>:<tag>` and pushes it.
    pub fn push_app(&self, repo: &str, tag: &str, behaviour: AppBehaviour) -> PushedImage {
        static BUILDS: AtomicU64 = AtomicU64::new(0);
        let build = BUILDS.fetch_add(1, Ordering::Relaxed);
        let base = self.base().to_owned();
        let work = self.dir.path().join(format!("build-{build}"));
        let www = work.join("rootfs/www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("version"), format!("{tag}\n")).unwrap();
        std::fs::write(www.join("build"), format!("{repo}:{tag} {behaviour:?} pid {} build {build}\n", std::process::id())).unwrap();
        if behaviour.serves_health() {
            std::fs::write(www.join("health"), format!("ok {tag}\n")).unwrap();
        }
        let tarball = work.join("rootfs.tar");
        output(
            Command::new("tar")
                .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
                .arg(&tarball)
                .arg("-C")
                .arg(&base)
                .arg(".")
                .arg("-C")
                .arg(work.join("rootfs"))
                .arg("www"),
            "tar the image's root file system",
        );
        let repository = format!("{}/{repo}", self.addr());
        let reference = format!("{repository}:{tag}");
        let cmd = serde_json::to_string(&["/bin/sh", "-c", &behaviour.script()]).unwrap();
        output(
            Command::new("docker").args(["import", "--change", &format!("CMD {cmd}"), "--change", "EXPOSE 8080"]).arg(&tarball).arg(&reference),
            &format!("docker import {reference}"),
        );
        let _ = std::fs::remove_dir_all(&work);
        let pushed = output(self.docker().args(["push", &reference]), &format!("docker push {reference}"));
        // "<tag>: digest: sha256:… size: 527"
        let digest = pushed
            .lines()
            .find_map(|l| l.split_once(" digest: ").and_then(|(_, rest)| rest.split_whitespace().next()))
            .unwrap_or_else(|| panic!("no digest in the output of docker push {reference}:\n{pushed}"))
            .to_owned();
        let image_id = output(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &reference]), "docker image inspect").trim().to_owned();
        PushedImage { repository, reference, tag: tag.to_owned(), digest, image_id }
    }

    /// The digest the registry holds for `repo:tag` now (`HEAD /v2/<repo>/manifests/<tag>`,
    /// `Docker-Content-Digest`), or `None` when it has no such tag. Open registries only.
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let accept = "application/vnd.docker.distribution.manifest.v2+json";
        let (status, head, _) =
            crate::http_with_head(self.port, "HEAD", &format!("/v2/{repo}/manifests/{tag}"), &[("Accept", accept)], "").expect("HEAD the manifest");
        match status {
            200 => crate::header_value(&head, "Docker-Content-Digest").map(str::to_owned),
            404 => None,
            other => panic!("HEAD /v2/{repo}/manifests/{tag} answered {other}:\n{head}"),
        }
    }

    /// Untags every local image named `<addr>/…` (by tag and by digest); images still used by a
    /// container stay.
    pub fn remove_local_images(&self) {
        let Ok(out) = Command::new("docker").args(["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"]).output() else {
            return;
        };
        let prefix = format!("{}/", self.addr());
        let mut refs = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut f = line.split_whitespace();
            let (Some(repo), Some(tag), Some(digest)) = (f.next(), f.next(), f.next()) else { continue };
            if !repo.starts_with(&prefix) {
                continue;
            }
            if tag != "<none>" {
                refs.push(format!("{repo}:{tag}"));
            }
            if digest != "<none>" {
                refs.push(format!("{repo}@{digest}"));
            }
        }
        refs.sort();
        refs.dedup();
        if !refs.is_empty() {
            let _ = Command::new("docker").arg("rmi").args(&refs).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.0.kill();
            let _ = child.0.wait();
        }
        self.remove_local_images();
    }
}

/// A container removed (`docker rm -f`) on drop, so a failing test leaves none behind.
pub struct ContainerOnDrop(pub String);

impl Drop for ContainerOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &self.0]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
