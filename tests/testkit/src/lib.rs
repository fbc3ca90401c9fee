//! Shared test fixtures: a fresh temp data root per test and waiting for a condition with a
//! deadline (tests never sleep to synchronise).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod glewlwyd;
pub use glewlwyd::Glewlwyd;
pub mod registry;
pub use registry::{AppBehaviour, ContainerOnDrop, PushedImage, Registry};

/// A temp folder holding `root/` (the data root) and `hosts/`, removed on drop.
pub struct TempRoot {
    dir: tempfile::TempDir,
}

impl TempRoot {
    pub fn new() -> TempRoot {
        let dir = tempfile::Builder::new().prefix("homelab-test-").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        TempRoot { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `hosts/<node>/services.yaml`.
    pub fn write_host(&self, node: &str, yaml: &str) {
        let dir = self.hosts().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("services.yaml"), yaml).unwrap();
    }
}

impl Default for TempRoot {
    fn default() -> Self {
        TempRoot::new()
    }
}

/// Polls `cond` until it returns `Some`, panicking with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_for`] for a boolean condition.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, deadline, || cond().then_some(()))
}

/// Path of a binary of this workspace built by cargo for the current test profile.
pub fn workspace_bin(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)).is_some_and(|euid| euid == "0")
}

/// One HTTP/1.1 request to `127.0.0.1:<port>` with `Connection: close`, for tests that talk to a
/// local server without an async client. Returns the status and the raw body (chunked framing,
/// if the server used it, is left as is). Bounded by a 10 s read/write timeout.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<(u16, String)> {
    http_with_head(port, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// [`http`], also returning the response's header block (status line and headers, raw).
pub fn http_with_head(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").map(|(h, b)| (h.to_owned(), b.to_owned())).unwrap_or_default();
    Ok((status, head, body))
}

/// The value of the first header `name` (case-insensitive) in a raw header block.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// A child process killed (SIGKILL) and reaped on drop, so a failing test leaves nothing behind.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Sends SIGTERM and waits up to `deadline` for the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        wait_for("the process to exit after SIGTERM", deadline, || self.0.try_wait().unwrap())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, clustering
/// off, its storage and log in a temp folder; killed on drop.
pub struct Alertmanager {
    child: KillOnDrop,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Alertmanager {
    /// A configuration that sends every alert, grouped by `group_by` (1 s group wait and
    /// interval) and resolved ones too, to the UI's receiver on `ui_port` with a bearer token.
    pub fn webhook_config(ui_port: u16, token: &str, group_by: &str) -> String {
        format!(
            r#"route:
  receiver: homelab
  group_by: [{group_by}]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: homelab
    webhook_configs:
      - url: http://127.0.0.1:{ui_port}/api/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: "{token}"
"#
        )
    }

    pub const BIN: &'static str = "/usr/bin/prometheus-alertmanager";

    /// Starts it with `config` (alertmanager.yml) and waits until `/-/ready` answers 200.
    pub fn start(config: &str) -> Alertmanager {
        assert!(Path::new(Self::BIN).exists(), "{} is missing: run scripts/test-deps.sh as root (apt-get install prometheus-alertmanager)", Self::BIN);
        let dir = tempfile::Builder::new().prefix("alertmanager-test-").tempdir().expect("temp dir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let port = free_port();
        let child = std::process::Command::new(Self::BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        let mut am = Alertmanager { child: KillOnDrop(child), dir, port };
        wait_until("Alertmanager to be ready", Duration::from_secs(30), || {
            if let Some(status) = am.child.0.try_wait().unwrap() {
                panic!("prometheus-alertmanager exited ({status}) at start:\n{}", am.log());
            }
            matches!(http(port, "GET", "/-/ready", &[], ""), Ok((200, _)))
        });
        am
    }

    /// `POST /api/v2/alerts` with a JSON array of alerts; panics unless Alertmanager takes them.
    pub fn post_alerts(&self, json: &str) {
        let (status, body) = http(self.port, "POST", "/api/v2/alerts", &[("Content-Type", "application/json")], json).expect("POST /api/v2/alerts");
        assert_eq!(status, 200, "Alertmanager refused the alerts: {body}\n{}", self.log());
    }

    /// What it logged so far (debug level: each notification attempt is there).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

/// A value under `/proc/sys` set for a test (root only), put back by [`ProcSys::restore`] or on
/// drop, so a failing test never leaves the machine changed.
pub struct ProcSys {
    path: PathBuf,
    old: Option<String>,
}

impl ProcSys {
    /// `key` like `fs/inotify/max_queued_events`.
    pub fn set(key: &str, value: &str) -> std::io::Result<ProcSys> {
        let path = Path::new("/proc/sys").join(key);
        let old = std::fs::read_to_string(&path)?.trim().to_owned();
        std::fs::write(&path, value)?;
        Ok(ProcSys { path, old: Some(old) })
    }

    /// Writes the old value back (once; later calls and the drop do nothing).
    pub fn restore(&mut self) {
        if let Some(old) = self.old.take()
            && let Err(e) = std::fs::write(&self.path, &old)
        {
            eprintln!("cannot restore {} to {old}: {e}", self.path.display());
        }
    }
}

impl Drop for ProcSys {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Copies a folder tree, skipping names that start with `.` (writers' temp files) and anything
/// that vanishes while it is copied (a daemon may be renaming files in it).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let result = match entry.file_type()? {
            t if t.is_dir() => copy_tree(&src, &dst),
            t if t.is_file() => std::fs::copy(&src, &dst).map(|_| ()),
            _ => Ok(()),
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// What a replay of the events on disk gives: copies the data root `root` into a fresh folder,
/// deletes the observer's checkpoint there and runs `observer --once` (the binary at `observer`,
/// e.g. [`workspace_bin`]`("control-plane-observer")`) on the copy, with `--hosts` when given.
/// Returns the temp folder; the replayed data root is its `root/`.
pub fn replay(observer: &Path, root: &Path, hosts: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("homelab-replay-").tempdir().expect("temp dir");
    let copy = dir.path().join("root");
    copy_tree(root, &copy).expect("copy the data root");
    match std::fs::remove_file(copy.join("state/observer_checkpoint.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot delete the copied checkpoint: {e}"),
        _ => {}
    }
    let mut cmd = std::process::Command::new(observer);
    cmd.arg("--root").arg(&copy).arg("--once");
    if let Some(h) = hosts {
        cmd.arg("--hosts").arg(h);
    }
    for var in ["HOMELAB_ROOT", "HOSTS_DIR", "NODE_ALIAS_MAP", "GHOST_TTL", "NODE_STALE_AFTER", "EVENT_RETENTION_DAYS"] {
        cmd.env_remove(var);
    }
    let out = cmd.env("RUST_LOG", "warn").output().expect("run the observer for a replay");
    assert!(out.status.success(), "replay (observer --once) failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A tmpfs of a given size mounted on a folder, unmounted on drop (also when the test panics):
/// a real disk that fills up. Needs root (CI runs as root); fails the test clearly otherwise.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        assert!(is_root(), "this test mounts a tmpfs to fill a disk for real and must run as root (CI does)");
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"]).arg(dir).output().unwrap();
        assert!(out.status.success(), "mount tmpfs on {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir.to_owned())
    }

    /// `mount -o remount,<opts>`, e.g. `ro` or `rw`.
    pub fn remount(&self, opts: &str) {
        let out = std::process::Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.0).output().unwrap();
        assert!(out.status.success(), "remount {opts}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Writes `path` (inside the tmpfs) until the file system is full, partial pages included,
    /// and checks that not even a one-byte file fits; returns the bytes written. Remove the
    /// file to free the space.
    pub fn fill(&self, path: &Path) -> u64 {
        use std::io::Write as _;
        let mut f = std::fs::File::create(path).unwrap();
        let chunk = vec![0x55u8; 16 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        while f.write_all(&[0u8; 512]).and_then(|()| f.sync_all()).is_ok() {
            written += 512;
        }
        let probe = self.0.join(".probe");
        let full = std::fs::write(&probe, b"x").is_err();
        let _ = std::fs::remove_file(&probe);
        assert!(full, "the disk is not full after {written} bytes");
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !std::process::Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success()) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Prints one machine-readable benchmark figure for scripts/bench.sh:
/// `BENCH {"name":…,"label":…,"value":…,"unit":…,"target":…,"cmp":…}` (value to 3 decimals;
/// `target` as (comparison, figure), e.g. `("<=", 50.0)`, when the issue names one).
pub fn bench(name: &str, label: &str, value: f64, unit: &str, target: Option<(&str, f64)>) {
    let (cmp, target) = target.map_or((serde_json::Value::Null, serde_json::Value::Null), |(c, t)| (c.into(), t.into()));
    let line = serde_json::json!({"name": name, "label": label, "value": (value * 1000.0).round() / 1000.0, "unit": unit, "target": target, "cmp": cmp});
    println!("BENCH {line}");
}
