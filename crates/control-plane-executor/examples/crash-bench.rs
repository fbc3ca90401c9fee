//! Crash → running again: the product beside Docker's own restart policy, same run, same faults.
//!
//! `cargo run --release -p control-plane-executor --example crash-bench [-- --quick] [--rounds N]`
//!
//! Needs the local Docker engine, the test image (`scripts/test-image.sh`, `TEST_IMAGE`), root
//! (to SIGKILL a container's process from the host) and, for the crash loop, `docker-compose` v1.
//!
//! Each round starts a fresh data root and the whole stack in this process, as `hcp up` runs it
//! (observer, supervisor with `AUTO_APPROVE=low`, executor, and a node agent following the Docker
//! events stream), every setting at its default, plus fresh containers: 9 watched by the product
//! (no restart policy) and 9 reference containers with `--restart always`. A crash is a SIGKILL
//! of the container's main process from the host (its pid from `docker inspect`), never an API
//! call. Then:
//!
//! - one crash: one product container, then one reference container (the order alternates);
//! - 8 at once: 8 product containers in one burst of kill(2) calls, then 8 reference ones.
//!
//! "Running again" is Docker's own `State.StartedAt` of the container, minus the wall-clock time
//! taken just before the first kill (same host clock). For the product it also prints when the
//! action was written (`created_at`, approved by the policy at once) and claimed by the executor.
//!
//! Last, a crash loop: one container crashing 5 times (each crash once it runs again, and for
//! the product once its service reported healthy), the product's being a docker-compose service
//! so that its escalation (restart → redeploy → exhausted) can run; the bench approves the
//! guarded redeploy as an operator would. Docker's policy restarts forever with its back-off
//! (100 ms doubling while the container lives less than 10 s).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{EventsOptionsBuilder, InspectContainerOptions, ListContainersOptions};
use clap::Parser;
use futures_util::StreamExt;
use homelab_core::{ActionState, ActionType, ServiceStatus, Timestamp};
use homelab_store::DataRoot;
use tokio_util::sync::CancellationToken;

const NODE: &str = "bench";
const BURST: usize = 8;

#[derive(Parser)]
struct Args {
    /// Three rounds instead of seven, a shorter crash loop wait.
    #[arg(long)]
    quick: bool,
    /// Rounds (each: one crash and 8 at once, for both).
    #[arg(long)]
    rounds: Option<usize>,
    /// Skip the crash loop.
    #[arg(long)]
    no_loop: bool,
}

fn image() -> String {
    std::env::var("TEST_IMAGE").unwrap_or_else(|_| "homelab-test/busybox:latest".into())
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// Containers removed (with `docker rm -f`) when dropped.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&self.0).output();
        }
    }
}

