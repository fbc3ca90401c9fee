//! Crash benchmark, side by side on the same Docker engine and the same faults: the product
//! (`hcp up` with `AUTO_APPROVE=low`: agent → observer → supervisor → executor), Docker's own
//! restart policy (`--restart always`) and Monit (`set daemon 1`, a `check program` running
//! `docker inspect -f '{{.State.Running}}' NAME`, `if status != 0 then exec "/usr/bin/docker
//! start NAME"`).
//!
//! `cargo build --release -p hcp && cargo run --release -p hcp --example crash-peers-bench [-- ROUNDS PEERS]`
//! (defaults `3 ours,docker,monit`). Needs root (the crash is a SIGKILL of the container's main
//! process from the host), `docker`, `monit` for that peer, and the image `TEST_IMAGE` (default
//! `homelab-test/busybox:latest`, scripts/test-image.sh).
//!
//! Per peer, on containers of its own (`sleep` in busybox, label `hl-crash-bench=1`):
//! 1. one crash, ROUNDS times (a different container each time): crash → running again;
//! 2. 8 containers crash at once: crash → the last one running again;
//! 3. a crash loop: one container killed 5 times, each time as soon as it runs again; who
//!    restarts it every time, and who stops and asks a person.
//!
//! "Crash" and "running again" are the `die` and `start` events of the Docker engine
//! (`timeNano`, one clock), so every peer is timed the same way. For ours, crash → operator
//! notified is the action's `created_at` (the pending or auto-approved action written) minus the
//! `die` time. Prints human lines and `BENCH {json}` lines for scripts/bench.sh.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::bench;

const LABEL: &str = "hl-crash-bench=1";
const RESTART_DEADLINE: Duration = Duration::from_secs(30);
const LOOP_CRASHES: usize = 5;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn cleanup_containers() {
    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={LABEL}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
    }
}

/// One engine event of a bench container: (name, action, time in ns since the epoch).
type Ev = (String, String, i64);

/// `docker events` for the bench's containers, as a channel.
struct Events {
    child: Child,
    rx: mpsc::Receiver<Ev>,
    seen: Vec<Ev>,
}