/// Starts `sleep 3600` containers at once, with extra `docker run` flags.
fn run_containers(names: &[String], flags: &[&str]) -> anyhow::Result<()> {
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new("docker")
                .args(["run", "-d", "--name", n, "--network", "none"])
                .args(flags)
                .args([&image(), "sleep", "3600"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for c in children {
        let out = c.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Parses one daemon's configuration as its binary would (flags, then environment).
fn config<C: clap::Args + clap::FromArgMatches>(name: &str, args: &[String]) -> anyhow::Result<C> {
    #[derive(Parser)]
    struct Wrap<C: clap::Args> {
        #[command(flatten)]
        config: C,
    }
    let argv = std::iter::once(name.to_owned()).chain(args.iter().cloned());
    Wrap::<C>::try_parse_from(argv).map(|w| w.config).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// The stack as `hcp up` runs it (without the UI), on this runtime.
struct Stack {
    stop: CancellationToken,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

impl Stack {
    fn start(root: &Path, hosts: &Path, spool: &Path) -> anyhow::Result<Stack> {
        let s = |p: &Path| p.display().to_string();
        let common = vec!["--root".to_owned(), s(root), "--hosts".to_owned(), s(hosts)];
        let mut agent = common.clone();
        agent.extend(["--node", NODE, "--spool-dir", &s(spool), "--listen-port", "0", "--listen-addr", "127.0.0.1"].map(String::from));
        let observer: control_plane_observer::Config = config("control-plane-observer", &common)?;
        let mut supervisor: control_plane_supervisor::Config = config("control-plane-supervisor", &common)?;
        // AUTO_APPROVE=low (the flag form `--auto-approve low` is not accepted by clap for this bool).
        supervisor.auto_approve = true;
        let executor: control_plane_executor::Config = config("control-plane-executor", &common)?;
        let agent: node_agent::Config = config("node-agent", &agent)?;
        let stop = CancellationToken::new();
        let tasks = vec![
            ("observer", tokio::spawn(control_plane_observer::run(observer, stop.clone()))),
            ("supervisor", tokio::spawn(control_plane_supervisor::run(supervisor, stop.clone()))),
            ("executor", tokio::spawn(control_plane_executor::run(executor, stop.clone()))),
            ("node-agent", tokio::spawn(node_agent::run(agent, stop.clone()))),
        ];
        Ok(Stack { stop, tasks })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        for (name, t) in self.tasks {
            match tokio::time::timeout(Duration::from_secs(30), t).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => anyhow::bail!("{name} failed: {e:#}"),
                Ok(Err(e)) => anyhow::bail!("{name} panicked: {e}"),
                Err(_) => anyhow::bail!("{name} did not stop within 30 s"),
            }
        }
        Ok(())
    }
}

/// Waits until `cond` holds, polling every 5 ms.
async fn wait(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !cond() {
        anyhow::ensure!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A crash lands on a quiet node, as in real life: no world write within the observer's write
/// budget window (`WORLD_WRITES_PER_SECOND`, 5 per sliding second). Right after a start or a
/// recovery the budget may be spent, and the next fold waits up to a second for it.
async fn quiet(root: &DataRoot) -> anyhow::Result<()> {
    let file = root.world_dir().join("services.json");
    let age = || std::fs::metadata(&file).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).unwrap_or_default();
    wait("world state to be quiet for 1.2 s", Duration::from_secs(60), || age() >= Duration::from_millis(1200)).await
}

fn all_healthy(root: &DataRoot, services: &[String]) -> bool {
    let Ok((Some(s), _)) = root.read_world() else { return false };
    let Some(on_node) = s.services.get(NODE) else { return false };
    services.iter().all(|svc| on_node.get(svc).is_some_and(|st| st.status == ServiceStatus::Healthy))
}

async fn inspect(docker: &Docker, name: &str) -> anyhow::Result<bollard::models::ContainerState> {
    let c = docker.inspect_container(name, None::<InspectContainerOptions>).await?;
    c.state.ok_or_else(|| anyhow::anyhow!("no state for {name}"))
}

fn parse_ts(s: &str) -> anyhow::Result<Timestamp> {
    Ok(chrono::DateTime::parse_from_rfc3339(s)?.with_timezone(&chrono::Utc))
}

/// SIGKILLs the main process of each container from the host, in one burst; waits until every
/// one is running again (Docker's `start` events); returns the time just before the first kill
/// and each container's `State.StartedAt`.
async fn crash(docker: &Docker, names: &[String], deadline: Duration) -> anyhow::Result<(Timestamp, Vec<Timestamp>)> {
    let mut pids = Vec::new();
    for n in names {
        let pid = inspect(docker, n).await?.pid.unwrap_or(0);
        anyhow::ensure!(pid > 0, "container {n} is not running");
        pids.push(rustix::process::Pid::from_raw(pid as i32).expect("pid > 0"));
    }
    let since = chrono::Utc::now();
    let since_arg = format!("{}.{:09}", since.timestamp(), since.timestamp_subsec_nanos());
    let filters = HashMap::from([("type", vec!["container"]), ("event", vec!["start"])]);
    let mut events = docker.events(Some(EventsOptionsBuilder::new().since(&since_arg).filters(&filters).build()));
    let t0 = chrono::Utc::now();
    for pid in pids {
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
    }
    let mut left: Vec<&String> = names.iter().collect();
    let end = tokio::time::Instant::now() + deadline;
    while !left.is_empty() {
        let ev = tokio::time::timeout_at(end, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("{} of {} containers not running again after {deadline:?}: {left:?}", left.len(), names.len()))?;
        let ev = ev.ok_or_else(|| anyhow::anyhow!("the events stream ended"))??;
        if let Some(name) = ev.actor.and_then(|a| a.attributes).and_then(|a| a.get("name").cloned()) {
            left.retain(|n| **n != name);
        }
    }
    let mut started = Vec::new();
    for n in names {
        let st = inspect(docker, n).await?;
        let at = parse_ts(st.started_at.as_deref().unwrap_or_default())?;
        anyhow::ensure!(st.running == Some(true) && at > t0, "container {n} did not start after the crash");
        started.push(at);
    }
    Ok((t0, started))
}

/// The product's action for a service's crash: (written, claimed) after `t0`.
fn action_times(root: &DataRoot, service: &str, t0: Timestamp) -> Option<(f64, Option<f64>)> {
    let a = root.find_action(&ActionType::ContainerRestart.id(NODE, Some(service))).ok()??.action;
    let claimed = a.history.iter().find(|h| h.state == ActionState::Running).map(|h| secs(h.at - t0));
    Some((secs(a.created_at - t0), claimed))
}

#[derive(Default)]
struct Figures {
    ours_one: Vec<f64>,
    dock_one: Vec<f64>,
    ours_burst_last: Vec<f64>,
    dock_burst_last: Vec<f64>,
    ours_burst_median: Vec<f64>,
    dock_burst_median: Vec<f64>,
    written_one: Vec<f64>,
    claimed_one: Vec<f64>,
    written_burst_last: Vec<f64>,
    claimed_burst_last: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

fn stats(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.3} s [{:.3}–{:.3}]", median(v), min, max)
}

async fn round(docker: &Docker, r: usize, f: &mut Figures) -> anyhow::Result<()> {
    let tag = format!("hlb{}-r{r}", std::process::id());
    let ours: Vec<String> = std::iter::once(format!("{tag}-s")).chain((0..BURST).map(|i| format!("{tag}-b{i}"))).collect();
    let dock: Vec<String> = ours.iter().map(|n| format!("{n}-policy")).collect();
    let _guard = Containers(ours.iter().chain(&dock).cloned().collect());
    run_containers(&ours, &[])?;
    run_containers(&dock, &["--restart", "always"])?;

    let dir = tempfile::Builder::new().prefix("crash-bench-").tempdir()?;
    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    std::fs::create_dir_all(hosts.join(NODE))?;
    let services: Vec<String> = std::iter::once("single".to_owned()).chain((0..BURST).map(|i| format!("burst{i}"))).collect();
    let mut yaml = String::from("services:\n");
    for (svc, c) in services.iter().zip(&ours) {
        yaml.push_str(&format!("  {svc}:\n    containers: [{c}]\n    checks:\n      - container: {{}}\n"));
    }
    std::fs::write(hosts.join(NODE).join("services.yaml"), yaml)?;
    let root = DataRoot::open(&root_dir)?;
    let stack = Stack::start(&root_dir, &hosts, &dir.path().join("spool"))?;
    let result = async {
        wait("every service healthy in world state", Duration::from_secs(60), || all_healthy(&root, &services)).await?;
        let deadline = Duration::from_secs(60);
        let ours_first = r.is_multiple_of(2);

        // One crash.
        for pass in 0..2 {
            quiet(&root).await?;
            if (pass == 0) == ours_first {
                let (t0, started) = crash(docker, &ours[..1], deadline).await?;
                f.ours_one.push(secs(started[0] - t0));
                let (w, c) = action_times(&root, "single", t0).ok_or_else(|| anyhow::anyhow!("no action for the single crash"))?;
                f.written_one.push(w);
                f.claimed_one.extend(c);
            } else {
                let (t0, started) = crash(docker, &dock[..1], deadline).await?;
                f.dock_one.push(secs(started[0] - t0));
            }
        }
        // The single service reports healthy again before the burst: a quiet node.
        wait("the single service healthy again", Duration::from_secs(60), || all_healthy(&root, &services)).await?;

        // 8 at once.
        for pass in 0..2 {
            quiet(&root).await?;
            if (pass == 0) == ours_first {
                let (t0, started) = crash(docker, &ours[1..], deadline).await?;
                let d: Vec<f64> = started.iter().map(|s| secs(*s - t0)).collect();
                f.ours_burst_last.push(d.iter().copied().fold(0.0, f64::max));
                f.ours_burst_median.push(median(&d));
                let times: Vec<(f64, Option<f64>)> = services[1..].iter().filter_map(|s| action_times(&root, s, t0)).collect();
                anyhow::ensure!(times.len() == BURST, "only {} of {BURST} actions found", times.len());
                f.written_burst_last.push(times.iter().map(|t| t.0).fold(0.0, f64::max));
                f.claimed_burst_last.push(times.iter().filter_map(|t| t.1).fold(0.0, f64::max));
            } else {
                let (t0, started) = crash(docker, &dock[1..], deadline).await?;
                let d: Vec<f64> = started.iter().map(|s| secs(*s - t0)).collect();
                f.dock_burst_last.push(d.iter().copied().fold(0.0, f64::max));
                f.dock_burst_median.push(median(&d));
            }
        }
        wait("every service healthy again", Duration::from_secs(60), || all_healthy(&root, &services)).await?;
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    result
}

/// The running container of a compose service, if any: (name, started at).
async fn compose_container(docker: &Docker, project: &str, service: &str) -> anyhow::Result<Option<(String, Timestamp)>> {
    let labels = vec![format!("com.docker.compose.project={project}"), format!("com.docker.compose.service={service}")];
    let filters = HashMap::from([("label".to_owned(), labels)]);
    let found = docker.list_containers(Some(ListContainersOptions { all: false, filters: Some(filters), ..Default::default() })).await?;
    let Some(name) = found.first().and_then(|c| c.names.as_ref()?.first().map(|n| n.trim_start_matches('/').to_owned())) else { return Ok(None) };
    let st = inspect(docker, &name).await?;
    if st.running != Some(true) {
        return Ok(None);
    }
    Ok(Some((name, parse_ts(st.started_at.as_deref().unwrap_or_default())?)))
}

/// The same container crashing 5 times, for the product and for Docker's policy.
async fn crash_loop(docker: &Docker, quick: bool) -> anyhow::Result<()> {
    const CRASHES: usize = 5;
    // Long enough for a check pass (CHECK_INTERVAL, 30 s): after a redeploy the supervisor waits
    // for a fresh check before its next step.
    let wait_for_heal = Duration::from_secs(if quick { 45 } else { 60 });
    println!("\ncrash loop: the same container SIGKILLed {CRASHES} times, each time once it runs again");

    // Docker's policy.
    let name = format!("hlb{}-loop-policy", std::process::id());
    let _guard = Containers(vec![name.clone()]);
    run_containers(std::slice::from_ref(&name), &["--restart", "always"])?;
    let mut delays = Vec::new();
    for _ in 0..CRASHES {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (t0, started) = crash(docker, std::slice::from_ref(&name), Duration::from_secs(60)).await?;
        delays.push(format!("{:.2} s", secs(started[0] - t0)));
    }
    let count = inspect(docker, &name).await.ok().and_then(|_| {
        let out = Command::new("docker").args(["inspect", "-f", "{{.RestartCount}}", &name]).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "  Docker --restart always: restarted {CRASHES} of {CRASHES}, crash → running {} (back-off doubling); RestartCount {}; it never stops trying",
        delays.join(", "),
        count.unwrap_or_default()
    );

    // The product: a docker-compose service, so that the redeploy rung can run.
    let dir = tempfile::Builder::new().prefix("crash-bench-").tempdir()?;
    // The folder's name is the compose project's name: unique to this run.
    let compose_dir = dir.path().join(format!("hlbloop{}", std::process::id()));
    std::fs::create_dir_all(&compose_dir)?;
    std::fs::write(
        compose_dir.join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  loop:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n    network_mode: none\n",
            image()
        ),
    )?;
    let project = control_plane_executor::docker::compose_project(compose_dir.to_str().unwrap());
    struct Down(PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new("docker-compose").args(["down", "-t", "0", "-v"]).current_dir(&self.0).output();
        }
    }
    let _down = Down(compose_dir.clone());
    let up = Command::new("docker-compose").args(["up", "-d"]).current_dir(&compose_dir).output()?;
    anyhow::ensure!(up.status.success(), "docker-compose up: {}", String::from_utf8_lossy(&up.stderr));

    let (root_dir, hosts) = (dir.path().join("root"), dir.path().join("hosts"));
    std::fs::create_dir_all(hosts.join(NODE))?;
    std::fs::write(
        hosts.join(NODE).join("services.yaml"),
        format!("compose_command: docker-compose\nservices:\n  loop:\n    compose_dir: {}\n    checks:\n      - container: {{}}\n", compose_dir.display()),
    )?;
    let root = DataRoot::open(&root_dir)?;
    let stack = Stack::start(&root_dir, &hosts, &dir.path().join("spool"))?;
    let services = vec!["loop".to_owned()];
    let result = async {
        let mut lines = Vec::new();
        for i in 1..=CRASHES {
            let healthy = wait("the loop service healthy", wait_for_heal, || all_healthy(&root, &services)).await.is_ok() && quiet(&root).await.is_ok();
            let Some((name, _)) = compose_container(docker, &project, "loop").await?.filter(|_| healthy) else {
                lines.push(format!("crash {i}: not possible, the container stays down (nothing restarts it; a person decides)"));
                break;
            };
            let pid = inspect(docker, &name).await?.pid.unwrap_or(0);
            let t0 = chrono::Utc::now();
            rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).expect("pid"), rustix::process::Signal::KILL)?;
            // Wait for the container to run again; approve a pending (guarded) action as an operator would.
            let end = Instant::now() + wait_for_heal;
            let mut approved_by_bench = Vec::new();
            let back = loop {
                for stored in root.list_actions(ActionState::Pending)? {
                    let id = stored.action.id;
                    if root.transition(&id, ActionState::Pending, ActionState::Approved, chrono::Utc::now(), "bench:operator", None, |_| {}).is_ok() {
                        approved_by_bench.push(id);
                    }
                }
                if let Some((_, started)) = compose_container(docker, &project, "loop").await?.filter(|(_, s)| *s > t0) {
                    break Some(started);
                }
                if Instant::now() > end {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let mut acts = Vec::new();
            for kind in [ActionType::ContainerRestart, ActionType::Redeploy] {
                if let Some(a) = root.find_action(&kind.id(NODE, Some("loop")))?.filter(|a| a.action.created_at > t0) {
                    let by = if approved_by_bench.contains(&a.action.id) { "pending, approved by the bench as an operator" } else { "auto-approved" };
                    acts.push(format!("{} ({by}, {})", a.action.kind, a.state));
                }
            }
            let what = if acts.is_empty() { "no action".to_owned() } else { acts.join(" + ") };
            match back {
                Some(s) => lines.push(format!("crash {i}: {what}; running again after {:.2} s", secs(s - t0))),
                None => {
                    lines.push(format!("crash {i}: {what}; still down after {} s", wait_for_heal.as_secs()));
                    if i < CRASHES {
                        lines.push(format!("crashes {}–{CRASHES}: not possible, the container stays down (nothing restarts it; a person decides)", i + 1));
                    }
                    break;
                }
            }
        }
        let drift = homelab_store::read_json_file::<serde_json::Value>(&root.display_path(homelab_store::Doc::Drift)).ok().flatten();
        let decision = drift.as_ref().and_then(|d| {
            let list = d.get("drifts").or_else(|| d.get("entries")).and_then(|v| v.as_array())?;
            let e = list.iter().find(|e| e.get("service").and_then(|s| s.as_str()) == Some("loop"))?;
            Some(format!("{}: {}", e.get("decision").map(|v| v.to_string()).unwrap_or_default(), e.get("reason").and_then(|v| v.as_str()).unwrap_or_default()))
        });
        for l in &lines {
            println!("  ours: {l}");
        }
        if let Some(d) = decision {
            println!("  ours: world/drift.json for the service says {d}");
        }
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 7 });
    let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
    let version = docker.version().await?.version.unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("crash-bench: {rounds} rounds, Docker {version}, {cores} cores, image {}", image());
    println!("(product: observer + supervisor AUTO_APPROVE=low + executor + node agent, defaults, in-process; reference: --restart always)");

    let mut f = Figures::default();
    for r in 0..rounds {
        round(&docker, r, &mut f).await?;
        println!(
            "  round {}: one crash ours {:.3} s / policy {:.3} s; 8 at once (last) ours {:.3} s / policy {:.3} s",
            r + 1,
            f.ours_one[r],
            f.dock_one[r],
            f.ours_burst_last[r],
            f.dock_burst_last[r]
        );
    }
    let ratio = |a: &[f64], b: &[f64]| median(a) / median(b);
    println!("\ncrash → running again, median [min–max] over {rounds} rounds");
    println!("  {:<28} {:<26} {:<26} ratio (target)", "", "ours (AUTO_APPROVE=low)", "Docker --restart always");
    println!("  {:<28} {:<26} {:<26} {:.2} (≤ 1.0)", "one crash", stats(&f.ours_one), stats(&f.dock_one), ratio(&f.ours_one, &f.dock_one));
    println!(
        "  {:<28} {:<26} {:<26} {:.2} (≤ 2.0)",
        "8 at once: the last one",
        stats(&f.ours_burst_last),
        stats(&f.dock_burst_last),
        ratio(&f.ours_burst_last, &f.dock_burst_last)
    );
    println!(
        "  {:<28} {:<26} {:<26} {:.2}",
        "8 at once: median of the 8",
        stats(&f.ours_burst_median),
        stats(&f.dock_burst_median),
        ratio(&f.ours_burst_median, &f.dock_burst_median)
    );
    println!("ours, crash → action written (approved by policy) / claimed by the executor:");
    println!("  one crash                    {} / {}", stats(&f.written_one), stats(&f.claimed_one));
    println!("  8 at once: the last one      {} / {}", stats(&f.written_burst_last), stats(&f.claimed_burst_last));

    if !args.no_loop {
        crash_loop(&docker, args.quick).await?;
    }
    Ok(())
}