impl Events {
    fn start() -> Events {
        let mut child = Command::new("docker")
            .args(["events", "--filter", "type=container", "--filter", &format!("label={LABEL}"), "--format", "{{json .}}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let name = v["Actor"]["Attributes"]["name"].as_str().unwrap_or("").to_owned();
                let action = v["Action"].as_str().unwrap_or("").to_owned();
                let t = v["timeNano"].as_i64().unwrap_or(0);
                if tx.send((name, action, t)).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        Events { child, rx, seen: Vec::new() }
    }

    /// The first `action` event of `name` after `after` (ns), waiting up to `deadline`.
    fn wait(&mut self, name: &str, action: &str, after: i64, deadline: Duration) -> Option<i64> {
        let t = Instant::now();
        loop {
            if let Some(e) = self.seen.iter().find(|(n, a, at)| n == name && a == action && *at > after) {
                return Some(e.2);
            }
            let left = deadline.checked_sub(t.elapsed())?;
            match self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(e) => self.seen.push(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => return None,
            }
        }
    }

    fn count(&self, name: &str, action: &str, after: i64) -> usize {
        self.seen.iter().filter(|(n, a, at)| n == name && a == action && *at > after).count()
    }

    fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

/// SIGKILL of the container's main process, from the host. Returns the engine's `die` time.
fn crash(ev: &mut Events, name: &str) -> i64 {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", name]);
    assert!(pid != "0", "{name} is not running");
    let before = now_ns() - 1_000_000;
    let st = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(st.success(), "kill -9 {pid}");
    ev.wait(name, "die", before, Duration::from_secs(10)).unwrap_or_else(|| panic!("no die event for {name}"))
}

fn wait_running(name: &str, deadline: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < deadline {
        if docker(&["inspect", "-f", "{{.State.Running}}", name]) == "true" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What makes a peer: its containers and the process watching them (none for Docker).
struct Peer {
    name: &'static str,
    _watcher: Option<Daemon>,
    root: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn cname(peer: &str, i: &str) -> String {
    format!("hl-cb-{peer}-{i}")
}

/// Containers of a peer: `one-R` for the single crashes, `burst-I` for the 8 at once, `loop`;
/// none of them crashed before its own scenario.
fn names() -> Vec<String> {
    let rounds = ROUNDS.load(std::sync::atomic::Ordering::Relaxed);
    (0..rounds).map(|r| format!("one-{r}")).chain((0..8).map(|i| format!("burst-{i}"))).chain(["loop".to_owned()]).collect()
}

static ROUNDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(3);

fn setup(peer: &'static str, image: &str) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    for i in names() {
        let n = cname(peer, &i);
        let mut args = vec!["run", "-d", "--name", &n, "--label", LABEL];
        if peer == "docker" {
            args.extend(["--restart", "always"]);
        }
        args.extend([image, "sleep", "1000000"]);
        docker(&args);
    }
    match peer {
        "docker" => Peer { name: peer, _watcher: None, root: None, _dir: dir },
        "monit" => {
            // As Monit's users write it: a check program per container, every cycle (1 s).
            let check = dir.path().join("container-running.sh");
            std::fs::write(&check, "#!/bin/sh\n[ \"$(/usr/bin/docker inspect -f '{{.State.Running}}' \"$1\")\" = true ]\n").unwrap();
            Command::new("chmod").arg("755").arg(&check).status().unwrap();
            let mut rc = format!(
                "set daemon 1\nset logfile {d}/monit.log\nset pidfile {d}/monit.pid\nset idfile {d}/monit.id\nset statefile {d}/monit.state\n",
                d = dir.path().display()
            );
            for i in names() {
                let n = cname(peer, &i);
                rc.push_str(&format!("check program {n} with path \"{} {n}\"\n    if status != 0 then exec \"/usr/bin/docker start {n}\"\n", check.display()));
            }
            let rcfile = dir.path().join("monitrc");
            std::fs::write(&rcfile, rc).unwrap();
            Command::new("chmod").arg("600").arg(&rcfile).status().unwrap();
            let child = Command::new("monit")
                .arg("-c")
                .arg(&rcfile)
                .arg("-I")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("monit (apt-get install -y monit)");
            std::thread::sleep(Duration::from_secs(3));
            Peer { name: peer, _watcher: Some(Daemon(child)), root: None, _dir: dir }
        }
        _ => {
            let (root, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
            let mut yaml = String::from("services:\n");
            for i in names() {
                yaml.push_str(&format!("  svc-{i}:\n    containers: [{}]\n    checks:\n      - container: {{}}\n", cname(peer, &i)));
            }
            std::fs::create_dir_all(hosts.join("bench")).unwrap();
            std::fs::write(hosts.join("bench/services.yaml"), yaml).unwrap();
            let exe = std::env::current_exe().unwrap();
            let hcp = exe.parent().and_then(Path::parent).unwrap().join("hcp");
            assert!(hcp.exists(), "build hcp first: cargo build --release -p hcp");
            let child = Command::new(hcp)
                .args(["up", "--root", root.to_str().unwrap(), "--hosts", hosts.to_str().unwrap()])
                .env("AUTO_APPROVE", "low")
                .env("NODE_NAME", "bench")
                .env("LISTEN", format!("127.0.0.1:{}", free_port()))
                .env("LISTEN_ADDR", "127.0.0.1")
                .env("LISTEN_PORT", free_port().to_string())
                .env("UI_TOKEN", "bench-token")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let d = Daemon(child);
            // Ready when every service is healthy in world/.
            let t = Instant::now();
            loop {
                let text = std::fs::read_to_string(root.join("world/services.json")).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let healthy = v["services"]["bench"].as_object().map_or(0, |m| m.values().filter(|s| s["status"] == "healthy").count());
                if healthy == names().len() {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(90), "hcp up: services not healthy after 90 s");
                std::thread::sleep(Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_secs(2));
            Peer { name: peer, _watcher: Some(d), root: Some(root), _dir: dir }
        }
    }
}

/// Every action file of `service` (any state): (state folder, created_at ns).
fn actions(root: &Path, service: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for state in ["pending", "approved", "running", "completed", "failed", "cancelled", "rejected"] {
        for f in std::fs::read_dir(root.join("actions").join(state)).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !name.contains(&format!("-{service}")) {
                continue;
            }
            let Ok(v) = std::fs::read(f.path()).map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default()) else { continue };
            if v["service"] != service {
                continue;
            }
            if let Some(t) = v["created_at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
                out.push((state.to_owned(), t.timestamp_nanos_opt().unwrap()));
            }
        }
    }
    out
}

/// Crash → the action written (ours): waits up to 10 s.
fn notified(root: &Path, service: &str, die: i64) -> Option<f64> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Some((_, c)) = actions(root, service).into_iter().filter(|(_, c)| *c >= die - 5_000_000).min_by_key(|(_, c)| *c) {
            return Some((c - die) as f64 / 1e6);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn settle(peer: &Peer) {
    // Let the peer finish what it does after a restart (ours: the action completes, the agent
    // reports the service recovered) before the next fault.
    std::thread::sleep(Duration::from_secs(if peer.name == "ours" { 3 } else { 2 }));
}

fn run_peer(peer: &Peer, ev: &mut Events, rounds: usize, results: &mut BTreeMap<String, f64>) {
    let p = peer.name;
    // 1. One crash.
    let (mut one, mut notes) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let n = cname(p, &format!("one-{r}"));
        let die = crash(ev, &n);
        let start = ev.wait(&n, "start", die, RESTART_DEADLINE);
        let Some(start) = start else {
            println!("{p}: one crash of {n}: not running again after {RESTART_DEADLINE:?}");
            continue;
        };
        one.push((start - die) as f64 / 1e6);
        if let Some(root) = &peer.root
            && let Some(ms) = notified(root, &format!("svc-one-{r}"), die)
        {
            notes.push(ms);
        }
        settle(peer);
    }
    let m = median(&mut one);
    println!("{p}: one crash -> running again, {} rounds: median {m:.0} ms ({one:.0?})", one.len());
    results.insert(format!("one.{p}"), m);
    bench(&format!("crash.one.{p}"), &format!("one crash -> running again: {p}"), m, "ms", None);
    if !notes.is_empty() {
        let m = median(&mut notes);
        println!("{p}: one crash -> operator notified (action written): median {m:.0} ms");
        bench(&format!("crash.one.{p}.notified"), "one crash -> operator notified (action written): ours", m, "ms", None);
    }

    // 2. Eight at once.
    wait_all_running(p);
    let all: Vec<String> = (0..8).map(|i| cname(p, &format!("burst-{i}"))).collect();
    let pids: Vec<String> = all.iter().map(|n| docker(&["inspect", "-f", "{{.State.Pid}}", n])).collect();
    let before = now_ns() - 1_000_000;
    let st = Command::new("kill").arg("-9").args(&pids).status().unwrap();
    assert!(st.success());
    let mut first_die = i64::MAX;
    let mut last_start = 0;
    let mut missing = 0;
    for n in &all {
        let die = ev.wait(n, "die", before, Duration::from_secs(10)).expect("die event");
        first_die = first_die.min(die);
        match ev.wait(n, "start", die, RESTART_DEADLINE) {
            Some(s) => last_start = last_start.max(s),
            None => missing += 1,
        }
    }
    let burst = (last_start - first_die) as f64 / 1e6;
    println!(
        "{p}: 8 crashes at once -> last running again: {burst:.0} ms{}",
        if missing > 0 { format!(" ({missing} not restarted within {RESTART_DEADLINE:?})") } else { String::new() }
    );
    if let (true, Some(root)) = (missing > 0, &peer.root) {
        let waiting: usize = (0..8).map(|i| actions(root, &format!("svc-burst-{i}")).iter().filter(|(s, _)| s == "pending").count()).sum();
        println!("{p}: {waiting} action(s) of the 8 wait in pending for a person");
    }
    if missing == 0 {
        results.insert(format!("eight.{p}"), burst);
        bench(&format!("crash.eight.{p}"), &format!("8 crashes at once -> last running again: {p}"), burst, "ms", None);
    }
    settle(peer);
    wait_all_running(p);

    // 3. Crash loop: killed as soon as it runs again, 5 times.
    let n = cname(p, "loop");
    let mut restarts = 0;
    let mut times = Vec::new();
    let loop_start = now_ns();
    for _ in 0..LOOP_CRASHES {
        let die = crash(ev, &n);
        match ev.wait(&n, "start", die, Duration::from_secs(20)) {
            Some(s) => {
                restarts += 1;
                times.push((s - die) as f64 / 1e6);
                // It must really run before the next crash (Docker's start event comes first).
                wait_running(&n, Duration::from_secs(10));
            }
            None => break,
        }
    }
    ev.drain();
    let escalated = peer.root.as_ref().map(|root| actions(root, "svc-loop").into_iter().filter(|(s, c)| s == "pending" && *c >= loop_start).count());
    let what = match escalated {
        Some(k) if k > 0 => format!("stopped restarting; {k} action(s) wait in pending for a person"),
        Some(_) => "no action waits for a person".to_owned(),
        None if restarts == LOOP_CRASHES => "restarts it every time (no limit: it would keep going forever)".to_owned(),
        None => "stopped restarting".to_owned(),
    };
    println!(
        "{p}: crash loop ({LOOP_CRASHES} crashes): restarted {restarts} times ({times:.0?} ms), {what}; {} start events",
        ev.count(&n, "start", loop_start)
    );
    bench(&format!("crash.loop.{p}.restarts"), &format!("crash loop, {LOOP_CRASHES} crashes: restarts by {p}"), restarts as f64, "restarts", None);
    if let Some(k) = escalated {
        bench(
            &format!("crash.loop.{p}.escalated"),
            &format!("crash loop, {LOOP_CRASHES} crashes: actions waiting for a person ({p})"),
            k as f64,
            "actions",
            None,
        );
    }
}

fn wait_all_running(p: &str) {
    for i in 0..8 {
        let n = cname(p, &format!("burst-{i}"));
        if !wait_running(&n, RESTART_DEADLINE) {
            docker(&["start", &n]);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    ROUNDS.store(rounds, std::sync::atomic::Ordering::Relaxed);
    let peers: Vec<&'static str> = args
        .get(1)
        .map_or("ours,docker,monit", String::as_str)
        .split(',')
        .map(|p| match p.trim() {
            "ours" => "ours",
            "docker" => "docker",
            "monit" => "monit",
            other => panic!("unknown peer {other}: ours, docker or monit"),
        })
        .collect();
    let image = std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into());
    cleanup_containers();
    let mut ev = Events::start();
    let mut results = BTreeMap::new();
    for p in &peers {
        let peer = setup(p, &image);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_peer(&peer, &mut ev, rounds, &mut results)));
        drop(peer);
        cleanup_containers();
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
    for (what, target) in [("one", 1.0), ("eight", 2.0)] {
        if let (Some(o), Some(d)) = (results.get(&format!("{what}.ours")), results.get(&format!("{what}.docker"))) {
            let label = if what == "one" {
                "one crash -> running, ratio ours / Docker's policy"
            } else {
                "8 crashes at once -> last running, ratio ours / Docker's policy"
            };
            println!("{label}: {:.2}", o / d);
            bench(&format!("crash.{what}.ratio_ours_docker"), label, o / d, "x", Some(("<=", target)));
        }
        if let (Some(m), Some(d)) = (results.get(&format!("{what}.monit")), results.get(&format!("{what}.docker"))) {
            bench(
                &format!("crash.{what}.ratio_monit_docker"),
                &format!("{}, ratio Monit / Docker's policy", if what == "one" { "one crash" } else { "8 crashes at once" }),
                m / d,
                "x",
                None,
            );
        }
    }
}
